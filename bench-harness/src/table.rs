//! `bench-harness table RESULT.json...`: one Markdown row per result (medians over repeats),
//! throughput and latency beside the in-run baselines and the ratios to them.
//!
//! Owns: the summary table format. Imports: `result`.

use crate::result::BenchResult;

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

fn ms(micros: f64) -> String {
    if micros <= 0.0 {
        "-".to_string()
    } else {
        format!("{:.2}", micros / 1000.0)
    }
}

pub fn markdown(results: &[BenchResult]) -> String {
    let mut out = String::from(
        "| workload | rep | target msg/s | pub msg/s | pub MB/s | con MB/s \
         | pub p50/p99/p99.9/max ms | e2e p50/p99/p99.9/max ms | err \
         | disk MB/s | fsync p99 ms | tcp MB/s | pub/disk | con/tcp | attain | broker µs CPU/MB \
         | other cores |\n",
    );
    out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in results {
        let s = &r.summary;
        let p = &s.publish_latency_us;
        let e = &s.end_to_end_latency_us;
        out += &format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {}/{}/{}/{} | {}/{}/{}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.workload.name,
            s.repeats,
            opt(s.target_rate_msgs_per_sec, 0),
            s.publish.msgs_per_sec,
            s.publish.mb_per_sec,
            s.consume.mb_per_sec,
            ms(p.p50),
            ms(p.p99),
            ms(p.p99_9),
            ms(p.max),
            ms(e.p50),
            ms(e.p99),
            ms(e.p99_9),
            ms(e.max),
            s.errors_publish + s.errors_consume,
            opt(s.baselines.disk_write_mb_per_sec, 0),
            opt(s.baselines.fdatasync_p99_us.map(|v| v / 1000.0), 2),
            opt(s.baselines.tcp_loopback_mb_per_sec, 0),
            opt(s.ratios.publish_vs_disk, 3),
            opt(s.ratios.consume_vs_tcp, 3),
            opt(s.ratios.rate_attainment, 3),
            opt(s.broker_cpu_us_per_mb, 0),
            opt(s.other_processes_cores, 2),
        );
    }
    out + &maintenance_markdown(results) + &isolation_markdown(results)
}

/// A second table for `[background]` results: publish latency with the broker's
/// maintenance idle vs busy, medians over repeats; empty when no result has one.
pub fn maintenance_markdown(results: &[BenchResult]) -> String {
    let rows: Vec<_> = results
        .iter()
        .filter_map(|r| Some((r, r.summary.maintenance.as_ref()?)))
        .filter(|(_, m)| m.kind.is_maintenance())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n| workload | rep | maintenance | idle side | idle pub msg/s | with pub msg/s \
         | idle p50/p99/p99.9 ms | with p50/p99/p99.9 ms | with/idle p50/p99/p99.9 \
         | background msg/s | log start offset | records compacted away | segments deleted |\n",
    );
    out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (r, m) in rows {
        let (i, w) = (
            &m.idle_publish_latency_us,
            &m.with_background_publish_latency_us,
        );
        out += &format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {}/{}/{} | {}/{}/{} | {}/{}/{} | {:.0} | {} | {} | {} |\n",
            r.workload.name,
            r.summary.repeats,
            m.kind.name(),
            m.idle_mode.name(),
            m.idle_publish_msgs_per_sec,
            m.with_background_publish_msgs_per_sec,
            ms(i.p50),
            ms(i.p99),
            ms(i.p99_9),
            ms(w.p50),
            ms(w.p99),
            ms(w.p99_9),
            opt(m.ratios.p50, 2),
            opt(m.ratios.p99, 2),
            opt(m.ratios.p99_9, 2),
            m.background_msgs_per_sec,
            opt(m.log_start_offset, 0),
            opt(m.compaction_records_removed, 0),
            opt(m.retention_segments_deleted, 0),
        );
    }
    out
}

fn mib(bytes: Option<f64>) -> String {
    opt(bytes.map(|b| b / (1024.0 * 1024.0)), 0)
}

fn triple(l: &crate::stats::LatencySummary) -> String {
    format!("{}/{}/{}", ms(l.p50), ms(l.p99), ms(l.p99_9))
}

fn ratio_triple(r: &crate::result::LatencyRatios) -> String {
    format!("{}/{}/{}", opt(r.p50, 2), opt(r.p99, 2), opt(r.p99_9, 2))
}

/// A third table for `hostile` and `create-topics` results (issue 14): the measured load's
/// latency alone vs beside the hostile clients or the topic creation, the broker's largest
/// sampled RSS per side against its memory budget, CreateTopics times, and the machine load
/// of each side; empty when no result has one.
pub fn isolation_markdown(results: &[BenchResult]) -> String {
    let rows: Vec<_> = results
        .iter()
        .filter_map(|r| Some((r, r.summary.maintenance.as_ref()?)))
        .filter(|(_, m)| !m.kind.is_maintenance())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n| workload | rep | background | idle pub p50/p99/p99.9 ms | with pub p50/p99/p99.9 ms \
         | with/idle pub p50/p99/p99.9 | with/idle e2e p50/p99/p99.9 | idle/with pub msg/s \
         | RSS max idle/with MiB | budget MiB | CreateTopics n, median/max ms \
         | other cores idle/with |\n",
    );
    out += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (r, m) in rows {
        let creates = match m.create_topics_calls {
            None => "-".to_string(),
            Some(n) => format!(
                "{n}, {}/{}",
                opt(m.create_topics_median_ms, 0),
                opt(m.create_topics_max_ms, 0)
            ),
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0}/{:.0} | {}/{} | {} | {} | {}/{} |\n",
            r.workload.name,
            r.summary.repeats,
            m.kind.name(),
            triple(&m.idle_publish_latency_us),
            triple(&m.with_background_publish_latency_us),
            ratio_triple(&m.ratios),
            ratio_triple(&m.end_to_end_ratios),
            m.idle_publish_msgs_per_sec,
            m.with_background_publish_msgs_per_sec,
            mib(m.idle_rss_max_bytes),
            mib(m.with_background_rss_max_bytes),
            mib(m.memory_budget_bytes),
            creates,
            opt(m.idle_other_processes_cores, 2),
            opt(m.with_background_other_processes_cores, 2),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_values_render_as_dashes() {
        assert_eq!(opt(None, 2), "-");
        assert_eq!(opt(Some(0.12345), 3), "0.123");
        assert_eq!(ms(0.0), "-");
        assert_eq!(ms(1500.0), "1.50");
    }

    fn result_of(kind: crate::workload::BackgroundKind) -> BenchResult {
        use crate::result::{MaintenanceSummary, Summary};
        let summary = MaintenanceSummary {
            kind,
            idle_mode: crate::workload::IdleMode::None,
            idle_publish_msgs_per_sec: 10000.0,
            with_background_publish_msgs_per_sec: 9990.0,
            idle_publish_latency_us: Default::default(),
            with_background_publish_latency_us: Default::default(),
            ratios: Default::default(),
            background_msgs_per_sec: 0.0,
            log_start_offset: None,
            compaction_records_removed: None,
            retention_segments_deleted: None,
            idle_end_to_end_latency_us: Default::default(),
            with_background_end_to_end_latency_us: Default::default(),
            end_to_end_ratios: Default::default(),
            idle_rss_max_bytes: Some(100.0 * 1024.0 * 1024.0),
            with_background_rss_max_bytes: Some(150.0 * 1024.0 * 1024.0),
            memory_budget_bytes: Some(720.0 * 1024.0 * 1024.0),
            idle_other_processes_cores: Some(0.1),
            with_background_other_processes_cores: Some(0.25),
            create_topics_calls: Some(4),
            create_topics_median_ms: Some(2600.0),
            create_topics_max_ms: Some(3100.0),
        };
        let workload = crate::workload::Workload::parse(crate::workload::tests::MINIMAL).unwrap();
        BenchResult {
            schema_version: crate::result::SCHEMA_VERSION,
            tool: String::new(),
            workload_file: String::new(),
            workload,
            environment: Default::default(),
            repeats: Vec::new(),
            summary: Summary {
                repeats: 2,
                maintenance: Some(summary),
                ..Default::default()
            },
        }
    }

    #[test]
    fn isolation_kinds_get_their_own_table() {
        use crate::workload::BackgroundKind;
        let results = [result_of(BackgroundKind::CreateTopics)];
        assert_eq!(maintenance_markdown(&results), "");
        let table = isolation_markdown(&results);
        let row = table.lines().last().unwrap();
        assert!(row.contains("| create-topics |"), "{row}");
        assert!(
            row.contains("| 100/150 | 720 | 4, 2600/3100 | 0.10/0.25 |"),
            "{row}"
        );
        let maintenance = [result_of(BackgroundKind::Retention)];
        assert_eq!(isolation_markdown(&maintenance), "");
        assert!(maintenance_markdown(&maintenance).contains("| retention |"));
        assert!(markdown(&results).contains("| create-topics |"));
    }
}
