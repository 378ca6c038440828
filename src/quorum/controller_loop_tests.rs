use super::*;
use crate::cluster::raft::RaftSettings;
use crate::quorum::NetSettings;
use crate::quorum::frame::{PartitionsCreation, TopicCreation};
use crate::storage::raft_log::RaftLogStore;
use std::collections::BTreeMap;
use std::sync::mpsc::sync_channel;

/// Ready rounds a single voter needs at most to commit and apply one proposal.
const ROUNDS_MAX: usize = 100;

/// The controller loop of a one-voter quorum over an in-memory log, driven by the test
/// (no thread, no socket), elected and active.
fn active_controller() -> ControllerLoop {
    let store = RaftLogStore::in_memory(&[1]);
    let settings = RaftSettings::default();
    let mut driver = RaftDriver::new(1, store, ImageStateMachine::new(), &settings).unwrap();
    driver.campaign().unwrap();
    let (inbox_sender, inbox) = sync_channel(16);
    let net = NetSettings {
        frame_bytes_max: 1 << 20,
        peer_queue_max: 4,
        connections_max: 4,
        connect_timeout: Duration::from_secs(1),
        reconnect_backoff: Duration::from_millis(10),
        read_timeout: Duration::from_secs(1),
    };
    let peers = PeerSenders::start(1, &[], inbox_sender, &net).unwrap();
    let hub = Arc::new(ViewHub::default());
    let settings = ControllerSettings::default();
    let tick = Duration::from_millis(10);
    let mut controller = ControllerLoop::new(driver, settings, inbox, peers, hub, tick, 16);
    for _ in 0..ROUNDS_MAX {
        controller.round().unwrap();
        if controller.active.is_some() && controller.image().cluster_id().is_some() {
            return controller;
        }
    }
    panic!("the single voter did not become the active controller");
}

/// Hands `request` to the loop and runs ready rounds until it is answered.
fn ask(controller: &mut ControllerLoop, request: ControllerRequest) -> ControllerResponse {
    let (reply, answer) = sync_channel(1);
    controller.handle_event(ControllerEvent::Request { request, reply });
    for _ in 0..ROUNDS_MAX {
        if let Ok(response) = answer.try_recv() {
            return response;
        }
        controller.round().unwrap();
    }
    panic!("no answer");
}

/// Registers broker 1 and unfences it; its broker epoch.
fn start_broker(controller: &mut ControllerLoop) -> i64 {
    let epoch = start_node(controller, 1);
    assert_eq!(controller.image().unfenced_brokers().count(), 1);
    epoch
}

/// Registers broker `node_id` and unfences it; its broker epoch.
fn start_node(controller: &mut ControllerLoop, node_id: NodeId) -> i64 {
    let registered = ask(
        controller,
        ControllerRequest::Register {
            node_id,
            incarnation_id: [node_id as u8; 16],
            endpoint: BrokerEndpoint {
                node_id,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
                listeners: Vec::new(),
            },
            cluster_id: None,
            previous_broker_epoch: None,
        },
    );
    assert_eq!(registered.error_code, 0);
    let heartbeat = ControllerRequest::Heartbeat {
        node_id,
        broker_epoch: registered.broker_epoch,
        caught_up: true,
        want_fence: false,
    };
    assert_eq!(ask(controller, heartbeat).error_code, 0);
    let broker = controller.image().broker(node_id).expect("registered");
    assert!(!broker.fenced);
    registered.broker_epoch
}

fn create(names: &[&str], validate_only: bool) -> ControllerRequest {
    let topics = names
        .iter()
        .map(|name| TopicCreation {
            name: name.to_string(),
            num_partitions: 2,
            replication_factor: -1,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        })
        .collect();
    ControllerRequest::CreateTopics {
        topics,
        validate_only,
    }
}

#[test]
fn create_topics_through_the_active_controller() {
    let mut controller = active_controller();
    start_broker(&mut controller);

    let applied = controller.driver.applied_index();
    let response = ask(&mut controller, create(&["orders", "users"], false));
    assert_eq!(response.error_code, 0);
    assert_eq!(
        controller.driver.applied_index(),
        applied + 1,
        "both topics in one entry"
    );
    for (result, name) in response.topics.iter().zip(["orders", "users"]) {
        assert_eq!(result.name, name);
        assert_eq!(result.error_code, 0, "{result:?}");
        assert_eq!((result.num_partitions, result.replication_factor), (2, 1));
        let topic = controller.image().topic_by_name(name).expect("created");
        assert_eq!(topic.id, result.topic_id);
        assert_ne!(result.topic_id, [0; 16]);
    }
    assert_ne!(response.topics[0].topic_id, response.topics[1].topic_id);
    assert!(controller.view().topics.partition("orders", 1).is_some());

    // A name in use is refused per topic; the other topic is still created.
    let response = ask(&mut controller, create(&["orders", "more"], false));
    assert_eq!(response.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
    assert!(response.topics[0].message.is_some());
    assert_eq!(response.topics[1].error_code, 0);
    assert!(controller.image().topic_by_name("more").is_some());

    // Nothing succeeds: answered at once, nothing proposed.
    let applied = controller.driver.applied_index();
    let response = ask(&mut controller, create(&["orders"], false));
    assert_eq!(response.topics[0].error_code, 36);
    assert_eq!(controller.driver.applied_index(), applied);
}

#[test]
fn elect_leaders_is_answered_per_partition_without_a_proposal_when_nothing_changes() {
    use crate::cluster::leader_elections::ElectionType;
    use std::collections::BTreeSet;
    let mut controller = active_controller();
    start_broker(&mut controller);
    assert_eq!(
        ask(&mut controller, create(&["orders"], false)).error_code,
        0
    );
    let applied = controller.driver.applied_index();
    let request = ControllerRequest::ElectLeaders {
        election_type: ElectionType::Preferred,
        partitions: Some(BTreeMap::from([(
            "orders".to_string(),
            BTreeSet::from([0, 9]),
        )])),
    };
    let response = ask(&mut controller, request);
    assert_eq!(response.error_code, 0);
    let codes: Vec<(i32, i16)> = response
        .partition_results
        .iter()
        .map(|result| (result.partition, result.error_code))
        .collect();
    let not_needed = ErrorCode::ElectionNotNeeded.code();
    let unknown = ErrorCode::UnknownTopicOrPartition.code();
    assert_eq!(codes, vec![(0, not_needed), (9, unknown)]);
    assert_eq!(controller.driver.applied_index(), applied);
}

#[test]
fn validate_only_proposes_nothing() {
    let mut controller = active_controller();
    start_broker(&mut controller);
    let applied = controller.driver.applied_index();
    let (reply, answer) = sync_channel(1);
    let request = create(&["dry"], true);
    controller.handle_event(ControllerEvent::Request { request, reply });
    let response = answer.try_recv().expect("answered at once");
    assert!(controller.active.as_ref().unwrap().in_flight.is_none());
    for _ in 0..10 {
        controller.round().unwrap();
    }
    assert_eq!(controller.driver.applied_index(), applied);
    assert!(controller.image().topic_by_name("dry").is_none());
    let dry = &response.topics[0];
    assert_eq!((dry.error_code, dry.num_partitions), (0, 2));
    assert_eq!(dry.topic_id, [0; 16], "no topic got an id");
}

#[test]
fn create_partitions_and_delete_topics_through_the_active_controller() {
    let mut controller = active_controller();
    start_broker(&mut controller);
    assert_eq!(ask(&mut controller, create(&["t"], false)).error_code, 0);
    let grow = ControllerRequest::CreatePartitions {
        topics: vec![PartitionsCreation {
            name: "t".into(),
            count: 5,
            assignments: Vec::new(),
        }],
        validate_only: false,
    };
    let response = ask(&mut controller, grow);
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].num_partitions, 5);
    let t = controller.image().topic_by_name("t").expect("topic");
    assert_eq!(t.partitions.len(), 5);

    let delete = ControllerRequest::DeleteTopics {
        names: vec!["t".into(), "absent".into()],
    };
    let response = ask(&mut controller, delete);
    let codes: Vec<i16> = response.topics.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 3]);
    assert!(controller.image().topic_by_name("t").is_none());
}

fn allocate(node_id: NodeId, broker_epoch: i64) -> ControllerRequest {
    ControllerRequest::AllocateProducerIds {
        node_id,
        broker_epoch,
        floor: 0,
    }
}

#[test]
fn producer_id_blocks_are_answered_once_applied_and_never_overlap() {
    let mut controller = active_controller();
    let epoch = start_broker(&mut controller);
    let size = controller.settings.producer_id_block_size;
    let next = controller.image().next_producer_id();

    let applied = controller.driver.applied_index();
    let first = ask(&mut controller, allocate(1, epoch));
    assert_eq!(first.error_code, 0);
    let first = first.producer_ids.expect("a block");
    assert_eq!(controller.driver.applied_index(), applied + 1, "one entry");
    assert_eq!(first.first_producer_id, next);
    assert_eq!(first.size, size);
    assert_eq!(controller.image().next_producer_id(), next + size);

    let second = ask(&mut controller, allocate(1, epoch));
    let second = second.producer_ids.expect("a block");
    assert_eq!(second.first_producer_id, first.first_producer_id + size);
    assert_eq!(second.size, size);
    assert_eq!(controller.image().next_producer_id(), next + 2 * size);
}

#[test]
fn a_producer_id_request_at_a_stale_epoch_is_refused_without_a_proposal() {
    let mut controller = active_controller();
    let epoch = start_broker(&mut controller);
    let (applied, next) = (
        controller.driver.applied_index(),
        controller.image().next_producer_id(),
    );
    let (reply, answer) = sync_channel(1);
    let request = allocate(1, epoch - 1);
    controller.handle_event(ControllerEvent::Request { request, reply });
    let stale = answer.try_recv().expect("answered at once");
    assert_eq!(stale.error_code, 77, "STALE_BROKER_EPOCH");
    assert_eq!(stale.producer_ids, None);
    assert!(controller.active.as_ref().unwrap().in_flight.is_none());
    let unknown = ask(&mut controller, allocate(9, epoch));
    assert_eq!(unknown.error_code, 102, "BROKER_ID_NOT_REGISTERED");
    for _ in 0..10 {
        controller.round().unwrap();
    }
    assert_eq!(controller.driver.applied_index(), applied);
    assert_eq!(controller.image().next_producer_id(), next);
}

fn alter(topic: &str, alterations: &[(&str, Option<&str>)], validate: bool) -> ControllerRequest {
    ControllerRequest::AlterTopicConfigs {
        topic: topic.to_string(),
        alterations: alterations
            .iter()
            .map(|(name, value)| (name.to_string(), value.map(str::to_string)))
            .collect(),
        validate_only: validate,
    }
}

fn topic_configs(controller: &ControllerLoop, topic: &str) -> BTreeMap<String, String> {
    let topic = controller.image().topic_by_name(topic).expect("topic");
    topic.configs.clone()
}

#[test]
fn alter_topic_configs_through_the_active_controller() {
    let mut controller = active_controller();
    start_broker(&mut controller);
    assert_eq!(ask(&mut controller, create(&["t"], false)).error_code, 0);
    let id = controller.image().topic_by_name("t").expect("topic").id;

    let set = alter("t", &[("retention.ms", Some("1000"))], false);
    let response = ask(&mut controller, set);
    assert_eq!(response.error_code, 0);
    let result = &response.topics[0];
    assert_eq!(
        (
            result.name.as_str(),
            result.error_code,
            result.topic_id,
            result.num_partitions,
            result.replication_factor
        ),
        ("t", 0, id, 2, 1)
    );
    let expected = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
    assert_eq!(topic_configs(&controller, "t"), expected);

    // Setting it again changes nothing: answered at once, nothing proposed.
    let applied = controller.driver.applied_index();
    let again = ask(
        &mut controller,
        alter("t", &[("retention.ms", Some("1000"))], false),
    );
    assert_eq!(again.topics[0].error_code, 0);
    assert_eq!(controller.driver.applied_index(), applied);

    let delete = ask(
        &mut controller,
        alter("t", &[("retention.ms", None)], false),
    );
    assert_eq!(delete.topics[0].error_code, 0);
    assert!(topic_configs(&controller, "t").is_empty());
}

#[test]
fn refused_and_validate_only_config_changes_propose_nothing() {
    let mut controller = active_controller();
    start_broker(&mut controller);
    assert_eq!(ask(&mut controller, create(&["t"], false)).error_code, 0);
    let applied = controller.driver.applied_index();

    let unknown = ask(
        &mut controller,
        alter("absent", &[("retention.ms", Some("1"))], false),
    );
    assert_eq!(unknown.error_code, 0);
    assert_eq!(unknown.topics[0].name, "absent");
    assert_eq!(
        unknown.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let invalid = ask(
        &mut controller,
        alter("t", &[("retention.ms", Some("soon"))], false),
    );
    assert_eq!(invalid.topics[0].error_code, 40, "INVALID_CONFIG");
    assert!(invalid.topics[0].message.is_some());

    let (reply, answer) = sync_channel(1);
    let request = alter("t", &[("retention.ms", Some("1"))], true);
    controller.handle_event(ControllerEvent::Request { request, reply });
    let validated = answer.try_recv().expect("answered at once");
    assert_eq!(validated.topics[0].error_code, 0);
    assert!(controller.active.as_ref().unwrap().in_flight.is_none());
    for _ in 0..10 {
        controller.round().unwrap();
    }
    assert_eq!(controller.driver.applied_index(), applied);
    assert!(topic_configs(&controller, "t").is_empty());
}

#[test]
fn alter_partition_is_answered_once_its_change_is_applied() {
    use crate::cluster::partition_changes::AlterPartitionRequest;
    let mut controller = active_controller();
    let epochs = [
        start_node(&mut controller, 1),
        start_node(&mut controller, 2),
    ];
    let placed = ControllerRequest::CreateTopics {
        topics: vec![TopicCreation {
            name: "t".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::from([(0, vec![1, 2])]),
            configs: BTreeMap::new(),
        }],
        validate_only: false,
    };
    assert_eq!(ask(&mut controller, placed).topics[0].error_code, 0);
    let topic_id = controller.image().topic_by_name("t").expect("topic").id;
    let before = controller.image().partition(&topic_id, 0).unwrap().clone();
    assert_eq!((before.leader, before.isr.clone()), (Some(1), vec![1, 2]));
    let shrink = |partition_epoch| ControllerRequest::AlterPartition {
        topic_id,
        partition: 0,
        request: AlterPartitionRequest {
            leader: 1,
            leader_broker_epoch: epochs[0],
            leader_epoch: before.leader_epoch,
            partition_epoch,
            new_isr: vec![1],
            new_isr_broker_epochs: vec![(1, epochs[0])],
        },
    };

    let applied = controller.driver.applied_index();
    let response = ask(&mut controller, shrink(before.partition_epoch));
    assert_eq!(response.error_code, 0);
    assert_eq!(controller.driver.applied_index(), applied + 1, "one entry");
    let after = controller.image().partition(&topic_id, 0).unwrap();
    assert_eq!(after.isr, vec![1]);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    assert_eq!(response.partition, Some(altered(after)));

    // The same change again: answered at once with the current state, nothing proposed.
    let current = after.partition_epoch;
    let (reply, answer) = sync_channel(1);
    let request = shrink(current);
    controller.handle_event(ControllerEvent::Request { request, reply });
    let unchanged = answer.try_recv().expect("answered at once");
    assert_eq!(unchanged.error_code, 0);
    assert_eq!(unchanged.partition, response.partition);
    // A retry at the old partition epoch: INVALID_UPDATE_VERSION, nothing proposed.
    let retry = ask(&mut controller, shrink(before.partition_epoch));
    assert_eq!((retry.error_code, retry.partition), (95, None));
    let unknown = ControllerRequest::AlterPartition {
        topic_id: [9; 16],
        partition: 0,
        request: AlterPartitionRequest {
            leader: 1,
            leader_broker_epoch: epochs[0],
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![1],
            new_isr_broker_epochs: Vec::new(),
        },
    };
    assert_eq!(
        ask(&mut controller, unknown).error_code,
        100,
        "UNKNOWN_TOPIC_ID"
    );
    assert!(controller.active.as_ref().unwrap().in_flight.is_none());
    assert_eq!(controller.driver.applied_index(), applied + 1);
}
