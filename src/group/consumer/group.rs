//! One consumer-protocol group (after Kafka's `GroupMetadataManager.consumerGroupHeartbeat`
//! and `ConsumerGroup`): heartbeats join, update, reconcile and leave members; `tick`
//! removes members whose session or revocation time ran out.
//!
//! Member lifecycle (joined, left, fenced) and new target assignments are logged at INFO
//! with the `group` field; per-heartbeat detail at DEBUG.

use super::assignor::{AssignorKind, AssignorMember, compute_target_assignment};
use super::reconcile::{Reconciliation, next_step};
use super::types::*;
use crate::model::ErrorCode;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) rack_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) subscribed_topic_names: BTreeSet<String>,
    pub(super) subscribed_topic_regex: Option<String>,
    pub(super) server_assignor: Option<AssignorKind>,
    pub(super) reconciliation: Reconciliation,
    pub(super) session_deadline_ms: u64,
    /// Set while the member has partitions to revoke: it is removed if still unrevoked then.
    pub(super) revocation_deadline_ms: Option<u64>,
}

impl Member {
    pub(super) fn new(id: &str, instance_id: Option<String>) -> Member {
        Member {
            id: id.to_string(),
            instance_id,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            reconciliation: Reconciliation {
                member_epoch: JOIN_GROUP_MEMBER_EPOCH,
                previous_member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
                state: MemberState::Stable,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
            },
            session_deadline_ms: 0,
            revocation_deadline_ms: None,
        }
    }

    /// Partitions the member holds: assigned, and pending revocation.
    pub(super) fn held(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        let r = &self.reconciliation;
        r.assigned
            .iter()
            .chain(r.pending_revocation.iter())
            .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (*topic, *p)))
    }
}

/// Why a heartbeat is refused.
pub(super) struct Rejection {
    error: ErrorCode,
    message: String,
}

fn reject(error: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        error,
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub(super) id: String,
    pub(super) group_epoch: i32,
    /// The epoch of the current target assignment.
    pub(super) assignment_epoch: i32,
    pub(super) members: BTreeMap<String, Member>,
    /// Static members: instance id to member id.
    pub(super) static_members: BTreeMap<String, String>,
    pub(super) target: BTreeMap<String, Assignment>,
    /// Who holds each partition (assigned or pending revocation).
    pub(super) holders: BTreeMap<(TopicId, i32), String>,
    /// The subscribed topics the group epoch was last bumped for.
    pub(super) subscribed_topics: BTreeMap<String, TopicImage>,
    /// The replica racks of the subscribed topics' partitions, when known (rack-aware
    /// assignment); a change bumps the group epoch as a topic change does.
    pub(super) partition_racks: PartitionRacks,
    /// Compiled `subscribed_topic_regex` values members use.
    pub(super) regexes: BTreeMap<String, Regex>,
    pub(super) limits: ConsumerGroupLimits,
    /// False after a restore until the first heartbeat: `subscribed_topics` is not stored,
    /// so that heartbeat bumps the epoch only if the topics moved the target.
    pub(super) topics_known: bool,
}

impl ConsumerGroup {
    pub fn new(id: &str, limits: ConsumerGroupLimits) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target: BTreeMap::new(),
            holders: BTreeMap::new(),
            subscribed_topics: BTreeMap::new(),
            partition_racks: PartitionRacks::new(),
            regexes: BTreeMap::new(),
            limits,
            topics_known: true,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn member_ids(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    pub fn set_limits(&mut self, limits: ConsumerGroupLimits) {
        self.limits = limits;
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch != self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| {
            let r = &m.reconciliation;
            r.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH
                && (r.member_epoch != self.assignment_epoch || r.state != MemberState::Stable)
        }) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor the group uses: the one most members ask for, else the broker default.
    pub fn assignor(&self) -> AssignorKind {
        let mut votes: BTreeMap<AssignorKind, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(kind) = member.server_assignor {
                *votes.entry(kind).or_default() += 1;
            }
        }
        let default = self
            .limits
            .assignors
            .first()
            .copied()
            .unwrap_or(AssignorKind::Uniform);
        votes
            .into_iter()
            .max_by_key(|&(kind, count)| (count, std::cmp::Reverse(kind)))
            .map_or(default, |(kind, _)| kind)
    }

    /// Handles one ConsumerGroupHeartbeat (join, heartbeat, leave).
    pub fn heartbeat(
        &mut self,
        input: HeartbeatInput,
        image: &TopicsImage,
        now_ms: u64,
    ) -> HeartbeatOutcome {
        let member_id = input.member_id.clone();
        let result = self
            .validate(&input)
            .and_then(|()| match input.member_epoch {
                LEAVE_GROUP_MEMBER_EPOCH | LEAVE_GROUP_STATIC_MEMBER_EPOCH => self.leave(&input),
                _ => self.join_or_heartbeat(input, image, now_ms),
            });
        match result {
            Ok(outcome) => outcome,
            Err(rejection) => {
                tracing::debug!(group = %self.id, member = %member_id, error = ?rejection.error,
                    message = %rejection.message, "consumer group heartbeat refused");
                HeartbeatOutcome::error(rejection.error, &rejection.message, &member_id)
            }
        }
    }

    /// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, and the assignor and regex
    /// checks.
    fn validate(&mut self, input: &HeartbeatInput) -> Result<(), Rejection> {
        if input.member_id.is_empty() {
            return Err(reject(
                ErrorCode::InvalidRequest,
                "MemberId can't be empty.",
            ));
        }
        if input.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && input.instance_id.is_none() {
            return Err(reject(
                ErrorCode::InvalidRequest,
                "InstanceId can't be null when MemberEpoch is -2.",
            ));
        }
        if input.member_epoch == JOIN_GROUP_MEMBER_EPOCH {
            if input.rebalance_timeout_ms == -1 {
                return Err(reject(
                    ErrorCode::InvalidRequest,
                    "RebalanceTimeoutMs must be provided in first request.",
                ));
            }
            if input.subscribed_topic_names.is_none() && input.subscribed_topic_regex.is_none() {
                return Err(reject(
                    ErrorCode::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                ));
            }
            if input
                .owned_partitions
                .as_ref()
                .is_some_and(|owned| assignment_size(owned) > 0)
            {
                return Err(reject(
                    ErrorCode::InvalidRequest,
                    "TopicPartitions must be empty when (re-)joining.",
                ));
            }
        }
        if let Some(name) = input.server_assignor.as_deref().filter(|n| !n.is_empty()) {
            let supported = AssignorKind::from_name(name)
                .is_some_and(|kind| self.limits.assignors.contains(&kind));
            if !supported {
                return Err(reject(
                    ErrorCode::UnsupportedAssignor,
                    format!("ServerAssignor {name} is not supported."),
                ));
            }
        }
        if let Some(regex) = input.subscribed_topic_regex.as_deref() {
            self.compile_regex(regex)?;
        }
        Ok(())
    }

    pub(super) fn compile_regex(&mut self, regex: &str) -> Result<(), Rejection> {
        if regex.is_empty() || self.regexes.contains_key(regex) {
            return Ok(());
        }
        if regex.len() > self.limits.regex_len_max {
            return Err(reject(
                ErrorCode::InvalidRegularExpression,
                format!(
                    "SubscribedTopicRegex is longer than {} bytes.",
                    self.limits.regex_len_max
                ),
            ));
        }
        // Kafka matches the whole topic name (RE2J `matches`).
        let compiled = regex::RegexBuilder::new(&format!("^(?:{regex})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                reject(
                    ErrorCode::InvalidRegularExpression,
                    format!(
                        "SubscribedTopicRegex `{regex}` is not a valid regular expression: {e}"
                    ),
                )
            })?;
        self.regexes.insert(regex.to_string(), compiled);
        Ok(())
    }

    fn leave(&mut self, input: &HeartbeatInput) -> Result<HeartbeatOutcome, Rejection> {
        let member_id = self.member_for_request(input)?;
        if input.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // A static member leaving for a while keeps its partitions until its session
            // ends or its instance rejoins.
            if let Some(member) = self.members.get_mut(&member_id) {
                member.reconciliation.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                member.revocation_deadline_ms = None;
            }
            tracing::info!(group = %self.id, member = %member_id, "static consumer group member left temporarily");
        } else {
            self.remove_member(&member_id, "left the group");
        }
        Ok(HeartbeatOutcome {
            error: ErrorCode::None,
            error_message: None,
            member_id,
            member_epoch: input.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// The existing member a request names (by instance id for static members).
    fn member_for_request(&self, input: &HeartbeatInput) -> Result<String, Rejection> {
        match &input.instance_id {
            Some(instance) => {
                let Some(id) = self.static_members.get(instance) else {
                    return Err(reject(
                        ErrorCode::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    ));
                };
                if id != &input.member_id {
                    return Err(reject(
                        ErrorCode::FencedInstanceId,
                        format!("Instance id {instance} is in use by another member."),
                    ));
                }
                Ok(id.clone())
            }
            None if self.members.contains_key(&input.member_id) => Ok(input.member_id.clone()),
            None => Err(reject(
                ErrorCode::UnknownMemberId,
                format!("Member {} is not a member of the group.", input.member_id),
            )),
        }
    }

    /// Finds or creates the member of a join/heartbeat: `Ok(true)` when it is new.
    fn resolve_member(&mut self, input: &HeartbeatInput) -> Result<bool, Rejection> {
        if input.member_epoch != JOIN_GROUP_MEMBER_EPOCH {
            let member_id = self.member_for_request(input)?;
            return self.check_member_epoch(&member_id, input).map(|()| false);
        }
        if self.members.contains_key(&input.member_id) {
            return Ok(false);
        }
        if let Some(instance) = &input.instance_id
            && let Some(previous_id) = self.static_members.get(instance).cloned()
        {
            let previous_epoch = self
                .members
                .get(&previous_id)
                .map_or(LEAVE_GROUP_STATIC_MEMBER_EPOCH, |m| {
                    m.reconciliation.member_epoch
                });
            if previous_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                return Err(reject(
                    ErrorCode::UnreleasedInstanceId,
                    format!(
                        "Static member {previous_id} with instance id {instance} is not released yet."
                    ),
                ));
            }
            self.replace_static_member(&previous_id, &input.member_id);
            return Ok(false);
        }
        if self.members.len() >= self.limits.members_max {
            return Err(reject(
                ErrorCode::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    self.limits.members_max
                ),
            ));
        }
        let member = Member::new(&input.member_id, input.instance_id.clone());
        if let Some(instance) = &input.instance_id {
            self.static_members
                .insert(instance.clone(), input.member_id.clone());
        }
        self.members.insert(input.member_id.clone(), member);
        Ok(true)
    }

    /// Kafka's `throwIfMemberEpochIsInvalid`: a member may repeat its previous epoch (its
    /// last response was lost) if it owns no more than it is assigned.
    fn check_member_epoch(&self, member_id: &str, input: &HeartbeatInput) -> Result<(), Rejection> {
        let Some(member) = self.members.get(member_id) else {
            return Err(reject(ErrorCode::UnknownMemberId, "Unknown member."));
        };
        let r = &member.reconciliation;
        let received = input.member_epoch;
        if received > r.member_epoch {
            return Err(reject(
                ErrorCode::FencedMemberEpoch,
                format!(
                    "The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    r.member_epoch
                ),
            ));
        }
        if received < r.member_epoch {
            let owned_ok = input
                .owned_partitions
                .as_ref()
                .is_some_and(|owned| is_subset(owned, &r.assigned));
            if received != r.previous_member_epoch || !owned_ok {
                return Err(reject(
                    ErrorCode::FencedMemberEpoch,
                    format!(
                        "The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        r.member_epoch
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A static member rejoining under a new member id takes over the old one's state.
    fn replace_static_member(&mut self, previous_id: &str, member_id: &str) {
        let Some(mut member) = self.members.remove(previous_id) else {
            return;
        };
        member.id = member_id.to_string();
        member.reconciliation.member_epoch = JOIN_GROUP_MEMBER_EPOCH;
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.to_string());
        }
        for holder in self.holders.values_mut() {
            if holder == previous_id {
                *holder = member_id.to_string();
            }
        }
        if let Some(target) = self.target.remove(previous_id) {
            self.target.insert(member_id.to_string(), target);
        }
        self.members.insert(member_id.to_string(), member);
        tracing::info!(group = %self.id, member = %member_id, previous = %previous_id,
            "static consumer group member rejoined");
    }

    fn join_or_heartbeat(
        &mut self,
        input: HeartbeatInput,
        image: &TopicsImage,
        now_ms: u64,
    ) -> Result<HeartbeatOutcome, Rejection> {
        let is_new = self.resolve_member(&input)?;
        let member_id = input.member_id.clone();
        let full_request = input.member_epoch == JOIN_GROUP_MEMBER_EPOCH
            || (input.rebalance_timeout_ms != -1
                && (input.subscribed_topic_names.is_some()
                    || input.subscribed_topic_regex.is_some())
                && input.owned_partitions.is_some());
        let subscription_changed = self.update_member(&member_id, &input, now_ms) || is_new;
        if is_new {
            tracing::info!(group = %self.id, member = %member_id,
                instance = ?input.instance_id, "consumer group member joined");
        }
        let subscribed = self.resolve_subscribed_topics(image);
        let racks = image.racks_of(&subscribed.values().map(|t| t.id).collect());
        let mut topics_changed =
            subscribed != self.subscribed_topics || racks != self.partition_racks;
        if topics_changed {
            self.subscribed_topics = subscribed;
            self.partition_racks = racks;
            if !self.topics_known {
                topics_changed = self.assign().1 != self.target;
            }
        }
        self.topics_known = true;
        if subscription_changed || topics_changed {
            self.group_epoch += 1;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
        let before = self
            .members
            .get(&member_id)
            .map(|m| m.reconciliation.assigned.clone())
            .unwrap_or_default();
        self.reconcile(&member_id, input.owned_partitions.as_ref(), now_ms);
        let Some(member) = self.members.get(&member_id) else {
            return Err(reject(ErrorCode::UnknownMemberId, "Unknown member."));
        };
        let changed = member.reconciliation.assigned != before;
        Ok(HeartbeatOutcome {
            error: ErrorCode::None,
            error_message: None,
            member_id,
            member_epoch: member.reconciliation.member_epoch,
            heartbeat_interval_ms: self.limits.heartbeat_interval_ms,
            assignment: (full_request || changed).then(|| member.reconciliation.assigned.clone()),
        })
    }

    /// Applies a heartbeat's fields to its member; true when its subscription changed.
    fn update_member(&mut self, member_id: &str, input: &HeartbeatInput, now_ms: u64) -> bool {
        let session_timeout_ms = self.limits.session_timeout_ms;
        let Some(member) = self.members.get_mut(member_id) else {
            return false;
        };
        let mut changed = false;
        member.client_id.clone_from(&input.client_id);
        member.client_host.clone_from(&input.client_host);
        member.session_deadline_ms = now_ms.saturating_add(session_timeout_ms);
        if input.rack_id.is_some() {
            // The rack feeds rack-aware assignment: a new one is a new subscription.
            changed |= input.rack_id != member.rack_id;
            member.rack_id.clone_from(&input.rack_id);
        }
        if input.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = input.rebalance_timeout_ms;
        }
        if let Some(names) = &input.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            changed |= names != member.subscribed_topic_names;
            member.subscribed_topic_names = names;
        }
        if let Some(regex) = &input.subscribed_topic_regex {
            let regex = (!regex.is_empty()).then(|| regex.clone());
            changed |= regex != member.subscribed_topic_regex;
            member.subscribed_topic_regex = regex;
        }
        if let Some(name) = &input.server_assignor {
            let kind = AssignorKind::from_name(name);
            changed |= kind != member.server_assignor;
            member.server_assignor = kind;
        }
        if changed {
            self.prune_regexes();
        }
        changed
    }

    fn prune_regexes(&mut self) {
        let used: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_ref())
            .collect();
        self.regexes.retain(|regex, _| used.contains(regex));
    }

    fn member_subscribes(&self, member: &Member, topic: &str) -> bool {
        member.subscribed_topic_names.contains(topic)
            || member
                .subscribed_topic_regex
                .as_ref()
                .and_then(|regex| self.regexes.get(regex))
                .is_some_and(|regex| regex.is_match(topic))
    }

    /// The existing topics any member subscribes to, by name or regex.
    fn resolve_subscribed_topics(&self, image: &TopicsImage) -> BTreeMap<String, TopicImage> {
        let mut topics = BTreeMap::new();
        for member in self.members.values() {
            for name in &member.subscribed_topic_names {
                if let Some(topic) = image.get(name) {
                    topics.insert(name.clone(), topic);
                }
            }
        }
        let regexes: Vec<&Regex> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_ref())
            .filter_map(|regex| self.regexes.get(regex))
            .collect();
        if !regexes.is_empty() {
            for (name, topic) in image.iter() {
                if regexes.iter().any(|regex| regex.is_match(name)) {
                    topics.insert(name.clone(), *topic);
                }
            }
        }
        topics
    }

    /// A new target assignment at the group epoch.
    fn compute_target(&mut self) {
        let (kind, target) = self.assign();
        self.target = target;
        self.assignment_epoch = self.group_epoch;
        tracing::info!(group = %self.id, epoch = self.assignment_epoch, assignor = kind.name(),
            members = self.members.len(), "consumer group target assignment computed");
    }

    /// What the assignor makes of the members, their subscribed topics and the target.
    fn assign(&self) -> (AssignorKind, BTreeMap<String, Assignment>) {
        let kind = self.assignor();
        let empty = Assignment::new();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .map(|member| AssignorMember {
                member_id: &member.id,
                subscribed: self
                    .subscribed_topics
                    .iter()
                    .filter(|(name, _)| self.member_subscribes(member, name))
                    .map(|(_, topic)| topic.id)
                    .collect(),
                previous: self.target.get(&member.id).unwrap_or(&empty),
                rack: member.rack_id.as_deref(),
            })
            .collect();
        let topics = self
            .subscribed_topics
            .values()
            .map(|topic| (topic.id, topic.partitions))
            .collect();
        let assigned = compute_target_assignment(kind, &members, &topics, &self.partition_racks);
        (kind, assigned)
    }

    /// Moves a member one step towards its target.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: u64) {
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        let empty = Assignment::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        let holders = &self.holders;
        let next = next_step(
            &member.reconciliation,
            self.assignment_epoch,
            target,
            owned,
            |topic, partition| {
                holders
                    .get(&(*topic, partition))
                    .is_some_and(|holder| holder != member_id)
            },
        );
        if next != member.reconciliation {
            tracing::debug!(group = %self.id, member = %member_id, epoch = next.member_epoch,
                state = next.state.kafka_name(), "consumer group member reconciled");
            self.set_reconciliation(member_id, next, now_ms);
        }
    }

    fn set_reconciliation(&mut self, member_id: &str, next: Reconciliation, now_ms: u64) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        for partition in member.held() {
            self.holders.remove(&partition);
        }
        let was_unrevoked = member.reconciliation.state == MemberState::UnrevokedPartitions;
        member.reconciliation = next;
        member.revocation_deadline_ms = match member.reconciliation.state {
            MemberState::UnrevokedPartitions if was_unrevoked => member.revocation_deadline_ms,
            MemberState::UnrevokedPartitions => {
                Some(now_ms.saturating_add(member.rebalance_timeout_ms.max(0) as u64))
            }
            _ => None,
        };
        for partition in member.held() {
            let previous = self.holders.insert(partition, member_id.to_string());
            // Reconciliation only gives a member partitions nobody else holds.
            assert!(
                previous.is_none_or(|holder| holder == member_id),
                "partition held by two members"
            );
        }
    }

    fn remove_member(&mut self, member_id: &str, reason: &str) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        for partition in member.held() {
            self.holders.remove(&partition);
        }
        if let Some(instance) = &member.instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
        self.prune_regexes();
        tracing::info!(group = %self.id, member = %member_id, reason, epoch = self.group_epoch,
            "consumer group member removed");
    }

    /// Removes members whose session expired or that did not revoke in time.
    pub fn tick(&mut self, now_ms: u64) -> Vec<FencedMember> {
        let expired: Vec<FencedMember> = self
            .members
            .values()
            .filter_map(|member| {
                if member.session_deadline_ms <= now_ms {
                    Some("session timeout")
                } else if member.revocation_deadline_ms.is_some_and(|d| d <= now_ms) {
                    Some("revocation timeout")
                } else {
                    None
                }
                .map(|reason| FencedMember {
                    member_id: member.id.clone(),
                    reason,
                })
            })
            .collect();
        for fenced in &expired {
            self.remove_member(&fenced.member_id, fenced.reason);
        }
        expired
    }

    /// The earliest session or revocation deadline (for the shell's timer).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.members
            .values()
            .flat_map(|m| std::iter::once(m.session_deadline_ms).chain(m.revocation_deadline_ms))
            .min()
    }

    /// OffsetCommit / TxnOffsetCommit from a member (Kafka's `ConsumerGroup.validateOffsetCommit`):
    /// an empty group accepts commits without a member (admin tools, simple consumers);
    /// otherwise the member must exist (UNKNOWN_MEMBER_ID), an OffsetCommit must be v9+
    /// (UNSUPPORTED_VERSION: older versions cannot carry a member epoch) and the epoch must be
    /// the member's current one (STALE_MEMBER_EPOCH).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        source: CommitSource,
    ) -> Result<(), ErrorCode> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if let CommitSource::OffsetCommit { api_version } = source
            && api_version < OFFSET_COMMIT_CONSUMER_PROTOCOL_VERSION_MIN
        {
            return Err(ErrorCode::UnsupportedVersion);
        }
        if member.reconciliation.member_epoch != member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    /// OffsetFetch v9+ with a member (Kafka's `ConsumerGroup.validateOffsetFetch`): requests
    /// without member id and epoch (admin tools) are always accepted.
    pub fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ErrorCode> {
        let member_id = member_id.filter(|id| !id.is_empty());
        let Some(member_id) = member_id else {
            return if member_epoch < 0 {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        };
        let member = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if member.reconciliation.member_epoch != member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    pub fn describe(&self) -> ConsumerGroupDescription {
        let members = self
            .members
            .values()
            .map(|m| ConsumerMemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.reconciliation.member_epoch,
                state: m.reconciliation.state,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                assignment: m.reconciliation.assigned.clone(),
                target_assignment: self.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        ConsumerGroupDescription {
            group_id: self.id.clone(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor_name: self.assignor().name(),
            members,
        }
    }

    /// Checks the group's invariants (module header); an Err names the broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.assignment_epoch > self.group_epoch {
            return Err(format!(
                "assignment epoch {} above group epoch {}",
                self.assignment_epoch, self.group_epoch
            ));
        }
        let mut held = 0;
        for member in self.members.values() {
            let epoch = member.reconciliation.member_epoch;
            if epoch > self.assignment_epoch {
                return Err(format!("member {} epoch {epoch} above target", member.id));
            }
            for partition in member.held() {
                held += 1;
                if self.holders.get(&partition) != Some(&member.id) {
                    return Err(format!(
                        "partition {partition:?} of {} held by {:?}",
                        member.id,
                        self.holders.get(&partition)
                    ));
                }
            }
        }
        if held != self.holders.len() {
            return Err(format!(
                "{} holders for {held} held partitions",
                self.holders.len()
            ));
        }
        let mut targeted = BTreeSet::new();
        for assignment in self.target.values() {
            for (topic, partitions) in assignment {
                for partition in partitions {
                    if !targeted.insert((*topic, *partition)) {
                        return Err(format!("partition {partition} targeted twice"));
                    }
                }
            }
        }
        for (instance, member_id) in &self.static_members {
            let ok = self
                .members
                .get(member_id)
                .is_some_and(|m| m.instance_id.as_ref() == Some(instance));
            if !ok {
                return Err(format!("static member {instance} points at {member_id}"));
            }
        }
        Ok(())
    }
}
