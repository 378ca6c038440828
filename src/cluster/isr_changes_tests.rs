//! AlterPartition decision tests: an accepted ISR change is one `PartitionChange` record at
//! the next partition epoch that applies to the image, the topic's `min.insync.replicas`
//! decides who stays eligible (ELR), and each refusal carries Kafka's error code in Kafka's
//! order of checks.

use super::*;
use crate::cluster::controller::fence_expired_brokers;
use crate::cluster::test_cluster::{Cluster, TIMEOUT, error_code, isr_change, three_replicas};

#[test]
fn an_accepted_isr_shrink_is_one_partition_change_with_the_next_partition_epoch() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = three_replicas(&mut cluster, &[("min.insync.replicas", "2")]);
    let before = cluster.image.partition(&id, 0).unwrap().clone();
    let request = isr_change(&cluster, id, &[1, 2]);
    let decision = alter_partition(&cluster.image, &cluster.settings, id, 0, &request).unwrap();
    assert_eq!(
        decision.records,
        vec![change_record(id, 0, &before, &decision.state)]
    );
    assert_eq!(
        (decision.state.isr.clone(), decision.state.leader),
        (vec![1, 2], Some(1))
    );
    assert_eq!(
        (decision.state.leader_epoch, decision.state.partition_epoch),
        (before.leader_epoch, before.partition_epoch + 1)
    );
    cluster.apply(&decision.records);
    assert_eq!(cluster.image.partition(&id, 0), Some(&decision.state));
    // Below the topic's min ISR of 2 (the settings' 1 would clear the ELR), the leaver stays
    // eligible; 3 left while the ISR still met min ISR, so it does not.
    let request = isr_change(&cluster, id, &[1]);
    let decision = alter_partition(&cluster.image, &cluster.settings, id, 0, &request).unwrap();
    assert_eq!(
        (decision.state.isr.clone(), decision.state.elr.clone()),
        (vec![1], vec![2])
    );
    // A request that changes nothing answers the current state without a record.
    cluster.apply(&decision.records);
    let request = isr_change(&cluster, id, &[1]);
    let unchanged = alter_partition(&cluster.image, &cluster.settings, id, 0, &request).unwrap();
    assert!(unchanged.records.is_empty());
    assert_eq!(Some(&unchanged.state), cluster.image.partition(&id, 0));
}

#[test]
fn alter_partition_refusals_carry_kafka_codes() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = three_replicas(&mut cluster, &[]);
    let decide = |cluster: &Cluster, topic: TopicId, partition: i32, request| {
        alter_partition(
            &cluster.image,
            &cluster.settings,
            topic,
            partition,
            &request,
        )
    };
    let shrink = isr_change(&cluster, id, &[1, 2]);
    let stale = AlterPartitionRequest {
        leader_broker_epoch: shrink.leader_broker_epoch - 1,
        ..shrink.clone()
    };
    assert_eq!(error_code(decide(&cluster, id, 0, stale)), 77);
    let unregistered = AlterPartitionRequest {
        leader: 9,
        ..shrink.clone()
    };
    assert_eq!(error_code(decide(&cluster, id, 0, unregistered)), 77);
    assert_eq!(
        error_code(decide(&cluster, [9; 16], 0, shrink.clone())),
        100
    );
    assert_eq!(error_code(decide(&cluster, id, 1, shrink.clone())), 3);
    assert_eq!(error_code(decide(&cluster, id, -1, shrink.clone())), 3);
    let old_partition_epoch = AlterPartitionRequest {
        partition_epoch: shrink.partition_epoch - 1,
        ..shrink.clone()
    };
    assert_eq!(error_code(decide(&cluster, id, 0, old_partition_epoch)), 95);
    let old_leader_epoch = AlterPartitionRequest {
        leader_epoch: shrink.leader_epoch - 1,
        ..shrink.clone()
    };
    assert_eq!(error_code(decide(&cluster, id, 0, old_leader_epoch)), 74);
    let follower = AlterPartitionRequest {
        leader: 2,
        leader_broker_epoch: cluster.epochs[&2],
        ..shrink.clone()
    };
    assert_eq!(error_code(decide(&cluster, id, 0, follower)), 6);
    // Broker 3 leaves the ISR and is then fenced: adding it back is INELIGIBLE_REPLICA.
    let decision = decide(&cluster, id, 0, shrink).unwrap();
    cluster.apply(&decision.records);
    let now = TIMEOUT + 1;
    cluster.heartbeat(1, now).unwrap();
    cluster.heartbeat(2, now).unwrap();
    let records = fence_expired_brokers(&cluster.image, &cluster.sessions, &cluster.settings, now);
    cluster.apply(&records);
    let expand = isr_change(&cluster, id, &[1, 2, 3]);
    assert_eq!(error_code(decide(&cluster, id, 0, expand)), 107);
}
