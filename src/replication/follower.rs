//! The follower side of one partition: truncate to the leader's log by leader epoch
//! (KIP-101, multi-round as KIP-279), then fetch from the log end; learn the high watermark
//! from fetch answers.
//!
//! Owns: the follower's phase (truncating or fetching), its leader and epoch, its high
//! watermark. May import: `crate::model::leader_epochs`. The caller owns the log: it appends
//! the batches a fetch brings (with the leader's offsets and epochs) and truncates where this
//! state machine says.
//! Invariants: no fetch is sent in a leader epoch before the truncation for that epoch is
//! done; answers that do not belong to the request in flight (another epoch, another fetch
//! offset, a stale truncation round) change nothing; the high watermark never passes the
//! local log end.

use super::NodeId;
use crate::model::leader_epochs::{EpochEnd, LeaderEpochCache};

/// What the follower's local log looks like now.
#[derive(Debug, Clone, Copy)]
pub struct LocalLog<'a> {
    pub epochs: &'a LeaderEpochCache,
    pub log_end_offset: i64,
}

/// The request the follower sends its leader next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerRequest {
    /// Kafka OffsetsForLeaderEpoch (API 23) with the replica id set.
    OffsetsForLeaderEpoch {
        current_leader_epoch: i32,
        leader_epoch: i32,
    },
    /// Kafka replica Fetch (API 1) with the replica id / replica state set.
    Fetch {
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: Option<i32>,
    },
}

/// One round of truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationStep {
    /// Truncate the log to this offset (at or below its end), then fetch.
    TruncateTo(i64),
    /// The leader's answer names an epoch this log does not have: ask again for this epoch
    /// (strictly below the asked one, so the rounds end).
    AskAgain(i32),
}

/// KIP-101/279: where a follower's log (`own`, ending at `own_end`) stops matching the
/// leader's, given the leader's answer for `asked`. With the leader's largest epoch at or
/// below `asked` ending at `end`, and this log having that epoch too, the logs agree below
/// `min(end, this log's end of that epoch)`.
pub fn truncation_step(
    own: &LeaderEpochCache,
    own_end: i64,
    asked: i32,
    answer: EpochEnd,
) -> TruncationStep {
    let log_start = own.entries().first().map_or(0, |&(_, start)| start);
    let EpochEnd::At {
        epoch: leader_epoch,
        end_offset: leader_end,
    } = answer
    else {
        // The leader has no epoch at or below ours: nothing here is on the leader.
        return TruncationStep::TruncateTo(log_start.min(own_end));
    };
    let leader_epoch = leader_epoch.min(asked);
    match own.epoch_end(leader_epoch, own_end) {
        EpochEnd::At { epoch, end_offset } if epoch == leader_epoch => {
            TruncationStep::TruncateTo(leader_end.min(end_offset).min(own_end).max(0))
        }
        EpochEnd::At { epoch, .. } => TruncationStep::AskAgain(epoch),
        EpochEnd::Undefined => TruncationStep::TruncateTo(log_start.min(own_end)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the leader's end of `asking`.
    Truncating {
        asking: i32,
    },
    Fetching,
}

/// The follower side of one partition, for one leader epoch.
#[derive(Debug, Clone)]
pub struct PartitionFollower {
    leader: NodeId,
    leader_epoch: i32,
    phase: Phase,
    high_watermark: i64,
}

impl PartitionFollower {
    /// Follows `leader` in `leader_epoch`. A log with epochs first truncates with
    /// OffsetsForLeaderEpoch (KIP-101/279); an empty one fetches at once.
    pub fn new(
        leader: NodeId,
        leader_epoch: i32,
        log: LocalLog<'_>,
        high_watermark: i64,
    ) -> PartitionFollower {
        let phase = match log.epochs.latest_epoch() {
            Some(asking) => Phase::Truncating { asking },
            None => Phase::Fetching,
        };
        PartitionFollower {
            leader,
            leader_epoch,
            phase,
            high_watermark: high_watermark.min(log.log_end_offset).max(0),
        }
    }

    /// Follows `leader` in `leader_epoch`, fetching at once: divergence is found by the
    /// leader's fetch-time check (last fetched epoch, Fetch v13+ followers skip
    /// OffsetsForLeaderEpoch), and answered with `diverged`.
    pub fn new_fetching(
        leader: NodeId,
        leader_epoch: i32,
        log: LocalLog<'_>,
        high_watermark: i64,
    ) -> PartitionFollower {
        let phase = Phase::Fetching;
        PartitionFollower {
            leader,
            leader_epoch,
            phase,
            high_watermark: high_watermark.min(log.log_end_offset).max(0),
        }
    }

    pub fn leader(&self) -> NodeId {
        self.leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn is_fetching(&self) -> bool {
        self.phase == Phase::Fetching
    }

    /// The request to send now.
    pub fn next_request(&self, log: LocalLog<'_>) -> FollowerRequest {
        match self.phase {
            Phase::Truncating { asking } => FollowerRequest::OffsetsForLeaderEpoch {
                current_leader_epoch: self.leader_epoch,
                leader_epoch: asking,
            },
            Phase::Fetching => FollowerRequest::Fetch {
                current_leader_epoch: self.leader_epoch,
                fetch_offset: log.log_end_offset,
                last_fetched_epoch: log.epochs.latest_epoch(),
            },
        }
    }

    /// The leader's OffsetsForLeaderEpoch answer for `asked`. Returns where to truncate the
    /// log (the caller truncates, then calls `truncated`); `None` if the answer is stale or
    /// another round is needed.
    pub fn epoch_answered(
        &mut self,
        current_leader_epoch: i32,
        asked: i32,
        answer: EpochEnd,
        log: LocalLog<'_>,
    ) -> Option<i64> {
        if current_leader_epoch != self.leader_epoch
            || self.phase != (Phase::Truncating { asking: asked })
        {
            return None;
        }
        self.truncate_by(asked, answer, log)
    }

    /// A fetch answer said the log diverged (Fetch v12+): truncate as for an
    /// OffsetsForLeaderEpoch answer. `request` is the fetch it answers; an answer to any other
    /// request than the one this log would send now (stale, duplicated, or from before a
    /// truncation) is ignored. `None` if ignored or another round is needed.
    pub fn diverged(
        &mut self,
        request: FollowerRequest,
        answer: EpochEnd,
        log: LocalLog<'_>,
    ) -> Option<i64> {
        let FollowerRequest::Fetch {
            last_fetched_epoch, ..
        } = request
        else {
            return None;
        };
        if request != self.next_request(log) {
            return None;
        }
        self.truncate_by(last_fetched_epoch.unwrap_or(-1), answer, log)
    }

    fn truncate_by(&mut self, asked: i32, answer: EpochEnd, log: LocalLog<'_>) -> Option<i64> {
        match truncation_step(log.epochs, log.log_end_offset, asked, answer) {
            TruncationStep::TruncateTo(offset) => {
                self.phase = Phase::Fetching;
                Some(offset)
            }
            TruncationStep::AskAgain(epoch) => {
                assert!(epoch < asked, "truncation rounds must go down");
                self.phase = Phase::Truncating { asking: epoch };
                None
            }
        }
    }

    /// The caller truncated the log (now ending at `log_end_offset`).
    pub fn truncated(&mut self, log_end_offset: i64) {
        self.high_watermark = self.high_watermark.min(log_end_offset);
    }

    /// Whether a fetch answer to `request` belongs to the fetch this log would send now (its
    /// batches may be appended): same leader epoch, fetch offset and last fetched epoch. A
    /// duplicated or delayed answer to an earlier fetch at the same offset is refused.
    pub fn accepts_fetch_answer(&self, request: FollowerRequest, log: LocalLog<'_>) -> bool {
        matches!(request, FollowerRequest::Fetch { .. }) && request == self.next_request(log)
    }

    /// The caller appended a fetch answer's batches; the log now ends at `log_end_offset`.
    /// Returns the new high watermark: the leader's, capped by the local log end.
    pub fn fetched(&mut self, leader_high_watermark: i64, log_end_offset: i64) -> i64 {
        self.high_watermark = self
            .high_watermark
            .max(leader_high_watermark.min(log_end_offset))
            .min(log_end_offset);
        self.high_watermark
    }
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
