#!/usr/bin/env python3
"""Kill/restart soak: producers and a consumer run against shardlog while the broker is
SIGKILLed and restarted on the same data dir, again and again, for a bounded time.

Checks, at the end, against everything read back from the beginning:
  - every acknowledged record is present, byte-exact (no loss);
  - no record appears twice (idempotent producers: no duplicates allowed);
  - offsets are strictly increasing per partition, and per key the sequence numbers the
    producer assigned appear in order (ordering kept across crashes).
Prints a summary (cycles, records acknowledged, losses, duplicates) and exits non-zero on
any violation.

Usage: soak.py --binary target/release/shardlog [--seconds 120] [--partitions 4]
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

TOPIC = "soak"
START_TIMEOUT_S = 20
READ_BACK_TIMEOUT_S = 120
KILL_INTERVAL_S = (1.0, 3.0)


def free_port():
    """A free port below the kernel's ephemeral range, so no client connection or bind(0)
    elsewhere can take it while the broker is down between kill and restart."""
    for _ in range(1000):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 20000..32000")


class Broker:
    def __init__(self, binary, data_dir, port, log_path):
        self.binary, self.data_dir, self.port, self.log_path = binary, data_dir, port, log_path
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--admin-listen", "",
             "--data-dir", self.data_dir, "--shards", "2"],
            stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"broker exited with {self.process.returncode}; see {self.log_path}")
                time.sleep(0.05)
        raise RuntimeError("broker did not start listening")

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def produce_loop(bootstrap, producer_id, stop, acked, lock):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": 300000,
        "reconnect.backoff.max.ms": 200,
    })
    sequence = 0

    def delivered(error, message):
        if error is None:
            with lock:
                acked[(message.key(), message.value())] = (message.partition(), message.offset())

    while not stop.is_set():
        key = f"p{producer_id}-k{sequence % 16}".encode()
        value = f"p{producer_id}-k{sequence % 16}-s{sequence}".encode()
        try:
            producer.produce(TOPIC, key=key, value=value, on_delivery=delivered)
            sequence += 1
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
        if sequence % 200 == 0:
            time.sleep(0.01)
    remaining = producer.flush(120)
    if remaining:
        print(f"producer {producer_id}: {remaining} records never acknowledged (allowed)")


def read_back(bootstrap, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-verifier",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    highs = {}
    for p in range(partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
        highs[p] = high
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    records = defaultdict(list)
    remaining = sum(highs.values())
    deadline = time.time() + READ_BACK_TIMEOUT_S
    while remaining > 0 and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(message.error())
            continue
        records[message.partition()].append((message.offset(), message.key(), message.value()))
        remaining -= 1
    consumer.close()
    if remaining > 0:
        raise RuntimeError(f"read back timed out with {remaining} records missing")
    return records


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/shardlog")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--workdir", default="target/soak")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    random.seed(args.seed)
    print(f"soak: seed {args.seed} (replay with --seed {args.seed})")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    port = free_port()
    broker = Broker(args.binary, os.path.join(args.workdir, "data"), port, os.path.join(args.workdir, "broker.log"))
    broker.start()
    bootstrap = f"127.0.0.1:{port}"
    print(f"soak: broker on {bootstrap}, data in {args.workdir}", flush=True)
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    admin.create_topics([NewTopic(TOPIC, num_partitions=args.partitions, replication_factor=1)])[TOPIC].result(30)

    acked, lock, stop = {}, threading.Lock(), threading.Event()
    producers = [threading.Thread(target=produce_loop, args=(bootstrap, i, stop, acked, lock))
                 for i in range(args.producers)]
    for thread in producers:
        thread.start()
    cycles = 0
    deadline = time.time() + args.seconds
    while time.time() < deadline:
        time.sleep(random.uniform(*KILL_INTERVAL_S))
        broker.kill()
        time.sleep(random.uniform(0.0, 0.3))
        broker.start()
        cycles += 1
    stop.set()
    for thread in producers:
        thread.join()

    records = read_back(bootstrap, args.partitions)
    broker.kill()
    stored = {}
    duplicates = 0
    disorder = 0
    for partition, entries in records.items():
        previous_offset = -1
        last_sequence = {}
        for offset, key, value in entries:
            if offset <= previous_offset:
                disorder += 1
            previous_offset = offset
            if (key, value) in stored:
                duplicates += 1
            stored[(key, value)] = (partition, offset)
            sequence = int(value.rsplit(b"-s", 1)[1])
            if key in last_sequence and sequence <= last_sequence[key]:
                disorder += 1
            last_sequence[key] = sequence
    lost = [record for record, position in acked.items() if stored.get(record) != position]
    print(f"soak: {cycles} kill -9 cycles, {len(acked)} records acknowledged, "
          f"{len(stored)} stored, lost={len(lost)}, duplicates={duplicates}, disorder={disorder}")
    for record in lost[:5]:
        print(f"  lost or moved: {record} acked at {acked[record]}, stored at {stored.get(record)}")
    if lost or duplicates or disorder or cycles == 0 or not acked:
        sys.exit(1)


if __name__ == "__main__":
    main()
