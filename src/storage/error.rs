//! Errors of the storage layer. The server maps each to a Kafka error code.

use crate::model::validation::ValidationError;
use crate::model::{BatchError, Offset};
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O error during {op} on {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The producer sent an invalid batch (bad CRC, magic, length): Kafka CORRUPT_MESSAGE.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A client batch breaks a rule of `model::validation` (Kafka's LogValidator):
    /// CORRUPT_MESSAGE for framing and CRC, INVALID_RECORD for the rest, MESSAGE_TOO_LARGE
    /// when its records decompress past `decompressed_batch_bytes_max`.
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// A batch exceeds `max.message.bytes`: Kafka MESSAGE_TOO_LARGE.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge { size: usize, max: u64 },
    /// Data on disk failed validation on read: reported, never served (KAFKA_STORAGE_ERROR).
    #[error("corrupt batch in {path} at position {position}: {source}")]
    CorruptData {
        path: PathBuf,
        position: u64,
        source: BatchError,
    },
    /// A batch on disk passed its CRC but its base offset (not CRC-covered) is out of place:
    /// corrupt, reported, never served (KAFKA_STORAGE_ERROR).
    #[error(
        "batch in {path} at position {position} has base offset {base_offset}, expected at least {expected}"
    )]
    MisplacedBatch {
        path: PathBuf,
        position: u64,
        base_offset: i64,
        expected: i64,
    },
    /// Kafka OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    /// Idempotent producer: a gap in sequence numbers (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence {sequence} for producer {producer_id}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        sequence: i32,
        expected: i32,
    },
    /// Idempotent producer: epoch older than the one seen (INVALID_PRODUCER_EPOCH).
    #[error("producer {producer_id} epoch {epoch} is older than {current_epoch}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    /// A record breaks a topic rule, e.g. no key on a compacted topic: Kafka INVALID_RECORD
    /// (87).
    #[error("invalid record: {reason}")]
    InvalidRecord { reason: String },
    /// A compressed batch cannot be decoded or re-encoded (bad codec data, decompressed
    /// size over `decompressed_batch_bytes_max`, malformed records): Kafka CORRUPT_MESSAGE.
    #[error("cannot recompress batch: {0}")]
    Compression(#[from] crate::model::compression::CompressionError),
    /// A client's transactional batch whose producer has no transaction in progress on the
    /// partition and no verification from the coordinator (KIP-890 part 1): Kafka
    /// TRANSACTION_ABORTABLE (INVALID_TXN_STATE for Produce v10 and older).
    #[error(
        "Partition was not added to the transaction (producer {producer_id} has no verified \
         transaction on it)"
    )]
    TransactionNotVerified { producer_id: i64 },
    /// The log was closed or removed while the call was in progress.
    #[error("partition log is closed")]
    Closed,
}

impl StorageError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for "disk full" (ENOSPC, EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ),
            _ => false,
        }
    }
}
