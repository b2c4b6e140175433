//! Criterion benches of the multi-version memory: read, record and validate, with every
//! transaction on one hot key (contention) or on disjoint keys.

#![expect(missing_docs, reason = "criterion macros generate undocumented items")]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use velarium_mvmemory::{MvMemory, ReadMode, ReadOrigin, Version, WriteValue};

const BLOCK: u32 = 1_000;

type Mem = MvMemory<u64, u64, u64>;

/// Key written by `txn`: 0 for all (hot key) or `txn` (disjoint keys).
fn key(txn: u32, hot: bool) -> u64 {
    if hot {
        0
    } else {
        u64::from(txn)
    }
}

/// A memory where every txn wrote its key (value for even txns, delta for odd ones) and
/// recorded a read of the key below it.
fn filled(hot: bool) -> Mem {
    let mem = Mem::new(BLOCK as usize);
    for txn in 0..BLOCK {
        let k = key(txn, hot);
        let origin = ReadOrigin::of(&mem.read(&k, txn, ReadMode::WithDeltas), ReadMode::WithDeltas)
            .expect("nothing is blocked");
        let write =
            if txn % 2 == 0 { WriteValue::Value(u64::from(txn)) } else { WriteValue::Delta(1) };
        mem.record(Version::new(txn, 0), &mut vec![(k, origin)], &mut vec![(k, write)]);
    }
    mem
}

fn bench(c: &mut Criterion) {
    for (name, hot) in [("hot_key", true), ("disjoint_keys", false)] {
        let mem = filled(hot);
        let mut group = c.benchmark_group(name);
        group.bench_function(BenchmarkId::new("read", BLOCK), |b| {
            b.iter(|| {
                for txn in 0..BLOCK {
                    black_box(mem.read(&key(txn, hot), txn, ReadMode::WithDeltas));
                }
            })
        });
        group.bench_function(BenchmarkId::new("record", BLOCK), |b| {
            let mut incarnation = 1;
            let (mut reads, mut writes) = (Vec::new(), Vec::new());
            b.iter(|| {
                for txn in 0..BLOCK {
                    writes.push((key(txn, hot), WriteValue::Value(u64::from(txn))));
                    black_box(mem.record(Version::new(txn, incarnation), &mut reads, &mut writes));
                }
                incarnation += 1;
            })
        });
        let mem = filled(hot);
        group.bench_function(BenchmarkId::new("validate", BLOCK), |b| {
            b.iter(|| {
                for txn in 0..BLOCK {
                    black_box(mem.validate_read_set(txn));
                }
            })
        });
        group.bench_function(BenchmarkId::new("read_2_threads", BLOCK), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for t in 0..2 {
                        let mem = &mem;
                        s.spawn(move || {
                            for txn in (t..BLOCK).step_by(2) {
                                black_box(mem.read(&key(txn, hot), txn, ReadMode::WithDeltas));
                            }
                        });
                    }
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
