//! Choosing a partition for a produced record, as Kafka's Java client does.
//!
//! Owns: `murmur2` (bit-for-bit Kafka's `Utils.murmur2`), `partition_for_key`
//! (`toPositive(murmur2(key)) % partitions`) and `CliPartitioner`, the librdkafka custom
//! partitioner the producer installs. May import: rdkafka's `Partitioner` trait only.
//! Invariant: a keyed record lands on the partition a Java producer would pick for that key.

use rdkafka::producer::Partitioner;
use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's murmur2 (seed 0x9747b28c), as a Java `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java truncates the length to an int; keys longer than 2^31 bytes cannot be produced.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's Java producer picks for a non-null key.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    assert!(partition_count > 0, "partition count must be positive");
    (murmur2(key) & 0x7fff_ffff) % partition_count
}

/// How `produce --partitioner` spreads records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PartitionerKind {
    /// Keyed records by Java's murmur2 hash; records without a key round-robin.
    #[default]
    Murmur2,
    /// Every record to the next partition in turn, key or not.
    RoundRobin,
}

/// librdkafka calls this for every record that names no partition.
pub struct CliPartitioner {
    kind: PartitionerKind,
    next: AtomicU32,
}

impl CliPartitioner {
    pub fn new(kind: PartitionerKind) -> CliPartitioner {
        CliPartitioner {
            kind,
            next: AtomicU32::new(0),
        }
    }

    fn round_robin(&self, partition_count: i32) -> i32 {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        (turn % partition_count.unsigned_abs()) as i32
    }
}

impl Partitioner for CliPartitioner {
    fn partition(
        &self,
        _topic_name: &str,
        key: Option<&[u8]>,
        partition_count: i32,
        _is_partition_available: impl Fn(i32) -> bool,
    ) -> i32 {
        if partition_count <= 0 {
            return rdkafka::producer::PARTITION_UA;
        }
        match (self.kind, key) {
            (PartitionerKind::Murmur2, Some(key)) => partition_for_key(key, partition_count),
            _ => self.round_robin(partition_count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own `UtilsTest.testMurmur2` (clients module).
    #[test]
    fn murmur2_matches_kafka_utils_test() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// librdkafka's `java_murmur2_results` (rdmurmur2.c), which it checks against the Java
    /// client; covers every tail length and the empty key.
    #[test]
    fn murmur2_matches_librdkafka_java_vectors() {
        let cases: [(&str, u32); 11] = [
            ("kafka", 0xd067_cf64),
            ("giberish123456789", 0x8f55_2b0c),
            ("1234", 0x9fc9_7b14),
            ("234", 0xe7c0_09ca),
            ("34", 0x8739_30da),
            ("4", 0x5a4b_5ca1),
            ("PreAmbleWillBeRemoved,ThePrePartThatIs", 0x7842_4f1c),
            ("reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62_b377),
            ("eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4_e09e),
            ("AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8_b43f),
            ("", 0x106e_08d9),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()) as u32, expected, "key {key:?}");
        }
    }

    /// Java's `Utils.toPositive(Utils.murmur2(key)) % numPartitions` for fixed keys: the
    /// positive hashes 1348980580 ("kafka"), 257239820 ("giberish123456789") and 1173551340
    /// ("21": -973932308 & 0x7fffffff) give these partitions.
    #[test]
    fn keys_land_where_the_java_client_puts_them() {
        let cases: [(&str, i32, i32); 9] = [
            ("kafka", 3, 1),
            ("kafka", 6, 4),
            ("kafka", 12, 4),
            ("giberish123456789", 3, 2),
            ("giberish123456789", 6, 2),
            ("giberish123456789", 7, 5),
            ("21", 3, 0),
            ("21", 7, 3),
            ("21", 12, 0),
        ];
        for (key, partitions, expected) in cases {
            assert_eq!(
                partition_for_key(key.as_bytes(), partitions),
                expected,
                "{key} of {partitions}"
            );
        }
        assert_eq!(murmur2(b"kafka") & 0x7fff_ffff, 1_348_980_580);
        assert_eq!(murmur2(b"giberish123456789") & 0x7fff_ffff, 257_239_820);
        assert_eq!(murmur2(b"21") & 0x7fff_ffff, 1_173_551_340);
    }

    #[test]
    fn negative_hashes_still_give_valid_partitions() {
        // "foobar" hashes negative; a plain `%` in Java would go negative too.
        assert!(murmur2(b"foobar") < 0);
        for partitions in 1..50 {
            let p = partition_for_key(b"foobar", partitions);
            assert!((0..partitions).contains(&p));
        }
    }

    #[test]
    fn round_robin_cycles_and_null_keys_round_robin_under_murmur2() {
        let rr = CliPartitioner::new(PartitionerKind::RoundRobin);
        let picks: Vec<i32> = (0..6)
            .map(|_| rr.partition("t", Some(b"k"), 3, |_| true))
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let murmur = CliPartitioner::new(PartitionerKind::Murmur2);
        assert_eq!(murmur.partition("t", Some(b"kafka"), 3, |_| true), 1);
        let nulls: Vec<i32> = (0..3)
            .map(|_| murmur.partition("t", None, 3, |_| true))
            .collect();
        assert_eq!(nulls, [0, 1, 2]);
        assert_eq!(
            murmur.partition("t", None, 0, |_| true),
            rdkafka::producer::PARTITION_UA
        );
    }
}
