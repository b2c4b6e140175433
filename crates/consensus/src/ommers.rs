//! Ommer (uncle) rules of proof-of-work blocks, as in go-ethereum's `VerifyUncles`.

use crate::{
    body::MAX_OMMERS, validate_header_against_parent, validate_header_standalone, ConsensusError,
};
use alloy_consensus::Header;
use alloy_primitives::{map::B256Map, B256};
use std::collections::HashSet;

/// How many generations back an ommer's parent may be (the parent, generation 1, is excluded:
/// an ommer is at most a sixth-degree cousin).
pub const MAX_OMMER_DEPTH: usize = 7;

/// Checks the ommers `header`'s block includes.
///
/// `ancestor(hash)` returns a known block's header and the hashes of the ommers it included; it
/// is walked from `header.parent_hash` back [`MAX_OMMER_DEPTH`] generations. Each ommer:
///
/// - is not included twice in this block, nor already by one of those ancestors;
/// - is neither one of those ancestors nor the block itself;
/// - has a parent among the ancestors of generations 2 to 7 (not the block's own parent);
/// - has a number below the block's;
/// - is a valid header on its own and against that parent.
///
/// A proof-of-stake block may include no ommers; a proof-of-work block at most two.
pub fn validate_ommers(
    spec: &velarium_chainspec::ChainSpec,
    header: &Header,
    ommers: &[Header],
    ancestor: &dyn Fn(&B256) -> Option<(Header, Vec<B256>)>,
) -> Result<(), ConsensusError> {
    if ommers.is_empty() {
        return Ok(());
    }
    if spec.is_merged(header.number) {
        return Err(ConsensusError::OmmersPostMerge { count: ommers.len() });
    }
    if ommers.len() > MAX_OMMERS {
        return Err(ConsensusError::TooManyOmmers { count: ommers.len(), max: MAX_OMMERS });
    }

    // Ancestors by hash, and every ommer hash they (or this block) already used.
    let mut ancestors: B256Map<Header> = B256Map::default();
    let mut included: HashSet<B256> = HashSet::new();
    let mut hash = header.parent_hash;
    for _ in 0..MAX_OMMER_DEPTH {
        let Some((ancestor_header, ancestor_ommers)) = ancestor(&hash) else { break };
        included.extend(ancestor_ommers);
        let parent_hash = ancestor_header.parent_hash;
        ancestors.insert(hash, ancestor_header);
        hash = parent_hash;
    }
    let block_hash = header.hash_slow();
    included.insert(block_hash);

    for ommer in ommers {
        let ommer_hash = ommer.hash_slow();
        if !included.insert(ommer_hash) {
            return Err(ConsensusError::DuplicateOmmer { hash: ommer_hash });
        }
        if ancestors.contains_key(&ommer_hash) {
            return Err(ConsensusError::OmmerIsAncestor { hash: ommer_hash });
        }
        let parent = match ancestors.get(&ommer.parent_hash) {
            Some(parent) if ommer.parent_hash != header.parent_hash => parent,
            _ => {
                return Err(ConsensusError::DanglingOmmer {
                    hash: ommer_hash,
                    parent_hash: ommer.parent_hash,
                })
            }
        };
        if ommer.number >= header.number {
            return Err(ConsensusError::OmmerNumberTooHigh {
                ommer_number: ommer.number,
                number: header.number,
            });
        }
        validate_header_standalone(spec, ommer)
            .and_then(|()| validate_header_against_parent(spec, ommer, parent))
            .map_err(|source| ConsensusError::InvalidOmmer {
                hash: ommer_hash,
                source: Box::new(source),
            })?;
    }
    Ok(())
}
