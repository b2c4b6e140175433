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
    let presence = |present: bool, active: bool, field: &'static str, fork: &'static str| match (
        active, present,
    ) {
        (true, false) => Err(ConsensusError::MissingField { field, fork }),
        (false, true) => Err(ConsensusError::UnexpectedField { field, fork }),
        _ => Ok(()),
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
    if spec.is_london_active_at_block(header.number)
        && !spec.is_london_active_at_block(parent.number)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        test_utils::{child, genesis, spec},
        validate_header,
    };
    use alloy_primitives::{Bytes, B256, U256};

    /// A valid Cancun parent/child pair.
    fn cancun_pair() -> (ChainSpec, Header, Header) {
        let spec = spec("Cancun");
        let parent = genesis(&spec);
        let header = child(&spec, &parent, 12);
        (spec, parent, header)
    }

    fn check(spec: &ChainSpec, header: &Header, parent: &Header) -> Result<(), ConsensusError> {
        validate_header(spec, header, parent)
    }

    #[test]
    fn valid_child_passes_every_fork() {
        for network in [
            "Frontier",
            "Homestead",
            "Byzantium",
            "Istanbul",
            "Berlin",
            "London",
            "Paris",
            "Shanghai",
            "Cancun",
            "Prague",
            "Osaka",
        ] {
            let spec = spec(network);
            let parent = genesis(&spec);
            let header = child(&spec, &parent, 12);
            assert_eq!(check(&spec, &header, &parent), Ok(()), "{network}");
        }
    }

    #[test]
    fn extra_data_size() {
        let (spec, parent, mut header) = cancun_pair();
        header.extra_data = Bytes::from(vec![0u8; 32]);
        assert_eq!(check(&spec, &header, &parent), Ok(()));
        header.extra_data = Bytes::from(vec![0u8; 33]);
        let err = check(&spec, &header, &parent).unwrap_err();
        assert_eq!(err, ConsensusError::ExtraDataTooLong { len: 33, max: 32 });
        assert_eq!(err.to_string(), "extra data length 33 exceeds maximum 32");
    }

    #[test]
    fn gas_used_and_gas_limit_caps() {
        let (spec, parent, mut header) = cancun_pair();
        header.gas_used = header.gas_limit;
        assert_eq!(validate_header_standalone(&spec, &header), Ok(()));
        header.gas_used = header.gas_limit + 1;
        assert!(matches!(
            validate_header_standalone(&spec, &header),
            Err(ConsensusError::GasUsedExceedsGasLimit { .. })
        ));
        header.gas_used = 0;
        header.gas_limit = MAXIMUM_GAS_LIMIT;
        assert_eq!(validate_header_standalone(&spec, &header), Ok(()));
        header.gas_limit = MAXIMUM_GAS_LIMIT + 1;
        assert!(matches!(
            validate_header_standalone(&spec, &header),
            Err(ConsensusError::GasLimitTooHigh { .. })
        ));
        let _ = parent;
    }

    #[test]
    fn post_merge_constants() {
        let (spec, parent, header) = cancun_pair();
        let mut h = header.clone();
        h.difficulty = U256::from(1);
        assert!(matches!(
            check(&spec, &h, &parent),
            Err(ConsensusError::DifficultyNonZeroPostMerge { .. })
        ));
        let mut h = header.clone();
        h.nonce = B64::from(1u64);
        assert!(matches!(
            check(&spec, &h, &parent),
            Err(ConsensusError::NonceNonZeroPostMerge { .. })
        ));
        let mut h = header;
        h.ommers_hash = B256::repeat_byte(1);
        assert!(matches!(
            check(&spec, &h, &parent),
            Err(ConsensusError::OmmersHashNotEmptyPostMerge { .. })
        ));
        // Before the merge the same values are fine (difficulty aside).
        let spec = crate::test_utils::spec("London");
        let parent = genesis(&spec);
        let mut h = child(&spec, &parent, 12);
        h.nonce = B64::from(42u64);
        h.ommers_hash = B256::repeat_byte(1);
        assert_eq!(validate_header_standalone(&spec, &h), Ok(()));
    }

    #[test]
    fn fork_fields_present_exactly_from_their_fork() {
        type Setter = fn(&mut Header, bool);
        let cases: [(&str, &str, &str, Setter); 6] = [
            ("Berlin", "London", "base_fee_per_gas", |h, on| h.base_fee_per_gas = on.then_some(7)),
            ("Paris", "Shanghai", "withdrawals_root", |h, on| {
                h.withdrawals_root = on.then_some(B256::ZERO)
            }),
            ("Shanghai", "Cancun", "blob_gas_used", |h, on| h.blob_gas_used = on.then_some(0)),
            ("Shanghai", "Cancun", "excess_blob_gas", |h, on| h.excess_blob_gas = on.then_some(0)),
            ("Shanghai", "Cancun", "parent_beacon_block_root", |h, on| {
                h.parent_beacon_block_root = on.then_some(B256::ZERO)
            }),
            ("Cancun", "Prague", "requests_hash", |h, on| {
                h.requests_hash = on.then_some(B256::ZERO)
            }),
        ];
        for (before, fork, field, set) in cases {
            let spec_before = spec(before);
            let mut h = genesis(&spec_before);
            assert_eq!(validate_header_standalone(&spec_before, &h), Ok(()));
            set(&mut h, true);
            assert_eq!(
                validate_header_standalone(&spec_before, &h),
                Err(ConsensusError::UnexpectedField { field, fork }),
                "{field} before {fork}"
            );
            let spec_at = spec(fork);
            let mut h = genesis(&spec_at);
            assert_eq!(validate_header_standalone(&spec_at, &h), Ok(()));
            set(&mut h, false);
            assert_eq!(
                validate_header_standalone(&spec_at, &h),
                Err(ConsensusError::MissingField { field, fork }),
                "{field} at {fork}"
            );
        }
    }

    #[test]
    fn blob_gas_used_granularity_and_max() {
        let (spec, _, mut header) = cancun_pair();
        header.blob_gas_used = Some(6 * DATA_GAS_PER_BLOB);
        assert_eq!(validate_header_standalone(&spec, &header), Ok(()));
        header.blob_gas_used = Some(DATA_GAS_PER_BLOB + 1);
        assert!(matches!(
            validate_header_standalone(&spec, &header),
            Err(ConsensusError::BlobGasUsedNotMultipleOfBlobGas { .. })
        ));
        header.blob_gas_used = Some(7 * DATA_GAS_PER_BLOB);
        assert_eq!(
            validate_header_standalone(&spec, &header),
            Err(ConsensusError::BlobGasUsedAboveMax { blob_gas_used: 917_504, max: 786_432 })
        );
        // Prague raises the maximum to 9 blobs.
        let spec = crate::test_utils::spec("Prague");
        let mut header = genesis(&spec);
        header.blob_gas_used = Some(9 * DATA_GAS_PER_BLOB);
        assert_eq!(validate_header_standalone(&spec, &header), Ok(()));
        header.blob_gas_used = Some(10 * DATA_GAS_PER_BLOB);
        assert!(validate_header_standalone(&spec, &header).is_err());
    }

    #[test]
    fn number_hash_and_timestamp_link() {
        let (spec, parent, header) = cancun_pair();
        let mut h = header.clone();
        h.number = 2;
        assert_eq!(
            check(&spec, &h, &parent),
            Err(ConsensusError::InvalidBlockNumber { number: 2, parent_number: 0 })
        );
        let mut h = header.clone();
        h.parent_hash = B256::repeat_byte(9);
        assert!(matches!(
            check(&spec, &h, &parent),
            Err(ConsensusError::ParentHashMismatch { .. })
        ));
        let mut h = header.clone();
        h.timestamp = parent.timestamp;
        h.excess_blob_gas = expected_excess_blob_gas(&spec, h.timestamp, &parent);
        assert_eq!(
            check(&spec, &h, &parent),
            Err(ConsensusError::TimestampNotAfterParent {
                timestamp: 1000,
                parent_timestamp: 1000
            })
        );
        let mut h = header;
        h.timestamp = parent.timestamp + 1;
        assert_eq!(check(&spec, &h, &parent), Ok(()));
    }

    #[test]
    fn gas_limit_bounds() {
        let (spec, parent, header) = cancun_pair();
        let bound = parent.gas_limit / 1024;
        for (limit, ok) in [
            (parent.gas_limit + bound - 1, true),
            (parent.gas_limit - bound + 1, true),
            (parent.gas_limit + bound, false),
            (parent.gas_limit - bound, false),
        ] {
            let mut h = header.clone();
            h.gas_limit = limit;
            let res = check(&spec, &h, &parent);
            assert_eq!(res.is_ok(), ok, "{limit}: {res:?}");
            if !ok {
                assert!(matches!(res, Err(ConsensusError::GasLimitChangeTooLarge { .. })));
            }
        }
        // Minimum 5000.
        let mut parent = parent;
        parent.gas_limit = 5000;
        parent.gas_used = 0;
        let mut h = child(&spec, &parent, 12);
        assert_eq!(check(&spec, &h, &parent), Ok(()));
        h.gas_limit = 4999;
        let err = check(&spec, &h, &parent).unwrap_err();
        assert_eq!(err.to_string(), "gas limit 4999 below minimum 5000");
    }

    #[test]
    fn london_fork_block_doubles_gas_limit_and_sets_initial_base_fee() {
        let spec = spec("BerlinToLondonAt5");
        let mut parent = genesis(&spec);
        parent.number = 4;
        parent.gas_limit = 10_000_000;
        let mut h = child(&spec, &parent, 12);
        assert_eq!(h.base_fee_per_gas, Some(INITIAL_BASE_FEE));
        h.gas_limit = 20_000_000;
        assert_eq!(check(&spec, &h, &parent), Ok(()));
        // Unchanged limit is a change of 10M against the doubled 20M: too large.
        h.gas_limit = 10_000_000;
        assert!(matches!(
            check(&spec, &h, &parent),
            Err(ConsensusError::GasLimitChangeTooLarge { .. })
        ));
        h.gas_limit = 20_000_000;
        h.base_fee_per_gas = Some(INITIAL_BASE_FEE + 1);
        assert_eq!(
            check(&spec, &h, &parent).unwrap_err().to_string(),
            "invalid base fee: expected 1000000000, got 1000000001"
        );
    }

    #[test]
    fn base_fee_follows_eip1559() {
        let spec = spec("London");
        let mut parent = genesis(&spec);
        parent.number = 10;
        parent.base_fee_per_gas = Some(1_000_000_000);
        // At target: unchanged; full: +12.5%; empty: -12.5%.
        for (used, expected) in
            [(15_000_000, 1_000_000_000), (30_000_000, 1_125_000_000), (0, 875_000_000)]
        {
            parent.gas_used = used;
            assert_eq!(expected_base_fee(&spec, &parent), expected);
            let h = child(&spec, &parent, 12);
            assert_eq!(check(&spec, &h, &parent), Ok(()));
            let mut bad = h.clone();
            bad.base_fee_per_gas = Some(expected - 1);
            assert_eq!(
                check(&spec, &bad, &parent),
                Err(ConsensusError::InvalidBaseFee { expected, got: expected - 1 })
            );
        }
    }

    #[test]
    fn excess_blob_gas_cancun_formula() {
        let (spec, mut parent, _) = cancun_pair();
        parent.excess_blob_gas = Some(0);
        parent.blob_gas_used = Some(4 * DATA_GAS_PER_BLOB);
        let h = child(&spec, &parent, 12);
        assert_eq!(h.excess_blob_gas, Some(DATA_GAS_PER_BLOB));
        assert_eq!(check(&spec, &h, &parent), Ok(()));
        let mut bad = h;
        bad.excess_blob_gas = Some(0);
        assert_eq!(
            check(&spec, &bad, &parent),
            Err(ConsensusError::InvalidExcessBlobGas { expected: DATA_GAS_PER_BLOB, got: 0 })
        );
        // Below target the excess resets to zero.
        parent.blob_gas_used = Some(DATA_GAS_PER_BLOB);
        assert_eq!(expected_excess_blob_gas(&spec, 1012, &parent), Some(0));
    }

    #[test]
    fn excess_blob_gas_at_cancun_fork_block_uses_zero_parent_fields() {
        let spec = spec("ShanghaiToCancunAtTime15k");
        let mut parent = genesis(&spec);
        parent.timestamp = 14_990;
        assert_eq!(parent.excess_blob_gas, None);
        let h = child(&spec, &parent, 12);
        assert_eq!(h.excess_blob_gas, Some(0));
        assert_eq!(check(&spec, &h, &parent), Ok(()));
        let mut bad = h;
        bad.excess_blob_gas = Some(DATA_GAS_PER_BLOB);
        assert!(matches!(
            check(&spec, &bad, &parent),
            Err(ConsensusError::InvalidExcessBlobGas { .. })
        ));
    }

    #[test]
    fn excess_blob_gas_osaka_reserve_price() {
        let spec = spec("Osaka");
        let mut parent = genesis(&spec);
        parent.excess_blob_gas = Some(10 * DATA_GAS_PER_BLOB);
        parent.blob_gas_used = Some(8 * DATA_GAS_PER_BLOB);
        // Reserve price (8192 * base fee) above the blob price: excess grows by used * 3 / 9.
        parent.base_fee_per_gas = Some(1_000_000_000);
        let expected = 10 * DATA_GAS_PER_BLOB + 8 * DATA_GAS_PER_BLOB * 3 / 9;
        assert_eq!(expected_excess_blob_gas(&spec, 1012, &parent), Some(expected));
        let h = child(&spec, &parent, 12);
        assert_eq!(check(&spec, &h, &parent), Ok(()));
        let mut bad = h;
        bad.excess_blob_gas = Some(10 * DATA_GAS_PER_BLOB + 2 * DATA_GAS_PER_BLOB);
        assert_eq!(
            check(&spec, &bad, &parent),
            Err(ConsensusError::InvalidExcessBlobGas { expected, got: 12 * DATA_GAS_PER_BLOB })
        );
        // Cheap execution gas: the EIP-4844 formula (target 6 blobs).
        parent.base_fee_per_gas = Some(7);
        assert_eq!(expected_excess_blob_gas(&spec, 1012, &parent), Some(12 * DATA_GAS_PER_BLOB));
    }

    #[test]
    fn pow_difficulty_checked_against_parent() {
        let spec = spec("Byzantium");
        let parent = genesis(&spec);
        let h = child(&spec, &parent, 12);
        assert_eq!(check(&spec, &h, &parent), Ok(()));
        let mut bad = h;
        bad.difficulty += U256::from(1);
        assert!(matches!(
            check(&spec, &bad, &parent),
            Err(ConsensusError::InvalidDifficulty { .. })
        ));
    }

    #[test]
    fn dao_extra_data_window() {
        let spec = spec("HomesteadToDaoAt5");
        let mut parent = genesis(&spec);
        parent.number = 4;
        let mut h = child(&spec, &parent, 12);
        assert!(matches!(
            validate_header_standalone(&spec, &h),
            Err(ConsensusError::DaoExtraData { number: 5, support: true, .. })
        ));
        h.extra_data = Bytes::from_static(DAO_FORK_EXTRA_DATA);
        assert_eq!(check(&spec, &h, &parent), Ok(()));
        let mut late = h.clone();
        late.number = 15;
        late.extra_data = Bytes::new();
        assert_eq!(validate_header_standalone(&spec, &late), Ok(()));
        late.number = 14;
        assert!(validate_header_standalone(&spec, &late).is_err());

        // A chain opposing the fork forbids the marker.
        let (_, anti) = ChainSpec::genesis_from_json(
            r#"{"config":{"chainId":1,"homesteadBlock":0,"daoForkBlock":5,"daoForkSupport":false},
                "nonce":"0x0","timestamp":"0x0","extraData":"0x","gasLimit":"0x1000000",
                "difficulty":"0x20000","alloc":{}}"#,
        )
        .unwrap();
        assert!(matches!(
            validate_header_standalone(&anti, &h),
            Err(ConsensusError::DaoExtraData { support: false, .. })
        ));
        h.extra_data = Bytes::new();
        assert_eq!(validate_header_standalone(&anti, &h), Ok(()));
    }
}
