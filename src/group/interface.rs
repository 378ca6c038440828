//! What goes in and out of the group state machine: limits and states, join/sync inputs and
//! outcomes, effects for the coordinator shell, durable snapshots and member descriptions.

use crate::model::ErrorCode;
use bytes::Bytes;

/// Identifies one waiting JoinGroup/SyncGroup request in the coordinator shell.
pub type RequestToken = u64;

#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    /// Wait this long after the first member joins an empty group before completing the
    /// join (Kafka `group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay_ms: u64,
    pub members_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups report them.
    pub fn kafka_name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinInput {
    pub token: RequestToken,
    /// Empty for a new member.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The id the shell generated in case this join creates a member.
    pub fresh_member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
    /// KIP-814: the leader must not reassign (static leader rejoined a stable group).
    pub skip_assignment: bool,
}

impl JoinOutcome {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncInput {
    pub token: RequestToken,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ErrorCode) -> SyncOutcome {
        SyncOutcome {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// The answer to a join or sync: now, or later through an effect addressed to the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    Now(T),
    Later,
}

/// What the shell must do after a transition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    CompleteJoin {
        token: RequestToken,
        outcome: JoinOutcome,
    },
    CompleteSync {
        token: RequestToken,
        outcome: SyncOutcome,
    },
    /// Write the group's metadata record (after a completed assignment or when emptied).
    Persist(GroupSnapshot),
}

/// The durable part of a group, as written to `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group_id: String,
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// Describes a member for DescribeGroups.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}
