//! The server side of PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, checked
//! against the user's stored SCRAM credential (SCRAM-SHA-512 if it has one, else
//! SCRAM-SHA-256) by salting the password the same way: no plain password is stored.
//! Only offered where the server allows it (TLS, or `sasl.plain_over_plaintext_allowed`).

use super::scram::{hash, hmac, salted_password};
use super::store::CredentialStore;
use super::{SaslError, SaslStep, ScramMechanism, secrets_equal};

const MECHANISM_NAME: &str = "PLAIN";

/// One PLAIN login: a single token.
pub struct PlainServer {
    finished: bool,
}

impl Default for PlainServer {
    fn default() -> Self {
        PlainServer::new()
    }
}

fn malformed(reason: &'static str) -> SaslError {
    SaslError::Malformed {
        mechanism: MECHANISM_NAME,
        reason,
    }
}

impl PlainServer {
    pub fn new() -> PlainServer {
        PlainServer { finished: false }
    }

    pub fn step(&mut self, token: &[u8], store: &CredentialStore) -> Result<SaslStep, SaslError> {
        if std::mem::replace(&mut self.finished, true) {
            return Err(SaslError::Finished);
        }
        let mut parts = token.split(|byte| *byte == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected authzid NUL user NUL password"));
        };
        let user = std::str::from_utf8(user).map_err(|_| malformed("user is not UTF-8"))?;
        if user.is_empty() || password.is_empty() {
            return Err(malformed("empty user name or password"));
        }
        if !authzid.is_empty() && authzid != user.as_bytes() {
            // Kafka: "Authentication failed: Client requested an authorization id that is
            // different from username".
            return Err(SaslError::AuthenticationFailed);
        }
        let mechanism = [ScramMechanism::Sha512, ScramMechanism::Sha256]
            .into_iter()
            .find(|m| store.has_credential(user, *m))
            .unwrap_or(ScramMechanism::Sha512);
        // A decoy for an unknown user costs the same PBKDF2 as a real check.
        let (credential, known_user) = store.credential_or_decoy(user, mechanism);
        let salted = salted_password(mechanism, password, &credential.salt, credential.iterations);
        let stored_key = hash(mechanism, &hmac(mechanism, &salted, b"Client Key"));
        if secrets_equal(&stored_key, &credential.stored_key) && known_user {
            Ok(SaslStep::Authenticated {
                user: user.to_string(),
                response: Vec::new(),
            })
        } else {
            Err(SaslError::AuthenticationFailed)
        }
    }
}
