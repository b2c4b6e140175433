//! Checks that an executed block's results match what its header commits to.

use alloy_consensus::{proofs::calculate_receipt_root, Header, TxReceipt};
use alloy_primitives::{Bloom, B256};
use velarium_chainspec::{ChainSpec, EthereumHardforks};
use velarium_executor::BlockOutput;

/// A mismatch between execution results and the header.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PostExecutionError {
    /// Header `gasUsed` differs from the gas the transactions used.
    #[error("gas used mismatch: header {expected}, executed {got}")]
    GasUsed {
        /// The header's value.
        expected: u64,
        /// The executed value.
        got: u64,
    },
    /// Header `receiptsRoot` differs from the root of the receipts.
    #[error("receipts root mismatch: header {expected}, executed {got}")]
    ReceiptsRoot {
        /// The header's value.
        expected: B256,
        /// The executed value.
        got: B256,
    },
    /// Header `logsBloom` differs from the receipts' combined bloom.
    #[error("logs bloom mismatch")]
    LogsBloom,
    /// Header `blobGasUsed` differs from the executed blob gas.
    #[error("blob gas used mismatch: header {expected:?}, executed {got}")]
    BlobGasUsed {
        /// The header's value.
        expected: Option<u64>,
        /// The executed value.
        got: u64,
    },
    /// Header `requestsHash` differs from the hash of the EIP-7685 requests.
    #[error("requests hash mismatch: header {expected:?}, executed {got}")]
    RequestsHash {
        /// The header's value.
        expected: Option<B256>,
        /// The executed value.
        got: B256,
    },
    /// Header `stateRoot` differs from the post-state's root.
    #[error("state root mismatch: header {expected}, executed {got}")]
    StateRoot {
        /// The header's value.
        expected: B256,
        /// The executed value.
        got: B256,
    },
}

/// Checks gas used, receipts root, logs bloom, blob gas used and requests hash.
///
/// Before Byzantium a receipt commits to the intermediate state root after its transaction, not
/// a status; like reth we skip the receipts-root check there (the state root is still checked,
/// and so is the bloom).
pub fn verify_outputs(
    spec: &ChainSpec,
    header: &Header,
    output: &BlockOutput,
) -> Result<(), PostExecutionError> {
    if output.gas_used != header.gas_used {
        return Err(PostExecutionError::GasUsed {
            expected: header.gas_used,
            got: output.gas_used,
        });
    }
    if spec.is_byzantium_active_at_block(header.number) {
        let got = calculate_receipt_root(&output.receipts);
        if got != header.receipts_root {
            return Err(PostExecutionError::ReceiptsRoot { expected: header.receipts_root, got });
        }
    }
    let bloom = output.receipts.iter().fold(Bloom::ZERO, |acc, r| acc | r.bloom());
    if bloom != header.logs_bloom {
        return Err(PostExecutionError::LogsBloom);
    }
    if spec.is_cancun_active_at_timestamp(header.timestamp)
        && header.blob_gas_used != Some(output.blob_gas_used)
    {
        return Err(PostExecutionError::BlobGasUsed {
            expected: header.blob_gas_used,
            got: output.blob_gas_used,
        });
    }
    if spec.is_prague_active_at_timestamp(header.timestamp) {
        let got = output.requests.requests_hash();
        if header.requests_hash != Some(got) {
            return Err(PostExecutionError::RequestsHash { expected: header.requests_hash, got });
        }
    }
    Ok(())
}
