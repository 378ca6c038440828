//! `run --set SECTION.KEY=VALUE`: overrides applied to a workload file before validation, so
//! a variant of a shipped workload needs no copy of the file.
//!
//! Owns: parsing an override and merging it into the workload's TOML. Imports: `workload`.
//! Invariant: the result is a `Workload` that passed `validate()`, like `Workload::load`'s.
//!
//! The key is a TOML dotted key (`producers.properties."linger.ms"` quotes a name with dots);
//! the value is a TOML value (`5000`, `"all"`, `{ min = 100, max = 200 }`) or, when it is not
//! valid TOML, the text itself as a string (`--set name=foo`). Defaults are filled in before
//! the overrides apply, and a value replacing a string stays a string (`producers.acks=1`
//! means acks "1"), as does any value in `properties` or `topic_configs`; an integer
//! replacing a float becomes a float.

use crate::workload::Workload;
use anyhow::{Context, bail};
use std::path::Path;
use toml::{Table, Value};

/// One `--set KEY=VALUE`: the key path and the value as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub path: Vec<String>,
    pub value: Value,
    /// The value's text as given, for when the target is a string.
    pub text: String,
}

impl Override {
    pub fn parse(assignment: &str) -> anyhow::Result<Override> {
        let Some((key, text)) = assignment.split_once('=') else {
            bail!("--set {assignment:?}: expected SECTION.KEY=VALUE");
        };
        let (key, text) = (key.trim(), text.trim());
        let path = key_path(key).with_context(|| format!("--set {assignment:?}: bad key"))?;
        let value = match toml::from_str::<Table>(&format!("value = {text}")) {
            Ok(mut table) => table.remove("value").unwrap_or(Value::String(text.into())),
            Err(_) => Value::String(text.to_string()),
        };
        Ok(Override {
            path,
            value,
            text: text.to_string(),
        })
    }
}

/// The segments of a TOML dotted key, quotes honoured: `a."b.c"` is ["a", "b.c"].
fn key_path(key: &str) -> anyhow::Result<Vec<String>> {
    let mut table: Table = toml::from_str(&format!("{key} = 0"))?;
    let mut path = Vec::new();
    loop {
        anyhow::ensure!(table.len() == 1, "expected one dotted key");
        let (name, value) = table.into_iter().next().context("empty key")?;
        path.push(name);
        match value {
            Value::Table(inner) => table = inner,
            _ => return Ok(path),
        }
    }
}

/// Loads a workload file, applies the overrides in order, and validates the result.
pub fn load_with_overrides(path: &Path, assignments: &[String]) -> anyhow::Result<Workload> {
    let workload = Workload::load(path)?;
    if assignments.is_empty() {
        return Ok(workload);
    }
    let overrides = assignments
        .iter()
        .map(|a| Override::parse(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    apply(&workload, &overrides)
        .with_context(|| format!("invalid workload {} after --set", path.display()))
}

/// The workload with every default filled in, then the overrides, then validation.
pub fn apply(workload: &Workload, overrides: &[Override]) -> anyhow::Result<Workload> {
    let mut table = Table::try_from(workload).context("cannot re-encode the workload")?;
    for item in overrides {
        set(&mut table, item)?;
    }
    let workload: Workload = table.try_into()?;
    workload.validate()?;
    Ok(workload)
}

/// Workload tables whose values are all strings (librdkafka properties, topic configs): a
/// new key there takes the value's text, so `properties."linger.ms"=5` means "5".
const STRING_MAPS: &[&str] = &["properties", "topic_configs"];

fn set(table: &mut Table, item: &Override) -> anyhow::Result<()> {
    let (last, parents) = item.path.split_last().context("empty key")?;
    let mut current = table;
    for (depth, name) in parents.iter().enumerate() {
        let entry = current
            .entry(name.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(inner) => inner,
            _ => bail!(
                "--set {}: {} is not a section",
                item.path.join("."),
                item.path[..=depth].join(".")
            ),
        };
    }
    let in_string_map = parents
        .last()
        .is_some_and(|p| STRING_MAPS.contains(&p.as_str()));
    let scalar = !item.value.is_str() && !item.value.is_table() && !item.value.is_array();
    let value = match (current.get(last), &item.value) {
        (Some(Value::String(_)), _) | (None, _) if scalar && in_string_map => {
            Value::String(item.text.clone())
        }
        (Some(Value::String(_)), _) if scalar => Value::String(item.text.clone()),
        (Some(Value::Float(_)), Value::Integer(n)) => Value::Float(*n as f64),
        (_, value) => value.clone(),
    };
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::workload::tests::MINIMAL as BASE;

    fn with(sets: &[&str]) -> anyhow::Result<Workload> {
        let base = Workload::parse(BASE).unwrap();
        let overrides = sets
            .iter()
            .map(|s| Override::parse(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        apply(&base, &overrides)
    }

    #[test]
    fn keys_and_values_parse() {
        let o = Override::parse(r#"producers.properties."linger.ms"=5"#).unwrap();
        assert_eq!(o.path, ["producers", "properties", "linger.ms"]);
        assert_eq!(o.value, Value::Integer(5));
        let o = Override::parse("name = foo-bar").unwrap();
        assert_eq!(o.value, Value::String("foo-bar".into()));
        assert!(Override::parse("no-equals-sign").is_err());
        assert!(Override::parse("a..b=1").is_err());
    }

    #[test]
    fn overrides_apply_with_the_targets_type() {
        let w = with(&[
            "producers.acks=1",
            "name=foo",
            "duration.measure_seconds=30",
            "producers.rate=5000",
            "messages.size={ min = 100, max = 200 }",
            r#"producers.properties."queue.buffering.max.kbytes"=1024"#,
        ])
        .unwrap();
        assert_eq!(w.producers.acks, "1");
        assert_eq!(w.name, "foo");
        assert_eq!(w.duration.measure_seconds, 30.0);
        assert_eq!(w.producers.rate, crate::workload::Rate::Fixed(5000.0));
        assert_eq!(
            w.messages.size,
            crate::workload::MessageSize::Uniform { min: 100, max: 200 }
        );
        assert_eq!(w.producers.properties["queue.buffering.max.kbytes"], "1024");
        // A later override wins; an untouched workload stays equal to itself.
        assert_eq!(with(&["name=a", "name=b"]).unwrap().name, "b");
        assert_eq!(with(&[]).unwrap(), Workload::parse(BASE).unwrap());
    }

    #[test]
    fn overrides_are_validated() {
        let cases = [
            ("producers.lingr=5", "unknown field"),
            ("topics.partitions=0", "partitions"),
            ("name=a b", "name"),
            ("producers.acks.x=1", "not a section"),
        ];
        for (set, expected) in cases {
            let err = format!("{:#}", with(&[set]).unwrap_err());
            assert!(
                err.contains(expected),
                "{set}: expected {expected:?} in {err:?}"
            );
        }
    }

    #[test]
    fn a_background_section_can_be_added() {
        let w = with(&[
            "background.kind=retention",
            "background.rate=1000",
            r#"background.topic_configs."retention.bytes"=1048576"#,
        ])
        .unwrap();
        let background = w.background.unwrap();
        let maintenance = background.maintenance().unwrap();
        assert_eq!(maintenance.rate, 1000.0);
        assert_eq!(maintenance.topic_configs["retention.bytes"], "1048576");
    }

    #[test]
    fn hostile_settings_can_be_overridden_and_stay_typed() {
        let w = with(&[
            "background.kind=hostile",
            "background.idle_connections=10",
            "background.big_fetch_mb_per_sec=50",
        ])
        .unwrap();
        let Some(crate::workload::Background::Hostile(h)) = &w.background else {
            panic!("hostile expected: {:?}", w.background)
        };
        assert_eq!(h.idle_connections, 10);
        assert_eq!(h.big_fetch_mb_per_sec, 50.0);
        // An integer replacing a float setting stays a float once the section exists.
        let hostile = apply(
            &w,
            &[Override::parse("background.big_fetch_mb_per_sec=20").unwrap()],
        )
        .unwrap();
        let Some(crate::workload::Background::Hostile(h)) = &hostile.background else {
            panic!("hostile expected")
        };
        assert_eq!(h.big_fetch_mb_per_sec, 20.0);
        let err = format!(
            "{:#}",
            with(&["background.kind=hostile", "background.rate=1"]).unwrap_err()
        );
        assert!(err.contains("unknown field"), "{err}");
    }
}
