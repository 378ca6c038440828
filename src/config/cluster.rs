//! The `[cluster]` section: the metadata quorum, the controller listener and broker
//! sessions (issue 15, docs/cluster.md), with its parsing and validation.

use super::{ConfigError, GIB, MIB, check};
use serde::{Deserialize, Serialize};

/// The metadata quorum and the active controller (issue 15, docs/cluster.md). Cluster mode is
/// opt-in: without `controller_quorum` the broker runs alone exactly as before, and none of
/// the network fields below is read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Applied metadata-log entries between two snapshots of the metadata image; the log
    /// before a snapshot is dropped. Default 10000, range 1..=10000000.
    pub metadata_snapshot_entries: u64,
    /// An unfenced broker that has not heartbeated for this long is fenced, ms
    /// (Kafka `broker.session.timeout.ms`). Default 9000, range 1000..=3600000.
    pub broker_session_timeout_ms: i64,
    /// Replication factor of a CreateTopics request that asks for -1
    /// (Kafka `default.replication.factor`). Default 1, range 1..=32.
    pub default_replication_factor: i16,
    /// Partitions of a CreateTopics request that asks for -1 (Kafka `num.partitions`).
    /// Default 1, range 1..=`cluster.partitions_max`.
    pub default_partitions: i32,
    /// Largest partition count of one topic. Default 10000, range 1..=100000.
    pub partitions_max: i32,
    /// Producer ids per block the controller hands to a broker. Default 1000,
    /// range 1..=1000000.
    pub producer_id_block_size: i64,
    /// The metadata quorum, `ID@HOST:PORT,...` (Kafka `controller.quorum.voters`). Set: the
    /// node runs in cluster mode; its node id in the list makes it a controller. Default unset
    /// (a single broker, no quorum).
    pub controller_quorum: Option<String>,
    /// Address the controller protocol listens on (raft messages, broker registration and
    /// heartbeats). Required when this node is a controller; must have the port its quorum
    /// entry names. Default unset.
    pub controller_listen: Option<String>,
    /// This broker's rack (Kafka `broker.rack`), reported in Metadata. Default unset.
    pub rack: Option<String>,
    /// The metadata Raft node's tick, ms: a follower campaigns after 10 ticks without a
    /// leader (randomized up to 20), a leader heartbeats every 2. Default 100, range 10..=10000.
    pub raft_tick_ms: u64,
    /// Interval between a broker's heartbeats to the active controller, ms (Kafka
    /// `broker.heartbeat.interval.ms`). Must be below `cluster.broker_session_timeout_ms`.
    /// Default 2000, range 50..=600000.
    pub broker_heartbeat_interval_ms: u64,
    /// A broker-only node's pause between fetches of the metadata log that brought nothing
    /// new, ms (it observes the log: topics and partitions reach it this much later at most).
    /// Default 50, range 5..=60000.
    pub metadata_fetch_interval_ms: u64,
    /// Largest controller-protocol frame, bytes; a larger one closes the connection. Must hold
    /// a metadata snapshot. Default 64 MiB, range 64 KiB..=1 GiB.
    pub controller_frame_bytes_max: u64,
    /// Raft messages queued for one peer; more are dropped (raft retransmits) and the peer is
    /// reported unreachable. Default 1024, range 1..=1000000.
    pub controller_peer_queue_max: usize,
    /// Events (inbound raft messages, broker requests) queued for the controller thread; more
    /// are dropped (a request gets REQUEST_TIMED_OUT). Default 4096, range 1..=1000000.
    pub controller_inbox_max: usize,
    /// Broker requests waiting while the active controller commits an earlier one; more get
    /// REQUEST_TIMED_OUT. Default 1024, range 1..=1000000.
    pub controller_request_queue_max: usize,
    /// Open inbound controller-protocol connections; more are closed at once.
    /// Default 256, range 1..=65536.
    pub controller_connections_max: usize,
    /// Timeout of a connect to a peer or controller, and of one request's answer, ms.
    /// Default 2000, range 10..=600000.
    pub controller_connect_timeout_ms: u64,
    /// Wait before reconnecting to a peer or controller after a failure, ms.
    /// Default 200, range 1..=600000.
    pub controller_reconnect_backoff_ms: u64,
    /// An inbound controller connection that receives nothing for this long is closed (also
    /// the bound on a hello frame's arrival), ms. Default 30000, range 100..=3600000.
    pub controller_read_timeout_ms: u64,
    /// A follower that has not caught up to the leader's log end for this long is dropped
    /// from the ISR (Kafka `replica.lag.time.max.ms`), ms. Default 30000, range 100..=3600000.
    pub replica_lag_time_max_ms: u64,
    /// Longest a follower's replica fetch waits at the leader for new records (Kafka
    /// `replica.fetch.wait.max.ms`), ms. Default 500, range 1..=60000.
    pub replica_fetch_wait_max_ms: u64,
    /// Record bytes one replica fetch answer may carry (Kafka
    /// `replica.fetch.response.max.bytes`). Default 10 MiB, range 64 KiB..=1 GiB.
    pub replica_fetch_response_bytes_max: u64,
    /// How long an acks=all produce waits for the in-sync replicas before it fails
    /// (REQUEST_TIMED_OUT, or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below
    /// `min.insync.replicas`), ms. Default 30000, range 100..=3600000.
    pub replica_ack_timeout_ms: u64,
    /// Connections one shard keeps open at once to one other broker for the transaction
    /// coordinators' calls (WriteTxnMarkers, AddPartitionsToTxn verification); a call beyond
    /// that waits for one to be free. Default 4, range 1..=64.
    pub peer_connections_max: u32,
    /// Bytes per second this broker's shards each fetch, at most, for the replicas a
    /// partition reassignment adds here (Kafka `follower.replication.throttled.rate` for the
    /// partitions being moved); 0: unthrottled. Default 0, range 0..=1099511627776.
    pub reassignment_throttle_bytes_per_s: u64,
    /// The active controller moves leadership back to preferred replicas (the first of each
    /// replica list) when a broker's imbalance exceeds
    /// `cluster.leader_imbalance_per_broker_percentage` (Kafka `auto.leader.rebalance.enable`).
    /// Default true.
    pub auto_leader_rebalance_enable: bool,
    /// How often the active controller checks the leader imbalance, ms (Kafka
    /// `leader.imbalance.check.interval.seconds`). Default 300000, range 1000..=86400000.
    pub leader_imbalance_check_interval_ms: u64,
    /// Share of a broker's preferred partitions led by another broker, in percent, above which
    /// the check moves them back (Kafka `leader.imbalance.per.broker.percentage`). Default 10,
    /// range 0..=100.
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            metadata_snapshot_entries: 10_000,
            broker_session_timeout_ms: 9_000,
            default_replication_factor: 1,
            default_partitions: 1,
            partitions_max: 10_000,
            producer_id_block_size: 1_000,
            controller_quorum: None,
            controller_listen: None,
            rack: None,
            raft_tick_ms: 100,
            broker_heartbeat_interval_ms: 2_000,
            metadata_fetch_interval_ms: 50,
            controller_frame_bytes_max: 64 * MIB,
            controller_peer_queue_max: 1024,
            controller_inbox_max: 4096,
            controller_request_queue_max: 1024,
            controller_connections_max: 256,
            controller_connect_timeout_ms: 2_000,
            controller_reconnect_backoff_ms: 200,
            controller_read_timeout_ms: 30_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_response_bytes_max: 10 * MIB,
            replica_ack_timeout_ms: 30_000,
            peer_connections_max: 4,
            reassignment_throttle_bytes_per_s: 0,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// One voter of the metadata quorum (`ID@HOST:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub node_id: i32,
    /// `HOST:PORT` as written (resolved when connecting).
    pub address: String,
}

/// Parses `ID@HOST:PORT,...`: ids unique and non-negative, every address `HOST:PORT`.
pub fn parse_controller_quorum(text: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    let invalid = |reason: String| ConfigError::OutOfRange {
        field: "cluster.controller_quorum",
        value: text.to_string(),
        reason,
    };
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| invalid(format!("`{entry}` is not ID@HOST:PORT")))?;
        let node_id: i32 =
            id.parse().ok().filter(|id| *id >= 0).ok_or_else(|| {
                invalid(format!("`{id}` in `{entry}` is not a node id (0..=2^31-1)"))
            })?;
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(invalid(format!(
                "`{address}` in `{entry}` is not HOST:PORT"
            )));
        }
        if voters.iter().any(|voter| voter.node_id == node_id) {
            return Err(invalid(format!("node id {node_id} is listed twice")));
        }
        voters.push(QuorumVoter {
            node_id,
            address: address.to_string(),
        });
    }
    Ok(voters)
}

fn port_of(address: &str) -> Option<u16> {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
}

impl ClusterConfig {
    /// Cluster mode: this node is configured to join a metadata quorum (`controller_quorum`).
    /// Fixed for the process; unlike the cluster view, known before anything is replayed.
    pub fn cluster_mode(&self) -> bool {
        self.controller_quorum.is_some()
    }

    /// The quorum's voters, or `None` without `controller_quorum` (single-broker mode).
    pub fn quorum_voters(&self) -> Result<Option<Vec<QuorumVoter>>, ConfigError> {
        self.controller_quorum
            .as_deref()
            .map(parse_controller_quorum)
            .transpose()
    }

    /// Cluster-mode checks that need this node's id: a controller (its id in the quorum) must
    /// listen on the port its quorum entry names.
    pub(super) fn validate_quorum(&self, node_id: i32) -> Result<(), ConfigError> {
        let Some(voters) = self.quorum_voters()? else {
            if self.controller_listen.is_some() {
                return Err(ConfigError::OutOfRange {
                    field: "cluster.controller_listen",
                    value: self.controller_listen.clone().unwrap_or_default(),
                    reason: "needs cluster.controller_quorum (--controller-quorum)".to_string(),
                });
            }
            return Ok(());
        };
        let Some(own) = voters.iter().find(|voter| voter.node_id == node_id) else {
            return Ok(());
        };
        let listen = self.controller_listen.as_deref().unwrap_or_default();
        let refuse = |reason: String| ConfigError::OutOfRange {
            field: "cluster.controller_listen",
            value: listen.to_string(),
            reason,
        };
        if listen.is_empty() {
            return Err(refuse(format!(
                "node {node_id} is a controller in cluster.controller_quorum, so it needs \
                 --controller-listen (its quorum entry is {})",
                own.address
            )));
        }
        if port_of(listen).is_none() {
            return Err(refuse("is not HOST:PORT".to_string()));
        }
        if port_of(listen) != port_of(&own.address) {
            return Err(refuse(format!(
                "node {node_id}'s quorum entry is {}: the controller must listen on that port",
                own.address
            )));
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            "cluster.metadata_snapshot_entries",
            self.metadata_snapshot_entries,
            1,
            10_000_000,
        )?;
        check(
            "cluster.broker_session_timeout_ms",
            self.broker_session_timeout_ms,
            1_000,
            3_600_000,
        )?;
        check(
            "cluster.default_replication_factor",
            self.default_replication_factor,
            1,
            32,
        )?;
        check("cluster.partitions_max", self.partitions_max, 1, 100_000)?;
        check(
            "cluster.default_partitions",
            self.default_partitions,
            1,
            self.partitions_max,
        )?;
        check(
            "cluster.leader_imbalance_check_interval_ms",
            self.leader_imbalance_check_interval_ms,
            1_000,
            86_400_000,
        )?;
        check(
            "cluster.leader_imbalance_per_broker_percentage",
            self.leader_imbalance_per_broker_percentage,
            0,
            100,
        )?;
        check(
            "cluster.producer_id_block_size",
            self.producer_id_block_size,
            1,
            1_000_000,
        )?;
        check("cluster.raft_tick_ms", self.raft_tick_ms, 10, 10_000)?;
        check(
            "cluster.broker_heartbeat_interval_ms",
            self.broker_heartbeat_interval_ms,
            50,
            600_000,
        )?;
        check(
            "cluster.metadata_fetch_interval_ms",
            self.metadata_fetch_interval_ms,
            5,
            60_000,
        )?;
        if self.broker_heartbeat_interval_ms as i64 >= self.broker_session_timeout_ms {
            return Err(ConfigError::OutOfRange {
                field: "cluster.broker_heartbeat_interval_ms",
                value: self.broker_heartbeat_interval_ms.to_string(),
                reason: "must be below cluster.broker_session_timeout_ms".to_string(),
            });
        }
        check(
            "cluster.controller_frame_bytes_max",
            self.controller_frame_bytes_max,
            64 * 1024,
            GIB,
        )?;
        check(
            "cluster.controller_peer_queue_max",
            self.controller_peer_queue_max,
            1,
            1_000_000,
        )?;
        check(
            "cluster.controller_inbox_max",
            self.controller_inbox_max,
            1,
            1_000_000,
        )?;
        check(
            "cluster.controller_request_queue_max",
            self.controller_request_queue_max,
            1,
            1_000_000,
        )?;
        check(
            "cluster.controller_connections_max",
            self.controller_connections_max,
            1,
            65_536,
        )?;
        check(
            "cluster.controller_connect_timeout_ms",
            self.controller_connect_timeout_ms,
            10,
            600_000,
        )?;
        check(
            "cluster.controller_reconnect_backoff_ms",
            self.controller_reconnect_backoff_ms,
            1,
            600_000,
        )?;
        check(
            "cluster.controller_read_timeout_ms",
            self.controller_read_timeout_ms,
            100,
            3_600_000,
        )?;
        check(
            "cluster.replica_lag_time_max_ms",
            self.replica_lag_time_max_ms,
            100,
            3_600_000,
        )?;
        check(
            "cluster.replica_fetch_wait_max_ms",
            self.replica_fetch_wait_max_ms,
            1,
            60_000,
        )?;
        check(
            "cluster.replica_fetch_response_bytes_max",
            self.replica_fetch_response_bytes_max,
            64 * 1024,
            1024 * MIB,
        )?;
        check(
            "cluster.reassignment_throttle_bytes_per_s",
            self.reassignment_throttle_bytes_per_s,
            0,
            1 << 40,
        )?;
        check(
            "cluster.peer_connections_max",
            self.peer_connections_max,
            1,
            64,
        )?;
        check(
            "cluster.replica_ack_timeout_ms",
            self.replica_ack_timeout_ms,
            100,
            3_600_000,
        )
    }
}
