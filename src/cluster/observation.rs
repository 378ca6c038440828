//! Observing the metadata log without voting (Kafka's brokers fetch `__cluster_metadata`
//! as observers): what a voter hands an observer that applied some index (`chunk_for`), and
//! how the observer applies it (`apply_chunk`). Pure: the I/O shell is
//! `crate::quorum::observer`, and the simulator (`super::sim`) runs both sides under faults.
//!
//! Owns: `MetadataChunk` and the two functions. May import: `super::raft`, the `raft` crate.
//! Invariants: a chunk holds only what the voter applied (committed), in index order with no
//! gap; an observer's image moves only forward along that order (an answer that skips or
//! repeats an index is refused), so its applied sequence is always a prefix of the log.

use super::raft::{MetadataStateMachine, RaftDriver};
use raft::{GetEntriesContext, Storage};

/// Entries per answer at most (the byte bound is the caller's; this bounds the copy a voter
/// makes of its log before trimming it to bytes).
pub const ENTRIES_PER_CHUNK_MAX: u64 = 1_000;

/// Committed metadata as one voter hands it to an observer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataChunk {
    /// The voter's applied state at an index (`MetadataStateMachine::snapshot` bytes): sent
    /// when the observer has nothing yet or the voter no longer holds the entries after the
    /// observer's index (compacted into its own snapshot).
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Committed entries in index order, each continuing the one before (after the snapshot,
    /// if any, else after the observer's index). The no-op entry of a new leader has no data.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// The voter's applied index when it answered: the observer is caught up once it has
    /// applied this far.
    pub voter_applied_index: u64,
}

/// The voter's answer to an observer that applied `after_index`: a snapshot of the applied
/// state when the observer has nothing or the voter compacted the entries it needs, else the
/// committed entries after it (at most `bytes_max` of them, at least one). `ready_from` is
/// the commit index the voter must have applied before it answers anything (its state is
/// replaying until then).
pub fn chunk_for<M: MetadataStateMachine>(
    driver: &RaftDriver<M>,
    after_index: u64,
    ready_from: u64,
    bytes_max: u64,
) -> Result<MetadataChunk, String> {
    let applied = driver.applied_index();
    let mut chunk = MetadataChunk {
        voter_applied_index: applied.max(ready_from),
        ..MetadataChunk::default()
    };
    if applied < ready_from || after_index >= applied || applied == 0 {
        return Ok(chunk);
    }
    let store = driver.store();
    let first = store.first_index().map_err(|e| e.to_string())?;
    if after_index == 0 || after_index + 1 < first {
        let data = driver
            .state_machine()
            .snapshot()
            .map_err(|e| e.to_string())?;
        chunk.snapshot = Some((applied, data));
        return Ok(chunk);
    }
    let high = applied.min(after_index + ENTRIES_PER_CHUNK_MAX) + 1;
    let entries = store
        .entries(
            after_index + 1,
            high,
            bytes_max,
            GetEntriesContext::empty(false),
        )
        .map_err(|e| e.to_string())?;
    chunk.entries = entries
        .into_iter()
        .map(|entry| (entry.index, entry.get_data().to_vec()))
        .collect();
    Ok(chunk)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObserveError {
    /// The answer does not continue the applied index (a confused voter): dropped.
    #[error("metadata entry {got} does not follow the applied index {applied}")]
    Gap { applied: u64, got: u64 },
    /// A committed entry or snapshot that does not apply: the observer cannot go on.
    #[error("the metadata at index {index} does not apply: {reason}")]
    Apply { index: u64, reason: String },
}

/// Applies `chunk` to `machine`, which has applied `applied`; returns the new applied index.
/// A snapshot at or below `applied` is skipped (the observer is further along already).
pub fn apply_chunk<M: MetadataStateMachine>(
    machine: &mut M,
    applied: u64,
    chunk: &MetadataChunk,
) -> Result<u64, ObserveError> {
    let mut applied = applied;
    if let Some((index, data)) = &chunk.snapshot
        && *index > applied
    {
        machine.restore(data).map_err(|e| ObserveError::Apply {
            index: *index,
            reason: e.to_string(),
        })?;
        applied = *index;
    }
    for (index, data) in &chunk.entries {
        if *index <= applied {
            continue;
        }
        if *index != applied + 1 {
            return Err(ObserveError::Gap {
                applied,
                got: *index,
            });
        }
        machine
            .apply(*index, data)
            .map_err(|e| ObserveError::Apply {
                index: *index,
                reason: e.to_string(),
            })?;
        applied = *index;
    }
    Ok(applied)
}

#[cfg(test)]
#[path = "observation_tests.rs"]
mod tests;
