//! Effect analysis before execution: which storage slots a contract's code touches at constant
//! keys, and which locations were hot in earlier blocks.
//!
//! A counter (`count += 1`), an NFT's next id, a pool's reserves and a protocol's global state
//! live at constant slots: the code pushes the key and loads or stores it
//! (`PUSH1 0x08 SLOAD`, `PUSH0 SLOAD`, `PUSH1 k DUP1 SLOAD`). [`constant_storage_keys`] finds
//! them with one linear pass over the bytecode (skipping push data). Every transaction that
//! calls the contract may touch them, so when many transactions of a block call one contract
//! its constant slots are predicted hot before the first conflict is seen. Predictions are
//! hints: a wrong one costs a wait at most, never a wrong result (the engine validates every
//! read as usual). Slots keyed by a mapping (`balances[msg.sender]`) are not constant and are
//! left to the engine's run-time detection and to [`HotHistory`].
//!
//! [`HotHistory`] keeps the locations that were hot in recent blocks (a DEX pool's reserves
//! stay hot block after block), bounded, so the next block starts with them.

use std::collections::VecDeque;

const PUSH0: u8 = 0x5f;
const PUSH32: u8 = 0x7f;
const DUP1: u8 = 0x80;
const SLOAD: u8 = 0x54;
const SSTORE: u8 = 0x55;

/// The storage keys `code` stores to as constants (pushed right before `SSTORE`, or before an
/// `SLOAD` through a `DUP1` that keeps the key for a later store: `PUSH1 k DUP1 SLOAD ...
/// SSTORE`), big-endian, sorted and without duplicates. Keys only ever loaded (a token's
/// decimals, an owner) are left out: nobody writes them, so they can never conflict.
pub fn constant_storage_keys(code: &[u8]) -> Vec<[u8; 32]> {
    let mut keys = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let op = code[i];
        if !(PUSH0..=PUSH32).contains(&op) {
            i += 1;
            continue;
        }
        let len = usize::from(op - PUSH0);
        let data_end = i + 1 + len;
        if data_end > code.len() {
            break; // truncated push at the end of the code
        }
        let mut key = [0u8; 32];
        key[32 - len..].copy_from_slice(&code[i + 1..data_end]);
        let stored = match code.get(data_end) {
            Some(&SSTORE) => true,
            Some(&DUP1) => code.get(data_end + 1) == Some(&SLOAD),
            _ => false,
        };
        if stored {
            keys.push(key);
        }
        i = data_end;
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The locations that were hot in recent blocks, most recent last, at most `capacity`.
#[derive(Debug, Clone)]
pub struct HotHistory<K> {
    recent: VecDeque<K>,
    capacity: usize,
}

impl<K: PartialEq + Clone> HotHistory<K> {
    /// An empty history keeping at most `capacity` locations.
    pub fn new(capacity: usize) -> Self {
        Self { recent: VecDeque::with_capacity(capacity), capacity }
    }

    /// Records that `location` was hot in the block just executed (moving it to the end if it
    /// was already known, dropping the oldest when full).
    pub fn record(&mut self, location: K) {
        if let Some(i) = self.recent.iter().position(|k| *k == location) {
            self.recent.remove(i);
        } else if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        if self.capacity > 0 {
            self.recent.push_back(location);
        }
    }

    /// The locations, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.recent.iter()
    }

    /// Number of locations kept.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(v: u8) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[31] = v;
        k
    }

    #[test]
    fn finds_pushed_keys_before_loads_and_stores() {
        // PUSH0 SLOAD PUSH1 1 ADD PUSH0 SSTORE: a counter at slot 0.
        assert_eq!(
            constant_storage_keys(&[0x5f, 0x54, 0x60, 0x01, 0x01, 0x5f, 0x55]),
            vec![key(0)]
        );
        // PUSH1 8 DUP1 SLOAD; PUSH2 0x0102 SSTORE; PUSH1 3 ADD (not a key).
        let code = [0x60, 0x08, 0x80, 0x54, 0x61, 0x01, 0x02, 0x55, 0x60, 0x03, 0x01];
        let mut k = [0u8; 32];
        k[30..].copy_from_slice(&[1, 2]);
        assert_eq!(constant_storage_keys(&code), vec![key(8), k]);
    }

    #[test]
    fn push_data_is_not_code() {
        // PUSH2 0x6054: the bytes `60 54` are data, not `PUSH1 0x54`/`SLOAD`.
        assert!(constant_storage_keys(&[0x61, 0x60, 0x54]).is_empty());
        // A truncated push at the end.
        assert!(constant_storage_keys(&[0x60]).is_empty());
        assert!(constant_storage_keys(&[0x7f, 1, 2]).is_empty());
    }

    #[test]
    fn history_is_bounded_and_keeps_the_latest() {
        let mut history = HotHistory::new(2);
        history.record(1);
        history.record(2);
        history.record(1);
        history.record(3);
        assert_eq!(history.iter().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(history.len(), 2);
        let mut none = HotHistory::new(0);
        none.record(1);
        assert!(none.is_empty());
    }

    proptest! {
        /// Any bytes: no panic, sorted unique keys, none without a load or store in the code.
        #[test]
        fn never_panics(code in prop::collection::vec(any::<u8>(), 0..300)) {
            let keys = constant_storage_keys(&code);
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
            if !code.iter().any(|b| *b == SLOAD || *b == SSTORE) {
                prop_assert!(keys.is_empty());
            }
        }
    }
}
