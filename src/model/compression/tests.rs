//! Codec round trips against batches produced by stock clients (librdkafka via
//! confluent-kafka, kafka-python; see `fixtures/generate.py`), and hostile inputs: a codec
//! fed garbage or a decompression bomb returns an error, never panics or over-allocates.

use super::*;
use crate::model::batch::validate_batch;

const RECORDS: usize = 300;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/model/compression/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixtures() -> Vec<(String, Compression, Vec<u8>)> {
    let codecs = [
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    let mut out = Vec::new();
    for client in ["librdkafka", "kafka-python"] {
        for (name, codec) in codecs {
            let file = format!("{client}-{name}.batch");
            out.push((file.clone(), codec, fixture(&file)));
        }
    }
    out
}

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// The records every fixture holds (see generate.py).
fn check_records(name: &str, header: &RecordBatchHeader, records: &[RawRecord<'_>]) {
    assert_eq!(records.len(), RECORDS, "{name}");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.offset_delta, i as i32, "{name} record {i}");
        let key = format!("key-{}", i % 50);
        assert_eq!(record.key, Some(key.as_bytes()), "{name} record {i}");
        if i == 7 {
            assert_eq!(record.value, None, "{name}: record 7 is a tombstone");
        } else {
            let value = format!("value-{i}-{}", "abcdefgh".repeat(40));
            assert_eq!(record.value, Some(value.as_bytes()), "{name} record {i}");
        }
        // The header `h` = i is the record's tail: 1 header, key len 1 "h", value len, value.
        let digits = i.to_string();
        assert!(
            record.bytes.ends_with(digits.as_bytes()),
            "{name} record {i}"
        );
    }
    assert!(offsets_consistent(header, records), "{name}");
}

#[test]
fn client_fixtures_decode() {
    for (name, codec, batch) in fixtures() {
        assert_eq!(validate_batch(&batch), Ok(batch.len()), "{name}");
        let header = RecordBatchHeader::view(&batch).unwrap();
        assert_eq!(header.compression(), Ok(codec), "{name}");
        let records = batch_records(&batch, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
        let parsed = parse_records(&records, header.records_count.get()).unwrap();
        check_records(&name, header, &parsed);
    }
}

#[test]
fn client_fixtures_recompress_to_every_codec() {
    for (name, _, batch) in fixtures() {
        let source = RecordBatchHeader::view(&batch).unwrap();
        let original = batch_records(&batch, 1 << 20).unwrap();
        for target in ALL {
            let rebuilt = match recompress_batch(&batch, target, 1 << 20).unwrap() {
                Some(rebuilt) => rebuilt,
                None => {
                    assert_eq!(source.compression(), Ok(target), "{name}");
                    continue;
                }
            };
            assert_eq!(
                validate_batch(&rebuilt),
                Ok(rebuilt.len()),
                "{name} -> {target:?}"
            );
            let header = RecordBatchHeader::view(&rebuilt).unwrap();
            assert_eq!(header.compression(), Ok(target));
            for (a, b) in [
                (header.base_offset(), source.base_offset()),
                (header.producer_id.get(), source.producer_id.get()),
                (header.base_timestamp.get(), source.base_timestamp.get()),
                (header.max_timestamp.get(), source.max_timestamp.get()),
            ] {
                assert_eq!(a, b, "{name} -> {target:?}");
            }
            assert_eq!(header.producer_epoch.get(), source.producer_epoch.get());
            assert_eq!(header.base_sequence.get(), source.base_sequence.get());
            assert_eq!(
                header.last_offset_delta.get(),
                source.last_offset_delta.get()
            );
            assert_eq!(header.records_count.get(), source.records_count.get());
            assert_eq!(
                header.attributes.get() & !0x07,
                source.attributes.get() & !0x07
            );
            let records = batch_records(&rebuilt, 1 << 20).unwrap();
            assert_eq!(records, original, "{name} -> {target:?}: records changed");
            let parsed = parse_records(&records, header.records_count.get()).unwrap();
            check_records(&name, header, &parsed);
        }
    }
}

#[test]
fn output_framings_are_kafkas() {
    let input = b"kafka records ".repeat(10_000);
    let snappy = compress(Compression::Snappy, &input).unwrap();
    assert_eq!(&snappy[..8], &XERIAL_MAGIC, "xerial magic");
    assert_eq!(&snappy[8..16], &[0, 0, 0, 1, 0, 0, 0, 1], "xerial versions");
    let lz4 = compress(Compression::Lz4, &input).unwrap();
    assert_eq!(&lz4[..4], &0x184D_2204u32.to_le_bytes(), "lz4 frame magic");
    assert_eq!(lz4[4] & 0xE0, 0x60, "lz4 version 01, independent blocks");
    assert_eq!(lz4[5], 0x40, "lz4 64 KiB blocks");
    let gzip = compress(Compression::Gzip, &input).unwrap();
    assert_eq!(&gzip[..2], &[0x1f, 0x8b], "gzip magic");
    let zstd = compress(Compression::Zstd, &input).unwrap();
    assert_eq!(&zstd[..4], &0xFD2F_B528u32.to_le_bytes(), "zstd magic");
    for codec in ALL {
        let compressed = compress(codec, &input).unwrap();
        assert_eq!(decompress(codec, &compressed, input.len()).unwrap(), input);
        assert_eq!(
            decompress(codec, &compressed, input.len() - 1),
            Err(CompressionError::TooLarge {
                limit: input.len() - 1
            }),
            "{codec:?}"
        );
    }
}

#[test]
fn raw_snappy_is_accepted() {
    let input = b"raw snappy as librdkafka may send it ".repeat(100);
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    assert_eq!(
        decompress(Compression::Snappy, &raw, 1 << 20).unwrap(),
        input
    );
}

#[test]
fn bombs_stop_at_the_limit() {
    let zeros = vec![0u8; 8 << 20];
    for codec in ALL {
        let compressed = compress(codec, &zeros).unwrap();
        assert_eq!(
            decompress(codec, &compressed, 1 << 20),
            Err(CompressionError::TooLarge { limit: 1 << 20 }),
            "{codec:?}"
        );
    }
    // A raw snappy block declaring 4 GiB: refused before allocating.
    let mut declared = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    declared.extend_from_slice(&[0u8; 16]);
    assert!(matches!(
        decompress(Compression::Snappy, &declared, 1 << 20),
        Err(CompressionError::TooLarge { .. } | CompressionError::Corrupt { .. })
    ));
    // xerial block with a negative or oversized length.
    for length in [-1i32, i32::MAX] {
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(b"abc");
        assert!(matches!(
            decompress(Compression::Snappy, &framed, 1 << 20),
            Err(CompressionError::Corrupt { .. })
        ));
    }
}

/// Bit flips and truncations of every fixture: errors, never panics.
#[test]
fn damaged_input_is_an_error() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, codec, batch) in fixtures() {
        let body = &batch[BATCH_HEADER_BYTES..];
        for cut in [0, 1, 5, body.len() / 2, body.len() - 1] {
            let _ = decompress(codec, &body[..cut], 1 << 20);
        }
        for _ in 0..200 {
            let mut damaged = body.to_vec();
            let flips = 1 + next() % 4;
            for _ in 0..flips {
                let at = (next() % damaged.len() as u64) as usize;
                damaged[at] ^= 1 << (next() % 8);
            }
            if let Ok(records) = decompress(codec, &damaged, 1 << 20) {
                // Whatever came out parses or fails cleanly.
                let _ = parse_records(&records, RECORDS as i32);
            }
        }
        let _ = name;
    }
    for len in 0..64usize {
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = parse_records(&garbage, 3);
        for codec in ALL {
            let _ = decompress(codec, &garbage, 1 << 16);
        }
    }
}

#[test]
fn malformed_records_are_errors() {
    let batch = fixture("librdkafka-gzip.batch");
    let header = RecordBatchHeader::view(&batch).unwrap();
    let records = batch_records(&batch, 1 << 20).unwrap();
    assert!(matches!(
        parse_records(&records, header.records_count.get() + 1),
        Err(CompressionError::CountMismatch { .. })
    ));
    assert!(matches!(
        parse_records(&records, header.records_count.get() - 1),
        Err(CompressionError::CountMismatch { .. })
    ));
    assert!(matches!(
        parse_records(&records[..records.len() - 1], header.records_count.get()),
        Err(CompressionError::MalformedRecord { .. })
    ));
    assert!(parse_records(&records, -1).is_err());
}
