//! World state held in memory: accounts, storage, code and ancestor block hashes.
//!
//! [`InMemoryState`] is the embedded default store of the `velarium` binary. Executors read it
//! way), and a block's result is written back with [`InMemoryState::apply_bundle`]. The
//! Merkle-Patricia state root is incremental ([`trie::MerkleTrie`]): the first root builds the
//! account trie and the storage tries, later ones rehash only the paths a block changed.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod trie;

use alloy_genesis::GenesisAccount;
use alloy_primitives::{
    keccak256,
    map::{AddressSet, HashMap},
    Address, B256, U256,
};
use alloy_trie::{
    root::{state_root_unhashed, storage_root_unhashed},
    TrieAccount, EMPTY_ROOT_HASH,
};
use revm::{
    bytecode::Bytecode,
    database::{BundleState, DBErrorMarker},
    primitives::KECCAK_EMPTY,
    state::AccountInfo,
    DatabaseRef,
};
use std::{collections::BTreeMap, sync::Arc};
use trie::MerkleTrie;

/// Errors reading the in-memory state. Reads of absent data are not errors (they are empty).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// A code hash is referenced but its code is unknown.
    #[error("missing bytecode for code hash {0}")]
    MissingCode(B256),
}

impl DBErrorMarker for StateError {}

/// One account: its basic info and storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Balance, nonce, code hash (and code, if loaded).
    pub info: AccountInfo,
    /// Non-zero storage slots.
    pub storage: HashMap<U256, U256>,
}

/// What [`InMemoryState::apply_bundle_undoable`] overwrote, for [`InMemoryState::undo`].
#[derive(Debug, Default)]
#[must_use = "an undo that is dropped cannot take the state back"]
pub struct StateUndo {
    /// Per changed address, in the order applied: the account before (`None`: it did not
    /// exist).
    accounts: Vec<(Address, Option<PriorAccount>)>,
}

/// An account as it was before a change.
#[derive(Debug)]
struct PriorAccount {
    info: AccountInfo,
    storage: PriorStorage,
}

/// The storage of an account before a change.
#[derive(Debug)]
enum PriorStorage {
    /// The changed slots' previous values (`None`: the slot was empty), in the order changed.
    Slots(Vec<(U256, Option<U256>)>),
    /// The whole storage (the change wiped or removed the account).
    Whole(HashMap<U256, U256>),
}

impl PriorAccount {
    fn whole(account: Account) -> Self {
        Self { info: account.info, storage: PriorStorage::Whole(account.storage) }
    }
}

/// The embedded state store: a full world state in memory.
///
/// Cloning is cheap enough for test side chains (it copies the maps; bytecode is shared).
#[derive(Debug, Clone, Default)]
pub struct InMemoryState {
    accounts: HashMap<Address, Account>,
    contracts: HashMap<B256, Bytecode>,
    block_hashes: Arc<BTreeMap<u64, B256>>,
    /// The state's tries, built by the first [`InMemoryState::state_root`] and kept in step
    /// with every change after it (`None` until a root is asked for: executing on a state
    /// needs no trie).
    tries: Option<Box<StateTries>>,
    /// Accounts with storage but neither code nor nonce (see [`StorageProbe`]), kept up to date
    /// on every change.
    storage_only: AddressSet,
}

/// EIP-7610 asks a question revm's `Database` traits cannot: whether an account has storage. A
/// CREATE, CREATE2 or creation transaction whose target has code, a nonce *or non-empty
/// storage* collides. Only the last case needs the store, and only for accounts without code or
/// nonce (mainnet holds 28 of them, left by pre-EIP-161 creations): a store names them here.
pub trait StorageProbe {
    /// The accounts that have non-empty storage, a zero nonce and no code.
    fn storage_only_accounts(&self) -> &AddressSet;
}

impl StorageProbe for InMemoryState {
    fn storage_only_accounts(&self) -> &AddressSet {
        &self.storage_only
    }
}

impl<T: StorageProbe + ?Sized> StorageProbe for &T {
    fn storage_only_accounts(&self) -> &AddressSet {
        (**self).storage_only_accounts()
    }
}

/// Whether `account` is one [`StorageProbe`] names.
fn is_storage_only(account: &Account) -> bool {
    account.info.nonce == 0 && account.info.code_hash == KECCAK_EMPTY && !account.storage.is_empty()
}

impl InMemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a state from a genesis `alloc` (accounts with zero-valued slots drop those slots).
    pub fn from_genesis_alloc<'a>(
        alloc: impl IntoIterator<Item = (&'a Address, &'a GenesisAccount)>,
    ) -> Self {
        let mut state = Self::new();
        for (address, account) in alloc {
            let code = account.code.clone().filter(|c| !c.is_empty()).map(Bytecode::new_raw);
            let storage = account
                .storage
                .iter()
                .flatten()
                .map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0)))
                .filter(|(_, v)| !v.is_zero())
                .collect();
            state.insert_account(
                *address,
                account.balance,
                account.nonce.unwrap_or_default(),
                code,
                storage,
            );
        }
        state
    }

    /// Inserts or replaces an account.
    pub fn insert_account(
        &mut self,
        address: Address,
        balance: U256,
        nonce: u64,
        code: Option<Bytecode>,
        storage: HashMap<U256, U256>,
    ) {
        let (code_hash, code) = match code {
            Some(code) if !code.is_empty() => {
                let hash = code.hash_slow();
                self.contracts.insert(hash, code.clone());
                (hash, Some(code))
            }
            _ => (KECCAK_EMPTY, None),
        };
        let info = AccountInfo { balance, nonce, code_hash, code, ..Default::default() };
        let account = Account { info, storage };
        if let Some(tries) = &mut self.tries {
            tries.replace_account(address, &account);
        }
        self.note_storage_only(address, Some(&account));
        self.accounts.insert(address, account);
    }

    /// Keeps [`StorageProbe`]'s set in step with a change of `address` (`None`: removed).
    fn note_storage_only(&mut self, address: Address, account: Option<&Account>) {
        if account.is_some_and(is_storage_only) {
            self.storage_only.insert(address);
        } else if !self.storage_only.is_empty() {
            self.storage_only.remove(&address);
        }
    }

    /// Records the hash of an ancestor block, for `BLOCKHASH`.
    pub fn insert_block_hash(&mut self, number: u64, hash: B256) {
        Arc::make_mut(&mut self.block_hashes).insert(number, hash);
    }

    /// The account at `address`, if it exists.
    pub fn account(&self, address: &Address) -> Option<&Account> {
        self.accounts.get(address)
    }

    /// All accounts.
    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.accounts.iter()
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Bytecode by hash.
    pub fn code(&self, hash: &B256) -> Option<&Bytecode> {
        self.contracts.get(hash)
    }

    /// Writes a block's state changes (revm's merged [`BundleState`]) into the store.
    pub fn apply_bundle(&mut self, bundle: &BundleState) {
        self.apply(bundle, None);
    }

    /// [`InMemoryState::apply_bundle`], keeping what it overwrites so that
    /// [`InMemoryState::undo`] can take the state back (a block whose state root turns out
    /// wrong). The undo holds the previous values of the changed slots only (a wiped account's
    /// whole storage is moved into it, not copied), so it costs what the block changed.
    pub fn apply_bundle_undoable(&mut self, bundle: &BundleState) -> StateUndo {
        let mut undo = StateUndo { accounts: Vec::with_capacity(bundle.state.len()) };
        self.apply(bundle, Some(&mut undo));
        undo
    }

    fn apply(&mut self, bundle: &BundleState, mut undo: Option<&mut StateUndo>) {
        for (hash, code) in &bundle.contracts {
            self.contracts.insert(*hash, code.clone());
        }
        for (address, account) in &bundle.state {
            let Some(info) = &account.info else {
                let removed = self.accounts.remove(address);
                if let Some(undo) = undo.as_deref_mut() {
                    undo.accounts.push((*address, removed.map(PriorAccount::whole)));
                }
                self.note_storage_only(*address, None);
                if let Some(tries) = &mut self.tries {
                    tries.remove_account(*address);
                }
                continue;
            };
            let existed = self.accounts.contains_key(address);
            let entry = self.accounts.entry(*address).or_default();
            let mut prior = (undo.is_some() && existed).then(|| PriorAccount {
                info: entry.info.clone(),
                storage: PriorStorage::Slots(Vec::new()),
            });
            if account.was_destroyed() {
                let wiped = std::mem::take(&mut entry.storage);
                if let Some(prior) = &mut prior {
                    prior.storage = PriorStorage::Whole(wiped);
                }
                if let Some(tries) = &mut self.tries {
                    tries.wipe_storage(*address);
                }
            }
            let mut info = info.clone();
            if info.code.is_none() && info.code_hash != KECCAK_EMPTY {
                info.code = self.contracts.get(&info.code_hash).cloned();
            }
            entry.info = info;
            for (slot, value) in &account.storage {
                let previous = if value.present_value.is_zero() {
                    entry.storage.remove(slot)
                } else {
                    entry.storage.insert(*slot, value.present_value)
                };
                if let Some(PriorAccount { storage: PriorStorage::Slots(slots), .. }) = &mut prior {
                    slots.push((*slot, previous));
                }
            }
            if let Some(tries) = &mut self.tries {
                tries.update_account(
                    *address,
                    account.storage.iter().map(|(k, v)| (*k, v.present_value)),
                );
            }
            if is_storage_only(entry) {
                self.storage_only.insert(*address);
            } else if !self.storage_only.is_empty() {
                self.storage_only.remove(address);
            }
            if let Some(undo) = undo.as_deref_mut() {
                undo.accounts.push((*address, prior));
            }
        }
    }

    /// Takes back the changes an [`InMemoryState::apply_bundle_undoable`] made (no other change
    /// in between): accounts, storage and the tries; the next root rehashes the accounts it
    /// touched. Code it added stays (code is keyed by its hash).
    pub fn undo(&mut self, undo: StateUndo) {
        for (address, prior) in undo.accounts.into_iter().rev() {
            let restored = match prior {
                None => {
                    self.accounts.remove(&address);
                    None
                }
                Some(PriorAccount { info, storage: PriorStorage::Whole(storage) }) => {
                    let account = Account { info, storage };
                    Some(self.accounts.entry(address).insert_entry(account).into_mut())
                }
                Some(PriorAccount { info, storage: PriorStorage::Slots(slots) }) => {
                    let entry = self.accounts.entry(address).or_default();
                    entry.info = info;
                    for (slot, previous) in slots.into_iter().rev() {
                        match previous {
                            Some(value) => entry.storage.insert(slot, value),
                            None => entry.storage.remove(&slot),
                        };
                    }
                    Some(entry)
                }
            };
            let restored = restored.map(|account| &*account);
            if let Some(tries) = &mut self.tries {
                match restored {
                    Some(account) => tries.replace_account(address, account),
                    None => tries.remove_account(address),
                }
            }
            match restored {
                Some(account) if is_storage_only(account) => {
                    self.storage_only.insert(address);
                }
                _ => {
                    self.storage_only.remove(&address);
                }
            }
        }
    }

    /// The Merkle-Patricia root of the whole state. The first call builds the tries (a pass
    /// over the whole state); later calls rehash only what changed since.
    pub fn state_root(&mut self) -> B256 {
        let tries = self.tries.get_or_insert_with(|| Box::new(StateTries::build(&self.accounts)));
        tries.root(&self.accounts)
    }

    /// The Merkle-Patricia root of the state computed from scratch, without the tries (a
    /// reference for tests and a cross-check for the incremental root).
    pub fn compute_state_root(&self) -> B256 {
        state_root_unhashed(self.accounts.iter().map(|(address, account)| {
            let storage_root = if account.storage.is_empty() {
                EMPTY_ROOT_HASH
            } else {
                storage_root_unhashed(account.storage.iter().map(|(k, v)| (B256::from(*k), *v)))
            };
            (*address, trie_account(&account.info, storage_root))
        }))
    }

    /// Forgets the ancestor hashes below `number` (`BLOCKHASH` reaches 256 blocks back), so a
    /// long import keeps a bounded window.
    pub fn prune_block_hashes_below(&mut self, number: u64) {
        let hashes = Arc::make_mut(&mut self.block_hashes);
        *hashes = hashes.split_off(&number);
    }
}

/// The incremental tries of a state: the account trie, one storage trie per account with
/// storage, and the accounts changed since the last root (whose leaves are rewritten then).
#[derive(Debug, Clone, Default)]
struct StateTries {
    accounts: MerkleTrie,
    storage: HashMap<Address, MerkleTrie>,
    dirty: AddressSet,
}

/// Accounts changed in one root computation from which their storage roots are hashed on
/// several threads.
const PARALLEL_STORAGE_FROM: usize = 64;

/// Changed accounts from which the account trie's top subtries are hashed on several threads.
const PARALLEL_ACCOUNTS_FROM: usize = 2048;

/// Threads hashing in parallel (the scoped threads live only for the root computation).
fn hashing_threads() -> usize {
    // Asked once: the standard library reads the cgroup's CPU quota from /proc every time, a
    // cost every block's root would pay.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(16))
}

impl StateTries {
    /// The tries of `accounts`, every account dirty (its leaf is written by the first root).
    fn build(accounts: &HashMap<Address, Account>) -> Self {
        let mut tries = Self::default();
        for (address, account) in accounts {
            tries.replace_account(*address, account);
        }
        tries
    }

    /// `address` now holds exactly `account` (storage included).
    fn replace_account(&mut self, address: Address, account: &Account) {
        self.wipe_storage(address);
        self.update_account(address, account.storage.iter().map(|(k, v)| (*k, *v)));
    }

    /// `address` no longer exists.
    fn remove_account(&mut self, address: Address) {
        self.storage.remove(&address);
        self.dirty.insert(address);
    }

    /// `address`'s storage was cleared (self-destruct, or re-created).
    fn wipe_storage(&mut self, address: Address) {
        self.storage.remove(&address);
        self.dirty.insert(address);
    }

    /// `address` changed: its info and these slots (zero: deleted).
    fn update_account(&mut self, address: Address, slots: impl Iterator<Item = (U256, U256)>) {
        self.dirty.insert(address);
        let mut slots = slots.peekable();
        if slots.peek().is_none() {
            return;
        }
        let trie = self.storage.entry(address).or_default();
        for (slot, value) in slots {
            let key = keccak256(B256::from(slot));
            if value.is_zero() {
                trie.remove(key);
            } else {
                trie.insert(key, alloy_rlp::encode(value));
            }
        }
        if trie.is_empty() {
            self.storage.remove(&address);
        }
    }

    /// The state root of `accounts` (which the tries follow).
    fn root(&mut self, accounts: &HashMap<Address, Account>) -> B256 {
        // The changed accounts' storage tries, taken out to be hashed (on several threads when
        // there are many), then put back.
        let mut changed: Vec<(Address, Option<MerkleTrie>, B256)> =
            self.dirty.drain().map(|address| (address, None, EMPTY_ROOT_HASH)).collect();
        for (address, trie, _) in &mut changed {
            *trie = self.storage.remove(address);
        }
        let hash = |part: &mut [(Address, Option<MerkleTrie>, B256)]| {
            for (_, trie, root) in part {
                if let Some(trie) = trie {
                    *root = trie.root();
                }
            }
        };
        let threads = hashing_threads();
        if changed.len() >= PARALLEL_STORAGE_FROM && threads > 1 {
            let chunk = changed.len().div_ceil(threads);
            std::thread::scope(|s| {
                for part in changed.chunks_mut(chunk) {
                    s.spawn(move || hash(part));
                }
            });
        } else {
            hash(&mut changed);
        }
        let parallel = changed.len() >= PARALLEL_ACCOUNTS_FROM && threads > 1;
        for (address, trie, storage_root) in changed {
            let key = keccak256(address);
            match accounts.get(&address) {
                Some(account) => {
                    let leaf = trie_account(&account.info, storage_root);
                    self.accounts.insert(key, alloy_rlp::encode(leaf));
                    if let Some(trie) = trie {
                        self.storage.insert(address, trie);
                    }
                }
                None => {
                    self.accounts.remove(key);
                }
            }
        }
        self.accounts.root_parallel(parallel)
    }
}

/// The trie leaf of an account.
fn trie_account(info: &AccountInfo, storage_root: B256) -> TrieAccount {
    TrieAccount {
        nonce: info.nonce,
        balance: info.balance,
        storage_root,
        code_hash: info.code_hash,
    }
}

impl DatabaseRef for InMemoryState {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.accounts.get(&address).map(|a| a.info.clone()))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if code_hash == KECCAK_EMPTY || code_hash.is_zero() {
            return Ok(Bytecode::default());
        }
        self.contracts.get(&code_hash).cloned().ok_or(StateError::MissingCode(code_hash))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self
            .accounts
            .get(&address)
            .and_then(|a| a.storage.get(&index).copied())
            .unwrap_or_default())
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{address, b256, bytes};
    use revm::database::{states::StorageSlot, AccountStatus, BundleAccount};

    #[test]
    fn empty_state_root() {
        assert_eq!(InMemoryState::new().state_root(), EMPTY_ROOT_HASH);
    }

    #[test]
    fn root_is_stable_across_cache_and_clone() {
        // One account with balance 1 wei at 0x..01: root computed independently by geth's trie.
        let mut state = InMemoryState::new();
        state.insert_account(
            address!("0x0000000000000000000000000000000000000001"),
            U256::from(1),
            0,
            None,
            HashMap::default(),
        );
        let root = state.state_root();
        // Same root when computed without the cache and after cloning.
        assert_eq!(root, state.compute_state_root());
        assert_eq!(root, state.clone().state_root());
        assert_ne!(root, EMPTY_ROOT_HASH);
    }

    #[test]
    fn bundle_application_and_cache_invalidation() {
        let a = address!("0x00000000000000000000000000000000000000aa");
        let code = Bytecode::new_raw(bytes!("6001600055"));
        let mut storage = HashMap::default();
        storage.insert(U256::from(1), U256::from(7));
        let mut state = InMemoryState::new();
        state.insert_account(a, U256::from(10), 1, Some(code.clone()), storage);
        let before = state.state_root();

        let mut info = state.basic_ref(a).unwrap().unwrap();
        info.balance = U256::from(11);
        let mut slots: HashMap<U256, StorageSlot> = HashMap::default();
        slots.insert(U256::from(1), StorageSlot::new_changed(U256::from(7), U256::ZERO));
        slots.insert(U256::from(2), StorageSlot::new_changed(U256::ZERO, U256::from(3)));
        let mut bundle = BundleState::default();
        bundle.state.insert(
            a,
            BundleAccount::new(
                None,
                Some(info),
                slots.into_iter().collect(),
                AccountStatus::Changed,
            ),
        );
        state.apply_bundle(&bundle);
        assert_eq!(state.storage_ref(a, U256::from(1)).unwrap(), U256::ZERO);
        assert_eq!(state.storage_ref(a, U256::from(2)).unwrap(), U256::from(3));
        assert_eq!(state.basic_ref(a).unwrap().unwrap().balance, U256::from(11));
        let after = state.state_root();
        assert_ne!(before, after);
        assert_eq!(after, state.compute_state_root());
        assert_eq!(state.code_by_hash_ref(code.hash_slow()).unwrap(), code);
        assert_eq!(
            state.code_by_hash_ref(b256!(
                "0x1111111111111111111111111111111111111111111111111111111111111111"
            )),
            Err(StateError::MissingCode(b256!(
                "0x1111111111111111111111111111111111111111111111111111111111111111"
            )))
        );

        // Destruction removes the account.
        let mut bundle = BundleState::default();
        bundle.state.insert(
            a,
            BundleAccount::new(None, None, Default::default(), AccountStatus::Destroyed),
        );
        state.apply_bundle(&bundle);
        assert!(state.is_empty());
        assert_eq!(state.state_root(), EMPTY_ROOT_HASH);
    }

    /// The state as comparable data: accounts (balance, nonce, code hash, sorted storage) and
    /// the storage-only set.
    #[allow(clippy::type_complexity)]
    fn dump(
        state: &InMemoryState,
    ) -> (BTreeMap<Address, (U256, u64, B256, BTreeMap<U256, U256>)>, Vec<Address>) {
        let accounts = state
            .accounts()
            .map(|(a, acc)| {
                let storage = acc.storage.iter().map(|(k, v)| (*k, *v)).collect();
                (*a, (acc.info.balance, acc.info.nonce, acc.info.code_hash, storage))
            })
            .collect();
        let mut only: Vec<Address> = state.storage_only.iter().copied().collect();
        only.sort();
        (accounts, only)
    }

    mod undo {
        use super::*;
        use proptest::prelude::*;

        fn addr(i: u8) -> Address {
            Address::with_last_byte(i + 1)
        }

        /// An initial account: (address, balance, nonce, slots).
        fn account() -> impl Strategy<Value = (u8, u64, u64, Vec<(u8, u64)>)> {
            (0u8..6, 0u64..3, 0u64..2, prop::collection::vec((0u8..8, 0u64..3), 0..6))
        }

        /// A change of one account: 0 removes it, 1 changes it, 2 wipes its storage and
        /// re-creates it; then a new balance and slot writes (0: cleared).
        fn change() -> impl Strategy<Value = (u8, u8, u64, Vec<(u8, u64)>)> {
            (0u8..7, 0u8..3, 0u64..3, prop::collection::vec((0u8..8, 0u64..3), 0..6))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Applying a block's bundle and undoing it gives back the same accounts, storage,
            /// storage-only set and root (with the tries built before, or not), and the state
            /// then takes the next bundle like one that never saw the undone one.
            #[test]
            fn an_undone_bundle_leaves_no_trace(
                initial in prop::collection::vec(account(), 0..6),
                changes in prop::collection::vec(change(), 1..6),
                rooted in any::<bool>(),
            ) {
                let mut state = InMemoryState::new();
                for (a, balance, nonce, slots) in initial {
                    let storage = slots
                        .into_iter()
                        .filter(|(_, v)| *v != 0)
                        .map(|(k, v)| (U256::from(k), U256::from(v)))
                        .collect();
                    state.insert_account(addr(a), U256::from(balance), nonce, None, storage);
                }
                let root = rooted.then(|| state.state_root());
                let pristine = state.clone();
                let before = dump(&state);

                let mut bundle = BundleState::default();
                for (a, kind, balance, slots) in changes {
                    let address = addr(a);
                    let storage: HashMap<U256, StorageSlot> = slots
                        .into_iter()
                        .map(|(k, v)| {
                            let k = U256::from(k);
                            let old = state.storage_ref(address, k).unwrap();
                            (k, StorageSlot::new_changed(old, U256::from(v)))
                        })
                        .collect();
                    let info = AccountInfo { balance: U256::from(balance), ..Default::default() };
                    let account = match kind {
                        0 => BundleAccount::new(None, None, Default::default(), AccountStatus::Destroyed),
                        1 => BundleAccount::new(None, Some(info), storage.into_iter().collect(), AccountStatus::Changed),
                        _ => BundleAccount::new(None, Some(info), storage.into_iter().collect(), AccountStatus::DestroyedChanged),
                    };
                    bundle.state.insert(address, account);
                }

                let undo = state.apply_bundle_undoable(&bundle);
                let applied = state.state_root();
                let mut reference = pristine.clone();
                reference.apply_bundle(&bundle);
                prop_assert_eq!(applied, reference.compute_state_root());
                prop_assert_eq!(dump(&state), dump(&reference));

                state.undo(undo);
                prop_assert_eq!(dump(&state), before);
                let undone = state.state_root();
                prop_assert_eq!(undone, pristine.compute_state_root());
                if let Some(root) = root {
                    prop_assert_eq!(undone, root);
                }
                // And it goes on as if the bundle had never been applied.
                state.apply_bundle(&bundle);
                prop_assert_eq!(state.state_root(), applied);
            }
        }
    }
}
