"""A KIP-848 `consumer`-protocol group member (confluent-kafka, group.protocol=consumer) run
as its own process, so tests can kill -9 it.

usage: consumer_protocol_member.py BOOTSTRAP TOPIC GROUP [INSTANCE_ID|-]

Prints one JSON line per event: {"assign": [...]} and {"revoke": [...]} from the rebalance
callbacks (incremental with this protocol: the partitions added or taken away),
{"lost": [...]}, and {"assignment": [...]} whenever the whole assignment changes. Exits
cleanly (leaving the group) on SIGTERM. Its stderr is a diagnosis log with UTC timestamps.
"""

import json
import logging
import os
import signal
import sys
import time

running = True
log = logging.getLogger("consumer_protocol_member")


def stop(*_):
    global running
    running = False


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    bootstrap, topic, group = sys.argv[1:4]
    instance_id = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    signal.signal(signal.SIGTERM, stop)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.Formatter.converter = time.gmtime
    log.info("pid %d: %s", os.getpid(), " ".join(sys.argv[1:]))
    from confluent_kafka import Consumer
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": True,
            "auto.commit.interval.ms": 200}
    if instance_id:
        conf["group.instance.id"] = instance_id
    c = Consumer(conf)

    def on_assign(consumer, partitions):
        added = sorted(tp.partition for tp in partitions)
        log.info("assign %s", added)
        emit({"assign": added})

    def on_revoke(consumer, partitions):
        removed = sorted(tp.partition for tp in partitions)
        log.info("revoke %s", removed)
        emit({"revoke": removed})

    def on_lost(consumer, partitions):
        lost = sorted(tp.partition for tp in partitions)
        log.info("lost %s", lost)
        emit({"lost": lost})

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    last = None
    while running:
        c.poll(0.1)
        current = sorted(tp.partition for tp in c.assignment())
        if current != last:
            log.info("assignment %s", current)
            emit({"assignment": current})
            last = current
    c.close()


if __name__ == "__main__":
    main()
