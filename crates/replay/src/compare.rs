//! Differential check of one engine's [`BlockOutput`] against another's (the sequential oracle).

use alloy_consensus::TxReceipt;
use alloy_primitives::{Address, U256};
use revm::database::BundleAccount;
use std::collections::BTreeSet;
use velarium_executor::BlockOutput;

/// Like [`compare_outputs`], but the bundles must also be equal to the last field: accounts only
/// loaded, statuses, sizes and reverts included (what a node writes to its database).
pub fn compare_outputs_exactly(a: &BlockOutput, b: &BlockOutput) -> Result<(), String> {
    compare_outputs(a, b)?;
    if a == b {
        return Ok(());
    }
    let (x, y) = (&a.bundle, &b.bundle);
    if let Some((address, account)) = x.state.iter().find(|(k, v)| y.state.get(*k) != Some(*v)) {
        return Err(format!("bundle account {address}: {account:?} vs {:?}", y.state.get(address)));
    }
    if let Some(address) = y.state.keys().find(|k| !x.state.contains_key(*k)) {
        return Err(format!("bundle account {address} only in the second bundle"));
    }
    Err(format!(
        "bundle sizes {}/{} vs {}/{}, reverts {} vs {}, contracts {} vs {}",
        x.state_size,
        x.reverts_size,
        y.state_size,
        y.reverts_size,
        x.reverts.len(),
        y.reverts.len(),
        x.contracts.len(),
        y.contracts.len()
    ))
}

/// Compares two outputs of the same block and names the first difference.
///
/// Checked in order: receipt count, each receipt (type, status, cumulative gas, logs, bloom),
/// gas used, blob gas used, requests, then the state changes: for every account either bundle
/// touched (by address), its info (balance, nonce, code hash), whether it was destroyed, and the
/// present value of every storage slot; finally the new contracts. An account or slot present in
/// only one bundle counts as unchanged on the other side, so bundles that differ only in what
/// they loaded without changing compare equal.
pub fn compare_outputs(a: &BlockOutput, b: &BlockOutput) -> Result<(), String> {
    if a.receipts.len() != b.receipts.len() {
        return Err(format!("receipt count: {} vs {}", a.receipts.len(), b.receipts.len()));
    }
    for (index, (ra, rb)) in a.receipts.iter().zip(&b.receipts).enumerate() {
        if ra == rb {
            continue;
        }
        let what = if ra.tx_type() != rb.tx_type() {
            format!("type {:?} vs {:?}", ra.tx_type(), rb.tx_type())
        } else if ra.status_or_post_state() != rb.status_or_post_state() {
            format!("status {:?} vs {:?}", ra.status_or_post_state(), rb.status_or_post_state())
        } else if ra.cumulative_gas_used() != rb.cumulative_gas_used() {
            format!("cumulative gas {} vs {}", ra.cumulative_gas_used(), rb.cumulative_gas_used())
        } else if ra.logs().len() != rb.logs().len() {
            format!("log count {} vs {}", ra.logs().len(), rb.logs().len())
        } else if let Some(log) = ra.logs().iter().zip(rb.logs()).position(|(x, y)| x != y) {
            format!("log {log}: {:?} vs {:?}", ra.logs()[log], rb.logs()[log])
        } else {
            "bloom".to_string()
        };
        return Err(format!("receipt {index}: {what}"));
    }
    if a.gas_used != b.gas_used {
        return Err(format!("gas used {} vs {}", a.gas_used, b.gas_used));
    }
    if a.blob_gas_used != b.blob_gas_used {
        return Err(format!("blob gas used {} vs {}", a.blob_gas_used, b.blob_gas_used));
    }
    if a.requests != b.requests {
        return Err(format!("requests {:?} vs {:?}", a.requests, b.requests));
    }
    let addresses: BTreeSet<&Address> =
        a.bundle.state.keys().chain(b.bundle.state.keys()).collect();
    for address in addresses {
        compare_account(a.bundle.state.get(address), b.bundle.state.get(address))
            .map_err(|what| format!("account {address}: {what}"))?;
    }
    let hashes: BTreeSet<_> = a.bundle.contracts.keys().chain(b.bundle.contracts.keys()).collect();
    for hash in hashes {
        match (a.bundle.contracts.get(hash), b.bundle.contracts.get(hash)) {
            (Some(x), Some(y)) if x.original_bytes() != y.original_bytes() => {
                return Err(format!("contract {hash}: different bytecode"));
            }
            (Some(_), None) => return Err(format!("contract {hash}: only in the first output")),
            (None, Some(_)) => return Err(format!("contract {hash}: only in the second output")),
            _ => {}
        }
    }
    Ok(())
}

/// Compares one account's changes; `None` means the bundle did not change it.
fn compare_account(a: Option<&BundleAccount>, b: Option<&BundleAccount>) -> Result<(), String> {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (Some(only), None) | (None, Some(only)) => {
            let side = if a.is_some() { "first" } else { "second" };
            if only.info != only.original_info {
                return Err(format!(
                    "changed only in the {side} output: {:?} -> {:?}",
                    only.original_info, only.info
                ));
            }
            if only.was_destroyed() {
                return Err(format!("destroyed only in the {side} output"));
            }
            if let Some((slot, value)) = only.storage.iter().find(|(_, v)| v.is_changed()) {
                return Err(format!(
                    "slot {slot} changed only in the {side} output: {} -> {}",
                    value.original_value(),
                    value.present_value
                ));
            }
            return Ok(());
        }
        (None, None) => return Ok(()),
    };
    if a.info != b.info {
        return Err(format!("info {:?} vs {:?}", a.info, b.info));
    }
    if a.was_destroyed() != b.was_destroyed() {
        return Err(format!("destroyed {} vs {}", a.was_destroyed(), b.was_destroyed()));
    }
    let slots: BTreeSet<&U256> = a.storage.keys().chain(b.storage.keys()).collect();
    for slot in slots {
        // A slot one side did not list keeps its value from before the block (zero if the
        // account was destroyed and recreated).
        let value = |own: &BundleAccount, other: &BundleAccount| {
            own.storage.get(slot).map(|v| v.present_value).unwrap_or_else(|| {
                if own.was_destroyed() {
                    U256::ZERO
                } else {
                    other.storage.get(slot).map_or(U256::ZERO, |v| v.original_value())
                }
            })
        };
        let (va, vb) = (value(a, b), value(b, a));
        if va != vb {
            return Err(format!("slot {slot}: {va} vs {vb}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{Receipt, ReceiptEnvelope, ReceiptWithBloom};
    use alloy_primitives::address;
    use revm::{
        database::{states::StorageSlot, AccountStatus, BundleState},
        state::AccountInfo,
    };

    fn output(gas: u64, balance: u64, slot_value: u64) -> BlockOutput {
        let receipt = Receipt { status: true.into(), cumulative_gas_used: gas, logs: vec![] };
        let mut bundle = BundleState::default();
        let info = |b: u64| AccountInfo { balance: U256::from(b), ..Default::default() };
        let storage =
            [(U256::from(1), StorageSlot::new_changed(U256::ZERO, U256::from(slot_value)))]
                .into_iter()
                .collect();
        bundle.state.insert(
            address!("0x00000000000000000000000000000000000000aa"),
            BundleAccount::new(Some(info(0)), Some(info(balance)), storage, AccountStatus::Changed),
        );
        BlockOutput {
            receipts: vec![ReceiptEnvelope::Legacy(ReceiptWithBloom::from(receipt))],
            gas_used: gas,
            blob_gas_used: 0,
            requests: Default::default(),
            bundle,
        }
    }

    #[test]
    fn names_the_first_difference() {
        let base = output(21_000, 5, 7);
        assert_eq!(compare_outputs(&base, &base.clone()), Ok(()));
        let err = compare_outputs(&base, &output(21_001, 5, 7)).unwrap_err();
        assert!(err.starts_with("receipt 0: cumulative gas"), "{err}");
        let err = compare_outputs(&base, &output(21_000, 6, 7)).unwrap_err();
        assert!(err.contains("info"), "{err}");
        let err = compare_outputs(&base, &output(21_000, 5, 8)).unwrap_err();
        assert!(err.contains("slot 1: 7 vs 8"), "{err}");
        let mut empty = base.clone();
        empty.bundle = BundleState::default();
        let err = compare_outputs(&base, &empty).unwrap_err();
        assert!(err.contains("changed only in the first output"), "{err}");
    }

    #[test]
    fn unchanged_accounts_and_slots_are_ignored() {
        let base = output(21_000, 5, 7);
        let mut extra = base.clone();
        let info = AccountInfo { balance: U256::from(3), ..Default::default() };
        let untouched = [(U256::from(9), StorageSlot::new(U256::from(4)))].into_iter().collect();
        extra.bundle.state.insert(
            address!("0x00000000000000000000000000000000000000bb"),
            BundleAccount::new(Some(info.clone()), Some(info), untouched, AccountStatus::Loaded),
        );
        assert_eq!(compare_outputs(&base, &extra), Ok(()));
        assert_eq!(compare_outputs(&extra, &base), Ok(()));
    }
}
