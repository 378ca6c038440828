//! One client connection: a reader that splits frames and dispatches them in order, and a
//! writer that sends responses in the same order. Produce's stage 1 (append or enqueue on
//! the owner shard) runs inline in the reader, so a connection's appends keep their order;
//! stage 2 (waiting for acks) runs as a task, so requests pipeline. SSL listeners' connections
//! do their TLS handshake first (`tls_handshake`) and write responses through TLS; plaintext
//! ones keep the vectored, copy-free write path.

use super::api_table::{self, ResponseFuture};
use super::authorize;
use super::context::{ConnectionState, HandlerError, RequestContext, ResponseFrame};
use super::handlers::{api_versions, produce};
use super::listeners::Listener;
use super::read_buffer::ReadBuffer;
use super::request_memory::{FramePermit, HeldBytes};
use super::sasl_session::{Gate, SaslSession};
use super::socket_writer::{write_chunks, write_chunks_copied};
use super::tls_handshake;
use crate::protocol::ProtocolError;
use crate::protocol::codec::{RequestEnvelope, decode_produce_request, decode_request};
use crate::protocol::frame::{FrameError, FrameStatus, SIZE_PREFIX_BYTES};
use crate::security::SecurityContext;
use crate::security::acl::AclOperation;
use crate::shard::Shard;
use crate::shard::memory::Reservation;
use crate::shard::metrics::{DelayReason, FetchStage, ProduceStage, RejectReason};
use bytes::{Bytes, BytesMut};
use futures::future::{Either, select};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::Instrument;

type PendingResponse = glommio::Task<Result<Option<ResponseFrame>, HandlerError>>;

/// A dispatched request on its way to the writer, with what it is charged against the
/// connection's response budget: its frame size until its response exists (responses are
/// seldom larger than requests, except fetches, which are capped by that budget anyway),
/// then the response's size until it is written.
struct Queued {
    response: PendingResponse,
    charge: Reservation,
    /// The request's API key (times the response write of Produce and Fetch).
    api_key: Option<i16>,
}

/// Records the socket write of a Produce or Fetch response as its `response_write` stage.
fn record_response_write(shard: &Shard, api_key: Option<i16>, seconds: f64) {
    match api_key {
        Some(key) if key == ApiKey::Produce as i16 => shard
            .metrics
            .produce_stage(ProduceStage::ResponseWrite, seconds),
        Some(key) if key == ApiKey::Fetch as i16 => shard
            .metrics
            .fetch_stage(FetchStage::ResponseWrite, seconds),
        _ => {}
    }
}

#[derive(Debug, Error)]
enum CloseReason {
    #[error("broker is shutting down")]
    Shutdown,
    #[error("socket read failed: {0}")]
    Read(std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("unsupported API key {api_key}")]
    UnknownApi { api_key: i16 },
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error(transparent)]
    Malformed(#[from] ProtocolError),
    #[error("response writer has stopped")]
    WriterGone,
    #[error("a request frame did not arrive whole within server.request_read_timeout_ms")]
    FrameTimeout,
    #[error("idle for server.connections_max_idle_ms")]
    Idle,
    #[error("API key {api_key} before a SASL login")]
    NotAuthenticated { api_key: i16 },
    #[error("the SASL session ended (sasl.connections_max_reauth_ms) without a re-login")]
    SessionExpired,
    #[error("SASL login failed or out of order")]
    SaslFailed,
    #[error(
        "API key {api_key} has no per-resource ACL checks and the principal lacks ALTER on the cluster"
    )]
    Unauthorized { api_key: i16 },
}

/// Serves one accepted connection of `listener`: a PLAINTEXT one at once, an SSL one after
/// its TLS handshake (closed if the handshake fails or outlasts `tls.handshake_timeout_ms`).
pub async fn serve_connection(shard: Rc<Shard>, stream: TcpStream, listener: Rc<Listener>) {
    let peer_address = stream.peer_addr().ok();
    let peer = peer_address.map(|a| a.to_string()).unwrap_or_default();
    let client_host = peer_address
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    let span = tracing::debug_span!("connection", shard = %shard.id, %peer, listener = %listener.spec.name);
    async move {
        let fd = stream.as_raw_fd();
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let spec = &listener.spec;
        let security = SecurityContext::anonymous(&spec.name, spec.protocol);
        let Some(tls) = &listener.tls else {
            let transport = Transport::Plain { fd };
            return serve_stream(shard, stream, transport, &client_host, security).await;
        };
        match tls_handshake::accept(&shard, tls, stream, security).await {
            Ok((stream, security)) => {
                let transport = Transport::Tls { fd };
                serve_stream(shard, stream, transport, &client_host, security).await
            }
            Err(reason) => {
                tracing::debug!(%reason, "TLS handshake did not complete; connection closed");
                shard.metrics.rejected(reason.reject_reason());
            }
        }
    }
    .instrument(span)
    .await
}

/// How responses reach the socket.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// Straight to the descriptor with vectored writes: record `Bytes` are never copied.
    Plain { fd: RawFd },
    /// Through TLS (which encrypts, so copies anyway); `fd` only to shut the socket down.
    Tls { fd: RawFd },
}

impl Transport {
    fn fd(self) -> RawFd {
        match self {
            Transport::Plain { fd } | Transport::Tls { fd } => fd,
        }
    }
}

/// Serves requests on an established connection (plaintext, or TLS after its handshake).
async fn serve_stream<S>(
    shard: Rc<Shard>,
    stream: S,
    transport: Transport,
    client_host: &str,
    security: SecurityContext,
) where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let (mut reader, writer) = futures_lite::io::split(stream);
    let server = &shard.config.server;
    let (queue, responses) = local_channel::new_bounded(server.connection_inflight_requests_max);
    let sasl = SaslSession::new(&shard.config.sasl, security.protocol);
    let connection = ConnectionState::new(server.connection_response_bytes_max, security, sasl);
    let writer_task: JoinHandle<()> = glommio::spawn_local(write_responses(
        shard.clone(),
        transport,
        writer,
        responses,
        connection.clone(),
    ))
    .detach();
    shard.metrics.connection_opened();
    let socket = Socket {
        reader: &mut reader,
        fd: transport.fd(),
    };
    let outcome = read_requests(&shard, socket, queue, client_host, &connection).await;
    match &outcome {
        Ok(()) => tracing::debug!("client closed the connection"),
        Err(CloseReason::WriterGone) | Err(CloseReason::Shutdown) => {}
        // A client that exits resets its connections: normal, not worth a warning.
        Err(reason @ (CloseReason::Read(_) | CloseReason::Idle | CloseReason::SaslFailed)) => {
            tracing::debug!(%reason, "closing connection")
        }
        Err(reason) => tracing::warn!(%reason, "closing connection"),
    }
    writer_task.await;
    if let Err(reason) = &outcome
        && let Some(reject) = reject_reason(reason)
    {
        shard.metrics.rejected(reject);
    }
    let label = connection.closed_by.get().unwrap_or(close_label(&outcome));
    shard.metrics.connection_closed(label);
}

/// The metrics label of a connection's end.
fn close_label(outcome: &Result<(), CloseReason>) -> &'static str {
    match outcome {
        Ok(()) => "client_closed",
        Err(CloseReason::Shutdown) => "shutdown",
        Err(CloseReason::Read(_)) => "read_error",
        Err(CloseReason::Frame(_)) => "bad_frame",
        Err(CloseReason::UnknownApi { .. }) => "unknown_api",
        Err(CloseReason::UnsupportedVersion { .. }) => "unsupported_version",
        Err(CloseReason::Malformed(_)) => "malformed_request",
        Err(CloseReason::WriterGone) => "write_failed",
        Err(CloseReason::FrameTimeout) => "request_read_timeout",
        Err(CloseReason::Idle) => "idle_timeout",
        Err(CloseReason::NotAuthenticated { .. }) => "sasl_not_authenticated",
        Err(CloseReason::SessionExpired) => "sasl_session_expired",
        Err(CloseReason::SaslFailed) => "sasl_failed",
        Err(CloseReason::Unauthorized { .. }) => "unauthorized",
    }
}

/// The reject reason of a connection closed for its client's fault, if it was.
fn reject_reason(reason: &CloseReason) -> Option<RejectReason> {
    match reason {
        CloseReason::Frame(FrameError::TooLarge { .. }) => Some(RejectReason::RequestTooLarge),
        CloseReason::Frame(FrameError::NegativeSize { .. }) => Some(RejectReason::MalformedFrame),
        CloseReason::UnknownApi { .. } => Some(RejectReason::UnknownApi),
        CloseReason::UnsupportedVersion { .. } => Some(RejectReason::UnsupportedVersion),
        CloseReason::Malformed(_) => Some(RejectReason::MalformedRequest),
        CloseReason::FrameTimeout => Some(RejectReason::RequestReadTimeout),
        CloseReason::NotAuthenticated { .. } => Some(RejectReason::SaslNotAuthenticated),
        CloseReason::SessionExpired => Some(RejectReason::SaslSessionExpired),
        CloseReason::Unauthorized { .. } => Some(RejectReason::Unauthorized),
        // Counted by the SASL handlers, which know why.
        CloseReason::SaslFailed => None,
        CloseReason::Shutdown
        | CloseReason::Read(_)
        | CloseReason::WriterGone
        | CloseReason::Idle => None,
    }
}

/// The timing limits a connection's reader enforces.
#[derive(Debug, Clone, Copy)]
struct ReadLimits {
    frame_bytes_max: usize,
    /// A frame must arrive whole within this time of its first byte.
    frame_timeout: Duration,
    /// With nothing in flight, a connection that receives nothing this long is closed.
    idle_timeout: Duration,
}

impl ReadLimits {
    fn of(config: &crate::config::ServerConfig) -> ReadLimits {
        ReadLimits {
            frame_bytes_max: config.request_bytes_max as usize,
            frame_timeout: Duration::from_millis(config.request_read_timeout_ms),
            idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
        }
    }
}

/// The read side of a connection, with its descriptor (to ask how many bytes are waiting).
struct Socket<'a, R> {
    reader: &'a mut R,
    fd: RawFd,
}

/// Bytes waiting in the socket's receive queue (FIONREAD); 0 if unknown. Only sizes the read
/// buffer's growth (bytes that have arrived, never a declared size).
fn queued_bytes(fd: RawFd) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points to a live local.
    let result = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
    if result == 0 {
        usize::try_from(queued).unwrap_or(0)
    } else {
        0
    }
}

/// Reads frames and dispatches them in order. The socket is read straight into the request
/// buffer (`ReadBuffer`), and each frame is its own region of it. Memory is reserved as
/// bytes arrive (never for a frame's declared size; see `request_memory`): `held` covers
/// exactly the buffered bytes between reads, and a complete frame takes its share along to
/// its handler. A connection whose unwritten responses fill `connection_response_bytes_max`
/// reads no further request until its client takes some.
async fn read_requests<R: futures_lite::AsyncRead + Unpin>(
    shard: &Rc<Shard>,
    socket: Socket<'_, R>,
    queue: LocalSender<Queued>,
    client_host: &str,
    connection: &Rc<ConnectionState>,
) -> Result<(), CloseReason> {
    let limits = ReadLimits::of(&shard.config.server);
    let Socket { reader, fd } = socket;
    let mut buffer = ReadBuffer::new();
    let mut held = HeldBytes::new(shard);
    // Time the client has taken so far to send the frame at the front of `buffer`: only
    // time spent waiting for its bytes counts, not time the broker was not reading.
    let mut frame_waited = Duration::ZERO;
    loop {
        match buffer.take_frame(limits.frame_bytes_max)? {
            FrameStatus::Complete(frame) => {
                let frame_bytes = (frame.len() + SIZE_PREFIX_BYTES) as u64;
                let permit = held.take_frame(frame_bytes);
                frame_waited = Duration::ZERO;
                wait_until_responses_taken(shard, connection).await?;
                let charge = connection.response_memory.force(frame_bytes);
                let api_key = RequestEnvelope::peek(&frame).ok().map(|e| e.api_key);
                let response = dispatch(shard, frame, client_host, permit, connection).await?;
                let pending = Queued {
                    response,
                    charge,
                    api_key,
                };
                if queue.is_full() {
                    shard.metrics.delayed(DelayReason::InflightLimit);
                }
                connection.in_flight.set(connection.in_flight.get() + 1);
                queue
                    .send(pending)
                    .await
                    .map_err(|_| CloseReason::WriterGone)?;
                if connection.sasl.borrow().failed() {
                    // The answer is queued; the writer sends it, then closes.
                    return Err(CloseReason::SaslFailed);
                }
            }
            FrameStatus::NeedBytes(needed) => {
                let frame_deadline =
                    (!buffer.is_empty()).then(|| limits.frame_timeout.saturating_sub(frame_waited));
                let started = Instant::now();
                let room = buffer.room(needed, || queued_bytes(fd));
                let read =
                    read_some(shard, reader, room, frame_deadline, connection, &limits).await?;
                if !buffer.is_empty() {
                    frame_waited += started.elapsed();
                }
                if read == 0 {
                    return Ok(());
                }
                shard.metrics.bytes_received(read);
                connection.touch();
                buffer.commit(read);
                let front_frame_bytes = front_frame_size(buffer.buffered());
                if !held.reserve_arrived(read, front_frame_bytes).await {
                    return Err(CloseReason::Shutdown);
                }
                debug_assert_eq!(held.bytes(), buffer.len() as u64);
            }
        }
    }
}

/// The size the frame at the front declares, once its 4-byte prefix is known.
fn front_frame_size(buffered: &[u8]) -> Option<usize> {
    let prefix = buffered.first_chunk::<SIZE_PREFIX_BYTES>()?;
    Some(i32::from_be_bytes(*prefix).max(0) as usize)
}

/// Mutes the connection while its unwritten responses fill its response budget (as Kafka
/// mutes a connection until its response is sent): the client's requests wait in its socket.
async fn wait_until_responses_taken(
    shard: &Rc<Shard>,
    connection: &ConnectionState,
) -> Result<(), CloseReason> {
    if connection.response_memory.available_bytes() > 0 {
        return Ok(());
    }
    shard.metrics.delayed(DelayReason::ResponseBudget);
    let room = Box::pin(connection.response_memory.room_for(1));
    match select(room, shard.shutdown.clone()).await {
        Either::Left(_) => Ok(()),
        Either::Right(_) => Err(CloseReason::Shutdown),
    }
}

/// One socket read. Gives up when `frame_left` (the time the client still has for the frame
/// it is sending) runs out, when the connection has been idle (nothing in flight, nothing
/// received or written) for the idle timeout, or at shutdown. The read future is kept across
/// wake-ups, never dropped and re-issued, so no received byte can be lost.
async fn read_some<R: futures_lite::AsyncRead + Unpin>(
    shard: &Rc<Shard>,
    reader: &mut R,
    scratch: &mut [u8],
    frame_left: Option<Duration>,
    connection: &ConnectionState,
    limits: &ReadLimits,
) -> Result<usize, CloseReason> {
    let deadline = frame_left.map(|left| Instant::now() + left);
    let read = reader.read(scratch);
    futures::pin_mut!(read);
    loop {
        let now = Instant::now();
        let idle_deadline = connection.last_activity.get() + limits.idle_timeout;
        let wake_at = deadline.map_or(idle_deadline, |d| d.min(idle_deadline));
        let timer = glommio::timer::sleep(wake_at.saturating_duration_since(now));
        let shutdown = shard.shutdown.clone();
        match select(read.as_mut(), select(Box::pin(timer), shutdown)).await {
            Either::Left((read, _)) => return read.map_err(CloseReason::Read),
            Either::Right((Either::Right(_), _)) => return Err(CloseReason::Shutdown),
            Either::Right((Either::Left(_), _)) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Err(CloseReason::FrameTimeout);
                }
                let idle_since = connection.last_activity.get();
                if connection.in_flight.get() == 0
                    && now.saturating_duration_since(idle_since) >= limits.idle_timeout
                {
                    return Err(CloseReason::Idle);
                }
                if connection.in_flight.get() > 0 {
                    // Waiting for our own responses is not idleness.
                    connection.touch();
                }
            }
        }
    }
}

/// Decodes one request and starts it; returns its response-to-be.
async fn dispatch(
    shard: &Rc<Shard>,
    frame: BytesMut,
    client_host: &str,
    permit: FramePermit,
    connection: &Rc<ConnectionState>,
) -> Result<PendingResponse, CloseReason> {
    let envelope = RequestEnvelope::peek(&frame)?;
    let Some(row) = api_table::find(envelope.api_key) else {
        return Err(CloseReason::UnknownApi {
            api_key: envelope.api_key,
        });
    };
    if !(row.min_version..=row.max_version).contains(&envelope.api_version) {
        if row.key == ApiKey::ApiVersions {
            shard.metrics.rejected(RejectReason::UnsupportedVersion);
            let response = api_versions::unsupported_version(envelope.correlation_id);
            drop(permit);
            return Ok(glommio::spawn_local(async move { response.map(Some) }));
        }
        return Err(CloseReason::UnsupportedVersion {
            api_key: envelope.api_key,
            version: envelope.api_version,
        });
    }
    let gate = connection.sasl.borrow().gate(row.key, Instant::now());
    match gate {
        Gate::Serve => {}
        Gate::NotAuthenticated => {
            return Err(CloseReason::NotAuthenticated {
                api_key: envelope.api_key,
            });
        }
        Gate::SessionExpired => return Err(CloseReason::SessionExpired),
    }
    let context = |client_id| RequestContext {
        api: row.key,
        version: envelope.api_version,
        correlation_id: envelope.correlation_id,
        client_id,
        client_host: client_host.to_string(),
        connection: connection.clone(),
    };
    if authorize::enabled(shard)
        && !authorize::checks_own_acls(row.key)
        && authorize::cluster(shard, &context(None), AclOperation::Alter).is_err()
    {
        tracing::info!(api = row.name, principal = %connection.security.borrow().principal,
            "connection closed: this API has no per-resource ACL checks yet; only principals with ALTER on the cluster may call it");
        return Err(CloseReason::Unauthorized {
            api_key: envelope.api_key,
        });
    }
    // Produce keeps its records as owned regions of the frame (stamped in place); every
    // other API goes through kafka-protocol and the API table.
    let stage1 = if row.key == ApiKey::Produce {
        let decoded = decode_produce_request(frame)?;
        produce::handle_owned(shard.clone(), context(decoded.client_id), decoded.body)
    } else {
        let decoded = decode_request(row.key, frame.freeze())?;
        (row.handler)(shard.clone(), context(decoded.client_id), decoded.body)
    };
    let span = tracing::trace_span!("request", api = ?row.key, version = envelope.api_version, correlation_id = envelope.correlation_id);
    let started = Instant::now();
    let completion: ResponseFuture = stage1.instrument(span.clone()).await;
    let (shard, api) = (shard.clone(), row.name);
    let timed = async move {
        let response = completion.await;
        drop(permit);
        shard
            .metrics
            .request_done(api, started.elapsed().as_secs_f64());
        response
    };
    Ok(glommio::spawn_local(timed.instrument(span)))
}

/// Shuts the socket down both ways so the client sees the close at once and the reader
/// stops, instead of both waiting on a connection that will never answer again.
fn close_socket(fd: RawFd) {
    // SAFETY: shutdown on the connection's own descriptor, which is still open (the stream
    // halves own it and are alive); it does not release the descriptor.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Writes responses in request order. Every response counts against the connection's
/// response budget until it is written (the reader mutes the connection while the budget is
/// full). A client that takes no bytes for `connections_max_idle_ms` is dropped; the memory
/// a response holds is released once it is written.
async fn write_responses<W: futures_lite::AsyncWrite + Unpin>(
    shard: Rc<Shard>,
    transport: Transport,
    mut writer: W,
    responses: LocalReceiver<Queued>,
    connection: Rc<ConnectionState>,
) {
    let stall_timeout = Duration::from_millis(shard.config.server.connections_max_idle_ms);
    let fd = transport.fd();
    while let Some(Queued {
        response,
        mut charge,
        api_key,
    }) = responses.recv().await
    {
        let closed_by = match response.await {
            Ok(Some(frame)) => {
                let bytes: usize = frame.chunks.iter().map(Bytes::len).sum();
                charge.force_to((bytes as u64).saturating_sub(frame.connection_bytes));
                let write_started = Instant::now();
                let written = match transport {
                    Transport::Plain { fd } => {
                        write_chunks(fd, &mut writer, &frame.chunks, stall_timeout).await
                    }
                    Transport::Tls { .. } => {
                        write_chunks_copied(&mut writer, &frame.chunks, stall_timeout).await
                    }
                };
                match written {
                    Ok(()) => {
                        let seconds = write_started.elapsed().as_secs_f64();
                        record_response_write(&shard, api_key, seconds);
                        shard.metrics.bytes_sent(bytes);
                        None
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                        tracing::debug!(
                            "client took no response bytes for connections_max_idle_ms"
                        );
                        Some("idle_timeout")
                    }
                    Err(error) => {
                        tracing::debug!(%error, "socket write failed");
                        Some("write_failed")
                    }
                }
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "request failed; closing connection");
                shard.metrics.rejected(RejectReason::HandlerFailed);
                Some("handler_failed")
            }
        };
        connection
            .in_flight
            .set(connection.in_flight.get().saturating_sub(1));
        connection.touch();
        if let Some(label) = closed_by {
            connection.closed_by.set(Some(label));
            close_socket(fd);
            return;
        }
    }
    let _ = writer.close().await;
}
