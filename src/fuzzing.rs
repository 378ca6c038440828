//! Entry points for the fuzz targets in `tests/fuzz` and for the regression test that
//! replays every saved fuzz input in `make test`. Each must return normally (never panic,
//! never abort) for any input.

use crate::protocol::codec::{RequestEnvelope, decode_produce_request, decode_request};
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
        if row.key == kafka_protocol::messages::ApiKey::Produce {
            // As connections decode it: records owned, split off the frame.
            let _ = decode_produce_request(bytes::BytesMut::from(data));
        }
        let _ = decode_request(row.key, frame);
    }
}

/// Record-batch parsing: validation, iteration, record decoding and the recovery scanner;
/// then the input as a client's batch (see `client_batch`).
pub fn record_batches(data: &[u8]) {
    let _ = crate::model::batch::validate_batch(data);
    for (_, header) in crate::model::batch::batch_positions(data) {
        let _ = header.compression();
        let _ = header.next_offset();
    }
    let _ = crate::model::records::read_records(data);
    let valid = crate::storage::valid_segment_prefix(data);
    assert!(valid <= data.len());
    client_batch(data);
}

/// Decompression limit of the client-batch checks (small, so that bombs are cheap).
const CLIENT_DECOMPRESSED_MAX: usize = 1 << 20;

/// The produce-path validator's promise: a batch it accepts is read by the broker's own
/// readers and by an independent decoder of the v2 format (kafka-protocol's
/// `RecordBatchDecoder`, the Rust clients' parser) to exactly its declared records, at
/// offsets 0..n-1. The input is tried as sent and with its batchLength and CRC fixed up, so
/// that the fuzzer explores records rather than checksums.
pub fn client_batch(data: &[u8]) {
    use crate::model::batch::{BATCH_HEADER_BYTES, recompute_crc};
    use crate::model::validation::{ValidationLimits, validate_client_records};
    let limits = ValidationLimits {
        decompressed_bytes_max: CLIENT_DECOMPRESSED_MAX,
    };
    if let Ok(validated) = validate_client_records(data, &limits) {
        check_accepted(data, validated.records);
    }
    let (Some(length), true) = (
        i32::try_from(data.len().saturating_sub(12)).ok(),
        data.len() >= BATCH_HEADER_BYTES,
    ) else {
        return;
    };
    let mut fixed = data.to_vec();
    fixed[8..12].copy_from_slice(&length.to_be_bytes());
    recompute_crc(&mut fixed);
    if let Ok(validated) = validate_client_records(&fixed, &limits) {
        check_accepted(&fixed, validated.records);
    }
}

/// Reads an accepted batch, stamped at offset 0 as the broker stores it, three ways.
fn check_accepted(batch: &[u8], count: i32) {
    use crate::model::batch::{RecordBatchHeader, stamp_batch};
    use crate::model::compression;
    let mut stored = batch.to_vec();
    stamp_batch(&mut stored, 0, 0);
    let declared = usize::try_from(count).unwrap_or(0);
    assert!(declared > 0, "an accepted batch holds records");
    // The recovery scanner takes it whole.
    assert_eq!(crate::storage::valid_segment_prefix(&stored), stored.len());
    // The broker's record parser (compaction, recompression, compacted-topic keys).
    let header = RecordBatchHeader::view(&stored).unwrap_or_else(|e| panic!("{e}"));
    let records = compression::batch_records(&stored, CLIENT_DECOMPRESSED_MAX)
        .unwrap_or_else(|e| panic!("accepted batch, broker cannot decompress it: {e}"));
    let parsed = compression::parse_records(&records, count)
        .unwrap_or_else(|e| panic!("accepted batch, broker cannot parse it: {e}"));
    assert_eq!(parsed.len(), declared);
    assert!(
        parsed
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset_delta as usize == i)
    );
    assert!(compression::offsets_consistent(header, &parsed));
    if header.compression() == Ok(crate::model::Compression::None) {
        let read = crate::model::records::read_records(&stored)
            .unwrap_or_else(|e| panic!("accepted batch, fetch-side reader fails: {e}"));
        assert_eq!(read.len(), declared);
    }
    // An independent parse of the v2 format (codecs: the broker's, bounded).
    let mut buffer = bytes::Bytes::from(stored);
    let decoded = kafka_protocol::records::RecordBatchDecoder::decode_with_custom_compression(
        &mut buffer,
        Some(independent_decompress),
    )
    .unwrap_or_else(|e| panic!("accepted batch, kafka-protocol cannot decode it: {e}"));
    assert_eq!(decoded.records.len(), declared);
    for (index, record) in decoded.records.iter().enumerate() {
        assert_eq!(record.offset, index as i64);
    }
    assert!(
        buffer.is_empty(),
        "kafka-protocol left bytes after the batch"
    );
}

fn independent_decompress(
    buffer: &mut bytes::Bytes,
    codec: kafka_protocol::records::Compression,
) -> anyhow::Result<bytes::Bytes> {
    use crate::model::Compression;
    use kafka_protocol::records::Compression as Wire;
    let codec = match codec {
        Wire::None => return Ok(buffer.clone()),
        Wire::Gzip => Compression::Gzip,
        Wire::Snappy => Compression::Snappy,
        Wire::Lz4 => Compression::Lz4,
        Wire::Zstd => Compression::Zstd,
    };
    let plain = crate::model::compression::decompress(codec, buffer, CLIENT_DECOMPRESSED_MAX)?;
    Ok(bytes::Bytes::from(plain))
}

/// The codecs and the record parser: the input as a client's batch (`client_batch`); the
/// first byte picks a codec for the rest (raw compressed bytes); then the whole input is
/// treated as a batch to decode, recompress to every codec and parse, as broker-side
/// recompression and compaction do.
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
    client_batch(data);
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

/// SASL logins: the first byte picks the mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
/// the rest is the client's tokens separated by newlines, fed in order to the server side
/// against a store with one user (`fuzz`/`fuzz-secret`). A login may fail, never panic.
pub fn sasl_exchange(data: &[u8]) {
    use crate::security::sasl::{
        CredentialSet, CredentialStore, SaslExchange, SaslMechanism, ScramCredential,
        ScramMechanism,
    };
    use std::sync::OnceLock;
    const TOKEN_BYTES_MAX: usize = 8192;
    static STORE: OnceLock<std::sync::Arc<CredentialStore>> = OnceLock::new();
    let store = STORE.get_or_init(|| {
        let mut set = CredentialSet::default();
        for mechanism in ScramMechanism::ALL {
            if let Ok(credential) = ScramCredential::from_password(mechanism, "fuzz-secret", 4096) {
                set.insert("fuzz", mechanism, credential);
            }
        }
        CredentialStore::new(set)
    });
    let Some((&selector, tokens)) = data.split_first() else {
        return;
    };
    let mechanism = match selector % 3 {
        0 => SaslMechanism::Plain,
        1 => SaslMechanism::Scram(ScramMechanism::Sha256),
        _ => SaslMechanism::Scram(ScramMechanism::Sha512),
    };
    let mut exchange = SaslExchange::start(mechanism);
    for token in tokens.split(|byte| *byte == b'\n') {
        if exchange.step(token, store, TOKEN_BYTES_MAX).is_err() {
            return;
        }
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
        let targets: [Target; 5] = [
            ("request_frame", super::request_frame),
            ("sasl_exchange", super::sasl_exchange),
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

    /// The seeds that are stock clients' batches (every codec) pass the validator, so the
    /// fuzzer starts from accepted batches and `check_accepted` runs on them.
    #[test]
    fn client_seeds_are_accepted_and_read_back() {
        use crate::model::validation::{ValidationLimits, validate_client_records};
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
        let limits = ValidationLimits {
            decompressed_bytes_max: super::CLIENT_DECOMPRESSED_MAX,
        };
        let mut accepted = 0;
        for target in ["record_batches", "compressed_batches"] {
            for entry in std::fs::read_dir(root.join(target)).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let data = std::fs::read(entry.path()).unwrap();
                let client = name.starts_with("client-")
                    || name.starts_with("librdkafka-")
                    || name.starts_with("kafka-python-");
                if client {
                    let validated = validate_client_records(&data, &limits);
                    assert!(validated.is_ok(), "{name}: {validated:?}");
                    super::check_accepted(&data, validated.unwrap().records);
                    accepted += 1;
                }
            }
        }
        assert_eq!(accepted, 11);
    }
}
