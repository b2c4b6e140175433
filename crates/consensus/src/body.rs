//! Body rules: the block body against its header and the fork rules, before execution.

use crate::ConsensusError;
use alloy_consensus::{
    proofs::{calculate_ommers_root, calculate_transaction_root, calculate_withdrawals_root},
    Block, Transaction, TxEip4844Variant, TxEnvelope, TxType,
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
/// - EIP-7702 transactions have a non-empty authorization list;
/// - blob transactions appear without their sidecar (blobs, commitments, proofs);
/// - stateless fee caps: priority fee at most the max fee, max fee at least the base fee, max
///   blob fee at least the blob base fee (also checked by the EVM; cheap to reject early).
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
            let header_root = header.withdrawals_root.ok_or(ConsensusError::MissingField {
                field: "withdrawals_root",
                fork: "Shanghai",
            })?;
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
    let blob_base_fee = blob_params
        .zip(header.excess_blob_gas)
        .map(|(params, excess)| params.calc_blob_fee(excess));
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

        validate_fees(index, tx, header.base_fee_per_gas, blob_base_fee)?;

        if let TxEnvelope::Eip4844(signed) = tx {
            if matches!(signed.tx(), TxEip4844Variant::TxEip4844WithSidecar(_)) {
                return Err(ConsensusError::BlobSidecarInBlock { index });
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

/// Fee caps that need no state: tip at most the fee cap, fee cap at least the block's base fee,
/// blob fee cap at least the block's blob base fee (geth `StateTransition::preCheck`).
fn validate_fees(
    index: usize,
    tx: &TxEnvelope,
    base_fee: Option<u64>,
    blob_base_fee: Option<u128>,
) -> Result<(), ConsensusError> {
    let max_fee = tx.max_fee_per_gas();
    if let Some(tip) = tx.max_priority_fee_per_gas() {
        if tip > max_fee {
            return Err(ConsensusError::PriorityFeeAboveMaxFee { index, tip, max_fee });
        }
    }
    if let Some(base_fee) = base_fee {
        if max_fee < u128::from(base_fee) {
            return Err(ConsensusError::MaxFeeBelowBaseFee { index, max_fee, base_fee });
        }
    }
    if let (Some(max_blob_fee), Some(blob_base_fee)) = (tx.max_fee_per_blob_gas(), blob_base_fee) {
        if max_blob_fee < blob_base_fee {
            return Err(ConsensusError::MaxBlobFeeBelowBlobBaseFee {
                index,
                max_blob_fee,
                blob_base_fee,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{block, child, genesis, spec};
    use alloy_consensus::{
        SignableTransaction, TxEip1559, TxEip2930, TxEip4844, TxEip7702, TxLegacy,
    };
    use alloy_eips::{
        eip4895::Withdrawal,
        eip7702::{Authorization, SignedAuthorization},
    };
    use alloy_primitives::{Address, Signature, B256, U256};

    fn sig() -> Signature {
        Signature::test_signature()
    }

    fn legacy(chain_id: Option<u64>) -> TxEnvelope {
        TxLegacy { chain_id, gas_price: 2_000_000_000, gas_limit: 21_000, ..Default::default() }
            .into_signed(sig())
            .into()
    }

    fn eip2930() -> TxEnvelope {
        TxEip2930 { chain_id: 1, gas_price: 2_000_000_000, gas_limit: 21_000, ..Default::default() }
            .into_signed(sig())
            .into()
    }

    fn eip1559(chain_id: u64, max_fee: u128, tip: u128) -> TxEnvelope {
        TxEip1559 {
            chain_id,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            gas_limit: 21_000,
            ..Default::default()
        }
        .into_signed(sig())
        .into()
    }

    fn blob_tx(blobs: usize, max_fee_per_blob_gas: u128) -> TxEnvelope {
        let mut hash = B256::ZERO;
        hash[0] = VERSIONED_HASH_VERSION_KZG;
        TxEip4844 {
            chain_id: 1,
            max_fee_per_gas: 2_000_000_000,
            gas_limit: 21_000,
            blob_versioned_hashes: vec![hash; blobs],
            max_fee_per_blob_gas,
            ..Default::default()
        }
        .into_signed(sig())
        .into()
    }

    fn eip7702(authorizations: usize) -> TxEnvelope {
        let auth = Authorization { chain_id: U256::from(1), address: Address::ZERO, nonce: 0 };
        let signed = SignedAuthorization::new_unchecked(auth, 0, U256::from(1), U256::from(1));
        TxEip7702 {
            chain_id: 1,
            max_fee_per_gas: 2_000_000_000,
            gas_limit: 100_000,
            authorization_list: vec![signed; authorizations],
            ..Default::default()
        }
        .into_signed(sig())
        .into()
    }

    /// A block on `network` with these transactions and its header's blob gas set to match.
    fn make(network: &str, txs: Vec<TxEnvelope>) -> (ChainSpec, Block<TxEnvelope>) {
        let spec = spec(network);
        let parent = genesis(&spec);
        let mut header = child(&spec, &parent, 12);
        if header.blob_gas_used.is_some() {
            let blobs: usize =
                txs.iter().filter_map(|t| t.blob_versioned_hashes()).map(<[_]>::len).sum();
            header.blob_gas_used = Some(blobs as u64 * DATA_GAS_PER_BLOB);
        }
        let block = block(&spec, header, txs, Vec::new());
        (spec, block)
    }

    fn check(network: &str, txs: Vec<TxEnvelope>) -> Result<(), ConsensusError> {
        let (spec, block) = make(network, txs);
        validate_block_pre_execution(&spec, &block)
    }

    #[test]
    fn valid_blocks_pass() {
        assert_eq!(check("Frontier", vec![legacy(None)]), Ok(()));
        assert_eq!(check("Berlin", vec![legacy(Some(1)), eip2930()]), Ok(()));
        assert_eq!(
            check(
                "Prague",
                vec![
                    legacy(Some(1)),
                    eip2930(),
                    eip1559(1, 2_000_000_000, 1),
                    blob_tx(2, 1),
                    eip7702(1)
                ]
            ),
            Ok(())
        );
    }

    #[test]
    fn roots_must_match_body() {
        let (spec, block) = make("Cancun", vec![eip1559(1, 2_000_000_000, 1)]);
        let mut b = block.clone();
        b.header.transactions_root = B256::repeat_byte(1);
        assert!(matches!(
            validate_block_pre_execution(&spec, &b),
            Err(ConsensusError::TransactionsRootMismatch { .. })
        ));
        let mut b = block.clone();
        b.header.ommers_hash = B256::repeat_byte(1);
        assert!(matches!(
            validate_block_pre_execution(&spec, &b),
            Err(ConsensusError::OmmersHashMismatch { .. })
        ));
        let mut b = block.clone();
        b.body.withdrawals =
            Some(vec![Withdrawal { index: 1, amount: 5, ..Default::default() }].into());
        assert!(matches!(
            validate_block_pre_execution(&spec, &b),
            Err(ConsensusError::WithdrawalsRootMismatch { .. })
        ));
        let mut b = block;
        b.body.withdrawals = None;
        assert_eq!(
            validate_block_pre_execution(&spec, &b),
            Err(ConsensusError::WithdrawalsMissing)
        );

        let (spec, mut b) = make("Paris", vec![]);
        assert_eq!(validate_block_pre_execution(&spec, &b), Ok(()));
        b.body.withdrawals = Some(Vec::new().into());
        assert_eq!(
            validate_block_pre_execution(&spec, &b),
            Err(ConsensusError::WithdrawalsUnexpected)
        );
    }

    #[test]
    fn ommer_count() {
        let spec = spec("London");
        let parent = genesis(&spec);
        let header = child(&spec, &parent, 12);
        let ommer = child(&spec, &parent, 13);
        let b = block::<TxEnvelope>(&spec, header.clone(), vec![], vec![ommer.clone(); 2]);
        assert_eq!(validate_block_pre_execution(&spec, &b), Ok(()));
        let b = block::<TxEnvelope>(&spec, header, vec![], vec![ommer.clone(); 3]);
        assert_eq!(
            validate_block_pre_execution(&spec, &b),
            Err(ConsensusError::TooManyOmmers { count: 3, max: 2 })
        );
        let spec = crate::test_utils::spec("Paris");
        let parent = genesis(&spec);
        let b = block::<TxEnvelope>(&spec, child(&spec, &parent, 12), vec![], vec![ommer]);
        assert_eq!(
            validate_block_pre_execution(&spec, &b),
            Err(ConsensusError::OmmersPostMerge { count: 1 })
        );
    }

    #[test]
    fn transaction_types_by_fork() {
        let cases = [
            ("Istanbul", eip2930(), 1, "Berlin"),
            ("Berlin", eip1559(1, 2_000_000_000, 1), 2, "London"),
            ("Shanghai", blob_tx(1, 1), 3, "Cancun"),
            ("Cancun", eip7702(1), 4, "Prague"),
        ];
        for (network, tx, tx_type, fork) in cases {
            assert_eq!(
                check(network, vec![tx]),
                Err(ConsensusError::TransactionTypeNotSupported { index: 0, tx_type, fork }),
                "{network}"
            );
        }
    }

    #[test]
    fn chain_ids() {
        assert_eq!(
            check("London", vec![legacy(Some(1)), eip1559(5, 2_000_000_000, 1)]),
            Err(ConsensusError::ChainIdMismatch { index: 1, expected: 1, got: 5 })
        );
        assert_eq!(
            check("London", vec![legacy(Some(3))]),
            Err(ConsensusError::ChainIdMismatch { index: 0, expected: 1, got: 3 })
        );
        assert_eq!(check("Homestead", vec![legacy(None)]), Ok(()));
        assert_eq!(
            check("Homestead", vec![legacy(Some(1))]),
            Err(ConsensusError::Eip155BeforeSpuriousDragon { index: 0 })
        );
        assert_eq!(check("SpuriousDragon", vec![legacy(Some(1))]), Ok(()));
    }

    #[test]
    fn blob_transactions() {
        assert_eq!(check("Cancun", vec![blob_tx(6, 1)]), Ok(()));
        assert_eq!(
            check("Cancun", vec![blob_tx(0, 1)]),
            Err(ConsensusError::BlobTransactionWithoutBlobs { index: 0 })
        );
        assert_eq!(
            check("Cancun", vec![blob_tx(7, 1)]),
            Err(ConsensusError::TooManyBlobsInTransaction { index: 0, count: 7, max: 6 })
        );
        assert_eq!(
            check("Cancun", vec![blob_tx(6, 1), blob_tx(1, 1)]),
            Err(ConsensusError::BlobGasUsedAboveMax {
                blob_gas_used: 7 * DATA_GAS_PER_BLOB,
                max: 6 * DATA_GAS_PER_BLOB
            })
        );
        // Osaka caps blobs per transaction at 6 although the block takes 9.
        assert!(matches!(
            check("Osaka", vec![blob_tx(7, 1)]),
            Err(ConsensusError::TooManyBlobsInTransaction { .. })
        ));
        assert_eq!(check("Osaka", vec![blob_tx(6, 1), blob_tx(3, 1)]), Ok(()));

        let mut bad_hash = blob_tx(1, 1);
        if let TxEnvelope::Eip4844(signed) = &mut bad_hash {
            if let TxEip4844Variant::TxEip4844(tx) = signed.tx_mut() {
                tx.blob_versioned_hashes[0][0] = 2;
            }
        }
        assert!(matches!(
            check("Cancun", vec![bad_hash]),
            Err(ConsensusError::InvalidBlobVersionedHash { index: 0, version: 2, .. })
        ));

        let (spec, mut b) = make("Cancun", vec![blob_tx(2, 1)]);
        b.header.blob_gas_used = Some(DATA_GAS_PER_BLOB);
        let err = validate_block_pre_execution(&spec, &b).unwrap_err();
        assert_eq!(
            err.to_string(),
            "blob gas used 131072 in header does not match 262144 in transactions"
        );
    }

    #[test]
    fn empty_authorization_list() {
        assert_eq!(
            check("Prague", vec![eip7702(0)]),
            Err(ConsensusError::EmptyAuthorizationList { index: 0 })
        );
    }

    #[test]
    fn fee_caps() {
        // The child of the test genesis has base fee 1 gwei.
        assert_eq!(
            check("London", vec![eip1559(1, 2_000_000_000, 2_000_000_001)]),
            Err(ConsensusError::PriorityFeeAboveMaxFee {
                index: 0,
                tip: 2_000_000_001,
                max_fee: 2_000_000_000
            })
        );
        assert_eq!(
            check("London", vec![eip1559(1, 999_999_999, 0)]),
            Err(ConsensusError::MaxFeeBelowBaseFee {
                index: 0,
                max_fee: 999_999_999,
                base_fee: 1_000_000_000
            })
        );
        assert_eq!(check("London", vec![eip1559(1, 1_000_000_000, 0)]), Ok(()));
        // Blob base fee at zero excess is 1 wei.
        assert_eq!(
            check("Cancun", vec![blob_tx(1, 0)]),
            Err(ConsensusError::MaxBlobFeeBelowBlobBaseFee {
                index: 0,
                max_blob_fee: 0,
                blob_base_fee: 1
            })
        );
    }
}
