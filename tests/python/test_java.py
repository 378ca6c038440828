"""Contract: the reference Java client (kafka-clients 4.3.0: newest API versions, idempotence
on by default) works unmodified, driven through tests/java/ShardlogClient.java.

- Admin: create a 3-partition topic, list it, describe it (every partition led by the one
  broker, replicas = [that broker]; the broker serves it as DescribeTopicPartitions, counted
  in /metrics), delete it (gone from the list).
- Produce 5,000 records (keys incl. null) with the default idempotent producer (acks=all) and
  every codec; also acks=0 and acks=1 without idempotence. Each record is acked with an
  offset; keyed records land on (murmur2(key) & 0x7fffffff) % 3; offsets per partition are
  contiguous from 0; the Java consumer and confluent-kafka read back every record byte-exact
  at its acked position; the stored batches carry the codec and, when idempotent, a producer
  id >= 0 with continuing sequences.
- Admin.listConfigResources (ListConfigResources, API 74, Kafka 4.1): every type lists the
  created topics and this broker; TOPIC alone lists topics only; BROKER alone the broker.
- The Java consumer reads records that librdkafka compressed.
- Admin.incrementalAlterConfigs on BROKER "<id>" and "" (dynamic broker configs): set,
  described with their sources, a static key refused with Kafka's message, deleted.
- Offline self-test: the extracted jar set compresses/decompresses all codecs and Java's
  Utils.murmur2 agrees with the Python helper the other tests use.
Java and the jars must be installed (make test-deps); if not, these tests fail, never skip.
"""

import os
import subprocess
import zlib
from pathlib import Path

import pytest

import kafka_wire as wire
from clients import ck_create_topic, ck_produce, ck_producer, ck_read_all, ck_watermarks
from harness import REPO_ROOT, java_partition_for_key, murmur2, unique_topic
from test_compression import CODECS
from test_operations import scrape, total

JAVA_TIMEOUT_S = 180.0
JAVA_CONSUME_TIMEOUT_MS = 120_000
MESSAGES = 5000
PARTITIONS = 3


def java_classpath() -> str:
    cp = os.environ.get("SHARDLOG_JAVA_CP") or (
        f"{REPO_ROOT}/target/java-classes:{REPO_ROOT}/target/java-libs/*")
    classes = Path(cp.split(":")[0])
    assert (classes / "ShardlogClient.class").is_file(), (
        f"{classes}/ShardlogClient.class missing: run `make test-deps` (java-client)")
    return cp


def java(*args: str) -> list[list[str]]:
    proc = subprocess.run(["java", "-cp", java_classpath(), "ShardlogClient", *args],
                          capture_output=True, text=True, timeout=JAVA_TIMEOUT_S)
    assert proc.returncode == 0, (f"java {' '.join(args)} exited {proc.returncode}\n"
                                  f"stdout tail: {proc.stdout[-3000:]}\n"
                                  f"stderr tail: {proc.stderr[-3000:]}")
    return [line.split(" ") for line in proc.stdout.splitlines() if line]


def java_round_trip(client_config, bootstrap: str, topic: str, partitions: int,
                    count: int) -> None:
    """The Java client, configured by the properties file `client_config` (the test client
    reads SHARDLOG_CLIENT_CONFIG), creates `topic`, produces `count` records (acks=all, lz4)
    and consumes them all back."""
    env_before = os.environ.get("SHARDLOG_CLIENT_CONFIG")
    os.environ["SHARDLOG_CLIENT_CONFIG"] = str(client_config)
    try:
        java("create", bootstrap, topic, str(partitions))
        produced = java("produce", bootstrap, topic, str(count), "all", "lz4")
        assert produced[-1] == ["PRODUCED", str(count)]
        consumed = java("consume", bootstrap, topic, str(count), "60000")
        assert sum(1 for line in consumed if line[0] == "REC") == count, consumed[-3:]
    finally:
        if env_before is None:
            os.environ.pop("SHARDLOG_CLIENT_CONFIG", None)
        else:
            os.environ["SHARDLOG_CLIENT_CONFIG"] = env_before


def java_value(i: int) -> bytes:
    """Same bytes as ShardlogClient.value(i)."""
    return (f"java-{i}-" + "".join(chr(ord("a") + (i * 7 + j) % 26)
                                   for j in range(i % 300))).encode()


def java_key(i: int) -> bytes | None:
    return None if i % 10 == 9 else f"key-{i % 13}".encode()


def broker_id(bootstrap: str) -> int:
    from clients import ck_admin
    (b,) = ck_admin(bootstrap).list_topics(timeout=15).brokers.values()
    return b.id


def test_java_selftest_codecs_and_murmur2():
    keys = ["a", "ab", "abc", "key-1", "user-12345", "0123456789abcdef"]
    lines = java("selftest", *keys)
    codecs = {line[1] for line in lines if line[0] == "CODEC" and line[2] == "ok"}
    assert codecs == {"none", "gzip", "snappy", "lz4", "zstd"}
    java_hashes = {line[1]: int(line[2]) for line in lines if line[0] == "MURMUR2"}
    assert java_hashes == {k: murmur2(k.encode()) for k in keys}


def api_requests(broker, api: str) -> float:
    """Requests of `api` the broker has handled, from /metrics."""
    return total(scrape(broker), "shardlog_request_duration_seconds",
                 "shardlog_request_duration_seconds_count", api=api)


def test_java_admin_create_list_describe_delete(broker):
    topic = unique_topic("jadmin")
    assert java("create", broker.bootstrap, topic, "3") == [["CREATED", topic]]
    assert ["TOPIC", topic] in java("list", broker.bootstrap)
    served_before = api_requests(broker, "DescribeTopicPartitions")
    described = java("describe", broker.bootstrap, topic)
    # kafka-clients 4.x describes topics with DescribeTopicPartitions (KIP-966) when the
    # broker advertises it, and Metadata otherwise: the broker must have served API 75.
    assert api_requests(broker, "DescribeTopicPartitions") > served_before
    assert described[0][:2] == ["TOPIC", topic]
    bid = str(broker_id(broker.bootstrap))
    assert described[1:] == [["PARTITION", str(p), "leader", bid, "replicas", bid]
                             for p in range(3)]
    assert java("delete", broker.bootstrap, topic) == [["DELETED", topic]]
    assert ["TOPIC", topic] not in java("list", broker.bootstrap)


def test_java_list_config_resources(broker):
    topics = sorted(unique_topic(f"jlcr{i}") for i in range(2))
    for topic in topics:
        ck_create_topic(broker.bootstrap, topic, 1)
    bid = str(broker_id(broker.bootstrap))
    every = java("configresources", broker.bootstrap)
    for topic in topics:
        assert ["RESOURCE", "TOPIC", topic] in every
    assert [line for line in every if line[1] != "TOPIC"] == [["RESOURCE", "BROKER", bid]]
    only_topics = java("configresources", broker.bootstrap, "TOPIC")
    assert only_topics == [line for line in every if line[1] == "TOPIC"]
    assert java("configresources", broker.bootstrap, "BROKER") == [["RESOURCE", "BROKER", bid]]


def java_broker_config(broker, resource: str, *edits: str) -> tuple[str, dict[str, tuple]]:
    """The Java Admin's IncrementalAlterConfigs outcome line and the described configs of
    BROKER `resource`: {name: (value, source, read_only)}."""
    lines = java("brokerconfig", broker.bootstrap, resource, *edits)
    outcome = " ".join(lines[0])
    configs = {line[1]: (line[2], line[3], line[4]) for line in lines[1:] if line[0] == "CONFIG"}
    return outcome, configs


def test_java_dynamic_broker_configs(broker):
    """The Java Admin changes dynamic broker configs (issue 18 item 3): a per-broker
    message.max.bytes and a cluster-default log.cleanup.policy (resource ""), read back with
    their sources; a static key is refused with Kafka's message; DELETE restores the default."""
    bid = str(broker_id(broker.bootstrap))
    outcome, configs = java_broker_config(broker, bid, "message.max.bytes=10240")
    assert outcome == "ALTERED"
    assert configs["message.max.bytes"] == ("10240", "DYNAMIC_BROKER_CONFIG", "false")
    assert configs["listeners"][2] == "true"
    outcome, _ = java_broker_config(broker, "", "log.cleanup.policy=compact")
    assert outcome == "ALTERED"
    _, configs = java_broker_config(broker, bid)
    assert configs["log.cleanup.policy"] == ("compact", "DYNAMIC_DEFAULT_BROKER_CONFIG", "false")
    outcome, _ = java_broker_config(broker, bid, "listeners=PLAINTEXT://127.0.0.1:1")
    assert outcome.startswith("ERROR InvalidRequestException"), outcome
    assert "Cannot update these configs dynamically: Set(listeners)" in outcome, outcome
    outcome, configs = java_broker_config(broker, bid, "message.max.bytes=")
    assert outcome == "ALTERED"
    assert configs["message.max.bytes"] == (str((1 << 20) + 12), "DEFAULT_CONFIG", "false")


def check_java_produced(broker, topic, acks_lines, idempotent, codec):
    acked = {int(l[1]): (int(l[2]), int(l[3])) for l in acks_lines if l[0] == "ACK"}
    assert ["PRODUCED", str(MESSAGES)] in acks_lines
    assert sorted(acked) == list(range(MESSAGES))
    for i, (p, _) in acked.items():
        if java_key(i) is not None:
            assert p == java_partition_for_key(java_key(i), PARTITIONS), f"record {i}"
    by_pos = {pos: i for i, pos in acked.items()}
    assert len(by_pos) == MESSAGES, "two records acked at the same position"
    for p in range(PARTITIONS):
        offsets = sorted(off for (pp, off) in by_pos if pp == p)
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not contiguous"

    # Java consumer: crc32 and length of every value at its acked position.
    lines = java("consume", broker.bootstrap, topic, str(MESSAGES), str(JAVA_CONSUME_TIMEOUT_MS))
    recs = [l for l in lines if l[0] == "REC"]
    assert len(recs) == MESSAGES and ["CONSUMED", str(MESSAGES)] in lines
    for _, p, off, key, crc, length, _ts in recs:
        i = by_pos[(int(p), int(off))]
        assert int(crc) == zlib.crc32(java_value(i)) and int(length) == len(java_value(i))
        assert key == (java_key(i).decode() if java_key(i) else "-")

    # confluent-kafka: byte-exact.
    read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    for p, records in read.items():
        for r in records:
            i = by_pos[(p, r.offset)]
            assert (r.key, r.value) == (java_key(i), java_value(i)), f"record {i}"

    for p in range(PARTITIONS):
        _, high = ck_watermarks(broker.bootstrap, topic, p)
        headers = wire.fetch_batch_headers(broker.bootstrap, topic, p, high)
        if codec != "none":
            assert {h["attributes"] & 7 for h in headers} == {CODECS[codec]}
        if idempotent:
            assert len({h["producer_id"] for h in headers}) == 1
            assert headers[0]["producer_id"] >= 0
            seq = 0
            for h in headers:
                assert h["base_sequence"] == seq, f"partition {p}: sequence gap at {h}"
                seq += h["last_offset_delta"] + 1


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_java_idempotent_produce_consume(broker, codec):
    topic = unique_topic(f"j-{codec}")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    lines = java("produce", broker.bootstrap, topic, str(MESSAGES), "all", codec, "true")
    check_java_produced(broker, topic, lines, idempotent=True, codec=codec)


@pytest.mark.parametrize("acks", ["0", "1"])
def test_java_non_idempotent_acks(broker, acks):
    topic = unique_topic(f"j-acks{acks}")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    lines = java("produce", broker.bootstrap, topic, str(MESSAGES), acks, "none", "false")
    if acks == "0":
        # The Java client reports offset -1 for acks=0; check the stored data instead.
        assert ["PRODUCED", str(MESSAGES)] in lines
        read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
        got = sorted(r.value for rs in read.values() for r in rs)
        assert got == sorted(java_value(i) for i in range(MESSAGES))
    else:
        check_java_produced(broker, topic, lines, idempotent=False, codec="none")


def test_java_consumes_librdkafka_compressed(broker):
    topic = unique_topic("j-read")
    ck_create_topic(broker.bootstrap, topic, 1)
    sent = [(None, java_value(i), 0) for i in range(2000)]
    ck_produce(ck_producer(broker.bootstrap, **{"compression.type": "zstd"}), topic, sent)
    lines = java("consume", broker.bootstrap, topic, "2000", str(JAVA_CONSUME_TIMEOUT_MS))
    recs = [l for l in lines if l[0] == "REC"]
    assert [(int(l[2]), int(l[4])) for l in recs] == [
        (i, zlib.crc32(java_value(i))) for i in range(2000)]
