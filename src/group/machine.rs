//! Group state and transitions (after Kafka's classic `GroupCoordinator`).
//!
//! Lifecycle events (member joined, left or expired, rebalance started with its reason,
//! generation completed, group stable) are logged at INFO, one line each with the `group`
//! field, so a broker log explains every rebalance; per-request detail stays at DEBUG.

use super::interface::*;
use crate::model::ErrorCode;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    pending_join: Option<RequestToken>,
    pending_sync: Option<RequestToken>,
    heartbeat_deadline_ms: u64,
}

impl Member {
    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|name| self.protocols.iter().find(|(p, _)| p == name))
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn touch(&mut self, now_ms: u64) {
        self.heartbeat_deadline_ms = now_ms + self.session_timeout_ms.max(0) as u64;
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to rejoin.
    pending_members: BTreeMap<String, u64>,
    static_members: HashMap<String, String>,
    /// PreparingRebalance: join completes by then; CompletingRebalance: sync must arrive.
    rebalance_deadline_ms: u64,
    /// PreparingRebalance from Empty: do not complete before this (end of the current
    /// initial-delay window, Kafka's `InitialDelayedJoin`).
    join_not_before_ms: u64,
    /// This rebalance started from Empty, so the initial delay applies.
    initial_rebalance: bool,
    /// A new member joined during the current initial-delay window: extend it once more.
    new_member_added: bool,
    /// How much longer the initial delay may still be extended (the group's rebalance
    /// timeout minus the windows so far).
    initial_delay_remaining_ms: u64,
    limits: GroupLimits,
}

impl Group {
    pub fn new(id: &str, limits: GroupLimits) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            join_not_before_ms: 0,
            initial_rebalance: false,
            new_member_added: false,
            initial_delay_remaining_ms: 0,
            limits,
        }
    }

    /// Rebuilds a group from its persisted snapshot; members get a fresh session.
    pub fn restore(snapshot: &GroupSnapshot, limits: GroupLimits, now_ms: u64) -> Group {
        let mut group = Group::new(&snapshot.group_id, limits);
        group.generation_id = snapshot.generation_id;
        group.protocol_type = Some(snapshot.protocol_type.clone());
        group.protocol_name = snapshot.protocol_name.clone();
        for saved in &snapshot.members {
            let protocols = match &snapshot.protocol_name {
                Some(name) => vec![(name.clone(), saved.subscription.clone())],
                None => Vec::new(),
            };
            let mut member = Member {
                id: saved.member_id.clone(),
                instance_id: saved.group_instance_id.clone(),
                client_id: saved.client_id.clone(),
                client_host: saved.client_host.clone(),
                session_timeout_ms: saved.session_timeout_ms,
                rebalance_timeout_ms: saved.rebalance_timeout_ms,
                protocols,
                assignment: saved.assignment.clone(),
                pending_join: None,
                pending_sync: None,
                heartbeat_deadline_ms: 0,
            };
            member.touch(now_ms);
            if let Some(instance) = &member.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.id.clone());
            }
            group.members.insert(member.id.clone(), member);
        }
        if !group.members.is_empty() {
            group.state = GroupState::Stable;
            group.leader_id = snapshot
                .leader
                .clone()
                .filter(|leader| group.members.contains_key(leader))
                .or_else(|| group.members.keys().next().cloned());
        }
        group
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// Marks the group deleted (DeleteGroups on an empty group).
    pub fn mark_dead(&mut self) {
        self.state = GroupState::Dead;
    }

    pub fn describe_members(&self) -> Vec<MemberDescription> {
        self.members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(self.protocol_name.as_deref()),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    /// The subscription metadata of every member for the chosen protocol.
    pub fn member_subscriptions(&self) -> Vec<Bytes> {
        self.members
            .values()
            .map(|m| m.metadata_for(self.protocol_name.as_deref()))
            .collect()
    }

    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(self.protocol_name.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// FENCED_INSTANCE_ID when a static member's instance id maps to another member id.
    fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|instance| self.static_members.get(instance))
            .is_some_and(|current| current != member_id)
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == name))
            })
    }

    // ----- JoinGroup -----

    pub fn join(&mut self, input: JoinInput, now_ms: u64) -> (Reply<JoinOutcome>, Vec<Effect>) {
        let now = |error| {
            (
                Reply::Now(JoinOutcome::error(error, &input.member_id)),
                Vec::new(),
            )
        };
        if self.state == GroupState::Dead {
            return now(ErrorCode::CoordinatorNotAvailable);
        }
        let limits = self.limits;
        if input.session_timeout_ms < limits.session_timeout_ms_min
            || input.session_timeout_ms > limits.session_timeout_ms_max
        {
            return now(ErrorCode::InvalidSessionTimeout);
        }
        if !self.supports_protocols(&input.protocol_type, &input.protocols) {
            return now(ErrorCode::InconsistentGroupProtocol);
        }
        if input.member_id.is_empty() {
            return self.join_unknown_member(input, now_ms);
        }
        if self.pending_members.remove(&input.member_id).is_some() {
            return self.add_member_and_rebalance(input.member_id.clone(), input, now_ms);
        }
        if self.is_fenced(&input.member_id, input.group_instance_id.as_deref()) {
            return now(ErrorCode::FencedInstanceId);
        }
        if !self.members.contains_key(&input.member_id) {
            return now(ErrorCode::UnknownMemberId);
        }
        self.join_known_member(input, now_ms)
    }

    fn join_unknown_member(
        &mut self,
        input: JoinInput,
        now_ms: u64,
    ) -> (Reply<JoinOutcome>, Vec<Effect>) {
        if let Some(old_id) = input
            .group_instance_id
            .as_ref()
            .and_then(|instance| self.static_members.get(instance).cloned())
        {
            return self.replace_static_member(old_id, input, now_ms);
        }
        if self.members.len() >= self.limits.members_max {
            return (
                Reply::Now(JoinOutcome::error(ErrorCode::GroupMaxSizeReached, "")),
                Vec::new(),
            );
        }
        let member_id = input.fresh_member_id.clone();
        if input.group_instance_id.is_none() && input.require_known_member_id {
            let deadline = now_ms + input.session_timeout_ms.max(0) as u64;
            self.pending_members.insert(member_id.clone(), deadline);
            return (
                Reply::Now(JoinOutcome::error(ErrorCode::MemberIdRequired, &member_id)),
                Vec::new(),
            );
        }
        self.add_member_and_rebalance(member_id, input, now_ms)
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        input: JoinInput,
        now_ms: u64,
    ) -> (Reply<JoinOutcome>, Vec<Effect>) {
        let mut member = Member {
            id: member_id.clone(),
            instance_id: input.group_instance_id.clone(),
            client_id: input.client_id,
            client_host: input.client_host,
            session_timeout_ms: input.session_timeout_ms,
            rebalance_timeout_ms: input.rebalance_timeout_ms,
            protocols: input.protocols,
            assignment: Bytes::new(),
            pending_join: Some(input.token),
            pending_sync: None,
            heartbeat_deadline_ms: 0,
        };
        member.touch(now_ms);
        tracing::info!(
            group = %self.id,
            member = %member_id,
            instance = ?member.instance_id,
            client_id = %member.client_id,
            client_host = %member.client_host,
            session_timeout_ms = member.session_timeout_ms,
            generation = self.generation_id,
            "group member joined"
        );
        if self.members.is_empty() {
            self.protocol_type = Some(input.protocol_type);
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), member);
        if self.state == GroupState::PreparingRebalance && self.initial_rebalance {
            self.new_member_added = true;
        }
        let mut effects = self.prepare_rebalance(now_ms, "new member joined", &member_id);
        effects.extend(self.try_complete_join(now_ms));
        (Reply::Later, effects)
    }

    fn replace_static_member(
        &mut self,
        old_id: String,
        input: JoinInput,
        now_ms: u64,
    ) -> (Reply<JoinOutcome>, Vec<Effect>) {
        let mut effects = Vec::new();
        let Some(mut member) = self.members.remove(&old_id) else {
            return (
                Reply::Now(JoinOutcome::error(ErrorCode::UnknownMemberId, "")),
                effects,
            );
        };
        if let Some(token) = member.pending_join.take() {
            effects.push(Effect::CompleteJoin {
                token,
                outcome: JoinOutcome::error(ErrorCode::FencedInstanceId, &old_id),
            });
        }
        if let Some(token) = member.pending_sync.take() {
            effects.push(Effect::CompleteSync {
                token,
                outcome: SyncOutcome::error(ErrorCode::FencedInstanceId),
            });
        }
        let new_id = input.fresh_member_id.clone();
        let protocols_changed = member.protocols != input.protocols;
        tracing::info!(
            group = %self.id,
            old_member = %old_id,
            member = %new_id,
            instance = ?member.instance_id,
            generation = self.generation_id,
            protocols_changed,
            "group static member rejoined"
        );
        member.id = new_id.clone();
        member.client_id = input.client_id.clone();
        member.client_host = input.client_host.clone();
        member.session_timeout_ms = input.session_timeout_ms;
        member.rebalance_timeout_ms = input.rebalance_timeout_ms;
        member.protocols = input.protocols.clone();
        member.touch(now_ms);
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        if self.leader_id.as_deref() == Some(old_id.as_str()) {
            self.leader_id = Some(new_id.clone());
        }
        let selected_still_supported = self
            .protocol_name
            .as_deref()
            .is_some_and(|name| input.protocols.iter().any(|(p, _)| p == name));
        if self.state == GroupState::Stable && (!protocols_changed || selected_still_supported) {
            // Same assignment back, no rebalance for the others (KIP-345).
            let is_leader = self.leader_id.as_deref() == Some(new_id.as_str());
            let mut outcome = self.join_outcome_for(&new_id, is_leader);
            outcome.skip_assignment = is_leader;
            return (Reply::Now(outcome), effects);
        }
        if let Some(member) = self.members.get_mut(&new_id) {
            member.pending_join = Some(input.token);
        }
        let reason = "static member rejoined with changed protocols";
        effects.extend(self.prepare_rebalance(now_ms, reason, &new_id));
        effects.extend(self.try_complete_join(now_ms));
        (Reply::Later, effects)
    }

    fn join_known_member(
        &mut self,
        input: JoinInput,
        now_ms: u64,
    ) -> (Reply<JoinOutcome>, Vec<Effect>) {
        let member_id = input.member_id.clone();
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        let mut effects = Vec::new();
        let Some(member) = self.members.get_mut(&member_id) else {
            return (
                Reply::Now(JoinOutcome::error(ErrorCode::UnknownMemberId, &member_id)),
                effects,
            );
        };
        let unchanged = member.protocols == input.protocols;
        member.touch(now_ms);
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                let outcome = self.join_outcome_for(&member_id, is_leader);
                return (Reply::Now(outcome), effects);
            }
            GroupState::Stable if unchanged && !is_leader => {
                let outcome = self.join_outcome_for(&member_id, false);
                return (Reply::Now(outcome), effects);
            }
            _ => {}
        }
        if let Some(member) = self.members.get_mut(&member_id) {
            member.protocols = input.protocols;
            member.session_timeout_ms = input.session_timeout_ms;
            member.rebalance_timeout_ms = input.rebalance_timeout_ms;
            if let Some(old) = member.pending_join.replace(input.token) {
                effects.push(Effect::CompleteJoin {
                    token: old,
                    outcome: JoinOutcome::error(ErrorCode::RebalanceInProgress, &member_id),
                });
            }
        }
        let reason = match (unchanged, is_leader) {
            (false, _) => "member rejoined with changed protocols",
            (true, true) => "leader rejoined",
            (true, false) => "member rejoined",
        };
        effects.extend(self.prepare_rebalance(now_ms, reason, &member_id));
        effects.extend(self.try_complete_join(now_ms));
        (Reply::Later, effects)
    }

    fn join_outcome_for(&self, member_id: &str, with_members: bool) -> JoinOutcome {
        let protocol = self.protocol_name.as_deref();
        JoinOutcome {
            error: ErrorCode::None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .values()
                    .map(|m| JoinedMember {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    /// Moves to PreparingRebalance (no-op if already there). Members waiting for a sync
    /// learn that a new rebalance started. `reason` and `member` (who caused it; may be
    /// empty) go to the log.
    fn prepare_rebalance(&mut self, now_ms: u64, reason: &str, member: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.state {
            GroupState::PreparingRebalance | GroupState::Dead => return effects,
            GroupState::CompletingRebalance => {
                for member in self.members.values_mut() {
                    if let Some(token) = member.pending_sync.take() {
                        effects.push(Effect::CompleteSync {
                            token,
                            outcome: SyncOutcome::error(ErrorCode::RebalanceInProgress),
                        });
                    }
                }
            }
            GroupState::Empty | GroupState::Stable => {}
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        if self.state == GroupState::Empty {
            let delay = self.limits.initial_rebalance_delay_ms;
            self.initial_rebalance = true;
            self.new_member_added = false;
            self.join_not_before_ms = now_ms + delay;
            self.initial_delay_remaining_ms = timeout.saturating_sub(delay);
        }
        self.rebalance_deadline_ms = now_ms + timeout.max(self.limits.initial_rebalance_delay_ms);
        tracing::info!(
            group = %self.id,
            from = self.state.kafka_name(),
            generation = self.generation_id,
            members = self.members.len(),
            reason,
            member,
            rebalance_timeout_ms = timeout,
            "group rebalance started"
        );
        self.state = GroupState::PreparingRebalance;
        effects
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.pending_join.is_some())
    }

    /// Completes the join phase when everyone has rejoined, or at the deadline dropping
    /// members that did not.
    fn try_complete_join(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.state != GroupState::PreparingRebalance {
            return Vec::new();
        }
        self.extend_initial_delay(now_ms);
        let ready = self.all_members_joined() && now_ms >= self.join_not_before_ms;
        if !ready && now_ms < self.rebalance_deadline_ms {
            return Vec::new();
        }
        let stragglers: Vec<String> = self
            .members
            .values()
            .filter(|m| m.pending_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &stragglers {
            tracing::info!(
                group = %self.id,
                member = %id,
                generation = self.generation_id,
                "group member removed: did not rejoin before the rebalance timeout"
            );
            self.remove_member(id);
        }
        self.pending_members.clear();
        self.initial_rebalance = false;
        self.new_member_added = false;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader_id = None;
            tracing::info!(group = %self.id, generation = self.generation_id, "group is empty");
            return vec![Effect::Persist(self.snapshot())];
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader_id
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or(""),
            leader = self.leader_id.as_deref().unwrap_or(""),
            "group generation completed: waiting for the leader's assignment"
        );
        let sync_timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + sync_timeout;
        let leader = self.leader_id.clone().unwrap_or_default();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        let mut effects = Vec::with_capacity(ids.len());
        for id in ids {
            let outcome = self.join_outcome_for(&id, id == leader);
            if let Some(member) = self.members.get_mut(&id) {
                member.assignment = Bytes::new();
                member.touch(now_ms);
                if let Some(token) = member.pending_join.take() {
                    tracing::debug!(group = %self.id, member = %id, token, generation = outcome.generation_id, "group join answered");
                    effects.push(Effect::CompleteJoin { token, outcome });
                }
            }
        }
        effects
    }

    /// Kafka's `InitialDelayedJoin`: when an initial-delay window ends and a new member
    /// joined during it, wait another delay (at most what is left of the rebalance timeout).
    fn extend_initial_delay(&mut self, now_ms: u64) {
        if !self.initial_rebalance
            || now_ms < self.join_not_before_ms
            || !self.new_member_added
            || self.initial_delay_remaining_ms == 0
        {
            return;
        }
        self.new_member_added = false;
        let delay = self
            .limits
            .initial_rebalance_delay_ms
            .min(self.initial_delay_remaining_ms);
        self.initial_delay_remaining_ms -= delay;
        self.join_not_before_ms += delay;
    }

    /// Kafka's vote: among protocols every member supports, each member votes for its
    /// most preferred; the most votes wins (ties: the earliest candidate).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *name))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for member in self.members.values() {
            let preferred = member
                .protocols
                .iter()
                .find(|(p, _)| candidates.contains(&p));
            if let Some((name, _)) = preferred
                && let Some(entry) = votes.iter_mut().find(|(_, c)| *c == name)
            {
                entry.0 += 1;
            }
        }
        let best = votes.iter().map(|(count, _)| *count).max()?;
        votes
            .into_iter()
            .find(|(count, _)| *count == best)
            .map(|(_, name)| name.clone())
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        Some(member)
    }

    // ----- SyncGroup -----

    pub fn sync(&mut self, input: SyncInput, now_ms: u64) -> (Reply<SyncOutcome>, Vec<Effect>) {
        let now = |error| (Reply::Now(SyncOutcome::error(error)), Vec::new());
        if self.state == GroupState::Dead {
            return now(ErrorCode::CoordinatorNotAvailable);
        }
        if self.is_fenced(&input.member_id, input.group_instance_id.as_deref()) {
            return now(ErrorCode::FencedInstanceId);
        }
        if !self.members.contains_key(&input.member_id) {
            return now(ErrorCode::UnknownMemberId);
        }
        if input.generation_id != self.generation_id {
            return now(ErrorCode::IllegalGeneration);
        }
        let type_mismatch = input
            .protocol_type
            .as_deref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_deref());
        let name_mismatch = input
            .protocol_name
            .as_deref()
            .is_some_and(|n| Some(n) != self.protocol_name.as_deref());
        if type_mismatch || name_mismatch {
            return now(ErrorCode::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {
                now(ErrorCode::RebalanceInProgress)
            }
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get_mut(&input.member_id)
                    .map(|m| {
                        m.touch(now_ms);
                        m.assignment.clone()
                    })
                    .unwrap_or_default();
                (Reply::Now(self.sync_outcome(assignment)), Vec::new())
            }
            GroupState::CompletingRebalance => self.sync_completing(input, now_ms),
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    fn sync_completing(
        &mut self,
        input: SyncInput,
        now_ms: u64,
    ) -> (Reply<SyncOutcome>, Vec<Effect>) {
        let mut effects = Vec::new();
        if let Some(member) = self.members.get_mut(&input.member_id) {
            member.touch(now_ms);
            if let Some(old) = member.pending_sync.replace(input.token) {
                effects.push(Effect::CompleteSync {
                    token: old,
                    outcome: SyncOutcome::error(ErrorCode::RebalanceInProgress),
                });
            }
        }
        if self.leader_id.as_deref() != Some(input.member_id.as_str()) {
            return (Reply::Later, effects);
        }
        let mut assignments: HashMap<String, Bytes> = input.assignments.into_iter().collect();
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
        }
        self.state = GroupState::Stable;
        tracing::info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            leader = %input.member_id,
            "group stable: assignment received from the leader"
        );
        effects.push(Effect::Persist(self.snapshot()));
        let waiting: Vec<(RequestToken, String, Bytes)> = self
            .members
            .values_mut()
            .filter_map(|m| {
                let token = m.pending_sync.take()?;
                Some((token, m.id.clone(), m.assignment.clone()))
            })
            .collect();
        for (token, member, assignment) in waiting {
            tracing::debug!(
                group = %self.id,
                %member,
                token,
                generation = self.generation_id,
                assignment_bytes = assignment.len(),
                "group sync answered"
            );
            effects.push(Effect::CompleteSync {
                token,
                outcome: self.sync_outcome(assignment),
            });
        }
        (Reply::Later, effects)
    }

    // ----- Heartbeat, LeaveGroup, timers -----

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if self.is_fenced(member_id, instance_id) {
            return ErrorCode::FencedInstanceId;
        }
        let state = self.state;
        let Some(member) = self.members.get_mut(member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if generation_id != self.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        member.touch(now_ms);
        match state {
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
        }
    }

    /// LeaveGroup for a list of (member id, instance id). Returns an error per member.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now_ms: u64,
    ) -> (Vec<ErrorCode>, Vec<Effect>) {
        let mut errors = Vec::with_capacity(leaving.len());
        let mut effects = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        for (member_id, instance_id) in leaving {
            let target = match instance_id {
                Some(instance) => match self.static_members.get(instance) {
                    Some(current) if member_id.is_empty() || current == member_id => {
                        current.clone()
                    }
                    Some(_) => {
                        errors.push(ErrorCode::FencedInstanceId);
                        continue;
                    }
                    None => {
                        errors.push(ErrorCode::UnknownMemberId);
                        continue;
                    }
                },
                None => member_id.clone(),
            };
            match self.remove_member(&target) {
                Some(member) => {
                    tracing::info!(
                        group = %self.id,
                        member = %member.id,
                        instance = ?member.instance_id,
                        generation = self.generation_id,
                        "group member left"
                    );
                    removed.push(member.id.clone());
                    effects.extend(Self::fail_pending(member, ErrorCode::UnknownMemberId));
                    errors.push(ErrorCode::None);
                }
                None if self.pending_members.remove(&target).is_some() => {
                    errors.push(ErrorCode::None)
                }
                None => errors.push(ErrorCode::UnknownMemberId),
            }
        }
        if !removed.is_empty() {
            effects.extend(self.after_member_removed(now_ms, "member left", &removed.join(",")));
        }
        (errors, effects)
    }

    fn fail_pending(member: Member, error: ErrorCode) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(token) = member.pending_join {
            effects.push(Effect::CompleteJoin {
                token,
                outcome: JoinOutcome::error(error, &member.id),
            });
        }
        if let Some(token) = member.pending_sync {
            effects.push(Effect::CompleteSync {
                token,
                outcome: SyncOutcome::error(error),
            });
        }
        effects
    }

    fn after_member_removed(&mut self, now_ms: u64, reason: &str, member: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                effects.extend(self.prepare_rebalance(now_ms, reason, member));
                effects.extend(self.try_complete_join(now_ms));
            }
            GroupState::PreparingRebalance => effects.extend(self.try_complete_join(now_ms)),
            GroupState::Empty | GroupState::Dead => {}
        }
        effects
    }

    /// Expires sessions and rebalance deadlines. Call periodically.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        let preparing = self.state == GroupState::PreparingRebalance;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.heartbeat_deadline_ms <= now_ms && !(preparing && m.pending_join.is_some())
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            if let Some(member) = self.remove_member(id) {
                tracing::info!(
                    group = %self.id,
                    member = %member.id,
                    instance = ?member.instance_id,
                    session_timeout_ms = member.session_timeout_ms,
                    generation = self.generation_id,
                    state = self.state.kafka_name(),
                    "group member expired: no heartbeat within its session timeout"
                );
                effects.extend(Self::fail_pending(member, ErrorCode::UnknownMemberId));
            }
        }
        if !expired.is_empty() {
            let reason = "member session expired";
            effects.extend(self.after_member_removed(now_ms, reason, &expired.join(",")));
        }
        match self.state {
            GroupState::PreparingRebalance => effects.extend(self.try_complete_join(now_ms)),
            GroupState::CompletingRebalance if now_ms >= self.rebalance_deadline_ms => {
                let reason = "no assignment from the leader before the rebalance timeout";
                let leader = self.leader_id.clone().unwrap_or_default();
                effects.extend(self.prepare_rebalance(now_ms, reason, &leader));
            }
            _ => {}
        }
        effects
    }

    /// Whether an OffsetCommit from this member may be applied (Kafka's checks, in order).
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return ErrorCode::None;
        }
        if self.is_fenced(member_id, instance_id) {
            return ErrorCode::FencedInstanceId;
        }
        if self.state == GroupState::CompletingRebalance {
            return ErrorCode::RebalanceInProgress;
        }
        if !self.members.contains_key(member_id) {
            return ErrorCode::UnknownMemberId;
        }
        if generation_id != self.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        ErrorCode::None
    }
}
