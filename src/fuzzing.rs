//! Entry points for the fuzz targets in `tests/fuzz` and for the regression test that
//! replays every saved fuzz input in `make test`. Each must return normally (never panic,
//! never abort) for any input.

use crate::protocol::codec::{RequestEnvelope, decode_request};
use crate::server::api_table;

/// A request frame body (without its size prefix) as a connection would dispatch it.
pub fn request_frame(data: &[u8]) {
    let frame = bytes::Bytes::copy_from_slice(data);
    let Ok(envelope) = RequestEnvelope::peek(&frame) else {
        return;
    };
    let Some(row) = api_table::find(envelope.api_key) else {
        return;
    };
    if (row.min_version..=row.max_version).contains(&envelope.api_version) {
        let _ = decode_request(row.key, frame);
    }
}

/// Record-batch parsing: validation, iteration, record decoding and the recovery scanner.
pub fn record_batches(data: &[u8]) {
    let _ = crate::model::batch::validate_batch(data);
    for (_, header) in crate::model::batch::batch_positions(data) {
        let _ = header.compression();
        let _ = header.next_offset();
    }
    let _ = crate::model::records::read_records(data);
    let valid = crate::storage::valid_segment_prefix(data);
    assert!(valid <= data.len());
}

/// The codecs and the record parser: the first byte picks a codec for the rest (raw
/// compressed bytes); then the whole input is treated as a batch to decode, recompress to
/// every codec and parse, as broker-side recompression and compaction do.
pub fn compressed_batches(data: &[u8]) {
    use crate::model::batch::Compression;
    use crate::model::compression;
    const LIMIT: usize = 1 << 20;
    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let codec = CODECS[usize::from(data.first().copied().unwrap_or(0)) % CODECS.len()];
    if let Ok(records) = compression::decompress(codec, data.get(1..).unwrap_or_default(), LIMIT) {
        assert!(records.len() <= LIMIT);
        let _ = compression::parse_records(&records, 3);
    }
    if let Ok(records) = compression::batch_records(data, LIMIT) {
        if let Ok(header) = crate::model::RecordBatchHeader::view(data) {
            let _ = compression::parse_records(&records, header.records_count.get());
        }
        for codec in CODECS {
            if let Ok(Some(rebuilt)) = compression::recompress_batch(data, codec, LIMIT) {
                assert!(crate::model::batch::validate_batch(&rebuilt).is_ok());
            }
        }
    }
}

/// Internal-topic records: `__consumer_offsets` and `__transaction_state` keys and values.
pub fn internal_records(data: &[u8]) {
    let split = data
        .first()
        .map_or(0, |b| *b as usize)
        .min(data.len().saturating_sub(1));
    let (key, value) = data
        .get(1..)
        .unwrap_or_default()
        .split_at(split.min(data.len().saturating_sub(1)));
    let _ = crate::group::records::decode(key, Some(value));
    let _ = crate::group::records::decode(key, None);
    if let Ok(id) = crate::txn::records::decode_key(key) {
        let _ = crate::txn::records::decode_value(&id, value);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Replays every saved input (seed corpus and past crashes) through its target.
    #[test]
    fn saved_fuzz_inputs_do_not_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 4] = [
            ("request_frame", super::request_frame),
            ("record_batches", super::record_batches),
            ("internal_records", super::internal_records),
            ("compressed_batches", super::compressed_batches),
        ];
        let mut replayed = 0;
        for (name, target) in targets {
            for kind in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(kind).join(name)) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let data = std::fs::read(entry.path()).unwrap();
                    target(&data);
                    replayed += 1;
                }
            }
        }
        assert!(replayed > 0, "no saved fuzz inputs found under tests/fuzz");
    }
}
