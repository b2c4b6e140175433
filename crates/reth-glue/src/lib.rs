//! Velarium's parallel engine behind alloy-evm's block-execution traits, for reth.
//!
//! reth 2.5.1 executes blocks through alloy-evm 0.38's [`BlockExecutorFactory`] and
//! [`BlockExecutor`]. [`ParallelBlockExecutorFactory`] implements that factory with exactly the
//! associated types of alloy-evm's [`EthBlockExecutorFactory`] (the `ExecutionCtx`, the
//! transaction, receipt and per-transaction result types, and any `EvmFactory` whose EVM runs on
//! revm's `TxEnv`/`BlockEnv`/`SpecId`, such as reth's `RethEvmFactory`), so a reth
//! `ConfigureEvm` switches to it by changing one associated type.
//!
//! # How reth drives an executor, and what each pattern gets
//!
//! * **Whole block** ([`BlockExecutor::execute_block`], used by reth's
//!   `BasicBlockExecutor::execute_one_with_state_hook`, its ExEx backfill and any caller that has
//!   the block): the pre-execution changes run on the EVM's state, then the transactions run
//!   with Block-STM (the calling thread, which owns the `State`, is worker 0 and serves the
//!   other workers' state reads; see `velarium_executor::execute_transactions`), then each
//!   transaction's result is committed **in order, one commit per transaction with its fee
//!   credit merged in** (see below), through alloy-evm's own `commit_transaction`, so
//!   receipts, gas accounting, the state hook reth installs on `State` and the `BundleState` it
//!   later takes are exactly the sequential ones. Finally alloy-evm's post-execution code runs
//!   unchanged.
//! * **One transaction at a time, with a plan** (reth's newPayload validation): before it
//!   creates the executor, reth asks the EVM configuration for the payload's transaction list
//!   (`ConfigureEngineEvm::tx_iterator_for_payload`) and recovers the transactions on a thread
//!   pool. A configuration wired as [`plan`] describes copies each recovered transaction into
//!   a [`PayloadPlan`] held by the factory's [`PlanRegistry`]; `create_executor` takes the plan
//!   whose [`PayloadKey`] is the block's. Then reth calls `apply_pre_execution_changes` (run
//!   sequentially, so the state hook sees the system calls first), and `execute_transaction`
//!   once per transaction, reading `receipts()` after each call, then `finish`. At the first
//!   transaction call the executor waits until the plan is complete and starts Block-STM on
//!   the whole list over the `State`, which holds the pre-execution changes
//!   (`velarium_executor::start_streaming`): the pool's helpers execute the block while reth's
//!   thread comes and goes. Each call `i` checks that its transaction is the plan's `i`-th
//!   (trie hash, signer and `TxEnv`), then waits until transaction `i` is final (every lower
//!   one is), executing transactions itself meanwhile and serving the helpers' reads of the
//!   `State` (which only this thread may touch), applies `EthBlockExecutor`'s block-gas
//!   admission check against the committed gas, turns outcome `i` into its result on the
//!   current `State` (an invalid transaction returns exactly sequential's error, at its index),
//!   hands it to the caller's commit condition and commits it through alloy-evm's
//!   `commit_transaction`: one receipt and **one** `State` commit per call, so every value reth
//!   reads between calls, and the state hook's stream, are exactly those of
//!   `EthBlockExecutor`. Results stream: reth commits transaction `i` (and its state-root task
//!   gets the update) while the helpers go on with the rest of the block. Between calls the
//!   helpers' cold reads wait for reth's thread to come back; an executor dropped in the
//!   middle of a block stops its run (waiting reads fail, the helpers are joined).
//! * **One transaction at a time, with candidates** (reth's payload builder): the builder's
//!   pool iterator, wrapped in a [`Lookahead`], publishes the transactions it is about to try
//!   into a [`CandidateFeed`]; the executor runs them ahead through Block-STM in windows and
//!   commits a speculative outcome only while nothing it read was written differently since
//!   (see [`speculate`]). Which transactions the builder takes, and every result, stay exactly
//!   sequential's.
//! * **One transaction at a time, without a plan** (reth's `BasicBlockExecutor::execute_one`
//!   used by the pipeline and `reth import`, RPC replays, downloaded blocks): the calls execute
//!   immediately through alloy-evm's `EthBlockExecutor`. Without the list up front there is
//!   nothing to run in parallel.
//!
//! **Falling back.** A per-transaction executor that started on Block-STM continues through
//! alloy-evm's `EthBlockExecutor` from the exact committed prefix, never with a wrong result
//! and never panicking on the caller's thread, when a transaction differs from the plan, when
//! the caller goes past the end of a plan that a failed conversion truncated, when the plan is
//! not complete in time ([`PlanRegistry::with_wait`]), when the commit condition says
//! [`CommitChanges::No`], when the caller calls `execute_transaction_without_commit` or
//! `commit_transaction` itself (or skipped `apply_pre_execution_changes`), and when the engine
//! faults (any `velarium_executor::ExecutionError` but a state-read failure, or a panic). A
//! state-read failure is an error, as it is sequentially. [`ExecutionMetrics`] counts each
//! reason ([`PerTxFallback`]).
//!
//! **The fee credit.** Block-STM's workers compute each transaction's fee without crediting it
//! (crediting would make every transaction conflict). It is merged into the transaction's state
//! diff before the single commit, by replaying revm's `reward_beneficiary` on a revm journal
//! that holds the diff and reads the committed prefix: the beneficiary's `original_info` is its
//! value before the transaction, a zero fee still touches it, a beneficiary that does not exist
//! is loaded as such, and `finalize` applies the EIP-161 rules, exactly as in revm.
//!
//! Blocks with fewer than [`ParallelConfig::min_txs`] transactions, blocks executed under an
//! inspector (tracing; told apart by the inspector's type), and Amsterdam blocks (EIP-7928
//! access lists index every transaction's reads) run through the sequential path as well.
//! [`ExecutionMetrics`] counts which path each block took and Block-STM's work.
//!
//! **Cores.** Behind reth's `State` only the calling thread may read the state, and it commits
//! every transaction as sequential execution does; on two cores every path above measured
//! slower than alloy-evm's executor. [`ParallelConfig::default`] therefore runs Block-STM only
//! on machines with at least [`MIN_CORES_FOR_BLOCK_STM`] cores, and every block runs
//! sequentially elsewhere ([`ParallelConfig::block_stm`]; [`ParallelConfig::new`] runs it on
//! any machine).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod plan;
pub mod speculate;

mod outcome;

pub use plan::{PayloadKey, PayloadPlan, PlanRegistry, PlannedTx, DEFAULT_PLAN_WAIT};
pub use speculate::{BuildKey, CandidateFeed, CandidateRegistry, Lookahead, DEFAULT_LOOKAHEAD};

use speculate::{Speculation, Window};
/// Pins the engine's workers to cores (see `velarium_executor::pin_workers`).
pub use velarium_executor::pin_workers;

use alloy_consensus::{Transaction, TransactionEnvelope, TxReceipt};
use alloy_eips::eip2718::Encodable2718;
use alloy_evm::{
    block::{
        BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory,
        BlockValidationError, CommitChanges, ExecutableTx, ExecutableTxParts, GasOutput, StateDB,
    },
    eth::{
        receipt_builder::{AlloyReceiptBuilder, ReceiptBuilder},
        spec::{EthExecutorSpec, EthSpec},
        EthBlockExecutionCtx, EthBlockExecutor, EthBlockExecutorFactory, EthTxResult,
    },
    EthEvmFactory, Evm, EvmFactory, FromRecoveredTx, FromTxWithEncoded, RecoveredTx,
};
use alloy_primitives::{Address, Log, B256};
use revm::{
    context::{
        result::{EVMError, HaltReason, ResultAndState},
        BlockEnv, TxEnv,
    },
    inspector::NoOpInspector,
    primitives::hardfork::SpecId,
    Inspector,
};
use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use velarium_executor::{
    ExecutionError, LearnedRoute, ParallelStats, SpeculativeTx, StreamingRun, TxDbError,
    DEFAULT_PARALLEL_MIN_TXS,
};

/// The transaction envelope's type tag, as alloy-evm's result carries it.
type TxTypeOf<R> = <<R as ReceiptBuilder>::Transaction as TransactionEnvelope>::TxType;

/// How the factory's executors use the parallel engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParallelConfig {
    /// Block-STM worker threads.
    pub threads: usize,
    /// Blocks with fewer transactions run sequentially (0: every block through Block-STM).
    pub min_txs: usize,
    /// Whether the executors run Block-STM at all. Off, every block (whole, one transaction
    /// at a time, being built) runs through alloy-evm's executor, counted as sequential
    /// ([`PerTxFallback::Disabled`] for the per-transaction ones).
    pub block_stm: bool,
}

impl ParallelConfig {
    /// Block-STM on `threads` workers for blocks of at least `min_txs` transactions (0: every
    /// block), whatever the machine.
    pub const fn new(threads: usize, min_txs: usize) -> Self {
        Self { threads, min_txs, block_stm: true }
    }
}

impl Default for ParallelConfig {
    /// One worker per core, at most [`velarium_executor::DEFAULT_MAX_WORKERS`] (measured);
    /// [`DEFAULT_PARALLEL_MIN_TXS`] (measured) as the small-block threshold; Block-STM only
    /// where [`block_stm_pays_on`] the machine's cores.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            block_stm: block_stm_pays_on(cores),
            ..Self::new(velarium_executor::default_workers(), DEFAULT_PARALLEL_MIN_TXS)
        }
    }
}

/// The fewest cores on which [`ParallelConfig::default`] runs Block-STM behind reth's `State`.
///
/// Measured, not guessed, on two (2 vCPUs, 2026-12-05/06; "Inside reth" in the README): behind
/// the `State` every path was slower than alloy-evm's executor on the 47 mainnet blocks, since
/// only reth's thread may read the `State` and it also commits every transaction: newPayload's
/// per-transaction path 0.81x-0.95x (streaming) and 0.82x-0.93x (buffered), whole blocks
/// 0.84x-0.98x, the payload builder 0.77x-0.89x, and 0.46x-0.60x with one of the cores busy.
/// With a third core the commit's thread and two workers each have one; no machine with more
/// than two cores was lent to measure the glue, so this is the bound the two-core figures
/// give, not a measured crossover.
pub const MIN_CORES_FOR_BLOCK_STM: usize = 3;

/// Whether Block-STM behind reth's `State` is worth running by default on a machine with
/// `cores` cores (see [`MIN_CORES_FOR_BLOCK_STM`]); [`ParallelConfig::new`] runs it anyway.
pub const fn block_stm_pays_on(cores: usize) -> bool {
    cores >= MIN_CORES_FOR_BLOCK_STM
}

/// Why a block executed one transaction at a time did not run (or stopped running) through
/// Block-STM. The first five are decided when the executor is created (Block-STM never starts);
/// the others happen after a plan was attached, and the block continues sequentially from the
/// exact committed prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PerTxFallback {
    /// Block-STM is switched off ([`ParallelConfig::block_stm`]; by default on machines with
    /// fewer than [`MIN_CORES_FOR_BLOCK_STM`] cores).
    Disabled,
    /// No plan matched the block (every per-transaction caller but newPayload: the pipeline,
    /// the payload builder, RPC replays, downloaded blocks).
    NoPlan,
    /// The EVM has an inspector (tracing), which must see the one sequential execution.
    Inspector,
    /// An Amsterdam block (EIP-7928 block access lists index every transaction's reads).
    Amsterdam,
    /// Fewer transactions than [`ParallelConfig::min_txs`] (or none).
    SmallBlock,
    /// A transaction differs from the plan's at its index (trie hash, signer or `TxEnv`), or
    /// the caller went past the payload's transactions.
    PlanMismatch,
    /// The caller went past the end of a plan that a failed conversion truncated (or the
    /// truncated plan was too short to run).
    PlanTruncated,
    /// The plan was not complete within [`PlanRegistry::wait`] of the first transaction call.
    PlanTimeout,
    /// The commit condition returned [`CommitChanges::No`].
    NotCommitted,
    /// The caller called `execute_transaction_without_commit` or `commit_transaction` itself,
    /// or executed a transaction without `apply_pre_execution_changes` first.
    DirectCall,
    /// The engine failed (an error other than a state-read failure, or a panic).
    EngineFault,
}

impl PerTxFallback {
    /// Every reason, in the order of [`PerTxFallbacks`]' fields.
    pub const ALL: [Self; 11] = [
        Self::Disabled,
        Self::NoPlan,
        Self::Inspector,
        Self::Amsterdam,
        Self::SmallBlock,
        Self::PlanMismatch,
        Self::PlanTruncated,
        Self::PlanTimeout,
        Self::NotCommitted,
        Self::DirectCall,
        Self::EngineFault,
    ];

    /// A short name, for metric labels.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::NoPlan => "no_plan",
            Self::Inspector => "inspector",
            Self::Amsterdam => "amsterdam",
            Self::SmallBlock => "small_block",
            Self::PlanMismatch => "plan_mismatch",
            Self::PlanTruncated => "plan_truncated",
            Self::PlanTimeout => "plan_timeout",
            Self::NotCommitted => "not_committed",
            Self::DirectCall => "direct_call",
            Self::EngineFault => "engine_fault",
        }
    }

    /// Whether Block-STM had been attached to the block (a plan) when it fell back.
    pub const fn after_plan(self) -> bool {
        !matches!(
            self,
            Self::Disabled | Self::NoPlan | Self::Inspector | Self::Amsterdam | Self::SmallBlock
        )
    }
}

/// Per-transaction blocks by [`PerTxFallback`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerTxFallbacks {
    /// [`PerTxFallback::Disabled`].
    pub disabled: u64,
    /// [`PerTxFallback::NoPlan`].
    pub no_plan: u64,
    /// [`PerTxFallback::Inspector`].
    pub inspector: u64,
    /// [`PerTxFallback::Amsterdam`].
    pub amsterdam: u64,
    /// [`PerTxFallback::SmallBlock`].
    pub small_block: u64,
    /// [`PerTxFallback::PlanMismatch`].
    pub plan_mismatch: u64,
    /// [`PerTxFallback::PlanTruncated`].
    pub plan_truncated: u64,
    /// [`PerTxFallback::PlanTimeout`].
    pub plan_timeout: u64,
    /// [`PerTxFallback::NotCommitted`].
    pub not_committed: u64,
    /// [`PerTxFallback::DirectCall`].
    pub direct_call: u64,
    /// [`PerTxFallback::EngineFault`].
    pub engine_fault: u64,
}

impl PerTxFallbacks {
    /// The count of one reason.
    pub const fn get(&self, reason: PerTxFallback) -> u64 {
        match reason {
            PerTxFallback::Disabled => self.disabled,
            PerTxFallback::NoPlan => self.no_plan,
            PerTxFallback::Inspector => self.inspector,
            PerTxFallback::Amsterdam => self.amsterdam,
            PerTxFallback::SmallBlock => self.small_block,
            PerTxFallback::PlanMismatch => self.plan_mismatch,
            PerTxFallback::PlanTruncated => self.plan_truncated,
            PerTxFallback::PlanTimeout => self.plan_timeout,
            PerTxFallback::NotCommitted => self.not_committed,
            PerTxFallback::DirectCall => self.direct_call,
            PerTxFallback::EngineFault => self.engine_fault,
        }
    }

    /// Fallbacks after Block-STM was attached (see [`PerTxFallback::after_plan`]).
    pub fn after_plan(&self) -> u64 {
        PerTxFallback::ALL.iter().filter(|r| r.after_plan()).map(|&r| self.get(r)).sum()
    }
}

/// Counters of every block the factory's executors ran, for metrics exporters.
#[derive(Debug, Default)]
pub struct ExecutionMetrics {
    parallel_blocks: AtomicU64,
    sequential_blocks: AtomicU64,
    transactions: AtomicU64,
    executions: AtomicU64,
    re_executions: AtomicU64,
    validations: AtomicU64,
    aborts: AtomicU64,
    suspensions: AtomicU64,
    per_tx_parallel_blocks: AtomicU64,
    per_tx_block_stm_runs: AtomicU64,
    state_read_errors: AtomicU64,
    learned_chain_blocks: AtomicU64,
    /// Indexed like [`PerTxFallback::ALL`].
    fallbacks: [AtomicU64; PerTxFallback::ALL.len()],
    builder_blocks: AtomicU64,
    builder_windows: AtomicU64,
    builder_speculated: AtomicU64,
    builder_stale: AtomicU64,
    builder_fresh: AtomicU64,
}

/// What the payload builder's speculation did (see [`speculate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuilderSnapshot {
    /// Blocks built with a candidate feed to the end (one that fell back counts in
    /// [`MetricsSnapshot::fallbacks`] instead).
    pub blocks: u64,
    /// Block-STM runs over a window of candidates.
    pub windows: u64,
    /// Transactions committed from a speculative outcome.
    pub speculated: u64,
    /// Transactions whose speculative outcome read a location written differently since
    /// (executed afresh).
    pub stale: u64,
    /// Transactions of such blocks executed afresh (stale, not among the candidates, or in a
    /// window too small to run).
    pub fresh: u64,
}

/// A point-in-time copy of [`ExecutionMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Blocks executed with Block-STM (whole blocks, and per-transaction blocks every
    /// transaction of which Block-STM executed).
    pub parallel_blocks: u64,
    /// Blocks executed sequentially (small blocks, inspectors, per-transaction calls without a
    /// plan or after a fallback).
    pub sequential_blocks: u64,
    /// Transactions of all blocks.
    pub transactions: u64,
    /// Transaction incarnations Block-STM executed.
    pub executions: u64,
    /// Executions beyond one per transaction (aborted or suspended incarnations).
    pub re_executions: u64,
    /// Validations Block-STM performed.
    pub validations: u64,
    /// Incarnations aborted by a failed validation.
    pub aborts: u64,
    /// Executions suspended on a dependency.
    pub suspensions: u64,
    /// Blocks executed one transaction at a time (newPayload) every transaction of which came
    /// from Block-STM (included in `parallel_blocks`).
    pub per_tx_parallel_blocks: u64,
    /// Times Block-STM ran a plan for per-transaction calls (a run whose block then fell back
    /// or failed counts here, not in `per_tx_parallel_blocks`).
    pub per_tx_block_stm_runs: u64,
    /// State-read failures returned by per-transaction calls running on Block-STM (errors,
    /// as they are sequentially; not fallbacks).
    pub state_read_errors: u64,
    /// Blocks (whole, or planned payloads) executed sequentially because Block-STM ran the last
    /// block dominated by the same contract as a chain (see
    /// `velarium_executor::route_learned_chain`; included in `sequential_blocks`).
    pub learned_chain_blocks: u64,
    /// Per-transaction blocks that did not run, or stopped running, through Block-STM, by
    /// reason.
    pub fallbacks: PerTxFallbacks,
    /// The payload builder's speculation.
    pub builder: BuilderSnapshot,
}

impl ExecutionMetrics {
    fn record_parallel(&self, txs: usize, stats: &ParallelStats) {
        self.parallel_blocks.fetch_add(1, Ordering::Relaxed);
        self.transactions.fetch_add(txs as u64, Ordering::Relaxed);
        self.executions.fetch_add(stats.executions, Ordering::Relaxed);
        self.re_executions.fetch_add(stats.re_executions(txs), Ordering::Relaxed);
        self.validations.fetch_add(stats.validations, Ordering::Relaxed);
        self.aborts.fetch_add(stats.aborts, Ordering::Relaxed);
        self.suspensions.fetch_add(stats.suspensions, Ordering::Relaxed);
    }

    fn record_sequential(&self, txs: usize) {
        self.sequential_blocks.fetch_add(1, Ordering::Relaxed);
        self.transactions.fetch_add(txs as u64, Ordering::Relaxed);
    }

    fn record_fallback(&self, reason: PerTxFallback) {
        let index = PerTxFallback::ALL.iter().position(|&r| r == reason).unwrap_or_default();
        self.fallbacks[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let fallback = |reason: PerTxFallback| {
            PerTxFallback::ALL
                .iter()
                .position(|&r| r == reason)
                .map_or(0, |i| get(&self.fallbacks[i]))
        };
        MetricsSnapshot {
            parallel_blocks: get(&self.parallel_blocks),
            sequential_blocks: get(&self.sequential_blocks),
            transactions: get(&self.transactions),
            executions: get(&self.executions),
            re_executions: get(&self.re_executions),
            validations: get(&self.validations),
            aborts: get(&self.aborts),
            suspensions: get(&self.suspensions),
            per_tx_parallel_blocks: get(&self.per_tx_parallel_blocks),
            per_tx_block_stm_runs: get(&self.per_tx_block_stm_runs),
            state_read_errors: get(&self.state_read_errors),
            learned_chain_blocks: get(&self.learned_chain_blocks),
            fallbacks: PerTxFallbacks {
                disabled: fallback(PerTxFallback::Disabled),
                no_plan: fallback(PerTxFallback::NoPlan),
                inspector: fallback(PerTxFallback::Inspector),
                amsterdam: fallback(PerTxFallback::Amsterdam),
                small_block: fallback(PerTxFallback::SmallBlock),
                plan_mismatch: fallback(PerTxFallback::PlanMismatch),
                plan_truncated: fallback(PerTxFallback::PlanTruncated),
                plan_timeout: fallback(PerTxFallback::PlanTimeout),
                not_committed: fallback(PerTxFallback::NotCommitted),
                direct_call: fallback(PerTxFallback::DirectCall),
                engine_fault: fallback(PerTxFallback::EngineFault),
            },
            builder: BuilderSnapshot {
                blocks: get(&self.builder_blocks),
                windows: get(&self.builder_windows),
                speculated: get(&self.builder_speculated),
                stale: get(&self.builder_stale),
                fresh: get(&self.builder_fresh),
            },
        }
    }
}

/// A [`BlockExecutorFactory`] whose executors run blocks with Velarium's Block-STM engine
/// (see the crate docs); a drop-in for alloy-evm's [`EthBlockExecutorFactory`].
#[derive(Debug, Clone)]
pub struct ParallelBlockExecutorFactory<
    R = AlloyReceiptBuilder,
    Spec = EthSpec,
    EvmF = EthEvmFactory,
> {
    eth: EthBlockExecutorFactory<R, Spec, EvmF>,
    config: ParallelConfig,
    metrics: Arc<ExecutionMetrics>,
    plans: Arc<PlanRegistry>,
    candidates: Arc<CandidateRegistry>,
}

impl<R, Spec, EvmF> ParallelBlockExecutorFactory<R, Spec, EvmF> {
    /// A factory with the given receipt builder, chain spec, EVM factory and engine settings.
    pub fn new(receipt_builder: R, spec: Spec, evm_factory: EvmF, config: ParallelConfig) -> Self {
        Self::from_eth(EthBlockExecutorFactory::new(receipt_builder, spec, evm_factory), config)
    }

    /// The parallel counterpart of an existing [`EthBlockExecutorFactory`].
    pub fn from_eth(eth: EthBlockExecutorFactory<R, Spec, EvmF>, config: ParallelConfig) -> Self {
        Self {
            eth,
            config,
            metrics: Arc::default(),
            plans: Arc::default(),
            candidates: Arc::default(),
        }
    }

    /// This factory with the engine settings `config`, sharing its counters and registries
    /// (e.g. a verifier that runs Block-STM where the node's own executors do not).
    pub fn with_config(mut self, config: ParallelConfig) -> Self {
        self.config = config;
        self
    }

    /// This factory with `plans` as its plan registry (shared with whoever fills it).
    pub fn with_plans(mut self, plans: Arc<PlanRegistry>) -> Self {
        self.plans = plans;
        self
    }

    /// This factory with `candidates` as its candidate registry (shared with the payload
    /// builder's [`Lookahead`]).
    pub fn with_candidates(mut self, candidates: Arc<CandidateRegistry>) -> Self {
        self.candidates = candidates;
        self
    }

    /// The registry of payload builds' candidates that `create_executor` takes from (shared by
    /// its clones; see [`speculate`]).
    pub const fn candidates(&self) -> &Arc<CandidateRegistry> {
        &self.candidates
    }

    /// The chain spec.
    pub const fn spec(&self) -> &Spec {
        self.eth.spec()
    }

    /// The receipt builder.
    pub const fn receipt_builder(&self) -> &R {
        self.eth.receipt_builder()
    }

    /// The engine settings.
    pub const fn config(&self) -> &ParallelConfig {
        &self.config
    }

    /// Counters of every block this factory's executors ran (shared by its clones).
    pub const fn metrics(&self) -> &Arc<ExecutionMetrics> {
        &self.metrics
    }

    /// The registry of payload plans that `create_executor` takes from (shared by its clones;
    /// see [`plan`]).
    pub const fn plans(&self) -> &Arc<PlanRegistry> {
        &self.plans
    }
}

impl<R, Spec, EvmF> BlockExecutorFactory for ParallelBlockExecutorFactory<R, Spec, EvmF>
where
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718, Receipt: TxReceipt<Log = Log>>,
    Spec: EthExecutorSpec,
    EvmF: EvmFactory<Tx = TxEnv, Spec = SpecId, BlockEnv = BlockEnv, HaltReason = HaltReason>,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    TxTypeOf<R>: Send + 'static,
    Self: 'static,
{
    type EvmFactory = EvmF;
    type ExecutionCtx<'a> = EthBlockExecutionCtx<'a>;
    type Transaction = R::Transaction;
    type Receipt = R::Receipt;
    type TxExecutionResult = EthTxResult<HaltReason, TxTypeOf<R>>;
    type Executor<'a, DB: StateDB, I: Inspector<EvmF::Context<DB>>> =
        ParallelBlockExecutor<'a, EvmF::Evm<DB, I>, &'a Spec, &'a R>;

    fn evm_factory(&self) -> &Self::EvmFactory {
        self.eth.evm_factory()
    }

    fn create_executor<'a, DB, I>(
        &'a self,
        evm: EvmF::Evm<DB, I>,
        ctx: Self::ExecutionCtx<'a>,
    ) -> Self::Executor<'a, DB, I>
    where
        DB: StateDB,
        I: Inspector<EvmF::Context<DB>>,
    {
        let mut executor = ParallelBlockExecutor {
            inner: EthBlockExecutor::new(evm, ctx, self.eth.spec(), self.eth.receipt_builder()),
            config: self.config,
            metrics: &self.metrics,
            last_stats: None,
            per_tx: PerTx::Sequential,
            pre_executed: false,
            whole_block: false,
            chain_key: None,
        };
        executor.per_tx = executor.attach_plan(&self.plans, &self.candidates);
        executor
    }
}

/// The executor of [`ParallelBlockExecutorFactory`]: alloy-evm's [`EthBlockExecutor`] for
/// pre/post-execution and per-transaction calls without a plan, Block-STM for whole blocks and
/// for the per-transaction calls of a planned payload (see the crate docs).
#[allow(missing_debug_implementations)] // alloy-evm's executor is `Debug` only with `Debug` receipts
pub struct ParallelBlockExecutor<'a, E, Spec, R: ReceiptBuilder> {
    inner: EthBlockExecutor<'a, E, Spec, R>,
    config: ParallelConfig,
    metrics: &'a ExecutionMetrics,
    last_stats: Option<ParallelStats>,
    /// Where per-transaction calls stand with Block-STM.
    per_tx: PerTx,
    /// `apply_pre_execution_changes` ran (Block-STM must read the state after it).
    pre_executed: bool,
    /// `execute_block` ran (it records its own path).
    whole_block: bool,
    /// The block's dominant contract, to learn whether Block-STM ran it as a chain (see
    /// [`ParallelBlockExecutor::learned_chain`]).
    chain_key: Option<velarium_executor::ChainKey>,
}

/// Where an executor's per-transaction calls stand with Block-STM.
#[derive(Debug)]
enum PerTx {
    /// Block-STM never starts, for this reason (counted at `finish`).
    Off(PerTxFallback),
    /// A plan is attached: Block-STM runs at the first transaction call.
    Planned { plan: Arc<PayloadPlan>, wait: Duration },
    /// Block-STM runs (streaming): call `next` commits its outcome as soon as it is final.
    Streaming(Box<Streaming>),
    /// A payload builder's candidates are fed in: calls run them ahead in windows.
    Speculating(Box<Speculation>),
    /// Sequential: after a fallback (counted when it happened), an error, or a whole block.
    Sequential,
}

/// Block-STM's run over a plan, its outcomes waiting for their calls.
#[derive(Debug)]
struct Streaming {
    /// The plan's trie hashes and signers.
    ids: Vec<(B256, Address)>,
    /// The run (it holds the plan's transaction environments, what Block-STM executes);
    /// outcome `run.position()` (the next call's transaction) onwards are still to come.
    run: StreamingRun,
    /// A failed conversion cut the plan short of the payload.
    truncated: bool,
}

impl<E, Spec, R: ReceiptBuilder> ParallelBlockExecutor<'_, E, Spec, R> {
    /// Block-STM's counters for the block, if it ran through Block-STM.
    pub const fn parallel_stats(&self) -> Option<ParallelStats> {
        self.last_stats
    }

    /// Whether per-transaction calls are (or will be, at the first one) served by Block-STM.
    pub const fn uses_block_stm(&self) -> bool {
        matches!(self.per_tx, PerTx::Planned { .. } | PerTx::Streaming(_) | PerTx::Speculating(_))
    }
}

impl<E, Spec, R> ParallelBlockExecutor<'_, E, Spec, R>
where
    E: Evm<DB: StateDB, Tx = TxEnv, Spec = SpecId, BlockEnv = BlockEnv, HaltReason = HaltReason>,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    Spec: EthExecutorSpec,
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718, Receipt: TxReceipt<Log = Log>>,
    TxTypeOf<R>: Send + 'static,
{
    /// Why a block of `txs` transactions cannot run through Block-STM, if it cannot.
    fn blocker(&self, txs: usize) -> Option<PerTxFallback> {
        if !self.config.block_stm {
            return Some(PerTxFallback::Disabled);
        }
        let cfg = self.inner.evm().cfg_env();
        // An inspector must observe the one sequential execution of every transaction. The
        // type itself is compared (`typeid` also covers inspector types with lifetimes), not
        // its name, which the compiler does not promise to keep unique or stable.
        if typeid::of::<E::Inspector>() != typeid::of::<NoOpInspector>() {
            Some(PerTxFallback::Inspector)
        } else if cfg.spec.is_enabled_in(SpecId::AMSTERDAM) || cfg.enable_amsterdam_eip8037 {
            Some(PerTxFallback::Amsterdam)
        } else if txs == 0 || txs < self.config.min_txs {
            Some(PerTxFallback::SmallBlock)
        } else {
            None
        }
    }

    /// Whether a block of `txs` transactions runs through Block-STM.
    fn runs_parallel(&self, txs: usize) -> bool {
        self.blocker(txs).is_none()
    }

    /// Whether a block of these `len` transactions (`to(i)`: the callee of the `i`th) goes to
    /// the sequential executor because Block-STM ran the last block dominated by the same
    /// contract as a chain, as `velarium_executor::Engine` decides (counted; never with
    /// [`ParallelConfig::min_txs`] 0, which forces Block-STM); otherwise the contract is kept to
    /// [`Self::learn_chain`] from the run.
    fn learned_chain(&mut self, len: usize, to: impl Fn(usize) -> Option<Address>) -> bool {
        if self.config.min_txs == 0 {
            // Block-STM forced on every block, as `Engine` with a threshold of 0.
            return false;
        }
        let callee = velarium_executor::dominant_callee_by(len, to);
        let db = self.inner.evm_mut().db_mut();
        let route = velarium_executor::route_learned_chain(callee, |address| {
            revm::Database::basic(db, address).ok().flatten().map(|info| info.code_hash)
        });
        match route {
            LearnedRoute::Oracle => {
                self.metrics.learned_chain_blocks.fetch_add(1, Ordering::Relaxed);
                true
            }
            LearnedRoute::BlockStm(key) => {
                self.chain_key = key;
                false
            }
        }
    }

    /// Learns from Block-STM's run of this block's `txs` transactions (see
    /// [`Self::learned_chain`]).
    fn learn_chain(&mut self, stats: &ParallelStats, txs: usize) {
        if let Some(key) = self.chain_key.take() {
            velarium_executor::learn_chain(key, stats, txs);
        }
    }

    /// Takes this block's plan from `plans` (or, for a block being built, its feed from
    /// `candidates`) if Block-STM could run it.
    fn attach_plan(&self, plans: &PlanRegistry, candidates: &CandidateRegistry) -> PerTx {
        let ctx = &self.inner.ctx;
        let Some(txs) = ctx.tx_count_hint else {
            if let Some(reason) = self.blocker(usize::MAX) {
                return PerTx::Off(reason);
            }
            let key = BuildKey::of_block(ctx.parent_hash, self.inner.evm().block());
            return match key.and_then(|key| candidates.take_matching(&key)) {
                Some(feed) => PerTx::Speculating(Box::new(Speculation::new(feed))),
                None => PerTx::Off(PerTxFallback::NoPlan),
            };
        };
        if let Some(reason) = self.blocker(txs) {
            return PerTx::Off(reason);
        }
        let key = PayloadKey::of_block(ctx.parent_hash, Some(txs), self.inner.evm().block());
        match key.and_then(|key| plans.take_matching(&key)) {
            Some(plan) => PerTx::Planned { plan, wait: plans.wait() },
            None => PerTx::Off(PerTxFallback::NoPlan),
        }
    }

    /// Leaves Block-STM for `reason`, if per-transaction calls were on it; later calls run
    /// sequentially from the committed prefix.
    fn fall_back(&mut self, reason: PerTxFallback) {
        if matches!(
            self.per_tx,
            PerTx::Planned { .. } | PerTx::Streaming(_) | PerTx::Speculating(_)
        ) {
            self.metrics.record_fallback(reason);
            self.per_tx = PerTx::Sequential;
        }
    }

    /// Starts Block-STM on the attached plan (the first transaction call): afterwards the
    /// executor is `Streaming`, or `Sequential` after a counted fallback. A state-read failure is
    /// returned.
    fn start_block_stm(&mut self) -> Result<(), BlockExecutionError> {
        let PerTx::Planned { plan, wait } = std::mem::replace(&mut self.per_tx, PerTx::Sequential)
        else {
            return Ok(());
        };
        let fall_back = |reason| {
            self.metrics.record_fallback(reason);
            Ok(())
        };
        if !self.pre_executed || !self.inner.receipts().is_empty() {
            return fall_back(PerTxFallback::DirectCall);
        }
        let Some(txs) = plan.wait_and_take(wait) else {
            return fall_back(PerTxFallback::PlanTimeout);
        };
        let truncated = txs.len() < plan.key().tx_count;
        if !self.runs_parallel(txs.len()) {
            return fall_back(PerTxFallback::PlanTruncated);
        }
        let (envs, ids): (Vec<TxEnv>, Vec<_>) =
            txs.into_iter().map(|tx| (tx.tx_env, (tx.hash, tx.signer))).unzip();
        if self.learned_chain(envs.len(), |i| envs[i].kind.to().copied()) {
            // Sequentially, as a block of a contract that chains (counted; not a fallback).
            return Ok(());
        }
        let cfg = self.inner.evm().cfg_env().clone();
        let block_env = self.inner.evm().block().clone();
        let threads = self.config.threads;
        self.metrics.per_tx_block_stm_runs.fetch_add(1, Ordering::Relaxed);
        let db = self.inner.evm_mut().db_mut();
        // The engine turns its workers' panics into errors; a panic on this thread (its set-up
        // reads) is caught too: this is the caller's (reth's engine) thread. The `State` was
        // only read (its cache filled), so the sequential fallback starts from it intact.
        let tx_count = envs.len();
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            velarium_executor::start_streaming(db, &cfg, &block_env, envs, threads)
        }));
        match run {
            Ok(Ok(run)) if run.len() == tx_count => {
                self.per_tx = PerTx::Streaming(Box::new(Streaming { ids, run, truncated }));
                Ok(())
            }
            Ok(Err(err @ ExecutionError::StateRead(_))) => {
                self.metrics.state_read_errors.fetch_add(1, Ordering::Relaxed);
                Err(engine_error(err))
            }
            Ok(_) | Err(_) => {
                self.metrics.record_fallback(PerTxFallback::EngineFault);
                Ok(())
            }
        }
    }

    /// Block-STM's outcome for the call of the transaction `(tx_env, hash, signer)` (waiting
    /// for it to be final, serving the workers' reads meanwhile), or the reason to continue
    /// sequentially. Only in `Streaming` state.
    fn next_outcome(
        &mut self,
        tx_env: &TxEnv,
        hash: B256,
        signer: Address,
    ) -> Result<SpeculativeTx, PerTxFallback> {
        let committed = self.inner.receipts().len();
        let PerTx::Streaming(streaming) = &mut self.per_tx else {
            return Err(PerTxFallback::EngineFault);
        };
        // Each call takes one outcome and commits it: anything else committed in between
        // (direct calls) puts the two apart.
        let index = streaming.run.position();
        if committed != index {
            return Err(PerTxFallback::DirectCall);
        }
        if index >= streaming.run.len() {
            return Err(if streaming.truncated {
                PerTxFallback::PlanTruncated
            } else {
                PerTxFallback::PlanMismatch
            });
        }
        if streaming.ids[index] != (hash, signer) || streaming.run.tx_env(index) != Some(tx_env) {
            return Err(PerTxFallback::PlanMismatch);
        }
        let db = self.inner.evm_mut().db_mut();
        let next = std::panic::catch_unwind(AssertUnwindSafe(|| streaming.run.next(db)));
        match next {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) | Err(_) => Err(PerTxFallback::EngineFault),
        }
    }

    /// `EthBlockExecutor`'s block-gas admission check, against the committed gas.
    fn check_block_gas(&self, gas_limit: u64) -> Result<(), BlockExecutionError> {
        let evm = self.inner.evm();
        let available = evm.block().gas_limit - self.inner.cumulative_tx_gas_used;
        let mut max_tx_gas = gas_limit;
        if let Some(cap) = evm.cfg_env().tx_gas_limit_cap {
            max_tx_gas = max_tx_gas.min(cap);
        }
        if max_tx_gas > available {
            return Err(BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas {
                transaction_gas_limit: gas_limit,
                block_available_gas: available,
            }
            .into());
        }
        Ok(())
    }

    /// Outcome `outcome` as sequential execution gives it on the current `State`, with the fee
    /// merged (see `outcome.rs`); a panic is an engine error.
    fn materialise(
        &mut self,
        outcome: SpeculativeTx,
    ) -> Result<Result<ResultAndState, EVMError<TxDbError>>, ExecutionError> {
        let spec = self.inner.evm().cfg_env().spec;
        let beneficiary = self.inner.evm().block().beneficiary;
        let db = self.inner.evm_mut().db_mut();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            outcome::materialise(db, spec, beneficiary, outcome)
        }))
        .unwrap_or_else(|panic| {
            Err(ExecutionError::Engine(velarium_executor::EngineFault::WorkerPanic(
                velarium_executor::panic_message(&panic),
            )))
        })
    }

    /// A transaction call of a build with candidates (see [`speculate`]): its outcome from the
    /// current window if still exact (executed afresh if stale), else from a new window that
    /// starts at it, else executed afresh.
    fn execute_candidate(
        &mut self,
        tx: impl ExecutableTx<Self>,
        f: impl FnOnce(&<Self as BlockExecutor>::Result) -> CommitChanges,
    ) -> Result<Option<GasOutput>, BlockExecutionError> {
        let PerTx::Speculating(mut spec) = std::mem::replace(&mut self.per_tx, PerTx::Sequential)
        else {
            return self.inner.execute_transaction_with_commit_condition(tx, f);
        };
        let (tx_env, tx) = tx.into_parts();
        if !self.pre_executed || self.inner.receipts().len() != spec.committed {
            self.metrics.record_fallback(PerTxFallback::DirectCall);
            return self.inner.execute_transaction_with_commit_condition((tx_env, tx), f);
        }
        let (hash, signer) = (tx.tx().trie_hash(), *tx.signer());
        let lookup = match spec.window.as_mut() {
            Some(window) => window.take(hash, signer, &tx_env),
            None => speculate::Lookup::Absent,
        };
        if let Some(window) = &spec.window {
            spec.cursor = spec.cursor.max(window.feed_position());
        }
        let outcome = match lookup {
            speculate::Lookup::Valid(outcome) => Some(outcome),
            // Runs afresh, and the window goes on: a new window here could be stale again at
            // the next skip, so every skip would re-run the rest (each transaction runs at most
            // twice this way).
            speculate::Lookup::Stale => {
                self.metrics.builder_stale.fetch_add(1, Ordering::Relaxed);
                None
            }
            speculate::Lookup::Absent => self.run_window(&mut spec, hash, signer, &tx_env)?,
        };
        if matches!(self.per_tx, PerTx::Off(PerTxFallback::EngineFault)) {
            // The window faulted (counted): this block goes on sequentially.
            self.per_tx = PerTx::Sequential;
            return self.inner.execute_transaction_with_commit_condition((tx_env, tx), f);
        }
        let Some(outcome) = outcome else {
            // Executed afresh; what it writes is dirty for the window's later outcomes.
            self.metrics.builder_fresh.fetch_add(1, Ordering::Relaxed);
            let output = self.inner.execute_transaction_without_commit((tx_env, tx));
            let output = match output {
                Ok(output) => output,
                Err(err) => {
                    self.per_tx = PerTx::Speculating(spec);
                    return Err(err);
                }
            };
            if let Some(window) = spec.window.as_mut() {
                window.mark_state(&output.result.state);
            }
            let gas = f(&output).should_commit().then(|| {
                spec.committed += 1;
                self.inner.commit_transaction(output)
            });
            self.per_tx = PerTx::Speculating(spec);
            return Ok(gas);
        };
        if let Err(err) = self.check_block_gas(tx.tx().gas_limit()) {
            // Not committed: the window's later outcomes must not rely on it.
            if let Some(window) = spec.window.as_mut() {
                window.poison();
            }
            self.per_tx = PerTx::Speculating(spec);
            return Err(err);
        }
        let result = match self.materialise(outcome) {
            Ok(Ok(result)) => result,
            Ok(Err(EVMError::Database(TxDbError::Blocked(_)))) | Err(ExecutionError::Engine(_)) => {
                self.metrics.record_fallback(PerTxFallback::EngineFault);
                return self.inner.execute_transaction_with_commit_condition((tx_env, tx), f);
            }
            Ok(Err(err)) => {
                if matches!(err, EVMError::Database(_)) {
                    self.metrics.state_read_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    // Invalid, as sequentially: Block-STM gave it no writes, so the window's
                    // later outcomes still hold.
                    self.per_tx = PerTx::Speculating(spec);
                }
                return Err(BlockExecutionError::evm(err, hash));
            }
            Err(err) => {
                if matches!(err, ExecutionError::StateRead(_)) {
                    self.metrics.state_read_errors.fetch_add(1, Ordering::Relaxed);
                }
                return Err(engine_error(err));
            }
        };
        let output = EthTxResult {
            result,
            blob_gas_used: tx.tx().blob_gas_used().unwrap_or_default(),
            tx_type: tx.tx().tx_type(),
        };
        let gas = if f(&output).should_commit() {
            spec.committed += 1;
            self.metrics.builder_speculated.fetch_add(1, Ordering::Relaxed);
            Some(self.inner.commit_transaction(output))
        } else {
            if let Some(window) = spec.window.as_mut() {
                window.poison();
            }
            None
        };
        self.per_tx = PerTx::Speculating(spec);
        Ok(gas)
    }

    /// Runs the candidates from the transaction `(hash, signer, tx_env)` on through Block-STM
    /// as the new window, and returns its outcome. `None`: it is not a candidate, too few
    /// candidates are left to be worth a run, or the engine faulted (then `per_tx` is
    /// `Off(EngineFault)`, counted).
    fn run_window(
        &mut self,
        spec: &mut Speculation,
        hash: B256,
        signer: Address,
        tx_env: &TxEnv,
    ) -> Result<Option<SpeculativeTx>, BlockExecutionError> {
        // Every candidate pulled so far from this one on: the lookahead's depth bounds them.
        let Some((at, txs)) = spec.feed.find(spec.cursor, hash, signer, usize::MAX) else {
            return Ok(None);
        };
        spec.cursor = at + 1;
        // The old window lies wholly before this transaction.
        spec.window = None;
        if txs.len() < 2 || txs[0].tx_env != *tx_env || !self.runs_parallel(txs.len()) {
            return Ok(None);
        }
        let mut window = Window::new(at, txs);
        let cfg = self.inner.evm().cfg_env().clone();
        let block_env = self.inner.evm().block().clone();
        let threads = self.config.threads;
        self.metrics.builder_windows.fetch_add(1, Ordering::Relaxed);
        let db = self.inner.evm_mut().db_mut();
        // As `start_block_stm`: the `State` is only read, so the block goes on from it intact.
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            velarium_executor::execute_transactions_traced(
                db,
                &cfg,
                &block_env,
                window.envs(),
                threads,
            )
        }));
        match run {
            Ok(Ok((outcomes, _))) if outcomes.len() == window.envs().len() => {
                window.set_outcomes(outcomes);
                let first = window.take(hash, signer, tx_env);
                spec.window = Some(window);
                match first {
                    speculate::Lookup::Valid(outcome) => Ok(Some(outcome)),
                    _ => Ok(None),
                }
            }
            Ok(Err(err @ ExecutionError::StateRead(_))) => {
                self.metrics.state_read_errors.fetch_add(1, Ordering::Relaxed);
                Err(engine_error(err))
            }
            Ok(_) | Err(_) => {
                self.metrics.record_fallback(PerTxFallback::EngineFault);
                self.per_tx = PerTx::Off(PerTxFallback::EngineFault);
                Ok(None)
            }
        }
    }

    /// Records how the block ran (at `finish`).
    fn record_block(&mut self) {
        let txs = self.inner.receipts().len();
        if self.whole_block {
            // `execute_parallel` recorded a parallel block itself.
            if self.last_stats.is_none() {
                self.metrics.record_sequential(txs);
            }
            return;
        }
        match std::mem::replace(&mut self.per_tx, PerTx::Sequential) {
            PerTx::Streaming(streaming) => match streaming.run.finish() {
                Ok(stats) => {
                    self.learn_chain(&stats, txs);
                    self.metrics.record_parallel(txs, &stats);
                    self.metrics.per_tx_parallel_blocks.fetch_add(1, Ordering::Relaxed);
                    self.last_stats = Some(stats);
                }
                Err(_) => {
                    // Every outcome was final when it was committed; the run broke afterwards.
                    self.metrics.record_fallback(PerTxFallback::EngineFault);
                    self.metrics.record_sequential(txs);
                }
            },
            PerTx::Off(reason) => {
                self.metrics.record_fallback(reason);
                self.metrics.record_sequential(txs);
            }
            PerTx::Speculating(_) => {
                self.metrics.builder_blocks.fetch_add(1, Ordering::Relaxed);
                self.metrics.record_sequential(txs);
            }
            PerTx::Planned { .. } | PerTx::Sequential => self.metrics.record_sequential(txs),
        }
    }

    /// Runs already pre-executed `txs` with Block-STM and commits them in order.
    fn execute_parallel<T>(&mut self, txs: Vec<(TxEnv, T)>) -> Result<(), BlockExecutionError>
    where
        T: RecoveredTx<R::Transaction>,
    {
        let (envs, recovered): (Vec<TxEnv>, Vec<T>) = txs.into_iter().unzip();
        let cfg = self.inner.evm().cfg_env().clone();
        let block_env = self.inner.evm().block().clone();
        let (outcomes, stats) = velarium_executor::execute_transactions(
            self.inner.evm_mut().db_mut(),
            &cfg,
            &block_env,
            &envs,
            self.config.threads,
        )
        .map_err(engine_error)?;
        for (tx, outcome) in recovered.iter().zip(outcomes) {
            // The checks `EthBlockExecutor::execute_transaction_without_commit` makes first.
            self.check_block_gas(tx.tx().gas_limit())?;
            let result = outcome::materialise(
                self.inner.evm_mut().db_mut(),
                cfg.spec,
                block_env.beneficiary,
                outcome,
            )
            .map_err(engine_error)?
            .map_err(|err| BlockExecutionError::evm(err, tx.tx().trie_hash()))?;
            // One commit per transaction, its fee merged: the state hook sees what it sees
            // sequentially.
            self.inner.commit_transaction(EthTxResult {
                result,
                blob_gas_used: tx.tx().blob_gas_used().unwrap_or_default(),
                tx_type: tx.tx().tx_type(),
            });
        }
        self.learn_chain(&stats, envs.len());
        self.metrics.record_parallel(envs.len(), &stats);
        self.last_stats = Some(stats);
        Ok(())
    }
}

/// The engine's own failures (a state read failed, a worker panicked) as alloy-evm errors.
fn engine_error(err: ExecutionError) -> BlockExecutionError {
    match err {
        ExecutionError::Block(err) => err,
        other => BlockExecutionError::other(other),
    }
}

impl<E, Spec, R> BlockExecutor for ParallelBlockExecutor<'_, E, Spec, R>
where
    E: Evm<DB: StateDB, Tx = TxEnv, Spec = SpecId, BlockEnv = BlockEnv, HaltReason = HaltReason>,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    Spec: EthExecutorSpec,
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718, Receipt: TxReceipt<Log = Log>>,
    TxTypeOf<R>: Send + 'static,
{
    type Transaction = R::Transaction;
    type Receipt = R::Receipt;
    type Evm = E;
    type Result = EthTxResult<HaltReason, TxTypeOf<R>>;

    fn apply_pre_execution_changes(&mut self) -> Result<(), BlockExecutionError> {
        self.inner.apply_pre_execution_changes()?;
        self.pre_executed = true;
        Ok(())
    }

    /// `execute_transaction` and `execute_transaction_with_result_closure` come here too (the
    /// trait's defaults). With a plan, the transaction's result comes from Block-STM (see the
    /// crate docs); otherwise, or after a fallback, from alloy-evm's `EthBlockExecutor`.
    fn execute_transaction_with_commit_condition(
        &mut self,
        tx: impl ExecutableTx<Self>,
        f: impl FnOnce(&Self::Result) -> CommitChanges,
    ) -> Result<Option<GasOutput>, BlockExecutionError> {
        if matches!(self.per_tx, PerTx::Planned { .. }) {
            self.start_block_stm()?;
        }
        if matches!(self.per_tx, PerTx::Speculating(_)) {
            return self.execute_candidate(tx, f);
        }
        if !matches!(self.per_tx, PerTx::Streaming(_)) {
            return self.inner.execute_transaction_with_commit_condition(tx, f);
        }
        let (tx_env, tx) = tx.into_parts();
        let hash = tx.tx().trie_hash();
        let outcome = match self.next_outcome(&tx_env, hash, *tx.signer()) {
            Ok(outcome) => outcome,
            Err(reason) => {
                self.fall_back(reason);
                return self.inner.execute_transaction_with_commit_condition((tx_env, tx), f);
            }
        };
        if let Err(err) = self.check_block_gas(tx.tx().gas_limit()) {
            self.per_tx = PerTx::Sequential;
            return Err(err);
        }
        let result = match self.materialise(outcome) {
            Ok(Ok(result)) => result,
            Ok(Err(EVMError::Database(TxDbError::Blocked(_)))) | Err(ExecutionError::Engine(_)) => {
                // Not a final outcome, or an engine invariant: nothing of this transaction is
                // committed, so it runs sequentially on the committed prefix.
                self.fall_back(PerTxFallback::EngineFault);
                return self.inner.execute_transaction_with_commit_condition((tx_env, tx), f);
            }
            Ok(Err(err)) => {
                // Invalid, or its own state read failed: sequential's error, at its index.
                if matches!(err, EVMError::Database(_)) {
                    self.metrics.state_read_errors.fetch_add(1, Ordering::Relaxed);
                }
                self.per_tx = PerTx::Sequential;
                return Err(BlockExecutionError::evm(err, hash));
            }
            Err(err) => {
                if matches!(err, ExecutionError::StateRead(_)) {
                    self.metrics.state_read_errors.fetch_add(1, Ordering::Relaxed);
                }
                self.per_tx = PerTx::Sequential;
                return Err(engine_error(err));
            }
        };
        let output = EthTxResult {
            result,
            blob_gas_used: tx.tx().blob_gas_used().unwrap_or_default(),
            tx_type: tx.tx().tx_type(),
        };
        if !f(&output).should_commit() {
            // Every later outcome assumed this transaction committed.
            self.fall_back(PerTxFallback::NotCommitted);
            return Ok(None);
        }
        if let PerTx::Streaming(streaming) = &self.per_tx {
            // The workers' reads that came in while this call turned the outcome into its
            // result are answered before the commit (which serves none).
            streaming.run.serve(self.inner.evm_mut().db_mut());
        }
        Ok(Some(self.inner.commit_transaction(output)))
    }

    fn execute_transaction_without_commit(
        &mut self,
        tx: impl ExecutableTx<Self>,
    ) -> Result<Self::Result, BlockExecutionError> {
        self.fall_back(PerTxFallback::DirectCall);
        self.inner.execute_transaction_without_commit(tx)
    }

    fn commit_transaction(&mut self, output: Self::Result) -> GasOutput {
        self.fall_back(PerTxFallback::DirectCall);
        self.inner.commit_transaction(output)
    }

    fn finish(
        mut self,
    ) -> Result<(Self::Evm, BlockExecutionResult<R::Receipt>), BlockExecutionError> {
        self.record_block();
        self.inner.finish()
    }

    fn evm_mut(&mut self) -> &mut Self::Evm {
        self.inner.evm_mut()
    }

    fn evm(&self) -> &Self::Evm {
        self.inner.evm()
    }

    fn receipts(&self) -> &[Self::Receipt] {
        self.inner.receipts()
    }

    fn execute_block(
        mut self,
        transactions: impl IntoIterator<Item = impl ExecutableTx<Self>>,
    ) -> Result<BlockExecutionResult<Self::Receipt>, BlockExecutionError> {
        self.whole_block = true;
        self.per_tx = PerTx::Sequential;
        self.apply_pre_execution_changes()?;
        let txs: Vec<_> = transactions.into_iter().map(ExecutableTxParts::into_parts).collect();
        if self.runs_parallel(txs.len())
            && !self.learned_chain(txs.len(), |i| txs[i].0.kind.to().copied())
        {
            self.execute_parallel(txs)?;
        } else {
            for tx in txs {
                self.inner.execute_transaction(tx)?;
            }
        }
        self.apply_post_execution_changes()
    }
}
