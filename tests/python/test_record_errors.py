"""Contract: a batch refused because of particular records names them (KIP-467, issue 18
item 2).

A compacted topic refuses a batch holding a record without a key. Kafka answers the
partition with INVALID_RECORD, an error_message, and `record_errors` (batch index and
message of each keyless record, Produce v8+), so clients fail exactly those records with
INVALID_RECORD and the others of the batch with a "different record" error
(librdkafka's _INVALID_DIFFERENT_RECORD, kafka-python's KafkaError). Nothing of the batch is
stored; the keyed records sent again on their own are.
"""

from __future__ import annotations

import kafka.errors
import pytest

import batch_wire as bw
from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from clients import (ADMIN_TIMEOUT_S, ck_admin, ck_create_topic, ck_produce, ck_producer,
                     ck_read_all, ck_watermarks, kp_producer)
from harness import unique_topic

INVALID_RECORD = 87
# Four records in one batch (a long linger holds them together); 1 and 3 have no key.
# Two, not one: with a single record error librdkafka (2.16) reports the partition's error
# for every record of the batch, so only two show the per-record split.
MESSAGES = [(b"k0", b"v0"), (None, b"no key"), (b"k2", b"v2"), (None, b"no key either")]
KEYLESS = (1, 3)
KEYED = (0, 2)


def compacted_topic(broker) -> str:
    topic = unique_topic("record-errors")
    ck_create_topic(broker.bootstrap, topic, 1)
    admin = ck_admin(broker.bootstrap)
    resource = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact",
                    incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    return topic


def assert_nothing_stored_then_keyed_records_are(broker, topic):
    assert ck_watermarks(broker.bootstrap, topic, 0)[1] == 0, "part of the batch was stored"
    keyed = [(key, value, 0) for key, value in MESSAGES if key is not None]
    ck_produce(ck_producer(broker.bootstrap), topic, keyed)
    read = ck_read_all(broker.bootstrap, topic, [0])[0]
    assert [(r.key, r.value) for r in read] == [(k, v) for k, v, _ in keyed]
    broker.assert_alive()


def test_librdkafka_fails_only_the_keyless_record_as_invalid(broker):
    topic = compacted_topic(broker)
    producer = ck_producer(broker.bootstrap, **{"linger.ms": 500, "retries": 0})
    reports = {}

    def report(index):
        return lambda error, _message: reports.__setitem__(index, error)

    for index, (key, value) in enumerate(MESSAGES):
        producer.produce(topic, value=value, key=key, partition=0, on_delivery=report(index))
    assert producer.flush(30) == 0, "delivery reports outstanding"
    assert sorted(reports) == list(range(len(MESSAGES)))
    codes = {index: error.code() if error else None for index, error in reports.items()}
    for index in KEYLESS:
        assert codes[index] == INVALID_RECORD, reports
    for index in KEYED:
        assert codes[index] == KafkaError._INVALID_DIFFERENT_RECORD, reports
    assert_nothing_stored_then_keyed_records_are(broker, topic)


def test_kafka_python_fails_only_the_keyless_record_as_invalid(broker):
    topic = compacted_topic(broker)
    producer = kp_producer(broker.bootstrap, linger_ms=500, retries=0)
    futures = [producer.send(topic, key=key, value=value, partition=0)
               for key, value in MESSAGES]
    producer.flush(30)
    errors = []
    for future in futures:
        with pytest.raises(kafka.errors.KafkaError) as raised:
            future.get(timeout=30)
        errors.append(raised.value)
    producer.close()
    for index in KEYLESS:
        assert isinstance(errors[index], kafka.errors.InvalidRecordError), errors
        assert "without key" in str(errors[index]), errors
    for index in KEYED:
        assert not isinstance(errors[index], kafka.errors.InvalidRecordError), errors
        assert "one more more invalid records" in str(errors[index]), errors
    assert_nothing_stored_then_keyed_records_are(broker, topic)


@pytest.mark.parametrize("version", [7, 8, 9, 10])
def test_produce_response_names_each_keyless_record(broker, version):
    """Raw wire: record_errors from v8 (flexible from v9), none before; nothing stored."""
    topic = compacted_topic(broker)
    section = b"".join(bw.encode_record(bw.Rec(i, b"v", key=None if i in (1, 3) else b"k"))
                       for i in range(4))
    result = bw.send_produce(broker.bootstrap, topic, 0, bw.batch(section, 4), version=version)
    assert result.error == INVALID_RECORD, result
    if version >= 8:
        assert [index for index, _ in result.record_errors] == [1, 3], result
        assert all("without key" in (message or "") for _, message in result.record_errors)
        assert "2 record errors" in (result.error_message or ""), result
    else:
        assert result.record_errors == []
    assert ck_watermarks(broker.bootstrap, topic, 0)[1] == 0
