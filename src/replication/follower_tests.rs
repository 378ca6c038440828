use super::*;

fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
    let mut cache = LeaderEpochCache::default();
    for &(epoch, start) in entries {
        assert!(cache.assign(epoch, start));
    }
    cache
}

fn at(epoch: i32, end_offset: i64) -> EpochEnd {
    EpochEnd::At { epoch, end_offset }
}

#[test]
fn same_epoch_truncates_to_the_smaller_end() {
    let own = cache(&[(1, 0), (2, 10)]);
    assert_eq!(
        truncation_step(&own, 15, 2, at(2, 12)),
        TruncationStep::TruncateTo(12)
    );
    assert_eq!(
        truncation_step(&own, 15, 2, at(2, 20)),
        TruncationStep::TruncateTo(15)
    );
}

#[test]
fn an_older_leader_epoch_truncates_at_its_end_here() {
    // KIP-101's example: the leader never had epoch 2; it answers epoch 1 ending at 8.
    let own = cache(&[(1, 0), (2, 10)]);
    assert_eq!(
        truncation_step(&own, 15, 2, at(1, 8)),
        TruncationStep::TruncateTo(8)
    );
    assert_eq!(
        truncation_step(&own, 15, 2, at(1, 12)),
        TruncationStep::TruncateTo(10)
    );
}

#[test]
fn an_epoch_missing_here_asks_again_lower() {
    // KIP-279: the leader answers epoch 2, which this log skipped: ask for epoch 1.
    let own = cache(&[(1, 0), (3, 10)]);
    assert_eq!(
        truncation_step(&own, 15, 3, at(2, 12)),
        TruncationStep::AskAgain(1)
    );
    assert_eq!(
        truncation_step(&own, 15, 1, at(1, 4)),
        TruncationStep::TruncateTo(4)
    );
}

#[test]
fn nothing_in_common_truncates_everything() {
    let own = cache(&[(4, 0)]);
    assert_eq!(
        truncation_step(&own, 15, 4, EpochEnd::Undefined),
        TruncationStep::TruncateTo(0)
    );
    assert_eq!(
        truncation_step(&own, 15, 4, at(2, 9)),
        TruncationStep::TruncateTo(0)
    );
}

#[test]
fn the_follower_truncates_before_it_fetches_and_ignores_stale_answers() {
    let own = cache(&[(1, 0), (2, 10)]);
    let log = LocalLog {
        epochs: &own,
        log_end_offset: 15,
    };
    let mut follower = PartitionFollower::new(1, 3, log, 14);
    assert_eq!(
        follower.next_request(log),
        FollowerRequest::OffsetsForLeaderEpoch {
            current_leader_epoch: 3,
            leader_epoch: 2
        }
    );
    assert_eq!(
        follower.epoch_answered(2, 2, at(2, 12), log),
        None,
        "old epoch"
    );
    assert_eq!(
        follower.epoch_answered(3, 1, at(1, 12), log),
        None,
        "other round"
    );
    assert_eq!(follower.epoch_answered(3, 2, at(2, 12), log), Some(12));
    let own = cache(&[(1, 0), (2, 10)]);
    let log = LocalLog {
        epochs: &own,
        log_end_offset: 12,
    };
    follower.truncated(12);
    assert_eq!(follower.high_watermark(), 12);
    assert_eq!(
        follower.next_request(log),
        FollowerRequest::Fetch {
            current_leader_epoch: 3,
            fetch_offset: 12,
            last_fetched_epoch: Some(2)
        }
    );
    let fetch = |current_leader_epoch, fetch_offset, last_fetched_epoch| FollowerRequest::Fetch {
        current_leader_epoch,
        fetch_offset,
        last_fetched_epoch,
    };
    assert!(follower.accepts_fetch_answer(fetch(3, 12, Some(2)), log));
    assert!(!follower.accepts_fetch_answer(fetch(3, 11, Some(2)), log));
    assert!(!follower.accepts_fetch_answer(fetch(2, 12, Some(2)), log));
    assert!(
        !follower.accepts_fetch_answer(fetch(3, 12, Some(1)), log),
        "an answer to a fetch sent before the log changed at the same offset"
    );
    assert_eq!(follower.fetched(30, 20), 20);
    assert_eq!(follower.fetched(5, 20), 20, "never backwards");
}

#[test]
fn an_empty_log_fetches_at_once() {
    let own = LeaderEpochCache::default();
    let log = LocalLog {
        epochs: &own,
        log_end_offset: 0,
    };
    let follower = PartitionFollower::new(2, 1, log, 0);
    assert!(follower.is_fetching());
}

#[test]
fn a_duplicated_divergence_answer_does_not_truncate_twice() {
    // Found by the simulator (seed 2073 with fetch-first followers): the follower at 172 in
    // epoch 3 sent the same fetch twice; the first divergence answer truncated it to 167, it
    // fetched epoch 4 back to 172, then the duplicate answer arrived for "offset 172".
    let before = cache(&[(1, 0), (3, 68)]);
    let log = LocalLog {
        epochs: &before,
        log_end_offset: 172,
    };
    let mut follower = PartitionFollower::new_fetching(1, 4, log, 164);
    let sent = follower.next_request(log);
    assert_eq!(follower.diverged(sent, at(3, 167), log), Some(167));
    let after = cache(&[(1, 0), (3, 68), (4, 167)]);
    let log = LocalLog {
        epochs: &after,
        log_end_offset: 172,
    };
    assert_eq!(follower.diverged(sent, at(3, 167), log), None);
}
