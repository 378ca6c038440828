//! `shardlog topic ...` against a running broker: create/list/describe/alter/delete, config
//! refusals, describe-all and global flags. Shares the broker fixture of the parent module.

use super::*;

#[test]
fn topic_create_list_describe_alter_delete() {
    let _serial = serial();
    let broker = Broker::start("topics");
    let created = broker.ok(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
    ]);
    assert!(
        created.stdout.contains("Created topic orders."),
        "{}",
        created.describe()
    );
    let again = broker.run(&["topic", "create", "orders", "--partitions", "3"]);
    assert_eq!(again.code, 5, "{}", again.describe());
    assert!(
        again.stderr.contains("already exists"),
        "{}",
        again.describe()
    );
    broker.ok(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--if-not-exists",
    ]);

    let list = broker.ok(&["topic", "list"]);
    assert!(list.lines()[0].starts_with("TOPIC"), "{}", list.describe());
    assert!(
        list.lines()
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["orders", "3", "1"])
    );
    let json = broker.json(&["topic", "list"]);
    let orders = json
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "orders")
        .cloned();
    assert_eq!(orders.expect("orders listed")["partitions"], 3);

    let describe = broker.ok(&["topic", "describe", "orders"]);
    assert!(
        describe.stdout.starts_with("Topic: orders  Partitions: 3"),
        "{}",
        describe.describe()
    );
    assert!(
        describe.stdout.contains("PARTITION  LEADER"),
        "{}",
        describe.describe()
    );
    let json = broker.json(&["topic", "describe", "orders"]);
    let partitions = json["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3);
    for (index, partition) in partitions.iter().enumerate() {
        assert_eq!(partition["partition"], index as i64);
        assert_eq!(partition["leader"], 0);
        assert_eq!(partition["log_end_offset"], 0);
    }

    let shrink = broker.run(&["topic", "alter", "orders", "--partitions", "2"]);
    assert_eq!(shrink.code, 2, "{}", shrink.describe());
    assert!(
        shrink.stderr.contains("can be added, never removed"),
        "{}",
        shrink.describe()
    );

    // Partitions can be added; shard placement follows shardlog::metadata::shard_for.
    let grown = broker.ok(&["topic", "alter", "orders", "--partitions", "5"]);
    assert!(
        grown.stdout.contains("partitions 3 -> 5"),
        "{}",
        grown.describe()
    );
    let json = broker.json(&["topic", "describe", "orders"]);
    assert_eq!(json["shard_count"], 2, "{json}");
    let partitions = json["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 5);
    for partition in partitions {
        let id = i32::try_from(partition["partition"].as_i64().expect("id")).expect("i32");
        let shard = shardlog::metadata::shard_for("orders", id, 2).0;
        assert_eq!(partition["shard"], shard, "{json}");
    }

    // Configs: set at creation, then set and delete; describe shows the topic's own ones.
    broker.ok(&[
        "topic",
        "create",
        "tuned",
        "--partitions",
        "1",
        "--config",
        "retention.ms=86400000",
    ]);
    let set = [
        "topic",
        "config",
        "tuned",
        "--set",
        "cleanup.policy=compact",
        "--set",
        "segment.bytes=1048576",
    ];
    let configs = broker.json(&set);
    assert_eq!(configs["configs"]["retention.ms"], "86400000", "{configs}");
    assert_eq!(configs["configs"]["cleanup.policy"], "compact", "{configs}");
    assert_eq!(configs["configs"]["segment.bytes"], "1048576", "{configs}");
    let configs = broker.json(&["topic", "config", "tuned", "--delete", "retention.ms"]);
    assert!(
        configs["configs"].get("retention.ms").is_none(),
        "{configs}"
    );
    assert_eq!(configs["configs"]["cleanup.policy"], "compact", "{configs}");
    let describe = broker.ok(&["topic", "describe", "tuned"]);
    assert!(
        describe
            .stdout
            .contains("Configs: cleanup.policy=compact,segment.bytes=1048576"),
        "{}",
        describe.describe()
    );
    let json = broker.json(&["topic", "describe", "tuned"]);
    assert_eq!(json["configs"]["cleanup.policy"], "compact", "{json}");
    let run = broker.run(&["topic", "config", "tuned", "--set", "k=v", "--delete", "k"]);
    assert_eq!(run.code, 2, "{}", run.describe());

    let missing = broker.run(&["topic", "describe", "nope"]);
    assert_eq!(missing.code, 4, "{}", missing.describe());
    assert!(
        missing.stderr.contains("unknown topic 'nope'"),
        "{}",
        missing.describe()
    );
    assert_eq!(broker.run(&["topic", "delete", "nope"]).code, 4);

    broker.ok(&["topic", "delete", "orders"]);
    let list = broker.ok(&["topic", "list"]);
    assert!(!list.stdout.contains("orders"), "{}", list.describe());
    assert_eq!(broker.run(&["topic", "describe", "orders"]).code, 4);
}

/// Issue 18 item 5: a config change the broker refuses (a bad value, an unknown key, an unknown
/// topic) exits non-zero with the broker's message and changes nothing; DescribeConfigs'
/// per-resource errors are not read as "no configs" either.
#[test]
fn topic_config_refusals_exit_non_zero_with_the_brokers_message_and_apply_nothing() {
    let _serial = serial();
    let broker = Broker::start("config-refusals");
    broker.ok(&[
        "topic",
        "create",
        "tuned",
        "--partitions",
        "1",
        "--config",
        "retention.ms=86400000",
    ]);
    let unchanged = |why: &str| {
        let configs = broker.json(&["topic", "config", "tuned"]);
        assert_eq!(
            configs["configs"],
            serde_json::json!({ "retention.ms": "86400000" }),
            "{why}: {configs}"
        );
    };

    let bad_value = broker.run(&["topic", "config", "tuned", "--set", "retention.ms=abc"]);
    assert_eq!(bad_value.code, 1, "{}", bad_value.describe());
    assert!(bad_value.stdout.is_empty(), "{}", bad_value.describe());
    // The broker's own message (src/metadata/topic_config.rs), not just the error code's name.
    assert!(
        bad_value
            .stderr
            .contains("invalid value `abc` for topic config `retention.ms`"),
        "{}",
        bad_value.describe()
    );
    unchanged("after retention.ms=abc");

    let unknown_key = broker.run(&["topic", "config", "tuned", "--set", "no.such.config=1"]);
    assert_eq!(unknown_key.code, 1, "{}", unknown_key.describe());
    assert!(
        unknown_key
            .stderr
            .contains("unknown topic config `no.such.config`"),
        "{}",
        unknown_key.describe()
    );
    unchanged("after no.such.config=1");

    // One refused change refuses the request: the valid one beside it is not applied either.
    let mixed = broker.run(&[
        "topic",
        "config",
        "tuned",
        "--set",
        "segment.bytes=1048576",
        "--set",
        "retention.ms=abc",
        "--delete",
        "retention.ms",
    ]);
    assert_eq!(
        mixed.code,
        2,
        "set and delete of one key: {}",
        mixed.describe()
    );
    let mixed = broker.run(&[
        "topic",
        "config",
        "tuned",
        "--set",
        "segment.bytes=1048576",
        "--set",
        "cleanup.policy=nonsense",
    ]);
    assert_eq!(mixed.code, 1, "{}", mixed.describe());
    assert!(
        mixed.stderr.contains("cleanup.policy"),
        "{}",
        mixed.describe()
    );
    unchanged("after a request with one refused change");

    // Accepted changes still apply, incrementally (the existing override stays).
    let configs = broker.json(&["topic", "config", "tuned", "--set", "segment.bytes=1048576"]);
    assert_eq!(configs["configs"]["segment.bytes"], "1048576", "{configs}");
    assert_eq!(configs["configs"]["retention.ms"], "86400000", "{configs}");

    // CreateTopics refusals carry the broker's message too, and create nothing.
    let bad_create = broker.run(&[
        "topic",
        "create",
        "badly-tuned",
        "--config",
        "retention.ms=abc",
    ]);
    assert_eq!(bad_create.code, 1, "{}", bad_create.describe());
    assert!(
        bad_create
            .stderr
            .contains("invalid value `abc` for topic config `retention.ms`"),
        "{}",
        bad_create.describe()
    );
    assert_eq!(broker.run(&["topic", "describe", "badly-tuned"]).code, 4);

    for args in [
        vec!["topic", "config", "nope"],
        vec!["topic", "config", "nope", "--set", "retention.ms=1000"],
    ] {
        let run = broker.run(&args);
        assert_eq!(run.code, 4, "{args:?}: {}", run.describe());
        assert!(
            run.stderr.contains("unknown topic 'nope'"),
            "{args:?}: {}",
            run.describe()
        );
    }
}

/// Issue 18 item 5: `topic describe` without a name describes every topic (as kafka-topics.sh
/// --describe does), and `--bootstrap-server` works before the subcommand as well as after it.
#[test]
fn describe_without_a_name_and_global_flags_before_the_subcommand() {
    let _serial = serial();
    let broker = Broker::start("describe-all");
    create_topic(&broker, "alpha", "2");
    create_topic(&broker, "beta", "1");
    let bootstrap = broker.bootstrap();
    let global_first = |args: &[&str]| {
        let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .args(["--bootstrap-server", &bootstrap])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shardlog");
        let run = Run::finish(child, args);
        assert_eq!(run.code, 0, "{args:?} failed:\n{}", run.describe());
        run
    };

    let list = global_first(&["topic", "list"]);
    assert!(list.stdout.contains("alpha"), "{}", list.describe());
    let all = global_first(&["topic", "describe"]);
    assert!(
        all.stdout.contains("Topic: alpha  Partitions: 2"),
        "{}",
        all.describe()
    );
    assert!(
        all.stdout.contains("Topic: beta  Partitions: 1"),
        "{}",
        all.describe()
    );
    let json = broker.json(&["topic", "describe"]);
    let names: Vec<&str> = json
        .as_array()
        .expect("an array of topics")
        .iter()
        .map(|t| t["topic"].as_str().expect("topic name"))
        .collect();
    assert_eq!(names, ["alpha", "beta"], "{json}");
    assert_eq!(
        json[0]["partitions"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );

    // The global flags reach every broker-facing command family.
    let group_list = global_first(&["group", "list"]);
    assert!(
        group_list.stdout.starts_with("GROUP"),
        "{}",
        group_list.describe()
    );
    let produced = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args([
            "--bootstrap-server",
            &bootstrap,
            "--request-timeout-ms",
            "20000",
        ])
        .args(["produce", "--topic", "beta"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(b"one\n")?;
            child.wait_with_output()
        })
        .expect("run produce");
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = global_first(&[
        "consume",
        "--topic",
        "beta",
        "--from-beginning",
        "--max-messages",
        "1",
        "--timeout-ms",
        CONSUMER_IDLE_MS,
    ]);
    assert_eq!(consumed.lines(), ["one"], "{}", consumed.describe());
}
