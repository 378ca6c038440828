"""A consumer-group member run as its own process, so tests can kill -9 it.

usage: group_member.py CLIENT BOOTSTRAP TOPIC GROUP STRATEGY [INSTANCE_ID|-] [SESSION_MS]
  CLIENT   confluent | kafka-python
  STRATEGY range | roundrobin | cooperative-sticky

Prints one JSON line per change of its assignment: {"assignment": [partitions...]}, and
{"records": n} totals every second while it consumes. Exits cleanly (leaving the group, unless
static) on SIGTERM.

Its stderr is a diagnosis log with UTC timestamps, to line up with the broker's: each
assignment change, and for kafka-python the client's own group coordinator at INFO (joins,
syncs, heartbeat failures, revocations); test_groups.py prints its tail when a test fails.
"""

import json
import logging
import os
import signal
import sys
import time

running = True
log = logging.getLogger("group_member")


class CollapseRepeats(logging.Filter):
    """Drops a record whose message equals the previous one (kafka-python repeats e.g.
    "Failing OffsetCommit request ..." every auto-commit interval while it is out of the
    group) and says how many were dropped when the message changes, so a stderr tail still
    shows what happened before."""

    def __init__(self):
        super().__init__()
        self.last, self.repeats = None, 0

    def filter(self, record):
        message = (record.name, record.levelno, record.getMessage())
        if message == self.last:
            self.repeats += 1
            return False
        if self.repeats:
            record.msg = f"(previous message repeated {self.repeats} more times) {record.msg}"
        self.last, self.repeats = message, 0
        return True


def setup_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CollapseRepeats())
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s",
                                  datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    log.setLevel(logging.INFO)
    logging.getLogger("kafka.coordinator").setLevel(logging.INFO)


def stop(*_):
    global running
    running = False


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run_confluent(bootstrap, topic, group, strategy, instance_id, session_ms):
    from confluent_kafka import Consumer
    conf = {"bootstrap.servers": bootstrap, "group.id": group,
            "partition.assignment.strategy": strategy, "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 10),
            "auto.offset.reset": "earliest", "enable.auto.commit": True,
            "auto.commit.interval.ms": 200}
    if instance_id:
        conf["group.instance.id"] = instance_id
    c = Consumer(conf)
    c.subscribe([topic])
    last, count, last_report = None, 0, 0.0
    while running:
        msg = c.poll(0.1)
        if msg is not None and msg.error() is None:
            count += 1
        current = sorted(tp.partition for tp in c.assignment())
        if current != last:
            log.info("assignment %s", current)
            emit({"assignment": current})
            last = current
        if time.monotonic() - last_report > 1.0:
            emit({"records": count})
            last_report = time.monotonic()
    c.close()


def run_kafka_python(bootstrap, topic, group, strategy, instance_id, session_ms):
    import kafka
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                "cooperative-sticky": CooperativeStickyAssignor}[strategy]
    kw = dict(bootstrap_servers=bootstrap, group_id=group,
              partition_assignment_strategy=[assignor], session_timeout_ms=session_ms,
              heartbeat_interval_ms=max(100, session_ms // 10), auto_offset_reset="earliest",
              enable_auto_commit=True, auto_commit_interval_ms=200)
    if instance_id:
        kw["group_instance_id"] = instance_id
    c = kafka.KafkaConsumer(**kw)
    # Load the topic's metadata before joining. Otherwise a kafka-python 3.0.12 leader may
    # assign with no partitions known, rejoin at once when the metadata arrives, and drop the
    # SyncGroup response of that rejoin (its heartbeat stays disabled, the coordinator expires
    # it after the session timeout, and the process keeps polling with no assignment). Apache
    # Kafka's default group.initial.rebalance.delay.ms (3000, shardlog's too) hides the race;
    # the test brokers run with a 0 delay (docs/consumer-groups.md).
    assert c.partitions_for_topic(topic), f"no metadata for {topic}"
    c.subscribe([topic])
    last, count, last_report = None, 0, 0.0
    while running:
        for msgs in c.poll(timeout_ms=100).values():
            count += len(msgs)
        current = sorted(tp.partition for tp in c.assignment())
        if current != last:
            log.info("assignment %s", current)
            emit({"assignment": current})
            last = current
        if time.monotonic() - last_report > 1.0:
            emit({"records": count})
            last_report = time.monotonic()
    c.close()


def main():
    client, bootstrap, topic, group, strategy = sys.argv[1:6]
    instance_id = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] != "-" else None
    session_ms = int(sys.argv[7]) if len(sys.argv) > 7 else 10000
    signal.signal(signal.SIGTERM, stop)
    setup_logging()
    log.info("pid %d: %s", os.getpid(), " ".join(sys.argv[1:]))
    runner = run_confluent if client == "confluent" else run_kafka_python
    runner(bootstrap, topic, group, strategy, instance_id, session_ms)


if __name__ == "__main__":
    main()
