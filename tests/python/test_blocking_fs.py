"""Contract (issue 14, item 4): a blocking file-system call made while a shard serves (the
catalog write of CreateTopics/DeleteTopics, a new partition's directory claim, a deleted
partition's directory removal, compaction's swap of cleaned segments) runs off the shard
thread, so the shard keeps answering its other clients while the call is in progress; and a
read of the partition whose files are being swapped returns what was produced at each offset.

The test-only gate hook (`SHARDLOG_TEST_FS_GATE=<op>:<dir>`, src/storage/blocking_fs.rs)
holds the named operation, wherever it runs, until the test releases it. With one shard, the
admin request, the held operation and the probing clients all share that shard. The test
asserts ordering, not timings: while the operation is held (it reported `reached` and the
admin request is still unanswered), ApiVersions, Metadata and an acks=all produce to another
topic are answered. Were the operation on the shard thread, none of them could be.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

import kafka_wire as wire
from clients import (ADMIN_TIMEOUT_S, METADATA_TIMEOUT_S, Deadline, ck_admin, ck_create_topic, ck_partition_count,
                     ck_produce, ck_producer, ck_read_all)
from harness import unique_topic

# Named bounds on hangs (seconds), never performance assertions.
GATE_REACHED_TIMEOUT_S = 60.0
SERVE_TIMEOUT_S = 20.0
PRODUCE_WHILE_HELD_TIMEOUT_S = 20.0
# As the issue: a 1,000-partition CreateTopics (or its DeleteTopics).
PARTITIONS = 1000
ROUNDTRIPS = 20
GATE_POLL_S = 0.02


def probe_shard_serves(bootstrap: str, other_topic: str) -> None:
    """ApiVersions and Metadata round trips and one acks=all produce, each answered."""
    for correlation_id in range(ROUNDTRIPS):
        with wire.connect(bootstrap) as sock:
            sock.settimeout(SERVE_TIMEOUT_S)
            sock.sendall(wire.api_versions_v0(correlation_id))
            body = wire.recv_frame(sock)
            assert int.from_bytes(body[:4], "big") == correlation_id
            error, versions = wire.parse_api_versions_v0(body[4:])
            assert error == 0 and versions
            sock.sendall(wire.metadata_v1(correlation_id, [other_topic]))
            assert int.from_bytes(wire.recv_frame(sock)[:4], "big") == correlation_id
    placed = ck_produce(ck_producer(bootstrap), other_topic, [(b"k", b"while-held", 0)],
                        timeout_s=PRODUCE_WHILE_HELD_TIMEOUT_S)
    assert placed[0][0] == 0


@pytest.mark.parametrize("op", ["catalog_save", "claim_partition_dir", "remove_partition_dir"])
def test_shard_serves_while_a_blocking_file_operation_is_held(broker_factory, tmp_path,
                                                                monkeypatch, op):
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv("SHARDLOG_TEST_FS_GATE", f"{op}:{gate}")
    broker = broker_factory("gated", shards=1)
    other, big = unique_topic("other"), unique_topic("big")
    ck_create_topic(broker.bootstrap, other, 1)
    deleting = op == "remove_partition_dir"
    if deleting:
        ck_create_topic(broker.bootstrap, big, PARTITIONS)

    (gate / "armed").touch()
    admin = ck_admin(broker.bootstrap)  # outlives its futures
    if deleting:
        futures = admin.delete_topics([big], operation_timeout=ADMIN_TIMEOUT_S,
                                      request_timeout=ADMIN_TIMEOUT_S)
    else:
        futures = admin.create_topics([NewTopic(big, num_partitions=PARTITIONS,
                                                replication_factor=1)],
                                      operation_timeout=ADMIN_TIMEOUT_S,
                                      request_timeout=ADMIN_TIMEOUT_S)
    try:
        deadline = Deadline(GATE_REACHED_TIMEOUT_S, f"{op} reaching the gate")
        while not (gate / "reached").exists():
            deadline.check()
            broker.assert_alive()
            time.sleep(GATE_POLL_S)
        assert not futures[big].done(), f"admin request answered while {op} was held"
        probe_shard_serves(broker.bootstrap, other)
        assert not futures[big].done(), f"admin request answered while {op} was held"
    finally:
        (gate / "release").touch()
    futures[big].result(timeout=ADMIN_TIMEOUT_S)
    if deleting:
        # All topics: asking for the one topic would auto-create it again.
        deadline = Deadline(ADMIN_TIMEOUT_S, f"{big} gone from metadata")
        while big in ck_admin(broker.bootstrap).list_topics(timeout=METADATA_TIMEOUT_S).topics:
            deadline.check()
            time.sleep(GATE_POLL_S)
        assert not any(p.name.startswith(f"{big}-") for p in broker.data_dir.iterdir())
    else:
        assert ck_partition_count(broker.bootstrap, big) == PARTITIONS


# Compaction: small segments (the broker keeps at most 16 segment files open per shard, so a
# reader has to open some by path), checked every 200 ms.
COMPACTION_CONFIG = """
[storage]
compaction_check_interval_ms = 200
open_segments_max = 16
"""
SEGMENT_BYTES = 16384
KEYS = 50
UPDATES = 8000
COMPACTION_TIMEOUT_S = 60.0
READ_WHILE_HELD_TIMEOUT_S = 60.0


def test_compaction_swap_runs_off_the_shard_and_reads_stay_exact(broker_factory, tmp_path,
                                                                    monkeypatch):
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv("SHARDLOG_TEST_FS_GATE", f"compaction_swap:{gate}")
    config = tmp_path / "shardlog.toml"
    config.write_text(COMPACTION_CONFIG)
    broker = broker_factory("gated", shards=1, extra_args=["--config", str(config)])
    other, topic = unique_topic("other"), unique_topic("compacted")
    ck_create_topic(broker.bootstrap, other, 1)
    # Not cleanable until the lag is lowered below, so the first swap comes after arming.
    admin = ck_admin(broker.bootstrap)
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config={
        "cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
        "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "3600000"})],
        operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    # One partition, so the i-th record produced has offset i: every record read back must
    # carry the value produced at its offset, whichever files it was read from.
    messages = [(b"key-%03d" % (i % KEYS), b"value-%06d" % i, 0) for i in range(UPDATES)]
    messages += [(b"filler", b"filler-%06d-" % i + b"f" * 200, 0) for i in range(400)]
    producer = ck_producer(broker.bootstrap, **{"linger.ms": 5, "batch.size": SEGMENT_BYTES // 4})
    placed = ck_produce(producer, topic, messages)
    assert [offset for _, offset in placed] == list(range(len(messages)))
    produced = {offset: value for offset, (_, value, _) in enumerate(messages)}

    (gate / "armed").touch()
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("min.compaction.lag.ms", "0", incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    read_while_held: dict = {}

    def read_compacted() -> None:
        try:
            read_while_held["records"] = ck_read_all(broker.bootstrap, topic, [0],
                                                     timeout_s=READ_WHILE_HELD_TIMEOUT_S)[0]
        except Exception as error:  # reported by the main thread
            read_while_held["error"] = error

    reader = threading.Thread(target=read_compacted, daemon=True)
    try:
        deadline = Deadline(GATE_REACHED_TIMEOUT_S, "compaction_swap reaching the gate")
        while not (gate / "reached").exists():
            deadline.check()
            broker.assert_alive()
            time.sleep(GATE_POLL_S)
        reader.start()
        probe_shard_serves(broker.bootstrap, other)
    finally:
        (gate / "release").touch()
    reader.join(timeout=READ_WHILE_HELD_TIMEOUT_S + 10)
    assert not reader.is_alive(), "read started during the swap never finished"
    assert "error" not in read_while_held, read_while_held.get("error")
    records = read_while_held["records"]
    wrong = [(r.offset, r.value) for r in records if produced.get(r.offset) != r.value]
    assert not wrong, f"records read during the swap differ from what was produced: {wrong[:5]}"
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)) and offsets[-1] == len(messages) - 1

    latest = {key: value for key, value, _ in messages[:UPDATES]}
    deadline = Deadline(COMPACTION_TIMEOUT_S, "compaction to the latest values")
    while True:
        records = ck_read_all(broker.bootstrap, topic, [0])[0]
        updates = [r for r in records if r.key != b"filler"]
        if len(updates) == KEYS:
            break
        deadline.check(f"({len(updates)} update records left)")
        time.sleep(0.5)
    assert {r.key: r.value for r in updates} == latest
    assert all(produced[r.offset] == r.value for r in records)
