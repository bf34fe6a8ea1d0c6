//! Multiline joining over arbitrary lines and patterns: no panic, no record over
//! max_log_size, nothing held after a flush, no byte of a line lost.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::receivers::filelog::multiline::{Aggregator, Mode};

fuzz_target!(|data: &[u8]| {
    let [selector, max, rest @ ..] = data else { return };
    let max = usize::from(*max % 64) + 1;
    let patterns = [r"^\d", r"^\S", r";$", r"^(ERROR|WARN)", r"\\$"];
    let pattern = regex::bytes::Regex::new(patterns[usize::from(*selector) % patterns.len()]).unwrap();
    let mode = if selector & 0x80 == 0 { Mode::Start(pattern) } else { Mode::End(pattern) };
    let mut aggregator = Aggregator::new(mode, max);
    let mut emitted = 0usize;
    let mut emit = |bytes: &[u8], _end: u64| {
        assert!(bytes.len() <= max);
        emitted += bytes.iter().filter(|&&b| b != b'\n').count();
    };
    let mut offset = 0u64;
    let mut line_bytes = 0usize;
    for line in rest.split(|&b| b == b'\n') {
        let end = offset + line.len() as u64 + 1;
        aggregator.line(line, offset, end, &mut emit);
        line_bytes += line.len();
        offset = end;
    }
    aggregator.flush(&mut emit);
    assert!(aggregator.open_since().is_none());
    assert_eq!(emitted, line_bytes);
});
