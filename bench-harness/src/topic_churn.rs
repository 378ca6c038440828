//! `[background] kind = "create-topics"` (issue 14, item 4): on the "with" side, during the
//! measured phase, CreateTopics of many partitions through the admin API (and, with
//! `repeat`, DeleteTopics of it a few seconds later, again and again), each call timed.
//!
//! Owns: the churn thread and its admin client. Imports: `admin`, `control`, `result`,
//! `workload`. Invariant: the thread acts only in the measured phase, and deletes any topic
//! it created before it ends; `finish` (or drop) joins it.

use crate::admin::Admin;
use crate::control::{ClientEvents, Phase, RunControl};
use crate::result::CreateTopicsReport;
use crate::workload::CreateTopics;
use anyhow::bail;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// CreateTopics / DeleteTopics of thousands of partitions may take long on a stalled
/// broker: that is what is measured, so wait for the answer rather than give up at 30 s.
const CHURN_ADMIN_TIMEOUT: Duration = Duration::from_secs(300);
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ChurnPlan {
    pub settings: CreateTopics,
    /// Created topics are named `<topic_prefix>-<n>`.
    pub topic_prefix: String,
    pub bootstrap: String,
    pub replication_factor: i16,
}

pub struct TopicChurn {
    control: Arc<RunControl>,
    report: Arc<Mutex<CreateTopicsReport>>,
    events: Arc<ClientEvents>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TopicChurn {
    /// Starts the thread; it waits for the measured phase.
    pub fn start(plan: &ChurnPlan) -> anyhow::Result<TopicChurn> {
        let control = Arc::new(RunControl::new(1, 0));
        control.set_phase(Phase::Warmup);
        let report = Arc::new(Mutex::new(CreateTopicsReport {
            partitions: plan.settings.partitions,
            ..Default::default()
        }));
        let events = Arc::new(ClientEvents::new(false));
        let (p, c, r, e) = (
            plan.clone(),
            control.clone(),
            report.clone(),
            events.clone(),
        );
        let handle = std::thread::Builder::new()
            .name("create-topics".into())
            .spawn(move || churn(p, c, r, e))?;
        Ok(TopicChurn {
            control,
            report,
            events,
            handle: Some(handle),
        })
    }

    pub fn set_phase(&mut self, phase: Phase) {
        self.control.set_phase(phase);
    }

    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Stops (after the call in flight) and reports every timed call.
    pub fn finish(mut self) -> anyhow::Result<CreateTopicsReport> {
        self.control.set_phase(Phase::Done);
        if let Some(handle) = self.handle.take() {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => bail!("create-topics thread panicked"),
            }
        }
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        report.error_samples = self.events.samples();
        Ok(report)
    }
}

impl Drop for TopicChurn {
    fn drop(&mut self) {
        self.control.set_phase(Phase::Done);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn churn(
    plan: ChurnPlan,
    control: Arc<RunControl>,
    report: Arc<Mutex<CreateTopicsReport>>,
    events: Arc<ClientEvents>,
) -> anyhow::Result<()> {
    let admin = Admin::connect(&plan.bootstrap)?;
    while matches!(control.phase(), Phase::Setup | Phase::Warmup) {
        std::thread::sleep(TICK);
    }
    let s = &plan.settings;
    let record = |update: &dyn Fn(&mut CreateTopicsReport)| {
        update(&mut report.lock().unwrap_or_else(|e| e.into_inner()));
    };
    let failed = |what: String| {
        record(&|r| r.errors += 1);
        events.sample(what);
    };
    let mut created: Option<String> = None;
    for index in 0.. {
        if control.phase() != Phase::Measure {
            break;
        }
        let name = format!("{}-{index}", plan.topic_prefix);
        let names = std::slice::from_ref(&name);
        let started = Instant::now();
        match admin.create_topics_only(
            names,
            s.partitions,
            plan.replication_factor,
            &s.topic_configs,
            CHURN_ADMIN_TIMEOUT,
        ) {
            Ok(()) => {
                let ms = millis(started);
                record(&|r| r.create_ms.push(ms));
                created = Some(name.clone());
                let answered = Instant::now();
                match admin.wait_for_leaders(&name, s.partitions) {
                    Ok(()) => {
                        let ms = millis(answered);
                        record(&|r| r.ready_ms.push(ms));
                    }
                    Err(error) => failed(format!("{error:#}")),
                }
            }
            Err(error) => failed(format!("{error:#}")),
        }
        if !s.repeat {
            sleep_while_measuring(&control, f64::INFINITY);
            break;
        }
        if !sleep_while_measuring(&control, s.hold_seconds) {
            break;
        }
        if let Some(name) = created.take() {
            let started = Instant::now();
            let warnings = admin.delete_topics_within(&[name], CHURN_ADMIN_TIMEOUT);
            match warnings.is_empty() {
                true => {
                    let ms = millis(started);
                    record(&|r| r.delete_ms.push(ms));
                }
                false => failed(warnings.join("; ")),
            }
        }
        if !sleep_while_measuring(&control, s.pause_seconds) {
            break;
        }
    }
    if let Some(name) = created {
        for warning in admin.delete_topics_within(&[name], CHURN_ADMIN_TIMEOUT) {
            eprintln!("warning: {warning}");
        }
    }
    Ok(())
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Sleeps `seconds` unless the measured phase ends first; true if it is still measuring.
fn sleep_while_measuring(control: &RunControl, seconds: f64) -> bool {
    let started = Instant::now();
    while control.phase() == Phase::Measure {
        if started.elapsed().as_secs_f64() >= seconds {
            return true;
        }
        std::thread::sleep(TICK);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeping_stops_when_the_measured_phase_ends() {
        let control = RunControl::new(1, 0);
        control.set_phase(Phase::Measure);
        assert!(sleep_while_measuring(&control, 0.0));
        control.set_phase(Phase::Done);
        let started = Instant::now();
        assert!(!sleep_while_measuring(&control, 3600.0));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
