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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::spec;
    use alloy_primitives::B256;
    use std::path::Path;

    fn parent(number: u64, timestamp: u64, difficulty: u64, with_ommers: bool) -> Header {
        Header {
            number,
            timestamp,
            difficulty: U256::from(difficulty),
            ommers_hash: if with_ommers { B256::repeat_byte(1) } else { EMPTY_OMMER_ROOT_HASH },
            ..Default::default()
        }
    }

    /// Mainnet's fork schedule (pre-merge part).
    fn mainnet() -> ChainSpec {
        ChainSpec::genesis_from_json(
            r#"{"config":{"chainId":1,"homesteadBlock":1150000,"daoForkBlock":1920000,
                "daoForkSupport":true,"eip150Block":2463000,"eip155Block":2675000,
                "eip158Block":2675000,"byzantiumBlock":4370000,"constantinopleBlock":7280000,
                "petersburgBlock":7280000,"istanbulBlock":9069000,"muirGlacierBlock":9200000,
                "berlinBlock":12244000,"londonBlock":12965000,"arrowGlacierBlock":13773000,
                "grayGlacierBlock":15050000},
                "nonce":"0x42","timestamp":"0x0","extraData":"0x","gasLimit":"0x1388",
                "difficulty":"0x400000000","alloc":{}}"#,
        )
        .expect("mainnet config")
        .1
    }

    #[test]
    fn frontier_mainnet_blocks_1_and_2() {
        let spec = mainnet();
        // Genesis: difficulty 2^34 at timestamp 0; block 1 at 1438269988; block 2 at 1438270017.
        let genesis = parent(0, 0, 17_179_869_184, false);
        assert_eq!(
            ethash_difficulty(&spec, 1_438_269_988, 1, &genesis),
            U256::from(17_171_480_576u64)
        );
        let block1 = parent(1, 1_438_269_988, 17_171_480_576, false);
        assert_eq!(
            ethash_difficulty(&spec, 1_438_270_017, 2, &block1),
            U256::from(17_163_096_064u64)
        );
        // Faster than 13 s raises it.
        assert_eq!(
            ethash_difficulty(&spec, 1_438_269_988 + 12, 2, &block1),
            U256::from(17_171_480_576u64 + 17_171_480_576 / 2048)
        );
    }

    #[test]
    fn homestead_and_byzantium_adjustments() {
        let homestead = spec("Homestead");
        let p = parent(10, 1000, 1_000_000, false);
        let step = 1_000_000 / 2048;
        assert_eq!(ethash_difficulty(&homestead, 1009, 11, &p), U256::from(1_000_000 + step));
        assert_eq!(ethash_difficulty(&homestead, 1010, 11, &p), U256::from(1_000_000));
        assert_eq!(ethash_difficulty(&homestead, 1025, 11, &p), U256::from(1_000_000 - step));
        // Clamped at -99 steps, then at the minimum difficulty.
        assert_eq!(
            ethash_difficulty(&homestead, 1_000_000, 11, &p),
            U256::from(1_000_000 - 99 * step)
        );
        let low = parent(10, 1000, MINIMUM_DIFFICULTY, false);
        assert_eq!(ethash_difficulty(&homestead, 1100, 11, &low), U256::from(MINIMUM_DIFFICULTY));

        let byzantium = spec("Byzantium");
        assert_eq!(ethash_difficulty(&byzantium, 1009, 11, &p), U256::from(1_000_000));
        assert_eq!(ethash_difficulty(&byzantium, 1008, 11, &p), U256::from(1_000_000 + step));
        // A parent with ommers adds one step.
        let with_ommers = parent(10, 1000, 1_000_000, true);
        assert_eq!(
            ethash_difficulty(&byzantium, 1009, 11, &with_ommers),
            U256::from(1_000_000 + step)
        );
    }

    #[test]
    fn difficulty_bomb_and_delay() {
        let frontier = spec("Frontier");
        let p = parent(199_999, 1000, 1_000_000, false);
        // Period 2 adds 2^0; Frontier at 1_000_000 (delta 1) adds one step too.
        assert_eq!(
            ethash_difficulty(&frontier, 1001, 200_000, &p),
            U256::from(1_000_000 + 488 + 1)
        );
        let p = parent(499_999, 1000, 1_000_000, false);
        assert_eq!(
            ethash_difficulty(&frontier, 1001, 500_000, &p),
            U256::from(1_000_000 + 488 + 8)
        );
        // Byzantium delays the bomb by 3M blocks: block 3_200_000 counts as 200_000.
        let byzantium = spec("Byzantium");
        let p = parent(3_199_999, 1000, 1_000_000, false);
        assert_eq!(ethash_difficulty(&byzantium, 1009, 3_200_000, &p), U256::from(1_000_000 + 1));
        let p = parent(3_099_999, 1000, 1_000_000, false);
        assert_eq!(ethash_difficulty(&byzantium, 1009, 3_100_000, &p), U256::from(1_000_000));
    }

    /// Header of a mainnet `block.json` (JSON-RPC format): the fields ethash reads.
    fn mainnet_header(number: u64) -> Option<Header> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../target/fixtures/mainnet-blocks/{number}/block.json"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        let quantity =
            |key: &str| U256::from_str_radix(json[key].as_str()?.trim_start_matches("0x"), 16).ok();
        Some(Header {
            number: quantity("number")?.to(),
            timestamp: quantity("timestamp")?.to(),
            difficulty: quantity("difficulty")?,
            ommers_hash: json["sha3Uncles"].as_str()?.parse().ok()?,
            ..Default::default()
        })
    }

    #[test]
    #[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
    fn mainnet_fork_blocks() {
        let spec = mainnet();
        // Byzantium, Constantinople/Petersburg and Berlin fork blocks, with their parents.
        let mut checked = 0;
        for number in [4_370_000u64, 7_280_000, 12_244_000] {
            let (Some(parent), Some(block)) = (mainnet_header(number - 1), mainnet_header(number))
            else {
                eprintln!("skipping mainnet block {number}: fixture absent");
                continue;
            };
            assert_eq!(
                ethash_difficulty(&spec, block.timestamp, block.number, &parent),
                block.difficulty,
                "mainnet block {number}"
            );
            checked += 1;
        }
        eprintln!("checked {checked} mainnet fork blocks");
        // The test script extracts them and sets this: then their absence is a failure.
        if std::env::var_os("VELARIUM_REQUIRE_FIXTURES").is_some() {
            assert_eq!(checked, 3, "mainnet fork blocks absent under target/fixtures");
        }
    }
}
