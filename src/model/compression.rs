//! The codecs of Kafka v2 record batches (gzip, snappy, lz4, zstd) and the records inside a
//! batch: decompress a batch's records, parse them without copying, and assemble a batch
//! from records with any codec (recompression on append, rewriting batches in compaction).
//!
//! Owns: Kafka's codec framings — gzip: a gzip stream (several members accepted); snappy:
//! the xerial framing Java clients write (magic, version, then length-prefixed raw blocks of
//! 32 KiB input), raw snappy accepted on input (librdkafka may send it); lz4: the LZ4 frame
//! format with a correct header checksum (Kafka >= 0.10), independent 64 KiB blocks on
//! output; zstd: zstd frames (level 3 on output, Kafka's default).
//! May import: `super::batch`, the codec crates. Pure: no I/O, no async, no shared state.
//! Invariants: decoding untrusted bytes never panics and never allocates more than the
//! caller's `decompressed_bytes_max` (plus what a codec needs for one block of at most
//! 8 MiB); every batch built here passes `validate_batch`; header fields are copied from the
//! source batch except the codec bits, recordsCount, maxTimestamp, batchLength and CRC.

use super::batch::{
    self, BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, BatchError, CRC_COVERED_FROM, Compression,
    RecordBatchHeader, TimestampType,
};
use std::cell::RefCell;
use std::io::{Read, Write};
use thiserror::Error;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// snappy-java's stream header: magic, then version and minimum compatible version (i32 BE).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
const XERIAL_VERSION: i32 = 1;
/// snappy-java's default block size (input bytes per block).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// Kafka's default zstd level (ZSTD_CLEVEL_DEFAULT) and gzip level (Deflater default).
const ZSTD_LEVEL: i32 = 3;
const GZIP_LEVEL: u32 = 6;
/// The largest zstd window a frame may ask for (2^27 = 128 MiB is zstd's own default
/// limit); smaller if the caller's output limit is smaller, since a window never needs to
/// exceed the content.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
const ZSTD_WINDOW_LOG_MIN: u32 = 20;
/// Smallest encoded record: length, attributes, timestamp and offset deltas, key and value
/// lengths, header count (one byte each).
pub const RECORD_BYTES_MIN: usize = 7;
/// Most output a snappy block can declare per input byte: its densest element, a copy of
/// 64 bytes, takes 3 (so 21.4); 32 leaves room for the length header.
const SNAPPY_EXPANSION_MAX: usize = 32;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CompressionError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("invalid {codec:?} data: {reason}")]
    Corrupt { codec: Compression, reason: String },
    #[error("decompressed records exceed the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed record {index}: {reason}")]
    MalformedRecord { index: usize, reason: &'static str },
    #[error("batch declares {declared} records but holds {found}")]
    CountMismatch { declared: i32, found: usize },
    #[error("encoded batch of {bytes} bytes is too large")]
    BatchTooLarge { bytes: usize },
}

fn corrupt(codec: Compression, reason: impl ToString) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        reason: reason.to_string(),
    }
}

/// The Kafka attribute value (bits 0-2) of a codec.
pub fn codec_id(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Decompresses `input` (the records section of a batch) written with `codec`; at most
/// `max` output bytes, else `TooLarge`.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max: usize,
) -> Result<Vec<u8>, CompressionError> {
    if codec == Compression::None {
        if input.len() > max {
            return Err(CompressionError::TooLarge { limit: max });
        }
        return Ok(input.to_vec());
    }
    with_decoder(codec, input, max, |reader| read_bounded(reader, codec, max))?
}

thread_local! {
    /// One zstd decompression context per thread (shard), reused for every batch: creating
    /// one and its buffers per batch costs more than decoding a small batch.
    static ZSTD_CONTEXT: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

/// Runs `read` on a streaming decoder of `input` (the records section of a batch) written
/// with `codec`: reading it yields the uncompressed records. The decoder holds at most one
/// codec block (snappy: at most `max` and 32 times the block's compressed size; lz4: its
/// frame's block size) and zstd's window (at most `max`, clamped to [1 MiB, 128 MiB]),
/// never the whole output; `read` bounds how much it reads.
pub fn with_decoder<T>(
    codec: Compression,
    input: &[u8],
    max: usize,
    read: impl FnOnce(&mut dyn Read) -> T,
) -> Result<T, CompressionError> {
    match codec {
        Compression::None => Ok(read(&mut &input[..])),
        Compression::Gzip => Ok(read(&mut flate2::read::MultiGzDecoder::new(input))),
        Compression::Snappy => Ok(read(&mut SnappyReader::new(input, max))),
        Compression::Lz4 => Ok(read(&mut lz4_flex::frame::FrameDecoder::new(input))),
        Compression::Zstd => ZSTD_CONTEXT.with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|e| corrupt(codec, e))?;
            let context = match slot.as_mut() {
                Some(context) => context,
                None => slot.insert(
                    zstd::zstd_safe::DCtx::try_create()
                        .ok_or_else(|| corrupt(codec, "cannot create a context"))?,
                ),
            };
            let window_log = usize::BITS - max.max(1).leading_zeros();
            let window_log = window_log.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX);
            // zstd checks the window only when it streams a frame; a frame small enough to
            // decode straight into the caller's buffer skips the check, so whether a batch
            // decodes would depend on the reader's buffer size. Check every frame up front.
            check_zstd_windows(input, 1u64 << window_log)?;
            // A previous batch may have stopped mid-frame; parameters need a fresh session.
            context
                .reset(zstd::zstd_safe::ResetDirective::SessionOnly)
                .map_err(|code| corrupt(codec, zstd::zstd_safe::get_error_name(code)))?;
            context
                .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(window_log))
                .map_err(|code| corrupt(codec, zstd::zstd_safe::get_error_name(code)))?;
            let mut decoder = zstd::stream::read::Decoder::with_context(input, context);
            Ok(read(&mut decoder))
        }),
    }
}

/// The zstd frame magic (RFC 8878 section 3.1.1) and the skippable frames' magic range.
const ZSTD_FRAME_MAGIC: u32 = 0xFD2F_B528;
const ZSTD_SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const ZSTD_SKIPPABLE_MAGIC_MASK: u32 = 0xFFFF_FFF0;

/// Refuses zstd input holding a frame whose window (as the decoder computes it: the window
/// descriptor, or the content size of a single-segment frame) exceeds `window_max`. Stops at
/// the first bytes that are not a whole frame: the decoder reports those.
fn check_zstd_windows(input: &[u8], window_max: u64) -> Result<(), CompressionError> {
    let mut rest = input;
    while let Some(magic) = rest.get(..4) {
        let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        if magic == ZSTD_FRAME_MAGIC {
            if let Some(window) = zstd_frame_window(&rest[4..])
                && window > window_max
            {
                return Err(corrupt(
                    Compression::Zstd,
                    format!("a frame asks for a {window}-byte window, more than {window_max}"),
                ));
            }
        } else if magic & ZSTD_SKIPPABLE_MAGIC_MASK != ZSTD_SKIPPABLE_MAGIC {
            return Ok(());
        }
        match zstd::zstd_safe::find_frame_compressed_size(rest) {
            Ok(size) if size > 0 && size <= rest.len() => rest = &rest[size..],
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// The window size a zstd frame header (after the magic) declares; None if truncated.
fn zstd_frame_window(header: &[u8]) -> Option<u64> {
    let descriptor = *header.first()?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window = *header.get(1)?;
        let base = 1u64 << (10 + u32::from(window >> 3));
        return Some(base + (base / 8) * u64::from(window & 0x07));
    }
    let dictionary_bytes = [0usize, 1, 2, 4][usize::from(descriptor & 0x03)];
    let content_size_bytes = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let start = 1 + dictionary_bytes;
    let field = header.get(start..start + content_size_bytes)?;
    let mut little_endian = [0u8; 8];
    little_endian[..content_size_bytes].copy_from_slice(field);
    let value = u64::from_le_bytes(little_endian);
    // A two-byte content size is stored minus 256.
    Some(if content_size_bytes == 2 {
        value + 256
    } else {
        value
    })
}

fn read_bounded(
    reader: impl Read,
    codec: Compression,
    max: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| from_io(codec, e))?;
    if out.len() > max {
        return Err(CompressionError::TooLarge { limit: max });
    }
    Ok(out)
}

/// The error a `decoder` read failed with: the decoder's own `CompressionError` (such as
/// `TooLarge`) if it raised one, else the codec's complaint as `Corrupt`.
pub fn from_io(codec: Compression, error: std::io::Error) -> CompressionError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<CompressionError>())
    {
        Some(inner) => inner.clone(),
        None => corrupt(codec, error),
    }
}

/// Streams snappy input: the xerial framing (length-prefixed raw blocks) if its magic is
/// there, else one raw snappy block; one decoded block is held at a time.
struct SnappyReader<'a> {
    /// Blocks not yet decoded (xerial), or the one raw block.
    rest: &'a [u8],
    xerial: bool,
    decoder: snap::raw::Decoder,
    block: Vec<u8>,
    position: usize,
    /// Output bytes still allowed, of `max`.
    budget: usize,
    max: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], max: usize) -> SnappyReader<'a> {
        let framed = input
            .strip_prefix(&XERIAL_MAGIC[..])
            .and_then(|rest| rest.get(XERIAL_HEADER_BYTES - XERIAL_MAGIC.len()..));
        SnappyReader {
            rest: framed.unwrap_or(input),
            xerial: framed.is_some(),
            decoder: snap::raw::Decoder::new(),
            block: Vec::new(),
            position: 0,
            budget: max,
            max,
        }
    }

    /// Decodes the next block into `self.block`; false at the end of the input.
    fn next_block(&mut self) -> Result<bool, CompressionError> {
        let codec = Compression::Snappy;
        if self.rest.is_empty() {
            return Ok(false);
        }
        let block = if self.xerial {
            let (length, rest) = self
                .rest
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt(codec, "truncated block length"))?;
            let length = usize::try_from(i32::from_be_bytes(*length))
                .map_err(|_| corrupt(codec, "negative block length"))?;
            let block = rest
                .get(..length)
                .ok_or_else(|| corrupt(codec, "block length past the end"))?;
            self.rest = &rest[length..];
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        self.block.clear();
        self.position = 0;
        snappy_block(&mut self.decoder, block, &mut self.block, self.budget).map_err(|error| {
            match error {
                CompressionError::TooLarge { .. } => CompressionError::TooLarge { limit: self.max },
                other => other,
            }
        })?;
        self.budget -= self.block.len();
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.position == self.block.len() {
            if !self.next_block().map_err(std::io::Error::other)? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.position);
        buf[..n].copy_from_slice(&self.block[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// Appends one raw snappy block to `out`, checking its declared length against `max` and
/// against what the block can encode (a snappy element expands at most 64 bytes from 3)
/// before allocating.
fn snappy_block(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let length = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    let start = out.len();
    if length > max.saturating_sub(start) {
        return Err(CompressionError::TooLarge { limit: max });
    }
    if length > block.len().saturating_mul(SNAPPY_EXPANSION_MAX) {
        return Err(corrupt(
            codec,
            "declared length exceeds what the block can encode",
        ));
    }
    out.resize(start + length, 0);
    let written = decoder
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(codec, e))?;
    out.truncate(start + written);
    Ok(())
}

/// The size of the LZ4 frame (Kafka's framing: standard magic, no dictionary) at the start
/// of `input`, found by walking its block headers; `None` if it is not a complete frame.
/// Java consumers stop reading at the first frame's end mark, so a batch must be one frame.
pub fn lz4_frame_bytes(input: &[u8]) -> Option<usize> {
    const MAGIC: u32 = 0x184D_2204;
    let magic = u32::from_le_bytes(*input.first_chunk::<4>()?);
    let flags = *input.get(4)?;
    if magic != MAGIC || flags >> 6 != 0b01 || flags & 0b11 != 0 {
        return None;
    }
    let block_checksum = flags & 0x10 != 0;
    let content_size = flags & 0x08 != 0;
    let content_checksum = flags & 0x04 != 0;
    // magic, FLG, BD, [content size], header checksum.
    let mut position = 4 + 2 + if content_size { 8 } else { 0 } + 1;
    loop {
        let size = u32::from_le_bytes(*input.get(position..)?.first_chunk::<4>()?);
        position += 4;
        if size == 0 {
            break;
        }
        let data = usize::try_from(size & 0x7FFF_FFFF).ok()?;
        position = position
            .checked_add(data)?
            .checked_add(if block_checksum { 4 } else { 0 })?;
    }
    position += if content_checksum { 4 } else { 0 };
    (position <= input.len()).then_some(position)
}

/// Compresses `input` with `codec` in the framing Kafka clients read.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let failed = |e: std::io::Error| corrupt(codec, e);
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(input).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        Compression::Snappy => snappy_compress(input),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(input).map_err(failed)?;
            encoder.finish().map_err(|e| corrupt(codec, e))
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).map_err(failed),
    }
}

fn snappy_compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut encoder = snap::raw::Encoder::new();
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + input.len() / 2);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| corrupt(Compression::Snappy, e))?;
        let length = i32::try_from(block.len())
            .map_err(|_| corrupt(Compression::Snappy, "block too large"))?;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// The uncompressed records section of a complete, CRC-valid batch.
pub fn batch_records(batch: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
    let total = batch::validate_batch(batch)?;
    let header = RecordBatchHeader::view(batch)?;
    decompress(
        header.compression()?,
        &batch[BATCH_HEADER_BYTES..total],
        max,
    )
}

/// One record of a v2 batch, borrowed from the uncompressed records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The whole encoded record, length prefix included (copy it to keep the record).
    pub bytes: &'a [u8],
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// None: a tombstone.
    pub value: Option<&'a [u8]>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    /// A zigzag varint of at most `max_bytes` bytes (5 for int32, 10 for int64).
    fn varint(&mut self, max_bytes: usize) -> Option<i64> {
        let mut result: u64 = 0;
        for index in 0..max_bytes {
            let byte = *self.bytes.get(self.position)?;
            self.position += 1;
            result |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Some(((result >> 1) as i64) ^ -((result & 1) as i64));
            }
        }
        None
    }

    fn varint32(&mut self) -> Option<i32> {
        self.varint(5).and_then(|v| i32::try_from(v).ok())
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(len)?;
        let slice = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(slice)
    }

    /// A length-prefixed byte string; -1 is null.
    fn nullable(&mut self) -> Option<Option<&'a [u8]>> {
        match self.varint32()? {
            -1 => Some(None),
            len => self.take(usize::try_from(len).ok()?).map(Some),
        }
    }
}

/// Parses exactly `count` records filling `bytes` (an uncompressed records section).
pub fn parse_records(bytes: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>, CompressionError> {
    let declared = usize::try_from(count).map_err(|_| CompressionError::CountMismatch {
        declared: count,
        found: 0,
    })?;
    let mut records = Vec::with_capacity(declared.min(bytes.len() / RECORD_BYTES_MIN));
    let mut reader = Reader { bytes, position: 0 };
    while reader.position < bytes.len() {
        let index = records.len();
        let bad = |reason| CompressionError::MalformedRecord { index, reason };
        let start = reader.position;
        let length = reader.varint32().ok_or(bad("bad length"))?;
        let body = usize::try_from(length)
            .ok()
            .and_then(|len| reader.take(len))
            .ok_or(bad("length past the end"))?;
        let record = parse_body(body).ok_or(bad("bad field"))?;
        records.push(RawRecord {
            bytes: &bytes[start..reader.position],
            ..record
        });
        if records.len() > declared {
            break;
        }
    }
    if records.len() != declared {
        return Err(CompressionError::CountMismatch {
            declared: count,
            found: records.len(),
        });
    }
    Ok(records)
}

/// attributes | timestampDelta | offsetDelta | key | value | headers, filling `body`.
fn parse_body(body: &[u8]) -> Option<RawRecord<'_>> {
    let mut reader = Reader {
        bytes: body,
        position: 1, // attributes (unused)
    };
    if body.is_empty() {
        return None;
    }
    let timestamp_delta = reader.varint(10)?;
    let offset_delta = reader.varint32()?;
    let key = reader.nullable()?;
    let value = reader.nullable()?;
    let headers = reader.varint32()?;
    for _ in 0..headers.max(0) {
        let key_length = usize::try_from(reader.varint32()?).ok()?;
        reader.take(key_length)?;
        reader.nullable()?;
    }
    (headers >= 0 && reader.position == body.len() && offset_delta >= 0).then_some(RawRecord {
        bytes: body,
        timestamp_delta,
        offset_delta,
        key,
        value,
    })
}

/// What changes when a batch is rebuilt from (some of) its records.
#[derive(Debug, Clone, Copy)]
pub struct Rebuild {
    pub codec: Compression,
    pub records_count: i32,
    pub max_timestamp: i64,
}

/// A batch with `template`'s header (base offset, leader epoch, lastOffsetDelta,
/// baseTimestamp, producer fields, attributes other than the codec) holding `records` (an
/// uncompressed records section) encoded with `rebuild.codec`.
pub fn assemble(
    template: &RecordBatchHeader,
    records: &[u8],
    rebuild: Rebuild,
) -> Result<Vec<u8>, CompressionError> {
    let body = match rebuild.codec {
        Compression::None => std::borrow::Cow::Borrowed(records),
        codec => std::borrow::Cow::Owned(compress(codec, records)?),
    };
    let total = BATCH_HEADER_BYTES + body.len();
    let batch_length = i32::try_from(total - BATCH_LOG_OVERHEAD)
        .map_err(|_| CompressionError::BatchTooLarge { bytes: total })?;
    let mut header = *template;
    let attributes = (template.attributes.get() & !ATTR_COMPRESSION_MASK) | codec_id(rebuild.codec);
    header.attributes.set(attributes);
    header.batch_length.set(batch_length);
    header.records_count.set(rebuild.records_count);
    header.max_timestamp.set(rebuild.max_timestamp);
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(zerocopy::IntoBytes::as_bytes(&header));
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[CRC_COVERED_FROM..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    // Checked before anyone writes it (a template with a bad magic or delta fails here).
    batch::validate_batch(&out)?;
    Ok(out)
}

/// The timestamp of a record: LogAppendTime batches carry it in maxTimestamp.
pub fn record_timestamp(header: &RecordBatchHeader, record: &RawRecord<'_>) -> i64 {
    match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp.get(),
        TimestampType::CreateTime => header
            .base_timestamp
            .get()
            .saturating_add(record.timestamp_delta),
    }
}

/// True when the records' offset deltas strictly increase and stay within the batch's
/// lastOffsetDelta (compaction keys its map by these offsets, so it trusts no others).
pub fn offsets_consistent(header: &RecordBatchHeader, records: &[RawRecord<'_>]) -> bool {
    let last = header.last_offset_delta.get();
    let increasing = records
        .windows(2)
        .all(|pair| pair[0].offset_delta < pair[1].offset_delta);
    increasing && records.last().is_none_or(|r| r.offset_delta <= last)
}

/// Re-encodes a complete, CRC-valid batch with `codec` (records unchanged). Control
/// batches and batches already in `codec` come back unchanged.
pub fn recompress_batch(
    batch: &[u8],
    codec: Compression,
    max: usize,
) -> Result<Option<Vec<u8>>, CompressionError> {
    let header = RecordBatchHeader::view(batch)?;
    if header.is_control() || header.compression()? == codec {
        batch::validate_batch(batch)?;
        return Ok(None);
    }
    let records = batch_records(batch, max)?;
    parse_records(&records, header.records_count.get())?;
    let rebuild = Rebuild {
        codec,
        records_count: header.records_count.get(),
        max_timestamp: header.max_timestamp.get(),
    };
    assemble(header, &records, rebuild).map(Some)
}

#[cfg(test)]
mod tests;
