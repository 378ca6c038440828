"""Contract: partition reassignment (issue 16, KIP-455).

Three shardlog processes (--shards 1, a controller each), a topic of one partition with two
replicas on nodes 1 and 2 and 300 acknowledged records:
  (a) the Java client's alterPartitionReassignments moves it to [3, 2]: node 3 copies the
      data, joins the ISR, the move completes (every node's metadata shows replicas [3, 2],
      ListPartitionReassignments lists nothing) and node 3 leads (the preferred replica
      after ElectLeaders is not needed: node 1, the leader, was removed, so leadership
      moved to the first target replica in the ISR); node 1, no replica any more, empties
      its copy (its partition size in /metrics drops to 0);
  (b) with node 2 killed (kill -9), node 3 alone serves all 300 records to a confluent-kafka
      consumer: the data was copied, not just the metadata;
  (c) `shardlog topic reassign --wait` moves it to [1, 3] (node 1 copies it afresh) and
      reports it complete;
  (d) a move to a stopped broker stays in progress (the Java client's
      listPartitionReassignments shows the adding and removing replicas) until
      `shardlog topic reassign --cancel` restores the original replicas.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import subprocess

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
import pytest

from harness import broker_binary, partition_gauge, unique_topic
from test_cluster import agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_cluster_topics import produce, topic_metadata
from test_java import java

pytestmark = pytest.mark.cluster

RECORDS = 300


def layout(nodes, topic: str):
    """(leader, replicas, sorted ISR) of partition 0 when every node reports the same."""
    views = set()
    for node in nodes:
        error, partitions = topic_metadata(node, topic)
        if error != 0 or 0 not in partitions:
            return None
        leader, replicas, isr = partitions[0]
        views.add((leader, replicas, tuple(sorted(isr))))
    return views.pop() if len(views) == 1 else None


def settled(nodes, topic: str, replicas: tuple[int, ...]):
    """The layout once the partition's replicas are `replicas`, all in sync, with a leader."""
    seen = layout(nodes, topic)
    if seen and seen[1] == replicas and seen[2] == tuple(sorted(replicas)) and seen[0] >= 0:
        return seen
    return None


def moving(bootstrap: str) -> list[list[str]]:
    """The Java client's listPartitionReassignments: [topic, partition, replicas, adding,
    removing] per move in progress."""
    lines = java("reassignments", bootstrap)
    assert ["LISTED"] in lines, lines
    return [line[1:] for line in lines if line[0] == "MOVING"]


def cli(bootstrap: str, *args: str) -> str:
    run = subprocess.run([str(broker_binary()), *args, "--bootstrap-server", bootstrap],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{args}: {run.returncode}\n{run.stdout}\n{run.stderr}"
    return run.stdout


def read_all(bootstrap: str, topic: str) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("unused"),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[str] = []
    try:
        def everything():
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    seen.append(message.value().decode())
            return len(seen) >= RECORDS or None
        wait_for("every record read", everything)
    finally:
        consumer.close()
    return seen


def test_a_partition_moves_to_other_brokers_with_its_data(cluster):
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("reassign")
    admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]])],
                        operation_timeout=20)[topic].result(timeout=40)
    wait_for("the topic on nodes 1 and 2", lambda: settled(nodes, topic, (1, 2)))
    everyone = ",".join(node.bootstrap for node in nodes)
    assert produce(everyone, topic, RECORDS) == {0: RECORDS}

    # (a) The Java client moves it to [3, 2].
    assert ["REASSIGN", "OK"] in java("reassign", everyone, topic, "0", "3,2")
    leader, _, _ = wait_for("the move completed", lambda: settled(nodes, topic, (3, 2)))
    assert leader in (3, 2)
    assert leader == 3, "node 1 led and was removed: the first target replica in sync leads"
    wait_for("nothing listed as moving", lambda: moving(everyone) == [] or None)
    # Node 1 is no replica any more: its copy is emptied (Kafka deletes a removed replica).
    wait_for("node 1 emptied its copy",
             lambda: partition_gauge(cluster.nodes[1], "size_bytes", topic) == 0 or None)

    # (b) Node 3 alone has every record.
    cluster.nodes[2].kill9()
    survivors = [cluster.nodes[1], cluster.nodes[3]]
    wait_for("node 3 leads alone", lambda: (lambda l: l if l and l[0] == 3 else None)(
        layout(survivors, topic)))
    seen = read_all(cluster.nodes[3].bootstrap, topic)
    assert sorted(seen, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(RECORDS)]
    cluster.nodes[2].start()
    wait_for("node 2 rejoined", lambda: agreed_view(nodes, {1, 2, 3}))
    wait_for("node 2 back in sync", lambda: settled(nodes, topic, (3, 2)))

    # (c) The CLI moves it to [1, 3] and waits for the end.
    out = cli(everyone, "topic", "reassign", topic, "--partition", "0", "--replicas", "1,3",
              "--wait", "90")
    assert "complete" in out, out
    wait_for("every node shows [1, 3]", lambda: settled(nodes, topic, (1, 3)))

    # (d) A move to a stopped broker stays in progress until cancelled.
    cluster.nodes[2].kill9()
    survivors = [cluster.nodes[1], cluster.nodes[3]]
    live = ",".join(node.bootstrap for node in survivors)
    assert ["REASSIGN", "OK"] in java("reassign", live, topic, "0", "2,3")
    listed = wait_for("the move is listed", lambda: moving(live) or None)
    assert listed == [[topic, "0", "2,3,1", "2", "1"]], listed
    out = cli(live, "topic", "reassign", topic, "--partition", "0", "--cancel")
    assert "cancelled" in out, out
    wait_for("back on [1, 3]", lambda: settled(survivors, topic, (3, 1)) or
             settled(survivors, topic, (1, 3)))
    assert moving(live) == []


def test_a_replica_behind_the_leaders_log_start_starts_its_log_there(cluster):
    """DeleteRecords on a replicated partition, then a replica added behind it:
      (a) DeleteRecords to offset 200 on the leader (node 1) answers once the follower's log
          start moved too: with node 1 killed right after the answer, node 2 leads and its
          earliest offset is 200 (deleted records do not come back after a failover);
      (b) node 3, added by a reassignment to [3, 2], starts empty and asks for offset 0,
          below the leader's log start: it restarts its log at 200 (Kafka's
          truncateFullyAndStartAt) and copies the rest, and the move completes;
      (c) with node 2 killed, node 3 alone serves offsets 200..299 and nothing below.
    """
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("log-start")
    everyone = ",".join(node.bootstrap for node in nodes)
    admin = AdminClient({"bootstrap.servers": everyone})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]])],
                        operation_timeout=20)[topic].result(timeout=40)
    wait_for("the topic on nodes 1 and 2", lambda: settled(nodes, topic, (1, 2)))
    assert produce(everyone, topic, RECORDS) == {0: RECORDS}
    deleted = admin.delete_records([TopicPartition(topic, 0, 200)], request_timeout=30)
    low = list(deleted.values())[0].result(timeout=40)
    assert low.low_watermark == 200, low
    # DeleteRecords answered once the follower's log start followed (Kafka's
    # DelayedDeleteRecords): killing the leader right away loses no deletion.
    total = RECORDS

    # (a) The follower's log start follows the leader's.
    def watermarks(bootstrap: str):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("unused")})
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
        finally:
            consumer.close()
    cluster.nodes[1].kill9()
    survivors = [cluster.nodes[2], cluster.nodes[3]]
    wait_for("node 2 leads", lambda: (lambda l: l if l and l[0] == 2 else None)(
        layout(survivors, topic)))
    assert wait_for("node 2 answers", lambda: watermarks(cluster.nodes[2].bootstrap)) == \
        (200, total)
    cluster.nodes[1].start()
    wait_for("node 1 rejoined", lambda: agreed_view(nodes, {1, 2, 3}))

    # (b) Node 3 joins with nothing and starts at the leader's log start.
    out = cli(everyone, "topic", "reassign", topic, "--partition", "0", "--replicas", "3,2",
              "--wait", "90")
    assert "complete" in out, out
    wait_for("every node shows [3, 2]", lambda: settled(nodes, topic, (3, 2)))

    # (c) Node 3 alone: offsets 200..300, nothing below (once its /metrics shows that it took
    # the leader's log start from a fetch answer).
    wait_for("node 3's log starts at 200",
             lambda: partition_gauge(cluster.nodes[3], "log_start_offset", topic) == 200 or None)
    cluster.nodes[2].kill9()
    survivors = [cluster.nodes[1], cluster.nodes[3]]
    wait_for("node 3 leads alone", lambda: (lambda l: l if l and l[0] == 3 else None)(
        layout(survivors, topic)))
    assert wait_for("node 3 answers", lambda: watermarks(cluster.nodes[3].bootstrap)) == \
        (200, total)
    consumer = Consumer({"bootstrap.servers": cluster.nodes[3].bootstrap,
                         "group.id": unique_topic("unused"), "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 200)])
    seen: list[tuple[int, str]] = []
    try:
        def rest():
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    seen.append((message.offset(), message.value().decode()))
            return len(seen) >= total - 200 or None
        wait_for("offsets 200..300 read", rest)
    finally:
        consumer.close()
    assert seen == [(offset, f"v{offset}") for offset in range(200, total)]
