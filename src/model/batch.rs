//! A zero-copy view of the Kafka v2 record-batch header (magic 2), with CRC-32C checks.
//!
//! Layout (big endian), see the Kafka protocol guide, "Record Batch":
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32 | records...
//!
//! The CRC covers everything from `attributes` to the end of the batch, so the broker may
//! rewrite `baseOffset` and `partitionLeaderEpoch` without recomputing it.

use thiserror::Error;
use zerocopy::byteorder::{BigEndian, I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the fixed v2 batch header, up to and including the records count.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength themselves.
pub const BATCH_LOG_OVERHEAD: usize = 12;
/// Offset of the first CRC-covered byte (`attributes`).
pub const CRC_COVERED_FROM: usize = 21;
pub const MAGIC_V2: i8 = 2;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordBatchHeader {
    pub base_offset: I64<BigEndian>,
    pub batch_length: I32<BigEndian>,
    pub partition_leader_epoch: I32<BigEndian>,
    pub magic: i8,
    pub crc: U32<BigEndian>,
    pub attributes: I16<BigEndian>,
    pub last_offset_delta: I32<BigEndian>,
    pub base_timestamp: I64<BigEndian>,
    pub max_timestamp: I64<BigEndian>,
    pub producer_id: I64<BigEndian>,
    pub producer_epoch: I16<BigEndian>,
    pub base_sequence: I32<BigEndian>,
    pub records_count: I32<BigEndian>,
}

const _: () = assert!(std::mem::size_of::<RecordBatchHeader>() == BATCH_HEADER_BYTES);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch shorter than its header: {available} bytes")]
    TooShort { available: usize },
    #[error("batch length {batch_length} is invalid")]
    BadLength { batch_length: i32 },
    #[error("batch declares {needed} bytes but only {available} are present")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {magic} (only v2 is supported)")]
    UnsupportedMagic { magic: i8 },
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid compression codec {codec}")]
    BadCompression { codec: i16 },
    #[error("lastOffsetDelta {last_offset_delta} is negative")]
    BadOffsetDelta { last_offset_delta: i32 },
}

impl RecordBatchHeader {
    /// Views the header at the start of `bytes` (no length or CRC checks).
    pub fn view(bytes: &[u8]) -> Result<&RecordBatchHeader, BatchError> {
        RecordBatchHeader::ref_from_prefix(bytes)
            .map(|(header, _)| header)
            .map_err(|_| BatchError::TooShort {
                available: bytes.len(),
            })
    }

    /// Total size of the batch on the wire and on disk, including offset and length.
    pub fn total_bytes(&self) -> Result<usize, BatchError> {
        let batch_length = self.batch_length.get();
        let minimum = (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD) as i32;
        if batch_length < minimum {
            return Err(BatchError::BadLength { batch_length });
        }
        Ok(batch_length as usize + BATCH_LOG_OVERHEAD)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset.get()
    }

    /// Saturates instead of overflowing: `baseOffset` is not covered by the CRC, so a
    /// corrupt one must not wrap around or panic.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .get()
            .saturating_add(i64::from(self.last_offset_delta.get()))
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes.get() & ATTR_COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::BadCompression { codec }),
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes.get() & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes.get() & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes.get() & ATTR_CONTROL != 0
    }

    /// True when the producer asked for idempotence (producerId >= 0).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id.get() >= 0
    }
}

/// Checks one complete batch at the start of `bytes`: header, declared length, magic,
/// compression codec, offset delta and CRC-32C. Returns the batch's total size.
pub fn validate_batch(bytes: &[u8]) -> Result<usize, BatchError> {
    let header = RecordBatchHeader::view(bytes)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    let total = header.total_bytes()?;
    if total > bytes.len() {
        return Err(BatchError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    header.compression()?;
    let last_offset_delta = header.last_offset_delta.get();
    if last_offset_delta < 0 {
        return Err(BatchError::BadOffsetDelta { last_offset_delta });
    }
    let stored = header.crc.get();
    let computed = crc32c::crc32c(&bytes[CRC_COVERED_FROM..total]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(total)
}

/// Rewrites the fields the broker owns on append. The CRC stays valid because neither
/// field is covered by it.
pub fn stamp_batch(bytes: &mut [u8], base_offset: i64, partition_leader_epoch: i32) {
    assert!(bytes.len() >= BATCH_HEADER_BYTES, "stamp on a short batch");
    bytes[0..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[12..16].copy_from_slice(&partition_leader_epoch.to_be_bytes());
}

/// Sets LogAppendTime: maxTimestamp := `append_time_ms` and the timestamp-type attribute,
/// then recomputes the CRC (both fields are CRC-covered).
pub fn stamp_log_append_time(bytes: &mut [u8], append_time_ms: i64) -> Result<(), BatchError> {
    let total = validate_batch(bytes)?;
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | ATTR_TIMESTAMP_TYPE;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    bytes[35..43].copy_from_slice(&append_time_ms.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[CRC_COVERED_FROM..total]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Recomputes the CRC-32C of a complete batch (after a CRC-covered field was rewritten).
pub fn recompute_crc(bytes: &mut [u8]) {
    if bytes.len() >= BATCH_HEADER_BYTES {
        let crc = crc32c::crc32c(&bytes[CRC_COVERED_FROM..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Iterates over the complete batches in a records blob, yielding `(position, header)`.
/// Stops at the first incomplete batch; it does not check CRCs.
pub fn batch_positions(bytes: &[u8]) -> impl Iterator<Item = (usize, &RecordBatchHeader)> + '_ {
    let mut position = 0usize;
    std::iter::from_fn(move || {
        let rest = bytes.get(position..)?;
        let header = RecordBatchHeader::view(rest).ok()?;
        let total = header.total_bytes().ok()?;
        if total > rest.len() {
            return None;
        }
        let here = position;
        position += total;
        Some((here, header))
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builds valid uncompressed v2 batches for tests.
    use super::*;

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

    /// A batch of `values.len()` records (null keys) with the given base timestamp.
    pub fn build_batch(values: &[&[u8]], base_timestamp: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for (index, value) in values.iter().enumerate() {
            let mut body = Vec::new();
            body.push(0u8); // attributes
            put_varint(&mut body, 0); // timestamp delta
            put_varint(&mut body, index as i64); // offset delta
            put_varint(&mut body, -1); // null key
            put_varint(&mut body, value.len() as i64);
            body.extend_from_slice(value);
            put_varint(&mut body, 0); // headers
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let count = values.len() as i32;
        let mut batch = Vec::new();
        batch.extend_from_slice(&0i64.to_be_bytes());
        let batch_length = (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD + records.len()) as i32;
        batch.extend_from_slice(&batch_length.to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes());
        batch.push(MAGIC_V2 as u8);
        batch.extend_from_slice(&0u32.to_be_bytes());
        batch.extend_from_slice(&0i16.to_be_bytes());
        batch.extend_from_slice(&(count - 1).to_be_bytes());
        batch.extend_from_slice(&base_timestamp.to_be_bytes());
        batch.extend_from_slice(&base_timestamp.to_be_bytes());
        batch.extend_from_slice(&(-1i64).to_be_bytes());
        batch.extend_from_slice(&(-1i16).to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes());
        batch.extend_from_slice(&count.to_be_bytes());
        batch.extend_from_slice(&records);
        let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::build_batch;
    use super::*;

    #[test]
    fn valid_batch_passes_and_bit_flip_fails() {
        let mut batch = build_batch(&[b"a", b"bc"], 1000);
        assert_eq!(validate_batch(&batch), Ok(batch.len()));
        stamp_batch(&mut batch, 42, 7);
        assert_eq!(validate_batch(&batch), Ok(batch.len()));
        let header = RecordBatchHeader::view(&batch).unwrap();
        assert_eq!(header.base_offset(), 42);
        assert_eq!(header.last_offset(), 43);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(
            validate_batch(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn truncated_and_bad_magic_are_rejected() {
        let batch = build_batch(&[b"x"], 0);
        assert!(matches!(
            validate_batch(&batch[..batch.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut bad = batch.clone();
        bad[16] = 1;
        assert_eq!(
            validate_batch(&bad),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        );
        assert!(matches!(
            validate_batch(&batch[..10]),
            Err(BatchError::TooShort { .. })
        ));
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut batch = build_batch(&[b"x"], 5);
        stamp_log_append_time(&mut batch, 99).unwrap();
        let header = RecordBatchHeader::view(&batch).unwrap();
        assert_eq!(header.max_timestamp.get(), 99);
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(validate_batch(&batch), Ok(batch.len()));
    }
}
