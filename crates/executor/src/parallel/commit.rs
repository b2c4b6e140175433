//! Phase 2: the transactions' final state diffs folded into the block's state changes, per
//! account, in parallel.
//!
//! The oracle commits each transaction's diff into one revm `State` (cache account and
//! transition per touched account), then merges the transitions into a `BundleState`. Every step
//! of that depends only on the account's own sequence of changes, so the accounts are split into
//! shards by address and each shard replays, in transaction order, exactly what revm's
//! `State::commit` does for its accounts (`CacheAccount::{selfdestruct, newly_created,
//! touch_empty_eip161, change}`, then `TransitionState::add_transition`), on its own maps, on its
//! own worker. The shards' transitions become `BundleAccount`s through revm's own
//! `apply_transitions_and_create_reverts`, and the shard bundles are united (their addresses are
//! disjoint).
//!
//! The block's `State` (the one alloy-evm's executor holds) keeps what the shards must not decide
//! alone: the accounts it already knows from the pre-execution changes (their cache entry and
//! transition are the shards' starting point) and the accounts the post-execution changes touch
//! (block and ommer rewards, withdrawals, the EIP-7002/7251 system calls): those are folded like
//! the others, then handed back to the `State` so alloy-evm's post-execution code finds exactly
//! the cache and transitions sequential execution would have left. [`check_main_state`] verifies
//! afterwards that the `State` never loaded an account a shard owns (which would have read stale
//! data); that is an engine fault, and the block is re-executed by the oracle.
//!
//! Two account-level fix-ups of the parallel engine happen here too, in order: a lazily credited
//! transfer recipient is rebuilt from its folded state (`rebase_account`), and the
//! beneficiary's fees are credited through a revm journal, batched ([`BeneficiaryCredits`]).

use super::{
    db::{LazyBeneficiary, LazySender, StorageCredit},
    fault::EngineFault,
    worker::TxOutcome,
};
use crate::ExecutionError;
use alloy_primitives::{
    map::{AddressMap, AddressSet, HashMap},
    Address, U256,
};
use revm::{
    bytecode::Bytecode,
    context::{journaled_state::account::JournaledAccountTr, JournalTr},
    database::{
        states::{
            bundle_state::BundleRetention, plain_account::PlainAccount, CacheAccount, StorageSlot,
        },
        AccountStatus, BundleAccount, BundleState, CacheState, TransitionAccount, TransitionState,
    },
    database_interface::{Database, DatabaseRef},
    primitives::{hardfork::SpecId, StorageKey, StorageValue, B256},
    state::{Account, AccountInfo, EvmState, EvmStorage},
    Journal,
};
use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Mutex,
    },
};

/// What the fold needs of one transaction's final outcome.
#[derive(Debug, Clone, Copy)]
pub(super) struct TxDiff<'a> {
    /// The final state diff (without the beneficiary's fee).
    pub(super) changes: &'a EvmState,
    /// The shard that folds each account of `changes`, in its iteration order, if noted (see
    /// [`DiffLayout`]).
    pub(super) owners: Option<&'a [u8]>,
    /// The fee owed to the beneficiary.
    pub(super) fee: U256,
    /// The lazily credited transfer recipient, if any (see `TxDb::lazy_basic`).
    pub(super) lazy_recipient: Option<Address>,
    /// The lazy recipient's account in the parent state, if the transaction read it there.
    pub(super) lazy_recipient_base: Option<&'a Option<AccountInfo>>,
    /// The lazily read sender, if any (see [`LazySender`]).
    pub(super) lazy_sender: Option<LazySender>,
    /// The lazily read beneficiary, if any (see [`LazyBeneficiary`]).
    pub(super) lazy_beneficiary: Option<LazyBeneficiary>,
    /// The storage slot credited by an unobserved increment, if any (see [`StorageCredit`]).
    pub(super) storage_credit: Option<StorageCredit>,
}

/// How an account read lazily is rebuilt on its committed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rebase {
    /// A plain transfer's recipient, served a zero balance: the diff holds only the credit.
    Recipient,
    /// A lazy sender, served its placeholder: the diff holds the placeholder less the debit.
    Sender(LazySender),
    /// A lazy beneficiary, served its placeholder: the diff holds the placeholder plus the
    /// transaction's credits.
    Beneficiary(LazyBeneficiary),
}

impl Rebase {
    /// For an account served a placeholder (a lazy sender or beneficiary): applies what the
    /// transaction did to it (`account`, against the placeholder) to `info`, its committed state.
    fn onto_placeholder(
        self,
        info: &mut AccountInfo,
        account: &Account,
    ) -> Result<(), EngineFault> {
        match self {
            Self::Sender(sender) => debit_sender(info, sender, account),
            Self::Beneficiary(beneficiary) => credit_beneficiary(info, beneficiary, account),
            Self::Recipient => Err(EngineFault::Invariant("a lazy recipient has no placeholder")),
        }
    }

    /// How `address`'s change in `diff` is rebuilt, if it is.
    fn of(address: &Address, diff: &TxDiff<'_>) -> Option<Self> {
        if Some(*address) == diff.lazy_recipient {
            Some(Self::Recipient)
        } else if let Some(beneficiary) = diff.lazy_beneficiary.filter(|b| b.address == *address) {
            Some(Self::Beneficiary(beneficiary))
        } else {
            diff.lazy_sender.filter(|s| s.address == *address).map(Self::Sender)
        }
    }
}

/// [`rebased_account`] in place, with the account's current info read from `state` (the
/// per-transaction commit path of `SpeculativeTx`).
pub(super) fn rebase_account<DB>(
    state: &mut DB,
    address: Address,
    account: &mut Account,
    rebase: Rebase,
) -> Result<(), ExecutionError>
where
    DB: Database,
    DB::Error: std::fmt::Display,
{
    if !account.is_touched() {
        return Ok(());
    }
    let current = state
        .basic(address)
        .map_err(|e| ExecutionError::StateRead(format!("loading {address}: {e}")))?;
    *account = rebased_account(current, account, rebase)?;
    Ok(())
}

/// Rebuilds a lazily read account from `current`, its committed info: the result is what
/// revm's journal would have loaded and changed.
///
/// A recipient saw a zero placeholder balance, so `account` holds only the credit. A sender saw
/// its placeholder balance and the transaction's nonce: its debit is the placeholder less what
/// `account` holds, and the nonce it was served must be its committed one (the conditions of
/// [`LazySender`] ensure it; a broken one is an engine fault).
pub(super) fn rebased_account(
    current: Option<AccountInfo>,
    account: &Account,
    rebase: Rebase,
) -> Result<Account, EngineFault> {
    let mut rebased = match rebase {
        Rebase::Recipient => {
            let credit = account.info.balance;
            let mut rebased = match current {
                Some(info) => Account::from(info),
                None => Account::new_not_existing(revm::state::TransactionId::ZERO),
            };
            rebased.info.balance += credit;
            rebased
        }
        Rebase::Sender(_) | Rebase::Beneficiary(_) => {
            let info =
                current.ok_or(EngineFault::Invariant("a lazily read account does not exist"))?;
            let mut rebased = Account::from(info);
            rebase.onto_placeholder(&mut rebased.info, account)?;
            rebased
        }
    };
    rebased.mark_touch();
    Ok(rebased)
}

/// Applies a lazy sender's transaction to `info`, its committed state: the debit (the
/// placeholder less what the transaction left) and the nonce bump, checking that the nonce it
/// was served is the committed one.
fn debit_sender(
    info: &mut AccountInfo,
    sender: LazySender,
    account: &Account,
) -> Result<(), EngineFault> {
    if info.nonce != sender.nonce {
        return Err(EngineFault::Invariant("a lazy sender's nonce is not its committed one"));
    }
    let debit = sender
        .placeholder
        .checked_sub(account.info.balance)
        .ok_or(EngineFault::Invariant("a lazy sender was credited past its placeholder"))?;
    info.balance = info
        .balance
        .checked_sub(debit)
        .ok_or(EngineFault::Invariant("a lazy sender's balance went negative"))?;
    info.nonce = account.info.nonce;
    Ok(())
}

/// Applies a lazy beneficiary's credits in a transaction to `info`, its committed state: what
/// the transaction left above the placeholder, checking that the transaction changed nothing
/// else (its committed nonce may be higher: the beneficiary's own transactions).
fn credit_beneficiary(
    info: &mut AccountInfo,
    beneficiary: LazyBeneficiary,
    account: &Account,
) -> Result<(), EngineFault> {
    if account.info.nonce != beneficiary.nonce {
        return Err(EngineFault::Invariant("a lazy beneficiary's nonce changed"));
    }
    let credit = account
        .info
        .balance
        .checked_sub(beneficiary.placeholder)
        .ok_or(EngineFault::Invariant("a lazy beneficiary was debited"))?;
    info.balance = info
        .balance
        .checked_add(credit)
        .ok_or(EngineFault::Invariant("a lazy beneficiary's balance overflowed"))?;
    Ok(())
}

/// The shard an address belongs to, out of `shards`.
fn shard_of(address: &Address, shards: usize) -> usize {
    let bytes = &address.0 .0;
    let word = u64::from_le_bytes([
        bytes[12], bytes[13], bytes[14], bytes[15], bytes[16], bytes[17], bytes[18], bytes[19],
    ]);
    ((word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize) % shards
}

/// What the shards start from and must hand back: the block `State`'s cache and transitions
/// after the pre-execution changes, and the addresses whose folded result goes back to it.
#[derive(Debug)]
pub(super) struct MainView<'a> {
    /// The `State`'s cache (pre-execution changes and the accounts they loaded).
    pub(super) cache: &'a CacheState,
    /// The `State`'s transitions (pre-execution changes).
    pub(super) transitions: &'a TransitionState,
    /// Accounts folded here that go back to the `State`: its cached accounts and whatever the
    /// post-execution changes touch.
    pub(super) main_bound: &'a AddressSet,
}

impl MainView<'_> {
    /// Whether `address`'s fold goes back to the block `State`.
    fn is_bound(&self, address: &Address) -> bool {
        // A handful of accounts: probe the pre-execution cache only when the set might hold it.
        !self.main_bound.is_empty() && self.main_bound.contains(address)
    }
}

/// One shard's result.
#[derive(Debug, Default)]
pub(super) struct ShardOutput {
    /// The bundle of the folded accounts that are not main-bound.
    bundle: BundleState,
    /// Main-bound accounts: cache entry and transition to put back into the `State`.
    to_main: Vec<(Address, CacheAccount, Option<TransitionAccount>)>,
}

/// The block's fold, shard by shard, fed with committed transactions while Block-STM runs.
///
/// A shard is folded by one worker at a time (its lock) and always in transaction order, up to
/// the commit point: committed transactions never change. Workers that find nothing to execute
/// fold ([`Folds::help`]); when the block is committed they finish the rest together
/// ([`Folds::finish`]).
pub(super) struct Folds<'a, DB> {
    shards: Box<[Mutex<ShardState<'a, DB>>]>,
    /// Per transaction, the shards its last incarnation's diff touches (bit `s`: shard `s`),
    /// set by the worker that executed it: a shard skips the others' transactions without
    /// reading their outcomes, so more shards than workers cost no more reading.
    touched: Box<[AtomicU64]>,
    /// The beneficiary's shard (it takes every transaction's fee).
    beneficiary_shard: usize,
    /// The shard the workers finish first: the one of the contract most transactions call,
    /// if any, whose fold is the longest (see [`Folds::finish`]).
    first: usize,
}

impl<DB> std::fmt::Debug for Folds<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Folds").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

/// One shard's fold and how far it got.
struct ShardState<'a, DB> {
    /// The fold in progress (`None` once turned into `output`).
    folder: Option<ShardFolder<'a, DB>>,
    credits: BeneficiaryCredits,
    /// Transactions folded so far (a prefix of the block).
    cursor: usize,
    /// The first error (the shard stops there; the block fails anyway).
    error: Option<ExecutionError>,
    /// The finished shard (built by the worker that folded its last transaction).
    output: Option<ShardOutput>,
}

/// A transaction's outcome slot, as the workers leave it.
///
/// No lock: the scheduler already orders every access. Only the worker executing the
/// transaction's current incarnation writes it (one incarnation executes at a time), before it
/// reports the execution finished; readers read it only once the transaction is committed
/// (after which nothing executes it again), having seen the commit index that the report
/// happened before. A read lock here made every fold shard that reads an outcome write its
/// cache line, bouncing it between the cores (half of the fold's samples on two workers).
///
/// Aligned to a cache line: neighbouring slots are written by different workers, and a line
/// shared by two of them would move between the cores at every write.
///
/// The slot also says which worker made the outcome it holds (its heap memory came from that
/// worker's allocator), so that the worker can free it (see `HandOff`).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct OutcomeSlot {
    outcome: std::cell::UnsafeCell<Option<TxOutcome>>,
    maker: std::sync::atomic::AtomicU8,
}

// SAFETY: shared access follows the protocol above: one writer, and readers only after the
// writer is done for good, ordered by the scheduler's commit index (release/acquire).
unsafe impl Sync for OutcomeSlot {}

impl OutcomeSlot {
    /// Stores the outcome of an incarnation of the transaction.
    ///
    /// # Safety
    ///
    /// The caller executed the transaction's current incarnation and has not yet reported it
    /// finished (so the transaction is not committed and nobody reads the slot).
    pub(super) unsafe fn put(&self, outcome: TxOutcome) {
        // Worker indices past 255 share the last tag (worker 255 then frees their outcomes).
        let maker = u8::try_from(velarium_mvmemory::bound_worker()).unwrap_or(u8::MAX);
        self.maker.store(maker, Ordering::Relaxed);
        // SAFETY: the caller is the slot's only accessor now (see above).
        unsafe { *self.outcome.get() = Some(outcome) };
    }

    /// The worker whose outcome the slot holds (see [`OutcomeSlot::put`]).
    pub(crate) fn maker(&self) -> usize {
        usize::from(self.maker.load(Ordering::Relaxed))
    }

    /// The outcome of a committed transaction.
    ///
    /// # Safety
    ///
    /// The transaction is committed, as seen through the scheduler's commit index (or every
    /// worker has stopped): nothing writes the slot any more.
    pub(super) unsafe fn committed(&self) -> Option<&TxOutcome> {
        // SAFETY: no writer any more (see above); readers only share.
        unsafe { (*self.outcome.get()).as_ref() }
    }

    /// The outcome of a committed transaction, moved out.
    ///
    /// # Safety
    ///
    /// As [`OutcomeSlot::committed`], and the caller is the slot's only reader (no fold runs).
    pub(super) unsafe fn take_committed(&self) -> Option<TxOutcome> {
        // SAFETY: no writer any more, and no other reader (see above).
        unsafe { (*self.outcome.get()).take() }
    }

    /// The slot, exclusively.
    pub(crate) fn get_mut(&mut self) -> &mut Option<TxOutcome> {
        self.outcome.get_mut()
    }
}

/// How many transactions ahead of the one it folds a shard prefetches a diff.
const PREFETCH_AHEAD: usize = 4;

/// How many accounts of a diff [`DiffLayout`] gives an owner (larger diffs are checked account
/// by account).
const DIFF_ENTRIES: usize = 16;
/// How many objects (accounts, changed slots) [`DiffLayout`] keeps for the prefetch.
const DIFF_LINES: usize = 8;
/// The owner of an untouched account in [`DiffLayout`]: no shard folds it.
const NOT_FOLDED: u8 = u8::MAX;
/// [`DiffLayout::entries`] of a diff it gives no owners for.
const UNTAGGED: u8 = u8::MAX;

/// Where a transaction's state diff lies in memory and which shard folds each of its accounts,
/// worked out by the worker that executed the transaction, while the diff is in its cache (see
/// [`FoldWork::note`]).
///
/// The fold reads diffs that another core wrote long before. Without owners, every shard that
/// a diff touched walked all of the diff's accounts, read each one's address to learn whether
/// it owned it (a hash and a division), and prefetched them all; with them, a shard reads and
/// prefetches only its own accounts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DiffLayout {
    /// Per account of the diff, in the map's iteration order, the shard that folds it
    /// ([`NOT_FOLDED`] if untouched); the first `entries` are set. The order holds because the
    /// map is never changed after the note: it moves into the outcome as it is.
    owner: [u8; DIFF_ENTRIES],
    /// The diff's number of accounts, or [`UNTAGGED`] (more than [`DIFF_ENTRIES`], or no note).
    entries: u8,
    /// Objects to prefetch: an address with the number of lines to fetch from it in the low
    /// bits (the objects are 8-byte aligned); zero for none. Plain numbers, only prefetched.
    lines: [usize; DIFF_LINES],
    /// The shard that reads each of `lines`.
    line_owner: [u8; DIFF_LINES],
}

impl Default for DiffLayout {
    fn default() -> Self {
        Self {
            owner: [NOT_FOLDED; DIFF_ENTRIES],
            entries: UNTAGGED,
            lines: [0; DIFF_LINES],
            line_owner: [NOT_FOLDED; DIFF_LINES],
        }
    }
}

impl DiffLayout {
    /// The layout of `state`, whose accounts `shard` places (below [`MAX_SHARDS`]; a fold of
    /// one shard places them all in 0), and the mask of the shards it touches (the
    /// beneficiary's always: it takes the fee).
    fn of(
        state: &EvmState,
        shard: impl Fn(&Address) -> u8,
        beneficiary_shard: usize,
    ) -> (Self, u64) {
        let mut layout = Self::default();
        let mut mask = 1u64 << beneficiary_shard;
        let mut n = 0;
        let tagged = state.len() <= DIFF_ENTRIES;
        for (k, (address, account)) in state.iter().enumerate() {
            if !account.is_touched() {
                continue;
            }
            let owner = shard(address);
            mask |= 1 << owner;
            if tagged {
                layout.owner[k] = owner;
            }
            let mut push = |object: usize, count: usize| {
                if n < DIFF_LINES {
                    layout.lines[n] = object | count;
                    layout.line_owner[n] = owner;
                    n += 1;
                }
            };
            // Info, storage map and status.
            push(std::ptr::from_ref(account) as usize, 3);
            for slot in account.storage.values().filter(|slot| slot.is_changed()) {
                push(std::ptr::from_ref(slot) as usize, 2);
            }
        }
        if tagged {
            layout.entries = state.len() as u8;
        }
        (layout, mask)
    }

    /// The owner of each account of a diff of `len` accounts, if noted.
    fn owners(&self, len: usize) -> Option<&[u8]> {
        // (`UNTAGGED` is a length too: a diff of 255 accounts must not read it as one.)
        (len <= DIFF_ENTRIES && usize::from(self.entries) == len).then(|| &self.owner[..len])
    }

    /// Asks the cache for the lines of `shard`'s part of the diff, which it will fold shortly.
    fn prefetch(&self, shard: usize) {
        for (&line, &owner) in self.lines.iter().zip(&self.line_owner) {
            if line != 0 && usize::from(owner) == shard {
                prefetch_lines(line & !7, line & 7);
            }
        }
    }
}

/// Asks the cache for `count` lines from `address` on (which is only a number: a prefetch never
/// faults).
pub(super) fn prefetch_lines(address: usize, count: usize) {
    for k in 0..count {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                address.wrapping_add(64 * k) as *const i8,
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (address, k);
    }
}

/// What a worker does with the block's fold (see [`Folds`]).
pub(super) trait FoldWork: Sync {
    /// Folds a few committed transactions into a shard nobody is folding; whether there was
    /// anything to do.
    fn help(&self, outcomes: &[OutcomeSlot], committed: usize) -> bool;
    /// Folds every shard no other worker is folding up to `committed`, once it lags
    /// [`HELP_CHUNK`] transactions behind (one chunk's diffs are still in the cache).
    fn keep_up(&self, outcomes: &[OutcomeSlot], committed: usize);
    /// Folds every shard to the end of the block (`txs` transactions); the time spent waiting
    /// for shards another worker was folding.
    fn finish(&self, outcomes: &[OutcomeSlot], txs: usize) -> std::time::Duration;
    /// Notes the shards transaction `txn_idx`'s new outcome touches (`None`: it failed); the
    /// layout of its diff, for the outcome.
    fn note(&self, txn_idx: usize, changes: Option<&EvmState>) -> DiffLayout;
}

impl<DB> FoldWork for Folds<'_, DB>
where
    DB: DatabaseRef + Sync,
    DB::Error: std::fmt::Display,
{
    fn help(&self, outcomes: &[OutcomeSlot], committed: usize) -> bool {
        Folds::help(self, outcomes, committed)
    }

    fn finish(&self, outcomes: &[OutcomeSlot], txs: usize) -> std::time::Duration {
        Folds::finish(self, outcomes, txs)
    }

    fn keep_up(&self, outcomes: &[OutcomeSlot], committed: usize) {
        for shard in self.shards.iter() {
            let Ok(mut state) = shard.try_lock() else { continue };
            if state.cursor + HELP_CHUNK <= committed && state.error.is_none() {
                state.advance(outcomes, &self.touched, committed);
            }
        }
    }

    fn note(&self, txn_idx: usize, changes: Option<&EvmState>) -> DiffLayout {
        let shards = self.shards.len();
        let Some(changes) = changes else {
            // A failed transaction fails the block: every shard stops at it.
            self.touched[txn_idx].store(u64::MAX, Ordering::Relaxed);
            return DiffLayout::default();
        };
        if shards == 1 {
            // The one shard folds every transaction: its mask stays "every shard".
            return DiffLayout::of(changes, |_| 0, 0).0;
        }
        let (layout, touched) = DiffLayout::of(
            changes,
            |address| shard_of(address, shards) as u8,
            self.beneficiary_shard,
        );
        // Published to the shards by the commit that follows (the scheduler's release and
        // acquire orderings).
        self.touched[txn_idx].store(touched, Ordering::Relaxed);
        layout
    }
}

/// The most shards a fold has (one bit each in [`Folds`]' masks).
pub(super) const MAX_SHARDS: usize = 64;

/// How many transactions a helping worker folds before it looks for execution work again.
const HELP_CHUNK: usize = 32;

impl<'a, DB> Folds<'a, DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    /// An empty fold over `shards` shards (a few per worker, so a shard with the beneficiary
    /// or a hot contract does not leave the others idle), for a block of `txs` transactions.
    pub(super) fn new(
        shards: usize,
        base: &'a DB,
        main: &'a MainView<'a>,
        spec_id: SpecId,
        beneficiary: Address,
        hot: Option<Address>,
        txs: usize,
    ) -> Self {
        let shards = shards.clamp(1, MAX_SHARDS);
        let beneficiary_shard = shard_of(&beneficiary, shards);
        let first = hot.map_or(0, |hot| shard_of(&hot, shards));
        // Sized up front (as many accounts per transaction as the last block's fold changed,
        // two at least): growing the map rehashes every account folded so far. The first
        // shard's plain accounts become the block's bundle (see `ShardOutputs::into_united`):
        // sized for every shard's, so the union neither rehashes nor grows it.
        let per_tx = ACCOUNTS_PER_TX.load(Ordering::Relaxed) as usize;
        let expected = txs * per_tx / (16 * shards) + 16;
        let shards = (0..shards)
            .map(|shard| {
                let mut plain = AddressMap::default();
                // A shard's share of the addresses varies: a quarter more room.
                plain.reserve(if shard == 0 { expected * shards } else { expected * 5 / 4 });
                Mutex::new(ShardState {
                    folder: Some(ShardFolder {
                        shard,
                        shards,
                        base,
                        main,
                        spec_id,
                        beneficiary,
                        owns_beneficiary: shard == beneficiary_shard,
                        plain,
                        replayed: AddressMap::default(),
                        storage_room: txs.saturating_mul(2),
                    }),
                    credits: BeneficiaryCredits { pending: None },
                    cursor: 0,
                    error: None,
                    output: None,
                })
            })
            .collect();
        let touched = (0..txs).map(|_| AtomicU64::new(u64::MAX)).collect();
        Self { shards, touched, beneficiary_shard, first }
    }

    /// Folds a few committed transactions into a shard no other worker is folding; returns
    /// whether there was anything to do.
    pub(super) fn help(&self, outcomes: &[OutcomeSlot], committed: usize) -> bool {
        for shard in self.shards.iter() {
            let Ok(mut state) = shard.try_lock() else { continue };
            if state.cursor < committed && state.error.is_none() {
                let until = committed.min(state.cursor + HELP_CHUNK);
                state.advance(outcomes, &self.touched, until);
                return true;
            }
        }
        false
    }

    /// Folds every shard up to `txs` (the whole block), each worker taking the shards no one
    /// else is folding first, starting at the hot contract's: the longest fold starts at once
    /// while the other workers share the rest, instead of starting after a worker's share of
    /// the others and keeping the rest waiting for it.
    ///
    /// Returns the time spent waiting for a shard another worker was folding.
    pub(super) fn finish(&self, outcomes: &[OutcomeSlot], txs: usize) -> std::time::Duration {
        let n = self.shards.len();
        let mut waited = std::time::Duration::ZERO;
        for blocking in [false, true] {
            for shard in (0..n).map(|k| &self.shards[(self.first + k) % n]) {
                let mut state = match shard.try_lock() {
                    Ok(state) => state,
                    Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) if blocking => {
                        let since = std::time::Instant::now();
                        let state = shard.lock().unwrap_or_else(|e| e.into_inner());
                        waited += since.elapsed();
                        state
                    }
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                };
                state.advance(outcomes, &self.touched, txs);
                state.conclude(txs);
            }
        }
        waited
    }

    /// The shards' results, once every one is folded to the end of the block.
    pub(super) fn into_outputs(self, txs: usize) -> Result<ShardOutputs, ExecutionError> {
        let shards = self
            .shards
            .into_vec()
            .into_iter()
            .map(|shard| {
                let mut state = shard.into_inner().unwrap_or_else(|e| e.into_inner());
                state.conclude(txs);
                if let Some(error) = state.error.take() {
                    return Err(error);
                }
                state.output.ok_or_else(|| EngineFault::ShardMissing.into())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if txs >= MIN_TXS_TO_LEARN_SIZE {
            let accounts: usize = shards.iter().map(|s| s.bundle.state.len()).sum();
            let per_tx = (accounts * 16 / txs).clamp(MIN_ACCOUNTS_PER_TX, MAX_ACCOUNTS_PER_TX);
            ACCOUNTS_PER_TX.store(per_tx as u32, Ordering::Relaxed);
        }
        Ok(ShardOutputs { shards })
    }
}

impl<DB> ShardState<'_, DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    /// Once every transaction is folded: credits the last fees and builds the shard's output.
    fn conclude(&mut self, txs: usize) {
        if self.cursor < txs || self.error.is_some() {
            return;
        }
        if let Some(mut folder) = self.folder.take() {
            match self.credits.flush(&mut folder) {
                Ok(()) => self.output = Some(folder.into_output()),
                Err(error) => self.error = Some(error),
            }
        }
    }

    /// Folds transactions `cursor..until` (those that touch the shard, see [`Folds`]).
    fn advance(&mut self, outcomes: &[OutcomeSlot], touched: &[AtomicU64], until: usize) {
        let Some(folder) = self.folder.as_mut() else { return };
        let bit = 1u64 << folder.shard;
        while self.cursor < until && self.error.is_none() {
            if touched[self.cursor].load(Ordering::Relaxed) & bit == 0 {
                self.cursor += 1;
                continue;
            }
            if let Some(ahead) = (self.cursor + PREFETCH_AHEAD..until)
                .take(PREFETCH_AHEAD)
                .find(|&i| touched[i].load(Ordering::Relaxed) & bit != 0)
            {
                // SAFETY: below `until`, so committed (see below).
                if let Some(outcome) = unsafe { outcomes[ahead].committed() } {
                    outcome.layout.prefetch(folder.shard);
                }
            }
            // SAFETY: `until` is at most the commit index this worker read (or the block's end
            // once every worker stopped executing): the transaction is committed.
            let Some(outcome) = (unsafe { outcomes[self.cursor].committed() }) else {
                self.error = Some(EngineFault::MissingOutcome(self.cursor as u32).into());
                return;
            };
            let Ok((_, changes)) = &outcome.result else {
                // An invalid transaction: the block fails with it, nothing after it matters.
                self.cursor = outcomes.len();
                return;
            };
            let diff = TxDiff {
                changes,
                owners: outcome.layout.owners(changes.len()),
                fee: outcome.fee,
                lazy_recipient: outcome.lazy_recipient,
                lazy_recipient_base: outcome.lazy_recipient_base.as_deref(),
                lazy_sender: outcome.lazy_sender,
                lazy_beneficiary: outcome.lazy_beneficiary,
                storage_credit: outcome.storage_credit.as_deref().copied(),
            };
            if let Err(error) = folder.fold_tx(&mut self.credits, diff) {
                self.error = Some(error);
                return;
            }
            self.cursor += 1;
        }
    }
}

/// How many accounts per transaction the last block's fold changed, in sixteenths (what the
/// next fold sizes its maps for, see [`Folds::new`]): two on blocks of transfers, four or more on
/// swaps (a sender, a router, a pair and its two tokens), whose union of shards rehashed a map
/// sized for two (1,000 swaps: 0.4-1.0 ms of a 30 ms block, before 2026-12-07).
static ACCOUNTS_PER_TX: AtomicU32 = AtomicU32::new(MIN_ACCOUNTS_PER_TX as u32);
/// Two accounts per transaction (a sender and a recipient), in sixteenths.
const MIN_ACCOUNTS_PER_TX: usize = 2 * 16;
/// Eight accounts per transaction, in sixteenths: room beyond that costs more than it saves.
const MAX_ACCOUNTS_PER_TX: usize = 8 * 16;
/// Smaller blocks do not teach [`ACCOUNTS_PER_TX`]: their system and beneficiary accounts
/// weigh too much per transaction.
const MIN_TXS_TO_LEARN_SIZE: usize = 64;

/// The shards' results, to be united with the block `State`.
#[derive(Debug)]
pub(super) struct ShardOutputs {
    shards: Vec<ShardOutput>,
}

impl ShardOutputs {
    /// Puts the main-bound accounts back into the `State`'s cache and transitions.
    pub(super) fn hand_back(&mut self, cache: &mut CacheState, transitions: &mut TransitionState) {
        for shard in &mut self.shards {
            for (address, account, transition) in shard.to_main.drain(..) {
                cache.accounts.insert(address, account);
                match transition {
                    Some(transition) => {
                        transitions.transitions.insert(address, transition);
                    }
                    None => {
                        transitions.transitions.remove(&address);
                    }
                }
            }
        }
    }

    /// The shards' bundles united (their addresses are disjoint), into the first one (sized for
    /// all of them) or else the largest; reverts are left to the `State`'s merge. Called once
    /// the main-bound accounts are handed back; it runs beside the receipts (see `pool.rs`).
    pub(super) fn into_united(self) -> BundleState {
        let mut parts: Vec<BundleState> = self.shards.into_iter().map(|s| s.bundle).collect();
        let total: usize = parts.iter().map(|p| p.state.len()).sum();
        let target = if parts.first().is_some_and(|p| p.state.capacity() >= total) {
            Some(0)
        } else {
            (0..parts.len()).max_by_key(|&i| parts[i].state.len())
        };
        let Some(target) = target else { return BundleState::default() };
        let mut bundle = parts.swap_remove(target);
        bundle.state.reserve(parts.iter().map(|p| p.state.len()).sum());
        for part in parts {
            absorb(&mut bundle, part);
        }
        bundle
    }
}

/// Moves `part`'s accounts and contracts into `bundle` (their addresses are disjoint); its
/// reverts are not taken.
fn absorb(bundle: &mut BundleState, part: BundleState) {
    bundle.state.extend(part.state);
    bundle.contracts.extend(part.contracts);
    bundle.state_size += part.state_size;
}

/// After alloy-evm's post-execution changes, before the merge: checks that they changed no
/// account but the main-bound ones, and never read an account a shard changed (`united`: the
/// shards' bundles; either would have worked on stale data).
pub(super) fn check_main(
    united: &BundleState,
    cache: &CacheState,
    transitions: &TransitionState,
    main_bound: &AddressSet,
) -> Result<(), ExecutionError> {
    if let Some(address) = transitions.transitions.keys().find(|a| !main_bound.contains(*a)) {
        return Err(EngineFault::StaleMainAccount(*address).into());
    }
    for address in cache.accounts.keys().filter(|a| !main_bound.contains(*a)) {
        if united.state.contains_key(address) {
            return Err(EngineFault::StaleMainAccount(*address).into());
        }
    }
    Ok(())
}

/// The block's bundle: the shards' `united` bundle with the `State`'s merged one (disjoint
/// addresses), whose merge decides the reverts (one set per merge).
pub(super) fn into_bundle(mut united: BundleState, mut main: BundleState) -> BundleState {
    if united.state.is_empty() && united.contracts.is_empty() {
        return main;
    }
    united.reverts = std::mem::take(&mut main.reverts);
    united.reverts_size = main.reverts_size;
    absorb(&mut united, main);
    united
}

/// An account changed only by plain changes (revm's `CacheAccount::change`), folded directly
/// into the bundle account it will be.
///
/// Folding `k >= 1` plain changes through revm gives: the status `on_changed` of the loaded
/// status (later changes keep it), the last info, and per storage slot the value before the
/// first change and the last value (a slot back at its original value drops out of the
/// transition; it stays in the cache). That is all a bundle account needs, so the common case
/// costs one map entry instead of a cache account, a transition and their clones per change.
/// The entry is the account's `BundleAccount` from the start, in the map that becomes the
/// shard's bundle ([`ShardFolder::into_output`] only drops the accounts left unchanged): its
/// `original_info` is the account as loaded from the parent state (`None`: it did not exist),
/// its `status` the status as loaded until then, its `info` the info after the last change, and
/// its `storage` every slot written (the value before the block and the last value).
trait PlainFold {
    /// A plain fold of an account as loaded (`original`, with `status`), before its first
    /// change.
    fn loaded(original: Option<AccountInfo>, status: AccountStatus) -> Self;
    /// Applies one more plain change.
    fn change(&mut self, account: &Account) {
        self.change_crediting(account, None);
    }
    /// [`PlainFold::change`] of a change that may have credited one of the account's slots
    /// (see [`StorageCredit`]): that slot gets what the transaction added on top of its folded
    /// value (or of the placeholder, its value before the block, if it was not folded yet), as
    /// [`ShardFolder::credit_slot`] would rebuild it, without copying the account.
    fn change_crediting(&mut self, account: &Account, credit: Option<StorageCredit>);
    /// [`rebased_account`] followed by [`PlainFold::change`], without building the account,
    /// where the rebuilt account is a plain change (it is not empty); `false`: not applied.
    fn rebase_in_place(&mut self, account: &Account, rebase: Rebase) -> Result<bool, EngineFault>;
    /// The account's current info.
    fn current(&self) -> &AccountInfo;
    /// The status revm's `change` gives the loaded account (and keeps on later changes).
    fn changed_status(&self) -> AccountStatus;
    /// The cache account and transition revm would hold after these changes.
    fn into_replayed(self) -> (CacheAccount, TransitionAccount);
    /// Turns the fold into the bundle account revm builds; `false` if the changes left nothing
    /// to revert (revm keeps such an account out of the bundle: same info, no changed slot,
    /// and it existed before).
    fn conclude(&mut self) -> bool;
}

impl PlainFold for BundleAccount {
    fn loaded(original: Option<AccountInfo>, status: AccountStatus) -> Self {
        Self {
            info: Some(UNSET_INFO),
            original_info: original,
            storage: HashMap::default(),
            status,
        }
    }

    fn change_crediting(&mut self, account: &Account, credit: Option<StorageCredit>) {
        let info = &account.info;
        let current = self.info.get_or_insert(UNSET_INFO);
        current.balance = info.balance;
        current.nonce = info.nonce;
        current.account_id = info.account_id;
        // The code only when it changed: cloning it counts a reference on an `Arc` that every
        // worker executing the contract shares.
        if current.code_hash != info.code_hash || current.code.is_none() {
            current.code_hash = info.code_hash;
            current.code.clone_from(&info.code);
        }
        for (slot, value) in account.changed_storage_slots() {
            let folded =
                self.storage.entry(*slot).or_insert_with(|| StorageSlot::new(value.original_value));
            folded.present_value = match credit {
                // A new entry holds the placeholder: the value the credit was served.
                Some(credit) if credit.slot == *slot => {
                    folded.present_value.wrapping_add(credit.amount(value.present_value))
                }
                _ => value.present_value,
            };
        }
    }

    fn rebase_in_place(&mut self, account: &Account, rebase: Rebase) -> Result<bool, EngineFault> {
        if !account.is_touched() {
            return Ok(false);
        }
        let current = self.info.get_or_insert(UNSET_INFO);
        match rebase {
            Rebase::Recipient => {
                let balance = current.balance.wrapping_add(account.info.balance);
                if balance.is_zero() && current.is_empty() {
                    return Ok(false);
                }
                current.balance = balance;
            }
            Rebase::Sender(_) | Rebase::Beneficiary(_) => {
                rebase.onto_placeholder(current, account)?;
            }
        }
        Ok(true)
    }

    fn current(&self) -> &AccountInfo {
        self.info.as_ref().unwrap_or(&UNSET_INFO)
    }

    fn changed_status(&self) -> AccountStatus {
        let had_no_nonce_and_code =
            self.original_info.as_ref().is_some_and(AccountInfo::has_no_code_and_nonce);
        self.status.on_changed(had_no_nonce_and_code)
    }

    fn into_replayed(self) -> (CacheAccount, TransitionAccount) {
        let status = self.changed_status();
        let changed = self.storage.iter().filter(|(_, s)| s.is_changed()).map(|(k, s)| (*k, *s));
        let info = self.info.unwrap_or(UNSET_INFO);
        let transition = TransitionAccount {
            info: Some(info.clone()),
            status,
            previous_info: self.original_info,
            previous_status: self.status,
            storage: changed.collect(),
            storage_was_destroyed: false,
        };
        let storage = self.storage.into_iter().map(|(k, s)| (k, s.present_value)).collect();
        let cache = CacheAccount { account: Some(PlainAccount { info, storage }), status };
        (cache, transition)
    }

    fn conclude(&mut self) -> bool {
        let existed = self.status != AccountStatus::LoadedNotExisting;
        self.status = self.changed_status();
        self.storage.retain(|_, slot| slot.is_changed());
        !(existed && self.storage.is_empty() && self.original_info == self.info)
    }
}

/// A [`PlainFold`]'s info before its first change sets it (revm's default would clone the
/// process-wide empty code, a reference count every worker shares).
const UNSET_INFO: AccountInfo = AccountInfo {
    balance: U256::ZERO,
    nonce: 0,
    code_hash: revm::primitives::KECCAK_EMPTY,
    account_id: None,
    code: None,
};

/// Whether revm's `State::commit` would apply `account` with `CacheAccount::change`.
fn is_plain_change(account: &Account) -> bool {
    !account.is_selfdestructed() && !account.is_created() && !account.is_empty()
}

/// The fold of one shard.
struct ShardFolder<'a, DB> {
    shard: usize,
    shards: usize,
    base: &'a DB,
    main: &'a MainView<'a>,
    spec_id: SpecId,
    beneficiary: Address,
    /// Whether the beneficiary's account is this shard's (it takes every transaction's fee).
    owns_beneficiary: bool,
    /// The accounts changed only plainly so far (see [`PlainFold`]): the shard's bundle to be.
    plain: AddressMap<BundleAccount>,
    /// The accounts replayed through revm's own cache-account code, change by change.
    replayed: AddressMap<(CacheAccount, Option<TransitionAccount>)>,
    /// The storage a plainly folded account is given room for once it has changed
    /// [`LARGE_STORAGE`] slots (see [`ShardFolder::apply`]).
    storage_room: usize,
}

/// Changed slots above which a plainly folded account is taken for a hot contract (a token
/// every transaction transfers) and given room for a couple of slots per transaction of the
/// block at once: doubling its map step by step rehashes every slot folded so far, on the
/// one worker that folds that account.
const LARGE_STORAGE: usize = 1024;

/// Gives a plainly folded account's storage `room` slots at once once it holds
/// [`LARGE_STORAGE`] (see there).
fn reserve_large(storage: &mut revm::database::states::StorageWithOriginalValues, room: usize) {
    if storage.len() >= LARGE_STORAGE && storage.capacity() < room {
        storage.reserve(room - storage.len());
    }
}

impl<DB> ShardFolder<'_, DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    fn owns(&self, address: &Address) -> bool {
        self.shards == 1 || shard_of(address, self.shards) == self.shard
    }

    /// Folds one transaction's diff (the shard's part of it), in block order.
    fn fold_tx(
        &mut self,
        credits: &mut BeneficiaryCredits,
        diff: TxDiff<'_>,
    ) -> Result<(), ExecutionError> {
        let beneficiary = self.beneficiary;
        let owns_beneficiary = self.owns_beneficiary;
        if owns_beneficiary && diff.fee.is_zero() {
            credits.flush(self)?;
        }
        let shard = self.shard as u8;
        for (k, (address, account)) in diff.changes.iter().enumerate() {
            // With the owners noted, another shard's account is skipped unread.
            let owned = match diff.owners {
                Some(owners) => owners[k] == shard,
                None => account.is_touched() && self.owns(address),
            };
            if !owned {
                continue;
            }
            if *address == beneficiary {
                // The transaction changes the beneficiary itself: credit the fees before.
                credits.flush(self)?;
            }
            let rebase = Rebase::of(address, &diff);
            let base = diff.lazy_recipient_base.filter(|_| rebase == Some(Rebase::Recipient));
            let credit = diff.storage_credit.filter(|c| c.address == *address);
            if let Some(credit) = credit.filter(|_| rebase.is_none() && is_plain_change(account)) {
                // The common case of a hot token's credits: folded plainly, in place.
                if let Some(plain) = self.plain.get_mut(address) {
                    reserve_large(&mut plain.storage, self.storage_room);
                    plain.change_crediting(account, Some(credit));
                    continue;
                }
            }
            let account = match credit {
                Some(credit) => Cow::Owned(self.credit_slot(account, credit)),
                None => Cow::Borrowed(account),
            };
            self.apply(*address, account, rebase, base)?;
        }
        if owns_beneficiary {
            if diff.fee.is_zero() {
                self.credit(U256::ZERO)?;
            } else {
                credits.pending = Some(credits.pending.unwrap_or_default() + diff.fee);
            }
        }
        Ok(())
    }

    /// A transaction's change of an account whose slot it credited (see [`StorageCredit`]),
    /// with the slot rebuilt on its folded value: the last value folded, or else the value
    /// before the block, which is the placeholder (nothing below the transaction wrote it).
    fn credit_slot(&self, account: &Account, credit: StorageCredit) -> Account {
        let address = credit.address;
        let folded = if let Some(plain) = self.plain.get(&address) {
            plain.storage.get(&credit.slot).map(|slot| slot.present_value)
        } else {
            let cache = match self.replayed.get(&address) {
                Some((cache, _)) => Some(cache),
                None => self.main.cache.accounts.get(&address),
            };
            cache
                .and_then(|c| c.account.as_ref())
                .and_then(|a| a.storage.get(&credit.slot))
                .copied()
        };
        let mut account = account.clone();
        if let Some(slot) = account.storage.get_mut(&credit.slot) {
            credit.rebase(slot, folded.unwrap_or(credit.placeholder));
        }
        account
    }

    /// The account's current info.
    fn current_info(&self, address: Address) -> Result<Option<AccountInfo>, ExecutionError> {
        if let Some(plain) = self.plain.get(&address) {
            return Ok(Some(plain.current().clone()));
        }
        Ok(match self.replayed.get(&address) {
            Some((cache, _)) => cache.account_info(),
            None => match self.main.cache.accounts.get(&address) {
                Some(cache) => cache.account_info(),
                None => load_base(self.base, address)?.0,
            },
        })
    }

    /// Applies one transaction's change of an account, as revm's `State::commit` does. A lazily
    /// read account (`lazy`) is first rebuilt on its folded state (see [`rebased_account`]);
    /// `base`, if given, is the account in the parent state (as the transaction read it there).
    fn apply(
        &mut self,
        address: Address,
        account: Cow<'_, Account>,
        lazy: Option<Rebase>,
        base: Option<&Option<AccountInfo>>,
    ) -> Result<(), ExecutionError> {
        if let Some(plain) = self.plain.get_mut(&address) {
            if let Some(rebase) = lazy {
                if plain.rebase_in_place(&account, rebase)? {
                    return Ok(());
                }
            }
            let account = match lazy {
                Some(rebase) => {
                    Cow::Owned(rebased_account(Some(plain.current().clone()), &account, rebase)?)
                }
                None => account,
            };
            if is_plain_change(&account) {
                reserve_large(&mut plain.storage, self.storage_room);
                plain.change(&account);
                return Ok(());
            }
            // No longer plain: replayed from here on.
            let plain = self
                .plain
                .remove(&address)
                .ok_or(EngineFault::Invariant("a plainly folded account vanished"))?;
            let (cache, transition) = plain.into_replayed();
            self.replayed.insert(address, (cache, Some(transition)));
            return self.replay(address, account);
        }
        if let Some((cache, _)) = self.replayed.get(&address) {
            let account = match lazy {
                Some(rebase) => {
                    Cow::Owned(rebased_account(cache.account_info(), &account, rebase)?)
                }
                None => account,
            };
            return self.replay(address, account);
        }
        let main = self.main;
        let (first, account) = if let Some(rebase) =
            lazy.filter(|_| !main.cache.accounts.contains_key(&address))
        {
            // A lazy account is rebuilt on the parent's, its original.
            let (original, cache) = match base {
                Some(info) => (info.clone(), cache_of_base(info)),
                None => load_base(self.base, address)?,
            };
            let account = Cow::Owned(rebased_account(original.clone(), &account, rebase)?);
            let first = if is_plain_change(&account) {
                FirstSeen::Plain(BundleAccount::loaded(original, cache.status))
            } else {
                FirstSeen::Replayed(cache, None)
            };
            (first, account)
        } else if let Some(rebase) = lazy {
            let current = main.cache.accounts.get(&address).and_then(CacheAccount::account_info);
            let account = Cow::Owned(rebased_account(current, &account, rebase)?);
            (first_seen_of(self.base, main, address, &account)?, account)
        } else {
            (first_seen_of(self.base, main, address, &account)?, account)
        };
        match first {
            FirstSeen::Plain(mut plain) => {
                // `first_seen_of` gives a plain fold only for a plain change.
                plain.change(&account);
                self.plain.insert(address, plain);
                Ok(())
            }
            FirstSeen::Replayed(cache, transition) => {
                self.replayed.insert(address, (cache, transition));
                self.replay(address, account)
            }
        }
    }

    /// Applies one change of a replayed account, as revm's `State::commit` does.
    fn replay(
        &mut self,
        address: Address,
        account: Cow<'_, Account>,
    ) -> Result<(), ExecutionError> {
        let Some((cache, folded)) = self.replayed.get_mut(&address) else {
            return Err(EngineFault::Invariant("a replayed account is missing").into());
        };
        let transition = if account.is_selfdestructed() {
            cache.selfdestruct()
        } else if account.is_created() {
            Some(cache.newly_created(account))
        } else if account.is_empty() {
            cache.touch_empty_eip161()
        } else {
            Some(cache.change(account))
        };
        if let Some(transition) = transition {
            add_transition(folded, transition);
        }
        Ok(())
    }

    /// Credits `fee` to the beneficiary through a revm journal over its folded state, exactly as
    /// revm's `reward_beneficiary` would have inside the transaction (touch rules included).
    fn credit(&mut self, fee: U256) -> Result<(), ExecutionError> {
        let beneficiary = self.beneficiary;
        // The common case, an existing beneficiary folded plainly: the journal would load it,
        // add the fee and commit it through `change`; do just that. A zero fee (a mining pool's
        // own payouts at gas price zero) only touches it, which changes nothing of an account
        // that is not empty.
        if let Some(info) = self.plain.get_mut(&beneficiary).and_then(|p| p.info.as_mut()) {
            if !info.is_empty() {
                if fee.is_zero() {
                    return Ok(());
                }
                if let Some(balance) = info.balance.checked_add(fee) {
                    info.balance = balance;
                    return Ok(());
                }
            }
        }
        let current = self.current_info(beneficiary)?;
        let db = OneAccountDb { address: beneficiary, info: current };
        let mut journal: Journal<OneAccountDb> = Journal::new(db);
        journal.set_spec_id(self.spec_id);
        journal
            .load_account_mut(beneficiary)
            .map_err(|_| EngineFault::Invariant("the fee journal read another account"))?
            .incr_balance(fee);
        let changes = journal.finalize();
        for (address, account) in changes {
            if account.is_touched() {
                self.apply(address, Cow::Owned(account), None, None)?;
            }
        }
        Ok(())
    }

    /// Splits off the main-bound accounts and builds the bundle of the rest.
    fn into_output(self) -> ShardOutput {
        let Self { mut plain, replayed, main, .. } = self;
        let mut to_main = Vec::new();
        // The few accounts that go back to the block `State`.
        for address in main.main_bound {
            if let Some(account) = plain.remove(address) {
                let (cache, transition) = account.into_replayed();
                to_main.push((*address, cache, Some(transition)));
            }
        }
        let mut bundle = BundleState::default();
        let mut contracts = Vec::new();
        let mut state_size = 0;
        plain.retain(|_, account| {
            if !account.conclude() {
                return false;
            }
            // revm's `TransitionAccount::has_new_contract`: an account that did not exist (its
            // empty code too) or an EIP-7702 delegation changes the code hash.
            if let Some(info) = &account.info {
                let previous = account.original_info.as_ref().map(|i| i.code_hash);
                if previous != Some(info.code_hash) {
                    if let Some(code) = &info.code {
                        contracts.push((info.code_hash, code.clone()));
                    }
                }
            }
            state_size += account.size_hint();
            true
        });
        bundle.state = plain;
        bundle.contracts.extend(contracts);
        bundle.state_size = state_size;
        let mut transitions = TransitionState::default();
        for (address, (cache, transition)) in replayed {
            if main.is_bound(&address) {
                to_main.push((address, cache, transition));
            } else if let Some(transition) = transition {
                transitions.transitions.insert(address, transition);
            }
        }
        if !transitions.transitions.is_empty() {
            let mut replayed = BundleState::default();
            replayed.apply_transitions_and_create_reverts(transitions, BundleRetention::PlainState);
            bundle.state.extend(replayed.state);
            bundle.contracts.extend(replayed.contracts);
            bundle.state_size += replayed.state_size;
        }
        ShardOutput { bundle, to_main }
    }
}

/// The fold state of an account seen for the first time, as revm's `State` would hold it
/// before this block's first change of it: the block `State`'s entry if the pre-execution
/// changes loaded it; otherwise the parent state's account (loaded, or for a plain change,
/// as the transaction itself loaded it: nothing changed it earlier in the block).
fn first_seen_of<DB>(
    base: &DB,
    main: &MainView<'_>,
    address: Address,
    account: &Account,
) -> Result<FirstSeen, ExecutionError>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    if let Some(cache) = main.cache.accounts.get(&address) {
        let transition = main.transitions.transitions.get(&address).cloned();
        return Ok(FirstSeen::Replayed(cache.clone(), transition));
    }
    if is_plain_change(account) {
        // Nothing changed the account earlier in the block, so the transaction loaded it as it
        // is in the parent state. For the few accounts the block `State` takes back (the
        // beneficiary, say, whose view includes lower fees) the parent state is asked instead.
        let (original, original_status) = if main.is_bound(&address) {
            let (original, cache) = load_base(base, address)?;
            (original, cache.status)
        } else {
            let original = (!account.is_loaded_as_not_existing()).then(|| account.original_info());
            let status = match &original {
                None => AccountStatus::LoadedNotExisting,
                Some(info) if info.is_empty() => AccountStatus::LoadedEmptyEIP161,
                Some(_) => AccountStatus::Loaded,
            };
            (original, status)
        };
        return Ok(FirstSeen::Plain(BundleAccount::loaded(original, original_status)));
    }
    Ok(FirstSeen::Replayed(load_base(base, address)?.1, None))
}

/// How an account's fold starts (see [`first_seen_of`]).
enum FirstSeen {
    Plain(BundleAccount),
    Replayed(CacheAccount, Option<TransitionAccount>),
}

/// `address` as loaded from the parent state, as revm's `State` loads it: its info and its
/// cache account.
fn load_base<DB>(
    base: &DB,
    address: Address,
) -> Result<(Option<AccountInfo>, CacheAccount), ExecutionError>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    let info = base
        .basic_ref(address)
        .map_err(|e| ExecutionError::StateRead(format!("loading {address}: {e}")))?;
    let cache = cache_of_base(&info);
    Ok((info, cache))
}

/// The cache account revm's `State` makes of an account loaded from the parent state.
fn cache_of_base(info: &Option<AccountInfo>) -> CacheAccount {
    match info {
        None => CacheAccount::new_loaded_not_existing(),
        Some(info) if info.is_empty() => CacheAccount::new_loaded_empty_eip161(HashMap::default()),
        Some(info) => CacheAccount::new_loaded(info.clone(), HashMap::default()),
    }
}

/// revm's `TransitionState::add_transition` for one account.
fn add_transition(
    folded: &mut Option<TransitionAccount>,
    transition: TransitionAccount<Option<Cow<'_, EvmStorage>>>,
) {
    match folded {
        Some(folded) => folded.update(transition),
        // The first transition keeps only the slots it changed, as revm's does.
        None => {
            *folded = Some(transition.map_storage(|storage| {
                storage
                    .map(|storage| {
                        storage
                            .iter()
                            .filter(|(_, slot)| slot.is_changed())
                            .map(|(k, slot)| (*k, StorageSlot::from(slot.clone())))
                            .collect()
                    })
                    .unwrap_or_default()
            }));
        }
    }
}

/// The beneficiary's fee credits, batched: a run of positive credits ends in the same
/// beneficiary state as crediting them one by one, as long as it is flushed before a transaction
/// that writes the beneficiary itself. A zero credit is applied alone, in place: touching an
/// empty beneficiary has its own EIP-161 effect.
#[derive(Debug)]
struct BeneficiaryCredits {
    pending: Option<U256>,
}

impl BeneficiaryCredits {
    fn flush<DB>(&mut self, folder: &mut ShardFolder<'_, DB>) -> Result<(), ExecutionError>
    where
        DB: DatabaseRef,
        DB::Error: std::fmt::Display,
    {
        match self.pending.take() {
            Some(sum) => folder.credit(sum),
            None => Ok(()),
        }
    }
}

/// A database holding one account (the beneficiary as folded so far), for the fee journal.
#[derive(Debug)]
struct OneAccountDb {
    address: Address,
    info: Option<AccountInfo>,
}

/// A fee journal asked for something other than the beneficiary's account.
#[derive(Debug, thiserror::Error)]
#[error("fee credit read an unexpected location")]
struct UnexpectedRead;

impl revm::database_interface::DBErrorMarker for UnexpectedRead {}

impl Database for OneAccountDb {
    type Error = UnexpectedRead;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        if address == self.address {
            Ok(self.info.clone())
        } else {
            Err(UnexpectedRead)
        }
    }

    fn code_by_hash(&mut self, _code_hash: B256) -> Result<Bytecode, Self::Error> {
        Err(UnexpectedRead)
    }

    fn storage(&mut self, _: Address, _: StorageKey) -> Result<StorageValue, Self::Error> {
        Err(UnexpectedRead)
    }

    fn block_hash(&mut self, _number: u64) -> Result<B256, Self::Error> {
        Err(UnexpectedRead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::state::EvmStorageSlot;

    /// A diff of `n` accounts, every third one untouched, the first touched one with two
    /// changed slots.
    fn diff(n: usize) -> EvmState {
        let mut state = EvmState::default();
        for i in 0..n {
            let mut account = Account::default();
            if i % 3 != 2 {
                account.mark_touch();
            }
            if i == 0 {
                for slot in 1..=2u64 {
                    let id = revm::state::TransactionId::new(0).expect("zero is an id");
                    let value = EvmStorageSlot::new_changed(U256::ZERO, U256::from(slot), id);
                    account.storage.insert(U256::from(slot), value);
                }
            }
            state.insert(Address::with_last_byte(i as u8).create(i as u64), account);
        }
        state
    }

    /// The shards `state`'s touched accounts fall in, with the beneficiary's.
    fn touched_mask(state: &EvmState, shards: usize, beneficiary_shard: usize) -> u64 {
        state
            .iter()
            .filter(|(_, account)| account.is_touched())
            .fold(1 << beneficiary_shard, |mask, (address, _)| {
                mask | 1 << shard_of(address, shards)
            })
    }

    #[test]
    fn a_diff_layout_names_the_shard_of_each_touched_account_in_map_order() {
        let shards = 4;
        let state = diff(9);
        let (layout, mask) = DiffLayout::of(&state, |a| shard_of(a, shards) as u8, 3);
        assert_eq!(mask, touched_mask(&state, shards, 3));
        // What the fold reads: the map moved into an outcome, unchanged.
        let outcome = Box::new(state);
        let owners = layout.owners(outcome.len()).expect("nine accounts get owners");
        assert_eq!(owners.len(), 9);
        for ((address, account), &owner) in outcome.iter().zip(owners) {
            if account.is_touched() {
                assert_eq!(usize::from(owner), shard_of(address, shards), "{address}");
            } else {
                assert_eq!(owner, NOT_FOLDED, "{address}");
            }
        }
        // Each shard prefetches its own accounts' lines (and their changed slots) only.
        let lines: Vec<(usize, u8)> = layout
            .lines
            .iter()
            .zip(&layout.line_owner)
            .filter(|(&line, _)| line != 0)
            .map(|(&line, &owner)| (line, owner))
            .collect();
        assert_eq!(lines.len(), DIFF_LINES, "six touched accounts and two slots");
        for (address, account) in outcome.iter().filter(|(_, a)| a.is_touched()) {
            let at = std::ptr::from_ref(account) as usize;
            let &(line, owner) =
                lines.iter().find(|(line, _)| line & !7 == at).expect("every account's lines");
            assert_eq!(line & 7, 3);
            assert_eq!(usize::from(owner), shard_of(address, shards));
            for slot in account.storage.values() {
                let at = std::ptr::from_ref(slot) as usize;
                let &(line, slot_owner) =
                    lines.iter().find(|(line, _)| line & !7 == at).expect("its slots' lines");
                assert_eq!((line & 7, slot_owner), (2, owner));
            }
        }
        // A diff the layout was not made for (another length) gets no owners.
        assert_eq!(layout.owners(8), None);
    }

    #[test]
    fn a_diff_too_large_for_owners_is_checked_account_by_account() {
        let state = diff(DIFF_ENTRIES + 1);
        let (layout, mask) = DiffLayout::of(&state, |a| shard_of(a, 8) as u8, 0);
        assert_eq!(mask, touched_mask(&state, 8, 0));
        assert_eq!(layout.owners(state.len()), None);
        assert!(layout.owner.iter().all(|&owner| owner == NOT_FOLDED));
        // Still prefetched.
        assert!(layout.lines.iter().all(|&line| line != 0));
        // No note at all: nothing to skip, nothing to prefetch, whatever the diff's size
        // (`UNTAGGED` is also the length of a diff of 255 accounts).
        let none = DiffLayout::default();
        for len in [0, 1, DIFF_ENTRIES, usize::from(UNTAGGED), 1000] {
            assert_eq!(none.owners(len), None, "{len} accounts");
        }
        let large = diff(usize::from(UNTAGGED));
        assert_eq!(DiffLayout::of(&large, |_| 0, 0).0.owners(large.len()), None);
        assert!(none.lines.iter().all(|&line| line == 0));
    }
}
