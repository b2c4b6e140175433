//! The state one transaction incarnation sees: multi-version memory over the pre-block state.
//!
//! Reads go, in order, to [`MvMemory`] (writes of lower transactions of this block), then to the
//! pre-execution overlay (what the block's system calls and the DAO fork changed), then to the
//! parent state. Every read that reached multi-version memory is recorded with its origin so the
//! incarnation can be validated later.

use alloy_primitives::{map::HashMap, Address, B256, U256};
use revm::{
    bytecode::Bytecode,
    database::CacheState,
    database_interface::{DBErrorMarker, Database, DatabaseRef},
    primitives::KECCAK_EMPTY,
    state::AccountInfo,
};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use velarium_mvmemory::{
    mix64, Delta, DeltaSum, MvKey, MvMemory, ReadMode, ReadOrigin, ReadResult, ReadSet,
};
use velarium_primitives::TxnIndex;
use velarium_scheduler::Scheduler;

use super::fees::{FeeLedger, FeeRead};

/// A state location, the unit of conflict detection.
///
/// Accounts are one location (balance, nonce, code hash) so that a transaction reading an account
/// sees one consistent version; balance credits that nobody needs to read are deltas on it.
/// Each storage slot is its own location. `StorageEpoch` is written by a transaction that creates
/// or destroys an account: every slot of that account not written after it reads as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Location {
    /// Balance, nonce and code of an account (`None` value: the account does not exist).
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
    /// The last transaction that wiped the account's storage (creation or self-destruction).
    StorageEpoch(Address),
}

impl MvKey for Location {
    /// Folds the location into one word and mixes it: addresses are hash outputs and slots
    /// mostly are, so folding their words loses little.
    fn mv_hash(&self) -> u64 {
        let (tag, address, slot) = match self {
            Self::Account(address) => (0, address, 0),
            Self::Storage(address, slot) => {
                let [l0, l1, l2, l3] = *slot.as_limbs();
                (
                    1,
                    address,
                    l0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ^ l1.rotate_left(16)
                        ^ l2.rotate_left(32)
                        ^ l3.rotate_left(48),
                )
            }
            Self::StorageEpoch(address) => (2, address, 0),
        };
        let bytes = &address.0 .0;
        let word = |i: usize| {
            u64::from_le_bytes([
                bytes[i],
                bytes[i + 1],
                bytes[i + 2],
                bytes[i + 3],
                bytes[i + 4],
                bytes[i + 5],
                bytes[i + 6],
                bytes[i + 7],
            ])
        };
        let tail = u64::from(u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]));
        mix64(word(0) ^ word(8).rotate_left(21) ^ ((tail << 2) | tag).rotate_left(42) ^ slot)
    }
}

/// The commutative delta of an account location: a balance change and a nonce increment.
///
/// A credit (a transfer's recipient, the beneficiary's fee) adds to the balance. A lazy
/// sender's transaction (see [`LazySender`]) debits it, written as the two's complement of the
/// debit, and bumps the nonce: the sum of any deltas, added to the balance they apply to, is
/// exact as long as the true balance never goes negative, which sequential execution ensures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credit {
    /// The balance change, modulo 2^256.
    pub(crate) balance: U256,
    /// The nonce increment.
    pub(crate) nonce: u64,
}

impl Credit {
    /// A plain balance credit.
    pub(crate) const fn of(amount: U256) -> Self {
        Self { balance: amount, nonce: 0 }
    }
}

impl Delta for Credit {
    const ZERO: Self = Self::of(U256::ZERO);
    fn combine(self, other: Self) -> Self {
        Self {
            balance: self.balance.wrapping_add(other.balance),
            nonce: self.nonce.wrapping_add(other.nonce),
        }
    }
    fn inverse(self) -> Self {
        Self { balance: self.balance.wrapping_neg(), nonce: self.nonce.wrapping_neg() }
    }
}

/// A sender whose transactions in the block cannot fail for its nonce or balance, whatever
/// order they run in: no code, its transactions' nonces consecutive from its nonce before the
/// block, and its balance before the block covers every one's largest possible cost (only its
/// own transactions can take from an account without code, and none of the block's
/// transactions can give it code: the block has no EIP-7702 transaction). Its plain transfers
/// then read it as `placeholder` balance with the transaction's own nonce, instead of waiting
/// for its earlier transactions, and write their debit and nonce bump as a [`Credit`]; the
/// fold rebuilds the account on its folded state (see `commit::rebased_account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LazySender {
    /// The sender.
    pub(crate) address: Address,
    /// The balance its lazy transactions see (its balance before the block).
    pub(crate) placeholder: U256,
    /// The transaction's nonce: the sender's nonce just before it.
    pub(crate) nonce: u64,
}

/// The block's beneficiary, read lazily by transactions that only credit it (see
/// `lazy_beneficiary` in `mod.rs`): an account without code that is not empty and that no
/// transaction of the block delegates, so it stays without code and not empty, and only its
/// own transactions can take from it or raise its nonce. Another transaction that does not
/// observe its balance (the `BALANCE` opcode, see [`observing_balance`]) reads it as it was
/// before the block and writes its own credits as a [`Credit`] (a tip paid by a searcher's
/// contract, a transfer to it), instead of waiting for every lower transaction's fee; the fold
/// rebuilds the account on its folded state (see `commit::rebased_account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LazyBeneficiary {
    /// The beneficiary.
    pub(crate) address: Address,
    /// Its balance before the block, which its lazy readers see.
    pub(crate) placeholder: U256,
    /// Its nonce (no transaction of the block changes it).
    pub(crate) nonce: u64,
}

/// A hot storage slot a transaction credited without reading it: the code right after its
/// `SLOAD` only adds to the loaded value and stores the sum back (an unobserved increment, see
/// `velarium_analyzer::increment`), like WETH9's `balanceOf[dst] += wad`. The transaction was
/// served `placeholder`, the slot's last full value below it (ignoring the credits other
/// transactions made since), and writes what it added as a delta; the fold rebuilds the slot on
/// its folded value (see `commit::credit_slot`).
///
/// Exact because nothing else depends on the value: the proof rules out any other use, and
/// `SSTORE`'s charge and refund depend only on whether the original, current and new values are
/// zero or equal. The placeholder is non-zero and below 2^224 and the credit below 2^192, so
/// the true value (the last full value plus fewer than 2^32 such credits) is non-zero and the
/// sum does not wrap to zero, as with the placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StorageCredit {
    /// The account whose storage holds the slot.
    pub(crate) address: Address,
    /// The slot.
    pub(crate) slot: U256,
    /// The value the transaction was served.
    pub(crate) placeholder: U256,
}

impl StorageCredit {
    /// Leading zero bits a placeholder needs (it is below 2^224).
    const PLACEHOLDER_ZEROS: usize = 32;
    /// Leading zero bits a credit needs (it is below 2^192).
    const CREDIT_ZEROS: usize = 64;

    /// What the transaction added: what the slot holds in its state diff (`present`), less the
    /// placeholder.
    pub(crate) fn amount(self, present: U256) -> U256 {
        present.wrapping_sub(self.placeholder)
    }

    /// Whether the engine may keep the credit: what the transaction added is below 2^192.
    pub(crate) fn in_range(self, present: U256) -> bool {
        self.amount(present).leading_zeros() >= Self::CREDIT_ZEROS
    }

    /// Rebuilds the slot of a state diff on `current`, its true value before the transaction:
    /// the diff saw the placeholder as both its original and its current value.
    pub(crate) fn rebase(self, slot: &mut revm::state::EvmStorageSlot, current: U256) {
        let amount = self.amount(slot.present_value);
        slot.original_value = current;
        slot.present_value = current.wrapping_add(amount);
    }
}

/// A value held in multi-version memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MvValue {
    /// An account's info, or `None` if the transaction left it non-existent.
    Account(Option<AccountInfo>),
    /// A storage slot's value.
    Storage(U256),
    /// Marker for [`Location::StorageEpoch`]; only its version matters.
    Epoch,
}

/// The block's multi-version memory: balance credits are the deltas.
pub(crate) type BlockMemory = MvMemory<Location, MvValue, Credit>;

/// An account as the overlay holds it: info and the storage slots it knows.
type OverlayAccount = (AccountInfo, HashMap<U256, U256>);

/// What the block's pre-execution changes (system calls, DAO fork) left, read before the parent.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    accounts: HashMap<Address, Option<OverlayAccount>>,
    contracts: HashMap<B256, Bytecode>,
}

impl Overlay {
    /// Snapshot of a revm cache after the pre-execution changes.
    pub(crate) fn from_cache(cache: &CacheState) -> Self {
        let accounts = cache
            .accounts
            .iter()
            .map(|(address, account)| {
                let plain = account
                    .account
                    .as_ref()
                    .map(|p| (p.info.clone(), p.storage.iter().map(|(k, v)| (*k, *v)).collect()));
                (*address, plain)
            })
            .collect();
        let contracts = cache.contracts.iter().map(|(h, c)| (*h, c.clone())).collect();
        Self { accounts, contracts }
    }

    /// `address`'s info if the pre-execution changes know it (`Some(None)`: they left it
    /// non-existent); `None`: read the parent state.
    pub(crate) fn account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        self.accounts.get(address).map(|plain| plain.as_ref().map(|(info, _)| info.clone()))
    }
}

/// Why a read of the parallel engine's state could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TxDbError {
    /// A lower transaction's write is being re-executed (an ESTIMATE): wait for it.
    #[error("read blocked on transaction {0}")]
    Blocked(TxnIndex),
    /// The parent state failed.
    #[error("state read failed: {0}")]
    Base(String),
}

impl DBErrorMarker for TxDbError {}

/// How a balance delta applies to an account that does not exist: from Spurious Dragon on, a
/// zero credit leaves it non-existent (EIP-161); before, the touch creates an empty account.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeltaRules {
    pub(crate) state_clear: bool,
}

impl DeltaRules {
    /// Applies one credit (or the sum of several).
    pub(crate) fn apply_one(self, info: Option<AccountInfo>, delta: Credit) -> Option<AccountInfo> {
        match info {
            Some(mut info) => {
                info.balance = info.balance.wrapping_add(delta.balance);
                info.nonce = info.nonce.wrapping_add(delta.nonce);
                Some(info)
            }
            None if delta == Credit::ZERO && self.state_clear => None,
            None => Some(eoa_info(delta.balance, delta.nonce)),
        }
    }

    /// Applies credits in transaction order (their sum: applying credits one by one to an
    /// account gives the same balance, and the account exists afterwards iff some credit was
    /// non-zero, or before EIP-161, iff there was any).
    fn apply(
        self,
        info: Option<AccountInfo>,
        deltas: Option<DeltaSum<Credit>>,
    ) -> Option<AccountInfo> {
        match deltas {
            Some(d) if d.count > 0 => self.apply_one(info, d.sum),
            _ => info,
        }
    }
}

/// The block's hot locations: those whose reads keep failing validation because a lower
/// transaction changed them under the reader. A later read of one that is also written densely
/// (its last write below the reader is at most `near` transactions down: a counter, a pool's
/// reserves, a hot receiver's balance, which the transactions being executed are likely to
/// write next) waits until no lower transaction is being executed
/// (`Scheduler::wait_for_lower_executions`) and reads again, instead of reading a value about to
/// change and aborting.
///
/// A location counts as hot after [`HotLocations::FAILURES`] failed validations: on mainnet a
/// token or pool that a few of a block's transactions use fails once or twice, and waiting at
/// each of its reads would hold readers up behind unrelated transactions (measured: 10-25%
/// slower blocks); a counter every transaction bumps fails again and again. A counter per hash
/// bucket: a false positive costs only a wait, never a wrong value.
#[derive(Debug)]
pub(crate) struct HotLocations {
    failures: Box<[AtomicU8]>,
    any: AtomicBool,
    /// The locations that became hot by failing validation in this block (for the next
    /// blocks' history, see `predict_hot`); rare, so a lock is fine.
    became_hot: std::sync::Mutex<Vec<Location>>,
    /// Per location, what its reads cost in this block: validations that failed on it and reads
    /// of it that paused (on a running writer, or at a hot location), for the block's report
    /// ([`HotLocations::tally`]). Slow paths only (an abort, a pause), so a lock is fine;
    /// bounded to [`HotLocations::TALLIED`] locations.
    tally: std::sync::Mutex<HashMap<Location, Tally>>,
    /// How far below the reader the last write may be for the location to count as densely
    /// written: twice the worker count (the transactions being executed around the reader).
    near: TxnIndex,
}

/// What one location's reads cost in a block (see [`HotLocations::tally`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Validations that failed on a read of it.
    pub(crate) failed: u32,
    /// Reads of it that paused, or were suspended as a chain's link (see [`TxDb::read`]).
    pub(crate) waits: u32,
}

impl HotLocations {
    const BUCKETS: u64 = 1 << 14;
    /// Failed validations of a location before its reads wait.
    const FAILURES: u8 = 4;
    /// Locations [`HotLocations::tally`] keeps count of (later ones are not counted).
    const TALLIED: usize = 4096;

    pub(crate) fn new(workers: usize) -> Self {
        Self {
            failures: (0..Self::BUCKETS).map(|_| AtomicU8::new(0)).collect(),
            any: AtomicBool::new(false),
            became_hot: std::sync::Mutex::new(Vec::new()),
            tally: std::sync::Mutex::new(HashMap::default()),
            near: TxnIndex::try_from(workers.max(1) * 2).unwrap_or(TxnIndex::MAX),
        }
    }

    fn bucket(&self, location: &Location) -> &AtomicU8 {
        &self.failures[(location.mv_hash() % Self::BUCKETS) as usize]
    }

    /// Counts one more failed validation (`failed`) or paused read of `location`.
    fn count(&self, location: &Location, failed: bool) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        if tally.len() >= Self::TALLIED && !tally.contains_key(location) {
            return;
        }
        let entry = tally.entry(*location).or_default();
        if failed {
            entry.failed = entry.failed.saturating_add(1);
        } else {
            entry.waits = entry.waits.saturating_add(1);
        }
    }

    /// Records a read of `location` that paused (on a running writer or at a hot location).
    pub(crate) fn note_wait(&self, location: &Location) {
        self.count(location, false);
    }

    /// Every location whose reads failed validation or paused in this block, with its counts.
    pub(crate) fn tally(&self) -> Vec<(Location, Tally)> {
        let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.iter().map(|(location, tally)| (*location, *tally)).collect()
    }

    /// Records a failed validation of a read of `location`.
    pub(crate) fn mark(&self, location: &Location) {
        self.count(location, true);
        let bucket = self.bucket(location);
        // Racy but harmless: a lost increment only delays the waits.
        let failures = bucket.load(Ordering::Relaxed);
        let now = failures.saturating_add(1);
        bucket.store(now, Ordering::Relaxed);
        self.any.store(true, Ordering::Relaxed);
        // On reaching the threshold, or on the first failure of a predicted location. (The
        // count stops at 255: a location failing more often must not overflow it.)
        if now == Self::FAILURES || failures == Self::FAILURES {
            if let Ok(mut became) = self.became_hot.lock() {
                if became.len() < 64 {
                    became.push(*location);
                }
            }
        }
    }

    /// Makes `location` hot before any read of it failed: a prediction (effect analysis,
    /// history). A wrong one costs a wait at most, where the location is written densely.
    pub(crate) fn predict(&self, location: &Location) {
        self.bucket(location).store(Self::FAILURES, Ordering::Relaxed);
        self.any.store(true, Ordering::Relaxed);
    }

    /// Notes hot locations a worker credited by unobserved increments (see [`StorageCredit`]):
    /// they stay hot for the next blocks' history too, though crediting them spared their
    /// readers the failed validations that made them hot.
    pub(crate) fn note_credited(&self, credited: &[Location]) {
        if credited.is_empty() {
            return;
        }
        if let Ok(mut became) = self.became_hot.lock() {
            for location in credited {
                if became.len() < 64 && !became.contains(location) {
                    became.push(*location);
                }
            }
        }
    }

    /// The locations that failed validation often enough in this block to become hot, and
    /// those credited by unobserved increments.
    pub(crate) fn became_hot(&self) -> Vec<Location> {
        self.became_hot.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Whether `location` is hot: its reads check [`HotLocations::should_wait`].
    pub(crate) fn contains(&self, location: &Location) -> bool {
        self.any.load(Ordering::Relaxed)
            && self.bucket(location).load(Ordering::Relaxed) >= Self::FAILURES
    }

    /// Whether `reader`'s read of a hot location, which gave `result`, should wait for the
    /// lower executions and read again: the location is written densely just below it.
    fn should_wait(&self, reader: TxnIndex, result: &ReadResult<MvValue, Credit>) -> bool {
        match result {
            ReadResult::Value { version, .. } => reader - version.txn_idx <= self.near,
            ReadResult::Base { deltas } => deltas.is_some_and(|d| d.count > 0),
            ReadResult::Blocked(_) => false,
        }
    }
}

/// The database of one incarnation of one transaction.
#[derive(Debug)]
pub(crate) struct TxDb<'a, DB> {
    pub(crate) txn_idx: TxnIndex,
    pub(crate) memory: &'a BlockMemory,
    pub(crate) overlay: &'a Overlay,
    pub(crate) base: &'a DB,
    pub(crate) rules: DeltaRules,
    /// Reads served by multi-version memory (or below it), with their origins.
    pub(crate) read_set: ReadSet<Location, Credit>,
    /// The block's scheduler: a read that meets an ESTIMATE waits on it (see [`TxDb::read`]).
    pub(crate) scheduler: &'a Scheduler,
    /// The block's hot locations (see [`HotLocations`]).
    pub(crate) hot: &'a HotLocations,
    /// See [`BlockParts::pauses`].
    pub(crate) pauses: bool,
    /// See [`BlockParts::chains`].
    pub(crate) chains: bool,
    /// Every lower transaction was committed when this incarnation started: its reads are
    /// final, it keeps no read set and never waits for hot locations.
    pub(crate) settled: bool,
    /// The beneficiary's fees (not in multi-version memory, see `fees.rs`).
    pub(crate) fees: &'a FeeLedger,
    /// The block's beneficiary.
    pub(crate) beneficiary: Address,
    /// The fees this incarnation read (with the beneficiary's balance).
    pub(crate) fee_reads: Vec<FeeRead>,
    /// Set when a read met an ESTIMATE and the transaction was suspended on it: the
    /// incarnation is abandoned, whatever revm returned.
    pub(crate) suspended: bool,
    /// Per account, the transaction that last wiped its storage, as read (once) by this
    /// incarnation: every slot read of the account needs it.
    pub(crate) epochs: Vec<(Address, Option<TxnIndex>)>,
    /// The recipient of a plain value transfer that may be credited lazily (see
    /// [`TxDb::basic`]), set per incarnation by the engine.
    pub(crate) lazy_candidate: Option<Address>,
    /// Set when the candidate turned out to have no code and was served a zero placeholder
    /// balance: its credit must then be written as a delta, and patched in at commit.
    pub(crate) lazy_recipient: Option<Address>,
    /// The lazy recipient as the parent state holds it, when its read came from there (not
    /// from a lower transaction): the fold starts the account from it instead of asking the
    /// database again (a cache miss per transfer in a big state).
    pub(crate) lazy_recipient_base: Option<Box<Option<AccountInfo>>>,
    /// The transaction's sender, if it may be read lazily (see [`LazySender`]): only when the
    /// transaction is a plain transfer to an account without code, which is decided when the
    /// sender is read (before the recipient), so that decision is kept for the recipient's read.
    pub(crate) lazy_sender_candidate: Option<LazySender>,
    /// Set when the sender was served its placeholder: its write is then a debit delta.
    pub(crate) lazy_sender: Option<LazySender>,
    /// The lazy recipient's placeholder, looked up early (for the sender's read).
    recipient_placeholder: Option<Option<Option<AccountInfo>>>,
    /// The beneficiary, if this incarnation may read it lazily (see [`LazyBeneficiary`]).
    pub(crate) lazy_beneficiary_candidate: Option<LazyBeneficiary>,
    /// Set when the beneficiary was served its balance before the block.
    pub(crate) lazy_beneficiary: Option<LazyBeneficiary>,
    /// Set when the transaction ran `BALANCE` on the beneficiary while it could be read lazily:
    /// a lazy read (before or after) is then wrong, and the transaction runs again without.
    pub(crate) beneficiary_observed: bool,
    /// Whether the block's storage slots may hold credits (see [`StorageCredit`]): reads of
    /// them then add the credits up.
    storage_deltas: bool,
    /// Whether this incarnation may credit a hot slot by an unobserved increment (see
    /// [`StorageCredit`]).
    pub(crate) credits_allowed: bool,
    /// Set by [`crediting_sload`] for the `SLOAD` it runs: the slot it may serve as a credit
    /// (account, slot) and where the increment's `SSTORE` is.
    credit_candidate: Option<(Address, U256, usize)>,
    /// The slot this incarnation credits, if any.
    pub(crate) storage_credit: Option<StorageCredit>,
    /// Where the credit's `SSTORE` is, and whether it ran.
    credit_store: (usize, bool),
    /// Set when the credited slot was loaded or stored other than by its increment: the credit
    /// is then wrong, and the transaction runs again without.
    pub(crate) credit_broken: bool,
    /// The slots this worker credited in the block (for [`HotLocations::note_credited`]).
    pub(crate) credited: Vec<Location>,
    /// This worker's copies of the code it met in the block, and the parent-state accounts
    /// with code it read (holding those copies); see [`LocalCode`].
    local: LocalCode,
    /// What [`velarium_analyzer::increment::unobserved_increment`] proved of the `SLOAD`s of
    /// hot slots this worker met in the block, per code hash and position: a hot slot's every
    /// load runs the same few instructions, and the proof walks them.
    increments: HashMap<(B256, usize), Option<velarium_analyzer::increment::Increment>>,
}

/// A worker's own copies of the contracts' code.
///
/// A `Bytecode` is one `Arc`: every load of a contract, every call frame running it and every
/// drop of a state diff holding it counts a reference on it. Shared by all workers, that count
/// is one cache line moved between the cores at each of those steps of every transaction
/// calling a hot contract (a token, a pool). Each worker instead runs its own `Arc` over the
/// same bytes and jump table, made once per block, and keeps the parent-state accounts with
/// code it read (the parent state does not change during the block), so their reads neither
/// look up the store again nor count on the shared reference.
#[derive(Debug, Default)]
struct LocalCode {
    /// Per code hash, the code and whether it is this worker's copy. The copy is made when
    /// the worker meets the code a second time: most contracts of a block run once or twice,
    /// and a copy costs more than a few shared counts.
    codes: alloy_primitives::map::B256Map<(Bytecode, bool)>,
    /// The parent-state accounts with code this worker read.
    accounts: alloy_primitives::map::AddressMap<AccountInfo>,
}

impl LocalCode {
    /// The code with hash `hash` as this worker runs it: `load`ed (and kept) the first time,
    /// this worker's own copy from the second time on.
    fn code<E>(
        codes: &mut alloy_primitives::map::B256Map<(Bytecode, bool)>,
        hash: B256,
        load: impl FnOnce() -> Result<Bytecode, E>,
    ) -> Result<Bytecode, E> {
        match codes.entry(hash) {
            alloy_primitives::map::Entry::Occupied(entry) => {
                let (kept, copied) = entry.into_mut();
                if !*copied {
                    *kept = local_copy(kept);
                    *copied = true;
                }
                Ok(kept.clone())
            }
            alloy_primitives::map::Entry::Vacant(entry) => {
                Ok(entry.insert((load()?, false)).0.clone())
            }
        }
    }

    /// The parent-state account `address` if this worker read it before (with its code as
    /// [`LocalCode::code`] gives it).
    fn account(&mut self, address: &Address) -> Option<AccountInfo> {
        let cached = self.accounts.get_mut(address)?;
        if let Some(code) = cached.code.take() {
            let code = Self::code(&mut self.codes, cached.code_hash, || {
                Ok::<_, std::convert::Infallible>(code)
            });
            cached.code = Some(code.unwrap_or_else(|never| match never {}));
        }
        Some(cached.clone())
    }
}

/// `code` behind a new `Arc` of its own (sharing its bytes and jump table, which are read but
/// never counted per transaction); the delegation designations of EIP-7702 are kept as they are.
fn local_copy(code: &Bytecode) -> Bytecode {
    if !code.is_legacy() || code.is_empty() {
        return code.clone();
    }
    // SAFETY: the bytes, length and jump table of an analyzed legacy code, unchanged: its
    // padding is the one revm's analysis gave it.
    unsafe {
        Bytecode::new_analyzed(
            code.bytecode().clone(),
            code.len(),
            code.legacy_jump_table().cloned().unwrap_or_default(),
        )
    }
}

/// The block-wide structures every worker's database reads and records into.
#[derive(Clone, Copy)]
pub(crate) struct BlockParts<'a> {
    /// Multi-version memory.
    pub(crate) memory: &'a BlockMemory,
    /// The scheduler (for pausing on running writers).
    pub(crate) scheduler: &'a Scheduler,
    /// Locations whose reads failed validation.
    pub(crate) hot: &'a HotLocations,
    /// The beneficiary's fees.
    pub(crate) fees: &'a FeeLedger,
    /// Whether reads pause on running writers and wait at hot locations (off: a blocked read
    /// suspends the transaction at once, as plain Block-STM does).
    pub(crate) pauses: bool,
    /// Whether transactions may credit hot storage slots (see [`StorageCredit`]): storage
    /// reads then add up the credits.
    pub(crate) credits: bool,
    /// Whether a read of a hot location that would wait for a lower transaction leaves an
    /// estimate of the reader there, and a read blocked there by such an estimate suspends
    /// the reader on the transaction that left it (see [`TxDb::read`]): a chain of
    /// read-modify-writes of a hot location then runs link by link, each on the worker that
    /// finished the one before, while the other workers execute the rest of the block.
    pub(crate) chains: bool,
}

impl<'a, DB: DatabaseRef> TxDb<'a, DB> {
    /// A database for the incarnations a worker executes.
    pub(crate) fn new(
        parts: BlockParts<'a>,
        beneficiary: Address,
        overlay: &'a Overlay,
        base: &'a DB,
        rules: DeltaRules,
    ) -> Self {
        let BlockParts { memory, scheduler, hot, fees, pauses, credits, chains } = parts;
        Self {
            txn_idx: 0,
            memory,
            overlay,
            base,
            rules,
            read_set: Vec::new(),
            scheduler,
            hot,
            pauses,
            chains,
            settled: false,
            fees,
            beneficiary,
            fee_reads: Vec::new(),
            suspended: false,
            epochs: Vec::new(),
            lazy_candidate: None,
            lazy_recipient: None,
            lazy_recipient_base: None,
            lazy_sender_candidate: None,
            lazy_sender: None,
            recipient_placeholder: None,
            lazy_beneficiary_candidate: None,
            lazy_beneficiary: None,
            beneficiary_observed: false,
            storage_deltas: credits,
            credits_allowed: false,
            credit_candidate: None,
            storage_credit: None,
            credit_store: (0, false),
            credit_broken: false,
            credited: Vec::new(),
            local: LocalCode::default(),
            increments: HashMap::default(),
        }
    }

    /// What [`velarium_analyzer::increment::unobserved_increment`] proves of the `SLOAD` at
    /// `sload_pc` of `code` (whose hash is `hash`), proved once per code and position in the
    /// block. Out of line: the engine's `SLOAD` runs it only for hot slots.
    #[inline(never)]
    fn increment_at(
        &mut self,
        hash: Option<B256>,
        code: &[u8],
        sload_pc: usize,
    ) -> Option<velarium_analyzer::increment::Increment> {
        let prove = || velarium_analyzer::increment::unobserved_increment(code, sload_pc);
        match hash {
            Some(hash) => *self.increments.entry((hash, sload_pc)).or_insert_with(prove),
            // Init code has no hash here (and is not kept): proved each time.
            None => prove(),
        }
    }

    /// Prepares for a new incarnation of `txn_idx`; `settled`: it started with every lower
    /// transaction committed (and no trace is wanted), so it records no reads; `credits`: it
    /// may credit a hot slot by an unobserved increment (see [`StorageCredit`]), settled or not.
    pub(crate) fn reset(
        &mut self,
        txn_idx: TxnIndex,
        lazy_candidate: Option<Address>,
        lazy_sender: Option<LazySender>,
        lazy_beneficiary: Option<LazyBeneficiary>,
        settled: bool,
        credits: bool,
    ) {
        self.txn_idx = txn_idx;
        // A settled incarnation credits too: a full write of the slot would move the value
        // that the credits of the transactions running above it were served (and abort them).
        self.credits_allowed = credits;
        self.credit_candidate = None;
        self.storage_credit = None;
        self.credit_store = (0, false);
        self.credit_broken = false;
        self.settled = settled;
        self.read_set.clear();
        self.suspended = false;
        self.fee_reads.clear();
        self.epochs.clear();
        self.lazy_candidate = lazy_candidate;
        self.lazy_recipient = None;
        self.lazy_recipient_base = None;
        self.lazy_sender_candidate = lazy_sender.filter(|_| lazy_candidate.is_some());
        self.lazy_sender = None;
        self.recipient_placeholder = None;
        self.lazy_beneficiary_candidate = lazy_beneficiary;
        self.lazy_beneficiary = None;
        self.beneficiary_observed = false;
    }

    /// [`TxDb::lazy_basic`] of the lazy candidate, looked up once per incarnation.
    fn recipient_placeholder(
        &mut self,
        address: Address,
    ) -> Result<Option<Option<AccountInfo>>, TxDbError>
    where
        DB::Error: std::fmt::Display,
    {
        if let Some(known) = self.recipient_placeholder.clone() {
            return Ok(known);
        }
        let placeholder = self.lazy_basic(address)?;
        self.recipient_placeholder = Some(placeholder.clone());
        Ok(placeholder)
    }

    /// The lazy path of [`Database::basic`] for the transaction's sender: if the recipient
    /// turns out to have no code (so nothing but revm's own checks observes the sender), the
    /// sender is served its [`LazySender`] placeholder and its read depends on no transaction.
    fn lazy_sender_basic(&mut self, sender: LazySender) -> Result<Option<AccountInfo>, TxDbError>
    where
        DB::Error: std::fmt::Display,
    {
        let Some(recipient) = self.lazy_candidate else { return Ok(None) };
        if self.recipient_placeholder(recipient)?.is_none() {
            return Ok(None);
        }
        self.lazy_sender = Some(sender);
        Ok(Some(eoa_info(sender.placeholder, sender.nonce)))
    }

    /// The lazy-credit path of [`Database::basic`] for the recipient of a plain transfer: if the
    /// account (ignoring pending credits) has no code, nothing in the transaction can observe
    /// its balance, so it gets a zero placeholder and the read depends only on the account's
    /// last full value (nonce and code), not on the credits other transactions make to it.
    fn lazy_basic(&mut self, address: Address) -> Result<Option<Option<AccountInfo>>, TxDbError>
    where
        DB::Error: std::fmt::Display,
    {
        let location = Location::Account(address);
        let (info, from_base) = match self.read(location, ReadMode::IgnoreDeltas)? {
            ReadResult::Value { value: MvValue::Account(info), .. } => (info, false),
            ReadResult::Base { .. } => (self.base_account(address)?, true),
            _ => return Ok(None),
        };
        if info.as_ref().is_some_and(|i| i.code_hash != KECCAK_EMPTY) {
            // Not lazy after all: the full read that follows is recorded too (this one is
            // harmless, and stays valid as long as that one does).
            return Ok(None);
        }
        self.lazy_recipient = Some(address);
        let nonce = info.as_ref().map_or(0, |i| i.nonce);
        // Without code, `base_account` gave the parent state's account as it is.
        self.lazy_recipient_base = from_base.then(|| Box::new(info));
        Ok(Some(Some(eoa_info(U256::ZERO, nonce))))
    }

    /// The beneficiary's account as this transaction sees it: its last full write below the
    /// transaction (or the parent state's) plus the fees of every transaction since.
    ///
    /// Almost every transaction changes what this returns, so the read first waits for the
    /// lower transactions being executed, rather than reading a balance about to change.
    fn beneficiary_account(&mut self) -> Result<Option<AccountInfo>, TxDbError>
    where
        DB::Error: std::fmt::Display,
    {
        let address = self.beneficiary;
        if !self.settled && self.pauses && self.scheduler.wait_for_lower_executions(0, self.txn_idx)
        {
            self.hot.note_wait(&Location::Account(address));
        }
        loop {
            let (info, from) = match self.read(Location::Account(address), ReadMode::WithDeltas)? {
                ReadResult::Value { version, value: MvValue::Account(info), deltas } => {
                    (self.rules.apply(info, deltas), version.txn_idx as usize + 1)
                }
                ReadResult::Base { deltas } => {
                    (self.rules.apply(self.base_account(address)?, deltas), 0)
                }
                other => {
                    return Err(TxDbError::Base(format!("account location holds {other:?}")));
                }
            };
            let to = self.txn_idx as usize;
            match self.fees.sum(from, to, self.scheduler.commit_idx()) {
                Ok(sum) => {
                    self.fee_reads.push(FeeRead { from, to, sum });
                    return Ok(self.rules.apply(info, Some(sum)));
                }
                Err(blocking) => {
                    // Read both again once the blocking transaction's fee is known.
                    self.read_set.pop();
                    if !self.wait_for(blocking) {
                        self.suspended = true;
                        return Err(TxDbError::Blocked(blocking));
                    }
                    self.hot.note_wait(&Location::Account(address));
                }
            }
        }
    }

    /// The last wipe of `address`'s storage below this transaction, read once per incarnation.
    fn epoch(&mut self, address: Address) -> Result<Option<TxnIndex>, TxDbError> {
        if let Some((_, epoch)) = self.epochs.iter().find(|(a, _)| *a == address) {
            return Ok(*epoch);
        }
        let epoch = match self.read(Location::StorageEpoch(address), ReadMode::IgnoreDeltas)? {
            ReadResult::Value { version, .. } => Some(version.txn_idx),
            _ => None,
        };
        self.epochs.push((address, epoch));
        Ok(epoch)
    }

    fn base_err(e: DB::Error) -> TxDbError
    where
        DB::Error: std::fmt::Display,
    {
        TxDbError::Base(e.to_string())
    }

    /// Waits for `blocking` to finish executing (pausing while another worker runs it, see
    /// `Scheduler::wait_for`) or, with pauses off, suspends on it right away. `true`: read again.
    fn wait_for(&self, blocking: TxnIndex) -> bool {
        if self.pauses {
            self.scheduler.wait_for(self.txn_idx, blocking)
        } else {
            !self.scheduler.add_dependency(self.txn_idx, blocking)
        }
    }

    /// Reads a location from multi-version memory, recording the origin.
    ///
    /// A read that meets an ESTIMATE pauses while the blocking transaction is being executed,
    /// then reads again; if nobody is executing it, the transaction is suspended on it and the
    /// read fails (the incarnation is then abandoned). At a hot location with chains on (see
    /// [`BlockParts::chains`]) the reader is suspended on the transaction it would wait for,
    /// leaving its own estimate there.
    fn read(
        &mut self,
        location: Location,
        mode: ReadMode,
    ) -> Result<ReadResult<MvValue, Credit>, TxDbError> {
        let mut hot = !self.settled && self.pauses && self.hot.contains(&location);
        // Not for a read that ignores credits (a storage credit's or a lazy recipient's): its
        // transactions commute, they form no chain.
        let chain = hot && self.chains && mode == ReadMode::WithDeltas;
        loop {
            let result = self.memory.read(&location, self.txn_idx, mode);
            if let ReadResult::Blocked(blocking) = result {
                if chain {
                    self.link_chain(location, blocking)?;
                    continue;
                }
                if self.wait_for(blocking) {
                    self.hot.note_wait(&location);
                    continue;
                }
                self.suspended = true;
                return Err(TxDbError::Blocked(blocking));
            }
            if hot && self.hot.should_wait(self.txn_idx, &result) {
                // Only a transaction above the one whose value was read can change what this
                // read gets: two chains interleaved in the block (deposits into two contracts)
                // stay two chains rather than one.
                let floor = match &result {
                    ReadResult::Value { version, .. } => version.txn_idx + 1,
                    _ => 0,
                };
                if chain {
                    // The lower transaction being executed closest to this one is the likely
                    // last writer (a dense chain): depend on it, not on every lower one.
                    if let Some(running) =
                        self.scheduler.highest_lower_executing(floor, self.txn_idx)
                    {
                        self.link_chain(location, running)?;
                        continue;
                    }
                } else {
                    hot = false;
                    if self.scheduler.wait_for_lower_executions(floor, self.txn_idx) {
                        self.hot.note_wait(&location);
                        continue;
                    }
                }
            }
            if !self.settled {
                if let Some(origin) = ReadOrigin::of(&result, mode) {
                    self.read_set.push((location, origin));
                }
            }
            return Ok(result);
        }
    }

    /// This transaction as the next link of a chain of read-modify-writes of the hot `location`
    /// after `blocking`: its estimate goes there (the link after it then depends on it rather
    /// than on `blocking`), and it is suspended on `blocking`, leaving the worker to other
    /// transactions instead of waiting; it runs again once `blocking` finishes, on the worker
    /// that finished `blocking` unless that one has a commit or validation to do first (see
    /// `Scheduler::set_affinity`).
    /// `Ok` if `blocking` finished meanwhile: read again. Out of line: rare, off the read's
    /// own path.
    #[cold]
    #[inline(never)]
    fn link_chain(&mut self, location: Location, blocking: TxnIndex) -> Result<(), TxDbError> {
        self.memory.predict_write(self.txn_idx, location);
        if self.scheduler.add_dependency(self.txn_idx, blocking) {
            self.hot.note_wait(&location);
            self.suspended = true;
            return Err(TxDbError::Blocked(blocking));
        }
        Ok(())
    }

    fn base_account(&mut self, address: Address) -> Result<Option<AccountInfo>, TxDbError>
    where
        DB::Error: std::fmt::Display,
    {
        if let Some(info) = self.local.account(&address) {
            return Ok(Some(info));
        }
        let mut info = match self.overlay.accounts.get(&address) {
            Some(plain) => plain.as_ref().map(|(info, _)| info.clone()),
            None => self.base.basic_ref(address).map_err(Self::base_err)?,
        };
        if let Some(info) = info.as_mut().filter(|i| i.code_hash != KECCAK_EMPTY) {
            let given = info.code.take();
            let (overlay, base) = (self.overlay, self.base);
            let code = LocalCode::code(&mut self.local.codes, info.code_hash, || match given {
                Some(code) => Ok(code),
                None => shared_code(overlay, base, info.code_hash),
            })?;
            info.code = Some(code);
            self.local.accounts.insert(address, info.clone());
        }
        Ok(info)
    }

    /// The placeholder of a slot this incarnation may credit (see [`StorageCredit`]): its last
    /// full value below the transaction, ignoring credits, if that is non-zero, below 2^224 and
    /// not under a wipe of the account's storage. `None`: read it for real.
    fn credit_placeholder(
        &mut self,
        address: Address,
        slot: U256,
    ) -> Result<Option<U256>, TxDbError>
    where
        DB::Error: std::fmt::Display,
    {
        let value = match self.read(Location::Storage(address, slot), ReadMode::IgnoreDeltas)? {
            ReadResult::Value { value: MvValue::Storage(value), .. } => value,
            ReadResult::Base { .. } => self.base_storage(address, slot)?,
            _ => return Ok(None),
        };
        // Not lazy after all: the full read that follows is recorded too (this one is
        // harmless, and stays valid as long as that one does).
        if self.epoch(address)?.is_some()
            || value.is_zero()
            || value.leading_zeros() < StorageCredit::PLACEHOLDER_ZEROS
        {
            return Ok(None);
        }
        self.storage_credit = Some(StorageCredit { address, slot, placeholder: value });
        let location = Location::Storage(address, slot);
        if !self.credited.contains(&location) && self.credited.len() < 8 {
            self.credited.push(location);
        }
        Ok(Some(value))
    }

    fn base_storage(&self, address: Address, slot: U256) -> Result<U256, TxDbError>
    where
        DB::Error: std::fmt::Display,
    {
        if let Some(Some((_, storage))) = self.overlay.accounts.get(&address) {
            if let Some(value) = storage.get(&slot) {
                return Ok(*value);
            }
        }
        self.base.storage_ref(address, slot).map_err(Self::base_err)
    }
}

impl<DB> Database for TxDb<'_, DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    type Error = TxDbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        // A worker that owes the others something (the reads of a database only it may touch)
        // does it at each state read too, not only when it waits.
        velarium_numa_runtime::service();
        if let Some(sender) = self.lazy_sender_candidate.filter(|s| s.address == address) {
            if let Some(placeholder) = self.lazy_sender_basic(sender)? {
                return Ok(Some(placeholder));
            }
        }
        if self.lazy_candidate == Some(address) {
            if let Some(placeholder) = self.recipient_placeholder(address)? {
                return Ok(placeholder);
            }
        }
        let mut info = if address == self.beneficiary {
            if let Some(lazy) =
                self.lazy_beneficiary_candidate.filter(|_| !self.beneficiary_observed)
            {
                self.lazy_beneficiary = Some(lazy);
                return Ok(Some(eoa_info(lazy.placeholder, lazy.nonce)));
            }
            self.beneficiary_account()?
        } else {
            match self.read(Location::Account(address), ReadMode::WithDeltas)? {
                ReadResult::Value { value: MvValue::Account(info), deltas, .. } => {
                    self.rules.apply(info, deltas)
                }
                ReadResult::Base { deltas } => {
                    let base = self.base_account(address)?;
                    self.rules.apply(base, deltas)
                }
                other => {
                    return Err(TxDbError::Base(format!("account location holds {other:?}")));
                }
            }
        };
        if let Some(info) = &mut info {
            if info.code.is_none() {
                info.code = Some(self.code_by_hash(info.code_hash)?);
            }
        }
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if code_hash == KECCAK_EMPTY {
            return Ok(empty_code());
        }
        let (overlay, base) = (self.overlay, self.base);
        LocalCode::code(&mut self.local.codes, code_hash, || shared_code(overlay, base, code_hash))
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        velarium_numa_runtime::service();
        let candidate = self.credit_candidate.take();
        if let Some((_, _, sstore_pc)) = candidate.filter(|(a, s, _)| *a == address && *s == index)
        {
            if let Some(placeholder) = self.credit_placeholder(address, index)? {
                self.credit_store = (sstore_pc, false);
                return Ok(placeholder);
            }
        }
        let location = Location::Storage(address, index);
        let mode = if self.storage_deltas { ReadMode::WithDeltas } else { ReadMode::IgnoreDeltas };
        let slot = self.read(location, mode)?;
        let epoch_txn = self.epoch(address)?;
        let (value, floor, deltas) = match slot {
            ReadResult::Value { version, value: MvValue::Storage(value), deltas } => {
                (value, Some(version.txn_idx), deltas)
            }
            ReadResult::Base { deltas } => {
                let value = if epoch_txn.is_some() {
                    U256::ZERO
                } else {
                    self.base_storage(address, index)?
                };
                (value, None, deltas)
            }
            other => return Err(TxDbError::Base(format!("storage location holds {other:?}"))),
        };
        let credits = deltas.filter(|d| d.count > 0).map(|d| d.sum.balance);
        match epoch_txn {
            // A wipe by a later transaction than the last write hides the write, and the
            // credits before the wipe (only those after it count).
            Some(wipe) if floor.is_none_or(|f| wipe > f) => match credits {
                None => Ok(U256::ZERO),
                Some(_) => match self.memory.deltas_between(&location, wipe, self.txn_idx) {
                    Ok(sum) => Ok(sum.balance),
                    Err(blocking) => {
                        // An abort came in since the read above (which then fails validation).
                        if self.wait_for(blocking) {
                            return self.storage(address, index);
                        }
                        self.suspended = true;
                        Err(TxDbError::Blocked(blocking))
                    }
                },
            },
            _ => Ok(credits.map_or(value, |c| value.wrapping_add(c))),
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.base.block_hash_ref(number).map_err(Self::base_err)
    }
}

/// What an instruction of a transaction's EVM gets (its interpreter and the [`TxDb`] host).
type TxInstructionContext<'a, 'db, DB> = revm::interpreter::InstructionContext<
    'a,
    revm::handler::MainnetContext<TxDb<'db, DB>>,
    revm::interpreter::interpreter::EthInterpreter,
>;

/// What an instruction returns.
type InstructionOutcome = revm::interpreter::InstructionExecResult;

/// revm's `BALANCE` instruction, noting a read of the beneficiary's balance by a transaction
/// that may read the beneficiary lazily (see [`LazyBeneficiary`]).
pub(super) fn observing_balance<DB>(context: TxInstructionContext<'_, '_, DB>) -> InstructionOutcome
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    let db = &mut context.host.journaled_state.database;
    if db.lazy_beneficiary_candidate.is_some() {
        if let Ok(top) = context.interpreter.stack.peek(0) {
            if Address::from_word(B256::from(top.to_be_bytes())) == db.beneficiary {
                db.beneficiary_observed = true;
            }
        }
    }
    revm::interpreter::instructions::host::balance(context)
}

/// revm's `SLOAD`, serving a hot slot as a credit where the code after it is an unobserved
/// increment (see [`StorageCredit`]), and noting any other load of the slot a credit was
/// served for.
pub(super) fn crediting_sload<DB>(context: TxInstructionContext<'_, '_, DB>) -> InstructionOutcome
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    use revm::interpreter::interpreter_types::{InputsTr as _, Jumps as _};
    let revm::interpreter::InstructionContext { interpreter, host } = context;
    let db = &mut host.journaled_state.database;
    if db.credits_allowed {
        if let Ok(key) = interpreter.stack.peek(0) {
            let address = interpreter.input.target_address();
            if let Some(credit) = db.storage_credit {
                if credit.address == address && credit.slot == key {
                    db.credit_broken = true;
                }
            } else if db.hot.contains(&Location::Storage(address, key))
                && interpreter.bytecode.is_legacy()
            {
                let sload_pc = interpreter.bytecode.pc() - 1;
                let code = interpreter.bytecode.bytes_slice();
                if let Some(found) = db.increment_at(interpreter.bytecode.hash(), code, sload_pc) {
                    use velarium_analyzer::increment::StoreKey;
                    let stores_at_key = match found.key {
                        StoreKey::Depth(depth) => interpreter.stack.peek(depth) == Ok(key),
                        StoreKey::Constant(constant) => U256::from_be_bytes(constant) == key,
                    };
                    if stores_at_key {
                        db.credit_candidate = Some((address, key, found.sstore_pc));
                    }
                }
            }
        }
    }
    let result =
        revm::interpreter::instructions::host::sload(revm::interpreter::InstructionContext {
            interpreter: &mut *interpreter,
            host: &mut *host,
        });
    // Served now if the slot was not loaded yet; else not at all.
    host.journaled_state.database.credit_candidate = None;
    result
}

/// revm's `SSTORE`, noting a store to the slot a credit was served for other than its
/// increment's one (see [`StorageCredit`]).
pub(super) fn crediting_sstore<DB>(context: TxInstructionContext<'_, '_, DB>) -> InstructionOutcome
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    use revm::interpreter::interpreter_types::{InputsTr as _, Jumps as _};
    let db = &mut context.host.journaled_state.database;
    if let Some(credit) = db.storage_credit {
        if context.interpreter.stack.peek(0) == Ok(credit.slot)
            && context.interpreter.input.target_address() == credit.address
        {
            let pc = context.interpreter.bytecode.pc() - 1;
            let (at, stored) = db.credit_store;
            if pc != at || stored {
                db.credit_broken = true;
            }
            db.credit_store.1 = true;
        }
    }
    revm::interpreter::instructions::host::sstore(context)
}

/// revm's `JUMPDEST` (which does nothing) on a worker that owes the others something (see
/// `velarium_numa_runtime::with_service_hook`): it does it at every jump target, so a worker 0
/// that serves the others' reads of a database only it may touch answers within a loop's
/// iteration, not only at its own state reads. Only that worker's table has it.
pub(super) fn serving_jumpdest<DB>(_context: TxInstructionContext<'_, '_, DB>) -> InstructionOutcome
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    velarium_numa_runtime::service();
    Ok(())
}

/// The code with hash `code_hash`, as the block's pre-execution changes (`overlay`) or the
/// parent state hold it.
fn shared_code<DB>(overlay: &Overlay, base: &DB, code_hash: B256) -> Result<Bytecode, TxDbError>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    if let Some(code) = overlay.contracts.get(&code_hash) {
        return Ok(code.clone());
    }
    base.code_by_hash_ref(code_hash).map_err(|e| TxDbError::Base(e.to_string()))
}

/// The empty code, as revm's `Bytecode::default()` builds it, but one copy per thread (see
/// [`LocalCode`]: revm's default is one `Arc` for the whole process, counted on at every load
/// and drop of an account without code).
pub(crate) fn empty_code() -> Bytecode {
    thread_local! {
        // SAFETY: what `Bytecode::default()` holds: an empty code padded with one STOP (so
        // execution never reads past the end) and an empty jump table.
        static EMPTY: Bytecode = unsafe {
            Bytecode::new_analyzed(
                alloy_primitives::Bytes::from_static(&[revm::bytecode::opcode::STOP]),
                0,
                revm::bytecode::JumpTable::default(),
            )
        };
    }
    EMPTY.with(Clone::clone)
}

/// An account without code holding `balance` and `nonce` (with this thread's [`empty_code`]).
pub(crate) fn eoa_info(balance: U256, nonce: u64) -> AccountInfo {
    AccountInfo {
        balance,
        nonce,
        code_hash: KECCAK_EMPTY,
        account_id: None,
        code: Some(empty_code()),
    }
}
