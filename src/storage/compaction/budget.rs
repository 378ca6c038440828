//! `IoBudget`: the byte rate compaction may read and write at, as a token bucket.
//!
//! Owns: the pacing arithmetic only (the caller sleeps). May import: std. Pure: the clock is
//! an argument, so tests count bytes and requested waits without sleeping.
//! Invariants: over any run, the bytes charged never exceed `burst + rate × elapsed` once the
//! requested waits are taken; a wait is never negative or longer than the debt needs.

use std::time::{Duration, Instant};

/// Bytes that may pass without waiting: this many milliseconds of the rate.
const BURST_MS: u64 = 100;

#[derive(Debug, Clone)]
pub(crate) struct IoBudget {
    bytes_per_second: u64,
    burst_bytes: u64,
    /// Bytes that may pass now (negative: debt to wait for).
    tokens: i128,
    last: Instant,
    charged: u64,
    waited: Duration,
}

impl IoBudget {
    pub(crate) fn new(bytes_per_second: u64, now: Instant) -> IoBudget {
        let bytes_per_second = bytes_per_second.max(1);
        let burst_bytes = (bytes_per_second.saturating_mul(BURST_MS) / 1000).max(1);
        IoBudget {
            bytes_per_second,
            burst_bytes,
            tokens: i128::from(burst_bytes),
            last: now,
            charged: 0,
            waited: Duration::ZERO,
        }
    }

    /// Takes `bytes` from the budget; returns how long to wait before the next I/O.
    pub(crate) fn charge(&mut self, bytes: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        let refill = elapsed.as_nanos() * u128::from(self.bytes_per_second) / 1_000_000_000;
        let refill = i128::try_from(refill).unwrap_or(i128::MAX);
        self.tokens = self
            .tokens
            .saturating_add(refill)
            .min(i128::from(self.burst_bytes));
        self.tokens -= i128::from(bytes);
        self.charged += bytes;
        if self.tokens >= 0 {
            return Duration::ZERO;
        }
        let debt = self.tokens.unsigned_abs();
        let nanos = debt * 1_000_000_000 / u128::from(self.bytes_per_second);
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.waited += wait;
        wait
    }

    pub(crate) fn charged_bytes(&self) -> u64 {
        self.charged
    }

    pub(crate) fn waited(&self) -> Duration {
        self.waited
    }

    #[cfg(test)]
    pub(crate) fn burst_bytes(&self) -> u64 {
        self.burst_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Charging in chunks and "sleeping" as asked on a virtual clock: the bytes that
    /// passed by any moment never exceed burst + rate × elapsed, and the total wait is what
    /// the rate implies.
    #[test]
    fn paces_bytes_to_the_rate() {
        let start = Instant::now();
        let rate = 1 << 20;
        let mut budget = IoBudget::new(rate, start);
        let mut clock = start;
        let chunk = 64 * 1024;
        let total = 10 << 20;
        let mut passed = 0u64;
        while passed < total {
            let wait = budget.charge(chunk, clock);
            clock += wait;
            passed += chunk;
            let elapsed = clock.duration_since(start).as_secs_f64();
            let allowed = budget.burst_bytes() as f64 + rate as f64 * elapsed;
            assert!(
                passed as f64 <= allowed + 1.0,
                "{passed} bytes by {elapsed}s"
            );
        }
        assert_eq!(budget.charged_bytes(), total);
        let expected = (total - budget.burst_bytes()) as f64 / rate as f64;
        let waited = budget.waited().as_secs_f64();
        assert!(
            (waited - expected).abs() < 0.01,
            "waited {waited}s, expected {expected}s"
        );
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let start = Instant::now();
        let mut budget = IoBudget::new(1000, start);
        assert_eq!(budget.charge(100, start), Duration::ZERO);
        let later = start + Duration::from_secs(3600);
        assert_eq!(budget.charge(100, later), Duration::ZERO);
        assert_eq!(budget.charge(1000, later), Duration::from_millis(1000));
    }
}
