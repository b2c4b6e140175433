//! The scheduler: counters, per-transaction statuses, dependencies and the rolling commit.

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

impl ExecutionStatus {
    /// The status as one word, for lock-free polling (kind in the top byte).
    const fn encode(self) -> u64 {
        let (kind, incarnation) = match self {
            Self::ReadyToExecute(i) => (0, i),
            Self::Executing(i) => (1, i),
            Self::Suspended(i) => (2, i),
            Self::Executed(i) => (3, i),
            Self::Aborting(i) => (4, i),
        };
        (kind << 56) | incarnation as u64
    }

    const fn is_executing_word(word: u64) -> bool {
        word >> 56 == 1
    }

    const fn is_executed_word(word: u64) -> bool {
        word >> 56 == 3
    }

    /// The status word with the settled bit (see [`TxState::settled`]).
    const fn encode_settled(self, settled: bool) -> u64 {
        self.encode() | ((settled as u64) << SETTLED_BIT)
    }

    /// Whether a status word says executed and settled: committable at the commit point.
    const fn is_committable_word(word: u64) -> bool {
        Self::is_executed_word(word) && word & (1 << SETTLED_BIT) != 0
    }

    /// Whether a status word says executed and not settled: to validate at the commit point.
    const fn needs_commit_check_word(word: u64) -> bool {
        Self::is_executed_word(word) && word & (1 << SETTLED_BIT) == 0
    }
}

/// The bit of the status word that mirrors [`TxState::settled`].
const SETTLED_BIT: u32 = 48;

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
    Validate {
        /// The incarnation to validate.
        version: Version,
        /// Every lower transaction is committed: if the validation succeeds, the transaction
        /// is committed too.
        at_commit: bool,
    },
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
    /// Incarnations suspended on a dependency (abandoned, to run again from scratch).
    pub suspensions: u64,
    /// Reads paused until the transaction they depend on finished executing (the execution
    /// went on; nothing was thrown away).
    pub waits: u64,
}

/// What the scheduler keeps per transaction, under its lock.
#[derive(Debug, Clone, Copy)]
struct TxState {
    status: ExecutionStatus,
    /// The current incarnation needs no more validation: it was handed out for execution, or
    /// validated successfully, when every lower transaction was committed.
    settled: bool,
    /// A validation of the current incarnation at the commit point has been handed out.
    commit_check_claimed: bool,
    /// Validations handed out (a metric, summed after the block).
    validations: u32,
}

/// Locks a mutex, ignoring poisoning: no scheduler code panics while holding a lock.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A transaction's state, padded to its own cache line, with its status mirrored in an atomic
/// word that waiting workers poll without taking the lock.
#[derive(Debug)]
struct TxSlot {
    state: Mutex<TxState>,
    status_word: AtomicU64,
    /// The transactions suspended until this one finishes executing. Lock order: this lock,
    /// then status locks (one at a time).
    dependents: Mutex<Vec<TxnIndex>>,
    /// Set (for good) by the first `add_dependency` on this transaction, before it checks the
    /// status: `finish_execution` takes the dependency lock only if it is set.
    has_dependents: AtomicBool,
}

impl Default for TxSlot {
    fn default() -> Self {
        let status = ExecutionStatus::ReadyToExecute(0);
        Self {
            state: Mutex::new(TxState {
                status,
                settled: false,
                commit_check_claimed: false,
                validations: 0,
            }),
            status_word: AtomicU64::new(status.encode()),
            dependents: Mutex::new(Vec::new()),
            has_dependents: AtomicBool::new(false),
        }
    }
}

impl TxSlot {
    /// Back to `ReadyToExecute(0)` for a new block, keeping the allocations.
    fn reset(&mut self) {
        let status = ExecutionStatus::ReadyToExecute(0);
        *self.state.get_mut().unwrap_or_else(PoisonError::into_inner) =
            TxState { status, settled: false, commit_check_claimed: false, validations: 0 };
        *self.status_word.get_mut() = status.encode();
        self.dependents.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        *self.has_dependents.get_mut() = false;
    }

    /// Sets the status (under the state lock) and its mirror. SeqCst: a worker that just made
    /// a transaction executed then reads `commit_idx`, while the committer that just moved
    /// `commit_idx` reads this word: one of the two must see the other (see `try_commit_from`).
    fn set(&self, state: &mut TxState, status: ExecutionStatus) {
        state.status = status;
        self.status_word.store(status.encode_settled(state.settled), Ordering::SeqCst);
    }
}

/// The collaborative Block-STM scheduler for one block, with a rolling commit. See the crate
/// docs.
///
/// The coordination counters (`execution_idx`, `validation_idx`, `commit_idx`) use `SeqCst`
/// where they decide hand-outs; each is `CachePadded` because every worker hits them.
pub struct Scheduler {
    /// Number of transactions in the block.
    block_size: usize,
    /// Next transaction to try to execute. Incremented by `next_task`; decreased (fetch_min)
    /// when dependents are resumed or a transaction aborts.
    execution_idx: CachePadded<AtomicUsize>,
    /// Next transaction to validate ahead of the commit point. Incremented by `next_task`;
    /// decreased by `finish_execution` (new location written) and by aborts.
    validation_idx: CachePadded<AtomicUsize>,
    /// Number of committed transactions: every transaction below it is final. Advanced one
    /// transaction at a time by compare-and-swap, by whichever worker finds the transaction at
    /// the commit point executed and settled.
    commit_idx: CachePadded<AtomicUsize>,
    /// Set once the block is committed or `halt` was called.
    done_marker: CachePadded<AtomicBool>,
    /// Whether `halt` was called (as opposed to a normal finish).
    halted: AtomicBool,
    /// Eager validations are handed out only this far above the commit point (closer ones
    /// are validated at the commit point anyway).
    eager_window: usize,
    /// Speculation window: executions are handed out only below `commit_idx + window`
    /// (`usize::MAX`: anywhere). A window of 1 is in-order mode: only the transaction at the
    /// commit point runs, so every execution is settled (no read set kept, no validation) and
    /// the other workers do the fold; for blocks that are effectively sequential (see
    /// [`Scheduler::set_in_order`]). A window of one transaction per worker is bounded
    /// speculation, for blocks whose speculation keeps failing ([`BOUNDED_ABORTS`]): each
    /// speculative transaction runs beside the commit point, so a read of a hot location can
    /// wait for the few lower transactions still executing and get their final value instead
    /// of a stale one.
    window: AtomicUsize,
    /// The bounded window (one transaction per worker).
    bounded_window: usize,
    /// Transactions handed out for execution before the sweep reaches them, in this order
    /// (see [`Scheduler::set_early`]).
    early: Vec<TxnIndex>,
    /// How many of `early` have been handed out (or tried).
    early_next: CachePadded<AtomicUsize>,
    /// Aborts at the commit point among the last commits, one bit per commit (newest lowest).
    /// Written at every commit: padded, away from the words every hand-out reads.
    recent_aborts: CachePadded<AtomicU64>,
    /// Whether repeated commit-point aborts bound the window ([`Scheduler::set_adaptive`]).
    adaptive: AtomicBool,
    /// Whether the worker that finishes a transaction runs its lowest dependent next
    /// ([`Scheduler::set_affinity`]).
    affinity: AtomicBool,
    txs: Box<[CachePadded<TxSlot>]>,
    aborts: AtomicU64,
    suspensions: AtomicU64,
    waits: AtomicU64,
    /// First broken invariant detected; written once, read after the workers join.
    error: Mutex<Option<SchedulerError>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("block_size", &self.block_size)
            .field("execution_idx", &self.execution_idx.load(Ordering::Relaxed))
            .field("validation_idx", &self.validation_idx.load(Ordering::Relaxed))
            .field("commit_idx", &self.commit_idx.load(Ordering::Relaxed))
            .field("done", &self.done_marker.load(Ordering::Relaxed))
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

/// Aborts at the commit point, among the last 64 commits, above which a block's speculation is
/// bounded to one transaction per worker above the commit point.
pub const BOUNDED_ABORTS: u32 = 16;

/// An unbounded speculation window.
const UNBOUNDED: usize = usize::MAX;

/// Incarnations of a transaction that may run speculatively, above the commit point. Later
/// ones run only at the commit point, where every lower transaction is committed, so they read
/// final values and are never aborted: no transaction executes more than
/// `MAX_SPECULATIVE_INCARNATIONS + 1` times, however hostile the block.
pub const MAX_SPECULATIVE_INCARNATIONS: Incarnation = 3;

/// How long a paused read spins before it starts yielding the core.
const SPINS_BEFORE_YIELD: u32 = 256;

impl Scheduler {
    /// A scheduler for a block of `block_size` transactions, all `ReadyToExecute(0)`, run by
    /// one worker per core: eager validations are handed out only two transactions above the
    /// commit point or further (see [`Scheduler::with_workers`]).
    ///
    /// # Panics
    ///
    /// If `block_size` does not fit in a [`TxnIndex`].
    pub fn new(block_size: usize) -> Self {
        Self::with_workers(block_size, 2)
    }

    /// A scheduler for `workers` workers: a transaction less than `workers` above the commit
    /// point is validated when the commit point reaches it (once), not eagerly as well.
    ///
    /// # Panics
    ///
    /// If `block_size` does not fit in a [`TxnIndex`].
    pub fn with_workers(block_size: usize, workers: usize) -> Self {
        assert!(TxnIndex::try_from(block_size).is_ok(), "block too large");
        Self {
            block_size,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            commit_idx: CachePadded::new(AtomicUsize::new(0)),
            done_marker: CachePadded::new(AtomicBool::new(block_size == 0)),
            halted: AtomicBool::new(false),
            eager_window: workers.max(1),
            window: AtomicUsize::new(if workers <= 1 { 1 } else { UNBOUNDED }),
            bounded_window: workers.max(1),
            early: Vec::new(),
            early_next: CachePadded::new(AtomicUsize::new(0)),
            recent_aborts: CachePadded::new(AtomicU64::new(0)),
            adaptive: AtomicBool::new(true),
            affinity: AtomicBool::new(true),
            txs: (0..block_size).map(|_| CachePadded::new(TxSlot::default())).collect(),
            aborts: AtomicU64::new(0),
            suspensions: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    /// Makes this scheduler one for a new block of `block_size` transactions on `workers`
    /// workers, keeping its per-transaction allocations (the block's transactions then start in
    /// memory the previous block used rather than in fresh pages).
    ///
    /// # Panics
    ///
    /// If `block_size` does not fit in a [`TxnIndex`].
    pub fn reset(&mut self, block_size: usize, workers: usize) {
        assert!(TxnIndex::try_from(block_size).is_ok(), "block too large");
        let mut txs = std::mem::take(&mut self.txs).into_vec();
        txs.truncate(block_size);
        for slot in &mut txs {
            slot.reset();
        }
        txs.resize_with(block_size, || CachePadded::new(TxSlot::default()));
        let error = std::mem::take(&mut self.error);
        drop(error);
        *self = Self { txs: txs.into_boxed_slice(), ..Self::with_workers(0, workers) };
        self.block_size = block_size;
        *self.done_marker.get_mut() = block_size == 0;
    }

    /// Number of transactions in the block.
    pub const fn block_size(&self) -> usize {
        self.block_size
    }

    /// Whether the incarnation of `txn_idx` being executed was handed out with every lower
    /// transaction committed: it will never be validated, so its read set need not be kept.
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn executing_settled(&self, txn_idx: TxnIndex) -> bool {
        let word = self.txs[txn_idx as usize].status_word.load(Ordering::Acquire);
        ExecutionStatus::is_executing_word(word) && word & (1 << SETTLED_BIT) != 0
    }

    /// Number of committed transactions (every transaction below it is final).
    pub fn commit_idx(&self) -> usize {
        self.commit_idx.load(Ordering::Acquire)
    }

    /// Whether the block is done (every transaction committed) or halted.
    pub fn done(&self) -> bool {
        self.done_marker.load(Ordering::Acquire)
    }

    /// Stops the block: every worker's next [`next_task`](Self::next_task) returns
    /// [`SchedulerTask::Done`] and paused reads give up. For errors (a caught panic); the
    /// result of the block must then be discarded.
    pub fn halt(&self) {
        self.halted.store(true, Ordering::Relaxed);
        self.done_marker.store(true, Ordering::Release);
    }

    /// Whether [`halt`](Self::halt) was called or an invariant broke.
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// The first broken invariant detected, if any. The scheduler halted when it found it; the
    /// engine should discard the parallel result.
    pub fn invariant_error(&self) -> Option<SchedulerError> {
        lock(&self.error).clone()
    }

    /// Current status of `txn_idx` (for diagnostics and tests).
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn status(&self, txn_idx: TxnIndex) -> ExecutionStatus {
        lock(&self.txs[txn_idx as usize].state).status
    }

    /// The metric counters (exact once the workers have stopped). Executions and validations
    /// are read off each transaction's state (its incarnation number, its validation count)
    /// rather than counted on shared words on the hot path.
    pub fn counters(&self) -> SchedulerCounters {
        let (mut executions, mut validations) = (0u64, 0u64);
        for slot in self.txs.iter() {
            let state = lock(&slot.state);
            executions += u64::from(match state.status {
                ExecutionStatus::ReadyToExecute(i) => i,
                ExecutionStatus::Executing(i)
                | ExecutionStatus::Suspended(i)
                | ExecutionStatus::Executed(i)
                | ExecutionStatus::Aborting(i) => i + 1,
            });
            validations += u64::from(state.validations);
        }
        SchedulerCounters {
            executions,
            validations,
            aborts: self.aborts.load(Ordering::Relaxed),
            suspensions: self.suspensions.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
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

    /// `ReadyToExecute(i)` -> `Executing(i)`; returns `i`, or `None` if `txn_idx` is not ready
    /// (or out of the block).
    fn try_incarnate(&self, txn_idx: usize) -> Option<Incarnation> {
        let slot = self.txs.get(txn_idx)?;
        // Lock-free first: the state lock of a transaction another worker is executing is not
        // to be fought over by idle workers.
        if slot.status_word.load(Ordering::Acquire) >> 56 != 0 {
            return None;
        }
        let mut state = lock(&slot.state);
        let ExecutionStatus::ReadyToExecute(incarnation) = state.status else { return None };
        let commit_idx = self.commit_idx.load(Ordering::SeqCst);
        // Out of speculative incarnations: only at the commit point (which hands it out as it
        // arrives, see `try_commit_from`; read under the lock, so one of the two sees the other).
        if incarnation >= MAX_SPECULATIVE_INCARNATIONS && commit_idx < txn_idx {
            return None;
        }
        // Handed out with every lower transaction committed: it reads only final values.
        state.settled = commit_idx >= txn_idx;
        state.commit_check_claimed = false;
        slot.set(&mut state, ExecutionStatus::Executing(incarnation));
        Some(incarnation)
    }

    /// Puts the block in order (a speculation window of one transaction) or back to unbounded
    /// speculation: see the `window` field. The engine does it up front for a block made of one
    /// sender's chain of transactions.
    pub fn set_in_order(&self, in_order: bool) {
        self.window.store(if in_order { 1 } else { UNBOUNDED }, Ordering::SeqCst);
    }

    /// Hands these transactions out for execution first, in this order, before the execution
    /// sweep reaches them: a long transaction near the end of the block then runs beside the
    /// others instead of after them, when the rest of the block is done and the other workers
    /// have nothing left to do. Only in unbounded speculation; an early execution is validated
    /// like any other (re-executed if a lower transaction wrote what it read).
    ///
    /// # Panics
    ///
    /// If a transaction is out of the block.
    pub fn set_early(&mut self, txs: &[TxnIndex]) {
        assert!(
            txs.iter().all(|&i| (i as usize) < self.block_size),
            "early transaction out of the block"
        );
        self.early.clear();
        self.early.extend_from_slice(txs);
        *self.early_next.get_mut() = 0;
    }

    /// Whether the block runs in order (see [`Scheduler::set_in_order`]).
    pub fn is_in_order(&self) -> bool {
        self.window.load(Ordering::Relaxed) == 1
    }

    /// Whether repeated commit-point aborts narrow the speculation window (the default); off
    /// only to measure what the bounded window is worth (`velarium bench --no-isolation`).
    pub fn set_adaptive(&self, adaptive: bool) {
        self.adaptive.store(adaptive, Ordering::Relaxed);
    }

    /// Whether the worker that finishes executing a transaction goes on with the lowest
    /// transaction suspended on it (the default), rather than leaving it to whichever worker
    /// asks next; off only to measure what it is worth (`velarium bench --no-isolation`).
    ///
    /// A chain of transactions on one hot location (deposits into one contract that counts
    /// them, one sender's transactions) then runs link after link on the worker that ran the
    /// link before, with the location in its cache, while the other workers execute the rest of
    /// the block; handed to whoever asked first, the links went back and forth between the
    /// workers, and each crossing moved the location's cache lines and the link's outcome
    /// between cores.
    pub fn set_affinity(&self, affinity: bool) {
        self.affinity.store(affinity, Ordering::Relaxed);
    }

    fn next_version_to_execute(&self) -> Option<Version> {
        let window = self.window.load(Ordering::Relaxed);
        if window == 1 {
            // Only the commit point, which then reads final values and commits right away.
            let txn_idx = self.commit_idx.load(Ordering::SeqCst);
            self.execution_idx.fetch_max(txn_idx + 1, Ordering::SeqCst);
            return self
                .try_incarnate(txn_idx)
                .map(|incarnation| Version::new(txn_idx as TxnIndex, incarnation));
        }
        if window != UNBOUNDED {
            // Bounded: the commit point first (it may be waiting for a re-execution), then the
            // next transaction if it is inside the window. A compare-and-swap, so the index
            // never runs past the window.
            let commit_idx = self.commit_idx.load(Ordering::SeqCst);
            if let Some(incarnation) = self.try_incarnate(commit_idx) {
                self.execution_idx.fetch_max(commit_idx + 1, Ordering::SeqCst);
                return Some(Version::new(commit_idx as TxnIndex, incarnation));
            }
            let end = commit_idx.saturating_add(window).min(self.block_size);
            let mut txn_idx = self.execution_idx.load(Ordering::SeqCst);
            loop {
                if txn_idx >= end {
                    return None;
                }
                match self.execution_idx.compare_exchange(
                    txn_idx,
                    txn_idx + 1,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => break,
                    Err(current) => txn_idx = current,
                }
            }
            return self
                .try_incarnate(txn_idx)
                .map(|incarnation| Version::new(txn_idx as TxnIndex, incarnation));
        }
        if self.early_next.load(Ordering::Relaxed) < self.early.len() {
            let next = self.early_next.fetch_add(1, Ordering::Relaxed);
            if let Some(&txn_idx) = self.early.get(next) {
                if let Some(incarnation) = self.try_incarnate(txn_idx as usize) {
                    return Some(Version::new(txn_idx, incarnation));
                }
            }
        }
        if self.execution_idx.load(Ordering::SeqCst) >= self.block_size {
            return None;
        }
        let txn_idx = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        self.try_incarnate(txn_idx)
            .map(|incarnation| Version::new(txn_idx as TxnIndex, incarnation))
    }

    fn next_version_to_validate(&self) -> Option<Version> {
        let commit_idx = self.commit_idx.load(Ordering::SeqCst);
        // Below the commit point everything is final; near it, the commit point validates.
        let floor = commit_idx + self.eager_window;
        // Raised only when below the floor: a read-modify-write takes the word from the other
        // workers' caches even when it changes nothing. (A sweep lowered meanwhile validates
        // a little more than it has to, nothing else.)
        let mut current = self.validation_idx.load(Ordering::SeqCst);
        if current < floor {
            self.validation_idx.fetch_max(floor, Ordering::SeqCst);
            current = self.validation_idx.load(Ordering::SeqCst);
        }
        if current >= self.block_size {
            return None;
        }
        let txn_idx = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        let slot = self.txs.get(txn_idx)?;
        if !ExecutionStatus::needs_commit_check_word(slot.status_word.load(Ordering::Acquire)) {
            return None;
        }
        let mut state = lock(&slot.state);
        match state.status {
            ExecutionStatus::Executed(incarnation) if !state.settled => {
                state.validations += 1;
                Some(Version::new(txn_idx as TxnIndex, incarnation))
            }
            _ => None,
        }
    }

    /// Claims the validation of the transaction at the commit point, if it has executed and
    /// is not settled: that validation decides whether it commits.
    fn claim_commit_check(&self) -> Option<SchedulerTask> {
        let txn_idx = self.commit_idx.load(Ordering::SeqCst);
        let slot = self.txs.get(txn_idx)?;
        if !ExecutionStatus::needs_commit_check_word(slot.status_word.load(Ordering::SeqCst)) {
            return None;
        }
        let mut state = lock(&slot.state);
        match state.status {
            ExecutionStatus::Executed(incarnation)
                if !state.settled && !state.commit_check_claimed =>
            {
                state.commit_check_claimed = true;
                state.validations += 1;
                let version = Version::new(txn_idx as TxnIndex, incarnation);
                Some(SchedulerTask::Validate { version, at_commit: true })
            }
            _ => None,
        }
    }

    /// The next task for a worker: the commit point's validation first, then an eager
    /// validation of the lowest unvalidated transaction if it is below the next one to
    /// execute, else an execution. `Retry` when nothing is available now, `Done` when the block
    /// is committed or halted.
    pub fn next_task(&self) -> SchedulerTask {
        if self.done() {
            return SchedulerTask::Done;
        }
        if let Some(task) = self.claim_commit_check() {
            return task;
        }
        if self.validation_idx.load(Ordering::SeqCst) < self.execution_idx.load(Ordering::SeqCst) {
            if let Some(version) = self.next_version_to_validate() {
                return SchedulerTask::Validate { version, at_commit: false };
            }
        }
        if let Some(version) = self.next_version_to_execute() {
            return SchedulerTask::Execute(version);
        }
        if self.done() {
            SchedulerTask::Done
        } else {
            SchedulerTask::Retry
        }
    }

    /// Keeps the last 64 commit-point outcomes (aborted or not) and bounds speculation when
    /// more than [`BOUNDED_ABORTS`] of them aborted.
    fn note_commit_abort(&self, aborted: bool) {
        let old = self.recent_aborts.load(Ordering::Relaxed);
        let bits = (old << 1) | u64::from(aborted);
        if bits != old {
            self.recent_aborts.store(bits, Ordering::Relaxed);
        }
        if aborted && bits.count_ones() > BOUNDED_ABORTS && self.adaptive.load(Ordering::Relaxed) {
            self.window.fetch_min(self.bounded_window, Ordering::SeqCst);
        }
    }

    /// Advances the commit point over every settled, executed transaction from `txn_idx` on
    /// (a no-op unless `txn_idx` is the commit point), then claims the new commit point's
    /// validation if it needs one.
    ///
    /// Lock-free: `commit_idx` moves by compare-and-swap, so a transaction is committed once
    /// however many workers find it committable. A transaction becoming executed (status word
    /// stored, then `commit_idx` read) and the commit point reaching it (`commit_idx` swapped,
    /// then its word read) are all SeqCst, so at least one of the two workers sees the other
    /// and commits or claims it.
    fn try_commit_from(&self, mut txn_idx: usize) -> Option<SchedulerTask> {
        while txn_idx < self.block_size {
            let word = self.txs[txn_idx].status_word.load(Ordering::SeqCst);
            if !ExecutionStatus::is_committable_word(word)
                || self
                    .commit_idx
                    .compare_exchange(txn_idx, txn_idx + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                break;
            }
            txn_idx += 1;
            self.note_commit_abort(false);
        }
        let commit_idx = self.commit_idx.load(Ordering::SeqCst);
        if commit_idx >= self.block_size {
            self.done_marker.store(true, Ordering::Release);
            return None;
        }
        if let Some(task) = self.claim_commit_check() {
            return Some(task);
        }
        // The worker that just committed goes on with the new commit point: in order, the next
        // transaction (it has the block's hot data in its cache, and no idle worker has to
        // notice first); otherwise a transaction out of speculative incarnations, which the
        // sweep passed by (see [`MAX_SPECULATIVE_INCARNATIONS`]). One that becomes so only
        // after this load is handed out by whoever makes it ready (an abort, a resume), which
        // then sees the commit point at it.
        let in_order = self.window.load(Ordering::Relaxed) == 1;
        let word = self.txs[commit_idx].status_word.load(Ordering::SeqCst);
        let deferred = word >> 56 == 0 && word as u32 >= MAX_SPECULATIVE_INCARNATIONS;
        if in_order || deferred {
            // Everything below it is committed: the sweep need not come back to it.
            self.execution_idx.fetch_max(commit_idx + 1, Ordering::SeqCst);
            if let Some(incarnation) = self.try_incarnate(commit_idx) {
                return Some(SchedulerTask::Execute(Version::new(
                    commit_idx as TxnIndex,
                    incarnation,
                )));
            }
        }
        None
    }

    /// Called by the worker executing `txn_idx` when it read an estimate of
    /// `blocking_txn_idx < txn_idx` and cannot wait for it. Returns `true` if `txn_idx` is now
    /// `Suspended` on it: the worker must abandon the execution (record nothing, call no
    /// `finish_*`); the transaction is re-executed with incarnation + 1 once the blocking one
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
        let blocking = &self.txs[blocking_txn_idx as usize];
        // Lock order: dependency lock, then status locks (one at a time).
        let mut dependents = lock(&blocking.dependents);
        // Before reading the status (SeqCst, pairs with `finish_execution`): either it sees the
        // status executed, or `finish_execution` sees this flag and drains the list.
        blocking.has_dependents.store(true, Ordering::SeqCst);
        if matches!(lock(&blocking.state).status, ExecutionStatus::Executed(_)) {
            // finish_execution() set Executed before draining this list, so it may already
            // have drained it: do not wait.
            return false;
        }
        {
            let slot = &self.txs[txn_idx as usize];
            let mut state = lock(&slot.state);
            let ExecutionStatus::Executing(incarnation) = state.status else {
                let found = state.status;
                drop(state);
                drop(dependents);
                self.fail("add_dependency", txn_idx, 0, Some(found));
                return true;
            };
            slot.set(&mut state, ExecutionStatus::Suspended(incarnation));
        }
        dependents.push(txn_idx);
        drop(dependents);
        self.suspensions.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Called by the worker executing `txn_idx` when a read met an estimate of
    /// `blocking_txn_idx`: pauses the read while another worker is executing the blocking
    /// transaction (the execution goes on afterwards, nothing is thrown away), else suspends
    /// `txn_idx` on it ([`add_dependency`](Self::add_dependency)).
    ///
    /// Returns `true` when the blocking transaction has finished executing: read again.
    /// Returns `false` when `txn_idx` was suspended (or the block halted): abandon the
    /// execution.
    ///
    /// Waiting only on a transaction that is being executed cannot deadlock: a worker only ever
    /// waits for a lower transaction that another worker is running, and the lowest running
    /// transaction waits for nobody.
    pub fn wait_for(&self, txn_idx: TxnIndex, blocking_txn_idx: TxnIndex) -> bool {
        let Some(blocking) = self.txs.get(blocking_txn_idx as usize) else {
            self.fail("wait_for", txn_idx, 0, None);
            return false;
        };
        let mut spins = 0u32;
        loop {
            if self.done() {
                return false;
            }
            let word = blocking.status_word.load(Ordering::Acquire);
            if ExecutionStatus::is_executed_word(word) {
                if spins > 0 {
                    self.waits.fetch_add(1, Ordering::Relaxed);
                }
                return true;
            }
            if !ExecutionStatus::is_executing_word(word) || blocking_txn_idx >= txn_idx {
                return !self.add_dependency(txn_idx, blocking_txn_idx);
            }
            pause(&mut spins);
        }
    }

    /// The highest transaction below `txn_idx` (and at or above both the commit point and
    /// `floor`) that is being executed, if any.
    pub fn highest_lower_executing(&self, floor: TxnIndex, txn_idx: TxnIndex) -> Option<TxnIndex> {
        let from = self.commit_idx.load(Ordering::Acquire).max(floor as usize);
        (from..(txn_idx as usize).min(self.block_size))
            .rev()
            .find(|&i| {
                ExecutionStatus::is_executing_word(self.txs[i].status_word.load(Ordering::Acquire))
            })
            .map(|i| i as TxnIndex)
    }

    /// Pauses the worker executing `txn_idx` while a lower transaction that is not committed
    /// yet, and at or above `floor`, is being executed by another worker: for a read of a
    /// location that (almost) every transaction writes, such as the beneficiary's balance or a
    /// hot counter, reading before those writes are in only leads to an abort. Lower
    /// transactions that nobody is executing are not waited for (the read stays speculative),
    /// nor those below `floor`: a read that found the value of transaction `v` waits only for
    /// those above `v`, as nothing below it can change what the read gets.
    ///
    /// Returns whether there was any such transaction (the caller's reads may be stale).
    pub fn wait_for_lower_executions(&self, floor: TxnIndex, txn_idx: TxnIndex) -> bool {
        let mut spins = 0u32;
        let mut found = false;
        while !self.done() {
            let Some(executing) = self.highest_lower_executing(floor, txn_idx) else { break };
            found = true;
            // Wait for that one, then look again (a lower one may still be running).
            let word = &self.txs[executing as usize].status_word;
            while !self.done() && ExecutionStatus::is_executing_word(word.load(Ordering::Acquire)) {
                pause(&mut spins);
            }
        }
        if spins > 0 {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Called after `MvMemory::record` of incarnation `incarnation` of `txn_idx`, with the
    /// `wrote_new_location` it returned. Marks it `Executed`, resumes the transactions
    /// suspended on it, commits what it can, and returns the next validation this worker should
    /// run (the commit point's, or this transaction's own), if any.
    pub fn finish_execution(
        &self,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        wrote_new_location: bool,
    ) -> Option<SchedulerTask> {
        let idx = txn_idx as usize;
        let Some(slot) = self.txs.get(idx) else {
            self.fail("finish_execution", txn_idx, incarnation, None);
            return None;
        };
        let settled = {
            let mut state = lock(&slot.state);
            if state.status != ExecutionStatus::Executing(incarnation) {
                let found = state.status;
                drop(state);
                self.fail("finish_execution", txn_idx, incarnation, Some(found));
                return None;
            }
            slot.set(&mut state, ExecutionStatus::Executed(incarnation));
            state.settled
        };
        // Status lock released before the dependency lock (lock order).
        let resumed = if slot.has_dependents.load(Ordering::SeqCst) {
            let dependents = std::mem::take(&mut *lock(&slot.dependents));
            self.resume_dependencies(&dependents)
        } else {
            None
        };
        if wrote_new_location && self.validation_idx.load(Ordering::SeqCst) > idx {
            // Higher transactions validated before this write existed: revalidate them.
            self.validation_idx.fetch_min(idx, Ordering::SeqCst);
        }
        let task = self.follow_up_of_execution(idx, txn_idx, incarnation, settled);
        match resumed {
            // Nothing else to do: this worker runs the lowest dependent itself (see
            // `set_affinity`), unless another worker took it in the meantime.
            Some(dep) if task.is_none() && self.affinity.load(Ordering::Relaxed) => {
                if let Some(incarnation) = self.try_incarnate(dep as usize) {
                    return Some(SchedulerTask::Execute(Version::new(dep, incarnation)));
                }
                self.execution_idx.fetch_min(dep as usize, Ordering::SeqCst);
                None
            }
            Some(dep) => {
                self.execution_idx.fetch_min(dep as usize, Ordering::SeqCst);
                task
            }
            None => task,
        }
    }

    /// What the worker that just finished executing `txn_idx` does next, if anything: the
    /// commit, or a validation (at the commit point, or eager).
    fn follow_up_of_execution(
        &self,
        idx: usize,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        settled: bool,
    ) -> Option<SchedulerTask> {
        if settled {
            return self.try_commit_from(idx);
        }
        if self.commit_idx.load(Ordering::SeqCst) == idx {
            // At the commit point: its validation there decides.
            return self.claim_commit_check();
        }
        // Validate it right away if the sweep is past it and it is far enough above the commit
        // point (closer, the commit point's validation comes soon and suffices).
        let far = idx >= self.commit_idx.load(Ordering::SeqCst) + self.eager_window;
        if far && self.validation_idx.load(Ordering::SeqCst) > idx {
            lock(&self.txs[idx].state).validations += 1;
            let version = Version::new(txn_idx, incarnation);
            return Some(SchedulerTask::Validate { version, at_commit: false });
        }
        None
    }

    /// `Suspended(i)` -> `ReadyToExecute(i + 1)` for each dependent, then lets execution
    /// sweep back to the lowest of them but one: the lowest, returned, is left to the caller
    /// (to run it, or to send the sweep back to it).
    fn resume_dependencies(&self, dependents: &[TxnIndex]) -> Option<TxnIndex> {
        for &dep in dependents {
            let slot = &self.txs[dep as usize];
            let mut state = lock(&slot.state);
            match state.status {
                ExecutionStatus::Suspended(incarnation) => {
                    slot.set(&mut state, ExecutionStatus::ReadyToExecute(incarnation + 1));
                }
                found => {
                    drop(state);
                    self.fail("resume_dependencies", dep, 0, Some(found));
                }
            }
        }
        let lowest = *dependents.iter().min()?;
        if let Some(&next) = dependents.iter().filter(|&&d| d != lowest).min() {
            self.execution_idx.fetch_min(next as usize, Ordering::SeqCst);
        }
        Some(lowest)
    }

    /// Called by a validator whose validation of incarnation `incarnation` of `txn_idx` failed.
    /// Returns `true` if this call aborted it (`Executed(i)` -> `Aborting(i)`): the caller must
    /// then `MvMemory::convert_writes_to_estimates(txn_idx)` and call
    /// [`finish_validation`](Self::finish_validation) with `aborted = true`. Returns `false` if
    /// the incarnation was already aborted, replaced, or committed.
    pub fn try_validation_abort(&self, txn_idx: TxnIndex, incarnation: Incarnation) -> bool {
        let Some(slot) = self.txs.get(txn_idx as usize) else {
            self.fail("try_validation_abort", txn_idx, incarnation, None);
            return false;
        };
        let mut state = lock(&slot.state);
        // A settled transaction is valid for good (and may be committed already).
        if state.status == ExecutionStatus::Executed(incarnation) && !state.settled {
            slot.set(&mut state, ExecutionStatus::Aborting(incarnation));
            self.aborts.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Ends a validation task of `version`. If it succeeded at the commit point, the
    /// transaction is committed. With `aborted = true` (this worker's `try_validation_abort`
    /// succeeded and it converted the writes to estimates), the transaction becomes
    /// `ReadyToExecute(i + 1)`, every higher transaction is revalidated, and the re-execution
    /// may be returned to this worker directly.
    pub fn finish_validation(
        &self,
        version: Version,
        at_commit: bool,
        aborted: bool,
    ) -> Option<SchedulerTask> {
        let idx = version.txn_idx as usize;
        let Some(slot) = self.txs.get(idx) else {
            self.fail("finish_validation", version.txn_idx, version.incarnation, None);
            return None;
        };
        if !aborted {
            if at_commit {
                let mut state = lock(&slot.state);
                if state.status == ExecutionStatus::Executed(version.incarnation) {
                    state.settled = true;
                    let status = state.status;
                    slot.set(&mut state, status);
                }
                drop(state);
                return self.try_commit_from(idx);
            }
            return None;
        }
        if at_commit {
            self.note_commit_abort(true);
        }
        {
            let mut state = lock(&slot.state);
            let ExecutionStatus::Aborting(incarnation) = state.status else {
                let found = state.status;
                drop(state);
                self.fail("finish_validation", version.txn_idx, version.incarnation, Some(found));
                return None;
            };
            state.settled = false;
            state.commit_check_claimed = false;
            slot.set(&mut state, ExecutionStatus::ReadyToExecute(incarnation + 1));
        }
        self.validation_idx.fetch_min(idx + 1, Ordering::SeqCst);
        if self.execution_idx.load(Ordering::SeqCst) > idx {
            // The execution sweep is past it: re-execute it here. Fails only if a resume let
            // another worker take it first.
            if let Some(incarnation) = self.try_incarnate(idx) {
                return Some(SchedulerTask::Execute(Version::new(version.txn_idx, incarnation)));
            }
        } else {
            self.execution_idx.fetch_min(idx, Ordering::SeqCst);
        }
        None
    }
}

/// One round of waiting: spin a while, then give the core away (on an oversubscribed machine
/// spinning would starve the very worker being waited for).
fn pause(spins: &mut u32) {
    velarium_numa_runtime::service();
    *spins = spins.saturating_add(1);
    if *spins < SPINS_BEFORE_YIELD {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}
