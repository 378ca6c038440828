//! The start-up watchdog. Each executor reports where its start-up is (`StartupPhase`: mesh
//! join, io_uring probe, opening partition X (n of N), loading groups, loading transactions,
//! finished); a watchdog *thread* — not a task on an executor that may itself be stuck —
//! logs at WARN, once start-up has taken `shard.startup_watchdog_ms` and again every that
//! long, which shard is in which phase and since when, and logs "start-up finished" (INFO)
//! when every shard is done. The restart stress loop waits for that line.
//!
//! Also owns the test-only stall hook: `SHARDLOG_TEST_STARTUP_STALL=<shard>:<phase>:<ms>`
//! blocks that shard's executor thread (std::thread::sleep) when it enters that phase (for
//! `opening_partitions`: at its first partition), as a lost wake-up or stuck syscall would.
//!
//! Owns: `StartupWatch`, `ShardStartup`, the watchdog thread. May import: std, tracing,
//! metadata (to count owned partitions), storage (the open observer). Runs on: every
//! executor (reporting, never blocking except for the test stall) and the watchdog thread.
//! Invariants: a slot's phase only moves forward; the watchdog thread only reads the shared
//! slots and never waits for an executor; it exits once every shard finished or the pool
//! stops.

use super::Shard;
use crate::metadata::Catalog;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The environment variable of the test-only stall hook.
pub const STALL_ENV: &str = "SHARDLOG_TEST_STARTUP_STALL";

/// Where a shard's start-up is, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StartupPhase {
    /// The executor runs its first task; it does not know its shard id yet.
    ExecutorStarted,
    /// Joining the channel mesh (waits for every other executor).
    MeshJoin,
    /// Opening a probe file so glommio decides io_uring polling on real data.
    IopollProbe,
    /// Recovering and opening the partitions this shard owns.
    OpeningPartitions,
    /// Replaying the owned `__consumer_offsets` partitions.
    LoadingGroups,
    /// Replaying the owned `__transaction_state` partitions, finishing prepared ones.
    LoadingTransactions,
    /// Done: the shard serves (or waits for the other shards).
    Finished,
}

impl StartupPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            StartupPhase::ExecutorStarted => "executor_started",
            StartupPhase::MeshJoin => "mesh_join",
            StartupPhase::IopollProbe => "iopoll_probe",
            StartupPhase::OpeningPartitions => "opening_partitions",
            StartupPhase::LoadingGroups => "loading_groups",
            StartupPhase::LoadingTransactions => "loading_transactions",
            StartupPhase::Finished => "finished",
        }
    }
}

/// A test stall: block `shard`'s executor thread for `duration` when it enters `phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallSpec {
    pub shard: usize,
    pub phase: StartupPhase,
    pub duration: Duration,
}

impl StallSpec {
    /// Parses `<shard>:<phase>:<ms>`; only phases after the mesh join (a known shard id).
    pub fn parse(spec: &str) -> Result<StallSpec, String> {
        let wrong = || {
            format!(
                "{STALL_ENV}={spec:?}: expected <shard>:<phase>:<ms> with phase one of \
                 iopoll_probe, opening_partitions, loading_groups, loading_transactions"
            )
        };
        let mut parts = spec.split(':');
        let (Some(shard), Some(phase), Some(ms), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(wrong());
        };
        let phase = [
            StartupPhase::IopollProbe,
            StartupPhase::OpeningPartitions,
            StartupPhase::LoadingGroups,
            StartupPhase::LoadingTransactions,
        ]
        .into_iter()
        .find(|p| p.as_str() == phase)
        .ok_or_else(wrong)?;
        Ok(StallSpec {
            shard: shard.parse().map_err(|_| wrong())?,
            phase,
            duration: Duration::from_millis(ms.parse().map_err(|_| wrong())?),
        })
    }

    /// The stall the environment asks for, if any.
    pub fn from_env() -> Result<Option<StallSpec>, String> {
        match std::env::var(STALL_ENV) {
            Ok(spec) => StallSpec::parse(&spec).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{STALL_ENV} is not UTF-8")),
        }
    }
}

/// One executor's start-up progress.
#[derive(Debug, Clone)]
struct Progress {
    /// The executor thread's name (glommio: `shard-<executor id>`), as gdb shows it.
    thread: String,
    shard: Option<usize>,
    phase: StartupPhase,
    since: Instant,
    /// The partition being opened, since when, and its number (1-based) of `partitions`.
    partition: Option<String>,
    partition_since: Instant,
    partition_number: usize,
    partitions: usize,
    stalled: bool,
}

#[derive(Debug)]
struct Slots {
    executors: Vec<Progress>,
    /// The pool stopped (start-up failed or shutdown): the watchdog exits.
    closed: bool,
}

#[derive(Debug)]
struct Inner {
    began: Instant,
    shards: usize,
    stall: Option<StallSpec>,
    slots: Mutex<Slots>,
    changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panicking executor must not silence the watchdog.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every executor's start-up progress, shared by the executors and the watchdog thread.
#[derive(Debug, Clone)]
pub struct StartupWatch {
    inner: Arc<Inner>,
}

impl StartupWatch {
    pub fn new(shards: usize, stall: Option<StallSpec>) -> StartupWatch {
        StartupWatch {
            inner: Arc::new(Inner {
                began: Instant::now(),
                shards,
                stall,
                slots: Mutex::new(Slots {
                    executors: Vec::with_capacity(shards),
                    closed: false,
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// Called first thing on each executor thread: its progress slot.
    pub fn executor_started(&self) -> ShardStartup {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let mut slots = self.inner.lock();
        slots.executors.push(Progress {
            thread,
            shard: None,
            phase: StartupPhase::ExecutorStarted,
            since: Instant::now(),
            partition: None,
            partition_since: Instant::now(),
            partition_number: 0,
            partitions: 0,
            stalled: false,
        });
        ShardStartup {
            inner: self.inner.clone(),
            slot: slots.executors.len() - 1,
        }
    }

    /// Starts the watchdog thread; it reports after `interval`, then every `interval`, until
    /// every shard finished. Dropping the guard stops it (the pool returned).
    pub fn spawn_watchdog(&self, interval: Duration) -> std::io::Result<WatchdogGuard> {
        let inner = self.inner.clone();
        let thread = std::thread::Builder::new()
            .name("start-watchdog".to_string())
            .spawn(move || watch(&inner, interval))?;
        Ok(WatchdogGuard {
            inner: self.inner.clone(),
            thread: Some(thread),
        })
    }
}

/// Stops the watchdog thread when dropped.
#[derive(Debug)]
pub struct WatchdogGuard {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WatchdogGuard {
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The watchdog thread's loop. It logs with the slots unlocked: a slow log sink must never
/// block an executor that reports progress.
fn watch(inner: &Inner, interval: Duration) {
    let mut next_report = inner.began + interval;
    let mut reported = false;
    loop {
        let (closed, executors) = {
            let slots = inner.lock();
            (slots.closed, slots.executors.clone())
        };
        if closed {
            return;
        }
        if all_finished(inner.shards, &executors) {
            tracing::info!(
                shards = inner.shards,
                startup_ms = inner.began.elapsed().as_millis() as u64,
                reported_stuck = reported,
                "start-up finished"
            );
            return;
        }
        let now = Instant::now();
        if now >= next_report {
            report(inner, &executors, now);
            reported = true;
            next_report = now + interval;
        }
        let slots = inner.lock();
        // Re-checked under the lock: a change since the copy has already notified.
        if !slots.closed && !all_finished(inner.shards, &slots.executors) {
            let wait = next_report.saturating_duration_since(Instant::now());
            let _unused = inner
                .changed
                .wait_timeout(slots, wait)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn all_finished(shards: usize, executors: &[Progress]) -> bool {
    executors.len() == shards && executors.iter().all(|p| p.phase == StartupPhase::Finished)
}

/// One WARN line per unfinished executor (and one if some executor never started).
fn report(inner: &Inner, executors: &[Progress], now: Instant) {
    let startup_ms = now.duration_since(inner.began).as_millis() as u64;
    if executors.len() < inner.shards {
        tracing::warn!(
            executors_started = executors.len(),
            shards = inner.shards,
            startup_ms,
            "start-up is taking long: not every executor has started"
        );
    }
    for progress in executors
        .iter()
        .filter(|p| p.phase != StartupPhase::Finished)
    {
        let shard = progress
            .shard
            .map_or_else(|| "unknown".to_string(), |s| s.to_string());
        let phase = progress.phase.as_str();
        let thread = progress.thread.as_str();
        let phase_ms = now.duration_since(progress.since).as_millis() as u64;
        match &progress.partition {
            Some(partition) if progress.phase == StartupPhase::OpeningPartitions => {
                let partition_ms = now.duration_since(progress.partition_since).as_millis() as u64;
                tracing::warn!(
                    %shard, %thread, %phase, %partition,
                    partition_number = progress.partition_number,
                    partitions = progress.partitions, partition_ms, phase_ms, startup_ms,
                    "start-up is taking long"
                );
            }
            _ => tracing::warn!(
                %shard, %thread, %phase, phase_ms, startup_ms, "start-up is taking long"
            ),
        }
    }
}

/// One executor's handle on its start-up slot.
#[derive(Debug, Clone)]
pub struct ShardStartup {
    inner: Arc<Inner>,
    slot: usize,
}

impl ShardStartup {
    fn update(&self, change: impl FnOnce(&mut Progress)) -> Progress {
        let mut slots = self.inner.lock();
        let progress = &mut slots.executors[self.slot];
        change(progress);
        progress.clone()
    }

    /// The mesh told this executor which shard it is.
    pub fn set_shard(&self, shard: usize) {
        self.update(|p| p.shard = Some(shard));
    }

    /// This shard moves on to `phase`.
    pub fn enter(&self, phase: StartupPhase) {
        let progress = self.update(|p| {
            assert!(phase > p.phase, "start-up phases only move forward");
            p.phase = phase;
            p.since = Instant::now();
            p.partition = None;
        });
        if phase == StartupPhase::Finished {
            self.inner.changed.notify_all();
        } else if phase != StartupPhase::OpeningPartitions {
            self.maybe_stall(&progress);
        }
    }

    /// `PartitionLog::open` starts on `dir` (one of this shard's partitions).
    fn opening(&self, dir: &Path) {
        let name = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        let progress = self.update(|p| {
            p.partition = Some(name);
            p.partition_since = Instant::now();
            p.partition_number += 1;
        });
        self.maybe_stall(&progress);
    }

    /// Blocks this executor's thread if the test stall hook asks for it (once).
    fn maybe_stall(&self, progress: &Progress) {
        let Some(stall) = self.inner.stall else {
            return;
        };
        if progress.stalled || progress.shard != Some(stall.shard) || progress.phase != stall.phase
        {
            return;
        }
        self.update(|p| p.stalled = true);
        tracing::warn!(
            shard = stall.shard,
            phase = %stall.phase.as_str(),
            stall_ms = stall.duration.as_millis() as u64,
            "test stall ({STALL_ENV}): blocking this shard's executor thread"
        );
        std::thread::sleep(stall.duration);
    }

    /// Enters `OpeningPartitions` and names each partition `PartitionLog::open` starts on
    /// (through the shard's storage open observer) until `finished`.
    pub(super) fn watch_opens(&self, shard: &Shard, catalog: &Catalog) {
        let partitions = catalog
            .topics()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.name.as_str(), p)))
            .filter(|(topic, p)| {
                shard.owner_of(&crate::model::TopicPartition::new(*topic, *p)) == shard.id
            })
            .count();
        self.enter(StartupPhase::OpeningPartitions);
        self.update(|p| p.partitions = partitions);
        let startup = self.clone();
        shard
            .storage_stats()
            .observe_opens(Some(Box::new(move |dir: &Path| startup.opening(dir))));
    }

    /// Start-up is done on this shard: stops naming partition opens and tells the watchdog.
    pub(super) fn finished(&self, shard: &Shard) {
        shard.storage_stats().observe_opens(None);
        shard
            .metrics
            .startup_finished(self.inner.began.elapsed().as_secs_f64());
        self.enter(StartupPhase::Finished);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_specs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            StallSpec::parse("1:opening_partitions:250"),
            Ok(StallSpec {
                shard: 1,
                phase: StartupPhase::OpeningPartitions,
                duration: Duration::from_millis(250),
            })
        );
        for bad in [
            "",
            "1",
            "1:opening_partitions",
            "x:loading_groups:5",
            "0:mesh_join:5",
        ] {
            let error = StallSpec::parse(bad).expect_err(bad);
            assert!(error.contains(STALL_ENV), "{error}");
        }
    }

    #[test]
    fn watchdog_reports_until_every_shard_finished_then_stops() {
        let watch = StartupWatch::new(2, None);
        let guard = watch.spawn_watchdog(Duration::from_millis(10)).unwrap();
        let first = watch.executor_started();
        let second = watch.executor_started();
        first.set_shard(0);
        second.set_shard(1);
        first.enter(StartupPhase::Finished);
        second.enter(StartupPhase::LoadingGroups);
        std::thread::sleep(Duration::from_millis(50));
        second.enter(StartupPhase::Finished);
        let thread = guard.thread.as_ref().map(|t| t.thread().id());
        assert!(thread.is_some());
        // The thread exits by itself once everything finished; the guard joins it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !guard.thread.as_ref().is_some_and(|t| t.is_finished()) {
            assert!(Instant::now() < deadline, "watchdog did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(guard);
    }

    #[test]
    #[should_panic(expected = "only move forward")]
    fn phases_never_go_back() {
        let watch = StartupWatch::new(1, None);
        let startup = watch.executor_started();
        startup.enter(StartupPhase::LoadingGroups);
        startup.enter(StartupPhase::MeshJoin);
    }
}
