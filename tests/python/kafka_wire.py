"""Minimal hand-written Kafka wire encoding for raw-socket tests (hostile input, KIP-511).

Only what the tests need: request headers v1/v2, ApiVersions v0/v3 requests and responses,
Metadata v1 requests, Fetch v4 and v11 requests/responses, ListOffsets, OffsetForLeaderEpoch
v2-v4. Written from the Kafka protocol guide
(kafka.apache.org/protocol), independently of the broker's codec.
"""

from __future__ import annotations

import socket
import struct
import time

# Named timeouts (seconds).
SOCKET_TIMEOUT_S = 10.0

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_API_VERSIONS = 18

ERROR_NONE = 0
ERROR_UNSUPPORTED_VERSION = 35


def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


EMPTY_TAGGED_FIELDS = uvarint(0)


def header_v1(api_key: int, version: int, correlation_id: int, client_id="shardlog-tests"):
    return i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)


def header_v2(api_key: int, version: int, correlation_id: int, client_id="shardlog-tests"):
    return header_v1(api_key, version, correlation_id, client_id) + EMPTY_TAGGED_FIELDS


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def api_versions_v0(correlation_id: int) -> bytes:
    return frame(header_v1(API_API_VERSIONS, 0, correlation_id))


def api_versions_flexible(correlation_id: int, version: int = 3) -> bytes:
    body = compact_string("shardlog-tests") + compact_string("1.0") + EMPTY_TAGGED_FIELDS
    return frame(header_v2(API_API_VERSIONS, version, correlation_id) + body)


def metadata_v1(correlation_id: int, topics: list[str] | None) -> bytes:
    if topics is None:
        body = i32(-1)
    else:
        body = i32(len(topics)) + b"".join(string(t) for t in topics)
    return frame(header_v1(API_METADATA, 1, correlation_id) + body)


def fetch_v4(correlation_id: int, topic: str, partition: int, offset: int, max_wait_ms: int,
             min_bytes: int = 1, max_bytes: int = 1 << 20) -> bytes:
    body = (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
            + i32(1) + string(topic) + i32(1) + i32(partition) + i64(offset) + i32(max_bytes))
    return frame(header_v1(API_FETCH, 4, correlation_id) + body)


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"truncated: need {n} bytes at {self.pos}, have {len(self.data)}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def i8(self): return struct.unpack(">b", self.take(1))[0]
    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 35:
                raise ValueError("uvarint too long")

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def tagged_fields(self) -> dict[int, bytes]:
        fields = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = self.take(self.uvarint())
        return fields

    def done(self) -> bool:
        return self.pos == len(self.data)


def connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
    sock.settimeout(SOCKET_TIMEOUT_S)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= size < 64 << 20, f"response frame size {size}"
    return recv_exact(sock, size)


def roundtrip(bootstrap: str, request: bytes) -> bytes:
    with connect(bootstrap) as sock:
        sock.sendall(request)
        return recv_frame(sock)


def closed_or_answered(sock: socket.socket, timeout_s: float) -> str:
    """Wait until the peer closes ('closed') or sends bytes ('answered'); raise on a hang."""
    sock.settimeout(timeout_s)
    try:
        data = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    except socket.timeout:
        raise AssertionError(f"broker neither answered nor closed within {timeout_s}s") from None
    return "answered" if data else "closed"


def wait_closed(sock: socket.socket, timeout_s: float) -> None:
    """Read until EOF/reset; raise if the broker keeps the connection open past timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return
        except (ConnectionResetError, BrokenPipeError):
            return
        except socket.timeout:
            raise AssertionError(f"connection still open after {timeout_s}s") from None


def parse_api_versions_v0(body: bytes) -> tuple[int, dict[int, tuple[int, int]]]:
    """ApiVersionsResponse v0 body (after the v0 response header)."""
    r = Reader(body)
    error = r.i16()
    apis = {}
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        apis[key] = (lo, hi)
    assert r.done(), f"{len(body) - r.pos} trailing bytes after ApiVersions v0 body"
    return error, apis


def parse_api_versions_v3(body: bytes):
    """ApiVersionsResponse v3 body. Returns (error, apis, throttle, top-level tagged fields)."""
    r = Reader(body)
    error = r.i16()
    apis = {}
    for _ in range(r.uvarint() - 1):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        r.tagged_fields()
        apis[key] = (lo, hi)
    throttle = r.i32()
    tags = r.tagged_fields()
    assert r.done(), f"{len(body) - r.pos} trailing bytes after ApiVersions v3 body"
    return error, apis, throttle, tags


def parse_fetch_v4(body: bytes):
    """FetchResponse v4 body -> {(topic, partition): (error, high_watermark, records bytes)}."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            partition, error, hw, _lso = r.i32(), r.i16(), r.i64(), r.i64()
            aborted = r.i32()
            for _ in range(max(0, aborted)):
                r.i64(), r.i64()
            size = r.i32()
            records = r.take(size) if size > 0 else b""
            out[(topic, partition)] = (error, hw, records)
    assert r.done(), "trailing bytes after Fetch v4 body"
    return out


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def parse_batch_headers(records: bytes) -> list[dict]:
    """Headers of the v2 record batches in a fetched record set; checks magic and CRC-32C.
    A trailing partial batch (allowed in fetch responses) is ignored."""
    out, pos = [], 0
    while pos + 12 <= len(records):
        base_offset, length = struct.unpack_from(">qi", records, pos)
        end = pos + 12 + length
        if end > len(records):
            break
        (leader_epoch, magic, crc, attributes, last_delta, base_ts, max_ts, producer_id,
         producer_epoch, base_sequence, count) = struct.unpack_from(">ibIhiqqqhii", records,
                                                                    pos + 12)
        assert magic == 2, f"batch at offset {base_offset}: magic {magic}"
        assert crc == crc32c(records[pos + 21:end]), f"batch at offset {base_offset}: bad CRC"
        out.append(dict(base_offset=base_offset, length=length, leader_epoch=leader_epoch,
                        attributes=attributes, last_offset_delta=last_delta,
                        base_timestamp=base_ts, max_timestamp=max_ts, producer_id=producer_id,
                        producer_epoch=producer_epoch, base_sequence=base_sequence,
                        count=count))
        pos = end
    return out


def fetch_batch_headers(bootstrap: str, topic: str, partition: int, high_watermark: int):
    """All batch headers of a partition from offset 0 to high_watermark, via raw Fetch v4."""
    headers, offset, correlation_id = [], 0, 1000
    with connect(bootstrap) as sock:
        while offset < high_watermark:
            correlation_id += 1
            sock.sendall(fetch_v4(correlation_id, topic, partition, offset, 500))
            body = recv_frame(sock)
            assert Reader(body).i32() == correlation_id
            error, _, records = parse_fetch_v4(body[4:])[(topic, partition)]
            assert error == ERROR_NONE, f"fetch error {error} at offset {offset}"
            batch = parse_batch_headers(records)
            assert batch, f"no complete batch returned at offset {offset}"
            headers += batch
            offset = batch[-1]["base_offset"] + batch[-1]["last_offset_delta"] + 1
    return headers


API_LIST_OFFSETS = 2


def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


def list_offsets(correlation_id: int, version: int, topic: str, partition: int,
                 timestamp: int, timeout_ms: int = 30_000, current_leader_epoch: int = -1) -> bytes:
    """ListOffsets request v1..v10 for one partition (-1 latest, -2 earliest, -3 max
    timestamp, -4 earliest local, -5 latest tiered, or a time); v10 carries `timeout_ms`,
    v4+ `current_leader_epoch` (KIP-320, -1: not checked)."""
    flexible = version >= 6
    part = (i32(partition) + (i32(current_leader_epoch) if version >= 4 else b"")
            + i64(timestamp))
    if flexible:
        body = (i32(-1) + i8(0) + compact_array([
            compact_string(topic) + compact_array([part + EMPTY_TAGGED_FIELDS])
            + EMPTY_TAGGED_FIELDS]) + (i32(timeout_ms) if version >= 10 else b"")
            + EMPTY_TAGGED_FIELDS)
        return frame(header_v2(API_LIST_OFFSETS, version, correlation_id) + body)
    body = (i32(-1) + (i8(0) if version >= 2 else b"")
            + i32(1) + string(topic) + i32(1) + part)
    return frame(header_v1(API_LIST_OFFSETS, version, correlation_id) + body)


def parse_list_offsets(body: bytes, version: int) -> dict:
    """ListOffsets response (after the correlation id) -> {(topic, partition): (error,
    timestamp, offset)}."""
    flexible = version >= 6
    r = Reader(body)
    if flexible:
        r.tagged_fields()  # response header v1
    if version >= 2:
        r.i32()  # throttle
    out = {}
    count = r.uvarint() - 1 if flexible else r.i32()
    for _ in range(count):
        if flexible:
            n = r.uvarint() - 1
            topic = r.take(n).decode()
        else:
            topic = r.string()
        pcount = r.uvarint() - 1 if flexible else r.i32()
        for _ in range(pcount):
            partition, error, timestamp, offset = r.i32(), r.i16(), r.i64(), r.i64()
            if version >= 4:
                r.i32()  # leader_epoch
            if flexible:
                r.tagged_fields()
            out[(topic, partition)] = (error, timestamp, offset)
        if flexible:
            r.tagged_fields()
    if flexible:
        r.tagged_fields()
    assert r.done(), f"trailing bytes after ListOffsets v{version} body"
    return out


API_LIST_CONFIG_RESOURCES = 74
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_CLIENT_METRICS = 16


def list_config_resources(correlation_id: int, version: int,
                          resource_types: list[int]) -> bytes:
    """ListConfigResources request (flexible; v1 carries the resource types, v0 is Kafka
    3.7's ListClientMetricsResources with an empty body)."""
    types = compact_array([i8(t) for t in resource_types]) if version >= 1 else b""
    body = types + EMPTY_TAGGED_FIELDS
    return frame(header_v2(API_LIST_CONFIG_RESOURCES, version, correlation_id) + body)


def parse_list_config_resources(body: bytes, version: int) -> tuple[int, list[tuple[str, int]]]:
    """ListConfigResources response (after the correlation id) -> (error, [(name, type)]);
    v0 resources have no type on the wire and are client-metrics resources."""
    r = Reader(body)
    r.tagged_fields()  # response header v1
    r.i32()  # throttle
    error = r.i16()
    resources = []
    for _ in range(r.uvarint() - 1):
        name = r.take(r.uvarint() - 1).decode()
        resource_type = r.i8() if version >= 1 else RESOURCE_CLIENT_METRICS
        r.tagged_fields()
        resources.append((name, resource_type))
    r.tagged_fields()
    assert r.done(), f"trailing bytes after ListConfigResources v{version} body"
    return error, resources


API_OFFSET_FOR_LEADER_EPOCH = 23
ERROR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERROR_FENCED_LEADER_EPOCH = 74
ERROR_UNKNOWN_LEADER_EPOCH = 75
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


def offset_for_leader_epoch(correlation_id: int, version: int, topic: str,
                            partitions: list[tuple[int, int, int]]) -> bytes:
    """OffsetForLeaderEpoch request v2..v4: `partitions` holds (partition,
    current_leader_epoch, leader_epoch); v3+ carries replica_id (-1: a consumer), v4 is
    flexible."""
    if version >= 4:
        parts = [i32(p) + i32(current) + i32(epoch) + EMPTY_TAGGED_FIELDS
                 for p, current, epoch in partitions]
        body = (i32(-1) + compact_array([compact_string(topic) + compact_array(parts)
                                         + EMPTY_TAGGED_FIELDS]) + EMPTY_TAGGED_FIELDS)
        return frame(header_v2(API_OFFSET_FOR_LEADER_EPOCH, version, correlation_id) + body)
    parts = b"".join(i32(p) + i32(current) + i32(epoch) for p, current, epoch in partitions)
    body = ((i32(-1) if version >= 3 else b"")
            + i32(1) + string(topic) + i32(len(partitions)) + parts)
    return frame(header_v1(API_OFFSET_FOR_LEADER_EPOCH, version, correlation_id) + body)


def parse_offset_for_leader_epoch(body: bytes, version: int) -> dict:
    """OffsetForLeaderEpoch response (after the correlation id) -> {(topic, partition):
    (error, leader_epoch, end_offset)}."""
    flexible = version >= 4
    r = Reader(body)
    if flexible:
        r.tagged_fields()  # response header v1
    r.i32()  # throttle
    out = {}
    count = r.uvarint() - 1 if flexible else r.i32()
    for _ in range(count):
        topic = r.take(r.uvarint() - 1).decode() if flexible else r.string()
        pcount = r.uvarint() - 1 if flexible else r.i32()
        for _ in range(pcount):
            error, partition, epoch, end_offset = r.i16(), r.i32(), r.i32(), r.i64()
            if flexible:
                r.tagged_fields()
            out[(topic, partition)] = (error, epoch, end_offset)
        if flexible:
            r.tagged_fields()
    if flexible:
        r.tagged_fields()
    assert r.done(), f"trailing bytes after OffsetForLeaderEpoch v{version} body"
    return out


def fetch_v11(correlation_id: int, topic: str, partition: int, offset: int,
              current_leader_epoch: int, max_wait_ms: int = 100, min_bytes: int = 1,
              max_bytes: int = 1 << 20) -> bytes:
    """Fetch v11 (the newest non-flexible version, with KIP-320's current_leader_epoch)."""
    body = (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
            + i32(0) + i32(-1)  # no fetch session
            + i32(1) + string(topic) + i32(1) + i32(partition) + i32(current_leader_epoch)
            + i64(offset) + i64(-1) + i32(max_bytes)
            + i32(0)  # forgotten topics
            + string(""))  # rack id
    return frame(header_v1(API_FETCH, 11, correlation_id) + body)


def parse_fetch_v11(body: bytes):
    """Fetch v11 response (after the correlation id) -> (error, [(partition, error,
    high_watermark, records bytes)])."""
    r = Reader(body)
    r.i32()  # throttle
    error = r.i16()
    r.i32()  # session id
    out = []
    for _ in range(r.i32()):
        r.string()
        for _ in range(r.i32()):
            partition, perror, hw = r.i32(), r.i16(), r.i64()
            r.i64()  # last stable offset
            r.i64()  # log start offset
            aborted = r.i32()
            for _ in range(max(aborted, 0)):
                r.i64(), r.i64()
            r.i32()  # preferred read replica
            n = r.i32()
            records = r.take(n) if n > 0 else b""
            out.append((partition, perror, hw, records))
    assert r.done(), "trailing bytes after Fetch v11 body"
    return error, out


API_OFFSET_COMMIT = 8


def offset_commit_flexible(correlation_id: int, version: int, group: str, member_id: str,
                           member_epoch: int, topic: str, partition: int, offset: int) -> bytes:
    """OffsetCommit v8/v9 (flexible; v9 is v8 on the wire, where the generation field
    carries a consumer-protocol member's epoch) for one partition."""
    assert version in (8, 9), version
    part = i32(partition) + i64(offset) + i32(-1) + compact_string(None) + EMPTY_TAGGED_FIELDS
    body = (compact_string(group) + i32(member_epoch) + compact_string(member_id)
            + compact_string(None)
            + compact_array([compact_string(topic) + compact_array([part])
                             + EMPTY_TAGGED_FIELDS])
            + EMPTY_TAGGED_FIELDS)
    return frame(header_v2(API_OFFSET_COMMIT, version, correlation_id) + body)


def parse_offset_commit_flexible(body: bytes) -> dict[tuple[str, int], int]:
    """OffsetCommit v8/v9 response (after the correlation id) -> {(topic, partition): error}."""
    r = Reader(body)
    r.tagged_fields()  # response header v1
    r.i32()  # throttle
    errors = {}
    for _ in range(r.uvarint() - 1):
        topic = r.take(r.uvarint() - 1).decode()
        for _ in range(r.uvarint() - 1):
            partition = r.i32()
            errors[(topic, partition)] = r.i16()
            r.tagged_fields()
        r.tagged_fields()
    r.tagged_fields()
    assert r.done(), "trailing bytes after the OffsetCommit body"
    return errors


API_CONSUMER_GROUP_HEARTBEAT = 68


def consumer_group_heartbeat_v0(correlation_id: int, group: str, member_id: str,
                                member_epoch: int, topic: str) -> bytes:
    """ConsumerGroupHeartbeat v0 (KIP-848) subscribed to `topic`, owning nothing: epoch 0
    with an empty member id joins (the coordinator names the member), -1 leaves."""
    body = (compact_string(group) + compact_string(member_id) + i32(member_epoch)
            + compact_string(None) + compact_string(None) + i32(30_000)
            + compact_array([compact_string(topic)]) + compact_string(None)
            + compact_array([]) + EMPTY_TAGGED_FIELDS)
    return frame(header_v2(API_CONSUMER_GROUP_HEARTBEAT, 0, correlation_id) + body)


def _consumer_group_heartbeat_head(body: bytes) -> tuple["Reader", int, str | None, str | None]:
    """ConsumerGroupHeartbeat response up to the member id -> (reader, error, message,
    member id)."""
    r = Reader(body)
    r.tagged_fields()  # response header v1
    r.i32()  # throttle
    error = r.i16()
    fields = []
    for _ in range(2):
        n = r.uvarint()
        fields.append(None if n == 0 else r.take(n - 1).decode())
    return r, error, fields[0], fields[1]


def parse_consumer_group_heartbeat(body: bytes) -> tuple[int, str | None, str | None]:
    """ConsumerGroupHeartbeat response (after the correlation id) -> (error, message,
    member id)."""
    _, error, message, member_id = _consumer_group_heartbeat_head(body)
    return error, message, member_id


def parse_consumer_group_heartbeat_interval(body: bytes) -> tuple[int, str | None, int, int]:
    """ConsumerGroupHeartbeat response (after the correlation id) -> (error, member id,
    member epoch, heartbeat interval ms)."""
    r, error, _, member_id = _consumer_group_heartbeat_head(body)
    return error, member_id, r.i32(), r.i32()
