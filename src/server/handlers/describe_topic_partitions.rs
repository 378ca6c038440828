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
//! name) and take no room in the page. Leader = this broker, epoch 0, no eligible leader
//! replicas (no replication yet). Pure over the catalog: no I/O.

use super::topic_name;
use crate::metadata::{Catalog, TopicMeta, validate_topic_name};
use crate::model::ErrorCode;
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
        let response = describe(
            &shard.catalog(),
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
    let topics: BTreeSet<String> = if all_topics {
        catalog
            .topics()
            .map(|topic| topic.name.clone())
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
        let Some(topic) = catalog.topic(name) else {
            if !all_topics {
                response.topics.push(missing_topic(name));
            }
            continue;
        };
        let start = match &cursor {
            Some((cursor_name, partition)) if cursor_name == name => *partition,
            _ => 0,
        };
        let count = usize::try_from(topic.partitions.saturating_sub(start)).unwrap_or(0);
        let taken = count.min(remaining);
        let end = start.saturating_add(i32::try_from(taken).unwrap_or(i32::MAX));
        response
            .topics
            .push(topic_entry(topic, start..end, node_id));
        if end < topic.partitions {
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

fn topic_entry(
    topic: &TopicMeta,
    partitions: std::ops::Range<i32>,
    node_id: i32,
) -> DescribeTopicPartitionsResponseTopic {
    let mut entry = DescribeTopicPartitionsResponseTopic::default();
    entry.error_code = ErrorCode::None.code();
    entry.name = Some(topic_name(&topic.name));
    entry.topic_id = uuid::Uuid::from_bytes(topic.id);
    entry.is_internal = topic.internal;
    entry.topic_authorized_operations = OPERATIONS_OMITTED;
    entry.partitions = partitions
        .map(|index| {
            let mut partition = DescribeTopicPartitionsResponsePartition::default();
            partition.error_code = ErrorCode::None.code();
            partition.partition_index = index;
            partition.leader_id = BrokerId(node_id);
            partition.leader_epoch = 0;
            partition.replica_nodes = vec![BrokerId(node_id)];
            partition.isr_nodes = vec![BrokerId(node_id)];
            partition.eligible_leader_replicas = Some(Vec::new());
            partition.last_known_elr = Some(Vec::new());
            partition.offline_replicas = Vec::new();
            partition
        })
        .collect();
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
        let response = describe(&catalog(), &request(&[], 2000, None), 2000, NODE);
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
            let (topics, next) = page(&describe(&catalog, &asked, 2000, NODE));
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
        let inside = describe(&catalog, &request(&["a", "c"], 5, None), 2000, NODE);
        let expected = vec![ok("a", &[0, 1, 2]), ok("c", &[0, 1])];
        assert_eq!(page(&inside), (expected, Some(("c".to_string(), 2))));
        let boundary = describe(&catalog, &request(&["a", "c"], 3, None), 2000, NODE);
        let expected = vec![ok("a", &[0, 1, 2])];
        assert_eq!(page(&boundary), (expected, Some(("c".to_string(), 0))));
        // The broker's ceiling wins over a larger client limit; a limit below 1 counts as 1.
        let ceiling = describe(&catalog, &request(&["c"], 2000, None), 2, NODE);
        assert_eq!(
            page(&ceiling),
            (vec![ok("c", &[0, 1])], Some(("c".to_string(), 2)))
        );
        let zero = describe(&catalog, &request(&["c"], 0, Some(("c", 3))), 2000, NODE);
        assert_eq!(page(&zero), (vec![ok("c", &[3])], None));
    }

    #[test]
    fn unknown_and_invalid_named_topics_get_errors_and_take_no_room() {
        let catalog = catalog();
        let unknown = ErrorCode::UnknownTopicOrPartition.code();
        let invalid = ErrorCode::InvalidTopicException.code();
        let response = describe(
            &catalog,
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
}
