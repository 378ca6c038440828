"""Contract: broker-only nodes (issue 15) observe the metadata log and hold topics like any
other broker.

Three controllers (nodes 1-3) and node 4, a broker only (its id is not in the quorum list):
it fetches the committed metadata log from a voter (a snapshot first, then the entries),
so its shards create the partitions placed on it, it leads and follows like a controller
node, it answers Metadata for every topic, and the raft leader's DescribeQuorum lists it as
an observer. Stock clients (confluent-kafka, the Java
client) talk to it:
  (a) a topic created through node 4 (forwarded to the active controller) with partition 0
      on [4, 1] and partition 1 on [1, 4]: every node, node 4 included, shows the same
      layout; records produced with acks=all through node 4 read back in full from both;
  (b) node 1 killed -9: node 4 takes the leadership of partition 1 (it is in the ISR) and
      serves every acknowledged record of both partitions;
  (c) node 1 back, then node 4 killed -9 (node 1 leads both) and restarted: it catches up
      from a snapshot again, re-registers, rejoins both ISRs with every record, and the Java
      client reads every record through it.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from clients import ck_read_all
from harness import Broker, partition_gauge, unique_topic
from test_cluster import Cluster, agreed_view, clean_up_nodes, describe_quorum_v1, wait_for
from test_cluster_topics import produce, same_everywhere
from test_java import java

pytestmark = pytest.mark.cluster

RECORDS = 400


@pytest.fixture
def with_broker_only(request):
    c = Cluster(request.node.name, size=3)
    c.nodes[4] = Broker(f"{request.node.name}-node4", shards=1,
                        extra_args=c.node_args(4, controller=False))
    try:
        yield c.start()
    finally:
        clean_up_nodes(request, list(c.nodes.values()))


def read_values(bootstrap: str, topic: str) -> dict[int, list[str]]:
    read = ck_read_all(bootstrap, topic, [0, 1])
    return {p: [record.value.decode() for record in records] for p, records in read.items()}


def test_a_broker_only_node_holds_leads_and_follows_partitions(with_broker_only):
    cluster = with_broker_only
    nodes = list(cluster.nodes.values())
    node1, node4 = cluster.nodes[1], cluster.nodes[4]
    controller, _ = wait_for("four brokers registered",
                             lambda: agreed_view(nodes, {1, 2, 3, 4}))
    # DescribeQuorum lists node 4 as an observer of the metadata log (not a voter).
    quorum = wait_for("the leader lists observer 4",
                      lambda: (lambda answer: answer if [o["id"] for o in answer["observers"]]
                               == [4] else None)(
                          describe_quorum_v1(cluster.nodes[controller].bootstrap)))
    assert sorted(v["id"] for v in quorum["voters"]) == [1, 2, 3]
    assert quorum["observers"][0]["last_fetch"] > 0

    # (a) Created through the broker-only node; laid out on it.
    topic = unique_topic("observed")
    admin = AdminClient({"bootstrap.servers": node4.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replica_assignment=[[4, 1], [1, 4]])],
                        operation_timeout=20)[topic].result(timeout=40)
    layout = wait_for("every node shows the topic with both replicas in sync",
                      lambda: (lambda seen: seen if seen and all(len(isr) == 2 for _, _, isr
                                                                 in seen.values()) else None)(
                          same_everywhere(nodes, topic, 2)))
    assert layout[0][:2] == (4, (4, 1)), layout
    assert layout[1][:2] == (1, (1, 4)), layout
    per_partition = produce(node4.bootstrap, topic, RECORDS)
    assert sum(per_partition.values()) == RECORDS and len(per_partition) == 2, per_partition
    expected = read_values(node4.bootstrap, topic)
    assert {p: len(values) for p, values in expected.items()} == per_partition
    assert read_values(node1.bootstrap, topic) == expected
    # Node 4's follower copy of partition 1 has every record.
    wait_for("node 4 copied partition 1",
             lambda: partition_gauge(node4, "high_watermark", topic, 1) == per_partition[1]
             or None)

    # (b) Node 1 dies: node 4 leads partition 1 and serves both partitions in full.
    node1.kill9()
    survivors = [cluster.nodes[n] for n in (2, 3, 4)]
    wait_for("node 4 leads partition 1",
             lambda: (lambda seen: seen if seen and seen[1][0] == 4 else None)(
                 same_everywhere(survivors, topic, 2)))
    # Metadata names node 4 a moment before its shard has taken the leadership
    # (NOT_LEADER_OR_FOLLOWER meanwhile, which wait_for retries).
    wait_for("node 4 serves every record",
             lambda: read_values(node4.bootstrap, topic) == expected or None)

    node1.start()
    wait_for("node 1 back in both ISRs",
             lambda: (lambda seen: seen if seen and all(len(isr) == 2 for _, _, isr
                                                        in seen.values()) else None)(
                 same_everywhere(nodes, topic, 2)))

    # (c) Node 4 dies and restarts with an empty image: a snapshot brings the topic back.
    node4.kill9()
    others = [cluster.nodes[n] for n in (1, 2, 3)]
    wait_for("node 1 leads both partitions",
             lambda: (lambda seen: seen if seen and {seen[0][0], seen[1][0]} == {1}
                      else None)(same_everywhere(others, topic, 2)))
    node4.start()
    wait_for("node 4 registered again", lambda: agreed_view(nodes, {1, 2, 3, 4}))
    wait_for("node 4 back in both ISRs",
             lambda: (lambda seen: seen if seen and all(4 in isr for _, _, isr
                                                        in seen.values()) else None)(
                 same_everywhere(nodes, topic, 2)))
    for partition, count in per_partition.items():
        wait_for(f"node 4 has partition {partition} up to its high watermark",
                 lambda: partition_gauge(node4, "high_watermark", topic, partition) == count
                 or None)
    consumed = java("consume", node4.bootstrap, topic, str(RECORDS), "60000")
    assert sum(1 for line in consumed if line[0] == "REC") == RECORDS, consumed[-3:]
