//! Receipts' logs blooms: each worker computes the bloom of the transactions it executes, but a
//! transaction with thousands of logs (an airdrop's transfer events) would leave one worker
//! hashing for milliseconds while the others wait: the first post-merge block spends 11 of its
//! 13 ms there. Such a transaction's bloom is left out by its worker and computed after
//! Block-STM by every worker, a chunk of logs each, and the partial blooms are united.
//!
//! A bloom sets three bits per log address and per topic, picked by the input's Keccak-256
//! hash: four hashes for a token transfer's event, about a tenth of an ERC-20 block's time.
//! Most inputs come back (an event's signature, a token's address, a pool, a router), so each
//! thread keeps the hashes it computed in a small cache ([`HashCache`]).

use super::{commit::OutcomeSlot, fault::EngineFault, pool::WorkerPool};
use alloy_primitives::{keccak256, Bloom, Log, B256};
use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
};

/// A transaction with more logs than this has its bloom computed by every worker.
pub(super) const INLINE_LOGS: usize = 512;
/// Logs per chunk of a shared bloom.
const CHUNK: usize = 256;

/// A receipt's logs bloom as the worker that executed the transaction left it.
#[derive(Debug)]
pub(super) enum LogsBloom {
    /// No logs: the empty bloom.
    Empty,
    /// Few logs (a token transfer's event): the bits to set, kept in the outcome rather than a
    /// 256-byte bloom on the heap (allocated by one worker, freed by another).
    Bits(BloomBits),
    /// Computed by the worker.
    Computed(Box<Bloom>),
    /// Too many logs: computed by [`shared_blooms`].
    Shared,
}

/// The bloom bits of at most [`INLINE_INPUTS`] inputs (log addresses and topics), three each.
#[derive(Debug, Clone, Copy)]
pub(super) struct BloomBits {
    len: u8,
    bits: [[u16; 3]; INLINE_INPUTS],
}

/// Inputs kept as [`LogsBloom::Bits`]: one log with four topics.
const INLINE_INPUTS: usize = 5;

impl LogsBloom {
    /// What the worker computes for a transaction's `logs`.
    pub(super) fn of(logs: &[Log]) -> Self {
        let inputs = || logs.iter().map(|log| 1 + log.topics().len()).sum::<usize>();
        match logs.len() {
            0 => Self::Empty,
            n if n > INLINE_LOGS => Self::Shared,
            _ if inputs() <= INLINE_INPUTS => {
                let mut bits = BloomBits { len: 0, bits: [[0; 3]; INLINE_INPUTS] };
                with_cache(|cache| {
                    for log in logs {
                        for input in inputs_of(log) {
                            bits.bits[usize::from(bits.len)] = cache.bits(input);
                            bits.len += 1;
                        }
                    }
                });
                Self::Bits(bits)
            }
            _ => Self::Computed(Box::new(logs_bloom(logs))),
        }
    }

    /// The bloom, unless it is one every worker computes (`None`).
    pub(super) fn bloom(&self) -> Option<Bloom> {
        match self {
            Self::Empty => Some(Bloom::default()),
            Self::Bits(bits) => {
                let mut bloom = Bloom::default();
                for bits in &bits.bits[..usize::from(bits.len)] {
                    accrue_bits(&mut bloom, *bits);
                }
                Some(bloom)
            }
            Self::Computed(bloom) => Some(**bloom),
            Self::Shared => None,
        }
    }
}

/// A log's bloom inputs: its address, then its topics.
fn inputs_of(log: &Log) -> impl Iterator<Item = &[u8]> {
    std::iter::once(log.address.as_slice()).chain(log.topics().iter().map(|t| t.as_slice()))
}

/// Sets an input's three bits, as `Bloom::m3_2048_hashed` places them.
fn accrue_bits(bloom: &mut Bloom, bits: [u16; 3]) {
    // The bits are the hash's first three big-endian 16-bit words, masked to 11 bits.
    let mut hash = B256::ZERO;
    for (i, bit) in bits.into_iter().enumerate() {
        hash[2 * i..2 * i + 2].copy_from_slice(&bit.to_be_bytes());
    }
    bloom.m3_2048_hashed(&hash);
}

/// Runs `f` with this thread's [`HashCache`].
fn with_cache<R>(f: impl FnOnce(&mut HashCache) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<HashCache> = RefCell::new(HashCache::new());
    }
    CACHE.with_borrow_mut(f)
}

/// `alloy_primitives::logs_bloom`, with the hashes of inputs this thread met before taken from
/// its [`HashCache`].
pub(super) fn logs_bloom(logs: &[Log]) -> Bloom {
    with_cache(|cache| cache.logs_bloom(logs))
}

/// Slots of a [`HashCache`] (a power of two): 160 KiB, well inside a core's L2.
const CACHE_SLOTS: usize = 4096;

/// One remembered input: an address (`len` 20) or a topic (`len` 32), zero-padded on the right;
/// `len` 0: empty.
#[derive(Clone, Copy)]
struct CachedHash {
    input: [u8; 32],
    len: u8,
    /// Its three bloom bits.
    bits: [u16; 3],
}

/// A direct-mapped cache of bloom inputs' hashes: a slot per input (picked by its last eight
/// bytes, the random part of an address or of an address-typed topic), overwritten on a miss.
/// Bounded, never cleared: a hot input evicted by a stream of one-off ones is hashed again.
struct HashCache {
    slots: Box<[CachedHash]>,
}

impl HashCache {
    fn new() -> Self {
        let empty = CachedHash { input: [0; 32], len: 0, bits: [0; 3] };
        Self { slots: vec![empty; CACHE_SLOTS].into_boxed_slice() }
    }

    fn logs_bloom(&mut self, logs: &[Log]) -> Bloom {
        let mut bloom = Bloom::default();
        for input in logs.iter().flat_map(inputs_of) {
            accrue_bits(&mut bloom, self.bits(input));
        }
        bloom
    }

    /// The three bits `Bloom::m3_2048` sets for an input of 1 to 32 bytes.
    fn bits(&mut self, input: &[u8]) -> [u16; 3] {
        let len = input.len();
        debug_assert!((1..=32).contains(&len));
        let mut key = [0u8; 32];
        key[..len].copy_from_slice(input);
        // The input's last eight bytes (zero-padded when shorter).
        let from = len.saturating_sub(8);
        let tail: [u8; 8] = key[from..from + 8].try_into().expect("eight bytes");
        let index = (u64::from_le_bytes(tail) ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            >> (64 - CACHE_SLOTS.trailing_zeros());
        let slot = &mut self.slots[index as usize];
        if usize::from(slot.len) != len || slot.input != key {
            let hash = keccak256(input);
            let word = |i: usize| u16::from_be_bytes([hash[i], hash[i + 1]]) & 0x7ff;
            *slot = CachedHash { input: key, len: len as u8, bits: [word(0), word(2), word(4)] };
        }
        slot.bits
    }
}

/// The blooms the workers left to everyone ([`LogsBloom::Shared`]), computed on every worker of
/// `pool`, by transaction index (ascending).
pub(super) fn shared_blooms(
    pool: &WorkerPool,
    outcomes: &[OutcomeSlot],
) -> Result<Vec<(usize, Bloom)>, EngineFault> {
    // (transaction, first log, end) of every chunk.
    let mut chunks = Vec::new();
    let mut blooms = Vec::new();
    for (i, slot) in outcomes.iter().enumerate() {
        // SAFETY: Block-STM is over (every worker stopped): nothing writes outcomes any more.
        let Some(outcome) = (unsafe { slot.committed() }) else { continue };
        if let (LogsBloom::Shared, Ok((result, _))) = (&outcome.bloom, &outcome.result) {
            let logs = result.logs().len();
            chunks.extend((0..logs).step_by(CHUNK).map(|at| (i, at, (at + CHUNK).min(logs))));
            blooms.push((i, Mutex::new(Bloom::default())));
        }
    }
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    let next = AtomicUsize::new(0);
    let vanished = AtomicBool::new(false);
    let work = |_worker: usize| loop {
        let Some(&(i, from, to)) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) else {
            return;
        };
        // SAFETY: Block-STM is over (every worker stopped): nothing writes outcomes any more.
        let slot = unsafe { outcomes[i].committed() };
        let Some(Ok((result, _))) = slot.map(|o| &o.result) else {
            vanished.store(true, Ordering::Relaxed);
            return;
        };
        let partial = logs_bloom(&result.logs()[from..to]);
        if let Ok(at) = blooms.binary_search_by_key(&i, |(tx, _)| *tx) {
            blooms[at].1.lock().unwrap_or_else(|e| e.into_inner()).accrue_bloom(&partial);
        }
    };
    pool.broadcast(work, || next.store(chunks.len(), Ordering::Relaxed))?;
    if vanished.load(Ordering::Relaxed) {
        return Err(EngineFault::Invariant("an outcome vanished while its bloom was computed"));
    }
    Ok(blooms
        .into_iter()
        .map(|(i, bloom)| (i, bloom.into_inner().unwrap_or_else(|e| e.into_inner())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, Bytes, LogData, B256};

    fn logs(n: usize) -> Vec<Log> {
        (0..n)
            .map(|i| Log {
                address: Address::with_last_byte(i as u8),
                data: LogData::new_unchecked(
                    vec![B256::with_last_byte((i % 251) as u8)],
                    Bytes::new(),
                ),
            })
            .collect()
    }

    #[test]
    fn chunked_blooms_equal_the_whole() {
        let logs = logs(3 * CHUNK + 17);
        let mut united = Bloom::default();
        for chunk in logs.chunks(CHUNK) {
            let mut partial = Bloom::default();
            partial.accrue_logs(chunk);
            united.accrue_bloom(&partial);
        }
        assert_eq!(united, alloy_primitives::logs_bloom(&logs));
        assert!(matches!(LogsBloom::of(&logs), LogsBloom::Shared));
        assert!(matches!(LogsBloom::of(&logs[..3]), LogsBloom::Computed(_)));
        assert!(matches!(LogsBloom::of(&logs[..2]), LogsBloom::Bits(_)));
        assert!(matches!(LogsBloom::of(&[]), LogsBloom::Empty));
    }

    /// Logs drawn from a few hundred addresses and topics, so inputs repeat, collide in the
    /// cache's slots and evict each other; an address and the topic that pads it to 32 bytes
    /// (equal last bytes, different hashes) meet often.
    fn random_logs(seed: u64, n: usize) -> Vec<Log> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            velarium_mvmemory::mix64(state)
        };
        let mut pick = move |pool: u64| -> [u8; 20] {
            let n = next() % pool;
            let mut bytes = [0u8; 20];
            bytes[12..].copy_from_slice(&velarium_mvmemory::mix64(n).to_le_bytes());
            bytes
        };
        (0..n)
            .map(|i| {
                let address = Address::from(pick(300));
                let topics = (0..i % 5)
                    .map(|t| match t {
                        0 => B256::left_padding_from(address.as_slice()),
                        1 => B256::left_padding_from(&pick(5000)),
                        _ => B256::right_padding_from(&pick(7)),
                    })
                    .collect();
                Log { address, data: LogData::new_unchecked(topics, Bytes::new()) }
            })
            .collect()
    }

    #[test]
    fn cached_hashes_give_alloys_bloom() {
        let mut cache = HashCache::new();
        for seed in 0..200 {
            let logs = random_logs(seed, (seed as usize * 7) % 90);
            assert_eq!(cache.logs_bloom(&logs), alloy_primitives::logs_bloom(&logs), "seed {seed}");
            assert_eq!(logs_bloom(&logs), alloy_primitives::logs_bloom(&logs), "seed {seed}");
            for at in 0..logs.len() {
                let one = &logs[at..=at];
                let kept = LogsBloom::of(one);
                assert!(matches!(kept, LogsBloom::Bits(_)), "one log of at most four topics");
                assert_eq!(kept.bloom(), Some(alloy_primitives::logs_bloom(one)), "seed {seed}");
            }
            let kept = LogsBloom::of(&logs);
            assert_eq!(kept.bloom(), Some(alloy_primitives::logs_bloom(&logs)), "seed {seed}");
        }
        // About 3,900 different inputs spread over the slots (uniformly: about 1,600 left
        // empty), and the right-padded topics all share one slot (their last bytes are zero),
        // evicting each other.
        assert!(cache.slots.iter().filter(|s| s.len == 0).count() < CACHE_SLOTS / 2);
        // Inputs shorter than a word take the same path.
        let mut bloom = Bloom::default();
        accrue_bits(&mut bloom, cache.bits(&[7, 1]));
        let mut expected = Bloom::default();
        expected.m3_2048(&[7, 1]);
        assert_eq!(bloom, expected);
    }
}
