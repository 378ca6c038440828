//! Metadata (key 3): this broker, and the requested topics with their partitions (leader =
//! this broker). Unknown topics are auto-created when the broker and the request allow it.

use super::{cluster_forward, str_bytes, topic_name};
use crate::metadata::{Catalog, TopicMeta, validate_topic_name};
use crate::model::ErrorCode;
use crate::quorum::frame::TopicCreation;
use crate::quorum::topics::{ClusterTopic, ClusterTopics};
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{NewTopic, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, RequestKind};
use std::rc::Rc;

/// Cluster mode: how long Metadata waits for topics it asked the controller to auto-create.
const AUTO_CREATE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Kafka's "authorized operations not requested" sentinel.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::Metadata(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let response = metadata(&shard, &context, request).await?;
        context.respond(&response).map(Some)
    })
}

/// Host and port clients that came in on the listener `listener` should connect to.
pub fn advertised_address(shard: &Shard, listener: &str) -> (String, i32) {
    crate::metadata::broker_config::advertised_address(&shard.config.server, listener)
}

/// Cluster mode: the controller and the live brokers (`crate::quorum::view`), each with the
/// address of its listener named `listener` (Kafka's rule: clients are told the endpoints of
/// the listener they came in on; a broker without such a listener is left out); `None` for
/// a single broker, which answers with itself as today.
pub fn cluster_brokers(
    shard: &Shard,
    listener: &str,
) -> Option<(i32, Vec<crate::quorum::frame::BrokerEndpoint>)> {
    let own = crate::quorum::own_endpoint(&shard.config).unwrap_or_else(|_| {
        let (host, port) = advertised_address(shard, listener);
        crate::quorum::frame::BrokerEndpoint {
            node_id: shard.config.server.node_id,
            host,
            port: u16::try_from(port).unwrap_or_default(),
            rack: shard.config.cluster.rack.clone(),
            listeners: Vec::new(),
        }
    });
    let (controller_id, brokers) = crate::quorum::view::brokers_for_clients(own)?;
    let brokers = brokers
        .into_iter()
        .filter_map(|mut broker| {
            let (host, port) = broker
                .address_for(listener)
                .map(|(host, port)| (host.to_string(), port))?;
            broker.host = host;
            broker.port = port;
            Some(broker)
        })
        .collect();
    Some((controller_id, brokers))
}

/// What the client asked for: None means all topics.
enum Wanted {
    All,
    Some(Vec<(Option<String>, uuid::Uuid)>),
}

async fn metadata(
    shard: &Rc<Shard>,
    context: &RequestContext,
    request: MetadataRequest,
) -> Result<MetadataResponse, HandlerError> {
    let wanted = match request.topics {
        None => Wanted::All,
        Some(list) if list.is_empty() && context.version == 0 => Wanted::All,
        Some(list) => Wanted::Some(
            list.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_create = shard.config.topic_defaults.auto_create_topics
        && (context.version < 4 || request.allow_auto_topic_creation);
    if let (Wanted::Some(list), true) = (&wanted, allow_create) {
        let catalog = shard.catalog();
        let cluster = crate::quorum::view::cluster_topics();
        let in_cluster = |name: &str| {
            cluster
                .as_ref()
                .is_some_and(|c| c.topics.contains_key(name))
        };
        let may_create_any = authorize::cluster(shard, context, AclOperation::Create).is_ok();
        let mut missing_names: Vec<&String> = list
            .iter()
            .filter_map(|(name, _)| name.as_ref())
            .filter(|name| {
                catalog.topic(name).is_none()
                    && !in_cluster(name)
                    && validate_topic_name(name).is_ok()
                    && (may_create_any
                        || authorize::topic(shard, context, AclOperation::Create, name).is_ok())
            })
            .collect();
        if cluster_forward::cluster_mode() {
            // The coordinators' topics are created with their own settings (partitions,
            // replication factor, compaction), as Kafka's auto-creation does, never with the
            // defaults of an ordinary topic.
            use super::find_coordinator::{CoordinatorTopic, ask_for_coordinator_topic};
            missing_names.retain(|name| match CoordinatorTopic::named(name) {
                Some(kind) => {
                    ask_for_coordinator_topic(shard, kind);
                    false
                }
                None => true,
            });
        }
        let missing: Vec<NewTopic> = missing_names
            .into_iter()
            .map(|name| NewTopic {
                name: name.clone(),
                partitions: -1,
                configs: Default::default(),
            })
            .collect();
        if !missing.is_empty() && cluster_forward::cluster_mode() {
            // Through the active controller, like CreateTopics with the defaults; a topic
            // not created in time is reported unknown and the client asks again.
            let topics = missing
                .into_iter()
                .map(|topic| TopicCreation {
                    name: topic.name,
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: Default::default(),
                    configs: Default::default(),
                })
                .collect();
            let deadline = std::time::Instant::now() + AUTO_CREATE_WAIT;
            let _ = cluster_forward::create_topics(shard, topics, false, deadline).await;
        } else if !missing.is_empty() {
            shard.create_topics(missing, false).await?;
        }
    }
    let catalog = shard.catalog();
    let listener = context.connection.listener_name();
    let (host, port) = advertised_address(shard, &listener);
    let node_id = shard.config.server.node_id;
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(node_id);
    broker.host = str_bytes(&host);
    broker.port = port;
    let mut response = MetadataResponse::default();
    response.brokers = vec![broker];
    let cluster_id = crate::quorum::view::cluster_id_for_clients()
        .unwrap_or_else(|| shard.config.server.cluster_id.clone());
    response.cluster_id = Some(str_bytes(&cluster_id));
    response.controller_id = BrokerId(node_id);
    if let Some((controller_id, brokers)) = cluster_brokers(shard, &listener) {
        response.controller_id = BrokerId(controller_id);
        response.brokers = brokers
            .into_iter()
            .map(|endpoint| {
                let mut broker = MetadataResponseBroker::default();
                broker.node_id = BrokerId(endpoint.node_id);
                broker.host = str_bytes(&endpoint.host);
                broker.port = i32::from(endpoint.port);
                broker.rack = endpoint.rack.as_deref().map(str_bytes);
                broker
            })
            .collect();
    }
    response.cluster_authorized_operations = OPERATIONS_NOT_REQUESTED;
    let cluster = crate::quorum::view::cluster_topics();
    let topics = Topics {
        catalog: &catalog,
        cluster: cluster.as_deref(),
        node_id,
    };
    let listed_all = matches!(wanted, Wanted::All);
    response.topics = match wanted {
        Wanted::All => topics.all(),
        Wanted::Some(list) => list
            .iter()
            .map(|(name, id)| topics.requested(name.as_deref(), id))
            .collect(),
    };
    if authorize::enabled(shard) {
        // Topics the principal may not describe: hidden from a full listing, refused
        // (without saying whether they exist) when named, as Kafka does.
        response.topics.retain_mut(|topic| {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.0.to_string())
                .unwrap_or_default();
            if authorize::topic(shard, context, AclOperation::Describe, &name).is_ok() {
                return true;
            }
            topic.error_code = ErrorCode::TopicAuthorizationFailed.code();
            topic.partitions.clear();
            topic.is_internal = false;
            !listed_all
        });
    }
    Ok(response)
}

/// The topics Metadata reports: in cluster mode the metadata log's (with their leaders,
/// replicas and ISR) and this broker's own (internal topics, topics from before cluster
/// mode); a local copy of a cluster topic the log no longer has is hidden.
struct Topics<'a> {
    catalog: &'a Catalog,
    cluster: Option<&'a ClusterTopics>,
    node_id: i32,
}

impl Topics<'_> {
    fn all(&self) -> Vec<MetadataResponseTopic> {
        let mut entries: Vec<MetadataResponseTopic> = self
            .catalog
            .topics()
            .filter_map(|topic| {
                if self.is_own(topic) {
                    Some(topic_entry(topic, self.node_id))
                } else if topic.cluster && self.view_behind() {
                    Some(not_caught_up(topic))
                } else {
                    None
                }
            })
            .collect();
        if let Some(cluster) = self.cluster {
            entries.extend(
                cluster
                    .topics
                    .iter()
                    .map(|(name, topic)| cluster_topic_entry(name, topic)),
            );
        }
        entries
    }

    /// Whether the cluster view is behind what this broker's catalog was reconciled with: a
    /// restarted broker before its metadata has caught up (the view is empty or older). Its
    /// local copies of log topics are then neither vouched for nor known to be gone.
    fn view_behind(&self) -> bool {
        self.cluster.is_some_and(|cluster| {
            cluster.applied_index == 0 || cluster.applied_index < self.catalog.metadata_index
        })
    }

    /// A local topic that is this broker's own (not a copy of a metadata-log topic).
    fn is_own(&self, topic: &TopicMeta) -> bool {
        match self.cluster {
            None => true,
            Some(cluster) => !topic.cluster && !cluster.topics.contains_key(&topic.name),
        }
    }

    fn requested(&self, name: Option<&str>, id: &uuid::Uuid) -> MetadataResponseTopic {
        if let Some(cluster) = self.cluster {
            let found = match name {
                Some(name) => cluster.topics.get_key_value(name),
                None => cluster.topics.iter().find(|(_, t)| &t.id == id.as_bytes()),
            };
            if let Some((name, topic)) = found {
                return cluster_topic_entry(name, topic);
            }
        }
        let found = match name {
            Some(name) => self.catalog.topic(name),
            None => self.catalog.topic_by_id(id.as_bytes()),
        };
        match found {
            Some(topic) if self.is_own(topic) => topic_entry(topic, self.node_id),
            Some(topic) if topic.cluster && self.view_behind() => not_caught_up(topic),
            _ => unknown_topic(name, id),
        }
    }
}

/// A local copy of a log topic while this broker's metadata has not caught up:
/// LEADER_NOT_AVAILABLE (retriable; clients keep the topic and ask again), not
/// UNKNOWN_TOPIC_OR_PARTITION, which makes librdkafka refuse produce() for it.
fn not_caught_up(topic: &TopicMeta) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(topic_name(&topic.name));
    entry.topic_id = uuid::Uuid::from_bytes(topic.id);
    entry.topic_authorized_operations = OPERATIONS_NOT_REQUESTED;
    entry.error_code = ErrorCode::LeaderNotAvailable.code();
    entry
}

fn unknown_topic(name: Option<&str>, id: &uuid::Uuid) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = name.map(topic_name);
    entry.topic_id = *id;
    entry.topic_authorized_operations = OPERATIONS_NOT_REQUESTED;
    entry.error_code = match name {
        Some(name) if validate_topic_name(name).is_err() => ErrorCode::InvalidTopicException,
        Some(_) => ErrorCode::UnknownTopicOrPartition,
        None => ErrorCode::UnknownTopicId,
    }
    .code();
    entry
}

fn cluster_topic_entry(name: &str, topic: &ClusterTopic) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(topic_name(name));
    entry.topic_id = uuid::Uuid::from_bytes(topic.id);
    entry.topic_authorized_operations = OPERATIONS_NOT_REQUESTED;
    let brokers = |nodes: &[i32]| nodes.iter().map(|node| BrokerId(*node)).collect();
    entry.partitions = (0..)
        .zip(&topic.partitions)
        .map(|(index, state)| {
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = index;
            partition.leader_id = BrokerId(state.leader);
            partition.leader_epoch = state.leader_epoch;
            partition.replica_nodes = brokers(&state.replicas);
            partition.isr_nodes = brokers(&state.isr);
            partition.offline_replicas = brokers(&state.offline_replicas);
            if state.leader < 0 {
                partition.error_code = ErrorCode::LeaderNotAvailable.code();
            }
            partition
        })
        .collect();
    entry
}

fn topic_entry(topic: &TopicMeta, node_id: i32) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(topic_name(&topic.name));
    entry.topic_id = uuid::Uuid::from_bytes(topic.id);
    entry.is_internal = topic.internal;
    entry.topic_authorized_operations = OPERATIONS_NOT_REQUESTED;
    entry.partitions = (0..topic.partitions)
        .map(|index| {
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = index;
            partition.leader_id = BrokerId(node_id);
            partition.leader_epoch = 0;
            partition.replica_nodes = vec![BrokerId(node_id)];
            partition.isr_nodes = vec![BrokerId(node_id)];
            partition
        })
        .collect();
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(name: &str) -> TopicMeta {
        TopicMeta {
            name: name.to_string(),
            id: [7; 16],
            partitions: 1,
            configs: Default::default(),
            internal: false,
            cluster: true,
        }
    }

    #[test]
    fn a_log_topics_copy_is_leader_not_available_until_the_view_catches_up() {
        let catalog = Catalog::default()
            .with_topic(copy("orders"))
            .expect("valid topic")
            .with_metadata_index(40);
        let behind = ClusterTopics {
            applied_index: 12,
            ..ClusterTopics::default()
        };
        let topics = Topics {
            catalog: &catalog,
            cluster: Some(&behind),
            node_id: 1,
        };
        let entry = topics.requested(Some("orders"), &uuid::Uuid::nil());
        assert_eq!(entry.error_code, ErrorCode::LeaderNotAvailable.code());
        let listed = topics.all();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].error_code, ErrorCode::LeaderNotAvailable.code());
        // Caught up, and the log has no such topic: the copy is gone.
        let caught_up = ClusterTopics {
            applied_index: 40,
            ..ClusterTopics::default()
        };
        let topics = Topics {
            catalog: &catalog,
            cluster: Some(&caught_up),
            node_id: 1,
        };
        let entry = topics.requested(Some("orders"), &uuid::Uuid::nil());
        assert_eq!(entry.error_code, ErrorCode::UnknownTopicOrPartition.code());
        assert!(topics.all().is_empty());
    }
}
