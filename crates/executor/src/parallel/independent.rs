//! Blocks of independent plain transfers, without Block-STM.
//!
//! A block of plain value transfers (no input, no access list, no authorizations, no blobs) in
//! which every sender sends once, no sender is also a recipient and neither is the beneficiary
//! has no dependency between its transactions, as far as its shape tells: a transaction reads its
//! sender, which no other transaction writes, and its recipient, whose balance only the other
//! transfers to it change, by credits that commute (the recipient is read lazily, see
//! `TxDb::lazy_basic`, and rebuilt in order by the fold). The beneficiary's fees are added up by
//! the fold. What the shape cannot tell, the state decides: a recipient or a sender with code (or
//! a delegation), a sender short of funds or with another nonce, rules that make the transfer the
//! EVM's. Any of these makes `transfer::execute` decline the transaction, and the block is then
//! run through Block-STM from the start, with nothing of this attempt kept.
//!
//! Such a block needs none of Block-STM's bookkeeping: no scheduler, no multi-version memory, no
//! read sets, no validation, no fee ledger. Its cost on two workers was that bookkeeping crossing
//! the cores once or more per transaction (`record_inner`'s atomics, the scheduler's words; see
//! the README's profile): on 1,000 transfers two workers took 1.5-2.2 µs a transfer against 1.2-1.5
//! µs on one. Here the workers claim the transactions in chunks, in order, execute them
//! (`Shared::work_independent`) into the same outcome slots, and fold them as Block-STM's workers
//! do; everything after (receipts, the fold's union, the block's output) is shared with
//! Block-STM.

use super::worker::TxSource;
use alloy_primitives::{map::AddressSet, Address};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many transactions a worker claims at once: enough that the claims' shared counter is
/// written rarely, few enough that the workers finish close together.
pub(super) const CHUNK: usize = 16;

/// The lazily credited recipient of each transaction if the block is one of independent plain
/// transfers by its shape (see the module docs), else `None`. Stops at the first transaction
/// that is not one, so other blocks pay for one look at their first transactions.
pub(super) fn plain_recipients(txs: TxSource<'_>, beneficiary: Address) -> Option<Vec<Address>> {
    let n = txs.len();
    let mut recipients = Vec::with_capacity(n);
    for i in 0..n {
        if !txs.bare_of_lists(i) {
            return None;
        }
        recipients.push(txs.lazy_recipient(i, beneficiary)?);
    }
    let mut senders = AddressSet::default();
    senders.reserve(n);
    for i in 0..n {
        let sender = txs.caller(i);
        if sender == beneficiary || !senders.insert(sender) {
            return None;
        }
    }
    if recipients.iter().any(|to| senders.contains(to)) {
        return None;
    }
    Some(recipients)
}

/// What the workers of an independent run share: the next chunk to claim, whether a
/// transaction was declined, and how many workers are done executing.
#[derive(Debug, Default)]
pub(super) struct Claims {
    next: AtomicUsize,
    declined: AtomicBool,
    stopped: AtomicUsize,
}

impl Claims {
    /// The next chunk of transactions for a worker, if any is left and nothing was declined.
    pub(super) fn claim(&self, txs: usize) -> Option<std::ops::Range<usize>> {
        if self.declined() {
            return None;
        }
        let start = self.next.fetch_add(CHUNK, Ordering::Relaxed);
        (start < txs).then(|| start..(start + CHUNK).min(txs))
    }

    /// How many transactions from the first have been claimed (with one worker: executed, once
    /// its claim is done).
    pub(super) fn claimed(&self, txs: usize) -> usize {
        self.next.load(Ordering::Relaxed).min(txs)
    }

    /// A transaction was declined: the block goes to Block-STM.
    pub(super) fn decline(&self) {
        self.declined.store(true, Ordering::Relaxed);
    }

    /// Whether a transaction was declined (final once every worker has stopped).
    pub(super) fn declined(&self) -> bool {
        self.declined.load(Ordering::Relaxed)
    }

    /// This worker is done executing; waits until all `workers` are, so that every outcome is
    /// in place (and visible: the count's release and acquire) before the fold reads them, and
    /// whether a transaction was declined is final. `keep_waiting` is false once the run is
    /// halted (a worker panicked).
    pub(super) fn stop_and_wait(&self, workers: usize, keep_waiting: impl Fn() -> bool) {
        self.stopped.fetch_add(1, Ordering::AcqRel);
        let mut spins = 0u32;
        while self.stopped.load(Ordering::Acquire) < workers && keep_waiting() {
            velarium_numa_runtime::service();
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}
