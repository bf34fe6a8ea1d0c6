//! OTTL statements compiled in every context of a signal and run over arbitrary
//! batches, as the transform processor runs them: a compile error, a runtime error
//! or a changed batch, never a panic. Input: one byte choosing the signal, the
//! statement text, a NUL, then the OTLP request of that signal in protobuf.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::ottl::{Kind, Statement, walk};
use ocelot::pdata::{Signal, json};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let signal = Signal::ALL[usize::from(choice) % 3];
    let Some(split) = rest.iter().position(|b| *b == 0) else { return };
    let Ok(text) = std::str::from_utf8(&rest[..split]) else { return };
    let Ok(mut payload) = json::from_proto(signal, &rest[split + 1..]) else { return };
    for &kind in Kind::of_signal(signal) {
        let Ok(statement) = Statement::parse(kind, text) else { continue };
        let _ = walk::for_each_mut(&mut payload, kind, &mut |record| {
            let _ = statement.exec(record);
            Ok(())
        });
        // What a statement wrote must still encode.
        let _ = json::to_proto(&payload);
    }
});
