//! SASL authentication (KIP-152 framing is the server's; this is the mechanisms): the server
//! side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) and PLAIN (RFC 4616, checked
//! against the same stored SCRAM credentials), the salted credentials themselves, and the
//! store every shard reads them from.
//!
//! Owns: `SaslMechanism`, `SaslExchange` (one login's state machine), `SaslError`,
//! credentials (`credentials`), the shared `CredentialStore` (`store`). May import:
//! `crate::config`. No sockets, no shards, no files: the server feeds tokens in and writes
//! the answers; `metadata::scram_credentials` persists the store.
//! Invariants: secrets are compared in constant time; a failed login says nothing about
//! which part was wrong (`SaslError::AuthenticationFailed` for every credential problem).
//! Runs on: any shard (a login's HMACs run inline; PLAIN runs PBKDF2, bounded by
//! `credentials::ITERATIONS_MAX`).

pub mod credentials;
pub mod plain;
pub mod scram;
pub mod store;

pub use credentials::{CredentialSet, ScramCredential};
pub use store::CredentialStore;
use thiserror::Error;

/// A SCRAM hash function, with Kafka's ids (`ScramMechanism` in KIP-554).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// Kafka's id of the mechanism (AlterUserScramCredentials, the metadata log).
    pub fn id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_id(id: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Bytes of the hash (and so of stored key, server key and salted password).
    pub fn digest_bytes(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }
}

/// A SASL mechanism the broker can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(scram) => scram.name(),
        }
    }

    /// Kafka's mechanism names are upper case and matched exactly.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            other => ScramMechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }
}

/// Why a login did not succeed. The server answers every one of them with
/// SASL_AUTHENTICATION_FAILED and the same message; the variant is for logs and tests.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SaslError {
    /// Unknown user, wrong password, or a proof that does not verify (never said which).
    #[error("invalid credentials")]
    AuthenticationFailed,
    /// A token that does not follow the mechanism's grammar.
    #[error("malformed {mechanism} token: {reason}")]
    Malformed {
        mechanism: &'static str,
        reason: &'static str,
    },
    /// A token over `sasl.token_bytes_max`.
    #[error("a SASL token of {bytes} bytes is over the limit of {limit}")]
    TokenTooLarge { bytes: usize, limit: usize },
    /// A token after the exchange finished.
    #[error("the SASL exchange has already finished")]
    Finished,
}

/// What the server sends after a token.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// The exchange goes on: send this challenge, wait for the next token.
    Challenge(Vec<u8>),
    /// The client is `user`; send `response` (SCRAM's server-final message, empty for PLAIN).
    Authenticated { user: String, response: Vec<u8> },
}

/// One login in progress on a connection.
pub enum SaslExchange {
    Plain(plain::PlainServer),
    Scram(scram::ScramServer),
}

impl SaslExchange {
    pub fn start(mechanism: SaslMechanism) -> SaslExchange {
        match mechanism {
            SaslMechanism::Plain => SaslExchange::Plain(plain::PlainServer::new()),
            SaslMechanism::Scram(scram) => SaslExchange::Scram(scram::ScramServer::new(scram)),
        }
    }

    /// Feeds the client's next token; `token_bytes_max` bounds it.
    pub fn step(
        &mut self,
        token: &[u8],
        store: &CredentialStore,
        token_bytes_max: usize,
    ) -> Result<SaslStep, SaslError> {
        if token.len() > token_bytes_max {
            return Err(SaslError::TokenTooLarge {
                bytes: token.len(),
                limit: token_bytes_max,
            });
        }
        match self {
            SaslExchange::Plain(plain) => plain.step(token, store),
            SaslExchange::Scram(scram) => scram.step(token, store),
        }
    }
}

/// Compares two secrets in time that depends on their length only.
pub(crate) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Fresh random bytes (nonces, salts) from the operating system.
pub(crate) fn random_bytes(count: usize) -> Result<Vec<u8>, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; count];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(bytes)
}
