//! What the reth-glue integration tests share: the block inputs, running an executor on a revm
//! `State` as reth does, walking the conformance fixtures, the mainnet blocks, and databases
//! that fail or panic.
// Each test binary uses part of it.
#![allow(dead_code, unreachable_pub)]

use alloy_consensus::{Header, ReceiptEnvelope};
use alloy_eips::eip4895::Withdrawal;
use alloy_evm::{
    block::{BlockExecutionError, BlockExecutionResult},
    eth::{receipt_builder::AlloyReceiptBuilder, EthBlockExecutionCtx, EthBlockExecutorFactory},
    EthEvm, EthEvmFactory, EvmEnv, EvmFactory,
};
use alloy_primitives::{map::HashMap, Address, B256, U256};
use revm::{
    database::{states::bundle_state::BundleRetention, State},
    inspector::NoOpInspector,
    state::{AccountInfo, AccountStatus, EvmState},
    DatabaseRef, OnStateHook,
};
use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};
use velarium_chainspec::ChainSpec;
use velarium_conformance::{fixture::Case, prepare_case, Outcome};
use velarium_executor::{recover_senders, BlockOutput, RecoveredTx};
use velarium_reth_glue::ParallelBlockExecutorFactory;
use velarium_state::InMemoryState;

/// alloy-evm's factory: what reth 2.5.1 runs, the reference.
pub type EthFactory = EthBlockExecutorFactory<AlloyReceiptBuilder, ChainSpec, EthEvmFactory>;
/// Ours.
pub type ParFactory = ParallelBlockExecutorFactory<AlloyReceiptBuilder, ChainSpec, EthEvmFactory>;
/// The EVM the executors get, over a `State` of the parent `P`.
pub type TestEvm<'s, P> = EthEvm<
    &'s mut State<revm::database::WrapDatabaseRef<P>>,
    NoOpInspector,
    alloy_evm::precompiles::PrecompilesMap,
>;

/// alloy-evm's factory for `spec`.
pub fn eth_factory(spec: &ChainSpec) -> EthFactory {
    EthFactory::new(AlloyReceiptBuilder::default(), spec.clone(), EthEvmFactory::default())
}

/// The parts of a block execution needs.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    pub header: &'a Header,
    pub txs: &'a [RecoveredTx],
    pub ommers: &'a [Header],
    pub withdrawals: Option<&'a [Withdrawal]>,
}

impl<'a> Block<'a> {
    /// A mainnet fixture block, with `txs` in place of its transactions.
    pub fn mainnet(block: &'a velarium_replay::MainnetBlock, txs: &'a [RecoveredTx]) -> Self {
        Self {
            header: &block.header,
            txs,
            ommers: &block.ommers,
            withdrawals: block.withdrawals.as_deref(),
        }
    }

    /// A generated block (no ommers, no withdrawals).
    pub fn workload(workload: &'a velarium_workloads::Workload) -> Self {
        Self {
            header: &workload.header,
            txs: &workload.transactions,
            ommers: &[],
            withdrawals: Some(&[]),
        }
    }

    /// The execution context reth builds for it (`context_for_block`/`context_for_payload`).
    pub fn ctx(&self) -> EthBlockExecutionCtx<'a> {
        EthBlockExecutionCtx {
            parent_hash: self.header.parent_hash,
            parent_beacon_block_root: self.header.parent_beacon_block_root,
            ommers: self.ommers,
            withdrawals: self.withdrawals.map(Cow::Borrowed),
            extra_data: self.header.extra_data.clone(),
            tx_count_hint: Some(self.txs.len()),
            slot_number: None,
        }
    }
}

/// Runs `run` on a fresh `State` over `parent` (with `hook` installed on it, as reth's
/// newPayload validator does before pre-execution) and takes the bundle as reth does.
pub fn execute_hooked<P>(
    parent: P,
    env: &EvmEnv,
    hook: Option<Box<dyn OnStateHook>>,
    run: impl for<'s> FnOnce(
        TestEvm<'s, P>,
    ) -> Result<BlockExecutionResult<ReceiptEnvelope>, BlockExecutionError>,
) -> Result<BlockOutput, String>
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    let mut state = State::builder().with_database_ref(parent).with_bundle_update().build();
    state.set_state_hook(hook);
    let result = run(EthEvmFactory::default().create_evm(&mut state, env.clone()))
        .map_err(|e| e.to_string())?;
    state.merge_transitions(BundleRetention::Reverts);
    Ok(BlockOutput::new(result, state.take_bundle()))
}

/// [`execute_hooked`] without a hook.
pub fn execute<P>(
    parent: P,
    env: &EvmEnv,
    run: impl for<'s> FnOnce(
        TestEvm<'s, P>,
    ) -> Result<BlockExecutionResult<ReceiptEnvelope>, BlockExecutionError>,
) -> Result<BlockOutput, String>
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    execute_hooked(parent, env, None, run)
}

/// A state diff as the state hook's consumers (the sparse-trie task, the bundle) read it:
/// per account (sorted), its info, `original_info`, status flags, and per storage slot (sorted)
/// its original and present value.
pub type Canon = Vec<(Address, AccountInfo, AccountInfo, AccountStatus, Vec<(U256, U256, U256)>)>;

pub fn canon(state: &EvmState) -> Canon {
    let mut accounts: Canon = state
        .iter()
        .map(|(address, account)| {
            let mut slots: Vec<_> = account
                .storage
                .iter()
                .map(|(slot, value)| (*slot, value.original_value, value.present_value))
                .collect();
            slots.sort_unstable();
            (*address, account.info.clone(), account.original_info(), account.status, slots)
        })
        .collect();
    accounts.sort_by_key(|a| a.0);
    accounts
}

/// Everything a driven executor showed its caller: a record per call (or per candidate), every
/// state-hook update, and the block's output.
#[derive(Debug)]
pub struct Observed<C> {
    pub calls: Vec<C>,
    pub hook: Vec<Canon>,
    pub output: Result<BlockOutput, String>,
}

/// The first difference between two runs, if any: a call record, a state-hook update, the
/// output.
pub fn compare<C: PartialEq + std::fmt::Debug>(
    got: &Observed<C>,
    want: &Observed<C>,
) -> Result<(), String> {
    if let Some(i) =
        (0..got.calls.len().max(want.calls.len())).find(|&i| got.calls.get(i) != want.calls.get(i))
    {
        return Err(format!(
            "call {i} differs:\n got  {:?}\n want {:?}",
            got.calls.get(i),
            want.calls.get(i)
        ));
    }
    if let Some(i) =
        (0..got.hook.len().max(want.hook.len())).find(|&i| got.hook.get(i) != want.hook.get(i))
    {
        return Err(format!(
            "state-hook update {i} of {} (want {}) differs:\n got  {:?}\n want {:?}",
            got.hook.len(),
            want.hook.len(),
            got.hook.get(i),
            want.hook.get(i)
        ));
    }
    match (&got.output, &want.output) {
        (Ok(g), Ok(w)) => velarium_replay::compare_outputs_exactly(g, w),
        (Err(g), Err(w)) if g == w => Ok(()),
        (g, w) => Err(format!("got {g:?}, want {w:?}")),
    }
}

/// Runs `run` (which creates and drives an executor) on a fresh `State` over `parent` with a
/// recording state hook.
pub fn observe<P, C>(
    parent: P,
    env: &EvmEnv,
    run: impl for<'s> FnOnce(
        TestEvm<'s, P>,
        &mut Vec<C>,
    ) -> Result<BlockExecutionResult<ReceiptEnvelope>, BlockExecutionError>,
) -> Observed<C>
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    let updates = Arc::new(Mutex::new(Vec::new()));
    let sink = updates.clone();
    let hook = Box::new(move |state: EvmState| sink.lock().unwrap().push(canon(&state)));
    let mut calls = Vec::new();
    let output = execute_hooked(parent, env, Some(hook), |evm| run(evm, &mut calls));
    let hook = std::mem::take(&mut *updates.lock().unwrap());
    Observed { calls, hook, output }
}

/// A timing test's setting from the environment variable `name`, else `default`.
pub fn timing_setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(default)
}

/// The median of timings.
pub fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The extracted fixtures under `target/fixtures/<name>`, if present.
pub fn fixtures(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures").join(name);
    if !dir.is_dir() {
        // The test script extracts them and sets this: then their absence is a failure.
        assert!(
            std::env::var_os("VELARIUM_REQUIRE_FIXTURES").is_none(),
            "{} is absent",
            dir.display()
        );
        eprintln!("skipping: {} is absent (bash tests/run-all.sh extracts it)", dir.display());
        return None;
    }
    Some(dir)
}

/// Checks one block against the reference on its parent state.
pub trait BlockChecker {
    /// `Err`: the check failed. `Ok`: the reference's output (or its error, for a block the
    /// reference rejects), which the walk applies to get the next parent state.
    fn check(
        &self,
        parent: &InMemoryState,
        spec: &ChainSpec,
        block: Block<'_>,
    ) -> Result<Result<BlockOutput, String>, String>;
}

/// Checks every valid block of one fixture case with the checker `make` builds for its spec;
/// returns how many were compared.
pub fn check_case<C: BlockChecker>(
    case: &Case,
    make: &impl Fn(&ChainSpec) -> C,
) -> Result<usize, String> {
    let prepared = match prepare_case(case) {
        Ok(prepared) => prepared,
        Err(Outcome::Skipped(_)) => return Ok(0),
        Err(other) => return Err(format!("cannot prepare: {other:?}")),
    };
    let spec = prepared.spec;
    let checker = make(&spec);
    let genesis_hash = prepared.genesis.header.hash_slow();
    let mut genesis_state = prepared.state;
    genesis_state.insert_block_hash(0, genesis_hash);
    let mut blocks = Vec::new();
    for (i, fixture_block) in case.blocks.iter().enumerate() {
        if fixture_block.expect_exception.is_none() {
            let block = velarium_chain::rlp::decode_block(&fixture_block.rlp)
                .map_err(|e| format!("valid block {i} does not decode: {e}"))?;
            blocks.push((i, block));
        }
    }
    // A parent state is cloned only when a fork still needs it; a chain hands it on.
    let mut children: HashMap<B256, usize> = HashMap::default();
    for (_, block) in &blocks {
        *children.entry(block.header.parent_hash).or_default() += 1;
    }
    let mut states: HashMap<B256, Arc<InMemoryState>> = HashMap::default();
    states.insert(genesis_hash, Arc::new(genesis_state));
    let mut checked = 0;
    for (i, block) in blocks {
        let parent_hash = block.header.parent_hash;
        let parent = states
            .get(&parent_hash)
            .ok_or_else(|| format!("valid block {i}: unknown parent"))?
            .clone();
        let txs =
            recover_senders(&block.body.transactions).map_err(|e| format!("block {i}: {e}"))?;
        let input = Block {
            header: &block.header,
            txs: &txs,
            ommers: &block.body.ommers,
            withdrawals: block.body.withdrawals.as_ref().map(|w| w.as_slice()),
        };
        let reference =
            checker.check(&parent, &spec, input).map_err(|e| format!("block {i}: {e}"))?;
        checked += 1;
        let remaining = children.get_mut(&parent_hash).map_or(0, |n| {
            *n -= 1;
            *n
        });
        if remaining == 0 {
            states.remove(&parent_hash);
        }
        if let Ok(output) = reference {
            let hash = block.header.hash_slow();
            let mut next = Arc::try_unwrap(parent).unwrap_or_else(|shared| (*shared).clone());
            next.apply_bundle(&output.bundle);
            next.insert_block_hash(block.header.number, hash);
            states.insert(hash, Arc::new(next));
        }
    }
    Ok(checked)
}

/// Checks every case of every fixture file under `dir` whose index is `part` modulo `parts`
/// (the suites are split so the test runner can spread them over the cores).
pub fn check_fixture_dir<C: BlockChecker>(
    dir: &Path,
    part: usize,
    parts: usize,
    make: impl Fn(&ChainSpec) -> C,
) {
    let files = velarium_conformance::collect_files(dir).expect("listing fixtures");
    assert!(!files.is_empty(), "no fixture files under {}", dir.display());
    let files: Vec<_> = files.into_iter().skip(part).step_by(parts).collect();
    let (mut blocks, mut cases, mut failures) = (0usize, 0usize, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).expect("reading fixture");
        let file_cases: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&text).expect("fixture JSON");
        for (name, value) in file_cases {
            let Ok(case) = serde_json::from_value::<Case>(value) else { continue };
            cases += 1;
            match check_case(&case, &make) {
                Ok(n) => blocks += n,
                Err(e) => failures.push(format!("{} {name}: {e}", file.display())),
            }
        }
    }
    eprintln!("{} files, {cases} cases, {blocks} valid blocks compared", files.len());
    assert!(
        failures.is_empty(),
        "{} cases differ, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(blocks > 1000, "only {blocks} blocks compared");
}

/// Every mainnet fixture block, in order (`None` without the fixtures).
pub fn mainnet_blocks() -> Option<Vec<velarium_replay::MainnetBlock>> {
    let dir = fixtures("mainnet-blocks")?;
    let dirs = velarium_replay::list_block_dirs(&dir);
    assert!(!dirs.is_empty(), "no mainnet blocks under {}", dir.display());
    Some(dirs.iter().map(|d| velarium_replay::load_block(d).expect("loading block")).collect())
}

/// The first mainnet block with at least `min` transactions.
pub fn mainnet_block(min: usize) -> Option<velarium_replay::MainnetBlock> {
    let dir = fixtures("mainnet-blocks")?;
    velarium_replay::list_block_dirs(&dir)
        .iter()
        .map(|d| velarium_replay::load_block(d).expect("loading block"))
        .find(|b| b.transactions.len() >= min)
}

/// Counts interpreter steps.
#[derive(Debug, Default)]
pub struct StepCounter(pub u64);

impl<CTX> revm::Inspector<CTX> for StepCounter {
    fn step(&mut self, _: &mut revm::interpreter::Interpreter, _: &mut CTX) {
        self.0 += 1;
    }
}

/// A parent state whose reads of one account fail, or of one account's storage fail (`slots`).
#[derive(Debug)]
pub struct FailingState<'a> {
    pub inner: &'a InMemoryState,
    pub broken: Address,
    /// Only the account's storage fails, not its account record.
    pub slots: bool,
}

impl<'a> FailingState<'a> {
    /// Reads of `broken`'s account fail.
    pub fn account(inner: &'a InMemoryState, broken: Address) -> Self {
        Self { inner, broken, slots: false }
    }

    /// Reads of `broken`'s storage fail.
    pub fn storage(inner: &'a InMemoryState, broken: Address) -> Self {
        Self { inner, broken, slots: true }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("disk error reading {0}")]
pub struct DiskError(Address);
impl revm::database::DBErrorMarker for DiskError {}

impl velarium_state::StorageProbe for FailingState<'_> {
    fn storage_only_accounts(&self) -> &alloy_primitives::map::AddressSet {
        self.inner.storage_only_accounts()
    }
}

impl DatabaseRef for FailingState<'_> {
    type Error = DiskError;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DiskError> {
        if address == self.broken && !self.slots {
            return Err(DiskError(address));
        }
        Ok(self.inner.basic_ref(address).unwrap())
    }
    fn code_by_hash_ref(&self, hash: B256) -> Result<revm::bytecode::Bytecode, DiskError> {
        Ok(self.inner.code_by_hash_ref(hash).unwrap())
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, DiskError> {
        if address == self.broken && self.slots {
            return Err(DiskError(address));
        }
        Ok(self.inner.storage_ref(address, index).unwrap())
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, DiskError> {
        Ok(self.inner.block_hash_ref(number).unwrap())
    }
}

/// A parent state whose first storage read of one account panics (a transient fault), then
/// reads normally.
#[derive(Debug)]
pub struct PanicOnce<'a> {
    pub inner: &'a InMemoryState,
    pub account: Address,
    pub armed: AtomicBool,
}

impl DatabaseRef for PanicOnce<'_> {
    type Error = velarium_state::StateError;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.inner.basic_ref(address)
    }
    fn code_by_hash_ref(&self, hash: B256) -> Result<revm::bytecode::Bytecode, Self::Error> {
        self.inner.code_by_hash_ref(hash)
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        if address == self.account && self.armed.swap(false, Ordering::SeqCst) {
            panic!("transient storage fault reading {address}");
        }
        self.inner.storage_ref(address, index)
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.inner.block_hash_ref(number)
    }
}
