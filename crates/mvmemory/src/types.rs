//! Keys, entries, read results, read origins and write sets.

use velarium_primitives::{Incarnation, TxnIndex, Version};

/// A location of the multi-version memory.
///
/// The hash is computed once per access and used both to pick a shard and inside it, so it
/// must mix well in all 64 bits.
pub trait MvKey: Copy + Eq + Send + Sync + std::fmt::Debug {
    /// A well-mixed 64-bit hash of the key.
    fn mv_hash(&self) -> u64;
}

/// A cheap, well-mixing finalizer for integer keys (the `splitmix64` finalizer).
pub const fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl MvKey for u32 {
    fn mv_hash(&self) -> u64 {
        mix64(u64::from(*self))
    }
}

impl MvKey for u64 {
    fn mv_hash(&self) -> u64 {
        mix64(*self)
    }
}

/// A commutative update: deltas of one location are summed in transaction order.
pub trait Delta: Copy + PartialEq + Send + Sync + std::fmt::Debug {
    /// The empty update.
    const ZERO: Self;
    /// `self` followed by `other`.
    fn combine(self, other: Self) -> Self;
    /// The update that undoes `self`: `d.combine(d.inverse()) == ZERO` (updates form a group,
    /// as wrapping additions do), so that the sum of a range of a location's deltas is the
    /// difference of two running sums.
    fn inverse(self) -> Self;
}

impl Delta for u64 {
    const ZERO: Self = 0;
    fn combine(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn inverse(self) -> Self {
        self.wrapping_neg()
    }
}

/// One entry of a location's version list, keyed by the writing transaction's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry<T> {
    /// Written by incarnation `.0`.
    Written(Incarnation, T),
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

/// The deltas a read applied on top of its full value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaSum<D> {
    /// Their combination, in transaction order.
    pub sum: D,
    /// How many there were (a zero delta can still matter: it touches the location).
    pub count: u32,
}

/// Result of [`MvMemory::read`](crate::MvMemory::read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult<V, D> {
    /// No lower transaction wrote a full value: read base storage, then apply `deltas`.
    Base {
        /// Deltas of lower transactions (`None`: none, or the read ignored them).
        deltas: Option<DeltaSum<D>>,
    },
    /// A lower transaction wrote a full value; apply `deltas` written above it.
    Value {
        /// The version that wrote `value`.
        version: Version,
        /// The value.
        value: V,
        /// Deltas of transactions between the writer and the reader (`None`: none, or the
        /// read ignored them).
        deltas: Option<DeltaSum<D>>,
    },
    /// The read met an `Estimate` of transaction `.0`: the reader must wait for it.
    Blocked(TxnIndex),
}

/// Whether a read applies the deltas above the full value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadMode {
    /// The value and every delta above it.
    WithDeltas,
    /// Only the full value: validation then ignores deltas written below the reader, so
    /// commutative credits do not invalidate the read (e.g. an account's nonce and code, not
    /// its balance). An `Estimate` of a delta still blocks: its writer may write a full value.
    IgnoreDeltas,
}

/// Where a completed read came from, recorded in the read set and checked at validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOrigin<D> {
    /// The version of the full value (`None`: base storage).
    pub base: Option<Version>,
    /// The deltas applied (`None`: none, or [`ReadMode::IgnoreDeltas`]).
    pub deltas: Option<DeltaSum<D>>,
    /// The read's mode.
    pub mode: ReadMode,
}

impl<D: Copy> ReadOrigin<D> {
    /// Origin of a read served by base storage with no delta.
    pub const fn base() -> Self {
        Self { base: None, deltas: None, mode: ReadMode::WithDeltas }
    }

    /// The origin of a completed read; `None` for [`ReadResult::Blocked`].
    pub fn of<V>(result: &ReadResult<V, D>, mode: ReadMode) -> Option<Self> {
        match result {
            ReadResult::Base { deltas } => Some(Self { base: None, deltas: *deltas, mode }),
            ReadResult::Value { version, deltas, .. } => {
                Some(Self { base: Some(*version), deltas: *deltas, mode })
            }
            ReadResult::Blocked(_) => None,
        }
    }
}

/// The reads of one incarnation: `(location, origin)` pairs. A location may appear more than
/// once (every occurrence is validated). Reads the transaction served from its own earlier
/// writes must not be recorded.
pub type ReadSet<K, D> = Vec<(K, ReadOrigin<D>)>;

/// The writes of one incarnation: one `(location, value or delta)` per location.
pub type WriteSet<K, V, D> = Vec<(K, WriteValue<V, D>)>;

/// The entries left at one location after the block, in ascending transaction order, as
/// returned by [`MvMemory::into_final_writes`](crate::MvMemory::into_final_writes).
pub type LocationWrites<V, D> = Vec<(Version, WriteValue<V, D>)>;

/// Every location with entries left after the block, with its [`LocationWrites`].
pub type FinalWrites<K, V, D> = Vec<(K, LocationWrites<V, D>)>;
