//! `velarium node`: import into a datadir while serving Prometheus metrics, then keep serving.

use crate::{
    import::{import_persistent, GenesisArgs, PersistentJob, Progress},
    EngineArgs,
};
use eyre::WrapErr;
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};
use velarium_metrics::{BlockReport, Metrics};

/// Arguments of `velarium node`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// The chain's directory (see `velarium import --datadir`).
    #[arg(long)]
    datadir: PathBuf,
    #[command(flatten)]
    source: GenesisArgs,
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    #[arg(long, default_value = "127.0.0.1:9002")]
    metrics: SocketAddr,
    /// Chain files to import (concatenated RLP blocks, optionally gzipped).
    #[arg(long = "import")]
    chains: Vec<PathBuf>,
    /// Make commits durable at most this many milliseconds apart (0: every block).
    #[arg(long, default_value_t = 0)]
    sync_interval_ms: u64,
    /// Exit after the import instead of serving until stopped.
    #[arg(long)]
    exit_after_import: bool,
    /// Every this many blocks (by number), also execute the block on the oracle and trace its
    /// accesses, for the speedup, critical-path bound and efficiency metrics (0: never; each
    /// analysed block costs about three times its execution).
    #[arg(long, default_value_t = 32)]
    analyze_every: u64,
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    stop_on_sigterm();
    let metrics = Metrics::new();
    metrics.set_build_info(env!("CARGO_PKG_VERSION"));
    let server = metrics
        .serve(args.metrics)
        .wrap_err_with(|| format!("cannot serve metrics on {}", args.metrics))?;
    tracing::info!(url = %format_args!("http://{}/metrics", server.local_addr()), "serving metrics");
    let job = PersistentJob {
        datadir: &args.datadir,
        genesis: args.source.genesis.as_deref(),
        chain: args.source.chain.as_deref(),
        engine: args.engine.engine(),
        sync_interval: Duration::from_millis(args.sync_interval_ms),
        chains: &args.chains,
        quiet: false,
        progress_every: 100,
        analysis_every: args.analyze_every,
    };
    let mut progress = Progress::default();
    let result = import_persistent(&job, &mut progress, &mut |number, block| {
        let stats = &block.stats;
        let parallel = stats.threads > 0;
        metrics.record_block(&BlockReport {
            number,
            transactions: block.tx_count as u64,
            gas_used: block.gas_used,
            engine: if parallel { "parallel" } else { "sequential" },
            execution_seconds: block.execution.as_secs_f64(),
            state_root_seconds: block.state_root.as_secs_f64(),
            commit_seconds: block.commit.as_secs_f64(),
            executions: if parallel { stats.executions } else { block.tx_count as u64 },
            re_executions: stats.executions.saturating_sub(block.tx_count as u64),
            validations: stats.validations,
            aborts: stats.aborts,
            suspensions: stats.suspensions,
            storage_credits: stats.storage_credits,
            learned_chain: stats.learned_chain,
            hot_slots: stats
                .hot_spots()
                .iter()
                .filter_map(|h| {
                    let slot = h.slot?;
                    Some((h.address.to_string(), format!("{slot:#x}"), h.conflicts()))
                })
                .collect(),
            hot_contracts: {
                let mut by_address: Vec<(String, u64)> = Vec::new();
                for spot in stats.hot_spots() {
                    let address = spot.address.to_string();
                    match by_address.iter_mut().find(|(a, _)| *a == address) {
                        Some((_, n)) => *n += spot.conflicts(),
                        None => by_address.push((address, spot.conflicts())),
                    }
                }
                by_address
            },
            critical_path_bound: block.analysis.map(|a| a.bound),
            speedup: block.analysis.map(|a| a.speedup()),
            worker_utilisation: stats.worker_utilisation(),
            workers: stats.threads,
        });
    });
    match result {
        Ok(head) => {
            // Also when every block was stored already (a restart): the head is still known.
            metrics.set_head(head.number);
            tracing::info!(
                head = head.number,
                hash = %head.hash,
                state_root = %head.state_root,
                imported = progress.blocks,
                already_stored = progress.skipped,
                "import done"
            );
        }
        Err(err) => {
            metrics.record_import_error("import");
            if args.exit_after_import {
                return Err(err);
            }
            tracing::error!(error = %crate::render_error(&err), "import failed; still serving metrics");
        }
    }
    if args.exit_after_import {
        server.shutdown();
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!("serving metrics until stopped");
    loop {
        std::thread::park();
    }
}

/// Stops the process at SIGTERM (`docker stop`, `compose down`): as the first process of a
/// container the node would otherwise ignore it and be killed 10 s later. Every block is
/// committed atomically, so stopping at any moment leaves a verified head (see
/// `velarium import --datadir`); commits not yet durable under `--sync-interval-ms` are lost,
/// as in a crash.
fn stop_on_sigterm() {
    extern "C" fn on_sigterm(_: libc::c_int) {
        // SAFETY: `_exit` is async-signal-safe; nothing else runs in the handler.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: installs a handler that only calls `_exit`.
    unsafe {
        libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t);
    }
}
