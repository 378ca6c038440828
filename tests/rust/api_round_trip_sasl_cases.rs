//! Round-trip cases of the SASL and SCRAM credential APIs (issue 17), split from
//! api_round_trip_cases.rs.

use super::*;

const UNSUPPORTED_VERSION: i16 = 35;

pub(super) fn sasl_handshake(fx: &mut Fixture, version: i16) {
    let response = fx.on_sasl_connection(|fx| {
        fx.send(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            version,
        )
    });
    let mechanisms: Vec<&str> = response.mechanisms.iter().map(|m| m.text()).collect();
    assert_eq!(mechanisms, ["SCRAM-SHA-256", "PLAIN"]);
    // v0 (unframed tokens after it) is listed as Kafka 4.x lists it, and refused.
    let expected = if version == 0 {
        UNSUPPORTED_VERSION
    } else {
        NONE
    };
    assert_eq!(response.error_code, expected);
}

pub(super) fn sasl_authenticate(fx: &mut Fixture, version: i16) {
    let (login, metadata) = fx.on_sasl_connection(|fx| {
        let handshake = fx.send(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        );
        assert_eq!(handshake.error_code, NONE);
        let token = format!("\0{SASL_USER}\0{SASL_PASSWORD}");
        let login = fx.send(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
            version,
        );
        // Logged in: the connection now serves other APIs.
        let metadata = fx.send(&MetadataRequest::default().with_topics(Some(vec![])), 12);
        (login, metadata)
    });
    assert_eq!(login.error_code, NONE, "{:?}", login.error_message);
    assert_eq!(
        login.session_lifetime_ms, 0,
        "sessions never end by default"
    );
    assert_eq!(metadata.brokers.len(), 1);
}

pub(super) fn describe_user_scram_credentials(fx: &mut Fixture, version: i16) {
    let response = fx.send(&DescribeUserScramCredentialsRequest::default(), version);
    assert_eq!(response.error_code, NONE);
    let user = response
        .results
        .iter()
        .find(|r| r.user.text() == SASL_USER)
        .expect("the bootstrap user");
    assert_eq!(user.error_code, NONE);
    assert_eq!(user.credential_infos.len(), 1);
    assert_eq!(
        (
            user.credential_infos[0].mechanism,
            user.credential_infos[0].iterations
        ),
        (1, 4096),
        "SCRAM-SHA-256, 4096 iterations"
    );
}

pub(super) fn alter_user_scram_credentials(fx: &mut Fixture, version: i16) {
    use kafka_protocol::messages::alter_user_scram_credentials_request::*;
    let user = fx.unique("user");
    let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(s(&user))
            .with_mechanism(2)
            .with_iterations(8192)
            .with_salt(Bytes::from_static(b"some salt"))
            .with_salted_password(Bytes::from(vec![7u8; 64])),
    ]);
    let response = fx.send(&upsert, version);
    assert_eq!(response.results[0].user.text(), user);
    assert_eq!(response.results[0].error_code, NONE);
    let described = fx.send(
        &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default()
                .with_name(s(&user)),
        ])),
        0,
    );
    assert_eq!(described.results[0].credential_infos[0].iterations, 8192);
    let delete = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(s(&user))
            .with_mechanism(2),
    ]);
    assert_eq!(fx.send(&delete, version).results[0].error_code, NONE);
}

/// SECURITY_DISABLED, as Kafka answers the ACL APIs without an authorizer (the fixture's
/// broker runs without one; tests/python/test_acls.py covers the authorizer).
const SECURITY_DISABLED: i16 = 54;

pub(super) fn describe_acls(fx: &mut Fixture, version: i16) {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, SECURITY_DISABLED);
    assert!(response.resources.is_empty());
}

pub(super) fn create_acls(fx: &mut Fixture, version: i16) {
    let creation = kafka_protocol::messages::create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(s("orders"))
        .with_resource_pattern_type(3)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(3)
        .with_permission_type(3);
    let response = fx.send(
        &CreateAclsRequest::default().with_creations(vec![creation]),
        version,
    );
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [SECURITY_DISABLED]);
}

pub(super) fn delete_acls(fx: &mut Fixture, version: i16) {
    let filter = kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let response = fx.send(
        &DeleteAclsRequest::default().with_filters(vec![filter]),
        version,
    );
    let codes: Vec<i16> = response
        .filter_results
        .iter()
        .map(|r| r.error_code)
        .collect();
    assert_eq!(codes, [SECURITY_DISABLED]);
}
