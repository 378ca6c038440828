//! Raw request bytes for the hostile clients, which must do what no well-behaved client
//! library does (declare a frame and never send it, pipeline fetches and never read).
//!
//! Owns: the encoding of a Kafka request frame (header v1) for Fetch v4 and of an HTTP GET.
//! Imports nothing from this crate. Pure functions, no I/O.

/// Kafka API key of Fetch.
const API_FETCH: i16 = 1;
const FETCH_VERSION: i16 = 4;
const CLIENT_ID: &str = "bench-hostile";

/// A frame's 4-byte big-endian length prefix.
pub fn frame_length(bytes: u32) -> [u8; 4] {
    bytes.to_be_bytes()
}

/// A Fetch v4 request frame for partitions 0..`partitions` of `topic` from offset 0, with
/// `partition_max_bytes` per partition and `max_bytes` for the response (both clamped to
/// i32::MAX), `max_wait_ms` 500 and `min_bytes` 1.
pub fn fetch_v4(
    correlation_id: i32,
    topic: &str,
    partitions: u32,
    partition_max_bytes: u64,
    max_bytes: u64,
) -> Vec<u8> {
    let clamp = |bytes: u64| bytes.min(i32::MAX as u64) as i32;
    let mut body = Vec::with_capacity(64 + topic.len() + 16 * partitions as usize);
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id: a consumer
    body.extend_from_slice(&500i32.to_be_bytes()); // max_wait_ms
    body.extend_from_slice(&1i32.to_be_bytes()); // min_bytes
    body.extend_from_slice(&clamp(max_bytes).to_be_bytes());
    body.push(0); // isolation_level: read_uncommitted
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    put_string(&mut body, topic);
    body.extend_from_slice(&(partitions as i32).to_be_bytes());
    for partition in 0..partitions {
        body.extend_from_slice(&(partition as i32).to_be_bytes());
        body.extend_from_slice(&0i64.to_be_bytes()); // fetch_offset
        body.extend_from_slice(&clamp(partition_max_bytes).to_be_bytes());
    }
    let mut header = Vec::with_capacity(10 + CLIENT_ID.len());
    header.extend_from_slice(&API_FETCH.to_be_bytes());
    header.extend_from_slice(&FETCH_VERSION.to_be_bytes());
    header.extend_from_slice(&correlation_id.to_be_bytes());
    put_string(&mut header, CLIENT_ID);
    let mut frame = Vec::with_capacity(4 + header.len() + body.len());
    frame.extend_from_slice(&frame_length((header.len() + body.len()) as u32));
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&body);
    frame
}

/// A Kafka (non-compact) string: i16 length, then the bytes.
fn put_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// `GET path HTTP/1.1` with a Host header; `close` asks the server to close afterwards.
pub fn http_get(host: &str, path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{connection}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_v4_frame_has_the_documented_layout() {
        let frame = fetch_v4(7, "t", 2, 1 << 40, 1 << 30);
        let length = i32::from_be_bytes(frame[0..4].try_into().unwrap());
        assert_eq!(length as usize, frame.len() - 4);
        // Header v1: api key 1, version 4, correlation id 7, client id.
        assert_eq!(&frame[4..8], &[0, 1, 0, 4]);
        assert_eq!(&frame[8..12], &7i32.to_be_bytes());
        let client_end = 14 + CLIENT_ID.len();
        assert_eq!(&frame[14..client_end], CLIENT_ID.as_bytes());
        let body = &frame[client_end..];
        assert_eq!(&body[0..4], &(-1i32).to_be_bytes());
        assert_eq!(&body[12..16], &(1i32 << 30).to_be_bytes());
        assert_eq!(body[16], 0);
        assert_eq!(&body[21..24], &[0, 1, b't']);
        assert_eq!(&body[24..28], &2i32.to_be_bytes());
        // Partition 1: index, offset 0, partition_max_bytes clamped to i32::MAX.
        let second = &body[28 + 16..28 + 32];
        assert_eq!(&second[0..4], &1i32.to_be_bytes());
        assert_eq!(&second[4..12], &0i64.to_be_bytes());
        assert_eq!(&second[12..16], &i32::MAX.to_be_bytes());
        assert_eq!(body.len(), 28 + 32);
    }

    #[test]
    fn http_get_is_a_complete_request() {
        let request = String::from_utf8(http_get("h:1", "/metrics", true)).unwrap();
        assert_eq!(
            request,
            "GET /metrics HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\n\r\n"
        );
        assert!(
            String::from_utf8(http_get("h", "/", false))
                .unwrap()
                .ends_with("h\r\n\r\n")
        );
    }
}
