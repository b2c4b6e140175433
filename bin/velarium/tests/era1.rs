//! era1 archives as an import source: a chain written as an era1 archive (with its receipts and
//! total difficulties) imports to the same head and state root as its RLP export, in memory and
//! into a datadir; a damaged archive is refused whole, before any of its blocks is imported.

use std::{path::PathBuf, process::Command};
use velarium_chain::{genesis::load_genesis_file, rlp::blocks, Blockchain};
use velarium_era::Era1Writer;
use velarium_executor::Engine;

fn chain_files() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/chains/geth-devp2p");
    (dir.join("genesis.json"), dir.join("chain.rlp"))
}

fn import(args: &[&std::ffi::OsStr]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_velarium"))
        .args(["import", "--json"])
        .args(args)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (out.status.code().unwrap_or(-1), summary)
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn an_era1_archive_imports_like_its_rlp_chain_and_a_damaged_one_is_refused() {
    let (genesis_path, chain_path) = chain_files();
    // The chain's receipts and total difficulties, from an in-memory import.
    let genesis = load_genesis_file(&genesis_path).unwrap();
    let genesis_block = alloy_consensus::Block::<alloy_consensus::TxEnvelope> {
        header: genesis.header.clone(),
        body: Default::default(),
    };
    let mut td = genesis.header.difficulty;
    let mut chain =
        Blockchain::new(genesis.spec, genesis.header, genesis.state, Engine::Sequential);
    let mut writer = Era1Writer::new();
    writer.push(&genesis_block, &[], td).unwrap();
    let bytes = std::fs::read(&chain_path).unwrap();
    for block in blocks(&bytes, "chain") {
        let block = block.unwrap();
        let imported = chain.import_block(&block).unwrap();
        td += block.header.difficulty;
        writer.push(&block, &imported.output.receipts, td).unwrap();
    }
    let archive = writer.finish().unwrap();
    let dir = std::env::temp_dir().join(format!("velarium-era1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let era = archive.write_to_dir(&dir, "devp2p").unwrap();
    assert!(era.to_str().unwrap().ends_with(".era1"), "{}", era.display());

    let (code, from_rlp) =
        import(&["--genesis".as_ref(), genesis_path.as_os_str(), chain_path.as_os_str()]);
    assert_eq!(code, 0, "{from_rlp}");
    let datadir = dir.join("data");
    for datadir in [None, Some(&datadir)] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--genesis".as_ref(), genesis_path.as_os_str()];
        if let Some(d) = datadir {
            args.push("--datadir".as_ref());
            args.push(d.as_os_str());
        }
        args.push(era.as_os_str());
        let (code, from_era) = import(&args);
        assert_eq!(code, 0, "{from_era}");
        for field in ["head_number", "head_hash", "state_root"] {
            assert_eq!(from_era[field], from_rlp[field], "{field} (datadir {datadir:?})");
        }
    }

    // One byte of the stored accumulator changed (the entry before the block index): the
    // archive is refused before any block, and the datadir keeps its head.
    let mut damaged = std::fs::read(&era).unwrap();
    let count = u64::from_le_bytes(damaged[damaged.len() - 8..].try_into().unwrap()) as usize;
    let index_len = 8 + 16 + 8 * count;
    let accumulator_data = damaged.len() - index_len - 32;
    damaged[accumulator_data] ^= 1;
    let bad = dir.join("damaged.era1");
    std::fs::write(&bad, damaged).unwrap();
    let fresh = dir.join("fresh");
    let (code, summary) = import(&[
        "--genesis".as_ref(),
        genesis_path.as_os_str(),
        "--datadir".as_ref(),
        fresh.as_os_str(),
        bad.as_os_str(),
    ]);
    assert_eq!(code, 1, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("not a valid era1 archive") && error.contains("accumulator"), "{error}");
    assert_eq!(summary["blocks_verified"], 0, "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}
