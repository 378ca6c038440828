//! The Kafka tools as `shardlog` subcommands: `topic`, `produce`, `consume` and `group` do what
//! kafka-topics.sh, kafka-console-producer.sh, kafka-console-consumer.sh and
//! kafka-consumer-groups.sh do, speaking only the Kafka protocol (through librdkafka) to
//! `--bootstrap-server`, so they work against Apache Kafka as well as shardlog.
//!
//! `data-dir` is the exception: it works on a stopped broker's data dir, not over Kafka.
//! `cluster describe`, `group describe` for consumer-protocol groups and `user` (SCRAM
//! credentials, salted with `shardlog::security::sasl`) speak the Kafka protocol themselves
//! (kafka-protocol), since librdkafka has no DescribeQuorum, ConsumerGroupDescribe or SCRAM
//! credential admin.
//!
//! Owns: one file per command family plus shared `client` (connecting), `output` (tables, JSON,
//! timestamps) and `error` (`CliError`, exit codes). May import: rdkafka, kafka-protocol
//! (`cluster`, `consumer_group`, `user`), and from the broker
//! library only `shardlog::metadata::shard_for` (shard placement is computed, not fetched)
//! and, for `data-dir`, `shardlog::shard::data_dir` / `data_dir_tools` and `config`.
//! Runs on the caller's thread; librdkafka runs its own I/O threads. See docs/cli.md.

mod assignment;
pub mod broker;
pub mod client;
pub mod cluster;
mod config_admin;
pub mod consume;
mod consumer_group;
pub mod data_dir;
pub mod error;
pub mod group;
mod output;
mod partitioner;
pub mod produce;
mod reassign;
mod reset;
pub mod topic;
pub mod user;

pub use error::CliError;

/// Ends the process with the command's outcome: exit 0, or the error on stderr and its exit code
/// (docs/cli.md, "Exit codes").
pub fn exit(result: Result<(), CliError>) -> ! {
    match result {
        Ok(()) => std::process::exit(error::EXIT_OK),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(error.exit_code())
        }
    }
}
