//! The one table of supported Kafka APIs: key, versions, handler. It drives dispatch,
//! the ApiVersions response and docs/protocol-coverage.md (checked by a test).

use super::context::{HandlerError, RequestContext, ResponseFrame};
use super::handlers::*;
use crate::protocol::kafka_releases;
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{ApiKey, RequestKind};
use std::future::Future;
use std::rc::Rc;

/// Stage 2 of a request: completes with the response (None: no response, acks=0).
pub type ResponseFuture = LocalBoxFuture<'static, Result<Option<ResponseFrame>, HandlerError>>;
/// A handler runs stage 1 (awaited by the connection's reader, in request order) and
/// returns stage 2 (run as a task; responses are still written in request order).
pub type Handler =
    fn(Rc<Shard>, RequestContext, RequestKind) -> LocalBoxFuture<'static, ResponseFuture>;

pub struct ApiRow {
    pub key: ApiKey,
    /// Kafka's name of the API (metrics label, docs).
    pub name: &'static str,
    pub min_version: i16,
    pub max_version: i16,
    pub handler: Handler,
}

macro_rules! row {
    ($key:ident, $min:expr, $max:expr, $handler:path) => {
        row(ApiKey::$key, stringify!($key), $min, $max, $handler)
    };
}

const fn row(
    key: ApiKey,
    name: &'static str,
    min_version: i16,
    max_version: i16,
    handler: Handler,
) -> ApiRow {
    ApiRow {
        key,
        name,
        min_version,
        max_version,
        handler,
    }
}

pub static API_TABLE: &[ApiRow] = &[
    row!(Produce, 3, 11, produce::handle),
    row!(Fetch, 4, 17, fetch::handle),
    row!(ListOffsets, 1, 10, list_offsets::handle),
    row!(Metadata, 0, 12, metadata::handle),
    row!(OffsetCommit, 2, 9, offset_commit::handle),
    row!(OffsetFetch, 1, 9, offset_fetch::handle),
    row!(FindCoordinator, 0, 4, find_coordinator::handle),
    row!(JoinGroup, 0, 9, join_group::handle),
    row!(Heartbeat, 0, 4, heartbeat::handle),
    row!(LeaveGroup, 0, 5, leave_group::handle),
    row!(SyncGroup, 0, 5, sync_group::handle),
    row!(DescribeGroups, 0, 6, describe_groups::handle),
    row!(ListGroups, 0, 5, list_groups::handle),
    row!(SaslHandshake, 0, 1, sasl_handshake::handle),
    row!(ApiVersions, 0, 4, api_versions::handle),
    row!(CreateTopics, 2, 7, create_topics::handle),
    row!(DeleteTopics, 1, 6, delete_topics::handle),
    row!(DeleteRecords, 0, 2, delete_records::handle),
    row!(InitProducerId, 0, 4, init_producer_id::handle),
    row!(OffsetForLeaderEpoch, 2, 4, offset_for_leader_epoch::handle),
    row!(AddPartitionsToTxn, 0, 4, add_partitions_to_txn::handle),
    row!(AddOffsetsToTxn, 0, 3, add_offsets_to_txn::handle),
    row!(EndTxn, 0, 3, end_txn::handle),
    row!(WriteTxnMarkers, 1, 1, write_txn_markers::handle),
    row!(TxnOffsetCommit, 0, 3, txn_offset_commit::handle),
    row!(DescribeConfigs, 1, 4, describe_configs::handle),
    row!(AlterConfigs, 0, 2, alter_configs::handle),
    row!(DescribeLogDirs, 1, 4, describe_log_dirs::handle),
    row!(SaslAuthenticate, 0, 2, sasl_authenticate::handle),
    row!(DescribeAcls, 1, 3, describe_acls::handle),
    row!(CreateAcls, 1, 3, create_acls::handle),
    row!(DeleteAcls, 1, 3, delete_acls::handle),
    row!(CreatePartitions, 0, 3, create_partitions::handle),
    row!(DeleteGroups, 0, 2, delete_groups::handle),
    row!(ElectLeaders, 0, 2, elect_leaders::handle),
    row!(
        IncrementalAlterConfigs,
        0,
        1,
        incremental_alter_configs::handle
    ),
    row!(
        AlterPartitionReassignments,
        0,
        0,
        alter_partition_reassignments::handle
    ),
    row!(
        ListPartitionReassignments,
        0,
        0,
        list_partition_reassignments::handle
    ),
    row!(OffsetDelete, 0, 0, offset_delete::handle),
    row!(
        DescribeUserScramCredentials,
        0,
        0,
        describe_user_scram_credentials::handle
    ),
    row!(
        AlterUserScramCredentials,
        0,
        0,
        alter_user_scram_credentials::handle
    ),
    row!(DescribeQuorum, 0, 2, describe_quorum::handle),
    row!(DescribeCluster, 0, 1, describe_cluster::handle),
    row!(DescribeProducers, 0, 0, describe_producers::handle),
    row!(DescribeTransactions, 0, 0, describe_transactions::handle),
    row!(ListTransactions, 0, 1, list_transactions::handle),
    row!(
        DescribeTopicPartitions,
        0,
        0,
        describe_topic_partitions::handle
    ),
    row!(ListConfigResources, 0, 1, list_config_resources::handle),
    row!(
        ConsumerGroupHeartbeat,
        0,
        1,
        consumer_group_heartbeat::handle
    ),
    row!(ConsumerGroupDescribe, 0, 1, consumer_group_describe::handle),
];

pub fn find(api_key: i16) -> Option<&'static ApiRow> {
    API_TABLE.iter().find(|row| row.key as i16 == api_key)
}

/// Wraps a one-stage handler body: nothing to do in stage 1.
pub fn single_stage<F>(work: F) -> LocalBoxFuture<'static, ResponseFuture>
where
    F: Future<Output = Result<Option<ResponseFrame>, HandlerError>> + 'static,
{
    let completion: ResponseFuture = Box::pin(work);
    Box::pin(std::future::ready(completion))
}

/// The Kafka release the protocol-coverage table compares each range with.
pub const COMPARED_KAFKA_RELEASE: &str = "4.1";

/// The protocol-coverage table in Markdown, as docs/protocol-coverage.md holds it: each
/// API's advertised range, the Kafka release that introduced its max version (the range
/// is what that release offers, minus the versions Kafka 4.0 removed), and Kafka 4.1's range.
pub fn coverage_markdown() -> String {
    let mut text = format!(
        "| API | key | versions | max version from | Kafka {COMPARED_KAFKA_RELEASE} |\n|---|---|---|---|---|\n"
    );
    for row in API_TABLE {
        let introduced = kafka_releases::version_introduced_in(row.key, row.max_version)
            .map_or_else(|| "?".to_string(), |release| format!("Kafka {release}"));
        let compared = kafka_releases::newest_version_in(row.key, COMPARED_KAFKA_RELEASE)
            .map_or_else(
                || "—".to_string(),
                |max| format!("{}–{max}", kafka_releases::kafka_4_min_version(row.key)),
            );
        text.push_str(&format!(
            "| {} | {} | {}–{} | {introduced} | {compared} |\n",
            row.name, row.key as i16, row.min_version, row.max_version
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_versions_are_within_the_codec() {
        for row in API_TABLE {
            let codec = row.key.valid_versions();
            assert!(
                row.min_version >= codec.min && row.max_version <= codec.max,
                "{:?}",
                row.key
            );
        }
    }

    /// KIP-896: Kafka 4.0 removed the versions older clients used; shardlog advertises
    /// exactly Kafka 4.x's minimum of every API (JoinGroup v0-v1 as restored in 4.0.1).
    #[test]
    fn minimum_versions_are_kafka_4s() {
        for row in API_TABLE {
            assert_eq!(
                row.min_version,
                kafka_releases::kafka_4_min_version(row.key),
                "{:?}: min version differs from Kafka 4.x's",
                row.key
            );
        }
    }

    /// The coverage doc names the Kafka release of every advertised max version.
    #[test]
    fn every_max_version_has_its_kafka_release() {
        for row in API_TABLE {
            assert!(
                kafka_releases::version_introduced_in(row.key, row.max_version).is_some(),
                "{:?} v{}: add the Kafka release that introduced it to protocol/kafka_releases.rs",
                row.key,
                row.max_version
            );
        }
    }

    #[test]
    fn readme_lists_the_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&coverage_markdown()),
            "README.md API table is out of date"
        );
    }

    #[test]
    fn protocol_coverage_doc_matches_table() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/protocol-coverage.md"
        ))
        .unwrap_or_default();
        assert!(
            doc.contains(&coverage_markdown()),
            "docs/protocol-coverage.md is out of date; regenerate with `shardlog api-table`:\n{}",
            coverage_markdown()
        );
    }
}
