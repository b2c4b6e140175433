//! Differential tests: `ParallelBlockExecutorFactory` against alloy-evm's
//! `EthBlockExecutorFactory` (what reth 2.5.1 runs), driven the two ways reth drives an executor:
//!
//! * per transaction: `apply_pre_execution_changes`, `execute_transaction` for each transaction
//!   (checking after each call what reth reads: `receipts()` grew by one and the returned gas is
//!   that receipt's gas), then `apply_post_execution_changes`;
//! * whole block: `execute_block` with every transaction, through Block-STM (threshold 0).
//!
//! Each run executes on a revm `State` with bundle updates, then `merge_transitions` and
//! `take_bundle` as reth does; the receipts, the `BlockExecutionResult` and the `BundleState` must
//! equal the reference's. Blocks: every valid block of both conformance fixture sets and every
//! mainnet block of `../shared/fixtures/mainnet-blocks`.

use alloy_consensus::{Header, ReceiptEnvelope};
use alloy_eips::eip4895::Withdrawal;
use alloy_evm::{
    block::{BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory},
    eth::{receipt_builder::AlloyReceiptBuilder, EthBlockExecutionCtx, EthBlockExecutorFactory},
    EthEvm, EthEvmFactory, EvmEnv, EvmFactory,
};
use alloy_primitives::{map::HashMap, B256};
use revm::{
    database::{states::bundle_state::BundleRetention, State, WrapDatabaseRef},
    inspector::NoOpInspector,
    DatabaseRef,
};
use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    sync::Arc,
};
use velarium_chainspec::ChainSpec;
use velarium_conformance::{fixture::Case, prepare_case, Outcome};
use velarium_executor::{evm_env, recover_senders, BlockOutput, RecoveredTx};
use velarium_reth_glue::{ParallelBlockExecutorFactory, ParallelConfig};
use velarium_state::InMemoryState;

type EthFactory = EthBlockExecutorFactory<AlloyReceiptBuilder, ChainSpec, EthEvmFactory>;
type ParFactory = ParallelBlockExecutorFactory<AlloyReceiptBuilder, ChainSpec, EthEvmFactory>;
type TestEvm<'s, P> = EthEvm<
    &'s mut State<WrapDatabaseRef<P>>,
    NoOpInspector,
    alloy_evm::precompiles::PrecompilesMap,
>;

/// The parts of a block execution needs.
#[derive(Debug, Clone, Copy)]
struct Block<'a> {
    header: &'a Header,
    txs: &'a [RecoveredTx],
    ommers: &'a [Header],
    withdrawals: Option<&'a [Withdrawal]>,
}

impl<'a> Block<'a> {
    /// A mainnet fixture block, with `txs` in place of its transactions.
    fn mainnet(block: &'a velarium_replay::MainnetBlock, txs: &'a [RecoveredTx]) -> Self {
        Self {
            header: &block.header,
            txs,
            ommers: &block.ommers,
            withdrawals: block.withdrawals.as_deref(),
        }
    }

    fn ctx(&self) -> EthBlockExecutionCtx<'a> {
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

/// How the executor is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    PerTransaction,
    WholeBlock,
}

/// Drives `executor` over `txs` the way reth does (see the module docs).
fn drive<X>(
    mut executor: X,
    pattern: Pattern,
    txs: &[RecoveredTx],
) -> Result<BlockExecutionResult<ReceiptEnvelope>, BlockExecutionError>
where
    X: BlockExecutor<Transaction = alloy_consensus::TxEnvelope, Receipt = ReceiptEnvelope>,
{
    match pattern {
        Pattern::WholeBlock => executor.execute_block(txs),
        Pattern::PerTransaction => {
            executor.apply_pre_execution_changes()?;
            for (i, tx) in txs.iter().enumerate() {
                let gas = executor.execute_transaction(tx)?;
                let receipts = executor.receipts();
                assert_eq!(receipts.len(), i + 1, "receipts() after transaction {i}");
                let before = i.checked_sub(1).map_or(0, |p| receipts[p].cumulative_gas_used());
                assert_eq!(
                    receipts[i].cumulative_gas_used() - before,
                    gas.tx_gas_used(),
                    "gas returned for transaction {i}"
                );
            }
            executor.apply_post_execution_changes()
        }
    }
}

/// Runs `run` on a fresh `State` over `parent` and takes the bundle as reth does.
fn execute<P>(
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
    let mut state = State::builder().with_database_ref(parent).with_bundle_update().build();
    let result = run(EthEvmFactory::default().create_evm(&mut state, env.clone()))
        .map_err(|e| e.to_string())?;
    state.merge_transitions(BundleRetention::Reverts);
    Ok(BlockOutput::new(result, state.take_bundle()))
}

/// The reference factory and the parallel variants checked against it.
struct Factories {
    eth: EthFactory,
    parallel: Vec<(String, ParFactory, Pattern)>,
}

impl Factories {
    fn new(spec: &ChainSpec, threads: &[usize]) -> Self {
        let eth =
            EthFactory::new(AlloyReceiptBuilder::default(), spec.clone(), EthEvmFactory::default());
        let par = |config| ParFactory::from_eth(eth.clone(), config);
        let mut parallel = vec![(
            "per-transaction".to_string(),
            par(ParallelConfig::default()),
            Pattern::PerTransaction,
        )];
        for &threads in threads {
            parallel.push((
                format!("whole block, Block-STM, {threads} threads"),
                par(ParallelConfig { threads, min_txs: 0 }),
                Pattern::WholeBlock,
            ));
        }
        Self { eth, parallel }
    }

    /// Runs `block` through every factory; returns the reference output.
    fn check(
        &self,
        parent: &InMemoryState,
        spec: &ChainSpec,
        block: Block<'_>,
    ) -> Result<Result<BlockOutput, String>, String> {
        let env = evm_env(spec, block.header);
        let ctx = block.ctx();
        let reference = execute(parent, &env, |evm| {
            drive(self.eth.create_executor(evm, ctx.clone()), Pattern::PerTransaction, block.txs)
        });
        for (label, factory, pattern) in &self.parallel {
            let before = factory.metrics().snapshot().parallel_blocks;
            let got = execute(parent, &env, |evm| {
                drive(factory.create_executor(evm, ctx.clone()), *pattern, block.txs)
            });
            // Whole blocks with transactions really went through Block-STM (threshold 0).
            let through_block_stm = factory.metrics().snapshot().parallel_blocks > before;
            let expected = *pattern == Pattern::WholeBlock && !block.txs.is_empty() && got.is_ok();
            if through_block_stm != expected {
                return Err(format!("{label}: Block-STM used: {through_block_stm}"));
            }
            match (&reference, &got) {
                (Ok(want), Ok(got)) => velarium_replay::compare_outputs_exactly(got, want)
                    .map_err(|diff| format!("{label}: {diff}"))?,
                (Err(want), Err(got)) if want == got => {}
                _ => return Err(format!("{label}: got {got:?}, reference {reference:?}")),
            }
        }
        Ok(reference)
    }
}

/// The extracted fixtures under `target/fixtures/<name>`, if present.
fn fixtures(name: &str) -> Option<PathBuf> {
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

/// Checks every valid block of one fixture case; returns how many were compared.
fn check_case(case: &Case) -> Result<usize, String> {
    let prepared = match prepare_case(case) {
        Ok(prepared) => prepared,
        Err(Outcome::Skipped(_)) => return Ok(0),
        Err(other) => return Err(format!("cannot prepare: {other:?}")),
    };
    let spec = prepared.spec;
    let factories = Factories::new(&spec, &[2]);
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
            factories.check(&parent, &spec, input).map_err(|e| format!("block {i}: {e}"))?;
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
fn check_fixture_dir(dir: &Path, part: usize, parts: usize) {
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
            match check_case(&case) {
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

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn eest_fixtures_match_eth_factory() {
    if let Some(dir) = fixtures("blockchain_tests") {
        check_fixture_dir(&dir, 0, 1);
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn legacy_fixtures_match_eth_factory_first_half() {
    if let Some(dir) = fixtures("BlockchainTests") {
        check_fixture_dir(&dir, 0, 2);
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn legacy_fixtures_match_eth_factory_second_half() {
    if let Some(dir) = fixtures("BlockchainTests") {
        check_fixture_dir(&dir, 1, 2);
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn mainnet_blocks_match_eth_factory() {
    let Some(dir) = fixtures("mainnet-blocks") else { return };
    let spec = velarium_replay::mainnet_spec();
    let factories = Factories::new(&spec, &[1, 2, 4]);
    let default_threshold = ParFactory::from_eth(
        factories.eth.clone(),
        ParallelConfig { threads: 2, ..ParallelConfig::default() },
    );
    let dirs = velarium_replay::list_block_dirs(&dir);
    assert!(!dirs.is_empty(), "no mainnet blocks under {}", dir.display());
    for block_dir in &dirs {
        let block = velarium_replay::load_block(block_dir).expect("loading block");
        let input = Block::mainnet(&block, &block.transactions);
        let reference = factories
            .check(&block.state, &spec, input)
            .unwrap_or_else(|e| panic!("block {}: {e}", block.number))
            .unwrap_or_else(|e| panic!("block {}: reference failed: {e}", block.number));
        // The default threshold too: small blocks go sequential, the rest through Block-STM.
        let env = evm_env(&spec, &block.header);
        let got = execute(&block.state, &env, |evm| {
            drive(
                default_threshold.create_executor(evm, input.ctx()),
                Pattern::WholeBlock,
                input.txs,
            )
        })
        .unwrap_or_else(|e| panic!("block {}: {e}", block.number));
        velarium_replay::compare_outputs_exactly(&got, &reference)
            .unwrap_or_else(|e| panic!("block {} (default threshold): {e}", block.number));
    }
    let metrics = default_threshold.metrics().snapshot();
    assert_eq!(metrics.parallel_blocks + metrics.sequential_blocks, dirs.len() as u64);
    assert!(metrics.parallel_blocks > 0 && metrics.sequential_blocks > 0, "{metrics:?}");
}

/// The first mainnet block with at least `min` transactions.
fn mainnet_block(min: usize) -> Option<velarium_replay::MainnetBlock> {
    let dir = fixtures("mainnet-blocks")?;
    velarium_replay::list_block_dirs(&dir)
        .iter()
        .map(|d| velarium_replay::load_block(d).expect("loading block"))
        .find(|b| b.transactions.len() >= min)
}

/// Counts interpreter steps.
#[derive(Debug, Default)]
struct StepCounter(u64);

impl<CTX> revm::Inspector<CTX> for StepCounter {
    fn step(&mut self, _: &mut revm::interpreter::Interpreter, _: &mut CTX) {
        self.0 += 1;
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn inspected_blocks_run_sequentially_and_match() {
    let Some(block) = mainnet_block(50) else { return };
    let spec = velarium_replay::mainnet_spec();
    let factories = Factories::new(&spec, &[]);
    let input = Block::mainnet(&block, &block.transactions);
    let reference = factories.check(&block.state, &spec, input).unwrap().unwrap();
    let parallel = ParFactory::from_eth(factories.eth, ParallelConfig { threads: 2, min_txs: 0 });
    let env = evm_env(&spec, &block.header);
    let mut state = State::builder().with_database_ref(&block.state).with_bundle_update().build();
    let mut steps = StepCounter::default();
    let evm = EthEvmFactory::default().create_evm_with_inspector(&mut state, env, &mut steps);
    let result = parallel.create_executor(evm, input.ctx()).execute_block(input.txs).unwrap();
    state.merge_transitions(BundleRetention::Reverts);
    let got = BlockOutput::new(result, state.take_bundle());
    velarium_replay::compare_outputs_exactly(&got, &reference).unwrap();
    assert!(steps.0 > 0, "the inspector saw every step");
    let metrics = parallel.metrics().snapshot();
    assert_eq!((metrics.parallel_blocks, metrics.sequential_blocks), (0, 1), "{metrics:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn invalid_transaction_fails_like_eth_factory() {
    let Some(block) = mainnet_block(30) else { return };
    let spec = velarium_replay::mainnet_spec();
    let factories = Factories::new(&spec, &[1, 2, 4]);
    // A replayed transaction: its nonce is too low the second time.
    let mut txs = block.transactions.clone();
    txs.insert(1, txs[0].clone());
    let input = Block::mainnet(&block, &txs);
    let reference = factories.check(&block.state, &spec, input).unwrap();
    let err = reference.expect_err("a replayed transaction must fail the block");
    assert!(err.contains("nonce"), "{err}");
}

/// A parent state whose reads of one account fail.
#[derive(Debug)]
struct FailingState<'a> {
    inner: &'a InMemoryState,
    broken: alloy_primitives::Address,
}

#[derive(Debug, thiserror::Error)]
#[error("disk error reading {0}")]
struct DiskError(alloy_primitives::Address);
impl revm::database::DBErrorMarker for DiskError {}

impl velarium_state::StorageProbe for FailingState<'_> {
    fn storage_only_accounts(&self) -> &alloy_primitives::map::AddressSet {
        self.inner.storage_only_accounts()
    }
}

impl DatabaseRef for FailingState<'_> {
    type Error = DiskError;
    fn basic_ref(
        &self,
        address: alloy_primitives::Address,
    ) -> Result<Option<revm::state::AccountInfo>, DiskError> {
        if address == self.broken {
            return Err(DiskError(address));
        }
        Ok(self.inner.basic_ref(address).unwrap())
    }
    fn code_by_hash_ref(&self, hash: B256) -> Result<revm::bytecode::Bytecode, DiskError> {
        Ok(self.inner.code_by_hash_ref(hash).unwrap())
    }
    fn storage_ref(
        &self,
        address: alloy_primitives::Address,
        index: alloy_primitives::U256,
    ) -> Result<alloy_primitives::U256, DiskError> {
        Ok(self.inner.storage_ref(address, index).unwrap())
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, DiskError> {
        Ok(self.inner.block_hash_ref(number).unwrap())
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn state_read_failure_is_an_error_not_a_panic() {
    let Some(block) = mainnet_block(30) else { return };
    let spec = velarium_replay::mainnet_spec();
    let parallel = ParFactory::from_eth(
        Factories::new(&spec, &[]).eth,
        ParallelConfig { threads: 2, min_txs: 0 },
    );
    let input = Block::mainnet(&block, &block.transactions);
    // The recipient of a transaction in the middle of the block cannot be read.
    let broken = alloy_consensus::Transaction::to(block.transactions[15].inner()).unwrap();
    let env = evm_env(&spec, &block.header);
    let parent = FailingState { inner: &block.state, broken };
    let err = execute(&parent, &env, |evm| {
        drive(parallel.create_executor(evm, input.ctx()), Pattern::WholeBlock, input.txs)
    })
    .unwrap_err();
    assert!(err.contains("disk error"), "{err}");
}
