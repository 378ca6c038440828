//! `Mesh`: this shard's senders into the glommio channel mesh, with per-peer counts of
//! messages sent and received and of sends that found a peer's channel full. glommio does
//! not expose channel lengths, so `/metrics` approximates a queue's depth as the sender's
//! sent count minus the receiver's received count.
//!
//! Owns: the `Senders` half of the mesh and its counters. May import: glommio.
//! Runs on: every shard; a `Mesh` is `!Send` and touched only by its own executor.
//! Invariants: counters only grow; `sent` counts messages accepted by the channel.

use super::messages::ShardMessage;
use super::metrics::MeshPeerCounts;
use glommio::channels::channel_mesh::Senders;
use glommio::{GlommioError, ResourceType};
use std::cell::Cell;

pub struct Mesh {
    senders: Senders<ShardMessage>,
    /// Per peer: messages put into its channel.
    sent: Vec<Cell<u64>>,
    /// Per peer: messages taken out of its channel to this shard.
    received: Vec<Cell<u64>>,
    /// Sends that found a channel full and had to wait.
    send_waits: Cell<u64>,
}

/// The peer's channel is closed (the peer stopped), or `peer` is not a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshClosed;

/// The outcome of `Mesh::try_send_to`.
pub enum TrySend {
    Sent,
    /// The channel is full; the message is given back (boxed: the rare path).
    Full(Box<ShardMessage>),
    Closed,
}

fn bump(cell: Option<&Cell<u64>>) {
    if let Some(cell) = cell {
        cell.set(cell.get().saturating_add(1));
    }
}

impl Mesh {
    pub fn new(senders: Senders<ShardMessage>) -> Mesh {
        let peers = senders.nr_consumers();
        Mesh {
            senders,
            sent: (0..peers).map(|_| Cell::new(0)).collect(),
            received: (0..peers).map(|_| Cell::new(0)).collect(),
            send_waits: Cell::new(0),
        }
    }

    pub fn peer_id(&self) -> usize {
        self.senders.peer_id()
    }

    /// Sends `message` to `peer`, waiting for room if its channel is full.
    pub async fn send_to(&self, peer: usize, message: ShardMessage) -> Result<(), MeshClosed> {
        let message = match self.try_send_to(peer, message) {
            TrySend::Sent => return Ok(()),
            TrySend::Full(message) => message,
            TrySend::Closed => return Err(MeshClosed),
        };
        self.send_waits.set(self.send_waits.get().saturating_add(1));
        self.senders
            .send_to(peer, *message)
            .await
            .map_err(|_| MeshClosed)?;
        bump(self.sent.get(peer));
        Ok(())
    }

    /// Sends without waiting.
    pub fn try_send_to(&self, peer: usize, message: ShardMessage) -> TrySend {
        match self.senders.try_send_to(peer, message) {
            Ok(()) => {
                bump(self.sent.get(peer));
                TrySend::Sent
            }
            Err(GlommioError::WouldBlock(ResourceType::Channel(message))) => {
                TrySend::Full(Box::new(message))
            }
            Err(_) => TrySend::Closed,
        }
    }

    /// Counts a message taken from `peer`'s channel to this shard.
    pub fn received_from(&self, peer: usize) {
        bump(self.received.get(peer));
    }

    /// Sends that had to wait for room in a full channel.
    pub fn send_waits(&self) -> u64 {
        self.send_waits.get()
    }

    /// Counts per peer, this shard excluded.
    pub fn counts(&self) -> Vec<MeshPeerCounts> {
        let me = self.peer_id();
        (0..self.sent.len())
            .filter(|peer| *peer != me)
            .map(|peer| MeshPeerCounts {
                peer,
                sent: self.sent[peer].get(),
                received: self.received[peer].get(),
            })
            .collect()
    }
}
