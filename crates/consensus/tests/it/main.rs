//! Runs the pre-execution rules over the ethereum/tests `BlockchainTests` fixtures.
//!
//! Every block of every case is decoded and checked against its parent (found by hash among the
//! case's imported blocks), standalone, body and ommers. Blocks without `expectException` must
//! pass; invalid blocks are tallied by exception kind, caught or not (many are only detectable by
//! execution). Skipped, with a message, when the fixtures are not extracted.

use alloy_consensus::{Block, Header, TxEnvelope};
use alloy_primitives::{hex, map::B256Map, B256, U256};
use alloy_rlp::Decodable;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};
use velarium_chainspec::ChainSpec;
use velarium_consensus::{
    validate_block_pre_execution, validate_header, validate_ommers, ConsensusError,
};

/// Block exceptions only execution can detect.
const POST_EXECUTION: &[&str] = &[
    "BlockException.INVALID_GAS_USED",
    "BlockException.INVALID_LOG_BLOOM",
    "BlockException.INVALID_RECEIPTS_ROOT",
    "BlockException.INVALID_STATE_ROOT",
    "BlockException.INVALID_REQUESTS",
    "BlockException.INVALID_DEPOSIT_EVENT_LAYOUT",
    "BlockException.SYSTEM_CONTRACT_CALL_FAILED",
    "BlockException.SYSTEM_CONTRACT_EMPTY",
];

/// Root of the extracted fixtures.
fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures/BlockchainTests")
}

/// All `.json` files below `dir`, sorted.
fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// A block the case has imported.
struct Known {
    header: Header,
    ommer_hashes: Vec<B256>,
    total_difficulty: U256,
}

/// Why an invalid block was rejected, or that it was not.
enum Outcome {
    /// The RLP does not decode.
    Decode,
    /// The parent is not among the imported blocks.
    UnknownParent,
    /// A consensus rule rejected it.
    Rule(ConsensusError),
}

/// Invalid blocks of one exception kind: (caught, not caught, one uncaught example,
/// catching rule -> count).
type InvalidTally = (usize, usize, Option<String>, BTreeMap<String, usize>);

/// Tallies over the whole run.
#[derive(Default)]
struct Tally {
    cases: usize,
    skipped_networks: BTreeMap<String, usize>,
    valid_blocks: usize,
    valid_failures: Vec<String>,
    /// exception kind -> (caught, not caught, one uncaught example, catching rule -> count)
    invalid: BTreeMap<String, InvalidTally>,
}

/// The variant name of an error (the rule that fired), ommer errors by their cause.
fn rule_name(err: &ConsensusError) -> String {
    if let ConsensusError::InvalidOmmer { source, .. } = err {
        return format!("InvalidOmmer({})", rule_name(source));
    }
    let debug = format!("{err:?}");
    debug.split([' ', '{', '(']).next().unwrap_or_default().to_string()
}

fn decode_block(hex_rlp: &str) -> Option<Block<TxEnvelope>> {
    let bytes = hex::decode(hex_rlp).ok()?;
    let mut slice = bytes.as_slice();
    let block = Block::<TxEnvelope>::decode(&mut slice).ok()?;
    slice.is_empty().then_some(block)
}

/// Checks one block against the imported ones.
fn check(
    spec: &mut ChainSpec,
    known: &B256Map<Known>,
    block: &Block<TxEnvelope>,
) -> Result<(), Outcome> {
    let Some(parent) = known.get(&block.header.parent_hash) else {
        return Err(Outcome::UnknownParent);
    };
    if let Some(ttd) = spec.pending_merge_ttd() {
        // A block is proof-of-stake once its parent reached the terminal total difficulty.
        if parent.total_difficulty >= ttd {
            spec.set_merge_block(block.header.number);
        }
    }
    let ancestor =
        |hash: &B256| known.get(hash).map(|k| (k.header.clone(), k.ommer_hashes.clone()));
    validate_header(spec, &block.header, &parent.header)
        .and_then(|()| validate_block_pre_execution(spec, block))
        .and_then(|()| validate_ommers(spec, &block.header, &block.body.ommers, &ancestor))
        .map_err(Outcome::Rule)
}

fn run_case(name: &str, case: &serde_json::Value, tally: &mut Tally) {
    let network = case["network"].as_str().unwrap_or_default();
    let config = case.get("config");
    let chain_id = config
        .and_then(|c| c.get("chainid"))
        .and_then(velarium_chainspec::parse_quantity)
        .unwrap_or(1);
    let mut spec = match ChainSpec::from_network(network, chain_id) {
        Ok(spec) => spec,
        Err(_) => {
            *tally.skipped_networks.entry(network.to_string()).or_default() += 1;
            return;
        }
    };
    if let Some(schedule) = config.and_then(|c| c.get("blobSchedule")).and_then(|s| s.as_object()) {
        spec.apply_fixture_blob_schedule(schedule).expect("fixture blob schedule");
    }
    tally.cases += 1;
    let genesis = decode_block(case["genesisRLP"].as_str().expect("genesisRLP"))
        .unwrap_or_else(|| panic!("{name}: genesis RLP does not decode"));
    let mut known: B256Map<Known> = B256Map::default();
    known.insert(
        genesis.header.hash_slow(),
        Known {
            total_difficulty: genesis.header.difficulty,
            header: genesis.header,
            ommer_hashes: Vec::new(),
        },
    );
    for (i, entry) in case["blocks"].as_array().expect("blocks").iter().enumerate() {
        let expected = entry.get("expectException").and_then(|e| e.as_str());
        let rlp = entry["rlp"].as_str().unwrap_or_default();
        let outcome = match decode_block(rlp) {
            None => Err(Outcome::Decode),
            Some(block) => {
                let res = check(&mut spec, &known, &block);
                if res.is_ok() && expected.is_none() {
                    let parent_td = known[&block.header.parent_hash].total_difficulty;
                    known.insert(
                        block.header.hash_slow(),
                        Known {
                            total_difficulty: parent_td + block.header.difficulty,
                            ommer_hashes: block.body.ommers.iter().map(Header::hash_slow).collect(),
                            header: block.header,
                        },
                    );
                }
                res
            }
        };
        match (expected, outcome) {
            (None, Ok(())) => tally.valid_blocks += 1,
            (None, Err(err)) => {
                let why = match err {
                    Outcome::Decode => "RLP does not decode".to_string(),
                    Outcome::UnknownParent => "unknown parent".to_string(),
                    Outcome::Rule(e) => e.to_string(),
                };
                tally.valid_failures.push(format!("{name} block {i}: {why}"));
            }
            (Some(kind), outcome) => {
                let slot = tally.invalid.entry(kind.to_string()).or_default();
                match outcome {
                    Ok(()) => {
                        slot.1 += 1;
                        slot.2.get_or_insert_with(|| format!("{name} block {i}"));
                    }
                    Err(err) => {
                        slot.0 += 1;
                        let rule = match &err {
                            Outcome::Decode => "RLP decoding".to_string(),
                            Outcome::UnknownParent => "unknown parent".to_string(),
                            Outcome::Rule(e) => rule_name(e),
                        };
                        *slot.3.entry(rule).or_default() += 1;
                        if std::env::var_os("VELARIUM_CONSENSUS_VERBOSE").is_some() {
                            let why = match err {
                                Outcome::Decode => "RLP does not decode".to_string(),
                                Outcome::UnknownParent => "unknown parent".to_string(),
                                Outcome::Rule(e) => e.to_string(),
                            };
                            println!("  {name} block {i} [{kind}]: {why}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn blockchain_tests_pre_execution() {
    let root = fixtures_root();
    if std::env::var_os("VELARIUM_CONSENSUS_EEST").is_some() {
        // execution-spec-tests fixtures (Prague, Osaka, ...), same format.
        let mut files = Vec::new();
        json_files(&root.join("../blockchain_tests"), &mut files);
        return run_files(&files);
    }
    if !root.is_dir() {
        // The test script extracts them and sets this: then their absence is a failure.
        assert!(
            std::env::var_os("VELARIUM_REQUIRE_FIXTURES").is_none(),
            "{} is absent",
            root.display()
        );
        eprintln!(
            "skipping: {} is absent (extract ../shared/fixtures/ethereum-tests-v14.1-BlockchainTests.tar.xz \
             under target/fixtures)",
            root.display()
        );
        return;
    }
    let mut dirs = vec!["InvalidBlocks", "ValidBlocks", "TransitionTests"];
    if std::env::var_os("VELARIUM_CONSENSUS_STATE_TESTS").is_some() {
        dirs.push("GeneralStateTests");
    }
    let mut files = Vec::new();
    for dir in dirs {
        json_files(&root.join(dir), &mut files);
    }
    run_files(&files);
}

/// Runs every case of `files`, prints the tallies, fails if a valid block is rejected.
fn run_files(files: &[PathBuf]) {
    let mut tally = Tally::default();
    for file in files {
        let text = std::fs::read_to_string(file).expect("read fixture");
        let cases: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).expect("parse fixture");
        for (name, case) in &cases {
            run_case(name, case, &mut tally);
        }
    }

    println!(
        "{} files, {} cases, {} valid blocks accepted",
        files.len(),
        tally.cases,
        tally.valid_blocks
    );
    println!("skipped networks: {:?}", tally.skipped_networks);
    let (mut caught, mut missed) = (0, 0);
    println!("invalid blocks by exception (caught / not caught pre-execution):");
    for (kind, (c, m, example, rules)) in &tally.invalid {
        caught += c;
        missed += m;
        let example = example.as_deref().map(|e| format!("  e.g. {e}")).unwrap_or_default();
        println!("  {c:5} / {m:5}  {kind}{example}");
        if !rules.is_empty() {
            println!("                 caught by {rules:?}");
        }
    }
    println!("invalid blocks: {caught} rejected, {missed} only detectable by execution");
    for failure in &tally.valid_failures {
        println!("VALID BLOCK REJECTED: {failure}");
    }
    assert!(
        tally.valid_failures.is_empty(),
        "{} valid blocks rejected",
        tally.valid_failures.len()
    );
    // Block-level exceptions must all be caught, except those that need execution.
    let missed_block_rules: Vec<_> = tally
        .invalid
        .iter()
        .filter(|(kind, (_, missed, _, _))| {
            *missed > 0
                && !kind.contains("TransactionException")
                && !kind.split('|').any(|k| POST_EXECUTION.contains(&k))
        })
        .map(|(kind, (_, missed, example, _))| format!("{kind}: {missed} missed, e.g. {example:?}"))
        .collect();
    assert!(missed_block_rules.is_empty(), "block rules not enforced: {missed_block_rules:#?}");
}
