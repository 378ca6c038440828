"""Contract: keyed records land in the partition the Java client's partitioner picks, and the
broker stores and returns them there.

On a 3-partition topic: every record with the same key is acknowledged in the same partition,
that partition is (murmur2(key) & 0x7fffffff) % 3 (Kafka's default for keyed records, which
librdkafka's `murmur2_random` and kafka-python's default partitioner reproduce), and reading
each partition back returns exactly those records, byte-exact, in produce order.
Checked with confluent-kafka (librdkafka) and kafka-python.
"""

import random

import pytest

from clients import (KP_CLOSE_TIMEOUT_S, assert_matches_acks, ck_create_topic, ck_produce,
                     ck_producer, ck_read_all, kp_produce, kp_producer, kp_read_all)
from harness import java_partition_for_key, unique_topic

PARTITIONS = 3
ROUNDS = 3  # each key is produced this many times, interleaved with the others


def keyed_messages(seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    keys = [b"", b"a", b"\x00", b"user-1"] + [b"user-%d" % i for i in range(2, 150)] + [
        rng.randbytes(rng.randint(1, 64)) for _ in range(150)]
    return [(k, b"round-%d:" % r + k + rng.randbytes(rng.randint(0, 200)))
            for r in range(ROUNDS) for k in keys]


def test_murmur2_reference_vectors():
    # Partition numbers out of 1000 that Kafka's Java partitioner gives (from Kafka's and
    # kafka-python's compatibility tests). Guards the helper the other tests rely on.
    expected = {b"": 681, b"a": 524, b"ab": 434, b"abc": 107, b"123456789": 566, b"\x00 ": 742}
    assert {k: java_partition_for_key(k, 1000) for k in expected} == expected


def check_keyed(sent, acks, read):
    partition_of_key: dict[bytes, int] = {}
    for (key, _), (partition, _) in zip(sent, acks):
        assert partition_of_key.setdefault(key, partition) == partition, (
            f"key {key!r} acknowledged in partitions {partition_of_key[key]} and {partition}")
        assert partition == java_partition_for_key(key, PARTITIONS), (
            f"key {key!r}: partition {partition}, Java partitioner says "
            f"{java_partition_for_key(key, PARTITIONS)}")
    assert len(set(partition_of_key.values())) == PARTITIONS, "keys did not spread"
    assert_matches_acks(read, sent, acks)
    assert sum(len(r) for r in read.values()) == len(sent)
    for partition, records in read.items():
        for r in records:
            assert java_partition_for_key(r.key, PARTITIONS) == partition


def test_confluent_keyed_produce(broker):
    topic = unique_topic("keyed")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = keyed_messages(seed=1)
    acks = ck_produce(ck_producer(broker.bootstrap, partitioner="murmur2_random"), topic, sent)
    read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    check_keyed(sent, acks, read)


def test_kafka_python_keyed_produce(broker):
    topic = unique_topic("kpkeyed")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = keyed_messages(seed=2)
    producer = kp_producer(broker.bootstrap)
    try:
        acks = kp_produce(producer, topic, sent)
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)
    read = kp_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    check_keyed(sent, acks, read)


@pytest.mark.parametrize("reader", ["confluent", "kafka-python"])
def test_cross_client_keyed_read(broker, reader):
    """Records one client wrote are read identically by the other implementation."""
    topic = unique_topic("xkeyed")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = keyed_messages(seed=3)
    if reader == "confluent":
        producer = kp_producer(broker.bootstrap)
        acks = kp_produce(producer, topic, sent)
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)
        read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    else:
        acks = ck_produce(ck_producer(broker.bootstrap, partitioner="murmur2_random"), topic, sent)
        read = kp_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    check_keyed(sent, acks, read)
