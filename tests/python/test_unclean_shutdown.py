"""Contract: unclean-shutdown detection and eligible leader replicas (KIP-966, issue 16)
between real shardlog processes.

Five nodes, each a controller (so two can be down and the metadata quorum still decides),
hold an RF=2 topic on [4, 5] with
min.insync.replicas=2, so the ISR falls below the minimum as soon as one replica leaves
and the controller keeps the leaving replica as an eligible leader (ELR). The Java client
(Admin.describeTopics, served by DescribeTopicPartitions) shows leader, ISR, ELR and
last-known ELR as the controller decided them:
  (a) node 5 stopped with SIGTERM (a clean shutdown: it leaves `broker.clean-shutdown` with
      its broker epoch), then the leader 4 killed -9: the partition has no leader. Node 5
      starts again, registers with the epoch of that clean shutdown, stays eligible and is
      elected: it serves every record acknowledged with acks=all.
  (b) node 5 killed -9 instead, then the leader 4 stopped with SIGTERM: node 5 registers
      after an unclean shutdown, may have lost unsynced data, leaves the ELR and is NOT
      elected (the partition stays offline; 5 is in the last-known ELR) — until node 4, the
      other eligible replica, comes back from its clean stop and leads with every
      acknowledged record.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from clients import ck_read_all
from harness import Broker, partition_gauge, unique_topic
from test_cluster import Cluster, agreed_view, clean_up_nodes, wait_for
from test_cluster_topics import produce, same_everywhere
from test_java import java

pytestmark = pytest.mark.cluster

RECORDS = 100
MARKER = "broker.clean-shutdown"


def partition_zero(bootstrap: str, topic: str) -> dict[str, str]:
    """Partition 0 as the Java Admin describes it: leader, isr, elr, lastknownelr."""
    lines = java("describeisr", bootstrap, topic)
    fields = next(line for line in lines if line[:2] == ["PARTITION", "0"])
    return dict(zip(fields[2::2], fields[3::2]))


@pytest.fixture
def five(request):
    c = Cluster(request.node.name, size=5)
    try:
        yield c.start()
    finally:
        clean_up_nodes(request, list(c.nodes.values()))


def setup_topic(cluster) -> tuple[str, Broker, Broker, str]:
    node4, node5 = cluster.nodes[4], cluster.nodes[5]
    nodes = list(cluster.nodes.values())
    wait_for("five nodes registered", lambda: agreed_view(nodes, {1, 2, 3, 4, 5}))
    topic = unique_topic("elr")
    everyone = ",".join(node.bootstrap for node in nodes)
    admin = AdminClient({"bootstrap.servers": everyone})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[4, 5]],
                                  config={"min.insync.replicas": "2"})],
                        operation_timeout=20)[topic].result(timeout=40)
    wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, 1))
    describer = cluster.nodes[1].bootstrap
    wait_for("leader 4 with ISR 4,5", lambda: (lambda p: p if p["leader"] == "4"
                                              and p["isr"] == "4,5" else None)(
        partition_zero(describer, topic)))
    assert produce(everyone, topic, RECORDS) == {0: RECORDS}
    # The follower learns the high watermark from its fetch answers; wait until node 5 has it
    # all (a replica leading below min.insync.replicas cannot raise it: KIP-966).
    wait_for("node 5 knows the high watermark",
             lambda: partition_gauge(node5, "high_watermark", topic) == RECORDS or None)
    return topic, node4, node5, describer


def read_back(bootstrap: str, topic: str) -> list[str]:
    return [record.value.decode() for record in ck_read_all(bootstrap, topic, [0])[0]]


def test_a_cleanly_stopped_eligible_replica_is_elected_when_it_returns(five):
    topic, node4, node5, describer = setup_topic(five)
    node5.stop()
    assert (node5.data_dir / MARKER).read_text().startswith("broker_epoch="), \
        "a clean stop records its broker epoch"
    eligible = wait_for("5 left the ISR and is eligible", lambda: (lambda p: p if p["isr"] == "4"
                                                                   and p["elr"] == "5" else None)(
        partition_zero(describer, topic)))
    assert eligible["leader"] == "4", eligible
    node4.kill9()
    wait_for("no leader once 4 is fenced",
             lambda: partition_zero(describer, topic)["leader"] == "-1" or None)
    node5.start()
    elected = wait_for("5 elected from the ELR", lambda: (lambda p: p if p["leader"] == "5"
                                                          else None)(
        partition_zero(describer, topic)))
    assert elected["isr"] == "5", elected
    assert not (node5.data_dir / MARKER).exists(), "the marker is consumed at start"
    assert read_back(node5.bootstrap, topic) == [f"v{index}" for index in range(RECORDS)]


def test_a_replica_back_from_a_crash_leaves_the_elr_and_is_not_elected(five):
    topic, node4, node5, describer = setup_topic(five)
    node5.kill9()
    assert not (node5.data_dir / MARKER).exists(), "kill -9 leaves no clean-shutdown marker"
    wait_for("5 fenced, left the ISR and is eligible", lambda: (lambda p: p if p["isr"] == "4"
                                                                 and p["elr"] == "5" else None)(
        partition_zero(describer, topic)))
    node4.stop()
    wait_for("no leader once 4 stopped",
             lambda: partition_zero(describer, topic)["leader"] == "-1" or None)
    node5.start()
    nodes = [five.nodes[node] for node in (1, 2, 3, 5)]
    wait_for("5 registered again", lambda: agreed_view(nodes, {1, 2, 3, 5}))
    after = wait_for("5 left the ELR after its unclean restart",
                     lambda: (lambda p: p if "5" not in p["elr"].split(",") else None)(
                         partition_zero(describer, topic)))
    assert after["leader"] == "-1", f"an uncleanly restarted replica was elected: {after}"
    assert after["elr"] == "4", after
    assert after["lastknownelr"] == "5", after
    node4.start()
    led = wait_for("4, still eligible, leads again", lambda: (lambda p: p if p["leader"] == "4"
                                                              else None)(
        partition_zero(describer, topic)))
    assert "5" not in led["elr"].split(","), led
    assert read_back(node4.bootstrap, topic) == [f"v{index}" for index in range(RECORDS)]
