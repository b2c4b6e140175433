//! `velarium blocktest`: the conformance runner's command line.

use crate::{default_threads, EngineArgs};
use eyre::{bail, eyre, WrapErr};
use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};
use velarium_conformance::{collect_files, run_files, Outcome, SkipList, Summary};

/// The skip list used without `--skips`: `tests/conformance-skips.txt`, built into the binary so
/// that it does not depend on the working directory.
const BUILTIN_SKIPS: &str = include_str!("../../../tests/conformance-skips.txt");

/// Arguments of `velarium blocktest`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Fixture files run at once (each case runs on one of them).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print one JSON summary object on stdout instead of tables (`failures` lists every
    /// failed case with its reason).
    #[arg(long)]
    json: bool,
    /// Skip list (`network NAME: reason`, `case NAME: reason`, `file PATH_SUFFIX: reason`
    /// lines), used instead of the built-in one; the file must exist. Without it: the list
    /// built into this binary (tests/conformance-skips.txt of its source tree).
    #[arg(long, value_name = "FILE")]
    skips: Option<PathBuf>,
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

/// The first 16 hex digits of the keccak-256 hash of a file's content.
fn content_key(path: &Path) -> eyre::Result<String> {
    let mut file =
        std::fs::File::open(path).wrap_err_with(|| format!("opening {}", path.display()))?;
    let mut hasher = alloy_primitives::Keccak256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).wrap_err_with(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(alloy_primitives::hex::encode(&hasher.finalize()[..8]))
}

/// Removes the partial extractions named `<prefix><pid>` of processes that no longer run (an
/// interrupted extraction); without `/proc` nothing is removed.
fn remove_stale_partials(cache_dir: &Path, prefix: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(cache_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let running = pid.parse::<u32>().is_ok_and(|pid| {
            pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
        });
        if !running {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Extracts `archive` under `cache_dir` once per content: into `<stem>-<16 hex digits of the
/// keccak-256 of the archive>`, so a different archive of the same name (or the same path
/// rewritten) gets its own extraction. The archive is extracted into a partial folder first and
/// renamed into place when tar succeeded, so an interrupted extraction is never used.
fn extract_archive(archive: &Path, cache_dir: &Path) -> eyre::Result<PathBuf> {
    let stem = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.xz"))
        .filter(|stem| !stem.is_empty())
        .ok_or_else(|| eyre!("{}: not a .tar.xz archive", archive.display()))?;
    let metadata = match std::fs::metadata(archive) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: no such archive", archive.display())
        }
        Err(e) => return Err(e).wrap_err_with(|| format!("reading {}", archive.display())),
    };
    if !metadata.is_file() {
        bail!("{}: not a file (expected a .tar.xz archive)", archive.display());
    }
    let name = format!("{stem}-{}", content_key(archive)?);
    let dest = cache_dir.join(&name);
    if dest.is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(cache_dir)
        .wrap_err_with(|| format!("creating {}", cache_dir.display()))?;
    let prefix = format!(".{name}.partial-");
    remove_stale_partials(cache_dir, &prefix);
    let partial = cache_dir.join(format!("{prefix}{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .wrap_err_with(|| format!("clearing {}", partial.display()))?;
    }
    std::fs::create_dir(&partial).wrap_err_with(|| format!("creating {}", partial.display()))?;
    note!("extracting {} into {}", archive.display(), dest.display());
    let status =
        std::process::Command::new("tar").arg("xJf").arg(archive).arg("-C").arg(&partial).status();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e).wrap_err("running tar (needed to extract .tar.xz archives)");
        }
    };
    if !status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        bail!("tar failed to extract {} ({status})", archive.display());
    }
    match std::fs::rename(&partial, &dest) {
        Ok(()) => Ok(dest),
        // Another process extracted the same archive first.
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(&partial);
            Ok(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e).wrap_err_with(|| format!("moving the extraction to {}", dest.display()))
        }
    }
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
    let skips = match &args.skips {
        Some(path) => SkipList::load(path).map_err(|e| eyre!(e))?,
        None => SkipList::parse(BUILTIN_SKIPS).map_err(|e| eyre!("built-in skip list: {e}"))?,
    };
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
    let engine = args.engine.engine();
    let started = Instant::now();
    let results = run_files(&files, engine, &skips, jobs);
    let elapsed = started.elapsed();
    let summary = Summary::of(&results);
    if summary.cases == 0 {
        bail!("no test cases in {} fixture files: nothing was tested", files.len());
    }

    if args.json {
        out!("{}", serde_json::to_string(&summary)?);
    } else {
        out!("{:<36} {:>8} {:>8} {:>8} {:>8}", "network", "cases", "passed", "failed", "skipped");
        for (network, t) in &summary.by_network {
            out!("{network:<36} {:>8} {:>8} {:>8} {:>8}", t.cases, t.passed, t.failed, t.skipped);
        }
        out!(
            "{:<36} {:>8} {:>8} {:>8} {:>8}",
            "total",
            summary.cases,
            summary.passed,
            summary.failed,
            summary.skipped
        );
        let failures: Vec<_> =
            results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).collect();
        for r in failures.iter().take(args.show_failures) {
            if let Outcome::Failed(reason) = &r.outcome {
                out!("FAIL {} [{}] {}: {reason}", r.file, r.network, r.name);
            }
        }
        if failures.len() > args.show_failures {
            out!("... and {} more failures", failures.len() - args.show_failures);
        }
        out!(
            "{} files, {} cases in {:.1}s ({} jobs, engine {engine})",
            files.len(),
            summary.cases,
            elapsed.as_secs_f64(),
            jobs,
        );
        // The plain closing line CI tooling reads.
        out!(
            "blocktest: {} passed, {} failed, {} skipped",
            summary.passed,
            summary.failed,
            summary.skipped
        );
    }
    if summary.failed > 0 {
        return Ok(ExitCode::FAILURE);
    }
    if summary.passed == 0 {
        note!("blocktest: all {} cases were skipped: nothing was tested", summary.skipped);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
