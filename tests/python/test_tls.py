"""Contract: listeners with security protocols and TLS (issue 17, first slice; docs/security.md).

- A broker with `--listen PLAINTEXT://… --listen SSL://…` serves stock clients on both:
  confluent-kafka, kafka-python, the Java client (ssl.truststore.type=PEM) and kcat produce
  and consume over SSL, byte-exact; Metadata, FindCoordinator (a group commit) and
  DescribeCluster tell each client the address of the listener it came in on.
- mTLS (`--tls-client-ca-file`): a client with a certificate from the CA gets in and its
  principal is User:<CN> (logged); one without a certificate, or with one from another CA,
  is refused at the handshake while other clients keep working.
- Hostile TLS: a plaintext Kafka client on the SSL port, garbage bytes, a truncated
  ClientHello, and a client that never finishes its handshake (closed after
  `--tls-handshake-timeout-ms`) are closed; each is counted in /metrics; the broker lives.
- Certificate rotation: replacing the certificate and key files makes new connections see
  the new certificate, without a restart.
- Start-up: a SASL listener with a mechanism shardlog lacks (GSSAPI) is refused; an SSL or
  SASL_SSL listener without (or with unreadable) certificate files stops start-up with the
  file named.
The CA and certificates are made at test time with the `cryptography` package.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import kafka
import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clients import (Deadline, ck_consumer, ck_create_topic, ck_produce, ck_producer,
                     ck_read_all, kp_produce, kp_producer, kp_read_all)
from harness import Broker, TEST_DATA_ROOT, broker_binary, free_port, unique_topic
from test_java import java_round_trip
from test_operations import scrape, total

MESSAGES = 2000
PARTITIONS = 3
KCAT_TIMEOUT_S = 60.0
# Bounds on waiting, never measurements.
CLOSE_WAIT_S = 30.0
ROTATION_WAIT_S = 30.0
REFUSED_METADATA_TIMEOUT_S = 5.0
STARTUP_EXIT_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------------
# A throwaway PKI

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "shardlog tests")])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class Pki:
    """A CA and certificates signed by it, as PEM files in `directory`."""

    def __init__(self, directory: Path, ca_cn: str):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.not_before = now - datetime.timedelta(hours=1)
        self.not_after = now + datetime.timedelta(days=2)
        self.ca_cert = (x509.CertificateBuilder()
                        .subject_name(_name(ca_cn)).issuer_name(_name(ca_cn))
                        .public_key(self.ca_key.public_key())
                        .serial_number(x509.random_serial_number())
                        .not_valid_before(self.not_before).not_valid_after(self.not_after)
                        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                        .add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                                     True, False, False), True)
                        .sign(self.ca_key, hashes.SHA256()))
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, cn: str, server: bool) -> tuple[Path, Path, int]:
        """(certificate file, key file, serial number) of a new leaf certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(cn)).issuer_name(self.ca_cert.subject)
                   .public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(self.not_before).not_valid_after(self.not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        cert_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
        return cert_file, key_file, serial


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = Pki(directory / "ca", "shardlog-test-ca")
    other = Pki(directory / "other", "some-other-ca")
    certs = {
        "server": ca.issue("server", "localhost", server=True),
        "server2": ca.issue("server2", "localhost", server=True),
        "alice": ca.issue("alice", "alice", server=False),
        "mallory": other.issue("mallory", "mallory", server=False),
    }
    return ca, other, certs


# ---------------------------------------------------------------------------------------------
# Brokers with an SSL listener

class TlsBroker:
    def __init__(self, broker: Broker, ssl_port: int):
        self.broker = broker
        self.ssl_port = ssl_port

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"


def start_tls_broker(request, name: str, cert: Path, key: Path, *extra: str,
                     started: list | None = None) -> TlsBroker:
    ssl_port = free_port()
    broker = Broker(name, extra_args=["--listen", f"SSL://127.0.0.1:{ssl_port}",
                                      "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                                      *extra])
    started.append(broker)
    broker.start()
    return TlsBroker(broker, ssl_port)


@pytest.fixture
def brokers(request):
    """Brokers a test starts; stopped (and their logs shown on failure) at teardown."""
    from conftest import _finish
    started: list[Broker] = []
    yield started
    _finish(request, started)


def ck_ssl(pki_ca: Pki, cert: tuple | None = None) -> dict:
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(pki_ca.ca_file)}
    if cert is not None:
        conf["ssl.certificate.location"] = str(cert[0])
        conf["ssl.key.location"] = str(cert[1])
    return conf


def messages(n: int) -> list[tuple[bytes | None, bytes]]:
    return [(None if i % 7 == 0 else f"key-{i % 11}".encode(), f"value-{i}-".encode() * (i % 50))
            for i in range(n)]


def assert_read_back(read: dict, sent: list, acks: list) -> None:
    by_position = {(p, o): (k, v) for (p, o), (k, v) in zip(acks, sent)}
    got = {(r.partition, r.offset): (r.key, r.value) for recs in read.values() for r in recs}
    assert got == by_position


def advertised_ports(bootstrap: str, **conf) -> set[int]:
    md = AdminClient({"bootstrap.servers": bootstrap, **conf}).list_topics(timeout=30)
    return {b.port for b in md.brokers.values()}


# ---------------------------------------------------------------------------------------------
# Stock clients over SSL

def test_confluent_over_ssl_and_each_listener_advertises_itself(request, brokers, pki):
    ca, _, certs = pki
    tb = start_tls_broker(request, request.node.name, *certs["server"][:2], started=brokers)
    ssl_conf = ck_ssl(ca)
    assert advertised_ports(tb.ssl_bootstrap, **ssl_conf) == {tb.ssl_port}
    assert advertised_ports(tb.broker.bootstrap) == {tb.broker.port}
    topic = unique_topic("tls")
    admin = AdminClient({"bootstrap.servers": tb.ssl_bootstrap, **ssl_conf})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    sent = messages(MESSAGES)
    acks = ck_produce(ck_producer(tb.ssl_bootstrap, **ssl_conf), topic, sent)
    assert_read_back(ck_read_all(tb.ssl_bootstrap, topic, list(range(PARTITIONS)), **ssl_conf),
                     sent, acks)
    # The same records through the plaintext listener.
    assert_read_back(ck_read_all(tb.broker.bootstrap, topic, list(range(PARTITIONS))),
                     sent, acks)
    # FindCoordinator over SSL names the SSL port: else the commit would go to the
    # plaintext port with TLS and fail.
    group = f"g-{topic}"
    consumer = ck_consumer(tb.ssl_bootstrap, **ssl_conf, **{"group.id": group})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        assert committed[0].offset == 5
    finally:
        consumer.close()
    # DescribeCluster (Admin.describe_cluster) names the SSL endpoint too.
    cluster = admin.describe_cluster(request_timeout=30).result(timeout=30)
    assert {node.port for node in cluster.nodes} == {tb.ssl_port}


def test_kafka_python_java_and_kcat_over_ssl(request, brokers, pki, tmp_path):
    ca, _, certs = pki
    tb = start_tls_broker(request, request.node.name, *certs["server"][:2], started=brokers)
    topic = unique_topic("tls-kp")
    ck_create_topic(tb.broker.bootstrap, topic, PARTITIONS)
    kp_ssl = dict(security_protocol="SSL", ssl_cafile=str(ca.ca_file))
    sent = messages(500)
    acks = kp_produce(kp_producer(tb.ssl_bootstrap, **kp_ssl), topic, sent)
    assert_read_back(kp_read_all(tb.ssl_bootstrap, topic, list(range(PARTITIONS)), **kp_ssl),
                     sent, acks)

    # The Java client: PEM trust store (kafka-clients 4.3).
    properties = tmp_path / "java-ssl.properties"
    properties.write_text("security.protocol=SSL\nssl.truststore.type=PEM\n"
                          f"ssl.truststore.location={ca.ca_file}\n")
    java_round_trip(properties, tb.ssl_bootstrap, unique_topic("tls-java"), PARTITIONS, 300)

    # kcat (Debian's, librdkafka 2.0.2).
    kcat_topic = unique_topic("tls-kcat")
    ck_create_topic(tb.broker.bootstrap, kcat_topic, 1)
    kcat_ssl = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={ca.ca_file}"]
    lines = [f"kcat-line-{i}" for i in range(200)]
    subprocess.run(["kcat", "-b", tb.ssl_bootstrap, *kcat_ssl, "-P", "-t", kcat_topic],
                   input="\n".join(lines) + "\n", text=True, check=True, timeout=KCAT_TIMEOUT_S)
    out = subprocess.run(["kcat", "-b", tb.ssl_bootstrap, *kcat_ssl, "-C", "-t", kcat_topic,
                          "-o", "beginning", "-e", "-q"],
                         capture_output=True, text=True, check=True, timeout=KCAT_TIMEOUT_S)
    assert out.stdout.splitlines() == lines


# ---------------------------------------------------------------------------------------------
# mTLS

def refused(bootstrap: str, conf: dict) -> bool:
    """Whether a confluent client with `conf` fails to get metadata (bounded wait)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    try:
        admin.list_topics(timeout=REFUSED_METADATA_TIMEOUT_S)
        return False
    except KafkaException:
        return True


def test_mtls_requires_a_certificate_from_the_ca(request, brokers, pki, monkeypatch):
    ca, other, certs = pki
    monkeypatch.setenv("RUST_LOG", "info,shardlog::server::tls_handshake=debug")
    tb = start_tls_broker(request, request.node.name, *certs["server"][:2],
                          "--tls-client-ca-file", str(ca.ca_file), started=brokers)
    topic = unique_topic("mtls")
    ck_create_topic(tb.broker.bootstrap, topic, 1)
    alice = ck_ssl(ca, certs["alice"])
    sent = messages(200)
    acks = ck_produce(ck_producer(tb.ssl_bootstrap, **alice), topic, sent)
    assert_read_back(ck_read_all(tb.ssl_bootstrap, topic, [0], **alice), sent, acks)
    log = tb.broker.log_path.read_text(errors="replace")
    assert "principal=User:alice" in log, tb.broker.stderr_tail()
    before = total(scrape(tb.broker), "shardlog_requests_rejected_total",
                   reason="tls_handshake_failed")
    assert refused(tb.ssl_bootstrap, ck_ssl(ca))  # no certificate
    assert refused(tb.ssl_bootstrap, ck_ssl(ca, certs["mallory"]))  # another CA's
    after = total(scrape(tb.broker), "shardlog_requests_rejected_total",
                  reason="tls_handshake_failed")
    assert after >= before + 2
    # Others keep working: alice over SSL, anyone over PLAINTEXT.
    assert_read_back(ck_read_all(tb.ssl_bootstrap, topic, [0], **alice), sent, acks)
    assert_read_back(ck_read_all(tb.broker.bootstrap, topic, [0]), sent, acks)


def test_mtls_requested_lets_clients_without_a_certificate_in(request, brokers, pki,
                                                            monkeypatch):
    ca, other, certs = pki
    monkeypatch.setenv("RUST_LOG", "info,shardlog::server::tls_handshake=debug")
    tb = start_tls_broker(request, request.node.name, *certs["server"][:2],
                          "--tls-client-ca-file", str(ca.ca_file),
                          "--tls-client-auth", "requested", started=brokers)
    assert not refused(tb.ssl_bootstrap, ck_ssl(ca))
    assert not refused(tb.ssl_bootstrap, ck_ssl(ca, certs["alice"]))
    # Another CA's certificate never authenticates: OpenSSL clients leave it out when the
    # server's CA list does not name its issuer (the client is then ANONYMOUS); one that
    # sends it anyway is refused by the verifier.
    refused(tb.ssl_bootstrap, ck_ssl(ca, certs["mallory"]))
    log = tb.broker.log_path.read_text(errors="replace")
    assert "principal=User:alice" in log
    assert "User:mallory" not in log


# ---------------------------------------------------------------------------------------------
# Hostile input on the SSL port

def closed_without_kafka_answer(sock: socket.socket) -> bool:
    """Reads until the broker closes; True if what came back (if anything) is a TLS alert,
    never a Kafka response."""
    sock.settimeout(CLOSE_WAIT_S)
    received = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received == b"" or received[0] == 0x15  # TLS alert record


def test_hostile_tls_input_closes_only_that_connection(request, brokers, pki):
    import kafka_wire
    ca, _, certs = pki
    tb = start_tls_broker(request, request.node.name, *certs["server"][:2],
                          "--tls-handshake-timeout-ms", "300", started=brokers)
    payloads = [
        kafka_wire.api_versions_v0(1),  # a plaintext Kafka client
        b"\x16\x03\x01\xff\xff" + os.urandom(300),  # a handshake record too long, then junk
        b"\x16\x03\x01\x00\x30\x01\x00\x00\x2c\x03\x03",  # a truncated ClientHello, then EOF
        os.urandom(4096),
        b"\x17\x03\x03\x40\x00" + b"\x00" * 64,  # application data before any handshake
    ]
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", tb.ssl_port), timeout=CLOSE_WAIT_S) as s:
            s.sendall(payload)
            if payload.startswith(b"\x16\x03\x01\x00\x30"):
                s.shutdown(socket.SHUT_WR)
            assert closed_without_kafka_answer(s), payload[:16]
    # A client that connects and never speaks is closed after the handshake timeout.
    with socket.create_connection(("127.0.0.1", tb.ssl_port), timeout=CLOSE_WAIT_S) as s:
        assert closed_without_kafka_answer(s)
    metrics = scrape(tb.broker)
    assert total(metrics, "shardlog_requests_rejected_total",
                 reason="tls_handshake_failed") >= 3
    assert total(metrics, "shardlog_requests_rejected_total",
                 reason="tls_handshake_timeout") >= 1
    tb.broker.assert_alive()
    assert not refused(tb.ssl_bootstrap, ck_ssl(ca))


# ---------------------------------------------------------------------------------------------
# Certificate rotation

def served_serial(port: int, ca_file: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WAIT_S) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_rotated_certificate_files_are_used_by_new_connections(request, brokers, pki, tmp_path):
    ca, _, certs = pki
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    cert.write_bytes(certs["server"][0].read_bytes())
    key.write_bytes(certs["server"][1].read_bytes())
    tb = start_tls_broker(request, request.node.name, cert, key,
                          "--tls-reload-check-interval-ms", "200", started=brokers)
    assert served_serial(tb.ssl_port, ca.ca_file) == certs["server"][2]
    producer = ck_producer(tb.ssl_bootstrap, **ck_ssl(ca))
    topic = unique_topic("rotate")
    ck_create_topic(tb.broker.bootstrap, topic, 1)
    ck_produce(producer, topic, messages(10))
    # Rotate as operators do: new files renamed over the old ones.
    for source, target in ((certs["server2"][0], cert), (certs["server2"][1], key)):
        staged = target.with_suffix(".new")
        staged.write_bytes(source.read_bytes())
        staged.rename(target)
    deadline = Deadline(ROTATION_WAIT_S, "a new connection to see the rotated certificate")
    while served_serial(tb.ssl_port, ca.ca_file) != certs["server2"][2]:
        deadline.check()
        time.sleep(0.1)
    # The connection opened before the rotation keeps working.
    ck_produce(producer, topic, messages(10))
    # A broken rotation (garbage key) keeps the loaded certificate.
    key.write_bytes(b"not a key")
    time.sleep(1.0)  # several reload checks; the assertion below holds either way
    assert served_serial(tb.ssl_port, ca.ca_file) == certs["server2"][2]
    tb.broker.assert_alive()


# ---------------------------------------------------------------------------------------------
# Start-up contract

def start_fails(args: list[str], data_dir: Path) -> str:
    proc = subprocess.run([str(broker_binary()), "serve", "--data-dir", str(data_dir),
                           "--admin-listen", "", "--shards", "1", *args],
                          capture_output=True, text=True, timeout=STARTUP_EXIT_TIMEOUT_S)
    assert proc.returncode != 0, proc.stderr[-2000:]
    return proc.stderr


def test_unsupported_protocols_and_missing_files_stop_start_up(pki):
    ca, _, certs = pki
    data_dir = TEST_DATA_ROOT / f"tls-startup-{os.getpid()}"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    for protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        err = start_fails(["--listen", f"{protocol}://127.0.0.1:{port}",
                           "--sasl-mechanisms", "GSSAPI",
                           "--tls-cert-file", str(certs["server"][0]),
                           "--tls-key-file", str(certs["server"][1])], data_dir)
        assert "sasl.enabled_mechanisms" in err and "GSSAPI" in err, err
    for protocol in ("SSL", "SASL_SSL"):
        err = start_fails(["--listen", f"{protocol}://127.0.0.1:{port}"], data_dir)
        assert "tls.cert_file" in err, err
    missing = data_dir / "missing.pem"
    err = start_fails(["--listen", f"SSL://127.0.0.1:{port}", "--tls-cert-file", str(missing),
                       "--tls-key-file", str(certs["server"][1])], data_dir)
    assert "cannot load the TLS files" in err and str(missing) in err, err
    # A key that is not the certificate's.
    err = start_fails(["--listen", f"SSL://127.0.0.1:{port}",
                       "--tls-cert-file", str(certs["server"][0]),
                       "--tls-key-file", str(certs["alice"][1])], data_dir)
    assert "cannot load the TLS files" in err, err


# ---------------------------------------------------------------------------------------------
# Cluster mode: every broker registers each listener's endpoint

@pytest.mark.cluster
def test_cluster_advertises_each_brokers_endpoint_of_the_clients_listener(request, pki):
    from test_cluster import Cluster, clean_up_nodes, wait_for
    ca, _, certs = pki
    cluster = Cluster(request.node.name, size=3)
    ssl_ports = {}
    for node_id, node in cluster.nodes.items():
        ssl_ports[node_id] = free_port()
        node.extra_args += ["--listen", f"SSL://127.0.0.1:{ssl_ports[node_id]}",
                            "--tls-cert-file", str(certs["server"][0]),
                            "--tls-key-file", str(certs["server"][1])]
    try:
        cluster.start()
        plain_ports = {node_id: node.port for node_id, node in cluster.nodes.items()}
        first = cluster.nodes[1]
        ssl_bootstrap = f"127.0.0.1:{ssl_ports[1]}"

        def brokers(bootstrap: str, **conf) -> dict[int, int] | None:
            md = AdminClient({"bootstrap.servers": bootstrap, **conf}).list_topics(timeout=10)
            found = {node_id: b.port for node_id, b in md.brokers.items()}
            return found if len(found) == 3 else None

        assert wait_for("every broker over SSL",
                        lambda: brokers(ssl_bootstrap, **ck_ssl(ca))) == ssl_ports
        assert wait_for("every broker over PLAINTEXT",
                        lambda: brokers(first.bootstrap)) == plain_ports
        # Replicated produce and consume over SSL: the client reaches every leader on its
        # SSL port; followers fetch over the PLAINTEXT inter-broker listener.
        topic = unique_topic("tls-cluster")
        admin = AdminClient({"bootstrap.servers": ssl_bootstrap, **ck_ssl(ca)})
        admin.create_topics([NewTopic(topic, PARTITIONS, 2)])[topic].result(timeout=30)
        sent = messages(300)
        acks = ck_produce(ck_producer(ssl_bootstrap, **ck_ssl(ca)), topic, sent)
        assert_read_back(ck_read_all(ssl_bootstrap, topic, list(range(PARTITIONS)),
                                     **ck_ssl(ca)), sent, acks)
    finally:
        clean_up_nodes(request, list(cluster.nodes.values()))
