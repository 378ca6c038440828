//! Calls to the active controller over the controller protocol: the one exchange (connect,
//! hello, request, response) that the broker lifecycle and brokers' forwarded requests share,
//! and `call_active_controller`, a blocking call bounded by a deadline that finds the active
//! controller among the voters.
//!
//! Owns: outbound request connections and the voter search. May import:
//! `super::{frame, transport, NetSettings}`, `crate::config::QuorumVoter`, `crate::model`.
//! Blocking std::net I/O: run it on a std thread or a shard's blocking pool, never on a shard
//! thread.
//! Invariants: a response is returned only if its correlation matches the request's; any
//! other answer or error drops the connection; `call_active_controller` never starts a
//! connect or read that could end past its deadline (each is bounded by the time left), and
//! never sleeps past it.

use super::NetSettings;
use super::frame::{
    ControllerRequest, ControllerResponse, Frame, FrameError, PROTOCOL_VERSION, read_frame,
    write_frame,
};
use super::transport::connect;
use crate::cluster::records::NodeId;
use crate::config::QuorumVoter;
use crate::model::ErrorCode;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A lazily opened connection to one voter of the quorum.
pub(super) struct ControllerConnection {
    /// Index of the voter it talks to.
    pub voter: usize,
    stream: Option<TcpStream>,
    correlation: u64,
}

impl ControllerConnection {
    pub fn new(voter: usize) -> ControllerConnection {
        ControllerConnection {
            voter,
            stream: None,
            correlation: 0,
        }
    }

    /// Talks to voter `voter` from now on (a new connection if it is another one).
    pub fn switch_to(&mut self, voter: usize) {
        if voter != self.voter {
            self.voter = voter;
            self.stream = None;
        }
    }

    /// Drops the connection and moves on to the next of `voters` voters.
    pub fn next_voter(&mut self, voters: usize) {
        self.stream = None;
        self.voter = (self.voter + 1) % voters.max(1);
    }

    /// The voter a NOT_CONTROLLER answer's `hint` names, or the next one when it names none
    /// of them.
    pub fn follow_hint(&mut self, voters: &[QuorumVoter], hint: NodeId) {
        let next = voters
            .iter()
            .position(|voter| voter.node_id == hint)
            .unwrap_or((self.voter + 1) % voters.len().max(1));
        self.switch_to(next);
    }

    /// Sends `request` to `address` as node `node_id` and reads its response, connecting
    /// (with a hello) first if needed. On an error the connection is dropped.
    pub fn exchange(
        &mut self,
        address: &str,
        node_id: NodeId,
        request: ControllerRequest,
        limits: &ExchangeLimits,
    ) -> Result<ControllerResponse, FrameError> {
        // Taken out, and put back only after a good answer.
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let mut stream = connect(address, limits.connect_timeout)?;
                let hello = Frame::Hello {
                    version: PROTOCOL_VERSION,
                    node_id,
                };
                write_frame(&mut stream, &hello)?;
                stream
            }
        };
        self.correlation += 1;
        let correlation = self.correlation;
        write_frame(
            &mut stream,
            &Frame::Request {
                correlation,
                request,
            },
        )?;
        stream.set_read_timeout(Some(limits.read_timeout))?;
        match read_frame(&mut stream, limits.frame_bytes_max)? {
            Frame::Response {
                correlation: answered,
                response,
            } if answered == correlation => {
                self.stream = Some(stream);
                Ok(response)
            }
            _ => Err(FrameError::Malformed("unexpected answer".into())),
        }
    }
}

/// The bounds of one exchange.
pub(super) struct ExchangeLimits {
    /// Of the connect, when the connection is opened (also its write timeout).
    pub connect_timeout: Duration,
    /// Of the wait for the response.
    pub read_timeout: Duration,
    /// `cluster.controller_frame_bytes_max`.
    pub frame_bytes_max: u64,
}

/// Where a broker finds the active controller.
#[derive(Debug, Clone)]
pub struct ControllerTarget {
    /// The caller's node id, for the hello.
    pub node_id: NodeId,
    /// The metadata quorum (`cluster.controller_quorum`).
    pub voters: Vec<QuorumVoter>,
    pub settings: NetSettings,
    /// The controller the caller last heard of (its cluster view), -1 if unknown.
    pub controller_hint: NodeId,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ControllerCallError {
    #[error("no active controller answered before the deadline")]
    Timeout,
    #[error("the controller quorum has no voters")]
    NoVoters,
}

impl ControllerCallError {
    /// The Kafka error code to answer a forwarded request with.
    pub fn error_code(&self) -> i16 {
        match self {
            ControllerCallError::Timeout => ErrorCode::RequestTimedOut.code(),
            ControllerCallError::NoVoters => ErrorCode::UnknownServerError.code(),
        }
    }
}

/// Sends `request` to the active controller and returns its response: the first answer whose
/// error code is neither NOT_CONTROLLER nor REQUEST_TIMED_OUT (0 included; a topic request's
/// per-topic errors are in `topics`). Starts at `controller_hint` if it is a voter, follows
/// NOT_CONTROLLER hints, moves to the next voter after a connection error, retries
/// REQUEST_TIMED_OUT, and backs off `reconnect_backoff` between attempts that made no
/// progress. Blocking; `Timeout` once `deadline` has passed.
pub fn call_active_controller(
    target: &ControllerTarget,
    request: ControllerRequest,
    deadline: Instant,
) -> Result<ControllerResponse, ControllerCallError> {
    let voters = &target.voters;
    if voters.is_empty() {
        return Err(ControllerCallError::NoVoters);
    }
    let first = voters
        .iter()
        .position(|voter| voter.node_id == target.controller_hint)
        .unwrap_or(0);
    let mut connection = ControllerConnection::new(first);
    let mut followed_hint = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ControllerCallError::Timeout);
        }
        let settings = &target.settings;
        let address = &voters[connection.voter].address;
        let limits = ExchangeLimits {
            connect_timeout: settings.connect_timeout.min(left),
            read_timeout: settings.read_timeout.min(left),
            frame_bytes_max: settings.frame_bytes_max,
        };
        let outcome = connection.exchange(address, target.node_id, request.clone(), &limits);
        let backoff = match outcome {
            Err(error) => {
                tracing::debug!(voter = %address, %error, "controller unreachable");
                connection.next_voter(voters.len());
                true
            }
            Ok(response) if response.error_code == ErrorCode::NotController.code() => {
                let before = connection.voter;
                connection.follow_hint(voters, response.leader_hint);
                // Follow a fresh hint at once, once; hints that lead around wait.
                let wait = followed_hint || connection.voter == before;
                followed_hint = true;
                wait
            }
            Ok(response) if response.error_code == ErrorCode::RequestTimedOut.code() => true,
            Ok(response) => return Ok(response),
        };
        if backoff {
            let left = deadline.saturating_duration_since(Instant::now());
            std::thread::sleep(settings.reconnect_backoff.min(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::frame::ClusterView;
    use std::net::TcpListener;

    /// Generous bound for steps that should take milliseconds.
    const SLACK: Duration = Duration::from_secs(2);

    fn settings() -> NetSettings {
        NetSettings {
            frame_bytes_max: 1 << 20,
            peer_queue_max: 4,
            connections_max: 8,
            connect_timeout: Duration::from_millis(500),
            reconnect_backoff: Duration::from_millis(20),
            read_timeout: Duration::from_secs(5),
        }
    }

    fn response(error_code: ErrorCode, leader_hint: NodeId) -> ControllerResponse {
        ControllerResponse {
            error_code: error_code.code(),
            leader_hint,
            broker_epoch: -1,
            view: ClusterView::default(),
            topics: Vec::new(),
            producer_ids: None,
            partition: None,
            partition_results: Vec::new(),
            metadata: None,
        }
    }

    /// A voter answering the requests of each accepted connection with `answers`, in turn
    /// (connection by connection, reading the hello first); it sends the requests it got.
    fn voter(
        answers: Vec<ControllerResponse>,
    ) -> (String, std::sync::mpsc::Receiver<ControllerRequest>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (seen, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let Ok(Frame::Hello { version, .. }) = read_frame(&mut stream, 1 << 20) else {
                    continue;
                };
                assert_eq!(version, PROTOCOL_VERSION);
                while let Ok(Frame::Request {
                    correlation,
                    request,
                }) = read_frame(&mut stream, 1 << 20)
                {
                    let _ = seen.send(request);
                    let Some(response) = answers.next() else {
                        return;
                    };
                    let frame = Frame::Response {
                        correlation,
                        response,
                    };
                    if write_frame(&mut stream, &frame).is_err() {
                        break;
                    }
                }
            }
        });
        (address, requests)
    }

    fn target(voters: &[(NodeId, &str)], hint: NodeId) -> ControllerTarget {
        ControllerTarget {
            node_id: 7,
            voters: voters
                .iter()
                .map(|(node_id, address)| QuorumVoter {
                    node_id: *node_id,
                    address: address.to_string(),
                })
                .collect(),
            settings: settings(),
            controller_hint: hint,
        }
    }

    fn delete(name: &str) -> ControllerRequest {
        ControllerRequest::DeleteTopics {
            names: vec![name.into()],
        }
    }

    /// An address nobody listens on (a listener bound and closed).
    fn unreachable_address() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[test]
    fn a_not_controller_hint_is_followed_and_timeouts_are_retried() {
        let (one, one_saw) = voter(vec![response(ErrorCode::NotController, 2)]);
        let mut done = response(ErrorCode::None, 2);
        done.broker_epoch = 5;
        let (two, two_saw) = voter(vec![response(ErrorCode::RequestTimedOut, 2), done.clone()]);
        let target = target(&[(1, &one), (2, &two)], 1);
        let deadline = Instant::now() + SLACK;
        let answer = call_active_controller(&target, delete("t"), deadline).unwrap();
        assert_eq!(answer, done);
        assert_eq!(one_saw.try_iter().collect::<Vec<_>>(), [delete("t")]);
        assert_eq!(
            two_saw.try_iter().count(),
            2,
            "REQUEST_TIMED_OUT is retried"
        );
    }

    #[test]
    fn an_unreachable_voter_is_skipped_and_other_errors_are_returned() {
        let (two, two_saw) = voter(vec![response(ErrorCode::InvalidRequest, 2)]);
        let dead = unreachable_address();
        let target = target(&[(1, &dead), (2, &two)], -1);
        let deadline = Instant::now() + SLACK;
        let answer = call_active_controller(&target, delete("u"), deadline).unwrap();
        assert_eq!(answer.error_code, ErrorCode::InvalidRequest.code());
        assert_eq!(two_saw.try_iter().collect::<Vec<_>>(), [delete("u")]);
    }

    #[test]
    fn the_deadline_is_honoured_when_nobody_answers() {
        // One voter accepts and reads but never answers, the other is not there.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_address = silent.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in silent.incoming() {
                held.push(stream);
            }
        });
        let dead = unreachable_address();
        let target = target(&[(1, &silent_address), (2, &dead)], 1);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let outcome = call_active_controller(&target, delete("v"), deadline);
        assert_eq!(outcome, Err(ControllerCallError::Timeout));
        let late = Instant::now().saturating_duration_since(deadline);
        assert!(late < Duration::from_millis(200), "returned {late:?} late");
        let empty = target_without_voters();
        assert_eq!(
            call_active_controller(&empty, delete("w"), deadline),
            Err(ControllerCallError::NoVoters)
        );
    }

    fn target_without_voters() -> ControllerTarget {
        target(&[], -1)
    }
}
