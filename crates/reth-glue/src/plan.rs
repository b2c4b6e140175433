//! Plans: the transactions of the payload being validated, captured while reth recovers them,
//! so that the executor reth creates next can run them all through Block-STM before reth hands
//! it the first one.
//!
//! reth's newPayload validator calls `ConfigureEngineEvm::tx_iterator_for_payload` before it
//! creates the executor. That returns the payload's whole transaction list (raw EIP-2718 bytes)
//! and a converter that reth runs on a thread pool (in index windows, in any order within a
//! window) to decode each transaction and recover its signer. The executor then gets one
//! recovered transaction per `execute_transaction` call. A [`PayloadPlan`] is the shared copy of
//! the converters' output: one slot per transaction, filled by whichever thread converted it; a
//! conversion that fails truncates the plan there (reth stops the block at that index too). A
//! [`PlanRegistry`] holds the one plan of the payload being validated, shared (`Arc`) between the
//! EVM configuration that fills it and the executor factory, whose `create_executor` takes it
//! only if its [`PayloadKey`] is the key of the block the executor is created for.
//!
//! # Wiring it into a reth `ConfigureEngineEvm` (bin/velarium-reth)
//!
//! ```text
//! fn tx_iterator_for_payload(
//!     &self,
//!     payload: &ExecutionData,
//! ) -> Result<impl ExecutableTxIterator<Self>, Self::Error> {
//!     // reth's pair: the raw EIP-2718 transactions and the converter its pool runs.
//!     let (raw, convert) = self.inner.tx_iterator_for_payload(payload)?.into_parts();
//!     // The converter gets each raw item alone: number them, so it knows the slot.
//!     let raw: Vec<_> = raw.into_iter().enumerate().collect();
//!     let key = PayloadKey {
//!         parent_hash: payload.parent_hash(), // reth_payload_primitives::ExecutionPayload
//!         number: payload.block_number(),
//!         timestamp: payload.timestamp(),
//!         beneficiary: payload.payload.as_v1().fee_recipient,
//!         tx_count: raw.len(),
//!     };
//!     let plan = self.executor_factory.plans().begin(key);
//!     Ok((raw, move |(index, raw)| {
//!         let converted = convert.convert(raw);
//!         match &converted {
//!             // `WithTxEnv`/`Recovered`: its `TxEnv`, trie hash and signer.
//!             Ok(tx) => plan.record(index, tx.clone()),
//!             Err(_) => plan.fail(index),
//!         }
//!         converted
//!     }))
//! }
//! ```
//!
//! `context_for_payload` must leave `tx_count_hint` set (reth's `EthEvmConfig` sets it to the
//! payload's transaction count): the key compares it. Nothing else changes: downloaded blocks,
//! the payload builder, RPC replays and the pipeline never fill a plan and keep their paths. A
//! plan that no executor takes (the payload failed before execution) is replaced by the next
//! payload's. A plan taken by the wrong executor is harmless: every transaction is checked
//! against the plan at its call, and a mismatch continues sequentially.

use alloy_eips::eip2718::Encodable2718;
use alloy_evm::{block::ExecutableTxParts, RecoveredTx};
use alloy_primitives::{Address, B256};
use revm::context::{BlockEnv, TxEnv};
use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// How long the first transaction call waits by default for the plan's slots to be filled
/// before it gives up on Block-STM and continues sequentially (reth converts a few hundred
/// transactions in a millisecond or two).
pub const DEFAULT_PLAN_WAIT: Duration = Duration::from_secs(2);

/// What identifies the payload a plan belongs to: the parts of the block that an executor's
/// `EthBlockExecutionCtx` (`parent_hash`, `tx_count_hint`) and EVM block environment (`number`,
/// `timestamp`, `beneficiary`) let `create_executor` compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadKey {
    /// The parent block's hash.
    pub parent_hash: B256,
    /// The block number.
    pub number: u64,
    /// The block timestamp.
    pub timestamp: u64,
    /// The block's beneficiary (fee recipient).
    pub beneficiary: Address,
    /// How many transactions the payload has.
    pub tx_count: usize,
}

impl PayloadKey {
    /// The key of the block an executor is created for (`None` without a transaction count
    /// hint, or with a number or timestamp beyond `u64`: such a block matches no plan).
    pub fn of_block(
        parent_hash: B256,
        tx_count_hint: Option<usize>,
        block: &BlockEnv,
    ) -> Option<Self> {
        Some(Self {
            parent_hash,
            number: block.number.try_into().ok()?,
            timestamp: block.timestamp.try_into().ok()?,
            beneficiary: block.beneficiary,
            tx_count: tx_count_hint?,
        })
    }
}

/// One transaction of a plan: what Block-STM executes, and what identifies it at its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTx {
    /// The EVM transaction environment.
    pub tx_env: TxEnv,
    /// The transaction's trie hash.
    pub hash: B256,
    /// Its recovered signer.
    pub signer: Address,
}

impl PlannedTx {
    /// The plan entry of an executable transaction (a `Recovered`, `WithEncoded`, reth's
    /// `WithTxEnv`, ...), converted exactly as the executor converts it at its call.
    pub fn from_parts<T, X>(tx: X) -> Self
    where
        T: Encodable2718,
        X: ExecutableTxParts<TxEnv, T>,
    {
        let (tx_env, recovered) = tx.into_parts();
        Self { tx_env, hash: recovered.tx().trie_hash(), signer: *recovered.signer() }
    }
}

/// The slots of a plan, behind [`PayloadPlan::slots`].
#[derive(Debug)]
struct Slots {
    /// One per transaction; emptied when the executor takes the plan.
    txs: Vec<Option<PlannedTx>>,
    /// How many of `txs` are filled.
    filled: usize,
    /// The plan's end: the lowest index whose conversion failed, else the transaction count.
    end: usize,
    /// The executor took the transactions.
    taken: bool,
}

impl Slots {
    /// Whether every slot before the end is filled.
    fn complete(&self) -> bool {
        if self.taken {
            true
        } else if self.end == self.txs.len() {
            self.filled == self.txs.len()
        } else {
            self.txs[..self.end].iter().all(Option::is_some)
        }
    }
}

/// The transactions of one payload, filled slot by slot, in any order, by the threads that
/// convert them (see the module docs).
#[derive(Debug)]
pub struct PayloadPlan {
    key: PayloadKey,
    /// Written by the converters ([`Self::fill`], [`Self::fail`]) and emptied once by the
    /// executor that takes the plan; every access holds the lock.
    slots: Mutex<Slots>,
    /// Signalled when the plan may have become complete (a fill or a failure).
    changed: Condvar,
}

impl PayloadPlan {
    /// An empty plan for the payload `key` (one slot per transaction).
    pub fn new(key: PayloadKey) -> Self {
        let slots =
            Slots { txs: vec![None; key.tx_count], filled: 0, end: key.tx_count, taken: false };
        Self { key, slots: Mutex::new(slots), changed: Condvar::new() }
    }

    /// The payload this plan belongs to.
    pub const fn key(&self) -> &PayloadKey {
        &self.key
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A converter that panicked while holding the lock left the slots consistent (every
        // update is a single assignment): keep using them.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes transaction `index`. A slot is filled once (later fills are ignored), an index
    /// beyond the payload is ignored, and so is everything after the executor took the plan.
    pub fn fill(&self, index: usize, tx: PlannedTx) {
        let mut slots = self.lock();
        let Some(slot) = slots.txs.get_mut(index) else { return };
        if slot.is_none() {
            *slot = Some(tx);
            slots.filled += 1;
            if slots.filled == slots.txs.len() || slots.end < slots.txs.len() {
                self.changed.notify_all();
            }
        }
    }

    /// Publishes transaction `index` from its converted form (see [`PlannedTx::from_parts`]).
    pub fn record<T, X>(&self, index: usize, tx: X)
    where
        T: Encodable2718,
        X: ExecutableTxParts<TxEnv, T>,
    {
        self.fill(index, PlannedTx::from_parts(tx));
    }

    /// Records that transaction `index` could not be converted: the plan ends before it.
    pub fn fail(&self, index: usize) {
        let mut slots = self.lock();
        if index < slots.end {
            slots.end = index;
            self.changed.notify_all();
        }
    }

    /// Whether every transaction before the plan's end has been published.
    pub fn is_complete(&self) -> bool {
        self.lock().complete()
    }

    /// Waits up to `wait` until the plan is complete, then takes its transactions before the
    /// end (fewer than the payload's if a conversion failed). `None` if it did not complete in
    /// time, or was taken already.
    pub(crate) fn wait_and_take(&self, wait: Duration) -> Option<Vec<PlannedTx>> {
        let deadline = Instant::now() + wait;
        let mut slots = self.lock();
        while !slots.complete() {
            let left = deadline.checked_duration_since(Instant::now())?;
            slots = self.changed.wait_timeout(slots, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        if slots.taken {
            return None;
        }
        slots.taken = true;
        let end = slots.end;
        let mut txs = std::mem::take(&mut slots.txs);
        txs.truncate(end);
        txs.into_iter().collect()
    }
}

/// The one plan of the payload being validated, shared by the EVM configuration that fills it
/// and the executor factory that hands it to the matching executor (see the module docs).
#[derive(Debug)]
pub struct PlanRegistry {
    current: Mutex<Option<Arc<PayloadPlan>>>,
    wait: Duration,
}

impl Default for PlanRegistry {
    fn default() -> Self {
        Self::with_wait(DEFAULT_PLAN_WAIT)
    }
}

impl PlanRegistry {
    /// An empty registry whose plans are awaited for [`DEFAULT_PLAN_WAIT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose plans are awaited for at most `wait` at the first transaction.
    pub const fn with_wait(wait: Duration) -> Self {
        Self { current: Mutex::new(None), wait }
    }

    /// How long the first transaction call waits for a plan to complete.
    pub const fn wait(&self) -> Duration {
        self.wait
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<PayloadPlan>>> {
        self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the plan of the payload `key`, replacing any plan not taken, and returns it for
    /// the converters to fill.
    pub fn begin(&self, key: PayloadKey) -> Arc<PayloadPlan> {
        let plan = Arc::new(PayloadPlan::new(key));
        self.insert(plan.clone());
        plan
    }

    /// Makes `plan` the current plan, replacing any plan not taken.
    pub fn insert(&self, plan: Arc<PayloadPlan>) {
        *self.lock() = Some(plan);
    }

    /// Takes the current plan if it belongs to `key`; a plan for another payload stays.
    pub fn take_matching(&self, key: &PayloadKey) -> Option<Arc<PayloadPlan>> {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|plan| plan.key() == key) {
            current.take()
        } else {
            None
        }
    }

    /// The key of the current plan, if any.
    pub fn current_key(&self) -> Option<PayloadKey> {
        self.lock().as_ref().map(|plan| *plan.key())
    }

    /// Drops the current plan.
    pub fn clear(&self) {
        self.lock().take();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloy_primitives::U256;

    fn key(tx_count: usize) -> PayloadKey {
        PayloadKey {
            parent_hash: B256::repeat_byte(1),
            number: 7,
            timestamp: 12,
            beneficiary: Address::repeat_byte(2),
            tx_count,
        }
    }

    /// A planned transaction told apart by its nonce (the speculation's tests use it too).
    pub(crate) fn tx(nonce: u64) -> PlannedTx {
        PlannedTx {
            tx_env: TxEnv { nonce, ..Default::default() },
            hash: B256::with_last_byte(nonce as u8),
            signer: Address::repeat_byte(3),
        }
    }

    #[test]
    fn slots_filled_in_any_order_from_several_threads() {
        let plan = PayloadPlan::new(key(64));
        std::thread::scope(|s| {
            for part in 0..4 {
                let plan = &plan;
                s.spawn(move || {
                    for i in (0..64).rev().filter(|i| i % 4 == part) {
                        plan.fill(i, tx(i as u64));
                    }
                });
            }
            // Taken as soon as complete, while the fillers may still run.
            let txs = plan.wait_and_take(Duration::from_secs(10)).unwrap();
            assert_eq!(txs, (0..64).map(tx).collect::<Vec<_>>());
        });
        assert!(plan.wait_and_take(Duration::ZERO).is_none(), "taken once");
    }

    #[test]
    fn a_failure_truncates_and_incomplete_plans_time_out() {
        let plan = PayloadPlan::new(key(4));
        plan.fill(0, tx(0));
        plan.fill(0, tx(9)); // ignored
        plan.fill(9, tx(9)); // ignored
        assert!(plan.wait_and_take(Duration::from_millis(10)).is_none(), "incomplete");
        plan.fail(2);
        plan.fail(3); // later than the end: no change
        assert!(!plan.is_complete());
        plan.fill(1, tx(1));
        assert!(plan.is_complete());
        assert_eq!(plan.wait_and_take(Duration::ZERO).unwrap(), vec![tx(0), tx(1)]);
    }

    #[test]
    fn registry_hands_a_plan_only_to_its_payload() {
        let registry = PlanRegistry::new();
        let plan = registry.begin(key(2));
        assert!(registry.take_matching(&key(3)).is_none());
        assert_eq!(registry.current_key(), Some(key(2)));
        let taken = registry.take_matching(&key(2)).unwrap();
        assert!(Arc::ptr_eq(&plan, &taken));
        assert!(registry.take_matching(&key(2)).is_none(), "taken once");
        let block = BlockEnv {
            number: U256::from(7),
            timestamp: U256::from(12),
            beneficiary: Address::repeat_byte(2),
            ..Default::default()
        };
        assert_eq!(PayloadKey::of_block(B256::repeat_byte(1), Some(2), &block), Some(key(2)));
        assert_eq!(PayloadKey::of_block(B256::repeat_byte(1), None, &block), None);
    }
}
