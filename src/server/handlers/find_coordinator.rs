//! FindCoordinator (key 10). Single-broker mode: the coordinator of every group and
//! transactional id is this broker (the owning shard is reached internally). Cluster mode:
//! a group's coordinator is the leader of its `__consumer_offsets` partition in the metadata
//! log (that topic is created there, through the controller, when the first group asks);
//! transactional ids stay with the broker asked (docs/replication.md, "Not done yet").
//! v4+ answers a batch of keys.

use super::metadata::{advertised_address, cluster_brokers};
use super::{cluster_forward, str_bytes};
use crate::group::{OFFSETS_TOPIC, offsets_partition_for};
use crate::model::ErrorCode;
use crate::quorum::frame::TopicCreation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorResponse, RequestKind};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// How long one request to create `__consumer_offsets` in the metadata log may take.
const OFFSETS_TOPIC_CREATE_WAIT: Duration = Duration::from_secs(10);
/// The least time between two such requests from one shard.
const OFFSETS_TOPIC_CREATE_BACKOFF: Duration = Duration::from_secs(1);

thread_local! {
    /// When this shard last asked the controller to create `__consumer_offsets`.
    static OFFSETS_TOPIC_ASKED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Where a key's coordinator is: node id, host and port.
struct Located {
    node_id: i32,
    host: String,
    port: i32,
}

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::FindCoordinator(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let locate = |key: &str| locate(&shard, request.key_type, key);
        let answer = |located: &Result<Located, ErrorCode>| match located {
            Ok(found) => (
                ErrorCode::None,
                found.node_id,
                str_bytes(&found.host),
                found.port,
            ),
            Err(code) => (*code, -1, str_bytes(""), -1),
        };
        let mut response = FindCoordinatorResponse::default();
        if context.version >= 4 {
            response.coordinators = request
                .coordinator_keys
                .iter()
                .map(|key| {
                    let (error, node_id, host, port) = answer(&locate(key.as_str()));
                    let mut coordinator = Coordinator::default();
                    coordinator.key = key.clone();
                    coordinator.error_code = error.code();
                    coordinator.node_id = BrokerId(node_id);
                    coordinator.host = host;
                    coordinator.port = port;
                    coordinator
                })
                .collect();
        } else {
            let (error, node_id, host, port) = answer(&locate(request.key.as_str()));
            response.error_code = error.code();
            response.node_id = BrokerId(node_id);
            response.host = host;
            response.port = port;
        }
        context.respond(&response).map(Some)
    })
}

fn locate(shard: &Rc<Shard>, key_type: i8, key: &str) -> Result<Located, ErrorCode> {
    let this_broker = || {
        let (host, port) = advertised_address(shard);
        Located {
            node_id: shard.config.server.node_id,
            host,
            port,
        }
    };
    match key_type {
        // The same test as the coordinator shards' (`controller_quorum` set), so a broker
        // never names itself for a group its shards will not serve.
        KEY_TYPE_GROUP if shard.config.cluster.cluster_mode() => locate_group_leader(shard, key),
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => Ok(this_broker()),
        _ => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

/// Cluster mode: the leader of the group's `__consumer_offsets` partition, if it is live.
/// COORDINATOR_NOT_AVAILABLE (retriable) while the topic is not in the log yet (its
/// creation is asked for here) or the partition has no live leader.
fn locate_group_leader(shard: &Rc<Shard>, group_id: &str) -> Result<Located, ErrorCode> {
    let topics = crate::quorum::view::cluster_topics().ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let Some(topic) = topics.topics.get(OFFSETS_TOPIC) else {
        ask_for_offsets_topic(shard);
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if partitions == 0 {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    let index = offsets_partition_for(group_id, partitions);
    let leader = usize::try_from(index)
        .ok()
        .and_then(|index| topic.partitions.get(index))
        .map(|partition| partition.leader)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let (_, brokers) = cluster_brokers(shard).ok_or(ErrorCode::CoordinatorNotAvailable)?;
    brokers
        .into_iter()
        .find(|broker| broker.node_id == leader)
        .map(|broker| Located {
            node_id: broker.node_id,
            host: broker.host,
            port: i32::from(broker.port),
        })
        .ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// Asks the active controller (in the background, at most once per
/// `OFFSETS_TOPIC_CREATE_BACKOFF` per shard) to create `__consumer_offsets` with
/// `group.offsets_topic_partitions` partitions and `group.offsets_topic_replication_factor`
/// replicas (`pub(super)`: Metadata's auto-creation of that name comes here too). Kafka creates it the same way, on the first FindCoordinator; too few brokers
/// for the replication factor leave it uncreated (the controller refuses, and the client
/// keeps getting COORDINATOR_NOT_AVAILABLE).
pub(super) fn ask_for_offsets_topic(shard: &Rc<Shard>) {
    let now = Instant::now();
    let recently = OFFSETS_TOPIC_ASKED
        .with(|asked| asked.get())
        .is_some_and(|at| now.duration_since(at) < OFFSETS_TOPIC_CREATE_BACKOFF);
    if recently {
        return;
    }
    OFFSETS_TOPIC_ASKED.with(|asked| asked.set(Some(now)));
    let creation = TopicCreation {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: shard.config.group.offsets_topic_partitions,
        replication_factor: shard.config.group.offsets_topic_replication_factor,
        assignments: Default::default(),
        configs: crate::shard::data_dir::internal_topic_configs(),
    };
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let deadline = Instant::now() + OFFSETS_TOPIC_CREATE_WAIT;
        match cluster_forward::create_topics(&shard, vec![creation], false, deadline).await {
            Ok(results) => {
                for result in results.values() {
                    match ErrorCode::from_code(result.error_code) {
                        ErrorCode::None => {
                            tracing::info!(topic = OFFSETS_TOPIC, "group coordinators' topic created in the metadata log");
                        }
                        ErrorCode::TopicAlreadyExists => {}
                        code => {
                            tracing::warn!(topic = OFFSETS_TOPIC, ?code, message = ?result.message, "cannot create the group coordinators' topic yet");
                        }
                    }
                }
            }
            Err(code) => {
                tracing::warn!(topic = OFFSETS_TOPIC, code, "cannot create the group coordinators' topic yet");
            }
        }
    })
    .detach();
}
