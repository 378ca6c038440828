//! Produce request bodies (v3–v13) decoded so that each partition's records are a uniquely
//! owned region of the request frame: a `BytesMut` split off the frame without a copy, which
//! storage stamps (base offset, leader epoch) in place. kafka-protocol's `ProduceRequest`
//! decoder would hand out frozen `Bytes` slices that share the frame (and the connection's
//! read buffer), so stamping them would need a copy.
//!
//! Owns: the Produce body layout. May import: `bytes`, `uuid`. Runs on: the
//! connection's shard. Invariants: the wire rules are kafka-protocol's (the tests decode the
//! same frames with both and compare); every length and count is checked against the bytes
//! present before anything is allocated or split.

use bytes::{Buf, BytesMut};
use uuid::Uuid;

/// The first version with compact strings, arrays and tagged fields.
const FLEXIBLE_VERSION_MIN: i16 = 9;
/// The first version that names topics by id.
const TOPIC_ID_VERSION_MIN: i16 = 13;
/// The smallest encoding of a topic (empty name, empty partition array) and of a partition
/// (index, null records), used to bound a wire count by the bytes left.
const TOPIC_BYTES_MIN: usize = 2;
const PARTITION_BYTES_MIN: usize = 5;

/// A decoded Produce request whose records are owned regions of the frame.
#[derive(Debug, Default)]
pub struct ProduceRequestOwned {
    pub transactional_id: Option<String>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<ProduceTopic>,
}

#[derive(Debug, Default)]
pub struct ProduceTopic {
    /// Empty from v13 (topics are named by `topic_id`).
    pub name: String,
    /// Nil before v13.
    pub topic_id: Uuid,
    pub partitions: Vec<ProducePartitionData>,
}

#[derive(Debug)]
pub struct ProducePartitionData {
    pub index: i32,
    /// The partition's records, split off the frame (never copied); `None` when null.
    pub records: Option<BytesMut>,
}

/// Decodes a Produce body of `version` (the frame after its request header).
pub fn decode_produce_body(
    mut body: BytesMut,
    version: i16,
) -> Result<ProduceRequestOwned, String> {
    if !(3..=TOPIC_ID_VERSION_MIN).contains(&version) {
        return Err(format!("Produce v{version} is not supported"));
    }
    let flexible = version >= FLEXIBLE_VERSION_MIN;
    let buf = &mut body;
    let transactional_id = read_string(buf, flexible)?;
    let acks = read_i16(buf)?;
    let timeout_ms = read_i32(buf)?;
    let count = read_array_length(buf, flexible, TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        topics.push(read_topic(buf, version)?);
    }
    if flexible {
        skip_tagged_fields(buf)?;
    }
    Ok(ProduceRequestOwned {
        transactional_id,
        acks,
        timeout_ms,
        topics,
    })
}

fn read_topic(buf: &mut BytesMut, version: i16) -> Result<ProduceTopic, String> {
    let flexible = version >= FLEXIBLE_VERSION_MIN;
    let mut topic = ProduceTopic::default();
    if version < TOPIC_ID_VERSION_MIN {
        topic.name = read_string(buf, flexible)?.ok_or("topic name is null")?;
    } else {
        let mut id = [0u8; 16];
        take(buf, 16)?.copy_to_slice(&mut id);
        topic.topic_id = Uuid::from_bytes(id);
    }
    let count = read_array_length(buf, flexible, PARTITION_BYTES_MIN)?;
    topic.partitions = Vec::with_capacity(count);
    for _ in 0..count {
        let index = read_i32(buf)?;
        let records = read_records(buf, flexible)?;
        if flexible {
            skip_tagged_fields(buf)?;
        }
        topic
            .partitions
            .push(ProducePartitionData { index, records });
    }
    if flexible {
        skip_tagged_fields(buf)?;
    }
    Ok(topic)
}

/// Nullable bytes (i32 length, or compact: varint length + 1), split off as their own
/// `BytesMut`.
fn read_records(buf: &mut BytesMut, flexible: bool) -> Result<Option<BytesMut>, String> {
    let length = if flexible {
        match read_unsigned_varint(buf)? {
            0 => return Ok(None),
            n => (n - 1) as usize,
        }
    } else {
        match read_i32(buf)? {
            -1 => return Ok(None),
            n if n < 0 => return Err(format!("Data length is negative ({n})")),
            n => n as usize,
        }
    };
    take(buf, length).map(Some)
}

/// A nullable string (i16 length, or compact: varint length + 1), which must be UTF-8.
fn read_string(buf: &mut BytesMut, flexible: bool) -> Result<Option<String>, String> {
    let length = if flexible {
        match read_unsigned_varint(buf)? {
            0 => return Ok(None),
            n => (n - 1) as usize,
        }
    } else {
        match read_i16(buf)? {
            -1 => return Ok(None),
            n if n < 0 => return Err(format!("String length is negative ({n})")),
            n => n as usize,
        }
    };
    let raw = take(buf, length)?;
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|e| format!("string is not UTF-8: {e}"))
}

/// A non-nullable array's element count, bounded by the bytes left (each element takes at
/// least `element_bytes_min`), so a garbage count never sizes an allocation.
fn read_array_length(
    buf: &mut BytesMut,
    flexible: bool,
    element_bytes_min: usize,
) -> Result<usize, String> {
    let count = if flexible {
        match read_unsigned_varint(buf)? {
            0 => return Err("CompactArray length is negative (-1)".to_string()),
            n => (n - 1) as usize,
        }
    } else {
        match read_i32(buf)? {
            n if n < 0 => return Err(format!("Array length is negative ({n})")),
            n => n as usize,
        }
    };
    if count.saturating_mul(element_bytes_min) > buf.remaining() {
        return Err(format!(
            "array of {count} elements cannot fit in the {} bytes left",
            buf.remaining()
        ));
    }
    Ok(count)
}

/// Skips a tagged-field section (the Produce body defines no tagged fields).
fn skip_tagged_fields(buf: &mut BytesMut) -> Result<(), String> {
    let count = read_unsigned_varint(buf)?;
    for _ in 0..count {
        let _tag = read_unsigned_varint(buf)?;
        let size = read_unsigned_varint(buf)? as usize;
        take(buf, size)?;
    }
    Ok(())
}

/// Splits the next `length` bytes off `buf` (shares the allocation, copies nothing).
fn take(buf: &mut BytesMut, length: usize) -> Result<BytesMut, String> {
    if buf.remaining() < length {
        return Err(format!(
            "{length} bytes wanted, {} left in the frame",
            buf.remaining()
        ));
    }
    Ok(buf.split_to(length))
}

fn read_i16(buf: &mut BytesMut) -> Result<i16, String> {
    if buf.remaining() < 2 {
        return Err("frame ends inside an int16".to_string());
    }
    Ok(buf.get_i16())
}

fn read_i32(buf: &mut BytesMut) -> Result<i32, String> {
    if buf.remaining() < 4 {
        return Err("frame ends inside an int32".to_string());
    }
    Ok(buf.get_i32())
}

/// An unsigned varint of at most 5 bytes (Kafka's u32 varint).
fn read_unsigned_varint(buf: &mut BytesMut) -> Result<u32, String> {
    super::codec::read_unsigned_varint(buf)
}

#[cfg(test)]
#[path = "produce_request_tests.rs"]
mod tests;
