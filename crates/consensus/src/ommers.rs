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

/// Looks up a known block by hash: its header and the hashes of the ommers it included.
pub type AncestorLookup<'a> = dyn Fn(&B256) -> Option<(Header, Vec<B256>)> + 'a;

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
    ancestor: &AncestorLookup<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{child, genesis, spec};
    use alloy_primitives::{Bytes, U256};
    use velarium_chainspec::ChainSpec;

    /// A proof-of-work chain of `len` blocks after genesis, and its blocks' included ommers.
    struct Chain {
        spec: ChainSpec,
        headers: Vec<Header>,
        included: B256Map<Vec<B256>>,
    }

    impl Chain {
        fn new(len: usize) -> Self {
            let spec = spec("Byzantium");
            let mut headers = vec![genesis(&spec)];
            for _ in 0..len {
                let next = child(&spec, headers.last().unwrap(), 12);
                headers.push(next);
            }
            Self { spec, headers, included: B256Map::default() }
        }

        /// A sibling of block `number` (child of `number - 1`), distinguished by extra data.
        fn ommer(&self, number: usize) -> Header {
            let mut ommer = child(&self.spec, &self.headers[number - 1], 13);
            ommer.extra_data = Bytes::from_static(b"ommer");
            ommer
        }

        /// The next block's header.
        fn next(&self) -> Header {
            child(&self.spec, self.headers.last().unwrap(), 12)
        }

        fn validate(&self, header: &Header, ommers: &[Header]) -> Result<(), ConsensusError> {
            let lookup = |hash: &B256| {
                self.headers
                    .iter()
                    .find(|h| h.hash_slow() == *hash)
                    .map(|h| (h.clone(), self.included.get(hash).cloned().unwrap_or_default()))
            };
            validate_ommers(&self.spec, header, ommers, &lookup)
        }
    }

    #[test]
    fn valid_ommers() {
        let chain = Chain::new(8);
        let header = chain.next(); // block 9
                                   // Siblings of blocks 3..=8 (parents at generations 2..=7).
        for n in 3..=8 {
            assert_eq!(chain.validate(&header, &[chain.ommer(n)]), Ok(()), "sibling of {n}");
        }
        assert_eq!(chain.validate(&header, &[chain.ommer(7), chain.ommer(8)]), Ok(()));
        assert_eq!(chain.validate(&header, &[]), Ok(()));
    }

    #[test]
    fn ommer_too_old_or_dangling() {
        let chain = Chain::new(8);
        let header = chain.next();
        // Parent at generation 8: too far back.
        let old = chain.ommer(2);
        assert_eq!(
            chain.validate(&header, std::slice::from_ref(&old)),
            Err(ConsensusError::DanglingOmmer {
                hash: old.hash_slow(),
                parent_hash: old.parent_hash
            })
        );
        // Sibling of the block itself (parent = the block's parent).
        let sibling = {
            let mut s = child(&chain.spec, &chain.headers[8], 13);
            s.extra_data = Bytes::from_static(b"x");
            s
        };
        assert!(matches!(
            chain.validate(&header, &[sibling]),
            Err(ConsensusError::DanglingOmmer { .. })
        ));
        // Unknown parent.
        let mut orphan = chain.ommer(8);
        orphan.parent_hash = B256::repeat_byte(7);
        assert!(matches!(
            chain.validate(&header, &[orphan]),
            Err(ConsensusError::DanglingOmmer { .. })
        ));
    }

    #[test]
    fn duplicate_and_ancestor_ommers() {
        let mut chain = Chain::new(8);
        let header = chain.next();
        let ommer = chain.ommer(7);
        assert_eq!(
            chain.validate(&header, &[ommer.clone(), ommer.clone()]),
            Err(ConsensusError::DuplicateOmmer { hash: ommer.hash_slow() })
        );
        let ancestor = chain.headers[5].clone();
        assert_eq!(
            chain.validate(&header, std::slice::from_ref(&ancestor)),
            Err(ConsensusError::OmmerIsAncestor { hash: ancestor.hash_slow() })
        );
        // Already included by block 8.
        let block8 = chain.headers[8].hash_slow();
        chain.included.insert(block8, vec![ommer.hash_slow()]);
        assert_eq!(
            chain.validate(&header, std::slice::from_ref(&ommer)),
            Err(ConsensusError::DuplicateOmmer { hash: ommer.hash_slow() })
        );
    }

    #[test]
    fn ommer_must_be_valid_header() {
        let chain = Chain::new(8);
        let header = chain.next();
        let mut ommer = chain.ommer(7);
        ommer.difficulty += U256::from(1);
        let err = chain.validate(&header, &[ommer]).unwrap_err();
        assert!(matches!(
            &err,
            ConsensusError::InvalidOmmer { source, .. } if matches!(**source, ConsensusError::InvalidDifficulty { .. })
        ));
        let mut ommer = chain.ommer(7);
        ommer.extra_data = Bytes::from(vec![0; 33]);
        assert!(matches!(
            chain.validate(&header, &[ommer]),
            Err(ConsensusError::InvalidOmmer { .. })
        ));
        let mut ommer = chain.ommer(7);
        ommer.number = header.number;
        assert!(matches!(
            chain.validate(&header, &[ommer]),
            Err(ConsensusError::OmmerNumberTooHigh { .. })
        ));
    }

    #[test]
    fn ommer_count_and_merge() {
        let chain = Chain::new(8);
        let header = chain.next();
        let ommers = [chain.ommer(6), chain.ommer(7), chain.ommer(8)];
        assert_eq!(
            chain.validate(&header, &ommers),
            Err(ConsensusError::TooManyOmmers { count: 3, max: 2 })
        );
        let paris = spec("Paris");
        let parent = genesis(&paris);
        let header = child(&paris, &parent, 12);
        assert_eq!(
            validate_ommers(&paris, &header, std::slice::from_ref(&parent), &|_| None),
            Err(ConsensusError::OmmersPostMerge { count: 1 })
        );
    }
}
