"""Contract: group coordinators follow partition leadership (issue 16).

Three shardlog processes (--shards 1, a controller each). In cluster mode `__consumer_offsets`
is a topic of the metadata log (RF 3, created when the first group looks for its coordinator),
and a group's coordinator is the leader of the group's partition of it. So:
  (a) FindCoordinator names that leader, on every broker;
  (b) offsets committed by a stock consumer survive kill -9 of the coordinator: the next
      member of the group (another client library, bootstrapped on the survivors) resumes
      exactly after them, through the new coordinator that loaded the partition;
  (c) the killed node restarts and rejoins the partition's ISR; the second coordinator is
      killed too, and the third client resumes after the second's commits;
  (d) a live group (two confluent-kafka members, auto commit) keeps consuming through a
      coordinator kill, and its final commits reach the log ends;
  (e) a node whose data dir has its own `__consumer_offsets` stops with a clear error.
Consumers confluent-kafka, then kafka-python, then the Java client: each takes the next 100
records and commits exactly their positions, so the three together must see every record
once. Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import threading
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
import kafka
import pytest
from kafka.structs import OffsetAndMetadata

from harness import Broker, unique_topic
from test_cluster import Cluster, agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_cluster_leader_epochs import partition_state
from test_cluster_topics import create_topic, produce, same_everywhere
from test_java import java

pytestmark = pytest.mark.cluster

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = 16  # group.offsets_topic_partitions default
RECORDS = 300
STEP = 100


def offsets_partition(group: str) -> int:
    """Kafka's partition of `__consumer_offsets` for a group: Utils.abs(String.hashCode) %
    count (Utils.abs maps Integer.MIN_VALUE to 0). Group ids here are ASCII."""
    h = 0
    for ch in group:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    signed = h - (1 << 32) if h >= (1 << 31) else h
    return (0 if signed == -(1 << 31) else abs(signed)) % OFFSETS_PARTITIONS


def coordinator_of(bootstrap: str, group: str) -> int | None:
    """The coordinator node id a stock admin client finds for `group` (None: not yet)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        described = admin.describe_consumer_groups([group], request_timeout=10)[group]
        return described.result(timeout=15).coordinator.id
    except Exception:  # noqa: BLE001 (COORDINATOR_NOT_AVAILABLE and friends: not yet)
        return None


def settled_coordinator(nodes, group: str, full_isr: list[int]) -> int | None:
    """The leader of the group's offsets partition when every node agrees on it, its ISR is
    `full_isr`, and a client's FindCoordinator names it."""
    states = [partition_state(node.bootstrap, OFFSETS_TOPIC, offsets_partition(group))
              for node in nodes]
    if None in states:
        return None
    states = {(leader, tuple(sorted(isr))) for leader, _epoch, isr in states}
    if len(states) != 1:
        return None
    leader, isr = states.pop()
    if list(isr) != full_isr:
        return None
    return leader if coordinator_of(nodes[0].bootstrap, group) == leader else None


def ck_take(bootstrap: str, topic: str, group: str, count: int) -> list[str]:
    """confluent-kafka: the next `count` values of the group; commits exactly after them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    taken: list[str] = []
    positions: dict[int, int] = {}
    try:
        def enough():
            for msg in consumer.consume(num_messages=count, timeout=0.5):
                if msg.error() is None and len(taken) < count:
                    taken.append(msg.value().decode())
                    positions[msg.partition()] = msg.offset() + 1
            return len(taken) == count or None
        wait_for("confluent-kafka consumed its share", enough)
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()],
                        asynchronous=False)
    finally:
        consumer.close()
    return taken


def kp_take(bootstrap: str, topic: str, group: str, count: int) -> list[str]:
    """kafka-python: the next `count` values of the group; commits exactly after them."""
    consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                   enable_auto_commit=False, auto_offset_reset="earliest")
    taken: list[str] = []
    positions: dict[int, int] = {}
    try:
        def enough():
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for msg in messages:
                    if len(taken) < count:
                        taken.append(msg.value.decode())
                        positions[tp.partition] = msg.offset + 1
            return len(taken) == count or None
        wait_for("kafka-python consumed its share", enough)
        consumer.commit({kafka.TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                         for p, o in positions.items()})
    finally:
        consumer.close()
    return taken


def replicated_topic(cluster, prefix: str, partitions: int) -> str:
    """A new RF=3 topic, once the cluster has converged and every node shows it."""
    nodes = list(cluster.nodes.values())
    wait_for("cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
    topic = unique_topic(prefix)
    create_topic(cluster.nodes[1].bootstrap, topic, partitions, 3)
    wait_for("every node shows the topic", lambda: same_everywhere(nodes, topic, partitions))
    return topic


def kill_coordinator(cluster, group: str, coordinator: int) -> tuple[int, list]:
    """kill -9 of the group's coordinator; the survivor that took the group over, and the
    survivors."""
    cluster.nodes[coordinator].kill9()
    survivors = [node for node_id, node in cluster.nodes.items() if node_id != coordinator]
    taken_over = wait_for("a survivor took over the group",
                          lambda: settled_coordinator(survivors, group,
                                                      sorted(set(cluster.nodes) - {coordinator})))
    assert taken_over != coordinator
    return taken_over, survivors


def test_committed_offsets_survive_coordinator_kills(cluster):
    nodes = list(cluster.nodes.values())
    topic = replicated_topic(cluster, "groupfailover", 3)
    everyone = ",".join(node.bootstrap for node in nodes)
    produce(everyone, topic, RECORDS)
    group = f"failover-{uuid.uuid4().hex[:8]}"

    # (a)+(b) confluent-kafka commits through the first coordinator, which is then killed.
    seen = ck_take(everyone, topic, group, STEP)
    first = wait_for("the group's coordinator is its offsets partition's leader",
                     lambda: settled_coordinator(nodes, group, [1, 2, 3]))
    second, survivors = kill_coordinator(cluster, group, first)
    seen += kp_take(",".join(node.bootstrap for node in survivors), topic, group, STEP)

    # (c) the killed node returns to the offsets partition's ISR; the second coordinator is
    # killed and the Java client resumes after kafka-python's commits.
    cluster.nodes[first].start()
    wait_for("the restarted node rejoined", lambda: agreed_view(nodes, {1, 2, 3}))
    wait_for("the restarted node is back in the offsets partition's ISR",
             lambda: settled_coordinator(nodes, group, [1, 2, 3]))
    _, survivors = kill_coordinator(cluster, group, second)
    lines = java("groupconsume", ",".join(node.bootstrap for node in survivors), topic, group,
                 str(STEP), "90000")
    assert ["COMMITTED", str(STEP)] in lines
    seen += [line[3] for line in lines if line[0] == "GREC"]

    # Every record once: no commit was lost (a lost commit would re-deliver records) and none
    # was skipped.
    assert len(seen) == RECORDS, len(seen)
    assert sorted(seen, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(RECORDS)]


class Member(threading.Thread):
    """A confluent-kafka group member consuming with auto commit until stopped; it commits
    its final positions when it closes."""

    def __init__(self, bootstrap: str, topic: str, group: str, seen: set[str]):
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                  "auto.offset.reset": "earliest",
                                  "auto.commit.interval.ms": 200,
                                  "session.timeout.ms": 10000})
        self.consumer.subscribe([topic])
        self.seen = seen
        self.stopping = threading.Event()
        self.errors: list[Exception] = []

    def run(self):
        try:
            while not self.stopping.is_set():
                for msg in self.consumer.consume(num_messages=500, timeout=0.5):
                    if msg.error() is None:
                        self.seen.add(msg.value().decode())
        except Exception as error:  # noqa: BLE001 (reported by the test)
            self.errors.append(error)
        finally:
            self.consumer.close()

    def stop(self):
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "a group member did not stop"
        assert not self.errors, self.errors


def committed_and_ends(bootstrap: str, topic: str, group: str, partitions: int):
    """The group's committed offsets and the partitions' high watermarks."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                       timeout=15)
        ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
                for p in range(partitions)]
        return [tp.offset for tp in committed], ends
    finally:
        consumer.close()


def test_a_live_group_keeps_consuming_through_a_coordinator_kill(cluster):
    """Two confluent-kafka members consume with auto commit while the group's coordinator is
    killed (kill -9) between two halves of the records: the members find the new coordinator
    and keep consuming, every record is consumed, and once they close the committed offsets
    (read back through the new coordinator) are the partitions' log ends."""
    nodes = list(cluster.nodes.values())
    topic = replicated_topic(cluster, "livegroup", 3)
    everyone = ",".join(node.bootstrap for node in nodes)
    group = f"live-{uuid.uuid4().hex[:8]}"
    seen: set[str] = set()
    members = [Member(everyone, topic, group, seen) for _ in range(2)]
    for member in members:
        member.start()
    produce(everyone, topic, RECORDS)
    wait_for("the members consumed the first half", lambda: len(seen) >= RECORDS,
             timeout_s=60)
    coordinator = wait_for("the group's coordinator is its offsets partition's leader",
                           lambda: settled_coordinator(nodes, group, [1, 2, 3]))
    _, survivors = kill_coordinator(cluster, group, coordinator)
    # The second half: values v300.. (the helper numbers from 0, so shift them).
    more = ",".join(node.bootstrap for node in survivors)
    producer = Producer({"bootstrap.servers": more, "acks": "all", "enable.idempotence": True})
    for index in range(RECORDS, 2 * RECORDS):
        producer.produce(topic, key=f"k{index % 17}".encode(), value=f"v{index}".encode())
    assert producer.flush(120) == 0, "records left undelivered"
    wait_for("the members consumed every record", lambda: len(seen) >= 2 * RECORDS,
             timeout_s=120)
    assert seen == {f"v{i}" for i in range(2 * RECORDS)}
    for member in members:
        member.stop()
    committed, ends = wait_for(
        "the group's committed offsets reached the log ends",
        lambda: (lambda c, e: (c, e) if c == e else None)(
            *committed_and_ends(more, topic, group, 3)))
    assert sum(ends) == 2 * RECORDS, (committed, ends)


def test_a_data_dir_with_its_own_offsets_topic_stops_instead_of_hanging_groups(request):
    """(e) A node whose data dir already holds its own `__consumer_offsets` (here: it ran as a
    single broker first) joins the cluster; once the log's `__consumer_offsets` exists, the
    name clashes, and the node stops with an error naming the topic instead of being named
    coordinator of groups it cannot serve. The group then works on the other two."""
    cluster = Cluster(request.node.name)
    single = Broker(f"{request.node.name}-single", shards=1, extra_args=["--node-id", "3"])
    single.data_dir = cluster.nodes[3].data_dir
    try:
        single.start()
        single.stop()
        cluster.start()
        topic = replicated_topic(cluster, "ownoffsets", 3)
        others = ",".join(cluster.nodes[n].bootstrap for n in (1, 2))
        produce(others, topic, STEP)
        taken = ck_take(others, topic, f"own-{uuid.uuid4().hex[:8]}", STEP)
        assert sorted(taken, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(STEP)]
        node3 = cluster.nodes[3]
        wait_for("the node with its own __consumer_offsets stopped",
                 lambda: not node3.alive())
        node3.expected_exit = True
        log = node3.log_path.read_text(errors="replace")
        assert "has its own __consumer_offsets" in log, log[-3000:]
    finally:
        for node in [single] + list(cluster.nodes.values()):
            node.cleanup(keep=False)
