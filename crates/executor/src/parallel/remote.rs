//! Parallel reads from a database only one thread may touch.
//!
//! Block-STM workers read the parent state concurrently, which needs a `DatabaseRef + Sync`
//! backend. A node's state often is neither: reth hands its executors a `&mut State<DB>` whose
//! provider (an MDBX read transaction) must stay on one thread. [`with_remote_db`] bridges the
//! two: the thread that owns the database is itself worker 0 and reads it directly; the other
//! workers send their cold reads over a channel, and the owner serves them at each of its own
//! reads and whenever it waits (the pool's and scheduler's waits run its service hook, see
//! `velarium_numa_runtime::with_service_hook`). Every answer is cached in a sharded map, so each
//! location crosses the channel once per block. Before the workers start, the owner pre-heats
//! the cache with the accounts the block is known to touch (senders, recipients, the
//! beneficiary), so most transactions never wait on a cold read.
//!
//! Earlier designs served from a separate, polling owner thread beside the workers: one thread
//! more than cores on a small machine, and every read of worker 0 crossed threads too. The
//! reth glue's Block-STM ran at 0.25x of sequential with a sleeping owner, 0.55x-0.62x with a
//! polling one, 0.86x-0.88x with the owner as worker 0, 0.92x-0.94x once it also serves at
//! every `JUMPDEST` it executes (`cargo test -p velarium-reth-glue --release --test newpayload
//! -- --include-ignored timing --nocapture`; see the root README, "Inside reth").

use super::EngineFault;
use crate::ExecutionError;
use alloy_primitives::{map::HashMap, Address, B256, U256};
use revm::{
    bytecode::Bytecode,
    database_interface::{DBErrorMarker, Database, DatabaseRef},
    state::AccountInfo,
};
use std::{
    cell::{Cell, UnsafeCell},
    hash::{BuildHasher, Hash},
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc, RwLock,
    },
};

/// How many times a waiting side polls its channel before it starts yielding its core.
const POLL_SPINS: u32 = 200;

/// One read the owner thread performs for a worker.
#[derive(Debug, Clone, Copy)]
enum Query {
    Basic(Address),
    Code(B256),
    Storage(Address, U256),
    BlockHash(u64),
}

/// The owner's answer to a [`Query`].
#[derive(Debug)]
enum Answer {
    Basic(Option<AccountInfo>),
    Code(Bytecode),
    Storage(U256),
    BlockHash(B256),
}

impl Answer {
    fn basic(self) -> Result<Option<AccountInfo>, Self> {
        match self {
            Self::Basic(info) => Ok(info),
            other => Err(other),
        }
    }

    fn code(self) -> Result<Bytecode, Self> {
        match self {
            Self::Code(code) => Ok(code),
            other => Err(other),
        }
    }

    fn storage(self) -> Result<U256, Self> {
        match self {
            Self::Storage(value) => Ok(value),
            other => Err(other),
        }
    }

    fn block_hash(self) -> Result<B256, Self> {
        match self {
            Self::BlockHash(hash) => Ok(hash),
            other => Err(other),
        }
    }
}

/// A query and where to send its answer.
#[derive(Debug)]
struct Request {
    query: Query,
    reply: mpsc::SyncSender<Result<Answer, String>>,
}

/// A read the owner could not serve: the database's error, as text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RemoteError(String);

impl DBErrorMarker for RemoteError {}

/// A map split into independently locked shards.
struct Sharded<K, V> {
    shards: Box<[RwLock<HashMap<K, V>>]>,
    hasher: alloy_primitives::map::DefaultHashBuilder,
}

impl<K, V> std::fmt::Debug for Sharded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharded").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> Sharded<K, V> {
    const SHARDS: usize = 64;

    fn new() -> Self {
        Self {
            shards: (0..Self::SHARDS).map(|_| RwLock::default()).collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> &RwLock<HashMap<K, V>> {
        &self.shards[self.hasher.hash_one(key) as usize % Self::SHARDS]
    }

    fn get(&self, key: &K) -> Option<V> {
        self.shard(key).read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// `key`'s value: the one already there, else `value`, inserted.
    fn get_or_insert(&self, key: K, value: V) -> V {
        self.shard(&key)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(value)
            .clone()
    }
}

/// The owner thread's side of a [`RemoteDb`]: the database (behind a type-erased reader) and
/// the queue of the other workers' reads.
struct Owner<'a> {
    /// `None` while a detached run's owner is away (see [`RemoteDb::attach`]).
    read: Option<&'a mut dyn FnMut(Query) -> Result<Answer, String>>,
    incoming: mpsc::Receiver<Request>,
    /// Set when a read panicked (its message): the database may be half-way through
    /// something, so every later read fails instead of touching it again, and the run ends as
    /// an engine fault.
    poisoned: Option<String>,
}

impl Owner<'_> {
    /// One read on the database; a panic in it becomes an error (the owner is a worker, and
    /// its service hook must never unwind).
    fn read(&mut self, query: Query) -> Result<Answer, String> {
        if self.poisoned.is_some() {
            return Err("state owner panicked on an earlier read".to_string());
        }
        let Some(read) = self.read.as_deref_mut() else {
            return Err("the state owner is not serving reads".to_string());
        };
        catch_unwind(AssertUnwindSafe(|| read(query))).unwrap_or_else(|panic| {
            let message = format!("state read panicked: {}", super::panic_message(&panic));
            self.poisoned = Some(message.clone());
            Err(message)
        })
    }
}

thread_local! {
    /// The [`RemoteDb`] whose owner this thread is, if any.
    static OWNED: Cell<*const RemoteDb> = const { Cell::new(std::ptr::null()) };
}

/// The workers' view of a database only one thread (worker 0) may touch (see the module docs).
pub(crate) struct RemoteDb {
    requests: mpsc::Sender<Request>,
    /// Requests sent and not yet taken by the owner: the owner checks this, not the channel.
    pending: AtomicUsize,
    /// Set by [`RemoteDb::close`]: the owner serves no more reads, and waiting ones give up.
    closed: AtomicBool,
    /// Only ever touched on the owner thread (checked through [`OWNED`]), never re-entered: a
    /// read on the database does not come back here.
    owner: UnsafeCell<Owner<'static>>,
    accounts: Sharded<Address, Option<AccountInfo>>,
    storage: Sharded<(Address, U256), U256>,
    code: Sharded<B256, Bytecode>,
    block_hashes: Sharded<u64, B256>,
}

// SAFETY: `owner` (the only part that is not `Sync`) is touched only on the thread that owns it,
// which `on_owner_thread` checks on every access; the rest is `Sync`.
unsafe impl Sync for RemoteDb {}
// SAFETY: the same: the owner's side (a read function borrowed for one call, see `attach`, and
// the request queue's receiving end) is only used on the owner thread; dropping it elsewhere
// (the last holder of a detached run) runs no read.
unsafe impl Send for RemoteDb {}

impl std::fmt::Debug for RemoteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteDb")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RemoteDb {
    /// Whether this thread is the owner's.
    fn on_owner_thread(&self) -> bool {
        OWNED.with(|owned| std::ptr::eq(owned.get(), self))
    }

    /// The owner's side. Only on the owner thread, and never twice at once (nothing it calls
    /// comes back here).
    #[allow(clippy::mut_from_ref)]
    fn owner(&self) -> &mut Owner<'static> {
        // A thread-local load: cheap, and it keeps a mistake here from being a data race.
        assert!(self.on_owner_thread(), "a worker touched the state owner's side");
        // SAFETY: see the field and `on_owner_thread`.
        unsafe { &mut *self.owner.get() }
    }

    /// On the owner thread: answers every queued read. The answer to a location some worker
    /// cached already is the cached one, so every worker sees one value per location.
    pub(crate) fn serve_pending(&self) {
        if self.pending.load(Ordering::Acquire) == 0 {
            return;
        }
        while let Ok(request) = self.owner().incoming.try_recv() {
            self.pending.fetch_sub(1, Ordering::Release);
            let answer = self.read_through(request.query);
            let _ = request.reply.send(answer);
        }
    }

    /// On the owner thread: `query` from the cache, else from the database, cached.
    fn read_through(&self, query: Query) -> Result<Answer, String> {
        let read = |query| self.owner().read(query).map_err(RemoteError);
        let answer = match query {
            Query::Basic(address) => {
                self.lookup(&self.accounts, address, query, Answer::basic, read).map(Answer::Basic)
            }
            Query::Code(hash) => {
                self.lookup(&self.code, hash, query, Answer::code, read).map(Answer::Code)
            }
            Query::Storage(address, slot) => self
                .lookup(&self.storage, (address, slot), query, Answer::storage, read)
                .map(Answer::Storage),
            Query::BlockHash(number) => self
                .lookup(&self.block_hashes, number, query, Answer::block_hash, read)
                .map(Answer::BlockHash),
        };
        answer.map_err(|e| e.0)
    }

    /// `key`'s value from `cache`, else read (`query` through `read`) and cached, unless some
    /// other thread cached it meanwhile (then that value, so every worker sees one value per
    /// location); `pick` takes the value out of the answer of the matching kind.
    fn lookup<K, V>(
        &self,
        cache: &Sharded<K, V>,
        key: K,
        query: Query,
        pick: fn(Answer) -> Result<V, Answer>,
        read: impl FnOnce(Query) -> Result<Answer, RemoteError>,
    ) -> Result<V, RemoteError>
    where
        K: Hash + Eq,
        V: Clone,
    {
        if let Some(value) = cache.get(&key) {
            return Ok(value);
        }
        let value = pick(read(query)?).map_err(|other| Self::unexpected(query, other))?;
        Ok(cache.get_or_insert(key, value))
    }

    /// Asks the owner thread, and waits for its answer.
    fn ask(&self, query: Query) -> Result<Answer, RemoteError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.pending.fetch_add(1, Ordering::Release);
        if self.requests.send(Request { query, reply }).is_err() {
            self.pending.fetch_sub(1, Ordering::Release);
            return Err(RemoteError("state owner has stopped serving reads".to_string()));
        }
        let mut spins = 0u32;
        let answer = loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(RemoteError("state owner has stopped serving reads".to_string()));
            }
            match answer.try_recv() {
                Ok(answer) => break answer,
                Err(mpsc::TryRecvError::Empty) => {
                    spins = spins.saturating_add(1);
                    if spins < POLL_SPINS {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(RemoteError("state owner dropped a read".to_string()))
                }
            }
        };
        answer.map_err(RemoteError)
    }

    /// A database view with nobody serving it yet: its owner serves only inside
    /// [`RemoteDb::attach`]; in between (a run that outlives the owner's calls, see
    /// `stream.rs`), the workers' cold reads wait.
    pub(crate) fn detached() -> Self {
        let (requests, incoming) = mpsc::channel::<Request>();
        Self {
            requests,
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            owner: UnsafeCell::new(Owner { read: None, incoming, poisoned: None }),
            accounts: Sharded::new(),
            storage: Sharded::new(),
            code: Sharded::new(),
            block_hashes: Sharded::new(),
        }
    }

    /// Runs `f` on this thread as the view's owner, reading `db`: inside it,
    /// [`RemoteDb::serve_pending`] and this thread's reads go to `db`. The thread's earlier
    /// ownership, and the absent reader, are back when `f` returns or unwinds. `f` must not
    /// attach the view again.
    pub(crate) fn attach<DB, R>(&self, db: &mut DB, f: impl FnOnce() -> R) -> R
    where
        DB: Database,
        DB::Error: std::fmt::Display,
    {
        struct Detach<'r>(&'r RemoteDb, *const RemoteDb);
        impl Drop for Detach<'_> {
            fn drop(&mut self) {
                self.0.owner().read = None;
                OWNED.with(|owned| owned.set(self.1));
            }
        }
        let mut read = |query: Query| serve(db, query);
        let read: &mut dyn FnMut(Query) -> Result<Answer, String> = &mut read;
        // SAFETY: only the lifetime is erased; `Detach` removes the reference before this
        // function returns or unwinds, and only this thread uses it meanwhile (`owner`).
        let read = unsafe {
            std::mem::transmute::<
                &mut (dyn FnMut(Query) -> Result<Answer, String> + '_),
                &mut (dyn FnMut(Query) -> Result<Answer, String> + 'static),
            >(read)
        };
        let previous = OWNED.with(|owned| owned.replace(self));
        let _detach = Detach(self, previous);
        self.owner().read = Some(read);
        f()
    }

    /// Stops serving: reads waiting for the owner, and later ones, fail (a streaming run that
    /// is abandoned: its workers must not wait for an owner that is gone).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// On the owner thread: whether a read of the database panicked (its message, once).
    pub(crate) fn take_poisoned(&self) -> Option<String> {
        self.owner().poisoned.take()
    }

    /// On the owner thread: loads `addresses` into the cache.
    pub(crate) fn preheat(
        &self,
        addresses: impl IntoIterator<Item = Address>,
    ) -> Result<(), String> {
        for address in addresses {
            self.read_through(Query::Basic(address))
                .map_err(|e| format!("loading {address}: {e}"))?;
        }
        Ok(())
    }

    /// On the owner thread: makes sure the cache holds `address`'s account and `slots` of its
    /// storage as the database has them now. A streaming run's owner calls it before it
    /// commits a transaction's writes to the database, so the workers keep reading the values
    /// from before the block.
    pub(crate) fn pin(
        &self,
        address: Address,
        slots: impl IntoIterator<Item = U256>,
    ) -> Result<(), String> {
        self.read_through(Query::Basic(address))?;
        for slot in slots {
            self.read_through(Query::Storage(address, slot))?;
        }
        Ok(())
    }

    fn unexpected(query: Query, answer: Answer) -> RemoteError {
        RemoteError(format!("{query:?} answered with {answer:?}"))
    }

    /// `key`'s value from `cache`, or else read (`query`): directly on the owner thread (which
    /// serves the others first), from the owner elsewhere.
    fn cached<K, V>(
        &self,
        cache: &Sharded<K, V>,
        key: K,
        query: Query,
        pick: fn(Answer) -> Result<V, Answer>,
    ) -> Result<V, RemoteError>
    where
        K: Hash + Eq,
        V: Clone,
    {
        if self.on_owner_thread() {
            self.serve_pending();
            self.lookup(cache, key, query, pick, |query| {
                self.owner().read(query).map_err(RemoteError)
            })
        } else {
            self.lookup(cache, key, query, pick, |query| self.ask(query))
        }
    }
}

impl DatabaseRef for RemoteDb {
    type Error = RemoteError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.cached(&self.accounts, address, Query::Basic(address), Answer::basic)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.cached(&self.code, code_hash, Query::Code(code_hash), Answer::code)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        let query = Query::Storage(address, index);
        self.cached(&self.storage, (address, index), query, Answer::storage)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.cached(&self.block_hashes, number, Query::BlockHash(number), Answer::block_hash)
    }
}

/// Performs one read on the owner's database.
fn serve<DB>(db: &mut DB, query: Query) -> Result<Answer, String>
where
    DB: Database,
    DB::Error: std::fmt::Display,
{
    let answer = match query {
        Query::Basic(address) => db.basic(address).map(Answer::Basic),
        Query::Code(hash) => db.code_by_hash(hash).map(Answer::Code),
        Query::Storage(address, slot) => db.storage(address, slot).map(Answer::Storage),
        Query::BlockHash(number) => db.block_hash(number).map(Answer::BlockHash),
    };
    answer.map_err(|e| e.to_string())
}

/// What [`with_remote_db`] returns when its runner panicked: the caller's thread (a node's
/// engine thread, which owns the database) must get an error, never the unwinding panic.
pub(crate) trait FromRunnerPanic {
    /// The value standing for a runner that panicked with `message`.
    fn from_runner_panic(message: String) -> Self;
}

impl<T> FromRunnerPanic for Result<T, ExecutionError> {
    /// An engine fault ([`EngineFault::WorkerPanic`]): the engine failed, not the block.
    fn from_runner_panic(message: String) -> Self {
        Err(ExecutionError::Engine(EngineFault::WorkerPanic(format!(
            "state-read runner: {message}"
        ))))
    }
}

/// Runs `run` on this thread, as worker 0 of the engine, with a [`RemoteDb`] over `db`: reads
/// on this thread go to `db` directly, and the other workers' reads are served whenever this
/// thread reads or waits (see the module docs). `preheat` accounts are loaded into the cache
/// first. Returns what `run` returns; a panic in `run` is caught and returned as
/// [`FromRunnerPanic::from_runner_panic`] (an engine fault), so it never unwinds on the calling
/// thread.
pub(crate) fn with_remote_db<DB, T>(
    db: &mut DB,
    preheat: impl IntoIterator<Item = Address>,
    run: impl FnOnce(&RemoteDb) -> T,
) -> Result<T, String>
where
    DB: Database,
    DB::Error: std::fmt::Display,
    T: FromRunnerPanic,
{
    let remote = RemoteDb::detached();
    remote.attach(db, || {
        remote.preheat(preheat)?;
        let serve_others = || remote.serve_pending();
        let ran = velarium_numa_runtime::with_service_hook(&serve_others, || {
            catch_unwind(AssertUnwindSafe(|| run(&remote)))
        });
        // A read that panicked ends the run as an engine fault, whatever the workers made of
        // the error they got: the state owner failed, not the block.
        if let Some(message) = remote.take_poisoned() {
            return Ok(T::from_runner_panic(message));
        }
        Ok(ran.unwrap_or_else(|panic| T::from_runner_panic(super::panic_message(&panic))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::database::{CacheDB, EmptyDB};

    #[test]
    fn reads_cross_threads_once_and_preheat_is_served_from_cache() {
        let mut db = CacheDB::new(EmptyDB::default());
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        db.insert_account_info(a, AccountInfo { balance: U256::from(7), ..Default::default() });
        db.insert_account_storage(b, U256::from(1), U256::from(42)).unwrap();
        let result = with_remote_db(&mut db, [a], |remote| -> Result<_, ExecutionError> {
            Ok(std::thread::scope(|s| {
                // Spawn all before joining any, so the reads really are concurrent.
                #[allow(clippy::needless_collect)]
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            (
                                remote.basic_ref(a).unwrap().unwrap().balance,
                                remote.storage_ref(b, U256::from(1)).unwrap(),
                                remote.basic_ref(Address::repeat_byte(9)).unwrap(),
                            )
                        })
                    })
                    .collect();
                // This thread owns the database: it serves while it waits, as worker 0 does.
                while !handles.iter().all(|h| h.is_finished()) {
                    velarium_numa_runtime::service();
                    std::thread::yield_now();
                }
                handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
            }))
        })
        .unwrap()
        .unwrap();
        assert_eq!(result.len(), 4);
        for (balance, slot, missing) in result {
            assert_eq!(balance, U256::from(7));
            assert_eq!(slot, U256::from(42));
            assert_eq!(missing, None);
        }
    }

    #[derive(Debug)]
    struct FailingDb;

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct Fire;
    impl DBErrorMarker for Fire {}

    impl Database for FailingDb {
        type Error = Fire;
        fn basic(&mut self, _: Address) -> Result<Option<AccountInfo>, Fire> {
            Err(Fire)
        }
        fn code_by_hash(&mut self, _: B256) -> Result<Bytecode, Fire> {
            Err(Fire)
        }
        fn storage(&mut self, _: Address, _: U256) -> Result<U256, Fire> {
            Err(Fire)
        }
        fn block_hash(&mut self, _: u64) -> Result<B256, Fire> {
            Err(Fire)
        }
    }

    #[test]
    fn owner_errors_reach_the_worker_and_preheat_errors_the_caller() {
        let err = with_remote_db(&mut FailingDb, [], |remote| -> Result<_, ExecutionError> {
            Ok(remote.storage_ref(Address::ZERO, U256::ZERO).unwrap_err().to_string())
        })
        .unwrap()
        .unwrap();
        assert_eq!(err, "disk on fire");
        // The same from another worker, served while the owner waits.
        let err = with_remote_db(&mut FailingDb, [], |remote| -> Result<_, ExecutionError> {
            Ok(std::thread::scope(|s| {
                let other = s.spawn(|| remote.basic_ref(Address::ZERO).unwrap_err().to_string());
                while !other.is_finished() {
                    velarium_numa_runtime::service();
                }
                other.join().unwrap()
            }))
        })
        .unwrap()
        .unwrap();
        assert_eq!(err, "disk on fire");
        let err = with_remote_db(&mut FailingDb, [Address::ZERO], |_| Ok::<_, ExecutionError>(()))
            .unwrap_err();
        assert!(err.contains("disk on fire"), "{err}");
    }

    /// A database whose reads panic.
    #[derive(Debug)]
    struct PanickingDb;

    impl Database for PanickingDb {
        type Error = Fire;
        fn basic(&mut self, _: Address) -> Result<Option<AccountInfo>, Fire> {
            panic!("corrupt page")
        }
        fn code_by_hash(&mut self, _: B256) -> Result<Bytecode, Fire> {
            panic!("corrupt page")
        }
        fn storage(&mut self, _: Address, _: U256) -> Result<U256, Fire> {
            panic!("corrupt page")
        }
        fn block_hash(&mut self, _: u64) -> Result<B256, Fire> {
            panic!("corrupt page")
        }
    }

    #[test]
    fn a_read_that_panics_fails_every_later_read_and_the_run() {
        let seen = std::cell::RefCell::new(None);
        let got = with_remote_db(&mut PanickingDb, [], |remote| -> Result<(), ExecutionError> {
            let first = remote.basic_ref(Address::ZERO).unwrap_err().to_string();
            // Served by the owner for another worker: the database is not touched again.
            let second = std::thread::scope(|s| {
                let other = s.spawn(|| remote.storage_ref(Address::ZERO, U256::ZERO));
                while !other.is_finished() {
                    velarium_numa_runtime::service();
                }
                other.join().unwrap().unwrap_err().to_string()
            });
            *seen.borrow_mut() = Some((first, second));
            Ok(())
        })
        .expect("a read panic is not a state-read failure");
        let errors = seen.into_inner().unwrap();
        assert!(errors.0.contains("corrupt page"), "{}", errors.0);
        assert!(errors.1.contains("earlier read"), "{}", errors.1);
        match got {
            Err(ExecutionError::Engine(EngineFault::WorkerPanic(message))) => {
                assert!(message.contains("corrupt page"), "{message}")
            }
            other => panic!("expected an engine fault, got {other:?}"),
        }
    }

    #[test]
    fn a_runner_panic_is_an_engine_fault_on_the_owner_thread() {
        let mut db = CacheDB::new(EmptyDB::default());
        let a = Address::repeat_byte(1);
        db.insert_account_info(a, AccountInfo { balance: U256::from(7), ..Default::default() });
        // The runner reads first, then panics.
        let got = with_remote_db(&mut db, [], |remote| -> Result<(), ExecutionError> {
            assert_eq!(remote.basic_ref(a).unwrap().unwrap().balance, U256::from(7));
            panic!("runner blew up");
        })
        .expect("a runner panic is not a state-read failure");
        match got {
            Err(ExecutionError::Engine(EngineFault::WorkerPanic(message))) => {
                assert!(message.contains("runner blew up"), "{message}")
            }
            other => panic!("expected an engine fault, got {other:?}"),
        }
        // The database is still usable by its owner.
        assert_eq!(db.basic(a).unwrap().unwrap().balance, U256::from(7));
    }
}
