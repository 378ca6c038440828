//! Image tests: invariants refused with typed errors, and the snapshot property — replaying a
//! random valid record sequence gives the same image as restoring the snapshot of any prefix
//! (through the codec) and applying the rest. Failures print `SHARDLOG_SEED`.

use super::*;
use crate::cluster::records::{decode_batch, encode_batch};
use crate::cluster::test_rng::Rng;

const TOPIC: TopicId = [1; 16];

fn register(node_id: NodeId, broker_epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        node_id,
        incarnation_id: [node_id as u8; 16],
        broker_epoch,
        listeners: vec![],
        rack: None,
        fenced: false,
    })
}

fn partition(replicas: &[NodeId], isr: &[NodeId], leader: Option<NodeId>) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id: TOPIC,
        partition: 0,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        elr: vec![],
        last_known_elr: vec![],
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

fn image_with_topic() -> MetadataImage {
    let mut image = MetadataImage::new();
    image
        .apply_all(&[
            register(1, 1),
            register(2, 2),
            MetadataRecord::Topic(TopicRecord {
                topic_id: TOPIC,
                name: "orders".into(),
            }),
            partition(&[1, 2], &[1, 2], Some(1)),
        ])
        .unwrap();
    image
}

fn change(leader: LeaderChange, isr: Option<Vec<NodeId>>, epochs: (i32, i32)) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id: TOPIC,
        partition: 0,
        leader,
        replicas: None,
        isr,
        elr: None,
        last_known_elr: None,
        leader_epoch: epochs.0,
        partition_epoch: epochs.1,
        adding_replicas: None,
        removing_replicas: None,
    })
}

#[test]
fn partition_invariants_are_enforced() {
    let mut image = image_with_topic();
    let before = image.clone();
    let refused = [
        (
            change(LeaderChange::To(3), None, (1, 1)),
            "leader outside the ISR",
        ),
        (
            change(LeaderChange::Unchanged, Some(vec![1, 5]), (0, 1)),
            "ISR ⊄ replicas",
        ),
        (
            change(LeaderChange::To(2), None, (0, 1)),
            "leader change without epoch bump",
        ),
        (
            change(LeaderChange::Unchanged, Some(vec![1]), (0, 0)),
            "partition epoch not bumped",
        ),
        (
            change(LeaderChange::Unchanged, None, (-1, 1)),
            "leader epoch back",
        ),
        (
            change(LeaderChange::Unchanged, Some(vec![2]), (0, 1)),
            "leader dropped from ISR",
        ),
    ];
    for (record, why) in refused {
        assert!(
            matches!(
                image.apply(&record),
                Err(ImageError::InvalidPartition { .. })
            ),
            "{why}"
        );
        assert_eq!(
            image, before,
            "a refused record leaves the image unchanged ({why})"
        );
    }
    image
        .apply(&change(LeaderChange::To(2), Some(vec![2]), (1, 1)))
        .unwrap();
    let state = image.partition(&TOPIC, 0).unwrap();
    assert_eq!(
        (state.leader, state.leader_epoch, state.partition_epoch),
        (Some(2), 1, 1)
    );
    assert_eq!(state.isr, vec![2]);
}

#[test]
fn unknown_topics_brokers_and_partitions_are_errors() {
    let mut image = image_with_topic();
    let unknown = MetadataRecord::RemoveTopic { topic_id: [9; 16] };
    assert!(matches!(
        image.apply(&unknown),
        Err(ImageError::UnknownTopicId(_))
    ));
    let mut record = partition(&[1], &[1], Some(1));
    if let MetadataRecord::Partition(p) = &mut record {
        p.topic_id = [9; 16];
    }
    assert!(matches!(
        image.apply(&record),
        Err(ImageError::UnknownTopicId(_))
    ));
    // Partitions are numbered 0..n: a second partition 0 is not the next one.
    assert!(matches!(
        image.apply(&partition(&[1], &[1], Some(1))),
        Err(ImageError::PartitionNotNext { expected: 1, .. })
    ));
    let config = MetadataRecord::ConfigChange(ConfigChangeRecord {
        resource: ConfigResource::Topic("nope".into()),
        name: "retention.ms".into(),
        value: Some("1".into()),
    });
    assert!(matches!(
        image.apply(&config),
        Err(ImageError::UnknownTopicName(_))
    ));
    let fence = MetadataRecord::FenceBroker(BrokerFencingRecord {
        node_id: 1,
        broker_epoch: 7,
    });
    assert!(matches!(
        image.apply(&fence),
        Err(ImageError::StaleBrokerEpoch { .. })
    ));
    assert!(matches!(
        image.apply(&register(3, 2)),
        Err(ImageError::BrokerEpochNotIncreasing { .. })
    ));
    let duplicate = MetadataRecord::Topic(TopicRecord {
        topic_id: [5; 16],
        name: "orders".into(),
    });
    assert!(matches!(
        image.apply(&duplicate),
        Err(ImageError::DuplicateTopicName(_))
    ));
    assert!(image.apply(&MetadataRecord::ClusterId([1; 16])).is_ok());
    assert_eq!(
        image.apply(&MetadataRecord::ClusterId([2; 16])),
        Err(ImageError::ClusterIdMismatch)
    );
}

#[test]
fn producer_id_blocks_only_move_forward() {
    let mut image = MetadataImage::new();
    let block = |first, size| {
        MetadataRecord::ProducerIdsBlock(ProducerIdsBlockRecord {
            node_id: 1,
            broker_epoch: 1,
            first_producer_id: first,
            size,
        })
    };
    image.apply(&block(0, 1000)).unwrap();
    assert_eq!(image.next_producer_id(), 1000);
    assert!(
        image.apply(&block(999, 1000)).is_err(),
        "overlaps the last block"
    );
    assert!(image.apply(&block(1000, 0)).is_err(), "empty block");
    assert!(image.apply(&block(i64::MAX - 1, 5)).is_err(), "overflows");
    image.apply(&block(1000, 1000)).unwrap();
    let restored = MetadataImage::from_snapshot(&image.snapshot()).unwrap();
    assert_eq!(restored.next_producer_id(), 2000);
    assert!(restored.clone().apply(&block(1500, 10)).is_err());
}

/// Generates records that are valid for `image` and applies them to it.
struct Generator {
    rng: Rng,
    image: MetadataImage,
    records: Vec<MetadataRecord>,
}

/// Builds the record first, then applies it (the record's fields borrow the generator).
macro_rules! push {
    ($generator:expr, $record:expr) => {{
        let record = $record;
        $generator.push(record)
    }};
}

impl Generator {
    fn push(&mut self, record: MetadataRecord) {
        self.image
            .apply(&record)
            .unwrap_or_else(|e| panic!("generated record {record:?} does not apply: {e}"));
        self.records.push(record);
    }

    fn nodes_subset(&mut self, from: &[NodeId]) -> Vec<NodeId> {
        from.iter()
            .copied()
            .filter(|_| self.rng.chance(60))
            .collect()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.below(items.len() as u64) as usize].clone())
    }

    fn step(&mut self) {
        let brokers: Vec<NodeId> = self.image.brokers().map(|b| b.node_id).collect();
        let topics: Vec<(TopicId, String, usize)> = self
            .image
            .topics()
            .map(|t| (t.id, t.name.clone(), t.partitions.len()))
            .collect();
        match self.rng.below(12) {
            0 | 1 => {
                let node_id = self.rng.below(6) as NodeId;
                let rack = self
                    .rng
                    .chance(50)
                    .then(|| format!("r{}", self.rng.below(3)));
                let fenced = self.rng.chance(50);
                push!(
                    self,
                    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                        node_id,
                        incarnation_id: self.rng.uuid(),
                        broker_epoch: self.image.broker_epoch_highest()
                            + 1
                            + self.rng.below(3) as i64,
                        listeners: vec![Listener {
                            name: "PLAINTEXT".into(),
                            host: "127.0.0.1".into(),
                            port: 9000 + node_id as u16,
                            security_protocol: 0,
                        }],
                        rack,
                        fenced,
                    })
                );
            }
            2 => {
                let Some(node_id) = self.pick(&brokers) else {
                    return;
                };
                let broker = self.image.broker(node_id).unwrap();
                let fencing = BrokerFencingRecord {
                    node_id,
                    broker_epoch: broker.broker_epoch,
                };
                push!(
                    self,
                    if broker.fenced {
                        MetadataRecord::UnfenceBroker(fencing)
                    } else {
                        MetadataRecord::FenceBroker(fencing)
                    }
                );
            }
            3 => self.new_topic(),
            4 | 5 => {
                let Some((id, _, count)) = self.pick(&topics) else {
                    return;
                };
                if count == 0 || self.rng.chance(30) {
                    push!(self, self.random_partition(id, count as i32));
                } else {
                    let index = self.rng.below(count as u64) as i32;
                    let record = self.random_change(id, index);
                    push!(self, record);
                }
            }
            6 => {
                let Some((topic_id, _, _)) = self.pick(&topics) else {
                    return;
                };
                push!(self, MetadataRecord::RemoveTopic { topic_id });
            }
            7 => {
                let resource = match (self.pick(&topics), self.rng.below(3)) {
                    (Some((_, name, _)), 0) => ConfigResource::Topic(name),
                    (_, 1) => ConfigResource::Broker(self.rng.below(6) as NodeId),
                    _ => ConfigResource::BrokerDefault,
                };
                let value = self
                    .rng
                    .chance(70)
                    .then(|| self.rng.below(1000).to_string());
                let name = format!("config.{}", self.rng.below(3));
                push!(
                    self,
                    MetadataRecord::ConfigChange(ConfigChangeRecord {
                        resource,
                        name,
                        value,
                    })
                );
            }
            8 => {
                let first = self.image.next_producer_id() + self.rng.below(5) as i64;
                push!(
                    self,
                    MetadataRecord::ProducerIdsBlock(ProducerIdsBlockRecord {
                        node_id: 1,
                        broker_epoch: 1,
                        first_producer_id: first,
                        size: 1 + self.rng.below(1000) as i64,
                    })
                );
            }
            9 => {
                let ids: Vec<_> = self.image.acls().map(|a| a.id).collect();
                match self.pick(&ids) {
                    Some(id) if self.rng.chance(40) => {
                        push!(self, MetadataRecord::RemoveAccessControlEntry { id })
                    }
                    _ => push!(
                        self,
                        MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
                            id: self.rng.uuid(),
                            resource_type: 2,
                            resource_name: "orders".into(),
                            pattern_type: 3,
                            principal: format!("User:u{}", self.rng.below(5)),
                            host: "*".into(),
                            operation: self.rng.below(10) as i8,
                            permission_type: 3,
                        })
                    ),
                }
            }
            10 => {
                let users: Vec<_> = self
                    .image
                    .scram_credentials()
                    .map(|c| (c.name.clone(), c.mechanism))
                    .collect();
                match self.pick(&users) {
                    Some((name, mechanism)) if self.rng.chance(40) => {
                        push!(
                            self,
                            MetadataRecord::RemoveUserScramCredential { name, mechanism }
                        )
                    }
                    _ => push!(
                        self,
                        MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                            name: format!("u{}", self.rng.below(5)),
                            mechanism: 1 + self.rng.below(2) as i8,
                            salt: self.rng.bytes(16),
                            stored_key: self.rng.bytes(32),
                            server_key: self.rng.bytes(32),
                            iterations: 4096,
                        })
                    ),
                }
            }
            _ => push!(
                self,
                MetadataRecord::FeatureLevel {
                    name: format!("feature.{}", self.rng.below(2)),
                    level: self.rng.below(5) as i16,
                }
            ),
        }
    }

    fn new_topic(&mut self) {
        let topic_id = self.rng.uuid();
        let name = format!("t{}", self.rng.below(1_000_000));
        if self.image.topic_by_name(&name).is_some() {
            return;
        }
        push!(self, MetadataRecord::Topic(TopicRecord { topic_id, name }));
        for index in 0..self.rng.below(4) as i32 {
            let record = self.random_partition(topic_id, index);
            push!(self, record);
        }
    }

    fn random_partition(&mut self, topic_id: TopicId, partition: i32) -> MetadataRecord {
        let replicas = {
            let mut replicas = self.nodes_subset(&[0, 1, 2, 3, 4, 5]);
            if replicas.is_empty() {
                replicas.push(0);
            }
            replicas
        };
        let isr = self.nodes_subset(&replicas);
        let rest: Vec<_> = replicas
            .iter()
            .copied()
            .filter(|n| !isr.contains(n))
            .collect();
        let elr = self.nodes_subset(&rest);
        let leader = self.pick(&isr);
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition,
            replicas,
            isr,
            elr,
            last_known_elr: vec![],
            leader,
            leader_epoch: self.rng.below(3) as i32,
            partition_epoch: self.rng.below(3) as i32,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        })
    }

    fn random_change(&mut self, topic_id: TopicId, partition: i32) -> MetadataRecord {
        let state = self.image.partition(&topic_id, partition).unwrap().clone();
        let isr = self.nodes_subset(&state.replicas);
        let leader = if self.rng.chance(50) {
            self.pick(&isr)
        } else {
            state.leader
        };
        let leader = leader.filter(|node| isr.contains(node));
        let changed = leader != state.leader;
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id,
            partition,
            leader: match (changed, leader) {
                (false, _) => LeaderChange::Unchanged,
                (true, None) => LeaderChange::None,
                (true, Some(node)) => LeaderChange::To(node),
            },
            replicas: None,
            isr: Some(isr.clone()),
            elr: Some(vec![]),
            last_known_elr: self
                .rng
                .chance(30)
                .then(|| self.nodes_subset(&state.replicas)),
            leader_epoch: state.leader_epoch + i32::from(changed) + self.rng.below(2) as i32,
            partition_epoch: state.partition_epoch + 1,
            adding_replicas: None,
            removing_replicas: None,
        })
    }
}

#[test]
fn snapshot_of_any_prefix_then_replay_equals_full_replay() {
    for _ in 0..20 {
        let mut generator = Generator {
            rng: Rng::from_env(),
            image: MetadataImage::new(),
            records: Vec::new(),
        };
        generator.push(MetadataRecord::ClusterId([42; 16]));
        while generator.records.len() < 150 {
            generator.step();
        }
        let records = generator.records;
        let full = generator.image;
        let mut prefix_image = MetadataImage::new();
        for split in 0..=records.len() {
            // The snapshot travels through the codec, as it would on disk or the wire.
            let snapshot = decode_batch(&encode_batch(&prefix_image.snapshot())).unwrap();
            let mut restored = MetadataImage::from_snapshot(&snapshot).unwrap();
            assert_eq!(
                restored, prefix_image,
                "snapshot restores the image at {split}"
            );
            restored.apply_all(&records[split..]).unwrap();
            assert_eq!(restored, full, "restore at {split} and replay diverged");
            if let Some(record) = records.get(split) {
                prefix_image.apply(record).unwrap();
            }
        }
    }
}
