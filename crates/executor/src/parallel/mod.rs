//! The parallel engine: Block-STM over revm, with lazy beneficiary credits.
//!
//! ```text
//!  phase 0 (sequential)   DAO fork, EIP-2935/4788 system calls on a revm `State`
//!       │                 → snapshot of what they changed (the overlay)
//!  phase 1 (N workers)    Block-STM: execute / validate transactions speculatively;
//!       │                 reads: MvMemory → overlay → parent state; a read of an ESTIMATE
//!       │                 pauses on a running writer or suspends the transaction; a rolling
//!       │                 commit makes each transaction final as soon as every lower one is,
//!       │                 and idle workers fold committed transactions' diffs per account
//!  phase 2 (N workers)    the rest of the fold, sharded by account (commit.rs), shard bundles
//!                         united; receipts; alloy-evm's post-execution changes (requests,
//!                         withdrawals, rewards) on the `State`
//! ```
//!
//! **Speculation window.** The scheduler normally lets workers run arbitrarily far ahead of the
//! commit point. A block whose transactions keep failing validation at the commit point (hot
//! contracts, same-sender chains) has its window narrowed to the worker count, so speculation
//! stays near the commit point where it is likely to be right; a block that is mostly one
//! sender's chain runs with a window of one (in order). A location whose reads keep failing
//! validation (four times), or that effect analysis predicts, is hot: a later read of it that
//! finds it written just below the reader, with a lower transaction still running, is a link of
//! a chain of read-modify-writes (a game's or a pool's state that half the block updates).
//! The reader leaves an estimate of its own there and is suspended on the closest lower
//! transaction being executed; the next link, blocked by that estimate, is suspended on it in
//! turn. Each link runs again when the one before finishes, on the worker that finished it (the
//! lowest ready transaction goes first), while the other workers execute the rest of the block
//! instead of waiting their turn in the chain (see `db::TxDb::read`; with isolation off, the
//! reader waits for the lower executions instead).
//!
//! **Independent transfers.** A block whose transactions are all plain value transfers, each
//! sender sending once, no sender paid in the block and neither the beneficiary, has no
//! dependency between its transactions that its shape does not rule out: phase 1 then skips
//! Block-STM (no scheduler, multi-version memory, read sets or validation) and the workers take
//! the transactions in chunks, each executed once as final (`independent.rs`). The state decides
//! the rest: a transaction that the plain-transfer path declines (a recipient with code, a sender
//! short of funds) sends the whole block to Block-STM. On two workers, Block-STM's bookkeeping
//! crossed the cores at every such transaction, which made a second worker worth little there.
//!
//! **Why the output is identical to the oracle.** Block-STM guarantees that the final incarnation
//! of every transaction read exactly the values sequential execution would have given it, so its
//! revm result and state diff are the sequential ones. The fold then replays, per account and in
//! transaction order, exactly what revm's `State::commit` and `merge_transitions` do (with revm's
//! own cache-account and transition code), and alloy-evm's post-execution code runs unchanged on
//! the `State`, so receipts, gas, requests and the `BundleState` match. Any broken invariant is a
//! typed [`EngineFault`]: counted, logged, and the block re-executed by the oracle.
//!
//! **Lazy beneficiary credits.** revm would credit each transaction's fee to the beneficiary as a
//! read-modify-write, making every transaction conflict with every other. Our handler skips that
//! credit and records it as a delta on the beneficiary's account location instead; a transaction
//! that really reads the beneficiary resolves the pending deltas (and depends on them). Phase 2
//! applies each credit through a revm journal, exactly as revm's `reward_beneficiary` does.
//!
//! **Lazy senders.** A hot wallet paying out (an exchange, a mining pool that is also the block's
//! beneficiary) makes one nonce chain of the block: every transaction reads and writes its
//! sender's nonce and balance. Where the sender has no code, its transactions' nonces follow its
//! nonce one by one, its balance before the block covers the largest possible cost of all of
//! them, and the block has no EIP-7702 transaction, none of its transactions can fail on the
//! sender, in any order. Its plain transfers to accounts without code (which observe nothing
//! else of the sender) then read it as its balance before the block with their own nonce, and
//! write their debit and nonce bump as a delta; the fold rebuilds the account in order on its
//! committed state, checking the nonce (a broken assumption is an engine fault).
//!
//! **Long transactions first.** Workers take transactions in block order, so a long one near
//! the end of the block (a rollup's proof verification, a large batch) would start only when
//! the others are almost done, and run alone. A transaction whose gas limit is at least the
//! gas limits of every later transaction per worker (and three times the block's mean) is
//! handed out first instead, beside the others, unless a lower transaction comes from its
//! sender, pays its sender or calls the account it calls (likely writing what it reads). It is
//! validated like any other and runs again if a lower transaction wrote what it read (the
//! risk: one wasted long execution, where the dependency is hidden deeper).
//!
//! **Bounded re-executions.** The scheduler hands a transaction out above the commit point for
//! its first `velarium_scheduler::MAX_SPECULATIVE_INCARNATIONS` incarnations only; a later one
//! runs at the commit point, on final values, and cannot abort.
//!
//! **One worker.** A run on one worker executes every transaction in block order with every
//! lower one committed: no read can be stale, so the mechanisms below (and the sender chains,
//! hot locations and early starts above) would only add bookkeeping, and are off there (see
//! [`Mechanisms::for_workers`]), except in a traced run, whose traces show the credits.
//!
//! **Lazy beneficiary.** The beneficiary is credited inside the EVM too: a searcher's tip from
//! a contract, a transfer to it. Such a transaction would read the beneficiary's balance, which
//! is the sum of every lower transaction's fee, and so wait for all of them. Where the
//! beneficiary has no code and is not empty and the block has no EIP-7702 transaction, only
//! its own transactions can take from it or tell its nonce, and its balance is seen only
//! through `BALANCE`, whose instruction the workers watch. Other transactions then read it as
//! it was before the block and write their credits as a delta; one that runs `BALANCE` on it
//! runs again reading it for real; the fold rebuilds the account in order on its committed
//! state.
//!
//! **Storage credits.** A token's hot receiver (an exchange's deposit address) has its balance
//! slot read and written by every transfer to it: as plain writes the block is one chain. The
//! workers' `SLOAD` watches the hot slots: where the code right after the load only adds to
//! the value and stores the sum back at the loaded key, kept on the stack or pushed again as a
//! constant (`balanceOf[dst] += wad`, a counter's `slot0 += 1`; proved by
//! `velarium_analyzer::increment`), the transaction is served the slot's last full value,
//! ignoring other transactions' credits, and writes what it added as a delta. Its `SSTORE` costs
//! the same whatever the value, as long as the value is non-zero and the sum does not wrap
//! (`db::StorageCredit` bounds both). A transaction that loads or stores the slot again runs
//! again reading it for real; readers of the slot add the credits up; the fold rebuilds the
//! slot in order on its folded value.

mod bloom;
mod commit;
mod db;
mod fault;
mod fees;
mod handler;
mod independent;
mod pool;
mod remote;
mod stream;
mod transfer;
mod worker;

pub use db::TxDbError;
pub(crate) use fault::record as record_fault;
pub use fault::{engine_faults, EngineFault};
pub use pool::{panic_message, pin_workers};
pub use stream::{start_streaming, StreamingRun};
pub use transfer::set_checked as check_transfers;

use crate::eip7610::StorageProbe;
use crate::{
    sequential::{apply_dao_fork, check_system_contracts, evm_env, execution_ctx, AlloySpec},
    BlockInput, BlockOutput, ExecutionError,
};
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, Transaction, TxType};
use alloy_evm::{
    block::{BlockExecutionError, BlockExecutor, BlockValidationError},
    eth::{receipt_builder::AlloyReceiptBuilder, EthBlockExecutor},
    EthEvmFactory, Evm, EvmEnv, EvmFactory,
};
use alloy_primitives::{
    map::{AddressSet, HashMap},
    Address, B256, U256,
};
use db::{DeltaRules, LazyBeneficiary, LazySender, Location, Overlay};
use pool::WorkerPool;
use revm::{
    context::{
        journaled_state::account::JournaledAccountTr,
        result::{EVMError, ExecutionResult},
        BlockEnv, CfgEnv, JournalTr, TxEnv,
    },
    database::{states::bundle_state::BundleRetention, State},
    primitives::hardfork::SpecId,
    DatabaseCommit, DatabaseRef, Journal,
};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};
use velarium_analyzer::effects::{constant_storage_keys, HotHistory};
use velarium_chainspec::{ChainSpec, EthereumHardforks};
use worker::{Shared, TxOutcome, TxSource};

/// Counters of one parallel block execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParallelStats {
    /// Transaction incarnations executed (including re-executions).
    pub executions: u64,
    /// Validations performed.
    pub validations: u64,
    /// Incarnations aborted by a failed validation.
    pub aborts: u64,
    /// Executions suspended on a dependency (an ESTIMATE nobody was executing): abandoned.
    pub suspensions: u64,
    /// Reads paused until the transaction they depend on finished executing (nothing lost).
    pub waits: u64,
    /// Locations predicted hot before execution (effect analysis and history; see
    /// `predict_hot`).
    pub predicted_hot: u64,
    /// Transactions whose sender could be read lazily (see the module docs, "Lazy senders").
    pub lazy_sender_txs: u64,
    /// Transactions that read the beneficiary lazily (see the module docs, "Lazy beneficiary").
    pub lazy_beneficiary_txs: u64,
    /// Incarnations executed as plain transfers without the EVM (see `transfer.rs`).
    pub plain_transfers: u64,
    /// Incarnations that credited a hot storage slot by an unobserved increment instead of
    /// reading it (see the module docs, "Storage credits").
    pub storage_credits: u64,
    /// Long transactions handed out before the execution sweep reached them (see the module
    /// docs, "Long transactions first").
    pub early_txs: u64,
    /// Nanoseconds the first incarnations of every eighth transaction took to execute, waits
    /// for lower transactions included, and the gas they used (what the engine learns the
    /// block's cost per gas from, see [`crate::workers_for`]). None on a block of independent
    /// transfers (see [`ParallelStats::independent`]): the rate is Block-STM's.
    pub sampled_nanos: u64,
    /// The gas of the transactions [`ParallelStats::sampled_nanos`] timed.
    pub sampled_gas: u64,
    /// Worker threads used (0 when the block ran sequentially).
    pub threads: usize,
    /// The engine faulted on this block (see [`EngineFault`]) and the oracle executed it.
    pub fell_back: bool,
    /// The block's transactions were independent plain transfers, run without Block-STM (see
    /// the module docs, "Independent transfers").
    pub independent: bool,
    /// The block had the shape of independent plain transfers, but its state made a
    /// transaction the EVM's: it ran through Block-STM after all.
    pub independent_declined: bool,
    /// The oracle executed this block because Block-STM ran the last block dominated by the
    /// same contract as a chain (see [`crate::chained`]).
    pub learned_chain: bool,
    /// Wall time of each phase.
    pub phases: PhaseTimes,
    /// The workers' working time during Block-STM, added up over the workers (see
    /// [`ParallelStats::worker_utilisation`]).
    pub worker_busy: std::time::Duration,
    /// Wall time from handing Block-STM to the workers until the last one finished (the
    /// set-up before it excluded).
    pub worker_wall: std::time::Duration,
    /// The storage slots and accounts that became hot in this block (their reads failed
    /// validation repeatedly), most failures first: see [`ParallelStats::hot_spots`].
    hot_spots: [HotSpot; MAX_HOT_SPOTS],
    /// How many entries of `hot_spots` are used.
    hot_spot_count: u8,
}

/// How many hot locations [`ParallelStats`] reports per block.
pub const MAX_HOT_SPOTS: usize = 10;

/// A location that was hot in a block: validations of reads of it failed because a lower
/// transaction changed it under the reader, or its reads paused for a lower transaction
/// writing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HotSpot {
    /// The account.
    pub address: Address,
    /// The storage slot (`None`: the account's balance, nonce or code).
    pub slot: Option<U256>,
    /// Validations that failed on a read of it (each an abort, or a re-execution).
    pub failed_validations: u32,
    /// Reads of it that met a lower transaction's write in progress (an `ESTIMATE`, or a hot
    /// location written just below) and read again once that was done, instead of aborting.
    pub waits: u32,
}

impl HotSpot {
    /// What the location cost: failed validations plus paused reads.
    pub const fn conflicts(&self) -> u64 {
        self.failed_validations as u64 + self.waits as u64
    }
}

/// Failed validations plus paused reads from which a location is reported as a hot spot.
pub const HOT_SPOT_CONFLICTS: u64 = 4;

impl ParallelStats {
    /// The block's hot locations, most conflicts (failed validations plus paused reads) first,
    /// at most [`MAX_HOT_SPOTS`], each with at least [`HOT_SPOT_CONFLICTS`].
    pub fn hot_spots(&self) -> &[HotSpot] {
        &self.hot_spots[..usize::from(self.hot_spot_count)]
    }

    fn set_hot_spots(&mut self, mut spots: Vec<HotSpot>) {
        spots.retain(|s| s.conflicts() >= HOT_SPOT_CONFLICTS);
        spots.sort_by_key(|s| (s.address, s.slot));
        spots.dedup_by(|a, b| (a.address, a.slot) == (b.address, b.slot));
        spots.sort_by_key(|s| (std::cmp::Reverse(s.conflicts()), s.address, s.slot));
        spots.truncate(MAX_HOT_SPOTS);
        self.hot_spot_count = spots.len() as u8;
        self.hot_spots[..spots.len()].copy_from_slice(&spots);
    }
}

/// Wall time of the phases of one parallel block execution (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimes {
    /// Set-up and the pre-execution changes (phase 0).
    pub pre: std::time::Duration,
    /// Block-STM (phase 1).
    pub execute: std::time::Duration,
    /// Receipts and the fold of the state diffs (phase 2).
    pub commit: std::time::Duration,
    /// alloy-evm's post-execution changes, the merge and the union of the bundles.
    pub post: std::time::Duration,
}

impl ParallelStats {
    /// The share of the workers' time in Block-STM (from the hand-over to the last worker's
    /// end, the fold of the state diffs included) spent working, 0 to 1: a worker waiting for
    /// work, or done before the others, is not working. `None` when the block did not run
    /// through Block-STM or had no transactions.
    pub fn worker_utilisation(&self) -> Option<f64> {
        let available = self.worker_wall.as_secs_f64() * self.threads as f64;
        (available > 0.0 && self.executions > 0)
            .then(|| (self.worker_busy.as_secs_f64() / available).clamp(0.0, 1.0))
    }

    /// Executions beyond one per transaction.
    pub const fn re_executions(&self, txs: usize) -> u64 {
        self.executions.saturating_sub(txs as u64)
    }
}

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
        .map_err(|e| ExecutionError::StateRead(format!("loading beneficiary: {e}")))?
        .incr_balance(fee);
    let changes = journal.finalize();
    drop(journal);
    state.commit(changes);
    Ok(())
}

/// The engine's contention mechanisms, each of which can be switched off to measure what it is
/// worth (`velarium bench --ablation`). Switching any off never changes a result, only speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanisms {
    /// Known dependencies before execution: a transaction whose sender has an earlier
    /// transaction in the block is suspended on it instead of running to abort; and effect
    /// analysis: the locations hot in recent blocks and the constant storage slots of the
    /// contracts many of the block's transactions call start out hot (see `predict_hot`).
    pub hints: bool,
    /// Commutative credits: a plain value transfer's recipient is credited as a delta, so
    /// transfers to one account do not conflict; likewise lazy senders, the lazy beneficiary
    /// and hot storage slots' unobserved increments (storage credits, see the module docs).
    /// (The beneficiary's fees are always kept apart.)
    pub deltas: bool,
    /// Hot-spot isolation: a block that is mostly one sender's chain runs in order, repeated
    /// commit-point aborts bound speculation to one transaction per worker, and (with `risk`)
    /// a chain of read-modify-writes of a hot location runs link by link, each link suspended
    /// on the one before while the workers do the rest of the block (see the module docs).
    pub isolation: bool,
    /// Risk-aware speculation: a read of a value being written by a running transaction
    /// pauses until it is written, and reads of locations that failed validation (and of the
    /// beneficiary) wait for the lower running transactions.
    pub risk: bool,
}

impl Default for Mechanisms {
    fn default() -> Self {
        Self::ALL
    }
}

impl Mechanisms {
    /// Every mechanism on: what the engine runs.
    pub const ALL: Self = Self { hints: true, deltas: true, isolation: true, risk: true };

    /// Every mechanism off.
    pub const NONE: Self = Self { hints: false, deltas: false, isolation: false, risk: false };

    /// The mechanisms a run on `workers` workers uses: these, or none on one worker. One
    /// worker executes every transaction in block order with every lower one committed, so no
    /// read can be stale and there is nothing to predict, credit, isolate or wait for; each
    /// mechanism would only add its bookkeeping. Measured by turns (2026-12-07, `velarium
    /// bench --threads 1`, medians of 4 rounds, near cores), every mechanism off against on:
    /// payouts 0.91x -> 0.99x, builder_tips 0.84x -> 0.91x, counter_modes 0.90x -> 0.96x,
    /// reads_beneficiary 0.88x -> 0.92x, late_heavy 1.05x -> 1.10x, eth_transfers 1.29x ->
    /// 1.34x, mixed 0.91x -> 0.89x, the others within 3%.
    pub fn for_workers(self, workers: usize) -> Self {
        if workers > 1 {
            self
        } else {
            Self::NONE
        }
    }
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
    DB: DatabaseRef + StorageProbe + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    execute_inner(spec, db, block, threads, None, Mechanisms::ALL)
}

/// [`execute_parallel`] with some of the engine's [`Mechanisms`] switched off (for ablation
/// measurements; the result is the same).
pub fn execute_parallel_with<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
    threads: usize,
    mechanisms: Mechanisms,
) -> Result<(BlockOutput, ParallelStats), ExecutionError>
where
    DB: DatabaseRef + StorageProbe + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    execute_inner(spec, db, block, threads, None, mechanisms)
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

    /// What the outcome depends on and what it changes, if it was run traced
    /// ([`execute_transactions_traced`]): `(reads, writes)`, as locations.
    ///
    /// The outcome is exact on any state in which every location in `reads` holds what it held
    /// for the engine: the value of its highest writer below the transaction in the run (or of
    /// the database the run read, if none). A caller that commits the run's transactions in
    /// order, but skips some or commits others in between, keeps that as long as no location in
    /// `reads` is among the `writes` of a transaction it skipped or the locations anything else
    /// it committed wrote. A read of a slot also depends on its account's
    /// [`AccessKey::StorageEpoch`]. `reads` holds what the engine read through multi-version
    /// memory plus the accounts it served from placeholders (a lazily read sender, recipient or
    /// beneficiary, whose outcome is rebased at commit and relies on its order among the
    /// others); `writes` includes the beneficiary when the transaction pays a fee. An invalid
    /// transaction writes nothing.
    pub fn accesses(&self) -> Option<(Vec<AccessKey>, Vec<AccessKey>)> {
        let (reads, writes) = self.0.trace.as_deref()?;
        let placeholders = [
            self.0.lazy_sender.map(|s| s.address),
            self.0.lazy_recipient,
            self.0.lazy_beneficiary.map(|b| b.address),
        ];
        let reads = reads
            .iter()
            .map(|(location, _)| AccessKey::from(*location))
            .chain(placeholders.into_iter().flatten().map(AccessKey::Account))
            .collect();
        let writes = writes.iter().map(|(location, _)| AccessKey::from(*location)).collect();
        Some((reads, writes))
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
        let TxOutcome {
            result, lazy_recipient, lazy_sender, lazy_beneficiary, storage_credit, ..
        } = self.0;
        let (result, mut state) = match result {
            Ok(ok) => ok,
            Err(err) => return Ok(Err(err)),
        };
        if let Some(credit) = storage_credit.as_deref().copied() {
            if let Some(slot) =
                state.get_mut(&credit.address).and_then(|a| a.storage.get_mut(&credit.slot))
            {
                let current = db.storage(credit.address, credit.slot).map_err(|e| {
                    ExecutionError::StateRead(format!("loading {}: {e}", credit.address))
                })?;
                credit.rebase(slot, current);
            }
        }
        let lazy = lazy_recipient
            .map(|to| (to, commit::Rebase::Recipient))
            .into_iter()
            .chain(lazy_sender.map(|s| (s.address, commit::Rebase::Sender(s))))
            .chain(lazy_beneficiary.map(|b| (b.address, commit::Rebase::Beneficiary(b))));
        for (address, rebase) in lazy {
            if let Some(account) = state.get_mut(&address) {
                commit::rebase_account(db, address, account, rebase)?;
            }
        }
        Ok(Ok(revm::context::result::ResultAndState::new(result, state)))
    }
}

/// Runs `txs` with Block-STM on `threads` workers over a database that only the calling thread
/// may use (a node's `State`, say), and returns each transaction's final outcome in order.
///
/// `db` must already hold the block's pre-execution changes (system calls, DAO fork); the calling
/// thread is worker 0 and serves the other workers' reads of it (see `remote.rs`). Nothing is
/// committed: the caller commits each [`SpeculativeTx::into_result`] in order with its
/// [`SpeculativeTx::fee`] credited to the beneficiary (`velarium-reth-glue` merges the credit
/// into the transaction's diff, one commit per transaction, as revm's `reward_beneficiary`
/// would), and gets exactly the state and results of sequential execution.
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
    run_transactions(db, cfg, block_env, txs, threads, false)
}

/// [`execute_transactions`] keeping each outcome's accesses ([`SpeculativeTx::accesses`]), for
/// a caller that may commit only some of the transactions, or others in between: an outcome is
/// still exact as long as nothing it read was written differently (see
/// [`SpeculativeTx::accesses`]). Every transaction then keeps its read set, which costs a little.
pub fn execute_transactions_traced<DB>(
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
    run_transactions(db, cfg, block_env, txs, threads, true)
}

/// [`execute_transactions`], with or without access traces.
fn run_transactions<DB>(
    db: &mut DB,
    cfg: &CfgEnv,
    block_env: &BlockEnv,
    txs: &[TxEnv],
    threads: usize,
    trace: bool,
) -> Result<(Vec<SpeculativeTx>, ParallelStats), ExecutionError>
where
    DB: revm::Database,
    DB::Error: std::fmt::Display,
{
    let mut stats = ParallelStats { threads, ..Default::default() };
    let preheat = preheat_accounts(block_env, txs);
    let overlay = Overlay::default();
    let pool = WorkerPool::get(threads)?;
    let outcomes = remote::with_remote_db(db, preheat, |remote| {
        let mechanisms = Mechanisms::ALL;
        // A node's state cannot name storage-only accounts: EIP-7610's storage check is left
        // out there, as reth's own executor leaves it out.
        let storage_only = AddressSet::default();
        run_block_stm(
            &pool,
            remote,
            &overlay,
            cfg,
            block_env,
            TxSource::Envs(txs),
            None,
            trace,
            &storage_only,
            mechanisms,
            &mut stats,
        )
    })
    .map_err(ExecutionError::StateRead)??;
    let outcomes = match outcomes {
        None => Vec::new(),
        Some(mut workspace) => {
            let taken = workspace.take_outcomes();
            pool::give_back(workspace);
            taken?
        }
    };
    Ok((outcomes.into_iter().map(SpeculativeTx).collect(), stats))
}

/// The accounts to read before a run over a database only the caller may touch: senders,
/// recipients and the beneficiary are read by (nearly) every transaction.
fn preheat_accounts(block_env: &BlockEnv, txs: &[TxEnv]) -> Vec<Address> {
    let mut preheat: Vec<Address> = std::iter::once(block_env.beneficiary)
        .chain(txs.iter().map(|tx| tx.caller))
        .chain(txs.iter().filter_map(|tx| tx.kind.to().copied()))
        .collect();
    preheat.sort_unstable();
    preheat.dedup();
    preheat
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
    DB: DatabaseRef + StorageProbe + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    let mut traces = Vec::with_capacity(block.transactions.len());
    execute_inner(spec, db, block, 1, Some(&mut traces), Mechanisms::ALL)?;
    Ok(traces)
}

/// [`execute_parallel`], optionally collecting access traces.
fn execute_inner<DB>(
    spec: &ChainSpec,
    db: &DB,
    block: BlockInput<'_>,
    threads: usize,
    mut traces: Option<&mut Vec<velarium_analyzer::TxAccess<AccessKey>>>,
    mechanisms: Mechanisms,
) -> Result<(BlockOutput, ParallelStats), ExecutionError>
where
    DB: DatabaseRef + StorageProbe + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    let header = block.header;
    let env: EvmEnv = evm_env(spec, header);
    let spec_id = env.cfg_env.spec;
    let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
    let ctx = execution_ctx(block);
    let mut stats = ParallelStats { threads, ..Default::default() };
    let pool = WorkerPool::get(threads)?;
    // The helpers wake while the block is prepared, rather than when Block-STM starts.
    pool.prewake();
    let (result, united, main_bound, phase3, hand_off) = {
        let evm = EthEvmFactory::default().create_evm(&mut state, env.clone());
        let mut executor =
            EthBlockExecutor::new(evm, ctx, AlloySpec(spec), AlloyReceiptBuilder::default());
        let started = std::time::Instant::now();
        // Phase 0: pre-execution changes, sequentially.
        apply_dao_fork(spec, header, executor.evm_mut().db_mut())?;
        executor.apply_pre_execution_changes()?;
        let overlay = Overlay::from_cache(&executor.evm_mut().db_mut().cache);

        let phase1 = std::time::Instant::now();
        stats.phases.pre = phase1 - started;
        // Phase 1: Block-STM, with the state diffs folded per account as the transactions
        // commit (see `commit.rs`).
        let txs = block.transactions;
        let state = executor.evm_mut().db_mut();
        let main_bound = main_bound_accounts(block, &state.cache);
        state.transition_state.get_or_insert_default();
        let (outcomes, shards) = {
            let state: &State<_> = state;
            let transitions = state
                .transition_state
                .as_ref()
                .ok_or(EngineFault::Invariant("the block state keeps no transitions"))?;
            let view =
                commit::MainView { cache: &state.cache, transitions, main_bound: &main_bound };
            let (shard_count, hot) = fold_shards(threads, TxSource::Recovered(txs));
            let folds = commit::Folds::new(
                shard_count,
                db,
                &view,
                spec_id,
                header.beneficiary,
                hot,
                txs.len(),
            );
            let outcomes = run_block_stm(
                &pool,
                db,
                &overlay,
                &env.cfg_env,
                &env.block_env,
                TxSource::Recovered(txs),
                Some(&folds as &dyn commit::FoldWork),
                traces.is_some(),
                db.storage_only_accounts(),
                mechanisms,
                &mut stats,
            )?;
            (outcomes, folds.into_outputs(txs.len()))
        };

        let phase2 = std::time::Instant::now();
        stats.phases.execute = phase2 - phase1;
        // Phase 2: receipts and gas in order (an invalid transaction fails the block here, as
        // in the sequential executor), then the folded accounts the block `State` needs back.
        let cancun = spec.is_cancun_active_at_timestamp(header.timestamp);
        // The main-bound accounts go back to the `State`; the other shards' bundles are united
        // in the background while the receipts are built.
        let mut shards = shards?;
        let state = executor.evm_mut().db_mut();
        shards.hand_back(&mut state.cache, state.transition_state.get_or_insert_default());
        let mut outcomes = outcomes;
        // Blooms of transactions with very many logs, on every worker.
        let mut shared_blooms = match outcomes.as_ref() {
            Some(workspace)
                if workspace.shared_blooms.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                bloom::shared_blooms(&pool, &workspace.outcomes)?
            }
            _ => Vec::new(),
        }
        .into_iter()
        .peekable();
        // The shards' bundles are united on the block's helper beside the receipts (after the
        // blooms' broadcast, which would wait for it).
        let hand_off = Arc::new(pool::HandOff::default());
        let united = {
            let hand_off = Arc::clone(&hand_off);
            pool.in_background(move || shards.into_united(), move || hand_off.collect(1))
        };
        for (i, tx) in txs.iter().enumerate() {
            let outcome = match outcomes.as_mut() {
                Some(workspace) => {
                    workspace.prefetch_bloom(i + RECEIPT_PREFETCH_AHEAD);
                    workspace.outcome_mut(i)?
                }
                None => return Err(EngineFault::MissingOutcome(i as u32).into()),
            };
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
            stats.lazy_beneficiary_txs += u64::from(outcome.lazy_beneficiary.is_some());
            let logs_bloom = match outcome.bloom.bloom() {
                Some(bloom) => bloom,
                None => shared_blooms
                    .next_if(|(tx, _)| *tx == i)
                    .map(|(_, bloom)| bloom)
                    .ok_or(EngineFault::Invariant("a shared logs bloom is missing"))?,
            };
            // Read in place: only the logs leave the slot; the rest (the state diff, folded
            // already) is dropped when the workspace is cleared, off the critical path.
            let result = match &mut outcome.result {
                Ok((result, _)) => result,
                Err(err) => {
                    let err = std::mem::replace(err, EVMError::Custom(String::new()));
                    return Err(BlockExecutionError::evm(err, *tx.inner().tx_hash()).into());
                }
            };
            let gas = result.gas();
            if let (Some(traces), Some((reads, writes))) =
                (traces.as_deref_mut(), outcome.trace.as_deref())
            {
                let (credits, writes): (Vec<_>, Vec<_>) = writes.iter().partition(|(_, c)| *c);
                let (ignoring, reads): (Vec<_>, Vec<_>) = reads.iter().partition(|(_, i)| *i);
                traces.push(velarium_analyzer::TxAccess {
                    reads: reads.into_iter().map(|(l, _)| AccessKey::from(l)).collect(),
                    reads_ignoring_credits: ignoring
                        .into_iter()
                        .map(|(l, _)| AccessKey::from(l))
                        .collect(),
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
                    logs: match result {
                        ExecutionResult::Success { logs, .. } => std::mem::take(logs),
                        ExecutionResult::Revert { .. } | ExecutionResult::Halt { .. } => Vec::new(),
                    },
                },
                logs_bloom,
            };
            executor.receipts.push(match tx.tx_type() {
                TxType::Legacy => ReceiptEnvelope::Legacy(receipt),
                TxType::Eip2930 => ReceiptEnvelope::Eip2930(receipt),
                TxType::Eip1559 => ReceiptEnvelope::Eip1559(receipt),
                TxType::Eip4844 => ReceiptEnvelope::Eip4844(receipt),
                TxType::Eip7702 => ReceiptEnvelope::Eip7702(receipt),
            });
        }
        match outcomes {
            // To the helper, once it has united the fold (see `HandOff`).
            Some(workspace) if pool.threads() >= 2 && workspace.workers >= 2 => {
                hand_off.deposit(workspace);
            }
            Some(workspace) => {
                hand_off.close();
                pool::give_back(workspace);
            }
            None => hand_off.close(),
        }
        let phase3 = std::time::Instant::now();
        stats.phases.commit = phase3 - phase2;
        check_system_contracts(spec, header.timestamp, executor.evm_mut().db_mut())?;
        (executor.finish()?.1, united, main_bound, phase3, hand_off)
    };
    let (united, ran_here) = united.wait()?;
    if ran_here {
        hand_off.reclaim();
    }
    commit::check_main(
        &united,
        &state.cache,
        state.transition_state.get_or_insert_default(),
        &main_bound,
    )?;
    state.merge_transitions(BundleRetention::PlainState);
    let bundle = commit::into_bundle(united, state.take_bundle());
    stats.phases.post = phase3.elapsed();
    let output = BlockOutput::new(result, bundle);
    Ok((output, stats))
}

/// How many transactions ahead the receipts' loop prefetches a bloom (written by another core,
/// long before).
const RECEIPT_PREFETCH_AHEAD: usize = 4;

/// How many shards the block's fold has: one per worker, or four per worker when many of the
/// transactions call one contract. Its account (an ERC-20 token's balances, say) is folded by
/// one worker, so with one shard per worker that worker would fold most of the block while the
/// others wait; with more, smaller shards they take the rest between them. More shards cost a
/// little more to unite, so only a hot contract gets them.
fn fold_shards(threads: usize, txs: TxSource<'_>) -> (usize, Option<Address>) {
    if threads < 2 {
        return (1, None);
    }
    // A sample of up to 64 transactions, evenly spread.
    const SAMPLE: usize = 64;
    let step = (txs.len() / SAMPLE).max(1);
    let mut seen: Vec<(Address, u32)> = Vec::with_capacity(SAMPLE);
    let mut sampled = 0;
    for i in (0..txs.len()).step_by(step).take(SAMPLE) {
        sampled += 1;
        let Some(to) = txs.to(i) else { continue };
        match seen.iter_mut().find(|(address, _)| *address == to) {
            Some((_, count)) => *count += 1,
            None => seen.push((to, 1)),
        }
    }
    let hottest = seen.iter().max_by_key(|(_, count)| *count).copied();
    match hottest {
        Some((to, count)) if sampled >= 16 && count as usize * 4 >= sampled => {
            (threads * 4, Some(to))
        }
        _ => (threads, None),
    }
}

/// Each transaction's place among its sender's transactions in the block, from one pass over
/// the block (one hash map lookup per transaction; everything after works on these links).
struct SenderChains {
    /// The sender's previous transaction.
    prev: Vec<Option<u32>>,
    /// The sender's next transaction.
    next: Vec<Option<u32>>,
    /// The sender's first transaction (it names the sender's chain).
    first: Vec<u32>,
}

impl SenderChains {
    fn new(txs: TxSource<'_>) -> Self {
        let n = txs.len();
        let mut last: alloy_primitives::map::AddressMap<u32> = Default::default();
        last.reserve(n);
        let mut chains =
            Self { prev: Vec::with_capacity(n), next: vec![None; n], first: Vec::with_capacity(n) };
        for i in 0..n {
            let prev = last.insert(txs.caller(i), i as u32);
            chains.prev.push(prev);
            chains.first.push(prev.map_or(i as u32, |p| chains.first[p as usize]));
            if let Some(p) = prev {
                chains.next[p as usize] = Some(i as u32);
            }
        }
        chains
    }

    /// Every sender with more than one transaction: its transactions, in order.
    fn repeated(&self) -> impl Iterator<Item = Vec<u32>> + '_ {
        (0..self.prev.len()).filter(|&i| self.prev[i].is_none() && self.next[i].is_some()).map(
            |first| std::iter::successors(Some(first as u32), |&i| self.next[i as usize]).collect(),
        )
    }
}

/// The most transactions of one sender that follow an earlier one of the same sender
/// (`prev_same_sender`; `first_of_sender` names each transaction's sender by its first
/// transaction, see [`SenderChains`]).
fn longest_chain(first_of_sender: &[u32], prev_same_sender: &[Option<u32>]) -> usize {
    let mut per_sender = vec![0u32; prev_same_sender.len()];
    let mut longest = 0;
    for (i, _) in prev_same_sender.iter().enumerate().filter(|(_, prev)| prev.is_some()) {
        let count = &mut per_sender[first_of_sender[i] as usize];
        *count += 1;
        longest = longest.max(*count);
    }
    longest as usize
}

/// Phase 1: runs Block-STM over the transactions; returns each one's final outcome in order.
#[allow(clippy::too_many_arguments)]
fn run_block_stm<DB>(
    pool: &WorkerPool,
    db: &DB,
    overlay: &Overlay,
    cfg: &CfgEnv,
    block_env: &BlockEnv,
    txs: TxSource<'_>,
    folds: Option<&dyn commit::FoldWork>,
    trace: bool,
    storage_only: &AddressSet,
    mechanisms: Mechanisms,
    stats: &mut ParallelStats,
) -> Result<Option<pool::Workspace>, ExecutionError>
where
    DB: DatabaseRef + Sync,
    DB::Error: std::fmt::Display,
{
    // A block of independent plain transfers needs none of Block-STM (see `independent.rs`).
    // Its lazy recipients are a delta mechanism; a traced run wants Block-STM's read sets.
    if !trace && mechanisms.deltas {
        if let Some(recipients) = independent::plain_recipients(txs, block_env.beneficiary) {
            let inputs = (overlay, cfg, block_env, txs, folds, storage_only);
            if let Some(workspace) =
                run_independent(pool, db, inputs, recipients, mechanisms, stats)?
            {
                return Ok(Some(workspace));
            }
        }
    }
    // One worker runs every transaction in order on committed values: nothing conflicts, and
    // every mechanism would only cost (see `Mechanisms::for_workers`). A traced run keeps them:
    // its traces show what the engine credits rather than writes (see `trace_accesses`).
    let mechanisms = if trace { mechanisms } else { mechanisms.for_workers(pool.threads()) };
    let Some(run) =
        BlockStmRun::prepare(pool.threads(), db, overlay, cfg, block_env, txs, mechanisms, stats)?
    else {
        return Ok(None);
    };
    let shared = run.shared(db, overlay, cfg, block_env, txs, folds, trace, storage_only);
    let ran = run.run_workers(pool, &shared, Shared::work, stats);
    run.finish(ran, true, stats).map(Some)
}

/// The block's inputs as [`run_independent`] takes them: the overlay of pre-execution changes,
/// the environment, the transactions, the fold and the EIP-7610 accounts.
type IndependentInputs<'a> = (
    &'a Overlay,
    &'a CfgEnv,
    &'a BlockEnv,
    TxSource<'a>,
    Option<&'a dyn commit::FoldWork>,
    &'a AddressSet,
);

/// Runs a block of independent plain transfers without Block-STM (see `independent.rs`), each
/// transaction's lazily credited recipient given. `None` if a transaction was declined: the
/// block is Block-STM's then, and nothing of this run is kept.
fn run_independent<DB>(
    pool: &WorkerPool,
    db: &DB,
    (overlay, cfg, block_env, txs, folds, storage_only): IndependentInputs<'_>,
    recipients: Vec<Address>,
    mechanisms: Mechanisms,
    stats: &mut ParallelStats,
) -> Result<Option<pool::Workspace>, ExecutionError>
where
    DB: DatabaseRef + Sync,
    DB::Error: std::fmt::Display,
{
    let n = txs.len();
    let workers = pool.threads();
    let state_clear = cfg.spec.is_enabled_in(SpecId::SPURIOUS_DRAGON);
    let run = BlockStmRun {
        lazy_candidates: recipients.into_iter().map(Some).collect(),
        lazy_senders: vec![None; n],
        prev_same_sender: vec![None; n],
        lazy_beneficiary: None,
        beneficiary_observers: Vec::new(),
        credits: false,
        credit_refused: Vec::new(),
        hot: db::HotLocations::new(workers),
        busy_nanos: AtomicU64::new(0),
        plain_transfers: AtomicU64::new(0),
        storage_credits: AtomicU64::new(0),
        sampled: Default::default(),
        rules: DeltaRules { state_clear },
        mechanisms,
        workspace: pool::take_workspace(n, workers, state_clear),
    };
    let claims = independent::Claims::default();
    let ran = {
        let shared = run.shared(db, overlay, cfg, block_env, txs, folds, false, storage_only);
        run.run_workers(pool, &shared, |shared| shared.work_independent(&claims), stats)
    };
    if ran.is_ok() && claims.declined() && !run.workspace.scheduler.is_halted() {
        stats.independent_declined = true;
        pool::give_back(run.workspace);
        return Ok(None);
    }
    let workspace = run.finish(ran, true, stats)?;
    stats.independent = true;
    stats.executions = n as u64;
    Ok(Some(workspace))
}

/// Block-STM's state for one block, owned: what the workers share besides the block's inputs
/// (see [`BlockStmRun::shared`]), so that a run can outlive the caller's stack frame (see
/// `stream.rs`).
struct BlockStmRun {
    lazy_candidates: Vec<Option<Address>>,
    lazy_senders: Vec<Option<LazySender>>,
    prev_same_sender: Vec<Option<u32>>,
    lazy_beneficiary: Option<LazyBeneficiary>,
    beneficiary_observers: Vec<std::sync::atomic::AtomicBool>,
    credits: bool,
    credit_refused: Vec<std::sync::atomic::AtomicBool>,
    hot: db::HotLocations,
    busy_nanos: AtomicU64,
    plain_transfers: AtomicU64,
    storage_credits: AtomicU64,
    sampled: [AtomicU64; 2],
    rules: DeltaRules,
    mechanisms: Mechanisms,
    workspace: pool::Workspace,
}

impl BlockStmRun {
    /// Everything Block-STM needs before the workers start, for `workers` workers: lazy
    /// senders and beneficiary, known dependencies, predicted hot locations, the reused
    /// workspace. `None` for a block without transactions.
    #[allow(clippy::too_many_arguments)]
    fn prepare<DB>(
        workers: usize,
        db: &DB,
        overlay: &Overlay,
        cfg: &CfgEnv,
        block_env: &BlockEnv,
        txs: TxSource<'_>,
        mechanisms: Mechanisms,
        stats: &mut ParallelStats,
    ) -> Result<Option<Self>, ExecutionError>
    where
        DB: DatabaseRef + Sync,
        DB::Error: std::fmt::Display,
    {
        if txs.len() == 0 {
            return Ok(None);
        }
        let beneficiary = block_env.beneficiary;
        let lazy_candidates: Vec<Option<Address>> = (0..txs.len())
            .map(|i| txs.lazy_recipient(i, beneficiary).filter(|_| mechanisms.deltas))
            .collect();
        let chains = SenderChains::new(txs);
        // EIP-7702 authorizations may give any account code: no lazy reads then.
        let authorizations = (0..txs.len()).any(|i| txs.has_authorizations(i));
        let lazy_senders = if mechanisms.deltas && !authorizations {
            lazy_senders(db, overlay, cfg, txs, &lazy_candidates, &chains)?
        } else {
            vec![None; txs.len()]
        };
        stats.lazy_sender_txs = lazy_senders.iter().filter(|l| l.is_some()).count() as u64;
        let lazy_beneficiary = if mechanisms.deltas && !authorizations {
            lazy_beneficiary(db, overlay, cfg, block_env.beneficiary)?
        } else {
            None
        };
        let beneficiary_observers = if lazy_beneficiary.is_some() {
            (0..txs.len()).map(|_| Default::default()).collect()
        } else {
            Vec::new()
        };
        // A lazy sender's plain transfer does not wait for the sender's earlier transactions.
        let SenderChains { prev: mut prev_same_sender, first: first_of_sender, .. } = chains;
        for (prev, lazy) in prev_same_sender.iter_mut().zip(&lazy_senders) {
            if lazy.is_some() {
                *prev = None;
            }
        }
        let state_clear = cfg.spec.is_enabled_in(SpecId::SPURIOUS_DRAGON);
        let mut workspace = pool::take_workspace(txs.len(), workers, state_clear);
        let scheduler = &mut workspace.scheduler;
        // Mostly one sender's chain (a pool paying out, an airdrop): nothing to gain from
        // speculation, so execute in order and let the other workers fold. Several senders'
        // chains run side by side (each link waits for the one before, see `prev_same_sender`).
        if longest_chain(&first_of_sender, &prev_same_sender) * 2 > txs.len()
            && mechanisms.isolation
        {
            scheduler.set_in_order(true);
        }
        scheduler.set_adaptive(mechanisms.isolation);
        scheduler.set_affinity(mechanisms.isolation);
        if !scheduler.is_in_order() {
            let early = early_transactions(txs, &prev_same_sender, workers);
            stats.early_txs = early.len() as u64;
            scheduler.set_early(&early);
        }
        if !mechanisms.hints {
            prev_same_sender.iter_mut().for_each(|p| *p = None);
        }
        let hot = db::HotLocations::new(workers);
        if mechanisms.hints {
            stats.predicted_hot = predict_hot(db, txs, &hot);
        }
        // One worker runs every transaction with the lower ones committed: nothing to credit,
        // and its `SLOAD` and `SSTORE` stay revm's own.
        let credits = mechanisms.deltas && workers > 1;
        let credit_refused =
            if credits { (0..txs.len()).map(|_| Default::default()).collect() } else { Vec::new() };
        Ok(Some(Self {
            lazy_candidates,
            lazy_senders,
            prev_same_sender,
            lazy_beneficiary,
            beneficiary_observers,
            credits,
            credit_refused,
            hot,
            busy_nanos: AtomicU64::new(0),
            plain_transfers: AtomicU64::new(0),
            storage_credits: AtomicU64::new(0),
            sampled: Default::default(),
            rules: DeltaRules { state_clear },
            mechanisms,
            workspace,
        }))
    }

    /// What every worker of the run shares: this state and the block's inputs.
    #[allow(clippy::too_many_arguments)]
    fn shared<'a, DB>(
        &'a self,
        base: &'a DB,
        overlay: &'a Overlay,
        cfg: &'a CfgEnv,
        block_env: &'a BlockEnv,
        txs: TxSource<'a>,
        folds: Option<&'a dyn commit::FoldWork>,
        trace: bool,
        storage_only: &'a AddressSet,
    ) -> Shared<'a, DB> {
        let ws = &self.workspace;
        Shared {
            base,
            overlay,
            memory: &ws.memory,
            scheduler: &ws.scheduler,
            cfg,
            block_env,
            txs,
            lazy_candidates: &self.lazy_candidates,
            lazy_senders: &self.lazy_senders,
            prev_same_sender: &self.prev_same_sender,
            beneficiary: block_env.beneficiary,
            lazy_beneficiary: self.lazy_beneficiary,
            beneficiary_observers: &self.beneficiary_observers,
            credits: self.credits,
            credit_refused: &self.credit_refused,
            storage_credits: &self.storage_credits,
            rules: self.rules,
            outcomes: &ws.outcomes,
            shared_blooms: &ws.shared_blooms,
            workers: ws.workers,
            folds,
            fees: &ws.fees,
            hot: &self.hot,
            pauses: self.mechanisms.risk,
            chains: self.mechanisms.risk && self.mechanisms.isolation,
            trace,
            storage_only,
            busy_nanos: &self.busy_nanos,
            plain_transfers: &self.plain_transfers,
            sampled: &self.sampled,
        }
    }

    /// Runs `work` on each of `pool`'s workers over `shared` (this run's state), each worker's
    /// new multi-version cells in its own arena; a worker's panic halts the scheduler, so the
    /// others stop. The workers' wall time goes into `stats`.
    fn run_workers<'a, DB>(
        &'a self,
        pool: &WorkerPool,
        shared: &Shared<'a, DB>,
        work: impl Fn(&Shared<'a, DB>) + Sync,
        stats: &mut ParallelStats,
    ) -> Result<(), EngineFault>
    where
        DB: DatabaseRef + Sync,
        DB::Error: std::fmt::Display,
    {
        let scheduler = &self.workspace.scheduler;
        let broadcast = std::time::Instant::now();
        let ran = pool.broadcast(
            |worker| {
                velarium_mvmemory::bind_worker(worker);
                work(shared);
            },
            || scheduler.halt(),
        );
        stats.worker_wall = broadcast.elapsed();
        ran
    }

    /// After the workers stopped (`ran`: how they ended): the counters and hot spots into
    /// `stats`, the hot locations remembered for the next blocks, and the workspace, or the
    /// engine fault that ended the run. With `every_outcome`, a transaction without an
    /// outcome is a fault (a caller that took outcomes while the run went on checks its own).
    fn finish(
        self,
        ran: Result<(), EngineFault>,
        every_outcome: bool,
        stats: &mut ParallelStats,
    ) -> Result<pool::Workspace, ExecutionError> {
        let Self { hot, mechanisms, mut workspace, .. } = self;
        stats.worker_busy =
            std::time::Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed));
        stats.plain_transfers = self.plain_transfers.load(Ordering::Relaxed);
        stats.storage_credits = self.storage_credits.load(Ordering::Relaxed);
        stats.sampled_nanos = self.sampled[0].load(Ordering::Relaxed);
        stats.sampled_gas = self.sampled[1].load(Ordering::Relaxed);
        let became_hot = hot.became_hot();
        stats.set_hot_spots(
            hot.tally()
                .into_iter()
                .filter_map(|(location, tally)| {
                    let (address, slot) = match location {
                        Location::Account(address) => (address, None),
                        Location::Storage(address, slot) => (address, Some(slot)),
                        Location::StorageEpoch(_) => return None,
                    };
                    Some(HotSpot {
                        address,
                        slot,
                        failed_validations: tally.failed,
                        waits: tally.waits,
                    })
                })
                .collect(),
        );
        if mechanisms.hints {
            remember_hot(&became_hot);
        }
        let scheduler = &workspace.scheduler;
        let counters = scheduler.counters();
        stats.executions = counters.executions;
        stats.validations = counters.validations;
        stats.aborts = counters.aborts;
        stats.suspensions = counters.suspensions;
        stats.waits = counters.waits;
        let fault = if let Err(fault) = ran {
            Some(fault)
        } else if let Some(err) = scheduler.invariant_error() {
            Some(EngineFault::Scheduler(err))
        } else if scheduler.is_halted() {
            Some(EngineFault::Halted)
        } else if every_outcome {
            workspace.first_missing().map(EngineFault::MissingOutcome)
        } else {
            None
        };
        if let Some(fault) = fault {
            pool::give_back(workspace);
            return Err(fault.into());
        }
        Ok(workspace)
    }
}

/// The transactions to start before the execution sweep reaches them (see
/// `Scheduler::set_early`), latest first: those whose gas limit is at least the gas limits of
/// every later transaction per worker, and three times the block's mean. Reached in order, such
/// a transaction would start when the other workers are almost out of work and run alone. Not
/// those whose sender has an earlier transaction in the block (they would only wait for it),
/// nor those whose sender or callee an earlier transaction calls (it likely writes what they
/// read). The factor three is a judgement made on the mainnet fixtures: with four, a proof
/// verification holding half of 19932703's time with 2% of its gas limit was left in order.
fn early_transactions(
    txs: TxSource<'_>,
    prev_same_sender: &[Option<velarium_scheduler::TxnIndex>],
    threads: usize,
) -> Vec<velarium_scheduler::TxnIndex> {
    const MOST: usize = 4;
    let n = txs.len();
    if threads < 2 || n < 2 {
        return Vec::new();
    }
    let limits: Vec<u128> = (0..n).map(|i| u128::from(txs.gas_limit(i))).collect();
    let total: u128 = limits.iter().sum();
    let mut candidates = Vec::new();
    let mut later = 0u128;
    for i in (0..n).rev() {
        let limit = limits[i];
        let heavy = limit * threads as u128 >= later && limit * n as u128 >= 3 * total;
        if heavy && prev_same_sender[i].is_none() && candidates.len() < MOST {
            candidates.push(i);
        }
        later += limit;
    }
    // A lower transaction calling the same account, or paying the sender, most likely writes
    // what the long one reads: started early, it would run twice.
    candidates
        .into_iter()
        .filter(|&i| {
            let touched_below = |address: Address| (0..i).any(|j| txs.to(j) == Some(address));
            !txs.to(i).is_some_and(touched_below) && !touched_below(txs.caller(i))
        })
        .map(|i| i as velarium_scheduler::TxnIndex)
        .collect()
}

/// Per transaction, its sender if the transaction may read it lazily (see [`LazySender`]): a
/// plain transfer candidate (`lazy_candidates`) whose sender has more transactions in the block
/// (`SenderChains` links them), in a block without EIP-7702 transactions, where the sender
/// has no code, its transactions' nonces follow its own one by one, and its balance covers the
/// largest possible cost of all of them together. The sender may be the beneficiary (a mining
/// pool paying out): its fees stay in the fee ledger, apart from its debits. The caller has
/// checked that no transaction of the block carries EIP-7702 authorizations.
fn lazy_senders<DB>(
    db: &DB,
    overlay: &Overlay,
    cfg: &CfgEnv,
    txs: TxSource<'_>,
    lazy_candidates: &[Option<Address>],
    chains: &SenderChains,
) -> Result<Vec<Option<LazySender>>, ExecutionError>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    let mut lazy = vec![None; txs.len()];
    if checks_off(cfg) {
        return Ok(lazy);
    }
    for chain in chains.repeated() {
        let sender = txs.caller(chain[0] as usize);
        if chain.iter().all(|&i| lazy_candidates[i as usize].is_none()) {
            continue;
        }
        let Some(account) = account_before_block(db, overlay, sender)? else {
            continue;
        };
        if account.code_hash != revm::primitives::KECCAK_EMPTY {
            continue;
        }
        let mut nonce = Some(account.nonce);
        let mut cost = Some(U256::ZERO);
        for &i in &chain {
            let (tx_nonce, max_cost) = txs.nonce_and_max_cost(i as usize);
            cost = cost.zip(max_cost).and_then(|(a, b)| a.checked_add(b));
            nonce = nonce.filter(|n| *n == tx_nonce).and_then(|n| n.checked_add(1));
        }
        if nonce.is_none() || cost.is_none_or(|cost| cost > account.balance) {
            continue;
        }
        for &i in &chain {
            if lazy_candidates[i as usize].is_some() {
                let (nonce, _) = txs.nonce_and_max_cost(i as usize);
                lazy[i as usize] =
                    Some(LazySender { address: sender, placeholder: account.balance, nonce });
            }
        }
    }
    Ok(lazy)
}

/// The beneficiary, if the block's transactions may read it lazily (see [`LazyBeneficiary`]):
/// the checks are on (no fee or balance rule is off), no transaction of the block carries
/// EIP-7702 authorizations (which could give it code), and before the block it has no code and
/// is not empty. Then it stays without code and not empty through the block (its own
/// transactions, a builder paying the proposer, raise its nonce), and no transaction but its
/// own can tell its balance or nonce except through `BALANCE`, which the workers watch. The
/// caller has checked that no transaction of the block carries EIP-7702 authorizations.
fn lazy_beneficiary<DB>(
    db: &DB,
    overlay: &Overlay,
    cfg: &CfgEnv,
    beneficiary: Address,
) -> Result<Option<LazyBeneficiary>, ExecutionError>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    if checks_off(cfg) {
        return Ok(None);
    }
    Ok(account_before_block(db, overlay, beneficiary)?
        .filter(|a| a.code_hash == revm::primitives::KECCAK_EMPTY && !a.is_empty())
        .map(|a| LazyBeneficiary { address: beneficiary, placeholder: a.balance, nonce: a.nonce }))
}

/// Whether a nonce, balance, fee or EIP-3607 check is off: the lazy reads rely on all of them.
fn checks_off(cfg: &CfgEnv) -> bool {
    use revm::context_interface::Cfg as _;
    cfg.is_nonce_check_disabled()
        || cfg.is_balance_check_disabled()
        || cfg.is_fee_charge_disabled()
        || cfg.is_eip3607_disabled()
}

/// `address` as the block's transactions find it: after the pre-execution changes (`overlay`),
/// else in the parent state.
fn account_before_block<DB>(
    db: &DB,
    overlay: &Overlay,
    address: Address,
) -> Result<Option<revm::state::AccountInfo>, ExecutionError>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    overlay.account(&address).map_or_else(
        || db.basic_ref(address).map_err(|e| ExecutionError::StateRead(e.to_string())),
        Ok,
    )
}

/// The accounts whose folded state goes back to the block's `State` (see `commit.rs`): those it
/// already holds from the pre-execution changes, and those alloy-evm's post-execution changes
/// touch (block and ommer rewards, withdrawals, the EIP-7002/7251 system calls).
fn main_bound_accounts(block: BlockInput<'_>, cache: &revm::database::CacheState) -> AddressSet {
    let mut set: AddressSet = cache.accounts.keys().copied().collect();
    set.insert(block.header.beneficiary);
    set.extend(block.ommers.iter().map(|o| o.beneficiary));
    set.extend(block.withdrawals.into_iter().flatten().map(|w| w.address));
    set.extend([
        alloy_eips::eip7002::SYSTEM_ADDRESS,
        alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
        alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
    ]);
    set
}

/// Locations hot in recent blocks (see `velarium_analyzer::effects::HotHistory`), for the next
/// blocks of this process.
static HOT_HISTORY: std::sync::Mutex<Option<HotHistory<db::Location>>> =
    std::sync::Mutex::new(None);

/// Locations kept in [`HOT_HISTORY`].
const HOT_HISTORY_CAPACITY: usize = 256;

/// Constant storage keys per code hash (see `velarium_analyzer::effects`), bounded.
static CONSTANT_KEYS: std::sync::Mutex<Option<HashMap<B256, Arc<[U256]>>>> =
    std::sync::Mutex::new(None);

/// Code hashes kept in [`CONSTANT_KEYS`] before it starts over.
const CONSTANT_KEYS_CAPACITY: usize = 4096;

/// Constant keys kept per contract (a contract with hundreds is a dispatcher of many
/// unrelated functions: only its first keys are predicted).
const MAX_PREDICTED_KEYS: usize = 32;

/// Effect analysis before execution (the `hints` mechanism): makes hot up front, for every
/// contract that many of the block's transactions call, the storage slots its code stores to
/// at constant keys (a counter, a pool's reserves) and its slots that were hot in recent
/// blocks, so that the first readers
/// wait for a running writer instead of aborting four times before the location is learned.
/// Returns how many locations were predicted. Only a hint: a failed read of the state is
/// ignored, and a wrong prediction costs a wait at most.
fn predict_hot<DB: DatabaseRef>(db: &DB, txs: TxSource<'_>, hot: &db::HotLocations) -> u64 {
    // A contract that at least a quarter of the transactions (and at least eight) call.
    let min_calls = (txs.len() / 4).max(8) as u32;
    if txs.len() < min_calls as usize {
        return 0;
    }
    // Candidates from an even sample of 64 transactions (a contract a quarter of the block
    // calls is expected 16 times there, so 8 nominates it), then exact counts for those few
    // only: no hash map over every transaction of a block of transfers.
    let step = (txs.len() / 64).max(1);
    let mut sample: Vec<(Address, u32)> = Vec::new();
    for i in (0..txs.len()).step_by(step) {
        if let Some(to) = txs.to(i) {
            match sample.iter_mut().find(|(a, _)| *a == to) {
                Some((_, n)) => *n += 1,
                None => sample.push((to, 1)),
            }
        }
    }
    let mut calls: HashMap<Address, u32> =
        sample.into_iter().filter(|(_, n)| *n >= 8).map(|(a, _)| (a, 0)).collect();
    if calls.is_empty() {
        return 0;
    }
    for i in 0..txs.len() {
        if let Some(n) = txs.to(i).and_then(|to| calls.get_mut(&to)) {
            *n += 1;
        }
    }
    calls.retain(|_, n| *n >= min_calls);
    if calls.is_empty() {
        return 0;
    }
    let mut predicted = 0u64;
    // Locations hot in recent blocks, of the contracts this block calls often.
    if let Ok(history) = HOT_HISTORY.lock() {
        for location in history.iter().flat_map(HotHistory::iter) {
            if let db::Location::Storage(address, _) = location {
                if calls.contains_key(address) {
                    hot.predict(location);
                    predicted += 1;
                }
            }
        }
    }
    let Ok(mut cache) = CONSTANT_KEYS.lock() else { return predicted };
    let cache = cache.get_or_insert_with(HashMap::default);
    for to in calls.into_keys() {
        let Ok(Some(info)) = db.basic_ref(to) else { continue };
        if info.code_hash == revm::primitives::KECCAK_EMPTY || info.code_hash.is_zero() {
            continue;
        }
        let keys = match cache.get(&info.code_hash) {
            Some(keys) => keys.clone(),
            None => {
                let code = match info.code {
                    Some(code) => code,
                    None => match db.code_by_hash_ref(info.code_hash) {
                        Ok(code) => code,
                        Err(_) => continue,
                    },
                };
                let keys: Arc<[U256]> = constant_storage_keys(code.original_byte_slice())
                    .into_iter()
                    .take(MAX_PREDICTED_KEYS)
                    .map(U256::from_be_bytes)
                    .collect();
                if cache.len() >= CONSTANT_KEYS_CAPACITY {
                    cache.clear();
                }
                cache.insert(info.code_hash, keys.clone());
                keys
            }
        };
        for key in keys.iter() {
            hot.predict(&db::Location::Storage(to, *key));
            predicted += 1;
        }
    }
    predicted
}

/// Adds the block's newly hot locations to [`HOT_HISTORY`].
fn remember_hot(became: &[db::Location]) {
    if became.is_empty() {
        return;
    }
    if let Ok(mut history) = HOT_HISTORY.lock() {
        let history = history.get_or_insert_with(|| HotHistory::new(HOT_HISTORY_CAPACITY));
        for location in became {
            history.record(*location);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transaction environments from these senders, and their sender chains.
    fn block(senders: &[u8]) -> (Vec<TxEnv>, SenderChains) {
        let envs: Vec<TxEnv> = senders
            .iter()
            .map(|s| TxEnv { caller: Address::repeat_byte(*s), ..Default::default() })
            .collect();
        let chains = SenderChains::new(TxSource::Envs(&envs));
        (envs, chains)
    }

    #[test]
    fn sender_chains_link_each_senders_transactions_in_order() {
        let (_, chains) = block(&[1, 2, 1, 3, 2, 1]);
        assert_eq!(chains.prev, [None, None, Some(0), None, Some(1), Some(2)]);
        assert_eq!(chains.next, [Some(2), Some(4), Some(5), None, None, None]);
        assert_eq!(chains.first, [0, 1, 0, 3, 1, 0]);
        assert_eq!(chains.repeated().collect::<Vec<_>>(), [vec![0, 2, 5], vec![1, 4]]);
    }

    #[test]
    fn the_longest_chain_is_one_senders_not_all_chained_transactions() {
        // Six senders taking turns: 54 of 60 transactions follow one of their sender's, but no
        // sender's chain is more than a sixth of the block, so it does not run in order.
        let turns: Vec<u8> = (0..60).map(|i| (i % 6) as u8 + 1).collect();
        let (_, chains) = block(&turns);
        assert_eq!(chains.prev.iter().filter(|p| p.is_some()).count(), 54);
        assert_eq!(longest_chain(&chains.first, &chains.prev), 9);
        // One wallet paying out, a few others: its chain is most of the block.
        let payout: Vec<u8> = (0..60).map(|i| if i % 5 == 0 { i as u8 + 10 } else { 1 }).collect();
        let (envs, chains) = block(&payout);
        assert_eq!(longest_chain(&chains.first, &chains.prev), 47);
        assert!(longest_chain(&chains.first, &chains.prev) * 2 > envs.len());
        // Transactions whose dependency was lifted (lazy senders) do not count.
        let mut lifted = chains.prev.clone();
        lifted.iter_mut().skip(30).for_each(|p| *p = None);
        assert_eq!(longest_chain(&chains.first, &lifted), 23);
    }
}
