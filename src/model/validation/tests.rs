//! One test per rule of `validate_client_records`, the stock clients' batches (every codec)
//! passing, decompression bombs refused without decoding past the limit, and the streamed
//! walk of compressed batches agreeing with the in-place walk on mutated records.

use super::*;
use crate::model::batch::{BATCH_LOG_OVERHEAD, recompute_crc};
use crate::model::compression::{Rebuild, assemble};
use std::io::Write;

const LIMITS: ValidationLimits = ValidationLimits {
    decompressed_bytes_max: 1 << 20,
};

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One record's fields, encoded exactly as given (so tests can break any of them).
#[derive(Clone)]
struct Rec {
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Added to the true body length in the length prefix.
    length_skew: i64,
}

fn rec(index: usize, value: &[u8]) -> Rec {
    Rec {
        timestamp_delta: index as i64,
        offset_delta: index as i64,
        key: Some(format!("key-{index}").into_bytes()),
        value: Some(value.to_vec()),
        headers: vec![(b"h".to_vec(), Some(index.to_string().into_bytes()))],
        length_skew: 0,
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: &Option<Vec<u8>>) {
    match bytes {
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => put_varint(out, -1),
    }
}

fn encode(records: &[Rec]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let mut body = vec![0u8];
        put_varint(&mut body, r.timestamp_delta);
        put_varint(&mut body, r.offset_delta);
        put_nullable(&mut body, &r.key);
        put_nullable(&mut body, &r.value);
        put_varint(&mut body, r.headers.len() as i64);
        for (key, value) in &r.headers {
            put_varint(&mut body, key.len() as i64);
            body.extend_from_slice(key);
            put_nullable(&mut body, value);
        }
        put_varint(&mut out, body.len() as i64 + r.length_skew);
        out.extend_from_slice(&body);
    }
    out
}

/// Header fields a test may change.
#[derive(Clone, Copy)]
struct Head {
    last_offset_delta: i32,
    count: i32,
    attributes: i16,
    producer_id: i64,
    base_sequence: i32,
    base_timestamp: i64,
}

fn head(count: usize) -> Head {
    Head {
        last_offset_delta: count as i32 - 1,
        count: count as i32,
        attributes: 0,
        producer_id: -1,
        base_sequence: -1,
        base_timestamp: 1_700_000_000_000,
    }
}

/// An uncompressed batch of `records` (a raw records section) with a valid CRC.
fn raw_batch(h: Head, records: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    let length = (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD + records.len()) as i32;
    b.extend_from_slice(&length.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&h.attributes.to_be_bytes());
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&h.base_timestamp.to_be_bytes());
    b.extend_from_slice(&h.base_timestamp.to_be_bytes());
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&h.count.to_be_bytes());
    b.extend_from_slice(records);
    recompute_crc(&mut b);
    b
}

fn batch_of(records: &[Rec]) -> Vec<u8> {
    raw_batch(head(records.len()), &encode(records))
}

/// `batch` with its records section compressed by `codec`.
fn compressed(batch: &[u8], codec: Compression) -> Vec<u8> {
    let header = RecordBatchHeader::view(batch).unwrap();
    let rebuild = Rebuild {
        codec,
        records_count: header.records_count.get(),
        max_timestamp: header.max_timestamp.get(),
    };
    assemble(header, &batch[BATCH_HEADER_BYTES..], rebuild).unwrap()
}

fn check(batch: &[u8]) -> Result<ValidatedBatch, ValidationError> {
    validate_client_records(batch, &LIMITS)
}

fn record_problem(batch: &[u8]) -> RecordProblem {
    match check(batch) {
        Err(ValidationError::Invalid(InvalidBatch::Record { problem, .. })) => problem,
        other => panic!("expected a record problem, got {other:?}"),
    }
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn valid_batches_pass_in_every_codec() {
    let records: Vec<Rec> = (0..300).map(|i| rec(i, &[b'v'; 1000])).collect();
    let plain = batch_of(&records);
    for codec in CODECS {
        let batch = if codec == Compression::None {
            plain.clone()
        } else {
            compressed(&plain, codec)
        };
        let validated = check(&batch).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        assert_eq!(validated.records, 300);
        assert_eq!(validated.total_bytes, batch.len());
        assert_eq!(validated.compression, codec);
    }
    // Tombstones, null keys, null header values, no headers, negative timestamp deltas.
    let mut odd = vec![rec(0, b"x"), rec(1, b""), rec(2, b"y")];
    odd[0].key = None;
    odd[1].value = None;
    odd[1].headers = vec![
        (b"k".to_vec(), None),
        ("ключ".as_bytes().to_vec(), Some(vec![])),
    ];
    odd[2].headers.clear();
    odd[2].timestamp_delta = -5;
    assert!(check(&batch_of(&odd)).is_ok());
}

#[test]
fn stock_client_batches_pass() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model/compression/fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "batch") {
            let batch = std::fs::read(entry.path()).unwrap();
            let validated = check(&batch).unwrap_or_else(|e| panic!("{:?}: {e}", entry.path()));
            assert_eq!(validated.records, 300);
            seen += 1;
        }
    }
    assert_eq!(seen, 8);
}

#[test]
fn framing_errors_are_corrupt() {
    let good = batch_of(&[rec(0, b"a")]);
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    assert!(matches!(
        check(&bad_crc),
        Err(ValidationError::Corrupt(BatchError::CrcMismatch { .. }))
    ));
    assert!(matches!(
        check(&good[..good.len() - 1]),
        Err(ValidationError::Corrupt(BatchError::Truncated { .. }))
    ));
    assert!(matches!(
        check(&good[..20]),
        Err(ValidationError::Corrupt(BatchError::TooShort { .. }))
    ));
    let mut bad_length = good.clone();
    bad_length[8..12].copy_from_slice(&3i32.to_be_bytes());
    assert!(matches!(
        check(&bad_length),
        Err(ValidationError::Corrupt(BatchError::BadLength { .. }))
    ));
}

#[test]
fn request_rules() {
    let good = batch_of(&[rec(0, b"a")]);
    assert_eq!(check(&[]), Err(invalid(InvalidBatch::NoBatch)));
    let mut two = good.clone();
    two.extend_from_slice(&good);
    assert_eq!(check(&two), Err(invalid(InvalidBatch::MoreThanOneBatch)));
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        check(&trailing),
        Err(invalid(InvalidBatch::MoreThanOneBatch))
    );
    let mut magic = good.clone();
    magic[16] = 1;
    assert_eq!(
        check(&magic),
        Err(invalid(InvalidBatch::Magic { magic: 1 }))
    );
}

#[test]
fn header_rules() {
    let one = encode(&[rec(0, b"a")]);
    let with = |change: fn(&mut Head)| {
        let mut h = head(1);
        change(&mut h);
        check(&raw_batch(h, &one))
    };
    assert_eq!(
        with(|h| h.attributes = 5),
        Err(invalid(InvalidBatch::Codec { codec: 5 }))
    );
    assert_eq!(
        with(|h| h.last_offset_delta = i32::MAX),
        Err(invalid(InvalidBatch::CountMismatch {
            count: 1,
            last_offset_delta: i32::MAX
        }))
    );
    assert_eq!(
        with(|h| h.last_offset_delta = -1),
        Err(invalid(InvalidBatch::OffsetRange {
            last_offset_delta: -1
        }))
    );
    assert_eq!(
        with(|h| {
            h.count = 0;
            h.last_offset_delta = 0;
        }),
        Err(invalid(InvalidBatch::Count { count: 0 }))
    );
    assert_eq!(
        with(|h| h.attributes = 0x30),
        Err(invalid(InvalidBatch::Control))
    );
    assert_eq!(
        with(|h| h.producer_id = 7),
        Err(invalid(InvalidBatch::Sequence {
            producer_id: 7,
            base_sequence: -1
        }))
    );
    let idempotent = with(|h| {
        h.producer_id = 7;
        h.base_sequence = 0;
    });
    assert!(idempotent.is_ok());
}

#[test]
fn record_count_must_match_the_records() {
    let two = encode(&[rec(0, b"a"), rec(1, b"b")]);
    // Declares 3, holds 2.
    let mut h = head(3);
    assert!(matches!(
        check(&raw_batch(h, &two)),
        Err(ValidationError::Invalid(InvalidBatch::Record {
            index: 2,
            problem: RecordProblem::Truncated
        }))
    ));
    // Declares 1, holds 2.
    h = head(1);
    assert_eq!(
        check(&raw_batch(h, &two)),
        Err(invalid(InvalidBatch::TrailingBytes { count: 1 }))
    );
}

#[test]
fn offset_deltas_must_be_0_to_n_minus_1() {
    let mut records = vec![rec(0, b"a"), rec(1, b"b")];
    records[1].offset_delta = 2;
    assert_eq!(
        record_problem(&batch_of(&records)),
        RecordProblem::OffsetDelta {
            found: 2,
            expected: 1
        }
    );
    records[1].offset_delta = 0;
    assert!(matches!(
        record_problem(&batch_of(&records)),
        RecordProblem::OffsetDelta { .. }
    ));
    records[0].offset_delta = -1;
    assert!(matches!(
        record_problem(&batch_of(&records)),
        RecordProblem::OffsetDelta { .. }
    ));
}

#[test]
fn record_lengths_and_fields() {
    let mut r = rec(0, b"value");
    r.length_skew = 1;
    assert_eq!(
        record_problem(&batch_of(&[r.clone()])),
        RecordProblem::SizeMismatch
    );
    r.length_skew = -1;
    assert_eq!(
        record_problem(&batch_of(&[r.clone()])),
        RecordProblem::SizeMismatch
    );
    let mut two = vec![rec(0, b"a"), rec(1, b"b")];
    two[0].length_skew = 1; // swallows a byte of the next record
    assert!(check(&batch_of(&two)).is_err());
    // Negative and too-small sizes.
    let mut negative = Vec::new();
    put_varint(&mut negative, -3);
    assert_eq!(
        record_problem(&raw_batch(head(1), &negative)),
        RecordProblem::Size(-3)
    );
    assert_eq!(
        record_problem(&raw_batch(head(1), &[0])),
        RecordProblem::Size(0)
    );
    // A varint longer than 5 bytes.
    let long = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(
        record_problem(&raw_batch(head(1), &long)),
        RecordProblem::Varint
    );
}

/// Replaces the bytes of record 0 after its attributes/timestamp/offset (all one byte here).
fn with_tail(tail: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8, 0, 0];
    body.extend_from_slice(tail);
    let mut records = Vec::new();
    put_varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);
    raw_batch(head(1), &records)
}

fn varints(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in values {
        put_varint(&mut out, v);
    }
    out
}

#[test]
fn key_value_and_header_fields() {
    // key -2
    assert_eq!(
        record_problem(&with_tail(&varints(&[-2, -1, 0]))),
        RecordProblem::KeyLength(-2)
    );
    // value -7
    assert_eq!(
        record_problem(&with_tail(&varints(&[-1, -7, 0]))),
        RecordProblem::ValueLength(-7)
    );
    // value longer than the record
    assert_eq!(
        record_problem(&with_tail(&varints(&[-1, 100, 0]))),
        RecordProblem::SizeMismatch
    );
    // header count -1 and one the record cannot hold
    assert_eq!(
        record_problem(&with_tail(&varints(&[-1, -1, -1]))),
        RecordProblem::HeaderCount(-1)
    );
    assert_eq!(
        record_problem(&with_tail(&varints(&[-1, -1, 1_000_000]))),
        RecordProblem::HeaderCount(1_000_000)
    );
    // header key -1, header value -2
    assert_eq!(
        record_problem(&with_tail(&varints(&[-1, -1, 1, -1, -1]))),
        RecordProblem::HeaderKeyLength(-1)
    );
    let mut tail = varints(&[-1, -1, 1, 1]);
    tail.push(b'k');
    tail.extend_from_slice(&varints(&[-2]));
    assert_eq!(
        record_problem(&with_tail(&tail)),
        RecordProblem::HeaderValueLength(-2)
    );
    // header key not UTF-8
    let mut tail = varints(&[-1, -1, 1, 2]);
    tail.extend_from_slice(&[0xc3, 0x28]);
    tail.extend_from_slice(&varints(&[-1]));
    assert_eq!(
        record_problem(&with_tail(&tail)),
        RecordProblem::HeaderKeyUtf8
    );
}

#[test]
fn timestamps_must_not_overflow() {
    let mut r = rec(0, b"a");
    r.timestamp_delta = i64::MAX;
    assert_eq!(
        record_problem(&batch_of(&[r])),
        RecordProblem::Timestamp(i64::MAX)
    );
}

#[test]
fn utf8_split_anywhere() {
    let text = "aé€😀z".as_bytes();
    for split in 0..=text.len() {
        let mut stream = Utf8Stream::default();
        assert!(stream.feed(&text[..split]) && stream.feed(&text[split..]) && stream.finish());
        for second in split..=text.len() {
            let mut stream = Utf8Stream::default();
            let ok = stream.feed(&text[..split])
                && stream.feed(&text[split..second])
                && stream.feed(&text[second..]);
            assert!(ok && stream.finish(), "{split} {second}");
        }
    }
    let mut cut = Utf8Stream::default();
    assert!(
        cut.feed(&text[..2]) && !cut.finish(),
        "a cut character is not complete"
    );
    let mut bad = Utf8Stream::default();
    assert!(!(bad.feed(&[0xe2, 0x82]) && bad.feed(&[0x28])));
}

#[test]
fn corrupt_compressed_data_is_invalid() {
    let plain = batch_of(&[rec(0, b"a"), rec(1, b"b")]);
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut batch = compressed(&plain, codec);
        let middle = BATCH_HEADER_BYTES + (batch.len() - BATCH_HEADER_BYTES) / 2;
        batch[middle] ^= 0x55;
        batch.truncate(batch.len() - 2);
        let length = (batch.len() - BATCH_LOG_OVERHEAD) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        recompute_crc(&mut batch);
        assert!(
            matches!(check(&batch), Err(ValidationError::Invalid(_))),
            "{codec:?}: {:?}",
            check(&batch)
        );
    }
    // Two LZ4 frames: Java's reader stops at the first one.
    let lz4 = compressed(&plain, Compression::Lz4);
    let frame = &lz4[BATCH_HEADER_BYTES..];
    let mut twice = lz4.clone();
    twice.extend_from_slice(frame);
    let length = (twice.len() - BATCH_LOG_OVERHEAD) as i32;
    twice[8..12].copy_from_slice(&length.to_be_bytes());
    recompute_crc(&mut twice);
    assert!(matches!(
        check(&twice),
        Err(ValidationError::Invalid(InvalidBatch::Decompression(_)))
    ));
}

/// A batch whose records section is `records` compressed with zstd (streamed in).
fn zstd_batch(h: Head, mut write: impl FnMut(&mut dyn Write)) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    write(&mut encoder);
    let body = encoder.finish().unwrap();
    let mut h = h;
    h.attributes = 4;
    raw_batch(h, &body)
}

#[test]
fn decompression_bombs_are_refused_without_decoding_them() {
    // 256 MiB of zeros: record 0 has size 0.
    let zeros = zstd_batch(head(1), |w| {
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..256 {
            w.write_all(&chunk).unwrap();
        }
    });
    assert!(zeros.len() < 64 << 10, "{}", zeros.len());
    assert_eq!(record_problem(&zeros), RecordProblem::Size(0));
    // A valid record start declaring a 1 GiB value: refused before decoding it.
    let mut prefix = vec![0u8, 0, 0];
    prefix.extend_from_slice(&varints(&[-1, 1 << 30]));
    let mut start = Vec::new();
    put_varint(&mut start, (prefix.len() + (1 << 30) + 1) as i64);
    start.extend_from_slice(&prefix);
    let huge_value = zstd_batch(head(1), |w| {
        w.write_all(&start).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..64 {
            w.write_all(&chunk).unwrap();
        }
    });
    assert_eq!(
        check(&huge_value),
        Err(ValidationError::TooLarge {
            limit: LIMITS.decompressed_bytes_max
        })
    );
    // Valid records past the limit: refused once the limit is decoded.
    let many: Vec<Rec> = (0..4096).map(|i| rec(i, &[b'z'; 512])).collect();
    let big = compressed(&batch_of(&many), Compression::Zstd);
    assert!(big.len() < LIMITS.decompressed_bytes_max);
    assert_eq!(
        check(&big),
        Err(ValidationError::TooLarge {
            limit: LIMITS.decompressed_bytes_max
        })
    );
    let roomy = ValidationLimits {
        decompressed_bytes_max: 8 << 20,
    };
    assert!(validate_client_records(&big, &roomy).is_ok());
}

/// A length mutated past the decompression limit: refused unread when streamed, found
/// short in place.
fn past_the_limit(in_place: &ValidationError, streamed: &ValidationError) -> bool {
    let short = matches!(
        in_place,
        ValidationError::Invalid(InvalidBatch::Record {
            problem: RecordProblem::Truncated | RecordProblem::SizeMismatch,
            ..
        })
    );
    short && matches!(streamed, ValidationError::TooLarge { .. })
}

/// Mutations of a records section spanning several stream chunks give the same verdict
/// whether the batch is walked in place or streamed out of a codec.
#[test]
fn streamed_walk_agrees_with_in_place_walk() {
    let records: Vec<Rec> = (0..160).map(|i| rec(i, &vec![b'q'; 700 + i * 3])).collect();
    let section = encode(&records);
    assert!(section.len() > 2 * STREAM_CHUNK_BYTES);
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut mutated = section.clone();
        for _ in 0..1 + round % 3 {
            let at = (next() as usize) % mutated.len();
            mutated[at] = next() as u8;
        }
        let plain = raw_batch(head(records.len()), &mutated);
        let in_place = check(&plain);
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let streamed = check(&compressed(&plain, codec));
            let same = match (&in_place, &streamed) {
                (Ok(a), Ok(b)) => a.records == b.records,
                (Err(a), Err(b)) => a == b || past_the_limit(a, b),
                _ => false,
            };
            assert!(
                same,
                "round {round} {codec:?}: {in_place:?} vs {streamed:?}"
            );
        }
    }
}

/// A zstd frame of a few hundred bytes whose header asks for a window larger than the limit
/// allows (found by the record_batches fuzzer): zstd skips its window check when a frame
/// fits the reader's buffer, so the validator (64 KiB chunks) accepted what the broker's
/// own reader (small reads) refused. Both now judge the header, whatever the buffer.
#[test]
fn zstd_window_is_judged_by_the_frame_header_not_the_reader_buffer() {
    let records: Vec<Rec> = (0..4).map(|i| rec(i, &[b'w'; 100])).collect();
    let section = encode(&records);
    let frame = zstd::bulk::compress(&section, 3).unwrap();
    // zstd writes a single-segment frame with a two-byte content size (256..65791 bytes)
    // and no window descriptor; clear the single-segment flag and add a window descriptor,
    // keeping the content size and the blocks.
    let descriptor = frame[4];
    assert_eq!(
        descriptor & 0xe0,
        0x60,
        "single segment, two-byte content size"
    );
    let with_window = |window_descriptor: u8| {
        let mut out = frame[..4].to_vec();
        out.push(descriptor & !0x20);
        out.push(window_descriptor);
        out.extend_from_slice(&frame[5..]);
        let mut h = head(records.len());
        h.attributes = 4;
        raw_batch(h, &out)
    };
    // Window 2^(10+12) = 4 MiB, over the 2 MiB a 1 MiB limit allows.
    let too_wide = with_window(12 << 3);
    let verdict = check(&too_wide);
    assert!(
        matches!(
            verdict,
            Err(ValidationError::Invalid(InvalidBatch::Decompression(ref reason)))
                if reason.contains("window")
        ),
        "{verdict:?}"
    );
    assert!(compression::batch_records(&too_wide, LIMITS.decompressed_bytes_max).is_err());
    // Window 1 MiB: both accept and read the same records.
    let fits = with_window(10 << 3);
    assert!(check(&fits).is_ok(), "{:?}", check(&fits));
    let read = compression::batch_records(&fits, LIMITS.decompressed_bytes_max).unwrap();
    assert_eq!(read, section);
}
