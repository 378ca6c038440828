//! The credentials every shard checks logins against: one set per broker process, read by
//! all shards, replaced whole by a change (AlterUserScramCredentials on a single broker).
//! Reads take a snapshot (`Arc`) under a lock held for a pointer copy; changes are
//! serialised and persisted before they are visible, so a client never logs in with a
//! credential that a crash would forget.
//!
//! Not on the data path: locks here are taken per login and per credential change only.

use super::credentials::{CredentialSet, ITERATIONS_DEFAULT, ScramCredential};
use super::scram::hmac;
use super::{ScramMechanism, random_bytes};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Bytes of the secret decoy salts are derived from.
const DECOY_SECRET_BYTES: usize = 32;

pub struct CredentialStore {
    current: RwLock<Arc<CredentialSet>>,
    /// Held across a change and its persistence, so changes apply one at a time.
    writer: Mutex<()>,
    /// A per-process secret: the salt shown to an unknown user is HMAC(secret, name), the
    /// same on every try, so it cannot be told from a real one by asking twice.
    decoy_secret: Vec<u8>,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore").finish_non_exhaustive()
    }
}

impl CredentialStore {
    pub fn new(set: CredentialSet) -> Arc<CredentialStore> {
        // Without OS randomness the decoy salts are still per-user constants; only their
        // unpredictability is lost.
        let decoy_secret = random_bytes(DECOY_SECRET_BYTES).unwrap_or_default();
        Arc::new(CredentialStore {
            current: RwLock::new(Arc::new(set)),
            writer: Mutex::new(()),
            decoy_secret,
        })
    }

    /// The credentials now.
    pub fn snapshot(&self) -> Arc<CredentialSet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn has_credential(&self, user: &str, mechanism: ScramMechanism) -> bool {
        self.snapshot().get(user, mechanism).is_some()
    }

    /// The user's credential, or (false) a decoy that no proof verifies against.
    pub fn credential_or_decoy(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> (ScramCredential, bool) {
        if let Some(credential) = self.snapshot().get(user, mechanism) {
            return (credential.clone(), true);
        }
        let salt = hmac(mechanism, &self.decoy_secret, user.as_bytes());
        let decoy = ScramCredential {
            salt,
            stored_key: vec![0u8; mechanism.digest_bytes()],
            server_key: vec![0u8; mechanism.digest_bytes()],
            iterations: ITERATIONS_DEFAULT,
        };
        (decoy, false)
    }

    /// Changes the credentials: `change` makes the next set from the current one (and an
    /// outcome), `persist` stores it; only then do logins see it. Blocking (`persist`
    /// writes a file): call it off the shard threads.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&CredentialSet) -> (CredentialSet, T),
        persist: impl FnOnce(&CredentialSet) -> Result<(), E>,
    ) -> Result<T, E> {
        let _serialised = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        let (next, outcome) = change(&current);
        if next != *current {
            persist(&next)?;
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        }
        Ok(outcome)
    }
}
