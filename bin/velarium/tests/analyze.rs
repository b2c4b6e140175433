//! `velarium analyze` end to end on real mainnet blocks: the JSON matches its documented
//! schema, the Markdown opens with the executive summary, the HTML fetches nothing.

use std::{path::PathBuf, process::Command};

mod support {
    pub(crate) mod json_schema;
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn dossier_of_two_mainnet_blocks() {
    let blocks = root().join("target/fixtures/mainnet-blocks");
    let out = std::env::temp_dir().join(format!("velarium-analyze-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let (json, md, html) = (out.join("d.json"), out.join("d.md"), out.join("d.html"));
    let run = Command::new(env!("CARGO_BIN_EXE_velarium"))
        .current_dir(root())
        .args(["analyze", "--threads", "1,2", "--reps", "1", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .arg("--html")
        .arg(&html)
        .arg(blocks.join("1796867"))
        .arg(blocks.join("5283152"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    let value = read_valid_dossier(&json);
    assert_eq!(value["schema_version"], 1);
    assert_eq!(value["range"]["blocks"], 2);
    assert_eq!(value["range"]["first_block"], 1_796_867);
    let blocks = value["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["txs"], 49);
    for block in blocks {
        let bound = block["critical_path"]["bound"].as_f64().unwrap();
        let txs = block["txs"].as_u64().unwrap() as usize;
        assert_eq!(block["levels"].as_array().unwrap().len(), txs);
        for sim in block["simulated"].as_array().unwrap() {
            let workers = sim["workers"].as_f64().unwrap();
            for key in ["list", "cp_first"] {
                assert!(sim[key].as_f64().unwrap() <= workers.min(bound) + 1e-9, "{sim}");
            }
        }
        let measured = block["measured"].as_array().unwrap();
        assert_eq!(measured.len(), 2);
        assert!(measured.iter().all(|m| m["outputs_equal"] == true));
        // Every critical-path link is one of the block's edges.
        let edges = block["edges"].as_array().unwrap();
        for link in block["critical_path"]["links"].as_array().unwrap() {
            assert!(edges.contains(&serde_json::json!([link["from"], link["to"]])), "{link}");
        }
    }

    let md = std::fs::read_to_string(&md).unwrap();
    let summary = md.find("## Executive summary").expect("summary");
    assert!(summary < md.find("## Blocks").unwrap());
    assert!(md.contains("blocks 1796867–5283152 (2 blocks"), "{md}");
    assert!(md.contains("Measured at 2 threads"));
    assert!(md.contains("Hottest locations"));

    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("<svg"));
    for remote in ["src=\"http", "href=\"http", "src='http", "href='http", "url(http", "@import"] {
        assert!(!html.contains(remote), "the page fetches {remote}");
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"));
    std::fs::remove_dir_all(&out).unwrap();
}

fn devp2p() -> PathBuf {
    root().join("../shared/fixtures/chains/geth-devp2p")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("velarium-analyze-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn dossier_of_a_chain_file_range() {
    let out = scratch("chain");
    let json = out.join("d.json");
    let run = Command::new(env!("CARGO_BIN_EXE_velarium"))
        .current_dir(root())
        .args(["analyze", "--reps", "1", "--from", "1", "--to", "120", "--genesis"])
        .arg(devp2p().join("genesis.json"))
        .arg("--json")
        .arg(&json)
        .arg(devp2p().join("chain.rlp"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // Every block is imported and verified, also those after --to.
    assert!(stderr.contains("imported and verified up to #600"), "{stderr}");

    let bytes = std::fs::read(devp2p().join("chain.rlp")).unwrap();
    let chain = velarium_chain::rlp::decode_blocks(&bytes, "chain.rlp").unwrap();
    let expected: Vec<(u64, usize, u64)> = chain
        .iter()
        .filter(|b| (1..=120).contains(&b.header.number) && !b.body.transactions.is_empty())
        .map(|b| (b.header.number, b.body.transactions.len(), b.header.gas_used))
        .collect();
    assert!(expected.len() > 50, "the fixture has busy blocks in 1-120");

    let value = read_valid_dossier(&json);
    let range = &value["range"];
    assert_eq!(range["blocks"], expected.len());
    assert_eq!(range["first_block"], expected[0].0);
    assert_eq!(range["last_block"], expected.last().unwrap().0);
    assert_eq!(range["txs"], expected.iter().map(|e| e.1).sum::<usize>());
    assert_eq!(range["gas"], expected.iter().map(|e| e.2).sum::<u64>());
    let blocks = value["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), expected.len());
    for (block, (number, txs, _)) in blocks.iter().zip(&expected) {
        assert_eq!(block["number"], *number);
        assert_eq!(block["txs"], *txs);
        let measured = block["measured"].as_array().unwrap();
        assert_eq!(measured.len(), 1);
        assert!(measured.iter().all(|m| m["outputs_equal"] == true), "{block}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// Runs analyze on a chain, expecting exit code 1 and returning stderr.
fn failing_chain_analysis(genesis: &std::path::Path, chain: &std::path::Path) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_velarium"))
        .current_dir(root())
        .args(["analyze", "--reps", "1", "--from", "1", "--to", "3", "--genesis"])
        .arg(genesis)
        .arg("--json")
        .arg(std::env::temp_dir().join(format!("velarium-unwritten-{}.json", std::process::id())))
        .arg(chain)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_wrong_genesis_or_a_damaged_chain_fails_naming_the_block() {
    let out = scratch("bad");
    // Another genesis: one more account, so another state root and hash.
    let mut genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(devp2p().join("genesis.json")).unwrap())
            .unwrap();
    genesis["alloc"]["0x00000000000000000000000000000000000000aa"] =
        serde_json::json!({"balance": "0x1"});
    let wrong = out.join("genesis.json");
    std::fs::write(&wrong, genesis.to_string()).unwrap();
    let stderr = failing_chain_analysis(&wrong, &devp2p().join("chain.rlp"));
    assert!(stderr.contains("error: block 1 (0x"), "{stderr}");
    assert!(stderr.contains("wrong --genesis"), "{stderr}");

    // Block 40 (after --to: imported, not analysed) claims another state root.
    let bytes = std::fs::read(devp2p().join("chain.rlp")).unwrap();
    let mut chain = velarium_chain::rlp::decode_blocks(&bytes, "chain.rlp").unwrap();
    let damaged = chain.iter_mut().find(|b| b.header.number == 40).unwrap();
    damaged.header.state_root.0[0] ^= 1;
    let mut encoded = Vec::new();
    for block in &chain[..40] {
        alloy_rlp::Encodable::encode(block, &mut encoded);
    }
    let path = out.join("chain.rlp");
    std::fs::write(&path, encoded).unwrap();
    let stderr = failing_chain_analysis(&devp2p().join("genesis.json"), &path);
    assert!(stderr.contains("error: importing block 40 (0x"), "{stderr}");
    assert!(stderr.contains("state root"), "{stderr}");

    // A truncated file: the block after the last decoded one is named.
    let mut encoded = Vec::new();
    for block in &chain[..10] {
        alloy_rlp::Encodable::encode(block, &mut encoded);
    }
    encoded.truncate(encoded.len() - 5);
    std::fs::write(&path, encoded).unwrap();
    let stderr = failing_chain_analysis(&devp2p().join("genesis.json"), &path);
    assert!(stderr.contains("(presumably block 10,"), "{stderr}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// The dossier JSON at `path`, checked against `docs/dossier-schema.json`.
fn read_valid_dossier(path: &std::path::Path) -> serde_json::Value {
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/dossier-schema.json")).unwrap(),
    )
    .unwrap();
    let errors = support::json_schema::validate(&schema, &value);
    assert!(errors.is_empty(), "{errors:#?}");
    value
}
