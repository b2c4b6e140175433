//! The sharded multi-version memory.

use crate::{
    arena::{bound_worker, Arena},
    error::MvMemoryError,
    types::{
        Delta, DeltaSum, Entry, FinalWrites, MvKey, ReadMode, ReadOrigin, ReadResult, ReadSet,
        WriteSet, WriteValue,
    },
};
use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use smallvec::SmallVec;
use std::{
    fmt,
    ptr::NonNull,
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, MutexGuard, PoisonError, RwLock,
    },
};
use velarium_primitives::{TxnIndex, Version};

/// The most shards the locations are spread over (a power of two); see [`MvMemory::new`].
pub const NUM_SHARDS: usize = 256;

/// Where the first-writer filter keeps its epoch tag: the top 8 bits of each entry.
const EPOCH_SHIFT: u32 = 24;
/// The highest epoch tag (with all 8 bits set, a tagged entry of the last index would equal
/// [`UNWRITTEN`]).
const MAX_EPOCH: u32 = (1 << (32 - EPOCH_SHIFT)) - 2;
/// Blocks of this many transactions or more are not tagged (their indices, and the index
/// `block_size` of a read after the block, need the tag's bits).
const EPOCH_MAX_TXS: usize = 1 << EPOCH_SHIFT;
/// A first-writer entry no block wrote.
const UNWRITTEN: u32 = u32::MAX;

/// From this many deltas on, a location keeps their running sums (see `Cell::sums`).
const SUMMED_DELTAS: usize = 8;

/// A location's entries of one kind: most locations are written by one transaction, so one
/// entry is kept inline.
type Entries<T> = SmallVec<[(TxnIndex, Entry<T>); 1]>;

/// One location's entries. A transaction has at most one entry per location, either among the
/// full values or among the deltas; both lists are sorted by transaction index. Keeping deltas
/// apart makes a read that ignores them (a lazily credited recipient, read by each of the
/// hundreds of transactions paying it) a binary search instead of a walk over every credit.
#[derive(Debug)]
struct Cell<K, V, D> {
    key: K,
    full: Entries<V>,
    deltas: Entries<D>,
    /// The estimates among `deltas` and their running sums, where the location has either
    /// (see [`DeltaBook`]); `None` for most locations. Boxed so that the cell keeps its size
    /// (248 bytes here): 8 or 24 bytes more read x0.87-x0.93 on uniswap_swaps_many_pairs at 2
    /// threads by turns (two copies of one binary differ by up to 4% there).
    book: Option<Box<DeltaBook<D>>>,
}

/// What a location with many deltas, or with estimates among them, keeps besides its entries.
#[derive(Debug)]
struct DeltaBook<D> {
    /// How many entries of `deltas` are estimates.
    estimates: u32,
    /// Once the location has [`SUMMED_DELTAS`] deltas or more, `sums[i]` is the combination of
    /// the deltas written in `deltas[..=i]` (estimates count as nothing), so that a read's sum of
    /// a range of deltas is the difference of two of them instead of a walk (each read of a
    /// location that hundreds of transactions credit, a beneficiary's balance, walked all of
    /// them); empty below that.
    sums: Vec<D>,
}

impl<D> Default for DeltaBook<D> {
    fn default() -> Self {
        Self { estimates: 0, sums: Vec::new() }
    }
}

/// A lower full value found by a read: its version and value.
type Found<'a, V> = Option<(Version, &'a V)>;

impl<K, V, D: Delta> Cell<K, V, D> {
    fn new(key: K) -> Self {
        Self { key, full: SmallVec::new(), deltas: SmallVec::new(), book: None }
    }

    /// How many entries of `deltas` are estimates.
    fn delta_estimates(&self) -> u32 {
        self.book.as_ref().map_or(0, |book| book.estimates)
    }

    /// Counts `added` more estimates among the deltas, `removed` fewer.
    fn count_estimates(&mut self, added: u32, removed: u32) {
        let book = self.book.get_or_insert_with(Box::default);
        book.estimates = book.estimates + added - removed;
        if book.estimates == 0 && book.sums.is_empty() {
            self.book = None;
        }
    }

    /// The running sums, where they are kept.
    fn sums(&self) -> Option<&[D]> {
        self.book.as_ref().map(|book| book.sums.as_slice()).filter(|sums| !sums.is_empty())
    }

    /// The running sum just before `deltas[i]` in `sums`.
    fn sum_before(sums: &[D], i: usize) -> D {
        i.checked_sub(1).map_or(D::ZERO, |j| sums[j])
    }

    /// What a delta entry adds to a sum (an estimate adds nothing).
    fn delta_of(entry: &Entry<D>) -> D {
        match entry {
            Entry::Written(_, delta) => *delta,
            Entry::Estimate => D::ZERO,
        }
    }

    /// Brings the running sums up to date after a change at `deltas[from]`: recomputed from
    /// there on where they are kept (or where the deltas just became many), dropped where the
    /// deltas became few. A location with few deltas and no sums (most of them, written out of
    /// order by two workers) has nothing to do and makes no call.
    #[inline]
    fn resum_from(&mut self, from: usize) {
        if self.deltas.len() >= SUMMED_DELTAS || self.sums().is_some() {
            self.resum_from_cold(from);
        }
    }

    /// [`Cell::resum_from`]'s work, out of line: off the common paths (appends, reads).
    #[cold]
    #[inline(never)]
    fn resum_from_cold(&mut self, from: usize) {
        if self.deltas.len() < SUMMED_DELTAS {
            if let Some(book) = &mut self.book {
                book.sums = Vec::new();
                if book.estimates == 0 {
                    self.book = None;
                }
            }
            return;
        }
        let book = self.book.get_or_insert_with(Box::default);
        let from = from.min(book.sums.len());
        book.sums.truncate(from);
        let mut sum = Self::sum_before(&book.sums, from);
        for (_, entry) in &self.deltas[from..] {
            sum = sum.combine(Self::delta_of(entry));
            book.sums.push(sum);
        }
    }

    /// The deltas `deltas[start..end]` combined (`start < end`).
    fn range_sum(&self, start: usize, end: usize) -> D {
        match self.sums() {
            Some(sums) => sums[end - 1].combine(Self::sum_before(sums, start).inverse()),
            None => self.deltas[start..end]
                .iter()
                .fold(D::ZERO, |sum, (_, entry)| sum.combine(Self::delta_of(entry))),
        }
    }

    /// What `txn_idx` reads here: the highest full value below it and, with
    /// [`ReadMode::WithDeltas`], the deltas between that value and the reader; or the
    /// estimate that blocks the read.
    fn locate(
        &self,
        txn_idx: TxnIndex,
        mode: ReadMode,
    ) -> Result<(Found<'_, V>, Option<DeltaSum<D>>), TxnIndex> {
        let end = self.full.partition_point(|(idx, _)| *idx < txn_idx);
        let floor = end.checked_sub(1).map(|i| &self.full[i]);
        let floor_idx = floor.map(|(idx, _)| *idx);
        // The deltas between the full value and the reader (all of them below the reader if
        // there is no full value). A read that ignores them needs them only to find an
        // estimate: with none, it skips the two searches (a hot receiver's slot holds a credit
        // of almost every transaction, each read of it by a later one searched them all).
        let (start, end) = if self.deltas.is_empty()
            || (mode == ReadMode::IgnoreDeltas && self.delta_estimates() == 0)
        {
            (0, 0)
        } else {
            let start = floor_idx.map_or(0, |f| self.deltas.partition_point(|(idx, _)| *idx <= f));
            let end = self.deltas.partition_point(|(idx, _)| *idx < txn_idx);
            (start, end.max(start))
        };
        let range = &self.deltas[start..end];
        // The highest estimate on the way down blocks: first the deltas above the floor.
        if self.delta_estimates() > 0 {
            if let Some((idx, _)) = range.iter().rev().find(|(_, e)| matches!(e, Entry::Estimate)) {
                return Err(*idx);
            }
        }
        let found = match floor {
            Some((idx, Entry::Estimate)) => return Err(*idx),
            Some((idx, Entry::Written(incarnation, value))) => {
                Some((Version::new(*idx, *incarnation), value))
            }
            None => None,
        };
        if mode == ReadMode::IgnoreDeltas || range.is_empty() {
            return Ok((found, None));
        }
        let sum = self.range_sum(start, end);
        Ok((found, Some(DeltaSum { sum, count: range.len() as u32 })))
    }

    /// Removes `txn_idx`'s delta entry, if any.
    fn remove_delta(&mut self, txn_idx: TxnIndex) {
        if self.deltas.last().is_none_or(|(idx, _)| *idx < txn_idx) {
            return;
        }
        if let Ok(i) = self.deltas.binary_search_by_key(&txn_idx, |(idx, _)| *idx) {
            if matches!(self.deltas.remove(i).1, Entry::Estimate) {
                self.count_estimates(0, 1);
            }
            self.resum_from(i);
        }
    }

    /// Removes `txn_idx`'s full entry, if any.
    fn remove_full(&mut self, txn_idx: TxnIndex) {
        if self.full.last().is_none_or(|(idx, _)| *idx < txn_idx) {
            return;
        }
        if let Ok(i) = self.full.binary_search_by_key(&txn_idx, |(idx, _)| *idx) {
            self.full.remove(i);
        }
    }

    /// Sets `txn_idx`'s entry.
    fn insert(&mut self, txn_idx: TxnIndex, incarnation: u32, write: WriteValue<V, D>) {
        match write {
            WriteValue::Value(value) => {
                self.remove_delta(txn_idx);
                let entry = Entry::Written(incarnation, value);
                // Mostly above every entry (transactions are executed in about block order).
                if self.full.last().is_none_or(|(idx, _)| *idx < txn_idx) {
                    self.full.push((txn_idx, entry));
                    return;
                }
                match self.full.binary_search_by_key(&txn_idx, |(idx, _)| *idx) {
                    Ok(i) => self.full[i].1 = entry,
                    Err(i) => self.full.insert(i, (txn_idx, entry)),
                }
            }
            WriteValue::Delta(delta) => {
                self.remove_full(txn_idx);
                let entry = Entry::Written(incarnation, delta);
                if self.deltas.last().is_none_or(|(idx, _)| *idx < txn_idx) {
                    self.deltas.push((txn_idx, entry));
                    match self.book.as_mut().filter(|book| !book.sums.is_empty()) {
                        Some(book) => {
                            let sum = Self::sum_before(&book.sums, book.sums.len()).combine(delta);
                            book.sums.push(sum);
                        }
                        None if self.deltas.len() >= SUMMED_DELTAS => self.resum_from(0),
                        None => {}
                    }
                    return;
                }
                let at = match self.deltas.binary_search_by_key(&txn_idx, |(idx, _)| *idx) {
                    Ok(i) => {
                        if matches!(self.deltas[i].1, Entry::Estimate) {
                            self.count_estimates(0, 1);
                        }
                        self.deltas[i].1 = entry;
                        i
                    }
                    Err(i) => {
                        self.deltas.insert(i, (txn_idx, entry));
                        i
                    }
                };
                self.resum_from(at);
            }
        }
    }

    /// Removes `txn_idx`'s entry, if any.
    fn remove(&mut self, txn_idx: TxnIndex) {
        self.remove_full(txn_idx);
        self.remove_delta(txn_idx);
    }

    /// Makes `txn_idx`'s entry an estimate, inserting one among the full values if it has none.
    fn predict(&mut self, txn_idx: TxnIndex) {
        match self.full.binary_search_by_key(&txn_idx, |(idx, _)| *idx) {
            Err(i) if self.deltas.binary_search_by_key(&txn_idx, |(idx, _)| *idx).is_err() => {
                self.full.insert(i, (txn_idx, Entry::Estimate));
            }
            _ => self.estimate(txn_idx),
        }
    }

    /// Turns `txn_idx`'s entry, if any, into an estimate.
    fn estimate(&mut self, txn_idx: TxnIndex) {
        if let Ok(i) = self.full.binary_search_by_key(&txn_idx, |(idx, _)| *idx) {
            self.full[i].1 = Entry::Estimate;
        } else if let Ok(i) = self.deltas.binary_search_by_key(&txn_idx, |(idx, _)| *idx) {
            if !matches!(self.deltas[i].1, Entry::Estimate) {
                self.deltas[i].1 = Entry::Estimate;
                self.count_estimates(1, 0);
                self.resum_from(i);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.full.is_empty() && self.deltas.is_empty()
    }

    /// Drops the entries no reader at or above `floor` can see: everything below the highest
    /// full value under `floor`. Keeps a location every transaction writes (a hot counter, a
    /// sender's token balance) at a couple of entries instead of one per transaction.
    fn prune_below(&mut self, floor: TxnIndex) {
        let end = self.full.partition_point(|(idx, _)| *idx < floor);
        if end < 2 {
            return;
        }
        let keep_from = self.full[end - 1].0;
        if !matches!(self.full[end - 1].1, Entry::Written(..)) {
            return;
        }
        self.full.drain(..end - 1);
        let dead = self.deltas.partition_point(|(idx, _)| *idx < keep_from);
        let dead_estimates =
            self.deltas[..dead].iter().filter(|(_, e)| matches!(e, Entry::Estimate)).count();
        if dead_estimates > 0 {
            self.count_estimates(0, dead_estimates as u32);
        }
        self.deltas.drain(..dead);
        if dead > 0 {
            // What is left is short: everything below the last full value under `floor` went.
            self.resum_from(0);
        }
    }
}

/// A shard table's entry: a cell (in one of the memory's arenas) and its location's hash.
///
/// Every cell is created for exactly one table, is referred to by that table only, and stays
/// in place until the memory is cleared (which takes `&mut MvMemory`, so no table is in use).
/// So the shard's lock, held for the table, guards the cell too: [`CellRef::get`] under the
/// read lock, [`CellRef::get_mut`] under the write lock.
struct CellRef<K, V, D> {
    hash: u64,
    cell: NonNull<Cell<K, V, D>>,
}

// SAFETY: a `CellRef` is a reference to its cell, used only under its shard's lock (see above),
// so it may go and be shared wherever a `&Cell`/`&mut Cell` could.
unsafe impl<K: Send + Sync, V: Send + Sync, D: Send + Sync> Send for CellRef<K, V, D> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync, D: Send + Sync> Sync for CellRef<K, V, D> {}

impl<K, V, D> CellRef<K, V, D> {
    /// The cell, for a holder of its shard's read (or write) lock.
    fn get(&self) -> &Cell<K, V, D> {
        // SAFETY: the cell is alive while its table holds this entry, and the shard lock the
        // caller holds excludes every writer of it (see the type's docs).
        unsafe { self.cell.as_ref() }
    }

    /// The cell, for the holder of its shard's write lock.
    fn get_mut(&mut self) -> &mut Cell<K, V, D> {
        // SAFETY: as in `get`; the write lock excludes every other access.
        unsafe { self.cell.as_mut() }
    }

    /// Whether this is `key`'s cell (`hash` being `key`'s), for a holder of the shard's lock:
    /// the cell is read only when the hashes agree.
    fn holds(&self, hash: u64, key: &K) -> bool
    where
        K: PartialEq,
    {
        self.hash == hash && self.get().key == *key
    }
}

/// One shard: the cells of the locations whose hash falls into it.
type Shard<K, V, D> = RwLock<HashTable<CellRef<K, V, D>>>;

/// One worker's arena of cells, padded to its own cache line.
type CellArena<K, V, D> = CachePadded<Mutex<Arena<Cell<K, V, D>>>>;

/// What the memory keeps per transaction, about its last recorded incarnation.
#[derive(Debug)]
struct TxSlot<K, D> {
    /// The locations it wrote.
    written: Vec<K>,
    /// Scratch space for `record` (the new written list), kept to avoid allocating.
    scratch: Vec<K>,
    /// Its reads, for validation.
    reads: ReadSet<K, D>,
    /// Locations it is expected to write, each holding an estimate of it until it records
    /// (see [`MvMemory::predict_write`]).
    predicted: Vec<K>,
}

impl<K, D> Default for TxSlot<K, D> {
    fn default() -> Self {
        Self { written: Vec::new(), scratch: Vec::new(), reads: Vec::new(), predicted: Vec::new() }
    }
}

/// One transaction's slot, padded to its own cache line.
type Slot<K, D> = CachePadded<Mutex<TxSlot<K, D>>>;

/// Locks a mutex, ignoring poisoning (no code of this crate panics while holding a lock; a
/// poisoned lock can only come from a panicking `Clone`/`Eq` of the caller's types, after which
/// the engine halts the block).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Multi-version memory for one block of `block_size` transactions.
///
/// `K` is a state location, `V` a full value, `D` a commutative delta. See the crate docs for
/// the algorithm and the caller protocol.
pub struct MvMemory<K, V, D> {
    /// Locations, spread by hash over [`NUM_SHARDS`] shards. A shard's lock guards its table
    /// and every cell in it; it is held only for the in-memory lookup or update, never while
    /// another shard lock is taken.
    shards: Box<[CachePadded<Shard<K, V, D>>]>,
    /// Where the cells live: one arena per worker (see `arena.rs`), each locked only to append
    /// (by the thread bound to it, so uncontended), after the shard lock.
    arenas: Box<[CellArena<K, V, D>]>,
    /// `shards.len() - 1`.
    shard_mask: usize,
    /// Per transaction: what its last recorded incarnation wrote and read. Locked by `record`
    /// and `convert_writes_to_estimates` (the transaction's owner) and by `validate_read_set`;
    /// taken before any shard lock (lock order: slot, then shard).
    slots: Box<[Slot<K, D>]>,
    /// Per hash bucket, the lowest transaction that wrote a location of the bucket, lowered
    /// before the entry is written, tagged with the block's epoch (`epoch_base | txn_idx`; any
    /// larger value, of an earlier block or `u32::MAX`, means none): a read by a transaction at
    /// or below it (most reads: of a location nobody wrote, or only the reader and higher
    /// transactions wrote) needs no lock. Never raised during the block.
    first_writer: Box<[AtomicU32]>,
    /// Mask of the bucket index.
    bucket_mask: u64,
    /// The current block's tag in `first_writer`'s top bits ([`EPOCH_SHIFT`]), lower for each
    /// new block, so that an earlier block's entries compare above every entry of this one and
    /// read as unwritten: a new block starts without rewriting the filter, whose lines then stay
    /// in the caches of the workers that used them (rewritten between blocks, every line would
    /// move to the core that rewrote it, and the next block would fetch each one back). A block
    /// too large for tags has zero (its indices are compared in full, after a rewrite).
    epoch_base: u32,
    /// Nothing is left from an earlier block ([`MvMemory::clear`] ran since the memory was last
    /// handed out by [`MvMemory::reset`]): `reset` has nothing to empty.
    cleared: bool,
}

impl<K, V, D> fmt::Debug for MvMemory<K, V, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MvMemory")
            .field("block_size", &self.slots.len())
            .field("num_shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K: MvKey, V: Clone, D: Delta> MvMemory<K, V, D> {
    /// An empty memory for a block of `block_size` transactions.
    pub fn new(block_size: usize) -> Self {
        Self::with_workers(block_size, NUM_SHARDS / 8)
    }

    /// An empty memory for a block of `block_size` transactions executed by `workers` threads:
    /// 8 shards per worker (at most [`NUM_SHARDS`]) keep two workers off each other's locks
    /// without spreading a small block over hundreds of tables, each sized for the block.
    pub fn with_workers(block_size: usize, workers: usize) -> Self {
        let shard_count = Self::shard_count(workers);
        // About three written locations per transaction.
        let per_shard = block_size.saturating_mul(3) / shard_count;
        let shards = (0..shard_count)
            .map(|_| CachePadded::new(RwLock::new(HashTable::with_capacity(per_shard))))
            .collect();
        let slots = (0..block_size).map(|_| Slot::default()).collect();
        let buckets = Self::buckets(block_size);
        let first_writer = (0..buckets).map(|_| AtomicU32::new(UNWRITTEN)).collect();
        let arenas = (0..workers.max(1)).map(|_| CellArena::default()).collect();
        Self {
            shards,
            arenas,
            shard_mask: shard_count - 1,
            slots,
            first_writer,
            bucket_mask: buckets as u64 - 1,
            epoch_base: Self::first_epoch(block_size),
            // Usable as it is, without a `reset`: so not known to be empty once used.
            cleared: false,
        }
    }

    /// The shards of a memory for `workers` threads.
    fn shard_count(workers: usize) -> usize {
        (workers.max(1) * 8).next_power_of_two().clamp(8, NUM_SHARDS)
    }

    /// Whether [`MvMemory::reset`] for `workers` threads keeps this memory's tables (rather
    /// than building new ones: a pool of memories used at several thread counts should hand
    /// each the one shaped for it).
    pub fn shaped_for(&self, workers: usize) -> bool {
        self.shards.len() == Self::shard_count(workers) && self.arenas.len() == workers.max(1)
    }

    /// Drops everything the last block left (values, read and write sets) but keeps the
    /// memory, so that a later [`MvMemory::reset`] has little left to do. Meant to run off the
    /// critical path, between blocks.
    pub fn clear(&mut self) {
        self.clear_cells();
        for slot in self.slots.iter_mut() {
            let slot = slot.get_mut().unwrap_or_else(PoisonError::into_inner);
            slot.written.clear();
            slot.scratch.clear();
            slot.reads.clear();
            slot.predicted.clear();
        }
        // The filter is left as it is: `reset` moves to the next epoch.
        self.cleared = true;
    }

    /// Empties the memory for a new block of `block_size` transactions on `workers` threads,
    /// keeping its allocations (tables, per-transaction lists) for reuse: a block then writes
    /// into memory the previous block already had, instead of fresh pages.
    pub fn reset(&mut self, block_size: usize, workers: usize) {
        if !self.shaped_for(workers) {
            *self = Self::with_workers(block_size, workers);
            return;
        }
        let shard_count = self.shards.len();
        // Emptied already off the critical path (by `clear`), or emptied here.
        let cleared = std::mem::replace(&mut self.cleared, false);
        let per_shard = block_size.saturating_mul(3) / shard_count;
        if !cleared {
            self.clear_cells();
        }
        for shard in self.shards.iter_mut() {
            let table = shard.get_mut().unwrap_or_else(PoisonError::into_inner);
            table.reserve(per_shard, |c| c.hash);
        }
        if !cleared {
            for slot in self.slots.iter_mut() {
                let slot = slot.get_mut().unwrap_or_else(PoisonError::into_inner);
                slot.written.clear();
                slot.scratch.clear();
                slot.reads.clear();
                slot.predicted.clear();
            }
        }
        let buckets = Self::buckets(block_size);
        if buckets as u64 - 1 != self.bucket_mask {
            self.first_writer = (0..buckets).map(|_| AtomicU32::new(UNWRITTEN)).collect();
            self.bucket_mask = buckets as u64 - 1;
            self.epoch_base = Self::first_epoch(block_size);
        } else {
            self.next_epoch(block_size);
        }
        if self.slots.len() != block_size {
            let mut slots = std::mem::take(&mut self.slots).into_vec();
            slots.truncate(block_size);
            slots.resize_with(block_size, Slot::default);
            self.slots = slots.into_boxed_slice();
        }
    }

    /// Empties the tables, then drops the cells (no table refers to them any more).
    fn clear_cells(&mut self) {
        for shard in self.shards.iter_mut() {
            shard.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        }
        for arena in self.arenas.iter_mut() {
            arena.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// `key`'s cell in `shard` (locked for writing), created in the calling thread's arena if
    /// the location has none yet.
    fn cell_in<'a>(
        &self,
        shard: &'a mut HashTable<CellRef<K, V, D>>,
        key: K,
        hash: u64,
    ) -> &'a mut Cell<K, V, D> {
        match shard.entry(hash, |c| c.holds(hash, &key), |c| c.hash) {
            hashbrown::hash_table::Entry::Occupied(found) => found.into_mut().get_mut(),
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                let arena = &self.arenas[bound_worker() % self.arenas.len()];
                let cell = lock(arena).push(Cell::new(key));
                vacant.insert(CellRef { hash, cell }).into_mut().get_mut()
            }
        }
    }

    /// `key`'s cell in `shard` (locked for reading), if the location has one.
    fn find<'a>(
        shard: &'a HashTable<CellRef<K, V, D>>,
        key: &K,
        hash: u64,
    ) -> Option<&'a Cell<K, V, D>> {
        shard.find(hash, |c| c.holds(hash, key)).map(CellRef::get)
    }

    /// `key`'s cell in `shard` (locked for writing), if the location has one.
    fn find_mut<'a>(
        shard: &'a mut HashTable<CellRef<K, V, D>>,
        key: &K,
        hash: u64,
    ) -> Option<&'a mut Cell<K, V, D>> {
        shard.find_mut(hash, |c| c.holds(hash, key)).map(CellRef::get_mut)
    }

    /// The epoch tag of a block of `block_size` transactions in a freshly written filter: the
    /// highest one (later blocks count down), or none when its indices need every bit.
    fn first_epoch(block_size: usize) -> u32 {
        if block_size < EPOCH_MAX_TXS {
            MAX_EPOCH << EPOCH_SHIFT
        } else {
            0
        }
    }

    /// Moves the filter to a new block of `block_size` transactions: the next lower tag, or a
    /// rewrite (and the highest tag again) when the tags ran out or either block is untagged.
    fn next_epoch(&mut self, block_size: usize) {
        if self.epoch_base >= 1 << EPOCH_SHIFT && block_size < EPOCH_MAX_TXS {
            self.epoch_base -= 1 << EPOCH_SHIFT;
            return;
        }
        self.first_writer.iter_mut().for_each(|w| *w.get_mut() = UNWRITTEN);
        self.epoch_base = Self::first_epoch(block_size);
    }

    /// Buckets of the first-writer filter for a block of `block_size` transactions: about 16
    /// per transaction (a few written locations each), at least 4096.
    fn buckets(block_size: usize) -> usize {
        block_size.saturating_mul(16).next_power_of_two().clamp(4096, 1 << 22)
    }

    /// Number of transactions of the block this memory was built for.
    pub fn block_size(&self) -> usize {
        self.slots.len()
    }

    fn shard(&self, hash: u64) -> &Shard<K, V, D> {
        // Bits 48..56: the shard's table uses the low bits for buckets and the top 7 for tags.
        &self.shards[(hash >> 48) as usize & self.shard_mask]
    }

    fn bucket(&self, hash: u64) -> &AtomicU32 {
        &self.first_writer[((hash >> 8) & self.bucket_mask) as usize]
    }

    /// Whether a transaction below `txn_idx` may have written a location with this hash.
    fn maybe_written_below(&self, hash: u64, txn_idx: TxnIndex) -> bool {
        // Acquire: pairs with the release in `mark_written`. A read that misses a concurrent
        // first write is ordered before it, which validation accounts for like any other race.
        self.bucket(hash).load(Ordering::Acquire) < self.epoch_base | txn_idx
    }

    /// Whether the filter lets a read of `key` by `txn_idx` take the fast path (tests only).
    #[cfg(test)]
    pub(crate) fn filter_says_written_below(&self, key: &K, txn_idx: TxnIndex) -> bool {
        self.maybe_written_below(key.mv_hash(), txn_idx)
    }

    fn mark_written(&self, hash: u64, txn_idx: TxnIndex) {
        let first = self.bucket(hash);
        let tagged = self.epoch_base | txn_idx;
        if first.load(Ordering::Relaxed) > tagged {
            first.fetch_min(tagged, Ordering::AcqRel);
        }
    }

    /// Starts loading the line that tells whether `key` was written (a hint: a transaction
    /// about to read a few known locations overlaps their cache misses instead of taking them
    /// one after another).
    #[inline]
    pub fn prefetch(&self, key: &K) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint and never faults; the pointer is in bounds.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.bucket(key.mv_hash()).as_ptr().cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }

    /// Reads `key` as transaction `txn_idx` sees it: the entries of transactions below it (see
    /// [`ReadResult`]). `read(key, block_size, ..)` after the block gives the final value.
    pub fn read(&self, key: &K, txn_idx: TxnIndex, mode: ReadMode) -> ReadResult<V, D> {
        let hash = key.mv_hash();
        if !self.maybe_written_below(hash, txn_idx) {
            return ReadResult::Base { deltas: None };
        }
        let shard = self.shard(hash).read().unwrap_or_else(PoisonError::into_inner);
        let Some(cell) = Self::find(&shard, key, hash) else {
            return ReadResult::Base { deltas: None };
        };
        match cell.locate(txn_idx, mode) {
            Err(blocking) => ReadResult::Blocked(blocking),
            Ok((None, deltas)) => ReadResult::Base { deltas },
            Ok((Some((version, value)), deltas)) => {
                ReadResult::Value { version, value: value.clone(), deltas }
            }
        }
    }

    /// The sum of `key`'s deltas written by transactions above `floor` and below `txn_idx`
    /// (`Err`: one of them is an estimate, by that transaction). For a reader that must ignore
    /// the deltas below a point its own read found (a wipe of the location's storage).
    pub fn deltas_between(
        &self,
        key: &K,
        floor: TxnIndex,
        txn_idx: TxnIndex,
    ) -> Result<D, TxnIndex> {
        let hash = key.mv_hash();
        let shard = self.shard(hash).read().unwrap_or_else(PoisonError::into_inner);
        let Some(cell) = Self::find(&shard, key, hash) else { return Ok(D::ZERO) };
        let mut sum = D::ZERO;
        for (idx, entry) in cell.deltas.iter().filter(|(idx, _)| *idx > floor && *idx < txn_idx) {
            match entry {
                Entry::Written(_, delta) => sum = sum.combine(*delta),
                Entry::Estimate => return Err(*idx),
            }
        }
        Ok(sum)
    }

    /// The origin reading `key` as `txn_idx` would have now (`None`: it would block).
    fn origin_now(&self, key: &K, txn_idx: TxnIndex, mode: ReadMode) -> Option<ReadOrigin<D>> {
        let hash = key.mv_hash();
        if !self.maybe_written_below(hash, txn_idx) {
            return Some(ReadOrigin { base: None, deltas: None, mode });
        }
        let shard = self.shard(hash).read().unwrap_or_else(PoisonError::into_inner);
        let Some(cell) = Self::find(&shard, key, hash) else {
            return Some(ReadOrigin { base: None, deltas: None, mode });
        };
        let (found, deltas) = cell.locate(txn_idx, mode).ok()?;
        Some(ReadOrigin { base: found.map(|(version, _)| version), deltas, mode })
    }

    /// Records a finished incarnation: stores its read set (for validation), applies its writes
    /// and removes the entries of locations its previous incarnation wrote but it did not.
    ///
    /// `reads` is copied (and cleared, the caller keeps its allocation for the next
    /// incarnation); `writes` is drained. Returns
    /// `wrote_new_location`: whether it wrote a location its previous recorded incarnation did
    /// not (see `Scheduler::finish_execution`).
    ///
    /// # Panics
    ///
    /// If `version.txn_idx >= block_size`.
    pub fn record(
        &self,
        version: Version,
        reads: &mut ReadSet<K, D>,
        writes: &mut WriteSet<K, V, D>,
    ) -> bool {
        self.record_inner(version, reads, writes, false)
    }

    /// [`record`](Self::record) for an incarnation that will never be validated nor aborted
    /// (it executed with every lower transaction final): its reads and the list of what it
    /// wrote are not kept. Its previous incarnation's stale entries are still removed. Since
    /// no transaction below it will be read again by anyone, the versions of its locations
    /// older than their last write below it are dropped (so [`into_final_writes`] then lists
    /// only the versions still visible).
    ///
    /// [`into_final_writes`]: Self::into_final_writes
    pub fn record_final(&self, version: Version, writes: &mut WriteSet<K, V, D>) -> bool {
        let mut reads = Vec::new();
        self.record_inner(version, &mut reads, writes, true)
    }

    fn record_inner(
        &self,
        version: Version,
        reads: &mut ReadSet<K, D>,
        writes: &mut WriteSet<K, V, D>,
        is_final: bool,
    ) -> bool {
        let txn_idx = version.txn_idx;
        let mut slot = lock(&self.slots[txn_idx as usize]);
        let slot = &mut *slot;
        slot.reads.clear();
        if !is_final {
            slot.reads.extend_from_slice(reads);
        }
        reads.clear();
        if is_final && slot.written.is_empty() && slot.predicted.is_empty() {
            // Nothing to remove, nothing to remember: just write. Every lower transaction is
            // final, so no reader will look below this one's predecessors: prune as we go.
            let wrote = !writes.is_empty();
            for (key, write) in writes.drain(..) {
                self.write_entry(key, txn_idx, version.incarnation, write, Some(txn_idx));
            }
            return wrote;
        }
        slot.scratch.clear();
        let mut wrote_new_location = false;
        // Write first, then remove: a reader never sees a location of this transaction vanish
        // and come back.
        for (key, write) in writes.drain(..) {
            let hash = key.mv_hash();
            self.mark_written(hash, txn_idx);
            let mut shard = self.shard(hash).write().unwrap_or_else(PoisonError::into_inner);
            self.cell_in(&mut shard, key, hash).insert(txn_idx, version.incarnation, write);
            drop(shard);
            // Write sets are small: linear scans beat hashing them into sets.
            wrote_new_location |= !slot.written.contains(&key);
            if !slot.scratch.contains(&key) {
                slot.scratch.push(key);
            }
        }
        for key in slot.written.iter().chain(&slot.predicted) {
            if !slot.scratch.contains(key) {
                let hash = key.mv_hash();
                let mut shard = self.shard(hash).write().unwrap_or_else(PoisonError::into_inner);
                if let Some(cell) = Self::find_mut(&mut shard, key, hash) {
                    cell.remove(txn_idx);
                }
            }
        }
        slot.predicted.clear();
        std::mem::swap(&mut slot.written, &mut slot.scratch);
        if is_final {
            slot.written.clear();
        }
        wrote_new_location
    }

    /// Sets `txn_idx`'s entry of `key`, first pruning what no reader at or above `prune` can
    /// see any more (see `Cell::prune_below`).
    fn write_entry(
        &self,
        key: K,
        txn_idx: TxnIndex,
        incarnation: u32,
        write: WriteValue<V, D>,
        prune: Option<TxnIndex>,
    ) {
        let hash = key.mv_hash();
        self.mark_written(hash, txn_idx);
        let mut shard = self.shard(hash).write().unwrap_or_else(PoisonError::into_inner);
        let cell = self.cell_in(&mut shard, key, hash);
        if let Some(floor) = prune {
            if cell.full.len() > 2 {
                cell.prune_below(floor);
            }
        }
        cell.insert(txn_idx, incarnation, write);
    }

    /// Leaves an estimate of `txn_idx` at `key` until its next [`record`](Self::record): readers
    /// above it then wait for it (or depend on it) instead of reading what lies below. For a
    /// transaction about to be suspended at a hot location it is expected to write (a chain of
    /// read-modify-writes): the next transaction of the chain then waits for this one rather
    /// than for the lower one this one waits for. The write this incarnation or the next one
    /// records still counts as a new location (see [`record`](Self::record)); an estimate it
    /// does not replace with a write is removed then.
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn predict_write(&self, txn_idx: TxnIndex, key: K) {
        let mut slot = lock(&self.slots[txn_idx as usize]);
        if slot.predicted.contains(&key) {
            return;
        }
        let hash = key.mv_hash();
        self.mark_written(hash, txn_idx);
        let mut shard = self.shard(hash).write().unwrap_or_else(PoisonError::into_inner);
        self.cell_in(&mut shard, key, hash).predict(txn_idx);
        drop(shard);
        if !slot.written.contains(&key) {
            slot.predicted.push(key);
        }
    }

    /// Replaces every entry written by the last recorded incarnation of `txn_idx` with an
    /// estimate. Called after a validation aborted that incarnation.
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn convert_writes_to_estimates(&self, txn_idx: TxnIndex) {
        let slot = lock(&self.slots[txn_idx as usize]);
        for key in &slot.written {
            let hash = key.mv_hash();
            let mut shard = self.shard(hash).write().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = Self::find_mut(&mut shard, key, hash) {
                cell.estimate(txn_idx);
            }
        }
    }

    /// Checks every read of the last recorded incarnation of `txn_idx`: it would come from the
    /// same origin now (same full value's version, same deltas). A read that now meets an
    /// estimate fails.
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn validate_read_set(&self, txn_idx: TxnIndex) -> bool {
        self.invalid_read(txn_idx).is_none()
    }

    /// The first read of the last recorded incarnation of `txn_idx` that would not come from
    /// the same origin now (see [`validate_read_set`](Self::validate_read_set)), if any: the
    /// location a lower transaction changed under it.
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn invalid_read(&self, txn_idx: TxnIndex) -> Option<K> {
        let slot = lock(&self.slots[txn_idx as usize]);
        slot.reads
            .iter()
            .find(|(key, origin)| self.origin_now(key, txn_idx, origin.mode) != Some(*origin))
            .map(|(key, _)| *key)
    }

    /// The locations written by the last recorded incarnation of `txn_idx` (unordered).
    ///
    /// # Panics
    ///
    /// If `txn_idx >= block_size`.
    pub fn last_written_keys(&self, txn_idx: TxnIndex) -> Vec<K> {
        lock(&self.slots[txn_idx as usize]).written.clone()
    }

    /// Consumes the memory after the block is done and lists, for every location that still has
    /// entries, its entries in ascending transaction order (locations in no particular order).
    ///
    /// # Errors
    ///
    /// [`MvMemoryError::UnresolvedEstimate`] if an estimate is left (the block did not finish).
    pub fn into_final_writes(mut self) -> Result<FinalWrites<K, V, D>, MvMemoryError> {
        let mut out = Vec::new();
        // Every cell is in exactly one table: the arenas list each location once.
        for shard in self.shards.iter_mut() {
            shard.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        }
        for arena in self.arenas.iter_mut() {
            let cells = arena.get_mut().unwrap_or_else(PoisonError::into_inner).take_all();
            for cell in cells {
                if cell.is_empty() {
                    continue;
                }
                let mut writes = Vec::with_capacity(cell.full.len() + cell.deltas.len());
                for (txn_idx, entry) in cell.full {
                    match entry {
                        Entry::Written(inc, value) => {
                            writes.push((Version::new(txn_idx, inc), WriteValue::Value(value)));
                        }
                        Entry::Estimate => {
                            return Err(MvMemoryError::UnresolvedEstimate { txn_idx })
                        }
                    }
                }
                for (txn_idx, entry) in cell.deltas {
                    match entry {
                        Entry::Written(inc, delta) => {
                            writes.push((Version::new(txn_idx, inc), WriteValue::Delta(delta)));
                        }
                        Entry::Estimate => {
                            return Err(MvMemoryError::UnresolvedEstimate { txn_idx })
                        }
                    }
                }
                writes.sort_by_key(|(version, _)| version.txn_idx);
                out.push((cell.key, writes));
            }
        }
        Ok(out)
    }
}
