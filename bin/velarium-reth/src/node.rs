//! [`VelariumNode`]: reth's Ethereum node with [`VelariumEvmConfig`] as its EVM.
//!
//! Pool, network, payload builder, consensus, RPC and engine API are reth's Ethereum components;
//! only the executor builder differs ([`VelariumExecutorBuilder`]).

use crate::{builder::VelariumPayloadBuilderBuilder, evm::VelariumEvmConfig, metrics};
use reth_chainspec::ChainSpec;
use reth_engine_local::LocalPayloadAttributesBuilder;
use reth_ethereum_primitives::EthPrimitives;
use reth_node_api::{FullNodeComponents, FullNodeTypes, NodeTypes, PayloadAttributesBuilder};
use reth_node_builder::{
    components::{BasicPayloadServiceBuilder, ComponentsBuilder, ExecutorBuilder},
    BuilderContext, DebugNode, Node, NodeAdapter, PayloadTypes,
};
use reth_node_ethereum::{
    node::{
        build_evm_config, EthereumAddOns, EthereumConsensusBuilder, EthereumEngineValidatorBuilder,
        EthereumEthApiBuilder, EthereumNetworkBuilder, EthereumPoolBuilder,
    },
    EthEngineTypes, EthereumNode,
};
use reth_provider::EthStorage;
use std::sync::Arc;
use velarium_reth_glue::{ParallelConfig, DEFAULT_LOOKAHEAD};

/// The node type of `velarium-reth`: [`EthereumNode`] with Velarium's parallel executor and
/// payload builder.
#[derive(Debug, Clone, Copy)]
pub struct VelariumNode {
    /// Settings of the parallel executor.
    pub config: ParallelConfig,
    /// Candidates the payload builder's executor sees ahead (0: reth's builder as it is).
    pub builder_lookahead: usize,
}

impl Default for VelariumNode {
    fn default() -> Self {
        Self::new(ParallelConfig::default())
    }
}

impl VelariumNode {
    /// A node whose executor uses the given settings (the builder's lookahead at
    /// [`DEFAULT_LOOKAHEAD`], or 0 where the settings switch Block-STM off).
    pub const fn new(config: ParallelConfig) -> Self {
        let builder_lookahead = if config.block_stm { DEFAULT_LOOKAHEAD } else { 0 };
        Self { config, builder_lookahead }
    }

    /// This node with the payload builder's executor seeing `lookahead` candidates ahead.
    pub const fn with_builder_lookahead(mut self, lookahead: usize) -> Self {
        self.builder_lookahead = lookahead;
        self
    }

    /// The components of [`EthereumNode`] with [`VelariumExecutorBuilder`] as the executor and
    /// [`VelariumPayloadBuilderBuilder`] as the payload builder.
    pub fn components<N>(&self) -> VelariumComponentsBuilder<N>
    where
        N: FullNodeTypes<Types = Self>,
    {
        EthereumNode::components().executor(VelariumExecutorBuilder::new(self.config)).payload(
            BasicPayloadServiceBuilder::new(VelariumPayloadBuilderBuilder {
                lookahead: self.builder_lookahead,
            }),
        )
    }
}

/// The components builder of a [`VelariumNode`].
pub type VelariumComponentsBuilder<N> = ComponentsBuilder<
    N,
    EthereumPoolBuilder,
    BasicPayloadServiceBuilder<VelariumPayloadBuilderBuilder>,
    EthereumNetworkBuilder,
    VelariumExecutorBuilder,
    EthereumConsensusBuilder,
>;

impl NodeTypes for VelariumNode {
    type Primitives = EthPrimitives;
    type ChainSpec = ChainSpec;
    type Storage = EthStorage;
    type Payload = EthEngineTypes;
}

impl<N> Node<N> for VelariumNode
where
    N: FullNodeTypes<Types = Self>,
{
    type ComponentsBuilder = VelariumComponentsBuilder<N>;

    type AddOns =
        EthereumAddOns<NodeAdapter<N>, EthereumEthApiBuilder, EthereumEngineValidatorBuilder>;

    fn components_builder(&self) -> Self::ComponentsBuilder {
        self.components()
    }

    fn add_ons(&self) -> Self::AddOns {
        EthereumAddOns::default()
    }
}

impl<N: FullNodeComponents<Types = Self>> DebugNode<N> for VelariumNode {
    type RpcBlock = alloy_rpc_types_eth::Block;

    fn rpc_to_primitive_block(rpc_block: Self::RpcBlock) -> reth_ethereum_primitives::Block {
        rpc_block.into_consensus().convert_transactions()
    }

    fn local_payload_attributes_builder(
        chain_spec: &Self::ChainSpec,
    ) -> impl PayloadAttributesBuilder<<Self::Payload as PayloadTypes>::PayloadAttributes> {
        LocalPayloadAttributesBuilder::new(Arc::new(chain_spec.clone()))
    }
}

/// Builds the node's [`VelariumEvmConfig`]: reth's Ethereum EVM configuration (honouring the
/// node's JIT flags and sender-recovery cache, like reth's `EthereumExecutorBuilder`) with the
/// parallel executor factory, and starts the task exporting the executor's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct VelariumExecutorBuilder {
    config: ParallelConfig,
}

impl VelariumExecutorBuilder {
    /// A builder for the given parallel settings.
    pub const fn new(config: ParallelConfig) -> Self {
        Self { config }
    }
}

impl<Node> ExecutorBuilder<Node> for VelariumExecutorBuilder
where
    Node: FullNodeTypes<Types: NodeTypes<ChainSpec = ChainSpec, Primitives = EthPrimitives>>,
{
    type EVM = VelariumEvmConfig;

    async fn build_evm(self, ctx: &BuilderContext<Node>) -> eyre::Result<Self::EVM> {
        let (mut inner, _jit_metrics) =
            build_evm_config(ctx.chain_spec(), &ctx.config().jit, None)?;
        if let Some(cache) = ctx.sender_recovery_cache() {
            inner = inner.with_sender_recovery_cache(cache.clone());
        }
        let evm_config = VelariumEvmConfig::new(inner, self.config);

        let config = evm_config.parallel_config();
        reth_tracing::tracing::info!(
            target: "velarium",
            threads = config.threads,
            min_txs = config.min_txs,
            block_stm = config.block_stm,
            "Velarium parallel block executor configured"
        );
        if !config.block_stm {
            reth_tracing::tracing::warn!(
                target: "velarium",
                cores = std::thread::available_parallelism().map_or(1, |n| n.get()),
                "Block-STM is off: every block runs through reth's executor (on fewer than {} \
                 cores it measured slower; `--velarium.block-stm on` runs it anyway)",
                velarium_reth_glue::MIN_CORES_FOR_BLOCK_STM
            );
        }

        let execution_metrics = evm_config.execution_metrics().clone();
        ctx.task_executor().spawn_with_graceful_shutdown_signal(|shutdown| {
            metrics::report_execution_metrics(execution_metrics, shutdown)
        });

        Ok(evm_config)
    }
}
