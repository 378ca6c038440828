//! Kafka listeners (`server.listen`, `server.advertised_listener`,
//! `server.listener_security_protocol_map`, `server.inter_broker_listener`) and the `[tls]`
//! section: parsing Kafka's `NAME://HOST:PORT,...` syntax into one `ListenerSpec` per
//! listener, and their validation.
//!
//! Owns: the listener list a broker serves and advertises. May import: nothing from this crate
//! but `super`. Invariant: `ServerConfig::listeners` on a validated config returns at least
//! one listener, names unique, every protocol supported by this build.

use super::{ConfigError, ServerConfig, check};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Kafka's security protocols (`security.protocol`), with Kafka's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's id of the protocol (the metadata log's `security_protocol`).
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    pub fn from_id(id: i16) -> Option<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|protocol| protocol.id() == id)
    }

    /// Whether connections on such a listener must log in with SASL first.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Whether connections on such a listener speak TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// One Kafka listener: where it binds, what it speaks, what it tells clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener name (`PLAINTEXT`, `SSL`, or a name from the protocol map), upper case.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// `host:port` to bind (an empty host binds every address).
    pub bind: String,
    /// Host and port Metadata, FindCoordinator and DescribeCluster give clients that came in
    /// on this listener (and the broker registration carries in cluster mode).
    pub advertised_host: String,
    pub advertised_port: u16,
}

/// `[tls]`: the certificate every SSL listener presents, and client certificates (mTLS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain (leaf first). Required by an SSL listener.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1). Required by an SSL
    /// listener.
    pub key_file: Option<PathBuf>,
    /// PEM file with the CA certificates client certificates must chain to; set, SSL
    /// listeners ask clients for a certificate (mTLS). Default unset (no client certificates).
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `required` refuses a client without a valid certificate,
    /// `requested` lets it in as `User:ANONYMOUS` (Kafka `ssl.client.auth`).
    /// Default required.
    pub client_auth: ClientAuth,
    /// A client must finish its TLS handshake within this time of connecting, or it is
    /// closed, ms. Default 10000, range 100..=600000.
    pub handshake_timeout_ms: u64,
    /// TLS handshakes in progress per shard; a connection beyond it is closed at once.
    /// Default 256, range 1..=65536.
    pub handshakes_inflight_max: usize,
    /// How often each shard checks the certificate, key and CA files for changes (size,
    /// modification time), ms; changed files are loaded and new connections use them.
    /// 0 disables reloading. Default 5000, range 0 or 100..=86400000.
    pub reload_check_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    Required,
    Requested,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            client_auth: ClientAuth::Required,
            handshake_timeout_ms: 10_000,
            handshakes_inflight_max: 256,
            reload_check_interval_ms: 5_000,
        }
    }
}

fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Splits `host:port` (host may be `[v6]` or empty) into host and port.
fn split_host_port(field: &'static str, address: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid(field, address, "expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(field, address, "the port is not a number 0..=65535"))?;
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(invalid(field, address, "write an IPv6 host as [ADDRESS]"));
    }
    Ok((host.to_string(), port))
}

/// One `NAME://HOST:PORT` (or bare `HOST:PORT`, meaning PLAINTEXT) entry.
fn split_entry(field: &'static str, entry: &str) -> Result<(Option<String>, String), ConfigError> {
    match entry.split_once("://") {
        Some((name, address)) => {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(invalid(
                    field,
                    entry,
                    "a listener name is letters, digits, _ or -",
                ));
            }
            Ok((Some(name.to_ascii_uppercase()), address.to_string()))
        }
        None => Ok((None, entry.to_string())),
    }
}

fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `listener_security_protocol_map`: `NAME:PROTOCOL,...`.
fn protocol_map(server: &ServerConfig) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    const FIELD: &str = "server.listener_security_protocol_map";
    entries(&server.listener_security_protocol_map)
        .map(|entry| {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| invalid(FIELD, entry, "expected NAME:PROTOCOL"))?;
            let protocol = SecurityProtocol::parse(protocol.trim())
                .ok_or_else(|| invalid(FIELD, entry, "unknown security protocol"))?;
            Ok((name.trim().to_ascii_uppercase(), protocol))
        })
        .collect()
}

/// The host clients are told for a bind host: a wildcard becomes `localhost`; brackets go.
fn advertisable_host(host: &str) -> String {
    match host {
        "0.0.0.0" | "[::]" | "::" | "" => "localhost".to_string(),
        other => other
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    }
}

impl ServerConfig {
    /// Every listener, in the order of `listen`, with its protocol and advertised address.
    pub fn listeners(&self) -> Result<Vec<ListenerSpec>, ConfigError> {
        const LISTEN: &str = "server.listen";
        let map = protocol_map(self)?;
        let mut listeners: Vec<ListenerSpec> = Vec::new();
        for entry in entries(&self.listen) {
            let (name, address) = split_entry(LISTEN, entry)?;
            let name = name.unwrap_or_else(|| "PLAINTEXT".to_string());
            let protocol = map
                .iter()
                .find(|(mapped, _)| *mapped == name)
                .map(|(_, protocol)| *protocol)
                .or_else(|| SecurityProtocol::parse(&name))
                .ok_or_else(|| {
                    invalid(
                        LISTEN,
                        entry,
                        format!(
                            "listener name {name} is neither a security protocol nor in \
                             server.listener_security_protocol_map"
                        ),
                    )
                })?;
            let (host, port) = split_host_port(LISTEN, &address)?;
            if listeners.iter().any(|l| l.name == name) {
                return Err(invalid(
                    LISTEN,
                    entry,
                    format!("listener {name} appears twice"),
                ));
            }
            let bind = if host.is_empty() {
                format!("0.0.0.0:{port}")
            } else {
                address.clone()
            };
            listeners.push(ListenerSpec {
                name,
                protocol,
                bind,
                advertised_host: advertisable_host(&host),
                advertised_port: port,
            });
        }
        if listeners.is_empty() {
            return Err(invalid(
                LISTEN,
                &self.listen,
                "at least one listener is needed",
            ));
        }
        self.apply_advertised(&mut listeners)?;
        Ok(listeners)
    }

    fn apply_advertised(&self, listeners: &mut [ListenerSpec]) -> Result<(), ConfigError> {
        const FIELD: &str = "server.advertised_listener";
        let Some(advertised) = self.advertised_listener.as_deref() else {
            return Ok(());
        };
        let all: Vec<&str> = entries(advertised).collect();
        for entry in &all {
            let (name, address) = split_entry(FIELD, entry)?;
            let index = match name {
                Some(name) => listeners
                    .iter()
                    .position(|l| l.name == name)
                    .ok_or_else(|| invalid(FIELD, entry, format!("no listener named {name}")))?,
                // One bare HOST:PORT: the first listener's (the flag's meaning before
                // listeners had names).
                None if all.len() == 1 => 0,
                None => {
                    return Err(invalid(
                        FIELD,
                        entry,
                        "name each listener: NAME://HOST:PORT",
                    ));
                }
            };
            let (host, port) = split_host_port(FIELD, &address)?;
            listeners[index].advertised_host = advertisable_host(&host);
            listeners[index].advertised_port = port;
        }
        Ok(())
    }

    /// The listener other brokers reach this one on (cluster mode): `inter_broker_listener`,
    /// else the first PLAINTEXT listener.
    pub fn inter_broker_listener(&self) -> Result<ListenerSpec, ConfigError> {
        const FIELD: &str = "server.inter_broker_listener";
        let listeners = self.listeners()?;
        let chosen = match self.inter_broker_listener.as_deref() {
            Some(name) => listeners
                .into_iter()
                .find(|l| l.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    invalid(FIELD, name, "no listener of server.listen has this name")
                })?,
            None => listeners
                .into_iter()
                .find(|l| l.protocol == SecurityProtocol::Plaintext)
                .ok_or_else(|| {
                    invalid(
                        FIELD,
                        "",
                        "cluster mode needs a PLAINTEXT listener for inter-broker traffic",
                    )
                })?,
        };
        if chosen.protocol != SecurityProtocol::Plaintext {
            return Err(invalid(
                FIELD,
                &chosen.name,
                format!(
                    "inter-broker traffic over {} is not supported yet; name a PLAINTEXT listener",
                    chosen.protocol.name()
                ),
            ));
        }
        Ok(chosen)
    }

    /// Listener-related checks of `Config::validate`.
    pub(super) fn validate_listeners(&self, tls: &TlsConfig) -> Result<(), ConfigError> {
        let listeners = self.listeners()?;
        for (index, listener) in listeners.iter().enumerate() {
            if listener.protocol.uses_tls() && (tls.cert_file.is_none() || tls.key_file.is_none()) {
                return Err(invalid(
                    "tls.cert_file",
                    &listener.name,
                    "an SSL listener needs tls.cert_file and tls.key_file (--tls-cert-file, \
                     --tls-key-file)",
                ));
            }
            for other in &listeners[..index] {
                if super::listen_addresses_overlap(&listener.bind, &other.bind) {
                    return Err(invalid(
                        "server.listen",
                        &listener.bind,
                        format!(
                            "listeners {} and {} share a port",
                            other.name, listener.name
                        ),
                    ));
                }
            }
            if super::listen_addresses_overlap(&listener.bind, &self.admin_listen) {
                // Shards bind with SO_REUSEPORT, which the kernel also grants to the admin
                // listener on the same port: it would take a share of the Kafka connections.
                return Err(invalid(
                    "server.admin_listen",
                    &self.admin_listen,
                    format!("must not be the Kafka listen address {}", listener.bind),
                ));
            }
        }
        if self.inter_broker_listener.is_some() {
            self.inter_broker_listener()?;
        }
        check(
            "tls.handshake_timeout_ms",
            tls.handshake_timeout_ms,
            100,
            600_000,
        )?;
        check(
            "tls.handshakes_inflight_max",
            tls.handshakes_inflight_max,
            1,
            65_536,
        )?;
        if tls.reload_check_interval_ms != 0 {
            check(
                "tls.reload_check_interval_ms",
                tls.reload_check_interval_ms,
                100,
                86_400_000,
            )?;
        }
        Ok(())
    }
}
