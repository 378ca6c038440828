//! `shardlog data-dir`: inspect and recover a data dir while no broker runs on it (each
//! command takes the data dir's lock). `check` says whether start-up would proceed and why
//! not; `recover-catalog` rebuilds a missing or unreadable `topics.json` / `meta.json`;
//! `quarantine` moves partition directories of unknown identity aside; `adopt` declares a
//! directory that lost its `partition.metadata` to be its topic's; `repair` accepts the
//! loss a damaged partition log reports. Nothing is ever deleted. See docs/operations.md,
//! "Recovering a data dir".
//!
//! Owns: argument parsing and printing. The work is `shardlog::shard::data_dir` and
//! `data_dir_tools`.

use super::CliError;
use shardlog::config::Config;
use shardlog::shard::data_dir::{self, Standing};
use shardlog::shard::data_dir_tools::{self, RepairOutcome};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DataDirArgs {
    #[command(subcommand)]
    command: DataDirCommand,
}

#[derive(clap::Subcommand)]
enum DataDirCommand {
    /// Report what start-up would find: catalog, meta.json, every partition directory.
    Check(Location),
    /// Rebuild a missing or unreadable topics.json (from partition.metadata files) and
    /// meta.json (from the highest producer id in the logs).
    RecoverCatalog(Location),
    /// Move partition directories start-up cannot identify aside (`<name>.quarantined`).
    Quarantine {
        #[command(flatten)]
        location: Location,
        /// Every unidentified directory.
        #[arg(long, conflicts_with = "names")]
        all_unidentified: bool,
        /// Directory names (e.g. orders-3).
        names: Vec<String>,
    },
    /// Declare that a directory without a readable partition.metadata holds the data of the
    /// catalog's topic of that name (writes partition.metadata with its topic id).
    Adopt {
        #[command(flatten)]
        location: Location,
        /// The partition directory (e.g. orders-3).
        name: String,
        /// Required: you checked that the data is that topic's.
        #[arg(long, required = true)]
        confirm: bool,
    },
    /// Let a damaged partition log open again, continuing after the offsets it had
    /// reached; the damaged segment is kept as `<base>.log.damaged`.
    Repair {
        #[command(flatten)]
        location: Location,
        /// The partition directory (e.g. orders-3).
        name: String,
        /// Required: the unreadable records are given up.
        #[arg(long, required = true)]
        accept_data_loss: bool,
    },
}

#[derive(clap::Args)]
struct Location {
    /// The broker's data directory.
    #[arg(long, env = "SHARDLOG_DATA_DIR")]
    data_dir: PathBuf,
    /// The broker's config file (storage settings used by `repair`).
    #[arg(long, env = "SHARDLOG_CONFIG")]
    config: Option<PathBuf>,
}

fn failed(operation: &str, error: impl std::fmt::Display) -> CliError {
    CliError::Failed {
        operation: operation.to_string(),
        detail: error.to_string(),
    }
}

pub fn run(args: &DataDirArgs) -> Result<(), CliError> {
    match &args.command {
        DataDirCommand::Check(location) => check(location),
        DataDirCommand::RecoverCatalog(location) => recover_catalog(location),
        DataDirCommand::Quarantine {
            location,
            all_unidentified,
            names,
        } => {
            if !all_unidentified && names.is_empty() {
                return Err(CliError::InvalidArgument(
                    "name the directories or pass --all-unidentified".to_string(),
                ));
            }
            let report = data_dir_tools::quarantine(&location.data_dir, names)
                .map_err(|e| failed("quarantine", e))?;
            for (from, to) in &report.moved {
                println!("{from} -> {to}");
            }
            for (name, why) in &report.skipped {
                println!(
                    "{name}: left in place ({why}); it is named like a partition of a topic in the catalog: `adopt` it if the data is that topic's, or name it to quarantine it (the partition then restarts empty)"
                );
            }
            println!(
                "{} directories quarantined (nothing deleted).",
                report.moved.len()
            );
            Ok(())
        }
        DataDirCommand::Adopt { location, name, .. } => {
            let id =
                data_dir_tools::adopt(&location.data_dir, name).map_err(|e| failed("adopt", e))?;
            let id = shardlog::metadata::topic_id_hex(&id);
            println!("{name}: partition.metadata names topic id {id}");
            Ok(())
        }
        DataDirCommand::Repair { location, name, .. } => repair(location, name),
    }
}

fn check(location: &Location) -> Result<(), CliError> {
    let survey = data_dir::survey(&location.data_dir).map_err(|e| failed("check", e))?;
    let describe = |result: String| println!("{result}");
    match &survey.catalog {
        Ok(Some(catalog)) => describe(format!(
            "topics.json: {} topics, {} being deleted",
            catalog.topics().count(),
            catalog.deleting().len()
        )),
        Ok(None) => describe("topics.json: missing".to_string()),
        Err(error) => describe(format!("topics.json: unreadable: {error}")),
    }
    match &survey.meta {
        Ok(Some(meta)) => describe(format!(
            "meta.json: producer ids reserved below {}",
            meta.producer_id_block_end
        )),
        Ok(None) => describe("meta.json: missing".to_string()),
        Err(error) => describe(format!("meta.json: unreadable: {error}")),
    }
    if let Ok(Some(catalog)) = &survey.catalog {
        for dir in &survey.partitions {
            let standing = match data_dir::standing(dir, catalog) {
                Standing::Live => "ok".to_string(),
                Standing::Deleting { .. } => "being deleted (start-up finishes it)".to_string(),
                Standing::Unidentified { reason } => format!("UNIDENTIFIED: {reason}"),
            };
            describe(format!("{}: {standing}", dir.name));
        }
    }
    for tombstone in &survey.tombstones {
        describe(format!("{tombstone}: deleted (start-up removes it)"));
    }
    match survey.check() {
        Ok(_) => {
            println!("start-up would proceed.");
            Ok(())
        }
        Err(error) => Err(failed("check", format!("start-up would stop: {error}"))),
    }
}

fn recover_catalog(location: &Location) -> Result<(), CliError> {
    let report = data_dir_tools::recover_catalog(&location.data_dir)
        .map_err(|e| failed("recover-catalog", e))?;
    for kept in &report.kept_damaged {
        println!("kept the unreadable file as {}", kept.display());
    }
    if report.topics.is_empty() {
        println!("topics.json: kept as it was");
    } else {
        for (name, partitions) in &report.topics {
            println!("topics.json: {name} ({partitions} partitions)");
        }
        println!(
            "topic configs are not recoverable: every topic has the broker defaults (the internal topics are compacted); re-apply them with `shardlog topic config`"
        );
    }
    if let Some(end) = report.producer_id_block_end {
        println!("meta.json: producer ids continue at {end}");
    }
    for (name, reason) in &report.unidentified {
        println!("still unidentified: {name} ({reason}); see `shardlog data-dir quarantine`");
    }
    Ok(())
}

fn repair(location: &Location, name: &str) -> Result<(), CliError> {
    let mut config = match &location.config {
        Some(path) => Config::from_file(path).map_err(|e| failed("repair", e))?,
        None => Config::default(),
    };
    config.storage.data_dir = location.data_dir.clone();
    match data_dir_tools::repair(&config, name).map_err(|e| failed("repair", e))? {
        RepairOutcome::NotDamaged { log_end } => {
            println!("{name}: not damaged (log end offset {log_end}); nothing changed");
        }
        RepairOutcome::Repaired(report) => {
            if let Some(kept) = &report.kept_as {
                println!(
                    "{name}: kept the damaged segment as {} ({} readable bytes stay in the log)",
                    kept.display(),
                    report.valid_bytes
                );
            }
            println!(
                "{name}: the log continues at offset {} ({}); the offsets before it that were lost are skipped by readers",
                report.continues_at,
                report.new_segment.display()
            );
        }
    }
    Ok(())
}
