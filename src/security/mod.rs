//! Who a connection is: the listener it came in on, its security protocol and its principal
//! (issue 17). The principal comes from an mTLS client certificate (`tls`) or a SASL login
//! (`sasl`); the authorizer (`acl`) reads it through `SecurityContext`.
//!
//! Owns: `SecurityContext`, `Principal`, TLS material (`tls`: PEM files to a rustls server
//! config, change detection for reloads, the client certificate's subject), SASL mechanisms
//! and SCRAM credentials (`sasl`). May import: `crate::config`. No sockets, no shards: the
//! server drives the handshakes and logins.
//! Runs on: any thread (loading files blocks; shards call it off-shard).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
pub mod sasl;
pub mod tls;

use crate::config::SecurityProtocol;

/// A Kafka principal (`KafkaPrincipal`): a type and a name, shown as `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub principal_type: String,
    pub name: String,
}

impl Principal {
    /// Kafka's principal of an unauthenticated connection.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    pub fn user(name: &str) -> Principal {
        Principal {
            principal_type: "User".to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What the broker knows about a connection's identity; set when the connection is accepted
/// (and, for TLS, when its handshake completes). Later slices: SASL sets `principal` after
/// authentication; the authorizer checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityContext {
    /// The listener the client connected to (its advertised endpoints are what Metadata,
    /// FindCoordinator and DescribeCluster answer with).
    pub listener: String,
    pub protocol: SecurityProtocol,
    pub principal: Principal,
    /// The verified client certificate's subject (RFC 4514, e.g. `CN=alice,O=Example`),
    /// when the client presented one.
    pub tls_subject: Option<String>,
}

impl SecurityContext {
    /// A connection before any authentication: `User:ANONYMOUS`.
    pub fn anonymous(listener: &str, protocol: SecurityProtocol) -> SecurityContext {
        SecurityContext {
            listener: listener.to_string(),
            protocol,
            principal: Principal::anonymous(),
            tls_subject: None,
        }
    }
}
