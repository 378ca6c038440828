"""Contract: /metrics times the stages of a produce and of a fetch on their own.

A confluent-kafka producer with acks=all and one with acks=1 write records, a consumer reads
them back and then long-polls at the end of the log. Afterwards every produce stage a
single broker goes through (queue wait, append, O_DIRECT write, flush wait for acks=1, sync
wait for acks=all, response encode, response write) and every fetch stage the consumer went
through (read, long-poll wait, response encode, response write) has a
`shardlog_{produce,fetch}_stage_duration_seconds` series with a count above zero, summed over
shards; the stages that need a cluster or an exhausted memory budget are present (count 0 or
more); each series' buckets are cumulative and end at its count.
"""

from __future__ import annotations

import time

import confluent_kafka
from confluent_kafka import TopicPartition

from clients import (ck_consumer, ck_create_topic, ck_produce, ck_producer,
                     ck_read_all, payloads)
from harness import unique_topic
from test_operations import scrape, total

PARTITIONS = 2
RECORDS = 400
LONG_POLL_S = 1.5   # consumer at the end of the log: each Fetch waits fetch.wait.max.ms
PRODUCE_STAGES = ("queue_wait", "append", "write", "flush_wait", "sync_wait",
                  "response_encode", "response_write")
PRODUCE_STAGES_MAYBE_ZERO = ("replication_wait",)
FETCH_STAGES = ("read", "wait", "response_encode", "response_write")
FETCH_STAGES_MAYBE_ZERO = ("memory_wait",)


def stage_count(families, family: str, stage: str) -> float:
    return total(families, family, f"{family}_count", stage=stage)


def assert_cumulative(families, family: str) -> None:
    per_series: dict[tuple, list[tuple[float, float]]] = {}
    counts: dict[tuple, float] = {}
    for (name, labels), value in families[family].items():
        rest = tuple(kv for kv in labels if kv[0] != "le")
        if name.endswith("_bucket"):
            per_series.setdefault(rest, []).append((float(dict(labels)["le"]), value))
        elif name.endswith("_count"):
            counts[rest] = value
    assert per_series, f"{family} has no buckets"
    for series, buckets in per_series.items():
        values = [v for _, v in sorted(buckets)]
        assert values == sorted(values), f"{family}{series} buckets not cumulative: {values}"
        assert values[-1] == counts[series], f"{family}{series} +Inf bucket != count"


def test_produce_and_fetch_stages_are_timed(broker):
    topic = unique_topic("stages")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    pool = payloads(64, seed=19, max_len=1024)
    half = RECORDS // 2
    for acks, start in (("all", 0), ("1", half)):
        producer = ck_producer(broker.bootstrap, acks=acks, **{"linger.ms": 2})
        ck_produce(producer, topic,
                   [(b"k%d" % i, pool[i % len(pool)]) for i in range(start, start + half)])
    read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)))
    assert sum(len(records) for records in read.values()) == RECORDS

    consumer = ck_consumer(broker.bootstrap, **{"fetch.wait.max.ms": 100})
    try:
        consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_END)
                         for p in range(PARTITIONS)])
        deadline = time.monotonic() + LONG_POLL_S
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            assert message is None or message.error() is None, message.error()
    finally:
        consumer.close()

    families = scrape(broker)
    produce = "shardlog_produce_stage_duration_seconds"
    fetch = "shardlog_fetch_stage_duration_seconds"
    for stage in PRODUCE_STAGES:
        assert stage_count(families, produce, stage) > 0, f"produce stage {stage} never timed"
    for stage in FETCH_STAGES:
        assert stage_count(families, fetch, stage) > 0, f"fetch stage {stage} never timed"
    for family, stages in ((produce, PRODUCE_STAGES_MAYBE_ZERO), (fetch, FETCH_STAGES_MAYBE_ZERO)):
        for stage in stages:
            assert any(dict(labels).get("stage") == stage for _, labels in families[family]), (
                f"{family} has no {stage} series")
    # Every produced partition append went through exactly one queue wait and one append.
    assert stage_count(families, produce, "queue_wait") == stage_count(families, produce, "append")
    assert_cumulative(families, produce)
    assert_cumulative(families, fetch)
