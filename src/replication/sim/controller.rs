//! The simulated active controller: broker registrations and sessions, and the partition's
//! state, changed only by the real decisions of `cluster::partition_changes`. It never
//! crashes here (the metadata quorum has its own simulator, `cluster::sim`); it can be cut
//! off from brokers.

use super::{BROKERS, CONTROLLER, Message, NodeId};
use crate::cluster::image::PartitionState;
use crate::cluster::partition_changes::{self, AlterPartitionRequest, Departure};
use crate::cluster::reassignments;
use std::collections::BTreeMap;

/// A broker fenced this long after its last heartbeat.
const SESSION_TIMEOUT_MS: i64 = 400;
/// Metadata is re-sent this often (messages get lost).
const METADATA_RESEND_MS: i64 = 100;

#[derive(Debug, Clone, Copy)]
struct Registration {
    broker_epoch: i64,
    incarnation: u64,
    fenced: bool,
    last_heartbeat_ms: i64,
}

pub(super) struct SimController {
    state: PartitionState,
    brokers: BTreeMap<NodeId, Registration>,
    next_broker_epoch: i64,
    min_insync_replicas: usize,
    last_broadcast_ms: i64,
    /// An unclean re-registration took the partition's last eligible replica (ISR and ELR
    /// empty): KIP-966 leaves it offline until unclean recovery. The only accepted reason
    /// for a run to end offline.
    emptied_by_unclean_restart: bool,
}

type Outbox = Vec<(NodeId, NodeId, Message)>;

impl SimController {
    pub(super) fn new(replicas: &[NodeId], min_insync_replicas: usize) -> SimController {
        SimController {
            state: PartitionState {
                replicas: replicas.to_vec(),
                // As CreateTopics leaves it before any broker is up: every replica in sync
                // (the logs are empty), no leader yet.
                isr: replicas.to_vec(),
                elr: Vec::new(),
                last_known_elr: Vec::new(),
                leader: None,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            },
            brokers: BTreeMap::new(),
            next_broker_epoch: 1,
            min_insync_replicas,
            last_broadcast_ms: 0,
            emptied_by_unclean_restart: false,
        }
    }

    pub(super) fn state(&self) -> &PartitionState {
        &self.state
    }

    pub(super) fn isr_is_full(&self) -> bool {
        self.state.isr.len() == self.state.replicas.len()
    }

    /// No ISR, no ELR: KIP-966 elects nobody without unclean recovery.
    pub(super) fn has_no_eligible_replica(&self) -> bool {
        self.state.leader.is_none() && self.state.isr.is_empty() && self.state.elr.is_empty()
    }

    pub(super) fn emptied_by_unclean_restart(&self) -> bool {
        self.emptied_by_unclean_restart
    }

    fn usable(&self, node: NodeId) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }

    /// Commits `new` (if any) and tells every broker.
    fn commit(&mut self, new: Option<PartitionState>, now: i64, outbox: &mut Outbox) {
        if let Some(new) = new {
            assert!(new.partition_epoch > self.state.partition_epoch);
            assert!(new.leader_epoch >= self.state.leader_epoch);
            self.state = new;
            self.broadcast(now, outbox);
        }
    }

    fn broadcast(&mut self, now: i64, outbox: &mut Outbox) {
        self.last_broadcast_ms = now;
        for &broker in &BROKERS {
            outbox.push((CONTROLLER, broker, Message::Metadata(self.state.clone())));
        }
    }

    fn departed(&self, node: NodeId, departure: Departure) -> Option<PartitionState> {
        let usable = |n: NodeId| n != node && self.usable(n);
        partition_changes::without(
            &self.state,
            node,
            departure,
            self.min_insync_replicas,
            &usable,
            false,
        )
    }

    pub(super) fn receive(&mut self, from: NodeId, message: Message, now: i64) -> Outbox {
        let mut outbox = Vec::new();
        match message {
            Message::Register { incarnation, clean } => {
                if let Some(existing) = self.brokers.get(&from)
                    && existing.incarnation > incarnation
                {
                    // A late message from an older incarnation (red-team M1).
                    return outbox;
                }
                if let Some(existing) = self.brokers.get(&from)
                    && existing.incarnation == incarnation
                {
                    // A retry: answer again.
                    let answer = Message::Registered {
                        incarnation,
                        broker_epoch: existing.broker_epoch,
                        partition_epoch: self.state.partition_epoch,
                    };
                    outbox.push((CONTROLLER, from, answer));
                    return outbox;
                }
                // A new incarnation is fenced until it heartbeats; an unclean one may have
                // lost unsynced records, so it leaves the ISR and the ELR.
                let first_registration = !self.brokers.contains_key(&from);
                let broker_epoch = self.next_broker_epoch;
                self.next_broker_epoch += 1;
                self.brokers.insert(
                    from,
                    Registration {
                        broker_epoch,
                        incarnation,
                        fenced: true,
                        last_heartbeat_ms: now,
                    },
                );
                let departure = if clean {
                    Departure::Clean
                } else {
                    Departure::Unclean
                };
                if !first_registration {
                    let new = self.departed(from, departure);
                    self.commit(new, now, &mut outbox);
                    if !clean && self.has_no_eligible_replica() {
                        self.emptied_by_unclean_restart = true;
                    }
                }
                let answer = Message::Registered {
                    incarnation,
                    broker_epoch,
                    partition_epoch: self.state.partition_epoch,
                };
                outbox.push((CONTROLLER, from, answer));
            }
            Message::Heartbeat { broker_epoch } => {
                let Some(registration) = self.brokers.get_mut(&from) else {
                    return outbox;
                };
                if registration.broker_epoch != broker_epoch {
                    return outbox;
                }
                registration.last_heartbeat_ms = now;
                if registration.fenced {
                    registration.fenced = false;
                    let usable = |n: NodeId| self.usable(n);
                    let new = partition_changes::elect_returning(&self.state, &usable, false);
                    self.commit(new, now, &mut outbox);
                }
            }
            Message::AlterPartition {
                broker_epoch,
                proposal,
            } => {
                let registered = self.brokers.get(&from).map_or(-1, |b| b.broker_epoch);
                let request = AlterPartitionRequest {
                    leader: from,
                    leader_broker_epoch: broker_epoch,
                    leader_epoch: proposal.leader_epoch,
                    partition_epoch: proposal.partition_epoch,
                    new_isr: proposal.new_isr.clone(),
                    new_isr_broker_epochs: proposal.new_isr_broker_epochs.clone(),
                };
                let usable = |n: NodeId| self.usable(n);
                let registered_epoch = |n: NodeId| self.brokers.get(&n).map(|b| b.broker_epoch);
                let answer = partition_changes::alter_partition(
                    &self.state,
                    &request,
                    registered,
                    self.min_insync_replicas,
                    &usable,
                    &registered_epoch,
                );
                if let Ok(new) = &answer
                    && new.partition_epoch > self.state.partition_epoch
                {
                    self.commit(Some(new.clone()), now, &mut outbox);
                    // An ISR holding every replica a reassignment adds completes it (a
                    // change of its own, as the real controller writes it).
                    let usable = |n: NodeId| self.usable(n);
                    let done = reassignments::completed(&self.state, &usable);
                    self.commit(done, now, &mut outbox);
                }
                let answer = Message::AlterPartitionAnswer { proposal, answer };
                outbox.push((CONTROLLER, from, answer));
            }
            _ => {}
        }
        outbox
    }

    /// Session expiry and the periodic metadata re-send.
    pub(super) fn tick(&mut self, now: i64) -> Outbox {
        let mut outbox = Vec::new();
        let expired: Vec<NodeId> = self
            .brokers
            .iter()
            .filter(|(_, b)| !b.fenced && now - b.last_heartbeat_ms > SESSION_TIMEOUT_MS)
            .map(|(&node, _)| node)
            .collect();
        for node in expired {
            if let Some(registration) = self.brokers.get_mut(&node) {
                registration.fenced = true;
            }
            let new = self.departed(node, Departure::Clean);
            self.commit(new, now, &mut outbox);
        }
        if self.state.leader.is_none() {
            let usable = |n: NodeId| self.usable(n);
            let new = partition_changes::elect_returning(&self.state, &usable, false);
            self.commit(new, now, &mut outbox);
        }
        if now - self.last_broadcast_ms >= METADATA_RESEND_MS {
            self.broadcast(now, &mut outbox);
        }
        outbox
    }

    /// AlterPartitionReassignments to `target` (a move completes later, once the added
    /// replicas are in the ISR; one that adds none completes at once).
    pub(super) fn reassign(&mut self, target: &[NodeId], now: i64) -> Outbox {
        let mut outbox = Vec::new();
        let usable = |n: NodeId| self.usable(n);
        if let Ok(new) = reassignments::reassign(&self.state, Some(target), &usable)
            && new.partition_epoch > self.state.partition_epoch
        {
            self.commit(Some(new), now, &mut outbox);
        }
        outbox
    }

    pub(super) fn reassigning(&self) -> bool {
        reassignments::in_progress(&self.state)
    }

    /// A broker's controlled shutdown (Kafka: BrokerHeartbeat with want_shut_down): it is
    /// fenced and leaves the partition cleanly before it stops.
    pub(super) fn controlled_shutdown(&mut self, node: NodeId, now: i64) -> Outbox {
        let mut outbox = Vec::new();
        if let Some(registration) = self.brokers.get_mut(&node) {
            registration.fenced = true;
        }
        let new = self.departed(node, Departure::Clean);
        self.commit(new, now, &mut outbox);
        outbox
    }
}
