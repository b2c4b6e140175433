//! Errors of the scheduler.

use velarium_primitives::{Incarnation, TxnIndex};

/// A broken scheduler invariant. The scheduler halts when it detects one; the engine should
/// discard the parallel result and re-execute the block sequentially.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// A transaction was not in the status an API call requires.
    #[error("invariant violated in {operation}: txn {txn_idx} (incarnation {incarnation}) has status {status}")]
    Invariant {
        /// The scheduler method that detected it.
        operation: &'static str,
        /// The transaction concerned.
        txn_idx: TxnIndex,
        /// The incarnation the caller passed (or the scheduler expected).
        incarnation: Incarnation,
        /// The status found, formatted.
        status: String,
    },
}
