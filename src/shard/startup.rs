//! The start-up barrier: no shard serves Kafka clients, and `/health/ready` does not say
//! ready, until every shard has opened every partition it owns (and loaded its groups and
//! transactions). A shard that recovers a large log therefore holds back the whole broker
//! instead of letting clients in while some of its partitions are missing.
//!
//! Owns: `StartupBarrier`. May import: std. Runs on: every shard (the counter is shared
//! across threads).
//! Invariants: the count only grows, once per shard; `wait_all` returns early only when
//! shutdown was requested.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often a waiting shard looks at the count (start-up only).
const POLL_INTERVAL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Default)]
pub struct StartupBarrier(Arc<AtomicUsize>);

impl StartupBarrier {
    /// This shard has opened everything it owns.
    pub fn mark_opened(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Every one of `shard_count` shards has.
    pub fn complete(&self, shard_count: usize) -> bool {
        self.0.load(Ordering::SeqCst) >= shard_count
    }

    /// Waits until every shard has opened everything (or shutdown is requested).
    pub async fn wait_all(&self, shard_count: usize) {
        while !self.complete(shard_count) && !super::shutdown::shutdown_requested() {
            glommio::timer::sleep(POLL_INTERVAL).await;
        }
    }
}
