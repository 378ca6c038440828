"""Contract: KIP-320 leader-epoch checks in cluster mode (issue 16), where a partition's
leader epoch is the metadata log's and moves when its leader does.

Three real shardlog processes (--shards 1, a controller each). A RF=3 topic's partition leader
is killed (kill -9); once the controller has fenced it and moved leadership, the new leader
reports a higher epoch E (raw Metadata v7) and, sent to that leader (raw requests):
  - OffsetForLeaderEpoch, Fetch v11 and ListOffsets v4 with current_leader_epoch E are
    served; E - 1 (older, the killed leader's) is FENCED_LEADER_EPOCH; E + 1 is
    UNKNOWN_LEADER_EPOCH; -1 is not checked;
  - a survivor that does not lead the partition answers NOT_LEADER_OR_FOLLOWER first;
  - stock consumers still read what is produced after the change: confluent-kafka
    (librdkafka) and the Java client (both send the epoch from their metadata in Fetch and
    validate positions with OffsetForLeaderEpoch).
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import pytest

import kafka_wire as wire
from clients import ck_read_all
from harness import unique_topic
from test_cluster import Cluster, agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_cluster_topics import create_topic, produce, same_everywhere
from test_java import java

pytestmark = pytest.mark.cluster

NOT_LEADER_OR_FOLLOWER = 6
API_METADATA = 3
RECORDS = 40


def partition_state(bootstrap: str, topic: str,
                    partition: int) -> tuple[int, int, list[int]] | None:
    """(leader, leader epoch, ISR) of one partition from one node's raw Metadata v7 (which,
    unlike v1, carries the leader epoch); None while the topic or leader is unknown there."""
    body = (wire.i32(1) + wire.string(topic) + wire.i8(0))  # no auto-creation
    answer = wire.roundtrip(bootstrap, wire.frame(wire.header_v1(API_METADATA, 7, 31) + body))
    r = wire.Reader(answer)
    assert r.i32() == 31
    r.i32()  # throttle
    for _ in range(r.i32()):
        r.i32(), r.string(), r.i32(), r.string()
    r.string()  # cluster id
    r.i32()  # controller
    found = None
    for _ in range(r.i32()):
        error, name, _internal = r.i16(), r.string(), r.i8()
        for _ in range(r.i32()):
            _perror, index, leader, epoch = r.i16(), r.i32(), r.i32(), r.i32()
            _replicas, isr, _offline = ([r.i32() for _ in range(r.i32())] for _ in range(3))
            if name == topic and error == 0 and index == partition and leader >= 0:
                found = (leader, epoch, isr)
    return found


def partition_zero(bootstrap: str, topic: str) -> tuple[int, int, list[int]] | None:
    """(leader, leader epoch, ISR) of partition 0 (see `partition_state`)."""
    return partition_state(bootstrap, topic, 0)


def leader_and_epoch(bootstrap: str, topic: str) -> tuple[int, int] | None:
    """(leader, leader epoch) of partition 0 (see `partition_zero`)."""
    found = partition_zero(bootstrap, topic)
    return found[:2] if found else None


def checked(bootstrap: str, topic: str, current: int) -> tuple[int, int, int]:
    """The error codes of OffsetForLeaderEpoch (v4), Fetch (v11) and ListOffsets (v4) for
    partition 0 with `current` as current_leader_epoch."""
    epochs = wire.parse_offset_for_leader_epoch(wire.roundtrip(
        bootstrap, wire.offset_for_leader_epoch(41, 4, topic, [(0, current, 0)]))[4:], 4)
    _, fetched = wire.parse_fetch_v11(wire.roundtrip(
        bootstrap, wire.fetch_v11(42, topic, 0, 0, current, max_wait_ms=100, min_bytes=0))[4:])
    offsets = wire.parse_list_offsets(wire.roundtrip(
        bootstrap, wire.list_offsets(43, 4, topic, 0, -1, current_leader_epoch=current))[4:], 4)
    return epochs[(topic, 0)][0], fetched[0][1], offsets[(topic, 0)][0]


def test_leader_epoch_checks_follow_the_metadata_log(cluster):
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("epochs")
    create_topic(cluster.nodes[1].bootstrap, topic, 1, 3)
    wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, 1))
    first_leader, first_epoch = wait_for(
        "the leader is known", lambda: leader_and_epoch(cluster.nodes[1].bootstrap, topic))
    ok = (wire.ERROR_NONE,) * 3
    # The leader may show the topic in Metadata a moment before its shard has created the
    # partition's log (UNKNOWN_TOPIC_OR_PARTITION until then, which clients retry).
    first_bootstrap = cluster.nodes[first_leader].bootstrap
    wait_for("the leader serves the partition",
             lambda: checked(first_bootstrap, topic, first_epoch) == ok)

    cluster.nodes[first_leader].kill9()
    survivors = [node for node_id, node in cluster.nodes.items() if node_id != first_leader]

    def moved():
        views = {leader_and_epoch(node.bootstrap, topic) for node in survivors}
        if len(views) != 1:
            return None
        view = views.pop()
        return view if view is not None and view[0] != first_leader else None
    leader, epoch = wait_for("leadership moved off the killed node", moved)
    assert epoch > first_epoch
    bootstrap = cluster.nodes[leader].bootstrap
    fenced, unknown = wire.ERROR_FENCED_LEADER_EPOCH, wire.ERROR_UNKNOWN_LEADER_EPOCH
    # The new leader may take a moment to apply the metadata record other nodes have.
    wait_for("the new leader serves its epoch", lambda: checked(bootstrap, topic, epoch) == ok)
    assert checked(bootstrap, topic, -1) == ok
    assert checked(bootstrap, topic, epoch - 1) == (fenced,) * 3
    assert checked(bootstrap, topic, first_epoch) == (fenced,) * 3
    assert checked(bootstrap, topic, epoch + 1) == (unknown,) * 3
    follower = next(node for node in survivors if node is not cluster.nodes[leader])
    assert checked(follower.bootstrap, topic, epoch) == (NOT_LEADER_OR_FOLLOWER,) * 3

    # Consumers read what is produced after the change (the new leader's log).
    produce(follower.bootstrap, topic, RECORDS)
    read = ck_read_all(follower.bootstrap, topic, [0])
    assert sorted(int(r.value[1:]) for r in read[0]) == list(range(RECORDS))
    lines = java("consume", follower.bootstrap, topic, str(RECORDS), "60000")
    assert ["CONSUMED", str(RECORDS)] in lines
