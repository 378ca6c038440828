//! The Kafka listeners: accept connections on every shard (SO_REUSEPORT spreads them),
//! reads size-limited frames, dispatches through the one API table, and writes responses in
//! request order. The only socket code in shardlog.
//!
//! May import: everything below it (config, model, protocol, metadata, shard).
//! Runs on: every shard; a connection stays on the shard that accepted it.
//! Invariants: responses on a connection go out in request order; a malformed or oversized
//! frame closes only that connection; no handler panics on client input.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod admin_http;
pub mod api_table;
pub mod authorize;
mod connection;
mod context;
mod gather_stream;
pub mod handlers;
mod ip_limit;
mod listeners;
mod read_buffer;
mod request_memory;
mod sasl_session;
mod socket_writer;
mod tls_handshake;

pub use context::{HandlerError, RequestContext, ResponseFrame};

use crate::shard::Shard;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often shutdown checks whether connections have drained.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The one line an operator looks for after start-up: where to connect, where the admin
/// endpoints are, which data dir.
fn log_ready(shard: &Shard, listeners: &[Rc<listeners::Listener>]) {
    let server = &shard.config.server;
    let admin = if server.admin_listen.is_empty() {
        "disabled".to_string()
    } else {
        format!(
            "http://{}/ (/metrics, /health/live, /health/ready)",
            server.admin_listen
        )
    };
    let kafka = listeners
        .iter()
        .map(|l| format!("{}://{}", l.spec.name, l.spec.bind))
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(
        "shardlog ready: Kafka clients on {kafka}, admin {admin}, data dir {}, {} shards",
        shard.config.storage.data_dir.display(),
        shard.shard_count
    );
}

/// Accepts Kafka connections on this shard until shutdown, then gives open connections up
/// to `shutdown_grace_ms` to finish their in-flight requests. The listener opens only once
/// every shard has opened all its partitions (the start-up barrier); the admin endpoint
/// starts before, answering `/health/ready` with 503 until then.
pub async fn serve(shard: Rc<Shard>) -> Result<(), String> {
    let admin_address = &shard.config.server.admin_listen;
    if shard.id.0 == 0 && !admin_address.is_empty() {
        glommio::spawn_local(admin_http::serve_admin(
            shard.clone(),
            admin_address.clone(),
        ))
        .detach();
    }
    shard.startup.wait_all(shard.shard_count).await;
    if shard.id.0 == 0 {
        tracing::info!(
            shards = shard.shard_count,
            "every shard has opened its partitions; serving"
        );
    }
    let listeners = listeners::prepare(&shard).await?;
    let mut sockets = Vec::with_capacity(listeners.len());
    for listener in &listeners {
        sockets.push(listeners::bind(&shard, listener)?);
    }
    if shard.id.0 == 0 {
        log_ready(&shard, &listeners);
    }
    let open_connections = Rc::new(Cell::new(0usize));
    let loops = listeners
        .into_iter()
        .zip(sockets)
        .map(|(listener, socket)| {
            listeners::accept_loop(shard.clone(), listener, socket, open_connections.clone())
        });
    futures::future::join_all(loops).await;
    let grace = Duration::from_millis(shard.config.server.shutdown_grace_ms);
    let deadline = Instant::now() + grace;
    tracing::info!(shard = %shard.id, open = open_connections.get(), "stopped accepting; draining connections");
    while open_connections.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(DRAIN_POLL).await;
    }
    Ok(())
}
