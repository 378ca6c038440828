"""Contract: preferred leaders come back (Kafka ElectLeaders, API 43, and auto leader
rebalance) in cluster mode.

Three real shardlog processes (--shards 1, a controller each). An RF=3 topic's partition 0 is
led by its preferred replica (the first of its replica list: the leader at creation, when every
broker is unfenced). Records are produced with acks=all; then the leader is killed (kill -9),
leadership moves, and the killed node restarts and is added back to the ISR. Then:
  (a) ElectLeaders PREFERRED through a stock client (confluent-kafka's AdminClient) succeeds
      for the partition; every node then shows the preferred replica leading again at a
      higher leader epoch; a second ElectLeaders answers ELECTION_NOT_NEEDED; an unknown
      partition gets UNKNOWN_TOPIC_OR_PARTITION; consumers still read every record produced
      before, exactly once and in order;
  (b) with a short `--leader-imbalance-check-interval-ms`, the active controller moves the
      leadership back by itself (auto leader rebalance), with no ElectLeaders request;
  (c) a single broker (no quorum) leads every partition: ElectLeaders answers
      ELECTION_NOT_NEEDED for a known partition and UNKNOWN_TOPIC_OR_PARTITION otherwise.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import pytest
from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient

from clients import ck_create_topic, ck_read_all, ck_watermarks
from harness import unique_topic
from test_cluster import Cluster, agreed_view, clean_up_nodes, cluster, wait_for  # noqa: F401 (fixture)
from test_cluster_leader_epochs import leader_and_epoch, partition_zero
from test_cluster_topics import create_topic, produce, same_everywhere

pytestmark = pytest.mark.cluster

RECORDS = 100
ELECTION_NOT_NEEDED = 84
UNKNOWN_TOPIC_OR_PARTITION = 3
# The auto-rebalance test's check interval (the config's floor is 1000 ms).
IMBALANCE_CHECK_INTERVAL_MS = 1000
ELECT_TIMEOUT_S = 30.0


def agreed_leader(nodes, topic: str) -> tuple[int, int] | None:
    """(leader, epoch) of partition 0 that every node in `nodes` agrees on."""
    views = {leader_and_epoch(node.bootstrap, topic) for node in nodes}
    return views.pop() if len(views) == 1 else None


def displace_the_preferred_leader(cluster) -> tuple[str, int, int, list[str]]:
    """Creates an RF=3 topic, produces RECORDS with acks=all, kills its leader (the preferred
    replica), waits for the move, restarts it and waits until it is back in the ISR.
    Returns (topic, preferred replica, leader epoch after the move, values produced)."""
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("preferred")
    create_topic(cluster.nodes[1].bootstrap, topic, 1, 3)
    wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, 1))
    preferred, first_epoch = wait_for(
        "the leader is known", lambda: leader_and_epoch(cluster.nodes[1].bootstrap, topic))
    produce(cluster.nodes[preferred].bootstrap, topic, RECORDS)
    expected = [f"v{index}" for index in range(RECORDS)]

    cluster.nodes[preferred].kill9()
    survivors = [node for node_id, node in cluster.nodes.items() if node_id != preferred]

    def moved():
        view = agreed_leader(survivors, topic)
        return view if view is not None and view[0] != preferred else None
    other, moved_epoch = wait_for("leadership moved off the killed node", moved)
    assert moved_epoch > first_epoch
    cluster.nodes[preferred].start()
    wait_for("the restarted node rejoined", lambda: agreed_view(nodes, {1, 2, 3}))
    leader_bootstrap = cluster.nodes[other].bootstrap

    def isr_complete():
        found = partition_zero(leader_bootstrap, topic)
        return found is not None and sorted(found[2]) == [1, 2, 3]
    wait_for("the restarted node is back in the ISR", isr_complete)
    return topic, preferred, moved_epoch, expected


def elect(bootstrap: str, partitions: list[TopicPartition]) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # No timeout keywords: confluent-kafka 2.16's binding fails on them (SystemError, "more
    # argument specifiers than keyword list entries"); the future's wait bounds the call.
    future = admin.elect_leaders(ElectionType.PREFERRED, partitions)
    return future.result(timeout=ELECT_TIMEOUT_S)


def error_code(outcome) -> int:
    """A partition's outcome: None, or a KafkaError (or a KafkaException wrapping one)."""
    if outcome is None:
        return 0
    error = outcome.args[0] if isinstance(outcome, Exception) else outcome
    return error.code()


def test_elect_leaders_gives_the_preferred_replica_its_leadership_back(cluster):
    topic, preferred, moved_epoch, expected = displace_the_preferred_leader(cluster)
    nodes = list(cluster.nodes.values())
    asked = next(node for node_id, node in cluster.nodes.items() if node_id != preferred)

    outcome = elect(asked.bootstrap, [TopicPartition(topic, 0)])
    assert [error_code(value) for value in outcome.values()] == [0], outcome

    def back():
        view = agreed_leader(nodes, topic)
        return view if view is not None and view[0] == preferred else None
    _, epoch = wait_for("the preferred replica leads again everywhere", back)
    assert epoch > moved_epoch

    again = elect(asked.bootstrap, [TopicPartition(topic, 0), TopicPartition(topic, 9)])
    codes = {tp.partition: error_code(value) for tp, value in again.items()}
    assert codes == {0: ELECTION_NOT_NEEDED, 9: UNKNOWN_TOPIC_OR_PARTITION}, again

    bootstrap = cluster.nodes[preferred].bootstrap
    wait_for("the preferred leader's high watermark covers what was acknowledged",
             lambda: ck_watermarks(bootstrap, topic, 0)[1] >= len(expected))
    read = ck_read_all(bootstrap, topic, [0])
    assert [record.value.decode() for record in read.get(0, [])] == expected


@pytest.fixture
def rebalancing_cluster(request):
    c = Cluster(request.node.name)
    for node in c.nodes.values():
        node.extra_args += ["--leader-imbalance-check-interval-ms",
                            str(IMBALANCE_CHECK_INTERVAL_MS)]
    try:
        yield c.start()
    finally:
        clean_up_nodes(request, list(c.nodes.values()))


def test_auto_leader_rebalance_moves_leadership_back(rebalancing_cluster):
    cluster = rebalancing_cluster
    topic, preferred, moved_epoch, expected = displace_the_preferred_leader(cluster)
    nodes = list(cluster.nodes.values())

    def back():
        view = agreed_leader(nodes, topic)
        return view if view is not None and view[0] == preferred else None
    _, epoch = wait_for("the controller gave the preferred replica its leadership back", back)
    assert epoch > moved_epoch
    bootstrap = cluster.nodes[preferred].bootstrap
    wait_for("the preferred leader's high watermark covers what was acknowledged",
             lambda: ck_watermarks(bootstrap, topic, 0)[1] >= len(expected))
    read = ck_read_all(bootstrap, topic, [0])
    assert [record.value.decode() for record in read.get(0, [])] == expected


def test_a_single_broker_needs_no_election(broker):
    topic = unique_topic("single")
    ck_create_topic(broker.bootstrap, topic, 2)
    outcome = elect(broker.bootstrap, [TopicPartition(topic, 1), TopicPartition(topic, 7)])
    codes = {tp.partition: error_code(value) for tp, value in outcome.items()}
    assert codes == {1: ELECTION_NOT_NEEDED, 7: UNKNOWN_TOPIC_OR_PARTITION}, outcome
