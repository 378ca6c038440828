//! The `[sasl]` section: which SASL mechanisms SASL_PLAINTEXT and SASL_SSL listeners offer,
//! whether PLAIN may run without TLS, the failed-login delay, session lifetime (KIP-368),
//! the token size limit, and the bootstrap SCRAM users (`--add-scram`, in Kafka's
//! `kafka-storage format --add-scram` syntax).
//!
//! Owns: parsing and validation of these settings. May import: nothing from this crate but
//! `super`. Invariant: a validated config names only mechanisms shardlog implements, and
//! every `add_scram` entry parses.

use super::{ConfigError, check};
use serde::{Deserialize, Serialize};

/// Mechanisms shardlog implements, by Kafka's names.
pub const SUPPORTED_MECHANISMS: [&str; 3] = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];
const SCRAM_MECHANISMS: [&str; 2] = ["SCRAM-SHA-512", "SCRAM-SHA-256"];

/// `[sasl]`: SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaslConfig {
    /// Mechanisms offered, comma-separated, from SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN
    /// (Kafka `sasl.enabled.mechanisms`). Default SCRAM-SHA-512,SCRAM-SHA-256.
    pub enabled_mechanisms: String,
    /// Offer PLAIN on SASL_PLAINTEXT listeners too, where the password crosses the network
    /// in clear. Default false (PLAIN on SASL_SSL only).
    pub plain_over_plaintext_allowed: bool,
    /// A failed login is answered (SASL_AUTHENTICATION_FAILED) and its connection closed
    /// this long after the failure, ms (Kafka `connection.failed.authentication.delay.ms`).
    /// Default 100, range 0..=60000.
    pub failed_authentication_delay_ms: u64,
    /// Session lifetime after a login, ms (Kafka `connections.max.reauth.ms`, KIP-368):
    /// clients re-authenticate before it ends; a connection whose session has ended is
    /// closed at its next request. 0 = sessions never end. Default 0, range 0 or
    /// 1000..=604800000.
    pub connections_max_reauth_ms: u64,
    /// Largest SASL token a client may send in one SaslAuthenticate, bytes; a larger one
    /// fails the login. Default 8192, range 256..=524288.
    pub token_bytes_max: usize,
    /// SCRAM users created when the data dir has no credential file yet, each
    /// `MECHANISM=[name=USER,password=PASSWORD]` or with `,iterations=N` (4096..=16384).
    /// Default empty.
    pub add_scram: Vec<String>,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            enabled_mechanisms: "SCRAM-SHA-512,SCRAM-SHA-256".to_string(),
            plain_over_plaintext_allowed: false,
            failed_authentication_delay_ms: 100,
            connections_max_reauth_ms: 0,
            token_bytes_max: 8192,
            add_scram: Vec::new(),
        }
    }
}

/// One `add_scram` entry, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapScramUser {
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub user: String,
    pub password: String,
    pub iterations: Option<i32>,
}

impl std::fmt::Debug for BootstrapScramUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapScramUser")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Splits `key=value,key="value, with commas",...`.
fn key_values(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let (value, after) = quoted.split_once('"')?;
                (value, after.strip_prefix(',').unwrap_or(after))
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if !after.is_empty() && rest.len() == after.len() {
            return None;
        }
        pairs.push((key.trim().to_string(), value.to_string()));
        rest = after;
    }
    Some(pairs)
}

/// Parses one `MECHANISM=[name=USER,password=PASSWORD(,iterations=N)]` entry.
pub fn parse_add_scram(entry: &str) -> Result<BootstrapScramUser, ConfigError> {
    const FIELD: &str = "sasl.add_scram";
    // The password is not echoed in errors.
    let shown = entry.split('=').next().unwrap_or_default();
    let (mechanism, body) = entry
        .split_once('=')
        .ok_or_else(|| invalid(FIELD, shown, "expected MECHANISM=[name=USER,password=…]"))?;
    let mechanism = mechanism.trim().to_ascii_uppercase();
    if !SCRAM_MECHANISMS.contains(&mechanism.as_str()) {
        return Err(invalid(
            FIELD,
            shown,
            "the mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512",
        ));
    }
    let body = body
        .trim()
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .ok_or_else(|| invalid(FIELD, shown, "expected [name=USER,password=…]"))?;
    let pairs = key_values(body).ok_or_else(|| invalid(FIELD, shown, "bad key=value list"))?;
    let mut user = None;
    let mut password = None;
    let mut iterations = None;
    for (key, value) in pairs {
        match key.as_str() {
            "name" => user = Some(value),
            "password" => password = Some(value),
            "iterations" => {
                let count: i32 = value
                    .parse()
                    .map_err(|_| invalid(FIELD, shown, "iterations is not a number"))?;
                if !(4096..=16384).contains(&count) {
                    return Err(invalid(FIELD, shown, "iterations must be 4096..=16384"));
                }
                iterations = Some(count);
            }
            other => {
                return Err(invalid(
                    FIELD,
                    shown,
                    format!("unknown key {other} (name, password, iterations)"),
                ));
            }
        }
    }
    match (user, password) {
        (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
            Ok(BootstrapScramUser {
                mechanism,
                user,
                password,
                iterations,
            })
        }
        _ => Err(invalid(FIELD, shown, "name and password are required")),
    }
}

impl SaslConfig {
    /// The enabled mechanisms, in the configured order.
    pub fn mechanisms(&self) -> Result<Vec<String>, ConfigError> {
        const FIELD: &str = "sasl.enabled_mechanisms";
        let mut mechanisms: Vec<String> = Vec::new();
        for name in self.enabled_mechanisms.split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            let name = name.to_ascii_uppercase();
            if !SUPPORTED_MECHANISMS.contains(&name.as_str()) {
                return Err(invalid(
                    FIELD,
                    &name,
                    "supported mechanisms are SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN",
                ));
            }
            if !mechanisms.contains(&name) {
                mechanisms.push(name);
            }
        }
        Ok(mechanisms)
    }

    /// The bootstrap users of `add_scram`.
    pub fn bootstrap_users(&self) -> Result<Vec<BootstrapScramUser>, ConfigError> {
        self.add_scram.iter().map(|e| parse_add_scram(e)).collect()
    }

    /// `Config::validate`'s checks of this section; `sasl_listener` says whether any
    /// listener uses SASL.
    pub(super) fn validate(&self, sasl_listener: bool) -> Result<(), ConfigError> {
        let mechanisms = self.mechanisms()?;
        if sasl_listener && mechanisms.is_empty() {
            return Err(invalid(
                "sasl.enabled_mechanisms",
                &self.enabled_mechanisms,
                "a SASL listener needs at least one mechanism",
            ));
        }
        check(
            "sasl.failed_authentication_delay_ms",
            self.failed_authentication_delay_ms,
            0,
            60_000,
        )?;
        if self.connections_max_reauth_ms != 0 {
            check(
                "sasl.connections_max_reauth_ms",
                self.connections_max_reauth_ms,
                1000,
                604_800_000,
            )?;
        }
        check("sasl.token_bytes_max", self.token_bytes_max, 256, 524_288)?;
        self.bootstrap_users()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_scram_follows_kafka_storage_syntax() {
        let user = parse_add_scram("SCRAM-SHA-512=[name=admin,password=admin-secret]").unwrap();
        assert_eq!(user.mechanism, "SCRAM-SHA-512");
        assert_eq!(
            (user.user.as_str(), user.password.as_str()),
            ("admin", "admin-secret")
        );
        let user =
            parse_add_scram("SCRAM-SHA-256=[name=bob,password=\"a,b=c\",iterations=8192]").unwrap();
        assert_eq!(user.password, "a,b=c");
        assert_eq!(user.iterations, Some(8192));
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-256=name=a,password=b",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[name=,password=b]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=10]",
            "SCRAM-SHA-256=[name=a,password=b,salt=c]",
            "SCRAM-SHA-256=[name=a,password=\"b]",
            "PLAIN",
        ] {
            let error = parse_add_scram(bad).unwrap_err().to_string();
            assert!(!error.contains("password=b"), "password echoed: {error}");
        }
    }

    #[test]
    fn mechanisms_are_checked() {
        let mut config = SaslConfig::default();
        assert_eq!(
            config.mechanisms().unwrap(),
            vec!["SCRAM-SHA-512", "SCRAM-SHA-256"]
        );
        config.enabled_mechanisms = "GSSAPI".to_string();
        assert!(config.validate(false).is_err());
        config.enabled_mechanisms = String::new();
        assert!(config.validate(false).is_ok());
        assert!(config.validate(true).is_err());
    }
}
