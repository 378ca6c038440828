//! Message payloads and keys: a 16-byte header that carries the send timestamp for
//! end-to-end latency, followed by body bytes drawn from a pre-generated pool.
//!
//! Owns: the payload header format, the clock it uses, size and key sampling.
//! Imports: `workload` only. Invariant: every payload is at least `PAYLOAD_HEADER_BYTES` long.
//!
//! Header layout (little endian):
//! `[0..8)` send time, ns since this process's clock origin (the *intended* send time when
//! the producer is rate-limited, so a stalled broker cannot hide queueing delay);
//! `[8..12)` run tag (random per run: messages from another run are not counted);
//! `[12..16)` producer index.

use crate::workload::{KeyDistribution, MessageSize, PAYLOAD_HEADER_BYTES, PayloadKind};
use std::sync::OnceLock;
use std::time::Instant;

const HEADER: usize = PAYLOAD_HEADER_BYTES as usize;
/// Body bytes are sliced out of a pool this large, at varying offsets, so consecutive
/// messages differ and compression sees realistic data.
const POOL_BYTES: usize = 1 << 20;

static CLOCK_ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's clock origin (monotonic, shared by all threads).
pub fn now_ns() -> u64 {
    CLOCK_ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Small fast PRNG (SplitMix64): good enough for sizes, keys and filler bytes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn random_seed() -> u64 {
    let mut seed = now_ns() ^ u64::from(std::process::id()).rotate_left(32);
    let stack_address = &seed as *const u64 as u64;
    seed ^= stack_address;
    Rng::new(seed).next_u64()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub send_ns: u64,
    pub run_tag: u32,
    pub producer: u32,
}

impl Header {
    pub fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.send_ns.to_le_bytes());
        out[8..12].copy_from_slice(&self.run_tag.to_le_bytes());
        out[12..16].copy_from_slice(&self.producer.to_le_bytes());
    }

    pub fn read(payload: &[u8]) -> Option<Header> {
        let header = payload.get(..HEADER)?;
        Some(Header {
            send_ns: u64::from_le_bytes(header[0..8].try_into().ok()?),
            run_tag: u32::from_le_bytes(header[8..12].try_into().ok()?),
            producer: u32::from_le_bytes(header[12..16].try_into().ok()?),
        })
    }
}

/// Picks message sizes following a workload's `messages.size`.
#[derive(Debug, Clone)]
pub struct SizeSampler {
    size: MessageSize,
    cumulative: Vec<(f64, u64)>,
}

impl SizeSampler {
    pub fn new(size: &MessageSize) -> SizeSampler {
        let mut cumulative = Vec::new();
        if let MessageSize::Weighted(pairs) = size {
            let total: f64 = pairs.iter().map(|(_, w)| w).sum();
            let mut running = 0.0;
            for (bytes, weight) in pairs {
                running += weight / total;
                cumulative.push((running, *bytes));
            }
        }
        SizeSampler {
            size: size.clone(),
            cumulative,
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let bytes = match &self.size {
            MessageSize::Fixed(n) => *n,
            MessageSize::Uniform { min, max } => min + rng.below(max - min + 1),
            MessageSize::Weighted(_) => {
                let u = rng.unit();
                let index = self.cumulative.partition_point(|(c, _)| *c <= u);
                let last = self.cumulative.len() - 1;
                self.cumulative[index.min(last)].1
            }
        };
        bytes as usize
    }
}

/// Builds payloads (header + body from the pool) into a reusable buffer.
pub struct PayloadBuilder {
    pool: Vec<u8>,
    buffer: Vec<u8>,
    max_bytes: usize,
}

impl PayloadBuilder {
    pub fn new(kind: PayloadKind, max_bytes: usize, rng: &mut Rng) -> PayloadBuilder {
        let pool_bytes = POOL_BYTES + max_bytes;
        let pool = match kind {
            PayloadKind::Random => (0..pool_bytes.div_ceil(8))
                .flat_map(|_| rng.next_u64().to_le_bytes())
                .take(pool_bytes)
                .collect(),
            PayloadKind::Text => text_pool(pool_bytes, rng),
        };
        PayloadBuilder {
            pool,
            buffer: Vec::with_capacity(max_bytes),
            max_bytes,
        }
    }

    pub fn build(&mut self, header: Header, bytes: usize, rng: &mut Rng) -> &[u8] {
        let bytes = bytes.clamp(HEADER, self.max_bytes);
        let body = bytes - HEADER;
        let start = rng.below((self.pool.len() - body) as u64 + 1) as usize;
        self.buffer.clear();
        self.buffer.resize(HEADER, 0);
        header.write(&mut self.buffer);
        self.buffer
            .extend_from_slice(&self.pool[start..start + body]);
        &self.buffer
    }
}

fn text_pool(bytes: usize, rng: &mut Rng) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "timestamp",
        "level",
        "info",
        "warn",
        "request",
        "user",
        "id",
        "latency_ms",
        "status",
        "200",
        "404",
        "path",
        "/api/v1/orders",
        "region",
        "eu-west",
        "shard",
        "true",
        "false",
        "message",
        "payment accepted",
        "cart",
        "session",
        "{",
        "}",
    ];
    let mut pool = Vec::with_capacity(bytes + 32);
    while pool.len() < bytes {
        pool.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        pool.push(if rng.below(4) == 0 { b',' } else { b' ' });
    }
    pool.truncate(bytes);
    pool
}

/// Message keys for keyed workloads, rendered as decimal text like most applications' ids.
pub struct KeyGenerator {
    distribution: KeyDistribution,
    key_space: u64,
    next: u64,
    text: String,
}

impl KeyGenerator {
    pub fn new(distribution: KeyDistribution, key_space: u64, start: u64) -> KeyGenerator {
        KeyGenerator {
            distribution,
            key_space: key_space.max(1),
            next: start,
            text: String::with_capacity(24),
        }
    }

    pub fn next_key(&mut self, rng: &mut Rng) -> Option<&[u8]> {
        let index = match self.distribution {
            KeyDistribution::None => return None,
            KeyDistribution::Random => rng.below(self.key_space),
            KeyDistribution::RoundRobin => {
                let index = self.next % self.key_space;
                self.next = self.next.wrapping_add(1);
                index
            }
        };
        use std::fmt::Write;
        self.text.clear();
        let _ = write!(self.text, "key-{index}");
        Some(self.text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = Header {
            send_ns: 123_456_789_012,
            run_tag: 0xDEAD_BEEF,
            producer: 7,
        };
        let mut rng = Rng::new(1);
        let mut builder = PayloadBuilder::new(PayloadKind::Random, 1024, &mut rng);
        let payload = builder.build(header, 100, &mut rng).to_vec();
        assert_eq!(payload.len(), 100);
        assert_eq!(Header::read(&payload), Some(header));
        assert_eq!(Header::read(&payload[..15]), None);
    }

    #[test]
    fn payload_sizes_are_clamped_to_the_header_and_maximum() {
        let mut rng = Rng::new(2);
        let mut builder = PayloadBuilder::new(PayloadKind::Text, 64, &mut rng);
        let header = Header {
            send_ns: 0,
            run_tag: 0,
            producer: 0,
        };
        assert_eq!(builder.build(header, 1, &mut rng).len(), HEADER);
        assert_eq!(builder.build(header, 1000, &mut rng).len(), 64);
    }

    #[test]
    fn uniform_sizes_stay_in_range_and_cover_it() {
        let sampler = SizeSampler::new(&MessageSize::Uniform { min: 10, max: 13 });
        let mut rng = Rng::new(3);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let size = sampler.sample(&mut rng);
            assert!((10..=13).contains(&size));
            seen[size - 10] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn weighted_sizes_follow_weights() {
        let sampler = SizeSampler::new(&MessageSize::Weighted(vec![(100, 3.0), (1000, 1.0)]));
        let mut rng = Rng::new(4);
        let small = (0..40_000)
            .filter(|_| sampler.sample(&mut rng) == 100)
            .count();
        let fraction = small as f64 / 40_000.0;
        assert!(
            (fraction - 0.75).abs() < 0.02,
            "fraction of small messages {fraction}"
        );
    }

    #[test]
    fn keys_follow_the_distribution() {
        let mut rng = Rng::new(5);
        let mut none = KeyGenerator::new(KeyDistribution::None, 10, 0);
        assert!(none.next_key(&mut rng).is_none());
        let mut round_robin = KeyGenerator::new(KeyDistribution::RoundRobin, 3, 0);
        let keys: Vec<Vec<u8>> = (0..4)
            .map(|_| round_robin.next_key(&mut rng).unwrap().to_vec())
            .collect();
        assert_eq!(
            keys,
            [
                b"key-0".to_vec(),
                b"key-1".to_vec(),
                b"key-2".to_vec(),
                b"key-0".to_vec()
            ]
        );
        let mut random = KeyGenerator::new(KeyDistribution::Random, 5, 0);
        for _ in 0..100 {
            let key = String::from_utf8(random.next_key(&mut rng).unwrap().to_vec()).unwrap();
            let index: u64 = key.strip_prefix("key-").unwrap().parse().unwrap();
            assert!(index < 5);
        }
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
