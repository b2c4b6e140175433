//! The Block-STM worker: executes and validates incarnations as the scheduler hands them out.

use super::{
    bloom::LogsBloom,
    commit::{DiffLayout, FoldWork, OutcomeSlot},
    db::{
        crediting_sload, crediting_sstore, observing_balance, serving_jumpdest, BlockMemory,
        BlockParts, Credit, DeltaRules, HotLocations, LazyBeneficiary, LazySender, Location,
        MvValue, Overlay, StorageCredit, TxDb, TxDbError,
    },
    fees::FeeLedger,
    handler::{LazyRewardHandler, TxEvm},
    transfer,
};
use crate::{eip7610::CollisionGuard, RecoveredTx};
use alloy_consensus::Transaction as _;
use alloy_evm::FromRecoveredTx;
use alloy_primitives::{map::AddressSet, Address, U256};
use revm::inspector::InspectorHandler;
use revm::{
    context::{
        result::{EVMError, ExecutionResult, HaltReason},
        BlockEnv, CfgEnv, Context, ContextTr, JournalTr, TxEnv,
    },
    handler::{EvmTr, Handler, MainContext},
    state::EvmState,
    DatabaseRef,
};
use std::{
    cell::Cell,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};
use velarium_mvmemory::{ReadMode, WriteSet, WriteValue};
use velarium_primitives::Version;
use velarium_scheduler::{Scheduler, SchedulerTask};

/// The final outcome of one transaction, as its last incarnation produced it.
#[derive(Debug)]
pub(super) struct TxOutcome {
    pub(super) result: Result<(ExecutionResult<HaltReason>, EvmState), EVMError<TxDbError>>,
    /// Fee owed to the beneficiary (not applied by the EVM).
    pub(super) fee: U256,
    /// A transfer recipient executed against a placeholder balance (see `TxDb::lazy_basic`):
    /// its account in the state diff holds only the credit, to be rebased at commit.
    pub(super) lazy_recipient: Option<Address>,
    /// The lazy recipient's account in the parent state, if its read came from there (see
    /// `TxDb::lazy_recipient_base`).
    pub(super) lazy_recipient_base: Option<Box<Option<revm::state::AccountInfo>>>,
    /// A sender executed against its placeholder (see [`LazySender`]): its account in the state
    /// diff holds the placeholder less the debit, to be rebased at commit.
    pub(super) lazy_sender: Option<LazySender>,
    /// The beneficiary, read lazily (see [`LazyBeneficiary`]): its account in the state diff
    /// holds the placeholder plus the transaction's credits, to be rebased at commit.
    pub(super) lazy_beneficiary: Option<LazyBeneficiary>,
    /// A hot slot credited by an unobserved increment (see [`StorageCredit`]): its entry in the
    /// state diff holds the placeholder and the placeholder plus the credit, to be rebased at
    /// commit. Boxed: rare, and every outcome would carry its room.
    pub(super) storage_credit: Option<Box<StorageCredit>>,
    /// With tracing on: the locations read, and those written (`true`: as a credit).
    pub(super) trace: Option<Box<TxTrace>>,
    /// Which fold shard takes each account of the diff, and where the accounts and their
    /// changed slots lie in memory (see [`DiffLayout`]).
    pub(super) layout: DiffLayout,
    /// The logs bloom of the receipt, computed by the worker (off the sequential commit), or
    /// by every worker after Block-STM for a transaction with very many logs.
    pub(super) bloom: LogsBloom,
}

/// One incarnation's accessed locations: those read, and those written (`true`: as a credit).
/// One incarnation's accesses: reads (and whether each ignored pending credits), writes (and
/// whether each is a credit).
pub(super) type TxTrace = (Vec<(Location, bool)>, Vec<(Location, bool)>);
/// How long an idle worker of an in-order block sleeps before it looks for commits to fold.
const IN_ORDER_NAP_US: u64 = 20;

/// Shared, read-only inputs of the workers.
pub(super) struct Shared<'a, DB> {
    pub(super) base: &'a DB,
    pub(super) overlay: &'a Overlay,
    pub(super) memory: &'a BlockMemory,
    pub(super) scheduler: &'a Scheduler,
    pub(super) cfg: &'a CfgEnv,
    pub(super) block_env: &'a BlockEnv,
    pub(super) txs: TxSource<'a>,
    /// Per transaction, the recipient that may be credited lazily (plain value transfers).
    pub(super) lazy_candidates: &'a [Option<Address>],
    /// Per transaction, its sender if it may be read lazily (see [`LazySender`]).
    pub(super) lazy_senders: &'a [Option<LazySender>],
    /// Per transaction, the previous transaction of the same sender: a dependency known before
    /// execution (the nonce), so the transaction waits for it instead of running to abort.
    pub(super) prev_same_sender: &'a [Option<u32>],
    pub(super) beneficiary: Address,
    /// The beneficiary, if the block's transactions may read it lazily (see
    /// [`LazyBeneficiary`]).
    pub(super) lazy_beneficiary: Option<LazyBeneficiary>,
    /// Per transaction (with `lazy_beneficiary` only): it observed the beneficiary's balance,
    /// so it reads it for real.
    pub(super) beneficiary_observers: &'a [AtomicBool],
    /// Hot slots may be credited by unobserved increments (see [`StorageCredit`];
    /// `Mechanisms::deltas`).
    pub(super) credits: bool,
    /// Per transaction (with `credits` only): its storage credit proved wrong (the slot was
    /// loaded or stored again), so it reads the slot for real.
    pub(super) credit_refused: &'a [AtomicBool],
    /// Incarnations that kept a storage credit, added up when each worker stops.
    pub(super) storage_credits: &'a AtomicU64,
    pub(super) rules: DeltaRules,
    pub(super) outcomes: &'a [OutcomeSlot],
    /// Set when an outcome's bloom is left to every worker ([`LogsBloom::Shared`]).
    pub(super) shared_blooms: &'a AtomicBool,
    /// How many workers run the block.
    pub(super) workers: usize,
    /// The block's fold, fed by idle workers with committed transactions (none when the
    /// caller commits the outcomes itself).
    pub(super) folds: Option<&'a dyn FoldWork>,
    /// The beneficiary's fees.
    pub(super) fees: &'a FeeLedger,
    /// Locations found written under a reader (see [`HotLocations`]).
    pub(super) hot: &'a HotLocations,
    /// Reads pause on running writers and wait at hot locations (`Mechanisms::risk`).
    pub(super) pauses: bool,
    /// Chains of read-modify-writes at hot locations run link by link (see
    /// `BlockParts::chains`; `Mechanisms::isolation` with `Mechanisms::risk`).
    pub(super) chains: bool,
    /// Record each incarnation's accessed locations (for contention analysis).
    pub(super) trace: bool,
    /// EIP-7610: the accounts with storage but neither code nor nonce (see `eip7610.rs`).
    pub(super) storage_only: &'a AddressSet,
    /// Nanoseconds the workers spent working (their time in the execution loop less the time
    /// they had nothing to do: backing off, yielding, napping), added up when each worker
    /// stops: the block's worker utilisation.
    pub(super) busy_nanos: &'a AtomicU64,
    /// Incarnations executed as plain transfers without the EVM, added up when each worker
    /// stops.
    pub(super) plain_transfers: &'a AtomicU64,
    /// The sampled transactions' execution time and gas (see [`Tally`]), added up when each
    /// worker stops.
    pub(super) sampled: &'a [AtomicU64; 2],
}

/// Every this many transactions, the first incarnation is timed (see [`Tally`]).
const SAMPLE_EVERY: u32 = 8;

/// What one worker counts while it runs, added to the block's counters when it stops.
#[derive(Debug, Default)]
struct Tally {
    plain_transfers: u64,
    storage_credits: u64,
    /// Nanoseconds spent executing the first incarnation of every [`SAMPLE_EVERY`]-th
    /// transaction (from taking the task to recording its writes, waits for lower
    /// transactions included), and the gas those transactions used: what a transaction of
    /// the block costs per gas, which the engine learns to place the next blocks (see
    /// `crate::tx_cost`). Two clock reads per sampled transaction.
    sampled_nanos: u64,
    sampled_gas: u64,
}

impl<DB> Shared<'_, DB>
where
    DB: DatabaseRef + Sync,
    DB::Error: std::fmt::Display,
{
    /// With one worker, folds the committed transactions as they pile up, a chunk at a time,
    /// while their state diffs are still in this core's cache: left to the end of the block,
    /// the fold reads every diff back from memory (a cache miss at each account of each diff;
    /// `Rebase::of` and `first_seen_of` spent most of their time there). With several workers
    /// the fold stays with the idle ones and the end of the block, where the shards are split
    /// between the workers (folding as they commit measured no better there).
    fn keep_up_fold(&self) {
        if self.workers > 1 {
            return;
        }
        if let Some(folds) = self.folds {
            folds.keep_up(self.outcomes, self.scheduler.commit_idx());
        }
    }

    /// The worker loop of Block-STM (see velarium-scheduler's crate docs for the protocol).
    ///
    /// Each worker builds one revm EVM and reuses it for every incarnation it executes.
    pub(super) fn work(&self) {
        self.work_until(&|| false);
    }

    /// The worker's revm EVM for the block: what `build_mainnet_with_inspector` builds, with the
    /// engine's instructions where the block needs them, on this thread's call-frame stack of
    /// the last block (eight frames of interpreter stacks and memory, allocated once per
    /// worker; give it back with `frames::keep`).
    fn new_evm(&self) -> TxEvm<'_, DB> {
        let parts = BlockParts {
            memory: self.memory,
            scheduler: self.scheduler,
            hot: self.hot,
            fees: self.fees,
            pauses: self.pauses,
            credits: self.credits,
            chains: self.chains,
        };
        let db = TxDb::new(parts, self.beneficiary, self.overlay, self.base, self.rules);
        let ctx = Context::mainnet()
            .with_db(db)
            .with_cfg(self.cfg.clone())
            .with_block(self.block_env.clone());
        let spec = self.cfg.spec;
        revm::context::Evm {
            ctx,
            inspector: CollisionGuard::new(self.storage_only),
            instruction: {
                let mut table =
                    revm::handler::instructions::EthInstructions::new_mainnet_with_spec(spec);
                if self.lazy_beneficiary.is_some() {
                    let gas = table.gas_table()[usize::from(revm::bytecode::opcode::BALANCE)];
                    table.insert_instruction(
                        revm::bytecode::opcode::BALANCE,
                        revm::interpreter::Instruction::new(observing_balance::<DB>),
                        gas,
                    );
                }
                if self.credits {
                    use revm::bytecode::opcode::{SLOAD, SSTORE};
                    let gas = table.gas_table()[usize::from(SLOAD)];
                    let sload = revm::interpreter::Instruction::new(crediting_sload::<DB>);
                    table.insert_instruction(SLOAD, sload, gas);
                    let gas = table.gas_table()[usize::from(SSTORE)];
                    let sstore = revm::interpreter::Instruction::new(crediting_sstore::<DB>);
                    table.insert_instruction(SSTORE, sstore, gas);
                }
                if velarium_numa_runtime::has_service_hook() {
                    let gas = table.gas_table()[usize::from(revm::bytecode::opcode::JUMPDEST)];
                    table.insert_instruction(
                        revm::bytecode::opcode::JUMPDEST,
                        revm::interpreter::Instruction::new(serving_jumpdest::<DB>),
                        gas,
                    );
                }
                table
            },
            precompiles: revm::handler::EthPrecompiles::new(spec),
            frame_stack: frames::take(),
        }
    }

    /// [`Shared::work`], leaving early once `stop()` holds between two tasks (never with a
    /// follow-up task in hand, which only this worker may do): a streaming run's caller works
    /// while it waits for the outcome it needs (see `stream.rs`). Generic, so that
    /// [`Shared::work`]'s never-true `stop` costs nothing per task.
    pub(super) fn work_until(&self, stop: &impl Fn() -> bool) {
        let mut evm = self.new_evm();
        let inspect = evm.inspector.is_active();
        let mut writes = Vec::new();
        let mut task = None;
        let mut idle_rounds = 0u32;
        let started = std::time::Instant::now();
        let mut idle = std::time::Duration::ZERO;
        let mut tally = Tally::default();
        let mut stopped = false;
        loop {
            // Between tasks too, a worker that owes the others something does it.
            velarium_numa_runtime::service();
            if task.is_none() && stop() {
                stopped = true;
                break;
            }
            let next = task.take().unwrap_or_else(|| self.scheduler.next_task());
            if !matches!(next, SchedulerTask::Retry) {
                idle_rounds = 0;
            }
            match next {
                SchedulerTask::Execute(version) => {
                    task = self.execute(&mut evm, inspect, &mut writes, version, &mut tally);
                    self.keep_up_fold();
                }
                SchedulerTask::Validate { version, at_commit } => {
                    let txn_idx = version.txn_idx;
                    let stale = self.memory.invalid_read(txn_idx);
                    if let Some(location) = stale {
                        // A lower transaction wrote it while this one ran: later readers wait
                        // for the lower transactions being executed before they read it.
                        self.hot.mark(&location);
                    }
                    let valid =
                        stale.is_none() && self.fees.validate(txn_idx, self.scheduler.commit_idx());
                    let aborted =
                        !valid && self.scheduler.try_validation_abort(txn_idx, version.incarnation);
                    if aborted {
                        self.memory.convert_writes_to_estimates(txn_idx);
                        self.fees.clear(txn_idx);
                    }
                    task = self.scheduler.finish_validation(version, at_commit, aborted);
                }
                SchedulerTask::Retry => {
                    // Nothing to execute or validate: fold what is committed, if anything.
                    if let Some(folds) = self.folds {
                        if folds.help(self.outcomes, self.scheduler.commit_idx()) {
                            idle_rounds = 0;
                            continue;
                        }
                    }
                    if self.scheduler.is_in_order() && !velarium_numa_runtime::has_service_hook() {
                        // In order, another worker executes everything: polling its words
                        // would only slow it down. Let commits pile up for the next fold. (Not
                        // a worker the others may be waiting on: it must not sleep.)
                        let since = std::time::Instant::now();
                        std::thread::sleep(std::time::Duration::from_micros(IN_ORDER_NAP_US));
                        idle += since.elapsed();
                        continue;
                    }
                    // Else back off before asking again (polling the scheduler's shared words
                    // steals them from the workers that are busy), then give the core away (on
                    // an oversubscribed machine spinning starves the worker being waited for).
                    // Timed: only idle workers pay for the clock.
                    let since = std::time::Instant::now();
                    idle_rounds += 1;
                    if idle_rounds < 12 {
                        for _ in 0..(1u32 << idle_rounds.min(8)) {
                            std::hint::spin_loop();
                        }
                    } else {
                        std::thread::yield_now();
                    }
                    idle += since.elapsed();
                }
                SchedulerTask::Done => break,
            }
        }
        self.hot.note_credited(&evm.ctx().journaled_state.database.credited);
        frames::keep(std::mem::take(&mut evm.frame_stack));
        if let Some(folds) = self.folds.filter(|_| !stopped) {
            if !self.scheduler.is_halted() {
                idle += folds.finish(self.outcomes, self.txs.len());
            }
        }
        // The fold's last stretch is work too, but for the waits for another worker's shard.
        let busy = started.elapsed().saturating_sub(idle);
        self.busy_nanos
            .fetch_add(u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.plain_transfers.fetch_add(tally.plain_transfers, Ordering::Relaxed);
        self.storage_credits.fetch_add(tally.storage_credits, Ordering::Relaxed);
        if tally.sampled_gas > 0 {
            self.sampled[0].fetch_add(tally.sampled_nanos, Ordering::Relaxed);
            self.sampled[1].fetch_add(tally.sampled_gas, Ordering::Relaxed);
        }
    }

    /// The worker loop of a block of independent plain transfers (see `independent.rs`):
    /// claims chunks of transactions in order and executes each once, as final, without the
    /// EVM; then, once every worker is done, folds the block as Block-STM's workers do. A
    /// transaction `transfer::execute` does not do declines the run (see [`Claims`]): the
    /// workers stop, and nothing of the run is folded.
    ///
    /// [`Claims`]: super::independent::Claims
    pub(super) fn work_independent(&self, claims: &super::independent::Claims) {
        let mut evm = self.new_evm();
        let started = std::time::Instant::now();
        let checked = transfer::checked();
        let n = self.txs.len();
        let mut done = 0u64;
        'claims: while let Some(chunk) = claims.claim(n) {
            for i in chunk {
                if self.scheduler.is_halted() {
                    break 'claims;
                }
                let reset = |evm: &mut TxEvm<'_, DB>| {
                    let candidate = self.lazy_candidates[i];
                    evm.ctx()
                        .journaled_state
                        .database
                        .reset(i as u32, candidate, None, None, true, false);
                };
                reset(&mut evm);
                evm.ctx().tx = self.txs.env(i);
                let transfer::Plain::Done(Ok(done_tx)) = transfer::execute(evm.ctx()) else {
                    claims.decline();
                    break 'claims;
                };
                let db = &mut evm.ctx().journaled_state.database;
                let lazy_recipient = db.lazy_recipient;
                let lazy_recipient_base = db.lazy_recipient_base.take();
                if checked {
                    reset(&mut evm);
                    let (result, state, fee) = run_evm(&mut evm, false);
                    transfer::compare(&done_tx, &result, &state, fee);
                }
                let transfer::Transfer { result, state, fee } = done_tx;
                let layout = match self.folds {
                    Some(folds) => folds.note(i, Some(&state)),
                    None => DiffLayout::default(),
                };
                let outcome = TxOutcome {
                    bloom: LogsBloom::of(result.logs()),
                    result: Ok((result, state)),
                    fee,
                    lazy_recipient,
                    lazy_recipient_base,
                    lazy_sender: None,
                    lazy_beneficiary: None,
                    storage_credit: None,
                    trace: None,
                    layout,
                };
                // SAFETY: this worker claimed the transaction, so nobody else writes its slot,
                // and nobody reads it before every worker has stopped (`stop_and_wait`).
                unsafe { self.outcomes[i].put(outcome) };
                done += 1;
            }
            if self.workers == 1 {
                // One worker folds as it goes, as Block-STM's does (see `keep_up_fold`): every
                // transaction below the next claim is executed, by this worker. Several fold
                // after the last execution (folding as the chunks were executed measured no
                // better on two: 1.12-1.56 ms a block of 1,000 transfers against 1.04-1.16).
                if let Some(folds) = self.folds.filter(|_| !claims.declined()) {
                    folds.keep_up(self.outcomes, claims.claimed(n));
                }
            }
        }
        frames::keep(std::mem::take(&mut evm.frame_stack));
        let waiting = std::time::Instant::now();
        claims.stop_and_wait(self.workers, || !self.scheduler.is_halted());
        let mut idle = waiting.elapsed();
        if let Some(folds) = self.folds.filter(|_| !claims.declined()) {
            if !self.scheduler.is_halted() {
                idle += folds.finish(self.outcomes, n);
            }
        }
        let busy = started.elapsed().saturating_sub(idle);
        self.busy_nanos
            .fetch_add(u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.plain_transfers.fetch_add(done, Ordering::Relaxed);
    }

    /// Executes one incarnation; returns the follow-up task, if any.
    fn execute(
        &self,
        evm: &mut TxEvm<'_, DB>,
        inspect: bool,
        writes: &mut WriteSet<Location, MvValue, Credit>,
        version: Version,
        tally: &mut Tally,
    ) -> Option<SchedulerTask> {
        let txn_idx = version.txn_idx;
        let timed = (version.incarnation == 0 && txn_idx.is_multiple_of(SAMPLE_EVERY))
            .then(std::time::Instant::now);
        if let Some(prev) = self.prev_same_sender[txn_idx as usize] {
            // The sender's previous transaction decides this one's nonce and balance. Nothing
            // is executed yet, so rather than wait for it, leave this one suspended on it and
            // take other work (a chain of one sender's transactions then runs on whichever
            // worker finishes each link, in order, while the others do the rest).
            if self.scheduler.add_dependency(txn_idx, prev) {
                return None;
            }
        }
        // Its first reads are of these two accounts: on a block too large for the core's cache
        // (a gigagas block's filter alone is 4 MiB) their filter lines miss, and fetching both
        // now overlaps the two misses (gigagas ETH transfers +4-8%, measured per repetition).
        self.memory.prefetch(&Location::Account(self.txs.caller(txn_idx as usize)));
        if let Some(to) = self.txs.to(txn_idx as usize) {
            self.memory.prefetch(&Location::Account(to));
        }
        {
            // Started with every lower transaction committed: final, so nothing to validate.
            let settled = self.scheduler.executing_settled(txn_idx);
            let (fee, result, state) = loop {
                // The beneficiary's own transactions read it for real, as do those that
                // observed its balance.
                let lazy_beneficiary = self.lazy_beneficiary.filter(|b| {
                    self.txs.caller(txn_idx as usize) != b.address
                        && !self.beneficiary_observers[txn_idx as usize].load(Ordering::Relaxed)
                });
                let credits =
                    self.credits && !self.credit_refused[txn_idx as usize].load(Ordering::Relaxed);
                // A new incarnation's database: its read set empty, its lazy reads as planned.
                let reset = |evm: &mut TxEvm<'_, DB>| {
                    evm.ctx().journaled_state.database.reset(
                        txn_idx,
                        self.lazy_candidates[txn_idx as usize],
                        self.lazy_senders[txn_idx as usize],
                        lazy_beneficiary,
                        settled && !self.trace,
                        credits,
                    );
                };
                reset(evm);
                evm.ctx().tx = self.txs.env(txn_idx as usize);
                // A plain transfer without the EVM where it can be (see `transfer.rs`).
                let plain =
                    if inspect { transfer::Plain::Skipped } else { transfer::execute(evm.ctx()) };
                let checked = matches!(plain, transfer::Plain::Done(Ok(_))) && transfer::checked();
                // What the transfer read (revm must read the same for the outcomes to compare).
                let reads = checked.then(|| {
                    let db = &evm.ctx().journaled_state.database;
                    (db.read_set.clone(), db.fee_reads.clone())
                });
                if checked || matches!(plain, transfer::Plain::Declined) {
                    // It read through the database: start the incarnation afresh for revm.
                    reset(evm);
                }
                let (result, state, fee) = match plain {
                    transfer::Plain::Done(Ok(done)) if checked => {
                        tally.plain_transfers += 1;
                        let (result, state, fee) = run_evm(evm, inspect);
                        // Unless a lower transaction's write (or fee) came in between (then
                        // this incarnation's reads fail validation anyway).
                        let db = &evm.ctx().journaled_state.database;
                        if reads == Some((db.read_set.clone(), db.fee_reads.clone())) {
                            transfer::compare(&done, &result, &state, fee);
                        }
                        (result, state, fee)
                    }
                    transfer::Plain::Done(Ok(done)) => {
                        tally.plain_transfers += 1;
                        (Ok(done.result), done.state, done.fee)
                    }
                    transfer::Plain::Done(Err(e)) => (Err(e), EvmState::default(), U256::ZERO),
                    transfer::Plain::Skipped | transfer::Plain::Declined => run_evm(evm, inspect),
                };
                let db = &mut evm.ctx().journaled_state.database;
                let observed = db.lazy_beneficiary.is_some() && db.beneficiary_observed;
                if observed {
                    // It saw the placeholder balance: from now on it reads the real one.
                    self.beneficiary_observers[txn_idx as usize].store(true, Ordering::Relaxed);
                }
                if db.suspended {
                    // Suspended on a dependency: resumed as a new incarnation once it finishes.
                    return None;
                }
                let refused = db.storage_credit.is_some_and(|credit| {
                    db.credit_broken || !credit_kept(credit, result.is_ok(), &state)
                });
                if refused {
                    // The slot was used other than by the increment (or the credit is out of
                    // range): from now on it reads the slot for real.
                    self.credit_refused[txn_idx as usize].store(true, Ordering::Relaxed);
                } else if !observed {
                    break (fee, result, state);
                }
            };
            let db = &mut evm.ctx().journaled_state.database;
            let lazy_recipient = db.lazy_recipient;
            let lazy_recipient_base = db.lazy_recipient_base.take();
            let lazy_sender = db.lazy_sender;
            let lazy_beneficiary = db.lazy_beneficiary;
            let storage_credit = db.storage_credit.filter(|_| result.is_ok());
            tally.storage_credits += u64::from(storage_credit.is_some());
            writes.clear();
            if result.is_ok() {
                let lazy = (lazy_recipient, lazy_sender, lazy_beneficiary, storage_credit);
                self.write_set(writes, &state, fee, lazy);
            }
            let trace = self.trace.then(|| {
                let reads = db
                    .read_set
                    .iter()
                    .map(|(k, origin)| (*k, origin.mode == ReadMode::IgnoreDeltas))
                    .collect();
                let mut writes: Vec<_> =
                    writes.iter().map(|(k, w)| (*k, matches!(w, WriteValue::Delta(_)))).collect();
                // The fee is a credit of the beneficiary (kept out of multi-version memory).
                let beneficiary = Location::Account(self.beneficiary);
                let credits = !fee.is_zero() || !self.rules.state_clear;
                if credits && !writes.iter().any(|(k, _)| *k == beneficiary) {
                    writes.push((beneficiary, true));
                }
                Box::new((reads, writes))
            });
            self.fees.record(txn_idx, fee, if settled { &[] } else { &db.fee_reads });
            let wrote_new = if settled {
                db.read_set.clear();
                self.memory.record_final(version, writes)
            } else {
                self.memory.record(version, &mut db.read_set, writes)
            };
            // Only the fold reads it (a node's per-transaction commit path has none).
            let layout = match self.folds {
                Some(folds) => folds.note(txn_idx as usize, result.is_ok().then_some(&state)),
                None => DiffLayout::default(),
            };
            // Only a sampled transaction's gas is needed.
            let gas_used = timed.and_then(|_| result.as_ref().ok()).map(|r| r.tx_gas_used());
            let outcome = TxOutcome {
                bloom: match &result {
                    Ok(r) => {
                        let bloom = LogsBloom::of(r.logs());
                        if matches!(bloom, LogsBloom::Shared) {
                            self.shared_blooms.store(true, Ordering::Relaxed);
                        }
                        bloom
                    }
                    Err(_) => LogsBloom::Empty,
                },
                result: result.map(|r| (r, state)),
                fee,
                lazy_recipient,
                lazy_recipient_base,
                lazy_sender,
                lazy_beneficiary,
                storage_credit: storage_credit.map(Box::new),
                trace,
                layout,
            };
            if let (Some(started), Some(gas)) = (timed, gas_used) {
                tally.sampled_nanos += started.elapsed().as_nanos() as u64;
                tally.sampled_gas += gas;
            }
            // SAFETY: this worker executes the transaction's current incarnation and reports it
            // finished only below, so the transaction is not committed and nobody reads the slot.
            unsafe { self.outcomes[txn_idx as usize].put(outcome) };
            self.scheduler.finish_execution(txn_idx, version.incarnation, wrote_new)
        }
    }

    /// The locations a transaction's state diff writes, as the next transactions must see them.
    fn write_set(
        &self,
        writes: &mut WriteSet<Location, MvValue, Credit>,
        state: &EvmState,
        fee: U256,
        (lazy_recipient, lazy_sender, lazy_beneficiary, storage_credit): (
            Option<Address>,
            Option<LazySender>,
            Option<LazyBeneficiary>,
            Option<StorageCredit>,
        ),
    ) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            if let Some(beneficiary) = lazy_beneficiary.filter(|b| b.address == *address) {
                // Its credits, above the placeholder it was served (its fee stays in the
                // fee ledger).
                let credit = account.info.balance.wrapping_sub(beneficiary.placeholder);
                if !credit.is_zero() {
                    writes
                        .push((Location::Account(*address), WriteValue::Delta(Credit::of(credit))));
                }
                continue;
            }
            if let Some(sender) = lazy_sender.filter(|s| s.address == *address) {
                // Its debit and nonce bump, against the placeholder it was served.
                let debit = Credit {
                    balance: account.info.balance.wrapping_sub(sender.placeholder),
                    nonce: account.info.nonce.wrapping_sub(sender.nonce),
                };
                writes.push((Location::Account(*address), WriteValue::Delta(debit)));
                continue;
            }
            if Some(*address) == lazy_recipient {
                // Placeholder balance 0: what it holds now is exactly the credit.
                if !account.info.balance.is_zero() {
                    let credit = Credit::of(account.info.balance);
                    writes.push((Location::Account(*address), WriteValue::Delta(credit)));
                }
                continue;
            }
            let wiped = account.is_created() || account.is_selfdestructed();
            if wiped {
                writes.push((Location::StorageEpoch(*address), WriteValue::Value(MvValue::Epoch)));
            }
            let exists =
                !(account.is_selfdestructed() || self.rules.state_clear && account.is_empty());
            let existed = !account.is_loaded_as_not_existing();
            let beneficiary = *address == self.beneficiary;
            // `is_changed` compares with the info as loaded, without cloning it (it may report
            // a change that is none, which only costs a redundant write).
            if wiped || beneficiary || exists != existed || (exists && account.is_changed()) {
                let mut info = exists.then(|| account.info.clone());
                if beneficiary {
                    // It read every lower fee: its full write includes them, and its own.
                    info = DeltaRules::apply_one(self.rules, info, Credit::of(fee));
                }
                writes
                    .push((Location::Account(*address), WriteValue::Value(MvValue::Account(info))));
            }
            if !account.is_selfdestructed() {
                let credited = storage_credit.filter(|c| c.address == *address);
                for (slot, value) in account.changed_storage_slots() {
                    let location = Location::Storage(*address, *slot);
                    if let Some(credit) = credited.filter(|c| c.slot == *slot) {
                        let amount = credit.amount(value.present_value);
                        writes.push((location, WriteValue::Delta(Credit::of(amount))));
                        continue;
                    }
                    let value = MvValue::Storage(value.present_value);
                    writes.push((location, WriteValue::Value(value)));
                }
            }
        }
    }
}

/// Whether a storage credit can be kept: the transaction failed (nothing is written), or the
/// slot's credit in the state diff is in range (see [`StorageCredit::in_range`]).
fn credit_kept(credit: StorageCredit, ok: bool, state: &EvmState) -> bool {
    let present = state.get(&credit.address).and_then(|account| account.storage.get(&credit.slot));
    !ok || present.is_none_or(|slot| credit.in_range(slot.present_value))
}

/// Runs the EVM's transaction through revm (mainnet's handler, the fee computed, not credited):
/// its result, its state diff and the fee it owes the beneficiary.
fn run_evm<DB>(
    evm: &mut TxEvm<'_, DB>,
    inspect: bool,
) -> (Result<ExecutionResult<HaltReason>, EVMError<TxDbError>>, EvmState, U256)
where
    DB: DatabaseRef + Sync,
    DB::Error: std::fmt::Display,
{
    let mut handler =
        LazyRewardHandler { fee: Cell::new(U256::ZERO), _db: std::marker::PhantomData };
    let result = if inspect { handler.inspect_run(evm) } else { handler.run(evm) };
    let state = evm.ctx().journal_mut().finalize();
    (result, state, handler.fee.get())
}

/// Each worker thread's revm call-frame stack, kept from one block to the next.
mod frames {
    use revm::{context::FrameStack, handler::EthFrame, interpreter::interpreter::EthInterpreter};
    use std::cell::Cell;

    type Frames = FrameStack<EthFrame<EthInterpreter>>;

    thread_local! {
        static KEPT: Cell<Option<Frames>> = const { Cell::new(None) };
    }

    /// The stack the last block on this thread left, or a new one as revm's builder makes it.
    pub(super) fn take() -> Frames {
        KEPT.with(Cell::take).unwrap_or_else(|| FrameStack::new_prealloc(8))
    }

    /// Keeps `frames` for the next block on this thread.
    pub(super) fn keep(frames: Frames) {
        KEPT.with(|kept| kept.set(Some(frames)));
    }
}

/// The block's transactions, as the workers read them.
#[derive(Debug, Clone, Copy)]
pub(super) enum TxSource<'a> {
    /// Ready revm environments (a node's per-transaction path).
    Envs(&'a [TxEnv]),
    /// Recovered transactions, each converted by the worker that executes it (so the block
    /// pays no sequential conversion up front; an incarnation copies its environment anyway).
    Recovered(&'a [RecoveredTx]),
}

impl TxSource<'_> {
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Envs(txs) => txs.len(),
            Self::Recovered(txs) => txs.len(),
        }
    }

    /// Transaction `i`'s sender.
    pub(super) fn caller(&self, i: usize) -> Address {
        match self {
            Self::Envs(txs) => txs[i].caller,
            Self::Recovered(txs) => txs[i].signer(),
        }
    }

    /// The account transaction `i` calls (`None`: a creation).
    pub(super) fn to(&self, i: usize) -> Option<Address> {
        match self {
            Self::Envs(txs) => txs[i].kind.to().copied(),
            Self::Recovered(txs) => txs[i].to(),
        }
    }

    /// Transaction `i`'s gas limit.
    pub(super) fn gas_limit(&self, i: usize) -> u64 {
        match self {
            Self::Envs(txs) => txs[i].gas_limit,
            Self::Recovered(txs) => txs[i].gas_limit(),
        }
    }

    /// Transaction `i`'s revm environment.
    pub(super) fn env(&self, i: usize) -> TxEnv {
        match self {
            Self::Envs(txs) => txs[i].clone(),
            Self::Recovered(txs) => TxEnv::from_recovered_tx(txs[i].inner(), txs[i].signer()),
        }
    }

    /// Whether transaction `i` carries EIP-7702 authorizations (which may give any account code).
    pub(super) fn has_authorizations(&self, i: usize) -> bool {
        match self {
            Self::Envs(txs) => !txs[i].authorization_list.is_empty(),
            Self::Recovered(txs) => txs[i].authorization_list().is_some_and(|l| !l.is_empty()),
        }
    }

    /// Whether transaction `i` is of a type a plain transfer may have (legacy, EIP-2930,
    /// EIP-1559) and carries no access list: what `transfer::execute` requires beyond
    /// [`TxSource::lazy_recipient`].
    pub(super) fn bare_of_lists(&self, i: usize) -> bool {
        match self {
            Self::Envs(txs) => txs[i].tx_type <= 2 && txs[i].access_list.0.is_empty(),
            Self::Recovered(txs) => {
                let tx = &txs[i];
                u8::from(tx.tx_type()) <= 2 && tx.access_list().is_none_or(|l| l.0.is_empty())
            }
        }
    }

    /// Transaction `i`'s nonce, and the most it can take from its sender (revm's
    /// `max_balance_spending`: gas limit times the largest gas price, plus the value); `None`
    /// for a blob transaction or on overflow.
    pub(super) fn nonce_and_max_cost(&self, i: usize) -> (u64, Option<U256>) {
        let (nonce, gas_limit, max_fee, value, blobs) = match self {
            Self::Envs(txs) => {
                let tx = &txs[i];
                (tx.nonce, tx.gas_limit, tx.gas_price, tx.value, tx.tx_type == 3)
            }
            Self::Recovered(txs) => {
                let tx = &txs[i];
                (tx.nonce(), tx.gas_limit(), tx.max_fee_per_gas(), tx.value(), tx.is_eip4844())
            }
        };
        let cost = (u128::from(gas_limit))
            .checked_mul(max_fee)
            .and_then(|gas| U256::from(gas).checked_add(value))
            .filter(|_| !blobs);
        (nonce, cost)
    }

    /// [`lazy_transfer_recipient`] of transaction `i`, without building its environment.
    pub(super) fn lazy_recipient(&self, i: usize, beneficiary: Address) -> Option<Address> {
        match self {
            Self::Envs(txs) => lazy_transfer_recipient(&txs[i], beneficiary),
            Self::Recovered(txs) => {
                let tx = &txs[i];
                let no_authorizations = tx.authorization_list().is_none_or(|l| l.is_empty());
                plain_transfer_to(
                    tx.kind(),
                    tx.value(),
                    tx.input().is_empty() && no_authorizations,
                    tx.signer(),
                    beneficiary,
                )
            }
        }
    }
}

/// The recipient of `tx` if it is a plain value transfer whose credit may be lazy: a call with
/// value and no input, to another account than the sender and the beneficiary, outside the
/// precompile range, and not an EIP-7702 transaction (whose authorizations may give the
/// recipient code). Whether the recipient has code is only known when it is read.
pub(super) fn lazy_transfer_recipient(tx: &TxEnv, beneficiary: Address) -> Option<Address> {
    let bare = tx.data.is_empty() && tx.authorization_list.is_empty();
    plain_transfer_to(tx.kind, tx.value, bare, tx.caller, beneficiary)
}

/// [`lazy_transfer_recipient`] from the fields it looks at (`bare`: no input and no
/// authorizations).
fn plain_transfer_to(
    kind: revm::primitives::TxKind,
    value: U256,
    bare: bool,
    caller: Address,
    beneficiary: Address,
) -> Option<Address> {
    let revm::primitives::TxKind::Call(to) = kind else { return None };
    let plain = !value.is_zero()
        && bare
        && to != caller
        && to != beneficiary
        && to.0[..18].iter().any(|b| *b != 0);
    plain.then_some(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEip7702, TxEnvelope, TxLegacy};
    use alloy_primitives::{Bytes, Signature, TxKind};

    fn recovered(tx: TxEnvelope, signer: Address) -> RecoveredTx {
        RecoveredTx::new_unchecked(tx, signer)
    }

    #[test]
    fn recovered_transactions_read_as_their_environments() {
        let sender = Address::repeat_byte(0x11);
        let to = Address::repeat_byte(0x22);
        let precompile = Address::with_last_byte(4);
        let sig = Signature::test_signature();
        let legacy = |to: TxKind, value: u64, input: &'static [u8]| {
            let tx = TxLegacy {
                to,
                value: U256::from(value),
                input: Bytes::from_static(input),
                gas_limit: 21_000,
                ..Default::default()
            };
            TxEnvelope::Legacy(tx.into_signed(sig))
        };
        let dynamic = TxEip1559 {
            to: TxKind::Call(to),
            value: U256::from(5),
            gas_limit: 21_000,
            ..Default::default()
        };
        let delegation = |authorizations| TxEip7702 {
            to,
            value: U256::from(5),
            gas_limit: 50_000,
            authorization_list: authorizations,
            ..Default::default()
        };
        let authorization =
            alloy_eips::eip7702::Authorization { chain_id: U256::from(1), address: to, nonce: 0 }
                .into_signed(sig);
        let txs = [
            recovered(legacy(TxKind::Call(to), 5, &[]), sender),
            recovered(legacy(TxKind::Call(to), 0, &[]), sender),
            recovered(legacy(TxKind::Call(to), 5, &[1]), sender),
            recovered(legacy(TxKind::Create, 5, &[]), sender),
            recovered(legacy(TxKind::Call(precompile), 5, &[]), sender),
            recovered(legacy(TxKind::Call(sender), 5, &[]), sender),
            recovered(TxEnvelope::Eip1559(dynamic.into_signed(sig)), sender),
            recovered(TxEnvelope::Eip7702(delegation(vec![]).into_signed(sig)), sender),
            recovered(
                TxEnvelope::Eip7702(delegation(vec![authorization]).into_signed(sig)),
                sender,
            ),
        ];
        let source = TxSource::Recovered(&txs);
        let mut lazy = 0;
        for (i, tx) in txs.iter().enumerate() {
            let env = TxEnv::from_recovered_tx(tx.inner(), tx.signer());
            for beneficiary in [Address::ZERO, to] {
                let expected = lazy_transfer_recipient(&env, beneficiary);
                assert_eq!(source.lazy_recipient(i, beneficiary), expected, "tx {i}");
                lazy += usize::from(expected.is_some());
            }
            assert_eq!(source.caller(i), env.caller);
            assert_eq!(source.env(i), env, "tx {i}");
        }
        // Legacy, 1559 and an empty 7702 list are lazy (beneficiary elsewhere), nothing else.
        assert_eq!(lazy, 3);
    }
}
