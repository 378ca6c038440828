//! The lines `bench-harness run` prints on stderr after each repeat: the measured numbers,
//! and for a `[background]` workload both sides with the evidence of what ran beside the
//! load (maintenance counts, memory against budgets, hostile connections, CreateTopics
//! times).
//!
//! Owns: the per-repeat console format. Imports: `result`, `stats`.

use crate::result::{MaintenanceRepeat, MaintenanceSide, RepeatResult};
use crate::stats::{LatencySummary, median};

const MIB: f64 = 1024.0 * 1024.0;

fn show(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

fn ms(l: &LatencySummary) -> String {
    format!("{:.2}/{:.2}/{:.2}", l.p50 / 1e3, l.p99 / 1e3, l.p99_9 / 1e3)
}

pub fn print_repeat(name: &str, r: &RepeatResult) {
    eprintln!(
        "{name} repeat {}: publish {:.0} msg/s {:.1} MB/s (p99 {:.2} ms), consume {:.1} MB/s \
         (e2e p99 {:.2} ms), errors {}/{}; disk {} MB/s, tcp {} MB/s; \
         ratios pub/disk {} con/tcp {}",
        r.index + 1,
        r.publish.msgs_per_sec,
        r.publish.mb_per_sec,
        r.publish_latency_us.p99 / 1000.0,
        r.consume.mb_per_sec,
        r.end_to_end_latency_us.p99 / 1000.0,
        r.errors.publish,
        r.errors.consume,
        show(r.baselines.disk_write_mb_per_sec, 0),
        show(r.baselines.tcp_loopback_mb_per_sec, 0),
        show(r.ratios.publish_vs_disk, 3),
        show(r.ratios.consume_vs_tcp, 3),
    );
    for sample in &r.errors.samples {
        eprintln!("  error sample: {sample}");
    }
    if let Some(m) = &r.maintenance {
        print_sides(m);
    }
}

fn print_sides(m: &MaintenanceRepeat) {
    let x = |v: Option<f64>| show(v, 2);
    let (idle, with) = (&m.idle, &m.with_background);
    eprintln!(
        "  {} (idle = {}, {} first): publish p50/p99/p99.9 idle {} ms, with background {} ms, \
         with/idle {}/{}/{}, end-to-end with/idle {}/{}/{}; idle {:.0} msg/s, with {:.0} msg/s",
        m.kind.name(),
        m.idle_mode.name(),
        m.first,
        ms(&idle.publish_latency_us),
        ms(&with.publish_latency_us),
        x(m.ratios.p50),
        x(m.ratios.p99),
        x(m.ratios.p99_9),
        x(m.end_to_end_ratios.p50),
        x(m.end_to_end_ratios.p99),
        x(m.end_to_end_ratios.p99_9),
        idle.publish.msgs_per_sec,
        with.publish.msgs_per_sec,
    );
    for (name, side) in [("idle", idle), ("with background", with)] {
        let mut parts = vec![format!(
            "other processes {} cores, worst 1-s publish p99 {} ms",
            show(side.cpu.other_processes_cores, 2),
            show(side.worst_second_publish_p99_us.map(|us| us / 1e3), 2),
        )];
        parts.extend(memory_line(side));
        if m.kind.is_maintenance() {
            parts.push(maintenance_line(side));
        }
        parts.extend(hostile_lines(side));
        parts.extend(create_topics_line(side));
        eprintln!("  {name}: {}", parts.join("; "));
    }
}

fn memory_line(side: &MaintenanceSide) -> Option<String> {
    let m = side.memory.as_ref()?;
    Some(format!(
        "broker RSS max {:.0} MiB (start {:.0}, end {:.0}, lifetime peak {} MiB, {} samples) \
         vs budget {} MiB",
        m.rss_max_bytes as f64 / MIB,
        m.rss_start_bytes as f64 / MIB,
        m.rss_end_bytes as f64 / MIB,
        show(m.rss_peak_bytes.map(|b| b as f64 / MIB), 0),
        m.samples,
        show(m.budget_bytes.map(|b| b as f64 / MIB), 0),
    ))
}

fn maintenance_line(side: &MaintenanceSide) -> String {
    let writes = side
        .background
        .as_ref()
        .map_or("no background writes".into(), |b| {
            format!(
                "background {:.0} msg/s (errors {}), log start offset {} of {}",
                b.writes.msgs_per_sec,
                b.errors,
                b.log_start_offset.map_or("-".into(), |o| o.to_string()),
                b.high_watermark.map_or("-".into(), |o| o.to_string()),
            )
        });
    let log = side.broker_log.as_ref().map_or(String::new(), |l| {
        format!(
            "; broker log: {} compaction passes removed {} records, {} retention runs \
             deleted {} segments",
            l.compaction_passes,
            l.compaction_records_removed,
            l.retention_runs,
            l.retention_segments_deleted
        )
    });
    writes + &log
}

fn hostile_lines(side: &MaintenanceSide) -> Vec<String> {
    let Some(h) = &side.hostile else {
        return Vec::new();
    };
    let b = &h.backlog;
    let mut lines = vec![format!(
        "backlog {:.0} MiB in {} partitions written in {:.1} s",
        b.bytes as f64 / MIB,
        b.partitions,
        b.seconds
    )];
    for c in h.connections.iter().filter(|c| c.target > 0) {
        lines.push(format!(
            "{} x{}: opened {}, closed by broker {}{}, connect errors {}, open at end {}, \
             sent {} B",
            c.kind,
            c.target,
            c.opened,
            c.closed_by_broker,
            if c.refused > 0 {
                format!(" ({} with 503)", c.refused)
            } else {
                String::new()
            },
            c.connect_errors,
            c.open_at_end,
            c.bytes_sent,
        ));
    }
    if let Some(f) = &h.big_fetch {
        lines.push(format!(
            "big-fetch consumers x{}: {:.0} MB read ({:.1} MB/s), {} passes, {} errors",
            f.consumers,
            f.bytes as f64 / 1e6,
            f.mb_per_sec,
            f.passes,
            f.errors
        ));
    }
    lines
}

fn create_topics_line(side: &MaintenanceSide) -> Option<String> {
    let c = side.create_topics.as_ref()?;
    let stat = |values: &[f64]| match values.iter().copied().reduce(f64::max) {
        None => "-".to_string(),
        Some(max) => format!("{:.0}/{max:.0}", median(values.iter().copied())),
    };
    Some(format!(
        "{} CreateTopics of {} partitions, median/max {} ms (leaders ready after {} ms), \
         {} DeleteTopics median/max {} ms, {} errors{}",
        c.create_ms.len(),
        c.partitions,
        stat(&c.create_ms),
        stat(&c.ready_ms),
        c.delete_ms.len(),
        stat(&c.delete_ms),
        c.errors,
        c.error_samples
            .first()
            .map_or(String::new(), |e| format!(" (first: {e})")),
    ))
}
