"""Contract: every start of the broker finishes (ApiVersions answers and every shard logs the
end of its start-up) within a bound, however often it is SIGKILLed, during start-up or after;
and a start that does not finish is caught with every thread's stack.

The short version of `make restart-stress` (tests/stress/restart_stress.py, issue 14 item 11):
  - default settings, a few dozen kill -9 cycles;
  - glommio's stranded-executor condition made frequent (a 200 µs preemption interval instead
    of 100 ms: an executor that is descheduled for longer than that between arming the timer
    and running its tasks goes to sleep with runnable tasks). Without the executor nudge this
    hangs a start-up within a few cycles (docs/operations.md); with it, none may hang;
  - the stress loop itself detects a stalled start (a shard's executor thread blocked by the
    test-only stall hook) and writes stacks: a loop that could not see a stall proves nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness import TEST_DATA_ROOT, broker_binary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stress"))

import restart_stress  # noqa: E402

SHORT_CYCLES = 20
# Generous: bounds a hang, measures nothing (a loaded CI machine starts in well under 1 s).
READY_TIMEOUT_S = 20.0


def _run(name: str, cycles: int, settings: list[str], **kw) -> dict:
    workdir = TEST_DATA_ROOT / f"restart-stress-{name}-{os.getpid()}"
    summary = restart_stress.run(str(broker_binary()), cycles, workdir,
                                 seed=int.from_bytes(os.urandom(4), "little"),
                                 settings=settings, ready_timeout_s=READY_TIMEOUT_S,
                                 seed_records=200, **kw)
    print(f"{name}: {summary}")
    return summary


def test_restarts_with_default_settings_always_finish_starting():
    summary = _run("default", SHORT_CYCLES, [])
    assert not summary["stalls"], summary
    assert summary["starts_checked"] == SHORT_CYCLES, summary


def test_restarts_finish_starting_when_executors_are_often_stranded():
    summary = _run("preempt200us", SHORT_CYCLES, ["shard.preempt_interval_us=200"])
    assert not summary["stalls"], summary
    assert summary["starts_checked"] == SHORT_CYCLES, summary


def test_a_stalled_start_is_detected_and_dumped(monkeypatch):
    # Shard 1's executor thread blocks for a minute while opening its first partition.
    monkeypatch.setenv("SHARDLOG_TEST_STARTUP_STALL", "1:opening_partitions:60000")
    workdir = TEST_DATA_ROOT / f"restart-stress-stalled-{os.getpid()}"
    broker = restart_stress.Broker(str(broker_binary()), _fresh(workdir), 2,
                                   ["shard.startup_watchdog_ms=500"])
    broker.start()
    try:
        assert broker.wait_started(3.0) is None, "a blocked shard must not count as started"
        stall = restart_stress.dump_stall(broker, 0, workdir)
    finally:
        broker.kill9()
    gdb = Path(stall["dir"], "gdb.txt").read_text()
    threads = Path(stall["dir"], "threads.txt").read_text()
    assert "Thread 1" in gdb and "#0" in gdb, gdb[:2000]
    assert "std::thread::sleep" in gdb or "nanosleep" in gdb, gdb[:4000]
    assert "shard-" in threads, threads[:2000]
    assert any("shard=1" in r and "phase=opening_partitions" in r
               for r in stall["watchdog_reports"]), stall


def _fresh(path: Path) -> Path:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
