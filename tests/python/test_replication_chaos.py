"""Contract: replication survives faults (issue 16's chaos test), with stock clients and real
processes.

Three shardlog processes (--shards 1, a controller each) whose advertised listeners are fault
proxies (fault_proxy.py) in front of their Kafka ports, so every follower's replica fetch and
every client connection after bootstrap goes through the proxy of the broker it reaches.
Controller (Raft, heartbeat, AlterPartition) traffic goes directly between the controller
ports: the faults below cut data links, not the metadata quorum (except by stopping or killing
a process). A fault on a proxy is a fault on every link *into* that broker; limited by client
id (`shardlog-replica-<node>`), it cuts one follower's link to that broker alone.

On an RF=3 topic with min.insync.replicas=2 (PARTITIONS partitions), two background idempotent
confluent-kafka producers (acks=all, enable.idempotence) write unique sequenced values
`<producer>:<seq>` to explicit partitions and record which were acknowledged and at which
offset; a background confluent-kafka consumer (assigned from the beginning) records every
(partition, offset, value) it is served. Meanwhile CYCLES faults, drawn from a seeded
generator, each followed by a wait until the cluster is back (every broker process
registered, all three agreed, every partition led and, best effort, its ISR full) and every
producer makes progress on every partition (else: a hang, the cycles end, the checks run):
  - kill -9 a partition's leader (or a follower), restart it after a pause;
  - SIGSTOP a partition's leader (or a follower) for a while, then SIGCONT;
  - the leader's proxy: stall (blackhole) or drop (reset) every link into it, or only the
    followers' links; one-way stalls (requests get through and answers do not, or back);
    delay every link (or the replica links) into a broker;
  - cut one follower's link to the leader; also: cut it, let it leave the ISR, then kill -9
    the leader (the election must pick the replica still in sync);
  - two faults that found broker bugs (now fixed; each also runs alone at the end of this
    file): a leader cut off from its followers killed and restarted before its session
    expires; a leader cut off from its followers, SIGSTOPped until another replica leads, a
    burst written to the new leader, then resumed.
Afterwards, with every fault healed and the producers flushed:
  (1) a fresh consumer reads every partition from the beginning: every acknowledged value is
      there exactly once, at the offset its delivery report gave, and per partition the
      acknowledged values of each producer are in the order they were sent; no value is
      there twice;
  (2) everything the background consumer was served is still there at the same offset (no
      record a consumer saw disappears or changes);
  (2b) the background consumer also commits its positions to its group (asynchronously,
      after each batch; the group's coordinator is the leader of its `__consumer_offsets`
      partition, RF=3, through the same faults): the group's committed offset of each
      partition, read back at the end, is at least the last commit acknowledged and at most
      the last one sent (no acknowledged commit is lost);
  (3) the three brokers are stopped (SIGTERM) and their partition directories compared: the
      record batches (Kafka v2 framing, zero padding ends a segment) below the smallest log
      end are byte-identical across replicas, the log ends are equal, and every offset below
      the final high watermark is on all three.
No broker may exit on its own. The seed is printed; SHARDLOG_CHAOS_SEED replays it,
SHARDLOG_CHAOS_CYCLES sets the number of cycles (default: the short version in `make test`;
`make chaos` runs the long one), SHARDLOG_CHAOS_FAULTS picks faults by name (`all`: with the
known-bug ones). A failure lists every problem found, prints each broker's stderr tail, and
keeps the data dirs and the timeline (faults; leader, epoch and ISR changes) under
target/test-data. Waits are bounded polls; nothing asserts on timing.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import struct
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import fault_proxy
import kafka_wire as wire
from fault_proxy import FaultProxy
from harness import Broker, unique_topic
from test_cluster import Cluster, agreed_view, failed_test, wait_for

pytestmark = pytest.mark.cluster

CYCLES = int(os.environ.get("SHARDLOG_CHAOS_CYCLES", "4"))
SEED = int(os.environ.get("SHARDLOG_CHAOS_SEED") or random.SystemRandom().randrange(1 << 32))
# The faults (Chaos.run_one) and how often each is drawn.
FAULT_WEIGHTS = {
    "kill9_leader": 3, "kill9_follower": 1, "sigstop_leader": 3, "sigstop_follower": 1,
    "leader_links": 2, "one_way": 2, "follower_link": 2, "delay": 1,
    "lagging_follower_then_leader_kill": 2, "leader_restart_while_cut_off": 2,
    "leader_cut_off_then_paused": 2,
}
# Faults that find a known, not yet fixed broker bug, left out of the default mix (none now;
# see docs/replication.md, "Chaos test"). SHARDLOG_CHAOS_FAULTS (comma-separated names, or
# "all") picks the faults instead.
KNOWN_BUG_FAULTS: set[str] = set()
ONLY_FAULTS = [f for f in os.environ.get("SHARDLOG_CHAOS_FAULTS", "").split(",") if f]
PARTITIONS = int(os.environ.get("SHARDLOG_CHAOS_PARTITIONS", "2"))
NODES = {1, 2, 3}
# Two idempotent producers write the same partitions, so that batches a failed-over log
# should not have kept differ from what replaces them; each: records per second over all
# partitions, and a cap on records not yet acknowledged (it pauses when the cluster cannot
# take them).
PRODUCERS = 2
PRODUCE_RATE = 100
MAX_OUTSTANDING = 2000
# Broker settings (a config file): a follower not caught up for this long leaves the ISR, so
# link faults of a few seconds move the ISR; acks=all waits this long for the high watermark.
REPLICA_LAG_TIME_MAX_MS = 3000
REPLICA_ACK_TIMEOUT_MS = 10000
# Bounds on waits (seconds); generous, they only stop hangs.
BACK_TIMEOUT_S = 60.0
ISR_TIMEOUT_S = 45.0
PROGRESS_TIMEOUT_S = 90.0
FLUSH_TIMEOUT_S = 180.0
# Once a problem was found, waits for the end state are shorter: they are only evidence.
HUNG_FLUSH_TIMEOUT_S = 20.0
SETTLE_AFTER_PROBLEM_S = 15.0
READ_TIMEOUT_S = 180.0
API_METADATA = 3
MONITOR_INTERVAL_S = 0.3
REPLICA_CLIENT = "shardlog-replica-"


def _timeout_s() -> int:
    return max(600, CYCLES * 120 + 400)


class Timeline:
    """What happened when (seconds since the start), printed and kept in a file."""

    def __init__(self, path: Path):
        self.path = path
        self.start = time.monotonic()
        self.lines: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.start

    def note(self, text: str) -> None:
        line = f"{self.now():8.2f}s  {text}"
        self.lines.append(line)
        print(line, flush=True)
        with open(self.path, "a") as out:
            out.write(line + "\n")


class ChaosCluster(Cluster):
    """`Cluster` whose brokers advertise a FaultProxy in front of their Kafka port, with the
    replica settings above in a config file and, optionally, another broker session
    timeout."""

    def __init__(self, name: str, session_timeout_ms: int | None = None):
        self.session_timeout_ms = session_timeout_ms
        super().__init__(name)
        self.proxies: dict[int, FaultProxy] = {}
        for node_id, node in self.nodes.items():
            config = node.workdir / "chaos.toml"
            config.write_text(f"[cluster]\nreplica_lag_time_max_ms = {REPLICA_LAG_TIME_MAX_MS}\n"
                              f"replica_ack_timeout_ms = {REPLICA_ACK_TIMEOUT_MS}\n")
            node.extra_args += ["--config", str(config)]
            proxy = FaultProxy(node.host, node.port, name=f"proxy{node_id}").start()
            node.advertised = proxy.address
            self.proxies[node_id] = proxy

    def node_args(self, node: int, controller: bool, rack: str | None = None) -> list[str]:
        args = super().node_args(node, controller, rack)
        if self.session_timeout_ms is not None:
            args[args.index("--broker-session-timeout-ms") + 1] = str(self.session_timeout_ms)
        return args

    def heal_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()
        for node in self.nodes.values():
            if node.alive():
                os.kill(node.pid, signal.SIGCONT)

    def close_proxies(self) -> None:
        for proxy in self.proxies.values():
            proxy.close()


@pytest.fixture
def chaos_cluster(request):
    # indirect parametrization may set another broker session timeout (ms)
    c = ChaosCluster(request.node.name, getattr(request, "param", None))
    try:
        yield c.start()
    finally:
        failed = failed_test(request)
        c.heal_all()
        for node in c.nodes.values():
            if failed:
                print(f"\n==== {node.bootstrap} (advertised {node.advertised}) "
                      f"data={node.data_dir} ====\n{node.stderr_tail()}")
            node.cleanup(keep=failed)
        c.close_proxies()


# ---- cluster state, through the brokers' own ports (never through the proxies) ------------

def partition_states(bootstrap: str, topic: str) -> dict[int, tuple[int, int, tuple[int, ...]]]:
    """{partition: (leader, leader epoch, ISR)} from one node's raw Metadata v7."""
    body = wire.i32(1) + wire.string(topic) + wire.i8(0)  # no auto-creation
    answer = wire.roundtrip(bootstrap, wire.frame(wire.header_v1(API_METADATA, 7, 31) + body))
    r = wire.Reader(answer)
    assert r.i32() == 31
    r.i32()  # throttle
    for _ in range(r.i32()):
        r.i32(), r.string(), r.i32(), r.string()
    r.string()  # cluster id
    r.i32()  # controller
    found = {}
    for _ in range(r.i32()):
        error, name, _internal = r.i16(), r.string(), r.i8()
        for _ in range(r.i32()):
            _perror, index, leader, epoch = r.i16(), r.i32(), r.i32(), r.i32()
            _replicas, isr, _offline = ([r.i32() for _ in range(r.i32())] for _ in range(3))
            if name == topic and error == 0:
                found[index] = (leader, epoch, tuple(sorted(isr)))
    return found


def agreed_partitions(nodes: list[Broker], topic: str):
    """The partition states if every node in `nodes` reports the same, each partition led."""
    views = [partition_states(node.bootstrap, topic) for node in nodes]
    if any(view != views[0] for view in views) or len(views[0]) != PARTITIONS:
        return None
    if any(leader < 0 for leader, _, _ in views[0].values()):
        return None
    return views[0]


# ---- the clients ----------------------------------------------------------------------------

class AckedProducer(threading.Thread):
    """Idempotent acks=all producer of values `<index>:<seq>` (seq increasing; partition seq
    % PARTITIONS), remembering each value's send time, and the delivery report of each."""

    def __init__(self, index: int, bootstrap: str, topic: str, timeline: Timeline):
        super().__init__(daemon=True, name=f"chaos-producer-{index}")
        self.index, self.topic, self.timeline = index, topic, timeline
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "client.id": f"chaos-producer-{index}",
            "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "message.timeout.ms": 300000, "error_cb": self._on_error})
        self.sent_at: list[float] = []             # by seq
        self.acked: dict[int, tuple[int, float]] = {}  # seq -> (offset, ack time)
        self.failed: dict[int, str] = {}           # seq -> delivery error
        self.acked_per_partition = Counter()
        self.errors: list[str] = []
        self.fatal: list[str] = []
        self.refused: list[str] = []  # produce() calls librdkafka refused (non-fatal)
        self.stopping = threading.Event()
        self.crashed: BaseException | None = None

    def _on_error(self, error) -> None:
        text = f"{self.timeline.now():.2f}s {error}"
        if len(self.errors) < 1000:
            self.errors.append(text)
        if error.fatal():
            self.fatal.append(text)

    def _on_delivery(self, seq: int):
        def delivered(err, msg):
            if err is None:
                self.acked[seq] = (msg.offset(), self.timeline.now())
                self.acked_per_partition[msg.partition()] += 1
            else:
                self.failed[seq] = f"{self.timeline.now():.2f}s {err}"
        return delivered

    def outstanding(self) -> int:
        return len(self.sent_at) - len(self.acked) - len(self.failed)

    def run(self) -> None:
        try:
            interval = 1.0 / PRODUCE_RATE
            next_at = time.monotonic()
            while not self.stopping.is_set():
                if self.fatal:
                    return
                self.producer.poll(0)
                if self.outstanding() >= MAX_OUTSTANDING:
                    self.producer.poll(0.1)
                    next_at = time.monotonic()
                    continue
                wait = next_at - time.monotonic()
                if wait > 0:
                    self.producer.poll(wait)
                    continue
                next_at += interval
                seq = len(self.sent_at)
                try:
                    self.producer.produce(self.topic, value=f"{self.index}:{seq}".encode(),
                                          partition=seq % PARTITIONS,
                                          on_delivery=self._on_delivery(seq))
                except BufferError:
                    self.producer.poll(0.1)
                    continue
                except KafkaException as error:
                    if error.args[0].fatal():
                        raise
                    # e.g. _UNKNOWN_TOPIC after a restarted broker's Metadata answer: noted,
                    # and the same value is produced again.
                    self.refused.append(f"{self.timeline.now():.2f}s {error.args[0]}")
                    self.producer.poll(0.1)
                    continue
                self.sent_at.append(self.timeline.now())
        except KafkaException as error:
            # librdkafka raises a fatal error from produce() and poll(); it is evidence.
            if not error.args[0].fatal():
                self.crashed = error
            else:
                self.fatal.append(f"{self.timeline.now():.2f}s {error.args[0]}")
        except BaseException as error:  # surfaced by finish()
            self.crashed = error

    def finish(self, timeout_s: float) -> int:
        """Stops producing and flushes; the number of records still undelivered (after a
        fatal error, librdkafka fails what is left with it)."""
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), "the producer thread did not stop"
        try:
            return self.producer.flush(timeout_s)
        except KafkaException as error:
            self.fatal.append(f"{self.timeline.now():.2f}s {error.args[0]}")
            return self.producer.flush(timeout_s)


class Watcher(threading.Thread):
    """A consumer assigned every partition from the beginning, remembering what it was served
    at each offset (and any offset it was later served a different value at)."""

    def __init__(self, bootstrap: str, topic: str, timeline: Timeline):
        super().__init__(daemon=True, name="chaos-watcher")
        self.topic, self.timeline = topic, timeline
        self.group = f"chaos-watcher-{uuid.uuid4().hex[:8]}"
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "client.id": "chaos-watcher",
            "group.id": self.group, "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": False, "on_commit": self._on_commit})
        # (2b) offsets committed (sent) and acknowledged, per partition: the highest of each.
        self.commit_sent = {p: -1 for p in range(PARTITIONS)}
        self.commit_acked = {p: -1 for p in range(PARTITIONS)}
        self.commit_errors: Counter = Counter()
        self.seen: dict[int, dict[int, tuple[bytes, float]]] = {p: {} for p in range(PARTITIONS)}
        self.next_offset = {p: 0 for p in range(PARTITIONS)}  # past the highest offset served
        self.changed: list[str] = []
        self.rewinds: list[str] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.crashed: BaseException | None = None

    def _on_commit(self, error, partitions) -> None:
        if error is not None:
            self.commit_errors[str(error)] += 1
            return
        for tp in partitions:
            if tp.error is None:
                self.commit_acked[tp.partition] = max(self.commit_acked[tp.partition], tp.offset)
            else:
                self.commit_errors[str(tp.error)] += 1

    def _commit(self) -> None:
        """Commits every position that moved since the last commit (asynchronously)."""
        moved = [TopicPartition(self.topic, p, offset) for p, offset in self.next_offset.items()
                 if offset > self.commit_sent[p]]
        if moved:
            for tp in moved:
                self.commit_sent[tp.partition] = tp.offset
            self.consumer.commit(offsets=moved, asynchronous=True)

    def run(self) -> None:
        try:
            self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(PARTITIONS)])
            last = {p: -1 for p in range(PARTITIONS)}
            while not self.stopping.is_set():
                self._commit()
                for msg in self.consumer.consume(num_messages=1000, timeout=0.5):
                    if msg.error():
                        if len(self.errors) < 1000:
                            self.errors.append(f"{self.timeline.now():.2f}s {msg.error()}")
                        continue
                    p, offset, value = msg.partition(), msg.offset(), msg.value()
                    if offset <= last[p]:
                        self.rewinds.append(f"{self.timeline.now():.2f}s partition {p}: "
                                            f"offset {offset} after {last[p]}")
                    last[p] = offset
                    before = self.seen[p].get(offset)
                    if before is not None and before[0] != value:
                        self.changed.append(
                            f"partition {p} offset {offset}: served {before[0]!r} at "
                            f"{before[1]:.2f}s, then {value!r} at {self.timeline.now():.2f}s")
                    if before is None:
                        self.seen[p][offset] = (value, self.timeline.now())
                    self.next_offset[p] = max(self.next_offset[p], offset + 1)
        except BaseException as error:
            self.crashed = error
        finally:
            self.consumer.close()

    def finish(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), "the watcher thread did not stop"


def check_commits(bootstrap: str, watcher: Watcher) -> list[str]:
    """(2b): the watcher's group has, per partition, a committed offset between its last
    acknowledged commit and its last one sent."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": watcher.group,
                         "client.id": "chaos-commits", "enable.auto.commit": False})
    try:
        committed = {tp.partition: tp.offset for tp in consumer.committed(
            [TopicPartition(watcher.topic, p) for p in range(PARTITIONS)], timeout=60)}
    finally:
        consumer.close()
    problems = []
    for p in range(PARTITIONS):
        acked, sent = watcher.commit_acked[p], watcher.commit_sent[p]
        if not acked <= committed[p] <= max(sent, acked):
            problems.append(f"partition {p}: committed offset {committed[p]}, but the last "
                            f"commit acknowledged was {acked} and the last sent {sent}")
    if all(watcher.commit_acked[p] < 0 for p in range(PARTITIONS)):
        problems.append(f"no offset commit was acknowledged: {dict(watcher.commit_errors)}")
    return problems


def read_everything(bootstrap: str, topic: str) -> tuple[dict[int, list[tuple[int, bytes]]],
                                                          dict[int, int]]:
    """({partition: [(offset, value)]} from offset 0 up to the high watermark, {partition:
    high watermark}) with a fresh consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "client.id": "chaos-reader",
                         "group.id": f"chaos-reader-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15,
                                                  cached=False)[1] for p in range(PARTITIONS)}
        out: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        todo = {p for p in range(PARTITIONS) if ends[p] > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in todo])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while todo:
            assert time.monotonic() < deadline, (
                f"reading {topic} up to {ends}: got {[len(out[p]) for p in range(PARTITIONS)]}")
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                p = msg.partition()
                if p in todo and msg.offset() < ends[p]:
                    out[p].append((msg.offset(), msg.value()))
                    if msg.offset() == ends[p] - 1:
                        todo.discard(p)
        return out, ends
    finally:
        consumer.close()


# ---- on-disk logs ----------------------------------------------------------------------------

def batches_on_disk(partition_dir: Path) -> tuple[list[tuple[int, int, bytes]], list[str]]:
    """[(base offset, last offset, batch bytes)] of every Kafka v2 batch in the partition's
    segments, in order, and anything odd found. All-zero bytes where a header should be end a
    segment (the O_DIRECT padding of the active one)."""
    batches: list[tuple[int, int, bytes]] = []
    odd: list[str] = []
    for segment in sorted(partition_dir.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if base == 0 and length == 0 and not any(data[pos:pos + 61]):
                if any(data[pos:]):
                    odd.append(f"{segment.name}: non-zero bytes after the padding at {pos}")
                break
            if length < 49 or pos + 12 + length > len(data) or data[pos + 16] != 2:
                odd.append(f"{segment.name}: no batch at byte {pos} (base {base}, length "
                           f"{length}, file size {len(data)})")
                break
            (last_delta,) = struct.unpack_from(">i", data, pos + 23)
            batches.append((base, base + last_delta, data[pos:pos + 12 + length]))
            pos += 12 + length
    for (_, last, _), (base, _, _) in zip(batches, batches[1:]):
        if base != last + 1:
            odd.append(f"batch at {base} does not continue the one ending at {last}")
    return batches, odd


def describe_batch(batch: bytes) -> str:
    base, length, epoch = struct.unpack_from(">qii", batch, 0)
    (last_delta,) = struct.unpack_from(">i", batch, 23)
    producer_id, producer_epoch, base_seq = struct.unpack_from(">qhi", batch, 43)
    return (f"[{base}..{base + last_delta}] len={length} leader_epoch={epoch} "
            f"pid={producer_id} pepoch={producer_epoch} seq={base_seq}")


def compare_replicas(nodes: dict[int, Broker], topic: str, high_watermarks: dict[int, int],
                     timeline: Timeline) -> list[str]:
    problems = []
    for p in range(PARTITIONS):
        logs = {}
        for node_id, node in nodes.items():
            batches, odd = batches_on_disk(node.data_dir / f"{topic}-{p}")
            problems += [f"partition {p} node {node_id}: {text}" for text in odd]
            logs[node_id] = batches
        ends = {node_id: (b[-1][1] + 1 if b else 0) for node_id, b in logs.items()}
        timeline.note(f"on disk, partition {p}: log ends {ends}, batches "
                      f"{ {n: len(b) for n, b in logs.items()} }, high watermark "
                      f"{high_watermarks[p]}")
        low = min(ends.values())
        if len(set(ends.values())) != 1:
            problems.append(f"partition {p}: replicas end at different offsets {ends}")
        if low < high_watermarks[p]:
            problems.append(f"partition {p}: a replica ends at {low}, below the high watermark "
                            f"{high_watermarks[p]} consumers were served up to")
        prefixes = {n: [b for b in batches if b[1] < low] for n, batches in logs.items()}
        reference_id = min(prefixes)
        reference = prefixes[reference_id]
        for node_id, prefix in prefixes.items():
            if prefix == reference:
                continue
            index = next((i for i, (a, b) in enumerate(zip(prefix, reference)) if a != b),
                         min(len(prefix), len(reference)))
            mine = describe_batch(prefix[index][2]) if index < len(prefix) else "none"
            theirs = describe_batch(reference[index][2]) if index < len(reference) else "none"
            problems.append(f"partition {p}: below offset {low} node {node_id} differs from "
                            f"node {reference_id} at batch #{index}: {mine} vs {theirs}")
    return problems


# ---- faults ---------------------------------------------------------------------------------

class Chaos:
    def __init__(self, cluster: ChaosCluster, topic: str, timeline: Timeline, rng: random.Random):
        self.cluster, self.topic, self.timeline, self.rng = cluster, topic, timeline, rng
        self.kinds = Counter()
        self.slow_isr = 0
        self.paused: set[int] = set()  # SIGSTOPped nodes: never asked anything
        self.stopping = threading.Event()
        self.monitor = threading.Thread(target=self._monitor, daemon=True, name="chaos-monitor")

    def responsive(self, excluding: set[int] = frozenset()) -> list[Broker]:
        return [node for node_id, node in self.cluster.nodes.items()
                if node.alive() and node_id not in excluding | self.paused]

    def _monitor(self) -> None:
        """Notes every change of a partition's leader, epoch or ISR in the timeline, as the
        lowest-numbered responsive node reports it."""
        last: dict[int, tuple] = {}
        while not self.stopping.wait(MONITOR_INTERVAL_S):
            for node_id, node in sorted(self.cluster.nodes.items()):
                if not node.alive() or node_id in self.paused:
                    continue
                try:
                    states = partition_states(node.bootstrap, self.topic)
                except (OSError, ConnectionError, ValueError, AssertionError):
                    continue
                for p, state in sorted(states.items()):
                    if last.get(p) != state:
                        self.timeline.note(f"  [node {node_id} reports] partition {p}: leader "
                                           f"{state[0]} epoch {state[1]} ISR {list(state[2])}")
                        last[p] = state
                break

    def states(self, excluding: set[int] = frozenset()):
        return wait_for("the partitions' leaders are known",
                        lambda: agreed_partitions(self.responsive(excluding)[:1], self.topic),
                        timeout_s=BACK_TIMEOUT_S)

    def pick(self) -> tuple[int, int, int, list[int]]:
        """(partition, its leader, its epoch, its other replicas) for a random partition."""
        states = self.states()
        partition = self.rng.randrange(PARTITIONS)
        leader, epoch, _isr = states[partition]
        return partition, leader, epoch, sorted(NODES - {leader})

    def pause(self, low: float, high: float) -> float:
        seconds = round(self.rng.uniform(low, high), 2)
        time.sleep(seconds)
        return seconds

    # Each fault: (name, weight, function); the function notes what it did and heals.
    def kill9(self, target: str) -> None:
        partition, leader, _, followers = self.pick()
        victim = leader if target == "leader" else self.rng.choice(followers)
        self.timeline.note(f"kill -9 node {victim} ({target} of partition {partition})")
        self.cluster.nodes[victim].kill9()
        seconds = self.pause(0.5, 5.0)
        self.cluster.nodes[victim].start()
        self.timeline.note(f"node {victim} restarted after {seconds}s")

    def sigstop(self, target: str) -> None:
        partition, leader, _, followers = self.pick()
        victim = leader if target == "leader" else self.rng.choice(followers)
        node = self.cluster.nodes[victim]
        self.timeline.note(f"SIGSTOP node {victim} ({target} of partition {partition})")
        self.paused.add(victim)
        os.kill(node.pid, signal.SIGSTOP)
        try:
            seconds = self.pause(1.0, 6.0)
        finally:
            os.kill(node.pid, signal.SIGCONT)
            self.paused.discard(victim)
        self.timeline.note(f"SIGCONT node {victim} after {seconds}s")

    def proxy_fault(self, node_id: int, what: str, mode: str, sources=None, delay_ms: int = 0,
                    low: float = 2.0, high: float = 8.0) -> None:
        proxy = self.cluster.proxies[node_id]
        fault = proxy.set_fault(mode, delay_ms=delay_ms, sources=sources)
        self.timeline.note(f"links into node {node_id} ({what}): {fault.describe()}")
        try:
            seconds = self.pause(low, high)
        finally:
            proxy.heal()
        self.timeline.note(f"links into node {node_id} healed after {seconds}s")

    def leader_links(self) -> None:
        partition, leader, _, _ = self.pick()
        mode = self.rng.choice([fault_proxy.STALL, fault_proxy.DROP])
        sources = self.rng.choice([None, [REPLICA_CLIENT]])
        self.proxy_fault(leader, f"leader of partition {partition}", mode, sources)

    def one_way(self) -> None:
        partition, leader, _, _ = self.pick()
        mode = self.rng.choice([fault_proxy.STALL_REQUESTS, fault_proxy.STALL_RESPONSES])
        sources = self.rng.choice([None, [REPLICA_CLIENT]])
        self.proxy_fault(leader, f"leader of partition {partition}", mode, sources)

    def follower_link(self) -> None:
        partition, leader, _, followers = self.pick()
        follower = self.rng.choice(followers)
        mode = self.rng.choice([fault_proxy.STALL, fault_proxy.DROP])
        self.proxy_fault(leader, f"follower {follower}'s link to the leader of partition "
                         f"{partition}", mode, [f"{REPLICA_CLIENT}{follower}"])

    def delay(self) -> None:
        node_id = self.rng.choice(sorted(NODES))
        delay_ms = self.rng.choice([20, 100, 300, 800])
        sources = self.rng.choice([None, [REPLICA_CLIENT]])
        self.proxy_fault(node_id, "any broker", fault_proxy.DELAY, sources, delay_ms, 3.0, 8.0)

    def lagging_follower_then_leader_kill(self) -> None:
        """Cut a follower's link to a leader until it leaves the ISR (best effort), kill -9
        the leader: the controller must elect the replica still in sync, which holds every
        acknowledged record; then heal and restart."""
        partition, leader, _, followers = self.pick()
        lagging = self.rng.choice(followers)
        proxy = self.cluster.proxies[leader]
        fault = proxy.set_fault(fault_proxy.STALL, sources=[f"{REPLICA_CLIENT}{lagging}"])
        self.timeline.note(f"links into node {leader} (follower {lagging}'s link to the leader "
                           f"of partition {partition}): {fault.describe()}")
        try:
            deadline = time.monotonic() + ISR_TIMEOUT_S
            left = False
            while time.monotonic() < deadline and not left:
                states = agreed_partitions(self.responsive()[:1], self.topic) or {}
                left = partition in states and lagging not in states[partition][2]
                time.sleep(0.2)
            self.timeline.note(f"follower {lagging} {'left' if left else 'did NOT leave'} the "
                               f"ISR of partition {partition}; kill -9 leader {leader}")
            self.cluster.nodes[leader].kill9()
            self.pause(0.5, 3.0)
        finally:
            proxy.heal()
        self.timeline.note(f"links into node {leader} healed")
        survivors = self.responsive()

        def moved():
            state = (agreed_partitions(survivors, self.topic) or {}).get(partition)
            return state if state is not None and state[0] != leader else None
        after = wait_for("a new leader for the partition", moved, timeout_s=BACK_TIMEOUT_S)
        self.timeline.note(f"partition {partition} now led by {after[0]} (epoch {after[1]}, "
                           f"ISR {list(after[2])}); restarting node {leader}")
        self.cluster.nodes[leader].start()

    def leader_restart_while_cut_off(self) -> None:
        """Cut the followers' links into a leader, let it append records they cannot fetch,
        kill -9 it and restart it at once (before its session expires, so the controller
        still counts it as the leader), keep the links cut until another replica leads, then
        heal: nothing the restarted process shows or acknowledges may be lost."""
        partition, leader, epoch, _ = self.pick()
        proxy = self.cluster.proxies[leader]
        fault = proxy.set_fault(fault_proxy.STALL, sources=[REPLICA_CLIENT])
        self.timeline.note(f"links into node {leader} (leader of partition {partition}, epoch "
                           f"{epoch}): {fault.describe()}")
        try:
            seconds = self.pause(0.5, 2.0)
            self.timeline.note(f"kill -9 node {leader} after {seconds}s; restart at once")
            self.cluster.nodes[leader].kill9()
            self.cluster.nodes[leader].start()
            self.timeline.note(f"node {leader} restarted")
            deadline = time.monotonic() + ISR_TIMEOUT_S
            state = None
            while time.monotonic() < deadline:
                state = (agreed_partitions(self.responsive(), self.topic) or {}).get(partition)
                if state is not None and state[0] != leader:
                    break
                time.sleep(0.1)
            self.timeline.note(f"partition {partition} state {state}; healing")
        finally:
            proxy.heal()
        self.timeline.note(f"links into node {leader} healed")

    def leader_cut_off_then_paused(self) -> None:
        """Cut the followers' links into a leader, let it append records they cannot fetch
        (its acks=all answers wait), SIGSTOP it until another replica leads, write a burst of
        records to the new leader from a fresh producer (the test's producers wait for their
        requests to the stopped leader), then heal and SIGCONT: the old leader must truncate
        its records and must not acknowledge them when its high watermark, as a follower,
        passes their offsets again."""
        partition, leader, epoch, _ = self.pick()
        proxy = self.cluster.proxies[leader]
        node = self.cluster.nodes[leader]
        fault = proxy.set_fault(fault_proxy.STALL, sources=[REPLICA_CLIENT])
        self.timeline.note(f"links into node {leader} (leader of partition {partition}, epoch "
                           f"{epoch}): {fault.describe()}")
        try:
            seconds = self.pause(0.5, 1.5)
            self.timeline.note(f"SIGSTOP node {leader} after {seconds}s")
            self.paused.add(leader)
            os.kill(node.pid, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + ISR_TIMEOUT_S
                state = None
                while time.monotonic() < deadline:
                    state = (agreed_partitions(self.responsive(), self.topic) or {}).get(
                        partition)
                    if state is not None and state[0] != leader:
                        break
                    time.sleep(0.1)
                self.timeline.note(f"partition {partition} state {state}; a burst to it")
                bootstrap = ",".join(node.bootstrap for node in self.responsive())
                self.timeline.note(f"burst: {burst(bootstrap, self.topic, partition)}")
            finally:
                proxy.heal()
                os.kill(node.pid, signal.SIGCONT)
                self.paused.discard(leader)
        finally:
            proxy.heal()
        self.timeline.note(f"node {leader} resumed, links healed")

    def run_one(self, cycle: int, names: list[str]) -> None:
        actions = {
            "kill9_leader": lambda: self.kill9("leader"),
            "kill9_follower": lambda: self.kill9("follower"),
            "sigstop_leader": lambda: self.sigstop("leader"),
            "sigstop_follower": lambda: self.sigstop("follower"),
            "leader_links": self.leader_links,
            "one_way": self.one_way,
            "follower_link": self.follower_link,
            "delay": self.delay,
            "lagging_follower_then_leader_kill": self.lagging_follower_then_leader_kill,
            "leader_restart_while_cut_off": self.leader_restart_while_cut_off,
            "leader_cut_off_then_paused": self.leader_cut_off_then_paused,
        }
        assert set(actions) == set(FAULT_WEIGHTS)
        name = self.rng.choices(names, weights=[FAULT_WEIGHTS[n] for n in names])[0]
        self.kinds[name] += 1
        self.timeline.note(f"cycle {cycle}: {name}")
        actions[name]()


BURST_PRODUCER = 9  # the index in the values a burst writes
BURST_RECORDS = 300
# Bursts of one run take consecutive sequence ranges, so their values are unique (a run of
# many cycles may draw the burst's fault more than once).
BURSTS = itertools.count()


def burst(bootstrap: str, topic: str, partition: int) -> str:
    """BURST_RECORDS acks=all records `9:<n>` (n unique within the run) to `partition` from a
    new idempotent producer; what came of them."""
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "chaos-burst",
                         "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                         "message.timeout.ms": 20000})
    outcomes = Counter()

    def delivered(err, msg):
        outcomes["acknowledged" if err is None else str(err)] += 1
    first = next(BURSTS) * BURST_RECORDS
    for n in range(first, first + BURST_RECORDS):
        producer.produce(topic, value=f"{BURST_PRODUCER}:{n}".encode(), partition=partition,
                         on_delivery=delivered)
    left = producer.flush(30)
    return f"{dict(outcomes)}, {left} undelivered"


def crashed_nodes(cluster: ChaosCluster) -> list[str]:
    return [f"node {node_id} exited on its own ({node.proc.returncode}):\n{node.stderr_tail()}"
            for node_id, node in cluster.nodes.items() if node.died_unexpectedly()]


def registered(node: Broker) -> bool:
    """Whether the node's current process has registered with the controller (until then
    the controller may still count its previous incarnation as live)."""
    return "registered with the controller" in node.log_path.read_text(errors="replace")


def poll(check, timeout_s: float):
    """Polls `check` until it returns a truthy value (returned) or `timeout_s` passes (None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except (OSError, ConnectionError, ValueError, AssertionError):
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def full_isr(nodes: list[Broker], topic: str):
    states = agreed_partitions(nodes, topic)
    return states if states and all(isr == tuple(sorted(NODES))
                                    for _, _, isr in states.values()) else None


def acked_per_partition(producers: list[AckedProducer]) -> dict[tuple[int, int], int]:
    return {(pr.index, p): pr.acked_per_partition[p] for pr in producers
            for p in range(PARTITIONS)}


def fatal_errors(producers: list[AckedProducer]) -> list[str]:
    return [f"producer {pr.index}: {text}" for pr in producers for text in pr.fatal]


def wait_until_back(chaos: Chaos, producers: list[AckedProducer], cycle: int) -> str | None:
    """Waits until every broker process registered, all three agree on the brokers and on
    every partition's leader, the ISR is full (best effort: only noted) and every producer
    has had records acknowledged on every partition since the heal. None when so; otherwise
    what did not happen (the test then stops injecting faults and goes on to its checks)."""
    cluster, timeline = chaos.cluster, chaos.timeline
    crashed = crashed_nodes(cluster)
    if crashed:
        return "CRASH: " + "\n".join(crashed)
    nodes = list(cluster.nodes.values())
    before = acked_per_partition(producers)
    steps = [
        ("every broker process registered with the controller",
         lambda: all(registered(node) for node in nodes), BACK_TIMEOUT_S),
        ("all three brokers agree on the brokers and the controller",
         lambda: agreed_view(nodes, NODES), BACK_TIMEOUT_S),
        ("every node reports every partition led, the same way",
         lambda: agreed_partitions(nodes, chaos.topic), BACK_TIMEOUT_S),
    ]
    for what, check, timeout_s in steps:
        if poll(check, timeout_s) is None:
            return f"HANG in cycle {cycle}: not within {timeout_s}s: {what}"
    states = poll(lambda: full_isr(nodes, chaos.topic), ISR_TIMEOUT_S)
    if states is None:
        chaos.slow_isr += 1
        timeline.note(f"cycle {cycle}: ISR not full after {ISR_TIMEOUT_S}s: "
                      f"{poll(lambda: agreed_partitions(nodes, chaos.topic), 5)}")
    progressed = poll(lambda: fatal_errors(producers) or any(pr.crashed for pr in producers) or all(
        count > before[key] for key, count in acked_per_partition(producers).items()),
        PROGRESS_TIMEOUT_S)
    if fatal_errors(producers):
        return f"FATAL producer error in cycle {cycle}: {fatal_errors(producers)}"
    if any(pr.crashed for pr in producers):
        return f"a producer thread failed in cycle {cycle}: {[pr.crashed for pr in producers]}"
    if not progressed:
        return (f"HANG in cycle {cycle}: some producer had nothing acknowledged on some "
                f"partition for {PROGRESS_TIMEOUT_S}s after the heal ((producer, partition): "
                f"acknowledged at the heal {before}, now {acked_per_partition(producers)}); "
                f"last producer errors: {[pr.errors[-3:] for pr in producers]}")
    timeline.note(f"cycle {cycle}: back; partitions {states}; acknowledged "
                  f"{sum(len(pr.acked) for pr in producers)} of "
                  f"{sum(len(pr.sent_at) for pr in producers)} sent")
    return None


def check_reads(producers: list[AckedProducer], watcher: Watcher,
                final: dict[int, list[tuple[int, bytes]]]) -> list[str]:
    """Checks (1) and (2); the problems found, each with the offsets and times involved."""
    problems: list[str] = []
    by_index = {pr.index: pr for pr in producers}
    at: dict[tuple[int, int], tuple[int, int]] = {}          # (partition, offset) -> value
    where: dict[tuple[int, int], list[tuple[int, int]]] = {}  # value -> [(partition, offset)]
    for p, records in final.items():
        offsets = [offset for offset, _ in records]
        if offsets != list(range(len(offsets))):
            gap = next(i for i, o in enumerate(offsets) if o != i)
            problems.append(f"partition {p}: offsets not contiguous from 0 (index {gap} is "
                            f"offset {offsets[gap]})")
        for offset, raw in records:
            index, seq = (int(part) for part in raw.split(b":"))
            at[(p, offset)] = (index, seq)
            where.setdefault((index, seq), []).append((p, offset))

    def name(value: tuple[int, int]) -> str:
        return f"{value[0]}:{value[1]}"

    # (1) every acknowledged value exactly once, at its acknowledged offset, in send order.
    for pr in producers:
        for seq, (offset, acked_at) in sorted(pr.acked.items()):
            p = seq % PARTITIONS
            found = where.get((pr.index, seq), [])
            sent = pr.sent_at[seq]
            now_there = at.get((p, offset))
            if not found:
                problems.append(
                    f"LOST: value {pr.index}:{seq} (partition {p}) acknowledged at offset "
                    f"{offset} (sent {sent:.2f}s, acknowledged {acked_at:.2f}s) is not in the "
                    f"log; that offset now holds {name(now_there) if now_there else None}")
            elif found != [(p, offset)] and not (offset is None and len(found) == 1
                                                 and found[0][0] == p):
                problems.append(f"MISPLACED: value {pr.index}:{seq} acknowledged at partition "
                                f"{p} offset {offset} (sent {sent:.2f}s, acknowledged "
                                f"{acked_at:.2f}s) is at {found}")
    for value, found in where.items():
        if len(found) > 1:
            pr = by_index.get(value[0])
            if pr is None:  # a burst's value
                problems.append(f"DUPLICATE: burst value {name(value)} at {found}")
                continue
            state = "acknowledged" if value[1] in pr.acked else "not acknowledged"
            problems.append(f"DUPLICATE: value {name(value)} ({state}, sent "
                            f"{pr.sent_at[value[1]]:.2f}s) at {found}")
    for p in range(PARTITIONS):
        for pr in producers:
            mine = [at[(p, o)][1] for o, _ in final[p] if at[(p, o)][0] == pr.index]
            acked = [seq for seq in mine if seq in pr.acked]
            wrong = next(((a, b) for a, b in zip(acked, acked[1:]) if b < a), None)
            if wrong:
                problems.append(f"REORDERED: partition {p}: producer {pr.index}'s acknowledged "
                                f"value {wrong[1]} comes after {wrong[0]}")
            backwards = sum(1 for a, b in zip(mine, mine[1:]) if b < a)
            if backwards:
                problems.append(f"REORDERED: partition {p}: {backwards} places where a value of "
                                f"producer {pr.index} follows a later one (acknowledged or not)")
    # (2) what the background consumer saw is still there.
    problems += [f"CHANGED while watched: {text}" for text in watcher.changed]
    for p, seen in watcher.seen.items():
        for offset, (value, seen_at) in sorted(seen.items()):
            if offset >= len(final[p]):
                problems.append(f"DISAPPEARED: partition {p} offsets {offset}.."
                                f"{max(seen)} (first {value!r}, served at {seen_at:.2f}s) are "
                                f"beyond the final log end {len(final[p])}")
                break
            if final[p][offset][1] != value:
                problems.append(f"CHANGED: partition {p} offset {offset} was served {value!r} at "
                                f"{seen_at:.2f}s, now holds {final[p][offset][1]!r}")
    return problems


def run_chaos(cluster: ChaosCluster, names: list[str], cycles: int, seed: int) -> None:
    """Creates the topic, starts the producers and the watcher, runs `cycles` faults drawn
    from `names` with `seed`, then checks (1), (2) and (3); fails with every problem found."""
    nodes = list(cluster.nodes.values())
    timeline = Timeline(cluster.nodes[1].workdir / "chaos-timeline.txt")
    timeline.note(f"seed {seed} (replay: SHARDLOG_CHAOS_SEED={seed} SHARDLOG_CHAOS_CYCLES="
                  f"{cycles} SHARDLOG_CHAOS_FAULTS={','.join(names)}); timeline in "
                  f"{timeline.path}")
    for node_id, node in cluster.nodes.items():
        timeline.note(f"node {node_id}: kafka {node.bootstrap}, advertised (proxy) "
                      f"{node.advertised}, data {node.data_dir}")
    wait_for("cluster converged", lambda: agreed_view(nodes, NODES))
    topic = unique_topic("chaos")
    admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3,
                                  config={"min.insync.replicas": "2"})])[topic].result(timeout=40)
    wait_for("every partition led with a full ISR", lambda: full_isr(nodes, topic))
    bootstrap = ",".join(node.bootstrap for node in nodes)
    producers = [AckedProducer(index, bootstrap, topic, timeline) for index in range(PRODUCERS)]
    watcher = Watcher(bootstrap, topic, timeline)
    for thread in [*producers, watcher]:
        thread.start()
    try:
        chaos = Chaos(cluster, topic, timeline, random.Random(seed))
        started = time.monotonic()
        problems: list[str] = []
        chaos.monitor.start()
        try:
            if not poll(lambda: all(acked_per_partition(producers).values()), PROGRESS_TIMEOUT_S):
                problems.append(f"HANG: no first acknowledgements {acked_per_partition(producers)}")
            for cycle in range(1, cycles + 1):
                if problems:
                    break
                try:
                    chaos.run_one(cycle, names)
                except (Exception, pytest.fail.Exception) as error:  # noqa: BLE001 (evidence)
                    problems.append(f"cycle {cycle}: the fault step failed: {error}")
                    timeline.note(problems[-1])
                    break
                hang = wait_until_back(chaos, producers, cycle)
                if hang:
                    timeline.note(hang)
                    problems.append(hang)
        finally:
            chaos.stopping.set()
            cluster.heal_all()
            for node in cluster.nodes.values():
                if not node.alive() and not node.died_unexpectedly():
                    node.start()
        chaos.monitor.join(30)
        timeline.note("faults over; flushing the producers")
        for pr in producers:
            undelivered = pr.finish(FLUSH_TIMEOUT_S if not problems else HUNG_FLUSH_TIMEOUT_S)
            assert pr.crashed is None, repr(pr.crashed)
            refusals = dict(Counter(text.split(" ", 1)[1] for text in pr.refused))
            timeline.note(f"producer {pr.index}: {len(pr.sent_at)} sent, {len(pr.acked)} "
                          f"acknowledged, {len(pr.failed)} failed, {undelivered} undelivered; "
                          f"errors {len(pr.errors)}, fatal {pr.fatal}; produce() refused "
                          f"{len(pr.refused)} times {refusals}")
            if undelivered:
                problems.append(f"HANG: producer {pr.index}: {undelivered} records neither "
                                "acknowledged nor failed after the flush")
        problems += [f"FATAL: {text}" for text in fatal_errors(producers)
                     if not any(text in problem for problem in problems)]
        states = poll(lambda: full_isr(nodes, topic), BACK_TIMEOUT_S)
        if states is None:
            states = poll(lambda: agreed_partitions(nodes, topic), BACK_TIMEOUT_S)
            problems.append(f"HANG: the ISR is not full {BACK_TIMEOUT_S}s after the last heal: "
                            f"{states}")
        assert states, "no agreed partition state at the end"
        timeline.note(f"final partitions: {states}")
        # Consumers read below the high watermark; wait (bounded) until it covers every ack.
        leader_bootstrap = cluster.nodes[states[0][0]].bootstrap
        # librdkafka reports some deliveries without an offset (None: e.g. a retried batch
        # the broker already had); their values are still checked below.
        highest = {p: max((off for pr in producers for seq, (off, _) in pr.acked.items()
                           if seq % PARTITIONS == p and off is not None), default=-1)
                   for p in range(PARTITIONS)}
        settle_s = BACK_TIMEOUT_S if not problems else SETTLE_AFTER_PROBLEM_S
        read = poll(lambda: (lambda r: r if all(r[1][p] > highest[p] for p in range(PARTITIONS))
                             else None)(read_everything(leader_bootstrap, topic)), settle_s)
        if read is None:
            read = read_everything(leader_bootstrap, topic)
            problems.append(f"high watermarks {read[1]} stay below the highest acknowledged "
                            f"offsets {highest}")
        final, high_watermarks = read
        if not poll(lambda: all(watcher.next_offset[p] >= high_watermarks[p]
                                for p in range(PARTITIONS)), BACK_TIMEOUT_S):
            problems.append(f"HANG: the watcher was not served up to the high watermarks "
                            f"{high_watermarks} (got to {watcher.next_offset})")
        watcher.finish()
        assert watcher.crashed is None, repr(watcher.crashed)
        problems += check_reads(producers, watcher, final)
        problems += check_commits(leader_bootstrap, watcher)
        timeline.note(f"read back: {high_watermarks} records per partition; watcher saw "
                      f"{ {p: len(s) for p, s in watcher.seen.items()} }, rewinds "
                      f"{len(watcher.rewinds)}, errors {len(watcher.errors)}; commits "
                      f"acknowledged up to {watcher.commit_acked}, sent up to "
                      f"{watcher.commit_sent}, failed {dict(watcher.commit_errors)}")
        # (3) stop every broker cleanly and compare their logs on disk.
        for node in nodes:
            node.stop()
        problems += compare_replicas(cluster.nodes, topic, high_watermarks, timeline)
        problems += crashed_nodes(cluster)
        replica_links = {node_id: sum(n for cid, n in proxy.client_ids.items()
                                      if cid.startswith(REPLICA_CLIENT))
                         for node_id, proxy in cluster.proxies.items()}
        acked = sum(len(pr.acked) for pr in producers)
        timeline.note(f"done in {time.monotonic() - started:.1f}s: {cycles} cycles "
                      f"{dict(chaos.kinds)}; ISR slow to refill {chaos.slow_isr} times; replica "
                      f"connections through each proxy {replica_links}; {acked} records "
                      f"acknowledged; {len(problems)} problems")
        assert sum(replica_links.values()) > 0, (
            f"followers did not fetch through the proxies: {replica_links}")
        if problems:
            for problem in problems[:200]:
                timeline.note(f"PROBLEM: {problem}")
            for pr in producers:
                failures = Counter(text.split(" ", 1)[1] for text in pr.failed.values())
                timeline.note(f"producer {pr.index}: failed deliveries by error: {dict(failures)}")
                print(f"\nproducer {pr.index} errors (first 40):\n" + "\n".join(pr.errors[:40]))
            print("\nwatcher errors (first 40):\n" + "\n".join(watcher.errors[:40]))
            print("\nwatcher rewinds (first 40):\n" + "\n".join(watcher.rewinds[:40]))
            pytest.fail(f"seed {seed}: {len(problems)} problems (timeline: {timeline.path}):\n"
                        + "\n".join(problems[:60]), pytrace=False)

    finally:
        for thread in [*producers, watcher]:  # stopped already, unless a check raised
            thread.stopping.set()

def chosen_faults() -> list[str]:
    if ONLY_FAULTS == ["all"]:
        return sorted(FAULT_WEIGHTS)
    if ONLY_FAULTS:
        unknown = set(ONLY_FAULTS) - set(FAULT_WEIGHTS)
        assert not unknown, f"SHARDLOG_CHAOS_FAULTS: unknown faults {sorted(unknown)}"
        return ONLY_FAULTS
    return sorted(set(FAULT_WEIGHTS) - KNOWN_BUG_FAULTS)


@pytest.mark.timeout(_timeout_s())
def test_acknowledged_records_survive_chaos(chaos_cluster):
    run_chaos(chaos_cluster, chosen_faults(), CYCLES, SEED)


# The two faults that found broker bugs (docs/replication.md, "Chaos test"), each on its own:
# a leader restarted before its session expired led from stale metadata; a deposed leader
# acknowledged offsets it had truncated. Both are fixed; these keep them fixed.


# A broker session timeout long enough that the restarted leader acts for seconds before the
# controller fences its previous incarnation (the bug shows with the default 2 s too).
@pytest.mark.parametrize("chaos_cluster", [6000], indirect=True)
@pytest.mark.timeout(600)
def test_a_leader_restarted_before_its_session_expires_loses_nothing(chaos_cluster):
    run_chaos(chaos_cluster, ["leader_restart_while_cut_off"], 1, SEED)


@pytest.mark.timeout(600)
def test_a_deposed_leader_acknowledges_nothing_it_truncated(chaos_cluster):
    run_chaos(chaos_cluster, ["leader_cut_off_then_paused"], 1, SEED)
