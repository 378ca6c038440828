//! Produce (key 0): appends each partition's record batches on the owning shard.
//! Stage 1 (in request order on the connection): the producer checks below, then batches
//! are appended locally or enqueued on the owner's mesh channel. Stage 2: the response, once
//! acks are met — acks=1 when the batches are written, acks=-1 when they are synced
//! (fdatasync, group-committed); acks=0 sends no response.
//!
//! Producer checks (Kafka's `KafkaApis.handleProduceRequest` and `ReplicaManager`
//! transaction verification, KIP-890 part 1), before anything is appended: transactional
//! batches need the request's transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//! for every partition) and a producer id; a producer id must have been handed out by
//! InitProducerId (shardlog knows its producer-id blocks: UNKNOWN_PRODUCER_ID for an
//! idempotent batch, INVALID_PRODUCER_ID_MAPPING for a transactional one); a transactional
//! batch's partition must be in the producer's ongoing transaction, which the coordinator
//! verifies (INVALID_TXN_STATE up to v10, TRANSACTION_ABORTABLE from v11). The batch
//! itself is validated by storage (`model::validation`).

use super::{resolve_topic, topic_name};
use crate::model::{ErrorCode, RecordBatchHeader, ShardId, TopicPartition};
use crate::protocol::produce_request::{ProducePartitionData, ProduceRequestOwned, ProduceTopic};
use crate::quorum::view::led_elsewhere;
use crate::security::acl::AclOperation;
use crate::server::api_table::ResponseFuture;
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::metrics::{ProduceStage, RejectReason};
use crate::shard::{Acks, ProducePartition, ProducePartitionResult, Shard};
use bytes::BytesMut;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestKind};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

/// The API table's entry, for a request kafka-protocol decoded: its records are slices of a
/// shared frame, so they are copied here. Connections do not come this way: they decode
/// Produce with `protocol::produce_request` (records owned, no copy) and call
/// `handle_owned`.
#[allow(clippy::async_yields_async)] // stage 1 deliberately yields stage 2
pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    let RequestKind::Produce(request) = body else {
        let api = context.api;
        let failed: ResponseFuture = Box::pin(async move { Err(HandlerError::WrongBody(api)) });
        return Box::pin(async move { failed });
    };
    handle_owned(shard, context, owned(request))
}

/// Stage 1 of a Produce whose records are owned regions of the request frame.
#[allow(clippy::async_yields_async)] // stage 1 deliberately yields stage 2
pub fn handle_owned(
    shard: Rc<Shard>,
    context: RequestContext,
    request: ProduceRequestOwned,
) -> LocalBoxFuture<'static, ResponseFuture> {
    Box::pin(enqueue(shard, context, request))
}

/// A kafka-protocol `ProduceRequest` with its records copied out of the frame.
fn owned(request: ProduceRequest) -> ProduceRequestOwned {
    ProduceRequestOwned {
        transactional_id: request.transactional_id.map(|id| id.to_string()),
        acks: request.acks,
        timeout_ms: request.timeout_ms,
        topics: request
            .topic_data
            .into_iter()
            .map(|topic| ProduceTopic {
                name: topic.name.0.to_string(),
                topic_id: topic.topic_id,
                partitions: topic
                    .partition_data
                    .into_iter()
                    .map(|data| ProducePartitionData {
                        index: data.index,
                        records: data.records.map(|records| BytesMut::from(&records[..])),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The first Produce version whose response names the refused records (KIP-467).
const RECORD_ERRORS_VERSION_MIN: i16 = 8;

/// Per (topic, partition) outcome, keyed for building the response in request order.
type Outcomes = HashMap<(String, i32), ProducePartitionResult>;

fn rejected(partition: TopicPartition, error: ErrorCode) -> ProducePartitionResult {
    ProducePartitionResult {
        partition,
        error,
        error_message: None,
        record_errors: Vec::new(),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

async fn enqueue(
    shard: Rc<Shard>,
    context: RequestContext,
    mut request: ProduceRequestOwned,
) -> ResponseFuture {
    let received = Instant::now();
    let acks = Acks::from_wire(request.acks);
    let catalog = shard.catalog();
    let node_id = shard.config.server.node_id;
    let mut outcomes: Outcomes = HashMap::new();
    let mut accepted: Vec<ProducePartition> = Vec::new();
    let transactional_denied = request.transactional_id.as_deref().and_then(|id| {
        authorize::transactional_id(&shard, &context, AclOperation::Write, id).err()
    });
    for topic in &mut request.topics {
        let name = topic.name.clone();
        let meta = resolve_topic(&catalog, &name, &topic.topic_id);
        let denied = transactional_denied.or_else(|| {
            let named = meta.map_or(name.as_str(), |m| m.name.as_str());
            authorize::topic(&shard, &context, AclOperation::Write, named).err()
        });
        for data in &mut topic.partitions {
            let partition = TopicPartition::new(name.as_str(), data.index);
            // Moved out, not shared: storage stamps the batch in place.
            let records = data.records.take();
            let error = match (acks, meta, &records) {
                _ if denied.is_some() => denied,
                (None, _, _) => Some(ErrorCode::InvalidRequiredAcks),
                (_, None, _) => Some(ErrorCode::UnknownTopicOrPartition),
                (_, Some(m), _) if data.index < 0 || data.index >= m.partitions => {
                    Some(ErrorCode::UnknownTopicOrPartition)
                }
                (_, Some(m), _)
                    if led_elsewhere(&m.name, &m.id, data.index, node_id, m.cluster) =>
                {
                    Some(ErrorCode::NotLeaderOrFollower)
                }
                (_, _, None) => Some(ErrorCode::CorruptMessage),
                _ => None,
            };
            match (error, records) {
                (None, Some(records)) => accepted.push(ProducePartition { partition, records }),
                (error, _) => {
                    let error = error.unwrap_or(ErrorCode::CorruptMessage);
                    shard.metrics.rejected(match error {
                        ErrorCode::InvalidRequiredAcks => RejectReason::InvalidRequiredAcks,
                        ErrorCode::UnknownTopicOrPartition => RejectReason::UnknownPartition,
                        ErrorCode::NotLeaderOrFollower => RejectReason::NotLeader,
                        ErrorCode::TopicAuthorizationFailed
                        | ErrorCode::TransactionalIdAuthorizationFailed => {
                            RejectReason::Unauthorized
                        }
                        _ => RejectReason::CorruptBatch,
                    });
                    outcomes.insert((name.clone(), data.index), rejected(partition, error));
                }
            }
        }
    }
    let transactional_id = request.transactional_id.clone();
    let per_shard =
        checked_per_shard(&shard, transactional_id.as_deref(), accepted, &mut outcomes).await;
    let acks = acks.unwrap_or(Acks::Leader);
    let mut completions = Vec::with_capacity(per_shard.len());
    for (target, partitions) in per_shard {
        completions.push(shard.produce(target, partitions, acks, received).await);
    }
    Box::pin(async move {
        for completion in futures::future::join_all(completions).await {
            for result in completion? {
                let key = (
                    result.partition.topic.to_string(),
                    result.partition.partition,
                );
                outcomes.insert(key, result);
            }
        }
        if acks == Acks::None {
            return Ok(None);
        }
        let version = context.version;
        let encode_started = Instant::now();
        let frame = context.respond(&response(&request, outcomes, version));
        let encode_seconds = encode_started.elapsed().as_secs_f64();
        shard
            .metrics
            .produce_stage(ProduceStage::ResponseEncode, encode_seconds);
        frame.map(Some)
    })
}

fn response(
    request: &ProduceRequestOwned,
    mut outcomes: Outcomes,
    version: i16,
) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    response.responses = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.clone();
            let mut entry = TopicProduceResponse::default();
            entry.name = topic_name(&name);
            entry.topic_id = topic.topic_id;
            entry.partition_responses = topic
                .partitions
                .iter()
                .map(|data| {
                    let outcome =
                        outcomes
                            .remove(&(name.clone(), data.index))
                            .unwrap_or_else(|| {
                                rejected(
                                    TopicPartition::new(name.as_str(), data.index),
                                    ErrorCode::UnknownServerError,
                                )
                            });
                    let mut partition = PartitionProduceResponse::default();
                    partition.index = data.index;
                    partition.error_code = for_version(outcome.error, version).code();
                    partition.base_offset = outcome.base_offset;
                    partition.log_append_time_ms = outcome.log_append_time_ms;
                    partition.log_start_offset = outcome.log_start_offset;
                    partition.error_message = outcome.error_message.map(StrBytes::from_string);
                    if version >= RECORD_ERRORS_VERSION_MIN {
                        partition.record_errors = outcome
                            .record_errors
                            .into_iter()
                            .map(|record| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(record.batch_index)
                                    .with_batch_index_error_message(Some(StrBytes::from_string(
                                        record.message,
                                    )))
                            })
                            .collect();
                    }
                    partition
                })
                .collect();
            entry
        })
        .collect();
    response
}

/// Runs the producer checks: the partitions that pass, by owner shard; the refused ones go
/// to `outcomes`.
async fn checked_per_shard(
    shard: &Rc<Shard>,
    transactional_id: Option<&str>,
    partitions: Vec<ProducePartition>,
    outcomes: &mut Outcomes,
) -> BTreeMap<ShardId, Vec<ProducePartition>> {
    let checked = check_producers(shard, transactional_id, partitions).await;
    let mut per_shard: BTreeMap<ShardId, Vec<ProducePartition>> = BTreeMap::new();
    for partition in checked.passed {
        per_shard
            .entry(shard.owner_of(&partition.partition))
            .or_default()
            .push(partition);
    }
    for result in checked.refused {
        shard.metrics.rejected(RejectReason::ProducerState);
        let key = (
            result.partition.topic.to_string(),
            result.partition.partition,
        );
        outcomes.insert(key, result);
    }
    per_shard
}

/// Produce v11 (KIP-890) introduced TRANSACTION_ABORTABLE; older clients get
/// INVALID_TXN_STATE for a partition that is not in the transaction, as from Kafka.
fn for_version(error: ErrorCode, version: i16) -> ErrorCode {
    match error {
        ErrorCode::TransactionAbortable if version <= LAST_VERSION_WITHOUT_ABORTABLE => {
            ErrorCode::InvalidTxnState
        }
        other => other,
    }
}

const LAST_VERSION_WITHOUT_ABORTABLE: i16 = 10;

/// Partitions that may go on to the owner shards, and those refused by `check_producers`.
struct Checked {
    passed: Vec<ProducePartition>,
    refused: Vec<ProducePartitionResult>,
}

/// The producer fields of a partition's (first) batch.
#[derive(Clone, Copy)]
struct ProducerFields {
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    transactional: bool,
}

impl ProducerFields {
    fn of(records: &[u8]) -> Option<ProducerFields> {
        let header = RecordBatchHeader::view(records).ok()?;
        Some(ProducerFields {
            producer_id: header.producer_id.get(),
            epoch: header.producer_epoch.get(),
            base_sequence: header.base_sequence.get(),
            transactional: header.is_transactional() && !header.is_control(),
        })
    }
}

fn refusal(partition: TopicPartition, error: ErrorCode, message: String) -> ProducePartitionResult {
    ProducePartitionResult {
        error_message: Some(message),
        ..rejected(partition, error)
    }
}

/// The checks of the module doc that need state outside the partition.
async fn check_producers(
    shard: &Rc<Shard>,
    transactional_id: Option<&str>,
    partitions: Vec<ProducePartition>,
) -> Checked {
    let fields: Vec<Option<ProducerFields>> = partitions
        .iter()
        .map(|p| ProducerFields::of(&p.records))
        .collect();
    let mut checked = Checked {
        passed: Vec::with_capacity(partitions.len()),
        refused: Vec::new(),
    };
    let any_transactional = fields.iter().flatten().any(|f| f.transactional);
    let Some(transactional_id) = transactional_id.filter(|_| any_transactional) else {
        if any_transactional {
            let message = "transactional records need the request's transactional id";
            checked.refused = partitions
                .into_iter()
                .map(|p| {
                    let code = ErrorCode::TransactionalIdAuthorizationFailed;
                    refusal(p.partition, code, message.to_string())
                })
                .collect();
            return checked;
        }
        for (partition, fields) in partitions.into_iter().zip(fields) {
            match producer_id_refusal(shard, fields).await {
                Some((code, message)) => {
                    checked
                        .refused
                        .push(refusal(partition.partition, code, message))
                }
                None => checked.passed.push(partition),
            }
        }
        return checked;
    };
    let mut to_verify: Vec<(ProducePartition, ProducerFields)> = Vec::new();
    for (partition, fields) in partitions.into_iter().zip(fields) {
        match (producer_id_refusal(shard, fields).await, fields) {
            (Some((code, message)), _) => {
                checked
                    .refused
                    .push(refusal(partition.partition, code, message))
            }
            (None, Some(f)) if f.transactional => to_verify.push((partition, f)),
            (None, _) => checked.passed.push(partition),
        }
    }
    verify(shard, transactional_id, to_verify, &mut checked).await;
    checked
}

/// The producer id of an idempotent or transactional batch must be one InitProducerId
/// handed out; a transactional batch must have one.
async fn producer_id_refusal(
    shard: &Rc<Shard>,
    fields: Option<ProducerFields>,
) -> Option<(ErrorCode, String)> {
    let f = fields?;
    if f.transactional && f.producer_id < 0 {
        let message = "a transactional batch needs the producer id of its transactional id";
        return Some((ErrorCode::InvalidProducerIdMapping, message.to_string()));
    }
    let idempotent = f.producer_id >= 0 && f.base_sequence >= 0;
    if !(idempotent || f.transactional) || shard.producer_id_allocated(f.producer_id).await {
        return None;
    }
    let message = format!("producer id {} was never allocated", f.producer_id);
    let code = if f.transactional {
        ErrorCode::InvalidProducerIdMapping
    } else {
        ErrorCode::UnknownProducerId
    };
    Some((code, message))
}

/// Asks the transaction coordinator about the transactional partitions (one producer per
/// request, as Kafka requires) and sorts them into passed and refused.
async fn verify(
    shard: &Rc<Shard>,
    transactional_id: &str,
    to_verify: Vec<(ProducePartition, ProducerFields)>,
    checked: &mut Checked,
) {
    let Some(&(_, first)) = to_verify.first() else {
        return;
    };
    if to_verify
        .iter()
        .any(|(_, f)| (f.producer_id, f.epoch) != (first.producer_id, first.epoch))
    {
        let message = "Transactional records contained more than one producer ID";
        for (partition, _) in to_verify {
            let code = ErrorCode::InvalidProducerIdMapping;
            checked
                .refused
                .push(refusal(partition.partition, code, message.to_string()));
        }
        return;
    }
    let partitions = to_verify.iter().map(|(p, _)| p.partition.clone()).collect();
    let verdicts = shard
        .verify_transaction(transactional_id, first.producer_id, first.epoch, partitions)
        .await
        .unwrap_or_default();
    let verdicts: HashMap<TopicPartition, ErrorCode> = verdicts.into_iter().collect();
    for (partition, _) in to_verify {
        let code = verdicts
            .get(&partition.partition)
            .copied()
            .unwrap_or(ErrorCode::CoordinatorNotAvailable);
        match verification_refusal(code) {
            None => checked.passed.push(partition),
            Some((code, message)) => checked.refused.push(ProducePartitionResult {
                error_message: message,
                ..rejected(partition.partition, code)
            }),
        }
    }
}

/// The coordinator's answer as Kafka's ReplicaManager translates it for producers.
fn verification_refusal(code: ErrorCode) -> Option<(ErrorCode, Option<String>)> {
    let retriable = |underlying: &str| {
        let message = format!(
            "Unable to verify the partition has been added to the transaction. \
             Underlying error: {underlying}"
        );
        Some((ErrorCode::NotEnoughReplicas, Some(message)))
    };
    match code {
        ErrorCode::None => None,
        ErrorCode::ProducerFenced => Some((ErrorCode::InvalidProducerEpoch, None)),
        ErrorCode::TransactionAbortable => Some((
            ErrorCode::TransactionAbortable,
            Some("Partition was not added to the transaction".to_string()),
        )),
        ErrorCode::ConcurrentTransactions => retriable("CONCURRENT_TRANSACTIONS"),
        ErrorCode::NotCoordinator => retriable("NOT_COORDINATOR"),
        ErrorCode::CoordinatorNotAvailable => retriable("COORDINATOR_NOT_AVAILABLE"),
        ErrorCode::CoordinatorLoadInProgress => retriable("COORDINATOR_LOAD_IN_PROGRESS"),
        other => Some((other, None)),
    }
}
