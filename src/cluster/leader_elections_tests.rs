//! ElectLeaders and auto leader rebalance tests: a preferred election gives leadership back
//! in one change (leader and partition epoch + 1, ISR unchanged) and only to a live, in-sync
//! preferred replica; each partition's outcome carries Kafka's code; the rebalance acts above
//! the imbalance percentage only.

use super::*;
use crate::cluster::controller::fence_expired_brokers;
use crate::cluster::isr_changes::alter_partition;
use crate::cluster::partition_changes::AlterPartitionRequest;
use crate::cluster::test_cluster::{Cluster, TIMEOUT, isr_change, three_replicas};
use crate::metadata::TopicId;

/// `three_replicas` after broker 1 (the preferred replica) was fenced and came back into the
/// ISR: broker 2 leads at leader epoch 1.
fn displaced_preferred_leader(cluster: &mut Cluster) -> TopicId {
    let id = three_replicas(cluster, &[]);
    let now = TIMEOUT + 1;
    cluster.heartbeat(2, now).unwrap();
    cluster.heartbeat(3, now).unwrap();
    let records = fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
    cluster.apply(&records);
    cluster.start_broker(1, [77; 16], None, now + 1).unwrap();
    let state = cluster.image.partition(&id, 0).unwrap().clone();
    let isr_back = AlterPartitionRequest {
        leader: 2,
        leader_broker_epoch: cluster.epochs[&2],
        new_isr: vec![2, 3, 1],
        new_isr_broker_epochs: vec![],
        ..isr_change(cluster, id, &[2, 3])
    };
    let decision = alter_partition(&cluster.image, &cluster.settings, id, 0, &isr_back).unwrap();
    cluster.apply(&decision.records);
    let state_now = cluster.image.partition(&id, 0).unwrap();
    assert_eq!(
        (state.leader, state_now.isr.clone()),
        (Some(2), vec![2, 3, 1])
    );
    id
}

fn requested(topic: &str, partitions: &[i32]) -> BTreeMap<String, BTreeSet<i32>> {
    BTreeMap::from([(topic.to_string(), partitions.iter().copied().collect())])
}

#[test]
fn elect_leaders_preferred_gives_leadership_back_in_one_change() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = displaced_preferred_leader(&mut cluster);
    let before = cluster.image.partition(&id, 0).unwrap().clone();
    let request = requested("orders", &[0, 5]);
    let decision = elect_leaders(&cluster.image, ElectionType::Preferred, Some(&request));
    let codes: Vec<(i32, i16)> = decision
        .results
        .iter()
        .map(|r| (r.partition, r.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![(0, 0), (5, ErrorCode::UnknownTopicOrPartition.code())]
    );
    assert_eq!(decision.records.len(), 1);
    cluster.apply(&decision.records);
    let after = cluster.image.partition(&id, 0).unwrap();
    assert_eq!(
        (after.leader, after.isr.clone()),
        (Some(1), before.isr.clone())
    );
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    // Again: not needed; for every partition, nothing to report.
    let again = elect_leaders(&cluster.image, ElectionType::Preferred, Some(&request));
    assert_eq!(
        again.results[0].error_code,
        ErrorCode::ElectionNotNeeded.code()
    );
    assert!(again.records.is_empty());
    let all = elect_leaders(&cluster.image, ElectionType::Preferred, None);
    assert_eq!(all, ElectLeadersDecision::default());
    let unknown = elect_leaders(
        &cluster.image,
        ElectionType::Preferred,
        Some(&requested("x", &[0])),
    );
    assert_eq!(
        unknown.results[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

#[test]
fn elect_leaders_preferred_needs_the_preferred_replica_live_and_in_sync() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = three_replicas(&mut cluster, &[]);
    let now = TIMEOUT + 1;
    cluster.heartbeat(2, now).unwrap();
    cluster.heartbeat(3, now).unwrap();
    let records = fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
    cluster.apply(&records);
    assert_eq!(cluster.image.partition(&id, 0).unwrap().leader, Some(2));
    // Fenced, out of the ISR: not available, with or without a partition list.
    let request = requested("orders", &[0]);
    let decision = elect_leaders(&cluster.image, ElectionType::Preferred, Some(&request));
    let code = ErrorCode::PreferredLeaderNotAvailable.code();
    assert_eq!(decision.results[0].error_code, code);
    let all = elect_leaders(&cluster.image, ElectionType::Preferred, None);
    assert_eq!(all.results[0].error_code, code);
    // Back and unfenced but not yet in the ISR: still not available.
    cluster.start_broker(1, [77; 16], None, now + 1).unwrap();
    let decision = elect_leaders(&cluster.image, ElectionType::Preferred, Some(&request));
    assert_eq!(decision.results[0].error_code, code);
    // Unclean: the partition has a leader, so no election is needed.
    let unclean = elect_leaders(&cluster.image, ElectionType::Unclean, Some(&request));
    assert_eq!(
        unclean.results[0].error_code,
        ErrorCode::ElectionNotNeeded.code()
    );
}

#[test]
fn rebalance_moves_leaders_back_above_the_imbalance_percentage_only() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = displaced_preferred_leader(&mut cluster);
    // Broker 1 prefers one partition and leads none of them: 100% > 10%.
    let records = rebalance_leaders(&cluster.image, &cluster.settings);
    assert_eq!(records.len(), 1);
    let off = ControllerSettings {
        auto_leader_rebalance: false,
        ..cluster.settings.clone()
    };
    assert!(rebalance_leaders(&cluster.image, &off).is_empty());
    let tolerant = ControllerSettings {
        leader_imbalance_per_broker_percentage: 100,
        ..cluster.settings.clone()
    };
    assert!(rebalance_leaders(&cluster.image, &tolerant).is_empty());
    cluster.apply(&records);
    assert_eq!(cluster.image.partition(&id, 0).unwrap().leader, Some(1));
    assert!(rebalance_leaders(&cluster.image, &cluster.settings).is_empty());
}
