//! The command line on bad input: clear errors and a failing exit code, never a panic.

use std::{path::PathBuf, process::Command};

fn velarium(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_velarium")).args(args).output().expect("runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("velarium-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn devp2p() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/chains/geth-devp2p")
}

#[test]
fn missing_files_are_reported() {
    let (code, text) = velarium(&["import", "--genesis", "/nonexistent/genesis.json", "x.rlp"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cannot read genesis file"), "{text}");
    let (code, text) = velarium(&["blocktest", "/nonexistent/dir"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no such file or directory"), "{text}");
}

#[test]
fn malformed_genesis_and_chain_files_are_errors() {
    let dir = scratch("malformed");
    let genesis = dir.join("genesis.json");
    std::fs::write(&genesis, b"{\"config\": {\"chainId\": \"nope\"}}").unwrap();
    let chain = dir.join("chain.rlp");
    std::fs::write(&chain, [0xf9, 0xff, 0x01]).unwrap();
    let (code, text) = velarium(&["import", "--genesis", genesis.to_str().unwrap(), "x.rlp"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("genesis"), "{text}");

    let fixture = dir.join("bad.json");
    std::fs::write(&fixture, b"{ not json").unwrap();
    let (code, text) = velarium(&["blocktest", fixture.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not a fixture file"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_malformed_chain_file_is_an_error() {
    let dir = scratch("malformed-chain");
    let chain = dir.join("chain.rlp");
    std::fs::write(&chain, [0xf9, 0xff, 0x01]).unwrap();
    let good = devp2p().join("genesis.json");
    if !good.exists() {
        assert!(std::env::var_os("VELARIUM_REQUIRE_FIXTURES").is_none(), "shared fixtures absent");
        return;
    }
    let (code, text) =
        velarium(&["import", "--genesis", good.to_str().unwrap(), chain.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cannot decode the first block of the file, at byte offset 0"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_tampered_block_is_rejected_with_its_rule() {
    let chain = devp2p().join("chain.rlp");
    if !chain.exists() {
        assert!(std::env::var_os("VELARIUM_REQUIRE_FIXTURES").is_none(), "shared fixtures absent");
        return;
    }
    // Block 1 with a wrong state root in its header (and no other change).
    let bytes = std::fs::read(&chain).unwrap();
    let mut blocks = velarium_chain::rlp::decode_blocks(&bytes, "chain.rlp").unwrap();
    blocks[0].header.state_root.0[0] ^= 0xff;
    let mut bytes = Vec::new();
    for block in &blocks {
        alloy_rlp::Encodable::encode(block, &mut bytes);
    }
    let dir = scratch("tampered");
    let path = dir.join("chain.rlp");
    std::fs::write(&path, &bytes).unwrap();
    let genesis = devp2p().join("genesis.json");
    for engine in ["sequential", "parallel"] {
        let (code, text) = velarium(&[
            "import",
            "--engine",
            engine,
            "--genesis",
            genesis.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("block 1") && text.contains("state root mismatch"), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `velarium bench --json` of `workloads` (`txs` each, one repetition, at `threads`): its
/// records, and the whole output.
fn bench_json(workloads: &str, txs: &str, threads: &str) -> (Vec<serde_json::Value>, String) {
    let (code, text) = velarium(&[
        "bench",
        "--workloads",
        workloads,
        "--txs",
        txs,
        "--reps",
        "1",
        "--threads",
        threads,
        "--json",
    ]);
    assert_eq!(code, 0, "{text}");
    let records = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    (records, text)
}

#[test]
fn bench_reports_bounds_from_real_access_sets() {
    let (records, text) =
        bench_json("eth_transfers,dependent_chain,reads_beneficiary", "40", "1,2");
    // One record per workload and engine: the oracle and two thread counts.
    assert_eq!(records.len(), 9, "{text}");
    let bound = |name: &str| {
        records.iter().find(|r| r["workload"] == name).expect("workload present")
            ["critical_path_bound"]
            .as_f64()
            .unwrap()
    };
    // Independent transfers: every transaction is its own chain (equal gas each).
    assert!((bound("eth_transfers") - 40.0).abs() < 1e-9, "{text}");
    // One slot read and written by everyone, and everyone reading the beneficiary's credits.
    assert!((bound("dependent_chain") - 1.0).abs() < 1e-9, "{text}");
    assert!((bound("reads_beneficiary") - 1.0).abs() < 1e-9, "{text}");
    for r in &records {
        assert!(r["median_ms"].as_f64().unwrap() > 0.0);
        assert!(r["efficiency"].as_f64().unwrap() > 0.0);
        assert!(r["time_efficiency"].as_f64().unwrap() > 0.0);
    }
    // Weighted by time, the chains are the same: one chain stays one chain, and independent
    // transfers still have at least two chains' worth of time each (the bound is the block's
    // time over its slowest transaction's).
    let time_bound = |name: &str| {
        records.iter().find(|r| r["workload"] == name).expect("workload present")["time_bound"]
            .as_f64()
            .unwrap()
    };
    assert!((time_bound("dependent_chain") - 1.0).abs() < 1e-9, "{text}");
    assert!((time_bound("reads_beneficiary") - 1.0).abs() < 1e-9, "{text}");
    assert!(time_bound("eth_transfers") > 2.0 && time_bound("eth_transfers") <= 40.0, "{text}");
}

/// `bench` measures the parallel engine as it runs by default, blocks it gives the oracle
/// included and counted (`oracle_runs`); `--min-parallel-txs 0` forces Block-STM on each.
#[test]
fn bench_counts_the_blocks_the_engine_gives_the_oracle() {
    // `bench` on 40-transaction blocks at 2 threads, 3 repetitions, with `extra` arguments.
    let bench = |workloads: &str, extra: &[&str]| {
        let mut args =
            vec!["bench", "--workloads", workloads, "--txs", "40", "--reps", "3", "--threads", "2"];
        args.extend_from_slice(extra);
        let (code, text) = velarium(&args);
        assert_eq!(code, 0, "{text}");
        text
    };
    let oracle_runs = |extra: &[&str]| {
        let text = bench("airdrop,eth_transfers", &[&["--json"], extra].concat());
        let records: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
            .collect();
        // (runs on the oracle, runs): at least the 3 repetitions (a block this short gets more
        // where its first run is fast, which is the machine's to say, not the test's).
        let of = |name: &str| {
            let record = records
                .iter()
                .find(|r| r["workload"] == name && r["engine"] == "parallel/2")
                .unwrap_or_else(|| panic!("no parallel/2 record of {name}: {text}"));
            let runs = record["runs"].as_u64().expect("a count of runs");
            assert!(runs >= 3, "{record}");
            (record["oracle_runs"].as_u64().expect("a count of oracle runs"), runs)
        };
        (of("airdrop"), of("eth_transfers"))
    };
    // One sender's chain of calls goes to the oracle (every run); 40 independent transfers do
    // not.
    let (airdrop, transfers) = oracle_runs(&[]);
    assert_eq!((airdrop.0, transfers.0), (airdrop.1, 0));
    let (airdrop, transfers) = oracle_runs(&["--min-parallel-txs", "0"]);
    assert_eq!((airdrop.0, transfers.0), (0, 0));
    // `--profile parallel` says so on the block's line, and not where Block-STM ran.
    let profile = |extra: &[&str]| bench("airdrop", &[&["--profile", "parallel"], extra].concat());
    assert!(profile(&[]).contains("on the oracle 3 of 3"));
    assert!(!profile(&["--min-parallel-txs", "0"]).contains("on the oracle"));
}

/// With pinned workers the engine still gives the oracle's output (`bench` checks every parallel
/// output against the oracle's and fails otherwise).
#[test]
fn pinned_workers_give_the_oracles_results() {
    let (code, text) = velarium(&[
        "--pin-workers",
        "bench",
        "--workloads",
        "eth_transfers,mixed",
        "--txs",
        "60",
        "--reps",
        "2",
        "--threads",
        "1,2,4",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("parallel/4"), "{text}");
}

/// A repeated `replay` reports, per block and in its summary, how far apart the cores it met
/// were, and per block the workers the engine used; a single run (not a benchmark) does not
/// spend the time on the round trip.
#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn replay_reports_the_core_to_core_round_trip() {
    let blocks =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures/mainnet-blocks");
    if !blocks.exists() {
        assert!(std::env::var_os("VELARIUM_REQUIRE_FIXTURES").is_none(), "shared fixtures absent");
        return;
    }
    let two = [blocks.join("11114732"), blocks.join("19934116")];
    let two: Vec<&str> = two.iter().map(|p| p.to_str().unwrap()).collect();
    let args = |repeat: &'static str| {
        let mut args = vec!["replay", "--threads", "2", "--repeat", repeat];
        args.extend(&two);
        args
    };
    let (code, text) = velarium(&args("2"));
    assert_eq!(code, 0, "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.trim_end().ends_with(" ok")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let mut measured = false;
    for row in &rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let c2c = fields[fields.len() - 2];
        assert!(plausible_round_trip(c2c), "{row}");
        measured |= c2c != "-";
        // Both blocks are heavy (58,000 gas a transaction and more): two workers at any placement.
        assert_eq!(fields[fields.len() - 3], "2", "{row}");
    }
    // The summary is there exactly when some block's round trip was measured.
    assert_eq!(text.contains("core-to-core round trip after each block: "), measured, "{text}");
    // By turns (`--rotate`): each block once a round, still two timed pairs each.
    let mut rotating = args("2");
    rotating.push("--rotate");
    let (code, text) = velarium(&rotating);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.lines().filter(|l| l.trim_end().ends_with(" ok")).count(), 2, "{text}");
    assert!(text.contains("median over each block's 2 interleaved pairs of runs)"), "{text}");
    let (code, text) = velarium(&args("1"));
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("core-to-core round trip"), "{text}");
    for row in text.lines().filter(|l| l.trim_end().ends_with(" ok")) {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields[fields.len() - 2], "-", "{row}");
    }
}

/// Whether a round-trip figure as printed is a plausible one, or `-` where the probe could not
/// measure (one core, or a machine too busy: tests running side by side starve its answering
/// thread).
fn plausible_round_trip(field: &str) -> bool {
    field == "-" || field.parse::<f64>().is_ok_and(|ns| ns > 0.0 && ns < 1e8)
}

/// `bench` reports how far apart the cores it ran on were (a cache line's round trip between
/// two threads, before and after the runs, and after each workload's repetitions), on a
/// machine with two cores or more and time for the probe.
#[test]
fn bench_reports_the_core_to_core_round_trip() {
    let (code, text) = velarium(&[
        "bench",
        "--workloads",
        "eth_transfers",
        "--txs",
        "20",
        "--reps",
        "1",
        "--threads",
        "2",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.lines().next().is_some_and(|h| h.trim_end().ends_with("c2c ns")), "{text}");
    // Each workload's rows end with the round trip measured right after its repetitions.
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("eth_transfers ")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for row in &rows {
        let last = row.split_whitespace().last().unwrap_or_default();
        assert!(plausible_round_trip(last), "{row}");
    }
    // Before and after the runs (left out where either probe could not measure).
    if let Some(line) = text.lines().find(|l| l.starts_with("core-to-core round trip: ")) {
        let figures_part = line.split('(').next().unwrap_or_default();
        let figures: Vec<&str> = figures_part
            .split_whitespace()
            .zip(figures_part.split_whitespace().skip(1))
            .filter(|(_, unit)| *unit == "ns")
            .map(|(n, _)| n)
            .collect();
        assert_eq!(figures.len(), 2, "{line}");
        assert!(figures.iter().all(|f| *f != "-" && plausible_round_trip(f)), "{line}");
    }
    let (records, json) = bench_json("eth_transfers", "20", "2");
    assert_eq!(records.len(), 2, "{json}");
    for record in records {
        let ns = &record["core_round_trip_ns"];
        assert!(ns.is_null() || ns.as_f64().is_some_and(|ns| ns > 0.0 && ns < 1e8), "{record}");
    }
}
