//! The Request frame's body: every controller request's encoding and decoding (split from
//! frame.rs; the field helpers and size bounds stay there).

use super::*;

pub(super) fn encode_request(
    request: &ControllerRequest,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    match request {
        ControllerRequest::Register {
            node_id,
            incarnation_id,
            endpoint,
            cluster_id,
            previous_broker_epoch,
        } => {
            out.push(REQUEST_REGISTER);
            out.extend_from_slice(&node_id.to_be_bytes());
            out.extend_from_slice(incarnation_id);
            encode_endpoint(endpoint, out)?;
            encode_optional_uuid(cluster_id.as_ref(), out);
            out.extend_from_slice(&previous_broker_epoch.unwrap_or(-1).to_be_bytes());
        }
        ControllerRequest::Heartbeat {
            node_id,
            broker_epoch,
            caught_up,
            want_fence,
        } => {
            out.push(REQUEST_HEARTBEAT);
            out.extend_from_slice(&node_id.to_be_bytes());
            out.extend_from_slice(&broker_epoch.to_be_bytes());
            out.push(u8::from(*caught_up));
            out.push(u8::from(*want_fence));
        }
        ControllerRequest::CreateTopics {
            topics,
            validate_only,
        } => {
            out.push(REQUEST_CREATE_TOPICS);
            out.push(u8::from(*validate_only));
            encode_list(topics, out, encode_topic_creation)?;
        }
        ControllerRequest::DeleteTopics { names } => {
            out.push(REQUEST_DELETE_TOPICS);
            encode_list(names, out, |name, out| encode_string(name, out))?;
        }
        ControllerRequest::CreatePartitions {
            topics,
            validate_only,
        } => {
            out.push(REQUEST_CREATE_PARTITIONS);
            out.push(u8::from(*validate_only));
            encode_list(topics, out, |topic, out| {
                encode_string(&topic.name, out)?;
                out.extend_from_slice(&topic.count.to_be_bytes());
                encode_list(&topic.assignments, out, |replicas, out| {
                    encode_nodes(replicas, out)
                })
            })?;
        }
        ControllerRequest::AllocateProducerIds {
            node_id,
            broker_epoch,
            floor,
        } => {
            out.push(REQUEST_ALLOCATE_PRODUCER_IDS);
            out.extend_from_slice(&node_id.to_be_bytes());
            out.extend_from_slice(&broker_epoch.to_be_bytes());
            out.extend_from_slice(&floor.to_be_bytes());
        }
        ControllerRequest::AlterTopicConfigs {
            topic,
            alterations,
            validate_only,
        } => {
            out.push(REQUEST_ALTER_TOPIC_CONFIGS);
            encode_config_alterations(topic, alterations, *validate_only, out)?;
        }
        ControllerRequest::AlterGroupConfigs {
            group,
            alterations,
            validate_only,
        } => {
            out.push(REQUEST_ALTER_GROUP_CONFIGS);
            encode_config_alterations(group, alterations, *validate_only, out)?;
        }
        ControllerRequest::AlterPartition {
            topic_id,
            partition,
            request,
        } => {
            out.push(REQUEST_ALTER_PARTITION);
            out.extend_from_slice(topic_id);
            out.extend_from_slice(&partition.to_be_bytes());
            out.extend_from_slice(&request.leader.to_be_bytes());
            out.extend_from_slice(&request.leader_broker_epoch.to_be_bytes());
            out.extend_from_slice(&request.leader_epoch.to_be_bytes());
            out.extend_from_slice(&request.partition_epoch.to_be_bytes());
            encode_nodes(&request.new_isr, out)?;
            encode_list(&request.new_isr_broker_epochs, out, |(node, epoch), out| {
                out.extend_from_slice(&node.to_be_bytes());
                out.extend_from_slice(&epoch.to_be_bytes());
                Ok(())
            })?;
        }
        ControllerRequest::ElectLeaders {
            election_type,
            partitions,
        } => {
            out.push(REQUEST_ELECT_LEADERS);
            out.extend_from_slice(&election_type.code().to_be_bytes());
            match partitions {
                None => out.push(0),
                Some(partitions) => {
                    out.push(1);
                    let topics: Vec<_> = partitions.iter().collect();
                    encode_list(&topics, out, |(topic, ids), out| {
                        encode_string(topic, out)?;
                        let ids: Vec<i32> = ids.iter().copied().collect();
                        encode_nodes(&ids, out)
                    })?;
                }
            }
        }
        ControllerRequest::FetchMetadata {
            node_id,
            after_index,
        } => {
            out.push(REQUEST_FETCH_METADATA);
            out.extend_from_slice(&node_id.to_be_bytes());
            out.extend_from_slice(&after_index.to_be_bytes());
        }
        ControllerRequest::AlterReassignments { reassignments } => {
            out.push(REQUEST_ALTER_REASSIGNMENTS);
            encode_list(reassignments, out, |reassignment, out| {
                encode_string(&reassignment.topic, out)?;
                out.extend_from_slice(&reassignment.partition.to_be_bytes());
                match &reassignment.target {
                    None => out.push(0),
                    Some(target) => {
                        out.push(1);
                        encode_nodes(target, out)?;
                    }
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// One resource's config alterations: the validate-only flag, the resource name, then
/// `(name, value or null)` pairs.
fn encode_config_alterations(
    resource: &str,
    alterations: &[(String, Option<String>)],
    validate_only: bool,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    out.push(u8::from(validate_only));
    encode_string(resource, out)?;
    encode_list(alterations, out, |(name, value), out| {
        encode_string(name, out)?;
        encode_optional_string(value.as_deref(), out)
    })
}

type ConfigAlterations = (bool, String, Vec<(String, Option<String>)>);

fn decode_config_alterations(
    reader: &mut Reader<'_>,
    resource: &'static str,
) -> Result<ConfigAlterations, FrameError> {
    let validate_only = reader.flag()?;
    let name = reader.required_string(resource)?;
    let alterations = reader.list(MIN_ALTERATION_BYTES, "alterations", |reader| {
        Ok((reader.required_string("config name")?, reader.string()?))
    })?;
    Ok((validate_only, name, alterations))
}

pub(super) fn decode_request(reader: &mut Reader<'_>) -> Result<ControllerRequest, FrameError> {
    match reader.u8()? {
        REQUEST_REGISTER => {
            let node_id = reader.i32()?;
            let incarnation_id = reader.array()?;
            let endpoint = decode_endpoint(reader)?;
            let cluster_id = decode_optional_uuid(reader)?;
            let previous = reader.i64()?;
            Ok(ControllerRequest::Register {
                node_id,
                incarnation_id,
                endpoint,
                cluster_id,
                previous_broker_epoch: (previous >= 0).then_some(previous),
            })
        }
        REQUEST_HEARTBEAT => Ok(ControllerRequest::Heartbeat {
            node_id: reader.i32()?,
            broker_epoch: reader.i64()?,
            caught_up: reader.flag()?,
            want_fence: reader.flag()?,
        }),
        REQUEST_CREATE_TOPICS => Ok(ControllerRequest::CreateTopics {
            validate_only: reader.flag()?,
            topics: reader.list(MIN_TOPIC_CREATION_BYTES, "topics", decode_topic_creation)?,
        }),
        REQUEST_DELETE_TOPICS => Ok(ControllerRequest::DeleteTopics {
            names: reader.list(MIN_STRING_BYTES, "names", |r| r.required_string("name"))?,
        }),
        REQUEST_CREATE_PARTITIONS => Ok(ControllerRequest::CreatePartitions {
            validate_only: reader.flag()?,
            topics: reader.list(MIN_PARTITIONS_CREATION_BYTES, "topics", |reader| {
                Ok(PartitionsCreation {
                    name: reader.required_string("topic name")?,
                    count: reader.i32()?,
                    assignments: reader.list(MIN_REPLICAS_BYTES, "assignments", decode_nodes)?,
                })
            })?,
        }),
        REQUEST_ALLOCATE_PRODUCER_IDS => Ok(ControllerRequest::AllocateProducerIds {
            node_id: reader.i32()?,
            broker_epoch: reader.i64()?,
            floor: reader.i64()?,
        }),
        REQUEST_ALTER_TOPIC_CONFIGS => {
            let (validate_only, topic, alterations) = decode_config_alterations(reader, "topic")?;
            Ok(ControllerRequest::AlterTopicConfigs {
                topic,
                alterations,
                validate_only,
            })
        }
        REQUEST_ALTER_GROUP_CONFIGS => {
            let (validate_only, group, alterations) = decode_config_alterations(reader, "group")?;
            Ok(ControllerRequest::AlterGroupConfigs {
                group,
                alterations,
                validate_only,
            })
        }
        REQUEST_ALTER_PARTITION => Ok(ControllerRequest::AlterPartition {
            topic_id: reader.array()?,
            partition: reader.i32()?,
            request: AlterPartitionRequest {
                leader: reader.i32()?,
                leader_broker_epoch: reader.i64()?,
                leader_epoch: reader.i32()?,
                partition_epoch: reader.i32()?,
                new_isr: decode_nodes(reader)?,
                new_isr_broker_epochs: reader.list(
                    NODE_EPOCH_BYTES,
                    "ISR broker epochs",
                    |reader| Ok((reader.i32()?, reader.i64()?)),
                )?,
            },
        }),
        REQUEST_ELECT_LEADERS => {
            let code = reader.u8()? as i8;
            let election_type = ElectionType::from_code(code)
                .ok_or_else(|| FrameError::Malformed(format!("election type {code}")))?;
            let partitions = if reader.flag()? {
                let topics = reader.list(MIN_ELECTION_TOPIC_BYTES, "topics", |reader| {
                    let topic = reader.required_string("topic name")?;
                    let ids: BTreeSet<i32> = decode_nodes(reader)?.into_iter().collect();
                    Ok((topic, ids))
                })?;
                Some(unique_map(topics, "topic")?)
            } else {
                None
            };
            Ok(ControllerRequest::ElectLeaders {
                election_type,
                partitions,
            })
        }
        REQUEST_FETCH_METADATA => Ok(ControllerRequest::FetchMetadata {
            node_id: reader.i32()?,
            after_index: reader.u64()?,
        }),
        REQUEST_ALTER_REASSIGNMENTS => Ok(ControllerRequest::AlterReassignments {
            reassignments: reader.list(MIN_REASSIGNMENT_BYTES, "reassignments", |reader| {
                Ok(ReassignmentRequest {
                    topic: reader.required_string("topic name")?,
                    partition: reader.i32()?,
                    target: if reader.flag()? {
                        Some(decode_nodes(reader)?)
                    } else {
                        None
                    },
                })
            })?,
        }),
        other => Err(FrameError::Malformed(format!(
            "unknown request type {other}"
        ))),
    }
}
