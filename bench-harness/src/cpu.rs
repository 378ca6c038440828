//! CPU accounting of a measured phase from /proc: how busy the whole machine was, and how
//! much of that was the harness, the started broker, and everything else (other users'
//! compiles on a shared machine), so a noisy result can be recognised as such.
//!
//! Owns: /proc/stat and /proc/<pid>/stat parsing. Imports: `broker`, `result`.

use crate::broker::process_cpu_seconds;
use crate::result::CpuUse;

/// CPU seconds consumed so far: by every CPU of the machine (not idle), by this process and
/// by the broker (when known).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSnapshot {
    pub machine_busy_seconds: Option<f64>,
    pub harness_seconds: Option<f64>,
    pub broker_seconds: Option<f64>,
}

impl CpuSnapshot {
    pub fn take(broker_pid: Option<u32>) -> CpuSnapshot {
        CpuSnapshot {
            machine_busy_seconds: machine_busy_seconds(),
            harness_seconds: process_cpu_seconds(std::process::id()),
            broker_seconds: broker_pid.and_then(process_cpu_seconds),
        }
    }
}

/// Busy time of all CPUs from the first line of /proc/stat: user + nice + system + irq +
/// softirq + steal (guest time is already inside user), in seconds.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_busy_ticks(stat.lines().next()?).map(|ticks| ticks / clock_ticks_per_second())
}

fn parse_busy_ticks(line: &str) -> Option<f64> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<f64> = fields.filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let pick = |i: usize| values.get(i).copied().unwrap_or(0.0);
    (values.len() >= 4).then(|| pick(0) + pick(1) + pick(2) + pick(5) + pick(6) + pick(7))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    if ticks > 0.0 { ticks } else { 100.0 }
}

/// Average cores used between two snapshots taken `seconds` apart.
pub fn usage(start: &CpuSnapshot, end: &CpuSnapshot, seconds: f64) -> CpuUse {
    let cores = |a: Option<f64>, b: Option<f64>| {
        a.zip(b)
            .filter(|_| seconds > 0.0)
            .map(|(a, b)| ((b - a) / seconds).max(0.0))
    };
    let machine = cores(start.machine_busy_seconds, end.machine_busy_seconds);
    let harness = cores(start.harness_seconds, end.harness_seconds);
    let broker = cores(start.broker_seconds, end.broker_seconds);
    let other = match (machine, harness, broker) {
        (Some(m), Some(h), Some(b)) => Some((m - h - b).max(0.0)),
        _ => None,
    };
    CpuUse {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        machine_busy_cores: machine,
        harness_cores: harness,
        broker_cores: broker,
        other_processes_cores: other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_exclude_idle_and_iowait() {
        let line = "cpu  100 5 50 1000 300 7 8 9 0 0";
        assert_eq!(
            parse_busy_ticks(line),
            Some(100.0 + 5.0 + 50.0 + 7.0 + 8.0 + 9.0)
        );
        assert_eq!(
            parse_busy_ticks("cpu0 1 2 3 4"),
            None,
            "per-CPU lines are not the total"
        );
    }

    #[test]
    fn usage_splits_the_machine_between_harness_broker_and_others() {
        let start = CpuSnapshot {
            machine_busy_seconds: Some(10.0),
            harness_seconds: Some(1.0),
            broker_seconds: Some(2.0),
        };
        let end = CpuSnapshot {
            machine_busy_seconds: Some(30.0),
            harness_seconds: Some(9.0),
            broker_seconds: Some(8.0),
        };
        let u = usage(&start, &end, 10.0);
        assert_eq!(u.machine_busy_cores, Some(2.0));
        assert_eq!(u.harness_cores, Some(0.8));
        assert_eq!(u.broker_cores, Some(0.6));
        assert!((u.other_processes_cores.unwrap() - 0.6).abs() < 1e-9);
        let external = CpuSnapshot {
            broker_seconds: None,
            ..end
        };
        assert_eq!(usage(&start, &external, 10.0).other_processes_cores, None);
    }

    #[test]
    fn this_machine_reports_busy_time() {
        assert!(machine_busy_seconds().unwrap() > 0.0);
    }
}
