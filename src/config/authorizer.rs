//! The `[authorizer]` section: whether requests are checked against ACLs (Kafka's
//! `authorizer.class.name`), the super users, and the answer for resources no ACL covers.
//!
//! Owns: parsing and validation of these settings. May import: nothing from this crate but
//! `super`. Invariant: a validated config names a known kind and `Type:name` super users.

use super::ConfigError;
use serde::{Deserialize, Serialize};

/// `[authorizer]`: ACL authorization of every request (issue 17).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizerConfig {
    /// `none` (every principal may do everything; CreateAcls and friends answer
    /// SECURITY_DISABLED) or `acl` (Kafka's StandardAuthorizer semantics). Default `none`.
    pub kind: String,
    /// Principals allowed everything, e.g. `["User:admin"]` (Kafka `super.users`; on the
    /// command line `;`-separated). Default empty.
    pub super_users: Vec<String>,
    /// The decision for a resource no ACL covers (Kafka `allow.everyone.if.no.acl.found`).
    /// Default false.
    pub allow_everyone_if_no_acl_found: bool,
}

impl Default for AuthorizerConfig {
    fn default() -> Self {
        AuthorizerConfig {
            kind: "none".to_string(),
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
        }
    }
}

impl AuthorizerConfig {
    /// Whether requests are checked against ACLs.
    pub fn enabled(&self) -> bool {
        self.kind == "acl"
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.kind != "none" && self.kind != "acl" {
            return Err(ConfigError::OutOfRange {
                field: "authorizer.kind",
                value: self.kind.clone(),
                reason: "must be `none` or `acl`".to_string(),
            });
        }
        for user in &self.super_users {
            let valid = user
                .split_once(':')
                .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty());
            if !valid {
                return Err(ConfigError::OutOfRange {
                    field: "authorizer.super_users",
                    value: user.clone(),
                    reason: "a principal is Type:name, e.g. User:admin".to_string(),
                });
            }
        }
        Ok(())
    }
}
