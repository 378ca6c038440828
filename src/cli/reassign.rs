//! `shardlog topic reassign` and `shardlog topic reassignments`: move a partition's replicas
//! to other brokers (or cancel a move) and list the moves in progress, as
//! kafka-reassign-partitions.sh does, over AlterPartitionReassignments and
//! ListPartitionReassignments (KIP-455; librdkafka has no admin call for them, so these go
//! over the Kafka protocol directly).
//!
//! Owns: the two commands' requests and output. May import: `super::{cluster, client,
//! error, output}`, kafka-protocol.

use super::client::ConnectArgs;
use super::cluster::exchange_any;
use super::error::CliError;
use super::output::{self, Format, Table};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use std::time::{Duration, Instant};

const ALTER_VERSION: i16 = 0;
const LIST_VERSION: i16 = 0;
/// How often `--wait` asks whether the move is done.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// One move in progress.
struct Ongoing {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

/// Sets `partition`'s target replicas (`None`: cancels its move); with `wait`, returns once
/// it is no longer in progress (at most `wait_timeout`).
pub fn reassign(
    connect: &ConnectArgs,
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
    wait: Option<Duration>,
    format: Format,
) -> Result<(), CliError> {
    let operation = "reassign partition";
    let mut entry = ReassignablePartition::default();
    entry.partition_index = partition;
    entry.replicas = replicas.map(|ids| ids.iter().copied().map(BrokerId).collect());
    let mut reassignable = ReassignableTopic::default();
    reassignable.name = TopicName(StrBytes::from_string(topic.to_string()));
    reassignable.partitions = vec![entry];
    let mut request = AlterPartitionReassignmentsRequest::default();
    request.timeout_ms = i32::try_from(connect.request_timeout_ms).unwrap_or(i32::MAX);
    request.topics = vec![reassignable];
    let response = exchange_any(connect, &request, ALTER_VERSION, operation)?;
    let code = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.error_code)
        .find(|code| *code != 0)
        .unwrap_or(response.error_code);
    if code != 0 {
        let message = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find_map(|p| p.error_message.as_ref().map(|m| m.to_string()))
            .unwrap_or_default();
        return Err(CliError::failed(
            operation,
            format!("{topic}-{partition}: error code {code} {message}"),
        ));
    }
    let mut ongoing = list(connect, Some((topic, partition)))?;
    if let Some(timeout) = wait {
        let deadline = Instant::now() + timeout;
        while !ongoing.is_empty() {
            if Instant::now() >= deadline {
                return Err(CliError::failed(
                    operation,
                    format!("{topic}-{partition} still moving after {timeout:?}"),
                ));
            }
            std::thread::sleep(WAIT_POLL);
            ongoing = list(connect, Some((topic, partition)))?;
        }
    }
    let state = match (&replicas, ongoing.first()) {
        (None, _) => "cancelled",
        (Some(_), Some(_)) => "in progress",
        (Some(_), None) => "complete",
    };
    match format {
        Format::Json => output::print_json(&json!({
            "topic": topic, "partition": partition, "replicas": replicas, "state": state,
            "adding_replicas": ongoing.first().map(|o| o.adding.clone()),
            "removing_replicas": ongoing.first().map(|o| o.removing.clone()),
        })),
        Format::Text => match ongoing.first() {
            Some(o) => println!(
                "{topic}-{partition}: {state}: replicas {:?}, adding {:?}, removing {:?}.",
                o.replicas, o.adding, o.removing
            ),
            None => println!("{topic}-{partition}: {state}."),
        },
    }
    Ok(())
}

/// Prints the moves in progress.
pub fn list_command(connect: &ConnectArgs, format: Format) -> Result<(), CliError> {
    let ongoing = list(connect, None)?;
    match format {
        Format::Json => output::print_json(&json!(
            ongoing
                .iter()
                .map(|o| json!({
                    "topic": o.topic, "partition": o.partition, "replicas": o.replicas,
                    "adding_replicas": o.adding, "removing_replicas": o.removing,
                }))
                .collect::<Vec<_>>()
        )),
        Format::Text => {
            let mut table = Table::new(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]);
            let ids = |nodes: &[i32]| {
                nodes
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for o in &ongoing {
                table.push(vec![
                    o.topic.clone(),
                    o.partition.to_string(),
                    ids(&o.replicas),
                    ids(&o.adding),
                    ids(&o.removing),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(())
}

/// The moves in progress, of every partition or of one.
fn list(connect: &ConnectArgs, only: Option<(&str, i32)>) -> Result<Vec<Ongoing>, CliError> {
    let operation = "list partition reassignments";
    let mut request = ListPartitionReassignmentsRequest::default();
    request.timeout_ms = i32::try_from(connect.request_timeout_ms).unwrap_or(i32::MAX);
    request.topics = only.map(|(topic, partition)| {
        let mut entry = ListPartitionReassignmentsTopics::default();
        entry.name = TopicName(StrBytes::from_string(topic.to_string()));
        entry.partition_indexes = vec![partition];
        vec![entry]
    });
    let response = exchange_any(connect, &request, LIST_VERSION, operation)?;
    if response.error_code != 0 {
        return Err(CliError::failed(
            operation,
            format!("error code {}", response.error_code),
        ));
    }
    let ids = |nodes: &[BrokerId]| nodes.iter().map(|n| n.0).collect::<Vec<i32>>();
    Ok(response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| Ongoing {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            })
        })
        .collect())
}
