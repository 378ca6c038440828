//! `BatchCache`: per-shard memory for recent batches (explicit byte budget, FIFO eviction)
//! and the per-shard registry of open segment files (at most `open_segments_max`).
//!
//! Each log keeps its in-memory batches in a `MemoryBatches` map that holds two kinds of
//! entry: *pending* ones (appended, not yet written to disk; they never leave memory until
//! the flusher has written them) and *cached* ones (written; admitted to this cache, which
//! may evict them). Eviction is the only path that frees cached memory.
//!
//! Owns: budget accounting, the eviction queue, hit/miss counters, the open-file LRU, and
//! a small pool of reusable DMA write buffers.
//! May import: `super::segment`. Runs on: one shard; shared by that shard's logs via `Rc`.
//! Invariants: `used_bytes` is the sum of the queue's entries and stays <= budget after
//! every `admit`; the registry never holds more than `open_segments_max` handles.

use super::segment::{FileSlot, FileSlotInner};
use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::{Rc, Weak};

/// Write buffers of at least this size are kept for reuse (fresh large allocations cost a
/// page fault per 4 KiB on first touch).
const POOLED_WRITE_BUFFER_BYTES_MIN: usize = 64 * 1024;
/// Write buffers kept per shard: at most this many × `write_chunk_bytes` of memory.
const POOLED_WRITE_BUFFERS_MAX: usize = 16;

/// Default for `BatchCache::new`; `PartitionLog::open` applies `LogConfig::open_segments_max`.
const OPEN_SEGMENTS_MAX_DEFAULT: usize = 4096;

/// One batch held in memory by a log.
#[derive(Debug, Clone)]
pub(crate) struct MemoryBatch {
    pub bytes: Bytes,
    pub next_offset: i64,
    /// 0 while pending (not yet written); else the cache ticket that may evict it.
    pub ticket: u64,
}

/// A log's in-memory batches by base offset.
pub(crate) type MemoryBatches = RefCell<BTreeMap<i64, MemoryBatch>>;

/// Looks up the batch containing `offset` in a log's memory.
pub(crate) fn batch_containing(memory: &MemoryBatches, offset: i64) -> Option<(i64, Bytes)> {
    let map = memory.borrow();
    let (base, batch) = map.range(..=offset).next_back()?;
    (batch.next_offset > offset).then(|| (*base, batch.bytes.clone()))
}

struct Ticket {
    id: u64,
    log_id: u64,
    base_offset: i64,
    bytes: u64,
}

/// Counters exposed for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub budget_bytes: u64,
    pub used_bytes: u64,
    /// Batches served from memory.
    pub hits: u64,
    /// DMA reads issued for batches not in memory.
    pub misses: u64,
    pub evictions: u64,
    pub open_segment_files: usize,
}

/// Per-shard cache of recent batches, bounded by a byte budget.
pub struct BatchCache {
    budget_bytes: u64,
    used_bytes: Cell<u64>,
    queue: RefCell<VecDeque<Ticket>>,
    logs: RefCell<HashMap<u64, Weak<MemoryBatches>>>,
    next_id: Cell<u64>,
    hits: Cell<u64>,
    misses: Cell<u64>,
    evictions: Cell<u64>,
    open_files: RefCell<OpenFiles>,
    write_buffers: RefCell<Vec<DmaBuffer>>,
}

impl std::fmt::Debug for BatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl BatchCache {
    pub fn new(budget_bytes: u64) -> BatchCache {
        BatchCache {
            budget_bytes,
            used_bytes: Cell::new(0),
            queue: RefCell::new(VecDeque::new()),
            logs: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
            hits: Cell::new(0),
            misses: Cell::new(0),
            evictions: Cell::new(0),
            open_files: RefCell::new(OpenFiles {
                max: OPEN_SEGMENTS_MAX_DEFAULT,
                tick: 0,
                entries: HashMap::new(),
            }),
            write_buffers: RefCell::new(Vec::new()),
        }
    }

    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            budget_bytes: self.budget_bytes,
            used_bytes: self.used_bytes.get(),
            hits: self.hits.get(),
            misses: self.misses.get(),
            evictions: self.evictions.get(),
            open_segment_files: self.open_files.borrow().entries.len(),
        }
    }

    /// Limits the segment files this shard keeps open for reads (least recently read are
    /// closed first). Active segments being written are not counted.
    pub fn set_open_segments_max(&self, max: usize) {
        self.open_files.borrow_mut().max = max.max(1);
    }

    pub(crate) fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    pub(crate) fn register_log(&self, log_id: u64, memory: &Rc<MemoryBatches>) {
        self.logs.borrow_mut().insert(log_id, Rc::downgrade(memory));
    }

    pub(crate) fn unregister_log(&self, log_id: u64) {
        self.logs.borrow_mut().remove(&log_id);
    }

    pub(crate) fn count_hit(&self) {
        self.hits.set(self.hits.get() + 1);
    }

    pub(crate) fn count_miss(&self) {
        self.misses.set(self.misses.get() + 1);
    }

    /// Turns a pending (just written) batch of `memory` into a cached one, then evicts the
    /// oldest cached batches of this shard until the budget holds again. The caller must
    /// not hold a borrow of any log's memory.
    pub(crate) fn admit(&self, log_id: u64, memory: &MemoryBatches, base_offset: i64) {
        let bytes = {
            let mut map = memory.borrow_mut();
            let Some(batch) = map.get_mut(&base_offset) else {
                return;
            };
            if batch.ticket != 0 {
                return;
            }
            batch.ticket = self.next_id();
            self.queue.borrow_mut().push_back(Ticket {
                id: batch.ticket,
                log_id,
                base_offset,
                bytes: batch.bytes.len() as u64,
            });
            batch.bytes.len() as u64
        };
        self.used_bytes.set(self.used_bytes.get() + bytes);
        self.evict_to(self.budget_bytes);
    }

    fn evict_to(&self, budget: u64) {
        while self.used_bytes.get() > budget {
            let Some(ticket) = self.queue.borrow_mut().pop_front() else {
                break;
            };
            self.used_bytes
                .set(self.used_bytes.get().saturating_sub(ticket.bytes));
            self.evictions.set(self.evictions.get() + 1);
            let memory = self.logs.borrow().get(&ticket.log_id).map(Weak::upgrade);
            if let Some(None) = memory {
                // The log was dropped without `close`.
                self.logs.borrow_mut().remove(&ticket.log_id);
            }
            if let Some(Some(memory)) = memory {
                let mut map = memory.borrow_mut();
                if map
                    .get(&ticket.base_offset)
                    .is_some_and(|batch| batch.ticket == ticket.id)
                {
                    map.remove(&ticket.base_offset);
                }
            }
        }
    }

    /// Registers (or refreshes) an open read handle; may close the least recently used one.
    pub(crate) fn touch_file(&self, uid: u64, slot: &FileSlot) {
        let evicted = self.open_files.borrow_mut().touch(uid, slot);
        // Dropped outside the registry borrow: closing happens on drop.
        drop(evicted);
    }

    /// An aligned write buffer of exactly `len` bytes, reused if one is pooled.
    pub(crate) fn take_write_buffer(&self, file: &DmaFile, len: usize) -> DmaBuffer {
        let mut pool = self.write_buffers.borrow_mut();
        match pool.iter().position(|b| b.len() == len) {
            Some(i) => pool.swap_remove(i),
            None => file.alloc_dma_buffer(len),
        }
    }

    pub(crate) fn return_write_buffer(&self, buffer: DmaBuffer) {
        let mut pool = self.write_buffers.borrow_mut();
        if buffer.len() >= POOLED_WRITE_BUFFER_BYTES_MIN && pool.len() < POOLED_WRITE_BUFFERS_MAX {
            pool.push(buffer);
        }
    }

    pub(crate) fn forget_file(&self, uid: u64) {
        self.open_files.borrow_mut().entries.remove(&uid);
    }
}

struct OpenFiles {
    max: usize,
    tick: u64,
    entries: HashMap<u64, (u64, Weak<FileSlotInner>)>,
}

impl OpenFiles {
    fn touch(&mut self, uid: u64, slot: &FileSlot) -> Vec<Rc<DmaFile>> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.entries.get_mut(&uid) {
            entry.0 = tick;
            return Vec::new();
        }
        let mut evicted = Vec::new();
        while self.entries.len() >= self.max {
            let Some((&oldest, _)) = self.entries.iter().min_by_key(|(_, (t, _))| *t) else {
                break;
            };
            if let Some((_, weak)) = self.entries.remove(&oldest)
                && let Some(slot) = weak.upgrade()
                && let Some(file) = slot.borrow_mut().take()
            {
                evicted.push(file);
            }
        }
        self.entries.insert(uid, (tick, Rc::downgrade(slot)));
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(memory: &MemoryBatches, base: i64, len: usize) {
        memory.borrow_mut().insert(
            base,
            MemoryBatch {
                bytes: Bytes::from(vec![0u8; len]),
                next_offset: base + 1,
                ticket: 0,
            },
        );
    }

    #[test]
    fn eviction_keeps_budget_and_pending() {
        let cache = BatchCache::new(250);
        let memory: Rc<MemoryBatches> = Rc::new(RefCell::new(BTreeMap::new()));
        cache.register_log(1, &memory);
        for base in 0..5 {
            insert(&memory, base, 100);
        }
        for base in 0..3 {
            cache.admit(1, &memory, base);
            assert!(cache.stats().used_bytes <= 250);
        }
        // 0 evicted; 1, 2 cached; 3, 4 pending stay whatever the budget.
        let keys: Vec<i64> = memory.borrow().keys().copied().collect();
        assert_eq!(keys, vec![1, 2, 3, 4]);
        assert_eq!(cache.stats().evictions, 1);
        assert!(batch_containing(&memory, 2).is_some());
        assert!(batch_containing(&memory, 0).is_none());
    }
}
