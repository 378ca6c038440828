//! The flusher's write stream: copies pending batches into aligned DMA buffers and keeps up
//! to `WRITES_IN_FLIGHT_MAX` O_DIRECT writes in flight, continuously, while appends keep
//! arriving (a *burst*). Only the partial last block serialises: a write that starts in the
//! block a previous write ended in (carried, zero-padded) is issued after that write
//! completed. Completions are tracked in issue order; a batch becomes *flushed* once every
//! write up to its end completed.
//!
//! Owns: `Burst` (per-burst in-flight bookkeeping). May import: storage modules, glommio.
//! Runs on: the flusher task, holding `disk_lock` for the whole burst.
//! Invariants: no two in-flight writes cover the same block; the completed frontier only
//! moves over a contiguous prefix of writes; a segment's `disk_bytes` (what reads may take
//! from disk) only moves to batch boundaries at or below that frontier; a segment switch
//! happens with nothing in flight.

use super::StorageError;
use super::flusher::{self, WriteCursor};
use super::io::{self, BLOCK_BYTES};
use super::state::{LogState, PendingWrite};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use glommio::io::{DmaBuffer, DmaFile};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// Concurrent O_DIRECT writes of one partition.
const WRITES_IN_FLIGHT_MAX: usize = 8;

type WriteFuture = LocalBoxFuture<'static, (u64, Result<DmaBuffer, StorageError>)>;

/// One burst's writes in flight and the batches waiting for them.
struct Burst {
    in_flight: FuturesUnordered<WriteFuture>,
    /// (sequence, end of the data it carries, completed), in issue order.
    order: VecDeque<(u64, u64, bool)>,
    /// Batches copied out completely, waiting for their writes, with their end position.
    copied: VecDeque<(PendingWrite, u64)>,
    next_seq: u64,
    /// Bytes of the segment handed to writes (>= the cursor's completed `disk_bytes`).
    issued: u64,
    /// The in-flight write that ends inside a block (the next write must wait for it).
    tail_write: Option<u64>,
}

/// Writes everything pending (and whatever arrives meanwhile) until nothing is left to
/// issue or a truncation asks for quiet, then waits for every write. Returns the cursor.
pub(crate) async fn burst(
    state: &Rc<LogState>,
    cursor: Option<WriteCursor>,
) -> Result<Option<WriteCursor>, StorageError> {
    let mut cursor = cursor;
    let mut burst = Burst {
        in_flight: FuturesUnordered::new(),
        order: VecDeque::new(),
        copied: VecDeque::new(),
        next_seq: 0,
        issued: cursor.as_ref().map_or(0, |c| c.disk_bytes),
        tail_write: None,
    };
    loop {
        while burst.in_flight.len() < WRITES_IN_FLIGHT_MAX && state.quiesce.get() == 0 {
            let Some(segment) = state.pending.borrow().front().map(|p| p.segment.clone()) else {
                break;
            };
            if cursor.as_ref().is_none_or(|c| c.segment.uid != segment.uid) {
                if !burst.in_flight.is_empty() {
                    break;
                }
                if let Some(old) = cursor.take() {
                    flusher::finish_segment(state, old).await?;
                }
                let fresh = flusher::start_segment(state, segment).await?;
                burst.issued = fresh.disk_bytes;
                cursor = Some(fresh);
            }
            let Some(c) = cursor.as_mut() else {
                break;
            };
            if burst.tail_write.is_some() {
                break;
            }
            issue_chunk(state, c, &mut burst);
        }
        let Some((seq, result)) = burst.in_flight.next().await else {
            return Ok(cursor);
        };
        state.cache.return_write_buffer(result?);
        if let Some(c) = cursor.as_mut() {
            complete(state, c, &mut burst, seq);
        }
        if flusher::sync_needed(state)
            && let Some(c) = cursor.as_ref()
        {
            flusher::start_sync(state, c.file.clone(), c.segment.log_path.clone());
        }
    }
}

/// Copies the next chunk (carried partial block, then pending batches of the cursor's
/// segment) into a buffer and issues its write.
fn issue_chunk(state: &LogState, cursor: &mut WriteCursor, burst: &mut Burst) {
    let chunk = io::align_up(state.config.borrow().write_chunk_bytes.max(BLOCK_BYTES)) as usize;
    let start = io::align_down(burst.issued);
    let carry = cursor.carry.len();
    let available = available_bytes(state, cursor, burst.issued, chunk - carry);
    let len = chunk.min(io::align_up((carry + available) as u64) as usize);
    let mut buffer = state.cache.take_write_buffer(&cursor.file, len);
    let bytes = buffer.as_bytes_mut();
    bytes[..carry].copy_from_slice(&cursor.carry);
    let filled = carry + copy_pending(state, cursor, burst, &mut bytes[carry..]);
    bytes[filled..].fill(0);
    let end = start + filled as u64;
    let keep_from = (io::align_down(end) - start) as usize;
    cursor.carry = bytes[keep_from..filled].to_vec();
    let seq = burst.next_seq;
    burst.next_seq += 1;
    burst.order.push_back((seq, end, false));
    burst.tail_write = (!end.is_multiple_of(BLOCK_BYTES)).then_some(seq);
    burst.issued = end;
    let file = cursor.file.clone();
    let path = cursor.segment.log_path.clone();
    state.update_stats(|s| {
        s.writes += 1;
        s.bytes_written += len as u64;
    });
    let stats = state.shard_stats.clone();
    let issued_at = Instant::now();
    burst.in_flight.push(Box::pin(async move {
        let written = write_block(file, path, buffer, start, seq).await;
        stats.record_write(issued_at.elapsed());
        written
    }));
}

/// Pending bytes of the cursor's segment not yet copied, counting at most up to `limit`.
fn available_bytes(state: &LogState, cursor: &WriteCursor, issued: u64, limit: usize) -> usize {
    let mut total = 0usize;
    for item in state.pending.borrow().iter() {
        if item.segment.uid != cursor.segment.uid || total >= limit {
            break;
        }
        let done = issued.saturating_sub(item.position) as usize;
        total += item.bytes.len().saturating_sub(done);
    }
    total
}

/// Copies pending batches into `out` from where the last chunk stopped; batches copied
/// completely move to `burst.copied` and give their admission units back.
fn copy_pending(
    state: &LogState,
    cursor: &WriteCursor,
    burst: &mut Burst,
    out: &mut [u8],
) -> usize {
    let mut filled = 0;
    let mut units = 0;
    let mut pending = state.pending.borrow_mut();
    while filled < out.len() {
        let Some(item) = pending.front() else {
            break;
        };
        if item.segment.uid != cursor.segment.uid {
            break;
        }
        let done = (burst.issued + filled as u64 - item.position) as usize;
        assert!(done < item.bytes.len(), "pending batch already copied");
        let n = (item.bytes.len() - done).min(out.len() - filled);
        out[filled..filled + n].copy_from_slice(&item.bytes[done..done + n]);
        filled += n;
        if done + n == item.bytes.len()
            && let Some(item) = pending.pop_front()
        {
            units += item.units;
            let end = item.position + item.bytes.len() as u64;
            burst.copied.push_back((item, end));
        }
    }
    drop(pending);
    // Batches copied out make room for appends while the writes are in flight, so the
    // appenders' validation overlaps the device time.
    state.admission.signal(units);
    filled
}

/// Records the completion of write `seq`; publishes the batches it made flushed.
fn complete(state: &LogState, cursor: &mut WriteCursor, burst: &mut Burst, seq: u64) {
    if let Some(entry) = burst.order.iter_mut().find(|(s, _, _)| *s == seq) {
        entry.2 = true;
    }
    while let Some(&(_, end, true)) = burst.order.front() {
        cursor.disk_bytes = end;
        burst.order.pop_front();
    }
    if burst.tail_write == Some(seq) {
        burst.tail_write = None;
    }
    let mut bytes = 0u64;
    let mut flushed = None;
    while burst
        .copied
        .front()
        .is_some_and(|(_, end)| *end <= cursor.disk_bytes)
    {
        let Some((item, end)) = burst.copied.pop_front() else {
            break;
        };
        cursor.segment.set_disk_bytes(end);
        bytes += item.bytes.len() as u64;
        flushed = Some(item.next_offset);
        state.cache.admit(state.id, &state.memory, item.base_offset);
    }
    if let Some(next_offset) = flushed {
        flusher::publish_flushed(state, next_offset, bytes);
    }
}

/// Writes one aligned buffer at `position`; returns it for reuse.
async fn write_block(
    file: Rc<DmaFile>,
    path: PathBuf,
    buffer: DmaBuffer,
    position: u64,
    seq: u64,
) -> (u64, Result<DmaBuffer, StorageError>) {
    let len = buffer.len();
    let buffer = Rc::new(buffer);
    let result = match file.write_rc_at(buffer.clone(), position).await {
        Ok(written) if written == len => Rc::try_unwrap(buffer).map_err(|_| {
            StorageError::io(
                "write",
                &path,
                std::io::Error::other("write buffer still shared"),
            )
        }),
        // O_DIRECT writes are all or nothing unless the device is full.
        Ok(_) => Err(StorageError::io(
            "write",
            &path,
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        )),
        Err(error) => Err(io::glommio_err("write", &path, error)),
    };
    (seq, result)
}
