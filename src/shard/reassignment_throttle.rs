//! Cluster mode: the follower-side throttle of the replicas a reassignment adds (Kafka's
//! `follower.replication.throttled.rate` for the partitions being moved): bytes fetched for
//! them are charged against `cluster.reassignment_throttle_bytes_per_s`, and while the
//! charge is ahead of the clock they are left out of the shard's replica fetches (the other
//! partitions keep fetching), as Kafka's replica fetcher leaves throttled partitions out
//! while their quota is exceeded.
//!
//! Owns: when this shard's throttled partitions may fetch again. May import: nothing but
//! std. Runs on: the shard owning the partitions (its fetcher tasks).
//! Invariants: with the rate 0 nothing is ever throttled; the pause after a fetch is the
//! time its throttled bytes take at the rate.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(super) struct ReassignmentThrottle {
    /// Throttled partitions fetch again from this instant (`None`: now).
    until: Cell<Option<Instant>>,
}

impl ReassignmentThrottle {
    /// How long throttled partitions must still wait at `now` (`None`: they may fetch).
    pub(super) fn pause_left(&self, now: Instant) -> Option<Duration> {
        self.until
            .get()
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Charges `bytes` fetched for throttled partitions at `rate` bytes per second.
    pub(super) fn charge(&self, bytes: usize, rate: u64, now: Instant) {
        self.until
            .set(next_until(self.until.get(), now, bytes, rate));
    }
}

/// The instant throttled partitions may fetch again after `bytes` more at `rate` (0: no
/// throttle): the debt carries on from an earlier charge still ahead of `now`.
fn next_until(until: Option<Instant>, now: Instant, bytes: usize, rate: u64) -> Option<Instant> {
    if rate == 0 || bytes == 0 {
        return until;
    }
    let start = until.filter(|until| *until > now).unwrap_or(now);
    let seconds = bytes as f64 / rate as f64;
    Some(start + Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_bytes_pause_for_their_time_at_the_rate_and_debt_accumulates() {
        let now = Instant::now();
        let throttle = ReassignmentThrottle::default();
        assert_eq!(throttle.pause_left(now), None);
        throttle.charge(1_000_000, 0, now);
        assert_eq!(throttle.pause_left(now), None, "rate 0: no throttle");
        throttle.charge(500_000, 1_000_000, now);
        assert_eq!(throttle.pause_left(now), Some(Duration::from_millis(500)));
        throttle.charge(1_000_000, 1_000_000, now + Duration::from_millis(100));
        assert_eq!(throttle.pause_left(now), Some(Duration::from_millis(1500)));
        assert_eq!(throttle.pause_left(now + Duration::from_secs(2)), None);
        throttle.charge(250_000, 1_000_000, now + Duration::from_secs(3));
        assert_eq!(
            throttle.pause_left(now + Duration::from_secs(3)),
            Some(Duration::from_millis(250)),
            "a charge after the pause starts from now"
        );
    }
}
