//! Where Block-STM starts to pay off: the oracle vs the parallel engine (2 threads) on small
//! conflict-free blocks, to measure the sequential threshold for small blocks.
//!
//! `cargo bench -p velarium-workloads --bench small_blocks`
#![expect(missing_docs, reason = "criterion macros generate undocumented items")]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use velarium_executor::{execute_parallel, execute_sequential};
use velarium_workloads::{erc20_transfers, eth_transfers};

fn small_blocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("small_blocks");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for (name, generate) in
        [("eth", eth_transfers as fn(u64, usize) -> _), ("erc20", erc20_transfers)]
    {
        for n in [1usize, 4, 8, 16, 32, 64, 128] {
            let w = generate(1, n);
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/sequential"), n),
                &w,
                |b, w| b.iter(|| execute_sequential(&w.spec, &w.state, w.block_input()).unwrap()),
            );
            group.bench_with_input(BenchmarkId::new(format!("{name}/parallel2"), n), &w, |b, w| {
                b.iter(|| execute_parallel(&w.spec, &w.state, w.block_input(), 2).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, small_blocks);
criterion_main!(benches);
