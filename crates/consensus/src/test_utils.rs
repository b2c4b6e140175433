//! Header and block builders for the unit tests.

use crate::{ethash_difficulty, expected_base_fee, expected_excess_blob_gas};
use alloy_consensus::{
    proofs::{calculate_ommers_root, calculate_transaction_root, calculate_withdrawals_root},
    Block, BlockBody, Header, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH,
};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{B256, U256};
use velarium_chainspec::{ChainSpec, EthereumHardforks};

/// The spec of a fixture network name.
pub(crate) fn spec(network: &str) -> ChainSpec {
    ChainSpec::from_network(network, 1).expect("known network")
}

/// A genesis header with every field the spec's rules at block 0 / timestamp 1000 require.
pub(crate) fn genesis(spec: &ChainSpec) -> Header {
    let mut header = Header {
        number: 0,
        timestamp: 1000,
        gas_limit: 30_000_000,
        gas_used: 15_000_000,
        difficulty: if spec.is_merged(0) { U256::ZERO } else { U256::from(1_000_000) },
        ..Default::default()
    };
    fill_fork_fields(spec, &mut header);
    header
}

/// Sets the fork fields to zero values present exactly when their fork is active.
fn fill_fork_fields(spec: &ChainSpec, header: &mut Header) {
    let (n, t) = (header.number, header.timestamp);
    header.base_fee_per_gas = spec.is_london_active_at_block(n).then_some(1_000_000_000);
    header.withdrawals_root = spec.is_shanghai_active_at_timestamp(t).then_some(EMPTY_ROOT_HASH);
    let cancun = spec.is_cancun_active_at_timestamp(t);
    header.blob_gas_used = cancun.then_some(0);
    header.excess_blob_gas = cancun.then_some(0);
    header.parent_beacon_block_root = cancun.then_some(B256::ZERO);
    header.requests_hash = spec.is_prague_active_at_timestamp(t).then_some(B256::ZERO);
}

/// A valid child of `parent`, `dt` seconds later, with the parent's gas limit.
pub(crate) fn child(spec: &ChainSpec, parent: &Header, dt: u64) -> Header {
    let mut header = Header {
        parent_hash: parent.hash_slow(),
        number: parent.number + 1,
        timestamp: parent.timestamp + dt,
        gas_limit: parent.gas_limit,
        gas_used: 0,
        ..Default::default()
    };
    fill_fork_fields(spec, &mut header);
    if header.base_fee_per_gas.is_some() {
        header.base_fee_per_gas = Some(expected_base_fee(spec, parent));
    }
    if header.excess_blob_gas.is_some() {
        header.excess_blob_gas = expected_excess_blob_gas(spec, header.timestamp, parent);
    }
    if !spec.is_merged(header.number) {
        header.difficulty = ethash_difficulty(spec, header.timestamp, header.number, parent);
    }
    header
}

/// A block around `header` whose roots commit to the given body (withdrawals empty from
/// Shanghai).
pub(crate) fn block<T: alloy_eips::Encodable2718>(
    spec: &ChainSpec,
    mut header: Header,
    transactions: Vec<T>,
    ommers: Vec<Header>,
) -> Block<T> {
    header.transactions_root = calculate_transaction_root(&transactions);
    header.ommers_hash =
        if ommers.is_empty() { EMPTY_OMMER_ROOT_HASH } else { calculate_ommers_root(&ommers) };
    let withdrawals = spec
        .is_shanghai_active_at_timestamp(header.timestamp)
        .then(|| Withdrawals::new(Vec::new()));
    header.withdrawals_root = withdrawals.as_ref().map(|w| calculate_withdrawals_root(w));
    Block { header, body: BlockBody { transactions, ommers, withdrawals } }
}
