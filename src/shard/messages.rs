//! Typed messages between shards (over the glommio channel mesh) and their results. All
//! payloads are `Send`: `Bytes` for record data, `Arc` for immutable catalog snapshots.
//! Replies travel back on one-shot channels (glommio wakes tasks from foreign threads).

use crate::group::{GroupState, JoinInput, JoinOutcome, MemberDescription, SyncInput, SyncOutcome};
use crate::metadata::{Catalog, TopicMeta};
use crate::model::{ErrorCode, Offset, TopicPartition};
use crate::security::acl::AclBinding;
use crate::storage::RecordError;
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use super::reply::{Reply, ReplyPayload};

pub enum ShardMessage {
    /// Append to partitions owned by the receiver. The receiver appends in arrival order
    /// (stage 1) before taking its next message, then replies when the acks level is met.
    Produce(ProduceOp),
    Read(ReadOp),
    WaitForData(WaitOp),
    ListOffsets(ListOffsetsOp),
    /// OffsetForLeaderEpoch: end offsets of leader epochs from the receiver's logs.
    EpochEnds(EpochEndsOp),
    /// Catalog changes; only shard 0 (the controller) receives these.
    Controller(ControllerOp),
    /// A new catalog snapshot: open logs for new partitions this shard owns, remove deleted.
    ApplyCatalog(Arc<Catalog>, Reply<()>),
    /// New dynamic broker configs: re-derive every open log's settings.
    ApplyDynamicConfigs(Arc<crate::metadata::DynamicBrokerConfigs>, Reply<()>),
    /// Consumer-group work for a group whose `__consumer_offsets` partition this shard owns
    /// (ListGroups goes to every shard).
    Group(GroupOp),
    DeleteRecords(DeleteRecordsOp),
    LogSizes(LogSizesOp),
    Producers(ProducersOp),
    /// A copy of the receiver's counters for `/metrics`.
    Metrics(Reply<super::metrics::MetricsSnapshot>),
    /// Transaction-coordinator work for a transactional id whose `__transaction_state`
    /// partition this shard owns (ListTransactions goes to every shard).
    Txn(TxnOp),
    /// Append transaction markers to partitions this shard owns.
    WriteMarkers(WriteMarkersOp),
    /// Transaction verification (KIP-890 part 1): tickets for partitions this shard owns.
    AllowTxn(AllowTxnOp),
    /// Cluster mode: verification by a transaction coordinator on another broker, for
    /// partitions this shard owns (see `producer_checks`).
    TxnVerification(VerificationOp),
    /// The answer to a request this shard sent (see `reply`).
    Reply {
        id: u64,
        payload: ReplyPayload,
    },
}

/// One transaction marker: the COMMIT (`commit`) or ABORT control batch of a producer's
/// transaction, as WriteTxnMarkers names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Append `marker` to each partition, synced and (cluster mode) replicated to the ISR.
pub struct WriteMarkersOp {
    pub marker: Marker,
    pub partitions: Vec<TopicPartition>,
    pub reply: Reply<Vec<(TopicPartition, ErrorCode)>>,
}

/// Place tickets on partitions the receiver owns: `producer_id` at `epoch` may start a
/// transaction on each (the coordinator verified that they are in its transaction).
pub struct AllowTxnOp {
    pub producer_id: i64,
    pub epoch: i16,
    pub partitions: Vec<TopicPartition>,
    pub reply: Reply<()>,
}

/// The partition side of a verification asked of another broker's transaction coordinator:
/// begun before the question is sent, finished (tickets placed) on a success answer.
pub enum VerificationOp {
    /// One token per partition (`None`: no log of it here).
    Begin {
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
        reply: Reply<Vec<(TopicPartition, Option<u64>)>>,
    },
    /// Whether each ticket was placed (false: a marker came since the verification began).
    Finish {
        producer_id: i64,
        epoch: i16,
        tokens: Vec<(TopicPartition, u64)>,
        reply: Reply<Vec<(TopicPartition, bool)>>,
    },
}

#[derive(Debug, Clone)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub error: ErrorCode,
    pub state: &'static str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

pub enum TxnOp {
    Init {
        transactional_id: String,
        timeout_ms: i32,
        /// (producer id, epoch) the client presented (KIP-360), or (-1, -1).
        presented: (i64, i16),
        reply: Reply<Result<(i64, i16), ErrorCode>>,
    },
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        fenced_code: ErrorCode,
        reply: Reply<ErrorCode>,
    },
    End {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        fenced_code: ErrorCode,
        reply: Reply<ErrorCode>,
    },
    Describe {
        transactional_id: String,
        reply: Reply<TxnDescription>,
    },
    /// KIP-890 part 1: may this producer write transactional data to these partitions
    /// now? With `place_tickets`, places the tickets before answering (see
    /// `producer_checks`); without (a partition leader on another broker asked), only
    /// answers.
    Verify {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        place_tickets: bool,
        reply: Reply<Vec<(TopicPartition, ErrorCode)>>,
    },
    /// The transactions this shard coordinates, with COORDINATOR_LOAD_IN_PROGRESS while one
    /// of its `__transaction_state` partitions loads (the list is then partial).
    List {
        reply: Reply<(Vec<TxnDescription>, ErrorCode)>,
    },
}

/// One partition's commit in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// One partition's answer in an OffsetFetch.
#[derive(Debug, Clone)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error: ErrorCode,
}

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's name of the group's state (`Stable`, `Reconciling`, ...).
    pub state: &'static str,
    /// `classic` or `consumer` (ListGroups v5 `GroupType`).
    pub group_type: &'static str,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub error: ErrorCode,
    /// No classic group of that id: Kafka's reason ("Group … not found." or "Group … is not
    /// a classic group."), which DescribeGroups v6+ answers with GROUP_ID_NOT_FOUND (older
    /// versions read such a group as Dead with no error).
    pub not_found: Option<String>,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

pub enum GroupOp {
    Join {
        group_id: String,
        input: JoinInput,
        reply: Reply<JoinOutcome>,
    },
    Sync {
        group_id: String,
        input: SyncInput,
        reply: Reply<SyncOutcome>,
    },
    /// ConsumerGroupHeartbeat (KIP-848 `consumer` protocol).
    ConsumerHeartbeat {
        group_id: String,
        input: crate::group::consumer::HeartbeatInput,
        reply: Reply<crate::group::consumer::HeartbeatOutcome>,
    },
    /// ConsumerGroupDescribe: `None` when there is no consumer group of that id.
    ConsumerDescribe {
        group_id: String,
        reply: Reply<Result<crate::group::consumer::ConsumerGroupDescription, ErrorCode>>,
    },
    Heartbeat {
        group_id: String,
        member_id: String,
        group_instance_id: Option<String>,
        generation_id: i32,
        reply: Reply<ErrorCode>,
    },
    Leave {
        group_id: String,
        members: Vec<(String, Option<String>)>,
        reply: Reply<Result<Vec<ErrorCode>, ErrorCode>>,
    },
    CommitOffsets {
        group_id: String,
        member_id: String,
        group_instance_id: Option<String>,
        generation_id: i32,
        /// The OffsetCommit version (consumer-protocol members must use v9+).
        api_version: i16,
        entries: Vec<OffsetCommitEntry>,
        reply: Reply<Vec<ErrorCode>>,
    },
    /// `partitions: None` means every committed partition of the group.
    FetchOffsets {
        group_id: String,
        /// OffsetFetch v9+: the member id and epoch a consumer-protocol member fetches
        /// with (checked as Kafka's `ConsumerGroup.validateOffsetFetch`); `(None, -1)` for
        /// admin tools and older versions.
        member: (Option<String>, i32),
        partitions: Option<Vec<(String, i32)>>,
        /// OffsetFetch v7+: flag partitions with pending transactional offsets.
        require_stable: bool,
        reply: Reply<Result<Vec<FetchedOffset>, ErrorCode>>,
    },
    Describe {
        group_id: String,
        reply: Reply<GroupDescription>,
    },
    /// The groups this shard coordinates, and COORDINATOR_LOAD_IN_PROGRESS while one of its
    /// `__consumer_offsets` partitions is still loading (its groups are not listed yet).
    List {
        reply: Reply<(Vec<GroupListing>, ErrorCode)>,
    },
    Delete {
        group_id: String,
        reply: Reply<ErrorCode>,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
        reply: Reply<Result<Vec<ErrorCode>, ErrorCode>>,
    },
    /// TxnOffsetCommit: offsets that become visible when the transaction commits.
    TxnCommitOffsets {
        group_id: String,
        producer_id: i64,
        producer_epoch: i16,
        member_id: String,
        group_instance_id: Option<String>,
        generation_id: i32,
        entries: Vec<OffsetCommitEntry>,
        reply: Reply<Vec<ErrorCode>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

pub struct ProducePartition {
    pub partition: TopicPartition,
    /// The partition's region of the request frame, owned: storage stamps it in place.
    pub records: BytesMut,
}

#[derive(Debug, Clone)]
pub struct ProducePartitionResult {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    pub error_message: Option<String>,
    /// The records that caused `error` (KIP-467), by index in the batch.
    pub record_errors: Vec<RecordError>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

pub struct ProduceOp {
    pub partitions: Vec<ProducePartition>,
    pub acks: Acks,
    /// When the request's handling started (the produce `queue_wait` stage starts here).
    pub received: std::time::Instant,
    pub reply: Reply<Vec<ProducePartitionResult>>,
}

#[derive(Debug, Clone)]
pub struct ReadPartition {
    pub partition: TopicPartition,
    pub offset: Offset,
    pub max_bytes: usize,
    pub read_committed: bool,
    /// A follower's replica fetch (cluster mode): read up to the log end, and record the
    /// follower's position at the leader first. `None` for consumers.
    pub replica: Option<ReplicaFetch>,
}

/// Who sends a replica fetch, as its Fetch request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFetch {
    pub replica_id: i32,
    /// The follower's broker epoch (Fetch v15+ `ReplicaEpoch`, KIP-903); -1 before v15.
    pub broker_epoch: i64,
    pub current_leader_epoch: i32,
    /// Where the follower's log starts (Fetch `LogStartOffset`); -1 when it does not say.
    pub log_start_offset: i64,
}

/// Which end of a partition a long poll waits to move past its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The high watermark (read_uncommitted consumers).
    HighWatermark,
    /// The last stable offset (read_committed consumers).
    LastStable,
    /// The log end (a follower's replica fetch).
    LogEnd,
}

#[derive(Debug, Clone)]
pub struct ReadPartitionResult {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub batches: Vec<Bytes>,
    /// Bytes of `batches` read from disk (fresh memory; the rest is shared with the cache).
    pub disk_bytes: usize,
    /// More data was there, but reading it needed more disk bytes than allowed.
    pub disk_limited: bool,
    /// read_committed only: (producer id, first offset) of aborted transactions overlapping
    /// the returned batches. None for read_uncommitted.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
}

impl ReadPartitionResult {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

/// What one shard's part of a fetch may read, all its partitions together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    /// Record bytes at most (KIP-74's first batch aside).
    pub total_bytes_max: usize,
    /// Record bytes read from disk at most (they take fresh memory; cached ones do not).
    pub disk_bytes_max: usize,
    /// The first partition with data returns its first batch even if it is larger (KIP-74).
    pub min_one_batch: bool,
}

/// Reads `partitions` in order within `budget`.
pub struct ReadOp {
    pub partitions: Vec<ReadPartition>,
    pub budget: ReadBudget,
    pub reply: Reply<Vec<ReadPartitionResult>>,
}

/// Completes when any listed partition has data past its offset (past the last stable
/// offset for read_committed), or after `timeout`.
pub struct WaitOp {
    pub partitions: Vec<(TopicPartition, Offset, WaitEnd)>,
    pub timeout: Duration,
    pub reply: Reply<()>,
}

#[derive(Debug, Clone)]
pub struct ListOffsetsPartition {
    pub partition: TopicPartition,
    /// -1 latest, -2 earliest, -3 max timestamp, -4 earliest local, -5 latest tiered, or
    /// a timestamp (zero or more).
    pub timestamp: i64,
    pub read_committed: bool,
}

#[derive(Debug, Clone)]
pub struct ListOffsetsResult {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    pub timestamp: i64,
    pub offset: i64,
}

pub struct ListOffsetsOp {
    pub partitions: Vec<ListOffsetsPartition>,
    pub reply: Reply<Vec<ListOffsetsResult>>,
}

/// One partition's answer in an OffsetForLeaderEpoch: the largest leader epoch <= the
/// requested one and where it ends (the next epoch's start offset, or the log end offset);
/// both -1 (Kafka's UNDEFINED) when the log has no such epoch.
#[derive(Debug, Clone)]
pub struct EpochEndResult {
    pub partition: TopicPartition,
    /// The leader epoch asked about.
    pub requested_epoch: i32,
    pub error: ErrorCode,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

/// Each partition with the leader epoch asked about.
pub struct EpochEndsOp {
    pub partitions: Vec<(TopicPartition, i32)>,
    pub reply: Reply<Vec<EpochEndResult>>,
}

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// Result of one topic in a CreateTopics/DeleteTopics call.
#[derive(Debug, Clone)]
pub struct TopicOutcome {
    pub name: String,
    pub error: ErrorCode,
    pub message: Option<String>,
    pub topic: Option<TopicMeta>,
}

/// See `ControllerOp::AlterBrokerConfigs` (and `AlterGroupConfigs`, which edits a group's
/// override set the same way).
pub type BrokerConfigUpdate =
    Box<dyn FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> + Send>;

/// See `ControllerOp::AlterAcls`: the new ACL set, and the bindings removed per filter.
pub type AclUpdate =
    Box<dyn FnOnce(&[AclBinding]) -> (Vec<AclBinding>, Vec<Vec<AclBinding>>) + Send>;

/// What an ACL change answers: the bindings removed per filter, or why it failed.
pub type AclChangeOutcome = Result<Vec<Vec<AclBinding>>, (ErrorCode, String)>;

pub enum ControllerOp {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    DeleteTopics {
        names: Vec<String>,
        reply: Reply<Vec<TopicOutcome>>,
    },
    AllocateProducerId {
        reply: Reply<Result<i64, ErrorCode>>,
    },
    /// Every producer id below the answer was (or may have been) handed out.
    ProducerIdBound { reply: Reply<i64> },
    /// Replaces a topic's config set (AlterConfigs and the result of IncrementalAlterConfigs).
    AlterTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
        reply: Reply<TopicOutcome>,
    },
    /// Changes one dynamic broker-config entity's set (AlterConfigs replaces it,
    /// IncrementalAlterConfigs edits it): `update` maps the entity's current set to the new
    /// one, or to the refusal message; it runs on the controller under its lock, so two
    /// concurrent edits cannot lose one another.
    AlterBrokerConfigs {
        entity: crate::metadata::BrokerEntity,
        update: BrokerConfigUpdate,
        validate_only: bool,
        reply: Reply<(ErrorCode, Option<String>)>,
    },
    /// Changes a group's config overrides (GROUP resource) the way `AlterBrokerConfigs`
    /// changes a broker entity's: `update` runs under the controller lock; the result is
    /// validated against the broker's `[group]` bounds, saved in the catalog and broadcast.
    AlterGroupConfigs {
        group: String,
        update: BrokerConfigUpdate,
        validate_only: bool,
        reply: Reply<(ErrorCode, Option<String>)>,
    },
    /// Changes the ACL set (CreateAcls, DeleteAcls): `update` maps the current set to the
    /// new one and what it removed per DeleteAcls filter; it runs under the controller lock;
    /// the result is saved in the catalog and broadcast before the answer.
    AlterAcls {
        update: AclUpdate,
        reply: Reply<AclChangeOutcome>,
    },
    /// Raises a topic's partition count (never lowers it).
    CreatePartitions {
        topic: String,
        count: i32,
        validate_only: bool,
        reply: Reply<TopicOutcome>,
    },
}

/// DeleteRecords on owned partitions: move each log start up to the offset
/// (-1: the high watermark). Results: the new low watermark or an error.
pub struct DeleteRecordsOp {
    pub partitions: Vec<(TopicPartition, i64)>,
    /// How long a replicated partition's leader waits for its followers' log starts.
    pub timeout: std::time::Duration,
    pub reply: Reply<Vec<(TopicPartition, Result<i64, ErrorCode>)>>,
}

/// Producer states of owned partitions (DescribeProducers).
pub struct ProducersOp {
    pub partitions: Vec<TopicPartition>,
    pub reply: Reply<Vec<(TopicPartition, Option<Vec<crate::storage::ProducerInfo>>)>>,
}

/// Sizes of this shard's partition logs, bytes (DescribeLogDirs).
pub struct LogSizesOp {
    pub reply: Reply<Vec<(TopicPartition, u64)>>,
}
