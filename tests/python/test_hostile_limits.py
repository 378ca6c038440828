"""Contract (issue 14, items 1-3 and 6): no client can hang or bloat a shard through its
connection.

- Partial frames hold only the bytes that arrived: connections that send just a 4-byte length
  (100 MiB declared) or trickle big frames a byte at a time never block other clients'
  requests, and a frame that does not arrive whole within `server.request_read_timeout_ms`
  closes its connection.
- `server.connections_max_idle_ms` (Kafka `connections.max.idle.ms`) closes idle connections,
  but never one waiting for its own long-poll answer.
- Fetch memory is bounded: a client that pipelines big fetches and never reads the answers
  holds at most `server.connection_response_bytes_max` of response bytes (reads stop at the
  response limit); the broker's RSS stays bounded and the answers, once read, are valid.
- The admin HTTP port serves at most `server.admin_connections_max` clients at once and drops
  clients that do not read their response, so /metrics requests that are never read do not
  pile up memory.
- Request header details as Kafka: out-of-order or repeated tagged fields close the
  connection; a client id that is not UTF-8 is decoded lossily and answered; Fetch with
  min_bytes = 0 answers at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request

import kafka_wire as wire
from clients import ck_consumer, ck_create_topic, ck_produce, ck_producer, ck_read_all
from harness import rss_bytes, unique_topic

# Named bounds on hangs (seconds), never performance assertions.
SERVE_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 20.0
MiB = 1 << 20


def broker_with(broker_factory, tmp_path, name: str, server_settings: str):
    config = tmp_path / f"{name}.toml"
    config.write_text("[server]\n" + server_settings)
    return broker_factory(name, extra_args=["--config", str(config)])


def api_versions_answered(bootstrap: str, connections: int = 8) -> None:
    """ApiVersions on several fresh connections (so every shard is asked) within bounds."""
    for i in range(connections):
        with wire.connect(bootstrap) as sock:
            sock.settimeout(SERVE_TIMEOUT_S)
            sock.sendall(wire.api_versions_v0(100 + i))
            body = wire.recv_frame(sock)
            assert wire.Reader(body).i32() == 100 + i


def assert_serves(broker, label: str) -> None:
    """A stock client creates a topic, produces and consumes while the hostile load runs."""
    api_versions_answered(broker.bootstrap)
    topic = unique_topic(label)
    ck_create_topic(broker.bootstrap, topic, 2)
    ck_produce(ck_producer(broker.bootstrap), topic,
               [(b"k%d" % i, b"v%d" % i, i % 2) for i in range(10)])
    read = ck_read_all(broker.bootstrap, topic, [0, 1])
    assert sum(len(records) for records in read.values()) == 10


def open_partial_frames(bootstrap: str, count: int, declared: int, sent: bytes) -> list:
    sockets = []
    for _ in range(count):
        sock = wire.connect(bootstrap)
        sock.sendall(wire.i32(declared) + sent)
        sockets.append(sock)
    return sockets


def test_declared_frame_sizes_do_not_exhaust_request_memory(broker):
    """24 connections declare 64 MiB frames (1.5 GB promised against 2 x 256 MiB of request
    memory: four such frames fill a shard's budget exactly) and send nothing more: memory is
    only reserved for bytes that arrive, so every other client is still served."""
    stalled = open_partial_frames(broker.bootstrap, 24, 64 * MiB, b"")
    try:
        rss_before = rss_bytes(broker.pid)
        assert_serves(broker, "declared")
        assert rss_bytes(broker.pid) - rss_before < 64 * MiB
    finally:
        for sock in stalled:
            sock.close()
    broker.assert_alive()


def test_trickled_frames_are_cut_at_the_read_deadline(broker_factory, tmp_path):
    """300 connections trickle 2 MiB frames a byte per second (600 MiB promised): others are
    served meanwhile, and each trickler is closed once its frame is late."""
    broker = broker_with(broker_factory, tmp_path, "trickle", "request_read_timeout_ms = 3000\n")
    tricklers = open_partial_frames(broker.bootstrap, 300, 2 * MiB, b"\x00\x00")
    stop = threading.Event()

    def trickle():
        while not stop.wait(1.0):
            for sock in tricklers:
                try:
                    sock.send(b"\x00")
                except OSError:
                    pass  # closed by the broker: what we wait for

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        assert_serves(broker, "trickle")
        for sock in tricklers:
            wire.wait_closed(sock, CLOSE_TIMEOUT_S)
    finally:
        stop.set()
        sender.join()
        for sock in tricklers:
            sock.close()
    metrics = get(broker, "/metrics")
    assert 'reason="request_read_timeout"' in metrics
    assert_serves(broker, "after-trickle")


def test_read_deadline_is_per_frame_not_per_connection(broker_factory, tmp_path):
    """A client that keeps the broker's buffer non-empty (each write ends inside the next
    frame) for 4 s, with a 1 s read deadline, is never cut off: each frame arrives in time."""
    broker = broker_with(broker_factory, tmp_path, "straddle", "request_read_timeout_ms = 1000\n")
    frames = [wire.api_versions_v0(i) for i in range(40)]
    stream = b"".join(frames)
    size = len(frames[0])
    with wire.connect(broker.bootstrap) as sock:
        sock.settimeout(SERVE_TIMEOUT_S)
        position = 0
        for i in range(len(frames)):
            end = min(len(stream), (i + 1) * size + size // 2)
            sock.sendall(stream[position:end])
            position = end
            time.sleep(0.1)
        for i in range(len(frames)):
            assert wire.Reader(wire.recv_frame(sock)).i32() == i


def test_idle_connections_close_but_long_polls_do_not(broker_factory, tmp_path):
    broker = broker_with(broker_factory, tmp_path, "idle", "connections_max_idle_ms = 1500\n")
    topic = unique_topic("idle")
    ck_create_topic(broker.bootstrap, topic, 1)
    with wire.connect(broker.bootstrap) as sock:
        # A long poll longer than the idle timeout is answered, not cut off.
        sock.sendall(wire.fetch_v4(7, topic, 0, 0, max_wait_ms=4000))
        sock.settimeout(SERVE_TIMEOUT_S)
        body = wire.recv_frame(sock)
        assert wire.Reader(body).i32() == 7
        # Then nothing: the broker closes the idle connection.
        wire.wait_closed(sock, CLOSE_TIMEOUT_S)
    with wire.connect(broker.bootstrap) as sock:
        wire.wait_closed(sock, CLOSE_TIMEOUT_S)  # never sent anything
    assert 'reason="idle_timeout"' in get(broker, "/metrics")


def fetch_v4_partitions(correlation_id: int, topic: str, partitions: int,
                        partition_max_bytes: int, max_bytes: int) -> bytes:
    body = (wire.i32(-1) + wire.i32(500) + wire.i32(1) + wire.i32(max_bytes) + wire.i8(0)
            + wire.i32(1) + wire.string(topic) + wire.i32(partitions)
            + b"".join(wire.i32(p) + wire.i64(0) + wire.i32(partition_max_bytes)
                       for p in range(partitions)))
    return wire.frame(wire.header_v1(wire.API_FETCH, 4, correlation_id) + body)


def test_fetch_memory_is_bounded_when_the_client_does_not_read(broker_factory, tmp_path):
    """16 partitions x 6 MiB, read cold after a restart. One connection pipelines 8 fetches
    asking for everything and reads nothing: the broker holds at most one connection's
    response budget (16 MiB here), not 8 x 96 MiB."""
    broker = broker_with(broker_factory, tmp_path, "fetchmem",
                         "connection_response_bytes_max = 16777216\n")
    topic = unique_topic("fetchmem")
    partitions = 16
    ck_create_topic(broker.bootstrap, topic, partitions)
    producer = ck_producer(broker.bootstrap, **{"linger.ms": 50, "batch.size": 1 << 20})
    value = bytes(range(256)) * 4  # 1 KiB
    ck_produce(producer, topic, [(None, value, i % partitions) for i in range(partitions * 6144)],
               timeout_s=300)
    broker.restart()  # cold: every fetch reads the segments from disk
    sock = wire.connect(broker.bootstrap)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    rss_before = rss_bytes(broker.pid)
    try:
        for i in range(8):
            sock.sendall(fetch_v4_partitions(i, topic, partitions, 1 << 30, 1 << 30))
        time.sleep(3.0)
        growth = rss_bytes(broker.pid) - rss_before
        assert growth < 96 * MiB, f"RSS grew by {growth >> 20} MiB"
        api_versions_answered(broker.bootstrap)
        # The answers, once read, are complete frames in order.
        sock.settimeout(SERVE_TIMEOUT_S)
        for i in range(8):
            body = recv_large_frame(sock)
            assert wire.Reader(body).i32() == i
    finally:
        sock.close()
    broker.assert_alive()


def recv_large_frame(sock: socket.socket) -> bytes:
    size = int.from_bytes(wire.recv_exact(sock, 4), "big", signed=True)
    assert 0 <= size <= 64 * MiB, f"response frame size {size}"
    return wire.recv_exact(sock, size)


def get(broker, path: str, timeout_s: float = SERVE_TIMEOUT_S) -> str:
    url = f"http://{broker.host}:{broker.admin_port}{path}"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return response.read().decode()


def test_admin_clients_that_never_read_are_bounded(broker):
    """400 clients ask for /metrics and never read: the admin port renders at most
    admin_metrics_inflight_max bodies at once, drops non-readers, and keeps answering health
    probes. (A topic
    of 400 partitions makes each /metrics body a few hundred KiB.)"""
    ck_create_topic(broker.bootstrap, unique_topic("admin"), 400)
    rss_before = rss_bytes(broker.pid)
    clients = []
    request = f"GET /metrics HTTP/1.1\r\nHost: {broker.host}\r\n\r\n".encode()
    try:
        for _ in range(400):
            sock = socket.create_connection((broker.host, broker.admin_port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request)
            clients.append(sock)
        time.sleep(2.0)
        growth = rss_bytes(broker.pid) - rss_before
        assert growth < 32 * MiB, f"RSS grew by {growth >> 20} MiB"
        statuses = [status_line(sock) for sock in clients]
        # At most 16 bodies are rendered or sent at once; the few whose whole answer fit in
        # the socket buffers finish early and free their slot for others.
        refused = statuses.count(b"HTTP/1.1 503")
        assert refused >= 200, f"only {refused} of 400 refused; {set(statuses)}"
        # Health probes are answered while the non-readers still hold their slots.
        assert get(broker, "/health/live") == "live\n"
        assert get(broker, "/health/ready") == "ready\n"
    finally:
        for sock in clients:
            sock.close()
    assert 'reason="admin_connection_limit"' in get(broker, "/metrics")


def status_line(sock: socket.socket) -> bytes:
    """The first 12 bytes of the HTTP answer, left in the socket (peeked)."""
    sock.settimeout(SERVE_TIMEOUT_S)
    return sock.recv(12, socket.MSG_PEEK)


def api_versions_v3_raw(correlation_id: int, client_id: bytes, header_tags: bytes) -> bytes:
    header = (wire.i16(wire.API_API_VERSIONS) + wire.i16(3) + wire.i32(correlation_id)
              + wire.i16(len(client_id)) + client_id + header_tags)
    body = wire.compact_string("x") + wire.compact_string("1") + wire.uvarint(0)
    return wire.frame(header + body)


def test_header_tagged_fields_out_of_order_or_repeated_close_the_connection(broker):
    ordered = wire.uvarint(2) + b"\x01\x01\xaa" + b"\x05\x01\xbb"
    with wire.connect(broker.bootstrap) as sock:
        sock.sendall(api_versions_v3_raw(1, b"c", ordered))
        assert wire.Reader(wire.recv_frame(sock)).i32() == 1
    for tags in (wire.uvarint(2) + b"\x05\x01\xaa" + b"\x01\x01\xbb",
                 wire.uvarint(2) + b"\x03\x01\xaa" + b"\x03\x01\xbb"):
        with wire.connect(broker.bootstrap) as sock:
            sock.sendall(api_versions_v3_raw(2, b"c", tags))
            wire.wait_closed(sock, CLOSE_TIMEOUT_S)
    broker.assert_alive()


def test_non_utf8_client_id_is_answered(broker):
    with wire.connect(broker.bootstrap) as sock:
        sock.sendall(api_versions_v3_raw(41, b"caf\xe9-\xff", wire.uvarint(0)))
        sock.settimeout(SERVE_TIMEOUT_S)
        body = wire.recv_frame(sock)
        assert wire.Reader(body).i32() == 41
    with wire.connect(broker.bootstrap) as sock:
        sock.sendall(wire.frame(wire.header_v1(wire.API_METADATA, 1, 42, client_id="x")[:-1]
                                + b"\xff" + wire.i32(-1)))
        assert wire.Reader(wire.recv_frame(sock)).i32() == 42


def test_fetch_with_min_bytes_zero_answers_at_once(broker):
    """min_bytes = 0 must not long-poll (Kafka answers at once); the 60 s max wait would be
    capped at fetch_wait_ms_max (30 s), so an answer within the bound below is immediate."""
    topic = unique_topic("minbytes0")
    ck_create_topic(broker.bootstrap, topic, 1)
    with wire.connect(broker.bootstrap) as sock:
        sock.settimeout(15.0)
        sock.sendall(wire.fetch_v4(5, topic, 0, 0, max_wait_ms=60000, min_bytes=0))
        body = wire.recv_frame(sock)
    reader = wire.Reader(body)
    assert reader.i32() == 5
    (error, high_watermark, records), = wire.parse_fetch_v4(body[4:]).values()
    assert (error, high_watermark, records) == (0, 0, b"")


def api_versions_v0_padded(correlation_id: int, size: int) -> bytes:
    """An ApiVersions v0 request whose frame is `size` bytes (the body's trailing bytes are
    ignored by the decoder), to move large frames without a costly handler."""
    head = wire.header_v1(wire.API_API_VERSIONS, 0, correlation_id)
    return wire.frame(head + b"\x00" * (size - len(head)))


def test_large_frames_beyond_the_budget_do_not_deadlock(broker):
    """10 clients send 70 MiB frames at once (700 MiB against 2 x 256 MiB of request memory):
    frames holding only what arrived could wait on each other's halves forever; every one is
    answered and none is closed."""
    results: dict[int, object] = {}

    def send(index: int) -> None:
        try:
            with wire.connect(broker.bootstrap) as sock:
                sock.settimeout(120)
                frame = api_versions_v0_padded(1000 + index, 70 * MiB)
                # Paced, so that all ten frames are half-sent at the same time.
                for start in range(0, len(frame), MiB):
                    sock.sendall(frame[start:start + MiB])
                    time.sleep(0.02)
                results[index] = wire.Reader(wire.recv_frame(sock)).i32()
        except Exception as error:  # noqa: BLE001 - reported below
            results[index] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: 1000 + i for i in range(10)}
    assert 'reason="request_read_timeout"' not in get(broker, "/metrics")


def test_clients_that_never_read_do_not_starve_consumers(broker):
    """32 connections pipeline 64 fetches each of a topic and read nothing: a stock consumer
    still reads the whole topic (cached data costs no response memory; each connection is
    muted once its own unwritten responses fill its budget)."""
    topic = unique_topic("starve")
    ck_create_topic(broker.bootstrap, topic, 1)
    value = b"x" * 1000
    ck_produce(ck_producer(broker.bootstrap), topic, [(None, value, 0) for _ in range(2000)])
    hogs = []
    try:
        for c in range(32):
            sock = wire.connect(broker.bootstrap)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            for i in range(64):
                try:
                    sock.sendall(wire.fetch_v4(i, topic, 0, 0, max_wait_ms=500,
                                               max_bytes=1 << 20))
                except OSError:
                    break  # muted: the broker stopped reading, our send buffer is full
            hogs.append(sock)
        read = ck_read_all(broker.bootstrap, topic, [0])
        assert len(read[0]) == 2000
    finally:
        for sock in hogs:
            sock.close()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_long_poll_below_min_bytes_does_not_spin(broker):
    """A consumer with fetch.min.bytes = 1 MB on a topic getting 10 records/s: the long poll
    waits for new data past what it saw instead of re-reading the visible records in a loop.
    Broker CPU over the 10 s stays far below one core (a spinning fetch used ~60%)."""
    topic = unique_topic("nospin")
    ck_create_topic(broker.bootstrap, topic, 1)
    producer = ck_producer(broker.bootstrap)
    consumer = ck_consumer(broker.bootstrap, **{
        "group.id": unique_topic("g"), "fetch.min.bytes": 1_000_000,
        "fetch.wait.max.ms": 5000, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        consumer.poll(1.0)
        before = cpu_seconds(broker.pid)
        for i in range(100):
            producer.produce(topic, value=b"v%d" % i, partition=0)
            producer.poll(0)
            consumer.poll(0.1)
        producer.flush(30)
        used = cpu_seconds(broker.pid) - before
    finally:
        consumer.close()
    assert used < 3.0, f"broker used {used:.1f} CPU-s in 10 s"


def test_fetch_with_max_bytes_zero_returns_the_first_batch(broker):
    """KIP-74: the first batch comes back even when max_bytes and partition_max_bytes are 0,
    at once, not after max_wait_ms of nothing."""
    topic = unique_topic("maxbytes0")
    ck_create_topic(broker.bootstrap, topic, 1)
    ck_produce(ck_producer(broker.bootstrap), topic, [(None, b"v" * 100, 0)])
    with wire.connect(broker.bootstrap) as sock:
        sock.settimeout(15.0)
        sock.sendall(wire.fetch_v4(9, topic, 0, 0, max_wait_ms=60000, max_bytes=0))
        body = wire.recv_frame(sock)
    (error, high_watermark, records), = wire.parse_fetch_v4(body[4:]).values()
    assert (error, high_watermark) == (0, 1) and len(records) > 100


def list_offsets_v1_many(correlation_id: int, topic: str, entries: int) -> bytes:
    body = (wire.i32(-1) + wire.i32(1) + wire.string(topic) + wire.i32(entries)
            + (wire.i32(0) + wire.i64(-1)) * entries)
    return wire.frame(wire.header_v1(wire.API_LIST_OFFSETS, 1, correlation_id) + body)


def test_unread_responses_of_any_api_are_bounded(broker):
    """10 connections pipeline 64 ListOffsets requests of 1 MiB each (a response about twice
    the request) and read nothing: each connection stops being read once its unwritten
    responses fill connection_response_bytes_max, so the broker's memory stays bounded."""
    topic = unique_topic("lo")
    ck_create_topic(broker.bootstrap, topic, 1)
    request = list_offsets_v1_many(1, topic, (1 << 20) // 12)
    rss_before = rss_bytes(broker.pid)
    hogs = []
    try:
        for _ in range(10):
            sock = wire.connect(broker.bootstrap)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(2.0)
            for _ in range(64):
                try:
                    sock.sendall(request)
                except OSError:
                    break  # muted
            hogs.append(sock)
        time.sleep(5.0)
        growth = rss_bytes(broker.pid) - rss_before
        assert growth < 700 * MiB, f"RSS grew by {growth >> 20} MiB"
        api_versions_answered(broker.bootstrap)
    finally:
        for sock in hogs:
            sock.close()
