"""Replication figures (issue 16), all from one three-node loopback cluster in one run
(tests/python test_cluster.py's `Cluster`: --shards 1 each, every node a controller,
--broker-session-timeout-ms 2000, --broker-heartbeat-interval-ms 300).

1. Throughput, RF=3 against RF=1, acks=all: a confluent-kafka producer (enable.idempotence,
   linger.ms 5, 1 KiB values, `--records` per run, at most `--window` records queued in the
   client; one producer per run, warmed up with WARMUP_RECORDS first: a fresh idempotent
   producer holds its first records until its producer id arrives) on a fresh 1-partition
   topic per run. Both topics are placed explicitly with the same leader (the lowest node
   id that is not the active controller), RF=3 as [leader, the other two], RF=1 as
   [leader]. RF=1 and RF=3 runs alternate over `--repeats` repeats (ABBA order). Reported: records/s and MB/s (value bytes, 10^6), publish latency
   p50/p99/p99.9 (delivery callback time minus produce() time, so it includes the client's
   queue while saturated), and the RF=3/RF=1 ratios of the medians.
2. Paced latency on the same topics: `--paced-records` records at `--paced-rate`/s (well
   below capacity, so no queueing): acks=all latency p50/p99/p99.9 per setting.
3. Cluster CPU per MB: utime+stime of the three broker processes (/proc/<pid>/stat, clock
   ticks of 1/SC_CLK_TCK s) across each timed saturated run, divided by the MB produced.
   After each run a consumer reads the partition back from the leader (up to its high
   watermark): it must get exactly the acknowledged records (warm-up, timed, paced) in
   produce order (a cheap correctness check; the run fails if not).
4. Leader kill -9 to first acknowledged produce, `--rounds` rounds on one RF=3 topic with
   min.insync.replicas 2: once all three replicas are in the ISR, kill -9 the partition
   leader; from that instant, a raw Produce v8 (acks=-1, one record) goes to each survivor in
   turn, each attempt bounded by ATTEMPT_TIMEOUT_S, the next sweep RETRY_PAUSE_S later, until
   one is acknowledged (resolution: a sweep, about RETRY_PAUSE_S, unless an attempt timed out).
   Alongside, a confluent-kafka producer that was already connected before the kill sends one
   record at the kill (acks=all, idempotent); its delivery time is the stock-client figure.
   Then the killed node restarts; the time until it is back in the ISR is reported too, and
   the next round starts once partition 0's ISR is [1, 2, 3]. Median, min and max.

5. Group coordinator kill -9 to first acknowledged offset commit, `--group-rounds` rounds:
   a confluent-kafka consumer of group G (assigned partition 0 of an RF=3 topic, so a
   simple consumer: no rebalance in the figure) commits once; once the leader of G's
   `__consumer_offsets` partition is the coordinator every node names and its ISR is full,
   kill -9 it and commit again (commit(asynchronous=False), retried on each error) until
   one is acknowledged. The first figure is the time to that commit; then the node restarts
   and the next round waits for the full ISR again. Median, min and max.

The figures are noisy on a shared machine: compare the ratios measured within one run.

Run: make bench-replication [REPLICATION_ROUNDS=10 REPLICATION_RECORDS=200000
REPLICATION_REPEATS=3 REPLICATION_GROUP_ROUNDS=5], or on a binary built elsewhere (no
cargo), with the options and defaults --rounds 10 --records 200000 --repeats 3 --window 5000
--paced-records 2000 --paced-rate 1000 --group-rounds 5:
  SHARDLOG_BIN=/path/to/shardlog target/venv/bin/python bench-harness/cluster/replication.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import Consumer, KafkaException, Producer  # noqa: E402
from confluent_kafka import TopicPartition as CkTopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import batch_wire  # noqa: E402
import kafka_wire  # noqa: E402
from clients import ck_read_all  # noqa: E402
from harness import unique_topic  # noqa: E402
from test_cluster import (HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, Cluster,  # noqa: E402
                          agreed_view, metadata_v1, wait_for)
from test_cluster_leader_epochs import leader_and_epoch, partition_zero  # noqa: E402
from test_cluster_topics import same_everywhere  # noqa: E402
from test_group_coordinator_failover import settled_coordinator  # noqa: E402

VALUE_BYTES = 1024
WARMUP_RECORDS = 100
ATTEMPT_TIMEOUT_S = 0.5
RETRY_PAUSE_S = 0.01
# Bounds on waits (seconds): they stop hangs, they never measure.
FLUSH_TIMEOUT_S = 300.0
CONSUME_TIMEOUT_S = 300.0
ADMIN_TIMEOUT_S = 30.0
FAILOVER_TIMEOUT_S = 60.0
ISR_TIMEOUT_S = 120.0
CLOCK_TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * fraction // 1))
    return sorted_values[int(rank) - 1]


def cpu_us(pid: int) -> int:
    """utime + stime of a live process, in microseconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int((int(fields[11]) + int(fields[12])) * CLOCK_TICK_US)  # fields 14 and 15


def create_placed(bootstrap: str, topic: str, replicas: list[int],
                  configs: dict[str, str] | None = None) -> None:
    """One partition on exactly `replicas` (the first leads). test_cluster_topics'
    `create_topic` lets the controller place the replicas, which would not pin the leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, 1, replica_assignment=[replicas],
                                            config=configs or {})],
                                  operation_timeout=ADMIN_TIMEOUT_S,
                                  request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(timeout=ADMIN_TIMEOUT_S + 10)


def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_topics([topic], operation_timeout=ADMIN_TIMEOUT_S,
                                  request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(timeout=ADMIN_TIMEOUT_S + 10)


def wait_placed(cluster: Cluster, topic: str, leader: int, replicas: list[int]) -> None:
    """Every node shows the topic, led by `leader` with every replica in the ISR."""
    nodes = list(cluster.nodes.values())
    wait_for(f"every node shows {topic}", lambda: same_everywhere(nodes, topic, 1))

    def placed():
        found = partition_zero(cluster.nodes[leader].bootstrap, topic)
        return found is not None and found[0] == leader and sorted(found[2]) == sorted(replicas)
    wait_for(f"{topic} led by {leader} with ISR {replicas}", placed)


def producer_config(bootstrap: str, **extra) -> dict:
    config = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
              "linger.ms": 5, "message.timeout.ms": int(FLUSH_TIMEOUT_S * 1000)}
    config.update(extra)
    return config


@dataclass
class Run:
    replication: int
    records: int
    seconds: float
    cpu_us: dict[int, int]
    latencies: list[float]
    paced: list[float] = field(default_factory=list)

    @property
    def mb(self) -> float:
        return self.records * VALUE_BYTES / 1e6

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.mb / self.seconds

    @property
    def cpu_us_per_mb(self) -> float:
        return sum(self.cpu_us.values()) / self.mb


class Timed:
    """One producer for a whole run (a fresh librdkafka idempotent producer holds its first
    records until its producer id arrives, 0.5-1 s: never inside a timed phase). Each
    record's key is its index in the run; the delivery callback records its latency."""

    def __init__(self, config: dict):
        self.producer = Producer(config)
        self.sent: list[float] = []
        self.latencies: list[float] = []
        self.errors: list = []

    def delivered(self, err, msg) -> None:
        now = time.perf_counter()
        if err is not None:
            self.errors.append(err)
        else:
            self.latencies.append(now - self.sent[int.from_bytes(msg.key(), "big")])

    def send(self, topic: str, value: bytes) -> None:
        key = len(self.sent).to_bytes(4, "big")
        self.sent.append(0.0)
        while True:
            try:
                self.sent[-1] = time.perf_counter()
                self.producer.produce(topic, value, key, partition=0, on_delivery=self.delivered)
                break
            except BufferError:  # the client's queue is full (`--window`)
                self.producer.poll(0.001)
        self.producer.poll(0)

    def flush(self) -> list[float]:
        """Waits for every delivery; the latencies since the last flush, ascending."""
        left = self.producer.flush(FLUSH_TIMEOUT_S)
        if left or self.errors:
            raise SystemExit(f"{left} records undelivered, errors: {self.errors[:3]}")
        latencies, self.latencies = sorted(self.latencies), []
        return latencies


def throughput_run(cluster: Cluster, leader: int, replication: int, args) -> Run:
    others = [node for node in sorted(cluster.nodes) if node != leader]
    replicas = [leader] + others[:replication - 1]
    topic = unique_topic(f"rf{replication}")
    bootstrap = cluster.nodes[leader].bootstrap
    create_placed(bootstrap, topic, replicas)
    wait_placed(cluster, topic, leader, replicas)
    value = os.urandom(VALUE_BYTES)
    pids = {node_id: node.pid for node_id, node in cluster.nodes.items()}
    producer = Timed(producer_config(bootstrap, **{"queue.buffering.max.messages": args.window}))

    # Warm-up: connection, producer id, and the followers' fetchers running.
    for _ in range(WARMUP_RECORDS):
        producer.send(topic, value)
    producer.flush()

    before = {node_id: cpu_us(pid) for node_id, pid in pids.items()}
    started = time.perf_counter()
    for _ in range(args.records):
        producer.send(topic, value)
    latencies = producer.flush()
    seconds = time.perf_counter() - started
    after = {node_id: cpu_us(pid) for node_id, pid in pids.items()}
    run = Run(replication, args.records, seconds,
              {node_id: after[node_id] - before[node_id] for node_id in pids}, latencies)

    start = time.perf_counter()
    for index in range(args.paced_records):
        pause = start + index / args.paced_rate - time.perf_counter()
        if pause > 0:
            producer.producer.poll(pause)  # serves delivery callbacks while it waits
        producer.send(topic, value)
    run.paced = producer.flush()
    acknowledged = len(producer.sent)
    del producer

    # Sanity: the leader serves exactly what was acknowledged, in produce order.
    read = ck_read_all(bootstrap, topic, [0], timeout_s=CONSUME_TIMEOUT_S)[0]
    if [int.from_bytes(record.key, "big") for record in read] != list(range(acknowledged)):
        raise SystemExit(f"{topic}: the leader serves {len(read)} records, {acknowledged} "
                         "were acknowledged (or not in produce order)")
    del read
    delete_topic(bootstrap, topic)
    return run


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def describe(run: Run) -> str:
    lat, paced = run.latencies, run.paced
    cpu = ", ".join(f"node {node_id} {us / 1e6:.2f} s"
                    for node_id, us in sorted(run.cpu_us.items()))
    return (f"RF={run.replication}: {run.records_per_s:,.0f} records/s, {run.mb_per_s:.1f} MB/s "
            f"({run.seconds:.2f} s); saturated latency p50 {ms(percentile(lat, 0.5))} "
            f"p99 {ms(percentile(lat, 0.99))} p99.9 {ms(percentile(lat, 0.999))} ms; "
            f"paced p50 {ms(percentile(paced, 0.5))} p99 {ms(percentile(paced, 0.99))} "
            f"p99.9 {ms(percentile(paced, 0.999))} ms; CPU {run.cpu_us_per_mb:,.0f} us/MB "
            f"({cpu})")


def summarize(runs: list[Run]) -> None:
    def median(replication: int, figure) -> float:
        return statistics.median(figure(run) for run in runs if run.replication == replication)
    rows = [
        ("records/s", lambda r: r.records_per_s, "{:,.0f}"),
        ("MB/s", lambda r: r.mb_per_s, "{:.1f}"),
        ("saturated p50 ms", lambda r: percentile(r.latencies, 0.5) * 1000, "{:.1f}"),
        ("saturated p99 ms", lambda r: percentile(r.latencies, 0.99) * 1000, "{:.1f}"),
        ("saturated p99.9 ms", lambda r: percentile(r.latencies, 0.999) * 1000, "{:.1f}"),
        ("paced p50 ms", lambda r: percentile(r.paced, 0.5) * 1000, "{:.2f}"),
        ("paced p99 ms", lambda r: percentile(r.paced, 0.99) * 1000, "{:.2f}"),
        ("paced p99.9 ms", lambda r: percentile(r.paced, 0.999) * 1000, "{:.2f}"),
        ("cluster CPU us/MB", lambda r: r.cpu_us_per_mb, "{:,.0f}"),
    ]
    repeats = sum(1 for run in runs if run.replication == 1)
    print(f"\nmedians over {repeats} runs each | RF=1 | RF=3 | RF=3/RF=1")
    for name, figure, fmt in rows:
        one, three = median(1, figure), median(3, figure)
        print(f"  {name:<20} {fmt.format(one):>10} {fmt.format(three):>10} "
              f"{three / one:>8.2f}")


@dataclass
class Round:
    killed: int
    killed_controller: bool
    new_leader: int
    raw_s: float
    raw_attempts: int
    raw_errors: set[int]
    stock_s: float
    rejoin_s: float


def raw_produce(bootstrap: str, topic: str, value: bytes) -> int | str:
    """One acks=-1 Produce v8 of one record to partition 0: its error code, or why not."""
    request = batch_wire.produce(1, topic, 0, batch_wire.batch(
        batch_wire.records(1, value), 1), version=8, acks=-1,
        timeout_ms=int(ATTEMPT_TIMEOUT_S * 1000))
    try:
        with kafka_wire.connect(bootstrap) as sock:
            sock.settimeout(ATTEMPT_TIMEOUT_S)
            sock.sendall(request)
            body = kafka_wire.recv_frame(sock)
    except OSError as error:
        return type(error).__name__
    return batch_wire.parse_produce(body[4:], 8)[(topic, 0)].error


def leader_kill_round(cluster: Cluster, topic: str) -> Round:
    nodes = list(cluster.nodes.values())
    controller, _ = wait_for("all 3 nodes registered", lambda: agreed_view(nodes, {1, 2, 3}),
                             ISR_TIMEOUT_S)

    def settled():
        views = {leader_and_epoch(node.bootstrap, topic) for node in nodes}
        if len(views) != 1 or None in views:
            return None
        leader = views.pop()[0]
        found = partition_zero(cluster.nodes[leader].bootstrap, topic)
        return leader if found and sorted(found[2]) == [1, 2, 3] else None
    leader = wait_for("one leader and the full ISR", settled, ISR_TIMEOUT_S)
    leader_bootstrap = cluster.nodes[leader].bootstrap
    wait_for("the leader acknowledges acks=all",
             lambda: raw_produce(leader_bootstrap, topic, b"before") == 0)
    bootstraps = ",".join(node.bootstrap for node in nodes)
    stock = Producer(producer_config(bootstraps, **{"message.timeout.ms": 60_000}))
    stock.produce(topic, b"stock-warm-up", partition=0)
    if stock.flush(ADMIN_TIMEOUT_S):
        raise SystemExit("the stock producer's warm-up record was not delivered")
    delivered: list = []

    cluster.nodes[leader].kill9()
    started = time.monotonic()
    stock.produce(topic, b"stock", partition=0,
                  on_delivery=lambda err, _msg: delivered.append((time.monotonic(), err)))
    attempts, errors, accepted_by = 0, set(), None
    while accepted_by is None:
        for node_id, node in cluster.nodes.items():
            if node_id == leader:
                continue
            attempts += 1
            outcome = raw_produce(node.bootstrap, topic, b"raw")
            if outcome == 0:
                accepted_by = node_id
                break
            errors.add(outcome)
        if accepted_by is not None:
            break
        if time.monotonic() - started > FAILOVER_TIMEOUT_S:
            raise SystemExit(f"no survivor acknowledged within {FAILOVER_TIMEOUT_S}s: {errors}")
        stock.poll(RETRY_PAUSE_S)
    raw_s = time.monotonic() - started
    while not delivered and time.monotonic() - started < FAILOVER_TIMEOUT_S:
        stock.poll(0.01)
    if not delivered or delivered[0][1] is not None:
        raise SystemExit(f"the stock producer's record after the kill: {delivered}")
    stock_s = delivered[0][0] - started
    stock.flush(ADMIN_TIMEOUT_S)
    del stock

    new_leader = accepted_by
    restarted = time.monotonic()
    cluster.nodes[leader].start()
    new_bootstrap = cluster.nodes[new_leader].bootstrap
    wait_for("the restarted node is back in the ISR",
             lambda: sorted(partition_zero(new_bootstrap, topic)[2]) == [1, 2, 3],
             ISR_TIMEOUT_S)
    rejoin_s = time.monotonic() - restarted
    return Round(leader, leader == controller, new_leader, raw_s, attempts, errors, stock_s,
                 rejoin_s)


def commit_once(consumer: Consumer, topic: str, offset: int) -> str | None:
    """One synchronous commit of partition 0 at `offset`: None, or the error."""
    try:
        consumer.commit(offsets=[CkTopicPartition(topic, 0, offset)], asynchronous=False)
    except KafkaException as error:
        return error.args[0].name()
    return None


def group_coordinator_round(cluster: Cluster, topic: str, group: str, index: int) -> dict:
    """kill -9 of group's coordinator to its first acknowledged commit (section 5)."""
    nodes = list(cluster.nodes.values())
    wait_for("all 3 nodes registered", lambda: agreed_view(nodes, {1, 2, 3}), ISR_TIMEOUT_S)
    everyone = ",".join(node.bootstrap for node in nodes)
    consumer = Consumer({"bootstrap.servers": everyone, "group.id": group,
                         "enable.auto.commit": False})
    consumer.assign([CkTopicPartition(topic, 0, 0)])
    wait_for("a first commit", lambda: commit_once(consumer, topic, 2 * index + 1) is None,
             FAILOVER_TIMEOUT_S)
    coordinator = wait_for("the coordinator settled with the full ISR",
                           lambda: settled_coordinator(nodes, group, [1, 2, 3]), ISR_TIMEOUT_S)
    cluster.nodes[coordinator].kill9()
    started = time.monotonic()
    errors: set[str] = set()
    while True:
        error = commit_once(consumer, topic, 2 * index + 2)
        if error is None:
            break
        errors.add(error)
        if time.monotonic() - started > FAILOVER_TIMEOUT_S:
            raise SystemExit(f"no commit acknowledged within {FAILOVER_TIMEOUT_S}s: {errors}")
        time.sleep(RETRY_PAUSE_S)
    commit_s = time.monotonic() - started
    consumer.close()
    cluster.nodes[coordinator].start()
    return {"killed": coordinator, "commit_s": commit_s, "errors": errors}


def spread(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.0f} ms, min {min(values) * 1000:.0f} "
            f"ms, max {max(values) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000,
                        help="records per saturated run (1 KiB values)")
    parser.add_argument("--repeats", type=int, default=3, help="RF=1 and RF=3 runs each")
    parser.add_argument("--window", type=int, default=5000,
                        help="queue.buffering.max.messages of the saturated producer")
    parser.add_argument("--paced-records", type=int, default=2000)
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="records/s")
    parser.add_argument("--rounds", type=int, default=10, help="leader kill rounds")
    parser.add_argument("--group-rounds", type=int, default=5,
                        help="group coordinator kill rounds")
    args = parser.parse_args()

    cluster = Cluster("bench-replication")
    runs: list[Run] = []
    rounds: list[Round] = []
    try:
        cluster.start()
        nodes = list(cluster.nodes.values())
        controller, _ = wait_for("the cluster converged", lambda: agreed_view(nodes, {1, 2, 3}))
        leader = min(node for node in cluster.nodes if node != controller)
        print(f"three nodes, --shards 1, broker session timeout {SESSION_TIMEOUT_MS} ms, "
              f"heartbeat {HEARTBEAT_INTERVAL_MS} ms; active controller {controller}; "
              f"both topics led by node {leader}", flush=True)
        print(f"{args.records:,} records of {VALUE_BYTES} bytes per run, acks=all, idempotent, "
              f"linger.ms 5, window {args.window}; paced: {args.paced_records} records at "
              f"{args.paced_rate:.0f}/s", flush=True)
        for repeat in range(args.repeats):
            for replication in ((1, 3) if repeat % 2 == 0 else (3, 1)):
                run = throughput_run(cluster, leader, replication, args)
                runs.append(run)
                print(f"repeat {repeat + 1} {describe(run)}", flush=True)
        if runs:
            summarize(runs)

        if args.rounds:
            topic = unique_topic("failover")
            bootstrap = cluster.nodes[1].bootstrap
            admin = AdminClient({"bootstrap.servers": bootstrap})
            created = admin.create_topics([NewTopic(topic, 1, 3, config={
                "min.insync.replicas": "2"})], operation_timeout=ADMIN_TIMEOUT_S)
            created[topic].result(timeout=ADMIN_TIMEOUT_S + 10)
            print(f"\nleader kill -9 rounds on {topic} (RF=3, min.insync.replicas 2)",
                  flush=True)
            for index in range(args.rounds):
                found = leader_kill_round(cluster, topic)
                rounds.append(found)
                controller = metadata_v1(cluster.nodes[found.new_leader].bootstrap)[0]
                also = " (also the active controller)" if found.killed_controller else ""
                print(f"round {index + 1}: killed leader {found.killed}{also}, new leader "
                      f"{found.new_leader} (controller now {controller}); raw acks=all produce "
                      f"after {found.raw_s * 1000:.0f} ms ({found.raw_attempts} attempts, "
                      f"refusals {sorted(map(str, found.raw_errors))}); stock producer after "
                      f"{found.stock_s * 1000:.0f} ms; restarted node back in the ISR after "
                      f"{found.rejoin_s * 1000:.0f} ms", flush=True)
            print(f"leader kill -9 to first acknowledged produce (raw, each survivor in turn): "
                  f"{spread([r.raw_s for r in rounds])} over {len(rounds)} rounds")
            print(f"  stock confluent-kafka producer connected before the kill: "
                  f"{spread([r.stock_s for r in rounds])}")
            print(f"  restart to back in the ISR: {spread([r.rejoin_s for r in rounds])}")
            alone = [r.raw_s for r in rounds if not r.killed_controller]
            if len(alone) not in (0, len(rounds)):
                both = [r.raw_s for r in rounds if r.killed_controller]
                print(f"  raw, leader alone killed: {spread(alone)} ({len(alone)} rounds); "
                      f"leader and controller: {spread(both)} ({len(both)} rounds)")
        if args.group_rounds:
            topic = unique_topic("groups")
            admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
            admin.create_topics([NewTopic(topic, 1, 3)], operation_timeout=ADMIN_TIMEOUT_S)[
                topic].result(timeout=ADMIN_TIMEOUT_S + 10)
            group = unique_topic("bench-group")
            print(f"\ngroup coordinator kill -9 rounds (group {group})", flush=True)
            commits = []
            for index in range(args.group_rounds):
                found = group_coordinator_round(cluster, topic, group, index)
                commits.append(found["commit_s"])
                print(f"round {index + 1}: killed coordinator {found['killed']}; commit "
                      f"acknowledged after {found['commit_s'] * 1000:.0f} ms (errors seen "
                      f"{sorted(found['errors'])})", flush=True)
            print(f"group coordinator kill -9 to first acknowledged commit: {spread(commits)} "
                  f"over {len(commits)} rounds")
    except BaseException:
        for node in cluster.nodes.values():
            print(f"==== node {node.bootstrap} ====\n{node.stderr_tail(20)}")
        raise
    finally:
        for node in cluster.nodes.values():
            node.cleanup(keep=False)


if __name__ == "__main__":
    main()
