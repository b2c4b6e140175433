//! Phase 2: committing the transactions' final state diffs into the block's revm `State`.
//!
//! revm's `State` commits a transaction account by account: each account's cache entry and its
//! transition (what `merge_transitions` turns into the `BundleState`) depend only on that
//! account's own sequence of changes. So the commit of a block can be split by account: every
//! shard gets its own `State`, commits in transaction order the accounts that hash to it, and the
//! shards' caches and transitions, disjoint by construction, are united afterwards into the
//! block's `State`. Each account goes through exactly the revm code, in exactly the order, of
//! the sequential commit, so the result is bit-identical; the shards run on the engine's workers.
//!
//! The two account-level fix-ups of the parallel engine live here too, and are per account as
//! well: a lazily credited transfer recipient is rebuilt from its committed state
//! ([`rebase_account`]), and the beneficiary's fees are credited through a revm journal,
//! batched ([`BeneficiaryCredits`]).

use super::credit_beneficiary;
use crate::ExecutionError;
use alloy_primitives::{Address, U256};
use revm::{
    database::{states::bundle_state::BundleRetention, BundleState, State, TransitionState},
    primitives::hardfork::SpecId,
    state::{Account, EvmState},
    Database, DatabaseCommit, DatabaseRef,
};
use std::sync::Mutex;

/// One transaction's committable outcome.
#[derive(Debug)]
pub(super) struct TxDiff {
    /// The final state diff (without the beneficiary's fee).
    pub(super) changes: EvmState,
    /// The fee owed to the beneficiary.
    pub(super) fee: U256,
    /// The lazily credited transfer recipient, if any (see `TxDb::lazy_basic`).
    pub(super) lazy_recipient: Option<Address>,
}

/// Rebuilds a lazily credited recipient's account from the commit state: the worker saw a zero
/// placeholder balance, so `account` holds only the credit; the result is what revm's journal
/// would have loaded and credited.
pub(super) fn rebase_account<DB>(
    state: &mut DB,
    to: Address,
    account: &mut Account,
) -> Result<(), ExecutionError>
where
    DB: Database,
    DB::Error: std::fmt::Display,
{
    if !account.is_touched() {
        return Ok(());
    }
    let credit = account.info.balance;
    let current =
        state.basic(to).map_err(|e| ExecutionError::Internal(format!("loading {to}: {e}")))?;
    let mut rebased = match current {
        Some(info) => Account::from(info),
        None => Account::new_not_existing(revm::state::TransactionId::ZERO),
    };
    rebased.info.balance += credit;
    rebased.mark_touch();
    *account = rebased;
    Ok(())
}

/// The beneficiary's fee credits, batched: a run of positive credits ends in the same
/// beneficiary state as crediting them one by one, as long as it is flushed before a transaction
/// that writes the beneficiary itself. A zero credit is applied alone, in place: touching an
/// empty beneficiary has its own EIP-161 effect.
#[derive(Debug)]
struct BeneficiaryCredits {
    beneficiary: Address,
    spec_id: SpecId,
    pending: Option<U256>,
}

impl BeneficiaryCredits {
    /// Before committing a transaction's changes of the beneficiary (if `touched`) with `fee`.
    fn before<DB>(&mut self, state: &mut DB, touched: bool, fee: U256) -> Result<(), ExecutionError>
    where
        DB: Database + DatabaseCommit,
        DB::Error: std::fmt::Display,
    {
        if touched || fee.is_zero() {
            self.flush(state)?;
        }
        Ok(())
    }

    /// After committing the transaction's changes.
    fn after<DB>(&mut self, state: &mut DB, fee: U256) -> Result<(), ExecutionError>
    where
        DB: Database + DatabaseCommit,
        DB::Error: std::fmt::Display,
    {
        if fee.is_zero() {
            credit_beneficiary(state, self.spec_id, self.beneficiary, U256::ZERO)
        } else {
            self.pending = Some(self.pending.unwrap_or_default() + fee);
            Ok(())
        }
    }

    fn flush<DB>(&mut self, state: &mut DB) -> Result<(), ExecutionError>
    where
        DB: Database + DatabaseCommit,
        DB::Error: std::fmt::Display,
    {
        match self.pending.take() {
            Some(sum) => credit_beneficiary(state, self.spec_id, self.beneficiary, sum),
            None => Ok(()),
        }
    }
}

/// Commits `diffs` in order into `state`, on one thread.
pub(super) fn commit_in_order<DB>(
    state: &mut DB,
    diffs: Vec<TxDiff>,
    spec_id: SpecId,
    beneficiary: Address,
) -> Result<(), ExecutionError>
where
    DB: Database + DatabaseCommit,
    DB::Error: std::fmt::Display,
{
    let mut credits = BeneficiaryCredits { beneficiary, spec_id, pending: None };
    for TxDiff { mut changes, fee, lazy_recipient } in diffs {
        if let Some(to) = lazy_recipient {
            if let Some(account) = changes.get_mut(&to) {
                rebase_account(state, to, account)?;
            }
        }
        let touched = changes.get(&beneficiary).is_some_and(Account::is_touched);
        credits.before(state, touched, fee)?;
        state.commit(changes);
        credits.after(state, fee)?;
    }
    credits.flush(state)
}

/// One account's change in one transaction, routed to its shard.
#[derive(Debug)]
struct Entry {
    tx: u32,
    address: Address,
    account: Account,
    lazy: bool,
}

/// A shard's state and the changes it commits.
type ShardWork<DB> = (State<DB>, Vec<Entry>);

/// The shard of an account (addresses are hashes: their last byte is uniform).
fn shard_of(address: &Address, shards: usize) -> usize {
    address.0[19] as usize % shards
}

/// Commits `diffs` into `state` split by account over `pool`'s workers (see the module docs).
pub(super) fn commit_sharded<DB>(
    state: &mut State<DB>,
    diffs: Vec<TxDiff>,
    spec_id: SpecId,
    beneficiary: Address,
    pool: &rayon::ThreadPool,
) -> Result<(), ExecutionError>
where
    DB: DatabaseRef + Database + Clone + Send + Sync,
    <DB as Database>::Error: std::fmt::Display,
{
    let shards = pool.current_num_threads().max(1);
    let mut entries: Vec<Vec<Entry>> = (0..shards).map(|_| Vec::new()).collect();
    let mut fees = Vec::with_capacity(diffs.len());
    for (tx, TxDiff { changes, fee, lazy_recipient }) in diffs.into_iter().enumerate() {
        fees.push(fee);
        for (address, account) in changes {
            let lazy = lazy_recipient == Some(address);
            entries[shard_of(&address, shards)].push(Entry {
                tx: tx as u32,
                address,
                account,
                lazy,
            });
        }
    }
    // Each shard starts from what the block's state already holds for its accounts (the
    // pre-execution changes): its cache entries and transitions move there and back.
    let mut shard_states: Vec<State<DB>> = (0..shards)
        .map(|_| {
            let mut shard =
                State::builder().with_database(state.database.clone()).with_bundle_update().build();
            shard.cache.contracts = state.cache.contracts.clone();
            shard
        })
        .collect();
    for (address, account) in state.cache.accounts.drain() {
        shard_states[shard_of(&address, shards)].cache.accounts.insert(address, account);
    }
    if let Some(transitions) = state.transition_state.as_mut() {
        for (address, transition) in transitions.transitions.drain() {
            let shard = &mut shard_states[shard_of(&address, shards)];
            shard.transition_state.get_or_insert_default().transitions.insert(address, transition);
        }
    }
    let work: Vec<Mutex<Option<ShardWork<DB>>>> =
        shard_states.into_iter().zip(entries).map(|w| Mutex::new(Some(w))).collect();
    let beneficiary_shard = shard_of(&beneficiary, shards);
    let results: Vec<Result<Option<State<DB>>, ExecutionError>> = pool.broadcast(|ctx| {
        let taken = work.get(ctx.index()).and_then(|w| w.lock().ok()?.take());
        let Some((mut shard, entries)) = taken else { return Ok(None) };
        let credits = (ctx.index() == beneficiary_shard).then_some(BeneficiaryCredits {
            beneficiary,
            spec_id,
            pending: None,
        });
        commit_shard(&mut shard, entries, &fees, credits)?;
        Ok(Some(shard))
    });
    let mut committed = 0;
    for result in results {
        let Some(shard) = result? else { continue };
        committed += 1;
        state.cache.accounts.extend(shard.cache.accounts);
        state.cache.contracts.extend(shard.cache.contracts);
        if let Some(transitions) = shard.transition_state {
            state
                .transition_state
                .get_or_insert_default()
                .transitions
                .extend(transitions.transitions);
        }
    }
    if committed != shards {
        return Err(ExecutionError::Internal(format!("{committed} of {shards} commit shards ran")));
    }
    Ok(())
}

/// Commits one shard's entries in transaction order; the beneficiary's shard also credits the
/// fees of every transaction.
fn commit_shard<DB>(
    shard: &mut State<DB>,
    entries: Vec<Entry>,
    fees: &[U256],
    mut credits: Option<BeneficiaryCredits>,
) -> Result<(), ExecutionError>
where
    DB: Database,
    DB::Error: std::fmt::Display,
{
    let every_tx = credits.is_some();
    let mut entries = entries.into_iter().peekable();
    let mut changes: Vec<(Address, Account)> = Vec::new();
    let mut commit_tx = |shard: &mut State<DB>, tx: u32, changes: &mut Vec<(Address, Account)>| {
        let Some(credits) = credits.as_mut() else {
            shard.commit_iter(&mut changes.drain(..));
            return Ok(());
        };
        let fee = fees[tx as usize];
        let touched = changes.iter().any(|(a, acc)| *a == credits.beneficiary && acc.is_touched());
        credits.before(shard, touched, fee)?;
        if !changes.is_empty() {
            shard.commit_iter(&mut changes.drain(..));
        }
        credits.after(shard, fee)
    };
    let mut tx = 0u32;
    while (tx as usize) < fees.len() {
        if !every_tx {
            // Jump to this shard's next transaction.
            match entries.peek() {
                Some(entry) => tx = entry.tx,
                None => break,
            }
        }
        while let Some(entry) = entries.next_if(|e| e.tx == tx) {
            let Entry { address, mut account, lazy, .. } = entry;
            if lazy {
                rebase_account(shard, address, &mut account)?;
            }
            changes.push((address, account));
        }
        commit_tx(shard, tx, &mut changes)?;
        tx += 1;
    }
    match credits.as_mut() {
        Some(credits) => credits.flush(shard),
        None => Ok(()),
    }
}

/// `state.merge_transitions(BundleRetention::PlainState)` split by account over `pool`'s workers:
/// each account's transition becomes its bundle account independently of the others (plain
/// state: no reverts), so the shards' bundles are united. `state` must hold no bundle yet.
pub(super) fn merge_transitions_sharded<DB>(
    state: &mut State<DB>,
    pool: &rayon::ThreadPool,
) -> Result<(), ExecutionError> {
    let shards = pool.current_num_threads().max(1);
    let Some(transitions) = state.transition_state.as_mut().map(TransitionState::take) else {
        return Ok(());
    };
    if !state.bundle_state.is_empty() || shards == 1 {
        state
            .bundle_state
            .apply_transitions_and_create_reverts(transitions, BundleRetention::PlainState);
        return Ok(());
    }
    let mut parts: Vec<TransitionState> = (0..shards).map(|_| TransitionState::default()).collect();
    for (address, transition) in transitions.transitions {
        parts[shard_of(&address, shards)].transitions.insert(address, transition);
    }
    let parts: Vec<Mutex<Option<TransitionState>>> =
        parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    let bundles: Vec<Option<BundleState>> = pool.broadcast(|ctx| {
        let part = parts.get(ctx.index()).and_then(|p| p.lock().ok()?.take())?;
        let mut bundle = BundleState::default();
        bundle.apply_transitions_and_create_reverts(part, BundleRetention::PlainState);
        Some(bundle)
    });
    if bundles.iter().any(Option::is_none) {
        return Err(ExecutionError::Internal("a merge shard did not run".to_string()));
    }
    let bundle = &mut state.bundle_state;
    for part in bundles.into_iter().flatten() {
        bundle.state.extend(part.state);
        bundle.contracts.extend(part.contracts);
        bundle.state_size += part.state_size;
    }
    // The one (empty, plain-state retention) revert entry the block's merge appends.
    bundle.reverts.push(Vec::new());
    Ok(())
}
