//! Criterion bench of task dispatch throughput: a block of empty transactions (no reads, no
//! writes) driven through the scheduler by 1 and 2 worker threads.

#![expect(missing_docs, reason = "criterion macros generate undocumented items")]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use velarium_scheduler::{Scheduler, SchedulerTask};

/// Runs a block of `block_size` empty transactions on `threads` workers.
fn run_block(block_size: usize, threads: usize) {
    let scheduler = Scheduler::with_workers(block_size, threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut task = None;
                loop {
                    match task.take().unwrap_or_else(|| scheduler.next_task()) {
                        SchedulerTask::Execute(version) => {
                            task = scheduler.finish_execution(
                                version.txn_idx,
                                version.incarnation,
                                false,
                            );
                        }
                        SchedulerTask::Validate { version, at_commit } => {
                            task =
                                scheduler.finish_validation(black_box(version), at_commit, false);
                        }
                        SchedulerTask::Retry => std::hint::spin_loop(),
                        SchedulerTask::Done => break,
                    }
                }
            });
        }
    });
    assert!(scheduler.done());
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch_empty_txns");
    for block_size in [1_000usize, 10_000] {
        group.throughput(Throughput::Elements(block_size as u64));
        for threads in [1usize, 2] {
            group.bench_with_input(
                BenchmarkId::new(format!("{threads}_threads"), block_size),
                &block_size,
                |b, &block_size| b.iter(|| run_block(block_size, threads)),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
