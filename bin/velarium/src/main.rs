//! `velarium`: import chains, run Ethereum's conformance fixtures, replay and benchmark blocks.

/// `println!` that fails with an error instead of panicking when standard output is closed
/// (`velarium ... | head -1`) or full (`> /dev/full`); use it inside a function returning
/// `eyre::Result`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| eyre::eyre!("cannot write to standard output: {e}"))?
    }};
}

/// `eprintln!` for progress and diagnostics: a closed standard error is not worth a panic.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod analyze;
mod bench;
mod blocktest;
mod era;
mod growth;
mod import;
mod node;
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
    /// Pin the parallel engine's workers to cores: each helper to its own, the calling thread
    /// to the first for each block (also `VELARIUM_PIN_WORKERS=1`).
    #[arg(long, global = true)]
    pin_workers: bool,
    #[command(subcommand)]
    command: Command,
}

/// The engines `--engine` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EngineKind {
    /// Block-STM.
    Parallel,
    /// The sequential oracle.
    Sequential,
}

/// Engine selection shared by the commands that execute blocks.
#[derive(Debug, Clone, clap::Args)]
struct EngineArgs {
    /// Execution engine: `parallel` (Block-STM) or `sequential` (the oracle).
    #[arg(long, value_enum, default_value_t = EngineKind::Parallel)]
    engine: EngineKind,
    /// Worker threads of the parallel engine (default: the machine's cores, at most 4).
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
        let threads = self.threads.map_or_else(velarium_executor::default_workers, |t| t as usize);
        match self.engine {
            EngineKind::Parallel => Engine::Parallel { threads, min_txs: self.min_parallel_txs },
            EngineKind::Sequential => Engine::Sequential,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run blockchain conformance fixtures (JSON files, directories or .tar.xz archives).
    Blocktest(blocktest::Args),
    /// Import a chain (genesis.json + concatenated RLP blocks) and verify every block.
    Import(import::Args),
    /// Import into a datadir while serving Prometheus metrics, then keep serving.
    Node(node::Args),
    /// Benchmark the oracle and the parallel engine side by side on generated and mainnet blocks.
    Bench(bench::Args),
    /// Replay real mainnet blocks (pre-state + block) and check them against their headers.
    Replay(replay::Args),
    /// Contention dossier of mainnet blocks: conflict graphs, critical paths, simulated and
    /// measured speedups, hot locations, access lists, scale-out (JSON, Markdown, HTML).
    Analyze(analyze::Args),
    /// Generate a chain whose state grows by a fixed amount per block, and import it into a
    /// fresh datadir reporting per-block execution, state-root and store times as it grows.
    Growth(growth::Args),
}

/// mimalloc's `mi_option_purge_delay` (index 15 in both its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Log lines of the long-running commands (`import`, `node`) through `tracing`, on standard
/// error: level `info` unless `RUST_LOG` says otherwise (e.g. `RUST_LOG=warn`), colours only
/// on a terminal. The progress line on a terminal is drawn beside them.
fn init_logs() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only if a subscriber is already installed, which then keeps logging.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    // Keep freed memory instead of returning it to the OS 10 ms later: every block frees and
    // re-allocates similar amounts, and re-faulting zeroed pages showed as ~13% of the bench's
    // time (kernel `clear_page`). Applies to both engines.
    // SAFETY: sets a process-wide allocator option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // No transparent huge pages (as with jemalloc, reth's allocator, by default), unless
    // `MIMALLOC_ALLOW_THP` says otherwise: a huge page is zeroed, and on a virtual machine
    // backed, 2 MiB at a time on first touch. A block's first touch of a fresh 3 MiB map (a hot
    // token's storage) took 4-18 ms in one run of five on this machine's VM, instead of
    // 0.05-1 ms. The kernel is told (mimalloc's own option is read when the process loads and
    // its first arena is advised by now), which also overrides later advice. Applies to both
    // engines.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        velarium_numa_runtime::disable_transparent_huge_pages();
    }
    let cli = Cli::parse();
    if cli.pin_workers {
        velarium_executor::pin_workers();
    }
    let result = match cli.command {
        Command::Blocktest(args) => blocktest::run(args),
        Command::Import(args) => {
            init_logs();
            import::run(args)
        }
        Command::Node(args) => {
            init_logs();
            node::run(args)
        }
        Command::Bench(args) => bench::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Growth(args) => growth::run(args),
    };
    // Whatever is still buffered must reach its destination too.
    let result = result.and_then(|code| {
        use std::io::Write as _;
        std::io::stdout()
            .flush()
            .map_err(|e| eyre::eyre!("cannot write to standard output: {e}"))
            .map(|()| code)
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            note!("error: {}", render_error(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: many error types already print their
/// source in their own message (`cannot read x: No such file`), and eyre's `{:#}` would repeat it.
pub(crate) fn render_error(err: &eyre::Report) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The machine's logical cores.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let chain_error =
            velarium_chain::rlp::ChainFileError::Io { path: "x.rlp".into(), source: io };
        let report = eyre::Report::new(chain_error).wrap_err("importing");
        assert_eq!(
            render_error(&report),
            "importing: cannot read x.rlp: No such file or directory"
        );
    }
}
