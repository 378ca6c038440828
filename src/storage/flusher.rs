//! The flusher: one task per partition log that writes appended batches to the active
//! segment with O_DIRECT and makes them durable with fdatasync (group commit).
//!
//! A round takes every pending batch of one segment, copies it behind the carried partial
//! last block into aligned DMA buffers (zero padding after the data), issues the
//! non-overlapping writes concurrently in `write_chunk_bytes` pieces, awaits them all, then
//! publishes the new *flushed* offset. It then starts an fdatasync (as its own task, so the
//! next round's writes overlap it) if the policy or a `wait_synced` caller asks, and the
//! sync publishes *synced* when it returns. Appends that arrive meanwhile wait in the pending
//! queue and go out together in the next round: N acks=all producers share one fdatasync.
//!
//! Owns: `WriteCursor` (active segment file, bytes on disk, carried tail block), segment
//! file creation and finishing (trim, sync, index files). May import: storage modules,
//! glommio. Runs on: a task spawned on the shard owning the partition.
//! Invariants: at most one round is in flight (it holds `disk_lock`) and at most one sync;
//! writes of a round never overlap a block of another in-flight write; a block is rewritten
//! only after the previous write of it completed; a sync covers only writes that completed
//! before it started; flushed/synced only advance after the I/O they stand for returned.

use super::StorageError;
use super::checkpoint;
use super::index;
use super::io::{self, BLOCK_BYTES};
use super::log::SyncRule;
use super::segment::{self, Segment};
use super::state::{LogState, PendingWrite};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use glommio::io::{DmaBuffer, DmaFile};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Concurrent O_DIRECT writes of one round.
const WRITES_IN_FLIGHT_MAX: usize = 8;

/// Where the flusher writes next.
pub(crate) struct WriteCursor {
    pub segment: Rc<Segment>,
    pub file: Rc<DmaFile>,
    /// Valid bytes of the segment on disk.
    pub disk_bytes: u64,
    /// The bytes of the partial last block: `[align_down(disk_bytes), disk_bytes)`.
    pub carry: Vec<u8>,
}

impl WriteCursor {
    /// Builds a cursor over an existing file, reading its partial last block back.
    pub(crate) async fn reopen(
        segment: Rc<Segment>,
        file: Rc<DmaFile>,
        disk_bytes: u64,
    ) -> Result<WriteCursor, StorageError> {
        let block = io::align_down(disk_bytes);
        let carry = io::read_at(
            &file,
            &segment.log_path,
            block,
            (disk_bytes - block) as usize,
        )
        .await?;
        if carry.len() as u64 != disk_bytes - block {
            return Err(StorageError::io(
                "read",
                &segment.log_path,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tail block short"),
            ));
        }
        Ok(WriteCursor {
            segment,
            file,
            disk_bytes,
            carry,
        })
    }
}

/// The flusher task body. Exits when the log closes (after draining) or fails.
pub(crate) async fn run(state: Rc<LogState>) {
    state.flusher_running.set(true);
    loop {
        wait_for_work(&state).await;
        if state.is_failed() || (state.closing.get() && drained(&state)) {
            break;
        }
        if !state.pending.borrow().is_empty() {
            let Ok(permit) = state.disk_lock.acquire_permit(1).await else {
                break;
            };
            let result = round(&state).await;
            drop(permit);
            if let Err(error) = result {
                state.fail(&error);
                break;
            }
        }
        if sync_needed(&state) {
            start_sync(&state);
        }
    }
    state
        .progress
        .wait_until(|| !state.sync_in_flight.get())
        .await;
    state.flusher_running.set(false);
    state.progress.notify();
    state.appended.notify();
}

/// Nothing left to write or sync, and no sync running.
fn drained(state: &LogState) -> bool {
    state.pending.borrow().is_empty()
        && !state.sync_in_flight.get()
        && state.flushed.get() <= state.synced.get()
}

fn has_work(state: &LogState) -> bool {
    !state.pending.borrow().is_empty() || sync_needed(state)
}

/// A sync should start now: flushed data is unsynced, someone (or the policy) wants it,
/// and no sync is running (the running one wakes the flusher when it ends).
fn sync_needed(state: &LogState) -> bool {
    let synced = state.synced.get();
    !state.sync_in_flight.get()
        && state.flushed.get() > synced
        && (state.closing.get() || state.sync_wanted.get() > synced || sync_due(state))
}

fn sync_due(state: &LogState) -> bool {
    match SyncRule::of(&state.config.borrow()) {
        SyncRule::EveryRound => true,
        SyncRule::Interval(interval) => state.last_sync.get().elapsed() >= interval,
        SyncRule::Bytes(bytes) => state.unsynced_bytes.get() >= bytes,
    }
}

async fn wait_for_work(state: &LogState) {
    let ready = || state.is_failed() || has_work(state) || (state.closing.get() && drained(state));
    let timeout = match SyncRule::of(&state.config.borrow()) {
        SyncRule::Interval(interval)
            if state.flushed.get() > state.synced.get() && !state.sync_in_flight.get() =>
        {
            Some(interval.saturating_sub(state.last_sync.get().elapsed()))
        }
        _ => None,
    };
    match timeout {
        Some(timeout) => {
            futures_lite::future::or(state.work.wait_until(ready), async move {
                glommio::timer::sleep(timeout.max(Duration::from_millis(1))).await
            })
            .await
        }
        None => state.work.wait_until(ready).await,
    }
}

/// Takes the pending batches of the first pending segment.
fn take_pending(state: &LogState) -> Vec<PendingWrite> {
    let mut pending = state.pending.borrow_mut();
    let Some(uid) = pending.front().map(|p| p.segment.uid) else {
        return Vec::new();
    };
    let count = pending.iter().take_while(|p| p.segment.uid == uid).count();
    pending.drain(..count).collect()
}

async fn round(state: &Rc<LogState>) -> Result<(), StorageError> {
    let items = take_pending(state);
    let Some(first) = items.first() else {
        return Ok(());
    };
    let segment = first.segment.clone();
    let current = state.cursor.borrow_mut().take();
    let mut cursor = match current {
        Some(cursor) if cursor.segment.uid == segment.uid => cursor,
        other => {
            if let Some(old) = other {
                finish_segment(state, old).await?;
            }
            start_segment(state, segment).await?
        }
    };
    let written = write_items(state, &mut cursor, &items).await?;
    let bytes: u64 = items.iter().map(|i| i.bytes.len() as u64).sum();
    cursor.segment.set_disk_bytes(cursor.disk_bytes);
    *state.cursor.borrow_mut() = Some(cursor);
    publish_flushed(state, &items, bytes, written);
    Ok(())
}

fn publish_flushed(state: &LogState, items: &[PendingWrite], bytes: u64, io: u64) {
    if let Some(last) = items.last() {
        state.flushed.set(state.flushed.get().max(last.next_offset));
    }
    state
        .pending_bytes
        .set(state.pending_bytes.get().saturating_sub(bytes));
    state.unsynced_bytes.set(state.unsynced_bytes.get() + bytes);
    state.update_stats(|s| {
        s.write_rounds += 1;
        s.bytes_written += io;
    });
    for item in items {
        state.cache.admit(state.id, &state.memory, item.base_offset);
    }
    state.progress.notify();
}

/// Starts an fdatasync of the active segment as its own task, so the next round's writes
/// proceed meanwhile (they are not covered by it; the next sync covers them).
fn start_sync(state: &Rc<LogState>) {
    let target_file = state
        .cursor
        .borrow()
        .as_ref()
        .map(|c| (c.file.clone(), c.segment.log_path.clone()));
    let Some((file, path)) = target_file else {
        return;
    };
    let target = state.flushed.get();
    let generation = state.generation.get();
    state.sync_in_flight.set(true);
    let state = state.clone();
    glommio::spawn_local(async move {
        let result = sync(&state, &file, &path).await;
        state.sync_in_flight.set(false);
        match result {
            Ok(()) if generation == state.generation.get() => publish_synced(&state, target),
            Ok(()) => {}
            Err(error) => state.fail(&error),
        }
        state.work.notify();
        state.progress.notify();
    })
    .detach();
}

async fn sync(state: &LogState, file: &DmaFile, path: &Path) -> Result<(), StorageError> {
    if state.leader_epochs_dirty.replace(false) {
        let epochs = state.leader_epochs.borrow().clone();
        if let Err(error) = checkpoint::write_leader_epochs(&state.dir, &epochs).await {
            state.leader_epochs_dirty.set(true);
            return Err(error);
        }
    }
    io::fdatasync(file, path).await?;
    state.update_stats(|s| s.syncs += 1);
    Ok(())
}

pub(crate) fn publish_synced(state: &LogState, target: i64) {
    let target = target.min(state.flushed.get());
    if target > state.synced.get() {
        state.synced.set(target);
    }
    if state.synced.get() >= state.flushed.get() {
        state.unsynced_bytes.set(0);
    }
    state.last_sync.set(Instant::now());
    state.progress.notify();
}

/// Creates the file of a new segment (and its roll-time producer snapshot).
async fn start_segment(
    state: &LogState,
    segment: Rc<Segment>,
) -> Result<WriteCursor, StorageError> {
    let snapshot = segment.roll_snapshot.borrow_mut().take();
    if let Some(bytes) = snapshot {
        let path = segment.path(segment::SNAPSHOT_SUFFIX);
        io::write_file_atomically(&path, bytes).await?;
    }
    let file = Rc::new(io::open_segment_rw(&segment.log_path, true).await?);
    io::sync_dir(&state.dir).await?;
    *segment.file.borrow_mut() = Some(file.clone());
    state.cache.touch_file(segment.uid, &segment.file);
    Ok(WriteCursor {
        segment,
        file,
        disk_bytes: 0,
        carry: Vec::new(),
    })
}

/// Completes a sealed segment: trims the padding, syncs, writes its index files. Everything
/// up to its end is then synced (earlier segments were finished before it).
pub(crate) async fn finish_segment(
    state: &LogState,
    cursor: WriteCursor,
) -> Result<(), StorageError> {
    let segment = &cursor.segment;
    assert_eq!(
        cursor.disk_bytes,
        segment.size_bytes(),
        "finishing with unwritten data"
    );
    io::truncate(&cursor.file, &segment.log_path, cursor.disk_bytes).await?;
    io::fdatasync(&cursor.file, &segment.log_path).await?;
    state.update_stats(|s| s.syncs += 1);
    write_indexes(segment, cursor.disk_bytes).await?;
    if segment.is_sealed() {
        segment.set_finished();
    }
    publish_synced(state, segment.next_offset());
    Ok(())
}

/// Writes both index files of `segment`, covering `log_bytes` bytes of it.
pub(crate) async fn write_indexes(segment: &Segment, log_bytes: u64) -> Result<(), StorageError> {
    let (offsets, times) = {
        let index = segment.index.borrow();
        (
            index::encode_offsets(segment.base_offset, log_bytes, &index.offsets),
            index::encode_times(segment.base_offset, log_bytes, &index.times),
        )
    };
    io::write_file_atomically(&segment.path(segment::INDEX_SUFFIX), offsets).await?;
    io::write_file_atomically(&segment.path(segment::TIME_INDEX_SUFFIX), times).await
}

/// Writes `items` (contiguous, starting at `cursor.disk_bytes`) behind the carried block.
/// Returns the bytes handed to the device.
async fn write_items(
    state: &LogState,
    cursor: &mut WriteCursor,
    items: &[PendingWrite],
) -> Result<u64, StorageError> {
    let chunk_bytes = io::align_up(state.config.borrow().write_chunk_bytes.max(BLOCK_BYTES));
    let start = io::align_down(cursor.disk_bytes);
    let new_bytes: u64 = items.iter().map(|i| i.bytes.len() as u64).sum();
    let end = cursor.disk_bytes + new_bytes;
    let write_end = io::align_up(end);
    assert_eq!(
        items[0].position, cursor.disk_bytes,
        "write not at the end of the segment"
    );
    let mut source = Source::new(&cursor.carry, items);
    let mut in_flight = FuturesUnordered::new();
    let mut position = start;
    let mut released = 0;
    let path = &cursor.segment.log_path;
    while position < write_end {
        let len = chunk_bytes.min(write_end - position);
        let mut buffer = state.cache.take_write_buffer(&cursor.file, len as usize);
        let bytes = buffer.as_bytes_mut();
        let filled = source.fill(bytes);
        bytes[filled..].fill(0);
        in_flight.push(write_block(&cursor.file, path, buffer, position));
        // Batches copied out make room for appends while the writes are in flight, so
        // appenders' validation overlaps the device time.
        let copied = source.items_copied();
        let units: u64 = items[released..copied].iter().map(|i| i.units).sum();
        state.admission.signal(units);
        released = copied;
        if in_flight.len() >= WRITES_IN_FLIGHT_MAX
            && let Some(result) = in_flight.next().await
        {
            state.cache.return_write_buffer(result?);
        }
        position += len;
    }
    while let Some(result) = in_flight.next().await {
        state.cache.return_write_buffer(result?);
    }
    let keep = (end - io::align_down(end)) as usize;
    cursor.carry = tail_bytes(&cursor.carry, items, keep);
    cursor.disk_bytes = end;
    Ok(write_end - start)
}

/// Writes one aligned buffer; returns it for reuse.
async fn write_block(
    file: &DmaFile,
    path: &Path,
    buffer: DmaBuffer,
    position: u64,
) -> Result<DmaBuffer, StorageError> {
    let len = buffer.len();
    let buffer = Rc::new(buffer);
    let written = file
        .write_rc_at(buffer.clone(), position)
        .await
        .map_err(|e| io::glommio_err("write", path, e))?;
    if written != len {
        // O_DIRECT writes are all or nothing unless the device is full.
        return Err(StorageError::io(
            "write",
            path,
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        ));
    }
    Rc::try_unwrap(buffer).map_err(|_| {
        StorageError::io(
            "write",
            path,
            std::io::Error::other("write buffer still shared"),
        )
    })
}

/// The byte stream `carry ++ items`, copied out in order.
struct Source<'a> {
    parts: Vec<&'a [u8]>,
    part: usize,
    offset: usize,
}

impl<'a> Source<'a> {
    fn new(carry: &'a [u8], items: &'a [PendingWrite]) -> Source<'a> {
        let mut parts = Vec::with_capacity(items.len() + 1);
        parts.push(carry);
        parts.extend(items.iter().map(|i| &i.bytes[..]));
        Source {
            parts,
            part: 0,
            offset: 0,
        }
    }

    /// Items (not counting the carry) copied out completely so far.
    fn items_copied(&self) -> usize {
        self.part.saturating_sub(1).min(self.parts.len() - 1)
    }

    /// Copies as much as fits into `out`; returns the bytes copied.
    fn fill(&mut self, out: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < out.len() && self.part < self.parts.len() {
            let part = &self.parts[self.part][self.offset..];
            let n = part.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&part[..n]);
            filled += n;
            self.offset += n;
            if self.offset == self.parts[self.part].len() {
                self.part += 1;
                self.offset = 0;
            }
        }
        filled
    }
}

/// The last `keep` bytes of `carry ++ items`.
fn tail_bytes(carry: &[u8], items: &[PendingWrite], keep: usize) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut have = 0;
    for part in items
        .iter()
        .rev()
        .map(|i| &i.bytes[..])
        .chain(std::iter::once(carry))
    {
        if have >= keep {
            break;
        }
        let take = part.len().min(keep - have);
        parts.push(&part[part.len() - take..]);
        have += take;
    }
    let mut out = Vec::with_capacity(keep);
    for part in parts.iter().rev() {
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_spans_items_and_carry() {
        let segment = Rc::new(Segment::new(Path::new("/x"), 0, 1, 0));
        let item = |bytes: &'static [u8]| PendingWrite {
            segment: segment.clone(),
            position: 0,
            bytes: bytes::Bytes::from_static(bytes),
            base_offset: 0,
            next_offset: 1,
            units: 0,
        };
        let items = vec![item(b"abc"), item(b"de")];
        assert_eq!(tail_bytes(b"xy", &items, 4), b"bcde");
        assert_eq!(tail_bytes(b"xy", &items, 7), b"xyabcde");
        assert_eq!(tail_bytes(b"xy", &items, 0), b"");
        let mut source = Source::new(b"xy", &items);
        let mut out = [0u8; 4];
        assert_eq!(source.fill(&mut out), 4);
        assert_eq!(&out, b"xyab");
        assert_eq!(source.fill(&mut out), 3);
        assert_eq!(&out[..3], b"cde");
    }
}
