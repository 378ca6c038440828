//! `bench-harness compare OLD.json NEW.json --max-regression 10%`: the perf-regression gate.
//!
//! Owns: which metrics are gated and how a regression is decided. Imports: `result`, `stats`.
//! Gated metrics (medians over repeats, from `summary`):
//! - max-rate workloads: throughput as ratios to the in-run loopback TCP copy: publish / TCP
//!   and, with consumers, consume / TCP (absolute MB/s, with a note, only when the baseline
//!   is missing); publish / O_DIRECT write is shown as info;
//! - fixed-rate workloads: rate attainment (achieved / target rate);
//! - publish p99 always; end-to-end p99 for fixed-rate workloads (at max rate it measures
//!   how far consumers lag a saturating producer, so it is shown but not gated);
//! - broker CPU per MB moved, when both runs started the broker themselves;
//! - errors: any error in NEW when OLD had none.
//!
//! Rows marked "info" are shown for context and never fail the gate.
//! Invariant: a gated metric that cannot be compared is reported, never silently passed.

use crate::result::{BenchResult, Summary};
use crate::stats::relative_change;
use anyhow::{Context, bail};

/// Other processes using this many cores or more during a run make it noisy (a note).
const NOISY_OTHER_CORES: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Largest allowed throughput-ratio drop, as a fraction (0.10 = 10%).
    pub max_regression: f64,
    /// Largest allowed p99 rise, as a fraction.
    pub latency_max_regression: f64,
    /// Largest allowed rise in broker CPU per MB, as a fraction.
    pub cpu_max_regression: f64,
    /// A p99 rise smaller than this many microseconds never counts (timer-noise floor).
    pub latency_slack_us: f64,
}

impl CompareOptions {
    /// Every limit the same fraction, no latency slack.
    pub fn uniform(max_regression: f64) -> CompareOptions {
        CompareOptions {
            max_regression,
            latency_max_regression: max_regression,
            cpu_max_regression: max_regression,
            latency_slack_us: 0.0,
        }
    }
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
    /// false: shown for context only.
    pub gated: bool,
    pub regressed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.checks.iter().any(|c| c.gated && c.regressed)
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
            let (limit, verdict) = match (c.gated, c.regressed) {
                (false, _) => ("-".to_string(), "info"),
                (true, true) => (format!("{:+.0}%", limit * 100.0), "REGRESSION"),
                (true, false) => (format!("{:+.0}%", limit * 100.0), "ok"),
            };
            out += &format!(
                "{:<34} {:>12.4} {:>12.4} {:>+8.1}% {:>8}  {verdict}\n",
                c.metric,
                c.old,
                c.new,
                c.change * 100.0,
                limit,
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

/// A metric where higher is better (throughput ratios, rate attainment).
fn higher_is_better(metric: &str, old: f64, new: f64, limit: f64) -> Check {
    let change = relative_change(old, new);
    Check {
        metric: metric.to_string(),
        old,
        new,
        change,
        higher_is_better: true,
        limit,
        gated: true,
        regressed: change < -limit || !new.is_finite(),
    }
}

/// A metric where lower is better (latency, CPU per MB); rises under `slack` never count.
fn lower_is_better(metric: &str, old: f64, new: f64, limit: f64, slack: f64) -> Check {
    let change = relative_change(old, new);
    Check {
        metric: metric.to_string(),
        old,
        new,
        change,
        higher_is_better: false,
        limit,
        gated: true,
        regressed: change > limit && new - old > slack,
    }
}

fn info(mut check: Check) -> Check {
    check.gated = false;
    check.regressed = false;
    check
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
            .push(higher_is_better(name, old, new, limit)),
        _ => {
            comparison.notes.push(format!(
                "{name} missing in one run (baseline skipped or failed): gating on {absolute_name}"
            ));
            let check = higher_is_better(absolute_name, old_absolute, new_absolute, limit);
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
    let mut comparison = Comparison::default();
    if old.is_max_rate() {
        throughput_checks(&mut comparison, old, new, options);
    } else {
        let attainment = |s: &Summary| s.ratios.rate_attainment.unwrap_or(0.0);
        comparison.checks.push(higher_is_better(
            "ratios.rate_attainment",
            attainment(&old.summary),
            attainment(&new.summary),
            options.max_regression,
        ));
    }
    latency_checks(&mut comparison, old, new, options);
    let (o, n) = (&old.summary, &new.summary);
    if let (Some(old_cpu), Some(new_cpu)) = (o.broker_cpu_us_per_mb, n.broker_cpu_us_per_mb) {
        let limit = options.cpu_max_regression;
        let check = lower_is_better("broker_cpu_us_per_mb", old_cpu, new_cpu, limit, 0.0);
        comparison.checks.push(check);
    }
    let errors = |s: &Summary| (s.errors_publish + s.errors_consume) as f64;
    if errors(n) > 0.0 && errors(o) == 0.0 {
        comparison
            .checks
            .push(lower_is_better("errors", errors(o), errors(n), 0.0, 0.0));
    }
    for (label, result) in [("OLD", old), ("NEW", new)] {
        if let Some(other) = result
            .summary
            .other_processes_cores
            .filter(|other| *other >= NOISY_OTHER_CORES)
        {
            comparison.notes.push(format!(
                "{label} ran while other processes used {other:.2} cores of {}: a noisy \
                 machine, so a failure may be noise (rerun to confirm)",
                result.environment.cpus
            ));
        }
    }
    if old.environment.cpus != new.environment.cpus {
        comparison.notes.push(format!(
            "runs on different machines ({} vs {} CPUs): ratios compensate only partly",
            old.environment.cpus, new.environment.cpus
        ));
    }
    Ok(comparison)
}

fn throughput_checks(
    comparison: &mut Comparison,
    old: &BenchResult,
    new: &BenchResult,
    options: &CompareOptions,
) {
    let (o, n) = (&old.summary, &new.summary);
    let limit = options.max_regression;
    // The CPU-bound loopback copy, not the disk, is the gated reference for publish: on the
    // machines we test on the broker is CPU-bound (it uses a fraction of the disk), and the
    // TCP copy slows down with CPU contention the way the broker does (docs/benchmarking.md).
    ratio_or_absolute(
        comparison,
        (
            "ratios.publish_vs_tcp",
            o.ratios.publish_vs_tcp,
            n.ratios.publish_vs_tcp,
        ),
        (
            "publish.mb_per_sec",
            o.publish.mb_per_sec,
            n.publish.mb_per_sec,
        ),
        limit,
    );
    if let (Some(old_disk), Some(new_disk)) = (o.ratios.publish_vs_disk, n.ratios.publish_vs_disk) {
        let check = higher_is_better("ratios.publish_vs_disk", old_disk, new_disk, limit);
        comparison.checks.push(info(check));
    }
    if new.workload.consumer_count() > 0 {
        ratio_or_absolute(
            comparison,
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
    let mb = |s: &Summary| s.publish.mb_per_sec;
    comparison.checks.push(info(higher_is_better(
        "publish.mb_per_sec",
        mb(o),
        mb(n),
        limit,
    )));
}

fn latency_checks(
    comparison: &mut Comparison,
    old: &BenchResult,
    new: &BenchResult,
    options: &CompareOptions,
) {
    let (o, n) = (&old.summary, &new.summary);
    let (limit, slack) = (options.latency_max_regression, options.latency_slack_us);
    let p99 = |s: &Summary| s.publish_latency_us.p99;
    let check = lower_is_better("publish_latency_us.p99", p99(o), p99(n), limit, slack);
    comparison.checks.push(check);
    if new.workload.consumer_count() > 0 {
        let e2e = |s: &Summary| s.end_to_end_latency_us.p99;
        let check = lower_is_better("end_to_end_latency_us.p99", e2e(o), e2e(n), limit, slack);
        comparison.checks.push(if old.is_max_rate() {
            info(check)
        } else {
            check
        });
    }
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
        publish_vs_tcp: f64,
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
                    publish_vs_tcp: Some(publish_vs_tcp),
                    consume_vs_tcp: Some(consume_vs_tcp),
                    rate_attainment: Some(1.0),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    fn options(percent: f64) -> CompareOptions {
        CompareOptions::uniform(percent / 100.0)
    }

    #[test]
    fn identical_runs_pass() {
        let a = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let comparison = compare(&a, &a.clone(), &options(10.0)).unwrap();
        assert!(!comparison.regressed(), "{}", comparison.render());
        let gated: Vec<&str> = comparison
            .checks
            .iter()
            .filter(|c| c.gated)
            .map(|c| c.metric.as_str())
            .collect();
        assert_eq!(
            gated,
            [
                "ratios.publish_vs_tcp",
                "ratios.consume_vs_tcp",
                "publish_latency_us.p99",
            ]
        );
    }

    #[test]
    fn end_to_end_p99_is_gated_only_at_a_fixed_rate() {
        let old = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let new = result(WORKLOAD, 0.2, 0.1, 5000.0, 60_000.0);
        let comparison = compare(&old, &new, &options(10.0)).unwrap();
        assert!(
            !comparison.regressed(),
            "max rate: e2e p99 is consumer lag, info only"
        );
        assert!(comparison.render().contains("info"));
        let fixed = WORKLOAD.replace("\"max\"", "5000");
        let old = result(&fixed, 0.2, 0.1, 5000.0, 6000.0);
        let new = result(&fixed, 0.2, 0.1, 5000.0, 60_000.0);
        assert!(compare(&old, &new, &options(10.0)).unwrap().regressed());
    }

    #[test]
    fn broker_cpu_per_mb_rise_fails_when_both_runs_have_it() {
        let mut old = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let mut new = old.clone();
        new.summary.broker_cpu_us_per_mb = Some(1300.0);
        assert!(
            !compare(&old, &new, &options(10.0)).unwrap().regressed(),
            "old lacks it"
        );
        old.summary.broker_cpu_us_per_mb = Some(1000.0);
        assert!(compare(&old, &new, &options(10.0)).unwrap().regressed());
        let loose = CompareOptions {
            cpu_max_regression: 0.5,
            ..options(10.0)
        };
        assert!(!compare(&old, &new, &loose).unwrap().regressed());
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
        new.summary.ratios.publish_vs_tcp = None;
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
    fn a_run_beside_busy_other_processes_gets_a_noise_note() {
        let old = result(WORKLOAD, 0.2, 0.1, 5000.0, 6000.0);
        let mut new = old.clone();
        new.summary.other_processes_cores = Some(0.9);
        let comparison = compare(&old, &new, &options(10.0)).unwrap();
        assert!(!comparison.regressed(), "a note never fails the gate");
        assert!(
            comparison
                .notes
                .iter()
                .any(|n| n.contains("NEW") && n.contains("noisy"))
        );
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

    /// The baseline `make bench-ci` compares with must load with this schema, pass against
    /// itself, and fail against a copy slowed beyond the Makefile's thresholds.
    #[test]
    fn committed_ci_baseline_passes_itself_and_fails_a_slowed_copy() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines/ci-smoke.json");
        let baseline = BenchResult::load(&path).unwrap();
        let ci = CompareOptions {
            max_regression: 0.30,
            latency_max_regression: 1.00,
            cpu_max_regression: 0.25,
            latency_slack_us: 0.0,
        };
        assert!(!compare(&baseline, &baseline, &ci).unwrap().regressed());
        let mut slowed = baseline.clone();
        let ratios = &mut slowed.summary.ratios;
        ratios.publish_vs_tcp = ratios.publish_vs_tcp.map(|r| r * 0.6);
        let comparison = compare(&baseline, &slowed, &ci).unwrap();
        assert!(comparison.regressed(), "{}", comparison.render());
        let mut slower_p99 = baseline.clone();
        slower_p99.summary.publish_latency_us.p99 *= 2.5;
        assert!(compare(&baseline, &slower_p99, &ci).unwrap().regressed());
    }
}
