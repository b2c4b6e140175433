//! The sequential oracle: alloy-evm's `EthBlockExecutor`, exactly as reth drives it.

use crate::eip7610::{CollisionGuard, StorageProbe};
use crate::{BlockInput, BlockOutput, ExecutionError};
use alloy_consensus::ReceiptEnvelope;
use alloy_evm::{block::BlockExecutionResult, eth::EthEvmContext};
use alloy_evm::{
    block::{BlockExecutionError, BlockExecutor, BlockValidationError},
    eth::{
        dao_fork::{DAO_HARDFORK_ACCOUNTS, DAO_HARDFORK_BENEFICIARY},
        receipt_builder::AlloyReceiptBuilder,
        spec::EthExecutorSpec,
        EthBlockExecutionCtx, EthBlockExecutor,
    },
    precompiles::PrecompilesMap,
    EthEvm, EthEvmFactory, Evm, EvmEnv, EvmFactory,
};
use alloy_primitives::{Address, U256};
use revm::Inspector;
use revm::{
    context::{journaled_state::account::JournaledAccountTr, JournalTr},
    database::{states::bundle_state::BundleRetention, State},
    Database, DatabaseCommit, DatabaseRef, Journal,
};
use std::borrow::Cow;
use velarium_chainspec::{ChainSpec, EthereumHardfork, EthereumHardforks, ForkCondition};

/// The chain spec as alloy-evm's executor sees it: without the DAO fork, whose irregular state
/// change we apply before the transactions (as go-ethereum and the conformance tests do) rather
/// than after them (where alloy-evm 0.38 puts it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlloySpec<'a>(pub(crate) &'a ChainSpec);

impl EthereumHardforks for AlloySpec<'_> {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        if fork == EthereumHardfork::Dao {
            ForkCondition::Never
        } else {
            self.0.fork(fork)
        }
    }
}

impl EthExecutorSpec for AlloySpec<'_> {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.0.deposit_contract_address
    }
}

/// EIP-7002 and EIP-7251: from Prague, a block whose request system contracts have no code is
/// invalid (the post-block calls would otherwise "succeed" on an empty account).
pub(crate) fn check_system_contracts<DB: Database>(
    spec: &ChainSpec,
    timestamp: u64,
    db: &mut DB,
) -> Result<(), ExecutionError> {
    if !spec.is_prague_active_at_timestamp(timestamp) {
        return Ok(());
    }
    for address in [
        alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
        alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
    ] {
        let has_code = db
            .basic(address)
            .map_err(|e| ExecutionError::StateRead(format!("reading {address}: {e}")))?
            .is_some_and(|info| info.code_hash != revm::primitives::KECCAK_EMPTY);
        if !has_code {
            return Err(ExecutionError::SystemContractEmpty(address));
        }
    }
    Ok(())
}

/// The DAO fork's irregular state change, at the start of the DAO block: every listed account's
/// balance moves to the refund contract.
///
/// It goes through a revm journal with the block's rule set, so that drained accounts left empty
/// stay in the state before EIP-161, as in go-ethereum (alloy-evm's `drain_balances` commits
/// outside the journal and would delete them).
pub(crate) fn apply_dao_fork<DB>(
    spec: &ChainSpec,
    header: &alloy_consensus::Header,
    db: &mut DB,
) -> Result<(), BlockExecutionError>
where
    DB: Database + DatabaseCommit,
{
    if !spec.fork(EthereumHardfork::Dao).transitions_at_block(header.number) {
        return Ok(());
    }
    let failed = |_| BlockExecutionError::from(BlockValidationError::IncrementBalanceFailed);
    let mut journal: Journal<&mut DB> = Journal::new(&mut *db);
    journal.set_spec_id(spec.spec_id(header.number, header.timestamp));
    let mut drained = U256::ZERO;
    for address in DAO_HARDFORK_ACCOUNTS {
        let mut account = journal.load_account_mut(address).map_err(failed)?;
        let balance = *account.balance();
        drained += balance;
        account.set_balance(U256::ZERO);
        account.touch();
    }
    journal.load_account_mut(DAO_HARDFORK_BENEFICIARY).map_err(failed)?.incr_balance(drained);
    let mut changes = journal.finalize();
    drop(journal);
    // revm's journal keeps a pre-EIP-161 account that became empty by clearing its touch flag,
    // which also drops the balance change itself: a drained code-less account would keep its
    // ether. Commit such an account as re-created empty instead (it has no code, hence no
    // storage to lose), which is what go-ethereum's state does.
    for account in changes.values_mut() {
        let drained = !account.original_info().balance.is_zero();
        if drained && account.is_empty() && !account.is_touched() {
            account.mark_touch();
            account.mark_created();
        }
    }
    db.commit(changes);
    Ok(())
}

/// The EVM environment (rule set, chain id, block fields, blob fee) for a block.
pub fn evm_env(spec: &ChainSpec, header: &alloy_consensus::Header) -> EvmEnv {
    let mut env =
        EvmEnv::for_eth_block(header, spec, spec.chain_id, spec.blob_params_at(header.timestamp));
    // alloy maps forks to revm rule sets the same way; ours also resolves pending merges.
    env.cfg_env.spec = spec.spec_id(header.number, header.timestamp);
    env
}

/// alloy-evm's block context for `block`.
pub(crate) fn execution_ctx<'a>(block: BlockInput<'a>) -> EthBlockExecutionCtx<'a> {
    let header = block.header;
    EthBlockExecutionCtx {
        parent_hash: header.parent_hash,
        parent_beacon_block_root: header.parent_beacon_block_root,
        ommers: block.ommers,
        withdrawals: block.withdrawals.map(Cow::Borrowed),
        extra_data: header.extra_data.clone(),
        tx_count_hint: Some(block.transactions.len()),
        slot_number: None,
    }
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
    DB: DatabaseRef + StorageProbe + std::fmt::Debug,
    DB::Error: Send + Sync + 'static,
{
    execute_timed(spec, db, block, None)
}

/// How long each transaction of `block` takes on the oracle (alloy-evm's executor, commit
/// included), the median of `rounds` runs: the weights of a time-weighted critical path (gas is
/// a poor proxy for time across kinds of work: a loop burns gas several times slower than a
/// transfer).
///
/// # Errors
///
/// As [`execute_sequential`].
pub fn time_transactions<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
    rounds: usize,
) -> Result<Vec<std::time::Duration>, ExecutionError>
where
    DB: DatabaseRef + StorageProbe + std::fmt::Debug,
    DB::Error: Send + Sync + 'static,
{
    let mut samples: Vec<Vec<std::time::Duration>> = vec![Vec::new(); block.transactions.len()];
    for _ in 0..rounds.max(1) {
        let mut times = Vec::with_capacity(block.transactions.len());
        execute_timed(spec, db, block, Some(&mut times))?;
        for (sample, time) in samples.iter_mut().zip(times) {
            sample.push(time);
        }
    }
    Ok(samples
        .into_iter()
        .map(|mut sample| {
            sample.sort_unstable();
            sample.get(sample.len() / 2).copied().unwrap_or_default()
        })
        .collect())
}

/// [`execute_sequential`], optionally timing each transaction into `times`.
fn execute_timed<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
    times: Option<&mut Vec<std::time::Duration>>,
) -> Result<BlockOutput, ExecutionError>
where
    DB: DatabaseRef + StorageProbe + std::fmt::Debug,
    DB::Error: Send + Sync + 'static,
{
    let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
    let env = evm_env(spec, block.header);
    let guard = CollisionGuard::new(db.storage_only_accounts());
    let result = if guard.is_active() {
        // EIP-7610's storage check needs an inspector (see `eip7610.rs`).
        let evm = EthEvmFactory::default().create_evm_with_inspector(&mut state, env, guard);
        run_block(spec, block, evm, times)?
    } else {
        // What reth runs.
        run_block(spec, block, EthEvmFactory::default().create_evm(&mut state, env), times)?
    };
    state.merge_transitions(BundleRetention::PlainState);
    Ok(BlockOutput::new(result, state.take_bundle()))
}

/// The transactions and system changes of `block` through alloy-evm's executor on `evm`, each
/// transaction's time pushed to `times` if given.
fn run_block<'db, DB, I>(
    spec: &ChainSpec,
    block: BlockInput<'_>,
    evm: EthEvm<&'db mut State<DB>, I, PrecompilesMap>,
    mut times: Option<&mut Vec<std::time::Duration>>,
) -> Result<BlockExecutionResult<ReceiptEnvelope>, ExecutionError>
where
    DB: revm::Database + std::fmt::Debug,
    I: Inspector<EthEvmContext<&'db mut State<DB>>>,
{
    let header = block.header;
    let mut executor = EthBlockExecutor::new(
        evm,
        execution_ctx(block),
        AlloySpec(spec),
        AlloyReceiptBuilder::default(),
    );
    apply_dao_fork(spec, header, executor.evm_mut().db_mut())?;
    executor.apply_pre_execution_changes()?;
    for tx in block.transactions {
        match times.as_deref_mut() {
            Some(times) => {
                let started = std::time::Instant::now();
                executor.execute_transaction(tx)?;
                times.push(started.elapsed());
            }
            None => {
                executor.execute_transaction(tx)?;
            }
        }
    }
    check_system_contracts(spec, header.timestamp, executor.evm_mut().db_mut())?;
    Ok(executor.finish()?.1)
}
