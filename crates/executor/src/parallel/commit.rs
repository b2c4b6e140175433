//! Phase 2: committing the transactions' final state diffs, in order, into the block's revm
//! `State`, with the parallel engine's two account-level fix-ups: a lazily credited transfer
//! recipient is rebuilt from its committed state ([`rebase_account`]), and the beneficiary's fees
//! are credited through a revm journal, batched ([`BeneficiaryCredits`]).
//!
//! Splitting this commit by account over the workers (each account's cache entry and transition
//! depend only on its own changes, so per-account `State`s united afterwards give the same
//! bundle) was tried and measured: moving the diffs into shards and uniting the caches cost more
//! than the commit itself (2,000 transfers: 4.7 ms vs 2.7 ms; 2,000 Uniswap swaps: 16.6 ms vs
//! 10.9 ms at 2 threads), so the commit stays on one thread.

use super::credit_beneficiary;
use crate::ExecutionError;
use alloy_primitives::{Address, U256};
use revm::{
    primitives::hardfork::SpecId,
    state::{Account, EvmState},
    Database, DatabaseCommit,
};

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
