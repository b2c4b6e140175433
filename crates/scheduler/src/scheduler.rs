//! The scheduler: counters, per-transaction statuses and dependencies.

use crate::error::SchedulerError;
use crossbeam_utils::CachePadded;
use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Mutex, MutexGuard, PoisonError,
    },
};
use velarium_primitives::{Incarnation, TxnIndex, Version};

/// Status of one transaction; see the diagram in the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    /// Incarnation `i` may be handed out for execution.
    ReadyToExecute(Incarnation),
    /// Incarnation `i` is being executed by some worker.
    Executing(Incarnation),
    /// Incarnation `i` read an estimate and was abandoned; it waits for the blocking
    /// transaction to finish executing, then becomes `ReadyToExecute(i + 1)`.
    Suspended(Incarnation),
    /// Incarnation `i` finished executing and recorded its reads and writes.
    Executed(Incarnation),
    /// Incarnation `i` failed validation; its writes are being turned into estimates, then it
    /// becomes `ReadyToExecute(i + 1)`.
    Aborting(Incarnation),
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A task handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerTask {
    /// Execute this incarnation, then `MvMemory::record` and [`Scheduler::finish_execution`].
    Execute(Version),
    /// Validate this incarnation's read set, then [`Scheduler::finish_validation`].
    Validate(Version),
    /// Nothing to do right now; call [`Scheduler::next_task`] again (after a spin hint).
    Retry,
    /// The block is done (or halted): the worker should exit.
    Done,
}

/// Snapshot of the scheduler's metric counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerCounters {
    /// Execution tasks handed out (incarnations started).
    pub executions: u64,
    /// Validation tasks handed out.
    pub validations: u64,
    /// Incarnations aborted by a failed validation.
    pub aborts: u64,
    /// Incarnations suspended on a dependency.
    pub suspensions: u64,
}

/// Locks a mutex, ignoring poisoning: no scheduler code panics while holding a lock.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The collaborative Block-STM scheduler for one block. See the crate docs.
///
/// The four coordination counters (`execution_idx`, `validation_idx`, `decrease_cnt`,
/// `num_active_tasks`) and `done_marker` use `SeqCst`: the paper's termination argument in
/// `check_done` reasons about one total order of their updates (an index decrease must be seen
/// either before the index check or through `decrease_cnt`), which Acquire/Release alone do
/// not give across different atomics. Each is `CachePadded` because every worker hits them.
pub struct Scheduler {
    /// Number of transactions in the block.
    block_size: usize,
    /// Next transaction to try to execute. Incremented (fetch_add) by `next_task`; decreased
    /// (fetch_min) when dependents are resumed. May run past `block_size` by at most the number
    /// of workers.
    execution_idx: CachePadded<AtomicUsize>,
    /// Next transaction to validate. Incremented by `next_task`; decreased by
    /// `finish_execution` (new location written) and `finish_validation` (abort).
    validation_idx: CachePadded<AtomicUsize>,
    /// Number of decreases of either index; read twice by `check_done` to detect a decrease
    /// racing with the termination check.
    decrease_cnt: CachePadded<AtomicUsize>,
    /// Tasks handed out and not yet finished, plus workers between incrementing it and
    /// fetching an index. Incremented by `next_task`; decremented when a task ends without
    /// handing on a follow-up task (`finish_*`, `add_dependency`, failed `try_incarnate`).
    num_active_tasks: CachePadded<AtomicUsize>,
    /// Set once by `check_done` (block finished) or `halt`; read by `next_task`/`done`.
    done_marker: CachePadded<AtomicBool>,
    /// Per transaction status. Lock order: after the dependency lock; never two status locks
    /// at once.
    txn_status: Box<[CachePadded<Mutex<ExecutionStatus>>]>,
    /// Per transaction: the transactions suspended until it finishes executing. Written by
    /// `add_dependency` (push, holding this lock while reading this txn's status) and
    /// `finish_execution` (drain, after setting `Executed`). Taken before any status lock.
    txn_dependency: Box<[CachePadded<Mutex<Vec<TxnIndex>>>]>,
    /// Metric: execution tasks handed out. `Relaxed`: a statistic, read after the workers join.
    executions: AtomicU64,
    /// Metric: validation tasks handed out. `Relaxed`, as above.
    validations: AtomicU64,
    /// Metric: successful `try_validation_abort`s. `Relaxed`, as above.
    aborts: AtomicU64,
    /// Metric: successful `add_dependency`s. `Relaxed`, as above.
    suspensions: AtomicU64,
    /// Whether `halt` was called (as opposed to a normal finish). Written by `halt`, read by
    /// `is_halted`; `Relaxed` because `done_marker` carries the synchronisation.
    halted: AtomicBool,
    /// First broken invariant detected; written once, read after the workers join.
    error: Mutex<Option<SchedulerError>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("block_size", &self.block_size)
            .field("execution_idx", &self.execution_idx.load(Ordering::Relaxed))
            .field("validation_idx", &self.validation_idx.load(Ordering::Relaxed))
            .field("num_active_tasks", &self.num_active_tasks.load(Ordering::Relaxed))
            .field("done", &self.done_marker.load(Ordering::Relaxed))
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler for a block of `block_size` transactions, all `ReadyToExecute(0)`.
    ///
    /// # Panics
    ///
    /// If `block_size` does not fit in a [`TxnIndex`].
    pub fn new(block_size: usize) -> Self {
        assert!(TxnIndex::try_from(block_size).is_ok(), "block too large");
        Self {
            block_size,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_cnt: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: CachePadded::new(AtomicUsize::new(0)),
            done_marker: CachePadded::new(AtomicBool::new(false)),
            txn_status: (0..block_size)
                .map(|_| CachePadded::new(Mutex::new(ExecutionStatus::ReadyToExecute(0))))
                .collect(),
            txn_dependency: (0..block_size)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            executions: AtomicU64::new(0),
            validations: AtomicU64::new(0),
            aborts: AtomicU64::new(0),
            suspensions: AtomicU64::new(0),
            halted: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    /// Number of transactions in the block.
    pub const fn block_size(&self) -> usize {
        self.block_size
    }

    /// Whether the block is done (every transaction executed and validated) or halted.
    pub fn done(&self) -> bool {
        // SeqCst: see the type docs (check_done's total order).
        self.done_marker.load(Ordering::SeqCst)
    }

    /// Stops the block: every worker's next [`next_task`](Self::next_task) returns
    /// [`SchedulerTask::Done`]. For errors (a caught panic, a database error); the result of
    /// the block must then be discarded.
    pub fn halt(&self) {
        self.halted.store(true, Ordering::Relaxed);
        // SeqCst: pairs with the loads in next_task()/done(); see the type docs.
        self.done_marker.store(true, Ordering::SeqCst);
    }

    /// Whether [`halt`](Self::halt) was called or an invariant broke.
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// The first broken invariant detected, if any. The scheduler halted when it found it; the
    /// engine should discard the parallel result and execute the block sequentially.
    pub fn invariant_error(&self) -> Option<SchedulerError> {
        lock(&self.error).clone()
    }

    /// Current status of `txn_idx` (for diagnostics and tests).
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn status(&self, txn_idx: TxnIndex) -> ExecutionStatus {
        *lock(&self.txn_status[txn_idx as usize])
    }

    /// A snapshot of the metric counters.
    pub fn counters(&self) -> SchedulerCounters {
        SchedulerCounters {
            executions: self.executions.load(Ordering::Relaxed),
            validations: self.validations.load(Ordering::Relaxed),
            aborts: self.aborts.load(Ordering::Relaxed),
            suspensions: self.suspensions.load(Ordering::Relaxed),
        }
    }

    /// Records a broken invariant and halts.
    fn fail(
        &self,
        operation: &'static str,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        status: Option<ExecutionStatus>,
    ) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        lock(&self.error).get_or_insert(SchedulerError::Invariant {
            operation,
            txn_idx,
            incarnation,
            status,
        });
        self.halt();
    }

    fn decrease_execution_idx(&self, target: usize) {
        // SeqCst: see the type docs (check_done's total order).
        self.execution_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn decrease_validation_idx(&self, target: usize) {
        // SeqCst: see the type docs (check_done's total order).
        self.validation_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn end_task(&self) {
        // SeqCst: see the type docs (check_done's total order).
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sets `done_marker` if nothing is left: both indices past the block, no task in flight,
    /// and no decrease during the check.
    fn check_done(&self) {
        // SeqCst everywhere: the paper's proof needs these loads ordered with the stores of
        // decrease_*_idx() and end_task() in one total order.
        let observed_cnt = self.decrease_cnt.load(Ordering::SeqCst);
        let execution_idx = self.execution_idx.load(Ordering::SeqCst);
        let validation_idx = self.validation_idx.load(Ordering::SeqCst);
        if execution_idx.min(validation_idx) >= self.block_size
            && self.num_active_tasks.load(Ordering::SeqCst) == 0
            && observed_cnt == self.decrease_cnt.load(Ordering::SeqCst)
        {
            self.done_marker.store(true, Ordering::SeqCst);
        }
    }

    /// `ReadyToExecute(i)` -> `Executing(i)`; returns `i`, or `None` if `txn_idx` is not ready
    /// (or out of the block). Does not touch `num_active_tasks`.
    fn try_incarnate(&self, txn_idx: usize) -> Option<Incarnation> {
        let status = self.txn_status.get(txn_idx)?;
        let mut status = lock(status);
        if let ExecutionStatus::ReadyToExecute(incarnation) = *status {
            *status = ExecutionStatus::Executing(incarnation);
            self.executions.fetch_add(1, Ordering::Relaxed);
            Some(incarnation)
        } else {
            None
        }
    }

    fn next_version_to_execute(&self) -> Option<Version> {
        if self.execution_idx.load(Ordering::SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let txn_idx = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        if let Some(incarnation) = self.try_incarnate(txn_idx) {
            return Some(Version::new(txn_idx as TxnIndex, incarnation));
        }
        self.end_task();
        None
    }

    fn next_version_to_validate(&self) -> Option<Version> {
        if self.validation_idx.load(Ordering::SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let txn_idx = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        if let Some(status) = self.txn_status.get(txn_idx) {
            if let ExecutionStatus::Executed(incarnation) = *lock(status) {
                self.validations.fetch_add(1, Ordering::Relaxed);
                return Some(Version::new(txn_idx as TxnIndex, incarnation));
            }
        }
        self.end_task();
        None
    }

    /// The next task for a worker: validation of the lowest unvalidated transaction if it is
    /// below the next one to execute, else execution. `Retry` when nothing is available now,
    /// `Done` when the block is finished or halted.
    pub fn next_task(&self) -> SchedulerTask {
        if self.done() {
            return SchedulerTask::Done;
        }
        let task = if self.validation_idx.load(Ordering::SeqCst)
            < self.execution_idx.load(Ordering::SeqCst)
        {
            self.next_version_to_validate().map(SchedulerTask::Validate)
        } else {
            self.next_version_to_execute().map(SchedulerTask::Execute)
        };
        task.unwrap_or_else(|| if self.done() { SchedulerTask::Done } else { SchedulerTask::Retry })
    }

    /// Called by the worker executing `txn_idx` when it read an estimate of
    /// `blocking_txn_idx < txn_idx`. Returns `true` if `txn_idx` is now `Suspended` on it:
    /// the worker must abandon the execution (record nothing, call no `finish_*`) and ask for
    /// a new task; the transaction is re-executed with incarnation + 1 once the blocking one
    /// finishes. Returns `false` if the blocking transaction has already finished executing:
    /// the worker should read again and go on.
    ///
    /// On a broken invariant (`blocking_txn_idx >= txn_idx`, out of range, or `txn_idx` not
    /// `Executing`) the scheduler halts and this returns `true` so the worker stops.
    pub fn add_dependency(&self, txn_idx: TxnIndex, blocking_txn_idx: TxnIndex) -> bool {
        if blocking_txn_idx >= txn_idx || txn_idx as usize >= self.block_size {
            self.fail("add_dependency", txn_idx, 0, None);
            return true;
        }
        // Lock order: dependency lock, then status locks (one at a time).
        let mut dependents = lock(&self.txn_dependency[blocking_txn_idx as usize]);
        if matches!(
            *lock(&self.txn_status[blocking_txn_idx as usize]),
            ExecutionStatus::Executed(_)
        ) {
            // finish_execution() set Executed before draining this list, so it may already
            // have drained it: do not wait.
            return false;
        }
        {
            let mut status = lock(&self.txn_status[txn_idx as usize]);
            let ExecutionStatus::Executing(incarnation) = *status else {
                let found = *status;
                drop(status);
                drop(dependents);
                self.fail("add_dependency", txn_idx, 0, Some(found));
                return true;
            };
            *status = ExecutionStatus::Suspended(incarnation);
        }
        dependents.push(txn_idx);
        drop(dependents);
        self.suspensions.fetch_add(1, Ordering::Relaxed);
        self.end_task();
        true
    }

    /// Called after `MvMemory::record` of incarnation `incarnation` of `txn_idx`, with the
    /// `wrote_new_location` it returned. Marks it `Executed`, resumes the transactions
    /// suspended on it, and returns a validation task for it when validation has already swept
    /// past it and it wrote no new location (the caller must run it); `None` otherwise.
    pub fn finish_execution(
        &self,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        wrote_new_location: bool,
    ) -> Option<SchedulerTask> {
        let idx = txn_idx as usize;
        {
            let Some(status) = self.txn_status.get(idx) else {
                self.fail("finish_execution", txn_idx, incarnation, None);
                return None;
            };
            let mut status = lock(status);
            if *status != ExecutionStatus::Executing(incarnation) {
                let found = *status;
                drop(status);
                self.fail("finish_execution", txn_idx, incarnation, Some(found));
                return None;
            }
            *status = ExecutionStatus::Executed(incarnation);
        }
        // Status lock released before the dependency lock (lock order).
        let dependents = std::mem::take(&mut *lock(&self.txn_dependency[idx]));
        self.resume_dependencies(&dependents);

        if self.validation_idx.load(Ordering::SeqCst) > idx {
            if wrote_new_location {
                // Higher transactions validated before this write existed: revalidate them
                // (and this one) through the normal sweep.
                self.decrease_validation_idx(idx);
            } else {
                // Only this one needs validating; the active task carries over to it.
                self.validations.fetch_add(1, Ordering::Relaxed);
                return Some(SchedulerTask::Validate(Version::new(txn_idx, incarnation)));
            }
        }
        self.end_task();
        None
    }

    /// `Suspended(i)` -> `ReadyToExecute(i + 1)` for each dependent, then lets execution
    /// sweep back to the lowest of them.
    fn resume_dependencies(&self, dependents: &[TxnIndex]) {
        for &dep in dependents {
            let mut status = lock(&self.txn_status[dep as usize]);
            match *status {
                ExecutionStatus::Suspended(incarnation) => {
                    *status = ExecutionStatus::ReadyToExecute(incarnation + 1);
                }
                found => {
                    drop(status);
                    self.fail("resume_dependencies", dep, 0, Some(found));
                }
            }
        }
        if let Some(&min) = dependents.iter().min() {
            self.decrease_execution_idx(min as usize);
        }
    }

    /// Called by a validator whose validation of incarnation `incarnation` of `txn_idx` failed.
    /// Returns `true` if this call aborted it (`Executed(i)` -> `Aborting(i)`): the caller must
    /// then `MvMemory::convert_writes_to_estimates(txn_idx)` and call
    /// [`finish_validation`](Self::finish_validation) with `aborted = true`. Returns `false` if
    /// the incarnation was already aborted (by another validator) or replaced.
    pub fn try_validation_abort(&self, txn_idx: TxnIndex, incarnation: Incarnation) -> bool {
        let Some(status) = self.txn_status.get(txn_idx as usize) else {
            self.fail("try_validation_abort", txn_idx, incarnation, None);
            return false;
        };
        let mut status = lock(status);
        if *status == ExecutionStatus::Executed(incarnation) {
            *status = ExecutionStatus::Aborting(incarnation);
            self.aborts.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Ends a validation task of `txn_idx`. With `aborted = true` (this worker's
    /// `try_validation_abort` succeeded and it converted the writes to estimates), the
    /// transaction becomes `ReadyToExecute(i + 1)`, every higher transaction is revalidated,
    /// and the re-execution may be returned to this worker directly.
    pub fn finish_validation(&self, txn_idx: TxnIndex, aborted: bool) -> Option<SchedulerTask> {
        let idx = txn_idx as usize;
        if aborted {
            {
                let Some(status) = self.txn_status.get(idx) else {
                    self.fail("finish_validation", txn_idx, 0, None);
                    return None;
                };
                let mut status = lock(status);
                let ExecutionStatus::Aborting(incarnation) = *status else {
                    let found = *status;
                    drop(status);
                    self.fail("finish_validation", txn_idx, 0, Some(found));
                    return None;
                };
                *status = ExecutionStatus::ReadyToExecute(incarnation + 1);
            }
            self.decrease_validation_idx(idx + 1);
            if self.execution_idx.load(Ordering::SeqCst) > idx {
                // The execution sweep is past it: re-execute it here, the active task carries
                // over. Fails only if a resume let another worker take it first.
                if let Some(incarnation) = self.try_incarnate(idx) {
                    return Some(SchedulerTask::Execute(Version::new(txn_idx, incarnation)));
                }
            }
        }
        self.end_task();
        None
    }
}
