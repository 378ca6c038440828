//! The controller protocol's sockets (std::net, one thread per connection; never a shard
//! thread): the listener and its inbound readers, and one writer thread per raft peer with a
//! bounded queue.
//!
//! Owns: connections, hello checks, per-peer queues. May import: `super::{frame, events}`.
//! Invariants: a connection's first frame is a hello within the read timeout; raft frames are
//! accepted only from a hello naming a quorum voter, and only with that voter as `from`;
//! anything else closes the connection. Inbound work reaches the controller thread only by
//! `try_send` (a full inbox drops raft messages, which raft retransmits, and answers a request
//! REQUEST_TIMED_OUT); nothing here blocks the controller thread.

use super::frame::{
    ClusterView, ControllerResponse, Frame, FrameError, PROTOCOL_VERSION, read_frame, write_frame,
};
use super::{ControllerEvent, NetSettings};
use crate::cluster::records::NodeId;
use crate::model::ErrorCode;
use raft::prelude::Message as RaftMessage;
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Accepts controller-protocol connections on `listener` until the process exits.
pub fn spawn_listener(
    listener: TcpListener,
    voters: Arc<Vec<NodeId>>,
    inbox: SyncSender<ControllerEvent>,
    settings: NetSettings,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("ctl-accept".to_string())
        .spawn(move || {
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "controller listener: accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                if open.load(Ordering::Relaxed) >= settings.connections_max {
                    tracing::warn!(
                        max = settings.connections_max,
                        "controller listener: too many connections (cluster.controller_connections_max); closing one"
                    );
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (open, voters, inbox, settings) =
                    (open.clone(), voters.clone(), inbox.clone(), settings.clone());
                let spawned = std::thread::Builder::new()
                    .name("ctl-in".to_string())
                    .spawn(move || {
                        let peer = stream.peer_addr().ok();
                        if let Err(error) = serve_connection(stream, &voters, &inbox, &settings) {
                            tracing::debug!(?peer, %error, "controller connection closed");
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                if let Err(error) = spawned {
                    tracing::warn!(%error, "controller listener: cannot start a reader thread");
                }
            }
        })?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum InboundError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("refused: {0}")]
    Refused(String),
}

fn serve_connection(
    mut stream: TcpStream,
    voters: &[NodeId],
    inbox: &SyncSender<ControllerEvent>,
    settings: &NetSettings,
) -> Result<(), InboundError> {
    stream
        .set_read_timeout(Some(settings.read_timeout))
        .map_err(FrameError::from)?;
    stream
        .set_write_timeout(Some(settings.connect_timeout))
        .map_err(FrameError::from)?;
    stream.set_nodelay(true).map_err(FrameError::from)?;
    let peer_id = match read_frame(&mut stream, settings.frame_bytes_max)? {
        Frame::Hello { version, node_id } if version == PROTOCOL_VERSION => node_id,
        Frame::Hello { version, .. } => {
            return Err(InboundError::Refused(format!("protocol version {version}")));
        }
        _ => return Err(InboundError::Refused("first frame is not a hello".into())),
    };
    let is_voter = voters.contains(&peer_id);
    loop {
        match read_frame(&mut stream, settings.frame_bytes_max)? {
            Frame::Raft(message) => {
                if !is_voter || message.from != peer_id as u64 {
                    tracing::warn!(
                        peer_id,
                        from = message.from,
                        "raft frame from a node that is not this quorum's voter; closing"
                    );
                    return Err(InboundError::Refused(format!(
                        "raft frame from node {peer_id} (from {})",
                        message.from
                    )));
                }
                // A full inbox drops it; raft retransmits.
                let _ = inbox.try_send(ControllerEvent::Raft(message));
            }
            Frame::Request {
                correlation,
                request,
            } => {
                let (reply, answer) = sync_channel(1);
                let response = match inbox.try_send(ControllerEvent::Request { request, reply }) {
                    Ok(()) => answer
                        .recv_timeout(settings.connect_timeout)
                        .unwrap_or_else(|_| timed_out()),
                    Err(_) => timed_out(),
                };
                write_frame(
                    &mut stream,
                    &Frame::Response {
                        correlation,
                        response,
                    },
                )?;
            }
            _ => return Err(InboundError::Refused("unexpected frame".into())),
        }
    }
}

fn timed_out() -> ControllerResponse {
    ControllerResponse {
        error_code: ErrorCode::RequestTimedOut.code(),
        leader_hint: -1,
        broker_epoch: -1,
        view: ClusterView {
            controller_id: -1,
            brokers: Vec::new(),
        },
    }
}

/// Connects to `address` (any of its resolved addresses) within `timeout`.
pub fn connect(address: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(timeout))?;
                stream.set_read_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// The outbound side of raft: one bounded queue and writer thread per peer.
pub struct PeerSenders {
    queues: HashMap<u64, SyncSender<RaftMessage>>,
}

impl PeerSenders {
    pub fn start(
        own_id: NodeId,
        peers: &[(NodeId, String)],
        inbox: SyncSender<ControllerEvent>,
        settings: &NetSettings,
    ) -> std::io::Result<PeerSenders> {
        let mut queues = HashMap::new();
        for (peer_id, address) in peers {
            let (sender, receiver) = sync_channel(settings.peer_queue_max);
            let writer = PeerWriter {
                own_id,
                peer_id: *peer_id,
                address: address.clone(),
                inbox: inbox.clone(),
                settings: settings.clone(),
            };
            std::thread::Builder::new()
                .name(format!("ctl-out-{peer_id}"))
                .spawn(move || writer.run(receiver))?;
            queues.insert(*peer_id as u64, sender);
        }
        Ok(PeerSenders { queues })
    }

    /// Queues `message`; `false` when it was dropped (queue full or unknown peer), so the
    /// caller reports the peer unreachable.
    pub fn send(&self, message: RaftMessage) -> bool {
        let Some(queue) = self.queues.get(&message.to) else {
            return false;
        };
        match queue.try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

struct PeerWriter {
    own_id: NodeId,
    peer_id: NodeId,
    address: String,
    inbox: SyncSender<ControllerEvent>,
    settings: NetSettings,
}

impl PeerWriter {
    fn run(self, queue: Receiver<RaftMessage>) {
        let mut connection: Option<TcpStream> = None;
        let mut retry_at = Instant::now();
        while let Ok(message) = queue.recv() {
            if connection.is_none() {
                if Instant::now() < retry_at {
                    // Backing off: drop it (raft retransmits).
                    continue;
                }
                match self.open() {
                    Ok(stream) => connection = Some(stream),
                    Err(error) => {
                        tracing::debug!(peer = self.peer_id, address = %self.address, %error, "cannot reach controller peer");
                        retry_at = Instant::now() + self.settings.reconnect_backoff;
                        self.unreachable();
                        continue;
                    }
                }
            }
            if let Some(stream) = connection.as_mut()
                && let Err(error) = write_frame(stream, &Frame::Raft(message))
            {
                tracing::debug!(peer = self.peer_id, %error, "controller peer connection lost");
                connection = None;
                retry_at = Instant::now() + self.settings.reconnect_backoff;
                self.unreachable();
            }
        }
    }

    fn open(&self) -> Result<TcpStream, FrameError> {
        let mut stream = connect(&self.address, self.settings.connect_timeout)?;
        write_frame(
            &mut stream,
            &Frame::Hello {
                version: PROTOCOL_VERSION,
                node_id: self.own_id,
            },
        )?;
        Ok(stream)
    }

    fn unreachable(&self) {
        let _ = self
            .inbox
            .try_send(ControllerEvent::Unreachable(self.peer_id as u64));
    }
}
