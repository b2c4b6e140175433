//! `velarium`: import chains, run Ethereum's conformance fixtures, replay and benchmark blocks.

mod bench;
mod blocktest;
mod import;
mod replay;

use clap::{Parser, Subcommand};

/// mimalloc: block execution allocates and frees many short-lived maps; glibc's allocator
/// returns memory to the OS between blocks and then faults it back in (measured ~25% of the
/// parallel engine's time on small blocks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;
use velarium_executor::Engine;

/// Velarium: a parallel, contention-aware Ethereum block executor.
#[derive(Debug, Parser)]
#[command(name = "velarium", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Engine selection shared by the commands that execute blocks.
#[derive(Debug, Clone, clap::Args)]
struct EngineArgs {
    /// Execution engine: `parallel` (Block-STM) or `sequential` (the oracle).
    #[arg(long = "engine", default_value = "parallel", value_parser = ["parallel", "sequential"])]
    engine_name: String,
    /// Worker threads of the parallel engine (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: Option<u64>,
    /// Blocks with fewer transactions run sequentially under the parallel engine
    /// (0 forces Block-STM on every block, as the conformance tests do).
    #[arg(long, default_value_t = velarium_executor::DEFAULT_PARALLEL_MIN_TXS)]
    min_parallel_txs: usize,
}

impl EngineArgs {
    /// The selected engine.
    fn engine(&self) -> Engine {
        let threads = self.threads.map_or_else(default_threads, |t| t as usize);
        match Engine::from_name(&self.engine_name, threads).unwrap_or_default() {
            Engine::Parallel { threads, .. } => {
                Engine::Parallel { threads, min_txs: self.min_parallel_txs }
            }
            Engine::Sequential => Engine::Sequential,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run blockchain conformance fixtures (JSON files, directories or .tar.xz archives).
    Blocktest(blocktest::Args),
    /// Import a chain (genesis.json + concatenated RLP blocks) and verify every block.
    Import(import::Args),
    /// Benchmark the oracle and the parallel engine side by side on generated and mainnet blocks.
    Bench(bench::Args),
    /// Replay real mainnet blocks (pre-state + block) and check them against their headers.
    Replay(replay::Args),
}

/// mimalloc's `mi_option_purge_delay` (index 15 in both its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Keep freed memory instead of returning it to the OS 10 ms later: every block frees and
    // re-allocates similar amounts, and re-faulting zeroed pages showed as ~13% of the bench's
    // time (kernel `clear_page`). Applies to both engines.
    // SAFETY: sets a process-wide allocator option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Blocktest(args) => blocktest::run(args),
        Command::Import(args) => import::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Replay(args) => replay::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The machine's logical cores.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
