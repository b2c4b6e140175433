//! Block 0: the genesis header and state from a geth-format `genesis.json`.

use alloy_consensus::{constants::EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::{eip1559::INITIAL_BASE_FEE, eip7685::EMPTY_REQUESTS_HASH};
use alloy_primitives::{B256, B64};
use alloy_trie::EMPTY_ROOT_HASH;
use velarium_chainspec::{ChainSpec, ChainSpecError, EthereumHardforks, Genesis};
use velarium_state::InMemoryState;

/// Errors loading a genesis file.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid genesis.
    #[error("{path}: {source}")]
    Spec {
        /// The file.
        path: String,
        /// The cause.
        source: ChainSpecError,
    },
}

/// A loaded genesis: its chain spec, header and state.
#[derive(Debug, Clone)]
pub struct LoadedGenesis {
    /// Fork schedule and chain parameters.
    pub spec: ChainSpec,
    /// Block 0.
    pub header: Header,
    /// State after block 0.
    pub state: InMemoryState,
}

/// Reads and parses a genesis file.
pub fn load_genesis_file(path: &std::path::Path) -> Result<LoadedGenesis, GenesisError> {
    let p = path.display().to_string();
    let json = std::fs::read_to_string(path)
        .map_err(|source| GenesisError::Io { path: p.clone(), source })?;
    let (genesis, spec) = ChainSpec::genesis_from_json(&json)
        .map_err(|source| GenesisError::Spec { path: p, source })?;
    Ok(build_genesis(&genesis, spec))
}

/// Builds block 0 and its state: header fields follow the forks active at genesis.
pub fn build_genesis(genesis: &Genesis, spec: ChainSpec) -> LoadedGenesis {
    let mut state = InMemoryState::from_genesis_alloc(&genesis.alloc);
    let ts = genesis.timestamp;
    let london = spec.is_london_active_at_block(0);
    let shanghai = spec.is_shanghai_active_at_timestamp(ts);
    let cancun = spec.is_cancun_active_at_timestamp(ts);
    let prague = spec.is_prague_active_at_timestamp(ts);
    let header = Header {
        parent_hash: genesis.parent_hash.unwrap_or_default(),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.coinbase,
        state_root: state.state_root(),
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: Default::default(),
        difficulty: genesis.difficulty,
        number: genesis.number.unwrap_or_default(),
        gas_limit: genesis.gas_limit,
        gas_used: 0,
        timestamp: ts,
        extra_data: genesis.extra_data.clone(),
        mix_hash: genesis.mix_hash,
        nonce: B64::from(genesis.nonce),
        base_fee_per_gas: london
            .then(|| genesis.base_fee_per_gas.map_or(INITIAL_BASE_FEE, |f| f as u64)),
        withdrawals_root: shanghai.then_some(EMPTY_ROOT_HASH),
        blob_gas_used: cancun.then(|| genesis.blob_gas_used.unwrap_or_default()),
        excess_blob_gas: cancun.then(|| genesis.excess_blob_gas.unwrap_or_default()),
        parent_beacon_block_root: cancun.then_some(B256::ZERO),
        requests_hash: prague.then_some(EMPTY_REQUESTS_HASH),
        ..Default::default()
    };
    LoadedGenesis { spec, header, state }
}
