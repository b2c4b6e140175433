//! Core types shared by every Velarium crate.
//!
//! Velarium executes the transactions of a block in parallel with Block-STM: every transaction
//! is run optimistically, possibly several times. This crate names the coordinates of one such
//! run:
//!
//! - [`TxnIndex`]: the position of a transaction in its block (0-based). The block's preset
//!   order is the serialization order every parallel execution must be equivalent to.
//! - [`Incarnation`]: how many times a transaction has been (re-)started. Incarnation 0 is the
//!   first execution; each abort bumps it by one.
//! - [`Version`]: a `(txn_idx, incarnation)` pair, the identity of one execution. A value in
//!   the multi-version memory is tagged with the version that wrote it.
//!
//! This crate has no dependencies and sits at the bottom of the pipeline
//! (`primitives` -> `mvmemory` -> `scheduler` -> `executor`).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Index of a transaction within its block, starting at 0.
pub type TxnIndex = u32;

/// Number of times a transaction has been (re-)started: 0 for its first execution.
pub type Incarnation = u32;

/// The identity of one execution of one transaction: which transaction and which incarnation.
///
/// Ordered first by `txn_idx`, then by `incarnation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Index of the transaction in the block.
    pub txn_idx: TxnIndex,
    /// Incarnation of the transaction that this version denotes.
    pub incarnation: Incarnation,
}

impl Version {
    /// Builds the version of incarnation `incarnation` of transaction `txn_idx`.
    pub const fn new(txn_idx: TxnIndex, incarnation: Incarnation) -> Self {
        Self { txn_idx, incarnation }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_orders_by_txn_then_incarnation() {
        assert!(Version::new(1, 5) < Version::new(2, 0));
        assert!(Version::new(2, 0) < Version::new(2, 1));
        assert_eq!(Version::new(3, 4), Version { txn_idx: 3, incarnation: 4 });
    }
}
