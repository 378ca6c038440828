//! A seeded xorshift64* generator for the cluster property tests; prints its seed when a
//! test panics so `SHARDLOG_SEED=<seed>` replays the run.

pub(crate) struct Rng {
    state: u64,
    seed: u64,
}

impl Rng {
    /// Seed from `SHARDLOG_SEED`, else from the clock.
    pub(crate) fn from_env() -> Rng {
        let seed = std::env::var("SHARDLOG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        Rng {
            state: seed.max(1),
            seed,
        }
    }

    /// A generator for one given seed (simulators that report their own seeds).
    pub(crate) fn with_seed(seed: u64) -> Rng {
        Rng {
            state: seed.max(1),
            seed,
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, bound)`; 0 when `bound` is 0.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next_u64() as u8).collect()
    }

    pub(crate) fn uuid(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        id
    }
}

impl Drop for Rng {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed with SHARDLOG_SEED={}", self.seed);
        }
    }
}
