//! EIP-7610: a creation whose target already has storage collides, in both engines.
//!
//! revm 42 decides a collision in `JournalInner::create_account_checkpoint` from the target's
//! nonce and code only, because its `Database` traits cannot ask whether an account has
//! storage. The store can ([`StorageProbe`]): it names the few accounts that have storage but
//! neither code nor nonce, the only ones where the rule changes anything. When a block's state
//! holds any, both engines run their EVMs with [`CollisionGuard`] as the inspector: just before
//! a CREATE, CREATE2 or creation transaction targets one of them, the guard gives the target a
//! placeholder nonce outside the journal, so revm's own collision path runs (everything it does
//! up to the collision, and the halt itself, exactly as for a target with a nonce); when the
//! frame ends the placeholder is removed again. Nothing else differs, so a state without such
//! accounts runs the uninspected EVMs unchanged (mainnet still holds 28 of them, so a full
//! mainnet state would run inspected).
//!
//! The set is the block's pre-state: within a block no such account can gain storage where a
//! creation could then target it (storage is only written by code running at the account, which
//! it does not have). It can lose it: EIP-161 deletes a touched account that is empty but for
//! its storage, so a target the state no longer holds is left alone.

use alloy_primitives::{map::AddressSet, Address};
use revm::{
    context::{ContextTr, JournalTr},
    interpreter::{CreateInputs, CreateOutcome, InterpreterTypes},
    primitives::{CALL_STACK_LIMIT, KECCAK_EMPTY},
    state::EvmState,
    Inspector,
};
pub use velarium_state::StorageProbe;

/// The placeholder nonce: any non-zero value makes revm's check collide.
const PLACEHOLDER_NONCE: u64 = 1;

/// The inspector that enforces EIP-7610 (see the module docs).
#[derive(Debug, Clone)]
pub struct CollisionGuard<'a> {
    storage_only: &'a AddressSet,
    /// The target given the placeholder nonce. A marked creation collides at once, so the next
    /// `create_end` is its own; every `create` overwrites it (no stale mark survives a
    /// transaction that failed in between).
    marked: Option<Address>,
}

impl<'a> CollisionGuard<'a> {
    /// A guard for a state whose storage-only accounts are `storage_only` (inert without any).
    pub const fn new(storage_only: &'a AddressSet) -> Self {
        Self { storage_only, marked: None }
    }

    /// Whether it guards any account: only then must the EVM run inspected.
    pub fn is_active(&self) -> bool {
        !self.storage_only.is_empty()
    }

    /// Marks the creation's target if revm is about to reach its collision check with it and it
    /// is a storage-only account; returns the target it marked.
    fn mark<CTX>(&self, context: &mut CTX, inputs: &CreateInputs) -> Option<Address>
    where
        CTX: ContextTr<Journal: JournalTr<State = EvmState>>,
    {
        // revm's checks before the collision: call depth, the caller's balance, its nonce. A
        // creation that fails one of them never reaches the target (nor loads it): leave it.
        if context.journal().depth() > CALL_STACK_LIMIT as usize {
            return None;
        }
        let journal = context.journal_mut();
        // A failed read is left to revm, which makes the same read next and reports it.
        let caller = journal.load_account(inputs.caller()).ok()?;
        let (balance, nonce) = (caller.data.info.balance, caller.data.info.nonce);
        if balance < inputs.value() || nonce == u64::MAX {
            return None;
        }
        // The nonce revm bumps next, so the address revm computes (and caches) is this one.
        let target = inputs.created_address(nonce);
        if !self.storage_only.contains(&target) {
            return None;
        }
        // revm warm-loads the target itself right before the check: loading it here first is
        // the same load.
        journal.load_account(target).ok()?;
        let account = journal.evm_state_mut().get_mut(&target)?;
        if account.info.nonce != 0 || account.info.code_hash != KECCAK_EMPTY {
            // It collides in revm anyway.
            return None;
        }
        if account.is_loaded_as_not_existing() {
            // Deleted earlier in the block (EIP-161 clears a touched account that is empty but
            // for its storage, and the storage with it): nothing left to collide with.
            return None;
        }
        account.info.nonce = PLACEHOLDER_NONCE;
        Some(target)
    }
}

impl<CTX, INTR> Inspector<CTX, INTR> for CollisionGuard<'_>
where
    CTX: ContextTr<Journal: JournalTr<State = EvmState>>,
    INTR: InterpreterTypes,
{
    fn create(&mut self, context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        self.marked = self.mark(context, inputs);
        None
    }

    fn create_end(
        &mut self,
        context: &mut CTX,
        _inputs: &CreateInputs,
        _outcome: &mut CreateOutcome,
    ) {
        let Some(target) = self.marked.take() else { return };
        // The collision reverted everything the creation did to the target: only the
        // placeholder is left to take back.
        if let Some(account) = context.journal_mut().evm_state_mut().get_mut(&target) {
            account.info.nonce = 0;
        }
    }
}
