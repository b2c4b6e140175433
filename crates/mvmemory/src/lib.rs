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
//! For every location the memory keeps the entries of the transactions that wrote it, sorted
//! by transaction index, in two lists: full values (or their estimates) and deltas (or their
//! estimates). An entry is one of:
//!
//! - a full value written by some incarnation of the transaction;
//! - a commutative delta written without reading the old value (e.g. a balance credit that the
//!   recipient of a plain transfer never observes);
//! - an estimate, left by an incarnation that was aborted: "this transaction will probably
//!   write here again", or put there before the transaction writes
//!   ([`MvMemory::predict_write`], for a link of a chain of read-modify-writes of a hot
//!   location, removed by its next `record` unless written). A reader that meets it must wait
//!   for that transaction.
//!
//! [`MvMemory::read`] for transaction `j` finds the highest full value below `j` and, in
//! [`ReadMode::WithDeltas`], sums the deltas between that value and `j`:
//!
//! ```text
//!   txn:    0        2        3       5        (reader j = 6)
//!   full:   Data(a)                   Estimate -> Blocked(5)
//!   full:   Data(a)                            -> Value { version: (0, _), value: a,
//!   deltas:          x        y                            deltas: x + y (2 deltas) }
//!   deltas:          x        y                -> Base { deltas: x + y (2 deltas) }
//! ```
//!
//! In [`ReadMode::IgnoreDeltas`] the deltas are skipped (not even searched, however many there
//! are) unless one of them is an estimate, which the read must still meet. A write above every
//! entry of its list is appended without a search. No read allocates: deltas are summed, not
//! listed.
//!
//! After an incarnation finishes, the engine calls [`MvMemory::record`] with its read set
//! ([`ReadOrigin`] of every read: the full value's version or base storage, the deltas' sum
//! and count, the mode) and its write set. `record` writes the new entries first and then
//! removes the entries of locations the previous incarnation wrote but this one did not, so a
//! reader never sees a transient gap. It returns `wrote_new_location`: whether this
//! incarnation wrote a location the previous incarnation did not, which forces the scheduler
//! to revalidate higher transactions.
//!
//! [`MvMemory::validate_read_set`] recomputes the origin of every recorded read; any
//! difference (or an estimate) means the incarnation read stale data and must be aborted, in
//! which case the engine calls [`MvMemory::convert_writes_to_estimates`]. Full values are
//! compared by version, deltas by value (their sum and count): a delta rewritten with the same
//! amount leaves the read valid.
//!
//! Once the scheduler reports the block done, [`MvMemory::into_final_writes`] lists, per
//! location, every remaining entry in transaction order.
//!
//! # Caller protocol
//!
//! - Per transaction, one incarnation at a time: `record` and `convert_writes_to_estimates` of
//!   `txn_idx` are called only by the worker that owns its current task (the scheduler
//!   guarantees this). `read` and `validate_read_set` may run concurrently with anything.
//! - Every incarnation that runs to completion is recorded, even if the transaction reverted or
//!   was invalid (it may have read stale data; validation decides). An incarnation abandoned on
//!   a dependency is *not* recorded: its previous entries (estimates) stay.
//! - The read set holds every read served by this memory, with the origin
//!   [`ReadOrigin::of`] gives, including reads of a location the transaction also added a delta
//!   to. Reads served from the transaction's own earlier full-value writes are not recorded.
//! - The write set has one write per location: a value, or one combined delta.
//!
//! # Concurrency
//!
//! There is no global lock. Locations are spread by their precomputed hash ([`MvKey`]) over
//! [`NUM_SHARDS`] shards, each a `RwLock` over a hash table of pointers to the locations'
//! cells: a read takes one shard read lock, a write one shard write lock, each only for the
//! in-memory lookup; the shard's lock guards its cells too. The cells live in one append-only
//! arena per worker ([`bind_worker`]): a worker's new cells follow each other in memory instead
//! of landing at random places in the tables (beside the former cells inline in the tables,
//! binaries by turns: ETH transfers x1.07-x1.12 at one worker and x1.01-x1.12 at two, the
//! mainnet blocks' `replay --threads 2` about 2% lower; see `arena.rs` and the README). A filter over the hashes keeps, per bucket, the lowest transaction that
//! wrote there (lowered before the entry is written): a read of a location no lower transaction
//! wrote (most reads, and most validations: a transaction's own write of what it read does not
//! count) skips the lock altogether.
//! Per-transaction slots (last read set, last written keys) are `CachePadded` mutexes indexed by
//! `TxnIndex`. Lock order: slot lock, then one shard lock at a time.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod arena;
mod error;
mod memory;
mod types;

pub use arena::{bind_worker, bound_worker};
pub use error::MvMemoryError;
pub use memory::{MvMemory, NUM_SHARDS};
pub use types::{
    mix64, Delta, DeltaSum, FinalWrites, LocationWrites, MvKey, ReadMode, ReadOrigin, ReadResult,
    ReadSet, WriteSet, WriteValue,
};
pub use velarium_primitives::{Incarnation, TxnIndex, Version};

#[cfg(test)]
mod tests;
