//! The `loadbalancing` exporter (`load_balancing`): sends each trace (or service,
//! resource, metric, stream) to one of several backends, chosen on upstream's
//! consistent hash ring, so every span of a trace reaches the same gateway. Each
//! backend is an `otlp` exporter with its own queue and retry; backends come from a
//! static list or DNS. It must never let one backend stall the others, nor drop a
//! removed backend's queue.

mod balancer;
mod config;
mod resolver;
mod ring;
mod split;
#[cfg(test)]
mod tests;

pub use config::LoadBalancingConfig;

use super::helper::{self, ExporterInput, ExporterSettings};
use super::{BuildError, Environment};
use crate::config::ComponentId;

pub const TYPE: &str = "loadbalancing";
pub const ALIASES: &[&str] = &["load_balancing"];

/// Batches the pipeline may hand over before it waits for the balancer.
const INPUT_CAPACITY: usize = 16;

pub fn start(
    id: &ComponentId,
    config: &LoadBalancingConfig,
    env: Environment<'_>,
) -> Result<ExporterInput, BuildError> {
    let otlp = config.protocol.otlp.clone();
    let auth = super::client_auth(&otlp.auth, env.extensions)?;
    // What a backend's exporter would refuse (a TLS file, a header) fails the start.
    let mut probe = otlp.clone();
    probe.endpoint = resolver::endpoint("backend");
    super::otlp::grpc::OtlpGrpcExporter::new(&probe)?;

    let telemetry = env.telemetry.clone();
    let tracker = env.tracker.clone();
    let give_up = env.give_up.clone();
    let parent = id.clone();
    let make: balancer::MakeBackend = Box::new(move |backend: &str| {
        let mut c = otlp.clone();
        c.endpoint = resolver::endpoint(backend);
        let backend_id = ComponentId {
            type_name: parent.type_name.clone(),
            name: Some(match &parent.name {
                Some(name) => format!("{name}/{backend}"),
                None => backend.to_string(),
            }),
        };
        let exporter = super::otlp::grpc::OtlpGrpcExporter::new(&c).map_err(|e| e.to_string())?.with_auth(auth.clone());
        let settings = ExporterSettings {
            id: backend_id.clone(),
            queue: c.sending_queue.clone(),
            retry: c.retry_on_failure.clone(),
            timeout: Some(c.timeout.0).filter(|t| !t.is_zero()),
            metrics: telemetry.exporter(&backend_id),
            give_up: give_up.clone(),
            disk: None,
        };
        Ok(helper::spawn(exporter, settings, &tracker))
    });
    let (waits_result, waits_queue) = ExporterInput::waits_of(&config.protocol.otlp.sending_queue);
    let metrics = env.telemetry.exporter(id);
    let (input, forwarded) = helper::forwarding_input(id, metrics.clone(), INPUT_CAPACITY, waits_result, waits_queue);
    let resolved =
        resolver::start(&config.resolver, &env.telemetry.balancer(id), env.tracker, env.give_up.child_token());
    let balancer = balancer::Balancer {
        id: id.clone(),
        config: config.clone(),
        make,
        metrics,
        ring: ring::Ring::default(),
        backends: Vec::new(),
        warned: None,
    };
    env.tracker.spawn(balancer.run(forwarded, resolved));
    Ok(input)
}

/// For the fuzz target: any OTLP traces request cut by trace id over three backends
/// gives every span once, each on the backend its trace id names.
pub fn fuzz_split(bytes: &[u8]) {
    use prost::Message;
    let Ok(request) = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(bytes) else {
        return;
    };
    let total: usize =
        request.resource_spans.iter().flat_map(|rs| rs.scope_spans.iter()).map(|ss| ss.spans.len()).sum();
    let ring = ring::Ring::new(vec!["a:4317".into(), "b:4317".into(), "c:4317".into()]);
    let keying = split::Keying { key: config::RoutingKey::TraceId, attributes: &[] };
    let Ok(parts) = split::split(crate::pdata::Payload::Traces(request), &keying, &ring) else {
        return;
    };
    let mut seen = 0;
    for (backend, part) in parts {
        let crate::pdata::Payload::Traces(r) = part else { return };
        for span in r.resource_spans.iter().flat_map(|rs| rs.scope_spans.iter()).flat_map(|ss| ss.spans.iter()) {
            assert_eq!(ring.find(&span.trace_id), Some(backend), "a span on another backend than its trace id's");
            seen += 1;
        }
    }
    assert_eq!(seen, total, "spans lost or doubled");
}
