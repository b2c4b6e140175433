//! Multi-version memory of Block-STM.
//!
//! Block-STM (Gelashvili et al., 2022) executes the transactions of a block optimistically and in
//! parallel. Every execution ("incarnation") of a transaction writes into this multi-version
//! memory instead of into the state; a later transaction reads the value written by the
//! highest-indexed lower transaction, so that the outcome equals sequential execution in block
//! order once every transaction has been validated.
//!
//! This crate sits between `velarium-primitives` and `velarium-scheduler` in the pipeline
//! (`primitives` -> `mvmemory` -> `scheduler` -> `executor`). It is generic over the location
//! type `K` (an account field, a storage slot...), the full value type `V` and the commutative
//! delta type `D` (for example a lazy balance credit), so the engine can plug in EVM types.
//!
//! # Algorithm
//!
//! For every location the memory keeps an ordered map `TxnIndex -> Entry`:
//!
//! - [`Entry::Data`]: a full value written by some incarnation of the transaction.
//! - [`Entry::Delta`]: a commutative update that does not read the old value (e.g. a balance
//!   increment that the beneficiary of a fee never observes).
//! - [`Entry::Estimate`]: left by an incarnation that was aborted. It marks "this transaction
//!   will probably write here again"; a reader that meets it must wait for that transaction
//!   (a *dependency*) instead of reading a value that is about to change.
//!
//! [`MvMemory::read`] for transaction `j` walks the entries of the location below `j`, from
//! the highest index down:
//!
//! ```text
//!   txn:    0        2        3       5        (reader j = 6)
//!   entry:  Data(a)  Delta(x) Delta(y) Estimate  -> Dependency { blocking_txn_idx: 5 }
//!   entry:  Data(a)  Delta(x) Delta(y)           -> Value { version: (0, _), value: a,
//!                                                           deltas: [(2, x), (3, y)] }
//!   entry:           Delta(x) Delta(y)           -> NotFound { deltas: [(2, x), (3, y)] }
//! ```
//!
//! Deltas are returned in ascending transaction order; the caller applies them to the value (or
//! to base storage when `NotFound`). An `Estimate` anywhere on that walk is a dependency.
//!
//! After an incarnation finishes, the engine calls [`MvMemory::record`] with its read set
//! ([`ReadOrigin`] of every read: storage or which [`Version`], plus which delta versions) and
//! its write set. `record` writes the new entries first and then removes the entries of
//! locations the previous incarnation wrote but this one did not, so a reader never sees a
//! transient gap. It returns `wrote_new_location`: whether this incarnation wrote a location the
//! previous incarnation did not, which forces the scheduler to revalidate higher transactions.
//!
//! [`MvMemory::validate_read_set`] re-reads every recorded read and compares the origin; any
//! difference (or a dependency) means the incarnation read stale data and must be aborted, in
//! which case the engine calls [`MvMemory::convert_writes_to_estimates`].
//!
//! Once the scheduler reports the block done, [`MvMemory::into_final_writes`] lists, per
//! location, every remaining entry in transaction order, from which the engine builds the final
//! state (the last `Data` plus every later `Delta`, or storage plus every `Delta`).
//!
//! # Caller protocol
//!
//! - Per transaction, one incarnation at a time: `record` and `convert_writes_to_estimates` of
//!   `txn_idx` are called only by the worker that owns its current task (the scheduler
//!   guarantees this). `read` and `validate_read_set` may run concurrently with anything.
//! - Every incarnation that runs to completion is recorded, even if the transaction reverted or
//!   was invalid (it may have read stale data; validation decides). An incarnation abandoned on
//!   a dependency is *not* recorded: its previous entries (estimates) stay.
//! - The read set holds every read served by this memory, built with
//!   [`ReadOrigin::from_read_result`], including reads of a location the transaction also
//!   added a delta to. Reads served from the transaction's own earlier full-value writes are not
//!   recorded.
//! - The write set has one write per location: a value, or one combined delta.
//! - Validation compares origins (versions), not values: a rewrite by a lower transaction fails
//!   validation even if it wrote the same value.
//!
//! # Entry life cycle for one `(location, txn_idx)`
//!
//! ```text
//!              record (writes it)            convert_writes_to_estimates
//!   (absent) ---------------------> Data/Delta ---------------------------> Estimate
//!      ^                              |   ^                                   |
//!      |   record (no longer writes)  |   |        record (writes it again)   |
//!      +------------------------------+   +-----------------------------------+
//!      ^                                                                      |
//!      +----------------------- record (no longer writes) --------------------+
//! ```
//!
//! # Concurrency
//!
//! There is no global lock on the hot path. Locations are spread over [`NUM_SHARDS`] shards,
//! each a `RwLock<HashMap<K, Arc<Mutex<BTreeMap<TxnIndex, Entry>>>>>`: the shard lock is held only
//! to find (read lock) or create (write lock) the per-location cell, and is released before the
//! location's mutex is taken. Per-transaction slots (last read set, last written keys) are
//! `CachePadded` locks indexed by `TxnIndex`.
//!
//! Lock order: per-transaction slot lock -> shard lock -> location lock. A shard lock is never
//! held while a location lock is taken, and no slot lock is taken while holding a shard or
//! location lock, so there are no cycles.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod memory;
mod types;

pub use error::MvMemoryError;
pub use memory::{MvMemory, NUM_SHARDS};
pub use types::{
    Entry, FinalWrites, LocationWrites, ReadBase, ReadOrigin, ReadResult, ReadSet, WriteSet,
    WriteValue,
};
pub use velarium_primitives::{Incarnation, TxnIndex, Version};

#[cfg(test)]
mod tests;
