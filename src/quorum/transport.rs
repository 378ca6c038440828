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
            cluster_id: None,
            controller_id: -1,
            brokers: Vec::new(),
            quorum: None,
            topics: std::sync::Arc::default(),
        },
        topics: Vec::new(),
        producer_ids: None,
        partition: None,
        partition_results: Vec::new(),
        metadata: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::frame::ControllerRequest;
    use std::io::Read;

    fn settings() -> NetSettings {
        NetSettings {
            frame_bytes_max: 1 << 20,
            peer_queue_max: 4,
            connections_max: 8,
            connect_timeout: Duration::from_secs(5),
            reconnect_backoff: Duration::from_millis(10),
            read_timeout: Duration::from_secs(5),
        }
    }

    fn hello(stream: &mut TcpStream, node_id: NodeId) {
        write_frame(
            stream,
            &Frame::Hello {
                version: PROTOCOL_VERSION,
                node_id,
            },
        )
        .unwrap();
    }

    fn raft_from(from: u64) -> Frame {
        Frame::Raft(RaftMessage {
            from,
            to: 1,
            term: 3,
            ..Default::default()
        })
    }

    /// The peer closed the connection (EOF or reset), within the test's read timeout.
    fn assert_closed(stream: &mut TcpStream) {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("connection not closed: {other:?}"),
        }
    }

    #[test]
    fn raft_frames_only_from_voters_and_requests_from_anyone() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (inbox, events) = sync_channel(16);
        spawn_listener(listener, Arc::new(vec![1, 2]), inbox, settings()).unwrap();

        // A voter's raft frame reaches the controller thread.
        let mut voter = connect(&address, Duration::from_secs(5)).unwrap();
        hello(&mut voter, 2);
        write_frame(&mut voter, &raft_from(2)).unwrap();
        let event = events.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(event, ControllerEvent::Raft(m) if m.from == 2));

        // A voter's hello with another node's `from` is refused.
        write_frame(&mut voter, &raft_from(1)).unwrap();
        assert_closed(&mut voter);

        // A node outside the quorum may not send raft frames.
        let mut outsider = connect(&address, Duration::from_secs(5)).unwrap();
        hello(&mut outsider, 9);
        write_frame(&mut outsider, &raft_from(9)).unwrap();
        assert_closed(&mut outsider);

        // A frame before the hello is refused.
        let mut rude = connect(&address, Duration::from_secs(5)).unwrap();
        write_frame(&mut rude, &raft_from(1)).unwrap();
        assert_closed(&mut rude);

        // A broker-only node's request is passed on and answered on its connection.
        let mut broker = connect(&address, Duration::from_secs(5)).unwrap();
        hello(&mut broker, 9);
        let request = ControllerRequest::Heartbeat {
            node_id: 9,
            broker_epoch: 4,
            caught_up: true,
            want_fence: false,
        };
        write_frame(
            &mut broker,
            &Frame::Request {
                correlation: 5,
                request: request.clone(),
            },
        )
        .unwrap();
        let ControllerEvent::Request {
            request: received,
            reply,
        } = events.recv_timeout(Duration::from_secs(5)).unwrap()
        else {
            panic!("expected a request");
        };
        assert_eq!(received, request);
        let mut answer = timed_out();
        answer.error_code = 0;
        answer.broker_epoch = 4;
        reply.send(answer.clone()).unwrap();
        let frame = read_frame(&mut broker, 1 << 20).unwrap();
        assert_eq!(
            frame,
            Frame::Response {
                correlation: 5,
                response: answer
            }
        );
        // Nothing from the refused connections reached the controller thread.
        assert!(events.try_recv().is_err());
    }

    #[test]
    fn an_unreachable_peer_is_reported_and_unknown_peers_are_refused() {
        // Nobody listens on port 1: the writer's connect fails and it reports the peer.
        let (inbox, events) = sync_channel(64);
        let peers =
            PeerSenders::start(1, &[(2, "127.0.0.1:1".to_string())], inbox, &settings()).unwrap();
        let message = RaftMessage {
            from: 1,
            to: 2,
            term: 1,
            ..Default::default()
        };
        assert!(peers.send(message), "the queue has room");
        let unreachable = events.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(unreachable, ControllerEvent::Unreachable(2)));
        let unknown = RaftMessage {
            to: 7,
            ..Default::default()
        };
        assert!(!peers.send(unknown), "a message to a non-peer is refused");
    }
}
