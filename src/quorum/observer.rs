//! Broker-only nodes observe the metadata log (as Kafka's brokers fetch `__cluster_metadata`
//! from the quorum without voting): a thread asks a voter for the committed metadata after
//! the index it applied (FetchMetadata; voters answer with `cluster::observation::chunk_for`,
//! active controller or not), applies it to its own `ImageStateMachine` and publishes the
//! cluster view (live brokers, controller, every topic) to the shards, as a controller
//! publishes its own image.
//!
//! Owns: the observer thread and its in-memory image (a restart starts from a snapshot
//! again). May import: `super::{frame, controller_client, view, topics}`, `crate::cluster`
//! (pure). Runs on: its own std thread (blocking std::net I/O).
//! Invariants: the image moves only forward, along committed entries in index order
//! (`apply_chunk` refuses an answer that skips an index, and the next fetch asks again); an
//! entry or snapshot that does not apply stops the broker, as on a voter (a committed entry
//! that does not apply is corruption or a bug); nothing is published before the first answer
//! applied, so shards never reconcile against an empty image.

use super::NetSettings;
use super::controller_client::{ControllerConnection, ExchangeLimits};
use super::frame::ControllerRequest;
use super::topics::ClusterTopics;
use super::view::{ViewHub, view_of_image};
use crate::cluster::image_machine::ImageStateMachine;
use crate::cluster::observation::{ObserveError, apply_chunk};
use crate::cluster::records::NodeId;
use crate::config::QuorumVoter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The observer thread of a broker-only node.
pub struct MetadataObserver {
    pub node_id: NodeId,
    pub voters: Vec<QuorumVoter>,
    pub settings: NetSettings,
    /// Pause between fetches that brought nothing new (`cluster.metadata_fetch_interval_ms`).
    pub fetch_interval: Duration,
    pub hub: Arc<ViewHub>,
    /// Set once the image has applied what a voter had applied when it answered (the
    /// heartbeat's `caught_up`: the controller unfences a broker only then).
    pub caught_up: Arc<AtomicBool>,
    /// Set when the broker must stop (metadata that does not apply); main reports it.
    pub fatal: Arc<Mutex<Option<String>>>,
}

impl MetadataObserver {
    pub fn run(self) {
        let mut machine = ImageStateMachine::new();
        let mut applied = 0u64;
        let mut published: Option<(u64, NodeId)> = None;
        let mut connection = ControllerConnection::new(0);
        let limits = ExchangeLimits {
            connect_timeout: self.settings.connect_timeout,
            read_timeout: self.settings.read_timeout,
            frame_bytes_max: self.settings.frame_bytes_max,
        };
        loop {
            if crate::shard::shutdown::shutdown_requested() {
                return;
            }
            let voter = &self.voters[connection.voter];
            let request = ControllerRequest::FetchMetadata {
                node_id: self.node_id,
                after_index: applied,
            };
            let response = match connection.exchange(&voter.address, self.node_id, request, &limits)
            {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(voter = %voter.address, %error, "metadata fetch failed");
                    connection.next_voter(self.voters.len());
                    std::thread::sleep(self.settings.reconnect_backoff);
                    continue;
                }
            };
            let Some(chunk) = response.metadata else {
                tracing::debug!(code = response.error_code, "no metadata in the answer");
                connection.next_voter(self.voters.len());
                std::thread::sleep(self.settings.reconnect_backoff);
                continue;
            };
            let before = applied;
            match apply_chunk(&mut machine, applied, &chunk) {
                Ok(now) => applied = now,
                Err(error @ ObserveError::Gap { .. }) => {
                    tracing::warn!(%error, "metadata answer dropped");
                    connection.next_voter(self.voters.len());
                }
                Err(error) => {
                    self.stop(format!("the metadata log: {error}"));
                    return;
                }
            }
            let caught_up = applied > 0 && applied >= chunk.voter_applied_index;
            if caught_up && !self.caught_up.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    applied_index = applied,
                    voter = self.voters[connection.voter].node_id,
                    "metadata log observed: caught up"
                );
            } else if !caught_up {
                self.caught_up.store(false, Ordering::Relaxed);
            }
            let controller_id = response.leader_hint;
            if applied > 0 && published != Some((applied, controller_id)) {
                let topics = Arc::new(ClusterTopics::from_image(machine.image(), applied));
                self.hub
                    .publish(view_of_image(machine.image(), controller_id, topics));
                published = Some((applied, controller_id));
            }
            // Read from the active controller when one is known (it has applied the most).
            if controller_id >= 0 && self.voters[connection.voter].node_id != controller_id {
                connection.follow_hint(&self.voters, controller_id);
            }
            if applied == before || applied >= chunk.voter_applied_index {
                std::thread::sleep(self.fetch_interval);
            }
        }
    }

    fn stop(&self, message: String) {
        tracing::error!("{message}; stopping");
        if let Ok(mut fatal) = self.fatal.lock() {
            *fatal = Some(message);
        }
        crate::shard::shutdown::request_shutdown();
    }
}
