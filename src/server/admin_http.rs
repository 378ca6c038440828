//! The admin HTTP endpoint (shard 0 only): `GET /metrics` (Prometheus text, all shards),
//! `GET /health/live` (200 while the process runs) and `GET /health/ready` (200 once every
//! shard has opened all its partitions and none is offline; 503 while starting, with an
//! offline partition, or while shutting down, the body says which). It starts before the
//! Kafka listener; `/metrics` answers 503 until start-up is complete. Requests are tiny and
//! bounded; anything else gets 404/400.
//!
//! Limits: at most `server.admin_connections_max` connections are open at once (more get 503
//! at once); each must send its request head within `REQUEST_TIMEOUT`. Health checks are
//! always answered; at most `server.admin_metrics_inflight_max` /metrics bodies are rendered
//! or being sent at once (more get 503), and a client that takes no bytes of its response for
//! `RESPONSE_STALL_TIMEOUT` is dropped, so clients that never read cannot pile up bodies or
//! crowd out health probes.

use crate::shard::Shard;
use crate::shard::metrics::{RejectReason, render_prometheus};
use futures::future::{Either, select};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Largest HTTP request head accepted.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// A client must send its request within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that takes no bytes of its response for this long is dropped.
const RESPONSE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
const STARTING: &str = "starting: shards are opening their partitions\n";

/// Why the broker is not ready (`None`: it is): shutting down, still starting, or some
/// partition of the catalog has no open log.
async fn readiness(shard: &Rc<Shard>) -> Option<String> {
    if crate::shard::shutdown::shutdown_requested() {
        return Some("shutting down\n".to_string());
    }
    if !shard.startup.complete(shard.shard_count) {
        return Some(STARTING.to_string());
    }
    let offline: usize = shard
        .gather_metrics()
        .await
        .iter()
        .map(|s| s.offline.len())
        .sum();
    (offline > 0).then(|| {
        format!("not ready: {offline} partition(s) offline (see shardlog_partition_offline in /metrics)\n")
    })
}

pub async fn serve_admin(shard: Rc<Shard>, address: String) {
    let listener = match TcpListener::bind(address.as_str()) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%address, %error, "cannot start the admin HTTP listener");
            return;
        }
    };
    tracing::info!(%address, "admin HTTP listening (/metrics, /health/live, /health/ready)");
    let open = Rc::new(Cell::new(0usize));
    let open_max = shard.config.server.admin_connections_max;
    let metrics_inflight = Rc::new(Cell::new(0usize));
    loop {
        let accepted = select(Box::pin(listener.accept()), shard.shutdown.clone()).await;
        match accepted {
            Either::Left((Ok(stream), _)) if open.get() >= open_max => {
                shard.metrics.rejected(RejectReason::AdminConnectionLimit);
                glommio::spawn_local(refuse(stream)).detach();
            }
            Either::Left((Ok(stream), _)) => {
                let (shard, open) = (shard.clone(), open.clone());
                let metrics_inflight = metrics_inflight.clone();
                open.set(open.get() + 1);
                glommio::spawn_local(async move {
                    answer(shard, stream, &metrics_inflight).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Either::Left((Err(error), _)) => {
                tracing::warn!(%error, "admin accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            Either::Right(_) => return,
        }
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            return None;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8(head).ok()
}

async fn answer(shard: Rc<Shard>, mut stream: TcpStream, metrics_inflight: &Cell<usize>) {
    let timeout = Box::pin(glommio::timer::sleep(REQUEST_TIMEOUT));
    let head = match select(Box::pin(read_head(&mut stream)), timeout).await {
        Either::Left((Some(head), _)) => head,
        _ => return,
    };
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let started = shard.startup.complete(shard.shard_count);
    let metrics_max = shard.config.server.admin_metrics_inflight_max;
    let busy = metrics_inflight.get() >= metrics_max;
    let mut rendering = None;
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") if started && busy => {
            shard.metrics.rejected(RejectReason::AdminConnectionLimit);
            (
                "503 Service Unavailable",
                "text/plain",
                "too many /metrics clients\n".to_string(),
            )
        }
        ("GET", "/metrics") if started => {
            rendering = Some(InflightSlot::take(metrics_inflight));
            let snapshots = shard.gather_metrics().await;
            (
                "200 OK",
                "text/plain; version=0.0.4",
                render_prometheus(&snapshots),
            )
        }
        ("GET", "/health/live") | ("GET", "/health") => {
            ("200 OK", "text/plain", "live\n".to_string())
        }
        ("GET", "/health/ready") => match readiness(&shard).await {
            None => ("200 OK", "text/plain", "ready\n".to_string()),
            Some(why) => ("503 Service Unavailable", "text/plain", why),
        },
        ("GET", "/metrics") => (
            "503 Service Unavailable",
            "text/plain",
            STARTING.to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    send_and_close(stream, response).await;
    drop(rendering);
}

/// One of the `admin_metrics_inflight_max` slots, given back when dropped.
struct InflightSlot<'a>(&'a Cell<usize>);

impl<'a> InflightSlot<'a> {
    fn take(count: &'a Cell<usize>) -> InflightSlot<'a> {
        count.set(count.get() + 1);
        InflightSlot(count)
    }
}

impl Drop for InflightSlot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Answers 503 to a connection over the limit (without reading its request).
async fn refuse(stream: TcpStream) {
    let response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                    Content-Length: 17\r\nConnection: close\r\n\r\ntoo many clients\n";
    send_and_close(stream, response.to_string()).await;
}

/// Writes `response`, giving up when the client takes no bytes for `RESPONSE_STALL_TIMEOUT`,
/// then closes (dropping the response either way).
async fn send_and_close(mut stream: TcpStream, response: String) {
    let mut rest = response.as_bytes();
    while !rest.is_empty() {
        let write = Box::pin(stream.write(rest));
        let stall = Box::pin(glommio::timer::sleep(RESPONSE_STALL_TIMEOUT));
        match select(write, stall).await {
            Either::Left((Ok(written), _)) if written > 0 => rest = &rest[written..],
            _ => return,
        }
    }
    let _ = stream.close().await;
}
