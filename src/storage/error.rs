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
    /// A follower's append whose batches do not continue the log: a base offset other than
    /// the log end or the previous batch's end (Kafka's UnexpectedAppendOffsetException).
    /// Replication truncates and fetches again; nothing is stored.
    #[error("replicated batch at offset {base_offset} does not continue the log at {expected}")]
    UnexpectedAppendOffset { base_offset: i64, expected: i64 },
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
    /// (87), with the offending records named (KIP-467 `record_errors`; empty when the
    /// rule is about the batch as a whole).
    #[error("invalid record: {reason}")]
    InvalidRecord {
        reason: String,
        record_errors: Vec<RecordError>,
    },
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
    /// A transaction marker from an older coordinator epoch than the producer's last
    /// marker's: TRANSACTION_COORDINATOR_FENCED.
    #[error(
        "marker of producer {producer_id} from coordinator epoch {coordinator_epoch}, older \
         than its last marker's {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
    /// The log was closed or removed while the call was in progress.
    #[error("partition log is closed")]
    Closed,
    /// Recovery found the log ending before an offset it had reached (its recovery point
    /// or log start checkpoint): synced data is missing or unreadable. The log is not
    /// opened and nothing on disk is changed, so no offset is handed out twice
    /// (KAFKA_STORAGE_ERROR). `shardlog data-dir repair` accepts the loss.
    #[error(
        "partition log {dir} is damaged: {detail}; its data ends at offset {log_end} but offsets below {expected} were synced before (per its {checkpoint}). Not opened, nothing changed on disk; see `shardlog data-dir repair` in docs/operations.md"
    )]
    Damaged {
        dir: PathBuf,
        log_end: i64,
        expected: i64,
        detail: String,
        /// The checkpoint file that says how far the log had come.
        checkpoint: &'static str,
        /// The segment file that ends too early (None: there is none).
        segment: Option<PathBuf>,
        /// Its leading bytes that are readable batches.
        valid_bytes: u64,
    },
}

/// One refused record of a produced batch (KIP-467): its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

impl StorageError {
    /// The records of a refused batch that caused the refusal (Kafka's `record_errors` in
    /// a Produce response, v8+); empty when the batch as a whole was refused.
    pub fn record_errors(&self) -> Vec<RecordError> {
        use crate::model::validation::InvalidBatch;
        match self {
            StorageError::InvalidRecord { record_errors, .. } => record_errors.clone(),
            StorageError::Validation(ValidationError::Invalid(InvalidBatch::Record {
                index,
                problem,
            })) => vec![RecordError {
                batch_index: i32::try_from(*index).unwrap_or(i32::MAX),
                message: problem.to_string(),
            }],
            _ => Vec::new(),
        }
    }

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
            StorageError::Io { source, .. } => {
                is_disk_full_error(source.kind(), source.raw_os_error())
            }
            _ => false,
        }
    }
}

/// ENOSPC / EDQUOT, by errno or by kind: glommio's errors carry the kind (`StorageFull`,
/// `QuotaExceeded`) but not the errno.
pub(crate) fn is_disk_full_error(kind: std::io::ErrorKind, raw_os_error: Option<i32>) -> bool {
    matches!(raw_os_error, Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            kind,
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}
