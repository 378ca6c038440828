//! KIP-966 election and AlterPartition tests: the election order tier by tier, the ISR
//! emptying into the ELR, unclean departures and unclean elections, each AlterPartition
//! refusal with Kafka's code, the epoch rules, and every change applying to an image through
//! its `PartitionChange` record.

use super::*;
use crate::cluster::image::MetadataImage;
use crate::cluster::records::{PartitionRecord, TopicRecord};

const TOPIC: TopicId = [7; 16];
const LEADER_EPOCH: i32 = 5;
const PARTITION_EPOCH: i32 = 9;

fn state(
    replicas: &[NodeId],
    isr: &[NodeId],
    elr: &[NodeId],
    last_known_elr: &[NodeId],
    leader: Option<NodeId>,
) -> PartitionState {
    PartitionState {
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        elr: elr.to_vec(),
        last_known_elr: last_known_elr.to_vec(),
        leader,
        leader_epoch: LEADER_EPOCH,
        partition_epoch: PARTITION_EPOCH,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

fn only(nodes: &'static [NodeId]) -> impl Fn(NodeId) -> bool {
    move |node| nodes.contains(&node)
}

fn everyone(_: NodeId) -> bool {
    true
}

/// `(leader, isr, elr, last_known_elr)` of a state, for compact assertions.
fn shape(state: &PartitionState) -> (Option<NodeId>, Vec<NodeId>, Vec<NodeId>, Vec<NodeId>) {
    (
        state.leader,
        state.isr.clone(),
        state.elr.clone(),
        state.last_known_elr.clone(),
    )
}

/// Applies `change_record(old, new)` to an image holding `old` and checks it yields `new`.
fn assert_round_trips(old: &PartitionState, new: &PartitionState) {
    let mut image = MetadataImage::new();
    image
        .apply(&MetadataRecord::Topic(TopicRecord {
            topic_id: TOPIC,
            name: "orders".into(),
        }))
        .unwrap();
    image
        .apply(&MetadataRecord::Partition(PartitionRecord {
            topic_id: TOPIC,
            partition: 0,
            replicas: old.replicas.clone(),
            isr: old.isr.clone(),
            elr: old.elr.clone(),
            last_known_elr: old.last_known_elr.clone(),
            leader: old.leader,
            leader_epoch: old.leader_epoch,
            partition_epoch: old.partition_epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }))
        .unwrap();
    let record = change_record(TOPIC, 0, old, new);
    image
        .apply(&record)
        .unwrap_or_else(|e| panic!("{record:?} does not apply: {e}"));
    assert_eq!(image.partition(&TOPIC, 0).unwrap(), new);
}

// ---------------------------------------------------------------------------------------
// choose_leader
// ---------------------------------------------------------------------------------------

#[test]
fn an_isr_member_leads_first_in_replica_order() {
    let partition = state(&[3, 1, 2], &[1, 2, 3], &[], &[], None);
    assert_eq!(
        choose_leader(&partition, &everyone, false),
        Some((3, false))
    );
    assert_eq!(
        choose_leader(&partition, &only(&[1, 2]), false),
        Some((1, false))
    );
}

#[test]
fn an_elr_member_leads_only_when_the_isr_is_empty() {
    let empty_isr = state(&[1, 2, 3], &[], &[2, 3], &[], None);
    assert_eq!(
        choose_leader(&empty_isr, &only(&[3]), false),
        Some((3, false))
    );
    assert_eq!(choose_leader(&empty_isr, &only(&[1]), false), None);
    // A non-empty ISR whose members are unusable does not fall through to the ELR (Kafka).
    let isr_down = state(&[1, 2, 3], &[1], &[2], &[], None);
    assert_eq!(choose_leader(&isr_down, &only(&[2]), false), None);
}

#[test]
fn unclean_election_prefers_the_last_known_elr_then_any_replica() {
    let partition = state(&[1, 2, 3], &[], &[], &[2, 3], None);
    assert_eq!(choose_leader(&partition, &everyone, false), None);
    assert_eq!(choose_leader(&partition, &everyone, true), Some((2, true)));
    assert_eq!(
        choose_leader(&partition, &only(&[1]), true),
        Some((1, true))
    );
    assert_eq!(choose_leader(&partition, &only(&[]), true), None);
}

#[test]
fn a_last_known_leader_alone_comes_back_without_unclean_election() {
    // KIP-966 (Kafka's canElectLastKnownLeader): ISR and ELR empty, one last-known member.
    let partition = state(&[1, 2, 3], &[], &[], &[2], None);
    assert_eq!(choose_leader(&partition, &everyone, false), Some((2, true)));
    assert_eq!(choose_leader(&partition, &only(&[1, 3]), false), None);
    // Not while an ELR member exists, usable or not.
    let with_elr = state(&[1, 2, 3], &[], &[3], &[2], None);
    assert_eq!(choose_leader(&with_elr, &only(&[2]), false), None);
}

// ---------------------------------------------------------------------------------------
// without / without_all / elect_returning
// ---------------------------------------------------------------------------------------

#[test]
fn the_isr_shrinks_to_empty_and_its_leavers_become_eligible() {
    let start = state(&[1, 2, 3], &[1, 2, 3], &[], &[], Some(1));
    // ISR 2 >= min ISR 2: nobody needs to stay eligible.
    let one = without(&start, 3, Departure::Clean, 2, &only(&[1, 2]), false).unwrap();
    assert_eq!(shape(&one), (Some(1), vec![1, 2], vec![], vec![]));
    // ISR 1 < 2: the leaver holds the committed data and joins the ELR.
    let two = without(&one, 2, Departure::Clean, 2, &only(&[1]), false).unwrap();
    assert_eq!(shape(&two), (Some(1), vec![1], vec![2], vec![]));
    // The last member leaves: the ISR is empty, the partition offline, both are eligible.
    let three = without(&two, 1, Departure::Clean, 2, &only(&[]), false).unwrap();
    assert_eq!(shape(&three), (None, vec![], vec![1, 2], vec![]));
    for (old, new) in [(&start, &one), (&one, &two), (&two, &three)] {
        assert_round_trips(old, new);
    }
}

#[test]
fn the_last_isr_member_goes_to_the_elr_with_the_default_min_isr() {
    let start = state(&[1, 2], &[2], &[], &[], Some(2));
    let after = without(&start, 2, Departure::Clean, 1, &only(&[1]), false).unwrap();
    assert_eq!(shape(&after), (None, vec![], vec![2], vec![]));
    // min ISR 0 counts as 1: the data holder is never forgotten.
    assert_eq!(
        without(&start, 2, Departure::Clean, 0, &only(&[1]), false),
        Some(after)
    );
}

#[test]
fn a_returning_elr_member_leads_and_becomes_the_isr() {
    let offline = state(&[1, 2, 3], &[], &[1, 2], &[3], None);
    let after = elect_returning(&offline, &only(&[2]), false).unwrap();
    assert_eq!(shape(&after), (Some(2), vec![2], vec![1], vec![3]));
    assert_eq!(
        (after.leader_epoch, after.partition_epoch),
        (LEADER_EPOCH + 1, PARTITION_EPOCH + 1)
    );
    assert_round_trips(&offline, &after);
    // A replica outside ISR and ELR coming back changes nothing without unclean election.
    assert_eq!(elect_returning(&offline, &only(&[3]), false), None);
    // A partition with a leader is left alone.
    let led = state(&[1, 2], &[1], &[], &[], Some(1));
    assert_eq!(elect_returning(&led, &everyone, true), None);
}

#[test]
fn a_returning_isr_member_of_an_offline_partition_leads() {
    let offline = state(&[1, 2], &[2], &[], &[], None);
    let after = elect_returning(&offline, &only(&[2]), false).unwrap();
    assert_eq!(shape(&after), (Some(2), vec![2], vec![], vec![]));
    assert_round_trips(&offline, &after);
}

#[test]
fn unclean_election_is_off_unless_allowed_and_resets_isr_and_elr() {
    let offline = state(&[1, 2, 3], &[], &[1], &[2], None);
    assert_eq!(elect_returning(&offline, &only(&[3]), false), None);
    let after = elect_returning(&offline, &only(&[3]), true).unwrap();
    assert_eq!(shape(&after), (Some(3), vec![3], vec![], vec![]));
    assert_round_trips(&offline, &after);
    // The last-known ELR member comes first.
    let after = elect_returning(&offline, &only(&[2, 3]), true).unwrap();
    assert_eq!(shape(&after), (Some(2), vec![2], vec![], vec![]));
    // A clean candidate wins over unclean ones even when unclean election is allowed.
    let after = elect_returning(&offline, &everyone, true).unwrap();
    assert_eq!(shape(&after), (Some(1), vec![1], vec![], vec![2]));
}

#[test]
fn an_unclean_departure_leaves_the_elr_for_the_last_known_elr() {
    let offline = state(&[1, 2, 3], &[], &[1, 2], &[], None);
    let one = without(&offline, 1, Departure::Unclean, 2, &only(&[]), false).unwrap();
    assert_eq!(shape(&one), (None, vec![], vec![2], vec![1]));
    let two = without(&one, 2, Departure::Unclean, 2, &only(&[]), false).unwrap();
    assert_eq!(shape(&two), (None, vec![], vec![], vec![1, 2]));
    // Back again, neither may lead cleanly: the partition stays offline...
    assert_eq!(elect_returning(&two, &only(&[1, 2]), false), None);
    // ...unless unclean election is allowed.
    let led = elect_returning(&two, &only(&[2]), true).unwrap();
    assert_eq!(shape(&led), (Some(2), vec![2], vec![], vec![]));
    // A clean departure keeps an ELR member eligible: nothing changes.
    assert_eq!(
        without(&offline, 1, Departure::Clean, 2, &only(&[]), false),
        None
    );
    for (old, new) in [(&offline, &one), (&one, &two), (&two, &led)] {
        assert_round_trips(old, new);
    }
}

#[test]
fn an_unclean_restart_of_the_last_isr_member_waits_for_it_as_the_last_known_leader() {
    let start = state(&[1, 2], &[1], &[], &[], Some(1));
    let after = without(&start, 1, Departure::Unclean, 1, &only(&[2]), false).unwrap();
    assert_eq!(shape(&after), (None, vec![], vec![], vec![1]));
    // Node 2 was never eligible; node 1, back, is the one replica that can lead.
    assert_eq!(elect_returning(&after, &only(&[2]), false), None);
    let back = elect_returning(&after, &only(&[1, 2]), false).unwrap();
    assert_eq!(shape(&back), (Some(1), vec![1], vec![], vec![]));
    assert_round_trips(&start, &after);
    // With unclean election allowed, a usable replica leads at once.
    let after = without(&start, 1, Departure::Unclean, 1, &only(&[2]), true).unwrap();
    assert_eq!(shape(&after), (Some(2), vec![2], vec![], vec![]));
}

#[test]
fn a_leaving_leader_hands_over_within_the_isr() {
    let start = state(&[1, 2, 3], &[1, 2, 3], &[], &[], Some(1));
    let after = without(&start, 1, Departure::Clean, 1, &only(&[2, 3]), false).unwrap();
    assert_eq!(shape(&after), (Some(2), vec![2, 3], vec![], vec![]));
    assert_round_trips(&start, &after);
}

#[test]
fn epochs_bump_leader_only_on_leader_change_and_partition_on_any_change() {
    let start = state(&[1, 2, 3], &[1, 2, 3], &[], &[], Some(1));
    let follower_left = without(&start, 3, Departure::Clean, 1, &everyone, false).unwrap();
    assert_eq!(
        (follower_left.leader_epoch, follower_left.partition_epoch),
        (LEADER_EPOCH, PARTITION_EPOCH + 1)
    );
    let leader_left = without(&start, 1, Departure::Clean, 1, &only(&[2, 3]), false).unwrap();
    assert_eq!(
        (leader_left.leader_epoch, leader_left.partition_epoch),
        (LEADER_EPOCH + 1, PARTITION_EPOCH + 1)
    );
    // Nothing to do: no change, no epoch.
    assert_eq!(
        without(&start, 9, Departure::Clean, 1, &everyone, false),
        None
    );
    assert_eq!(
        without(&start, 9, Departure::Unclean, 1, &everyone, false),
        None
    );
}

#[test]
fn an_isr_back_at_min_isr_clears_the_elr() {
    let start = state(&[1, 2, 3, 4], &[1, 2, 3], &[4], &[], Some(1));
    let after = without(&start, 3, Departure::Clean, 2, &everyone, false).unwrap();
    assert_eq!(shape(&after), (Some(1), vec![1, 2], vec![], vec![]));
    assert_round_trips(&start, &after);
}

#[test]
fn a_batch_of_departures_elects_once_with_every_leaver_known() {
    let start = state(&[1, 2, 3, 4], &[1, 2], &[3], &[], Some(1));
    // Brokers 1 and 2 fence together; 3 (ELR) and 4 are usable; min ISR 3.
    let after = without_all(&start, &[1, 2], Departure::Clean, 3, &only(&[3, 4]), true).unwrap();
    assert_eq!(shape(&after), (Some(3), vec![3], vec![1, 2], vec![]));
    assert_eq!(
        (after.leader_epoch, after.partition_epoch),
        (LEADER_EPOCH + 1, PARTITION_EPOCH + 1)
    );
    assert_round_trips(&start, &after);
    assert_eq!(
        without_all(&start, &[9], Departure::Clean, 3, &everyone, true),
        None
    );
}

// ---------------------------------------------------------------------------------------
// alter_partition
// ---------------------------------------------------------------------------------------

const BROKER_EPOCH: i64 = 40;

fn alter(new_isr: &[NodeId]) -> AlterPartitionRequest {
    AlterPartitionRequest {
        leader: 1,
        leader_broker_epoch: BROKER_EPOCH,
        leader_epoch: LEADER_EPOCH,
        partition_epoch: PARTITION_EPOCH,
        new_isr: new_isr.to_vec(),
        new_isr_broker_epochs: Vec::new(),
    }
}

/// No registered broker epochs: requests without `new_isr_broker_epochs` are not checked.
fn no_epochs(_: NodeId) -> Option<i64> {
    None
}

fn code(result: Result<PartitionState, ErrorCode>) -> i16 {
    result.unwrap_err().code()
}

#[test]
fn alter_partition_refuses_with_kafka_codes() {
    let led = state(&[1, 2, 3], &[1, 2], &[], &[], Some(1));
    let decide = |request: &AlterPartitionRequest| {
        alter_partition(&led, request, BROKER_EPOCH, 1, &only(&[1, 2]), &no_epochs)
    };
    let stale_broker = AlterPartitionRequest {
        leader_broker_epoch: BROKER_EPOCH - 1,
        ..alter(&[1])
    };
    assert_eq!(code(decide(&stale_broker)), 77);
    let not_leader = AlterPartitionRequest {
        leader: 2,
        new_isr: vec![2],
        new_isr_broker_epochs: Vec::new(),
        ..alter(&[])
    };
    assert_eq!(code(decide(&not_leader)), 6);
    for leader_epoch in [LEADER_EPOCH - 1, LEADER_EPOCH + 1] {
        let fenced = AlterPartitionRequest {
            leader_epoch,
            ..alter(&[1])
        };
        assert_eq!(code(decide(&fenced)), 74);
    }
    let old_version = AlterPartitionRequest {
        partition_epoch: PARTITION_EPOCH - 1,
        ..alter(&[1])
    };
    assert_eq!(code(decide(&old_version)), 95);
    for bad_isr in [&[1, 9][..], &[1, 2, 2], &[2], &[]] {
        assert_eq!(code(decide(&alter(bad_isr))), 42, "{bad_isr:?}");
    }
    // Broker 3 is fenced: it may not join.
    assert_eq!(code(decide(&alter(&[1, 2, 3]))), 107);
    // A leaderless partition has no leader to send it.
    let offline = state(&[1, 2], &[], &[1], &[], None);
    assert_eq!(
        code(alter_partition(
            &offline,
            &alter(&[1]),
            BROKER_EPOCH,
            1,
            &everyone,
            &no_epochs
        )),
        6
    );
}

#[test]
fn alter_partition_shrinks_below_min_isr_into_the_elr_and_expands_out_of_it() {
    let led = state(&[1, 2, 3], &[1, 2, 3], &[], &[], Some(1));
    let shrunk =
        alter_partition(&led, &alter(&[1]), BROKER_EPOCH, 2, &everyone, &no_epochs).unwrap();
    assert_eq!(shape(&shrunk), (Some(1), vec![1], vec![2, 3], vec![]));
    assert_eq!(
        (shrunk.leader_epoch, shrunk.partition_epoch),
        (LEADER_EPOCH, PARTITION_EPOCH + 1)
    );
    assert_round_trips(&led, &shrunk);
    let request = AlterPartitionRequest {
        partition_epoch: shrunk.partition_epoch,
        ..alter(&[1, 3])
    };
    let expanded =
        alter_partition(&shrunk, &request, BROKER_EPOCH, 2, &everyone, &no_epochs).unwrap();
    assert_eq!(shape(&expanded), (Some(1), vec![1, 3], vec![], vec![]));
    assert_round_trips(&shrunk, &expanded);
    // Shrinking while at or above min ISR makes nobody eligible.
    let at_min = alter_partition(
        &led,
        &alter(&[1, 2]),
        BROKER_EPOCH,
        2,
        &everyone,
        &no_epochs,
    )
    .unwrap();
    assert_eq!(shape(&at_min), (Some(1), vec![1, 2], vec![], vec![]));
}

#[test]
fn alter_partition_refuses_a_replica_seen_in_an_older_incarnation() {
    // KIP-903: broker 3 fetched as epoch 7, then restarted (registered as 9): it may have
    // lost data the leader's view of it still counts.
    let led = state(&[1, 2, 3], &[1, 2], &[], &[], Some(1));
    let registered = |node: NodeId| (node == 3).then_some(9);
    let stale = AlterPartitionRequest {
        new_isr_broker_epochs: vec![(3, 7)],
        ..alter(&[1, 2, 3])
    };
    let decided = alter_partition(&led, &stale, BROKER_EPOCH, 1, &everyone, &registered);
    assert_eq!(code(decided), 107);
    let current = AlterPartitionRequest {
        new_isr_broker_epochs: vec![(3, 9)],
        ..alter(&[1, 2, 3])
    };
    let decided = alter_partition(&led, &current, BROKER_EPOCH, 1, &everyone, &registered);
    assert_eq!(decided.unwrap().isr, vec![1, 2, 3]);
}

#[test]
fn alter_partition_retry_of_the_committed_isr_is_a_no_op() {
    let led = state(&[1, 2, 3], &[1, 2], &[], &[], Some(1));
    let same = alter_partition(
        &led,
        &alter(&[1, 2]),
        BROKER_EPOCH,
        1,
        &everyone,
        &no_epochs,
    )
    .unwrap();
    assert_eq!(same, led);
}

#[test]
fn change_record_sets_only_differing_fields() {
    let old = state(&[1, 2, 3], &[1, 2], &[], &[], Some(1));
    let new = PartitionState {
        isr: vec![1],
        partition_epoch: PARTITION_EPOCH + 1,
        ..old.clone()
    };
    let MetadataRecord::PartitionChange(record) = change_record(TOPIC, 4, &old, &new) else {
        panic!("expected a PartitionChange");
    };
    assert_eq!(record.partition, 4);
    assert_eq!(record.leader, LeaderChange::Unchanged);
    assert_eq!(record.isr, Some(vec![1]));
    assert_eq!(
        (&record.replicas, &record.elr, &record.last_known_elr),
        (&None, &None, &None)
    );
    assert_eq!(
        (record.leader_epoch, record.partition_epoch),
        (LEADER_EPOCH, PARTITION_EPOCH + 1)
    );
    let offline = PartitionState {
        leader: None,
        isr: vec![],
        elr: vec![1, 2],
        leader_epoch: LEADER_EPOCH + 1,
        partition_epoch: PARTITION_EPOCH + 1,
        ..old.clone()
    };
    let MetadataRecord::PartitionChange(record) = change_record(TOPIC, 0, &old, &offline) else {
        panic!("expected a PartitionChange");
    };
    assert_eq!(record.leader, LeaderChange::None);
    assert_round_trips(&old, &offline);
}

#[test]
fn preferred_election_moves_leadership_to_the_first_replica_and_keeps_the_isr() {
    let old = state(&[1, 2, 3], &[2, 3, 1], &[], &[], Some(2));
    let next = elect_preferred(&old, &everyone).unwrap();
    assert_eq!(shape(&next), (Some(1), vec![2, 3, 1], vec![], vec![]));
    assert_eq!(next.leader_epoch, LEADER_EPOCH + 1);
    assert_eq!(next.partition_epoch, PARTITION_EPOCH + 1);
    assert_round_trips(&old, &next);
}

#[test]
fn preferred_election_refusals_carry_kafkas_codes() {
    let leads = state(&[1, 2, 3], &[1, 2, 3], &[], &[], Some(1));
    assert_eq!(
        elect_preferred(&leads, &everyone),
        Err(ErrorCode::ElectionNotNeeded)
    );
    let out_of_isr = state(&[1, 2, 3], &[2, 3], &[], &[], Some(2));
    assert_eq!(
        elect_preferred(&out_of_isr, &everyone),
        Err(ErrorCode::PreferredLeaderNotAvailable)
    );
    let fenced = state(&[1, 2, 3], &[1, 2, 3], &[], &[], Some(2));
    assert_eq!(
        elect_preferred(&fenced, &only(&[2, 3])),
        Err(ErrorCode::PreferredLeaderNotAvailable)
    );
    let offline = state(&[1, 2], &[], &[1], &[], None);
    assert_eq!(
        elect_preferred(&offline, &everyone),
        Err(ErrorCode::PreferredLeaderNotAvailable)
    );
}

#[test]
fn unclean_election_only_elects_for_a_partition_without_a_leader() {
    let led = state(&[1, 2, 3], &[2], &[], &[], Some(2));
    assert_eq!(
        elect_unclean(&led, &everyone),
        Err(ErrorCode::ElectionNotNeeded)
    );
    let offline = state(&[1, 2, 3], &[], &[], &[1], None);
    assert_eq!(
        elect_unclean(&offline, &only(&[])),
        Err(ErrorCode::EligibleLeadersNotAvailable)
    );
    let next = elect_unclean(&offline, &only(&[3])).unwrap();
    assert_eq!(shape(&next), (Some(3), vec![3], vec![], vec![]));
    assert_eq!(next.leader_epoch, LEADER_EPOCH + 1);
    assert_round_trips(&offline, &next);
}
