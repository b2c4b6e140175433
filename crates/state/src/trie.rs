//! An incremental Merkle-Patricia trie over fixed-length (hashed, 32-byte) keys.
//!
//! The state trie and every storage trie key their leaves by `keccak256(address)` or
//! `keccak256(slot)`, so every key is 64 nibbles long: no key is a prefix of another and branch
//! nodes never carry values. Each node caches its RLP reference (`rlp(node)`, or the hash of it
//! when it is 32 bytes or more); inserting or removing a leaf drops the caches on its path only,
//! so the root after a block costs what the block changed (times the trie's depth), not the size
//! of the state. Nodes are RLP-encoded with alloy-trie's node types, so roots agree with
//! `alloy_trie::root` (checked by the tests against a from-scratch root on random changes).

use alloy_primitives::{keccak256, B256};
use alloy_trie::{
    nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode},
    Nibbles, TrieMask, EMPTY_ROOT_HASH,
};

/// One node with its cached RLP reference (`None`: changed since it was last hashed).
#[derive(Debug, Clone, Default)]
enum Node {
    /// The empty trie (only ever the root, or a transient child during an update).
    #[default]
    Empty,
    /// The rest of one key and its value.
    Leaf { key: Nibbles, value: Vec<u8>, cache: Option<RlpNode> },
    /// A shared run of nibbles above a branch.
    Extension { key: Nibbles, child: Box<Node>, cache: Option<RlpNode> },
    /// Sixteen children, at least two of them non-empty.
    Branch { children: Box<[Node; 16]>, cache: Option<RlpNode> },
}

impl Node {
    fn leaf(key: Nibbles, value: Vec<u8>) -> Self {
        Self::Leaf { key, value, cache: None }
    }

    const fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    /// A node equal to `child` with `prefix` in front of its path: what a branch with one child
    /// left, or an extension whose child changed shape, collapses into.
    fn prefixed(prefix: Nibbles, child: Self) -> Self {
        if prefix.is_empty() {
            return child;
        }
        match child {
            Self::Empty => Self::Empty,
            Self::Leaf { key, value, .. } => Self::leaf(prefix.join(&key), value),
            Self::Extension { key, child, .. } => {
                Self::Extension { key: prefix.join(&key), child, cache: None }
            }
            branch @ Self::Branch { .. } => {
                Self::Extension { key: prefix, child: Box::new(branch), cache: None }
            }
        }
    }

    /// A branch holding `a` at nibble `ia` and `b` at nibble `ib` (`ia != ib`).
    fn branch_of_two(ia: u8, a: Self, ib: u8, b: Self) -> Self {
        let mut children: Box<[Self; 16]> = Box::default();
        children[ia as usize] = a;
        children[ib as usize] = b;
        Self::Branch { children, cache: None }
    }

    /// Sets `path` (the rest of a key below this node) to `value`.
    fn insert(&mut self, path: Nibbles, value: Vec<u8>) {
        match self {
            Self::Empty => *self = Self::leaf(path, value),
            Self::Leaf { key, value: old, cache } => {
                if *key == path {
                    if *old != value {
                        *old = value;
                        *cache = None;
                    }
                    return;
                }
                let common = key.common_prefix_length(&path);
                let existing = Self::leaf(key.slice(common + 1..), std::mem::take(old));
                let new = Self::leaf(path.slice(common + 1..), value);
                let branch = Self::branch_of_two(
                    key.get_unchecked(common),
                    existing,
                    path.get_unchecked(common),
                    new,
                );
                *self = Self::prefixed(key.slice(..common), branch);
            }
            Self::Extension { key, child, cache } => {
                let common = key.common_prefix_length(&path);
                if common == key.len() {
                    child.insert(path.slice(common..), value);
                    *cache = None;
                    return;
                }
                // The new key leaves the extension at nibble `common`: a branch there, holding
                // the rest of the extension and the new leaf.
                let rest = Self::prefixed(key.slice(common + 1..), std::mem::take(&mut **child));
                let new = Self::leaf(path.slice(common + 1..), value);
                let branch = Self::branch_of_two(
                    key.get_unchecked(common),
                    rest,
                    path.get_unchecked(common),
                    new,
                );
                *self = Self::prefixed(key.slice(..common), branch);
            }
            Self::Branch { children, cache } => {
                children[path.get_unchecked(0) as usize].insert(path.slice(1..), value);
                *cache = None;
            }
        }
    }

    /// Removes `path`; returns whether it was there.
    fn remove(&mut self, path: &Nibbles) -> bool {
        match self {
            Self::Empty => false,
            Self::Leaf { key, .. } => {
                if key == path {
                    *self = Self::Empty;
                    true
                } else {
                    false
                }
            }
            Self::Extension { key, child, cache } => {
                if !path.starts_with(key) || !child.remove(&path.slice(key.len()..)) {
                    return false;
                }
                *cache = None;
                // The child was a branch; it may have collapsed into a leaf or an extension.
                if !matches!(**child, Self::Branch { .. }) {
                    let child = std::mem::take(&mut **child);
                    *self = Self::prefixed(*key, child);
                }
                true
            }
            Self::Branch { children, cache } => {
                let nibble = path.get_unchecked(0) as usize;
                if !children[nibble].remove(&path.slice(1..)) {
                    return false;
                }
                *cache = None;
                let mut left = children.iter().enumerate().filter(|(_, c)| !c.is_empty());
                let (only, _) = left.next().expect("a branch keeps another child");
                if left.next().is_none() {
                    let child = std::mem::take(&mut children[only]);
                    let mut prefix = Nibbles::new();
                    prefix.push(only as u8);
                    *self = Self::prefixed(prefix, child);
                }
                true
            }
        }
    }

    /// The node's RLP reference, computing what changed since the last call (`buf` is scratch).
    fn rlp(&mut self, buf: &mut Vec<u8>) -> RlpNode {
        match self {
            Self::Empty => RlpNode::from_rlp(&[alloy_rlp::EMPTY_STRING_CODE]),
            Self::Leaf { key, value, cache } => cache
                .get_or_insert_with(|| {
                    buf.clear();
                    LeafNodeRef::new(key, value).rlp(buf)
                })
                .clone(),
            Self::Extension { key, child, cache } => {
                if let Some(cached) = cache {
                    return cached.clone();
                }
                let child = child.rlp(buf);
                buf.clear();
                let node = ExtensionNodeRef::new(key, &child).rlp(buf);
                *cache = Some(node.clone());
                node
            }
            Self::Branch { children, cache } => {
                if let Some(cached) = cache {
                    return cached.clone();
                }
                let mut stack = Vec::with_capacity(16);
                let mut mask = TrieMask::default();
                for (i, child) in children.iter_mut().enumerate() {
                    if !child.is_empty() {
                        stack.push(child.rlp(buf));
                        mask.set_bit(i as u8);
                    }
                }
                buf.clear();
                let node = BranchNodeRef::new(&stack, mask).rlp(buf);
                *cache = Some(node.clone());
                node
            }
        }
    }

    /// Number of leaves below this node.
    fn leaves(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Leaf { .. } => 1,
            Self::Extension { child, .. } => child.leaves(),
            Self::Branch { children, .. } => children.iter().map(Self::leaves).sum(),
        }
    }
}

/// An incremental Merkle-Patricia trie keyed by 32-byte hashes (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct MerkleTrie {
    root: Node,
}

impl MerkleTrie {
    /// An empty trie (root [`EMPTY_ROOT_HASH`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the leaf at `key` to `value` (an RLP-encoded account or storage value; it must not
    /// be empty: use [`MerkleTrie::remove`] for a deleted entry).
    pub fn insert(&mut self, key: B256, value: Vec<u8>) {
        debug_assert!(!value.is_empty(), "empty trie values are removals");
        self.root.insert(Nibbles::unpack(key), value);
    }

    /// Removes the leaf at `key`; returns whether it existed.
    pub fn remove(&mut self, key: B256) -> bool {
        self.root.remove(&Nibbles::unpack(key))
    }

    /// Whether the trie has no leaves.
    pub const fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Number of leaves (walks the trie: for tests and reports).
    pub fn len(&self) -> usize {
        self.root.leaves()
    }

    /// The root hash; hashes only the nodes changed since the last call.
    pub fn root(&mut self) -> B256 {
        if self.root.is_empty() {
            return EMPTY_ROOT_HASH;
        }
        let mut buf = Vec::with_capacity(600);
        let node = self.root.rlp(&mut buf);
        if node.is_hash() {
            B256::from_slice(&node[1..])
        } else {
            keccak256(node.as_slice())
        }
    }

    /// The root hash; with `parallel`, the root's sixteen subtries are hashed on separate
    /// threads first (worth it when thousands of leaves changed: a big block's account trie).
    pub fn root_parallel(&mut self, parallel: bool) -> B256 {
        if parallel {
            if let Node::Branch { children, cache: None } = &mut self.root {
                std::thread::scope(|s| {
                    for child in children.iter_mut().filter(|c| !c.is_empty()) {
                        s.spawn(move || {
                            let mut buf = Vec::with_capacity(600);
                            child.rlp(&mut buf);
                        });
                    }
                });
            }
        }
        self.root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;
    use alloy_trie::HashBuilder;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The root of `entries` built from scratch with alloy-trie's `HashBuilder`.
    fn reference_root(entries: &BTreeMap<B256, Vec<u8>>) -> B256 {
        let mut hb = HashBuilder::default();
        for (key, value) in entries {
            hb.add_leaf(Nibbles::unpack(key), value);
        }
        hb.root()
    }

    fn value(v: u64) -> Vec<u8> {
        alloy_rlp::encode(U256::from(v))
    }

    #[test]
    fn empty_and_single_leaf() {
        let mut trie = MerkleTrie::new();
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
        let key = keccak256([1u8]);
        trie.insert(key, value(5));
        let mut expected = BTreeMap::new();
        expected.insert(key, value(5));
        assert_eq!(trie.root(), reference_root(&expected));
        assert!(trie.remove(key));
        assert!(!trie.remove(key));
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
        assert!(trie.is_empty());
    }

    #[test]
    fn keys_sharing_long_prefixes() {
        // Keys that share 0..63 nibbles: every split and collapse of extensions and branches.
        let base = keccak256([7u8]);
        let mut trie = MerkleTrie::new();
        let mut entries = BTreeMap::new();
        for shared in [63usize, 62, 40, 1, 0, 33, 2] {
            let mut nibbles = Nibbles::unpack(base);
            let flipped = (nibbles.get_unchecked(shared) + 1) % 16;
            nibbles.set_at(shared, flipped);
            let mut key = [0u8; 32];
            nibbles.pack_to(&mut key);
            let key = B256::from(key);
            trie.insert(key, value(shared as u64 + 1));
            entries.insert(key, value(shared as u64 + 1));
            assert_eq!(trie.root(), reference_root(&entries));
        }
        trie.insert(base, value(99));
        entries.insert(base, value(99));
        assert_eq!(trie.root(), reference_root(&entries));
        let keys: Vec<_> = entries.keys().copied().collect();
        for key in keys {
            assert!(trie.remove(key));
            entries.remove(&key);
            assert_eq!(trie.root(), reference_root(&entries), "after removing {key}");
        }
        assert_eq!(trie.len(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random inserts, overwrites and removals (keys from a small pool, so they collide
        /// and share prefixes), with the root checked against a from-scratch root after every
        /// batch, hashed serially or in parallel.
        #[test]
        fn incremental_root_equals_from_scratch_root(
            batches in prop::collection::vec(
                prop::collection::vec((0u16..400, 0u64..4), 1..60), 1..12),
            parallel in any::<bool>(),
        ) {
            let mut trie = MerkleTrie::new();
            let mut entries = BTreeMap::new();
            for batch in batches {
                for (k, v) in batch {
                    let key = keccak256(k.to_be_bytes());
                    if v == 0 {
                        prop_assert_eq!(trie.remove(key), entries.remove(&key).is_some());
                    } else {
                        trie.insert(key, value(v));
                        entries.insert(key, value(v));
                    }
                }
                prop_assert_eq!(trie.root_parallel(parallel), reference_root(&entries));
                prop_assert_eq!(trie.len(), entries.len());
            }
        }
    }
}
