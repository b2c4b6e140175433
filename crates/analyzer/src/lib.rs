//! Contention analysis: how parallel can a block be, given what its transactions really touch?
//!
//! From each transaction's read and write sets and its gas, [`critical_path`] builds the
//! dependency graph (transaction `i` depends on the last transaction before it that wrote a
//! location `i` reads or writes) and finds the gas-weighted longest chain. Its gas against the
//! block's total is the **critical-path bound**: the best speedup any scheduler could reach on
//! this block with unlimited workers. [`efficiency`] relates a measured speedup to it.
//!
//! Commutative credits (the beneficiary's fee, lazily credited transfers) are not ordinary
//! writes: credits to one location do not order the transactions that make them, but a
//! transaction that reads (or overwrites) the location depends on every credit since its last
//! full write. A read that ignores pending credits (the nonce and code of a lazily credited
//! recipient) depends only on the location's last full write.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod dossier;
pub mod effects;
pub mod increment;

use std::{collections::HashMap, hash::Hash};

/// What one transaction touched, and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxAccess<K> {
    /// Locations read (including those also written).
    pub reads: Vec<K>,
    /// Locations read ignoring the credits pending on them (a lazily credited recipient's
    /// nonce and code): ordered after the last full write only.
    pub reads_ignoring_credits: Vec<K>,
    /// Locations written.
    pub writes: Vec<K>,
    /// Locations credited commutatively (balance deltas nobody needs to read).
    pub credits: Vec<K>,
    /// Gas used.
    pub gas: u64,
}

/// The gas-weighted longest dependency chain of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalPath {
    /// Gas of all transactions.
    pub total_gas: u64,
    /// Gas along the longest chain.
    pub chain_gas: u64,
    /// The chain's transactions, in block order.
    pub chain: Vec<usize>,
    /// `total_gas / chain_gas`: the best speedup any scheduler could reach (1.0 for an empty
    /// block).
    pub bound: f64,
}

/// Computes the critical path of a block from its transactions' accesses.
///
/// Transaction `i` depends on `j < i` when `j` is the last writer before `i` of a location that
/// `i` reads or writes (a write after a write must also wait, to keep the final value), or when
/// `j` credited such a location after its last write.
pub fn critical_path<K: Eq + Hash + Clone>(txs: &[TxAccess<K>]) -> CriticalPath {
    let mut last_writer: HashMap<K, usize> = HashMap::new();
    // Per location, the heaviest-ending credit since its last full write.
    let mut heaviest_credit: HashMap<K, usize> = HashMap::new();
    // finish[i]: gas of the heaviest chain ending at i; parent[i]: previous link of that chain.
    let mut finish = vec![0u64; txs.len()];
    let mut parent = vec![None; txs.len()];
    for (i, tx) in txs.iter().enumerate() {
        let mut best: Option<usize> = None;
        let mut consider = |j: usize| {
            if best.is_none_or(|b| finish[j] > finish[b]) {
                best = Some(j);
            }
        };
        for key in tx.reads.iter().chain(&tx.writes) {
            if let Some(&j) = last_writer.get(key) {
                consider(j);
            }
            if let Some(&j) = heaviest_credit.get(key) {
                consider(j);
            }
        }
        for key in &tx.reads_ignoring_credits {
            if let Some(&j) = last_writer.get(key) {
                consider(j);
            }
        }
        finish[i] = best.map_or(0, |b| finish[b]) + tx.gas;
        parent[i] = best;
        for key in &tx.writes {
            last_writer.insert(key.clone(), i);
            heaviest_credit.remove(key);
        }
        for key in &tx.credits {
            let entry = heaviest_credit.entry(key.clone()).or_insert(i);
            if finish[i] >= finish[*entry] {
                *entry = i;
            }
        }
    }
    let total_gas: u64 = txs.iter().map(|t| t.gas).sum();
    let end = (0..txs.len()).max_by_key(|&i| (finish[i], std::cmp::Reverse(i)));
    let mut chain = Vec::new();
    let mut cursor = end;
    while let Some(i) = cursor {
        chain.push(i);
        cursor = parent[i];
    }
    chain.reverse();
    let chain_gas = end.map_or(0, |i| finish[i]);
    let bound = if chain_gas == 0 { 1.0 } else { total_gas as f64 / chain_gas as f64 };
    CriticalPath { total_gas, chain_gas, chain, bound }
}

/// Efficiency of a measured speedup on `threads` workers: `speedup / min(threads, bound)`.
pub fn efficiency(speedup: f64, threads: usize, bound: f64) -> f64 {
    let ceiling = (threads as f64).min(bound).max(1.0);
    speedup / ceiling
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction with plain reads and writes (shared with the dossier's tests).
    pub(crate) fn tx(reads: &[u32], writes: &[u32], gas: u64) -> TxAccess<u32> {
        TxAccess {
            reads: reads.to_vec(),
            reads_ignoring_credits: Vec::new(),
            writes: writes.to_vec(),
            credits: Vec::new(),
            gas,
        }
    }

    fn credit(reads: &[u32], credits: &[u32], gas: u64) -> TxAccess<u32> {
        TxAccess {
            reads: reads.to_vec(),
            reads_ignoring_credits: Vec::new(),
            writes: Vec::new(),
            credits: credits.to_vec(),
            gas,
        }
    }

    #[test]
    fn credits_do_not_order_but_a_reader_waits_for_all_of_them() {
        // Eight transactions paying the beneficiary (key 0): fully parallel.
        let payers: Vec<_> = (1..=8).map(|i| credit(&[i], &[0], 100)).collect();
        assert_eq!(critical_path(&payers).bound, 8.0);
        // Each also reads the beneficiary's balance: every read waits for the credits before.
        let readers: Vec<_> = (1..=8).map(|i| credit(&[i, 0], &[0], 100)).collect();
        let cp = critical_path(&readers);
        assert_eq!(cp.bound, 1.0);
        assert_eq!(cp.chain, (0..8).collect::<Vec<_>>());
        // A full write resets the credits: a later reader waits only for the writer.
        let txs = vec![credit(&[], &[0], 100), tx(&[], &[0], 10), credit(&[0], &[], 10)];
        let cp = critical_path(&txs);
        assert_eq!(cp.chain, vec![0, 1, 2]);
    }

    #[test]
    fn lazily_credited_recipients_do_not_order_their_senders() {
        // Eight transfers from distinct senders to one recipient (key 0): each reads the
        // recipient's nonce and code ignoring credits, and credits it. Fully parallel.
        let transfers: Vec<_> = (1..=8)
            .map(|i| TxAccess {
                reads: vec![i],
                reads_ignoring_credits: vec![0],
                writes: vec![i],
                credits: vec![0],
                gas: 21_000,
            })
            .collect();
        assert_eq!(critical_path(&transfers).bound, 8.0);
        // A full write of the recipient reads it (so it follows an earlier credit) and
        // orders the later transfers after it: credit -> write -> transfer.
        let mut txs = transfers;
        txs.insert(4, tx(&[0], &[0], 21_000));
        let cp = critical_path(&txs);
        assert_eq!(cp.chain.len(), 3);
        assert_eq!(cp.chain[1], 4);
    }

    #[test]
    fn independent_transactions_bound_is_their_count() {
        let txs: Vec<_> = (0..8).map(|i| tx(&[i], &[i], 100)).collect();
        let cp = critical_path(&txs);
        assert_eq!((cp.total_gas, cp.chain_gas), (800, 100));
        assert_eq!(cp.bound, 8.0);
        assert_eq!(cp.chain.len(), 1);
    }

    #[test]
    fn a_fully_dependent_chain_has_bound_one() {
        let txs: Vec<_> = (0..5).map(|_| tx(&[7], &[7], 21_000)).collect();
        let cp = critical_path(&txs);
        assert_eq!(cp.bound, 1.0);
        assert_eq!(cp.chain, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_heaviest_chain_wins_not_the_longest() {
        // 0 -> 1 (light chain of two), 2 -> 3 (heavy chain of two), 4 independent and heavy.
        let txs = vec![
            tx(&[], &[1], 10),
            tx(&[1], &[], 10),
            tx(&[], &[2], 100),
            tx(&[2], &[2], 300),
            tx(&[9], &[], 350),
        ];
        let cp = critical_path(&txs);
        assert_eq!(cp.chain, vec![2, 3]);
        assert_eq!(cp.chain_gas, 400);
        assert_eq!(cp.total_gas, 770);
        assert!((cp.bound - 770.0 / 400.0).abs() < 1e-12);
    }

    #[test]
    fn reads_without_writes_do_not_order_and_write_after_write_does() {
        // Readers of the same location are independent; a second writer waits for the first.
        let readers = vec![tx(&[5], &[], 50), tx(&[5], &[], 50), tx(&[5], &[], 50)];
        assert_eq!(critical_path(&readers).bound, 3.0);
        let writers = vec![tx(&[], &[5], 50), tx(&[], &[5], 50)];
        assert_eq!(critical_path(&writers).bound, 1.0);
        // A read depends on the last writer only, not on earlier readers.
        let mixed = vec![tx(&[], &[1], 10), tx(&[1], &[], 10), tx(&[1], &[], 10)];
        let cp = critical_path(&mixed);
        assert_eq!(cp.chain_gas, 20);
        assert!((cp.bound - 1.5).abs() < 1e-12);
    }

    #[test]
    fn empty_block_and_efficiency() {
        let cp = critical_path::<u32>(&[]);
        assert_eq!((cp.total_gas, cp.chain_gas, cp.bound), (0, 0, 1.0));
        assert!(cp.chain.is_empty());
        // Two threads, bound 8: the ceiling is 2.
        assert!((efficiency(1.8, 2, 8.0) - 0.9).abs() < 1e-12);
        // Bound 1.2 caps the ceiling below the thread count.
        assert!((efficiency(1.2, 4, 1.2) - 1.0).abs() < 1e-12);
        // Nothing can be slower than one worker's ceiling of 1.
        assert!((efficiency(0.5, 2, 0.5) - 0.5).abs() < 1e-12);
    }
}
