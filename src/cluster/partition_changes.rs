//! One partition's leader and ISR decisions, KIP-966 style (Eligible Leader Replicas): which
//! replica leads when a broker leaves or comes back, and whether a leader's AlterPartition
//! (Kafka API 56) is accepted. Pure functions on `PartitionState`; the controller turns their
//! results into `PartitionChange` records with `change_record`.
//!
//! Owns: leader election order, ISR/ELR/last-known-ELR bookkeeping, epoch bumps of a partition
//! change. May import: `super::{image, records}`, `crate::metadata::TopicId`,
//! `crate::model::ErrorCode`. No I/O, no clock. Runs wherever the active controller runs.
//!
//! Invariants of every state returned (the image's `check_partition` holds them too): the
//! leader, if any, is in the ISR; ISR and ELR are disjoint subsets of the replicas; the
//! partition epoch grows by one with every change; the leader epoch grows by one exactly when
//! the leader changes.
//!
//! Rules (Kafka's `PartitionChangeBuilder` with ELR enabled, and the KIP-966 text):
//! - The ISR may become empty: its last member leaving leaves the partition offline with that
//!   member in the ELR, instead of staying in the ISR as before KIP-966.
//! - ELR bookkeeping runs whenever the ISR changes. If the new ISR has at least
//!   `min.insync.replicas` members, the ELR and last-known ELR are cleared (the high watermark
//!   may advance again, so earlier leavers may miss committed data). Otherwise the ELR becomes
//!   (old ELR ∪ old ISR) minus the new ISR minus a replica departing uncleanly, and the
//!   last-known ELR becomes (old ELR ∪ old ISR ∪ old last-known ELR) minus the new ISR and the
//!   new ELR — so a member dropped from the ELR by an unclean restart is remembered there.
//! - Election (`choose_leader`), each tier in replica order, each candidate `usable`: an ISR
//!   member; if the ISR is empty, an ELR member (as in Kafka, the ELR is only a candidate set
//!   while the ISR is empty, so the leader never comes from outside a non-empty ISR); then,
//!   only if unclean election is allowed, a last-known-ELR member, then any replica.
//! - A leader from the ELR becomes the whole ISR (`[leader]`) and leaves the ELR and the
//!   last-known ELR. An unclean leader becomes the whole ISR and clears ELR and last-known ELR
//!   (Kafka does the same: the new leader's log now defines the committed data).
//! - `without` changes the leader only if the departing replica led, or the partition had no
//!   leader (an election is then attempted, as Kafka's builder always does).
//! - Brokers fenced together (`without_all`) leave as one change, the ELR computed against
//!   the ISR before any of them left: each held the committed data until that moment. (Kafka
//!   fences one broker per record, so a broker leaving first while the ISR still met min ISR
//!   is not kept eligible there; here it is.)
//! - `min_insync_replicas` below 1 counts as 1 (Kafka's own lower bound), so the last ISR
//!   member always moves to the ELR.
//! - AlterPartition checks in Kafka's order: broker epoch, leadership, leader epoch, partition
//!   epoch, ISR shape, eligibility. Eligibility is checked for the replicas the request adds
//!   (Kafka checks every member; members already in the ISR are unfenced as long as the
//!   partition epoch is current, since fencing removes a replica from the ISR and bumps it).
//!   An added replica whose broker epoch in the request (KIP-903) is not its current
//!   registration's is ineligible too. The ISR is stored in the order the leader sent. A
//!   request that changes nothing answers the current state unchanged; a retry sent after its
//!   change committed carries the old partition epoch and gets INVALID_UPDATE_VERSION, as in
//!   Kafka (the leader then waits for the metadata).
//! - A preferred election (`elect_preferred`) moves leadership to the first replica only if
//!   it is usable and in the ISR, and changes nothing else (leader epoch + 1, partition
//!   epoch + 1). An unclean election (`elect_unclean`) only elects for a partition without a
//!   leader.

use super::image::PartitionState;
use super::records::{LeaderChange, MetadataRecord, NodeId, PartitionChangeRecord};
use crate::metadata::TopicId;
use crate::model::ErrorCode;
use std::collections::BTreeSet;

/// How a replica leaves the ISR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Controlled shutdown or session-timeout fencing: its data is intact, so it may stay an
    /// eligible leader (ELR).
    Clean,
    /// Re-registered after an unclean shutdown: it may have lost unsynced data, so it leaves
    /// the ELR too.
    Unclean,
}

/// One partition of an AlterPartition request, as the partition leader sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub leader: NodeId,
    pub leader_broker_epoch: i64,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<NodeId>,
    /// KIP-903 (`NewIsrWithEpochs`): the broker epoch the leader saw each follower of
    /// `new_isr` fetch with. An added replica whose epoch is not its current registration's
    /// (it restarted since, and may have lost data) is INELIGIBLE_REPLICA. Members without an
    /// entry are not checked (requests before v3).
    pub new_isr_broker_epochs: Vec<(NodeId, i64)>,
}

/// KIP-966 leader choice (see the module rules): an ISR member, else (ISR empty) an ELR member;
/// else, with ISR and ELR empty and a last-known ELR of exactly one replica, that replica (the
/// last one eligible, back after an unclean restart: Kafka's `canElectLastKnownLeader`, so an
/// RF=1 partition comes back after its broker crashed); if `unclean_allowed`, then a
/// last-known-ELR member, then any replica — each `usable`, in replica order. Returns the
/// leader and whether the election was unclean.
pub fn choose_leader(
    state: &PartitionState,
    usable: &dyn Fn(NodeId) -> bool,
    unclean_allowed: bool,
) -> Option<(NodeId, bool)> {
    let first_of = |set: &[NodeId]| {
        state
            .replicas
            .iter()
            .copied()
            .find(|node| set.contains(node) && usable(*node))
    };
    let clean = if state.isr.is_empty() {
        first_of(&state.elr)
    } else {
        first_of(&state.isr)
    };
    if let Some(leader) = clean {
        return Some((leader, false));
    }
    if let [last_known] = state.last_known_elr[..]
        && state.isr.is_empty()
        && state.elr.is_empty()
        && usable(last_known)
    {
        return Some((last_known, true));
    }
    if !unclean_allowed {
        return None;
    }
    first_of(&state.last_known_elr)
        .or_else(|| state.replicas.iter().copied().find(|node| usable(*node)))
        .map(|leader| (leader, true))
}

/// The state after `gone` leaves the ISR (and, if `Unclean`, the ELR), with ELR bookkeeping
/// against `min_insync_replicas` and an election if `gone` led or nobody led. `None` if
/// `gone` is in neither set it would leave.
pub fn without(
    state: &PartitionState,
    gone: NodeId,
    departure: Departure,
    min_insync_replicas: usize,
    usable: &dyn Fn(NodeId) -> bool,
    unclean_allowed: bool,
) -> Option<PartitionState> {
    without_all(
        state,
        &[gone],
        departure,
        min_insync_replicas,
        usable,
        unclean_allowed,
    )
}

/// `without` for several replicas leaving at once (a batch of fenced brokers), as one change:
/// the ELR is computed against the ISR before any of them left (each held the committed data
/// until then), and no replica of the batch is elected.
pub fn without_all(
    state: &PartitionState,
    gone: &[NodeId],
    departure: Departure,
    min_insync_replicas: usize,
    usable: &dyn Fn(NodeId) -> bool,
    unclean_allowed: bool,
) -> Option<PartitionState> {
    let unclean: &[NodeId] = match departure {
        Departure::Clean => &[],
        Departure::Unclean => gone,
    };
    let leaves = |node: &NodeId| state.isr.contains(node) || state.elr.contains(node);
    if !gone.iter().any(|node| state.isr.contains(node)) && !unclean.iter().any(leaves) {
        return None;
    }
    let isr: Vec<NodeId> = state
        .isr
        .iter()
        .copied()
        .filter(|node| !gone.contains(node))
        .collect();
    let (elr, last_known_elr) = track_elr(state, &isr, min_insync_replicas, unclean);
    let mut next = PartitionState {
        isr,
        elr,
        last_known_elr,
        ..state.clone()
    };
    if next.leader.is_some_and(|leader| gone.contains(&leader)) {
        next.leader = None;
    }
    if next.leader.is_none() {
        let usable = |node: NodeId| !gone.contains(&node) && usable(node);
        elect(&mut next, &usable, unclean_allowed);
    }
    finish(state, next)
}

/// A usable replica came back: a partition without a leader elects one with `choose_leader`.
/// `None` if it has a leader or nobody can lead.
pub fn elect_returning(
    state: &PartitionState,
    usable: &dyn Fn(NodeId) -> bool,
    unclean_allowed: bool,
) -> Option<PartitionState> {
    if state.leader.is_some() {
        return None;
    }
    let mut next = state.clone();
    elect(&mut next, usable, unclean_allowed);
    finish(state, next)
}

/// A preferred-leader election (Kafka ElectLeaders PREFERRED, and auto leader rebalance): the
/// first replica becomes leader if it is `usable` and in the ISR; the ISR, ELR and
/// last-known ELR stay as they are. ELECTION_NOT_NEEDED if it already leads,
/// PREFERRED_LEADER_NOT_AVAILABLE if it is not usable or not in the ISR.
pub fn elect_preferred(
    state: &PartitionState,
    usable: &dyn Fn(NodeId) -> bool,
) -> Result<PartitionState, ErrorCode> {
    let Some(&preferred) = state.replicas.first() else {
        return Err(ErrorCode::PreferredLeaderNotAvailable);
    };
    if state.leader == Some(preferred) {
        return Err(ErrorCode::ElectionNotNeeded);
    }
    if !state.isr.contains(&preferred) || !usable(preferred) {
        return Err(ErrorCode::PreferredLeaderNotAvailable);
    }
    let next = PartitionState {
        leader: Some(preferred),
        ..state.clone()
    };
    finish(state, next).ok_or(ErrorCode::ElectionNotNeeded)
}

/// An unclean election (Kafka ElectLeaders UNCLEAN): only a partition without a leader
/// elects one, by `choose_leader` with unclean election allowed. ELECTION_NOT_NEEDED if it
/// has a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE if no replica is usable.
pub fn elect_unclean(
    state: &PartitionState,
    usable: &dyn Fn(NodeId) -> bool,
) -> Result<PartitionState, ErrorCode> {
    if state.leader.is_some() {
        return Err(ErrorCode::ElectionNotNeeded);
    }
    elect_returning(state, usable, true).ok_or(ErrorCode::EligibleLeadersNotAvailable)
}

/// Decides one AlterPartition item. `Ok` carries the new state (partition epoch + 1), or the
/// current state unchanged when the request changes nothing; `Err` carries Kafka's code.
pub fn alter_partition(
    state: &PartitionState,
    request: &AlterPartitionRequest,
    registered_leader_broker_epoch: i64,
    min_insync_replicas: usize,
    usable: &dyn Fn(NodeId) -> bool,
    registered_broker_epoch: &dyn Fn(NodeId) -> Option<i64>,
) -> Result<PartitionState, ErrorCode> {
    if request.leader_broker_epoch != registered_leader_broker_epoch {
        return Err(ErrorCode::StaleBrokerEpoch);
    }
    if state.leader != Some(request.leader) {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    if request.leader_epoch != state.leader_epoch {
        return Err(ErrorCode::FencedLeaderEpoch);
    }
    if request.partition_epoch != state.partition_epoch {
        return Err(ErrorCode::InvalidUpdateVersion);
    }
    let new_isr = &request.new_isr;
    let distinct: BTreeSet<NodeId> = new_isr.iter().copied().collect();
    if distinct.len() != new_isr.len()
        || !new_isr.iter().all(|node| state.replicas.contains(node))
        || !new_isr.contains(&request.leader)
    {
        return Err(ErrorCode::InvalidRequest);
    }
    if new_isr
        .iter()
        .any(|node| !state.isr.contains(node) && !usable(*node))
    {
        return Err(ErrorCode::IneligibleReplica);
    }
    let stale_incarnation = request.new_isr_broker_epochs.iter().any(|&(node, epoch)| {
        !state.isr.contains(&node) && registered_broker_epoch(node) != Some(epoch)
    });
    if stale_incarnation {
        return Err(ErrorCode::IneligibleReplica);
    }
    let (elr, last_known_elr) = track_elr(state, new_isr, min_insync_replicas, &[]);
    let next = PartitionState {
        isr: new_isr.clone(),
        elr,
        last_known_elr,
        ..state.clone()
    };
    Ok(finish(state, next).unwrap_or_else(|| state.clone()))
}

/// The `PartitionChange` record turning `old` into `new`: only the fields that differ, and
/// `new`'s epochs.
pub fn change_record(
    topic_id: TopicId,
    partition: i32,
    old: &PartitionState,
    new: &PartitionState,
) -> MetadataRecord {
    let changed = |old: &Vec<NodeId>, new: &Vec<NodeId>| (old != new).then(|| new.clone());
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id,
        partition,
        leader: match new.leader {
            leader if leader == old.leader => LeaderChange::Unchanged,
            None => LeaderChange::None,
            Some(node) => LeaderChange::To(node),
        },
        replicas: changed(&old.replicas, &new.replicas),
        isr: changed(&old.isr, &new.isr),
        elr: changed(&old.elr, &new.elr),
        last_known_elr: changed(&old.last_known_elr, &new.last_known_elr),
        adding_replicas: changed(&old.adding_replicas, &new.adding_replicas),
        removing_replicas: changed(&old.removing_replicas, &new.removing_replicas),
        leader_epoch: new.leader_epoch,
        partition_epoch: new.partition_epoch,
    })
}

/// The ELR and last-known ELR once the ISR becomes `new_isr` (module rules); `unclean` are
/// replicas departing uncleanly, which may not stay eligible.
fn track_elr(
    state: &PartitionState,
    new_isr: &[NodeId],
    min_insync_replicas: usize,
    unclean: &[NodeId],
) -> (Vec<NodeId>, Vec<NodeId>) {
    if new_isr.len() >= min_insync_replicas.max(1) {
        return (Vec::new(), Vec::new());
    }
    let was_eligible = |node: &NodeId| state.elr.contains(node) || state.isr.contains(node);
    let elr: Vec<NodeId> = state
        .replicas
        .iter()
        .copied()
        .filter(|node| was_eligible(node) && !new_isr.contains(node) && !unclean.contains(node))
        .collect();
    let last_known_elr = state
        .replicas
        .iter()
        .copied()
        .filter(|node| was_eligible(node) || state.last_known_elr.contains(node))
        .filter(|node| !new_isr.contains(node) && !elr.contains(node))
        .collect();
    (elr, last_known_elr)
}

/// Sets `state.leader` by `choose_leader`, moving an ELR or unclean leader into the ISR.
fn elect(state: &mut PartitionState, usable: &dyn Fn(NodeId) -> bool, unclean_allowed: bool) {
    let Some((leader, unclean)) = choose_leader(state, usable, unclean_allowed) else {
        state.leader = None;
        return;
    };
    if unclean {
        state.isr = vec![leader];
        state.elr.clear();
        state.last_known_elr.clear();
    } else if !state.isr.contains(&leader) {
        state.isr = vec![leader];
        state.elr.retain(|node| *node != leader);
        state.last_known_elr.retain(|node| *node != leader);
    }
    state.leader = Some(leader);
}

/// `next` with its epochs set from `old` (partition epoch + 1; leader epoch + 1 iff the leader
/// changed), or `None` if nothing changed.
pub(super) fn finish(old: &PartitionState, mut next: PartitionState) -> Option<PartitionState> {
    next.leader_epoch = old.leader_epoch;
    next.partition_epoch = old.partition_epoch;
    if next == *old {
        return None;
    }
    if next.leader != old.leader {
        next.leader_epoch += 1;
    }
    next.partition_epoch += 1;
    Some(next)
}

#[cfg(test)]
#[path = "partition_changes_tests.rs"]
mod tests;
