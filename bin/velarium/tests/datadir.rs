//! `velarium import --datadir`: a persistent, resumable, crash-safe import. Kills at random
//! points, then a resume, give what an uninterrupted import gives; a bad block, a wrong
//! genesis, a block out of order or a damaged store fail with a clear error and leave the store
//! at its last verified block.

mod support {
    pub(crate) mod rng;
}

use alloy_rlp::Encodable;
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};
use support::rng::Rng;
use velarium_chain::rlp::blocks;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn chain_files(name: &str) -> (PathBuf, PathBuf) {
    let dir = shared().join("chains").join(name);
    (dir.join("genesis.json"), dir.join("chain.rlp"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("velarium-datadir-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `velarium import --json --datadir DIR --genesis G FILES...`; returns the exit code and
/// the JSON summary.
fn import(datadir: &Path, genesis: &Path, files: &[&Path]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_velarium"))
        .args(["import", "--json", "--datadir"])
        .arg(datadir)
        .arg("--genesis")
        .arg(genesis)
        .args(files)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("one JSON object on stdout ({e}): {stdout} {stderr}"));
    (out.status.code().unwrap_or(-1), summary, stderr)
}

/// The blocks of a chain file, re-encoded one by one (to cut, reorder and damage chains).
fn block_rlps(chain: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(chain).unwrap();
    blocks(&bytes, "chain")
        .map(|b| {
            let mut out = Vec::new();
            b.unwrap().encode(&mut out);
            out
        })
        .collect()
}

fn write_chain(path: &Path, blocks: &[&Vec<u8>]) {
    std::fs::write(path, blocks.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>())
        .unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn kills_at_random_points_then_a_resume_give_the_uninterrupted_result() {
    let (genesis, chain) = chain_files("geth-devp2p");
    let dir = scratch("kill");
    let (code, reference, stderr) = import(&dir.join("reference"), &genesis, &[&chain]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(reference["head_number"], 600);

    let datadir = dir.join("killed");
    let mut rng = Rng(0x5eed_0001);
    let mut heads = Vec::new();
    let mut kills = 0;
    while kills < 24 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_velarium"))
            .args(["import", "--progress", "0", "--datadir"])
            .arg(&datadir)
            .arg("--genesis")
            .arg(&genesis)
            .arg(&chain)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        // Anywhere from opening the store to the middle of the import.
        std::thread::sleep(Duration::from_millis(2 + rng.next() % 60));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked") && !stderr.contains("Error"), "{stderr}");
        // Every run that got as far as opening the store found a consistent head (its state
        // root is checked against the head's header on opening).
        if let Some(line) = stderr.lines().find(|l| l.starts_with("datadir ")) {
            let head: u64 =
                line.split('#').nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            heads.push(head);
        }
        if finished {
            break;
        }
    }
    assert!(kills >= 20, "only {kills} kills landed before the import finished");
    assert!(heads.windows(2).all(|w| w[0] <= w[1]), "the head went backwards: {heads:?}");
    let (code, resumed, stderr) = import(&datadir, &genesis, &[&chain]);
    assert_eq!(code, 0, "{stderr}");
    for field in ["head_number", "head_hash", "state_root"] {
        assert_eq!(resumed[field], reference[field], "{field}");
    }
    assert_eq!(
        resumed["skipped"].as_u64().unwrap() + resumed["blocks"].as_u64().unwrap(),
        600,
        "{resumed}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_bad_block_leaves_the_store_at_its_parent_and_a_rerun_resumes() {
    let (genesis, chain) = chain_files("geth-devp2p");
    let dir = scratch("bad-block");
    let datadir = dir.join("data");
    let rlps = block_rlps(&chain);
    // Block 40 with one byte of its state root changed (its hash changes too, so it is a
    // different block that claims to extend block 39).
    let bytes = std::fs::read(&chain).unwrap();
    let mut bad: Vec<_> = blocks(&bytes, "chain").map(Result::unwrap).collect();
    bad[39].header.state_root.0[0] ^= 1;
    let mut bad40 = Vec::new();
    bad[39].encode(&mut bad40);
    let cut = dir.join("bad.rlp");
    let mut first: Vec<&Vec<u8>> = rlps[..39].iter().collect();
    first.push(&bad40);
    write_chain(&cut, &first);
    let (code, summary, _) = import(&datadir, &genesis, &[&cut]);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["failed_block"], 40, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("block 40") && error.contains("state root"), "{error}");

    // The store is at block 39: the good chain resumes there.
    let (code, summary, stderr) = import(&datadir, &genesis, &[&chain]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["skipped"], 39, "{summary}");
    assert_eq!(summary["blocks"], 561, "{summary}");
    assert_eq!(summary["head_number"], 600);

    // Importing the same file again skips everything.
    let (code, summary, _) = import(&datadir, &genesis, &[&chain]);
    assert_eq!(code, 0);
    assert_eq!(summary["skipped"], 600, "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn out_of_order_blocks_a_wrong_genesis_and_a_damaged_store_are_clear_errors() {
    let (genesis, chain) = chain_files("geth-devp2p");
    let dir = scratch("errors");
    let datadir = dir.join("data");
    let rlps = block_rlps(&chain);
    // Blocks 1-5, then 7.
    let gap = dir.join("gap.rlp");
    let mut order: Vec<&Vec<u8>> = rlps[..5].iter().collect();
    order.push(&rlps[6]);
    write_chain(&gap, &order);
    let (code, summary, _) = import(&datadir, &genesis, &[&gap]);
    assert_eq!(code, 1, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("block 7") && error.contains("does not extend the head #5"), "{error}");
    assert_eq!(summary["blocks_verified"], 5);

    // Another chain's genesis on this datadir.
    let (other_genesis, other_chain) = chain_files("execution-apis");
    let (code, summary, _) = import(&datadir, &other_genesis, &[&other_chain]);
    assert_eq!(code, 1, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("holds a chain with genesis"), "{error}");

    // The store was not changed by either: it resumes at block 5.
    let (code, summary, stderr) = import(&datadir, &genesis, &[&chain]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["skipped"], 5, "{summary}");

    // A damaged database file.
    let file = datadir.join("velarium.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    for b in bytes.iter_mut().take(4096) {
        *b ^= 0xa5;
    }
    std::fs::write(&file, bytes).unwrap();
    let (code, summary, _) = import(&datadir, &genesis, &[&chain]);
    assert_eq!(code, 1, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("cannot open the store"), "{error}");

    // A datadir that is a file.
    let not_a_dir = dir.join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let (code, summary, _) = import(&not_a_dir, &genesis, &[&chain]);
    assert_eq!(code, 1, "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One HTTP GET of `/metrics`; the body.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// The value of an unlabelled sample in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Starts `velarium node` importing `chain` into `datadir` with metrics on a free port; returns
/// the process and the metrics address (from its first line; the rest of standard error is
/// drained in the background).
fn start_node(datadir: &Path, genesis: &Path, chain: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_velarium"))
        // Block-STM on every block, two workers, every 32nd block analysed (the default).
        .args(["node", "--metrics", "127.0.0.1:0", "--min-parallel-txs", "0", "--threads", "2"])
        .arg("--datadir")
        .arg(datadir)
        .arg("--genesis")
        .arg(genesis)
        .arg("--import")
        .arg(chain)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // The first log line: `... INFO velarium::node: serving metrics url=http://ADDR/metrics`.
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split_once("serving metrics url=http://")
        .and_then(|(_, a)| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// Scrapes `addr` until `velarium_head_block_number` is `head` (at most two minutes); the text.
fn scrape_until_head(addr: &str, head: f64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let text = scrape(addr);
        if sample(&text, "velarium_head_block_number") == Some(head) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "no head {head}: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn the_node_serves_its_import_as_prometheus_metrics_and_keeps_serving() {
    let (genesis, chain) = chain_files("geth-devp2p");
    let dir = scratch("node");
    let (mut child, addr) = start_node(&dir.join("data"), &genesis, &chain);
    let text = scrape_until_head(&addr, 600.0);
    assert_eq!(sample(&text, "velarium_transactions_total"), Some(603.0), "{text}");
    assert_eq!(sample(&text, "velarium_gas_total"), Some(121_816_101.0), "{text}");
    assert_eq!(sample(&text, "velarium_state_root_seconds_count"), Some(600.0), "{text}");
    assert!(text.contains("# TYPE velarium_block_execution_seconds histogram"), "{text}");
    // Blocks 32, 64, ... 576 were analysed beside their import; every block's workers were
    // timed.
    let bound = sample(&text, "velarium_critical_path_bound").expect("a bound");
    assert!(bound >= 1.0, "{text}");
    let speedup = sample(&text, "velarium_speedup").expect("a speedup");
    assert!(speedup > 0.0 && speedup.is_finite(), "{text}");
    let efficiency = sample(&text, "velarium_bound_efficiency").expect("an efficiency");
    assert!(efficiency > 0.0 && efficiency.is_finite(), "{text}");
    let utilisation = sample(&text, "velarium_worker_utilisation").expect("a utilisation");
    assert!((0.0..=1.0).contains(&utilisation), "{text}");
    // Still serving after the import.
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the node exited");
    assert_eq!(sample(&scrape(&addr), "velarium_head_block_number"), Some(600.0));
    // SIGTERM (`docker stop`) stops it at once, cleanly.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "SIGTERM did not stop the node");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    // Restarted on the full datadir, it reports the stored head although it imports nothing.
    let (mut child, addr) = start_node(&dir.join("data"), &genesis, &chain);
    let text = scrape_until_head(&addr, 600.0);
    assert_eq!(sample(&text, "velarium_transactions_total"), None, "{text}");
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_full_disk_is_a_clear_error_and_the_store_keeps_its_verified_head() {
    let (genesis, chain) = chain_files("geth-devp2p");
    let dir = scratch("full-disk");
    let (code, reference, stderr) = import(&dir.join("reference"), &genesis, &[&chain]);
    assert_eq!(code, 0, "{stderr}");
    // A 2 MiB file system: mounting one needs privileges this test may not have.
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "cannot mount a small tmpfs here (not root?): the full-disk case is not testable"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    let datadir = mnt.join("data");
    let (code, summary, _) = import(&datadir, &genesis, &[&chain]);
    assert_eq!(code, 1, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{error}");
    let failed = summary["failed_block"].as_u64().unwrap();
    assert!(error.contains(&format!("block {failed} ")), "{error}");
    assert_eq!(summary["blocks_verified"].as_u64().unwrap(), failed - 1, "{summary}");
    // The store holds exactly the blocks before the one that did not fit: moved to a disk with
    // room, it resumes there and reaches the uninterrupted result.
    let copy = dir.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(datadir.join("velarium.redb"), copy.join("velarium.redb")).unwrap();
    let unmounted = Command::new("umount").arg(&mnt).status().is_ok_and(|s| s.success());
    assert!(unmounted);
    let (code, resumed, stderr) = import(&copy, &genesis, &[&chain]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(resumed["skipped"].as_u64().unwrap(), failed - 1, "{resumed}");
    for field in ["head_number", "head_hash", "state_root"] {
        assert_eq!(resumed[field], reference[field], "{field}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
