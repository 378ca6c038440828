//! `shardlog broker config`: show or change a broker's dynamic configs (kafka-configs.sh
//! `--entity-type brokers`). Changes go out as one IncrementalAlterConfigs on the BROKER
//! resource named by the broker's id; a refusal (a static key, an unknown key, a bad value)
//! exits non-zero with the broker's message. The cluster-wide default entity (resource name
//! "") is not reachable here: librdkafka refuses an empty resource name.
//!
//! May import: `client`, `config_admin`, `output`, `topic` (argument parsing). Runs on the
//! caller's thread.

use super::client::{Cluster, ConnectArgs};
use super::config_admin::{self, ConfigTarget};
use super::error::CliError;
use super::output::{self, Format, Table};
use super::topic::{config_changes, parse_key_value, refuse_set_and_deleted};
use rdkafka::admin::{ConfigEntry, ConfigSource};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct BrokerArgs {
    /// Filled from the top-level `--bootstrap-server` / `--request-timeout-ms`.
    #[arg(skip)]
    pub connect: ConnectArgs,
    /// Output: aligned text tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub format: Format,
    #[command(subcommand)]
    pub command: BrokerCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BrokerCommand {
    /// Set or remove dynamic broker configs; with neither flag, print the broker's dynamic
    /// configs (docs/configuration.md, "Dynamic broker configs").
    Config {
        /// Broker id [default: the lowest id in the cluster metadata].
        #[arg(long)]
        broker: Option<i32>,
        /// Set KEY=VALUE; repeat for several.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove KEY (back to the cluster default or the config file); repeat for several.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

pub fn run(args: &BrokerArgs) -> Result<(), CliError> {
    let cluster = args.connect.cluster()?;
    match &args.command {
        BrokerCommand::Config {
            broker,
            set,
            delete,
        } => configure(&cluster, *broker, set, delete, args.format),
    }
}

fn configure(
    cluster: &Cluster,
    broker: Option<i32>,
    set: &[(String, String)],
    delete: &[String],
    format: Format,
) -> Result<(), CliError> {
    refuse_set_and_deleted(set, delete)?;
    let id = match broker {
        Some(id) => id,
        None => *cluster
            .broker_ids()?
            .first()
            .ok_or_else(|| CliError::failed("describe cluster", "no broker in the metadata"))?,
    };
    let target = ConfigTarget::Broker(id);
    if !set.is_empty() || !delete.is_empty() {
        let changes = config_changes(set, delete);
        config_admin::alter_incrementally(cluster, target, &changes)?
            .map_err(|refusal| refusal.into_cli_error(cluster, "alter broker configs", target))?;
    }
    let entries = config_admin::describe(cluster, target, Some(id))?
        .map_err(|refusal| refusal.into_cli_error(cluster, "describe broker configs", target))?;
    let dynamic: Vec<&ConfigEntry> = entries.iter().filter(|e| is_dynamic(e)).collect();
    match format {
        Format::Json => {
            let configs: serde_json::Map<String, serde_json::Value> = dynamic
                .iter()
                .map(|e| {
                    (
                        e.name.clone(),
                        json!({ "value": e.value, "source": source(e) }),
                    )
                })
                .collect();
            output::print_json(&json!({ "broker": id, "configs": configs }));
        }
        Format::Text => {
            let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
            for entry in &dynamic {
                let value = entry.value.clone().unwrap_or_default();
                table.push(vec![entry.name.clone(), value, source(entry).to_string()]);
            }
            if table.is_empty() {
                println!("Broker {id} has no dynamic configs.");
            } else {
                print!("{}", table.render());
            }
        }
    }
    Ok(())
}

fn is_dynamic(entry: &ConfigEntry) -> bool {
    matches!(
        entry.source,
        ConfigSource::DynamicBroker | ConfigSource::DynamicDefaultBroker
    )
}

fn source(entry: &ConfigEntry) -> &'static str {
    match entry.source {
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        _ => "DYNAMIC_DEFAULT_BROKER_CONFIG",
    }
}
