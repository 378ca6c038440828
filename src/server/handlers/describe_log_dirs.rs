//! DescribeLogDirs (key 35): the one data directory, its partitions and their sizes, and
//! (v4+) the filesystem's total and usable bytes.

use super::{str_bytes, topic_name};
use crate::model::ShardId;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsResponse, RequestKind};
use std::collections::BTreeMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeLogDirs(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let calls = (0..shard.shard_count).map(|s| shard.log_sizes(ShardId(s)));
        let mut sizes: BTreeMap<String, BTreeMap<i32, u64>> = BTreeMap::new();
        for result in futures::future::join_all(calls).await {
            for (tp, size) in result? {
                sizes
                    .entry(tp.topic.to_string())
                    .or_default()
                    .insert(tp.partition, size);
            }
        }
        if let Some(wanted) = &request.topics {
            sizes.retain(|topic, partitions| {
                let Some(w) = wanted.iter().find(|w| w.topic.0.as_str() == topic) else {
                    return false;
                };
                partitions.retain(|p, _| w.partitions.contains(p));
                true
            });
        }
        let (log_dir, (total, usable)) =
            crate::shard::disk::describe_data_dir(&shard.config.storage.data_dir).await;
        let mut result = DescribeLogDirsResult::default();
        result.log_dir = str_bytes(&log_dir);
        result.total_bytes = total;
        result.usable_bytes = usable;
        result.topics = sizes
            .into_iter()
            .map(|(name, partitions)| {
                let mut topic = DescribeLogDirsTopic::default();
                topic.name = topic_name(&name);
                topic.partitions = partitions
                    .into_iter()
                    .map(|(index, size)| {
                        let mut partition = DescribeLogDirsPartition::default();
                        partition.partition_index = index;
                        partition.partition_size = size as i64;
                        partition
                    })
                    .collect();
                topic
            })
            .collect();
        let mut response = DescribeLogDirsResponse::default();
        response.results = vec![result];
        context.respond(&response).map(Some)
    })
}
