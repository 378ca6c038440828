//! The admin HTTP endpoint (shard 0 only): `GET /metrics` (Prometheus text, all shards),
//! `GET /health/live` and `GET /health/ready` (200 once this process serves Kafka clients;
//! 503 while shutting down). Requests are tiny and bounded; anything else gets 404/400.
//! At most `server.admin_connections_max` connections are served at once (more get 503 at
//! once), and each must send its request within `REQUEST_TIMEOUT` and take the response
//! within `RESPONSE_TIMEOUT`, so clients that never read cannot pile up rendered bodies.

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
/// A client must read the whole response within this time.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

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
    loop {
        let accepted = select(Box::pin(listener.accept()), shard.shutdown.clone()).await;
        match accepted {
            Either::Left((Ok(stream), _)) if open.get() >= open_max => {
                shard.metrics.rejected(RejectReason::AdminConnectionLimit);
                glommio::spawn_local(refuse(stream)).detach();
            }
            Either::Left((Ok(stream), _)) => {
                let (shard, open) = (shard.clone(), open.clone());
                open.set(open.get() + 1);
                glommio::spawn_local(async move {
                    answer(shard, stream).await;
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
    let ready = !crate::shard::shutdown::shutdown_requested();
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
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
        ("GET", "/health/ready") if ready => ("200 OK", "text/plain", "ready\n".to_string()),
        ("GET", "/health/ready") => (
            "503 Service Unavailable",
            "text/plain",
            "shutting down\n".to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    send_and_close(stream, response).await;
}

/// Answers 503 to a connection over the limit (without reading its request).
async fn refuse(stream: TcpStream) {
    let response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                    Content-Length: 17\r\nConnection: close\r\n\r\ntoo many clients\n";
    send_and_close(stream, response.to_string()).await;
}

/// Writes `response` within `RESPONSE_TIMEOUT`, then closes (dropping it either way).
async fn send_and_close(mut stream: TcpStream, response: String) {
    let write = Box::pin(async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.close().await;
    });
    let _ = select(write, Box::pin(glommio::timer::sleep(RESPONSE_TIMEOUT))).await;
}
