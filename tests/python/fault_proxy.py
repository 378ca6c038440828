"""A TCP fault proxy for Kafka-protocol traffic, for fault-injection tests.

`FaultProxy(target_host, target_port)` listens on a port of its own (`proxy.address`) and
forwards every connection to the target. A test points clients (or brokers, through their
advertised listener) at the proxy and then changes what the proxy does, at any moment, to the
connections it carries and to the ones opened later:

  PASS             forward both ways (the default);
  DELAY            hold every chunk `delay_ms` in each direction before forwarding it (latency,
                   not a throughput cap: chunks behind it are held from their own arrival);
  STALL            forward nothing either way (a network partition with TCP still up: data
                   waits in the proxy, then TCP back-pressure holds the peers; new connections
                   are accepted and connected but carry nothing). Healing lets the held data
                   through in order, as TCP retransmission would;
  STALL_REQUESTS   one-way: nothing reaches the target, its answers still come back;
  STALL_RESPONSES  one-way: requests reach the target, nothing comes back;
  DROP             reset (RST) every connection now, and reset new ones on their first request.

A fault can be limited to some connections by the Kafka client id of their first request
(`sources`: prefixes; a shardlog follower's replica fetcher sends `shardlog-replica-<node>`),
so a test can cut one follower's link to a leader while clients still reach it. A connection's
client id is read from the request header of its first frame (api key, version, correlation id,
then client id as a nullable int16 string in every header version); the bytes are forwarded
unchanged.

Buffers are bounded (QUEUE_CHUNKS chunks of at most CHUNK_BYTES per direction and
connection): a held direction stops reading its source once full. `close()` resets every
connection and joins the threads. Every thread is a daemon, and every blocking call has a
timeout, so a test that forgets to close cannot hang the interpreter.
"""

from __future__ import annotations

import queue
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

PASS = "pass"
DELAY = "delay"
STALL = "stall"
STALL_REQUESTS = "stall_requests"
STALL_RESPONSES = "stall_responses"
DROP = "drop"
MODES = (PASS, DELAY, STALL, STALL_REQUESTS, STALL_RESPONSES, DROP)

CHUNK_BYTES = 64 * 1024
QUEUE_CHUNKS = 64
# Bounds on blocking calls (seconds): how often threads look at the fault and at `closed`.
TICK_S = 0.2
CONNECT_TIMEOUT_S = 5.0
FIRST_HEADER_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 5.0

REQUESTS, RESPONSES = "requests", "responses"


@dataclass(frozen=True)
class Fault:
    mode: str = PASS
    delay_ms: int = 0
    sources: tuple[str, ...] | None = None  # client-id prefixes; None: every connection

    def applies_to(self, client_id: str | None) -> bool:
        if self.sources is None:
            return True
        return client_id is not None and any(client_id.startswith(s) for s in self.sources)

    def holds(self, client_id: str | None, direction: str) -> bool:
        if self.mode == STALL or (self.mode == STALL_REQUESTS and direction == REQUESTS) or (
                self.mode == STALL_RESPONSES and direction == RESPONSES):
            return self.applies_to(client_id)
        return False

    def delay_s(self, client_id: str | None) -> float:
        return self.delay_ms / 1000.0 if self.mode == DELAY and self.applies_to(client_id) else 0.0

    def describe(self) -> str:
        text = self.mode + (f" {self.delay_ms}ms" if self.mode == DELAY else "")
        return text + (f" for {','.join(self.sources)}" if self.sources is not None else "")


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped link looks to the peer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    return bool(select.select([sock], [], [], timeout_s)[0])


def _send_all(sock: socket.socket, data: bytes, closed: threading.Event) -> None:
    """Sends `data` on a non-blocking socket, waiting at most TICK_S at a time so that a peer
    that reads nothing never pins the thread after the connection is closed."""
    view = memoryview(data)
    while view and not closed.is_set():
        if not select.select([], [sock], [], TICK_S)[1]:
            continue
        try:
            sent = sock.send(view)
        except BlockingIOError:
            continue
        view = view[sent:]


def client_id_of(first_bytes: bytes) -> str | None:
    """The client id in the request header at the start of a Kafka connection, or None if
    `first_bytes` does not hold it yet (or is not a Kafka request)."""
    if len(first_bytes) < 14:
        return None
    (length,) = struct.unpack_from(">h", first_bytes, 12)
    if length < 0:
        return ""
    if len(first_bytes) < 14 + length:
        return None
    return first_bytes[14:14 + length].decode("utf-8", errors="replace")


class _Connection:
    def __init__(self, proxy: "FaultProxy", client: socket.socket, peer):
        self.proxy = proxy
        self.client = client
        self.peer = peer
        self.upstream: socket.socket | None = None
        self.client_id: str | None = None
        self.closed = threading.Event()
        self._close_lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def close(self, reset: bool = False) -> None:
        with self._close_lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                _reset(sock)
            else:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        self.proxy._forget(self)

    # One direction is a reader thread (source -> bounded queue) and a writer thread (queue ->
    # destination), so a held or delayed direction never blocks the other one.
    def _read(self, source: socket.socket, chunks: queue.Queue, direction: str) -> None:
        try:
            while not self.closed.is_set():
                if not _readable(source, TICK_S):
                    continue
                try:
                    data = source.recv(CHUNK_BYTES)
                except BlockingIOError:
                    continue
                if not data:
                    break
                self.proxy._count(direction, len(data))
                item = (time.monotonic(), data)
                while not self.closed.is_set():
                    try:
                        chunks.put(item, timeout=TICK_S)
                        break
                    except queue.Full:
                        continue
        except (OSError, ValueError):  # ValueError: select on a socket closed meanwhile
            pass
        self.close()

    def _write(self, destination: socket.socket, chunks: queue.Queue, direction: str) -> None:
        try:
            while not self.closed.is_set():
                try:
                    arrived, data = chunks.get(timeout=TICK_S)
                except queue.Empty:
                    continue
                while not self.closed.is_set():
                    fault = self.proxy.fault
                    if fault.holds(self.client_id, direction):
                        self.proxy._wait_for_change(TICK_S)
                        continue
                    wait = arrived + fault.delay_s(self.client_id) - time.monotonic()
                    if wait > 0:
                        time.sleep(min(wait, TICK_S))  # re-read the fault: it may heal
                        continue
                    break
                if self.closed.is_set():
                    break
                _send_all(destination, data, self.closed)
        except (OSError, ValueError):
            pass
        self.close()

    def run(self) -> None:
        """Reads the first request header (for the client id), connects to the target and
        starts the four pump threads."""
        first = b""
        deadline = time.monotonic() + FIRST_HEADER_TIMEOUT_S
        try:
            self.client.setblocking(False)
            while client_id_of(first) is None and time.monotonic() < deadline:
                if self.closed.is_set():
                    return
                if not _readable(self.client, TICK_S):
                    continue
                try:
                    data = self.client.recv(CHUNK_BYTES)
                except BlockingIOError:
                    continue
                if not data:
                    self.close()
                    return
                first += data
            self.client_id = client_id_of(first)
            fault = self.proxy.fault
            if fault.mode == DROP and fault.applies_to(self.client_id):
                self.proxy._count("refused", 1)
                self.close(reset=True)
                return
            try:
                self.upstream = socket.create_connection(self.proxy.target,
                                                         timeout=CONNECT_TIMEOUT_S)
            except OSError:
                self.proxy._count("upstream_refused", 1)
                self.close(reset=True)
                return
            self.upstream.setblocking(False)
            self.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ValueError):
            self.close(reset=True)
            return
        if self.closed.is_set():  # closed by close() or a DROP meanwhile
            self.upstream.close()
            return
        self.proxy._note_client(self.client_id)
        requests: queue.Queue = queue.Queue(QUEUE_CHUNKS)
        responses: queue.Queue = queue.Queue(QUEUE_CHUNKS)
        if first:
            requests.put((time.monotonic(), first))
            self.proxy._count(REQUESTS, len(first))
        self.threads = [
            threading.Thread(target=self._read, args=(self.client, requests, REQUESTS)),
            threading.Thread(target=self._write, args=(self.upstream, requests, REQUESTS)),
            threading.Thread(target=self._read, args=(self.upstream, responses, RESPONSES)),
            threading.Thread(target=self._write, args=(self.client, responses, RESPONSES)),
        ]
        for thread in self.threads:
            thread.daemon = True
            thread.name = f"{self.proxy.name}-{self.client_id}-{thread.name}"
            thread.start()


class FaultProxy:
    """One listening port forwarding to one target; see the module docstring."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, name: str = "proxy"):
        self.target = (target_host, target_port)
        self.name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, listen_port))
        self._listener.listen(128)
        self._listener.settimeout(TICK_S)
        self.host, self.port = self._listener.getsockname()[:2]
        self.fault = Fault()
        self._changed = threading.Condition()
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None
        self.counters: dict[str, int] = {REQUESTS: 0, RESPONSES: 0, "accepted": 0,
                                         "refused": 0, "upstream_refused": 0, "reset": 0}
        self.client_ids: dict[str, int] = {}  # client id -> connections carried

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "FaultProxy":
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"{self.name}-accept")
        self._acceptor.start()
        return self

    def set_fault(self, mode: str, delay_ms: int = 0, sources=None) -> Fault:
        """Applies `mode` (see the module docstring) to the connections whose client id starts
        with one of `sources` (all when None), existing and new; returns the fault."""
        assert mode in MODES, mode
        fault = Fault(mode, int(delay_ms), None if sources is None else tuple(sources))
        with self._changed:
            self.fault = fault
            self._changed.notify_all()
        if mode == DROP:
            with self._lock:
                doomed = [c for c in self._connections if fault.applies_to(c.client_id)]
            for connection in doomed:
                self._count("reset", 1)
                connection.close(reset=True)
        return fault

    def heal(self) -> None:
        self.set_fault(PASS)

    def reset_all(self) -> None:
        """Resets every connection (whatever the fault); new ones are accepted as usual."""
        with self._lock:
            doomed = list(self._connections)
        for connection in doomed:
            connection.close(reset=True)

    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    def close(self) -> None:
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(JOIN_TIMEOUT_S)
        self._listener.close()
        with self._lock:
            threads = [t for c in self._connections for t in c.threads]
        self.reset_all()
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(TICK_S)
                continue
            self._count("accepted", 1)
            connection = _Connection(self, client, peer)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=connection.run, daemon=True,
                             name=f"{self.name}-conn-{peer[1]}").start()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _count(self, what: str, amount: int) -> None:
        with self._lock:
            self.counters[what] = self.counters.get(what, 0) + amount

    def _note_client(self, client_id: str | None) -> None:
        with self._lock:
            key = client_id or ""
            self.client_ids[key] = self.client_ids.get(key, 0) + 1

    def _wait_for_change(self, timeout_s: float) -> None:
        with self._changed:
            self._changed.wait(timeout_s)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
