//! DescribeTopicPartitions (key 75, v0, KIP-966): topics and their partitions, a page at a
//! time. The Java AdminClient 4.x `describeTopics` uses it when the broker offers it.
//!
//! Paging, as Kafka's broker does it: the topics (all of them when the request names none)
//! are taken in name order from the cursor's topic on, starting that topic at the cursor's
//! partition; at most `min(response_partition_limit, server.describe_topic_partitions_
//! response_partitions_max)` partitions (at least 1) are described, and when some are left
//! `next_cursor` names the first of them. A cursor whose topic is not among the named topics,
//! or whose partition is negative, is INVALID_REQUEST for every named topic. Named topics
//! that do not exist get UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an invalid
//! name) and take no room in the page. This broker's own topics: leader = this broker, epoch
//! 0, no eligible leader replicas. Cluster mode adds the metadata log's topics with their
//! leaders, epochs, replicas, ISR, ELR and last-known ELR (KIP-966), as Metadata reports them.
//! Pure over the catalog and the cluster view: no I/O.

use super::topic_name;
use crate::metadata::{Catalog, TopicMeta, validate_topic_name};
use crate::model::ErrorCode;
use crate::quorum::topics::{ClusterTopic, ClusterTopics};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, RequestKind,
};
use std::collections::BTreeSet;
use std::rc::Rc;

/// Kafka's "authorized operations not computed" sentinel (no ACLs here yet).
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeTopicPartitions(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let server = &shard.config.server;
        let cluster = crate::quorum::view::cluster_topics();
        let response = describe(
            &shard.catalog(),
            cluster.as_deref(),
            &request,
            server.describe_topic_partitions_response_partitions_max,
            server.node_id,
        );
        context.respond(&response).map(Some)
    })
}

/// The response to `request` over `catalog`, describing at most `partitions_max` partitions
/// (the configured ceiling) plus the client's own limit.
pub fn describe(
    catalog: &Catalog,
    cluster: Option<&ClusterTopics>,
    request: &DescribeTopicPartitionsRequest,
    partitions_max: usize,
    node_id: i32,
) -> DescribeTopicPartitionsResponse {
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map_or("", |(name, _)| name.as_str());
    let all_topics = request.topics.is_empty();
    let known = KnownTopics { catalog, cluster };
    let topics: BTreeSet<String> = if all_topics {
        known
            .names()
            .filter(|name| name.as_str() >= cursor_topic)
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|topic| topic.name.0.to_string())
            .filter(|name| name.as_str() >= cursor_topic)
            .collect()
    };
    let cursor_invalid = cursor
        .as_ref()
        .is_some_and(|(name, partition)| *partition < 0 || (!all_topics && !topics.contains(name)));
    if cursor_invalid {
        return invalid_request(request);
    }
    let client_limit = usize::try_from(request.response_partition_limit).unwrap_or(0);
    let mut remaining = client_limit.min(partitions_max).max(1);
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in &topics {
        if remaining == 0 {
            response.next_cursor = Some(cursor_at(name, 0));
            break;
        }
        let topic = match known.find(name) {
            Some(Known::NotCaughtUp(meta)) => {
                response.topics.push(not_caught_up(meta));
                continue;
            }
            Some(Known::Own(meta)) => Described::Own(meta, node_id),
            Some(Known::Cluster(cluster_topic)) => Described::Cluster(name, cluster_topic),
            None => {
                if !all_topics {
                    response.topics.push(missing_topic(name));
                }
                continue;
            }
        };
        let start = match &cursor {
            Some((cursor_name, partition)) if cursor_name == name => *partition,
            _ => 0,
        };
        let partition_count = topic.partition_count();
        let count = usize::try_from(partition_count.saturating_sub(start)).unwrap_or(0);
        let taken = count.min(remaining);
        let end = start.saturating_add(i32::try_from(taken).unwrap_or(i32::MAX));
        response.topics.push(topic.entry(start..end));
        if end < partition_count {
            response.next_cursor = Some(cursor_at(name, end));
            break;
        }
        remaining -= taken;
    }
    response
}

fn cursor_at(name: &str, partition_index: i32) -> Cursor {
    let mut cursor = Cursor::default();
    cursor.topic_name = topic_name(name);
    cursor.partition_index = partition_index;
    cursor
}

/// The topics this broker describes: its own (single broker, internal topics) and, in
/// cluster mode, the metadata log's, as Metadata reports them.
struct KnownTopics<'a> {
    catalog: &'a Catalog,
    cluster: Option<&'a ClusterTopics>,
}

enum Known<'a> {
    Own(&'a TopicMeta),
    Cluster(&'a ClusterTopic),
    /// A local copy of a log topic while this broker's metadata has not caught up.
    NotCaughtUp(&'a TopicMeta),
}

impl<'a> KnownTopics<'a> {
    fn is_own(&self, topic: &TopicMeta) -> bool {
        match self.cluster {
            None => true,
            Some(cluster) => !topic.cluster && !cluster.topics.contains_key(&topic.name),
        }
    }

    fn view_behind(&self) -> bool {
        self.cluster.is_some_and(|cluster| {
            cluster.applied_index == 0 || cluster.applied_index < self.catalog.metadata_index
        })
    }

    fn names(&self) -> impl Iterator<Item = String> + '_ {
        let own = self
            .catalog
            .topics()
            .filter(|topic| self.is_own(topic) || (topic.cluster && self.view_behind()))
            .map(|topic| topic.name.clone());
        let logged = self
            .cluster
            .into_iter()
            .flat_map(|c| c.topics.keys().cloned());
        own.chain(logged)
    }

    fn find(&self, name: &str) -> Option<Known<'a>> {
        if let Some(topic) = self.cluster.and_then(|cluster| cluster.topics.get(name)) {
            return Some(Known::Cluster(topic));
        }
        match self.catalog.topic(name) {
            Some(topic) if self.is_own(topic) => Some(Known::Own(topic)),
            Some(topic) if topic.cluster && self.view_behind() => Some(Known::NotCaughtUp(topic)),
            _ => None,
        }
    }
}

/// A topic being described: this broker's own (it leads every partition, epoch 0) or a
/// metadata-log topic with its leaders, replicas, ISR and KIP-966 eligible leader replicas.
enum Described<'a> {
    Own(&'a TopicMeta, i32),
    Cluster(&'a str, &'a ClusterTopic),
}

impl Described<'_> {
    fn partition_count(&self) -> i32 {
        match self {
            Described::Own(topic, _) => topic.partitions,
            Described::Cluster(_, topic) => {
                i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX)
            }
        }
    }

    fn entry(&self, partitions: std::ops::Range<i32>) -> DescribeTopicPartitionsResponseTopic {
        let mut entry = DescribeTopicPartitionsResponseTopic::default();
        entry.error_code = ErrorCode::None.code();
        entry.topic_authorized_operations = OPERATIONS_OMITTED;
        let brokers = |nodes: &[i32]| nodes.iter().map(|node| BrokerId(*node)).collect();
        match self {
            Described::Own(topic, node_id) => {
                entry.name = Some(topic_name(&topic.name));
                entry.topic_id = uuid::Uuid::from_bytes(topic.id);
                entry.is_internal = topic.internal;
                entry.partitions = partitions
                    .map(|index| {
                        let mut partition = DescribeTopicPartitionsResponsePartition::default();
                        partition.partition_index = index;
                        partition.leader_id = BrokerId(*node_id);
                        partition.replica_nodes = vec![BrokerId(*node_id)];
                        partition.isr_nodes = vec![BrokerId(*node_id)];
                        partition.eligible_leader_replicas = Some(Vec::new());
                        partition.last_known_elr = Some(Vec::new());
                        partition
                    })
                    .collect();
            }
            Described::Cluster(name, topic) => {
                entry.name = Some(topic_name(name));
                entry.topic_id = uuid::Uuid::from_bytes(topic.id);
                entry.is_internal =
                    super::find_coordinator::CoordinatorTopic::named(name).is_some();
                entry.partitions = partitions
                    .filter_map(|index| {
                        let state = topic.partitions.get(usize::try_from(index).ok()?)?;
                        let mut partition = DescribeTopicPartitionsResponsePartition::default();
                        partition.partition_index = index;
                        partition.leader_id = BrokerId(state.leader);
                        partition.leader_epoch = state.leader_epoch;
                        partition.replica_nodes = brokers(&state.replicas);
                        partition.isr_nodes = brokers(&state.isr);
                        partition.eligible_leader_replicas = Some(brokers(&state.elr));
                        partition.last_known_elr = Some(brokers(&state.last_known_elr));
                        partition.offline_replicas = brokers(&state.offline_replicas);
                        if state.leader < 0 {
                            partition.error_code = ErrorCode::LeaderNotAvailable.code();
                        }
                        Some(partition)
                    })
                    .collect();
            }
        }
        entry
    }
}

/// LEADER_NOT_AVAILABLE (retriable), as Metadata answers for a log topic's local copy before
/// this broker's metadata caught up.
fn not_caught_up(topic: &TopicMeta) -> DescribeTopicPartitionsResponseTopic {
    let mut entry = DescribeTopicPartitionsResponseTopic::default();
    entry.error_code = ErrorCode::LeaderNotAvailable.code();
    entry.name = Some(topic_name(&topic.name));
    entry.topic_id = uuid::Uuid::from_bytes(topic.id);
    entry.topic_authorized_operations = OPERATIONS_OMITTED;
    entry
}

fn missing_topic(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let mut entry = DescribeTopicPartitionsResponseTopic::default();
    entry.error_code = match validate_topic_name(name) {
        Ok(()) => ErrorCode::UnknownTopicOrPartition,
        Err(_) => ErrorCode::InvalidTopicException,
    }
    .code();
    entry.name = Some(topic_name(name));
    entry.topic_authorized_operations = OPERATIONS_OMITTED;
    entry
}

/// Kafka's error response: every named topic with the error and no partitions.
fn invalid_request(request: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = DescribeTopicPartitionsResponseTopic::default();
            entry.error_code = ErrorCode::InvalidRequest.code();
            entry.name = Some(topic.name.clone());
            entry.topic_authorized_operations = OPERATIONS_OMITTED;
            entry
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_topic_partitions_request::{
        Cursor as RequestCursor, TopicRequest,
    };

    const NODE: i32 = 7;

    /// Topics "a" (3 partitions), "b" (1), "c" (4).
    fn catalog() -> Catalog {
        [("a", 3), ("b", 1), ("c", 4)].into_iter().enumerate().fold(
            Catalog::default(),
            |catalog, (index, (name, partitions))| {
                let meta = TopicMeta {
                    name: name.to_string(),
                    id: [u8::try_from(index + 1).unwrap_or(0); 16],
                    partitions,
                    configs: Default::default(),
                    internal: false,
                    cluster: false,
                };
                catalog.with_topic(meta).expect("valid topic")
            },
        )
    }

    fn request(
        topics: &[&str],
        limit: i32,
        cursor: Option<(&str, i32)>,
    ) -> DescribeTopicPartitionsRequest {
        let mut request = DescribeTopicPartitionsRequest::default();
        request.topics = topics
            .iter()
            .map(|name| {
                let mut topic = TopicRequest::default();
                topic.name = topic_name(name);
                topic
            })
            .collect();
        request.response_partition_limit = limit;
        request.cursor = cursor.map(|(name, partition)| {
            let mut cursor = RequestCursor::default();
            cursor.topic_name = topic_name(name);
            cursor.partition_index = partition;
            cursor
        });
        request
    }

    /// (topic, error, partition indexes) per topic, and the next cursor.
    type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

    fn page(response: &DescribeTopicPartitionsResponse) -> Page {
        let topics = response
            .topics
            .iter()
            .map(|topic| {
                let name = topic.name.as_ref().map(|n| n.0.to_string());
                let partitions = topic.partitions.iter().map(|p| p.partition_index);
                (
                    name.unwrap_or_default(),
                    topic.error_code,
                    partitions.collect(),
                )
            })
            .collect();
        let cursor = response
            .next_cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        (topics, cursor)
    }

    fn ok(name: &str, partitions: &[i32]) -> (String, i16, Vec<i32>) {
        (name.to_string(), 0, partitions.to_vec())
    }

    #[test]
    fn all_topics_in_name_order_when_none_are_named() {
        let response = describe(&catalog(), None, &request(&[], 2000, None), 2000, NODE);
        let expected = vec![ok("a", &[0, 1, 2]), ok("b", &[0]), ok("c", &[0, 1, 2, 3])];
        assert_eq!(page(&response), (expected, None));
        let partition = &response.topics[0].partitions[1];
        assert_eq!(partition.leader_id, BrokerId(NODE));
        assert_eq!(partition.replica_nodes, vec![BrokerId(NODE)]);
        assert_eq!(partition.isr_nodes, vec![BrokerId(NODE)]);
        assert_eq!(response.topics[0].topic_id, uuid::Uuid::from_bytes([1; 16]));
    }

    #[test]
    fn pages_follow_the_cursor_through_every_partition_once() {
        let catalog = catalog();
        let mut cursor: Option<(String, i32)> = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let asked = request(&[], 3, cursor.as_ref().map(|(n, p)| (n.as_str(), *p)));
            let (topics, next) = page(&describe(&catalog, None, &asked, 2000, NODE));
            let described: usize = topics.iter().map(|(_, _, p)| p.len()).sum();
            assert!(described <= 3, "page over the limit: {topics:?}");
            for (name, _, partitions) in topics {
                seen.extend(partitions.into_iter().map(|p| (name.clone(), p)));
            }
            pages += 1;
            assert!(pages <= 10, "paging does not end");
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let all: Vec<(String, i32)> = [("a", 3), ("b", 1), ("c", 4)]
            .iter()
            .flat_map(|(name, count)| (0..*count).map(move |p| (name.to_string(), p)))
            .collect();
        assert_eq!(seen, all);
        assert_eq!(pages, 3);
    }

    #[test]
    fn limit_cuts_inside_a_topic_and_at_a_topic_boundary() {
        let catalog = catalog();
        let inside = describe(&catalog, None, &request(&["a", "c"], 5, None), 2000, NODE);
        let expected = vec![ok("a", &[0, 1, 2]), ok("c", &[0, 1])];
        assert_eq!(page(&inside), (expected, Some(("c".to_string(), 2))));
        let boundary = describe(&catalog, None, &request(&["a", "c"], 3, None), 2000, NODE);
        let expected = vec![ok("a", &[0, 1, 2])];
        assert_eq!(page(&boundary), (expected, Some(("c".to_string(), 0))));
        // The broker's ceiling wins over a larger client limit; a limit below 1 counts as 1.
        let ceiling = describe(&catalog, None, &request(&["c"], 2000, None), 2, NODE);
        assert_eq!(
            page(&ceiling),
            (vec![ok("c", &[0, 1])], Some(("c".to_string(), 2)))
        );
        let zero = describe(
            &catalog,
            None,
            &request(&["c"], 0, Some(("c", 3))),
            2000,
            NODE,
        );
        assert_eq!(page(&zero), (vec![ok("c", &[3])], None));
    }

    #[test]
    fn unknown_and_invalid_named_topics_get_errors_and_take_no_room() {
        let catalog = catalog();
        let unknown = ErrorCode::UnknownTopicOrPartition.code();
        let invalid = ErrorCode::InvalidTopicException.code();
        let response = describe(
            &catalog,
            None,
            &request(&["nope", "b@d", "b"], 2, None),
            2000,
            NODE,
        );
        let expected = vec![
            ok("b", &[0]),
            ("b@d".to_string(), invalid, vec![]),
            ("nope".to_string(), unknown, vec![]),
        ];
        assert_eq!(page(&response), (expected, None));
        // Once the page is full, the next named topic is the cursor, known or not (as Kafka).
        let full = describe(
            &catalog,
            None,
            &request(&["nope", "b@d", "c"], 4, None),
            2000,
            NODE,
        );
        let expected = vec![("b@d".to_string(), invalid, vec![]), ok("c", &[0, 1, 2, 3])];
        assert_eq!(page(&full), (expected, Some(("nope".to_string(), 0))));
    }

    #[test]
    fn a_cursor_outside_the_named_topics_or_negative_is_invalid_request() {
        let invalid = ErrorCode::InvalidRequest.code();
        for cursor in [("zzz", 0), ("a", -1)] {
            let response = describe(
                &catalog(),
                None,
                &request(&["a", "c"], 10, Some(cursor)),
                2000,
                NODE,
            );
            let expected = vec![
                ("a".to_string(), invalid, vec![]),
                ("c".to_string(), invalid, vec![]),
            ];
            assert_eq!(page(&response), (expected, None), "{cursor:?}");
        }
    }

    #[test]
    fn cluster_topics_show_their_leaders_isr_and_eligible_leader_replicas() {
        use crate::quorum::topics::ClusterPartition;
        let partition = |leader: i32, isr: Vec<i32>, elr: Vec<i32>| ClusterPartition {
            leader,
            leader_epoch: 7,
            partition_epoch: 9,
            replicas: vec![2, 3, 1],
            isr,
            elr,
            last_known_elr: vec![1],
            offline_replicas: vec![1],
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        let logged = ClusterTopic {
            id: [9; 16],
            partitions: vec![
                partition(2, vec![2], vec![3]),
                partition(-1, vec![], vec![]),
            ],
            configs: Default::default(),
        };
        let cluster = ClusterTopics {
            applied_index: 5,
            topics: [("d".to_string(), logged)].into_iter().collect(),
            producer_id_bound: 0,
            broker_epochs: Default::default(),
            default_configs: Default::default(),
            group_configs: Default::default(),
        };
        let response = describe(
            &catalog(),
            Some(&cluster),
            &request(&[], 2000, None),
            2000,
            NODE,
        );
        let names: Vec<_> = response
            .topics
            .iter()
            .map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        assert_eq!(
            names,
            ["a", "b", "c", "d"].map(|n| Some(n.to_string())),
            "own topics and the log's, in name order"
        );
        let d = &response.topics[3];
        let ids = |nodes: &[BrokerId]| nodes.iter().map(|n| n.0).collect::<Vec<_>>();
        let led = &d.partitions[0];
        assert_eq!(led.leader_id.0, 2);
        assert_eq!(led.leader_epoch, 7);
        assert_eq!(ids(&led.replica_nodes), [2, 3, 1]);
        assert_eq!(ids(&led.isr_nodes), [2]);
        assert_eq!(
            led.eligible_leader_replicas.as_deref().map(ids),
            Some(vec![3])
        );
        assert_eq!(led.last_known_elr.as_deref().map(ids), Some(vec![1]));
        assert_eq!(ids(&led.offline_replicas), [1]);
        assert_eq!(
            d.partitions[1].error_code,
            ErrorCode::LeaderNotAvailable.code()
        );
        assert_eq!(
            response.topics[0].partitions[0].leader_id.0, NODE,
            "own topic: this broker"
        );
    }
}
