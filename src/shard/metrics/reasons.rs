//! The fixed label sets of `/metrics`: why a request or connection was refused or dropped,
//! why one was delayed (back-pressure), and which memory pool a gauge is about. Labels come
//! only from these enums, never from free-form strings, so a family's cardinality is fixed.

use crate::model::validation::ValidationError;
use crate::storage::StorageError;

/// Why the broker refused, dropped or failed a request or connection
/// (`shardlog_requests_rejected_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// A frame larger than `server.request_bytes_max`: the connection is closed.
    RequestTooLarge,
    /// A frame with a negative size: the connection is closed.
    MalformedFrame,
    /// A request whose header or body does not decode: the connection is closed.
    MalformedRequest,
    /// An API key the broker does not serve: the connection is closed.
    UnknownApi,
    /// A version outside the API's supported range (ApiVersions answers; others close).
    UnsupportedVersion,
    /// A connection over `server.shard_connections_max`.
    ConnectionLimit,
    /// A connection over `server.connections_per_ip_max`.
    ConnectionLimitPerIp,
    /// A request frame that did not arrive whole within `server.request_read_timeout_ms`
    /// of its first byte: the connection is closed.
    RequestReadTimeout,
    /// An admin HTTP connection over `server.admin_connections_max`, or a /metrics request
    /// over `server.admin_metrics_inflight_max` (answered 503).
    AdminConnectionLimit,
    /// Produce refused because the data dir's free space is below `disk_free_bytes_min`.
    DiskFull,
    /// An I/O failure of a partition log (KAFKA_STORAGE_ERROR), on append, flush or sync.
    StorageError,
    /// Produce to a topic or partition that does not exist (or not on this shard).
    UnknownPartition,
    /// Produce with an acks value other than 0, 1 or -1.
    InvalidRequiredAcks,
    /// A record batch that fails its CRC or framing (CORRUPT_MESSAGE).
    CorruptBatch,
    /// A batch breaking a record-validation or topic rule (`model::validation`; keyless
    /// record on a compacted topic) (INVALID_RECORD).
    InvalidRecord,
    /// A batch over `storage.batch_bytes_max`, or whose records decompress past
    /// `storage.decompressed_batch_bytes_max` (MESSAGE_TOO_LARGE).
    BatchTooLarge,
    /// Idempotence/transaction checks: out-of-order sequence, fenced producer epoch, a
    /// producer id never handed out, an unverified transactional batch.
    ProducerState,
    /// The partition's log is closing (moved or deleted) (NOT_LEADER_OR_FOLLOWER).
    LogClosed,
    /// Cluster mode: the metadata log names another broker as the partition's leader
    /// (NOT_LEADER_OR_FOLLOWER).
    NotLeader,
    /// Cluster mode: acks=all while the ISR is below `min.insync.replicas`
    /// (NOT_ENOUGH_REPLICAS).
    NotEnoughReplicas,
    /// A handler failed (shard unreachable, response encoding): the connection is closed.
    HandlerFailed,
    /// A TLS handshake that failed (bad TLS input, a plaintext client on an SSL listener, a
    /// refused client certificate): the connection is closed.
    TlsHandshakeFailed,
    /// A TLS handshake not finished within `tls.handshake_timeout_ms`: the connection is
    /// closed.
    TlsHandshakeTimeout,
    /// A connection over `tls.handshakes_inflight_max`: closed before its handshake.
    TlsHandshakeLimit,
    /// A failed SASL login (wrong password, unknown user, malformed or oversized token):
    /// answered SASL_AUTHENTICATION_FAILED after `sasl.failed_authentication_delay_ms`,
    /// then the connection is closed.
    SaslAuthenticationFailed,
    /// A request other than ApiVersions, SaslHandshake or SaslAuthenticate before a login
    /// on a SASL listener, or a SASL request out of order: the connection is closed.
    SaslNotAuthenticated,
    /// A request after the session ended (`sasl.connections_max_reauth_ms`) without a
    /// re-login: the connection is closed.
    SaslSessionExpired,
    /// The authorizer denied a request or a partition of it (an *_AUTHORIZATION_FAILED
    /// answer), or an API without its own ACL checks to a principal without ALTER on the
    /// cluster (the connection is closed).
    Unauthorized,
}

impl RejectReason {
    pub const ALL: [RejectReason; 28] = [
        RejectReason::RequestTooLarge,
        RejectReason::MalformedFrame,
        RejectReason::MalformedRequest,
        RejectReason::UnknownApi,
        RejectReason::UnsupportedVersion,
        RejectReason::ConnectionLimit,
        RejectReason::ConnectionLimitPerIp,
        RejectReason::RequestReadTimeout,
        RejectReason::AdminConnectionLimit,
        RejectReason::DiskFull,
        RejectReason::StorageError,
        RejectReason::UnknownPartition,
        RejectReason::InvalidRequiredAcks,
        RejectReason::CorruptBatch,
        RejectReason::InvalidRecord,
        RejectReason::BatchTooLarge,
        RejectReason::ProducerState,
        RejectReason::LogClosed,
        RejectReason::NotLeader,
        RejectReason::NotEnoughReplicas,
        RejectReason::HandlerFailed,
        RejectReason::TlsHandshakeFailed,
        RejectReason::TlsHandshakeTimeout,
        RejectReason::TlsHandshakeLimit,
        RejectReason::SaslAuthenticationFailed,
        RejectReason::SaslNotAuthenticated,
        RejectReason::SaslSessionExpired,
        RejectReason::Unauthorized,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::RequestTooLarge => "request_too_large",
            RejectReason::MalformedFrame => "malformed_frame",
            RejectReason::MalformedRequest => "malformed_request",
            RejectReason::UnknownApi => "unknown_api",
            RejectReason::UnsupportedVersion => "unsupported_version",
            RejectReason::ConnectionLimit => "connection_limit",
            RejectReason::ConnectionLimitPerIp => "connection_limit_per_ip",
            RejectReason::RequestReadTimeout => "request_read_timeout",
            RejectReason::AdminConnectionLimit => "admin_connection_limit",
            RejectReason::DiskFull => "disk_full",
            RejectReason::StorageError => "storage_error",
            RejectReason::UnknownPartition => "unknown_partition",
            RejectReason::InvalidRequiredAcks => "invalid_required_acks",
            RejectReason::CorruptBatch => "corrupt_batch",
            RejectReason::InvalidRecord => "invalid_record",
            RejectReason::BatchTooLarge => "batch_too_large",
            RejectReason::ProducerState => "producer_state",
            RejectReason::LogClosed => "log_closed",
            RejectReason::NotLeader => "not_leader",
            RejectReason::NotEnoughReplicas => "not_enough_replicas",
            RejectReason::HandlerFailed => "handler_failed",
            RejectReason::TlsHandshakeFailed => "tls_handshake_failed",
            RejectReason::TlsHandshakeTimeout => "tls_handshake_timeout",
            RejectReason::TlsHandshakeLimit => "tls_handshake_limit",
            RejectReason::SaslAuthenticationFailed => "sasl_authentication_failed",
            RejectReason::SaslNotAuthenticated => "sasl_not_authenticated",
            RejectReason::SaslSessionExpired => "sasl_session_expired",
            RejectReason::Unauthorized => "unauthorized",
        }
    }

    /// The reason a failed append counts under.
    pub fn of_storage_error(error: &StorageError) -> RejectReason {
        match error {
            StorageError::Validation(ValidationError::Corrupt(_)) => RejectReason::CorruptBatch,
            StorageError::Validation(ValidationError::Invalid(_)) => RejectReason::InvalidRecord,
            StorageError::Validation(ValidationError::TooLarge { .. }) => {
                RejectReason::BatchTooLarge
            }
            StorageError::InvalidBatch(_) | StorageError::Compression(_) => {
                RejectReason::CorruptBatch
            }
            StorageError::InvalidRecord { .. } => RejectReason::InvalidRecord,
            StorageError::BatchTooLarge { .. } => RejectReason::BatchTooLarge,
            StorageError::OutOfOrderSequence { .. }
            | StorageError::InvalidProducerEpoch { .. }
            | StorageError::TransactionNotVerified { .. } => RejectReason::ProducerState,
            StorageError::Closed => RejectReason::LogClosed,
            _ if error.is_disk_full() => RejectReason::DiskFull,
            _ => RejectReason::StorageError,
        }
    }
}

/// Why the broker made a request wait instead of refusing it
/// (`shardlog_requests_delayed_total{reason}`). Counted once per wait that did not succeed
/// at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DelayReason {
    /// Received request bytes did not fit in `server.request_memory_bytes_max`: reading
    /// stopped (TCP back-pressure) until memory was released.
    MemoryBudget,
    /// A fetch waited for room in `server.connection_response_bytes_max` or
    /// `server.response_memory_bytes_max` (its client is not reading its responses, or the
    /// shard holds that many unwritten response bytes).
    ResponseBudget,
    /// A connection had `server.connection_inflight_requests_max` requests in flight.
    InflightLimit,
    /// A partition's `storage.write_buffer_bytes_max` was full: the append waited for the
    /// flusher.
    WriteBuffer,
    /// A shard-to-shard channel was full (`shard.mesh_channel_capacity`).
    MeshFull,
}

impl DelayReason {
    pub const ALL: [DelayReason; 5] = [
        DelayReason::MemoryBudget,
        DelayReason::ResponseBudget,
        DelayReason::InflightLimit,
        DelayReason::WriteBuffer,
        DelayReason::MeshFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DelayReason::MemoryBudget => "memory_budget",
            DelayReason::ResponseBudget => "response_budget",
            DelayReason::InflightLimit => "inflight_limit",
            DelayReason::WriteBuffer => "write_buffer",
            DelayReason::MeshFull => "mesh_full",
        }
    }
}

/// A memory budget the broker enforces (`shardlog_memory_*_bytes{pool}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemoryPool {
    /// Request frames being read or handled (`server.request_memory_bytes_max`).
    Request,
    /// The reserve small request frames use when `Request` is full (an eighth of
    /// `server.request_memory_bytes_max`).
    RequestSmall,
    /// Fetch responses read but not yet written (`server.response_memory_bytes_max`).
    Response,
    /// Recent batches kept for fetch (`storage.batch_cache_bytes_max`).
    BatchCache,
    /// Appended bytes not yet copied to a write buffer, summed over the shard's partitions
    /// (`storage.write_buffer_bytes_max` each).
    WriteBuffer,
}

impl MemoryPool {
    pub const ALL: [MemoryPool; 5] = [
        MemoryPool::Request,
        MemoryPool::RequestSmall,
        MemoryPool::Response,
        MemoryPool::BatchCache,
        MemoryPool::WriteBuffer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemoryPool::Request => "request",
            MemoryPool::RequestSmall => "request_small",
            MemoryPool::Response => "response",
            MemoryPool::BatchCache => "batch_cache",
            MemoryPool::WriteBuffer => "write_buffer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn is_label_safe(value: &str) -> bool {
        !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn reject_reasons_have_distinct_plain_labels() {
        let labels: HashSet<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), RejectReason::ALL.len());
        assert!(labels.iter().all(|l| is_label_safe(l)));
        let sorted = {
            let mut all = RejectReason::ALL;
            all.sort();
            all
        };
        assert_eq!(sorted, RejectReason::ALL, "ALL lists every reason in order");
    }

    #[test]
    fn delay_reasons_and_pools_have_distinct_plain_labels() {
        let delays: HashSet<_> = DelayReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(delays.len(), DelayReason::ALL.len());
        assert!(delays.iter().all(|l| is_label_safe(l)));
        let pools: HashSet<_> = MemoryPool::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(pools.len(), MemoryPool::ALL.len());
        assert!(pools.iter().all(|l| is_label_safe(l)));
    }

    #[test]
    fn storage_errors_map_to_reasons() {
        assert_eq!(
            RejectReason::of_storage_error(&StorageError::Closed),
            RejectReason::LogClosed
        );
        let io = StorageError::io(
            "write",
            std::path::Path::new("x"),
            std::io::Error::from_raw_os_error(libc::EIO),
        );
        assert_eq!(
            RejectReason::of_storage_error(&io),
            RejectReason::StorageError
        );
        let full = StorageError::io(
            "write",
            std::path::Path::new("x"),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(
            RejectReason::of_storage_error(&full),
            RejectReason::DiskFull
        );
    }
}
