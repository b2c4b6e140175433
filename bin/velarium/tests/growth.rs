//! `velarium growth`: a generated chain that `velarium import` verifies block by block, and that
//! `velarium growth import` imports into a fresh datadir, reporting each window's costs.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BLOCKS: u64 = 20;
const ACCOUNTS: u64 = 30;
const SLOTS: u64 = 30;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("velarium-growth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn velarium(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_velarium"));
    cmd.args(args);
    for (flag, path) in paths {
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        cmd.arg(path);
    }
    let out = cmd.output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn generate(dir: &Path, seed: &str) -> Output {
    let (blocks, accounts, slots) = (BLOCKS.to_string(), ACCOUNTS.to_string(), SLOTS.to_string());
    velarium(
        &[
            "growth",
            "generate",
            "--blocks",
            &blocks,
            "--accounts-per-block",
            &accounts,
            "--slots-per-block",
            &slots,
            "--seed",
            seed,
        ],
        &[("--out", dir)],
    )
}

#[test]
fn a_generated_chain_imports_with_every_block_verified() {
    let dir = scratch("chain");
    let out = generate(&dir, "7");
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let (genesis, chain) = (dir.join("genesis.json"), dir.join("chain.rlp"));

    // The same seed gives the same chain, byte for byte.
    let again = scratch("again");
    assert!(generate(&again, "7").status.success());
    assert_eq!(std::fs::read(&chain).unwrap(), std::fs::read(again.join("chain.rlp")).unwrap());
    assert_eq!(
        std::fs::read(&genesis).unwrap(),
        std::fs::read(again.join("genesis.json")).unwrap()
    );

    // The regular import checks every header rule and every root.
    let out = velarium(&["import"], &[("--genesis", &genesis), ("", &chain)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(&format!("imported {BLOCKS} blocks")), "{stdout}");
    assert!(stdout.contains(&format!("head #{BLOCKS} ")), "{stdout}");

    // `growth import`: one JSON record per window of 5 blocks, then the summary.
    let datadir = dir.join("datadir");
    let out = velarium(
        &["growth", "import", "--json", "--every", "5"],
        &[("--datadir", &datadir), ("--genesis", &genesis), ("--chain", &chain)],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let records: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON record a line")).collect();
    assert_eq!(records.len(), 5, "{stdout}");
    let (windows, summary) = records.split_at(4);
    let summary = &summary[0];
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["head_number"], BLOCKS);
    assert_eq!(summary["blocks"], BLOCKS);
    assert_eq!(summary["transactions"], BLOCKS * (ACCOUNTS + SLOTS));
    // Every block adds its fresh accounts and slots; the fee recipient appears in block 1.
    let genesis_accounts = summary["genesis_accounts"].as_u64().unwrap();
    assert_eq!(genesis_accounts, ACCOUNTS + SLOTS + 1, "the senders and the slot writer");
    assert_eq!(summary["genesis_slots"], 0);
    assert_eq!(summary["accounts"], genesis_accounts + BLOCKS * ACCOUNTS + 1);
    assert_eq!(summary["slots"], BLOCKS * SLOTS);
    for (i, window) in windows.iter().enumerate() {
        let i = i as u64;
        assert_eq!(window["type"], "window");
        assert_eq!(window["first_block"], 5 * i + 1);
        assert_eq!(window["last_block"], 5 * i + 5);
        assert_eq!(window["slots"], (5 * i + 5) * SLOTS);
        for phase in ["execution_ms", "state_root_ms", "store_ms"] {
            assert!(window[phase]["median"].as_f64().unwrap() >= 0.0, "{window}");
            assert!(window[phase]["mean"].as_f64().unwrap() > 0.0, "{window}");
        }
        assert!(window["blocks_per_s"].as_f64().unwrap() > 0.0);
    }

    // The same head through both imports.
    let text_out = velarium(&["import"], &[("--genesis", &genesis), ("", &chain)]);
    let head_line = text(&text_out.stdout)
        .lines()
        .find(|l| l.starts_with("head #"))
        .map(str::to_owned)
        .unwrap();
    assert!(head_line.ends_with(summary["head_hash"].as_str().unwrap()), "{head_line} {summary}");

    // The table form, into another fresh datadir; a used one is refused.
    let datadir2 = dir.join("datadir2");
    let out = velarium(
        &["growth", "import", "--every", "8"],
        &[("--datadir", &datadir2), ("--genesis", &genesis), ("--chain", &chain)],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("17-20"), "a last, partial window: {stdout}");
    assert!(stdout.contains("last window (blocks 17-20) vs first (1-8)"), "{stdout}");
    assert!(stdout.contains(&format!("head #{BLOCKS} ")), "{stdout}");
    let out = velarium(
        &["growth", "import"],
        &[("--datadir", &datadir2), ("--genesis", &genesis), ("--chain", &chain)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not empty"), "{}", text(&out.stderr));

    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&again);
}

#[test]
fn bad_arguments_fail_cleanly() {
    let dir = scratch("bad");
    let out = velarium(&["growth", "generate", "--blocks", "0"], &[("--out", &dir)]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--blocks"), "{stderr}");
    assert!(!dir.join("chain.rlp").exists());

    let out = velarium(&["growth", "import", "--every", "0"], &[]);
    assert_eq!(out.status.code(), Some(2));

    // A chain file that is not there: an error naming it, nothing else.
    let missing = dir.join("missing.rlp");
    let genesis_dir = dir.join("g");
    let out = velarium(
        &[
            "growth",
            "generate",
            "--blocks",
            "1",
            "--accounts-per-block",
            "1",
            "--slots-per-block",
            "1",
        ],
        &[("--out", &genesis_dir)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = velarium(
        &["growth", "import"],
        &[
            ("--datadir", &dir.join("datadir")),
            ("--genesis", &genesis_dir.join("genesis.json")),
            ("--chain", &missing),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.rlp"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
