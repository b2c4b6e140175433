//! The JSON shape of Ethereum's blockchain conformance fixtures (EEST and ethereum/tests).

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One test case: a genesis, blocks to import, and the expected head and state.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Case {
    /// Fork (`Cancun`) or transition (`CancunToPragueAtTime15k`) name.
    pub network: String,
    /// EEST's chain configuration (chain id, blob schedule); absent in ethereum/tests.
    #[serde(default)]
    pub config: Option<CaseConfig>,
    /// Pre-state.
    pub pre: BTreeMap<Address, FixtureAccount>,
    /// Genesis header (we use its `hash`).
    pub genesis_block_header: GenesisHeader,
    /// RLP of the genesis block.
    #[serde(rename = "genesisRLP")]
    pub genesis_rlp: Bytes,
    /// Blocks in import order.
    pub blocks: Vec<FixtureBlock>,
    /// Expected full post-state.
    #[serde(default)]
    pub post_state: Option<BTreeMap<Address, FixtureAccount>>,
    /// Expected post-state root (instead of `postState`).
    #[serde(default)]
    pub post_state_hash: Option<B256>,
    /// Expected head hash.
    pub lastblockhash: B256,
}

/// EEST's per-case chain configuration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseConfig {
    /// Chain id (hex quantity).
    #[serde(default)]
    pub chainid: Option<U256>,
    /// Blob parameters per fork.
    #[serde(default)]
    pub blob_schedule: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The parts of the fixture's genesis header we check.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenesisHeader {
    /// Block hash.
    pub hash: B256,
    /// State root.
    pub state_root: B256,
}

/// One block to import.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixtureBlock {
    /// The block's RLP (may be malformed on purpose).
    pub rlp: Bytes,
    /// Set when the block must be rejected; names the reason.
    #[serde(default)]
    pub expect_exception: Option<String>,
}

/// An account of `pre` or `postState`.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct FixtureAccount {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: U256,
    /// Runtime bytecode.
    pub code: Bytes,
    /// Storage slots (zero values may be listed).
    pub storage: BTreeMap<U256, U256>,
}
