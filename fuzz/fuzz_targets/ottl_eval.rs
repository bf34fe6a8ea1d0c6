//! OTTL conditions compiled for the log context and evaluated over arbitrary log
//! records: a compile error, a runtime error or a boolean, never a panic.
//! Input: the condition text, a NUL, then an OTLP LogRecord in protobuf.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::ottl::{Condition, Kind, Record};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else { return };
    let Ok(text) = std::str::from_utf8(&data[..split]) else { return };
    let Ok(record) = LogRecord::decode(&data[split + 1..]) else { return };
    let Ok(condition) = Condition::parse(Kind::Log, text) else { return };
    let resource = Resource { attributes: record.attributes.clone(), ..Default::default() };
    let scope = InstrumentationScope::default();
    let ctx = Record { cache: &record.attributes, ..Record::log(&resource, &scope, &record) };
    let _ = condition.eval(&ctx);
});
