"""Thin, explicit helpers over the two Python clients, so tests read as contracts.

confluent-kafka = librdkafka 2.x (C). kafka-python = an independent pure-Python implementation
of the protocol. Every helper takes a deadline from a named constant and raises on expiry: a
helper never returns a partial result silently.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka

# Named timeouts (seconds): bounds on hangs, never performance assertions.
ADMIN_TIMEOUT_S = 30.0
METADATA_TIMEOUT_S = 15.0
PRODUCE_TIMEOUT_S = 60.0
BULK_PRODUCE_TIMEOUT_S = 300.0
CONSUME_TIMEOUT_S = 60.0
BULK_CONSUME_TIMEOUT_S = 300.0
POLL_INTERVAL_S = 0.5
# kafka-python's close() flushes without a bound unless given one.
KP_CLOSE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


class Deadline:
    def __init__(self, seconds: float, what: str):
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.what = what

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def check(self, detail: str = "") -> None:
        if self.expired():
            raise TimeoutError(f"{self.what}: not done within {self.seconds}s {detail}")

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


# ---------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka)

def ck_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def ck_create_topic(bootstrap: str, topic: str, partitions: int, **kw) -> None:
    admin = ck_admin(bootstrap)  # must outlive its futures, or they fail with _DESTROY
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S, **kw)
    futures[topic].result(timeout=ADMIN_TIMEOUT_S)


def ck_partition_count(bootstrap: str, topic: str) -> int | None:
    md = ck_admin(bootstrap).list_topics(topic=topic, timeout=METADATA_TIMEOUT_S)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def ck_producer(bootstrap: str, **conf) -> Producer:
    base = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": int(PRODUCE_TIMEOUT_S * 1000)}
    base.update(conf)
    return Producer(base)


def ck_produce(producer: Producer, topic: str, messages, timeout_s: float = PRODUCE_TIMEOUT_S,
               check_errors: bool = True) -> list[tuple[int, int]]:
    """Produce (key, value[, partition[, timestamp_ms]]) tuples; return (partition, offset)
    per message, in input order, from the delivery reports."""
    results: list = [None] * len(messages)

    def on_delivery(index):
        def cb(err, msg):
            results[index] = (err, msg.partition(), msg.offset())
        return cb

    for i, m in enumerate(messages):
        key, value = m[0], m[1]
        kw = {}
        if len(m) > 2 and m[2] is not None:
            kw["partition"] = m[2]
        if len(m) > 3 and m[3] is not None:
            kw["timestamp"] = m[3]
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery(i), **kw)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout_s}s"
    missing = [i for i, r in enumerate(results) if r is None]
    assert not missing, f"no delivery report for {len(missing)} messages"
    if check_errors:
        errors = [(i, r[0]) for i, r in enumerate(results) if r[0] is not None]
        assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    return [(r[1], r[2]) for r in results]


class CkAckedStream:
    """A confluent-kafka producer writing value i to partition i % partitions, one record at a
    time, remembering what was sent and what each delivery report acknowledged: for tests that
    crash or stop the broker mid-stream and then check every acknowledged record."""

    def __init__(self, producer: Producer, topic: str, partitions: int):
        self.producer, self.topic, self.partitions = producer, topic, partitions
        self.sent: list[tuple] = []        # (key, value, partition), as assert_matches_acks
        self.acks: list[tuple | None] = []  # (partition, offset) once acknowledged

    def _on_delivery(self, index: int):
        def cb(err, msg):
            if err is None:
                self.acks[index] = (msg.partition(), msg.offset())
        return cb

    def produce(self, value: bytes) -> None:
        index = len(self.sent)
        partition = index % self.partitions
        self.sent.append((None, value, partition))
        self.acks.append(None)
        while True:
            try:
                self.producer.produce(self.topic, value=value, partition=partition,
                                      on_delivery=self._on_delivery(index))
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self.producer.poll(0.05)
        self.producer.poll(0)

    def acked_count(self) -> int:
        return sum(a is not None for a in self.acks)

    def acked(self) -> tuple[list[tuple], list[tuple]]:
        """(sent records, their acks) for the acknowledged ones, in produce order."""
        pairs = [(m, a) for m, a in zip(self.sent, self.acks) if a is not None]
        return [m for m, _ in pairs], [a for _, a in pairs]


def ck_consumer(bootstrap: str, **conf) -> Consumer:
    # confluent-kafka refuses to build a Consumer without group.id; the tests use assign()
    # only, and never commit.
    base = {"bootstrap.servers": bootstrap, "group.id": f"assign-only-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False}
    base.update(conf)
    return Consumer(base)


def ck_watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    c = ck_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition),
                                       timeout=METADATA_TIMEOUT_S, cached=False)
    finally:
        c.close()


def ck_read_all(bootstrap: str, topic: str, partitions: list[int],
                timeout_s: float = CONSUME_TIMEOUT_S, **conf) -> dict[int, list[Record]]:
    """Read every partition from offset 0 up to its current high watermark."""
    c = ck_consumer(bootstrap, **conf)
    try:
        ends = {}
        for p in partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p),
                                                timeout=METADATA_TIMEOUT_S, cached=False)
            ends[p] = high
        out: dict[int, list[Record]] = {p: [] for p in partitions}
        todo = {p for p in partitions if ends[p] > 0}
        c.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in todo])
        deadline = Deadline(timeout_s, f"confluent read of {topic} up to {ends}")
        while todo:
            deadline.check(f"(still waiting on partitions {sorted(todo)}, "
                           f"got {[len(out[p]) for p in partitions]})")
            for msg in c.consume(num_messages=10000, timeout=POLL_INTERVAL_S):
                if msg.error():
                    raise KafkaException(msg.error())
                p = msg.partition()
                ts_type, ts = msg.timestamp()
                out[p].append(Record(p, msg.offset(), msg.key(), msg.value(), ts))
                if msg.offset() >= ends[p] - 1:
                    todo.discard(p)
        return out
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# kafka-python (independent implementation)

def kp_admin(bootstrap: str) -> kafka.KafkaAdminClient:
    return kafka.KafkaAdminClient(bootstrap_servers=bootstrap,
                                  request_timeout_ms=int(ADMIN_TIMEOUT_S * 1000))


def kp_producer(bootstrap: str, **conf) -> kafka.KafkaProducer:
    base = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                request_timeout_ms=30000)
    base.update(conf)
    return kafka.KafkaProducer(**base)


def kp_produce(producer: kafka.KafkaProducer, topic: str, messages,
               timeout_s: float = PRODUCE_TIMEOUT_S) -> list[tuple[int, int]]:
    """Produce (key, value[, partition[, timestamp_ms]]); return (partition, offset) each."""
    futures = []
    for m in messages:
        kw = {}
        if len(m) > 2 and m[2] is not None:
            kw["partition"] = m[2]
        if len(m) > 3 and m[3] is not None:
            kw["timestamp_ms"] = m[3]
        futures.append(producer.send(topic, key=m[0], value=m[1], **kw))
    producer.flush(timeout=timeout_s)
    deadline = Deadline(timeout_s, "kafka-python delivery")
    out = []
    for f in futures:
        md = f.get(timeout=max(1.0, deadline.remaining()))
        out.append((md.partition, md.offset))
    return out


def kp_consumer(bootstrap: str, **conf) -> kafka.KafkaConsumer:
    base = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", request_timeout_ms=60000)
    base.update(conf)
    return kafka.KafkaConsumer(**base)


def kp_read_all(bootstrap: str, topic: str, partitions: list[int],
                timeout_s: float = CONSUME_TIMEOUT_S, **conf) -> dict[int, list[Record]]:
    c = kp_consumer(bootstrap, **conf)
    try:
        tps = [kafka.TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        ends = c.end_offsets(tps)
        c.seek_to_beginning(*tps)
        out: dict[int, list[Record]] = {p: [] for p in partitions}
        todo = {tp for tp in tps if ends[tp] > 0}
        deadline = Deadline(timeout_s, f"kafka-python read of {topic} up to {ends}")
        while todo:
            deadline.check(f"(got {[len(out[p]) for p in partitions]})")
            batches = c.poll(timeout_ms=int(POLL_INTERVAL_S * 1000), max_records=10000)
            for tp, msgs in batches.items():
                for msg in msgs:
                    out[tp.partition].append(
                        Record(tp.partition, msg.offset, msg.key, msg.value, msg.timestamp))
                    if msg.offset >= ends[tp] - 1:
                        todo.discard(tp)
        return out
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Assertions shared by both clients

def assert_matches_acks(read: dict[int, list[Record]], sent: list[tuple], acks: list[tuple]):
    """Every acknowledged message is at its acked (partition, offset), byte-exact; offsets in
    each partition are contiguous from 0; per partition, produce order == offset order."""
    by_pos = {}
    for (key, value, *_), (p, off) in zip(sent, acks):
        assert off >= 0, f"delivery report without an offset: partition {p} offset {off}"
        assert (p, off) not in by_pos, (
            f"two messages acked at partition {p} offset {off} (an offset was reused: the log "
            f"lost its tail, e.g. across a restart)")
        by_pos[(p, off)] = (key, value)
    for p, records in read.items():
        offsets = [r.offset for r in records]
        assert offsets == list(range(len(records))), (
            f"partition {p}: offsets not contiguous from 0: first gap near "
            f"{next((i, o) for i, o in enumerate(offsets) if o != i)}")
        for r in records:
            if (p, r.offset) in by_pos:
                key, value = by_pos[(p, r.offset)]
                assert r.value == value, f"partition {p} offset {r.offset}: value differs"
                assert r.key == key, f"partition {p} offset {r.offset}: key differs"
    got = {(p, r.offset) for p, recs in read.items() for r in recs}
    lost = sorted(set(by_pos) - got)
    assert not lost, f"{len(lost)} acknowledged messages not readable, first {lost[:5]}"
    # Produce order per partition == offset order.
    per_partition: dict[int, list[int]] = {}
    for p, off in acks:
        per_partition.setdefault(p, []).append(off)
    for p, offs in per_partition.items():
        assert offs == sorted(offs), f"partition {p}: acked offsets not in produce order"


def payloads(n: int, seed: int, max_len: int = 1000) -> list[bytes]:
    """Deterministic, varied values: random bytes, repeated text, empty, and NUL-heavy."""
    import random
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 4
        length = rng.randint(0, max_len)
        if kind == 0:
            out.append(rng.randbytes(length))
        elif kind == 1:
            out.append((f"msg-{i}-" * (length // 8 + 1)).encode()[:length])
        elif kind == 2:
            out.append(b"\x00" * length)
        else:
            out.append(i.to_bytes(8, "big") + rng.randbytes(length // 4))
    return out

