//! DescribeQuorum (key 55): the metadata quorum (`__cluster_metadata` partition 0) as its raft
//! leader sees it. The shard reads the leader's `QuorumState` from its cluster view (published
//! by the controller thread); no lock is taken. As in Kafka's raft client, a request for any
//! other topic partition gets UNKNOWN_TOPIC_OR_PARTITION and a node that is not the raft
//! leader answers NOT_LEADER_OR_FOLLOWER (Kafka brokers would forward; shardlog does not).
//! Single-broker mode has no quorum: the top-level error is UNSUPPORTED_VERSION, which the
//! Java Admin's `describeMetadataQuorum` raises as `UnsupportedVersionException`, as it does
//! against a ZooKeeper-mode Kafka.

use super::str_bytes;
use crate::model::ErrorCode;
use crate::quorum::frame::{QuorumState, VoterProgress};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestKind, TopicName,
};
use std::rc::Rc;

/// Kafka's metadata log topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The listener name DescribeQuorum v2 reports for the controller endpoints.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeQuorum(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let voters = shard.config.cluster.quorum_voters().ok().flatten();
        let response = match (voters, crate::quorum::view::shard_view()) {
            (Some(voters), Some(view)) => {
                let mut response = answer(&request, view.quorum.as_ref());
                if context.version >= 2 {
                    response.nodes = voters.iter().map(voter_node).collect();
                }
                response
            }
            _ => {
                let mut response = DescribeQuorumResponse::default();
                response.error_code = ErrorCode::UnsupportedVersion.code();
                response.error_message = Some(str_bytes(
                    "single-broker mode has no metadata quorum (start with --controller-quorum)",
                ));
                response
            }
        };
        context.respond(&response).map(Some)
    })
}

/// The response for `request` given the leader's quorum state (`None`: not the leader).
fn answer(request: &DescribeQuorumRequest, quorum: Option<&QuorumState>) -> DescribeQuorumResponse {
    let mut partition = PartitionData::default();
    partition.partition_index = 0;
    let asks_metadata_partition = request.topics.len() == 1
        && request.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == 0;
    match quorum {
        _ if !asks_metadata_partition => {
            partition.error_code = ErrorCode::UnknownTopicOrPartition.code();
        }
        None => {
            partition.error_code = ErrorCode::NotLeaderOrFollower.code();
            partition.leader_id = BrokerId(-1);
            partition.leader_epoch = -1;
            partition.high_watermark = -1;
        }
        Some(quorum) => {
            partition.leader_id = BrokerId(quorum.leader_id);
            partition.leader_epoch = i32::try_from(quorum.leader_epoch).unwrap_or(i32::MAX);
            partition.high_watermark = quorum.high_watermark;
            partition.current_voters = quorum.voters.iter().map(replica_state).collect();
            partition.observers = quorum.observers.iter().map(replica_state).collect();
        }
    }
    let mut topic = TopicData::default();
    topic.topic_name = TopicName(str_bytes(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut response = DescribeQuorumResponse::default();
    response.topics = vec![topic];
    response
}

fn replica_state(replica: &VoterProgress) -> ReplicaState {
    let mut state = ReplicaState::default();
    state.replica_id = BrokerId(replica.node_id);
    state.log_end_offset = replica.log_end_offset;
    state.last_fetch_timestamp = replica.last_fetch_timestamp;
    state.last_caught_up_timestamp = replica.last_caught_up_timestamp;
    state
}

fn voter_node(voter: &crate::config::QuorumVoter) -> Node {
    let (host, port) = voter
        .address
        .rsplit_once(':')
        .map_or((voter.address.as_str(), "0"), |(host, port)| (host, port));
    let mut listener = Listener::default();
    listener.name = str_bytes(CONTROLLER_LISTENER);
    listener.host = str_bytes(host.trim_start_matches('[').trim_end_matches(']'));
    listener.port = port.parse().unwrap_or(0);
    let mut node = Node::default();
    node.node_id = BrokerId(voter.node_id);
    node.listeners = vec![listener];
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_request;

    fn request(topic: &str, partition: i32) -> DescribeQuorumRequest {
        let mut partition_data = describe_quorum_request::PartitionData::default();
        partition_data.partition_index = partition;
        let mut topic_data = describe_quorum_request::TopicData::default();
        topic_data.topic_name = TopicName(str_bytes(topic));
        topic_data.partitions = vec![partition_data];
        let mut request = DescribeQuorumRequest::default();
        request.topics = vec![topic_data];
        request
    }

    fn partition(response: &DescribeQuorumResponse) -> &PartitionData {
        &response.topics[0].partitions[0]
    }

    #[test]
    fn quorum_describe_leader_reports_voters() {
        let quorum = QuorumState {
            leader_id: 2,
            leader_epoch: 5,
            high_watermark: 40,
            voters: vec![
                VoterProgress {
                    node_id: 1,
                    log_end_offset: 38,
                    last_fetch_timestamp: 100,
                    last_caught_up_timestamp: -1,
                },
                VoterProgress {
                    node_id: 2,
                    log_end_offset: 41,
                    last_fetch_timestamp: 200,
                    last_caught_up_timestamp: 200,
                },
            ],
            observers: vec![VoterProgress {
                node_id: 4,
                log_end_offset: 40,
                last_fetch_timestamp: 150,
                last_caught_up_timestamp: 150,
            }],
        };
        let response = answer(&request(METADATA_TOPIC, 0), Some(&quorum));
        let data = partition(&response);
        assert_eq!(data.error_code, 0);
        assert_eq!(data.leader_id, BrokerId(2));
        assert_eq!(data.leader_epoch, 5);
        assert_eq!(data.high_watermark, 40);
        assert_eq!(data.current_voters.len(), 2);
        assert_eq!(data.current_voters[0].log_end_offset, 38);
        assert_eq!(data.current_voters[0].last_caught_up_timestamp, -1);
        assert_eq!(data.observers.len(), 1);
        assert_eq!(data.observers[0].replica_id, BrokerId(4));
        assert_eq!(data.observers[0].log_end_offset, 40);
    }

    #[test]
    fn quorum_describe_non_leader_and_wrong_partition_are_refused() {
        let response = answer(&request(METADATA_TOPIC, 0), None);
        assert_eq!(
            partition(&response).error_code,
            ErrorCode::NotLeaderOrFollower.code()
        );
        let quorum = QuorumState::default();
        let response = answer(&request("orders", 0), Some(&quorum));
        assert_eq!(
            partition(&response).error_code,
            ErrorCode::UnknownTopicOrPartition.code()
        );
        let response = answer(&request(METADATA_TOPIC, 1), Some(&quorum));
        assert_eq!(
            partition(&response).error_code,
            ErrorCode::UnknownTopicOrPartition.code()
        );
    }
}
