"""Consumer-group members as subprocesses, shared by test_groups.py (classic protocol,
group_member.py) and test_consumer_protocol.py (KIP-848, consumer_protocol_member.py).

A member prints one JSON event per line on stdout (read by a thread into `on_event`); its
stderr goes to a file under target/test-data, not a pipe (nobody drains a pipe while a test
runs, and a full one would block the member). `started_members` is the body of a `members`
fixture: it stops every member after the test, prints each member's stderr tail when the test
failed (and keeps the files), and `wait_split` waits for a settled assignment.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from clients import Deadline
from harness import TEST_DATA_ROOT

MEMBER_STOP_TIMEOUT_S = 20.0
MEMBER_STDERR_TAIL_LINES = 60
# A rebalance settles within a few round trips plus the session timeout (when a member dies
# silently); this bounds hangs only.
GROUP_SETTLE_TIMEOUT_S = 60.0


class MemberProcess:
    """One member subprocess; subclasses set their state before calling `__init__` and
    record events in `on_event` (called under `self.lock`)."""

    def __init__(self, stderr_path, args):
        self.args = args
        self.lock = threading.Lock()
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def on_event(self, event):
        raise NotImplementedError

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                self.on_event(event)

    def stderr_tail(self, lines=MEMBER_STDERR_TAIL_LINES):
        text = self.stderr_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.stderr_path} (last {len(text)} lines) ---\n" + "\n".join(text)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=MEMBER_STOP_TIMEOUT_S)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=MEMBER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill9()


def started_members(request, member_class, label):
    """Generator for a `members` fixture: yields `start(*args, **kwargs)`, which starts a
    `member_class(stderr_path, *args, **kwargs)`; afterwards stops them all and reports."""
    started = []
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)[:80]
    workdir = TEST_DATA_ROOT / f"{safe}-members-{os.getpid()}-{time.monotonic_ns()}"
    workdir.mkdir(parents=True)

    def start(*args, **kwargs):
        m = member_class(workdir / f"member-{len(started) + 1}.stderr.log", *args, **kwargs)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()
    failed = any(getattr(request.node, f"rep_{phase}", None) is not None
                 and getattr(request.node, f"rep_{phase}").failed for phase in ("setup", "call"))
    if failed:
        for number, m in enumerate(started, 1):
            sys.stderr.write(f"\n==== {label} {number} (exit {m.proc.returncode}) "
                             f"{' '.join(m.args[2:])} ====\n{m.stderr_tail()}\n")
    elif not os.environ.get("SHARDLOG_TEST_KEEP_DATA"):
        shutil.rmtree(workdir, ignore_errors=True)


def wait_split(ms, sizes, what, partitions):
    """Waits until the members' assignments are disjoint, cover partitions 0..partitions-1,
    and have the given sizes (sorted); returns them."""
    deadline = Deadline(GROUP_SETTLE_TIMEOUT_S, what)
    while True:
        current = [m.assignment() or [] for m in ms]
        flat = sorted(p for a in current for p in a)
        if flat == list(range(partitions)) and sorted(map(len, current)) == sorted(sizes):
            return current
        for m in ms:
            assert m.proc.poll() is None, f"member exited: {m.stderr_tail()}"
        deadline.check(f"assignments now {current}")
        time.sleep(0.2)
