//! Starts one glommio executor per shard (pinned to CPUs), joins them in a full channel
//! mesh, checks the data dir and loads the catalog (`data_dir::prepare`, before any shard
//! starts), opens owned partitions, starts the mesh receivers and background work, marks
//! the shard opened on the start-up barrier, then runs the caller's per-shard `serve`
//! future (which waits for the barrier before it lets clients in). Each shard reports its
//! start-up phases to the start-up watchdog (`startup_watchdog`), and every executor is
//! nudged against a glommio lost wake-up (`executor_nudge`).

use super::data_dir::{self, DataDirError};
use super::executor_nudge::{ExecutorNudge, NudgeThread};
use super::messages::ShardMessage;
use super::shutdown::StoppedShards;
use super::startup::StartupBarrier;
use super::startup_watchdog::{StallSpec, StartupPhase, StartupWatch, WatchdogGuard};
use super::{Shard, now_ms};
use crate::config::Config;
use crate::metadata::{BrokerMeta, Catalog};
use crate::model::ShardId;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{CpuSet, Latency, LocalExecutorPoolBuilder, PoolPlacement, Shares};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ShardPoolError {
    #[error("cannot start the executor pool: {0}")]
    Start(String),
    #[error("shard {shard} failed: {reason}")]
    Shard { shard: usize, reason: String },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("cannot read the dynamic broker configs: {0}")]
    DynamicConfigs(#[from] crate::metadata::DynamicConfigError),
    #[error("cannot read the SCRAM credentials: {0}")]
    ScramCredentials(#[from] crate::metadata::scram_credentials::ScramCredentialsError),
}

/// What every shard starts from.
#[derive(Clone)]
pub(super) struct StartState {
    pub catalog: Arc<Catalog>,
    /// Read by shard 0 (the controller).
    pub meta: BrokerMeta,
    /// Dynamic broker configs saved by AlterConfigs (`dynamic_broker_configs.json`).
    pub dynamic_configs: Arc<crate::metadata::DynamicBrokerConfigs>,
    /// SASL users (`scram_credentials.json`), one store all shards share.
    pub credentials: Arc<crate::security::sasl::CredentialStore>,
    pub startup: StartupBarrier,
}

fn shard_count(config: &Config) -> usize {
    match config.shard.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

fn placement(config: &Config, shards: usize) -> PoolPlacement {
    if !config.shard.pin_cpus {
        return PoolPlacement::Unbound(shards);
    }
    match CpuSet::online() {
        Ok(cpus) if cpus.len() >= shards => PoolPlacement::MaxSpread(shards, Some(cpus)),
        Ok(cpus) if !cpus.is_empty() => PoolPlacement::Fenced(shards, cpus),
        _ => PoolPlacement::Unbound(shards),
    }
}

/// Runs the broker's shards until they all exit. `serve` runs on every shard once its
/// partitions are open.
pub fn run_pool<S, F>(config: Config, serve: S) -> Result<(), ShardPoolError>
where
    S: Fn(Rc<Shard>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<(), String>> + 'static,
{
    let data_dir = config.storage.data_dir.clone();
    let listeners = config
        .server
        .listeners()
        .map_err(|e| ShardPoolError::Start(e.to_string()))?;
    for listener in &listeners {
        ensure_port_free(&listener.bind)?;
    }
    if !config.server.admin_listen.is_empty() {
        ensure_port_free(&config.server.admin_listen)?;
    }
    let prepared = data_dir::prepare(&config).inspect_err(|error| {
        tracing::error!(%error, "the data dir is not safe to start from");
    })?;
    let dynamic_configs = crate::metadata::DynamicBrokerConfigs::load_valid(&data_dir, &config)
        .inspect_err(|error| tracing::error!(%error, "cannot read dynamic broker configs"))?;
    let credentials =
        crate::metadata::scram_credentials::load_or_bootstrap(&data_dir, &config.sasl)
            .inspect_err(|error| tracing::error!(%error, "cannot read the SCRAM credentials"))?;
    let start = StartState {
        catalog: Arc::new(prepared.catalog),
        meta: prepared.meta,
        dynamic_configs: Arc::new(dynamic_configs),
        credentials: crate::security::sasl::CredentialStore::new(credentials),
        startup: StartupBarrier::default(),
    };
    let _lock = prepared.lock;
    let shards = shard_count(&config);
    let config = Arc::new(config);
    let mesh = MeshBuilder::<ShardMessage, _>::full(shards, config.shard.mesh_channel_capacity);
    let stopped = StoppedShards::default();
    let supervision = Supervision::start(&config, shards)?;
    let (watch, nudge) = (supervision.watch.clone(), supervision.nudge.clone());
    tracing::info!(shards, data_dir = %data_dir.display(), "starting shards");
    let handles = LocalExecutorPoolBuilder::new(placement(&config, shards))
        .name("shard")
        .io_memory(config.shard.io_memory_bytes)
        .ring_depth(config.shard.ring_depth)
        .preempt_timer(Duration::from_micros(config.shard.preempt_interval_us))
        .blocking_thread_pool_placement(PoolPlacement::Unbound(config.shard.blocking_threads))
        .on_all_shards(move || {
            let (config, start, mesh, serve) = (config.clone(), start.clone(), mesh, serve);
            let (stopped, watch, nudge) = (stopped.clone(), watch.clone(), nudge.clone());
            async move {
                // First, before anything can strand this executor (see executor_nudge).
                let _nudge = nudge.attach();
                // One blocking thread stays free for glommio's own calls (config docs).
                crate::storage::set_in_flight_max(config.shard.blocking_threads - 1);
                let startup = watch.executor_started();
                startup.enter(StartupPhase::MeshJoin);
                let (senders, mut receivers) = mesh
                    .join()
                    .await
                    .map_err(|e| format!("joining the channel mesh: {e}"))?;
                let id = ShardId(senders.peer_id());
                startup.set_shard(id.0);
                startup.enter(StartupPhase::IopollProbe);
                let senders = Rc::new(super::mesh::Mesh::new(senders));
                super::reply::install(id, senders.clone());
                // glommio decides once per device whether io_uring polling works, from the
                // first DMA file it reads; an empty first file makes it decide wrongly.
                if let Err(error) =
                    crate::storage::prime_iopoll_probe(&config.storage.data_dir).await
                {
                    tracing::warn!(shard = %id, %error, "cannot prime the io_uring polling probe");
                }
                let catalog = start.catalog.clone();
                let shard = Rc::new(Shard::new(id, shards, config, start, senders));
                shard.spawn_disk_guard();
                startup.watch_opens(&shard, &catalog);
                shard.apply_catalog(catalog).await;
                startup.enter(StartupPhase::LoadingGroups);
                shard.load_groups().await;
                shard.spawn_group_timer();
                shard.spawn_coordinator_leadership();
                startup.enter(StartupPhase::LoadingTransactions);
                shard.load_transactions().await;
                shard.spawn_txn_leadership();
                shard.spawn_txn_timer();
                for (peer, receiver) in receivers.streams() {
                    let shard = shard.clone();
                    glommio::spawn_local(async move {
                        while let Some(message) = receiver.recv().await {
                            shard.mesh().received_from(peer);
                            shard.handle_message(message).await;
                        }
                        tracing::debug!(shard = %shard.id, peer, "mesh receiver closed");
                    })
                    .detach();
                }
                spawn_retention(&shard);
                shard.spawn_integrity_tasks();
                shard.startup.mark_opened();
                tracing::info!(shard = %id, logs = shard.owned_logs().len(), offline = shard.offline_partitions().len(), "shard opened its partitions");
                startup.finished(&shard);
                let result = serve(shard.clone()).await;
                stopped.mark_stopped();
                // Other shards may still forward work here until they stop serving too.
                stopped.wait_all(shards).await;
                shard.close_logs().await;
                result.map_err(|reason| format!("shard {id}: {reason}"))
            }
        })
        .map_err(|e| ShardPoolError::Start(e.to_string()))?;
    for (index, result) in handles.join_all().into_iter().enumerate() {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                return Err(ShardPoolError::Shard {
                    shard: index,
                    reason,
                });
            }
            Err(e) => {
                return Err(ShardPoolError::Shard {
                    shard: index,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The threads that watch the executors from outside: the start-up watchdog and the
/// executor nudge. They stop when this is dropped (after the pool returned).
struct Supervision {
    watch: StartupWatch,
    nudge: ExecutorNudge,
    _watchdog: WatchdogGuard,
    _nudge_thread: NudgeThread,
}

impl Supervision {
    fn start(config: &Config, shards: usize) -> Result<Supervision, ShardPoolError> {
        let stall = StallSpec::from_env().map_err(ShardPoolError::Start)?;
        let watch = StartupWatch::new(shards, stall);
        let start_error = |e: std::io::Error| ShardPoolError::Start(e.to_string());
        let watchdog = watch
            .spawn_watchdog(Duration::from_millis(config.shard.startup_watchdog_ms))
            .map_err(start_error)?;
        let (nudge, nudge_thread) = ExecutorNudge::start(
            shards,
            Duration::from_millis(config.shard.executor_nudge_ms),
        )
        .map_err(start_error)?;
        Ok(Supervision {
            watch,
            nudge,
            _watchdog: watchdog,
            _nudge_thread: nudge_thread,
        })
    }
}

/// How long start-up waits for a listening port still held by a previous process.
const PORT_WAIT: Duration = Duration::from_secs(10);
const PORT_RETRY: Duration = Duration::from_millis(50);
const PORT_PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Shards share their listening port with SO_REUSEPORT, which would also let a second
/// broker on the same port silently take half the connections. So start-up first checks
/// that nobody listens there: a plain bind that never listens (a listening probe would accept
/// a client's connection and then drop it, so a client could see the broker up before it
/// is; found by a CLI test that connected during start-up and was then refused), and if that
/// reports the port in use, a connect
/// (the port can also be held by TIME_WAIT sockets of a killed predecessor, which block a
/// plain bind for a minute but not our SO_REUSEPORT listeners, and accept nothing). A
/// broker killed with SIGKILL keeps accepting for a moment after it is reaped (io_uring
/// tears its ring down asynchronously), so start-up waits up to `PORT_WAIT` for that.
fn ensure_port_free(address: &str) -> Result<(), ShardPoolError> {
    let in_use =
        |detail: String| ShardPoolError::Start(format!("cannot listen on {address}: {detail}"));
    let deadline = std::time::Instant::now() + PORT_WAIT;
    let mut logged = false;
    loop {
        match bind_without_listening(address) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
                return Err(in_use(e.to_string()));
            }
            Err(_) => {}
        }
        let listening = address
            .parse::<std::net::SocketAddr>()
            .ok()
            .is_some_and(|target| {
                std::net::TcpStream::connect_timeout(&target, PORT_PROBE_TIMEOUT).is_ok()
            });
        if !listening {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(in_use("another process is listening there".to_string()));
        }
        if !logged {
            tracing::warn!(%address, "port in use; waiting for it to be released");
            logged = true;
        }
        std::thread::sleep(PORT_RETRY);
    }
}

/// Binds a TCP socket to every address `address` resolves to, without listening, and closes
/// it: AddrInUse if a listener (or a TIME_WAIT socket) holds the port.
fn bind_without_listening(address: &str) -> std::io::Result<()> {
    use std::net::ToSocketAddrs;
    for target in address.to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(target),
            socket2::Type::STREAM,
            None,
        )?;
        // As std's TcpListener::bind: TIME_WAIT sockets do not count, a listener does.
        socket.set_reuse_address(true)?;
        socket.bind(&target.into())?;
    }
    Ok(())
}

/// Retention runs in its own low-priority task queue so it never delays produce/fetch;
/// compaction in another (see `spawn_compaction`).
fn spawn_retention(shard: &Rc<Shard>) {
    spawn_compaction(shard);
    let interval = Duration::from_millis(shard.config.storage.retention_check_interval_ms);
    let queue = glommio::executor().create_task_queue(
        Shares::Static(100),
        Latency::NotImportant,
        "retention",
    );
    let shard = shard.clone();
    let spawned = glommio::spawn_local_into(
        async move {
            loop {
                glommio::timer::sleep(interval).await;
                for (partition, log) in shard.owned_logs() {
                    match log.apply_retention(now_ms()).await {
                        Ok(0) => {}
                        Ok(deleted) => {
                            tracing::info!(shard = %shard.id, %partition, deleted, "retention deleted segments")
                        }
                        Err(error) => {
                            tracing::error!(shard = %shard.id, %partition, %error, "retention failed")
                        }
                    }
                }
            }
        },
        queue,
    );
    match spawned {
        Ok(task) => {
            task.detach();
        }
        Err(error) => tracing::error!(%error, "cannot start retention task"),
    }
}

/// Shares of the compaction task queue: half of retention's, far below request work
/// (glommio's default queue has 1000).
const COMPACTION_SHARES: usize = 50;

/// Compaction runs in its own low-priority task queue: every
/// `storage.compaction_check_interval_ms`, each owned partition of a compacted topic whose
/// dirty ratio, max lag or tombstone deadline says so gets one pass, one partition at a
/// time (each pass paced by `storage.compaction_io_bytes_per_second`).
fn spawn_compaction(shard: &Rc<Shard>) {
    let queue = glommio::executor().create_task_queue(
        Shares::Static(COMPACTION_SHARES),
        Latency::NotImportant,
        "compaction",
    );
    let shard = shard.clone();
    let spawned = glommio::spawn_local_into(
        async move {
            loop {
                // Dynamic (`log.cleaner.backoff.ms`): read again before every wait.
                let interval = shard
                    .effective_config()
                    .storage
                    .compaction_check_interval_ms;
                glommio::timer::sleep(Duration::from_millis(interval)).await;
                for (partition, log) in shard.owned_logs() {
                    if !log.compaction_due(now_ms()) {
                        continue;
                    }
                    match log.compact(now_ms()).await {
                        Ok(stats) if stats.aborted => {
                            tracing::info!(shard = %shard.id, %partition, "compaction pass abandoned; retried later")
                        }
                        Ok(_) | Err(crate::storage::StorageError::Closed) => {}
                        Err(error) => {
                            tracing::error!(shard = %shard.id, %partition, %error, "compaction failed")
                        }
                    }
                }
            }
        },
        queue,
    );
    match spawned {
        Ok(task) => {
            task.detach();
        }
        Err(error) => tracing::error!(%error, "cannot start compaction task"),
    }
}
