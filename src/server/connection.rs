//! One client connection: a reader that splits frames and dispatches them in order, and a
//! writer that sends responses in the same order. Produce's stage 1 (append or enqueue on
//! the owner shard) runs inline in the reader, so a connection's appends keep their order;
//! stage 2 (waiting for acks) runs as a task, so requests pipeline.

use super::api_table::{self, ResponseFuture};
use super::context::{HandlerError, RequestContext, ResponseFrame};
use super::handlers::api_versions;
use super::socket_writer::write_chunks;
use crate::protocol::ProtocolError;
use crate::protocol::codec::{RequestEnvelope, decode_request};
use crate::protocol::frame::{FrameError, FrameStatus, SIZE_PREFIX_BYTES, take_frame};
use crate::shard::Shard;
use crate::shard::metrics::{DelayReason, RejectReason};
use bytes::{Bytes, BytesMut};
use futures::future::{Either, select};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::StaticPermit;
use glommio::task::JoinHandle;
use std::os::unix::io::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;
use thiserror::Error;
use tracing::Instrument;

/// Bytes read from the socket per read call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

type PendingResponse = glommio::Task<Result<Option<ResponseFrame>, HandlerError>>;

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
}

pub async fn serve_connection(shard: Rc<Shard>, stream: TcpStream) {
    let peer_address = stream.peer_addr().ok();
    let peer = peer_address.map(|a| a.to_string()).unwrap_or_default();
    let client_host = peer_address
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    let span = tracing::debug_span!("connection", shard = %shard.id, %peer);
    async move {
        let fd = stream.as_raw_fd();
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let (mut reader, writer) = futures_lite::io::split(stream);
        let inflight_max = shard.config.server.connection_inflight_requests_max;
        let (queue, responses) = local_channel::new_bounded(inflight_max);
        let writer_task: JoinHandle<()> =
            glommio::spawn_local(write_responses(shard.clone(), fd, writer, responses)).detach();
        shard.metrics.connection_opened();
        let outcome = read_requests(&shard, &mut reader, queue, &client_host).await;
        match &outcome {
            Ok(()) => tracing::debug!("client closed the connection"),
            Err(CloseReason::WriterGone) | Err(CloseReason::Shutdown) => {}
            // A client that exits resets its connections: normal, not worth a warning.
            Err(reason @ CloseReason::Read(_)) => tracing::debug!(%reason, "closing connection"),
            Err(reason) => tracing::warn!(%reason, "closing connection"),
        }
        writer_task.await;
        if let Err(reason) = &outcome
            && let Some(reject) = reject_reason(reason)
        {
            shard.metrics.rejected(reject);
        }
        shard.metrics.connection_closed(close_label(&outcome));
    }
    .instrument(span)
    .await
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
        CloseReason::Shutdown | CloseReason::Read(_) | CloseReason::WriterGone => None,
    }
}

async fn read_requests<R: futures_lite::AsyncRead + Unpin>(
    shard: &Rc<Shard>,
    reader: &mut R,
    queue: LocalSender<PendingResponse>,
    client_host: &str,
) -> Result<(), CloseReason> {
    let frame_max = shard.config.server.request_bytes_max as usize;
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut scratch = vec![0u8; READ_CHUNK_BYTES];
    // Memory reserved for the frame being read: taken before its body is buffered, released
    // when its request has been handled.
    let mut reserved: Option<StaticPermit> = None;
    loop {
        match take_frame(&mut buffer, frame_max)? {
            FrameStatus::Complete(frame) => {
                let permit = match reserved.take() {
                    Some(permit) => permit,
                    None => reserve(shard, frame.len()).await?,
                };
                let pending = dispatch(shard, frame, client_host, permit).await?;
                if queue.is_full() {
                    shard.metrics.delayed(DelayReason::InflightLimit);
                }
                queue
                    .send(pending)
                    .await
                    .map_err(|_| CloseReason::WriterGone)?;
            }
            FrameStatus::NeedBytes(needed) => {
                if needed > SIZE_PREFIX_BYTES && reserved.is_none() {
                    reserved = Some(reserve(shard, needed - SIZE_PREFIX_BYTES).await?);
                }
                buffer.reserve(needed.saturating_sub(buffer.len()));
                let read = match select(reader.read(&mut scratch), shard.shutdown.clone()).await {
                    Either::Left((read, _)) => read.map_err(CloseReason::Read)?,
                    Either::Right(_) => return Err(CloseReason::Shutdown),
                };
                shard.metrics.bytes_received(read);
                if read == 0 {
                    return Ok(());
                }
                buffer.extend_from_slice(&scratch[..read]);
            }
        }
    }
}

/// Waits until `bytes` fit in the shard's request memory budget.
async fn reserve(shard: &Rc<Shard>, bytes: usize) -> Result<StaticPermit, CloseReason> {
    let units = bytes.max(1) as u64;
    if let Ok(permit) = shard.request_memory.try_acquire_static_permit(units) {
        return Ok(permit);
    }
    shard.metrics.delayed(DelayReason::MemoryBudget);
    let acquire = Box::pin(shard.request_memory.acquire_static_permit(units));
    match select(acquire, shard.shutdown.clone()).await {
        Either::Left((Ok(permit), _)) => Ok(permit),
        _ => Err(CloseReason::Shutdown),
    }
}

/// Decodes one request and starts it; returns its response-to-be.
async fn dispatch(
    shard: &Rc<Shard>,
    frame: Bytes,
    client_host: &str,
    permit: StaticPermit,
) -> Result<PendingResponse, CloseReason> {
    let envelope = RequestEnvelope::peek(&frame)?;
    let Some(row) = api_table::find(envelope.api_key) else {
        return Err(CloseReason::UnknownApi {
            api_key: envelope.api_key,
        });
    };
    if !(row.min_version..=row.max_version).contains(&envelope.api_version) {
        if row.key == kafka_protocol::messages::ApiKey::ApiVersions {
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
    let decoded = decode_request(row.key, frame)?;
    let context = RequestContext {
        api: row.key,
        version: envelope.api_version,
        correlation_id: envelope.correlation_id,
        client_id: decoded.header.client_id.as_ref().map(|c| c.to_string()),
        client_host: client_host.to_string(),
    };
    let span = tracing::trace_span!("request", api = ?row.key, version = context.version, correlation_id = context.correlation_id);
    let started = Instant::now();
    let completion: ResponseFuture = (row.handler)(shard.clone(), context, decoded.body)
        .instrument(span.clone())
        .await;
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

async fn write_responses<W: futures_lite::AsyncWrite + Unpin>(
    shard: Rc<Shard>,
    fd: RawFd,
    mut writer: W,
    responses: LocalReceiver<PendingResponse>,
) {
    while let Some(pending) = responses.recv().await {
        match pending.await {
            Ok(Some(frame)) => {
                if let Err(error) = write_chunks(fd, &mut writer, &frame.chunks).await {
                    tracing::debug!(%error, "socket write failed");
                    close_socket(fd);
                    return;
                }
                shard
                    .metrics
                    .bytes_sent(frame.chunks.iter().map(Bytes::len).sum());
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "request failed; closing connection");
                shard.metrics.rejected(RejectReason::HandlerFailed);
                close_socket(fd);
                return;
            }
        }
    }
    let _ = writer.close().await;
}
