//! Incremental reconciliation of one member towards its target (Kafka's
//! `CurrentAssignmentBuilder`): partitions leave a member first (it stays at its epoch in
//! `UnrevokedPartitions` until it reports them gone), and it gains a partition only once no
//! other member holds it (`UnreleasedPartitions` until then). The member epoch advances to
//! the target epoch once nothing is left to revoke.

use super::types::{Assignment, MemberState, TopicId};
use std::collections::BTreeSet;

/// The reconciliation part of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reconciliation {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// What the member is told it owns.
    pub assigned: Assignment,
    /// What it must give up before it gets anything new (still held by it meanwhile).
    pub pending_revocation: Assignment,
}

/// Whether the member may still own any of `revoking`: `owned` None means the member did not
/// say (unchanged since its last heartbeat), so it may.
fn owns_any(owned: Option<&Assignment>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    revoking.iter().any(|(topic, partitions)| {
        owned
            .get(topic)
            .is_some_and(|held| !held.is_disjoint(partitions))
    })
}

/// The member's next reconciliation step. `held_by_other(topic, partition)` says whether
/// another member still holds a partition (assigned or pending revocation).
pub(super) fn next_step(
    current: &Reconciliation,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held_by_other: impl Fn(&TopicId, i32) -> bool,
) -> Reconciliation {
    match current.state {
        MemberState::Stable if current.member_epoch == target_epoch => current.clone(),
        MemberState::UnrevokedPartitions if owns_any(owned, &current.pending_revocation) => {
            current.clone()
        }
        _ => compute_next(current, target_epoch, target, owned, held_by_other),
    }
}

fn compute_next(
    current: &Reconciliation,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held_by_other: impl Fn(&TopicId, i32) -> bool,
) -> Reconciliation {
    let mut kept = Assignment::new();
    let mut revoking = Assignment::new();
    let mut gaining = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<&TopicId> = target.keys().chain(current.assigned.keys()).collect();
    let empty = BTreeSet::new();
    for topic in topics {
        let wanted = target.get(topic).unwrap_or(&empty);
        let has = current.assigned.get(topic).unwrap_or(&empty);
        let keep: BTreeSet<i32> = has.intersection(wanted).copied().collect();
        let revoke: BTreeSet<i32> = has.difference(wanted).copied().collect();
        let mut gain = BTreeSet::new();
        for &partition in wanted.difference(has) {
            if held_by_other(topic, partition) {
                unreleased = true;
            } else {
                gain.insert(partition);
            }
        }
        if !keep.is_empty() {
            kept.insert(*topic, keep);
        }
        if !revoke.is_empty() {
            revoking.insert(*topic, revoke);
        }
        if !gain.is_empty() {
            gaining.insert(*topic, gain);
        }
    }
    if !revoking.is_empty() && owns_any(owned, &revoking) {
        return Reconciliation {
            member_epoch: current.member_epoch,
            previous_member_epoch: current.previous_member_epoch,
            state: MemberState::UnrevokedPartitions,
            assigned: kept,
            pending_revocation: revoking,
        };
    }
    for (topic, partitions) in gaining {
        kept.entry(topic).or_default().extend(partitions);
    }
    let previous_member_epoch = if target_epoch != current.member_epoch {
        current.member_epoch
    } else {
        current.previous_member_epoch
    };
    Reconciliation {
        member_epoch: target_epoch,
        previous_member_epoch,
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        assigned: kept,
        pending_revocation: Assignment::new(),
    }
}
