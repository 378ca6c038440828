"""Contract: Debian's kcat 1.7.1 on librdkafka 2.0.2 (an old client) works unmodified.

- `kcat -L` (and `-L -J`) lists the one broker at its advertised address and the topics with
  their partition counts. librdkafka 2.0 misparses an ApiVersions v3 reply that spells out
  default-valued tagged fields; this would show as a protocol error on stderr or a fallback
  to old message formats that makes produce fail, so stderr must hold no error-level log.
- `kcat -P` then `kcat -C -e` round trips keyed records in order, uncompressed and with each
  codec, and `-C -e` exits at the end of the partition (it needs the high watermark).
kcat must be installed (make test-deps); a missing kcat fails these tests, it never skips them.
"""

import json
import shutil
import subprocess

import pytest

from clients import ck_create_topic, ck_read_all
from harness import unique_topic

KCAT_TIMEOUT_S = 60.0
KCAT_METADATA_TIMEOUT_MS = 15000


def kcat(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    path = shutil.which("kcat")
    assert path, "kcat is not installed: run `make test-deps` (apt-get install kcat)"
    proc = subprocess.run([path, *args], input=stdin, capture_output=True,
                          timeout=KCAT_TIMEOUT_S)
    errors = [line for line in proc.stderr.decode(errors="replace").splitlines()
              if line.startswith(("%3|", "%2|", "%1|", "%0|")) or "PROTOERR" in line
              or "Protocol parse failure" in line]
    assert not errors, f"kcat {' '.join(args)} logged errors:\n" + "\n".join(errors)
    assert proc.returncode == 0, (f"kcat {' '.join(args)} exited {proc.returncode}\n"
                                  f"stderr: {proc.stderr.decode(errors='replace')}")
    return proc


def test_kcat_version_is_the_old_librdkafka():
    out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=KCAT_TIMEOUT_S)
    assert "librdkafka 2.0.2" in out.stdout + out.stderr, out.stdout + out.stderr


def test_kcat_metadata_lists_broker_and_topics(broker):
    topics = {unique_topic("kc3"): 3, unique_topic("kc1"): 1}
    for name, partitions in topics.items():
        ck_create_topic(broker.bootstrap, name, partitions)

    text = kcat("-b", broker.bootstrap, "-L", "-m", str(KCAT_METADATA_TIMEOUT_MS // 1000)
                ).stdout.decode()
    assert "1 brokers:" in text, text
    assert f"at {broker.bootstrap}" in text, text
    for name, partitions in topics.items():
        assert f'topic "{name}" with {partitions} partitions:' in text, text

    md = json.loads(kcat("-b", broker.bootstrap, "-L", "-J").stdout)
    (b,) = md["brokers"]
    assert b["name"] == broker.bootstrap
    listed = {t["topic"]: t for t in md["topics"]}
    for name, partitions in topics.items():
        assert len(listed[name]["partitions"]) == partitions
        for p in listed[name]["partitions"]:
            assert p["leader"] == b["id"]
            assert "error" not in p or p["error"] in (None, "Success"), p


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_consume_round_trip(broker, codec):
    topic = unique_topic(f"kc-{codec}")
    ck_create_topic(broker.bootstrap, topic, 1)
    lines = [f"key{i % 5}:value-{i}-{'x' * (i % 40)}" for i in range(500)]
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":", "-z", codec,
         "-X", "acks=all", stdin=("\n".join(lines) + "\n").encode())

    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
               "-f", "%o %k:%s\\n").stdout.decode().splitlines()
    assert out == [f"{i} {line}" for i, line in enumerate(lines)]
    # An independent client sees the same records.
    read = ck_read_all(broker.bootstrap, topic, [0])[0]
    assert [f"{r.key.decode()}:{r.value.decode()}" for r in read] == lines


def test_kcat_consumes_what_python_produced_from_offset(broker):
    from clients import ck_produce, ck_producer
    topic = unique_topic("kc-off")
    ck_create_topic(broker.bootstrap, topic, 1)
    ck_produce(ck_producer(broker.bootstrap), topic, [(None, b"v%d" % i, 0) for i in range(20)])
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "15", "-e",
               "-f", "%o=%s\\n").stdout.decode().splitlines()
    assert out == [f"{i}=v{i}" for i in range(15, 20)]
