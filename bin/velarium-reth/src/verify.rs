//! The `velarium-verify` execution extension.
//!
//! For every chain the node commits, each block is executed again from its parent's state with
//! the parallel executor (the whole block handed to `execute_block`, so Velarium runs it with
//! Block-STM when it is large enough) and the result is compared with what the node committed:
//! every receipt (status, cumulative gas, logs), the block's gas and blob gas against its header,
//! the EIP-7685 requests, and — for single-block notifications, the common case while following
//! the chain tip — the post-state of every account and storage slot the block changed.
//!
//! Results are exported as Prometheus metrics (see [`crate::metrics`]); a mismatch is logged as a
//! warning with the block number and the first differing receipt.

use crate::{
    evm::{VelariumBlockExecutor, VelariumEvmConfig},
    metrics::{record_execution_snapshot, record_verified_block, VerifyResult},
};
use alloy_consensus::BlockHeader;
use alloy_primitives::{Address, B256, U256};
use futures::TryStreamExt;
use reth_ethereum_primitives::{Block, EthPrimitives, Receipt};
use reth_evm::execute::Executor;
use reth_execution_types::{BlockExecutionResult, Chain};
use reth_exex::{ExExContext, ExExEvent};
use reth_node_api::{FullNodeComponents, NodeTypes};
use reth_primitives_traits::RecoveredBlock;
use reth_provider::StateProviderFactory;
use reth_revm::database::StateProviderDatabase;
use reth_tracing::tracing::{debug, info, warn};
use revm::database::BundleState;
use std::{collections::BTreeMap, sync::Arc};

/// The ExEx's identifier, as passed to `install_exex`.
pub const EXEX_ID: &str = "velarium-verify";

/// Runs the verification ExEx until the node shuts down.
pub async fn velarium_verify<Node>(mut ctx: ExExContext<Node>) -> eyre::Result<()>
where
    Node: FullNodeComponents<Types: NodeTypes<Primitives = EthPrimitives>, Evm = VelariumEvmConfig>,
{
    // Block-STM on even where the node's own executors run without it (`--velarium.block-stm
    // auto` on two cores, or `off`): a check of sequential against sequential checks nothing.
    let evm_config = ctx.evm_config().with_block_stm();
    info!(
        target: "velarium::verify",
        threads = evm_config.parallel_config().threads,
        min_txs = evm_config.parallel_config().min_txs,
        "Velarium verification ExEx started"
    );

    while let Some(notification) = ctx.notifications.try_next().await? {
        if let Some(reverted) = notification.reverted_chain() {
            debug!(target: "velarium::verify", range = ?reverted.range(), "Chain reverted");
        }
        let Some(committed) = notification.committed_chain() else { continue };

        // Re-execution is CPU-bound (and the parallel executor blocks on its own workers):
        // keep it off the async runtime's threads.
        let provider = ctx.provider().clone();
        let config = evm_config.clone();
        let chain = Arc::clone(&committed);
        let summary =
            tokio::task::spawn_blocking(move || verify_chain(&provider, &config, &chain)).await?;
        record_execution_snapshot(&evm_config.execution_metrics().snapshot());
        info!(
            target: "velarium::verify",
            range = ?committed.range(),
            matched = summary.matched,
            mismatched = summary.mismatched,
            errors = summary.errors,
            "Verified committed chain"
        );

        ctx.events.send(ExExEvent::FinishedHeight(committed.tip().num_hash()))?;
    }

    Ok(())
}

/// Per-chain tally of [`VerifyResult`]s.
#[derive(Debug, Default, Clone, Copy)]
struct ChainSummary {
    matched: usize,
    mismatched: usize,
    errors: usize,
}

/// Re-executes and checks every block of `chain`.
fn verify_chain<P>(provider: &P, evm_config: &VelariumEvmConfig, chain: &Chain) -> ChainSummary
where
    P: StateProviderFactory,
{
    let outcome = chain.execution_outcome();
    // The outcome's bundle aggregates the whole chain; it is the block's own state diff only
    // when the chain has one block.
    let committed_bundle = (chain.len() == 1).then_some(&outcome.bundle);

    let mut summary = ChainSummary::default();
    for (block, receipts) in chain.blocks_and_receipts() {
        let number = block.header().number();
        let committed_requests = number
            .checked_sub(outcome.first_block)
            .and_then(|index| outcome.requests.get(index as usize));
        let committed =
            Committed { receipts, requests: committed_requests, bundle: committed_bundle };

        let result = match reexecute(provider, evm_config, block) {
            Ok((ours, bundle)) => compare(block, &committed, &ours, &bundle),
            Err(err) => {
                warn!(
                    target: "velarium::verify",
                    block = number,
                    hash = %block.hash(),
                    %err,
                    "Could not re-execute block"
                );
                VerifyResult::Error
            }
        };
        match result {
            VerifyResult::Match => summary.matched += 1,
            VerifyResult::Mismatch => summary.mismatched += 1,
            VerifyResult::Error => summary.errors += 1,
        }
        record_verified_block(result, number, receipts.len() as u64, block.header().gas_used());
    }
    summary
}

/// Executes `block` on its parent's state with the parallel executor; returns the execution
/// result and the block's state changes.
fn reexecute<P>(
    provider: &P,
    evm_config: &VelariumEvmConfig,
    block: &RecoveredBlock<Block>,
) -> eyre::Result<(BlockExecutionResult<Receipt>, BundleState)>
where
    P: StateProviderFactory,
{
    let parent_state = provider.history_by_block_hash(block.header().parent_hash())?;
    let mut executor =
        VelariumBlockExecutor::new(evm_config, StateProviderDatabase::new(parent_state));
    let result = executor.execute_one(block)?;
    let bundle = executor.into_state().take_bundle();
    Ok((result, bundle))
}

/// What the node committed for one block.
struct Committed<'a> {
    receipts: &'a [Receipt],
    requests: Option<&'a alloy_eips::eip7685::Requests>,
    bundle: Option<&'a BundleState>,
}

/// Compares a re-execution with the committed data, logging the first difference.
fn compare(
    block: &RecoveredBlock<Block>,
    committed: &Committed<'_>,
    ours: &BlockExecutionResult<Receipt>,
    our_bundle: &BundleState,
) -> VerifyResult {
    let header = block.header();
    let (number, hash) = (header.number(), block.hash());

    if let Some(index) = first_difference(committed.receipts, &ours.receipts) {
        warn!(
            target: "velarium::verify",
            block = number,
            %hash,
            index,
            committed_receipts = committed.receipts.len(),
            parallel_receipts = ours.receipts.len(),
            committed = ?committed.receipts.get(index),
            parallel = ?ours.receipts.get(index),
            "Parallel re-execution produced a different receipt"
        );
        return VerifyResult::Mismatch;
    }
    if ours.gas_used != header.gas_used() {
        warn!(
            target: "velarium::verify",
            block = number,
            %hash,
            header = header.gas_used(),
            parallel = ours.gas_used,
            "Parallel re-execution used different gas"
        );
        return VerifyResult::Mismatch;
    }
    if let Some(header_blob_gas) = header.blob_gas_used() {
        if ours.blob_gas_used != header_blob_gas {
            warn!(
                target: "velarium::verify",
                block = number,
                %hash,
                header = header_blob_gas,
                parallel = ours.blob_gas_used,
                "Parallel re-execution used different blob gas"
            );
            return VerifyResult::Mismatch;
        }
    }
    if let Some(requests) = committed.requests {
        if *requests != ours.requests {
            warn!(
                target: "velarium::verify",
                block = number,
                %hash,
                committed = ?requests,
                parallel = ?ours.requests,
                "Parallel re-execution produced different EIP-7685 requests"
            );
            return VerifyResult::Mismatch;
        }
    }
    if let Some(bundle) = committed.bundle {
        let (theirs, ours) = (state_changes(bundle), state_changes(our_bundle));
        if theirs != ours {
            let address = theirs
                .keys()
                .chain(ours.keys())
                .find(|address| theirs.get(*address) != ours.get(*address));
            warn!(
                target: "velarium::verify",
                block = number,
                %hash,
                ?address,
                committed = ?address.and_then(|a| theirs.get(a)),
                parallel = ?address.and_then(|a| ours.get(a)),
                "Parallel re-execution produced different state changes"
            );
            return VerifyResult::Mismatch;
        }
    }

    debug!(target: "velarium::verify", block = number, %hash, "Block verified");
    VerifyResult::Match
}

/// Index of the first receipt that differs (or that only one side has).
fn first_difference(committed: &[Receipt], ours: &[Receipt]) -> Option<usize> {
    committed
        .iter()
        .zip(ours)
        .position(|(a, b)| a != b)
        .or_else(|| (committed.len() != ours.len()).then(|| committed.len().min(ours.len())))
}

/// The post-state of one changed account: `(balance, nonce, code hash)` (`None` once the account
/// no longer exists), whether it was destroyed, and its changed storage slots.
type AccountChange = (Option<(U256, u64, B256)>, bool, BTreeMap<U256, U256>);

/// The accounts and slots a bundle changes, with their new values, in a canonical form: entries
/// that are loaded but unchanged are dropped, so bundles built along different paths compare
/// equal when they describe the same state transition.
fn state_changes(bundle: &BundleState) -> BTreeMap<Address, AccountChange> {
    bundle
        .state
        .iter()
        .filter_map(|(address, account)| {
            let summary = |info: &Option<revm::state::AccountInfo>| {
                info.as_ref().map(|info| (info.balance, info.nonce, info.code_hash))
            };
            let info = summary(&account.info);
            let destroyed = account.was_destroyed();
            let storage: BTreeMap<U256, U256> = account
                .storage
                .iter()
                .filter(|(_, slot)| slot.is_changed())
                .map(|(key, slot)| (*key, slot.present_value))
                .collect();
            let changed =
                info != summary(&account.original_info) || destroyed || !storage.is_empty();
            changed.then_some((*address, (info, destroyed, storage)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::TxType;

    fn receipt(cumulative_gas_used: u64) -> Receipt {
        Receipt { tx_type: TxType::Legacy, success: true, cumulative_gas_used, logs: vec![] }
    }

    #[test]
    fn first_difference_finds_changed_and_missing_receipts() {
        let a = [receipt(21_000), receipt(42_000)];
        assert_eq!(first_difference(&a, &a), None);
        assert_eq!(first_difference(&a, &[receipt(21_000), receipt(43_000)]), Some(1));
        assert_eq!(first_difference(&a, &a[..1]), Some(1));
        assert_eq!(first_difference(&[], &a), Some(0));
    }
}
