"""Contract: topic administration through the stock admin clients.

- CreateTopics with 3 partitions succeeds; the topic then appears in Metadata (list) with 3
  partitions, each led by the one broker that Metadata lists, at the advertised address.
- Creating an existing topic fails with TOPIC_ALREADY_EXISTS (36), Kafka's code for it.
- CreateTopics with validate_only creates nothing.
- DeleteTopics removes the topic from Metadata; a topic re-created under the same name starts
  empty (offsets from 0) with its new partition count.
Checked with confluent-kafka (librdkafka) and kafka-python.
"""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

import kafka.admin
import kafka.errors

from clients import (ADMIN_TIMEOUT_S, KP_CLOSE_TIMEOUT_S, METADATA_TIMEOUT_S, POLL_INTERVAL_S,
                     Deadline, ck_admin, ck_create_topic, ck_partition_count, ck_produce,
                     ck_producer, ck_watermarks, kp_admin, kp_consumer, kp_produce, kp_producer)
from harness import unique_topic

# After DeleteTopics returns, metadata converges within this bound (Kafka is eventually
# consistent here; a single broker should be immediate).
DELETE_VISIBLE_TIMEOUT_S = 15.0


# ---------------------------------------------------------------------------------- confluent

def test_confluent_create_list_describe(broker):
    topic = unique_topic("admin")
    ck_create_topic(broker.bootstrap, topic, 3)

    md = ck_admin(broker.bootstrap).list_topics(timeout=METADATA_TIMEOUT_S)
    assert len(md.brokers) == 1, f"expected one broker, metadata lists {md.brokers}"
    (broker_md,) = md.brokers.values()
    assert (broker_md.host, broker_md.port) == (broker.host, broker.port)
    assert topic in md.topics, f"{topic} not listed; topics: {sorted(md.topics)}"
    t = md.topics[topic]
    assert t.error is None, t.error
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert p.error is None, p.error
        assert p.leader == broker_md.id
        assert list(p.replicas) == [broker_md.id]
        assert list(p.isrs) == [broker_md.id]

    from confluent_kafka import TopicCollection
    admin = ck_admin(broker.bootstrap)  # keep the handle alive until its futures complete
    desc = admin.describe_topics(
        TopicCollection([topic]), request_timeout=ADMIN_TIMEOUT_S)[topic].result(
        timeout=ADMIN_TIMEOUT_S)
    assert desc.name == topic
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    assert all(p.leader.id == broker_md.id for p in desc.partitions)
    for p in range(3):
        assert ck_watermarks(broker.bootstrap, topic, p) == (0, 0)


def test_confluent_create_existing_topic_fails_with_topic_already_exists(broker):
    topic = unique_topic("dup")
    ck_create_topic(broker.bootstrap, topic, 3)
    with pytest.raises(KafkaException) as exc:
        ck_create_topic(broker.bootstrap, topic, 3)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert ck_partition_count(broker.bootstrap, topic) == 3


def test_confluent_validate_only_creates_nothing(broker):
    topic = unique_topic("validate")
    admin = ck_admin(broker.bootstrap)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1)], validate_only=True,
        request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    md = ck_admin(broker.bootstrap).list_topics(timeout=METADATA_TIMEOUT_S)
    assert topic not in md.topics


def test_confluent_delete_topic_then_recreate_starts_empty(broker):
    topic = unique_topic("del")
    ck_create_topic(broker.bootstrap, topic, 3)
    ck_produce(ck_producer(broker.bootstrap), topic, [(b"k", b"v%d" % i, i % 3) for i in range(30)])
    assert ck_watermarks(broker.bootstrap, topic, 0) == (0, 10)

    admin = ck_admin(broker.bootstrap)
    futures = admin.delete_topics([topic], operation_timeout=ADMIN_TIMEOUT_S,
                                  request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    deadline = Deadline(DELETE_VISIBLE_TIMEOUT_S, f"{topic} gone from metadata")
    while topic in ck_admin(broker.bootstrap).list_topics(timeout=METADATA_TIMEOUT_S).topics:
        deadline.check()
        time.sleep(POLL_INTERVAL_S)

    ck_create_topic(broker.bootstrap, topic, 2)
    assert ck_partition_count(broker.bootstrap, topic) == 2
    assert ck_watermarks(broker.bootstrap, topic, 0) == (0, 0)
    assert ck_watermarks(broker.bootstrap, topic, 1) == (0, 0)


def test_confluent_delete_unknown_topic_fails(broker):
    topic = unique_topic("never")
    admin = ck_admin(broker.bootstrap)
    futures = admin.delete_topics([topic], request_timeout=ADMIN_TIMEOUT_S)
    with pytest.raises(KafkaException) as exc:
        futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    assert exc.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


# ------------------------------------------------------------------------------- kafka-python

def test_kafka_python_create_list_describe(broker):
    topic = unique_topic("kpadmin")
    admin = kp_admin(broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        assert topic in admin.list_topics()
        (desc,) = admin.describe_topics([topic])
        assert desc["error_code"] == 0, desc
        assert desc["name"] == topic
        parts = sorted(desc["partitions"], key=lambda p: p["partition_index"])
        assert [p["partition_index"] for p in parts] == [0, 1, 2]
        cluster = admin.describe_cluster()
        (b,) = cluster["brokers"]
        assert (b["host"], b["port"]) == (broker.host, broker.port)
        for p in parts:
            assert p["error_code"] == 0
            assert p["leader_id"] == b["broker_id"]
            assert p["replica_nodes"] == [b["broker_id"]]
    finally:
        admin.close()
    c = kp_consumer(broker.bootstrap)
    try:
        tps = [kafka.TopicPartition(topic, p) for p in range(3)]
        assert set(c.partitions_for_topic(topic)) == {0, 1, 2}
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps) == {tp: 0 for tp in tps}
    finally:
        c.close()


def test_kafka_python_create_existing_topic_fails(broker):
    topic = unique_topic("kpdup")
    admin = kp_admin(broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    finally:
        admin.close()


def test_kafka_python_delete_topic(broker):
    topic = unique_topic("kpdel")
    admin = kp_admin(broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        p = kp_producer(broker.bootstrap)
        kp_produce(p, topic, [(None, b"x", 0)])
        p.close(timeout=KP_CLOSE_TIMEOUT_S)
        admin.delete_topics([topic])
        deadline = Deadline(DELETE_VISIBLE_TIMEOUT_S, f"{topic} gone from metadata")
        while topic in admin.list_topics():
            deadline.check()
            time.sleep(POLL_INTERVAL_S)
    finally:
        admin.close()
