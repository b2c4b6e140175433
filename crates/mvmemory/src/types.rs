//! Entries, read results, read sets and write sets.

use velarium_primitives::{Incarnation, TxnIndex, Version};

/// One entry of a location's version map, keyed by the writing transaction's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<V, D> {
    /// A full value written by incarnation `incarnation`.
    Data {
        /// Incarnation that wrote the value.
        incarnation: Incarnation,
        /// The value.
        value: V,
    },
    /// A commutative update written by incarnation `incarnation` without reading the old value.
    Delta {
        /// Incarnation that wrote the delta.
        incarnation: Incarnation,
        /// The update.
        delta: D,
    },
    /// Left by an aborted incarnation: the transaction will probably write here again.
    Estimate,
}

/// What one write of a transaction puts into a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteValue<V, D> {
    /// Overwrite the location with a full value.
    Value(V),
    /// Apply a commutative update on top of whatever the location holds.
    Delta(D),
}

/// Result of [`MvMemory::read`](crate::MvMemory::read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult<V, D> {
    /// A lower transaction wrote a full value; apply `deltas` (ascending order) on top of it.
    Value {
        /// Version that wrote `value`.
        version: Version,
        /// The value.
        value: V,
        /// Deltas written by transactions between `version.txn_idx` and the reader, in
        /// ascending transaction order.
        deltas: Vec<(Version, D)>,
    },
    /// No lower transaction wrote a full value: read base storage and apply `deltas`
    /// (ascending order) on top of it.
    NotFound {
        /// Deltas written by lower transactions, in ascending transaction order.
        deltas: Vec<(Version, D)>,
    },
    /// The read met an `Estimate` of transaction `blocking_txn_idx`: the reader should wait for
    /// it (`Scheduler::add_dependency`) or re-read once it has finished executing.
    Dependency {
        /// The lower transaction whose estimate was met.
        blocking_txn_idx: TxnIndex,
    },
}

/// Where a read came from: [`ReadResult`] without the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadBase {
    /// Base storage (no lower transaction wrote a full value).
    Storage,
    /// The full value written by this version.
    Version(Version),
}

/// Origin of one read, recorded in the read set and compared again at validation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadOrigin {
    /// Where the full value came from.
    pub base: ReadBase,
    /// Versions of the deltas applied on top of `base`, in ascending transaction order.
    pub deltas: Vec<Version>,
    /// The reader used only the full value, not the deltas on top of it (e.g. an account's
    /// code and nonce, not its balance): validation then ignores deltas written below it, so
    /// commutative credits do not invalidate such a read. An `Estimate` still does.
    pub ignore_deltas: bool,
}

impl ReadOrigin {
    /// Origin of a read served by base storage with no delta.
    pub const fn storage() -> Self {
        Self { base: ReadBase::Storage, deltas: Vec::new(), ignore_deltas: false }
    }

    /// Origin of a read of the full value written by `version`, with no delta.
    pub const fn version(version: Version) -> Self {
        Self { base: ReadBase::Version(version), deltas: Vec::new(), ignore_deltas: false }
    }

    /// Builds the origin of a read result; `None` for [`ReadResult::Dependency`], which is not a
    /// completed read.
    pub fn from_read_result<V, D>(result: &ReadResult<V, D>) -> Option<Self> {
        match result {
            ReadResult::Value { version, deltas, .. } => Some(Self {
                base: ReadBase::Version(*version),
                deltas: deltas.iter().map(|(v, _)| *v).collect(),
                ignore_deltas: false,
            }),
            ReadResult::NotFound { deltas } => Some(Self {
                base: ReadBase::Storage,
                deltas: deltas.iter().map(|(v, _)| *v).collect(),
                ignore_deltas: false,
            }),
            ReadResult::Dependency { .. } => None,
        }
    }

    /// This origin, keeping only where the full value came from (see [`Self::ignore_deltas`]).
    pub fn without_deltas(self) -> Self {
        Self { base: self.base, deltas: Vec::new(), ignore_deltas: true }
    }
}

/// The reads of one incarnation: `(location, origin)` pairs.
///
/// A location may appear more than once (every occurrence is validated). Reads that the
/// transaction served from its own earlier writes must not be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSet<K> {
    reads: Vec<(K, ReadOrigin)>,
}

impl<K> Default for ReadSet<K> {
    fn default() -> Self {
        Self { reads: Vec::new() }
    }
}

impl<K> ReadSet<K> {
    /// An empty read set.
    pub const fn new() -> Self {
        Self { reads: Vec::new() }
    }

    /// Records that `key` was read from `origin`.
    pub fn push(&mut self, key: K, origin: ReadOrigin) {
        self.reads.push((key, origin));
    }

    /// The recorded reads, in insertion order.
    pub fn iter(&self) -> std::slice::Iter<'_, (K, ReadOrigin)> {
        self.reads.iter()
    }

    /// Number of recorded reads.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// Whether no read was recorded.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }
}

impl<K> From<Vec<(K, ReadOrigin)>> for ReadSet<K> {
    fn from(reads: Vec<(K, ReadOrigin)>) -> Self {
        Self { reads }
    }
}

impl<K> FromIterator<(K, ReadOrigin)> for ReadSet<K> {
    fn from_iter<I: IntoIterator<Item = (K, ReadOrigin)>>(iter: I) -> Self {
        Self { reads: iter.into_iter().collect() }
    }
}

/// The writes of one incarnation: `(location, value or delta)` pairs.
///
/// Locations must be distinct: the engine folds several writes to one location into one
/// (a value followed by deltas becomes a value; several deltas become one delta). If a location
/// appears twice, the later write wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSet<K, V, D> {
    writes: Vec<(K, WriteValue<V, D>)>,
}

impl<K, V, D> Default for WriteSet<K, V, D> {
    fn default() -> Self {
        Self { writes: Vec::new() }
    }
}

impl<K, V, D> WriteSet<K, V, D> {
    /// An empty write set.
    pub const fn new() -> Self {
        Self { writes: Vec::new() }
    }

    /// Adds a full-value write of `key`.
    pub fn write(&mut self, key: K, value: V) {
        self.writes.push((key, WriteValue::Value(value)));
    }

    /// Adds a delta write of `key`.
    pub fn delta(&mut self, key: K, delta: D) {
        self.writes.push((key, WriteValue::Delta(delta)));
    }

    /// The writes, in insertion order.
    pub fn iter(&self) -> std::slice::Iter<'_, (K, WriteValue<V, D>)> {
        self.writes.iter()
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether there is no write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub(crate) fn into_vec(self) -> Vec<(K, WriteValue<V, D>)> {
        self.writes
    }
}

impl<K, V, D> From<Vec<(K, WriteValue<V, D>)>> for WriteSet<K, V, D> {
    fn from(writes: Vec<(K, WriteValue<V, D>)>) -> Self {
        Self { writes }
    }
}

impl<K, V, D> FromIterator<(K, WriteValue<V, D>)> for WriteSet<K, V, D> {
    fn from_iter<I: IntoIterator<Item = (K, WriteValue<V, D>)>>(iter: I) -> Self {
        Self { writes: iter.into_iter().collect() }
    }
}

/// The entries left at one location after the block, in ascending transaction order, as
/// returned by [`MvMemory::into_final_writes`](crate::MvMemory::into_final_writes).
pub type LocationWrites<V, D> = Vec<(Version, WriteValue<V, D>)>;

/// Every location with entries left after the block, with its [`LocationWrites`]; returned by
/// [`MvMemory::into_final_writes`](crate::MvMemory::into_final_writes).
pub type FinalWrites<K, V, D> = Vec<(K, LocationWrites<V, D>)>;
