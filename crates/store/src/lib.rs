//! The persistent chain store of `velarium import --datadir`: world state, headers, receipts,
//! total difficulties and the head, in one [redb] database file.
//!
//! redb is an embedded, pure-Rust, ACID key-value store (copy-on-write B-trees, like LMDB and
//! reth's MDBX): it needs no system library, so the project keeps building from crates.io alone
//! on a bare machine, and every write transaction is atomic and crash-safe: after a kill at any
//! moment the database opens at its last committed transaction. [`Store::commit_block`] writes a
//! verified block's state changes, header, receipts and the new head in one transaction, so the
//! stored head and the stored state always belong together.
//!
//! Layout (all integers big-endian, so tables iterate in numeric order):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `genesis` hash, `head` (number, hash), `merge_block` number |
//! | `headers` | number | RLP header |
//! | `hashes` | number | block hash |
//! | `total_difficulty` | number | 32 bytes |
//! | `ommers` | number | the block's ommer hashes, concatenated |
//! | `receipts` | number | RLP list of receipts (as in the eth protocol) |
//! | `accounts` | address | nonce (8), balance (32), code hash (32) |
//! | `storage` | address ‖ slot | value (32), never zero |
//! | `code` | code hash | bytecode |
//! | `state_diffs` | number | the block's state changes, not yet in `accounts`/`storage` |
//!
//! **State diffs.** Writing a block's changed accounts and slots into the `accounts` and
//! `storage` B-trees dirties one page per change wherever its key falls, and with random keys
//! (addresses, hashed slots) the pages a block dirties grow with the state until every change
//! has a page of its own: a block's write then costs more the larger the state. So a block
//! commit appends its changes, in one value, to `state_diffs` (one sequential write), and every
//! [`DIFF_BLOCKS`] blocks (or [`DIFF_BYTES`] of diffs) one commit also applies every pending
//! diff to `accounts` and `storage`, oldest first, and deletes them: each page is then written
//! once per batch instead of once per block. [`Store::load_state`] reads the tables and applies
//! the pending diffs; both happen inside transactions, so a crash at any moment leaves a store
//! whose tables and diffs together are the state of its head.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use alloy_consensus::{Header, ReceiptEnvelope};
use alloy_primitives::{map::HashMap, Address, B256, U256};
use alloy_rlp::{Decodable, Encodable};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use revm::{bytecode::Bytecode, database::BundleState, primitives::KECCAK_EMPTY};
use std::path::{Path, PathBuf};
use velarium_state::InMemoryState;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const HEADERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("headers");
const HASHES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("hashes");
const TOTAL_DIFFICULTY: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("total_difficulty");
const OMMERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("ommers");
const RECEIPTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("receipts");
const ACCOUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("accounts");
const STORAGE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("storage");
const CODE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("code");
const STATE_DIFFS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("state_diffs");

/// Pending state diffs after which a block commit applies them to the state tables.
pub const DIFF_BLOCKS: u64 = 64;

/// Bytes of pending state diffs after which a block commit applies them (whatever their count).
pub const DIFF_BYTES: u64 = 32 << 20;

/// The database file inside a datadir.
pub const DB_FILE: &str = "velarium.redb";

/// Version of the layout above, stored under `meta/schema`. Version 1 (no `state_diffs`) is
/// upgraded in place when opened.
const SCHEMA: u64 = 2;

/// `BLOCKHASH` reaches this many blocks back: the hashes [`Store::load_state`] restores.
pub const BLOCK_HASH_WINDOW: u64 = 256;

/// Errors of the store. Every one names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The datadir could not be created or the database opened.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read or write of the database failed (I/O error, full disk, corruption).
    #[error("store {what}: {source}")]
    Db {
        /// What the store was doing.
        what: &'static str,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored bytes do not decode: the file was damaged or written by something else.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The store was written by another layout version.
    #[error("the store has layout version {found}, this build reads version {SCHEMA}")]
    Schema {
        /// The stored version.
        found: u64,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps a redb error with what the store was doing.
fn fail<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Db { what, source: Box::new(e) }
}

/// The head of the stored chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHead {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
}

/// A verified block, as [`Store::commit_block`] writes it.
#[derive(Debug, Clone, Copy)]
pub struct BlockRecord<'a> {
    /// The header.
    pub header: &'a Header,
    /// Its hash.
    pub hash: B256,
    /// Total difficulty up to and including it.
    pub total_difficulty: U256,
    /// Its ommers' hashes (for validating later blocks' ommers).
    pub ommer_hashes: &'a [B256],
    /// Its receipts.
    pub receipts: &'a [ReceiptEnvelope],
    /// Its state changes.
    pub bundle: &'a BundleState,
}

/// A stored block header with what fork choice and ommer validation need.
#[derive(Debug, Clone)]
pub struct StoredBlock {
    /// The header.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
    /// Total difficulty up to and including it.
    pub total_difficulty: U256,
    /// Its ommers' hashes.
    pub ommer_hashes: Vec<B256>,
}

/// The persistent store (see the crate docs).
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
    /// Pending state diffs: how many, and their bytes (kept in step with `state_diffs` after
    /// every successful commit).
    pending: std::sync::Mutex<(u64, u64)>,
}

impl Store {
    /// Opens (creating if needed) the store in `datadir`.
    ///
    /// # Errors
    ///
    /// If the directory cannot be created, the file is not a redb database of this layout, or
    /// another process holds it.
    pub fn open(datadir: &Path) -> Result<Self> {
        let path = datadir.join(DB_FILE);
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(datadir).map_err(|e| open_err(Box::new(e)))?;
        let db = Database::create(&path).map_err(|e| open_err(Box::new(e)))?;
        let store = Self { db, path, pending: Default::default() };
        match store.meta_u64("schema")? {
            Some(SCHEMA) => {}
            // Version 1 lacks only the (then empty) diffs table: created below.
            Some(1) => {}
            Some(found) => return Err(StoreError::Schema { found }),
            None => {}
        }
        // Create every table (readers of a fresh store find them) and write the version.
        let tx = store.db.begin_write().map_err(fail("begin write"))?;
        {
            let mut meta = tx.open_table(META).map_err(fail("open meta"))?;
            meta.insert("schema", SCHEMA.to_be_bytes().as_slice()).map_err(fail("write meta"))?;
            for table in [HEADERS, HASHES, TOTAL_DIFFICULTY, OMMERS, RECEIPTS, STATE_DIFFS] {
                tx.open_table(table).map_err(fail("create table"))?;
            }
            for table in [ACCOUNTS, STORAGE, CODE] {
                tx.open_table(table).map_err(fail("create table"))?;
            }
        }
        tx.commit().map_err(fail("commit"))?;
        let pending = {
            let tx = store.db.begin_read().map_err(fail("begin read"))?;
            let diffs = tx.open_table(STATE_DIFFS).map_err(fail("open state diffs"))?;
            let mut pending = (0u64, 0u64);
            for entry in diffs.iter().map_err(fail("read state diffs"))? {
                let (_, diff) = entry.map_err(fail("read state diffs"))?;
                pending = (pending.0 + 1, pending.1 + diff.value().len() as u64);
            }
            pending
        };
        *store.pending.lock().unwrap_or_else(|e| e.into_inner()) = pending;
        Ok(store)
    }

    /// State diffs not yet applied to the state tables: how many, and their bytes.
    pub fn pending_diffs(&self) -> (u64, u64) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(fail("open meta")(e)),
        };
        let value = table.get(key).map_err(fail("read meta"))?.map(|v| v.value().to_vec());
        Ok(value)
    }

    fn meta_u64(&self, key: &str) -> Result<Option<u64>> {
        self.meta(key)?
            .map(|v| {
                <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt(format!("meta/{key}: {} bytes", v.len())))
            })
            .transpose()
    }

    /// The genesis hash the store was initialised with (`None`: a fresh store).
    pub fn genesis_hash(&self) -> Result<Option<B256>> {
        self.meta("genesis")?.map(|v| b256(&v, "meta/genesis")).transpose()
    }

    /// The stored head (`None`: a fresh store).
    pub fn head(&self) -> Result<Option<StoredHead>> {
        let Some(v) = self.meta("head")? else { return Ok(None) };
        if v.len() != 40 {
            return Err(StoreError::Corrupt(format!("meta/head: {} bytes", v.len())));
        }
        let number = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
        Ok(Some(StoredHead { number, hash: B256::from_slice(&v[8..]) }))
    }

    /// The block at which the chain merged, once it is known (a TTD chain past the merge).
    pub fn merge_block(&self) -> Result<Option<u64>> {
        self.meta_u64("merge_block")
    }

    /// Writes block 0 and its state into a fresh store (durably).
    ///
    /// # Errors
    ///
    /// If the store already holds a chain, or on a write failure.
    pub fn init_genesis(&self, header: &Header, state: &InMemoryState) -> Result<StoredHead> {
        if self.head()?.is_some() {
            return Err(StoreError::Corrupt("init_genesis on a store that holds a chain".into()));
        }
        let hash = header.hash_slow();
        let tx = self.db.begin_write().map_err(fail("begin write"))?;
        {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(fail("open accounts"))?;
            let mut storage = tx.open_table(STORAGE).map_err(fail("open storage"))?;
            let mut code = tx.open_table(CODE).map_err(fail("open code"))?;
            for (address, account) in state.accounts() {
                let info = &account.info;
                accounts
                    .insert(
                        address.as_slice(),
                        account_value(info.nonce, info.balance, info.code_hash).as_slice(),
                    )
                    .map_err(fail("write account"))?;
                if info.code_hash != KECCAK_EMPTY {
                    if let Some(bytecode) = state.code(&info.code_hash) {
                        code.insert(info.code_hash.as_slice(), bytecode.original_byte_slice())
                            .map_err(fail("write code"))?;
                    }
                }
                for (slot, value) in &account.storage {
                    storage
                        .insert(
                            storage_key(address, slot).as_slice(),
                            value.to_be_bytes::<32>().as_slice(),
                        )
                        .map_err(fail("write storage"))?;
                }
            }
        }
        let record = BlockRecord {
            header,
            hash,
            total_difficulty: header.difficulty,
            ommer_hashes: &[],
            receipts: &[],
            bundle: &BundleState::default(),
        };
        write_block(&tx, &record)?;
        {
            let mut meta = tx.open_table(META).map_err(fail("open meta"))?;
            meta.insert("genesis", hash.as_slice()).map_err(fail("write meta"))?;
        }
        tx.commit().map_err(fail("commit genesis"))?;
        Ok(StoredHead { number: header.number, hash })
    }

    /// Writes a verified block: its state changes, header, hash, total difficulty, ommer
    /// hashes, receipts, and the head, all in one transaction (atomic: after a crash the store
    /// holds either all of it or none). With `durable` the commit is on disk when this returns;
    /// without, it is visible to this process at once and reaches the disk with the next
    /// durable commit (a crash before that loses it whole, never part of it).
    ///
    /// # Errors
    ///
    /// On a write failure (full disk, I/O error): the store stays at its previous head.
    pub fn commit_block(
        &self,
        block: &BlockRecord<'_>,
        merge_block: Option<u64>,
        durable: bool,
    ) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(fail("begin write"))?;
        if !durable {
            tx.set_durability(Durability::None).map_err(fail("set durability"))?;
        }
        write_code(&tx, block.bundle)?;
        let diff = encode_diff(block.bundle);
        let (count, bytes) = self.pending_diffs();
        let (count, bytes) = (count + 1, bytes + diff.len() as u64);
        let apply = count >= DIFF_BLOCKS || bytes >= DIFF_BYTES;
        tx.open_table(STATE_DIFFS)
            .map_err(fail("open state diffs"))?
            .insert(block.header.number, diff.as_slice())
            .map_err(fail("write state diff"))?;
        if apply {
            apply_diffs(&tx)?;
        }
        write_block(&tx, block)?;
        if let Some(number) = merge_block {
            let mut meta = tx.open_table(META).map_err(fail("open meta"))?;
            meta.insert("merge_block", number.to_be_bytes().as_slice())
                .map_err(fail("write meta"))?;
        }
        tx.commit().map_err(fail("commit block"))?;
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) =
            if apply { (0, 0) } else { (count, bytes) };
        Ok(())
    }

    /// Makes every earlier commit durable (an empty durable transaction).
    pub fn sync(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(fail("begin write"))?;
        tx.commit().map_err(fail("sync"))
    }

    /// The stored block `number` of the canonical chain.
    pub fn block(&self, number: u64) -> Result<Option<StoredBlock>> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let read = |def: TableDefinition<'_, u64, &[u8]>| -> Result<Option<Vec<u8>>> {
            let table = tx.open_table(def).map_err(fail("open table"))?;
            let value = table.get(number).map_err(fail("read block"))?.map(|v| v.value().to_vec());
            Ok(value)
        };
        let Some(header) = read(HEADERS)? else { return Ok(None) };
        let header = Header::decode(&mut header.as_slice())
            .map_err(|e| StoreError::Corrupt(format!("header {number}: {e}")))?;
        let hash = b256(&read(HASHES)?.unwrap_or_default(), "hash")?;
        let td = read(TOTAL_DIFFICULTY)?.unwrap_or_default();
        if td.len() != 32 {
            return Err(StoreError::Corrupt(format!("total difficulty of block {number}")));
        }
        let ommers = read(OMMERS)?.unwrap_or_default();
        if ommers.len() % 32 != 0 {
            return Err(StoreError::Corrupt(format!("ommer hashes of block {number}")));
        }
        Ok(Some(StoredBlock {
            header,
            hash,
            total_difficulty: U256::from_be_slice(&td),
            ommer_hashes: ommers.chunks(32).map(B256::from_slice).collect(),
        }))
    }

    /// The stored receipts of block `number`.
    pub fn receipts(&self, number: u64) -> Result<Option<Vec<ReceiptEnvelope>>> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let table = tx.open_table(RECEIPTS).map_err(fail("open receipts"))?;
        let Some(bytes) = table.get(number).map_err(fail("read receipts"))? else {
            return Ok(None);
        };
        let receipts = Vec::<ReceiptEnvelope>::decode(&mut bytes.value())
            .map_err(|e| StoreError::Corrupt(format!("receipts of block {number}: {e}")))?;
        Ok(Some(receipts))
    }

    /// The stored world state, with the hashes of the last [`BLOCK_HASH_WINDOW`] blocks up to
    /// the head (for `BLOCKHASH`).
    pub fn load_state(&self) -> Result<InMemoryState> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let code_table = tx.open_table(CODE).map_err(fail("open code"))?;
        let mut codes: HashMap<B256, Bytecode> = HashMap::default();
        for entry in code_table.iter().map_err(fail("read code"))? {
            let (hash, code) = entry.map_err(fail("read code"))?;
            let hash = b256(hash.value(), "code hash")?;
            codes.insert(hash, Bytecode::new_raw(code.value().to_vec().into()));
        }
        let mut storage: HashMap<Address, HashMap<U256, U256>> = HashMap::default();
        let storage_table = tx.open_table(STORAGE).map_err(fail("open storage"))?;
        for entry in storage_table.iter().map_err(fail("read storage"))? {
            let (key, value) = entry.map_err(fail("read storage"))?;
            let (key, value) = (key.value(), value.value());
            if key.len() != 52 || value.len() != 32 {
                return Err(StoreError::Corrupt(format!("storage entry of {} bytes", key.len())));
            }
            storage
                .entry(Address::from_slice(&key[..20]))
                .or_default()
                .insert(U256::from_be_slice(&key[20..]), U256::from_be_slice(value));
        }
        let mut accounts: HashMap<Address, AccountFields> = HashMap::default();
        let accounts_table = tx.open_table(ACCOUNTS).map_err(fail("open accounts"))?;
        for entry in accounts_table.iter().map_err(fail("read accounts"))? {
            let (address, value) = entry.map_err(fail("read accounts"))?;
            let (address, value) = (address.value(), value.value());
            if address.len() != 20 || value.len() != 72 {
                return Err(StoreError::Corrupt(format!("account entry of {} bytes", value.len())));
            }
            let nonce = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
            let balance = U256::from_be_slice(&value[8..40]);
            let code_hash = B256::from_slice(&value[40..]);
            accounts.insert(Address::from_slice(address), (nonce, balance, code_hash));
        }
        // The diffs not yet in the tables, oldest first.
        let diffs = tx.open_table(STATE_DIFFS).map_err(fail("open state diffs"))?;
        for entry in diffs.iter().map_err(fail("read state diffs"))? {
            let (number, diff) = entry.map_err(fail("read state diffs"))?;
            for change in decode_diff(diff.value(), number.value())? {
                if change.removed || change.wiped {
                    storage.remove(&change.address);
                }
                match change.fields {
                    None => {
                        accounts.remove(&change.address);
                    }
                    Some(fields) => {
                        accounts.insert(change.address, fields);
                    }
                }
                if change.slots.is_empty() {
                    continue;
                }
                let slots = storage.entry(change.address).or_default();
                for (slot, value) in change.slots {
                    if value.is_zero() {
                        slots.remove(&slot);
                    } else {
                        slots.insert(slot, value);
                    }
                }
                if slots.is_empty() {
                    storage.remove(&change.address);
                }
            }
        }
        let mut state = InMemoryState::new();
        for (address, (nonce, balance, code_hash)) in accounts {
            let code = if code_hash == KECCAK_EMPTY {
                None
            } else {
                Some(codes.get(&code_hash).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!("code {code_hash} of {address} missing"))
                })?)
            };
            state.insert_account(
                address,
                balance,
                nonce,
                code,
                storage.remove(&address).unwrap_or_default(),
            );
        }
        if let Some((address, _)) = storage.into_iter().next() {
            return Err(StoreError::Corrupt(format!("storage of {address}, which has no account")));
        }
        if let Some(head) = self.head()? {
            let hashes = tx.open_table(HASHES).map_err(fail("open hashes"))?;
            let from = head.number.saturating_sub(BLOCK_HASH_WINDOW - 1);
            for entry in hashes.range(from..=head.number).map_err(fail("read hashes"))? {
                let (number, hash) = entry.map_err(fail("read hashes"))?;
                state.insert_block_hash(number.value(), b256(hash.value(), "block hash")?);
            }
        }
        Ok(state)
    }
}

/// An account's stored fields: nonce, balance, code hash.
type AccountFields = (u64, U256, B256);

/// One account's change in a block, as a state diff holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountChange {
    address: Address,
    /// The account no longer exists (its storage goes with it).
    removed: bool,
    /// Its storage was wiped (self-destructed, or re-created) before `slots`.
    wiped: bool,
    /// Its fields after the block (`None` when removed).
    fields: Option<AccountFields>,
    /// Changed slots and their values after the block (zero: deleted), in slot order.
    slots: Vec<(U256, U256)>,
}

/// Flag bits of an encoded [`AccountChange`].
const REMOVED: u8 = 1;
const WIPED: u8 = 2;

/// A block's state changes as one value of `state_diffs`: per changed account, in address
/// order: address (20), flags (1), if not removed nonce (8), balance (32) and code hash (32),
/// then the number of changed slots (4) and each slot and its value (32 + 32), in slot order.
fn encode_diff(bundle: &BundleState) -> Vec<u8> {
    let mut changed: Vec<_> = bundle.state.iter().collect();
    changed.sort_unstable_by_key(|(address, _)| **address);
    let slots: usize = changed.iter().map(|(_, a)| a.storage.len()).sum();
    let mut out = Vec::with_capacity(changed.len() * 97 + slots * 64);
    for (address, account) in changed {
        out.extend_from_slice(address.as_slice());
        let mut flags = 0;
        if account.info.is_none() {
            flags |= REMOVED;
        }
        if account.was_destroyed() {
            flags |= WIPED;
        }
        out.push(flags);
        if let Some(info) = &account.info {
            out.extend_from_slice(&account_value(info.nonce, info.balance, info.code_hash));
        }
        let mut slots: Vec<_> = account.storage.iter().collect();
        slots.sort_unstable_by_key(|(slot, _)| **slot);
        out.extend_from_slice(&(slots.len() as u32).to_be_bytes());
        for (slot, value) in slots {
            out.extend_from_slice(&slot.to_be_bytes::<32>());
            out.extend_from_slice(&value.present_value.to_be_bytes::<32>());
        }
    }
    out
}

/// The changes [`encode_diff`] wrote for block `number`.
fn decode_diff(mut bytes: &[u8], number: u64) -> Result<Vec<AccountChange>> {
    let corrupt = || StoreError::Corrupt(format!("state diff of block {number}"));
    let mut take = |n: usize| -> Result<&[u8]> {
        if bytes.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = bytes.split_at(n);
        bytes = rest;
        Ok(head)
    };
    let mut changes = Vec::new();
    loop {
        let Ok(address) = take(20) else { break };
        let address = Address::from_slice(address);
        let flags = take(1)?[0];
        if flags & !(REMOVED | WIPED) != 0 {
            return Err(corrupt());
        }
        let removed = flags & REMOVED != 0;
        let fields = if removed {
            None
        } else {
            let value = take(72)?;
            Some((
                u64::from_be_bytes(value[..8].try_into().expect("8 bytes")),
                U256::from_be_slice(&value[8..40]),
                B256::from_slice(&value[40..]),
            ))
        };
        let count = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let mut slots = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let pair = take(64)?;
            slots.push((U256::from_be_slice(&pair[..32]), U256::from_be_slice(&pair[32..])));
        }
        changes.push(AccountChange { address, removed, wiped: flags & WIPED != 0, fields, slots });
    }
    // `take(20)` failed: only a clean end of the value is not damage.
    if bytes.is_empty() {
        Ok(changes)
    } else {
        Err(corrupt())
    }
}

/// Writes a bundle's new code (keyed by its hash, so written at once, not as a diff).
fn write_code(tx: &redb::WriteTransaction, bundle: &BundleState) -> Result<()> {
    let mut code = tx.open_table(CODE).map_err(fail("open code"))?;
    for (hash, bytecode) in &bundle.contracts {
        if *hash != KECCAK_EMPTY {
            code.insert(hash.as_slice(), bytecode.original_byte_slice())
                .map_err(fail("write code"))?;
        }
    }
    Ok(())
}

/// Applies every pending state diff to the state tables, oldest first, and deletes them.
fn apply_diffs(tx: &redb::WriteTransaction) -> Result<()> {
    let mut diffs = tx.open_table(STATE_DIFFS).map_err(fail("open state diffs"))?;
    let mut accounts = tx.open_table(ACCOUNTS).map_err(fail("open accounts"))?;
    let mut storage = tx.open_table(STORAGE).map_err(fail("open storage"))?;
    let mut pending = Vec::new();
    for entry in diffs.iter().map_err(fail("read state diffs"))? {
        let (number, diff) = entry.map_err(fail("read state diffs"))?;
        pending.push((number.value(), diff.value().to_vec()));
    }
    for (number, diff) in pending {
        for change in decode_diff(&diff, number)? {
            let address = change.address;
            if change.removed || change.wiped {
                let from = storage_key(&address, &U256::ZERO);
                let to = storage_key(&address, &U256::MAX);
                storage
                    .retain_in(from.as_slice()..=to.as_slice(), |_, _| false)
                    .map_err(fail("delete storage"))?;
            }
            match change.fields {
                None => {
                    accounts.remove(address.as_slice()).map_err(fail("delete account"))?;
                }
                Some((nonce, balance, code_hash)) => {
                    accounts
                        .insert(
                            address.as_slice(),
                            account_value(nonce, balance, code_hash).as_slice(),
                        )
                        .map_err(fail("write account"))?;
                }
            }
            for (slot, value) in change.slots {
                let key = storage_key(&address, &slot);
                if value.is_zero() {
                    storage.remove(key.as_slice()).map_err(fail("delete slot"))?;
                } else {
                    storage
                        .insert(key.as_slice(), value.to_be_bytes::<32>().as_slice())
                        .map_err(fail("write slot"))?;
                }
            }
        }
    }
    diffs.retain(|_, _| false).map_err(fail("delete state diffs"))?;
    Ok(())
}

/// Writes a block's header, hash, total difficulty, ommers, receipts and makes it the head.
fn write_block(tx: &redb::WriteTransaction, block: &BlockRecord<'_>) -> Result<()> {
    let number = block.header.number;
    let mut header = Vec::new();
    block.header.encode(&mut header);
    tx.open_table(HEADERS)
        .map_err(fail("open headers"))?
        .insert(number, header.as_slice())
        .map_err(fail("write header"))?;
    tx.open_table(HASHES)
        .map_err(fail("open hashes"))?
        .insert(number, block.hash.as_slice())
        .map_err(fail("write hash"))?;
    tx.open_table(TOTAL_DIFFICULTY)
        .map_err(fail("open total difficulty"))?
        .insert(number, block.total_difficulty.to_be_bytes::<32>().as_slice())
        .map_err(fail("write total difficulty"))?;
    let ommers: Vec<u8> = block.ommer_hashes.iter().flat_map(|h| h.0).collect();
    tx.open_table(OMMERS)
        .map_err(fail("open ommers"))?
        .insert(number, ommers.as_slice())
        .map_err(fail("write ommers"))?;
    let mut receipts = Vec::new();
    alloy_rlp::encode_list(block.receipts, &mut receipts);
    tx.open_table(RECEIPTS)
        .map_err(fail("open receipts"))?
        .insert(number, receipts.as_slice())
        .map_err(fail("write receipts"))?;
    let mut head = number.to_be_bytes().to_vec();
    head.extend_from_slice(block.hash.as_slice());
    tx.open_table(META)
        .map_err(fail("open meta"))?
        .insert("head", head.as_slice())
        .map_err(fail("write head"))?;
    Ok(())
}

fn account_value(nonce: u64, balance: U256, code_hash: B256) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[..8].copy_from_slice(&nonce.to_be_bytes());
    out[8..40].copy_from_slice(&balance.to_be_bytes::<32>());
    out[40..].copy_from_slice(code_hash.as_slice());
    out
}

fn storage_key(address: &Address, slot: &U256) -> [u8; 52] {
    let mut out = [0u8; 52];
    out[..20].copy_from_slice(address.as_slice());
    out[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    out
}

fn b256(bytes: &[u8], what: &str) -> Result<B256> {
    if bytes.len() == 32 {
        Ok(B256::from_slice(bytes))
    } else {
        Err(StoreError::Corrupt(format!("{what}: {} bytes, not 32", bytes.len())))
    }
}

#[cfg(test)]
mod tests;
