use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::config::{LoadBalancingConfig, RoutingKey};
use super::ring::Ring;
use super::split::{Keying, split};
use crate::pdata::Payload;

fn config(yaml: &str) -> Result<LoadBalancingConfig, String> {
    let node = crate::config::node::parse("lb.yaml", yaml).map_err(|e| e.to_string())?;
    crate::component::parse_config(&node).map_err(|e| e.message)
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource { attributes: vec![text("service.name", service)], ..Default::default() })
}

fn ring() -> Ring {
    Ring::new(vec!["10.0.0.1:4317".into(), "10.0.0.2:4317".into(), "10.0.0.3:4317".into()])
}

#[test]
fn config_reads_upstreams_shape_and_says_what_it_refuses() {
    let c = config(
        "
routing_key: traceID
protocol:
  otlp:
    timeout: 1s
    tls: {insecure: true}
    sending_queue: {queue_size: 100}
resolver:
  dns:
    hostname: ocelot-gateway-headless.observability.svc.cluster.local
    port: \"4317\"
",
    )
    .unwrap();
    assert_eq!(c.key(crate::pdata::Signal::Traces), RoutingKey::TraceId);
    let dns = c.resolver.dns.as_ref().unwrap();
    assert_eq!((dns.interval.0.as_secs(), dns.timeout.0.as_secs()), (5, 1));
    let c = config("protocol: {otlp: {}}\nresolver: {static: {hostnames: [a, b:4317]}}").unwrap();
    assert_eq!(c.key(crate::pdata::Signal::Logs), RoutingKey::Service);

    for (yaml, wanted) in [
        ("protocol: {otlp: {}}\nresolver: {}", "no resolvers specified"),
        ("protocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}, dns: {hostname: b}}", "only one resolver"),
        ("protocol: {otlp: {}}\nresolver: {static: {hostnames: []}}", "no endpoints specified for the static resolver"),
        ("protocol: {otlp: {}}\nresolver: {dns: {hostname: ''}}", "no hostname specified"),
        ("protocol: {otlp: {}}\nresolver: {k8s: {service: gw.ns}}", "resolver.k8s is not supported yet"),
        (
            "routing_key: attributes\nprotocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}}",
            "routing_attributes must be specified",
        ),
        (
            "routing_key: service\nrouting_attributes: [x]\nprotocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}}",
            "routing_attributes can only be used",
        ),
        ("protocol: {otlp: {endpoint: x:4317}}\nresolver: {static: {hostnames: [a]}}", "each backend's"),
        ("timeout: 5s\nprotocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}}", "set it under `protocol.otlp`"),
        ("routing_key: span\nprotocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}}", "span"),
    ] {
        let e = config(yaml).expect_err(yaml);
        assert!(e.contains(wanted), "{yaml}: {e}");
    }
}

fn spans(traces: u8, per: u8) -> Vec<Span> {
    let mut out = Vec::new();
    for t in 0..traces {
        for s in 0..per {
            out.push(Span {
                trace_id: vec![t; 16],
                span_id: vec![s + 1; 8],
                name: format!("{t}-{s}"),
                ..Default::default()
            });
        }
    }
    out
}

#[test]
fn traces_by_trace_id_keep_each_trace_whole_on_its_backend() {
    let ring = ring();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource("a"),
                scope_spans: vec![ScopeSpans { spans: spans(50, 3), ..Default::default() }],
                ..Default::default()
            },
            ResourceSpans {
                resource: resource("b"),
                scope_spans: vec![ScopeSpans { spans: spans(50, 2), ..Default::default() }],
                ..Default::default()
            },
        ],
    };
    let parts = split(Payload::Traces(request), &Keying { key: RoutingKey::TraceId, attributes: &[] }, &ring).unwrap();
    assert_eq!(parts.len(), 3, "fifty traces reach every backend");
    let mut seen = 0;
    for (backend, part) in parts {
        let Payload::Traces(r) = part else { panic!() };
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    assert_eq!(ring.find(&span.trace_id), Some(backend));
                    seen += 1;
                }
            }
        }
    }
    assert_eq!(seen, 50 * 3 + 50 * 2, "every span once");
}

#[test]
fn logs_and_metrics_by_service_keep_a_resource_together_and_streams_split_points() {
    let ring = ring();
    let logs = ExportLogsServiceRequest {
        resource_logs: ["a", "b", "c", "d"]
            .iter()
            .map(|s| ResourceLogs {
                resource: resource(s),
                scope_logs: vec![ScopeLogs { log_records: vec![LogRecord::default(); 3], ..Default::default() }],
                ..Default::default()
            })
            .collect(),
    };
    let parts = split(Payload::Logs(logs), &Keying { key: RoutingKey::Service, attributes: &[] }, &ring).unwrap();
    let resources: usize = parts
        .iter()
        .map(|(_, p)| match p {
            Payload::Logs(r) => r.resource_logs.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(resources, 4, "each resource whole, on one backend");

    let point = |series: &str| NumberDataPoint { attributes: vec![text("series", series)], ..Default::default() };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("a"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: (0..60).map(|i| point(&format!("s{}", i % 20))).collect(),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let by_stream = |m: ExportMetricsServiceRequest| {
        split(Payload::Metrics(m), &Keying { key: RoutingKey::StreamId, attributes: &[] }, &ring).unwrap()
    };
    let parts = by_stream(metrics.clone());
    assert!(parts.len() > 1, "twenty streams spread");
    let mut where_is = std::collections::BTreeMap::new();
    let mut points = 0;
    for (backend, part) in &parts {
        let Payload::Metrics(r) = part else { panic!() };
        let m = &r.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!((m.name.as_str(), m.unit.as_str()), ("m", "1"));
        let Some(metric::Data::Gauge(g)) = &m.data else { panic!() };
        for p in &g.data_points {
            points += 1;
            let series = format!("{:?}", p.attributes);
            assert_eq!(*where_is.entry(series).or_insert(*backend), *backend, "a stream on one backend");
        }
    }
    assert_eq!(points, 60);
    // The same streams go to the same backends next time.
    assert_eq!(format!("{:?}", by_stream(metrics)), format!("{parts:?}"));

    let e = split(
        Payload::Metrics(ExportMetricsServiceRequest::default()),
        &Keying { key: RoutingKey::TraceId, attributes: &[] },
        &ring,
    )
    .unwrap_err();
    assert!(e.contains("unsupported routing_key"), "{e}");
}

#[test]
fn attributes_make_the_key_from_resource_then_span() {
    let ring = ring();
    let names = ["service.name".to_string(), "span.name".to_string()];
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("a"),
            scope_spans: vec![ScopeSpans { spans: spans(30, 1), ..Default::default() }],
            ..Default::default()
        }],
    };
    let parts =
        split(Payload::Traces(request), &Keying { key: RoutingKey::Attributes, attributes: &names }, &ring).unwrap();
    for (backend, part) in parts {
        let Payload::Traces(r) = part else { panic!() };
        for span in &r.resource_spans[0].scope_spans[0].spans {
            let key = format!("service.name=a|span.name={}|", span.name);
            assert_eq!(ring.find(key.as_bytes()), Some(backend));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_resolver_answering_nothing_fails_the_batch_for_a_retry() {
    use crate::pdata::{Ack, AckOutcome, Batch};
    let telemetry = crate::telemetry::Telemetry::new();
    let id = crate::config::ComponentId::new("loadbalancing");
    let config = config("protocol: {otlp: {}}\nresolver: {dns: {hostname: gateways.example}}").unwrap();
    let (input, forwarded) = crate::exporters::helper::forwarding_input(&id, telemetry.exporter(&id), 4, false, false);
    // A DNS resolver that has answered nothing (yet), and stays open.
    let (_answers, resolved) = tokio::sync::watch::channel(Vec::new());
    let balancer = super::balancer::Balancer {
        id: id.clone(),
        config,
        make: Box::new(|_| Err("not called".into())),
        metrics: telemetry.exporter(&id),
        ring: Ring::default(),
        backends: Vec::new(),
        warned: None,
    };
    let running = tokio::spawn(balancer.run(forwarded, resolved));
    let (ack, waiter) = Ack::new();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: spans(2, 1), ..Default::default() }],
            ..Default::default()
        }],
    };
    assert!(input.send(Batch::with_ack(Payload::Traces(request), ack)).await.is_ok());
    // It waits for a first answer (5s, on the paused clock), then fails the batch.
    let resolution = waiter.wait().await;
    assert_eq!(resolution.outcome, AckOutcome::Failed);
    assert!(resolution.message.contains("couldn't find the exporter"), "{}", resolution.message);
    drop(input);
    running.await.unwrap();
}
