//! [`VelariumEvmConfig`]: reth's Ethereum EVM configuration with Velarium's parallel block
//! executor factory.
//!
//! Everything that is not block execution (EVM environments, execution contexts, the block
//! assembler, the engine API's payload conversions) is delegated to reth's own
//! [`EthEvmConfig`], so the node behaves exactly like reth's Ethereum node apart from how blocks
//! are executed.
//!
//! Which calls run in parallel:
//! - [`BlockExecutor::execute_block`] with a whole block: the pipeline's execution stage (`reth
//!   import`, historical sync), `re-execute`, ExEx backfill and the `velarium-verify` ExEx reach it
//!   through [`VelariumEvmConfig::batch_executor`] / [`VelariumEvmConfig::executor`], whose
//!   [`Executor::execute_one`] hands the whole block over (see [`VelariumBlockExecutor`]).
//! - The engine's `newPayload` path calls `execute_transaction` one transaction at a time and
//!   reads each result in between; [`VelariumEvmConfig::tx_iterator_for_payload`] captures the
//!   payload's transactions as reth recovers them, and the executor runs them all through
//!   Block-STM at the first call, then returns each transaction's result, exactly sequential's,
//!   at its call (see `velarium_reth_glue`). The payload builder has no plan and runs
//!   sequentially through alloy-evm's `EthBlockExecutor`, as in reth.
//!
//! [`BlockExecutor::execute_block`]: reth_evm::execute::BlockExecutor::execute_block

use alloy_consensus::{BlockHeader, Header};
use alloy_eip7928::BlockAccessList;
use alloy_evm::eth::EthBlockExecutionCtx;
use alloy_rpc_types_engine::ExecutionData;
use reth_chainspec::ChainSpec;
use reth_ethereum_primitives::{Block, EthPrimitives};
use reth_evm::{
    execute::{BasicBlockExecutor, BlockExecutionError, Executor},
    ConfigureEngineEvm, ConfigureEvm, ConvertTx, Database, EvmEnv, EvmEnvFor, ExecutableTxIterator,
    ExecutableTxTuple, ExecutionCtxFor, NextBlockEnvAttributes, OnStateHook,
};
use reth_evm_ethereum::{
    factory::RethEvmFactory, EthBlockAssembler, EthEvmConfig, RethReceiptBuilder,
};
use reth_execution_types::BlockExecutionResult;
use reth_primitives_traits::{NodePrimitives, RecoveredBlock, SealedBlock, SealedHeader};
use revm::{database::State, primitives::hardfork::SpecId, state::EvmState};
use std::{convert::Infallible, sync::Arc};
use velarium_reth_glue::{
    CandidateRegistry, ExecutionMetrics, ParallelBlockExecutorFactory, ParallelConfig, PayloadKey,
};

/// The block executor factory of a [`VelariumEvmConfig`].
pub type VelariumBlockExecutorFactory =
    ParallelBlockExecutorFactory<RethReceiptBuilder, Arc<ChainSpec>, RethEvmFactory>;

/// Ethereum EVM configuration whose block executor is Velarium's parallel Block-STM engine.
#[derive(Debug, Clone)]
pub struct VelariumEvmConfig {
    /// reth's configuration: environments, contexts, block assembly, engine payload handling.
    inner: EthEvmConfig<ChainSpec, RethEvmFactory>,
    /// The parallel executor factory, built on the same receipt builder, chain spec and EVM
    /// factory as `inner`.
    executor_factory: VelariumBlockExecutorFactory,
}

impl VelariumEvmConfig {
    /// Wraps reth's configuration, executing blocks with the given parallel settings.
    pub fn new(inner: EthEvmConfig<ChainSpec, RethEvmFactory>, config: ParallelConfig) -> Self {
        let executor_factory =
            ParallelBlockExecutorFactory::from_eth(inner.executor_factory.clone(), config);
        Self { inner, executor_factory }
    }

    /// A configuration for `chain_spec` with reth's default (interpreter) EVM factory.
    pub fn ethereum(chain_spec: Arc<ChainSpec>, config: ParallelConfig) -> Self {
        Self::new(EthEvmConfig::new_with_evm_factory(chain_spec, RethEvmFactory::default()), config)
    }

    /// The parallel executor's settings.
    pub fn parallel_config(&self) -> &ParallelConfig {
        self.executor_factory.config()
    }

    /// The payload builds' candidate registry (see `velarium_reth_glue::speculate`), shared by
    /// every clone of this configuration.
    pub fn candidates(&self) -> &Arc<CandidateRegistry> {
        self.executor_factory.candidates()
    }

    /// This configuration with Block-STM on whatever the machine (`ParallelConfig::block_stm`),
    /// sharing its counters and registries: for the verifier, which must exercise Block-STM.
    pub fn with_block_stm(&self) -> Self {
        let config = ParallelConfig { block_stm: true, ..*self.parallel_config() };
        Self {
            inner: self.inner.clone(),
            executor_factory: self.executor_factory.clone().with_config(config),
        }
    }

    /// Counters of the parallel executor, shared by every clone of this configuration.
    pub fn execution_metrics(&self) -> &Arc<ExecutionMetrics> {
        self.executor_factory.metrics()
    }
}

impl ConfigureEvm for VelariumEvmConfig {
    type Primitives = EthPrimitives;
    type Error = Infallible;
    type NextBlockEnvCtx = NextBlockEnvAttributes;
    type BlockExecutorFactory = VelariumBlockExecutorFactory;
    type BlockAssembler = EthBlockAssembler<ChainSpec>;

    fn block_executor_factory(&self) -> &Self::BlockExecutorFactory {
        &self.executor_factory
    }

    fn block_assembler(&self) -> &Self::BlockAssembler {
        self.inner.block_assembler()
    }

    fn evm_env(&self, header: &Header) -> Result<EvmEnv<SpecId>, Self::Error> {
        self.inner.evm_env(header)
    }

    fn next_evm_env(
        &self,
        parent: &Header,
        attributes: &NextBlockEnvAttributes,
    ) -> Result<EvmEnv<SpecId>, Self::Error> {
        self.inner.next_evm_env(parent, attributes)
    }

    fn context_for_block<'a>(
        &self,
        block: &'a SealedBlock<Block>,
    ) -> Result<EthBlockExecutionCtx<'a>, Self::Error> {
        self.inner.context_for_block(block)
    }

    fn context_for_next_block(
        &self,
        parent: &SealedHeader,
        attributes: Self::NextBlockEnvCtx,
    ) -> Result<EthBlockExecutionCtx<'_>, Self::Error> {
        self.inner.context_for_next_block(parent, attributes)
    }

    fn executor<DB: Database>(
        &self,
        db: DB,
    ) -> impl Executor<DB, Primitives = Self::Primitives, Error = BlockExecutionError> {
        VelariumBlockExecutor::new(self, db)
    }

    fn batch_executor<DB: Database>(
        &self,
        db: DB,
    ) -> impl Executor<DB, Primitives = Self::Primitives, Error = BlockExecutionError> {
        VelariumBlockExecutor::new(self, db)
    }
}

impl ConfigureEngineEvm<ExecutionData> for VelariumEvmConfig {
    fn evm_env_for_payload(&self, payload: &ExecutionData) -> Result<EvmEnvFor<Self>, Self::Error> {
        self.inner.evm_env_for_payload(payload)
    }

    fn context_for_payload<'a>(
        &self,
        payload: &'a ExecutionData,
    ) -> Result<ExecutionCtxFor<'a, Self>, Self::Error> {
        self.inner.context_for_payload(payload)
    }

    /// reth's own iterator (the payload's raw transactions and the converter reth runs on its
    /// thread pool to decode them and recover their signers), with each converted transaction
    /// also recorded, at its index, into a [`velarium_reth_glue::PayloadPlan`] the factory's `create_executor`
    /// takes for this payload: the executor then starts Block-STM on the whole list at the
    /// first transaction call and streams each result from it (see `velarium_reth_glue::plan`
    /// and the glue's crate docs). A failed conversion truncates
    /// the plan (reth stops the block at that index too). With Block-STM off nothing is
    /// recorded.
    fn tx_iterator_for_payload(
        &self,
        payload: &ExecutionData,
    ) -> Result<impl ExecutableTxIterator<Self>, Self::Error> {
        let (raw, convert) = self.inner.tx_iterator_for_payload(payload)?.into_parts();
        let raw: Vec<_> = raw.into_iter().enumerate().collect();
        let v1 = payload.payload.as_v1();
        let plan = self.parallel_config().block_stm.then(|| {
            self.executor_factory.plans().begin(PayloadKey {
                parent_hash: v1.parent_hash,
                number: v1.block_number,
                timestamp: v1.timestamp,
                beneficiary: v1.fee_recipient,
                tx_count: raw.len(),
            })
        });
        let convert = move |(index, raw)| {
            let converted = convert.convert(raw);
            match (&plan, &converted) {
                (Some(plan), Ok(tx)) => plan.record(index, tx.clone()),
                (Some(plan), Err(_)) => plan.fail(index),
                (None, _) => {}
            }
            converted
        };
        Ok((raw, convert))
    }
}

/// An [`Executor`] that hands every block whole to the block executor, so Velarium runs it in
/// parallel.
///
/// reth's [`BasicBlockExecutor::execute_one`] drives the block executor one transaction at a
/// time, which forces sequential execution; its `execute_one_with_state_hook` calls
/// `execute_block` instead. This executor routes [`Executor::execute_one`] through the latter
/// with a no-op hook. Blocks that carry a block access list (EIP-7928) keep reth's per-transaction
/// path, which records the access list.
pub struct VelariumBlockExecutor<F, DB> {
    inner: BasicBlockExecutor<F, DB>,
}

impl<F, DB> std::fmt::Debug for VelariumBlockExecutor<F, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VelariumBlockExecutor").finish_non_exhaustive()
    }
}

impl<F, DB: Database> VelariumBlockExecutor<F, DB> {
    /// An executor over `db` (wrapped in a [`State`] with bundle tracking, as reth does).
    pub fn new(evm_config: F, db: DB) -> Self {
        Self { inner: BasicBlockExecutor::new(evm_config, db) }
    }
}

impl<F, DB> Executor<DB> for VelariumBlockExecutor<F, DB>
where
    F: ConfigureEvm,
    DB: Database,
{
    type Primitives = F::Primitives;
    type Error = BlockExecutionError;

    fn execute_one(
        &mut self,
        block: &RecoveredBlock<<Self::Primitives as NodePrimitives>::Block>,
    ) -> Result<BlockExecutionResult<<Self::Primitives as NodePrimitives>::Receipt>, Self::Error>
    {
        if block.header().block_access_list_hash().is_some() {
            self.inner.execute_one(block)
        } else {
            self.inner.execute_one_with_state_hook(block, |_: EvmState| {})
        }
    }

    fn execute_one_with_state_hook<H>(
        &mut self,
        block: &RecoveredBlock<<Self::Primitives as NodePrimitives>::Block>,
        state_hook: H,
    ) -> Result<BlockExecutionResult<<Self::Primitives as NodePrimitives>::Receipt>, Self::Error>
    where
        H: OnStateHook + 'static,
    {
        self.inner.execute_one_with_state_hook(block, state_hook)
    }

    fn into_state(self) -> State<DB> {
        self.inner.into_state()
    }

    fn size_hint(&self) -> usize {
        self.inner.size_hint()
    }

    fn take_bal(&mut self) -> Option<BlockAccessList> {
        self.inner.take_bal()
    }
}
