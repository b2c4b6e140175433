//! How the cost of a block's state root grows with the state: the incremental tries against a
//! from-scratch root, as the state grows to millions of accounts and slots.
//!
//! `cargo run --release -p velarium-state --example root_growth [TOTAL_ENTRIES] [PER_BLOCK]`
//!
//! Each "block" creates `PER_BLOCK` new accounts, writes `PER_BLOCK` new slots of one of 64
//! contracts, and updates `PER_BLOCK` existing accounts' balances (like a block of transfers and
//! token mints); every tenth of the way the from-scratch root is timed once for comparison and
//! checked equal.

use alloy_primitives::{map::HashMap, Address, U256};
use revm::{
    database::{states::StorageSlot, AccountStatus, BundleAccount, BundleState},
    state::AccountInfo,
};
use std::time::Instant;
use velarium_state::InMemoryState;

fn address(i: u64) -> Address {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    bytes[12..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    Address::from(bytes)
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("a number"));
    let total = args.next().unwrap_or(2_000_000);
    let per_block = args.next().unwrap_or(1000);
    let contracts = 64u64;
    let mut state = InMemoryState::new();
    for c in 0..contracts {
        state.insert_account(address(u64::MAX - c), U256::from(1), 1, None, HashMap::default());
    }
    state.state_root();
    println!(
        "{:>12} {:>10} {:>16} {:>16}",
        "entries", "block", "incremental ms", "from scratch ms"
    );
    let (mut entries, mut next, mut slot, mut block) = (0u64, 0u64, 0u64, 0u64);
    let report_every = (total / per_block / 10).max(1);
    let mut window = Vec::new();
    while entries < total {
        let mut bundle = BundleState::default();
        for i in 0..per_block {
            let info = AccountInfo { balance: U256::from(next + 1), ..Default::default() };
            let account = BundleAccount::new(
                None,
                Some(info),
                Default::default(),
                AccountStatus::InMemoryChange,
            );
            bundle.state.insert(address(next), account);
            next += 1;
            if next > per_block {
                // An older account's balance changes.
                let old = (next * 7919) % (next - per_block);
                let info = AccountInfo { balance: U256::from(block + 7), ..Default::default() };
                let account = BundleAccount::new(
                    None,
                    Some(info),
                    Default::default(),
                    AccountStatus::Changed,
                );
                bundle.state.insert(address(old), account);
            }
            let contract = address(u64::MAX - (i % contracts));
            let entry = bundle.state.entry(contract).or_insert_with(|| {
                let info = AccountInfo { balance: U256::from(1), nonce: 1, ..Default::default() };
                BundleAccount::new(None, Some(info), Default::default(), AccountStatus::Changed)
            });
            entry.storage.insert(
                U256::from(slot),
                StorageSlot::new_changed(U256::ZERO, U256::from(slot + 1)),
            );
            slot += 1;
        }
        entries += 2 * per_block;
        block += 1;
        state.apply_bundle(&bundle);
        let t = Instant::now();
        let root = state.state_root();
        window.push(t.elapsed().as_secs_f64() * 1e3);
        if block % report_every == 0 || entries >= total {
            let t = Instant::now();
            let scratch = state.compute_state_root();
            let scratch_ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(root, scratch, "incremental root differs at block {block}");
            window.sort_by(f64::total_cmp);
            let median = window[window.len() / 2];
            println!("{entries:>12} {block:>10} {median:>16.3} {scratch_ms:>16.1}");
            window.clear();
        }
    }
}
