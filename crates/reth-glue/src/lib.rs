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
//!   with Block-STM (the workers' state reads are served by the calling thread, which owns the
//!   `State`; see `velarium_executor::execute_transactions`), then each transaction's result is
//!   committed **in order, one commit per transaction plus its fee credit**, through alloy-evm's
//!   own `commit_transaction`, so receipts, gas accounting, the state hook reth installs on
//!   `State` and the `BundleState` it later takes are exactly the sequential ones. Finally
//!   alloy-evm's post-execution code runs unchanged.
//! * **One transaction at a time** (`apply_pre_execution_changes`, `execute_transaction*` per
//!   transaction, `receipts()` read between calls, `finish`: reth's newPayload path, its
//!   `BasicBlockExecutor::execute_one` used by the pipeline and `reth import`, and the payload
//!   builder): the caller needs each transaction's exact result (gas, the closure's
//!   `ResultAndState`, the receipt) before it hands over the next transaction, so there is
//!   nothing to run in parallel; these calls execute immediately through alloy-evm's
//!   `EthBlockExecutor`, which keeps every value reth reads between calls exact. Buffering them
//!   and returning results later would have to invent those values.
//!
//! Blocks with fewer than [`ParallelConfig::min_txs`] transactions, blocks executed under an
//! inspector (tracing), and Amsterdam blocks (EIP-7928 access lists index every transaction's
//! reads) run through the sequential path as well. [`ExecutionMetrics`] counts which path each
//! block took and Block-STM's work.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use alloy_consensus::{Transaction, TransactionEnvelope, TxReceipt};
use alloy_eips::eip2718::Encodable2718;
use alloy_evm::{
    block::{
        BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory,
        BlockValidationError, ExecutableTx, ExecutableTxParts, GasOutput, StateDB,
    },
    eth::{
        receipt_builder::{AlloyReceiptBuilder, ReceiptBuilder},
        spec::{EthExecutorSpec, EthSpec},
        EthBlockExecutionCtx, EthBlockExecutor, EthBlockExecutorFactory, EthTxResult,
    },
    EthEvmFactory, Evm, EvmFactory, FromRecoveredTx, FromTxWithEncoded, RecoveredTx,
};
use alloy_primitives::Log;
use revm::{
    context::{result::HaltReason, BlockEnv, TxEnv},
    inspector::NoOpInspector,
    primitives::hardfork::SpecId,
    Inspector,
};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};
use velarium_executor::{ExecutionError, ParallelStats, DEFAULT_PARALLEL_MIN_TXS};

/// The transaction envelope's type tag, as alloy-evm's result carries it.
type TxTypeOf<R> = <<R as ReceiptBuilder>::Transaction as TransactionEnvelope>::TxType;

/// How the factory's executors use the parallel engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParallelConfig {
    /// Block-STM worker threads.
    pub threads: usize,
    /// Blocks with fewer transactions run sequentially (0: every block through Block-STM).
    pub min_txs: usize,
}

impl Default for ParallelConfig {
    /// One worker per core; [`DEFAULT_PARALLEL_MIN_TXS`] (measured) as the small-block threshold.
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            min_txs: DEFAULT_PARALLEL_MIN_TXS,
        }
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
}

/// A point-in-time copy of [`ExecutionMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Blocks executed with Block-STM.
    pub parallel_blocks: u64,
    /// Blocks executed sequentially (per-transaction calls, small blocks, inspectors).
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

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            parallel_blocks: get(&self.parallel_blocks),
            sequential_blocks: get(&self.sequential_blocks),
            transactions: get(&self.transactions),
            executions: get(&self.executions),
            re_executions: get(&self.re_executions),
            validations: get(&self.validations),
            aborts: get(&self.aborts),
            suspensions: get(&self.suspensions),
        }
    }
}

/// A [`BlockExecutorFactory`] whose executors run whole blocks with Velarium's Block-STM engine
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
}

impl<R, Spec, EvmF> ParallelBlockExecutorFactory<R, Spec, EvmF> {
    /// A factory with the given receipt builder, chain spec, EVM factory and engine settings.
    pub fn new(receipt_builder: R, spec: Spec, evm_factory: EvmF, config: ParallelConfig) -> Self {
        Self::from_eth(EthBlockExecutorFactory::new(receipt_builder, spec, evm_factory), config)
    }

    /// The parallel counterpart of an existing [`EthBlockExecutorFactory`].
    pub fn from_eth(eth: EthBlockExecutorFactory<R, Spec, EvmF>, config: ParallelConfig) -> Self {
        Self { eth, config, metrics: Arc::default() }
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
        ParallelBlockExecutor {
            inner: EthBlockExecutor::new(evm, ctx, self.eth.spec(), self.eth.receipt_builder()),
            config: self.config,
            metrics: &self.metrics,
            last_stats: None,
        }
    }
}

/// The executor of [`ParallelBlockExecutorFactory`]: alloy-evm's [`EthBlockExecutor`] for
/// pre/post-execution and per-transaction calls, Block-STM for whole blocks.
#[allow(missing_debug_implementations)] // alloy-evm's executor is `Debug` only with `Debug` receipts
pub struct ParallelBlockExecutor<'a, E, Spec, R: ReceiptBuilder> {
    inner: EthBlockExecutor<'a, E, Spec, R>,
    config: ParallelConfig,
    metrics: &'a ExecutionMetrics,
    last_stats: Option<ParallelStats>,
}

impl<E, Spec, R: ReceiptBuilder> ParallelBlockExecutor<'_, E, Spec, R> {
    /// Block-STM's counters for the block, if it ran through Block-STM.
    pub const fn parallel_stats(&self) -> Option<ParallelStats> {
        self.last_stats
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
    /// Whether a block of `txs` transactions runs through Block-STM.
    fn runs_parallel(&self, txs: usize) -> bool {
        let cfg = self.inner.evm().cfg_env();
        txs > 0
            && txs >= self.config.min_txs
            // An inspector must observe the one sequential execution of every transaction. The
            // type itself is compared (`typeid` also covers inspector types with lifetimes),
            // not its name, which the compiler does not promise to keep unique or stable.
            && typeid::of::<E::Inspector>() == typeid::of::<NoOpInspector>()
            && !cfg.spec.is_enabled_in(SpecId::AMSTERDAM)
            && !cfg.enable_amsterdam_eip8037
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
            let available = block_env.gas_limit - self.inner.cumulative_tx_gas_used;
            let mut max_tx_gas = tx.tx().gas_limit();
            if let Some(cap) = cfg.tx_gas_limit_cap {
                max_tx_gas = max_tx_gas.min(cap);
            }
            if max_tx_gas > available {
                return Err(BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas {
                    transaction_gas_limit: tx.tx().gas_limit(),
                    block_available_gas: available,
                }
                .into());
            }
            let fee = outcome.fee();
            let db = self.inner.evm_mut().db_mut();
            let result = outcome
                .into_result(db)
                .map_err(engine_error)?
                .map_err(|err| BlockExecutionError::evm(err, tx.tx().trie_hash()))?;
            self.inner.commit_transaction(EthTxResult {
                result,
                blob_gas_used: tx.tx().blob_gas_used().unwrap_or_default(),
                tx_type: tx.tx().tx_type(),
            });
            velarium_executor::credit_beneficiary(
                self.inner.evm_mut().db_mut(),
                cfg.spec,
                block_env.beneficiary,
                fee,
            )
            .map_err(engine_error)?;
        }
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
        self.inner.apply_pre_execution_changes()
    }

    fn execute_transaction_without_commit(
        &mut self,
        tx: impl ExecutableTx<Self>,
    ) -> Result<Self::Result, BlockExecutionError> {
        self.inner.execute_transaction_without_commit(tx)
    }

    fn commit_transaction(&mut self, output: Self::Result) -> GasOutput {
        self.inner.commit_transaction(output)
    }

    fn finish(self) -> Result<(Self::Evm, BlockExecutionResult<R::Receipt>), BlockExecutionError> {
        if self.last_stats.is_none() {
            self.metrics.record_sequential(self.inner.receipts().len());
        }
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
        self.apply_pre_execution_changes()?;
        let txs: Vec<_> = transactions.into_iter().map(ExecutableTxParts::into_parts).collect();
        if self.runs_parallel(txs.len()) {
            self.execute_parallel(txs)?;
        } else {
            for tx in txs {
                self.inner.execute_transaction(tx)?;
            }
        }
        self.apply_post_execution_changes()
    }
}
