//! Background work that keeps what recovery relies on true and finds damage early: every
//! `storage.recovery_point_checkpoint_interval_ms` each log checkpoints its recovery point
//! (the synced offset; recovery refuses a log that ends below it), and the scrub re-reads
//! every finished segment at `storage.scrub_bytes_per_second` per shard, one pass every
//! `storage.scrub_interval_ms`, reporting corrupt batches in the log and /metrics.
//!
//! Owns: those two tasks. May import: storage. Runs on: every shard, in low-priority task
//! queues (request work is never delayed by them).
//! Invariants: both only read logs or write their checkpoint files; a closed log is
//! skipped.

use super::Shard;
use crate::storage::StorageError;
use glommio::{Latency, Shares};
use std::rc::Rc;
use std::time::Duration;

/// Shares of the integrity task queue (glommio's default queue has 1000).
const INTEGRITY_SHARES: usize = 50;

impl Shard {
    pub(super) fn spawn_integrity_tasks(self: &Rc<Self>) {
        let queue = glommio::executor().create_task_queue(
            Shares::Static(INTEGRITY_SHARES),
            Latency::NotImportant,
            "integrity",
        );
        let checkpoints = self.clone();
        let scrub = self.clone();
        for (name, task) in [
            (
                "recovery point checkpoints",
                Box::pin(async move { checkpoints.checkpoint_loop().await })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
            ),
            ("scrub", Box::pin(async move { scrub.scrub_loop().await })),
        ] {
            match glommio::spawn_local_into(task, queue) {
                Ok(task) => task.detach(),
                Err(error) => {
                    tracing::error!(shard = %self.id, %error, task = name, "cannot start task");
                    continue;
                }
            };
        }
    }

    async fn checkpoint_loop(self: Rc<Self>) {
        let interval =
            Duration::from_millis(self.config.storage.recovery_point_checkpoint_interval_ms);
        loop {
            glommio::timer::sleep(interval).await;
            for (partition, log) in self.owned_logs() {
                if log.is_failed() {
                    continue;
                }
                match log.checkpoint_recovery_point().await {
                    Ok(_) | Err(StorageError::Closed) => {}
                    Err(error) => {
                        tracing::warn!(shard = %self.id, %partition, %error, "cannot checkpoint the recovery point")
                    }
                }
                match log.checkpoint_high_watermark().await {
                    Ok(()) | Err(StorageError::Closed) => {}
                    Err(error) => {
                        tracing::warn!(shard = %self.id, %partition, %error, "cannot checkpoint the high watermark")
                    }
                }
            }
        }
    }

    async fn scrub_loop(self: Rc<Self>) {
        let rate = self.config.storage.scrub_bytes_per_second;
        if rate == 0 {
            return;
        }
        let interval = Duration::from_millis(self.config.storage.scrub_interval_ms);
        loop {
            let mut found = 0;
            let logs = self.owned_logs();
            for (partition, log) in &logs {
                match log.scrub(rate).await {
                    Ok(stats) => {
                        found += stats.corrupt_found;
                        self.scrubbed_bytes
                            .set(self.scrubbed_bytes.get().saturating_add(stats.bytes));
                    }
                    Err(StorageError::Closed) => {}
                    Err(error) => {
                        tracing::warn!(shard = %self.id, %partition, %error, "scrub failed")
                    }
                }
            }
            tracing::info!(shard = %self.id, logs = logs.len(), corrupt_found = found, "scrub pass finished");
            glommio::timer::sleep(interval).await;
        }
    }
}
