//! Deterministic partition → shard placement: partitions of a topic are spread round-robin
//! over shards, starting at a shard chosen by a stable hash of the topic name, so every shard
//! computes the same owner without asking anyone.

use crate::model::ShardId;

/// FNV-1a, 32 bit: stable across builds and platforms (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

pub fn shard_for(topic: &str, partition: i32, shard_count: usize) -> ShardId {
    assert!(shard_count > 0, "shard count must be positive");
    let start = fnv1a(topic.as_bytes()) as usize;
    let partition = partition.max(0) as usize;
    ShardId(start.wrapping_add(partition) % shard_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_spreads_partitions() {
        assert_eq!(shard_for("orders", 0, 4), shard_for("orders", 0, 4));
        let owners: Vec<usize> = (0..4).map(|p| shard_for("orders", p, 4).0).collect();
        let mut sorted = owners.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        assert_eq!(shard_for("anything", 7, 1), ShardId(0));
    }
}
