//! The importance processor's EWMA state file on arbitrary bytes: an error or a
//! state that encodes and decodes to itself, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::processors::importance::ewma::State;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = State::decode(data) {
        let again = State::decode(&state.encode()).expect("an encoded state decodes");
        assert_eq!(again.len(), state.len());
    }
});
