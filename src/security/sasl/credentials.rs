//! Salted SCRAM credentials (Kafka's `ScramCredential`): salt, stored key, server key and
//! iteration count per user and mechanism, never a password. The set of them, its file
//! form (JSON, binary fields in base64), and the changes AlterUserScramCredentials
//! (KIP-554) makes to it.
//!
//! Invariants: every credential's keys are as long as its mechanism's hash; every change
//! admitted here has `ITERATIONS_MIN..=ITERATIONS_MAX` iterations and a non-empty user name.

use super::scram::{hash, hmac, salted_password};
use super::{ScramMechanism, random_bytes};
use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations`/`maxIterations`).
pub const ITERATIONS_MIN: i32 = 4096;
pub const ITERATIONS_MAX: i32 = 16384;
/// Iterations of a credential made from a password without a count (Kafka's default).
pub const ITERATIONS_DEFAULT: i32 = 4096;
/// Bytes of a salt the broker makes.
const SALT_BYTES: usize = 32;
/// The version of the credential file's format.
const FILE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("unknown SCRAM mechanism {0}")]
    UnknownMechanism(String),
    #[error("iterations {0} are outside {ITERATIONS_MIN}..={ITERATIONS_MAX}")]
    Iterations(i32),
    #[error("the user name is empty")]
    EmptyUser,
    #[error("the salt or salted password is empty")]
    EmptySecret,
    #[error("no random bytes from the operating system")]
    Random,
    #[error("not a credential file: {0}")]
    Format(String),
}

/// One user's credential for one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A fresh random salt (what a client or the CLI salts a new password with).
pub fn new_salt() -> Result<Vec<u8>, CredentialError> {
    random_bytes(SALT_BYTES).map_err(|_| CredentialError::Random)
}

fn check_iterations(iterations: i32) -> Result<(), CredentialError> {
    if (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        Ok(())
    } else {
        Err(CredentialError::Iterations(iterations))
    }
}

impl ScramCredential {
    /// The credential of a client-side salted password (what AlterUserScramCredentials
    /// carries): StoredKey = H(HMAC(salted, "Client Key")), ServerKey = HMAC(salted,
    /// "Server Key").
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> Result<ScramCredential, CredentialError> {
        check_iterations(iterations)?;
        if salted.is_empty() || salt.is_empty() {
            return Err(CredentialError::EmptySecret);
        }
        let client_key = hmac(mechanism, salted, b"Client Key");
        Ok(ScramCredential {
            salt,
            stored_key: hash(mechanism, &client_key),
            server_key: hmac(mechanism, salted, b"Server Key"),
            iterations,
        })
    }

    /// The credential of `password` with a fresh random salt.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        iterations: i32,
    ) -> Result<ScramCredential, CredentialError> {
        check_iterations(iterations)?;
        let salt = new_salt()?;
        let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, &salted, salt, iterations)
    }
}

/// Every user's credentials. Immutable once shared: a change makes a new set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialSet {
    credentials: BTreeMap<(String, ScramMechanism), ScramCredential>,
}

/// A credential as the file holds it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredCredential {
    user: String,
    mechanism: String,
    iterations: i32,
    salt: String,
    stored_key: String,
    server_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialFile {
    version: u32,
    credentials: Vec<StoredCredential>,
}

/// One upsertion of AlterUserScramCredentials.
#[derive(Debug, Clone)]
pub struct Upsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// Why one user's alteration was refused, with Kafka's error for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterRefusal {
    /// UNSUPPORTED_SASL_MECHANISM.
    UnknownMechanism,
    /// UNACCEPTABLE_CREDENTIAL, with Kafka's message.
    Unacceptable(String),
    /// DUPLICATE_RESOURCE: the request names the user and mechanism twice.
    Duplicate,
    /// RESOURCE_NOT_FOUND: deleting a credential that does not exist.
    NotFound,
}

/// Each user's outcome of an alteration, in request order.
pub type AlterOutcomes = Vec<(String, Result<(), AlterRefusal>)>;

impl CredentialSet {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.credentials.get(&(user.to_string(), mechanism))
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Users with at least one credential, and theirs, in name order.
    pub fn users(&self) -> BTreeMap<&str, Vec<(ScramMechanism, i32)>> {
        let mut users: BTreeMap<&str, Vec<(ScramMechanism, i32)>> = BTreeMap::new();
        for ((user, mechanism), credential) in &self.credentials {
            users
                .entry(user.as_str())
                .or_default()
                .push((*mechanism, credential.iterations));
        }
        users
    }

    pub fn insert(&mut self, user: &str, mechanism: ScramMechanism, credential: ScramCredential) {
        self.credentials
            .insert((user.to_string(), mechanism), credential);
    }

    pub fn remove(&mut self, user: &str, mechanism: ScramMechanism) -> bool {
        self.credentials
            .remove(&(user.to_string(), mechanism))
            .is_some()
    }

    /// Applies AlterUserScramCredentials as Kafka does: a user is altered only if all of
    /// its changes are acceptable; users are independent. Returns the new set and each
    /// user's outcome, in the order users first appear in the request.
    pub fn altered(
        &self,
        deletions: &[(String, i8)],
        upsertions: &[Upsertion],
    ) -> (CredentialSet, AlterOutcomes) {
        let mut outcomes: AlterOutcomes = Vec::new();
        let mut seen: Vec<(String, i8)> = Vec::new();
        let names = deletions
            .iter()
            .map(|(user, mechanism)| (user, *mechanism))
            .chain(upsertions.iter().map(|u| (&u.user, u.mechanism)));
        for (user, mechanism) in names {
            if !outcomes.iter().any(|(u, _)| u == user) {
                outcomes.push((user.clone(), Ok(())));
            }
            let key = (user.clone(), mechanism);
            if seen.contains(&key) {
                refuse(&mut outcomes, user, AlterRefusal::Duplicate);
            }
            seen.push(key);
        }
        let mut next = self.clone();
        let mut changes: Vec<(String, ScramMechanism, Option<ScramCredential>)> = Vec::new();
        for (user, mechanism) in deletions {
            match ScramMechanism::from_id(*mechanism) {
                None => refuse(&mut outcomes, user, AlterRefusal::UnknownMechanism),
                Some(_) if user.is_empty() => refuse(
                    &mut outcomes,
                    user,
                    AlterRefusal::Unacceptable("Username must not be empty".to_string()),
                ),
                Some(m) if self.get(user, m).is_none() => {
                    refuse(&mut outcomes, user, AlterRefusal::NotFound)
                }
                Some(m) => changes.push((user.clone(), m, None)),
            }
        }
        for upsertion in upsertions {
            let user = &upsertion.user;
            let Some(mechanism) = ScramMechanism::from_id(upsertion.mechanism) else {
                refuse(&mut outcomes, user, AlterRefusal::UnknownMechanism);
                continue;
            };
            let made = if user.is_empty() {
                Err(CredentialError::EmptyUser)
            } else {
                ScramCredential::from_salted_password(
                    mechanism,
                    &upsertion.salted_password,
                    upsertion.salt.clone(),
                    upsertion.iterations,
                )
            };
            match made {
                Ok(credential) => changes.push((user.clone(), mechanism, Some(credential))),
                Err(error) => refuse(&mut outcomes, user, unacceptable(&error, upsertion)),
            }
        }
        for (user, mechanism, credential) in changes {
            let accepted = outcomes.iter().any(|(u, r)| *u == user && r.is_ok());
            match (accepted, credential) {
                (false, _) => {}
                (true, Some(credential)) => next.insert(&user, mechanism, credential),
                (true, None) => {
                    next.remove(&user, mechanism);
                }
            }
        }
        (next, outcomes)
    }

    /// The file form.
    pub fn to_json(&self) -> Vec<u8> {
        let file = CredentialFile {
            version: FILE_FORMAT_VERSION,
            credentials: self
                .credentials
                .iter()
                .map(|((user, mechanism), c)| StoredCredential {
                    user: user.clone(),
                    mechanism: mechanism.name().to_string(),
                    iterations: c.iterations,
                    salt: BASE64.encode(&c.salt),
                    stored_key: BASE64.encode(&c.stored_key),
                    server_key: BASE64.encode(&c.server_key),
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Reads the file form; anything inconsistent is an error, never skipped.
    pub fn from_json(bytes: &[u8]) -> Result<CredentialSet, CredentialError> {
        let format = |reason: String| CredentialError::Format(reason);
        let file: CredentialFile =
            serde_json::from_slice(bytes).map_err(|e| format(e.to_string()))?;
        if file.version != FILE_FORMAT_VERSION {
            return Err(format(format!("unknown format version {}", file.version)));
        }
        let mut set = CredentialSet::default();
        for stored in file.credentials {
            let mechanism = ScramMechanism::from_name(&stored.mechanism)
                .ok_or_else(|| CredentialError::UnknownMechanism(stored.mechanism.clone()))?;
            let decode = |field: &str, text: &str| {
                BASE64
                    .decode(text.as_bytes())
                    .map_err(|e| format(format!("{} {field}: {e}", stored.user)))
            };
            let credential = ScramCredential {
                salt: decode("salt", &stored.salt)?,
                stored_key: decode("stored_key", &stored.stored_key)?,
                server_key: decode("server_key", &stored.server_key)?,
                iterations: stored.iterations,
            };
            let digest = mechanism.digest_bytes();
            if stored.user.is_empty()
                || stored.iterations < 1
                || credential.salt.is_empty()
                || credential.stored_key.len() != digest
                || credential.server_key.len() != digest
            {
                return Err(format(format!(
                    "credential of {} ({}) is inconsistent",
                    stored.user, stored.mechanism
                )));
            }
            set.insert(&stored.user, mechanism, credential);
        }
        Ok(set)
    }
}

fn refuse(outcomes: &mut [(String, Result<(), AlterRefusal>)], user: &str, why: AlterRefusal) {
    if let Some((_, outcome)) = outcomes.iter_mut().find(|(u, _)| u == user)
        && outcome.is_ok()
    {
        *outcome = Err(why);
    }
}

/// Kafka's messages for an unacceptable upsertion.
fn unacceptable(error: &CredentialError, upsertion: &Upsertion) -> AlterRefusal {
    let message = match error {
        CredentialError::Iterations(i) if *i < ITERATIONS_MIN => format!(
            "Too few iterations: {i} < {ITERATIONS_MIN} for user {}",
            upsertion.user
        ),
        CredentialError::Iterations(i) => format!(
            "Too many iterations: {i} > {ITERATIONS_MAX} for user {}",
            upsertion.user
        ),
        CredentialError::EmptyUser => "Username must not be empty".to_string(),
        other => other.to_string(),
    };
    AlterRefusal::Unacceptable(message)
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
