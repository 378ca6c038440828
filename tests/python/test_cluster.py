"""Cluster mode (issue 15): three real shardlog processes form a metadata quorum over the
controller protocol, register and heartbeat, and every node's Metadata shows the live brokers
and the same controller (the raft leader).

Contract checked, with stock clients (confluent-kafka, kafka-python) and raw Metadata v1 sent
to each node in turn (a stock client picks its own node):
  (a) 3 nodes come up; every node lists all 3 brokers and names the same controller;
  (b) kill -9 the active controller: the other two elect a new one, and once
      broker_session_timeout_ms has passed the killed node is fenced and no longer listed;
  (c) restarted, it registers again with a new incarnation and is listed again;
  (d) a second process claiming a live node id is refused: a controller id (its controller
      port is held) exits at start-up; a broker-only id gets DUPLICATE_BROKER_REGISTRATION and
      exits with that error; neither is listed;
  (e) every data dir records the cluster id (cluster.id) that Metadata reports; a node whose
      data dir joined another cluster is refused with INCONSISTENT_CLUSTER_ID and exits;
  (f) SIGTERM is a controlled shutdown: the node is fenced by the controller before it stops;
  (g) `shardlog cluster describe` shows the cluster id, controller, brokers and quorum;
  (h) a data dir of another node id is refused before the quorum starts on it.
Waits are bounded polls (no timing assertions).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import KafkaException

import kafka_wire
from harness import Broker, broker_binary, free_port

pytestmark = pytest.mark.cluster

SESSION_TIMEOUT_MS = 2000
HEARTBEAT_INTERVAL_MS = 300
# Bounds on waits (seconds); generous, they only stop hangs.
CONVERGE_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2


class Cluster:
    """Three shardlog processes with --shards 1, a controller each (combined mode)."""

    def __init__(self, name: str, size: int = 3):
        self.controller_ports = {node: free_port() for node in range(1, size + 1)}
        self.quorum = ",".join(f"{node}@127.0.0.1:{port}"
                               for node, port in self.controller_ports.items())
        self.nodes: dict[int, Broker] = {}
        for node in self.controller_ports:
            self.nodes[node] = Broker(f"{name}-node{node}", shards=1,
                                      extra_args=self.node_args(node, controller=True))

    def node_args(self, node: int, controller: bool, rack: str | None = None) -> list[str]:
        args = ["--node-id", str(node), "--controller-quorum", self.quorum,
                "--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS),
                "--broker-heartbeat-interval-ms", str(HEARTBEAT_INTERVAL_MS),
                "--rack", rack or f"rack-{node}"]
        if controller:
            args += ["--controller-listen", f"127.0.0.1:{self.controller_ports[node]}"]
        return args

    def start(self) -> "Cluster":
        for node in self.nodes.values():
            node.start()
        return self

    def live(self) -> list[Broker]:
        return [node for node in self.nodes.values() if node.alive()]


def metadata_v1(bootstrap: str) -> tuple[int, dict[int, tuple[str, int, str | None]]]:
    """(controller_id, {node_id: (host, port, rack)}) from one node's Metadata v1."""
    body = kafka_wire.roundtrip(bootstrap, kafka_wire.metadata_v1(7, []))
    reader = kafka_wire.Reader(body)
    assert reader.i32() == 7
    brokers = {}
    for _ in range(reader.i32()):
        node_id, host, port, rack = reader.i32(), reader.string(), reader.i32(), reader.string()
        brokers[node_id] = (host, port, rack)
    return reader.i32(), brokers


API_DESCRIBE_QUORUM = 55


def describe_quorum_v1(bootstrap: str, topic: str = "__cluster_metadata") -> dict:
    """One node's raw DescribeQuorum v1 (flexible) answer for `topic` partition 0."""
    w = kafka_wire
    body = (w.compact_array([w.compact_string(topic)
                             + w.compact_array([w.i32(0) + w.EMPTY_TAGGED_FIELDS])
                             + w.EMPTY_TAGGED_FIELDS]) + w.EMPTY_TAGGED_FIELDS)
    answer = w.roundtrip(bootstrap, w.frame(w.header_v2(API_DESCRIBE_QUORUM, 1, 9) + body))
    r = w.Reader(answer)
    assert r.i32() == 9
    r.tagged_fields()

    def compact_string() -> str:
        return r.take(r.uvarint() - 1).decode()

    def replicas() -> list[dict]:
        found = []
        for _ in range(r.uvarint() - 1):
            found.append({"id": r.i32(), "log_end_offset": r.i64(),
                          "last_fetch": r.i64(), "last_caught_up": r.i64()})
            r.tagged_fields()
        return found

    result = {"error_code": r.i16()}
    assert r.uvarint() - 1 == 1
    result["topic"] = compact_string()
    assert r.uvarint() - 1 == 1
    result.update(partition=r.i32(), partition_error=r.i16(), leader_id=r.i32(),
                  leader_epoch=r.i32(), high_watermark=r.i64())
    result["voters"] = replicas()
    result["observers"] = replicas()
    return result


def wait_for(what: str, check, timeout_s: float = CONVERGE_TIMEOUT_S):
    """Polls `check` until it returns a truthy value; fails with the last value seen."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ConnectionError, ValueError, KafkaException) as error:
            # KafkaException: a broker's retriable answer while the cluster converges (e.g.
            # NOT_LEADER_OR_FOLLOWER for the moment before a new leader takes the partition).
            last = error
        else:
            if last and not isinstance(last, Exception):
                return last
        time.sleep(POLL_INTERVAL_S)
    pytest.fail(f"{what}: not reached within {timeout_s}s (last seen: {last!r})")


def agreed_view(nodes: list[Broker], expected: set[int]):
    """Every node names the same controller (one of `expected`) and exactly `expected`."""
    views = [metadata_v1(node.bootstrap) for node in nodes]
    controllers = {controller for controller, _ in views}
    if len(controllers) != 1 or not controllers <= expected:
        return None
    if any(set(brokers) != expected for _, brokers in views):
        return None
    return views[0]


@pytest.fixture
def cluster(request):
    c = Cluster(request.node.name)
    extra: list[Broker] = []
    c.extra = extra
    try:
        yield c.start()
    finally:
        clean_up_nodes(request, list(c.nodes.values()) + extra)


def failed_test(request) -> bool:
    """Whether the running test's setup or call failed (conftest records the reports)."""
    return any(getattr(request.node, f"rep_{p}", None) is not None
               and getattr(request.node, f"rep_{p}").failed for p in ("setup", "call"))


def clean_up_nodes(request, nodes: list[Broker]) -> None:
    """Stops and removes every node; after a failure prints each one's log tail and keeps
    its data dir."""
    failed = failed_test(request)
    for node in nodes:
        if failed:
            print(f"\n==== {node.bootstrap} ====\n{node.stderr_tail()}")
        node.cleanup(keep=failed)


def incarnations(node: Broker) -> list[str]:
    found = []
    for start in range(1, node.starts + 1):
        path = node.workdir / f"broker-{start}.stderr.log"
        if path.exists():
            found += re.findall(r"registered with the controller.*incarnation=([0-9a-f-]+)",
                                path.read_text(errors="replace"))
    return found


def test_three_nodes_agree_on_brokers_and_controller(cluster):
    controller, brokers = wait_for("all 3 nodes list 3 brokers and one controller",
                                   lambda: agreed_view(cluster.live(), {1, 2, 3}))
    for node_id, node in cluster.nodes.items():
        assert brokers[node_id][1] == node.port
        assert brokers[node_id][2] == f"rack-{node_id}"
    # Stock clients see the same.
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": cluster.nodes[2].bootstrap})
    listed = admin.list_topics(timeout=10)
    assert set(listed.brokers) == {1, 2, 3}
    assert listed.controller_id == controller
    described = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert {node.id for node in described.nodes} == {1, 2, 3}
    assert described.controller.id == controller
    from kafka.admin import KafkaAdminClient
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.nodes[3].bootstrap,
                              request_timeout_ms=10000)
    try:
        info = kadmin.describe_cluster()
        assert {b["broker_id"] for b in info["brokers"]} == {1, 2, 3}
        assert info["controller_id"] == controller
    finally:
        kadmin.close()


def test_describe_quorum_names_the_metadata_controller(cluster):
    controller, _ = wait_for("cluster converged", lambda: agreed_view(cluster.live(), {1, 2, 3}))

    def leader_caught_up():
        answer = describe_quorum_v1(cluster.nodes[controller].bootstrap)
        voters = answer["voters"]
        if answer["partition_error"] != 0 or any(v["last_fetch"] < 0 for v in voters):
            return None
        return answer
    answer = wait_for("the leader reports every voter fetching", leader_caught_up)
    assert answer["error_code"] == 0 and answer["topic"] == "__cluster_metadata"
    assert answer["leader_id"] == controller
    assert answer["leader_epoch"] >= 1 and answer["high_watermark"] >= 1
    assert sorted(v["id"] for v in answer["voters"]) == [1, 2, 3]
    assert all(0 <= v["log_end_offset"] for v in answer["voters"])
    assert answer["observers"] == []
    # Non-leaders refuse as Kafka's raft client does; other partitions are unknown.
    for node_id, node in cluster.nodes.items():
        if node_id != controller:
            assert describe_quorum_v1(node.bootstrap)["partition_error"] == 6  # NOT_LEADER...
    other = describe_quorum_v1(cluster.nodes[controller].bootstrap, topic="orders")
    assert other["partition_error"] == 3  # UNKNOWN_TOPIC_OR_PARTITION


def test_controller_failover_fencing_and_rejoin(cluster):
    controller, _ = wait_for("cluster converged", lambda: agreed_view(cluster.live(), {1, 2, 3}))
    killed = cluster.nodes[controller]
    first_incarnations = incarnations(killed)
    assert len(first_incarnations) == 1, first_incarnations
    killed.kill9()
    survivors = set(cluster.nodes) - {controller}
    new_controller, brokers = wait_for(
        "the two survivors elect a new controller and fence the killed node",
        lambda: agreed_view(cluster.live(), survivors))
    assert new_controller != controller and new_controller in survivors
    # (c) restart: a new incarnation registers and all three are listed again.
    killed.start()
    wait_for("the restarted node is listed again",
             lambda: agreed_view(cluster.live(), {1, 2, 3}))
    later = incarnations(killed)
    assert len(later) == 2 and later[0] != later[1], later


def run_until_it_exits(cluster, node: Broker) -> tuple[int, str]:
    """Starts `node`, which must stop by itself; its exit code and log."""
    cluster.extra.append(node)
    node.starts = 1
    with open(node.log_path, "wb") as log:
        proc = subprocess.Popen(node.command(), stdout=subprocess.DEVNULL, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    node.proc = proc
    node.expected_exit = True
    try:
        code = proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{node.bootstrap} did not exit\n{node.stderr_tail()}")
    return code, node.log_path.read_text(errors="replace")


def test_data_dirs_join_one_cluster_and_a_foreign_one_is_refused(cluster):
    """(e) Every node's data dir records the cluster id of the metadata log (cluster.id) and
    Metadata reports it; a broker-only node whose data dir joined another cluster is refused
    with INCONSISTENT_CLUSTER_ID, exits, and is not listed."""
    wait_for("cluster converged", lambda: agreed_view(cluster.live(), {1, 2, 3}))

    def recorded() -> set[str] | None:
        files = [node.data_dir / "cluster.id" for node in cluster.nodes.values()]
        ids = {f.read_text().strip() for f in files if f.exists()}
        return ids if len(ids) == 1 and all(f.exists() for f in files) else None

    (cluster_id,) = wait_for("every data dir records one cluster id", recorded)
    from confluent_kafka.admin import AdminClient
    for node in cluster.nodes.values():
        listed = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=10)
        assert listed.cluster_id == cluster_id, node.bootstrap

    foreign = Broker("foreign", shards=1, extra_args=cluster.node_args(4, controller=False))
    other_cluster = str(uuid.uuid4())
    (foreign.data_dir / "cluster.id").write_text(other_cluster + "\n")
    code, log = run_until_it_exits(cluster, foreign)
    assert code != 0 and "INCONSISTENT_CLUSTER_ID" in log, log[-3000:]
    assert f"belongs to cluster {other_cluster}" in log and cluster_id in log, log[-3000:]
    assert (foreign.data_dir / "cluster.id").read_text().strip() == other_cluster
    _, brokers = wait_for("the cluster still lists only its own nodes",
                          lambda: agreed_view(cluster.live(), {1, 2, 3}))
    assert 4 not in brokers


def test_cli_cluster_describe(cluster):
    """(g) `shardlog cluster describe --format json` against any node: the cluster id in the
    data dirs, the controller Metadata names, the 3 brokers with their racks, and the quorum
    led by that controller with the 3 voters."""
    controller, _ = wait_for("cluster converged", lambda: agreed_view(cluster.live(), {1, 2, 3}))
    node = cluster.nodes[max(cluster.nodes)]

    def described() -> dict | None:
        run = subprocess.run([str(broker_binary()), "cluster", "describe", "--format", "json",
                              "--bootstrap-server", node.bootstrap],
                             capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout)
        quorum = answer["quorum"] or {}
        caught_up = {v["id"] for v in quorum.get("voters", []) if v["lag"] == 0}
        return answer if caught_up == {1, 2, 3} else None

    answer = wait_for("every voter caught up in cluster describe", described)
    cluster_id = (cluster.nodes[1].data_dir / "cluster.id").read_text().strip()
    assert answer["cluster_id"] == cluster_id
    assert answer["controller_id"] == controller
    assert {(b["id"], b["port"], b["rack"]) for b in answer["brokers"]} == {
        (n, cluster.nodes[n].port, f"rack-{n}") for n in cluster.nodes}
    assert answer["quorum"]["leader_id"] == controller
    assert answer["quorum"]["high_watermark"] > 0


def test_cli_cluster_describe_single_broker_and_unreachable(broker):
    """A single broker has no metadata quorum: `cluster describe` lists it and says so; an
    address nobody listens on exits non-zero naming it."""
    run = subprocess.run([str(broker_binary()), "cluster", "describe",
                          "--bootstrap-server", broker.bootstrap],
                         capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
    assert run.returncode == 0, run.stderr
    assert "Metadata quorum: none (a single broker)" in run.stdout, run.stdout
    assert str(broker.port) in run.stdout, run.stdout
    nobody = f"127.0.0.1:{free_port()}"
    # The first bootstrap server that answers is used.
    run = subprocess.run([str(broker_binary()), "cluster", "describe",
                          "--bootstrap-server", f"{nobody},{broker.bootstrap}"],
                         capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
    assert run.returncode == 0 and str(broker.port) in run.stdout, run.stderr
    run = subprocess.run([str(broker_binary()), "cluster", "describe",
                          "--bootstrap-server", nobody],
                         capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
    assert run.returncode != 0 and nobody in run.stderr, run.stderr


def test_data_dir_of_another_node_is_refused_before_the_quorum_starts(cluster):
    """(h) A copy of node 3's data dir started as node 4: refused with both node ids before
    cluster mode touches it (no raft log opened, no cluster.id written, nothing changed)."""
    wait_for("cluster converged", lambda: agreed_view(cluster.live(), {1, 2, 3}))
    wait_for("node 3 recorded the cluster id",
             lambda: (cluster.nodes[3].data_dir / "cluster.id").exists())
    cluster.nodes[3].stop()
    impostor = Broker("impostor", shards=1, extra_args=cluster.node_args(4, controller=False))
    shutil.rmtree(impostor.data_dir)
    shutil.copytree(cluster.nodes[3].data_dir, impostor.data_dir)
    (impostor.data_dir / "cluster.id").unlink()
    before = sorted(str(p.relative_to(impostor.data_dir)) for p in impostor.data_dir.rglob("*"))
    code, log = run_until_it_exits(cluster, impostor)
    assert code != 0 and "belongs to node 3, but this broker is node 4" in log, log[-3000:]
    assert "cluster mode started" not in log, log[-3000:]
    after = sorted(str(p.relative_to(impostor.data_dir)) for p in impostor.data_dir.rglob("*"))
    assert after == before


def test_sigterm_is_a_controlled_shutdown(cluster):
    """(f) SIGTERM on a node that is not the controller: it asks the controller to fence it
    and waits for the commit before its shards stop (Kafka's controlled shutdown), exits 0,
    and the other nodes no longer list it."""
    controller, _ = wait_for("cluster converged", lambda: agreed_view(cluster.live(), {1, 2, 3}))
    victim_id = min(node for node in cluster.nodes if node != controller)
    victim = cluster.nodes[victim_id]
    victim.stop()
    assert victim.proc.returncode == 0, victim.stderr_tail()
    log = victim.log_path.read_text(errors="replace")
    fenced = log.find("controlled shutdown: the controller fenced this broker")
    assert fenced >= 0, log[-3000:]
    stopped = log.find("shardlog stopped")
    assert fenced < stopped, log[-3000:]
    others = set(cluster.nodes) - {victim_id}
    _, brokers = wait_for("the stopped node is no longer listed",
                          lambda: agreed_view(cluster.live(), others))
    assert victim_id not in brokers


def test_duplicate_node_ids_are_refused(cluster):
    controller, _ = wait_for("cluster converged", lambda: agreed_view(cluster.live(), {1, 2, 3}))
    # A broker-only node 4 joins (its id is not in the quorum).
    first = Broker("dup-first", shards=1, extra_args=cluster.node_args(4, controller=False))
    cluster.extra.append(first)
    first.start()
    _, brokers = wait_for("broker-only node 4 is listed",
                          lambda: agreed_view(cluster.live() + [first], {1, 2, 3, 4}))
    assert brokers[4][1] == first.port

    def run_to_exit(name: str, args: list[str]) -> tuple[int, str, Broker]:
        dup = Broker(name, shards=1, extra_args=args)
        code, log = run_until_it_exits(cluster, dup)
        return code, log, dup

    # A second node 4: refused by the controller, it exits with the Kafka error's name.
    code, log, dup = run_to_exit("dup-broker", cluster.node_args(4, controller=False))
    assert code != 0 and "DUPLICATE_BROKER_REGISTRATION" in log, log[-3000:]
    # A second controller 2: its controller port is taken, it exits at start-up.
    code, log, _ = run_to_exit("dup-controller", cluster.node_args(2, controller=True))
    assert code != 0 and "cannot listen for the controller protocol" in log, log[-3000:]
    # Neither replaced the live registrations.
    _, brokers = wait_for("the live registrations stand",
                          lambda: agreed_view(cluster.live() + [first], {1, 2, 3, 4}))
    assert brokers[4][1] == first.port
    assert brokers[2][1] == cluster.nodes[2].port
    assert dup.port not in {port for _, port, _ in brokers.values()}
