"""Contract: SASL authentication (issue 17, second slice; docs/security.md, "SASL").

- A broker with SASL_PLAINTEXT and SASL_SSL listeners and bootstrap users from `--add-scram`
  serves stock clients that log in: confluent-kafka with SCRAM-SHA-512 over SASL_PLAINTEXT,
  with SCRAM-SHA-256 and with PLAIN over SASL_SSL; kafka-python with SCRAM; the Java client
  (kafka-clients 4.3, ScramLoginModule) and kcat (librdkafka 2.0.2). Records round-trip
  byte-exact; the logged principal is User:<name>.
- A wrong password and an unknown user fail cleanly with SASL_AUTHENTICATION_FAILED and the
  same generic message, after `--failed-authentication-delay-ms`, are counted in /metrics,
  and close only their own connection: another client keeps working.
- Before a login, ApiVersions is answered and any other request closes the connection.
- PLAIN over SASL_PLAINTEXT is refused (UNSUPPORTED_SASL_MECHANISM, not offered) unless
  `--sasl-plain-over-plaintext-allowed`.
- AlterUserScramCredentials / DescribeUserScramCredentials through confluent-kafka's
  AdminClient: a user created that way logs in, survives kill -9 of the broker, and cannot log
  in once deleted. A damaged credential file stops start-up with its name.
- Sessions (`--connections-max-reauth-ms`): SaslAuthenticate tells the lifetime; a
  connection that does not log in again is closed at its first request after it; librdkafka
  re-authenticates and keeps producing.
- `shardlog user create|list|delete` manage SCRAM users a client then logs in (or not) as.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import kafka
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

import kafka_wire as wire
from clients import (ck_create_topic, ck_produce, ck_producer, ck_read_all, kp_produce,
                     kp_producer, kp_read_all)
from harness import Broker, TEST_DATA_ROOT, broker_binary, free_port, unique_topic
from test_java import java_round_trip
from test_operations import scrape, total
from test_tls import Pki, assert_read_back, brokers, messages, pki  # noqa: F401 (fixtures)

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")
PARTITIONS = 2
FAILED_AUTH_DELAY_MS = 400
# Bounds on waiting, never measurements.
ADMIN_TIMEOUT_S = 30.0
KCAT_TIMEOUT_S = 60.0
REFUSED_METADATA_TIMEOUT_S = 5.0
CLOSE_WAIT_S = 10.0
STARTUP_EXIT_TIMEOUT_S = 60.0
SESSION_LIFETIME_MS = 2000

API_SASL_HANDSHAKE = 17
API_SASL_AUTHENTICATE = 36
ERROR_NONE = 0
ERROR_UNSUPPORTED_SASL_MECHANISM = 33
ERROR_SASL_AUTHENTICATION_FAILED = 58


# ---------------------------------------------------------------------------------------------
# Brokers with SASL listeners

class SaslBroker:
    def __init__(self, broker: Broker, sasl_port: int, sasl_ssl_port: int):
        self.broker = broker
        self.sasl_plaintext = f"127.0.0.1:{sasl_port}"
        self.sasl_ssl = f"127.0.0.1:{sasl_ssl_port}"


def start_sasl_broker(name: str, certs: dict, started: list, *extra: str) -> SaslBroker:
    sasl_port, sasl_ssl_port = free_port(), free_port()
    broker = Broker(name, extra_args=[
        "--listen", f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "--listen", f"SASL_SSL://127.0.0.1:{sasl_ssl_port}",
        "--tls-cert-file", str(certs["server"][0]), "--tls-key-file", str(certs["server"][1]),
        "--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        "--failed-authentication-delay-ms", str(FAILED_AUTH_DELAY_MS),
        "--add-scram", f"SCRAM-SHA-512=[name={ADMIN[0]},password={ADMIN[1]}]",
        "--add-scram", f"SCRAM-SHA-256=[name={ALICE[0]},password={ALICE[1]},iterations=8192]",
        *extra])
    started.append(broker)
    broker.start()
    return SaslBroker(broker, sasl_port, sasl_ssl_port)


def ck_sasl(protocol: str, mechanism: str, user: tuple[str, str], ca: Pki | None = None) -> dict:
    conf = {"security.protocol": protocol, "sasl.mechanisms": mechanism,
            "sasl.username": user[0], "sasl.password": user[1]}
    if ca is not None:
        conf["ssl.ca.location"] = str(ca.ca_file)
    return conf


def refused(bootstrap: str, conf: dict) -> bool:
    """Whether a confluent client with `conf` fails to get metadata (bounded wait)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    try:
        admin.list_topics(timeout=REFUSED_METADATA_TIMEOUT_S)
        return False
    except KafkaException:
        return True


def round_trip(bootstrap: str, topic: str, conf: dict, count: int = 300) -> None:
    sent = messages(count)
    acks = ck_produce(ck_producer(bootstrap, **conf), topic, sent)
    assert_read_back(ck_read_all(bootstrap, topic, list(range(PARTITIONS)), **conf), sent, acks)


# ---------------------------------------------------------------------------------------------
# A raw SASL client (SaslHandshake v1, SaslAuthenticate v1), independent of the broker's code

def sasl_handshake(sock, mechanism: str, correlation_id: int = 1) -> tuple[int, list[str]]:
    sock.sendall(wire.frame(wire.header_v1(API_SASL_HANDSHAKE, 1, correlation_id)
                            + wire.string(mechanism)))
    r = wire.Reader(wire.recv_frame(sock))
    assert r.i32() == correlation_id
    error = r.i16()
    mechanisms = [r.string() for _ in range(r.i32())]
    assert r.done()
    return error, mechanisms


def sasl_authenticate(sock, token: bytes, correlation_id: int) -> tuple[int, str | None, bytes,
                                                                        int]:
    sock.sendall(wire.frame(wire.header_v1(API_SASL_AUTHENTICATE, 1, correlation_id)
                            + wire.i32(len(token)) + token))
    r = wire.Reader(wire.recv_frame(sock))
    assert r.i32() == correlation_id
    error, message = r.i16(), r.string()
    auth_bytes = r.take(r.i32())
    session_lifetime_ms = r.i64()
    assert r.done()
    return error, message, auth_bytes, session_lifetime_ms


def scram_login(sock, user: str, password: str, hash_name: str = "sha512"):
    """A SCRAM exchange (RFC 5802); returns the SaslAuthenticate answer that ends it."""
    mechanism = {"sha256": "SCRAM-SHA-256", "sha512": "SCRAM-SHA-512"}[hash_name]
    error, _ = sasl_handshake(sock, mechanism)
    assert error == ERROR_NONE
    client_nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = f"n={user},r={client_nonce}"
    error, message, server_first, _ = sasl_authenticate(sock, f"n,,{first_bare}".encode(), 2)
    if error != ERROR_NONE:
        return error, message, b"", 0
    attrs = dict(part.split("=", 1) for part in server_first.decode().split(","))
    assert attrs["r"].startswith(client_nonce)
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first.decode()},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, hash_name).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    answer = sasl_authenticate(sock, f"{without_proof},p={proof}".encode(), 3)
    if answer[0] == ERROR_NONE:
        server_key = hmac.new(salted, b"Server Key", hash_name).digest()
        expected = hmac.new(server_key, auth_message, hash_name).digest()
        assert answer[2] == b"v=" + base64.b64encode(expected), "server signature"
    return answer


def metadata_answered(sock, correlation_id: int) -> bool:
    sock.sendall(wire.metadata_v1(correlation_id, []))
    return wire.closed_or_answered(sock, CLOSE_WAIT_S) == "answered"


# ---------------------------------------------------------------------------------------------
# Stock clients

def test_confluent_scram_and_plain_over_both_sasl_listeners(request, brokers, pki,
                                                             monkeypatch):
    ca, _, certs = pki
    monkeypatch.setenv("RUST_LOG", "info,shardlog::server::handlers::sasl_authenticate=debug")
    sb = start_sasl_broker(request.node.name, certs, brokers)
    cases = [
        (sb.sasl_plaintext, ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", ADMIN)),
        (sb.sasl_ssl, ck_sasl("SASL_SSL", "SCRAM-SHA-256", ALICE, ca)),
        (sb.sasl_ssl, ck_sasl("SASL_SSL", "PLAIN", ALICE, ca)),
        (sb.sasl_ssl, ck_sasl("SASL_SSL", "PLAIN", ADMIN, ca)),
    ]
    for bootstrap, conf in cases:
        topic = unique_topic("sasl-ck")
        admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
        md = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
        assert {b.port for b in md.brokers.values()} == {int(bootstrap.rsplit(":", 1)[1])}
        ck_create_topic(sb.broker.bootstrap, topic, PARTITIONS)
        round_trip(bootstrap, topic, conf)
    log = sb.broker.log_path.read_text(errors="replace")
    assert "principal=User:admin" in log and "principal=User:alice" in log, \
        sb.broker.stderr_tail()
    # SCRAM-SHA-256 for admin (who has only SCRAM-SHA-512) is refused.
    assert refused(sb.sasl_plaintext, ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", ADMIN))


def test_kafka_python_java_and_kcat_with_scram(request, brokers, pki, tmp_path):
    ca, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers)
    topic = unique_topic("sasl-kp")
    ck_create_topic(sb.broker.bootstrap, topic, PARTITIONS)
    kp_sasl = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                   sasl_plain_username=ADMIN[0], sasl_plain_password=ADMIN[1])
    sent = messages(300)
    acks = kp_produce(kp_producer(sb.sasl_plaintext, **kp_sasl), topic, sent)
    assert_read_back(kp_read_all(sb.sasl_plaintext, topic, list(range(PARTITIONS)), **kp_sasl),
                     sent, acks)
    kp_ssl = dict(security_protocol="SASL_SSL", ssl_cafile=str(ca.ca_file),
                  sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=ALICE[0],
                  sasl_plain_password=ALICE[1])
    consumer = kafka.KafkaConsumer(bootstrap_servers=sb.sasl_ssl, **kp_ssl)
    try:
        assert topic in consumer.topics()
    finally:
        consumer.close()

    # The Java client (kafka-clients 4.3): ScramLoginModule over SASL_SSL.
    properties = tmp_path / "java-sasl.properties"
    properties.write_text(
        "security.protocol=SASL_SSL\nssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca.ca_file}\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN[0]}" password="{ADMIN[1]}";\n')
    java_round_trip(properties, sb.sasl_ssl, unique_topic("sasl-java"), PARTITIONS, 200)

    # kcat (Debian's, librdkafka 2.0.2) with SCRAM-SHA-256 over SASL_PLAINTEXT.
    kcat_topic = unique_topic("sasl-kcat")
    ck_create_topic(sb.broker.bootstrap, kcat_topic, 1)
    kcat_sasl = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-256",
                 "-X", f"sasl.username={ALICE[0]}", "-X", f"sasl.password={ALICE[1]}"]
    lines = [f"kcat-sasl-{i}" for i in range(100)]
    subprocess.run(["kcat", "-b", sb.sasl_plaintext, *kcat_sasl, "-P", "-t", kcat_topic],
                   input="\n".join(lines) + "\n", text=True, check=True, timeout=KCAT_TIMEOUT_S)
    out = subprocess.run(["kcat", "-b", sb.sasl_plaintext, *kcat_sasl, "-C", "-t", kcat_topic,
                          "-o", "beginning", "-e", "-q"],
                         capture_output=True, text=True, check=True, timeout=KCAT_TIMEOUT_S)
    assert out.stdout.splitlines() == lines


# ---------------------------------------------------------------------------------------------
# Failures

def test_wrong_password_and_unknown_user_fail_alike_and_others_keep_working(request, brokers,
                                                                            pki):
    ca, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers)
    topic = unique_topic("sasl-fail")
    ck_create_topic(sb.broker.bootstrap, topic, PARTITIONS)
    good = ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", ADMIN)
    producer = ck_producer(sb.sasl_plaintext, **good)
    before = total(scrape(sb.broker), "shardlog_requests_rejected_total",
                   reason="sasl_authentication_failed")

    answers = []
    for user, password in [(ADMIN[0], "wrong"), ("nobody", ADMIN[1])]:
        with wire.connect(sb.sasl_plaintext) as sock:
            started = time.monotonic()
            error, message, auth_bytes, _ = scram_login(sock, user, password)
            waited = time.monotonic() - started
            assert error == ERROR_SASL_AUTHENTICATION_FAILED, (error, message)
            assert auth_bytes == b""
            assert waited >= FAILED_AUTH_DELAY_MS / 1000 * 0.9, waited
            wire.wait_closed(sock, CLOSE_WAIT_S)
            answers.append(message)
    assert answers[0] == answers[1], "the answer must not tell which part was wrong"
    assert "password" not in answers[0].lower() and "user" not in answers[0].lower(), answers

    with wire.connect(sb.sasl_plaintext) as sock:
        error, message, _, _ = scram_login(sock, ADMIN[0], ADMIN[1])
        assert error == ERROR_NONE, message
        assert metadata_answered(sock, 9), "a logged-in raw client is served"

    # Stock clients with bad credentials are refused; the good producer keeps working.
    assert refused(sb.sasl_plaintext, ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-512",
                                              (ADMIN[0], "nope")))
    assert refused(sb.sasl_ssl, ck_sasl("SASL_SSL", "PLAIN", ("ghost", "x"), ca))
    sent = messages(100)
    acks = ck_produce(producer, topic, sent)
    assert_read_back(ck_read_all(sb.sasl_plaintext, topic, list(range(PARTITIONS)), **good),
                     sent, acks)
    after = total(scrape(sb.broker), "shardlog_requests_rejected_total",
                  reason="sasl_authentication_failed")
    assert after >= before + 4, (before, after)
    sb.broker.assert_alive()


def test_only_api_versions_and_sasl_before_a_login(request, brokers, pki):
    _, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers)
    before = total(scrape(sb.broker), "shardlog_requests_rejected_total",
                   reason="sasl_not_authenticated")
    with wire.connect(sb.sasl_plaintext) as sock:
        sock.sendall(wire.api_versions_v0(1))
        r = wire.Reader(wire.recv_frame(sock))
        assert r.i32() == 1 and r.i16() == ERROR_NONE
        apis = {r.i16(): (r.i16(), r.i16()) for _ in range(r.i32())}
        assert apis[API_SASL_AUTHENTICATE] == (0, 2) and apis[API_SASL_HANDSHAKE] == (0, 1)
        assert not metadata_answered(sock, 2), "Metadata before a login closes the connection"
    with wire.connect(sb.sasl_plaintext) as sock:
        error, mechanisms = sasl_handshake(sock, "SCRAM-SHA-512")
        assert error == ERROR_NONE
        assert not metadata_answered(sock, 2), "a handshake is not a login"
    # The PLAINTEXT listener of the same broker needs no login.
    with wire.connect(sb.broker.bootstrap) as sock:
        assert metadata_answered(sock, 1)
    after = total(scrape(sb.broker), "shardlog_requests_rejected_total",
                  reason="sasl_not_authenticated")
    assert after >= before + 2, (before, after)


def test_plain_over_sasl_plaintext_only_when_allowed(request, brokers, pki):
    _, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers)
    with wire.connect(sb.sasl_plaintext) as sock:
        error, mechanisms = sasl_handshake(sock, "PLAIN")
        assert error == ERROR_UNSUPPORTED_SASL_MECHANISM
        assert mechanisms == ["SCRAM-SHA-512", "SCRAM-SHA-256"]
        wire.wait_closed(sock, CLOSE_WAIT_S)
    assert refused(sb.sasl_plaintext, ck_sasl("SASL_PLAINTEXT", "PLAIN", ADMIN))
    allowed = start_sasl_broker(request.node.name + "-allowed", certs, brokers,
                                "--sasl-plain-over-plaintext-allowed")
    topic = unique_topic("sasl-plain")
    ck_create_topic(allowed.broker.bootstrap, topic, PARTITIONS)
    round_trip(allowed.sasl_plaintext, topic, ck_sasl("SASL_PLAINTEXT", "PLAIN", ALICE), 50)


# ---------------------------------------------------------------------------------------------
# Credential management

def describe(admin: AdminClient, users: list[str] | None = None) -> dict:
    if users is None:
        return admin.describe_user_scram_credentials().result(timeout=ADMIN_TIMEOUT_S)
    futures = admin.describe_user_scram_credentials(users)
    return {user: future.result(timeout=ADMIN_TIMEOUT_S) for user, future in futures.items()}


def mechanisms_of(description) -> set[tuple[ScramMechanism, int]]:
    return {(info.mechanism, info.iterations) for info in description.scram_credential_infos}


def test_admin_alters_and_describes_credentials_that_survive_kill9(request, brokers, pki):
    ca, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers)
    admin_conf = ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", ADMIN)
    admin = AdminClient({"bootstrap.servers": sb.sasl_plaintext, **admin_conf})
    described = describe(admin)
    assert mechanisms_of(described["admin"]) == {(ScramMechanism.SCRAM_SHA_512, 4096)}
    assert mechanisms_of(described["alice"]) == {(ScramMechanism.SCRAM_SHA_256, 8192)}

    bob = ("bob", "bob-secret")
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(bob[0], ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256,
                                                                 4096), bob[1].encode()),
        UserScramCredentialUpsertion(bob[0], ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512,
                                                                 8192), bob[1].encode()),
    ])
    futures["bob"].result(timeout=ADMIN_TIMEOUT_S)
    assert mechanisms_of(describe(admin, ["bob"])["bob"]) == {
        (ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)}
    # Too few iterations is refused for that user only.
    bad = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"pw")])
    with pytest.raises(KafkaException):
        bad["carol"].result(timeout=ADMIN_TIMEOUT_S)
    with pytest.raises(KafkaException):
        describe(admin, ["carol"])
    stored = (sb.broker.data_dir / "scram_credentials.json").read_text()
    assert bob[1] not in stored and ADMIN[1] not in stored, "no password on disk"

    topic = unique_topic("sasl-bob")
    ck_create_topic(sb.broker.bootstrap, topic, PARTITIONS)
    round_trip(sb.sasl_plaintext, topic, ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", bob), 50)

    sb.broker.restart(kill9=True)
    admin = AdminClient({"bootstrap.servers": sb.sasl_plaintext, **admin_conf})
    assert set(describe(admin)) == {"admin", "alice", "bob"}
    topic = unique_topic("sasl-bob-after-kill9")
    ck_create_topic(sb.broker.bootstrap, topic, PARTITIONS)
    round_trip(sb.sasl_ssl, topic, ck_sasl("SASL_SSL", "SCRAM-SHA-512", bob, ca), 50)

    futures = admin.alter_user_scram_credentials([
        UserScramCredentialDeletion(bob[0], ScramMechanism.SCRAM_SHA_256),
        UserScramCredentialDeletion(bob[0], ScramMechanism.SCRAM_SHA_512)])
    futures["bob"].result(timeout=ADMIN_TIMEOUT_S)
    assert refused(sb.sasl_plaintext, ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", bob))
    assert set(describe(admin)) == {"admin", "alice"}


def test_damaged_credential_file_stops_start_up(request, brokers, pki):
    _, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers)
    sb.broker.stop()
    path = sb.broker.data_dir / "scram_credentials.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    proc = subprocess.run(sb.broker.command(), capture_output=True, text=True,
                          timeout=STARTUP_EXIT_TIMEOUT_S)
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "scram_credentials.json" in proc.stderr and "damaged" in proc.stderr, \
        proc.stderr[-2000:]
    assert path.read_text() == text[: len(text) // 2], "a damaged file is left as it is"


def test_start_up_refuses_bad_sasl_settings(tmp_path):
    port = free_port()
    for args, needle in [
        (["--listen", f"SASL_PLAINTEXT://127.0.0.1:{port}", "--sasl-mechanisms", "GSSAPI"],
         "sasl.enabled_mechanisms"),
        (["--add-scram", "SCRAM-SHA-1=[name=a,password=secret-pw]"], "sasl.add_scram"),
    ]:
        proc = subprocess.run([str(broker_binary()), "serve", "--data-dir", str(tmp_path),
                               "--admin-listen", "", "--shards", "1", *args],
                              capture_output=True, text=True, timeout=STARTUP_EXIT_TIMEOUT_S)
        assert proc.returncode != 0 and needle in proc.stderr, proc.stderr[-2000:]
        assert "secret-pw" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# Session lifetime (KIP-368)

def test_sessions_end_unless_the_client_logs_in_again(request, brokers, pki):
    _, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers,
                           "--connections-max-reauth-ms", str(SESSION_LIFETIME_MS))
    with wire.connect(sb.sasl_plaintext) as sock:
        error, message, _, lifetime = scram_login(sock, ADMIN[0], ADMIN[1])
        assert error == ERROR_NONE, message
        assert lifetime == SESSION_LIFETIME_MS
        assert metadata_answered(sock, 4)
        time.sleep(SESSION_LIFETIME_MS / 1000 + 0.5)
        assert not metadata_answered(sock, 5), "closed after the session ended"
    # librdkafka re-authenticates (KIP-368) and keeps producing past the lifetime.
    topic = unique_topic("sasl-reauth")
    ck_create_topic(sb.broker.bootstrap, topic, PARTITIONS)
    conf = ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", ADMIN)
    producer = ck_producer(sb.sasl_plaintext, **conf)
    sent = messages(30)
    acks = []
    for chunk in range(3):
        acks += ck_produce(producer, topic, sent[chunk * 10:(chunk + 1) * 10])
        time.sleep(SESSION_LIFETIME_MS / 1000)
    assert_read_back(ck_read_all(sb.sasl_plaintext, topic, list(range(PARTITIONS)), **conf),
                     sent, acks)


# ---------------------------------------------------------------------------------------------
# The CLI

def shardlog_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(broker_binary()), *args], capture_output=True, text=True,
                          timeout=ADMIN_TIMEOUT_S, env={**os.environ, **(env or {})})


def test_cli_creates_lists_and_deletes_users(request, brokers, pki):
    _, _, certs = pki
    sb = start_sasl_broker(request.node.name, certs, brokers)
    server = ["--bootstrap-server", sb.broker.bootstrap]
    created = shardlog_cli("user", "create", "carol", "--mechanism", "SCRAM-SHA-256",
                           "--iterations", "8192", *server,
                           env={"SHARDLOG_USER_PASSWORD": "carol-secret"})
    assert created.returncode == 0, created.stderr
    listed = shardlog_cli("user", "list", "--format", "json", *server)
    assert listed.returncode == 0, listed.stderr
    assert {"user": "carol", "mechanism": "SCRAM-SHA-256", "iterations": 8192} in \
        json.loads(listed.stdout)
    carol = ck_sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", ("carol", "carol-secret"))
    assert not refused(sb.sasl_plaintext, carol)
    bad = shardlog_cli("user", "create", "dave", "--password", "x", "--iterations", "10",
                       *server)
    assert bad.returncode != 0 and "Too few iterations" in bad.stderr, bad.stderr
    deleted = shardlog_cli("user", "delete", "carol", "--mechanism", "SCRAM-SHA-256", *server)
    assert deleted.returncode == 0, deleted.stderr
    assert refused(sb.sasl_plaintext, carol)
    again = shardlog_cli("user", "delete", "carol", "--mechanism", "SCRAM-SHA-256", *server)
    assert again.returncode != 0 and "error code 91" in again.stderr, again.stderr
