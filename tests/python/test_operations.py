"""Contract: an operator can watch the broker under load and stop it safely.

- `/metrics` on the admin port, scraped repeatedly *while* a confluent-kafka producer is
  writing, is valid Prometheus text (parsed by prometheus_client's own parser, one HELP/TYPE per
  family), its counters only grow between scrapes, Produce request counts and bytes in grow
  during the load, histograms are cumulative, fsync latency is observed, memory in use stays
  within each budget, cross-shard messages are counted, and after the load the per-partition
  high watermark gauges add up to exactly the number of acknowledged records.
- SIGTERM in the middle of an acks=all produce stream: the broker stops on its own with exit
  code 0 (in-flight requests finished, logs synced), the restart finds the clean-shutdown
  markers (every partition log reports `clean=true`; the active segment is verified, but
  nothing is truncated or rebuilt), and every acknowledged record is readable at its
  acknowledged offset, byte-exact.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from clients import (BULK_CONSUME_TIMEOUT_S, PRODUCE_TIMEOUT_S, CkAckedStream, Deadline,
                     assert_matches_acks, ck_create_topic, ck_producer, ck_read_all, payloads)
from harness import BROKER_STOP_TIMEOUT_S, unique_topic

PARTITIONS = 4
SCRAPES_DURING_LOAD = 5       # scrapes taken while the producer is still writing
SCRAPE_INTERVAL_S = 0.2
HTTP_TIMEOUT_S = 10.0
SIGTERM_AFTER_ACKS = 5000     # stop the broker once this many records are acknowledged
PRODUCE_AFTER_SIGTERM = 300   # records handed to the producer after the signal
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def scrape(broker) -> dict[str, dict[tuple, float]]:
    """GET /metrics, parse it strictly; {family: {(sample name, sorted labels): value}}."""
    assert broker.admin_port, "broker binary has no --admin-listen"
    url = f"http://{broker.host}:{broker.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "text/plain"
        text = response.read().decode()
    families: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"metric family {family.name} rendered twice"
        assert family.documentation, f"metric family {family.name} has no HELP"
        families[family.name] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return families


def total(families, family: str, sample: str | None = None, **labels) -> float:
    """Sum of a family's samples (optionally one sample name) whose labels include `labels`.

    prometheus_client names a counter family without its `_total` suffix (the samples keep
    it), so `shardlog_x_total` is looked up as family `shardlog_x`."""
    if family not in families and family.endswith("_total"):
        family = family.removesuffix("_total")
    assert family in families, f"/metrics has no {family}; has {sorted(families)}"
    return sum(v for (name, lbls), v in families[family].items()
               if (sample is None or name == sample)
               and all(dict(lbls).get(k) == str(want) for k, want in labels.items()))


def produce_requests(families) -> float:
    return total(families, "shardlog_request_duration_seconds",
                 "shardlog_request_duration_seconds_count", api="Produce")


MONOTONIC_COUNTERS = ("shardlog_bytes_received_total", "shardlog_produce_bytes_total",
                      "shardlog_connections_accepted_total", "shardlog_log_bytes_written_total",
                      "shardlog_mesh_messages_sent_total")


def test_metrics_scraped_during_produce_load(broker):
    topic = unique_topic("metrics")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    pool = payloads(257, seed=91, max_len=1024)
    producer = ck_producer(broker.bootstrap, acks="all", **{"linger.ms": 1})
    acked, errors = [0], []
    stop = threading.Event()

    def on_delivery(err, msg):
        if err is None:
            acked[0] += 1
        else:
            errors.append(err)

    def produce_until_stopped():
        i = 0
        while not stop.is_set():
            try:
                producer.produce(topic, value=pool[i % len(pool)], key=b"k%d" % i,
                                 on_delivery=on_delivery)
                i += 1
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)

    writer = threading.Thread(target=produce_until_stopped, daemon=True)
    writer.start()
    scrapes = []
    try:
        deadline = Deadline(PRODUCE_TIMEOUT_S, "scrapes during the produce load")
        while len(scrapes) < SCRAPES_DURING_LOAD:
            deadline.check(f"(scrapes {len(scrapes)}, acked {acked[0]})")
            assert writer.is_alive(), "producer thread died"
            if acked[0] == 0 and not scrapes:
                time.sleep(SCRAPE_INTERVAL_S)  # first scrape once records are flowing
                continue
            scrapes.append(scrape(broker))
            time.sleep(SCRAPE_INTERVAL_S)
    finally:
        stop.set()
        writer.join(PRODUCE_TIMEOUT_S)
    assert producer.flush(PRODUCE_TIMEOUT_S) == 0
    assert not errors, f"{len(errors)} delivery errors, first {errors[:3]}"
    final = scrape(broker)
    scrapes.append(final)

    for name in MONOTONIC_COUNTERS:
        series = [total(s, name) for s in scrapes]
        assert series == sorted(series), f"{name} went down between scrapes: {series}"
    produce_counts = [produce_requests(s) for s in scrapes]
    assert produce_counts == sorted(produce_counts)
    assert produce_counts[SCRAPES_DURING_LOAD - 1] > produce_counts[0], (
        f"Produce request count did not grow during the load: {produce_counts}")
    received = [total(s, "shardlog_bytes_received_total") for s in scrapes]
    assert received[SCRAPES_DURING_LOAD - 1] > received[0]

    # Histograms: buckets cumulative, +Inf bucket == _count, for every (shard, api).
    histogram = final["shardlog_request_duration_seconds"]
    series: dict[tuple, list[tuple[float, float]]] = {}
    for (name, labels), value in histogram.items():
        if name.endswith("_bucket"):
            rest = tuple(kv for kv in labels if kv[0] != "le")
            series.setdefault(rest, []).append((float(dict(labels)["le"]), value))
    assert series, "no request latency buckets"
    for labels, buckets in series.items():
        counts = [count for _, count in sorted(buckets)]
        assert counts == sorted(counts), f"buckets not cumulative for {labels}: {counts}"
        assert counts[-1] == histogram[("shardlog_request_duration_seconds_count", labels)]

    # After the load: high watermarks add up to what was acknowledged; sizes are non-zero.
    highs = [total(final, "shardlog_partition_high_watermark", topic=topic, partition=p)
             for p in range(PARTITIONS)]
    assert sum(highs) == acked[0], f"high watermarks {highs} vs {acked[0]} acknowledged"
    assert total(final, "shardlog_partition_size_bytes", topic=topic) > 0
    assert total(final, "shardlog_produce_bytes_total") >= acked[0]
    assert total(final, "shardlog_log_syncs_total") >= 1
    assert total(final, "shardlog_connections_open") >= 1

    # fsync latency, memory against budget, cross-shard traffic (2 shards: a connection on one
    # shard routes the other shard's partitions over the channel mesh).
    assert total(final, "shardlog_log_sync_duration_seconds",
                 "shardlog_log_sync_duration_seconds_count") >= 1
    budgets = final["shardlog_memory_budget_bytes"]
    in_use = final["shardlog_memory_in_use_bytes"]
    pools = {dict(labels)["pool"] for _, labels in budgets}
    assert {"request", "batch_cache", "write_buffer"} <= pools, pools
    for (_, labels), budget in budgets.items():
        assert budget > 0, labels
        assert 0 <= in_use[("shardlog_memory_in_use_bytes", labels)] <= budget, labels
    assert total(final, "shardlog_mesh_messages_sent_total") > 0
    assert all(v >= 0 for v in final["shardlog_mesh_queue_depth"].values())
    assert "shardlog_requests_rejected" in final and "shardlog_requests_delayed" in final


def recovery_lines(broker) -> list[str]:
    """The 'partition log recovered' lines of the broker's current start."""
    text = ANSI.sub("", broker.log_path.read_text(errors="replace"))
    return [line for line in text.splitlines() if "partition log recovered" in line]


def test_sigterm_mid_load_then_clean_restart_loses_nothing(broker):
    topic = unique_topic("sigterm")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    pool = payloads(499, seed=92, max_len=600)
    producer = ck_producer(broker.bootstrap, acks="all", **{
        "linger.ms": 2, "message.timeout.ms": 20000,
        "max.in.flight.requests.per.connection": 5})
    stream = CkAckedStream(producer, topic, PARTITIONS)

    def produce_one(i):
        stream.produce(b"seq-%08d:" % i + pool[i % len(pool)])

    i = 0
    deadline = Deadline(PRODUCE_TIMEOUT_S, "acks before SIGTERM")
    while stream.acked_count() < SIGTERM_AFTER_ACKS:
        deadline.check()
        produce_one(i)
        i += 1
    broker.expected_exit = True
    broker.proc.send_signal(signal.SIGTERM)
    for _ in range(PRODUCE_AFTER_SIGTERM):  # requests in flight while the broker stops
        produce_one(i)
        i += 1
    code = broker.proc.wait(timeout=BROKER_STOP_TIMEOUT_S)
    assert code == 0, f"broker exited with {code} on SIGTERM\n{broker.stderr_tail()}"
    stopped_log = ANSI.sub("", broker.log_path.read_text(errors="replace"))
    assert "logs closed" in stopped_log, "shutdown did not close (sync) the logs"

    broker.start()
    lines = [line for line in recovery_lines(broker) if topic in line]
    assert len(lines) == PARTITIONS, f"expected {PARTITIONS} recovered logs, got {lines}"
    unclean = [line for line in lines if "clean=true" not in line]
    assert not unclean, f"restart after SIGTERM did not find the clean marker: {unclean}"
    restarted_log = ANSI.sub("", broker.log_path.read_text(errors="replace"))
    for marker in ("truncating torn tail", "full scan", "rebuilding segment index"):
        assert marker not in restarted_log, f"restart after SIGTERM logged '{marker}'"

    assert producer.flush(PRODUCE_TIMEOUT_S) == 0
    sent, acks = stream.acked()
    assert len(acks) >= SIGTERM_AFTER_ACKS
    read = ck_read_all(broker.bootstrap, topic, list(range(PARTITIONS)), BULK_CONSUME_TIMEOUT_S)
    assert_matches_acks(read, sent, acks)
