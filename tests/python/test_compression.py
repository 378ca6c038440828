"""Contract: all four compression codecs round trip byte-exact, and batches are stored as the
producer sent them (compressed stays compressed).

For gzip, snappy, lz4 and zstd: records produced compressed by one client are read back
byte-exact (keys, values, order, offsets) by the same client and by the other implementation;
the raw batches fetched from the broker carry the producer's codec in their attributes
(bits 0-2: 1 gzip, 2 snappy, 3 lz4, 4 zstd; 0 only for a batch the client chose to send
uncompressed because compressing did not shrink it) and a valid CRC-32C.
Checked with confluent-kafka (librdkafka) and kafka-python (with lz4/zstandard/cramjam).
"""

import pytest

import kafka_wire as wire
from clients import (KP_CLOSE_TIMEOUT_S, assert_matches_acks, ck_create_topic, ck_produce,
                     ck_producer, ck_read_all, ck_watermarks, kp_produce, kp_producer, kp_read_all,
                     payloads)
from harness import unique_topic

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
MESSAGES = 3000
PARTITIONS = 2


def sent_messages(seed):
    values = payloads(MESSAGES, seed=seed, max_len=2000)
    return [(b"key-%d" % (i % 7) if i % 3 else None, v, i % PARTITIONS)
            for i, v in enumerate(values)]


def check_stored_codec(bootstrap, topic, codec):
    for p in range(PARTITIONS):
        _, high = ck_watermarks(bootstrap, topic, p)
        headers = wire.fetch_batch_headers(bootstrap, topic, p, high)
        codecs = {h["attributes"] & 0x7 for h in headers}
        # Clients send a batch uncompressed when compressing does not make it smaller
        # (kafka-python's _maybe_compress, librdkafka likewise), e.g. a small batch of random
        # bytes: the broker stores batches as produced, so 0 may appear beside the codec.
        assert CODECS[codec] in codecs and codecs <= {0, CODECS[codec]}, (
            f"partition {p}: stored codecs {codecs}")


def produce(client, bootstrap, topic, sent, codec):
    if client == "confluent":
        return ck_produce(ck_producer(bootstrap, **{"compression.type": codec,
                                                    "linger.ms": 20}), topic, sent)
    producer = kp_producer(bootstrap, compression_type=codec, linger_ms=20)
    try:
        return kp_produce(producer, topic, sent)
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)


def read(client, bootstrap, topic):
    reader = ck_read_all if client == "confluent" else kp_read_all
    return reader(bootstrap, topic, list(range(PARTITIONS)))


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("producer,reader", [
    ("confluent", "confluent"),
    ("kafka-python", "kafka-python"),
    ("confluent", "kafka-python"),
    ("kafka-python", "confluent"),
])
def test_compression_round_trip(broker, codec, producer, reader):
    topic = unique_topic(f"z-{codec}")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = sent_messages(seed=CODECS[codec])
    acks = produce(producer, broker.bootstrap, topic, sent, codec)
    got = read(reader, broker.bootstrap, topic)
    assert sum(len(r) for r in got.values()) == MESSAGES
    assert_matches_acks(got, sent, acks)
    check_stored_codec(broker.bootstrap, topic, codec)
