//! `velarium blocktest` on bad input: never a false pass. Archives are extracted per content,
//! a missing skip file is an error and the default list is built in, a run that tested nothing
//! fails, `--json` names the failing cases, and an expected rejection is checked end to end.
//!
//! The fixtures here are made up: a Frontier genesis with an empty state (and one block on top
//! of it), so these tests need nothing from `../shared`.

use alloy_consensus::{
    Block, BlockBody, Header, TxEnvelope, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH,
};
use alloy_primitives::{hex, B256, U256};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn velarium_in(dir: Option<&Path>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velarium"));
    command.args(args).env_remove("VELARIUM_FIXTURE_CACHE");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command.output().expect("runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn velarium(args: &[&str]) -> Run {
    velarium_in(None, args)
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("velarium-blocktest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn rlp(block: &Block<TxEnvelope>) -> String {
    let mut out = Vec::new();
    alloy_rlp::Encodable::encode(block, &mut out);
    format!("0x{}", hex::encode(out))
}

fn empty_block(header: Header) -> Block<TxEnvelope> {
    Block { header, body: BlockBody { transactions: vec![], ommers: vec![], withdrawals: None } }
}

/// A Frontier genesis with an empty state.
fn genesis() -> Header {
    Header {
        state_root: EMPTY_ROOT_HASH,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        difficulty: U256::from(0x20000),
        gas_limit: 3_141_592,
        timestamp: 1000,
        ..Default::default()
    }
}

/// One case: the genesis, `blocks` (RLP, expected exception) and the expected head.
fn case(blocks: &[(String, Option<&str>)], lastblockhash: B256) -> serde_json::Value {
    let genesis = empty_block(genesis());
    let blocks: Vec<_> = blocks
        .iter()
        .map(|(rlp, exception)| match exception {
            Some(e) => serde_json::json!({ "rlp": rlp, "expectException": e }),
            None => serde_json::json!({ "rlp": rlp }),
        })
        .collect();
    serde_json::json!({
        "network": "Frontier",
        "pre": {},
        "genesisBlockHeader": {
            "hash": genesis.header.hash_slow(),
            "stateRoot": genesis.header.state_root,
        },
        "genesisRLP": rlp(&genesis),
        "blocks": blocks,
        "postState": {},
        "lastblockhash": lastblockhash,
    })
}

/// A case that passes: the genesis alone.
fn passing_case() -> serde_json::Value {
    case(&[], genesis().hash_slow())
}

/// A case that fails: the genesis alone, but a different head expected.
fn failing_case() -> serde_json::Value {
    case(&[], B256::repeat_byte(0x11))
}

fn write_fixture(path: &Path, cases: &[(&str, serde_json::Value)]) {
    let map: serde_json::Map<_, _> =
        cases.iter().map(|(name, case)| (name.to_string(), case.clone())).collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(&map).unwrap()).unwrap();
}

/// `archive` (`NAME.tar.xz`) holding one fixture file with `case`.
fn write_archive(archive: &Path, case: serde_json::Value) {
    let content = archive.with_extension("content");
    let _ = std::fs::remove_dir_all(&content);
    write_fixture(&content.join("suite/cases.json"), &[("case", case)]);
    let status = Command::new("tar")
        .arg("cJf")
        .arg(archive)
        .arg("-C")
        .arg(&content)
        .arg("suite")
        .status()
        .expect("tar runs");
    assert!(status.success());
    std::fs::remove_dir_all(&content).unwrap();
}

fn closing_line(run: &Run) -> &str {
    run.stdout.lines().find(|l| l.starts_with("blocktest:")).unwrap_or("")
}

#[test]
fn a_genesis_only_case_passes_and_a_wrong_head_fails() {
    let dir = scratch("basic");
    let good = dir.join("good.json");
    write_fixture(&good, &[("pass", passing_case())]);
    let bad = dir.join("bad.json");
    write_fixture(&bad, &[("fail", failing_case())]);
    for engine in ["sequential", "parallel"] {
        let run = velarium(&["blocktest", "--engine", engine, s(&good)]);
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(closing_line(&run), "blocktest: 1 passed, 0 failed, 0 skipped", "{run}");
        let run = velarium(&["blocktest", "--engine", engine, s(&bad)]);
        assert_eq!(run.code, 1, "{run}");
        assert!(run.stdout.contains("!= lastblockhash"), "{run}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn archives_are_extracted_per_content_not_per_name() {
    let dir = scratch("archives");
    let cache = dir.join("cache");
    let (first, second) = (dir.join("a/suite.tar.xz"), dir.join("b/suite.tar.xz"));
    std::fs::create_dir_all(first.parent().unwrap()).unwrap();
    std::fs::create_dir_all(second.parent().unwrap()).unwrap();
    write_archive(&first, passing_case());
    write_archive(&second, failing_case());
    let blocktest = |archive: &Path| {
        velarium(&["blocktest", "--engine", "sequential", "--cache-dir", s(&cache), s(archive)])
    };

    let run = blocktest(&first);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(closing_line(&run), "blocktest: 1 passed, 0 failed, 0 skipped", "{run}");
    // Same file name, other content: its own extraction, and its failing case fails.
    let run = blocktest(&second);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(closing_line(&run), "blocktest: 0 passed, 1 failed, 0 skipped", "{run}");
    // The first archive again: its extraction is reused.
    let run = blocktest(&first);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stderr.contains("extracting"), "{run}");
    // The first archive rewritten in place with the failing case.
    std::fs::copy(&second, &first).unwrap();
    let run = blocktest(&first);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(closing_line(&run), "blocktest: 0 passed, 1 failed, 0 skipped", "{run}");

    // An archive that does not exist is an error, even though one of its name is cached.
    let run = blocktest(&dir.join("c/suite.tar.xz"));
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("no such archive"), "{run}");
    // A directory named like an archive is not one.
    let folder = dir.join("d/suite.tar.xz");
    std::fs::create_dir_all(&folder).unwrap();
    let run = blocktest(&folder);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("not a file"), "{run}");

    // A damaged archive: tar fails, and nothing of it is left to be used by a later run.
    let damaged = dir.join("e/suite.tar.xz");
    std::fs::create_dir_all(damaged.parent().unwrap()).unwrap();
    let bytes = std::fs::read(&second).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    for _ in 0..2 {
        let run = blocktest(&damaged);
        assert_eq!(run.code, 1, "{run}");
        assert!(run.stderr.contains("tar failed"), "{run}");
    }
    let mut entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(
        entries.len(),
        2,
        "one extraction per archive content, no partial ones: {entries:?}"
    );
    assert!(entries.iter().all(|e| e.starts_with("suite-") && e.len() == "suite-".len() + 16));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_explicit_skip_file_must_exist() {
    let dir = scratch("skips");
    let fixture = dir.join("f.json");
    write_fixture(&fixture, &[("pass", passing_case())]);
    let missing = dir.join("no-such-skips.txt");
    let run = velarium(&["blocktest", "--skips", s(&missing), s(&fixture)]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("no-such-skips.txt"), "{run}");
    // An existing one is used instead of the built-in list.
    let skips = dir.join("skips.txt");
    std::fs::write(&skips, "case fail: known gap\n").unwrap();
    write_fixture(&fixture, &[("pass", passing_case()), ("fail", failing_case())]);
    let run = velarium(&["blocktest", "--skips", s(&skips), s(&fixture)]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(closing_line(&run), "blocktest: 1 passed, 0 failed, 1 skipped", "{run}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_built_in_skip_list_does_not_depend_on_the_working_directory() {
    let dir = scratch("builtin-skips");
    // A case of a network the shipped list skips (Constantinople), failing if it ran, and a
    // passing file.
    let mut skipped_case = failing_case();
    skipped_case["network"] = "Constantinople".into();
    write_fixture(&dir.join("fixtures/constantinople.json"), &[("fail", skipped_case)]);
    write_fixture(&dir.join("fixtures/other.json"), &[("pass", passing_case())]);
    let run = velarium_in(Some(&dir), &["blocktest", "fixtures"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(closing_line(&run), "blocktest: 1 passed, 0 failed, 1 skipped", "{run}");
    let help = velarium(&["blocktest", "--help"]);
    assert!(help.stdout.contains("built into this binary"), "{help}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_that_tests_nothing_fails() {
    let dir = scratch("nothing");
    // A fixture file without cases is a failed entry, not a silent zero.
    let empty = dir.join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let run = velarium(&["blocktest", s(&empty)]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("no test cases"), "{run}");
    assert_eq!(closing_line(&run), "blocktest: 0 passed, 1 failed, 0 skipped", "{run}");
    // Every case skipped: nothing was tested.
    let fixture = dir.join("f.json");
    write_fixture(&fixture, &[("pass", passing_case())]);
    let skips = dir.join("skips.txt");
    std::fs::write(&skips, "network Frontier: not today\n").unwrap();
    let run = velarium(&["blocktest", "--skips", s(&skips), s(&fixture)]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("nothing was tested"), "{run}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_names_the_failing_cases() {
    let dir = scratch("json");
    let fixture = dir.join("f.json");
    write_fixture(&fixture, &[("good", passing_case()), ("wrong-head", failing_case())]);
    let run = velarium(&["blocktest", "--json", s(&fixture)]);
    assert_eq!(run.code, 1, "{run}");
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON");
    assert_eq!(summary["passed"], 1, "{run}");
    assert_eq!(summary["failed"], 1, "{run}");
    let failures = summary["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{run}");
    assert_eq!(failures[0]["file"], s(&fixture));
    assert_eq!(failures[0]["name"], "wrong-head");
    assert_eq!(failures[0]["network"], "Frontier");
    assert!(failures[0]["reason"].as_str().unwrap().contains("!= lastblockhash"), "{run}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Block 1 on the genesis, valid except for `state_root` (its 5-ether reward changes the
/// state).
fn block_one(state_root: B256) -> Block<TxEnvelope> {
    let parent = genesis();
    // Frontier difficulty: the parent's plus 1/2048 of it for a block within 13 seconds.
    let difficulty = parent.difficulty + parent.difficulty / U256::from(2048);
    empty_block(Header {
        parent_hash: parent.hash_slow(),
        number: 1,
        timestamp: parent.timestamp + 10,
        difficulty,
        state_root,
        ..parent
    })
}

#[test]
fn an_expected_rejection_is_checked_against_the_oracle() {
    let dir = scratch("expect");
    let genesis_hash = genesis().hash_slow();
    let wrong_root = rlp(&block_one(B256::repeat_byte(0x22)));
    let cases = [
        // Rejected after execution (state root): under the parallel engine the oracle must
        // reject it the same way.
        ("state-root", case(&[(wrong_root.clone(), Some("InvalidStateRoot"))], genesis_hash)),
        // Not decodable.
        ("garbage", case(&[("0xc0ffee".into(), Some("RLP"))], genesis_hash)),
    ];
    let fixture = dir.join("expect.json");
    write_fixture(&fixture, &cases);
    for engine in ["sequential", "parallel"] {
        let run = velarium(&[
            "blocktest",
            "--engine",
            engine,
            "--min-parallel-txs",
            "0",
            "--threads",
            "2",
            s(&fixture),
        ]);
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(closing_line(&run), "blocktest: 2 passed, 0 failed, 0 skipped", "{run}");
    }
    // The same block without `expectException` fails, naming the rule.
    write_fixture(&fixture, &[("unexpected", case(&[(wrong_root, None)], genesis_hash))]);
    let run = velarium(&["blocktest", "--engine", "parallel", s(&fixture)]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("block 0 rejected: post-execution"), "{run}");
    std::fs::remove_dir_all(&dir).unwrap();
}
