//! Cluster mode's I/O shell (issue 15, docs/cluster.md): the controller protocol's sockets,
//! the controller thread that runs the metadata Raft node and the active controller's
//! decisions, the broker lifecycle (register, heartbeat), and the cluster view pushed to
//! every shard.
//!
//! Owns: threads and sockets of cluster mode. May import: `crate::cluster` (pure),
//! `crate::storage::raft_log`, `crate::config`, `crate::model`, `crate::shard::shutdown`;
//! nothing in `cluster/` or `storage/` imports this. Runs on: its own std threads, never a
//! shard (raft-log fsyncs block); shards only receive views (`view`).
//! Invariants: without `cluster.controller_quorum` nothing here starts (`start` returns
//! `None`: no thread, no socket, no file).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod alter_partition;
pub mod controller_client;
pub mod controller_loop;
pub mod forwarder;
pub mod frame;
pub mod lifecycle;
pub mod observer;
pub mod topic_decisions;
pub mod topics;
pub mod transport;
pub mod view;

use crate::cluster::controller::ControllerSettings;
use crate::cluster::image_machine::ImageStateMachine;
use crate::cluster::raft::{RaftDriver, RaftDriverError, RaftSettings};
use crate::cluster::records::NodeId;
use crate::config::{Config, ConfigError};
use crate::storage::raft_log::{RaftLogError, RaftLogStore};
use frame::{BrokerEndpoint, ControllerRequest, ControllerResponse};
use raft::prelude::Message as RaftMessage;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use view::ViewHub;

/// Directory of the metadata Raft log inside the data dir (not a partition directory name,
/// so the data-dir survey ignores it).
pub const METADATA_LOG_DIR: &str = "__cluster_metadata";

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen for the controller protocol on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot start a cluster thread: {0}")]
    Thread(std::io::Error),
    #[error("the metadata log: {0}")]
    Log(#[from] RaftLogError),
    #[error("the metadata Raft node: {0}")]
    Raft(RaftDriverError),
    #[error("controller protocol: {0}")]
    Frame(frame::FrameError),
    #[error("the controller thread's inbox closed")]
    Stopped,
    #[error("the metadata log {0} is in use by another process (two nodes on one data dir?)")]
    LogLocked(String),
    #[error("cannot tell other brokers this broker's address: {0}")]
    Advertised(String),
    #[error(
        "{path}: {reason}. Start-up stops here; nothing was changed. The file names the cluster this data dir joined; restore it, or delete it only if this data dir never held another cluster's data"
    )]
    ClusterIdFile { path: String, reason: String },
    #[error(
        "{path}: cannot remove the clean-shutdown marker: {reason}. Start-up stops here: a crash of this process must not be taken for a clean stop"
    )]
    CleanShutdownFile { path: String, reason: String },
}

/// What reaches the controller thread.
pub enum ControllerEvent {
    Raft(RaftMessage),
    Request {
        request: ControllerRequest,
        reply: SyncSender<ControllerResponse>,
    },
    /// A message to this peer could not be delivered.
    Unreachable(u64),
}

/// Socket settings of the `[cluster]` section.
#[derive(Debug, Clone)]
pub struct NetSettings {
    pub frame_bytes_max: u64,
    pub peer_queue_max: usize,
    pub connections_max: usize,
    pub connect_timeout: Duration,
    pub reconnect_backoff: Duration,
    pub read_timeout: Duration,
}

impl NetSettings {
    fn from_config(config: &Config) -> Self {
        let cluster = &config.cluster;
        NetSettings {
            frame_bytes_max: cluster.controller_frame_bytes_max,
            peer_queue_max: cluster.controller_peer_queue_max,
            connections_max: cluster.controller_connections_max,
            connect_timeout: Duration::from_millis(cluster.controller_connect_timeout_ms),
            reconnect_backoff: Duration::from_millis(cluster.controller_reconnect_backoff_ms),
            read_timeout: Duration::from_millis(cluster.controller_read_timeout_ms),
        }
    }
}

/// A running cluster mode: the view hub shards subscribe to, and the fatal error that stops
/// the broker (a duplicate node id), if one happened.
pub struct Quorum {
    pub hub: Arc<ViewHub>,
    fatal: Arc<Mutex<Option<String>>>,
}

impl Quorum {
    pub fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|fatal| fatal.clone())
    }
}

/// The running cluster mode's controlled-shutdown handshake and its bound (the session
/// timeout); unset in single-broker mode.
static CONTROLLED_SHUTDOWN: std::sync::OnceLock<(Arc<lifecycle::ControlledShutdown>, Duration)> =
    std::sync::OnceLock::new();

/// Kafka's controlled shutdown, called by the signal thread before the shards stop: in
/// cluster mode, has the controller fence this broker and waits for it (at most
/// `cluster.broker_session_timeout_ms`, after which the controller would fence it anyway).
/// Returns at once in single-broker mode.
pub fn controlled_shutdown() {
    let Some((handshake, timeout)) = CONTROLLED_SHUTDOWN.get() else {
        return;
    };
    tracing::info!("controlled shutdown: asking the controller to fence this broker");
    view::mark_leaving();
    if !handshake.request_and_wait(*timeout) {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "controlled shutdown: no answer from the controller in time; stopping anyway"
        );
    }
}

/// After a clean stop (every shard closed its logs without an error): leaves the
/// clean-shutdown marker with this process's broker epoch, so the next registration is a
/// clean return (KIP-966). Nothing in single-broker mode or before a registration.
pub fn record_clean_shutdown(data_dir: &std::path::Path) {
    if CONTROLLED_SHUTDOWN.get().is_none() {
        return;
    }
    let Some(broker_epoch) = view::broker_epoch() else {
        return;
    };
    match lifecycle::write_clean_shutdown_epoch(data_dir, broker_epoch) {
        Ok(()) => tracing::info!(broker_epoch, "clean shutdown recorded"),
        Err(error) => {
            tracing::warn!(%error, "cannot record the clean shutdown; the next start counts as after a crash")
        }
    }
}

/// This broker as its registration and clients see it: its inter-broker listener's
/// advertised address (what other brokers connect to), and every listener with its
/// advertised address, the inter-broker one first.
pub fn own_endpoint(config: &Config) -> Result<BrokerEndpoint, crate::config::ConfigError> {
    let inter_broker = config.server.inter_broker_listener()?;
    let listener = |spec: &crate::config::ListenerSpec| crate::cluster::records::Listener {
        name: spec.name.clone(),
        host: spec.advertised_host.clone(),
        port: spec.advertised_port,
        security_protocol: spec.protocol.id(),
    };
    let mut listeners = vec![listener(&inter_broker)];
    for spec in config.server.listeners()? {
        if spec.name != inter_broker.name {
            listeners.push(listener(&spec));
        }
    }
    Ok(BrokerEndpoint {
        node_id: config.server.node_id,
        host: inter_broker.advertised_host,
        port: inter_broker.advertised_port,
        rack: config.cluster.rack.clone(),
        listeners,
    })
}

/// Starts cluster mode, or returns `None` without `cluster.controller_quorum`.
pub fn start(config: &Config) -> Result<Option<Quorum>, QuorumError> {
    let Some(voters) = config.cluster.quorum_voters()? else {
        return Ok(None);
    };
    let node_id = config.server.node_id;
    let net = NetSettings::from_config(config);
    let hub = Arc::new(ViewHub::default());
    let fatal = Arc::new(Mutex::new(None));
    let is_controller = voters.iter().any(|voter| voter.node_id == node_id);
    // Read-only checks first: nothing in the data dir changes before they pass.
    let data_dir = config.storage.data_dir.clone();
    let cluster_id = lifecycle::load_cluster_id(&data_dir)?;
    if let Some(cluster_id) = cluster_id {
        view::set_joined_cluster(cluster_id);
    }
    let previous_broker_epoch = lifecycle::take_clean_shutdown_epoch(&data_dir)?;
    if is_controller {
        start_controller(config, &voters, &net, hub.clone(), fatal.clone())?;
    }
    let endpoint = own_endpoint(config).map_err(|e| QuorumError::Advertised(e.to_string()))?;
    // A controller's image is its own; a broker-only node observes the log (`observer`).
    let metadata_caught_up = Arc::new(std::sync::atomic::AtomicBool::new(is_controller));
    if !is_controller {
        let observer = observer::MetadataObserver {
            node_id,
            voters: voters.clone(),
            settings: net.clone(),
            fetch_interval: Duration::from_millis(config.cluster.metadata_fetch_interval_ms),
            hub: hub.clone(),
            caught_up: metadata_caught_up.clone(),
            fatal: fatal.clone(),
        };
        std::thread::Builder::new()
            .name("metadata-observer".to_string())
            .spawn(move || observer.run())
            .map_err(QuorumError::Thread)?;
    }
    let shutdown = Arc::new(lifecycle::ControlledShutdown::default());
    let session_timeout = Duration::from_millis(config.cluster.broker_session_timeout_ms as u64);
    let _ = CONTROLLED_SHUTDOWN.set((shutdown.clone(), session_timeout));
    let lifecycle = lifecycle::BrokerLifecycle {
        shutdown,
        data_dir,
        cluster_id,
        previous_broker_epoch,
        node_id,
        incarnation_id: *uuid::Uuid::new_v4().as_bytes(),
        endpoint,
        voters: voters.clone(),
        settings: net.clone(),
        heartbeat_interval: Duration::from_millis(config.cluster.broker_heartbeat_interval_ms),
        session_timeout: Duration::from_millis(config.cluster.broker_session_timeout_ms as u64),
        metadata_caught_up,
        fatal: fatal.clone(),
    };
    std::thread::Builder::new()
        .name("broker-lifecycle".to_string())
        .spawn(move || lifecycle.run())
        .map_err(QuorumError::Thread)?;
    forwarder::start(
        node_id,
        voters.clone(),
        net,
        hub.clone(),
        config.cluster.controller_request_queue_max,
    )
    .map_err(QuorumError::Thread)?;
    tracing::info!(
        node_id,
        controller = is_controller,
        voters = voters.len(),
        "cluster mode started"
    );
    Ok(Some(Quorum { hub, fatal }))
}

fn start_controller(
    config: &Config,
    voters: &[crate::config::QuorumVoter],
    net: &NetSettings,
    hub: Arc<ViewHub>,
    fatal: Arc<Mutex<Option<String>>>,
) -> Result<(), QuorumError> {
    let node_id = config.server.node_id;
    let address = config.cluster.controller_listen.clone().unwrap_or_default();
    let listener = std::net::TcpListener::bind(&address).map_err(|source| QuorumError::Listen {
        address: address.clone(),
        source,
    })?;
    let raft_ids: Vec<u64> = voters.iter().map(|v| v.node_id as u64).collect();
    let log_dir = config.storage.data_dir.join(METADATA_LOG_DIR);
    let log_lock = lock_log_dir(&log_dir)?;
    let (store, recovery) = RaftLogStore::open(&log_dir, &raft_ids)?;
    tracing::info!(?recovery, "metadata log opened");
    let driver = RaftDriver::new(
        node_id as u64,
        store,
        ImageStateMachine::new(),
        &RaftSettings::from_config(&config.cluster),
    )
    .map_err(QuorumError::Raft)?;
    let (inbox_sender, inbox) = sync_channel(config.cluster.controller_inbox_max);
    let voter_ids: Arc<Vec<NodeId>> = Arc::new(voters.iter().map(|v| v.node_id).collect());
    transport::spawn_listener(listener, voter_ids, inbox_sender.clone(), net.clone())
        .map_err(QuorumError::Thread)?;
    let peers: Vec<(NodeId, String)> = voters
        .iter()
        .filter(|v| v.node_id != node_id)
        .map(|v| (v.node_id, v.address.clone()))
        .collect();
    let peers = transport::PeerSenders::start(node_id, &peers, inbox_sender, net)
        .map_err(QuorumError::Thread)?;
    let mut controller = controller_loop::ControllerLoop::new(
        driver,
        ControllerSettings::from_config(&config.cluster),
        inbox,
        peers,
        hub,
        Duration::from_millis(config.cluster.raft_tick_ms),
        config.cluster.controller_request_queue_max,
    );
    // One proposal is one raft entry, sent to followers in one frame.
    controller.proposal_bytes_max = usize::try_from(net.frame_bytes_max / 2).unwrap_or(usize::MAX);
    std::thread::Builder::new()
        .name("controller".to_string())
        .spawn(move || {
            let _log_lock = log_lock;
            let error = controller.run();
            tracing::error!(%error, "the controller thread stopped; stopping the broker");
            if let Ok(mut fatal) = fatal.lock() {
                *fatal = Some(format!("the controller stopped: {error}"));
            }
            crate::shard::shutdown::request_shutdown();
        })
        .map_err(QuorumError::Thread)?;
    Ok(())
}

/// An exclusive `flock` on `<log_dir>/.lock`, held as long as the controller runs (the data
/// dir's own lock is taken later, by the shard pool, and a second flock on it from this
/// process would conflict with it).
fn lock_log_dir(log_dir: &std::path::Path) -> Result<std::fs::File, QuorumError> {
    use std::os::fd::AsRawFd;
    let path = log_dir.join(".lock");
    let io = |source: std::io::Error| {
        QuorumError::Log(RaftLogError::Io {
            path: path.clone(),
            source,
        })
    };
    std::fs::create_dir_all(log_dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(QuorumError::LogLocked(log_dir.display().to_string()));
    }
    Ok(file)
}
