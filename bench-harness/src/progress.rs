//! The live progress line on stderr: phase, time, publish and consume rates, p99, errors.
//!
//! Owns: terminal output during a run. Imports: `control`, `result`.
//! On a terminal the line is redrawn in place every second; otherwise (CI logs) a line is
//! printed every `PLAIN_EVERY_SECONDS` so logs stay short.

use crate::control::ClientEvents;
use crate::result::TimePoint;
use std::io::{IsTerminal, Write};

const PLAIN_EVERY_SECONDS: u64 = 5;

pub struct Progress {
    label: String,
    warmup_seconds: f64,
    measure_seconds: f64,
    terminal: bool,
    samples: u64,
}

impl Progress {
    pub fn new(label: &str, warmup_seconds: f64, measure_seconds: f64) -> Progress {
        Progress {
            label: label.to_string(),
            warmup_seconds,
            measure_seconds,
            terminal: std::io::stderr().is_terminal(),
            samples: 0,
        }
    }

    pub fn show(&mut self, point: &TimePoint, in_phase: f64, events: &ClientEvents) {
        self.samples += 1;
        let phase_length = match point.phase.as_str() {
            "warmup" => format!("/{:.0}s", self.warmup_seconds),
            "measure" => format!("/{:.0}s", self.measure_seconds),
            _ => String::new(),
        };
        let line = format!(
            "[{} {:>7} {:>4.0}s{}] pub {} msg/s {:>7.1} MB/s p99 {} | con {} msg/s {:>7.1} MB/s | err {}",
            self.label,
            point.phase,
            in_phase,
            phase_length,
            si(point.publish_msgs_per_sec),
            point.publish_mb_per_sec,
            millis(point.publish_p99_us),
            si(point.consume_msgs_per_sec),
            point.consume_mb_per_sec,
            events.samples().len(),
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else if self.samples.is_multiple_of(PLAIN_EVERY_SECONDS) {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    pub fn finish(&mut self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// 12345.6 -> "12.3k", right-aligned to 6 characters.
pub fn si(value: f64) -> String {
    let text = if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    };
    format!("{text:>6}")
}

/// Microseconds as milliseconds with a sensible number of digits.
pub fn millis(micros: f64) -> String {
    let ms = micros / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.2}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_compactly() {
        assert_eq!(si(999.0).trim(), "999");
        assert_eq!(si(12_345.0).trim(), "12.3k");
        assert_eq!(si(2_500_000.0).trim(), "2.50M");
        assert_eq!(millis(1234.0), "1.23ms");
        assert_eq!(millis(45_600.0), "45.6ms");
        assert_eq!(millis(1_234_000.0), "1234ms");
    }
}
