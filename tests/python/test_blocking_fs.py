"""Contract (issue 14, item 4): a blocking file-system call made while a shard serves (the
catalog write of CreateTopics/DeleteTopics, a new partition's directory claim, a deleted
partition's directory removal) runs off the shard thread, so the shard keeps answering its
other clients while the call is in progress.

The test-only gate hook (`SHARDLOG_TEST_FS_GATE=<op>:<dir>`, src/storage/blocking_fs.rs)
holds the named operation, wherever it runs, until the test releases it. With one shard, the
admin request, the held operation and the probing clients all share that shard. The test
asserts ordering, not timings: while the operation is held (it reported `reached` and the
admin request is still unanswered), ApiVersions, Metadata and an acks=all produce to another
topic are answered. Were the operation on the shard thread, none of them could be.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import NewTopic

import kafka_wire as wire
from clients import (ADMIN_TIMEOUT_S, METADATA_TIMEOUT_S, Deadline, ck_admin, ck_create_topic, ck_partition_count,
                     ck_produce, ck_producer)
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
