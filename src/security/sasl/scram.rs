//! The server side of SCRAM (RFC 5802) with SHA-256 (RFC 7677) or SHA-512, as Kafka runs
//! it: no channel binding (`n,,` or `y,,` headers), no extensions, an optional authzid that
//! must name the user itself. Also the SCRAM arithmetic the credentials are made with.
//!
//! An unknown user is not told apart from a wrong password: the exchange goes on with a
//! decoy credential (a salt derived from the user name, so it is the same every time) and
//! fails at the proof, as a wrong password does.

use super::store::CredentialStore;
use super::{SaslError, SaslStep, ScramCredential, ScramMechanism, random_bytes, secrets_equal};
use data_encoding::{BASE64, HEXLOWER};
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;

const MECHANISM_NAME: &str = "SCRAM";
/// Random bytes of the server's part of the nonce (hex: letters and digits only, as Kafka's
/// own nonces; librdkafka 2.0 mis-parses a nonce with `=` or `/` in it).
const SERVER_NONCE_BYTES: usize = 24;

fn hmac_algorithm(mechanism: ScramMechanism) -> hmac::Algorithm {
    match mechanism {
        ScramMechanism::Sha256 => hmac::HMAC_SHA256,
        ScramMechanism::Sha512 => hmac::HMAC_SHA512,
    }
}

/// HMAC(key, data).
pub fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac_algorithm(mechanism), key);
    hmac::sign(&key, data).as_ref().to_vec()
}

/// H(data).
pub fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    let algorithm = match mechanism {
        ScramMechanism::Sha256 => &digest::SHA256,
        ScramMechanism::Sha512 => &digest::SHA512,
    };
    digest::digest(algorithm, data).as_ref().to_vec()
}

/// Hi(password, salt, iterations): PBKDF2 with HMAC of the mechanism's hash. `iterations`
/// below 1 counts as 1 (callers bound it to `credentials::ITERATIONS_MIN..=MAX`).
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: i32,
) -> Vec<u8> {
    let algorithm = match mechanism {
        ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
    };
    let iterations =
        NonZeroU32::new(u32::try_from(iterations).unwrap_or(1).max(1)).unwrap_or(NonZeroU32::MIN);
    let mut out = vec![0u8; mechanism.digest_bytes()];
    pbkdf2::derive(algorithm, iterations, salt, password, &mut out);
    out
}

/// Where the exchange stands.
enum State {
    ExpectClientFirst,
    ExpectClientFinal(Box<Pending>),
    Finished,
}

/// What the server remembers between its first message and the client's final one.
struct Pending {
    user: String,
    credential: ScramCredential,
    /// False for a decoy credential (unknown user): the proof cannot verify.
    known_user: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// One SCRAM login on the server.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
    /// Tests fix the server nonce; otherwise it is random.
    fixed_server_nonce: Option<String>,
}

fn malformed(reason: &'static str) -> SaslError {
    SaslError::Malformed {
        mechanism: MECHANISM_NAME,
        reason,
    }
}

/// A SCRAM `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(index) = rest.find('=') {
        out.push_str(&rest[..index]);
        let escape = rest.get(index..index + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("bad escape in user name")),
        }
        rest = &rest[index + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of attribute `key` (`key=value`) in `part`.
fn attribute(part: Option<&str>, key: char) -> Result<&str, SaslError> {
    let part = part.ok_or_else(|| malformed("missing attribute"))?;
    let mut chars = part.chars();
    if chars.next() != Some(key) || chars.next() != Some('=') {
        return Err(malformed("unexpected attribute"));
    }
    Ok(&part[2..])
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::ExpectClientFirst,
            fixed_server_nonce: None,
        }
    }

    /// A server whose nonce part is `nonce` (test vectors).
    pub fn with_server_nonce(mechanism: ScramMechanism, nonce: &str) -> ScramServer {
        ScramServer {
            fixed_server_nonce: Some(nonce.to_string()),
            ..ScramServer::new(mechanism)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    pub fn step(&mut self, token: &[u8], store: &CredentialStore) -> Result<SaslStep, SaslError> {
        let message = std::str::from_utf8(token).map_err(|_| malformed("not UTF-8"))?;
        match std::mem::replace(&mut self.state, State::Finished) {
            State::ExpectClientFirst => {
                let (pending, server_first) = self.client_first(message, store)?;
                self.state = State::ExpectClientFinal(Box::new(pending));
                Ok(SaslStep::Challenge(server_first.into_bytes()))
            }
            State::ExpectClientFinal(pending) => self.client_final(message, *pending),
            State::Finished => Err(SaslError::Finished),
        }
    }

    fn client_first(
        &self,
        message: &str,
        store: &CredentialStore,
    ) -> Result<(Pending, String), SaslError> {
        // gs2-header: a channel-binding flag, an optional authzid, then the bare message.
        let mut parts = message.splitn(3, ',');
        let binding = parts.next().unwrap_or_default();
        if binding != "n" && binding != "y" {
            return Err(malformed("channel binding is not supported"));
        }
        let authzid = parts.next().ok_or_else(|| malformed("no gs2 header"))?;
        let client_first_bare = parts.next().ok_or_else(|| malformed("no client-first"))?;
        let gs2_header = format!("{binding},{authzid},");
        let mut attributes = client_first_bare.split(',');
        if attributes
            .clone()
            .next()
            .is_some_and(|a| a.starts_with("m="))
        {
            return Err(malformed("mandatory extensions are not supported"));
        }
        let user = decode_saslname(attribute(attributes.next(), 'n')?)?;
        let client_nonce = attribute(attributes.next(), 'r')?;
        if user.is_empty() || client_nonce.is_empty() {
            return Err(malformed("empty user name or nonce"));
        }
        if !client_nonce
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ',')
        {
            return Err(malformed("nonce is not printable"));
        }
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if decode_saslname(authzid)? != user {
                return Err(SaslError::AuthenticationFailed);
            }
        } else if !authzid.is_empty() {
            return Err(malformed("bad authzid"));
        }
        let server_nonce = match &self.fixed_server_nonce {
            Some(nonce) => nonce.clone(),
            None => HEXLOWER.encode(
                &random_bytes(SERVER_NONCE_BYTES).map_err(|_| SaslError::AuthenticationFailed)?,
            ),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let (credential, known_user) = store.credential_or_decoy(&user, self.mechanism);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let pending = Pending {
            user,
            credential,
            known_user,
            gs2_header,
            client_first_bare: client_first_bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((pending, server_first))
    }

    fn client_final(&self, message: &str, pending: Pending) -> Result<SaslStep, SaslError> {
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attribute(attributes.next(), 'c')?;
        let nonce = attribute(attributes.next(), 'r')?;
        if attributes.next().is_some() {
            return Err(malformed("extensions are not supported"));
        }
        let binding = BASE64
            .decode(binding.as_bytes())
            .map_err(|_| malformed("channel binding is not base64"))?;
        if binding != pending.gs2_header.as_bytes() {
            return Err(malformed("channel binding differs from the gs2 header"));
        }
        // Kafka checks `endsWith`, not equality: librdkafka before 2.1 sends its client
        // nonce again in front of the combined one (kcat 1.7 with librdkafka 2.0.2 does).
        if !nonce.ends_with(&pending.nonce) {
            return Err(malformed("nonce differs from the server's"));
        }
        let proof = BASE64
            .decode(proof.as_bytes())
            .map_err(|_| malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            pending.client_first_bare, pending.server_first
        );
        let credential = &pending.credential;
        let client_signature = hmac(
            self.mechanism,
            &credential.stored_key,
            auth_message.as_bytes(),
        );
        if proof.len() != client_signature.len() {
            return Err(SaslError::AuthenticationFailed);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let verified = secrets_equal(&hash(self.mechanism, &client_key), &credential.stored_key);
        if !(verified && pending.known_user) {
            return Err(SaslError::AuthenticationFailed);
        }
        let server_signature = hmac(
            self.mechanism,
            &credential.server_key,
            auth_message.as_bytes(),
        );
        Ok(SaslStep::Authenticated {
            user: pending.user,
            response: format!("v={}", BASE64.encode(&server_signature)).into_bytes(),
        })
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
