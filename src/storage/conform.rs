//! Topic rules applied to a produce request's records before they are validated and
//! appended: on compacted topics every record needs a key (Kafka answers INVALID_RECORD),
//! and with `compression.type` other than `producer` every batch is re-encoded in that
//! codec (broker-side compression; `uncompressed` decompresses).
//!
//! Owns: `reencoded`. May import: `crate::model::compression`, storage types. Pure CPU, no
//! I/O; runs inside `append` on the shard owning the partition, before admission.
//! Invariants: the output holds the same batches in the same order with the same records;
//! only the codec bits, batchLength, CRC (and nothing else) of a re-encoded batch differ;
//! control batches pass unchanged; a request that needs no change is returned as is (no
//! copy); a batch is CRC-checked before it is decompressed; decompression is bounded by
//! `decompressed_batch_bytes_max`.

use super::log::LogConfig;
use super::{RecordError, StorageError};
use crate::model::batch::{self, Compression, RecordBatchHeader};
use crate::model::compression::{self, RawRecord};

/// Applies the topic's key and codec rules to `records` (see the module doc): the
/// re-encoded records, or `None` when every batch stays as it is (the caller keeps its own
/// bytes, owned or shared, uncopied).
pub(crate) fn reencoded(
    records: &[u8],
    config: &LogConfig,
) -> Result<Option<Vec<u8>>, StorageError> {
    let keys_required = config.cleanup_policy.compact;
    if !keys_required && config.compression_type.is_none() {
        return Ok(None);
    }
    let max = usize::try_from(config.decompressed_batch_bytes_max).unwrap_or(usize::MAX);
    let mut out: Option<Vec<u8>> = None;
    let mut position = 0usize;
    while position < records.len() {
        let rest = &records[position..];
        let total = batch::validate_batch(rest)?;
        if total as u64 > config.batch_bytes_max {
            return Err(StorageError::BatchTooLarge {
                size: total,
                max: config.batch_bytes_max,
            });
        }
        let batch = &rest[..total];
        let header = RecordBatchHeader::view(batch)?;
        let codec = header.compression()?;
        let target = config.compression_type.filter(|&target| target != codec);
        let reencoded = if header.is_control() || (target.is_none() && !keys_required) {
            None
        } else {
            conform_batch(batch, header, codec, target, keys_required, max)?
        };
        match (reencoded, &mut out) {
            (Some(bytes), Some(out)) => out.extend_from_slice(&bytes),
            (Some(bytes), None) => {
                let mut copy = Vec::with_capacity(records.len() + bytes.len());
                copy.extend_from_slice(&records[..position]);
                copy.extend_from_slice(&bytes);
                out = Some(copy);
            }
            (None, Some(out)) => out.extend_from_slice(batch),
            (None, None) => {}
        }
        position += total;
    }
    Ok(out)
}

/// Checks keys and re-encodes one valid batch; `None` if it stays as it is.
fn conform_batch(
    batch: &[u8],
    header: &RecordBatchHeader,
    codec: Compression,
    target: Option<Compression>,
    keys_required: bool,
    max: usize,
) -> Result<Option<Vec<u8>>, StorageError> {
    let body = &batch[batch::BATCH_HEADER_BYTES..];
    let plain;
    let records_bytes: &[u8] = if codec == Compression::None {
        body
    } else {
        plain = compression::decompress(codec, body, max)?;
        &plain
    };
    let records = compression::parse_records(records_bytes, header.records_count.get())?;
    if keys_required {
        check_keys(header, &records)?;
    }
    let Some(target) = target else {
        return Ok(None);
    };
    let rebuild = compression::Rebuild {
        codec: target,
        records_count: header.records_count.get(),
        max_timestamp: header.max_timestamp.get(),
    };
    Ok(Some(compression::assemble(header, records_bytes, rebuild)?))
}

/// Kafka's message for a keyless record on a compacted topic (`LogValidator.validateKey`).
const KEYLESS_ON_COMPACTED: &str = "Compacted topic cannot accept message without key";

/// Compacted topics: every record has a key and offsets compaction can trust.
fn check_keys(header: &RecordBatchHeader, records: &[RawRecord<'_>]) -> Result<(), StorageError> {
    let keyless: Vec<RecordError> = records
        .iter()
        .enumerate()
        .filter(|(_, record)| record.key.is_none())
        .map(|(index, _)| RecordError {
            batch_index: i32::try_from(index).unwrap_or(i32::MAX),
            message: KEYLESS_ON_COMPACTED.to_string(),
        })
        .collect();
    if let Some(first) = keyless.first() {
        return Err(StorageError::InvalidRecord {
            reason: format!(
                "One or more records have been rejected due to {} record errors in total: \
                 {KEYLESS_ON_COMPACTED} (first: record {} of the batch)",
                keyless.len(),
                first.batch_index
            ),
            record_errors: keyless,
        });
    }
    if !compression::offsets_consistent(header, records) {
        return Err(StorageError::InvalidRecord {
            reason: "record offset deltas are not increasing within lastOffsetDelta".to_string(),
            record_errors: Vec::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records::{NewRecord, encode_batch};
    use crate::storage::CleanupPolicy;
    use crate::storage::log::LogConfig;
    use bytes::Bytes;

    fn config(compact: bool, codec: Option<Compression>) -> LogConfig {
        let mut config = LogConfig::from_storage(&crate::config::StorageConfig::default());
        config.cleanup_policy = CleanupPolicy {
            delete: !compact,
            compact,
        };
        config.compression_type = codec;
        config
    }

    /// The records as stored: re-encoded, or the same bytes.
    fn conform(records: Bytes, config: &LogConfig) -> Result<Bytes, StorageError> {
        Ok(reencoded(&records, config)?.map_or(records, Bytes::from))
    }

    fn keyed(keys: &[Option<&str>]) -> Vec<u8> {
        let records: Vec<NewRecord<'_>> = keys
            .iter()
            .map(|k| NewRecord {
                key: k.map(str::as_bytes),
                value: Some(b"value value value value"),
            })
            .collect();
        encode_batch(&records, 7)
    }

    #[test]
    fn default_topics_pass_through_without_copy() {
        let records = Bytes::from(keyed(&[None]));
        let out = conform(records.clone(), &config(false, None)).unwrap();
        assert_eq!(out.as_ptr(), records.as_ptr());
    }

    #[test]
    fn compacted_topics_reject_keyless_records() {
        let good = Bytes::from(keyed(&[Some("a"), Some("b")]));
        let out = conform(good.clone(), &config(true, None)).unwrap();
        assert_eq!(out.as_ptr(), good.as_ptr(), "keyed batch unchanged");
        let mut two = keyed(&[Some("a")]);
        two.extend_from_slice(&keyed(&[Some("a"), None]));
        assert!(matches!(
            conform(Bytes::from(two), &config(true, None)),
            Err(StorageError::InvalidRecord { .. })
        ));
        // Compressed batches are checked too.
        let gzip = compression::recompress_batch(&keyed(&[None]), Compression::Gzip, 1 << 20)
            .unwrap()
            .unwrap();
        assert!(matches!(
            conform(Bytes::from(gzip), &config(true, None)),
            Err(StorageError::InvalidRecord { .. })
        ));
    }

    #[test]
    fn recompresses_to_the_topic_codec() {
        let plain = keyed(&[Some("a"), Some("b"), Some("c")]);
        let gzip = compression::recompress_batch(&plain, Compression::Gzip, 1 << 20)
            .unwrap()
            .unwrap();
        let mut request = gzip.clone();
        request.extend_from_slice(&plain);
        let out = conform(
            Bytes::from(request),
            &config(false, Some(Compression::Zstd)),
        )
        .unwrap();
        let batches: Vec<_> = batch::batch_positions(&out).collect();
        assert_eq!(batches.len(), 2);
        for (at, header) in batches {
            assert_eq!(header.compression(), Ok(Compression::Zstd));
            let records = compression::batch_records(&out[at..], 1 << 20).unwrap();
            assert_eq!(records, &plain[batch::BATCH_HEADER_BYTES..]);
        }
        // Already in the topic's codec: untouched.
        let zstd = Bytes::from(out.to_vec());
        let again = conform(zstd.clone(), &config(false, Some(Compression::Zstd))).unwrap();
        assert_eq!(again.as_ptr(), zstd.as_ptr());
        // `uncompressed` decompresses.
        let out = conform(Bytes::from(gzip), &config(false, Some(Compression::None))).unwrap();
        assert_eq!(&out[..], &plain[..]);
    }

    #[test]
    fn corrupt_input_is_rejected_before_decompression() {
        let mut gzip =
            compression::recompress_batch(&keyed(&[Some("a")]), Compression::Gzip, 1 << 20)
                .unwrap()
                .unwrap();
        let last = gzip.len() - 1;
        gzip[last] ^= 1;
        assert!(matches!(
            conform(Bytes::from(gzip), &config(false, Some(Compression::Lz4))),
            Err(StorageError::InvalidBatch(_))
        ));
    }
}
