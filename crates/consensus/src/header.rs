//! Header rules: those a header satisfies alone, and those linking it to its parent.

use crate::{ethash_difficulty, ConsensusError};
use alloy_consensus::{Header, EMPTY_OMMER_ROOT_HASH};
use alloy_eips::{
    eip1559::{BaseFeeParams, GAS_LIMIT_BOUND_DIVISOR, INITIAL_BASE_FEE},
    eip4844::DATA_GAS_PER_BLOB,
};
use alloy_primitives::B64;
use velarium_chainspec::{ChainSpec, EthereumHardforks};

/// Longest allowed `extra_data`, in bytes.
pub const MAXIMUM_EXTRA_DATA_SIZE: usize = alloy_consensus::constants::MAXIMUM_EXTRA_DATA_SIZE;
/// Smallest allowed gas limit.
pub const MINIMUM_GAS_LIMIT: u64 = 5000;
/// Largest allowed gas limit: 2^63 - 1 (geth's `MaxGasLimit`).
pub const MAXIMUM_GAS_LIMIT: u64 = i64::MAX as u64;
/// Extra data the blocks of the DAO fork window must carry on a pro-fork chain.
pub const DAO_FORK_EXTRA_DATA: &[u8] = b"dao-hard-fork";
/// Number of blocks, from the DAO fork block on, that carry [`DAO_FORK_EXTRA_DATA`].
pub const DAO_FORK_EXTRA_RANGE: u64 = 10;

/// Checks the rules a header satisfies on its own, given the fork rules active at its number and
/// timestamp:
///
/// - `extra_data` at most 32 bytes; `gas_used <= gas_limit <= 2^63 - 1`;
/// - after the merge: zero difficulty, zero nonce, empty ommers hash;
/// - fork fields present exactly from their fork: `base_fee_per_gas` (London),
///   `withdrawals_root` (Shanghai), `blob_gas_used`, `excess_blob_gas`,
///   `parent_beacon_block_root` (Cancun), `requests_hash` (Prague);
/// - `blob_gas_used` a multiple of `DATA_GAS_PER_BLOB` and at most the fork's block maximum;
/// - the DAO fork's extra-data rule for the ten blocks from the DAO fork block.
pub fn validate_header_standalone(spec: &ChainSpec, header: &Header) -> Result<(), ConsensusError> {
    if header.extra_data.len() > MAXIMUM_EXTRA_DATA_SIZE {
        return Err(ConsensusError::ExtraDataTooLong {
            len: header.extra_data.len(),
            max: MAXIMUM_EXTRA_DATA_SIZE,
        });
    }
    if header.gas_used > header.gas_limit {
        return Err(ConsensusError::GasUsedExceedsGasLimit {
            gas_used: header.gas_used,
            gas_limit: header.gas_limit,
        });
    }
    if header.gas_limit > MAXIMUM_GAS_LIMIT {
        return Err(ConsensusError::GasLimitTooHigh {
            gas_limit: header.gas_limit,
            max: MAXIMUM_GAS_LIMIT,
        });
    }

    if spec.is_merged(header.number) {
        if !header.difficulty.is_zero() {
            return Err(ConsensusError::DifficultyNonZeroPostMerge {
                difficulty: header.difficulty,
            });
        }
        if header.nonce != B64::ZERO {
            return Err(ConsensusError::NonceNonZeroPostMerge { nonce: header.nonce });
        }
        if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
            return Err(ConsensusError::OmmersHashNotEmptyPostMerge {
                ommers_hash: header.ommers_hash,
            });
        }
    }

    validate_fork_fields(spec, header)?;

    if let Some(blob_gas_used) = header.blob_gas_used {
        if blob_gas_used % DATA_GAS_PER_BLOB != 0 {
            return Err(ConsensusError::BlobGasUsedNotMultipleOfBlobGas {
                blob_gas_used,
                per_blob: DATA_GAS_PER_BLOB,
            });
        }
        if let Some(params) = spec.blob_params_at(header.timestamp) {
            let max = params.max_blob_gas_per_block();
            if blob_gas_used > max {
                return Err(ConsensusError::BlobGasUsedAboveMax { blob_gas_used, max });
            }
        }
    }

    validate_dao_extra_data(spec, header)
}

/// Checks that each fork-introduced header field is present exactly when its fork is active.
fn validate_fork_fields(spec: &ChainSpec, header: &Header) -> Result<(), ConsensusError> {
    let (number, timestamp) = (header.number, header.timestamp);
    let presence = |present: bool, active: bool, field: &'static str, fork: &'static str| {
        match (active, present) {
            (true, false) => Err(ConsensusError::MissingField { field, fork }),
            (false, true) => Err(ConsensusError::UnexpectedField { field, fork }),
            _ => Ok(()),
        }
    };
    let london = spec.is_london_active_at_block(number);
    presence(header.base_fee_per_gas.is_some(), london, "base_fee_per_gas", "London")?;
    let shanghai = spec.is_shanghai_active_at_timestamp(timestamp);
    presence(header.withdrawals_root.is_some(), shanghai, "withdrawals_root", "Shanghai")?;
    let cancun = spec.is_cancun_active_at_timestamp(timestamp);
    presence(header.blob_gas_used.is_some(), cancun, "blob_gas_used", "Cancun")?;
    presence(header.excess_blob_gas.is_some(), cancun, "excess_blob_gas", "Cancun")?;
    presence(
        header.parent_beacon_block_root.is_some(),
        cancun,
        "parent_beacon_block_root",
        "Cancun",
    )?;
    let prague = spec.is_prague_active_at_timestamp(timestamp);
    presence(header.requests_hash.is_some(), prague, "requests_hash", "Prague")
}

/// The DAO fork rule: on a chain with a DAO fork block, the ten blocks from it carry
/// `dao-hard-fork` as extra data if the chain supports the fork, and must not if it opposes it.
fn validate_dao_extra_data(spec: &ChainSpec, header: &Header) -> Result<(), ConsensusError> {
    let Some(dao_block) = spec.dao_fork_block() else { return Ok(()) };
    let end = dao_block.saturating_add(DAO_FORK_EXTRA_RANGE);
    if !(dao_block..end).contains(&header.number) {
        return Ok(());
    }
    let marked = header.extra_data.as_ref() == DAO_FORK_EXTRA_DATA;
    if marked != spec.dao_fork_support {
        return Err(ConsensusError::DaoExtraData {
            number: header.number,
            dao_block,
            end,
            support: spec.dao_fork_support,
            extra_data: header.extra_data.clone(),
        });
    }
    Ok(())
}

/// Checks the rules linking a header to its parent:
///
/// - `number == parent.number + 1`, `parent_hash == parent.hash_slow()`,
///   `timestamp > parent.timestamp`;
/// - gas limit at least 5000 and within `parent_gas_limit / 1024` (exclusive) of the parent's,
///   the parent's limit doubled (the EIP-1559 elasticity) at the London fork block;
/// - from London: `base_fee_per_gas` is the EIP-1559 successor of the parent's (1 gwei at the
///   fork block);
/// - from Cancun: `excess_blob_gas` is the EIP-4844 successor of the parent's (EIP-7918's
///   reserve-price rule from Osaka), with the blob parameters in force at the header's timestamp
///   and zero parent fields at the fork block;
/// - before the merge: `difficulty` is [`ethash_difficulty`].
pub fn validate_header_against_parent(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), ConsensusError> {
    if parent.number.checked_add(1) != Some(header.number) {
        return Err(ConsensusError::InvalidBlockNumber {
            number: header.number,
            parent_number: parent.number,
        });
    }
    let parent_hash = parent.hash_slow();
    if header.parent_hash != parent_hash {
        return Err(ConsensusError::ParentHashMismatch {
            expected: parent_hash,
            got: header.parent_hash,
        });
    }
    if header.timestamp <= parent.timestamp {
        return Err(ConsensusError::TimestampNotAfterParent {
            timestamp: header.timestamp,
            parent_timestamp: parent.timestamp,
        });
    }

    validate_gas_limit(spec, header, parent)?;

    if spec.is_london_active_at_block(header.number) {
        let got = header
            .base_fee_per_gas
            .ok_or(ConsensusError::MissingField { field: "base_fee_per_gas", fork: "London" })?;
        let expected = expected_base_fee(spec, parent);
        if got != expected {
            return Err(ConsensusError::InvalidBaseFee { expected, got });
        }
    }

    if spec.is_cancun_active_at_timestamp(header.timestamp) {
        let got = header
            .excess_blob_gas
            .ok_or(ConsensusError::MissingField { field: "excess_blob_gas", fork: "Cancun" })?;
        if let Some(expected) = expected_excess_blob_gas(spec, header.timestamp, parent) {
            if got != expected {
                return Err(ConsensusError::InvalidExcessBlobGas { expected, got });
            }
        }
    }

    if !spec.is_merged(header.number) {
        let expected = ethash_difficulty(spec, header.timestamp, header.number, parent);
        if header.difficulty != expected {
            return Err(ConsensusError::InvalidDifficulty { expected, got: header.difficulty });
        }
    }
    Ok(())
}

/// Gas limit bounds relative to the parent (geth `VerifyGaslimit`).
fn validate_gas_limit(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), ConsensusError> {
    let mut parent_gas_limit = parent.gas_limit;
    if spec.is_london_active_at_block(header.number) && !spec.is_london_active_at_block(parent.number)
    {
        // At the London fork block the target becomes limit / 2, so the limit doubles.
        let elasticity = BaseFeeParams::ethereum().elasticity_multiplier as u64;
        parent_gas_limit = parent_gas_limit.saturating_mul(elasticity);
    }
    let delta = parent_gas_limit.abs_diff(header.gas_limit);
    let bound = parent_gas_limit / GAS_LIMIT_BOUND_DIVISOR;
    if delta >= bound {
        return Err(ConsensusError::GasLimitChangeTooLarge {
            gas_limit: header.gas_limit,
            parent_gas_limit,
            delta,
            bound,
        });
    }
    if header.gas_limit < MINIMUM_GAS_LIMIT {
        return Err(ConsensusError::GasLimitBelowMinimum {
            gas_limit: header.gas_limit,
            min: MINIMUM_GAS_LIMIT,
        });
    }
    Ok(())
}

/// The base fee the child of `parent` must carry (London active at the child).
pub fn expected_base_fee(spec: &ChainSpec, parent: &Header) -> u64 {
    if !spec.is_london_active_at_block(parent.number) {
        return INITIAL_BASE_FEE;
    }
    parent.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(INITIAL_BASE_FEE)
}

/// The excess blob gas a child of `parent` with this timestamp must carry, `None` before Cancun.
///
/// Uses the blob parameters in force at `timestamp`; a parent without blob fields (the Cancun
/// fork block's parent) counts as zero. EIP-7918's reserve price applies when the parameters have
/// a blob base cost (Osaka on).
pub fn expected_excess_blob_gas(spec: &ChainSpec, timestamp: u64, parent: &Header) -> Option<u64> {
    let params = spec.blob_params_at(timestamp)?;
    let (excess, used) = match (parent.excess_blob_gas, parent.blob_gas_used) {
        (Some(excess), Some(used)) => (excess, used),
        _ => (0, 0),
    };
    // Without a blob base cost (Cancun, Prague) this is the EIP-4844 formula.
    Some(params.next_block_excess_blob_gas_osaka(
        excess,
        used,
        parent.base_fee_per_gas.unwrap_or_default(),
    ))
}
