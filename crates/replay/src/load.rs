//! Loading a block folder: `block.json` (a JSON-RPC block) into alloy types, `pre_state.json`
//! and `block_hashes.json` into an [`InMemoryState`].
//!
//! The JSON-RPC model here is deliberately small: the fields a signed transaction is built from,
//! and the block-level lists. The header is alloy's own [`Header`] deserialised from the same
//! object (its serde names are the JSON-RPC ones; extra fields such as `totalDifficulty` and
//! `size` are ignored). Everything rebuilt is checked against what the node reported: the header
//! hash, every transaction hash and signer, and the transactions and withdrawals roots.

use crate::ReplayError;
use alloy_consensus::{
    proofs::{calculate_transaction_root, calculate_withdrawals_root},
    transaction::SignerRecoverable,
    Header, Signed, TxEip1559, TxEip2930, TxEip4844, TxEnvelope, TxLegacy,
};
use alloy_eips::{eip2930::AccessList, eip4895::Withdrawal};
use alloy_primitives::{
    map::HashMap, Address, Bytes, Signature, TxKind, B256, U128, U256, U64, U8,
};
use revm::bytecode::Bytecode;
use serde::{de::DeserializeOwned, Deserialize};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};
use velarium_executor::RecoveredTx;
use velarium_state::InMemoryState;

/// Mainnet's Homestead block: from it on, EIP-2 rejects signatures with `s > secp256k1n / 2`.
const HOMESTEAD_BLOCK: u64 = alloy_hardforks::mainnet::MAINNET_HOMESTEAD_BLOCK;

/// One mainnet block, ready to execute on top of its (partial) pre-state.
#[derive(Debug, Clone)]
pub struct MainnetBlock {
    /// Block number.
    pub number: u64,
    /// Block hash (checked to equal `header.hash_slow()`).
    pub hash: B256,
    /// The header, rebuilt from `block.json`.
    pub header: Header,
    /// Signed transactions with their senders (each hash and signer checked against the JSON).
    pub transactions: Vec<RecoveredTx>,
    /// Ommer headers. Always empty: `block.json` lists only the ommers' hashes (see
    /// [`ommer_hashes`](Self::ommer_hashes)), so ommer rewards are not applied on replay.
    pub ommers: Vec<Header>,
    /// Hashes of the block's ommers (`uncles`). Non-empty means the replayed post-state lacks the
    /// ommer rewards: the miner's 1/32-per-ommer inclusion bonus and each ommer miner's reward.
    /// Receipts and gas do not depend on them (rewards are paid after the last transaction).
    pub ommer_hashes: Vec<B256>,
    /// Withdrawals (Shanghai and later).
    pub withdrawals: Option<Vec<Withdrawal>>,
    /// The parent's state, restricted to what the block touches, plus ancestor hashes.
    pub state: InMemoryState,
}

/// The fields of `block.json` beyond the header.
#[derive(Debug, Deserialize)]
struct RpcBlock {
    hash: B256,
    #[serde(default)]
    uncles: Vec<B256>,
    transactions: Vec<RpcTransaction>,
    #[serde(default)]
    withdrawals: Option<Vec<Withdrawal>>,
}

/// A JSON-RPC transaction: what is needed to rebuild and check the signed transaction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcTransaction {
    hash: B256,
    /// Absent in some very old node responses: legacy.
    #[serde(rename = "type", default)]
    tx_type: Option<U8>,
    from: Address,
    to: Option<Address>,
    nonce: U64,
    value: U256,
    gas: U64,
    input: Bytes,
    gas_price: Option<U128>,
    max_fee_per_gas: Option<U128>,
    max_priority_fee_per_gas: Option<U128>,
    max_fee_per_blob_gas: Option<U128>,
    chain_id: Option<U64>,
    access_list: Option<AccessList>,
    blob_versioned_hashes: Option<Vec<B256>>,
    r: U256,
    s: U256,
    v: Option<U64>,
    y_parity: Option<U64>,
}

/// One account of `pre_state.json`.
#[derive(Debug, Deserialize)]
struct PreAccount {
    balance: U256,
    nonce: U64,
    #[serde(default)]
    code: Bytes,
    #[serde(default)]
    storage: BTreeMap<U256, U256>,
}

/// Reads and parses a JSON file.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ReplayError> {
    let text = std::fs::read(path)
        .map_err(|source| ReplayError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&text)
        .map_err(|source| ReplayError::Json { path: path.to_path_buf(), source })
}

/// Loads a block folder: `block.json`, `pre_state.json` and, if present, `block_hashes.json`.
///
/// Checks that the rebuilt header hashes to `hash`, that every rebuilt transaction hashes to its
/// `hash` and recovers to its `from`, that the transactions and withdrawals match the header's
/// roots, and (when the folder is named by a number) that the folder names this block.
pub fn load_block(dir: &Path) -> Result<MainnetBlock, ReplayError> {
    let block_path = dir.join("block.json");
    let json: serde_json::Value = read_json(&block_path)?;
    let json_err = |source| ReplayError::Json { path: block_path.clone(), source };
    let header = Header::deserialize(&json).map_err(json_err)?;
    let rpc = RpcBlock::deserialize(&json).map_err(json_err)?;
    drop(json);

    let number = header.number;
    if let Some(folder) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) {
        if folder != number {
            return Err(ReplayError::NumberMismatch { folder, number });
        }
    }
    let got = header.hash_slow();
    if got != rpc.hash {
        return Err(ReplayError::HeaderHash { expected: rpc.hash, got });
    }

    let mut transactions = Vec::with_capacity(rpc.transactions.len());
    for (index, tx) in rpc.transactions.iter().enumerate() {
        let envelope = build_envelope(tx).map_err(|what| ReplayError::Invalid {
            path: block_path.clone(),
            what: format!("transaction {index}: {what}"),
        })?;
        let got = *envelope.tx_hash();
        if got != tx.hash {
            return Err(ReplayError::TxHash { index, expected: tx.hash, got });
        }
        let recovered = if number >= HOMESTEAD_BLOCK {
            envelope.recover_signer()
        } else {
            envelope.recover_signer_unchecked()
        }
        .map_err(|_| ReplayError::InvalidSignature { index })?;
        if recovered != tx.from {
            return Err(ReplayError::Sender { index, expected: tx.from, recovered });
        }
        transactions.push(RecoveredTx::new_unchecked(envelope, recovered));
    }
    let got = calculate_transaction_root(&transactions);
    if got != header.transactions_root {
        return Err(ReplayError::Root {
            what: "transactions",
            expected: header.transactions_root,
            got,
        });
    }
    if let (Some(expected), Some(withdrawals)) = (header.withdrawals_root, &rpc.withdrawals) {
        let got = calculate_withdrawals_root(withdrawals);
        if got != expected {
            return Err(ReplayError::Root { what: "withdrawals", expected, got });
        }
    }

    let state = load_state(dir)?;
    Ok(MainnetBlock {
        number,
        hash: rpc.hash,
        header,
        transactions,
        ommers: Vec::new(),
        ommer_hashes: rpc.uncles,
        withdrawals: rpc.withdrawals,
        state,
    })
}

/// Builds the state from `pre_state.json` and the optional `block_hashes.json`.
fn load_state(dir: &Path) -> Result<InMemoryState, ReplayError> {
    let accounts: BTreeMap<Address, PreAccount> = read_json(&dir.join("pre_state.json"))?;
    let mut state = InMemoryState::new();
    for (address, account) in accounts {
        let code = (!account.code.is_empty()).then(|| Bytecode::new_raw(account.code));
        // Slots listed with value zero were read by the block but are empty: leave them out.
        let storage: HashMap<U256, U256> =
            account.storage.into_iter().filter(|(_, value)| !value.is_zero()).collect();
        state.insert_account(address, account.balance, account.nonce.to(), code, storage);
    }
    let hashes_path = dir.join("block_hashes.json");
    if hashes_path.is_file() {
        let hashes: BTreeMap<String, B256> = read_json(&hashes_path)?;
        for (number, hash) in hashes {
            let number = number.parse::<u64>().map_err(|_| ReplayError::Invalid {
                path: hashes_path.clone(),
                what: format!("`{number}` is not a decimal block number"),
            })?;
            state.insert_block_hash(number, hash);
        }
    }
    Ok(state)
}

/// Rebuilds a signed transaction from its JSON-RPC fields.
fn build_envelope(tx: &RpcTransaction) -> Result<TxEnvelope, String> {
    let missing = |field: &str| format!("missing `{field}`");
    let ty = tx.tx_type.map_or(0, |t| t.to::<u8>());
    let kind = tx.to.map_or(TxKind::Create, TxKind::Call);
    let nonce = tx.nonce.to::<u64>();
    let gas_limit = tx.gas.to::<u64>();
    let input = tx.input.clone();
    let access_list = || tx.access_list.clone().unwrap_or_default();
    let chain_id = || tx.chain_id.map(|c| c.to::<u64>()).ok_or_else(|| missing("chainId"));
    let max_fee =
        || tx.max_fee_per_gas.map(|v| v.to::<u128>()).ok_or_else(|| missing("maxFeePerGas"));
    let max_priority = || {
        tx.max_priority_fee_per_gas
            .map(|v| v.to::<u128>())
            .ok_or_else(|| missing("maxPriorityFeePerGas"))
    };
    let gas_price = || tx.gas_price.map(|v| v.to::<u128>()).ok_or_else(|| missing("gasPrice"));
    // Typed transactions carry the parity as `yParity` (and, redundantly, as `v` = 0 or 1).
    let typed_parity = || -> Result<bool, String> {
        match tx.y_parity.or(tx.v).map(|v| v.to::<u64>()) {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(other) => Err(format!("invalid y parity {other}")),
            None => Err(missing("yParity")),
        }
    };
    let envelope = match ty {
        0 => {
            // Legacy `v`: 27/28 before EIP-155, `chainId * 2 + 35 + parity` after.
            let v = tx.v.ok_or_else(|| missing("v"))?.to::<u64>();
            let (chain_id, parity) = match v {
                27 | 28 => (None, v == 28),
                v if v >= 35 => (Some((v - 35) / 2), (v - 35) % 2 == 1),
                v => return Err(format!("invalid legacy v {v}")),
            };
            let inner = TxLegacy {
                chain_id,
                nonce,
                gas_price: gas_price()?,
                gas_limit,
                to: kind,
                value: tx.value,
                input,
            };
            TxEnvelope::from(Signed::new_unhashed(inner, Signature::new(tx.r, tx.s, parity)))
        }
        1 => {
            let inner = TxEip2930 {
                chain_id: chain_id()?,
                nonce,
                gas_price: gas_price()?,
                gas_limit,
                to: kind,
                value: tx.value,
                access_list: access_list(),
                input,
            };
            let sig = Signature::new(tx.r, tx.s, typed_parity()?);
            TxEnvelope::from(Signed::new_unhashed(inner, sig))
        }
        2 => {
            let inner = TxEip1559 {
                chain_id: chain_id()?,
                nonce,
                gas_limit,
                max_fee_per_gas: max_fee()?,
                max_priority_fee_per_gas: max_priority()?,
                to: kind,
                value: tx.value,
                access_list: access_list(),
                input,
            };
            let sig = Signature::new(tx.r, tx.s, typed_parity()?);
            TxEnvelope::from(Signed::new_unhashed(inner, sig))
        }
        3 => {
            let inner = TxEip4844 {
                chain_id: chain_id()?,
                nonce,
                gas_limit,
                max_fee_per_gas: max_fee()?,
                max_priority_fee_per_gas: max_priority()?,
                to: tx.to.ok_or("a blob transaction cannot create a contract")?,
                value: tx.value,
                access_list: access_list(),
                blob_versioned_hashes: tx
                    .blob_versioned_hashes
                    .clone()
                    .ok_or_else(|| missing("blobVersionedHashes"))?,
                max_fee_per_blob_gas: tx
                    .max_fee_per_blob_gas
                    .map(|v| v.to::<u128>())
                    .ok_or_else(|| missing("maxFeePerBlobGas"))?,
                input,
            };
            let sig = Signature::new(tx.r, tx.s, typed_parity()?);
            TxEnvelope::from(Signed::new_unhashed(inner, sig))
        }
        other => return Err(format!("unsupported transaction type {other}")),
    };
    Ok(envelope)
}

/// The block folders under `dir`, sorted by block number: `dir` itself if it holds a
/// `block.json`, else its sub-folders that do (numeric names first, by number; then by name).
pub fn list_block_dirs(dir: &Path) -> Vec<PathBuf> {
    if dir.join("block.json").is_file() {
        return vec![dir.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("block.json").is_file())
        .collect();
    let key = |p: &PathBuf| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (name.parse::<u64>().unwrap_or(u64::MAX), name)
    };
    dirs.sort_by_cached_key(key);
    dirs
}
