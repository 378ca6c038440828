//! `<data_dir>/scram_credentials.json`: the SCRAM credentials of a single broker (salted
//! keys only, never a password), written like `topics.json` (temp file, fsync, rename,
//! directory fsync) and read at start-up. The bootstrap users of `sasl.add_scram` are
//! created when the file does not exist yet, and written at once.
//!
//! May import: `crate::config`, `crate::security::sasl`, `catalog::write_atomically`.
//! Runs on: the main thread at start-up (load) and a shard's blocking pool (save).
//! Invariant: a damaged file stops start-up with its path and what is wrong; it is never
//! discarded or rewritten.

use super::catalog::write_atomically;
use crate::config::{ConfigError, SaslConfig};
use crate::security::sasl::credentials::{CredentialError, ITERATIONS_DEFAULT};
use crate::security::sasl::{CredentialSet, ScramCredential, ScramMechanism};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const SCRAM_CREDENTIALS_FILE: &str = "scram_credentials.json";

#[derive(Debug, Error)]
pub enum ScramCredentialsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged ({source}); restore it from a backup or remove it to start \
         without SASL users"
    )]
    Corrupt {
        path: PathBuf,
        source: CredentialError,
    },
    #[error("sasl.add_scram: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SCRAM_CREDENTIALS_FILE)
}

/// Writes the credentials durably.
pub fn save(data_dir: &Path, set: &CredentialSet) -> Result<(), ScramCredentialsError> {
    let path = path(data_dir);
    write_atomically(&path, &set.to_json()).map_err(|source| ScramCredentialsError::Io {
        path: path.clone(),
        source,
    })
}

/// The credentials of the data dir; when it has none yet, the bootstrap users of
/// `sasl.add_scram` (saved at once, so they are created exactly once).
pub fn load_or_bootstrap(
    data_dir: &Path,
    sasl: &SaslConfig,
) -> Result<CredentialSet, ScramCredentialsError> {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let set = CredentialSet::from_json(&bytes)
                .map_err(|source| ScramCredentialsError::Corrupt { path, source })?;
            if !sasl.add_scram.is_empty() {
                tracing::info!(
                    "sasl.add_scram ignored: the data dir already has its SCRAM credentials"
                );
            }
            Ok(set)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let users = sasl.bootstrap_users()?;
            if users.is_empty() {
                return Ok(CredentialSet::default());
            }
            let mut set = CredentialSet::default();
            for user in users {
                let mechanism = ScramMechanism::from_name(&user.mechanism).ok_or_else(|| {
                    ScramCredentialsError::Bootstrap(format!("unknown {}", user.mechanism))
                })?;
                let iterations = user.iterations.unwrap_or(ITERATIONS_DEFAULT);
                let credential =
                    ScramCredential::from_password(mechanism, &user.password, iterations)
                        .map_err(|e| ScramCredentialsError::Bootstrap(e.to_string()))?;
                set.insert(&user.user, mechanism, credential);
                tracing::info!(user = %user.user, mechanism = mechanism.name(), "bootstrap SCRAM user created");
            }
            save(data_dir, &set)?;
            Ok(set)
        }
        Err(source) => Err(ScramCredentialsError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_once_then_load_and_refuse_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut sasl = SaslConfig::default();
        assert!(load_or_bootstrap(dir.path(), &sasl).unwrap().is_empty());
        assert!(!path(dir.path()).exists(), "nothing to write without users");
        sasl.add_scram = vec!["SCRAM-SHA-512=[name=admin,password=admin-secret]".to_string()];
        let set = load_or_bootstrap(dir.path(), &sasl).unwrap();
        assert!(set.get("admin", ScramMechanism::Sha512).is_some());
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains("admin-secret"));
        // Applied once: a later start with other bootstrap users keeps the file's.
        sasl.add_scram = vec!["SCRAM-SHA-256=[name=other,password=x]".to_string()];
        let again = load_or_bootstrap(dir.path(), &sasl).unwrap();
        assert_eq!(again, set);
        std::fs::write(path(dir.path()), &text.as_bytes()[..text.len() / 2]).unwrap();
        let error = load_or_bootstrap(dir.path(), &sasl)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(SCRAM_CREDENTIALS_FILE) && error.contains("damaged"),
            "{error}"
        );
        assert_eq!(
            std::fs::read(path(dir.path())).unwrap().len(),
            text.len() / 2,
            "a damaged file is left as it is"
        );
    }
}
