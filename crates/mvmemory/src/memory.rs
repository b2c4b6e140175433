//! The sharded multi-version memory.

use crate::{
    error::MvMemoryError,
    types::{Entry, FinalWrites, ReadBase, ReadOrigin, ReadResult, ReadSet, WriteSet, WriteValue},
};
use crossbeam_utils::CachePadded;
use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, Hash, RandomState},
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
};
use velarium_primitives::{TxnIndex, Version};

/// Number of shards the locations are spread over (a power of two).
pub const NUM_SHARDS: usize = 128;

/// The version map of one location, ordered by writing transaction.
type Cell<V, D> = Mutex<Versions<V, D>>;

/// A location's entries, sorted by writing transaction.
///
/// A sorted vector rather than a `BTreeMap`: most locations have one or two writers, and a
/// B-tree allocates a whole leaf node (eleven entries) for the first one, which profiled as a
/// third of `record`'s time. Writers arrive roughly in transaction order, so even a hot location
/// (the beneficiary's credits) mostly appends.
#[derive(Debug)]
struct Versions<V, D>(Vec<(TxnIndex, Entry<V, D>)>);

impl<V, D> Default for Versions<V, D> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V, D> Versions<V, D> {
    /// Where `txn_idx` is, or would be inserted.
    fn position(&self, txn_idx: TxnIndex) -> Result<usize, usize> {
        self.0.binary_search_by_key(&txn_idx, |(idx, _)| *idx)
    }

    /// Sets the entry of `txn_idx`.
    fn insert(&mut self, txn_idx: TxnIndex, entry: Entry<V, D>) {
        match self.position(txn_idx) {
            Ok(i) => self.0[i].1 = entry,
            Err(i) => self.0.insert(i, (txn_idx, entry)),
        }
    }

    /// Removes the entry of `txn_idx`, if any.
    fn remove(&mut self, txn_idx: TxnIndex) {
        if let Ok(i) = self.position(txn_idx) {
            self.0.remove(i);
        }
    }

    /// The entries of transactions below `txn_idx`, highest first.
    fn below(&self, txn_idx: TxnIndex) -> impl Iterator<Item = (&TxnIndex, &Entry<V, D>)> {
        let end = self.position(txn_idx).unwrap_or_else(|i| i);
        self.0[..end].iter().rev().map(|(idx, entry)| (idx, entry))
    }
}

/// One shard: the location -> version-map index for the keys that hash into it.
type Shard<K, V, D, S> = RwLock<HashMap<K, Arc<Cell<V, D>>, S>>;

/// The shards, each padded to its own cache line.
type Shards<K, V, D, S> = Box<[CachePadded<Shard<K, V, D, S>>]>;

/// Locks a mutex, ignoring poisoning.
///
/// No code of this crate panics while holding a lock; a poisoned lock can only come from a
/// panicking `Clone`/`Hash`/`Eq` impl of the caller, after which the engine halts the block.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Multi-version memory for one block of `block_size` transactions.
///
/// `K` is a state location, `V` a full value, `D` a commutative delta. `S` hashes locations,
/// both to pick a shard and inside each shard's map. See the crate docs for the algorithm.
///
/// All methods take `&self` and may be called from any number of threads, subject to the
/// protocol in the crate docs: for a given transaction, `record` and
/// `convert_writes_to_estimates` are never called concurrently (the scheduler gives one
/// incarnation at a time to one worker), while `read` and `validate_read_set` may run at any
/// time.
pub struct MvMemory<K, V, D, S = RandomState> {
    /// Locations, spread by hash over [`NUM_SHARDS`] shards.
    ///
    /// Shard lock: taken for reading by every `read`/`record`/`validate_read_set` to look the
    /// location up, for writing only by `record` when a location is written for the first time.
    /// Guards only the membership of the map; it is released before the location's cell is
    /// locked. Cells are never removed before `into_final_writes`, so an `Arc` cloned out of the
    /// map stays the one and only cell of its location.
    ///
    /// Cell lock: taken by `read` and `validate_read_set` (walk entries below the reader),
    /// `record` (insert/remove this txn's entry) and `convert_writes_to_estimates`. Held only
    /// for the in-memory walk or update, never while another lock is acquired.
    shards: Shards<K, V, D, S>,
    /// Per transaction: the keys written by its last recorded incarnation.
    ///
    /// Written by `record` (replaced) and read by `record`/`convert_writes_to_estimates`, both
    /// only by the worker that owns the transaction's current incarnation, so the mutex is
    /// uncontended; it makes the type `Sync` without `unsafe`.
    last_written: Box<[CachePadded<Mutex<Vec<K>>>]>,
    /// Per transaction: the read set of its last recorded incarnation.
    ///
    /// Written (write lock) by `record`; read (read lock) by `validate_read_set`, possibly by
    /// several validators at once (different validation waves). Held during the whole
    /// validation, while shard and cell locks are taken (slot -> shard -> cell order).
    last_read: Box<[CachePadded<RwLock<ReadSet<K>>>]>,
    /// Hasher used to pick shards and inside each shard.
    hasher: S,
}

impl<K, V, D, S> fmt::Debug for MvMemory<K, V, D, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MvMemory")
            .field("block_size", &self.last_written.len())
            .field("num_shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K, V, D> MvMemory<K, V, D, RandomState>
where
    K: Eq + Hash + Clone + Send + Sync,
    V: Clone,
    D: Clone,
{
    /// Builds an empty memory for a block of `block_size` transactions.
    pub fn new(block_size: usize) -> Self {
        Self::with_hasher(block_size, RandomState::new())
    }
}

impl<K, V, D, S> MvMemory<K, V, D, S>
where
    K: Eq + Hash + Clone + Send + Sync,
    V: Clone,
    D: Clone,
    S: BuildHasher + Clone,
{
    /// Builds an empty memory for a block of `block_size` transactions, hashing locations with
    /// `hasher`.
    pub fn with_hasher(block_size: usize, hasher: S) -> Self {
        let shards = (0..NUM_SHARDS)
            .map(|_| CachePadded::new(RwLock::new(HashMap::with_hasher(hasher.clone()))))
            .collect();
        let last_written =
            (0..block_size).map(|_| CachePadded::new(Mutex::new(Vec::new()))).collect();
        let last_read =
            (0..block_size).map(|_| CachePadded::new(RwLock::new(ReadSet::new()))).collect();
        Self { shards, last_written, last_read, hasher }
    }

    /// Number of transactions of the block this memory was built for.
    pub fn block_size(&self) -> usize {
        self.last_written.len()
    }

    fn shard(&self, key: &K) -> &Shard<K, V, D, S> {
        // Bits 32.. of the hash pick the shard: the shard map itself indexes buckets with the
        // low bits and tags with the top 7 bits, so these stay uncorrelated with both.
        let hash = self.hasher.hash_one(key);
        &self.shards[(hash >> 32) as usize & (NUM_SHARDS - 1)]
    }

    /// The cell of `key`, if it was ever written.
    fn cell(&self, key: &K) -> Option<Arc<Cell<V, D>>> {
        let shard = self.shard(key).read().unwrap_or_else(PoisonError::into_inner);
        shard.get(key).cloned()
    }

    /// The cell of `key`, created if needed.
    fn cell_or_insert(&self, key: &K) -> Arc<Cell<V, D>> {
        if let Some(cell) = self.cell(key) {
            return cell;
        }
        let mut shard = self.shard(key).write().unwrap_or_else(PoisonError::into_inner);
        shard.entry(key.clone()).or_default().clone()
    }

    /// Reads `key` as transaction `txn_idx` sees it: the entries of transactions below
    /// `txn_idx`, see [`ReadResult`].
    ///
    /// `read(key, block_size)` after the block is done gives the final value of `key`.
    pub fn read(&self, key: &K, txn_idx: TxnIndex) -> ReadResult<V, D> {
        let Some(cell) = self.cell(key) else {
            return ReadResult::NotFound { deltas: Vec::new() };
        };
        let entries = lock(&cell);
        let mut deltas = Vec::new();
        for (&idx, entry) in entries.below(txn_idx) {
            match entry {
                Entry::Estimate => return ReadResult::Dependency { blocking_txn_idx: idx },
                Entry::Delta { incarnation, delta } => {
                    deltas.push((Version::new(idx, *incarnation), delta.clone()));
                }
                Entry::Data { incarnation, value } => {
                    deltas.reverse();
                    return ReadResult::Value {
                        version: Version::new(idx, *incarnation),
                        value: value.clone(),
                        deltas,
                    };
                }
            }
        }
        deltas.reverse();
        ReadResult::NotFound { deltas }
    }

    /// Whether reading `key` as `txn_idx` now would give exactly `origin`.
    fn origin_matches(&self, key: &K, txn_idx: TxnIndex, origin: &ReadOrigin) -> bool {
        let Some(cell) = self.cell(key) else {
            return origin.base == ReadBase::Storage && origin.deltas.is_empty();
        };
        if origin.ignore_deltas {
            let entries = lock(&cell);
            for (&idx, entry) in entries.below(txn_idx) {
                match entry {
                    Entry::Estimate => return false,
                    Entry::Delta { .. } => {}
                    Entry::Data { incarnation, .. } => {
                        return origin.base == ReadBase::Version(Version::new(idx, *incarnation));
                    }
                }
            }
            return origin.base == ReadBase::Storage;
        }
        let entries = lock(&cell);
        // Walk down, matching the recorded deltas from the highest one.
        let mut expected_deltas = origin.deltas.iter().rev();
        for (&idx, entry) in entries.below(txn_idx) {
            match entry {
                Entry::Estimate => return false,
                Entry::Delta { incarnation, .. } => {
                    if expected_deltas.next() != Some(&Version::new(idx, *incarnation)) {
                        return false;
                    }
                }
                Entry::Data { incarnation, .. } => {
                    return expected_deltas.next().is_none()
                        && origin.base == ReadBase::Version(Version::new(idx, *incarnation));
                }
            }
        }
        expected_deltas.next().is_none() && origin.base == ReadBase::Storage
    }

    /// Records a finished incarnation: stores its read set (for validation), applies its writes
    /// and removes the entries of locations its previous incarnation wrote but it did not.
    ///
    /// Returns `wrote_new_location`: whether it wrote a location its previous recorded
    /// incarnation did not, to pass to `Scheduler::finish_execution`.
    ///
    /// # Panics
    ///
    /// If `version.txn_idx >= block_size`.
    pub fn record(
        &self,
        version: Version,
        read_set: ReadSet<K>,
        write_set: WriteSet<K, V, D>,
    ) -> bool {
        let txn_idx = version.txn_idx;
        let slot = txn_idx as usize;
        *self.last_read[slot].write().unwrap_or_else(PoisonError::into_inner) = read_set;

        let mut last_written = lock(&self.last_written[slot]);
        // Write sets are small (a handful of locations per transaction): linear scans over
        // vectors beat hashing them into sets.
        let mut new_keys: Vec<K> = Vec::with_capacity(write_set.len());
        let mut wrote_new_location = false;
        // Write first, then remove: a reader never sees a location of this txn vanish and
        // come back.
        for (key, write) in write_set.into_vec() {
            let entry = match write {
                WriteValue::Value(value) => Entry::Data { incarnation: version.incarnation, value },
                WriteValue::Delta(delta) => {
                    Entry::Delta { incarnation: version.incarnation, delta }
                }
            };
            lock(&self.cell_or_insert(&key)).insert(txn_idx, entry);
            wrote_new_location |= !last_written.contains(&key);
            if !new_keys.contains(&key) {
                new_keys.push(key);
            }
        }
        for key in last_written.iter() {
            if !new_keys.contains(key) {
                if let Some(cell) = self.cell(key) {
                    lock(&cell).remove(txn_idx);
                }
            }
        }
        *last_written = new_keys;
        wrote_new_location
    }

    /// Replaces every entry written by the last recorded incarnation of `txn_idx` with
    /// [`Entry::Estimate`]. Called after a validation aborted that incarnation
    /// (`Scheduler::try_validation_abort` returned `true`), before
    /// `Scheduler::finish_validation`.
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn convert_writes_to_estimates(&self, txn_idx: TxnIndex) {
        let last_written = lock(&self.last_written[txn_idx as usize]);
        for key in last_written.iter() {
            if let Some(cell) = self.cell(key) {
                lock(&cell).insert(txn_idx, Entry::Estimate);
            }
        }
    }

    /// Re-reads every read of the last recorded incarnation of `txn_idx` and checks it would
    /// come from the same origin (same storage/version and same delta versions). A read that
    /// now meets an `Estimate` fails.
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn validate_read_set(&self, txn_idx: TxnIndex) -> bool {
        let read_set =
            self.last_read[txn_idx as usize].read().unwrap_or_else(PoisonError::into_inner);
        read_set.iter().all(|(key, origin)| self.origin_matches(key, txn_idx, origin))
    }

    /// The keys written by the last recorded incarnation of `txn_idx` (unordered).
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn last_written_keys(&self, txn_idx: TxnIndex) -> Vec<K> {
        lock(&self.last_written[txn_idx as usize]).clone()
    }

    /// Consumes the memory after the block is done and lists, for every location that still has
    /// entries, its entries in ascending transaction order. Locations come in no particular
    /// order.
    ///
    /// The final value of a location is the last `Value` with every later `Delta` applied, or
    /// base storage with every `Delta` applied when there is no `Value`.
    ///
    /// # Errors
    ///
    /// [`MvMemoryError::UnresolvedEstimate`] if an `Estimate` is left, i.e. the block did not
    /// finish.
    pub fn into_final_writes(self) -> Result<FinalWrites<K, V, D>, MvMemoryError> {
        let mut out = Vec::new();
        for shard in self.shards.into_vec() {
            let map =
                CachePadded::into_inner(shard).into_inner().unwrap_or_else(PoisonError::into_inner);
            for (key, cell) in map {
                let entries = std::mem::take(&mut lock(&cell).0);
                if entries.is_empty() {
                    continue;
                }
                let mut writes = Vec::with_capacity(entries.len());
                for (txn_idx, entry) in entries {
                    writes.push(match entry {
                        Entry::Data { incarnation, value } => {
                            (Version::new(txn_idx, incarnation), WriteValue::Value(value))
                        }
                        Entry::Delta { incarnation, delta } => {
                            (Version::new(txn_idx, incarnation), WriteValue::Delta(delta))
                        }
                        Entry::Estimate => {
                            return Err(MvMemoryError::UnresolvedEstimate { txn_idx })
                        }
                    });
                }
                out.push((key, writes));
            }
        }
        Ok(out)
    }
}
