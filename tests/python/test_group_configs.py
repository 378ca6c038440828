"""Contract (issue 20): per-group config overrides, Kafka 4's GroupConfig (KIP-848), set and
read by the Java Admin client 4.3 on the GROUP config resource (type 32).

- IncrementalAlterConfigs SET `consumer.heartbeat.interval.ms` = 6000 on one group:
  DescribeConfigs shows 6000 with source GROUP_CONFIG (Java: DYNAMIC_GROUP_CONFIG),
  `consumer.session.timeout.ms` the broker's value with source DEFAULT_CONFIG;
  ListConfigResources lists the group.
- A consumer-protocol member (ConsumerGroupHeartbeat v0, as a client sends it) joining that
  group is told to heartbeat every 6000 ms; a member of another group gets the broker's 5000.
- The override survives a broker kill -9 (it is synced before the answer): described again
  and handed to a member joining after the restart.
- Values outside the broker's bounds (`group.consumer.min/max.heartbeat.interval.ms` 5000 /
  15000, `group.consumer.min.session.timeout.ms` 45000), an unknown key and a non-number are
  refused with INVALID_CONFIG (InvalidConfigurationException) and Kafka's messages, and leave
  the stored override as it was.
- DELETE drops the override: DEFAULT_CONFIG again, and members get the broker's value.
- A group's `consumer.session.timeout.ms` (2000 ms, on a broker whose own is 60000 ms) is the
  session its members get: a member that stops heartbeating is removed from the group
  (ConsumerGroupDescribe shows no member) long before the broker's session would end.
"""

import time

import kafka_wire as wire
from clients import ADMIN_TIMEOUT_S, ck_admin
from harness import unique_topic
from test_java import java

HEARTBEAT = "consumer.heartbeat.interval.ms"
SESSION = "consumer.session.timeout.ms"
BROKER_HEARTBEAT_MS = 5000  # the broker default the harness leaves alone
BROKER_SESSION_MS = 45000
COORDINATOR_WAIT_S = 30
# COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS: retried.
RETRIABLE = {14, 15, 16}


def group_config(broker, group, *edits):
    """The Java Admin's IncrementalAlterConfigs outcome line and the described configs of
    GROUP `group`: {name: (value, source, read_only)}."""
    lines = java("groupconfig", broker.bootstrap, group, *edits)
    outcome = " ".join(lines[0])
    configs = {line[1]: (line[2], line[3], line[4]) for line in lines[1:] if line[0] == "CONFIG"}
    return outcome, configs


def join(bootstrap, group, topic):
    """A new consumer-protocol member joins `group`: (member id, heartbeat interval ms)."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        body = wire.roundtrip(bootstrap, wire.consumer_group_heartbeat_v0(
            7, group, "", 0, topic))
        error, member_id, epoch, interval_ms = wire.parse_consumer_group_heartbeat_interval(
            body[4:])
        if error in RETRIABLE and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        assert error == 0, f"heartbeat error {error}"
        return member_id, interval_ms


def joined_interval_ms(bootstrap, group, topic):
    """A new consumer-protocol member joins `group` and leaves again: the heartbeat interval
    the coordinator told it."""
    member_id, interval_ms = join(bootstrap, group, topic)
    wire.roundtrip(bootstrap, wire.consumer_group_heartbeat_v0(8, group, member_id, -1, topic))
    return interval_ms


def test_group_config_overrides_reach_members_and_survive_restart(broker):
    group, other = unique_topic("gcfg"), unique_topic("gcfg-other")
    topic = unique_topic("gcfg-topic")
    outcome, configs = group_config(broker, group, f"{HEARTBEAT}=6000")
    assert outcome == "ALTERED"
    assert configs[HEARTBEAT] == ("6000", "DYNAMIC_GROUP_CONFIG", "false")
    assert configs[SESSION] == (str(BROKER_SESSION_MS), "DEFAULT_CONFIG", "false")
    assert ["RESOURCE", "GROUP", group] in java("configresources", broker.bootstrap, "GROUP")
    assert joined_interval_ms(broker.bootstrap, group, topic) == 6000
    assert joined_interval_ms(broker.bootstrap, other, topic) == BROKER_HEARTBEAT_MS

    broker.restart(kill9=True)
    _, configs = group_config(broker, group)
    assert configs[HEARTBEAT] == ("6000", "DYNAMIC_GROUP_CONFIG", "false")
    assert joined_interval_ms(broker.bootstrap, group, topic) == 6000

    outcome, configs = group_config(broker, group, f"{HEARTBEAT}=")
    assert outcome == "ALTERED"
    assert configs[HEARTBEAT] == (str(BROKER_HEARTBEAT_MS), "DEFAULT_CONFIG", "false")
    assert joined_interval_ms(broker.bootstrap, group, topic) == BROKER_HEARTBEAT_MS
    assert ["RESOURCE", "GROUP", group] not in java("configresources", broker.bootstrap, "GROUP")


def test_out_of_range_group_configs_are_refused(broker):
    group = unique_topic("gcfg-bad")
    assert group_config(broker, group, f"{HEARTBEAT}=7000")[0] == "ALTERED"
    refusals = {
        f"{HEARTBEAT}=4999": f"{HEARTBEAT} must be greater than or equal to "
                             "group.consumer.min.heartbeat.interval.ms",
        f"{HEARTBEAT}=15001": f"{HEARTBEAT} must be less than or equal to "
                              "group.consumer.max.heartbeat.interval.ms",
        f"{SESSION}=30000": f"{SESSION} must be greater than or equal to "
                            "group.consumer.min.session.timeout.ms",
        f"{SESSION}=60001": f"{SESSION} must be less than or equal to "
                            "group.consumer.max.session.timeout.ms",
        "consumer.max.size=3": "Unknown group config name: consumer.max.size",
        f"{HEARTBEAT}=soon": f"Invalid value soon for configuration {HEARTBEAT}: "
                             "Not a number of type INT",
    }
    for edit, message in refusals.items():
        outcome, configs = group_config(broker, group, edit)
        assert outcome == f"ERROR InvalidConfigurationException {message}", (edit, outcome)
        assert configs[HEARTBEAT] == ("7000", "DYNAMIC_GROUP_CONFIG", "false"), edit
        assert configs[SESSION][1] == "DEFAULT_CONFIG", edit


# The broker's own session is long (Kafka's maximum default), the group's short.
BROKER_SESSION_LONG_MS = 60000
GROUP_SESSION_MS = 2000
# Well inside the broker's session: only the group's can end the member's in this time.
EXPIRY_WAIT_S = 20


def test_a_group_session_override_expires_members(broker_factory):
    broker = broker_factory("group-session", extra_args=[
        "--group-consumer-session-timeout-ms", str(BROKER_SESSION_LONG_MS),
        "--group-consumer-session-timeout-ms-min", "1000",
        "--group-consumer-heartbeat-interval-ms", "500",
        "--group-consumer-heartbeat-interval-ms-min", "500"])
    group, topic = unique_topic("gcfg-session"), unique_topic("gcfg-session-topic")
    outcome, configs = group_config(broker, group, f"{SESSION}={GROUP_SESSION_MS}")
    assert outcome == "ALTERED"
    assert configs[SESSION][:2] == (str(GROUP_SESSION_MS), "DYNAMIC_GROUP_CONFIG")
    member_id, _ = join(broker.bootstrap, group, topic)
    admin = ck_admin(broker.bootstrap)
    deadline = time.monotonic() + EXPIRY_WAIT_S
    members = [member_id]
    while members and time.monotonic() < deadline:
        (future,) = admin.describe_consumer_groups(
            [group], request_timeout=ADMIN_TIMEOUT_S).values()
        members = [m.member_id for m in future.result(ADMIN_TIMEOUT_S).members]
        time.sleep(0.5)
    assert members == [], f"member {member_id} still in the group after {EXPIRY_WAIT_S} s"
