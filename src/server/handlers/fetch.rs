//! Fetch (key 1): whole stored batches from the owning shards, sent without copying.
//! Long poll: if fewer than `min_bytes` are available, wait (woken by appends on any
//! requested partition) until `max_wait_ms` (capped by config), then answer — a fetch always
//! answers by its deadline. Fetch sessions (KIP-227) are not kept: a full fetch is answered
//! with session id 0, which tells clients to keep sending full fetches; an incremental fetch
//! gets FETCH_SESSION_ID_NOT_FOUND.
//!
//! Memory: a response never holds more record bytes than `connection_response_bytes_max`
//! and `fetch_response_bytes_max` allow (plus the first batch, KIP-74); reads stop at that
//! limit, in request order, as Kafka's do. Batches still in memory (the batch cache) are
//! shared, not copied, and cost nothing more; batches read from disk take fresh memory, so
//! before reading the fetch takes an allowance from the shard's response budget (what is
//! free, without waiting), reads from disk at most that much, keeps the bytes it read
//! reserved until the writer has sent them, and gives the rest back. A fetch whose data is
//! on disk while the budget is used up waits for room (or answers at its deadline); a long
//! poll holds nothing while it waits, and it waits for data past what it has already seen,
//! so visible data below `min_bytes` does not make it spin.
//!
//! KIP-320 (v9+): a partition whose `current_leader_epoch` is not the partition's (as
//! Metadata reports it; -1 is not checked) is answered FENCED_LEADER_EPOCH (older) or
//! UNKNOWN_LEADER_EPOCH (newer) without records, before any read.

use super::{check_current_leader_epoch, resolve_topic};
use crate::model::{ErrorCode, Offset, ShardId, TopicPartition};
use crate::protocol::codec::encode_response_header;
use crate::protocol::fetch_response::{
    AbortedTransaction, FetchPartitionResponse, FetchResponseBody, FetchTopicResponse,
    encode_fetch_response,
};
use crate::quorum::view::led_elsewhere;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::authorize;
use crate::server::{HandlerError, RequestContext, ResponseFrame};
use crate::shard::memory::Reservation;
use crate::shard::messages::{ReplicaFetch, WaitEnd};
use crate::shard::metrics::{DelayReason, FetchStage};
use crate::shard::{ReadBudget, ReadPartition, ReadPartitionResult, Shard};
use bytes::BytesMut;
use futures::future::{LocalBoxFuture, select, select_all};
use kafka_protocol::messages::{FetchRequest, RequestKind};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

const READ_COMMITTED: i8 = 1;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::Fetch(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let (body, memory) = fetch(&shard, &context, request).await?;
        let connection_bytes = memory.as_ref().map_or(0, DiskAllowance::bytes);
        let mut header = BytesMut::new();
        encode_response_header(
            &mut header,
            context.api,
            context.version,
            context.correlation_id,
        )?;
        let encode_started = Instant::now();
        let frame = encode_fetch_response(context.version, &header, &body);
        let encode_seconds = encode_started.elapsed().as_secs_f64();
        shard
            .metrics
            .fetch_stage(FetchStage::ResponseEncode, encode_seconds);
        Ok(Some(ResponseFrame {
            chunks: frame.chunks,
            memory: memory
                .map(DiskAllowance::into_reservations)
                .unwrap_or_default(),
            connection_bytes,
        }))
    })
}

/// One requested partition, in request order.
struct Slot {
    topic_index: usize,
    /// None: the topic or partition is unknown; answered with `error`.
    read: Option<ReadPartition>,
    /// A long poll waits for data past this offset (see `remember_visible_ends`).
    seen_end: Offset,
    error: ErrorCode,
    partition_index: i32,
}

async fn fetch(
    shard: &Rc<Shard>,
    context: &RequestContext,
    request: FetchRequest,
) -> Result<(FetchResponseBody, Option<DiskAllowance>), HandlerError> {
    let mut body = FetchResponseBody::default();
    if context.version >= 7 && request.session_id != 0 {
        body.error_code = ErrorCode::FetchSessionIdNotFound.code();
        return Ok((body, None));
    }
    let server = &shard.config.server;
    let max_wait =
        Duration::from_millis((request.max_wait_ms.max(0) as u64).min(server.fetch_wait_ms_max));
    let limit = (request.max_bytes.max(0) as u64)
        .min(server.fetch_response_bytes_max)
        .min(server.connection_response_bytes_max) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let mut slots = slots_of(shard, context, &request, &mut body);
    // As Kafka, a partition refused for its leader epoch answers at once (the client must
    // refresh its metadata), not at the long poll's deadline.
    let epoch_refused = slots.iter().any(|slot| {
        matches!(
            slot.error,
            ErrorCode::FencedLeaderEpoch | ErrorCode::UnknownLeaderEpoch
        )
    });
    let deadline = Instant::now() + max_wait;
    loop {
        let mut memory = DiskAllowance::take(shard, context, &slots, limit);
        let cap = ReadCap {
            bytes: limit,
            disk_bytes: memory.bytes() as usize,
        };
        let read_started = Instant::now();
        let results = read_all(shard, &slots, cap).await?;
        let read_seconds = read_started.elapsed().as_secs_f64();
        shard.metrics.fetch_stage(FetchStage::Read, read_seconds);
        let available: usize = results.values().map(ReadPartitionResult::bytes).sum();
        let disk_bytes: usize = results.values().map(|r| r.disk_bytes).sum();
        let disk_limited = results.values().any(|r| r.disk_limited);
        let failed = epoch_refused || results.values().any(|r| r.error.is_error());
        // min_bytes = 0 answers at once (as Kafka); a full response answers too.
        let satisfied = available >= min_bytes || available >= limit;
        let now = Instant::now();
        if satisfied || failed || now >= deadline {
            let returned = fill_response(&mut body, std::mem::take(&mut slots), results, limit);
            // Cached batches cost nothing; disk bytes that were read stay reserved.
            memory.hold(disk_bytes.min(returned) as u64);
            shard.metrics.fetched(returned);
            return Ok((body, Some(memory)));
        }
        drop(memory);
        if disk_limited {
            // Data is on disk but there is no memory to read it: wait for room, not spin.
            shard.metrics.delayed(DelayReason::ResponseBudget);
            wait_for_room(shard, context, deadline - now).await;
            let waited = now.elapsed().as_secs_f64();
            shard.metrics.fetch_stage(FetchStage::MemoryWait, waited);
        } else {
            remember_visible_ends(&mut slots, &results);
            wait_for_any(shard, &slots, deadline - now).await?;
            let waited = now.elapsed().as_secs_f64();
            shard.metrics.fetch_stage(FetchStage::Wait, waited);
        }
    }
}

/// Smallest disk allowance a fetch waits for when it needs one (unless it can use less).
const DISK_ALLOWANCE_MIN_BYTES: u64 = 1 << 20;

/// What a fetch may read: record bytes in all, and of them bytes read from disk.
#[derive(Debug, Clone, Copy)]
struct ReadCap {
    bytes: usize,
    disk_bytes: usize,
}

/// Memory for the disk reads of one fetch, equal amounts from the shard's response budget
/// and the connection's.
struct DiskAllowance {
    shard: Reservation,
    connection: Reservation,
}

impl DiskAllowance {
    /// Takes now, without waiting, as much as both budgets have free, up to what the request
    /// could read. Cached batches need none, so a fetch of hot data is served even when the
    /// budgets are used up.
    fn take(shard: &Shard, context: &RequestContext, slots: &[Slot], limit: usize) -> Self {
        let wanted = slots
            .iter()
            .filter_map(|slot| slot.read.as_ref())
            .map(|read| read.max_bytes.min(limit))
            .fold(0usize, usize::saturating_add)
            .min(limit) as u64;
        let connection_budget = &context.connection.response_memory;
        let free = shard
            .response_memory
            .available_bytes()
            .min(connection_budget.available_bytes());
        DiskAllowance {
            shard: shard.response_memory.force(wanted.min(free)),
            connection: connection_budget.force(wanted.min(free)),
        }
    }

    fn bytes(&self) -> u64 {
        self.shard.bytes()
    }

    /// Keeps exactly `bytes` (what was read from disk; the KIP-74 first batch may pass the
    /// allowance: those bytes exist and are held all the same).
    fn hold(&mut self, bytes: u64) {
        self.shard.force_to(bytes);
        self.connection.force_to(bytes);
    }

    fn into_reservations(self) -> Vec<Reservation> {
        vec![self.shard, self.connection]
    }
}

/// Waits until both response budgets have room for a disk read, or `timeout`.
async fn wait_for_room(shard: &Shard, context: &RequestContext, timeout: Duration) {
    let connection_budget = &context.connection.response_memory;
    let budget = if connection_budget.available_bytes() < DISK_ALLOWANCE_MIN_BYTES {
        connection_budget
    } else {
        &shard.response_memory
    };
    let room = Box::pin(budget.room_for(DISK_ALLOWANCE_MIN_BYTES));
    let _ = select(room, Box::pin(glommio::timer::sleep(timeout))).await;
}

/// After a read that did not satisfy min_bytes, the long poll waits for data past what was
/// visible then (the high watermark or last stable offset), not past the fetch offset:
/// otherwise visible-but-too-little data would wake it at once, again and again.
fn remember_visible_ends(slots: &mut [Slot], results: &BTreeMap<usize, ReadPartitionResult>) {
    for (index, slot) in slots.iter_mut().enumerate() {
        let (Some(read), Some(result)) = (slot.read.as_ref(), results.get(&index)) else {
            continue;
        };
        let visible = if read.replica.is_some() {
            // A follower waits for the log end to pass its fetch offset.
            read.offset.value()
        } else if read.read_committed {
            result.last_stable_offset
        } else {
            result.high_watermark
        };
        slot.seen_end = slot.seen_end.max(Offset(visible)).max(read.offset);
    }
}

/// The requested partitions in request order, with topics resolved; fills `body.topics`.
fn slots_of(
    shard: &Shard,
    context: &RequestContext,
    request: &FetchRequest,
    body: &mut FetchResponseBody,
) -> Vec<Slot> {
    let read_committed = request.isolation_level == READ_COMMITTED;
    // A follower's replica fetch (cluster mode) names its broker: v15+ in `ReplicaState`.
    let (replica_id, replica_epoch) = if context.version >= 15 {
        (
            request.replica_state.replica_id.0,
            request.replica_state.replica_epoch,
        )
    } else {
        (request.replica_id.0, -1)
    };
    let catalog = shard.catalog();
    let mut slots = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let name = topic.topic.0.to_string();
        let meta = resolve_topic(&catalog, &name, &topic.topic_id);
        body.topics.push(FetchTopicResponse {
            name: meta.map_or(name.clone(), |m| m.name.clone()),
            topic_id: *topic.topic_id.as_bytes(),
            partitions: Vec::new(),
        });
        // A follower needs CLUSTER_ACTION on the cluster, a consumer READ on the topic.
        let denied = if replica_id >= 0 {
            authorize::cluster(shard, context, AclOperation::ClusterAction).err()
        } else {
            let named = meta.map_or(name.as_str(), |m| m.name.as_str());
            authorize::topic(shard, context, AclOperation::Read, named).err()
        };
        for partition in &topic.partitions {
            let known =
                meta.filter(|m| partition.partition >= 0 && partition.partition < m.partitions);
            let unknown = if context.version >= 13 {
                ErrorCode::UnknownTopicId
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            let node_id = shard.config.server.node_id;
            let (known, unknown) = match known {
                _ if denied.is_some() => (None, denied.unwrap_or(unknown)),
                Some(m)
                    if led_elsewhere(&m.name, &m.id, partition.partition, node_id, m.cluster) =>
                {
                    (None, ErrorCode::NotLeaderOrFollower)
                }
                // KIP-320 (v9+): a cheap compare before anything is read.
                Some(m) => match check_current_leader_epoch(
                    &m.name,
                    partition.partition,
                    partition.current_leader_epoch,
                ) {
                    ErrorCode::None => (Some(m), unknown),
                    refused => (None, refused),
                },
                None => (None, unknown),
            };
            slots.push(Slot {
                topic_index,
                read: known.map(|m| ReadPartition {
                    partition: TopicPartition::new(m.name.as_str(), partition.partition),
                    offset: Offset(partition.fetch_offset),
                    max_bytes: partition.partition_max_bytes.max(0) as usize,
                    read_committed,
                    replica: (replica_id >= 0).then_some(ReplicaFetch {
                        replica_id,
                        broker_epoch: replica_epoch,
                        current_leader_epoch: partition.current_leader_epoch,
                        log_start_offset: partition.log_start_offset,
                    }),
                }),
                seen_end: Offset(partition.fetch_offset),
                error: if known.is_some() {
                    ErrorCode::None
                } else {
                    unknown
                },
                partition_index: partition.partition,
            });
        }
    }
    slots
}

/// Reads every known slot within `cap`. When the partitions together may return more than
/// the cap, they are read in request order, one run of partitions on the same shard after
/// another, each with what the previous left (as Kafka stops at the response limit);
/// otherwise every owning shard is read at once (one mesh round trip each, in parallel),
/// each with a share of the disk allowance in proportion to what it may return.
async fn read_all(
    shard: &Rc<Shard>,
    slots: &[Slot],
    cap: ReadCap,
) -> Result<BTreeMap<usize, ReadPartitionResult>, HandlerError> {
    let demand_of = |read: &ReadPartition| read.max_bytes.min(cap.bytes);
    let demand = slots
        .iter()
        .filter_map(|slot| slot.read.as_ref())
        .map(demand_of)
        .fold(0usize, usize::saturating_add);
    let mut by_slot = BTreeMap::new();
    if demand > cap.bytes {
        let mut left = cap;
        let mut min_one_batch = true;
        for (target, indexes, reads) in runs_by_owner(shard, slots) {
            let budget = ReadBudget {
                total_bytes_max: left.bytes,
                disk_bytes_max: left.disk_bytes,
                min_one_batch,
            };
            let results = shard.read(target, reads, budget).await?;
            let bytes: usize = results.iter().map(ReadPartitionResult::bytes).sum();
            let disk: usize = results.iter().map(|r| r.disk_bytes).sum();
            left.bytes = left.bytes.saturating_sub(bytes);
            left.disk_bytes = left.disk_bytes.saturating_sub(disk);
            min_one_batch &= bytes == 0;
            by_slot.extend(indexes.into_iter().zip(results));
        }
        return Ok(by_slot);
    }
    let mut per_shard: BTreeMap<ShardId, (Vec<usize>, Vec<ReadPartition>, usize)> = BTreeMap::new();
    for (index, slot) in slots.iter().enumerate() {
        if let Some(read) = &slot.read {
            let entry = per_shard
                .entry(shard.owner_of(&read.partition))
                .or_default();
            entry.0.push(index);
            entry.1.push(read.clone());
            entry.2 += demand_of(read);
        }
    }
    let reads = per_shard
        .into_iter()
        .map(|(target, (indexes, reads, shard_demand))| async move {
            // demand <= cap.bytes here, so each shard's share is exact and sums to the cap.
            let share =
                (cap.disk_bytes as u128 * shard_demand as u128 / demand.max(1) as u128) as usize;
            let budget = ReadBudget {
                total_bytes_max: cap.bytes,
                disk_bytes_max: share,
                min_one_batch: true,
            };
            let results = shard.read(target, reads, budget).await?;
            Ok::<_, HandlerError>((indexes, results))
        });
    for outcome in futures::future::join_all(reads).await {
        let (indexes, results) = outcome?;
        by_slot.extend(indexes.into_iter().zip(results));
    }
    Ok(by_slot)
}

/// Consecutive known slots with the same owning shard, in request order.
fn runs_by_owner(shard: &Shard, slots: &[Slot]) -> Vec<(ShardId, Vec<usize>, Vec<ReadPartition>)> {
    let mut runs: Vec<(ShardId, Vec<usize>, Vec<ReadPartition>)> = Vec::new();
    for (index, slot) in slots.iter().enumerate() {
        let Some(read) = &slot.read else { continue };
        let target = shard.owner_of(&read.partition);
        match runs.last_mut() {
            Some(run) if run.0 == target => {
                run.1.push(index);
                run.2.push(read.clone());
            }
            _ => runs.push((target, vec![index], vec![read.clone()])),
        }
    }
    runs
}

async fn wait_for_any(
    shard: &Rc<Shard>,
    slots: &[Slot],
    timeout: Duration,
) -> Result<(), HandlerError> {
    let mut per_shard: BTreeMap<ShardId, Vec<(TopicPartition, Offset, WaitEnd)>> = BTreeMap::new();
    for slot in slots {
        if let Some(read) = &slot.read {
            let end = if read.replica.is_some() {
                WaitEnd::LogEnd
            } else if read.read_committed {
                WaitEnd::LastStable
            } else {
                WaitEnd::HighWatermark
            };
            per_shard
                .entry(shard.owner_of(&read.partition))
                .or_default()
                .push((read.partition.clone(), slot.seen_end, end));
        }
    }
    let sleep = Box::pin(glommio::timer::sleep(timeout));
    if per_shard.is_empty() {
        sleep.await;
        return Ok(());
    }
    let waits: Vec<LocalBoxFuture<'_, _>> = per_shard
        .into_iter()
        .map(|(target, partitions)| {
            let wait: LocalBoxFuture<'_, _> =
                Box::pin(shard.wait_for_data(target, partitions, timeout));
            wait
        })
        .collect();
    if let futures::future::Either::Left(((outcome, _, _), _)) =
        select(select_all(waits), sleep).await
    {
        outcome?;
    }
    Ok(())
}

/// Builds the response in request order, keeping the total under `max_bytes` except that
/// the first partition with data always gets its first batch (KIP-74).
fn fill_response(
    body: &mut FetchResponseBody,
    slots: Vec<Slot>,
    mut results: BTreeMap<usize, ReadPartitionResult>,
    max_bytes: usize,
) -> usize {
    let mut total = 0usize;
    for (index, slot) in slots.into_iter().enumerate() {
        let mut partition = FetchPartitionResponse {
            partition_index: slot.partition_index,
            error_code: slot.error.code(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            preferred_read_replica: -1,
            records: Vec::new(),
        };
        if let Some(result) = results.remove(&index) {
            partition.error_code = result.error.code();
            partition.high_watermark = result.high_watermark;
            partition.last_stable_offset = result.last_stable_offset;
            partition.log_start_offset = result.log_start_offset;
            partition.aborted_transactions = result.aborted_transactions.map(|aborted| {
                aborted
                    .into_iter()
                    .map(|(producer_id, first_offset)| AbortedTransaction {
                        producer_id,
                        first_offset,
                    })
                    .collect()
            });
            for batch in result.batches {
                if total + batch.len() > max_bytes && total > 0 {
                    break;
                }
                total += batch.len();
                partition.records.push(batch);
            }
        }
        body.topics[slot.topic_index].partitions.push(partition);
    }
    total
}
