//! Topic decision tests: CreateTopics, DeleteTopics and CreatePartitions refuse bad requests
//! with Kafka's error codes, placement spreads replicas over racks and balances leaders
//! across topics, and every accepted decision's records apply to the image.

use super::*;
use crate::cluster::controller::{BrokerHeartbeatRequest, broker_heartbeat};
use crate::cluster::test_cluster::{Cluster, error_code, topic};

#[test]
fn create_topics_refuses_bad_requests_with_kafka_codes() {
    let mut cluster = Cluster::new(&[None, None, None]);
    assert_eq!(
        error_code(cluster.create(topic("a", 1, 1, 4))),
        38,
        "RF above brokers"
    );
    assert_eq!(error_code(cluster.create(topic("a", 1, 1, 0))), 38, "RF 0");
    assert_eq!(
        error_code(cluster.create(topic("a", 1, 0, 1))),
        37,
        "0 partitions"
    );
    assert_eq!(
        error_code(cluster.create(topic("a", 1, 10_001, 1))),
        37,
        "past the limit"
    );
    assert_eq!(
        error_code(cluster.create(topic("a b", 1, 1, 1))),
        17,
        "bad name"
    );
    let mut bad_config = topic("a", 1, 1, 1);
    bad_config
        .configs
        .insert("retention.ms".into(), "soon".into());
    assert_eq!(error_code(cluster.create(bad_config)), 40);
    cluster.create(topic("a", 1, -1, -1)).unwrap();
    assert_eq!(
        error_code(cluster.create(topic("a", 2, 1, 1))),
        36,
        "exists"
    );
    let results = create_topics(
        &cluster.image,
        &cluster.settings,
        &[topic("b", 3, 1, 1), topic("b", 4, 1, 1)],
    );
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err().error_code() == 42)
    );
    // A fenced broker does not count towards the replication factor.
    let epoch = cluster.epochs[&3];
    let request = BrokerHeartbeatRequest {
        node_id: 3,
        broker_epoch: epoch,
        caught_up: true,
        want_fence: true,
    };
    let records = broker_heartbeat(&cluster.image, &cluster.settings, &request, 1).unwrap();
    cluster.apply(&records);
    assert_eq!(error_code(cluster.create(topic("c", 5, 1, 3))), 38);
    cluster.create(topic("c", 5, 1, 2)).unwrap();
}

#[test]
fn placement_spreads_racks_and_balances_leaders() {
    let racks = [
        Some("r1"),
        Some("r1"),
        Some("r2"),
        Some("r2"),
        Some("r3"),
        Some("r3"),
    ];
    let mut cluster = Cluster::new(&racks);
    let id = cluster.create(topic("orders", 1, 12, 3)).unwrap();
    let created = cluster.image.topic(&id).unwrap();
    let mut leaders: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut replicas: BTreeMap<NodeId, usize> = BTreeMap::new();
    for state in &created.partitions {
        let partition_racks: BTreeSet<_> = state
            .replicas
            .iter()
            .map(|node| racks[*node as usize - 1])
            .collect();
        assert_eq!(
            partition_racks.len(),
            3,
            "one replica per rack: {:?}",
            state.replicas
        );
        assert_eq!(state.isr, state.replicas);
        assert_eq!(state.leader, state.replicas.first().copied());
        *leaders.entry(state.leader.unwrap()).or_default() += 1;
        state
            .replicas
            .iter()
            .for_each(|n| *replicas.entry(*n).or_default() += 1);
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
    assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![6; 6]);
    // A second topic keeps leaders balanced across both topics.
    cluster.create(topic_named("more", 2, 3)).unwrap();
    let mut all_leaders: BTreeMap<NodeId, usize> = BTreeMap::new();
    for state in cluster.image.topics().flat_map(|t| t.partitions.iter()) {
        *all_leaders.entry(state.leader.unwrap()).or_default() += 1;
    }
    let (min, max) = (all_leaders.values().min(), all_leaders.values().max());
    assert!(max.unwrap() - min.unwrap() <= 1, "leaders {all_leaders:?}");
}

fn topic_named(name: &str, id: u8, partitions: i32) -> CreateTopicRequest {
    topic(name, id, partitions, 2)
}

#[test]
fn explicit_assignments_are_validated() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let with = |assignments: &[(i32, &[NodeId])]| CreateTopicRequest {
        num_partitions: -1,
        replication_factor: -1,
        assignments: assignments.iter().map(|(p, r)| (*p, r.to_vec())).collect(),
        ..topic("manual", 1, -1, -1)
    };
    assert_eq!(
        error_code(cluster.create(with(&[(0, &[1, 2]), (2, &[2, 3])]))),
        39,
        "gap"
    );
    assert_eq!(
        error_code(cluster.create(with(&[(0, &[1, 1])]))),
        39,
        "duplicate broker"
    );
    assert_eq!(
        error_code(cluster.create(with(&[(0, &[1, 9])]))),
        39,
        "unknown broker"
    );
    assert_eq!(error_code(cluster.create(with(&[(0, &[])]))), 39, "empty");
    assert_eq!(
        error_code(cluster.create(with(&[(0, &[1]), (1, &[1, 2])]))),
        39,
        "ragged"
    );
    let mut both = with(&[(0, &[1])]);
    both.num_partitions = 1;
    assert_eq!(error_code(cluster.create(both)), 42);
    let id = cluster.create(with(&[(0, &[3, 1]), (1, &[2, 3])])).unwrap();
    let state = cluster.image.partition(&id, 0).unwrap();
    assert_eq!(
        (state.replicas.clone(), state.leader),
        (vec![3, 1], Some(3))
    );
}

#[test]
fn delete_topics_and_create_partitions() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = cluster.create(topic("orders", 1, 2, 2)).unwrap();
    let grow = |count| CreatePartitionsRequest {
        name: "orders".into(),
        count,
        assignments: vec![],
    };
    assert_eq!(
        error_code(create_partitions(
            &cluster.image,
            &cluster.settings,
            &grow(2)
        )),
        37
    );
    let records = create_partitions(&cluster.image, &cluster.settings, &grow(5)).unwrap();
    cluster.apply(&records);
    let grown = cluster.image.topic(&id).unwrap();
    assert_eq!(grown.partitions.len(), 5);
    assert!(grown.partitions.iter().all(|p| p.replicas.len() == 2));
    let manual = CreatePartitionsRequest {
        name: "orders".into(),
        count: 6,
        assignments: vec![vec![1, 7]],
    };
    assert_eq!(
        error_code(create_partitions(
            &cluster.image,
            &cluster.settings,
            &manual
        )),
        39
    );
    let missing = CreatePartitionsRequest {
        name: "nope".into(),
        ..grow(3)
    };
    assert_eq!(
        error_code(create_partitions(
            &cluster.image,
            &cluster.settings,
            &missing
        )),
        3
    );

    let mut results = delete_topics(&cluster.image, &["orders".into(), "nope".into()]);
    assert_eq!(error_code(results.pop().unwrap()), 3);
    cluster.apply(&results.pop().unwrap().unwrap());
    assert!(cluster.image.topic_by_name("orders").is_none());
    // The name is free again, under a new id.
    cluster.create(topic("orders", 2, 1, 1)).unwrap();
}
