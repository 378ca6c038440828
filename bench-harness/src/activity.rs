//! What runs beside the measured load on one side of a `[background]` repeat, whatever its
//! kind: the maintenance writer, the hostile clients, or the topic churn. `load` drives an
//! `Activity` through the same phases as the measured load without knowing its kind.
//!
//! Owns: `BackgroundPlan` (one side's plan, built by `runner`), `Activity` and the combined
//! `ActivityReport`. Imports: `admin`, `hostile`, `maintenance`, `result`, `topic_churn`,
//! `control`. Runs on the coordinating thread. Invariant: an `Activity` is started after
//! `prepare` and finished (or dropped) before its load's topics are deleted.

use crate::admin::Admin;
use crate::control::Phase;
use crate::hostile::{HostileLoad, HostilePlan};
use crate::maintenance::{BackgroundWriter, WriterPlan};
use crate::result::{BackgroundReport, BacklogReport, CreateTopicsReport, HostileReport};
use crate::topic_churn::{ChurnPlan, TopicChurn};
use anyhow::Context;

/// One side's background plan.
#[derive(Debug, Clone)]
pub enum BackgroundPlan {
    /// compaction / retention: the background writer (also the idle side's, idle = "writes").
    Writer(WriterPlan),
    /// hostile: the backlog (both sides) and the hostile clients (with side).
    Hostile(HostilePlan),
    /// create-topics (with side only).
    CreateTopics(ChurnPlan),
}

/// What `prepare` set up for `Activity::start`.
#[derive(Debug, Default)]
pub struct Prepared {
    backlog: Option<BacklogReport>,
}

impl BackgroundPlan {
    /// Topics created by `prepare`, deleted with the load's topics.
    pub fn topics(&self) -> Vec<String> {
        match self {
            BackgroundPlan::Writer(writer) => vec![writer.topic.clone()],
            BackgroundPlan::Hostile(hostile) if hostile.settings.backlog_bytes > 0 => {
                vec![hostile.topic.clone()]
            }
            BackgroundPlan::Hostile(_) | BackgroundPlan::CreateTopics(_) => Vec::new(),
        }
    }

    /// Creates the plan's topics (and writes the hostile backlog) before the warm-up.
    pub fn prepare(&self, admin: &Admin) -> anyhow::Result<Prepared> {
        match self {
            BackgroundPlan::Writer(writer) => {
                admin
                    .create_topics_with_configs(
                        std::slice::from_ref(&writer.topic),
                        writer.writer.topics.partitions,
                        writer.writer.topics.replication_factor,
                        &writer.topic_configs,
                    )
                    .context("background topic setup")?;
                Ok(Prepared::default())
            }
            BackgroundPlan::Hostile(hostile) => Ok(Prepared {
                backlog: Some(hostile.prepare(admin)?),
            }),
            BackgroundPlan::CreateTopics(_) => Ok(Prepared::default()),
        }
    }
}

/// A running background activity.
pub enum Activity {
    Writer(BackgroundWriter),
    Hostile(Box<HostileLoad>),
    CreateTopics(TopicChurn),
}

/// What the activity of one side did; one field per kind.
#[derive(Debug, Clone, Default)]
pub struct ActivityReport {
    pub writer: Option<BackgroundReport>,
    pub hostile: Option<HostileReport>,
    pub create_topics: Option<CreateTopicsReport>,
}

impl Activity {
    /// Starts at the beginning of the warm-up.
    pub fn start(
        plan: &BackgroundPlan,
        prepared: Prepared,
        bootstrap: &str,
        run_tag: u32,
    ) -> anyhow::Result<Activity> {
        Ok(match plan {
            BackgroundPlan::Writer(writer) => {
                Activity::Writer(BackgroundWriter::start(writer, bootstrap, run_tag)?)
            }
            BackgroundPlan::Hostile(hostile) => Activity::Hostile(Box::new(HostileLoad::start(
                hostile,
                prepared.backlog.unwrap_or_default(),
            )?)),
            BackgroundPlan::CreateTopics(churn) => {
                Activity::CreateTopics(TopicChurn::start(churn)?)
            }
        })
    }

    /// Follows the measured load's phase.
    pub fn set_phase(&mut self, phase: Phase) {
        match self {
            Activity::Writer(writer) => writer.set_phase(phase),
            Activity::Hostile(_) => {} // from start to finish, whatever the phase
            Activity::CreateTopics(churn) => churn.set_phase(phase),
        }
    }

    pub fn set_measured_seconds(&mut self, seconds: f64) {
        if let Activity::Writer(writer) = self {
            writer.set_measured_seconds(seconds);
        }
    }

    /// An activity whose thread ended before `finish` has failed.
    pub fn is_finished(&self) -> bool {
        match self {
            Activity::Writer(writer) => writer.is_finished(),
            Activity::Hostile(hostile) => hostile.is_finished(),
            Activity::CreateTopics(churn) => churn.is_finished(),
        }
    }

    /// Stops the activity and reports what it did.
    pub fn finish(self) -> anyhow::Result<ActivityReport> {
        let mut report = ActivityReport::default();
        match self {
            Activity::Writer(writer) => report.writer = Some(writer.finish()?),
            Activity::Hostile(hostile) => report.hostile = Some(hostile.finish()?),
            Activity::CreateTopics(churn) => report.create_topics = Some(churn.finish()?),
        }
        Ok(report)
    }
}
