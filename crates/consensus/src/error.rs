//! The error every validation rule returns.

use alloy_primitives::{Bytes, B256, B64, U256};

/// A header or body breaks a consensus rule checked before execution.
///
/// One variant per rule; the message names the rule and the offending values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// `extra_data` is longer than [`crate::MAXIMUM_EXTRA_DATA_SIZE`] bytes.
    #[error("extra data length {len} exceeds maximum {max}")]
    ExtraDataTooLong {
        /// Length of the header's extra data.
        len: usize,
        /// Maximum allowed length.
        max: usize,
    },
    /// `gas_used` is above `gas_limit`.
    #[error("gas used {gas_used} exceeds gas limit {gas_limit}")]
    GasUsedExceedsGasLimit {
        /// The header's gas used.
        gas_used: u64,
        /// The header's gas limit.
        gas_limit: u64,
    },
    /// `gas_limit` is above 2^63 - 1.
    #[error("gas limit {gas_limit} above maximum {max}")]
    GasLimitTooHigh {
        /// The header's gas limit.
        gas_limit: u64,
        /// Maximum allowed gas limit.
        max: u64,
    },
    /// `gas_limit` is below the protocol minimum of 5000.
    #[error("gas limit {gas_limit} below minimum {min}")]
    GasLimitBelowMinimum {
        /// The header's gas limit.
        gas_limit: u64,
        /// Minimum allowed gas limit.
        min: u64,
    },
    /// The gas limit moved by `parent_gas_limit / 1024` or more from the parent's.
    #[error(
        "gas limit {gas_limit} changes by {delta} from parent limit {parent_gas_limit}, \
         must change by less than {bound}"
    )]
    GasLimitChangeTooLarge {
        /// The header's gas limit.
        gas_limit: u64,
        /// The parent's gas limit (doubled at the London fork block).
        parent_gas_limit: u64,
        /// Absolute change.
        delta: u64,
        /// Exclusive bound on the change: `parent_gas_limit / 1024`.
        bound: u64,
    },
    /// `number` is not `parent.number + 1`.
    #[error("block number {number} does not follow parent number {parent_number}")]
    InvalidBlockNumber {
        /// The header's number.
        number: u64,
        /// The parent's number.
        parent_number: u64,
    },
    /// `parent_hash` is not the hash of the given parent.
    #[error("parent hash mismatch: header names {got}, parent hashes to {expected}")]
    ParentHashMismatch {
        /// Hash of the parent header.
        expected: B256,
        /// The header's `parent_hash`.
        got: B256,
    },
    /// `timestamp` is not after the parent's.
    #[error("timestamp {timestamp} not after parent timestamp {parent_timestamp}")]
    TimestampNotAfterParent {
        /// The header's timestamp.
        timestamp: u64,
        /// The parent's timestamp.
        parent_timestamp: u64,
    },
    /// A proof-of-stake header carries a non-zero difficulty.
    #[error("difficulty {difficulty} must be zero after the merge")]
    DifficultyNonZeroPostMerge {
        /// The header's difficulty.
        difficulty: U256,
    },
    /// A proof-of-stake header carries a non-zero nonce.
    #[error("nonce {nonce} must be zero after the merge")]
    NonceNonZeroPostMerge {
        /// The header's nonce.
        nonce: B64,
    },
    /// A proof-of-stake header's ommers hash is not the empty-list hash.
    #[error("ommers hash {ommers_hash} must be the empty ommers hash after the merge")]
    OmmersHashNotEmptyPostMerge {
        /// The header's ommers hash.
        ommers_hash: B256,
    },
    /// A proof-of-work header's difficulty is not the ethash difficulty given its parent.
    #[error("invalid difficulty: expected {expected}, got {got}")]
    InvalidDifficulty {
        /// Difficulty computed from the parent.
        expected: U256,
        /// The header's difficulty.
        got: U256,
    },
    /// A header field required by an active fork is absent.
    #[error("header field {field} missing, required from {fork}")]
    MissingField {
        /// The missing field.
        field: &'static str,
        /// The fork that introduced it.
        fork: &'static str,
    },
    /// A header field introduced by a fork that is not yet active is present.
    #[error("header field {field} present before {fork}")]
    UnexpectedField {
        /// The unexpected field.
        field: &'static str,
        /// The fork that introduces it.
        fork: &'static str,
    },
    /// `base_fee_per_gas` differs from the EIP-1559 value computed from the parent.
    #[error("invalid base fee: expected {expected}, got {got}")]
    InvalidBaseFee {
        /// Base fee computed from the parent.
        expected: u64,
        /// The header's base fee.
        got: u64,
    },
    /// `blob_gas_used` is not a multiple of the gas per blob.
    #[error("blob gas used {blob_gas_used} is not a multiple of blob gas per blob {per_blob}")]
    BlobGasUsedNotMultipleOfBlobGas {
        /// The header's blob gas used.
        blob_gas_used: u64,
        /// Gas per blob (`DATA_GAS_PER_BLOB`).
        per_blob: u64,
    },
    /// `blob_gas_used` (header or sum over transactions) is above the fork's block maximum.
    #[error("blob gas used {blob_gas_used} exceeds maximum {max} per block")]
    BlobGasUsedAboveMax {
        /// Blob gas used.
        blob_gas_used: u64,
        /// Maximum blob gas per block.
        max: u64,
    },
    /// `excess_blob_gas` differs from the EIP-4844 / EIP-7918 value computed from the parent.
    #[error("invalid excess blob gas: expected {expected}, got {got}")]
    InvalidExcessBlobGas {
        /// Excess blob gas computed from the parent.
        expected: u64,
        /// The header's excess blob gas.
        got: u64,
    },
    /// The header's `blob_gas_used` differs from the blob gas of the block's transactions.
    #[error("blob gas used {header} in header does not match {transactions} in transactions")]
    BlobGasUsedMismatch {
        /// The header's blob gas used.
        header: u64,
        /// Sum of the transactions' blob gas.
        transactions: u64,
    },
    /// A block of the DAO fork's ten-block window breaks the `dao-hard-fork` extra-data rule:
    /// a pro-fork chain requires it, an anti-fork chain forbids it.
    #[error(
        "block {number} in the DAO fork range {dao_block}..{end} has extra data {extra_data}, \
         which must {}be \"dao-hard-fork\"", if *support { "" } else { "not " }
    )]
    DaoExtraData {
        /// The header's number.
        number: u64,
        /// The DAO fork block.
        dao_block: u64,
        /// First block after the window.
        end: u64,
        /// Whether the chain supports the DAO fork.
        support: bool,
        /// The header's extra data.
        extra_data: Bytes,
    },
    /// The header's transactions root is not the root of the body's transactions.
    #[error("transactions root mismatch: header {header}, body {body}")]
    TransactionsRootMismatch {
        /// The header's transactions root.
        header: B256,
        /// Root computed from the body.
        body: B256,
    },
    /// The header's ommers hash is not the hash of the body's ommers.
    #[error("ommers hash mismatch: header {header}, body {body}")]
    OmmersHashMismatch {
        /// The header's ommers hash.
        header: B256,
        /// Hash computed from the body.
        body: B256,
    },
    /// The header's withdrawals root is not the root of the body's withdrawals.
    #[error("withdrawals root mismatch: header {header}, body {body}")]
    WithdrawalsRootMismatch {
        /// The header's withdrawals root.
        header: B256,
        /// Root computed from the body.
        body: B256,
    },
    /// A Shanghai block's body has no withdrawals list.
    #[error("withdrawals missing from the body of a Shanghai block")]
    WithdrawalsMissing,
    /// A pre-Shanghai block's body has a withdrawals list.
    #[error("withdrawals present in the body of a pre-Shanghai block")]
    WithdrawalsUnexpected,
    /// A transaction's type is not enabled by the active fork.
    #[error("transaction {index}: type {tx_type} not supported before {fork}")]
    TransactionTypeNotSupported {
        /// Index of the transaction in the block.
        index: usize,
        /// EIP-2718 type byte.
        tx_type: u8,
        /// The fork that enables it.
        fork: &'static str,
    },
    /// A transaction is signed for another chain.
    #[error("transaction {index}: chain id {got} does not match chain id {expected}")]
    ChainIdMismatch {
        /// Index of the transaction in the block.
        index: usize,
        /// The chain's id.
        expected: u64,
        /// The transaction's chain id.
        got: u64,
    },
    /// A legacy transaction is replay-protected (EIP-155) before Spurious Dragon.
    #[error("transaction {index}: EIP-155 replay-protected transaction before Spurious Dragon")]
    Eip155BeforeSpuriousDragon {
        /// Index of the transaction in the block.
        index: usize,
    },
    /// A blob transaction is in its network form, with the sidecar, inside a block.
    #[error("transaction {index}: blob transaction with sidecar inside a block")]
    BlobSidecarInBlock {
        /// Index of the transaction in the block.
        index: usize,
    },
    /// A transaction's priority fee is above its max fee.
    #[error("transaction {index}: max priority fee {tip} above max fee {max_fee}")]
    PriorityFeeAboveMaxFee {
        /// Index of the transaction in the block.
        index: usize,
        /// Max priority fee per gas.
        tip: u128,
        /// Max fee per gas.
        max_fee: u128,
    },
    /// A transaction's max fee (gas price) is below the block's base fee.
    #[error("transaction {index}: max fee {max_fee} below base fee {base_fee}")]
    MaxFeeBelowBaseFee {
        /// Index of the transaction in the block.
        index: usize,
        /// Max fee per gas (gas price for legacy transactions).
        max_fee: u128,
        /// The block's base fee.
        base_fee: u64,
    },
    /// A blob transaction's max fee per blob gas is below the block's blob base fee.
    #[error("transaction {index}: max fee per blob gas {max_blob_fee} below blob base fee {blob_base_fee}")]
    MaxBlobFeeBelowBlobBaseFee {
        /// Index of the transaction in the block.
        index: usize,
        /// Max fee per blob gas.
        max_blob_fee: u128,
        /// The block's blob base fee.
        blob_base_fee: u128,
    },
    /// A blob transaction carries no blobs.
    #[error("transaction {index}: blob transaction has no blobs")]
    BlobTransactionWithoutBlobs {
        /// Index of the transaction in the block.
        index: usize,
    },
    /// A blob transaction carries more blobs than allowed per transaction.
    #[error("transaction {index}: {count} blobs exceed maximum {max} per transaction")]
    TooManyBlobsInTransaction {
        /// Index of the transaction in the block.
        index: usize,
        /// Blobs in the transaction.
        count: u64,
        /// Maximum blobs per transaction.
        max: u64,
    },
    /// A blob versioned hash does not start with the KZG version byte.
    #[error("transaction {index}: blob versioned hash {hash} has version {version}, expected 1")]
    InvalidBlobVersionedHash {
        /// Index of the transaction in the block.
        index: usize,
        /// The versioned hash.
        hash: B256,
        /// Its version byte.
        version: u8,
    },
    /// An EIP-7702 transaction has an empty authorization list.
    #[error("transaction {index}: empty EIP-7702 authorization list")]
    EmptyAuthorizationList {
        /// Index of the transaction in the block.
        index: usize,
    },
    /// A proof-of-work block includes more than two ommers.
    #[error("{count} ommers exceed maximum {max}")]
    TooManyOmmers {
        /// Ommers in the block.
        count: usize,
        /// Maximum ommers per block.
        max: usize,
    },
    /// A proof-of-stake block includes ommers.
    #[error("{count} ommers in a block after the merge")]
    OmmersPostMerge {
        /// Ommers in the block.
        count: usize,
    },
    /// The same ommer appears twice in the block or was already included by an ancestor.
    #[error("duplicate ommer {hash}")]
    DuplicateOmmer {
        /// The ommer's hash.
        hash: B256,
    },
    /// An ommer is one of the block's ancestors (or the block itself).
    #[error("ommer {hash} is an ancestor of the block")]
    OmmerIsAncestor {
        /// The ommer's hash.
        hash: B256,
    },
    /// An ommer's parent is not one of the block's ancestors from generation 2 to 7.
    #[error("ommer {hash} has parent {parent_hash}, not a known ancestor of the block")]
    DanglingOmmer {
        /// The ommer's hash.
        hash: B256,
        /// The ommer's parent hash.
        parent_hash: B256,
    },
    /// An ommer's number is not below the block's.
    #[error("ommer number {ommer_number} not below block number {number}")]
    OmmerNumberTooHigh {
        /// The ommer's number.
        ommer_number: u64,
        /// The block's number.
        number: u64,
    },
    /// An ommer header breaks a header rule.
    #[error("invalid ommer {hash}: {source}")]
    InvalidOmmer {
        /// The ommer's hash.
        hash: B256,
        /// The rule it breaks.
        #[source]
        source: Box<ConsensusError>,
    },
}
