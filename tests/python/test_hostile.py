"""Contract: malformed, oversized or hostile input costs one connection at most, never the
broker.

For each hostile input sent on its own raw connection (garbage bytes, a 2 GiB or negative
length prefix, truncated frames, an unknown API key, an unsupported version of a known API,
an array count of 0x7fffffff, a string length past the frame, ...):
- the broker either answers (with the request's correlation id) or closes that connection
  within HOSTILE_REPLY_TIMEOUT_S; it never leaves it hanging. Frames over the size limit and
  frames cut off by EOF must be closed.
- afterwards the process is alive, its resident memory grew by less than RSS_GROWTH_MAX_BYTES
  (no allocation sized from a wire count), and a fresh client can still create a topic,
  produce and consume.
Also: a connection stalled in the middle of a frame does not block other clients, and a burst
of garbage connections leaves the broker serving.
"""

import random
import socket

import pytest

import kafka_wire as wire
from clients import ck_create_topic, ck_produce, ck_producer, ck_read_all
from harness import rss_bytes, unique_topic

HOSTILE_REPLY_TIMEOUT_S = 10.0
RSS_GROWTH_MAX_BYTES = 256 << 20
GARBAGE_BURST_CONNECTIONS = 100


def assert_serves(broker):
    broker.assert_alive()
    topic = unique_topic("alive")
    ck_create_topic(broker.bootstrap, topic, 1)
    ck_produce(ck_producer(broker.bootstrap), topic, [(b"k", b"still-serving", 0)])
    assert [r.value for r in ck_read_all(broker.bootstrap, topic, [0])[0]] == [b"still-serving"]
    broker.assert_alive()


def garbage(seed, n):
    return random.Random(seed).randbytes(n)


def metadata_v9_huge_compact_array(correlation_id):
    body = wire.uvarint(0x7FFFFFFF) + b"\x00" * 8
    return wire.frame(wire.header_v2(wire.API_METADATA, 9, correlation_id) + body)


def metadata_v1_huge_array(correlation_id):
    body = wire.i32(0x7FFFFFFF) + wire.string("t") * 3
    return wire.frame(wire.header_v1(wire.API_METADATA, 1, correlation_id) + body)


def produce_v3_huge_topic_array(correlation_id):
    body = wire.string(None) + wire.i16(1) + wire.i32(30000) + wire.i32(0x7FFFFFFF)
    return wire.frame(wire.header_v1(wire.API_PRODUCE, 3, correlation_id) + body)


def client_id_past_frame(correlation_id):
    head = wire.i16(wire.API_METADATA) + wire.i16(1) + wire.i32(correlation_id) + wire.i16(0x7FFF)
    return wire.frame(head + b"abc")


def unknown_api_key(correlation_id):
    return wire.frame(wire.header_v1(9999, 0, correlation_id) + b"\x00" * 16)


def unsupported_metadata_version(correlation_id):
    return wire.frame(wire.header_v2(wire.API_METADATA, 999, correlation_id) + b"\x00" * 16)


def truncated_metadata_body(correlation_id):
    # Frame length is right, but the topics array promises 5 entries and none follow.
    return wire.frame(wire.header_v1(wire.API_METADATA, 1, correlation_id) + wire.i32(5))


def negative_string_in_header(correlation_id):
    head = wire.i16(wire.API_METADATA) + wire.i16(1) + wire.i32(correlation_id) + wire.i16(-7)
    return wire.frame(head + wire.i32(-1))


# name -> (bytes to send, half-close after sending?, must the broker close the connection?)
CORRELATION_ID = 31337
HOSTILE = {
    # Half-closed garbage: whatever length its first 4 bytes spell, EOF follows, so the broker
    # has nothing to wait for.
    "garbage-1k": (garbage(1, 1024), True, True),
    "garbage-in-valid-frame": (wire.frame(garbage(2, 200)), False, False),
    "length-2GiB": (wire.i32(0x7FFFFFFF) + garbage(3, 64), False, True),
    "length-1GiB-then-data": (wire.i32(1 << 30) + b"\x00" * 65536, False, True),
    "length-negative": (wire.i32(-2), False, True),
    "length-zero": (wire.i32(0) + wire.api_versions_v0(1), False, False),
    "truncated-length-prefix": (b"\x00\x00", True, True),
    "truncated-frame-eof": (wire.i32(100) + b"\x00\x12\x00\x00", True, True),
    "truncated-body": (truncated_metadata_body(CORRELATION_ID), False, False),
    "unknown-api-key": (unknown_api_key(CORRELATION_ID), False, False),
    "unsupported-metadata-version": (unsupported_metadata_version(CORRELATION_ID), False, False),
    "array-count-0x7fffffff": (metadata_v1_huge_array(CORRELATION_ID), False, False),
    "compact-array-count-0x7fffffff": (metadata_v9_huge_compact_array(CORRELATION_ID), False,
                                       False),
    "produce-topic-count-0x7fffffff": (produce_v3_huge_topic_array(CORRELATION_ID), False, False),
    "client-id-past-frame": (client_id_past_frame(CORRELATION_ID), False, False),
    "negative-string-length": (negative_string_in_header(CORRELATION_ID), False, False),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input(broker, name):
    payload, half_close, must_close = HOSTILE[name]
    rss_before = rss_bytes(broker.pid)
    with wire.connect(broker.bootstrap) as sock:
        try:
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the broker before we finished: acceptable
        if must_close:
            wire.wait_closed(sock, HOSTILE_REPLY_TIMEOUT_S)
        else:
            wire.closed_or_answered(sock, HOSTILE_REPLY_TIMEOUT_S)
    broker.assert_alive()
    growth = rss_bytes(broker.pid) - rss_before
    assert growth < RSS_GROWTH_MAX_BYTES, f"RSS grew by {growth >> 20} MiB after {name}"
    assert_serves(broker)


@pytest.mark.parametrize("name", ["unknown-api-key", "unsupported-metadata-version",
                                  "truncated-body", "array-count-0x7fffffff"])
def test_error_answer_carries_correlation_id(broker, name):
    """If the broker answers a malformed request instead of closing, the reply is a complete
    frame carrying that request's correlation id."""
    payload, _, _ = HOSTILE[name]
    with wire.connect(broker.bootstrap) as sock:
        sock.sendall(payload)
        try:
            body = wire.recv_frame(sock)
        except (ConnectionError, ConnectionResetError):
            body = None  # closed: the other accepted outcome
        if body is not None:
            assert wire.Reader(body).i32() == CORRELATION_ID
    assert_serves(broker)


def test_stalled_partial_frame_does_not_block_others(broker):
    """A client that sends half a frame and then goes quiet (slowloris) must not stall the
    shard serving it: other clients work while it hangs."""
    stalled = []
    try:
        for i in range(8):  # several, so some land on every shard
            sock = wire.connect(broker.bootstrap)
            sock.sendall(wire.i32(1000) + b"\x00\x03\x00\x01" + b"\x00" * 10)
            stalled.append(sock)
        assert_serves(broker)
    finally:
        for sock in stalled:
            sock.close()
    assert_serves(broker)


def test_burst_of_garbage_connections(broker):
    rss_before = rss_bytes(broker.pid)
    rng = random.Random(99)
    for _ in range(GARBAGE_BURST_CONNECTIONS):
        with wire.connect(broker.bootstrap) as sock:
            try:
                sock.sendall(rng.randbytes(rng.randint(1, 512)))
                sock.shutdown(socket.SHUT_WR)
                wire.closed_or_answered(sock, HOSTILE_REPLY_TIMEOUT_S)
            except (BrokenPipeError, ConnectionResetError):
                pass
    broker.assert_alive()
    assert rss_bytes(broker.pid) - rss_before < RSS_GROWTH_MAX_BYTES
    assert_serves(broker)
