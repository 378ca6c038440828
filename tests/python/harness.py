"""Process harness for the shardlog broker binary.

Owns: locating the (already built) binary, choosing a free port and a fresh data dir under
target/test-data (a filesystem with O_DIRECT: never /dev/shm), starting `shardlog serve`,
waiting until the Kafka port accepts connections, stopping it (SIGTERM, then SIGKILL), kill -9,
and restarting on the same data dir. It builds nothing: the Makefile builds the broker first.

Environment:
  SHARDLOG_BIN            path to the binary (default target/release/shardlog, else target/debug)
  SHARDLOG_TEST_SHARDS    --shards for every broker (default 2: the CI machine has 2 cores)
  SHARDLOG_TEST_ARGS      extra arguments appended to `shardlog serve` (shell-split)
  SHARDLOG_TEST_KEEP_DATA keep data dirs of passing tests too (failing tests always keep theirs)
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_DATA_ROOT = REPO_ROOT / "target" / "test-data"

# Named timeouts (seconds). Generous: they bound hangs, they never measure performance.
BROKER_START_TIMEOUT_S = 60.0
# After kill -9 the old listener can linger briefly (io_uring teardown is asynchronous), so a
# restart on the same port may see EADDRINUSE; retried for this long, with a warning.
RESTART_BIND_RETRY_S = 10.0
BROKER_STOP_TIMEOUT_S = 15.0
CONNECT_POLL_INTERVAL_S = 0.05
STDERR_TAIL_LINES = 80


def broker_binary() -> Path:
    """The broker binary to test; fails loudly (never skips) if it is missing."""
    env = os.environ.get("SHARDLOG_BIN")
    candidates = [Path(env)] if env else [
        REPO_ROOT / "target" / "release" / "shardlog",
        REPO_ROOT / "target" / "debug" / "shardlog",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise RuntimeError(
        f"shardlog binary not found (tried {', '.join(map(str, candidates))}); "
        "build it first: cargo build --release --bin shardlog (make client-test does)")


_help_cache: dict[Path, str] = {}


def supports_flag(binary: Path, flag: str) -> bool:
    """Whether `shardlog serve` knows `flag` (the CLI grows while the broker is built)."""
    if binary not in _help_cache:
        _help_cache[binary] = subprocess.run([str(binary), "serve", "--help"],
                                             capture_output=True, text=True,
                                             timeout=BROKER_START_TIMEOUT_S).stdout
    return flag in _help_cache[binary]


_issued_ports: set[int] = set()


def free_port() -> int:
    """A port free a moment ago that this process has not handed out before: two binds in a
    row may get the same ephemeral port back, and a broker whose admin port equals its Kafka
    port refuses to start (it once silently shared the connections)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port


def port_accepts(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def answers_api_versions(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Ready = a Kafka ApiVersions round trip works. A bare TCP connect is not enough: after
    kill -9 the old process's listener can linger for a moment and accept connections."""
    import kafka_wire
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(kafka_wire.api_versions_v0(1))
            body = kafka_wire.recv_frame(sock)
            return kafka_wire.Reader(body).i32() == 1
    except (OSError, ConnectionError, ValueError):
        return False


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class BrokerDied(AssertionError):
    pass


class Broker:
    """One shardlog process (and its restarts) on one data dir and one port."""

    def __init__(self, name: str, shards: int | None = None, extra_args: list[str] | None = None,
                 initial_rebalance_delay_ms: int | None = 0):
        """`initial_rebalance_delay_ms`: 0 keeps group tests fast; None leaves the broker's
        default (3000, as Kafka) or what a `--config` file says."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]
        self.workdir = TEST_DATA_ROOT / f"{safe}-{uuid.uuid4().hex[:8]}"
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.shards = shards or int(os.environ.get("SHARDLOG_TEST_SHARDS", "2"))
        delay = ([] if initial_rebalance_delay_ms is None
                 else ["--group-initial-rebalance-delay-ms", str(initial_rebalance_delay_ms)])
        self.extra_args = delay + list(extra_args or []) + shlex.split(
            os.environ.get("SHARDLOG_TEST_ARGS", ""))
        self.binary = broker_binary()
        # Its own admin HTTP port, so brokers never collide on the default one.
        self.admin_port = free_port() if supports_flag(self.binary, "--admin-listen") else None
        # host:port Metadata advertises (`--advertised-listener`); None: the listen address.
        # Tests set it to a proxy in front of `port` (fault_proxy.py) to carry clients' and
        # followers' traffic through it.
        self.advertised: str | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.expected_exit = False  # set when we stop or kill it on purpose

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"broker-{self.starts}.stderr.log"

    def command(self) -> list[str]:
        admin = ["--admin-listen", f"{self.host}:{self.admin_port}"] if self.admin_port else []
        return [str(self.binary), "serve",
                "--listen", self.bootstrap,
                "--advertised-listener", self.advertised or self.bootstrap,
                "--data-dir", str(self.data_dir),
                "--shards", str(self.shards), *admin, *self.extra_args]

    def start(self) -> "Broker":
        deadline = time.monotonic() + RESTART_BIND_RETRY_S
        while True:
            try:
                return self._start_once()
            except BrokerDied as died:
                if "Address already in use" not in str(died) or time.monotonic() > deadline:
                    raise
                warnings.warn(f"broker restart on {self.bootstrap}: address still in use "
                              "after the previous process exited; retrying")
                time.sleep(0.5)

    def _start_once(self) -> "Broker":
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        self.expected_exit = False
        with open(self.log_path, "wb") as log, open(self.workdir / "stdout.log", "ab") as out:
            env = dict(os.environ)
            env.setdefault("RUST_BACKTRACE", "1")
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerDied(f"broker exited with {self.proc.returncode} during start-up\n"
                                 f"command: {shlex.join(self.command())}\n{self.stderr_tail()}")
            if answers_api_versions(self.host, self.port) and self.proc.poll() is None:
                return
            time.sleep(CONNECT_POLL_INTERVAL_S)
        raise BrokerDied(f"broker did not accept connections on {self.bootstrap} within "
                         f"{BROKER_START_TIMEOUT_S}s\n{self.stderr_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise BrokerDied(f"broker is not running (exit code {self.proc.returncode})\n"
                             f"{self.stderr_tail()}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, only what reached the kernel survives."""
        assert self.alive(), "kill9 on a broker that is not running"
        self.expected_exit = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=BROKER_STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it does not exit in BROKER_STOP_TIMEOUT_S."""
        if not self.alive():
            return
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=BROKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=BROKER_STOP_TIMEOUT_S)

    def restart(self, kill9: bool = False) -> "Broker":
        """Stop (or kill -9) and start again on the same data dir and the same port."""
        if self.alive():
            self.kill9() if kill9 else self.stop()
        return self.start()

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        chunks = []
        for start in range(max(1, self.starts - 1), self.starts + 1):
            path = self.workdir / f"broker-{start}.stderr.log"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(chunks) or "(no broker stderr captured)"

    def died_unexpectedly(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None and not self.expected_exit

    def cleanup(self, keep: bool) -> None:
        self.stop()
        if not keep and not os.environ.get("SHARDLOG_TEST_KEEP_DATA"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def partition_gauge(node: "Broker", gauge: str, topic: str, partition: int = 0) -> int | None:
    """A partition's `shardlog_partition_<gauge>` (e.g. high_watermark, log_start_offset) in
    the node's /metrics; None when the partition is not listed."""
    url = f"http://{node.host}:{node.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(f"shardlog_partition_{gauge}{{") and f'topic="{topic}"' in line \
                and f'partition="{partition}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition_for_key(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner picks for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
