//! The payload builder: reth's Ethereum builder (`default_ethereum_payload`, unchanged: the same
//! transactions chosen by the same rules), with the pool's best-transactions iterator wrapped in
//! the glue's [`Lookahead`], so that the executor it creates runs the candidates ahead through
//! Block-STM (see `velarium_reth_glue::speculate`).

use crate::evm::VelariumEvmConfig;
use reth_basic_payload_builder::{
    BuildArguments, BuildOutcome, MissingPayloadBehaviour, PayloadBuilder, PayloadConfig,
};
use reth_chainspec::{ChainSpecProvider, EthChainSpec, EthereumHardforks};
use reth_ethereum_engine_primitives::{EthBuiltPayload, EthPayloadAttributes};
use reth_ethereum_payload_builder::{default_ethereum_payload, EthereumBuilderConfig};
use reth_ethereum_primitives::{EthPrimitives, TransactionSigned};
use reth_node_api::{FullNodeTypes, NodeTypes, TxTy};
use reth_node_builder::{
    components::PayloadBuilderBuilder, BuilderContext, PayloadBuilderConfig, PayloadTypes,
};
use reth_payload_builder_primitives::PayloadBuilderError;
use reth_provider::StateProviderFactory;
use reth_transaction_pool::{
    error::InvalidPoolTransactionError, BestTransactions, PoolTransaction, TransactionPool,
    ValidPoolTransaction,
};
use std::sync::Arc;
use velarium_reth_glue::{BuildKey, Lookahead, PlannedTx};

/// A pool transaction as the best-transactions iterator yields it.
type PoolTx<Pool> = Arc<ValidPoolTransaction<<Pool as TransactionPool>::Transaction>>;

/// The pool's best-transactions iterator, as reth's builder takes it.
type BestIter<Pool> = Box<dyn BestTransactions<Item = PoolTx<Pool>>>;

/// Converts a pool transaction into the candidate the executor will compare its call against.
type Convert<Pool> = fn(&PoolTx<Pool>) -> Option<PlannedTx>;

/// [`BestTransactions`] behind a [`Lookahead`]: what the builder does to the iterator reaches
/// the pool's iterator and the transactions pulled ahead of it.
struct LookaheadBest<Pool: TransactionPool> {
    ahead: Lookahead<BestIter<Pool>, Convert<Pool>>,
}

impl<Pool: TransactionPool> Iterator for LookaheadBest<Pool> {
    type Item = PoolTx<Pool>;

    fn next(&mut self) -> Option<Self::Item> {
        self.ahead.next()
    }
}

impl<Pool: TransactionPool> BestTransactions for LookaheadBest<Pool> {
    fn mark_invalid(&mut self, transaction: &Self::Item, kind: InvalidPoolTransactionError) {
        self.ahead.inner_mut().mark_invalid(transaction, kind);
        // The pool's iterator drops the sender's later transactions: so do the ones pulled.
        let (sender, nonce) = (transaction.sender(), transaction.nonce());
        self.ahead.retain(|tx| tx.sender() != sender || tx.nonce() <= nonce);
    }

    fn no_updates(&mut self) {
        self.ahead.inner_mut().no_updates();
    }

    fn allow_updates_out_of_order(&mut self) {
        self.ahead.inner_mut().allow_updates_out_of_order();
    }

    fn set_skip_blobs(&mut self, skip_blobs: bool) {
        self.ahead.inner_mut().set_skip_blobs(skip_blobs);
        if skip_blobs {
            self.ahead.retain(|tx| !tx.is_eip4844());
        }
    }
}

/// reth's Ethereum payload builder whose executor sees the candidates `lookahead` ahead.
#[derive(Debug, Clone)]
pub struct VelariumPayloadBuilder<Pool, Client> {
    /// reth's builder, for what does not execute transactions (empty payloads, the missing
    /// payload behaviour) and for builds with the lookahead off.
    inner: reth_ethereum_payload_builder::EthereumPayloadBuilder<Pool, Client, VelariumEvmConfig>,
    client: Client,
    pool: Pool,
    evm_config: VelariumEvmConfig,
    builder_config: EthereumBuilderConfig,
    lookahead: usize,
}

impl<Pool, Client> PayloadBuilder for VelariumPayloadBuilder<Pool, Client>
where
    Client: StateProviderFactory + ChainSpecProvider<ChainSpec: EthereumHardforks> + Clone,
    Pool: TransactionPool<Transaction: PoolTransaction<Consensus = TransactionSigned>> + 'static,
{
    type Attributes = EthPayloadAttributes;
    type BuiltPayload = EthBuiltPayload;

    fn try_build(
        &self,
        args: BuildArguments<EthPayloadAttributes, EthBuiltPayload>,
    ) -> Result<BuildOutcome<EthBuiltPayload>, PayloadBuilderError> {
        if self.lookahead == 0 {
            return self.inner.try_build(args);
        }
        let parent = &args.config.parent_header;
        let attributes = &args.config.attributes;
        // What the executor `builder_for_next_block` creates is compared with.
        let key = BuildKey {
            parent_hash: parent.hash(),
            number: parent.number + 1,
            timestamp: attributes.timestamp,
            beneficiary: attributes.suggested_fee_recipient,
        };
        let feed = self.evm_config.candidates().begin(key);
        let depth = self.lookahead;
        let convert: Convert<Pool> =
            |tx| Some(PlannedTx::from_parts::<TransactionSigned, _>(tx.to_consensus()));
        default_ethereum_payload(
            self.evm_config.clone(),
            self.client.clone(),
            self.pool.clone(),
            self.builder_config.clone(),
            args,
            |attributes| {
                let best = self.pool.best_transactions_with_attributes(attributes);
                Box::new(LookaheadBest::<Pool> {
                    ahead: Lookahead::new(best, feed, depth, convert),
                })
            },
        )
    }

    fn on_missing_payload(
        &self,
        args: BuildArguments<Self::Attributes, Self::BuiltPayload>,
    ) -> MissingPayloadBehaviour<Self::BuiltPayload> {
        self.inner.on_missing_payload(args)
    }

    fn build_empty_payload(
        &self,
        config: PayloadConfig<Self::Attributes>,
    ) -> Result<EthBuiltPayload, PayloadBuilderError> {
        self.inner.build_empty_payload(config)
    }
}

/// Builds a [`VelariumPayloadBuilder`] with the builder settings reth's
/// `EthereumPayloadBuilder` (the node component) reads.
#[derive(Debug, Clone, Copy)]
pub struct VelariumPayloadBuilderBuilder {
    /// Candidates kept ahead of the builder (0: none, reth's builder as it is).
    pub lookahead: usize,
}

impl<Types, Node, Pool> PayloadBuilderBuilder<Node, Pool, VelariumEvmConfig>
    for VelariumPayloadBuilderBuilder
where
    Types: NodeTypes<ChainSpec: EthereumHardforks, Primitives = EthPrimitives>,
    Node: FullNodeTypes<Types = Types>,
    Pool: TransactionPool<Transaction: PoolTransaction<Consensus = TxTy<Node::Types>>>
        + Unpin
        + 'static,
    Types::Payload:
        PayloadTypes<BuiltPayload = EthBuiltPayload, PayloadAttributes = EthPayloadAttributes>,
{
    type PayloadBuilder = VelariumPayloadBuilder<Pool, Node::Provider>;

    async fn build_payload_builder(
        self,
        ctx: &BuilderContext<Node>,
        pool: Pool,
        evm_config: VelariumEvmConfig,
    ) -> eyre::Result<Self::PayloadBuilder> {
        let conf = ctx.payload_builder_config();
        let chain = ctx.chain_spec().chain();
        let builder_config = EthereumBuilderConfig::new()
            .with_gas_limit(conf.gas_limit_for(chain))
            .with_max_blobs_per_block(conf.max_blobs_per_block())
            .with_extra_data(conf.extra_data())
            .with_skip_state_root(ctx.config().tree_config().skip_state_root());
        let client = ctx.provider().clone();
        Ok(VelariumPayloadBuilder {
            inner: reth_ethereum_payload_builder::EthereumPayloadBuilder::new(
                client.clone(),
                pool.clone(),
                evm_config.clone(),
                builder_config.clone(),
            ),
            client,
            pool,
            evm_config,
            builder_config,
            lookahead: self.lookahead,
        })
    }
}
