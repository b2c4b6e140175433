//! era1 archives as an import source: each file is checked whole (layout, index, header chain,
//! transactions and receipts roots, and the accumulator root against the one it stores) before
//! its blocks are imported, which then verifies every block by executing it.

use eyre::WrapErr;
use std::path::Path;
use velarium_chain::EthBlock;
use velarium_era::Era1Reader;

/// Whether `path` names an era1 archive (by its extension).
pub(crate) fn is_era1(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("era1"))
}

/// The blocks of an era1 archive with their total difficulties, after checking the archive.
pub(crate) fn read_era1(path: &Path) -> eyre::Result<Vec<(EthBlock, alloy_primitives::U256)>> {
    let name = path.display();
    let reader = Era1Reader::open(path).wrap_err_with(|| format!("{name}"))?;
    let root = reader.verify().wrap_err_with(|| format!("{name}: not a valid era1 archive"))?;
    if let Ok(file_name) = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .parse::<velarium_era::Era1FileName>()
    {
        eyre::ensure!(
            file_name.matches_root(root),
            "{name}: the file name says accumulator 0x{}..., the archive's is {root}",
            alloy_primitives::hex::encode(file_name.short_root)
        );
    }
    reader
        .iter()
        .map(|block| {
            let block = block.wrap_err_with(|| format!("{name}"))?;
            let td = block.total_difficulty;
            Ok((block.into_block(), td))
        })
        .collect()
}
