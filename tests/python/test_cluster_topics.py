"""Cluster mode, topics in the metadata log (issue 15): three real shardlog processes
(--shards 1, a controller each). Topic requests sent to any broker go to the active
controller, which places the replicas and commits the topic to the metadata log; every
broker then holds a local copy of every partition with the log's topic id, and only the
leader the log names serves it (the others answer NOT_LEADER_OR_FOLLOWER) until partition
replication lands (issue 16).

Contract checked with stock clients (confluent-kafka, kafka-python) and raw Metadata /
ListOffsets sent to each node in turn:
  (a) a RF=3 topic created through node 3 shows on every node with the same partitions,
      leaders (one per broker), replicas and ISR, and every node's partition directories carry
      the same topic id;
  (b) records produced through node 1 are all read back, in order per partition, by a
      consumer bootstrapped on node 2 (each client finds the leaders through Metadata);
      ListOffsets to a non-leader gets NOT_LEADER_OR_FOLLOWER;
  (c) creating it again gets TOPIC_ALREADY_EXISTS, a replication factor above the broker
      count gets INVALID_REPLICATION_FACTOR; CreatePartitions through node 2 raises the
      count on every node; DeleteTopics through node 1 removes it (and its directories)
      from every node;
  (d) kill -9 of the active controller: topic creation works again through a survivor once
      a new controller is elected; the restarted node gets the topic created while it was
      down;
  (e) the whole cluster stopped and started again keeps every topic, id and record.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic)
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic
from kafka.errors import TopicAlreadyExistsError

import kafka_wire
from harness import Broker, broker_binary, unique_topic
from test_cluster import Cluster, agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_java import java

pytestmark = pytest.mark.cluster

NOT_LEADER_OR_FOLLOWER = 6
UNKNOWN_TOPIC_OR_PARTITION = 3
REQUEST_TIMED_OUT = 7
RECORDS = 300


def topic_metadata(node: Broker, topic: str):
    """One node's raw Metadata v1 for `topic`: (error, {partition: (leader, replicas, isr)}).
    Asks for every topic: naming one in Metadata v1 would auto-create it."""
    body = kafka_wire.roundtrip(node.bootstrap, kafka_wire.metadata_v1(11, None))
    r = kafka_wire.Reader(body)
    assert r.i32() == 11
    for _ in range(r.i32()):  # brokers
        r.i32(), r.string(), r.i32(), r.string()
    r.i32()  # controller
    found = None
    for _ in range(r.i32()):
        error, name, _internal = r.i16(), r.string(), r.i8()
        partitions = {}
        for _ in range(r.i32()):
            _perror, index, leader = r.i16(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            partitions[index] = (leader, tuple(replicas), tuple(isr))
        if name == topic:
            found = (error, partitions)
    return found if found is not None else (UNKNOWN_TOPIC_OR_PARTITION, {})


def same_everywhere(nodes: list[Broker], topic: str, partitions: int):
    """The topic's layout if every node reports the same one with `partitions` partitions."""
    views = [topic_metadata(node, topic) for node in nodes]
    layouts = {tuple(sorted(parts.items())) for error, parts in views if error == 0}
    if len(layouts) != 1 or any(error != 0 for error, _ in views):
        return None
    layout = dict(layouts.pop())
    return layout if len(layout) == partitions else None


def topic_ids_on_disk(node: Broker, topic: str, partitions: int) -> set[str] | None:
    """The topic ids in a node's partition.metadata files, None until all exist."""
    ids = set()
    for index in range(partitions):
        path = node.data_dir / f"{topic}-{index}" / "partition.metadata"
        if not path.exists():
            return None
        ids.add(path.read_text().strip())
    return ids


def local_configs(node: Broker, topic: str) -> dict[str, str] | None:
    """The configs of `topic` in a node's own catalog (topics.json), None if it has none."""
    catalog = json.loads((node.data_dir / "topics.json").read_text())
    entry = catalog["topics"].get(topic)
    return None if entry is None else entry.get("configs", {})


def set_topic_config(bootstrap: str, topic: str, name: str, value: str | None):
    """IncrementalAlterConfigs SET (or DELETE when `value` is None) through one broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    op = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=40)


def create_topics_v2(node: Broker, topic: str, timeout_ms: int) -> int:
    """Raw CreateTopics v2 (one topic, 1 partition, RF 1) to one node; its error code."""
    w = kafka_wire
    body = (w.i32(1) + w.string(topic) + w.i32(1) + w.i16(1) + w.i32(0) + w.i32(0)
            + w.i32(timeout_ms) + w.i8(0))
    answer = w.roundtrip(node.bootstrap, w.frame(w.header_v1(19, 2, 13) + body))
    r = w.Reader(answer)
    assert r.i32() == 13
    r.i32()  # throttle_time_ms
    assert r.i32() == 1
    assert r.string() == topic
    return r.i16()


def create_topic(bootstrap: str, topic: str, partitions: int, replication: int):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, replication)],
                                  operation_timeout=20, request_timeout=30)
    futures[topic].result(timeout=40)


def create_until_it_works(nodes: list[Broker], topic: str):
    """CreateTopics through the given nodes until one call succeeds (a controller may be
    being elected: the errors meanwhile are retriable)."""
    def attempt():
        for node in nodes:
            try:
                create_topic(node.bootstrap, topic, 1, len(nodes))
                return True
            except KafkaException as error:
                last = error.args[0]
                if last.code() == 36:  # TOPIC_ALREADY_EXISTS: an earlier try went through
                    return True
        return False
    wait_for(f"creating {topic} through the survivors", attempt)


def produce(bootstrap: str, topic: str, count: int) -> dict[int, int]:
    """Produces `count` keyed records; how many went to each partition."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    errors = []
    per_partition: dict[int, int] = {}

    def delivered(err, msg):
        if err:
            errors.append(err)
        else:
            per_partition[msg.partition()] = per_partition.get(msg.partition(), 0) + 1
    for index in range(count):
        producer.produce(topic, key=f"k{index % 17}".encode(), value=f"v{index}".encode(),
                         on_delivery=delivered)
    assert producer.flush(60) == 0, "records left undelivered"
    assert not errors, errors[:3]
    return per_partition


def opened_log_end(node: Broker, topic: str, partition: int) -> int | None:
    """The log end offset the node's current process logged when it opened the partition."""
    pattern = re.compile(rf"partition opened .*partition={re.escape(topic)}-{partition} "
                         r"log_end_offset=(\d+)")
    found = pattern.findall(node.log_path.read_text(errors="replace"))
    return int(found[-1]) if found else None


def consume_all(bootstrap: str, topic: str, count: int) -> dict[int, list[str]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=2000,
                             group_id=None)
    by_partition: dict[int, list[str]] = {}
    deadline = time.monotonic() + 60
    seen = 0
    try:
        while seen < count and time.monotonic() < deadline:
            for message in consumer:
                by_partition.setdefault(message.partition, []).append(message.value.decode())
                seen += 1
                if seen >= count:
                    break
    finally:
        consumer.close()
    return by_partition


def test_topics_go_through_the_quorum_and_are_served_by_their_leaders(cluster):
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("orders")
    # (a) created through node 3; the same layout on every node.
    create_topic(cluster.nodes[3].bootstrap, topic, 3, 3)
    layout = wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, 3))
    leaders = {leader for leader, _, _ in layout.values()}
    assert leaders == {1, 2, 3}, layout
    for leader, replicas, isr in layout.values():
        assert sorted(replicas) == [1, 2, 3] and sorted(isr) == [1, 2, 3], layout
        assert replicas[0] == leader, layout
    ids = [wait_for(f"{node.bootstrap} holds the partitions",
                    lambda node=node: topic_ids_on_disk(node, topic, 3)) for node in nodes]
    assert all(len(found) == 1 for found in ids) and len(set.union(*ids)) == 1, ids

    # (b) produce through node 1, consume through node 2.
    produce(cluster.nodes[1].bootstrap, topic, RECORDS)
    by_partition = consume_all(cluster.nodes[2].bootstrap, topic, RECORDS)
    values = sorted(v for vs in by_partition.values() for v in vs)
    assert values == sorted(f"v{i}" for i in range(RECORDS))
    for partition_values in by_partition.values():
        numbers = [int(v[1:]) for v in partition_values]
        assert numbers == sorted(numbers), "records out of order within a partition"
    for index, (leader, _, _) in layout.items():
        follower = next(n for node_id, n in cluster.nodes.items() if node_id != leader)
        body = kafka_wire.roundtrip(follower.bootstrap,
                                    kafka_wire.list_offsets(5, 1, topic, index, -1))
        answer = kafka_wire.parse_list_offsets(body[4:], 1)
        assert answer[(topic, index)][0] == NOT_LEADER_OR_FOLLOWER, answer

    # The Java client (idempotent by default, acks=all): through node 3, read through node 1.
    # Its producer id comes from a block of the metadata log, so every leader accepts it.
    java_topic = unique_topic("java")
    create_topic(cluster.nodes[1].bootstrap, java_topic, 3, 3)
    wait_for("every node shows the Java topic", lambda: same_everywhere(nodes, java_topic, 3))
    lines = java("produce", cluster.nodes[3].bootstrap, java_topic, "600", "all", "lz4", "true")
    acked = [(int(line[2]), int(line[3])) for line in lines if line[0] == "ACK"]
    assert len(acked) == 600 and ["PRODUCED", "600"] in lines
    for partition in range(3):
        offsets = sorted(offset for p, offset in acked if p == partition)
        assert offsets == list(range(len(offsets))), f"partition {partition}: not contiguous"
    lines = java("consume", cluster.nodes[1].bootstrap, java_topic, "600", "60000")
    assert ["CONSUMED", "600"] in lines

    # Topic configs change through the controller and reach every node's copy.
    set_topic_config(cluster.nodes[2].bootstrap, topic, "retention.ms", "3600000")
    wait_for("every node's copy has the new config", lambda: all(
        (local_configs(node, topic) or {}).get("retention.ms") == "3600000" for node in nodes))
    set_topic_config(cluster.nodes[3].bootstrap, topic, "retention.ms", None)
    wait_for("every node's copy dropped it", lambda: all(
        local_configs(node, topic) == {} for node in nodes))

    # The shardlog CLI: create with --replication-factor through one node, describe through
    # another (leader, replicas and ISR per partition).
    cli_topic = unique_topic("cli")
    run = subprocess.run([str(broker_binary()), "topic", "create", cli_topic, "--partitions",
                          "2", "--replication-factor", "3", "--bootstrap-server",
                          cluster.nodes[1].bootstrap], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    cli_layout = wait_for("every node shows the CLI's topic",
                          lambda: same_everywhere(nodes, cli_topic, 2))
    run = subprocess.run([str(broker_binary()), "topic", "describe", cli_topic, "--format",
                          "json", "--bootstrap-server", cluster.nodes[3].bootstrap],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    described = json.loads(run.stdout)
    described = described[0] if isinstance(described, list) else described
    assert described["replication_factor"] == 3, described
    assert {p["partition"]: (p["leader"], tuple(p["replicas"]), tuple(p["isr"]))
            for p in described["partitions"]} == cli_layout

    # (c) again: exists; too many replicas; more partitions; delete.
    admin = KafkaAdminClient(bootstrap_servers=cluster.nodes[2].bootstrap)
    try:
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([KpNewTopic(topic, 3, 3)])
    finally:
        admin.close()
    with pytest.raises(KafkaException) as refused:
        create_topic(cluster.nodes[1].bootstrap, unique_topic("wide"), 1, 4)
    assert refused.value.args[0].code() == 38, refused.value  # INVALID_REPLICATION_FACTOR
    grow = AdminClient({"bootstrap.servers": cluster.nodes[2].bootstrap})
    grow.create_partitions([NewPartitions(topic, 5)])[topic].result(timeout=40)
    wait_for("every node shows 5 partitions", lambda: same_everywhere(nodes, topic, 5))
    drop = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    drop.delete_topics([topic], operation_timeout=20)[topic].result(timeout=40)
    wait_for("the topic is gone from every node", lambda: all(
        topic_metadata(node, topic)[0] == UNKNOWN_TOPIC_OR_PARTITION for node in nodes))
    wait_for("its directories are gone from every node", lambda: not any(
        (node.data_dir / f"{topic}-{index}").exists() for node in nodes for index in range(5)))


def test_topics_survive_controller_failover_and_a_full_restart(cluster):
    nodes = list(cluster.nodes.values())
    controller, _ = wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    kept = unique_topic("kept")
    create_topic(cluster.nodes[controller].bootstrap, kept, 3, 3)
    layout = wait_for("every node shows it", lambda: same_everywhere(nodes, kept, 3))
    set_topic_config(cluster.nodes[controller].bootstrap, kept, "cleanup.policy", "compact")
    per_partition = produce(cluster.nodes[1].bootstrap, kept, RECORDS)
    # Where each partition's records are: on its first leader (a restart must keep them).
    stored = {(leader, index): per_partition.get(index, 0)
              for index, (leader, _, _) in layout.items()}

    # (d) kill -9 the active controller; create through the survivors.
    cluster.nodes[controller].kill9()
    survivors = [node for node_id, node in cluster.nodes.items() if node_id != controller]
    later = unique_topic("later")
    create_until_it_works(survivors, later)
    cluster.nodes[controller].start()
    wait_for("the restarted node gets the topic created while it was down",
             lambda: topic_ids_on_disk(cluster.nodes[controller], later, 1))

    # (e) stop everything, start everything: topics, ids and the first leaders' records are
    # all kept. (Leadership moved when their brokers restarted; without replication, issue
    # 16, a new leader's copy is empty, so records are checked on disk here.)
    wait_for("cluster converged again", lambda: agreed_view(cluster.live(), {1, 2, 3})
             and same_everywhere(nodes, kept, 3))
    before = {node.bootstrap: topic_ids_on_disk(node, kept, 3) for node in nodes}
    for node in nodes:
        node.kill9()
    for node in nodes:
        node.start()
    wait_for("cluster converged after the restart", lambda: agreed_view(nodes, {1, 2, 3}))
    wait_for("both topics are listed everywhere", lambda: same_everywhere(nodes, kept, 3)
             and same_everywhere(nodes, later, 1))
    after = {node.bootstrap: topic_ids_on_disk(node, kept, 3) for node in nodes}
    assert after == before
    assert all(local_configs(node, kept) == {"cleanup.policy": "compact"} for node in nodes)
    for (leader, index), count in stored.items():
        assert opened_log_end(cluster.nodes[leader], kept, index) == count, (leader, index)


def test_a_quorum_without_majority_refuses_topic_changes_and_keeps_serving(cluster):
    """(f) Two of three nodes down: the survivor has no quorum. CreateTopics through it fails
    with a retriable error (REQUEST_TIMED_OUT) instead of hanging, while acks=1 produce to
    the partitions it leads keeps working (visible once the restarted ISR member fetched them,
    as the high watermark waits for the ISR); once a second node is back, creation works
    again."""
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic("steady")
    create_topic(cluster.nodes[1].bootstrap, topic, 3, 3)
    layout = wait_for("every node shows it", lambda: same_everywhere(nodes, topic, 3))
    survivor_id = next(iter(layout.values()))[0]
    led_here = [index for index, (leader, _, _) in layout.items() if leader == survivor_id]
    survivor = cluster.nodes[survivor_id]
    down = [node for node_id, node in cluster.nodes.items() if node_id != survivor_id]
    for node in down:
        node.kill9()
    # Raw CreateTopics v2 to the survivor: the broker's own answer, not a client's timeout.
    assert create_topics_v2(survivor, unique_topic("nomajority"), 3000) == REQUEST_TIMED_OUT
    producer = Producer({"bootstrap.servers": survivor.bootstrap, "acks": "1",
                         "enable.idempotence": False})
    errors = []
    for index in range(50):
        producer.produce(topic, value=f"v{index}".encode(), partition=led_here[0],
                         on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(30) == 0 and not errors, errors[:3]
    def latest() -> tuple[int, int]:
        body = kafka_wire.roundtrip(survivor.bootstrap,
                                    kafka_wire.list_offsets(9, 1, topic, led_here[0], -1))
        error, _, end = kafka_wire.parse_list_offsets(body[4:], 1)[(topic, led_here[0])]
        return error, end
    # As in Kafka, the high watermark (what ListOffsets latest answers) waits for the ISR,
    # and only the quorum could shrink it: the acks=1 records are not visible yet.
    assert latest() == (0, 0)
    down[0].start()
    # The restarted ISR member fetches them from the survivor: the high watermark moves.
    wait_for("the restarted replica caught up", lambda: latest() == (0, 50))
    create_until_it_works([survivor, down[0]], unique_topic("majority-again"))
