"""Contract (issue 17): ACLs with Kafka's authorizer semantics, managed with the admin API.

A broker with a SASL_PLAINTEXT listener (SCRAM-SHA-512 users admin and alice),
`--authorizer acl --super-users User:admin`; stock confluent-kafka clients log in as them:
- alice, with no ACLs, may not produce (TOPIC_AUTHORIZATION_FAILED) and does not see the
  topic in Metadata; her CreateAcls is CLUSTER_AUTHORIZATION_FAILED.
- admin (a super user) creates ACLs: WRITE on the literal topic, READ on a prefix that covers
  it, READ on a prefixed group; DescribeAcls lists them (filtered by principal and by
  resource), and they survive a broker kill -9.
- alice then produces, and a consumer group under the prefix reads every record back and
  commits; a group outside the prefix is GROUP_AUTHORIZATION_FAILED.
- A DENY READ on the topic wins over the prefixed ALLOW: alice's consumer is refused.
- DeleteAcls removes exactly the bindings its filter matches and returns them.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)

from clients import ADMIN_TIMEOUT_S, CONSUME_TIMEOUT_S, Deadline, ck_produce, ck_producer
from harness import Broker, free_port, unique_topic

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")
RECORDS = 50
REFUSAL_WAIT_S = 30


@pytest.fixture
def acl_broker(request):
    port = free_port()
    broker = Broker(request.node.name, extra_args=[
        "--listen", f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "--sasl-mechanisms", "SCRAM-SHA-512",
        "--add-scram", f"SCRAM-SHA-512=[name={ADMIN[0]},password={ADMIN[1]}]",
        "--add-scram", f"SCRAM-SHA-512=[name={ALICE[0]},password={ALICE[1]}]",
        "--authorizer", "acl", "--super-users", "User:admin"])
    broker.sasl_bootstrap = f"127.0.0.1:{port}"
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup(keep=False)


def login(user: tuple[str, str]) -> dict:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user[0], "sasl.password": user[1]}


def admin_of(broker, user) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.sasl_bootstrap, **login(user)})


def produce_errors(broker, user, topic: str) -> list:
    """Produces RECORDS values as `user`: the delivery error codes (empty: all acked)."""
    errors = []
    producer = ck_producer(broker.sasl_bootstrap, **login(user))
    for i in range(RECORDS):
        producer.produce(topic, value=f"v{i}".encode(),
                         on_delivery=lambda err, _msg: err and errors.append(err.code()))
    producer.flush(30)
    return errors


def consume_as(broker, user, topic: str, group: str, count: int):
    """A consumer of `group` as `user`: (values read, the error code that stopped it)."""
    consumer = Consumer({"bootstrap.servers": broker.sasl_bootstrap, **login(user),
                         "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values, error = [], None
    deadline = time.monotonic() + REFUSAL_WAIT_S
    progress = Deadline(CONSUME_TIMEOUT_S, f"{user[0]} reading {topic}")
    try:
        while len(values) < count and error is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                          KafkaError.GROUP_AUTHORIZATION_FAILED):
                    error = msg.error().code()
                continue
            values.append(msg.value().decode())
            progress.check(f"{len(values)} of {count}")
        if error is None and values:
            consumer.commit(asynchronous=False)
    except KafkaException as failure:
        error = failure.args[0].code()
    finally:
        consumer.close()
    return values, error


def binding(resource_type, name, pattern, operation, permission=AclPermissionType.ALLOW,
            principal="User:alice"):
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def described(admin, acl_filter) -> set:
    found = admin.describe_acls(acl_filter, request_timeout=ADMIN_TIMEOUT_S).result(
        ADMIN_TIMEOUT_S)
    return {(b.restype, b.name, b.resource_pattern_type, b.principal, b.operation,
             b.permission_type) for b in found}


def as_tuple(b: AclBinding):
    return (b.restype, b.name, b.resource_pattern_type, b.principal, b.operation,
            b.permission_type)


EVERY_ACL = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)


def test_acls_allow_deny_and_survive_restart(acl_broker):
    broker = acl_broker
    prefix = unique_topic("acl")
    topic, group, outside = f"{prefix}-orders", f"{prefix}-readers", unique_topic("other")
    admin = admin_of(broker, ADMIN)
    (future,) = admin.create_topics([NewTopic(topic, 1, 1)]).values()
    future.result(ADMIN_TIMEOUT_S)

    # No ACLs: alice can neither write nor see the topic, nor manage ACLs.
    assert set(produce_errors(broker, ALICE, topic)) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    listed = admin_of(broker, ALICE).list_topics(timeout=ADMIN_TIMEOUT_S).topics
    assert topic not in listed
    assert topic in admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    alice_admin = admin_of(broker, ALICE)
    (refusal,) = alice_admin.create_acls(
        [binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.ALL)],
        request_timeout=ADMIN_TIMEOUT_S).values()
    with pytest.raises(KafkaException) as denied:
        refusal.result(ADMIN_TIMEOUT_S)
    assert denied.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    grants = [
        binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.WRITE),
        binding(ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED, AclOperation.READ),
        binding(ResourceType.GROUP, prefix, ResourcePatternType.PREFIXED, AclOperation.READ),
    ]
    for future in admin.create_acls(grants, request_timeout=ADMIN_TIMEOUT_S).values():
        assert future.result(ADMIN_TIMEOUT_S) is None
    alice_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                                    "User:alice", None, AclOperation.ANY, AclPermissionType.ANY)
    assert described(admin, alice_filter) == {as_tuple(b) for b in grants}
    # MATCH: the bindings that cover the topic's name (the literal and the prefix).
    matching = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None,
                                None, AclOperation.ANY, AclPermissionType.ANY)
    assert described(admin, matching) == {as_tuple(b) for b in grants[:2]}

    broker.restart(kill9=True)
    admin = admin_of(broker, ADMIN)
    assert described(admin, alice_filter) == {as_tuple(b) for b in grants}, "after kill -9"

    assert produce_errors(broker, ALICE, topic) == []
    values, error = consume_as(broker, ALICE, topic, group, RECORDS)
    assert (sorted(values, key=lambda v: int(v[1:])), error) == (
        [f"v{i}" for i in range(RECORDS)], None)
    _, error = consume_as(broker, ALICE, topic, outside, RECORDS)
    assert error == KafkaError.GROUP_AUTHORIZATION_FAILED

    deny = binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.READ,
                   permission=AclPermissionType.DENY)
    (future,) = admin.create_acls([deny], request_timeout=ADMIN_TIMEOUT_S).values()
    assert future.result(ADMIN_TIMEOUT_S) is None
    values, error = consume_as(broker, ALICE, topic, f"{group}-2", RECORDS)
    assert (values, error) == ([], KafkaError.TOPIC_AUTHORIZATION_FAILED)

    deny_filter = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                   "User:alice", None, AclOperation.READ,
                                   AclPermissionType.DENY)
    (future,) = admin.delete_acls([deny_filter], request_timeout=ADMIN_TIMEOUT_S).values()
    assert [as_tuple(b) for b in future.result(ADMIN_TIMEOUT_S)] == [as_tuple(deny)]
    (future,) = admin.delete_acls([EVERY_ACL], request_timeout=ADMIN_TIMEOUT_S).values()
    assert {as_tuple(b) for b in future.result(ADMIN_TIMEOUT_S)} == {as_tuple(b) for b in grants}
    assert described(admin, EVERY_ACL) == set()
    assert set(produce_errors(broker, ALICE, topic)) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
