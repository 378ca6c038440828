"""Contract: transaction coordinators follow partition leadership (issue 16).

Three shardlog processes (--shards 1, a controller each). In cluster mode `__transaction_state`
is a topic of the metadata log (RF 3, created when the first transactional id looks for its
coordinator), and a transactional id's coordinator is the leader of its partition of it.
Transactions span partitions led by different brokers: the coordinator writes the COMMIT /
ABORT markers through WriteTxnMarkers to the other leaders, and those leaders verify
transactional batches with the coordinator (KIP-890, AddPartitionsToTxn v4). So:
  (a) FindCoordinator names that leader, on every broker;
  (b) a confluent-kafka transaction that is open (records acknowledged) when its coordinator
      is killed (kill -9) commits on the new coordinator, which loaded the partition;
      committed transactions before and after it are visible to read_committed consumers
      (confluent-kafka and kafka-python), aborted ones never;
  (c) the Java client runs committed and aborted transactions on the survivors;
  (d) the killed node restarts and rejoins; the second coordinator is killed too, and
      kafka-python, taking over the same transactional id (fencing the earlier producer),
      commits through the third.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import uuid

from confluent_kafka import Producer
import kafka
import pytest

import kafka_wire as wire
from test_cluster import agreed_view, cluster, wait_for  # noqa: F401 (fixture)
from test_cluster_leader_epochs import partition_state
from test_group_coordinator_failover import offsets_partition, replicated_topic
from test_java import java
from test_transactions import read_values

pytestmark = pytest.mark.cluster

TXN_TOPIC = "__transaction_state"
API_FIND_COORDINATOR = 10
KEY_TYPE_TRANSACTION = 1
PARTITIONS = 3
RECORDS = 30
TXN_TIMEOUT_S = 120


def find_txn_coordinator(bootstrap: str, transactional_id: str) -> int | None:
    """The node a raw FindCoordinator v1 (key type transaction) names; None on an error."""
    body = wire.string(transactional_id) + wire.i8(KEY_TYPE_TRANSACTION)
    answer = wire.roundtrip(bootstrap, wire.frame(
        wire.header_v1(API_FIND_COORDINATOR, 1, 41) + body))
    r = wire.Reader(answer)
    assert r.i32() == 41
    r.i32()  # throttle
    error = r.i16()
    r.string()  # message
    node = r.i32()
    return node if error == 0 else None


def settled_txn_coordinator(nodes, transactional_id: str, full_isr: list[int]) -> int | None:
    """The leader of the id's `__transaction_state` partition when every node agrees on it,
    its ISR is `full_isr`, and every node's FindCoordinator names it."""
    # Same hash and default partition count (16) as `__consumer_offsets`.
    index = offsets_partition(transactional_id)
    states = [partition_state(node.bootstrap, TXN_TOPIC, index) for node in nodes]
    if None in states:
        return None
    states = {(leader, tuple(sorted(isr))) for leader, _epoch, isr in states}
    if len(states) != 1:
        return None
    leader, isr = states.pop()
    if list(isr) != full_isr:
        return None
    named = {find_txn_coordinator(node.bootstrap, transactional_id) for node in nodes}
    return leader if named == {leader} else None


def kill_txn_coordinator(cluster, transactional_id: str, coordinator: int):
    """kill -9 of the id's coordinator; the survivor that took it over, and the survivors."""
    cluster.nodes[coordinator].kill9()
    survivors = [node for node_id, node in cluster.nodes.items() if node_id != coordinator]
    taken_over = wait_for(
        "a survivor took over the transactional id",
        lambda: settled_txn_coordinator(survivors, transactional_id,
                                        sorted(set(cluster.nodes) - {coordinator})))
    assert taken_over != coordinator
    return taken_over, survivors


def ck_transaction(producer: Producer, topic: str, prefix: str, commit: bool | None):
    """Produces RECORDS values "prefix-i" (keys spread them over the partitions) in a new
    transaction and waits for their acknowledgements; commits or aborts it, or (None) leaves
    it open."""
    producer.begin_transaction()
    for i in range(RECORDS):
        producer.produce(topic, key=f"k{i}".encode(), value=f"{prefix}-{i}".encode())
    assert producer.flush(TXN_TIMEOUT_S) == 0, "records left undelivered"
    if commit is True:
        producer.commit_transaction(TXN_TIMEOUT_S)
    elif commit is False:
        producer.abort_transaction(TXN_TIMEOUT_S)


def values(prefixes) -> set[str]:
    return {f"{prefix}-{i}" for prefix in prefixes for i in range(RECORDS)}


def ck_committed(bootstrap: str, topic: str, expect: int) -> list[str]:
    read = read_values(bootstrap, {topic: list(range(PARTITIONS))}, "read_committed",
                       expect=expect, settle_s=5.0)
    return [v.decode() for records in read.values() for v in records]


def kp_committed(bootstrap: str, topic: str, expect: int) -> list[str]:
    consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap,
                                   isolation_level="read_committed",
                                   auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        consumer.assign([kafka.TopicPartition(topic, p) for p in range(PARTITIONS)])
        seen: list[str] = []

        def enough():
            for messages in consumer.poll(timeout_ms=500).values():
                seen.extend(m.value.decode() for m in messages)
            return len(seen) >= expect or None
        wait_for("kafka-python read the committed records", enough)
        # Anything beyond `expect` (an aborted record shown by mistake) shows up here.
        for messages in consumer.poll(timeout_ms=2000).values():
            seen.extend(m.value.decode() for m in messages)
        return seen
    finally:
        consumer.close()


def test_transactions_survive_coordinator_kills(cluster):
    nodes = list(cluster.nodes.values())
    topic = replicated_topic(cluster, "txnfailover", PARTITIONS)
    everyone = ",".join(node.bootstrap for node in nodes)
    transactional_id = f"txn-{uuid.uuid4().hex[:8]}"
    leaders = {partition_state(nodes[0].bootstrap, topic, p)[0] for p in range(PARTITIONS)}
    assert len(leaders) > 1, f"the topic's partitions should have several leaders: {leaders}"

    # (a)+(b) confluent-kafka: committed, aborted, then one left open across the kill.
    producer = Producer({"bootstrap.servers": everyone, "transactional.id": transactional_id,
                         "linger.ms": 5})
    producer.init_transactions(TXN_TIMEOUT_S)
    ck_transaction(producer, topic, "c1", commit=True)
    ck_transaction(producer, topic, "c2", commit=False)
    first = wait_for("the id's coordinator is its partition's leader",
                     lambda: settled_txn_coordinator(nodes, transactional_id, [1, 2, 3]))
    ck_transaction(producer, topic, "c3", commit=None)
    assert leaders - {first}, "some partitions should be led by brokers other than the coordinator"
    second, survivors = kill_txn_coordinator(cluster, transactional_id, first)
    producer.commit_transaction(TXN_TIMEOUT_S)
    ck_transaction(producer, topic, "c4", commit=True)
    committed = values(["c1", "c3", "c4"])
    more = ",".join(node.bootstrap for node in survivors)
    seen = ck_committed(more, topic, len(committed))
    assert sorted(seen) == sorted(committed), sorted(set(seen) ^ committed)[:10]
    seen = kp_committed(more, topic, len(committed))
    assert sorted(seen) == sorted(committed), sorted(set(seen) ^ committed)[:10]

    # (c) The Java client, with its own transactional id, on the survivors.
    lines = java("txnproduce", more, topic, f"java-{transactional_id}",
                 f"j1:{RECORDS}:commit", f"j2:{RECORDS}:abort", f"j3:{RECORDS}:commit")
    assert ["TXN", "j1", "COMMITTED"] in lines and ["TXN", "j3", "COMMITTED"] in lines, lines
    committed |= values(["j1", "j3"])

    # (d) The first coordinator returns; the second is killed; kafka-python takes the id over.
    cluster.nodes[first].start()
    wait_for("the restarted node rejoined", lambda: agreed_view(nodes, {1, 2, 3}))
    wait_for("the restarted node is back in the partition's ISR",
             lambda: settled_txn_coordinator(nodes, transactional_id, [1, 2, 3]))
    _, survivors = kill_txn_coordinator(cluster, transactional_id, second)
    rest = ",".join(node.bootstrap for node in survivors)
    successor = kafka.KafkaProducer(bootstrap_servers=rest, transactional_id=transactional_id)
    try:
        successor.init_transactions()
        successor.begin_transaction()
        for i in range(RECORDS):
            successor.send(topic, key=f"k{i}".encode(), value=f"p1-{i}".encode())
        successor.commit_transaction()
    finally:
        successor.close(timeout=30)
    committed |= values(["p1"])
    seen = ck_committed(rest, topic, len(committed))
    assert sorted(seen) == sorted(committed), sorted(set(seen) ^ committed)[:10]
