//! A tiny seeded generator (SplitMix64): deterministic on every platform, no dependency.

use alloy_primitives::{Address, B256, U256};

/// SplitMix64 (Steele, Lea, Flood 2014): one `u64` of state, full period, good enough mixing for
/// picking accounts and amounts.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed`, separated per `stream` so two uses of one seed do not correlate.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Self(seed ^ stream.wrapping_mul(0xD605_BBB5_8C8A_BBAB));
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`), up to a negligible modulo bias.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// `true` with probability `percent / 100`.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    pub(crate) fn b256(&mut self) -> B256 {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_be_bytes());
        }
        B256::from(out)
    }

    pub(crate) fn address(&mut self) -> Address {
        Address::from_slice(&self.b256()[12..])
    }

    /// Uniform in `lo..hi` for wide amounts.
    pub(crate) fn u256_range(&mut self, lo: U256, hi: U256) -> U256 {
        lo + U256::from_be_bytes(self.b256().0) % (hi - lo)
    }
}
