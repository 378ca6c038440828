//! Frame codec tests: round trips of every frame kind, every cut of a frame is an error
//! (never a panic), huge declared counts are refused before allocating, strict decoding.

use super::*;

fn roundtrip(frame: Frame) {
    let bytes = frame.encode().unwrap();
    let decoded = read_frame(&mut bytes.as_slice(), 1 << 20).unwrap();
    assert_eq!(decoded, frame);
}

fn endpoint(node_id: i32, rack: Option<&str>) -> BrokerEndpoint {
    BrokerEndpoint {
        node_id,
        host: "127.0.0.1".into(),
        port: 9092,
        rack: rack.map(str::to_string),
        listeners: vec![
            Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                security_protocol: 0,
            },
            Listener {
                name: "SSL".into(),
                host: "broker.example".into(),
                port: 9093,
                security_protocol: 1,
            },
        ],
    }
}

#[test]
fn every_frame_kind_roundtrips() {
    roundtrip(Frame::Hello {
        version: PROTOCOL_VERSION,
        node_id: 3,
    });
    let message = RaftMessage {
        from: 1,
        to: 2,
        term: 7,
        ..Default::default()
    };
    roundtrip(Frame::Raft(message));
    roundtrip(Frame::Request {
        correlation: 9,
        request: ControllerRequest::Register {
            node_id: 2,
            incarnation_id: [7; 16],
            endpoint: endpoint(2, Some("r1")),
            cluster_id: Some([4; 16]),
            previous_broker_epoch: Some(41),
        },
    });
    roundtrip(Frame::Request {
        correlation: 12,
        request: ControllerRequest::Register {
            node_id: 2,
            incarnation_id: [7; 16],
            endpoint: endpoint(2, None),
            cluster_id: None,
            previous_broker_epoch: None,
        },
    });
    roundtrip(Frame::Request {
        correlation: 10,
        request: ControllerRequest::Heartbeat {
            node_id: 2,
            broker_epoch: 5,
            caught_up: true,
            want_fence: false,
        },
    });
    roundtrip(Frame::Response {
        correlation: 11,
        response: ControllerResponse {
            error_code: 41,
            leader_hint: 3,
            broker_epoch: -1,
            view: ClusterView {
                cluster_id: Some([9; 16]),
                controller_id: 3,
                brokers: vec![endpoint(1, None), endpoint(2, Some("r"))],
                quorum: None,
                topics: Arc::default(),
            },
            topics: Vec::new(),
            producer_ids: None,
            partition: None,
            partition_results: Vec::new(),
            metadata: None,
        },
    });
    for request in topic_requests() {
        roundtrip(Frame::Request {
            correlation: 13,
            request,
        });
    }
    roundtrip(topic_response());
    roundtrip(producer_ids_response());
    for request in alter_partition_requests() {
        roundtrip(Frame::Request {
            correlation: 15,
            request,
        });
    }
    roundtrip(alter_partition_response(vec![2, 1]));
    roundtrip(alter_partition_response(Vec::new()));
}

fn alter_partition_requests() -> Vec<ControllerRequest> {
    let request = AlterPartitionRequest {
        leader: 2,
        leader_broker_epoch: i64::MAX,
        leader_epoch: 7,
        partition_epoch: -1,
        new_isr: vec![2, 3, 1],
        new_isr_broker_epochs: vec![(2, i64::MAX), (3, 0), (1, -1)],
    };
    let without_epochs = AlterPartitionRequest {
        new_isr: vec![2],
        new_isr_broker_epochs: Vec::new(),
        ..request.clone()
    };
    vec![
        ControllerRequest::AlterPartition {
            topic_id: [6; 16],
            partition: 3,
            request,
        },
        ControllerRequest::AlterPartition {
            topic_id: [0; 16],
            partition: i32::MIN,
            request: without_epochs,
        },
    ]
}

/// An AlterPartition answer: the partition's state with ISR `isr`, no topic results.
fn alter_partition_response(isr: Vec<NodeId>) -> Frame {
    let Frame::Response {
        mut response,
        correlation,
    } = topic_response()
    else {
        unreachable!()
    };
    response.topics.clear();
    response.partition = Some(AlteredPartition {
        leader: isr.first().copied().unwrap_or(-1),
        leader_epoch: 4,
        partition_epoch: i32::MAX,
        isr,
    });
    Frame::Response {
        correlation,
        response,
    }
}

fn topic_requests() -> Vec<ControllerRequest> {
    let placed = TopicCreation {
        name: "placed".into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: BTreeMap::from([(0, vec![1, 2]), (1, vec![2, 3])]),
        configs: BTreeMap::from([
            ("cleanup.policy".into(), "compact".into()),
            ("retention.ms".into(), "-1".into()),
        ]),
    };
    let defaults = TopicCreation {
        name: "defaults".into(),
        num_partitions: 6,
        replication_factor: 3,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    vec![
        ControllerRequest::CreateTopics {
            topics: vec![placed, defaults],
            validate_only: true,
        },
        ControllerRequest::CreateTopics {
            topics: Vec::new(),
            validate_only: false,
        },
        ControllerRequest::DeleteTopics {
            names: vec!["a".into(), "b.c".into()],
        },
        ControllerRequest::CreatePartitions {
            topics: vec![
                PartitionsCreation {
                    name: "a".into(),
                    count: 4,
                    assignments: vec![vec![1], vec![2, 3]],
                },
                PartitionsCreation {
                    name: "b".into(),
                    count: 9,
                    assignments: Vec::new(),
                },
            ],
            validate_only: false,
        },
        ControllerRequest::AllocateProducerIds {
            node_id: 7,
            broker_epoch: -3,
            floor: 5000,
        },
        ControllerRequest::AlterTopicConfigs {
            topic: "a".into(),
            alterations: vec![
                ("retention.ms".into(), Some("1000".into())),
                ("cleanup.policy".into(), None),
                ("segment.bytes".into(), Some(String::new())),
            ],
            validate_only: true,
        },
        ControllerRequest::AlterTopicConfigs {
            topic: "b".into(),
            alterations: Vec::new(),
            validate_only: false,
        },
        ControllerRequest::AlterGroupConfigs {
            group: "payments".into(),
            alterations: vec![
                ("consumer.heartbeat.interval.ms".into(), Some("6000".into())),
                ("consumer.session.timeout.ms".into(), None),
            ],
            validate_only: false,
        },
    ]
}

/// `topic_response` without its topic results: the base of other answers.
fn bare_response() -> (ControllerResponse, u64) {
    let Frame::Response {
        mut response,
        correlation,
    } = topic_response()
    else {
        unreachable!()
    };
    response.topics.clear();
    (response, correlation)
}

/// An AllocateProducerIds answer: a block and no topic results.
fn producer_ids_response() -> Frame {
    let (mut response, correlation) = bare_response();
    response.producer_ids = Some(ProducerIdBlock {
        first_producer_id: i64::MAX - 1000,
        size: 1000,
    });
    Frame::Response {
        correlation,
        response,
    }
}

fn topic_response() -> Frame {
    Frame::Response {
        correlation: 14,
        response: ControllerResponse {
            error_code: 0,
            leader_hint: 1,
            broker_epoch: -1,
            view: ClusterView {
                cluster_id: Some([9; 16]),
                controller_id: 1,
                brokers: vec![endpoint(1, None)],
                quorum: None,
                topics: Arc::default(),
            },
            topics: vec![
                TopicResult {
                    name: "made".into(),
                    error_code: 0,
                    message: None,
                    topic_id: [5; 16],
                    num_partitions: 3,
                    replication_factor: 2,
                },
                TopicResult {
                    name: "taken".into(),
                    error_code: 36,
                    message: Some("topic 'taken' already exists".into()),
                    topic_id: [0; 16],
                    num_partitions: -1,
                    replication_factor: -1,
                },
            ],
            producer_ids: None,
            partition: None,
            partition_results: Vec::new(),
            metadata: None,
        },
    }
}

#[test]
fn every_cut_of_a_topic_frame_is_an_error_not_a_panic() {
    let mut frames: Vec<Frame> = topic_requests()
        .into_iter()
        .map(|request| Frame::Request {
            correlation: 1,
            request,
        })
        .collect();
    frames.push(topic_response());
    frames.push(producer_ids_response());
    frames.extend(
        alter_partition_requests()
            .into_iter()
            .map(|request| Frame::Request {
                correlation: 1,
                request,
            }),
    );
    frames.push(alter_partition_response(vec![1, 2, 3]));
    frames.push(metadata_response());
    frames.push(Frame::Request {
        correlation: 1,
        request: ControllerRequest::FetchMetadata {
            node_id: 4,
            after_index: 7,
        },
    });
    for frame in frames {
        let bytes = frame.encode().unwrap();
        for cut in 4..bytes.len() {
            assert!(
                Frame::decode(&bytes[4..cut]).is_err(),
                "{frame:?} cut at {cut}"
            );
        }
        let mut trailing = bytes[4..].to_vec();
        trailing.push(0);
        assert!(Frame::decode(&trailing).is_err(), "trailing byte accepted");
    }
}

#[test]
fn huge_declared_counts_are_refused_before_allocating() {
    let huge = u32::MAX.to_be_bytes();
    let request = |body: &[u8]| {
        let mut frame = vec![KIND_REQUEST];
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(body);
        frame
    };
    let create = [&[REQUEST_CREATE_TOPICS, 0][..], &huge].concat();
    let delete = [&[REQUEST_DELETE_TOPICS][..], &huge].concat();
    let partitions = [&[REQUEST_CREATE_PARTITIONS, 1][..], &huge].concat();
    let alterations = [&[REQUEST_ALTER_TOPIC_CONFIGS, 0, 0, 1, b't'][..], &huge].concat();
    // One topic whose replica list claims u32::MAX nodes.
    let replicas = [
        &[
            REQUEST_CREATE_PARTITIONS,
            0,
            0,
            0,
            0,
            1,
            0,
            1,
            b'a',
            0,
            0,
            0,
            2,
        ][..],
        &[0, 0, 0, 1],
        &huge,
    ]
    .concat();
    for body in [create, delete, partitions, alterations, replicas] {
        let frame = request(&body);
        match Frame::decode(&frame) {
            Err(FrameError::Malformed(text)) => assert!(text.contains("bytes"), "{text}"),
            other => panic!("accepted {other:?}"),
        }
    }
    // A response claiming more topic results than its body could hold.
    let mut response = topic_response().encode().unwrap()[4..].to_vec();
    // Before the two absent-presence bytes (producer ids, partition).
    let results_at = response.len() - topic_results_bytes() - 2;
    response.truncate(results_at);
    response.extend_from_slice(&huge);
    assert!(Frame::decode(&response).is_err());
}

/// Bytes of `topic_response`'s topic results, count included.
fn topic_results_bytes() -> usize {
    let Frame::Response { response, .. } = topic_response() else {
        unreachable!()
    };
    let mut out = Vec::new();
    encode_list(&response.topics, &mut out, encode_topic_result).unwrap();
    out.len()
}

#[test]
fn strict_decoding_of_topic_requests() {
    let encoded = |request: ControllerRequest| {
        Frame::Request {
            correlation: 1,
            request,
        }
        .encode()
        .unwrap()[4..]
            .to_vec()
    };
    // A config key given twice would silently lose a value in a map: refused.
    let mut body = encoded(ControllerRequest::CreateTopics {
        topics: vec![TopicCreation {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            assignments: BTreeMap::new(),
            configs: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
        }],
        validate_only: false,
    });
    let second_key = body.len() - 4;
    assert_eq!(body[second_key], b'b');
    body[second_key] = b'a';
    assert!(
        Frame::decode(&body).is_err(),
        "duplicate config key accepted"
    );
    // A presence byte other than 0 or 1 is refused.
    let mut body = producer_ids_response().encode().unwrap()[4..].to_vec();
    // From the end: the metadata chunk's absence (1), the partition results' count (4),
    // the partition's absence (1), then the block (8 + 8) after its presence byte.
    let presence = body.len() - 23;
    assert_eq!(body[presence], 1);
    body[presence] = 2;
    assert!(Frame::decode(&body).is_err(), "presence byte 2 accepted");
    // A null config name is refused; a null value is a DELETE.
    let mut body = encoded(ControllerRequest::AlterTopicConfigs {
        topic: "t".into(),
        alterations: vec![("a".into(), None)],
        validate_only: false,
    });
    let name_at = body.len() - 5;
    body[name_at..name_at + 2].copy_from_slice(&(-1i16).to_be_bytes());
    body.truncate(name_at + 2);
    body.extend_from_slice(&(-1i16).to_be_bytes());
    assert!(Frame::decode(&body).is_err(), "null config name accepted");
    // A boolean other than 0 or 1, and a null name, are refused.
    let mut body = encoded(ControllerRequest::DeleteTopics {
        names: vec!["x".into()],
    });
    let at = body.len() - 3;
    body[at..at + 2].copy_from_slice(&(-1i16).to_be_bytes());
    body.truncate(at + 2);
    assert!(Frame::decode(&body).is_err(), "null name accepted");
    let mut body = encoded(ControllerRequest::CreateTopics {
        topics: Vec::new(),
        validate_only: true,
    });
    body[10] = 2;
    assert!(Frame::decode(&body).is_err(), "boolean 2 accepted");
    // A string too long for its i16 length cannot be encoded (never silently cut).
    let long = ControllerRequest::DeleteTopics {
        names: vec!["x".repeat(40_000)],
    };
    assert!(
        Frame::Request {
            correlation: 1,
            request: long
        }
        .encode()
        .is_err()
    );
}

#[test]
fn oversized_truncated_and_garbage_frames_are_errors_not_panics() {
    let big = (1u32 << 30).to_be_bytes();
    assert!(matches!(
        read_frame(&mut big.as_slice(), 1024),
        Err(FrameError::TooLarge { .. })
    ));
    let frame = Frame::Request {
        correlation: 1,
        request: ControllerRequest::Register {
            node_id: 1,
            incarnation_id: [1; 16],
            endpoint: endpoint(1, Some("rack")),
            cluster_id: Some([2; 16]),
            previous_broker_epoch: Some(3),
        },
    }
    .encode()
    .unwrap();
    for cut in 5..frame.len() {
        assert!(Frame::decode(&frame[4..cut]).is_err(), "cut at {cut}");
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let len = (seed % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = Frame::decode(&bytes);
    }
    // A response claiming more brokers than its body could hold is refused up front.
    let mut body = vec![KIND_RESPONSE];
    body.extend_from_slice(&[0; 8 + 2 + 4 + 8 + 1 + 4]);
    body.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(Frame::decode(&body).is_err());
}

#[test]
fn alter_partition_frames_are_decoded_strictly() {
    let huge = u32::MAX.to_be_bytes();
    // Request type, topic id, partition, leader, leader broker epoch, both epochs.
    let fixed = [
        &[KIND_REQUEST][..],
        &[0; 8],
        &[REQUEST_ALTER_PARTITION],
        &[0; 16 + 4 + 4 + 8 + 4 + 4],
    ]
    .concat();
    let huge_isr = [&fixed[..], &huge].concat();
    let huge_epochs = [&fixed[..], &[0, 0, 0, 1, 0, 0, 0, 2], &huge].concat();
    for body in [huge_isr, huge_epochs] {
        match Frame::decode(&body) {
            Err(FrameError::Malformed(text)) => assert!(text.contains("bytes"), "{text}"),
            other => panic!("accepted {other:?}"),
        }
    }
    // A well-formed body under a request type nobody knows is refused.
    let request = alter_partition_requests().swap_remove(0);
    let mut unknown_type = Frame::Request {
        correlation: 1,
        request,
    }
    .encode()
    .unwrap()[4..]
        .to_vec();
    assert_eq!(unknown_type[9], REQUEST_ALTER_PARTITION);
    assert!(Frame::decode(&unknown_type).is_ok());
    unknown_type[9] = REQUEST_ALTER_PARTITION + 1;
    assert!(
        Frame::decode(&unknown_type).is_err(),
        "unknown request type"
    );
    // The partition's presence byte is 0 or 1.
    let Frame::Response { mut response, .. } = alter_partition_response(Vec::new()) else {
        unreachable!()
    };
    response.partition = None;
    let mut body = Frame::Response {
        correlation: 1,
        response,
    }
    .encode()
    .unwrap()[4..]
        .to_vec();
    let presence = body.len() - 1;
    assert_eq!(body[presence], 0);
    body[presence] = 2;
    assert!(Frame::decode(&body).is_err(), "presence byte 2 accepted");
}

#[test]
fn election_results_round_trip_and_every_cut_is_an_error() {
    let Frame::Response {
        mut response,
        correlation,
    } = topic_response()
    else {
        unreachable!()
    };
    response.topics.clear();
    response.partition_results = vec![
        ElectionResult {
            topic: "a".into(),
            partition: 0,
            error_code: 0,
        },
        ElectionResult {
            topic: "a".into(),
            partition: 7,
            error_code: 84,
        },
    ];
    let frame = Frame::Response {
        correlation,
        response,
    };
    roundtrip(frame.clone());
    let body = frame.encode().unwrap()[4..].to_vec();
    for cut in 0..body.len() {
        assert!(Frame::decode(&body[..cut]).is_err(), "cut at {cut}");
    }
    // An unknown election type is refused.
    let mut request = Frame::Request {
        correlation: 1,
        request: ControllerRequest::ElectLeaders {
            election_type: ElectionType::Preferred,
            partitions: None,
        },
    }
    .encode()
    .unwrap()[4..]
        .to_vec();
    let type_at = request.len() - 2;
    request[type_at] = 9;
    assert!(Frame::decode(&request).is_err());
}

#[test]
fn reassignment_requests_round_trip_and_every_cut_is_an_error() {
    let frame = Frame::Request {
        correlation: 3,
        request: ControllerRequest::AlterReassignments {
            reassignments: vec![
                ReassignmentRequest {
                    topic: "orders".into(),
                    partition: 2,
                    target: Some(vec![4, 5, 2]),
                },
                ReassignmentRequest {
                    topic: "orders".into(),
                    partition: 3,
                    target: None,
                },
            ],
        },
    };
    roundtrip(frame.clone());
    let body = frame.encode().unwrap()[4..].to_vec();
    for cut in 0..body.len() {
        assert!(Frame::decode(&body[..cut]).is_err(), "cut at {cut}");
    }
}

/// A FetchMetadata answer with a snapshot and entries (one the no-op, without data).
fn metadata_response() -> Frame {
    let (mut response, correlation) = bare_response();
    response.metadata = Some(MetadataChunk {
        snapshot: Some((40, vec![1, 2, 3, 4])),
        entries: vec![(41, Vec::new()), (42, vec![9; 300])],
        voter_applied_index: 45,
    });
    Frame::Response {
        correlation,
        response,
    }
}

#[test]
fn fetch_metadata_and_its_chunk_roundtrip() {
    roundtrip(Frame::Request {
        correlation: 3,
        request: ControllerRequest::FetchMetadata {
            node_id: 4,
            after_index: 0,
        },
    });
    roundtrip(metadata_response());
    let Frame::Response {
        mut response,
        correlation,
    } = metadata_response()
    else {
        unreachable!()
    };
    let chunk = response.metadata.as_mut().unwrap();
    chunk.snapshot = None;
    chunk.entries.clear();
    roundtrip(Frame::Response {
        correlation,
        response,
    });
}

#[test]
fn a_metadata_entry_longer_than_the_frame_is_refused() {
    let frame = metadata_response();
    let mut body = frame.encode().unwrap()[4..].to_vec();
    // The snapshot's length field: after the fixed response fields, find the 4-byte length 4.
    let at = body
        .windows(8)
        .position(|w| w == [0, 0, 0, 0, 0, 0, 0, 40])
        .unwrap()
        + 8;
    body[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(Frame::decode(&body).is_err());
}
