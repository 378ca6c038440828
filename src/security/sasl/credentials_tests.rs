use super::*;
use crate::security::sasl::plain::PlainServer;
use crate::security::sasl::{CredentialStore, SaslError, SaslStep};

fn upsertion(user: &str, mechanism: i8, iterations: i32, password: &str) -> Upsertion {
    let salt = b"salt-of-the-earth".to_vec();
    let m = ScramMechanism::from_id(mechanism).unwrap_or(ScramMechanism::Sha256);
    Upsertion {
        user: user.to_string(),
        mechanism,
        iterations,
        salted_password: salted_password(m, password.as_bytes(), &salt, iterations.max(1)),
        salt,
    }
}

#[test]
fn file_form_round_trips_and_damage_is_an_error() {
    let mut set = CredentialSet::default();
    for mechanism in ScramMechanism::ALL {
        let credential = ScramCredential::from_password(mechanism, "secret", 4096).unwrap();
        set.insert("alice", mechanism, credential);
    }
    let json = set.to_json();
    assert!(!String::from_utf8_lossy(&json).contains("secret"));
    assert_eq!(CredentialSet::from_json(&json).unwrap(), set);
    let text = String::from_utf8(json).unwrap();
    for damaged in [
        text[..text.len() / 2].to_string(),
        text.replace("SCRAM-SHA-256", "SCRAM-SHA-1"),
        text.replace("\"version\": 1", "\"version\": 9"),
        text.replace("\"iterations\": 4096", "\"iterations\": 0"),
        text.replacen("\"stored_key\": \"", "\"stored_key\": \"AAAA", 1),
    ] {
        assert!(
            CredentialSet::from_json(damaged.as_bytes()).is_err(),
            "{damaged}"
        );
    }
}

#[test]
fn alterations_follow_kip_554() {
    let set = CredentialSet::default();
    let (set, outcomes) = set.altered(
        &[],
        &[
            upsertion("alice", 2, 8192, "a"),
            upsertion("bob", 1, 4095, "b"),
            upsertion("carol", 3, 4096, "c"),
            upsertion("dave", 1, 4096, "d"),
            upsertion("dave", 1, 4096, "d"),
        ],
    );
    assert_eq!(outcomes[0], ("alice".to_string(), Ok(())));
    assert!(matches!(&outcomes[1].1, Err(AlterRefusal::Unacceptable(m)) if m.contains("Too few")));
    assert_eq!(outcomes[2].1, Err(AlterRefusal::UnknownMechanism));
    assert_eq!(outcomes[3].1, Err(AlterRefusal::Duplicate));
    assert_eq!(
        set.users().into_iter().collect::<Vec<_>>(),
        vec![("alice", vec![(ScramMechanism::Sha512, 8192)])]
    );
    let (set, outcomes) = set.altered(&[("alice".to_string(), 1), ("alice".to_string(), 2)], &[]);
    assert_eq!(outcomes[0].1, Err(AlterRefusal::NotFound));
    assert!(
        set.get("alice", ScramMechanism::Sha512).is_some(),
        "all or nothing per user"
    );
    let (set, outcomes) = set.altered(&[("alice".to_string(), 2)], &[]);
    assert_eq!(outcomes[0].1, Ok(()));
    assert!(set.is_empty());
}

#[test]
fn plain_checks_the_scram_credential() {
    let (set, _) = CredentialSet::default().altered(&[], &[upsertion("alice", 1, 4096, "pw")]);
    let store = CredentialStore::new(set);
    let login = |token: &[u8]| PlainServer::new().step(token, &store);
    assert_eq!(
        login(b"\0alice\0pw"),
        Ok(SaslStep::Authenticated {
            user: "alice".to_string(),
            response: Vec::new()
        })
    );
    assert!(login(b"alice\0alice\0pw").is_ok());
    assert_eq!(
        login(b"\0alice\0wrong"),
        Err(SaslError::AuthenticationFailed)
    );
    assert_eq!(login(b"\0nobody\0pw"), Err(SaslError::AuthenticationFailed));
    assert_eq!(
        login(b"bob\0alice\0pw"),
        Err(SaslError::AuthenticationFailed)
    );
    for malformed in [
        &b""[..],
        b"\0alice",
        b"\0alice\0pw\0x",
        b"\0\0pw",
        b"\0alice\0",
    ] {
        assert!(matches!(login(malformed), Err(SaslError::Malformed { .. })));
    }
    let mut server = PlainServer::new();
    let _ = server.step(b"\0alice\0pw", &store);
    assert_eq!(
        server.step(b"\0alice\0pw", &store),
        Err(SaslError::Finished)
    );
}

#[test]
fn store_changes_are_persisted_before_they_are_seen() {
    let store = CredentialStore::new(CredentialSet::default());
    let failed: Result<(), &str> = store
        .update(
            |set| set.altered(&[], &[upsertion("alice", 1, 4096, "pw")]),
            |_| Err("disk full"),
        )
        .map(|_| ());
    assert_eq!(failed, Err("disk full"));
    assert!(!store.has_credential("alice", ScramMechanism::Sha256));
    let mut persisted = None;
    store
        .update(
            |set| set.altered(&[], &[upsertion("alice", 1, 4096, "pw")]),
            |set| {
                persisted = Some(set.clone());
                Ok::<(), ()>(())
            },
        )
        .unwrap();
    assert!(store.has_credential("alice", ScramMechanism::Sha256));
    assert!(persisted.is_some());
}
