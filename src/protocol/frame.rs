//! Kafka framing: every request and response is a big-endian i32 size followed by that
//! many bytes. A size that is negative or above the configured maximum is an error and the
//! connection must be closed (Kafka's `socket.request.max.bytes`).

use bytes::{Bytes, BytesMut};
use thiserror::Error;

pub const SIZE_PREFIX_BYTES: usize = 4;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {size} is negative")]
    NegativeSize { size: i32 },
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
}

/// What the buffer holds so far.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole frame was split off the buffer (without its size prefix).
    Complete(Bytes),
    /// More bytes are needed; the value is the total buffered length the frame needs.
    NeedBytes(usize),
}

/// Splits the next complete frame off `buffer`, if there is one.
pub fn take_frame(buffer: &mut BytesMut, max_bytes: usize) -> Result<FrameStatus, FrameError> {
    if buffer.len() < SIZE_PREFIX_BYTES {
        return Ok(FrameStatus::NeedBytes(SIZE_PREFIX_BYTES));
    }
    let size = i32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    let size = size as usize;
    if size > max_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_bytes,
        });
    }
    let needed = SIZE_PREFIX_BYTES + size;
    if buffer.len() < needed {
        return Ok(FrameStatus::NeedBytes(needed));
    }
    let mut frame = buffer.split_to(needed);
    let _ = frame.split_to(SIZE_PREFIX_BYTES);
    Ok(FrameStatus::Complete(frame.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_waits_for_more() {
        let mut buffer = BytesMut::new();
        assert_eq!(take_frame(&mut buffer, 100), Ok(FrameStatus::NeedBytes(4)));
        buffer.extend_from_slice(&3i32.to_be_bytes());
        buffer.extend_from_slice(b"ab");
        assert_eq!(take_frame(&mut buffer, 100), Ok(FrameStatus::NeedBytes(7)));
        buffer.extend_from_slice(b"cd");
        assert_eq!(
            take_frame(&mut buffer, 100),
            Ok(FrameStatus::Complete(Bytes::from_static(b"abc")))
        );
        assert_eq!(&buffer[..], b"d");
    }

    #[test]
    fn rejects_negative_and_oversized() {
        let mut buffer = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            take_frame(&mut buffer, 100),
            Err(FrameError::NegativeSize { size: -1 })
        );
        let mut buffer = BytesMut::from(&(i32::MAX).to_be_bytes()[..]);
        assert!(matches!(
            take_frame(&mut buffer, 100),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
