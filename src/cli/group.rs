//! `shardlog group …`: list, describe (members, assignment, committed offsets, lag), reset offsets
//! and delete consumer groups, like kafka-consumer-groups.sh, over ListGroups, DescribeGroups,
//! OffsetFetch, ListOffsets, OffsetCommit and DeleteGroups; a consumer-protocol (KIP-848) group
//! is described with ConsumerGroupDescribe (`super::consumer_group`), with member epochs and
//! assigned and target partitions.
//!
//! Owns: the `group` argument tree, `GroupState` (what DescribeGroups and OffsetFetch say about
//! one group) and its output. Offset resets live in `super::reset`. May import:
//! `super::{assignment, client, consumer_group, error, output, reset}`.

use super::assignment::{self, Assignment};
use super::client::{self, Cluster, ConnectArgs, OffsetSpec};
use super::consumer_group::{self, ConsumerGroupInfo};
use super::error::CliError;
use super::output::{self, Format, Table};
use super::reset::{self, ResetArgs};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    /// Filled from the top-level `--bootstrap-server` / `--request-timeout-ms` (global flags
    /// of `shardlog`, accepted before or after the subcommand).
    #[arg(skip)]
    pub connect: ConnectArgs,
    /// Output: aligned text tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub format: Format,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state and member count.
    List,
    /// Show a group's members and, per partition, committed offset, log end offset and lag.
    Describe {
        /// Group id.
        group: String,
        /// Only this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Move a group's committed offsets (the group must have no active members to execute).
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (the group must have no active members).
    Delete {
        /// Group id.
        group: String,
    },
}

pub fn run(args: &GroupArgs) -> Result<(), CliError> {
    let cluster = args.connect.cluster()?;
    match &args.command {
        GroupCommand::List => list(&cluster, args.format),
        GroupCommand::Describe { group, topic } => {
            describe(&cluster, group, topic.as_deref(), args.format)
        }
        GroupCommand::ResetOffsets(reset_args) => reset::run(&cluster, reset_args, args.format),
        GroupCommand::Delete { group } => delete(&cluster, group, args.format),
    }
}

/// One member as DescribeGroups reports it.
#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: Assignment,
    /// Consumer-protocol groups: the member epoch and the target assignment.
    pub member_epoch: Option<i32>,
    pub target_assignment: Option<Assignment>,
}

/// What DescribeGroups (or, for a consumer-protocol group, ConsumerGroupDescribe) says about
/// one group.
#[derive(Debug)]
pub struct GroupInfo {
    pub group: String,
    /// `classic` or `consumer` (KIP-848).
    pub group_type: &'static str,
    pub state: String,
    pub protocol_type: String,
    /// Classic: the assignment strategy; consumer: the server-side assignor.
    pub protocol: String,
    /// Consumer-protocol groups: the group epoch and the target assignment's epoch.
    pub epochs: Option<(i32, i32)>,
    pub members: Vec<Member>,
}

impl GroupInfo {
    fn from_consumer_group(group: &str, info: ConsumerGroupInfo) -> GroupInfo {
        GroupInfo {
            group: group.to_string(),
            group_type: "consumer",
            state: info.state,
            protocol_type: "consumer".to_string(),
            protocol: info.assignor,
            epochs: Some((info.group_epoch, info.assignment_epoch)),
            members: info
                .members
                .into_iter()
                .map(|m| Member {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    host: m.host,
                    assignment: m.assignment,
                    member_epoch: Some(m.member_epoch),
                    target_assignment: Some(m.target_assignment),
                })
                .collect(),
        }
    }
}

impl GroupInfo {
    /// Kafka reports an unknown group as Dead with no members, not as an error.
    pub fn is_dead(&self) -> bool {
        self.state.eq_ignore_ascii_case("dead")
    }
}

pub fn describe_group(cluster: &Cluster, group: &str) -> Result<GroupInfo, CliError> {
    let timeout = cluster.connect.request_timeout();
    let list = cluster
        .connect
        .retry(|| cluster.admin.inner().fetch_group_list(Some(group), timeout))
        .map_err(|e| cluster.connect.error("describe group", e))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Err(CliError::UnknownGroup(group.to_string()));
    };
    let not_found = group_error(info) == RDKafkaErrorCode::GroupIdNotFound;
    // Kafka's DescribeGroups reads a consumer-protocol group as Dead (GROUP_ID_NOT_FOUND
    // from v6): ask again with ConsumerGroupDescribe.
    if (not_found || info.state().eq_ignore_ascii_case("dead"))
        && let Some(consumer) = consumer_group::describe(&cluster.connect, group)?
    {
        return Ok(GroupInfo::from_consumer_group(group, consumer));
    }
    match group_error(info) {
        RDKafkaErrorCode::NoError => {}
        RDKafkaErrorCode::GroupIdNotFound => return Err(CliError::UnknownGroup(group.to_string())),
        code => return Err(cluster.connect.code_error("describe group", code)),
    }
    let members = info
        .members()
        .iter()
        .map(|m| Member {
            member_id: m.id().to_string(),
            client_id: m.client_id().to_string(),
            host: m.client_host().to_string(),
            assignment: m
                .assignment()
                .and_then(assignment::decode_assignment)
                .unwrap_or_default(),
            member_epoch: None,
            target_assignment: None,
        })
        .collect();
    Ok(GroupInfo {
        group: group.to_string(),
        group_type: "classic",
        state: info.state().to_string(),
        protocol_type: info.protocol_type().to_string(),
        protocol: info.protocol().to_string(),
        epochs: None,
        members,
    })
}

/// DescribeGroups' per-group error, which rdkafka's `GroupInfo` does not expose (a refused group
/// would otherwise read as one with an empty state and no members).
fn group_error(info: &rdkafka::groups::GroupInfo) -> RDKafkaErrorCode {
    // SAFETY: `GroupInfo` is rdkafka's single-field wrapper of `rd_kafka_group_info`; rdkafka
    // itself builds `&[GroupInfo]` by casting the C array (`GroupList::groups`), so the cast
    // back reads the same memory, which lives as long as `info`.
    let native = unsafe {
        &*(info as *const rdkafka::groups::GroupInfo as *const rdkafka::types::RDKafkaGroupInfo)
    };
    native.err.into()
}

/// The group's committed offsets over `partitions`; partitions without a commit are left out.
pub fn committed_offsets(
    consumer: &BaseConsumer,
    connect: &ConnectArgs,
    partitions: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let mut request = TopicPartitionList::new();
    for (topic, partition) in partitions {
        request.add_partition(topic, *partition);
    }
    if request.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let answer = connect
        .retry(|| consumer.committed_offsets(request.clone(), connect.request_timeout()))
        .map_err(|e| connect.error("fetch committed offsets", e))?;
    let mut offsets = BTreeMap::new();
    for element in answer.elements() {
        // OffsetFetch answers per partition; a partition-level error is the command's error.
        if let Err(e) = element.error() {
            return Err(connect.error(
                &format!(
                    "fetch committed offsets for {}/{}",
                    element.topic(),
                    element.partition()
                ),
                e,
            ));
        }
        if let Offset::Offset(offset) = element.offset() {
            offsets.insert((element.topic().to_string(), element.partition()), offset);
        }
    }
    Ok(offsets)
}

fn list(cluster: &Cluster, format: Format) -> Result<(), CliError> {
    let timeout = cluster.connect.request_timeout();
    let list = cluster
        .connect
        .retry(|| cluster.admin.inner().fetch_group_list(None, timeout))
        .map_err(|e| cluster.connect.error("list groups", e))?;
    let mut groups: Vec<(String, String, String, usize)> = Vec::new();
    for g in list.groups() {
        // A consumer-protocol group reads as Dead in DescribeGroups (as Kafka answers).
        let not_classic = group_error(g) == RDKafkaErrorCode::GroupIdNotFound
            || g.state().eq_ignore_ascii_case("dead");
        let consumer = if not_classic {
            consumer_group::describe(&cluster.connect, g.name())?
        } else {
            None
        };
        groups.push(match consumer {
            Some(info) => (
                g.name().to_string(),
                info.state,
                "consumer".to_string(),
                info.members.len(),
            ),
            None => (
                g.name().to_string(),
                g.state().to_string(),
                g.protocol_type().to_string(),
                g.members().len(),
            ),
        });
    }
    groups.sort();
    match format {
        Format::Json => {
            let rows: Vec<Value> = groups
                .iter()
                .map(|(name, state, protocol_type, members)| {
                    json!({"group": name, "state": state, "protocol_type": protocol_type, "members": members})
                })
                .collect();
            output::print_json(&Value::Array(rows));
        }
        Format::Text => {
            let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS"]);
            for (name, state, protocol_type, members) in groups {
                table.push(vec![name, state, protocol_type, members.to_string()]);
            }
            print!("{}", table.render());
        }
    }
    Ok(())
}

/// One row of `group describe`: a partition the group has committed to or been assigned.
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    owner: Option<usize>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

fn describe(
    cluster: &Cluster,
    group: &str,
    topic_filter: Option<&str>,
    format: Format,
) -> Result<(), CliError> {
    let info = describe_group(cluster, group)?;
    let topics = match topic_filter {
        Some(topic) => vec![cluster.topic(topic)?],
        None => cluster
            .topics()?
            .into_iter()
            .filter(|t| !t.name.starts_with("__"))
            .collect(),
    };
    let all: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
        .collect();
    let consumer = cluster.connect.query_consumer(Some(group))?;
    let committed = committed_offsets(&consumer, &cluster.connect, &all)?;
    if info.is_dead() && committed.is_empty() {
        return Err(CliError::UnknownGroup(group.to_string()));
    }
    let mut owners: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (index, member) in info.members.iter().enumerate() {
        for (topic, partitions) in &member.assignment {
            for partition in partitions {
                owners.insert((topic.clone(), *partition), index);
            }
        }
    }
    // Every partition of each topic the group has committed to or is assigned, so a partition
    // the group has not reached yet shows up (with no committed offset) instead of hiding.
    let involved: BTreeSet<&str> = committed
        .keys()
        .chain(owners.keys())
        .map(|(topic, _)| topic.as_str())
        .collect();
    let shown: Vec<(String, i32)> = all
        .iter()
        .filter(|(topic, _)| involved.contains(topic.as_str()))
        .cloned()
        .collect();
    let log_end = client::list_offsets(&consumer, &cluster.connect, &shown, OffsetSpec::Latest)?;
    let rows: Vec<OffsetRow> = shown
        .into_iter()
        .map(|key| OffsetRow {
            committed: committed.get(&key).copied(),
            log_end: log_end.get(&key).copied().flatten(),
            owner: owners.get(&key).copied(),
            topic: key.0,
            partition: key.1,
        })
        .collect();
    match format {
        Format::Json => output::print_json(&describe_json(&info, &rows)),
        Format::Text => print!("{}", describe_text(&info, &rows)),
    }
    Ok(())
}

fn assignment_json(assignment: &Assignment) -> Value {
    assignment
        .iter()
        .map(|(topic, partitions)| json!({"topic": topic, "partitions": partitions}))
        .collect()
}

fn describe_json(info: &GroupInfo, rows: &[OffsetRow]) -> Value {
    let members: Vec<Value> = info
        .members
        .iter()
        .map(|m| {
            let mut member = json!({
                "member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                "assignment": assignment_json(&m.assignment),
            });
            if let (Some(epoch), Some(target)) = (m.member_epoch, &m.target_assignment) {
                member["member_epoch"] = json!(epoch);
                member["target_assignment"] = assignment_json(target);
            }
            member
        })
        .collect();
    let offsets: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "topic": r.topic, "partition": r.partition, "committed_offset": r.committed,
                "log_end_offset": r.log_end, "lag": r.lag(),
                "member_id": r.owner.map(|i| info.members[i].member_id.clone()),
            })
        })
        .collect();
    let total_lag: i64 = rows.iter().filter_map(OffsetRow::lag).sum();
    let mut described = json!({
        "group": info.group, "group_type": info.group_type, "state": info.state,
        "protocol_type": info.protocol_type, "protocol": info.protocol, "members": members,
        "offsets": offsets, "total_lag": total_lag,
    });
    if let Some((group_epoch, assignment_epoch)) = info.epochs {
        described["group_epoch"] = json!(group_epoch);
        described["assignment_epoch"] = json!(assignment_epoch);
    }
    described
}

/// `topic:0,1 other:2`, or `-` for nothing.
fn assignment_text(assignment: &Assignment) -> String {
    let topics: Vec<String> = assignment
        .iter()
        .map(|(topic, partitions)| {
            let ids: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}:{}", ids.join(","))
        })
        .collect();
    if topics.is_empty() {
        "-".into()
    } else {
        topics.join(" ")
    }
}

fn describe_text(info: &GroupInfo, rows: &[OffsetRow]) -> String {
    let protocol = if info.protocol.is_empty() {
        "-"
    } else {
        &info.protocol
    };
    let mut out = match info.epochs {
        None => format!(
            "Group: {}  State: {}  Protocol: {}  Members: {}\n\n",
            info.group,
            info.state,
            protocol,
            info.members.len()
        ),
        Some((group_epoch, assignment_epoch)) => format!(
            "Group: {}  Type: consumer  State: {}  Assignor: {}  Group epoch: {}  \
             Assignment epoch: {}  Members: {}\n\n",
            info.group,
            info.state,
            protocol,
            group_epoch,
            assignment_epoch,
            info.members.len()
        ),
    };
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for row in rows {
        let member = row.owner.map(|i| &info.members[i]);
        table.push(vec![
            row.topic.clone(),
            row.partition.to_string(),
            output::or_dash(row.committed),
            output::or_dash(row.log_end),
            output::or_dash(row.lag()),
            member.map_or("-".to_string(), |m| m.member_id.clone()),
            member.map_or("-".to_string(), |m| m.host.clone()),
            member.map_or("-".to_string(), |m| m.client_id.clone()),
        ]);
    }
    if table.is_empty() {
        out.push_str("No committed offsets or assigned partitions.\n");
    } else {
        out.push_str(&table.render());
    }
    if !info.members.is_empty() {
        out.push('\n');
        out.push_str(&members_text(info));
    }
    out
}

/// The members table; consumer-protocol groups add the member epoch and target assignment.
fn members_text(info: &GroupInfo) -> String {
    let consumer = info.epochs.is_some();
    let mut header = vec!["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"];
    if consumer {
        header.extend(["MEMBER-EPOCH", "TARGET-ASSIGNMENT"]);
    }
    let mut members = Table::new(&header);
    for m in &info.members {
        let mut row = vec![
            m.member_id.clone(),
            m.client_id.clone(),
            m.host.clone(),
            assignment_text(&m.assignment),
        ];
        if consumer {
            row.push(output::or_dash(m.member_epoch.map(i64::from)));
            row.push(
                m.target_assignment
                    .as_ref()
                    .map_or("-".into(), assignment_text),
            );
        }
        members.push(row);
    }
    members.render()
}

fn delete(cluster: &Cluster, group: &str, format: Format) -> Result<(), CliError> {
    let results = client::block_on(
        cluster
            .admin
            .delete_groups(&[group], &cluster.admin_options()),
    )
    .map_err(|e| cluster.connect.error("delete group", e))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::GroupIdNotFound)) => {
                return Err(CliError::UnknownGroup(name));
            }
            Err((name, RDKafkaErrorCode::NonEmptyGroup)) => {
                return Err(CliError::Conflict(format!(
                    "group '{name}' has active members; stop its consumers first"
                )));
            }
            Err((_, code)) => return Err(cluster.connect.code_error("delete group", code)),
        }
    }
    match format {
        Format::Json => output::print_json(&json!({ "group": group, "deleted": true })),
        Format::Text => println!("Deleted group {group}."),
    }
    Ok(())
}
