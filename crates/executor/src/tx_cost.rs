//! What a transaction costs per gas on this machine, learned from the blocks the engine runs.
//!
//! The header's gas is known before execution, its time is not, and the exchange rate between
//! them is neither fixed nor machine-independent: on the mainnet fixtures the oracle spent
//! 0.08-0.45 ns per gas, block to block, and the rate moved with the forks (calldata cost 68
//! gas a byte before Istanbul, state access a few hundred gas before Berlin). A block of 31,600
//! gas a transaction from 2016 (116525) takes 3.1 µs a transaction, less than the 7.1 µs of one
//! of 27,300 gas from 2021 (13217637). Consecutive blocks of one chain resemble each other far
//! more, so the engine times a sample of each block's transactions (see
//! [`ParallelStats::sampled_nanos`]) and keeps, per fork, a running rate that prices the next
//! block's gas: [`crate::workers_for`] decides from that time as well as from the gas.

use crate::ParallelStats;
use revm::primitives::hardfork::SpecId;
use std::sync::atomic::{AtomicU64, Ordering};

/// Blocks with fewer transactions do not teach the rate (too few sampled: one in eight).
pub const MIN_TXS_TO_LEARN: usize = 32;

/// How much dearer (percent) a sample taken with several workers reads than one worker's, which
/// [`CostTable::learn`] divides out: its transactions read what another core wrote, and wait
/// for it. Measured on the 47 mainnet blocks (2026-12-07, Block-STM on 1 and 2 workers, near
/// cores, medians of 3 runs): 0.92x-1.68x, median 1.22x.
pub const MULTI_WORKER_PERCENT: u64 = 125;

/// Forks the table holds (revm's `SpecId` values are below this; others are not learned).
const SPECS: usize = 64;

/// Per fork, the picoseconds a gas of the last blocks took; 0: not learned yet.
#[derive(Debug)]
pub struct CostTable([AtomicU64; SPECS]);

impl CostTable {
    /// A table that has learned nothing.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; SPECS])
    }

    /// The rate learned for `spec`, in picoseconds per gas, if a block taught one.
    pub fn ps_per_gas(&self, spec: SpecId) -> Option<u64> {
        let ps = self.0.get(spec as usize)?.load(Ordering::Relaxed);
        (ps != 0).then_some(ps)
    }

    /// Learns from a block of `txs` transactions that ran through Block-STM under `spec`: the
    /// rate moves halfway to the block's sampled one (the first block sets it), as one worker
    /// would have sampled it (see [`MULTI_WORKER_PERCENT`]). Blocks under [`MIN_TXS_TO_LEARN`]
    /// transactions, or whose sample used no gas, teach nothing.
    ///
    /// A sample of several workers while the cores' last round trip (`round_trip_ns`) said they
    /// were far apart ([`crate::FAR_ROUND_TRIP_NS`]) only sets a rate not learned yet or lowers
    /// one: there every transaction paid for cross-core misses that one worker does not, by
    /// more than [`MULTI_WORKER_PERCENT`] and by a varying amount (builder_tips sampled at
    /// 1.6x-2x of one worker's time), so it reads too dear. A rate it raised would price the
    /// next cheap blocks as dear ones and keep them on several far-apart workers, which is what
    /// [`crate::workers_for`] exists to avoid; where nothing else was learned it is still the
    /// best guess (116525, the only Frontier block of the fixtures large enough to teach, met
    /// far cores first and is cheap even so).
    pub fn learn(
        &self,
        spec: SpecId,
        stats: &ParallelStats,
        txs: usize,
        round_trip_ns: Option<u64>,
    ) {
        if txs < MIN_TXS_TO_LEARN || stats.sampled_gas == 0 {
            return;
        }
        let Some(slot) = self.0.get(spec as usize) else { return };
        let percent = if stats.threads > 1 { MULTI_WORKER_PERCENT } else { 100 };
        let sampled = (u128::from(stats.sampled_nanos) * 1000 * 100
            / (u128::from(stats.sampled_gas) * u128::from(percent)))
        .clamp(1, u128::from(u32::MAX)) as u64;
        let old = slot.load(Ordering::Relaxed);
        let far =
            stats.threads > 1 && round_trip_ns.is_some_and(|ns| ns >= crate::FAR_ROUND_TRIP_NS);
        if far && old != 0 && sampled >= old {
            return;
        }
        slot.store(if old == 0 { sampled } else { (old + sampled) / 2 }, Ordering::Relaxed);
    }
}

impl Default for CostTable {
    fn default() -> Self {
        Self::new()
    }
}

/// The engine's table, fed by every Block-STM block [`crate::Engine`] runs.
pub static LEARNED: CostTable = CostTable::new();

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(nanos: u64, gas: u64) -> ParallelStats {
        let mut stats = ParallelStats::default();
        stats.sampled_nanos = nanos;
        stats.sampled_gas = gas;
        stats.threads = 1;
        stats
    }

    #[test]
    fn the_first_block_sets_the_rate_and_the_next_move_it_halfway() {
        let table = CostTable::new();
        assert_eq!(table.ps_per_gas(SpecId::LONDON), None);
        // 4 transactions of 21,000 gas timed at 2 µs each: 95 ps a gas.
        table.learn(SpecId::LONDON, &sampled(8_000, 84_000), MIN_TXS_TO_LEARN, None);
        assert_eq!(table.ps_per_gas(SpecId::LONDON), Some(95));
        table.learn(SpecId::LONDON, &sampled(84_000 * 305 / 1000, 84_000), 100, None);
        assert_eq!(table.ps_per_gas(SpecId::LONDON), Some(200));
        // Per fork: another fork has learned nothing.
        assert_eq!(table.ps_per_gas(SpecId::BERLIN), None);
        // Two workers' sample is priced as one worker's.
        let mut two = sampled(84_000 * MULTI_WORKER_PERCENT / 1000, 84_000);
        two.threads = 2;
        table.learn(SpecId::BERLIN, &two, 100, Some(80));
        assert_eq!(table.ps_per_gas(SpecId::BERLIN), Some(100));
    }

    #[test]
    fn several_far_apart_workers_only_set_or_lower_the_rate() {
        let table = CostTable::new();
        let far = Some(crate::FAR_ROUND_TRIP_NS);
        let two = |ps_per_gas: u64| {
            let mut stats = sampled(84_000 * ps_per_gas * MULTI_WORKER_PERCENT / 100_000, 84_000);
            stats.threads = 2;
            stats
        };
        // Nothing learned yet: the far sample is the best guess.
        table.learn(SpecId::SHANGHAI, &two(2000), 100, far);
        assert_eq!(table.ps_per_gas(SpecId::SHANGHAI), Some(2000));
        // One worker (which crosses no cores, wherever they sit) teaches as ever.
        table.learn(SpecId::SHANGHAI, &sampled(84_000, 84_000), 100, far);
        assert_eq!(table.ps_per_gas(SpecId::SHANGHAI), Some(1500));
        // A dearer far sample does not raise it; a cheaper one lowers it.
        table.learn(SpecId::SHANGHAI, &two(3000), 100, far);
        assert_eq!(table.ps_per_gas(SpecId::SHANGHAI), Some(1500));
        table.learn(SpecId::SHANGHAI, &two(500), 100, far);
        assert_eq!(table.ps_per_gas(SpecId::SHANGHAI), Some(1000));
        // Just under the threshold the cores share a cache: the sample moves the rate up too.
        table.learn(SpecId::SHANGHAI, &two(3000), 100, Some(crate::FAR_ROUND_TRIP_NS - 1));
        assert_eq!(table.ps_per_gas(SpecId::SHANGHAI), Some(2000));
    }

    #[test]
    fn small_blocks_and_empty_samples_teach_nothing() {
        let table = CostTable::new();
        table.learn(SpecId::CANCUN, &sampled(8_000, 84_000), MIN_TXS_TO_LEARN - 1, None);
        table.learn(SpecId::CANCUN, &sampled(8_000, 0), 100, None);
        assert_eq!(table.ps_per_gas(SpecId::CANCUN), None);
        // An absurd sample is clamped, not wrapped: still "learned", and at least 1 ps.
        table.learn(SpecId::CANCUN, &sampled(0, 1), 100, None);
        assert_eq!(table.ps_per_gas(SpecId::CANCUN), Some(1));
        table.learn(SpecId::PRAGUE, &sampled(u64::MAX, 1), 100, None);
        assert_eq!(table.ps_per_gas(SpecId::PRAGUE), Some(u64::from(u32::MAX)));
    }
}
