//! A simulated broker hosting one replica: an in-memory log with a synced prefix, the
//! leader-epoch cache, and the real `PartitionLeader` / `PartitionFollower` driven by the
//! messages it receives (the shell a real broker's shard plays).

use super::{Bugs, CONTROLLER, FetchAnswer, Message, NodeId, Record};
use crate::cluster::image::PartitionState;
use crate::cluster::test_rng::Rng;
use crate::model::ErrorCode;
use crate::model::leader_epochs::LeaderEpochCache;
use crate::replication::check_leader_epoch;
use crate::replication::follower::{FollowerRequest, LocalLog, PartitionFollower};
use crate::replication::leader::{
    LeaderSettings, MetadataOutcome, PartitionLeader, diverging_epoch,
};

const HEARTBEAT_MS: i64 = 100;
const FOLLOWER_RESEND_MS: i64 = 50;
const FETCH_MAX_RECORDS: usize = 5;
/// An acks=all produce not acknowledged within this long fails (the client retries).
const PRODUCE_TIMEOUT_MS: i64 = 1_000;

/// What happened on a broker that the checks must see.
#[derive(Debug, Clone)]
pub(super) enum Event {
    BecameLeader { epoch: i32 },
    Acked(Vec<Record>),
    Truncated { removed: usize },
}

struct PendingProduce {
    records: Vec<Record>,
    deadline_ms: i64,
}

enum Role {
    Idle,
    Leader {
        leader: Box<PartitionLeader>,
        pending: Vec<PendingProduce>,
    },
    Follower {
        follower: PartitionFollower,
        last_sent_ms: i64,
    },
}

type Outbox = Vec<(NodeId, NodeId, Message)>;

pub(super) struct SimBroker {
    id: NodeId,
    settings: LeaderSettings,
    bugs: Bugs,
    up: bool,
    incarnation: u64,
    stopped_cleanly: bool,
    broker_epoch: Option<i64>,
    /// Partition updates decided before this incarnation registered are ignored (a broker
    /// acts on metadata only once it has caught up past its registration, as in KRaft).
    min_partition_epoch: i32,
    known: Option<PartitionState>,
    log: Vec<Record>,
    synced: usize,
    epochs: LeaderEpochCache,
    /// Offsets below this were compared with the committed history (`checks`); lowered when
    /// the log loses records.
    pub(super) verified_prefix: i64,
    /// The high watermark while neither leading nor following.
    idle_high_watermark: i64,
    role: Role,
    last_control_ms: i64,
}

impl SimBroker {
    pub(super) fn new(id: NodeId, settings: LeaderSettings, bugs: Bugs) -> SimBroker {
        SimBroker {
            id,
            settings,
            bugs,
            up: false,
            incarnation: 0,
            stopped_cleanly: true,
            broker_epoch: None,
            min_partition_epoch: 0,
            known: None,
            log: Vec::new(),
            synced: 0,
            epochs: LeaderEpochCache::default(),
            verified_prefix: 0,
            idle_high_watermark: 0,
            role: Role::Idle,
            last_control_ms: i64::MIN / 2,
        }
    }

    pub(super) fn id(&self) -> NodeId {
        self.id
    }

    pub(super) fn is_up(&self) -> bool {
        self.up
    }

    pub(super) fn records(&self) -> &[Record] {
        &self.log
    }

    pub(super) fn believes_leader(&self) -> bool {
        self.up && matches!(self.role, Role::Leader { .. })
    }

    pub(super) fn leader_epoch(&self) -> Option<i32> {
        match &self.role {
            Role::Leader { leader, .. } => Some(leader.leader_epoch()),
            _ => None,
        }
    }

    pub(super) fn high_watermark(&self) -> i64 {
        match &self.role {
            Role::Idle => self.idle_high_watermark,
            Role::Leader { leader, .. } => leader.high_watermark(),
            Role::Follower { follower, .. } => follower.high_watermark(),
        }
    }

    fn log_end(&self) -> i64 {
        self.log.len() as i64
    }

    fn drop_role(&mut self) {
        self.idle_high_watermark = self.high_watermark().min(self.log_end());
        self.role = Role::Idle;
    }

    /// kill -9 (the log survives) or power loss (only the synced prefix survives).
    pub(super) fn crash(&mut self, power_loss: bool, _now: i64) {
        self.drop_role();
        self.up = false;
        self.stopped_cleanly = false;
        self.broker_epoch = None;
        self.known = None;
        if power_loss {
            self.log.truncate(self.synced);
            let mut epochs = LeaderEpochCache::default();
            for record in &self.log {
                epochs.assign(record.epoch, record.offset);
            }
            // Leader epochs assigned at election with no record yet are lost too.
            self.epochs = epochs;
            self.idle_high_watermark = self.idle_high_watermark.min(self.log_end());
            self.verified_prefix = self.verified_prefix.min(self.log_end());
        }
    }

    /// Controlled shutdown: everything is synced, the next registration is clean, if this
    /// incarnation registered. One that never did (its registration never reached the
    /// controller) stays unclean: the controller's last incarnation of this broker is the
    /// one before, which may have lost unsynced records (Kafka binds a clean shutdown to the
    /// registered broker epoch, KIP-966).
    pub(super) fn stop_cleanly(&mut self, now: i64) {
        let registered = self.broker_epoch.is_some();
        let was_clean = self.stopped_cleanly;
        self.crash(false, now);
        self.synced = self.log.len();
        self.stopped_cleanly = registered || was_clean;
    }

    pub(super) fn restart(&mut self, now: i64, outbox: &mut Outbox) {
        self.up = true;
        self.incarnation += 1;
        self.broker_epoch = None;
        self.send_register(now, outbox);
    }

    fn send_register(&mut self, now: i64, outbox: &mut Outbox) {
        self.last_control_ms = now;
        let message = Message::Register {
            incarnation: self.incarnation,
            clean: self.stopped_cleanly,
        };
        outbox.push((self.id, CONTROLLER, message));
    }

    pub(super) fn tick(&mut self, now: i64, rng: &mut Rng, outbox: &mut Outbox) {
        if !self.up {
            return;
        }
        if now - self.last_control_ms >= HEARTBEAT_MS {
            match self.broker_epoch {
                None => self.send_register(now, outbox),
                Some(broker_epoch) => {
                    self.last_control_ms = now;
                    outbox.push((self.id, CONTROLLER, Message::Heartbeat { broker_epoch }));
                }
            }
        }
        if rng.chance(10) {
            self.synced = self.log.len();
        }
        let id = self.id;
        let broker_epoch = self.broker_epoch.unwrap_or(-1);
        match &mut self.role {
            Role::Idle => {}
            Role::Leader { leader, pending } => {
                if let Some(proposal) = leader.poll_isr_change(now) {
                    let message = Message::AlterPartition {
                        broker_epoch,
                        proposal,
                    };
                    outbox.push((id, CONTROLLER, message));
                }
                pending.retain(|produce| produce.deadline_ms > now);
            }
            Role::Follower { last_sent_ms, .. } => {
                if now - *last_sent_ms >= FOLLOWER_RESEND_MS {
                    self.send_follower_request(now, outbox);
                }
            }
        }
    }

    fn local_log(&self) -> LocalLog<'_> {
        LocalLog {
            epochs: &self.epochs,
            log_end_offset: self.log_end(),
        }
    }

    fn send_follower_request(&mut self, now: i64, outbox: &mut Outbox) {
        let log = self.local_log();
        let Role::Follower { follower, .. } = &self.role else {
            return;
        };
        let to = follower.leader();
        let message = match follower.next_request(log) {
            FollowerRequest::OffsetsForLeaderEpoch {
                current_leader_epoch,
                leader_epoch,
            } => Message::EpochRequest {
                current_leader_epoch,
                leader_epoch,
            },
            FollowerRequest::Fetch {
                current_leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            } => Message::FetchRequest {
                broker_epoch: self.broker_epoch.unwrap_or(-1),
                current_leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            },
        };
        if let Role::Follower { last_sent_ms, .. } = &mut self.role {
            *last_sent_ms = now;
        }
        outbox.push((self.id, to, message));
    }

    /// An acks=all produce of `ids` (the leader assigns offsets and its epoch).
    pub(super) fn produce(
        &mut self,
        ids: &[u64],
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<(), ErrorCode> {
        let log_end = self.log_end();
        let Role::Leader { leader, pending } = &mut self.role else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        leader.check_acks_all()?;
        let epoch = leader.leader_epoch();
        let records: Vec<Record> = ids
            .iter()
            .enumerate()
            .map(|(index, &id)| Record {
                offset: log_end + index as i64,
                epoch,
                id,
            })
            .collect();
        self.log.extend_from_slice(&records);
        self.epochs.assign(epoch, log_end);
        let new_end = self.log.len() as i64;
        leader.appended(new_end);
        if self.bugs.ack_on_append {
            events.push(Event::Acked(records));
        } else {
            pending.push(PendingProduce {
                records,
                deadline_ms: now + PRODUCE_TIMEOUT_MS,
            });
        }
        self.complete_acks(events);
        Ok(())
    }

    fn complete_acks(&mut self, events: &mut Vec<Event>) {
        if let Role::Leader { leader, pending } = &mut self.role {
            let mut index = 0;
            while index < pending.len() {
                let last = pending[index].records.last().map_or(-1, |r| r.offset);
                if leader.acks_all_complete(last) {
                    let done = pending.remove(index);
                    events.push(Event::Acked(done.records));
                } else {
                    index += 1;
                }
            }
        }
    }

    pub(super) fn receive(
        &mut self,
        from: NodeId,
        message: Message,
        now: i64,
        outbox: &mut Outbox,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.up {
            return events;
        }
        match message {
            Message::Registered {
                incarnation,
                broker_epoch,
                partition_epoch,
            } if incarnation == self.incarnation && self.broker_epoch.is_none() => {
                self.broker_epoch = Some(broker_epoch);
                self.min_partition_epoch = partition_epoch;
                self.last_control_ms = i64::MIN / 2;
            }
            Message::Metadata(state) => self.metadata(state, now, outbox, &mut events),
            Message::AlterPartitionAnswer { proposal, answer } => {
                if let Role::Leader { leader, .. } = &mut self.role {
                    let (outcome, _) = leader.isr_change_answered(&proposal, answer);
                    if outcome == MetadataOutcome::Resigned {
                        self.drop_role();
                    }
                }
                self.complete_acks(&mut events);
            }
            Message::EpochRequest {
                current_leader_epoch,
                leader_epoch,
            } => {
                let log_end = self.log_end();
                let answer = match &self.role {
                    Role::Leader { leader, .. } => {
                        check_leader_epoch(current_leader_epoch, leader.leader_epoch())
                            .map(|()| self.epochs.epoch_end(leader_epoch, log_end))
                    }
                    _ => Err(ErrorCode::NotLeaderOrFollower),
                };
                let message = Message::EpochAnswer {
                    current_leader_epoch,
                    asked: leader_epoch,
                    answer,
                };
                outbox.push((self.id, from, message));
            }
            Message::FetchRequest {
                broker_epoch,
                current_leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            } => {
                let answer = self.answer_fetch(
                    (from, broker_epoch),
                    current_leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                    now,
                );
                self.complete_acks(&mut events);
                let message = Message::FetchAnswer {
                    last_fetched_epoch,
                    current_leader_epoch,
                    fetch_offset,
                    answer,
                };
                outbox.push((self.id, from, message));
            }
            Message::EpochAnswer {
                current_leader_epoch,
                asked,
                answer: Ok(answer),
            } => {
                let log = LocalLog {
                    epochs: &self.epochs,
                    log_end_offset: self.log.len() as i64,
                };
                if let Role::Follower { follower, .. } = &mut self.role
                    && let Some(to) =
                        follower.epoch_answered(current_leader_epoch, asked, answer, log)
                {
                    self.truncate(to, &mut events);
                }
                self.send_follower_request(now, outbox);
            }
            Message::FetchAnswer {
                last_fetched_epoch,
                current_leader_epoch,
                fetch_offset,
                answer,
            } => self.fetch_answered(
                FollowerRequest::Fetch {
                    current_leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                },
                answer,
                now,
                outbox,
                &mut events,
            ),
            _ => {}
        }
        events
    }

    fn answer_fetch(
        &mut self,
        (from, broker_epoch): (NodeId, i64),
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: Option<i32>,
        now: i64,
    ) -> Result<FetchAnswer, ErrorCode> {
        let log_end = self.log_end();
        let Role::Leader { leader, .. } = &mut self.role else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        check_leader_epoch(current_leader_epoch, leader.leader_epoch())?;
        let divergence = if self.bugs.no_epoch_truncation {
            None
        } else {
            diverging_epoch(&self.epochs, log_end, fetch_offset, last_fetched_epoch)
        };
        if let Some(end) = divergence {
            return Ok(FetchAnswer::Diverging(end));
        }
        leader.follower_fetched(from, broker_epoch, current_leader_epoch, fetch_offset, now)?;
        let start = fetch_offset as usize;
        let end = (start + FETCH_MAX_RECORDS).min(self.log.len());
        Ok(FetchAnswer::Records {
            records: self.log[start..end].to_vec(),
            high_watermark: leader.high_watermark(),
        })
    }

    fn fetch_answered(
        &mut self,
        request: FollowerRequest,
        answer: Result<FetchAnswer, ErrorCode>,
        now: i64,
        outbox: &mut Outbox,
        events: &mut Vec<Event>,
    ) {
        let log = LocalLog {
            epochs: &self.epochs,
            log_end_offset: self.log.len() as i64,
        };
        let Role::Follower { follower, .. } = &mut self.role else {
            return;
        };
        match answer {
            Ok(FetchAnswer::Records {
                records,
                high_watermark,
            }) => {
                if !follower.accepts_fetch_answer(request, log) {
                    return;
                }
                for record in records {
                    assert_eq!(record.offset, self.log.len() as i64, "fetch is contiguous");
                    self.epochs.assign(record.epoch, record.offset);
                    self.log.push(record);
                }
                let log_end = self.log.len() as i64;
                follower.fetched(high_watermark, log_end);
            }
            Ok(FetchAnswer::Diverging(end)) => {
                if let Some(to) = follower.diverged(request, end, log) {
                    self.truncate(to, events);
                }
            }
            Err(ErrorCode::OffsetOutOfRange) if follower.accepts_fetch_answer(request, log) => {
                // This log is ahead of the leader's: find where they part again.
                let (leader, epoch) = (follower.leader(), follower.leader_epoch());
                let high_watermark = follower.high_watermark();
                *follower = PartitionFollower::new(leader, epoch, log, high_watermark);
            }
            Err(_) => return,
        }
        self.send_follower_request(now, outbox);
    }

    fn truncate(&mut self, to: i64, events: &mut Vec<Event>) {
        let to = to.clamp(0, self.log_end());
        let removed = (self.log_end() - to) as usize;
        if !self.bugs.no_epoch_truncation {
            self.log.truncate(to as usize);
            self.synced = self.synced.min(self.log.len());
            self.epochs.truncate_from(to);
            self.verified_prefix = self.verified_prefix.min(to);
        }
        let log_end = self.log_end();
        if let Role::Follower { follower, .. } = &mut self.role {
            follower.truncated(log_end);
        }
        if removed > 0 {
            events.push(Event::Truncated { removed });
        }
    }

    fn metadata(
        &mut self,
        state: PartitionState,
        now: i64,
        outbox: &mut Outbox,
        events: &mut Vec<Event>,
    ) {
        if self.broker_epoch.is_none() || state.partition_epoch < self.min_partition_epoch {
            return;
        }
        if self
            .known
            .as_ref()
            .is_some_and(|known| known.partition_epoch >= state.partition_epoch)
        {
            return;
        }
        self.known = Some(state.clone());
        if !state.replicas.contains(&self.id) {
            // A reassignment removed this replica: no role (its log stays as it is).
            self.drop_role();
            return;
        }
        match state.leader {
            Some(leader_id) if leader_id == self.id => {
                if let Role::Leader { leader, .. } = &mut self.role
                    && leader.leader_epoch() == state.leader_epoch
                {
                    let (outcome, _) = leader.metadata_changed(state);
                    if outcome == MetadataOutcome::Resigned {
                        self.drop_role();
                    }
                    self.complete_acks(events);
                    return;
                }
                let high_watermark = self.high_watermark();
                let log_end = self.log_end();
                let epoch = state.leader_epoch;
                self.epochs.assign(epoch, log_end);
                match PartitionLeader::new(
                    self.id,
                    state,
                    log_end,
                    high_watermark,
                    self.settings,
                    now,
                ) {
                    Ok(leader) => {
                        self.role = Role::Leader {
                            leader: Box::new(leader),
                            pending: Vec::new(),
                        };
                        events.push(Event::BecameLeader { epoch });
                    }
                    Err(_) => self.drop_role(),
                }
            }
            Some(leader_id) => {
                if let Role::Follower { follower, .. } = &self.role
                    && follower.leader() == leader_id
                    && follower.leader_epoch() == state.leader_epoch
                {
                    return;
                }
                let high_watermark = self.high_watermark();
                self.drop_role();
                // Half the followers truncate with OffsetsForLeaderEpoch first, half rely on
                // the leader's fetch-time divergence check (both are Kafka's).
                let start = if (self.id + state.leader_epoch) % 2 == 0 {
                    PartitionFollower::new
                } else {
                    PartitionFollower::new_fetching
                };
                let follower = start(
                    leader_id,
                    state.leader_epoch,
                    self.local_log(),
                    high_watermark,
                );
                self.role = Role::Follower {
                    follower,
                    last_sent_ms: now,
                };
                self.send_follower_request(now, outbox);
            }
            None => self.drop_role(),
        }
    }
}
