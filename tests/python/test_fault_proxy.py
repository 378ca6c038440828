"""Contract of the test fault proxy (fault_proxy.py), against a local echo server speaking
Kafka framing (no broker): it forwards both ways; DELAY holds data; STALL holds it and lets it
through in order on heal; the one-way stalls hold one direction only; DROP resets existing
connections and new ones; a fault limited to a client id leaves other connections alone; the
client id is read from the first request header. Waits are bounded; the only timing check is
a lower bound (a delayed answer does not come back before its delay).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

import fault_proxy
from fault_proxy import FaultProxy, client_id_of

IO_TIMEOUT_S = 10.0


def request(client_id: str | None, payload: bytes) -> bytes:
    """A Kafka-shaped frame: api key, version, correlation id, client id, then `payload`."""
    cid = (struct.pack(">h", -1) if client_id is None
           else struct.pack(">h", len(client_id)) + client_id.encode())
    body = struct.pack(">hhi", 18, 0, 1) + cid + payload
    return struct.pack(">i", len(body)) + body


class EchoServer:
    """Echoes every byte back; counts what it received."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        conn.settimeout(0.1)
        with conn:
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.received += len(data)
                try:
                    conn.sendall(data)
                except OSError:
                    return

    def close(self):
        self.stop.set()
        self.listener.close()


@pytest.fixture
def echo_proxy():
    server = EchoServer()
    proxy = FaultProxy("127.0.0.1", server.port, name="test").start()
    try:
        yield server, proxy
    finally:
        proxy.close()
        server.close()


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=IO_TIMEOUT_S)
    return sock


def recv_exactly(sock: socket.socket, n: int, timeout_s: float = IO_TIMEOUT_S) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def nothing_arrives(sock: socket.socket, within_s: float = 0.5) -> bool:
    sock.settimeout(within_s)
    try:
        sock.recv(1)  # data or EOF: something arrived
    except socket.timeout:
        return True
    return False


def wait_until(check, timeout_s: float = IO_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    pytest.fail("condition not reached")


def test_client_id_is_read_from_the_first_header():
    frame = request("shardlog-replica-2", b"xyz")
    assert client_id_of(frame) == "shardlog-replica-2"
    assert client_id_of(frame[:15]) is None
    assert client_id_of(request(None, b"")) == ""


def test_forwards_both_ways_and_delays(echo_proxy):
    _server, proxy = echo_proxy
    with connect(proxy) as sock:
        frame = request("a", b"hello" * 1000)
        sock.sendall(frame)
        assert recv_exactly(sock, len(frame)) == frame
        proxy.set_fault(fault_proxy.DELAY, delay_ms=300)
        started = time.monotonic()
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        assert time.monotonic() - started >= 0.3  # held at least once (each way: 0.6 s)
    assert proxy.client_ids == {"a": 1}


def test_stall_holds_data_and_heal_delivers_it_in_order(echo_proxy):
    server, proxy = echo_proxy
    with connect(proxy) as sock:
        frame = request("a", b"first")
        sock.sendall(frame)
        assert recv_exactly(sock, len(frame)) == frame
        proxy.set_fault(fault_proxy.STALL)
        sock.sendall(b"second")
        assert nothing_arrives(sock)
        received = server.received
        proxy.heal()
        assert recv_exactly(sock, 6) == b"second"
        assert server.received == received + 6


def test_one_way_stalls(echo_proxy):
    server, proxy = echo_proxy
    with connect(proxy) as sock:
        frame = request("a", b"x")
        sock.sendall(frame)
        recv_exactly(sock, len(frame))
        before = server.received
        proxy.set_fault(fault_proxy.STALL_RESPONSES)
        sock.sendall(b"req")
        wait_until(lambda: server.received == before + 3)  # the request got through
        assert nothing_arrives(sock)  # its answer did not
        proxy.set_fault(fault_proxy.STALL_REQUESTS)  # the held answer comes, a new request waits
        assert recv_exactly(sock, 3) == b"req"
        sock.sendall(b"more")
        assert nothing_arrives(sock)
        assert server.received == before + 3
        proxy.heal()
        assert recv_exactly(sock, 4) == b"more"


def test_drop_resets_existing_and_new_connections(echo_proxy):
    _server, proxy = echo_proxy
    with connect(proxy) as sock:
        frame = request("a", b"x")
        sock.sendall(frame)
        recv_exactly(sock, len(frame))
        proxy.set_fault(fault_proxy.DROP)
        with pytest.raises((ConnectionError, OSError)):
            sock.sendall(b"after")
            recv_exactly(sock, 5)
    with connect(proxy) as sock:
        with pytest.raises((ConnectionError, OSError)):
            sock.sendall(request("b", b"x"))
            recv_exactly(sock, 1)
    proxy.heal()
    with connect(proxy) as sock:
        frame = request("c", b"back")
        sock.sendall(frame)
        assert recv_exactly(sock, len(frame)) == frame


def test_a_fault_limited_to_a_client_id_leaves_others_alone(echo_proxy):
    _server, proxy = echo_proxy
    with connect(proxy) as replica, connect(proxy) as other:
        first = request("shardlog-replica-2", b"r")
        replica.sendall(first)
        recv_exactly(replica, len(first))
        second = request("rdkafka", b"o")
        other.sendall(second)
        recv_exactly(other, len(second))
        proxy.set_fault(fault_proxy.STALL, sources=["shardlog-replica-2"])
        replica.sendall(b"held")
        other.sendall(b"free")
        assert recv_exactly(other, 4) == b"free"
        assert nothing_arrives(replica)
        proxy.set_fault(fault_proxy.DROP, sources=["shardlog-replica-"])
        other.sendall(b"still")
        assert recv_exactly(other, 5) == b"still"
        with pytest.raises((ConnectionError, OSError)):
            replica.sendall(b"x")
            recv_exactly(replica, 4)


def test_close_ends_every_connection(echo_proxy):
    _server, proxy = echo_proxy
    socks = [connect(proxy) for _ in range(5)]
    for sock in socks:
        frame = request("a", b"x")
        sock.sendall(frame)
        recv_exactly(sock, len(frame))
    assert proxy.connection_count() == 5
    proxy.close()
    assert proxy.connection_count() == 0
    for sock in socks:
        with pytest.raises((ConnectionError, OSError)):
            sock.sendall(b"x")
            recv_exactly(sock, 1)
        sock.close()
