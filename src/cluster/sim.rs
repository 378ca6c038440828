//! A seeded deterministic simulator of the metadata Raft quorum (issue 15): N nodes running
//! the real driver (`super::raft`) over in-memory durable stores, connected by a simulated
//! network that loses, delays, reorders and duplicates messages and can be partitioned; nodes
//! crash (volatile state lost, the persisted store kept) and restart. Every step checks the
//! safety invariants; after the faults heal it checks liveness.
//!
//! Owns: nothing outside a run. May import: `super::raft`, `crate::storage::raft_log`, `raft`.
//! Deterministic: one `u64` seed fixes every choice (own splitmix64 generator; raft-rs's own
//! randomized election timeout is pinned and replaced by seeded per-node timeouts and tick
//! jitter). A failing run reports `SHARDLOG_SIM_SEED=<seed>`; setting that variable makes the
//! tests replay exactly that seed.
//!
//! Invariants checked: at most one leader per term (over the whole run); every node's applied
//! sequence is a prefix of one common sequence (state machine safety, including after restarts
//! and snapshot installs); a proposal acknowledged to its client (applied on the node it was
//! proposed to, with the term it was proposed in) stays at its index forever; an observer (a
//! broker-only node, `super::observation`) that fetches from random voters over the lossy
//! network, with random byte bounds, and restarts empty now and then, applies a prefix of the
//! same sequence. Liveness: once partitions heal, crashed nodes restart and loss stops, a
//! leader commits a new proposal and every node and the observer apply it within
//! `liveness_ticks`.
//!
//! Not modelled: a crash in the middle of one `handle_ready` (the store's own tests cover
//! torn writes), clock skew beyond tick jitter, membership changes.

use std::collections::BTreeMap;
use std::fmt;

use raft::SnapshotStatus;
use raft::prelude::{Message, MessageType};

use super::raft::{MetadataStateMachine, Proposal, RaftDriver, RaftDriverError, RaftSettings};
use crate::storage::raft_log::RaftLogStore;

#[path = "sim_observer.rs"]
mod observer;
use observer::SimObserver;

/// The environment variable that replays one seed.
pub const SEED_ENV: &str = "SHARDLOG_SIM_SEED";

/// splitmix64: small, fast, and good enough to drive fault choices.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }
}

/// A deliberate bug, to show the checks catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    None,
    /// Tell the client its proposal committed as soon as the leader accepted it.
    AckBeforeCommit,
    /// Lose the persisted Raft state on a crash (a store that never synced).
    ForgetDurableStateOnCrash,
    /// Lose only the vote on a crash (a hard state written without a sync): a restarted node
    /// may vote twice in one term.
    ForgetVoteOnCrash,
}

/// One run's shape. `for_seed` derives it from the seed so a seed alone replays a run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    /// Steps with faults; each step is one tick of every live node (minus jitter).
    pub fault_steps: u64,
    /// Steps allowed after healing for a new proposal to commit everywhere.
    pub liveness_ticks: u64,
    pub loss_per_mille: u32,
    pub duplicate_per_mille: u32,
    /// Extra delivery delay, uniform in `0..=max_delay_steps` steps.
    pub max_delay_steps: u64,
    pub partition_per_mille: u32,
    pub heal_per_mille: u32,
    pub crash_per_mille: u32,
    pub restart_per_mille: u32,
    pub propose_per_mille: u32,
    /// Chance per step the observer fetches while faults run (every step after healing).
    pub observe_per_mille: u32,
    /// Chance per fetch the observer restarts with nothing applied.
    pub observer_restart_per_mille: u32,
    /// Chance a live node skips a tick (clock jitter).
    pub tick_skip_per_mille: u32,
    pub snapshot_entries: u64,
    pub bug: Bug,
}

impl SimConfig {
    /// The run for `seed`: 3 nodes, or 5 for one seed in four.
    pub fn for_seed(seed: u64, fault_steps: u64) -> Self {
        SimConfig {
            nodes: if seed % 4 == 3 { 5 } else { 3 },
            fault_steps,
            liveness_ticks: 400,
            loss_per_mille: 50,
            duplicate_per_mille: 20,
            max_delay_steps: 3,
            partition_per_mille: 6,
            heal_per_mille: 15,
            crash_per_mille: 5,
            restart_per_mille: 20,
            propose_per_mille: 300,
            observe_per_mille: 200,
            observer_restart_per_mille: 5,
            tick_skip_per_mille: 100,
            snapshot_entries: 64,
            bug: Bug::None,
        }
    }
}

/// Figures of a run that passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    pub seed: u64,
    pub nodes: usize,
    pub steps: u64,
    pub proposals: u64,
    pub acknowledged: u64,
    pub committed_entries: u64,
    pub terms_with_leader: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub snapshots_installed: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    /// Observer fetches answered, and how many of them were snapshots.
    pub observer_fetches: u64,
    pub observer_snapshots: u64,
    /// FNV-1a of the committed sequence: equal runs of one seed give equal digests.
    pub digest: u64,
}

/// What broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    TwoLeadersInOneTerm,
    Divergence,
    AcknowledgedLost,
    NoProgress,
    DriverError,
    Panic,
}

/// A failed check, with the seed that replays it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub kind: ViolationKind,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SEED_ENV}={} : step {}: {:?}: {}",
            self.seed, self.step, self.kind, self.detail
        )
    }
}

/// The state machine under test: the list of applied entries; its snapshot is the list.
#[derive(Debug, Default)]
struct RecordingMachine {
    entries: Vec<Vec<u8>>,
    /// Set when an apply is not the next index (the driver promises density).
    gap: Option<(u64, u64)>,
}

impl MetadataStateMachine for RecordingMachine {
    type Error = std::convert::Infallible;

    fn apply(&mut self, index: u64, data: &[u8]) -> Result<(), Self::Error> {
        if index != self.entries.len() as u64 + 1 && self.gap.is_none() {
            self.gap = Some((self.entries.len() as u64 + 1, index));
        }
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

    fn restore(&mut self, data: &[u8]) -> Result<(), Self::Error> {
        self.entries.clear();
        let mut rest = data;
        while rest.len() >= 4 {
            let mut word = [0u8; 4];
            word.copy_from_slice(&rest[..4]);
            let len = u32::from_le_bytes(word) as usize;
            let Some(entry) = rest.get(4..4 + len) else {
                break;
            };
            self.entries.push(entry.to_vec());
            rest = &rest[4 + len..];
        }
        Ok(())
    }
}

struct SimNode {
    id: u64,
    driver: Option<RaftDriver<RecordingMachine>>,
    /// The persisted store while the node is down.
    durable: Option<RaftLogStore>,
    /// Leading state-machine entries already checked against the common sequence.
    verified: usize,
    /// Proposals accepted by this node, waiting to be applied (or lost).
    pending: Vec<(Proposal, Vec<u8>)>,
    /// This incarnation's election timeout (seeded; raft-rs's own randomness is pinned).
    election_ticks: usize,
}

struct InFlight {
    deliver_at: u64,
    sequence: u64,
    message: Message,
}

struct Simulation {
    seed: u64,
    config: SimConfig,
    rng: SimRng,
    voters: Vec<u64>,
    nodes: Vec<SimNode>,
    network: Vec<InFlight>,
    next_sequence: u64,
    /// Side of each node while partitioned; messages between sides are dropped.
    partition: Option<Vec<u8>>,
    loss_per_mille: u32,
    duplicate_per_mille: u32,
    step: u64,
    leaders: BTreeMap<u64, u64>,
    /// The common applied sequence (entry `i + 1` at `i`).
    committed: Vec<Vec<u8>>,
    /// Acknowledged proposals not yet checked against `committed`: index → payloads.
    unchecked_acks: BTreeMap<u64, Vec<Vec<u8>>>,
    next_payload: u64,
    observer: SimObserver,
    report: SimReport,
}

fn settings(election_ticks: usize, snapshot_entries: u64) -> RaftSettings {
    RaftSettings {
        election_ticks,
        heartbeat_ticks: 2,
        election_timeout_range: Some((election_ticks, election_ticks + 1)),
        snapshot_entries,
        ..RaftSettings::default()
    }
}

impl Simulation {
    fn new(seed: u64, config: SimConfig) -> Result<Self, Violation> {
        let voters: Vec<u64> = (1..=config.nodes as u64).collect();
        let mut simulation = Simulation {
            seed,
            rng: SimRng::new(seed),
            voters: voters.clone(),
            nodes: Vec::new(),
            network: Vec::new(),
            next_sequence: 0,
            partition: None,
            loss_per_mille: config.loss_per_mille,
            duplicate_per_mille: config.duplicate_per_mille,
            step: 0,
            leaders: BTreeMap::new(),
            committed: Vec::new(),
            unchecked_acks: BTreeMap::new(),
            next_payload: 0,
            observer: SimObserver::default(),
            report: SimReport {
                seed,
                nodes: config.nodes,
                ..SimReport::default()
            },
            config,
        };
        for id in voters {
            simulation.nodes.push(SimNode {
                id,
                driver: None,
                durable: Some(RaftLogStore::in_memory(&simulation.voters)),
                verified: 0,
                pending: Vec::new(),
                election_ticks: 10,
            });
            simulation.start(id as usize - 1)?;
        }
        Ok(simulation)
    }

    fn violation(&self, kind: ViolationKind, detail: String) -> Violation {
        Violation {
            seed: self.seed,
            step: self.step,
            kind,
            detail,
        }
    }

    fn start(&mut self, slot: usize) -> Result<(), Violation> {
        let election_ticks = 10 + self.rng.below(10) as usize;
        let node = &mut self.nodes[slot];
        let store = node.durable.take().unwrap_or_else(|| {
            // Unreachable: a node is started only with its store.
            RaftLogStore::in_memory(&self.voters)
        });
        node.election_ticks = election_ticks;
        node.verified = 0;
        node.pending.clear();
        let driver = RaftDriver::new(
            node.id,
            store,
            RecordingMachine::default(),
            &settings(election_ticks, self.config.snapshot_entries),
        );
        match driver {
            Ok(driver) => {
                self.nodes[slot].driver = Some(driver);
                Ok(())
            }
            Err(e) => Err(self.violation(ViolationKind::DriverError, format!("restart: {e}"))),
        }
    }

    fn crash(&mut self, slot: usize) {
        let node = &mut self.nodes[slot];
        let Some(driver) = node.driver.take() else {
            return;
        };
        node.durable = Some(match self.config.bug {
            Bug::ForgetDurableStateOnCrash => RaftLogStore::in_memory(&self.voters),
            Bug::ForgetVoteOnCrash => {
                let mut store = driver.store().durable_copy();
                let mut hard_state = store.hard_state().clone();
                hard_state.vote = 0;
                // In memory: cannot fail.
                let _ = store.set_hard_state(&hard_state);
                store
            }
            _ => driver.store().durable_copy(),
        });
        node.pending.clear();
        self.report.crashes += 1;
    }

    fn live_slots(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|slot| self.nodes[*slot].driver.is_some())
            .collect()
    }

    fn inject_faults(&mut self) -> Result<(), Violation> {
        match &self.partition {
            None if self.rng.chance(self.config.partition_per_mille) => {
                let sides: Vec<u8> = (0..self.nodes.len())
                    .map(|_| self.rng.below(2) as u8)
                    .collect();
                self.partition = Some(sides);
                self.report.partitions += 1;
            }
            Some(_) if self.rng.chance(self.config.heal_per_mille) => self.partition = None,
            _ => {}
        }
        if self.rng.chance(self.config.crash_per_mille) {
            let slot = self.rng.below(self.nodes.len() as u64) as usize;
            self.crash(slot);
        }
        if self.rng.chance(self.config.restart_per_mille) {
            let down: Vec<usize> = (0..self.nodes.len())
                .filter(|slot| self.nodes[*slot].driver.is_none())
                .collect();
            if !down.is_empty() {
                let slot = down[self.rng.below(down.len() as u64) as usize];
                self.start(slot)?;
            }
        }
        Ok(())
    }

    /// A client sends a proposal to a random live node, which redirects to the leader it
    /// knows. Returns the payload if a leader accepted it.
    fn propose(&mut self) -> Result<Option<(usize, Vec<u8>)>, Violation> {
        let live = self.live_slots();
        if live.is_empty() {
            return Ok(None);
        }
        let mut slot = live[self.rng.below(live.len() as u64) as usize];
        if let Some(leader) = self.nodes[slot].driver.as_ref().and_then(|d| d.leader_id()) {
            let leader_slot = leader as usize - 1;
            if self.nodes[leader_slot].driver.is_some() {
                slot = leader_slot;
            }
        }
        self.next_payload += 1;
        let payload = self.next_payload.to_le_bytes().to_vec();
        let Some(driver) = self.nodes[slot].driver.as_mut() else {
            return Ok(None);
        };
        match driver.propose(payload.clone()) {
            Ok(proposal) => {
                self.report.proposals += 1;
                if self.config.bug == Bug::AckBeforeCommit {
                    self.acknowledge(proposal.index, payload.clone());
                }
                self.nodes[slot].pending.push((proposal, payload.clone()));
                Ok(Some((slot, payload)))
            }
            Err(RaftDriverError::NotLeader { .. })
            | Err(RaftDriverError::Raft(raft::Error::ProposalDropped)) => Ok(None),
            Err(e) => Err(self.violation(ViolationKind::DriverError, format!("propose: {e}"))),
        }
    }

    fn acknowledge(&mut self, index: u64, payload: Vec<u8>) {
        self.report.acknowledged += 1;
        self.unchecked_acks.entry(index).or_default().push(payload);
    }

    fn send(&mut self, message: Message) {
        if self.rng.chance(self.loss_per_mille) {
            self.drop_message(&message);
            return;
        }
        let copies = if self.rng.chance(self.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let deliver_at = self.step + 1 + self.rng.below(self.config.max_delay_steps + 1);
            self.next_sequence += 1;
            self.network.push(InFlight {
                deliver_at,
                sequence: self.next_sequence,
                message: message.clone(),
            });
        }
    }

    /// A lost snapshot is reported to its sender, as a real transport reports a failed send;
    /// otherwise raft-rs waits for it forever.
    fn drop_message(&mut self, message: &Message) {
        self.report.messages_dropped += 1;
        if message.get_msg_type() == MessageType::MsgSnapshot
            && let Some(sender) = self.nodes[message.from as usize - 1].driver.as_mut()
        {
            sender.report_snapshot(message.to, SnapshotStatus::Failure);
        }
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        let now = self.step;
        let (mut due, later): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|flight| flight.deliver_at <= now);
        self.network = later;
        due.sort_by_key(|flight| (flight.deliver_at, flight.sequence));
        for flight in due {
            let message = flight.message;
            let (from, to) = (message.from as usize - 1, message.to as usize - 1);
            let cut = self
                .partition
                .as_ref()
                .is_some_and(|sides| sides[from] != sides[to]);
            if cut || self.nodes[to].driver.is_none() {
                self.drop_message(&message);
                continue;
            }
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let result = match self.nodes[to].driver.as_mut() {
                Some(driver) => driver.step(message),
                None => Ok(()),
            };
            if let Err(e) = result {
                return Err(self.violation(ViolationKind::DriverError, format!("step: {e}")));
            }
            self.report.messages_delivered += 1;
            if is_snapshot && let Some(sender) = self.nodes[from].driver.as_mut() {
                sender.report_snapshot(to as u64 + 1, SnapshotStatus::Finish);
            }
        }
        Ok(())
    }

    fn tick(&mut self) {
        for slot in 0..self.nodes.len() {
            let skip = self.rng.chance(self.config.tick_skip_per_mille);
            if !skip && let Some(driver) = self.nodes[slot].driver.as_mut() {
                driver.tick();
            }
        }
    }

    fn handle_ready(&mut self) -> Result<(), Violation> {
        for slot in 0..self.nodes.len() {
            let Some(driver) = self.nodes[slot].driver.as_mut() else {
                continue;
            };
            let outcome = match driver.handle_ready() {
                Ok(outcome) => outcome,
                Err(e) => {
                    return Err(
                        self.violation(ViolationKind::DriverError, format!("handle_ready: {e}"))
                    );
                }
            };
            if outcome.restored_snapshot.is_some() {
                self.report.snapshots_installed += 1;
                self.nodes[slot].verified = 0;
            }
            for applied in &outcome.applied {
                let pending = &mut self.nodes[slot].pending;
                if let Some(position) = pending.iter().position(|(p, _)| p.index == applied.index) {
                    let (proposal, payload) = pending.remove(position);
                    if proposal.term == applied.term && self.config.bug != Bug::AckBeforeCommit {
                        self.acknowledge(proposal.index, payload);
                    }
                }
            }
            // Proposals a snapshot jumped over are neither acknowledged nor lost: the client
            // never heard back.
            let applied_index = self.nodes[slot]
                .driver
                .as_ref()
                .map_or(0, |d| d.applied_index());
            self.nodes[slot]
                .pending
                .retain(|(p, _)| p.index > applied_index);
            for message in outcome.messages {
                self.send(message);
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), Violation> {
        for slot in 0..self.nodes.len() {
            let Some(driver) = self.nodes[slot].driver.as_ref() else {
                continue;
            };
            if driver.is_leader() {
                let (term, id) = (driver.term(), driver.id());
                match self.leaders.get(&term) {
                    Some(other) if *other != id => {
                        return Err(self.violation(
                            ViolationKind::TwoLeadersInOneTerm,
                            format!("nodes {other} and {id} both led term {term}"),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.leaders.insert(term, id);
                        self.report.terms_with_leader += 1;
                    }
                }
            }
            let machine = driver.state_machine();
            if let Some((expected, got)) = machine.gap {
                return Err(self.violation(
                    ViolationKind::Divergence,
                    format!(
                        "node {} applied index {got} where {expected} was next",
                        slot + 1
                    ),
                ));
            }
            for index in self.nodes[slot].verified..machine.entries.len() {
                let entry = &machine.entries[index];
                match self.committed.get(index) {
                    Some(common) if common != entry => {
                        return Err(self.violation(
                            ViolationKind::Divergence,
                            format!(
                                "node {} applied {:?} at index {} where another node applied {:?}",
                                slot + 1,
                                entry,
                                index + 1,
                                common
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => self.committed.push(entry.clone()),
                }
            }
            let verified = machine.entries.len();
            self.nodes[slot].verified = verified;
        }
        let reached = self.committed.len() as u64;
        let checkable: Vec<u64> = self
            .unchecked_acks
            .range(..=reached)
            .map(|(index, _)| *index)
            .collect();
        for index in checkable {
            let payloads = self.unchecked_acks.remove(&index).unwrap_or_default();
            for payload in payloads {
                if self.committed[index as usize - 1] == payload {
                    continue;
                }
                return Err(self.violation(
                    ViolationKind::AcknowledgedLost,
                    format!(
                        "proposal {payload:?} acknowledged at index {index} but the committed entry there is {:?}",
                        self.committed[index as usize - 1]
                    ),
                ));
            }
        }
        Ok(())
    }

    fn one_step(&mut self, faults: bool) -> Result<Option<(usize, Vec<u8>)>, Violation> {
        self.step += 1;
        if faults {
            self.inject_faults()?;
        }
        let proposed = if self.rng.chance(self.config.propose_per_mille) {
            self.propose()?
        } else {
            None
        };
        self.tick();
        self.deliver()?;
        self.handle_ready()?;
        self.check()?;
        self.observe(faults)?;
        Ok(proposed)
    }

    fn run(mut self) -> Result<SimReport, Violation> {
        for _ in 0..self.config.fault_steps {
            self.one_step(true)?;
        }
        // Heal: no partition, every node up, no loss or duplication (delays stay).
        self.partition = None;
        self.loss_per_mille = 0;
        self.duplicate_per_mille = 0;
        for slot in 0..self.nodes.len() {
            if self.nodes[slot].driver.is_none() {
                self.start(slot)?;
            }
        }
        let healed_at = self.step;
        let mut target: Option<Vec<u8>> = None;
        let mut target_index = None;
        let mut proposed_at = 0;
        while self.step < healed_at + self.config.liveness_ticks {
            // Propose (again, if the last try went nowhere) until one commits, then wait for
            // every node to apply it.
            if target_index.is_none()
                && (target.is_none() || self.step >= proposed_at + 50)
                && let Some((_, payload)) = self.propose()?
            {
                target = Some(payload);
                proposed_at = self.step;
            }
            self.one_step(false)?;
            if target_index.is_none()
                && let Some(payload) = &target
            {
                target_index = self
                    .committed
                    .iter()
                    .position(|entry| entry == payload)
                    .map(|position| position + 1);
            }
            if let Some(index) = target_index {
                let everywhere = self.observer.applied >= index as u64
                    && self.nodes.iter().all(|node| {
                        node.driver
                            .as_ref()
                            .is_some_and(|d| d.applied_index() >= index as u64)
                    });
                if everywhere {
                    return self.finish();
                }
            }
        }
        Err(self.violation(
            ViolationKind::NoProgress,
            format!(
                "{} ticks after healing: committed through {}, target {:?} at {:?}, applied {:?}, leaders {:?}",
                self.config.liveness_ticks,
                self.committed.len(),
                target,
                target_index,
                self.nodes
                    .iter()
                    .map(|n| n.driver.as_ref().map(|d| d.applied_index()))
                    .collect::<Vec<_>>(),
                self.nodes
                    .iter()
                    .map(|n| n.driver.as_ref().and_then(|d| d.leader_id()))
                    .collect::<Vec<_>>()
            ),
        ))
    }

    fn finish(mut self) -> Result<SimReport, Violation> {
        if let Some((index, payload)) = self.unchecked_acks.iter().next() {
            let payload = payload.first().cloned().unwrap_or_default();
            return Err(self.violation(
                ViolationKind::AcknowledgedLost,
                format!(
                    "proposal {payload:?} acknowledged at index {index} never committed (committed through {})",
                    self.committed.len()
                ),
            ));
        }
        let mut digest: u64 = 0xCBF2_9CE4_8422_2325;
        for entry in &self.committed {
            for byte in entry.iter().chain(&[0xFF]) {
                digest ^= u64::from(*byte);
                digest = digest.wrapping_mul(0x0100_0000_01B3);
            }
        }
        self.report.steps = self.step;
        self.report.committed_entries = self.committed.len() as u64;
        self.report.digest = digest;
        Ok(self.report)
    }
}

/// Runs one seed. A panic inside raft-rs or the driver (an assertion on its own invariants)
/// is reported as a violation of that seed too.
pub fn run(seed: u64, config: &SimConfig) -> Result<SimReport, Violation> {
    let config = config.clone();
    match std::panic::catch_unwind(move || Simulation::new(seed, config)?.run()) {
        Ok(result) => result,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            Err(Violation {
                seed,
                step: 0,
                kind: ViolationKind::Panic,
                detail,
            })
        }
    }
}

/// The seed to replay from `SHARDLOG_SIM_SEED`, if set.
pub fn replay_seed() -> Option<u64> {
    std::env::var(SEED_ENV).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_u64(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    /// 1000 seeds × 2000 fault steps by default; `SHARDLOG_SIM_SEEDS` / `SHARDLOG_SIM_STEPS`
    /// make a longer run (`make sim`), `SHARDLOG_SIM_SEED` replays one seed.
    #[test]
    fn seeded_runs_keep_raft_safe_and_live() {
        let steps = env_u64("SHARDLOG_SIM_STEPS", 2000);
        let seeds: Vec<u64> = match replay_seed() {
            Some(seed) => vec![seed],
            None => (1..=env_u64("SHARDLOG_SIM_SEEDS", 1000)).collect(),
        };
        let started = std::time::Instant::now();
        let mut total = SimReport::default();
        for seed in &seeds {
            match run(*seed, &SimConfig::for_seed(*seed, steps)) {
                Ok(report) => {
                    assert!(report.acknowledged > 0, "seed {seed}: nothing acknowledged");
                    total.steps += report.steps;
                    total.proposals += report.proposals;
                    total.acknowledged += report.acknowledged;
                    total.committed_entries += report.committed_entries;
                    total.terms_with_leader += report.terms_with_leader;
                    total.crashes += report.crashes;
                    total.partitions += report.partitions;
                    total.snapshots_installed += report.snapshots_installed;
                    total.messages_delivered += report.messages_delivered;
                    total.messages_dropped += report.messages_dropped;
                    total.observer_fetches += report.observer_fetches;
                    total.observer_snapshots += report.observer_snapshots;
                }
                Err(violation) => {
                    eprintln!("raft simulator violation: {violation}");
                    eprintln!(
                        "replay: {SEED_ENV}={seed} SHARDLOG_SIM_STEPS={steps} \
                         cargo test --release --lib cluster::sim"
                    );
                    panic!("{violation}");
                }
            }
        }
        // A figure for `make sim`, not an assertion.
        println!(
            "raft sim: {} seeds, {} steps, {} proposals, {} acknowledged, {} committed entries, \
             {} terms with a leader, {} crashes, {} partitions, {} snapshots installed, \
             {} messages delivered, {} dropped, {} observer fetches ({} snapshots), {:.1}s",
            seeds.len(),
            total.steps,
            total.proposals,
            total.acknowledged,
            total.committed_entries,
            total.terms_with_leader,
            total.crashes,
            total.partitions,
            total.snapshots_installed,
            total.messages_delivered,
            total.messages_dropped,
            total.observer_fetches,
            total.observer_snapshots,
            started.elapsed().as_secs_f64()
        );
        if replay_seed().is_none() {
            // The faults the runs exist for did happen.
            assert!(total.crashes > 0 && total.partitions > 0 && total.snapshots_installed > 0);
            assert!(
                total.observer_snapshots > 0 && total.observer_fetches > total.observer_snapshots
            );
        }
    }

    #[test]
    fn a_seed_replays_exactly() {
        let config = SimConfig::for_seed(7, 1000);
        let first = run(7, &config).unwrap();
        let second = run(7, &config).unwrap();
        assert_eq!(first, second);
        let other = run(8, &SimConfig::for_seed(8, 1000)).unwrap();
        assert_ne!(first.digest, other.digest);
    }

    fn first_violation(bug: Bug) -> Option<Violation> {
        (1..=100u64).find_map(|seed| {
            let mut config = SimConfig::for_seed(seed, 2000);
            config.bug = bug;
            run(seed, &config).err()
        })
    }

    #[test]
    fn forgetting_the_vote_on_crash_is_caught_as_two_leaders_in_one_term() {
        // Frequent crashes and restarts make double votes likely.
        let violation = (1..=300u64).find_map(|seed| {
            let mut config = SimConfig::for_seed(seed, 2000);
            config.bug = Bug::ForgetVoteOnCrash;
            config.crash_per_mille = 100;
            config.restart_per_mille = 300;
            run(seed, &config).err()
        });
        let violation = violation.expect("the simulator missed a node voting twice in a term");
        eprintln!("caught as expected: {violation}");
        assert!(
            matches!(
                violation.kind,
                ViolationKind::TwoLeadersInOneTerm | ViolationKind::Divergence
            ),
            "{violation}"
        );
    }

    #[test]
    fn acknowledging_before_commit_is_caught() {
        let violation = first_violation(Bug::AckBeforeCommit)
            .expect("the simulator missed acknowledgements before commit");
        assert_eq!(
            violation.kind,
            ViolationKind::AcknowledgedLost,
            "{violation}"
        );
        eprintln!("caught as expected: {violation}");
        assert!(violation.to_string().starts_with("SHARDLOG_SIM_SEED="));
    }

    #[test]
    fn forgetting_persisted_state_on_crash_is_caught() {
        let violation = first_violation(Bug::ForgetDurableStateOnCrash)
            .expect("the simulator missed a store that loses its state on crash");
        eprintln!("caught as expected: {violation}");
        assert!(violation.to_string().contains(SEED_ENV), "{violation}");
    }
}
