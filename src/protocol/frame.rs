//! Kafka framing: every request and response is a big-endian i32 size followed by that
//! many bytes. A size that is negative or above the configured maximum is an error and the
//! connection must be closed (Kafka's `socket.request.max.bytes`).

use bytes::BytesMut;
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
    /// A whole frame was split off the buffer (without its size prefix). It is its own
    /// region of the buffer: nothing else sees these bytes, so they may be written to.
    Complete(BytesMut),
    /// More bytes are needed; the value is the total buffered length the frame needs.
    NeedBytes(usize),
}

/// The total buffered length (size prefix included) the frame at the front of `buffered`
/// needs: `SIZE_PREFIX_BYTES` until its prefix is there.
pub fn frame_needs(buffered: &[u8], max_bytes: usize) -> Result<usize, FrameError> {
    let Some(prefix) = buffered.first_chunk::<SIZE_PREFIX_BYTES>() else {
        return Ok(SIZE_PREFIX_BYTES);
    };
    let size = i32::from_be_bytes(*prefix);
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
    Ok(SIZE_PREFIX_BYTES + size)
}

/// Splits the next complete frame off `buffer`, if there is one.
pub fn take_frame(buffer: &mut BytesMut, max_bytes: usize) -> Result<FrameStatus, FrameError> {
    let needed = frame_needs(buffer, max_bytes)?;
    if buffer.len() < needed {
        return Ok(FrameStatus::NeedBytes(needed));
    }
    let mut frame = buffer.split_to(needed);
    let _ = frame.split_to(SIZE_PREFIX_BYTES);
    Ok(FrameStatus::Complete(frame))
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
            Ok(FrameStatus::Complete(BytesMut::from(&b"abc"[..])))
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
