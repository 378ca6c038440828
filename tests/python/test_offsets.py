"""Contract: offsets and positions as Kafka defines them.

- ListOffsets earliest/latest: a partition holding N records reports (0, N).
- Consuming from earliest returns offsets 0..N-1; consuming from latest returns only records
  produced after the position was resolved, starting at offset N.
- ListOffsets by timestamp (`offsets_for_times`) returns the first offset whose record
  timestamp is >= the target, exactly, also inside a batch and across batches; a target after
  the last record gives "no offset" (-1); record timestamps (CreateTime) come back as sent.
- Long-poll fetch: a consumer whose fetch is parked on an empty partition (fetch.min.bytes=1,
  max wait LONG_POLL_MAX_WAIT_MS) receives a record produced meanwhile before that max wait
  could have expired, i.e. the append woke the fetch. Also a raw Fetch with a short max wait on
  an empty partition is answered (empty) rather than left hanging.
Checked with confluent-kafka (librdkafka) and kafka-python; the raw Fetch with kafka_wire.
"""

import threading
import time

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition

import kafka
import kafka_wire as wire
from clients import (CONSUME_TIMEOUT_S, KP_CLOSE_TIMEOUT_S, METADATA_TIMEOUT_S, Deadline,
                     ck_consumer, ck_create_topic, ck_produce, ck_producer, ck_read_all,
                     ck_watermarks, kp_consumer, kp_produce, kp_producer)
from harness import unique_topic

OLD = 10  # records present before a "latest" consumer starts
NEW = 5
# Long poll: the fetch may wait this long on the broker; the record must arrive well before.
LONG_POLL_MAX_WAIT_MS = 40_000
LONG_POLL_ARRIVAL_DEADLINE_S = 20.0
LONG_POLL_PARK_S = 2.0  # let the consumer's first fetch reach the broker and park
SHORT_FETCH_MAX_WAIT_MS = 300
TS_BASE_MS = (int(time.time()) - 3600) * 1000  # an hour ago: inside any timestamp bound
TS_STEP_MS = 1000
TS_RECORDS = 10


def seed_partition(bootstrap, topic, count, start=0, partition=0):
    msgs = [(None, b"m-%d" % i, partition) for i in range(start, start + count)]
    return ck_produce(ck_producer(bootstrap), topic, msgs)


# ---------------------------------------------------------------------------------- earliest

def test_watermarks_and_earliest_confluent(broker):
    topic = unique_topic("earliest")
    ck_create_topic(broker.bootstrap, topic, 1)
    seed_partition(broker.bootstrap, topic, OLD)
    assert ck_watermarks(broker.bootstrap, topic, 0) == (0, OLD)
    read = ck_read_all(broker.bootstrap, topic, [0])
    assert [(r.offset, r.value) for r in read[0]] == [(i, b"m-%d" % i) for i in range(OLD)]


def test_watermarks_and_earliest_kafka_python(broker):
    topic = unique_topic("kpearliest")
    ck_create_topic(broker.bootstrap, topic, 1)
    seed_partition(broker.bootstrap, topic, OLD)
    tp = kafka.TopicPartition(topic, 0)
    c = kp_consumer(broker.bootstrap, auto_offset_reset="earliest")
    try:
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: OLD}
        c.assign([tp])
        assert c.position(tp) == 0
        got = []
        deadline = Deadline(CONSUME_TIMEOUT_S, "kafka-python earliest")
        while len(got) < OLD:
            deadline.check(f"got {len(got)}")
            for msgs in c.poll(timeout_ms=500).values():
                got += [(m.offset, m.value) for m in msgs]
        assert got == [(i, b"m-%d" % i) for i in range(OLD)]
    finally:
        c.close()


# ------------------------------------------------------------------------------------ latest

def test_consume_from_latest_confluent(broker):
    """librdkafka resolves OFFSET_END asynchronously, so new records are produced one at a time
    while polling; whatever arrives must be new (offset >= OLD) and exactly what was acked."""
    topic = unique_topic("latest")
    ck_create_topic(broker.bootstrap, topic, 1)
    seed_partition(broker.bootstrap, topic, OLD)
    producer = ck_producer(broker.bootstrap)
    c = ck_consumer(broker.bootstrap, **{"auto.offset.reset": "latest"})
    acked: dict[int, bytes] = {}
    got = []
    try:
        c.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_END)])
        deadline = Deadline(CONSUME_TIMEOUT_S, "confluent latest")
        i = 0
        while len(got) < NEW:
            deadline.check(f"got {got}")
            value = b"new-%d" % i
            ((_, offset),) = ck_produce(producer, topic, [(None, value, 0)])
            acked[offset] = value
            i += 1
            for msg in c.consume(num_messages=100, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append((msg.offset(), msg.value()))
    finally:
        c.close()
    assert all(off >= OLD for off, _ in got), f"an old record was delivered: {got}"
    assert [acked[off] for off, _ in got] == [v for _, v in got]
    offsets = [off for off, _ in got]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))


def test_consume_from_latest_kafka_python(broker):
    topic = unique_topic("kplatest")
    ck_create_topic(broker.bootstrap, topic, 1)
    seed_partition(broker.bootstrap, topic, OLD)
    tp = kafka.TopicPartition(topic, 0)
    c = kp_consumer(broker.bootstrap, auto_offset_reset="latest")
    try:
        c.assign([tp])
        assert c.position(tp) == OLD  # resolved through ListOffsets(latest)
        seed_partition(broker.bootstrap, topic, NEW, start=OLD)
        got = []
        deadline = Deadline(CONSUME_TIMEOUT_S, "kafka-python latest")
        while len(got) < NEW:
            deadline.check(f"got {got}")
            for msgs in c.poll(timeout_ms=500).values():
                got += [(m.offset, m.value) for m in msgs]
        assert got == [(i, b"m-%d" % i) for i in range(OLD, OLD + NEW)]
    finally:
        c.close()


# ------------------------------------------------------------------------------ by timestamp

def produce_timestamped(bootstrap, topic):
    """Two produce calls (so at least two batches): records 0-4 and 5-9, timestamp
    TS_BASE_MS + i * TS_STEP_MS."""
    producer = ck_producer(bootstrap)
    acks = []
    for chunk in (range(0, 5), range(5, TS_RECORDS)):
        acks += ck_produce(producer, topic,
                           [(None, b"ts-%d" % i, 0, TS_BASE_MS + i * TS_STEP_MS) for i in chunk])
    assert [off for _, off in acks] == list(range(TS_RECORDS))


# target timestamp -> expected offset (-1: no record at or after the target)
TIMESTAMP_CASES = {
    TS_BASE_MS - 50_000: 0,
    TS_BASE_MS: 0,
    TS_BASE_MS + 1: 1,
    TS_BASE_MS + 3 * TS_STEP_MS + 500: 4,   # inside the first batch
    TS_BASE_MS + 4 * TS_STEP_MS + 1: 5,     # first record of the second batch
    TS_BASE_MS + 7 * TS_STEP_MS: 7,         # exact hit inside the second batch
    TS_BASE_MS + 9 * TS_STEP_MS: 9,
    TS_BASE_MS + 9 * TS_STEP_MS + 1: -1,
}


def test_offsets_for_times_confluent(broker):
    topic = unique_topic("ts")
    ck_create_topic(broker.bootstrap, topic, 1)
    produce_timestamped(broker.bootstrap, topic)
    c = ck_consumer(broker.bootstrap)
    try:
        for target, expected in TIMESTAMP_CASES.items():
            (tp,) = c.offsets_for_times([TopicPartition(topic, 0, target)],
                                        timeout=METADATA_TIMEOUT_S)
            assert tp.error is None, tp.error
            assert tp.offset == expected, f"target {target - TS_BASE_MS:+} ms: {tp.offset}"
    finally:
        c.close()
    read = ck_read_all(broker.bootstrap, topic, [0])
    assert [r.timestamp_ms for r in read[0]] == [
        TS_BASE_MS + i * TS_STEP_MS for i in range(TS_RECORDS)]


def test_offsets_for_times_kafka_python(broker):
    topic = unique_topic("kpts")
    ck_create_topic(broker.bootstrap, topic, 1)
    produce_timestamped(broker.bootstrap, topic)
    tp = kafka.TopicPartition(topic, 0)
    c = kp_consumer(broker.bootstrap)
    try:
        for target, expected in TIMESTAMP_CASES.items():
            found = c.offsets_for_times({tp: target})[tp]
            if expected == -1:
                assert found is None, f"target after the last record: {found}"
            else:
                assert found is not None, f"target {target - TS_BASE_MS:+} ms: no offset"
                assert found.offset == expected, f"target {target - TS_BASE_MS:+} ms: {found}"
                assert found.timestamp == TS_BASE_MS + expected * TS_STEP_MS
    finally:
        c.close()


# --------------------------------------------------------------------------------- long poll

def produce_later(bootstrap, topic, value, delay_s, errors):
    def run():
        try:
            time.sleep(delay_s)
            p = kp_producer(bootstrap)
            kp_produce(p, topic, [(None, value, 0)])
            p.close(timeout=KP_CLOSE_TIMEOUT_S)
        except Exception as e:  # surfaced by the test thread
            errors.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_long_poll_woken_by_append_confluent(broker):
    topic = unique_topic("lp")
    ck_create_topic(broker.bootstrap, topic, 1)
    c = ck_consumer(broker.bootstrap, **{"fetch.wait.max.ms": LONG_POLL_MAX_WAIT_MS,
                                         "fetch.min.bytes": 1,
                                         "socket.timeout.ms": 2 * LONG_POLL_MAX_WAIT_MS})
    errors = []
    try:
        c.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        park_end = time.monotonic() + LONG_POLL_PARK_S
        while time.monotonic() < park_end:
            assert c.poll(0.2) is None, "a record appeared on an empty topic"
        writer = produce_later(broker.bootstrap, topic, b"wake-up", 0.0, errors)
        deadline = Deadline(LONG_POLL_ARRIVAL_DEADLINE_S, "long-poll wake-up (confluent)")
        msg = None
        while msg is None:
            deadline.check("record not delivered: the append did not wake the parked fetch")
            msg = c.poll(0.5)
        writer.join(timeout=LONG_POLL_ARRIVAL_DEADLINE_S)
        assert not errors, errors
        assert msg.error() is None, msg.error()
        assert (msg.offset(), msg.value()) == (0, b"wake-up")
    finally:
        c.close()


def test_long_poll_woken_by_append_kafka_python(broker):
    topic = unique_topic("kplp")
    ck_create_topic(broker.bootstrap, topic, 1)
    tp = kafka.TopicPartition(topic, 0)
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=LONG_POLL_MAX_WAIT_MS, fetch_min_bytes=1,
                    request_timeout_ms=2 * LONG_POLL_MAX_WAIT_MS)
    errors = []
    try:
        c.assign([tp])
        assert c.position(tp) == 0
        park_end = time.monotonic() + LONG_POLL_PARK_S
        while time.monotonic() < park_end:
            assert not c.poll(timeout_ms=200), "a record appeared on an empty topic"
        writer = produce_later(broker.bootstrap, topic, b"wake-up", 0.0, errors)
        deadline = Deadline(LONG_POLL_ARRIVAL_DEADLINE_S, "long-poll wake-up (kafka-python)")
        got = []
        while not got:
            deadline.check("record not delivered: the append did not wake the parked fetch")
            for msgs in c.poll(timeout_ms=500).values():
                got += [(m.offset, m.value) for m in msgs]
        writer.join(timeout=LONG_POLL_ARRIVAL_DEADLINE_S)
        assert not errors, errors
        assert got == [(0, b"wake-up")]
    finally:
        c.close()


@pytest.mark.parametrize("offset", [0, 1000])
def test_raw_fetch_on_empty_partition_is_answered(broker, offset):
    """Fetch must always answer by max.wait (design §7): at the log end (offset 0) with an
    empty record set and high watermark 0, past it (offset 1000) with OFFSET_OUT_OF_RANGE (1)
    (Kafka then reports high watermark -1, so it is not checked)."""
    topic = unique_topic("rawfetch")
    ck_create_topic(broker.bootstrap, topic, 1)
    with wire.connect(broker.bootstrap) as sock:
        for correlation_id in (101, 102):  # twice: the connection stays usable
            sock.sendall(wire.fetch_v4(correlation_id, topic, 0, offset, SHORT_FETCH_MAX_WAIT_MS))
            body = wire.recv_frame(sock)
            assert wire.Reader(body).i32() == correlation_id
            parts = wire.parse_fetch_v4(body[4:])
            error, hw, records = parts[(topic, 0)]
            assert error == (0 if offset == 0 else 1)
            assert records == b""
            if offset == 0:
                assert hw == 0
