#!/usr/bin/env python3
"""Restart stress: kill -9 shardlog at random moments of its start-up and after, restart it on
the same data dir, again and again, and check that every start finishes within a bound.

A data dir is seeded first with user topics (one compacted), keyed records, committed group
offsets (`__consumer_offsets`) and committed transactions (`__transaction_state` and markers),
so each start recovers segments and replays groups and transactions. Then every cycle:
  1. with probability --early-kill-fraction the broker is started and SIGKILLed after a random
     delay inside a typical start-up (a start interrupted part-way);
  2. the broker is started and must, within --ready-timeout-s, answer ApiVersions *and* log
     "start-up finished" (the start-up watchdog's line: every shard has finished opening its
     partitions, groups and transactions; a shard that never finishes is invisible to a bare
     ApiVersions check while another shard listens);
  3. sometimes a few records are produced (so tails are torn by the next kill), and the broker
     is SIGKILLed at a random moment 0..--kill-after-ready-ms after it was ready.

On a stall (step 2 not done in time) the loop writes to <workdir>/stall-<cycle>/: the broker
log, every thread's stack (`gdb -p PID -batch -ex "thread apply all bt"`), and each thread's
name, state, wchan, context switches and kernel stack from /proc; it then notes whether the
broker made progress after the debugger attached (a lost wake-up resumes when ptrace
interrupts the sleeping syscall; progress = finished, or any shard in another phase in the
watchdog's reports), and keeps the process for inspection (--keep-stalled) or kills it. The summary (cycles, cycles/s, start-up times, stalls) is printed and written to
<workdir>/summary.json; the exit status is 1 if any start stalled.

Usage: restart_stress.py --binary target/release/shardlog --cycles 3000
       [--set shard.preempt_interval_us=200 --set shard.executor_nudge_ms=0] [--seed N]
Environment variables are passed to the broker (e.g. SHARDLOG_TEST_STARTUP_STALL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import kafka_wire  # noqa: E402

FINISHED_LINE = "start-up finished"
# Named bounds (seconds): they bound hangs, they never measure performance.
SEED_TIMEOUT_S = 60.0
API_VERSIONS_TIMEOUT_S = 2.0
POLL_S = 0.02
STOP_TIMEOUT_S = 15.0
GDB_TIMEOUT_S = 60.0
RESUME_AFTER_ATTACH_S = 10.0
# The broker's own start-up watchdog reports well before a stall is declared, so its WARN
# lines are in the dump.
DEFAULT_WATCHDOG_MS = 5000


def free_port() -> int:
    """A port below the ephemeral range, so no client connection takes it between restarts."""
    for _ in range(1000):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 20000..32000")


def answers_api_versions(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=API_VERSIONS_TIMEOUT_S) as s:
            s.settimeout(API_VERSIONS_TIMEOUT_S)
            s.sendall(kafka_wire.api_versions_v0(1))
            return kafka_wire.Reader(kafka_wire.recv_frame(s)).i32() == 1
    except (OSError, ConnectionError, ValueError):
        return False


def toml_config(settings: list[str]) -> str:
    """`section.key=value` settings as TOML (values are written as given: numbers, true)."""
    sections: dict[str, list[str]] = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        section, _, key = name.partition(".")
        if not key or not value:
            raise SystemExit(f"--set wants section.key=value, got {setting!r}")
        sections.setdefault(section, []).append(f"{key} = {value}")
    return "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())


class Broker:
    def __init__(self, binary: str, workdir: Path, shards: int, settings: list[str]):
        self.binary, self.workdir, self.shards = binary, workdir, shards
        self.data_dir = workdir / "data"
        self.port = free_port()
        self.config = workdir / "shardlog.toml"
        if not any(s.startswith("shard.startup_watchdog_ms=") for s in settings):
            settings = settings + [f"shard.startup_watchdog_ms={DEFAULT_WATCHDOG_MS}"]
        self.config.write_text(toml_config(settings))
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "broker.log"
        self.started_at = 0.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        previous = self.workdir / "broker.previous.log"
        if self.log_path.exists():
            self.log_path.replace(previous)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "serve", "--listen", self.bootstrap, "--admin-listen", "",
                 "--data-dir", str(self.data_dir), "--shards", str(self.shards),
                 "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")})
        self.started_at = time.monotonic()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def finished(self) -> bool:
        return FINISHED_LINE in self.log_text()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_started(self, timeout_s: float) -> float | None:
        """Seconds until ApiVersions answers and every shard finished start-up, or None."""
        deadline = self.started_at + timeout_s
        api_ok = False
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"broker exited with {self.process.returncode} during "
                                   f"start-up; log tail:\n{tail(self.log_text())}")
            api_ok = api_ok or answers_api_versions(self.port)
            if api_ok and self.finished():
                return time.monotonic() - self.started_at
            time.sleep(POLL_S)
        return None

    def kill9(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT_S)


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def seed_data(broker: Broker, records: int) -> None:
    """User topics (one compacted), keyed records, committed offsets, committed transactions."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = [NewTopic("stress-a", num_partitions=4, replication_factor=1),
              NewTopic("stress-b", num_partitions=2, replication_factor=1,
                       config={"cleanup.policy": "compact"})]
    for future in admin.create_topics(topics).values():
        future.result(SEED_TIMEOUT_S)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
    for i in range(records):
        topic = "stress-a" if i % 3 else "stress-b"
        producer.produce(topic, key=f"k{i % 50}".encode(), value=f"v{i}".encode() * 8)
        producer.poll(0)
    if producer.flush(SEED_TIMEOUT_S):
        raise RuntimeError("seeding: records not acknowledged")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "stress-group",
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("stress-a", p, 10 + p) for p in range(4)],
                    asynchronous=False)
    consumer.close()
    transactional = Producer({"bootstrap.servers": broker.bootstrap,
                              "transactional.id": "stress-txn"})
    transactional.init_transactions(SEED_TIMEOUT_S)
    for i in range(3):
        transactional.begin_transaction()
        transactional.produce("stress-a", key=b"txn", value=f"t{i}".encode())
        transactional.commit_transaction(SEED_TIMEOUT_S)
    transactional.flush(SEED_TIMEOUT_S)


def dump_stall(broker: Broker, cycle: int, workdir: Path) -> dict:
    """Stacks, thread states and logs of a broker whose start-up did not finish in time."""
    out = workdir / f"stall-{cycle}"
    out.mkdir(exist_ok=True)
    pid = broker.process.pid
    threads = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        info = {"tid": task.name}
        for name in ("comm", "wchan", "stat", "stack"):
            try:
                info[name] = (task / name).read_text(errors="replace").strip()
            except OSError as error:
                info[name] = f"({error.strerror})"
        try:
            status = (task / "status").read_text()
            info["switches"] = " ".join(l.split(":")[1].strip() for l in status.splitlines()
                                        if "ctxt_switches" in l)
        except OSError:
            pass
        threads.append(info)
    with open(out / "threads.txt", "w") as f:
        for info in threads:
            f.write(f"== tid {info['tid']} {info['comm']} wchan={info['wchan']} "
                    f"switches(vol nonvol)={info.get('switches')}\nstat: {info['stat']}\n"
                    f"{info['stack']}\n\n")
    phases_before = reported_phases(broker.log_text())
    try:
        gdb = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                             capture_output=True, text=True, timeout=GDB_TIMEOUT_S)
        (out / "gdb.txt").write_text(gdb.stdout + gdb.stderr)
    except (OSError, subprocess.TimeoutExpired) as error:
        (out / "gdb.txt").write_text(f"gdb failed: {error}")
    # A lost wake-up resumes when ptrace interrupts the sleep: did any shard move on (or
    # finish) after the debugger attached? The watchdog reports again within the window.
    deadline = time.monotonic() + RESUME_AFTER_ATTACH_S
    while not broker.finished() and time.monotonic() < deadline and broker.alive():
        time.sleep(POLL_S)
    moved = broker.finished() or reported_phases(broker.log_text()) != phases_before
    shutil.copy(broker.log_path, out / "broker.log")
    previous = workdir / "broker.previous.log"
    if previous.exists():
        shutil.copy(previous, out / "broker.previous.log")
    watchdog = [l for l in broker.log_text().splitlines() if "start-up is taking long" in l]
    return {"cycle": cycle, "pid": pid, "dir": str(out),
            "progress_after_debugger_attach": moved, "finished": broker.finished(),
            "watchdog_reports": watchdog[-4:]}


def reported_phases(log: str) -> dict[str, tuple[str, str]]:
    """thread -> (phase, partition number) from the latest watchdog report of each thread."""
    phases = {}
    for line in log.splitlines():
        if "start-up is taking long" not in line:
            continue
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "thread" in fields:
            phases[fields["thread"]] = (fields.get("phase", ""),
                                        fields.get("partition_number", ""))
    return phases


def run(binary: str, cycles: int, workdir: Path, seed: int, shards: int = 2,
        settings: list[str] | None = None, ready_timeout_s: float = 20.0,
        early_kill_fraction: float = 0.5, kill_after_ready_ms: int = 300,
        seed_records: int = 600, keep_stalled: bool = False, stop_on_stall: bool = True,
        log=print) -> dict:
    rng = random.Random(seed)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    broker = Broker(binary, workdir, shards, list(settings or []))
    broker.start()
    if broker.wait_started(SEED_TIMEOUT_S) is None:
        raise RuntimeError(f"the first start did not finish:\n{tail(broker.log_text())}")
    seed_data(broker, seed_records)
    broker.kill9()
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 2, "acks": "1",
                         "message.timeout.ms": 5000, "reconnect.backoff.max.ms": 100,
                         "log_level": 0})
    start_times: list[float] = []
    stalls: list[dict] = []
    early_kills = 0
    began = time.monotonic()
    for cycle in range(cycles):
        typical = statistics.median(start_times) if start_times else 0.5
        if rng.random() < early_kill_fraction:
            broker.start()
            time.sleep(rng.uniform(0.0, typical * 1.2))
            broker.kill9()
            early_kills += 1
        broker.start()
        took = broker.wait_started(ready_timeout_s)
        if took is None:
            stall = dump_stall(broker, cycle, workdir)
            stalls.append(stall)
            log(f"restart-stress: STALL in cycle {cycle}: start-up not finished after "
                f"{ready_timeout_s}s; dump in {stall['dir']}; progress after debugger attach: "
                f"{stall['progress_after_debugger_attach']}")
            if keep_stalled:
                log(f"restart-stress: keeping broker pid {broker.process.pid} for inspection")
                break
            broker.kill9()
            if stop_on_stall:
                break
            continue
        start_times.append(took)
        if rng.random() < 0.3:
            for i in range(rng.randint(1, 50)):
                producer.produce("stress-a", key=f"c{cycle}".encode(), value=b"x" * 100)
            producer.poll(0)
        time.sleep(rng.uniform(0.0, kill_after_ready_ms / 1000.0))
        broker.kill9()
        if (cycle + 1) % 100 == 0:
            log(f"restart-stress: {cycle + 1}/{cycles} cycles, "
                f"{(cycle + 1) / (time.monotonic() - began):.2f} cycles/s, "
                f"start-up median {statistics.median(start_times):.3f}s "
                f"max {max(start_times):.3f}s, stalls {len(stalls)}")
    elapsed = time.monotonic() - began
    producer.flush(0)
    if not (keep_stalled and stalls):
        broker.kill9()
    done = len(start_times)
    ordered = sorted(start_times)
    summary = {
        "seed": seed, "cycles_requested": cycles, "starts_checked": done,
        "early_kills": early_kills, "stalls": stalls, "elapsed_s": round(elapsed, 1),
        "cycles_per_s": round(done / elapsed, 2) if elapsed else 0.0,
        "start_s_median": round(statistics.median(ordered), 3) if ordered else None,
        "start_s_p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3) if ordered else None,
        "start_s_max": round(ordered[-1], 3) if ordered else None,
        "settings": settings or [], "shards": shards, "ready_timeout_s": ready_timeout_s,
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/shardlog")
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--workdir", default="target/restart-stress")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="broker config setting (repeatable)")
    parser.add_argument("--ready-timeout-s", type=float, default=20.0)
    parser.add_argument("--early-kill-fraction", type=float, default=0.5)
    parser.add_argument("--kill-after-ready-ms", type=int, default=300)
    parser.add_argument("--keep-stalled", action="store_true",
                        help="leave a stalled broker running for inspection and stop")
    parser.add_argument("--continue-after-stall", action="store_true",
                        help="kill a stalled broker and go on (count every stall)")
    args = parser.parse_args()
    print(f"restart-stress: seed {args.seed} (replay with --seed {args.seed}), "
          f"{args.cycles} cycles, settings {args.set}", flush=True)
    summary = run(args.binary, args.cycles, Path(args.workdir), args.seed, args.shards,
                  args.set, args.ready_timeout_s, args.early_kill_fraction,
                  args.kill_after_ready_ms, keep_stalled=args.keep_stalled,
                  stop_on_stall=not args.continue_after_stall,
                  log=lambda m: print(m, flush=True))
    print("restart-stress: " + json.dumps({k: v for k, v in summary.items() if k != "stalls"}))
    for stall in summary["stalls"]:
        print(f"restart-stress: stall {json.dumps(stall)}")
    sys.exit(1 if summary["stalls"] else 0)


if __name__ == "__main__":
    main()
