//! `ocelot-loadgen`: OTLP load for benchmarks and soak tests.
//!
//! `ocelot-loadgen send` sends traces, metrics or logs over OTLP/gRPC or OTLP/HTTP at
//! a rate (or as fast as the receiver takes them) with N concurrent connections and
//! reports items/s and errors. `ocelot-loadgen sink` is an OTLP/gRPC endpoint that
//! answers success and counts what it got, to stand in for a backend; it can drain
//! slowly for a while, to stand in for a backend that falls behind.
//!
//! With `send --tiers` every item carries a `tier` attribute (10 % `critical`, 20 %
//! `important`, 30 % `standard`, 40 % `low`) and `sink --count-attribute tier` counts
//! what arrived per value, for the degradation benchmark.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use ocelot::ottl::{Kind, walk};
use ocelot::pdata::grpc::{ClientCodec, ExportHandler, ExportRequest, Logs, Metrics, OtlpGrpcService, Traces};
use ocelot::pdata::json::{from_proto, to_proto};
use ocelot::pdata::synthetic::{payload, tier, with_tiers};
use ocelot::pdata::{Payload, Signal};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

#[derive(Parser)]
#[command(name = "ocelot-loadgen", version, about = "OTLP load generator and sink for benchmarking ocelot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send OTLP load and report items/s and errors.
    Send(SendArgs),
    /// Accept OTLP/gRPC exports, answer success, count them.
    Sink(SinkArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Grpc,
    Http,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SignalArg {
    Traces,
    Metrics,
    Logs,
}

#[derive(clap::Args)]
struct SendArgs {
    /// host:port of the receiver.
    #[arg(long, default_value = "127.0.0.1:4317")]
    endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    #[arg(long, value_enum, default_value = "traces")]
    signal: SignalArg,
    /// Items (spans, data points, log records) per second in all; 0 sends as fast as accepted.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = ocelot::config::types::parse_duration)]
    duration: Duration,
    /// Concurrent senders, each with its own connection.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Items per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Attributes per item.
    #[arg(long, default_value_t = 5)]
    attributes: usize,
    /// Encode every request anew with the current time (for backends that refuse
    /// samples older than what they have, such as Prometheus), instead of cycling
    /// pre-encoded ones.
    #[arg(long)]
    fresh_timestamps: bool,
    /// Give every item a `tier` attribute: 10 % critical, 20 % important, 30 %
    /// standard, 40 % low, by position in the request.
    #[arg(long)]
    tiers: bool,
}

#[derive(clap::Args)]
struct SinkArgs {
    /// Where to accept OTLP/gRPC.
    #[arg(long, default_value = "127.0.0.1:4319")]
    grpc: String,
    /// Also accept any HTTP/1.1 POST here (a Loki push, remote write, OTLP/HTTP) and
    /// answer 204 after reading the body, counting requests and bytes only: a sink
    /// that costs next to nothing, for side-by-side runs of agents that speak HTTP.
    #[arg(long)]
    http: Option<String>,
    /// Decode each request to count items (costs CPU in the sink).
    #[arg(long)]
    count_items: bool,
    /// Print totals every this long.
    #[arg(long, default_value = "5s", value_parser = ocelot::config::types::parse_duration)]
    report_every: Duration,
    /// Count items per value of this item attribute (decodes every request).
    #[arg(long)]
    count_attribute: Option<String>,
    /// Answer no faster than this many items per second in all (0: as fast as
    /// requests come), for `--slow-for` from the first request.
    #[arg(long, default_value_t = 0)]
    drain_rate: u64,
    /// How long the sink drains at `--drain-rate` before it answers at full speed.
    #[arg(long, default_value = "0s", value_parser = ocelot::config::types::parse_duration)]
    slow_for: Duration,
}

/// Items of `payload` per value of the item attribute `key` (items without it are
/// counted under `-`).
fn count_by_attribute(payload: &Payload, key: &str, counts: &mut BTreeMap<String, u64>) {
    // `any` with a visitor that never answers yes reads every item.
    walk::any(payload, Kind::items_of(payload.signal()), &mut |record| {
        let value = record.attributes().iter().find(|kv| kv.key == key).and_then(|kv| match &kv.value {
            Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) => Some(s.as_str()),
            _ => None,
        });
        *counts.entry(value.unwrap_or("-").to_string()).or_default() += 1;
        false
    });
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Send(args) => runtime.block_on(send(args)),
        Command::Sink(args) => runtime.block_on(sink(args)),
    }
}

impl From<SignalArg> for Signal {
    fn from(signal: SignalArg) -> Signal {
        match signal {
            SignalArg::Traces => Signal::Traces,
            SignalArg::Metrics => Signal::Metrics,
            SignalArg::Logs => Signal::Logs,
        }
    }
}

#[derive(Default)]
struct Totals {
    items: AtomicU64,
    requests: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let totals = Arc::new(Totals::default());
    // A few distinct pre-encoded requests per sender, cycled, so encoding is not measured.
    const VARIANTS: usize = 8;
    let deadline = Instant::now() + args.duration;
    let per_sender_rate = if args.rate == 0 { 0.0 } else { args.rate as f64 / args.concurrency as f64 };
    let mut tasks = Vec::new();
    for sender in 0..args.concurrency {
        let tiers = args.tiers;
        let make = move |signal: SignalArg, batch: usize, attributes: usize, seed: usize| {
            let payload = payload(signal.into(), batch, attributes, seed);
            Bytes::from(to_proto(&if tiers { with_tiers(payload) } else { payload }))
        };
        let bodies: Vec<Bytes> =
            (0..VARIANTS).map(|v| make(args.signal, args.batch, args.attributes, sender * VARIANTS + v)).collect();
        let totals = totals.clone();
        let endpoint = args.endpoint.clone();
        let (protocol, signal, batch) = (args.protocol, args.signal, args.batch as u64);
        let (fresh, attributes) = (args.fresh_timestamps, args.attributes);
        tasks.push(tokio::spawn(async move {
            let interval = (per_sender_rate > 0.0).then(|| Duration::from_secs_f64(batch as f64 / per_sender_rate));
            let mut next = Instant::now();
            let mut client = Client::connect(protocol, &endpoint, signal).await?;
            let mut i = 0;
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    next += interval;
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    }
                }
                let body = if fresh {
                    make(signal, batch as usize, attributes, sender * VARIANTS)
                } else {
                    bodies[i % bodies.len()].clone()
                };
                i += 1;
                totals.requests.fetch_add(1, Ordering::Relaxed);
                match client.send(body).await {
                    Ok(()) => {
                        totals.items.fetch_add(batch, Ordering::Relaxed);
                    }
                    Err(Failure::Refused) => {
                        totals.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(Failure::Other(e)) => {
                        if totals.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("ocelot-loadgen: {e}");
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let items = totals.items.load(Ordering::Relaxed);
    println!(
        "sent {items} items in {seconds:.1}s: {:.0} items/s; requests {}, refused (retryable) {}, errors {}",
        items as f64 / seconds,
        totals.requests.load(Ordering::Relaxed),
        totals.refused.load(Ordering::Relaxed),
        totals.errors.load(Ordering::Relaxed),
    );
    if args.tiers {
        // Every accepted request holds the same mix.
        let per_request = (0..args.batch).fold(BTreeMap::<&str, u64>::new(), |mut m, n| {
            *m.entry(tier(n)).or_default() += 1;
            m
        });
        let requests = items / args.batch as u64;
        let line: Vec<String> = per_request.iter().map(|(t, n)| format!("{t}={}", n * requests)).collect();
        println!("accepted by tier: {}", line.join(" "));
    }
    Ok(())
}

enum Failure {
    /// UNAVAILABLE / 429 / 503: the receiver's backpressure.
    Refused,
    Other(String),
}

/// One per sender, made once: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>, SignalArg),
    Http(
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            http_body_util::Full<Bytes>,
        >,
        http::Uri,
    ),
}

impl Client {
    async fn connect(protocol: Protocol, endpoint: &str, signal: SignalArg) -> anyhow::Result<Client> {
        Ok(match protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))?.connect().await?;
                Client::Grpc(tonic::client::Grpc::new(channel), signal)
            }
            Protocol::Http => {
                let path = match signal {
                    SignalArg::Traces => "traces",
                    SignalArg::Metrics => "metrics",
                    SignalArg::Logs => "logs",
                };
                let uri = format!("http://{endpoint}/v1/{path}").parse()?;
                let client =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
                Client::Http(client, uri)
            }
        })
    }

    async fn send(&mut self, body: Bytes) -> Result<(), Failure> {
        match self {
            Client::Grpc(grpc, signal) => {
                grpc.ready().await.map_err(|e| Failure::Other(e.to_string()))?;
                let path = http::uri::PathAndQuery::from_static(Signal::from(*signal).grpc_path());
                let request = tonic::Request::new(body);
                // The response type only matters for decoding an empty message.
                let result = grpc.unary(request, path, ClientCodec::<ExportTraceServiceResponse>::default()).await;
                match result {
                    Ok(_) => Ok(()),
                    Err(status) if status.code() == tonic::Code::Unavailable => Err(Failure::Refused),
                    Err(status) => Err(Failure::Other(format!("gRPC {:?}: {}", status.code(), status.message()))),
                }
            }
            Client::Http(client, uri) => {
                let request = http::Request::post(uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(http_body_util::Full::new(body))
                    .map_err(|e| Failure::Other(e.to_string()))?;
                let response = client.request(request).await.map_err(|e| Failure::Other(e.to_string()))?;
                let status = response.status();
                use http_body_util::BodyExt;
                let _ = response.into_body().collect().await;
                match status.as_u16() {
                    200..=299 => Ok(()),
                    429 | 503 => Err(Failure::Refused),
                    other => Err(Failure::Other(format!("HTTP {other}"))),
                }
            }
        }
    }
}

/// Counts for the sink, per signal.
#[derive(Default)]
struct SinkTotals {
    requests: AtomicU64,
    bytes: AtomicU64,
    items: AtomicU64,
    by_attribute: Mutex<BTreeMap<String, u64>>,
}

/// The sink's handler: count, answer success.
#[derive(Clone)]
struct Sink {
    totals: Arc<SinkTotals>,
    count_items: bool,
    count_attribute: Option<Arc<str>>,
    drain: Option<Arc<Drain>>,
}

/// A slow backend: for `slow_for` after the first request, requests are answered
/// one after another, each once the drain rate has made room for its items.
struct Drain {
    rate: f64,
    slow_for: Duration,
    /// When the first request came, and when the next one may be answered.
    slots: tokio::sync::Mutex<Option<(Instant, Instant)>>,
}

impl Drain {
    async fn wait(&self, items: usize) {
        let mut slots = self.slots.lock().await;
        let now = Instant::now();
        let (first, next) = slots.get_or_insert((now, now));
        if now.duration_since(*first) >= self.slow_for {
            return;
        }
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(items as f64 / self.rate);
        let until = *next;
        // Held while waiting: the next request queues behind this one.
        tokio::time::sleep_until(until.into()).await;
    }
}

impl ExportHandler for Sink {
    async fn handle(&self, request: ExportRequest) -> Result<(), tonic::Status> {
        let (signal, body) = (request.signal, request.body);
        let decoded = if self.count_items || self.count_attribute.is_some() || self.drain.is_some() {
            from_proto(signal, &body).ok()
        } else {
            None
        };
        if let (Some(drain), Some(payload)) = (&self.drain, &decoded) {
            drain.wait(payload.item_count()).await;
        }
        self.totals.requests.fetch_add(1, Ordering::Relaxed);
        self.totals.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if let Some(payload) = &decoded {
            self.totals.items.fetch_add(payload.item_count() as u64, Ordering::Relaxed);
            if let Some(key) = &self.count_attribute {
                count_by_attribute(
                    payload,
                    key,
                    &mut self.totals.by_attribute.lock().unwrap_or_else(|e| e.into_inner()),
                );
            }
        }
        Ok(())
    }
}

/// Answers every HTTP/1.1 request 204 once its body is read; counts requests and bytes.
async fn http_sink(listener: tokio::net::TcpListener, totals: Arc<SinkTotals>) {
    use http_body_util::BodyExt;
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let totals = totals.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let totals = totals.clone();
                async move {
                    let mut body = request.into_body();
                    while let Some(frame) = body.frame().await {
                        if let Some(data) = frame?.data_ref() {
                            totals.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                    }
                    totals.requests.fetch_add(1, Ordering::Relaxed);
                    let mut response = hyper::Response::new(http_body_util::Empty::<Bytes>::new());
                    *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                    Ok::<_, hyper::Error>(response)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

async fn sink(args: SinkArgs) -> anyhow::Result<()> {
    let totals = Arc::new(SinkTotals::default());
    let drain = (args.drain_rate > 0).then(|| {
        Arc::new(Drain { rate: args.drain_rate as f64, slow_for: args.slow_for, slots: tokio::sync::Mutex::new(None) })
    });
    let count_attribute = args.count_attribute.as_deref().map(Arc::from);
    let sink = Sink { totals: totals.clone(), count_items: args.count_items, count_attribute, drain };
    const MAX_MESSAGE: usize = 64 << 20;
    let traces = OtlpGrpcService::<_, Traces>::new(sink.clone(), MAX_MESSAGE);
    let metrics = OtlpGrpcService::<_, Metrics>::new(sink.clone(), MAX_MESSAGE);
    let logs = OtlpGrpcService::<_, Logs>::new(sink, MAX_MESSAGE);
    let listener = tokio::net::TcpListener::bind(&args.grpc).await?;
    println!("ocelot-loadgen sink: OTLP/gRPC on {}", listener.local_addr()?);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(traces)
            .add_service(metrics)
            .add_service(logs)
            .serve_with_incoming(incoming)
            .await
    });
    if let Some(address) = &args.http {
        let listener = tokio::net::TcpListener::bind(address).await?;
        println!("ocelot-loadgen sink: HTTP on {}", listener.local_addr()?);
        tokio::spawn(http_sink(listener, totals.clone()));
    }
    let mut last = (Instant::now(), 0u64, 0u64);
    loop {
        tokio::time::sleep(args.report_every).await;
        let requests = totals.requests.load(Ordering::Relaxed);
        let items = totals.items.load(Ordering::Relaxed);
        let seconds = last.0.elapsed().as_secs_f64();
        let by_attribute = totals.by_attribute.lock().unwrap_or_else(|e| e.into_inner());
        let by_attribute: String = by_attribute.iter().map(|(v, n)| format!(" {v}={n}")).collect();
        println!(
            "sink: {requests} requests ({:.0}/s), {} bytes, {items} items ({:.0}/s){by_attribute}",
            (requests - last.1) as f64 / seconds,
            totals.bytes.load(Ordering::Relaxed),
            (items - last.2) as f64 / seconds,
        );
        last = (Instant::now(), requests, items);
        if server.is_finished() {
            break;
        }
    }
    server.await??;
    Ok(())
}
