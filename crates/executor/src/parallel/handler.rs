//! The revm handler the workers run: mainnet's, except that the beneficiary's fee is computed,
//! not credited (crediting it inside the EVM would make every transaction conflict with every
//! other; the fee is credited at commit, see `commit.rs`).

use super::db::{TxDb, TxDbError};
use crate::eip7610::CollisionGuard;
use alloy_primitives::U256;
use revm::{
    context::{
        result::{EVMError, HaltReason},
        ContextTr,
    },
    context_interface::{Block as _, Cfg as _, Transaction as _},
    handler::{EvmTr, FrameResult, Handler, MainnetEvm},
    primitives::hardfork::SpecId,
    DatabaseRef,
};
use revm::{inspector::InspectorHandler, interpreter::interpreter::EthInterpreter};
use std::cell::Cell;

/// The revm EVM of one incarnation (inspected by the EIP-7610 guard only where it guards an
/// account, see `eip7610.rs`).
pub(super) type TxEvm<'a, DB> =
    MainnetEvm<revm::handler::MainnetContext<TxDb<'a, DB>>, CollisionGuard<'a>>;

/// A mainnet handler whose only change: the beneficiary's fee is computed, not credited.
#[derive(Debug)]
pub(super) struct LazyRewardHandler<'a, DB> {
    pub(super) fee: Cell<U256>,
    pub(super) _db: std::marker::PhantomData<&'a DB>,
}

impl<'a, DB> Handler for LazyRewardHandler<'a, DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    type Evm = TxEvm<'a, DB>;
    type Error = EVMError<TxDbError>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
    ) -> Result<(), Self::Error> {
        let ctx = evm.ctx();
        if ctx.cfg().is_fee_charge_disabled() {
            return Ok(());
        }
        let basefee = ctx.block().basefee() as u128;
        let effective_gas_price = ctx.tx().effective_gas_price(basefee);
        let coinbase_gas_price = if ctx.cfg().spec().is_enabled_in(SpecId::LONDON) {
            effective_gas_price.saturating_sub(basefee)
        } else {
            effective_gas_price
        };
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        self.fee.set(U256::from(coinbase_gas_price) * U256::from(used));
        Ok(())
    }
}

impl<DB> InspectorHandler for LazyRewardHandler<'_, DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    type IT = EthInterpreter;
}
