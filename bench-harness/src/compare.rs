//! `bench-harness compare OLD.json NEW.json --max-regression 10%`: the perf-regression gate.
//!
//! Owns: which metrics are gated and how a regression is decided. Imports: `result`, `stats`.
//! Gated metrics (medians over repeats, from `summary`):
//! - max-rate workloads: throughput as a ratio to the in-run baselines (publish / O_DIRECT
//!   write, and consume / loopback TCP when there are consumers); absolute MB/s only when a
//!   baseline is missing, with a note;
//! - fixed-rate workloads: rate attainment (achieved / target rate);
//! - always: publish p99 and, with consumers, end-to-end p99;
//! - errors: any error in NEW when OLD had none.
//!
//! Invariant: a metric that cannot be compared is reported, never silently passed.

use crate::result::{BenchResult, Summary};
use crate::stats::relative_change;
use anyhow::{Context, bail};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Largest allowed throughput drop, as a fraction (0.10 = 10%).
    pub max_regression: f64,
    /// Largest allowed p99 rise, as a fraction; defaults to `max_regression`.
    pub latency_max_regression: f64,
    /// A p99 rise smaller than this many microseconds never counts (timer-noise floor).
    pub latency_slack_us: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub metric: String,
    pub old: f64,
    pub new: f64,
    /// Relative change new vs old (+0.1 = 10% higher).
    pub change: f64,
    pub higher_is_better: bool,
    /// The allowed change in the bad direction, as a fraction.
    pub limit: f64,
    pub regressed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.checks.iter().any(|c| c.regressed)
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<34} {:>12} {:>12} {:>9} {:>8}  verdict\n",
            "metric", "old", "new", "change", "limit"
        );
        for c in &self.checks {
            let limit = if c.higher_is_better {
                -c.limit
            } else {
                c.limit
            };
            out += &format!(
                "{:<34} {:>12.4} {:>12.4} {:>+8.1}% {:>+7.0}%  {}\n",
                c.metric,
                c.old,
                c.new,
                c.change * 100.0,
                limit * 100.0,
                if c.regressed { "REGRESSION" } else { "ok" }
            );
        }
        for note in &self.notes {
            out += &format!("note: {note}\n");
        }
        out
    }
}

/// "10%", "10" (both ten percent) or "2.5%" -> 0.10 / 0.10 / 0.025.
pub fn parse_percent(text: &str) -> anyhow::Result<f64> {
    let number = text.trim().trim_end_matches('%').trim();
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a percentage like \"10%\""))?;
    if !(0.0..=1000.0).contains(&value) {
        bail!("{text:?}: percentage must be between 0 and 1000");
    }
    Ok(value / 100.0)
}

fn throughput_check(metric: &str, old: f64, new: f64, limit: f64) -> Check {
    let change = relative_change(old, new);
    Check {
        metric: metric.to_string(),
        old,
        new,
        change,
        higher_is_better: true,
        limit,
        regressed: change < -limit || !new.is_finite(),
    }
}

fn latency_check(metric: &str, old: f64, new: f64, options: &CompareOptions) -> Check {
    let change = relative_change(old, new);
    let limit = options.latency_max_regression;
    Check {
        metric: metric.to_string(),
        old,
        new,
        change,
        higher_is_better: false,
        limit,
        regressed: change > limit && new - old > options.latency_slack_us,
    }
}

/// Gates a ratio, falling back to the absolute value (with a note) when either run lacks it.
fn ratio_or_absolute(
    comparison: &mut Comparison,
    (name, old_ratio, new_ratio): (&str, Option<f64>, Option<f64>),
    (absolute_name, old_absolute, new_absolute): (&str, f64, f64),
    limit: f64,
) {
    match (old_ratio, new_ratio) {
        (Some(old), Some(new)) => comparison
            .checks
            .push(throughput_check(name, old, new, limit)),
        _ => {
            comparison.notes.push(format!(
                "{name} missing in one run (baseline skipped or failed): gating on {absolute_name}"
            ));
            let check = throughput_check(absolute_name, old_absolute, new_absolute, limit);
            comparison.checks.push(check);
        }
    }
}

pub fn compare(
    old: &BenchResult,
    new: &BenchResult,
    options: &CompareOptions,
) -> anyhow::Result<Comparison> {
    if old.workload != new.workload {
        bail!(
            "the runs used different workloads ({:?} vs {:?}, or the same name with other \
             settings): refresh the baseline instead of comparing",
            old.workload.name,
            new.workload.name
        );
    }
    let (o, n): (&Summary, &Summary) = (&old.summary, &new.summary);
    let mut comparison = Comparison::default();
    let limit = options.max_regression;
    let has_consumers = new.workload.consumer_count() > 0;
    if old.is_max_rate() {
        ratio_or_absolute(
            &mut comparison,
            (
                "ratios.publish_vs_disk",
                o.ratios.publish_vs_disk,
                n.ratios.publish_vs_disk,
            ),
            (
                "publish.mb_per_sec",
                o.publish.mb_per_sec,
                n.publish.mb_per_sec,
            ),
            limit,
        );
        if has_consumers {
            ratio_or_absolute(
                &mut comparison,
                (
                    "ratios.consume_vs_tcp",
                    o.ratios.consume_vs_tcp,
                    n.ratios.consume_vs_tcp,
                ),
                (
                    "consume.mb_per_sec",
                    o.consume.mb_per_sec,
                    n.consume.mb_per_sec,
                ),
                limit,
            );
        }
    } else {
        let old_attainment = o.ratios.rate_attainment.unwrap_or(0.0);
        let new_attainment = n.ratios.rate_attainment.unwrap_or(0.0);
        let check = throughput_check(
            "ratios.rate_attainment",
            old_attainment,
            new_attainment,
            limit,
        );
        comparison.checks.push(check);
    }
    let p99 = |s: &Summary| s.publish_latency_us.p99;
    comparison.checks.push(latency_check(
        "publish_latency_us.p99",
        p99(o),
        p99(n),
        options,
    ));
    if has_consumers {
        let e2e = |s: &Summary| s.end_to_end_latency_us.p99;
        comparison.checks.push(latency_check(
            "end_to_end_latency_us.p99",
            e2e(o),
            e2e(n),
            options,
        ));
    }
    let errors = |s: &Summary| (s.errors_publish + s.errors_consume) as f64;
    if errors(n) > 0.0 && errors(o) == 0.0 {
        comparison.checks.push(Check {
            metric: "errors".to_string(),
            old: errors(o),
            new: errors(n),
            change: f64::INFINITY,
            higher_is_better: false,
            limit: 0.0,
            regressed: true,
        });
    }
    if old.environment.cpus != new.environment.cpus {
        comparison.notes.push(format!(
            "runs on different machines ({} vs {} CPUs): ratios compensate only partly",
            old.environment.cpus, new.environment.cpus
        ));
    }
    Ok(comparison)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Environment, Ratios, Throughput};
    use crate::stats::LatencySummary;
    use crate::workload::Workload;

    const WORKLOAD: &str = r#"
        name = "w"
        [topics]
        partitions = 2
        [messages]
        size = 1024
        [producers]
        rate = "max"
        [duration]
        measure_seconds = 10
    "#;

    fn result(
        workload: &str,
        publish_vs_disk: f64,
        consume_vs_tcp: f64,
        p99: f64,
        e2e: f64,
    ) -> BenchResult {
        BenchResult {
            schema_version: crate::result::SCHEMA_VERSION,
            tool: "test".into(),
            workload_file: "w.toml".into(),
            workload: Workload::parse(workload).unwrap(),
            environment: Environment {
                cpus: 2,
                ..Default::default()
            },
            repeats: Vec::new(),
            summary: Summary {
                repeats: 3,
                publish: Throughput {
                    mb_per_sec: 100.0,
                    ..Default::default()
                },
                publish_latency_us: LatencySummary {
                    p99,
                    ..Default::default()
                },
                end_to_end_latency_us: LatencySummary {
                    p99: e2e,
                    ..Default::default()
                },
                ratios: Ratios {
                    publish_vs_disk: Some(publish_vs_disk),
                    consume_vs_tcp: Some(consume_vs_tcp),
                    rate_attainment: Some(1.0),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    fn options(percent: f64) -> CompareOptions {
        CompareOptions {
            max_regression: percent / 100.0,
            latency_max_regression: percent / 100.0,
            latency_slack_us: 0.0,
        }
    }

    #[test]
    fn identical_runs_pass() {
        let a = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let comparison = compare(&a, &a.clone(), &options(10.0)).unwrap();
        assert!(!comparison.regressed(), "{}", comparison.render());
        let metrics: Vec<&str> = comparison
            .checks
            .iter()
            .map(|c| c.metric.as_str())
            .collect();
        assert_eq!(
            metrics,
            [
                "ratios.publish_vs_disk",
                "ratios.consume_vs_tcp",
                "publish_latency_us.p99",
                "end_to_end_latency_us.p99"
            ]
        );
    }

    #[test]
    fn throughput_drop_beyond_threshold_fails_and_within_passes() {
        let old = result(WORKLOAD, 0.20, 0.1, 5000.0, 6000.0);
        let slightly_slower = result(WORKLOAD, 0.185, 0.1, 5000.0, 6000.0); // -7.5%
        assert!(
            !compare(&old, &slightly_slower, &options(10.0))
                .unwrap()
                .regressed()
        );
        let slower = result(WORKLOAD, 0.17, 0.1, 5000.0, 6000.0); // -15%
        let comparison = compare(&old, &slower, &options(10.0)).unwrap();
        assert!(comparison.regressed());
        assert!(comparison.render().contains("REGRESSION"));
        let faster = result(WORKLOAD, 0.40, 0.2, 2000.0, 2000.0);
        assert!(
            !compare(&old, &faster, &options(10.0)).unwrap().regressed(),
            "faster is fine"
        );
    }

    #[test]
    fn consume_ratio_drop_fails() {
        let old = result(WORKLOAD, 0.2, 0.10, 5000.0, 6000.0);
        let new = result(WORKLOAD, 0.2, 0.08, 5000.0, 6000.0);
        let comparison = compare(&old, &new, &options(10.0)).unwrap();
        let failed: Vec<&str> = comparison
            .checks
            .iter()
            .filter(|c| c.regressed)
            .map(|c| c.metric.as_str())
            .collect();
        assert_eq!(failed, ["ratios.consume_vs_tcp"]);
    }

    #[test]
    fn p99_rise_beyond_threshold_fails_unless_under_the_slack() {
        let old = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let new = result(WORKLOAD, 0.2, 0.1, 5600.0, 6000.0); // +12%
        assert!(compare(&old, &new, &options(10.0)).unwrap().regressed());
        assert!(!compare(&old, &new, &options(15.0)).unwrap().regressed());
        let slack = CompareOptions {
            latency_slack_us: 1000.0,
            ..options(10.0)
        };
        assert!(
            !compare(&old, &new, &slack).unwrap().regressed(),
            "600 us < 1 ms slack"
        );
    }

    #[test]
    fn fixed_rate_workloads_gate_on_attainment_not_throughput_ratio() {
        let fixed = WORKLOAD.replace("\"max\"", "5000");
        let old = result(&fixed, 0.2, 0.1, 5000.0, 6000.0);
        let mut new = result(&fixed, 0.1, 0.05, 5000.0, 6000.0);
        assert!(!compare(&old, &new, &options(10.0)).unwrap().regressed());
        new.summary.ratios.rate_attainment = Some(0.8);
        let comparison = compare(&old, &new, &options(10.0)).unwrap();
        assert!(comparison.regressed());
        assert_eq!(comparison.checks[0].metric, "ratios.rate_attainment");
    }

    #[test]
    fn missing_baseline_falls_back_to_absolute_with_a_note() {
        let old = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let mut new = old.clone();
        new.summary.ratios.publish_vs_disk = None;
        new.summary.publish.mb_per_sec = 50.0;
        let comparison = compare(&old, &new, &options(10.0)).unwrap();
        assert!(comparison.regressed());
        assert!(
            comparison
                .checks
                .iter()
                .any(|c| c.metric == "publish.mb_per_sec" && c.regressed)
        );
        assert!(!comparison.notes.is_empty());
    }

    #[test]
    fn new_errors_fail() {
        let old = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let mut new = old.clone();
        new.summary.errors_publish = 3;
        assert!(compare(&old, &new, &options(10.0)).unwrap().regressed());
    }

    #[test]
    fn different_workloads_are_refused() {
        let old = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let new = result(
            &WORKLOAD.replace("partitions = 2", "partitions = 3"),
            0.2,
            0.1,
            5000.0,
            6000.0,
        );
        assert!(compare(&old, &new, &options(10.0)).is_err());
    }

    #[test]
    fn percentages_parse() {
        assert_eq!(parse_percent("10%").unwrap(), 0.10);
        assert_eq!(parse_percent("10").unwrap(), 0.10);
        assert_eq!(parse_percent(" 2.5 % ").unwrap(), 0.025);
        assert!(parse_percent("ten").is_err());
        assert!(parse_percent("-5%").is_err());
    }
}
