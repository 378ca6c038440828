"""Contract: produce settings that change what the broker must do.

- acks=0: the broker sends no response (a response would desynchronise the client's
  correlation ids), yet on a healthy loopback broker every record is stored, in order.
- acks=1 and acks=all: each record is acknowledged with its offset and readable there.
- enable.idempotence=true: InitProducerId works, the producer delivers without errors, every
  record is stored exactly once in produce order, and the stored batches carry the producer id
  (>= 0) with base sequences that continue from batch to batch (checked on the raw batches).
- Auto-create: producing to a topic that does not exist creates it (1 partition by default)
  and stores the record.
Checked with confluent-kafka (librdkafka) and kafka-python.
"""

import time

import pytest

import kafka_wire as wire
from clients import (KP_CLOSE_TIMEOUT_S, POLL_INTERVAL_S, PRODUCE_TIMEOUT_S, Deadline,
                     assert_matches_acks, ck_create_topic, ck_partition_count, ck_produce,
                     ck_producer, ck_read_all, ck_watermarks, kp_produce, kp_producer, kp_read_all,
                     payloads)
from harness import unique_topic

ACKS_MESSAGES = 2000
IDEMPOTENT_MESSAGES = 3000
PARTITIONS = 3


def read_values(bootstrap, topic, partition=0):
    return [r.value for r in ck_read_all(bootstrap, topic, [partition])[partition]]


def wait_high_watermark(bootstrap, topic, expected):
    deadline = Deadline(PRODUCE_TIMEOUT_S, f"high watermark of {topic} to reach {expected}")
    while True:
        low, high = ck_watermarks(bootstrap, topic, 0)
        if high >= expected:
            return high
        deadline.check(f"(at {high})")
        time.sleep(POLL_INTERVAL_S)


# ------------------------------------------------------------------------------------- acks

@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_confluent(broker, acks):
    topic = unique_topic(f"acks{acks}")
    ck_create_topic(broker.bootstrap, topic, 1)
    values = payloads(ACKS_MESSAGES, seed=10, max_len=300)
    sent = [(None, v, 0) for v in values]
    results = ck_produce(ck_producer(broker.bootstrap, acks=acks), topic, sent)
    if acks != "0":
        assert [off for _, off in results] == list(range(ACKS_MESSAGES))
    assert wait_high_watermark(broker.bootstrap, topic, ACKS_MESSAGES) == ACKS_MESSAGES
    assert read_values(broker.bootstrap, topic) == values


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks_kafka_python(broker, acks):
    topic = unique_topic(f"kpacks{acks}")
    ck_create_topic(broker.bootstrap, topic, 1)
    values = payloads(ACKS_MESSAGES, seed=11, max_len=300)
    producer = kp_producer(broker.bootstrap, acks=acks)
    try:
        results = kp_produce(producer, topic, [(None, v, 0) for v in values])
        # acks=0 also proves no stray response confused the client: it keeps producing.
        more = kp_produce(producer, topic, [(None, b"after", 0)])
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)
    if acks != 0:  # kafka-python reports offset -1 for acks=0
        assert [off for _, off in results] == list(range(ACKS_MESSAGES))
        assert more == [(0, ACKS_MESSAGES)]
    assert wait_high_watermark(broker.bootstrap, topic, ACKS_MESSAGES + 1) == ACKS_MESSAGES + 1
    assert read_values(broker.bootstrap, topic) == values + [b"after"]


# ------------------------------------------------------------------------------ idempotence

def check_idempotent_batches(bootstrap, topic, partitions):
    for p in range(partitions):
        _, high = ck_watermarks(bootstrap, topic, p)
        headers = wire.fetch_batch_headers(bootstrap, topic, p, high)
        assert headers, f"partition {p}: no batches"
        producer_ids = {h["producer_id"] for h in headers}
        assert len(producer_ids) == 1 and min(producer_ids) >= 0, (
            f"partition {p}: producer ids {producer_ids} (idempotent batches need one id >= 0)")
        next_sequence = 0
        for h in headers:
            assert h["base_sequence"] == next_sequence, (
                f"partition {p} batch at {h['base_offset']}: base sequence {h['base_sequence']},"
                f" expected {next_sequence}")
            next_sequence += h["last_offset_delta"] + 1


def test_idempotent_producer_confluent(broker):
    topic = unique_topic("idem")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    values = payloads(IDEMPOTENT_MESSAGES, seed=12, max_len=300)
    sent = [(b"k%d" % (i % 50), v) for i, v in enumerate(values)]
    acks = ck_produce(ck_producer(broker.bootstrap, **{"enable.idempotence": True}), topic, sent)
    read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    assert sum(len(r) for r in read.values()) == IDEMPOTENT_MESSAGES, "duplicates or losses"
    assert_matches_acks(read, sent, acks)
    check_idempotent_batches(broker.bootstrap, topic, PARTITIONS)


def test_idempotent_producer_kafka_python(broker):
    topic = unique_topic("kpidem")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    values = payloads(IDEMPOTENT_MESSAGES, seed=13, max_len=300)
    sent = [(b"k%d" % (i % 50), v) for i, v in enumerate(values)]
    producer = kp_producer(broker.bootstrap, enable_idempotence=True, acks="all")
    try:
        acks = kp_produce(producer, topic, sent)
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)
    read = kp_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    assert sum(len(r) for r in read.values()) == IDEMPOTENT_MESSAGES, "duplicates or losses"
    assert_matches_acks(read, sent, acks)
    check_idempotent_batches(broker.bootstrap, topic, PARTITIONS)


# ------------------------------------------------------------------------------ auto-create

def test_auto_create_on_produce_confluent(broker):
    topic = unique_topic("auto")
    acks = ck_produce(ck_producer(broker.bootstrap), topic, [(b"k", b"first")])
    assert acks == [(0, 0)]
    assert ck_partition_count(broker.bootstrap, topic) == 1
    assert read_values(broker.bootstrap, topic) == [b"first"]


def test_auto_create_on_produce_kafka_python(broker):
    topic = unique_topic("kpauto")
    producer = kp_producer(broker.bootstrap)
    try:
        acks = kp_produce(producer, topic, [(b"k", b"first")])
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)
    assert acks == [(0, 0)]
    assert ck_partition_count(broker.bootstrap, topic) == 1
    assert [r.value for r in kp_read_all(broker.bootstrap, topic, [0])[0]] == [b"first"]
