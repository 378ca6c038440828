"""Contract (issue 20): the KIP-848 `consumer` group protocol (ConsumerGroupHeartbeat) with a
stock client, confluent-kafka (librdkafka 2.16) with `group.protocol=consumer`.

- 1 -> 3 -> 2 members on a 6-partition topic: each step ends with every partition owned
  exactly once, and a member never saw a partition it kept through the step revoked
  (incremental reconciliation: only partitions that move are revoked, and a partition is
  assigned only after its previous owner revoked it).
- A member killed with SIGKILL loses its partitions to the survivor once the broker-side
  session (`group.consumer_session_timeout_ms`, short here) runs out.
- Offsets committed by a consumer-protocol member survive a broker kill -9; a new member
  resumes exactly after them.
- A regex subscription (`^prefix-.*`, sent as `subscribed_topic_regex`) is assigned the
  matching topic, then a matching topic created later, whose records arrive.
- A classic member (JoinGroup) cannot join a live consumer group: INCONSISTENT_GROUP_PROTOCOL.
- The group survives a broker kill -9 (its records in __consumer_offsets are replayed): the
  members carry on with their partitions, none is fenced or loses a partition, and a third
  member then joins the restored group.
- A static member (group.instance.id) that closes (a -2 leave) and restarts gets its
  partitions back, and the other member sees nothing revoked.
- The Java client 4.3 with group.protocol=consumer commits and resumes after its commits.
- Offset commits check the member epoch (OffsetCommit v9, as Kafka's
  ConsumerGroup.validateOffsetCommit): confluent-kafka commits at its epoch; a raw commit
  under the member's id at another epoch gets STALE_MEMBER_EPOCH, an unknown member id
  UNKNOWN_MEMBER_ID, v8 from the member UNSUPPORTED_VERSION; once the group is empty an admin
  commit (no member, epoch -1) is accepted.
- Admin, as Kafka 4 answers (confluent-kafka AdminClient): ListGroups lists the group with
  type `consumer` and filters by type; describe_consumer_groups (ConsumerGroupDescribe)
  shows its members with assigned and target partitions; `shardlog group describe` shows
  member epochs; DeleteGroups refuses it with NON_EMPTY_GROUP while a member is in it and
  deletes it, offsets included, once it is empty.
Members run as subprocesses (consumer_protocol_member.py, through group_members.py) so they
can be killed; a failing test prints each member's stderr tail next to the broker's.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import (Consumer, ConsumerGroupType, KafkaError, KafkaException,
                             TopicPartition)
from confluent_kafka.admin import AdminClient

import group_members
import kafka_wire as wire
from clients import CONSUME_TIMEOUT_S, Deadline, ck_create_topic, ck_produce, ck_producer
from group_members import GROUP_SETTLE_TIMEOUT_S, MemberProcess, started_members
from harness import broker_binary, unique_topic

pytestmark = pytest.mark.groups

PARTITIONS = 6
# Broker-side consumer-protocol session (the client has no say in it with this protocol).
SESSION_MS = 6000
HEARTBEAT_MS = 500
# Below Kafka's default bounds (45000 and 5000 ms), so the bounds come down with them.
BROKER_ARGS = ["--group-consumer-session-timeout-ms", str(SESSION_MS),
               "--group-consumer-session-timeout-ms-min", str(SESSION_MS),
               "--group-consumer-heartbeat-interval-ms", str(HEARTBEAT_MS),
               "--group-consumer-heartbeat-interval-ms-min", str(HEARTBEAT_MS)]
MEMBER_SCRIPT = Path(__file__).with_name("consumer_protocol_member.py")


class Member(MemberProcess):
    def __init__(self, stderr_path, bootstrap, topic, group, instance_id=None):
        self.events: list[dict] = []
        super().__init__(stderr_path, [sys.executable, str(MEMBER_SCRIPT), bootstrap, topic,
                                       group, instance_id or "-"])

    def on_event(self, event):
        self.events.append(event)

    def assignment(self):
        with self.lock:
            full = [e["assignment"] for e in self.events if "assignment" in e]
        return full[-1] if full else []

    def mark(self):
        with self.lock:
            return len(self.events)

    def revoked_since(self, mark):
        with self.lock:
            return {p for e in self.events[mark:] for p in e.get("revoke", []) + e.get("lost", [])}


@pytest.fixture
def consumer_broker(broker_factory):
    return broker_factory("consumer-protocol", extra_args=BROKER_ARGS)


@pytest.fixture
def members(request):
    yield from started_members(request, Member, "member")


def wait_split(ms, sizes, what):
    return group_members.wait_split(ms, sizes, what, PARTITIONS)


def assert_kept_never_revoked(ms, before, marks, after):
    for m, old, mark, new in zip(ms, before, marks, after):
        kept = set(old) & set(new)
        revoked = m.revoked_since(mark)
        assert not kept & revoked, (
            f"partitions {sorted(kept & revoked)} were revoked but kept: {old} -> {new}")


def test_one_three_two_members_reconcile_incrementally(consumer_broker, members):
    broker = consumer_broker
    topic, group = unique_topic("cp"), unique_topic("cgrp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    m1 = members(broker.bootstrap, topic, group)
    (only,) = wait_split([m1], [6], "one member owns all six")
    mark = m1.mark()
    m2 = members(broker.bootstrap, topic, group)
    m3 = members(broker.bootstrap, topic, group)
    three = wait_split([m1, m2, m3], [2, 2, 2], "2/2/2 split")
    assert_kept_never_revoked([m1], [only], [mark], three[:1])
    marks = [m1.mark(), m2.mark()]
    m3.stop()
    two = wait_split([m1, m2], [3, 3], "3/3 split after a member leaves")
    assert_kept_never_revoked([m1, m2], three[:2], marks, two)
    # The leaving member's partitions went to the others; nobody else moved.
    for old, new in zip(three[:2], two):
        assert set(old) <= set(new), f"{old} -> {new}"


def test_killed_member_partitions_move_after_the_session_timeout(consumer_broker, members):
    broker = consumer_broker
    topic, group = unique_topic("cpk"), unique_topic("cgrp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    m1 = members(broker.bootstrap, topic, group)
    m2 = members(broker.bootstrap, topic, group)
    wait_split([m1, m2], [3, 3], "3/3 split")
    m2.kill9()
    wait_split([m1], [PARTITIONS], "survivor takes all partitions after the session timeout")
    log = broker.log_path.read_text(errors="replace")
    assert any("consumer group member fenced" in line and "session timeout" in line
               and f"group={group}" in line for line in log.splitlines()), (
        f"no session expiry logged for {group}")


def test_static_member_restart_keeps_its_partitions(consumer_broker, members):
    broker = consumer_broker
    topic, group = unique_topic("cps"), unique_topic("cgrp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    m1 = members(broker.bootstrap, topic, group, "static-a")
    m2 = members(broker.bootstrap, topic, group, "static-b")
    before = wait_split([m1, m2], [3, 3], "3/3 split")
    mark = m1.mark()
    m2.stop()
    m2b = members(broker.bootstrap, topic, group, "static-b")
    after = wait_split([m1, m2b], [3, 3], "the restarted static member is back")
    assert after == before, f"{before} -> {after}"
    assert not m1.revoked_since(mark), "the other member saw a revocation"


def test_group_survives_a_broker_kill(consumer_broker, members):
    broker = consumer_broker
    topic, group = unique_topic("cpr"), unique_topic("cgrp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    m1 = members(broker.bootstrap, topic, group)
    m2 = members(broker.bootstrap, topic, group)
    before = wait_split([m1, m2], [3, 3], "3/3 split")
    marks = [m1.mark(), m2.mark()]
    broker.restart(kill9=True)
    m3 = members(broker.bootstrap, topic, group)
    after = wait_split([m1, m2, m3], [2, 2, 2], "2/2/2 split in the restored group")
    for m, old, mark, new in zip([m1, m2], before, marks, after):
        assert set(new) <= set(old), f"{old} -> {new}"
        with m.lock:
            lost = [e for e in m.events[mark:] if e.get("lost")]
        assert not lost, f"a member lost its partitions across the restart: {lost}"
    assert_kept_never_revoked([m1, m2], before, marks, after)
    log = broker.log_path.read_text(errors="replace")
    assert any("consumer group restored" in line and f"group={group}" in line
               and "members=2" in line for line in log.splitlines()), (
        f"no restore of {group} with two members logged")


def consumer(bootstrap, group, **conf):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "group.protocol": "consumer", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, **conf})


def topic_with_records(bootstrap, prefix, partitions, records):
    """A new topic holding `records` ((key, value) or (key, value, partition))."""
    topic = unique_topic(prefix)
    ck_create_topic(bootstrap, topic, partitions)
    ck_produce(ck_producer(bootstrap), topic, records)
    return topic


def subscribed(bootstrap, group, topic):
    c = consumer(bootstrap, group)
    c.subscribe([topic])
    return c


def first_records(bootstrap, prefix, count):
    """A consumer-protocol member of a new group that consumed the `count` records (values
    v0, v1, ...) of a new one-partition topic: (consumer, group, topic, messages)."""
    group = unique_topic("cgrp")
    records = [(None, f"v{i}".encode()) for i in range(count)]
    topic = topic_with_records(bootstrap, prefix, 1, records)
    c = subscribed(bootstrap, group, topic)
    return c, group, topic, consume(c, count, f"the first {count} records")


def consume(c, count, what):
    got = []
    deadline = Deadline(CONSUME_TIMEOUT_S, what)
    while len(got) < count:
        msg = c.poll(0.2)
        if msg is not None and msg.error() is None:
            got.append(msg)
        deadline.check(f"{len(got)} of {count}")
    return got


def test_committed_offsets_survive_a_broker_kill(consumer_broker):
    broker = consumer_broker
    c, group, topic, first = first_records(broker.bootstrap, "cpc", 10)
    assert [m.value() for m in first] == [f"v{i}".encode() for i in range(10)]
    committed = c.commit(asynchronous=False)
    assert [(tp.partition, tp.offset, tp.error) for tp in committed] == [(0, 10, None)]
    c.close()
    broker.restart(kill9=True)
    producer = ck_producer(broker.bootstrap)
    ck_produce(producer, topic, [(None, f"b{i}".encode()) for i in range(5)])
    c = subscribed(broker.bootstrap, group, topic)
    resumed = consume(c, 5, "the records after the commit")
    assert [m.offset() for m in resumed] == [10, 11, 12, 13, 14]
    assert [m.value() for m in resumed] == [f"b{i}".encode() for i in range(5)]
    c.close()


def test_a_regex_subscription_picks_up_a_new_topic(consumer_broker):
    """librdkafka sends a `^...` subscription as the heartbeat's `subscribed_topic_regex`;
    the broker matches topic names with it: the topic there is assigned at once, one created
    later is assigned on a later heartbeat and its records arrive."""
    broker = consumer_broker
    prefix = unique_topic("cprx")
    first, second = f"{prefix}-one", f"{prefix}-two"
    ck_create_topic(broker.bootstrap, first, 1)
    ck_produce(ck_producer(broker.bootstrap), first, [(None, b"one")])
    c = consumer(broker.bootstrap, unique_topic("cgrp"))
    c.subscribe([f"^{prefix}-.*"])
    try:
        got = consume(c, 1, "the record of the topic that matched from the start")
        assert [(m.topic(), m.value()) for m in got] == [(first, b"one")]
        ck_create_topic(broker.bootstrap, second, 1)
        ck_produce(ck_producer(broker.bootstrap), second, [(None, b"two")])
        got = consume(c, 1, "the record of the topic created after the subscription")
        assert [(m.topic(), m.value()) for m in got] == [(second, b"two")]
        assert sorted(tp.topic for tp in c.assignment()) == [first, second]
    finally:
        c.close()


def test_a_classic_member_cannot_join_a_live_consumer_group(consumer_broker):
    broker = consumer_broker
    topic, group = unique_topic("cpm"), unique_topic("cgrp")
    ck_create_topic(broker.bootstrap, topic, 2)
    modern = subscribed(broker.bootstrap, group, topic)
    deadline = Deadline(GROUP_SETTLE_TIMEOUT_S, "the consumer-protocol member is assigned")
    while not modern.assignment():
        modern.poll(0.2)
        deadline.check()
    errors = []
    classic = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                        "group.protocol": "classic", "session.timeout.ms": 6000,
                        "error_cb": errors.append})
    classic.subscribe([topic])
    deadline = Deadline(GROUP_SETTLE_TIMEOUT_S, "the classic member is refused")
    refused = None
    while refused is None:
        try:
            msg = classic.poll(0.2)
            if msg is not None and msg.error() is not None:
                refused = msg.error()
        except KafkaException as e:
            refused = e.args[0]
        for e in errors:
            refused = refused or e
        deadline.check(f"classic assignment {classic.assignment()}")
    assert refused.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL, refused
    assert not classic.assignment()
    classic.close()
    modern.close()


def test_java_client_consumer_protocol_commits_and_resumes(consumer_broker):
    """The Java client 4.3 with group.protocol=consumer: one member gets all six partitions
    (ASSIGN from its rebalance listener), consumes and commits 18 records; a second run of
    the group resumes at the commits and reads the other 12, none twice."""
    from test_java import java
    broker = consumer_broker
    topic, group = unique_topic("cpj"), unique_topic("cgrp")
    ck_create_topic(broker.bootstrap, topic, PARTITIONS)
    producer = ck_producer(broker.bootstrap)
    ck_produce(producer, topic, [(None, f"v{i}".encode(), i % PARTITIONS) for i in range(30)])
    first = java("cgroupconsume", broker.bootstrap, topic, group, "18", "90000")
    assert ["COMMITTED", "18"] in first
    assigned = sorted(int(p) for line in first if line[0] == "ASSIGN" for p in line[1:])
    assert assigned == list(range(PARTITIONS)), first
    second = java("cgroupconsume", broker.bootstrap, topic, group, "12", "90000")
    assert ["COMMITTED", "12"] in second
    seen = [line[3] for lines in (first, second) for line in lines if line[0] == "GREC"]
    assert sorted(seen, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(30)]
    # Both runs joined through ConsumerGroupHeartbeat, not JoinGroup.
    joins = [line for line in broker.log_path.read_text(errors="replace").splitlines()
             if "consumer group member joined" in line and f"group={group}" in line]
    assert len(joins) == 2, joins


ERROR_UNKNOWN_MEMBER_ID = 25
ERROR_UNSUPPORTED_VERSION = 35
ERROR_STALE_MEMBER_EPOCH = 113


def raw_commit(bootstrap, version, group, member_id, member_epoch, topic, offset):
    body = wire.roundtrip(bootstrap, wire.offset_commit_flexible(
        9, version, group, member_id, member_epoch, topic, 0, offset))
    return wire.parse_offset_commit_flexible(body[4:])[(topic, 0)]


def test_offset_commits_check_the_member_epoch(consumer_broker):
    broker = consumer_broker
    c, group, topic, _ = first_records(broker.bootstrap, "cpe", 4)
    committed = c.commit(asynchronous=False)
    assert [(tp.partition, tp.offset, tp.error) for tp in committed] == [(0, 4, None)]
    member_id = c.memberid()
    assert member_id, "the consumer-protocol member has an id"
    # Epoch 0 is behind any assigned member's epoch; 1,000,000 is ahead of it.
    for epoch in (0, 1_000_000):
        assert raw_commit(broker.bootstrap, 9, group, member_id, epoch, topic, 1) == \
            ERROR_STALE_MEMBER_EPOCH, epoch
    assert raw_commit(broker.bootstrap, 9, group, "no-such-member", 1, topic, 1) == \
        ERROR_UNKNOWN_MEMBER_ID
    assert raw_commit(broker.bootstrap, 9, group, "", -1, topic, 1) == ERROR_UNKNOWN_MEMBER_ID
    assert raw_commit(broker.bootstrap, 8, group, member_id, 1, topic, 1) == \
        ERROR_UNSUPPORTED_VERSION
    # None of the refused commits moved the offset.
    (fetched,) = c.committed([TopicPartition(topic, 0)], timeout=CONSUME_TIMEOUT_S)
    assert fetched.offset == 4
    c.close()
    # The group is empty now: a commit without a member (admin tools) is accepted.
    assert raw_commit(broker.bootstrap, 9, group, "", -1, topic, 2) == 0


ADMIN_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


def group_cli(bootstrap, *args):
    run = subprocess.run([str(broker_binary()), "--bootstrap-server", bootstrap, "group", *args,
                          "--format", "json"], capture_output=True, text=True,
                         timeout=CLI_TIMEOUT_S)
    assert run.returncode == 0, f"{args}: {run.returncode}\n{run.stdout}\n{run.stderr}"
    return json.loads(run.stdout)


def listed(admin, **kwargs):
    result = admin.list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S, **kwargs)
    return {g.group_id: g for g in result.result(ADMIN_TIMEOUT_S).valid}


def test_admin_lists_describes_and_deletes_a_consumer_group(consumer_broker):
    broker = consumer_broker
    group, classic_group = unique_topic("cgrp"), unique_topic("cgrp-classic")
    topic = topic_with_records(broker.bootstrap, "cpa", 2, [(None, b"x", p) for p in (0, 1)])
    c = subscribed(broker.bootstrap, group, topic)
    consume(c, 2, "both records")
    c.commit(asynchronous=False)
    # A classic group (an admin commit) beside it, for the type filter.
    assert raw_commit(broker.bootstrap, 9, classic_group, "", -1, topic, 1) == 0
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    every = listed(admin)
    assert every[group].type == ConsumerGroupType.CONSUMER
    assert every[classic_group].type == ConsumerGroupType.CLASSIC
    consumers = listed(admin, types={ConsumerGroupType.CONSUMER})
    assert group in consumers and classic_group not in consumers, sorted(consumers)
    classics = listed(admin, types={ConsumerGroupType.CLASSIC})
    assert classic_group in classics and group not in classics, sorted(classics)

    (described,) = admin.describe_consumer_groups(
        [group], request_timeout=ADMIN_TIMEOUT_S).values()
    description = described.result(ADMIN_TIMEOUT_S)
    assert description.type == ConsumerGroupType.CONSUMER
    assert description.partition_assignor == "uniform"
    (member,) = description.members
    assert member.member_id == c.memberid()
    owned = sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions)
    assert owned == [(topic, 0), (topic, 1)]
    target = sorted((tp.topic, tp.partition) for tp in member.target_assignment.topic_partitions)
    assert target == owned

    cli = group_cli(broker.bootstrap, "describe", group)
    assert (cli["group_type"], cli["state"], cli["protocol"]) == ("consumer", "Stable", "uniform")
    assert cli["group_epoch"] >= 1 and cli["assignment_epoch"] == cli["group_epoch"]
    (cli_member,) = cli["members"]
    assert cli_member["member_id"] == c.memberid()
    assert cli_member["member_epoch"] == cli["assignment_epoch"]
    assert cli_member["assignment"] == [{"topic": topic, "partitions": [0, 1]}]
    assert cli_member["target_assignment"] == cli_member["assignment"]
    assert sorted(r["committed_offset"] for r in cli["offsets"]) == [1, 1]
    listed_by_cli = {g["group"]: g for g in group_cli(broker.bootstrap, "list")}
    assert (listed_by_cli[group]["state"], listed_by_cli[group]["members"]) == ("Stable", 1)

    (refused,) = admin.delete_consumer_groups(
        [group], request_timeout=ADMIN_TIMEOUT_S).values()
    with pytest.raises(KafkaException) as error:
        refused.result(ADMIN_TIMEOUT_S)
    assert error.value.args[0].code() == KafkaError.NON_EMPTY_GROUP

    c.close()
    (deleted,) = admin.delete_consumer_groups(
        [group], request_timeout=ADMIN_TIMEOUT_S).values()
    assert deleted.result(ADMIN_TIMEOUT_S) is None
    assert group not in listed(admin)
    # Its offsets went with it: a new member starts from the beginning.
    again = subscribed(broker.bootstrap, group, topic)
    assert sorted(m.offset() for m in consume(again, 2, "both records again")) == [0, 0]
    again.close()


ERROR_GROUP_MAX_SIZE_REACHED = 81


def heartbeat(bootstrap, group, topic, member_id="", epoch=0):
    body = wire.roundtrip(bootstrap, wire.consumer_group_heartbeat_v0(
        3, group, member_id, epoch, topic))
    return wire.parse_consumer_group_heartbeat(body[4:])


def test_consumer_groups_per_shard_are_bounded(broker_factory):
    """`group.consumer_groups_max` = 1 on a one-shard broker: the first consumer group is
    created, a second is refused with GROUP_MAX_SIZE_REACHED and a message naming the
    setting, the first still takes members; once it is empty and deleted the second fits."""
    broker = broker_factory("consumer-groups-max", shards=1, extra_args=BROKER_ARGS + [
        "--group-consumer-groups-max", "1"])
    topic = topic_with_records(broker.bootstrap, "cpl", 1, [])
    first, second = unique_topic("cgrp"), unique_topic("cgrp")
    error, _, member = heartbeat(broker.bootstrap, first, topic)
    assert (error, bool(member)) == (0, True)
    error, message, _ = heartbeat(broker.bootstrap, second, topic)
    assert error == ERROR_GROUP_MAX_SIZE_REACHED
    assert "group.consumer_groups_max" in message, message
    error, _, other = heartbeat(broker.bootstrap, first, topic)
    assert error == 0, "the existing group takes members"
    for m in (member, other):
        assert heartbeat(broker.bootstrap, first, topic, m, -1)[0] == 0, "leave"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    (deleted,) = admin.delete_consumer_groups([first], request_timeout=ADMIN_TIMEOUT_S).values()
    assert deleted.result(ADMIN_TIMEOUT_S) is None
    assert heartbeat(broker.bootstrap, second, topic)[0] == 0
