//! Plain value transfers without the EVM.
//!
//! Most transactions of a block of payments move ether from one account without code to another:
//! no input, no access list, no authorizations. revm still runs its whole handler for each (the
//! journal, the first call frame, the precompile lookup, the journal's state map), about a third
//! of the engine's time per transfer. [`execute`] builds the same outcome directly: the sender
//! and the recipient read once through the worker's database (so multi-version memory records
//! the reads exactly as for revm), revm's own functions for every rule that decides the result
//! (environment checks, intrinsic gas, the sender's nonce, code and balance checks and the fee
//! it is charged, the refund and the EIP-7623 floor), and the two accounts of the state diff as
//! revm's journal leaves them (status, original info).
//!
//! Anything else (a recipient with code or a delegation, a sender with code, a missing sender, a
//! transaction revm would reject, an access list, blob or authorization transactions, Amsterdam's
//! gas rules, fee or balance checks switched off) is left to revm: [`execute`] returns `None`
//! before it changes anything, and the worker runs the transaction through the EVM as usual.
//!
//! With [`set_checked`] on (the conformance and replay runs of the test command turn it on with
//! `VELARIUM_CHECK_TRANSFERS=1`), every transfer done here is run through revm as well and the
//! two outcomes compared; a difference panics the worker, an engine fault that fails the tests.

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    context::{
        result::{EVMError, ExecutionResult, HaltReason, Output, SuccessReason},
        ContextTr, TxEnv,
    },
    context_interface::{Block as _, Cfg as _, Transaction as _},
    handler::{
        handle_reservoir_remaining_gas, post_execution, pre_execution, validation, MainnetContext,
    },
    interpreter::{Gas, GasTracker, InitialAndFloorGas, InstructionResult},
    primitives::{hardfork::SpecId, TxKind, KECCAK_EMPTY},
    state::{Account, AccountInfo, Bytecode, EvmState},
    Database,
};
use std::sync::atomic::{AtomicBool, Ordering};

/// A plain transfer's outcome: what revm's run and the journal's `finalize` return, and the fee
/// owed to the beneficiary (see `handler.rs`).
pub(super) struct Transfer {
    pub(super) result: ExecutionResult<HaltReason>,
    pub(super) state: EvmState,
    pub(super) fee: U256,
}

/// Whether every transfer done here is checked against revm (see the module docs).
static CHECKED: AtomicBool = AtomicBool::new(false);

/// Turns the check of every plain transfer against revm on or off (for tests; it doubles the
/// cost of each transfer).
pub fn set_checked(on: bool) {
    CHECKED.store(on, Ordering::Relaxed);
}

/// Whether transfers are checked: [`set_checked`], or `VELARIUM_CHECK_TRANSFERS=1` in the
/// environment when the first block ran.
pub(super) fn checked() -> bool {
    static FROM_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    CHECKED.load(Ordering::Relaxed)
        || *FROM_ENV.get_or_init(|| {
            std::env::var("VELARIUM_CHECK_TRANSFERS").is_ok_and(|v| !v.is_empty() && v != "0")
        })
}

/// The recipient of `tx` if it has the shape of a plain transfer this module may execute (the
/// state decides the rest): a call with value, no input, no access list, no authorizations and
/// no blobs, of a legacy, EIP-2930 or EIP-1559 transaction, to another account than the sender
/// and the beneficiary, outside the precompiles' range.
fn shaped(tx: &TxEnv, beneficiary: Address) -> Option<Address> {
    let TxKind::Call(to) = tx.kind else { return None };
    let plain = tx.tx_type <= 2
        && !tx.value.is_zero()
        && tx.data.is_empty()
        && tx.access_list.0.is_empty()
        && tx.authorization_list.is_empty()
        && tx.blob_hashes.is_empty()
        && to != tx.caller
        && to != beneficiary
        && to.0[..18].iter().any(|b| *b != 0);
    plain.then_some(to)
}

/// What [`execute`] did with a transaction.
pub(super) enum Plain<E> {
    /// Not a plain transfer by its shape or the block's rules: nothing was read.
    Skipped,
    /// The state makes it the EVM's (see the module docs): its accounts were read through the
    /// database (the caller resets it before running revm), nothing else changed.
    Declined,
    /// Executed, or a read failed (as revm would return the error).
    Done(Result<Transfer, EVMError<E>>),
}

/// Executes the context's transaction if it is a plain transfer (see the module docs).
pub(super) fn execute<DB: Database>(ctx: &mut MainnetContext<DB>) -> Plain<DB::Error> {
    let Some((to, init)) = shape(ctx) else { return Plain::Skipped };
    settle(ctx, to, init).map_or(Plain::Declined, Plain::Done)
}

/// The recipient and the intrinsic gas of the context's transaction if it is a plain transfer
/// by its shape, the block's rules and revm's checks that need no state.
fn shape<DB: Database>(ctx: &mut MainnetContext<DB>) -> Option<(Address, InitialAndFloorGas)> {
    let spec = ctx.cfg.spec;
    let cfg = ctx.cfg();
    if spec.is_enabled_in(SpecId::AMSTERDAM)
        || cfg.is_amsterdam_eip2780_enabled()
        || cfg.is_amsterdam_eip8037_enabled()
        || cfg.is_fee_charge_disabled()
        || cfg.is_balance_check_disabled()
    {
        return None;
    }
    let to = shaped(&ctx.tx, ctx.block.beneficiary)?;
    // What needs no state, exactly as revm's handler decides it.
    validation::validate_env::<_, EVMError<DB::Error>>(&mut *ctx).ok()?;
    let init = validation::validate_initial_tx_gas_with_gas_params(
        ctx.tx(),
        spec,
        ctx.cfg().gas_params(),
        ctx.cfg().is_eip7623_disabled(),
        false,
        ctx.cfg().tx_gas_limit_cap(),
        None,
    )
    .ok()?;

    Some((to, init))
}

/// [`execute`] with the state: `None` where the state makes the transaction the EVM's.
fn settle<DB: Database>(
    ctx: &mut MainnetContext<DB>,
    to: Address,
    init: InitialAndFloorGas,
) -> Option<Result<Transfer, EVMError<DB::Error>>> {
    let spec = ctx.cfg.spec;
    let caller = ctx.tx().caller();
    let value = ctx.tx().value();
    let (sender, recipient) = {
        let db = ctx.db_mut();
        let sender = match db.basic(caller) {
            Ok(Some(info)) => info,
            Ok(None) => return None,
            Err(e) => return Some(Err(EVMError::Database(e))),
        };
        let recipient = match db.basic(to) {
            Ok(info) => info,
            Err(e) => return Some(Err(EVMError::Database(e))),
        };
        (sender, recipient)
    };
    // Accounts with code (or a delegation) are the EVM's.
    if sender.code_hash != KECCAK_EMPTY
        || recipient.as_ref().is_some_and(|r| r.code_hash != KECCAK_EMPTY)
    {
        return None;
    }

    // The sender, as `validate_against_state_and_deduct_caller` leaves it.
    let mut sender_info = with_code(sender.clone());
    pre_execution::validate_account_nonce_and_code_with_components(
        &sender_info,
        ctx.tx(),
        ctx.cfg(),
    )
    .ok()?;
    let charged =
        pre_execution::calculate_caller_fee(sender_info.balance, ctx.tx(), ctx.block(), ctx.cfg())
            .ok()?;
    sender_info.nonce = sender_info.nonce.checked_add(1)?;
    // The value moves (the balance check above covers it).
    sender_info.balance = charged.checked_sub(value)?;
    let mut recipient_info = recipient.clone().map_or_else(AccountInfo::default, with_code);
    recipient_info.balance = recipient_info.balance.checked_add(value)?;

    // The gas, as the handler settles a first frame that stopped at once (no code).
    let tx_gas_limit = ctx.tx().gas_limit();
    let (remaining, reservoir) =
        init.initial_gas_and_reservoir(tx_gas_limit, ctx.cfg().tx_gas_limit_cap());
    let mut parent = GasTracker::new(tx_gas_limit, remaining, reservoir);
    let mut gas = Gas::new_with_regular_gas_and_reservoir(parent.remaining(), parent.reservoir());
    parent.spend_all();
    handle_reservoir_remaining_gas(InstructionResult::Stop, &mut parent, gas.tracker_mut());
    *gas.tracker_mut() = parent;
    post_execution::refund(ctx.cfg().gas_params(), &mut gas, 0);
    let result_gas = post_execution::build_result_gas(false, &gas, init);
    post_execution::eip7623_check_gas_floor(&mut gas, init);

    // The unused gas back to the sender; the fee owed to the beneficiary.
    let basefee = u128::from(ctx.block().basefee());
    let price = ctx.tx().effective_gas_price(basefee);
    let reimbursed = gas.remaining() + gas.reservoir() + gas.refunded() as u64;
    sender_info.balance = sender_info
        .balance
        .checked_add(U256::from(price.saturating_mul(u128::from(reimbursed))))?;
    let coinbase_price =
        if spec.is_enabled_in(SpecId::LONDON) { price.saturating_sub(basefee) } else { price };
    let used = gas.used().saturating_sub(gas.reservoir());
    let fee = U256::from(coinbase_price) * U256::from(used);

    // The diff, as the journal's `finalize` returns it (loaded this transaction, touched).
    let transaction_id = ctx.journaled_state.inner.transaction_id;
    let mut state = EvmState::default();
    let mut sender_account = Account::from(sender);
    sender_account.info = sender_info;
    sender_account.transaction_id = transaction_id;
    sender_account.mark_touch();
    state.insert(caller, sender_account);
    let mut recipient_account = match recipient {
        Some(info) => Account::from(info),
        None => Account::new_not_existing(transaction_id),
    };
    recipient_account.info = recipient_info;
    recipient_account.transaction_id = transaction_id;
    recipient_account.mark_touch();
    state.insert(to, recipient_account);
    // What `commit_tx` does after a transaction.
    ctx.journal_mut().commit_tx();

    let result = ExecutionResult::Success {
        reason: SuccessReason::Stop,
        gas: result_gas,
        logs: Vec::new(),
        output: Output::Call(Bytes::new()),
    };
    Some(Ok(Transfer { result, state, fee }))
}

/// An account's info as revm's journal holds it once the code is loaded (an account without
/// code gets the empty bytecode).
fn with_code(mut info: AccountInfo) -> AccountInfo {
    if info.code.is_none() {
        info.code = Some(Bytecode::default());
    }
    info
}

/// Panics unless revm's outcome of a transfer (`result`, `state`, `fee`) is the one [`execute`]
/// built (`done`); the transaction ids of the accounts aside (they count the worker's
/// transactions).
pub(super) fn compare<E: std::fmt::Debug>(
    done: &Transfer,
    result: &Result<ExecutionResult<HaltReason>, E>,
    state: &EvmState,
    fee: U256,
) {
    let same_result = result.as_ref().is_ok_and(|r| *r == done.result);
    let view = |state: &EvmState| {
        let mut accounts: Vec<_> = state
            .iter()
            .map(|(address, a)| {
                (*address, a.info.clone(), a.original_info(), a.status, a.storage.clone())
            })
            .collect();
        accounts.sort_by_key(|(address, ..)| *address);
        accounts
    };
    let (ours, revm) = (view(&done.state), view(state));
    assert!(
        same_result && ours == revm && fee == done.fee,
        "plain transfer differs from revm: result {:?} vs {result:?}, state {ours:?} vs {revm:?}, \
         fee {} vs {fee}",
        done.result,
        done.fee
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::{
        context::{BlockEnv, CfgEnv, Context},
        context_interface::block::BlobExcessGasAndPrice,
        database::{CacheDB, EmptyDB},
        handler::{MainBuilder, MainContext},
        primitives::B256,
        state::Bytecode,
        ExecuteEvm,
    };

    const SENDER: Address = Address::repeat_byte(0x11);
    const RECIPIENT: Address = Address::repeat_byte(0x22);
    const BENEFICIARY: Address = Address::repeat_byte(0x33);

    /// The recipient's state before the transfer.
    #[derive(Debug, Clone, Copy)]
    enum Recipient {
        Missing,
        Empty,
        Funded,
        Contract,
    }

    fn db(recipient: Recipient, sender_balance: U256, sender_nonce: u64) -> CacheDB<EmptyDB> {
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            SENDER,
            AccountInfo { balance: sender_balance, nonce: sender_nonce, ..Default::default() },
        );
        match recipient {
            Recipient::Missing => {}
            Recipient::Empty => db.insert_account_info(RECIPIENT, AccountInfo::default()),
            Recipient::Funded => db.insert_account_info(
                RECIPIENT,
                AccountInfo { balance: U256::from(7), nonce: 3, ..Default::default() },
            ),
            Recipient::Contract => {
                let code = Bytecode::new_raw(Bytes::from_static(&[0x00]));
                db.insert_account_info(
                    RECIPIENT,
                    AccountInfo {
                        code_hash: code.hash_slow(),
                        code: Some(code),
                        ..Default::default()
                    },
                );
            }
        }
        db
    }

    fn block(spec: SpecId) -> BlockEnv {
        BlockEnv {
            number: U256::from(1),
            beneficiary: BENEFICIARY,
            basefee: if spec.is_enabled_in(SpecId::LONDON) { 7 } else { 0 },
            gas_limit: 30_000_000,
            prevrandao: Some(B256::repeat_byte(1)),
            blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new(0, 3_338_477)),
            ..Default::default()
        }
    }

    /// `(tx_type, gas_price, priority fee)` of the transactions tried at `spec`.
    fn kinds(spec: SpecId) -> Vec<(u8, u128, Option<u128>)> {
        let mut kinds = vec![(0, 10, None), (0, 7, None)];
        if spec.is_enabled_in(SpecId::BERLIN) {
            kinds.push((1, 10, None));
        }
        if spec.is_enabled_in(SpecId::LONDON) {
            kinds.extend([(2, 20, Some(2)), (2, 8, Some(5)), (2, 7, Some(0))]);
        }
        kinds
    }

    /// The transfer done here against revm's mainnet handler (which credits the fee itself).
    #[test]
    fn plain_transfers_match_revm() {
        let specs = [
            SpecId::FRONTIER,
            SpecId::HOMESTEAD,
            SpecId::SPURIOUS_DRAGON,
            SpecId::BYZANTIUM,
            SpecId::BERLIN,
            SpecId::LONDON,
            SpecId::SHANGHAI,
            SpecId::CANCUN,
            SpecId::PRAGUE,
            SpecId::OSAKA,
        ];
        let mut done = 0;
        for spec in specs {
            for (tx_type, gas_price, priority) in kinds(spec) {
                for recipient in
                    [Recipient::Missing, Recipient::Empty, Recipient::Funded, Recipient::Contract]
                {
                    for (balance, nonce, tx_nonce, gas_limit, value) in [
                        (10u64.pow(18), 0, 0, 21_000, 5u64),
                        (10u64.pow(18), 4, 4, 50_000, 1),
                        (10u64.pow(18), 4, 3, 21_000, 1),
                        (10u64.pow(18), 0, 0, 20_999, 1),
                        (21_000 * 20, 0, 0, 21_000, 1),
                        (21_000 * 20 + 1, 0, 0, 21_000, 1),
                    ] {
                        let tx = TxEnv {
                            tx_type,
                            caller: SENDER,
                            kind: TxKind::Call(RECIPIENT),
                            value: U256::from(value),
                            gas_limit,
                            gas_price,
                            gas_priority_fee: priority,
                            nonce: tx_nonce,
                            chain_id: Some(1),
                            ..Default::default()
                        };
                        let mut cfg = CfgEnv::new_with_spec(spec);
                        cfg.chain_id = 1;
                        let db = db(recipient, U256::from(balance), nonce);
                        let mut ctx = Context::mainnet()
                            .with_db(db.clone())
                            .with_cfg(cfg.clone())
                            .with_block(block(spec))
                            .with_tx(tx.clone());
                        let ours = execute(&mut ctx);
                        let mut evm = Context::mainnet()
                            .with_db(db)
                            .with_cfg(cfg)
                            .with_block(block(spec))
                            .build_mainnet();
                        let revm = evm.transact(tx.clone());
                        let case = format!("{spec:?} {tx:?} {recipient:?} balance {balance}");
                        match ours {
                            Plain::Done(Ok(ours)) => {
                                let mut revm = revm.unwrap_or_else(|e| panic!("{case}: {e:?}"));
                                let credited = revm
                                    .state
                                    .remove(&BENEFICIARY)
                                    .map_or(U256::ZERO, |b| b.info.balance);
                                compare(&ours, &Ok::<_, ()>(revm.result), &revm.state, credited);
                                done += 1;
                            }
                            Plain::Done(Err(e)) => panic!("{case}: {e:?}"),
                            // Left to revm: a contract recipient, or one revm rejects.
                            Plain::Declined | Plain::Skipped => assert!(
                                matches!(recipient, Recipient::Contract) || revm.is_err(),
                                "{case}: not done here, but revm executes it: {revm:?}"
                            ),
                        }
                    }
                }
            }
        }
        assert!(done > 100, "only {done} transfers done here");
    }

    #[test]
    fn other_transactions_are_left_to_revm() {
        let spec = SpecId::PRAGUE;
        let base = TxEnv {
            tx_type: 2,
            caller: SENDER,
            kind: TxKind::Call(RECIPIENT),
            value: U256::from(1),
            gas_limit: 100_000,
            gas_price: 20,
            gas_priority_fee: Some(1),
            chain_id: Some(1),
            ..Default::default()
        };
        let skipped = [
            TxEnv { data: Bytes::from_static(&[1]), ..base.clone() },
            TxEnv { value: U256::ZERO, ..base.clone() },
            TxEnv { kind: TxKind::Create, ..base.clone() },
            TxEnv { kind: TxKind::Call(SENDER), ..base.clone() },
            TxEnv { kind: TxKind::Call(BENEFICIARY), ..base.clone() },
            TxEnv { kind: TxKind::Call(Address::with_last_byte(4)), ..base.clone() },
            TxEnv {
                access_list: vec![revm::context::transaction::AccessListItem {
                    address: RECIPIENT,
                    storage_keys: Vec::new(),
                }]
                .into(),
                tx_type: 1,
                gas_priority_fee: None,
                ..base.clone()
            },
        ];
        for tx in skipped {
            let mut ctx = Context::mainnet()
                .with_db(db(Recipient::Funded, U256::from(10u64.pow(18)), 0))
                .with_cfg(CfgEnv::new_with_spec(spec))
                .with_block(block(spec))
                .with_tx(tx.clone());
            assert!(matches!(execute(&mut ctx), Plain::Skipped), "{tx:?}");
        }
        // Amsterdam's gas rules are revm's.
        let mut ctx = Context::mainnet()
            .with_db(db(Recipient::Funded, U256::from(10u64.pow(18)), 0))
            .with_cfg(CfgEnv::new_with_spec(SpecId::AMSTERDAM))
            .with_block(block(SpecId::AMSTERDAM))
            .with_tx(base.clone());
        assert!(matches!(execute(&mut ctx), Plain::Skipped));
        // A sender with code is the EVM's.
        let mut db = db(Recipient::Funded, U256::ZERO, 0);
        let code = Bytecode::new_raw(Bytes::from_static(&[0x00]));
        db.insert_account_info(
            SENDER,
            AccountInfo {
                balance: U256::from(10u64.pow(18)),
                code_hash: code.hash_slow(),
                code: Some(code),
                ..Default::default()
            },
        );
        let mut ctx = Context::mainnet()
            .with_db(db)
            .with_cfg(CfgEnv::new_with_spec(spec))
            .with_block(block(spec))
            .with_tx(base);
        assert!(matches!(execute(&mut ctx), Plain::Declined));
    }
}
