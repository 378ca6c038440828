//! A consumer group as its `__consumer_offsets` records (`records`), and back (`restore`).
//! The shell writes the records that changed since its last write (and tombstones for keys
//! that are gone) and restores groups from the records a replay leaves.

use super::assignor::AssignorKind;
use super::group::{ConsumerGroup, Member};
use super::records::{self, ConsumerRecord, CurrentAssignment, MemberMetadata};
use super::types::*;
use crate::group::records::RecordError;
use std::collections::BTreeMap;

/// Encoded records by key.
pub type GroupRecords = BTreeMap<Vec<u8>, Vec<u8>>;

impl ConsumerGroup {
    /// The group's full durable state.
    pub fn records(&self) -> GroupRecords {
        let id = &self.id;
        let mut out = GroupRecords::new();
        let (k, v) = records::metadata(id, self.group_epoch);
        out.insert(k, v);
        let (k, v) = records::target_metadata(id, self.assignment_epoch);
        out.insert(k, v);
        for member in self.members.values() {
            let metadata = MemberMetadata {
                instance_id: member.instance_id.clone(),
                rack_id: member.rack_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                subscribed_topic_names: member.subscribed_topic_names.iter().cloned().collect(),
                subscribed_topic_regex: member.subscribed_topic_regex.clone(),
                server_assignor: member.server_assignor.map(|a| a.name().to_string()),
                rebalance_timeout_ms: member.rebalance_timeout_ms,
            };
            let (k, v) = records::member_metadata(id, &member.id, &metadata);
            out.insert(k, v);
            let r = &member.reconciliation;
            let current = CurrentAssignment {
                member_epoch: r.member_epoch,
                previous_member_epoch: r.previous_member_epoch,
                state: r.state,
                assigned: r.assigned.clone(),
                pending_revocation: r.pending_revocation.clone(),
            };
            let (k, v) = records::current_assignment(id, &member.id, &current);
            out.insert(k, v);
            let empty = Assignment::new();
            let target = self.target.get(&member.id).unwrap_or(&empty);
            let (k, v) = records::target_member(id, &member.id, target);
            out.insert(k, v);
        }
        out
    }

    /// Rebuilds a group from its records; every member gets a fresh session from `now_ms`.
    /// A member without its metadata record is left out (its other records are stale).
    pub fn restore(
        id: &str,
        stored: &GroupRecords,
        limits: ConsumerGroupLimits,
        now_ms: u64,
    ) -> Result<ConsumerGroup, RecordError> {
        let mut group = ConsumerGroup::new(id, limits);
        group.topics_known = false;
        let mut metadata: BTreeMap<String, MemberMetadata> = BTreeMap::new();
        let mut current: BTreeMap<String, CurrentAssignment> = BTreeMap::new();
        for (key, value) in stored {
            match records::decode(key, value)? {
                Some(ConsumerRecord::Metadata { epoch }) => group.group_epoch = epoch,
                Some(ConsumerRecord::TargetMetadata { assignment_epoch }) => {
                    group.assignment_epoch = assignment_epoch;
                }
                Some(ConsumerRecord::MemberMetadata { member_id, value }) => {
                    metadata.insert(member_id, value);
                }
                Some(ConsumerRecord::TargetMember {
                    member_id,
                    assignment,
                }) => {
                    group.target.insert(member_id, assignment);
                }
                Some(ConsumerRecord::CurrentAssignment { member_id, value }) => {
                    current.insert(member_id, value);
                }
                None => {}
            }
        }
        group
            .target
            .retain(|member_id, _| metadata.contains_key(member_id));
        for (member_id, saved) in metadata {
            let mut member = Member::new(&member_id, saved.instance_id.clone());
            member.rack_id = saved.rack_id;
            member.client_id = saved.client_id;
            member.client_host = saved.client_host;
            member.subscribed_topic_names = saved.subscribed_topic_names.into_iter().collect();
            member.server_assignor = saved
                .server_assignor
                .as_deref()
                .and_then(AssignorKind::from_name);
            member.rebalance_timeout_ms = saved.rebalance_timeout_ms;
            if let Some(regex) = &saved.subscribed_topic_regex
                && group.compile_regex(regex).is_ok()
            {
                member.subscribed_topic_regex = Some(regex.clone());
            }
            if let Some(c) = current.remove(&member_id) {
                let r = &mut member.reconciliation;
                r.member_epoch = c.member_epoch;
                r.previous_member_epoch = c.previous_member_epoch;
                r.state = c.state;
                r.assigned = c.assigned;
                r.pending_revocation = c.pending_revocation;
            }
            member.session_deadline_ms = now_ms.saturating_add(group.limits.session_timeout_ms);
            if member.reconciliation.state == MemberState::UnrevokedPartitions {
                member.revocation_deadline_ms =
                    Some(now_ms.saturating_add(member.rebalance_timeout_ms.max(0) as u64));
            }
            for partition in member.held() {
                // A partition two restored members claim stays with the first: the log
                // never holds that (reconciliation forbids it), so this only guards the map.
                group.holders.entry(partition).or_insert(member_id.clone());
            }
            if let Some(instance) = &member.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member_id.clone());
            }
            group.members.insert(member_id, member);
        }
        Ok(group)
    }
}
