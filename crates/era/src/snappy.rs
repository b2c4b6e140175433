//! Snappy framing of entry data.

use snap::{read::FrameDecoder, write::FrameEncoder};
use std::io::{Read, Write};

/// Compresses `data` into the snappy framing format.
pub(crate) fn compress(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = FrameEncoder::new(Vec::with_capacity(data.len() / 2 + 64));
    encoder.write_all(data).map_err(|e| e.to_string())?;
    encoder.into_inner().map_err(|e| e.error().to_string())
}

/// Decompresses snappy-framed `data`, checking the CRC of every chunk.
pub(crate) fn decompress(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(2));
    FrameDecoder::new(data).read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}
