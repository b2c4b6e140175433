//! Hardware-aware worker runtime for Velarium's parallel engine.
//!
//! [`WorkerPool`] runs one closure on `threads` workers at once and waits for all of them: the
//! calling thread is worker 0 and `threads - 1` persistent helper threads are the others. Helpers
//! sleep on a condition variable between jobs and never spin (but for the [`placement`] probe:
//! at most every 20 ms, helper 1 waits up to 100 µs after a job for the caller to pass a cache
//! line back and forth a few dozen times; after [`WorkerPool::prewake`], until the job the
//! caller is preparing starts or a deadline passes; and for 100 µs after each job, for a
//! follow-up the caller hands over at once, see `HELPER_LINGER`): a block's workers must not steal
//! the core from whatever runs next (the sequential oracle in a benchmark, the node's other
//! work), and the caller working itself means a one-thread pool is a plain function call. Only
//! the caller polls, briefly, for the helpers to finish the job it shares with them; a caller
//! that owes the helpers something (a service hook, see [`with_service_hook`]: serving the
//! reads of a database only it may touch) polls until they are done, running the hook.
//! [`WorkerPool::start_detached`] instead runs a job on the helpers only and returns at once:
//! the caller may return from its own function and come back while the job runs (a streaming
//! Block-STM run across reth's per-transaction calls); broadcasts on the pool wait for it.
//!
//! [`PoolConfig::pin`] pins worker `i` to the `i`-th core the process may use: the helpers for
//! good, the caller for the duration of each broadcast (its own affinity is restored after).
//! Unpinned, the kernel may place a woken helper on the caller's core and run the two by turns
//! until it migrates one: on blocks of a few hundred transfers (a few hundred microseconds)
//! that happened in most blocks here (`velarium bench --workloads eth_transfers --txs 200`).
//! Linux only; elsewhere it does nothing.
//!
//! Pipeline: the executor (`velarium-executor`) runs Block-STM and its parallel commit through
//! this pool.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::{
    fmt,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
    },
    thread::JoinHandle,
};

/// How a pool is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Workers, the calling thread included (at least 1).
    pub threads: usize,
    /// Pin worker `i` to the `i`-th allowed core (modulo their number; the caller only while a
    /// broadcast runs), Linux only.
    pub pin: bool,
}

/// The job of one broadcast, with its lifetime erased (see [`WorkerPool::broadcast`]).
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync + 'static));

// SAFETY: the pointee is `Sync`, and `broadcast` keeps it alive until every helper is done
// with it (it waits for `pending == 0` before returning).
unsafe impl Send for Job {}

#[derive(Default)]
struct State {
    /// Bumped by every broadcast; a helper runs each epoch's job once.
    epoch: u64,
    job: Option<Job>,
    /// Helpers still running the current job.
    pending: usize,
    /// The first panic of the current job.
    panic: Option<String>,
    shutdown: bool,
    /// Helper 1 answers a round-trip probe after the current job (see [`placement`]).
    probe: bool,
    /// Bumped by [`WorkerPool::prewake`]: a sleeping helper wakes and waits for the next job
    /// spinning, until [`Shared::spin_until`].
    wake: u64,
}

struct Shared {
    state: Mutex<State>,
    /// `State::pending`, readable without the lock: the caller polls it for a short while
    /// before it sleeps (see [`CALLER_SPIN`]).
    running: AtomicUsize,
    start: Condvar,
    done: Condvar,
    /// Serializes broadcasts from different threads on the same pool.
    busy: Mutex<()>,
    /// The line of the round-trip probe at the end of a job (see [`placement`]).
    probe_line: ProbeLine,
    /// `State::epoch`, readable without the lock: a helper woken ahead of a job (see
    /// [`WorkerPool::prewake`]) polls it.
    epoch_hint: AtomicU64,
    /// Until when (on [`placement`]'s clock) a helper woken ahead of a job polls for it.
    spin_until: AtomicU64,
}

/// The probe's word, alone on its cache line (128 bytes: the adjacent-line prefetcher pairs
/// 64-byte lines).
#[repr(align(128))]
#[derive(Default)]
struct ProbeLine(std::sync::atomic::AtomicU64);

/// How long the calling thread polls for the helpers to finish a job before it sleeps on the
/// condition variable. Helpers usually finish within microseconds of the caller (they share
/// the block's last work), and waking a sleeping thread costs tens of microseconds on a virtual
/// machine (an idle vCPU must be woken by an interrupt), a large part of a small block.
const CALLER_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A panic payload's message.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// A pool of workers that run one closure together. See the crate docs.
pub struct WorkerPool {
    shared: Arc<Shared>,
    config: PoolConfig,
    helpers: Vec<JoinHandle<()>>,
    /// With [`PoolConfig::pin`]: the core the caller works on during a broadcast (the helpers
    /// have the next ones).
    caller_core: Option<usize>,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool").field("config", &self.config).finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// Starts the pool's helper threads.
    ///
    /// # Errors
    ///
    /// The operating system's error if a thread cannot be started.
    pub fn new(config: PoolConfig) -> std::io::Result<Self> {
        let config = PoolConfig { threads: config.threads.max(1), ..config };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            running: AtomicUsize::new(0),
            start: Condvar::new(),
            done: Condvar::new(),
            busy: Mutex::new(()),
            probe_line: ProbeLine::default(),
            epoch_hint: AtomicU64::new(0),
            spin_until: AtomicU64::new(0),
        });
        // The cores this process may use, in order: worker `i` gets the `i`-th (modulo).
        let cores = if config.pin { allowed_cores() } else { Vec::new() };
        let core_of = |index: usize| (!cores.is_empty()).then(|| cores[index % cores.len()]);
        let mut helpers = Vec::with_capacity(config.threads - 1);
        for index in 1..config.threads {
            let shared = Arc::clone(&shared);
            let core = core_of(index);
            let handle = std::thread::Builder::new()
                .name(format!("velarium-worker-{index}"))
                .spawn(move || helper(&shared, index, core))?;
            helpers.push(handle);
        }
        Ok(Self { shared, config, helpers, caller_core: core_of(0) })
    }

    /// Number of workers (the calling thread included).
    pub fn threads(&self) -> usize {
        self.config.threads
    }

    /// Runs `work(i)` on every worker `i` (0 on the calling thread) and returns once all have
    /// finished. A panic is caught per worker; the first one's message is returned after every
    /// worker finished (`on_panic` runs first, on the panicking worker, e.g. to stop the
    /// others).
    ///
    /// # Errors
    ///
    /// The message of the first panic.
    pub fn broadcast<F, P>(&self, work: F, on_panic: P) -> Result<(), String>
    where
        F: Fn(usize) + Sync,
        P: Fn() + Sync,
    {
        let run = |index: usize| -> Option<String> {
            catch_unwind(AssertUnwindSafe(|| work(index))).err().map(|panic| {
                on_panic();
                panic_message(&*panic)
            })
        };
        if self.config.threads == 1 {
            return run(0).map_or(Ok(()), Err);
        }
        let job_fn = |index: usize| {
            if let Some(message) = run(index) {
                lock(&self.shared.state).panic.get_or_insert(message);
            }
        };
        let job: &(dyn Fn(usize) + Sync) = &job_fn;
        // SAFETY: only the lifetime is erased; `job` outlives every use, since this function
        // does not return before `pending` is back to 0 (helpers drop their copy before that).
        let job = Job(unsafe {
            std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const (dyn Fn(usize) + Sync + 'static),
            >(job)
        });
        let _busy = lock(&self.shared.busy);
        // A caller with a service hook is never kept from serving (a helper may still wait on
        // it when the caller's own part is done).
        let probe = !has_service_hook() && placement::probe_due();
        {
            let mut state = lock(&self.shared.state);
            // A detached job still running (see `start_detached`) finishes first.
            while state.pending > 0 {
                state = self.shared.done.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            state.epoch += 1;
            self.shared.epoch_hint.store(state.epoch, Ordering::Release);
            state.job = Some(job);
            state.pending = self.config.threads - 1;
            self.shared.running.store(state.pending, Ordering::Relaxed);
            state.panic = None;
            state.probe = probe;
            self.shared.probe_line.0.store(0, Ordering::Relaxed);
        }
        self.shared.start.notify_all();
        // Pinned, the caller works on its own core for the broadcast, so that the kernel cannot
        // put a woken helper on the caller's core and run the two by turns.
        let restore = self.caller_core.and_then(pin_caller);
        job_fn(0);
        if probe {
            if let Some(ns) = placement::measure(&self.shared.probe_line.0) {
                placement::record(ns);
            }
        }
        if let Some(mask) = restore {
            restore_affinity(&mask);
        }
        // The helpers are about done too (they ran out of work at the same time): poll briefly
        // instead of paying a sleep and a wake-up (see `CALLER_SPIN`). A caller with a service
        // hook (it serves the helpers, see [`with_service_hook`]) must not sleep at all.
        let hooked = has_service_hook();
        let polling = std::time::Instant::now();
        while self.shared.running.load(Ordering::Acquire) != 0
            && (hooked || polling.elapsed() < CALLER_SPIN)
        {
            if hooked {
                service();
                std::thread::yield_now();
            } else {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
        }
        let mut state = lock(&self.shared.state);
        while state.pending > 0 {
            state = self.shared.done.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.job = None;
        state.panic.take().map_or(Ok(()), Err)
    }
}

impl WorkerPool {
    /// Wakes the helpers ahead of a job the caller is about to start (a block it is still
    /// preparing): each waits for it spinning, for at most `within`, instead of sleeping, so
    /// that the job meets them awake. Waking a sleeping helper costs tens of microseconds on a
    /// virtual machine (50-110 us after the sequential oracle's run, measured in `velarium
    /// bench`), which the caller's own preparation then hides. A helper that sees no job by
    /// then goes back to sleep. Nothing with one thread.
    pub fn prewake(&self, within: std::time::Duration) {
        if self.config.threads == 1 {
            return;
        }
        let until = placement::now_ns()
            .saturating_add(u64::try_from(within.as_nanos()).unwrap_or(u64::MAX));
        self.shared.spin_until.store(until, Ordering::Relaxed);
        lock(&self.shared.state).wake += 1;
        self.shared.start.notify_all();
    }

    /// Starts `work(i)` on every helper `i` (1 to `threads - 1`; the calling thread takes no
    /// part) and returns at once: the job runs detached from the caller's stack, which may
    /// return and come back while it runs (a per-transaction executor that streams results).
    /// Broadcasts and other detached jobs on this pool wait until it is done.
    /// [`DetachedJob::join`] waits for it; so does dropping the handle. With one thread (no
    /// helpers) the job never runs.
    pub fn start_detached(&self, work: Arc<dyn Fn(usize) + Send + Sync>) -> DetachedJob {
        let panic: Arc<Mutex<Option<String>>> = Arc::default();
        let job: Arc<dyn Fn(usize) + Send + Sync> = {
            let panic = Arc::clone(&panic);
            Arc::new(move |index| {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| work(index))) {
                    lock(&panic).get_or_insert(panic_message(&*payload));
                }
            })
        };
        let pointer: *const (dyn Fn(usize) + Sync + 'static) = {
            let job: &(dyn Fn(usize) + Sync + 'static) = &*job;
            job
        };
        let _busy = lock(&self.shared.busy);
        let mut state = lock(&self.shared.state);
        // A detached job still running (its handle not joined yet) finishes first.
        while state.pending > 0 {
            state = self.shared.done.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.epoch += 1;
        self.shared.epoch_hint.store(state.epoch, Ordering::Release);
        let epoch = state.epoch;
        // SAFETY of the pointer: the handle keeps `job` alive until no helper runs it (see
        // `DetachedJob::join`); a leaked handle leaks it.
        state.job = Some(Job(pointer));
        state.pending = self.config.threads - 1;
        self.shared.running.store(state.pending, Ordering::Relaxed);
        state.panic = None;
        state.probe = false;
        drop(state);
        self.shared.start.notify_all();
        DetachedJob { shared: Arc::clone(&self.shared), epoch, job: Some(job), panic }
    }
}

/// A job started by [`WorkerPool::start_detached`].
pub struct DetachedJob {
    shared: Arc<Shared>,
    epoch: u64,
    job: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    panic: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for DetachedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedJob").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl DetachedJob {
    /// Whether every helper has finished the job.
    pub fn is_finished(&self) -> bool {
        let state = lock(&self.shared.state);
        state.epoch != self.epoch || state.pending == 0
    }

    /// Waits until every helper has finished the job (the caller must have made it end, a
    /// stop flag say); the first panic's message, if a helper panicked.
    ///
    /// # Errors
    ///
    /// The message of the first panic.
    pub fn join(mut self) -> Result<(), String> {
        self.wait();
        lock(&self.panic).take().map_or(Ok(()), Err)
    }

    fn wait(&mut self) {
        if self.job.is_none() {
            return;
        }
        let mut state = lock(&self.shared.state);
        // A later epoch means this job was done (a job starts only once `pending` is 0).
        while state.epoch == self.epoch && state.pending > 0 {
            state = self.shared.done.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.epoch == self.epoch {
            state.job = None;
        }
        drop(state);
        self.job = None;
    }
}

impl Drop for DetachedJob {
    fn drop(&mut self) {
        self.wait();
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.start.notify_all();
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

thread_local! {
    /// The work this thread owes the other workers (see [`with_service_hook`]).
    static SERVICE_HOOK: std::cell::Cell<Option<*const (dyn Fn() + 'static)>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` with `hook` as this thread's service hook: work the other workers wait on that only
/// this thread can do (serving the reads of a database only it may touch, say). [`service`]
/// runs it; every loop that waits on another worker calls it (the pool's own wait for its
/// helpers, the engine's and the scheduler's waits), and so does the engine at each state read
/// of a transaction, so a worker 0 that executes transactions still answers within
/// microseconds. Without it the two would wait on each other for ever. `hook` must not unwind.
/// The previous hook is back when `f` returns or unwinds.
pub fn with_service_hook<R>(hook: &dyn Fn(), f: impl FnOnce() -> R) -> R {
    struct Restore(Option<*const (dyn Fn() + 'static)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERVICE_HOOK.with(|h| h.set(self.0));
        }
    }
    // SAFETY: only the lifetime is erased; the pointer is removed (by `Restore`) before this
    // function returns or unwinds, so it never outlives `hook`.
    let erased =
        unsafe { std::mem::transmute::<*const (dyn Fn() + '_), *const (dyn Fn() + 'static)>(hook) };
    let _restore = Restore(SERVICE_HOOK.with(|h| h.replace(Some(erased))));
    f()
}

/// Whether this thread has a service hook (it must not sleep while others may wait on it).
pub fn has_service_hook() -> bool {
    SERVICE_HOOK.with(|h| h.get().is_some())
}

/// Runs this thread's service hook, if it has one (see [`with_service_hook`]).
#[inline]
pub fn service() {
    if let Some(hook) = SERVICE_HOOK.with(std::cell::Cell::get) {
        // SAFETY: set by `with_service_hook`, which outlives every call made inside it.
        unsafe { (*hook)() }
    }
}

/// A helper thread: runs each broadcast's job once, sleeping in between.
fn helper(shared: &Shared, index: usize, core: Option<usize>) {
    if let Some(core) = core {
        pin_to_core(core);
    }
    let mut seen = 0u64;
    let mut seen_wake = 0u64;
    loop {
        let job = {
            let mut state = lock(&shared.state);
            while state.epoch == seen && !state.shutdown {
                if state.wake != seen_wake {
                    // Woken ahead of a job (see `WorkerPool::prewake`): wait for it spinning.
                    seen_wake = state.wake;
                    drop(state);
                    poll_for_job(shared, seen, || shared.spin_until.load(Ordering::Relaxed));
                    state = lock(&shared.state);
                    continue;
                }
                state = shared.start.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.shutdown {
                return;
            }
            seen = state.epoch;
            (state.job, state.probe && index == 1)
        };
        let (job, probe) = job;
        if let Some(Job(job)) = job {
            // SAFETY: `broadcast` keeps the job alive until this helper decremented `pending`.
            let job = unsafe { &*job };
            job(index);
        }
        if probe {
            placement::answer(&shared.probe_line.0);
        }
        let last = {
            let mut state = lock(&shared.state);
            state.pending -= 1;
            shared.running.store(state.pending, Ordering::Release);
            state.pending == 0
        };
        if last {
            // A broadcast's caller, a detached job's joiner and a job waiting to start may
            // all be waiting.
            shared.done.notify_all();
        }
        linger(shared, seen);
    }
}

/// How long a helper that finished a job polls for the next one before it sleeps (see
/// [`linger`]).
const HELPER_LINGER: std::time::Duration = std::time::Duration::from_micros(100);

/// Polls, for at most [`HELPER_LINGER`], for a job after the one of epoch `seen`. A caller
/// often hands over a follow-up within tens of microseconds (the parallel engine's union of
/// the fold's shards right after Block-STM, a bloom broadcast): a helper still polling takes it
/// at once, where a sleeping one costs the caller a wake-up (tens of microseconds on a virtual
/// machine, whose idle vCPU must be woken by an interrupt) and starts that much later.
fn linger(shared: &Shared, seen: u64) {
    let until = placement::now_ns()
        .saturating_add(u64::try_from(HELPER_LINGER.as_nanos()).unwrap_or(u64::MAX));
    poll_for_job(shared, seen, || until);
}

/// Spins until a job after the one of epoch `seen` is published or `until()` (on
/// [`placement`]'s clock, read again each time) has passed.
fn poll_for_job(shared: &Shared, seen: u64, until: impl Fn() -> u64) {
    while shared.epoch_hint.load(Ordering::Acquire) == seen && placement::now_ns() < until() {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
    }
}

/// Pins the current thread to `core` (Linux; a no-op elsewhere or on failure).
#[cfg(target_os = "linux")]
fn pin_to_core(core: usize) {
    // SAFETY: `cpu_set_t` is plain data; `sched_setaffinity(0, ..)` affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_core(_core: usize) {}

/// The cores the current thread may run on, in order (empty if unknown).
#[cfg(target_os = "linux")]
fn allowed_cores() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data; `sched_getaffinity(0, ..)` reads this thread's mask.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&core| libc::CPU_ISSET(core, &set)).collect()
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cores() -> Vec<usize> {
    Vec::new()
}

/// The calling thread's affinity, as `sched_getaffinity` gives it.
#[cfg(target_os = "linux")]
type Affinity = libc::cpu_set_t;
#[cfg(not(target_os = "linux"))]
type Affinity = ();

/// Pins the calling thread to `core`; returns its affinity before, to restore afterwards (`None`
/// if it could not be read or changed).
#[cfg(target_os = "linux")]
fn pin_caller(core: usize) -> Option<Affinity> {
    // SAFETY: `cpu_set_t` is plain data; both calls affect only this thread.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut before: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut before) != 0 {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        (libc::sched_setaffinity(0, size, &set) == 0).then_some(before)
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_caller(_core: usize) -> Option<Affinity> {
    None
}

/// Gives the calling thread back the affinity [`pin_caller`] returned.
#[cfg(target_os = "linux")]
fn restore_affinity(mask: &Affinity) {
    // SAFETY: `mask` came from `sched_getaffinity`; the call affects only this thread.
    unsafe {
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), mask);
    }
}

#[cfg(not(target_os = "linux"))]
fn restore_affinity(_mask: &Affinity) {}

/// Makes the current thread a background one: it runs only on cores nobody else wants (Linux's
/// `SCHED_IDLE`; a no-op elsewhere). For housekeeping that must never steal a core from the
/// workers. Returns whether it took effect.
#[cfg(target_os = "linux")]
pub fn run_only_when_idle() -> bool {
    // SAFETY: `sched_param` is plain data; policy 0 for pid 0 changes only this thread.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0
    }
}

/// Stops the kernel from backing this process's memory with transparent huge pages, from now
/// on, whatever the allocator asked with `madvise` before (Linux `PR_SET_THP_DISABLE`); `false`
/// if that is not possible (a no-op off Linux).
///
/// A huge page is zeroed, and on a virtual machine backed by its host, 2 MiB at a time on first
/// touch: a block's first touch of fresh memory then stalls for milliseconds.
#[cfg(target_os = "linux")]
pub fn disable_transparent_huge_pages() -> bool {
    // SAFETY: `prctl` with `PR_SET_THP_DISABLE` only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

/// Stops the kernel from backing this process's memory with transparent huge pages (a no-op
/// off Linux).
#[cfg(not(target_os = "linux"))]
pub fn disable_transparent_huge_pages() -> bool {
    false
}

/// Makes the current thread a background one (a no-op off Linux).
#[cfg(not(target_os = "linux"))]
pub fn run_only_when_idle() -> bool {
    false
}

/// How to read a [`core_round_trip_ns`] figure, for the reports that print one.
pub const ROUND_TRIP_MEANING: &str = "one cache line between two threads; where it is several \
     hundred ns the cores share no cache, and the engine's multi-thread ratios read lower";

/// The time (ns) for one cache line to go from one thread to another and back: the median of
/// the mean round trip of each batch of 200, over up to 100 batches (about 20 ms at most once
/// both threads run). `None` on a machine with one core, or where no batch completed: the
/// answering thread did not start within a second, or stalled for 50 ms in the first batch (a
/// machine too busy to say). A virtual machine's cores may share a cache in one minute and not
/// in the next, and Block-STM moves every transaction's words between its workers: the figure
/// says which case a run met. The median of batches, not one mean, so that the answering
/// thread being descheduled for a few milliseconds does not read as a far core.
pub fn core_round_trip_ns() -> Option<f64> {
    use std::{
        sync::atomic::{AtomicBool, AtomicU64, Ordering},
        time::{Duration, Instant},
    };
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return None;
    }
    const BATCH: u64 = 200;
    const BATCHES: usize = 100;
    const STALL: Duration = Duration::from_millis(50);
    let line = AtomicU64::new(0);
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let mut batches: Vec<f64> = Vec::with_capacity(BATCHES);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            ready.store(true, Ordering::Release);
            // Answers each odd value with the next even one.
            let mut expected = 1;
            while !stop.load(Ordering::Relaxed) {
                if line.load(Ordering::Acquire) == expected {
                    line.store(expected + 1, Ordering::Release);
                    expected += 2;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let waiting = Instant::now();
        while !ready.load(Ordering::Acquire) {
            if waiting.elapsed() > Duration::from_secs(1) {
                stop.store(true, Ordering::Relaxed);
                return;
            }
            std::thread::yield_now();
        }
        let started = Instant::now();
        let mut done = 0u64;
        'batches: while batches.len() < BATCHES && started.elapsed() < Duration::from_millis(20) {
            let batch_start = Instant::now();
            for _ in 0..BATCH {
                line.store(2 * done + 1, Ordering::Release);
                while line.load(Ordering::Acquire) != 2 * done + 2 {
                    if batch_start.elapsed() > STALL {
                        // The batches completed so far still say something.
                        break 'batches;
                    }
                    std::hint::spin_loop();
                }
                done += 1;
            }
            batches.push(batch_start.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        stop.store(true, Ordering::Relaxed);
    });
    batches.sort_by(f64::total_cmp);
    batches.get(batches.len() / 2).copied()
}

/// The cores' placement as the worker pool last measured it: at the end of a job, at most every
/// [`placement::PROBE_EVERY`], the caller and helper 1 pass one cache line back and forth a few
/// dozen times (a few microseconds; see [`placement::recent_round_trip_ns`]). A virtual
/// machine's vCPUs may share a cache in one second and not in the next, and what a second worker
/// is worth on a block of cheap transactions depends on it.
pub mod placement {
    use std::{
        sync::{
            atomic::{AtomicU64, Ordering},
            OnceLock,
        },
        time::{Duration, Instant},
    };

    /// How often a job ends with a probe.
    pub const PROBE_EVERY: Duration = Duration::from_millis(20);
    /// Round trips per probe (after a first one that waits for the helper to arrive), in
    /// batches: the probe reports the fastest batch's mean, so a helper descheduled for part
    /// of it does not read as a far core.
    const TRIPS: u64 = 24;
    const BATCH: u64 = 8;
    /// How long the caller waits for the helper to arrive (it may still be finishing its part
    /// of the job, which the caller waits for anyway), and the helper for the caller (which may
    /// still be finishing its own part: past this the helper leaves, saying so, and the caller
    /// that comes later skips the probe at once); then how long either waits for a round trip.
    const CALLER_ARRIVAL: Duration = Duration::from_micros(300);
    const HELPER_ARRIVAL: Duration = Duration::from_micros(100);
    const TRIP_STALL: Duration = Duration::from_micros(20);
    /// The caller's word that ends a probe.
    const OVER: u64 = u64::MAX;
    /// The helper's word: it left before the caller came.
    const GONE: u64 = u64::MAX - 1;

    /// The last probe's result (ns, 0: none) and when it was taken (ns since [`epoch`], 0:
    /// never).
    static ROUND_TRIP_NS: AtomicU64 = AtomicU64::new(0);
    static MEASURED_AT: AtomicU64 = AtomicU64::new(0);
    static LAST_TRY: AtomicU64 = AtomicU64::new(0);

    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    /// Nanoseconds on the process's monotonic clock (at least 1).
    pub(super) fn now_ns() -> u64 {
        u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
    }

    /// Whether the next job should end with a probe (and, if so, counts it as tried).
    pub(super) fn probe_due() -> bool {
        let now = now_ns();
        let last = LAST_TRY.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < PROBE_EVERY.as_nanos() as u64 {
            return false;
        }
        LAST_TRY.store(now, Ordering::Relaxed);
        true
    }

    /// The caller's side: the round trips, then [`OVER`]; the fastest batch's mean round trip
    /// (ns), or `None` where the other side did not arrive or stalled.
    pub(super) fn measure(line: &AtomicU64) -> Option<u64> {
        let mut best = f64::INFINITY;
        let mut waited = Instant::now();
        let mut batch_start = Instant::now();
        for trip in 0..=TRIPS {
            if trip == 0 {
                // Unless the helper has left already.
                if line.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
                    return None;
                }
            } else {
                line.store(2 * trip + 1, Ordering::Release);
            }
            let limit = if trip == 0 { CALLER_ARRIVAL } else { TRIP_STALL };
            while line.load(Ordering::Acquire) != 2 * trip + 2 {
                if waited.elapsed() > limit {
                    line.store(OVER, Ordering::Release);
                    return None;
                }
                std::hint::spin_loop();
            }
            waited = Instant::now();
            if trip == 0 {
                batch_start = waited;
            } else if trip % BATCH == 0 {
                best = best.min(batch_start.elapsed().as_nanos() as f64 / BATCH as f64);
                batch_start = Instant::now();
            }
        }
        line.store(OVER, Ordering::Release);
        best.is_finite().then(|| best.round().max(1.0) as u64)
    }

    /// Records a measured round trip (ns) as the latest (the pool's probe does).
    pub fn record(round_trip_ns: u64) {
        ROUND_TRIP_NS.store(round_trip_ns.max(1), Ordering::Relaxed);
        MEASURED_AT.store(now_ns(), Ordering::Relaxed);
    }

    /// The helper's side: answers each odd word with the next even one until [`OVER`]; leaves
    /// (writing [`GONE`]) if the caller has not started within [`HELPER_ARRIVAL`], or stalls.
    pub(super) fn answer(line: &AtomicU64) {
        let mut waited = Instant::now();
        let mut answered = 0;
        loop {
            let word = line.load(Ordering::Acquire);
            if word == OVER {
                return;
            }
            if word % 2 == 1 && word != answered {
                line.store(word + 1, Ordering::Release);
                answered = word;
                waited = Instant::now();
            } else if waited.elapsed() > HELPER_ARRIVAL {
                // Leave, unless the caller posted a word meanwhile.
                if line.compare_exchange(word, GONE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return;
                }
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// The round trip (ns) the last probe measured, if it is at most `max_age` old.
    pub fn recent_round_trip_ns(max_age: Duration) -> Option<u64> {
        let at = MEASURED_AT.load(Ordering::Relaxed);
        let ns = ROUND_TRIP_NS.load(Ordering::Relaxed);
        (at != 0 && ns != 0 && now_ns().saturating_sub(at) <= max_age.as_nanos() as u64)
            .then_some(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    #[test]
    fn a_placement_probe_alone_gives_up_and_measures_nothing() {
        let line = AtomicU64::new(0);
        // No helper answers: the caller gives up after its arrival wait and ends the probe.
        assert_eq!(placement::measure(&line), None);
        assert_eq!(line.load(Ordering::Relaxed), u64::MAX);
        // No caller asks: the helper leaves too instead of waiting for ever, and says so, so
        // that a caller coming later skips the probe at once.
        let line = AtomicU64::new(0);
        let started = std::time::Instant::now();
        placement::answer(&line);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(line.load(Ordering::Relaxed), u64::MAX - 1, "the helper says it left");
        assert_eq!(placement::measure(&line), None);
        // The caller neither posted a word nor waited (it would have ended with its own word).
        assert_eq!(line.load(Ordering::Relaxed), u64::MAX - 1);
    }

    #[test]
    fn a_placement_probe_measures_the_round_trip_between_two_threads() {
        if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
            return;
        }
        // Both threads must run at once for a few microseconds; on a busy machine a try may
        // find the answering thread descheduled, so a few tries are allowed.
        let measured = (0..50).find_map(|_| {
            let line = AtomicU64::new(0);
            let ready = AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    ready.store(true, Ordering::Release);
                    placement::answer(&line);
                });
                while !ready.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                placement::measure(&line)
            })
        });
        let ns = measured.expect("no probe completed in 50 tries");
        assert!(ns > 0 && ns < 1_000_000, "{ns} ns");
    }

    #[test]
    fn probes_are_due_at_most_every_probe_interval() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !placement::probe_due() {
            assert!(std::time::Instant::now() < deadline, "no probe came due within a second");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Right after one came due, the next is not (within 20 ms).
        assert!(!placement::probe_due());
    }

    #[test]
    fn a_job_of_two_workers_ends_with_a_recorded_probe() {
        if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
            return;
        }
        let pool = WorkerPool::new(PoolConfig { threads: 2, pin: false }).unwrap();
        // A probe needs both threads on a core at once: on a loaded machine (the test suite
        // beside a build) that took more than 5 s once, so the test waits up to 60 s.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let fresh = std::time::Duration::from_millis(500);
        let mut measured = None;
        while measured.is_none() && std::time::Instant::now() < deadline {
            // Both workers finish together, as a block's workers do.
            let end = std::time::Instant::now() + std::time::Duration::from_micros(100);
            pool.broadcast(
                |_| {
                    while std::time::Instant::now() < end {
                        std::hint::spin_loop();
                    }
                },
                || {},
            )
            .unwrap();
            measured = placement::recent_round_trip_ns(fresh);
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let ns = measured.expect("no job ended with a probe within 60 s");
        assert!(ns > 0 && ns < 1_000_000, "{ns} ns");
    }

    #[test]
    fn the_core_round_trip_is_measured_where_there_are_two_cores() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // With two cores or more the answering thread may still be starved by other tests
        // for the probe's 50 ms (then `None`); a figure given is a plausible one.
        let measured = core_round_trip_ns();
        if cores < 2 {
            assert_eq!(measured, None);
        }
        if let Some(ns) = measured {
            assert!(cores >= 2 && ns > 0.0 && ns < 5e7, "{ns} ns on {cores} cores");
        }
    }

    #[test]
    fn the_caller_runs_its_service_hook_while_it_waits_for_the_helpers() {
        // The helper can only finish once the caller has served it: without the hook running
        // in the caller's wait this would never return.
        let pool = WorkerPool::new(PoolConfig { threads: 2, pin: false }).unwrap();
        let asked = std::sync::atomic::AtomicBool::new(false);
        let served = std::sync::atomic::AtomicBool::new(false);
        let serve = || {
            if asked.load(Ordering::Acquire) {
                served.store(true, Ordering::Release);
            }
        };
        assert!(!has_service_hook());
        with_service_hook(&serve, || {
            assert!(has_service_hook());
            pool.broadcast(
                |i| {
                    if i == 1 {
                        asked.store(true, Ordering::Release);
                        while !served.load(Ordering::Acquire) {
                            std::thread::yield_now();
                        }
                    }
                },
                || {},
            )
            .unwrap();
        });
        assert!(served.load(Ordering::Relaxed));
        // Gone afterwards, also after an unwind out of the hooked section.
        assert!(!has_service_hook());
        let unwound = std::panic::catch_unwind(|| with_service_hook(&|| {}, || panic!("out")));
        assert!(unwound.is_err());
        assert!(!has_service_hook());
        service(); // no hook: nothing to do
    }

    #[test]
    fn every_worker_runs_once_per_broadcast() {
        for threads in [1, 2, 4] {
            let pool = WorkerPool::new(PoolConfig { threads, pin: false }).unwrap();
            for round in 0..50 {
                let seen: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.broadcast(
                    |i| {
                        seen[i].fetch_add(round + 1, Ordering::Relaxed);
                    },
                    || {},
                )
                .unwrap();
                assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == round + 1));
            }
        }
    }

    #[test]
    fn prewoken_helpers_run_the_next_job_once_whenever_it_comes() {
        for threads in [1, 2, 3] {
            let pool = WorkerPool::new(PoolConfig { threads, pin: false }).unwrap();
            // The job comes while they spin, after they went back to sleep, or never (the
            // next prewake then finds them asleep); twice in a row too.
            for (round, wait_us) in [0u64, 0, 50, 2_000, 0, 5_000, 0].into_iter().enumerate() {
                pool.prewake(std::time::Duration::from_micros(500));
                if round == 4 {
                    pool.prewake(std::time::Duration::from_micros(500));
                }
                std::thread::sleep(std::time::Duration::from_micros(wait_us));
                if round == 5 {
                    continue;
                }
                let seen: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.broadcast(|i| _ = seen[i].fetch_add(1, Ordering::Relaxed), || {}).unwrap();
                assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1), "round {round}");
            }
            // A detached job after a prewake runs on every helper.
            pool.prewake(std::time::Duration::from_micros(500));
            let ran = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&ran);
            pool.start_detached(Arc::new(move |_| _ = counted.fetch_add(1, Ordering::Relaxed)))
                .join()
                .unwrap();
            assert_eq!(ran.load(Ordering::Relaxed), threads - 1);
        }
    }

    #[test]
    fn a_job_handed_over_after_another_runs_once_on_every_helper_lingering_or_asleep() {
        for threads in [2, 3] {
            let pool = WorkerPool::new(PoolConfig { threads, pin: false }).unwrap();
            // The next job comes while the helpers still poll for it (at once, within the
            // linger), or after they went to sleep.
            for (round, wait_us) in [0u64, 0, 20, 50, 0, 300, 2_000, 0].into_iter().enumerate() {
                pool.broadcast(|_| {}, || {}).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(wait_us));
                let ran = Arc::new(AtomicUsize::new(0));
                let counted = Arc::clone(&ran);
                pool.start_detached(Arc::new(move |_| _ = counted.fetch_add(1, Ordering::Relaxed)))
                    .join()
                    .unwrap();
                assert_eq!(ran.load(Ordering::Relaxed), threads - 1, "round {round}");
                let seen: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.broadcast(|i| _ = seen[i].fetch_add(1, Ordering::Relaxed), || {}).unwrap();
                assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1), "round {round}");
            }
        }
    }

    #[test]
    fn a_lingering_helper_stops_polling_at_a_new_job_or_after_the_linger() {
        let pool = WorkerPool::new(PoolConfig { threads: 2, pin: false }).unwrap();
        let current = pool.shared.epoch_hint.load(Ordering::Acquire);
        // A job newer than the one it finished: no wait.
        let started = std::time::Instant::now();
        linger(&pool.shared, current.wrapping_sub(1));
        assert!(started.elapsed() < HELPER_LINGER * 1_000);
        // No new job: it polls for the whole linger, then gives up.
        let started = std::time::Instant::now();
        linger(&pool.shared, current);
        let waited = started.elapsed();
        assert!(waited >= HELPER_LINGER, "gave up after {waited:?}");
        assert!(waited < std::time::Duration::from_secs(5), "polled for {waited:?}");
    }

    #[test]
    fn a_panic_is_returned_after_everyone_finished() {
        let pool = WorkerPool::new(PoolConfig { threads: 3, pin: false }).unwrap();
        let finished = AtomicUsize::new(0);
        let stopped = AtomicUsize::new(0);
        let err = pool
            .broadcast(
                |i| {
                    if i == 1 {
                        panic!("worker one failed");
                    }
                    finished.fetch_add(1, Ordering::Relaxed);
                },
                || {
                    stopped.fetch_add(1, Ordering::Relaxed);
                },
            )
            .unwrap_err();
        assert_eq!(err, "worker one failed");
        assert_eq!(finished.load(Ordering::Relaxed), 2);
        assert_eq!(stopped.load(Ordering::Relaxed), 1);
        // The pool still works afterwards.
        pool.broadcast(|_| {}, || {}).unwrap();
    }

    #[test]
    fn a_detached_job_runs_on_the_helpers_while_the_caller_goes_on() {
        let pool = WorkerPool::new(PoolConfig { threads: 3, pin: false }).unwrap();
        let seen: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
        let release = Arc::new(AtomicBool::new(false));
        let job = {
            let (seen, release) = (Arc::clone(&seen), Arc::clone(&release));
            pool.start_detached(Arc::new(move |i| {
                seen[i].fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
            }))
        };
        // The call returned while the helpers are held: the caller is free meanwhile.
        let started = std::time::Instant::now();
        while seen[1].load(Ordering::SeqCst) + seen[2].load(Ordering::SeqCst) < 2 {
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "helpers never ran");
            std::thread::yield_now();
        }
        assert!(!job.is_finished());
        // A broadcast waits for the detached job rather than running beside it.
        let broadcast_done = Arc::new(AtomicBool::new(false));
        std::thread::scope(|s| {
            let (pool, done) = (&pool, Arc::clone(&broadcast_done));
            s.spawn(move || {
                pool.broadcast(|_| {}, || {}).unwrap();
                done.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!broadcast_done.load(Ordering::SeqCst), "a broadcast overlapped the job");
            release.store(true, Ordering::Release);
            job.join().unwrap();
        });
        assert!(broadcast_done.load(Ordering::SeqCst));
        // The caller's slot (0) never ran it; each helper once.
        let counts: Vec<usize> = seen.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        assert_eq!(counts, [0, 1, 1]);
    }

    #[test]
    fn a_detached_jobs_panic_is_returned_by_join_and_dropping_the_handle_waits() {
        let pool = WorkerPool::new(PoolConfig { threads: 2, pin: false }).unwrap();
        let job = pool.start_detached(Arc::new(|_| panic!("helper failed")));
        assert_eq!(job.join().unwrap_err(), "helper failed");
        // Dropped without a join: the drop waits for the helper, and the pool runs on.
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        drop(pool.start_detached(Arc::new(move |_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            counter.fetch_add(1, Ordering::SeqCst);
        })));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        pool.broadcast(|_| {}, || {}).unwrap();
        // With one thread there is no helper: the job never runs, and joining returns at once.
        let single = WorkerPool::new(PoolConfig { threads: 1, pin: false }).unwrap();
        let never = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&never);
        single
            .start_detached(Arc::new(move |_| flag.store(true, Ordering::SeqCst)))
            .join()
            .unwrap();
        assert!(!never.load(Ordering::SeqCst));
    }

    #[test]
    fn pinned_pool_runs_and_shuts_down() {
        let pool = WorkerPool::new(PoolConfig { threads: 2, pin: true }).unwrap();
        let sum = AtomicUsize::new(0);
        pool.broadcast(
            |i| {
                sum.fetch_add(i + 1, Ordering::Relaxed);
            },
            || {},
        )
        .unwrap();
        assert_eq!(sum.load(Ordering::Relaxed), 3);
        drop(pool);
    }

    /// Pinned, every worker runs on its own core during a broadcast (the caller included, so
    /// the kernel cannot run a woken helper on the caller's core by turns), and the caller gets
    /// its own affinity back afterwards.
    #[cfg(target_os = "linux")]
    #[test]
    fn pinned_workers_run_on_distinct_cores_and_the_caller_is_given_its_cores_back() {
        let cores = allowed_cores();
        if cores.len() < 2 {
            eprintln!("skipped: fewer than two cores");
            return;
        }
        let before = allowed_cores();
        let pool = WorkerPool::new(PoolConfig { threads: 2, pin: true }).unwrap();
        let seen = Mutex::new(Vec::new());
        pool.broadcast(
            |i| {
                lock(&seen).push((i, allowed_cores()));
            },
            || {},
        )
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [(0, vec![cores[0]]), (1, vec![cores[1]])]);
        assert_eq!(allowed_cores(), before);
    }
}
