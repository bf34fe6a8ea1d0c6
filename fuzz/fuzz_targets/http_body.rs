//! Request bodies with a Content-Encoding: gzip and zstd inflate within the limit,
//! never past it, and corrupt input is an error, not a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::net::{DecompressError, decompress_body};

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let encoding = ["", "gzip", "zstd", "br"][selector as usize % 4];
    match decompress_body(encoding, bytes::Bytes::copy_from_slice(body), LIMIT) {
        Ok(out) => assert!(out.len() <= LIMIT || encoding.is_empty()),
        Err(DecompressError::Unsupported) => assert_eq!(encoding, "br"),
        Err(DecompressError::TooLarge | DecompressError::Corrupt(_)) => {}
    }
});
