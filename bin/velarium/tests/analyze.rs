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

    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/dossier-schema.json")).unwrap(),
    )
    .unwrap();
    let errors = support::json_schema::validate(&schema, &value);
    assert!(errors.is_empty(), "{errors:#?}");
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
