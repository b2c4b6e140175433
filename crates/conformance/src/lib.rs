//! Runner for Ethereum's blockchain conformance fixtures.
//!
//! Each case builds its genesis from `pre`, imports every block through the full pipeline of
//! `velarium-chain` (decode, consensus checks, execution with the chosen engine, verification of
//! every header commitment including the state root), and then checks the expected head
//! (`lastblockhash`) and post-state (`postState` or `postStateHash`). Blocks marked
//! `expectException` must be rejected and leave the chain unchanged.
//!
//! A block marked `expectException` passes only if it is rejected for a reason that is the
//! block's (a decode, consensus, transaction or block-validation rule, see
//! [`is_block_rejection`]); a fault of the engine, of the state database or an internal error
//! is a failure. Under the parallel engine a block rejected during or after execution is also
//! run on the sequential oracle, which must reject it with the same error; and a case during
//! which the parallel engine faulted (and fell back to the oracle, see
//! [`velarium_executor::engine_faults`]) fails.
//!
//! Cases that cannot run are listed with their reason in the skip file
//! (`tests/conformance-skips.txt`) and counted as skipped; a wrong result is always a failure,
//! and so is a fixture file without cases.
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
use velarium_chain::{rlp::decode_block, Blockchain, EthBlock, ImportError, Imported};
use velarium_chainspec::{ChainSpec, ChainSpecError};
use velarium_executor::{engine_faults, panic_message, Engine, ExecutionError};
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

/// A failed case, as the summary lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The fixture file.
    pub file: String,
    /// The case name (`<file>` when the file itself could not be run).
    pub name: String,
    /// The network.
    pub network: String,
    /// Why it failed.
    pub reason: String,
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
    /// Every failed case with its reason, in file and case order.
    pub failures: Vec<Failure>,
}

impl Summary {
    /// Totals over `results`.
    pub fn of(results: &[CaseResult]) -> Self {
        let mut total = Totals::default();
        let mut by_network: BTreeMap<String, Totals> = BTreeMap::new();
        let mut failures = Vec::new();
        for r in results {
            total.add(&r.outcome);
            by_network.entry(r.network.clone()).or_default().add(&r.outcome);
            if let Outcome::Failed(reason) = &r.outcome {
                failures.push(Failure {
                    file: r.file.clone(),
                    name: r.name.clone(),
                    network: r.network.clone(),
                    reason: reason.clone(),
                });
            }
        }
        Self {
            cases: total.cases,
            passed: total.passed,
            failed: total.failed,
            skipped: total.skipped,
            by_network,
            failures,
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

/// Runs every case of one fixture file. An unreadable file, or one without cases, is one failed
/// case named `<file>`.
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
    if cases.is_empty() {
        return failed(String::from("no test cases"));
    }
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
///
/// A case during which the parallel engine faulted fails, whatever its result: the engine fell
/// back to the oracle, so the result says nothing about the engine. The fault counter is
/// process-wide, so with several cases running at once (`run_files` with `jobs > 1`) a fault
/// also fails the cases that ran alongside the faulting one (never a false pass).
pub fn run_case(case: &Case, engine: Engine) -> Outcome {
    let faults_before = engine_faults();
    let outcome = match try_run_case(case, engine) {
        Ok(()) => Outcome::Passed,
        Err(CaseError::Skip(reason)) => Outcome::Skipped(reason),
        Err(CaseError::Fail(reason)) => Outcome::Failed(reason),
    };
    with_engine_faults(outcome, engine_faults().saturating_sub(faults_before))
}

/// A case's outcome given the engine faults counted while it ran.
fn with_engine_faults(outcome: Outcome, faults: u64) -> Outcome {
    if faults == 0 {
        return outcome;
    }
    let fault = format!(
        "engine fault: the parallel engine faulted {faults} time(s) while this case ran and fell \
         back to the oracle (see the warnings on standard error)"
    );
    match outcome {
        Outcome::Failed(reason) => Outcome::Failed(format!("{reason}; {fault}")),
        Outcome::Passed | Outcome::Skipped(_) => Outcome::Failed(fault),
    }
}

/// Whether a failed import is the block's fault: it breaks a decode, consensus, transaction or
/// block-validation rule, so rejecting it is the right answer for a block marked
/// `expectException`. A fault of the engine, a failed state read or an internal error of the
/// executor is not: the block may well be valid.
pub fn is_block_rejection(err: &ImportError) -> bool {
    match err {
        ImportError::UnknownParent(_)
        | ImportError::AlreadyKnown(_)
        | ImportError::Consensus(_)
        | ImportError::PostExecution(_) => true,
        ImportError::Execution(e) => match e {
            // alloy-evm's validation errors (invalid transaction, gas above the block's, failed
            // system call, ...), as opposed to its internal ones (a database error, a fatal
            // EVM error).
            ExecutionError::Block(e) => e.as_validation().is_some(),
            ExecutionError::InvalidSignature { .. } | ExecutionError::SystemContractEmpty(_) => {
                true
            }
            ExecutionError::StateRead(_) | ExecutionError::Engine(_) => false,
        },
    }
}

/// Whether the engine used for a rejected block matters: rejections during or after execution.
const fn depends_on_engine(err: &ImportError) -> bool {
    matches!(err, ImportError::Execution(_) | ImportError::PostExecution(_))
}

/// Why a block was not imported.
#[derive(Debug)]
enum BlockError {
    /// Its RLP does not decode.
    Decode(String),
    /// The chain rejected it.
    Import(ImportError),
}

impl std::fmt::Display for BlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "RLP: {e}"),
            Self::Import(e) => e.fmt(f),
        }
    }
}

/// Checks the import result of block `i` against its `expectException`.
fn check_block(
    i: usize,
    expected: Option<&str>,
    result: &Result<Imported, BlockError>,
) -> Result<(), String> {
    match (expected, result) {
        (None, Ok(_)) => Ok(()),
        (None, Err(e)) => Err(format!("block {i} rejected: {e}")),
        (Some(expected), Ok(imported)) => {
            Err(format!("block {i} ({}) imported but must be rejected: {expected}", imported.hash))
        }
        (Some(_), Err(BlockError::Decode(_))) => Ok(()),
        (Some(_), Err(BlockError::Import(e))) if is_block_rejection(e) => Ok(()),
        (Some(expected), Err(BlockError::Import(e))) => Err(format!(
            "block {i} must be rejected ({expected}) but failed for a reason that is not the \
             block's: {e}"
        )),
    }
}

/// Compares the engine's and the oracle's import results of block `i`: both imported, or both
/// rejected with the same error.
fn same_as_oracle(
    i: usize,
    engine: &Result<Imported, ImportError>,
    oracle: &Result<Imported, ImportError>,
) -> Result<(), String> {
    match (engine, oracle) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(e), Err(o)) if e.to_string() == o.to_string() => Ok(()),
        (Err(e), Err(o)) => {
            Err(format!("block {i}: the engine rejects it with `{e}`, the oracle with `{o}`"))
        }
        (Err(e), Ok(_)) => {
            Err(format!("block {i}: the engine rejects it ({e}), the oracle imports it"))
        }
        (Ok(_), Err(o)) => {
            Err(format!("block {i}: the engine imports it, the oracle rejects it ({o})"))
        }
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
    let parallel = matches!(engine, Engine::Parallel { .. });
    // Under the parallel engine, the oracle's chain: started at the first block rejected during
    // or after execution (with the blocks imported so far replayed on it; a failed import leaves
    // a chain unchanged, so both chains then hold the same blocks), and fed every block after.
    let mut oracle: Option<Blockchain> = None;
    let mut imported: Vec<(usize, EthBlock)> = Vec::new();
    for (i, block) in case.blocks.iter().enumerate() {
        let decoded = match decode_block(&block.rlp) {
            Ok(decoded) => decoded,
            Err(e) => {
                let result = Err(BlockError::Decode(e.to_string()));
                check_block(i, block.expect_exception.as_deref(), &result)?;
                continue;
            }
        };
        let result = chain.import_block(&decoded);
        if parallel {
            if oracle.is_none() && result.as_ref().is_err_and(depends_on_engine) {
                oracle = Some(oracle_chain(case, &imported)?);
            }
            if let Some(oracle) = &mut oracle {
                same_as_oracle(i, &result, &oracle.import_block(&decoded))?;
            } else if result.is_ok() {
                imported.push((i, decoded));
            }
        }
        check_block(i, block.expect_exception.as_deref(), &result.map_err(BlockError::Import))?;
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

/// A chain on the sequential oracle holding `blocks` (which the engine imported; each with its
/// index in the case).
fn oracle_chain(case: &Case, blocks: &[(usize, EthBlock)]) -> Result<Blockchain, CaseError> {
    let PreparedCase { spec, state, genesis } = try_prepare_case(case)?;
    let mut oracle = Blockchain::new(spec, genesis.header, state, Engine::Sequential);
    for (i, block) in blocks {
        oracle.import_block(block).map_err(|e| {
            format!("block {i}: the engine imports it, the oracle rejects it ({e})")
        })?;
    }
    Ok(oracle)
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;
    use velarium_chain::PostExecutionError;
    use velarium_executor::EngineFault;

    fn import_err(e: ExecutionError) -> Result<Imported, BlockError> {
        Err(BlockError::Import(ImportError::Execution(e)))
    }

    fn scratch_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir()
            .join(format!("velarium-conformance-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn only_the_blocks_fault_counts_as_the_expected_rejection() {
        let expected = Some("TransactionException.NONCE_MISMATCH_TOO_LOW");
        // The block's own fault: fine.
        let decode = Err(BlockError::Decode("unexpected end".into()));
        assert_eq!(check_block(0, expected, &decode), Ok(()));
        let root =
            PostExecutionError::StateRoot { expected: B256::ZERO, got: B256::repeat_byte(1) };
        let post = Err(BlockError::Import(ImportError::PostExecution(root)));
        assert_eq!(check_block(0, expected, &post), Ok(()));
        let parent = Err(BlockError::Import(ImportError::UnknownParent(B256::ZERO)));
        assert_eq!(check_block(0, expected, &parent), Ok(()));
        let signature = import_err(ExecutionError::InvalidSignature { index: 3 });
        assert_eq!(check_block(0, expected, &signature), Ok(()));
        let empty = import_err(ExecutionError::SystemContractEmpty(Default::default()));
        assert_eq!(check_block(0, expected, &empty), Ok(()));
        // Not the block's fault: a failure even though a rejection was expected.
        for not_the_block in [
            import_err(ExecutionError::StateRead("disk on fire".into())),
            import_err(ExecutionError::Engine(EngineFault::Halted)),
            import_err(ExecutionError::Engine(EngineFault::WorkerPanic("boom".into()))),
        ] {
            let err = check_block(2, expected, &not_the_block).unwrap_err();
            assert!(err.contains("block 2 must be rejected"), "{err}");
            assert!(err.contains("not the block's"), "{err}");
        }
        // And no rejection at all when none is expected.
        assert!(check_block(1, None, &decode).unwrap_err().contains("block 1 rejected: RLP"));
    }

    #[test]
    fn engine_and_oracle_must_reject_alike() {
        let unknown = |b: u8| Err(ImportError::UnknownParent(B256::repeat_byte(b)));
        assert_eq!(same_as_oracle(0, &unknown(1), &unknown(1)), Ok(()));
        let err = same_as_oracle(4, &unknown(1), &unknown(2)).unwrap_err();
        assert!(err.starts_with("block 4: the engine rejects it with"), "{err}");
        let state_read = Err(ImportError::Execution(ExecutionError::StateRead("x".into())));
        assert!(same_as_oracle(0, &state_read, &unknown(1)).is_err());
    }

    #[test]
    fn a_case_with_engine_faults_fails() {
        assert_eq!(with_engine_faults(Outcome::Passed, 0), Outcome::Passed);
        let Outcome::Failed(reason) = with_engine_faults(Outcome::Passed, 2) else {
            panic!("a fault must fail the case")
        };
        assert!(reason.starts_with("engine fault"), "{reason}");
        assert!(reason.contains("2 time(s)"), "{reason}");
        assert!(matches!(with_engine_faults(Outcome::Skipped("x".into()), 1), Outcome::Failed(_)));
        let Outcome::Failed(reason) = with_engine_faults(Outcome::Failed("head".into()), 1) else {
            panic!("still failed")
        };
        assert!(reason.starts_with("head; engine fault"), "{reason}");
    }

    #[test]
    fn a_file_without_cases_is_a_failure() {
        let path = scratch_file("empty.json", "{}");
        for engine in [Engine::Sequential, Engine::Parallel { threads: 2, min_txs: 0 }] {
            let results = run_file(&path, engine, &SkipList::default());
            assert_eq!(results.len(), 1, "{results:?}");
            assert_eq!(results[0].name, "<file>");
            assert_eq!(results[0].outcome, Outcome::Failed("no test cases".into()));
            let summary = Summary::of(&results);
            assert_eq!((summary.cases, summary.failed), (1, 1));
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_summary_names_every_failure() {
        let result = |name: &str, outcome: Outcome| CaseResult {
            file: "dir/f.json".into(),
            name: name.into(),
            network: "Cancun".into(),
            outcome,
        };
        let results = [
            result("a", Outcome::Passed),
            result("b", Outcome::Failed("head differs".into())),
            result("c", Outcome::Skipped("slow".into())),
            result("d", Outcome::Failed("post state".into())),
        ];
        let summary = Summary::of(&results);
        assert_eq!((summary.passed, summary.failed, summary.skipped), (1, 2, 1));
        let json = serde_json::to_value(&summary).unwrap();
        let failures = json["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 2);
        assert_eq!(
            failures[0],
            serde_json::json!({
                "file": "dir/f.json", "name": "b", "network": "Cancun", "reason": "head differs"
            })
        );
        assert_eq!(failures[1]["name"], "d");
    }
}
