//! Receipts' logs blooms: each worker computes the bloom of the transactions it executes, but a
//! transaction with thousands of logs (an airdrop's transfer events) would leave one worker
//! hashing for milliseconds while the others wait: the first post-merge block spends 11 of its
//! 13 ms there. Such a transaction's bloom is left out by its worker and computed after
//! Block-STM by every worker, a chunk of logs each, and the partial blooms are united.

use super::{commit::OutcomeSlot, fault::EngineFault, pool::WorkerPool};
use alloy_primitives::{Bloom, Log};
use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Mutex,
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
    /// Computed by the worker.
    Computed(Box<Bloom>),
    /// Too many logs: computed by [`shared_blooms`].
    Shared,
}

impl LogsBloom {
    /// What the worker computes for a transaction's `logs`.
    pub(super) fn of(logs: &[Log]) -> Self {
        match logs.len() {
            0 => Self::Empty,
            n if n > INLINE_LOGS => Self::Shared,
            _ => Self::Computed(Box::new(alloy_primitives::logs_bloom(logs))),
        }
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
        let mut partial = Bloom::default();
        partial.accrue_logs(&result.logs()[from..to]);
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
        assert!(matches!(LogsBloom::of(&[]), LogsBloom::Empty));
    }
}
