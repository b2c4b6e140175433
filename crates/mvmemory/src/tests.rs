//! Unit, stress and property tests of the multi-version memory.

use crate::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Mem = MvMemory<u32, u64, u64>;

fn writes(items: &[(u32, WriteValue<u64, u64>)]) -> WriteSet<u32, u64, u64> {
    items.iter().cloned().collect()
}

fn val(v: u64) -> WriteValue<u64, u64> {
    WriteValue::Value(v)
}

fn delta(d: u64) -> WriteValue<u64, u64> {
    WriteValue::Delta(d)
}

#[test]
fn read_below_and_above_writes() {
    let mem = Mem::new(10);
    assert_eq!(mem.read(&1, 5), ReadResult::NotFound { deltas: vec![] });
    mem.record(Version::new(3, 0), ReadSet::new(), writes(&[(1, val(30))]));
    // Below the writer: storage. At the writer itself: storage (own writes are not visible).
    assert_eq!(mem.read(&1, 2), ReadResult::NotFound { deltas: vec![] });
    assert_eq!(mem.read(&1, 3), ReadResult::NotFound { deltas: vec![] });
    let above = ReadResult::Value { version: Version::new(3, 0), value: 30, deltas: vec![] };
    assert_eq!(mem.read(&1, 4), above);
    assert_eq!(mem.read(&1, 9), above);
    mem.record(Version::new(6, 0), ReadSet::new(), writes(&[(1, val(60))]));
    assert_eq!(mem.read(&1, 5), above);
    assert_eq!(
        mem.read(&1, 7),
        ReadResult::Value { version: Version::new(6, 0), value: 60, deltas: vec![] }
    );
    // Other keys are unaffected.
    assert_eq!(mem.read(&2, 9), ReadResult::NotFound { deltas: vec![] });
}

#[test]
fn estimates_give_dependencies() {
    let mem = Mem::new(10);
    mem.record(Version::new(2, 0), ReadSet::new(), writes(&[(1, val(20)), (2, delta(5))]));
    mem.convert_writes_to_estimates(2);
    assert_eq!(mem.read(&1, 3), ReadResult::Dependency { blocking_txn_idx: 2 });
    assert_eq!(mem.read(&2, 3), ReadResult::Dependency { blocking_txn_idx: 2 });
    assert_eq!(mem.read(&1, 2), ReadResult::NotFound { deltas: vec![] });
    // An estimate below a delta is a dependency too.
    mem.record(Version::new(4, 0), ReadSet::new(), writes(&[(1, delta(1))]));
    assert_eq!(mem.read(&1, 5), ReadResult::Dependency { blocking_txn_idx: 2 });
    // But not below a full value.
    mem.record(Version::new(3, 0), ReadSet::new(), writes(&[(1, val(33))]));
    assert_eq!(
        mem.read(&1, 5),
        ReadResult::Value {
            version: Version::new(3, 0),
            value: 33,
            deltas: vec![(Version::new(4, 0), 1)]
        }
    );
    // Re-executing the aborted txn replaces its estimates.
    mem.record(Version::new(2, 1), ReadSet::new(), writes(&[(1, val(21))]));
    assert_eq!(
        mem.read(&1, 3),
        ReadResult::Value { version: Version::new(2, 1), value: 21, deltas: vec![] }
    );
    // Key 2 was not written again: its estimate is gone.
    assert_eq!(mem.read(&2, 3), ReadResult::NotFound { deltas: vec![] });
}

#[test]
fn deltas_accumulate_on_storage_and_on_data() {
    let mem = Mem::new(10);
    mem.record(Version::new(1, 0), ReadSet::new(), writes(&[(7, delta(1))]));
    mem.record(Version::new(3, 2), ReadSet::new(), writes(&[(7, delta(3))]));
    assert_eq!(
        mem.read(&7, 5),
        ReadResult::NotFound { deltas: vec![(Version::new(1, 0), 1), (Version::new(3, 2), 3)] }
    );
    mem.record(Version::new(2, 0), ReadSet::new(), writes(&[(7, val(100))]));
    let result = mem.read(&7, 5);
    assert_eq!(
        result,
        ReadResult::Value {
            version: Version::new(2, 0),
            value: 100,
            deltas: vec![(Version::new(3, 2), 3)]
        }
    );
    assert_eq!(
        ReadOrigin::from_read_result(&result),
        Some(ReadOrigin {
            base: ReadBase::Version(Version::new(2, 0)),
            deltas: vec![Version::new(3, 2)],
            ignore_deltas: false,
        })
    );
    assert_eq!(
        ReadOrigin::from_read_result(&ReadResult::<u64, u64>::Dependency { blocking_txn_idx: 1 }),
        None
    );
}

/// Reads `key` as `txn_idx` and returns the origin, asserting it is not a dependency.
fn origin(mem: &Mem, key: u32, txn_idx: TxnIndex) -> ReadOrigin {
    ReadOrigin::from_read_result(&mem.read(&key, txn_idx)).expect("no dependency")
}

#[test]
fn validation_fails_after_lower_rewrite() {
    let mem = Mem::new(10);
    mem.record(Version::new(1, 0), ReadSet::new(), writes(&[(1, val(10))]));
    let reads: ReadSet<u32> =
        [(1, origin(&mem, 1, 5)), (2, origin(&mem, 2, 5))].into_iter().collect();
    mem.record(Version::new(5, 0), reads, writes(&[(3, val(50))]));
    assert!(mem.validate_read_set(5));
    // A write above the reader does not matter.
    mem.record(Version::new(7, 0), ReadSet::new(), writes(&[(1, val(70)), (2, val(70))]));
    assert!(mem.validate_read_set(5));
    // A lower txn writing the read location invalidates.
    mem.record(Version::new(3, 0), ReadSet::new(), writes(&[(2, delta(1))]));
    assert!(!mem.validate_read_set(5));
    // Removing it again (its new incarnation does not write) makes the read valid again.
    mem.record(Version::new(3, 1), ReadSet::new(), writes(&[]));
    assert!(mem.validate_read_set(5));
    // A new incarnation of the writer of the read value invalidates.
    mem.record(Version::new(1, 1), ReadSet::new(), writes(&[(1, val(10))]));
    assert!(!mem.validate_read_set(5));
}

#[test]
fn validation_fails_on_estimate_and_on_delta_change() {
    let mem = Mem::new(10);
    mem.record(Version::new(1, 0), ReadSet::new(), writes(&[(1, delta(1))]));
    let reads: ReadSet<u32> = [(1, origin(&mem, 1, 4))].into_iter().collect();
    mem.record(Version::new(4, 0), reads, writes(&[]));
    assert!(mem.validate_read_set(4));
    mem.convert_writes_to_estimates(1);
    assert!(!mem.validate_read_set(4));
    mem.record(Version::new(1, 1), ReadSet::new(), writes(&[(1, delta(1))]));
    // Same delta value but another incarnation: the origin differs.
    assert!(!mem.validate_read_set(4));
    // An empty read set always validates.
    assert!(mem.validate_read_set(0));
}

#[test]
fn stale_writes_are_removed() {
    let mem = Mem::new(10);
    mem.record(Version::new(2, 0), ReadSet::new(), writes(&[(1, val(1)), (2, val(2))]));
    mem.record(Version::new(2, 1), ReadSet::new(), writes(&[(2, val(3))]));
    assert_eq!(mem.read(&1, 5), ReadResult::NotFound { deltas: vec![] });
    assert_eq!(
        mem.read(&2, 5),
        ReadResult::Value { version: Version::new(2, 1), value: 3, deltas: vec![] }
    );
    let mut keys = mem.last_written_keys(2);
    keys.sort_unstable();
    assert_eq!(keys, vec![2]);
}

#[test]
fn wrote_new_location() {
    let mem = Mem::new(10);
    assert!(!mem.record(Version::new(0, 0), ReadSet::new(), writes(&[])));
    assert!(mem.record(Version::new(2, 0), ReadSet::new(), writes(&[(1, val(1))])));
    assert!(!mem.record(Version::new(2, 1), ReadSet::new(), writes(&[(1, delta(1))])));
    assert!(!mem.record(Version::new(2, 2), ReadSet::new(), writes(&[])));
    assert!(mem.record(Version::new(2, 3), ReadSet::new(), writes(&[(1, val(1))])));
    assert!(mem.record(Version::new(2, 4), ReadSet::new(), writes(&[(1, val(1)), (2, val(1))])));
    assert!(!mem.record(Version::new(2, 5), ReadSet::new(), writes(&[(2, val(1))])));
}

#[test]
fn final_writes_in_txn_order() {
    let mem = Mem::new(10);
    mem.record(Version::new(4, 0), ReadSet::new(), writes(&[(1, delta(4))]));
    mem.record(Version::new(1, 0), ReadSet::new(), writes(&[(1, val(1)), (2, val(2))]));
    mem.record(Version::new(1, 1), ReadSet::new(), writes(&[(1, val(11))]));
    let mut finals = mem.into_final_writes().unwrap();
    finals.sort_by_key(|(k, _)| *k);
    assert_eq!(
        finals,
        vec![(1, vec![(Version::new(1, 1), val(11)), (Version::new(4, 0), delta(4))])]
    );

    let mem = Mem::new(10);
    mem.record(Version::new(4, 0), ReadSet::new(), writes(&[(1, delta(4))]));
    mem.convert_writes_to_estimates(4);
    assert_eq!(mem.into_final_writes(), Err(MvMemoryError::UnresolvedEstimate { txn_idx: 4 }));
}

/// Writers keep rewriting shared keys with values tagged by their version while readers check
/// every read is consistent (a value written by a lower txn, never torn).
#[test]
fn multi_threaded_stress() {
    const BLOCK: u32 = 64;
    const KEYS: u32 = 8;
    let mem = Mem::new(BLOCK as usize);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let mem = &mem;
            s.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(t);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for round in 0..2_000u32 {
                    // Thread t owns txns t, t+4, ...: one worker per txn, as the scheduler ensures.
                    let txn = (next() as u32 % (BLOCK / 4)) * 4 + t;
                    let key = next() as u32 % KEYS;
                    let read = mem.read(&key, txn);
                    match &read {
                        ReadResult::Value { version, value, deltas } => {
                            assert!(version.txn_idx < txn);
                            assert_eq!(
                                *value,
                                u64::from(version.txn_idx) * 1_000_000
                                    + u64::from(version.incarnation)
                            );
                            assert!(deltas
                                .iter()
                                .all(|(v, d)| v.txn_idx < txn && *d == u64::from(v.txn_idx)));
                        }
                        ReadResult::NotFound { deltas } => {
                            assert!(deltas.windows(2).all(|w| w[0].0 < w[1].0));
                        }
                        ReadResult::Dependency { blocking_txn_idx } => {
                            assert!(*blocking_txn_idx < txn)
                        }
                    }
                    let reads: ReadSet<u32> =
                        ReadOrigin::from_read_result(&read).map(|o| (key, o)).into_iter().collect();
                    let write_key = next() as u32 % KEYS;
                    let w = if next() % 2 == 0 {
                        val(u64::from(txn) * 1_000_000 + u64::from(round))
                    } else {
                        delta(u64::from(txn))
                    };
                    mem.record(Version::new(txn, round), reads, writes(&[(write_key, w)]));
                    let _ = mem.validate_read_set(txn);
                    if next() % 8 == 0 {
                        mem.convert_writes_to_estimates(txn);
                    }
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Property test: random sequential histories against a simple model.

#[derive(Debug, Clone)]
enum Op {
    /// Txn records a new incarnation reading `reads` (as of now) and writing `writes`.
    Record {
        txn: u32,
        reads: Vec<u32>,
        writes: Vec<(u32, bool, u64)>,
    },
    Read {
        txn: u32,
        key: u32,
    },
    Estimate {
        txn: u32,
    },
    Validate {
        txn: u32,
    },
}

const P_BLOCK: u32 = 8;
const P_KEYS: u32 = 4;

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..P_BLOCK,
            prop::collection::vec(0..P_KEYS, 0..3),
            prop::collection::vec((0..P_KEYS, any::<bool>(), 0..100u64), 0..3)
        )
            .prop_map(|(txn, reads, writes)| Op::Record { txn, reads, writes }),
        (0..=P_BLOCK, 0..P_KEYS).prop_map(|(txn, key)| Op::Read { txn, key }),
        (0..P_BLOCK).prop_map(|txn| Op::Estimate { txn }),
        (0..P_BLOCK).prop_map(|txn| Op::Validate { txn }),
    ]
}

#[derive(Default)]
struct ModelTxn {
    incarnation: u32,
    writes: BTreeMap<u32, WriteValue<u64, u64>>,
    estimate: bool,
    reads: Vec<(u32, ReadOrigin)>,
}

#[derive(Default)]
struct Model {
    txns: BTreeMap<u32, ModelTxn>,
}

impl Model {
    fn read(&self, key: u32, txn_idx: u32) -> ReadResult<u64, u64> {
        let mut deltas = Vec::new();
        for (&idx, t) in self.txns.range(..txn_idx).rev() {
            let Some(w) = t.writes.get(&key) else { continue };
            if t.estimate {
                return ReadResult::Dependency { blocking_txn_idx: idx };
            }
            let version = Version::new(idx, t.incarnation);
            match w {
                WriteValue::Delta(d) => deltas.push((version, *d)),
                WriteValue::Value(v) => {
                    deltas.reverse();
                    return ReadResult::Value { version, value: *v, deltas };
                }
            }
        }
        deltas.reverse();
        ReadResult::NotFound { deltas }
    }
}

proptest! {
    #[test]
    fn matches_sequential_model(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let mem = Mem::new(P_BLOCK as usize);
        let mut model = Model::default();
        let mut next_incarnation = [0u32; P_BLOCK as usize];
        for op in ops {
            match op {
                Op::Record { txn, reads, writes } => {
                    let reads: Vec<(u32, ReadOrigin)> = reads
                        .into_iter()
                        .filter_map(|k| ReadOrigin::from_read_result(&model.read(k, txn)).map(|o| (k, o)))
                        .collect();
                    let mut model_writes = BTreeMap::new();
                    for (k, is_delta, x) in &writes {
                        model_writes.insert(*k, if *is_delta { delta(*x) } else { val(*x) });
                    }
                    let incarnation = next_incarnation[txn as usize];
                    next_incarnation[txn as usize] += 1;
                    let expected_new = match model.txns.get(&txn) {
                        Some(prev) => model_writes.keys().any(|k| !prev.writes.contains_key(k)),
                        None => !model_writes.is_empty(),
                    };
                    let write_set: WriteSet<u32, u64, u64> = writes
                        .iter()
                        .map(|(k, is_delta, x)| (*k, if *is_delta { delta(*x) } else { val(*x) }))
                        .collect();
                    let got = mem.record(Version::new(txn, incarnation), reads.clone().into(), write_set);
                    prop_assert_eq!(got, expected_new);
                    model.txns.insert(txn, ModelTxn { incarnation, writes: model_writes, estimate: false, reads });
                }
                Op::Read { txn, key } => {
                    prop_assert_eq!(mem.read(&key, txn), model.read(key, txn));
                }
                Op::Estimate { txn } => {
                    mem.convert_writes_to_estimates(txn);
                    if let Some(t) = model.txns.get_mut(&txn) {
                        t.estimate = true;
                    }
                }
                Op::Validate { txn } => {
                    let expected = model.txns.get(&txn).is_none_or(|t| {
                        t.reads.iter().all(|(k, o)| ReadOrigin::from_read_result(&model.read(*k, txn)).as_ref() == Some(o))
                    });
                    prop_assert_eq!(mem.validate_read_set(txn), expected);
                }
            }
        }
        // Final writes agree with the model's entries.
        let mut finals = mem.into_final_writes();
        let any_estimate = model.txns.values().any(|t| t.estimate && !t.writes.is_empty());
        if any_estimate {
            prop_assert!(finals.is_err());
        } else {
            let finals = finals.as_mut().unwrap();
            finals.sort_by_key(|(k, _)| *k);
            let mut expected: BTreeMap<u32, LocationWrites<u64, u64>> = BTreeMap::new();
            for (&idx, t) in &model.txns {
                for (k, w) in &t.writes {
                    expected.entry(*k).or_default().push((Version::new(idx, t.incarnation), w.clone()));
                }
            }
            let expected: Vec<_> = expected.into_iter().collect();
            prop_assert_eq!(finals.clone(), expected);
        }
    }
}

#[test]
fn reads_ignoring_deltas_survive_new_credits_but_not_new_values() {
    let mem = Mem::new(8);
    // Txn 5 reads key 7 caring only about the full value (storage here).
    let read = origin(&mem, 7, 5).without_deltas();
    mem.record(Version::new(5, 0), ReadSet::from(vec![(7, read)]), WriteSet::new());
    // A credit below it does not invalidate that read; a full value does.
    mem.record(Version::new(2, 0), ReadSet::new(), WriteSet::from(vec![(7, WriteValue::Delta(4))]));
    assert!(mem.validate_read_set(5));
    mem.record(Version::new(3, 0), ReadSet::new(), WriteSet::from(vec![(7, WriteValue::Value(9))]));
    assert!(!mem.validate_read_set(5));
    // Re-read on top of the value: new credits below still do not matter, an estimate does.
    let read = origin(&mem, 7, 5).without_deltas();
    mem.record(Version::new(5, 1), ReadSet::from(vec![(7, read)]), WriteSet::new());
    assert!(mem.validate_read_set(5));
    mem.record(Version::new(4, 0), ReadSet::new(), WriteSet::from(vec![(7, WriteValue::Delta(1))]));
    assert!(mem.validate_read_set(5));
    mem.convert_writes_to_estimates(4);
    assert!(!mem.validate_read_set(5));
}
