"""Contract: DescribeConfigs on the BROKER resource (issue 21) reports the broker's real
settings under Kafka's names and forms, with source and synonyms as Kafka reports them.

- A broker started with a config file: every setting the file changes is reported with its
  value and source STATIC_BROKER_CONFIG, synonyms [the static value, the built-in default];
  settings left alone are DEFAULT_CONFIG. `listeners` and `advertised.listeners` carry the
  security-protocol prefix (`PLAINTEXT://host:port`), `log.dirs` is the data dir.
- Keys the broker does not act on (`log.flush.interval.ms`, `log.preallocate`, `log.dir`) are
  absent. Checked through confluent-kafka (librdkafka) and kafka-python admin clients; the
  STATIC_BROKER_CONFIG entries are exactly the settings the file and flags change.
"""

from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType
from kafka.admin import ConfigResource as KpConfigResource

from clients import ADMIN_TIMEOUT_S, ck_admin, kp_admin

CONFIG_TOML = """
[storage]
batch_bytes_max = 2000000
[topic_defaults]
num_partitions = 3
retention_ms = 3600000
[group]
offsets_topic_partitions = 4
"""
# Kafka name -> value the file above sets.
FILE_SETTINGS = {
    "message.max.bytes": "2000000",
    "num.partitions": "3",
    "log.retention.ms": "3600000",
    "offsets.topic.num.partitions": "4",
}
DEFAULTS = {
    "node.id": "0",
    "broker.id": "0",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "log.segment.bytes": str(1 << 30),
    "log.retention.bytes": "-1",
    "auto.create.topics.enable": "true",
    "socket.request.max.bytes": str(100 << 20),
    "log.cleanup.policy": "delete",
    "compression.type": "producer",
}
DYNAMIC = {"message.max.bytes", "log.retention.ms"}
IGNORED = ["log.flush.interval.ms", "log.preallocate", "log.dir", "log.roll.jitter.ms"]


def start_configured(broker_factory, tmp_path):
    path = tmp_path / "shardlog.toml"
    path.write_text(CONFIG_TOML)
    # The broker default for the group delay: the test lists every STATIC setting.
    return broker_factory("configured", extra_args=["--config", str(path)],
                          initial_rebalance_delay_ms=None)


def flag_settings(broker):
    """Settings the harness sets by flag: all static."""
    return {
        "listeners": f"PLAINTEXT://{broker.bootstrap}",
        "advertised.listeners": f"PLAINTEXT://{broker.bootstrap}",
        "log.dirs": str(broker.data_dir),
        "shardlog.shards": str(broker.shards),
    }


def test_broker_configs_confluent_kafka(broker_factory, tmp_path):
    broker = start_configured(broker_factory, tmp_path)
    admin = ck_admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.BROKER, "0")
    entries = admin.describe_configs([resource])[resource].result(timeout=ADMIN_TIMEOUT_S)
    static = {**FILE_SETTINGS, **flag_settings(broker)}
    for name, value in static.items():
        entry = entries[name]
        assert (entry.value, entry.source) == (value, ConfigSource.STATIC_BROKER_CONFIG.value), name
        # Dynamic keys (test_dynamic_broker_configs.py) can be altered; the others cannot.
        assert entry.is_read_only == (name not in DYNAMIC), name
    for name, value in DEFAULTS.items():
        entry = entries[name]
        assert (entry.value, entry.source) == (value, ConfigSource.DEFAULT_CONFIG.value), name
    # librdkafka keys synonyms by name, so only the last (the default) survives; the
    # order and both entries are checked with kafka-python below.
    (synonym,) = entries["num.partitions"].synonyms.values()
    assert (synonym.name, synonym.value, synonym.source) == (
        "num.partitions", "1", ConfigSource.DEFAULT_CONFIG.value)
    for name in IGNORED:
        assert name not in entries


def test_broker_configs_kafka_python(broker_factory, tmp_path):
    broker = start_configured(broker_factory, tmp_path)
    admin = kp_admin(broker.bootstrap)
    try:
        every = admin.describe_configs([KpConfigResource("BROKER", "0")],
                                       include_synonyms=True, config_filter="all")
    finally:
        admin.close()
    every = every["broker"]["0"]
    static = {**FILE_SETTINGS, **flag_settings(broker)}
    assert {name: entry["value"] for name, entry in every.items()
            if entry["config_source"] == "STATIC_BROKER_CONFIG"} == static
    for name, value in {**static, **DEFAULTS}.items():
        assert every[name]["value"] == value, name
    for name in IGNORED:
        assert name not in every
    assert every["num.partitions"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert every["num.partitions"]["synonyms"] == [
        {"name": "num.partitions", "value": "3", "source": "STATIC_BROKER_CONFIG"},
        {"name": "num.partitions", "value": "1", "source": "DEFAULT_CONFIG"}]
    assert every["min.insync.replicas"]["synonyms"] == [
        {"name": "min.insync.replicas", "value": "1", "source": "DEFAULT_CONFIG"}]
