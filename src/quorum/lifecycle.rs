//! The broker side of the controller protocol (every cluster-mode node, controller or not):
//! registers this process (a fresh incarnation id per start) with the active controller, then
//! heartbeats every `cluster.broker_heartbeat_interval_ms`. A NOT_CONTROLLER answer names the
//! leader to try next; an unreachable node moves on to the next voter. A heartbeat says
//! whether this node's metadata image caught up (a broker-only node's observer tells it,
//! `super::observer`); the controller unfences a broker only then.
//!
//! Owns: this broker's registration (epoch) and its controller connection. May import:
//! `super::{controller_client, frame, view}`, `crate::metadata` (`write_atomically`). A std
//! thread.
//! Invariants: a heartbeat is sent only with the epoch of a committed registration; a
//! DUPLICATE_BROKER_REGISTRATION refusal that outlasts twice the session timeout (the old
//! incarnation is still alive, not a quick restart) stops the broker with a clear error.
//! Controlled shutdown (Kafka's): on SIGTERM the signal thread calls
//! `ControlledShutdown::request` and waits; this thread sends one heartbeat asking to be
//! fenced, and once the controller has committed that (the broker leaves Metadata, and with
//! replication its partitions' leadership) it reports back and stops heartbeating. The wait
//! is bounded by the session timeout, after which the controller fences it anyway.
//! A data dir joins one cluster: the first registration records the cluster id in
//! `<data_dir>/cluster.id` (Kafka's `meta.properties` `cluster.id`), every later one sends
//! it, and a quorum of another cluster (INCONSISTENT_CLUSTER_ID) stops the broker.

use super::controller_client::{ControllerConnection, ExchangeLimits};
use super::frame::{BrokerEndpoint, ControllerRequest, ControllerResponse, FrameError};
use super::{NetSettings, QuorumError};
use crate::cluster::records::{NodeId, Uuid};
use crate::config::QuorumVoter;
use crate::model::ErrorCode;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The file in the data dir that names the cluster it joined.
pub const CLUSTER_ID_FILE: &str = "cluster.id";

/// The cluster id `<data_dir>/cluster.id` names, `None` if the data dir never joined one.
pub fn load_cluster_id(data_dir: &Path) -> Result<Option<Uuid>, QuorumError> {
    let path = data_dir.join(CLUSTER_ID_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(QuorumError::ClusterIdFile {
                path: path.display().to_string(),
                reason: error.to_string(),
            });
        }
    };
    uuid::Uuid::parse_str(text.trim())
        .map(|id| Some(*id.as_bytes()))
        .map_err(|error| QuorumError::ClusterIdFile {
            path: path.display().to_string(),
            reason: format!("not a cluster id: {error}"),
        })
}

/// The file in the data dir that a cleanly stopped broker leaves: the broker epoch it was
/// registered with (Kafka's clean-shutdown file with its broker epoch, KIP-966).
pub const CLEAN_SHUTDOWN_FILE: &str = "broker.clean-shutdown";

/// Takes the clean-shutdown marker of the previous process: its broker epoch, or `None` if it
/// did not stop cleanly (no file) or the file is unreadable (then it counts as unclean, with
/// a warning). The file is removed before this process writes anything, so a crash of this
/// process is never taken for a clean stop; an error here stops start-up.
pub fn take_clean_shutdown_epoch(data_dir: &Path) -> Result<Option<i64>, QuorumError> {
    let path = data_dir.join(CLEAN_SHUTDOWN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "clean-shutdown marker unreadable; this start counts as after a crash");
            String::new()
        }
    };
    let epoch = text
        .trim()
        .strip_prefix("broker_epoch=")
        .and_then(|epoch| epoch.parse::<i64>().ok())
        .filter(|epoch| *epoch >= 0);
    if epoch.is_none() && !text.is_empty() {
        tracing::warn!(path = %path.display(), "clean-shutdown marker malformed; this start counts as after a crash");
    }
    std::fs::remove_file(&path)
        .and_then(|()| std::fs::File::open(data_dir)?.sync_all())
        .map_err(|error| QuorumError::CleanShutdownFile {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
    Ok(epoch)
}

/// Leaves the clean-shutdown marker for the next start: called once every log closed cleanly,
/// with the broker epoch this process was registered with.
pub fn write_clean_shutdown_epoch(data_dir: &Path, broker_epoch: i64) -> std::io::Result<()> {
    let text = format!("broker_epoch={broker_epoch}\n");
    crate::metadata::write_atomically(&data_dir.join(CLEAN_SHUTDOWN_FILE), text.as_bytes())
}

fn save_cluster_id(data_dir: &Path, cluster_id: &Uuid) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let text = format!("{}\n", uuid::Uuid::from_bytes(*cluster_id));
    crate::metadata::write_atomically(&data_dir.join(CLUSTER_ID_FILE), text.as_bytes())
}

/// The handshake between the signal thread and this thread for a controlled shutdown.
#[derive(Default)]
pub struct ControlledShutdown {
    /// (requested, finished)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl ControlledShutdown {
    /// Asks for the controlled shutdown and waits until it is done or `timeout` passed;
    /// whether the controller fenced this broker in time.
    pub fn request_and_wait(&self, timeout: Duration) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        state.0 = true;
        self.changed.notify_all();
        let deadline = Instant::now() + timeout;
        while !state.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.changed.wait_timeout(state, left) {
                Ok((next, _)) => state = next,
                Err(_) => return false,
            }
        }
        true
    }

    fn is_requested(&self) -> bool {
        self.state.lock().map(|state| state.0).unwrap_or(true)
    }

    fn finish(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.1 = true;
            self.changed.notify_all();
        }
    }

    /// Sleeps `duration`, or less if a controlled shutdown is requested meanwhile.
    fn sleep_unless_requested(&self, duration: Duration) {
        let Ok(state) = self.state.lock() else {
            return;
        };
        let _ = self
            .changed
            .wait_timeout_while(state, duration, |state| !state.0);
    }
}

pub struct BrokerLifecycle {
    /// SIGTERM's handshake (see the module doc).
    pub shutdown: Arc<ControlledShutdown>,
    /// Where `cluster.id` lives.
    pub data_dir: PathBuf,
    /// The cluster the data dir joined, if any (`cluster.id`).
    pub cluster_id: Option<Uuid>,
    /// The broker epoch of the previous process's clean shutdown (`take_clean_shutdown_epoch`).
    pub previous_broker_epoch: Option<i64>,
    pub node_id: NodeId,
    pub incarnation_id: Uuid,
    pub endpoint: BrokerEndpoint,
    pub voters: Vec<QuorumVoter>,
    pub settings: NetSettings,
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
    /// Whether this node's metadata image has caught up with the log (always on a
    /// controller; a broker-only node's observer sets it): the controller keeps a broker
    /// fenced until its heartbeat says so.
    pub metadata_caught_up: Arc<AtomicBool>,
    /// Set when the broker must stop (duplicate node id); main reports it.
    pub fatal: Arc<Mutex<Option<String>>>,
}

impl BrokerLifecycle {
    pub fn run(mut self) {
        let mut connection = ControllerConnection::new(0);
        let mut epoch: Option<i64> = None;
        let mut duplicate_since: Option<Instant> = None;
        loop {
            let want_fence = self.shutdown.is_requested();
            if want_fence && epoch.is_none() {
                // Not registered: nothing to move off this broker.
                self.shutdown.finish();
                return;
            }
            let request = match epoch {
                None => ControllerRequest::Register {
                    node_id: self.node_id,
                    incarnation_id: self.incarnation_id,
                    endpoint: self.endpoint.clone(),
                    cluster_id: self.cluster_id,
                    previous_broker_epoch: self.previous_broker_epoch,
                },
                Some(broker_epoch) => ControllerRequest::Heartbeat {
                    node_id: self.node_id,
                    broker_epoch,
                    caught_up: self.metadata_caught_up.load(Ordering::Relaxed),
                    want_fence,
                },
            };
            let response = match self.exchange(&mut connection, request) {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(voter = %self.voters[connection.voter].address, %error, "controller unreachable");
                    connection.next_voter(self.voters.len());
                    std::thread::sleep(self.settings.reconnect_backoff);
                    continue;
                }
            };
            let code = response.error_code;
            if code == ErrorCode::None.code() {
                duplicate_since = None;
                if epoch.is_none() && !self.record_cluster_id(response.view.cluster_id) {
                    return;
                }
                if epoch.is_none() {
                    tracing::info!(
                        node_id = self.node_id,
                        broker_epoch = response.broker_epoch,
                        incarnation = %uuid::Uuid::from_bytes(self.incarnation_id),
                        "registered with the controller"
                    );
                }
                if want_fence {
                    tracing::info!(
                        node_id = self.node_id,
                        "controlled shutdown: the controller fenced this broker"
                    );
                    self.shutdown.finish();
                    return;
                }
                epoch = Some(response.broker_epoch);
                super::view::set_broker_epoch(response.broker_epoch);
                self.shutdown
                    .sleep_unless_requested(self.heartbeat_interval);
            } else if code == ErrorCode::NotController.code() {
                connection.follow_hint(&self.voters, response.leader_hint);
                std::thread::sleep(self.settings.reconnect_backoff);
            } else if code == ErrorCode::DuplicateBrokerRegistration.code() {
                let since = *duplicate_since.get_or_insert_with(Instant::now);
                let message = format!(
                    "node id {} is registered by another live broker \
                     (DUPLICATE_BROKER_REGISTRATION): two processes must not share a node id",
                    self.node_id
                );
                if since.elapsed() > 2 * self.session_timeout {
                    self.stop(message);
                    return;
                }
                tracing::error!("{message}; retrying until its session would have expired");
                std::thread::sleep(self.heartbeat_interval);
            } else if code == ErrorCode::InconsistentClusterId.code()
                && let (Some(ours), Some(theirs)) = (self.cluster_id, response.view.cluster_id)
            {
                self.stop(format!(
                    "data dir {} belongs to cluster {} ({CLUSTER_ID_FILE}), but the controller \
                     quorum is cluster {} (INCONSISTENT_CLUSTER_ID): this node's data is from \
                     another cluster; give it an empty data dir or point it at its own quorum",
                    self.data_dir.display(),
                    uuid::Uuid::from_bytes(ours),
                    uuid::Uuid::from_bytes(theirs),
                ));
                return;
            } else if code == ErrorCode::StaleBrokerEpoch.code()
                || code == ErrorCode::BrokerIdNotRegistered.code()
            {
                tracing::warn!(
                    code,
                    "controller lost this broker's registration; registering again"
                );
                epoch = None;
            } else {
                tracing::debug!(code, "controller request failed; retrying");
                std::thread::sleep(self.settings.reconnect_backoff);
            }
        }
    }

    /// Logs `message`, hands it to main as the exit error and shuts the broker down.
    fn stop(&self, message: String) {
        tracing::error!("{message}; stopping");
        if let Ok(mut fatal) = self.fatal.lock() {
            *fatal = Some(message);
        }
        crate::shard::shutdown::request_shutdown();
    }

    /// After the first committed registration: records the cluster's id in the data dir if
    /// it has none yet. `false` (the broker is stopping) if it cannot be written: a node
    /// that cannot remember its cluster must not serve as part of it.
    fn record_cluster_id(&mut self, cluster_id: Option<Uuid>) -> bool {
        let (None, Some(cluster_id)) = (self.cluster_id, cluster_id) else {
            return true;
        };
        if let Err(error) = save_cluster_id(&self.data_dir, &cluster_id) {
            self.stop(format!(
                "cannot record the cluster id in {}: {error}",
                self.data_dir.join(CLUSTER_ID_FILE).display()
            ));
            return false;
        }
        tracing::info!(cluster_id = %uuid::Uuid::from_bytes(cluster_id), "data dir joined the cluster");
        self.cluster_id = Some(cluster_id);
        super::view::set_joined_cluster(cluster_id);
        true
    }

    fn exchange(
        &self,
        connection: &mut ControllerConnection,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, FrameError> {
        let address = &self.voters[connection.voter].address;
        // An answer is due within the connect timeout (the reader on the controller waits as
        // long for its controller thread); after it the next voter is tried.
        let limits = ExchangeLimits {
            connect_timeout: self.settings.connect_timeout,
            read_timeout: self.settings.connect_timeout,
            frame_bytes_max: self.settings.frame_bytes_max,
        };
        connection.exchange(address, self.node_id, request, &limits)
    }
}

impl From<FrameError> for QuorumError {
    fn from(error: FrameError) -> Self {
        QuorumError::Frame(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controlled_shutdown_waits_for_the_fence_and_is_bounded() {
        // Nobody answers: the wait ends at its bound, reporting failure.
        let unanswered = ControlledShutdown::default();
        assert!(!unanswered.request_and_wait(Duration::from_millis(20)));
        assert!(unanswered.is_requested());

        // The lifecycle side wakes from its heartbeat sleep on the request and finishes.
        let handshake = Arc::new(ControlledShutdown::default());
        let lifecycle = {
            let handshake = handshake.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                handshake.sleep_unless_requested(Duration::from_secs(600));
                assert!(handshake.is_requested());
                handshake.finish();
                started.elapsed()
            })
        };
        assert!(handshake.request_and_wait(Duration::from_secs(600)));
        let slept = lifecycle.join().expect("lifecycle side");
        assert!(
            slept < Duration::from_secs(600),
            "the request did not wake the sleeper"
        );
    }

    #[test]
    fn cluster_id_file_roundtrips_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("temp dir");
        assert_eq!(load_cluster_id(dir.path()).expect("no file"), None);
        save_cluster_id(dir.path(), &[7; 16]).expect("save");
        assert_eq!(load_cluster_id(dir.path()).expect("load"), Some([7; 16]));
        std::fs::write(dir.path().join(CLUSTER_ID_FILE), b"not a uuid\n").expect("damage");
        assert!(matches!(
            load_cluster_id(dir.path()),
            Err(QuorumError::ClusterIdFile { .. })
        ));
    }
}
