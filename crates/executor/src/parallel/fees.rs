//! The beneficiary's fees, kept out of multi-version memory.
//!
//! Every transaction owes the beneficiary a fee, which the workers' EVM does not credit (see
//! `handler.rs`). As deltas in multi-version memory those credits would make the beneficiary's
//! account the hottest location of every block (every transaction writing it from every worker)
//! and a read of its balance a walk over every credit below the reader. Instead each
//! transaction's fee sits in its own slot, and the committed prefix keeps running sums, so a
//! transaction that really reads the beneficiary's balance (a `COINBASE BALANCE`, a payment to
//! the block builder) adds the fees since the last full write of the account in
//! O(transactions not yet committed). Such a read is validated by value: the sum (and count)
//! must be the same.

use super::db::Credit;
use alloy_primitives::U256;
use std::sync::{Mutex, MutexGuard, PoisonError};
use velarium_mvmemory::{Delta, DeltaSum};
use velarium_primitives::TxnIndex;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fees of transactions `from..to`, as one transaction read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FeeRead {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) sum: DeltaSum<Credit>,
}

/// Per transaction: its fee once its current incarnation executed, and what it read.
#[derive(Debug, Default)]
struct FeeSlot {
    fee: Option<U256>,
    reads: Vec<FeeRead>,
}

/// The block's fee ledger.
#[derive(Debug)]
pub(crate) struct FeeLedger {
    /// Before EIP-161 a zero fee still touches (and creates) the beneficiary: it counts.
    zero_fees_count: bool,
    slots: Vec<Mutex<FeeSlot>>,
    /// `prefix[k]`: the sum and count of the fees of transactions `0..k`, for `k` up to a
    /// committed transaction (whose fees are final).
    prefix: Mutex<Vec<DeltaSum<Credit>>>,
}

impl FeeLedger {
    pub(crate) fn new(block_size: usize, state_clear: bool) -> Self {
        Self {
            zero_fees_count: !state_clear,
            slots: (0..block_size).map(|_| Mutex::default()).collect(),
            prefix: Mutex::new(vec![DeltaSum { sum: Credit::ZERO, count: 0 }]),
        }
    }

    /// Empties the ledger for a new block, keeping its allocations.
    pub(crate) fn reset(&mut self, block_size: usize, state_clear: bool) {
        self.zero_fees_count = !state_clear;
        self.slots.truncate(block_size);
        for slot in &mut self.slots {
            let slot = slot.get_mut().unwrap_or_else(PoisonError::into_inner);
            slot.fee = None;
            slot.reads.clear();
        }
        self.slots.resize_with(block_size, Mutex::default);
        let prefix = self.prefix.get_mut().unwrap_or_else(PoisonError::into_inner);
        prefix.clear();
        prefix.push(DeltaSum { sum: Credit::ZERO, count: 0 });
    }

    fn counts(&self, fee: U256) -> u32 {
        u32::from(self.zero_fees_count || !fee.is_zero())
    }

    /// Records the fee and the fee reads of a finished incarnation of `txn_idx`.
    pub(crate) fn record(&self, txn_idx: TxnIndex, fee: U256, reads: &[FeeRead]) {
        let mut slot = lock(&self.slots[txn_idx as usize]);
        slot.fee = Some(fee);
        slot.reads.clear();
        slot.reads.extend_from_slice(reads);
    }

    /// Forgets the fee of an aborted incarnation (readers now wait for the next one).
    pub(crate) fn clear(&self, txn_idx: TxnIndex) {
        lock(&self.slots[txn_idx as usize]).fee = None;
    }

    /// The fees of transactions `from..to`, with `commit_idx` transactions committed; or the
    /// first transaction in range whose fee is not known yet.
    pub(crate) fn sum(
        &self,
        from: usize,
        to: usize,
        commit_idx: usize,
    ) -> Result<DeltaSum<Credit>, TxnIndex> {
        let (mut sum, mut count) = (U256::ZERO, 0u32);
        let committed_end = to.min(commit_idx).max(from);
        if committed_end > from {
            let mut prefix = lock(&self.prefix);
            while prefix.len() <= committed_end {
                let k = prefix.len() - 1;
                let last = prefix[k];
                let fee = lock(&self.slots[k]).fee.ok_or(k as TxnIndex)?;
                prefix.push(DeltaSum {
                    sum: Credit::of(last.sum.balance.wrapping_add(fee)),
                    count: last.count + self.counts(fee),
                });
            }
            let (a, b) = (prefix[from], prefix[committed_end]);
            sum = b.sum.balance.wrapping_sub(a.sum.balance);
            count = b.count - a.count;
        }
        for k in committed_end..to {
            let fee = lock(&self.slots[k]).fee.ok_or(k as TxnIndex)?;
            sum = sum.wrapping_add(fee);
            count += self.counts(fee);
        }
        Ok(DeltaSum { sum: Credit::of(sum), count })
    }

    /// Whether every fee read of the last recorded incarnation of `txn_idx` would read the
    /// same now.
    pub(crate) fn validate(&self, txn_idx: TxnIndex, commit_idx: usize) -> bool {
        let reads = lock(&self.slots[txn_idx as usize]).reads.clone();
        reads.iter().all(|read| self.sum(read.from, read.to, commit_idx) == Ok(read.sum))
    }
}
