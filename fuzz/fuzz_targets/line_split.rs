//! The file tail's line splitter over any bytes in any chunking: tokens put back
//! together give the input, none exceeds max_log_size, offsets match.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::receivers::filelog::split::{LineSplitter, TokenKind};

fuzz_target!(|data: &[u8]| {
    let [max, chunk, rest @ ..] = data else { return };
    let max = usize::from(*max % 64) + 1;
    let chunk = usize::from(*chunk % 32) + 1;
    let mut splitter = LineSplitter::new(max, 0);
    let mut rebuilt = Vec::new();
    let mut check = |t: ocelot::receivers::filelog::split::Token<'_>| {
        assert!(t.bytes.len() <= max);
        rebuilt.extend_from_slice(t.bytes);
        if t.kind == TokenKind::Line {
            rebuilt.push(b'\n');
        }
        assert_eq!(t.end, rebuilt.len() as u64);
    };
    for piece in rest.chunks(chunk) {
        splitter.push(piece, &mut check);
    }
    splitter.flush(&mut check);
    assert_eq!(rebuilt, rest);
    assert_eq!(splitter.consumed(), rest.len() as u64);
});
