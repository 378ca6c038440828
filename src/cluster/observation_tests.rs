//! Observation tests: a voter's answer (snapshot or entries) applied by an observer gives the
//! voter's image; gaps and a voter still replaying are handled. (The simulator, `super::sim`,
//! runs both sides under faults.)

use super::*;
use crate::cluster::image_machine::ImageStateMachine;
use crate::cluster::raft::RaftSettings;
use crate::cluster::records::{MetadataRecord, encode_batch};
use crate::storage::raft_log::RaftLogStore;

/// A one-voter raft node that has committed and applied `entries` proposals (proposal n sets
/// the feature level `test.level` to n), with a snapshot every `snapshot_entries`.
fn voter(entries: usize, snapshot_entries: u64) -> RaftDriver<ImageStateMachine> {
    let settings = RaftSettings {
        snapshot_entries,
        ..RaftSettings::default()
    };
    let mut driver = RaftDriver::new(
        1,
        RaftLogStore::in_memory(&[1]),
        ImageStateMachine::new(),
        &settings,
    )
    .unwrap();
    driver.campaign().unwrap();
    while !driver.is_leader() {
        driver.handle_ready().unwrap();
    }
    driver.handle_ready().unwrap();
    for n in 0..entries {
        let record = level(n as i16 + 1);
        driver.propose(encode_batch(&[record])).unwrap();
        driver.handle_ready().unwrap();
    }
    driver
}

fn level(level: i16) -> MetadataRecord {
    MetadataRecord::FeatureLevel {
        name: "test.level".into(),
        level,
    }
}

fn level_of(machine: &ImageStateMachine) -> Option<i16> {
    machine.image().feature_level("test.level")
}

/// Fetches from `voter` until caught up, as the observer thread does; returns the image's
/// cluster id, the applied index and how many answers it took.
fn observe(
    voter: &RaftDriver<ImageStateMachine>,
    bytes_max: u64,
) -> (ImageStateMachine, u64, usize) {
    let mut machine = ImageStateMachine::new();
    let mut applied = 0;
    let mut answers = 0;
    loop {
        let chunk = chunk_for(voter, applied, 0, bytes_max).unwrap();
        answers += 1;
        applied = apply_chunk(&mut machine, applied, &chunk).unwrap();
        if applied >= chunk.voter_applied_index {
            return (machine, applied, answers);
        }
        assert!(answers < 10_000, "the observer does not progress");
    }
}

#[test]
fn an_observer_starts_from_a_snapshot_then_follows_entries() {
    let mut driver = voter(5, 1_000);
    let (mut machine, applied, answers) = observe(&driver, 1 << 20);
    assert_eq!(answers, 1, "a new observer takes one snapshot");
    assert_eq!(applied, driver.applied_index());
    assert_eq!(level_of(&machine), Some(5));
    for n in 5..8u8 {
        let record = level(i16::from(n) + 1);
        driver.propose(encode_batch(&[record])).unwrap();
        driver.handle_ready().unwrap();
    }
    let chunk = chunk_for(&driver, applied, 0, 1 << 20).unwrap();
    assert!(chunk.snapshot.is_none(), "entries, not a snapshot");
    assert_eq!(chunk.entries.len(), 3);
    let now = apply_chunk(&mut machine, applied, &chunk).unwrap();
    assert_eq!(now, driver.applied_index());
    assert_eq!(level_of(&machine), Some(8));
}

#[test]
fn entries_come_in_bounded_chunks_and_compacted_ones_as_a_snapshot() {
    let driver = voter(40, 1_000);
    // An observer at index 2 (the no-op and the first record applied) catches up in
    // chunks of one entry when a chunk holds one entry's bytes.
    let mut machine = ImageStateMachine::new();
    let first = chunk_for(&driver, 0, 0, 1 << 20).unwrap();
    let mut applied = apply_chunk(&mut machine, 0, &first).unwrap();
    assert_eq!(applied, driver.applied_index());
    let mut behind = ImageStateMachine::new();
    let two = chunk_for(&voter(1, 1_000), 0, 0, 1 << 20).unwrap();
    applied = apply_chunk(&mut behind, 0, &two).unwrap();
    assert_eq!(applied, 2);
    let one = chunk_for(&driver, applied, 0, 1).unwrap();
    assert_eq!(
        one.entries.len(),
        1,
        "at least one entry, at most the bytes"
    );
    assert_eq!(one.entries[0].0, 3);
    // A voter that compacted its log answers an old index with a snapshot.
    let compacted = voter(40, 10);
    let chunk = chunk_for(&compacted, 2, 0, 1 << 20).unwrap();
    assert!(chunk.snapshot.is_some() && chunk.entries.is_empty());
    let (machine, applied, _) = observe(&compacted, 1 << 20);
    assert_eq!(applied, compacted.applied_index());
    assert_eq!(level_of(&machine), Some(40));
}

#[test]
fn a_gap_is_refused_and_a_replaying_voter_answers_nothing() {
    let driver = voter(5, 1_000);
    let mut machine = ImageStateMachine::new();
    let chunk = MetadataChunk {
        snapshot: None,
        entries: vec![(4, Vec::new())],
        voter_applied_index: 6,
    };
    assert_eq!(
        apply_chunk(&mut machine, 2, &chunk),
        Err(ObserveError::Gap { applied: 2, got: 4 })
    );
    // Replaying (applied below the commit index it started with): nothing to hand out, and
    // the observer cannot count itself caught up.
    let ready_from = driver.applied_index() + 5;
    let chunk = chunk_for(&driver, 0, ready_from, 1 << 20).unwrap();
    assert!(chunk.snapshot.is_none() && chunk.entries.is_empty());
    assert_eq!(chunk.voter_applied_index, ready_from);
    // An observer ahead of the voter it asks gets nothing (and keeps its image).
    let chunk = chunk_for(&driver, driver.applied_index() + 3, 0, 1 << 20).unwrap();
    assert!(chunk.snapshot.is_none() && chunk.entries.is_empty());
}

#[test]
fn an_entry_that_does_not_apply_is_an_error() {
    let mut machine = ImageStateMachine::new();
    let chunk = MetadataChunk {
        snapshot: None,
        entries: vec![(1, vec![0xff, 0xff, 0xff])],
        voter_applied_index: 1,
    };
    assert!(matches!(
        apply_chunk(&mut machine, 0, &chunk),
        Err(ObserveError::Apply { index: 1, .. })
    ));
}
