//! Blocks that Block-STM ran as a chain, learned from its own runs and given to the oracle.
//!
//! A block in which most transactions call one contract can leave Block-STM nothing to run side
//! by side: a mint's next token id, a single pool's reserves, a probe of the beneficiary's
//! balance, a liquidation's shared debt each make every call read what the call before it wrote.
//! Block-STM still executes such a block exactly, but as a chain whose links cross cores, and
//! then slower than the oracle (0.83x-0.87x at two workers on the hostile workloads of
//! `velarium bench`). Its transactions do not show it (a token's transfers to distinct holders
//! look just like a counter's bumps), and effect analysis proves only some of it; Block-STM's
//! own counters show it after the fact: a quarter of the transactions or more paused for a lower
//! transaction's write, re-ran, or were abandoned on a dependency.
//!
//! So the engine remembers, per contract (address and code hash), that the last block it ran
//! through Block-STM with at least two workers, and in which that contract took at least half
//! of the calls, ran as such a chain; the next blocks dominated by the same contract go to the
//! oracle, at sequential speed. Every [`REPROBE_EVERY`]th of them runs through Block-STM again
//! and its counters decide anew, so a contract whose calls stop conflicting is learned back; a
//! block dominated by a contract never seen to chain always runs through Block-STM.
//!
//! On the 47 mainnet fixture blocks no contract takes half the calls of a block with that many
//! conflicts (the blocks where one does, token and router blocks, conflict on 0-2% of their
//! transactions), so the rule leaves them to Block-STM. `VELARIUM_LEARNED_CHAINS=off` turns it
//! off.

use crate::{BlockInput, ParallelStats, RecoveredTx};
use alloy_primitives::{Address, B256};
use revm::primitives::KECCAK_EMPTY;
use std::sync::{Mutex, PoisonError};

/// Of how many blocks dominated by a contract learned to chain, one runs through Block-STM again.
pub const REPROBE_EVERY: u32 = 16;

/// The contracts remembered at most (the oldest verdict is dropped first).
const CAPACITY: usize = 64;

/// A block is dominated by a contract that at least `1 / DOMINANT_SHARE` of its transactions
/// call.
const DOMINANT_SHARE: usize = 2;

/// A Block-STM run chained when its paused reads, aborts and suspensions add up to at least
/// `1 / CHAINED_SHARE` of its transactions. Measured on `velarium bench`'s workloads at two
/// workers (2026-12-06): the chains read 0.29 (counter_modes), 0.54-0.57 (nft_mint_counter),
/// 0.64-0.71 (liquidation_cascade), 0.93-0.95 (reads_beneficiary) and 1.0 (single_pool_swaps)
/// conflicts a transaction; the dominated blocks that Block-STM runs faster than the oracle
/// 0.13 (erc20_deposits) and 0.00 (erc20_transfers, erc20_hot_receiver, dependent_chain,
/// uniswap_swaps_many_pairs).
const CHAINED_SHARE: u64 = 4;

/// The contract a block is dominated by: its address and code hash (a contract redeployed at
/// the same address is another contract). See [`route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainKey {
    address: Address,
    code_hash: B256,
}

/// What [`route`] decided for a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnedRoute {
    /// Its contract chained in its last Block-STM block: run it on the oracle.
    Oracle,
    /// Run it through Block-STM, then [`learn`] from the run's counters under this key
    /// (`None`: no dominant contract, nothing to learn).
    BlockStm(Option<ChainKey>),
}

#[derive(Debug)]
struct Learned {
    key: ChainKey,
    /// Blocks given to the oracle since its last Block-STM block.
    skipped: u32,
}

static LEARNED: Mutex<Vec<Learned>> = Mutex::new(Vec::new());

/// Whether the rule is on (`VELARIUM_LEARNED_CHAINS=off` says no).
fn rule_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("VELARIUM_LEARNED_CHAINS").map_or(true, |v| !v.eq_ignore_ascii_case("off"))
    })
}

/// The address that at least half of `txs` call, if any.
pub fn dominant_callee(txs: &[RecoveredTx]) -> Option<Address> {
    use alloy_consensus::Transaction as _;
    dominant_callee_by(txs.len(), |i| txs[i].kind().to().copied())
}

/// The address that at least half of a block's `len` transactions call, where `to(i)` is the
/// callee of transaction `i` (`None`: a creation).
///
/// An even sample of 64 transactions nominates the candidates (one that half the block calls is
/// expected 32 times there, so 24 nominates it); only those are counted exactly, so a block of
/// transfers to distinct accounts costs no hash map.
pub fn dominant_callee_by(len: usize, to: impl Fn(usize) -> Option<Address>) -> Option<Address> {
    const SAMPLE: usize = 64;
    let step = (len / SAMPLE).max(1);
    let mut seen: Vec<(Address, usize)> = Vec::new();
    for i in (0..len).step_by(step).take(SAMPLE) {
        let Some(address) = to(i) else { continue };
        match seen.iter_mut().find(|(a, _)| *a == address) {
            Some((_, n)) => *n += 1,
            None => seen.push((address, 1)),
        }
    }
    let sampled = len.div_ceil(step).min(SAMPLE);
    seen.into_iter().filter(|(_, n)| n * 8 >= sampled * 3).map(|(address, _)| address).find(
        |address| {
            let calls = (0..len).filter(|&i| to(i) == Some(*address)).count();
            calls * DOMINANT_SHARE >= len
        },
    )
}

/// Where a block dominated by `callee` (see [`dominant_callee`]) runs: on the oracle if that
/// contract chained in its last Block-STM block (but for every [`REPROBE_EVERY`]th such
/// block), else through Block-STM. `code_hash` gives the contract's code hash (`None`: no code,
/// or it could not be read; nothing is learned about such an address).
pub fn route(
    callee: Option<Address>,
    code_hash: impl FnOnce(Address) -> Option<B256>,
) -> LearnedRoute {
    if !rule_on() {
        return LearnedRoute::BlockStm(None);
    }
    let Some(address) = callee else { return LearnedRoute::BlockStm(None) };
    let Some(code_hash) = code_hash(address).filter(|h| *h != KECCAK_EMPTY && !h.is_zero()) else {
        return LearnedRoute::BlockStm(None);
    };
    let key = ChainKey { address, code_hash };
    let mut learned = LEARNED.lock().unwrap_or_else(PoisonError::into_inner);
    match learned.iter_mut().find(|l| l.key == key) {
        Some(entry) if entry.skipped + 1 < REPROBE_EVERY => {
            entry.skipped += 1;
            LearnedRoute::Oracle
        }
        Some(entry) => {
            entry.skipped = 0;
            LearnedRoute::BlockStm(Some(key))
        }
        None => LearnedRoute::BlockStm(Some(key)),
    }
}

/// [`route`] for `block` on `db`.
pub(crate) fn route_block<DB: revm::DatabaseRef>(db: &DB, block: BlockInput<'_>) -> LearnedRoute {
    route(dominant_callee(block.transactions), |address| {
        db.basic_ref(address).ok().flatten().map(|info| info.code_hash)
    })
}

/// Whether a Block-STM run of `txs` transactions chained: its paused reads, aborts and
/// suspensions add up to at least a quarter of its transactions (`CHAINED_SHARE`).
pub fn chained(stats: &ParallelStats, txs: usize) -> bool {
    let conflicts = stats.waits + stats.aborts + stats.suspensions;
    txs > 0 && conflicts * CHAINED_SHARE >= txs as u64
}

/// Learns from a Block-STM run of `txs` transactions of a block dominated by the contract of
/// `key` (from [`route`]): remembers that it chained, or forgets that it did. Runs on one worker
/// (nothing can pause or conflict) and runs that fell back to the oracle teach nothing.
pub fn learn(key: ChainKey, stats: &ParallelStats, txs: usize) {
    if stats.threads < 2 || stats.fell_back {
        return;
    }
    let mut learned = LEARNED.lock().unwrap_or_else(PoisonError::into_inner);
    let at = learned.iter().position(|l| l.key == key);
    match (chained(stats, txs), at) {
        (true, Some(at)) => learned[at].skipped = 0,
        (true, None) => {
            if learned.len() >= CAPACITY {
                learned.remove(0);
            }
            learned.push(Learned { key, skipped: 0 });
        }
        (false, Some(at)) => {
            learned.remove(at);
        }
        (false, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(threads: usize, waits: u64, aborts: u64) -> ParallelStats {
        let mut stats = ParallelStats::default();
        (stats.threads, stats.waits, stats.aborts) = (threads, waits, aborts);
        stats
    }

    #[test]
    fn a_quarter_of_the_transactions_conflicting_is_a_chain() {
        assert!(chained(&stats(2, 250, 0), 1000));
        assert!(chained(&stats(2, 100, 150), 1000));
        assert!(!chained(&stats(2, 130, 0), 1000));
        assert!(!chained(&stats(2, 0, 0), 0));
    }

    #[test]
    fn a_chained_contract_goes_to_the_oracle_and_is_probed_again() {
        let address = Address::repeat_byte(0xc4);
        let code = B256::repeat_byte(7);
        let key = ChainKey { address, code_hash: code };
        let find = || LEARNED.lock().unwrap().iter().find(|l| l.key == key).map(|l| l.skipped);
        let route_it = || route(Some(address), |_| Some(code));
        // Nothing learned yet: Block-STM, to learn from.
        assert_eq!(route_it(), LearnedRoute::BlockStm(Some(key)));
        // One worker, or a fall-back, teaches nothing.
        learn(key, &stats(1, 900, 0), 1000);
        let mut fell_back = stats(2, 900, 0);
        fell_back.fell_back = true;
        learn(key, &fell_back, 1000);
        assert_eq!(find(), None);
        learn(key, &stats(2, 900, 0), 1000);
        assert_eq!(find(), Some(0));
        // The oracle for the next REPROBE_EVERY - 1 blocks, then Block-STM again.
        for _ in 1..REPROBE_EVERY {
            assert_eq!(route_it(), LearnedRoute::Oracle);
        }
        assert_eq!(route_it(), LearnedRoute::BlockStm(Some(key)));
        assert_eq!(route_it(), LearnedRoute::Oracle);
        // Another contract at the same address (other code), an account without code, a
        // block without a dominant contract: Block-STM, nothing to learn about.
        let other = B256::repeat_byte(8);
        assert_eq!(
            route(Some(address), |_| Some(other)),
            LearnedRoute::BlockStm(Some(ChainKey { address, code_hash: other }))
        );
        assert_eq!(route(Some(address), |_| Some(KECCAK_EMPTY)), LearnedRoute::BlockStm(None));
        assert_eq!(route(Some(address), |_| None), LearnedRoute::BlockStm(None));
        assert_eq!(route(None, |_| Some(code)), LearnedRoute::BlockStm(None));
        // A run that did not chain forgets it.
        learn(key, &stats(4, 3, 1), 1000);
        assert_eq!(find(), None);
        assert_eq!(route_it(), LearnedRoute::BlockStm(Some(key)));
    }
}
