//! OffsetFetch (key 9): committed offsets of one group (v0–7) or several (v8+); -1 for
//! partitions without a commit. A null topic list means every committed partition. v9+
//! names the member: a consumer-protocol group checks it and its epoch (group-level
//! UNKNOWN_MEMBER_ID / STALE_MEMBER_EPOCH).

use super::{str_bytes, topic_name};
use crate::model::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{FetchedOffset, GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchResponse, RequestKind};
use std::collections::BTreeMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::OffsetFetch(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = OffsetFetchResponse::default();
        if context.version >= 8 {
            for group in &request.groups {
                let wanted = group.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .flat_map(|t| {
                            t.partition_indexes
                                .iter()
                                .map(|p| (t.name.0.to_string(), *p))
                        })
                        .collect()
                });
                let group_id = group.group_id.0.to_string();
                let member = (
                    group.member_id.as_ref().map(|id| id.to_string()),
                    group.member_epoch,
                );
                let outcome = fetch(
                    &shard,
                    &context,
                    &group_id,
                    member,
                    wanted,
                    request.require_stable,
                )
                .await?;
                let mut entry = OffsetFetchResponseGroup::default();
                entry.group_id = GroupId(str_bytes(&group_id));
                match outcome {
                    Ok(offsets) => entry.topics = by_topic_v8(offsets),
                    Err(error) => entry.error_code = error.code(),
                }
                response.groups.push(entry);
            }
        } else {
            let wanted = request.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(|p| (t.name.0.to_string(), *p))
                    })
                    .collect()
            });
            match fetch(
                &shard,
                &context,
                &request.group_id.0,
                (None, -1),
                wanted.clone(),
                request.require_stable,
            )
            .await?
            {
                Ok(offsets) => response.topics = by_topic(offsets),
                // v0 and v1 have no group-level error field (the encoder drops it): as Kafka,
                // each requested partition carries the error instead, so a client never reads
                // "no committed offset" from a coordinator that is moving.
                Err(error) if context.version < 2 => {
                    response.topics = by_topic(
                        wanted
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(topic, partition)| FetchedOffset {
                                topic,
                                partition,
                                offset: -1,
                                leader_epoch: -1,
                                metadata: String::new(),
                                error,
                            })
                            .collect(),
                    )
                }
                Err(error) => response.error_code = error.code(),
            }
        }
        context.respond(&response).map(Some)
    })
}

/// One group's committed offsets. The authorizer: DESCRIBE on the group (else
/// GROUP_AUTHORIZATION_FAILED), DESCRIBE on each topic: a named partition of a topic the
/// principal may not describe is TOPIC_AUTHORIZATION_FAILED, and such topics are left out of
/// an every-partition answer, as Kafka does.
async fn fetch(
    shard: &Rc<Shard>,
    context: &RequestContext,
    group_id: &str,
    member: (Option<String>, i32),
    partitions: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Result<Result<Vec<FetchedOffset>, ErrorCode>, HandlerError> {
    if let Err(denied) = authorize::group(shard, context, AclOperation::Describe, group_id) {
        return Ok(Err(denied));
    }
    if group_id.is_empty() {
        return Ok(Err(ErrorCode::InvalidGroupId));
    }
    let named = partitions.is_some();
    let owned = group_id.to_string();
    let fetched = shard
        .group_call(group_id, |reply| GroupOp::FetchOffsets {
            group_id: owned,
            member,
            partitions,
            require_stable,
            reply,
        })
        .await?;
    if !authorize::enabled(shard) {
        return Ok(fetched);
    }
    Ok(fetched.map(|offsets| {
        offsets
            .into_iter()
            .filter_map(|mut offset| {
                if authorize::topic(shard, context, AclOperation::Describe, &offset.topic).is_ok() {
                    return Some(offset);
                }
                named.then(|| {
                    offset.offset = -1;
                    offset.metadata = String::new();
                    offset.error = ErrorCode::TopicAuthorizationFailed;
                    offset
                })
            })
            .collect()
    }))
}

fn group_by_topic(offsets: Vec<FetchedOffset>) -> BTreeMap<String, Vec<FetchedOffset>> {
    let mut topics: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
    for offset in offsets {
        topics.entry(offset.topic.clone()).or_default().push(offset);
    }
    topics
}

fn by_topic(offsets: Vec<FetchedOffset>) -> Vec<OffsetFetchResponseTopic> {
    group_by_topic(offsets)
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OffsetFetchResponseTopic::default();
            topic.name = topic_name(&name);
            topic.partitions = partitions
                .into_iter()
                .map(|o| {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = o.partition;
                    p.committed_offset = o.offset;
                    p.committed_leader_epoch = o.leader_epoch;
                    p.metadata = Some(str_bytes(&o.metadata));
                    p.error_code = o.error.code();
                    p
                })
                .collect();
            topic
        })
        .collect()
}

fn by_topic_v8(offsets: Vec<FetchedOffset>) -> Vec<OffsetFetchResponseTopics> {
    group_by_topic(offsets)
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OffsetFetchResponseTopics::default();
            topic.name = topic_name(&name);
            topic.partitions = partitions
                .into_iter()
                .map(|o| {
                    let mut p = OffsetFetchResponsePartitions::default();
                    p.partition_index = o.partition;
                    p.committed_offset = o.offset;
                    p.committed_leader_epoch = o.leader_epoch;
                    p.metadata = Some(str_bytes(&o.metadata));
                    p.error_code = o.error.code();
                    p
                })
                .collect();
            topic
        })
        .collect()
}
