use super::*;

fn state(leader: NodeId, isr: &[NodeId]) -> PartitionState {
    PartitionState {
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        elr: Vec::new(),
        last_known_elr: Vec::new(),
        leader: Some(leader),
        leader_epoch: 5,
        partition_epoch: 10,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

fn settings() -> LeaderSettings {
    LeaderSettings {
        replica_lag_time_max_ms: 100,
        min_insync_replicas: 2,
        isr_proposal_retry_ms: 50,
    }
}

fn leader(isr: &[NodeId], log_end: i64) -> PartitionLeader {
    PartitionLeader::new(1, state(1, isr), log_end, 0, settings(), 0).unwrap()
}

#[test]
fn only_the_named_leader_leads() {
    let error = PartitionLeader::new(2, state(1, &[1, 2]), 0, 0, settings(), 0).unwrap_err();
    assert_eq!(error, ErrorCode::NotLeaderOrFollower);
}

#[test]
fn high_watermark_is_the_smallest_isr_log_end() {
    let mut leader = leader(&[1, 2, 3], 0);
    assert_eq!(leader.appended(10), None, "followers not heard from yet");
    assert_eq!(leader.follower_fetched(2, 1, 5, 4, 1), Ok(None));
    assert_eq!(leader.follower_fetched(3, 1, 5, 7, 1), Ok(Some(4)));
    assert_eq!(leader.follower_fetched(2, 1, 5, 10, 2), Ok(Some(7)));
    assert!(leader.acks_all_complete(6));
    assert!(!leader.acks_all_complete(7));
    assert_eq!(leader.follower_fetched(3, 1, 5, 10, 2), Ok(Some(10)));
    assert_eq!(leader.high_watermark(), 10);
}

#[test]
fn high_watermark_stays_below_min_isr() {
    let mut leader = leader(&[1], 0);
    assert_eq!(leader.check_acks_all(), Err(ErrorCode::NotEnoughReplicas));
    assert_eq!(
        leader.appended(10),
        None,
        "KIP-966: no advance below min ISR"
    );
    assert_eq!(leader.high_watermark(), 0);
}

#[test]
fn fetches_from_other_epochs_or_strangers_are_refused() {
    let mut leader = leader(&[1, 2, 3], 5);
    assert_eq!(
        leader.follower_fetched(2, 1, 4, 5, 1),
        Err(ErrorCode::FencedLeaderEpoch)
    );
    assert_eq!(
        leader.follower_fetched(2, 1, 6, 5, 1),
        Err(ErrorCode::UnknownLeaderEpoch)
    );
    assert_eq!(
        leader.follower_fetched(9, 1, 5, 5, 1),
        Err(ErrorCode::NotLeaderOrFollower)
    );
    assert_eq!(
        leader.follower_fetched(2, 1, 5, 6, 1),
        Err(ErrorCode::OffsetOutOfRange)
    );
}

#[test]
fn a_lagging_member_is_proposed_out_then_back_in() {
    let mut leader = leader(&[1, 2, 3], 10);
    leader.follower_fetched(2, 1, 5, 10, 50).unwrap();
    leader.follower_fetched(3, 1, 5, 3, 50).unwrap();
    assert_eq!(leader.poll_isr_change(100), None, "within the lag window");
    leader.follower_fetched(2, 1, 5, 10, 150).unwrap();
    let proposal = leader.poll_isr_change(150).unwrap();
    assert_eq!(proposal.new_isr, vec![1, 2]);
    assert_eq!((proposal.leader_epoch, proposal.partition_epoch), (5, 10));
    assert_eq!(leader.poll_isr_change(160), None, "one proposal in flight");
    assert_eq!(
        leader.poll_isr_change(200).as_ref(),
        Some(&proposal),
        "retried"
    );
    let mut committed = state(1, &[1, 2]);
    committed.partition_epoch = 11;
    let (outcome, _) = leader.isr_change_answered(&proposal, Ok(committed.clone()));
    assert_eq!(outcome, MetadataOutcome::StillLeader);
    assert_eq!(leader.isr(), &[1, 2]);
    // Follower 3 catches up: it is proposed back in and counts for the high watermark
    // while the proposal is pending (maximal ISR).
    leader.follower_fetched(3, 1, 5, 10, 210).unwrap();
    let proposal = leader.poll_isr_change(210).unwrap();
    assert_eq!(proposal.new_isr, vec![1, 2, 3]);
    assert_eq!(proposal.new_isr_broker_epochs, vec![(2, 1), (3, 1)]);
    assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
    assert_eq!(leader.appended(12), None, "follower 3 is at 10");
}

#[test]
fn an_expansion_answered_with_an_error_that_may_hide_a_commit_stays_counted() {
    // Red-team H1: the controller committed [1, 2, 3] but its answer was lost; the retry
    // gets INVALID_UPDATE_VERSION. Follower 3 must keep holding the high watermark back.
    let mut leader = leader(&[1, 2], 10);
    leader.follower_fetched(2, 1, 5, 10, 1).unwrap();
    leader.follower_fetched(3, 1, 5, 10, 1).unwrap();
    let proposal = leader.poll_isr_change(1).unwrap();
    assert_eq!(proposal.new_isr, vec![1, 2, 3]);
    let stale_answer = IsrProposal {
        partition_epoch: 9,
        ..proposal.clone()
    };
    assert_eq!(
        leader
            .isr_change_answered(&stale_answer, Err(ErrorCode::IneligibleReplica))
            .0,
        MetadataOutcome::Stale,
        "an answer to another proposal is ignored"
    );
    leader.isr_change_answered(&proposal, Err(ErrorCode::InvalidUpdateVersion));
    assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
    assert_eq!(
        leader.poll_isr_change(1_000),
        None,
        "waits for the metadata"
    );
    leader.appended(20);
    leader.follower_fetched(2, 1, 5, 20, 2).unwrap();
    assert_eq!(leader.high_watermark(), 10, "follower 3 is still at 10");
    // The metadata settles it.
    let mut committed = state(1, &[1, 2, 3]);
    committed.partition_epoch = 11;
    leader.metadata_changed(committed);
    assert_eq!(leader.isr(), &[1, 2, 3]);
    assert_eq!(leader.maximal_isr(), vec![1, 2, 3]);
    // INELIGIBLE_REPLICA says nothing was applied: the proposal is dropped.
    let mut refused = self::leader(&[1, 2], 10);
    refused.follower_fetched(3, 1, 5, 10, 1).unwrap();
    let proposal = refused.poll_isr_change(1).unwrap();
    refused.isr_change_answered(&proposal, Err(ErrorCode::IneligibleReplica));
    assert_eq!(refused.maximal_isr(), vec![1, 2]);
}

#[test]
fn a_restarted_follower_starts_its_progress_over() {
    // Red-team H2 (KIP-903): progress an old incarnation made says nothing about a restarted
    // replica, and fetches from the old incarnation are refused.
    let mut leader = leader(&[1, 2], 10);
    leader.follower_fetched(2, 1, 5, 10, 1).unwrap();
    leader.follower_fetched(3, 1, 5, 10, 1).unwrap();
    leader.follower_fetched(3, 2, 5, 4, 2).unwrap();
    assert_eq!(
        leader.follower_fetched(3, 1, 5, 10, 3),
        Err(ErrorCode::StaleBrokerEpoch)
    );
    let proposal = leader.poll_isr_change(3);
    assert_eq!(
        proposal, None,
        "incarnation 2 is at 4, below the high watermark"
    );
}

#[test]
fn a_follower_below_the_epoch_start_does_not_join() {
    let mut leader = leader(&[1, 2], 10);
    leader.follower_fetched(3, 1, 5, 9, 1).unwrap();
    assert_eq!(leader.poll_isr_change(1), None);
}

#[test]
fn metadata_updates_resign_or_are_ignored_when_stale() {
    let mut leader = leader(&[1, 2, 3], 0);
    assert_eq!(
        leader.metadata_changed(state(1, &[1, 2, 3])).0,
        MetadataOutcome::Stale
    );
    let mut moved = state(2, &[2, 3]);
    moved.leader_epoch = 6;
    moved.partition_epoch = 11;
    assert_eq!(leader.metadata_changed(moved).0, MetadataOutcome::Resigned);
}

#[test]
fn divergence_is_found_by_last_fetched_epoch() {
    let mut epochs = LeaderEpochCache::default();
    epochs.assign(1, 0);
    epochs.assign(3, 10);
    assert_eq!(diverging_epoch(&epochs, 20, 8, Some(1)), None);
    assert_eq!(
        diverging_epoch(&epochs, 20, 12, Some(1)),
        Some(EpochEnd::At {
            epoch: 1,
            end_offset: 10
        })
    );
    assert_eq!(
        diverging_epoch(&epochs, 20, 12, Some(2)),
        Some(EpochEnd::At {
            epoch: 1,
            end_offset: 10
        })
    );
    assert_eq!(diverging_epoch(&epochs, 20, 0, None), None);
    assert_eq!(
        diverging_epoch(&epochs, 20, 0, Some(0)),
        Some(EpochEnd::Undefined)
    );
}

#[test]
fn the_low_watermark_waits_for_every_live_followers_log_start() {
    let mut leader = leader(&[1, 2, 3], 20);
    let everyone = |_| true;
    assert_eq!(
        leader.low_watermark(10, everyone),
        -1,
        "followers not heard from count as unknown"
    );
    leader.follower_fetched(2, 1, 5, 20, 1).unwrap();
    leader.follower_log_start(2, 10);
    leader.follower_fetched(3, 1, 5, 20, 1).unwrap();
    leader.follower_log_start(3, 4);
    assert_eq!(leader.low_watermark(10, everyone), 4);
    assert_eq!(
        leader.low_watermark(10, |node| node != 3),
        10,
        "a fenced broker's replica does not hold DeleteRecords back"
    );
    leader.follower_log_start(3, 12);
    assert_eq!(
        leader.low_watermark(10, everyone),
        10,
        "never above the leader's"
    );
    leader.follower_fetched(3, 2, 5, 0, 2).unwrap();
    assert_eq!(
        leader.low_watermark(10, everyone),
        -1,
        "a restarted follower's log start is unknown again"
    );
}
