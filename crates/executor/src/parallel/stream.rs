//! Block-STM for a caller that takes one result at a time (reth's newPayload: one
//! `execute_transaction` call per transaction, each result committed into its `State` before
//! the next call).
//!
//! [`execute_transactions`](super::execute_transactions) runs the whole list inside one call
//! and returns every outcome at the end: the caller's commits (a quarter of sequential
//! execution's time behind reth's `State`) cannot overlap execution, and reth's state-root
//! task gets every transaction's state update in one burst after Block-STM. A
//! [`StreamingRun`] instead runs detached from the caller's stack: the pool's helpers execute
//! the block while the caller comes and goes, and [`StreamingRun::next`] returns each
//! transaction's final outcome as soon as the rolling commit reaches it.
//!
//! ```text
//!  caller (owns the State)             helpers (Block-STM, detached)
//!  start: preheat, set-up ───────────▶ execute / validate, rolling commit
//!  next(0): work as a worker, serve  ◀ commit index passes 0
//!  commit 0 into the State             (cold reads queue until the caller is back)
//!  next(1): work as a worker, serve  ◀ ...
//! ```
//!
//! The caller is the only thread that may read its database, so it serves the helpers' cold
//! reads whenever it is inside [`StreamingRun::next`] (see `remote.rs`, `RemoteDb::attach`);
//! while it waits there for the outcome it needs, it executes and validates transactions
//! itself, as the last of the run's workers, reading its database directly and serving the
//! helpers at each of its reads, at every `JUMPDEST` and between tasks.
//!
//! **The state the helpers read.** They must keep reading the state from before the block
//! while the caller commits transactions into that same database. A location a committed
//! transaction wrote is read from multi-version memory by every later transaction (nothing is
//! dropped from it before the block ends), and the first writer of a location read it from the
//! database through the shared cache, which keeps the first value read. As a guard that does
//! not depend on those two facts, [`StreamingRun::next`] also caches (pins) the values an
//! outcome is about to change, as the database still has them, before returning it: a
//! location is then pinned before the first commit that changes it, so the cache holds its
//! value from before the block. (Removing the pins fails no test: no read path reaches the
//! database for such a location today.)

use super::{
    commit, pool, remote::RemoteDb, worker::Shared, BlockStmRun, EngineFault, Mechanisms, Overlay,
    ParallelStats, SpeculativeTx, TxSource, WorkerPool,
};
use crate::ExecutionError;
use alloy_primitives::map::AddressSet;
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use std::{
    panic::{catch_unwind, resume_unwind, AssertUnwindSafe},
    sync::Arc,
    time::Instant,
};
use velarium_numa_runtime::DetachedJob;

/// What the helpers share with the caller, owned (the run outlives the caller's calls).
struct Data {
    run: BlockStmRun,
    remote: RemoteDb,
    overlay: Overlay,
    cfg: CfgEnv,
    block_env: BlockEnv,
    txs: Vec<TxEnv>,
    storage_only: AddressSet,
}

impl Data {
    /// What the run's workers share (the caller's included).
    fn shared(&self) -> Shared<'_, RemoteDb> {
        // A node's state cannot name storage-only accounts: EIP-7610's storage check is left
        // out there, as reth's own executor leaves it out.
        self.run.shared(
            &self.remote,
            &self.overlay,
            &self.cfg,
            &self.block_env,
            TxSource::Envs(&self.txs),
            None::<&dyn commit::FoldWork>,
            false,
            &self.storage_only,
        )
    }
}

/// A Block-STM run over a list of transactions whose outcomes the caller takes in order, one
/// at a time, while the run goes on (see the module docs). Dropping it abandons the run: the
/// helpers stop, and the caller continues however it likes from what it committed.
pub struct StreamingRun {
    data: Option<Arc<Data>>,
    job: Option<DetachedJob>,
    /// The index of the next outcome [`StreamingRun::next`] returns.
    next: usize,
    stats: ParallelStats,
    started: Instant,
}

impl std::fmt::Debug for StreamingRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingRun")
            .field("next", &self.next)
            .field("txs", &self.len())
            .finish_non_exhaustive()
    }
}

/// Starts Block-STM over `txs` on `threads` workers and returns at once: `threads - 1` helper
/// threads start executing, and this thread works as the last worker whenever it waits in
/// [`StreamingRun::next`]. `db` (which only this thread may read) must already hold the
/// block's pre-execution changes. Set-up reads (senders, recipients, the beneficiary) are done
/// here, on this thread.
///
/// # Errors
///
/// A failed read of `db` during set-up ([`ExecutionError::StateRead`]), or the engine's fault.
pub fn start_streaming<DB>(
    db: &mut DB,
    cfg: &CfgEnv,
    block_env: &BlockEnv,
    txs: Vec<TxEnv>,
    threads: usize,
) -> Result<StreamingRun, ExecutionError>
where
    DB: revm::Database,
    DB::Error: std::fmt::Display,
{
    let threads = threads.max(1);
    let mut stats = ParallelStats { threads, ..Default::default() };
    let preheat = super::preheat_accounts(block_env, &txs);
    let remote = RemoteDb::detached();
    let overlay = Overlay::default();
    let pool = WorkerPool::get_streaming(threads)?;
    let run = remote.attach(db, || {
        remote.preheat(preheat).map_err(ExecutionError::StateRead)?;
        let prepared = BlockStmRun::prepare(
            threads,
            &remote,
            &overlay,
            cfg,
            block_env,
            TxSource::Envs(&txs),
            Mechanisms::ALL.for_workers(threads),
            &mut stats,
        );
        match remote.take_poisoned() {
            Some(message) => Err(EngineFault::WorkerPanic(message).into()),
            None => prepared,
        }
    })?;
    let started = Instant::now();
    let Some(run) = run else {
        return Ok(StreamingRun { data: None, job: None, next: 0, stats, started });
    };
    let data = Arc::new(Data {
        run,
        remote,
        overlay,
        cfg: cfg.clone(),
        block_env: block_env.clone(),
        txs,
        storage_only: AddressSet::default(),
    });
    let shared_data = Arc::clone(&data);
    let job = pool.start_detached(Arc::new(move |helper: usize| {
        velarium_mvmemory::bind_worker(helper);
        let d = &*shared_data;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| d.shared().work())) {
            d.run.workspace.scheduler.halt();
            resume_unwind(panic);
        }
    }));
    Ok(StreamingRun { data: Some(data), job: Some(job), next: 0, stats, started })
}

impl StreamingRun {
    /// The number of transactions in the run.
    pub fn len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.txs.len())
    }

    /// Whether the run has no transactions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transaction `i`'s environment, as the run executes it.
    pub fn tx_env(&self, i: usize) -> Option<&TxEnv> {
        self.data.as_ref().and_then(|d| d.txs.get(i))
    }

    /// The index of the outcome the next [`StreamingRun::next`] returns (the number taken).
    pub const fn position(&self) -> usize {
        self.next
    }

    /// Transaction [`StreamingRun::position`]'s final outcome, once every lower transaction is
    /// final too; meanwhile this thread serves the helpers' reads of `db`, which must hold the
    /// block's state with every earlier outcome committed (the outcome is to be committed
    /// before the next call, through [`SpeculativeTx::into_result`] on `db`). Before it
    /// returns, the locations the outcome changes are pinned (see the module docs).
    ///
    /// # Errors
    ///
    /// An engine fault (a helper panicked, a read of `db` panicked, the run stopped short):
    /// the run is over, and the caller continues without it from what it committed.
    pub fn next<DB>(&mut self, db: &mut DB) -> Result<SpeculativeTx, ExecutionError>
    where
        DB: revm::Database,
        DB::Error: std::fmt::Display,
    {
        let i = self.next;
        let Some(data) = self.data.as_deref() else {
            return Err(EngineFault::MissingOutcome(i as u32).into());
        };
        if i >= data.txs.len() {
            return Err(
                EngineFault::Invariant("an outcome past the run's end was asked for").into()
            );
        }
        let scheduler = &data.run.workspace.scheduler;
        let remote = &data.remote;
        let outcome = remote.attach(db, || {
            if scheduler.commit_idx() <= i {
                // Work meanwhile, as one of the run's workers (its reads go to `db` directly),
                // serving the helpers' reads at each of its own, between tasks and while it
                // waits (the service hook), until transaction `i` is final.
                let shared = data.shared();
                let serve = || remote.serve_pending();
                let stop = || scheduler.commit_idx() > i || scheduler.is_halted();
                // Worker 0 of the run (the helpers are 1 and up).
                velarium_mvmemory::bind_worker(0);
                let worked = velarium_numa_runtime::with_service_hook(&serve, || {
                    catch_unwind(AssertUnwindSafe(|| shared.work_until(&stop)))
                });
                if let Err(panic) = worked {
                    scheduler.halt();
                    return Err(EngineFault::WorkerPanic(super::panic_message(&panic)));
                }
            }
            if scheduler.commit_idx() <= i {
                return Err(if scheduler.is_halted() {
                    EngineFault::Halted
                } else {
                    EngineFault::MissingOutcome(i as u32)
                });
            }
            // SAFETY: transaction `i` is committed (the scheduler's commit index, read with
            // acquire ordering, passed it): no helper writes its slot any more, and this run
            // is its only reader (no fold).
            let outcome = unsafe { data.run.workspace.outcomes[i].take_committed() }
                .ok_or(EngineFault::MissingOutcome(i as u32))?;
            if let Ok((_, state)) = &outcome.result {
                for (address, account) in state {
                    let slots = account.storage.iter().filter(|(_, s)| s.is_changed());
                    remote
                        .pin(*address, slots.map(|(slot, _)| *slot))
                        .map_err(|e| EngineFault::WorkerPanic(format!("pinning {address}: {e}")))?;
                }
            }
            // A read that panicked (the run's, or a pin's) fails the outcome too.
            if let Some(message) = remote.take_poisoned() {
                return Err(EngineFault::WorkerPanic(message));
            }
            Ok(outcome)
        });
        match outcome {
            Ok(outcome) => {
                self.next += 1;
                Ok(SpeculativeTx(outcome))
            }
            Err(fault) => {
                self.abandon();
                Err(fault.into())
            }
        }
    }

    /// Answers the helpers' reads of `db` waiting now (the caller has a moment between two
    /// steps of its own; `db` as for [`StreamingRun::next`]).
    pub fn serve<DB>(&self, db: &mut DB)
    where
        DB: revm::Database,
        DB::Error: std::fmt::Display,
    {
        if let Some(data) = self.data.as_deref() {
            data.remote.attach(db, || data.remote.serve_pending());
        }
    }

    /// The run's counters, once every outcome was taken (the helpers are joined first).
    ///
    /// # Errors
    ///
    /// The engine fault that ended the run (a helper's panic, a broken invariant), or
    /// outcomes not taken yet.
    pub fn finish(mut self) -> Result<ParallelStats, ExecutionError> {
        if self.next < self.len() {
            self.abandon();
            return Err(EngineFault::Invariant("a streaming run finished before its end").into());
        }
        let ran =
            self.job.take().map_or(Ok(()), |job| job.join().map_err(EngineFault::WorkerPanic));
        let mut stats = self.stats;
        stats.worker_wall = self.started.elapsed();
        let Some(data) = self.data.take() else { return Ok(stats) };
        let data = Arc::try_unwrap(data)
            .map_err(|_| EngineFault::Invariant("a helper kept the streaming run"))?;
        let workspace = data.run.finish(ran, false, &mut stats)?;
        pool::give_back(workspace);
        Ok(stats)
    }

    /// Stops the run: waiting reads fail, the scheduler halts, the helpers are joined.
    fn abandon(&mut self) {
        if let Some(data) = self.data.as_deref() {
            data.remote.close();
            data.run.workspace.scheduler.halt();
        }
        drop(self.job.take());
        if let Some(data) = self.data.take().and_then(|d| Arc::try_unwrap(d).ok()) {
            pool::give_back(data.run.workspace);
        }
    }
}

impl Drop for StreamingRun {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, TxKind, U256};
    use revm::{
        database::{CacheDB, EmptyDB, State},
        primitives::hardfork::SpecId,
        state::AccountInfo,
        DatabaseCommit,
    };

    type ParentState<'a> = State<revm::database::WrapDatabaseRef<&'a CacheDB<EmptyDB>>>;

    /// A state with `senders` funded accounts, and transfers from them in turns (each sender's
    /// nonces in order), some to the same few recipients.
    fn transfers(senders: u8, count: usize) -> (CacheDB<EmptyDB>, Vec<TxEnv>) {
        let mut db = CacheDB::new(EmptyDB::default());
        for s in 1..=senders {
            let info = AccountInfo { balance: U256::from(10u64.pow(18)), ..Default::default() };
            db.insert_account_info(Address::repeat_byte(s), info);
        }
        let txs = (0..count)
            .map(|i| TxEnv {
                caller: Address::repeat_byte(1 + (i % usize::from(senders)) as u8),
                kind: TxKind::Call(Address::repeat_byte(0xa0 + (i % 3) as u8)),
                value: U256::from(1000 + i),
                gas_limit: 21_000,
                gas_price: 1,
                nonce: (i / usize::from(senders)) as u64,
                chain_id: Some(1),
                ..Default::default()
            })
            .collect();
        (db, txs)
    }

    /// Each transaction's result and diff, committed in order into a `State` over `parent`
    /// (the fee credited to the beneficiary after each, as the reth glue does), from `outcome`.
    fn commit_all(
        parent: &CacheDB<EmptyDB>,
        block_env: &BlockEnv,
        mut outcome: impl FnMut(&mut ParentState<'_>, usize) -> SpeculativeTx,
        count: usize,
    ) -> (Vec<String>, Vec<(Address, Option<AccountInfo>)>) {
        let mut state = State::builder().with_database_ref(parent).with_bundle_update().build();
        let mut results = Vec::new();
        for i in 0..count {
            let tx = outcome(&mut state, i);
            let fee = tx.fee();
            let result = tx.into_result(&mut state).unwrap().unwrap();
            results.push(format!("{:?}", result.result));
            state.commit(result.state);
            super::super::credit_beneficiary(
                &mut state,
                SpecId::CANCUN,
                block_env.beneficiary,
                fee,
            )
            .unwrap();
        }
        let accounts = (1..=3)
            .map(Address::repeat_byte)
            .chain((0..3).map(|k| Address::repeat_byte(0xa0 + k)))
            .chain([block_env.beneficiary]);
        let infos = accounts.map(|a| (a, revm::Database::basic(&mut state, a).unwrap())).collect();
        (results, infos)
    }

    #[test]
    fn a_streamed_run_gives_what_a_whole_run_gives_and_refuses_misuse() {
        let (parent, txs) = transfers(3, 60);
        let cfg = CfgEnv::new_with_spec(SpecId::CANCUN);
        let block_env = BlockEnv {
            beneficiary: Address::repeat_byte(0xbe),
            gas_limit: 30_000_000,
            ..Default::default()
        };
        // The whole list in one call, the reference.
        let mut reference = State::builder().with_database_ref(&parent).build();
        let (whole, _) =
            super::super::execute_transactions(&mut reference, &cfg, &block_env, &txs, 2).unwrap();
        let mut whole = whole.into_iter();
        let want = commit_all(&parent, &block_env, |_, _| whole.next().unwrap(), txs.len());
        for threads in [1, 2, 3] {
            // Streamed: each outcome taken while the run goes on, committed before the next.
            let mut run: Option<StreamingRun> = None;
            let got = commit_all(
                &parent,
                &block_env,
                |state, i| {
                    let run = run.get_or_insert_with(|| {
                        start_streaming(state, &cfg, &block_env, txs.clone(), threads).unwrap()
                    });
                    assert_eq!(run.position(), i);
                    run.serve(state);
                    run.next(state).unwrap()
                },
                txs.len(),
            );
            assert_eq!(got, want, "{threads} threads");
            let mut run = run.unwrap();
            assert_eq!((run.len(), run.position()), (txs.len(), txs.len()));
            // Past the end: an engine error, never a panic.
            let mut state = State::builder().with_database_ref(&parent).build();
            assert!(matches!(run.next(&mut state), Err(ExecutionError::Engine(_))));
            let stats = run.finish().unwrap();
            assert!(stats.executions >= txs.len() as u64, "{stats:?}");
        }
        // Finished before its end: the run is stopped and the caller told.
        let mut state = State::builder().with_database_ref(&parent).build();
        let mut run = start_streaming(&mut state, &cfg, &block_env, txs.clone(), 2).unwrap();
        run.next(&mut state).unwrap();
        assert!(matches!(run.finish(), Err(ExecutionError::Engine(_))));
        // No transactions: nothing runs.
        let run = start_streaming(&mut state, &cfg, &block_env, Vec::new(), 2).unwrap();
        assert!(run.is_empty());
        assert!(run.finish().is_ok());
    }
}
