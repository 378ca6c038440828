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

pub mod api_table;
mod connection;
mod context;
pub mod handlers;
mod socket_writer;

pub use context::{HandlerError, RequestContext, ResponseFrame};

use crate::shard::Shard;
use glommio::net::TcpListener;
use std::cell::Cell;
use std::rc::Rc;

/// Accepts Kafka connections on this shard until the listener fails.
pub async fn serve(shard: Rc<Shard>) -> Result<(), String> {
    let address = shard.config.server.listen.clone();
    let listener = TcpListener::bind(address.as_str())
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    tracing::info!(shard = %shard.id, %address, "listening for Kafka clients");
    let open_connections = Rc::new(Cell::new(0usize));
    let connections_max = shard.config.server.shard_connections_max;
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning or crashing.
                tracing::warn!(shard = %shard.id, %error, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if open_connections.get() >= connections_max {
            tracing::warn!(shard = %shard.id, connections_max, "connection refused: limit reached");
            drop(stream);
            continue;
        }
        open_connections.set(open_connections.get() + 1);
        let (shard, open_connections) = (shard.clone(), open_connections.clone());
        glommio::spawn_local(async move {
            connection::serve_connection(shard, stream).await;
            open_connections.set(open_connections.get() - 1);
        })
        .detach();
    }
}
