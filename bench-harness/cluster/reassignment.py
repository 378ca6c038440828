"""Reassignment figures (issue 16): how long a partition move takes, unthrottled and with
`cluster.reassignment_throttle_bytes_per_s`, on three loopback nodes (tests/python
test_cluster.py's `Cluster`, --shards 1 each).

For each setting (a fresh cluster each: the throttle is a broker config, set with a TOML
file): a one-partition topic on nodes [1, 2] gets `--mb` MB of 1 KiB records (acks=all,
idempotent confluent-kafka producer), then `shardlog topic reassign` (AlterPartitionReassignments;
a native process, so the time includes its start and one request, about 10-20 ms, not a
JVM's) moves it to [3, 2]. Reported: the time from starting that command to the move's
completion as every node's metadata shows it (replicas [3, 2], both in sync; polled every
POLL_S), and the copy rate it implies (partition bytes on disk / time) against the
configured rate. `--repeats` moves per setting, each of a new topic (a replica
that returns keeps its data and would only catch up).

Run: make bench-reassignment [REASSIGNMENT_MB=40 REASSIGNMENT_THROTTLE=8000000
REASSIGNMENT_REPEATS=3], or with a binary built elsewhere:
  SHARDLOG_BIN=/path/to/shardlog target/venv/bin/python bench-harness/cluster/reassignment.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from harness import broker_binary, unique_topic  # noqa: E402
from test_cluster import Cluster, agreed_view, wait_for  # noqa: E402
from test_reassignment import settled  # noqa: E402

VALUE_BYTES = 1024
POLL_S = 0.05
MOVE_TIMEOUT_S = 600.0
ADMIN_TIMEOUT_S = 30.0


def fill(bootstrap: str, topic: str, mb: float) -> int:
    """Produces `mb` MB of 1 KiB values; the bytes acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    records = int(mb * 1_000_000 / VALUE_BYTES)
    value = b"x" * VALUE_BYTES
    for index in range(records):
        while True:
            try:
                producer.produce(topic, key=str(index).encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(300) == 0, "records left undelivered"
    return records * VALUE_BYTES


def partition_bytes(node, topic: str) -> int:
    directory = node.data_dir / f"{topic}-0"
    return sum(path.stat().st_size for path in directory.glob("*.log"))


def move_once(cluster: Cluster, mb: float) -> tuple[float, int]:
    nodes = list(cluster.nodes.values())
    topic = unique_topic("moving")
    admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]])],
                        operation_timeout=ADMIN_TIMEOUT_S)[topic].result(
        timeout=ADMIN_TIMEOUT_S + 10)
    wait_for("the topic on [1, 2]", lambda: settled(nodes, topic, (1, 2)))
    everyone = ",".join(node.bootstrap for node in nodes)
    fill(everyone, topic, mb)
    size = partition_bytes(cluster.nodes[1], topic)
    start = time.monotonic()
    run = subprocess.run([str(broker_binary()), "topic", "reassign", topic, "--partition", "0",
                          "--replicas", "3,2", "--bootstrap-server", everyone],
                         capture_output=True, text=True, timeout=ADMIN_TIMEOUT_S)
    assert run.returncode == 0, run.stderr
    deadline = start + MOVE_TIMEOUT_S
    while not settled(nodes, topic, (3, 2)):
        assert time.monotonic() < deadline, "the move did not complete"
        time.sleep(POLL_S)
    return time.monotonic() - start, size


def run_setting(throttle: int, mb: float, repeats: int) -> list[tuple[float, int]]:
    cluster = Cluster(f"bench-reassign-{throttle}")
    config = Path(tempfile.mkdtemp(prefix="shardlog-bench-")) / "throttle.toml"
    config.write_text(f"[cluster]\nreassignment_throttle_bytes_per_s = {throttle}\n")
    for node in cluster.nodes.values():
        node.extra_args += ["--config", str(config)]
    moves = []
    try:
        cluster.start()
        wait_for("the cluster converged",
                 lambda: agreed_view(list(cluster.nodes.values()), {1, 2, 3}))
        for _ in range(repeats):
            moves.append(move_once(cluster, mb))
    finally:
        for node in cluster.nodes.values():
            node.cleanup(keep=False)
    return moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=40.0, help="MB of records to move")
    parser.add_argument("--throttle", type=int, default=8_000_000, help="bytes/s")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"moving one partition of {args.mb:.0f} MB (1 KiB records) from [1, 2] to [3, 2], "
          f"{args.repeats} moves per setting", flush=True)
    for throttle in (0, args.throttle):
        moves = run_setting(throttle, args.mb, args.repeats)
        label = "unthrottled" if throttle == 0 else f"throttle {throttle:,} B/s"
        for seconds, size in moves:
            print(f"  {label}: {size / 1e6:.1f} MB on disk moved in {seconds:.2f} s "
                  f"({size / seconds / 1e6:.1f} MB/s)", flush=True)
        median = statistics.median(seconds for seconds, _ in moves)
        rate = statistics.median(size / seconds for seconds, size in moves)
        against = f", {rate / throttle:.2f}x the configured rate" if throttle else ""
        print(f"{label}: median {median:.2f} s, {rate / 1e6:.1f} MB/s{against}", flush=True)


if __name__ == "__main__":
    main()
