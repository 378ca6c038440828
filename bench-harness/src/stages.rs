//! The broker's own view of where a request's time goes (issue 19): the produce and fetch
//! stage histograms shardlog exposes on /metrics
//! (`shardlog_{produce,fetch}_stage_duration_seconds{shard,stage,le}`), scraped before and
//! after a run; the bucket deltas, summed over shards, give each stage's count, p50 and p99
//! for just that run.
//!
//! Owns: `StageScrape` (parsed buckets) and `StageSummary`. Imports: `memory` (the HTTP
//! GET). Runs on the coordinating thread.

use crate::memory::http_get_body;
use serde::Serialize;
use std::collections::BTreeMap;

const FAMILIES: [(&str, &str); 2] = [
    ("produce", "shardlog_produce_stage_duration_seconds_bucket"),
    ("fetch", "shardlog_fetch_stage_duration_seconds_bucket"),
];

/// Cumulative bucket counts per (api, stage), upper bound -> count, summed over shards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageScrape {
    buckets: BTreeMap<(String, String), Vec<(f64, f64)>>,
}

/// One stage over one run, from bucket deltas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    /// "produce" or "fetch".
    pub api: String,
    pub stage: String,
    pub count: u64,
    /// Upper-bound estimates within the bucket (linear interpolation), µs.
    pub p50_us: f64,
    pub p99_us: f64,
}

impl StageScrape {
    /// GET /metrics from `admin_address` (host:port) and parse it.
    pub fn scrape(admin_address: &str) -> anyhow::Result<StageScrape> {
        Ok(StageScrape::parse(&http_get_body(
            admin_address,
            "/metrics",
        )?))
    }

    pub fn parse(metrics: &str) -> StageScrape {
        let mut buckets: BTreeMap<(String, String), BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
        for line in metrics.lines() {
            let Some((api, rest)) = FAMILIES
                .iter()
                .find_map(|(api, family)| line.strip_prefix(family).map(|rest| (*api, rest)))
            else {
                continue;
            };
            let Some((labels, value)) = rest.strip_prefix('{').and_then(|r| r.split_once('}'))
            else {
                continue;
            };
            let label = |name: &str| {
                labels.split(',').find_map(|pair| {
                    pair.trim()
                        .strip_prefix(name)
                        .and_then(|v| v.strip_prefix('='))
                        .map(|quoted| quoted.trim_matches('"').to_string())
                })
            };
            let (Some(stage), Some(le), Ok(value)) =
                (label("stage"), label("le"), value.trim().parse::<f64>())
            else {
                continue;
            };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse::<f64>() {
                    Ok(bound) => bound,
                    Err(_) => continue,
                }
            };
            let entry = buckets
                .entry((api.to_string(), stage))
                .or_default()
                .entry(bound.to_bits())
                .or_insert((bound, 0.0));
            entry.1 += value;
        }
        StageScrape {
            buckets: buckets
                .into_iter()
                .map(|(key, by_bound)| {
                    let mut list: Vec<(f64, f64)> = by_bound.into_values().collect();
                    list.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (key, list)
                })
                .collect(),
        }
    }

    /// Per stage, what happened between `before` and `self` (stages without observations
    /// in the run are left out).
    pub fn since(&self, before: &StageScrape) -> Vec<StageSummary> {
        let mut out = Vec::new();
        for ((api, stage), after) in &self.buckets {
            let earlier = before.buckets.get(&(api.clone(), stage.clone()));
            let delta: Vec<(f64, f64)> = after
                .iter()
                .map(|&(bound, count)| {
                    let old = earlier
                        .and_then(|list| list.iter().find(|(b, _)| *b == bound))
                        .map_or(0.0, |(_, c)| *c);
                    (bound, (count - old).max(0.0))
                })
                .collect();
            let count = delta.last().map_or(0.0, |(_, c)| *c);
            if count <= 0.0 {
                continue;
            }
            out.push(StageSummary {
                api: api.clone(),
                stage: stage.clone(),
                count: count as u64,
                p50_us: quantile(&delta, 0.5) * 1e6,
                p99_us: quantile(&delta, 0.99) * 1e6,
            });
        }
        out
    }
}

/// `histogram_quantile` over cumulative (bound, count) buckets, the last one +Inf:
/// linear within the bucket the rank falls in; the highest finite bound if it is +Inf.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return bound;
            }
            return lower.0 + (bound - lower.0) * (rank - lower.1) / in_bucket;
        }
        lower = (bound, count);
    }
    lower.0
}

/// Prints the stages as a table (µs), after `title`.
pub fn print(title: &str, stages: &[StageSummary]) {
    println!("{title}");
    println!(
        "  {:<8} {:<17} {:>10} {:>10} {:>10}",
        "api", "stage", "count", "p50 µs", "p99 µs"
    );
    for s in stages {
        println!(
            "  {:<8} {:<17} {:>10} {:>10.1} {:>10.1}",
            s.api, s.stage, s.count, s.p50_us, s.p99_us
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# TYPE shardlog_produce_stage_duration_seconds histogram
shardlog_produce_stage_duration_seconds_bucket{shard=\"0\",stage=\"append\",le=\"0.00001\"} 10
shardlog_produce_stage_duration_seconds_bucket{shard=\"0\",stage=\"append\",le=\"0.0001\"} 10
shardlog_produce_stage_duration_seconds_bucket{shard=\"0\",stage=\"append\",le=\"+Inf\"} 10
shardlog_produce_stage_duration_seconds_count{shard=\"0\",stage=\"append\"} 10
";
    const AFTER: &str = "\
shardlog_produce_stage_duration_seconds_bucket{shard=\"0\",stage=\"append\",le=\"0.00001\"} 60
shardlog_produce_stage_duration_seconds_bucket{shard=\"0\",stage=\"append\",le=\"0.0001\"} 110
shardlog_produce_stage_duration_seconds_bucket{shard=\"0\",stage=\"append\",le=\"+Inf\"} 110
shardlog_produce_stage_duration_seconds_bucket{shard=\"1\",stage=\"append\",le=\"0.00001\"} 0
shardlog_produce_stage_duration_seconds_bucket{shard=\"1\",stage=\"append\",le=\"0.0001\"} 0
shardlog_produce_stage_duration_seconds_bucket{shard=\"1\",stage=\"append\",le=\"+Inf\"} 0
shardlog_fetch_stage_duration_seconds_bucket{shard=\"0\",stage=\"wait\",le=\"0.1\"} 0
shardlog_fetch_stage_duration_seconds_bucket{shard=\"0\",stage=\"wait\",le=\"+Inf\"} 0
";

    #[test]
    fn deltas_over_shards_give_the_runs_quantiles() {
        let before = StageScrape::parse(BEFORE);
        let after = StageScrape::parse(AFTER);
        let stages = after.since(&before);
        assert_eq!(stages.len(), 1, "stages without observations are left out");
        let append = &stages[0];
        assert_eq!(
            (append.api.as_str(), append.stage.as_str()),
            ("produce", "append")
        );
        assert_eq!(append.count, 100);
        // 50 of 100 in (0, 10 µs], 50 in (10, 100 µs]: p50 at 10 µs, p99 near 100 µs.
        assert!((append.p50_us - 10.0).abs() < 1e-6, "{append:?}");
        assert!((append.p99_us - 98.2).abs() < 1e-6, "{append:?}");
    }

    #[test]
    fn a_quantile_in_the_inf_bucket_is_the_highest_bound() {
        let buckets = [(0.001, 1.0), (0.01, 1.0), (f64::INFINITY, 4.0)];
        assert_eq!(quantile(&buckets, 0.99), 0.01);
    }
}
