"""Contract: partition data replication (issue 16) between real shardlog processes.

Three shardlog processes (--shards 1, a controller each). On an RF=3 topic, followers copy the
leader's batches with replica Fetch over the Kafka port, and acks=all completes once every ISR
member has the batch (the high watermark passed it). So:
  (a) every record acknowledged with acks=all (confluent-kafka, idempotent; kafka-python)
      before the partition leader is killed (kill -9) is served by the new leader, exactly
      once and in order, to confluent-kafka, kafka-python and the Java client;
  (b) records produced after the failover are replicated too: a second leader kill loses
      none of them either (the remaining two replicas are the ISR);
  (c) the killed leader restarts, follows the new leader and, once caught up, is added back
      to the ISR (AlterPartition from the leader through the controller);
  (d) the ISR and min.insync.replicas rule acks=all (see the test's docstring);
  (e) SIGTERM of the leader under load: controlled shutdown, nothing lost, nothing failed.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import kafka.errors
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clients import ck_read_all, ck_watermarks, kp_produce, kp_producer, kp_read_all
from harness import unique_topic
from test_cluster import Cluster, agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_cluster_leader_epochs import leader_and_epoch, partition_zero
from test_cluster_topics import create_topic, produce, same_everywhere, set_topic_config
from test_java import java

pytestmark = pytest.mark.cluster

RECORDS = 200


def values_of(read: dict[int, list]) -> list[str]:
    return [record.value.decode() for record in read.get(0, [])]


def new_leader(nodes, topic: str, not_on: set[int]) -> tuple[int, int] | None:
    """(leader, epoch) of partition 0 that every node in `nodes` agrees on, off `not_on`."""
    views = {leader_and_epoch(node.bootstrap, topic) for node in nodes}
    if len(views) != 1:
        return None
    view = views.pop()
    return view if view is not None and view[0] not in not_on else None


def test_acknowledged_records_survive_leader_kills(cluster):
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("replicated")
    create_topic(cluster.nodes[1].bootstrap, topic, 1, 3)
    wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, 1))
    first, first_epoch = wait_for("the leader is known",
                                  lambda: leader_and_epoch(cluster.nodes[1].bootstrap, topic))

    # (a) acks=all through two stock producers, then kill -9 the leader.
    bootstrap = cluster.nodes[first].bootstrap
    produce(bootstrap, topic, RECORDS)
    producer = kp_producer(bootstrap, acks="all")
    kp_produce(producer, topic, [(None, f"kp{index}".encode(), 0) for index in range(RECORDS)])
    producer.close()
    expected = [f"v{index}" for index in range(RECORDS)] + [f"kp{index}" for index in range(RECORDS)]

    cluster.nodes[first].kill9()
    survivors = [node for node_id, node in cluster.nodes.items() if node_id != first]
    second, second_epoch = wait_for("leadership moved off the killed node",
                                    lambda: new_leader(survivors, topic, {first}))
    assert second_epoch > first_epoch
    bootstrap = cluster.nodes[second].bootstrap
    # The new leader's high watermark moves up once the other survivor fetched from it.
    wait_for("the new leader's high watermark covers what was acknowledged",
             lambda: ck_watermarks(bootstrap, topic, 0)[1] >= len(expected))
    assert values_of(ck_read_all(bootstrap, topic, [0])) == expected
    assert values_of(kp_read_all(bootstrap, topic, [0])) == expected
    lines = java("consume", bootstrap, topic, str(len(expected)), "60000")
    assert ["CONSUMED", str(len(expected))] in lines

    # (c) the killed node comes back, follows the new leader and, caught up, is added back to
    # the ISR by the leader's AlterPartition.
    cluster.nodes[first].start()
    wait_for("the restarted node rejoined", lambda: agreed_view(nodes, {1, 2, 3}))
    wait_for("the restarted node is back in the ISR",
             lambda: sorted(partition_zero(bootstrap, topic)[2]) == [1, 2, 3])

    # (b) more records on the new leader, then kill it too: the third replica has them all.
    produce(bootstrap, topic, RECORDS)
    expected += [f"v{index}" for index in range(RECORDS)]
    third_candidates = [node for node_id, node in cluster.nodes.items() if node_id != second]
    cluster.nodes[second].kill9()
    third, third_epoch = wait_for("leadership moved again",
                                  lambda: new_leader(third_candidates, topic, {second}))
    assert third_epoch > second_epoch
    bootstrap = cluster.nodes[third].bootstrap
    wait_for("the third leader's high watermark covers what was acknowledged",
             lambda: ck_watermarks(bootstrap, topic, 0)[1] >= len(expected))
    read = ck_read_all(bootstrap, topic, [0])
    assert values_of(read) == expected


def test_acks_all_follows_the_isr_and_min_insync_replicas(cluster):
    """(d) With min.insync.replicas=2: a follower stopped (SIGSTOP) is fenced and leaves the
    ISR, and acks=all keeps working on the other two. Raised to 3 (IncrementalAlterConfigs),
    acks=all is refused with NOT_ENOUGH_REPLICAS (kafka-python, no retries) while acks=1
    still works. Resumed (SIGCONT), the follower catches up and the leader adds it back to the
    ISR, and acks=all works again; every record acknowledged is then read back once."""
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("minisr")
    admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    created = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3,
                                            config={"min.insync.replicas": "2"})])
    created[topic].result(timeout=30)
    wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, 1))
    leader, _epoch = wait_for("the leader is known",
                              lambda: leader_and_epoch(cluster.nodes[1].bootstrap, topic))
    bootstrap = cluster.nodes[leader].bootstrap
    stopped_id = next(node_id for node_id in cluster.nodes if node_id != leader)
    stopped = cluster.nodes[stopped_id]
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        produce(bootstrap, topic, RECORDS)
        in_sync = sorted(set(cluster.nodes) - {stopped_id})
        wait_for("the stopped follower left the ISR",
                 lambda: sorted(partition_zero(bootstrap, topic)[2]) == in_sync)
        set_topic_config(bootstrap, topic, "min.insync.replicas", "3")
        refused = kp_producer(bootstrap, acks="all", retries=0)

        def refused_for_replicas():
            try:
                refused.send(topic, value=b"refused", partition=0).get(timeout=30)
            except kafka.errors.NotEnoughReplicasError:
                return True
            return None  # accepted: the new config had not reached the leader yet
        wait_for("acks=all refused below min.insync.replicas", refused_for_replicas)
        refused.close()
        single = kp_producer(bootstrap, acks=1)
        kp_produce(single, topic, [(None, b"acks1", 0)])
        single.close()
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    wait_for("the resumed follower is back in the ISR",
             lambda: sorted(partition_zero(bootstrap, topic)[2]) == [1, 2, 3])
    produce(bootstrap, topic, RECORDS)
    read = values_of(ck_read_all(bootstrap, topic, [0]))
    acked = [value for value in read if value.startswith("v")]
    assert acked == [f"v{index}" for index in range(RECORDS)] * 2
    assert read.count("acks1") == 1


def test_sigterm_of_the_leader_loses_nothing_and_fails_nothing(cluster):
    """(e) SIGTERM of the partition leader while an idempotent confluent-kafka producer
    (acks=all) keeps sending: the node's controlled shutdown moves leadership to an ISR member
    before it stops (exit 0), the producer sees only retriable errors (every record is
    delivered, none fails), and every record is read back once and in order."""
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("sigterm")
    create_topic(cluster.nodes[1].bootstrap, topic, 1, 3)
    wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, 1))
    leader, epoch = wait_for("the leader is known",
                             lambda: leader_and_epoch(cluster.nodes[1].bootstrap, topic))
    bootstrap = ",".join(node.bootstrap for node in nodes)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2,
                         "message.timeout.ms": 120000})
    delivered: list[str] = []
    failed: list = []

    def on_delivery(err, msg):
        if err:
            failed.append(err)
        else:
            delivered.append(msg.value().decode())
    stopper = threading.Thread(target=cluster.nodes[leader].stop)
    total = 3 * RECORDS
    for index in range(total):
        producer.produce(topic, value=f"s{index}".encode(), partition=0,
                         on_delivery=on_delivery)
        producer.poll(0)
        if index == RECORDS:
            producer.flush(60)
            stopper.start()  # the rest is sent while the leader shuts down
        time.sleep(0.002)
    assert producer.flush(120) == 0, "records left undelivered"
    stopper.join()
    assert cluster.nodes[leader].proc.returncode == 0, cluster.nodes[leader].stderr_tail()
    assert not failed, failed[:3]
    survivors = [node for node_id, node in cluster.nodes.items() if node_id != leader]
    moved, moved_epoch = wait_for("leadership moved off the stopped node",
                                  lambda: new_leader(survivors, topic, {leader}))
    assert moved_epoch > epoch
    expected = [f"s{index}" for index in range(total)]
    assert sorted(delivered, key=lambda v: int(v[1:])) == expected
    new_bootstrap = cluster.nodes[moved].bootstrap
    wait_for("the new leader's high watermark covers every record",
             lambda: ck_watermarks(new_bootstrap, topic, 0)[1] >= total)
    assert values_of(ck_read_all(new_bootstrap, topic, [0])) == expected
