//! The parallel engine: Block-STM over revm, with lazy beneficiary credits.
//!
//! ```text
//!  phase 0 (sequential)   DAO fork, EIP-2935/4788 system calls on a revm `State`
//!       │                 → snapshot of what they changed (the overlay)
//!  phase 1 (N workers)    Block-STM: execute / validate transactions speculatively;
//!       │                 reads: MvMemory → overlay → parent state; a read of an ESTIMATE
//!       │                 suspends the transaction until its writer finishes
//!  phase 2 (sequential)   commit each transaction's final revm state, in order, into the
//!                         same `State` (plus its fee credit), build receipts, then the
//!                         post-execution changes (requests, withdrawals, rewards)
//! ```
//!
//! **Why the output is identical to the oracle.** Block-STM guarantees that the final incarnation
//! of every transaction read exactly the values sequential execution would have given it, so its
//! revm result and state diff are the sequential ones. Phase 2 then performs the same commits, in
//! the same order, into the same kind of revm `State` as alloy-evm's `EthBlockExecutor`, and runs
//! its post-execution code unchanged, so receipts, gas, requests and the `BundleState` match.
//!
//! **Lazy beneficiary credits.** revm would credit each transaction's fee to the beneficiary as a
//! read-modify-write, making every transaction conflict with every other. Our handler skips that
//! credit and records it as a delta on the beneficiary's account location instead; a transaction
//! that really reads the beneficiary resolves the pending deltas (and depends on them). Phase 2
//! applies each credit through a revm journal, exactly as revm's `reward_beneficiary` does.

mod commit;
mod db;
mod remote;

pub use db::TxDbError;

use crate::{
    sequential::{apply_dao_fork, check_system_contracts, evm_env, execution_ctx, AlloySpec},
    BlockInput, BlockOutput, ExecutionError,
};
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, Transaction, TxType};
use alloy_evm::{
    block::{BlockExecutionError, BlockExecutor, BlockValidationError},
    eth::{receipt_builder::AlloyReceiptBuilder, EthBlockExecutor},
    EthEvmFactory, Evm, EvmEnv, EvmFactory, FromRecoveredTx,
};
use alloy_primitives::{Address, U256};
use db::{BlockMemory, DeltaRules, Location, MvValue, Overlay, TxDb};
use revm::{
    context::{
        journaled_state::account::JournaledAccountTr,
        result::{EVMError, ExecutionResult, HaltReason},
        BlockEnv, CfgEnv, Context, ContextTr, JournalTr, TxEnv,
    },
    context_interface::{Block as _, Cfg as _, Transaction as _},
    database::{states::bundle_state::BundleRetention, State},
    handler::{EvmTr, FrameResult, Handler, MainBuilder, MainContext, MainnetEvm},
    primitives::hardfork::SpecId,
    state::EvmState,
    DatabaseCommit, DatabaseRef, Journal,
};
use std::{
    cell::Cell,
    sync::{Arc, Mutex, OnceLock},
};
use velarium_chainspec::{ChainSpec, EthereumHardforks};
use velarium_mvmemory::WriteSet;
use velarium_primitives::Version;
use velarium_scheduler::{Scheduler, SchedulerTask};

/// Counters of one parallel block execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParallelStats {
    /// Transaction incarnations executed (including re-executions).
    pub executions: u64,
    /// Validations performed.
    pub validations: u64,
    /// Incarnations aborted by a failed validation.
    pub aborts: u64,
    /// Executions suspended on a dependency (an ESTIMATE).
    pub suspensions: u64,
    /// Worker threads used (0 when the block ran sequentially).
    pub threads: usize,
}

impl ParallelStats {
    /// Executions beyond one per transaction.
    pub const fn re_executions(&self, txs: usize) -> u64 {
        self.executions.saturating_sub(txs as u64)
    }
}

/// The final outcome of one transaction, as its last incarnation produced it.
#[derive(Debug)]
struct TxOutcome {
    result: Result<(ExecutionResult<HaltReason>, EvmState), EVMError<TxDbError>>,
    /// Fee owed to the beneficiary (not applied by the EVM).
    fee: U256,
    /// A transfer recipient executed against a placeholder balance (see `TxDb::lazy_basic`):
    /// its account in the state diff holds only the credit, to be rebased at commit.
    lazy_recipient: Option<Address>,
    /// With tracing on: the locations read, and those written (`true`: as a credit).
    trace: Option<TxTrace>,
    /// The logs bloom of the receipt, computed by the worker (off the sequential commit).
    bloom: alloy_primitives::Bloom,
}

/// One incarnation's accessed locations: those read, and those written (`true`: as a credit).
type TxTrace = (Vec<Location>, Vec<(Location, bool)>);

/// A state location, as access traces name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKey {
    /// An account's balance, nonce or code.
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
    /// The wiping of an account's storage (creation or self-destruction).
    StorageEpoch(Address),
}

impl From<Location> for AccessKey {
    fn from(location: Location) -> Self {
        match location {
            Location::Account(a) => Self::Account(a),
            Location::Storage(a, s) => Self::Storage(a, s),
            Location::StorageEpoch(a) => Self::StorageEpoch(a),
        }
    }
}

/// The revm EVM of one incarnation.
type TxEvm<'a, DB> = MainnetEvm<revm::handler::MainnetContext<TxDb<'a, DB>>>;

/// A mainnet handler whose only change: the beneficiary's fee is computed, not credited.
#[derive(Debug)]
struct LazyRewardHandler<'a, DB> {
    fee: Cell<U256>,
    _db: std::marker::PhantomData<&'a DB>,
}

impl<'a, DB> Handler for LazyRewardHandler<'a, DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    type Evm = TxEvm<'a, DB>;
    type Error = EVMError<TxDbError>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
    ) -> Result<(), Self::Error> {
        let ctx = evm.ctx();
        if ctx.cfg().is_fee_charge_disabled() {
            return Ok(());
        }
        let basefee = ctx.block().basefee() as u128;
        let effective_gas_price = ctx.tx().effective_gas_price(basefee);
        let coinbase_gas_price = if ctx.cfg().spec().is_enabled_in(SpecId::LONDON) {
            effective_gas_price.saturating_sub(basefee)
        } else {
            effective_gas_price
        };
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        self.fee.set(U256::from(coinbase_gas_price) * U256::from(used));
        Ok(())
    }
}

/// Shared, read-only inputs of the workers.
struct Shared<'a, DB> {
    base: &'a DB,
    overlay: &'a Overlay,
    memory: &'a BlockMemory,
    scheduler: &'a Scheduler,
    cfg: &'a CfgEnv,
    block_env: &'a BlockEnv,
    tx_envs: &'a [TxEnv],
    /// Per transaction, the recipient that may be credited lazily (plain value transfers).
    lazy_candidates: &'a [Option<Address>],
    /// Per transaction, the previous transaction of the same sender: a dependency known before
    /// execution (the nonce), so the transaction waits for it instead of running to abort.
    prev_same_sender: &'a [Option<u32>],
    beneficiary: Address,
    rules: DeltaRules,
    outcomes: &'a [Mutex<Option<TxOutcome>>],
    /// Record each incarnation's accessed locations (for contention analysis).
    trace: bool,
}

impl<DB> Shared<'_, DB>
where
    DB: DatabaseRef + Sync,
    DB::Error: std::fmt::Display,
{
    /// The worker loop of Block-STM (see velarium-scheduler's crate docs for the protocol).
    ///
    /// Each worker builds one revm EVM and reuses it for every incarnation it executes.
    fn work(&self) {
        let db = TxDb::new(self.memory, self.overlay, self.base, self.rules);
        let mut evm = Context::mainnet()
            .with_db(db)
            .with_cfg(self.cfg.clone())
            .with_block(self.block_env.clone())
            .build_mainnet();
        let mut task = None;
        let mut idle_rounds = 0u32;
        loop {
            let next = task.take().unwrap_or_else(|| self.scheduler.next_task());
            if !matches!(next, SchedulerTask::Retry) {
                idle_rounds = 0;
            }
            match next {
                SchedulerTask::Execute(version) => task = self.execute(&mut evm, version),
                SchedulerTask::Validate(version) => {
                    let txn_idx = version.txn_idx;
                    let aborted = !self.memory.validate_read_set(txn_idx)
                        && self.scheduler.try_validation_abort(txn_idx, version.incarnation);
                    if aborted {
                        self.memory.convert_writes_to_estimates(txn_idx);
                    }
                    task = self.scheduler.finish_validation(txn_idx, aborted);
                }
                SchedulerTask::Retry => {
                    // Nothing to do until another worker finishes: spin briefly, then give the
                    // core away (on an oversubscribed machine spinning starves that worker).
                    idle_rounds += 1;
                    if idle_rounds < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                SchedulerTask::Done => break,
            }
        }
    }

    /// Executes one incarnation; returns the follow-up task, if any.
    fn execute(&self, evm: &mut TxEvm<'_, DB>, version: Version) -> Option<SchedulerTask> {
        let txn_idx = version.txn_idx;
        if let Some(prev) = self.prev_same_sender[txn_idx as usize] {
            // `add_dependency` succeeds only while `prev` has not finished executing.
            if self.scheduler.add_dependency(txn_idx, prev) {
                return None;
            }
        }
        loop {
            evm.ctx()
                .journaled_state
                .database
                .reset(txn_idx, self.lazy_candidates[txn_idx as usize]);
            evm.ctx().tx = self.tx_envs[txn_idx as usize].clone();
            let mut handler =
                LazyRewardHandler { fee: Cell::new(U256::ZERO), _db: std::marker::PhantomData };
            let result = handler.run(evm);
            let state = evm.ctx().journal_mut().finalize();
            let db = &mut evm.ctx().journaled_state.database;
            if let Some(blocking) = db.blocked_on {
                if self.scheduler.add_dependency(txn_idx, blocking) {
                    // Suspended: resumed as a new incarnation once `blocking` finishes.
                    return None;
                }
                // The blocker finished meanwhile: run again, reading its new writes.
                continue;
            }
            let read_set = std::mem::take(&mut db.read_set);
            let lazy_recipient = db.lazy_recipient;
            let fee = handler.fee.get();
            let write_set = match &result {
                Ok(_) => self.write_set(&state, fee, lazy_recipient),
                Err(_) => WriteSet::new(),
            };
            let trace = self.trace.then(|| {
                let reads = read_set.iter().map(|(k, _)| *k).collect();
                let writes = write_set
                    .iter()
                    .map(|(k, w)| (*k, matches!(w, velarium_mvmemory::WriteValue::Delta(_))))
                    .collect();
                (reads, writes)
            });
            let wrote_new = self.memory.record(version, read_set, write_set);
            *self.outcomes[txn_idx as usize].lock().unwrap_or_else(|e| e.into_inner()) =
                Some(TxOutcome {
                    bloom: match &result {
                        Ok(r) => alloy_primitives::logs_bloom(r.logs()),
                        Err(_) => Default::default(),
                    },
                    result: result.map(|r| (r, state)),
                    fee,
                    lazy_recipient,
                    trace,
                });
            return self.scheduler.finish_execution(txn_idx, version.incarnation, wrote_new);
        }
    }

    /// The locations a transaction's state diff writes, as the next transactions must see them.
    fn write_set(
        &self,
        state: &EvmState,
        fee: U256,
        lazy_recipient: Option<Address>,
    ) -> WriteSet<Location, MvValue, U256> {
        let mut writes = WriteSet::new();
        let mut credited = false;
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            if Some(*address) == lazy_recipient {
                // Placeholder balance 0: what it holds now is exactly the credit.
                if !account.info.balance.is_zero() {
                    writes.delta(Location::Account(*address), account.info.balance);
                }
                continue;
            }
            let wiped = account.is_created() || account.is_selfdestructed();
            if wiped {
                writes.write(Location::StorageEpoch(*address), MvValue::Epoch);
            }
            let exists =
                !(account.is_selfdestructed() || self.rules.state_clear && account.is_empty());
            let mut info = exists.then(|| account.info.clone());
            if *address == self.beneficiary {
                credited = true;
                info = DeltaRules::apply_one(self.rules, info, fee);
            }
            let original = (!account.is_loaded_as_not_existing()).then(|| account.original_info());
            if wiped || info != original || *address == self.beneficiary {
                writes.write(Location::Account(*address), MvValue::Account(info));
            }
            if !account.is_selfdestructed() {
                for (slot, value) in account.changed_storage_slots() {
                    writes.write(
                        Location::Storage(*address, *slot),
                        MvValue::Storage(value.present_value),
                    );
                }
            }
        }
        if !credited && (!fee.is_zero() || !self.rules.state_clear) {
            writes.delta(Location::Account(self.beneficiary), fee);
        }
        writes
    }
}

/// The recipient of `tx` if it is a plain value transfer whose credit may be lazy: a call with
/// value and no input, to another account than the sender and the beneficiary, outside the
/// precompile range, and not an EIP-7702 transaction (whose authorizations may give the
/// recipient code). Whether the recipient has code is only known when it is read.
fn lazy_transfer_recipient(tx: &TxEnv, beneficiary: Address) -> Option<Address> {
    let revm::primitives::TxKind::Call(to) = tx.kind else { return None };
    let plain = !tx.value.is_zero()
        && tx.data.is_empty()
        && tx.authorization_list.is_empty()
        && to != tx.caller
        && to != beneficiary
        && to.0[..18].iter().any(|b| *b != 0);
    plain.then_some(to)
}

/// Credits a transaction's fee to the beneficiary through a revm journal, exactly as revm's
/// `reward_beneficiary` would have inside the transaction (touch rules included).
pub fn credit_beneficiary<DB>(
    state: &mut DB,
    spec_id: SpecId,
    beneficiary: Address,
    fee: U256,
) -> Result<(), ExecutionError>
where
    DB: revm::Database + DatabaseCommit,
    DB::Error: std::fmt::Display,
{
    let mut journal: Journal<&mut DB> = Journal::new(&mut *state);
    journal.set_spec_id(spec_id);
    journal
        .load_account_mut(beneficiary)
        .map_err(|e| ExecutionError::Internal(format!("loading beneficiary: {e}")))?
        .incr_balance(fee);
    let changes = journal.finalize();
    drop(journal);
    state.commit(changes);
    Ok(())
}

/// Executes a block with Block-STM on `threads` workers.
///
/// Returns exactly what [`crate::execute_sequential`] returns, plus the engine's counters.
pub fn execute_parallel<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
    threads: usize,
) -> Result<(BlockOutput, ParallelStats), ExecutionError>
where
    DB: DatabaseRef + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    execute_inner(spec, db, block, threads, None)
}

/// One transaction's final outcome from [`execute_transactions`], not yet committed.
#[derive(Debug)]
pub struct SpeculativeTx(TxOutcome);

impl SpeculativeTx {
    /// The fee owed to the beneficiary, which the engine does not credit (see
    /// [`credit_beneficiary`]); commit it right after the transaction's state.
    pub const fn fee(&self) -> U256 {
        self.0.fee
    }

    /// The transaction's result and state diff, exactly as sequential execution would have
    /// produced them on `db` (which must hold the block's state with every earlier transaction
    /// committed), except that the beneficiary's fee is not in the diff.
    ///
    /// The outer error is the engine's own (`db` failed); the inner one is the transaction's (it
    /// is invalid, which makes the block invalid).
    pub fn into_result<DB>(
        self,
        db: &mut DB,
    ) -> Result<Result<revm::context::result::ResultAndState, EVMError<TxDbError>>, ExecutionError>
    where
        DB: revm::Database,
        DB::Error: std::fmt::Display,
    {
        let TxOutcome { result, lazy_recipient, .. } = self.0;
        let (result, mut state) = match result {
            Ok(ok) => ok,
            Err(err) => return Ok(Err(err)),
        };
        if let Some(to) = lazy_recipient {
            if let Some(account) = state.get_mut(&to) {
                commit::rebase_account(db, to, account)?;
            }
        }
        Ok(Ok(revm::context::result::ResultAndState::new(result, state)))
    }
}

/// Runs `txs` with Block-STM on `threads` workers over a database that only the calling thread
/// may use (a node's `State`, say), and returns each transaction's final outcome in order.
///
/// `db` must already hold the block's pre-execution changes (system calls, DAO fork); the calling
/// thread serves the workers' reads of it while they run (see `remote.rs`). Nothing is
/// committed: the caller commits each [`SpeculativeTx::into_result`] in order, then credits its
/// [`SpeculativeTx::fee`], and gets exactly the state and results of sequential execution.
pub fn execute_transactions<DB>(
    db: &mut DB,
    cfg: &CfgEnv,
    block_env: &BlockEnv,
    txs: &[TxEnv],
    threads: usize,
) -> Result<(Vec<SpeculativeTx>, ParallelStats), ExecutionError>
where
    DB: revm::Database,
    DB::Error: std::fmt::Display,
{
    let mut stats = ParallelStats { threads, ..Default::default() };
    // Pre-heat: senders, recipients and the beneficiary are read by (nearly) every transaction.
    let mut preheat: Vec<Address> = std::iter::once(block_env.beneficiary)
        .chain(txs.iter().map(|tx| tx.caller))
        .chain(txs.iter().filter_map(|tx| tx.kind.to().copied()))
        .collect();
    preheat.sort_unstable();
    preheat.dedup();
    let overlay = Overlay::default();
    let outcomes = remote::with_remote_db(db, preheat, |remote| {
        run_block_stm(remote, &overlay, cfg, block_env, txs, threads, false, &mut stats)
    })
    .map_err(ExecutionError::Internal)??;
    Ok((outcomes.into_iter().map(SpeculativeTx).collect(), stats))
}

/// What each transaction of `block` read, wrote and credited, and its gas, as Block-STM sees it
/// (one worker, so every transaction runs once on its final inputs): the input of
/// `velarium_analyzer::critical_path`.
pub fn trace_accesses<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
) -> Result<Vec<velarium_analyzer::TxAccess<AccessKey>>, ExecutionError>
where
    DB: DatabaseRef + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    let mut traces = Vec::with_capacity(block.transactions.len());
    execute_inner(spec, db, block, 1, Some(&mut traces))?;
    Ok(traces)
}

/// [`execute_parallel`], optionally collecting access traces.
fn execute_inner<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
    threads: usize,
    mut traces: Option<&mut Vec<velarium_analyzer::TxAccess<AccessKey>>>,
) -> Result<(BlockOutput, ParallelStats), ExecutionError>
where
    DB: DatabaseRef + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    let header = block.header;
    let env: EvmEnv = evm_env(spec, header);
    let spec_id = env.cfg_env.spec;
    let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
    let ctx = execution_ctx(block);
    let mut stats = ParallelStats { threads, ..Default::default() };
    let result = {
        let evm = EthEvmFactory::default().create_evm(&mut state, env.clone());
        let mut executor =
            EthBlockExecutor::new(evm, ctx, AlloySpec(spec), AlloyReceiptBuilder::default());
        // Phase 0: pre-execution changes, sequentially.
        apply_dao_fork(spec, header, executor.evm_mut().db_mut())?;
        executor.apply_pre_execution_changes()?;
        let overlay = Overlay::from_cache(&executor.evm_mut().db_mut().cache);

        // Phase 1: Block-STM.
        let txs = block.transactions;
        let tx_envs: Vec<TxEnv> =
            txs.iter().map(|tx| TxEnv::from_recovered_tx(tx.inner(), tx.signer())).collect();
        let outcomes = run_block_stm(
            db,
            &overlay,
            &env.cfg_env,
            &env.block_env,
            &tx_envs,
            threads,
            traces.is_some(),
            &mut stats,
        )?;

        // Phase 2: receipts and gas in order, then the state diffs committed in order (see
        // `commit.rs`), exactly as the sequential executor does.
        let cancun = spec.is_cancun_active_at_timestamp(header.timestamp);
        let mut diffs = Vec::with_capacity(txs.len());
        for (tx, outcome) in txs.iter().zip(outcomes) {
            let available = header.gas_limit - executor.cumulative_tx_gas_used;
            let mut max_tx_gas = tx.gas_limit();
            if let Some(cap) = env.cfg_env.tx_gas_limit_cap {
                max_tx_gas = max_tx_gas.min(cap);
            }
            if max_tx_gas > available {
                return Err(BlockExecutionError::from(
                    BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas {
                        transaction_gas_limit: tx.gas_limit(),
                        block_available_gas: available,
                    },
                )
                .into());
            }
            let (result, changes) = outcome
                .result
                .map_err(|err| BlockExecutionError::evm(err, *tx.inner().tx_hash()))?;
            let gas = result.gas();
            if let (Some(traces), Some((reads, writes))) = (traces.as_deref_mut(), &outcome.trace) {
                let (credits, writes): (Vec<_>, Vec<_>) = writes.iter().partition(|(_, c)| *c);
                traces.push(velarium_analyzer::TxAccess {
                    reads: reads.iter().map(|l| AccessKey::from(*l)).collect(),
                    writes: writes.into_iter().map(|(l, _)| AccessKey::from(l)).collect(),
                    credits: credits.into_iter().map(|(l, _)| AccessKey::from(l)).collect(),
                    gas: gas.tx_gas_used(),
                });
            }
            executor.block_regular_gas_used += gas.block_regular_gas_used();
            executor.block_state_gas_used += gas.block_state_gas_used();
            executor.cumulative_tx_gas_used += gas.tx_gas_used();
            if cancun {
                executor.blob_gas_used =
                    executor.blob_gas_used.saturating_add(tx.blob_gas_used().unwrap_or_default());
            }
            let receipt = alloy_consensus::ReceiptWithBloom {
                receipt: Receipt {
                    status: Eip658Value::Eip658(result.is_success()),
                    cumulative_gas_used: executor.cumulative_tx_gas_used,
                    logs: result.into_logs(),
                },
                logs_bloom: outcome.bloom,
            };
            executor.receipts.push(match tx.tx_type() {
                TxType::Legacy => ReceiptEnvelope::Legacy(receipt),
                TxType::Eip2930 => ReceiptEnvelope::Eip2930(receipt),
                TxType::Eip1559 => ReceiptEnvelope::Eip1559(receipt),
                TxType::Eip4844 => ReceiptEnvelope::Eip4844(receipt),
                TxType::Eip7702 => ReceiptEnvelope::Eip7702(receipt),
            });
            diffs.push(commit::TxDiff {
                changes,
                fee: outcome.fee,
                lazy_recipient: outcome.lazy_recipient,
            });
        }
        let state = executor.evm_mut().db_mut();
        let beneficiary = header.beneficiary;
        commit::commit_in_order(state, diffs, spec_id, beneficiary)?;
        check_system_contracts(spec, header.timestamp, executor.evm_mut().db_mut())?;
        executor.finish()?.1
    };
    state.merge_transitions(BundleRetention::PlainState);
    let output = BlockOutput::new(result, state.take_bundle());
    Ok((output, stats))
}

/// Phase 1: runs Block-STM over the transactions; returns each one's final outcome in order.
#[allow(clippy::too_many_arguments)]
fn run_block_stm<DB>(
    db: &DB,
    overlay: &Overlay,
    cfg: &CfgEnv,
    block_env: &BlockEnv,
    tx_envs: &[TxEnv],
    threads: usize,
    trace: bool,
    stats: &mut ParallelStats,
) -> Result<Vec<TxOutcome>, ExecutionError>
where
    DB: DatabaseRef + Sync,
    DB::Error: std::fmt::Display,
{
    let txs = tx_envs;
    if txs.is_empty() {
        return Ok(Vec::new());
    }
    let beneficiary = block_env.beneficiary;
    let lazy_candidates: Vec<Option<Address>> =
        txs.iter().map(|tx| lazy_transfer_recipient(tx, beneficiary)).collect();
    let mut last_of_sender: alloy_primitives::map::HashMap<Address, u32> = Default::default();
    let prev_same_sender: Vec<Option<u32>> =
        txs.iter().enumerate().map(|(i, tx)| last_of_sender.insert(tx.caller, i as u32)).collect();
    let memory = BlockMemory::with_hasher(txs.len(), Default::default());
    let scheduler = Scheduler::new(txs.len());
    let outcomes: Vec<Mutex<Option<TxOutcome>>> = txs.iter().map(|_| Mutex::new(None)).collect();
    let shared = Shared {
        base: db,
        overlay,
        memory: &memory,
        scheduler: &scheduler,
        cfg,
        block_env,
        tx_envs,
        lazy_candidates: &lazy_candidates,
        prev_same_sender: &prev_same_sender,
        beneficiary,
        rules: DeltaRules { state_clear: cfg.spec.is_enabled_in(SpecId::SPURIOUS_DRAGON) },
        outcomes: &outcomes,
        trace,
    };
    let pool = worker_pool(threads)?;
    let panics: Vec<String> = pool
        .broadcast(|_| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.work())).map_err(
                |panic| {
                    // Stop the others promptly: nobody waits on a dead worker.
                    scheduler.halt();
                    panic_message(&panic)
                },
            )
        })
        .into_iter()
        .filter_map(Result::err)
        .collect();
    let counters = scheduler.counters();
    stats.executions = counters.executions;
    stats.validations = counters.validations;
    stats.aborts = counters.aborts;
    stats.suspensions = counters.suspensions;
    if let Some(msg) = panics.first() {
        return Err(ExecutionError::Internal(format!("worker panicked: {msg}")));
    }
    if let Some(err) = scheduler.invariant_error() {
        return Err(ExecutionError::Internal(format!("scheduler invariant: {err}")));
    }
    if scheduler.is_halted() {
        return Err(ExecutionError::Internal("scheduler halted".to_string()));
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .ok_or_else(|| ExecutionError::Internal(format!("transaction {i} has no outcome")))
        })
        .collect()
}

/// A worker pool and its thread count.
type PoolEntry = (usize, Arc<rayon::ThreadPool>);

/// The process-wide pool of `threads` Block-STM workers (created on first use, then reused by
/// every block, so a block pays no thread start-up). Blocks executed concurrently on the same
/// pool queue for its threads; Block-STM needs no particular number of live workers to finish.
fn worker_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, ExecutionError> {
    static POOLS: OnceLock<Mutex<Vec<PoolEntry>>> = OnceLock::new();
    let threads = threads.max(1);
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("velarium-worker-{i}"))
        .build()
        .map_err(|e| ExecutionError::Internal(format!("starting {threads} workers: {e}")))?;
    let pool = Arc::new(pool);
    pools.push((threads, Arc::clone(&pool)));
    Ok(pool)
}

/// A panic payload's message.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
