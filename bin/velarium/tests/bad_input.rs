//! Bad input and closed outputs: a clear error and a failing exit code, never a panic, never a
//! success on nothing; and random damage to real chain files never panics or hangs the import.

mod support {
    pub(crate) mod rng;
}

use std::{
    io::Read,
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};
use support::rng::Rng;

fn velarium(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_velarium")).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("velarium-bad-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn devp2p() -> (PathBuf, PathBuf) {
    let dir = shared().join("chains/geth-devp2p");
    (dir.join("genesis.json"), dir.join("chain.rlp"))
}

fn mainnet_block() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures/mainnet-blocks/46147")
}

/// The process failed cleanly because its standard output could not be written.
fn assert_output_error(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to standard output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let devfull = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_velarium"))
        .args(["bench", "--list"])
        .stdout(devfull)
        .output()
        .expect("runs");
    assert_output_error(&out);
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_closed_pipe_is_an_error_not_a_panic() {
    // `velarium replay --json ... | head -1`: the reader goes away after the first line. The
    // block is named a thousand times, so the output (~150 KB) cannot all fit in the pipe's
    // buffer before the reader is gone: a write must meet the closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_velarium"))
        .args(["replay", "--json"])
        .args(std::iter::repeat_n(mainnet_block(), 1000))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_output_error(&out);
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn an_empty_chain_file_imports_nothing_and_fails() {
    let (genesis, _) = devp2p();
    let dir = scratch("empty");
    let empty = dir.join("empty.rlp");
    std::fs::write(&empty, b"").unwrap();
    let (code, stdout, stderr) =
        velarium(&["import", "--genesis", genesis.to_str().unwrap(), empty.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("no blocks in the file"), "{stderr}");
    assert!(!stdout.contains("verified against every header"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_damaged_chain_imports_its_good_prefix_and_names_the_block() {
    let (genesis, chain) = devp2p();
    let bytes = std::fs::read(&chain).unwrap();
    let dir = scratch("cut");
    let cut = dir.join("cut.rlp");
    std::fs::write(&cut, &bytes[..300_000]).unwrap();
    let genesis = genesis.to_str().unwrap();
    // Plain: the error names the real block number (not a 0-based position), each cause once.
    let (code, _, stderr) = velarium(&["import", "--genesis", genesis, cut.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("after 390 verified blocks"), "{stderr}");
    assert!(stderr.contains("after block 390 (presumably block 391"), "{stderr}");
    assert_eq!(stderr.matches("input too short").count(), 1, "{stderr}");
    // JSON: one object on stdout with the error, the failing block and the verified count.
    let (code, stdout, _) =
        velarium(&["import", "--json", "--genesis", genesis, cut.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["blocks_verified"], 390);
    assert_eq!(summary["failed_block"], 391);
    assert!(summary["error"].as_str().unwrap().contains("cannot decode"), "{summary}");
    // A missing file: its error once, not `... (os error 2): No such file ... (os error 2)`.
    let missing = dir.join("missing.rlp");
    let (code, _, stderr) = velarium(&["import", "--genesis", genesis, missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn bench_reads_the_shipped_archive_itself() {
    let archive = shared().join("mainnet-blocks/mainnet-blocks.tar.xz");
    let cache = scratch("bench-cache");
    let bench = |workloads: &str| {
        velarium(&[
            "bench",
            "--workloads",
            workloads,
            "--mainnet",
            archive.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--profile",
            "sequential",
            "--reps",
            "1",
        ])
    };
    let (code, stdout, stderr) = bench("mainnet");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("mainnet/")).count(), 47, "{stdout}");
    // One block of them by number; a number that is not there is an error.
    for (block, expect) in [("mainnet/46147", Ok(())), ("mainnet/123", Err(()))] {
        let (code, stdout, stderr) = bench(block);
        match expect {
            Ok(()) => {
                assert_eq!(code, 0, "{stderr}");
                let lines: Vec<&str> =
                    stdout.lines().filter(|l| l.starts_with("mainnet/")).collect();
                assert_eq!(lines.len(), 1, "{stdout}");
                assert!(lines[0].starts_with("mainnet/46147 "), "{stdout}");
            }
            Err(()) => {
                assert_eq!(code, 1, "{stdout}{stderr}");
                assert!(stderr.contains("no mainnet fixture block 123"), "{stderr}");
            }
        }
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn bench_names_a_mainnet_block_by_number() {
    let (code, stdout, stderr) = velarium(&["bench", "--workloads", "mainnet/latest"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("`mainnet/latest`: expected `mainnet/` and a block number"),
        "{stderr}"
    );
}

#[test]
fn user_output_names_engines_in_words() {
    let (code, stdout, stderr) = velarium(&["replay", "--engine", "fast", "x"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("possible values: parallel, sequential"), "{stderr}");
    assert_eq!(
        velarium_executor::Engine::Parallel { threads: 2, min_txs: 24 }.to_string(),
        "parallel (2 threads; on the oracle: blocks under 24 transactions (under 8 with 5 Mgas \
         or more), chains of one sender's calls, and blocks dominated by a contract whose last \
         Block-STM block ran as a chain; on one worker: blocks under 26000 gas or (as learned) \
         4 µs a transaction while the cores are far apart)"
    );
}

/// One random kind of damage: flipped bytes, a truncation, inserted or deleted bytes, or a
/// swapped pair of regions.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
        }
        1 => out.truncate(rng.below(out.len())),
        2 => {
            let i = rng.below(out.len());
            let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
            out.splice(i..i, junk);
        }
        3 => {
            let i = rng.below(out.len());
            let end = (i + 1 + rng.below(64)).min(out.len());
            out.drain(i..end);
        }
        _ => {
            let i = rng.below(out.len());
            let value = [0x00, 0x80, 0xb8, 0xf8, 0xff][rng.below(5)];
            out[i] = value;
        }
    }
    out
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn random_damage_to_a_real_chain_never_panics_or_hangs() {
    use velarium_chain::{genesis::load_genesis_file, rlp::blocks, Blockchain};
    use velarium_executor::Engine;
    let (genesis, chain) = devp2p();
    let bytes = std::fs::read(&chain).unwrap();
    // The first 60 blocks: enough transactions and forks to exercise decoding and execution.
    let prefix: usize = {
        let mut end = 0;
        let mut buf = &bytes[..];
        for _ in 0..60 {
            let before = buf.len();
            let _: velarium_chain::EthBlock = alloy_rlp::Decodable::decode(&mut buf).unwrap();
            end += before - buf.len();
        }
        end
    };
    let original = &bytes[..prefix];
    let faults_before = velarium_executor::engine_faults();
    let mut rng = Rng(0x5eed_0f5e_ed00_1234);
    for case in 0..96 {
        let damaged = mutate(original, &mut rng);
        let genesis = genesis.clone();
        let engine = if case % 2 == 0 {
            Engine::Sequential
        } else {
            Engine::Parallel { threads: 2, min_txs: 0 }
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                let g = load_genesis_file(&genesis).unwrap();
                let mut chain = Blockchain::new(g.spec, g.header, g.state, engine);
                let mut imported = 0usize;
                for block in blocks(&damaged, "damaged") {
                    let Ok(block) = block else { break };
                    if chain.import_block(&block).is_err() {
                        break;
                    }
                    imported += 1;
                }
                imported
            });
            let _ = tx.send(outcome.is_ok());
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(true) => {}
            Ok(false) => panic!("case {case} ({engine}): the import panicked"),
            Err(_) => panic!("case {case} ({engine}): the import hung"),
        }
    }
    // Damaged input is rejected by the rules, never by an engine fault.
    assert_eq!(velarium_executor::engine_faults(), faults_before);
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn random_damage_to_a_fixture_never_panics() {
    use velarium_conformance::{run_file, Outcome, SkipList};
    use velarium_executor::Engine;
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../target/fixtures/blockchain_tests/cancun/eip4788_beacon_root/test_beacon_root_contract_deploy.json",
    );
    let original = std::fs::read(&fixture).expect("fixture unpacked by tests/run-all.sh");
    let skips = SkipList::parse("").unwrap();
    let baseline = run_file(&fixture, Engine::Sequential, &skips);
    assert!(baseline.iter().all(|r| r.outcome == Outcome::Passed), "{baseline:?}");
    let dir = scratch("fixture-fuzz");
    let mut rng = Rng(0xf1c5_7e57);
    for case in 0..64 {
        // Half the cases damage the JSON text, half a block's RLP inside well-formed JSON (so
        // decoding, validation and execution see the damage, not only the JSON parser).
        let damaged = if case % 4 < 2 {
            mutate(&original, &mut rng)
        } else {
            let mut json: serde_json::Value = serde_json::from_slice(&original).unwrap();
            for (_, test) in json.as_object_mut().unwrap() {
                let blocks = test["blocks"].as_array_mut().unwrap();
                let i = rng.below(blocks.len());
                let hex = blocks[i]["rlp"].as_str().unwrap().trim_start_matches("0x");
                let rlp = alloy_primitives::hex::decode(hex).unwrap();
                let rlp = mutate(&rlp, &mut rng);
                blocks[i]["rlp"] = format!("0x{}", alloy_primitives::hex::encode(rlp)).into();
            }
            serde_json::to_vec(&json).unwrap()
        };
        let path = dir.join(format!("case{case}.json"));
        std::fs::write(&path, &damaged).unwrap();
        let engine = if case % 2 == 0 {
            Engine::Sequential
        } else {
            Engine::Parallel { threads: 2, min_txs: 0 }
        };
        for r in run_file(&path, engine, &skips) {
            if let Outcome::Failed(reason) = &r.outcome {
                assert!(!reason.starts_with("panic"), "case {case} {}: {reason}", r.name);
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
