"""Contract: exactly-once with a stock client (confluent-kafka / librdkafka).

- A transactional producer commits some transactions and aborts others across 3 partitions
  of one topic and 2 of another: a read_committed consumer sees exactly the committed
  records, in production order per partition; a read_uncommitted consumer sees all of them.
- A zombie: after a second producer initialises the same transactional.id, the first one is
  fenced (fatal error) and cannot commit; the new one commits normally.
- A consume-transform-produce application using send_offsets_to_transaction processes every
  input record exactly once although it is killed with SIGKILL mid-way and restarted.
- An idempotent producer streaming while the broker is killed with SIGKILL and restarted
  ends with exactly one copy of every record.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

from confluent_kafka import KafkaException, TopicPartition

from clients import (CONSUME_TIMEOUT_S, Deadline, POLL_INTERVAL_S, ck_consumer,
                     ck_create_topic, ck_producer)
from harness import unique_topic

TXN_TIMEOUT_S = 30.0
APP_RECORDS = 2000
APP_BATCH = 50
APP_TIMEOUT_S = 240.0


def read_values(bootstrap, partitions_by_topic, isolation, expect=None, settle_s=3.0):
    """Reads every record of the given partitions from the beginning; returns
    {(topic, partition): [values in offset order]}. Stops after `expect` records, or after
    `settle_s` without new records."""
    consumer = ck_consumer(bootstrap, **{"isolation.level": isolation})
    consumer.assign([TopicPartition(t, p, 0) for t, ps in partitions_by_topic.items() for p in ps])
    read = {}
    count = 0
    deadline = Deadline(CONSUME_TIMEOUT_S, "read back")
    quiet_since = time.time()
    while (expect is None or count < expect) and time.time() - quiet_since < settle_s:
        deadline.check()
        message = consumer.poll(POLL_INTERVAL_S)
        if message is None or message.error():
            continue
        read.setdefault((message.topic(), message.partition()), []).append(message.value())
        count += 1
        quiet_since = time.time()
    consumer.close()
    return read


def test_commit_and_abort_across_partitions_and_topics(broker):
    bs = broker.bootstrap
    topic_a, topic_b = unique_topic("txa"), unique_topic("txb")
    ck_create_topic(bs, topic_a, 3)
    ck_create_topic(bs, topic_b, 2)
    producer = ck_producer(bs, **{"transactional.id": unique_topic("tid"), "linger.ms": 1})
    producer.init_transactions(TXN_TIMEOUT_S)
    committed, everything = {}, {}
    for txn in range(8):
        producer.begin_transaction()
        for i in range(30):
            topic, partition = (topic_a, i % 3) if i % 2 else (topic_b, i % 2)
            value = f"txn{txn}-rec{i}".encode()
            producer.produce(topic, value=value, partition=partition)
            everything.setdefault((topic, partition), []).append(value)
            if txn % 3 != 1:
                committed.setdefault((topic, partition), []).append(value)
        producer.flush(TXN_TIMEOUT_S)  # aborted records really reach the broker
        if txn % 3 == 1:
            producer.abort_transaction(TXN_TIMEOUT_S)
        else:
            producer.commit_transaction(TXN_TIMEOUT_S)
    layout = {topic_a: [0, 1, 2], topic_b: [0, 1]}
    total_committed = sum(len(v) for v in committed.values())
    read_committed = read_values(bs, layout, "read_committed", expect=total_committed)
    assert read_committed == committed, "read_committed must see exactly the committed records, in order"
    total = sum(len(v) for v in everything.values())
    read_uncommitted = read_values(bs, layout, "read_uncommitted", expect=total)
    assert read_uncommitted == everything, "read_uncommitted must see every record"


def test_zombie_producer_is_fenced(broker):
    bs = broker.bootstrap
    topic = unique_topic("fence")
    ck_create_topic(bs, topic, 1)
    transactional_id = unique_topic("tid")
    zombie = ck_producer(bs, **{"transactional.id": transactional_id})
    zombie.init_transactions(TXN_TIMEOUT_S)
    successor = ck_producer(bs, **{"transactional.id": transactional_id})
    successor.init_transactions(TXN_TIMEOUT_S)
    fenced = False
    try:
        zombie.begin_transaction()
        zombie.produce(topic, value=b"zombie")
        zombie.commit_transaction(TXN_TIMEOUT_S)
    except KafkaException as error:
        fenced = error.args[0].fatal() or error.args[0].name() in ("_FENCED", "PRODUCER_FENCED")
    assert fenced, "the old producer was not fenced"
    successor.begin_transaction()
    successor.produce(topic, value=b"successor")
    successor.commit_transaction(TXN_TIMEOUT_S)
    values = read_values(bs, {topic: [0]}, "read_committed", expect=1)
    assert values == {(topic, 0): [b"successor"]}


APP_SOURCE = textwrap.dedent('''
    import sys
    from confluent_kafka import Consumer, Producer, TopicPartition
    bootstrap, source, sink, group, txn_id, batch = sys.argv[1:7]
    batch = int(batch)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(30)
    consumer.subscribe([source])
    while True:
        messages = consumer.consume(batch, timeout=1.0)
        messages = [m for m in messages if not m.error()]
        if not messages:
            continue
        producer.begin_transaction()
        for m in messages:
            producer.produce(sink, key=m.key(), value=b"transformed:" + m.value())
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
''')


def test_consume_transform_produce_is_exactly_once_across_app_kill(broker, tmp_path):
    bs = broker.bootstrap
    source, sink = unique_topic("src"), unique_topic("sink")
    ck_create_topic(bs, source, 2)
    ck_create_topic(bs, sink, 2)
    producer = ck_producer(bs, acks="all")
    for i in range(APP_RECORDS):
        producer.produce(source, key=str(i).encode(), value=f"v{i}".encode())
    assert producer.flush(TXN_TIMEOUT_S) == 0
    app = tmp_path / "app.py"
    app.write_text(APP_SOURCE)
    args = [sys.executable, str(app), bs, source, sink, unique_topic("g"), unique_topic("tid"), str(APP_BATCH)]
    layout = {sink: [0, 1]}

    def transformed():
        return sum(len(v) for v in read_values(bs, layout, "read_committed", settle_s=1.5).values())

    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = Deadline(APP_TIMEOUT_S, "first run of the app")
    while transformed() < APP_RECORDS // 4:
        deadline.check()
        assert first.poll() is None, "the app exited"
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = Deadline(APP_TIMEOUT_S, "second run of the app")
        while transformed() < APP_RECORDS:
            deadline.check()
            assert second.poll() is None, "the restarted app exited"
        time.sleep(2)  # let a duplicate, if any, show up
        read = read_values(bs, layout, "read_committed", expect=None)
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait()
    values = [v for vs in read.values() for v in vs]
    assert len(values) == len(set(values)), "a record was transformed twice"
    assert sorted(values) == sorted(f"transformed:v{i}".encode() for i in range(APP_RECORDS))


def test_idempotent_producer_survives_broker_kill(broker):
    bs = broker.bootstrap
    topic = unique_topic("idem")
    ck_create_topic(bs, topic, 2)
    producer = ck_producer(bs, **{"enable.idempotence": True, "acks": "all", "linger.ms": 2,
                                  "message.timeout.ms": 120000})
    acked = []
    for i in range(6000):
        producer.produce(topic, value=f"idem-{i}".encode(),
                         on_delivery=lambda err, m: acked.append(m.value()) if err is None else None)
        producer.poll(0)
        if i == 3000:
            broker.restart(kill9=True)
    assert producer.flush(TXN_TIMEOUT_S * 4) == 0, "records were never acknowledged"
    read = read_values(bs, {topic: [0, 1]}, "read_uncommitted", expect=len(acked))
    values = [v for vs in read.values() for v in vs]
    assert len(values) == len(set(values)), "duplicates after the broker restart"
    assert set(values) == set(acked) == {f"idem-{i}".encode() for i in range(6000)}
