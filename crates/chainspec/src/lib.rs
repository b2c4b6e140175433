//! Chain specifications: which Ethereum rules apply at which block.
//!
//! A [`ChainSpec`] is built either from the `network` name of an Ethereum conformance fixture
//! (`Cancun`, `ConstantinopleFix`, `CancunToPragueAtTime15k`, `ArrowGlacierToParisAtDiffC0000`,
//! ...) with [`ChainSpec::from_network`], or from a geth-format `genesis.json` with
//! [`ChainSpec::from_genesis`]. Fork activations are alloy's [`ForkCondition`]s keyed by
//! alloy's [`EthereumHardfork`], so the spec plugs straight into alloy-evm's
//! `EthBlockExecutor` (it implements [`EthereumHardforks`] and [`EthExecutorSpec`]).
//!
//! The one rule alloy's hardfork model cannot express up front is a merge by total difficulty
//! whose block is not known in advance: such a spec starts with Paris pending
//! ([`ChainSpec::pending_merge_ttd`]) and the importer resolves it with
//! [`ChainSpec::set_merge_block`] when the first block reaches the terminal total difficulty.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use alloy_eips::eip7840::BlobParams;
use alloy_evm::eth::spec::EthExecutorSpec;
pub use alloy_genesis::Genesis;
pub use alloy_hardforks::{EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{address, Address, U256};
pub use revm::primitives::hardfork::SpecId;

/// The mainnet deposit contract (EIP-6110), also used by the conformance fixtures.
pub const MAINNET_DEPOSIT_CONTRACT: Address =
    address!("0x00000000219ab540356cbb839cbe05303d7705fa");

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
        let genesis: Genesis =
            serde_json::from_str(json).map_err(|e| ChainSpecError::Genesis(e.to_string()))?;
        let spec = Self::from_genesis(&genesis)?;
        Ok((genesis, spec))
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
