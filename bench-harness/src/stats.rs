//! Latency histograms (HdrHistogram, microseconds) and the small statistics the reports use:
//! percentile summaries, HDR percentile curves, medians and ratios.
//!
//! Owns: how latencies are recorded and summarised. Imports nothing from this crate.
//! Invariant: every histogram covers 1 µs ..= 1 hour at 3 significant digits, so merging
//! two of them never fails and a value above the range is clamped, not dropped.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
/// Curve points per decade of "nines" (90%, 99%, 99.9%, ...).
const CURVE_POINTS_PER_DECADE: u32 = 20;
/// The curve stops at 99.9999% (six nines) or the maximum, whichever comes first.
const CURVE_DECADES_MAX: u32 = 6;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> LatencyHistogram {
        // The bounds are constants that hdrhistogram accepts; failure here is our bug.
        let histogram = Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        LatencyHistogram { histogram }
    }

    pub fn record_ns(&mut self, nanoseconds: u64) {
        let micros = nanoseconds.div_ceil(1000).clamp(LOWEST_US, HIGHEST_US);
        self.histogram.saturating_record(micros);
    }

    pub fn record_us(&mut self, micros: u64) {
        self.histogram
            .saturating_record(micros.clamp(LOWEST_US, HIGHEST_US));
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides (see the module invariant), so `add` cannot fail.
        self.histogram
            .add(&other.histogram)
            .expect("histograms with identical bounds merge");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn reset(&mut self) {
        self.histogram.reset();
    }

    pub fn value_at_percentile(&self, percentile: f64) -> u64 {
        self.histogram.value_at_percentile(percentile)
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50) as f64,
            p90: h.value_at_quantile(0.90) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            p99_9: h.value_at_quantile(0.999) as f64,
            p99_99: h.value_at_quantile(0.9999) as f64,
            max: h.max() as f64,
            curve: self.curve(),
        }
    }

    /// HDR percentile curve: points evenly spaced in log10(1 / (1 - p)), then the maximum.
    fn curve(&self) -> Vec<CurvePoint> {
        let h = &self.histogram;
        let mut points = Vec::new();
        let last_step = CURVE_POINTS_PER_DECADE * CURVE_DECADES_MAX;
        for step in 0..=last_step {
            let nines = f64::from(step) / f64::from(CURVE_POINTS_PER_DECADE);
            let quantile = 1.0 - 10f64.powf(-nines);
            // Beyond 1/count the percentile is just the maximum: stop there.
            if (1.0 - quantile) * (h.len() as f64) < 1.0 {
                break;
            }
            points.push(CurvePoint {
                percentile: quantile * 100.0,
                value: h.value_at_quantile(quantile) as f64,
            });
        }
        points.push(CurvePoint {
            percentile: 100.0,
            value: h.max() as f64,
        });
        points
    }
}

/// A latency distribution in microseconds. All fields 0 when nothing was recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
    /// HDR-style percentile curve for plotting; empty in a `summary` of medians.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// 0 ..= 100.
    pub percentile: f64,
    /// Microseconds.
    pub value: f64,
}

impl LatencySummary {
    /// Field-wise median of several summaries (the curve is dropped).
    pub fn median_of(summaries: &[&LatencySummary]) -> LatencySummary {
        let pick = |f: fn(&LatencySummary) -> f64| median(summaries.iter().map(|s| f(s)));
        LatencySummary {
            count: pick(|s| s.count as f64).round() as u64,
            mean: pick(|s| s.mean),
            p50: pick(|s| s.p50),
            p90: pick(|s| s.p90),
            p99: pick(|s| s.p99),
            p99_9: pick(|s| s.p99_9),
            p99_99: pick(|s| s.p99_99),
            max: pick(|s| s.max),
            curve: Vec::new(),
        }
    }
}

/// Median of the values; the mean of the middle two for an even count; 0 for none.
/// NaNs sort last and so only win when most values are NaN.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// `numerator / denominator`, or None when the denominator is not a positive number.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0 && denominator.is_finite() && numerator.is_finite())
        .then(|| numerator / denominator)
}

/// Relative change from `old` to `new`: +0.1 means 10% higher.
pub fn relative_change(old: f64, new: f64) -> f64 {
    if old == 0.0 {
        if new == 0.0 {
            0.0
        } else {
            f64::INFINITY * new.signum()
        }
    } else {
        (new - old) / old.abs()
    }
}

pub const MB: f64 = 1_000_000.0;

/// Messages and bytes over a duration, as rates.
pub fn per_second(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000 {
            h.record_us(us);
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        let close = |value: f64, expected: f64| (value - expected).abs() / expected < 0.002;
        assert!(close(s.p50, 5000.0), "p50 {}", s.p50);
        assert!(close(s.p90, 9000.0), "p90 {}", s.p90);
        assert!(close(s.p99, 9900.0), "p99 {}", s.p99);
        assert!(close(s.p99_9, 9990.0), "p99.9 {}", s.p99_9);
        assert!(close(s.max, 10_000.0), "max {}", s.max);
        assert!((s.mean - 5000.5).abs() < 10.0);
    }

    #[test]
    fn nanoseconds_round_up_and_out_of_range_values_clamp() {
        let mut h = LatencyHistogram::new();
        h.record_ns(1);
        h.record_ns(1_500);
        h.record_ns(u64::MAX);
        assert_eq!(h.count(), 3);
        assert_eq!(h.value_at_percentile(0.0), 1);
        assert_eq!(h.value_at_percentile(50.0), 2);
        assert!(h.summary().max >= 3.5e9);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record_us(100);
        b.record_us(300);
        b.record_us(300);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.value_at_percentile(50.0), 300);
    }

    #[test]
    fn curve_is_monotonic_and_ends_at_max() {
        let mut h = LatencyHistogram::new();
        for us in 1..=100_000 {
            h.record_us(us % 977 + 1);
        }
        let curve = h.summary().curve;
        assert!(curve.len() > 40);
        assert!(curve.windows(2).all(|w| w[0].percentile < w[1].percentile));
        assert!(curve.windows(2).all(|w| w[0].value <= w[1].value));
        let last = curve.last().unwrap();
        assert_eq!(last.percentile, 100.0);
        assert_eq!(last.value, 977.0);
        // 100k samples resolve up to 99.999% (five nines), not beyond.
        assert!(curve[curve.len() - 2].percentile <= 99.999 + 1e-9);
    }

    #[test]
    fn empty_histogram_summarises_to_zeros() {
        let s = LatencyHistogram::new().summary();
        assert_eq!(s, LatencySummary::default());
    }

    #[test]
    fn median_handles_odd_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median([]), 0.0);
        assert_eq!(median([7.0]), 7.0);
    }

    #[test]
    fn median_of_summaries_is_field_wise() {
        let a = LatencySummary {
            p99: 10.0,
            p50: 1.0,
            ..Default::default()
        };
        let b = LatencySummary {
            p99: 30.0,
            p50: 3.0,
            ..Default::default()
        };
        let c = LatencySummary {
            p99: 20.0,
            p50: 9.0,
            ..Default::default()
        };
        let m = LatencySummary::median_of(&[&a, &b, &c]);
        assert_eq!(m.p99, 20.0);
        assert_eq!(m.p50, 3.0);
    }

    #[test]
    fn ratios_and_changes() {
        assert_eq!(ratio(50.0, 200.0), Some(0.25));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, f64::NAN), None);
        assert!((relative_change(100.0, 89.0) + 0.11).abs() < 1e-12);
        assert!((relative_change(100.0, 125.0) - 0.25).abs() < 1e-12);
        assert_eq!(relative_change(0.0, 0.0), 0.0);
        assert_eq!(relative_change(0.0, 5.0), f64::INFINITY);
        assert_eq!(per_second(10.0, 0.0), 0.0);
        assert_eq!(per_second(10.0, 4.0), 2.5);
    }
}
