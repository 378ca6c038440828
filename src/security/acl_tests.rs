use super::*;

fn wire<'a>(
    resource_type: i8,
    name: &'a str,
    pattern_type: i8,
    principal: &'a str,
    operation: i8,
    permission: i8,
) -> WireAcl<'a> {
    WireAcl {
        resource_type,
        resource_name: name,
        pattern_type,
        principal,
        host: "*",
        operation,
        permission,
    }
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: AclOperation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: WILDCARD.to_string(),
        operation,
        permission,
    }
}

use AclOperation::*;
use PatternType::*;
use Permission::*;
use ResourceType::*;

#[test]
fn new_bindings_are_checked_as_kafka_checks_them() {
    let ok = wire(2, "orders", 3, "User:alice", 3, 3);
    assert_eq!(
        AclBinding::new(&ok).map(|b| (b.resource_type, b.operation)),
        Ok((Topic, Read))
    );
    let cases = [
        (
            wire(1, "orders", 3, "User:alice", 3, 3),
            AclError::ResourceType(1),
        ),
        (
            wire(2, "orders", 2, "User:alice", 3, 3),
            AclError::PatternType(2),
        ),
        (
            wire(2, "orders", 3, "User:alice", 1, 3),
            AclError::Operation(1),
        ),
        (
            wire(2, "orders", 3, "User:alice", 3, 1),
            AclError::Permission(1),
        ),
        (wire(2, "", 3, "User:alice", 3, 3), AclError::EmptyName),
        (
            wire(4, "other", 3, "User:alice", 7, 3),
            AclError::ClusterName,
        ),
        (
            wire(2, "orders", 3, "alice", 3, 3),
            AclError::Principal("alice".into()),
        ),
    ];
    for (creation, error) in cases {
        assert_eq!(AclBinding::new(&creation), Err(error));
    }
    assert_eq!(
        ResourceType::from_label("transactional-id"),
        Some(TransactionalId)
    );
    assert_eq!(
        AclOperation::from_label("describe_configs"),
        Some(DescribeConfigs)
    );
}

#[test]
fn literal_wildcard_and_prefixed_bindings_cover_their_resources() {
    let acls = [
        acl(Topic, "orders", Literal, "User:alice", Read, Allow),
        acl(Topic, "pay-", Prefixed, "User:bob", Write, Allow),
        acl(Group, "*", Literal, "User:*", Read, Allow),
    ];
    let authorizer = Authorizer {
        acls: &acls,
        super_users: &[],
        allow_if_no_acl: false,
    };
    let can =
        |who: &str, op, kind, name: &str| authorizer.authorize(who, "10.0.0.1", op, kind, name);
    assert!(can("User:alice", Read, Topic, "orders"));
    assert!(
        !can("User:alice", Read, Topic, "orders2"),
        "literal is exact"
    );
    assert!(!can("User:alice", Write, Topic, "orders"));
    assert!(can("User:bob", Write, Topic, "pay-eu"));
    assert!(!can("User:bob", Write, Topic, "pa"));
    assert!(can("User:carol", Read, Group, "any-group"), "User:* on *");
    assert!(!can("User:carol", Delete, Group, "any-group"));
    assert!(
        !can("User:carol", Read, Cluster, CLUSTER_NAME),
        "no acl: denied by default"
    );
}

#[test]
fn deny_wins_and_allows_imply_describe() {
    let acls = [
        acl(Topic, "*", Literal, "User:alice", All, Allow),
        acl(Topic, "secret", Literal, "User:alice", Read, Deny),
        acl(Topic, "logs", Literal, "User:bob", Write, Allow),
        acl(Topic, "cfg", Literal, "User:bob", AlterConfigs, Allow),
        acl(Topic, "logs", Literal, "User:carol", Describe, Deny),
    ];
    let authorizer = Authorizer {
        acls: &acls,
        super_users: &["User:admin".to_string()],
        allow_if_no_acl: false,
    };
    let can = |who: &str, op, name: &str| authorizer.authorize(who, "h", op, Topic, name);
    assert!(can("User:alice", Write, "secret"));
    assert!(!can("User:alice", Read, "secret"), "deny wins over ALL");
    assert!(
        can("User:alice", Describe, "secret"),
        "deny READ does not deny DESCRIBE"
    );
    assert!(can("User:bob", Describe, "logs"), "WRITE implies DESCRIBE");
    assert!(!can("User:bob", Read, "logs"));
    assert!(
        can("User:bob", DescribeConfigs, "cfg"),
        "ALTER_CONFIGS implies it"
    );
    assert!(!can("User:carol", Describe, "logs"));
    assert!(can("User:admin", Delete, "logs"), "super user");
}

#[test]
fn allow_if_no_acl_applies_only_to_resources_no_binding_covers() {
    let acls = [acl(Topic, "orders", Literal, "User:alice", Read, Allow)];
    let authorizer = Authorizer {
        acls: &acls,
        super_users: &[],
        allow_if_no_acl: true,
    };
    assert!(authorizer.authorize("User:bob", "h", Read, Topic, "free"));
    assert!(!authorizer.authorize("User:bob", "h", Read, Topic, "orders"));
}

#[test]
fn hosts_restrict_bindings() {
    let mut only_local = acl(Topic, "t", Literal, "User:alice", Read, Allow);
    only_local.host = "127.0.0.1".into();
    let acls = [only_local];
    let authorizer = Authorizer {
        acls: &acls,
        super_users: &[],
        allow_if_no_acl: false,
    };
    assert!(authorizer.authorize("User:alice", "127.0.0.1", Read, Topic, "t"));
    assert!(!authorizer.authorize("User:alice", "10.1.1.1", Read, Topic, "t"));
}

#[test]
fn filters_select_like_kafkas() {
    let acls = [
        acl(Topic, "orders", Literal, "User:alice", Read, Allow),
        acl(Topic, "*", Literal, "User:bob", Read, Allow),
        acl(Topic, "ord", Prefixed, "User:bob", Write, Deny),
        acl(Group, "orders", Literal, "User:alice", Read, Allow),
    ];
    let filter = |kind: i8, name: Option<&str>, pattern: i8, principal: Option<&str>| {
        let fields = wire(kind, "", pattern, "", 1, 1);
        let filter = AclFilter::new(&fields, name, principal, None).unwrap();
        acls.iter()
            .enumerate()
            .filter(|(_, acl)| filter.matches(acl))
            .map(|(index, _)| index)
            .collect::<Vec<_>>()
    };
    assert_eq!(filter(1, None, 1, None), vec![0, 1, 2, 3]);
    assert_eq!(filter(2, Some("orders"), 1, None), vec![0]);
    assert_eq!(filter(2, Some("orders"), 2, None), vec![0, 1, 2], "match");
    assert_eq!(filter(2, None, 4, None), vec![2]);
    assert_eq!(filter(1, None, 1, Some("User:alice")), vec![0, 3]);
    let bad = wire(9, "", 1, "", 1, 1);
    assert_eq!(
        AclFilter::new(&bad, None, None, None),
        Err(AclError::ResourceType(9))
    );
}
