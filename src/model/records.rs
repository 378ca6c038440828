//! Building and reading the records inside an uncompressed v2 batch. The broker writes its
//! own internal records (committed offsets, group metadata) with these; client batches are
//! never re-encoded.

use super::batch::{
    BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, BatchError, CRC_COVERED_FROM, MAGIC_V2,
    RecordBatchHeader,
};

/// One record to encode: key and value may be null (a null value is a tombstone).
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// A record read from a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

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

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => put_varint(out, -1),
    }
}

/// Producer fields and flags of a batch the broker writes itself.
#[derive(Debug, Clone, Copy)]
pub struct BatchOrigin {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    pub control: bool,
}

impl BatchOrigin {
    /// No producer: plain internal records.
    pub const NONE: BatchOrigin = BatchOrigin {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        transactional: false,
        control: false,
    };
}

const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;
/// Control record types (key of a marker record).
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// Encodes an uncompressed v2 batch (base offset 0, no producer id) with a valid CRC-32C.
pub fn encode_batch(records: &[NewRecord<'_>], timestamp_ms: i64) -> Vec<u8> {
    encode_batch_from(records, timestamp_ms, BatchOrigin::NONE)
}

/// Kafka's transaction marker: a control batch holding one record whose key is
/// [version 0, type (0 abort, 1 commit)] and value [version 0, coordinator epoch].
pub fn encode_control_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let kind = if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let origin = BatchOrigin {
        producer_id,
        producer_epoch,
        base_sequence: -1,
        transactional: true,
        control: true,
    };
    let record = NewRecord {
        key: Some(&key),
        value: Some(&value),
    };
    encode_batch_from(&[record], timestamp_ms, origin)
}

/// The marker type of a control record key: Some(true) commit, Some(false) abort.
pub fn control_record_commits(key: &[u8]) -> Option<bool> {
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        CONTROL_COMMIT => Some(true),
        CONTROL_ABORT => Some(false),
        _ => None,
    }
}

/// Encodes an uncompressed v2 batch with the given producer fields and flags.
pub fn encode_batch_from(
    records: &[NewRecord<'_>],
    timestamp_ms: i64,
    origin: BatchOrigin,
) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut body = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let mut encoded = vec![0u8]; // attributes
        put_varint(&mut encoded, 0); // timestamp delta
        put_varint(&mut encoded, index as i64); // offset delta
        put_nullable(&mut encoded, record.key);
        put_nullable(&mut encoded, record.value);
        put_varint(&mut encoded, 0); // headers
        put_varint(&mut body, encoded.len() as i64);
        body.extend_from_slice(&encoded);
    }
    let count = records.len() as i32;
    let batch_length = (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD + body.len()) as i32;
    let mut batch = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes());
    let mut attributes = 0i16;
    if origin.transactional {
        attributes |= ATTRIBUTE_TRANSACTIONAL;
    }
    if origin.control {
        attributes |= ATTRIBUTE_CONTROL;
    }
    batch.extend_from_slice(&attributes.to_be_bytes());
    batch.extend_from_slice(&(count - 1).to_be_bytes());
    batch.extend_from_slice(&timestamp_ms.to_be_bytes());
    batch.extend_from_slice(&timestamp_ms.to_be_bytes());
    batch.extend_from_slice(&origin.producer_id.to_be_bytes());
    batch.extend_from_slice(&origin.producer_epoch.to_be_bytes());
    batch.extend_from_slice(&origin.base_sequence.to_be_bytes());
    batch.extend_from_slice(&count.to_be_bytes());
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Option<i64> {
        let mut result: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.position)?;
            self.position += 1;
            result |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(((result >> 1) as i64) ^ -((result & 1) as i64));
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(len)?;
        let slice = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(slice)
    }

    fn nullable(&mut self) -> Option<Option<&'a [u8]>> {
        match self.varint()? {
            -1 => Some(None),
            len if len >= 0 => self.take(len as usize).map(Some),
            _ => None,
        }
    }
}

/// Reads the records of an uncompressed batch. Errors (never panics) on malformed data.
pub fn read_records(batch: &[u8]) -> Result<Vec<Record<'_>>, BatchError> {
    let header = RecordBatchHeader::view(batch)?;
    let total = header.total_bytes()?;
    if total > batch.len() {
        return Err(BatchError::Truncated {
            needed: total,
            available: batch.len(),
        });
    }
    if header.compression()? != super::Compression::None {
        return Err(BatchError::BadCompression {
            codec: header.attributes.get() & 0x07,
        });
    }
    let count = header.records_count.get().max(0) as usize;
    let mut cursor = Cursor {
        bytes: &batch[BATCH_HEADER_BYTES..total],
        position: 0,
    };
    let malformed = BatchError::BadLength {
        batch_length: header.batch_length.get(),
    };
    let mut records = Vec::with_capacity(count.min(total / 7));
    for _ in 0..count {
        let length = cursor.varint().ok_or(malformed.clone())?;
        let body = cursor
            .take(length.max(0) as usize)
            .ok_or(malformed.clone())?;
        let mut inner = Cursor {
            bytes: body,
            position: 1, // attributes
        };
        let timestamp_delta = inner.varint().ok_or(malformed.clone())?;
        let offset_delta = inner.varint().ok_or(malformed.clone())?;
        let key = inner.nullable().ok_or(malformed.clone())?;
        let value = inner.nullable().ok_or(malformed.clone())?;
        records.push(Record {
            offset: header.base_offset().saturating_add(offset_delta),
            timestamp: header.base_timestamp.get().saturating_add(timestamp_delta),
            key,
            value,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch::{stamp_batch, validate_batch};

    #[test]
    fn encode_then_read_round_trips_with_tombstones() {
        let records = [
            NewRecord {
                key: Some(b"k1"),
                value: Some(b"v1"),
            },
            NewRecord {
                key: Some(b"k2"),
                value: None,
            },
        ];
        let mut batch = encode_batch(&records, 1234);
        assert_eq!(validate_batch(&batch), Ok(batch.len()));
        stamp_batch(&mut batch, 100, 0);
        let read = read_records(&batch).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].offset, 100);
        assert_eq!(read[0].key, Some(&b"k1"[..]));
        assert_eq!(read[1].offset, 101);
        assert_eq!(read[1].value, None);
        assert_eq!(read[1].timestamp, 1234);
    }

    #[test]
    fn control_batches_are_markers() {
        let batch = encode_control_batch(42, 3, true, 0, 5);
        assert_eq!(validate_batch(&batch), Ok(batch.len()));
        let header = crate::model::RecordBatchHeader::view(&batch).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(header.producer_id.get(), 42);
        assert_eq!(header.producer_epoch.get(), 3);
        let records = read_records(&batch).unwrap();
        assert_eq!(control_record_commits(records[0].key.unwrap()), Some(true));
        let abort = encode_control_batch(42, 3, false, 0, 5);
        let records = read_records(&abort).unwrap();
        assert_eq!(control_record_commits(records[0].key.unwrap()), Some(false));
    }

    #[test]
    fn garbage_records_are_errors() {
        let mut batch = encode_batch(
            &[NewRecord {
                key: None,
                value: Some(b"abc"),
            }],
            0,
        );
        let last = batch.len() - 5;
        batch[last] = 0x7f; // corrupt a length
        batch.truncate(batch.len() - 2);
        let length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        assert!(read_records(&batch).is_err());
    }
}
