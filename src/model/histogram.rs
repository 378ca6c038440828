//! `LatencyHistogram`: durations counted in fixed buckets (Prometheus histogram semantics:
//! cumulative `le` buckets, a sum and a count). Plain data, so the storage layer can record
//! fdatasync times and the shard layer request times with the same type.

/// Upper bounds of the request-latency buckets, seconds (Prometheus `le`).
pub const REQUEST_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 10.0,
];

/// Upper bounds of the fdatasync-latency buckets, seconds: from NVMe (tens of µs) to a
/// stalled disk (seconds).
pub const SYNC_BUCKETS_SECONDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0,
];

/// Upper bounds of the request-stage buckets, seconds: an append or a cache read takes a few
/// µs, a sync wait or a long poll up to seconds.
pub const STAGE_BUCKETS_SECONDS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 1.0, 10.0,
];

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    /// Bucket upper bounds, seconds, strictly increasing.
    bounds: &'static [f64],
    /// Cumulative counts per bucket of `bounds`, then +Inf (always `bounds.len() + 1`).
    buckets: Vec<u64>,
    sum_seconds: f64,
    count: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new(REQUEST_BUCKETS_SECONDS)
    }
}

impl LatencyHistogram {
    pub fn new(bounds: &'static [f64]) -> LatencyHistogram {
        assert!(
            bounds.windows(2).all(|pair| pair[0] < pair[1]),
            "histogram bounds must increase"
        );
        LatencyHistogram {
            bounds,
            buckets: vec![0; bounds.len() + 1],
            sum_seconds: 0.0,
            count: 0,
        }
    }

    pub fn record(&mut self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let index = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        for bucket in &mut self.buckets[index..] {
            *bucket = bucket.saturating_add(1);
        }
        self.sum_seconds += seconds;
        self.count = self.count.saturating_add(1);
    }

    /// Adds `other`'s observations (same bounds; else `other` is ignored, which is our bug).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        debug_assert_eq!(
            self.bounds, other.bounds,
            "merging histograms of other bounds"
        );
        if self.bounds != other.bounds {
            return;
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
        self.sum_seconds += other.sum_seconds;
        self.count = self.count.saturating_add(other.count);
    }

    /// (upper bound, cumulative count) per finite bucket; +Inf is `count()`.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds
            .iter()
            .copied()
            .zip(self.buckets.iter().copied())
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_seconds
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(0.0002);
        histogram.record(0.5);
        histogram.record(60.0);
        let buckets: Vec<u64> = histogram.cumulative().map(|(_, n)| n).collect();
        assert_eq!(buckets[0], 0);
        assert_eq!(buckets[1], 1);
        assert_eq!(buckets[10], 2);
        assert_eq!(buckets[11], 2);
        assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(histogram.count(), 3);
    }

    #[test]
    fn merge_adds_counts_and_sums() {
        let mut a = LatencyHistogram::new(SYNC_BUCKETS_SECONDS);
        let mut b = LatencyHistogram::new(SYNC_BUCKETS_SECONDS);
        a.record(0.001);
        b.record(0.002);
        b.record(f64::NAN);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!((a.sum_seconds() - 0.003).abs() < 1e-12);
        assert_eq!(a.cumulative().next(), Some((0.00005, 1)));
    }
}
