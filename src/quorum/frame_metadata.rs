//! The metadata a broker-only node (an observer of the metadata log, `super::super::observer`)
//! fetches from a voter (`crate::cluster::observation::MetadataChunk`): a snapshot of the
//! applied image and/or the committed entries after the index the observer applied. Encoded
//! at the end of a controller-protocol response.
//!
//! Owns: the chunk's encoding. May import: the parent `frame` module's reader.
//! Invariants: decoding allocates nothing a declared length does not cover in the body
//! (lengths are checked against the bytes left before copying).

use super::{FrameError, Reader, encode_list};
pub use crate::cluster::observation::MetadataChunk;

/// An entry: index and a 4-byte length.
const MIN_ENTRY_BYTES: usize = 8 + 4;

pub(super) fn encode_optional_chunk(
    chunk: Option<&MetadataChunk>,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let Some(chunk) = chunk else {
        out.push(0);
        return Ok(());
    };
    out.push(1);
    match &chunk.snapshot {
        None => out.push(0),
        Some((index, data)) => {
            out.push(1);
            out.extend_from_slice(&index.to_be_bytes());
            encode_bytes(data, out)?;
        }
    }
    encode_list(&chunk.entries, out, |(index, data), out| {
        out.extend_from_slice(&index.to_be_bytes());
        encode_bytes(data, out)
    })?;
    out.extend_from_slice(&chunk.voter_applied_index.to_be_bytes());
    Ok(())
}

pub(super) fn decode_optional_chunk(
    reader: &mut Reader<'_>,
) -> Result<Option<MetadataChunk>, FrameError> {
    if !reader.flag()? {
        return Ok(None);
    }
    let snapshot = if reader.flag()? {
        Some((reader.u64()?, decode_bytes(reader)?))
    } else {
        None
    };
    let entries = reader.list(MIN_ENTRY_BYTES, "metadata entries", |reader| {
        Ok((reader.u64()?, decode_bytes(reader)?))
    })?;
    Ok(Some(MetadataChunk {
        snapshot,
        entries,
        voter_applied_index: reader.u64()?,
    }))
}

fn encode_bytes(data: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let length = u32::try_from(data.len())
        .map_err(|_| FrameError::Malformed(format!("{} bytes of metadata", data.len())))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

fn decode_bytes(reader: &mut Reader<'_>) -> Result<Vec<u8>, FrameError> {
    let length = reader.u32()? as usize;
    Ok(reader.take(length)?.to_vec())
}
