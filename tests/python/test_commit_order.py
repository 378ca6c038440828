"""Contract (issue 18 item 1): offset commits from one consumer apply in request order and the
last one wins, as in Kafka. A confluent-kafka consumer (librdkafka pipelines async commits on
its coordinator connection) commits offsets 1..COMMITS for one partition asynchronously, each
commit callback reports success in order, and `committed()` then returns COMMITS — also when
the group's coordinator is on another shard than the connection, and after a broker restart
(the log replays the commits in order). kafka-python 3.0.12 is not used here: of 50 quick
`commit_async` calls it sends only the first 5 OffsetCommit requests (the broker counts 5) and
reports all 50 futures as succeeded, so the last offset it ever sends is 5. The consumer
first commits once synchronously: until librdkafka knows the coordinator it defers commits
and may replay them out of order itself, which no broker can undo.
"""

import pytest
from confluent_kafka import TopicPartition

from clients import METADATA_TIMEOUT_S, ck_consumer, ck_create_topic
from harness import unique_topic

COMMITS = 50
ROUNDS = 4
COMMIT_CALLBACK_TIMEOUT_S = 30.0


def ck_async_commits(bootstrap: str, topic: str, group: str) -> list[int]:
    """Commits 1..COMMITS asynchronously; returns the offsets the callbacks reported."""
    reported: list[int] = []
    refused: list[str] = []  # per-partition errors, shown if the assertion fails

    def on_commit(err, partitions):
        assert err is None, err
        reported.extend(p.offset for p in partitions if p.error is None)
        refused.extend(f"{p.offset}: {p.error}" for p in partitions if p.error is not None)

    consumer = ck_consumer(bootstrap, **{"group.id": group, "enable.auto.commit": False,
                                         "on_commit": on_commit})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        # librdkafka defers commits made before it knows the group's coordinator and replays
        # them later, not always in order (seen: 32, 1, 2, ..., 31, 33, ... under CPU load,
        # its debug log saying "Deferring manual offset commit ... no coordinator
        # available"). One synchronous commit first, so the pipelined ones go straight out.
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        for offset in range(1, COMMITS + 1):
            consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=True)
        waited = 0.0
        while len(reported) < COMMITS and waited < COMMIT_CALLBACK_TIMEOUT_S:
            consumer.poll(0.1)
            waited += 0.1
        committed = consumer.committed([TopicPartition(topic, 0)],
                                       timeout=METADATA_TIMEOUT_S)[0].offset
    finally:
        consumer.close()
    assert reported == list(range(1, COMMITS + 1)), (reported, refused)
    return committed


@pytest.mark.parametrize("round_index", range(ROUNDS))
def test_pipelined_async_commits_apply_in_order_confluent(broker, round_index):
    topic = unique_topic("commitorder")
    ck_create_topic(broker.bootstrap, topic, 1)
    group = unique_topic(f"grp{round_index}")
    assert ck_async_commits(broker.bootstrap, topic, group) == COMMITS
    broker.restart()
    probe = ck_consumer(broker.bootstrap, **{"group.id": group})
    try:
        committed = probe.committed([TopicPartition(topic, 0)], timeout=METADATA_TIMEOUT_S)
    finally:
        probe.close()
    assert committed[0].offset == COMMITS
