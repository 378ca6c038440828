"""Contract (issue 20, cluster mode): per-group config overrides (GROUP resource, KIP-848's
GroupConfig) live in the metadata log, as Kafka's do, so every broker answers the same and
whichever broker coordinates the group applies them.

Three shardlog processes (--shards 1, a controller each), the Java Admin client 4.3:
  (a) IncrementalAlterConfigs SET `consumer.heartbeat.interval.ms` = 6000 through node 1
      (forwarded to the active controller): DescribeConfigs on nodes 2 and 3 shows 6000 with
      source GROUP_CONFIG; a consumer-protocol member (ConsumerGroupHeartbeat v0 as clients
      send it) joining through the group's coordinator, whichever node that is, is told to
      heartbeat every 6000 ms, a member of another group the broker's 5000;
  (b) a value outside the broker's bounds is refused through node 2 with INVALID_CONFIG and
      Kafka's message, and the stored override stays;
  (c) node 1 (which took the change) killed -9 and restarted: it still describes 6000 (its
      catalog follows the log);
  (d) DELETE through node 3: every node describes the broker's value again and members get
      5000.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import time

import pytest

import kafka_wire as wire
from harness import unique_topic
from test_cluster import agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_group_coordinator_failover import coordinator_of
from test_group_configs import (BROKER_HEARTBEAT_MS, BROKER_SESSION_MS, HEARTBEAT, RETRIABLE,
                                group_config)

pytestmark = pytest.mark.cluster

JOIN_WAIT_S = 60


def join_through_coordinator(cluster, group: str, topic: str) -> int:
    """A new consumer-protocol member joins `group` through the node a stock admin client
    finds as its coordinator (its FindCoordinator creates the offsets topic on first use)
    and leaves again: the heartbeat interval it was told."""
    deadline = time.monotonic() + JOIN_WAIT_S
    errors = []
    while time.monotonic() < deadline:
        coordinator = coordinator_of(cluster.nodes[1].bootstrap, group)
        node = cluster.nodes.get(coordinator)
        if node is not None:
            body = wire.roundtrip(node.bootstrap, wire.consumer_group_heartbeat_v0(
                7, group, "", 0, topic))
            error, member_id, _epoch, interval_ms = \
                wire.parse_consumer_group_heartbeat_interval(body[4:])
            if error == 0:
                wire.roundtrip(node.bootstrap, wire.consumer_group_heartbeat_v0(
                    8, group, member_id, -1, topic))
                return interval_ms
            assert error in RETRIABLE, f"heartbeat through node {coordinator}: error {error}"
            errors.append(error)
        time.sleep(0.2)
    raise AssertionError(f"no coordinator answered for {group} within {JOIN_WAIT_S} s: "
                         f"{errors[-6:]}")


def described_everywhere(nodes, group: str, expected: tuple[str, str, str]) -> bool:
    return all(group_config(node, group)[1][HEARTBEAT] == expected for node in nodes)


def test_group_configs_live_in_the_metadata_log(cluster):
    nodes = list(cluster.nodes.values())
    node1, node2, node3 = (cluster.nodes[n] for n in (1, 2, 3))
    wait_for("three brokers registered", lambda: agreed_view(nodes, {1, 2, 3}))
    group, other = unique_topic("cgcfg"), unique_topic("cgcfg-other")
    topic = unique_topic("cgcfg-topic")

    # (a) set through node 1; every node describes it; the coordinator hands it out.
    outcome, configs = group_config(node1, group, f"{HEARTBEAT}=6000")
    assert outcome == "ALTERED"
    assert configs[HEARTBEAT] == ("6000", "DYNAMIC_GROUP_CONFIG", "false")
    overridden = ("6000", "DYNAMIC_GROUP_CONFIG", "false")
    wait_for("every node describes the override",
             lambda: described_everywhere(nodes, group, overridden) or None)
    assert join_through_coordinator(cluster, group, topic) == 6000
    assert join_through_coordinator(cluster, other, topic) == BROKER_HEARTBEAT_MS

    # (b) out of the broker's bounds: refused, the override stays.
    outcome, configs = group_config(node2, group, f"{HEARTBEAT}=4999")
    assert outcome == (f"ERROR InvalidConfigurationException {HEARTBEAT} must be greater "
                       "than or equal to group.consumer.min.heartbeat.interval.ms"), outcome
    assert configs[HEARTBEAT] == overridden

    # (c) the node that took the change restarts from kill -9: still there.
    node1.kill9()
    node1.start()
    wait_for("node 1 back", lambda: agreed_view(nodes, {1, 2, 3}))
    wait_for("node 1 describes the override after its restart",
             lambda: described_everywhere([node1], group, overridden) or None)

    # (d) deleted through node 3: the broker's value everywhere, for members too.
    outcome, _ = group_config(node3, group, f"{HEARTBEAT}=")
    assert outcome == "ALTERED"
    default = (str(BROKER_HEARTBEAT_MS), "DEFAULT_CONFIG", "false")
    wait_for("every node describes the broker's value",
             lambda: described_everywhere(nodes, group, default) or None)
    assert group_config(node2, group)[1]["consumer.session.timeout.ms"][0] == \
        str(BROKER_SESSION_MS)
    assert join_through_coordinator(cluster, group, topic) == BROKER_HEARTBEAT_MS
