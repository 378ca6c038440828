//! The Kafka listener: accepts connections on every shard (SO_REUSEPORT spreads them),
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
mod connection;
mod context;
pub mod handlers;
mod ip_limit;
mod request_memory;
mod socket_writer;

pub use context::{HandlerError, RequestContext, ResponseFrame};

use crate::shard::Shard;
use crate::shard::metrics::RejectReason;
use futures::future::{Either, select};
use glommio::net::TcpListener;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often shutdown checks whether connections have drained.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The one line an operator looks for after start-up: where to connect, where the admin
/// endpoints are, which data dir.
fn log_ready(shard: &Shard) {
    let server = &shard.config.server;
    let admin = if server.admin_listen.is_empty() {
        "disabled".to_string()
    } else {
        format!(
            "http://{}/ (/metrics, /health/live, /health/ready)",
            server.admin_listen
        )
    };
    tracing::info!(
        "shardlog ready: Kafka clients on {}, admin {admin}, data dir {}, {} shards",
        server.listen,
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
    let address = shard.config.server.listen.clone();
    let listener = TcpListener::bind(address.as_str())
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    tracing::info!(shard = %shard.id, %address, "listening for Kafka clients");
    if shard.id.0 == 0 {
        log_ready(&shard);
    }
    let open_connections = Rc::new(Cell::new(0usize));
    let connections_max = shard.config.server.shard_connections_max;
    loop {
        let accepted = select(Box::pin(listener.accept()), shard.shutdown.clone()).await;
        let stream = match accepted {
            Either::Left((Ok(stream), _)) => stream,
            Either::Left((Err(error), _)) => {
                // EMFILE and friends: back off instead of spinning or crashing.
                tracing::warn!(shard = %shard.id, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Either::Right(_) => break,
        };
        if open_connections.get() >= connections_max {
            tracing::warn!(shard = %shard.id, connections_max, "connection refused: limit reached");
            shard
                .metrics
                .connection_refused(RejectReason::ConnectionLimit);
            drop(stream);
            continue;
        }
        let ip = stream.peer_addr().map(|a| a.ip()).ok();
        // Dynamic (`max.connections.per.ip`): a change applies to the next connection.
        let per_ip_max = shard.effective_config().server.connections_per_ip_max;
        let slot = match ip.map(|ip| (ip, ip_limit::try_acquire(ip, per_ip_max))) {
            Some((ip, None)) => {
                tracing::warn!(shard = %shard.id, %ip, per_ip_max, "connection refused: per-IP limit reached");
                shard
                    .metrics
                    .connection_refused(RejectReason::ConnectionLimitPerIp);
                drop(stream);
                continue;
            }
            Some((_, slot)) => slot,
            None => None,
        };
        open_connections.set(open_connections.get() + 1);
        let (shard, open_connections) = (shard.clone(), open_connections.clone());
        glommio::spawn_local(async move {
            connection::serve_connection(shard, stream).await;
            drop(slot);
            open_connections.set(open_connections.get() - 1);
        })
        .detach();
    }
    drop(listener);
    let grace = Duration::from_millis(shard.config.server.shutdown_grace_ms);
    let deadline = Instant::now() + grace;
    tracing::info!(shard = %shard.id, open = open_connections.get(), "stopped accepting; draining connections");
    while open_connections.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(DRAIN_POLL).await;
    }
    Ok(())
}
