//! Block 0: the genesis header and state from a geth-format `genesis.json`, or of a built-in
//! network ([`builtin`]: mainnet, sepolia, holesky, hoodi).

use alloy_consensus::{constants::EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::{eip1559::INITIAL_BASE_FEE, eip7685::EMPTY_REQUESTS_HASH};
use alloy_primitives::{B256, B64};
use alloy_trie::EMPTY_ROOT_HASH;
use std::io::Read;
pub use velarium_chainspec::BUILTIN_CHAINS;
use velarium_chainspec::{parse_genesis, ChainSpec, ChainSpecError, EthereumHardforks, Genesis};
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
    /// No built-in network has this name.
    #[error("unknown chain `{name}` (known: {})", BUILTIN_CHAINS.join(", "))]
    UnknownChain {
        /// The name asked for.
        name: String,
    },
}

/// The built-in networks' genesis files (geth format without `config`, gzipped; see
/// `res/README.md` for their sources), by name.
const BUILTIN_GENESIS: [(&str, &[u8]); 4] = [
    ("mainnet", include_bytes!("../res/mainnet.json.gz")),
    ("sepolia", include_bytes!("../res/sepolia.json.gz")),
    ("holesky", include_bytes!("../res/holesky.json.gz")),
    ("hoodi", include_bytes!("../res/hoodi.json.gz")),
];

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

/// The genesis of a built-in network ([`BUILTIN_CHAINS`]: mainnet, sepolia, holesky, hoodi;
/// any letter case): its embedded allocation and header fields with [`ChainSpec::builtin`]'s
/// fork schedule.
pub fn builtin(name: &str) -> Result<LoadedGenesis, GenesisError> {
    let unknown = || GenesisError::UnknownChain { name: name.to_string() };
    let spec = ChainSpec::builtin(name).ok_or_else(unknown)?;
    let lower = name.to_ascii_lowercase();
    let (_, gz) = BUILTIN_GENESIS.iter().find(|(n, _)| *n == lower).ok_or_else(unknown)?;
    let path = format!("built-in {lower} genesis");
    let mut json = String::new();
    flate2::read::GzDecoder::new(*gz)
        .read_to_string(&mut json)
        .map_err(|source| GenesisError::Io { path: path.clone(), source })?;
    let genesis = parse_genesis(&json).map_err(|source| GenesisError::Spec { path, source })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::constants::{
        HOLESKY_GENESIS_HASH, HOODI_GENESIS_HASH, MAINNET_GENESIS_HASH, SEPOLIA_GENESIS_HASH,
    };
    use alloy_primitives::{b256, U256};
    use velarium_chainspec::{EthereumHardfork, SpecId};

    /// Each network's well-known genesis hash (also alloy-consensus' constant) and the genesis
    /// state root ethereumjs records for it (`@ethereumjs/common`, `ChainGenesis`).
    const NETWORKS: [(&str, B256, B256, B256); 4] = [
        (
            "mainnet",
            b256!("0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"),
            MAINNET_GENESIS_HASH,
            b256!("0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544"),
        ),
        (
            "sepolia",
            b256!("0x25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9"),
            SEPOLIA_GENESIS_HASH,
            b256!("0x5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494"),
        ),
        (
            "holesky",
            b256!("0xb5f7f912443c940f21fd611f12828d75b534364ed9e95ca4e307729a4661bde4"),
            HOLESKY_GENESIS_HASH,
            b256!("0x69d8c9d72f6fa4ad42d4702b433707212f90db395eb54dc20bc85de253788783"),
        ),
        (
            "hoodi",
            b256!("0xbbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b"),
            HOODI_GENESIS_HASH,
            b256!("0xda87d7f5f91c51508791bbcbd4aa5baf04917830b86985eeb9ad3d5bfb657576"),
        ),
    ];

    #[test]
    fn builtin_genesis_hashes_are_the_networks() {
        assert_eq!(BUILTIN_CHAINS, NETWORKS.map(|n| n.0));
        for (name, hash, alloy_hash, state_root) in NETWORKS {
            assert_eq!(hash, alloy_hash, "{name}: two sources agree");
            let g = builtin(name).unwrap();
            assert_eq!(g.header.number, 0, "{name}");
            assert_eq!(g.header.state_root, state_root, "{name}: state root");
            assert_eq!(g.header.hash_slow(), hash, "{name}: genesis hash");
            assert_eq!(Some(g.spec.clone()), ChainSpec::builtin(name), "{name}: spec");
        }
        assert_eq!(builtin("Sepolia").unwrap().header.hash_slow(), SEPOLIA_GENESIS_HASH);
    }

    #[test]
    fn builtin_genesis_headers_follow_the_forks_at_genesis() {
        let mainnet = builtin("mainnet").unwrap();
        assert_eq!(mainnet.header.base_fee_per_gas, None);
        assert_eq!(mainnet.header.difficulty, U256::from(0x400000000u64));
        assert_eq!(mainnet.spec.spec_id(0, 0), SpecId::FRONTIER);
        // London at 12,965,000; Cancun from timestamp 1710338135.
        assert_eq!(mainnet.spec.spec_id(12_964_999, 0), SpecId::BERLIN);
        assert_eq!(mainnet.spec.spec_id(12_965_000, 0), SpecId::LONDON);
        assert_eq!(mainnet.spec.spec_id(19_426_586, 1_710_338_123), SpecId::SHANGHAI);
        assert_eq!(mainnet.spec.spec_id(19_426_587, 1_710_338_135), SpecId::CANCUN);
        assert_eq!(
            mainnet.spec.fork(EthereumHardfork::Dao),
            velarium_chainspec::ForkCondition::Block(1_920_000)
        );

        let sepolia = builtin("sepolia").unwrap();
        assert_eq!(sepolia.spec.chain_id, 11_155_111);
        assert_eq!(sepolia.header.base_fee_per_gas, Some(INITIAL_BASE_FEE));
        assert_eq!(sepolia.header.withdrawals_root, None);
        assert!(!sepolia.spec.is_merged(1_450_408) && sepolia.spec.is_merged(1_450_409));

        let holesky = builtin("holesky").unwrap();
        assert_eq!(holesky.spec.chain_id, 17_000);
        assert_eq!(holesky.spec.spec_id(0, holesky.header.timestamp), SpecId::MERGE);
        assert_eq!(holesky.header.base_fee_per_gas, Some(INITIAL_BASE_FEE));
        assert_eq!(holesky.header.withdrawals_root, None, "Shanghai came after genesis");

        let hoodi = builtin("hoodi").unwrap();
        assert_eq!(hoodi.spec.chain_id, 560_048);
        assert_eq!(hoodi.spec.spec_id(0, hoodi.header.timestamp), SpecId::CANCUN);
        assert_eq!(hoodi.header.withdrawals_root, Some(EMPTY_ROOT_HASH));
        assert_eq!(hoodi.header.blob_gas_used, Some(0));
        assert_eq!(hoodi.header.excess_blob_gas, Some(0));
        assert_eq!(hoodi.header.parent_beacon_block_root, Some(B256::ZERO));
        assert_eq!(hoodi.header.requests_hash, None, "Prague came after genesis");
    }

    #[test]
    fn unknown_builtin_names_list_the_known_ones() {
        let err = builtin("nope").unwrap_err();
        assert!(matches!(err, GenesisError::UnknownChain { .. }));
        assert_eq!(
            err.to_string(),
            "unknown chain `nope` (known: mainnet, sepolia, holesky, hoodi)"
        );
    }
}
