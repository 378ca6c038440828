//! Seeded deterministic simulator for partition replication: three brokers replicate one
//! partition (RF=3, min.insync.replicas=2, acks=all) through a lossy network, with the
//! controller's real partition decisions (`cluster::partition_changes`: KIP-966 election,
//! ELR, AlterPartition) and the real `PartitionLeader` / `PartitionFollower` state machines.
//!
//! Faults: message loss, delay and reordering; network splits (controller and brokers);
//! broker crashes (kill -9: the log survives) and power losses (unsynced records are lost;
//! only while every replica is in the ISR, since losing two copies' unsynced tails at once
//! loses data in Kafka too); controlled restarts. Checked after every step (`checks`): no
//! record below any replica's high watermark ever changes (committed history), a newly
//! elected leader holds the whole committed history, one leader per epoch, epochs never go
//! down in a log, every acks=all acknowledgement stays in the committed history. After the
//! faults heal: a leader, a full ISR, equal logs and a fresh acknowledged write (liveness),
//! unless KIP-966 leaves no eligible replica (counted, see docs/replication.md).
//!
//! A failing seed is printed as `SHARDLOG_REPLICATION_SIM_SEED=<seed>`; setting it replays
//! exactly that seed; `SHARDLOG_SIM_TRACE=1` prints every event of a replay.

mod broker;
mod checks;
mod controller;
mod tests;

use super::NodeId;
use super::leader::{IsrProposal, LeaderSettings};
use crate::cluster::image::PartitionState;
use crate::cluster::test_rng::Rng;
use crate::model::ErrorCode;
use crate::model::leader_epochs::EpochEnd;
use broker::SimBroker;
use checks::History;
use controller::SimController;
use std::collections::BTreeSet;
use std::fmt;

pub const SEED_ENV: &str = "SHARDLOG_REPLICATION_SIM_SEED";
const CONTROLLER: NodeId = 0;
const BROKERS: [NodeId; 3] = [1, 2, 3];
/// Per-step rolls (of 1000) at or above which a reassignment adds the missing replica back,
/// and (with all three replicas) removes one.
const REASSIGN_BACK_FROM: u64 = 985;
const REMOVE_REPLICA_FROM: u64 = 997;
const MIN_INSYNC_REPLICAS: usize = 2;
/// Simulated milliseconds per step.
const STEP_MS: i64 = 10;

/// Bugs the checks must catch (`the_checks_catch_deliberate_bugs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The leader acknowledges acks=all writes when it appends them.
    pub ack_on_append: bool,
    /// No truncation by leader epoch: followers ignore OffsetsForLeaderEpoch answers and the
    /// leader skips the fetch-time divergence check (the pre-KIP-101 world).
    pub no_epoch_truncation: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub seed: u64,
    /// Steps with faults; healing and the liveness check follow.
    pub fault_steps: u64,
    pub bugs: Bugs,
    pub trace: bool,
}

/// What a run did (summed over seeds by the tests, printed by `make sim`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimReport {
    pub steps: u64,
    pub produced: u64,
    pub acked: u64,
    pub committed: u64,
    pub leader_epochs: u64,
    pub crashes: u64,
    pub power_losses: u64,
    pub controlled_restarts: u64,
    pub splits: u64,
    pub truncations: u64,
    pub isr_changes: u64,
    /// Reassignments started (a replica removed, or the missing one added back).
    pub reassignments: u64,
    /// Runs that ended with no eligible replica (KIP-966 needs unclean recovery): safety was
    /// checked, liveness was not.
    pub offline_without_eligible_replica: u64,
}

impl SimReport {
    pub fn add(&mut self, other: &SimReport) {
        self.steps += other.steps;
        self.produced += other.produced;
        self.acked += other.acked;
        self.committed += other.committed;
        self.leader_epochs += other.leader_epochs;
        self.crashes += other.crashes;
        self.power_losses += other.power_losses;
        self.controlled_restarts += other.controlled_restarts;
        self.splits += other.splits;
        self.truncations += other.truncations;
        self.isr_changes += other.isr_changes;
        self.reassignments += other.reassignments;
        self.offline_without_eligible_replica += other.offline_without_eligible_replica;
    }
}

/// A broken invariant, with the seed that replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SEED_ENV}={} (step {}): {}",
            self.seed, self.step, self.message
        )
    }
}

/// A record as the simulated log stores it: the id is unique per produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    offset: i64,
    epoch: i32,
    id: u64,
}

#[derive(Debug, Clone)]
enum FetchAnswer {
    Records {
        records: Vec<Record>,
        high_watermark: i64,
    },
    Diverging(EpochEnd),
}

#[derive(Debug, Clone)]
enum Message {
    Register {
        incarnation: u64,
        clean: bool,
    },
    Registered {
        incarnation: u64,
        broker_epoch: i64,
        partition_epoch: i32,
    },
    Heartbeat {
        broker_epoch: i64,
    },
    AlterPartition {
        broker_epoch: i64,
        proposal: IsrProposal,
    },
    AlterPartitionAnswer {
        proposal: IsrProposal,
        answer: Result<PartitionState, ErrorCode>,
    },
    Metadata(PartitionState),
    EpochRequest {
        current_leader_epoch: i32,
        leader_epoch: i32,
    },
    EpochAnswer {
        current_leader_epoch: i32,
        asked: i32,
        answer: Result<EpochEnd, ErrorCode>,
    },
    FetchRequest {
        broker_epoch: i64,
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: Option<i32>,
    },
    FetchAnswer {
        last_fetched_epoch: Option<i32>,
        current_leader_epoch: i32,
        fetch_offset: i64,
        answer: Result<FetchAnswer, ErrorCode>,
    },
}

#[derive(Debug, Clone)]
struct Envelope {
    deliver_at: i64,
    from: NodeId,
    to: NodeId,
    message: Message,
}

/// Delivery with loss, delay, reordering and splits.
struct Network {
    in_flight: Vec<Envelope>,
    /// Pairs that cannot talk (both directions).
    cut: BTreeSet<(NodeId, NodeId)>,
    loss_percent: u64,
    max_delay_ms: i64,
}

impl Network {
    fn send(&mut self, rng: &mut Rng, now: i64, from: NodeId, to: NodeId, message: Message) {
        if rng.chance(self.loss_percent) {
            return;
        }
        let delay = STEP_MS * rng.below((self.max_delay_ms / STEP_MS) as u64 + 1) as i64;
        self.in_flight.push(Envelope {
            deliver_at: now + delay,
            from,
            to,
            message,
        });
    }

    fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Messages due at `now`, in a seeded order (reordering within a step).
    fn due(&mut self, rng: &mut Rng, now: i64) -> Vec<Envelope> {
        let (mut due, later): (Vec<Envelope>, Vec<Envelope>) = self
            .in_flight
            .drain(..)
            .partition(|envelope| envelope.deliver_at <= now);
        self.in_flight = later;
        for index in (1..due.len()).rev() {
            let other = rng.below(index as u64 + 1) as usize;
            due.swap(index, other);
        }
        due.retain(|envelope| !self.is_cut(envelope.from, envelope.to));
        due
    }
}

/// The simulated world: controller, brokers, network, client, checks.
struct World {
    config: SimConfig,
    rng: Rng,
    now: i64,
    step: u64,
    network: Network,
    controller: SimController,
    brokers: Vec<SimBroker>,
    history: History,
    report: SimReport,
    next_record_id: u64,
}

impl World {
    fn new(config: SimConfig) -> World {
        let settings = LeaderSettings {
            replica_lag_time_max_ms: 300,
            min_insync_replicas: MIN_INSYNC_REPLICAS,
            // Longer than a round trip can take (200 ms each way here): one AlterPartition
            // in flight, as Kafka's AlterPartitionManager sends (see LeaderSettings).
            isr_proposal_retry_ms: 500,
        };
        World {
            config,
            rng: Rng::with_seed(config.seed),
            now: 0,
            step: 0,
            network: Network {
                in_flight: Vec::new(),
                cut: BTreeSet::new(),
                loss_percent: 0,
                max_delay_ms: 0,
            },
            controller: SimController::new(&BROKERS, MIN_INSYNC_REPLICAS),
            brokers: BROKERS
                .iter()
                .map(|&id| SimBroker::new(id, settings, config.bugs))
                .collect(),
            history: History::default(),
            report: SimReport::default(),
            next_record_id: 1,
        }
    }

    fn trace(&self, event: impl FnOnce() -> String) {
        if self.config.trace {
            eprintln!("[{} t={}] {}", self.step, self.now, event());
        }
    }

    fn broker_mut(&mut self, id: NodeId) -> &mut SimBroker {
        &mut self.brokers[(id - 1) as usize]
    }

    fn violation(&self, message: String) -> Violation {
        Violation {
            seed: self.config.seed,
            step: self.step,
            message,
        }
    }

    /// One step: faults (if `faulty`), client produce, message delivery, timers, checks.
    fn step(&mut self, faulty: bool) -> Result<(), Violation> {
        self.step += 1;
        self.now += STEP_MS;
        self.report.steps += 1;
        if faulty {
            self.inject_faults();
        }
        if self.rng.chance(30) {
            self.produce()?;
        }
        let due = self.network.due(&mut self.rng, self.now);
        for envelope in due {
            self.deliver(envelope)?;
        }
        let now = self.now;
        let mut outbox = Vec::new();
        for broker in &mut self.brokers {
            broker.tick(now, &mut self.rng, &mut outbox);
        }
        outbox.extend(self.controller.tick(now));
        self.send_all(outbox);
        checks::check_step(self).map_err(|message| self.violation(message))
    }

    fn send_all(&mut self, outbox: Vec<(NodeId, NodeId, Message)>) {
        for (from, to, message) in outbox {
            self.network
                .send(&mut self.rng, self.now, from, to, message);
        }
    }

    fn deliver(&mut self, envelope: Envelope) -> Result<(), Violation> {
        let Envelope {
            from, to, message, ..
        } = envelope;
        let now = self.now;
        let mut outbox = Vec::new();
        if to == CONTROLLER {
            outbox.extend(self.controller.receive(from, message, now));
            for (_, _, message) in &outbox {
                if matches!(message, Message::Metadata(_)) {
                    self.report.isr_changes += 1;
                }
            }
        } else {
            let index = (to - 1) as usize;
            let events = self.brokers[index].receive(from, message, now, &mut outbox);
            for event in events {
                self.record_event(to, event)?;
            }
        }
        self.send_all(outbox);
        Ok(())
    }

    fn record_event(&mut self, node: NodeId, event: broker::Event) -> Result<(), Violation> {
        match event {
            broker::Event::BecameLeader { epoch } => {
                self.report.leader_epochs += 1;
                self.trace(|| format!("broker {node} leads epoch {epoch}"));
                let broker = &self.brokers[(node - 1) as usize];
                checks::check_new_leader(&mut self.history, node, epoch, broker.records())
                    .map_err(|message| self.violation(message))
            }
            broker::Event::Acked(records) => {
                for record in records {
                    self.history.acked.push((record.offset, record.id));
                    self.report.acked += 1;
                }
                Ok(())
            }
            broker::Event::Truncated { removed } => {
                self.trace(|| format!("broker {node} truncated {removed} records"));
                self.report.truncations += 1;
                Ok(())
            }
        }
    }

    /// The client sends a few records to a broker that believes it leads (a stale leader
    /// may take them: they must never be acknowledged as committed unless they are).
    fn produce(&mut self) -> Result<(), Violation> {
        let leaders: Vec<NodeId> = self
            .brokers
            .iter()
            .filter(|broker| broker.believes_leader())
            .map(|broker| broker.id())
            .collect();
        if leaders.is_empty() {
            return Ok(());
        }
        let target = leaders[self.rng.below(leaders.len() as u64) as usize];
        let count = 1 + self.rng.below(3);
        let ids: Vec<u64> = (0..count)
            .map(|_| {
                self.next_record_id += 1;
                self.next_record_id
            })
            .collect();
        let now = self.now;
        let mut events = Vec::new();
        if self
            .broker_mut(target)
            .produce(&ids, now, &mut events)
            .is_ok()
        {
            self.report.produced += count;
        }
        for event in events {
            self.record_event(target, event)?;
        }
        Ok(())
    }

    fn up_count(&self) -> usize {
        self.brokers.iter().filter(|broker| broker.is_up()).count()
    }

    fn inject_faults(&mut self) {
        // Network weather changes now and then.
        if self.rng.chance(2) {
            self.network.loss_percent = [0, 0, 5, 20][self.rng.below(4) as usize];
            self.network.max_delay_ms = STEP_MS * [0, 2, 5, 20][self.rng.below(4) as usize];
        }
        if self.rng.chance(1) {
            let a = self.rng.below(4) as NodeId;
            let b = self.rng.below(4) as NodeId;
            if a != b {
                self.network.cut.insert((a.min(b), a.max(b)));
                self.report.splits += 1;
                self.trace(|| format!("split {a} | {b}"));
            }
        }
        if self.rng.chance(2) && !self.network.cut.is_empty() {
            self.network.cut.clear();
            self.trace(|| "splits healed".into());
        }
        let index = self.rng.below(BROKERS.len() as u64) as usize;
        let node = BROKERS[index];
        let roll = self.rng.below(1000);
        let broker_up = self.brokers[index].is_up();
        if broker_up && roll < 4 && self.up_count() == BROKERS.len() {
            // At most one broker down at a time.
            let power_loss = self.rng.chance(50) && self.controller.isr_is_full();
            let now = self.now;
            self.brokers[index].crash(power_loss, now);
            if power_loss {
                self.report.power_losses += 1;
            } else {
                self.report.crashes += 1;
            }
            self.trace(|| format!("broker {node} down (power loss: {power_loss})"));
        } else if broker_up && roll < 6 && self.up_count() == BROKERS.len() {
            // Controlled shutdown: leadership moves first, the log is synced, then it stops.
            let now = self.now;
            let outbox = self.controller.controlled_shutdown(node, now);
            self.send_all(outbox);
            self.brokers[index].stop_cleanly(now);
            self.report.controlled_restarts += 1;
            self.trace(|| format!("broker {node} shut down cleanly"));
        } else if roll >= REASSIGN_BACK_FROM
            && self.up_count() == BROKERS.len()
            && !self.controller.reassigning()
        {
            // Replicas are removed rarely and added back soon: runs spend most steps at RF=3.
            let full = self.controller.state().replicas.len() == BROKERS.len();
            if !full || roll >= REMOVE_REPLICA_FROM {
                self.reassign(node);
            }
        } else if !broker_up && roll < 60 {
            let now = self.now;
            let mut outbox = Vec::new();
            self.brokers[index].restart(now, &mut outbox);
            self.send_all(outbox);
            self.trace(|| format!("broker {node} restarts"));
        }
    }

    /// Reassigns the partition: without `node` if all three brokers hold it, else back to
    /// all three (the missing one placed at a random position).
    fn reassign(&mut self, node: NodeId) {
        let mut target = self.controller.state().replicas.clone();
        if target.len() == BROKERS.len() {
            target.retain(|replica| *replica != node);
        } else {
            let missing = BROKERS
                .iter()
                .copied()
                .find(|broker| !target.contains(broker));
            let Some(missing) = missing else { return };
            let at = self.rng.below(target.len() as u64 + 1) as usize;
            target.insert(at, missing);
        }
        let now = self.now;
        let outbox = self.controller.reassign(&target, now);
        self.send_all(outbox);
        self.report.reassignments += 1;
        self.trace(|| format!("reassign to {target:?}"));
    }

    /// Heals every fault and checks the partition recovers.
    fn heal_and_check_liveness(&mut self) -> Result<(), Violation> {
        self.network.cut.clear();
        self.network.loss_percent = 0;
        self.network.max_delay_ms = STEP_MS;
        for index in 0..self.brokers.len() {
            if !self.brokers[index].is_up() {
                let now = self.now;
                let mut outbox = Vec::new();
                self.brokers[index].restart(now, &mut outbox);
                self.send_all(outbox);
            }
        }
        let acked_before = self.report.acked;
        let mut converged = false;
        for _ in 0..3_000 {
            self.step(false)?;
            if self.controller.has_no_eligible_replica() {
                if !self.controller.emptied_by_unclean_restart() {
                    return Err(self.violation(format!(
                        "no eligible replica left, and no unclean restart took the last one: {:?}",
                        self.controller.state()
                    )));
                }
                self.report.offline_without_eligible_replica += 1;
                return Ok(());
            }
            if self.report.acked > acked_before && checks::converged(self) {
                converged = true;
                break;
            }
        }
        if !converged {
            return Err(self.violation(format!(
                "not live after healing: controller {:?}; brokers {}",
                self.controller.state(),
                checks::describe_brokers(self)
            )));
        }
        Ok(())
    }
}

/// Runs one seed: `fault_steps` steps with faults, then healing and the liveness check.
pub fn run(config: SimConfig) -> Result<SimReport, Violation> {
    let mut world = World::new(config);
    let mut outbox = Vec::new();
    for broker in &mut world.brokers {
        broker.restart(0, &mut outbox);
    }
    world.send_all(outbox);
    for _ in 0..config.fault_steps {
        world.step(true)?;
    }
    world.heal_and_check_liveness()?;
    checks::check_final(&world).map_err(|message| world.violation(message))?;
    world.report.committed = world.history.committed.len() as u64;
    Ok(world.report)
}

/// The seed to replay, if `SHARDLOG_REPLICATION_SIM_SEED` is set.
pub fn seed_from_env() -> Option<u64> {
    std::env::var(SEED_ENV).ok()?.trim().parse().ok()
}
