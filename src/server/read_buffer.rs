//! A connection's request read buffer. The socket is read straight into it (no scratch
//! buffer, no copy into the request buffer), and complete frames are split off its front as
//! `BytesMut` regions that nothing else sees, so the produce path stamps records in place.
//!
//! Owns: the buffer and its growth. May import: `protocol::frame`. Runs on: the
//! connection's shard.
//! Invariants: the first `filled` bytes of `chunk` are received and not yet split off; the
//! rest of `chunk` is initialized room for the next read (zeroed when allocated, so reads
//! need no unsafe code). Growth is sized by bytes that exist, never by a frame's declared
//! size alone: a new chunk holds the buffered bytes plus at most
//! max(`READ_CHUNK_BYTES`, min(what the front frame still misses, max(buffered bytes, bytes
//! already waiting on the socket))). The only copy is of the buffered bytes when a frame
//! outgrows its chunk (at most doubling, or one move to a chunk that fits the waiting bytes).

use crate::protocol::frame::{FrameError, FrameStatus, SIZE_PREFIX_BYTES, frame_needs};
use bytes::{Buf, BytesMut};

/// The smallest chunk, and the room read at a frame boundary.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct ReadBuffer {
    chunk: BytesMut,
    filled: usize,
}

impl ReadBuffer {
    pub fn new() -> ReadBuffer {
        ReadBuffer::default()
    }

    /// Received bytes not yet split off as frames.
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The received bytes not yet split off.
    pub fn buffered(&self) -> &[u8] {
        &self.chunk[..self.filled]
    }

    /// Splits the next complete frame (without its size prefix) off the front.
    pub fn take_frame(&mut self, max_bytes: usize) -> Result<FrameStatus, FrameError> {
        let needed = frame_needs(self.buffered(), max_bytes)?;
        if self.filled < needed {
            return Ok(FrameStatus::NeedBytes(needed));
        }
        let mut frame = self.chunk.split_to(needed);
        self.filled -= needed;
        frame.advance(SIZE_PREFIX_BYTES);
        Ok(FrameStatus::Complete(frame))
    }

    /// Room for the next read, growing the buffer first if needed. `needed` is what the
    /// front frame needs in all (`FrameStatus::NeedBytes`); `queued` tells the bytes waiting
    /// on the socket (0 if unknown), asked only when the buffer may grow for a known frame.
    pub fn room(&mut self, needed: usize, queued: impl FnOnce() -> usize) -> &mut [u8] {
        let free = self.chunk.len() - self.filled;
        let missing = needed.saturating_sub(self.filled).max(1);
        let frame_known = needed > SIZE_PREFIX_BYTES;
        if free > 0 && (free >= missing || !frame_known) {
            return &mut self.chunk[self.filled..];
        }
        let grow = if frame_known {
            missing.min(self.filled.max(queued()))
        } else {
            0
        }
        .max(READ_CHUNK_BYTES);
        // Move now rather than after filling what is left: the frame must end up in one
        // chunk, and moving fewer bytes is cheaper.
        if free == 0 || free < grow / 2 {
            let mut chunk = BytesMut::zeroed(self.filled + grow);
            chunk[..self.filled].copy_from_slice(self.buffered());
            self.chunk = chunk;
        }
        &mut self.chunk[self.filled..]
    }

    /// Counts `read` bytes just read into `room()` as received.
    pub fn commit(&mut self, read: usize) {
        assert!(
            self.filled + read <= self.chunk.len(),
            "read past the read buffer"
        );
        self.filled += read;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(size: usize, fill: u8) -> Vec<u8> {
        let mut out = (size as i32).to_be_bytes().to_vec();
        out.resize(SIZE_PREFIX_BYTES + size, fill);
        out
    }

    /// Feeds `input` through `room`/`commit` in reads of at most `read_max` bytes.
    fn feed(buffer: &mut ReadBuffer, input: &[u8], read_max: usize, queued: usize) -> usize {
        let mut frames = 0;
        let mut position = 0;
        loop {
            match buffer.take_frame(1 << 24).unwrap() {
                FrameStatus::Complete(_) => frames += 1,
                FrameStatus::NeedBytes(needed) => {
                    if position == input.len() {
                        return frames;
                    }
                    let room = buffer.room(needed, || queued);
                    let n = room.len().min(read_max).min(input.len() - position);
                    room[..n].copy_from_slice(&input[position..position + n]);
                    buffer.commit(n);
                    position += n;
                }
            }
        }
    }

    #[test]
    fn splits_pipelined_frames_read_in_pieces() {
        let mut input = Vec::new();
        for (i, size) in [10usize, 70_000, 3, 200_000, 0, 5].iter().enumerate() {
            input.extend(frame(*size, i as u8));
        }
        for read_max in [1, 7, 4096, 65_536, 1 << 20] {
            let mut buffer = ReadBuffer::new();
            assert_eq!(
                feed(&mut buffer, &input, read_max, 0),
                6,
                "reads of {read_max}"
            );
            assert!(buffer.is_empty());
        }
    }

    #[test]
    fn frames_keep_their_bytes_and_are_writable_in_place() {
        let mut buffer = ReadBuffer::new();
        let mut input = frame(3, b'a');
        input.extend(frame(2, b'b'));
        let room = buffer.room(SIZE_PREFIX_BYTES, || 0);
        room[..input.len()].copy_from_slice(&input);
        buffer.commit(input.len());
        let FrameStatus::Complete(mut first) = buffer.take_frame(100).unwrap() else {
            panic!("a whole frame is buffered");
        };
        first[0] = b'z';
        let FrameStatus::Complete(second) = buffer.take_frame(100).unwrap() else {
            panic!("a whole frame is buffered");
        };
        assert_eq!(&first[..], b"zaa");
        assert_eq!(&second[..], b"bb");
    }

    /// Growth never follows a frame's declared size beyond the bytes there are: a client that
    /// declares a 16 MiB frame and sends 10 bytes gets a 64 KiB buffer, and the buffer at most
    /// doubles per read until the socket is known to hold more.
    #[test]
    fn growth_is_bounded_by_bytes_that_exist() {
        let mut buffer = ReadBuffer::new();
        let header = (16i32 << 20).to_be_bytes();
        let room = buffer.room(SIZE_PREFIX_BYTES, || 0);
        assert_eq!(room.len(), READ_CHUNK_BYTES);
        room[..4].copy_from_slice(&header);
        buffer.commit(10);
        let needed = SIZE_PREFIX_BYTES + (16 << 20);
        assert_eq!(buffer.room(needed, || 0).len(), READ_CHUNK_BYTES - 10);
        buffer.commit(READ_CHUNK_BYTES - 10);
        assert_eq!(buffer.room(needed, || 0).len(), READ_CHUNK_BYTES);
        buffer.commit(READ_CHUNK_BYTES);
        // 1 MiB waiting on the socket: one chunk for it (still far below the declared size).
        assert_eq!(buffer.room(needed, || 1 << 20).len(), 1 << 20);
    }

    /// A frame whose rest is waiting on the socket moves once, into a chunk that ends where
    /// the frame ends: the next frame starts a chunk of its own.
    #[test]
    fn a_waiting_frame_moves_once() {
        let mut buffer = ReadBuffer::new();
        let size = 300_000;
        let room = buffer.room(SIZE_PREFIX_BYTES, || 1 << 20);
        room[..4].copy_from_slice(&(size as i32).to_be_bytes());
        let first = room.len();
        buffer.commit(first);
        let needed = SIZE_PREFIX_BYTES + size;
        let room = buffer.room(needed, || 1 << 20);
        assert_eq!(room.len(), needed - first);
        let rest = room.len();
        buffer.commit(rest);
        assert!(matches!(
            buffer.take_frame(1 << 20),
            Ok(FrameStatus::Complete(frame)) if frame.len() == size
        ));
        assert_eq!(buffer.room(SIZE_PREFIX_BYTES, || 0).len(), READ_CHUNK_BYTES);
    }
}
