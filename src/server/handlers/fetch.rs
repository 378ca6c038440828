//! Fetch (key 1): whole stored batches from the owning shards, sent without copying.
//! Long poll: if fewer than `min_bytes` are available, wait (woken by appends on any
//! requested partition) until `max_wait_ms` (capped by config), then answer — a fetch always
//! answers by its deadline. Fetch sessions (KIP-227) are not kept: a full fetch is answered
//! with session id 0, which tells clients to keep sending full fetches; an incremental fetch
//! gets FETCH_SESSION_ID_NOT_FOUND.

use super::resolve_topic;
use crate::model::{ErrorCode, Offset, ShardId, TopicPartition};
use crate::protocol::codec::encode_response_header;
use crate::protocol::fetch_response::{
    AbortedTransaction, FetchPartitionResponse, FetchResponseBody, FetchTopicResponse,
    encode_fetch_response,
};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, ResponseFrame};
use crate::shard::{ReadPartition, ReadPartitionResult, Shard};
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
        let body = fetch(&shard, &context, request).await?;
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

async fn fetch(
    shard: &Rc<Shard>,
    context: &RequestContext,
    request: FetchRequest,
) -> Result<FetchResponseBody, HandlerError> {
    let mut body = FetchResponseBody::default();
    if context.version >= 7 && request.session_id != 0 {
        body.error_code = ErrorCode::FetchSessionIdNotFound.code();
        return Ok(body);
    }
    let server = &shard.config.server;
    let max_wait =
        Duration::from_millis((request.max_wait_ms.max(0) as u64).min(server.fetch_wait_ms_max));
    let max_bytes = (request.max_bytes.max(0) as u64).min(server.fetch_response_bytes_max) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
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
    let deadline = Instant::now() + max_wait;
    let results = loop {
        let results = read_all(shard, &slots).await?;
        let available: usize = results.values().map(ReadPartitionResult::bytes).sum();
        let failed = results.values().any(|r| r.error.is_error());
        let now = Instant::now();
        if available >= min_bytes.max(1) || failed || now >= deadline {
            break results;
        }
        wait_for_any(shard, &slots, deadline - now).await?;
        if Instant::now() >= deadline {
            break read_all(shard, &slots).await?;
        }
    };
    let returned = fill_response(&mut body, slots, results, max_bytes);
    shard.metrics.fetched(returned);
    Ok(body)
}

/// Reads every known slot, one mesh round trip per owning shard, all shards in parallel.
async fn read_all(
    shard: &Rc<Shard>,
    slots: &[Slot],
) -> Result<BTreeMap<usize, ReadPartitionResult>, HandlerError> {
    let mut per_shard: BTreeMap<ShardId, (Vec<usize>, Vec<ReadPartition>)> = BTreeMap::new();
    for (index, slot) in slots.iter().enumerate() {
        if let Some(read) = &slot.read {
            let entry = per_shard
                .entry(shard.owner_of(&read.partition))
                .or_default();
            entry.0.push(index);
            entry.1.push(read.clone());
        }
    }
    let reads = per_shard
        .into_iter()
        .map(|(target, (indexes, reads))| async move {
            shard
                .read(target, reads)
                .await
                .map(|results| (indexes, results))
        });
    let mut by_slot = BTreeMap::new();
    for outcome in futures::future::join_all(reads).await {
        let (indexes, results) = outcome?;
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
