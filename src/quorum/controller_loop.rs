//! The controller thread of a quorum member: owns the metadata Raft node over its durable
//! log, ticks it, steps inbound messages, persists and sends what it has ready, and — while
//! this node is the active controller (raft leader whose term's first entry is applied) —
//! decides broker registrations, heartbeats, session fencing, producer-id blocks, topic
//! requests (CreateTopics, DeleteTopics, CreatePartitions, AlterTopicConfigs), ElectLeaders,
//! partition leaders' AlterPartition and, every `leader_imbalance_check_interval_ms`, auto
//! leader rebalance with `cluster::controller`'s pure functions and proposes their records. A dedicated std thread, never a shard: the raft log's fsyncs block.
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
    TopicDecision, decide_allocate_producer_ids, decide_alter_topic_configs,
    decide_create_partitions, decide_create_topics, decide_delete_topics,
};
use super::topics::ClusterTopics;
use super::transport::PeerSenders;
use super::view::ViewHub;
use super::{ControllerEvent, QuorumError};
use crate::cluster::controller::{
    BrokerHeartbeatRequest, BrokerRegistrationRequest, BrokerSessions, ControllerSettings,
    ElectLeadersDecision, alter_partition, broker_heartbeat, elect_leaders, fence_expired_brokers,
    rebalance_leaders, register_broker,
};
use crate::cluster::image::{MetadataImage, PartitionState};
use crate::cluster::image_machine::ImageStateMachine;
use crate::cluster::leader_elections::ElectionResult;
use crate::cluster::raft::{Proposal, RaftDriver};
use crate::cluster::records::{Listener, MetadataRecord, NodeId, Uuid, encode_batch};
use crate::model::ErrorCode;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

/// The Kafka listener name brokers register their endpoint under.
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
    /// ElectLeaders' per-partition results, answered once its records are applied.
    elections: Vec<ElectionResult>,
}

impl Answer {
    fn broker(broker_epoch: i64) -> Answer {
        Answer {
            broker_epoch,
            topics: Vec::new(),
            producer_ids: None,
            partition: None,
            elections: Vec::new(),
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
        })
    }

    /// The live brokers and the controller, from the applied image.
    pub fn view(&self) -> ClusterView {
        let brokers = self
            .image()
            .unfenced_brokers()
            .filter_map(|broker| {
                let listener = broker
                    .listeners
                    .iter()
                    .find(|l| l.name == LISTENER_NAME)
                    .or(broker.listeners.first())?;
                Some(BrokerEndpoint {
                    node_id: broker.node_id,
                    host: listener.host.clone(),
                    port: listener.port,
                    rack: broker.rack.clone(),
                })
            })
            .collect();
        ClusterView {
            cluster_id: self.image().cluster_id(),
            controller_id: self.leader_hint(),
            brokers,
            quorum: self.quorum_state(),
            topics: self.topics.clone(),
        }
    }

    fn handle_request(&mut self, request: ControllerRequest, reply: Reply) {
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
            } => {
                let request = registration(image, node_id, incarnation_id, endpoint, cluster_id);
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
                elections_answer(decision, bytes_max)
            }
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

/// An ElectLeaders proposal (one entry) and answer; one that would not fit in a proposal is
/// refused INVALID_REQUEST (the client may ask for fewer partitions at a time).
fn elections_answer(
    decision: ElectLeadersDecision,
    bytes_max: usize,
) -> Result<(Vec<MetadataRecord>, Answer), crate::cluster::ControllerError> {
    if encode_batch(&decision.records).len() > bytes_max {
        return Err(crate::cluster::ControllerError::InvalidRequest(format!(
            "{} leader elections exceed one metadata proposal",
            decision.records.len()
        )));
    }
    let answer = Answer {
        elections: decision.results,
        ..Answer::broker(-1)
    };
    Ok((decision.records, answer))
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
        listeners: vec![Listener {
            name: LISTENER_NAME.to_string(),
            host: endpoint.host,
            port: endpoint.port,
            security_protocol: 0,
        }],
        rack: endpoint.rack,
    }
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
        elections: Vec::new(),
    }
}

/// A decided request's answer (per-topic errors ride in `topics`; the request's own code is 0).
fn answered(hint: NodeId, view: ClusterView, answer: Answer) -> ControllerResponse {
    ControllerResponse {
        broker_epoch: answer.broker_epoch,
        topics: answer.topics,
        producer_ids: answer.producer_ids,
        partition: answer.partition,
        elections: answer.elections,
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
mod tests {
    use super::*;
    use crate::cluster::raft::RaftSettings;
    use crate::quorum::NetSettings;
    use crate::quorum::frame::{PartitionsCreation, TopicCreation};
    use crate::storage::raft_log::RaftLogStore;
    use std::collections::BTreeMap;
    use std::sync::mpsc::sync_channel;

    /// Ready rounds a single voter needs at most to commit and apply one proposal.
    const ROUNDS_MAX: usize = 100;

    /// The controller loop of a one-voter quorum over an in-memory log, driven by the test
    /// (no thread, no socket), elected and active.
    fn active_controller() -> ControllerLoop {
        let store = RaftLogStore::in_memory(&[1]);
        let settings = RaftSettings::default();
        let mut driver = RaftDriver::new(1, store, ImageStateMachine::new(), &settings).unwrap();
        driver.campaign().unwrap();
        let (inbox_sender, inbox) = sync_channel(16);
        let net = NetSettings {
            frame_bytes_max: 1 << 20,
            peer_queue_max: 4,
            connections_max: 4,
            connect_timeout: Duration::from_secs(1),
            reconnect_backoff: Duration::from_millis(10),
            read_timeout: Duration::from_secs(1),
        };
        let peers = PeerSenders::start(1, &[], inbox_sender, &net).unwrap();
        let hub = Arc::new(ViewHub::default());
        let settings = ControllerSettings::default();
        let tick = Duration::from_millis(10);
        let mut controller = ControllerLoop::new(driver, settings, inbox, peers, hub, tick, 16);
        for _ in 0..ROUNDS_MAX {
            controller.round().unwrap();
            if controller.active.is_some() && controller.image().cluster_id().is_some() {
                return controller;
            }
        }
        panic!("the single voter did not become the active controller");
    }

    /// Hands `request` to the loop and runs ready rounds until it is answered.
    fn ask(controller: &mut ControllerLoop, request: ControllerRequest) -> ControllerResponse {
        let (reply, answer) = sync_channel(1);
        controller.handle_event(ControllerEvent::Request { request, reply });
        for _ in 0..ROUNDS_MAX {
            if let Ok(response) = answer.try_recv() {
                return response;
            }
            controller.round().unwrap();
        }
        panic!("no answer");
    }

    /// Registers broker 1 and unfences it; its broker epoch.
    fn start_broker(controller: &mut ControllerLoop) -> i64 {
        let epoch = start_node(controller, 1);
        assert_eq!(controller.image().unfenced_brokers().count(), 1);
        epoch
    }

    /// Registers broker `node_id` and unfences it; its broker epoch.
    fn start_node(controller: &mut ControllerLoop, node_id: NodeId) -> i64 {
        let registered = ask(
            controller,
            ControllerRequest::Register {
                node_id,
                incarnation_id: [node_id as u8; 16],
                endpoint: BrokerEndpoint {
                    node_id,
                    host: "127.0.0.1".into(),
                    port: 9092,
                    rack: None,
                },
                cluster_id: None,
            },
        );
        assert_eq!(registered.error_code, 0);
        let heartbeat = ControllerRequest::Heartbeat {
            node_id,
            broker_epoch: registered.broker_epoch,
            caught_up: true,
            want_fence: false,
        };
        assert_eq!(ask(controller, heartbeat).error_code, 0);
        let broker = controller.image().broker(node_id).expect("registered");
        assert!(!broker.fenced);
        registered.broker_epoch
    }

    fn create(names: &[&str], validate_only: bool) -> ControllerRequest {
        let topics = names
            .iter()
            .map(|name| TopicCreation {
                name: name.to_string(),
                num_partitions: 2,
                replication_factor: -1,
                assignments: BTreeMap::new(),
                configs: BTreeMap::new(),
            })
            .collect();
        ControllerRequest::CreateTopics {
            topics,
            validate_only,
        }
    }

    #[test]
    fn create_topics_through_the_active_controller() {
        let mut controller = active_controller();
        start_broker(&mut controller);

        let applied = controller.driver.applied_index();
        let response = ask(&mut controller, create(&["orders", "users"], false));
        assert_eq!(response.error_code, 0);
        assert_eq!(
            controller.driver.applied_index(),
            applied + 1,
            "both topics in one entry"
        );
        for (result, name) in response.topics.iter().zip(["orders", "users"]) {
            assert_eq!(result.name, name);
            assert_eq!(result.error_code, 0, "{result:?}");
            assert_eq!((result.num_partitions, result.replication_factor), (2, 1));
            let topic = controller.image().topic_by_name(name).expect("created");
            assert_eq!(topic.id, result.topic_id);
            assert_ne!(result.topic_id, [0; 16]);
        }
        assert_ne!(response.topics[0].topic_id, response.topics[1].topic_id);
        assert!(controller.view().topics.partition("orders", 1).is_some());

        // A name in use is refused per topic; the other topic is still created.
        let response = ask(&mut controller, create(&["orders", "more"], false));
        assert_eq!(response.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
        assert!(response.topics[0].message.is_some());
        assert_eq!(response.topics[1].error_code, 0);
        assert!(controller.image().topic_by_name("more").is_some());

        // Nothing succeeds: answered at once, nothing proposed.
        let applied = controller.driver.applied_index();
        let response = ask(&mut controller, create(&["orders"], false));
        assert_eq!(response.topics[0].error_code, 36);
        assert_eq!(controller.driver.applied_index(), applied);
    }

    #[test]
    fn elect_leaders_is_answered_per_partition_without_a_proposal_when_nothing_changes() {
        use crate::cluster::leader_elections::ElectionType;
        use std::collections::BTreeSet;
        let mut controller = active_controller();
        start_broker(&mut controller);
        assert_eq!(
            ask(&mut controller, create(&["orders"], false)).error_code,
            0
        );
        let applied = controller.driver.applied_index();
        let request = ControllerRequest::ElectLeaders {
            election_type: ElectionType::Preferred,
            partitions: Some(BTreeMap::from([(
                "orders".to_string(),
                BTreeSet::from([0, 9]),
            )])),
        };
        let response = ask(&mut controller, request);
        assert_eq!(response.error_code, 0);
        let codes: Vec<(i32, i16)> = response
            .elections
            .iter()
            .map(|result| (result.partition, result.error_code))
            .collect();
        let not_needed = ErrorCode::ElectionNotNeeded.code();
        let unknown = ErrorCode::UnknownTopicOrPartition.code();
        assert_eq!(codes, vec![(0, not_needed), (9, unknown)]);
        assert_eq!(controller.driver.applied_index(), applied);
    }

    #[test]
    fn validate_only_proposes_nothing() {
        let mut controller = active_controller();
        start_broker(&mut controller);
        let applied = controller.driver.applied_index();
        let (reply, answer) = sync_channel(1);
        let request = create(&["dry"], true);
        controller.handle_event(ControllerEvent::Request { request, reply });
        let response = answer.try_recv().expect("answered at once");
        assert!(controller.active.as_ref().unwrap().in_flight.is_none());
        for _ in 0..10 {
            controller.round().unwrap();
        }
        assert_eq!(controller.driver.applied_index(), applied);
        assert!(controller.image().topic_by_name("dry").is_none());
        let dry = &response.topics[0];
        assert_eq!((dry.error_code, dry.num_partitions), (0, 2));
        assert_eq!(dry.topic_id, [0; 16], "no topic got an id");
    }

    #[test]
    fn create_partitions_and_delete_topics_through_the_active_controller() {
        let mut controller = active_controller();
        start_broker(&mut controller);
        assert_eq!(ask(&mut controller, create(&["t"], false)).error_code, 0);
        let grow = ControllerRequest::CreatePartitions {
            topics: vec![PartitionsCreation {
                name: "t".into(),
                count: 5,
                assignments: Vec::new(),
            }],
            validate_only: false,
        };
        let response = ask(&mut controller, grow);
        assert_eq!(response.topics[0].error_code, 0);
        assert_eq!(response.topics[0].num_partitions, 5);
        let t = controller.image().topic_by_name("t").expect("topic");
        assert_eq!(t.partitions.len(), 5);

        let delete = ControllerRequest::DeleteTopics {
            names: vec!["t".into(), "absent".into()],
        };
        let response = ask(&mut controller, delete);
        let codes: Vec<i16> = response.topics.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [0, 3]);
        assert!(controller.image().topic_by_name("t").is_none());
    }

    fn allocate(node_id: NodeId, broker_epoch: i64) -> ControllerRequest {
        ControllerRequest::AllocateProducerIds {
            node_id,
            broker_epoch,
            floor: 0,
        }
    }

    #[test]
    fn producer_id_blocks_are_answered_once_applied_and_never_overlap() {
        let mut controller = active_controller();
        let epoch = start_broker(&mut controller);
        let size = controller.settings.producer_id_block_size;
        let next = controller.image().next_producer_id();

        let applied = controller.driver.applied_index();
        let first = ask(&mut controller, allocate(1, epoch));
        assert_eq!(first.error_code, 0);
        let first = first.producer_ids.expect("a block");
        assert_eq!(controller.driver.applied_index(), applied + 1, "one entry");
        assert_eq!(first.first_producer_id, next);
        assert_eq!(first.size, size);
        assert_eq!(controller.image().next_producer_id(), next + size);

        let second = ask(&mut controller, allocate(1, epoch));
        let second = second.producer_ids.expect("a block");
        assert_eq!(second.first_producer_id, first.first_producer_id + size);
        assert_eq!(second.size, size);
        assert_eq!(controller.image().next_producer_id(), next + 2 * size);
    }

    #[test]
    fn a_producer_id_request_at_a_stale_epoch_is_refused_without_a_proposal() {
        let mut controller = active_controller();
        let epoch = start_broker(&mut controller);
        let (applied, next) = (
            controller.driver.applied_index(),
            controller.image().next_producer_id(),
        );
        let (reply, answer) = sync_channel(1);
        let request = allocate(1, epoch - 1);
        controller.handle_event(ControllerEvent::Request { request, reply });
        let stale = answer.try_recv().expect("answered at once");
        assert_eq!(stale.error_code, 77, "STALE_BROKER_EPOCH");
        assert_eq!(stale.producer_ids, None);
        assert!(controller.active.as_ref().unwrap().in_flight.is_none());
        let unknown = ask(&mut controller, allocate(9, epoch));
        assert_eq!(unknown.error_code, 102, "BROKER_ID_NOT_REGISTERED");
        for _ in 0..10 {
            controller.round().unwrap();
        }
        assert_eq!(controller.driver.applied_index(), applied);
        assert_eq!(controller.image().next_producer_id(), next);
    }

    fn alter(
        topic: &str,
        alterations: &[(&str, Option<&str>)],
        validate: bool,
    ) -> ControllerRequest {
        ControllerRequest::AlterTopicConfigs {
            topic: topic.to_string(),
            alterations: alterations
                .iter()
                .map(|(name, value)| (name.to_string(), value.map(str::to_string)))
                .collect(),
            validate_only: validate,
        }
    }

    fn topic_configs(controller: &ControllerLoop, topic: &str) -> BTreeMap<String, String> {
        let topic = controller.image().topic_by_name(topic).expect("topic");
        topic.configs.clone()
    }

    #[test]
    fn alter_topic_configs_through_the_active_controller() {
        let mut controller = active_controller();
        start_broker(&mut controller);
        assert_eq!(ask(&mut controller, create(&["t"], false)).error_code, 0);
        let id = controller.image().topic_by_name("t").expect("topic").id;

        let set = alter("t", &[("retention.ms", Some("1000"))], false);
        let response = ask(&mut controller, set);
        assert_eq!(response.error_code, 0);
        let result = &response.topics[0];
        assert_eq!(
            (
                result.name.as_str(),
                result.error_code,
                result.topic_id,
                result.num_partitions,
                result.replication_factor
            ),
            ("t", 0, id, 2, 1)
        );
        let expected = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        assert_eq!(topic_configs(&controller, "t"), expected);

        // Setting it again changes nothing: answered at once, nothing proposed.
        let applied = controller.driver.applied_index();
        let again = ask(
            &mut controller,
            alter("t", &[("retention.ms", Some("1000"))], false),
        );
        assert_eq!(again.topics[0].error_code, 0);
        assert_eq!(controller.driver.applied_index(), applied);

        let delete = ask(
            &mut controller,
            alter("t", &[("retention.ms", None)], false),
        );
        assert_eq!(delete.topics[0].error_code, 0);
        assert!(topic_configs(&controller, "t").is_empty());
    }

    #[test]
    fn refused_and_validate_only_config_changes_propose_nothing() {
        let mut controller = active_controller();
        start_broker(&mut controller);
        assert_eq!(ask(&mut controller, create(&["t"], false)).error_code, 0);
        let applied = controller.driver.applied_index();

        let unknown = ask(
            &mut controller,
            alter("absent", &[("retention.ms", Some("1"))], false),
        );
        assert_eq!(unknown.error_code, 0);
        assert_eq!(unknown.topics[0].name, "absent");
        assert_eq!(
            unknown.topics[0].error_code, 3,
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        let invalid = ask(
            &mut controller,
            alter("t", &[("retention.ms", Some("soon"))], false),
        );
        assert_eq!(invalid.topics[0].error_code, 40, "INVALID_CONFIG");
        assert!(invalid.topics[0].message.is_some());

        let (reply, answer) = sync_channel(1);
        let request = alter("t", &[("retention.ms", Some("1"))], true);
        controller.handle_event(ControllerEvent::Request { request, reply });
        let validated = answer.try_recv().expect("answered at once");
        assert_eq!(validated.topics[0].error_code, 0);
        assert!(controller.active.as_ref().unwrap().in_flight.is_none());
        for _ in 0..10 {
            controller.round().unwrap();
        }
        assert_eq!(controller.driver.applied_index(), applied);
        assert!(topic_configs(&controller, "t").is_empty());
    }

    #[test]
    fn alter_partition_is_answered_once_its_change_is_applied() {
        use crate::cluster::partition_changes::AlterPartitionRequest;
        let mut controller = active_controller();
        let epochs = [
            start_node(&mut controller, 1),
            start_node(&mut controller, 2),
        ];
        let placed = ControllerRequest::CreateTopics {
            topics: vec![TopicCreation {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: BTreeMap::from([(0, vec![1, 2])]),
                configs: BTreeMap::new(),
            }],
            validate_only: false,
        };
        assert_eq!(ask(&mut controller, placed).topics[0].error_code, 0);
        let topic_id = controller.image().topic_by_name("t").expect("topic").id;
        let before = controller.image().partition(&topic_id, 0).unwrap().clone();
        assert_eq!((before.leader, before.isr.clone()), (Some(1), vec![1, 2]));
        let shrink = |partition_epoch| ControllerRequest::AlterPartition {
            topic_id,
            partition: 0,
            request: AlterPartitionRequest {
                leader: 1,
                leader_broker_epoch: epochs[0],
                leader_epoch: before.leader_epoch,
                partition_epoch,
                new_isr: vec![1],
                new_isr_broker_epochs: vec![(1, epochs[0])],
            },
        };

        let applied = controller.driver.applied_index();
        let response = ask(&mut controller, shrink(before.partition_epoch));
        assert_eq!(response.error_code, 0);
        assert_eq!(controller.driver.applied_index(), applied + 1, "one entry");
        let after = controller.image().partition(&topic_id, 0).unwrap();
        assert_eq!(after.isr, vec![1]);
        assert_eq!(after.partition_epoch, before.partition_epoch + 1);
        assert_eq!(response.partition, Some(altered(after)));

        // The same change again: answered at once with the current state, nothing proposed.
        let current = after.partition_epoch;
        let (reply, answer) = sync_channel(1);
        let request = shrink(current);
        controller.handle_event(ControllerEvent::Request { request, reply });
        let unchanged = answer.try_recv().expect("answered at once");
        assert_eq!(unchanged.error_code, 0);
        assert_eq!(unchanged.partition, response.partition);
        // A retry at the old partition epoch: INVALID_UPDATE_VERSION, nothing proposed.
        let retry = ask(&mut controller, shrink(before.partition_epoch));
        assert_eq!((retry.error_code, retry.partition), (95, None));
        let unknown = ControllerRequest::AlterPartition {
            topic_id: [9; 16],
            partition: 0,
            request: AlterPartitionRequest {
                leader: 1,
                leader_broker_epoch: epochs[0],
                leader_epoch: 0,
                partition_epoch: 0,
                new_isr: vec![1],
                new_isr_broker_epochs: Vec::new(),
            },
        };
        assert_eq!(
            ask(&mut controller, unknown).error_code,
            100,
            "UNKNOWN_TOPIC_ID"
        );
        assert!(controller.active.as_ref().unwrap().in_flight.is_none());
        assert_eq!(controller.driver.applied_index(), applied + 1);
    }
}
