use super::*;
use crate::security::sasl::credentials::CredentialSet;

const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC7677_SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                    s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn store_with(user: &str, mechanism: ScramMechanism, password: &str, salt: &[u8]) -> StoreRef {
    let salted = salted_password(mechanism, password.as_bytes(), salt, 4096);
    let credential =
        ScramCredential::from_salted_password(mechanism, &salted, salt.to_vec(), 4096).unwrap();
    let mut set = CredentialSet::default();
    set.insert(user, mechanism, credential);
    CredentialStore::new(set)
}

type StoreRef = std::sync::Arc<CredentialStore>;

fn rfc7677_store() -> StoreRef {
    let salt = BASE64.decode(b"W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    store_with("user", ScramMechanism::Sha256, "pencil", &salt)
}

#[test]
fn rfc7677_sha256_exchange() {
    let store = rfc7677_store();
    let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC7677_SERVER_NONCE);
    let first = server
        .step(RFC7677_CLIENT_FIRST.as_bytes(), &store)
        .unwrap();
    assert_eq!(
        first,
        SaslStep::Challenge(RFC7677_SERVER_FIRST.as_bytes().to_vec())
    );
    let last = server
        .step(RFC7677_CLIENT_FINAL.as_bytes(), &store)
        .unwrap();
    assert_eq!(
        last,
        SaslStep::Authenticated {
            user: "user".to_string(),
            response: RFC7677_SERVER_FINAL.as_bytes().to_vec(),
        }
    );
    assert_eq!(
        server.step(b"more", &store),
        Err(SaslError::Finished),
        "no token after the end"
    );
}

/// A SHA-512 exchange whose proof and signature were computed independently (Python's
/// hashlib/hmac, same inputs).
#[test]
fn sha512_exchange_matches_an_independent_computation() {
    let salt = b"0123456789abcdef";
    let store = store_with("admin", ScramMechanism::Sha512, "admin-secret", salt);
    let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha512, "SERVERNONCE");
    let first = server.step(b"n,,n=admin,r=clientnonce", &store).unwrap();
    assert_eq!(
        first,
        SaslStep::Challenge(b"r=clientnonceSERVERNONCE,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096".to_vec())
    );
    let proof =
        "AZthYMZsX24iFJuCjz7nXKsiojoG3Q4H7YobhOKBVf245hAWLS5L3Lk///HSQ1+yvpObAkGCmodm5WkkzYw0yQ==";
    let last = server
        .step(
            format!("c=biws,r=clientnonceSERVERNONCE,p={proof}").as_bytes(),
            &store,
        )
        .unwrap();
    let signature =
        "nYmAltBRzHhJUWaxuvyrAf1U0u+yS+Prm8l2EWeAxeurCJYZApB1Y8HmLyVGe/XHG5NwePRvkM+XvOB3ilP2Fg==";
    assert_eq!(
        last,
        SaslStep::Authenticated {
            user: "admin".to_string(),
            response: format!("v={signature}").into_bytes(),
        }
    );
}

/// librdkafka 2.0 repeats its client nonce in front of the combined nonce; Kafka accepts a
/// client-final nonce that ends with the server's, and so does shardlog.
#[test]
fn a_client_final_nonce_ending_with_the_servers_is_accepted() {
    use data_encoding::BASE64;
    let store = rfc7677_store();
    let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, "SERVER");
    server.step(b"n,,n=user,r=client", &store).unwrap();
    let salted = salted_password(
        ScramMechanism::Sha256,
        b"pencil",
        &BASE64.decode(b"W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
        4096,
    );
    let client_key = hmac(ScramMechanism::Sha256, &salted, b"Client Key");
    let stored_key = hash(ScramMechanism::Sha256, &client_key);
    let without_proof = "c=biws,r=clientclientSERVER";
    let auth_message =
        format!("n=user,r=client,r=clientSERVER,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,{without_proof}");
    let signature = hmac(ScramMechanism::Sha256, &stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let last = format!("{without_proof},p={}", BASE64.encode(&proof));
    assert!(matches!(
        server.step(last.as_bytes(), &store),
        Ok(SaslStep::Authenticated { .. })
    ));
}

#[test]
fn wrong_proof_and_unknown_user_fail_alike() {
    let store = rfc7677_store();
    let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC7677_SERVER_NONCE);
    server
        .step(RFC7677_CLIENT_FIRST.as_bytes(), &store)
        .unwrap();
    let bad = RFC7677_CLIENT_FINAL.replace("dHzb", "dHzc");
    assert_eq!(
        server.step(bad.as_bytes(), &store),
        Err(SaslError::AuthenticationFailed)
    );

    // An unknown user gets a server-first message like a known one (a decoy salt, the same
    // each time), and fails only at the proof.
    let mut first_salts = Vec::new();
    for _ in 0..2 {
        let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, "N");
        let SaslStep::Challenge(first) = server.step(b"n,,n=nobody,r=abc", &store).unwrap() else {
            panic!("expected a challenge");
        };
        let first = String::from_utf8(first).unwrap();
        assert!(
            first.starts_with("r=abcN,s=") && first.ends_with(",i=4096"),
            "{first}"
        );
        first_salts.push(first);
        assert_eq!(
            server.step(b"c=biws,r=abcN,p=AAAA", &store),
            Err(SaslError::AuthenticationFailed)
        );
    }
    assert_eq!(first_salts[0], first_salts[1]);
}

#[test]
fn malformed_messages_are_refused_without_panics() {
    let store = rfc7677_store();
    for first in [
        &b""[..],
        b"p=tls-unique,,n=user,r=x",
        b"n,,",
        b"n,,n=user",
        b"n,,r=x,n=user",
        b"n,,n=,r=x",
        b"n,,n=us=er,r=x",
        b"n,,m=ext,n=user,r=x",
        b"n,x,n=user,r=x",
        b"\xff\xfe",
        b"n,,n=user,r=a b",
    ] {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(
            server.step(first, &store).is_err(),
            "{:?}",
            String::from_utf8_lossy(first)
        );
    }
    for last in [
        "",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "c=biws,r=other,p=AAAA",
        "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=1,p=AAAA",
    ] {
        let mut server =
            ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC7677_SERVER_NONCE);
        server
            .step(RFC7677_CLIENT_FIRST.as_bytes(), &store)
            .unwrap();
        assert!(server.step(last.as_bytes(), &store).is_err(), "{last}");
    }
}

#[test]
fn escaped_names_and_matching_authzid() {
    assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    assert!(decode_saslname("a=2").is_err());
    let store = rfc7677_store();
    let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, "N");
    assert!(server.step(b"n,a=user,n=user,r=x", &store).is_ok());
    let mut server = ScramServer::with_server_nonce(ScramMechanism::Sha256, "N");
    assert_eq!(
        server.step(b"n,a=admin,n=user,r=x", &store),
        Err(SaslError::AuthenticationFailed)
    );
}

/// Server nonces are letters and digits only (librdkafka 2.0.2 fails on base64's `/`, `+`
/// and `=`).
#[test]
fn server_nonces_are_alphanumeric() {
    let store = rfc7677_store();
    for _ in 0..20 {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let SaslStep::Challenge(first) = server.step(b"n,,n=user,r=abc", &store).unwrap() else {
            panic!("expected a challenge");
        };
        let first = String::from_utf8(first).unwrap();
        let nonce = first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=abc")
            .unwrap();
        assert_eq!(nonce.len(), 48);
        assert!(nonce.chars().all(|c| c.is_ascii_alphanumeric()), "{nonce}");
    }
}
