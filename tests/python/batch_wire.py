"""Hand-written v2 record batches and the requests that carry them (Produce, InitProducerId,
AddPartitionsToTxn), for raw-wire tests that send what no stock client would.

Every field is written as given, so a test can break exactly one rule. Written from the Kafka
protocol guide ("Record Batch", "Produce API", "InitProducerId API", "AddPartitionsToTxn
API"), independently of the broker's codec; builds on kafka_wire's primitives.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass, field

import kafka_wire as wire

API_INIT_PRODUCER_ID = 22
API_ADD_PARTITIONS_TO_TXN = 24
API_END_TXN = 26

# Kafka error codes the validation tests expect.
ERROR_CORRUPT_MESSAGE = 2
ERROR_MESSAGE_TOO_LARGE = 10
ERROR_NOT_ENOUGH_REPLICAS = 19
ERROR_INVALID_PRODUCER_EPOCH = 47
ERROR_INVALID_TXN_STATE = 48
ERROR_INVALID_PRODUCER_ID_MAPPING = 49
ERROR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
ERROR_UNKNOWN_PRODUCER_ID = 59
ERROR_INVALID_RECORD = 87
ERROR_TRANSACTION_ABORTABLE = 120

CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
BATCH_HEADER_BYTES = 61


def varint(value: int) -> bytes:
    """Zigzag varint (int32 and int64 alike)."""
    return wire.uvarint((value << 1) ^ (value >> 63) if value < 0 else value << 1)


@dataclass
class Rec:
    """One record's fields, written exactly as given."""
    offset_delta: int
    value: bytes | None = b"v"
    key: bytes | None = None
    timestamp_delta: int = 0
    headers: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    # Overrides: raw field encodings (to write lengths a real client never would).
    key_length: int | None = None
    header_count: int | None = None
    # Added to the record's true length in its length prefix.
    length_skew: int = 0


def _nullable(data: bytes | None, length: int | None = None) -> bytes:
    if data is None:
        return varint(-1 if length is None else length)
    return varint(len(data) if length is None else length) + data


def encode_record(r: Rec) -> bytes:
    body = b"\x00" + varint(r.timestamp_delta) + varint(r.offset_delta)
    body += _nullable(r.key, r.key_length) + _nullable(r.value)
    body += varint(len(r.headers) if r.header_count is None else r.header_count)
    for hkey, hvalue in r.headers:
        body += varint(len(hkey)) + hkey + _nullable(hvalue)
    return varint(len(body) + r.length_skew) + body


def records(n: int, value: bytes = b"v") -> bytes:
    return b"".join(encode_record(Rec(i, value)) for i in range(n))


def batch(section: bytes, count: int, last_offset_delta: int | None = None, attributes: int = 0,
          producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
          base_timestamp: int = 1_700_000_000_000, magic: int = 2) -> bytes:
    """A v2 batch holding `section` (a records section, compressed or not) with a valid CRC."""
    if last_offset_delta is None:
        last_offset_delta = count - 1
    covered = (struct.pack(">hiqqqhii", attributes, last_offset_delta, base_timestamp,
                           base_timestamp, producer_id, producer_epoch, base_sequence, count)
               + section)
    crc = wire.crc32c(covered)
    length = 4 + 1 + 4 + len(covered)
    return struct.pack(">qiibI", 0, length, -1, magic, crc) + covered


def compress(codec: int, data: bytes) -> bytes:
    if codec == CODEC_GZIP:
        return gzip.compress(data)
    if codec == CODEC_LZ4:
        import lz4.frame
        return lz4.frame.compress(data, block_linked=False)
    if codec == CODEC_ZSTD:
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"codec {codec}")


def zstd_stream(chunks) -> bytes:
    """zstd frame of the concatenated chunks, compressed as they come (never all in memory)."""
    import zstandard
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    return b"".join(compressor.compress(c) for c in chunks) + compressor.flush()


def gzip_stream(chunks) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    return b"".join(compressor.compress(c) for c in chunks) + compressor.flush()


# ---- Produce ------------------------------------------------------------------------------

def produce(correlation_id: int, topic: str, partition: int, records_bytes: bytes,
            version: int = 8, acks: int = -1, transactional_id: str | None = None,
            timeout_ms: int = 30_000) -> bytes:
    """Produce request (v3..v11) for one partition."""
    if version >= 9:
        part = wire.i32(partition) + wire.uvarint(len(records_bytes) + 1) + records_bytes
        body = (wire.compact_string(transactional_id) + wire.i16(acks) + wire.i32(timeout_ms)
                + wire.compact_array([wire.compact_string(topic)
                                      + wire.compact_array([part + wire.EMPTY_TAGGED_FIELDS])
                                      + wire.EMPTY_TAGGED_FIELDS])
                + wire.EMPTY_TAGGED_FIELDS)
        return wire.frame(wire.header_v2(wire.API_PRODUCE, version, correlation_id) + body)
    part = wire.i32(partition) + wire.i32(len(records_bytes)) + records_bytes
    body = (wire.string(transactional_id) + wire.i16(acks) + wire.i32(timeout_ms)
            + wire.i32(1) + wire.string(topic) + wire.i32(1) + part)
    return wire.frame(wire.header_v1(wire.API_PRODUCE, version, correlation_id) + body)


@dataclass
class PartitionResult:
    error: int
    base_offset: int
    error_message: str | None
    # KIP-467 (v8+): (batch index, message) of each record that caused `error`.
    record_errors: list[tuple[int, str | None]] = field(default_factory=list)


def parse_produce(body: bytes, version: int) -> dict[tuple[str, int], PartitionResult]:
    """Produce response (after the correlation id), v3..v11."""
    flexible = version >= 9
    r = wire.Reader(body)
    if flexible:
        r.tagged_fields()

    def count():
        return r.uvarint() - 1 if flexible else r.i32()

    def string():
        if not flexible:
            return r.string()
        n = r.uvarint() - 1
        return None if n < 0 else r.take(n).decode()

    out = {}
    for _ in range(count()):
        topic = string()
        for _ in range(count()):
            index, error, base_offset, _append_time = r.i32(), r.i16(), r.i64(), r.i64()
            if version >= 5:
                r.i64()  # log_start_offset
            message = None
            record_errors = []
            if version >= 8:
                for _ in range(count()):
                    batch_index = r.i32()
                    record_errors.append((batch_index, string()))
                    if flexible:
                        r.tagged_fields()
                message = string()
            if flexible:
                r.tagged_fields()
            out[(topic, index)] = PartitionResult(error, base_offset, message, record_errors)
        if flexible:
            r.tagged_fields()
    r.i32()  # throttle_time_ms
    if flexible:
        r.tagged_fields()
    assert r.done(), f"trailing bytes after Produce v{version} response"
    return out


def send_produce(bootstrap: str, topic: str, partition: int, records_bytes: bytes,
                 version: int = 8, transactional_id: str | None = None,
                 correlation_id: int = 7) -> PartitionResult:
    request = produce(correlation_id, topic, partition, records_bytes, version=version,
                      transactional_id=transactional_id)
    body = wire.roundtrip(bootstrap, request)
    reader = wire.Reader(body)
    assert reader.i32() == correlation_id
    return parse_produce(body[4:], version)[(topic, partition)]


# ---- Transactions -------------------------------------------------------------------------

def init_producer_id(bootstrap: str, transactional_id: str | None,
                     timeout_ms: int = 60_000) -> tuple[int, int, int]:
    """InitProducerId v1 -> (error, producer id, epoch)."""
    body = wire.string(transactional_id) + wire.i32(timeout_ms)
    request = wire.frame(wire.header_v1(API_INIT_PRODUCER_ID, 1, 11) + body)
    r = wire.Reader(wire.roundtrip(bootstrap, request))
    assert r.i32() == 11
    r.i32()  # throttle
    return r.i16(), r.i64(), r.i16()


def add_partitions_to_txn(bootstrap: str, transactional_id: str, producer_id: int, epoch: int,
                          topic: str, partition: int) -> int:
    """AddPartitionsToTxn v1 for one partition -> its error code."""
    body = (wire.string(transactional_id) + wire.i64(producer_id) + wire.i16(epoch)
            + wire.i32(1) + wire.string(topic) + wire.i32(1) + wire.i32(partition))
    request = wire.frame(wire.header_v1(API_ADD_PARTITIONS_TO_TXN, 1, 12) + body)
    r = wire.Reader(wire.roundtrip(bootstrap, request))
    assert r.i32() == 12
    r.i32()  # throttle
    errors = []
    for _ in range(r.i32()):
        r.string()
        for _ in range(r.i32()):
            r.i32()
            errors.append(r.i16())
    assert len(errors) == 1, errors
    return errors[0]


def end_txn(bootstrap: str, transactional_id: str, producer_id: int, epoch: int,
            commit: bool) -> int:
    """EndTxn v1 -> error code."""
    body = (wire.string(transactional_id) + wire.i64(producer_id) + wire.i16(epoch)
            + wire.i8(1 if commit else 0))
    request = wire.frame(wire.header_v1(API_END_TXN, 1, 13) + body)
    r = wire.Reader(wire.roundtrip(bootstrap, request))
    assert r.i32() == 13
    r.i32()  # throttle
    return r.i16()
