//! Fetch (key 1): whole stored batches from the owning shards, sent without copying.
//! Long poll: if fewer than `min_bytes` are available, wait (woken by appends on any
//! requested partition) until `max_wait_ms` (capped by config), then answer — a fetch always
//! answers by its deadline. Fetch sessions (KIP-227) are not kept: a full fetch is answered
//! with session id 0, which tells clients to keep sending full fetches; an incremental fetch
//! gets FETCH_SESSION_ID_NOT_FOUND.
//!
//! Memory: a response never holds more record bytes than `connection_response_bytes_max`
//! and `fetch_response_bytes_max` allow (plus the first batch, KIP-74). The bytes are
//! reserved from the connection's and the shard's response budgets before the logs are
//! read (as much as is free, at least 1 MiB or what the fetch can use), shrunk to what was
//! read, and held until the writer has sent them; a long poll holds nothing while it
//! waits. A fetch that cannot get memory by its deadline answers empty.

use super::resolve_topic;
use crate::model::{ErrorCode, Offset, ShardId, TopicPartition};
use crate::protocol::codec::encode_response_header;
use crate::protocol::fetch_response::{
    AbortedTransaction, FetchPartitionResponse, FetchResponseBody, FetchTopicResponse,
    encode_fetch_response,
};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, ResponseFrame};
use crate::shard::memory::{MemoryBudget, Reservation};
use crate::shard::metrics::DelayReason;
use crate::shard::{ReadPartition, ReadPartitionResult, Shard};
use bytes::BytesMut;
use futures::future::{Either, LocalBoxFuture, select, select_all};
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
        let mut header = BytesMut::new();
        encode_response_header(
            &mut header,
            context.api,
            context.version,
            context.correlation_id,
        )?;
        let frame = encode_fetch_response(context.version, &header, &body);
        Ok(Some(ResponseFrame {
            chunks: frame.chunks,
            memory: memory.into_reservations(),
        }))
    })
}

/// One requested partition, in request order.
struct Slot {
    topic_index: usize,
    /// None: the topic or partition is unknown; answered with `error`.
    read: Option<ReadPartition>,
    error: ErrorCode,
    partition_index: i32,
}

/// Smallest response reservation a fetch waits for (unless it can use less).
const RESPONSE_RESERVATION_MIN_BYTES: u64 = 1 << 20;

async fn fetch(
    shard: &Rc<Shard>,
    context: &RequestContext,
    request: FetchRequest,
) -> Result<(FetchResponseBody, ResponseMemory), HandlerError> {
    let mut body = FetchResponseBody::default();
    if context.version >= 7 && request.session_id != 0 {
        body.error_code = ErrorCode::FetchSessionIdNotFound.code();
        return Ok((body, ResponseMemory::none(shard, context)));
    }
    let server = &shard.config.server;
    let max_wait =
        Duration::from_millis((request.max_wait_ms.max(0) as u64).min(server.fetch_wait_ms_max));
    let limit = (request.max_bytes.max(0) as u64)
        .min(server.fetch_response_bytes_max)
        .min(server.connection_response_bytes_max) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let slots = slots_of(shard, context, &request, &mut body);
    // What the reads could return at most: a fetch of little data reserves little.
    let wanted = slots
        .iter()
        .filter_map(|slot| slot.read.as_ref())
        .map(|read| read.max_bytes.min(limit))
        .fold(0usize, usize::saturating_add)
        .min(limit);
    let deadline = Instant::now() + max_wait;
    loop {
        let mut memory = ResponseMemory::reserve(shard, context, wanted, deadline).await;
        let cap = memory.bytes();
        let results = read_all(shard, &slots, cap).await?;
        let available: usize = results.values().map(ReadPartitionResult::bytes).sum();
        let failed = results.values().any(|r| r.error.is_error());
        // min_bytes = 0 answers at once (as Kafka); a fetch whose memory is all used
        // answers with what it has.
        let satisfied = available >= min_bytes || (available > 0 && available >= cap);
        let now = Instant::now();
        if satisfied || failed || now >= deadline {
            let returned = fill_response(&mut body, slots, results, cap);
            memory.force_to(returned);
            shard.metrics.fetched(returned);
            return Ok((body, memory));
        }
        drop(memory);
        wait_for_any(shard, &slots, deadline - now).await?;
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
        for partition in &topic.partitions {
            let known =
                meta.filter(|m| partition.partition >= 0 && partition.partition < m.partitions);
            let unknown = if context.version >= 13 {
                ErrorCode::UnknownTopicId
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            slots.push(Slot {
                topic_index,
                read: known.map(|m| ReadPartition {
                    partition: TopicPartition::new(m.name.as_str(), partition.partition),
                    offset: Offset(partition.fetch_offset),
                    max_bytes: partition.partition_max_bytes.max(0) as usize,
                    read_committed,
                }),
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

/// Response bytes reserved from the connection's and the shard's response budgets, equal
/// amounts from each.
struct ResponseMemory {
    connection: Reservation,
    shard: Reservation,
}

impl ResponseMemory {
    fn none(shard: &Shard, context: &RequestContext) -> ResponseMemory {
        ResponseMemory::none_of(&context.connection.response_memory, &shard.response_memory)
    }

    /// Takes up to `wanted` bytes: what is free in both budgets, waiting while less than
    /// `min(wanted, 1 MiB)` is; at `deadline` it gives up with nothing.
    async fn reserve(
        shard: &Shard,
        context: &RequestContext,
        wanted: usize,
        deadline: Instant,
    ) -> ResponseMemory {
        let wanted = wanted as u64;
        let minimum = wanted.min(RESPONSE_RESERVATION_MIN_BYTES);
        let (connection_budget, shard_budget) =
            (&context.connection.response_memory, &shard.response_memory);
        if connection_budget.available_bytes() < minimum || shard_budget.available_bytes() < minimum
        {
            shard.metrics.delayed(DelayReason::ResponseBudget);
        }
        let both = Box::pin(async {
            let connection = connection_budget.reserve_up_to(minimum, wanted).await;
            let shard = shard_budget
                .reserve_up_to(minimum, connection.bytes())
                .await;
            (connection, shard)
        });
        let timeout = deadline.saturating_duration_since(Instant::now());
        match select(both, Box::pin(glommio::timer::sleep(timeout))).await {
            Either::Left(((mut connection, shard), _)) => {
                connection.shrink_to(shard.bytes());
                ResponseMemory { connection, shard }
            }
            Either::Right(_) => ResponseMemory::none_of(connection_budget, shard_budget),
        }
    }

    fn none_of(connection: &Rc<MemoryBudget>, shard: &Rc<MemoryBudget>) -> ResponseMemory {
        ResponseMemory {
            connection: connection.empty(),
            shard: shard.empty(),
        }
    }

    fn bytes(&self) -> usize {
        self.connection.bytes().min(self.shard.bytes()) as usize
    }

    /// Holds exactly the `bytes` the response carries (more than reserved only for the
    /// first batch that KIP-74 always returns).
    fn force_to(&mut self, bytes: usize) {
        self.connection.force_to(bytes as u64);
        self.shard.force_to(bytes as u64);
    }

    fn into_reservations(self) -> Vec<Reservation> {
        vec![self.connection, self.shard]
    }
}

/// Reads every known slot, at most `cap` record bytes in all (plus one first batch per
/// owning shard, KIP-74). When the partitions together may return more than `cap`, the
/// owning shards are read one after another, each with what the previous left; otherwise
/// all at once (one mesh round trip per shard, in parallel).
async fn read_all(
    shard: &Rc<Shard>,
    slots: &[Slot],
    cap: usize,
) -> Result<BTreeMap<usize, ReadPartitionResult>, HandlerError> {
    let mut per_shard: Vec<(ShardId, Vec<usize>, Vec<ReadPartition>)> = Vec::new();
    let mut demand = 0usize;
    for (index, slot) in slots.iter().enumerate() {
        if let Some(read) = &slot.read {
            demand = demand.saturating_add(read.max_bytes.min(cap));
            let target = shard.owner_of(&read.partition);
            let position = match per_shard.iter().position(|(t, _, _)| *t == target) {
                Some(position) => position,
                None => {
                    per_shard.push((target, Vec::new(), Vec::new()));
                    per_shard.len() - 1
                }
            };
            per_shard[position].1.push(index);
            per_shard[position].2.push(read.clone());
        }
    }
    let mut by_slot = BTreeMap::new();
    if demand <= cap || per_shard.len() <= 1 {
        let reads = per_shard
            .into_iter()
            .map(|(target, indexes, reads)| async move {
                let results = shard.read(target, reads, cap).await?;
                Ok::<_, HandlerError>((indexes, results))
            });
        for outcome in futures::future::join_all(reads).await {
            let (indexes, results) = outcome?;
            by_slot.extend(indexes.into_iter().zip(results));
        }
        return Ok(by_slot);
    }
    let mut remaining = cap;
    for (target, indexes, reads) in per_shard {
        let results = shard.read(target, reads, remaining).await?;
        let bytes: usize = results.iter().map(ReadPartitionResult::bytes).sum();
        remaining = remaining.saturating_sub(bytes);
        by_slot.extend(indexes.into_iter().zip(results));
    }
    Ok(by_slot)
}

async fn wait_for_any(
    shard: &Rc<Shard>,
    slots: &[Slot],
    timeout: Duration,
) -> Result<(), HandlerError> {
    let mut per_shard: BTreeMap<ShardId, Vec<(TopicPartition, Offset, bool)>> = BTreeMap::new();
    for read in slots.iter().filter_map(|s| s.read.as_ref()) {
        per_shard
            .entry(shard.owner_of(&read.partition))
            .or_default()
            .push((read.partition.clone(), read.offset, read.read_committed));
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
