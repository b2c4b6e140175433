//! The persistent worker pools and the reused per-block buffers.
//!
//! One pool per thread count, created on first use and reused by every block, so a block pays
//! no thread start-up. Blocks executed concurrently on the same pool queue for it.

use super::{
    commit::OutcomeSlot, db::BlockMemory, fault::EngineFault, fees::FeeLedger, worker::TxOutcome,
};
use std::sync::{atomic::AtomicBool, mpsc, Arc, Mutex, OnceLock};
use velarium_scheduler::Scheduler;

/// A pool of worker threads (the calling thread is worker 0, see `velarium-numa-runtime`).
#[derive(Debug, Clone)]
pub(crate) struct WorkerPool {
    pool: Arc<velarium_numa_runtime::WorkerPool>,
    /// Helper jobs of [`WorkerPool::in_background`] whose work is done (or was taken by the
    /// caller) but whose helper may not have returned yet: dropped, that is waited for, at the
    /// pool's next use, by when they cost nothing, rather than by a caller that needs only the
    /// result (the pool's next job would wait for them anyway).
    finishing: Arc<Mutex<Vec<velarium_numa_runtime::DetachedJob>>>,
}

impl WorkerPool {
    /// The process-wide pool of `threads` workers (pinned to cores after [`pin_workers`] or with
    /// `VELARIUM_PIN_WORKERS=1`).
    pub(crate) fn get(threads: usize) -> Result<Self, EngineFault> {
        Self::get_keyed(threads, false)
    }

    /// The process-wide pool of `threads` workers for streaming runs (see `stream.rs`): apart
    /// from the others, so that a run left waiting for its caller never holds up a block of
    /// another executor.
    pub(crate) fn get_streaming(threads: usize) -> Result<Self, EngineFault> {
        Self::get_keyed(threads, true)
    }

    fn get_keyed(threads: usize, streaming: bool) -> Result<Self, EngineFault> {
        type Pools = Vec<((usize, bool), WorkerPool)>;
        static POOLS: OnceLock<Mutex<Pools>> = OnceLock::new();
        let threads = threads.max(1);
        let mut pools =
            POOLS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, pool)) = pools.iter().find(|(key, _)| *key == (threads, streaming)) {
            return Ok(pool.clone());
        }
        // Opt-in (see `pin_workers`).
        let pin = PIN_WORKERS.load(std::sync::atomic::Ordering::Relaxed)
            || std::env::var("VELARIUM_PIN_WORKERS").is_ok_and(|v| env_flag_on(&v));
        let config = velarium_numa_runtime::PoolConfig { threads, pin };
        let pool = velarium_numa_runtime::WorkerPool::new(config)
            .map_err(|e| EngineFault::PoolStart { threads, reason: e.to_string() })?;
        let pool = Self { pool: Arc::new(pool), finishing: Arc::default() };
        pools.push(((threads, streaming), pool.clone()));
        Ok(pool)
    }

    /// Number of worker threads.
    pub(crate) fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Starts `work(helper_index)` on each of the pool's helpers (not on the calling thread)
    /// and returns at once (see `velarium_numa_runtime::WorkerPool::start_detached`).
    pub(crate) fn start_detached(
        &self,
        work: Arc<dyn Fn(usize) + Send + Sync>,
    ) -> velarium_numa_runtime::DetachedJob {
        self.reap();
        self.pool.start_detached(work)
    }

    /// Wakes the helpers for a block the caller is preparing (see
    /// `velarium_numa_runtime::WorkerPool::prewake`): they wait for it spinning, for
    /// [`PREWAKE_SPIN`] at most.
    pub(crate) fn prewake(&self) {
        self.pool.prewake(PREWAKE_SPIN);
    }

    /// Drops the finished helper jobs of [`WorkerPool::in_background`].
    fn reap(&self) {
        let finished =
            std::mem::take(&mut *self.finishing.lock().unwrap_or_else(|e| e.into_inner()));
        drop(finished);
    }

    /// Runs `work` on the pool's first helper while the caller goes on: a block's sequential
    /// tail (uniting the fold's shards beside the receipts) on the core the block's own helper
    /// has just left, instead of on the janitor, which has to be woken and rarely got to it
    /// before the caller needed the result. Whoever gets to it first runs it, as with
    /// [`in_background`] (which a one-thread pool uses). Then, on the helper only (after the
    /// result is sent), `then` runs: a one-thread pool, or a caller that ran `work` itself
    /// ([`Background::wait`] says so), never runs it.
    pub(crate) fn in_background<T, F, G>(&self, work: F, then: G) -> Background<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
        G: FnOnce() + Send + 'static,
    {
        if self.threads() < 2 {
            return in_background(work);
        }
        let (mut background, run) = Background::new(work, Some(Box::new(then)));
        let job = self.start_detached(Arc::new(move |helper| {
            if helper == 1 {
                run();
            }
        }));
        background.helper = Some((job, Arc::clone(&self.finishing)));
        background
    }

    /// Runs `work(worker_index)` once on each of the pool's workers (worker 0 is the calling
    /// thread) and waits for all of them. A panic is caught per worker (`on_panic` runs right
    /// away, to stop the others) and the first one is returned after every worker finished.
    pub(crate) fn broadcast<F, P>(&self, work: F, on_panic: P) -> Result<(), EngineFault>
    where
        F: Fn(usize) + Sync,
        P: Fn() + Sync,
    {
        self.reap();
        self.pool.broadcast(work, on_panic).map_err(EngineFault::WorkerPanic)
    }
}

/// How long helpers woken ahead of a block wait for it (see [`WorkerPool::prewake`]): longer
/// than a block's preparation takes (its pre-execution changes and the set-up of Block-STM,
/// tens of microseconds on the mainnet blocks), short enough to cost little where the block
/// then needs no helper.
const PREWAKE_SPIN: std::time::Duration = std::time::Duration::from_micros(300);

/// Whether pools created from now on pin their workers (see [`pin_workers`]).
static PIN_WORKERS: AtomicBool = AtomicBool::new(false);

/// Pins the workers of every worker pool created from now on to cores (each helper to its own,
/// the calling thread to the first for each block; see `velarium_numa_runtime::PoolConfig::pin`),
/// as `VELARIUM_PIN_WORKERS=1` does. Opt-in: on the 2-core development machine it removed the
/// by-turns runs of tiny blocks but measured no better on the mainnet blocks, and a pinned
/// worker cannot move off a core another program is using. Pools already created keep their
/// setting: call it before the first block.
pub fn pin_workers() {
    PIN_WORKERS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a flag's environment value means "on", by the rule clap applies to the same
/// variable behind `velarium-reth --velarium.pin-workers`: empty, `0`, `n`, `no`, `f`, `false`
/// and `off` (any case) are off, anything else is on.
fn env_flag_on(value: &str) -> bool {
    !value.is_empty()
        && !["0", "n", "no", "f", "false", "off"].iter().any(|off| value.eq_ignore_ascii_case(off))
}

/// A panic payload's message.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    velarium_numa_runtime::panic_message(&**panic)
}

/// The per-block structures of a finished block, kept for reuse: a block then works in memory
/// the previous one already had, instead of fresh (zeroed, cache-cold) pages.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) memory: BlockMemory,
    pub(crate) scheduler: Scheduler,
    pub(crate) fees: FeeLedger,
    pub(crate) outcomes: Vec<OutcomeSlot>,
    /// Some outcome's bloom is left to every worker (see `bloom.rs`).
    pub(crate) shared_blooms: AtomicBool,
    /// Workers of the block it was taken for.
    pub(crate) workers: usize,
}

/// Finished workspaces: cleared ones, and those the janitor has not cleared yet.
struct Kept {
    clean: Vec<Workspace>,
    dirty: Vec<Workspace>,
}

static WORKSPACES: Mutex<Kept> = Mutex::new(Kept { clean: Vec::new(), dirty: Vec::new() });
/// How many finished workspaces are kept for reuse.
const KEPT: usize = 4;
/// Background drops allowed to wait for the janitor before they are done inline (a janitor
/// starved of idle cores must not make memory pile up).
const MAX_PENDING_DROPS: usize = 8;
static PENDING_DROPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A workspace for a block of `block_size` transactions on `threads` workers: a kept one (see
/// `Kept::pick`; one the janitor has not got to is cleared here: the janitor runs only on idle
/// cores and may be starved), else a fresh one.
pub(crate) fn take_workspace(block_size: usize, threads: usize, state_clear: bool) -> Workspace {
    let reused = {
        let mut kept = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner());
        match kept.pick(threads) {
            Some((true, i)) => Some(kept.clean.remove(i)),
            Some((false, i)) => {
                let mut ws = kept.dirty.remove(i);
                drop(kept);
                ws.clear();
                Some(ws)
            }
            None => None,
        }
    };
    match reused {
        Some(mut ws) => {
            // Cleared already: these only size the structures for this block.
            ws.memory.reset(block_size, threads);
            ws.scheduler.reset(block_size, threads);
            ws.fees.reset(block_size, state_clear);
            ws.outcomes.truncate(block_size);
            ws.outcomes.resize_with(block_size, Default::default);
            *ws.shared_blooms.get_mut() = false;
            ws.workers = threads;
            ws
        }
        None => Workspace {
            memory: BlockMemory::with_workers(block_size, threads),
            scheduler: Scheduler::with_workers(block_size, threads),
            fees: FeeLedger::new(block_size, state_clear),
            outcomes: (0..block_size).map(|_| Default::default()).collect(),
            shared_blooms: AtomicBool::new(false),
            workers: threads,
        },
    }
}

impl Kept {
    /// Which kept workspace to reuse for `threads` workers (cleared or not, and where): one
    /// shaped for this many workers first (`MvMemory::reset` builds a memory shaped for
    /// another count anew, cold: a process alternating thread counts would never reuse one),
    /// a cleared one before one the janitor has not got to, the latest first.
    fn pick(&self, threads: usize) -> Option<(bool, usize)> {
        [(true, true), (false, true), (true, false), (false, false)].into_iter().find_map(
            |(clean, must_fit)| {
                let list = if clean { &self.clean } else { &self.dirty };
                list.iter()
                    .rposition(|ws| !must_fit || ws.memory.shaped_for(threads))
                    .map(|i| (clean, i))
            },
        )
    }
}

impl Workspace {
    /// Drops what the block left in it (multi-version values, read sets, outcomes not taken).
    fn clear(&mut self) {
        self.memory.clear();
        for slot in &mut self.outcomes {
            *slot.get_mut() = None;
        }
    }

    /// Every transaction's outcome, moved out in order (an engine fault if one is missing).
    pub(crate) fn take_outcomes(&mut self) -> Result<Vec<TxOutcome>, EngineFault> {
        let mut taken = Vec::with_capacity(self.outcomes.len());
        for i in 0..self.outcomes.len() {
            taken.push(self.take_outcome(i)?);
        }
        Ok(taken)
    }

    /// Asks the cache for transaction `i`'s logs bloom, if it has one (the receipts' loop reads
    /// it shortly).
    pub(crate) fn prefetch_bloom(&mut self, i: usize) {
        if let Some(Some(outcome)) = self.outcomes.get_mut(i).map(|slot| slot.get_mut().as_ref()) {
            if let super::bloom::LogsBloom::Computed(bloom) = &outcome.bloom {
                super::commit::prefetch_lines(
                    std::ptr::from_ref::<alloy_primitives::Bloom>(bloom) as usize,
                    4,
                );
            }
        }
    }

    /// Transaction `i`'s outcome, in place: the receipts' loop takes out only the logs (a whole
    /// outcome is eight cache lines, written by whichever worker executed the transaction, often
    /// on another core); the rest goes with the workspace's clearing, off the critical path.
    pub(crate) fn outcome_mut(&mut self, i: usize) -> Result<&mut TxOutcome, EngineFault> {
        self.outcomes[i].get_mut().as_mut().ok_or(EngineFault::MissingOutcome(i as u32))
    }

    /// Transaction `i`'s outcome, moved out.
    pub(crate) fn take_outcome(&mut self, i: usize) -> Result<TxOutcome, EngineFault> {
        self.outcomes[i].get_mut().take().ok_or(EngineFault::MissingOutcome(i as u32))
    }

    /// The first transaction without an outcome, if any.
    pub(crate) fn first_missing(&mut self) -> Option<u32> {
        self.outcomes.iter_mut().position(|slot| slot.get_mut().is_none()).map(|i| i as u32)
    }
}

/// A block's workspace, passed from the calling thread to the helper that united the block's
/// fold (see `WorkerPool::in_background`), which drops the outcomes it made and gives the
/// workspace back (see [`give_back`]).
///
/// An outcome (its state diff's maps and accounts, its result) is memory from the allocator of
/// the worker that executed the transaction. Dropped by another thread (the janitor, which
/// clears a workspace), every piece goes back to that worker's pages as a cross-thread free,
/// which the worker collects again, across the cores, when it next allocates. The helper is
/// idle once it has united the fold, and waits there for the workspace instead: its frees stay
/// on its core, and the caller only stores the workspace (a wake-up of the janitor, or of a
/// helper gone to sleep, would cost it microseconds). The caller's own outcomes are still the
/// janitor's.
#[derive(Default)]
pub(crate) struct HandOff(Mutex<HandOffState>);

#[derive(Default)]
enum HandOffState {
    /// Nobody has it yet (the helper may be waiting for it).
    #[default]
    Open,
    /// The caller left it for the helper.
    Deposited(Box<Workspace>),
    /// Taken, or the helper gave up waiting.
    Closed,
}

/// How long the helper waits for the caller to finish the receipts and leave the workspace: a
/// block's receipts take 0.1-0.35 ms for 1,000 transfers here, and the union the helper ran
/// meanwhile usually took longer.
const HAND_OFF_WAIT: std::time::Duration = std::time::Duration::from_micros(500);

impl HandOff {
    /// The caller's side: the workspace, once the receipts no longer need it (given back here
    /// if the helper stopped waiting).
    pub(crate) fn deposit(&self, workspace: Workspace) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            HandOffState::Open => *state = HandOffState::Deposited(Box::new(workspace)),
            HandOffState::Deposited(_) | HandOffState::Closed => {
                drop(state);
                give_back(workspace);
            }
        }
    }

    /// The caller's side, where it gives no workspace (the block ran on one worker: nothing of
    /// it is the helper's): the helper stops waiting at once.
    pub(crate) fn close(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = HandOffState::Closed;
    }

    /// The caller's side, where it ran the helper's work itself: nobody else will take the
    /// workspace.
    pub(crate) fn reclaim(&self) {
        let state = std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(|e| e.into_inner()),
            HandOffState::Closed,
        );
        if let HandOffState::Deposited(workspace) = state {
            give_back(*workspace);
        }
    }

    /// The helper's side: waits for the workspace ([`HAND_OFF_WAIT`] at most), drops the
    /// outcomes worker `helper` made and gives the workspace back.
    pub(crate) fn collect(&self, helper: usize) {
        let deadline = std::time::Instant::now() + HAND_OFF_WAIT;
        let workspace = loop {
            {
                let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
                if !matches!(*state, HandOffState::Open) || std::time::Instant::now() >= deadline {
                    // Taken, closed by the caller, or given up on: closed from now on.
                    match std::mem::replace(&mut *state, HandOffState::Closed) {
                        HandOffState::Deposited(workspace) => break Some(workspace),
                        _ => break None,
                    }
                }
            }
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        };
        if let Some(mut workspace) = workspace {
            for slot in workspace.outcomes.iter_mut().filter(|slot| slot.maker() == helper) {
                *slot.get_mut() = None;
            }
            give_back(*workspace);
        }
    }
}

/// What the janitor thread does between blocks, off the critical path.
enum Chore {
    /// Clear a finished workspace (if a block has not taken it meanwhile).
    Clear,
    /// Drop what a block no longer needs (its transactions' state diffs, say).
    Drop(#[allow(dead_code)] Box<dyn std::any::Any + Send>),
    /// Run a piece of the block's own work beside the calling thread.
    Run(Box<dyn FnOnce() + Send>),
}

/// The janitor's queue (`None` if its thread could not start: chores then run inline).
fn janitor() -> Option<&'static Mutex<mpsc::Sender<Chore>>> {
    static JANITOR: OnceLock<Option<Mutex<mpsc::Sender<Chore>>>> = OnceLock::new();
    JANITOR
        .get_or_init(|| {
            let (send, receive) = mpsc::channel::<Chore>();
            std::thread::Builder::new()
                .name("velarium-janitor".into())
                .spawn(move || {
                    // Housekeeping never takes a core from the workers.
                    velarium_numa_runtime::run_only_when_idle();
                    for chore in receive {
                        run_chore(chore);
                    }
                })
                .ok()
                .map(|_| Mutex::new(send))
        })
        .as_ref()
}

fn run_chore(chore: Chore) {
    match chore {
        Chore::Clear => {
            let dirty = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner()).dirty.pop();
            if let Some(mut workspace) = dirty {
                // A panic while clearing loses the workspace, nothing else.
                let cleared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    workspace.clear();
                    workspace
                }));
                if let Ok(workspace) = cleared {
                    WORKSPACES.lock().unwrap_or_else(|e| e.into_inner()).clean.push(workspace);
                }
            }
        }
        Chore::Drop(value) => {
            drop(value);
            PENDING_DROPS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        Chore::Run(work) => work(),
    }
}

fn send_chore(chore: Chore) {
    let chore = match janitor() {
        Some(queue) => match queue.lock().unwrap_or_else(|e| e.into_inner()).send(chore) {
            Ok(()) => return,
            Err(mpsc::SendError(chore)) => chore,
        },
        None => chore,
    };
    run_chore(chore);
}

/// Returns a workspace for reuse by a later block: the janitor clears it in the background (a
/// few are kept; the rest are dropped, in the background too). A one-worker block's workspace
/// is cleared (or dropped) here instead, on the core that reuses it.
///
/// Why, measured: with one worker, every line of a workspace the janitor cleared on another
/// core comes back across cores in the next block. Where the two cores share no cache (the
/// 2-core machine's far placement, a 300-600 ns round trip; the lent 16-core Xeon's 280 ns is
/// such a machine) that made the one-worker engine 15-50% slower on 1,000-transaction blocks: whole
/// processes run by turns at 340 ns (2026-12-05 20:08 UTC), janitor then here, here, janitor:
/// eth_transfers 0.91x, 1.41x, 1.37x, 1.41x (presumably the placement had moved back by the last),
/// payouts 0.70x, 1.02x, 1.03x, 1.05x, builder_tips 0.68x, 0.91x, 0.86x, 0.93x. Where they share
/// one it costs 0-5% (three rounds of `bench` paired with the janitor's version, 82-99 ns: at 1
/// thread x0.93-x1.04, `replay --threads 1 --min-parallel-txs 0` x1.00). With two or more
/// workers the janitor stays: there the clear runs on a core the block left idle, and clearing
/// inline lost 5-13% at either placement.
pub(crate) fn give_back(mut workspace: Workspace) {
    let here = workspace.workers == 1;
    if here {
        workspace.clear();
    }
    let surplus = {
        let mut kept = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner());
        if kept.clean.len() + kept.dirty.len() < KEPT {
            if here {
                kept.clean.push(workspace);
            } else {
                kept.dirty.push(workspace);
            }
            None
        } else {
            Some(workspace)
        }
    };
    match surplus {
        None if here => {}
        None => send_chore(Chore::Clear),
        Some(workspace) if here => drop(workspace),
        Some(workspace) => discard(workspace),
    }
}

/// Drops `value` in the background (inline when too many drops already wait for the janitor).
pub(crate) fn discard<T: Send + 'static>(value: T) {
    use std::sync::atomic::Ordering;
    if PENDING_DROPS.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_DROPS {
        PENDING_DROPS.fetch_sub(1, Ordering::Relaxed);
        drop(value);
        return;
    }
    send_chore(Chore::Drop(Box::new(value)));
}

/// Work handed to the janitor by [`in_background`], or to a pool's helper by
/// [`WorkerPool::in_background`]: whoever gets to it first runs it (the janitor or the helper,
/// or the caller when it needs the result and the work has not been started).
pub(crate) struct Background<T> {
    work: Arc<Mutex<Option<BackgroundWork<T>>>>,
    result: mpsc::Receiver<std::thread::Result<T>>,
    /// The helper's job, for work handed to a pool's helper ([`WorkerPool::in_background`]),
    /// and where it goes once the result is in (see [`WorkerPool::finishing`]).
    helper: Option<(velarium_numa_runtime::DetachedJob, HelperJobs)>,
}

type BackgroundWork<T> = Box<dyn FnOnce() -> T + Send>;

type HelperJobs = Arc<Mutex<Vec<velarium_numa_runtime::DetachedJob>>>;

/// How long [`Background::wait`] polls for a result being computed before it sleeps: the work
/// it waits for is a block's tail (a few hundred microseconds at most), and a sleep's wake-up
/// would cost about as much.
const RESULT_SPIN: std::time::Duration = std::time::Duration::from_millis(2);

impl<T: Send + 'static> Background<T> {
    /// The handle of `work`, and what runs it elsewhere: takes it unless the caller of
    /// [`Background::wait`] took it first, sends its result, then runs `then` (so never on the
    /// caller of [`Background::wait`]).
    fn new<F>(
        work: F,
        then: Option<Box<dyn FnOnce() + Send>>,
    ) -> (Self, impl Fn() + Send + Sync + 'static)
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let work: Arc<Mutex<Option<BackgroundWork<T>>>> =
            Arc::new(Mutex::new(Some(Box::new(work))));
        let (send, result) = mpsc::sync_channel(1);
        let send = Mutex::new(send);
        let then = Mutex::new(then);
        let queued = Arc::clone(&work);
        let run = move || {
            let unstarted = queued.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(work) = unstarted {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                let _ = send.lock().unwrap_or_else(|e| e.into_inner()).send(result);
                if let Some(then) = then.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    // A panic here loses what `then` was tidying up, nothing else.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(then));
                }
            }
        };
        (Self { work, result, helper: None }, run)
    }

    /// The work's result, and whether it ran here: run here if nobody has started it, else
    /// polled for (an engine fault if it panicked).
    pub(crate) fn wait(self) -> Result<(T, bool), EngineFault> {
        let unstarted = self.work.lock().unwrap_or_else(|e| e.into_inner()).take();
        let ran_here = unstarted.is_some();
        let result = match unstarted {
            Some(work) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)),
            None => {
                let since = std::time::Instant::now();
                loop {
                    match self.result.try_recv() {
                        Ok(result) => break result,
                        Err(mpsc::TryRecvError::Empty) if since.elapsed() < RESULT_SPIN => {
                            for _ in 0..64 {
                                std::hint::spin_loop();
                            }
                        }
                        Err(mpsc::TryRecvError::Empty) => match self.result.recv() {
                            Ok(result) => break result,
                            Err(_) => return Err(vanished()),
                        },
                        Err(mpsc::TryRecvError::Disconnected) => return Err(vanished()),
                    }
                }
            }
        };
        if let Some((job, finishing)) = self.helper {
            finishing.lock().unwrap_or_else(|e| e.into_inner()).push(job);
        }
        result
            .map(|result| (result, ran_here))
            .map_err(|panic| EngineFault::WorkerPanic(panic_message(&panic)))
    }
}

fn vanished() -> EngineFault {
    EngineFault::WorkerPanic("background work vanished".into())
}

/// Runs `work` on the janitor thread while the caller goes on: the block's sequential tail
/// uses the core its sleeping workers leave free.
pub(crate) fn in_background<T, F>(work: F) -> Background<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (background, run) = Background::new(work, None);
    send_chore(Chore::Run(Box::new(run)));
    background
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_work_returns_its_value_whoever_runs_it() {
        for n in 0..50u64 {
            // Waited for at once (usually run here) or later (usually run by the janitor).
            let job = in_background(move || n * 2);
            if n % 2 == 1 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert_eq!(job.wait().unwrap().0, n * 2);
        }
    }

    #[test]
    fn a_panic_in_background_work_is_an_engine_fault() {
        let job = in_background(|| -> u32 { panic!("boom in the background") });
        match job.wait() {
            Err(EngineFault::WorkerPanic(message)) => {
                assert!(message.contains("boom"), "{message}")
            }
            other => panic!("expected a worker panic, got {other:?}"),
        }
    }

    #[test]
    fn helper_work_runs_once_returns_its_value_and_leaves_the_pool_usable() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for threads in [1, 2, 3] {
            let pool = WorkerPool::get(threads).unwrap();
            let runs = Arc::new(AtomicUsize::new(0));
            let thens = Arc::new(AtomicUsize::new(0));
            let mut on_helper = 0;
            for n in 0..40u64 {
                let counted = Arc::clone(&runs);
                let then = Arc::clone(&thens);
                let job = pool.in_background(
                    move || {
                        counted.fetch_add(1, Ordering::Relaxed);
                        let name = std::thread::current().name().map(str::to_owned);
                        (n * 2, name)
                    },
                    move || _ = then.fetch_add(1, Ordering::Relaxed),
                );
                if n % 2 == 1 {
                    // Long enough for the helper (or the janitor) to take it, on a busy
                    // machine too.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                let ((value, ran_on), ran_here) = job.wait().unwrap();
                assert_eq!(value, n * 2);
                let helper =
                    ran_on.as_deref().is_some_and(|name| name.starts_with("velarium-worker"));
                on_helper += usize::from(helper);
                assert_eq!(ran_here, ran_on == std::thread::current().name().map(str::to_owned));
            }
            // Every job ran exactly once, whoever ran it.
            assert_eq!(runs.load(Ordering::Relaxed), 40, "{threads} threads");
            // `then` ran after every job a helper ran, and nowhere else (the pool's next job
            // waits for the last one).
            pool.broadcast(|_| {}, || {}).unwrap();
            assert_eq!(thens.load(Ordering::Relaxed), on_helper, "{threads} threads");
            if threads >= 2 {
                assert!(on_helper > 0, "no job ran on a helper of a {threads}-thread pool");
            } else {
                assert_eq!(on_helper, 0, "a one-thread pool has no helper");
            }
            // The pool's next job runs on every worker.
            let workers = AtomicUsize::new(0);
            pool.broadcast(|_| _ = workers.fetch_add(1, Ordering::Relaxed), || {}).unwrap();
            assert_eq!(workers.load(Ordering::Relaxed), threads);
        }
    }

    #[test]
    fn a_hand_off_reaches_the_waiting_helper_or_goes_back_at_once() {
        let closed =
            |hand_off: &HandOff| matches!(*hand_off.0.lock().unwrap(), HandOffState::Closed);
        // Left first, then taken by the helper.
        let hand_off = HandOff::default();
        hand_off.deposit(take_workspace(8, 2, true));
        assert!(matches!(*hand_off.0.lock().unwrap(), HandOffState::Deposited(_)));
        hand_off.collect(1);
        assert!(closed(&hand_off));
        // The helper waits for it on another thread.
        let hand_off = Arc::new(HandOff::default());
        let helper = {
            let hand_off = Arc::clone(&hand_off);
            std::thread::spawn(move || hand_off.collect(1))
        };
        // Most likely after it started waiting (either order is a valid hand-off).
        std::thread::sleep(std::time::Duration::from_micros(100));
        hand_off.deposit(take_workspace(8, 2, true));
        helper.join().unwrap();
        assert!(closed(&hand_off));
        // The helper gave up waiting: a late workspace goes back at once, not into the hand-off.
        let hand_off = HandOff::default();
        let started = std::time::Instant::now();
        hand_off.collect(1);
        assert!(started.elapsed() >= HAND_OFF_WAIT);
        hand_off.deposit(take_workspace(8, 2, true));
        assert!(closed(&hand_off));
        // The caller ran the helper's work itself: it takes the workspace back.
        let hand_off = HandOff::default();
        hand_off.deposit(take_workspace(8, 2, true));
        hand_off.reclaim();
        assert!(closed(&hand_off));
        // No workspace for the helper (a block on one worker): it does not wait.
        let hand_off = HandOff::default();
        hand_off.close();
        let started = std::time::Instant::now();
        hand_off.collect(1);
        assert!(started.elapsed() < HAND_OFF_WAIT * 100);
        assert!(closed(&hand_off));
    }

    #[test]
    fn a_panic_in_helper_work_is_an_engine_fault_and_the_pool_goes_on() {
        let pool = WorkerPool::get(2).unwrap();
        for wait_first in [false, true] {
            let job = pool.in_background(|| -> u32 { panic!("boom on the helper") }, || {});
            if wait_first {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            match job.wait() {
                Err(EngineFault::WorkerPanic(message)) => {
                    assert!(message.contains("boom"), "{message}")
                }
                other => panic!("expected a worker panic, got {other:?}"),
            }
            assert_eq!(pool.in_background(|| 7u32, || {}).wait().unwrap().0, 7);
        }
    }

    fn leftover() -> TxOutcome {
        TxOutcome {
            result: Err(revm::context::result::EVMError::Custom("left over".into())),
            fee: alloy_primitives::U256::from(1),
            lazy_recipient: None,
            lazy_recipient_base: None,
            lazy_sender: None,
            lazy_beneficiary: None,
            storage_credit: None,
            trace: None,
            bloom: super::super::bloom::LogsBloom::Empty,
            layout: super::super::commit::DiffLayout::default(),
        }
    }

    #[test]
    fn a_given_back_workspace_comes_back_cleared_and_sized() {
        for _ in 0..20 {
            let mut ws = take_workspace(8, 2, true);
            assert_eq!(ws.outcomes.len(), 8);
            assert_eq!(ws.first_missing(), Some(0));
            // An outcome the block did not take.
            *ws.outcomes[5].get_mut() = Some(leftover());
            give_back(ws);
            // Taken right away (cleared here) or after the janitor cleared it: clean either way.
            let mut ws = take_workspace(6, 2, true);
            assert_eq!(ws.outcomes.len(), 6);
            assert_eq!(ws.first_missing(), Some(0));
            assert!(ws.take_outcome(5).is_err(), "nothing left over from the last block");
            give_back(ws);
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_one_worker_workspace_is_cleared_where_it_is_given_back() {
        let mut ws = take_workspace(8, 1, true);
        *ws.outcomes[3].get_mut() = Some(leftover());
        give_back(ws);
        // Cleared before `give_back` returned: kept clean (not left to the janitor), unless
        // the kept ones were full, when it was dropped.
        let mut kept = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner());
        assert!(kept.dirty.iter().all(|ws| ws.workers != 1), "no dirty one-worker workspace");
        assert!(kept
            .clean
            .iter_mut()
            .all(|ws| ws.outcomes.iter_mut().all(|slot| slot.get_mut().is_none())));
    }

    #[test]
    fn a_workspace_shaped_for_the_thread_count_is_reused_first() {
        let fresh = |threads| Workspace {
            memory: BlockMemory::with_workers(4, threads),
            scheduler: Scheduler::with_workers(4, threads),
            fees: FeeLedger::new(4, true),
            outcomes: Vec::new(),
            shared_blooms: AtomicBool::new(false),
            workers: threads,
        };
        let kept = Kept { clean: vec![fresh(2), fresh(1)], dirty: vec![fresh(2), fresh(1)] };
        assert_eq!(kept.pick(2), Some((true, 0)));
        assert_eq!(kept.pick(1), Some((true, 1)));
        let kept = Kept { clean: vec![fresh(1)], dirty: vec![fresh(2)] };
        assert_eq!(kept.pick(2), Some((false, 0)), "a dirty one of the right shape first");
        assert_eq!(kept.pick(8), Some((true, 0)), "else a clean one of any shape");
        let kept = Kept { clean: Vec::new(), dirty: vec![fresh(1), fresh(4)] };
        assert_eq!(kept.pick(2), Some((false, 1)), "else the latest");
        assert_eq!(Kept { clean: Vec::new(), dirty: Vec::new() }.pick(2), None);
    }

    #[test]
    fn the_pin_variable_reads_like_the_reth_flag() {
        for on in ["1", "true", "TRUE", "yes", "on", " 1 "] {
            assert!(env_flag_on(on), "{on:?}");
        }
        for off in ["", "0", "false", "False", "no", "n", "f", "off"] {
            assert!(!env_flag_on(off), "{off:?}");
        }
    }

    #[test]
    fn surplus_workspaces_and_drops_are_bounded() {
        // All of them out at once, then all back.
        let mut taken = Vec::new();
        for _ in 0..KEPT + 3 {
            taken.push(take_workspace(4, 2, true));
        }
        for workspace in taken {
            give_back(workspace);
        }
        let kept = WORKSPACES.lock().unwrap();
        assert!(kept.clean.len() + kept.dirty.len() <= KEPT);
        drop(kept);
        for _ in 0..100 {
            discard(vec![0u8; 1024]);
        }
        assert!(
            PENDING_DROPS.load(std::sync::atomic::Ordering::Relaxed) <= MAX_PENDING_DROPS,
            "drops waiting for the janitor stay bounded"
        );
    }
}
