//! The metadata Raft node: a sans-I/O driver around raft-rs's `RawNode` over the durable
//! `RaftLogStore` (issue 15). Consensus (elections, log matching, commit) is raft-rs's; this
//! module only feeds it ticks and messages, persists what it asks, applies what it commits and
//! hands back the messages to send.
//!
//! Owns: one node's `RawNode`, its store and its state machine. May import: the `raft` crate,
//! `crate::storage::raft_log`. No sockets, no clocks (the caller ticks), no glommio.
//! Invariants: `handle_ready` persists entries, hard state and snapshots (through the store,
//! which syncs before returning) before it returns any message, so no message that depends on
//! persistence leaves before it; the commit index is persisted before the entries it covers are
//! applied; entries are applied once each, in index order, densely (the state machine sees every
//! normal entry, including the empty entry a new leader appends).

use raft::prelude::{Entry, EntryType, Message};
use raft::{Config, RawNode, SnapshotStatus, StateRole};

use crate::config::ClusterConfig;
use crate::storage::raft_log::{RaftLogError, RaftLogStore};

/// Entries applied between two snapshots of the state machine; the default of the config
/// knob `cluster.metadata_snapshot_entries`.
pub const METADATA_SNAPSHOT_ENTRIES_DEFAULT: u64 = 10_000;

/// The replicated state machine the metadata log feeds (the metadata image, in production:
/// `super::image_machine::ImageStateMachine`).
///
/// An error from any method means this node's state can no longer be trusted (a committed
/// entry or a snapshot that does not apply is a bug or corruption): the driver returns
/// `RaftDriverError::StateMachine` and halts, refusing every later call, so the node stops
/// rather than skip the entry and diverge from its peers.
pub trait MetadataStateMachine {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Applies the committed entry at `index`. Called for every normal entry in index order;
    /// `data` is empty for the no-op entry a new leader appends.
    fn apply(&mut self, index: u64, data: &[u8]) -> Result<(), Self::Error>;
    /// The state as bytes, for a snapshot taken at the last applied index.
    fn snapshot(&self) -> Result<Vec<u8>, Self::Error>;
    /// Replaces the state with a snapshot's bytes.
    fn restore(&mut self, data: &[u8]) -> Result<(), Self::Error>;
}

/// Timing and size settings of one Raft node. Ticks are whatever the caller's tick is.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// Ticks without a leader before a follower campaigns.
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Randomized election timeout range `[min, max)` in ticks; `None` keeps raft-rs's default
    /// `[election_ticks, 2 * election_ticks)` (drawn from the thread RNG — the simulator pins
    /// it and adds its own seeded jitter instead).
    pub election_timeout_range: Option<(usize, usize)>,
    /// Applied entries between snapshots (`cluster.metadata_snapshot_entries`).
    pub snapshot_entries: u64,
    /// Bytes of entries per append message.
    pub max_size_per_msg: u64,
    /// Append messages in flight per follower.
    pub max_inflight_msgs: usize,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            election_ticks: 10,
            heartbeat_ticks: 2,
            election_timeout_range: None,
            snapshot_entries: METADATA_SNAPSHOT_ENTRIES_DEFAULT,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
        }
    }
}

impl RaftSettings {
    /// Default timings with the snapshot interval of the `[cluster]` config section.
    pub fn from_config(config: &ClusterConfig) -> Self {
        RaftSettings {
            snapshot_entries: config.metadata_snapshot_entries,
            ..RaftSettings::default()
        }
    }
}

/// Errors of the Raft driver.
#[derive(Debug, thiserror::Error)]
pub enum RaftDriverError {
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error(transparent)]
    Store(#[from] RaftLogError),
    #[error("not the metadata quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("an empty proposal (empty entries are the leader's no-op)")]
    EmptyProposal,
    #[error(
        "committed entry {index} is a configuration change; membership changes are not supported"
    )]
    UnsupportedEntry { index: u64 },
    /// The state machine refused a committed entry (`index`), a snapshot, or to snapshot. The
    /// driver has halted; the node must stop.
    #[error("metadata state machine failed at index {index}; the node must stop: {source}")]
    StateMachine {
        index: u64,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the metadata Raft node halted after a state machine failure at index {index}")]
    Halted { index: u64 },
}

fn state_machine_error<E: std::error::Error + Send + Sync + 'static>(
    index: u64,
    error: E,
) -> RaftDriverError {
    RaftDriverError::StateMachine {
        index,
        source: Box::new(error),
    }
}

/// Where a proposal landed in the leader's log. It is committed when the entry at `index` is
/// applied with this `term`; another term at that index means it was lost to a new leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
}

/// An entry `handle_ready` applied to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEntry {
    pub index: u64,
    pub term: u64,
}

/// What one `handle_ready` did: the messages to send now (everything they depend on is
/// persisted), the entries applied, and snapshot activity.
#[derive(Debug, Default)]
pub struct ReadyOutcome {
    pub messages: Vec<Message>,
    pub applied: Vec<AppliedEntry>,
    /// Index of a snapshot received from the leader and restored into the state machine.
    pub restored_snapshot: Option<u64>,
    /// Index of a snapshot this node took (the log before it was dropped).
    pub compacted_to: Option<u64>,
}

/// One metadata Raft node.
pub struct RaftDriver<M: MetadataStateMachine> {
    node: RawNode<RaftLogStore>,
    state_machine: M,
    applied: u64,
    snapshot_entries: u64,
    /// Set when the state machine failed; every later call is refused.
    halted_at: Option<u64>,
}

impl<M: MetadataStateMachine> RaftDriver<M> {
    /// Starts node `id` over `store` (fresh or reopened). The state machine is restored from
    /// the store's snapshot, and raft-rs replays the committed entries after it.
    pub fn new(
        id: u64,
        store: RaftLogStore,
        mut state_machine: M,
        settings: &RaftSettings,
    ) -> Result<Self, RaftDriverError> {
        let snapshot = store.latest_snapshot();
        let applied = snapshot.get_metadata().index;
        if applied > 0 {
            state_machine
                .restore(snapshot.get_data())
                .map_err(|error| state_machine_error(applied, error))?;
        }
        let (min_election_tick, max_election_tick) =
            settings.election_timeout_range.unwrap_or((0, 0));
        let config = Config {
            id,
            election_tick: settings.election_ticks,
            heartbeat_tick: settings.heartbeat_ticks,
            min_election_tick,
            max_election_tick,
            applied,
            max_size_per_msg: settings.max_size_per_msg,
            max_inflight_msgs: settings.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&config, store, &logger)?;
        Ok(RaftDriver {
            node,
            state_machine,
            applied,
            snapshot_entries: settings.snapshot_entries.max(1),
            halted_at: None,
        })
    }

    /// Advances the logical clock by one tick (elections, heartbeats).
    pub fn tick(&mut self) -> bool {
        self.node.tick()
    }

    /// Starts an election now (tests and tooling; ticks do it on their own).
    pub fn campaign(&mut self) -> Result<(), RaftDriverError> {
        self.check_running()?;
        Ok(self.node.campaign()?)
    }

    /// Feeds a message received from a peer.
    pub fn step(&mut self, message: Message) -> Result<(), RaftDriverError> {
        self.check_running()?;
        Ok(self.node.step(message)?)
    }

    /// Appends `data` to the log if this node leads; it commits when a quorum has it.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Proposal, RaftDriverError> {
        self.check_running()?;
        if data.is_empty() {
            return Err(RaftDriverError::EmptyProposal);
        }
        if self.node.raft.state != StateRole::Leader {
            return Err(RaftDriverError::NotLeader {
                leader: self.leader_id(),
            });
        }
        self.node.propose(Vec::new(), data)?;
        Ok(Proposal {
            index: self.node.raft.raft_log.last_index(),
            term: self.node.raft.term,
        })
    }

    /// Tells raft-rs that a snapshot send to `to` finished or failed (the transport knows).
    pub fn report_snapshot(&mut self, to: u64, status: SnapshotStatus) {
        self.node.report_snapshot(to, status);
    }

    /// Tells raft-rs that the last message to `to` could not be delivered.
    pub fn report_unreachable(&mut self, to: u64) {
        self.node.report_unreachable(to);
    }

    /// Persists, applies and collects what raft-rs has ready, in the order raft-rs documents:
    /// snapshot, entries and hard state are stored (each synced) before any message is
    /// returned and before committed entries are applied; then `advance`, the light ready's
    /// commit index is stored, and its committed entries applied.
    ///
    /// A state machine failure halts the driver: this and every later call return an error,
    /// and the messages of the failed ready are not returned.
    pub fn handle_ready(&mut self) -> Result<ReadyOutcome, RaftDriverError> {
        self.check_running()?;
        let result = self.handle_ready_inner();
        if let Err(RaftDriverError::StateMachine { index, .. }) = &result {
            self.halted_at = Some(*index);
        }
        result
    }

    fn check_running(&self) -> Result<(), RaftDriverError> {
        match self.halted_at {
            Some(index) => Err(RaftDriverError::Halted { index }),
            None => Ok(()),
        }
    }

    /// The index of the entry or snapshot the state machine failed on, once it has.
    pub fn halted_at(&self) -> Option<u64> {
        self.halted_at
    }

    fn handle_ready_inner(&mut self) -> Result<ReadyOutcome, RaftDriverError> {
        let mut outcome = ReadyOutcome::default();
        if !self.node.has_ready() {
            return Ok(outcome);
        }
        let mut ready = self.node.ready();
        // Messages raft-rs allows out before persistence (a leader's appends). Sans-I/O, they
        // leave with the rest when this call returns, after everything below is persisted.
        outcome.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let index = snapshot.get_metadata().index;
            self.node.mut_store().apply_snapshot(&snapshot)?;
            self.state_machine
                .restore(snapshot.get_data())
                .map_err(|error| state_machine_error(index, error))?;
            self.applied = index;
            outcome.restored_snapshot = Some(index);
        }
        self.node.mut_store().append(ready.entries())?;
        if let Some(hard_state) = ready.hs() {
            let hard_state = hard_state.clone();
            self.node.mut_store().set_hard_state(&hard_state)?;
        }
        let committed = ready.take_committed_entries();
        self.apply_committed(committed, &mut outcome)?;
        outcome.messages.extend(ready.take_persisted_messages());

        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        outcome.messages.extend(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply_committed(committed, &mut outcome)?;
        self.node.advance_apply();
        self.maybe_compact(&mut outcome)?;
        Ok(outcome)
    }

    fn apply_committed(
        &mut self,
        entries: Vec<Entry>,
        outcome: &mut ReadyOutcome,
    ) -> Result<(), RaftDriverError> {
        for entry in entries {
            if entry.index <= self.applied {
                // Covered by a snapshot restored in this same ready.
                continue;
            }
            assert_eq!(
                entry.index,
                self.applied + 1,
                "raft applied {} then {}",
                self.applied,
                entry.index
            );
            assert!(
                entry.index <= self.node.store().hard_state().commit,
                "applying {} above the persisted commit index {}",
                entry.index,
                self.node.store().hard_state().commit
            );
            if entry.get_entry_type() != EntryType::EntryNormal {
                return Err(RaftDriverError::UnsupportedEntry { index: entry.index });
            }
            self.state_machine
                .apply(entry.index, entry.get_data())
                .map_err(|error| state_machine_error(entry.index, error))?;
            self.applied = entry.index;
            outcome.applied.push(AppliedEntry {
                index: entry.index,
                term: entry.term,
            });
        }
        Ok(())
    }

    fn maybe_compact(&mut self, outcome: &mut ReadyOutcome) -> Result<(), RaftDriverError> {
        let snapshot_index = self.node.store().latest_snapshot().get_metadata().index;
        if self.applied >= snapshot_index + self.snapshot_entries {
            let data = self
                .state_machine
                .snapshot()
                .map_err(|error| state_machine_error(self.applied, error))?;
            self.node.mut_store().compact(self.applied, data)?;
            outcome.compacted_to = Some(self.applied);
        }
        Ok(())
    }

    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    pub fn role(&self) -> StateRole {
        self.node.raft.state
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The leader this node knows of.
    pub fn leader_id(&self) -> Option<u64> {
        match self.node.raft.leader_id {
            raft::INVALID_ID => None,
            leader => Some(leader),
        }
    }

    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// Each voter's matched index as the leader tracks it (the leader's own last index for
    /// itself); `None` on a non-leader.
    pub fn voter_progress(&self) -> Option<Vec<(u64, u64)>> {
        if !self.is_leader() {
            return None;
        }
        let own = self.node.raft.id;
        let last = self.node.raft.raft_log.last_index();
        let mut voters: Vec<(u64, u64)> = self
            .node
            .raft
            .prs()
            .iter()
            .map(|(id, progress)| (*id, if *id == own { last } else { progress.matched }))
            .collect();
        voters.sort_unstable();
        Some(voters)
    }

    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    pub fn state_machine(&self) -> &M {
        &self.state_machine
    }

    pub fn store(&self) -> &RaftLogStore {
        self.node.store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every applied entry; its snapshot is the whole list.
    #[derive(Default)]
    struct ListMachine {
        entries: Vec<Vec<u8>>,
    }

    impl MetadataStateMachine for ListMachine {
        type Error = std::convert::Infallible;
        fn apply(&mut self, index: u64, data: &[u8]) -> Result<(), Self::Error> {
            assert_eq!(index, self.entries.len() as u64 + 1);
            self.entries.push(data.to_vec());
            Ok(())
        }
        fn snapshot(&self) -> Result<Vec<u8>, Self::Error> {
            let mut out = Vec::new();
            for entry in &self.entries {
                out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
                out.extend_from_slice(entry);
            }
            Ok(out)
        }
        fn restore(&mut self, mut data: &[u8]) -> Result<(), Self::Error> {
            self.entries.clear();
            while !data.is_empty() {
                let len = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
                self.entries.push(data[4..4 + len].to_vec());
                data = &data[4 + len..];
            }
            Ok(())
        }
    }

    fn settings(snapshot_entries: u64) -> RaftSettings {
        RaftSettings {
            snapshot_entries,
            ..RaftSettings::default()
        }
    }

    /// Runs ready handling and delivers messages (except to or from `isolated`) until quiet.
    fn settle(nodes: &mut [RaftDriver<ListMachine>], isolated: Option<u64>) {
        for _ in 0..1000 {
            let mut messages = Vec::new();
            for node in nodes.iter_mut() {
                messages.extend(node.handle_ready().unwrap().messages);
            }
            if messages.is_empty() {
                return;
            }
            for message in messages {
                if Some(message.to) == isolated || Some(message.from) == isolated {
                    continue;
                }
                nodes[message.to as usize - 1].step(message).unwrap();
            }
        }
        panic!("the cluster never settled");
    }

    fn non_empty(machine: &ListMachine) -> Vec<Vec<u8>> {
        machine
            .entries
            .iter()
            .filter(|entry| !entry.is_empty())
            .cloned()
            .collect()
    }

    #[test]
    fn config_defaults_match_the_driver_defaults() {
        let config = ClusterConfig::default();
        assert_eq!(
            RaftSettings::from_config(&config).snapshot_entries,
            METADATA_SNAPSHOT_ENTRIES_DEFAULT
        );
        let from_config = crate::cluster::controller::ControllerSettings::from_config(&config);
        let default = crate::cluster::controller::ControllerSettings::default();
        assert_eq!(
            format!("{from_config:?}"),
            format!("{default:?}"),
            "[cluster] defaults differ from ControllerSettings::default()"
        );
    }

    #[test]
    fn three_nodes_elect_a_leader_and_commit_proposals() {
        let voters = [1, 2, 3];
        let mut nodes: Vec<_> = voters
            .iter()
            .map(|id| {
                RaftDriver::new(
                    *id,
                    RaftLogStore::in_memory(&voters),
                    ListMachine::default(),
                    &settings(METADATA_SNAPSHOT_ENTRIES_DEFAULT),
                )
                .unwrap()
            })
            .collect();
        let mut ticks = 0;
        while !nodes.iter().any(|node| node.is_leader()) {
            ticks += 1;
            assert!(ticks < 200, "no leader after {ticks} ticks");
            for node in nodes.iter_mut() {
                node.tick();
            }
            settle(&mut nodes, None);
        }
        let leader = nodes.iter().position(|node| node.is_leader()).unwrap();
        let term = nodes[leader].term();
        for node in &nodes {
            assert_eq!(node.leader_id(), Some(leader as u64 + 1));
            assert_eq!(node.term(), term);
        }
        let follower = (leader + 1) % 3;
        assert!(matches!(
            nodes[follower].propose(b"x".to_vec()),
            Err(RaftDriverError::NotLeader { leader: Some(id) }) if id == leader as u64 + 1
        ));
        let mut proposals = Vec::new();
        for i in 0..10u8 {
            proposals.push(nodes[leader].propose(vec![i]).unwrap());
        }
        settle(&mut nodes, None);
        let expected: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
        for node in &nodes {
            assert_eq!(non_empty(node.state_machine()), expected);
            assert_eq!(node.applied_index(), proposals[9].index);
            assert_eq!(node.store().hard_state().commit, proposals[9].index);
        }
    }

    #[test]
    fn a_lagging_follower_catches_up_from_a_snapshot_and_a_restart_replays_the_log() {
        let voters = [1, 2, 3];
        let dirs: Vec<_> = voters
            .iter()
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let open = |id: u64, dir: &std::path::Path| {
            let (store, _) = RaftLogStore::open(dir, &voters).unwrap();
            RaftDriver::new(id, store, ListMachine::default(), &settings(5)).unwrap()
        };
        let mut nodes: Vec<_> = voters
            .iter()
            .zip(&dirs)
            .map(|(id, dir)| open(*id, dir.path()))
            .collect();
        nodes[0].campaign().unwrap();
        settle(&mut nodes, None);
        assert!(nodes[0].is_leader());
        // Node 3 misses 20 entries; the leader snapshots every 5 and drops its log.
        for i in 0..20u8 {
            nodes[0].propose(vec![i]).unwrap();
            settle(&mut nodes, Some(3));
        }
        assert!(nodes[0].store().latest_snapshot().get_metadata().index >= 15);
        assert!(nodes[2].applied_index() <= 1);
        // Heartbeats reach node 3 again; the leader must send a snapshot.
        let mut restored = None;
        for _ in 0..20 {
            for node in nodes.iter_mut() {
                node.tick();
            }
            for _ in 0..100 {
                let mut messages = Vec::new();
                for node in nodes.iter_mut() {
                    let outcome = node.handle_ready().unwrap();
                    if node.id() == 3 && outcome.restored_snapshot.is_some() {
                        restored = outcome.restored_snapshot;
                    }
                    messages.extend(outcome.messages);
                }
                for message in messages {
                    nodes[message.to as usize - 1].step(message).unwrap();
                }
            }
        }
        assert!(restored.is_some(), "node 3 never received a snapshot");
        let expected: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i]).collect();
        for node in &nodes {
            assert_eq!(
                non_empty(node.state_machine()),
                expected,
                "node {}",
                node.id()
            );
        }
        // A restart from disk rebuilds the same state (snapshot + committed entries).
        let applied = nodes[1].applied_index();
        drop(nodes);
        let mut restarted = open(2, dirs[1].path());
        let _ = restarted.handle_ready().unwrap();
        assert_eq!(restarted.applied_index(), applied);
        assert_eq!(non_empty(restarted.state_machine()), expected);
    }
}
