"""Contract (issue 4): consumer groups behave as in Kafka for stock clients.

Every test here carries the `groups` marker; `make test` runs them (CLIENT_TEST_MARKERS="not
groups" leaves them out). They are never skipped silently.

- Two members on a 6-partition topic split it 3/3, disjoint and complete; a third joins and it
  becomes 2/2/2 (eager range/roundrobin and cooperative-sticky; with cooperative-sticky the
  old members keep a subset of what they had and are never left with nothing).
- A member killed with SIGKILL loses its partitions to the survivor once the session times out.
- A static member (group.instance.id) killed and restarted within the session timeout gets
  the same partitions back, and the other member sees no rebalance.
- Offsets committed before a broker kill -9 are there after restart: the group resumes exactly
  after them, with nothing lost and nothing re-read.
- Two groups read the same topic independently (publish-subscribe): each gets every record.
Members run as subprocesses (group_member.py, through group_members.py) so they can be
killed; confluent-kafka (librdkafka) and kafka-python. Each member's stderr (its assignment
changes and kafka-python's coordinator log, UTC timestamps) goes to a file under
target/test-data; a failing test prints each member's tail next to the broker's (whose log
has a line per group lifecycle event) and keeps the files.
"""

import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

import kafka
from clients import (CONSUME_TIMEOUT_S, Deadline, ck_admin, ck_create_topic, ck_produce,
                     ck_producer)
import group_members
from group_members import GROUP_SETTLE_TIMEOUT_S, MemberProcess, started_members
from harness import unique_topic

pytestmark = pytest.mark.groups

PARTITIONS = 6
SESSION_MS = 6000
STATIC_SESSION_MS = 30000
NO_REBALANCE_OBSERVATION_S = 5.0
MEMBER_SCRIPT = Path(__file__).with_name("group_member.py")


class Member(MemberProcess):
    def __init__(self, stderr_path, client, bootstrap, topic, group, strategy, instance_id=None,
                 session_ms=SESSION_MS):
        self.history: list[list[int]] = []
        self.records = 0
        super().__init__(stderr_path, [sys.executable, str(MEMBER_SCRIPT), client, bootstrap,
                                       topic, group, strategy, instance_id or "-",
                                       str(session_ms)])

    def on_event(self, event):
        if "assignment" in event:
            self.history.append(event["assignment"])
        else:
            self.records = event["records"]

    def assignment(self):
        with self.lock:
            return self.history[-1] if self.history else None

    def changes(self):
        with self.lock:
            return len(self.history)


@pytest.fixture(autouse=True)
def group_debug_log(monkeypatch):
    """The brokers of these tests also log each join/sync answer (DEBUG of the group state
    machine), so a failure shows whether a member was sent its answer."""
    monkeypatch.setenv("RUST_LOG", "info,shardlog::group=debug")


@pytest.fixture
def members(request):
    yield from started_members(request, Member, "group member")


def wait_split(ms, sizes, what):
    return group_members.wait_split(ms, sizes, what, PARTITIONS)


STRATEGIES = [("confluent", "range"), ("confluent", "roundrobin"),
              ("confluent", "cooperative-sticky"), ("kafka-python", "range"),
              ("kafka-python", "roundrobin"), ("kafka-python", "cooperative-sticky")]


@pytest.mark.parametrize("client,strategy", STRATEGIES)
def test_split_then_third_member_joins(broker, members, client, strategy):
    topic, group = unique_topic("g6"), unique_topic("grp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    m1 = members(client, broker.bootstrap, topic, group, strategy)
    m2 = members(client, broker.bootstrap, topic, group, strategy)
    before = wait_split([m1, m2], [3, 3], "3/3 split")
    m3 = members(client, broker.bootstrap, topic, group, strategy)
    after = wait_split([m1, m2, m3], [2, 2, 2], "2/2/2 split")
    if strategy == "cooperative-sticky":
        assert set(after[0]) <= set(before[0]) and set(after[1]) <= set(before[1]), (
            f"cooperative rebalance moved kept partitions: {before} -> {after}")
        for m in (m1, m2):
            first = next(i for i, a in enumerate(m.history) if a)
            assert all(m.history[first:]), f"cooperative member lost everything: {m.history}"


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_killed_member_partitions_move(broker, members, client):
    topic, group = unique_topic("gk"), unique_topic("grp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    m1 = members(client, broker.bootstrap, topic, group, "range")
    m2 = members(client, broker.bootstrap, topic, group, "range")
    wait_split([m1, m2], [3, 3], "3/3 split")
    m2.kill9()
    wait_split([m1], [PARTITIONS], "survivor takes all partitions after session timeout")
    # The broker log says why: the killed member's session expired (the diagnosis aid).
    log = broker.log_path.read_text(errors="replace")
    assert any("group member expired" in line and f"group={group} " in line
               for line in log.splitlines()), f"no expiry logged for {group}"


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_static_member_restart_keeps_assignment(broker, members, client):
    topic, group = unique_topic("gs"), unique_topic("grp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    m1 = members(client, broker.bootstrap, topic, group, "range", "static-a", STATIC_SESSION_MS)
    m2 = members(client, broker.bootstrap, topic, group, "range", "static-b", STATIC_SESSION_MS)
    _, b_partitions = wait_split([m1, m2], [3, 3], "3/3 split")
    m1_changes = m1.changes()
    m2.kill9()
    m2b = members(client, broker.bootstrap, topic, group, "range", "static-b", STATIC_SESSION_MS)
    deadline = Deadline(GROUP_SETTLE_TIMEOUT_S, "restarted static member gets its partitions")
    while m2b.assignment() != b_partitions:
        deadline.check(f"m2b has {m2b.assignment()}, expected {b_partitions}")
        time.sleep(0.2)
    time.sleep(NO_REBALANCE_OBSERVATION_S)  # give a wrongful rebalance time to show
    assert m1.changes() == m1_changes, f"the other member saw a rebalance: {m1.history}"
    assert m2b.assignment() == b_partitions


# ---------------------------------------------------------------- committed offsets

RECORDS_PER_PARTITION = 100
COMMIT_PARTITIONS = 3


def consume_group(client, bootstrap, topic, group, limit):
    """Consume up to `limit` records in `group`, commit synchronously, return
    {partition: [offsets]} and the committed offsets."""
    got: dict[int, list[int]] = {p: [] for p in range(COMMIT_PARTITIONS)}
    deadline = Deadline(CONSUME_TIMEOUT_S, f"group {group} consuming {limit}")
    if client == "confluent":
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        try:
            while sum(map(len, got.values())) < limit:
                deadline.check(f"got {sum(map(len, got.values()))}")
                for msg in c.consume(num_messages=min(50, limit - sum(map(len, got.values()))),
                                     timeout=0.5):
                    assert msg.error() is None, msg.error()
                    got[msg.partition()].append(msg.offset())
            c.commit(asynchronous=False)
            committed = {tp.partition: tp.offset for tp in c.committed(
                [TopicPartition(topic, p) for p in range(COMMIT_PARTITIONS)], timeout=30)}
        finally:
            c.close()
    else:
        c = kafka.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=50)
        c.subscribe([topic])
        try:
            while sum(map(len, got.values())) < limit:
                deadline.check(f"got {sum(map(len, got.values()))}")
                for tp, msgs in c.poll(timeout_ms=500).items():
                    for m in msgs[:limit - sum(map(len, got.values()))]:
                        got[tp.partition].append(m.offset)
            # Commit exactly what was taken (a poll may hand over more than `limit`).
            c.commit({kafka.TopicPartition(topic, p): kafka.OffsetAndMetadata(
                got[p][-1] + 1, "", -1) for p in got if got[p]})
            committed = {p: (c.committed(kafka.TopicPartition(topic, p)) or -1001)
                         for p in range(COMMIT_PARTITIONS)}
        finally:
            c.close()
    return got, committed


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_committed_offsets_survive_broker_kill9(broker, client):
    topic, group = unique_topic("gc"), unique_topic("grp")
    ck_create_topic(broker.bootstrap, topic, COMMIT_PARTITIONS)
    total = RECORDS_PER_PARTITION * COMMIT_PARTITIONS
    ck_produce(ck_producer(broker.bootstrap), topic,
               [(None, b"r%d" % i, i % COMMIT_PARTITIONS) for i in range(total)])
    first, committed = consume_group(client, broker.bootstrap, topic, group, total // 2)
    for p, offsets in first.items():
        expected = offsets[-1] + 1 if offsets else -1001
        assert committed[p] == expected, f"partition {p}: committed {committed[p]}"
    broker.restart(kill9=True)
    second, committed_after = consume_group(client, broker.bootstrap, topic, group,
                                            total - total // 2)
    for p in range(COMMIT_PARTITIONS):
        resumed = second[p]
        start = first[p][-1] + 1 if first[p] else 0
        assert resumed == list(range(start, RECORDS_PER_PARTITION)), (
            f"partition {p}: resumed at {resumed[:3]}..., committed was {committed[p]}")
        assert committed_after[p] == RECORDS_PER_PARTITION


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_two_groups_read_independently(broker, client):
    topic = unique_topic("gp")
    ck_create_topic(broker.bootstrap, topic, COMMIT_PARTITIONS)
    total = RECORDS_PER_PARTITION * COMMIT_PARTITIONS
    ck_produce(ck_producer(broker.bootstrap), topic,
               [(None, b"r%d" % i, i % COMMIT_PARTITIONS) for i in range(total)])
    for group in (unique_topic("grpA"), unique_topic("grpB")):
        got, _ = consume_group(client, broker.bootstrap, topic, group, total)
        assert {p: sorted(o) for p, o in got.items()} == {
            p: list(range(RECORDS_PER_PARTITION)) for p in range(COMMIT_PARTITIONS)}



@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_default_initial_delay_puts_early_members_in_one_generation(broker_factory, members,
                                                                    client):
    """With Kafka's default group.initial.rebalance.delay.ms (3000), two members that subscribe
    within the delay get their first assignment from the same rebalance: each a share, neither
    ever all partitions (with a 0 delay the first would get all six, then give half back)."""
    broker = broker_factory("default-delay", initial_rebalance_delay_ms=None)
    topic = unique_topic("initial-delay")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    group = f"g-{topic}"
    a = members(client, broker.bootstrap, topic, group, "range")
    b = members(client, broker.bootstrap, topic, group, "range")
    wait_split([a, b], [3, 3], "two members split the topic")
    for m in (a, b):
        with m.lock:
            history = [assigned for assigned in m.history if assigned]
        assert history, "no assignment seen"
        assert len(history[0]) == 3, f"first assignment {history[0]} is not a half share"
        assert all(len(assigned) < PARTITIONS for assigned in history), \
            f"a member got every partition at some point: {history}"


# ---------------------------------------------------------------- groups per shard

GROUP_MAX_SIZE_REACHED = 81
REFUSAL_WAIT_S = 30


def refusal_seen(consumer: Consumer, errors: list) -> bool:
    """Polls `consumer` (subscribed, its JoinGroup refused) until librdkafka reports
    GROUP_MAX_SIZE_REACHED through poll() or the error callback; fails if it gets a record."""
    deadline = time.monotonic() + REFUSAL_WAIT_S
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is not None, "a refused group got a record"
            errors.append(msg.error().code())
        if GROUP_MAX_SIZE_REACHED in errors:
            return True
    return False


def first_record(conf: dict, group: str, topic: str) -> bytes:
    """A confluent-kafka member of `group` subscribes to `topic` and returns its first record."""
    consumer = Consumer({**conf, "group.id": group})
    consumer.subscribe([topic])
    deadline = Deadline(CONSUME_TIMEOUT_S, f"group {group} consuming")
    try:
        while True:
            deadline.check("no record yet")
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.value()
    finally:
        consumer.close()


def commit_error(conf: dict, group: str, topic: str) -> int | None:
    """A simple consumer (no subscription) commits offset 1 of partition 0 for `group`: the
    error code librdkafka reports, for the request or the partition (None: committed)."""
    consumer = Consumer({**conf, "group.id": group})
    try:
        committed = consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    except KafkaException as error:
        return error.args[0].code()
    finally:
        consumer.close()
    codes = [tp.error.code() for tp in committed or [] if tp.error is not None]
    return codes[0] if codes else None


def test_classic_groups_per_shard_are_bounded(broker_factory):
    """`group.classic_groups_max` = 1 on a one-shard broker, confluent-kafka: the first
    group consumes; a second group's JoinGroup and a third (simple consumer) group's
    OffsetCommit are refused GROUP_MAX_SIZE_REACHED; once the first is deleted, the second
    consumes and takes commits, and the first (now the one too many) is refused."""
    broker = broker_factory("classic-groups-max", shards=1, extra_args=[
        "--group-classic-groups-max", "1"])
    topic = unique_topic("cgmax")
    ck_create_topic(broker.bootstrap, topic, 1)
    ck_produce(ck_producer(broker.bootstrap), topic, [(None, b"only", 0)])
    first, second, third = (unique_topic(n) for n in ("cgmax-a", "cgmax-b", "cgmax-c"))
    conf = {"bootstrap.servers": broker.bootstrap, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    assert first_record(conf, first, topic) == b"only"

    errors: list = []
    refused = Consumer({**conf, "group.id": second,
                        "error_cb": lambda error: errors.append(error.code())})
    refused.subscribe([topic])
    try:
        assert refusal_seen(refused, errors), f"no GROUP_MAX_SIZE_REACHED, errors: {errors}"
    finally:
        refused.close()
    assert commit_error(conf, third, topic) == GROUP_MAX_SIZE_REACHED

    admin = ck_admin(broker.bootstrap)
    (future,) = admin.delete_consumer_groups([first], request_timeout=30).values()
    future.result(30)
    assert first_record(conf, second, topic) == b"only"
    assert commit_error(conf, second, topic) is None, "an existing group takes commits"
    assert commit_error(conf, first, topic) == GROUP_MAX_SIZE_REACHED
