//! Canonical era1 file names: `<network>-<epoch>-<short root>.era1`.
//!
//! The epoch is written with at least five digits and the short root is the first four bytes of
//! the accumulator root in lowercase hex, as geth (`onedb.Filename`) and the published archives
//! (`mainnet-00000-5ec1ffb8.era1`) spell it.

use crate::MAX_BLOCKS_PER_ERA1;
use alloy_primitives::B256;
use core::{fmt, str::FromStr};

/// File extension of era1 archives, with the dot.
pub const ERA1_EXTENSION: &str = ".era1";

/// The parts of a canonical era1 file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Era1FileName {
    /// Network name, e.g. `mainnet` or `sepolia`.
    pub network: String,
    /// Epoch: the starting block number divided by 8192.
    pub epoch: u64,
    /// First four bytes of the accumulator root.
    pub short_root: [u8; 4],
}

/// Why a string is not a canonical era1 file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Era1FileNameError {
    /// The name does not end in `.era1`.
    #[error("{0:?} does not end in .era1")]
    Extension(String),
    /// The name does not have the three dash-separated parts.
    #[error("{0:?} is not <network>-<epoch>-<root>.era1")]
    Shape(String),
    /// The epoch part is not a decimal number of at least five digits.
    #[error("{0:?}: the epoch is not a number of at least five digits")]
    Epoch(String),
    /// The root part is not eight hex digits.
    #[error("{0:?}: the short root is not eight hex digits")]
    ShortRoot(String),
}

impl Era1FileName {
    /// A file name for `network` and `epoch`, with the short root taken from `accumulator_root`.
    pub fn new(network: impl Into<String>, epoch: u64, accumulator_root: B256) -> Self {
        let mut short_root = [0u8; 4];
        short_root.copy_from_slice(&accumulator_root[..4]);
        Self { network: network.into(), epoch, short_root }
    }

    /// The file name of an archive whose first block is `starting_number`.
    pub fn for_archive(
        network: impl Into<String>,
        starting_number: u64,
        accumulator_root: B256,
    ) -> Self {
        Self::new(network, starting_number / MAX_BLOCKS_PER_ERA1 as u64, accumulator_root)
    }

    /// Parses a file name (the last path component, not a whole path).
    ///
    /// The network may itself contain dashes; the epoch and root are the last two parts.
    pub fn parse(name: &str) -> Result<Self, Era1FileNameError> {
        let stem = name
            .strip_suffix(ERA1_EXTENSION)
            .ok_or_else(|| Era1FileNameError::Extension(name.to_string()))?;
        let mut parts = stem.rsplitn(3, '-');
        let (Some(root), Some(epoch), Some(network)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Era1FileNameError::Shape(name.to_string()));
        };
        if network.is_empty() {
            return Err(Era1FileNameError::Shape(name.to_string()));
        }
        if epoch.len() < 5 || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Era1FileNameError::Epoch(name.to_string()));
        }
        let epoch = epoch.parse().map_err(|_| Era1FileNameError::Epoch(name.to_string()))?;
        if root.len() != 8 || !root.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Era1FileNameError::ShortRoot(name.to_string()));
        }
        let mut short_root = [0u8; 4];
        for (i, byte) in short_root.iter_mut().enumerate() {
            // All eight characters are ASCII hex digits, so these slices and parses succeed.
            *byte = root
                .get(2 * i..2 * i + 2)
                .and_then(|digits| u8::from_str_radix(digits, 16).ok())
                .ok_or_else(|| Era1FileNameError::ShortRoot(name.to_string()))?;
        }
        Ok(Self { network: network.to_string(), epoch, short_root })
    }

    /// Whether the short root is the start of `accumulator_root`.
    pub fn matches_root(&self, accumulator_root: B256) -> bool {
        accumulator_root[..4] == self.short_root
    }

    /// The first block number of this epoch.
    pub const fn first_block(&self) -> Option<u64> {
        self.epoch.checked_mul(MAX_BLOCKS_PER_ERA1 as u64)
    }
}

impl fmt::Display for Era1FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.short_root;
        write!(f, "{}-{:05}-{a:02x}{b:02x}{c:02x}{d:02x}{ERA1_EXTENSION}", self.network, self.epoch)
    }
}

impl FromStr for Era1FileName {
    type Err = Era1FileNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_published_archives() {
        // Only the first four bytes of the root go into the name.
        let mut root = B256::repeat_byte(0x77);
        root[..4].copy_from_slice(&[0x5e, 0xc1, 0xff, 0xb8]);
        let name = Era1FileName::for_archive("mainnet", 0, root);
        assert_eq!(name.to_string(), "mainnet-00000-5ec1ffb8.era1");
        assert!(name.matches_root(root));
        let name = Era1FileName::for_archive("sepolia", 19 * 8192 + 5, root);
        assert_eq!(name.to_string(), "sepolia-00019-5ec1ffb8.era1");
        assert_eq!(name.first_block(), Some(19 * 8192));
        let big = Era1FileName { network: "mainnet".into(), epoch: 123_456, short_root: [0; 4] };
        assert_eq!(big.to_string(), "mainnet-123456-00000000.era1");
    }

    #[test]
    fn parses_and_round_trips() {
        for name in [
            "mainnet-00000-5ec1ffb8.era1",
            "mainnet-01895-3f81607c.era1",
            "sepolia-00019-fa770019.era1",
            "my-test-net-00003-00ff10ab.era1",
            "mainnet-123456-abcdef12.era1",
        ] {
            let parsed = Era1FileName::parse(name).unwrap();
            assert_eq!(parsed.to_string(), name);
            assert_eq!(name.parse::<Era1FileName>().unwrap(), parsed);
        }
        let parsed = Era1FileName::parse("my-test-net-00003-00FF10AB.era1").unwrap();
        assert_eq!(parsed.network, "my-test-net");
        assert_eq!(parsed.epoch, 3);
        assert_eq!(parsed.short_root, [0x00, 0xff, 0x10, 0xab]);
    }

    #[test]
    fn rejects_malformed_names() {
        use Era1FileNameError as E;
        let kind = |e: &E| match e {
            E::Extension(_) => "extension",
            E::Shape(_) => "shape",
            E::Epoch(_) => "epoch",
            E::ShortRoot(_) => "root",
        };
        for (name, expected) in [
            ("mainnet-00000-5ec1ffb8.era", "extension"),
            ("mainnet-00000-5ec1ffb8", "extension"),
            ("00000-5ec1ffb8.era1", "shape"),
            ("-00000-5ec1ffb8.era1", "shape"),
            (".era1", "shape"),
            ("mainnet-0000-5ec1ffb8.era1", "epoch"),
            ("mainnet-0000x-5ec1ffb8.era1", "epoch"),
            ("mainnet-99999999999999999999999-5ec1ffb8.era1", "epoch"),
            ("mainnet-00000-5ec1ffb.era1", "root"),
            ("mainnet-00000-5ec1ffbz.era1", "root"),
            ("mainnet-00000-+ec1ffb8.era1", "root"),
        ] {
            let err = Era1FileName::parse(name).unwrap_err();
            assert_eq!(kind(&err), expected, "{name}: {err}");
        }
        // Multi-byte characters must not split a char boundary.
        assert!(Era1FileName::parse("mainnet-00000-5ec1ffé.era1").is_err());
    }
}
