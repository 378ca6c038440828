//! `shardlog topic …`: create, list, describe, delete, alter (add partitions), configure and
//! reassign topics, like kafka-topics.sh, kafka-configs.sh and kafka-reassign-partitions.sh,
//! over CreateTopics, DeleteTopics, Metadata, CreatePartitions, DescribeConfigs,
//! IncrementalAlterConfigs and (`super::reassign`) the partition reassignment APIs.
//!
//! Owns: the `topic` argument tree and its output. May import:
//! `super::{client, config_admin, error, output}`,
//! `shardlog::metadata::shard_for` (shard placement is computed, not fetched: the broker only
//! publishes its shard count, as the read-only broker config `shardlog.shards`).

use super::client::{self, Cluster, ConnectArgs, OffsetSpec, TopicInfo};
use super::config_admin::{self, ConfigChange, ConfigTarget};
use super::error::CliError;
use super::output::{self, Format, Table};
use rdkafka::admin::{ConfigEntry, ConfigSource, NewPartitions};
use rdkafka::error::RDKafkaErrorCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The read-only broker config through which shardlog publishes its shard count.
pub const SHARD_COUNT_CONFIG: &str = "shardlog.shards";

#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    /// Filled from the top-level `--bootstrap-server` / `--request-timeout-ms` (global flags
    /// of `shardlog`, accepted before or after the subcommand).
    #[arg(skip)]
    pub connect: ConnectArgs,
    /// Output: aligned text tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub format: Format,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partition count [default: the broker's].
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's].
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        replication_factor: Option<i32>,
        /// Topic config KEY=VALUE; repeat for several.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Succeed without change when the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics with their partition counts.
    List {
        /// Also list internal topics such as __consumer_offsets.
        #[arg(long)]
        include_internal: bool,
    },
    /// Show partitions, leaders, shard placement, offsets and configs of a topic, or of every
    /// topic when no name is given.
    Describe {
        /// Topic name; without it, every topic (as kafka-topics.sh --describe).
        name: Option<String>,
        /// Without a name, also describe internal topics such as __consumer_offsets.
        #[arg(long, conflicts_with = "name")]
        include_internal: bool,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Raise a topic's partition count (partitions can only be added).
    Alter {
        /// Topic name.
        name: String,
        /// The new, larger partition count.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
    },
    /// Move a partition's replicas to other brokers (the data is copied first; the move
    /// completes when the new replicas are in sync), or cancel a move in progress.
    Reassign {
        /// Topic name.
        name: String,
        /// Partition number.
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        partition: i32,
        /// Target replicas: comma-separated broker ids, the first is the preferred leader.
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "cancel",
            conflicts_with = "cancel"
        )]
        replicas: Vec<i32>,
        /// Cancel the partition's move in progress (back to its original replicas).
        #[arg(long)]
        cancel: bool,
        /// Wait until the move is complete, at most this many seconds.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
        wait: Option<u64>,
    },
    /// List the partition moves in progress.
    Reassignments,
    /// Set or remove topic configs; with neither flag, print the topic's own configs.
    Config {
        /// Topic name.
        name: String,
        /// Set KEY=VALUE; repeat for several.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove KEY (back to the broker default); repeat for several.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

pub fn run(args: &TopicArgs) -> Result<(), CliError> {
    let cluster = args.connect.cluster()?;
    let format = args.format;
    match &args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            let spec = CreateSpec {
                name,
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs,
            };
            create(&cluster, &spec, *if_not_exists, format)
        }
        TopicCommand::List { include_internal } => list(&cluster, *include_internal, format),
        TopicCommand::Describe {
            name: Some(name), ..
        } => describe(&cluster, name, format),
        TopicCommand::Describe {
            name: None,
            include_internal,
        } => describe_all(&cluster, *include_internal, format),
        TopicCommand::Delete { name } => delete(&cluster, name, format),
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
            cancel,
            wait,
        } => super::reassign::reassign(
            &args.connect,
            name,
            *partition,
            (!cancel).then_some(replicas.as_slice()),
            wait.map(std::time::Duration::from_secs),
            format,
        ),
        TopicCommand::Reassignments => super::reassign::list_command(&args.connect, format),
        TopicCommand::Alter { name, partitions } => alter(&cluster, name, *partitions, format),
        TopicCommand::Config { name, set, delete } => {
            configure(&cluster, name, set, delete, format)
        }
    }
}

struct CreateSpec<'a> {
    name: &'a str,
    partitions: i32,
    replication_factor: i32,
    configs: &'a [(String, String)],
}

fn create(
    cluster: &Cluster,
    spec: &CreateSpec<'_>,
    if_not_exists: bool,
    format: Format,
) -> Result<(), CliError> {
    let outcome = config_admin::create_topic(
        cluster,
        spec.name,
        spec.partitions,
        spec.replication_factor,
        spec.configs,
    )?;
    let created = match outcome {
        Ok(()) => true,
        Err(refusal) if refusal.code == RDKafkaErrorCode::TopicAlreadyExists && if_not_exists => {
            false
        }
        Err(refusal) if refusal.code == RDKafkaErrorCode::TopicAlreadyExists => {
            return Err(CliError::Conflict(format!(
                "topic '{}' already exists",
                spec.name
            )));
        }
        Err(refusal) => {
            return Err(refusal.into_cli_error(
                cluster,
                "create topic",
                ConfigTarget::Topic(spec.name),
            ));
        }
    };
    match format {
        Format::Json => output::print_json(&json!({ "topic": spec.name, "created": created })),
        Format::Text if created => println!("Created topic {}.", spec.name),
        Format::Text => println!("Topic {} already exists.", spec.name),
    }
    Ok(())
}

fn list(cluster: &Cluster, include_internal: bool, format: Format) -> Result<(), CliError> {
    let topics: Vec<TopicInfo> = cluster
        .topics()?
        .into_iter()
        .filter(|t| include_internal || !t.name.starts_with("__"))
        .collect();
    match format {
        Format::Json => {
            let rows: Vec<Value> = topics
                .iter()
                .map(|t| {
                    json!({
                        "topic": t.name,
                        "partitions": t.partitions.len(),
                        "replication_factor": replication_factor(t),
                    })
                })
                .collect();
            output::print_json(&Value::Array(rows));
        }
        Format::Text => {
            let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
            for t in &topics {
                let rf = replication_factor(t).to_string();
                table.push(vec![t.name.clone(), t.partitions.len().to_string(), rf]);
            }
            print!("{}", table.render());
        }
    }
    Ok(())
}

fn replication_factor(topic: &TopicInfo) -> usize {
    topic
        .partitions
        .iter()
        .map(|p| p.replicas.len())
        .max()
        .unwrap_or(0)
}

/// What DescribeConfigs said, or why it could not say.
enum Configs {
    Known(Vec<ConfigEntry>),
    Unavailable(String),
}

/// One partition's line in `topic describe`.
struct PartitionRow {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    shard: Option<usize>,
    log_start: Option<i64>,
    log_end: Option<i64>,
}

/// Everything `topic describe` prints.
struct TopicReport {
    name: String,
    replication_factor: usize,
    shard_count: Option<usize>,
    configs: Configs,
    partitions: Vec<PartitionRow>,
}

fn describe(cluster: &Cluster, name: &str, format: Format) -> Result<(), CliError> {
    let report = topic_report(cluster, name)?;
    match format {
        Format::Json => output::print_json(&report_json(&report)),
        Format::Text => print!("{}", report_text(&report)),
    }
    Ok(())
}

/// Every topic, as kafka-topics.sh --describe without --topic: text reports one after another
/// (a blank line between), or a JSON array of the per-topic objects.
fn describe_all(cluster: &Cluster, include_internal: bool, format: Format) -> Result<(), CliError> {
    let mut reports = Vec::new();
    for topic in cluster.topics()? {
        if !include_internal && topic.name.starts_with("__") {
            continue;
        }
        match topic_report(cluster, &topic.name) {
            Ok(report) => reports.push(report),
            // Deleted between the listing and its describe: not an error of this command.
            Err(CliError::UnknownTopic(_)) => {}
            Err(error) => return Err(error),
        }
    }
    match format {
        Format::Json => {
            output::print_json(&Value::Array(reports.iter().map(report_json).collect()))
        }
        Format::Text => {
            let texts: Vec<String> = reports.iter().map(report_text).collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(())
}

fn topic_report(cluster: &Cluster, name: &str) -> Result<TopicReport, CliError> {
    let topic = cluster.topic(name)?;
    let keys: Vec<(String, i32)> = topic
        .partitions
        .iter()
        .map(|p| (topic.name.clone(), p.partition))
        .collect();
    let consumer = cluster.connect.query_consumer(None)?;
    let connect = &cluster.connect;
    let earliest = client::list_offsets(&consumer, connect, &keys, OffsetSpec::Earliest)?;
    let latest = client::list_offsets(&consumer, connect, &keys, OffsetSpec::Latest)?;
    let configs = match topic_configs(cluster, name) {
        Ok(entries) => Configs::Known(entries),
        Err(CliError::UnknownTopic(t)) => return Err(CliError::UnknownTopic(t)),
        Err(e) => Configs::Unavailable(e.to_string()),
    };
    let leader = topic.partitions.first().map_or(-1, |p| p.leader);
    let shard_count = broker_shard_count(cluster, leader);
    let offset = |map: &BTreeMap<(String, i32), Option<i64>>, partition: i32| {
        map.get(&(topic.name.clone(), partition)).copied().flatten()
    };
    let partitions = topic
        .partitions
        .iter()
        .map(|p| PartitionRow {
            partition: p.partition,
            leader: p.leader,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            shard: shard_count
                .map(|count| shardlog::metadata::shard_for(&topic.name, p.partition, count).0),
            log_start: offset(&earliest, p.partition),
            log_end: offset(&latest, p.partition),
        })
        .collect();
    Ok(TopicReport {
        replication_factor: replication_factor(&topic),
        name: topic.name,
        shard_count,
        configs,
        partitions,
    })
}

fn report_json(report: &TopicReport) -> Value {
    let rows: Vec<Value> = report
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition, "leader": p.leader, "replicas": p.replicas,
                "isr": p.isr, "shard": p.shard, "log_start_offset": p.log_start,
                "log_end_offset": p.log_end,
            })
        })
        .collect();
    let configs = match &report.configs {
        Configs::Known(entries) => json!(config_map(entries, false)),
        Configs::Unavailable(_) => Value::Null,
    };
    json!({
        "topic": report.name, "replication_factor": report.replication_factor,
        "shard_count": report.shard_count, "partitions": rows, "configs": configs,
    })
}

fn report_text(report: &TopicReport) -> String {
    let shards = report
        .shard_count
        .map_or_else(|| "unknown".to_string(), |c| c.to_string());
    let mut out = format!(
        "Topic: {}  Partitions: {}  Replication-factor: {}  Broker shards: {}\n",
        report.name,
        report.partitions.len(),
        report.replication_factor,
        shards
    );
    match &report.configs {
        Configs::Known(entries) => {
            let own: Vec<String> = config_map(entries, true)
                .into_iter()
                .map(|(k, v)| format!("{k}={}", v.unwrap_or_default()))
                .collect();
            let own = if own.is_empty() {
                "(broker defaults)".to_string()
            } else {
                own.join(",")
            };
            out.push_str(&format!("Configs: {own}\n"));
        }
        Configs::Unavailable(why) => out.push_str(&format!("Configs: unavailable ({why})\n")),
    }
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "SHARD",
        "LOG-START",
        "LOG-END",
    ]);
    for p in &report.partitions {
        table.push(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            join_ids(&p.replicas),
            join_ids(&p.isr),
            p.shard.map_or_else(|| "?".to_string(), |s| s.to_string()),
            output::or_dash(p.log_start),
            output::or_dash(p.log_end),
        ]);
    }
    out.push_str(&table.render());
    out
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Config name → value; with `own_only`, just the topic's dynamic (non-default) entries.
fn config_map(entries: &[ConfigEntry], own_only: bool) -> BTreeMap<String, Option<String>> {
    entries
        .iter()
        .filter(|e| !own_only || is_topic_override(e))
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

fn is_topic_override(entry: &ConfigEntry) -> bool {
    entry.source == ConfigSource::DynamicTopic
        || (entry.source == ConfigSource::Unknown && !entry.is_default)
}

/// The topic's configs from DescribeConfigs; a refusal is an error with the broker's message
/// (rdkafka's own `describe_configs` would return no entries instead, see `config_admin`).
fn topic_configs(cluster: &Cluster, name: &str) -> Result<Vec<ConfigEntry>, CliError> {
    let target = ConfigTarget::Topic(name);
    config_admin::describe(cluster, target, None)?
        .map_err(|refusal| refusal.into_cli_error(cluster, "describe topic configs", target))
}

/// The broker's shard count from its `shardlog.shards` config; `None` for brokers that do not
/// publish it (Apache Kafka, or a shardlog without DescribeConfigs).
pub fn broker_shard_count(cluster: &Cluster, broker_id: i32) -> Option<usize> {
    let broker_id = if broker_id >= 0 {
        broker_id
    } else {
        *cluster.broker_ids().ok()?.first()?
    };
    let entries = config_admin::describe(cluster, ConfigTarget::Broker(broker_id), Some(broker_id))
        .ok()?
        .ok()?;
    let entry = entries.iter().find(|e| e.name == SHARD_COUNT_CONFIG)?;
    let value = entry.value.as_deref()?;
    value.parse::<usize>().ok().filter(|count| *count > 0)
}

fn delete(cluster: &Cluster, name: &str, format: Format) -> Result<(), CliError> {
    let results = client::block_on(
        cluster
            .admin
            .delete_topics(&[name], &cluster.admin_options()),
    )
    .map_err(|e| cluster.connect.error("delete topic", e))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                return Err(CliError::UnknownTopic(name));
            }
            Err((_, code)) => return Err(cluster.connect.code_error("delete topic", code)),
        }
    }
    match format {
        Format::Json => output::print_json(&json!({ "topic": name, "deleted": true })),
        Format::Text => println!("Deleted topic {name}."),
    }
    Ok(())
}

fn alter(cluster: &Cluster, name: &str, partitions: i32, format: Format) -> Result<(), CliError> {
    let current = cluster.topic(name)?.partitions.len();
    let target = usize::try_from(partitions).unwrap_or(0);
    if target <= current {
        return Err(CliError::InvalidArgument(format!(
            "topic '{name}' has {current} partitions; --partitions must be larger \
             (partitions can be added, never removed)"
        )));
    }
    let request = NewPartitions::new(name, target);
    let results = client::block_on(
        cluster
            .admin
            .create_partitions([&request], &cluster.admin_options()),
    )
    .map_err(|e| cluster.connect.error("create partitions", e))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                return Err(CliError::UnknownTopic(name));
            }
            Err((_, code)) => return Err(cluster.connect.code_error("create partitions", code)),
        }
    }
    match format {
        Format::Json => output::print_json(&json!({
            "topic": name, "previous_partitions": current, "partitions": target,
        })),
        Format::Text => println!("Topic {name}: partitions {current} -> {target}."),
    }
    Ok(())
}

/// IncrementalAlterConfigs SET for each `set` and DELETE for each `delete`, as
/// kafka-configs.sh does: the broker validates the changes together and applies all or none, and
/// a refusal ends the command non-zero with the broker's message. Prints the topic's own configs
/// as the broker has them afterwards.
fn configure(
    cluster: &Cluster,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
    format: Format,
) -> Result<(), CliError> {
    refuse_set_and_deleted(set, delete)?;
    let mut own = config_map(&topic_configs(cluster, name)?, true);
    if !set.is_empty() || !delete.is_empty() {
        for key in delete {
            if !own.contains_key(key) {
                eprintln!("note: {key} was not set on topic {name}");
            }
        }
        let changes = config_changes(set, delete);
        let target = ConfigTarget::Topic(name);
        config_admin::alter_incrementally(cluster, target, &changes)?
            .map_err(|refusal| refusal.into_cli_error(cluster, "alter topic configs", target))?;
        own = config_map(&topic_configs(cluster, name)?, true);
    }
    match format {
        Format::Json => output::print_json(&json!({ "topic": name, "configs": own })),
        Format::Text => {
            let mut table = Table::new(&["CONFIG", "VALUE"]);
            for (key, value) in &own {
                table.push(vec![key.clone(), value.clone().unwrap_or_default()]);
            }
            if table.is_empty() {
                println!("Topic {name} has no config overrides.");
            } else {
                print!("{}", table.render());
            }
        }
    }
    Ok(())
}

/// `--set k=v` and `--delete k` of the same key in one command is a usage error.
pub(super) fn refuse_set_and_deleted(
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), CliError> {
    match delete.iter().find(|k| set.iter().any(|(s, _)| s == *k)) {
        Some(key) => Err(CliError::InvalidArgument(format!(
            "config '{key}' is both set and deleted"
        ))),
        None => Ok(()),
    }
}

pub(super) fn config_changes(set: &[(String, String)], delete: &[String]) -> Vec<ConfigChange> {
    let sets = set.iter().map(|(key, value)| ConfigChange::Set {
        key: key.clone(),
        value: value.clone(),
    });
    let deletes = delete
        .iter()
        .map(|key| ConfigChange::Delete { key: key.clone() });
    sets.chain(deletes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_arguments_split_at_the_first_equals() {
        assert_eq!(
            parse_key_value("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("k="), Ok(("k".into(), String::new())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
    }

    #[test]
    fn set_and_delete_flags_become_one_incremental_request() {
        let changes = config_changes(
            &[("retention.ms".into(), "1000".into())],
            &["segment.bytes".into()],
        );
        assert_eq!(
            changes,
            [
                ConfigChange::Set {
                    key: "retention.ms".into(),
                    value: "1000".into()
                },
                ConfigChange::Delete {
                    key: "segment.bytes".into()
                },
            ]
        );
    }
}
