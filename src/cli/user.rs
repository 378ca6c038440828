//! `shardlog user create|list|delete`: SCRAM users, as `kafka-configs.sh --entity-type users`
//! does with `SCRAM-SHA-512=[password=…]`, over AlterUserScramCredentials and
//! DescribeUserScramCredentials (KIP-554; librdkafka's admin calls for them are not in the
//! Rust binding, so these go over the Kafka protocol directly). The password is salted here,
//! with a fresh random salt; only the salted password crosses the network.
//!
//! Owns: the three commands' requests and output. May import: `super::{cluster, client,
//! error, output}`, kafka-protocol, and from the broker library the SCRAM arithmetic
//! (`shardlog::security::sasl`).

use super::client::ConnectArgs;
use super::cluster::exchange_any;
use super::error::CliError;
use super::output::{self, Format, Table};
use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use shardlog::security::sasl::ScramMechanism;
use shardlog::security::sasl::credentials::{ITERATIONS_DEFAULT, new_salt};
use shardlog::security::sasl::scram::salted_password;

const VERSION: i16 = 0;

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    /// Filled from the top-level `--bootstrap-server` / `--request-timeout-ms`.
    #[arg(skip)]
    pub connect: ConnectArgs,
    /// Output: aligned text tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub format: Format,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Create a SCRAM user, or set a new password for one.
    Create {
        name: String,
        /// The password (or SHARDLOG_USER_PASSWORD).
        #[arg(long, env = "SHARDLOG_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// SCRAM-SHA-512 or SCRAM-SHA-256.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// PBKDF2 iterations, 4096..=16384.
        #[arg(long, default_value_t = ITERATIONS_DEFAULT)]
        iterations: i32,
    },
    /// Users and their SCRAM mechanisms and iterations.
    List,
    /// Delete a user's SCRAM credential.
    Delete {
        name: String,
        /// SCRAM-SHA-512 or SCRAM-SHA-256.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
    },
}

pub fn run(args: &UserArgs) -> Result<(), CliError> {
    args.connect.probe()?;
    match &args.command {
        UserCommand::Create {
            name,
            password,
            mechanism,
            iterations,
        } => create(&args.connect, name, password, mechanism, *iterations),
        UserCommand::List => list(&args.connect, args.format),
        UserCommand::Delete { name, mechanism } => delete(&args.connect, name, mechanism),
    }
}

fn mechanism(name: &str, operation: &str) -> Result<ScramMechanism, CliError> {
    ScramMechanism::from_name(&name.to_ascii_uppercase()).ok_or_else(|| {
        CliError::failed(
            operation,
            "the mechanism must be SCRAM-SHA-512 or SCRAM-SHA-256",
        )
    })
}

fn alter(
    connect: &ConnectArgs,
    request: AlterUserScramCredentialsRequest,
    operation: &str,
) -> Result<(), CliError> {
    let response = exchange_any(connect, &request, VERSION, operation)?;
    match response.results.iter().find(|r| r.error_code != 0) {
        Some(result) => Err(CliError::failed(
            operation,
            format!(
                "{}: error code {} {}",
                result.user.as_str(),
                result.error_code,
                result.error_message.as_deref().unwrap_or_default()
            ),
        )),
        None => Ok(()),
    }
}

fn create(
    connect: &ConnectArgs,
    name: &str,
    password: &str,
    mechanism_name: &str,
    iterations: i32,
) -> Result<(), CliError> {
    let operation = "create user";
    let mechanism = mechanism(mechanism_name, operation)?;
    let salt = new_salt().map_err(|e| CliError::failed(operation, e))?;
    let mut upsertion = ScramCredentialUpsertion::default();
    upsertion.name = StrBytes::from_string(name.to_string());
    upsertion.mechanism = mechanism.id();
    upsertion.iterations = iterations;
    upsertion.salted_password = Bytes::from(salted_password(
        mechanism,
        password.as_bytes(),
        &salt,
        iterations,
    ));
    upsertion.salt = Bytes::from(salt);
    let mut request = AlterUserScramCredentialsRequest::default();
    request.upsertions = vec![upsertion];
    alter(connect, request, operation)?;
    println!("User {name} has a {} credential.", mechanism.name());
    Ok(())
}

fn delete(connect: &ConnectArgs, name: &str, mechanism_name: &str) -> Result<(), CliError> {
    let operation = "delete user";
    let mechanism = mechanism(mechanism_name, operation)?;
    let mut deletion = ScramCredentialDeletion::default();
    deletion.name = StrBytes::from_string(name.to_string());
    deletion.mechanism = mechanism.id();
    let mut request = AlterUserScramCredentialsRequest::default();
    request.deletions = vec![deletion];
    alter(connect, request, operation)?;
    println!(
        "Deleted the {} credential of user {name}.",
        mechanism.name()
    );
    Ok(())
}

fn list(connect: &ConnectArgs, format: Format) -> Result<(), CliError> {
    let operation = "list users";
    let request = DescribeUserScramCredentialsRequest::default().with_users(None::<Vec<UserName>>);
    let response = exchange_any(connect, &request, VERSION, operation)?;
    if response.error_code != 0 {
        return Err(CliError::failed(
            operation,
            format!("error code {}", response.error_code),
        ));
    }
    let rows: Vec<(String, String, i32)> = response
        .results
        .iter()
        .flat_map(|user| {
            user.credential_infos.iter().map(move |info| {
                let name = ScramMechanism::from_id(info.mechanism).map_or_else(
                    || format!("mechanism {}", info.mechanism),
                    |m| m.name().to_string(),
                );
                (user.user.to_string(), name, info.iterations)
            })
        })
        .collect();
    match format {
        Format::Json => output::print_json(&json!(
            rows.iter()
                .map(|(user, mechanism, iterations)| json!({
                    "user": user, "mechanism": mechanism, "iterations": iterations
                }))
                .collect::<Vec<_>>()
        )),
        Format::Text => {
            let mut table = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
            for (user, mechanism, iterations) in rows {
                table.push(vec![user, mechanism, iterations.to_string()]);
            }
            print!("{}", table.render());
        }
    }
    Ok(())
}
