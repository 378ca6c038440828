//! The round-trip cases of api_round_trip.rs: one function per API, each sending its request
//! at the given version through the fixture and asserting a field only a correct answer has.

use super::*;

#[path = "api_round_trip_sasl_cases.rs"]
mod sasl;
use sasl::*;
#[path = "api_round_trip_consumer_group_cases.rs"]
mod consumer_groups;
use consumer_groups::*;

fn produce(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("produce", 1);
    fx.produce(&topic, 3, None);
    let response = fx.send(&Fixture::produce_request(&topic, 2, None, None), version);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(
        partition.base_offset, 3,
        "the batch follows the first three records"
    );
    assert_eq!(fx.latest_offset(&topic), 5);
}

fn fetch(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let mut fetch_topic = FetchTopic::default().with_partitions(vec![
        FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20),
    ]);
    if version >= 13 {
        fetch_topic.topic_id = fx.topic_id(&topic);
    } else {
        fetch_topic.topic = topic_name(&topic);
    }
    let request = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_topics(vec![fetch_topic]);
    let response = fx.send(&request, version);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.high_watermark, FIXTURE_RECORDS);
    let records = partition.records.as_ref().expect("records");
    // The first batch starts at offset 0 and is not empty.
    assert!(records.len() > 61, "{} bytes of records", records.len());
    assert_eq!(i64::from_be_bytes(records[..8].try_into().unwrap()), 0);
}

fn list_offsets(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let mut request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic_name(&topic))
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
    ]);
    if version >= 10 {
        request.timeout_ms = 5_000;
    }
    let response = fx.send(&request, version);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.offset, FIXTURE_RECORDS, "latest = high watermark");
}

fn metadata(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(&topic))),
    ]));
    let response = fx.send(&request, version);
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, i32::from(fx.port));
    let described = &response.topics[0];
    assert_eq!(described.error_code, NONE);
    assert_eq!(
        described.name.as_ref().map(|n| n.text()),
        Some(topic.text())
    );
    assert_eq!(described.partitions.len(), 1);
    assert_eq!(
        described.partitions[0].leader_id,
        response.brokers[0].node_id
    );
}

fn offset_commit(fx: &mut Fixture, version: i16) {
    let group = fx.unique("commit");
    let topic = fx.topic.clone();
    let response = fx.send(&commit_request(&group, "", -1, &topic, 1), version);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    assert_eq!(fx.committed_offset(&group, &topic), 1);
    if version >= 9 {
        consumer_group_commits(fx, version);
    }
}

fn commit_request(
    group: &str,
    member_id: &str,
    member_epoch: i32,
    topic: &str,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member_id))
        .with_generation_id_or_member_epoch(member_epoch)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ])
}

/// A ConsumerGroupHeartbeat that joins `member_id` (empty: the v0 coordinator names it) to
/// `group`, subscribed to `topic`.
fn consumer_group_join(group: &str, member_id: &str, topic: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member_id))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![topic_name(topic)]))
        .with_topic_partitions(Some(Vec::new()))
}

/// A one-member consumer-protocol group on the fixture topic; returns the group and member.
fn consumer_group_member(fx: &mut Fixture, prefix: &str) -> (String, String) {
    let group = fx.unique(prefix);
    let member_id = fx.unique("member");
    let topic = fx.topic.clone();
    let joined = fx.send(&consumer_group_join(&group, &member_id, &topic), 1);
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.member_epoch, 1);
    (group, member_id)
}

/// OffsetCommit v9+ to a consumer-protocol group (Kafka's `ConsumerGroup.validateOffsetCommit`):
/// the member's epoch commits; an older or newer one gets STALE_MEMBER_EPOCH (113), an unknown
/// member UNKNOWN_MEMBER_ID (25), and v8 from a member UNSUPPORTED_VERSION (35).
fn consumer_group_commits(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let (group, member) = consumer_group_member(fx, "cg-commit");
    let error = |fx: &mut Fixture, member: &str, epoch: i32, version: i16| {
        let response = fx.send(&commit_request(&group, member, epoch, &topic, 3), version);
        response.topics[0].partitions[0].error_code
    };
    assert_eq!(error(fx, &member, 1, version), NONE);
    assert_eq!(fx.committed_offset(&group, &topic), 3);
    assert_eq!(error(fx, &member, 0, version), 113, "stale epoch");
    assert_eq!(error(fx, &member, 2, version), 113, "epoch ahead");
    assert_eq!(error(fx, "no-such-member", 1, version), 25);
    assert_eq!(error(fx, "", -1, version), 25, "no member, group not empty");
    assert_eq!(error(fx, &member, 1, 8), 35, "a member must use v9+");
}

fn offset_fetch(fx: &mut Fixture, version: i16) {
    let group = fx.unique("fetch");
    let topic = fx.topic.clone();
    fx.commit_offset(&group, &topic, 2);
    let committed = if version >= 8 {
        fx.committed_offset(&group, &topic)
    } else {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partition_indexes(vec![0]),
            ]));
        let response = fx.send(&request, version);
        assert_eq!(response.error_code, NONE);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, NONE);
        partition.committed_offset
    };
    assert_eq!(committed, 2);
    if version >= 9 {
        consumer_group_fetches(fx, version);
    }
}

/// OffsetFetch v9+ naming the member of a consumer-protocol group: its epoch fetches; a
/// stale one gets a group-level STALE_MEMBER_EPOCH (113), an unknown member
/// UNKNOWN_MEMBER_ID (25); no member (admin tools) always fetches.
fn consumer_group_fetches(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let (group, member) = consumer_group_member(fx, "cg-fetch");
    assert_eq!(
        fx.send(&commit_request(&group, &member, 1, &topic, 4), 9)
            .topics[0]
            .partitions[0]
            .error_code,
        NONE
    );
    let fetch = |fx: &mut Fixture, member: Option<&str>, epoch: i32| {
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(member.map(s))
                .with_member_epoch(epoch)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(&topic))
                        .with_partition_indexes(vec![0]),
                ])),
        ]);
        let response = fx.send(&request, version);
        let group = &response.groups[0];
        let offset = group
            .topics
            .first()
            .map(|t| t.partitions[0].committed_offset);
        (group.error_code, offset)
    };
    assert_eq!(fetch(fx, Some(&member), 1), (NONE, Some(4)));
    assert_eq!(fetch(fx, None, -1), (NONE, Some(4)));
    assert_eq!(fetch(fx, Some(&member), 0), (113, None));
    assert_eq!(fetch(fx, Some("no-such-member"), 1), (25, None));
}

fn find_coordinator(fx: &mut Fixture, version: i16) {
    let group = fx.unique("coordinator");
    let (error, port) = if version >= 4 {
        let request = FindCoordinatorRequest::default().with_coordinator_keys(vec![s(&group)]);
        let response = fx.send(&request, version);
        let coordinator = &response.coordinators[0];
        assert_eq!(coordinator.key.text(), group);
        (coordinator.error_code, coordinator.port)
    } else {
        let request = FindCoordinatorRequest::default().with_key(s(&group));
        let response = fx.send(&request, version);
        (response.error_code, response.port)
    };
    assert_eq!(error, NONE);
    assert_eq!(port, i32::from(fx.port));
}

fn join_group(fx: &mut Fixture, version: i16) {
    let group = fx.unique("join");
    let response = fx.join(&group, version);
    assert_eq!(response.error_code, NONE);
    assert!(!response.member_id.is_empty());
    assert_eq!(response.leader, response.member_id, "the only member leads");
    assert_eq!(response.members.len(), 1, "the leader gets the member list");
    assert_eq!(
        response.protocol_name.as_ref().map(|n| n.text()),
        Some("range")
    );
}

fn sync_group(fx: &mut Fixture, version: i16) {
    let group = fx.unique("sync");
    let joined = fx.join(&group, 9);
    assert_eq!(joined.error_code, NONE);
    let mut request = fx.sync_request(&group, &joined);
    if version >= 5 {
        request.protocol_type = Some(s("consumer"));
        request.protocol_name = Some(s("range"));
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    assert_eq!(&response.assignment[..], b"assignment");
}

fn heartbeat(fx: &mut Fixture, version: i16) {
    let group = fx.unique("heartbeat");
    let (generation, member_id) = fx.stable_group(&group);
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id(generation)
        .with_member_id(s(&member_id));
    assert_eq!(fx.send(&request, version).error_code, NONE);
    // A stale generation is told apart: the request was read, not just acknowledged.
    let stale = HeartbeatRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id(generation + 100)
        .with_member_id(s(&member_id));
    assert_eq!(
        fx.send(&stale, version).error_code,
        22,
        "ILLEGAL_GENERATION"
    );
}

fn leave_group(fx: &mut Fixture, version: i16) {
    let group = fx.unique("leave");
    let (_, member_id) = fx.stable_group(&group);
    let mut request = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
    if version >= 3 {
        request.members = vec![MemberIdentity::default().with_member_id(s(&member_id))];
    } else {
        request.member_id = s(&member_id);
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    if version >= 3 {
        assert_eq!(response.members[0].member_id.text(), member_id);
        assert_eq!(response.members[0].error_code, NONE);
    }
    let described = fx.send(
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]),
        5,
    );
    assert!(described.groups[0].members.is_empty(), "the member left");
}

fn describe_groups(fx: &mut Fixture, version: i16) {
    let group = fx.unique("describe");
    let (_, member_id) = fx.stable_group(&group);
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]);
    let response = fx.send(&request, version);
    let described = &response.groups[0];
    assert_eq!(described.error_code, NONE);
    assert_eq!(described.group_state.text(), "Stable");
    assert_eq!(described.protocol_data.text(), "range");
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].member_id.text(), member_id);
    let (consumer_group, _) = consumer_group_member(fx, "describe-cg");
    let request = DescribeGroupsRequest::default().with_groups(vec![
        GroupId(s(&consumer_group)),
        GroupId(s("rt-no-such-group")),
    ]);
    let response = fx.send(&request, version);
    for (described, message) in response.groups.iter().zip([
        format!("Group {consumer_group} is not a classic group."),
        "Group rt-no-such-group not found.".to_string(),
    ]) {
        assert_eq!(described.group_state.text(), "Dead");
        assert!(described.members.is_empty());
        if version >= 6 {
            assert_eq!(described.error_code, 69, "GROUP_ID_NOT_FOUND from v6");
            assert_eq!(
                described.error_message.as_ref().map(|m| m.to_string()),
                Some(message)
            );
        } else {
            assert_eq!(
                described.error_code, NONE,
                "Dead without an error before v6"
            );
        }
    }
}

fn list_groups(fx: &mut Fixture, version: i16) {
    let group = fx.unique("list");
    fx.stable_group(&group);
    let response = fx.send(&ListGroupsRequest::default(), version);
    assert_eq!(response.error_code, NONE);
    let listed = response
        .groups
        .iter()
        .find(|listed| listed.group_id.text() == group)
        .expect("the group is listed");
    assert_eq!(listed.protocol_type.text(), "consumer");
}

fn api_versions(fx: &mut Fixture, version: i16) {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = s("api-round-trip");
        request.client_software_version = s("1.0");
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    let own = response
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::ApiVersions as i16)
        .expect("ApiVersions lists itself");
    assert_eq!((own.min_version, own.max_version), (0, 4));
}

fn create_topics(fx: &mut Fixture, version: i16) {
    let name = fx.unique("create");
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(&name))
                .with_num_partitions(2)
                .with_replication_factor(1),
        ]);
    let response = fx.send(&request, version);
    let created = &response.topics[0];
    assert_eq!(created.error_code, NONE);
    assert_eq!(created.name.text(), name);
    if version >= 5 {
        assert_eq!(created.num_partitions, 2);
    }
    assert_eq!(fx.partition_count(&name), 2);
}

fn delete_topics(fx: &mut Fixture, version: i16) {
    let name = fx.new_topic("delete", 1);
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    if version >= 6 {
        request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(&name)))];
    } else {
        request.topic_names = vec![topic_name(&name)];
    }
    let response = fx.send(&request, version);
    let deleted = &response.responses[0];
    assert_eq!(deleted.error_code, NONE);
    assert_eq!(deleted.name.as_ref().map(|n| n.text()), Some(name.text()));
    // Deleted: creating it again succeeds.
    fx.create_topic(&name, 1);
}

fn delete_records(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("delete-records", 1);
    fx.produce(&topic, 3, None);
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![DeleteRecordsPartition::default().with_offset(2)]),
        ]);
    let response = fx.send(&request, version);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.low_watermark, 2);
}

fn init_producer_id(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("init");
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(&transactional_id))))
        .with_transaction_timeout_ms(60_000);
    let first = fx.send(&request, version);
    assert_eq!(first.error_code, NONE);
    assert!(first.producer_id.0 >= 0);
    // The same transactional id again: same producer id, next epoch.
    let second = fx.send(&request, version);
    assert_eq!(second.error_code, NONE);
    assert_eq!(second.producer_id, first.producer_id);
    assert_eq!(second.producer_epoch, first.producer_epoch + 1);
}

fn offset_for_leader_epoch(fx: &mut Fixture, version: i16) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::*;
    let topic = fx.topic.clone();
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name(&topic))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(0)
                        .with_leader_epoch(0),
                ]),
        ]);
    let response = fx.send(&request, version);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(
        (partition.leader_epoch, partition.end_offset),
        (0, FIXTURE_RECORDS),
        "epoch 0 ends at the log end offset"
    );
}

fn elect_leaders(fx: &mut Fixture, version: i16) {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let topic = fx.topic.clone();
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(30_000)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(topic_name(&topic))
                .with_partitions(vec![0]),
        ]));
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    let result = &response.replica_election_results[0];
    assert_eq!(result.topic, topic_name(&topic));
    // A single broker leads every partition already: ELECTION_NOT_NEEDED (84).
    assert_eq!(result.partition_result[0].partition_id, 0);
    assert_eq!(result.partition_result[0].error_code, 84);
}

/// A single broker (node 0) holds every partition's one replica: a target of exactly
/// itself changes nothing (NONE), another broker is INVALID_REPLICA_ASSIGNMENT (39), and a
/// cancellation finds NO_REASSIGNMENT_IN_PROGRESS (85).
fn alter_partition_reassignments(fx: &mut Fixture, version: i16) {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    let topic = fx.topic.clone();
    let partition = |index: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![
                    partition(0, Some(vec![0])),
                    partition(0, Some(vec![7])),
                    partition(0, None),
                ]),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    let codes: Vec<i16> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![NONE, 39, 85]);
}

/// Nothing is being reassigned on a single broker.
fn list_partition_reassignments(fx: &mut Fixture, version: i16) {
    let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    assert!(response.topics.is_empty());
}

fn add_partitions_to_txn(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("add-partitions");
    let producer = fx.init_producer(Some(&transactional_id));
    let topic = fx.topic.clone();
    let partitions = vec![
        AddPartitionsToTxnTopic::default()
            .with_name(topic_name(&topic))
            .with_partitions(vec![0]),
    ];
    if version >= 4 {
        // Brokers' form (KIP-890): verify only, the partition not in the transaction yet.
        let transaction = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s(&transactional_id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_verify_only(true)
            .with_topics(partitions);
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![transaction]);
        let response = fx.send(&request, version);
        assert_eq!(response.error_code, NONE);
        let result = &response.results_by_transaction[0];
        assert_eq!(result.transactional_id.0.as_str(), transactional_id);
        let topic_result = &result.topic_results[0];
        assert_eq!(topic_result.name.text(), topic);
        // Not added: TRANSACTION_ABORTABLE (120), as Kafka's coordinator answers it.
        assert_eq!(
            topic_result.results_by_partition[0].partition_error_code,
            120
        );
        return;
    }
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(&transactional_id)))
        .with_v3_and_below_producer_id(ProducerId(producer.0))
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(partitions);
    let response = fx.send(&request, version);
    let result = &response.results_by_topic_v3_and_below[0];
    assert_eq!(result.name.text(), topic);
    assert_eq!(result.results_by_partition[0].partition_error_code, NONE);
    fx.abort(&transactional_id, producer);
}

fn add_offsets_to_txn(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("add-offsets");
    let producer = fx.init_producer(Some(&transactional_id));
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(&transactional_id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(s("round-trip-group")));
    assert_eq!(fx.send(&request, version).error_code, NONE);
    // The transaction is now ongoing: a wrong epoch is fenced.
    let fenced = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(&transactional_id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1 - 1)
        .with_group_id(GroupId(s("round-trip-group")));
    assert_ne!(fx.send(&fenced, version).error_code, NONE);
    fx.abort(&transactional_id, producer);
}

fn end_txn(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("end");
    let producer = fx.init_producer(Some(&transactional_id));
    fx.add_partition_to_txn(&transactional_id, producer);
    let response = fx.send(
        &Fixture::end_txn_request(&transactional_id, producer),
        version,
    );
    assert_eq!(response.error_code, NONE);
    let described = fx.send(
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(&transactional_id))]),
        0,
    );
    let state = described.transaction_states[0].transaction_state.text();
    assert!(matches!(state, "CompleteAbort" | "PrepareAbort"), "{state}");
}

fn txn_offset_commit(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("txn-commit");
    let group = fx.unique("txn-group");
    let producer = fx.init_producer(Some(&transactional_id));
    fx.add_offsets_to_txn(&transactional_id, producer, &group);
    let topic = fx.topic.clone();
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(&transactional_id)))
        .with_group_id(GroupId(s(&group)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default().with_committed_offset(1),
                ]),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.topics[0].name.text(), topic);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    fx.abort(&transactional_id, producer);
}

fn describe_configs(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("describe-configs", 1);
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configuration_keys(Some(vec![s("cleanup.policy")])),
    ]);
    let response = fx.send(&request, version);
    let result = &response.results[0];
    assert_eq!(result.error_code, NONE);
    assert_eq!(result.resource_name.text(), topic);
    assert_eq!(result.configs.len(), 1, "only the asked key");
    assert_eq!(result.configs[0].name.text(), "cleanup.policy");
    assert_eq!(
        result.configs[0].value.as_ref().map(|v| v.text()),
        Some("delete")
    );
}

fn alter_configs(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("alter-configs", 1);
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("123456"))),
            ]),
    ]);
    let response = fx.send(&request, version);
    assert_eq!(response.responses[0].error_code, NONE);
    assert_eq!(
        fx.topic_config(&topic, "retention.ms").as_deref(),
        Some("123456")
    );
}

fn describe_log_dirs(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let response = fx.send(
        &DescribeLogDirsRequest::default().with_topics(None),
        version,
    );
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.results.len(), 1, "one data dir");
    let dir = &response.results[0];
    assert_eq!(dir.error_code, NONE);
    let described = dir
        .topics
        .iter()
        .find(|t| t.name.text() == topic)
        .expect("the fixture topic is in the data dir");
    assert!(described.partitions[0].partition_size > 0);
}

fn create_partitions(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("partitions", 1);
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(&topic))
                .with_count(3)
                .with_assignments(None),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.results[0].error_code, NONE);
    assert_eq!(response.results[0].name.text(), topic);
    assert_eq!(fx.partition_count(&topic), 3);
}

fn delete_groups(fx: &mut Fixture, version: i16) {
    let group = fx.unique("delete-group");
    let topic = fx.topic.clone();
    fx.commit_offset(&group, &topic, 1);
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
    let response = fx.send(&request, version);
    assert_eq!(response.results[0].group_id.text(), group);
    assert_eq!(response.results[0].error_code, NONE);
    assert_eq!(
        fx.committed_offset(&group, &topic),
        -1,
        "offsets went with the group"
    );
}

fn incremental_alter_configs(fx: &mut Fixture, version: i16) {
    use kafka_protocol::messages::incremental_alter_configs_request as iac;
    let topic = fx.new_topic("incremental", 1);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        iac::AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configs(vec![
                iac::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("654321"))),
            ]),
    ]);
    let response = fx.send(&request, version);
    assert_eq!(response.responses[0].error_code, NONE);
    assert_eq!(
        fx.topic_config(&topic, "retention.ms").as_deref(),
        Some("654321")
    );
}

fn offset_delete(fx: &mut Fixture, version: i16) {
    let group = fx.unique("offset-delete");
    let topic = fx.topic.clone();
    fx.commit_offset(&group, &topic, 1);
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    assert_eq!(fx.committed_offset(&group, &topic), -1);
}

fn describe_cluster(fx: &mut Fixture, version: i16) {
    let response = fx.send(&DescribeClusterRequest::default(), version);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, i32::from(fx.port));
    assert_eq!(response.controller_id, response.brokers[0].broker_id);
}

fn describe_producers(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("producers", 1);
    let producer = fx.init_producer(None);
    fx.produce(&topic, 2, Some(producer));
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic_name(&topic))
            .with_partition_indexes(vec![0]),
    ]);
    let response = fx.send(&request, version);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.active_producers.len(), 1);
    assert_eq!(partition.active_producers[0].producer_id.0, producer.0);
    assert_eq!(partition.active_producers[0].last_sequence, 1);
}

fn describe_transactions(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("describe-txn");
    let producer = fx.init_producer(Some(&transactional_id));
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(&transactional_id))]);
    let response = fx.send(&request, version);
    let state = &response.transaction_states[0];
    assert_eq!(state.error_code, NONE);
    assert_eq!(state.transaction_state.text(), "Empty");
    assert_eq!(state.producer_id.0, producer.0);
}

fn list_transactions(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("list-txn");
    fx.init_producer(Some(&transactional_id));
    let response = fx.send(&ListTransactionsRequest::default(), version);
    assert_eq!(response.error_code, NONE);
    let listed = response
        .transaction_states
        .iter()
        .find(|state| state.transactional_id.text() == transactional_id)
        .expect("the transactional id is listed");
    assert_eq!(listed.transaction_state.text(), "Empty");
}

fn describe_topic_partitions(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("dtp", 3);
    let request = DescribeTopicPartitionsRequest::default()
        .with_response_partition_limit(2)
        .with_topics(vec![
            describe_topic_partitions_request::TopicRequest::default()
                .with_name(topic_name(&topic)),
        ]);
    let response = fx.send(&request, version);
    let described = &response.topics[0];
    assert_eq!(described.error_code, NONE);
    assert_eq!(described.partitions.len(), 2, "the page holds the limit");
    let cursor = response.next_cursor.as_ref().expect("a cursor to the rest");
    assert_eq!(
        (cursor.topic_name.text(), cursor.partition_index),
        (topic.text(), 2)
    );
}

fn list_config_resources(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let mut request = ListConfigResourcesRequest::default();
    if version >= 1 {
        request.resource_types = vec![RESOURCE_TOPIC];
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    if version >= 1 {
        assert!(
            response
                .config_resources
                .iter()
                .any(|r| r.resource_name.text() == topic && r.resource_type == RESOURCE_TOPIC)
        );
    } else {
        // v0 is ListClientMetricsResources: shardlog keeps no client-metrics resources.
        assert!(response.config_resources.is_empty());
    }
}

/// A single broker is no Raft quorum: the answer decodes and says UNSUPPORTED_VERSION (35),
/// which Java's `describeMetadataQuorum` reports cleanly (the three-node answer is checked in
/// tests/python/test_cluster.py).
fn describe_quorum(fx: &mut Fixture, version: i16) {
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(topic_name("__cluster_metadata"))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    let response = fx.send(&request, version);
    assert_eq!(
        response.error_code, 35,
        "UNSUPPORTED_VERSION in single-broker mode"
    );
}

/// A coordinator's markers (single broker: it leads every partition): an ABORT marker for
/// a fresh producer is written to the fixture topic; an unknown topic gets
/// UNKNOWN_TOPIC_OR_PARTITION (3).
fn write_txn_markers(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("markers");
    let producer = fx.init_producer(Some(&transactional_id));
    let topic = |name: &str| {
        write_txn_markers_request::WritableTxnMarkerTopic::default()
            .with_name(topic_name(name))
            .with_partition_indexes(vec![0])
    };
    let marker = write_txn_markers_request::WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_transaction_result(false)
        .with_coordinator_epoch(0)
        .with_topics(vec![
            topic(&fx.topic.clone()),
            topic("no-such-topic-markers"),
        ]);
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let response = fx.send(&request, version);
    let result = &response.markers[0];
    assert_eq!(result.producer_id, ProducerId(producer.0));
    let code = |name: &str| {
        result
            .topics
            .iter()
            .find(|t| t.name.text() == name)
            .map(|t| t.partitions[0].error_code)
    };
    assert_eq!(code(&fx.topic.clone()), Some(NONE));
    assert_eq!(code("no-such-topic-markers"), Some(3));
}

pub(crate) type Case = fn(&mut Fixture, i16);

/// One round trip per API the broker may advertise.
pub(crate) const CASES: &[(ApiKey, Case)] = &[
    (ApiKey::Produce, produce),
    (ApiKey::Fetch, fetch),
    (ApiKey::ListOffsets, list_offsets),
    (ApiKey::Metadata, metadata),
    (ApiKey::OffsetCommit, offset_commit),
    (ApiKey::OffsetFetch, offset_fetch),
    (ApiKey::FindCoordinator, find_coordinator),
    (ApiKey::JoinGroup, join_group),
    (ApiKey::Heartbeat, heartbeat),
    (ApiKey::LeaveGroup, leave_group),
    (ApiKey::SyncGroup, sync_group),
    (ApiKey::DescribeGroups, describe_groups),
    (ApiKey::ListGroups, list_groups),
    (ApiKey::SaslHandshake, sasl_handshake),
    (ApiKey::SaslAuthenticate, sasl_authenticate),
    (ApiKey::DescribeAcls, describe_acls),
    (ApiKey::CreateAcls, create_acls),
    (ApiKey::DeleteAcls, delete_acls),
    (
        ApiKey::DescribeUserScramCredentials,
        describe_user_scram_credentials,
    ),
    (
        ApiKey::AlterUserScramCredentials,
        alter_user_scram_credentials,
    ),
    (ApiKey::ApiVersions, api_versions),
    (ApiKey::CreateTopics, create_topics),
    (ApiKey::DeleteTopics, delete_topics),
    (ApiKey::DeleteRecords, delete_records),
    (ApiKey::InitProducerId, init_producer_id),
    (ApiKey::OffsetForLeaderEpoch, offset_for_leader_epoch),
    (ApiKey::AddPartitionsToTxn, add_partitions_to_txn),
    (ApiKey::AddOffsetsToTxn, add_offsets_to_txn),
    (ApiKey::EndTxn, end_txn),
    (ApiKey::WriteTxnMarkers, write_txn_markers),
    (ApiKey::TxnOffsetCommit, txn_offset_commit),
    (ApiKey::DescribeConfigs, describe_configs),
    (ApiKey::AlterConfigs, alter_configs),
    (ApiKey::DescribeLogDirs, describe_log_dirs),
    (ApiKey::CreatePartitions, create_partitions),
    (ApiKey::DeleteGroups, delete_groups),
    (ApiKey::IncrementalAlterConfigs, incremental_alter_configs),
    (ApiKey::OffsetDelete, offset_delete),
    (ApiKey::DescribeCluster, describe_cluster),
    (ApiKey::DescribeProducers, describe_producers),
    (ApiKey::DescribeTransactions, describe_transactions),
    (ApiKey::ListTransactions, list_transactions),
    (ApiKey::DescribeTopicPartitions, describe_topic_partitions),
    (ApiKey::ListConfigResources, list_config_resources),
    (ApiKey::ConsumerGroupHeartbeat, consumer_group_heartbeat),
    (ApiKey::ConsumerGroupDescribe, consumer_group_describe),
    (ApiKey::DescribeQuorum, describe_quorum),
    (ApiKey::ElectLeaders, elect_leaders),
    (
        ApiKey::AlterPartitionReassignments,
        alter_partition_reassignments,
    ),
    (
        ApiKey::ListPartitionReassignments,
        list_partition_reassignments,
    ),
];
