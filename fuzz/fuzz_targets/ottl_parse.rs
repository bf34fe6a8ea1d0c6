//! The OTTL parser over any text, as a statement and as a condition: an error or a
//! tree, never a panic; every span lies inside the text and on character boundaries,
//! and an error's line and column can be computed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::ottl::{parse_condition, parse_statement};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for result in [parse_statement(text).err(), parse_condition(text).err()] {
        if let Some(e) = result {
            assert!(e.span.start <= e.span.end && e.span.end <= text.len(), "{e:?}");
            assert!(text.is_char_boundary(e.span.start) && text.is_char_boundary(e.span.end), "{e:?}");
            let (line, column) = e.line_column(text);
            assert!(line >= 1 && column >= 1);
        }
    }
});
