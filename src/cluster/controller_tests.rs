//! Controller decision tests (broker registration, heartbeats and fencing, configs, producer
//! ids): each decision's records apply to the image it was decided on, and each refusal
//! carries Kafka's error code. A randomized run drives broker, topic and producer-id
//! decisions against one image (failures print `SHARDLOG_SEED`). The AlterPartition, topic
//! and election decisions are tested beside their modules.

use super::*;
use crate::cluster::test_cluster::{Cluster, TIMEOUT, error_code, three_replicas, topic};
use crate::cluster::test_rng::Rng;
use crate::cluster::topic_changes::{CreateTopicRequest, delete_topics};
use std::collections::BTreeMap;

#[test]
fn registration_epochs_and_duplicate_claimants() {
    let mut cluster = Cluster::new(&[None, None]);
    let first_epoch = cluster.epochs[&1];
    assert!(!cluster.image.broker(1).unwrap().fenced);
    // The same registration again (a retry) changes nothing.
    let retry = Cluster::request(1, [1; 16], None);
    let decision = register_broker(
        &cluster.image,
        &cluster.sessions,
        &cluster.settings,
        &retry,
        10,
    )
    .unwrap();
    assert_eq!(
        (decision.broker_epoch, decision.records.len()),
        (first_epoch, 0)
    );
    // Another process claiming node 1 while its session is live is refused.
    let impostor = Cluster::request(1, [77; 16], None);
    let result = register_broker(
        &cluster.image,
        &cluster.sessions,
        &cluster.settings,
        &impostor,
        10,
    );
    assert_eq!(error_code(result), 101);
    // Another cluster's broker is refused.
    let mut foreign = Cluster::request(3, [3; 16], None);
    foreign.cluster_id = [1; 16];
    let result = register_broker(
        &cluster.image,
        &cluster.sessions,
        &cluster.settings,
        &foreign,
        10,
    );
    assert_eq!(error_code(result), 104);
    // Once the session expired, a new incarnation registers with a higher epoch, fenced.
    let later = TIMEOUT + 1;
    let epoch = cluster.start_broker(1, [78; 16], None, later).unwrap();
    assert!(epoch > cluster.image.broker(2).unwrap().broker_epoch && epoch > first_epoch);
    assert_eq!(cluster.image.broker(1).unwrap().incarnation_id, [78; 16]);
    // The old incarnation's epoch is stale now.
    let stale = BrokerHeartbeatRequest {
        node_id: 1,
        broker_epoch: first_epoch,
        caught_up: true,
        want_fence: false,
    };
    assert_eq!(
        error_code(broker_heartbeat(
            &cluster.image,
            &cluster.settings,
            &stale,
            later
        )),
        77
    );
    let unknown = BrokerHeartbeatRequest {
        node_id: 9,
        ..stale
    };
    assert_eq!(
        error_code(broker_heartbeat(
            &cluster.image,
            &cluster.settings,
            &unknown,
            later
        )),
        102
    );
}

#[test]
fn a_registered_broker_stays_fenced_until_caught_up() {
    let mut cluster = Cluster::new(&[None]);
    let request = Cluster::request(2, [2; 16], None);
    let decision = register_broker(
        &cluster.image,
        &cluster.sessions,
        &cluster.settings,
        &request,
        0,
    )
    .unwrap();
    cluster.apply(&decision.records);
    assert!(cluster.image.broker(2).unwrap().fenced);
    let behind = BrokerHeartbeatRequest {
        node_id: 2,
        broker_epoch: decision.broker_epoch,
        caught_up: false,
        want_fence: false,
    };
    assert!(
        broker_heartbeat(&cluster.image, &cluster.settings, &behind, 1)
            .unwrap()
            .is_empty()
    );
    let caught_up = BrokerHeartbeatRequest {
        caught_up: true,
        ..behind
    };
    let records = broker_heartbeat(&cluster.image, &cluster.settings, &caught_up, 2).unwrap();
    cluster.apply(&records);
    assert!(!cluster.image.broker(2).unwrap().fenced);
}

#[test]
fn session_timeout_fences_and_moves_leadership_then_offline_then_back() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let manual = CreateTopicRequest {
        num_partitions: -1,
        replication_factor: -1,
        assignments: BTreeMap::from([(0, vec![1, 2, 3])]),
        ..topic("orders", 1, -1, -1)
    };
    let id = cluster.create(manual).unwrap();
    let state = |cluster: &Cluster| cluster.image.partition(&id, 0).unwrap().clone();
    assert_eq!(state(&cluster).leader, Some(1));
    // Brokers 2 and 3 heartbeat; broker 1 goes silent past the session timeout.
    let now = TIMEOUT + 1;
    cluster.heartbeat(2, now).unwrap();
    cluster.heartbeat(3, now).unwrap();
    assert!(
        fence_expired_brokers(
            &cluster.image,
            &cluster.sessions,
            &cluster.settings,
            TIMEOUT
        )
        .is_empty()
    );
    let records = fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
    cluster.apply(&records);
    assert!(cluster.image.broker(1).unwrap().fenced);
    let after = state(&cluster);
    assert_eq!((after.leader, after.isr.clone()), (Some(2), vec![2, 3]));
    assert_eq!((after.leader_epoch, after.partition_epoch), (1, 1));
    // Follower 3 expires: the ISR shrinks, the leader and its epoch stay.
    let now = now + TIMEOUT + 1;
    cluster.heartbeat(2, now).unwrap();
    let records = fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
    cluster.apply(&records);
    let after = state(&cluster);
    assert_eq!((after.leader, after.isr.clone()), (Some(2), vec![2]));
    assert_eq!((after.leader_epoch, after.partition_epoch), (1, 2));
    // The last ISR member expires: offline with an empty ISR, and the ELR remembers who holds
    // the data (KIP-966).
    let now = now + TIMEOUT + 1;
    let records = fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
    cluster.apply(&records);
    let after = state(&cluster);
    assert_eq!(
        (
            after.leader,
            after.isr.clone(),
            after.elr.clone(),
            after.leader_epoch
        ),
        (None, vec![], vec![2], 2)
    );
    // Broker 3 coming back cannot lead (not in the ISR); broker 2 coming back does.
    cluster.heartbeat(3, now + 1).unwrap();
    assert_eq!(state(&cluster).leader, None);
    cluster.start_broker(2, [99; 16], None, now + 2).unwrap();
    let after = state(&cluster);
    assert_eq!(
        (after.leader, after.isr, after.elr, after.leader_epoch),
        (Some(2), vec![2], vec![], 3)
    );
}

/// Three brokers, an RF=3 topic with min.insync.replicas 2, and brokers 1 and 2 fenced
/// together by their session timeout (broker 3 heartbeats): the cluster, topic and time.
fn brokers_1_and_2_fenced_below_min_isr() -> (Cluster, crate::metadata::TopicId, i64) {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = three_replicas(&mut cluster, &[("min.insync.replicas", "2")]);
    let now = TIMEOUT + 1;
    cluster.heartbeat(3, now).unwrap();
    let records = fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
    cluster.apply(&records);
    (cluster, id, now)
}

#[test]
fn brokers_fenced_together_leave_at_once_and_the_topic_min_isr_keeps_them_eligible() {
    let (cluster, id, _) = brokers_1_and_2_fenced_below_min_isr();
    let after = cluster.image.partition(&id, 0).unwrap();
    // One change for both departures: 3 leads, 1 and 2 left below min ISR 2 and stay eligible.
    assert_eq!(
        (after.leader, after.isr.clone(), after.elr.clone()),
        (Some(3), vec![3], vec![1, 2])
    );
    assert_eq!((after.leader_epoch, after.partition_epoch), (1, 1));
}

#[test]
fn controlled_shutdown_of_the_last_isr_member_keeps_it_eligible_and_it_leads_again() {
    let mut cluster = Cluster::new(&[None, None]);
    let manual = CreateTopicRequest {
        num_partitions: -1,
        replication_factor: -1,
        assignments: BTreeMap::from([(0, vec![1])]),
        ..topic("orders", 1, -1, -1)
    };
    let id = cluster.create(manual).unwrap();
    let shutdown = BrokerHeartbeatRequest {
        node_id: 1,
        broker_epoch: cluster.epochs[&1],
        caught_up: true,
        want_fence: true,
    };
    let records = broker_heartbeat(&cluster.image, &cluster.settings, &shutdown, 1).unwrap();
    cluster.apply(&records);
    let after = cluster.image.partition(&id, 0).unwrap();
    assert_eq!(
        (after.leader, after.isr.clone(), after.elr.clone()),
        (None, vec![], vec![1])
    );
    cluster.start_broker(1, [77; 16], None, 2).unwrap();
    let after = cluster.image.partition(&id, 0).unwrap();
    assert_eq!((after.leader, after.isr.clone()), (Some(1), vec![1]));
}

#[test]
fn the_topic_unclean_election_config_overrides_the_settings() {
    for (config, leader) in [("false", None), ("true", Some(3))] {
        let mut cluster = Cluster::new(&[None, None, None]);
        let manual = CreateTopicRequest {
            num_partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::from([(0, vec![1, 2, 3])]),
            ..topic("orders", 1, -1, -1)
        };
        let id = cluster.create(manual).unwrap();
        // Broker 3 leaves first (ISR [1, 2]), then 1 and 2 restart without coming back:
        // the ELR is [1, 2], fenced; broker 3 returns outside ISR and ELR.
        let now = TIMEOUT + 1;
        cluster.heartbeat(1, now).unwrap();
        cluster.heartbeat(2, now).unwrap();
        let records =
            fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
        cluster.apply(&records);
        let later = now + TIMEOUT + 1;
        let records =
            fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, later);
        cluster.apply(&records);
        let offline = cluster.image.partition(&id, 0).unwrap().clone();
        assert_eq!((offline.leader, offline.isr.clone()), (None, vec![]));
        let set = alter_configs(
            &cluster.image,
            &ConfigResource::Topic("orders".into()),
            &[ConfigAlteration {
                name: "unclean.leader.election.enable".into(),
                value: Some(config.into()),
            }],
        )
        .unwrap();
        cluster.apply(&set);
        cluster.start_broker(3, [33; 16], None, later + 1).unwrap();
        let after = cluster.image.partition(&id, 0).unwrap();
        assert_eq!(
            after.leader, leader,
            "unclean.leader.election.enable={config}"
        );
    }
}

#[test]
fn a_new_incarnation_gives_up_leadership_until_it_is_unfenced() {
    let mut cluster = Cluster::new(&[None, None]);
    let manual = CreateTopicRequest {
        num_partitions: -1,
        replication_factor: -1,
        assignments: BTreeMap::from([(0, vec![1, 2])]),
        ..topic("orders", 1, -1, -1)
    };
    let id = cluster.create(manual).unwrap();
    let request = Cluster::request(1, [50; 16], None);
    let decision = register_broker(
        &cluster.image,
        &cluster.sessions,
        &cluster.settings,
        &request,
        TIMEOUT + 1,
    )
    .unwrap();
    cluster.apply(&decision.records);
    let state = cluster.image.partition(&id, 0).unwrap();
    assert_eq!((state.leader, state.isr.clone()), (Some(2), vec![2]));
}

#[test]
fn producer_id_blocks_are_never_reused_across_snapshots() {
    let mut cluster = Cluster::new(&[None, None]);
    let epoch = cluster.epochs[&1];
    let mut seen = Vec::new();
    for round in 0..4 {
        let records = allocate_producer_ids(&cluster.image, &cluster.settings, 1, epoch).unwrap();
        let MetadataRecord::ProducerIdsBlock(block) = records[0] else {
            panic!("expected a producer-id block");
        };
        seen.push((block.first_producer_id, block.size));
        cluster.apply(&records);
        if round == 1 {
            cluster.image = MetadataImage::from_snapshot(&cluster.image.snapshot()).unwrap();
        }
    }
    assert_eq!(
        seen,
        vec![(0, 1000), (1000, 1000), (2000, 1000), (3000, 1000)]
    );
    assert_eq!(
        error_code(allocate_producer_ids(
            &cluster.image,
            &cluster.settings,
            1,
            0
        )),
        77
    );
    assert_eq!(
        error_code(allocate_producer_ids(
            &cluster.image,
            &cluster.settings,
            9,
            0
        )),
        102
    );
}

/// Random decisions against one image: every record list applies, invariants hold (the image
/// checks them), and the image always survives a snapshot round trip.
#[test]
fn random_decisions_always_apply() {
    let mut rng = Rng::from_env();
    let mut cluster = Cluster::new(&[Some("a"), Some("b"), None, Some("a")]);
    let mut now = 0;
    let mut next_topic = 10u8;
    for _ in 0..400 {
        now += rng.below(TIMEOUT as u64 / 2) as i64;
        let node = 1 + rng.below(5) as NodeId;
        match rng.below(7) {
            0 => {
                let _ = cluster.start_broker(node, rng.uuid(), None, now);
            }
            1 | 2 => {
                if cluster.epochs.contains_key(&node) {
                    let _ = cluster.heartbeat(node, now);
                }
            }
            3 => {
                let records = fence_expired_brokers(
                    &cluster.image,
                    &cluster.sessions,
                    &cluster.settings,
                    now,
                );
                cluster.apply(&records);
            }
            4 => {
                next_topic = next_topic.wrapping_add(1).max(10);
                let name = format!("t{}", rng.below(20));
                let rf = 1 + rng.below(3) as i16;
                let _ = cluster.create(topic(&name, next_topic, 1 + rng.below(4) as i32, rf));
            }
            5 => {
                let names: Vec<String> = cluster.image.topics().map(|t| t.name.clone()).collect();
                if let Some(name) = names.first() {
                    for result in delete_topics(&cluster.image, std::slice::from_ref(name)) {
                        cluster.apply(&result.unwrap());
                    }
                }
            }
            _ => {
                if let Some(epoch) = cluster.image.broker(node).map(|b| b.broker_epoch) {
                    let records =
                        allocate_producer_ids(&cluster.image, &cluster.settings, node, epoch)
                            .unwrap();
                    cluster.apply(&records);
                }
            }
        }
        let restored = MetadataImage::from_snapshot(&cluster.image.snapshot());
        assert_eq!(restored.as_ref(), Ok(&cluster.image));
    }
}

#[test]
fn alter_configs_validates_and_records_topic_and_broker_configs() {
    let mut cluster = Cluster::new(&[None]);
    let id = cluster.create(topic("orders", 1, 1, 1)).unwrap();
    let set = |name: &str, value: Option<&str>| ConfigAlteration {
        name: name.into(),
        value: value.map(str::to_string),
    };
    let orders = ConfigResource::Topic("orders".into());
    let bad = [set("retention.ms", Some("soon"))];
    assert_eq!(error_code(alter_configs(&cluster.image, &orders, &bad)), 40);
    let unknown = [set("no.such.config", Some("1"))];
    assert_eq!(
        error_code(alter_configs(&cluster.image, &orders, &unknown)),
        40
    );
    let twice = [set("retention.ms", Some("1")), set("retention.ms", None)];
    assert_eq!(
        error_code(alter_configs(&cluster.image, &orders, &twice)),
        42
    );
    let missing = ConfigResource::Topic("nope".into());
    assert_eq!(error_code(alter_configs(&cluster.image, &missing, &[])), 3);
    assert_eq!(
        error_code(alter_configs(
            &cluster.image,
            &ConfigResource::Broker(9),
            &[]
        )),
        102
    );
    let records = alter_configs(
        &cluster.image,
        &orders,
        &[set("retention.ms", Some("1000"))],
    )
    .unwrap();
    cluster.apply(&records);
    let configs = &cluster.image.topic(&id).unwrap().configs;
    assert_eq!(
        configs.get("retention.ms").map(String::as_str),
        Some("1000")
    );
    let records = alter_configs(&cluster.image, &orders, &[set("retention.ms", None)]).unwrap();
    cluster.apply(&records);
    assert!(cluster.image.topic(&id).unwrap().configs.is_empty());

    let broker = ConfigResource::Broker(1);
    let topic_name_on_broker = [set("retention.ms", Some("1"))];
    assert_eq!(
        error_code(alter_configs(
            &cluster.image,
            &broker,
            &topic_name_on_broker
        )),
        40
    );
    let records = alter_configs(
        &cluster.image,
        &broker,
        &[set("log.retention.ms", Some("5"))],
    )
    .unwrap();
    cluster.apply(&records);
    let configs = cluster.image.broker_configs(&broker).unwrap();
    assert_eq!(
        configs.get("log.retention.ms").map(String::as_str),
        Some("5")
    );
    let default = ConfigResource::BrokerDefault;
    let bad_default = [set("log.retention.ms", Some("-7"))];
    assert_eq!(
        error_code(alter_configs(&cluster.image, &default, &bad_default)),
        40
    );
}

/// KIP-966: a restart is a clean departure only if the previous process shut down cleanly
/// with the epoch the controller has (`previous_broker_epoch`); after a crash (no marker, or
/// another epoch's) the broker may have lost records it had acknowledged, so it leaves the
/// ELR for the last-known ELR.
#[test]
fn a_restart_after_a_crash_leaves_the_elr_and_a_clean_one_stays_eligible() {
    let (mut cluster, id, now) = brokers_1_and_2_fenced_below_min_isr();
    let elr = |cluster: &Cluster| {
        let p = cluster.image.partition(&id, 0).unwrap();
        (p.elr.clone(), p.last_known_elr.clone())
    };
    assert_eq!(elr(&cluster), (vec![1, 2], vec![]));
    let register = |cluster: &mut Cluster, node: NodeId, previous: Option<i64>| {
        let request = BrokerRegistrationRequest {
            previous_broker_epoch: previous,
            ..Cluster::request(node, [node as u8 + 50; 16], None)
        };
        let decision = register_broker(
            &cluster.image,
            &cluster.sessions,
            &cluster.settings,
            &request,
            now + 1,
        )
        .unwrap();
        cluster.apply(&decision.records);
    };
    // Node 1 crashed: a marker of an older epoch does not count.
    let stale = cluster.epochs[&1] - 1;
    register(&mut cluster, 1, Some(stale));
    assert_eq!(elr(&cluster), (vec![2], vec![1]));
    // Node 2 stopped cleanly with the epoch the controller has: it stays eligible.
    let clean = cluster.epochs[&2];
    register(&mut cluster, 2, Some(clean));
    assert_eq!(elr(&cluster), (vec![2], vec![1]));
}

#[test]
fn alter_configs_records_group_overrides_and_snapshots_keep_them() {
    let mut cluster = Cluster::new(&[None]);
    let set = |name: &str, value: Option<&str>| ConfigAlteration {
        name: name.into(),
        value: value.map(str::to_string),
    };
    let group = ConfigResource::Group("payments".into());
    let unknown = [set("consumer.max.size", Some("3"))];
    assert_eq!(
        error_code(alter_configs(&cluster.image, &group, &unknown)),
        40
    );
    let not_a_number = [set("consumer.heartbeat.interval.ms", Some("soon"))];
    assert_eq!(
        error_code(alter_configs(&cluster.image, &group, &not_a_number)),
        40
    );
    let empty = ConfigResource::Group(String::new());
    assert_eq!(error_code(alter_configs(&cluster.image, &empty, &[])), 42);
    let records = alter_configs(
        &cluster.image,
        &group,
        &[
            set("consumer.heartbeat.interval.ms", Some("6000")),
            set("consumer.session.timeout.ms", Some("50000")),
        ],
    )
    .unwrap();
    cluster.apply(&records);
    let groups: Vec<_> = cluster.image.group_configs().collect();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].0, "payments");
    assert_eq!(
        groups[0]
            .1
            .get("consumer.heartbeat.interval.ms")
            .map(String::as_str),
        Some("6000")
    );
    let restored = MetadataImage::from_snapshot(&cluster.image.snapshot());
    assert_eq!(restored.as_ref(), Ok(&cluster.image));
    let records = alter_configs(
        &cluster.image,
        &group,
        &[
            set("consumer.heartbeat.interval.ms", None),
            set("consumer.session.timeout.ms", None),
        ],
    )
    .unwrap();
    cluster.apply(&records);
    assert_eq!(cluster.image.group_configs().count(), 0);
}
