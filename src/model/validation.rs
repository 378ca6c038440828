//! What a client may produce: Kafka's `LogValidator` rules for v2 record batches (plus the
//! produce-request rules of `ProduceRequest.validateRecords`), so that every batch the
//! broker stores is readable by every consumer. See docs/architecture.md, "Hostile input".
//!
//! Owns: `validate_client_records` and the record walk: every record of a batch is parsed
//! to the batch's end — in place for uncompressed batches (no copy), through a streaming
//! decoder for compressed ones, holding one `STREAM_CHUNK_BYTES` chunk (plus the codec's
//! block or window, see `compression::with_decoder`) and never decoding more than the caller's
//! `decompressed_bytes_max`.
//! May import: `super::batch`, `super::compression`. Pure: no I/O, no async, no shared state.
//! Invariants: a batch that passes holds exactly `recordsCount` = `lastOffsetDelta + 1` > 0
//! records whose offset deltas are 0..n-1 in order, each record's fields fill exactly its
//! declared length, the records fill exactly the (decompressed) records section, header keys
//! are UTF-8, record timestamps do not overflow; it is the only batch of the request, not a
//! control batch, and carries a sequence if it carries a producer id. Decoding untrusted
//! bytes never panics and never allocates from a count or length read off the wire.

use super::batch::{
    BATCH_HEADER_BYTES, BatchError, CRC_COVERED_FROM, Compression, MAGIC_V2, RecordBatchHeader,
};
use super::compression::{self, CompressionError, RECORD_BYTES_MIN};
use std::io::Read;
use thiserror::Error;

/// Decoded bytes held at a time while a compressed batch is walked.
pub const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// The limits validation enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationLimits {
    /// Largest decompressed records section (`storage.decompressed_batch_bytes_max`).
    pub decompressed_bytes_max: usize,
}

/// A batch that passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    /// Size of the batch, which is the whole of the validated bytes.
    pub total_bytes: usize,
    pub records: i32,
    pub compression: Compression,
}

/// Why a client batch is refused. The server maps each to its Kafka error code.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ValidationError {
    /// Framing: too short, bad length, truncated, CRC mismatch (Kafka CORRUPT_MESSAGE).
    #[error(transparent)]
    Corrupt(BatchError),
    /// The batch is intact but breaks a rule (Kafka INVALID_RECORD).
    #[error(transparent)]
    Invalid(InvalidBatch),
    /// The records decompress to more than the limit (MESSAGE_TOO_LARGE).
    #[error(
        "the batch's records decompress to more than {limit} bytes \
         (storage.decompressed_batch_bytes_max)"
    )]
    TooLarge { limit: usize },
}

/// The rule a batch breaks; the wording follows Kafka's where Kafka has one.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InvalidBatch {
    #[error("Produce requests must have at least one record batch per partition")]
    NoBatch,
    #[error("Produce requests are only allowed to contain exactly one record batch per partition")]
    MoreThanOneBatch,
    #[error(
        "Produce requests are only allowed to contain record batches with magic version 2, \
         not {magic}"
    )]
    Magic { magic: i8 },
    #[error("unknown compression codec {codec}")]
    Codec { codec: i16 },
    #[error("Batch has an invalid offset range: lastOffsetDelta {last_offset_delta}")]
    OffsetRange { last_offset_delta: i32 },
    #[error("Invalid reported count for record batch: {count}")]
    Count { count: i32 },
    #[error(
        "Inconsistent batch offset range [0, {last_offset_delta}] and count of records {count}"
    )]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("Clients are not allowed to write control records")]
    Control,
    #[error(
        "Invalid sequence number {base_sequence} in record batch with producerId {producer_id}"
    )]
    Sequence {
        producer_id: i64,
        base_sequence: i32,
    },
    #[error("cannot decompress the records: {0}")]
    Decompression(String),
    #[error("record {index} of the batch: {problem}")]
    Record {
        index: usize,
        problem: RecordProblem,
    },
    #[error("Incorrect declared batch size, bytes remain after the {count} declared records")]
    TrailingBytes { count: i32 },
}

/// What is wrong with one record.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum RecordProblem {
    #[error("premature end of the records (incorrect declared batch size)")]
    Truncated,
    #[error("malformed varint")]
    Varint,
    #[error("invalid record size {0}")]
    Size(i32),
    #[error("its fields do not fill exactly its declared size")]
    SizeMismatch,
    #[error("offset delta {found}, expected {expected} (deltas must be 0..n-1 in order)")]
    OffsetDelta { found: i32, expected: usize },
    #[error("timestamp delta {0} overflows the batch's base timestamp")]
    Timestamp(i64),
    #[error("invalid key length {0}")]
    KeyLength(i32),
    #[error("invalid value length {0}")]
    ValueLength(i32),
    #[error("invalid number of record headers {0}")]
    HeaderCount(i32),
    #[error("invalid header key length {0}")]
    HeaderKeyLength(i32),
    #[error("header key is not UTF-8")]
    HeaderKeyUtf8,
    #[error("invalid header value length {0}")]
    HeaderValueLength(i32),
}

impl From<RecordProblemAt> for ValidationError {
    fn from(failure: RecordProblemAt) -> ValidationError {
        match failure {
            RecordProblemAt::Source(SourceError::Decode(reason)) => {
                ValidationError::Invalid(InvalidBatch::Decompression(reason))
            }
            RecordProblemAt::Source(SourceError::TooLarge { limit }) => {
                ValidationError::TooLarge { limit }
            }
            RecordProblemAt::Record(index, problem) => {
                ValidationError::Invalid(InvalidBatch::Record { index, problem })
            }
        }
    }
}

fn invalid(reason: InvalidBatch) -> ValidationError {
    ValidationError::Invalid(reason)
}

/// Checks the records of one partition in a produce request: exactly one v2 batch, intact,
/// obeying every rule of the module doc.
pub fn validate_client_records(
    records: &[u8],
    limits: &ValidationLimits,
) -> Result<ValidatedBatch, ValidationError> {
    if records.is_empty() {
        return Err(invalid(InvalidBatch::NoBatch));
    }
    let header = RecordBatchHeader::view(records).map_err(ValidationError::Corrupt)?;
    if header.magic != MAGIC_V2 {
        return Err(invalid(InvalidBatch::Magic {
            magic: header.magic,
        }));
    }
    let total = header.total_bytes().map_err(ValidationError::Corrupt)?;
    if total > records.len() {
        return Err(ValidationError::Corrupt(BatchError::Truncated {
            needed: total,
            available: records.len(),
        }));
    }
    let stored = header.crc.get();
    let computed = crc32c::crc32c(&records[CRC_COVERED_FROM..total]);
    if stored != computed {
        return Err(ValidationError::Corrupt(BatchError::CrcMismatch {
            stored,
            computed,
        }));
    }
    if total < records.len() {
        return Err(invalid(InvalidBatch::MoreThanOneBatch));
    }
    let compression = header.compression().map_err(|_| {
        invalid(InvalidBatch::Codec {
            codec: header.attributes.get() & 0x07,
        })
    })?;
    check_header(header)?;
    let count = header.records_count.get();
    let walk = RecordWalk {
        count: usize::try_from(count).unwrap_or(0),
        base_timestamp: header.base_timestamp.get(),
    };
    walk_records(
        &walk,
        compression,
        &records[BATCH_HEADER_BYTES..total],
        limits,
    )?;
    Ok(ValidatedBatch {
        total_bytes: total,
        records: count,
        compression,
    })
}

/// Walks the records section `body`: in place, or streamed through the codec's decoder.
fn walk_records(
    walk: &RecordWalk,
    compression: Compression,
    body: &[u8],
    limits: &ValidationLimits,
) -> Result<(), ValidationError> {
    if compression == Compression::None {
        let mut source = SliceSource {
            bytes: body,
            position: 0,
        };
        return walk.run(&mut source);
    }
    let decompression = |reason: String| invalid(InvalidBatch::Decompression(reason));
    if compression == Compression::Lz4 && compression::lz4_frame_bytes(body) != Some(body.len()) {
        return Err(decompression(
            "the records must be exactly one LZ4 frame (Kafka framing)".to_string(),
        ));
    }
    let limit = limits.decompressed_bytes_max;
    CHUNK.with(|cell| {
        let mut owned = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let chunk = match borrowed.as_mut() {
            Ok(chunk) => chunk,
            Err(_) => &mut owned,
        };
        chunk.resize(STREAM_CHUNK_BYTES, 0);
        compression::with_decoder(compression, body, limit, |decoder| {
            walk.run(&mut StreamSource::new(decoder, chunk, compression, limit))
        })
        .map_err(|error| decompression(error.to_string()))?
    })
}

thread_local! {
    /// The stream chunk, reused for every compressed batch a thread (shard) validates.
    static CHUNK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The header rules of `LogValidator.validateBatch` for a client append.
fn check_header(header: &RecordBatchHeader) -> Result<(), ValidationError> {
    let last_offset_delta = header.last_offset_delta.get();
    if last_offset_delta < 0 {
        return Err(invalid(InvalidBatch::OffsetRange { last_offset_delta }));
    }
    let count = header.records_count.get();
    if count <= 0 {
        return Err(invalid(InvalidBatch::Count { count }));
    }
    if i64::from(count) != i64::from(last_offset_delta) + 1 {
        return Err(invalid(InvalidBatch::CountMismatch {
            count,
            last_offset_delta,
        }));
    }
    if header.is_control() {
        return Err(invalid(InvalidBatch::Control));
    }
    let base_sequence = header.base_sequence.get();
    if header.has_producer_id() && base_sequence < 0 {
        return Err(invalid(InvalidBatch::Sequence {
            producer_id: header.producer_id.get(),
            base_sequence,
        }));
    }
    Ok(())
}

/// A failure while walking records: of the source, or of record `index`.
enum RecordProblemAt {
    Source(SourceError),
    Record(usize, RecordProblem),
}

impl From<SourceError> for RecordProblemAt {
    fn from(error: SourceError) -> RecordProblemAt {
        RecordProblemAt::Source(error)
    }
}

enum SourceError {
    Decode(String),
    TooLarge { limit: usize },
}

/// The bytes of a records section: in place, or streamed out of a decoder.
trait Source {
    /// The next byte; `None` at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, SourceError>;
    /// Consumes `len` bytes, showing each contiguous piece to `visit`; false if the records
    /// end first.
    fn skip(&mut self, len: usize, visit: impl FnMut(&[u8])) -> Result<bool, SourceError>;
    /// True when every byte has been consumed.
    fn at_end(&mut self) -> Result<bool, SourceError>;
}

struct SliceSource<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, SourceError> {
        let byte = self.bytes.get(self.position).copied();
        self.position += usize::from(byte.is_some());
        Ok(byte)
    }

    fn skip(&mut self, len: usize, mut visit: impl FnMut(&[u8])) -> Result<bool, SourceError> {
        let Some(piece) = self
            .position
            .checked_add(len)
            .and_then(|end| self.bytes.get(self.position..end))
        else {
            return Ok(false);
        };
        visit(piece);
        self.position += len;
        Ok(true)
    }

    fn at_end(&mut self) -> Result<bool, SourceError> {
        Ok(self.position == self.bytes.len())
    }
}

/// Decoded bytes, one chunk at a time; errs as soon as more than `limit` bytes would be
/// decoded (a declared length past the limit is refused before anything is decoded).
struct StreamSource<'a> {
    decoder: &'a mut dyn Read,
    codec: Compression,
    chunk: &'a mut [u8],
    start: usize,
    end: usize,
    /// Bytes decoded so far.
    decoded: usize,
    limit: usize,
    finished: bool,
}

impl<'a> StreamSource<'a> {
    fn new(
        decoder: &'a mut dyn Read,
        chunk: &'a mut [u8],
        codec: Compression,
        limit: usize,
    ) -> StreamSource<'a> {
        StreamSource {
            decoder,
            codec,
            chunk,
            start: 0,
            end: 0,
            decoded: 0,
            limit,
            finished: false,
        }
    }

    /// Decodes the next chunk; false at the end of the stream.
    fn refill(&mut self) -> Result<bool, SourceError> {
        debug_assert_eq!(self.start, self.end);
        while !self.finished {
            match self.decoder.read(self.chunk) {
                Ok(0) => self.finished = true,
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    self.decoded = self.decoded.saturating_add(n);
                    if self.decoded > self.limit {
                        return Err(SourceError::TooLarge { limit: self.limit });
                    }
                    return Ok(true);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(match compression::from_io(self.codec, error) {
                        CompressionError::TooLarge { .. } => {
                            SourceError::TooLarge { limit: self.limit }
                        }
                        other => SourceError::Decode(other.to_string()),
                    });
                }
            }
        }
        Ok(false)
    }

    fn consumed(&self) -> usize {
        self.decoded - (self.end - self.start)
    }
}

impl Source for StreamSource<'_> {
    fn byte(&mut self) -> Result<Option<u8>, SourceError> {
        if self.start == self.end && !self.refill()? {
            return Ok(None);
        }
        let byte = self.chunk[self.start];
        self.start += 1;
        Ok(Some(byte))
    }

    fn skip(&mut self, len: usize, mut visit: impl FnMut(&[u8])) -> Result<bool, SourceError> {
        if self.consumed().saturating_add(len) > self.limit {
            return Err(SourceError::TooLarge { limit: self.limit });
        }
        let mut left = len;
        while left > 0 {
            if self.start == self.end && !self.refill()? {
                return Ok(false);
            }
            let n = left.min(self.end - self.start);
            visit(&self.chunk[self.start..self.start + n]);
            self.start += n;
            left -= n;
        }
        Ok(true)
    }

    fn at_end(&mut self) -> Result<bool, SourceError> {
        Ok(self.start == self.end && !self.refill()?)
    }
}

/// Walks `count` records, then requires the end of the records.
struct RecordWalk {
    count: usize,
    base_timestamp: i64,
}

impl RecordWalk {
    fn run<S: Source>(&self, source: &mut S) -> Result<(), ValidationError> {
        for index in 0..self.count {
            self.record(source, index)?;
        }
        if !source.at_end().map_err(RecordProblemAt::from)? {
            return Err(invalid(InvalidBatch::TrailingBytes {
                count: i32::try_from(self.count).unwrap_or(i32::MAX),
            }));
        }
        Ok(())
    }

    /// length | attributes | timestampDelta | offsetDelta | key | value | headers.
    fn record<S: Source>(&self, source: &mut S, index: usize) -> Result<(), RecordProblemAt> {
        let fail = |problem| RecordProblemAt::Record(index, problem);
        let length = match varint(source, 5)? {
            Varint::Value(length) => length,
            Varint::End => return Err(fail(RecordProblem::Truncated)),
            Varint::Malformed => return Err(fail(RecordProblem::Varint)),
        };
        let size = i32::try_from(length).map_err(|_| fail(RecordProblem::Varint))?;
        let remaining = usize::try_from(size)
            .ok()
            .filter(|&n| n >= RECORD_BYTES_MIN - 1)
            .ok_or(fail(RecordProblem::Size(size)))?;
        let mut body = Body {
            source,
            remaining,
            index,
        };
        body.byte()?; // attributes: unused in v2
        let timestamp_delta = body.varint(10)?;
        if self.base_timestamp.checked_add(timestamp_delta).is_none() {
            return Err(fail(RecordProblem::Timestamp(timestamp_delta)));
        }
        let offset_delta = body.varint32()?;
        if usize::try_from(offset_delta).ok() != Some(index) {
            return Err(fail(RecordProblem::OffsetDelta {
                found: offset_delta,
                expected: index,
            }));
        }
        body.nullable_bytes(RecordProblem::KeyLength)?;
        body.nullable_bytes(RecordProblem::ValueLength)?;
        body.headers()?;
        if body.remaining != 0 {
            return Err(fail(RecordProblem::SizeMismatch));
        }
        Ok(())
    }
}

enum Varint {
    Value(i64),
    /// The records ended before the varint's first byte.
    End,
    /// Too long, or the records ended inside it.
    Malformed,
}

/// A zigzag varint of at most `max_bytes` bytes (5 for int32, 10 for int64).
#[inline]
fn varint<S: Source>(source: &mut S, max_bytes: usize) -> Result<Varint, SourceError> {
    let mut raw: u64 = 0;
    for index in 0..max_bytes {
        let Some(byte) = source.byte()? else {
            return Ok(if index == 0 {
                Varint::End
            } else {
                Varint::Malformed
            });
        };
        raw |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Varint::Value(((raw >> 1) as i64) ^ -((raw & 1) as i64)));
        }
    }
    Ok(Varint::Malformed)
}

/// One record's body: reads fail once they would pass its declared size.
struct Body<'s, S> {
    source: &'s mut S,
    remaining: usize,
    index: usize,
}

impl<S: Source> Body<'_, S> {
    fn fail(&self, problem: RecordProblem) -> RecordProblemAt {
        RecordProblemAt::Record(self.index, problem)
    }

    fn byte(&mut self) -> Result<u8, RecordProblemAt> {
        if self.remaining == 0 {
            return Err(self.fail(RecordProblem::SizeMismatch));
        }
        self.remaining -= 1;
        self.source
            .byte()?
            .ok_or(self.fail(RecordProblem::Truncated))
    }

    fn varint(&mut self, max_bytes: usize) -> Result<i64, RecordProblemAt> {
        let mut raw: u64 = 0;
        for index in 0..max_bytes {
            let byte = self.byte()?;
            raw |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(self.fail(RecordProblem::Varint))
    }

    fn varint32(&mut self) -> Result<i32, RecordProblemAt> {
        let value = self.varint(5)?;
        i32::try_from(value).map_err(|_| self.fail(RecordProblem::Varint))
    }

    /// Consumes `len` bytes of this record, showing them to `visit`.
    fn skip(&mut self, len: usize, visit: impl FnMut(&[u8])) -> Result<(), RecordProblemAt> {
        if len > self.remaining {
            return Err(self.fail(RecordProblem::SizeMismatch));
        }
        self.remaining -= len;
        if !self.source.skip(len, visit)? {
            return Err(self.fail(RecordProblem::Truncated));
        }
        Ok(())
    }

    /// A length-prefixed byte string where -1 is null.
    fn nullable_bytes(&mut self, bad: fn(i32) -> RecordProblem) -> Result<(), RecordProblemAt> {
        let length = self.varint32()?;
        if length == -1 {
            return Ok(());
        }
        let len = usize::try_from(length).map_err(|_| self.fail(bad(length)))?;
        self.skip(len, |_| {})
    }

    /// count | (keyLength | key (UTF-8) | valueLength | value)*.
    fn headers(&mut self) -> Result<(), RecordProblemAt> {
        let count = self.varint32()?;
        // Each header takes at least two bytes: nothing is allocated from the count.
        let fits = usize::try_from(count).is_ok_and(|n| n <= self.remaining / 2);
        if !fits {
            return Err(self.fail(RecordProblem::HeaderCount(count)));
        }
        for _ in 0..count {
            let key_length = self.varint32()?;
            let len = usize::try_from(key_length)
                .map_err(|_| self.fail(RecordProblem::HeaderKeyLength(key_length)))?;
            let mut utf8 = Utf8Stream::default();
            let mut valid = true;
            self.skip(len, |piece| valid &= utf8.feed(piece))?;
            if !(valid && utf8.finish()) {
                return Err(self.fail(RecordProblem::HeaderKeyUtf8));
            }
            self.nullable_bytes(RecordProblem::HeaderValueLength)?;
        }
        Ok(())
    }
}

/// UTF-8 validation of a string that arrives in pieces (a character may be split).
#[derive(Default)]
struct Utf8Stream {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Stream {
    fn feed(&mut self, mut piece: &[u8]) -> bool {
        while self.pending_len > 0 {
            let Some((&first, rest)) = piece.split_first() else {
                return true;
            };
            self.pending[self.pending_len] = first;
            self.pending_len += 1;
            piece = rest;
            match std::str::from_utf8(&self.pending[..self.pending_len]) {
                Ok(_) => self.pending_len = 0,
                Err(error) if error.error_len().is_none() && self.pending_len < 4 => {}
                Err(_) => return false,
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => true,
            Err(error) if error.error_len().is_none() => {
                let tail = &piece[error.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                true
            }
            Err(_) => false,
        }
    }

    fn finish(&self) -> bool {
        self.pending_len == 0
    }
}

#[cfg(test)]
mod tests;
