"""Contract (issue 7): topic configs set with stock admin clients drive retention, compaction
and recompression, and survive a broker kill -9.

- retention.ms: with small segments and retention.ms=1000, old segments go and the earliest
  offset advances; what is left is exactly the tail of what was produced (confluent-kafka).
- retention.bytes: the partition shrinks to about retention.bytes (plus the active segment);
  the earliest offset advances; the tail is intact (kafka-python admin and producer).
- cleanup.policy=compact: 10,000 updates over 100 keys compact to the latest value per key;
  keys deleted with tombstones disappear once delete.retention.ms has passed.
- compression.type=zstd on the topic: gzip input from librdkafka is stored as zstd batches
  (checked on the raw fetched batches) and reads back byte-exact with kafka-python.
- configs altered with IncrementalAlterConfigs are there after a kill -9 and restart.

The broker runs with 200 ms retention/compaction check intervals (defaults: 5 min / 15 s).
"""

from __future__ import annotations

import time

import kafka
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                   ResourceType)

import kafka_wire as wire
from clients import (KP_CLOSE_TIMEOUT_S, Deadline, ck_admin, ck_produce, ck_producer,
                     ck_read_all, ck_watermarks, kp_admin, kp_produce, kp_producer, kp_read_all,
                     payloads)
from harness import unique_topic

MAINTENANCE_CONFIG = """
[storage]
retention_check_interval_ms = 200
compaction_check_interval_ms = 200
"""
SEGMENT_BYTES = 16384
MAINTENANCE_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 30.0
ZSTD, GZIP = 4, 1


def maintenance_broker(broker_factory, tmp_path):
    config = tmp_path / "shardlog.toml"
    config.write_text(MAINTENANCE_CONFIG)
    return broker_factory("maintenance", extra_args=["--config", str(config)])


def ck_create(bootstrap: str, topic: str, partitions: int, configs: dict[str, str]) -> None:
    admin = ck_admin(bootstrap)  # kept alive until the futures resolve
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs)])
    for future in futures.values():
        future.result(timeout=ADMIN_TIMEOUT_S)


def wait_for_log_start(bootstrap: str, topic: str, what: str) -> tuple[int, int]:
    deadline = Deadline(MAINTENANCE_TIMEOUT_S, what)
    while True:
        low, high = ck_watermarks(bootstrap, topic, 0)
        if low > 0:
            return low, high
        deadline.check(f"(watermarks {low}..{high})")
        time.sleep(0.2)


def assert_tail(read, sent_values: list[bytes], low: int, high: int) -> None:
    """Records low..high-1 are there, in order, and equal to what was produced there."""
    records = read[0]
    assert [r.offset for r in records] == list(range(low, high))
    assert [r.value for r in records] == sent_values[low:high]


def test_retention_ms_deletes_old_segments(broker_factory, tmp_path):
    broker = maintenance_broker(broker_factory, tmp_path)
    topic = unique_topic("retms")
    ck_create(broker.bootstrap, topic, 1, {"segment.bytes": str(SEGMENT_BYTES),
                                          "retention.ms": "1000"})
    values = payloads(2000, seed=71, max_len=200)
    # Batches well below a segment: a batch is never split across segments, and librdkafka
    # queues every record into one 1 MiB batch if its first request waits for the
    # connection (seen: all 2000 records in one batch, so nothing rolled and nothing could
    # be deleted).
    ck_produce(ck_producer(broker.bootstrap, **{"linger.ms": 0, "batch.size": SEGMENT_BYTES // 4}),
               topic, [(None, v, 0) for v in values])
    low, high = wait_for_log_start(broker.bootstrap, topic, "retention.ms deleting segments")
    assert high == len(values)
    # The active segment stays (as in Kafka), so the newest records are still readable.
    read = ck_read_all(broker.bootstrap, topic, [0])
    low_now, _ = ck_watermarks(broker.bootstrap, topic, 0)
    assert_tail(read, values, read[0][0].offset, high)
    assert read[0][0].offset >= low and low_now >= low


def test_retention_bytes_shrinks_partition(broker_factory, tmp_path):
    broker = maintenance_broker(broker_factory, tmp_path)
    topic = unique_topic("retbytes")
    retention_bytes = 4 * SEGMENT_BYTES
    admin = kp_admin(broker.bootstrap)
    try:
        admin.create_topics([kafka.admin.NewTopic(topic, 1, 1, topic_configs={
            "segment.bytes": str(SEGMENT_BYTES), "retention.bytes": str(retention_bytes)})])
    finally:
        admin.close()
    values = [b"%05d:" % i + v for i, v in enumerate(payloads(3000, seed=72, max_len=200))]
    producer = kp_producer(broker.bootstrap, linger_ms=0)
    try:
        kp_produce(producer, topic, [(None, v, 0) for v in values])
    finally:
        producer.close(timeout=KP_CLOSE_TIMEOUT_S)
    wait_for_log_start(broker.bootstrap, topic, "retention.bytes deleting segments")
    # Deletion runs segment by segment: wait until what is left fits the limit plus the
    # active segment.
    deadline = Deadline(MAINTENANCE_TIMEOUT_S, "partition down to retention.bytes")
    while True:
        read = kp_read_all(broker.bootstrap, topic, [0])
        kept = sum(len(r.value) for r in read[0])
        if kept <= retention_bytes + 2 * SEGMENT_BYTES:
            break
        deadline.check(f"({kept} value bytes kept)")
        time.sleep(0.2)
    first = read[0][0].offset
    assert first > 0
    assert_tail(read, values, first, len(values))


def test_compaction_keeps_latest_value_per_key_and_drops_tombstones(broker_factory, tmp_path):
    broker = maintenance_broker(broker_factory, tmp_path)
    topic = unique_topic("compact")
    ck_create(broker.bootstrap, topic, 1, {
        "cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
        "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0",
        "delete.retention.ms": "2000"})
    keys = [b"key-%03d" % k for k in range(100)]
    updates = [(keys[i % 100], b"%s=v%05d" % (keys[i % 100], i), 0) for i in range(10_000)]
    deleted = set(keys[:10])
    tombstones = [(k, None, 0) for k in sorted(deleted)]
    producer = ck_producer(broker.bootstrap, **{"linger.ms": 5, "batch.size": SEGMENT_BYTES // 4})
    ck_produce(producer, topic, updates + tombstones)
    # Filler on its own key, in separately flushed batches each larger than a segment, so
    # segments roll and the updates and tombstones leave the active segment (which is never
    # compacted, as in Kafka).
    for _ in range(4):
        ck_produce(producer, topic, [(b"filler", b"f" * 200, 0) for _ in range(100)])
    latest = {k: v for k, v, _ in updates}

    deadline = Deadline(MAINTENANCE_TIMEOUT_S, "compaction to the latest values")
    while True:
        read = ck_read_all(broker.bootstrap, topic, [0])[0]
        by_key: dict[bytes, list] = {}
        for r in read:
            if r.key != b"filler":
                by_key.setdefault(r.key, []).append(r.value)
        live = {k: vs for k, vs in by_key.items() if k not in deleted}
        done = (all(len(vs) == 1 for vs in live.values()) and len(live) == 90
                and not any(k in by_key for k in deleted))
        if done:
            break
        deadline.check(f"({len(read)} records; live keys {len(live)}, with duplicates "
                       f"{sum(len(vs) > 1 for vs in live.values())}; tombstoned keys still "
                       f"there {sorted(k for k in deleted if k in by_key)})")
        time.sleep(0.5)
    assert {k: vs[0] for k, vs in live.items()} == {k: latest[k] for k in keys[10:]}
    offsets = [r.offset for r in read]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_zstd_topic_recompresses_gzip_input(broker):
    topic = unique_topic("zstdtopic")
    ck_create(broker.bootstrap, topic, 1, {"compression.type": "zstd"})
    values = payloads(2000, seed=73, max_len=1500)
    ck_produce(ck_producer(broker.bootstrap, **{"compression.type": "gzip", "linger.ms": 20}),
               topic, [(b"k%d" % i, v, 0) for i, v in enumerate(values)])
    _, high = ck_watermarks(broker.bootstrap, topic, 0)
    headers = wire.fetch_batch_headers(broker.bootstrap, topic, 0, high)  # checks CRC-32C
    assert {h["attributes"] & 0x7 for h in headers} == {ZSTD}
    read = kp_read_all(broker.bootstrap, topic, [0])
    assert [r.value for r in read[0]] == values


def describe(bootstrap: str, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = ck_admin(bootstrap)
    entries = admin.describe_configs([resource])[resource].result(timeout=ADMIN_TIMEOUT_S)
    return {name: entry.value for name, entry in entries.items()}


def test_altered_configs_survive_kill9(broker):
    topic = unique_topic("cfgkeep")
    ck_create(broker.bootstrap, topic, 2, {"retention.ms": "3600000"})
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "123456789",
                    incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact,delete",
                    incremental_operation=AlterConfigOpType.SET)])
    admin = ck_admin(broker.bootstrap)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    before = describe(broker.bootstrap, topic)
    assert before["retention.bytes"] == "123456789"
    broker.restart(kill9=True)
    after = describe(broker.bootstrap, topic)
    for name in ("retention.ms", "retention.bytes", "cleanup.policy"):
        assert after[name] == before[name], f"{name}: {before[name]} -> {after[name]}"
    assert after["retention.ms"] == "3600000"
