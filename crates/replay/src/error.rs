//! Errors loading and replaying a mainnet block.

use alloy_primitives::{Address, B256};
use std::path::PathBuf;
use velarium_chain::PostExecutionError;
use velarium_executor::ExecutionError;

/// Why a block folder could not be loaded, executed or verified.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A file of the block folder could not be read (absent, unreadable).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid JSON, or lacks a field the replay needs.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A field parsed but its value is unusable (an unknown transaction type, a bad `v`, ...).
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The folder is named after a different block than the one its `block.json` holds.
    #[error("folder is named {folder} but block.json holds block {number}")]
    NumberMismatch {
        /// The number in the folder name.
        folder: u64,
        /// The header's number.
        number: u64,
    },
    /// The header rebuilt from `block.json` does not hash to the block's `hash`.
    #[error("header hash mismatch: block.json says {expected}, rebuilt header hashes to {got}")]
    HeaderHash {
        /// `block.json`'s `hash`.
        expected: B256,
        /// keccak256 of the RLP of the rebuilt header.
        got: B256,
    },
    /// The rebuilt transactions (or withdrawals) do not match the header's trie root.
    #[error("{what} root mismatch: header {expected}, rebuilt {got}")]
    Root {
        /// Which list: `transactions` or `withdrawals`.
        what: &'static str,
        /// The header's root.
        expected: B256,
        /// The root of the rebuilt list.
        got: B256,
    },
    /// A rebuilt transaction does not hash to its JSON `hash`.
    #[error("transaction {index}: hash mismatch: block.json says {expected}, rebuilt {got}")]
    TxHash {
        /// Position in the block.
        index: usize,
        /// The JSON `hash`.
        expected: B256,
        /// The hash of the rebuilt signed transaction.
        got: B256,
    },
    /// A transaction's signature does not recover to any address.
    #[error("transaction {index}: invalid signature")]
    InvalidSignature {
        /// Position in the block.
        index: usize,
    },
    /// A transaction's signature recovers to an address other than its JSON `from`.
    #[error("transaction {index}: signer {recovered} differs from `from` {expected}")]
    Sender {
        /// Position in the block.
        index: usize,
        /// The JSON `from`.
        expected: Address,
        /// The recovered signer.
        recovered: Address,
    },
    /// The engine rejected the block.
    #[error("execution failed: {0}")]
    Execution(#[from] ExecutionError),
    /// The execution results disagree with the header (gas, receipts root, bloom, ...).
    #[error("verification failed: {0}")]
    Verify(#[from] PostExecutionError),
    /// The engine's output differs from the sequential oracle's.
    #[error("differs from the sequential oracle: {0}")]
    OracleMismatch(String),
}
