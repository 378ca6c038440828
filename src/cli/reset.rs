//! `shardlog group reset-offsets`: plan new committed offsets for a group on one topic, print the
//! plan, and with `--execute` commit it and read the commit back.
//!
//! Owns: `ResetArgs`, `ResetTo` and the pure planning rule `plan_offset`. May import:
//! `super::{client, error, group, output}`.
//! Invariants: a planned offset always lies in [log start, log end]; `--execute` commits nothing
//! while the group has members (their own commits would race ours, as in Kafka's tool).

use super::client::{self, Cluster, ConnectArgs, OffsetSpec};
use super::error::CliError;
use super::group;
use super::output::{self, Format, Table};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// Topic whose partitions are reset.
    #[arg(long)]
    pub topic: String,
    #[command(flatten)]
    pub target: ResetTarget,
    #[command(flatten)]
    pub mode: ResetMode,
}

/// Exactly one target.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// To each partition's log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's log end offset (skip everything).
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (clamped into each partition's range).
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true)]
    pub to_offset: Option<i64>,
    /// To the first record at or after this time, YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM] (UTC
    /// without a zone).
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Move by N (negative to go back) from the committed offset, or the log start without one.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
}

/// Exactly one of dry run or execute: nothing is committed by accident.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ResetMode {
    /// Print the plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan and commit it.
    #[arg(long)]
    pub execute: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
    ShiftBy(i64),
}

impl ResetTarget {
    fn resolve(&self) -> Result<ResetTo, CliError> {
        if self.to_earliest {
            return Ok(ResetTo::Earliest);
        }
        if self.to_latest {
            return Ok(ResetTo::Latest);
        }
        if let Some(offset) = self.to_offset {
            return Ok(ResetTo::Offset(offset));
        }
        if let Some(text) = &self.to_datetime {
            return Ok(ResetTo::Timestamp(output::parse_timestamp_ms(text)?));
        }
        if let Some(shift) = self.shift_by {
            return Ok(ResetTo::ShiftBy(shift));
        }
        Err(CliError::InvalidArgument(
            "give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by".into(),
        ))
    }
}

/// What one partition's committed offset becomes. `at_time` is the ListOffsets answer for
/// `ResetTo::Timestamp` (`None`: no record at or after that time, so the log end).
pub fn plan_offset(
    to: ResetTo,
    committed: Option<i64>,
    log_start: i64,
    log_end: i64,
    at_time: Option<i64>,
) -> i64 {
    assert!(
        log_start <= log_end,
        "log start {log_start} beyond log end {log_end}"
    );
    let wanted = match to {
        ResetTo::Earliest => log_start,
        ResetTo::Latest => log_end,
        ResetTo::Offset(offset) => offset,
        ResetTo::Timestamp(_) => at_time.unwrap_or(log_end),
        ResetTo::ShiftBy(shift) => committed.unwrap_or(log_start).saturating_add(shift),
    };
    wanted.clamp(log_start, log_end)
}

struct PlanRow {
    partition: i32,
    committed: Option<i64>,
    new_offset: i64,
}

pub fn run(cluster: &Cluster, args: &ResetArgs, format: Format) -> Result<(), CliError> {
    let to = args.target.resolve()?;
    let topic = cluster.topic(&args.topic)?;
    let info = group::describe_group(cluster, &args.group)?;
    if !info.members.is_empty() {
        let message = format!(
            "group '{}' has {} active member(s) (state {}); stop its consumers before resetting \
             offsets",
            args.group,
            info.members.len(),
            info.state
        );
        if args.mode.execute {
            return Err(CliError::Conflict(message));
        }
        eprintln!("warning: {message}");
    }
    let partitions: Vec<(String, i32)> = topic
        .partitions
        .iter()
        .map(|p| (topic.name.clone(), p.partition))
        .collect();
    let consumer = cluster.connect.query_consumer(Some(&args.group))?;
    let plan = build_plan(&consumer, &cluster.connect, &partitions, to)?;
    if args.mode.execute {
        let mut offsets = TopicPartitionList::new();
        for row in &plan {
            offsets
                .add_partition_offset(&topic.name, row.partition, Offset::Offset(row.new_offset))
                .map_err(|e| cluster.connect.error("reset offsets", e))?;
        }
        consumer
            .commit(&offsets, CommitMode::Sync)
            .map_err(|e| cluster.connect.error("commit offsets", e))?;
        verify_committed(&consumer, &cluster.connect, &topic.name, &plan)?;
    }
    print_plan(&args.group, &topic.name, &plan, args.mode.execute, format);
    Ok(())
}

/// Reads the committed offsets back after `--execute`: rd_kafka_commit reports a request-level
/// failure, but a partition the broker refused inside a successful OffsetCommit would otherwise
/// pass unnoticed.
fn verify_committed(
    consumer: &BaseConsumer,
    connect: &ConnectArgs,
    topic: &str,
    plan: &[PlanRow],
) -> Result<(), CliError> {
    let partitions: Vec<(String, i32)> = plan
        .iter()
        .map(|row| (topic.to_string(), row.partition))
        .collect();
    let committed = group::committed_offsets(consumer, connect, &partitions)?;
    for row in plan {
        let now = committed.get(&(topic.to_string(), row.partition)).copied();
        if now != Some(row.new_offset) {
            return Err(CliError::failed(
                "commit offsets",
                format!(
                    "{topic}/{}: committed {} after committing {}",
                    row.partition,
                    now.map_or_else(|| "nothing".to_string(), |o| o.to_string()),
                    row.new_offset
                ),
            ));
        }
    }
    Ok(())
}

/// Reads committed offsets and log bounds (and, for a time target, the offsets at that time),
/// then plans each partition.
fn build_plan(
    consumer: &BaseConsumer,
    connect: &ConnectArgs,
    partitions: &[(String, i32)],
    to: ResetTo,
) -> Result<Vec<PlanRow>, CliError> {
    let committed = group::committed_offsets(consumer, connect, partitions)?;
    let starts = client::list_offsets(consumer, connect, partitions, OffsetSpec::Earliest)?;
    let ends = client::list_offsets(consumer, connect, partitions, OffsetSpec::Latest)?;
    let at_time = match to {
        ResetTo::Timestamp(ms) => Some(client::list_offsets(
            consumer,
            connect,
            partitions,
            OffsetSpec::Timestamp(ms),
        )?),
        _ => None,
    };
    let mut plan = Vec::new();
    for key in partitions {
        let log_start = starts.get(key).copied().flatten().unwrap_or(0);
        let log_end = ends
            .get(key)
            .copied()
            .flatten()
            .unwrap_or(log_start)
            .max(log_start);
        let found = at_time.as_ref().and_then(|m| m.get(key).copied().flatten());
        let current = committed.get(key).copied();
        plan.push(PlanRow {
            partition: key.1,
            committed: current,
            new_offset: plan_offset(to, current, log_start, log_end, found),
        });
    }
    Ok(plan)
}

fn print_plan(group: &str, topic: &str, plan: &[PlanRow], executed: bool, format: Format) {
    match format {
        Format::Json => {
            let rows: Vec<Value> = plan
                .iter()
                .map(|r| {
                    json!({"topic": topic, "partition": r.partition,
                           "current_offset": r.committed, "new_offset": r.new_offset})
                })
                .collect();
            output::print_json(&json!({"group": group, "executed": executed, "partitions": rows}));
        }
        Format::Text => {
            let mut table = Table::new(&[
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "NEW-OFFSET",
            ]);
            for r in plan {
                table.push(vec![
                    group.to_string(),
                    topic.to_string(),
                    r.partition.to_string(),
                    output::or_dash(r.committed),
                    r.new_offset.to_string(),
                ]);
            }
            print!("{}", table.render());
            if executed {
                println!("Committed new offsets for group {group}.");
            } else {
                println!("Dry run: nothing committed. Run again with --execute to apply.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_lands_inside_the_log() {
        // Log holds offsets 10..=19 (log end 20); committed at 15.
        let c = Some(15);
        assert_eq!(plan_offset(ResetTo::Earliest, c, 10, 20, None), 10);
        assert_eq!(plan_offset(ResetTo::Latest, c, 10, 20, None), 20);
        assert_eq!(plan_offset(ResetTo::Offset(12), c, 10, 20, None), 12);
        assert_eq!(plan_offset(ResetTo::Offset(3), c, 10, 20, None), 10);
        assert_eq!(plan_offset(ResetTo::Offset(99), c, 10, 20, None), 20);
        assert_eq!(plan_offset(ResetTo::Timestamp(0), c, 10, 20, Some(17)), 17);
        assert_eq!(plan_offset(ResetTo::Timestamp(0), c, 10, 20, None), 20);
        assert_eq!(plan_offset(ResetTo::ShiftBy(-2), c, 10, 20, None), 13);
        assert_eq!(plan_offset(ResetTo::ShiftBy(-100), c, 10, 20, None), 10);
        assert_eq!(plan_offset(ResetTo::ShiftBy(100), c, 10, 20, None), 20);
        assert_eq!(plan_offset(ResetTo::ShiftBy(3), None, 10, 20, None), 13);
        assert_eq!(plan_offset(ResetTo::ShiftBy(i64::MIN), c, 10, 20, None), 10);
    }

    #[test]
    fn an_empty_log_pins_every_target_to_its_end() {
        for to in [
            ResetTo::Earliest,
            ResetTo::Latest,
            ResetTo::Offset(5),
            ResetTo::ShiftBy(-1),
        ] {
            assert_eq!(plan_offset(to, None, 7, 7, None), 7);
        }
    }
}
