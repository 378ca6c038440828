"""Contract: dynamic broker configs (issue 18 item 3; Kafka's KIP-226 semantics).

- IncrementalAlterConfigs on BROKER "0" (this broker) and BROKER "" (the cluster-wide
  default) change the dynamic keys; DescribeConfigs then reports the value with source
  DYNAMIC_BROKER_CONFIG / DYNAMIC_DEFAULT_BROKER_CONFIG, synonyms in Kafka's order
  (per-broker, cluster default, static, default), and a topic without an override reports
  the broker value it falls back to with that source.
- The change applies live: after message.max.bytes is lowered, a produce over it is refused
  with MESSAGE_TOO_LARGE and one under it accepted, without a restart; deleting the value
  restores the default.
- The values persist: after a restart (graceful and kill -9) they are still reported and
  still enforced.
- Refusals as Kafka: a static key (listeners) INVALID_REQUEST "Cannot update these configs
  dynamically", an unknown key or a bad value INVALID_CONFIG, another broker id
  INVALID_REQUEST; validate_only stores nothing. The legacy AlterConfigs (kafka-python) does
  the same on BROKER "0".
- A topic without a retention override picks up a new cluster-default log.retention.ms live.
- The topic-config defaults (log.cleanup.policy, compression.type, log.cleaner.*,
  log.message.timestamp.type) apply live to topics without their own value (a cluster-default
  log.cleanup.policy=compact refuses a keyless record at once), are validated as the topic
  config, persist, and deleting one restores Kafka's default.
- max.connections.per.ip applies to the next connections without a restart.
- Concurrent IncrementalAlterConfigs of different keys of one entity all take effect.
- `shardlog broker config --set/--delete` changes this broker's values and exits non-zero
  with the broker's message on each kind of refusal.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   ResourceType)
from kafka.admin import ConfigResource as KpConfigResource

import kafka_wire as wire
from clients import (ADMIN_TIMEOUT_S, PRODUCE_TIMEOUT_S, ck_admin, ck_consumer, ck_create_topic,
                     ck_produce, ck_producer, ck_watermarks, kp_admin, payloads)
from harness import broker_binary, unique_topic
from test_topic_configs import SEGMENT_BYTES, ck_create, maintenance_broker, wait_for_log_start

DEFAULT_MESSAGE_MAX_BYTES = str((1 << 20) + 12)
SMALL_MAX = 10240
OVER = b"x" * 20000
UNDER = b"y" * 2000


def alter(bootstrap: str, name: str, entries: dict[str, str | None],
          validate_only: bool = False) -> None:
    """SET each entry with a value, DELETE each with None; raises KafkaException on refusal."""
    ops = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) if v is not None
           else ConfigEntry(k, "", incremental_operation=AlterConfigOpType.DELETE)
           for k, v in entries.items()]
    resource = ConfigResource(ResourceType.BROKER, name, incremental_configs=ops)
    admin = ck_admin(bootstrap)  # kept alive until the results are in
    futures = admin.incremental_alter_configs([resource], validate_only=validate_only)
    for future in futures.values():
        future.result(timeout=ADMIN_TIMEOUT_S)


def describe(bootstrap: str, resource_type: ResourceType, name: str) -> dict:
    resource = ConfigResource(resource_type, name)
    admin = ck_admin(bootstrap)
    return admin.describe_configs([resource])[resource].result(timeout=ADMIN_TIMEOUT_S)


INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CONFIGS = 32
SOURCE_NAMES = {2: "DYNAMIC_BROKER_CONFIG", 3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
                4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG"}


def wire_alter(bootstrap: str, name: str, entries: dict[str, str | None]) -> tuple[int, str]:
    """IncrementalAlterConfigs v0 on BROKER `name` by hand: neither librdkafka nor kafka-python
    accepts the cluster-default entity "" as a resource name. SET, or DELETE for None."""
    configs = [wire.string(k) + wire.i8(0 if v is not None else 1) + wire.string(v)
               for k, v in entries.items()]
    body = (wire.i32(1) + wire.i8(wire.RESOURCE_BROKER) + wire.string(name)
            + wire.i32(len(configs)) + b"".join(configs) + wire.i8(0))
    request = wire.frame(wire.header_v1(INCREMENTAL_ALTER_CONFIGS, 0, 7) + body)
    reader = wire.Reader(wire.roundtrip(bootstrap, request))
    assert reader.i32() == 7  # correlation id
    reader.i32()  # throttle
    assert reader.i32() == 1
    error, message = reader.i16(), reader.string()
    return error, message


def wire_describe_broker(bootstrap: str, name: str) -> dict[str, tuple]:
    """DescribeConfigs v1 (synonyms) on BROKER `name`: {config: (value, source, synonyms)}."""
    body = (wire.i32(1) + wire.i8(wire.RESOURCE_BROKER) + wire.string(name) + wire.i32(-1)
            + wire.i8(1))
    request = wire.frame(wire.header_v1(DESCRIBE_CONFIGS, 1, 8) + body)
    reader = wire.Reader(wire.roundtrip(bootstrap, request))
    assert reader.i32() == 8
    reader.i32()
    assert reader.i32() == 1
    assert reader.i16() == 0
    reader.string(), reader.i8(), reader.string()
    configs = {}
    for _ in range(reader.i32()):
        config, value, _read_only = reader.string(), reader.string(), reader.i8()
        source, _sensitive = reader.i8(), reader.i8()
        synonyms = [(reader.string(), reader.string(), SOURCE_NAMES.get(reader.i8()))
                    for _ in range(reader.i32())]
        configs[config] = (value, SOURCE_NAMES.get(source), synonyms)
    assert reader.done()
    return configs


def refusal(bootstrap: str, name: str, entries: dict[str, str]) -> KafkaError:
    with pytest.raises(KafkaException) as raised:
        alter(bootstrap, name, entries)
    return raised.value.args[0]


def produce_one(bootstrap: str, topic: str, value: bytes):
    """One record in its own batch; the delivery error (None when accepted)."""
    producer = ck_producer(bootstrap, **{"linger.ms": 0, "compression.type": "none",
                                         "enable.idempotence": False, "retries": 0})
    outcome = []
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: outcome.append(err))
    assert producer.flush(PRODUCE_TIMEOUT_S) == 0
    assert len(outcome) == 1
    return outcome[0]


def assert_max_enforced(bootstrap: str, topic: str) -> None:
    error = produce_one(bootstrap, topic, OVER)
    assert error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE, error
    assert produce_one(bootstrap, topic, UNDER) is None


def test_message_max_bytes_applies_live_and_persists(broker):
    topic = unique_topic("dynmax")
    ck_create_topic(broker.bootstrap, topic, 2)
    assert produce_one(broker.bootstrap, topic, OVER) is None

    alter(broker.bootstrap, "0", {"message.max.bytes": str(SMALL_MAX)})
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["message.max.bytes"]
    assert (entry.value, entry.source) == (str(SMALL_MAX),
                                           ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert not entry.is_read_only
    topic_entry = describe(broker.bootstrap, ResourceType.TOPIC, topic)["max.message.bytes"]
    assert (topic_entry.value, topic_entry.source) == (
        str(SMALL_MAX), ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert_max_enforced(broker.bootstrap, topic)

    broker.restart()
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["message.max.bytes"]
    assert (entry.value, entry.source) == (str(SMALL_MAX),
                                           ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert_max_enforced(broker.bootstrap, topic)
    broker.restart(kill9=True)
    assert_max_enforced(broker.bootstrap, topic)

    alter(broker.bootstrap, "0", {"message.max.bytes": None})
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["message.max.bytes"]
    assert (entry.value, entry.source) == (DEFAULT_MESSAGE_MAX_BYTES,
                                           ConfigSource.DEFAULT_CONFIG.value)
    assert produce_one(broker.bootstrap, topic, OVER) is None


def test_cluster_default_precedence_and_synonyms(broker):
    topic = unique_topic("dyndefault")
    ck_create_topic(broker.bootstrap, topic, 1)
    assert wire_alter(broker.bootstrap, "", {"message.max.bytes": "20480",
                                             "log.retention.ms": "3600000"}) == (0, None)
    alter(broker.bootstrap, "0", {"message.max.bytes": str(SMALL_MAX)})

    default_entity = wire_describe_broker(broker.bootstrap, "")
    assert {name: entry[:2] for name, entry in default_entity.items()} == {
        "message.max.bytes": ("20480", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
        "log.retention.ms": ("3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG")}
    this_broker = describe(broker.bootstrap, ResourceType.BROKER, "0")
    retention = this_broker["log.retention.ms"]
    assert (retention.value, retention.source) == (
        "3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    topic_configs = describe(broker.bootstrap, ResourceType.TOPIC, topic)
    assert (topic_configs["retention.ms"].value, topic_configs["retention.ms"].source) == (
        "3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    # The per-broker value wins for this broker.
    assert_max_enforced(broker.bootstrap, topic)

    admin = kp_admin(broker.bootstrap)
    try:
        described = admin.describe_configs([KpConfigResource("BROKER", "0")],
                                           include_synonyms=True, config_filter="all")
        topic_described = admin.describe_configs([KpConfigResource("TOPIC", topic)],
                                                 include_synonyms=True, config_filter="all")
    finally:
        admin.close()
    max_bytes = described["broker"]["0"]["message.max.bytes"]
    assert max_bytes["config_source"] == "DYNAMIC_BROKER_CONFIG"
    assert max_bytes["synonyms"] == [
        {"name": "message.max.bytes", "value": str(SMALL_MAX), "source": "DYNAMIC_BROKER_CONFIG"},
        {"name": "message.max.bytes", "value": "20480",
         "source": "DYNAMIC_DEFAULT_BROKER_CONFIG"},
        {"name": "message.max.bytes", "value": DEFAULT_MESSAGE_MAX_BYTES,
         "source": "DEFAULT_CONFIG"}]
    retention_ms = topic_described["topic"][topic]["retention.ms"]
    assert retention_ms["synonyms"] == [
        {"name": "log.retention.ms", "value": "3600000",
         "source": "DYNAMIC_DEFAULT_BROKER_CONFIG"},
        {"name": "log.retention.ms", "value": str(7 * 24 * 3600 * 1000),
         "source": "DEFAULT_CONFIG"}]

    # Dropping the per-broker value falls back to the cluster default.
    alter(broker.bootstrap, "0", {"message.max.bytes": None})
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["message.max.bytes"]
    assert (entry.value, entry.source) == (
        "20480", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    assert produce_one(broker.bootstrap, topic, OVER) is None


def test_refusals_and_validate_only(broker):
    error = refusal(broker.bootstrap, "0", {"listeners": "PLAINTEXT://127.0.0.1:1"})
    assert error.code() == KafkaError.INVALID_REQUEST, error
    assert "Cannot update these configs dynamically: Set(listeners)" in error.str(), error
    error = refusal(broker.bootstrap, "0", {"no.such.config": "1"})
    assert error.code() == KafkaError.INVALID_CONFIG, error
    error, message = wire_alter(broker.bootstrap, "", {"message.max.bytes": "abc"})
    assert error == KafkaError.INVALID_CONFIG and "message.max.bytes" in message, message
    error = refusal(broker.bootstrap, "0", {"log.retention.ms": "-5"})
    assert error.code() == KafkaError.INVALID_CONFIG, error
    # Clients route a BROKER resource to the broker it names, so broker 7 is asked by hand.
    error, message = wire_alter(broker.bootstrap, "7", {"message.max.bytes": "20480"})
    assert error == KafkaError.INVALID_REQUEST, message
    assert message == "Unexpected broker id, expected 0 or empty string, but received 7"

    alter(broker.bootstrap, "0", {"message.max.bytes": "20480"}, validate_only=True)
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["message.max.bytes"]
    assert (entry.value, entry.source) == (DEFAULT_MESSAGE_MAX_BYTES,
                                           ConfigSource.DEFAULT_CONFIG.value)
    assert wire_describe_broker(broker.bootstrap, "") == {}


def test_kafka_python_alter_configs_on_broker(broker):
    """The legacy AlterConfigs (incremental=False) replaces the entity's set."""
    admin = kp_admin(broker.bootstrap)
    try:
        accepted = admin.alter_configs([KpConfigResource(
            "BROKER", "0", configs={"log.retention.bytes": "123456789"})], incremental=False)
        refused = admin.alter_configs([KpConfigResource(
            "BROKER", "0", configs={"log.dirs": "/elsewhere"})], incremental=False,
            raise_on_unknown=False)
    finally:
        admin.close()
    assert accepted == {"broker": {"0": "OK"}}, accepted
    message = refused["broker"]["0"]
    assert "InvalidRequest" in message and "Cannot update these configs dynamically" in message, \
        refused
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["log.retention.bytes"]
    assert (entry.value, entry.source) == ("123456789",
                                           ConfigSource.DYNAMIC_BROKER_CONFIG.value)


CLI_TIMEOUT_S = 60.0


def run_cli(broker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(broker_binary()), "--bootstrap-server", broker.bootstrap,
                           "broker", "config", *args],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_cli_broker_config_sets_deletes_and_surfaces_refusals(broker):
    done = run_cli(broker, "--set", "log.retention.ms=3600000", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"broker": 0, "configs": {"log.retention.ms": {
        "value": "3600000", "source": "DYNAMIC_BROKER_CONFIG"}}}
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["log.retention.ms"]
    assert (entry.value, entry.source) == ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

    for refused, words in [("listeners=PLAINTEXT://127.0.0.1:1", "Cannot update these configs"),
                           ("no.such.config=1", "Unknown broker config"),
                           ("message.max.bytes=abc", "message.max.bytes")]:
        done = run_cli(broker, "--set", refused)
        assert done.returncode != 0, (refused, done.stdout)
        assert words in done.stderr, (refused, done.stderr)

    done = run_cli(broker, "--delete", "log.retention.ms")
    assert done.returncode == 0, done.stderr
    assert "Broker 0 has no dynamic configs." in done.stdout, done.stdout
    entry = describe(broker.bootstrap, ResourceType.BROKER, "0")["log.retention.ms"]
    assert entry.source == ConfigSource.DEFAULT_CONFIG.value


CONCURRENT_ROUNDS = 8


def test_concurrent_incremental_edits_of_one_entity_all_apply(broker):
    """Edits of different keys from separate connections (spread over the shards) at once:
    each round's final set holds both, since the controller applies every edit to the set
    it holds, not to a copy the requesting shard read earlier."""
    for round_number in range(CONCURRENT_ROUNDS):
        roll_ms = str(3_600_000 + round_number)
        interval = str(4096 + round_number)
        edits = [{"log.roll.ms": roll_ms}, {"log.index.interval.bytes": interval}]
        with ThreadPoolExecutor(max_workers=len(edits)) as pool:
            for done in [pool.submit(alter, broker.bootstrap, "0", e) for e in edits]:
                done.result(timeout=ADMIN_TIMEOUT_S)
        configs = describe(broker.bootstrap, ResourceType.BROKER, "0")
        assert (configs["log.roll.ms"].value, configs["log.index.interval.bytes"].value) == (
            roll_ms, interval), round_number
        alter(broker.bootstrap, "0", {"log.roll.ms": None, "log.index.interval.bytes": None})


def test_topic_without_override_takes_the_new_retention_default_live(broker_factory, tmp_path):
    """A topic with no retention.ms of its own keeps 7 days of data until the cluster-wide
    log.retention.ms default drops to 1 s; then retention deletes its old segments, without
    a restart."""
    broker = maintenance_broker(broker_factory, tmp_path)
    topic = unique_topic("dynret")
    ck_create(broker.bootstrap, topic, 1, {"segment.bytes": str(SEGMENT_BYTES)})
    values = payloads(2000, seed=73, max_len=200)
    ck_produce(ck_producer(broker.bootstrap, **{"linger.ms": 0, "batch.size": SEGMENT_BYTES // 4}),
               topic, [(None, v, 0) for v in values])
    assert ck_watermarks(broker.bootstrap, topic, 0) == (0, len(values))
    assert wire_alter(broker.bootstrap, "", {"log.retention.ms": "1000"}) == (0, None)
    low, high = wait_for_log_start(broker.bootstrap, topic, "the dynamic log.retention.ms")
    assert 0 < low < high == len(values)


INVALID_RECORD = 87


def produce_keyed(bootstrap: str, topic: str, key: bytes | None):
    """One small record with `key` in its own batch; the delivery error (None if accepted)."""
    producer = ck_producer(bootstrap, **{"linger.ms": 0, "enable.idempotence": False,
                                         "retries": 0})
    outcome = []
    producer.produce(topic, key=key, value=b"v",
                     on_delivery=lambda err, _msg: outcome.append(err))
    assert producer.flush(PRODUCE_TIMEOUT_S) == 0
    assert len(outcome) == 1
    return outcome[0]


def test_topic_config_defaults_apply_live(broker):
    """log.cleanup.policy on the cluster-default entity makes every topic without its own
    cleanup.policy compacted at once: a keyless record is refused (INVALID_RECORD), a keyed
    one accepted; a topic's own value wins; the topic reports the default with its source;
    deleting the default restores `delete`. The other topic-default keys are accepted,
    reported, validated as their topic config, and persist across a restart."""
    plain = unique_topic("dyncleanup")
    own = unique_topic("dyncleanupown")
    ck_create_topic(broker.bootstrap, plain, 1)
    ck_create(broker.bootstrap, own, 1, {"cleanup.policy": "delete"})
    assert produce_keyed(broker.bootstrap, plain, None) is None

    assert wire_alter(broker.bootstrap, "", {"log.cleanup.policy": "compact"}) == (0, None)
    entry = describe(broker.bootstrap, ResourceType.TOPIC, plain)["cleanup.policy"]
    assert (entry.value, entry.source) == (
        "compact", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    error = produce_keyed(broker.bootstrap, plain, None)
    assert error is not None and error.code() == INVALID_RECORD, error
    assert produce_keyed(broker.bootstrap, plain, b"k") is None
    assert produce_keyed(broker.bootstrap, own, None) is None

    others = {"compression.type": "zstd", "log.cleaner.delete.retention.ms": "3600000",
              "log.cleaner.min.compaction.lag.ms": "1000",
              "log.cleaner.max.compaction.lag.ms": "7200000",
              "log.cleaner.min.cleanable.ratio": "0.25",
              "log.message.timestamp.type": "LogAppendTime",
              "log.cleaner.backoff.ms": "2000"}
    alter(broker.bootstrap, "0", others)
    error = refusal(broker.bootstrap, "0", {"compression.type": "brotli"})
    assert error.code() == KafkaError.INVALID_CONFIG, error
    error = refusal(broker.bootstrap, "0", {"log.cleaner.min.compaction.lag.ms": "-1"})
    assert error.code() == KafkaError.INVALID_CONFIG, error
    error = refusal(broker.bootstrap, "0", {"max.connections.per.ip": "0"})
    assert error.code() == KafkaError.INVALID_CONFIG, error
    # The internal topics keep their own settings: a group's commit, written under the zstd
    # and LogAppendTime defaults, is still there after the restart (the coordinator's replay
    # reads its own, uncompressed, batches).
    group = unique_topic("dyncleanupgrp")
    committer = ck_consumer(broker.bootstrap, **{"group.id": group})
    try:
        committer.commit(offsets=[TopicPartition(plain, 0, 1)], asynchronous=False)
    finally:
        committer.close()

    broker.restart()
    this_broker = describe(broker.bootstrap, ResourceType.BROKER, "0")
    for name, value in others.items():
        assert (this_broker[name].value, this_broker[name].source) == (
            value, ConfigSource.DYNAMIC_BROKER_CONFIG.value), name
    topic_configs = describe(broker.bootstrap, ResourceType.TOPIC, plain)
    assert topic_configs["compression.type"].value == "zstd"
    assert topic_configs["message.timestamp.type"].value == "LogAppendTime"
    error = produce_keyed(broker.bootstrap, plain, None)
    assert error is not None and error.code() == INVALID_RECORD, error
    probe = ck_consumer(broker.bootstrap, **{"group.id": group})
    try:
        committed = probe.committed([TopicPartition(plain, 0)], timeout=ADMIN_TIMEOUT_S)
    finally:
        probe.close()
    assert committed[0].offset == 1

    assert wire_alter(broker.bootstrap, "", {"log.cleanup.policy": None}) == (0, None)
    entry = describe(broker.bootstrap, ResourceType.TOPIC, plain)["cleanup.policy"]
    assert (entry.value, entry.source) == ("delete", ConfigSource.DEFAULT_CONFIG.value)
    assert produce_keyed(broker.bootstrap, plain, None) is None


def api_versions_answered(bootstrap: str, count: int) -> list[str]:
    """Opens `count` connections at once, asks ApiVersions on each, returns 'answered' or
    'closed' per connection in opening order (all are closed afterwards)."""
    sockets = [wire.connect(bootstrap) for _ in range(count)]
    try:
        outcomes = []
        for index, sock in enumerate(sockets):
            try:
                sock.sendall(wire.api_versions_v0(index))
            except (ConnectionResetError, BrokenPipeError):
                outcomes.append("closed")
                continue
            outcomes.append(wire.closed_or_answered(sock, 10.0))
        return outcomes
    finally:
        for sock in sockets:
            sock.close()


def test_max_connections_per_ip_applies_to_new_connections(broker):
    """max.connections.per.ip lowered to 3 on the running broker: of 5 new connections from
    this address, 3 are answered and the others closed; deleting it admits all again."""
    assert wire_alter(broker.bootstrap, "0", {"max.connections.per.ip": "3"}) == (0, None)
    outcomes: list[str] = []
    for _attempt in range(20):
        # The connection that made the change may not be released yet: try again then.
        outcomes = api_versions_answered(broker.bootstrap, 5)
        if outcomes.count("answered") == 3:
            break
    assert outcomes.count("answered") == 3, outcomes
    assert outcomes.count("closed") == 2, outcomes

    # The limit is full only while connections are held: one at a time is always let in.
    for _attempt in range(20):
        try:
            code, message = wire_alter(broker.bootstrap, "0", {"max.connections.per.ip": None})
            break
        except ConnectionError:
            continue
    assert (code, message) == (0, None)
    assert api_versions_answered(broker.bootstrap, 8) == ["answered"] * 8
