//! `ImageStateMachine`: the metadata image as the Raft driver's state machine. A committed
//! entry is one `encode_batch` of metadata records (one controller decision); applying it
//! applies its records to the `MetadataImage` in order. A snapshot is the image's snapshot
//! records as one `encode_batch`; restore decodes it and rebuilds the image.
//!
//! Owns: one node's image and the index it was last applied at. May import: `super::{image,
//! records, raft}`. No I/O.
//! Invariants: an entry that does not decode, or whose records the image refuses, is a typed
//! `ImageMachineError`, never a panic and never skipped. After such an error the machine is
//! halted: the image may hold part of the failed entry, so every later `apply`/`snapshot`
//! use is refused (the driver stops too, see `RaftDriverError::StateMachine`). A committed
//! entry that does not apply is a bug or corruption; the node must stop rather than go on with
//! a state its peers do not have, and an operator must look (Kafka's controller likewise treats
//! a record it cannot replay as fatal).

use super::image::{ImageError, MetadataImage};
use super::raft::MetadataStateMachine;
use super::records::{RecordDecodeError, decode_batch, encode_batch};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ImageMachineError {
    #[error("metadata entry {index} does not decode: {source}")]
    Decode {
        index: u64,
        source: RecordDecodeError,
    },
    #[error("metadata entry {index}, record {record}: the image refuses it: {source}")]
    Apply {
        index: u64,
        record: usize,
        source: ImageError,
    },
    #[error("metadata snapshot does not decode: {0}")]
    SnapshotDecode(RecordDecodeError),
    #[error("metadata snapshot does not rebuild an image: {0}")]
    SnapshotApply(ImageError),
    #[error("the metadata state machine halted after entry {index} failed to apply")]
    Halted { index: u64 },
}

/// The metadata image fed by the metadata log.
#[derive(Debug, Clone, Default)]
pub struct ImageStateMachine {
    image: MetadataImage,
    /// Index of the entry that failed to apply, once one has.
    halted_at: Option<u64>,
}

impl ImageStateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The index of the entry that failed to apply, if the machine has halted.
    pub fn halted_at(&self) -> Option<u64> {
        self.halted_at
    }

    fn apply_entry(&mut self, index: u64, data: &[u8]) -> Result<(), ImageMachineError> {
        let records =
            decode_batch(data).map_err(|source| ImageMachineError::Decode { index, source })?;
        for (record, entry) in records.iter().enumerate() {
            self.image
                .apply(entry)
                .map_err(|source| ImageMachineError::Apply {
                    index,
                    record,
                    source,
                })?;
        }
        Ok(())
    }
}

impl MetadataStateMachine for ImageStateMachine {
    type Error = ImageMachineError;

    fn apply(&mut self, index: u64, data: &[u8]) -> Result<(), ImageMachineError> {
        if let Some(halted) = self.halted_at {
            return Err(ImageMachineError::Halted { index: halted });
        }
        if data.is_empty() {
            // The no-op entry a new leader appends.
            return Ok(());
        }
        let result = self.apply_entry(index, data);
        if result.is_err() {
            self.halted_at = Some(index);
        }
        result
    }

    fn snapshot(&self) -> Result<Vec<u8>, ImageMachineError> {
        if let Some(halted) = self.halted_at {
            return Err(ImageMachineError::Halted { index: halted });
        }
        Ok(encode_batch(&self.image.snapshot()))
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), ImageMachineError> {
        let records = decode_batch(data).map_err(ImageMachineError::SnapshotDecode)?;
        self.image =
            MetadataImage::from_snapshot(&records).map_err(ImageMachineError::SnapshotApply)?;
        self.halted_at = None;
        Ok(())
    }
}

#[cfg(test)]
#[path = "image_machine_tests.rs"]
mod tests;
