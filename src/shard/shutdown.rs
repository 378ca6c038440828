//! Graceful shutdown. The signal thread (main.rs) calls `request_shutdown`; every shard's
//! watcher task sees it and fires the shard's `ShutdownSignal`, which stops the accept loop
//! and the connection readers (in-flight responses are still written). When every shard has
//! stopped serving, each one syncs and closes its logs (writing clean-shutdown markers).

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::Shared;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How often a shard checks the process-wide shutdown flag.
const WATCH_INTERVAL: Duration = Duration::from_millis(50);

static SHUTDOWN_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set when a shard could not close one of its logs cleanly.
static LOG_CLOSE_FAILED: AtomicBool = AtomicBool::new(false);

/// A log did not close cleanly: this process's stop is not a clean shutdown.
pub fn mark_log_close_failed() {
    LOG_CLOSE_FAILED.store(true, Ordering::SeqCst);
}

/// Every log closed so far closed cleanly (main asks once the shards have stopped).
pub fn logs_closed_cleanly() -> bool {
    !LOG_CLOSE_FAILED.load(Ordering::SeqCst)
}

/// Asks every shard to stop. Safe to call from any thread (the signal thread).
pub fn request_shutdown() {
    SHUTDOWN_REQUESTED.store(true, Ordering::SeqCst);
}

pub fn shutdown_requested() -> bool {
    SHUTDOWN_REQUESTED.load(Ordering::SeqCst)
}

/// Completes when shutdown has been requested. Cheap to clone and await from many tasks.
pub type ShutdownSignal =
    Shared<futures::future::Map<oneshot::Receiver<()>, fn(Result<(), oneshot::Canceled>)>>;

/// Creates this shard's signal and spawns the task that fires it.
pub fn watch_for_shutdown() -> ShutdownSignal {
    let (fire, fired) = oneshot::channel::<()>();
    glommio::spawn_local(async move {
        while !shutdown_requested() {
            glommio::timer::sleep(WATCH_INTERVAL).await;
        }
        let _ = fire.send(());
    })
    .detach();
    let ignore: fn(Result<(), oneshot::Canceled>) = |_| ();
    fired.map(ignore).shared()
}

/// Counts shards that have stopped serving, so logs close only once nobody can still send
/// them work.
#[derive(Debug, Clone, Default)]
pub struct StoppedShards(Arc<AtomicUsize>);

impl StoppedShards {
    pub fn mark_stopped(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub async fn wait_all(&self, shard_count: usize) {
        while self.0.load(Ordering::SeqCst) < shard_count {
            glommio::timer::sleep(WATCH_INTERVAL).await;
        }
    }
}
