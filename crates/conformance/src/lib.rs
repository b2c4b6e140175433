//! Runner for Ethereum's blockchain conformance fixtures.
//!
//! Each case builds its genesis from `pre`, imports every block through the full pipeline of
//! `velarium-chain` (decode, consensus checks, execution with the chosen engine, verification of
//! every header commitment including the state root), and then checks the expected head
//! (`lastblockhash`) and post-state (`postState` or `postStateHash`). Blocks marked
//! `expectException` must be rejected and leave the chain unchanged.
//!
//! Cases that cannot run are listed with their reason in the skip file
//! (`tests/conformance-skips.txt`) and counted as skipped; a wrong result is always a failure.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod fixture;
pub mod skips;

use alloy_primitives::U256;
use fixture::{Case, FixtureAccount};
use serde::Serialize;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};
use velarium_chain::{rlp::decode_block, Blockchain};
use velarium_chainspec::{ChainSpec, ChainSpecError};
use velarium_executor::{panic_message, Engine};
use velarium_state::InMemoryState;

pub use skips::SkipList;

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    /// Every check passed.
    Passed,
    /// A check failed; the reason says which.
    Failed(String),
    /// Not run; the reason says why.
    Skipped(String),
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The fixture file.
    pub file: String,
    /// The case name.
    pub name: String,
    /// The network.
    pub network: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Per-network totals.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Cases seen.
    pub cases: usize,
    /// Cases passed.
    pub passed: usize,
    /// Cases failed.
    pub failed: usize,
    /// Cases skipped.
    pub skipped: usize,
}

impl Totals {
    fn add(&mut self, outcome: &Outcome) {
        self.cases += 1;
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }
}

/// The summary of a run, in the shape `velarium blocktest --json` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Cases seen.
    pub cases: usize,
    /// Cases passed.
    pub passed: usize,
    /// Cases failed.
    pub failed: usize,
    /// Cases skipped.
    pub skipped: usize,
    /// Totals per network.
    pub by_network: BTreeMap<String, Totals>,
}

impl Summary {
    /// Totals over `results`.
    pub fn of(results: &[CaseResult]) -> Self {
        let mut total = Totals::default();
        let mut by_network: BTreeMap<String, Totals> = BTreeMap::new();
        for r in results {
            total.add(&r.outcome);
            by_network.entry(r.network.clone()).or_default().add(&r.outcome);
        }
        Self {
            cases: total.cases,
            passed: total.passed,
            failed: total.failed,
            skipped: total.skipped,
            by_network,
        }
    }
}

/// Collects the `.json` fixture files under `path` (a file or a directory), sorted.
pub fn collect_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(out);
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let p = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs every case of the given files on `jobs` threads (files are the unit of work).
pub fn run_files(
    files: &[PathBuf],
    engine: Engine,
    skips: &SkipList,
    jobs: usize,
) -> Vec<CaseResult> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let file_results = run_file(file, engine, skips);
                results.lock().unwrap_or_else(|e| e.into_inner()).extend(file_results);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
    results
}

/// Runs every case of one fixture file. An unreadable file is one failed case named after it.
pub fn run_file(path: &Path, engine: Engine, skips: &SkipList) -> Vec<CaseResult> {
    let file = path.display().to_string();
    let failed = |reason: String| {
        vec![CaseResult {
            file: file.clone(),
            name: String::from("<file>"),
            network: String::from("<unknown>"),
            outcome: Outcome::Failed(reason),
        }]
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return failed(format!("cannot read: {e}")),
    };
    let cases: BTreeMap<String, serde_json::Value> = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => return failed(format!("not a fixture file: {e}")),
    };
    drop(text);
    cases
        .into_iter()
        .map(|(name, value)| {
            let network =
                value.get("network").and_then(|n| n.as_str()).unwrap_or("<unknown>").to_string();
            let outcome = if let Some(reason) = skips.reason(&file, &name, &network) {
                Outcome::Skipped(reason.to_string())
            } else {
                match serde_json::from_value::<Case>(value) {
                    Err(e) => Outcome::Failed(format!("malformed case: {e}")),
                    Ok(case) => {
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            run_case(&case, engine)
                        })) {
                            Ok(outcome) => outcome,
                            Err(panic) => {
                                Outcome::Failed(format!("panic: {}", panic_message(&panic)))
                            }
                        }
                    }
                }
            };
            CaseResult { file: file.clone(), name, network, outcome }
        })
        .collect()
}

/// Builds a state from a fixture alloc.
fn state_from_alloc(
    alloc: &BTreeMap<alloy_primitives::Address, FixtureAccount>,
) -> Result<InMemoryState, String> {
    let mut state = InMemoryState::new();
    for (address, account) in alloc {
        let nonce = u64::try_from(account.nonce)
            .map_err(|_| format!("nonce of {address} overflows u64"))?;
        let code = (!account.code.is_empty())
            .then(|| revm::bytecode::Bytecode::new_raw(account.code.clone()));
        let storage =
            account.storage.iter().filter(|(_, v)| !v.is_zero()).map(|(k, v)| (*k, *v)).collect();
        state.insert_account(*address, account.balance, nonce, code, storage);
    }
    Ok(state)
}

/// Runs one case.
pub fn run_case(case: &Case, engine: Engine) -> Outcome {
    match try_run_case(case, engine) {
        Ok(()) => Outcome::Passed,
        Err(CaseError::Skip(reason)) => Outcome::Skipped(reason),
        Err(CaseError::Fail(reason)) => Outcome::Failed(reason),
    }
}

enum CaseError {
    Skip(String),
    Fail(String),
}

impl From<String> for CaseError {
    fn from(s: String) -> Self {
        Self::Fail(s)
    }
}

/// A case's chain spec, pre-state and genesis block, checked against the fixture's genesis
/// header (hash and state root).
#[derive(Debug)]
pub struct PreparedCase {
    /// The chain spec of the case's network.
    pub spec: ChainSpec,
    /// The pre-state (`pre`).
    pub state: InMemoryState,
    /// The genesis block.
    pub genesis: velarium_chain::EthBlock,
}

/// Prepares a case for execution; `Err` is the case's outcome (skipped: an unsupported network).
pub fn prepare_case(case: &Case) -> Result<PreparedCase, Outcome> {
    try_prepare_case(case).map_err(|e| match e {
        CaseError::Skip(reason) => Outcome::Skipped(reason),
        CaseError::Fail(reason) => Outcome::Failed(reason),
    })
}

fn try_prepare_case(case: &Case) -> Result<PreparedCase, CaseError> {
    let chain_id = case
        .config
        .as_ref()
        .and_then(|c| c.chainid)
        .map_or(Ok(1), u64::try_from)
        .map_err(|_| "chain id overflows u64".to_string())?;
    let mut spec = match ChainSpec::from_network(&case.network, chain_id) {
        Ok(spec) => spec,
        Err(e @ ChainSpecError::Unsupported(..)) => return Err(CaseError::Skip(e.to_string())),
        Err(e) => return Err(CaseError::Fail(e.to_string())),
    };
    if let Some(schedule) = case.config.as_ref().and_then(|c| c.blob_schedule.as_ref()) {
        spec.apply_fixture_blob_schedule(schedule).map_err(|e| e.to_string())?;
    }

    let mut state = state_from_alloc(&case.pre)?;
    let genesis = decode_block(&case.genesis_rlp).map_err(|e| format!("genesis RLP: {e}"))?;
    let genesis_hash = genesis.header.hash_slow();
    if genesis_hash != case.genesis_block_header.hash {
        return Err(format!(
            "genesis hash {genesis_hash} != fixture {}",
            case.genesis_block_header.hash
        )
        .into());
    }
    let root = state.state_root();
    if root != genesis.header.state_root {
        return Err(
            format!("genesis state root {root} != header {}", genesis.header.state_root).into()
        );
    }
    Ok(PreparedCase { spec, state, genesis })
}

fn try_run_case(case: &Case, engine: Engine) -> Result<(), CaseError> {
    let PreparedCase { spec, state, genesis } = try_prepare_case(case)?;
    let mut chain = Blockchain::new(spec, genesis.header, state, engine);
    for (i, block) in case.blocks.iter().enumerate() {
        let result = decode_block(&block.rlp)
            .map_err(|e| format!("RLP: {e}"))
            .and_then(|b| chain.import_block(&b).map_err(|e| e.to_string()));
        match (&block.expect_exception, result) {
            (None, Ok(_)) | (Some(_), Err(_)) => {}
            (None, Err(e)) => return Err(format!("block {i} rejected: {e}").into()),
            (Some(expected), Ok(imported)) => {
                return Err(format!(
                    "block {i} ({}) imported but must be rejected: {expected}",
                    imported.hash
                )
                .into())
            }
        }
    }

    if chain.head_hash() != case.lastblockhash {
        return Err(
            format!("head {} != lastblockhash {}", chain.head_hash(), case.lastblockhash).into()
        );
    }
    let head_state = chain.head_state();
    if let Some(post) = &case.post_state {
        compare_post_state(head_state, post)?;
    } else if let Some(expected) = case.post_state_hash {
        let got = head_state.compute_state_root();
        if got != expected {
            return Err(format!("post state root {got} != postStateHash {expected}").into());
        }
    }
    Ok(())
}

/// Compares the head state with the fixture's `postState`, naming the first difference.
fn compare_post_state(
    state: &InMemoryState,
    post: &BTreeMap<alloy_primitives::Address, FixtureAccount>,
) -> Result<(), String> {
    for (address, expected) in post {
        let Some(account) = state.account(address) else {
            return Err(format!("post state: account {address} missing"));
        };
        if account.info.balance != expected.balance {
            return Err(format!(
                "post state: {address} balance {} != {}",
                account.info.balance, expected.balance
            ));
        }
        if U256::from(account.info.nonce) != expected.nonce {
            return Err(format!(
                "post state: {address} nonce {} != {}",
                account.info.nonce, expected.nonce
            ));
        }
        let code =
            state.code(&account.info.code_hash).map(|c| c.original_bytes()).unwrap_or_default();
        if code != expected.code {
            return Err(format!("post state: {address} code differs"));
        }
        for (slot, value) in &expected.storage {
            let got = account.storage.get(slot).copied().unwrap_or_default();
            if got != *value {
                return Err(format!(
                    "post state: {address} slot {slot:#x} = {got:#x}, expected {value:#x}"
                ));
            }
        }
        let extra = account.storage.iter().find(|(k, _)| !expected.storage.contains_key(k));
        if let Some((slot, value)) = extra {
            return Err(format!(
                "post state: {address} has unexpected slot {slot:#x} = {value:#x}"
            ));
        }
    }
    if state.len() != post.len() {
        let extra = state.accounts().map(|(a, _)| a).find(|a| !post.contains_key(*a));
        return Err(format!(
            "post state: {} accounts, expected {}; first extra: {extra:?}",
            state.len(),
            post.len()
        ));
    }
    Ok(())
}
