use super::*;

/// Every field of the default config, as "section.field".
fn field_names() -> Vec<String> {
    let value = toml::Value::try_from(Config::default()).unwrap();
    let mut names = Vec::new();
    for (section, fields) in value.as_table().unwrap() {
        for field in fields.as_table().unwrap().keys() {
            names.push(format!("{section}.{field}"));
        }
    }
    names
}

#[test]
fn configuration_doc_lists_every_field() {
    let doc = include_str!("../docs/configuration.md");
    let mut names = field_names();
    // Option fields with a None default are not serialized; list them explicitly.
    names.push("server.advertised_listener".to_string());
    names.push("server.inter_broker_listener".to_string());
    names.push("tls.cert_file".to_string());
    names.push("tls.key_file".to_string());
    names.push("tls.client_ca_file".to_string());
    names.push("cluster.controller_quorum".to_string());
    names.push("cluster.controller_listen".to_string());
    names.push("cluster.rack".to_string());
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/configuration.md lacks `{name}`"
        );
    }
}

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn admin_listen_on_the_kafka_port_is_refused() {
    for (listen, admin, refused) in [
        ("127.0.0.1:9092", "127.0.0.1:9092", true),
        ("0.0.0.0:9092", "127.0.0.1:9092", true),
        ("127.0.0.1:9092", "0.0.0.0:9092", true),
        ("localhost:9092", "localhost:9092", true),
        ("127.0.0.1:9092", "127.0.0.1:9644", false),
        ("127.0.0.1:9092", "127.0.0.2:9092", false),
        ("127.0.0.1:0", "127.0.0.1:0", false),
        ("127.0.0.1:9092", "", false),
    ] {
        let mut config = Config::default();
        config.server.listen = listen.to_string();
        config.server.admin_listen = admin.to_string();
        let error = config.validate().err().map(|e| e.to_string());
        assert_eq!(error.is_some(), refused, "{listen} / {admin}: {error:?}");
        if let Some(error) = error {
            assert!(error.contains("server.admin_listen"), "{error}");
        }
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let err = toml::from_str::<Config>("[server]\nlisten_typo = 1\n");
    assert!(err.is_err());
}

#[test]
fn controller_quorum_is_parsed_and_validated() {
    let voters = parse_controller_quorum("1@127.0.0.1:9093,2@host-b:9093, 3@[::1]:9094").unwrap();
    assert_eq!(voters.len(), 3);
    assert_eq!(voters[2].node_id, 3);
    assert_eq!(voters[2].address, "[::1]:9094");
    for (bad, needle) in [
        ("1@a:1,1@b:2", "listed twice"),
        ("x@a:1", "not a node id"),
        ("-1@a:1", "not a node id"),
        ("1@a", "not HOST:PORT"),
        ("1@:5", "not HOST:PORT"),
        ("1@a:99999", "not HOST:PORT"),
        ("1a:1", "not ID@HOST:PORT"),
    ] {
        let message = parse_controller_quorum(bad).unwrap_err().to_string();
        assert!(message.contains(needle), "{bad}: {message}");
    }
    let mut config = Config::default();
    config.server.node_id = 2;
    config.cluster.controller_quorum = Some("1@127.0.0.1:9093,2@127.0.0.1:9094".into());
    let message = config.validate().unwrap_err().to_string();
    assert!(message.contains("needs --controller-listen"), "{message}");
    config.cluster.controller_listen = Some("127.0.0.1:9093".into());
    let message = config.validate().unwrap_err().to_string();
    assert!(message.contains("must listen on that port"), "{message}");
    config.cluster.controller_listen = Some("0.0.0.0:9094".into());
    config.validate().unwrap();
    // A node whose id is not in the quorum is a broker only and needs no controller port.
    config.server.node_id = 7;
    config.cluster.controller_listen = None;
    config.validate().unwrap();
    config.cluster.controller_quorum = None;
    config.cluster.controller_listen = Some("127.0.0.1:9093".into());
    assert!(config.validate().is_err());
    config.cluster.controller_listen = None;
    config.cluster.broker_heartbeat_interval_ms = 9_000;
    assert!(config.validate().is_err());
}

#[test]
fn cluster_section_is_validated() {
    let mut config = Config::default();
    config.cluster.metadata_snapshot_entries = 0;
    let message = config.validate().unwrap_err().to_string();
    assert!(
        message.contains("cluster.metadata_snapshot_entries"),
        "{message}"
    );
    let mut config = Config::default();
    config.cluster.default_partitions = config.cluster.partitions_max + 1;
    let message = config.validate().unwrap_err().to_string();
    assert!(message.contains("cluster.default_partitions"), "{message}");
    let parsed: Config = toml::from_str("[cluster]\nmetadata_snapshot_entries = 50\n").unwrap();
    assert_eq!(parsed.cluster.metadata_snapshot_entries, 50);
    assert_eq!(parsed.cluster.broker_session_timeout_ms, 9_000);
}

#[test]
fn out_of_range_is_reported_with_field_name() {
    let mut config = Config::default();
    config.storage.write_chunk_bytes = 5000;
    let message = config.validate().unwrap_err().to_string();
    assert!(message.contains("storage.write_chunk_bytes"), "{message}");
}

fn listeners_of(listen: &str, advertised: Option<&str>) -> Result<Vec<ListenerSpec>, ConfigError> {
    let mut config = Config::default();
    config.server.listen = listen.to_string();
    config.server.advertised_listener = advertised.map(str::to_string);
    config.server.listeners()
}

#[test]
fn a_bare_listen_address_is_one_plaintext_listener() {
    let listeners = listeners_of("127.0.0.1:9092", None).unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0].name, "PLAINTEXT");
    assert_eq!(listeners[0].protocol, SecurityProtocol::Plaintext);
    assert_eq!(listeners[0].bind, "127.0.0.1:9092");
    let wildcard = listeners_of("0.0.0.0:9092", Some("broker1:19092")).unwrap();
    assert_eq!(
        (
            wildcard[0].advertised_host.as_str(),
            wildcard[0].advertised_port
        ),
        ("broker1", 19092)
    );
    let unadvertised = listeners_of("0.0.0.0:9092", None).unwrap();
    assert_eq!(unadvertised[0].advertised_host, "localhost");
}

#[test]
fn several_listeners_with_names_protocols_and_advertised_addresses() {
    let mut config = Config::default();
    config.server.listen =
        "PLAINTEXT://127.0.0.1:9092, ssl://:9093,INTERNAL://[::1]:9094".to_string();
    config.server.listener_security_protocol_map = "INTERNAL:PLAINTEXT".to_string();
    config.server.advertised_listener = Some("SSL://public.example:19093".to_string());
    let listeners = config.server.listeners().unwrap();
    let names: Vec<_> = listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["PLAINTEXT", "SSL", "INTERNAL"]);
    assert_eq!(listeners[1].protocol, SecurityProtocol::Ssl);
    assert_eq!(listeners[1].bind, "0.0.0.0:9093");
    assert_eq!(listeners[1].advertised_host, "public.example");
    assert_eq!(listeners[1].advertised_port, 19093);
    assert_eq!(listeners[2].protocol, SecurityProtocol::Plaintext);
    assert_eq!(listeners[2].advertised_host, "::1");
    assert_eq!(
        config.server.inter_broker_listener().unwrap().name,
        "PLAINTEXT"
    );
    config.server.advertised_listener = Some("first.example:1".to_string());
    let first = &config.server.listeners().unwrap()[0];
    assert_eq!(
        (first.advertised_host.as_str(), first.advertised_port),
        ("first.example", 1)
    );
    config.server.inter_broker_listener = Some("internal".to_string());
    assert_eq!(
        config.server.inter_broker_listener().unwrap().name,
        "INTERNAL"
    );
    config.server.inter_broker_listener = Some("SSL".to_string());
    let error = config
        .server
        .inter_broker_listener()
        .unwrap_err()
        .to_string();
    assert!(error.contains("not supported yet"), "{error}");
}

#[test]
fn bad_listener_lists_are_refused_with_a_reason() {
    for (listen, advertised, reason) in [
        ("", None, "at least one listener"),
        ("PLAINTEXT://a:1,PLAINTEXT://b:2", None, "appears twice"),
        ("EXTERNAL://a:1", None, "neither a security protocol"),
        ("PLAINTEXT://a", None, "HOST:PORT"),
        ("PLAINTEXT://a:99999", None, "port"),
        ("PLAINTEXT://::1:9092", None, "IPv6"),
        ("PLAIN TEXT://a:1", None, "listener name"),
        (
            "PLAINTEXT://a:1,SSL://a:2",
            Some("b:1,c:2"),
            "name each listener",
        ),
        (
            "PLAINTEXT://a:1",
            Some("SSL://b:1"),
            "no listener named SSL",
        ),
    ] {
        let error = listeners_of(listen, advertised).unwrap_err().to_string();
        assert!(error.contains(reason), "{listen} / {advertised:?}: {error}");
    }
}

#[test]
fn validate_refuses_sasl_ssl_without_files_and_shared_ports() {
    let refused = |listen: &str, tls: TlsConfig, reason: &str| {
        let mut config = Config::default();
        config.server.listen = listen.to_string();
        config.tls = tls;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains(reason), "{listen}: {error}");
    };
    let with_files = TlsConfig {
        cert_file: Some("cert.pem".into()),
        key_file: Some("key.pem".into()),
        ..TlsConfig::default()
    };
    refused(
        "SASL_SSL://127.0.0.1:9094",
        TlsConfig::default(),
        "tls.cert_file",
    );
    let mut config = Config::default();
    config.server.listen = "SASL_PLAINTEXT://127.0.0.1:9094".to_string();
    config.validate().unwrap();
    config.sasl.enabled_mechanisms = String::new();
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("sasl.enabled_mechanisms"), "{error}");
    config.sasl.enabled_mechanisms = "OAUTHBEARER".to_string();
    assert!(config.validate().is_err());
    refused(
        "SSL://127.0.0.1:9093",
        TlsConfig::default(),
        "tls.cert_file",
    );
    refused(
        "PLAINTEXT://0.0.0.0:9092,SSL://127.0.0.1:9092",
        with_files.clone(),
        "share a port",
    );
    let mut config = Config::default();
    config.server.listen = "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093".to_string();
    config.tls = with_files;
    config.validate().unwrap();
    config.tls.handshake_timeout_ms = 10;
    assert!(config.validate().is_err());
}
