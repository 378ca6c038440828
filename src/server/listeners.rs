//! One shard's Kafka listeners (`server.listen`): each binds its own port (SO_REUSEPORT
//! spreads connections over shards) and runs its own accept loop; an SSL listener also
//! holds the shard's TLS configuration, which a background task reloads when the
//! certificate, key or client CA files change (`tls.reload_check_interval_ms`).
//!
//! May import: config, security, shard, storage::blocking_fs. Runs on: every shard.
//! Invariants: a connection counts against `shard_connections_max` and
//! `connections_per_ip_max` whatever its listener; a failed reload keeps the previous TLS
//! configuration; TLS files are read off the shard thread.

use super::connection;
use super::ip_limit;
use crate::config::{ListenerSpec, TlsConfig};
use crate::security::tls::{self, FileStamp, TlsError, TlsMaterial};
use crate::shard::Shard;
use crate::shard::metrics::RejectReason;
use crate::storage::{BlockingOp, run_off_shard};
use futures::future::{Either, select};
use glommio::net::TcpListener;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// An SSL listener's TLS state on one shard (shared by all SSL listeners of the shard).
pub struct ShardTls {
    pub config: TlsConfig,
    material: RefCell<TlsMaterial>,
    /// Handshakes in progress on this shard (`tls.handshakes_inflight_max`).
    pub handshakes: Cell<usize>,
}

impl ShardTls {
    /// The rustls configuration new connections use now.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.material.borrow().server_config.clone()
    }
}

/// A listener as a shard serves it.
pub struct Listener {
    pub spec: ListenerSpec,
    pub tls: Option<Rc<ShardTls>>,
}

/// Loads the TLS files off the shard thread.
async fn load_off_shard(config: &TlsConfig) -> Result<TlsMaterial, TlsError> {
    let config = config.clone();
    run_off_shard(BlockingOp::TlsFiles, move || tls::load(&config)).await
}

/// This shard's listeners, with the TLS configuration loaded if any listener needs it.
pub async fn prepare(shard: &Rc<Shard>) -> Result<Vec<Rc<Listener>>, String> {
    let specs = shard.config.server.listeners().map_err(|e| e.to_string())?;
    let shard_tls = if specs.iter().any(|spec| spec.protocol.uses_tls()) {
        let config = shard.config.tls.clone();
        let material = load_off_shard(&config)
            .await
            .map_err(|e| format!("cannot load the TLS files: {e}"))?;
        if shard.id.0 == 0 {
            tracing::info!(subject = %material.subject, mtls = config.client_ca_file.is_some(), "TLS certificate loaded");
        }
        let tls = Rc::new(ShardTls {
            config,
            material: RefCell::new(material),
            handshakes: Cell::new(0),
        });
        if tls.config.reload_check_interval_ms > 0 {
            glommio::spawn_local(reload_when_changed(shard.clone(), tls.clone())).detach();
        }
        Some(tls)
    } else {
        None
    };
    Ok(specs
        .into_iter()
        .map(|spec| {
            let tls = spec
                .protocol
                .uses_tls()
                .then(|| shard_tls.clone())
                .flatten();
            Rc::new(Listener { spec, tls })
        })
        .collect())
}

/// Every `reload_check_interval_ms`, stats the TLS files; when they changed, loads them and
/// gives new connections the new configuration (open connections keep theirs).
async fn reload_when_changed(shard: Rc<Shard>, tls: Rc<ShardTls>) {
    let interval = Duration::from_millis(tls.config.reload_check_interval_ms);
    loop {
        let tick = Box::pin(glommio::timer::sleep(interval));
        if let Either::Right(_) = select(tick, shard.shutdown.clone()).await {
            return;
        }
        let config = tls.config.clone();
        let stamp = run_off_shard(BlockingOp::TlsFiles, move || FileStamp::of(&config)).await;
        let changed = match stamp {
            Ok(stamp) => stamp != tls.material.borrow().stamp,
            Err(error) => {
                tracing::warn!(shard = %shard.id, %error, "cannot check the TLS files; keeping the loaded ones");
                false
            }
        };
        if !changed {
            continue;
        }
        match load_off_shard(&tls.config).await {
            Ok(material) => {
                tracing::info!(shard = %shard.id, subject = %material.subject, "TLS files changed; new connections use the new certificate");
                *tls.material.borrow_mut() = material;
            }
            Err(error) => {
                // Half-written files during a rotation: tried again at the next check.
                tracing::warn!(shard = %shard.id, %error, "cannot load the changed TLS files; keeping the loaded ones");
            }
        }
    }
}

/// Binds `listener` on this shard.
pub fn bind(shard: &Shard, listener: &Listener) -> Result<TcpListener, String> {
    let spec = &listener.spec;
    let socket = TcpListener::bind(spec.bind.as_str())
        .map_err(|e| format!("cannot listen on {} ({}): {e}", spec.bind, spec.name))?;
    tracing::info!(shard = %shard.id, listener = %spec.name, protocol = spec.protocol.name(), address = %spec.bind, "listening for Kafka clients");
    Ok(socket)
}

/// Accepts connections on one listener until shutdown.
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener: Rc<Listener>,
    socket: TcpListener,
    open_connections: Rc<Cell<usize>>,
) {
    let connections_max = shard.config.server.shard_connections_max;
    loop {
        let accepted = select(Box::pin(socket.accept()), shard.shutdown.clone()).await;
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
        let listener = listener.clone();
        glommio::spawn_local(async move {
            connection::serve_connection(shard, stream, listener).await;
            drop(slot);
            open_connections.set(open_connections.get() - 1);
        })
        .detach();
    }
}
