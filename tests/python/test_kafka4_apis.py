"""Contract: a Kafka 4.x client sees a 4.x broker (issue 21).

- kafka-python's broker-version inference (`check_version()` of its client, KafkaNetClient
  in 3.x, which picks the newest entry of its table whose probe API/version the broker
  advertises; (4, 0) is probed with ListOffsets v10, (4, 1) with Produce v13) reports (4, 0)
  or newer.
- ListOffsets special timestamps, asked through kafka-python's admin `list_partition_offsets`
  (which sends the newest version both sides support, v10 here) against known data:
  -3 MAX_TIMESTAMP is the offset and timestamp of the record with the largest timestamp, the
  first such record on ties, also inside a compressed batch and when later batches carry
  smaller timestamps; -4 EARLIEST_LOCAL is the log start offset (no tiered storage), also
  after DeleteRecords moved it; -5 LATEST_TIERED is -1 (nothing in remote storage). A time
  target answers the first record at or after it, also inside a compressed batch.
- DescribeTopicPartitions (API 75, KIP-966) through kafka-python's admin: pages of at most
  `response_partition_limit` partitions, the cursor leading through every partition of the
  named topics exactly once, in name order; leader/replicas/ISR = this broker; an unknown
  topic is reported with UNKNOWN_TOPIC_OR_PARTITION and takes no room; topic ids agree with
  Metadata. (The Java AdminClient's use of API 75 is checked in test_java.py.)
- ListConfigResources (API 74, KIP-1142) by raw round trip: v1 lists every topic (TOPIC) and
  this broker (BROKER, its node id) for an empty type list and only the asked types
  otherwise; client-metrics and group types list nothing here; a type Kafka does not define
  is INVALID_REQUEST; v0 (ListClientMetricsResources) lists no client-metrics resources.
"""

import kafka
import pytest
from kafka.admin import OffsetSpec
from kafka.net.compat import KafkaNetClient

import kafka_wire as wire
from clients import ck_create_topic, ck_produce, ck_producer, kp_admin
from harness import unique_topic

TS_BASE_MS = 1_700_000_000_000
# One produce call, one batch (linger): the largest timestamp twice, at offsets 1 and 3.
FIRST_BATCH_TS = [TS_BASE_MS + d for d in (0, 5000, 2000, 5000, 1000)]
# A later batch whose timestamps are all below that maximum.
SECOND_BATCH_TS = [TS_BASE_MS + d for d in (3000, 4000, 4500)]
MAX_TS_OFFSET = 1
KAFKA_4_0 = (4, 0)


# API key -> (min, max) versions the round-trip tests here and in test_wire.py exercise
# (test_list_offsets_every_version_answers: ListOffsets v1..v10; this file: ListOffsets v10
# and DescribeTopicPartitions v0 through kafka-python; ListConfigResources v0 and v1 raw).
# Raising a version in the API table without a round-trip test of it fails below.
ROUND_TRIPPED = {2: (1, 10), 74: (0, 1), 75: (0, 0)}
ERROR_INVALID_REQUEST = 42


def test_advertised_versions_are_the_round_tripped_ones(broker):
    body = wire.roundtrip(broker.bootstrap, wire.api_versions_flexible(1, 3))
    error, apis, _, _ = wire.parse_api_versions_v3(body[4:])
    assert error == wire.ERROR_NONE
    assert {key: apis.get(key) for key in ROUND_TRIPPED} == ROUND_TRIPPED


def test_check_version_reports_kafka_4(broker):
    # kafka-python 3.x replaced 2.x's KafkaClient with this drop-in (same check_version()).
    client = KafkaNetClient(bootstrap_servers=broker.bootstrap)
    try:
        version = client.check_version()
    finally:
        client.close()
    assert version >= KAFKA_4_0, f"kafka-python infers broker version {version}"


def produce_known_data(bootstrap, topic, compression):
    producer = ck_producer(bootstrap, **{"linger.ms": 200, "compression.type": compression})
    acks = ck_produce(producer, topic, [(None, b"a-%d" % i, 0, ts)
                                        for i, ts in enumerate(FIRST_BATCH_TS)])
    acks += ck_produce(producer, topic, [(None, b"b-%d" % i, 0, ts)
                                         for i, ts in enumerate(SECOND_BATCH_TS)])
    total = len(FIRST_BATCH_TS) + len(SECOND_BATCH_TS)
    assert [offset for _, offset in acks] == list(range(total))
    return total


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_list_offsets_special_timestamps_kafka_python(broker, compression):
    topic = unique_topic("lospecial")
    ck_create_topic(broker.bootstrap, topic, 1)
    total = produce_known_data(broker.bootstrap, topic, compression)
    tp = kafka.TopicPartition(topic, 0)
    admin = kp_admin(broker.bootstrap)
    try:
        def lookup(spec):
            found = admin.list_partition_offsets({tp: spec})[tp]
            return found.offset, found.timestamp

        assert lookup(OffsetSpec.EARLIEST) == (0, -1)
        assert lookup(OffsetSpec.LATEST) == (total, -1)
        assert lookup(OffsetSpec.MAX_TIMESTAMP) == (MAX_TS_OFFSET, TS_BASE_MS + 5000)
        assert lookup(OffsetSpec.EARLIEST_LOCAL) == (0, -1)
        assert lookup(OffsetSpec.LATEST_TIERED) == (-1, -1)
        # By time: the first record at or after the target, inside the (compressed) batch.
        assert lookup(TS_BASE_MS) == (0, TS_BASE_MS)
        assert lookup(TS_BASE_MS + 1) == (MAX_TS_OFFSET, TS_BASE_MS + 5000)
        assert lookup(TS_BASE_MS + 5001) == (-1, -1)
        # DeleteRecords moves the log start offset: earliest-local follows it.
        admin.delete_records({tp: 2})
        assert lookup(OffsetSpec.EARLIEST) == (2, -1)
        assert lookup(OffsetSpec.EARLIEST_LOCAL) == (2, -1)
        assert lookup(OffsetSpec.LATEST_TIERED) == (-1, -1)
    finally:
        admin.close()


def test_list_offsets_max_timestamp_on_empty_partition(broker):
    topic = unique_topic("loempty")
    ck_create_topic(broker.bootstrap, topic, 1)
    tp = kafka.TopicPartition(topic, 0)
    admin = kp_admin(broker.bootstrap)
    try:
        found = admin.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})[tp]
        assert (found.offset, found.timestamp) == (-1, -1)
    finally:
        admin.close()


# --------------------------------------------------------------- DescribeTopicPartitions (75)

def describe_pages(admin, topics, limit):
    """Every page of DescribeTopicPartitions, following next_cursor from the start."""
    pages, cursor = [], None
    while True:
        page = admin.describe_topic_partitions(topics, response_partition_limit=limit,
                                               cursor=cursor)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "DescribeTopicPartitions paging does not end"


def test_describe_topic_partitions_pages_with_cursor_kafka_python(broker):
    a, b = unique_topic("dtpa"), unique_topic("dtpb")
    ck_create_topic(broker.bootstrap, a, 5)
    ck_create_topic(broker.bootstrap, b, 2)
    first, second = sorted([a, b])
    counts = {a: 5, b: 2}
    admin = kp_admin(broker.bootstrap)
    try:
        (node_id,) = [b["broker_id"] for b in admin.describe_cluster()["brokers"]]
        pages = describe_pages(admin, [a, b], limit=3)
        seen = []
        for page in pages:
            assert sum(len(t["partitions"]) for t in page["topics"]) <= 3
            for topic in page["topics"]:
                assert topic["error_code"] == 0, topic
                assert topic["is_internal"] is False
                for p in topic["partitions"]:
                    assert (p["error_code"], p["leader_id"], p["replica_nodes"],
                            p["isr_nodes"]) == (0, node_id, [node_id], [node_id]), p
                    seen.append((topic["name"], p["partition_index"]))
        assert seen == [(t, i) for t in (first, second) for i in range(counts[t])]
        # 7 partitions, 3 a page: 3 pages, the first cursor inside the first topic.
        assert len(pages) == 3
        assert pages[0]["next_cursor"] == {"topic_name": first, "partition_index": 3}
        # All in one page; an unknown topic is reported and takes no room.
        missing = unique_topic("dtpmissing")
        (page,) = describe_pages(admin, [a, missing, b], limit=2000)
        by_name = {t["name"]: t for t in page["topics"]}
        assert by_name[missing]["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
        assert [len(by_name[t]["partitions"]) for t in (a, b)] == [5, 2]
        # The topic id is the one Metadata reports.
        (described,) = admin.describe_topics([a])
        assert str(by_name[a]["topic_id"]) == str(described["topic_id"])
    finally:
        admin.close()


def list_config_resources(bootstrap, version, types):
    body = wire.roundtrip(bootstrap, wire.list_config_resources(7, version, types))
    return wire.parse_list_config_resources(body[4:], version)


def test_list_config_resources_raw(broker):
    topics = sorted(unique_topic(f"lcr{i}") for i in range(2))
    for topic in topics:
        ck_create_topic(broker.bootstrap, topic, 2)
    error, every = list_config_resources(broker.bootstrap, 1, [])
    assert error == wire.ERROR_NONE
    listed_topics = {name for name, t in every if t == wire.RESOURCE_TOPIC}
    assert set(topics) <= listed_topics
    assert [r for r in every if r[1] != wire.RESOURCE_TOPIC] == [("0", wire.RESOURCE_BROKER)]
    assert len(every) == len(set(every))

    error, only_topics = list_config_resources(broker.bootstrap, 1, [wire.RESOURCE_TOPIC])
    assert (error, sorted(only_topics)) == (wire.ERROR_NONE, sorted(
        r for r in every if r[1] == wire.RESOURCE_TOPIC))
    assert list_config_resources(broker.bootstrap, 1, [wire.RESOURCE_BROKER]) == (
        wire.ERROR_NONE, [("0", wire.RESOURCE_BROKER)])
    assert list_config_resources(broker.bootstrap, 1, [wire.RESOURCE_CLIENT_METRICS, 32]) == (
        wire.ERROR_NONE, [])
    assert list_config_resources(broker.bootstrap, 1, [99]) == (ERROR_INVALID_REQUEST, [])
    assert list_config_resources(broker.bootstrap, 0, []) == (wire.ERROR_NONE, [])
