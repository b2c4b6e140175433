//! The sequential oracle: alloy-evm's `EthBlockExecutor`, exactly as reth drives it.

use crate::{BlockInput, BlockOutput, ExecutionError};
use alloy_evm::{
    block::BlockExecutor,
    eth::{receipt_builder::AlloyReceiptBuilder, EthBlockExecutionCtx, EthBlockExecutor},
    EthEvmFactory, EvmEnv, EvmFactory,
};
use revm::{
    database::{states::bundle_state::BundleRetention, State},
    DatabaseRef,
};
use std::borrow::Cow;
use velarium_chainspec::ChainSpec;

/// The EVM environment (rule set, chain id, block fields, blob fee) for a block.
pub fn evm_env(spec: &ChainSpec, header: &alloy_consensus::Header) -> EvmEnv {
    let mut env = EvmEnv::for_eth_block(
        header,
        spec,
        spec.chain_id,
        spec.blob_params_at(header.timestamp),
    );
    // alloy maps forks to revm rule sets the same way; ours also resolves pending merges.
    env.cfg_env.spec = spec.spec_id(header.number, header.timestamp);
    env
}

/// Executes a block sequentially on top of `db` (the parent's state).
///
/// Returns the receipts, gas, requests and state changes; `db` itself is never written.
pub fn execute_sequential<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
) -> Result<BlockOutput, ExecutionError>
where
    DB: DatabaseRef + std::fmt::Debug,
    DB::Error: Send + Sync + 'static,
{
    let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
    let header = block.header;
    let ctx = EthBlockExecutionCtx {
        parent_hash: header.parent_hash,
        parent_beacon_block_root: header.parent_beacon_block_root,
        ommers: block.ommers,
        withdrawals: block.withdrawals.map(Cow::Borrowed),
        extra_data: header.extra_data.clone(),
        tx_count_hint: Some(block.transactions.len()),
        slot_number: None,
    };
    let result = {
        let evm = EthEvmFactory::default().create_evm(&mut state, evm_env(spec, header));
        let mut executor = EthBlockExecutor::new(evm, ctx, spec, AlloyReceiptBuilder::default());
        executor.apply_pre_execution_changes()?;
        for tx in block.transactions {
            executor.execute_transaction(tx)?;
        }
        executor.finish()?.1
    };
    state.merge_transitions(BundleRetention::PlainState);
    Ok(BlockOutput {
        receipts: result.receipts,
        gas_used: result.gas_used,
        blob_gas_used: result.blob_gas_used,
        requests: result.requests,
        bundle: state.take_bundle(),
    })
}
