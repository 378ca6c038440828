//! `[background] kind = "hostile"` (issue 14, items 1-3): clients that try to hang or bloat
//! the broker, from the start of the warm-up to the end of the measured phase, on the
//! "with" side; both sides first fill the backlog topic the fetchers read.
//!
//! Owns: the hostile threads — one holding every raw connection (`held`), one per big-fetch
//! consumer (`fetch`) — and their report. Imports: `admin`, `control`, `result`, `wire`,
//! `workload`. Invariant: every thread started is joined by `finish` (or on drop), so no
//! hostile client outlives its load.

mod fetch;
mod held;

use crate::admin::Admin;
use crate::control::ClientEvents;
use crate::result::{BacklogReport, BigFetchReport, HostileReport};
use crate::stats::{MB, per_second};
use crate::workload::Hostile;
use anyhow::bail;
use fetch::BigFetchStats;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// File descriptors kept free for everything else (librdkafka clients, files).
const SPARE_FILE_DESCRIPTORS: u64 = 512;

/// The hostile load of one side.
#[derive(Debug, Clone)]
pub struct HostilePlan {
    pub settings: Hostile,
    /// false on the idle side: only the backlog is written.
    pub attack: bool,
    /// The backlog topic.
    pub topic: String,
    pub bootstrap: String,
    /// The broker's admin HTTP address (a started broker); None skips the admin clients.
    pub admin_address: Option<String>,
    pub run_tag: u32,
}

impl HostilePlan {
    /// Creates and fills the backlog topic (both sides), before the warm-up.
    pub fn prepare(&self, admin: &Admin) -> anyhow::Result<BacklogReport> {
        if self.settings.backlog_bytes == 0 {
            return Ok(BacklogReport::default());
        }
        fetch::fill_backlog(self, admin)
    }
}

pub struct HostileLoad {
    plan: HostilePlan,
    backlog: BacklogReport,
    stop: Arc<AtomicBool>,
    holder: Option<JoinHandle<anyhow::Result<Vec<crate::result::HeldConnections>>>>,
    fetchers: Vec<JoinHandle<anyhow::Result<()>>>,
    fetch_stats: Arc<BigFetchStats>,
    events: Arc<ClientEvents>,
    started: Instant,
}

impl HostileLoad {
    /// Starts the hostile clients (none on the idle side).
    pub fn start(plan: &HostilePlan, backlog: BacklogReport) -> anyhow::Result<HostileLoad> {
        let mut load = HostileLoad {
            plan: plan.clone(),
            backlog,
            stop: Arc::new(AtomicBool::new(false)),
            holder: None,
            fetchers: Vec::new(),
            fetch_stats: Arc::new(BigFetchStats::default()),
            events: Arc::new(ClientEvents::new(false)),
            started: Instant::now(),
        };
        if !plan.attack {
            return Ok(load);
        }
        if plan.admin_address.is_none() && plan.settings.admin_clients > 0 {
            eprintln!("warning: hostile admin clients skipped: the broker's admin port is unknown");
        }
        let needed = plan.settings.kafka_connections()
            + u64::from(plan.settings.admin_clients)
            + SPARE_FILE_DESCRIPTORS;
        raise_file_limit(needed)?;
        let (p, stop) = (plan.clone(), load.stop.clone());
        load.holder = Some(
            std::thread::Builder::new()
                .name("hostile-connections".into())
                .spawn(move || held::run(p, stop))?,
        );
        for index in 0..plan.settings.big_fetch_consumers {
            let (p, stop) = (plan.clone(), load.stop.clone());
            let (stats, events) = (load.fetch_stats.clone(), load.events.clone());
            load.fetchers.push(
                std::thread::Builder::new()
                    .name(format!("hostile-big-fetch-{index}"))
                    .spawn(move || fetch::run_big_fetch(index, p, stop, stats, events))?,
            );
        }
        Ok(load)
    }

    /// A hostile thread that ended before `finish` failed.
    pub fn is_finished(&self) -> bool {
        let holder = self.holder.as_ref().is_some_and(|h| h.is_finished());
        holder || self.fetchers.iter().any(|f| f.is_finished())
    }

    /// Stops every hostile client (closing its sockets) and reports what they did.
    pub fn finish(mut self) -> anyhow::Result<HostileReport> {
        self.stop.store(true, Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        let connections = match self.holder.take().map(JoinHandle::join) {
            None => Vec::new(),
            Some(Ok(result)) => result?,
            Some(Err(_)) => bail!("hostile connection thread panicked"),
        };
        for fetcher in std::mem::take(&mut self.fetchers) {
            match fetcher.join() {
                Ok(result) => result?,
                Err(_) => bail!("hostile big-fetch consumer panicked"),
            }
        }
        let s = &self.fetch_stats;
        let bytes = s.bytes.load(Ordering::Relaxed);
        let consumers = self.plan.settings.big_fetch_consumers;
        let big_fetch = (self.plan.attack && consumers > 0).then(|| BigFetchReport {
            consumers,
            messages: s.messages.load(Ordering::Relaxed),
            bytes,
            mb_per_sec: per_second(bytes as f64, seconds) / MB,
            passes: s.passes.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            error_samples: self.events.samples(),
        });
        Ok(HostileReport {
            backlog: self.backlog.clone(),
            connections,
            big_fetch,
        })
    }
}

impl Drop for HostileLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
        for fetcher in self.fetchers.drain(..) {
            let _ = fetcher.join();
        }
    }
}

/// Raises this process' open-file limit to `needed` (up to the hard limit), or fails.
fn raise_file_limit(needed: u64) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max < needed {
        bail!(
            "the hostile load needs {needed} open files, the hard limit is {} (ulimit -Hn)",
            limit.rlim_max
        );
    }
    limit.rlim_cur = needed;
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        bail!("setrlimit: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_limit_is_kept_when_high_enough_and_never_above_the_hard_limit() {
        raise_file_limit(16).unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        if limit.rlim_max < u64::MAX {
            let error = raise_file_limit(limit.rlim_max + 1)
                .unwrap_err()
                .to_string();
            assert!(error.contains("hard limit"), "{error}");
        }
    }
}
