//! One file per Kafka API. Each `handle` takes the decoded request and returns its staged
//! response (see `api_table::Handler`).

pub mod acl_wire;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod cluster_forward;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use crate::metadata::{Catalog, TopicMeta};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub(crate) fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// A response's `error_code` and `error_message`: the message goes out only with an error
/// and is null otherwise (as Kafka; never "").
pub(crate) fn error_fields(
    error: crate::model::ErrorCode,
    message: Option<&str>,
) -> (i16, Option<StrBytes>) {
    let message = message.filter(|m| error.is_error() && !m.is_empty());
    (error.code(), message.map(str_bytes))
}

/// Looks a topic up by id when the request carries one (v13+ style), else by name.
pub(crate) fn resolve_topic<'a>(
    catalog: &'a Catalog,
    name: &str,
    id: &uuid::Uuid,
) -> Option<&'a TopicMeta> {
    if !id.is_nil() {
        return catalog.topic_by_id(id.as_bytes());
    }
    catalog.topic(name)
}

/// The leader epoch of `partition` of `topic` as this broker reports it in Metadata: the
/// metadata log's in cluster mode; 0 in single-broker mode and for this broker's own topics
/// the log does not name (the epoch produce stamps into their batches).
pub(crate) fn partition_leader_epoch(topic: &str, partition: i32) -> i32 {
    crate::quorum::view::cluster_topics()
        .and_then(|topics| {
            let index = usize::try_from(partition).ok()?;
            Some(
                topics
                    .topics
                    .get(topic)?
                    .partitions
                    .get(index)?
                    .leader_epoch,
            )
        })
        .unwrap_or(0)
}

/// KIP-320: a request's `current_leader_epoch` for a partition this broker leads, against
/// the partition's (`partition_leader_epoch`). -1 is not checked; an older epoch is
/// FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.
pub(crate) fn check_current_leader_epoch(
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> crate::model::ErrorCode {
    if current_leader_epoch < 0 {
        return crate::model::ErrorCode::None;
    }
    let epoch = partition_leader_epoch(topic, partition);
    match crate::replication::check_leader_epoch(current_leader_epoch, epoch) {
        Ok(()) => crate::model::ErrorCode::None,
        Err(code) => code,
    }
}
