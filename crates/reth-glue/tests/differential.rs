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

mod support;

use alloy_consensus::ReceiptEnvelope;
use alloy_evm::{
    block::{BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory},
    EthEvmFactory, EvmFactory,
};
use revm::database::{states::bundle_state::BundleRetention, State};
use velarium_chainspec::ChainSpec;
use velarium_executor::{evm_env, BlockOutput, RecoveredTx};
use velarium_reth_glue::ParallelConfig;
use velarium_state::InMemoryState;

use support::{
    execute, fixtures, mainnet_block, Block, BlockChecker, EthFactory, FailingState, ParFactory,
    StepCounter,
};

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

/// The reference factory and the parallel variants checked against it.
struct Factories {
    eth: EthFactory,
    parallel: Vec<(String, ParFactory, Pattern)>,
}

impl Factories {
    fn new(spec: &ChainSpec, threads: &[usize]) -> Self {
        let eth = support::eth_factory(spec);
        let par = |config| ParFactory::from_eth(eth.clone(), config);
        let mut parallel = vec![(
            "per-transaction".to_string(),
            // The default settings, with Block-STM on whatever this machine's cores.
            par(ParallelConfig { block_stm: true, ..ParallelConfig::default() }),
            Pattern::PerTransaction,
        )];
        for &threads in threads {
            parallel.push((
                format!("whole block, Block-STM, {threads} threads"),
                par(ParallelConfig::new(threads, 0)),
                Pattern::WholeBlock,
            ));
        }
        Self { eth, parallel }
    }
}

impl BlockChecker for Factories {
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

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn eest_fixtures_match_eth_factory() {
    if let Some(dir) = fixtures("blockchain_tests") {
        support::check_fixture_dir(&dir, 0, 1, |spec| Factories::new(spec, &[2]));
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn legacy_fixtures_match_eth_factory_first_half() {
    if let Some(dir) = fixtures("BlockchainTests") {
        support::check_fixture_dir(&dir, 0, 2, |spec| Factories::new(spec, &[2]));
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn legacy_fixtures_match_eth_factory_second_half() {
    if let Some(dir) = fixtures("BlockchainTests") {
        support::check_fixture_dir(&dir, 1, 2, |spec| Factories::new(spec, &[2]));
    }
}

/// A whole block dominated by a contract that Block-STM ran as a chain goes to the sequential
/// executor next time (counted), with the reference's output, as `velarium_executor::Engine`
/// does; with the threshold 0 Block-STM runs it anyway.
#[test]
fn a_contract_learned_to_chain_runs_its_next_blocks_sequentially() {
    // A seed of its own: no other test of this process teaches the engine about this block.
    let workload = velarium_workloads::reads_beneficiary(0x5eed_09e7, 1000);
    let block = Block::workload(&workload);
    let env = evm_env(&workload.spec, block.header);
    let eth = support::eth_factory(&workload.spec);
    let reference = execute(&workload.state, &env, |evm| {
        drive(eth.create_executor(evm, block.ctx()), Pattern::WholeBlock, block.txs)
    })
    .expect("the reference executes the block");
    let factory = ParFactory::from_eth(eth.clone(), ParallelConfig::new(2, 24));
    let forced = ParFactory::from_eth(eth, ParallelConfig::new(2, 0));
    let run = |factory: &ParFactory| {
        let got = execute(&workload.state, &env, |evm| {
            drive(factory.create_executor(evm, block.ctx()), Pattern::WholeBlock, block.txs)
        })
        .expect("the block executes");
        velarium_replay::compare_outputs_exactly(&got, &reference).expect("the reference's output");
        factory.metrics().snapshot()
    };
    // Every call reads the beneficiary's balance: a chain, given both workers at once (a busy
    // machine may not give a run that, so it gets ten tries); the block after the first run
    // that chained goes to the sequential executor.
    let mut block_stm_runs = 0;
    loop {
        let before = factory.metrics().snapshot();
        let after = run(&factory);
        if after.learned_chain_blocks == before.learned_chain_blocks + 1 {
            assert_eq!(after.sequential_blocks, before.sequential_blocks + 1, "{after:?}");
            assert_eq!(after.parallel_blocks, before.parallel_blocks, "{after:?}");
            break;
        }
        assert_eq!(after.parallel_blocks, before.parallel_blocks + 1, "{after:?}");
        block_stm_runs += 1;
        assert!(block_stm_runs <= 10, "reads_beneficiary never ran as a chain");
    }
    assert!(block_stm_runs >= 1, "a block went to the sequential executor before any ran");
    // Forced: Block-STM, whatever was learned.
    let before = forced.metrics().snapshot();
    let after = run(&forced);
    assert_eq!(after.parallel_blocks, before.parallel_blocks + 1, "{after:?}");
    assert_eq!(after.learned_chain_blocks, before.learned_chain_blocks, "{after:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn mainnet_blocks_match_eth_factory() {
    let Some(dir) = fixtures("mainnet-blocks") else { return };
    let spec = velarium_replay::mainnet_spec();
    let factories = Factories::new(&spec, &[1, 2, 4]);
    let default_threshold = ParFactory::from_eth(
        factories.eth.clone(),
        ParallelConfig { threads: 2, block_stm: true, ..ParallelConfig::default() },
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

/// Generated blocks of ERC-20 transfers to one hot receiver (with sweeps from it and
/// `balanceOf` queries among them): Block-STM credits the receiver's balance slot without
/// reading it, and each transaction's diff, rebuilt on the node's `State` as it is committed,
/// gives the reference's receipts, result and bundle.
#[test]
fn hot_receiver_credits_match_eth_factory() {
    for workload in
        [velarium_workloads::erc20_deposits(3, 300), velarium_workloads::erc20_hot_receiver(1, 200)]
    {
        let factories = Factories::new(&workload.spec, &[2, 4]);
        let block = Block::workload(&workload);
        factories
            .check(&workload.state, &workload.spec, block)
            .unwrap_or_else(|e| panic!("{}: {e}", workload.name))
            .unwrap_or_else(|e| panic!("{}: reference failed: {e}", workload.name));
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
    let parallel = ParFactory::from_eth(factories.eth, ParallelConfig::new(2, 0));
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

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn state_read_failure_is_an_error_not_a_panic() {
    let Some(block) = mainnet_block(30) else { return };
    let spec = velarium_replay::mainnet_spec();
    let parallel = ParFactory::from_eth(Factories::new(&spec, &[]).eth, ParallelConfig::new(2, 0));
    let input = Block::mainnet(&block, &block.transactions);
    // The recipient of a transaction in the middle of the block cannot be read.
    let broken = alloy_consensus::Transaction::to(block.transactions[15].inner()).unwrap();
    let env = evm_env(&spec, &block.header);
    let parent = FailingState::account(&block.state, broken);
    let err = execute(&parent, &env, |evm| {
        drive(parallel.create_executor(evm, input.ctx()), Pattern::WholeBlock, input.txs)
    })
    .unwrap_err();
    assert!(err.contains("disk error"), "{err}");
}
