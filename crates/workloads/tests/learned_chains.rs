//! The engine learns which contracts make Block-STM run as a chain, and sends their blocks to
//! the oracle (`velarium_executor::chained`), in a process of its own: the engine's learned
//! state is process-wide, and this test switches the placement rule off
//! (`VELARIUM_PLACEMENT=off`, read once per process) so that every block it runs through
//! Block-STM gets the two workers it asks for, wherever the machine put its cores.

use velarium_executor::{execute_sequential, BlockOutput};
use velarium_workloads::Workload;

fn oracle_of(workload: &Workload) -> BlockOutput {
    execute_sequential(&workload.spec, &workload.state, workload.block_input())
        .unwrap_or_else(|e| panic!("{}: oracle failed: {e}", workload.name))
}

#[test]
fn a_contract_learned_to_chain_sends_its_blocks_to_the_oracle() {
    use velarium_executor::{chained, Engine, REPROBE_EVERY};
    // The worker count is the placement rule's to decide (a block it finds cheap gets one worker
    // while the cores are far apart, and a chain is learned from two): off in this process, so
    // that the test reads the same on any placement. Set before the engine's first block.
    std::env::set_var("VELARIUM_PLACEMENT", "off");
    // Headers as real blocks carry them, with the gas used.
    let with_gas_used = |mut workload: Workload| {
        workload.header.gas_used = oracle_of(&workload).gas_used;
        workload
    };
    let probe = with_gas_used(velarium_workloads::reads_beneficiary(0x5eed_c4a1, 1000));
    let oracle = oracle_of(&probe);
    let engine = Engine::Parallel { threads: 2, min_txs: 24 };
    let run = |engine: Engine, workload: &Workload| {
        let (output, stats) = engine
            .execute_with_stats(&workload.spec, &workload.state, workload.block_input())
            .expect("the engine executes the block");
        (output, stats)
    };
    // Forced: Block-STM every time, whatever it learned.
    let forced = Engine::Parallel { threads: 2, min_txs: 0 };
    // Every call reads the beneficiary's balance, which every lower fee changes: a chain. Its
    // conflicts need both workers running at once, which a machine busy with other tests may
    // not give a run, so it gets ten tries.
    let mut learned = false;
    for _ in 0..10 {
        let (output, stats) = run(engine, &probe);
        assert!(output == oracle, "the output differs from the oracle's");
        assert_eq!((stats.threads, stats.learned_chain), (2, false));
        if chained(&stats, probe.transactions.len()) {
            learned = true;
            break;
        }
    }
    assert!(learned, "reads_beneficiary never ran as a chain");
    for _ in 1..REPROBE_EVERY {
        let (output, stats) = run(engine, &probe);
        assert!(output == oracle, "the output differs from the oracle's");
        assert!(stats.learned_chain && stats.threads == 0, "{stats:?}");
        let (_, stats) = run(forced, &probe);
        assert!(!stats.learned_chain && stats.threads == 2, "{stats:?}");
    }
    // The probe: through Block-STM again.
    let (output, stats) = run(engine, &probe);
    assert!(output == oracle, "the output differs from the oracle's");
    assert!(!stats.learned_chain && stats.threads == 2, "{stats:?}");
    // A token's transfers to distinct holders do not chain: never sent to the oracle.
    let token = with_gas_used(velarium_workloads::erc20_transfers(0x5eed_c4a1, 200));
    for _ in 0..4 {
        let (_, stats) = run(engine, &token);
        assert!(!stats.learned_chain && stats.threads == 2, "{stats:?}");
    }
}
