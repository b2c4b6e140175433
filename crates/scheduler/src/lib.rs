//! Collaborative scheduler of Block-STM.
//!
//! Block-STM (Gelashvili et al., "Block-STM: Scaling Blockchain Execution by Turning Ordering
//! Curse to a Performance Blessing", 2022) executes the transactions of a block optimistically
//! in parallel against a multi-version memory (`velarium-mvmemory`) and validates every
//! execution afterwards. This crate is the *collaborative scheduler*: a lock-free-on-the-fast-path
//! set of counters and per-transaction statuses from which every worker thread pulls its next
//! task. It knows nothing about EVM state; the engine (`velarium-executor`) drives it.
//!
//! Pipeline: `primitives` -> `mvmemory` -> `scheduler` -> `executor`.
//!
//! # Algorithm
//!
//! Two indices sweep the block: `execution_idx` (next transaction to try to execute) and
//! `validation_idx` (next transaction to validate ahead of the commit point); a third,
//! `commit_idx`, counts the committed transactions, every one of them final.
//! [`Scheduler::next_task`] hands out, in this order: the validation of the transaction at the
//! commit point if it executed without being settled (see below); an eager validation when
//! `validation_idx < execution_idx`; an execution.
//!
//! **Rolling commit.** A transaction is *settled* when its current incarnation either was
//! handed out for execution while every lower transaction was committed (so it read only
//! final values and needs no validation at all), or passed a validation handed out while every
//! lower transaction was committed. The transaction at the commit point is committed as soon
//! as it is executed and settled, and the commit point moves on. Correctness rests on this
//! rule alone: a committed transaction read exactly what sequential execution would have given
//! it. On one worker every execution starts at the commit point, so nothing is ever validated;
//! on several, each transaction is validated about once, when the commit point reaches it.
//!
//! **Early conflict detection.** The eager validations only find stale reads sooner, so that
//! re-executions start before the commit point gets there:
//!
//! 1. When a transaction is aborted by a failed validation, `validation_idx` drops to
//!    `txn_idx + 1` and the transaction is re-executed with incarnation + 1 (directly by the
//!    aborting worker when possible).
//! 2. When an execution writes a location its previous incarnation did not
//!    (`wrote_new_location`), `validation_idx` drops to `txn_idx`.
//! 3. Transactions less than one worker count above the commit point are not validated eagerly:
//!    the commit point will validate them soon, once.
//!
//! **Dependencies.** When a read meets an `ESTIMATE` of a lower transaction that another worker
//! is executing, the read pauses until that execution finishes and then goes on
//! ([`Scheduler::wait_for`]): nothing is thrown away. If nobody is executing it, the reader is
//! *suspended* ([`Scheduler::add_dependency`]): its execution is abandoned, and it becomes ready
//! with incarnation + 1 when the blocking transaction finishes executing. For a location that
//! (almost) every transaction writes, the engine can also pause a read until no lower
//! uncommitted transaction is running ([`Scheduler::wait_for_lower_executions`]), instead of
//! reading a value that is about to change; or suspend the reader on the closest lower
//! transaction being executed ([`Scheduler::highest_lower_executing`]), so that a chain of
//! read-modify-writes of a hot location runs link by link while the worker does other work.
//! Both look only above the transaction whose value the read found (nothing below it can change
//! what the read gets), so chains on two locations interleaved in one block stay apart. The
//! worker that finishes a transaction runs the lowest one suspended on it next, unless it has a
//! commit or validation to do first ([`Scheduler::set_affinity`]): a chain's links then follow
//! each other on one core, with the location in its cache.
//!
//! **Speculation window.** Executions are handed out only below the commit point plus a
//! window, unbounded by default.
//! - *In order* (a window of one): a block that is effectively sequential gains nothing from
//!   speculation and loses to its aborts and hand-offs. Only the transaction at the commit
//!   point is handed out for execution: it reads final values, keeps no read set, is never
//!   validated, and commits as soon as it finishes, while the other workers fold committed
//!   transactions. The engine asks for it up front ([`Scheduler::set_in_order`], e.g. a block
//!   that is mostly one sender's chain of transactions). On one worker the block always runs
//!   this way.
//! - *Bounded* (one transaction per worker): when more than [`BOUNDED_ABORTS`] of the last 64
//!   commits aborted at the commit point, the scheduler stops speculating far ahead. Every
//!   running transaction is then close to the commit point, so a read of a hot location that
//!   waits for the lower running transactions gets final values, and the block pipelines
//!   instead of re-executing.
//!
//! Re-executions are bounded: a transaction's first [`MAX_SPECULATIVE_INCARNATIONS`]
//! incarnations may run above the commit point; a later one runs only at the commit point, where
//! it reads final values and cannot be aborted (the sweep passes it by, and the worker that moves
//! the commit point to it executes it). No transaction executes more than
//! `MAX_SPECULATIVE_INCARNATIONS + 1` times.
//!
//! The block is done when the commit point passes the last transaction.
//!
//! # Transaction status
//!
//! ```text
//!                   next_task / finish_validation (try_incarnate)
//!   ReadyToExecute(i) -----------------------------------------> Executing(i)
//!        ^     ^                                                   |      |
//!        |     |     resume: blocking txn finished executing       |      | add_dependency
//!        |     +---------------------- Suspended(i) <--------------|------+ (returns true)
//!        |             (ReadyToExecute(i+1))                       |
//!        |                                                         | finish_execution
//!        |   finish_validation(aborted = true)                     v
//!        +------------------------------------ Aborting(i) <--- Executed(i) ---> committed
//!                (ReadyToExecute(i+1))              try_validation_abort(i)      (settled, at
//!                                                                                 the commit point)
//! ```
//!
//! # Locks
//!
//! Per transaction: a state mutex (status, settled, committed), mirrored in an atomic status
//! word that paused reads poll, and a dependency mutex (the transactions suspended on it), each
//! `CachePadded`. Lock order: **dependency lock before status lock**; never two status locks
//! at once. The commit point is advanced by one worker at a time (a try-lock; a worker that
//! finds it taken leaves a flag the holder re-checks).
//!
//! # Engine protocol
//!
//! ```text
//! let mut task = None;
//! loop {
//!     match task.take().unwrap_or_else(|| scheduler.next_task()) {
//!         Execute(version) => {
//!             // run the transaction, reading through MvMemory::read
//!             // on ReadResult::Blocked(blocking):
//!             //     if scheduler.wait_for(txn_idx, blocking) { read again }
//!             //     else { abandon the execution: continue 'outer }
//!             let wrote_new = mv.record(version, reads, writes);
//!             task = scheduler.finish_execution(txn_idx, incarnation, wrote_new);
//!         }
//!         Validate { version, at_commit } => {
//!             let valid = mv.validate_read_set(txn_idx);
//!             let aborted = !valid && scheduler.try_validation_abort(txn_idx, incarnation);
//!             if aborted { mv.convert_writes_to_estimates(txn_idx) }
//!             task = scheduler.finish_validation(version, at_commit, aborted);
//!         }
//!         Retry => std::hint::spin_loop(),
//!         Done => break,
//!     }
//! }
//! ```
//!
//! On an error (e.g. a caught panic), call [`Scheduler::halt`]; every worker's next
//! `next_task` returns `Done`. After the workers join, [`Scheduler::invariant_error`] reports
//! a broken invariant (the result must then be discarded).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod scheduler;

pub use error::SchedulerError;
pub use scheduler::{
    ExecutionStatus, Scheduler, SchedulerCounters, SchedulerTask, BOUNDED_ABORTS,
    MAX_SPECULATIVE_INCARNATIONS,
};
pub use velarium_primitives::{Incarnation, TxnIndex, Version};

#[cfg(test)]
mod tests;
