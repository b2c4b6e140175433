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
//! `validation_idx` (next transaction to validate). [`Scheduler::next_task`] hands out a
//! validation task when `validation_idx < execution_idx`, else an execution task, so lower
//! transactions are always preferred. Either index only moves *down* through explicit
//! decreases:
//!
//! 1. When a transaction is aborted by a failed validation, `validation_idx` drops to
//!    `txn_idx + 1` (every higher transaction may have read its writes) and the transaction is
//!    re-executed with incarnation + 1 (directly by the aborting worker when possible).
//! 2. When an execution writes a location its previous incarnation did not
//!    (`wrote_new_location`), `validation_idx` drops to `txn_idx`: higher transactions that
//!    validated earlier may have missed the new write.
//! 3. When a transaction reads an `ESTIMATE` of a lower transaction, it is *suspended* on that
//!    dependency ([`Scheduler::add_dependency`]) instead of spinning. When the blocking
//!    transaction finishes executing, its dependents become ready with incarnation + 1 and
//!    `execution_idx` drops to the lowest of them.
//!
//! Otherwise, a finished execution of `txn_idx` whose validation already swept past it is
//! validated right away by the same worker (the task is returned by
//! [`Scheduler::finish_execution`]).
//!
//! The block is done when both indices are past the block, no task is in flight
//! (`num_active_tasks == 0`) and no index was decreased while this was being checked
//! (`decrease_cnt` unchanged); see the paper's proof that this check is sound when all four
//! counters are sequentially consistent.
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
//!        +------------------------------------ Aborting(i) <--- Executed(i)
//!                (ReadyToExecute(i+1))              try_validation_abort(i) == true
//! ```
//!
//! `Suspended(i)` and `Aborting(i)` both lead to `ReadyToExecute(i + 1)`: a suspended execution
//! is abandoned (its partial writes were never recorded) and restarts from scratch.
//!
//! # Locks
//!
//! Per transaction: a status mutex and a dependency mutex (the transactions waiting for it),
//! each `CachePadded`. Lock order: **dependency lock before status lock**
//! ([`Scheduler::add_dependency`] holds the blocking transaction's dependency lock while it
//! reads the blocking transaction's status and writes the dependent's status).
//! [`Scheduler::finish_execution`] releases the status lock before taking the dependency lock.
//! No lock is held while calling out of the scheduler.
//!
//! # Engine protocol
//!
//! ```text
//! let mut task = None;
//! loop {
//!     match task.take().unwrap_or_else(|| scheduler.next_task()) {
//!         Execute(version) => {
//!             // run the transaction, reading through MvMemory::read
//!             // on ReadResult::Dependency { blocking_txn_idx }:
//!             //     if scheduler.add_dependency(txn_idx, blocking_txn_idx) { continue 'outer }  // abandoned
//!             //     else { read again: the blocker has finished executing }
//!             let wrote_new = mv.record(version, reads, writes);
//!             task = scheduler.finish_execution(txn_idx, incarnation, wrote_new);
//!         }
//!         Validate(version) => {
//!             let valid = mv.validate_read_set(txn_idx);
//!             let aborted = !valid && scheduler.try_validation_abort(txn_idx, incarnation);
//!             if aborted { mv.convert_writes_to_estimates(txn_idx) }
//!             task = scheduler.finish_validation(txn_idx, aborted);
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
pub use scheduler::{ExecutionStatus, Scheduler, SchedulerCounters, SchedulerTask};
pub use velarium_primitives::{Incarnation, TxnIndex, Version};

#[cfg(test)]
mod tests;
