//! The `prometheus` exporter: serves the metrics it received at `/metrics` on its
//! `endpoint`, in the Prometheus text format, for Prometheus to scrape. Names and
//! labels come from [`crate::pdata::prometheus`], as remote write writes them; the
//! latest value of each series is kept until it has not been updated for
//! `metric_expiration`. Delta sums and histograms are served as running totals.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::exporters::BuildError;
use crate::exporters::helper::{Export, ExportError};
use crate::exporters::prometheusremotewrite::config::Enabled;
use crate::net;
use crate::pdata::Payload;
use crate::pdata::prometheus::delta::DeltaState;
use crate::pdata::prometheus::naming::label_name;
use crate::pdata::prometheus::{Options, Translation, Untranslated, format_float, translate};

pub const TYPE: &str = "prometheus";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Where `/metrics` is served, e.g. `0.0.0.0:8889`. Required.
    pub endpoint: String,
    /// Prefix of every metric name.
    #[serde(default)]
    pub namespace: String,
    /// Labels on every series.
    #[serde(default)]
    pub const_labels: BTreeMap<String, String>,
    /// Write each sample's timestamp. Default false (Prometheus stamps the scrape).
    #[serde(default)]
    pub send_timestamps: bool,
    /// A series not updated for this long is no longer served. Default 5m.
    #[serde(default = "default_expiration")]
    pub metric_expiration: ConfigDuration,
    #[serde(default)]
    pub resource_to_telemetry_conversion: Enabled<false>,
    /// Unit and type suffixes on names. Default true.
    #[serde(default = "default_true")]
    pub add_metric_suffixes: bool,
}

fn default_expiration() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}
fn default_true() -> bool {
    true
}

impl Validate for PrometheusConfig {
    fn validate(&self) -> Result<(), String> {
        net::normalize_endpoint(&self.endpoint)?;
        if self.metric_expiration.0.is_zero() {
            return Err("metric_expiration must be more than 0".into());
        }
        Ok(())
    }
}

/// What is served: the latest sample of each series.
#[derive(Default)]
struct Store {
    series: HashMap<Vec<(String, String)>, Latest>,
    deltas: Option<DeltaState>,
}

struct Latest {
    family: String,
    kind: i32,
    help: String,
    value: f64,
    timestamp_ms: i64,
    updated: Instant,
}

pub struct PrometheusExporter {
    id: crate::config::ComponentId,
    telemetry: Arc<crate::telemetry::Telemetry>,
    options: Options,
    store: Arc<Mutex<Store>>,
    expiration: Duration,
    /// Stops the HTTP server when the exporter goes.
    _server: DropGuard,
}

impl PrometheusExporter {
    /// Binds the endpoint now (a busy port fails the start) and serves on `tracker`.
    pub fn new(
        id: &crate::config::ComponentId,
        config: &PrometheusConfig,
        telemetry: &Arc<crate::telemetry::Telemetry>,
        owner: net::Owner<'_>,
        tracker: &TaskTracker,
    ) -> Result<PrometheusExporter, BuildError> {
        let listener = owner.bind(&config.endpoint)?;
        info!(exporter = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "Prometheus metrics served at /metrics.");
        let store = Arc::new(Mutex::new(Store {
            series: HashMap::new(),
            deltas: Some(DeltaState::new(config.metric_expiration.0)),
        }));
        let stop = CancellationToken::new();
        let expiration = config.metric_expiration.0;
        let send_timestamps = config.send_timestamps;
        let served = store.clone();
        let handler = move |request: hyper::Request<hyper::body::Incoming>, _peer| {
            let store = served.clone();
            async move {
                if request.uri().path() != "/metrics" {
                    return net::text_response(http::StatusCode::NOT_FOUND, "not found\n");
                }
                let body = render(&store, expiration, send_timestamps);
                let mut response = net::text_response(http::StatusCode::OK, body);
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
        };
        tracker.spawn(net::serve_http(listener, net::ServerLimits::default(), handler, stop.clone()));
        let options = Options {
            namespace: config.namespace.clone(),
            add_metric_suffixes: config.add_metric_suffixes,
            resource_to_telemetry: config.resource_to_telemetry_conversion.enabled,
            target_info: true,
            external_labels: config.const_labels.iter().map(|(k, v)| (label_name(k), v.clone())).collect(),
        };
        Ok(PrometheusExporter {
            id: id.clone(),
            telemetry: telemetry.clone(),
            options,
            store,
            expiration,
            _server: stop.drop_guard(),
        })
    }

    fn dropped(&self, reason: &'static str) -> prometheus_client::metrics::counter::Counter {
        self.telemetry.exporter_dropped(&self.id, reason)
    }
}

impl Export for PrometheusExporter {
    async fn export(&self, payload: &Payload, _metadata: &crate::pdata::Metadata) -> Result<(), ExportError> {
        let Payload::Metrics(request) = payload else { return Ok(()) };
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let mut translation = Translation::default();
        let mut deltas = store.deltas.take().unwrap_or_else(|| DeltaState::new(self.expiration));
        translate(request, &self.options, &mut deltas, &mut translation);
        store.deltas = Some(deltas);
        let now = Instant::now();
        let Translation { series, metadata, dropped, .. } = translation;
        for (points, why, metric) in dropped {
            self.dropped(why.as_str()).inc_by(points);
            warn!(exporter = %self.id, metric, points, reason = why.as_str(), "Data points not served.");
        }
        for s in series {
            if !s.histograms.is_empty() {
                // The text format has no native histograms.
                let why = Untranslated::NativeHistogramUnsupported.as_str();
                self.dropped(why).inc_by(s.histograms.len() as u64);
                warn!(exporter = %self.id, series = ?s.labels, reason = why, "Data points not served.");
            }
            let Some(&(value, timestamp_ms)) = s.samples.iter().max_by_key(|(_, t)| *t) else { continue };
            let meta = &metadata[s.family];
            // A sample older than the one served is not served over it.
            if store.series.get(&s.labels).is_some_and(|old| old.timestamp_ms > timestamp_ms) {
                continue;
            }
            // A staleness marker ends the series, as upstream: it is no longer served.
            if value.to_bits() == crate::pdata::prometheus::STALE_NAN {
                store.series.remove(&s.labels);
                continue;
            }
            store.series.insert(
                s.labels,
                Latest {
                    family: meta.family.clone(),
                    kind: meta.kind,
                    help: meta.help.clone(),
                    value,
                    timestamp_ms,
                    updated: now,
                },
            );
        }
        Ok(())
    }
}

/// The text format: families in name order, `# HELP` and `# TYPE`, then their series.
fn render(store: &Mutex<Store>, expiration: Duration, send_timestamps: bool) -> String {
    let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    store.series.retain(|_, latest| now.duration_since(latest.updated) < expiration);
    let mut rows: Vec<(&Vec<(String, String)>, &Latest)> = store.series.iter().collect();
    rows.sort_by(|a, b| a.1.family.cmp(&b.1.family).then_with(|| a.0.cmp(b.0)));
    let mut out = String::with_capacity(rows.len() * 96);
    let mut family = "";
    for (labels, latest) in rows {
        if latest.family != family {
            family = &latest.family;
            if !latest.help.is_empty() {
                let _ = writeln!(out, "# HELP {family} {}", latest.help.replace('\\', "\\\\").replace('\n', "\\n"));
            }
            let kind = match latest.kind {
                1 => "counter",
                2 => "gauge",
                3 => "histogram",
                5 => "summary",
                _ => "untyped",
            };
            let _ = writeln!(out, "# TYPE {family} {kind}");
        }
        let name = labels.iter().find(|(k, _)| k == "__name__").map_or("", |(_, v)| v.as_str());
        out.push_str(name);
        let mut first = true;
        for (key, value) in labels.iter().filter(|(k, _)| k != "__name__") {
            out.push(if first { '{' } else { ',' });
            first = false;
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = write!(out, "{key}=\"{escaped}\"");
        }
        if !first {
            out.push('}');
        }
        let _ = write!(out, " {}", format_float(latest.value));
        if send_timestamps {
            let _ = write!(out, " {}", latest.timestamp_ms);
        }
        out.push('\n');
    }
    out
}
