//! Chain specifications: which Ethereum rules apply at which block.
//!
//! A [`ChainSpec`] is built either from the `network` name of an Ethereum conformance fixture
//! (`Cancun`, `ConstantinopleFix`, `CancunToPragueAtTime15k`, `ArrowGlacierToParisAtDiffC0000`,
//! ...) with [`ChainSpec::from_network`], or from a geth-format `genesis.json` with
//! [`ChainSpec::from_genesis`]. Fork activations are alloy's [`ForkCondition`]s keyed by
//! alloy's [`EthereumHardfork`], so the spec plugs straight into alloy-evm's
//! `EthBlockExecutor` (it implements [`EthereumHardforks`] and [`EthExecutorSpec`]).
//!
//! The public networks mainnet, sepolia, holesky and hoodi are built in
//! ([`ChainSpec::mainnet`], ..., [`ChainSpec::builtin`] by name), from alloy-hardforks' fork
//! constants.
//!
//! The one rule alloy's hardfork model cannot express up front is a merge by total difficulty
//! whose block is not known in advance: such a spec starts with Paris pending
//! ([`ChainSpec::pending_merge_ttd`]) and the importer resolves it with
//! [`ChainSpec::set_merge_block`] when the first block reaches the terminal total difficulty.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use alloy_eips::eip7840::BlobParams;
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_genesis::ChainConfig;
pub use alloy_genesis::Genesis;
pub use alloy_hardforks::{EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{address, Address, U256};
pub use revm::primitives::hardfork::SpecId;

/// The mainnet deposit contract (EIP-6110), also used by the conformance fixtures and hoodi.
pub const MAINNET_DEPOSIT_CONTRACT: Address =
    address!("0x00000000219ab540356cbb839cbe05303d7705fa");

/// Sepolia's deposit contract (deployed after genesis).
pub const SEPOLIA_DEPOSIT_CONTRACT: Address =
    address!("0x7f02c3e3c98b133055b8b348b2ac625669ed295d");

/// Holesky's deposit contract (in its genesis allocation).
pub const HOLESKY_DEPOSIT_CONTRACT: Address =
    address!("0x4242424242424242424242424242424242424242");

/// Hoodi's deposit contract (in its genesis allocation, at mainnet's address).
pub const HOODI_DEPOSIT_CONTRACT: Address = MAINNET_DEPOSIT_CONTRACT;

/// The networks [`ChainSpec::builtin`] knows, by name.
pub const BUILTIN_CHAINS: &[&str] = &["mainnet", "sepolia", "holesky", "hoodi"];

/// Errors building a [`ChainSpec`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainSpecError {
    /// The fixture network name is not one we know.
    #[error("unknown network name `{0}`")]
    UnknownNetwork(String),
    /// The fork schedule goes backwards (a later fork activates before an earlier one).
    #[error("fork {later:?} activates before {earlier:?}")]
    ForkOrder {
        /// The earlier fork in Ethereum's order.
        earlier: EthereumHardfork,
        /// The later fork, scheduled before it.
        later: EthereumHardfork,
    },
    /// A `blobSchedule` entry is malformed.
    #[error("invalid blob schedule entry `{0}`: {1}")]
    BlobSchedule(String, String),
    /// The network is known but its rules are not implemented by revm 42.
    #[error("network `{0}` is not supported: {1}")]
    Unsupported(String, &'static str),
    /// The genesis file could not be parsed.
    #[error("invalid genesis file: {0}")]
    Genesis(String),
}

/// Block-numbered forks in activation order, with the fixture names that end at them.
const BLOCK_FORKS: &[EthereumHardfork] = &[
    EthereumHardfork::Frontier,
    EthereumHardfork::Homestead,
    EthereumHardfork::Tangerine,
    EthereumHardfork::SpuriousDragon,
    EthereumHardfork::Byzantium,
    EthereumHardfork::Constantinople,
    EthereumHardfork::Petersburg,
    EthereumHardfork::Istanbul,
    EthereumHardfork::MuirGlacier,
    EthereumHardfork::Berlin,
    EthereumHardfork::London,
    EthereumHardfork::ArrowGlacier,
    EthereumHardfork::GrayGlacier,
];

/// Timestamp-activated forks in order.
const TIME_FORKS: &[EthereumHardfork] = &[
    EthereumHardfork::Shanghai,
    EthereumHardfork::Cancun,
    EthereumHardfork::Prague,
    EthereumHardfork::Osaka,
    EthereumHardfork::Bpo1,
    EthereumHardfork::Bpo2,
    EthereumHardfork::Bpo3,
    EthereumHardfork::Bpo4,
    EthereumHardfork::Bpo5,
    EthereumHardfork::Amsterdam,
];

/// All forks in Ethereum's order (DAO excluded: it is an irregular state change, not a rule set).
fn ordered_forks() -> impl Iterator<Item = EthereumHardfork> {
    BLOCK_FORKS
        .iter()
        .copied()
        .chain(std::iter::once(EthereumHardfork::Paris))
        .chain(TIME_FORKS.iter().copied())
}

/// Maps a fixture fork name to the last alloy hardfork it enables.
fn fork_by_name(name: &str) -> Option<EthereumHardfork> {
    Some(match name {
        "Frontier" => EthereumHardfork::Frontier,
        "Homestead" => EthereumHardfork::Homestead,
        "EIP150" | "TangerineWhistle" => EthereumHardfork::Tangerine,
        "EIP158" | "SpuriousDragon" => EthereumHardfork::SpuriousDragon,
        "Byzantium" => EthereumHardfork::Byzantium,
        "Constantinople" => EthereumHardfork::Constantinople,
        "ConstantinopleFix" | "Petersburg" => EthereumHardfork::Petersburg,
        "Istanbul" => EthereumHardfork::Istanbul,
        "MuirGlacier" => EthereumHardfork::MuirGlacier,
        "Berlin" => EthereumHardfork::Berlin,
        "London" => EthereumHardfork::London,
        "ArrowGlacier" => EthereumHardfork::ArrowGlacier,
        "GrayGlacier" => EthereumHardfork::GrayGlacier,
        "Paris" | "Merge" => EthereumHardfork::Paris,
        "Shanghai" => EthereumHardfork::Shanghai,
        "Cancun" => EthereumHardfork::Cancun,
        "Prague" => EthereumHardfork::Prague,
        "Osaka" => EthereumHardfork::Osaka,
        "BPO1" => EthereumHardfork::Bpo1,
        "BPO2" => EthereumHardfork::Bpo2,
        "BPO3" => EthereumHardfork::Bpo3,
        "BPO4" => EthereumHardfork::Bpo4,
        "BPO5" => EthereumHardfork::Bpo5,
        "Amsterdam" => EthereumHardfork::Amsterdam,
        _ => return None,
    })
}

/// Default blob parameters of a fork, if the fork changes them.
fn default_blob_params(fork: EthereumHardfork) -> Option<BlobParams> {
    Some(match fork {
        EthereumHardfork::Cancun => BlobParams::cancun(),
        EthereumHardfork::Prague => BlobParams::prague(),
        EthereumHardfork::Osaka => BlobParams::osaka(),
        EthereumHardfork::Bpo1 => BlobParams::bpo1(),
        EthereumHardfork::Bpo2 => BlobParams::bpo2(),
        _ => return None,
    })
}

/// Which rules apply at which block: fork schedule, chain id, blob schedule, deposit contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Activation condition of every fork, in Ethereum's order. Forks absent here never activate.
    forks: Vec<(EthereumHardfork, ForkCondition)>,
    /// DAO fork block, if the chain applies the DAO irregular state change.
    dao_fork_block: Option<u64>,
    /// Whether the chain supports the DAO fork (extra-data rule of the ten blocks after it).
    pub dao_fork_support: bool,
    /// Address of the EIP-6110 deposit contract.
    pub deposit_contract_address: Option<Address>,
    /// Blob parameters per blob-changing fork: (fork, params).
    blob_schedule: Vec<(EthereumHardfork, BlobParams)>,
    /// Terminal total difficulty whose merge block is not yet known, if any.
    pending_merge_ttd: Option<U256>,
}

impl ChainSpec {
    /// A spec with the given `(fork, condition)` list, in any order.
    fn with_forks(chain_id: u64, forks: Vec<(EthereumHardfork, ForkCondition)>) -> Self {
        let mut spec = Self {
            chain_id,
            forks: Vec::new(),
            dao_fork_block: None,
            dao_fork_support: false,
            deposit_contract_address: Some(MAINNET_DEPOSIT_CONTRACT),
            blob_schedule: Vec::new(),
            pending_merge_ttd: None,
        };
        for fork in ordered_forks() {
            if let Some((_, cond)) = forks.iter().find(|(f, _)| *f == fork) {
                spec.forks.push((fork, *cond));
            }
        }
        spec.blob_schedule = spec
            .forks
            .iter()
            .filter_map(|(fork, _)| default_blob_params(*fork).map(|p| (*fork, p)))
            .collect();
        spec
    }

    /// Builds the spec of a conformance fixture's `network`: a single fork (`Cancun`) active from
    /// genesis, or a transition (`XToYAt5` by block, `XToYAtTime15k` by timestamp,
    /// `XToParisAtDiffC0000` by total difficulty).
    pub fn from_network(name: &str, chain_id: u64) -> Result<Self, ChainSpecError> {
        let unknown = || ChainSpecError::UnknownNetwork(name.to_string());
        if name == "Constantinople" {
            return Err(ChainSpecError::Unsupported(
                name.to_string(),
                "revm 42 implements Petersburg, not Constantinople's EIP-1283 SSTORE metering",
            ));
        }
        let (from, to, at) = match name.split_once("To") {
            None => (fork_by_name(name).ok_or_else(unknown)?, None, None),
            Some((from, rest)) => {
                let (to, at) = rest.split_once("At").ok_or_else(unknown)?;
                let from = fork_by_name(from).ok_or_else(unknown)?;
                if to == "Dao" {
                    // Homestead with the DAO fork's irregular state change at a block.
                    let block = at.parse::<u64>().map_err(|_| unknown())?;
                    let mut spec = Self::from_network(&format!("{from}"), chain_id)?;
                    spec.dao_fork_block = Some(block);
                    spec.dao_fork_support = true;
                    return Ok(spec);
                }
                (from, Some(fork_by_name(to).ok_or_else(unknown)?), Some(at))
            }
        };
        let transition = match at {
            None => None,
            Some(at) => Some(if let Some(time) = at.strip_prefix("Time") {
                let time = time.strip_suffix('k').map_or_else(
                    || time.parse::<u64>(),
                    |kilo| kilo.parse::<u64>().map(|k| k * 1000),
                );
                ForkCondition::Timestamp(time.map_err(|_| unknown())?)
            } else if let Some(diff) = at.strip_prefix("Diff") {
                let ttd = U256::from_str_radix(diff, 16).map_err(|_| unknown())?;
                ForkCondition::TTD {
                    activation_block_number: u64::MAX,
                    fork_block: None,
                    total_difficulty: ttd,
                }
            } else {
                ForkCondition::Block(at.parse::<u64>().map_err(|_| unknown())?)
            }),
        };
        let last = to.unwrap_or(from);
        let mut forks = Vec::new();
        let mut past_from = false;
        for fork in ordered_forks() {
            let genesis_cond = if fork == EthereumHardfork::Paris {
                ForkCondition::TTD {
                    activation_block_number: 0,
                    fork_block: Some(0),
                    total_difficulty: U256::ZERO,
                }
            } else if TIME_FORKS.contains(&fork) {
                ForkCondition::Timestamp(0)
            } else {
                ForkCondition::Block(0)
            };
            // "Constantinople" without the fix stops before Petersburg.
            let skip =
                fork == EthereumHardfork::Petersburg && (last == EthereumHardfork::Constantinople);
            if !skip {
                let cond = if past_from {
                    match (transition, fork) {
                        // Forks between a block transition and a timestamp fork (e.g. Paris)
                        // follow the same schedule.
                        (Some(ForkCondition::Timestamp(t)), f) if TIME_FORKS.contains(&f) => {
                            ForkCondition::Timestamp(t)
                        }
                        (Some(cond), _) => cond,
                        (None, _) => genesis_cond,
                    }
                } else {
                    genesis_cond
                };
                forks.push((fork, cond));
            }
            if fork == from {
                past_from = true;
            }
            if fork == last {
                break;
            }
        }
        let mut spec = Self::with_forks(chain_id, forks);
        if let Some(ForkCondition::TTD { total_difficulty, .. }) = transition {
            spec.pending_merge_ttd = Some(total_difficulty);
        }
        Ok(spec)
    }

    /// Builds a spec from a geth-format genesis file's `config`.
    pub fn from_genesis(genesis: &Genesis) -> Result<Self, ChainSpecError> {
        let c = &genesis.config;
        let mut forks = vec![(EthereumHardfork::Frontier, ForkCondition::Block(0))];
        let blocks = [
            (EthereumHardfork::Homestead, c.homestead_block),
            (EthereumHardfork::Tangerine, c.eip150_block),
            (EthereumHardfork::SpuriousDragon, c.eip158_block.or(c.eip155_block)),
            (EthereumHardfork::Byzantium, c.byzantium_block),
            (EthereumHardfork::Constantinople, c.constantinople_block),
            (EthereumHardfork::Petersburg, c.petersburg_block),
            (EthereumHardfork::Istanbul, c.istanbul_block),
            (EthereumHardfork::MuirGlacier, c.muir_glacier_block),
            (EthereumHardfork::Berlin, c.berlin_block),
            (EthereumHardfork::London, c.london_block),
            (EthereumHardfork::ArrowGlacier, c.arrow_glacier_block),
            (EthereumHardfork::GrayGlacier, c.gray_glacier_block),
        ];
        forks.extend(blocks.iter().filter_map(|(f, b)| b.map(|b| (*f, ForkCondition::Block(b)))));
        let mut pending_merge_ttd = None;
        if let Some(ttd) = c.terminal_total_difficulty {
            let cond = match c.merge_netsplit_block {
                Some(block) => ForkCondition::TTD {
                    activation_block_number: block,
                    fork_block: Some(block),
                    total_difficulty: ttd,
                },
                None if ttd.is_zero() => ForkCondition::TTD {
                    activation_block_number: 0,
                    fork_block: Some(0),
                    total_difficulty: ttd,
                },
                None => {
                    pending_merge_ttd = Some(ttd);
                    ForkCondition::TTD {
                        activation_block_number: u64::MAX,
                        fork_block: None,
                        total_difficulty: ttd,
                    }
                }
            };
            forks.push((EthereumHardfork::Paris, cond));
        }
        let times = [
            (EthereumHardfork::Shanghai, c.shanghai_time),
            (EthereumHardfork::Cancun, c.cancun_time),
            (EthereumHardfork::Prague, c.prague_time),
            (EthereumHardfork::Osaka, c.osaka_time),
            (EthereumHardfork::Bpo1, c.bpo1_time),
            (EthereumHardfork::Bpo2, c.bpo2_time),
            (EthereumHardfork::Bpo3, c.bpo3_time),
            (EthereumHardfork::Bpo4, c.bpo4_time),
            (EthereumHardfork::Bpo5, c.bpo5_time),
            (EthereumHardfork::Amsterdam, c.amsterdam_time),
        ];
        forks
            .extend(times.iter().filter_map(|(f, t)| t.map(|t| (*f, ForkCondition::Timestamp(t)))));
        let mut spec = Self::with_forks(c.chain_id, forks);
        spec.pending_merge_ttd = pending_merge_ttd;
        spec.dao_fork_block = c.dao_fork_block;
        spec.dao_fork_support = c.dao_fork_support;
        if let Some(addr) = c.deposit_contract_address {
            spec.deposit_contract_address = Some(addr);
        }
        spec.check_order()?;
        for (name, params) in &c.blob_schedule {
            let fork = blob_fork_by_key(name).ok_or_else(|| {
                ChainSpecError::BlobSchedule(name.clone(), "unknown fork".to_string())
            })?;
            let params = if matches!(fork, EthereumHardfork::Cancun | EthereumHardfork::Prague) {
                *params
            } else {
                params
                    .with_blob_base_cost(alloy_eips::eip7840::BLOB_BASE_COST)
                    .with_max_blobs_per_tx(alloy_eips::eip7594::MAX_BLOBS_PER_TX_FUSAKA)
            };
            spec.set_blob_params(fork, params);
        }
        Ok(spec)
    }

    /// Parses a geth-format genesis JSON document and builds its spec.
    pub fn genesis_from_json(json: &str) -> Result<(Genesis, Self), ChainSpecError> {
        let genesis = parse_genesis(json)?;
        let spec = Self::from_genesis(&genesis)?;
        Ok((genesis, spec))
    }

    /// The spec of a built-in network by name ([`BUILTIN_CHAINS`], any letter case).
    pub fn builtin(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "mainnet" => Self::mainnet(),
            "sepolia" => Self::sepolia(),
            "holesky" => Self::holesky(),
            "hoodi" => Self::hoodi(),
            _ => return None,
        })
    }

    /// Ethereum mainnet (chain id 1): fork blocks up to Gray Glacier and the DAO fork, the merge
    /// at block 15,537,394 (terminal total difficulty 5.875e22), then Shanghai, Cancun, Prague,
    /// Osaka, BPO1 and BPO2 by timestamp. Forks and times are alloy-hardforks' constants.
    pub fn mainnet() -> Self {
        use alloy_hardforks::mainnet::*;
        let config = ChainConfig {
            chain_id: 1,
            homestead_block: Some(MAINNET_HOMESTEAD_BLOCK),
            dao_fork_block: Some(MAINNET_DAO_BLOCK),
            dao_fork_support: true,
            eip150_block: Some(MAINNET_TANGERINE_BLOCK),
            eip155_block: Some(MAINNET_SPURIOUS_DRAGON_BLOCK),
            eip158_block: Some(MAINNET_SPURIOUS_DRAGON_BLOCK),
            byzantium_block: Some(MAINNET_BYZANTIUM_BLOCK),
            constantinople_block: Some(MAINNET_CONSTANTINOPLE_BLOCK),
            petersburg_block: Some(MAINNET_PETERSBURG_BLOCK),
            istanbul_block: Some(MAINNET_ISTANBUL_BLOCK),
            muir_glacier_block: Some(MAINNET_MUIR_GLACIER_BLOCK),
            berlin_block: Some(MAINNET_BERLIN_BLOCK),
            london_block: Some(MAINNET_LONDON_BLOCK),
            arrow_glacier_block: Some(MAINNET_ARROW_GLACIER_BLOCK),
            gray_glacier_block: Some(MAINNET_GRAY_GLACIER_BLOCK),
            // `from_genesis` reads the merge netsplit block as the first post-merge block.
            merge_netsplit_block: Some(MAINNET_PARIS_BLOCK),
            terminal_total_difficulty: Some(MAINNET_PARIS_TTD),
            terminal_total_difficulty_passed: true,
            shanghai_time: Some(MAINNET_SHANGHAI_TIMESTAMP),
            cancun_time: Some(MAINNET_CANCUN_TIMESTAMP),
            prague_time: Some(MAINNET_PRAGUE_TIMESTAMP),
            osaka_time: Some(MAINNET_OSAKA_TIMESTAMP),
            bpo1_time: Some(MAINNET_BPO1_TIMESTAMP),
            bpo2_time: Some(MAINNET_BPO2_TIMESTAMP),
            deposit_contract_address: Some(MAINNET_DEPOSIT_CONTRACT),
            ..Default::default()
        };
        Self::from_builtin_config(config)
    }

    /// Sepolia (chain id 11155111): every block fork up to London at genesis (no DAO fork, no
    /// Arrow/Gray Glacier), proof of work until the merge at block 1,450,409 (terminal total
    /// difficulty 1.7e16), then Shanghai, Cancun, Prague, Osaka, BPO1 and BPO2 by timestamp.
    /// Amsterdam, which alloy-hardforks schedules, has not activated and is left out.
    pub fn sepolia() -> Self {
        use alloy_hardforks::sepolia::*;
        let config = ChainConfig {
            chain_id: 11_155_111,
            merge_netsplit_block: Some(SEPOLIA_PARIS_BLOCK),
            terminal_total_difficulty: Some(SEPOLIA_PARIS_TTD),
            terminal_total_difficulty_passed: true,
            shanghai_time: Some(SEPOLIA_SHANGHAI_TIMESTAMP),
            cancun_time: Some(SEPOLIA_CANCUN_TIMESTAMP),
            prague_time: Some(SEPOLIA_PRAGUE_TIMESTAMP),
            osaka_time: Some(SEPOLIA_OSAKA_TIMESTAMP),
            bpo1_time: Some(SEPOLIA_BPO1_TIMESTAMP),
            bpo2_time: Some(SEPOLIA_BPO2_TIMESTAMP),
            deposit_contract_address: Some(SEPOLIA_DEPOSIT_CONTRACT),
            ..genesis_block_forks(11_155_111)
        };
        Self::from_builtin_config(config)
    }

    /// Holesky (chain id 17000): proof of stake from genesis (London and Paris at block 0,
    /// terminal total difficulty 0), Shanghai, Cancun, Prague, Osaka, BPO1 and BPO2 by timestamp
    /// (Shanghai after the genesis timestamp 1,695,902,100).
    pub fn holesky() -> Self {
        use alloy_hardforks::holesky::*;
        let config = ChainConfig {
            terminal_total_difficulty: Some(U256::ZERO),
            terminal_total_difficulty_passed: true,
            shanghai_time: Some(HOLESKY_SHANGHAI_TIMESTAMP),
            cancun_time: Some(HOLESKY_CANCUN_TIMESTAMP),
            prague_time: Some(HOLESKY_PRAGUE_TIMESTAMP),
            osaka_time: Some(HOLESKY_OSAKA_TIMESTAMP),
            bpo1_time: Some(HOLESKY_BPO1_TIMESTAMP),
            bpo2_time: Some(HOLESKY_BPO2_TIMESTAMP),
            deposit_contract_address: Some(HOLESKY_DEPOSIT_CONTRACT),
            ..genesis_block_forks(17_000)
        };
        Self::from_builtin_config(config)
    }

    /// Hoodi (chain id 560048): proof of stake with Shanghai and Cancun from genesis, then
    /// Prague, Osaka, BPO1 and BPO2 by timestamp.
    pub fn hoodi() -> Self {
        use alloy_hardforks::hoodi::*;
        let config = ChainConfig {
            terminal_total_difficulty: Some(U256::ZERO),
            terminal_total_difficulty_passed: true,
            shanghai_time: Some(0),
            cancun_time: Some(0),
            prague_time: Some(HOODI_PRAGUE_TIMESTAMP),
            osaka_time: Some(HOODI_OSAKA_TIMESTAMP),
            bpo1_time: Some(HOODI_BPO1_TIMESTAMP),
            bpo2_time: Some(HOODI_BPO2_TIMESTAMP),
            deposit_contract_address: Some(HOODI_DEPOSIT_CONTRACT),
            ..genesis_block_forks(560_048)
        };
        Self::from_builtin_config(config)
    }

    /// The spec of a built-in network's config (whose schedule is known to be ordered).
    fn from_builtin_config(config: ChainConfig) -> Self {
        let genesis = Genesis { config, ..Default::default() };
        Self::from_genesis(&genesis).expect("a built-in network's fork schedule is ordered")
    }

    /// Checks that the fork schedule is monotonic within its block-based and time-based parts.
    fn check_order(&self) -> Result<(), ChainSpecError> {
        let mut last_block: Option<(EthereumHardfork, u64)> = None;
        let mut last_time: Option<(EthereumHardfork, u64)> = None;
        for (fork, cond) in &self.forks {
            let (slot, value) = match cond {
                ForkCondition::Block(b) => (&mut last_block, *b),
                ForkCondition::Timestamp(t) => (&mut last_time, *t),
                _ => continue,
            };
            if let Some((earlier, prev)) = *slot {
                if value < prev {
                    return Err(ChainSpecError::ForkOrder { earlier, later: *fork });
                }
            }
            *slot = Some((*fork, value));
        }
        Ok(())
    }

    /// Overrides the blob parameters of `fork` (a fixture's or genesis' `blobSchedule`).
    pub fn set_blob_params(&mut self, fork: EthereumHardfork, params: BlobParams) {
        match self.blob_schedule.iter_mut().find(|(f, _)| *f == fork) {
            Some(entry) => entry.1 = params,
            None => {
                self.blob_schedule.push((fork, params));
                let order: Vec<_> = ordered_forks().collect();
                self.blob_schedule
                    .sort_by_key(|(f, _)| order.iter().position(|o| o == f).unwrap_or(usize::MAX));
            }
        }
    }

    /// Applies a conformance fixture's `config.blobSchedule` object
    /// (`{"Cancun": {"target": "0x03", "max": "0x06", "baseFeeUpdateFraction": "0x32f0ed"}}`).
    pub fn apply_fixture_blob_schedule(
        &mut self,
        schedule: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ChainSpecError> {
        for (name, value) in schedule {
            let err = |msg: &str| ChainSpecError::BlobSchedule(name.clone(), msg.to_string());
            let Some(fork) = fork_by_name(name).or_else(|| blob_fork_by_key(name)) else {
                return Err(err("unknown fork"));
            };
            let field = |key: &str| -> Result<u64, ChainSpecError> {
                let v = value.get(key).ok_or_else(|| err(&format!("missing `{key}`")))?;
                parse_quantity(v).ok_or_else(|| err(&format!("`{key}` is not a quantity")))
            };
            let base = default_blob_params(fork).unwrap_or_else(BlobParams::cancun);
            let params = BlobParams {
                target_blob_count: field("target")?,
                max_blob_count: field("max")?,
                update_fraction: field("baseFeeUpdateFraction")? as u128,
                ..base
            };
            self.set_blob_params(fork, params);
        }
        Ok(())
    }

    /// The activation condition of `fork` ([`ForkCondition::Never`] if it is not scheduled).
    pub fn fork(&self, fork: EthereumHardfork) -> ForkCondition {
        if fork == EthereumHardfork::Dao {
            return self.dao_fork_block.map_or(ForkCondition::Never, ForkCondition::Block);
        }
        self.forks.iter().find(|(f, _)| *f == fork).map_or(ForkCondition::Never, |(_, c)| *c)
    }

    /// Whether `fork` is active for a block with this number and timestamp.
    pub fn is_active(&self, fork: EthereumHardfork, number: u64, timestamp: u64) -> bool {
        self.fork(fork).active_at_timestamp_or_number(timestamp, number)
    }

    /// The DAO fork block, if the chain has one.
    pub const fn dao_fork_block(&self) -> Option<u64> {
        self.dao_fork_block
    }

    /// A terminal total difficulty whose merge block is still unknown.
    pub const fn pending_merge_ttd(&self) -> Option<U256> {
        self.pending_merge_ttd
    }

    /// Terminal total difficulty, if the chain merges.
    pub fn terminal_total_difficulty(&self) -> Option<U256> {
        self.fork(EthereumHardfork::Paris).ttd()
    }

    /// Resolves a pending merge: Paris rules apply from `number` on.
    pub fn set_merge_block(&mut self, number: u64) {
        if let Some(ttd) = self.pending_merge_ttd.take() {
            if let Some(entry) = self.forks.iter_mut().find(|(f, _)| *f == EthereumHardfork::Paris)
            {
                entry.1 = ForkCondition::TTD {
                    activation_block_number: number,
                    fork_block: Some(number),
                    total_difficulty: ttd,
                };
            }
        }
    }

    /// Whether the block `number` follows proof-of-stake rules.
    pub fn is_merged(&self, number: u64) -> bool {
        self.fork(EthereumHardfork::Paris).active_at_block(number)
    }

    /// The revm rule set for a block.
    pub fn spec_id(&self, number: u64, timestamp: u64) -> SpecId {
        let active = |f| self.is_active(f, number, timestamp);
        use EthereumHardfork as H;
        let table = [
            (H::Amsterdam, SpecId::AMSTERDAM),
            (H::Osaka, SpecId::OSAKA),
            (H::Prague, SpecId::PRAGUE),
            (H::Cancun, SpecId::CANCUN),
            (H::Shanghai, SpecId::SHANGHAI),
        ];
        for (fork, id) in table {
            if active(fork) {
                return id;
            }
        }
        if self.is_merged(number) {
            return SpecId::MERGE;
        }
        let table = [
            (H::London, SpecId::LONDON),
            (H::Berlin, SpecId::BERLIN),
            (H::Istanbul, SpecId::ISTANBUL),
            // revm has no Constantinople rule set (EIP-1283 was withdrawn by Petersburg).
            (H::Constantinople, SpecId::PETERSBURG),
            (H::Byzantium, SpecId::BYZANTIUM),
            (H::SpuriousDragon, SpecId::SPURIOUS_DRAGON),
            (H::Tangerine, SpecId::TANGERINE),
            (H::Homestead, SpecId::HOMESTEAD),
        ];
        for (fork, id) in table {
            if active(fork) {
                return id;
            }
        }
        SpecId::FRONTIER
    }

    /// Blob parameters in force at `timestamp`, `None` before Cancun.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        self.blob_schedule
            .iter()
            .rev()
            .find(|(fork, _)| self.fork(*fork).active_at_timestamp(timestamp))
            .map(|(_, p)| *p)
    }

    /// Difficulty-bomb delay (in blocks) at `number`, for the ethash difficulty formula.
    pub fn bomb_delay(&self, number: u64) -> u64 {
        use EthereumHardfork as H;
        let table = [
            (H::GrayGlacier, 11_400_000),
            (H::ArrowGlacier, 10_700_000),
            (H::London, 9_700_000),
            (H::MuirGlacier, 9_000_000),
            (H::Constantinople, 5_000_000),
            (H::Byzantium, 3_000_000),
        ];
        table
            .iter()
            .find(|(fork, _)| self.fork(*fork).active_at_block(number))
            .map_or(0, |(_, delay)| *delay)
    }
}

/// A config with every block-numbered fork from Homestead to London at genesis (no DAO fork,
/// no Arrow/Gray Glacier): the testnets' start.
fn genesis_block_forks(chain_id: u64) -> ChainConfig {
    ChainConfig {
        chain_id,
        homestead_block: Some(0),
        eip150_block: Some(0),
        eip155_block: Some(0),
        eip158_block: Some(0),
        byzantium_block: Some(0),
        constantinople_block: Some(0),
        petersburg_block: Some(0),
        istanbul_block: Some(0),
        muir_glacier_block: Some(0),
        berlin_block: Some(0),
        london_block: Some(0),
        ..Default::default()
    }
}

/// Parses a geth-format genesis JSON document (a missing `config` is the default one).
pub fn parse_genesis(json: &str) -> Result<Genesis, ChainSpecError> {
    serde_json::from_str(json).map_err(|e| ChainSpecError::Genesis(e.to_string()))
}

/// Maps a `blobSchedule` key of a genesis file (`cancun`, `bpo1`, ...) to its fork.
fn blob_fork_by_key(key: &str) -> Option<EthereumHardfork> {
    Some(match key.to_ascii_lowercase().as_str() {
        "cancun" => EthereumHardfork::Cancun,
        "prague" => EthereumHardfork::Prague,
        "osaka" => EthereumHardfork::Osaka,
        "bpo1" => EthereumHardfork::Bpo1,
        "bpo2" => EthereumHardfork::Bpo2,
        "bpo3" => EthereumHardfork::Bpo3,
        "bpo4" => EthereumHardfork::Bpo4,
        "bpo5" => EthereumHardfork::Bpo5,
        "amsterdam" => EthereumHardfork::Amsterdam,
        _ => return None,
    })
}

/// Parses a JSON quantity: a `0x` hex string, a decimal string or a number.
pub fn parse_quantity(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

impl EthereumHardforks for ChainSpec {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        self.fork(fork)
    }
}

impl EthExecutorSpec for ChainSpec {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.deposit_contract_address
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_fork_networks() {
        let cancun = ChainSpec::from_network("Cancun", 1).unwrap();
        assert_eq!(cancun.spec_id(0, 0), SpecId::CANCUN);
        assert_eq!(cancun.spec_id(100, 1_000_000), SpecId::CANCUN);
        assert!(cancun.is_merged(0));
        assert_eq!(cancun.blob_params_at(0), Some(BlobParams::cancun()));

        let frontier = ChainSpec::from_network("Frontier", 1).unwrap();
        assert_eq!(frontier.spec_id(10, 10), SpecId::FRONTIER);
        assert!(!frontier.is_merged(10));
        assert_eq!(frontier.blob_params_at(10), None);

        assert!(matches!(
            ChainSpec::from_network("Constantinople", 1),
            Err(ChainSpecError::Unsupported(..))
        ));
        let fix = ChainSpec::from_network("ConstantinopleFix", 1).unwrap();
        assert_eq!(fix.spec_id(1, 1), SpecId::PETERSBURG);
        assert_eq!(ChainSpec::from_network("Paris", 1).unwrap().spec_id(1, 1), SpecId::MERGE);
        assert_eq!(ChainSpec::from_network("Prague", 1).unwrap().spec_id(1, 1), SpecId::PRAGUE);
        assert_eq!(ChainSpec::from_network("Osaka", 1).unwrap().spec_id(1, 1), SpecId::OSAKA);
    }

    #[test]
    fn block_transition_edges() {
        let s = ChainSpec::from_network("FrontierToHomesteadAt5", 1).unwrap();
        assert_eq!(s.spec_id(4, 0), SpecId::FRONTIER);
        assert_eq!(s.spec_id(5, 0), SpecId::HOMESTEAD);
        let s = ChainSpec::from_network("BerlinToLondonAt5", 1).unwrap();
        assert_eq!(s.spec_id(4, 0), SpecId::BERLIN);
        assert_eq!(s.spec_id(5, 0), SpecId::LONDON);
        let s = ChainSpec::from_network("EIP158ToByzantiumAt5", 1).unwrap();
        assert_eq!(s.spec_id(4, 0), SpecId::SPURIOUS_DRAGON);
        assert_eq!(s.spec_id(5, 0), SpecId::BYZANTIUM);
        let s = ChainSpec::from_network("ByzantiumToConstantinopleFixAt5", 1).unwrap();
        assert_eq!(s.spec_id(5, 0), SpecId::PETERSBURG);
        let s = ChainSpec::from_network("HomesteadToDaoAt5", 1).unwrap();
        assert_eq!(s.fork(EthereumHardfork::Dao), ForkCondition::Block(5));
        assert!(s.fork(EthereumHardfork::Dao).transitions_at_block(5));
        assert_eq!(s.spec_id(5, 0), SpecId::HOMESTEAD);
    }

    #[test]
    fn time_transition_edges() {
        let s = ChainSpec::from_network("CancunToPragueAtTime15k", 1).unwrap();
        assert_eq!(s.spec_id(1, 14_999), SpecId::CANCUN);
        assert_eq!(s.spec_id(1, 15_000), SpecId::PRAGUE);
        assert_eq!(s.blob_params_at(14_999), Some(BlobParams::cancun()));
        assert_eq!(s.blob_params_at(15_000), Some(BlobParams::prague()));
        let s = ChainSpec::from_network("ParisToShanghaiAtTime15k", 1).unwrap();
        assert_eq!(s.spec_id(1, 14_999), SpecId::MERGE);
        assert_eq!(s.spec_id(1, 15_000), SpecId::SHANGHAI);
    }

    #[test]
    fn ttd_transition_is_pending_until_resolved() {
        let mut s = ChainSpec::from_network("ArrowGlacierToParisAtDiffC0000", 1).unwrap();
        assert_eq!(s.pending_merge_ttd(), Some(U256::from(0xC0000)));
        assert!(!s.is_merged(3));
        assert_eq!(s.spec_id(3, 0), SpecId::LONDON);
        s.set_merge_block(3);
        assert!(s.is_merged(3));
        assert!(!s.is_merged(2));
        assert_eq!(s.spec_id(3, 0), SpecId::MERGE);
    }

    #[test]
    fn unknown_networks_are_errors() {
        for name in ["", "Foo", "CancunToFooAtTime15k", "FrontierToHomesteadAtX", "CancunTo"] {
            assert!(
                matches!(ChainSpec::from_network(name, 1), Err(ChainSpecError::UnknownNetwork(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn fixture_blob_schedule_overrides() {
        let mut s = ChainSpec::from_network("Prague", 1).unwrap();
        let json = serde_json::json!({
            "Cancun": {"target": "0x03", "max": "0x06", "baseFeeUpdateFraction": "0x32f0ed"},
            "Prague": {"target": "0x04", "max": "0x08", "baseFeeUpdateFraction": "0x4c6964"}
        });
        s.apply_fixture_blob_schedule(json.as_object().unwrap()).unwrap();
        let p = s.blob_params_at(0).unwrap();
        assert_eq!((p.target_blob_count, p.max_blob_count), (4, 8));
        let bad = serde_json::json!({"Prague": {"target": "zz", "max": "0x08"}});
        assert!(s.apply_fixture_blob_schedule(bad.as_object().unwrap()).is_err());
    }

    /// Whether two activation conditions agree; for a merge by total difficulty, on the first
    /// post-merge block and the TTD (alloy's `fork_block` is the fork-id block, not ours).
    fn same_condition(ours: ForkCondition, alloys: ForkCondition) -> bool {
        match (ours, alloys) {
            (
                ForkCondition::TTD { activation_block_number: a, total_difficulty: t, .. },
                ForkCondition::TTD { activation_block_number: b, total_difficulty: u, .. },
            ) => a == b && t == u,
            _ => ours == alloys,
        }
    }

    #[test]
    fn builtin_networks_follow_alloy_hardforks() {
        let networks = [
            ("mainnet", 1, EthereumHardfork::mainnet().to_vec()),
            ("sepolia", 11_155_111, EthereumHardfork::sepolia().to_vec()),
            ("holesky", 17_000, EthereumHardfork::holesky().to_vec()),
            ("hoodi", 560_048, EthereumHardfork::hoodi().to_vec()),
        ];
        assert_eq!(BUILTIN_CHAINS, networks.each_ref().map(|n| n.0));
        for (name, chain_id, alloy) in networks {
            let spec = ChainSpec::builtin(name).unwrap();
            assert_eq!(spec.chain_id, chain_id, "{name}");
            assert_eq!(ChainSpec::builtin(&name.to_uppercase()), Some(spec.clone()));
            assert_eq!(spec.pending_merge_ttd(), None, "{name}: the merge block is known");
            for (fork, cond) in &alloy {
                // alloy lists the DAO fork at block 0 on the testnets, which never applied its
                // state change; Amsterdam (scheduled on sepolia) has not activated anywhere.
                let skipped = (*fork == EthereumHardfork::Dao && name != "mainnet")
                    || *fork == EthereumHardfork::Amsterdam;
                let want = if skipped { ForkCondition::Never } else { *cond };
                assert!(same_condition(spec.fork(*fork), want), "{name} {fork}: {cond:?}");
            }
            for (fork, _) in &spec.forks {
                assert!(alloy.iter().any(|(f, _)| f == fork), "{name}: {fork} not in alloy's list");
            }
        }
        assert_eq!(ChainSpec::builtin("nope"), None);
        assert_eq!(ChainSpec::builtin("goerli"), None);
        assert_eq!(ChainSpec::mainnet().deposit_contract_address, Some(MAINNET_DEPOSIT_CONTRACT));
        assert_eq!(ChainSpec::sepolia().deposit_contract_address, Some(SEPOLIA_DEPOSIT_CONTRACT));
        assert_eq!(ChainSpec::holesky().deposit_contract_address, Some(HOLESKY_DEPOSIT_CONTRACT));
        assert_eq!(ChainSpec::hoodi().deposit_contract_address, Some(MAINNET_DEPOSIT_CONTRACT));
    }

    #[test]
    fn builtin_networks_at_well_known_heights() {
        let s = ChainSpec::mainnet();
        let cases = [
            (0, 0, SpecId::FRONTIER),
            (1_150_000, 0, SpecId::HOMESTEAD),
            (4_370_000, 0, SpecId::BYZANTIUM),
            (7_280_000, 0, SpecId::PETERSBURG),
            (12_964_999, 0, SpecId::BERLIN),
            (12_965_000, 0, SpecId::LONDON),
            (15_537_393, 1_663_224_150, SpecId::LONDON),
            (15_537_394, 1_663_224_179, SpecId::MERGE),
            (17_034_870, 1_681_338_455, SpecId::SHANGHAI),
            (19_426_586, 1_710_338_123, SpecId::SHANGHAI),
            (19_426_587, 1_710_338_135, SpecId::CANCUN),
            (22_431_084, 1_746_612_311, SpecId::PRAGUE),
            (23_935_693, 1_764_798_539, SpecId::PRAGUE),
            (23_935_694, 1_764_798_551, SpecId::OSAKA),
        ];
        for (number, timestamp, id) in cases {
            assert_eq!(s.spec_id(number, timestamp), id, "mainnet block {number}");
        }
        assert_eq!(s.dao_fork_block(), Some(1_920_000));
        assert!(s.dao_fork_support);
        assert_eq!(
            s.terminal_total_difficulty(),
            Some(U256::from(58_750_000_000_000_000_000_000u128))
        );
        assert_eq!(s.bomb_delay(15_537_393), 11_400_000);
        assert!(s.blob_params_at(1_710_338_134).is_none());
        assert_eq!(s.blob_params_at(1_710_338_135), Some(BlobParams::cancun()));
        assert_eq!(s.blob_params_at(1_746_612_311), Some(BlobParams::prague()));
        assert_eq!(s.blob_params_at(1_764_798_551), Some(BlobParams::osaka()));
        assert_eq!(s.blob_params_at(1_765_290_071), Some(BlobParams::bpo1()));
        assert_eq!(s.blob_params_at(1_767_747_671), Some(BlobParams::bpo2()));
        assert_eq!(s.blob_params_at(1_767_747_671).unwrap().max_blob_count, 21);

        let s = ChainSpec::sepolia();
        assert_eq!(s.dao_fork_block(), None);
        assert_eq!(s.spec_id(0, 1_633_267_481), SpecId::LONDON);
        assert_eq!(s.terminal_total_difficulty(), Some(U256::from(17_000_000_000_000_000u64)));
        assert!(!s.is_merged(1_450_408));
        assert!(s.is_merged(1_450_409));
        assert_eq!(s.spec_id(1_450_408, 0), SpecId::LONDON);
        assert_eq!(s.spec_id(1_450_409, 0), SpecId::MERGE);
        assert_eq!(s.spec_id(2_990_908, 1_677_557_088), SpecId::SHANGHAI);
        assert_eq!(s.spec_id(5_187_023, 1_706_655_072), SpecId::CANCUN);
        assert_eq!(s.spec_id(7_836_331, 1_741_159_776), SpecId::PRAGUE);
        assert_eq!(s.spec_id(9_408_576, 1_760_427_360), SpecId::OSAKA);
        assert_eq!(s.spec_id(20_000_000, u64::MAX), SpecId::OSAKA, "no Amsterdam");
        assert_eq!(s.blob_params_at(1_761_607_008), Some(BlobParams::bpo2()));

        let s = ChainSpec::holesky();
        let genesis_time = 1_695_902_100;
        assert!(s.is_merged(0));
        assert_eq!(s.terminal_total_difficulty(), Some(U256::ZERO));
        assert_eq!(s.spec_id(0, genesis_time), SpecId::MERGE);
        assert_eq!(s.spec_id(6_697, 1_696_000_692), SpecId::MERGE);
        assert_eq!(s.spec_id(6_698, 1_696_000_704), SpecId::SHANGHAI);
        assert_eq!(s.spec_id(894_733, 1_707_305_664), SpecId::CANCUN);
        assert_eq!(s.spec_id(3_419_704, 1_740_434_112), SpecId::PRAGUE);
        assert_eq!(s.spec_id(4_000_000, 1_759_308_480), SpecId::OSAKA);

        let s = ChainSpec::hoodi();
        let genesis_time = 1_742_212_800;
        assert!(s.is_merged(0));
        assert_eq!(s.spec_id(0, genesis_time), SpecId::CANCUN);
        assert_eq!(s.blob_params_at(genesis_time), Some(BlobParams::cancun()));
        assert_eq!(s.spec_id(60_411, 1_742_999_820), SpecId::CANCUN);
        assert_eq!(s.spec_id(60_412, 1_742_999_832), SpecId::PRAGUE);
        assert_eq!(s.spec_id(1_507_304, 1_761_677_592), SpecId::OSAKA);
        assert_eq!(s.blob_params_at(1_762_365_720), Some(BlobParams::bpo1()));
    }

    #[test]
    fn genesis_files() {
        let (genesis, spec) = ChainSpec::genesis_from_json(
            r#"{"config":{"chainId":7,"homesteadBlock":0,"eip150Block":3,"eip155Block":6,
            "eip158Block":6,"byzantiumBlock":9,"constantinopleBlock":12,"petersburgBlock":15,
            "istanbulBlock":18,"berlinBlock":24,"londonBlock":27,"mergeNetsplitBlock":36,
            "terminalTotalDifficulty":4732352,"shanghaiTime":390,"cancunTime":420,
            "pragueTime":450,"osakaTime":480,"bpo1Time":510,
            "blobSchedule":{"cancun":{"target":3,"max":6,"baseFeeUpdateFraction":3338477},
            "bpo1":{"target":10,"max":15,"baseFeeUpdateFraction":8346193}}},
            "difficulty":"0x20000","gasLimit":"0x23f3e20","alloc":{}}"#,
        )
        .unwrap();
        assert_eq!(genesis.config.chain_id, 7);
        assert_eq!(spec.chain_id, 7);
        assert_eq!(spec.spec_id(2, 20), SpecId::HOMESTEAD);
        assert_eq!(spec.spec_id(3, 30), SpecId::TANGERINE);
        assert_eq!(spec.spec_id(35, 350), SpecId::LONDON);
        assert_eq!(spec.spec_id(36, 360), SpecId::MERGE);
        assert_eq!(spec.spec_id(39, 390), SpecId::SHANGHAI);
        assert_eq!(spec.spec_id(48, 480), SpecId::OSAKA);
        assert_eq!(spec.blob_params_at(509).unwrap().max_blob_count, 9);
        assert_eq!(spec.blob_params_at(510).unwrap().max_blob_count, 15);
        assert_eq!(spec.terminal_total_difficulty(), Some(U256::from(4732352)));

        assert!(matches!(ChainSpec::genesis_from_json("{"), Err(ChainSpecError::Genesis(_))));
        assert!(matches!(
            ChainSpec::genesis_from_json(r#"{"config":{"chainId":"x"},"alloc":{}}"#),
            Err(ChainSpecError::Genesis(_))
        ));
        let backwards = r#"{"config":{"chainId":1,"homesteadBlock":5,"eip150Block":2},"alloc":{}}"#;
        assert!(matches!(
            ChainSpec::genesis_from_json(backwards),
            Err(ChainSpecError::ForkOrder { .. })
        ));
    }
}
