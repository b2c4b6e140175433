//! Body rules: the block body against its header and the fork rules, before execution.

use crate::ConsensusError;
use alloy_consensus::{
    proofs::{calculate_ommers_root, calculate_transaction_root, calculate_withdrawals_root},
    Block, Transaction, TxEnvelope, TxType,
};
use alloy_eips::eip4844::{DATA_GAS_PER_BLOB, VERSIONED_HASH_VERSION_KZG};
use velarium_chainspec::{ChainSpec, EthereumHardfork};

/// Most ommers a proof-of-work block may include.
pub const MAX_OMMERS: usize = 2;

/// Checks a block's body against its header and the fork rules, before execution:
///
/// - the header's `transactions_root` and `ommers_hash` match the body;
/// - withdrawals present exactly from Shanghai, and the header's `withdrawals_root` matches them;
/// - at most two ommers before the merge, none after;
/// - every transaction's type is enabled (EIP-2930 from Berlin, EIP-1559 from London, EIP-4844
///   from Cancun, EIP-7702 from Prague); its chain id, if any, is the spec's; EIP-155 legacy
///   transactions only from Spurious Dragon;
/// - blob transactions carry 1..=`max_blobs_per_tx` blobs with KZG versioned hashes; their total
///   blob gas is at most the block maximum and equals the header's `blob_gas_used`;
/// - EIP-7702 transactions have a non-empty authorization list.
///
/// Header rules are separate: see [`crate::validate_header_standalone`] and
/// [`crate::validate_header_against_parent`]; ommers' validity is [`crate::validate_ommers`].
pub fn validate_block_pre_execution(
    spec: &ChainSpec,
    block: &Block<TxEnvelope>,
) -> Result<(), ConsensusError> {
    let header = &block.header;
    let body = &block.body;

    let ommers_hash = calculate_ommers_root(&body.ommers);
    if ommers_hash != header.ommers_hash {
        return Err(ConsensusError::OmmersHashMismatch {
            header: header.ommers_hash,
            body: ommers_hash,
        });
    }
    if spec.is_merged(header.number) {
        if !body.ommers.is_empty() {
            return Err(ConsensusError::OmmersPostMerge { count: body.ommers.len() });
        }
    } else if body.ommers.len() > MAX_OMMERS {
        return Err(ConsensusError::TooManyOmmers { count: body.ommers.len(), max: MAX_OMMERS });
    }

    let transactions_root = calculate_transaction_root(&body.transactions);
    if transactions_root != header.transactions_root {
        return Err(ConsensusError::TransactionsRootMismatch {
            header: header.transactions_root,
            body: transactions_root,
        });
    }

    let shanghai = spec.is_active(EthereumHardfork::Shanghai, header.number, header.timestamp);
    match (&body.withdrawals, shanghai) {
        (Some(withdrawals), true) => {
            let root = calculate_withdrawals_root(withdrawals);
            let header_root = header
                .withdrawals_root
                .ok_or(ConsensusError::MissingField { field: "withdrawals_root", fork: "Shanghai" })?;
            if root != header_root {
                return Err(ConsensusError::WithdrawalsRootMismatch {
                    header: header_root,
                    body: root,
                });
            }
        }
        (None, true) => return Err(ConsensusError::WithdrawalsMissing),
        (Some(_), false) => return Err(ConsensusError::WithdrawalsUnexpected),
        (None, false) => {}
    }

    validate_transactions(spec, block)
}

/// Per-transaction fork rules and the block's blob gas accounting.
fn validate_transactions(
    spec: &ChainSpec,
    block: &Block<TxEnvelope>,
) -> Result<(), ConsensusError> {
    let header = &block.header;
    let active = |fork| spec.is_active(fork, header.number, header.timestamp);
    let blob_params = spec.blob_params_at(header.timestamp);
    let mut blob_gas = 0u64;

    for (index, tx) in block.body.transactions.iter().enumerate() {
        let tx_type = tx.tx_type();
        let required = match tx_type {
            TxType::Legacy => None,
            TxType::Eip2930 => Some((EthereumHardfork::Berlin, "Berlin")),
            TxType::Eip1559 => Some((EthereumHardfork::London, "London")),
            TxType::Eip4844 => Some((EthereumHardfork::Cancun, "Cancun")),
            TxType::Eip7702 => Some((EthereumHardfork::Prague, "Prague")),
        };
        if let Some((fork, name)) = required {
            if !active(fork) {
                return Err(ConsensusError::TransactionTypeNotSupported {
                    index,
                    tx_type: tx_type as u8,
                    fork: name,
                });
            }
        }

        if let Some(chain_id) = tx.chain_id() {
            if chain_id != spec.chain_id {
                return Err(ConsensusError::ChainIdMismatch {
                    index,
                    expected: spec.chain_id,
                    got: chain_id,
                });
            }
            if tx_type == TxType::Legacy && !active(EthereumHardfork::SpuriousDragon) {
                return Err(ConsensusError::Eip155BeforeSpuriousDragon { index });
            }
        }

        if let Some(hashes) = tx.blob_versioned_hashes() {
            if hashes.is_empty() {
                return Err(ConsensusError::BlobTransactionWithoutBlobs { index });
            }
            let count = hashes.len() as u64;
            if let Some(params) = blob_params {
                if count > params.max_blobs_per_tx {
                    return Err(ConsensusError::TooManyBlobsInTransaction {
                        index,
                        count,
                        max: params.max_blobs_per_tx,
                    });
                }
            }
            if let Some(hash) = hashes.iter().find(|h| h[0] != VERSIONED_HASH_VERSION_KZG) {
                return Err(ConsensusError::InvalidBlobVersionedHash {
                    index,
                    hash: *hash,
                    version: hash[0],
                });
            }
            blob_gas = blob_gas.saturating_add(count.saturating_mul(DATA_GAS_PER_BLOB));
        }

        if let Some(authorizations) = tx.authorization_list() {
            if authorizations.is_empty() {
                return Err(ConsensusError::EmptyAuthorizationList { index });
            }
        }
    }

    if let Some(params) = blob_params {
        let max = params.max_blob_gas_per_block();
        if blob_gas > max {
            return Err(ConsensusError::BlobGasUsedAboveMax { blob_gas_used: blob_gas, max });
        }
    }
    if active(EthereumHardfork::Cancun) {
        let header_blob_gas = header
            .blob_gas_used
            .ok_or(ConsensusError::MissingField { field: "blob_gas_used", fork: "Cancun" })?;
        if header_blob_gas != blob_gas {
            return Err(ConsensusError::BlobGasUsedMismatch {
                header: header_blob_gas,
                transactions: blob_gas,
            });
        }
    }
    Ok(())
}
