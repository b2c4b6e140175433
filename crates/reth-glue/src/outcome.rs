//! Block-STM's outcome of one transaction, turned into exactly what revm's sequential execution
//! of it on the committed prefix returns: its result and its **one** state diff, the
//! beneficiary's fee included.
//!
//! The workers' handler computes the fee but does not credit it (see
//! `velarium_executor::SpeculativeTx::fee`). revm credits it at the end of the transaction, in
//! its journal, with `reward_beneficiary`: `journal.load_account_mut(beneficiary)` then
//! `incr_balance(fee)`, before `finalize` hands the diff out. [`merge_fee`] replays exactly that,
//! with revm's own journal code, on a journal that already holds the transaction's diff and reads
//! through the block's `State` (which holds every earlier transaction):
//!
//! * beneficiary in the diff (the transaction touched or read it): revm's journal finds it
//!   loaded, warms it if a reverted frame left it cold (then re-baselining `original_info` to
//!   its unchanged current value, as revm does), touches it and adds the fee, even a zero fee;
//! * beneficiary not in the diff: the journal loads it from the `State`, so `original_info` is
//!   its value before this transaction (every earlier fee included), or, if it does not exist,
//!   marks it loaded-as-not-existing; then touches it and adds the fee;
//! * `finalize` applies revm's pre-Spurious-Dragon normalisation of empty touched accounts
//!   (EIP-161 rules) to the whole diff, as it does once per sequential transaction. The
//!   workers' own `finalize` already normalised the diff without the fee: that is idempotent for
//!   every account but one, a beneficiary that did not exist, stayed empty in the transaction
//!   and was marked created by it; that mark is undone first so that the fee decides, as in
//!   revm. From Spurious Dragon on `finalize` changes no account.
//!
//! Committing the merged diff once (alloy-evm's `commit_transaction`) therefore makes `State`
//! call the state hook once per transaction with what sequential execution would have given it.

use alloy_primitives::{Address, U256};
use revm::{
    context::{
        journaled_state::account::JournaledAccountTr,
        result::{EVMError, ResultAndState},
        JournalTr,
    },
    primitives::hardfork::SpecId,
    state::{EvmState, TransactionId},
    Database, Journal,
};
use velarium_executor::{ExecutionError, SpeculativeTx, TxDbError};

/// Transaction `outcome` as sequential execution would have produced it on `db` (the block's
/// `State` holding every earlier transaction): result and state diff with the fee merged.
///
/// The outer error is the engine's (`db` failed, or an engine invariant broke); the inner one is
/// the transaction's (it is invalid, or its own state read failed).
pub(crate) fn materialise<DB>(
    db: &mut DB,
    spec: SpecId,
    beneficiary: Address,
    outcome: SpeculativeTx,
) -> Result<Result<ResultAndState, EVMError<TxDbError>>, ExecutionError>
where
    DB: Database,
    DB::Error: std::fmt::Display,
{
    let fee = outcome.fee();
    Ok(match outcome.into_result(db)? {
        Ok(ResultAndState { result, state }) => {
            Ok(ResultAndState::new(result, merge_fee(db, spec, beneficiary, fee, state)?))
        }
        Err(err) => Err(err),
    })
}

/// Credits `fee` to `beneficiary` inside the transaction diff `state`, as revm's
/// `reward_beneficiary` would have before the diff was finalised (see the module docs).
pub(crate) fn merge_fee<DB>(
    db: &mut DB,
    spec: SpecId,
    beneficiary: Address,
    fee: U256,
    mut state: EvmState,
) -> Result<EvmState, ExecutionError>
where
    DB: Database,
    DB::Error: std::fmt::Display,
{
    if let Some(account) = state.get_mut(&beneficiary) {
        if !spec.is_enabled_in(SpecId::SPURIOUS_DRAGON)
            && account.is_created()
            && !account.is_created_locally()
            && account.is_loaded_as_not_existing()
            && account.is_touched()
            && account.is_empty()
            && !account.is_selfdestructed()
        {
            // Only the workers' `finalize` marks an account created without creating it
            // locally: undo it, the `finalize` below decides with the fee.
            account.unmark_created();
        }
        // The transaction's journal loaded it at its transaction id (0: `finalize` resets the
        // id before every transaction), so only a cold mark makes revm re-warm it.
        account.transaction_id = TransactionId::ZERO;
    }
    let mut journal: Journal<&mut DB> = Journal::new(db);
    journal.set_spec_id(spec);
    journal.inner.state = state;
    journal
        .load_account_mut(beneficiary)
        .map_err(|e| ExecutionError::StateRead(format!("loading beneficiary {beneficiary}: {e}")))?
        .incr_balance(fee);
    Ok(journal.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::{
        context::{
            result::{EVMError, HaltReason},
            BlockEnv, Context, ContextTr, TxEnv,
        },
        database::{CacheDB, EmptyDB},
        handler::{FrameResult, Handler, MainnetContext, MainnetEvm},
        primitives::TxKind,
        state::{Account, AccountInfo, AccountStatus},
        ExecuteEvm, MainBuilder, MainContext,
    };
    use std::convert::Infallible;

    const SENDER: Address = Address::repeat_byte(0x51);
    const BENEFICIARY: Address = Address::repeat_byte(0xbe);

    type Db = CacheDB<EmptyDB>;

    /// revm's mainnet handler without the fee credit, as the workers run it.
    struct NoReward;

    impl Handler for NoReward {
        type Evm = MainnetEvm<MainnetContext<Db>>;
        type Error = EVMError<Infallible>;
        type HaltReason = HaltReason;

        fn reward_beneficiary(
            &self,
            _evm: &mut Self::Evm,
            _result: &mut FrameResult,
        ) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// A state diff's observable parts, as the state hook's consumers read them.
    fn view(state: &EvmState) -> Vec<(Address, AccountInfo, AccountInfo, AccountStatus)> {
        let mut v: Vec<_> = state
            .iter()
            .map(|(a, acc)| (*a, acc.info.clone(), acc.original_info(), acc.status))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// A transfer of `value` from `SENDER` to `to` run by revm's mainnet handler (which credits
    /// the fee) must give the diff that the workers' handler (which does not) gives once
    /// [`merge_fee`] merged the fee.
    fn check(spec: SpecId, db: Db, beneficiary: Address, to: Address, value: u64, gas_price: u128) {
        let tx = TxEnv {
            caller: SENDER,
            kind: TxKind::Call(to),
            value: U256::from(value),
            gas_limit: 21_000,
            gas_price,
            ..Default::default()
        };
        let evm = |db: Db| {
            Context::mainnet()
                .with_db(db)
                .modify_cfg_chained(|cfg| cfg.set_spec_and_mainnet_gas_params(spec))
                .with_block(BlockEnv { beneficiary, basefee: 0, ..Default::default() })
                .build_mainnet()
        };
        let want = evm(db.clone()).transact(tx.clone()).unwrap().state;
        let mut worker = evm(db.clone());
        worker.ctx.tx = tx;
        NoReward.run(&mut worker).unwrap();
        let without = worker.ctx.journal_mut().finalize();
        let mut db = db;
        let fee = U256::from(gas_price * 21_000);
        let got = merge_fee(&mut db, spec, beneficiary, fee, without).unwrap();
        assert_eq!(view(&got), view(&want), "{spec:?}, to {to}, value {value}, price {gas_price}");
    }

    fn funded() -> Db {
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            SENDER,
            AccountInfo { balance: U256::from(10u64.pow(18)), ..Default::default() },
        );
        db
    }

    #[test]
    fn merged_fee_equals_revm_reward_beneficiary() {
        let other = Address::repeat_byte(0x77);
        for spec in [SpecId::FRONTIER, SpecId::HOMESTEAD, SpecId::SPURIOUS_DRAGON, SpecId::LONDON] {
            for gas_price in [0, 1, 7] {
                for value in [0, 5] {
                    for to in [other, BENEFICIARY, SENDER] {
                        // The beneficiary does not exist.
                        check(spec, funded(), BENEFICIARY, to, value, gas_price);
                        // It exists, with a balance.
                        let mut db = funded();
                        let info = AccountInfo { balance: U256::from(3), ..Default::default() };
                        db.insert_account_info(BENEFICIARY, info);
                        check(spec, db, BENEFICIARY, to, value, gas_price);
                        // It exists, empty.
                        let mut db = funded();
                        db.insert_account_info(BENEFICIARY, AccountInfo::default());
                        check(spec, db, BENEFICIARY, to, value, gas_price);
                        // It is the sender.
                        check(spec, funded(), SENDER, to, value, gas_price);
                    }
                }
            }
        }
    }

    #[test]
    fn a_fee_merged_into_an_absent_beneficiary_loads_it_from_the_state() {
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            BENEFICIARY,
            AccountInfo { balance: U256::from(40), nonce: 2, ..Default::default() },
        );
        let merged =
            merge_fee(&mut db, SpecId::CANCUN, BENEFICIARY, U256::from(2), EvmState::default())
                .unwrap();
        let account: &Account = &merged[&BENEFICIARY];
        assert_eq!(account.info.balance, U256::from(42));
        assert_eq!(account.original_info().balance, U256::from(40));
        assert_eq!(account.status, AccountStatus::Touched);
    }
}
