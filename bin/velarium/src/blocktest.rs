//! `velarium blocktest`: the conformance runner's command line.

use crate::{default_threads, EngineArgs};
use eyre::{bail, eyre, WrapErr};
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};
use velarium_conformance::{collect_files, run_files, Outcome, SkipList, Summary};

/// Arguments of `velarium blocktest`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Fixture files run at once (each case runs on one of them).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print one JSON summary object on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// Skip list (`network NAME: reason` / `case NAME: reason` lines).
    #[arg(long, default_value = "tests/conformance-skips.txt")]
    skips: PathBuf,
    /// How many failures to print with their reasons.
    #[arg(long, default_value_t = 20)]
    show_failures: usize,
    /// Where `.tar.xz` archives are extracted.
    #[arg(long, env = "VELARIUM_FIXTURE_CACHE", default_value = "target/fixtures-cache")]
    cache_dir: PathBuf,
    /// JSON fixture files, directories of them, or `.tar.xz` archives of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Extracts `archive` under `cache_dir` once (a marker file records a complete extraction).
fn extract_archive(archive: &Path, cache_dir: &Path) -> eyre::Result<PathBuf> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.xz"))
        .ok_or_else(|| eyre!("{}: not a .tar.xz archive", archive.display()))?;
    let dest = cache_dir.join(name);
    let marker = dest.join(".extracted");
    if marker.exists() {
        return Ok(dest);
    }
    if !archive.is_file() {
        bail!("{}: no such archive", archive.display());
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest).wrap_err_with(|| format!("clearing {}", dest.display()))?;
    }
    std::fs::create_dir_all(&dest).wrap_err_with(|| format!("creating {}", dest.display()))?;
    eprintln!("extracting {} into {}", archive.display(), dest.display());
    let status = std::process::Command::new("tar")
        .arg("xJf")
        .arg(archive)
        .arg("-C")
        .arg(&dest)
        .status()
        .wrap_err("running tar (needed to extract .tar.xz archives)")?;
    if !status.success() {
        bail!("tar failed to extract {} ({status})", archive.display());
    }
    std::fs::write(&marker, b"").wrap_err("writing extraction marker")?;
    Ok(dest)
}

/// A command-line input path: an archive (extracted once into `cache_dir`) or an existing path.
pub(crate) fn resolve_input(path: &Path, cache_dir: &Path) -> eyre::Result<PathBuf> {
    if path.to_string_lossy().ends_with(".tar.xz") {
        extract_archive(path, cache_dir)
    } else if path.exists() {
        Ok(path.to_path_buf())
    } else {
        bail!("{}: no such file or directory", path.display())
    }
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    let skips = SkipList::load(&args.skips).map_err(|e| eyre!(e))?;
    let mut files = Vec::new();
    for path in &args.paths {
        let root = resolve_input(path, &args.cache_dir)?;
        let found = collect_files(&root).wrap_err_with(|| format!("reading {}", root.display()))?;
        if found.is_empty() {
            bail!("{}: no .json fixture files found", path.display());
        }
        files.extend(found);
    }
    let jobs = args.jobs.unwrap_or_else(default_threads);
    let started = Instant::now();
    let results = run_files(&files, args.engine.engine(), &skips, jobs);
    let elapsed = started.elapsed();
    let summary = Summary::of(&results);

    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{:<36} {:>8} {:>8} {:>8} {:>8}",
            "network", "cases", "passed", "failed", "skipped"
        );
        for (network, t) in &summary.by_network {
            println!(
                "{network:<36} {:>8} {:>8} {:>8} {:>8}",
                t.cases, t.passed, t.failed, t.skipped
            );
        }
        println!(
            "{:<36} {:>8} {:>8} {:>8} {:>8}",
            "total", summary.cases, summary.passed, summary.failed, summary.skipped
        );
        let failures: Vec<_> =
            results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).collect();
        for r in failures.iter().take(args.show_failures) {
            if let Outcome::Failed(reason) = &r.outcome {
                println!("FAIL {} [{}] {}: {reason}", r.file, r.network, r.name);
            }
        }
        if failures.len() > args.show_failures {
            println!("... and {} more failures", failures.len() - args.show_failures);
        }
        println!(
            "{} files, {} cases in {:.1}s ({} jobs, engine {:?})",
            files.len(),
            summary.cases,
            elapsed.as_secs_f64(),
            jobs,
            args.engine.engine()
        );
        // The plain closing line CI tooling reads.
        println!(
            "blocktest: {} passed, {} failed, {} skipped",
            summary.passed, summary.failed, summary.skipped
        );
    }
    Ok(if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
