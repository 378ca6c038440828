//! The controller thread of a quorum member: owns the metadata Raft node over its durable
//! log, ticks it, steps inbound messages, persists and sends what it has ready, and — while
//! this node is the active controller (raft leader whose term's first entry is applied) —
//! decides broker registrations, heartbeats, session fencing, producer-id blocks, topic
//! requests (CreateTopics, DeleteTopics, CreatePartitions, AlterTopicConfigs,
//! AlterGroupConfigs), ElectLeaders,
//! partition leaders' AlterPartition and, every `leader_imbalance_check_interval_ms`, auto
//! leader rebalance with the pure functions of `cluster::{controller, isr_changes,
//! leader_elections}` and proposes their records. A dedicated std thread, never a shard: the
//! raft log's fsyncs block.
//!
//! Owns: the `RaftDriver`, broker sessions, the request in flight and the queue behind it,
//! the random ids of new topics (the decisions draw no randomness).
//! May import: `crate::cluster`, `super::{frame, topic_decisions, transport, view}`.
//! Invariants: one proposal in flight at a time, and decisions are made on the applied image
//! (so no decision depends on an uncommitted one); one request is at most one proposal (the
//! records of every topic of a topic request that succeeded go into one entry, of at most
//! `proposal_bytes_max` encoded bytes); a request is answered only after its records are
//! applied (or at once when it needs none: validate-only, no topic succeeded, a config change
//! or AlterPartition that changes nothing, or an error), so a producer-id block is handed out
//! only once its record is committed and applied in the term it was proposed in (never twice),
//! and an AlterPartition answers a partition state the applied image holds; a topic
//! request's answer has one result per requested topic; losing leadership answers
//! every waiting request NOT_CONTROLLER (a topic request too: the caller retries, and a retry
//! of a creation that did commit gets TOPIC_ALREADY_EXISTS); a driver error stops the node.

use super::frame::{
    AlteredPartition, BrokerEndpoint, ClusterView, ControllerRequest, ControllerResponse,
    ProducerIdBlock, QuorumState, TopicResult, VoterProgress,
};
use super::topic_decisions::{
    TopicDecision, decide_allocate_producer_ids, decide_alter_group_configs,
    decide_alter_topic_configs, decide_create_partitions, decide_create_topics,
    decide_delete_topics,
};
use super::topics::ClusterTopics;
use super::transport::PeerSenders;
use super::view::{ViewHub, view_of_image};
use super::{ControllerEvent, QuorumError};
use crate::cluster::controller::{
    BrokerHeartbeatRequest, BrokerRegistrationRequest, BrokerSessions, ControllerSettings,
    broker_heartbeat, fence_expired_brokers, register_broker,
};
use crate::cluster::image::{MetadataImage, PartitionState};
use crate::cluster::image_machine::ImageStateMachine;
use crate::cluster::isr_changes::alter_partition;
use crate::cluster::leader_elections::{ElectionResult, elect_leaders, rebalance_leaders};
use crate::cluster::raft::{Proposal, RaftDriver};
use crate::cluster::records::{Listener, MetadataRecord, NodeId, Uuid, encode_batch};
use crate::model::ErrorCode;
use std::collections::VecDeque;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

/// The Kafka listener name of a broker that registered no listener list.
pub const LISTENER_NAME: &str = "PLAINTEXT";

/// `proposal_bytes_max` until the caller sets it: half the default
/// `cluster.controller_frame_bytes_max`.
pub const PROPOSAL_BYTES_MAX_DEFAULT: usize = 32 * 1024 * 1024;

type Reply = SyncSender<ControllerResponse>;

struct Waiting {
    request: ControllerRequest,
    reply: Reply,
}

/// What a request is answered with once its records are applied (or at once without any).
struct Answer {
    broker_epoch: i64,
    /// A topic request's per-topic results; empty for broker requests.
    topics: Vec<TopicResult>,
    /// AllocateProducerIds' block, answered only once its record is applied.
    producer_ids: Option<ProducerIdBlock>,
    /// AlterPartition's resulting partition state, answered only once its record is applied.
    partition: Option<AlteredPartition>,
    /// ElectLeaders' and AlterPartitionReassignments' per-partition results, answered once
    /// their records are applied.
    partition_results: Vec<ElectionResult>,
}

impl Answer {
    fn broker(broker_epoch: i64) -> Answer {
        Answer {
            broker_epoch,
            topics: Vec::new(),
            producer_ids: None,
            partition: None,
            partition_results: Vec::new(),
        }
    }
}

/// The part of a partition's state an AlterPartition answer carries.
fn altered(state: &PartitionState) -> AlteredPartition {
    AlteredPartition {
        leader: state.leader.unwrap_or(-1),
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
        isr: state.isr.clone(),
    }
}

/// A topic request's proposal (empty: none) and answer.
fn topic_answer(decision: TopicDecision) -> (Vec<MetadataRecord>, Answer) {
    let answer = Answer {
        topics: decision.results,
        ..Answer::broker(-1)
    };
    (decision.records, answer)
}

struct InFlight {
    proposal: Proposal,
    /// The reply and what to answer, once the entry is applied.
    reply: Option<(Reply, Answer)>,
}

/// Present while this node is the active controller.
struct Active {
    term: u64,
    sessions: BrokerSessions,
    in_flight: Option<InFlight>,
    queue: VecDeque<Waiting>,
    /// `now_ms` of the next leader-imbalance check (auto leader rebalance).
    next_imbalance_check_ms: i64,
}

pub struct ControllerLoop {
    pub driver: RaftDriver<ImageStateMachine>,
    pub settings: ControllerSettings,
    pub inbox: Receiver<ControllerEvent>,
    pub peers: PeerSenders,
    pub hub: Arc<ViewHub>,
    pub tick: Duration,
    pub request_queue_max: usize,
    /// Largest encoded record batch one request may propose: one raft entry must fit in a
    /// controller-protocol frame with room for the message around it (half of
    /// `cluster.controller_frame_bytes_max`). Default `PROPOSAL_BYTES_MAX_DEFAULT`.
    pub proposal_bytes_max: usize,
    active: Option<Active>,
    started: Instant,
    /// Per voter: wall-clock ms of its last raft message (DescribeQuorum's last fetch).
    last_heard: HashMap<u64, i64>,
    /// Per voter: wall-clock ms its matched index last reached the commit index.
    last_caught_up: HashMap<u64, i64>,
    /// Broker-only nodes fetching the log (`observer`), for DescribeQuorum.
    observers: BTreeMap<NodeId, VoterProgress>,
    /// The applied image's topics, rebuilt when entries are applied (shared by every view).
    topics: Arc<ClusterTopics>,
    /// The commit index persisted before this start: until the image has applied it, the
    /// published topics are empty with `applied_index` 0 ("not known yet"), so no broker
    /// mistakes a half-replayed image for topics that were deleted.
    startup_commit: u64,
}

impl ControllerLoop {
    pub fn new(
        driver: RaftDriver<ImageStateMachine>,
        settings: ControllerSettings,
        inbox: Receiver<ControllerEvent>,
        peers: PeerSenders,
        hub: Arc<ViewHub>,
        tick: Duration,
        request_queue_max: usize,
    ) -> Self {
        let startup_commit = driver.commit_index();
        let topics = Arc::new(topics_table(&driver, startup_commit));
        ControllerLoop {
            driver,
            settings,
            inbox,
            peers,
            hub,
            tick,
            request_queue_max,
            proposal_bytes_max: PROPOSAL_BYTES_MAX_DEFAULT,
            active: None,
            started: Instant::now(),
            last_heard: HashMap::new(),
            last_caught_up: HashMap::new(),
            observers: BTreeMap::new(),
            topics,
            startup_commit,
        }
    }

    /// Monotonic ms since start: sessions live in memory only, so wall time is not needed.
    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Runs until the driver fails.
    pub fn run(mut self) -> QuorumError {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(wait) {
                Ok(event) => self.handle_event(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return QuorumError::Stopped,
            }
            // Drain what else is queued before the (fsyncing) ready round.
            while let Ok(event) = self.inbox.try_recv() {
                self.handle_event(event);
            }
            if Instant::now() >= next_tick {
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
                self.driver.tick();
                self.fence_expired();
                self.check_leader_imbalance();
                self.hub.flush();
            }
            if let Err(error) = self.round() {
                return error;
            }
        }
    }

    fn handle_event(&mut self, event: ControllerEvent) {
        match event {
            ControllerEvent::Raft(message) => {
                self.last_heard.insert(message.from, wall_clock_ms());
                if let Err(error) = self.driver.step(message) {
                    tracing::debug!(%error, "raft refused a message");
                }
            }
            ControllerEvent::Unreachable(peer) => self.driver.report_unreachable(peer),
            ControllerEvent::Request { request, reply } => self.handle_request(request, reply),
        }
    }

    /// One ready round: persist, send, apply; then follow leadership and answer requests.
    fn round(&mut self) -> Result<(), QuorumError> {
        let outcome = self.driver.handle_ready().map_err(QuorumError::Raft)?;
        for message in outcome.messages {
            let to = message.to;
            if !self.peers.send(message) {
                self.driver.report_unreachable(to);
            }
        }
        self.follow_leadership(&outcome.applied);
        for entry in &outcome.applied {
            self.complete(entry.index, entry.term);
        }
        if !outcome.applied.is_empty() || outcome.restored_snapshot.is_some() {
            self.topics = Arc::new(topics_table(&self.driver, self.startup_commit));
            self.start_next();
        }
        self.track_caught_up();
        self.hub.publish(self.view());
        Ok(())
    }

    fn follow_leadership(&mut self, applied: &[crate::cluster::raft::AppliedEntry]) {
        let term = self.driver.term();
        if let Some(active) = &self.active
            && (!self.driver.is_leader() || active.term != term)
        {
            tracing::info!(term = active.term, "no longer the active controller");
            self.resign();
        }
        if self.active.is_none()
            && self.driver.is_leader()
            && applied.iter().any(|entry| entry.term == term)
        {
            tracing::info!(term, node = self.driver.id(), "active controller");
            let sessions = BrokerSessions::activate(self.image(), self.now_ms());
            let next_imbalance_check_ms =
                self.now_ms() + self.settings.leader_imbalance_check_interval_ms;
            self.active = Some(Active {
                term,
                sessions,
                in_flight: None,
                queue: VecDeque::new(),
                next_imbalance_check_ms,
            });
            if self.image().cluster_id().is_none() {
                let id = *uuid::Uuid::new_v4().as_bytes();
                self.propose(vec![MetadataRecord::ClusterId(id)], None);
            }
        }
    }

    fn resign(&mut self) {
        let hint = self.leader_hint();
        if let Some(active) = self.active.take() {
            let view = self.view();
            let replies = active
                .in_flight
                .into_iter()
                .filter_map(|f| f.reply.map(|(reply, _)| reply))
                .chain(active.queue.into_iter().map(|w| w.reply));
            for reply in replies {
                let _ = reply.try_send(not_controller(hint, view.clone()));
            }
        }
    }

    fn image(&self) -> &MetadataImage {
        self.driver.state_machine().image()
    }

    fn leader_hint(&self) -> NodeId {
        self.driver.leader_id().map_or(-1, |id| id as NodeId)
    }

    /// Records, on the leader, which voters have reached the commit index now.
    fn track_caught_up(&mut self) {
        let Some(progress) = self.driver.voter_progress() else {
            self.last_caught_up.clear();
            return;
        };
        let commit = self.driver.commit_index();
        let now = wall_clock_ms();
        for (id, matched) in progress {
            if matched >= commit {
                self.last_caught_up.insert(id, now);
            }
        }
    }

    /// Records an observer's fetch for DescribeQuorum: only registered brokers that are not
    /// voters (so the table is bounded by the registrations).
    fn track_observer(&mut self, node_id: NodeId, applied: u64) {
        let is_voter = self
            .driver
            .voter_progress()
            .is_some_and(|voters| voters.iter().any(|(id, _)| *id == node_id as u64));
        if is_voter || self.image().broker(node_id).is_none() {
            return;
        }
        let now = wall_clock_ms();
        let caught_up = applied >= self.driver.applied_index();
        let entry = self.observers.entry(node_id).or_insert(VoterProgress {
            node_id,
            log_end_offset: 0,
            last_fetch_timestamp: -1,
            last_caught_up_timestamp: -1,
        });
        entry.log_end_offset = applied as i64;
        entry.last_fetch_timestamp = now;
        if caught_up {
            entry.last_caught_up_timestamp = now;
        }
    }

    /// The quorum as this leader sees it; `None` on a non-leader.
    fn quorum_state(&self) -> Option<QuorumState> {
        let progress = self.driver.voter_progress()?;
        let own = self.driver.id();
        let now = wall_clock_ms();
        let voters = progress
            .into_iter()
            .map(|(id, matched)| VoterProgress {
                node_id: id as NodeId,
                log_end_offset: matched as i64,
                last_fetch_timestamp: if id == own {
                    now
                } else {
                    self.last_heard.get(&id).copied().unwrap_or(-1)
                },
                last_caught_up_timestamp: self.last_caught_up.get(&id).copied().unwrap_or(-1),
            })
            .collect();
        Some(QuorumState {
            leader_id: own as NodeId,
            leader_epoch: self.driver.term() as i64,
            high_watermark: self.driver.commit_index() as i64,
            voters,
            observers: self
                .observers
                .values()
                .filter(|observer| self.image().broker(observer.node_id).is_some())
                .cloned()
                .collect(),
        })
    }

    /// The live brokers and the controller, from the applied image.
    pub fn view(&self) -> ClusterView {
        ClusterView {
            quorum: self.quorum_state(),
            ..view_of_image(self.image(), self.leader_hint(), self.topics.clone())
        }
    }

    fn handle_request(&mut self, request: ControllerRequest, reply: Reply) {
        if let ControllerRequest::FetchMetadata {
            node_id,
            after_index,
        } = request
        {
            // Polled every few ms by each observer, which builds its own view from the
            // chunk: no view (brokers, quorum progress) is built for the answer.
            let (hint, view) = (self.leader_hint(), ClusterView::default());
            self.track_observer(node_id, after_index);
            let bytes_max = self.proposal_bytes_max as u64;
            let response = match crate::cluster::observation::chunk_for(
                &self.driver,
                after_index,
                self.startup_commit,
                bytes_max,
            ) {
                Ok(chunk) => ControllerResponse {
                    metadata: Some(chunk),
                    ..error_response(ErrorCode::None, hint, view)
                },
                Err(reason) => {
                    tracing::warn!(%reason, "cannot answer an observer's metadata fetch");
                    error_response(ErrorCode::UnknownServerError, hint, view)
                }
            };
            let _ = reply.try_send(response);
            return;
        }
        let (hint, view) = (self.leader_hint(), self.view());
        let queue_max = self.request_queue_max;
        let Some(active) = self.active.as_mut() else {
            let _ = reply.try_send(not_controller(hint, view));
            return;
        };
        if active.in_flight.is_some() || !active.queue.is_empty() {
            if active.queue.len() >= queue_max {
                let _ = reply.try_send(error_response(ErrorCode::RequestTimedOut, hint, view));
            } else {
                active.queue.push_back(Waiting { request, reply });
            }
            return;
        }
        self.decide(request, reply);
    }

    /// Decides one request on the applied image; proposes its records if any.
    fn decide(&mut self, request: ControllerRequest, reply: Reply) {
        let now = self.now_ms();
        let (hint, view) = (self.leader_hint(), self.view());
        if self.active.is_some() && self.image().cluster_id().is_none() {
            // The activation's ClusterId proposal was dropped: propose it again (nothing is
            // in flight when a request is decided); the broker retries meanwhile.
            let _ = reply.try_send(error_response(ErrorCode::RequestTimedOut, hint, view));
            let id = *uuid::Uuid::new_v4().as_bytes();
            self.propose(vec![MetadataRecord::ClusterId(id)], None);
            return;
        }
        let image = self.driver.state_machine().image();
        let Some(active) = self.active.as_mut() else {
            let _ = reply.try_send(not_controller(hint, view));
            return;
        };
        let (settings, bytes_max) = (&self.settings, self.proposal_bytes_max);
        let decision = match request {
            ControllerRequest::Register {
                node_id,
                incarnation_id,
                endpoint,
                cluster_id,
                previous_broker_epoch,
            } => {
                let mut request =
                    registration(image, node_id, incarnation_id, endpoint, cluster_id);
                request.previous_broker_epoch = previous_broker_epoch;
                register_broker(image, &active.sessions, settings, &request, now).map(|decision| {
                    active.sessions.touch(node_id, now);
                    (decision.records, Answer::broker(decision.broker_epoch))
                })
            }
            ControllerRequest::Heartbeat {
                node_id,
                broker_epoch,
                caught_up,
                want_fence,
            } => {
                let request = BrokerHeartbeatRequest {
                    node_id,
                    broker_epoch,
                    caught_up,
                    want_fence,
                };
                broker_heartbeat(image, settings, &request, now).map(|records| {
                    active.sessions.touch(node_id, now);
                    (records, Answer::broker(broker_epoch))
                })
            }
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => Ok(topic_answer(decide_create_topics(
                image,
                settings,
                &topics,
                validate_only,
                bytes_max,
                || *uuid::Uuid::new_v4().as_bytes(),
            ))),
            ControllerRequest::DeleteTopics { names } => {
                Ok(topic_answer(decide_delete_topics(image, &names, bytes_max)))
            }
            ControllerRequest::CreatePartitions {
                topics,
                validate_only,
            } => Ok(topic_answer(decide_create_partitions(
                image,
                settings,
                &topics,
                validate_only,
                bytes_max,
            ))),
            ControllerRequest::AllocateProducerIds {
                node_id,
                broker_epoch,
                floor,
            } => decide_allocate_producer_ids(image, settings, node_id, broker_epoch, floor).map(
                |(records, block)| {
                    let answer = Answer {
                        producer_ids: Some(block),
                        ..Answer::broker(broker_epoch)
                    };
                    (records, answer)
                },
            ),
            ControllerRequest::AlterTopicConfigs {
                topic,
                alterations,
                validate_only,
            } => Ok(topic_answer(decide_alter_topic_configs(
                image,
                &topic,
                &alterations,
                validate_only,
                bytes_max,
            ))),
            ControllerRequest::AlterGroupConfigs {
                group,
                alterations,
                validate_only,
            } => Ok(topic_answer(decide_alter_group_configs(
                image,
                &group,
                &alterations,
                validate_only,
                bytes_max,
            ))),
            ControllerRequest::AlterPartition {
                topic_id,
                partition,
                request,
            } => alter_partition(image, settings, topic_id, partition, &request).map(|decision| {
                let answer = Answer {
                    partition: Some(altered(&decision.state)),
                    ..Answer::broker(request.leader_broker_epoch)
                };
                (decision.records, answer)
            }),
            ControllerRequest::ElectLeaders {
                election_type,
                partitions,
            } => {
                let decision = elect_leaders(image, election_type, partitions.as_ref());
                partitions_answer(decision.records, decision.results, bytes_max)
            }
            ControllerRequest::AlterReassignments { reassignments } => {
                let decision =
                    crate::cluster::reassignments::alter_reassignments(image, &reassignments);
                partitions_answer(decision.records, decision.results, bytes_max)
            }
            // Answered by `handle_request` before any decision (no records, any voter).
            ControllerRequest::FetchMetadata { .. } => Ok((Vec::new(), Answer::broker(-1))),
        };
        match decision {
            Err(error) => {
                tracing::info!(%error, "controller refused a broker request");
                let mut response = error_response(ErrorCode::None, hint, view);
                response.error_code = error.error_code();
                let _ = reply.try_send(response);
            }
            Ok((records, answer)) if records.is_empty() => {
                let _ = reply.try_send(answered(hint, view, answer));
            }
            Ok((records, answer)) => self.propose(records, Some((reply, answer))),
        }
    }

    fn propose(&mut self, records: Vec<MetadataRecord>, reply: Option<(Reply, Answer)>) {
        let (hint, view) = (self.leader_hint(), self.view());
        match self.driver.propose(encode_batch(&records)) {
            Ok(proposal) => {
                if let Some(active) = self.active.as_mut() {
                    active.in_flight = Some(InFlight { proposal, reply });
                }
            }
            Err(error) => {
                tracing::info!(%error, "metadata proposal refused");
                if let Some((reply, _)) = reply {
                    let _ = reply.try_send(not_controller(hint, view));
                }
            }
        }
    }

    /// Answers the request in flight once the entry at its index is applied.
    fn complete(&mut self, index: u64, term: u64) {
        let (hint, view) = (self.leader_hint(), self.view());
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let Some(in_flight) = &active.in_flight else {
            return;
        };
        if in_flight.proposal.index != index {
            return;
        }
        let Some(in_flight) = active.in_flight.take() else {
            return;
        };
        if let Some((reply, answer)) = in_flight.reply {
            let response = if in_flight.proposal.term == term {
                answered(hint, view, answer)
            } else {
                not_controller(hint, view)
            };
            let _ = reply.try_send(response);
        }
    }

    /// Decides queued requests until one needs a proposal.
    fn start_next(&mut self) {
        loop {
            let Some(active) = self.active.as_mut() else {
                return;
            };
            if active.in_flight.is_some() {
                return;
            }
            let Some(waiting) = active.queue.pop_front() else {
                return;
            };
            self.decide(waiting.request, waiting.reply);
        }
    }

    /// On the active controller's tick, every `leader_imbalance_check_interval_ms`: moves
    /// leadership back to preferred replicas (`rebalance_leaders`) when nothing is in flight
    /// (else the check waits for the next tick).
    fn check_leader_imbalance(&mut self) {
        let now = self.now_ms();
        let interval = self.settings.leader_imbalance_check_interval_ms;
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if active.in_flight.is_some() || now < active.next_imbalance_check_ms {
            return;
        }
        active.next_imbalance_check_ms = now + interval;
        let records = rebalance_leaders(self.image(), &self.settings);
        if !records.is_empty() && encode_batch(&records).len() <= self.proposal_bytes_max {
            tracing::info!(
                partitions = records.len(),
                "leader imbalance: preferred replicas lead again"
            );
            self.propose(records, None);
        }
    }

    /// On the active controller's tick: fences brokers whose session expired.
    fn fence_expired(&mut self) {
        let now = self.now_ms();
        let Some(active) = &self.active else {
            return;
        };
        if active.in_flight.is_some() {
            return;
        }
        let records = fence_expired_brokers(self.image(), &active.sessions, &self.settings, now);
        if !records.is_empty() {
            tracing::info!(
                records = records.len(),
                "fencing brokers whose session expired"
            );
            self.propose(records, None);
        }
    }
}

/// An ElectLeaders or AlterPartitionReassignments proposal (one entry) and its
/// per-partition answer; one that would not fit in a proposal is refused INVALID_REQUEST
/// (the client may ask for fewer partitions at a time).
fn partitions_answer(
    records: Vec<MetadataRecord>,
    results: Vec<ElectionResult>,
    bytes_max: usize,
) -> Result<(Vec<MetadataRecord>, Answer), crate::cluster::ControllerError> {
    if encode_batch(&records).len() > bytes_max {
        return Err(crate::cluster::ControllerError::InvalidRequest(format!(
            "{} partition changes exceed one metadata proposal",
            records.len()
        )));
    }
    let answer = Answer {
        partition_results: results,
        ..Answer::broker(-1)
    };
    Ok((records, answer))
}

/// A Register request as the pure decision takes it. A node that has not joined a cluster yet
/// joins this one; one whose data dir names another cluster is refused
/// (INCONSISTENT_CLUSTER_ID).
fn registration(
    image: &MetadataImage,
    node_id: NodeId,
    incarnation_id: Uuid,
    endpoint: BrokerEndpoint,
    cluster_id: Option<Uuid>,
) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        cluster_id: cluster_id.or(image.cluster_id()).unwrap_or_default(),
        node_id,
        incarnation_id,
        listeners: registered_listeners(endpoint.host, endpoint.port, endpoint.listeners),
        rack: endpoint.rack,
        previous_broker_epoch: None,
    }
}

/// The listeners a registration records: the broker's own list (it puts its inter-broker
/// listener, the endpoint's address, first); a broker that sent no list has one PLAINTEXT
/// listener, as before listeners had names.
fn registered_listeners(host: String, port: u16, listeners: Vec<Listener>) -> Vec<Listener> {
    if !listeners.is_empty() {
        return listeners;
    }
    vec![Listener {
        name: LISTENER_NAME.to_string(),
        host,
        port,
        security_protocol: 0,
    }]
}

/// The topics shards see: the applied image's, once it holds everything committed before
/// this start (see `ControllerLoop::startup_commit`); an empty, index-0 table before.
fn topics_table(driver: &RaftDriver<ImageStateMachine>, startup_commit: u64) -> ClusterTopics {
    if driver.applied_index() < startup_commit {
        return ClusterTopics::default();
    }
    ClusterTopics::from_image(driver.state_machine().image(), driver.applied_index())
}

fn error_response(code: ErrorCode, hint: NodeId, view: ClusterView) -> ControllerResponse {
    ControllerResponse {
        error_code: code.code(),
        leader_hint: hint,
        broker_epoch: -1,
        view,
        topics: Vec::new(),
        producer_ids: None,
        partition: None,
        partition_results: Vec::new(),
        metadata: None,
    }
}

/// A decided request's answer (per-topic errors ride in `topics`; the request's own code is 0).
fn answered(hint: NodeId, view: ClusterView, answer: Answer) -> ControllerResponse {
    ControllerResponse {
        broker_epoch: answer.broker_epoch,
        topics: answer.topics,
        producer_ids: answer.producer_ids,
        partition: answer.partition,
        partition_results: answer.partition_results,
        ..error_response(ErrorCode::None, hint, view)
    }
}

fn not_controller(hint: NodeId, view: ClusterView) -> ControllerResponse {
    error_response(ErrorCode::NotController, hint, view)
}

/// Kafka's DescribeQuorum timestamps are wall-clock epoch ms.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(-1, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
#[path = "controller_loop_tests.rs"]
mod tests;
