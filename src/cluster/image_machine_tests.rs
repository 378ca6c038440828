//! `ImageStateMachine` tests: a corrupt or refused committed entry is a typed error that halts
//! the machine (and the driver), and a 3-node Raft cluster whose leader runs controller
//! decisions ends with identical images on every node, including one restored from a
//! snapshot and one restarted from disk.

use super::*;
use crate::cluster::controller::{
    BrokerHeartbeatRequest, BrokerRegistrationRequest, BrokerSessions, ControllerSettings,
    broker_heartbeat, register_broker,
};
use crate::cluster::raft::{RaftDriver, RaftDriverError, RaftSettings};
use crate::cluster::records::{Listener, MetadataRecord, NodeId, Uuid};
use crate::cluster::topic_changes::{CreateTopicRequest, create_topics};
use crate::storage::raft_log::RaftLogStore;
use std::collections::BTreeMap;

const CLUSTER: Uuid = [7; 16];
const VOTERS: [u64; 3] = [1, 2, 3];

#[test]
fn an_undecodable_entry_is_a_typed_error_and_halts_the_machine() {
    let mut machine = ImageStateMachine::new();
    machine
        .apply(1, &encode_batch(&[MetadataRecord::ClusterId(CLUSTER)]))
        .unwrap();
    let before = machine.image().clone();
    assert!(matches!(
        machine.apply(2, b"not a batch"),
        Err(ImageMachineError::Decode { index: 2, .. })
    ));
    assert_eq!(machine.halted_at(), Some(2));
    assert_eq!(machine.image(), &before);
    assert!(matches!(
        machine.apply(3, &[]),
        Err(ImageMachineError::Halted { index: 2 })
    ));
    assert!(matches!(
        machine.snapshot(),
        Err(ImageMachineError::Halted { index: 2 })
    ));
}

#[test]
fn a_record_the_image_refuses_is_a_typed_error() {
    let mut machine = ImageStateMachine::new();
    machine.apply(1, &[]).unwrap();
    let entry = encode_batch(&[
        MetadataRecord::ClusterId(CLUSTER),
        MetadataRecord::ClusterId([8; 16]),
    ]);
    assert!(matches!(
        machine.apply(2, &entry),
        Err(ImageMachineError::Apply {
            index: 2,
            record: 1,
            source: ImageError::ClusterIdMismatch
        })
    ));
    assert_eq!(machine.halted_at(), Some(2));
}

#[test]
fn a_corrupt_snapshot_is_refused_and_leaves_the_image() {
    let mut machine = ImageStateMachine::new();
    machine
        .apply(1, &encode_batch(&[MetadataRecord::ClusterId(CLUSTER)]))
        .unwrap();
    let snapshot = machine.snapshot().unwrap();
    let before = machine.image().clone();
    assert!(matches!(
        machine.restore(&snapshot[..snapshot.len() - 1]),
        Err(ImageMachineError::SnapshotDecode(_))
    ));
    assert_eq!(machine.image(), &before);
    let mut restored = ImageStateMachine::new();
    restored.restore(&snapshot).unwrap();
    assert_eq!(restored.image(), &before);
}

type Node = RaftDriver<ImageStateMachine>;

fn settings(snapshot_entries: u64) -> RaftSettings {
    RaftSettings {
        snapshot_entries,
        ..RaftSettings::default()
    }
}

/// Handles ready and delivers messages (except to or from `isolated`) until quiet.
fn settle(nodes: &mut [Node], isolated: Option<u64>) {
    for _ in 0..1000 {
        let mut messages = Vec::new();
        for node in nodes.iter_mut() {
            messages.extend(node.handle_ready().unwrap().messages);
        }
        if messages.is_empty() {
            return;
        }
        for message in messages {
            if Some(message.to) == isolated || Some(message.from) == isolated {
                continue;
            }
            nodes[message.to as usize - 1].step(message).unwrap();
        }
    }
    panic!("the cluster never settled");
}

/// Ticks everyone and delivers everything for a while (heartbeats, snapshots).
fn run_ticks(nodes: &mut [Node], ticks: usize) {
    for _ in 0..ticks {
        for node in nodes.iter_mut() {
            node.tick();
        }
        settle(nodes, None);
    }
}

/// The active controller on the leader: decides on its applied image, proposes the records as
/// one entry, and waits until the entry is applied everywhere reachable.
struct ActiveController {
    leader: usize,
    settings: ControllerSettings,
    sessions: BrokerSessions,
    epochs: BTreeMap<NodeId, i64>,
}

impl ActiveController {
    fn commit(&self, nodes: &mut [Node], records: &[MetadataRecord], isolated: Option<u64>) {
        let proposal = nodes[self.leader].propose(encode_batch(records)).unwrap();
        settle(nodes, isolated);
        let leader = &nodes[self.leader];
        assert!(leader.applied_index() >= proposal.index, "not committed");
        assert_eq!(leader.term(), proposal.term, "leadership lost");
    }

    fn image<'a>(&self, nodes: &'a [Node]) -> &'a crate::cluster::MetadataImage {
        nodes[self.leader].state_machine().image()
    }

    fn start_broker(&mut self, nodes: &mut [Node], node: NodeId, isolated: Option<u64>) {
        let request = BrokerRegistrationRequest {
            cluster_id: CLUSTER,
            node_id: node,
            incarnation_id: [node as u8; 16],
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + node as u16,
                security_protocol: 0,
            }],
            rack: None,
            previous_broker_epoch: None,
        };
        let decision = register_broker(
            self.image(nodes),
            &self.sessions,
            &self.settings,
            &request,
            0,
        )
        .unwrap();
        self.commit(nodes, &decision.records, isolated);
        self.sessions.touch(node, 0);
        self.epochs.insert(node, decision.broker_epoch);
        let heartbeat = BrokerHeartbeatRequest {
            node_id: node,
            broker_epoch: decision.broker_epoch,
            caught_up: true,
            want_fence: false,
        };
        let records = broker_heartbeat(self.image(nodes), &self.settings, &heartbeat, 0).unwrap();
        assert!(
            !records.is_empty(),
            "the heartbeat must unfence broker {node}"
        );
        self.commit(nodes, &records, isolated);
    }

    fn create_topic(&self, nodes: &mut [Node], name: &str, id: u8, isolated: Option<u64>) {
        let request = CreateTopicRequest {
            name: name.into(),
            topic_id: [id; 16],
            num_partitions: 3,
            replication_factor: 3,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        let mut results = create_topics(
            self.image(nodes),
            &self.settings,
            std::slice::from_ref(&request),
        );
        let records = results.pop().unwrap().unwrap();
        self.commit(nodes, &records, isolated);
    }
}

/// Node 1 campaigns and leads; as the active controller it writes the cluster id and
/// registers and unfences brokers 1-3.
fn lead_three_brokers(nodes: &mut [Node]) -> ActiveController {
    nodes[0].campaign().unwrap();
    settle(nodes, None);
    assert!(nodes[0].is_leader());
    let mut controller = ActiveController {
        leader: 0,
        settings: ControllerSettings::default(),
        sessions: BrokerSessions::default(),
        epochs: BTreeMap::new(),
    };
    controller.commit(nodes, &[MetadataRecord::ClusterId(CLUSTER)], None);
    for node in 1..=3 {
        controller.start_broker(nodes, node, None);
    }
    controller
}

#[test]
fn controller_decisions_replicate_to_identical_images_including_a_snapshot_restore() {
    let dirs: Vec<_> = VOTERS
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let open = |id: u64, dir: &std::path::Path| {
        let (store, _) = RaftLogStore::open(dir, &VOTERS).unwrap();
        RaftDriver::new(id, store, ImageStateMachine::new(), &settings(3)).unwrap()
    };
    let mut nodes: Vec<Node> = VOTERS
        .iter()
        .zip(&dirs)
        .map(|(id, dir)| open(*id, dir.path()))
        .collect();
    let controller = lead_three_brokers(&mut nodes);
    // Node 3 misses the topic decisions; the leader snapshots every 3 entries and drops its
    // log, so node 3 can only catch up from a snapshot.
    controller.create_topic(&mut nodes, "orders", 1, Some(3));
    controller.create_topic(&mut nodes, "payments", 2, Some(3));
    for (name, id) in [("a", 3), ("b", 4), ("c", 5)] {
        controller.create_topic(&mut nodes, name, id, Some(3));
    }
    assert!(
        nodes[2]
            .state_machine()
            .image()
            .topic_by_name("orders")
            .is_none()
    );
    let leader_snapshot = nodes[0].store().latest_snapshot().get_metadata().index;
    assert!(
        leader_snapshot > nodes[2].applied_index() + 1,
        "leader snapshot {leader_snapshot}, node 3 applied {}",
        nodes[2].applied_index()
    );

    let mut restored = false;
    for _ in 0..40 {
        for node in nodes.iter_mut() {
            node.tick();
        }
        for _ in 0..100 {
            let mut messages = Vec::new();
            for node in nodes.iter_mut() {
                let outcome = node.handle_ready().unwrap();
                restored |= node.id() == 3 && outcome.restored_snapshot.is_some();
                messages.extend(outcome.messages);
            }
            for message in messages {
                nodes[message.to as usize - 1].step(message).unwrap();
            }
        }
    }
    assert!(restored, "node 3 never installed a snapshot");
    run_ticks(&mut nodes, 5);

    let expected = nodes[0].state_machine().image().clone();
    let orders = expected.topic_by_name("orders").expect("orders exists");
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(expected.unfenced_brokers().count(), 3);
    assert_eq!(expected.topics().count(), 5);
    for node in &nodes {
        assert_eq!(node.applied_index(), nodes[0].applied_index());
        assert_eq!(
            node.state_machine().image(),
            &expected,
            "node {}",
            node.id()
        );
    }

    // A restart from disk (snapshot + replay of the committed log) rebuilds the same image.
    let applied = nodes[1].applied_index();
    drop(nodes);
    let mut restarted = open(2, dirs[1].path());
    let _ = restarted.handle_ready().unwrap();
    assert_eq!(restarted.applied_index(), applied);
    assert_eq!(restarted.state_machine().image(), &expected);
}

#[test]
fn a_corrupt_committed_entry_halts_the_node_instead_of_skipping_it() {
    let mut nodes: Vec<Node> = VOTERS
        .iter()
        .map(|id| {
            let store = RaftLogStore::in_memory(&VOTERS);
            RaftDriver::new(*id, store, ImageStateMachine::new(), &settings(1000)).unwrap()
        })
        .collect();
    nodes[0].campaign().unwrap();
    settle(&mut nodes, None);
    let good = encode_batch(&[MetadataRecord::ClusterId(CLUSTER)]);
    nodes[0].propose(good).unwrap();
    settle(&mut nodes, None);
    let image_before = nodes[0].state_machine().image().clone();
    let bad = nodes[0]
        .propose(b"\x00\x00\x00\x01garbage".to_vec())
        .unwrap();
    // Drive the cluster until the leader applies (and fails on) the bad entry.
    let mut failure = None;
    for _ in 0..100 {
        let mut messages = Vec::new();
        for node in nodes.iter_mut() {
            match node.handle_ready() {
                Ok(outcome) => messages.extend(outcome.messages),
                Err(error) if node.id() == 1 && failure.is_none() => failure = Some(error),
                Err(_) => {}
            }
        }
        for message in messages {
            let _ = nodes[message.to as usize - 1].step(message);
        }
        if failure.is_some() {
            break;
        }
    }
    match failure {
        Some(RaftDriverError::StateMachine { index, .. }) => assert_eq!(index, bad.index),
        other => panic!("expected a state machine failure, got {other:?}"),
    }
    let leader = &nodes[0];
    assert_eq!(leader.halted_at(), Some(bad.index));
    assert_eq!(
        leader.applied_index(),
        bad.index - 1,
        "the bad entry was skipped"
    );
    assert_eq!(leader.state_machine().image(), &image_before);
    assert!(matches!(
        nodes[0].handle_ready(),
        Err(RaftDriverError::Halted { .. })
    ));
    assert!(matches!(
        nodes[0].propose(good_entry()),
        Err(RaftDriverError::Halted { .. })
    ));
}

fn good_entry() -> Vec<u8> {
    encode_batch(&[MetadataRecord::FeatureLevel {
        name: "metadata.version".into(),
        level: 1,
    }])
}

/// Issue 15's closing figures, printed by `make bench-metadata-snapshot` (in `make test` it
/// checks correctness only: the voter catches up from a snapshot to an identical image of
/// 10,000 partitions; the times it prints are not asserted): the metadata snapshot of a
/// cluster with 10,000 partitions (100 topics x 100 partitions x 3 replicas, 3 brokers), and
/// how long a voter that missed all of it takes to catch up from that snapshot (durable
/// stores in temp dirs, in-process message delivery: no network).
#[test]
fn metadata_snapshot_figures_for_10000_partitions() {
    const TOPICS: usize = 100;
    const PARTITIONS: i32 = 100;
    let dirs: Vec<_> = VOTERS
        .iter()
        .map(|_| tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap())
        .collect();
    let mut nodes: Vec<Node> = VOTERS
        .iter()
        .zip(&dirs)
        .map(|(id, dir)| {
            let (store, _) = RaftLogStore::open(dir.path(), &VOTERS).unwrap();
            RaftDriver::new(*id, store, ImageStateMachine::new(), &settings(50)).unwrap()
        })
        .collect();
    let controller = lead_three_brokers(&mut nodes);
    let started = std::time::Instant::now();
    for index in 0..TOPICS {
        let request = CreateTopicRequest {
            name: format!("topic-{index}"),
            topic_id: [index as u8 + 1; 16],
            num_partitions: PARTITIONS,
            replication_factor: 3,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        let image = controller.image(&nodes);
        let records = create_topics(image, &controller.settings, &[request])
            .pop()
            .unwrap()
            .unwrap();
        controller.commit(&mut nodes, &records, Some(3));
    }
    let committed = started.elapsed();
    let (snapshot_bytes, snapshot_index) = {
        let snapshot = nodes[0].store().latest_snapshot();
        (snapshot.get_data().len(), snapshot.get_metadata().index)
    };
    assert!(nodes[2].state_machine().image().topics().count() == 0);

    let catching_up = std::time::Instant::now();
    let mut restored = false;
    while nodes[2].applied_index() < nodes[0].applied_index() {
        assert!(
            catching_up.elapsed().as_secs() < 120,
            "node 3 never caught up"
        );
        for node in nodes.iter_mut() {
            node.tick();
        }
        for _ in 0..100 {
            let mut messages = Vec::new();
            for node in nodes.iter_mut() {
                let outcome = node.handle_ready().unwrap();
                restored |= node.id() == 3 && outcome.restored_snapshot.is_some();
                messages.extend(outcome.messages);
            }
            if messages.is_empty() {
                break;
            }
            for message in messages {
                nodes[message.to as usize - 1].step(message).unwrap();
            }
        }
    }
    let caught_up = catching_up.elapsed();
    assert!(restored, "node 3 caught up without a snapshot");
    let expected = nodes[0].state_machine().image();
    assert_eq!(nodes[2].state_machine().image(), expected);
    let partitions: usize = expected.topics().map(|t| t.partitions.len()).sum();
    assert_eq!(partitions, TOPICS * PARTITIONS as usize);
    println!(
        "metadata snapshot for {partitions} partitions ({TOPICS} topics, RF 3, 3 brokers): \
         {snapshot_bytes} bytes at index {}; {TOPICS} CreateTopics committed in {} ms; a voter \
         that missed them caught up (snapshot installed and applied) in {} ms",
        snapshot_index,
        committed.as_millis(),
        caught_up.as_millis()
    );
}
