//! `bench-harness group-settle` (issue 20): how long a consumer group takes to settle after
//! one member leaves, classic `cooperative-sticky` against the KIP-848 `consumer` protocol,
//! alternating round by round in one run, and how many partitions the survivors had revoked
//! (paused) on the way.
//!
//! A round: `members` librdkafka consumers (one thread each, polling) join a fresh group on
//! the topic; once every partition is owned exactly once, balanced (owned counts differ by at
//! most one) and no assignment changed for `QUIET`, member 0 closes (a LeaveGroup, or a
//! leave heartbeat with the consumer protocol). Settle time: from the start of that close
//! until the survivors own every partition exactly once, balanced. Ownership is what the
//! members' rebalance callbacks say: both protocols here are incremental, so an assign adds
//! partitions and a revoke removes them.
//!
//! Owns: the member threads of a round. Imports: `stats` (median). Runs on: the caller's
//! thread plus one thread per member.

use crate::stats::median;
use anyhow::{Context, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the full group must keep one assignment before the leaver goes.
const QUIET: Duration = Duration::from_millis(1500);
/// How often the round's thread looks at the assignment.
const CHECK_EVERY: Duration = Duration::from_millis(2);
/// One consumer poll: short, so rebalance callbacks run promptly.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// `group.protocol=classic`, `partition.assignment.strategy=cooperative-sticky`.
    ClassicCooperativeSticky,
    /// `group.protocol=consumer` (KIP-848; the broker assigns).
    Consumer,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::ClassicCooperativeSticky => "classic cooperative-sticky",
            Protocol::Consumer => "consumer (KIP-848)",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SettleOptions {
    pub topic: String,
    pub partitions: u32,
    pub members: usize,
    /// Rounds per protocol; the protocols alternate.
    pub rounds: usize,
    /// The classic members' `heartbeat.interval.ms` (the consumer protocol's interval is the
    /// broker's, `group.consumer.heartbeat.interval.ms`).
    pub classic_heartbeat_ms: u32,
    /// Longest wait for a group to form or to settle, per round.
    pub round_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    pub protocol: Protocol,
    pub round: usize,
    pub settle_ms: f64,
    /// Partitions revoked from the survivors between the leave and the settled assignment.
    pub survivor_partitions_revoked: usize,
    /// Survivors that had at least one partition revoked.
    pub survivors_with_revocations: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProtocolSummary {
    pub protocol: Protocol,
    pub settle_ms_median: f64,
    pub settle_ms: Vec<f64>,
    pub survivor_partitions_revoked: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettleReport {
    pub options: SettleOptions,
    pub rounds: Vec<RoundResult>,
    pub summaries: Vec<ProtocolSummary>,
}

/// What the members' callbacks saw: per member, the partitions it owns and how many were
/// revoked from it; when any assignment last changed.
struct Ownership {
    owned: Vec<BTreeSet<i32>>,
    revoked: Vec<usize>,
    last_change: Instant,
}

type Shared = Arc<Mutex<Ownership>>;

/// Whether `owned` (one set per member) covers partitions `0..partitions` exactly once,
/// with owned counts that differ by at most one.
pub fn settled(owned: &[BTreeSet<i32>], partitions: u32) -> bool {
    let total: usize = owned.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    let complete = total == partitions as usize
        && union.len() == total
        && union.iter().all(|p| (0..partitions as i32).contains(p));
    let counts = owned.iter().map(BTreeSet::len);
    let (min, max) = (counts.clone().min(), counts.max());
    complete && matches!((min, max), (Some(min), Some(max)) if max - min <= 1)
}

struct Tracker {
    index: usize,
    shared: Shared,
}

impl Tracker {
    fn update(&self, partitions: &TopicPartitionList, add: bool) {
        let Ok(mut ownership) = self.shared.lock() else {
            return;
        };
        for element in partitions.elements() {
            if add {
                ownership.owned[self.index].insert(element.partition());
            } else if ownership.owned[self.index].remove(&element.partition()) {
                ownership.revoked[self.index] += 1;
            }
        }
        ownership.last_change = Instant::now();
    }
}

impl ClientContext for Tracker {}

impl ConsumerContext for Tracker {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.update(partitions, false);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.update(partitions, true);
        }
    }
}

struct Member {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl Member {
    /// Stops polling and closes the consumer (leaving the group); waits for the close.
    fn close(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("member thread panicked"))?
    }
}

fn start_member(
    config: ClientConfig,
    topic: String,
    index: usize,
    shared: Shared,
) -> anyhow::Result<Member> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let consumer: BaseConsumer<Tracker> = config
        .create_with_context(Tracker { index, shared })
        .context("cannot create consumer")?;
    let thread = std::thread::Builder::new()
        .name(format!("settle-member-{index}"))
        .spawn(move || {
            consumer.subscribe(&[&topic])?;
            while !stopped.load(Ordering::Relaxed) {
                // Errors (e.g. a retried coordinator lookup) are librdkafka's to recover from.
                let _ = consumer.poll(POLL);
            }
            drop(consumer);
            Ok(())
        })?;
    Ok(Member { stop, thread })
}

fn member_config(
    bootstrap: &str,
    group: &str,
    protocol: Protocol,
    options: &SettleOptions,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    match protocol {
        Protocol::ClassicCooperativeSticky => {
            config
                .set("group.protocol", "classic")
                .set("partition.assignment.strategy", "cooperative-sticky")
                .set(
                    "heartbeat.interval.ms",
                    options.classic_heartbeat_ms.to_string(),
                );
        }
        Protocol::Consumer => {
            config.set("group.protocol", "consumer");
        }
    }
    config
}

/// Waits until `done(ownership)` holds, or fails after the round timeout.
fn wait_until(
    shared: &Shared,
    deadline: Instant,
    what: &str,
    done: impl Fn(&Ownership) -> bool,
) -> anyhow::Result<Instant> {
    loop {
        {
            let ownership = shared
                .lock()
                .map_err(|_| anyhow::anyhow!("ownership lock poisoned"))?;
            if done(&ownership) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                let counts: Vec<usize> = ownership.owned.iter().map(BTreeSet::len).collect();
                bail!("{what}: not reached in time (partitions owned per member: {counts:?})");
            }
        }
        std::thread::sleep(CHECK_EVERY);
    }
}

/// One round of `protocol`: the group forms, member 0 leaves, the survivors settle.
pub fn run_round(
    bootstrap: &str,
    protocol: Protocol,
    round: usize,
    options: &SettleOptions,
) -> anyhow::Result<RoundResult> {
    let group = format!(
        "settle-{}-{round}-{}",
        match protocol {
            Protocol::ClassicCooperativeSticky => "classic",
            Protocol::Consumer => "consumer",
        },
        std::process::id()
    );
    let shared: Shared = Arc::new(Mutex::new(Ownership {
        owned: vec![BTreeSet::new(); options.members],
        revoked: vec![0; options.members],
        last_change: Instant::now(),
    }));
    let timeout = Duration::from_millis(options.round_timeout_ms);
    let mut members = Vec::with_capacity(options.members);
    for index in 0..options.members {
        let config = member_config(bootstrap, &group, protocol, options);
        members.push(start_member(
            config,
            options.topic.clone(),
            index,
            shared.clone(),
        )?);
    }
    let partitions = options.partitions;
    wait_until(&shared, Instant::now() + timeout, "group formed", |o| {
        settled(&o.owned, partitions) && o.last_change.elapsed() >= QUIET
    })?;
    let revoked_before = shared
        .lock()
        .map_err(|_| anyhow::anyhow!("ownership lock poisoned"))?
        .revoked
        .clone();
    let mut members = members.into_iter();
    let leaver = members.next().context("no members")?;
    let left_at = Instant::now();
    leaver.close()?;
    let settled_at = wait_until(&shared, left_at + timeout, "survivors settled", |o| {
        settled(&o.owned[1..], partitions)
    })?;
    let revoked: Vec<usize> = {
        let ownership = shared
            .lock()
            .map_err(|_| anyhow::anyhow!("ownership lock poisoned"))?;
        (1..options.members)
            .map(|i| ownership.revoked[i] - revoked_before[i])
            .collect()
    };
    for member in members {
        member.close()?;
    }
    Ok(RoundResult {
        protocol,
        round,
        settle_ms: settled_at.duration_since(left_at).as_secs_f64() * 1000.0,
        survivor_partitions_revoked: revoked.iter().sum(),
        survivors_with_revocations: revoked.iter().filter(|n| **n > 0).count(),
    })
}

/// Every round, the protocols alternating (classic first), and a summary per protocol.
pub fn run(bootstrap: &str, options: &SettleOptions) -> anyhow::Result<SettleReport> {
    if options.members < 2 {
        bail!("--members must be at least 2 (one leaves, one stays)");
    }
    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        for protocol in [Protocol::ClassicCooperativeSticky, Protocol::Consumer] {
            let result = run_round(bootstrap, protocol, round, options)
                .with_context(|| format!("{} round {round}", protocol.name()))?;
            println!(
                "round {round} {}: settled in {:.0} ms, {} partitions revoked from {} survivors",
                protocol.name(),
                result.settle_ms,
                result.survivor_partitions_revoked,
                result.survivors_with_revocations
            );
            rounds.push(result);
        }
    }
    let summaries = [Protocol::ClassicCooperativeSticky, Protocol::Consumer]
        .into_iter()
        .map(|protocol| {
            let mine: Vec<&RoundResult> =
                rounds.iter().filter(|r| r.protocol == protocol).collect();
            let settle_ms: Vec<f64> = mine.iter().map(|r| r.settle_ms).collect();
            ProtocolSummary {
                protocol,
                settle_ms_median: median(settle_ms.iter().copied()),
                settle_ms,
                survivor_partitions_revoked: mine
                    .iter()
                    .map(|r| r.survivor_partitions_revoked)
                    .collect(),
            }
        })
        .collect();
    Ok(SettleReport {
        options: options.clone(),
        rounds,
        summaries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(sets: &[&[i32]]) -> Vec<BTreeSet<i32>> {
        sets.iter().map(|s| s.iter().copied().collect()).collect()
    }

    #[test]
    fn settled_means_every_partition_once_and_balanced() {
        assert!(settled(&owned(&[&[0, 1], &[2, 3], &[4]]), 5));
        // A partition owned twice, one missing, one out of range, unbalanced.
        assert!(!settled(&owned(&[&[0, 1], &[1, 3], &[4]]), 5));
        assert!(!settled(&owned(&[&[0, 1], &[3], &[4]]), 5));
        assert!(!settled(&owned(&[&[0, 1], &[2, 3], &[9]]), 5));
        assert!(!settled(&owned(&[&[0, 1, 2], &[3], &[]]), 4));
        assert!(!settled(&owned(&[]), 1));
    }
}
