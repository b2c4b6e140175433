//! Replay of real mainnet blocks: execute a block on top of its parent's (partial) state and
//! check the results against what its header commits to.
//!
//! A block folder (`mainnet-blocks/<N>/`, see `MANIFEST.md` section 4 of the shared fixtures)
//! holds `block.json` (the `eth_getBlockByNumber(N, true)` JSON-RPC result), `pre_state.json`
//! (the parent's state restricted to the accounts and slots the block touches) and, for blocks
//! that use `BLOCKHASH`, `block_hashes.json`. [`load_block`] rebuilds the header and the signed
//! transactions in alloy's types and checks them against the node's hashes, signers and roots;
//! [`replay_block`] executes the block with an [`Engine`] under mainnet's rules
//! ([`mainnet_spec`]) and runs [`verify_outputs`]; [`compare_outputs`] checks another engine's
//! output against the sequential oracle's, receipt by receipt and slot by slot.
//!
//! # What is checked, and what cannot be
//!
//! - Checked: gas used, logs bloom, blob gas used and requests hash against the header; the
//!   receipts root from Byzantium on (before it, receipts commit to intermediate state roots).
//! - **Not checked: the state root.** The pre-state is partial (only what the block touches), so
//!   the post-state's Merkle root cannot be computed; the header's `stateRoot` is ignored.
//! - **Ommer rewards are not applied.** `block.json` lists only the ommers' hashes, and the
//!   rewards need each ommer's number and beneficiary. For a block with ommers
//!   ([`MainnetBlock::ommer_hashes`]) the post-state misses the miner's inclusion bonus and the
//!   ommer miners' rewards; receipts and gas are unaffected (rewards follow the last transaction).
//!
//! # Place in the pipeline
//!
//! Beside `velarium-conformance`: a test bed for the engines on real traffic, used by
//! `velarium replay` and by the differential tests of the parallel engine.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod compare;
mod error;
mod load;

pub use compare::{compare_outputs, compare_outputs_exactly};
pub use error::ReplayError;
pub use load::{list_block_dirs, load_block, MainnetBlock};

use std::time::{Duration, Instant};
use velarium_chain::verify::verify_outputs;
use velarium_chainspec::ChainSpec;
use velarium_executor::{BlockInput, BlockOutput, Engine, ParallelStats};

/// Ethereum mainnet's rules: fork blocks up to Gray Glacier, the merge at block 15,537,394
/// (terminal total difficulty 5.875e22), then Shanghai, Cancun, Prague and later forks by
/// timestamp ([`ChainSpec::mainnet`]).
pub fn mainnet_spec() -> ChainSpec {
    ChainSpec::mainnet()
}

/// The result of replaying one block that passed verification.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    /// Block number.
    pub number: u64,
    /// Number of transactions.
    pub txs: usize,
    /// Gas used (equal to the header's).
    pub gas_used: u64,
    /// Wall time of the engine's `execute` call alone (not loading, not verification).
    pub execution_time: Duration,
    /// Ommers whose rewards were not applied (their headers are unknown); see the crate docs.
    pub unrewarded_ommers: usize,
    /// The engine's output.
    pub output: BlockOutput,
    /// The parallel engine's counters (all zero for the sequential engine).
    pub stats: ParallelStats,
}

/// Executes `block` with `engine` and checks the results against its header with
/// [`verify_outputs`] (everything but the state root, which a partial pre-state cannot give).
pub fn replay_block(
    block: &MainnetBlock,
    spec: &ChainSpec,
    engine: Engine,
) -> Result<ReplayOutcome, ReplayError> {
    let input = BlockInput {
        header: &block.header,
        transactions: &block.transactions,
        ommers: &block.ommers,
        withdrawals: block.withdrawals.as_deref(),
    };
    let started = Instant::now();
    let (output, stats) = engine.execute_with_stats(spec, &block.state, input)?;
    let execution_time = started.elapsed();
    verify_outputs(spec, &block.header, &output)?;
    Ok(ReplayOutcome {
        number: block.number,
        txs: block.transactions.len(),
        gas_used: output.gas_used,
        execution_time,
        unrewarded_ommers: block.ommer_hashes.len(),
        output,
        stats,
    })
}

/// Replays `block` with the sequential oracle and checks that `output` equals its output
/// ([`compare_outputs_exactly`]: receipts, gas, requests and the whole `BundleState`); any
/// difference is an [`ReplayError::OracleMismatch`].
///
/// Returns the oracle's run, whose `execution_time` serves as the side-by-side reference.
pub fn check_against_oracle(
    block: &MainnetBlock,
    spec: &ChainSpec,
    output: &BlockOutput,
) -> Result<ReplayOutcome, ReplayError> {
    let oracle = replay_block(block, spec, Engine::Sequential)?;
    compare_outputs_exactly(output, &oracle.output).map_err(ReplayError::OracleMismatch)?;
    Ok(oracle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use velarium_chainspec::{EthereumHardfork, SpecId};

    /// The extracted fixtures, if present.
    fn fixtures() -> Option<PathBuf> {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures/mainnet-blocks");
        if list_block_dirs(&dir).is_empty() {
            // The test script extracts them and sets this: then their absence is a failure.
            assert!(
                std::env::var_os("VELARIUM_REQUIRE_FIXTURES").is_none(),
                "no mainnet blocks under {}",
                dir.display()
            );
            eprintln!("skipping: no mainnet blocks under {}", dir.display());
            return None;
        }
        Some(dir)
    }

    #[test]
    fn mainnet_activation_edges() {
        let s = mainnet_spec();
        assert_eq!(s.chain_id, 1);
        let cases = [
            (0, 0, SpecId::FRONTIER),
            (1_149_999, 0, SpecId::FRONTIER),
            (1_150_000, 0, SpecId::HOMESTEAD),
            (2_462_999, 0, SpecId::HOMESTEAD),
            (2_463_000, 0, SpecId::TANGERINE),
            (2_674_999, 0, SpecId::TANGERINE),
            (2_675_000, 0, SpecId::SPURIOUS_DRAGON),
            (4_369_999, 0, SpecId::SPURIOUS_DRAGON),
            (4_370_000, 0, SpecId::BYZANTIUM),
            (7_279_999, 0, SpecId::BYZANTIUM),
            (7_280_000, 0, SpecId::PETERSBURG),
            (9_068_999, 0, SpecId::PETERSBURG),
            (9_069_000, 0, SpecId::ISTANBUL),
            (12_243_999, 0, SpecId::ISTANBUL),
            (12_244_000, 0, SpecId::BERLIN),
            (12_964_999, 0, SpecId::BERLIN),
            (12_965_000, 0, SpecId::LONDON),
            (15_537_393, 1_663_224_150, SpecId::LONDON),
            (15_537_394, 1_663_224_179, SpecId::MERGE),
            (17_034_869, 1_681_338_443, SpecId::MERGE),
            (17_034_870, 1_681_338_455, SpecId::SHANGHAI),
            (19_426_586, 1_710_338_123, SpecId::SHANGHAI),
            (19_426_587, 1_710_338_135, SpecId::CANCUN),
            (22_431_083, 1_746_612_299, SpecId::CANCUN),
            (22_431_084, 1_746_612_311, SpecId::PRAGUE),
        ];
        for (number, timestamp, id) in cases {
            assert_eq!(s.spec_id(number, timestamp), id, "block {number}");
        }
        assert_eq!(s.dao_fork_block(), Some(1_920_000));
        assert!(s.fork(EthereumHardfork::Dao).transitions_at_block(1_920_000));
        assert!(!s.is_merged(15_537_393));
        assert!(s.is_merged(15_537_394));
        assert!(s.blob_params_at(1_710_338_134).is_none());
        assert!(s.blob_params_at(1_710_338_135).is_some());
    }

    #[test]
    #[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
    fn all_fixture_blocks_load_and_replay() {
        let Some(dir) = fixtures() else { return };
        let spec = mainnet_spec();
        let dirs = list_block_dirs(&dir);
        assert_eq!(dirs.len(), 47);
        let mut with_ommers = Vec::new();
        let mut numbers = Vec::new();
        for path in &dirs {
            let block = load_block(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(block.hash, block.header.hash_slow());
            assert!(block.ommers.is_empty());
            if !block.ommer_hashes.is_empty() {
                with_ommers.push(block.number);
            }
            numbers.push(block.number);
            let outcome = replay_block(&block, &spec, Engine::Sequential)
                .unwrap_or_else(|e| panic!("block {}: {e}", block.number));
            assert_eq!(outcome.gas_used, block.header.gas_used);
            assert_eq!(outcome.txs, block.transactions.len());
            // The oracle is deterministic: a second run compares equal to the first.
            check_against_oracle(&block, &spec, &outcome.output).unwrap();
        }
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "sorted by number");
        // The only fixture blocks whose ommer rewards replay cannot apply.
        assert_eq!(with_ommers, [1_796_867, 5_283_152, 8_889_776]);
    }

    #[test]
    #[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
    fn list_accepts_parent_or_block_dir() {
        let Some(dir) = fixtures() else { return };
        let one = dir.join("46147");
        assert_eq!(list_block_dirs(&one), vec![one]);
        assert!(list_block_dirs(&dir.join("no-such-dir")).is_empty());
    }

    /// A scratch folder holding a copy of a fixture block, to corrupt.
    fn scratch_copy(name: &str) -> Option<PathBuf> {
        let src = fixtures()?.join("46147");
        let dir =
            std::env::temp_dir().join(format!("velarium-replay-{name}-{}", std::process::id()));
        let block_dir = dir.join("46147");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&block_dir).unwrap();
        for file in ["block.json", "pre_state.json"] {
            std::fs::copy(src.join(file), block_dir.join(file)).unwrap();
        }
        Some(block_dir)
    }

    #[test]
    #[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
    fn bad_inputs_are_errors() {
        let Some(dir) = scratch_copy("bad") else { return };
        assert!(load_block(&dir).is_ok());
        let block = std::fs::read_to_string(dir.join("block.json")).unwrap();

        // Wrong header hash.
        let mut json: serde_json::Value = serde_json::from_str(&block).unwrap();
        json["gasUsed"] = "0x1".into();
        std::fs::write(dir.join("block.json"), json.to_string()).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::HeaderHash { .. })));

        // Wrong transaction hash.
        let mut json: serde_json::Value = serde_json::from_str(&block).unwrap();
        json["transactions"][0]["hash"] = format!("0x{}", "11".repeat(32)).into();
        std::fs::write(dir.join("block.json"), json.to_string()).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::TxHash { index: 0, .. })));

        // Wrong sender.
        let mut json: serde_json::Value = serde_json::from_str(&block).unwrap();
        json["transactions"][0]["from"] = format!("0x{}", "22".repeat(20)).into();
        std::fs::write(dir.join("block.json"), json.to_string()).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Sender { index: 0, .. })));

        // Unknown transaction type.
        let mut json: serde_json::Value = serde_json::from_str(&block).unwrap();
        json["transactions"][0]["type"] = "0x7f".into();
        std::fs::write(dir.join("block.json"), json.to_string()).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Invalid { .. })));

        // Malformed JSON and missing fields.
        std::fs::write(dir.join("block.json"), &block[..block.len() / 2]).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Json { .. })));
        std::fs::write(dir.join("block.json"), r#"{"hash": "0x12"}"#).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Json { .. })));

        // Malformed block hashes.
        std::fs::write(dir.join("block.json"), &block).unwrap();
        std::fs::write(dir.join("block_hashes.json"), r#"{"x": "0x00"}"#).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Json { .. })));
        let zero = format!("0x{}", "00".repeat(32));
        std::fs::write(dir.join("block_hashes.json"), format!(r#"{{"x": "{zero}"}}"#)).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Invalid { .. })));
        std::fs::remove_file(dir.join("block_hashes.json")).unwrap();

        // Missing and malformed pre-state.
        std::fs::write(dir.join("pre_state.json"), "[1, 2").unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Json { .. })));
        std::fs::remove_file(dir.join("pre_state.json")).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Io { .. })));

        // Missing block.json; a folder named after another block.
        std::fs::remove_file(dir.join("block.json")).unwrap();
        assert!(matches!(load_block(&dir), Err(ReplayError::Io { .. })));
        let renamed = dir.with_file_name("46148");
        std::fs::create_dir_all(&renamed).unwrap();
        std::fs::write(renamed.join("block.json"), &block).unwrap();
        assert!(matches!(
            load_block(&renamed),
            Err(ReplayError::NumberMismatch { folder: 46148, number: 46147 })
        ));
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    #[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
    fn missing_pre_state_account_fails_verification_not_panics() {
        let Some(dir) = fixtures() else { return };
        // Block 46147 moves ether between two accounts; without the sender's balance its
        // transaction is invalid and the block is rejected.
        let mut block = load_block(&dir.join("46147")).unwrap();
        block.state = velarium_state::InMemoryState::new();
        assert!(matches!(
            replay_block(&block, &mainnet_spec(), Engine::Sequential),
            Err(ReplayError::Execution(_))
        ));
    }
}
