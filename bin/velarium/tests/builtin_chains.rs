//! `--chain NAME`: the built-in networks' genesis and fork schedule instead of `--genesis FILE`
//! (embedded in the binary, so these tests need no fixtures).

use std::{path::PathBuf, process::Command};

const MAINNET_GENESIS: &str = "0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3";
const SEPOLIA_GENESIS: &str = "0x25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9";
const HOODI_GENESIS: &str = "0xbbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b";

/// Runs `velarium ARGS`: the exit code and stdout + stderr.
fn velarium(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_velarium")).args(args).output().expect("runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("velarium-builtin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn chain_mainnet_initialises_a_datadir_with_mainnets_genesis() {
    let dir = scratch("mainnet");
    let empty = dir.join("empty.rlp");
    std::fs::write(&empty, b"").unwrap();
    let datadir = dir.join("data");
    let (empty, datadir) = (empty.to_str().unwrap(), datadir.to_str().unwrap());
    let args = ["import", "--chain", "mainnet", "--datadir", datadir, empty];

    let (code, text) = velarium(&args);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no blocks in the file"), "{text}");
    // The datadir now holds mainnet's genesis: a second run opens it at block 0.
    let (code, text) = velarium(&args);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("head=0 hash={MAINNET_GENESIS}")), "{text}");
    assert!(text.contains("no blocks in the file"), "{text}");

    // Another network's genesis does not open it.
    let (code, text) = velarium(&["import", "--chain", "sepolia", "--datadir", datadir, empty]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("genesis {MAINNET_GENESIS}, not {SEPOLIA_GENESIS}")), "{text}");

    // In memory too.
    let (code, text) = velarium(&["import", "--chain", "mainnet", empty]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("genesis={MAINNET_GENESIS}")), "{text}");
    assert!(text.contains("no blocks in the file"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_node_takes_a_chain_name() {
    let dir = scratch("node");
    let datadir = dir.join("data");
    let (code, text) = velarium(&[
        "node",
        "--chain",
        "hoodi",
        "--datadir",
        datadir.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--exit-after-import",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("head=0 hash={HOODI_GENESIS}")), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_chain_name_is_refused_with_the_known_ones() {
    for command in [
        &["import", "--chain", "nope", "x.rlp"][..],
        &["node", "--datadir", "d", "--chain", "nope"],
    ] {
        let (code, text) = velarium(command);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("nope"), "{text}");
        for name in ["mainnet", "sepolia", "holesky", "hoodi"] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
    }
}

#[test]
fn chain_and_genesis_are_exclusive_and_one_is_required() {
    let (code, text) = velarium(&["import", "--chain", "mainnet", "--genesis", "x", "x.rlp"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot be used with"), "{text}");
    let (code, text) =
        velarium(&["node", "--datadir", "d", "--chain", "mainnet", "--genesis", "x"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot be used with"), "{text}");

    let (code, text) = velarium(&["import", "x.rlp"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("required") && text.contains("--genesis") && text.contains("--chain"),
        "{text}"
    );
    let (code, text) = velarium(&["node", "--datadir", "d"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("required"), "{text}");
}
