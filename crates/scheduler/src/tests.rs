//! Scheduler tests: a scripted single-thread interleaving, and multi-threaded simulations
//! against a sequential baseline.

use crate::*;
use std::{
    collections::HashMap,
    sync::{mpsc, Mutex},
    time::Duration,
};
use velarium_mvmemory::{
    MvMemory, ReadMode, ReadOrigin, ReadResult, ReadSet, WriteSet, WriteValue,
};

use SchedulerTask::{Done, Execute, Retry, Validate};

fn validate(txn: u32, incarnation: u32, at_commit: bool) -> SchedulerTask {
    Validate { version: Version::new(txn, incarnation), at_commit }
}

#[test]
fn one_worker_never_validates() {
    let s = Scheduler::with_workers(3, 1);
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    for txn in 0..3 {
        // Started at the commit point: committed as soon as it is executed, and (in order) the
        // same worker goes on with the next one.
        let next = (txn < 2).then(|| Execute(Version::new(txn + 1, 0)));
        assert_eq!(s.finish_execution(txn, 0, true), next);
        assert_eq!(s.commit_idx(), txn as usize + 1);
    }
    assert_eq!(s.next_task(), Done);
    assert_eq!(s.counters(), SchedulerCounters { executions: 3, ..Default::default() });
}

#[test]
fn scripted_dependency_graph() {
    let s = Scheduler::with_workers(3, 1);
    // Speculate, although one worker would normally run in order; resumed transactions go back
    // to the sweep (see `the_worker_that_finishes_a_transaction_runs_its_lowest_dependent`).
    s.set_in_order(false);
    s.set_affinity(false);
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    assert_eq!(s.next_task(), Execute(Version::new(1, 0)));
    // Txn 1 reads an estimate of txn 0, which nobody is executing any more... here txn 0 is
    // still executing, so a paused read would wait; suspend it explicitly instead.
    assert!(s.add_dependency(1, 0));
    assert_eq!(s.status(1), ExecutionStatus::Suspended(0));
    assert_eq!(s.next_task(), Execute(Version::new(2, 0)));
    // Txn 2 finished before the commit point reached it: not settled, not committed.
    assert_eq!(s.finish_execution(2, 0, false), None);
    assert_eq!(s.commit_idx(), 0);
    // Txn 0 finishes (it started at the commit point): committed; txn 1 resumes.
    assert_eq!(s.finish_execution(0, 0, false), None);
    assert_eq!(s.commit_idx(), 1);
    assert_eq!(s.status(1), ExecutionStatus::ReadyToExecute(1));
    assert!(!s.add_dependency(2, 0), "0 already executed: re-read instead");
    // Txn 1 re-executes at the commit point: settled, committed; then txn 2 is validated there.
    assert_eq!(s.next_task(), Execute(Version::new(1, 1)));
    assert_eq!(s.finish_execution(1, 1, true), Some(validate(2, 0, true)));
    assert_eq!(s.commit_idx(), 2);
    // Its validation fails: it aborts and is re-executed at the commit point (the execution
    // sweep went back to txn 1 for the resume, so the sweep hands it out).
    assert!(s.try_validation_abort(2, 0));
    assert!(!s.try_validation_abort(2, 0), "only one validator aborts");
    assert_eq!(s.finish_validation(Version::new(2, 0), true, true), None);
    assert_eq!(s.next_task(), Execute(Version::new(2, 1)));
    assert_eq!(s.finish_execution(2, 1, false), None);
    assert_eq!(s.next_task(), Done);
    assert!(s.done());
    assert_eq!(s.invariant_error(), None);
    assert_eq!(
        s.counters(),
        SchedulerCounters { executions: 5, validations: 1, aborts: 1, suspensions: 1, waits: 0 }
    );
}

/// With affinity (the default) the worker that finishes a transaction runs the lowest one
/// suspended on it, unless it has a commit or validation to do first; the other dependents go
/// back to the sweep.
#[test]
fn the_worker_that_finishes_a_transaction_runs_its_lowest_dependent() {
    let s = Scheduler::with_workers(5, 2);
    for i in 0..5 {
        assert_eq!(s.next_task(), Execute(Version::new(i, 0)));
    }
    // 2 and 3 read what 1 writes, 4 what 0 writes; none of the writers has finished.
    assert!(s.add_dependency(2, 1));
    assert!(s.add_dependency(3, 1));
    assert!(s.add_dependency(4, 0));
    // 1 finishes above the commit point with nothing to validate yet: it goes on with 2, at
    // once; 3 goes back to the sweep.
    assert_eq!(s.finish_execution(1, 0, false), Some(Execute(Version::new(2, 1))));
    assert_eq!(s.status(3), ExecutionStatus::ReadyToExecute(1));
    assert_eq!(s.next_task(), Execute(Version::new(3, 1)));
    // 0 finishes at the commit point: it commits, and goes on with the new commit point's
    // check (of 1), which comes first; its dependent 4 goes to the sweep.
    assert_eq!(s.finish_execution(0, 0, false), Some(validate(1, 0, true)));
    assert_eq!(s.commit_idx(), 1);
    assert_eq!(s.status(4), ExecutionStatus::ReadyToExecute(1));
    assert_eq!(s.finish_validation(Version::new(1, 0), true, false), None);
    assert_eq!(s.next_task(), Execute(Version::new(4, 1)));
    assert_eq!(s.finish_execution(2, 1, false), Some(validate(2, 1, true)));
    assert_eq!(s.finish_validation(Version::new(2, 1), true, false), None);
    assert_eq!(s.finish_execution(3, 1, false), Some(validate(3, 1, true)));
    assert_eq!(s.finish_validation(Version::new(3, 1), true, false), None);
    assert_eq!(s.finish_execution(4, 1, false), Some(validate(4, 1, true)));
    assert_eq!(s.finish_validation(Version::new(4, 1), true, false), None);
    assert!(s.done());
    assert_eq!(s.invariant_error(), None);
}

/// A transaction aborted `MAX_SPECULATIVE_INCARNATIONS` times is not handed out again above
/// the commit point: the sweep passes it by, and the worker that moves the commit point to it
/// executes it there (settled: it cannot abort again).
#[test]
fn a_transaction_out_of_speculative_incarnations_runs_at_the_commit_point() {
    // One worker's eager window (validations right after execution), speculating.
    let s = Scheduler::with_workers(4, 1);
    s.set_in_order(false);
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    assert_eq!(s.next_task(), Execute(Version::new(1, 0)));
    for incarnation in 0..MAX_SPECULATIVE_INCARNATIONS {
        // Txn 1 runs above the commit point and fails its validation, MAX times.
        let task = s.finish_execution(1, incarnation, false).unwrap_or_else(|| s.next_task());
        assert_eq!(task, validate(1, incarnation, false));
        assert!(s.try_validation_abort(1, incarnation));
        let next = s.finish_validation(Version::new(1, incarnation), false, true);
        if incarnation + 1 < MAX_SPECULATIVE_INCARNATIONS {
            assert_eq!(
                next.unwrap_or_else(|| s.next_task()),
                Execute(Version::new(1, incarnation + 1))
            );
        } else {
            assert_eq!(next, None, "out of speculative incarnations");
        }
    }
    let last = MAX_SPECULATIVE_INCARNATIONS;
    assert_eq!(s.status(1), ExecutionStatus::ReadyToExecute(last));
    // The sweep moves on to txns 2 and 3 (their validations pass), then has nothing left.
    let mut handed = Vec::new();
    loop {
        match s.next_task() {
            Execute(version) => {
                handed.push(version.txn_idx);
                let mut task = s.finish_execution(version.txn_idx, 0, false);
                while let Some(Validate { version, at_commit }) = task {
                    task = s.finish_validation(version, at_commit, false);
                }
            }
            Validate { version, at_commit } => {
                assert_eq!(s.finish_validation(version, at_commit, false), None);
            }
            Retry => break,
            Done => panic!("done with txn 1 unexecuted"),
        }
    }
    assert_eq!(handed, [2, 3]);
    assert_eq!(s.status(1), ExecutionStatus::ReadyToExecute(last));
    // Txn 0 commits: its worker goes on with txn 1 at the commit point, settled.
    assert_eq!(s.finish_execution(0, 0, false), Some(Execute(Version::new(1, last))));
    assert!(s.executing_settled(1));
    let mut task = s.finish_execution(1, last, false);
    while let Some(Validate { version, at_commit }) = task {
        assert!(at_commit);
        task = s.finish_validation(version, at_commit, false);
    }
    assert_eq!(task, None);
    assert_eq!(s.next_task(), Done);
    assert_eq!(s.status(1), ExecutionStatus::Executed(last));
    assert_eq!(s.invariant_error(), None);
}

#[test]
fn validation_at_the_commit_point_commits() {
    let s = Scheduler::with_workers(2, 2);
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    assert_eq!(s.next_task(), Execute(Version::new(1, 0)));
    // Txn 1 finishes first: within the eager window, it waits for the commit point.
    assert_eq!(s.finish_execution(1, 0, true), None);
    assert_eq!(s.finish_execution(0, 0, true), Some(validate(1, 0, true)));
    // A committed transaction cannot be aborted by a late validation.
    assert_eq!(s.finish_validation(Version::new(1, 0), true, false), None);
    assert_eq!(s.commit_idx(), 2);
    assert!(!s.try_validation_abort(1, 0));
    assert_eq!(s.next_task(), Done);
}

#[test]
fn paused_reads_wait_for_running_writers_only() {
    let s = Scheduler::with_workers(3, 2);
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    assert_eq!(s.next_task(), Execute(Version::new(1, 0)));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| s.wait_for(1, 0));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(s.finish_execution(0, 0, true), None);
        assert!(waiter.join().unwrap(), "resolved: the writer finished");
    });
    assert_eq!(s.counters().waits, 1);
    assert_eq!(s.next_task(), Execute(Version::new(2, 0)));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| s.wait_for(2, 1));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(s.finish_execution(1, 0, true), Some(validate(1, 0, true)));
        assert!(waiter.join().unwrap());
    });

    // A blocking transaction nobody is executing: the reader is suspended, not paused.
    let s = Scheduler::with_workers(3, 2);
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    assert_eq!(s.next_task(), Execute(Version::new(1, 0)));
    assert!(s.add_dependency(1, 0));
    assert_eq!(s.next_task(), Execute(Version::new(2, 0)));
    assert!(!s.wait_for(2, 1), "suspended on the suspended txn 1");
    assert_eq!(s.status(2), ExecutionStatus::Suspended(0));
}

#[test]
fn empty_block_is_done() {
    let s = Scheduler::new(0);
    assert!(matches!(s.next_task(), Done | Retry));
    assert_eq!(s.next_task(), Done);
}

#[test]
fn halt_stops_everyone() {
    let s = Scheduler::new(10);
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    s.halt();
    assert!(s.is_halted());
    assert_eq!(s.next_task(), Done);
    assert_eq!(s.invariant_error(), None);
}

#[test]
fn broken_invariant_halts() {
    let s = Scheduler::new(4);
    assert_eq!(s.finish_execution(2, 0, false), None);
    assert!(matches!(
        s.invariant_error(),
        Some(SchedulerError::Invariant { operation: "finish_execution", txn_idx: 2, .. })
    ));
    assert_eq!(s.next_task(), Done);
    let s = Scheduler::new(4);
    assert!(s.add_dependency(1, 3));
    assert!(s.invariant_error().is_some());
}

// ---------------------------------------------------------------------------------------------
// Simulation: transactions read, write and add to cells of a model multi-version memory.

/// One operation of a model transaction.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Read a cell into the running hash.
    Read(u32),
    /// Write the running hash (mixed with the txn index) to a cell.
    Write(u32),
    /// Add a constant to a cell without reading it (a delta).
    Add(u32, u64),
}

type Block = Vec<Vec<Op>>;
type Mem = MvMemory<u32, u64, u64>;

const CELLS: u32 = 6;

fn storage(cell: u32) -> u64 {
    u64::from(cell) * 1_000
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_block(rng: &mut XorShift) -> Block {
    let len = 1 + rng.below(48) as usize;
    (0..len)
        .map(|_| {
            (0..1 + rng.below(4))
                .map(|_| {
                    let cell = rng.below(u64::from(CELLS)) as u32;
                    match rng.below(3) {
                        0 => Op::Read(cell),
                        1 => Op::Write(cell),
                        _ => Op::Add(cell, 1 + rng.below(9)),
                    }
                })
                .collect()
        })
        .collect()
}

fn mix(acc: u64, v: u64) -> u64 {
    acc.wrapping_mul(0x100_0000_01B3).wrapping_add(v)
}

/// Sequential baseline: final cells and each transaction's output hash.
fn run_sequential(block: &Block) -> (Vec<u64>, Vec<u64>) {
    let mut cells: Vec<u64> = (0..CELLS).map(storage).collect();
    let outputs = block
        .iter()
        .enumerate()
        .map(|(i, ops)| {
            let mut acc = i as u64;
            for op in ops {
                match *op {
                    Op::Read(c) => acc = mix(acc, cells[c as usize]),
                    Op::Write(c) => cells[c as usize] = acc ^ i as u64,
                    Op::Add(c, x) => cells[c as usize] = cells[c as usize].wrapping_add(x),
                }
            }
            acc
        })
        .collect();
    (cells, outputs)
}

fn resolve(result: ReadResult<u64, u64>, cell: u32) -> u64 {
    let (base, deltas) = match result {
        ReadResult::Value { value, deltas, .. } => (value, deltas),
        ReadResult::Base { deltas } => (storage(cell), deltas),
        ReadResult::Blocked(_) => unreachable!(),
    };
    base.wrapping_add(deltas.map_or(0, |d| d.sum))
}

/// What an incarnation produced: read set, write set, output hash.
type Executed = (ReadSet<u32, u64>, WriteSet<u32, u64, u64>, u64);

/// Executes one incarnation; `None` if it was suspended on a dependency.
fn execute(ops: &[Op], txn_idx: TxnIndex, mem: &Mem, scheduler: &Scheduler) -> Option<Executed> {
    let mut acc = u64::from(txn_idx);
    let mut local: HashMap<u32, WriteValue<u64, u64>> = HashMap::new();
    let mut reads = ReadSet::new();
    let mode = ReadMode::WithDeltas;
    for op in ops {
        match *op {
            Op::Read(c) => {
                let own_delta = match local.get(&c) {
                    Some(WriteValue::Value(v)) => {
                        acc = mix(acc, *v);
                        continue;
                    }
                    Some(WriteValue::Delta(d)) => *d,
                    None => 0,
                };
                // Cell 0 is hot: some transactions pause rather than read it early, others
                // link up as a chain (their estimate left there, suspended on the lower
                // transaction they would wait for), as the engine's hot locations do.
                let chain = c == 0 && txn_idx % 3 == 1;
                let value = loop {
                    if c == 0 && txn_idx.is_multiple_of(3) {
                        scheduler.wait_for_lower_executions(0, txn_idx);
                    }
                    if chain {
                        if let Some(running) = scheduler.highest_lower_executing(0, txn_idx) {
                            mem.predict_write(txn_idx, c);
                            if scheduler.add_dependency(txn_idx, running) {
                                return None;
                            }
                        }
                    }
                    let result = mem.read(&c, txn_idx, mode);
                    if let ReadResult::Blocked(blocking_txn_idx) = result {
                        if chain {
                            mem.predict_write(txn_idx, c);
                            if scheduler.add_dependency(txn_idx, blocking_txn_idx) {
                                return None;
                            }
                            continue;
                        }
                        if !scheduler.wait_for(txn_idx, blocking_txn_idx) {
                            return None;
                        }
                        continue;
                    }
                    reads.push((c, ReadOrigin::of(&result, mode).unwrap()));
                    break resolve(result, c);
                };
                acc = mix(acc, value.wrapping_add(own_delta));
            }
            Op::Write(c) => {
                local.insert(c, WriteValue::Value(acc ^ u64::from(txn_idx)));
            }
            Op::Add(c, x) => {
                let new = match local.get(&c) {
                    Some(WriteValue::Value(v)) => WriteValue::Value(v.wrapping_add(x)),
                    Some(WriteValue::Delta(d)) => WriteValue::Delta(d.wrapping_add(x)),
                    None => WriteValue::Delta(x),
                };
                local.insert(c, new);
            }
        }
        if acc % 7 == 0 {
            std::thread::yield_now();
        }
    }
    Some((reads, local.into_iter().collect(), acc))
}

/// Parallel run: final cells, outputs, counters.
fn run_parallel(block: &Block, threads: usize) -> (Vec<u64>, Vec<u64>, SchedulerCounters) {
    run_parallel_early(block, threads, &[])
}

/// [`run_parallel`] with `early` handed out first ([`Scheduler::set_early`]).
fn run_parallel_early(
    block: &Block,
    threads: usize,
    early: &[TxnIndex],
) -> (Vec<u64>, Vec<u64>, SchedulerCounters) {
    let n = block.len();
    let mut scheduler = Scheduler::with_workers(n, threads);
    scheduler.set_early(early);
    let scheduler = scheduler;
    let mem = Mem::with_workers(n, threads);
    let outputs: Vec<Mutex<u64>> = (0..n).map(|_| Mutex::new(0)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut task = None;
                loop {
                    match task.take().unwrap_or_else(|| scheduler.next_task()) {
                        Execute(version) => {
                            let txn_idx = version.txn_idx;
                            if let Some((mut reads, mut writes, out)) =
                                execute(&block[txn_idx as usize], txn_idx, &mem, &scheduler)
                            {
                                *outputs[txn_idx as usize].lock().unwrap() = out;
                                let wrote_new = mem.record(version, &mut reads, &mut writes);
                                task = scheduler.finish_execution(
                                    txn_idx,
                                    version.incarnation,
                                    wrote_new,
                                );
                            }
                        }
                        Validate { version, at_commit } => {
                            let txn_idx = version.txn_idx;
                            let aborted = !mem.validate_read_set(txn_idx)
                                && scheduler.try_validation_abort(txn_idx, version.incarnation);
                            if aborted {
                                mem.convert_writes_to_estimates(txn_idx);
                            }
                            task = scheduler.finish_validation(version, at_commit, aborted);
                        }
                        Retry => std::thread::yield_now(),
                        Done => break,
                    }
                }
            });
        }
    });
    assert_eq!(scheduler.invariant_error(), None);
    assert!(!scheduler.is_halted());
    for txn_idx in 0..n as TxnIndex {
        // Executed, and never more than the bounded number of times.
        assert!(matches!(
            scheduler.status(txn_idx),
            ExecutionStatus::Executed(incarnation) if incarnation <= MAX_SPECULATIVE_INCARNATIONS
        ));
    }
    let cells =
        (0..CELLS).map(|c| resolve(mem.read(&c, n as TxnIndex, ReadMode::WithDeltas), c)).collect();
    let outputs = outputs.into_iter().map(|o| o.into_inner().unwrap()).collect();
    (cells, outputs, scheduler.counters())
}

/// Runs `f` on another thread and fails if it takes longer than 60 s (a hang).
fn with_timeout(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The closure panicked: propagate its message.
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("scheduler simulation hung for 60 s"),
    }
}

#[test]
fn highest_lower_executing_is_the_closest_running_one() {
    let scheduler = Scheduler::with_workers(6, 3);
    assert_eq!(scheduler.highest_lower_executing(0, 4), None);
    let first = scheduler.next_task();
    let second = scheduler.next_task();
    let third = scheduler.next_task();
    assert_eq!(
        [first, second, third],
        [0, 1, 2].map(|i| Execute(Version::new(i, 0))),
        "executions handed out in order"
    );
    assert_eq!(scheduler.highest_lower_executing(0, 5), Some(2));
    assert_eq!(scheduler.highest_lower_executing(0, 2), Some(1));
    assert_eq!(scheduler.highest_lower_executing(0, 0), None);
    // Not below the floor: a read that found 1's value waits for nothing below it.
    assert_eq!(scheduler.highest_lower_executing(2, 5), Some(2));
    assert_eq!(scheduler.highest_lower_executing(3, 5), None);
    assert!(!scheduler.wait_for_lower_executions(3, 5), "nothing to wait for above 2");
    // Transaction 2 finishes: 1 is the closest running one below 5.
    scheduler.finish_execution(2, 0, true);
    assert_eq!(scheduler.highest_lower_executing(0, 5), Some(1));
    // Below the commit point nothing counts: 0 commits once it finishes.
    scheduler.finish_execution(0, 0, true);
    assert_eq!(scheduler.commit_idx(), 1);
    assert_eq!(scheduler.highest_lower_executing(0, 1), None);
}

fn simulate(seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let mut rng =
            XorShift(0x2545_F491_4F6C_DD1D ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let block = random_block(&mut rng);
        let threads = 2 + (seed % 7) as usize;
        let (cells, outputs) = run_sequential(&block);
        let (par_cells, par_outputs, counters) = run_parallel(&block, threads);
        assert_eq!(par_cells, cells, "seed {seed}: final state");
        assert_eq!(par_outputs, outputs, "seed {seed}: outputs");
        let n = block.len() as u64;
        assert_eq!(counters.executions, n + counters.aborts + counters.suspensions, "seed {seed}");
    }
}

#[test]
fn parallel_matches_sequential_random_blocks() {
    with_timeout(|| simulate(0..300));
}

/// Random blocks with random transactions started early: same results, every early
/// execution validated like any other.
#[test]
fn parallel_matches_sequential_with_early_transactions() {
    with_timeout(|| {
        for seed in 0..200u64 {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491) | 1);
            let block = random_block(&mut rng);
            let n = block.len() as u64;
            let early: Vec<TxnIndex> =
                (0..1 + rng.below(4)).map(|_| rng.below(n) as TxnIndex).collect();
            let threads = 2 + (seed % 5) as usize;
            let (cells, outputs) = run_sequential(&block);
            let (par_cells, par_outputs, counters) = run_parallel_early(&block, threads, &early);
            assert_eq!(par_cells, cells, "seed {seed}: final state");
            assert_eq!(par_outputs, outputs, "seed {seed}: outputs");
            assert_eq!(
                counters.executions,
                n + counters.aborts + counters.suspensions,
                "seed {seed}"
            );
        }
    });
}

#[test]
fn early_transactions_go_first_and_are_validated_at_the_commit_point() {
    let mut s = Scheduler::with_workers(4, 2);
    s.set_early(&[3]);
    assert_eq!(s.next_task(), Execute(Version::new(3, 0)));
    assert_eq!(s.next_task(), Execute(Version::new(0, 0)));
    assert_eq!(s.finish_execution(3, 0, true), None, "executed early: not committed");
    assert_eq!(s.finish_execution(0, 0, true), None);
    // Far enough above the commit point for an eager validation (it finds nothing stale).
    assert_eq!(s.next_task(), validate(3, 0, false));
    assert_eq!(s.finish_validation(Version::new(3, 0), false, false), None);
    assert_eq!(s.next_task(), Execute(Version::new(1, 0)));
    assert_eq!(s.next_task(), Execute(Version::new(2, 0)));
    // Started at the commit point: settled, committed on finishing.
    assert_eq!(s.finish_execution(1, 0, false), None);
    assert_eq!(s.commit_idx(), 2);
    // The sweep skips the early transaction; the commit point validates it once 2 is in.
    assert_eq!(s.finish_execution(2, 0, false), Some(validate(2, 0, true)));
    assert_eq!(s.finish_validation(Version::new(2, 0), true, false), Some(validate(3, 0, true)));
    // It read something 0..3 wrote: re-executed at the commit point, then committed.
    assert!(s.try_validation_abort(3, 0));
    assert_eq!(s.finish_validation(Version::new(3, 0), true, true), None);
    assert_eq!(s.next_task(), Execute(Version::new(3, 1)));
    assert_eq!(s.finish_execution(3, 1, false), None);
    assert_eq!(s.next_task(), Done);
    assert_eq!(s.invariant_error(), None);
}

#[test]
#[should_panic(expected = "early transaction out of the block")]
fn an_early_transaction_outside_the_block_is_refused() {
    Scheduler::with_workers(4, 2).set_early(&[4]);
}

#[test]
fn parallel_matches_sequential_single_thread() {
    with_timeout(|| {
        let mut rng = XorShift(42);
        for _ in 0..50 {
            let block = random_block(&mut rng);
            let (cells, outputs) = run_sequential(&block);
            let (par_cells, par_outputs, counters) = run_parallel(&block, 1);
            assert_eq!((par_cells, par_outputs), (cells, outputs));
            assert_eq!(counters.aborts + counters.suspensions, 0);
        }
    });
}

/// A hot cell every transaction reads and writes: maximal conflicts.
#[test]
fn parallel_matches_sequential_hot_cell() {
    with_timeout(|| {
        for threads in [2, 4, 8] {
            let block: Block =
                (0..64).map(|_| vec![Op::Read(0), Op::Write(0), Op::Add(1, 1)]).collect();
            let (cells, outputs) = run_sequential(&block);
            let (par_cells, par_outputs, counters) = run_parallel(&block, threads);
            assert_eq!((par_cells, par_outputs), (cells, outputs));
            assert_eq!(counters.executions, 64 + counters.aborts + counters.suspensions);
        }
    });
}
