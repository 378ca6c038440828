//! The controller protocol's frames (docs/cluster.md "Controller protocol"): a 4-byte
//! big-endian length, then a 1-byte kind and its body. Pure encode/decode plus blocking
//! read/write on any `Read`/`Write`.
//!
//! Owns: the wire format of hello, raft, request and response frames. May import:
//! `crate::cluster::records` (ids), the `raft` crate's protobuf `Message`. No threads.
//! Invariants: decoding untrusted bytes never panics; a frame longer than the configured
//! limit is refused before its body is read.

use super::topics::ClusterTopics;
use crate::cluster::records::{NodeId, Uuid};
use protobuf::Message as _;
use raft::prelude::Message as RaftMessage;
use std::io::{Read, Write};
use std::sync::Arc;

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_REQUEST: u8 = 3;
const KIND_RESPONSE: u8 = 4;
const REQUEST_REGISTER: u8 = 1;
const REQUEST_HEARTBEAT: u8 = 2;
/// Version of the hello frame; a peer speaking another is refused. 1: Register and Response
/// carry the cluster id.
pub const PROTOCOL_VERSION: u16 = 1;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes exceeds cluster.controller_frame_bytes_max ({max})")]
    TooLarge { size: u64, max: u64 },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// A broker endpoint as the controller protocol carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// What a broker sees of the cluster: the live (unfenced) brokers and the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    /// The cluster id in the metadata log, once the first active controller wrote it.
    pub cluster_id: Option<Uuid>,
    /// The raft leader, -1 when none is known.
    pub controller_id: NodeId,
    pub brokers: Vec<BrokerEndpoint>,
    /// The metadata quorum as its raft leader sees it; `Some` only on the leader's own
    /// shards (never on the wire: DescribeQuorum is answered by the leader).
    pub quorum: Option<QuorumState>,
    /// The topics of the applied image (never on the wire; empty on a broker-only node,
    /// which does not replicate the metadata log yet).
    pub topics: Arc<ClusterTopics>,
}

/// The metadata quorum seen by its raft leader, for DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumState {
    pub leader_id: NodeId,
    /// The raft term.
    pub leader_epoch: i64,
    /// The raft commit index.
    pub high_watermark: i64,
    pub voters: Vec<VoterProgress>,
}

/// One voter as the leader tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterProgress {
    pub node_id: NodeId,
    /// The raft matched index (the leader's own last index for itself).
    pub log_end_offset: i64,
    /// Wall-clock ms of the last raft message from it, -1 if none yet.
    pub last_fetch_timestamp: i64,
    /// Wall-clock ms when its matched index last reached the commit index, -1 if never.
    pub last_caught_up_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerRequest {
    Register {
        node_id: NodeId,
        incarnation_id: Uuid,
        endpoint: BrokerEndpoint,
        /// The cluster this node's data dir belongs to, if it has joined one before.
        cluster_id: Option<Uuid>,
    },
    Heartbeat {
        node_id: NodeId,
        broker_epoch: i64,
        caught_up: bool,
        want_fence: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerResponse {
    /// Kafka error code (0 = none; NOT_CONTROLLER with `leader_hint`).
    pub error_code: i16,
    /// The controller the answering node knows of, -1 if none.
    pub leader_hint: NodeId,
    pub broker_epoch: i64,
    pub view: ClusterView,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello {
        version: u16,
        node_id: NodeId,
    },
    Raft(RaftMessage),
    Request {
        correlation: u64,
        request: ControllerRequest,
    },
    Response {
        correlation: u64,
        response: ControllerResponse,
    },
}

impl Frame {
    /// The frame with its length prefix.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = vec![0u8; 4];
        match self {
            Frame::Hello { version, node_id } => {
                out.push(KIND_HELLO);
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&node_id.to_be_bytes());
            }
            Frame::Raft(message) => {
                out.push(KIND_RAFT);
                let bytes = message
                    .write_to_bytes()
                    .map_err(|e| FrameError::Malformed(e.to_string()))?;
                out.extend_from_slice(&bytes);
            }
            Frame::Request {
                correlation,
                request,
            } => {
                out.push(KIND_REQUEST);
                out.extend_from_slice(&correlation.to_be_bytes());
                encode_request(request, &mut out);
            }
            Frame::Response {
                correlation,
                response,
            } => {
                out.push(KIND_RESPONSE);
                out.extend_from_slice(&correlation.to_be_bytes());
                out.extend_from_slice(&response.error_code.to_be_bytes());
                out.extend_from_slice(&response.leader_hint.to_be_bytes());
                out.extend_from_slice(&response.broker_epoch.to_be_bytes());
                encode_optional_uuid(response.view.cluster_id.as_ref(), &mut out);
                out.extend_from_slice(&response.view.controller_id.to_be_bytes());
                out.extend_from_slice(&(response.view.brokers.len() as u32).to_be_bytes());
                for broker in &response.view.brokers {
                    encode_endpoint(broker, &mut out);
                }
            }
        }
        let length = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&length.to_be_bytes());
        Ok(out)
    }

    /// Decodes a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Frame, FrameError> {
        let mut reader = Reader(body);
        let frame = match reader.u8()? {
            KIND_HELLO => Frame::Hello {
                version: reader.u16()?,
                node_id: reader.i32()?,
            },
            KIND_RAFT => {
                let message = RaftMessage::parse_from_bytes(reader.0)
                    .map_err(|e| FrameError::Malformed(format!("raft message: {e}")))?;
                reader.0 = &[];
                Frame::Raft(message)
            }
            KIND_REQUEST => Frame::Request {
                correlation: reader.u64()?,
                request: decode_request(&mut reader)?,
            },
            KIND_RESPONSE => {
                let correlation = reader.u64()?;
                let error_code = reader.i16()?;
                let leader_hint = reader.i32()?;
                let broker_epoch = reader.i64()?;
                let cluster_id = decode_optional_uuid(&mut reader)?;
                let controller_id = reader.i32()?;
                let count = reader.u32()? as usize;
                // Each endpoint takes at least 10 bytes: refuse counts the body cannot hold.
                if count > reader.0.len() / 10 {
                    return Err(FrameError::Malformed(format!("{count} brokers")));
                }
                let mut brokers = Vec::with_capacity(count);
                for _ in 0..count {
                    brokers.push(decode_endpoint(&mut reader)?);
                }
                Frame::Response {
                    correlation,
                    response: ControllerResponse {
                        error_code,
                        leader_hint,
                        broker_epoch,
                        view: ClusterView {
                            cluster_id,
                            controller_id,
                            brokers,
                            quorum: None,
                            topics: Arc::default(),
                        },
                    },
                }
            }
            kind => return Err(FrameError::Malformed(format!("unknown frame kind {kind}"))),
        };
        if !reader.0.is_empty() {
            return Err(FrameError::Malformed(format!(
                "{} trailing bytes",
                reader.0.len()
            )));
        }
        Ok(frame)
    }
}

fn encode_request(request: &ControllerRequest, out: &mut Vec<u8>) {
    match request {
        ControllerRequest::Register {
            node_id,
            incarnation_id,
            endpoint,
            cluster_id,
        } => {
            out.push(REQUEST_REGISTER);
            out.extend_from_slice(&node_id.to_be_bytes());
            out.extend_from_slice(incarnation_id);
            encode_endpoint(endpoint, out);
            encode_optional_uuid(cluster_id.as_ref(), out);
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
    }
}

fn decode_request(reader: &mut Reader<'_>) -> Result<ControllerRequest, FrameError> {
    match reader.u8()? {
        REQUEST_REGISTER => {
            let node_id = reader.i32()?;
            let mut incarnation_id = [0u8; 16];
            incarnation_id.copy_from_slice(reader.take(16)?);
            let endpoint = decode_endpoint(reader)?;
            Ok(ControllerRequest::Register {
                node_id,
                incarnation_id,
                endpoint,
                cluster_id: decode_optional_uuid(reader)?,
            })
        }
        REQUEST_HEARTBEAT => Ok(ControllerRequest::Heartbeat {
            node_id: reader.i32()?,
            broker_epoch: reader.i64()?,
            caught_up: reader.u8()? != 0,
            want_fence: reader.u8()? != 0,
        }),
        other => Err(FrameError::Malformed(format!(
            "unknown request type {other}"
        ))),
    }
}

/// `0` for none, or `1` and the 16 bytes.
fn encode_optional_uuid(uuid: Option<&Uuid>, out: &mut Vec<u8>) {
    match uuid {
        None => out.push(0),
        Some(uuid) => {
            out.push(1);
            out.extend_from_slice(uuid);
        }
    }
}

fn decode_optional_uuid(reader: &mut Reader<'_>) -> Result<Option<Uuid>, FrameError> {
    match reader.u8()? {
        0 => Ok(None),
        1 => {
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(reader.take(16)?);
            Ok(Some(uuid))
        }
        flag => Err(FrameError::Malformed(format!("uuid flag {flag}"))),
    }
}

fn encode_string(text: &str, out: &mut Vec<u8>) {
    let bytes = &text.as_bytes()[..text.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as i16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn encode_endpoint(endpoint: &BrokerEndpoint, out: &mut Vec<u8>) {
    out.extend_from_slice(&endpoint.node_id.to_be_bytes());
    encode_string(&endpoint.host, out);
    out.extend_from_slice(&endpoint.port.to_be_bytes());
    match &endpoint.rack {
        Some(rack) => encode_string(rack, out),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn decode_endpoint(reader: &mut Reader<'_>) -> Result<BrokerEndpoint, FrameError> {
    Ok(BrokerEndpoint {
        node_id: reader.i32()?,
        host: reader.string()?.unwrap_or_default(),
        port: reader.u16()?,
        rack: reader.string()?,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Malformed("truncated".to_string()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, FrameError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, FrameError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, FrameError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<Option<String>, FrameError> {
        let length = self.i16()?;
        if length < 0 {
            return Ok(None);
        }
        let bytes = self.take(length as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| FrameError::Malformed("string is not UTF-8".to_string()))
    }
}

/// Reads one frame; `max` bounds its declared length before anything is allocated.
pub fn read_frame(stream: &mut impl Read, max: u64) -> Result<Frame, FrameError> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let size = u64::from(u32::from_be_bytes(length));
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body)?;
    Frame::decode(&body)
}

pub fn write_frame(stream: &mut impl Write, frame: &Frame) -> Result<(), FrameError> {
    stream.write_all(&frame.encode()?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frame: Frame) {
        let bytes = frame.encode().unwrap();
        let decoded = read_frame(&mut bytes.as_slice(), 1 << 20).unwrap();
        assert_eq!(decoded, frame);
    }

    fn endpoint(node_id: i32, rack: Option<&str>) -> BrokerEndpoint {
        BrokerEndpoint {
            node_id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: rack.map(str::to_string),
        }
    }

    #[test]
    fn every_frame_kind_roundtrips() {
        roundtrip(Frame::Hello {
            version: PROTOCOL_VERSION,
            node_id: 3,
        });
        let message = RaftMessage {
            from: 1,
            to: 2,
            term: 7,
            ..Default::default()
        };
        roundtrip(Frame::Raft(message));
        roundtrip(Frame::Request {
            correlation: 9,
            request: ControllerRequest::Register {
                node_id: 2,
                incarnation_id: [7; 16],
                endpoint: endpoint(2, Some("r1")),
                cluster_id: Some([4; 16]),
            },
        });
        roundtrip(Frame::Request {
            correlation: 12,
            request: ControllerRequest::Register {
                node_id: 2,
                incarnation_id: [7; 16],
                endpoint: endpoint(2, None),
                cluster_id: None,
            },
        });
        roundtrip(Frame::Request {
            correlation: 10,
            request: ControllerRequest::Heartbeat {
                node_id: 2,
                broker_epoch: 5,
                caught_up: true,
                want_fence: false,
            },
        });
        roundtrip(Frame::Response {
            correlation: 11,
            response: ControllerResponse {
                error_code: 41,
                leader_hint: 3,
                broker_epoch: -1,
                view: ClusterView {
                    cluster_id: Some([9; 16]),
                    controller_id: 3,
                    brokers: vec![endpoint(1, None), endpoint(2, Some("r"))],
                    quorum: None,
                    topics: Arc::default(),
                },
            },
        });
    }

    #[test]
    fn oversized_truncated_and_garbage_frames_are_errors_not_panics() {
        let big = (1u32 << 30).to_be_bytes();
        assert!(matches!(
            read_frame(&mut big.as_slice(), 1024),
            Err(FrameError::TooLarge { .. })
        ));
        let frame = Frame::Request {
            correlation: 1,
            request: ControllerRequest::Register {
                node_id: 1,
                incarnation_id: [1; 16],
                endpoint: endpoint(1, Some("rack")),
                cluster_id: Some([2; 16]),
            },
        }
        .encode()
        .unwrap();
        for cut in 5..frame.len() {
            assert!(Frame::decode(&frame[4..cut]).is_err(), "cut at {cut}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = Frame::decode(&bytes);
        }
        // A response claiming more brokers than its body could hold is refused up front.
        let mut body = vec![KIND_RESPONSE];
        body.extend_from_slice(&[0; 8 + 2 + 4 + 8 + 1 + 4]);
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Frame::decode(&body).is_err());
    }
}
