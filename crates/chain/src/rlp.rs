//! Reading chain exports: concatenated RLP blocks, as `geth export` and `reth import` use them.

use crate::EthBlock;
use alloy_rlp::Decodable;
use std::{io::Read, path::Path};

/// Errors reading a chain file.
#[derive(Debug, thiserror::Error)]
pub enum ChainFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A block failed to decode.
    #[error("{path}: cannot decode {}, at byte offset {offset}: {source}", position(*index, *previous))]
    Decode {
        /// The file.
        path: String,
        /// Position of the block in the file (0-based).
        index: usize,
        /// The number of the block before it in the file, if any.
        previous: Option<u64>,
        /// Byte offset of the block (in the decompressed stream).
        offset: usize,
        /// The RLP error.
        source: alloy_rlp::Error,
    },
}

/// Where an undecodable block sits, in words a user can check against the chain: block numbers
/// where they are known, 1-based positions otherwise.
fn position(index: usize, previous: Option<u64>) -> String {
    match previous {
        Some(number) => format!(
            "the block after block {number} (presumably block {}, entry {} of the file)",
            number.saturating_add(1),
            index + 1
        ),
        None => String::from("the first block of the file"),
    }
}

/// Reads a whole chain file into memory, transparently gunzipping `.gz` files.
pub fn read_chain_file(path: &Path) -> Result<Vec<u8>, ChainFileError> {
    let io = |source| ChainFileError::Io { path: path.display().to_string(), source };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Decodes concatenated RLP blocks; fails on the first undecodable block or trailing bytes.
pub fn decode_blocks(bytes: &[u8], path: &str) -> Result<Vec<EthBlock>, ChainFileError> {
    blocks(bytes, path).collect()
}

/// The blocks of a chain file one by one, so a caller can import the good prefix of a damaged
/// file before it meets the first undecodable block (the last item, an error).
pub fn blocks<'a>(
    bytes: &'a [u8],
    path: &'a str,
) -> impl Iterator<Item = Result<EthBlock, ChainFileError>> + 'a {
    let mut buf = bytes;
    let (mut index, mut previous, mut failed) = (0usize, None, false);
    std::iter::from_fn(move || {
        if buf.is_empty() || failed {
            return None;
        }
        let offset = bytes.len() - buf.len();
        let decoded = EthBlock::decode(&mut buf)
            .and_then(|b| check_canonical_body(&b).map(|()| b))
            .map_err(|source| ChainFileError::Decode {
                path: path.to_string(),
                index,
                previous,
                offset,
                source,
            });
        match &decoded {
            Ok(block) => previous = Some(block.header.number),
            Err(_) => failed = true,
        }
        index += 1;
        Some(decoded)
    })
}

/// Rejects encodings that decode but are not a block body's canonical form: a blob transaction
/// in its network wrapper (with blobs, commitments and proofs) belongs to the mempool only.
fn check_canonical_body(block: &EthBlock) -> Result<(), alloy_rlp::Error> {
    use alloy_consensus::TxEip4844Variant;
    let with_sidecar = block.body.transactions.iter().any(|tx| {
        tx.as_eip4844().is_some_and(|t| matches!(t.tx(), TxEip4844Variant::TxEip4844WithSidecar(_)))
    });
    if with_sidecar {
        return Err(alloy_rlp::Error::Custom("blob transaction with sidecar in block body"));
    }
    Ok(())
}

/// Decodes exactly one block from `bytes`, rejecting trailing data.
pub fn decode_block(bytes: &[u8]) -> Result<EthBlock, alloy_rlp::Error> {
    let mut buf = bytes;
    let block = EthBlock::decode(&mut buf)?;
    if !buf.is_empty() {
        return Err(alloy_rlp::Error::Custom("trailing bytes after block"));
    }
    check_canonical_body(&block)?;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{BlockBody, Header};
    use alloy_rlp::Encodable;

    fn sample_block(number: u64) -> EthBlock {
        EthBlock {
            header: Header { number, gas_limit: 30_000_000, ..Default::default() },
            body: BlockBody { transactions: vec![], ommers: vec![], withdrawals: None },
        }
    }

    #[test]
    fn round_trip_and_concatenation() {
        let mut bytes = Vec::new();
        sample_block(1).encode(&mut bytes);
        sample_block(2).encode(&mut bytes);
        let blocks = decode_blocks(&bytes, "x").unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].header.number, 2);
        assert_eq!(decode_blocks(&[], "x").unwrap().len(), 0);
    }

    #[test]
    fn truncated_and_garbage_input_are_errors_not_panics() {
        let mut bytes = Vec::new();
        sample_block(1).encode(&mut bytes);
        sample_block(2).encode(&mut bytes);
        let cut = &bytes[..bytes.len() - 3];
        match decode_blocks(cut, "f") {
            Err(err @ ChainFileError::Decode { index, offset, previous, .. }) => {
                assert_eq!((index, previous), (1, Some(1)));
                assert!(offset > 0);
                // Users read block numbers, not 0-based positions.
                let message = err.to_string();
                assert!(
                    message.contains("after block 1 (presumably block 2, entry 2"),
                    "{message}"
                );
            }
            other => panic!("expected decode error, got {other:?}"),
        }
        let first = decode_blocks(&[0xff], "g").unwrap_err().to_string();
        assert!(first.contains("the first block of the file"), "{first}");
        for garbage in [&[0xffu8][..], &[0xc0], &[0xf9, 0xff], &[0x80, 0x80]] {
            assert!(decode_blocks(garbage, "g").is_err(), "{garbage:?}");
        }
        let mut one = Vec::new();
        sample_block(1).encode(&mut one);
        one.push(0x00);
        assert!(decode_block(&one).is_err());
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut bytes = Vec::new();
        sample_block(7).encode(&mut bytes);
        let dir = std::env::temp_dir().join(format!("velarium-rlp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.rlp.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let read = read_chain_file(&path).unwrap();
        assert_eq!(read, bytes);
        assert!(matches!(read_chain_file(&dir.join("missing")), Err(ChainFileError::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
