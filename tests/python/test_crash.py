"""Contract: no acknowledged write is lost when the broker is killed.

A producer with acks=all writes continuously to a 3-partition topic; the broker is killed with
SIGKILL mid-stream (requests in flight) and restarted on the same data dir and port; the same
producer carries on (its in-flight records are retried) and writes more. Then:
- the topic still exists with 3 partitions;
- every acknowledged record (before and after the crash) is readable at exactly the
  acknowledged (partition, offset), byte-exact; offsets are contiguous from 0 in each partition
  (a torn tail was truncated, not skipped or served); acked records appear in produce order;
- every stored batch has a valid CRC-32C (checked on the raw fetched batches).
Records that were never acknowledged may or may not be present.
Also: kill -9 while idle and a graceful restart keep everything, and new writes continue at
the old log end (offsets are never reused).
Checked with confluent-kafka (librdkafka) and kafka-python.
"""

import threading
import time

import pytest

import kafka_wire as wire
from clients import (BULK_CONSUME_TIMEOUT_S, KP_CLOSE_TIMEOUT_S, PRODUCE_TIMEOUT_S,
                     CkAckedStream, assert_matches_acks, ck_create_topic, ck_partition_count,
                     ck_produce, ck_producer, ck_read_all, ck_watermarks, kp_producer,
                     kp_read_all, payloads)
from harness import unique_topic

PARTITIONS = 3
KILL_AFTER_ACKS = 5000    # kill once this many records are acknowledged
AFTER_RESTART = 2000      # records produced after the restart
CRASH_PRODUCE_TIMEOUT_S = 120.0  # producer retries span the restart


def value_for(i: int, pool: list[bytes]) -> bytes:
    return b"seq-%08d:" % i + pool[i % len(pool)]


def check_after_crash(broker, topic, sent, acks, reader):
    assert ck_partition_count(broker.bootstrap, topic) == PARTITIONS
    read = reader(broker.bootstrap, topic, list(range(PARTITIONS)), BULK_CONSUME_TIMEOUT_S)
    acked = [(m, a) for m, a in zip(sent, acks) if a is not None]
    assert len(acked) >= KILL_AFTER_ACKS + AFTER_RESTART
    assert_matches_acks(read, [m for m, _ in acked], [a for _, a in acked])
    for p in range(PARTITIONS):
        _, high = ck_watermarks(broker.bootstrap, topic, p)
        assert high == len(read[p])
        wire.fetch_batch_headers(broker.bootstrap, topic, p, high)  # asserts magic + CRC


@pytest.mark.slow
def test_kill9_mid_stream_confluent(broker):
    topic = unique_topic("crash")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    pool = payloads(997, seed=21, max_len=500)
    producer = ck_producer(broker.bootstrap, acks="all", **{
        "linger.ms": 2, "message.timeout.ms": int(CRASH_PRODUCE_TIMEOUT_S * 1000),
        "max.in.flight.requests.per.connection": 5})
    stream = CkAckedStream(producer, topic, PARTITIONS)

    def produce_one(i):
        stream.produce(value_for(i, pool))

    i = 0
    deadline = time.monotonic() + PRODUCE_TIMEOUT_S
    while stream.acked_count() < KILL_AFTER_ACKS:
        assert time.monotonic() < deadline, "producer made no progress before the kill"
        produce_one(i)
        i += 1
    broker.kill9()
    for _ in range(200):  # keep writing into the dead broker: these must be retried
        produce_one(i)
        i += 1
    broker.start()
    for _ in range(AFTER_RESTART):
        produce_one(i)
        i += 1
    assert producer.flush(CRASH_PRODUCE_TIMEOUT_S) == 0
    check_after_crash(broker, topic, stream.sent, stream.acks, ck_read_all)


@pytest.mark.slow
def test_kill9_mid_stream_kafka_python(broker):
    topic = unique_topic("kpcrash")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    pool = payloads(997, seed=22, max_len=500)
    producer = kp_producer(broker.bootstrap, acks="all", linger_ms=2,
                           max_in_flight_requests_per_connection=1,
                           delivery_timeout_ms=int(CRASH_PRODUCE_TIMEOUT_S * 1000),
                           request_timeout_ms=20000, reconnect_backoff_max_ms=1000)
    sent, acks = [], []
    acked_count = [0]
    lock = threading.Lock()

    def on_success(index):
        def cb(md):
            with lock:
                acks[index] = (md.partition, md.offset)
                acked_count[0] += 1
        return cb

    def produce_one(i):
        with lock:
            sent.append((None, value_for(i, pool), i % PARTITIONS))
            acks.append(None)
        producer.send(topic, value=sent[i][1], partition=i % PARTITIONS).add_callback(
            on_success(i))

    try:
        i = 0
        deadline = time.monotonic() + PRODUCE_TIMEOUT_S
        while acked_count[0] < KILL_AFTER_ACKS:
            assert time.monotonic() < deadline, "producer made no progress before the kill"
            produce_one(i)
            i += 1
            if i - acked_count[0] > 2000:  # bound what is outstanding
                time.sleep(0.01)
        broker.kill9()
        for _ in range(200):
            produce_one(i)
            i += 1
        broker.start()
        for _ in range(AFTER_RESTART):
            produce_one(i)
            i += 1
        producer.flush(timeout=CRASH_PRODUCE_TIMEOUT_S)
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)
    check_after_crash(broker, topic, sent, acks, kp_read_all)


@pytest.mark.parametrize("kill9", [True, False], ids=["kill9-idle", "graceful"])
def test_restart_keeps_data_and_continues_offsets(broker, kill9):
    topic = unique_topic("restart")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    before = [(b"k%d" % i, b"before-%d" % i, i % PARTITIONS) for i in range(300)]
    acks_before = ck_produce(ck_producer(broker.bootstrap), topic, before)
    broker.restart(kill9=kill9)
    assert ck_partition_count(broker.bootstrap, topic) == PARTITIONS
    after = [(b"k%d" % i, b"after-%d" % i, i % PARTITIONS) for i in range(300)]
    acks_after = ck_produce(ck_producer(broker.bootstrap), topic, after)
    assert [off for _, off in acks_after] == [100 + i // PARTITIONS for i in range(300)]
    read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    assert_matches_acks(read, before + after, acks_before + acks_after)
    assert sum(len(r) for r in read.values()) == 600
