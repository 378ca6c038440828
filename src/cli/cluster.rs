//! `shardlog cluster describe`: the cluster as a broker reports it (DescribeCluster: cluster
//! id, controller, brokers with their racks) and, when the cluster runs a metadata quorum,
//! the quorum as its leader reports it (DescribeQuorum on `__cluster_metadata`: leader,
//! epoch, high watermark, each voter's log end offset and lag), as Kafka's
//! `kafka-metadata-quorum.sh describe --status --replication` does. librdkafka has no
//! DescribeQuorum, so this command speaks the Kafka protocol itself with kafka-protocol over
//! one short TCP connection per request.
//!
//! May import: `client` (`ConnectArgs`), `error`, `output`, kafka-protocol. Runs on the
//! caller's thread.

use super::client::ConnectArgs;
use super::error::CliError;
use super::output::{self, Format, Table};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

/// The largest response frame this command reads (a cluster description is small).
const RESPONSE_BYTES_MAX: usize = 16 << 20;
const DESCRIBE_CLUSTER_VERSION: i16 = 0;
const DESCRIBE_QUORUM_VERSION: i16 = 1;
const METADATA_TOPIC: &str = "__cluster_metadata";
/// Kafka's UNSUPPORTED_VERSION: a broker without a metadata quorum (a single shardlog
/// broker, a ZooKeeper-mode Kafka).
const UNSUPPORTED_VERSION: i16 = 35;
const CLIENT_ID: &str = "shardlog-cli";

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Filled from the top-level `--bootstrap-server` / `--request-timeout-ms`.
    #[arg(skip)]
    pub connect: ConnectArgs,
    /// Output: aligned text tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub format: Format,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers, and the metadata quorum's leader and voters.
    Describe,
}

pub fn run(args: &ClusterArgs) -> Result<(), CliError> {
    args.connect.probe()?;
    match args.command {
        ClusterCommand::Describe => describe(&args.connect, args.format),
    }
}

struct Broker {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
}

struct Voter {
    id: i32,
    log_end_offset: i64,
    last_fetch_timestamp: i64,
}

struct Quorum {
    leader: i32,
    epoch: i32,
    high_watermark: i64,
    voters: Vec<Voter>,
}

fn describe(connect: &ConnectArgs, format: Format) -> Result<(), CliError> {
    let request = DescribeClusterRequest::default();
    let cluster: DescribeClusterResponse = exchange_any(
        connect,
        &request,
        DESCRIBE_CLUSTER_VERSION,
        "describe cluster",
    )?;
    if cluster.error_code != 0 {
        return Err(CliError::failed(
            "describe cluster",
            format!("error code {}", cluster.error_code),
        ));
    }
    let brokers: Vec<Broker> = cluster
        .brokers
        .iter()
        .map(|b| Broker {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    let controller = cluster.controller_id.0;
    // DescribeQuorum is answered by the quorum's leader: the controller. A single broker
    // names itself; a cluster whose controller is not among the live brokers has no one to
    // ask (the cluster part is still printed, and the command fails).
    let quorum = match brokers.iter().find(|b| b.id == controller) {
        Some(b) if b.host.contains(':') => {
            describe_quorum(connect, &format!("[{}]:{}", b.host, b.port))
        }
        Some(b) => describe_quorum(connect, &format!("{}:{}", b.host, b.port)),
        None => Err(CliError::failed(
            "describe the metadata quorum",
            format!("the controller ({controller}) is not among the live brokers; try again"),
        )),
    };
    let (quorum, quorum_error) = match quorum {
        Ok(quorum) => (quorum, None),
        Err(error) => (None, Some(error)),
    };
    match format {
        Format::Json => output::print_json(&json!({
            "cluster_id": cluster.cluster_id.to_string(),
            "controller_id": controller,
            "brokers": brokers.iter().map(|b| json!({
                "id": b.id, "host": b.host, "port": b.port, "rack": b.rack,
            })).collect::<Vec<_>>(),
            "quorum": quorum.as_ref().map(|q| json!({
                "leader_id": q.leader,
                "leader_epoch": q.epoch,
                "high_watermark": q.high_watermark,
                "voters": q.voters.iter().map(|v| json!({
                    "id": v.id,
                    "log_end_offset": v.log_end_offset,
                    "lag": (q.high_watermark - v.log_end_offset).max(0),
                    "last_fetch_timestamp": v.last_fetch_timestamp,
                })).collect::<Vec<_>>(),
            })),
        })),
        Format::Text => {
            println!("Cluster id: {}", cluster.cluster_id);
            println!("Controller: {controller}");
            let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
            for b in &brokers {
                table.push(vec![
                    b.id.to_string(),
                    b.host.clone(),
                    b.port.to_string(),
                    b.rack.clone().unwrap_or_else(|| "-".to_string()),
                ]);
            }
            print!("{}", table.render());
            match &quorum {
                None if quorum_error.is_some() => println!("Metadata quorum: unavailable"),
                None => println!("Metadata quorum: none (a single broker)"),
                Some(q) => {
                    println!(
                        "Metadata quorum: leader {}, epoch {}, high watermark {}",
                        q.leader, q.epoch, q.high_watermark
                    );
                    let mut voters = Table::new(&["VOTER", "LOG END OFFSET", "LAG"]);
                    for v in &q.voters {
                        voters.push(vec![
                            v.id.to_string(),
                            v.log_end_offset.to_string(),
                            (q.high_watermark - v.log_end_offset).max(0).to_string(),
                        ]);
                    }
                    print!("{}", voters.render());
                }
            }
        }
    }
    quorum_error.map_or(Ok(()), Err)
}

/// The metadata quorum from its leader; `None` when the broker runs none.
fn describe_quorum(connect: &ConnectArgs, address: &str) -> Result<Option<Quorum>, CliError> {
    let mut partition = PartitionData::default();
    partition.partition_index = 0;
    let mut topic = TopicData::default();
    topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut request = DescribeQuorumRequest::default();
    request.topics = vec![topic];
    let response: DescribeQuorumResponse =
        exchange(connect, address, &request, DESCRIBE_QUORUM_VERSION)?;
    if response.error_code == UNSUPPORTED_VERSION {
        return Ok(None);
    }
    let failed = |detail: String| CliError::failed("describe the metadata quorum", detail);
    if response.error_code != 0 {
        return Err(failed(format!("error code {}", response.error_code)));
    }
    let Some(partition) = response
        .topics
        .iter()
        .find(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
    else {
        return Err(failed(format!(
            "no {METADATA_TOPIC} partition 0 in the answer"
        )));
    };
    if partition.error_code != 0 {
        return Err(failed(format!(
            "{address} answered error code {} (leadership may be moving; try again)",
            partition.error_code
        )));
    }
    Ok(Some(Quorum {
        leader: partition.leader_id.0,
        epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: partition
            .current_voters
            .iter()
            .map(|v| Voter {
                id: v.replica_id.0,
                log_end_offset: v.log_end_offset,
                last_fetch_timestamp: v.last_fetch_timestamp,
            })
            .collect(),
    }))
}

/// Sends `request` to the first bootstrap server that answers (as librdkafka would pick
/// one); the last error if none does.
pub(super) fn exchange_any<R: Request>(
    connect: &ConnectArgs,
    request: &R,
    version: i16,
    operation: &str,
) -> Result<R::Response, CliError> {
    let mut last_error = None;
    for server in connect
        .bootstrap_server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match exchange(connect, server, request, version) {
            Ok(answer) => return Ok(answer),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| CliError::failed(operation, "no bootstrap server")))
}

/// Sends `request` at `version` on a new connection to `address` and decodes the answer.
pub(super) fn exchange<R: Request>(
    connect: &ConnectArgs,
    address: &str,
    request: &R,
    version: i16,
) -> Result<R::Response, CliError> {
    let operation = format!("api {} v{version} to {address}", R::KEY);
    let failed = |detail: String| CliError::failed(&operation, detail);
    let timeout = connect.request_timeout();
    // Every address the name resolves to, in turn (`localhost` may give ::1 first).
    let mut connected = Err(failed("no address".to_string()));
    for socket in address
        .to_socket_addrs()
        .map_err(|e| failed(e.to_string()))?
    {
        connected = TcpStream::connect_timeout(&socket, timeout)
            .map_err(|e| failed(format!("{socket}: {e}")));
        if connected.is_ok() {
            break;
        }
    }
    let mut stream = connected?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| failed(e.to_string()))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = BytesMut::new();
    header
        .encode(&mut frame, R::header_version(version))
        .map_err(|e| failed(e.to_string()))?;
    request
        .encode(&mut frame, version)
        .map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::with_capacity(frame.len() + 4);
    bytes.put_i32(frame.len() as i32);
    bytes.extend_from_slice(&frame);
    stream
        .write_all(&bytes)
        .map_err(|e| failed(e.to_string()))?;
    let mut length = [0u8; 4];
    stream
        .read_exact(&mut length)
        .map_err(|e| failed(format!("no answer: {e}")))?;
    let length = i32::from_be_bytes(length);
    let length = usize::try_from(length)
        .ok()
        .filter(|&n| n <= RESPONSE_BYTES_MAX)
        .ok_or_else(|| failed(format!("answer of {length} bytes")))?;
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| failed(format!("truncated answer: {e}")))?;
    let mut body = Bytes::from(body);
    let answered = ResponseHeader::decode(&mut body, R::Response::header_version(version))
        .map_err(|e| failed(e.to_string()))?;
    if answered.correlation_id != 1 {
        return Err(failed(format!(
            "answer to correlation id {}",
            answered.correlation_id
        )));
    }
    let response = R::Response::decode(&mut body, version).map_err(|e| failed(e.to_string()))?;
    if body.has_remaining() {
        return Err(failed(format!("{} trailing bytes", body.remaining())));
    }
    Ok(response)
}
