"""Contract: ApiVersions and response framing on the raw wire, as Kafka specifies them.

- ApiVersions v0 and v3 answer with error 0, the request's correlation id, a v0 response
  header (ApiVersions responses never carry header tagged fields) and a body that parses
  exactly (no trailing bytes). Both list the same APIs, including every API issue 3 needs
  (Produce, Fetch, ListOffsets, Metadata, ApiVersions, CreateTopics, DeleteTopics,
  InitProducerId), with the flexible versions current clients negotiate (design §7).
- Top-level tagged fields of the v3 reply that hold their default value are omitted, as Kafka
  does (librdkafka 2.0 misparses them otherwise).
- KIP-511: ApiVersions with a version the broker does not support is answered with
  UNSUPPORTED_VERSION (35) and the broker's ApiVersions list, in a v0 response body.
- Pipelined requests on one connection are answered in request order.
"""

import struct

import pytest

import kafka_wire as wire

REQUIRED_APIS = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions",
                 19: "CreateTopics", 20: "DeleteTopics", 22: "InitProducerId"}
# Lowest acceptable maximum version: the first flexible version of each (design §7).
MIN_MAX_VERSION = {0: 9, 1: 12, 2: 6, 3: 9, 18: 3, 19: 5, 20: 4, 22: 2}
UNSUPPORTED_API_VERSIONS_VERSION = 127


def api_versions_v0(bootstrap, correlation_id=7):
    body = wire.roundtrip(bootstrap, wire.api_versions_v0(correlation_id))
    assert wire.Reader(body).i32() == correlation_id
    return wire.parse_api_versions_v0(body[4:])


def test_api_versions_v0(broker):
    error, apis = api_versions_v0(broker.bootstrap)
    assert error == wire.ERROR_NONE
    missing = {k: n for k, n in REQUIRED_APIS.items() if k not in apis}
    assert not missing, f"ApiVersions lacks {missing}"
    for key, (lo, hi) in apis.items():
        assert 0 <= lo <= hi, f"api {key}: versions {lo}..{hi}"


def test_api_versions_v3_flexible(broker):
    correlation_id = 0x1234567
    body = wire.roundtrip(broker.bootstrap, wire.api_versions_flexible(correlation_id, 3))
    # Response header v0: correlation id only, no tagged-field byte.
    assert wire.Reader(body).i32() == correlation_id
    error, apis, throttle, tags = wire.parse_api_versions_v3(body[4:])
    assert error == wire.ERROR_NONE
    assert throttle >= 0
    _, apis_v0 = api_versions_v0(broker.bootstrap)
    assert apis == apis_v0, "v0 and v3 replies list different APIs"
    too_old = {REQUIRED_APIS[k]: apis[k][1] for k, v in MIN_MAX_VERSION.items()
               if apis[k][1] < v}
    assert not too_old, f"max versions below the first flexible version: {too_old}"
    # Omit default-valued tagged fields: SupportedFeatures(0)/FinalizedFeatures(2) empty,
    # FinalizedFeaturesEpoch(1) = -1, ZkMigrationReady(3) = false.
    for tag in (0, 2):
        if tag in tags:
            assert wire.Reader(tags[tag]).uvarint() > 1, f"tag {tag}: empty array spelled out"
    if 1 in tags:
        assert struct.unpack(">q", tags[1])[0] != -1, "FinalizedFeaturesEpoch -1 spelled out"
    if 3 in tags:
        assert tags[3] != b"\x00", "ZkMigrationReady=false spelled out"


@pytest.mark.parametrize("version", [UNSUPPORTED_API_VERSIONS_VERSION, 32767])
def test_api_versions_unsupported_version_kip511(broker, version):
    correlation_id = 4242
    body = wire.roundtrip(broker.bootstrap, wire.api_versions_flexible(correlation_id, version))
    assert wire.Reader(body).i32() == correlation_id
    error, apis = wire.parse_api_versions_v0(body[4:])
    assert error == wire.ERROR_UNSUPPORTED_VERSION
    assert 18 in apis and apis[18][0] == 0 and apis[18][1] >= 3, apis.get(18)
    # The connection stays usable: the client retries with a version from the list.
    with wire.connect(broker.bootstrap) as sock:
        sock.sendall(wire.api_versions_flexible(1, version))
        wire.recv_frame(sock)
        sock.sendall(wire.api_versions_flexible(2, 3))
        body = wire.recv_frame(sock)
        assert wire.Reader(body).i32() == 2
        assert wire.parse_api_versions_v3(body[4:])[0] == wire.ERROR_NONE


def test_pipelined_requests_answered_in_order(broker):
    requests = [wire.api_versions_v0(10), wire.metadata_v1(11, None),
                wire.api_versions_flexible(12, 3), wire.metadata_v1(13, []),
                wire.api_versions_v0(14)]
    with wire.connect(broker.bootstrap) as sock:
        sock.sendall(b"".join(requests))
        got = [wire.Reader(wire.recv_frame(sock)).i32() for _ in requests]
    assert got == [10, 11, 12, 13, 14]


CONNECTIONS_FOR_CONSISTENCY = 12


def test_api_versions_identical_on_every_connection(broker):
    """Connections land on different shards (SO_REUSEPORT or an accept shard); every one must
    advertise the same API table. librdkafka derives features from it: e.g. it only enables
    LZ4 if FindCoordinator is listed, and disables idempotence without InitProducerId."""
    replies = set()
    for i in range(CONNECTIONS_FOR_CONSISTENCY):
        body = wire.roundtrip(broker.bootstrap, wire.api_versions_flexible(i, 3))
        error, apis, _, _ = wire.parse_api_versions_v3(body[4:])
        assert error == wire.ERROR_NONE
        replies.add(tuple(sorted(apis.items())))
    assert len(replies) == 1, "ApiVersions differs between connections:\n" + "\n".join(
        str(dict(r)) for r in replies)
    (apis,) = replies
    assert 10 in dict(apis), "FindCoordinator (10) not listed: librdkafka then refuses LZ4"


LIST_OFFSETS_TS_MS = 1_700_000_000_000


@pytest.mark.parametrize("version", range(1, 11))
def test_list_offsets_every_version_answers(broker, version):
    """ListOffsets v1..v10 (librdkafka 2.0 uses v2, Kafka 4.0 clients v10) each answer
    earliest and latest correctly on one connection, and from the version that introduced
    them the special timestamps -3 (max timestamp, v7), -4 (earliest local, v8) and -5
    (latest tiered, v9: -1 without tiered storage); none leaves the client hanging. The
    records all carry one timestamp, so -3 names the first of them."""
    from clients import ck_create_topic, ck_produce, ck_producer
    from harness import unique_topic
    topic = unique_topic("lo")
    ck_create_topic(broker.bootstrap, topic, 1)
    ck_produce(ck_producer(broker.bootstrap), topic, [(None, b"x", 0, LIST_OFFSETS_TS_MS)] * 3)
    # (target, introduced in, expected (error, timestamp, offset))
    cases = [(-2, 1, (0, -1, 0)), (-1, 1, (0, -1, 3)), (-3, 7, (0, LIST_OFFSETS_TS_MS, 0)),
             (-4, 8, (0, -1, 0)), (-5, 9, (0, -1, -1))]
    with wire.connect(broker.bootstrap) as sock:
        for correlation_id, (target, since, expected) in enumerate(cases, start=1):
            if version < since:
                continue
            sock.sendall(wire.list_offsets(correlation_id, version, topic, 0, target))
            body = wire.recv_frame(sock)
            assert wire.Reader(body).i32() == correlation_id
            found = wire.parse_list_offsets(body[4:], version)[(topic, 0)]
            assert found == expected, f"v{version} target {target}"
