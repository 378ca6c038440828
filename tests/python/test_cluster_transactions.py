"""Contract: transaction markers reach partitions led by other brokers (WriteTxnMarkers).

Three shardlog processes (--shards 1, a controller each), an RF=3 topic whose partitions are
led by different brokers. The transaction coordinator of a transactional id is the leader of
its `__transaction_state` partition (FindCoordinator). So:
  (a) a transaction over partitions led by nodes 1, 2 and 3 commits (EndTxn answers NONE,
      raw protocol against the coordinator), and every partition's leader then holds a COMMIT
      control batch of that producer below its high watermark (the marker was replicated
      before the coordinator was told it was written); an aborted one gets ABORT batches;
  (b) WriteTxnMarkers sent straight to a broker answers NOT_LEADER_OR_FOLLOWER for a
      partition it follows, UNKNOWN_TOPIC_OR_PARTITION for an unknown topic, and NONE for a
      partition it leads (the marker then sits below that partition's high watermark);
  (c) a stock transactional producer writing to partitions led by every broker and a
      read_committed consumer: the partition leaders verify transactional produce with the
      id's coordinator on another broker (KIP-890 part 1, AddPartitionsToTxn v4) and the
      consumer sees the committed records only.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import struct
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
import pytest

import kafka_wire as w
from harness import unique_topic
from test_cluster import agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_cluster_topics import create_topic, same_everywhere
from test_txn_coordinator_failover import find_txn_coordinator

pytestmark = pytest.mark.cluster

API_INIT_PRODUCER_ID = 22
API_ADD_PARTITIONS_TO_TXN = 24
API_END_TXN = 26
API_WRITE_TXN_MARKERS = 27
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
PARTITIONS = 6
CONTROL_ATTRIBUTE = 0x20
BATCH_HEADER_BYTES = 61  # a v2 batch's header, base offset to record count
# Errors a transactional call is retried on while the cluster settles.
RETRIABLE = {14, 15, 51}  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, CONCURRENT


def spread_topic(cluster) -> tuple[str, dict[int, int]]:
    """An RF=3 topic with a partition led by each of the three nodes: (name, {partition:
    leader}) once every node reports the same layout."""
    wait_for("3 brokers", lambda: agreed_view(cluster.live(), {1, 2, 3}))
    topic = unique_topic("txn-spread")
    create_topic(cluster.nodes[1].bootstrap, topic, PARTITIONS, 3)
    layout = wait_for("the topic's layout agreed with full ISRs", lambda: (
        (lambda l: l if l and all(len(isr) == 3 for _, _, isr in l.values()) else None)(
            same_everywhere(cluster.live(), topic, PARTITIONS))))
    leaders = {p: leader for p, (leader, _replicas, _isr) in layout.items()}
    assert set(leaders.values()) == {1, 2, 3}, f"leaders not spread: {leaders}"
    return topic, leaders


def call(bootstrap: str, api: int, version: int, body: bytes, correlation_id: int) -> w.Reader:
    answer = w.roundtrip(bootstrap, w.frame(w.header_v1(api, version, correlation_id) + body))
    r = w.Reader(answer)
    assert r.i32() == correlation_id
    return r


def init_producer_id(bootstrap: str, transactional_id: str) -> tuple[int, int]:
    def attempt():
        r = call(bootstrap, API_INIT_PRODUCER_ID, 1,
                 w.string(transactional_id) + w.i32(60_000), 31)
        r.i32()  # throttle
        error, producer_id, epoch = r.i16(), r.i64(), r.i16()
        if error in RETRIABLE:
            return None
        assert error == NONE, f"InitProducerId error {error}"
        return producer_id, epoch
    return wait_for("InitProducerId", attempt)


def add_partitions(bootstrap: str, transactional_id: str, producer_id: int, epoch: int,
                   topic: str, partitions: list[int]):
    def attempt():
        body = (w.string(transactional_id) + w.i64(producer_id) + w.i16(epoch) + w.i32(1)
                + w.string(topic) + w.i32(len(partitions))
                + b"".join(w.i32(p) for p in partitions))
        r = call(bootstrap, API_ADD_PARTITIONS_TO_TXN, 1, body, 32)
        r.i32()  # throttle
        errors = []
        for _ in range(r.i32()):
            r.string()
            for _ in range(r.i32()):
                r.i32()
                errors.append(r.i16())
        # UNKNOWN_TOPIC_OR_PARTITION: the coordinator's catalog copy of a topic the
        # metadata log already has may lag a moment (clients retry it too).
        if set(errors) & (RETRIABLE | {UNKNOWN_TOPIC_OR_PARTITION}):
            return None
        assert set(errors) == {NONE}, f"AddPartitionsToTxn errors {errors}"
        return True
    wait_for("AddPartitionsToTxn", attempt)


def end_txn(bootstrap: str, transactional_id: str, producer_id: int, epoch: int,
            commit: bool) -> int:
    """EndTxn v1 until it answers something other than a retriable error; that error."""
    def attempt():
        body = w.string(transactional_id) + w.i64(producer_id) + w.i16(epoch) + w.i8(commit)
        r = call(bootstrap, API_END_TXN, 1, body, 33)
        r.i32()  # throttle
        error = r.i16()
        return None if error in RETRIABLE else (error,)
    return wait_for("EndTxn answered", attempt, timeout_s=60)[0]


def control_batches(bootstrap: str, topic: str, partition: int) -> tuple[list[dict], int]:
    """The control batches of a partition below its high watermark (raw Fetch v4 from its
    leader, which serves up to the high watermark only), and the high watermark."""
    answer = w.roundtrip(bootstrap, w.fetch_v4(41, topic, partition, 0, 0))
    assert w.Reader(answer).i32() == 41
    error, high_watermark, records = w.parse_fetch_v4(answer[4:])[(topic, partition)]
    assert error == NONE, f"fetch error {error}"
    batches = w.parse_batch_headers(records)
    return [b for b in batches if b["attributes"] & CONTROL_ATTRIBUTE], high_watermark


def control_types(bootstrap: str, topic: str, partition: int, producer_id: int) -> list[int]:
    """The control record types (0 ABORT, 1 COMMIT) of `producer_id` in the partition."""
    answer = w.roundtrip(bootstrap, w.fetch_v4(42, topic, partition, 0, 0))
    _, _, records = w.parse_fetch_v4(answer[4:])[(topic, partition)]
    types, pos = [], 0
    while pos + 12 <= len(records):
        _base, length = struct.unpack_from(">qi", records, pos)
        end = pos + 12 + length
        header = w.parse_batch_headers(records[pos:end])[0]
        if header["attributes"] & CONTROL_ATTRIBUTE and header["producer_id"] == producer_id:
            types.append(_control_type_of(records[pos + BATCH_HEADER_BYTES:end]))
        pos = end
    return types


def _control_type_of(record: bytes) -> int:
    """The control type in one control record (zigzag varints before the key)."""
    r = w.Reader(record)

    def varint() -> int:
        raw = r.uvarint()
        return (raw >> 1) ^ -(raw & 1)
    varint()  # record length
    r.i8()  # attributes
    varint()  # timestamp delta
    varint()  # offset delta
    key_length = varint()
    assert key_length == 4, key_length
    _version, kind = r.i16(), r.i16()
    return kind


def run_transaction(cluster, topic: str, partitions: list[int], commit: bool) -> int:
    transactional_id = f"markers-{uuid.uuid4().hex[:8]}"
    # The id's coordinator: the leader of its `__transaction_state` partition (the first
    # FindCoordinator has that topic created).
    node = wait_for("the id's coordinator", lambda: find_txn_coordinator(
        cluster.nodes[1].bootstrap, transactional_id))
    coordinator = cluster.nodes[node].bootstrap
    producer_id, epoch = init_producer_id(coordinator, transactional_id)
    add_partitions(coordinator, transactional_id, producer_id, epoch, topic, partitions)
    error = end_txn(coordinator, transactional_id, producer_id, epoch, commit)
    assert error == NONE, f"EndTxn error {error}"
    return producer_id


def test_markers_reach_partitions_led_by_other_brokers(cluster):
    topic, leaders = spread_topic(cluster)
    partitions = sorted(leaders)
    committed = run_transaction(cluster, topic, partitions, commit=True)
    aborted = run_transaction(cluster, topic, partitions, commit=False)
    for partition, leader in leaders.items():
        bootstrap = cluster.nodes[leader].bootstrap
        batches, high_watermark = control_batches(bootstrap, topic, partition)
        owners = [b["producer_id"] for b in batches]
        assert owners == [committed, aborted], (
            f"partition {partition} (leader {leader}): control batches of {owners}, "
            f"high watermark {high_watermark}")
        assert control_types(bootstrap, topic, partition, committed) == [1]
        assert control_types(bootstrap, topic, partition, aborted) == [0]


def write_txn_markers(bootstrap: str, producer_id: int, topics: dict[str, list[int]],
                      commit: bool = True) -> dict[tuple[str, int], int]:
    """Raw WriteTxnMarkers v1 (flexible) with one marker; {(topic, partition): error}."""
    topic_items = [w.compact_string(name) + w.compact_array([w.i32(p) for p in parts])
                   + w.EMPTY_TAGGED_FIELDS for name, parts in topics.items()]
    marker = (w.i64(producer_id) + w.i16(0) + w.i8(commit) + w.compact_array(topic_items)
              + w.i32(0) + w.EMPTY_TAGGED_FIELDS)
    body = w.compact_array([marker]) + w.EMPTY_TAGGED_FIELDS
    answer = w.roundtrip(bootstrap, w.frame(w.header_v2(API_WRITE_TXN_MARKERS, 1, 51) + body))
    r = w.Reader(answer)
    assert r.i32() == 51
    r.tagged_fields()
    errors = {}
    assert r.uvarint() - 1 == 1
    assert r.i64() == producer_id
    for _ in range(r.uvarint() - 1):
        name = r.take(r.uvarint() - 1).decode()
        for _ in range(r.uvarint() - 1):
            partition, error = r.i32(), r.i16()
            r.tagged_fields()
            errors[(name, partition)] = error
        r.tagged_fields()
    r.tagged_fields()
    r.tagged_fields()
    assert r.done()
    return errors


def test_write_txn_markers_answers_per_partition(cluster):
    topic, leaders = spread_topic(cluster)
    led = next(p for p, leader in leaders.items() if leader == 2)
    followed = next(p for p, leader in leaders.items() if leader != 2)
    node2 = cluster.nodes[2].bootstrap
    producer_id = 4242
    missing = unique_topic("no-such-topic")
    # Node 2's catalog copy of the topic and its leader role may come a moment after the
    # metadata names it (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER meanwhile).
    errors = wait_for("node 2 writes the marker on the partition it leads", lambda: (
        (lambda e: e if e[(topic, led)] == NONE else None)(
            write_txn_markers(node2, producer_id, {topic: [led, followed], missing: [0]}))))
    assert errors == {(topic, led): NONE, (topic, followed): NOT_LEADER_OR_FOLLOWER,
                      (missing, 0): UNKNOWN_TOPIC_OR_PARTITION}
    batches, _high_watermark = control_batches(node2, topic, led)
    assert [b["producer_id"] for b in batches] == [producer_id]


def test_stock_transactional_producer_across_leaders(cluster):
    topic, leaders = spread_topic(cluster)
    producer = Producer({"bootstrap.servers": cluster.nodes[1].bootstrap,
                         "transactional.id": f"ck-{uuid.uuid4().hex[:8]}",
                         "transaction.timeout.ms": 20_000})
    producer.init_transactions(30)
    producer.begin_transaction()
    for partition in leaders:
        producer.produce(topic, partition=partition, value=f"aborted-{partition}".encode())
    producer.flush(20)
    producer.abort_transaction(30)
    producer.begin_transaction()
    for partition in leaders:
        producer.produce(topic, partition=partition, value=f"committed-{partition}".encode())
    producer.commit_transaction(30)
    # Assigned partitions, no group membership (the group id is never used).
    consumer = Consumer({"bootstrap.servers": cluster.nodes[3].bootstrap,
                         "group.id": f"unused-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in leaders])
    seen: list[str] = []

    def everything():
        for message in consumer.consume(num_messages=100, timeout=0.5):
            if message.error() is None:
                seen.append(message.value().decode())
        return len(seen) >= len(leaders) or None
    try:
        wait_for("read_committed sees the committed records", everything)
    finally:
        consumer.close()
    assert sorted(seen) == sorted(f"committed-{p}" for p in leaders)

