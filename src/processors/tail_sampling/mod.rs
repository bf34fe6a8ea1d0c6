//! The `tail_sampling` processor: holds spans by trace id for `decision_wait`, then
//! keeps or drops each whole trace by upstream's policies (errors, slow traces,
//! attributes, OTTL, a probabilistic share, rate limits, and their combinations).
//!
//! Unlike upstream it is bounded in bytes (`max_memory_mib`; spans are held encoded)
//! and never lets a trace go undecided to make room: the oldest are decided early,
//! counted by reason. A span arriving after its trace's decision follows it. It must
//! never hold a client's reply for `decision_wait`, nor drop a span uncounted.

mod config;
mod policy;
mod processor;
#[cfg(test)]
mod tests;

pub use config::TailSamplingConfig;
pub use processor::TailSamplingProcessor;

pub const TYPE: &str = "tail_sampling";

use crate::config::de::DeError;
use crate::config::node::Node;

/// Reads the config and compiles every policy, so a bad OTTL condition or regular
/// expression fails the load.
pub fn parse(node: &Node) -> Result<TailSamplingConfig, DeError> {
    let config: TailSamplingConfig = crate::component::parse_config(node)?;
    let mut leaves = policy::Leaves::default();
    for p in &config.policies {
        policy::Policy::compile(p, &mut leaves)
            .map_err(|message| DeError { message, location: Some(node.location.clone()) })?;
    }
    Ok(config)
}

/// For the fuzz target: any OTLP traces request through an always-sampling
/// processor comes out span for span (those with a valid trace id), whatever its
/// resources, scopes and spans hold.
pub fn fuzz_round_trip(bytes: &[u8]) {
    use prost::Message;
    let Ok(request) = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(bytes) else {
        return;
    };
    let spans = |r: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest| {
        let mut all: Vec<Vec<u8>> = r
            .resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter())
            .filter(|s| s.trace_id.len() == 16 && s.trace_id.iter().any(|b| *b != 0))
            .map(|s| s.encode_to_vec())
            .collect();
        all.sort();
        all
    };
    let wanted = spans(&request);
    let telemetry = crate::telemetry::Telemetry::new();
    let id = crate::config::ComponentId::new(TYPE);
    let node = crate::config::node::parse("fuzz.yaml", "policies: [{name: all, type: always_sample}]");
    let Ok(config) = node.map_err(|e| e.to_string()).and_then(|n| parse(&n).map_err(|e| e.message)) else {
        return;
    };
    let Ok(mut processor) =
        TailSamplingProcessor::new(&id, &config, telemetry.tail_sampling(&id), telemetry.processor(&id))
    else {
        return;
    };
    let mut out = Vec::new();
    crate::processors::Processor::process(
        &mut processor,
        crate::pdata::Batch::new(crate::pdata::Payload::Traces(request)),
        &mut out,
    );
    crate::processors::Processor::flush(&mut processor, &mut out);
    let mut got = Vec::new();
    for batch in &out {
        if let crate::pdata::Payload::Traces(r) = &*batch.payload {
            got.extend(spans(r));
        }
    }
    got.sort();
    assert_eq!(got, wanted, "spans in and out differ");
}
