//! Ethereum execution-layer header and body validation: the checks a client makes on a block
//! BEFORE executing it.
//!
//! Velarium's importer runs these rules on every block, then hands the block to the (parallel)
//! executor; rules that need the post-state (state root, receipts root, logs bloom, gas used,
//! per-transaction nonce/balance/intrinsic gas checks) belong to execution and are not here.
//!
//! The rules follow go-ethereum (`consensus/ethash`, `consensus/beacon`, `consensus/misc`) and
//! reth (`reth-ethereum-consensus`), fork by fork as the [`ChainSpec`] says:
//!
//! - [`validate_header_standalone`]: what a header must satisfy alone (sizes, proof-of-stake
//!   constants, fork-introduced fields present exactly from their fork, blob gas granularity, the
//!   DAO extra-data window);
//! - [`validate_header_against_parent`]: number, hash link, timestamp, gas limit bounds, EIP-1559
//!   base fee, EIP-4844/7918 excess blob gas, ethash [`ethash_difficulty`] before the merge;
//! - [`validate_block_pre_execution`]: body against header (transactions root, ommers hash,
//!   withdrawals root, blob gas used), transaction types and chain ids per fork, blob and
//!   EIP-7702 transaction shape;
//! - [`validate_ommers`]: ommer inclusion rules (kinship, duplicates, validity).
//!
//! All functions are pure: the caller supplies the parent and, for ommers, an ancestor lookup.
//! Every violation is a [`ConsensusError`] variant naming the rule and the values involved.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod difficulty;
mod error;
mod header;
mod ommers;
#[cfg(test)]
mod test_utils;

pub use alloy_consensus::Header;
pub use body::{validate_block_pre_execution, MAX_OMMERS};
pub use difficulty::{ethash_difficulty, MINIMUM_DIFFICULTY};
pub use error::ConsensusError;
pub use header::{
    expected_base_fee, expected_excess_blob_gas, validate_header_against_parent,
    validate_header_standalone, DAO_FORK_EXTRA_DATA, DAO_FORK_EXTRA_RANGE, MAXIMUM_EXTRA_DATA_SIZE,
    MAXIMUM_GAS_LIMIT, MINIMUM_GAS_LIMIT,
};
pub use ommers::{validate_ommers, AncestorLookup, MAX_OMMER_DEPTH};
use velarium_chainspec::ChainSpec;

/// Every header rule: [`validate_header_standalone`] then [`validate_header_against_parent`].
pub fn validate_header(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), ConsensusError> {
    validate_header_standalone(spec, header)?;
    validate_header_against_parent(spec, header, parent)
}
