//! The era1 accumulator: `hash_tree_root(List[HeaderRecord, 8192])` in SSZ.
//!
//! A `HeaderRecord` is the SSZ container `{ block_hash: Bytes32, total_difficulty: uint256 }`, so
//! its root is `sha256(block_hash ‖ total_difficulty as 32 little-endian bytes)`. The list root
//! merkleizes the record roots padded with zero chunks to the 8192 limit (a tree of depth 13) and
//! mixes in the length: `sha256(root ‖ len as 32 little-endian bytes)`.

use crate::{Era1Error, MAX_BLOCKS_PER_ERA1};
use alloy_primitives::{B256, U256};
use sha2::{Digest, Sha256};

/// Depth of the merkle tree over [`MAX_BLOCKS_PER_ERA1`] leaves.
const DEPTH: usize = MAX_BLOCKS_PER_ERA1.trailing_zeros() as usize;

/// One leaf of the accumulator: a block hash and the total difficulty up to that block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderRecord {
    /// Keccak-256 hash of the block header.
    pub block_hash: B256,
    /// Total difficulty of the chain up to and including the block.
    pub total_difficulty: U256,
}

impl HeaderRecord {
    /// The SSZ `hash_tree_root` of this record.
    pub fn hash_tree_root(&self) -> B256 {
        hash_pair(&self.block_hash.0, &self.total_difficulty.to_le_bytes::<32>())
    }
}

/// `sha256(left ‖ right)`.
fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> B256 {
    let mut hasher = Sha256::new();
    hasher.update(left);
    hasher.update(right);
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

/// The roots of all-zero subtrees: `zero[0]` is the zero chunk, `zero[i + 1] = H(zero[i], zero[i])`.
fn zero_hashes() -> [B256; DEPTH + 1] {
    let mut zero = [B256::ZERO; DEPTH + 1];
    for i in 0..DEPTH {
        zero[i + 1] = hash_pair(&zero[i].0, &zero[i].0);
    }
    zero
}

/// Computes the era1 accumulator root of `records`.
///
/// Fails with [`Era1Error::TooManyBlocks`] when there are more than [`MAX_BLOCKS_PER_ERA1`]
/// records.
pub fn accumulator_root(records: &[HeaderRecord]) -> Result<B256, Era1Error> {
    if records.len() > MAX_BLOCKS_PER_ERA1 {
        return Err(Era1Error::TooManyBlocks {
            count: records.len() as u64,
            max: MAX_BLOCKS_PER_ERA1,
        });
    }
    let zero = zero_hashes();
    // Merkleize level by level; the missing right sibling of an odd node is a zero subtree.
    let mut layer: Vec<B256> = records.iter().map(HeaderRecord::hash_tree_root).collect();
    for zero_subtree in &zero[..DEPTH] {
        if layer.is_empty() {
            break;
        }
        layer = layer
            .chunks(2)
            .map(|pair| hash_pair(&pair[0].0, &pair.get(1).unwrap_or(zero_subtree).0))
            .collect();
    }
    let root = layer.first().copied().unwrap_or(zero[DEPTH]);
    Ok(hash_pair(&root.0, &U256::from(records.len()).to_le_bytes::<32>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::b256;

    fn sha(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    /// The zero-hash ladder, written out independently of the code under test.
    fn ladder() -> Vec<[u8; 32]> {
        let mut z = vec![[0u8; 32]];
        for i in 0..13 {
            let next = sha(&[&z[i], &z[i]]);
            z.push(next);
        }
        z
    }

    fn le32(n: u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&n.to_le_bytes());
        out
    }

    /// A full 8192-leaf tree, no shortcuts.
    fn naive_root(records: &[HeaderRecord]) -> B256 {
        let mut layer: Vec<[u8; 32]> = records
            .iter()
            .map(|r| sha(&[r.block_hash.as_slice(), &r.total_difficulty.to_le_bytes::<32>()]))
            .collect();
        layer.resize(8192, [0; 32]);
        while layer.len() > 1 {
            layer = layer.chunks(2).map(|p| sha(&[&p[0], &p[1]])).collect();
        }
        B256::from(sha(&[&layer[0], &le32(records.len() as u64)]))
    }

    #[test]
    fn record_root_is_sha256_of_hash_and_le_difficulty() {
        let record = HeaderRecord {
            block_hash: B256::repeat_byte(0xab),
            total_difficulty: U256::from(0x0102_0304u64),
        };
        let mut td = [0u8; 32];
        td[..4].copy_from_slice(&[0x04, 0x03, 0x02, 0x01]);
        assert_eq!(record.hash_tree_root(), B256::from(sha(&[&[0xab; 32], &td])));
    }

    #[test]
    fn one_and_two_records_by_hand() {
        let z = ladder();
        let a = HeaderRecord { block_hash: B256::repeat_byte(1), total_difficulty: U256::from(17) };
        let b = HeaderRecord {
            block_hash: B256::repeat_byte(2),
            total_difficulty: U256::from(17 + 131_072),
        };
        let leaf_a = sha(&[&[1; 32], &le32(17)]);
        let leaf_b = sha(&[&[2; 32], &le32(17 + 131_072)]);

        // One record: the leaf climbs 13 levels, each time next to a zero subtree.
        let mut node = leaf_a;
        for zi in &z[..13] {
            node = sha(&[&node, zi]);
        }
        let expected_one = B256::from(sha(&[&node, &le32(1)]));
        assert_eq!(accumulator_root(&[a]).unwrap(), expected_one);

        // Two records: they pair at level 0, then climb 12 levels.
        let mut node = sha(&[&leaf_a, &leaf_b]);
        for zi in &z[1..13] {
            node = sha(&[&node, zi]);
        }
        let expected_two = B256::from(sha(&[&node, &le32(2)]));
        assert_eq!(accumulator_root(&[a, b]).unwrap(), expected_two);

        // The empty list is the all-zero tree with length 0 mixed in.
        assert_eq!(accumulator_root(&[]).unwrap(), B256::from(sha(&[&z[13], &le32(0)])));
    }

    #[test]
    fn known_answer_vectors() {
        // The vectors reth's era crate checks (`test_accumulator_from_header_records_known_vectors`).
        assert_eq!(
            accumulator_root(&[]).unwrap(),
            b256!("4a8c3a07c8d23adc5bac61157555c3c784d53d9bc110c1370809bd23cd93777d")
        );
        assert_eq!(
            accumulator_root(&[HeaderRecord::default()]).unwrap(),
            b256!("81fd641249670887a731386e756a7a1538dc781b1b0bf016889045d350812817")
        );
        let record =
            HeaderRecord { block_hash: B256::repeat_byte(1), total_difficulty: U256::from(100u64) };
        assert_eq!(
            accumulator_root(&[record]).unwrap(),
            b256!("ada35c48d81117f4fd588554cd4c4752356336e84cb41106dea1ceb4cfac8799")
        );
    }

    #[test]
    fn matches_the_naive_full_tree() {
        for len in [1usize, 2, 3, 5, 8, 100, 1000, 4097, 8191, 8192] {
            let records: Vec<_> = (0..len as u64)
                .map(|i| HeaderRecord {
                    block_hash: B256::from(U256::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
                    total_difficulty: U256::from(i) << 100,
                })
                .collect();
            assert_eq!(accumulator_root(&records).unwrap(), naive_root(&records), "len {len}");
        }
    }

    #[test]
    fn rejects_more_than_8192_records() {
        let records = vec![HeaderRecord::default(); MAX_BLOCKS_PER_ERA1 + 1];
        assert!(matches!(
            accumulator_root(&records),
            Err(Era1Error::TooManyBlocks { count: 8193, max: 8192 })
        ));
    }
}
