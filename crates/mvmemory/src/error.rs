//! Errors of the multi-version memory.

use velarium_primitives::TxnIndex;

/// Errors returned by [`MvMemory`](crate::MvMemory).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MvMemoryError {
    /// An `Estimate` entry was left when the final writes were collected: the block was not
    /// finished (some aborted transaction never re-executed). The engine should fall back to
    /// sequential execution.
    #[error("estimate of transaction {txn_idx} left in the multi-version memory after the block")]
    UnresolvedEstimate {
        /// Transaction whose estimate remained.
        txn_idx: TxnIndex,
    },
}
