//! Output for people and scripts: aligned text tables, JSON, and UTC timestamps.
//!
//! Owns: `Format`, `Table`, RFC 3339 formatting and parsing of millisecond timestamps.
//! May import: serde_json, `super::error`. Pure functions; nothing here touches the network.

use super::error::CliError;
use serde_json::Value;

/// How a command prints its result: aligned tables for people, JSON for scripts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Columns separated by two spaces, each as wide as its widest cell; the last is not padded.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        assert_eq!(
            row.len(),
            self.headers.len(),
            "table row width differs from its header"
        );
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let last = row.len() - 1;
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if index < last {
                    let pad = widths[index] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Prints a JSON document on stdout, pretty-printed, newline-terminated.
pub fn print_json(value: &Value) {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    println!("{text}");
}

/// `-` for an absent number, so table columns stay filled.
pub fn or_dash(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A Unix timestamp in milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_timestamp_ms(timestamp_ms: i64) -> String {
    let days = timestamp_ms.div_euclid(86_400_000);
    let day_ms = timestamp_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (day_ms / 3_600_000, day_ms / 60_000 % 60);
    let (second, millis) = (day_ms / 1000 % 60, day_ms % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Parses `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]` into Unix milliseconds. Without a zone the
/// time is read as UTC (unlike kafka-consumer-groups.sh, which uses the local zone).
pub fn parse_timestamp_ms(text: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError::InvalidArgument(format!(
            "invalid date-time '{text}': expected YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]"
        ))
    };
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(index) => (&text[..index], Some(&text[index + 1..])),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let year = number(date_parts.next(), 4).ok_or_else(bad)?;
    let month = number(date_parts.next(), 2).ok_or_else(bad)?;
    let day = number(date_parts.next(), 2).ok_or_else(bad)?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let (time_ms, offset_minutes) = match rest {
        Some(rest) => {
            let (time, offset_minutes) = split_zone(rest).ok_or_else(bad)?;
            (parse_time_ms(time).ok_or_else(bad)?, offset_minutes)
        }
        None => (0, 0),
    };
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400_000 + time_ms - offset_minutes * 60_000)
}

fn number(part: Option<&str>, digits: usize) -> Option<i64> {
    let part = part?;
    if part.len() != digits || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Splits `HH:MM:SS.fff+02:00` into the time and the zone offset in minutes.
fn split_zone(rest: &str) -> Option<(&str, i64)> {
    if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        return Some((time, 0));
    }
    match rest.rfind(['+', '-']) {
        Some(index) => {
            let (time, zone) = rest.split_at(index);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let mut parts = zone[1..].split(':');
            let hours = number(parts.next(), 2)?;
            let minutes = number(parts.next(), 2)?;
            if parts.next().is_some() || hours > 23 || minutes > 59 {
                return None;
            }
            Some((time, sign * (hours * 60 + minutes)))
        }
        None => Some((rest, 0)),
    }
}

fn parse_time_ms(time: &str) -> Option<i64> {
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let mut parts = clock.split(':');
    let hour = number(parts.next(), 2)?;
    let minute = number(parts.next(), 2)?;
    let second = match parts.next() {
        Some(second) => number(Some(second), 2)?,
        None => 0,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = match fraction {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<3}");
            padded[..3].parse::<i64>().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    Some(((hour * 60 + minute) * 60 + second) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_the_last() {
        let mut table = Table::new(&["TOPIC", "PARTITIONS"]);
        table.push(vec!["orders".into(), "3".into()]);
        table.push(vec!["a".into(), "12".into()]);
        assert_eq!(
            table.render(),
            "TOPIC   PARTITIONS\norders  3\na       12\n"
        );
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        assert_eq!(format_timestamp_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp_ms(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-14T22:13:20.123Z").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-14T22:13:20.123").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-15T00:13:20.123+02:00").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-14T17:13:20.123-05:00").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_ms("2024-02-29").ok(),
            Some(1_709_164_800_000)
        );
        assert_eq!(
            parse_timestamp_ms("2024-02-29T10:00").ok(),
            Some(1_709_200_800_000)
        );
        assert_eq!(format_timestamp_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn malformed_timestamps_are_argument_errors() {
        for text in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T25:00",
            "2024-01-01T",
        ] {
            assert!(parse_timestamp_ms(text).is_err(), "{text} should not parse");
        }
    }
}
