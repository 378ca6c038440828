//! The admin HTTP endpoint (shard 0 only): `GET /metrics` (Prometheus text, all shards),
//! `GET /health/live` (200 while the process runs) and `GET /health/ready` (200 once every
//! shard has opened all its partitions and none is offline; 503 while starting, with an
//! offline partition, or while shutting down, the body says which). It starts before the
//! Kafka listener; `/metrics` answers 503 until start-up is complete. Requests are tiny and
//! bounded; anything else gets 404/400.

use crate::shard::Shard;
use crate::shard::metrics::render_prometheus;
use futures::future::{Either, select};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// Largest HTTP request head accepted.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// A client must send its request within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
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
    loop {
        let accepted = select(Box::pin(listener.accept()), shard.shutdown.clone()).await;
        match accepted {
            Either::Left((Ok(stream), _)) => {
                let shard = shard.clone();
                glommio::spawn_local(async move { answer(shard, stream).await }).detach();
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

async fn answer(shard: Rc<Shard>, mut stream: TcpStream) {
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
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") if started => {
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
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.close().await;
}
