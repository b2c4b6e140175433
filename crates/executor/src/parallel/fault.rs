//! Engine faults: the parallel engine itself failed (not the block).
//!
//! A fault never produces a result: [`crate::Engine`] discards the parallel attempt, counts and
//! logs the fault, and re-executes the block with the sequential oracle, so the caller still gets
//! exactly the oracle's output (or its error). Tests assert that no fault happened
//! ([`crate::ParallelStats::fault`], [`engine_faults`]).

use alloy_primitives::Address;
use std::sync::atomic::{AtomicU64, Ordering};
use velarium_primitives::TxnIndex;

/// Why the parallel engine gave up on a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineFault {
    /// A worker panicked.
    #[error("worker panicked: {0}")]
    WorkerPanic(String),
    /// The scheduler detected a broken invariant.
    #[error("scheduler invariant: {0}")]
    Scheduler(#[from] velarium_scheduler::SchedulerError),
    /// The scheduler stopped before the block was done.
    #[error("scheduler halted before the block was done")]
    Halted,
    /// A transaction finished the block without a final outcome.
    #[error("transaction {0} has no outcome")]
    MissingOutcome(TxnIndex),
    /// A commit shard produced no result.
    #[error("a commit shard produced no result")]
    ShardMissing,
    /// The post-execution changes loaded an account a commit shard owns.
    #[error("post-execution changes read account {0}, which the parallel commit owned")]
    StaleMainAccount(Address),
    /// An internal invariant of the engine broke.
    #[error("engine invariant: {0}")]
    Invariant(&'static str),
    /// The worker threads could not be started.
    #[error("starting {threads} workers: {reason}")]
    PoolStart {
        /// Requested workers.
        threads: usize,
        /// The operating system's answer.
        reason: String,
    },
}

/// Faults since the process started, over all blocks.
static FAULTS: AtomicU64 = AtomicU64::new(0);

/// Counts and logs a fault (the block is then re-executed by the oracle).
pub(crate) fn record(fault: &EngineFault, block: u64) {
    FAULTS.fetch_add(1, Ordering::Relaxed);
    eprintln!(
        "warning: parallel engine fault on block {block} ({fault}); re-executed sequentially"
    );
}

/// Engine faults so far in this process (each one re-executed its block on the oracle).
pub fn engine_faults() -> u64 {
    FAULTS.load(Ordering::Relaxed)
}
