//! ACLs with Kafka's authorizer semantics (`StandardAuthorizer`, KIP-290 prefixed patterns):
//! the bindings, the filters of DescribeAcls / DeleteAcls, and the decision for one
//! (principal, host, operation, resource).
//!
//! Owns: the ACL model and its wire codes (Kafka's `ResourceType`, `PatternType`,
//! `AclOperation`, `AclPermissionType`), validation of a new binding (Kafka's messages), filter
//! matching and `Authorizer::authorize`. May import: nothing from this crate. Pure: no I/O.
//! Invariants: a stored `AclBinding` passed `AclBinding::new` (known types, literal or
//! prefixed, a `Type:name` principal, a non-empty resource name, `kafka-cluster` for the
//! cluster); deny wins over allow; super users are always allowed; a resource no binding
//! matches is allowed only with `allow_everyone_if_no_acl_found`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The one cluster resource's name, as Kafka names it.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal resource name and principal / host that match everything.
pub const WILDCARD: &str = "*";
/// The wildcard principal (`User:*`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Wire code meaning "any" in a filter (resource type, pattern type, operation, permission).
const ANY: i8 = 1;
/// Pattern type code meaning "match" in a filter: the patterns that would match a name.
const PATTERN_MATCH: i8 = 2;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:expr, $label:expr;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant,)* }

        impl $name {
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }
            /// `None` for unknown codes and for the filter-only ones (any, match).
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
            /// Kafka's upper-case name (`TOPIC`, `DESCRIBE_CONFIGS`, ...).
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)* }
            }
            /// The value named `label` (case-insensitive; `-` for `_`).
            pub fn from_label(label: &str) -> Option<$name> {
                let wanted = label.trim().to_ascii_uppercase().replace('-', "_");
                [$($name::$variant,)*].into_iter().find(|v| v.label() == wanted)
            }
        }
    };
}

wire_enum!(
    /// Kafka's `ResourceType` (codes 2..=7).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

wire_enum!(
    /// Kafka's `PatternType` of a stored binding (3 literal, 4 prefixed).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// Kafka's `AclOperation` (codes 2..=15).
    AclOperation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

wire_enum!(
    /// Kafka's `AclPermissionType` (2 deny, 3 allow).
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// Why a binding or filter is refused (CreateAcls / DeleteAcls answer INVALID_REQUEST with
/// the message, as Kafka's `AclControlManager.validateNewAcl` does).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AclError {
    #[error("Invalid resourceType {0}")]
    ResourceType(i8),
    #[error("Invalid patternType {0}")]
    PatternType(i8),
    #[error("Invalid operation {0}")]
    Operation(i8),
    #[error("Invalid permissionType {0}")]
    Permission(i8),
    #[error("Resource name should not be empty")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    ClusterName,
    #[error(
        "Could not parse principal from `{0}` (no colon is present separating the principal type from the principal name)"
    )]
    Principal(String),
    #[error("Invalid host {0}")]
    Host(String),
}

/// One ACL: `principal` from `host` is allowed or denied `operation` on the resources the
/// pattern covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice`, or `User:*`.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: Permission,
}

/// The wire fields of a binding (CreateAcls creation, DescribeAcls / DeleteAcls result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireAcl<'a> {
    pub resource_type: i8,
    pub resource_name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// A binding from a CreateAcls creation, checked as Kafka checks a new ACL.
    pub fn new(wire: &WireAcl<'_>) -> Result<AclBinding, AclError> {
        let resource_type = ResourceType::from_code(wire.resource_type)
            .ok_or(AclError::ResourceType(wire.resource_type))?;
        let pattern_type = PatternType::from_code(wire.pattern_type)
            .ok_or(AclError::PatternType(wire.pattern_type))?;
        let operation =
            AclOperation::from_code(wire.operation).ok_or(AclError::Operation(wire.operation))?;
        let permission =
            Permission::from_code(wire.permission).ok_or(AclError::Permission(wire.permission))?;
        if wire.resource_name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if resource_type == ResourceType::Cluster && wire.resource_name != CLUSTER_NAME {
            return Err(AclError::ClusterName);
        }
        check_principal(wire.principal)?;
        if wire.host.is_empty() {
            return Err(AclError::Host(wire.host.to_string()));
        }
        Ok(AclBinding {
            resource_type,
            resource_name: wire.resource_name.to_string(),
            pattern_type,
            principal: wire.principal.to_string(),
            host: wire.host.to_string(),
            operation,
            permission,
        })
    }

    /// Whether this binding's pattern covers resource `name` of its type.
    fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.resource_name == name || self.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&self.resource_name),
        }
    }

    /// Whether this binding applies to `principal` connecting from `host`.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// `Type:name` with a non-empty type and name.
fn check_principal(principal: &str) -> Result<(), AclError> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(AclError::Principal(principal.to_string())),
    }
}

/// Which pattern types a filter selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type (code 1).
    Any,
    /// The bindings that would match the filter's name (code 2): literal equal, literal `*`
    /// and prefixes of it.
    Match,
    Exact(PatternType),
}

/// A DescribeAcls / DeleteAcls filter; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// A filter from its wire fields (a null name, principal or host matches any).
    pub fn new(
        wire: &WireAcl<'_>,
        name: Option<&str>,
        principal: Option<&str>,
        host: Option<&str>,
    ) -> Result<AclFilter, AclError> {
        let resource_type = match wire.resource_type {
            ANY => None,
            code => Some(ResourceType::from_code(code).ok_or(AclError::ResourceType(code))?),
        };
        let pattern = match wire.pattern_type {
            ANY => PatternFilter::Any,
            PATTERN_MATCH => PatternFilter::Match,
            code => PatternFilter::Exact(
                PatternType::from_code(code).ok_or(AclError::PatternType(code))?,
            ),
        };
        let operation = match wire.operation {
            ANY => None,
            code => Some(AclOperation::from_code(code).ok_or(AclError::Operation(code))?),
        };
        let permission = match wire.permission {
            ANY => None,
            code => Some(Permission::from_code(code).ok_or(AclError::Permission(code))?),
        };
        Ok(AclFilter {
            resource_type,
            resource_name: name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let same =
            |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        let name_and_pattern = match (self.pattern, &self.resource_name) {
            (PatternFilter::Any, name) => same(name, &acl.resource_name),
            (PatternFilter::Exact(pattern), name) => {
                acl.pattern_type == pattern && same(name, &acl.resource_name)
            }
            (PatternFilter::Match, None) => true,
            (PatternFilter::Match, Some(name)) => acl.covers(name),
        };
        self.resource_type.is_none_or(|t| t == acl.resource_type)
            && name_and_pattern
            && same(&self.principal, &acl.principal)
            && same(&self.host, &acl.host)
            && self.operation.is_none_or(|op| op == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// Whether an ALLOW binding for `granted` also allows `wanted` (Kafka: READ, WRITE, DELETE
/// and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL implies every
/// operation). A DENY binding denies only its own operation (or ALL).
fn allow_implies(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == All
        || granted == wanted
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

/// The decision for requests, over one ACL set.
#[derive(Debug, Clone, Copy)]
pub struct Authorizer<'a> {
    pub acls: &'a [AclBinding],
    /// Principals (`User:admin`) allowed everything.
    pub super_users: &'a [String],
    /// Kafka `allow.everyone.if.no.acl.found`: the answer for a resource no binding covers.
    pub allow_if_no_acl: bool,
}

impl Authorizer<'_> {
    /// Whether `principal` (`User:alice`) from `host` may do `operation` on resource `name`
    /// of `resource_type`: super users yes; else a covering DENY for the principal (or
    /// `User:*`), host (or `*`) and operation (or ALL) refuses; else a covering ALLOW that
    /// implies the operation allows; else, if no binding covers the resource at all,
    /// `allow_if_no_acl`; else no.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.iter().any(|user| user == principal) {
            return true;
        }
        let mut covered = false;
        let mut allowed = false;
        for acl in self
            .acls
            .iter()
            .filter(|acl| acl.resource_type == resource_type && acl.covers(name))
        {
            covered = true;
            if !acl.applies_to(principal, host) {
                continue;
            }
            match acl.permission {
                Permission::Deny
                    if acl.operation == operation || acl.operation == AclOperation::All =>
                {
                    return false;
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= allow_implies(acl.operation, operation),
            }
        }
        allowed || (!covered && self.allow_if_no_acl)
    }
}

impl Authorizer<'_> {
    /// Whether `principal` from `host` may do `operation` on some resource of
    /// `resource_type`: a super user; or an ALLOW binding of that type applies and implies
    /// it while no DENY of the literal wildcard `*` for it applies.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.super_users.iter().any(|user| user == principal) {
            return true;
        }
        let applying = || {
            self.acls.iter().filter(move |acl| {
                acl.resource_type == resource_type && acl.applies_to(principal, host)
            })
        };
        let denied_everywhere = applying().any(|acl| {
            acl.permission == Permission::Deny
                && acl.pattern_type == PatternType::Literal
                && acl.resource_name == WILDCARD
                && (acl.operation == operation || acl.operation == AclOperation::All)
        });
        !denied_everywhere
            && applying().any(|acl| {
                acl.permission == Permission::Allow && allow_implies(acl.operation, operation)
            })
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
