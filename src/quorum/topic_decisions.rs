//! The active controller's answers to the controller protocol's topic requests (CreateTopics,
//! DeleteTopics, CreatePartitions, AlterTopicConfigs; AlterGroupConfigs answers the same way,
//! its one result named after the group): every topic decided on one applied
//! image with the pure functions of `cluster::topic_changes` and `cluster::controller`, the
//! records of the topics that succeeded merged into one proposal, and one result per topic.
//! Also AllocateProducerIds: the block record to propose and the block to answer once it is
//! applied.
//!
//! Owns: the translation from the wire's topic and producer-id requests to the pure decisions
//! and back to per-topic results or a block. May import: `crate::cluster`, `crate::metadata::TopicId`,
//! `crate::model`, `super::frame`. Pure: no I/O, no clock, no randomness (the caller supplies
//! the ids of new topics). Runs on the controller thread.
//! Invariants: `records` applies cleanly, in order, to the image the decision was made on
//! (the pure decisions guarantee it per request, and a topic named twice is refused);
//! `results` has one entry per requested topic, in request order; a success's id, partition
//! count and replication factor are read from the records proposed for it; a validate-only
//! decision has no records; encoded, `records` never exceed `bytes_max` (else every topic is
//! refused POLICY_VIOLATION, since one raft entry must fit in one controller-protocol frame);
//! an AlterTopicConfigs proposes only the changes that alter the image (setting a config to
//! its value, or deleting one not set, proposes nothing and still succeeds); a producer-id
//! block is exactly the one its single record hands out.

use super::frame::{PartitionsCreation, ProducerIdBlock, TopicCreation, TopicResult};
use crate::cluster::controller::{
    ConfigAlteration, ControllerError, ControllerSettings, allocate_producer_ids, alter_configs,
};
use crate::cluster::image::MetadataImage;
use crate::cluster::records::{
    ConfigChangeRecord, ConfigResource, MetadataRecord, NodeId, encode_batch,
};
use crate::cluster::topic_changes::{
    CreatePartitionsRequest, CreateTopicRequest, create_partitions, create_topics, delete_topics,
};
use crate::metadata::TopicId;
use crate::model::ErrorCode;
use std::collections::BTreeMap;

/// A decided topic request: what to propose (empty: nothing) and how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDecision {
    /// The records of every topic that succeeded, in request order: one proposal.
    pub records: Vec<MetadataRecord>,
    /// One per requested topic, in request order.
    pub results: Vec<TopicResult>,
}

/// CreateTopics: `new_topic_id` is called once per requested topic, in order.
pub fn decide_create_topics(
    image: &MetadataImage,
    settings: &ControllerSettings,
    topics: &[TopicCreation],
    validate_only: bool,
    bytes_max: usize,
    mut new_topic_id: impl FnMut() -> TopicId,
) -> TopicDecision {
    let requests: Vec<CreateTopicRequest> = topics
        .iter()
        .map(|topic| CreateTopicRequest {
            name: topic.name.clone(),
            topic_id: new_topic_id(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic.assignments.clone(),
            configs: topic.configs.clone(),
        })
        .collect();
    let outcomes = create_topics(image, settings, &requests);
    let names = topics.iter().map(|topic| topic.name.as_str());
    merge(names.zip(outcomes), validate_only, bytes_max)
}

/// DeleteTopics by name.
pub fn decide_delete_topics(
    image: &MetadataImage,
    names: &[String],
    bytes_max: usize,
) -> TopicDecision {
    let outcomes = delete_topics(image, names);
    merge(
        names.iter().map(String::as_str).zip(outcomes),
        false,
        bytes_max,
    )
}

/// CreatePartitions. A topic named twice is refused INVALID_REQUEST (every time it is
/// named, as Kafka does): two decisions for one topic would add the same partitions twice.
pub fn decide_create_partitions(
    image: &MetadataImage,
    settings: &ControllerSettings,
    topics: &[PartitionsCreation],
    validate_only: bool,
    bytes_max: usize,
) -> TopicDecision {
    let mut named: BTreeMap<&str, usize> = BTreeMap::new();
    for topic in topics {
        *named.entry(topic.name.as_str()).or_default() += 1;
    }
    let outcomes = topics.iter().map(|topic| {
        if named.get(topic.name.as_str()).copied().unwrap_or(0) > 1 {
            return Err(ControllerError::InvalidRequest(format!(
                "topic '{}' appears more than once in the request",
                topic.name
            )));
        }
        let request = CreatePartitionsRequest {
            name: topic.name.clone(),
            count: topic.count,
            assignments: topic.assignments.clone(),
        };
        create_partitions(image, settings, &request)
    });
    let names = topics.iter().map(|topic| topic.name.as_str());
    merge(names.zip(outcomes), validate_only, bytes_max)
}

/// AlterTopicConfigs of one topic: `(name, Some(value))` sets, `(name, None)` deletes. The
/// one result carries the topic's id, partition count and replication factor from `image`
/// on success (the change alters none of them); a validate-only decision has no records.
pub fn decide_alter_topic_configs(
    image: &MetadataImage,
    topic: &str,
    alterations: &[(String, Option<String>)],
    validate_only: bool,
    bytes_max: usize,
) -> TopicDecision {
    let resource = ConfigResource::Topic(topic.to_string());
    let mut decision =
        decide_alter_configs(image, &resource, alterations, validate_only, bytes_max);
    if let (Some(result), Some(described)) =
        (decision.results.first_mut(), image.topic_by_name(topic))
        && result.error_code == ErrorCode::None.code()
    {
        result.topic_id = described.id;
        result.num_partitions = i32::try_from(described.partitions.len()).unwrap_or(i32::MAX);
        result.replication_factor = described.partitions.first().map_or(-1, |partition| {
            i16::try_from(partition.replicas.len()).unwrap_or(i16::MAX)
        });
    }
    decision
}

/// AlterGroupConfigs of one group (GROUP resource), as `decide_alter_topic_configs`: the one
/// result is named after the group.
pub fn decide_alter_group_configs(
    image: &MetadataImage,
    group: &str,
    alterations: &[(String, Option<String>)],
    validate_only: bool,
    bytes_max: usize,
) -> TopicDecision {
    let resource = ConfigResource::Group(group.to_string());
    decide_alter_configs(image, &resource, alterations, validate_only, bytes_max)
}

/// The config changes of one resource that alter the image, as one result named after it.
fn decide_alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    alterations: &[(String, Option<String>)],
    validate_only: bool,
    bytes_max: usize,
) -> TopicDecision {
    let alterations: Vec<ConfigAlteration> = alterations
        .iter()
        .map(|(name, value)| ConfigAlteration {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    let outcome = alter_configs(image, resource, &alterations).map(|records| {
        let mut records = records;
        records.retain(|record| changes_image(image, record));
        records
    });
    let name = match resource {
        ConfigResource::Topic(name) | ConfigResource::Group(name) => name.as_str(),
        ConfigResource::Broker(_) | ConfigResource::BrokerDefault => "",
    };
    merge(std::iter::once((name, outcome)), validate_only, bytes_max)
}

/// Whether a config change alters the image: a set to another value, or a delete of a
/// config that is set.
fn changes_image(image: &MetadataImage, record: &MetadataRecord) -> bool {
    let MetadataRecord::ConfigChange(ConfigChangeRecord {
        resource,
        name,
        value,
    }) = record
    else {
        return true;
    };
    let current = match resource {
        ConfigResource::Topic(topic) => image
            .topic_by_name(topic)
            .and_then(|described| described.configs.get(name)),
        other => image
            .broker_configs(other)
            .and_then(|configs| configs.get(name)),
    };
    current != value.as_ref()
}

/// AllocateProducerIds: the ProducerIdsBlock record to propose and the block it hands out,
/// starting at the next id of the log or at `floor`, whichever is higher (a broker's ids
/// from before it joined the cluster are never handed out again; blocks only move forward,
/// so a gap is allowed). Refused BROKER_ID_NOT_REGISTERED, STALE_BROKER_EPOCH, or (exhausted
/// ids) UNKNOWN_SERVER_ERROR, as `ControllerError::error_code` maps them.
pub fn decide_allocate_producer_ids(
    image: &MetadataImage,
    settings: &ControllerSettings,
    node_id: NodeId,
    broker_epoch: i64,
    floor: i64,
) -> Result<(Vec<MetadataRecord>, ProducerIdBlock), ControllerError> {
    let mut records = allocate_producer_ids(image, settings, node_id, broker_epoch)?;
    for record in &mut records {
        if let MetadataRecord::ProducerIdsBlock(block) = record
            && floor > block.first_producer_id
        {
            if floor.checked_add(block.size).is_none() {
                return Err(ControllerError::ProducerIdsExhausted);
            }
            block.first_producer_id = floor;
        }
    }
    let block = records.iter().find_map(|record| match record {
        MetadataRecord::ProducerIdsBlock(block) => Some(ProducerIdBlock {
            first_producer_id: block.first_producer_id,
            size: block.size,
        }),
        _ => None,
    });
    // The pure decision always yields one block record; were it not to, the request is
    // refused like an exhaustion rather than panicking the controller thread.
    block
        .map(|block| (records, block))
        .ok_or(ControllerError::ProducerIdsExhausted)
}

fn merge<'a>(
    outcomes: impl Iterator<Item = (&'a str, Result<Vec<MetadataRecord>, ControllerError>)>,
    validate_only: bool,
    bytes_max: usize,
) -> TopicDecision {
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(topic_records) => {
                results.push(success(name, &topic_records, validate_only));
                records.extend(topic_records);
            }
            Err(error) => results.push(failure(name, error.error_code(), error.to_string())),
        }
    }
    let bytes = if records.is_empty() {
        0
    } else {
        encode_batch(&records).len()
    };
    if bytes > bytes_max {
        let message = format!(
            "the request's {} metadata records take {bytes} bytes, more than one metadata log \
             entry may hold ({bytes_max} bytes, half of cluster.controller_frame_bytes_max); \
             create fewer topics or partitions per request",
            records.len()
        );
        for result in results.iter_mut().filter(|result| result.error_code == 0) {
            *result = failure(
                &result.name,
                ErrorCode::PolicyViolation.code(),
                message.clone(),
            );
        }
        records.clear();
    }
    if validate_only {
        records.clear();
    }
    TopicDecision { records, results }
}

/// A success, read from the records proposed for it: the id from its Topic, RemoveTopic or
/// Partition records, the partition count after it from the highest new partition, the
/// replication factor from the new partitions' replicas (-1 when it adds no partition). A
/// validate-only creation reports no id: no topic got one.
fn success(name: &str, records: &[MetadataRecord], validate_only: bool) -> TopicResult {
    let mut result = failure(name, ErrorCode::None.code(), String::new());
    result.message = None;
    for record in records {
        match record {
            MetadataRecord::Topic(topic) => result.topic_id = topic.topic_id,
            MetadataRecord::RemoveTopic { topic_id } => result.topic_id = *topic_id,
            MetadataRecord::Partition(partition) => {
                result.topic_id = partition.topic_id;
                result.num_partitions = result.num_partitions.max(partition.partition + 1);
                if result.replication_factor < 0 {
                    result.replication_factor =
                        i16::try_from(partition.replicas.len()).unwrap_or(i16::MAX);
                }
            }
            _ => {}
        }
    }
    if validate_only {
        result.topic_id = [0; 16];
    }
    result
}

fn failure(name: &str, error_code: i16, message: String) -> TopicResult {
    TopicResult {
        name: name.to_string(),
        error_code,
        message: Some(message),
        topic_id: [0; 16],
        num_partitions: -1,
        replication_factor: -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{
        BrokerFencingRecord, Listener, NodeId, RegisterBrokerRecord, Uuid,
    };

    const NO_LIMIT: usize = usize::MAX;

    /// An image with brokers 1..=`brokers` registered and unfenced.
    fn image(brokers: NodeId) -> MetadataImage {
        let mut image = MetadataImage::new();
        image.apply(&MetadataRecord::ClusterId([1; 16])).unwrap();
        for node_id in 1..=brokers {
            let epoch = i64::from(node_id) * 10;
            image
                .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    node_id,
                    incarnation_id: [node_id as u8; 16],
                    broker_epoch: epoch,
                    listeners: vec![Listener {
                        name: "PLAINTEXT".into(),
                        host: "127.0.0.1".into(),
                        port: 9000 + node_id as u16,
                        security_protocol: 0,
                    }],
                    rack: None,
                    fenced: true,
                }))
                .unwrap();
            image
                .apply(&MetadataRecord::UnfenceBroker(BrokerFencingRecord {
                    node_id,
                    broker_epoch: epoch,
                }))
                .unwrap();
        }
        image
    }

    fn creation(name: &str, partitions: i32, factor: i16) -> TopicCreation {
        TopicCreation {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: factor,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        }
    }

    fn ids() -> impl FnMut() -> Uuid {
        let mut next = 0u8;
        move || {
            next += 1;
            [next; 16]
        }
    }

    fn create(image: &MetadataImage, topics: &[TopicCreation], validate: bool) -> TopicDecision {
        let settings = ControllerSettings::default();
        decide_create_topics(image, &settings, topics, validate, NO_LIMIT, ids())
    }

    #[test]
    fn create_topics_merges_the_successes_into_one_proposal_that_applies() {
        let mut image = image(3);
        let mut bad_config = creation("bad", 1, 1);
        bad_config
            .configs
            .insert("retention.ms".into(), "not a number".into());
        let topics = [
            creation("a", 3, 2),
            creation("a", 1, 1),
            creation("b", -1, -1),
            creation("wide", 1, 4),
            bad_config,
        ];
        let decision = create(&image, &topics, false);
        let codes: Vec<i16> = decision.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [42, 42, 0, 38, 40], "{:?}", decision.results);
        let b = &decision.results[2];
        assert_eq!(
            (b.topic_id, b.num_partitions, b.replication_factor),
            ([3; 16], 1, 1)
        );
        assert_eq!(b.message, None);
        let wide = &decision.results[3];
        assert_eq!((wide.topic_id, wide.num_partitions), ([0; 16], -1));
        assert!(wide.message.as_deref().unwrap().contains("replicate"));
        image.apply_all(&decision.records).unwrap();
        assert_eq!(image.topic_by_name("b").unwrap().partitions.len(), 1);

        let decision = create(&image, &[creation("b", 1, 1), creation("c", 4, 3)], false);
        assert_eq!(decision.results[0].error_code, 36);
        let c = &decision.results[1];
        assert_eq!(
            (
                c.error_code,
                c.topic_id,
                c.num_partitions,
                c.replication_factor
            ),
            (0, [2; 16], 4, 3)
        );
        image.apply_all(&decision.records).unwrap();
        assert_eq!(image.topic_by_name("c").unwrap().id, [2; 16]);
    }

    #[test]
    fn validate_only_decides_but_proposes_nothing() {
        let image = image(1);
        let decision = create(&image, &[creation("v", 2, 1), creation("w", 1, 2)], true);
        assert!(decision.records.is_empty());
        let v = &decision.results[0];
        assert_eq!(
            (
                v.error_code,
                v.topic_id,
                v.num_partitions,
                v.replication_factor
            ),
            (0, [0; 16], 2, 1)
        );
        assert_eq!(decision.results[1].error_code, 38);
        let partitions = decide_create_partitions(
            &image,
            &ControllerSettings::default(),
            &[PartitionsCreation {
                name: "v".into(),
                count: 2,
                assignments: Vec::new(),
            }],
            true,
            NO_LIMIT,
        );
        assert_eq!(partitions.results[0].error_code, 3, "unknown topic");
    }

    #[test]
    fn delete_and_create_partitions_report_per_topic() {
        let mut image = image(2);
        let made = create(&image, &[creation("x", 2, 2), creation("y", 1, 1)], false);
        image.apply_all(&made.records).unwrap();
        let settings = ControllerSettings::default();
        let grow = |name: &str, count: i32| PartitionsCreation {
            name: name.into(),
            count,
            assignments: Vec::new(),
        };
        let decision = decide_create_partitions(
            &image,
            &settings,
            &[
                grow("x", 5),
                grow("y", 1),
                grow("z", 2),
                grow("y", 3),
                grow("y", 4),
            ],
            false,
            NO_LIMIT,
        );
        let codes: Vec<i16> = decision.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [0, 42, 3, 42, 42]);
        let x = &decision.results[0];
        assert_eq!(
            (x.topic_id, x.num_partitions, x.replication_factor),
            ([1; 16], 5, 2)
        );
        image.apply_all(&decision.records).unwrap();
        assert_eq!(image.topic_by_name("x").unwrap().partitions.len(), 5);

        let names = ["y".to_string(), "nope".to_string()];
        let decision = decide_delete_topics(&image, &names, NO_LIMIT);
        assert_eq!(decision.results[0].error_code, 0);
        assert_eq!(decision.results[0].topic_id, [2; 16]);
        assert_eq!(decision.results[1].error_code, 3);
        image.apply_all(&decision.records).unwrap();
        assert!(image.topic_by_name("y").is_none());
    }

    /// Config alterations as a test writes them: `(name, Some(value))` sets, `None` deletes.
    type Alterations<'a> = &'a [(&'a str, Option<&'a str>)];

    fn alter(
        image: &MetadataImage,
        topic: &str,
        alterations: Alterations<'_>,
        validate_only: bool,
    ) -> TopicDecision {
        let alterations: Vec<(String, Option<String>)> = alterations
            .iter()
            .map(|(name, value)| (name.to_string(), value.map(str::to_string)))
            .collect();
        decide_alter_topic_configs(image, topic, &alterations, validate_only, NO_LIMIT)
    }

    #[test]
    fn alter_topic_configs_sets_and_deletes_with_the_topic_described_from_the_image() {
        let mut image = image(2);
        let made = create(&image, &[creation("t", 3, 2)], false);
        image.apply_all(&made.records).unwrap();
        let set = [
            ("retention.ms", Some("1000")),
            ("cleanup.policy", Some("compact")),
        ];
        let decision = alter(&image, "t", &set, false);
        assert_eq!(decision.records.len(), 2);
        let result = &decision.results[0];
        assert_eq!(
            (
                result.error_code,
                result.message.as_deref(),
                result.topic_id,
                result.num_partitions,
                result.replication_factor
            ),
            (0, None, [1; 16], 3, 2)
        );
        image.apply_all(&decision.records).unwrap();
        let configs = &image.topic_by_name("t").unwrap().configs;
        assert_eq!(
            configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );

        // Setting a config to its value, or deleting one not set, changes nothing.
        let unchanged = [("retention.ms", Some("1000")), ("segment.ms", None)];
        let decision = alter(&image, "t", &unchanged, false);
        assert!(decision.records.is_empty());
        assert_eq!(decision.results[0].error_code, 0);
        assert_eq!(decision.results[0].topic_id, [1; 16]);

        let decision = alter(&image, "t", &[("retention.ms", None)], true);
        assert!(decision.records.is_empty(), "validate-only");
        assert_eq!(decision.results[0].error_code, 0);
        let decision = alter(&image, "t", &[("retention.ms", None)], false);
        assert_eq!(decision.records.len(), 1);
        image.apply_all(&decision.records).unwrap();
        let configs = &image.topic_by_name("t").unwrap().configs;
        assert_eq!(configs.get("retention.ms"), None);
        assert_eq!(
            configs.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
    }

    #[test]
    fn alter_topic_configs_refusals_carry_the_controller_error() {
        let mut image = image(1);
        let made = create(&image, &[creation("t", 1, 1)], false);
        image.apply_all(&made.records).unwrap();
        let cases: [(&str, Alterations<'_>, i16); 4] = [
            ("absent", &[("retention.ms", Some("1"))], 3),
            ("t", &[("retention.ms", Some("not a number"))], 40),
            ("t", &[("no.such.config", Some("1"))], 40),
            (
                "t",
                &[("retention.ms", Some("1")), ("retention.ms", None)],
                42,
            ),
        ];
        for (topic, alterations, code) in cases {
            let decision = alter(&image, topic, alterations, false);
            assert!(decision.records.is_empty());
            let result = &decision.results[0];
            assert_eq!(result.name, topic);
            assert_eq!(result.error_code, code, "{alterations:?}");
            assert!(result.message.is_some());
            assert_eq!(
                (
                    result.topic_id,
                    result.num_partitions,
                    result.replication_factor
                ),
                ([0; 16], -1, -1)
            );
        }
    }

    #[test]
    fn producer_id_blocks_follow_each_other_and_need_the_current_epoch() {
        let mut image = image(2);
        let settings = ControllerSettings::default();
        let (records, first) = decide_allocate_producer_ids(&image, &settings, 1, 10, 0).unwrap();
        assert_eq!(
            first,
            ProducerIdBlock {
                first_producer_id: 0,
                size: 1000
            }
        );
        image.apply_all(&records).unwrap();
        let (records, second) = decide_allocate_producer_ids(&image, &settings, 2, 20, 0).unwrap();
        assert_eq!(
            second.first_producer_id,
            first.first_producer_id + first.size
        );
        image.apply_all(&records).unwrap();
        assert_eq!(image.next_producer_id(), 2000);
        let stale = decide_allocate_producer_ids(&image, &settings, 1, 9, 0).unwrap_err();
        assert_eq!(stale.error_code(), 77);
        let unknown = decide_allocate_producer_ids(&image, &settings, 5, 10, 0).unwrap_err();
        assert_eq!(unknown.error_code(), 102);
        // A broker whose data dir handed out ids up to 5000 before it joined: its block
        // starts there, the image accepts the gap, and later blocks follow it.
        let (records, floored) =
            decide_allocate_producer_ids(&image, &settings, 1, 10, 5000).unwrap();
        assert_eq!(floored.first_producer_id, 5000);
        image.apply_all(&records).unwrap();
        assert_eq!(image.next_producer_id(), 6000);
        let (_, next) = decide_allocate_producer_ids(&image, &settings, 2, 20, 0).unwrap();
        assert_eq!(next.first_producer_id, 6000);
        let exhausted = decide_allocate_producer_ids(&image, &settings, 2, 20, i64::MAX - 10);
        assert!(exhausted.is_err());
    }

    #[test]
    fn records_too_large_for_one_entry_refuse_every_topic() {
        let image = image(1);
        let settings = ControllerSettings::default();
        let topics = [creation("big", 1000, 1), creation("taken", 0, 1)];
        let decision = decide_create_topics(&image, &settings, &topics, false, 4096, ids());
        assert!(decision.records.is_empty());
        assert_eq!(decision.results[0].error_code, 44);
        assert!(
            decision.results[0]
                .message
                .as_deref()
                .unwrap()
                .contains("4096")
        );
        assert_eq!(decision.results[1].error_code, 37, "its own error is kept");
    }
}
