//! Unit, stress and property tests of the multi-version memory.

use crate::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Mem = MvMemory<u32, u64, u64>;

const WITH: ReadMode = ReadMode::WithDeltas;
const IGNORE: ReadMode = ReadMode::IgnoreDeltas;

fn val(v: u64) -> WriteValue<u64, u64> {
    WriteValue::Value(v)
}

fn delta(d: u64) -> WriteValue<u64, u64> {
    WriteValue::Delta(d)
}

/// Records an incarnation that read nothing.
fn record(mem: &Mem, txn: u32, incarnation: u32, items: &[(u32, WriteValue<u64, u64>)]) -> bool {
    record_reads(mem, txn, incarnation, Vec::new(), items)
}

fn record_reads(
    mem: &Mem,
    txn: u32,
    incarnation: u32,
    mut reads: ReadSet<u32, u64>,
    items: &[(u32, WriteValue<u64, u64>)],
) -> bool {
    let mut writes: WriteSet<u32, u64, u64> = items.to_vec();
    let new = mem.record(Version::new(txn, incarnation), &mut reads, &mut writes);
    assert!(writes.is_empty() && reads.is_empty(), "writes drained, reads swapped out cleared");
    new
}

const fn sum(sum: u64, count: u32) -> Option<DeltaSum<u64>> {
    Some(DeltaSum { sum, count })
}

fn value(
    txn: u32,
    incarnation: u32,
    value: u64,
    deltas: Option<DeltaSum<u64>>,
) -> ReadResult<u64, u64> {
    ReadResult::Value { version: Version::new(txn, incarnation), value, deltas }
}

const BASE: ReadResult<u64, u64> = ReadResult::Base { deltas: None };

#[test]
fn read_below_and_above_writes() {
    let mem = Mem::new(10);
    assert_eq!(mem.read(&1, 5, WITH), BASE);
    record(&mem, 3, 0, &[(1, val(30))]);
    // Below the writer: storage. At the writer itself: storage (own writes are not visible).
    assert_eq!(mem.read(&1, 2, WITH), BASE);
    assert_eq!(mem.read(&1, 3, WITH), BASE);
    assert_eq!(mem.read(&1, 4, WITH), value(3, 0, 30, None));
    assert_eq!(mem.read(&1, 9, IGNORE), value(3, 0, 30, None));
    record(&mem, 6, 0, &[(1, val(60))]);
    assert_eq!(mem.read(&1, 5, WITH), value(3, 0, 30, None));
    assert_eq!(mem.read(&1, 7, WITH), value(6, 0, 60, None));
    // Other keys are unaffected.
    assert_eq!(mem.read(&2, 9, WITH), BASE);
}

#[test]
fn estimates_block_reads() {
    let mem = Mem::new(10);
    record(&mem, 2, 0, &[(1, val(20)), (2, delta(5))]);
    mem.convert_writes_to_estimates(2);
    assert_eq!(mem.read(&1, 3, WITH), ReadResult::Blocked(2));
    assert_eq!(mem.read(&2, 3, WITH), ReadResult::Blocked(2));
    // A delta's estimate blocks reads that ignore deltas too: its writer may write a value.
    assert_eq!(mem.read(&2, 3, IGNORE), ReadResult::Blocked(2));
    assert_eq!(mem.read(&1, 2, WITH), BASE);
    // An estimate below a delta blocks.
    record(&mem, 4, 0, &[(1, delta(1))]);
    assert_eq!(mem.read(&1, 5, WITH), ReadResult::Blocked(2));
    // But not below a full value.
    record(&mem, 3, 0, &[(1, val(33))]);
    assert_eq!(mem.read(&1, 5, WITH), value(3, 0, 33, sum(1, 1)));
    // Re-executing the aborted txn replaces its estimates.
    record(&mem, 2, 1, &[(1, val(21))]);
    assert_eq!(mem.read(&1, 3, WITH), value(2, 1, 21, None));
    // Key 2 was not written again: its estimate is gone.
    assert_eq!(mem.read(&2, 3, WITH), BASE);
    assert_eq!(mem.read(&2, 3, IGNORE), BASE);
}

#[test]
fn predicted_writes_block_until_recorded() {
    let mem = Mem::new(10);
    record(&mem, 1, 0, &[(1, val(10))]);
    // Transaction 3 expects to write key 1 (a chain's next link): readers above it are blocked
    // by it, readers below it are not; a second prediction of the same key changes nothing.
    mem.predict_write(3, 1);
    mem.predict_write(3, 1);
    assert_eq!(mem.read(&1, 4, WITH), ReadResult::Blocked(3));
    assert_eq!(mem.read(&1, 4, IGNORE), ReadResult::Blocked(3));
    assert_eq!(mem.read(&1, 3, WITH), value(1, 0, 10, None));
    assert_eq!(mem.read(&1, 2, WITH), value(1, 0, 10, None));
    // Its write replaces the estimate and still counts as a new location (the transactions
    // above it that read key 1 before the estimate must be validated again).
    assert!(record(&mem, 3, 1, &[(1, val(30))]));
    assert_eq!(mem.read(&1, 4, WITH), value(3, 1, 30, None));
    // A prediction it does not fulfil is removed when it records, final or not.
    mem.predict_write(5, 2);
    assert_eq!(mem.read(&2, 6, WITH), ReadResult::Blocked(5));
    assert!(!record(&mem, 5, 1, &[]));
    assert_eq!(mem.read(&2, 6, WITH), BASE);
    mem.predict_write(6, 2);
    let mut writes: WriteSet<u32, u64, u64> = vec![(3, val(1))];
    assert!(mem.record_final(Version::new(6, 1), &mut writes));
    assert_eq!(mem.read(&2, 7, WITH), BASE);
    // A delta recorded where the estimate was replaces it too.
    mem.predict_write(7, 1);
    assert!(record(&mem, 7, 1, &[(1, delta(2))]));
    assert_eq!(mem.read(&1, 8, WITH), value(3, 1, 30, sum(2, 1)));
    // Predicting a location the last incarnation wrote turns its write into an estimate.
    mem.predict_write(3, 1);
    assert_eq!(mem.read(&1, 4, WITH), ReadResult::Blocked(3));
    assert!(!record(&mem, 3, 2, &[(1, val(31))]));
    assert_eq!(mem.read(&1, 4, WITH), value(3, 2, 31, None));
    let finals = mem.into_final_writes().expect("no estimate left");
    assert!(finals.iter().all(|(_, writes)| !writes.is_empty()));
}

#[test]
fn deltas_accumulate_on_storage_and_on_values() {
    let mem = Mem::new(10);
    record(&mem, 1, 0, &[(7, delta(1))]);
    record(&mem, 3, 2, &[(7, delta(3))]);
    assert_eq!(mem.read(&7, 5, WITH), ReadResult::Base { deltas: sum(4, 2) });
    assert_eq!(mem.read(&7, 5, IGNORE), BASE);
    assert_eq!(mem.read(&7, 2, WITH), ReadResult::Base { deltas: sum(1, 1) });
    record(&mem, 2, 0, &[(7, val(100))]);
    let result = mem.read(&7, 5, WITH);
    assert_eq!(result, value(2, 0, 100, sum(3, 1)));
    assert_eq!(
        ReadOrigin::of(&result, WITH),
        Some(ReadOrigin { base: Some(Version::new(2, 0)), deltas: sum(3, 1), mode: WITH })
    );
    assert_eq!(ReadOrigin::of(&ReadResult::<u64, u64>::Blocked(1), WITH), None);
    // A transaction switching from a delta to a value (and back) keeps one entry.
    record(&mem, 3, 3, &[(7, val(5))]);
    assert_eq!(mem.read(&7, 5, WITH), value(3, 3, 5, None));
    record(&mem, 3, 4, &[(7, delta(6))]);
    assert_eq!(mem.read(&7, 5, WITH), value(2, 0, 100, sum(6, 1)));
}

/// Reads `key` as `txn_idx` and returns the origin, asserting the read is not blocked.
fn origin(mem: &Mem, key: u32, txn_idx: TxnIndex, mode: ReadMode) -> ReadOrigin<u64> {
    ReadOrigin::of(&mem.read(&key, txn_idx, mode), mode).expect("not blocked")
}

#[test]
fn validation_fails_after_lower_rewrite() {
    let mem = Mem::new(10);
    record(&mem, 1, 0, &[(1, val(10))]);
    let reads = vec![(1, origin(&mem, 1, 5, WITH)), (2, origin(&mem, 2, 5, WITH))];
    record_reads(&mem, 5, 0, reads, &[(3, val(50))]);
    assert!(mem.validate_read_set(5));
    // A write above the reader does not matter.
    record(&mem, 7, 0, &[(1, val(70)), (2, val(70))]);
    assert!(mem.validate_read_set(5));
    // A lower txn writing the read location invalidates.
    record(&mem, 3, 0, &[(2, delta(1))]);
    assert!(!mem.validate_read_set(5));
    // Removing it again (its new incarnation does not write) makes the read valid again.
    record(&mem, 3, 1, &[]);
    assert!(mem.validate_read_set(5));
    // A new incarnation of the writer of the read value invalidates, even with the same value.
    record(&mem, 1, 1, &[(1, val(10))]);
    assert!(!mem.validate_read_set(5));
}

#[test]
fn deltas_validate_by_value() {
    let mem = Mem::new(10);
    record(&mem, 1, 0, &[(1, delta(1))]);
    record_reads(&mem, 4, 0, vec![(1, origin(&mem, 1, 4, WITH))], &[]);
    assert!(mem.validate_read_set(4));
    mem.convert_writes_to_estimates(1);
    assert!(!mem.validate_read_set(4));
    // The same delta from another incarnation: the value read is the same.
    record(&mem, 1, 1, &[(1, delta(1))]);
    assert!(mem.validate_read_set(4));
    // Another amount, or one more delta (even zero: it touches the location), is not.
    record(&mem, 1, 2, &[(1, delta(2))]);
    assert!(!mem.validate_read_set(4));
    record(&mem, 1, 3, &[(1, delta(1))]);
    assert!(mem.validate_read_set(4));
    record(&mem, 2, 0, &[(1, delta(0))]);
    assert!(!mem.validate_read_set(4));
    // An empty read set always validates.
    assert!(mem.validate_read_set(0));
}

#[test]
fn reads_ignoring_deltas_survive_new_credits_but_not_new_values() {
    let mem = Mem::new(8);
    // Txn 5 reads key 7 caring only about the full value (storage here).
    record_reads(&mem, 5, 0, vec![(7, origin(&mem, 7, 5, IGNORE))], &[]);
    // A credit below it does not invalidate that read; a full value does.
    record(&mem, 2, 0, &[(7, delta(4))]);
    assert!(mem.validate_read_set(5));
    record(&mem, 3, 0, &[(7, val(9))]);
    assert!(!mem.validate_read_set(5));
    // Re-read on top of the value: new credits below still do not matter, an estimate does.
    record_reads(&mem, 5, 1, vec![(7, origin(&mem, 7, 5, IGNORE))], &[]);
    assert!(mem.validate_read_set(5));
    record(&mem, 4, 0, &[(7, delta(1))]);
    assert!(mem.validate_read_set(5));
    mem.convert_writes_to_estimates(4);
    assert!(!mem.validate_read_set(5));
    // A delta estimate below the full value does not block.
    record(&mem, 4, 1, &[(7, delta(1))]);
    mem.convert_writes_to_estimates(2);
    assert!(mem.validate_read_set(5));
}

#[test]
fn many_credits_are_summed_in_range() {
    let mem = Mem::new(1_000);
    for txn in 0..1_000u32 {
        if txn % 100 == 50 {
            record(&mem, txn, 0, &[(1, val(u64::from(txn) * 1_000))]);
        } else {
            record(&mem, txn, 0, &[(1, delta(1))]);
        }
    }
    // Below txn 999: the last value is txn 950's, then 48 credits (951..=998).
    assert_eq!(mem.read(&1, 999, WITH), value(950, 0, 950_000, sum(48, 48)));
    assert_eq!(mem.read(&1, 999, IGNORE), value(950, 0, 950_000, None));
    assert_eq!(mem.read(&1, 50, WITH), ReadResult::Base { deltas: sum(50, 50) });
    assert_eq!(mem.read(&1, 0, WITH), BASE);
}

#[test]
fn stale_writes_are_removed() {
    let mem = Mem::new(10);
    record(&mem, 2, 0, &[(1, val(1)), (2, val(2))]);
    record(&mem, 2, 1, &[(2, val(3))]);
    assert_eq!(mem.read(&1, 5, WITH), BASE);
    assert_eq!(mem.read(&2, 5, WITH), value(2, 1, 3, None));
    assert_eq!(mem.last_written_keys(2), vec![2]);
}

#[test]
fn wrote_new_location() {
    let mem = Mem::new(10);
    assert!(!record(&mem, 0, 0, &[]));
    assert!(record(&mem, 2, 0, &[(1, val(1))]));
    assert!(!record(&mem, 2, 1, &[(1, delta(1))]));
    assert!(!record(&mem, 2, 2, &[]));
    assert!(record(&mem, 2, 3, &[(1, val(1))]));
    assert!(record(&mem, 2, 4, &[(1, val(1)), (2, val(1))]));
    assert!(!record(&mem, 2, 5, &[(2, val(1))]));
}

#[test]
fn final_writes_in_txn_order() {
    let mem = Mem::new(10);
    record(&mem, 4, 0, &[(1, delta(4))]);
    record(&mem, 1, 0, &[(1, val(1)), (2, val(2))]);
    record(&mem, 1, 1, &[(1, val(11))]);
    let mut finals = mem.into_final_writes().unwrap();
    finals.sort_by_key(|(k, _)| *k);
    assert_eq!(
        finals,
        vec![(1, vec![(Version::new(1, 1), val(11)), (Version::new(4, 0), delta(4))])]
    );

    let mem = Mem::new(10);
    record(&mem, 4, 0, &[(1, delta(4))]);
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
                    let mode = if next() % 2 == 0 { WITH } else { IGNORE };
                    let read = mem.read(&key, txn, mode);
                    match &read {
                        ReadResult::Value { version, value, deltas } => {
                            assert!(version.txn_idx < txn);
                            assert_eq!(
                                *value,
                                u64::from(version.txn_idx) * 1_000_000
                                    + u64::from(version.incarnation)
                            );
                            assert!(deltas.is_none_or(|d| d.count > 0));
                        }
                        ReadResult::Base { deltas } => assert!(deltas.is_none_or(|d| d.count > 0)),
                        ReadResult::Blocked(blocking) => assert!(*blocking < txn),
                    }
                    let reads: ReadSet<u32, u64> =
                        ReadOrigin::of(&read, mode).map(|o| (key, o)).into_iter().collect();
                    let write_key = next() as u32 % KEYS;
                    let w = if next() % 2 == 0 {
                        val(u64::from(txn) * 1_000_000 + u64::from(round))
                    } else {
                        delta(u64::from(txn))
                    };
                    record_reads(mem, txn, round, reads, &[(write_key, w)]);
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
        reads: Vec<(u32, bool)>,
        writes: Vec<(u32, bool, u64)>,
    },
    Read {
        txn: u32,
        key: u32,
        ignore: bool,
    },
    Estimate {
        txn: u32,
    },
    /// `MvMemory::predict_write`: an estimate of txn at key until it records.
    Predict {
        txn: u32,
        key: u32,
    },
    Validate {
        txn: u32,
    },
}

impl Op {
    /// The same operation on keys below `keys` (folded onto them; a record's writes to one
    /// key are then folded by the model, as the engine folds them).
    fn within_keys(self, keys: u32) -> Self {
        match self {
            Self::Record { txn, reads, writes } => Self::Record {
                txn,
                reads: reads.into_iter().map(|(k, ignore)| (k % keys, ignore)).collect(),
                writes: writes
                    .into_iter()
                    .map(|(k, is_delta, x)| (k % keys, is_delta, x))
                    .collect(),
            },
            Self::Read { txn, key, ignore } => Self::Read { txn, key: key % keys, ignore },
            Self::Predict { txn, key } => Self::Predict { txn, key: key % keys },
            other => other,
        }
    }
}

const P_BLOCK: u32 = 8;
const P_KEYS: u32 = 4;

fn op_strategy(block: u32, keys: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..block,
            prop::collection::vec((0..keys, any::<bool>()), 0..3),
            prop::collection::vec((0..keys, any::<bool>(), 0..3u64), 0..3)
        )
            .prop_map(|(txn, reads, writes)| Op::Record { txn, reads, writes }),
        (0..=block, 0..keys, any::<bool>()).prop_map(|(txn, key, ignore)| Op::Read {
            txn,
            key,
            ignore
        }),
        (0..block).prop_map(|txn| Op::Estimate { txn }),
        (0..block, 0..keys).prop_map(|(txn, key)| Op::Predict { txn, key }),
        (0..block).prop_map(|txn| Op::Validate { txn }),
    ]
}

#[derive(Default)]
struct ModelTxn {
    incarnation: u32,
    writes: BTreeMap<u32, WriteValue<u64, u64>>,
    estimate: bool,
    /// Keys predicted since its last record: estimates whatever it wrote there.
    predicted: std::collections::BTreeSet<u32>,
    reads: Vec<(u32, ReadOrigin<u64>)>,
}

#[derive(Default)]
struct Model {
    txns: BTreeMap<u32, ModelTxn>,
}

impl Model {
    /// Walks down from the reader: the first full value ends the walk; deltas are summed (or
    /// skipped); any estimate on the way blocks.
    fn read(&self, key: u32, txn_idx: u32, mode: ReadMode) -> ReadResult<u64, u64> {
        let (mut total, mut count) = (0u64, 0u32);
        for (&idx, t) in self.txns.range(..txn_idx).rev() {
            if t.predicted.contains(&key) {
                return ReadResult::Blocked(idx);
            }
            let Some(w) = t.writes.get(&key) else { continue };
            if t.estimate {
                return ReadResult::Blocked(idx);
            }
            match w {
                WriteValue::Delta(d) => {
                    total += *d;
                    count += 1;
                }
                WriteValue::Value(v) => {
                    let deltas =
                        (mode == WITH && count > 0).then_some(DeltaSum { sum: total, count });
                    return ReadResult::Value {
                        version: Version::new(idx, t.incarnation),
                        value: *v,
                        deltas,
                    };
                }
            }
        }
        ReadResult::Base {
            deltas: (mode == WITH && count > 0).then_some(DeltaSum { sum: total, count }),
        }
    }
}

fn mode_of(ignore: bool) -> ReadMode {
    if ignore {
        IGNORE
    } else {
        WITH
    }
}

proptest! {
    #[test]
    fn matches_sequential_model(ops in prop::collection::vec(op_strategy(P_BLOCK, P_KEYS), 1..60)) {
        check_against_model(P_BLOCK, ops)?;
    }

    /// Fewer locations and more transactions: a location gathers enough deltas for their
    /// running sums (see `SUMMED_DELTAS`), with full values among them.
    #[test]
    fn matches_sequential_model_with_many_deltas(
        keys in 1..3u32,
        ops in prop::collection::vec(op_strategy(3 * P_BLOCK, 2), 1..200)
    ) {
        let ops = ops.into_iter().map(|op| op.within_keys(keys)).collect();
        check_against_model(3 * P_BLOCK, ops)?;
    }
}

/// Runs `ops` on a memory for `block` transactions and on the sequential model side by side.
fn check_against_model(block: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mem = Mem::new(block as usize);
    let mut model = Model::default();
    let mut next_incarnation = vec![0u32; block as usize];
    for op in ops {
        match op {
            Op::Record { txn, reads, writes } => {
                let reads: Vec<(u32, ReadOrigin<u64>)> = reads
                    .into_iter()
                    .filter_map(|(k, ignore)| {
                        let mode = mode_of(ignore);
                        ReadOrigin::of(&model.read(k, txn, mode), mode).map(|o| (k, o))
                    })
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
                // One write per location, as the engine folds them.
                let items: Vec<_> = model_writes.iter().map(|(k, w)| (*k, w.clone())).collect();
                let got = record_reads(&mem, txn, incarnation, reads.clone(), &items);
                prop_assert_eq!(got, expected_new);
                model.txns.insert(
                    txn,
                    ModelTxn {
                        incarnation,
                        writes: model_writes,
                        estimate: false,
                        predicted: Default::default(),
                        reads,
                    },
                );
            }
            Op::Read { txn, key, ignore } => {
                let mode = mode_of(ignore);
                prop_assert_eq!(mem.read(&key, txn, mode), model.read(key, txn, mode));
            }
            Op::Estimate { txn } => {
                mem.convert_writes_to_estimates(txn);
                if let Some(t) = model.txns.get_mut(&txn) {
                    t.estimate = true;
                }
            }
            Op::Predict { txn, key } => {
                mem.predict_write(txn, key);
                model.txns.entry(txn).or_default().predicted.insert(key);
            }
            Op::Validate { txn } => {
                let expected = model.txns.get(&txn).is_none_or(|t| {
                    t.reads.iter().all(|(k, o)| {
                        ReadOrigin::of(&model.read(*k, txn, o.mode), o.mode).as_ref() == Some(o)
                    })
                });
                prop_assert_eq!(mem.validate_read_set(txn), expected);
            }
        }
    }
    // Final writes agree with the model's entries.
    let mut finals = mem.into_final_writes();
    let any_estimate = model
        .txns
        .values()
        .any(|t| (t.estimate && !t.writes.is_empty()) || !t.predicted.is_empty());
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
    Ok(())
}

#[test]
fn final_records_prune_what_nobody_can_read() {
    let mem = Mem::new(100);
    // Every transaction, in order, adds a credit and then overwrites a hot value: as on one
    // worker, each one final when recorded.
    for txn in 0..100u32 {
        let mut writes = vec![(1, val(u64::from(txn))), (2, delta(1))];
        if txn % 10 == 0 {
            writes.push((3, val(u64::from(txn) * 2)));
        }
        mem.record_final(Version::new(txn, 0), &mut writes);
        // What the next transaction reads is unaffected by the pruning.
        assert_eq!(mem.read(&1, txn + 1, WITH), value(txn, 0, u64::from(txn), None));
        assert_eq!(
            mem.read(&2, txn + 1, WITH),
            ReadResult::Base { deltas: sum(u64::from(txn) + 1, txn + 1) }
        );
        let last3 = txn / 10 * 10;
        assert_eq!(mem.read(&3, txn + 1, WITH), value(last3, 0, u64::from(last3) * 2, None));
    }
    // The hot location keeps a couple of versions, not a hundred.
    let finals = mem.into_final_writes().unwrap();
    let hot = finals.iter().find(|(k, _)| *k == 1).unwrap();
    assert!(hot.1.len() <= 3, "{} versions kept", hot.1.len());
}

#[test]
fn reset_reuses_the_memory_for_a_new_block() {
    let mut mem = Mem::with_workers(10, 2);
    record(&mem, 3, 0, &[(1, val(30))]);
    record_reads(&mem, 5, 0, vec![(1, origin(&mem, 1, 5, WITH))], &[(2, delta(2))]);
    mem.reset(20, 2);
    assert_eq!(mem.block_size(), 20);
    assert_eq!(mem.read(&1, 9, WITH), BASE);
    assert_eq!(mem.read(&2, 9, WITH), BASE);
    assert!(mem.validate_read_set(5), "no read set left");
    assert!(mem.last_written_keys(3).is_empty());
    record(&mem, 15, 0, &[(1, val(150))]);
    assert_eq!(mem.read(&1, 19, WITH), value(15, 0, 150, None));
    // Another worker count rebuilds it.
    mem.reset(4, 16);
    assert_eq!(mem.read(&1, 3, WITH), BASE);
    // Cleared between blocks (off the critical path), the next reset has nothing to empty; a
    // reset without a clear before it empties everything itself.
    record(&mem, 2, 0, &[(1, val(20))]);
    mem.clear();
    mem.reset(4, 16);
    assert_eq!(mem.read(&1, 3, WITH), BASE);
    record(&mem, 1, 0, &[(1, val(10))]);
    mem.reset(4, 16);
    mem.reset(4, 16);
    assert_eq!(mem.read(&1, 3, WITH), BASE);
    assert!(mem.last_written_keys(1).is_empty());
}

#[test]
fn the_filter_forgets_earlier_blocks_without_being_rewritten() {
    let mut mem = Mem::with_workers(10, 2);
    // More blocks than there are epoch tags, and block sizes that change the filter's size.
    for block in 0..700u32 {
        let size = if block % 97 == 96 { 5000 } else { 10 };
        mem.reset(size, 2);
        let key = block % 3;
        let last = (block + 2) % 3;
        // What the previous block wrote is gone, from the filter too.
        assert_eq!(mem.read(&last, 9, WITH), BASE, "block {block}");
        assert!(!mem.filter_says_written_below(&last, 9), "block {block}: stale entry");
        record(&mem, 3, 0, &[(key, val(u64::from(block)))]);
        assert!(mem.filter_says_written_below(&key, 4), "block {block}");
        assert!(!mem.filter_says_written_below(&key, 3), "block {block}");
        assert_eq!(mem.read(&key, 2, WITH), BASE);
        assert_eq!(mem.read(&key, 5, WITH), value(3, 0, u64::from(block), None));
        if block % 2 == 0 {
            mem.clear();
        }
    }
}

#[test]
fn deltas_between_sums_only_the_range_and_stops_at_estimates() {
    let mem = Mem::new(10);
    record(&mem, 1, 0, &[(7, delta(1))]);
    record(&mem, 3, 0, &[(7, delta(10))]);
    record(&mem, 5, 0, &[(7, delta(100))]);
    record(&mem, 6, 0, &[(7, val(9))]);
    // Strictly above the floor, strictly below the reader; full values are not deltas.
    assert_eq!(mem.deltas_between(&7, 1, 9), Ok(110));
    assert_eq!(mem.deltas_between(&7, 0, 5), Ok(11));
    assert_eq!(mem.deltas_between(&7, 5, 9), Ok(0));
    assert_eq!(mem.deltas_between(&8, 0, 9), Ok(0));
    mem.convert_writes_to_estimates(3);
    assert_eq!(mem.deltas_between(&7, 1, 9), Err(3));
    assert_eq!(mem.deltas_between(&7, 3, 9), Ok(100));
}

#[test]
fn running_sums_of_deltas_survive_pruning_and_out_of_order_changes() {
    // One location that both full values and deltas write, recorded final in order (the
    // cell is pruned as it goes): every read's delta sum is that of the deltas above the last
    // full value, as a walk over them finds.
    let mem = Mem::new(200);
    let mut last_full: Option<(u32, u64)> = None;
    let mut since = (0u64, 0u32);
    for txn in 0..120u32 {
        let x = u64::from(txn) * 7 + 3;
        if txn % 9 == 4 {
            mem.record_final(Version::new(txn, 0), &mut vec![(5, val(x))]);
            last_full = Some((txn, x));
            since = (0, 0);
        } else {
            mem.record_final(Version::new(txn, 0), &mut vec![(5, delta(x))]);
            since = (since.0.wrapping_add(x), since.1 + 1);
        }
        let deltas = (since.1 > 0).then_some(DeltaSum { sum: since.0, count: since.1 });
        let expected = match last_full {
            Some((at, v)) => value(at, 0, v, deltas),
            None => ReadResult::Base { deltas },
        };
        assert_eq!(mem.read(&5, txn + 1, WITH), expected, "after {txn}");
    }
    // Out of order, speculative, few deltas (walked) and many (summed): deltas recorded above
    // the reader first, then below it; one replaced, one turned into an estimate and back, one
    // taken out. Each read is checked against a walk over a model of the deltas.
    for extra in [0u32, 12] {
        let mem = Mem::new(40);
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        let check = |model: &BTreeMap<u32, u64>, reader: u32| {
            let below: Vec<u64> = model.range(..reader).map(|(_, d)| *d).collect();
            let expected = (!below.is_empty()).then(|| DeltaSum {
                sum: below.iter().fold(0u64, |a, d| a.wrapping_add(*d)),
                count: below.len() as u32,
            });
            assert_eq!(mem.read(&9, reader, WITH), ReadResult::Base { deltas: expected });
        };
        let txns: Vec<u32> = [10u32, 3, 7, 1, 15].into_iter().chain(20..20 + extra).collect();
        for &txn in &txns {
            record(&mem, txn, 0, &[(9, delta(u64::from(txn) + 100))]);
            model.insert(txn, u64::from(txn) + 100);
        }
        for reader in [0, 2, 8, 12, 16, 25, 39] {
            check(&model, reader);
        }
        record(&mem, 3, 1, &[(9, delta(u64::MAX))]);
        model.insert(3, u64::MAX);
        check(&model, 12);
        check(&model, 39);
        mem.convert_writes_to_estimates(7);
        assert_eq!(mem.read(&9, 12, WITH), ReadResult::Blocked(7));
        check(&model, 5);
        record(&mem, 7, 1, &[(9, delta(5))]);
        model.insert(7, 5);
        check(&model, 16);
        check(&model, 39);
        // A transaction that now writes elsewhere takes its delta out of the sums.
        record(&mem, 10, 1, &[(8, val(0))]);
        model.remove(&10);
        check(&model, 16);
        check(&model, 39);
        record(&mem, 2, 0, &[(9, delta(77))]);
        model.insert(2, 77);
        check(&model, 39);
    }
}
