"""Controller failover figure (issue 15): time from kill -9 of the active controller to the
next successful CreateTopics, over N rounds on a three-node loopback cluster (--shards 1
each, every node a controller), with the default cluster settings unless overridden.

Each round: wait until all three nodes agree on the brokers and the controller; kill -9 the
controller; from that instant, send CreateTopics (1 partition, RF 3) to the survivors in turn
(each attempt bounded by ATTEMPT_TIMEOUT_S, a fresh client each time, so the figure's
resolution is that timeout) until one succeeds; record the elapsed time;
restart the killed node. Prints every round and the median, min and max.

Run: make bench-cluster-failover [FAILOVER_ROUNDS=10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import KafkaException  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import kafka_wire  # noqa: E402
from harness import Broker, free_port  # noqa: E402

ATTEMPT_TIMEOUT_S = 0.5
CONVERGE_TIMEOUT_S = 120.0


def metadata_view(node: Broker) -> tuple[int, set[int]] | None:
    try:
        body = kafka_wire.roundtrip(node.bootstrap, kafka_wire.metadata_v1(3, []))
    except OSError:
        return None
    reader = kafka_wire.Reader(body)
    reader.i32()
    brokers = set()
    for _ in range(reader.i32()):
        brokers.add(reader.i32())
        reader.string(), reader.i32(), reader.string()
    return reader.i32(), brokers


def converged(nodes: list[Broker]) -> int:
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while time.monotonic() < deadline:
        views = [metadata_view(node) for node in nodes]
        if all(views) and len({v[0] for v in views}) == 1 and all(
                v[1] == {1, 2, 3} for v in views) and views[0][0] in (1, 2, 3):
            return views[0][0]
        time.sleep(0.1)
    raise SystemExit(f"the cluster did not converge: {views}")


def create_once(bootstrap: str, topic: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000})
    futures = admin.create_topics([NewTopic(topic, 1, 3)], operation_timeout=ATTEMPT_TIMEOUT_S,
                                  request_timeout=ATTEMPT_TIMEOUT_S)
    try:
        futures[topic].result(timeout=ATTEMPT_TIMEOUT_S + 1)
        return True
    except KafkaException as error:
        return error.args[0].code() == 36  # TOPIC_ALREADY_EXISTS: an earlier try committed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    ports = {node: free_port() for node in (1, 2, 3)}
    quorum = ",".join(f"{node}@127.0.0.1:{port}" for node, port in ports.items())
    nodes = {node: Broker(f"failover-node{node}", shards=1, extra_args=[
        "--node-id", str(node), "--controller-quorum", quorum,
        "--controller-listen", f"127.0.0.1:{ports[node]}"]) for node in ports}
    times = []
    try:
        for node in nodes.values():
            node.start()
        for round_index in range(args.rounds):
            controller = converged(list(nodes.values()))
            survivors = [n for node_id, n in nodes.items() if node_id != controller]
            topic = f"failover-{round_index}-{time.time_ns()}"
            nodes[controller].kill9()
            started = time.monotonic()
            attempt = 0
            while not create_once(survivors[attempt % 2].bootstrap, topic):
                attempt += 1
            elapsed = time.monotonic() - started
            times.append(elapsed)
            print(f"round {round_index + 1}: killed controller {controller}, CreateTopics "
                  f"succeeded after {elapsed * 1000:.0f} ms ({attempt + 1} attempts)",
                  flush=True)
            nodes[controller].start()
    except BaseException:
        for node in nodes.values():
            print(f"==== node {node.bootstrap} ====\n{node.stderr_tail(20)}")
        raise
    finally:
        for node in nodes.values():
            node.cleanup(keep=False)
    ms = [t * 1000 for t in times]
    print(f"controller failover to CreateTopics: median {statistics.median(ms):.0f} ms, "
          f"min {min(ms):.0f} ms, max {max(ms):.0f} ms over {len(ms)} rounds")


if __name__ == "__main__":
    main()
