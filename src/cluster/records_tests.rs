//! Codec tests: every record type round-trips; random and mutated bytes decode to a typed
//! error or a record, never a panic. Failures print `SHARDLOG_SEED`.

use super::*;
use crate::cluster::test_rng::Rng;

fn samples() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::ClusterId([7; 16]),
        MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            level: 3,
        },
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            node_id: 2,
            incarnation_id: [9; 16],
            broker_epoch: 41,
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                security_protocol: 0,
            }],
            rack: Some("r1".into()),
            fenced: true,
        }),
        MetadataRecord::FenceBroker(BrokerFencingRecord {
            node_id: 2,
            broker_epoch: 41,
        }),
        MetadataRecord::UnfenceBroker(BrokerFencingRecord {
            node_id: 2,
            broker_epoch: 41,
        }),
        MetadataRecord::Topic(TopicRecord {
            topic_id: [1; 16],
            name: "orders".into(),
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id: [1; 16],
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
            elr: vec![3],
            last_known_elr: vec![],
            leader: Some(1),
            leader_epoch: 4,
            partition_epoch: 9,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }),
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: [1; 16],
            partition: 0,
            leader: LeaderChange::None,
            replicas: None,
            isr: Some(vec![2]),
            elr: Some(vec![]),
            last_known_elr: None,
            leader_epoch: 5,
            partition_epoch: 10,
            adding_replicas: None,
            removing_replicas: None,
        }),
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: [1; 16],
            partition: 0,
            leader: LeaderChange::Unchanged,
            replicas: Some(vec![2, 3]),
            isr: None,
            elr: None,
            last_known_elr: Some(vec![3]),
            leader_epoch: 5,
            partition_epoch: 11,
            adding_replicas: None,
            removing_replicas: None,
        }),
        MetadataRecord::RemoveTopic { topic_id: [1; 16] },
        MetadataRecord::ConfigChange(ConfigChangeRecord {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        }),
        MetadataRecord::ConfigChange(ConfigChangeRecord {
            resource: ConfigResource::Broker(3),
            name: "log.retention.ms".into(),
            value: None,
        }),
        MetadataRecord::ConfigChange(ConfigChangeRecord {
            resource: ConfigResource::BrokerDefault,
            name: "log.retention.ms".into(),
            value: Some("5".into()),
        }),
        MetadataRecord::ConfigChange(ConfigChangeRecord {
            resource: ConfigResource::Group("payments".into()),
            name: "consumer.heartbeat.interval.ms".into(),
            value: Some("6000".into()),
        }),
        MetadataRecord::ProducerIdsBlock(ProducerIdsBlockRecord {
            node_id: 1,
            broker_epoch: 41,
            first_producer_id: 1000,
            size: 1000,
        }),
        MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
            id: [3; 16],
            resource_type: 2,
            resource_name: "orders".into(),
            pattern_type: 3,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 3,
            permission_type: 3,
        }),
        MetadataRecord::RemoveAccessControlEntry { id: [3; 16] },
        MetadataRecord::UserScramCredential(UserScramCredentialRecord {
            name: "alice".into(),
            mechanism: 1,
            salt: vec![1, 2, 3],
            stored_key: vec![4; 32],
            server_key: vec![5; 32],
            iterations: 4096,
        }),
        MetadataRecord::RemoveUserScramCredential {
            name: "alice".into(),
            mechanism: 1,
        },
    ]
}

#[test]
fn every_record_type_round_trips() {
    let records = samples();
    let types: std::collections::BTreeSet<u16> = records.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 15, "a sample of every record type");
    for record in &records {
        let bytes = record.encode();
        assert_eq!(&bytes[..2], &record.record_type().to_be_bytes());
        assert_eq!(MetadataRecord::decode(&bytes), Ok(record.clone()));
    }
    let batch = encode_batch(&records);
    assert_eq!(decode_batch(&batch), Ok(records));
}

#[test]
fn bad_headers_and_lengths_are_typed_errors() {
    let mut bytes = MetadataRecord::RemoveTopic { topic_id: [1; 16] }.encode();
    bytes[1] = 99;
    assert_eq!(
        MetadataRecord::decode(&bytes),
        Err(RecordDecodeError::UnknownType(99))
    );
    let mut bytes = MetadataRecord::RemoveTopic { topic_id: [1; 16] }.encode();
    bytes[3] = 1;
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(RecordDecodeError::UnsupportedVersion { version: 1, .. })
    ));
    let mut bytes = MetadataRecord::RemoveTopic { topic_id: [1; 16] }.encode();
    bytes.push(0);
    assert_eq!(
        MetadataRecord::decode(&bytes),
        Err(RecordDecodeError::TrailingBytes(1))
    );
    assert!(matches!(
        MetadataRecord::decode(&bytes[..10]),
        Err(RecordDecodeError::Truncated { .. })
    ));
    // A huge count is refused before any allocation.
    assert!(matches!(
        decode_batch(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        Err(RecordDecodeError::CountTooLarge { .. })
    ));
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = Rng::from_env();
    let encoded: Vec<Vec<u8>> = samples().iter().map(MetadataRecord::encode).collect();
    let mut decoded_ok = 0;
    for _ in 0..20_000 {
        let bytes = if rng.chance(30) {
            let length = rng.below(64) as usize;
            rng.bytes(length)
        } else {
            let mut bytes = encoded[rng.below(encoded.len() as u64) as usize].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
            if rng.chance(20) {
                bytes.truncate(rng.below(bytes.len() as u64) as usize);
            }
            bytes
        };
        // Whatever decodes must re-encode to the same bytes (one encoding per record).
        if let Ok(record) = MetadataRecord::decode(&bytes) {
            assert_eq!(record.encode(), bytes);
            decoded_ok += 1;
        }
        let _ = decode_batch(&bytes);
    }
    assert!(decoded_ok > 0, "mutations should sometimes still decode");
}

#[test]
fn partition_records_carry_a_reassignment_from_version_1_only() {
    let plain = MetadataRecord::Partition(PartitionRecord {
        topic_id: [1; 16],
        partition: 0,
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        elr: vec![],
        last_known_elr: vec![],
        leader: Some(1),
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    });
    assert_eq!(
        &plain.encode()[2..4],
        &0u16.to_be_bytes(),
        "version 0 without one"
    );
    let MetadataRecord::Partition(record) = plain.clone() else {
        unreachable!()
    };
    let moving = MetadataRecord::Partition(PartitionRecord {
        replicas: vec![4, 2, 1, 3],
        adding_replicas: vec![4],
        removing_replicas: vec![1, 3],
        ..record
    });
    let change = MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id: [1; 16],
        partition: 0,
        leader: LeaderChange::Unchanged,
        replicas: Some(vec![4, 2, 1, 3]),
        isr: None,
        elr: None,
        last_known_elr: None,
        leader_epoch: 0,
        partition_epoch: 1,
        adding_replicas: Some(vec![4]),
        removing_replicas: Some(vec![1, 3]),
    });
    for record in [&moving, &change] {
        let bytes = record.encode();
        assert_eq!(&bytes[2..4], &1u16.to_be_bytes(), "version 1 with one");
        assert_eq!(MetadataRecord::decode(&bytes), Ok(record.clone()));
    }
    // Version 2 is newer than this build.
    let mut bytes = change.encode();
    bytes[3] = 2;
    assert!(matches!(
        MetadataRecord::decode(&bytes),
        Err(RecordDecodeError::UnsupportedVersion { version: 2, .. })
    ));
}
