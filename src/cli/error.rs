//! The CLI's error type and its exit codes (documented in docs/cli.md, "Exit codes").
//!
//! Owns: `CliError`, `ExitCode` numbers, and the one function that turns a librdkafka error into
//! a `CliError`. May import: rdkafka error types only.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Exit code when every step succeeded.
pub const EXIT_OK: i32 = 0;
/// The broker refused or failed the operation, or some produced records failed.
pub const EXIT_FAILED: i32 = 1;
/// Bad command-line arguments (clap uses the same code for its own usage errors).
pub const EXIT_USAGE: i32 = 2;
/// No broker could be reached at the bootstrap address, or it did not answer in time.
pub const EXIT_UNREACHABLE: i32 = 3;
/// The named topic or group does not exist.
pub const EXIT_NOT_FOUND: i32 = 4;
/// The cluster's current state forbids the operation (topic exists, group has members).
pub const EXIT_CONFLICT: i32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach a broker at {bootstrap}: {detail}")]
    Unreachable { bootstrap: String, detail: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("unknown group '{0}'")]
    UnknownGroup(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{operation}: the broker does not support this request ({detail})")]
    Unsupported { operation: String, detail: String },
    #[error("{operation} failed: {detail}")]
    Failed { operation: String, detail: String },
    #[error("{failed} of {total} records failed")]
    RecordsFailed { failed: u64, total: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::InvalidArgument(_) => EXIT_USAGE,
            CliError::UnknownTopic(_) | CliError::UnknownGroup(_) => EXIT_NOT_FOUND,
            CliError::Conflict(_) => EXIT_CONFLICT,
            CliError::Unsupported { .. }
            | CliError::Failed { .. }
            | CliError::RecordsFailed { .. }
            | CliError::Io { .. } => EXIT_FAILED,
        }
    }

    pub fn failed(operation: &str, detail: impl std::fmt::Display) -> CliError {
        CliError::Failed {
            operation: operation.to_string(),
            detail: detail.to_string(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The librdkafka error code inside any `KafkaError` variant that carries one.
pub fn error_code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    match error {
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    }
}

/// Whether this code means "no broker answered", as opposed to "a broker answered no".
pub fn is_unreachable_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::NetworkException
    )
}

pub fn is_unsupported_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedVersion | RDKafkaErrorCode::UnsupportedFeature
    )
}

/// Classifies a librdkafka error from `operation` against the broker at `bootstrap`.
pub fn from_kafka(operation: &str, bootstrap: &str, error: KafkaError) -> CliError {
    match error_code(&error) {
        Some(code) => from_code(operation, bootstrap, code),
        None => CliError::failed(operation, error),
    }
}

/// Classifies a per-resource error code (CreateTopics, DescribeConfigs, …).
pub fn from_code(operation: &str, bootstrap: &str, code: RDKafkaErrorCode) -> CliError {
    if is_unreachable_code(code) {
        return CliError::Unreachable {
            bootstrap: bootstrap.to_string(),
            detail: format!("{operation}: {code}"),
        };
    }
    if is_unsupported_code(code) {
        return CliError::Unsupported {
            operation: operation.to_string(),
            detail: code.to_string(),
        };
    }
    CliError::failed(operation, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_per_category() {
        let unreachable = CliError::Unreachable {
            bootstrap: "h:1".into(),
            detail: "x".into(),
        };
        assert_eq!(unreachable.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(
            CliError::InvalidArgument("x".into()).exit_code(),
            EXIT_USAGE
        );
        assert_eq!(
            CliError::UnknownTopic("t".into()).exit_code(),
            EXIT_NOT_FOUND
        );
        assert_eq!(
            CliError::UnknownGroup("g".into()).exit_code(),
            EXIT_NOT_FOUND
        );
        assert_eq!(CliError::Conflict("x".into()).exit_code(), EXIT_CONFLICT);
        assert_eq!(
            CliError::RecordsFailed {
                failed: 1,
                total: 2
            }
            .exit_code(),
            EXIT_FAILED
        );
        assert_ne!(EXIT_OK, EXIT_FAILED);
    }

    #[test]
    fn transport_codes_classify_as_unreachable() {
        let error = from_code("list topics", "h:1", RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
        let error = from_code("alter", "h:1", RDKafkaErrorCode::UnsupportedVersion);
        assert!(matches!(error, CliError::Unsupported { .. }));
        let error = from_code("create", "h:1", RDKafkaErrorCode::InvalidReplicationFactor);
        assert_eq!(error.exit_code(), EXIT_FAILED);
    }
}
