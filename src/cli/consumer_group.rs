//! ConsumerGroupDescribe (KIP-848) for `shardlog group describe`: librdkafka's group listing
//! (DescribeGroups) reads a consumer-protocol group as Dead, as Kafka answers it, so the CLI
//! asks the group's coordinator itself (kafka-protocol, like `cluster describe`) for the
//! group and member epochs and each member's assigned and target partitions.
//!
//! Owns: `describe` and `ConsumerGroupInfo`. May import: `super::{assignment, client,
//! cluster, error}`, kafka-protocol.

use super::assignment::Assignment;
use super::client::ConnectArgs;
use super::cluster::{exchange, exchange_any};
use super::error::CliError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup,
};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, FindCoordinatorRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

const DESCRIBE_VERSION: i16 = 0;
/// The last FindCoordinator version with a single `key` field.
const FIND_COORDINATOR_VERSION: i16 = 3;
const NOT_COORDINATOR: i16 = 16;
const GROUP_ID_NOT_FOUND: i16 = 69;

/// One member of a consumer-protocol group.
#[derive(Debug)]
pub struct ConsumerMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub member_epoch: i32,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

/// What ConsumerGroupDescribe says about one group.
#[derive(Debug)]
pub struct ConsumerGroupInfo {
    pub state: String,
    pub assignor: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ConsumerMember>,
}

fn assignment(wire: &WireAssignment) -> Assignment {
    let mut topics: Assignment = wire
        .topic_partitions
        .iter()
        .map(|t| {
            let mut partitions = t.partitions.clone();
            partitions.sort_unstable();
            (t.topic_name.to_string(), partitions)
        })
        .collect();
    topics.sort();
    topics
}

fn described(
    connect: &ConnectArgs,
    address: Option<&str>,
    group: &str,
) -> Result<DescribedGroup, CliError> {
    let operation = "describe consumer group";
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = match address {
        Some(address) => exchange(connect, address, &request, DESCRIBE_VERSION)?,
        None => exchange_any(connect, &request, DESCRIBE_VERSION, operation)?,
    };
    response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| CliError::failed(operation, "no group in the answer"))
}

/// The group's coordinator, `host:port`.
fn coordinator(connect: &ConnectArgs, group: &str) -> Result<String, CliError> {
    let operation = "find the group coordinator";
    let request =
        FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
    let response = exchange_any(connect, &request, FIND_COORDINATOR_VERSION, operation)?;
    if response.error_code != 0 {
        return Err(CliError::failed(
            operation,
            format!("error code {}", response.error_code),
        ));
    }
    Ok(format!("{}:{}", response.host, response.port))
}

/// The consumer-protocol group `group`; `Ok(None)` when there is none of that id (the
/// coordinator answers GROUP_ID_NOT_FOUND, for classic groups too).
pub fn describe(connect: &ConnectArgs, group: &str) -> Result<Option<ConsumerGroupInfo>, CliError> {
    let mut answer = described(connect, None, group)?;
    if answer.error_code == NOT_COORDINATOR {
        let address = coordinator(connect, group)?;
        answer = described(connect, Some(&address), group)?;
    }
    match answer.error_code {
        0 => {}
        GROUP_ID_NOT_FOUND => return Ok(None),
        code => {
            let message = answer
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(CliError::failed(
                "describe consumer group",
                format!("error code {code} {message}"),
            ));
        }
    }
    Ok(Some(ConsumerGroupInfo {
        state: answer.group_state.to_string(),
        assignor: answer.assignor_name.to_string(),
        group_epoch: answer.group_epoch,
        assignment_epoch: answer.assignment_epoch,
        members: answer
            .members
            .iter()
            .map(|m| ConsumerMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                member_epoch: m.member_epoch,
                assignment: assignment(&m.assignment),
                target_assignment: assignment(&m.target_assignment),
            })
            .collect(),
    }))
}
