//! Fixtures of the controller decision tests (`controller`, `isr_changes`, `topic_changes`,
//! `leader_elections`): a `Cluster` of registered, unfenced brokers whose image each decision's
//! records are applied to (a record list that does not apply fails the test), and the topics
//! and requests the tests share. Test-only; may import any `cluster` module.

use super::controller::{
    BrokerHeartbeatRequest, BrokerRegistrationRequest, BrokerSessions, ControllerError,
    ControllerSettings, broker_heartbeat, register_broker,
};
use super::image::MetadataImage;
use super::partition_changes::AlterPartitionRequest;
use super::records::{Listener, MetadataRecord, NodeId, Uuid};
use super::topic_changes::{CreateTopicRequest, create_topics};
use crate::metadata::TopicId;
use std::collections::BTreeMap;

const CLUSTER: Uuid = [42; 16];
/// The default broker session timeout (`ControllerSettings`), ms.
pub(super) const TIMEOUT: i64 = 9_000;

/// An image, the controller's broker sessions and settings, and each broker's epoch.
pub(super) struct Cluster {
    pub(super) image: MetadataImage,
    pub(super) sessions: BrokerSessions,
    pub(super) settings: ControllerSettings,
    pub(super) epochs: BTreeMap<NodeId, i64>,
}

impl Cluster {
    /// `racks[i]` is the rack of node i+1; every broker registered and unfenced at time 0.
    pub(super) fn new(racks: &[Option<&str>]) -> Cluster {
        let mut image = MetadataImage::new();
        image.apply(&MetadataRecord::ClusterId(CLUSTER)).unwrap();
        let mut cluster = Cluster {
            image,
            sessions: BrokerSessions::default(),
            settings: ControllerSettings::default(),
            epochs: BTreeMap::new(),
        };
        for (index, rack) in racks.iter().enumerate() {
            let node = index as NodeId + 1;
            cluster
                .start_broker(node, [node as u8; 16], rack.map(str::to_string), 0)
                .unwrap();
        }
        cluster
    }

    pub(super) fn apply(&mut self, records: &[MetadataRecord]) {
        self.image
            .apply_all(records)
            .unwrap_or_else(|e| panic!("decision records do not apply: {e}: {records:?}"));
    }

    pub(super) fn request(
        node: NodeId,
        incarnation_id: Uuid,
        rack: Option<String>,
    ) -> BrokerRegistrationRequest {
        BrokerRegistrationRequest {
            cluster_id: CLUSTER,
            node_id: node,
            incarnation_id,
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + node as u16,
                security_protocol: 0,
            }],
            rack,
            previous_broker_epoch: None,
        }
    }

    /// Registers (fenced) and heartbeats (unfenced) a broker process.
    pub(super) fn start_broker(
        &mut self,
        node: NodeId,
        incarnation_id: Uuid,
        rack: Option<String>,
        now_ms: i64,
    ) -> Result<i64, ControllerError> {
        let request = Cluster::request(node, incarnation_id, rack);
        let decision = register_broker(
            &self.image,
            &self.sessions,
            &self.settings,
            &request,
            now_ms,
        )?;
        self.apply(&decision.records);
        self.sessions.touch(node, now_ms);
        self.epochs.insert(node, decision.broker_epoch);
        self.heartbeat(node, now_ms)?;
        Ok(decision.broker_epoch)
    }

    pub(super) fn heartbeat(&mut self, node: NodeId, now_ms: i64) -> Result<(), ControllerError> {
        let request = BrokerHeartbeatRequest {
            node_id: node,
            broker_epoch: self.epochs[&node],
            caught_up: true,
            want_fence: false,
        };
        let records = broker_heartbeat(&self.image, &self.settings, &request, now_ms)?;
        self.apply(&records);
        self.sessions.touch(node, now_ms);
        Ok(())
    }

    pub(super) fn create(
        &mut self,
        request: CreateTopicRequest,
    ) -> Result<TopicId, ControllerError> {
        let mut results =
            create_topics(&self.image, &self.settings, std::slice::from_ref(&request));
        let records = results.pop().unwrap()?;
        self.apply(&records);
        Ok(request.topic_id)
    }
}

pub(super) fn topic(
    name: &str,
    id: u8,
    partitions: i32,
    replication_factor: i16,
) -> CreateTopicRequest {
    CreateTopicRequest {
        name: name.into(),
        topic_id: [id; 16],
        num_partitions: partitions,
        replication_factor,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    }
}

pub(super) fn error_code<T: std::fmt::Debug>(result: Result<T, ControllerError>) -> i16 {
    result.unwrap_err().error_code()
}

/// Three replicas, broker 1 leading, min ISR from the topic config when given.
pub(super) fn three_replicas(cluster: &mut Cluster, configs: &[(&str, &str)]) -> TopicId {
    let manual = CreateTopicRequest {
        num_partitions: -1,
        replication_factor: -1,
        assignments: BTreeMap::from([(0, vec![1, 2, 3])]),
        configs: configs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        ..topic("orders", 1, -1, -1)
    };
    cluster.create(manual).unwrap()
}

/// Broker 1's AlterPartition of `orders`-0 (created by `three_replicas`) to `new_isr`, at the
/// partition's current epochs and broker 1's registered epoch.
pub(super) fn isr_change(
    cluster: &Cluster,
    id: TopicId,
    new_isr: &[NodeId],
) -> AlterPartitionRequest {
    let state = cluster.image.partition(&id, 0).unwrap();
    AlterPartitionRequest {
        leader: 1,
        leader_broker_epoch: cluster.epochs[&1],
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
        new_isr: new_isr.to_vec(),
        new_isr_broker_epochs: new_isr
            .iter()
            .map(|node| (*node, cluster.epochs[node]))
            .collect(),
    }
}
