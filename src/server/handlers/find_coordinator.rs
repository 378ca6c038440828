//! FindCoordinator (key 10). Single-broker mode: the coordinator of every group and
//! transactional id is this broker (the owning shard is reached internally). Cluster mode:
//! a group's coordinator is the leader of its `__consumer_offsets` partition in the metadata
//! log, a transactional id's the leader of its `__transaction_state` partition (each topic
//! is created there, through the controller, when the first key of its kind asks).
//! v4+ answers a batch of keys.

use super::metadata::{advertised_address, cluster_brokers};
use super::{cluster_forward, str_bytes};
use crate::group::OFFSETS_TOPIC;
use crate::model::ErrorCode;
use crate::quorum::frame::TopicCreation;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::Shard;
use crate::txn::TRANSACTIONS_TOPIC;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorResponse, RequestKind};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// How long one request to create a coordinator topic in the metadata log may take.
const COORDINATOR_TOPIC_CREATE_WAIT: Duration = Duration::from_secs(10);
/// The least time between two such requests for one topic from one shard.
const COORDINATOR_TOPIC_CREATE_BACKOFF: Duration = Duration::from_secs(1);

thread_local! {
    /// When this shard last asked the controller to create `__consumer_offsets` and
    /// `__transaction_state`.
    static COORDINATOR_TOPIC_ASKED: [Cell<Option<Instant>>; 2] =
        const { [Cell::new(None), Cell::new(None)] };
}

/// A coordinator topic of the metadata log (cluster mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CoordinatorTopic {
    /// `__consumer_offsets`: group coordinators.
    Offsets,
    /// `__transaction_state`: transaction coordinators.
    Transactions,
}

impl CoordinatorTopic {
    /// The coordinator topic named `name`, if it is one.
    pub(super) fn named(name: &str) -> Option<CoordinatorTopic> {
        match name {
            OFFSETS_TOPIC => Some(CoordinatorTopic::Offsets),
            TRANSACTIONS_TOPIC => Some(CoordinatorTopic::Transactions),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CoordinatorTopic::Offsets => OFFSETS_TOPIC,
            CoordinatorTopic::Transactions => TRANSACTIONS_TOPIC,
        }
    }

    fn slot(self) -> usize {
        match self {
            CoordinatorTopic::Offsets => 0,
            CoordinatorTopic::Transactions => 1,
        }
    }

    /// Partitions and replication factor from config.
    fn shape(self, shard: &Shard) -> (i32, i16) {
        match self {
            CoordinatorTopic::Offsets => (
                shard.config.group.offsets_topic_partitions,
                shard.config.group.offsets_topic_replication_factor,
            ),
            CoordinatorTopic::Transactions => (
                shard.config.transaction.state_topic_partitions,
                shard.config.transaction.state_topic_replication_factor,
            ),
        }
    }
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
        let listener = context.connection.listener_name();
        let locate = |key: &str| {
            let denied = match request.key_type {
                KEY_TYPE_GROUP => authorize::group(&shard, &context, AclOperation::Describe, key),
                KEY_TYPE_TRANSACTION => {
                    authorize::transactional_id(&shard, &context, AclOperation::Describe, key)
                }
                _ => Ok(()),
            };
            denied.and_then(|()| locate(&shard, &listener, request.key_type, key))
        };
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

fn locate(
    shard: &Rc<Shard>,
    listener: &str,
    key_type: i8,
    key: &str,
) -> Result<Located, ErrorCode> {
    let this_broker = || {
        let (host, port) = advertised_address(shard, listener);
        Located {
            node_id: shard.config.server.node_id,
            host,
            port,
        }
    };
    match key_type {
        // The same test as the coordinator shards' (`controller_quorum` set), so a broker
        // never names itself for a key its shards will not serve.
        KEY_TYPE_GROUP if shard.config.cluster.cluster_mode() => {
            locate_leader(shard, listener, CoordinatorTopic::Offsets, key)
        }
        KEY_TYPE_TRANSACTION if shard.config.cluster.cluster_mode() => {
            locate_leader(shard, listener, CoordinatorTopic::Transactions, key)
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => Ok(this_broker()),
        _ => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

/// Cluster mode: the leader of the key's partition of `kind`'s topic, if it is live.
/// COORDINATOR_NOT_AVAILABLE (retriable) while the topic is not in the log yet (its
/// creation is asked for here) or the partition has no live leader.
fn locate_leader(
    shard: &Rc<Shard>,
    listener: &str,
    kind: CoordinatorTopic,
    key: &str,
) -> Result<Located, ErrorCode> {
    let topics = crate::quorum::view::cluster_topics().ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let leader = match topics.coordinator_leader(kind.name(), key) {
        Ok(leader) => leader,
        Err(missing) => {
            if missing {
                ask_for_coordinator_topic(shard, kind);
            }
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
    };
    let (_, brokers) =
        cluster_brokers(shard, listener).ok_or(ErrorCode::CoordinatorNotAvailable)?;
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
/// `COORDINATOR_TOPIC_CREATE_BACKOFF` per topic and shard) to create `kind`'s topic with
/// the partitions and replication factor of its config (`group.offsets_topic_*`,
/// `transaction.state_topic_*`); `pub(super)`: Metadata's auto-creation of those names
/// comes here too. Kafka creates them the same way, on the first FindCoordinator; too few
/// brokers for the replication factor leave it uncreated (the controller refuses, and the
/// client keeps getting COORDINATOR_NOT_AVAILABLE).
pub(super) fn ask_for_coordinator_topic(shard: &Rc<Shard>, kind: CoordinatorTopic) {
    let now = Instant::now();
    let recently = COORDINATOR_TOPIC_ASKED
        .with(|asked| asked[kind.slot()].get())
        .is_some_and(|at| now.duration_since(at) < COORDINATOR_TOPIC_CREATE_BACKOFF);
    if recently {
        return;
    }
    COORDINATOR_TOPIC_ASKED.with(|asked| asked[kind.slot()].set(Some(now)));
    let (num_partitions, replication_factor) = kind.shape(shard);
    let creation = TopicCreation {
        name: kind.name().to_string(),
        num_partitions,
        replication_factor,
        assignments: Default::default(),
        configs: crate::shard::data_dir::internal_topic_configs(),
    };
    let topic = kind.name();
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let deadline = Instant::now() + COORDINATOR_TOPIC_CREATE_WAIT;
        match cluster_forward::create_topics(&shard, vec![creation], false, deadline).await {
            Ok(results) => {
                for result in results.values() {
                    match ErrorCode::from_code(result.error_code) {
                        ErrorCode::None => {
                            tracing::info!(topic, "coordinators' topic created in the metadata log");
                        }
                        ErrorCode::TopicAlreadyExists => {}
                        code => {
                            tracing::warn!(topic, ?code, message = ?result.message, "cannot create the coordinators' topic yet");
                        }
                    }
                }
            }
            Err(code) => {
                tracing::warn!(topic, code, "cannot create the coordinators' topic yet");
            }
        }
    })
    .detach();
}
