"""Contract: KIP-320 as clients see it (issue 16), on a single broker, where every partition's
leader epoch is 0 (what Metadata reports and what produce stamps into batches).

- OffsetForLeaderEpoch (API 23) v2, v3 and v4 (raw, kafka_wire): after producing N records
  to partition 0, epoch 0 (and any later epoch: the largest epoch <= the requested one is
  answered) ends at N, the log end offset; an epoch below any in the log (-1), or any epoch
  of an empty partition, is UNDEFINED (leader epoch -1, end offset -1); an unknown topic or
  partition is UNKNOWN_TOPIC_OR_PARTITION; a current_leader_epoch of 0 or -1 (not checked)
  is accepted, 5 (newer than the partition's 0) is UNKNOWN_LEADER_EPOCH with UNDEFINED.
- Fetch v11 and ListOffsets v4 and v10 (raw): current_leader_epoch 0 or -1 is served as
  before; 5 is UNKNOWN_LEADER_EPOCH for that partition, with no records, and the fetch is
  answered at once, not at its long poll's max wait.
- Stock consumers use OffsetForLeaderEpoch once ApiVersions advertises it: a confluent-kafka
  (librdkafka) consumer assigned an offset with leader epoch 0, then seeking to one, has
  each position validated (counted in /metrics) and reads exactly the records from it; a
  kafka-python consumer resuming from an offset committed with leader epoch 0 reads exactly
  the records after it.
FENCED_LEADER_EPOCH (an older epoch) needs a partition whose epoch moved: see
test_cluster_leader_epochs.py.
"""

import time

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition

import kafka
import kafka_wire as wire
from clients import (CONSUME_TIMEOUT_S, POLL_INTERVAL_S, Deadline,
                     ck_consumer, ck_create_topic, ck_produce, ck_producer)
from harness import unique_topic
from test_java import api_requests

RECORDS = 7
LATER = 4
NEWER_EPOCH = 5  # newer than the single broker's 0
# The raw fetch asks to wait this long for bytes that never come; a refused partition must
# be answered well before.
LONG_POLL_MAX_WAIT_MS = 20_000
REFUSED_ANSWER_BOUND_S = LONG_POLL_MAX_WAIT_MS / 1000 / 2


def seeded_topic(bootstrap: str, prefix: str, partitions: int = 2) -> str:
    """A topic whose partition 0 holds RECORDS records (in more than one batch) and whose
    other partitions are empty."""
    topic = unique_topic(prefix)
    ck_create_topic(bootstrap, topic, partitions)
    producer = ck_producer(bootstrap)
    ck_produce(producer, topic, [(None, b"a-%d" % i, 0) for i in range(3)])
    ck_produce(producer, topic, [(None, b"b-%d" % i, 0) for i in range(3, RECORDS)])
    return topic


def epoch_ends(bootstrap: str, version: int, topic: str, partitions) -> dict:
    request = wire.offset_for_leader_epoch(17, version, topic, partitions)
    body = wire.roundtrip(bootstrap, request)
    assert wire.Reader(body[:4]).i32() == 17
    return {p: answer for (_, p), answer in
            wire.parse_offset_for_leader_epoch(body[4:], version).items()}


@pytest.mark.parametrize("version", [2, 3, 4])
def test_offset_for_leader_epoch_raw(broker, version):
    topic = seeded_topic(broker.bootstrap, f"ofle{version}")
    undefined = (wire.UNDEFINED_EPOCH, wire.UNDEFINED_EPOCH_OFFSET)
    answers = epoch_ends(broker.bootstrap, version, topic, [
        (0, -1, 0),           # epoch 0, current leader epoch not checked
        (1, 0, 0),            # empty partition
        (9, -1, 0),           # no such partition
    ])
    assert answers[0] == (wire.ERROR_NONE, 0, RECORDS)
    assert answers[1] == (wire.ERROR_NONE, *undefined)
    assert answers[9] == (wire.ERROR_UNKNOWN_TOPIC_OR_PARTITION, *undefined)
    # The largest epoch <= the requested one: 0 for 3; none for -1 (below any in the log).
    assert epoch_ends(broker.bootstrap, version, topic, [(0, 0, 3)]) == {
        0: (wire.ERROR_NONE, 0, RECORDS)}
    assert epoch_ends(broker.bootstrap, version, topic, [(0, 0, -1)]) == {
        0: (wire.ERROR_NONE, *undefined)}
    # A current leader epoch newer than the partition's (0) is not known here.
    assert epoch_ends(broker.bootstrap, version, topic, [(0, NEWER_EPOCH, 0)]) == {
        0: (wire.ERROR_UNKNOWN_LEADER_EPOCH, *undefined)}
    missing = wire.parse_offset_for_leader_epoch(
        wire.roundtrip(broker.bootstrap, wire.offset_for_leader_epoch(
            18, version, unique_topic("absent"), [(0, -1, 0)]))[4:], version)
    assert list(missing.values()) == [(wire.ERROR_UNKNOWN_TOPIC_OR_PARTITION, *undefined)]


def fetch_v11(bootstrap: str, topic: str, current_leader_epoch: int, offset: int = 0,
              min_bytes: int = 1):
    request = wire.fetch_v11(21, topic, 0, offset, current_leader_epoch,
                             max_wait_ms=LONG_POLL_MAX_WAIT_MS, min_bytes=min_bytes)
    started = time.monotonic()
    body = wire.roundtrip(bootstrap, request)
    elapsed = time.monotonic() - started
    assert wire.Reader(body[:4]).i32() == 21
    error, partitions = wire.parse_fetch_v11(body[4:])
    assert error == wire.ERROR_NONE
    [(partition, partition_error, high_watermark, records)] = partitions
    assert partition == 0
    return partition_error, high_watermark, records, elapsed


def test_fetch_checks_current_leader_epoch(broker):
    topic = seeded_topic(broker.bootstrap, "fetchepoch")
    for current in (-1, 0):
        error, high_watermark, records, _ = fetch_v11(broker.bootstrap, topic, current)
        assert (error, high_watermark) == (wire.ERROR_NONE, RECORDS)
        batches = wire.parse_batch_headers(records)
        assert batches and batches[0]["base_offset"] == 0
        assert {batch["leader_epoch"] for batch in batches} == {0}
    # min_bytes above what the partition holds: only the refusal may answer early.
    error, high_watermark, records, elapsed = fetch_v11(
        broker.bootstrap, topic, NEWER_EPOCH, min_bytes=1 << 30)
    assert error == wire.ERROR_UNKNOWN_LEADER_EPOCH
    assert (high_watermark, records) == (-1, b"")
    assert elapsed < REFUSED_ANSWER_BOUND_S, f"refused fetch answered after {elapsed:.1f}s"


@pytest.mark.parametrize("version", [4, 10])
def test_list_offsets_checks_current_leader_epoch(broker, version):
    topic = seeded_topic(broker.bootstrap, f"loepoch{version}")

    def latest(current):
        request = wire.list_offsets(23, version, topic, 0, -1, current_leader_epoch=current)
        body = wire.roundtrip(broker.bootstrap, request)
        assert wire.Reader(body[:4]).i32() == 23
        return wire.parse_list_offsets(body[4:], version)[(topic, 0)]

    assert latest(-1) == (wire.ERROR_NONE, -1, RECORDS)
    assert latest(0) == (wire.ERROR_NONE, -1, RECORDS)
    assert latest(NEWER_EPOCH) == (wire.ERROR_UNKNOWN_LEADER_EPOCH, -1, -1)


def produce_later(bootstrap: str, topic: str):
    ck_produce(ck_producer(bootstrap),
               topic, [(None, b"c-%d" % i, 0) for i in range(RECORDS, RECORDS + LATER)])


def later_values():
    return [b"c-%d" % i for i in range(RECORDS, RECORDS + LATER)]


def ck_consume(consumer, count: int, what: str) -> list[tuple[int, bytes, int]]:
    got = []
    deadline = Deadline(CONSUME_TIMEOUT_S, what)
    while len(got) < count:
        deadline.check(f"got {len(got)}")
        for message in consumer.consume(num_messages=100, timeout=POLL_INTERVAL_S):
            if message.error():
                raise confluent_kafka.KafkaException(message.error())
            got.append((message.offset(), message.value(), message.leader_epoch()))
    return got


def test_confluent_consumer_validates_positions(broker):
    """librdkafka validates a position that carries a leader epoch (an assignment or a seek
    with one) with OffsetForLeaderEpoch before fetching from it."""
    topic = seeded_topic(broker.bootstrap, "ckvalidate", partitions=1)
    produce_later(broker.bootstrap, topic)
    asked_before = api_requests(broker, "OffsetForLeaderEpoch")
    consumer = ck_consumer(broker.bootstrap)
    try:
        consumer.assign([TopicPartition(topic, 0, RECORDS, leader_epoch=0)])
        got = ck_consume(consumer, LATER, "confluent consume from an offset with its epoch")
        assert [(o, v) for o, v, _ in got] == list(zip(range(RECORDS, RECORDS + LATER),
                                                       later_values()))
        assert {epoch for _, _, epoch in got} == {0}
        consumer.seek(TopicPartition(topic, 0, 1, leader_epoch=0))
        got = ck_consume(consumer, RECORDS + LATER - 1, "confluent consume after a seek")
        assert [o for o, _, _ in got] == list(range(1, RECORDS + LATER))
    finally:
        consumer.close()
    assert api_requests(broker, "OffsetForLeaderEpoch") >= asked_before + 2, (
        "librdkafka did not validate its positions with OffsetForLeaderEpoch")


def test_kafka_python_consumer_resumes_from_committed_position(broker):
    topic = seeded_topic(broker.bootstrap, "kpvalidate", partitions=1)
    group = unique_topic("kpgroup")
    tp = kafka.TopicPartition(topic, 0)
    committer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group,
                                    enable_auto_commit=False)
    try:
        committer.assign([tp])
        committer.commit({tp: kafka.OffsetAndMetadata(RECORDS, "", 0)})
    finally:
        committer.close()
    produce_later(broker.bootstrap, topic)
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group,
                                   enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        consumer.assign([tp])
        got = []
        deadline = Deadline(CONSUME_TIMEOUT_S, "kafka-python consume from a committed offset")
        while len(got) < LATER:
            deadline.check(f"got {len(got)}")
            for messages in consumer.poll(timeout_ms=500).values():
                got += [(m.offset, m.value) for m in messages]
    finally:
        consumer.close()
    assert got == list(zip(range(RECORDS, RECORDS + LATER), later_values()))
