//! A connection's SASL login (SaslHandshake v1 + SaslAuthenticate, KIP-152; re-login before
//! the session ends, KIP-368): which requests it may send before it has logged in, the
//! mechanisms it is offered, the exchange in progress, and when its session ends.
//!
//! May import: config, security::sasl. Runs on: the connection's shard; every method runs
//! inline in the connection's reader (stage 1 of the SASL handlers), so the state is always
//! current for the next request.
//! Invariants: on a SASL listener, only ApiVersions, SaslHandshake and SaslAuthenticate are
//! served before a login succeeds; a failed login leaves the session `Failed` and the
//! connection is closed after its answer; a re-login must use the same mechanism and name
//! the same user.

use crate::config::{SaslConfig, SecurityProtocol};
use crate::security::sasl::{CredentialStore, SaslError, SaslExchange, SaslMechanism, SaslStep};
use kafka_protocol::messages::ApiKey;
use std::time::{Duration, Instant};

/// Where the login stands.
enum Stage {
    /// Waiting for SaslHandshake (first login, or a re-login after one).
    AwaitingHandshake,
    /// SaslHandshake chose a mechanism; its first token comes next.
    AwaitingToken(SaslMechanism),
    Exchanging(SaslExchange),
    /// The login failed; the connection closes once its answer is written.
    Failed,
}

/// Whether a request may be served now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Serve,
    /// A request other than ApiVersions/SASL before a login: close the connection.
    NotAuthenticated,
    /// The session ended (`sasl.connections_max_reauth_ms`) without a re-login.
    SessionExpired,
}

/// Why SaslHandshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// UNSUPPORTED_SASL_MECHANISM: not offered on this listener.
    UnsupportedMechanism,
    /// ILLEGAL_SASL_STATE: not a SASL listener, a login already in progress, or a re-login
    /// with another mechanism.
    IllegalState,
}

/// What SaslAuthenticate answers.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthenticateOutcome {
    /// Send the challenge; the exchange goes on.
    Challenge(Vec<u8>),
    /// Logged in as `user`; send `response`; the session lasts `session_lifetime_ms`
    /// (0: no limit).
    Authenticated {
        user: String,
        response: Vec<u8>,
        session_lifetime_ms: i64,
    },
    /// SASL_AUTHENTICATION_FAILED (after the failed-login delay), then close.
    Failed(SaslError),
    /// ILLEGAL_SASL_STATE (no SaslHandshake first), then close.
    IllegalState,
}

pub struct SaslSession {
    /// A SASL listener: requests wait for a login.
    required: bool,
    /// Mechanisms SaslHandshake offers on this listener, in the configured order.
    offered: Vec<SaslMechanism>,
    token_bytes_max: usize,
    session_lifetime: Option<Duration>,
    stage: Stage,
    /// The mechanism and user of the last successful login.
    authenticated: Option<(SaslMechanism, String)>,
    expires_at: Option<Instant>,
}

impl std::fmt::Debug for SaslSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSession")
            .field("required", &self.required)
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

impl SaslSession {
    /// The session of a new connection on a listener of `protocol`. PLAIN is offered on
    /// SASL_SSL, and on SASL_PLAINTEXT only if `plain_over_plaintext_allowed`.
    pub fn new(sasl: &SaslConfig, protocol: SecurityProtocol) -> SaslSession {
        let offered = sasl
            .mechanisms()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| SaslMechanism::from_name(name))
            .filter(|m| {
                *m != SaslMechanism::Plain
                    || protocol.uses_tls()
                    || sasl.plain_over_plaintext_allowed
            })
            .collect();
        SaslSession {
            required: protocol.uses_sasl(),
            offered,
            token_bytes_max: sasl.token_bytes_max,
            session_lifetime: (sasl.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(sasl.connections_max_reauth_ms)),
            stage: Stage::AwaitingHandshake,
            authenticated: None,
            expires_at: None,
        }
    }

    pub fn offered_names(&self) -> Vec<&'static str> {
        self.offered.iter().map(|m| m.name()).collect()
    }

    /// Whether `api` may be served now.
    pub fn gate(&self, api: ApiKey, now: Instant) -> Gate {
        if !self.required
            || matches!(
                api,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
        {
            return Gate::Serve;
        }
        if self.authenticated.is_none() || matches!(self.stage, Stage::Failed) {
            return Gate::NotAuthenticated;
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            return Gate::SessionExpired;
        }
        Gate::Serve
    }

    /// The connection closes after the answer to its current request.
    pub fn failed(&self) -> bool {
        matches!(self.stage, Stage::Failed)
    }

    /// Closes the connection after the current answer (a refused SaslHandshake v0).
    pub fn refuse(&mut self) {
        self.stage = Stage::Failed;
    }

    /// SaslHandshake v1 for `mechanism`.
    pub fn handshake(&mut self, mechanism: &str) -> Result<(), HandshakeRefusal> {
        let refused = |session: &mut SaslSession, why| {
            session.stage = Stage::Failed;
            Err(why)
        };
        if !self.required || !matches!(self.stage, Stage::AwaitingHandshake) {
            return refused(self, HandshakeRefusal::IllegalState);
        }
        let Some(chosen) = SaslMechanism::from_name(mechanism).filter(|m| self.offered.contains(m))
        else {
            return refused(self, HandshakeRefusal::UnsupportedMechanism);
        };
        if let Some((previous, _)) = &self.authenticated
            && *previous != chosen
        {
            // KIP-368: a re-login keeps the mechanism.
            return refused(self, HandshakeRefusal::IllegalState);
        }
        self.stage = Stage::AwaitingToken(chosen);
        Ok(())
    }

    /// SaslAuthenticate with `token`.
    pub fn authenticate(
        &mut self,
        token: &[u8],
        store: &CredentialStore,
        now: Instant,
    ) -> AuthenticateOutcome {
        let mut exchange = match std::mem::replace(&mut self.stage, Stage::Failed) {
            Stage::AwaitingToken(mechanism) => SaslExchange::start(mechanism),
            Stage::Exchanging(exchange) => exchange,
            Stage::AwaitingHandshake | Stage::Failed => return AuthenticateOutcome::IllegalState,
        };
        match exchange.step(token, store, self.token_bytes_max) {
            Ok(SaslStep::Challenge(challenge)) => {
                self.stage = Stage::Exchanging(exchange);
                AuthenticateOutcome::Challenge(challenge)
            }
            Ok(SaslStep::Authenticated { user, response }) => {
                let mechanism = match &exchange {
                    SaslExchange::Plain(_) => SaslMechanism::Plain,
                    SaslExchange::Scram(scram) => SaslMechanism::Scram(scram.mechanism()),
                };
                if let Some((_, previous)) = &self.authenticated
                    && *previous != user
                {
                    // KIP-368: a re-login may not change the principal.
                    return AuthenticateOutcome::Failed(SaslError::AuthenticationFailed);
                }
                self.authenticated = Some((mechanism, user.clone()));
                self.expires_at = self.session_lifetime.map(|lifetime| now + lifetime);
                self.stage = Stage::AwaitingHandshake;
                let session_lifetime_ms = self
                    .session_lifetime
                    .map_or(0, |l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX));
                AuthenticateOutcome::Authenticated {
                    user,
                    response,
                    session_lifetime_ms,
                }
            }
            Err(error) => AuthenticateOutcome::Failed(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sasl::CredentialSet;
    use crate::security::sasl::ScramMechanism;
    use crate::security::sasl::credentials::Upsertion;
    use crate::security::sasl::scram::salted_password;

    fn store() -> std::sync::Arc<CredentialStore> {
        let salt = b"pepper".to_vec();
        let upsertion = Upsertion {
            user: "alice".to_string(),
            mechanism: ScramMechanism::Sha256.id(),
            iterations: 4096,
            salted_password: salted_password(ScramMechanism::Sha256, b"pw", &salt, 4096),
            salt,
        };
        let (set, _) = CredentialSet::default().altered(&[], &[upsertion]);
        CredentialStore::new(set)
    }

    fn config(mechanisms: &str, reauth_ms: u64) -> SaslConfig {
        SaslConfig {
            enabled_mechanisms: mechanisms.to_string(),
            connections_max_reauth_ms: reauth_ms,
            ..SaslConfig::default()
        }
    }

    #[test]
    fn only_sasl_requests_before_a_login_and_none_after_expiry() {
        let store = store();
        let now = Instant::now();
        let mut session = SaslSession::new(
            &config("PLAIN,SCRAM-SHA-256", 1000),
            SecurityProtocol::SaslSsl,
        );
        assert_eq!(session.gate(ApiKey::Metadata, now), Gate::NotAuthenticated);
        assert_eq!(session.gate(ApiKey::ApiVersions, now), Gate::Serve);
        assert_eq!(
            session.authenticate(b"\0alice\0pw", &store, now),
            AuthenticateOutcome::IllegalState,
            "no token before SaslHandshake"
        );
        let mut session = SaslSession::new(
            &config("PLAIN,SCRAM-SHA-256", 1000),
            SecurityProtocol::SaslSsl,
        );
        session.handshake("PLAIN").unwrap();
        let outcome = session.authenticate(b"\0alice\0pw", &store, now);
        assert!(
            matches!(
                outcome,
                AuthenticateOutcome::Authenticated {
                    session_lifetime_ms: 1000,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(session.gate(ApiKey::Metadata, now), Gate::Serve);
        let later = now + Duration::from_millis(1000);
        assert_eq!(session.gate(ApiKey::Metadata, later), Gate::SessionExpired);
        // A re-login with the same mechanism and user renews the session.
        session.handshake("PLAIN").unwrap();
        assert!(matches!(
            session.authenticate(b"\0alice\0pw", &store, later),
            AuthenticateOutcome::Authenticated { .. }
        ));
        assert_eq!(session.gate(ApiKey::Metadata, later), Gate::Serve);
        assert_eq!(
            session.handshake("SCRAM-SHA-256"),
            Err(HandshakeRefusal::IllegalState)
        );
        assert!(session.failed());
    }

    #[test]
    fn plain_is_offered_over_tls_only_unless_allowed() {
        let plaintext = SaslSession::new(
            &config("PLAIN,SCRAM-SHA-512", 0),
            SecurityProtocol::SaslPlaintext,
        );
        assert_eq!(plaintext.offered_names(), vec!["SCRAM-SHA-512"]);
        let mut allowed = config("PLAIN", 0);
        allowed.plain_over_plaintext_allowed = true;
        let session = SaslSession::new(&allowed, SecurityProtocol::SaslPlaintext);
        assert_eq!(session.offered_names(), vec!["PLAIN"]);
        let mut session = SaslSession::new(&config("PLAIN", 0), SecurityProtocol::SaslPlaintext);
        assert_eq!(
            session.handshake("PLAIN"),
            Err(HandshakeRefusal::UnsupportedMechanism)
        );
        let mut plain_listener = SaslSession::new(&config("PLAIN", 0), SecurityProtocol::Plaintext);
        assert_eq!(
            plain_listener.gate(ApiKey::Metadata, Instant::now()),
            Gate::Serve
        );
        assert_eq!(
            plain_listener.handshake("PLAIN"),
            Err(HandshakeRefusal::IllegalState)
        );
    }

    #[test]
    fn a_failed_login_fails_the_session() {
        let store = store();
        let mut session = SaslSession::new(&config("PLAIN", 0), SecurityProtocol::SaslSsl);
        session.handshake("PLAIN").unwrap();
        assert_eq!(
            session.authenticate(b"\0alice\0wrong", &store, Instant::now()),
            AuthenticateOutcome::Failed(SaslError::AuthenticationFailed)
        );
        assert!(session.failed());
        assert_eq!(
            session.gate(ApiKey::Metadata, Instant::now()),
            Gate::NotAuthenticated
        );
    }
}
