"""Contract: 100,000 messages produced with acks=all to a 3-partition topic come back
byte-exact: every acknowledged (partition, offset) holds exactly the key and value sent, offsets
in each partition are contiguous from 0, per-partition order equals produce order, and nothing
extra appears. Values vary in size (0..1000 bytes) and content (random, text, all-zero).
Checked with confluent-kafka (librdkafka) and kafka-python, each reading its own writes and the
other client's writes (the broker must hand back batches as stored, readable by either).
"""

import zlib

import pytest

from clients import (BULK_CONSUME_TIMEOUT_S, BULK_PRODUCE_TIMEOUT_S, KP_CLOSE_TIMEOUT_S,
                     assert_matches_acks, ck_create_topic, ck_produce, ck_producer, ck_read_all,
                     kp_produce, kp_producer, kp_read_all, payloads)
from harness import unique_topic

MESSAGES = 100_000
PARTITIONS = 3


def messages(seed: int):
    values = payloads(MESSAGES, seed=seed, max_len=1000)
    # Keyless records with explicit round-robin partitions: spreads load evenly and makes
    # the expected per-partition order obvious.
    return [(None if i % 5 else b"k%d" % i, v, i % PARTITIONS) for i, v in enumerate(values)]


def produce_confluent(bootstrap, topic, sent):
    return ck_produce(ck_producer(bootstrap, acks="all", **{"linger.ms": 10}), topic, sent,
                      timeout_s=BULK_PRODUCE_TIMEOUT_S)


def produce_kafka_python(bootstrap, topic, sent):
    producer = kp_producer(bootstrap, acks="all", linger_ms=10, batch_size=256 * 1024)
    try:
        return kp_produce(producer, topic, sent, timeout_s=BULK_PRODUCE_TIMEOUT_S)
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)


PRODUCERS = {"confluent": produce_confluent, "kafka-python": produce_kafka_python}
READERS = {
    "confluent": lambda b, t: ck_read_all(b, t, list(range(PARTITIONS)), BULK_CONSUME_TIMEOUT_S),
    "kafka-python": lambda b, t: kp_read_all(b, t, list(range(PARTITIONS)),
                                            BULK_CONSUME_TIMEOUT_S),
}


@pytest.mark.slow
@pytest.mark.parametrize("producer,reader", [
    ("confluent", "confluent"),
    ("kafka-python", "kafka-python"),
    ("confluent", "kafka-python"),
])
def test_100k_round_trip_acks_all(broker, producer, reader):
    topic = unique_topic(f"rt-{producer}")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = messages(seed=zlib.crc32(f"{producer}/{reader}".encode()))
    acks = PRODUCERS[producer](broker.bootstrap, topic, sent)
    assert len(acks) == MESSAGES
    read = READERS[reader](broker.bootstrap, topic)
    assert sum(len(r) for r in read.values()) == MESSAGES
    assert_matches_acks(read, sent, acks)
    for p in range(PARTITIONS):
        assert [r.value for r in read[p]] == [m[1] for m in sent if m[2] == p]
