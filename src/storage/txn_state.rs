//! The partition side of transactions (KIP-98; Kafka's ProducerStateManager transaction
//! part and TransactionIndex): ongoing transactions and the last stable offset (LSO), the
//! aborted-transaction index, fencing by transaction markers, and per-producer data for
//! DescribeProducers.
//!
//! Owns: `TxnState`, the `<base>.txnindex` file format, the transaction section of the
//! producer snapshot, read_committed reads. May import: `crate::model`, storage modules.
//! Runs on: the shard owning the partition; every change happens inside an append,
//! a truncation or recovery, without an `.await` between reading and writing the state.
//! Truncation's directory listing and unlink run on the shard's blocking pool
//! (`blocking_fs`); the unlink of an empty segment's index at roll stays on the shard
//! (docs/durability.md, "Blocking file-system calls").
//!
//! Invariants: a producer has at most one ongoing transaction, started by its first
//! transactional data batch after its previous marker and ended by its next COMMIT/ABORT
//! marker; `ongoing` holds exactly the `(first offset, producer id)` of those transactions;
//! aborted entries are in strictly increasing marker (`last_offset`) order and each one's
//! `last_stable_offset` is the LSO right after its marker (no transaction that started
//! below it ends after this entry), which bounds index searches as in Kafka.
//!
//! Persistence: the producers and ongoing transactions are a section of every producer
//! snapshot (`<offset>.snapshot`, taken at each roll and at `close`); recovery loads the
//! newest snapshot at or below the log end and replays the batches after it, which also
//! regenerates the aborted entries of markers at or past that snapshot. Aborted entries of
//! earlier markers come from the `.txnindex` file of their segment, written when the
//! segment is finished (and for the active segment at `close`) before its offset index and
//! before any later snapshot, so every snapshot recovery may use has the entries below it on
//! disk. A marker is therefore durable exactly when its batch is: no extra write delays its
//! acknowledgement. A segment without aborted transactions has no `.txnindex` file.

use super::StorageError;
use super::blocking_fs::{BlockingOp, run_off_shard};
use super::io;
use super::log::{ReadLimits, ReadResult};
use super::producer::ProducerStateMap;
use super::reader;
use super::segment::{self, Segment};
use super::state::LogState;
use crate::model::Offset;
use crate::model::batch::RecordBatchHeader;
use crate::model::records::{control_record_commits, read_records};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::rc::Rc;

pub(crate) const TXN_INDEX_SUFFIX: &str = "txnindex";
const INDEX_MAGIC: &[u8; 4] = b"SLTX";
const INDEX_VERSION: u16 = 1;
/// magic, version, segment base offset, offset the file covers up to, entry count.
const INDEX_HEADER_BYTES: usize = 4 + 2 + 8 + 8 + 4;
/// Kafka's AbortedTxn entry: version i16, producer id, first, last, last stable offset.
const INDEX_ENTRY_BYTES: usize = 34;
const INDEX_ENTRY_VERSION: i16 = 0;
const SECTION_VERSION: u16 = 1;
/// producer id, epoch, coordinator epoch, last timestamp, last offset, txn first offset.
const SECTION_PRODUCER_BYTES: usize = 8 + 2 + 4 + 8 + 8 + 8;

/// An aborted transaction overlapping a read_committed read, as Kafka's Fetch response
/// lists it: the consumer drops this producer's transactional batches from `first_offset`
/// up to its ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: Offset,
}

/// One producer's state in this partition, as Kafka's DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the last record of its last idempotent batch; -1 if none is known.
    pub last_sequence: i32,
    /// Max timestamp of its last batch (data or marker); -1 if unknown.
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker; -1 if none.
    pub coordinator_epoch: i32,
    /// First offset of its ongoing transaction; -1 if none.
    pub current_txn_start_offset: i64,
}

/// An entry of the aborted-transaction index (Kafka's AbortedTxn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// What a batch means for transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchKind {
    Data {
        transactional: bool,
    },
    /// A transactional control batch whose record is a COMMIT or ABORT marker.
    Marker {
        commit: bool,
        coordinator_epoch: i32,
    },
    /// Any other control batch (unknown record type, unreadable record).
    OtherControl,
}

/// The transaction-relevant fields of a batch with a producer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub kind: BatchKind,
    pub max_timestamp: i64,
}

impl TxnBatch {
    /// `None` for batches without a producer id. Reads the record of control batches only.
    pub(crate) fn of(bytes: &[u8]) -> Option<TxnBatch> {
        let header = RecordBatchHeader::view(bytes).ok()?;
        if !header.has_producer_id() {
            return None;
        }
        let kind = if !header.is_control() {
            BatchKind::Data {
                transactional: header.is_transactional(),
            }
        } else if header.is_transactional() {
            marker_kind(bytes)
        } else {
            BatchKind::OtherControl
        };
        Some(TxnBatch {
            producer_id: header.producer_id.get(),
            epoch: header.producer_epoch.get(),
            kind,
            max_timestamp: header.max_timestamp.get(),
        })
    }
}

/// Kafka's control record: key [version i16, type i16], value [version i16, coordinator
/// epoch i32].
fn marker_kind(bytes: &[u8]) -> BatchKind {
    let Ok(records) = read_records(bytes) else {
        return BatchKind::OtherControl;
    };
    let Some(record) = records.first() else {
        return BatchKind::OtherControl;
    };
    let Some(commit) = record.key.and_then(control_record_commits) else {
        return BatchKind::OtherControl;
    };
    let coordinator_epoch = record
        .value
        .and_then(|value| value.get(2..6))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(-1, i32::from_be_bytes);
    BatchKind::Marker {
        commit,
        coordinator_epoch,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TxnProducer {
    epoch: i16,
    coordinator_epoch: i32,
    last_timestamp: i64,
    last_offset: i64,
    txn_first_offset: Option<i64>,
}

/// Transactions of one partition; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnState {
    producers: HashMap<i64, TxnProducer>,
    /// `(first offset, producer id)` of every ongoing transaction.
    ongoing: BTreeSet<(i64, i64)>,
    aborted: VecDeque<AbortedTxn>,
    /// Offset of the last marker applied, -1 if none: a truncation above it cannot reopen
    /// a completed transaction.
    last_marker_offset: i64,
    /// Producers kept (the least recently appending one without an ongoing transaction is
    /// forgotten first).
    max: usize,
}

impl TxnState {
    pub(crate) fn new(max: usize) -> TxnState {
        TxnState {
            producers: HashMap::new(),
            ongoing: BTreeSet::new(),
            aborted: VecDeque::new(),
            last_marker_offset: -1,
            max: max.max(1),
        }
    }

    /// Fencing: a batch (data or marker) older than the producer's epoch is refused.
    /// Markers raise the epoch (`apply`), so after an ABORT with a bumped epoch the old
    /// incarnation's data gets INVALID_PRODUCER_EPOCH here. A marker from a coordinator
    /// epoch older than the producer's last marker's is refused too (Kafka's
    /// TRANSACTION_COORDINATOR_FENCED): a deposed transaction coordinator's late marker
    /// cannot end a transaction its successor opened.
    pub(crate) fn check(&self, batch: &TxnBatch) -> Result<(), StorageError> {
        let Some(producer) = self.producers.get(&batch.producer_id) else {
            return Ok(());
        };
        if batch.epoch < producer.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current_epoch: producer.epoch,
            });
        }
        match batch.kind {
            BatchKind::Marker {
                coordinator_epoch, ..
            } if coordinator_epoch < producer.coordinator_epoch => {
                Err(StorageError::TransactionCoordinatorFenced {
                    producer_id: batch.producer_id,
                    coordinator_epoch,
                    current: producer.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records an appended (or replayed) batch at `[base_offset, last_offset]`.
    pub(crate) fn apply(&mut self, batch: &TxnBatch, base_offset: i64, last_offset: i64) {
        let id = batch.producer_id;
        if !self.producers.contains_key(&id) && self.producers.len() >= self.max {
            self.forget_least_recent();
        }
        let producer = self.producers.entry(id).or_insert(TxnProducer {
            epoch: batch.epoch,
            coordinator_epoch: -1,
            last_timestamp: -1,
            last_offset: -1,
            txn_first_offset: None,
        });
        producer.epoch = producer.epoch.max(batch.epoch);
        producer.last_timestamp = batch.max_timestamp;
        producer.last_offset = last_offset;
        match batch.kind {
            BatchKind::Data {
                transactional: true,
            } if producer.txn_first_offset.is_none() => {
                producer.txn_first_offset = Some(base_offset);
                self.ongoing.insert((base_offset, id));
            }
            BatchKind::Marker {
                commit,
                coordinator_epoch,
            } => {
                producer.coordinator_epoch = coordinator_epoch;
                let first = producer.txn_first_offset.take();
                self.last_marker_offset = last_offset;
                // As Kafka: a marker without data in this partition changes no offsets.
                if let Some(first) = first {
                    self.ongoing.remove(&(first, id));
                    if !commit {
                        self.push_aborted(id, first, last_offset);
                    }
                }
            }
            BatchKind::Data { .. } | BatchKind::OtherControl => {}
        }
    }

    fn push_aborted(&mut self, producer_id: i64, first_offset: i64, last_offset: i64) {
        let last_stable_offset = self.ongoing.first().map_or(last_offset + 1, |&(o, _)| o);
        if let Some(previous) = self.aborted.back() {
            assert!(
                previous.last_offset < last_offset,
                "aborted transactions out of marker order"
            );
        }
        self.aborted.push_back(AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset,
        });
    }

    fn forget_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .filter(|(_, p)| p.txn_first_offset.is_none())
            .min_by_key(|(_, p)| p.last_offset)
            .map(|(&id, _)| id);
        if let Some(id) = oldest {
            self.producers.remove(&id);
        }
    }

    /// True while `producer_id` has a transaction in progress here.
    pub(crate) fn has_ongoing(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|p| p.txn_first_offset.is_some())
    }

    /// First offset of the oldest ongoing transaction.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|&(offset, _)| offset)
    }

    /// Aborted transactions with `last_offset >= start` and `first_offset < upper`, as
    /// Kafka's `collectAbortedTxns`: stops at the first entry whose LSO reached `upper`.
    pub(crate) fn aborted_between(&self, start: i64, upper: i64) -> Vec<AbortedTransaction> {
        let from = self.aborted.partition_point(|a| a.last_offset < start);
        let mut out = Vec::new();
        for entry in self.aborted.iter().skip(from) {
            if entry.first_offset < upper {
                out.push(AbortedTransaction {
                    producer_id: entry.producer_id,
                    first_offset: Offset(entry.first_offset),
                });
            }
            if entry.last_stable_offset >= upper {
                break;
            }
        }
        out
    }

    /// Entries whose marker is in `[from, to)`.
    fn aborted_in(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .take_while(|a| a.last_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted entries wholly below the log start offset (no read can reach them).
    pub(crate) fn drop_aborted_below(&mut self, log_start: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// Puts `entries` (markers below every current entry) in front, keeping the order.
    fn prepend_aborted(&mut self, mut entries: Vec<AbortedTxn>) {
        let limit = self.aborted.front().map_or(i64::MAX, |a| a.last_offset);
        entries.retain(|a| a.last_offset < limit);
        entries.sort_by_key(|a| a.last_offset);
        entries.dedup_by_key(|a| a.last_offset);
        for entry in entries.into_iter().rev() {
            self.aborted.push_front(entry);
        }
    }

    /// Truncation when no marker is at or past `end`: transactions that started there
    /// vanish; none that ended can reopen. Producer epochs stay (as the idempotence state).
    fn truncate_without_markers(&mut self, end: i64) {
        assert!(
            self.last_marker_offset < end,
            "a marker past the truncation"
        );
        while self.aborted.back().is_some_and(|a| a.last_offset >= end) {
            self.aborted.pop_back();
        }
        self.ongoing.retain(|&(first, _)| first < end);
        self.producers.retain(|_, p| {
            if p.txn_first_offset.is_some_and(|first| first >= end) {
                p.txn_first_offset = None;
            }
            if p.last_offset >= end {
                p.last_offset = end - 1;
                return p.txn_first_offset.is_some();
            }
            true
        });
    }

    /// DescribeProducers rows: producers known here or to the idempotence state (whose
    /// `(id, epoch, last sequence)` are `sequences`), by producer id.
    fn producer_infos(&self, sequences: &[(i64, i16, i32)]) -> Vec<ProducerInfo> {
        let mut rows: HashMap<i64, ProducerInfo> = HashMap::new();
        for (&id, p) in &self.producers {
            rows.insert(
                id,
                ProducerInfo {
                    producer_id: id,
                    producer_epoch: p.epoch,
                    last_sequence: -1,
                    last_timestamp: p.last_timestamp,
                    coordinator_epoch: p.coordinator_epoch,
                    current_txn_start_offset: p.txn_first_offset.unwrap_or(-1),
                },
            );
        }
        for &(id, epoch, last_sequence) in sequences {
            let row = rows.entry(id).or_insert(ProducerInfo {
                producer_id: id,
                producer_epoch: epoch,
                last_sequence: -1,
                last_timestamp: -1,
                coordinator_epoch: -1,
                current_txn_start_offset: -1,
            });
            row.producer_epoch = row.producer_epoch.max(epoch);
            if epoch == row.producer_epoch {
                row.last_sequence = last_sequence;
            }
        }
        let mut rows: Vec<ProducerInfo> = rows.into_values().collect();
        rows.sort_by_key(|r| r.producer_id);
        rows
    }

    /// The snapshot section: version, last marker offset, then every producer (by id).
    pub(crate) fn encode_section(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.producers.len() * SECTION_PRODUCER_BYTES);
        out.extend_from_slice(&SECTION_VERSION.to_be_bytes());
        out.extend_from_slice(&self.last_marker_offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let p = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.extend_from_slice(&p.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&p.last_timestamp.to_be_bytes());
            out.extend_from_slice(&p.last_offset.to_be_bytes());
            out.extend_from_slice(&p.txn_first_offset.unwrap_or(-1).to_be_bytes());
        }
        out
    }

    /// Decodes a snapshot section (no aborted entries); `None` if malformed.
    pub(crate) fn decode_section(bytes: &[u8], max: usize) -> Option<TxnState> {
        let mut reader = Reader { bytes };
        if reader.u16()? != SECTION_VERSION {
            return None;
        }
        let mut state = TxnState::new(max);
        state.last_marker_offset = reader.i64()?;
        let count = reader.u32()? as usize;
        if reader.bytes.len() != count.checked_mul(SECTION_PRODUCER_BYTES)? {
            return None;
        }
        for _ in 0..count {
            let id = reader.i64()?;
            let producer = TxnProducer {
                epoch: reader.u16()? as i16,
                coordinator_epoch: reader.u32()? as i32,
                last_timestamp: reader.i64()?,
                last_offset: reader.i64()?,
                txn_first_offset: Some(reader.i64()?).filter(|&o| o >= 0),
            };
            if let Some(first) = producer.txn_first_offset {
                state.ongoing.insert((first, id));
            }
            state.producers.insert(id, producer);
        }
        Some(state)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_at_checked(N)?;
        self.bytes = rest;
        head.try_into().ok()
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// `<base>.txnindex`: header (magic, version, base offset, the offset it covers up to,
/// count), Kafka's 34-byte AbortedTxn entries, then a CRC-32C of everything before it.
pub(crate) fn encode_index(base_offset: i64, covered_to: i64, entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_BYTES + entries.len() * INDEX_ENTRY_BYTES + 4);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_be_bytes());
    out.extend_from_slice(&base_offset.to_be_bytes());
    out.extend_from_slice(&covered_to.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for entry in entries {
        out.extend_from_slice(&INDEX_ENTRY_VERSION.to_be_bytes());
        out.extend_from_slice(&entry.producer_id.to_be_bytes());
        out.extend_from_slice(&entry.first_offset.to_be_bytes());
        out.extend_from_slice(&entry.last_offset.to_be_bytes());
        out.extend_from_slice(&entry.last_stable_offset.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a `.txnindex` of the segment based at `base_offset`; `None` if it is corrupt,
/// for another segment, or its entries are out of range or order.
pub(crate) fn decode_index(bytes: &[u8], base_offset: i64) -> Option<Vec<AbortedTxn>> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut reader = Reader { bytes: body };
    if &reader.take::<4>()? != INDEX_MAGIC
        || reader.u16()? != INDEX_VERSION
        || reader.i64()? != base_offset
    {
        return None;
    }
    let covered_to = reader.i64()?;
    let count = reader.u32()? as usize;
    if reader.bytes.len() != count.checked_mul(INDEX_ENTRY_BYTES)? {
        return None;
    }
    let mut entries: Vec<AbortedTxn> = Vec::with_capacity(count);
    for _ in 0..count {
        let _version = reader.u16()?;
        let entry = AbortedTxn {
            producer_id: reader.i64()?,
            first_offset: reader.i64()?,
            last_offset: reader.i64()?,
            last_stable_offset: reader.i64()?,
        };
        let ordered = entries
            .last()
            .is_none_or(|p| p.last_offset < entry.last_offset);
        let in_range = entry.last_offset >= base_offset
            && entry.last_offset < covered_to
            && entry.first_offset <= entry.last_offset;
        if !ordered || !in_range {
            return None;
        }
        entries.push(entry);
    }
    Some(entries)
}

/// The last stable offset: below it no transaction is ongoing. The first offset of the
/// oldest ongoing transaction, else the high watermark; never below the log start.
pub(crate) fn last_stable_offset(state: &LogState) -> i64 {
    let high_watermark = state.high_watermark.get();
    let first = state.txns.borrow().first_unstable_offset();
    first
        .map_or(high_watermark, |f| f.min(high_watermark))
        .max(state.log_start.get())
}

/// read_committed: whole batches from the one containing `start` whose last offset is below
/// the LSO, and the aborted transactions overlapping `[start, last returned offset]`.
pub(crate) async fn read_committed(
    state: &LogState,
    start: Offset,
    limits: ReadLimits,
) -> Result<ReadResult, StorageError> {
    reader::check_read(state, start)?;
    let collected = reader::collect(state, start.0, limits, || last_stable_offset(state)).await?;
    let batches = collected.batches;
    let aborted_transactions = match batches.last() {
        Some(last) => {
            let upper = RecordBatchHeader::view(last)?.next_offset();
            state.txns.borrow().aborted_between(start.0, upper)
        }
        None => Vec::new(),
    };
    Ok(ReadResult {
        batches,
        disk_bytes: collected.disk_bytes,
        disk_limited: collected.disk_limited,
        high_watermark: Offset(state.high_watermark.get()),
        log_start_offset: Offset(state.log_start.get()),
        last_stable_offset: Offset(last_stable_offset(state)),
        aborted_transactions,
    })
}

/// Fencing check of one append's batches (before anything is stored).
pub(crate) fn check_append(
    state: &LogState,
    records: &[u8],
    spans: &[(usize, usize)],
) -> Result<(), StorageError> {
    let txns = state.txns.borrow();
    for &(start, len) in spans {
        if let Some(batch) = records.get(start..start + len).and_then(TxnBatch::of) {
            txns.check(&batch)?;
        }
    }
    Ok(())
}

/// Records one stored batch (`bytes` stamped with its offsets).
pub(crate) fn on_append(state: &LogState, bytes: &[u8], base_offset: i64, last_offset: i64) {
    if let Some(batch) = TxnBatch::of(bytes) {
        state
            .txns
            .borrow_mut()
            .apply(&batch, base_offset, last_offset);
        super::txn_tickets::on_append(state, &batch);
    }
}

/// The producer snapshot as of `offset`, with the transaction section.
pub(crate) fn encode_snapshot(state: &LogState, offset: i64) -> Vec<u8> {
    let section = state.txns.borrow().encode_section();
    state
        .producers
        .borrow()
        .encode_snapshot_with(offset, &section)
}

/// The transaction state of a decoded snapshot section (`None`: a snapshot written before
/// transactions were tracked; then transactions are only known from the replayed batches).
pub(crate) fn state_from_section(section: Option<&[u8]>, max: usize, path: &Path) -> TxnState {
    match section.map(|bytes| TxnState::decode_section(bytes, max)) {
        Some(Some(state)) => state,
        Some(None) => {
            tracing::error!(path = %path.display(), "malformed transaction section of a producer snapshot ignored");
            TxnState::new(max)
        }
        None => TxnState::new(max),
    }
}

pub(crate) fn producers(state: &LogState) -> Vec<ProducerInfo> {
    let sequences = state.producers.borrow().last_sequences();
    state.txns.borrow().producer_infos(&sequences)
}

/// Writes `<base>.txnindex` of `segment` with the aborted transactions whose marker is in
/// it, or removes the file if there are none. Called before the segment's offset index is
/// written and before any snapshot past the segment.
pub(crate) async fn write_segment_index(
    state: &LogState,
    segment: &Segment,
) -> Result<(), StorageError> {
    let covered_to = segment.next_offset();
    let entries = state
        .txns
        .borrow()
        .aborted_in(segment.base_offset, covered_to);
    let path = segment.path(TXN_INDEX_SUFFIX);
    if entries.is_empty() {
        return io::remove_file(&path);
    }
    let bytes = encode_index(segment.base_offset, covered_to, &entries);
    io::write_file_atomically(&path, bytes).await
}

/// Recovery: adds the aborted entries with markers below `below` (where the replay began)
/// and at or past `log_start` from the segments' `.txnindex` files.
pub(crate) async fn load_index_files(
    txns: &mut TxnState,
    segments: &VecDeque<Rc<Segment>>,
    below: i64,
    log_start: i64,
) -> Result<(), StorageError> {
    let mut entries = Vec::new();
    let wanted = segments
        .iter()
        .filter(|s| s.base_offset < below && s.next_offset() > log_start);
    for segment in wanted {
        let path = segment.path(TXN_INDEX_SUFFIX);
        let Some(bytes) = io::read_small_file(&path).await? else {
            continue;
        };
        match decode_index(&bytes, segment.base_offset) {
            Some(found) => entries.extend(found.into_iter().filter(|a| {
                a.last_offset < below
                    && a.last_offset < segment.next_offset()
                    && a.last_offset >= log_start
            })),
            None => tracing::error!(
                path = %path.display(),
                "corrupt transaction index ignored: read_committed consumers may see the \
                 aborted transactions of this segment"
            ),
        }
    }
    txns.prepend_aborted(entries);
    txns.drop_aborted_below(log_start);
    Ok(())
}

/// The transaction state for a truncation to `new_end`, computed before the log is cut.
pub(crate) struct Rebuilt {
    /// Replayed from here; `None` state: no marker is cut, so the current state is just
    /// trimmed.
    from: i64,
    state: Option<TxnState>,
}

/// Truncation may reopen transactions whose marker it removes, so (like Kafka's
/// `rebuildProducerState`) the state at `new_end` is rebuilt from the newest snapshot at
/// or below it and a replay of the batches after it (from the first segment if there is no
/// snapshot). Appends during the replay only add batches past `new_end`, which the
/// truncation removes.
pub(crate) async fn rebuild_for_truncation(state: &LogState, new_end: i64) -> Rebuilt {
    if state.txns.borrow().last_marker_offset < new_end {
        return Rebuilt {
            from: new_end,
            state: None,
        };
    }
    let max = state.config().producer_ids_max;
    let first_base = state.segments.borrow().front().map_or(0, |s| s.base_offset);
    let (from, txns) = match newest_snapshot(&state.dir, new_end, max).await {
        Some((offset, txns)) if offset >= first_base => (offset, txns),
        _ => (first_base, TxnState::new(max)),
    };
    match replay_range(state, txns, from, new_end).await {
        Ok(txns) => Rebuilt {
            from,
            state: Some(txns),
        },
        Err(error) => {
            tracing::error!(
                dir = %state.dir.display(), %error,
                "replay for truncation failed; transactions ended past the new end stay ended"
            );
            Rebuilt {
                from: new_end,
                state: None,
            }
        }
    }
}

/// Installs the result of `rebuild_for_truncation`; called in the same synchronous step
/// that cut the log to `new_end` inside `segment` (now the last one). Returns what must be
/// written before the truncation completes.
pub(crate) fn install_truncated(
    state: &LogState,
    rebuilt: Rebuilt,
    segment: &Segment,
    new_end: i64,
) -> TruncationCheckpoint {
    {
        let mut txns = state.txns.borrow_mut();
        match rebuilt.state {
            None => {
                if txns.last_marker_offset >= new_end {
                    // Only after a failed replay: forget the cut markers, keep what is known.
                    txns.last_marker_offset = -1;
                }
                txns.truncate_without_markers(new_end);
            }
            Some(mut fresh) => {
                fresh.prepend_aborted(txns.aborted_in(i64::MIN, rebuilt.from));
                *txns = fresh;
            }
        }
    }
    let entries = state.txns.borrow().aborted_in(segment.base_offset, new_end);
    TruncationCheckpoint {
        index_path: segment.path(TXN_INDEX_SUFFIX),
        index: (!entries.is_empty()).then(|| encode_index(segment.base_offset, new_end, &entries)),
        snapshot_path: segment::file_path(&state.dir, new_end, segment::SNAPSHOT_SUFFIX),
        snapshot: encode_snapshot(state, new_end),
    }
}

/// The state right after a truncation: the cut segment's `.txnindex` and a snapshot at the
/// new end. Truncation removes the snapshots past the new end and recovery keeps only the
/// newest ones, so without it a crash could leave no snapshot at or below the log end, and
/// transactions open since an earlier segment would be lost.
pub(crate) struct TruncationCheckpoint {
    index_path: std::path::PathBuf,
    index: Option<Vec<u8>>,
    snapshot_path: std::path::PathBuf,
    snapshot: Vec<u8>,
}

impl TruncationCheckpoint {
    /// Writes the index, then the snapshot (which relies on it).
    pub(crate) async fn write(self) -> Result<(), StorageError> {
        match self.index {
            Some(bytes) => io::write_file_atomically(&self.index_path, bytes).await?,
            None => {
                let path = self.index_path;
                run_off_shard(BlockingOp::TruncateLogFiles, move || io::remove_file(&path)).await?
            }
        }
        io::write_file_atomically(&self.snapshot_path, self.snapshot).await
    }
}

/// The transaction section of the newest usable snapshot at or below `end`.
/// The directory is listed on the blocking pool (truncation runs while the shard serves).
async fn newest_snapshot(dir: &Path, end: i64, max: usize) -> Option<(i64, TxnState)> {
    let listed = dir.to_path_buf();
    let mut offsets = run_off_shard(BlockingOp::TruncateLogFiles, move || {
        snapshot_offsets_at_or_below(&listed, end)
    })
    .await?;
    offsets.sort_unstable();
    for offset in offsets.into_iter().rev() {
        let path = segment::file_path(dir, offset, segment::SNAPSHOT_SUFFIX);
        let Ok(Some(bytes)) = io::read_small_file(&path).await else {
            continue;
        };
        let Some((_, Some(section))) = ProducerStateMap::decode_snapshot_with(&bytes, offset, max)
        else {
            continue;
        };
        if let Some(txns) = TxnState::decode_section(section, max) {
            return Some((offset, txns));
        }
    }
    None
}

/// The offsets of the producer snapshots in `dir` at or below `end`; `None` if the
/// directory cannot be listed.
fn snapshot_offsets_at_or_below(dir: &Path, end: i64) -> Option<Vec<i64>> {
    let offsets = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            segment::parse_file_name(&name, segment::SNAPSHOT_SUFFIX)
        })
        .filter(|&offset| offset <= end)
        .collect();
    Some(offsets)
}

/// Applies the batches in `[from, end)` of the log to `txns`.
async fn replay_range(
    state: &LogState,
    mut txns: TxnState,
    from: i64,
    end: i64,
) -> Result<TxnState, StorageError> {
    let chunk = state.config().read_chunk_bytes as usize;
    let mut cursor = from;
    while cursor < end {
        let limits = ReadLimits::bytes(chunk, true);
        let batches = reader::collect(state, cursor, limits, || end)
            .await?
            .batches;
        if batches.is_empty() {
            break;
        }
        for bytes in &batches {
            let header = RecordBatchHeader::view(bytes)?;
            if header.base_offset() >= from
                && let Some(batch) = TxnBatch::of(bytes)
            {
                txns.apply(&batch, header.base_offset(), header.last_offset());
            }
            cursor = header.next_offset();
        }
    }
    Ok(txns)
}

#[cfg(test)]
#[path = "txn_state_tests.rs"]
mod tests;
