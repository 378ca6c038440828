"""Contract: nothing a producer sends can break consumers (issue 14, item 5).

Each raw-wire case sends one v2 record batch that breaks one of Kafka's LogValidator rules
(or a produce-request rule) and expects the error code Kafka uses for it: CORRUPT_MESSAGE (2)
for framing and CRC, INVALID_RECORD (87) for a batch that is intact but wrong, with an
error_message; MESSAGE_TOO_LARGE (10) for records that decompress past
storage.decompressed_batch_bytes_max. After every refusal the partition's high watermark has
not moved, no segment file was added, and a stock client (confluent-kafka) still produces to
and consumes from the same partition, reading exactly what it wrote around the refusal.

Decompression bombs (a zstd batch of 1 GiB of zeros, a gzip one of 512 MiB, a zstd record
declaring a 1 GiB value) are refused while the broker's peak resident memory grows by less
than BOMB_RSS_GROWTH_MAX_BYTES.

Producer ids: an idempotent batch must carry a producer id the broker allocated, a
transactional batch a producer id and the transactional id that owns it, and its partition
must have been added to the transaction (KIP-890 part 1: INVALID_TXN_STATE up to Produce v10,
TRANSACTION_ABORTABLE from v11).
"""

from __future__ import annotations

import time

import pytest

import batch_wire as bw
from clients import ck_create_topic, ck_produce, ck_producer, ck_read_all, ck_watermarks
from harness import unique_topic

# Peak RSS growth allowed while the broker refuses a decompression bomb: the stream chunk,
# the codec's window and the request itself, far below what decoding the bomb would take.
BOMB_RSS_GROWTH_MAX_BYTES = 32 << 20
MIB = 1 << 20


def peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def two_batches():
    one = bw.batch(bw.records(1), 1)
    return one + one


def with_bad_crc():
    data = bytearray(bw.batch(bw.records(2), 2))
    data[-1] ^= 1
    return bytes(data)


def compressed(codec, section, count):
    return bw.batch(bw.compress(codec, section), count, attributes=codec)


def corrupt_gzip():
    body = bytearray(bw.compress(bw.CODEC_GZIP, bw.records(20, b"x" * 100)))
    body[len(body) // 2] ^= 0xFF
    return bw.batch(bytes(body), 20, attributes=bw.CODEC_GZIP)


def two_lz4_frames():
    frame = bw.compress(bw.CODEC_LZ4, bw.records(2))
    return bw.batch(frame + frame, 2, attributes=bw.CODEC_LZ4)


def rec(offset_delta, **kw):
    return bw.encode_record(bw.Rec(offset_delta, **kw))


# (name, batch builder, expected error). Each is accepted (or answered with another code) by
# the broker before this change; see the module doc.
CASES = [
    ("last-offset-delta-2^31-1", lambda: bw.batch(bw.records(1), 1, 2**31 - 1),
     bw.ERROR_INVALID_RECORD),
    ("negative-last-offset-delta", lambda: bw.batch(bw.records(1), 0, -1),
     bw.ERROR_INVALID_RECORD),
    ("records-count-0", lambda: bw.batch(bw.records(1), 0, 0), bw.ERROR_INVALID_RECORD),
    ("count-above-records", lambda: bw.batch(bw.records(2), 3), bw.ERROR_INVALID_RECORD),
    ("count-below-records", lambda: bw.batch(bw.records(3), 1), bw.ERROR_INVALID_RECORD),
    ("offset-delta-gap", lambda: bw.batch(rec(0) + rec(5), 2), bw.ERROR_INVALID_RECORD),
    ("offset-delta-repeated", lambda: bw.batch(rec(0) + rec(0), 2), bw.ERROR_INVALID_RECORD),
    ("record-length-too-long", lambda: bw.batch(rec(0, length_skew=3), 1),
     bw.ERROR_INVALID_RECORD),
    ("record-length-too-short", lambda: bw.batch(rec(0, length_skew=-1), 1),
     bw.ERROR_INVALID_RECORD),
    ("negative-key-length", lambda: bw.batch(rec(0, key=b"", key_length=-5), 1),
     bw.ERROR_INVALID_RECORD),
    ("negative-header-count", lambda: bw.batch(rec(0, header_count=-1), 1),
     bw.ERROR_INVALID_RECORD),
    ("header-key-not-utf8", lambda: bw.batch(rec(0, headers=[(b"\xc3\x28", b"v")]), 1),
     bw.ERROR_INVALID_RECORD),
    ("varint-too-long", lambda: bw.batch(b"\x80\x80\x80\x80\x80\x01" + rec(0), 1),
     bw.ERROR_INVALID_RECORD),
    ("timestamp-overflow", lambda: bw.batch(rec(0, timestamp_delta=2**63 - 1), 1),
     bw.ERROR_INVALID_RECORD),
    ("two-batches-one-partition", two_batches, bw.ERROR_INVALID_RECORD),
    ("producer-id-without-sequence",
     lambda: bw.batch(bw.records(1), 1, producer_id=0, producer_epoch=0, base_sequence=-1),
     bw.ERROR_INVALID_RECORD),
    ("unknown-codec-5", lambda: bw.batch(bw.records(1), 1, attributes=5),
     bw.ERROR_INVALID_RECORD),
    ("magic-1", lambda: bw.batch(bw.records(1), 1, magic=1), bw.ERROR_INVALID_RECORD),
    ("gzip-stream-corrupt", corrupt_gzip, bw.ERROR_INVALID_RECORD),
    ("gzip-count-above-records",
     lambda: compressed(bw.CODEC_GZIP, bw.records(2), 3), bw.ERROR_INVALID_RECORD),
    ("zstd-offset-delta-gap",
     lambda: compressed(bw.CODEC_ZSTD, rec(0) + rec(7), 2), bw.ERROR_INVALID_RECORD),
    ("lz4-two-frames", two_lz4_frames, bw.ERROR_INVALID_RECORD),
]

# Rules the broker already enforced; kept here so every rule has its raw-wire case.
ALREADY_ENFORCED = [
    ("crc-mismatch", with_bad_crc, bw.ERROR_CORRUPT_MESSAGE),
    ("control-batch", lambda: bw.batch(bw.records(1), 1, attributes=bw.ATTR_CONTROL),
     bw.ERROR_INVALID_RECORD),
]


def setup_partition(broker):
    topic = unique_topic("validate")
    ck_create_topic(broker.bootstrap, topic, 1)
    ck_produce(ck_producer(broker.bootstrap), topic, [(b"k", b"before", 0)])
    return topic


def partition_files(broker, topic):
    return sorted(p.name for p in (broker.data_dir / f"{topic}-0").iterdir())


def assert_refused_and_usable(broker, topic, result, expected, files_before):
    """The refusal's code and message; nothing stored; the partition still serves."""
    assert result.error == expected, (
        f"expected error {expected}, got {result.error} ({result.error_message!r})")
    assert result.error_message, "a refusal carries an error_message"
    assert ck_watermarks(broker.bootstrap, topic, 0)[1] == 1, "the high watermark moved"
    assert partition_files(broker, topic) == files_before, "the refusal changed the log files"
    ck_produce(ck_producer(broker.bootstrap), topic, [(b"k", b"after", 0)])
    read = ck_read_all(broker.bootstrap, topic, [0])[0]
    assert [(r.offset, r.value) for r in read] == [(0, b"before"), (1, b"after")]
    broker.assert_alive()


@pytest.mark.parametrize("name,build,expected", CASES + ALREADY_ENFORCED,
                         ids=[c[0] for c in CASES + ALREADY_ENFORCED])
def test_invalid_batch_is_refused(broker, name, build, expected):
    topic = setup_partition(broker)
    files = partition_files(broker, topic)
    result = bw.send_produce(broker.bootstrap, topic, 0, build())
    assert_refused_and_usable(broker, topic, result, expected, files)


def test_valid_raw_batches_are_accepted(broker):
    """The builders write what clients write: the same batches, unbroken, are stored."""
    topic = setup_partition(broker)
    section = bw.records(3, b"x" * 50)
    for data in [bw.batch(section, 3)] + [compressed(c, section, 3) for c in
                                          (bw.CODEC_GZIP, bw.CODEC_LZ4, bw.CODEC_ZSTD)]:
        result = bw.send_produce(broker.bootstrap, topic, 0, data)
        assert result.error == 0, (result.error, result.error_message)
    assert len(ck_read_all(broker.bootstrap, topic, [0])[0]) == 1 + 4 * 3


def zstd_zeros(size):
    return bw.batch(bw.zstd_stream(bytes(MIB) for _ in range(size // MIB)), 1,
                    attributes=bw.CODEC_ZSTD)


def gzip_zeros(size):
    return bw.batch(bw.gzip_stream(bytes(MIB) for _ in range(size // MIB)), 1,
                    attributes=bw.CODEC_GZIP)


def zstd_huge_value():
    """One record that starts well and declares a 1 GiB value of zeros."""
    value_length = 1 << 30
    head = b"\x00" + bw.varint(0) + bw.varint(0) + bw.varint(-1) + bw.varint(value_length)
    start = bw.varint(len(head) + value_length + 1) + head
    return bw.batch(bw.zstd_stream([start] + [bytes(MIB)] * 64), 1, attributes=bw.CODEC_ZSTD)


BOMBS = [
    ("zstd-1GiB-zeros", lambda: zstd_zeros(1 << 30), bw.ERROR_INVALID_RECORD),
    ("gzip-512MiB-zeros", lambda: gzip_zeros(512 << 20), bw.ERROR_INVALID_RECORD),
    ("zstd-1GiB-value", zstd_huge_value, bw.ERROR_MESSAGE_TOO_LARGE),
]


@pytest.mark.parametrize("name,build,expected", BOMBS, ids=[b[0] for b in BOMBS])
def test_decompression_bomb_is_refused_in_bounded_memory(broker, name, build, expected):
    topic = setup_partition(broker)
    files = partition_files(broker, topic)
    data = build()
    assert len(data) < MIB, f"the bomb must fit a produce request ({len(data)} bytes)"
    peak_before = peak_rss_bytes(broker.pid)
    started = time.monotonic()
    result = bw.send_produce(broker.bootstrap, topic, 0, data)
    answered_ms = (time.monotonic() - started) * 1000  # reported, not asserted
    growth = peak_rss_bytes(broker.pid) - peak_before
    print(f"{name}: {len(data)} bytes on the wire, answered in {answered_ms:.1f} ms, "
          f"peak RSS growth {growth / MIB:.1f} MiB")
    assert growth < BOMB_RSS_GROWTH_MAX_BYTES, f"peak RSS grew by {growth / MIB:.1f} MiB"
    assert_refused_and_usable(broker, topic, result, expected, files)


# ---- producer ids -------------------------------------------------------------------------

def idempotent_batch(producer_id, epoch=0, sequence=0):
    return bw.batch(bw.records(1), 1, producer_id=producer_id, producer_epoch=epoch,
                    base_sequence=sequence)


def transactional_batch(producer_id, epoch=0, sequence=0):
    return bw.batch(bw.records(1), 1, attributes=bw.ATTR_TRANSACTIONAL,
                    producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def test_idempotent_batch_needs_an_allocated_producer_id(broker):
    topic = setup_partition(broker)
    files = partition_files(broker, topic)
    result = bw.send_produce(broker.bootstrap, topic, 0, idempotent_batch(10**12))
    assert_refused_and_usable(broker, topic, result, bw.ERROR_UNKNOWN_PRODUCER_ID, files)
    # An allocated id is accepted.
    error, producer_id, epoch = bw.init_producer_id(broker.bootstrap, None)
    assert error == 0 and producer_id >= 0
    accepted = bw.send_produce(broker.bootstrap, topic, 0, idempotent_batch(producer_id, epoch))
    assert accepted.error == 0, accepted


@pytest.mark.parametrize("producer_id", [-1, 10**12], ids=["producer-id--1", "never-allocated"])
def test_transactional_batch_needs_the_transactions_producer_id(broker, producer_id):
    topic = setup_partition(broker)
    files = partition_files(broker, topic)
    transactional_id = unique_topic("txn")
    error, _, _ = bw.init_producer_id(broker.bootstrap, transactional_id)
    assert error == 0
    result = bw.send_produce(broker.bootstrap, topic, 0, transactional_batch(producer_id),
                             transactional_id=transactional_id)
    assert_refused_and_usable(broker, topic, result, bw.ERROR_INVALID_PRODUCER_ID_MAPPING,
                              files)


def test_transactional_batch_needs_a_transactional_id(broker):
    """Kafka's KafkaApis: transactional records without a transactional id are refused with
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    topic = setup_partition(broker)
    files = partition_files(broker, topic)
    error, producer_id, epoch = bw.init_producer_id(broker.bootstrap, unique_topic("txn"))
    assert error == 0
    result = bw.send_produce(broker.bootstrap, topic, 0, transactional_batch(producer_id, epoch))
    assert_refused_and_usable(broker, topic, result,
                              bw.ERROR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, files)


@pytest.mark.parametrize("version,expected", [(8, bw.ERROR_INVALID_TXN_STATE),
                                              (10, bw.ERROR_INVALID_TXN_STATE),
                                              (11, bw.ERROR_TRANSACTION_ABORTABLE)])
def test_transactional_batch_needs_its_partition_added(broker, version, expected):
    """KIP-890 part 1: a transactional batch for a partition the producer never added with
    AddPartitionsToTxn is refused (no hanging transaction); once added it is accepted."""
    topic = setup_partition(broker)
    files = partition_files(broker, topic)
    transactional_id = unique_topic("txn")
    error, producer_id, epoch = bw.init_producer_id(broker.bootstrap, transactional_id)
    assert error == 0
    result = bw.send_produce(broker.bootstrap, topic, 0, transactional_batch(producer_id, epoch),
                             version=version, transactional_id=transactional_id)
    assert_refused_and_usable(broker, topic, result, expected, files)
    # Added: accepted, then committed so read_committed consumers move on.
    assert bw.add_partitions_to_txn(broker.bootstrap, transactional_id, producer_id, epoch,
                                    topic, 0) == 0
    accepted = bw.send_produce(broker.bootstrap, topic, 0,
                               transactional_batch(producer_id, epoch), version=version,
                               transactional_id=transactional_id)
    assert accepted.error == 0, accepted
    assert bw.end_txn(broker.bootstrap, transactional_id, producer_id, epoch, True) == 0
    # After the commit the partition is out of the transaction again.
    late = bw.send_produce(broker.bootstrap, topic, 0,
                           transactional_batch(producer_id, epoch, sequence=1),
                           version=version, transactional_id=transactional_id)
    assert late.error == expected, late
