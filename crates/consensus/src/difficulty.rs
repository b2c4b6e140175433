//! Ethash difficulty: the proof-of-work difficulty a header must carry given its parent.
//!
//! Three formulas, as in go-ethereum's `consensus/ethash/difficulty.go`:
//!
//! - Frontier: `parent + parent / 2048` if the block came less than 13 s after its parent,
//!   `parent - parent / 2048` otherwise;
//! - Homestead (EIP-2): `parent + parent / 2048 * max(1 - Δt / 10, -99)`;
//! - Byzantium (EIP-100): `parent + parent / 2048 * max(u - Δt / 9, -99)`, `u` = 2 if the parent
//!   has ommers and 1 if not.
//!
//! Each is clamped below at [`MINIMUM_DIFFICULTY`], then the difficulty bomb
//! `2^(period - 2)` is added when `period = fake_number / 100_000 > 1`, where `fake_number` is the
//! block number minus the fork's bomb delay ([`ChainSpec::bomb_delay`]) from Byzantium on.

use alloy_consensus::{Header, EMPTY_OMMER_ROOT_HASH};
use alloy_primitives::U256;
use velarium_chainspec::{ChainSpec, EthereumHardfork};

/// Lowest difficulty a proof-of-work block can have.
pub const MINIMUM_DIFFICULTY: u64 = 131_072;
/// Divisor of the parent difficulty giving the adjustment step.
const DIFFICULTY_BOUND_DIVISOR: u64 = 2048;
/// Frontier: blocks faster than this (seconds) raise the difficulty.
const FRONTIER_DURATION_LIMIT: u64 = 13;
/// Blocks per difficulty-bomb period.
const BOMB_PERIOD: u64 = 100_000;

/// The ethash difficulty of a block with this timestamp and number whose parent is `parent`.
///
/// The formula is chosen by the forks active at `header_number`; the bomb delay comes from
/// [`ChainSpec::bomb_delay`]. Meaningless (but computed) for proof-of-stake blocks.
pub fn ethash_difficulty(
    spec: &ChainSpec,
    header_timestamp: u64,
    header_number: u64,
    parent: &Header,
) -> U256 {
    let parent_diff = parent.difficulty;
    let step = parent_diff / U256::from(DIFFICULTY_BOUND_DIVISOR);
    // Signed time delta; the timestamp rule rejects non-increasing timestamps separately.
    let delta = i128::from(header_timestamp) - i128::from(parent.timestamp);

    let active = |fork| spec.fork(fork).active_at_block(header_number);
    let byzantium = active(EthereumHardfork::Byzantium);
    let mut diff = if byzantium || active(EthereumHardfork::Homestead) {
        let factor = if byzantium {
            let uncles = if parent.ommers_hash == EMPTY_OMMER_ROOT_HASH { 1 } else { 2 };
            uncles - delta.div_euclid(9)
        } else {
            1 - delta.div_euclid(10)
        };
        let factor = factor.max(-99);
        let change = step * U256::from(factor.unsigned_abs());
        if factor >= 0 {
            parent_diff.saturating_add(change)
        } else {
            parent_diff.saturating_sub(change)
        }
    } else if delta < i128::from(FRONTIER_DURATION_LIMIT) {
        parent_diff.saturating_add(step)
    } else {
        parent_diff.saturating_sub(step)
    };
    diff = diff.max(U256::from(MINIMUM_DIFFICULTY));

    // Difficulty bomb. geth counts from the parent with `bomb_delay - 1`, i.e. from this block
    // with `bomb_delay`.
    let fake_number = if byzantium {
        header_number.saturating_sub(spec.bomb_delay(header_number))
    } else {
        header_number
    };
    let period = fake_number / BOMB_PERIOD;
    if period > 1 {
        let exp = period - 2;
        if exp < 256 {
            diff = diff.saturating_add(U256::from(1) << exp as usize);
        } else {
            diff = U256::MAX;
        }
    }
    diff
}
