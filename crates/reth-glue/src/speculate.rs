//! Candidates: the transactions a payload builder is about to try, seen a few ahead of the
//! builder, so that its executor can run them through Block-STM before it asks for each.
//!
//! reth's payload builder (`default_ethereum_payload`) creates an executor for the next block,
//! then pulls the pool's best transactions one at a time and executes each with
//! `execute_transaction_with_result_closure`; it skips a transaction that does not fit (gas,
//! blobs, size) or that the executor rejects as invalid, and `mark_invalid` drops that
//! sender's later transactions. Which transactions the block gets is decided one at a time,
//! from the committed state.
//!
//! A [`Lookahead`] wraps the pool's iterator: it pulls up to [`Lookahead::depth`] transactions
//! ahead of the builder and publishes each into a [`CandidateFeed`] held by the factory's
//! [`CandidateRegistry`] under the block's [`BuildKey`]. The executor the builder created
//! takes the feed (`create_executor`). At a transaction call it finds the transaction among
//! the candidates and runs it with the candidates after it through Block-STM on the executor's
//! `State` (a *window*), traced (`velarium_executor::execute_transactions_traced`); the call
//! commits the window's first outcome, and each later call whose transaction is the window's
//! next one (or a later one: those between were skipped) commits its outcome if no location it
//! read was written by a candidate the builder skipped, by a transaction the executor ran
//! afresh, or by anything else committed since the window started. Otherwise the transaction
//! runs through alloy-evm's executor on the committed state, and what it wrote joins those
//! locations. So the builder's choices, results and state are exactly sequential's; only the
//! work moves to the workers ahead of time.
//!
//! # Wiring it into a payload builder (bin/velarium-reth)
//!
//! ```text
//! let key = BuildKey { parent_hash, number, timestamp, beneficiary: suggested_fee_recipient };
//! let feed = factory.candidates().begin(key);
//! default_ethereum_payload(evm_config, client, pool, config, args, |attributes| {
//!     let best = pool.best_transactions_with_attributes(attributes);
//!     // `mark_invalid` must reach both the pool's iterator and the lookahead's buffer.
//!     Box::new(LookaheadBest(Lookahead::new(best, feed, depth, |tx| {
//!         Some(PlannedTx::from_parts(tx.to_consensus()))
//!     })))
//! })
//! ```
//!
//! A feed no executor takes is replaced by the next build's; a feed taken by another executor
//! only suggests candidates: every outcome is checked against the executor's own state.

use crate::plan::PlannedTx;
use alloy_primitives::{map::HashSet, Address, B256};
use revm::{
    context::{BlockEnv, TxEnv},
    state::EvmState,
};
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};
use velarium_executor::{AccessKey, SpeculativeTx};

/// How many candidates a [`Lookahead`] keeps ahead of the builder by default, which is also the
/// largest window. Each window is one Block-STM start, and candidates pulled past a full block
/// are run for nothing; on the 47 mainnet blocks built from their own transactions (two
/// workers, `builder_timing` in the glue's tests) 64, 128 and one window a block measured
/// within the machine's noise of each other (0.77x-0.89x of sequential building).
pub const DEFAULT_LOOKAHEAD: usize = 128;

/// The block a payload builder's executor is created for: what `create_executor` can compare
/// (the builder's execution context has no transaction count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BuildKey {
    /// The parent block's hash.
    pub parent_hash: B256,
    /// The block number.
    pub number: u64,
    /// The block timestamp.
    pub timestamp: u64,
    /// The fee recipient.
    pub beneficiary: Address,
}

impl BuildKey {
    /// The key of the block an executor is created for (`None` with a number or timestamp
    /// beyond `u64`).
    pub fn of_block(parent_hash: B256, block: &BlockEnv) -> Option<Self> {
        Some(Self {
            parent_hash,
            number: block.number.try_into().ok()?,
            timestamp: block.timestamp.try_into().ok()?,
            beneficiary: block.beneficiary,
        })
    }
}

/// The candidates of one build, in the order the builder will see them (append-only).
#[derive(Debug)]
pub struct CandidateFeed {
    key: BuildKey,
    txs: Mutex<Vec<PlannedTx>>,
}

impl CandidateFeed {
    /// An empty feed for the build `key`.
    pub const fn new(key: BuildKey) -> Self {
        Self { key, txs: Mutex::new(Vec::new()) }
    }

    /// The build this feed belongs to.
    pub const fn key(&self) -> &BuildKey {
        &self.key
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PlannedTx>> {
        self.txs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the next candidate.
    pub fn push(&self, tx: PlannedTx) {
        self.lock().push(tx);
    }

    /// How many candidates were published.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of the candidate `(hash, signer)` at or after `from`, and the candidates
    /// from there (at most `max`).
    pub(crate) fn find(
        &self,
        from: usize,
        hash: B256,
        signer: Address,
        max: usize,
    ) -> Option<(usize, Vec<PlannedTx>)> {
        let txs = self.lock();
        let at =
            from + txs.get(from..)?.iter().position(|tx| tx.hash == hash && tx.signer == signer)?;
        Some((at, txs[at..txs.len().min(at.saturating_add(max))].to_vec()))
    }
}

/// The feeds of the builds in progress, shared by whoever fills them (the payload builder's
/// [`Lookahead`]) and the executor factory, which hands each to the executor of its block.
#[derive(Debug, Default)]
pub struct CandidateRegistry {
    feeds: Mutex<Vec<Arc<CandidateFeed>>>,
}

/// Feeds kept at most (builds of different payloads in progress at once).
const MAX_FEEDS: usize = 4;

impl CandidateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<CandidateFeed>>> {
        self.feeds.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the feed of a build of `key`, replacing one of the same key not taken (and the
    /// oldest beyond a few), and returns it for the lookahead to fill.
    pub fn begin(&self, key: BuildKey) -> Arc<CandidateFeed> {
        let feed = Arc::new(CandidateFeed::new(key));
        let mut feeds = self.lock();
        feeds.retain(|f| f.key != key);
        if feeds.len() >= MAX_FEEDS {
            feeds.remove(0);
        }
        feeds.push(feed.clone());
        feed
    }

    /// Takes the feed of `key`, if there is one.
    pub fn take_matching(&self, key: &BuildKey) -> Option<Arc<CandidateFeed>> {
        let mut feeds = self.lock();
        let at = feeds.iter().position(|f| f.key == *key)?;
        Some(feeds.remove(at))
    }

    /// How many feeds wait for their executor.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }
}

/// An iterator that pulls up to `depth` items ahead of its caller from `inner` and publishes
/// each one `convert` accepts into a [`CandidateFeed`], in order (see the module docs).
#[derive(Debug)]
pub struct Lookahead<I: Iterator, F> {
    inner: I,
    buffer: VecDeque<I::Item>,
    feed: Arc<CandidateFeed>,
    depth: usize,
    convert: F,
}

impl<I, F> Lookahead<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item) -> Option<PlannedTx>,
{
    /// Wraps `inner`, publishing into `feed`, `depth` items ahead (0: none ahead, and nothing
    /// is published).
    pub fn new(inner: I, feed: Arc<CandidateFeed>, depth: usize, convert: F) -> Self {
        Self { inner, buffer: VecDeque::new(), feed, depth, convert }
    }

    /// How many items it keeps ahead of the caller.
    pub const fn depth(&self) -> usize {
        self.depth
    }

    /// The wrapped iterator (for what it does besides iterating, such as reth's
    /// `BestTransactions::mark_invalid`; see [`Self::retain`]).
    pub fn inner_mut(&mut self) -> &mut I {
        &mut self.inner
    }

    /// Drops the items pulled ahead that `keep` rejects (what the wrapped iterator itself would
    /// no longer yield, such as an invalid sender's later transactions). They stay in the feed:
    /// the executor treats them as skipped.
    pub fn retain(&mut self, keep: impl FnMut(&I::Item) -> bool) {
        self.buffer.retain(keep);
    }

    fn pull(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        if self.depth > 0 {
            if let Some(tx) = (self.convert)(&item) {
                self.feed.push(tx);
            }
        }
        Some(item)
    }
}

impl<I, F> Iterator for Lookahead<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item) -> Option<PlannedTx>,
{
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if self.depth == 0 {
            return self.inner.next();
        }
        // Top up once the buffer runs low, so that the pool's iterator (which reacts to
        // `mark_invalid`) is asked in batches.
        if self.buffer.len() * 2 <= self.depth {
            while self.buffer.len() < self.depth {
                let Some(item) = self.pull() else { break };
                self.buffer.push_back(item);
            }
        }
        self.buffer.pop_front()
    }
}

/// An executor's side of a build: its feed, and the window of candidates Block-STM ran last.
#[derive(Debug)]
pub(crate) struct Speculation {
    pub(crate) feed: Arc<CandidateFeed>,
    /// The feed position after the last candidate called.
    pub(crate) cursor: usize,
    pub(crate) window: Option<Window>,
    /// The transactions committed, as this executor committed them (another count means the
    /// caller committed one itself).
    pub(crate) committed: usize,
}

impl Speculation {
    pub(crate) const fn new(feed: Arc<CandidateFeed>) -> Self {
        Self { feed, cursor: 0, window: None, committed: 0 }
    }
}

/// What a transaction call finds in the window.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per call, at once unpacked
pub(crate) enum Lookup {
    /// Not among the window's candidates still ahead.
    Absent,
    /// Its outcome read a location written differently since the window ran.
    Stale,
    /// Its outcome, exact on the committed state.
    Valid(SpeculativeTx),
}

/// Block-STM's outcomes of a window of candidates, run on the state committed when it started,
/// and what was written since other than by committing those outcomes in order.
#[derive(Debug)]
pub(crate) struct Window {
    ids: Vec<(B256, Address)>,
    envs: Vec<TxEnv>,
    outcomes: Vec<Option<SpeculativeTx>>,
    /// The feed position of the first candidate.
    start: usize,
    /// Candidates before `next` were called or skipped.
    next: usize,
    /// Locations written other than by committed outcomes: the outcomes of candidates skipped
    /// or not committed, and what transactions executed afresh wrote.
    dirty: HashSet<AccessKey>,
    /// Accounts whose storage was wiped among those writes (every slot of theirs is dirty).
    wiped: HashSet<Address>,
    /// An outcome without accesses was skipped: nothing after it can be checked.
    poisoned: bool,
}

impl Window {
    /// The window of `txs` (from feed position `start`), before Block-STM ran them (no
    /// outcomes: every call finds it absent).
    pub(crate) fn new(start: usize, txs: Vec<PlannedTx>) -> Self {
        let (envs, ids) = txs.into_iter().map(|tx| (tx.tx_env, (tx.hash, tx.signer))).unzip();
        Self {
            ids,
            envs,
            outcomes: Vec::new(),
            start,
            next: 0,
            dirty: HashSet::default(),
            wiped: HashSet::default(),
            poisoned: false,
        }
    }

    /// The candidates' transaction environments, for Block-STM.
    pub(crate) fn envs(&self) -> &[TxEnv] {
        &self.envs
    }

    /// Block-STM's outcomes of the candidates, in order.
    pub(crate) fn set_outcomes(&mut self, outcomes: Vec<SpeculativeTx>) {
        self.outcomes = outcomes.into_iter().map(Some).collect();
    }

    /// The feed position after the candidates called or skipped.
    pub(crate) const fn feed_position(&self) -> usize {
        self.start + self.next
    }

    /// The call of the transaction `(hash, signer, tx_env)`: the candidates ahead of it are
    /// skipped (their writes become dirty), and its outcome is handed out if nothing it read is
    /// dirty.
    pub(crate) fn take(&mut self, hash: B256, signer: Address, tx_env: &TxEnv) -> Lookup {
        let Some(k) = (self.next..self.outcomes.len())
            .find(|&k| self.ids[k] == (hash, signer) && self.envs[k] == *tx_env)
        else {
            return Lookup::Absent;
        };
        for j in self.next..k {
            if let Some(skipped) = self.outcomes[j].take() {
                self.forget(&skipped);
            }
        }
        self.next = k + 1;
        let Some(outcome) = self.outcomes[k].take() else { return Lookup::Absent };
        if self.still_valid(&outcome) {
            Lookup::Valid(outcome)
        } else {
            self.forget(&outcome);
            Lookup::Stale
        }
    }

    /// An outcome that will not be committed: what it wrote is not in the state.
    fn forget(&mut self, outcome: &SpeculativeTx) {
        match outcome.accesses() {
            Some((_, writes)) => writes.into_iter().for_each(|w| self.mark(w)),
            None => self.poisoned = true,
        }
    }

    /// Nothing after this can be checked (an outcome left uncommitted by the caller).
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
    }

    fn mark(&mut self, location: AccessKey) {
        if let AccessKey::StorageEpoch(address) = location {
            self.wiped.insert(address);
        }
        self.dirty.insert(location);
    }

    /// Whether nothing `outcome` read was written differently since the window ran.
    fn still_valid(&self, outcome: &SpeculativeTx) -> bool {
        if self.poisoned {
            return false;
        }
        if self.dirty.is_empty() {
            return true;
        }
        let Some((reads, _)) = outcome.accesses() else { return false };
        reads.iter().all(|read| {
            !self.dirty.contains(read)
                && !matches!(read, AccessKey::Storage(address, _) if self.wiped.contains(address))
        })
    }

    /// Marks what a transaction executed afresh wrote: its touched accounts, changed slots and
    /// wiped storages.
    pub(crate) fn mark_state(&mut self, state: &EvmState) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            self.mark(AccessKey::Account(*address));
            if account.is_created() || account.is_selfdestructed() {
                self.mark(AccessKey::StorageEpoch(*address));
            }
            for (slot, value) in &account.storage {
                if value.is_changed() {
                    self.mark(AccessKey::Storage(*address, *slot));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::tx;

    fn key(number: u64) -> BuildKey {
        BuildKey {
            parent_hash: B256::repeat_byte(1),
            number,
            timestamp: 12,
            beneficiary: Address::repeat_byte(2),
        }
    }

    #[test]
    fn lookahead_yields_everything_in_order_and_publishes_ahead() {
        let feed = Arc::new(CandidateFeed::new(key(1)));
        let mut it = Lookahead::new(0..10u64, feed.clone(), 4, |n| Some(tx(*n)));
        assert_eq!(it.next(), Some(0));
        assert_eq!(feed.len(), 4, "pulled ahead");
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), Some(2));
        assert_eq!(feed.len(), 6, "topped up once half was used");
        // The caller drops what the inner iterator would drop: it stays in the feed.
        it.retain(|n| *n != 4);
        let rest: Vec<_> = it.collect();
        assert_eq!(rest, vec![3, 5, 6, 7, 8, 9]);
        assert_eq!(feed.len(), 10);
        let (at, window) = feed.find(2, tx(5).hash, tx(5).signer, 3).unwrap();
        assert_eq!(at, 5);
        assert_eq!(window, vec![tx(5), tx(6), tx(7)]);
        assert!(feed.find(6, tx(5).hash, tx(5).signer, 3).is_none(), "searched from 6");
    }

    #[test]
    fn no_depth_publishes_nothing() {
        let feed = Arc::new(CandidateFeed::new(key(1)));
        let it = Lookahead::new(0..3u64, feed.clone(), 0, |n| Some(tx(*n)));
        assert_eq!(it.collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(feed.is_empty());
    }

    #[test]
    fn registry_hands_a_feed_only_to_its_build() {
        let registry = CandidateRegistry::new();
        let first = registry.begin(key(1));
        let again = registry.begin(key(1));
        assert!(!Arc::ptr_eq(&first, &again), "a new build of the same block replaces it");
        assert_eq!(registry.pending(), 1);
        for n in 2..=6 {
            registry.begin(key(n));
        }
        assert_eq!(registry.pending(), MAX_FEEDS);
        assert!(registry.take_matching(&key(1)).is_none(), "the oldest went");
        let last = registry.begin(key(7));
        assert!(Arc::ptr_eq(&registry.take_matching(&key(7)).unwrap(), &last));
        assert!(registry.take_matching(&key(7)).is_none(), "taken once");
    }
}
