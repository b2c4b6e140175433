//! newPayload-shaped tests: `ParallelBlockExecutorFactory` driven exactly as reth 2.5.1's
//! newPayload validator drives an executor, against alloy-evm's `EthBlockExecutorFactory`
//! driven the same way.
//!
//! Per block: the payload's plan is captured through the factory's [`PlanRegistry`] (several
//! threads fill its slots in a scrambled order, as reth's parallel converters do, while the
//! executor is already being created and driven); then `create_executor`, a recording state hook
//! installed on the `State`, `apply_pre_execution_changes`, `execute_transaction` per
//! transaction reading `receipts().len()` and `receipts().last()` after each call, `finish`,
//! `merge_transitions(Reverts)` and `take_bundle`. Everything must be identical: each call's gas,
//! the receipts seen after each call, every state-hook update (count, order, and content: each
//! account's info, `original_info`, status flags, and each storage slot's original and present
//! value), the `BlockExecutionResult` and the `BundleState`. The metrics must show that the
//! per-transaction Block-STM path was taken (or which fallback was, and why).

mod support;

use alloy_consensus::{ReceiptEnvelope, TxEnvelope};
use alloy_evm::{
    block::{
        BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory,
        CommitChanges, GasOutput, TxResult,
    },
    EthEvmFactory, EvmEnv, EvmFactory,
};
use alloy_primitives::Address;
use revm::{
    context::result::{ExecutionResult, HaltReason},
    database::{states::bundle_state::BundleRetention, State},
    state::EvmState,
    DatabaseRef,
};
use std::{
    sync::{atomic::AtomicBool, Arc, Mutex},
    time::Duration,
};
use velarium_chainspec::ChainSpec;
use velarium_executor::{evm_env, BlockOutput, RecoveredTx};
use velarium_reth_glue::{
    MetricsSnapshot, ParallelConfig, PayloadKey, PerTxFallback, PlanRegistry,
};
use velarium_state::InMemoryState;

use support::{
    canon, compare, fixtures, mainnet_block, observe, Block, BlockChecker, Canon, EthFactory,
    FailingState, PanicOnce, ParFactory, StepCounter,
};

/// What the caller saw from one call.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    /// Transaction index.
    index: usize,
    /// The call's return value (`None`: not committed).
    gas: Option<GasOutput>,
    /// `receipts().len()` after the call.
    receipts: usize,
    /// `receipts().last()` after the call.
    last: Option<ReceiptEnvelope>,
    /// The result a closure or `execute_transaction_without_commit` was given.
    result: Option<(ExecutionResult<HaltReason>, Canon)>,
}

/// How the caller executes one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `execute_transaction` (newPayload).
    Execute,
    /// `execute_transaction_with_commit_condition` answering `CommitChanges::No`, then
    /// `execute_transaction` of the same transaction.
    RefuseThenExecute,
    /// `execute_transaction_without_commit` then `commit_transaction`.
    Direct,
}

/// Drives `executor` over `txs` as reth's newPayload validator does (`step` may vary the calls
/// for the fallback tests), recording every call in `calls`.
fn drive<X>(
    mut executor: X,
    txs: &[RecoveredTx],
    step: &dyn Fn(usize) -> Step,
    calls: &mut Vec<Call>,
) -> Result<BlockExecutionResult<ReceiptEnvelope>, BlockExecutionError>
where
    X: BlockExecutor<Transaction = TxEnvelope, Receipt = ReceiptEnvelope>,
    X::Result: TxResult<HaltReason = HaltReason>,
{
    executor.apply_pre_execution_changes()?;
    let seen = |executor: &X, index, gas, result| Call {
        index,
        gas,
        receipts: executor.receipts().len(),
        last: executor.receipts().last().cloned(),
        result,
    };
    let observe =
        |result: &X::Result| (result.result().result.clone(), canon(&result.result().state));
    for (index, tx) in txs.iter().enumerate() {
        match step(index) {
            Step::Execute => {
                let gas = executor.execute_transaction(tx)?;
                calls.push(seen(&executor, index, Some(gas), None));
            }
            Step::RefuseThenExecute => {
                let mut given = None;
                let gas = executor.execute_transaction_with_commit_condition(tx, |result| {
                    given = Some(observe(result));
                    CommitChanges::No
                })?;
                assert!(gas.is_none(), "not committed");
                calls.push(seen(&executor, index, gas, given));
                let gas = executor.execute_transaction(tx)?;
                calls.push(seen(&executor, index, Some(gas), None));
            }
            Step::Direct => {
                let output = executor.execute_transaction_without_commit(tx)?;
                let given = Some(observe(&output));
                let gas = executor.commit_transaction(output);
                calls.push(seen(&executor, index, Some(gas), given));
            }
        }
    }
    executor.finish().map(|(_, result)| result)
}

/// Everything one run showed its caller.
type Observed = support::Observed<Call>;

/// The key reth's engine would give the payload of `block`.
fn payload_key(block: Block<'_>) -> PayloadKey {
    PayloadKey {
        parent_hash: block.header.parent_hash,
        number: block.header.number,
        timestamp: block.header.timestamp,
        beneficiary: block.header.beneficiary,
        tx_count: block.txs.len(),
    }
}

/// How the test's converters fill the plan.
#[derive(Debug, Clone, Copy, Default)]
struct Capture {
    /// The conversion of this transaction fails.
    fail_at: Option<usize>,
    /// This slot is never filled.
    leave_empty: Option<usize>,
}

/// Starts `txs`' plan for the payload `key` in `registry` and fills it from three threads in a
/// scrambled order, inside `scope`, as reth's converters do while the engine goes on to create
/// the executor.
fn capture<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    registry: &PlanRegistry,
    key: PayloadKey,
    txs: &'scope [RecoveredTx],
    how: Capture,
) {
    const THREADS: usize = 3;
    let plan = registry.begin(key);
    // A permutation of the indices: a stride coprime to the length.
    let n = txs.len();
    let stride =
        (1..=n.max(1)).rev().find(|s| gcd(*s, n.max(1)) == 1 && *s * 2 <= n + 1).unwrap_or(1);
    let order: Arc<Vec<usize>> =
        Arc::new((0..n).map(|k| (k * stride + n / 2) % n.max(1)).collect());
    for thread in 0..THREADS {
        let (plan, order) = (plan.clone(), order.clone());
        scope.spawn(move || {
            for &index in order.iter().skip(thread).step_by(THREADS) {
                if Some(index) == how.fail_at {
                    plan.fail(index);
                } else if Some(index) != how.leave_empty {
                    plan.record::<TxEnvelope, _>(index, &txs[index]);
                }
            }
        });
    }
}

const fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A factory running Block-STM on every planned block (threshold 0).
fn parallel(spec: &ChainSpec, threads: usize) -> ParFactory {
    ParFactory::from_eth(support::eth_factory(spec), ParallelConfig::new(threads, 0))
}

/// The reference: alloy-evm's factory driven the same way.
fn reference<P>(
    eth: &EthFactory,
    parent: P,
    env: &EvmEnv,
    block: Block<'_>,
    step: &dyn Fn(usize) -> Step,
) -> Observed
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    observe(parent, env, |evm, calls| {
        drive(eth.create_executor(evm, block.ctx()), block.txs, step, calls)
    })
}

/// Ours, with `plan_txs` captured as the payload's plan (`how`).
fn planned<P>(
    factory: &ParFactory,
    parent: P,
    env: &EvmEnv,
    block: Block<'_>,
    plan_txs: &[RecoveredTx],
    how: Capture,
    step: &dyn Fn(usize) -> Step,
) -> Observed
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    std::thread::scope(|scope| {
        capture(scope, factory.plans(), payload_key(block), plan_txs, how);
        observe(parent, env, |evm, calls| {
            drive(factory.create_executor(evm, block.ctx()), block.txs, step, calls)
        })
    })
}

const fn execute_all(_: usize) -> Step {
    Step::Execute
}

/// [`planned`] with the block's own transactions as the plan, filled as reth does, and every
/// transaction executed: what it showed, and the counters' change.
fn planned_plainly<P>(
    factory: &ParFactory,
    parent: P,
    env: &EvmEnv,
    block: Block<'_>,
) -> (Observed, MetricsSnapshot)
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    let mut got = None;
    let d = delta(factory, || {
        got =
            Some(planned(factory, parent, env, block, block.txs, Capture::default(), &execute_all));
    });
    (got.expect("ran"), d)
}

/// The counters' change over `run`.
fn delta(factory: &ParFactory, run: impl FnOnce()) -> MetricsSnapshot {
    let before = factory.metrics().snapshot();
    run();
    let after = factory.metrics().snapshot();
    let fallbacks = |s: &MetricsSnapshot| PerTxFallback::ALL.map(|r| s.fallbacks.get(r));
    let (b, a) = (fallbacks(&before), fallbacks(&after));
    let mut d = MetricsSnapshot {
        parallel_blocks: after.parallel_blocks - before.parallel_blocks,
        sequential_blocks: after.sequential_blocks - before.sequential_blocks,
        per_tx_parallel_blocks: after.per_tx_parallel_blocks - before.per_tx_parallel_blocks,
        per_tx_block_stm_runs: after.per_tx_block_stm_runs - before.per_tx_block_stm_runs,
        state_read_errors: after.state_read_errors - before.state_read_errors,
        learned_chain_blocks: after.learned_chain_blocks - before.learned_chain_blocks,
        ..Default::default()
    };
    let f = &mut d.fallbacks;
    let fields = [
        &mut f.disabled,
        &mut f.no_plan,
        &mut f.inspector,
        &mut f.amsterdam,
        &mut f.small_block,
        &mut f.plan_mismatch,
        &mut f.plan_truncated,
        &mut f.plan_timeout,
        &mut f.not_committed,
        &mut f.direct_call,
        &mut f.engine_fault,
    ];
    for (i, field) in fields.into_iter().enumerate() {
        *field = a[i] - b[i];
    }
    d
}

/// Only `reason` fell back, once.
fn fell_back_once(d: &MetricsSnapshot, reason: PerTxFallback) -> bool {
    PerTxFallback::ALL.iter().all(|&r| d.fallbacks.get(r) == u64::from(r == reason))
}

/// The newPayload checker of the fixture walks: the reference and Block-STM at each thread
/// count.
struct NewPayload {
    eth: EthFactory,
    parallel: Vec<ParFactory>,
}

impl NewPayload {
    fn new(spec: &ChainSpec, threads: &[usize]) -> Self {
        Self {
            eth: support::eth_factory(spec),
            parallel: threads.iter().map(|&t| parallel(spec, t)).collect(),
        }
    }
}

impl BlockChecker for NewPayload {
    fn check(
        &self,
        parent: &InMemoryState,
        spec: &ChainSpec,
        block: Block<'_>,
    ) -> Result<Result<BlockOutput, String>, String> {
        let env = evm_env(spec, block.header);
        let want = reference(&self.eth, parent, &env, block, &execute_all);
        for factory in &self.parallel {
            let threads = factory.config().threads;
            let mut got = None;
            let d = delta(factory, || {
                got = Some(planned(
                    factory,
                    parent,
                    &env,
                    block,
                    block.txs,
                    Capture::default(),
                    &execute_all,
                ));
            });
            let got = got.unwrap();
            compare(&got, &want).map_err(|e| format!("{threads} threads: {e}"))?;
            // The path really taken: Block-STM for every block with transactions, no fallback.
            let fallbacks: u64 = PerTxFallback::ALL.iter().map(|&r| d.fallbacks.get(r)).sum();
            let (runs, blocks) = (d.per_tx_block_stm_runs, d.per_tx_parallel_blocks);
            let ok = if block.txs.is_empty() {
                runs == 0 && blocks == 0 && d.fallbacks.small_block == 1 && fallbacks == 1
            } else {
                // A block the reference rejects fails inside the Block-STM path.
                runs == 1 && blocks == u64::from(want.output.is_ok()) && fallbacks == 0
            };
            if !ok {
                return Err(format!("{threads} threads: unexpected path {d:?}"));
            }
        }
        Ok(want.output)
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn newpayload_eest_fixtures_match_eth_factory() {
    if let Some(dir) = fixtures("blockchain_tests") {
        support::check_fixture_dir(&dir, 0, 1, |spec| NewPayload::new(spec, &[1, 2]));
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn newpayload_legacy_fixtures_match_eth_factory_first_half() {
    if let Some(dir) = fixtures("BlockchainTests") {
        support::check_fixture_dir(&dir, 0, 2, |spec| NewPayload::new(spec, &[1, 2]));
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn newpayload_legacy_fixtures_match_eth_factory_second_half() {
    if let Some(dir) = fixtures("BlockchainTests") {
        support::check_fixture_dir(&dir, 1, 2, |spec| NewPayload::new(spec, &[1, 2]));
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn newpayload_mainnet_blocks_match_eth_factory() {
    let Some(blocks) = support::mainnet_blocks() else { return };
    let spec = velarium_replay::mainnet_spec();
    let checker = NewPayload::new(&spec, &[1, 2]);
    for block in &blocks {
        let input = Block::mainnet(block, &block.transactions);
        checker
            .check(&block.state, &spec, input)
            .unwrap_or_else(|e| panic!("block {}: {e}", block.number))
            .unwrap_or_else(|e| panic!("block {}: reference failed: {e}", block.number));
    }
    for factory in &checker.parallel {
        let metrics = factory.metrics().snapshot();
        let with_txs = blocks.iter().filter(|b| !b.transactions.is_empty()).count() as u64;
        assert_eq!(metrics.per_tx_parallel_blocks, with_txs, "{metrics:?}");
        assert_eq!(metrics.fallbacks.after_plan(), 0, "{metrics:?}");
    }
}

/// A mainnet block of at least 50 transactions, its spec and environment, for the fallback
/// tests.
fn fallback_block() -> Option<(velarium_replay::MainnetBlock, ChainSpec, EvmEnv)> {
    let block = mainnet_block(50)?;
    let spec = velarium_replay::mainnet_spec();
    let env = evm_env(&spec, &block.header);
    Some((block, spec, env))
}

/// `block` through the planned path on two workers (its own transactions as the plan unless
/// `plan_txs` says otherwise) and through alloy-evm's factory, both driven by `step`: ours, the
/// reference, and our counters' change.
fn planned_and_reference(
    block: &velarium_replay::MainnetBlock,
    spec: &ChainSpec,
    env: &EvmEnv,
    plan_txs: Option<&[RecoveredTx]>,
    step: &dyn Fn(usize) -> Step,
) -> (Observed, Observed, MetricsSnapshot) {
    let input = Block::mainnet(block, &block.transactions);
    let want = reference(&support::eth_factory(spec), &block.state, env, input, step);
    let factory = parallel(spec, 2);
    let plan_txs = plan_txs.unwrap_or(input.txs);
    let mut got = None;
    let d = delta(&factory, || {
        got = Some(planned(&factory, &block.state, env, input, plan_txs, Capture::default(), step));
    });
    (got.expect("ran"), want, d)
}

/// A planned payload dominated by a contract whose last Block-STM block ran as a chain runs
/// sequentially (counted apart, not a fallback) with the reference's calls and results.
#[test]
fn a_planned_payload_of_a_learned_chain_runs_sequentially() {
    // A seed of its own: no other test of this process teaches the engine about this block.
    let workload = velarium_workloads::reads_beneficiary(0x5eed_0a11, 1000);
    let block = Block::workload(&workload);
    let env = evm_env(&workload.spec, block.header);
    let eth = support::eth_factory(&workload.spec);
    let want = reference(&eth, &workload.state, &env, block, &execute_all);
    let factory = ParFactory::from_eth(eth, ParallelConfig::new(2, 24));
    // Every call reads the beneficiary's balance: a chain, given both workers at once (ten
    // tries on a busy machine); the payload after the first run that chained runs sequentially.
    let mut block_stm_runs = 0;
    loop {
        let (got, d) = planned_plainly(&factory, &workload.state, &env, block);
        compare(&got, &want).unwrap();
        if d.learned_chain_blocks == 1 {
            assert_eq!((d.per_tx_block_stm_runs, d.parallel_blocks), (0, 0), "{d:?}");
            assert_eq!(d.sequential_blocks, 1, "{d:?}");
            assert!(PerTxFallback::ALL.iter().all(|&r| d.fallbacks.get(r) == 0), "{d:?}");
            break;
        }
        assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 1), "{d:?}");
        block_stm_runs += 1;
        assert!(block_stm_runs <= 10, "reads_beneficiary never ran as a chain");
    }
    assert!(block_stm_runs >= 1, "a payload went sequential before any ran through Block-STM");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_transaction_differing_from_the_plan_continues_sequentially() {
    let Some((block, spec, env)) = fallback_block() else { return };
    // The plan has transactions 20 and 21 swapped (same count, same key).
    let mut plan_txs = block.transactions.clone();
    plan_txs.swap(20, 21);
    let (got, want, d) = planned_and_reference(&block, &spec, &env, Some(&plan_txs), &execute_all);
    compare(&got, &want).unwrap();
    assert!(fell_back_once(&d, PerTxFallback::PlanMismatch), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 0), "{d:?}");
    assert_eq!((d.parallel_blocks, d.sequential_blocks), (0, 1), "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn commit_changes_no_then_continuing_matches() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let step = |i| if i == 17 { Step::RefuseThenExecute } else { Step::Execute };
    let (got, want, d) = planned_and_reference(&block, &spec, &env, None, &step);
    // The refused call gave the closure sequential's result and state diff.
    assert!(got.calls.iter().any(|c| c.index == 17 && c.gas.is_none() && c.result.is_some()));
    compare(&got, &want).unwrap();
    assert!(fell_back_once(&d, PerTxFallback::NotCommitted), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 0), "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_direct_execute_without_commit_call_falls_back() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let step = |i| if i == 9 { Step::Direct } else { Step::Execute };
    let (got, want, d) = planned_and_reference(&block, &spec, &env, None, &step);
    compare(&got, &want).unwrap();
    assert!(fell_back_once(&d, PerTxFallback::DirectCall), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 0), "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn an_inspected_executor_leaves_the_plan_and_runs_sequentially() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let want = reference(&support::eth_factory(&spec), &block.state, &env, input, &execute_all);
    let factory = parallel(&spec, 2);
    let key = payload_key(input);
    let mut steps = StepCounter::default();
    let d = delta(&factory, || {
        let got = std::thread::scope(|scope| {
            capture(scope, factory.plans(), key, input.txs, Capture::default());
            let mut state =
                State::builder().with_database_ref(&block.state).with_bundle_update().build();
            let evm = EthEvmFactory::default().create_evm_with_inspector(
                &mut state,
                env.clone(),
                &mut steps,
            );
            let mut calls = Vec::new();
            let result = drive(
                factory.create_executor(evm, input.ctx()),
                input.txs,
                &execute_all,
                &mut calls,
            )
            .unwrap();
            state.merge_transitions(BundleRetention::Reverts);
            BlockOutput::new(result, state.take_bundle())
        });
        velarium_replay::compare_outputs_exactly(&got, want.output.as_ref().unwrap()).unwrap();
    });
    assert!(steps.0 > 0, "the inspector saw every step");
    assert!(fell_back_once(&d, PerTxFallback::Inspector), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.sequential_blocks), (0, 1), "{d:?}");
    // The plan is still there for the engine's own executor, which then takes it.
    assert_eq!(factory.plans().current_key(), Some(key));
    let d = delta(&factory, || {
        let got = observe(&block.state, &env, |evm, calls| {
            drive(factory.create_executor(evm, input.ctx()), input.txs, &execute_all, calls)
        });
        compare(&got, &want).unwrap();
    });
    assert_eq!(d.per_tx_parallel_blocks, 1, "{d:?}");
    assert_eq!(factory.plans().current_key(), None);
}

#[test]
fn block_stm_needs_a_third_core_by_default() {
    assert!(!velarium_reth_glue::block_stm_pays_on(1));
    assert!(!velarium_reth_glue::block_stm_pays_on(2));
    assert!(velarium_reth_glue::block_stm_pays_on(3));
    assert!(velarium_reth_glue::block_stm_pays_on(16));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default = ParallelConfig::default();
    assert_eq!(default.block_stm, velarium_reth_glue::block_stm_pays_on(cores), "{default:?}");
    assert!(ParallelConfig::new(2, 0).block_stm);
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn with_block_stm_off_every_path_runs_sequentially() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let want = reference(&support::eth_factory(&spec), &block.state, &env, input, &execute_all);
    let off = ParallelConfig { block_stm: false, ..ParallelConfig::new(2, 0) };
    let factory = ParFactory::from_eth(support::eth_factory(&spec), off);
    // newPayload: the plan is captured, never run.
    let (got, d) = planned_plainly(&factory, &block.state, &env, input);
    compare(&got, &want).unwrap();
    assert!(fell_back_once(&d, PerTxFallback::Disabled), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.parallel_blocks, d.sequential_blocks), (0, 0, 1));
    // A whole block (reth's `execute_one_with_state_hook`).
    let d = delta(&factory, || {
        let whole = support::execute(&block.state, &env, |evm| {
            factory.create_executor(evm, input.ctx()).execute_block(input.txs)
        })
        .unwrap();
        velarium_replay::compare_outputs_exactly(&whole, want.output.as_ref().unwrap()).unwrap();
    });
    assert_eq!((d.parallel_blocks, d.sequential_blocks), (0, 1), "{d:?}");
    // The same factory switched on, sharing its counters, takes the next plan.
    let on = factory.clone().with_config(ParallelConfig::new(2, 0));
    let (got, d) = planned_plainly(&on, &block.state, &env, input);
    compare(&got, &want).unwrap();
    assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 1), "{d:?}");
    assert_eq!(on.metrics().snapshot(), factory.metrics().snapshot());
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_plan_for_another_payload_is_not_taken() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let want = reference(&support::eth_factory(&spec), &block.state, &env, input, &execute_all);
    let factory = parallel(&spec, 2);
    let key =
        PayloadKey { parent_hash: alloy_primitives::B256::repeat_byte(0xee), ..payload_key(input) };
    let d = delta(&factory, || {
        let got = std::thread::scope(|scope| {
            capture(scope, factory.plans(), key, input.txs, Capture::default());
            observe(&block.state, &env, |evm, calls| {
                drive(factory.create_executor(evm, input.ctx()), input.txs, &execute_all, calls)
            })
        });
        compare(&got, &want).unwrap();
    });
    assert!(fell_back_once(&d, PerTxFallback::NoPlan), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.sequential_blocks), (0, 1), "{d:?}");
    assert_eq!(factory.plans().current_key(), Some(key), "left for its own payload");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_conversion_failure_truncates_the_plan() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let want = reference(&support::eth_factory(&spec), &block.state, &env, input, &execute_all);
    let factory = parallel(&spec, 2);
    let how = Capture { fail_at: Some(30), ..Default::default() };
    // A caller that goes on past the failed conversion: the prefix through Block-STM, the rest
    // sequentially.
    let mut got = None;
    let d = delta(&factory, || {
        got = Some(planned(&factory, &block.state, &env, input, input.txs, how, &execute_all));
    });
    compare(&got.unwrap(), &want).unwrap();
    assert!(fell_back_once(&d, PerTxFallback::PlanTruncated), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 0), "{d:?}");
    // reth stops at the failed conversion and drops the executor: the prefix is committed,
    // exactly as sequentially.
    let prefix = &input.txs[..30];
    let stop = Block { txs: prefix, ..input };
    let stopped = |factory: Option<&ParFactory>| {
        let mut calls = Vec::new();
        let updates = Arc::new(Mutex::new(Vec::new()));
        let sink = updates.clone();
        let mut state =
            State::builder().with_database_ref(&block.state).with_bundle_update().build();
        state.set_state_hook(Some(Box::new(move |s: EvmState| {
            sink.lock().unwrap().push(canon(&s))
        })));
        let evm = EthEvmFactory::default().create_evm(&mut state, env.clone());
        // The executor's context is the whole payload's (its transaction count included).
        let ctx = input.ctx();
        std::thread::scope(|scope| match factory {
            Some(factory) => {
                capture(scope, factory.plans(), payload_key(input), input.txs, how);
                let mut executor = factory.create_executor(evm, ctx);
                executor.apply_pre_execution_changes().unwrap();
                for (index, tx) in stop.txs.iter().enumerate() {
                    let gas = executor.execute_transaction(tx).unwrap();
                    calls.push((index, gas, executor.receipts().last().cloned()));
                }
            }
            None => {
                let eth = support::eth_factory(&spec);
                let mut executor = eth.create_executor(evm, ctx);
                executor.apply_pre_execution_changes().unwrap();
                for (index, tx) in stop.txs.iter().enumerate() {
                    let gas = executor.execute_transaction(tx).unwrap();
                    calls.push((index, gas, executor.receipts().last().cloned()));
                }
            }
        });
        let hook = std::mem::take(&mut *updates.lock().unwrap());
        (calls, hook)
    };
    let d = delta(&factory, || assert_eq!(stopped(Some(&factory)), stopped(None)));
    assert_eq!(d.per_tx_block_stm_runs, 1, "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn an_executor_dropped_mid_block_stops_its_run() {
    // A large block, so that Block-STM is still running when the executor is dropped.
    let Some(block) = mainnet_block(1000) else { return };
    let spec = velarium_replay::mainnet_spec();
    let env = evm_env(&spec, &block.header);
    // Leaked: the caller runs on a thread of its own, so that a hang fails the test instead of
    // stalling it.
    let block: &'static velarium_replay::MainnetBlock = Box::leak(Box::new(block));
    let input = Block::mainnet(block, &block.transactions);
    let want = reference(&support::eth_factory(&spec), &block.state, &env, input, &execute_all);
    let factory: &'static ParFactory = Box::leak(Box::new(parallel(&spec, 2)));
    const STOP: usize = 5;
    // reth's engine gives up after a few calls (a later conversion failed, say) and drops the
    // executor while Block-STM is still running the rest of the block: the drop stops the
    // run (its workers wait for reads only the dropped caller could serve) and returns.
    let (done, finished) = std::sync::mpsc::channel();
    let caller_env = env.clone();
    std::thread::spawn(move || {
        let mut state =
            State::builder().with_database_ref(&block.state).with_bundle_update().build();
        let evm = EthEvmFactory::default().create_evm(&mut state, caller_env);
        let mut receipts = Vec::new();
        std::thread::scope(|scope| {
            capture(scope, factory.plans(), payload_key(input), input.txs, Capture::default());
            let mut executor = factory.create_executor(evm, input.ctx());
            executor.apply_pre_execution_changes().unwrap();
            for tx in &input.txs[..STOP] {
                executor.execute_transaction(tx).unwrap();
                receipts.push(executor.receipts().last().cloned());
            }
            drop(executor);
        });
        let _ = done.send(receipts);
    });
    let receipts = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("dropping an executor in the middle of a block returned");
    let want_receipts: Vec<_> = want.calls[..STOP].iter().map(|c| c.last.clone()).collect();
    assert_eq!(receipts, want_receipts);
    // The workers are free again: the next payload runs through Block-STM as usual.
    let (got, d) = planned_plainly(factory, &block.state, &env, input);
    compare(&got, &want).unwrap();
    assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 1), "{d:?}");
    assert_eq!(d.fallbacks.after_plan(), 0, "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn an_incomplete_plan_times_out_and_runs_sequentially() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let want = reference(&support::eth_factory(&spec), &block.state, &env, input, &execute_all);
    let factory =
        parallel(&spec, 2).with_plans(Arc::new(PlanRegistry::with_wait(Duration::from_millis(50))));
    let how = Capture { leave_empty: Some(40), ..Default::default() };
    let mut got = None;
    let d = delta(&factory, || {
        got = Some(planned(&factory, &block.state, &env, input, input.txs, how, &execute_all));
    });
    compare(&got.unwrap(), &want).unwrap();
    assert!(fell_back_once(&d, PerTxFallback::PlanTimeout), "{d:?}");
    assert_eq!(d.per_tx_block_stm_runs, 0, "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn an_invalid_transaction_fails_like_sequential() {
    let Some((block, spec, env)) = fallback_block() else { return };
    // A replayed transaction: its nonce is too low the second time.
    let mut txs = block.transactions.clone();
    txs.insert(12, txs[3].clone());
    let input = Block::mainnet(&block, &txs);
    let want = reference(&support::eth_factory(&spec), &block.state, &env, input, &execute_all);
    let err = want.output.as_ref().expect_err("a replayed transaction fails the block");
    assert!(err.contains("nonce"), "{err}");
    assert_eq!(want.calls.len(), 12, "fails at its index");
    for threads in [1, 2] {
        let factory = parallel(&spec, threads);
        let (got, d) = planned_plainly(&factory, &block.state, &env, input);
        // Same calls, same hook updates, same error.
        compare(&got, &want).unwrap();
        assert_eq!(d.per_tx_block_stm_runs, 1, "{d:?}");
        assert_eq!(d.fallbacks.after_plan(), 0, "{d:?}");
    }
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_state_read_failure_is_an_error() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let factory = parallel(&spec, 2);
    let eth = support::eth_factory(&spec);
    // The recipient of a transaction in the middle of the block cannot be read: Block-STM reads
    // it up front (it pre-loads senders and recipients), so the first call returns the error.
    let broken = alloy_consensus::Transaction::to(block.transactions[15].inner()).unwrap();
    let want =
        reference(&eth, FailingState::account(&block.state, broken), &env, input, &execute_all);
    let mut got = None;
    let d = delta(&factory, || {
        got = Some(planned(
            &factory,
            FailingState::account(&block.state, broken),
            &env,
            input,
            input.txs,
            Capture::default(),
            &execute_all,
        ));
    });
    let (got, want_err) = (got.unwrap(), want.output.unwrap_err());
    let err = got.output.unwrap_err();
    assert!(err.contains("disk error") && want_err.contains("disk error"), "{err} / {want_err}");
    assert!(got.calls.len() <= want.calls.len(), "never later than sequentially");
    assert_eq!(&want.calls[..got.calls.len()], &got.calls[..]);
    assert_eq!(&want.hook[..got.hook.len()], &got.hook[..]);
    assert_eq!(d.state_read_errors, 1, "{d:?}");
    assert_eq!(d.fallbacks.after_plan(), 0, "{d:?}");
}

/// The lowest address of an account that existed before the block and whose storage the block
/// changed (so executing the block reads its storage from the parent state).
fn written_contract(run: &Observed) -> Address {
    let bundle = &run.output.as_ref().expect("the block executes").bundle;
    bundle
        .state
        .iter()
        .filter(|(_, account)| account.original_info.is_some() && !account.storage.is_empty())
        .map(|(address, _)| *address)
        .min()
        .expect("a block writing an existing contract's storage")
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn a_storage_read_failure_fails_at_its_transaction() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let factory = parallel(&spec, 2);
    let eth = support::eth_factory(&spec);
    // The storage of a contract the block writes cannot be read: Block-STM reads it only inside
    // transactions, so the final outcome of the first transaction that reads it carries it.
    let plain = reference(&eth, &block.state, &env, input, &execute_all);
    let broken = written_contract(&plain);
    let want =
        reference(&eth, FailingState::storage(&block.state, broken), &env, input, &execute_all);
    let mut got = None;
    let d = delta(&factory, || {
        got = Some(planned(
            &factory,
            FailingState::storage(&block.state, broken),
            &env,
            input,
            input.txs,
            Capture::default(),
            &execute_all,
        ));
    });
    let (got, want_err) = (got.unwrap(), want.output.unwrap_err());
    let err = got.output.unwrap_err();
    assert!(err.contains("disk error") && want_err.contains("disk error"), "{err} / {want_err}");
    // At the same transaction, after the same calls and hook updates.
    assert_eq!(got.calls, want.calls);
    assert_eq!(got.hook, want.hook);
    assert_eq!(d.state_read_errors, 1, "{d:?}");
    assert_eq!(d.fallbacks.after_plan(), 0, "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn an_engine_fault_falls_back_to_sequential() {
    let Some((block, spec, env)) = fallback_block() else { return };
    let input = Block::mainnet(&block, &block.transactions);
    let eth = support::eth_factory(&spec);
    let want = reference(&eth, &block.state, &env, input, &execute_all);
    // The first read of a written contract's storage panics (a transient fault while the
    // engine thread serves the workers' reads): the run is abandoned, nothing was committed,
    // and the block continues sequentially.
    let account = written_contract(&want);
    let parent = PanicOnce { inner: &block.state, account, armed: AtomicBool::new(true) };
    let factory = parallel(&spec, 2);
    let mut got = None;
    let d = delta(&factory, || {
        got = Some(planned(
            &factory,
            &parent,
            &env,
            input,
            input.txs,
            Capture::default(),
            &execute_all,
        ));
    });
    compare(&got.unwrap(), &want).unwrap();
    assert!(fell_back_once(&d, PerTxFallback::EngineFault), "{d:?}");
    assert_eq!((d.per_tx_block_stm_runs, d.per_tx_parallel_blocks), (1, 0), "{d:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn per_transaction_block_stm_timing() {
    let Some(blocks) = support::mainnet_blocks() else { return };
    let spec = velarium_replay::mainnet_spec();
    let setting = support::timing_setting;
    let rounds = setting("VELARIUM_TIMING_ROUNDS", 5);
    let threads = setting("VELARIUM_TIMING_THREADS", 2);
    let eth = support::eth_factory(&spec);
    let per_tx = parallel(&spec, threads);
    let whole = parallel(&spec, threads);
    // What a node gets without flags on this machine (Block-STM only with a third core).
    let default = ParFactory::from_eth(eth.clone(), ParallelConfig::default());
    let median = support::median;
    let (mut sums, mut ratios_per_tx, mut ratios_whole) = ([0f64; 4], Vec::new(), Vec::new());
    // The same over the blocks the default threshold sends to Block-STM.
    let (mut large, mut large_blocks) = ([0f64; 4], 0);
    for block in &blocks {
        let input = Block::mainnet(block, &block.transactions);
        let env = evm_env(&spec, &block.header);
        let mut times: [Vec<f64>; 4] = Default::default();
        // newPayload through `factory`: its plan captured on this thread (as the node's
        // `tx_iterator_for_payload` does, not where Block-STM is off), then the calls.
        let newpayload = |factory: &ParFactory| {
            if factory.config().block_stm {
                let plan = factory.plans().begin(payload_key(input));
                for (i, tx) in input.txs.iter().enumerate() {
                    plan.record::<TxEnvelope, _>(i, tx);
                }
            }
            support::execute(&block.state, &env, |evm| {
                let mut executor = factory.create_executor(evm, input.ctx());
                executor.apply_pre_execution_changes()?;
                for tx in input.txs {
                    executor.execute_transaction(tx)?;
                }
                executor.apply_post_execution_changes()
            })
            .unwrap();
        };
        for _ in 0..rounds {
            // Interleaved: sequential per-transaction, Block-STM per-transaction, Block-STM
            // whole block, per-transaction with the default settings.
            let t = std::time::Instant::now();
            support::execute(&block.state, &env, |evm| {
                let mut executor = eth.create_executor(evm, input.ctx());
                executor.apply_pre_execution_changes()?;
                for tx in input.txs {
                    executor.execute_transaction(tx)?;
                }
                executor.apply_post_execution_changes()
            })
            .unwrap();
            times[0].push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            newpayload(&per_tx);
            times[1].push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            support::execute(&block.state, &env, |evm| {
                whole.create_executor(evm, input.ctx()).execute_block(input.txs)
            })
            .unwrap();
            times[2].push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            newpayload(&default);
            times[3].push(t.elapsed().as_secs_f64());
        }
        let m = times.map(median);
        for k in 0..4 {
            sums[k] += m[k];
            if input.txs.len() >= velarium_executor::DEFAULT_PARALLEL_MIN_TXS {
                large[k] += m[k];
            }
        }
        large_blocks += usize::from(input.txs.len() >= velarium_executor::DEFAULT_PARALLEL_MIN_TXS);
        ratios_per_tx.push(m[0] / m[1]);
        ratios_whole.push(m[0] / m[2]);
    }
    let with_txs = blocks.iter().filter(|b| !b.transactions.is_empty()).count() as u64;
    assert_eq!(per_tx.metrics().snapshot().per_tx_parallel_blocks, with_txs * rounds as u64);
    eprintln!(
        "{} mainnet blocks, {rounds} interleaved rounds, {threads} threads, min_txs 0\n\
         speed-up over sequential per-transaction (sum of per-block medians): \
         per-transaction Block-STM {:.2}x, whole-block Block-STM {:.2}x\n\
         median of per-block speed-ups: per-transaction Block-STM {:.2}x, whole-block {:.2}x\n\
         per-transaction Block-STM / whole-block time: {:.2}\n\
         the {large_blocks} blocks of at least {} transactions (sum of medians): \
         per-transaction Block-STM {:.2}x, whole-block {:.2}x\n\
         per-transaction with the default settings here ({} cores, Block-STM {}): {:.2}x \
         (sum of medians), {:.2}x on the large blocks",
        blocks.len(),
        sums[0] / sums[1],
        sums[0] / sums[2],
        median(ratios_per_tx),
        median(ratios_whole),
        sums[1] / sums[2],
        velarium_executor::DEFAULT_PARALLEL_MIN_TXS,
        large[0] / large[1],
        large[0] / large[2],
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if default.config().block_stm { "on" } else { "off" },
        sums[0] / sums[3],
        large[0] / large[3],
    );
}
