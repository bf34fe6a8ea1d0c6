//! The `prometheus` receiver: scrapes targets as Prometheus does (its own
//! `scrape_configs`: static and file discovery, relabeling, limits) and translates
//! each page to OTLP as upstream's receiver does.
//!
//! Each job discovers its targets and runs one task per target. A target's scrapes
//! are spread over the interval by a hash of its labels, so a thousand targets do
//! not fire at once; each scrape is bounded by the job's timeout and body limit. A
//! scrape the pipeline does not take before the next one is due is dropped and
//! counted (`otelcol_receiver_refused_metric_points_total`), as a scrape is only
//! worth its moment. A target that fails or goes away gets staleness markers for
//! every series it had, and `up` 0 while it fails.

pub mod config;
pub mod discovery;
pub mod kubernetes;
pub mod relabel;
pub mod scrape;
pub mod text;
pub mod translate;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::PrometheusReceiverConfig;

use super::StartError;
use crate::component::Consumer;
use crate::config::ComponentId;
use crate::pdata::{Batch, Payload, Signal};
use crate::telemetry::{PrometheusReceiverMetrics, ReceiverMetrics, Telemetry};
use config::{GlobalConfig, ScrapeConfig};
use discovery::Target;
use relabel::Relabel;
use scrape::Scraper;
use translate::{Staleness, TargetSettings};

pub const TYPE: &str = "prometheus";

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// How long Kubernetes changes are gathered before the targets are worked out again.
const DISCOVERY_SETTLE: Duration = Duration::from_secs(1);

/// A problem with one target is logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(60);

pub async fn start(
    id: &ComponentId,
    config: &PrometheusReceiverConfig,
    consumer: Consumer,
    telemetry: &Telemetry,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), StartError> {
    for scrape in &config.config.scrape_configs {
        let scraper = Scraper::new(scrape).map_err(StartError::Config)?;
        let relabel: Vec<Relabel> = scrape
            .relabel_configs
            .iter()
            .map(RelabelConfig::compile)
            .collect::<Result<_, _>>()
            .map_err(StartError::Config)?;
        let metric_relabel: Vec<Relabel> = scrape
            .metric_relabel_configs
            .iter()
            .map(RelabelConfig::compile)
            .collect::<Result<_, _>>()
            .map_err(StartError::Config)?;
        let metrics = telemetry.prometheus_receiver(id, &scrape.job_name);
        let mut kubernetes = Vec::new();
        for sd in &scrape.kubernetes_sd_configs {
            let watches = kubernetes::start(sd, metrics.failure("discovery"), tracker, &stop).map_err(|e| {
                StartError::Config(format!("receiver {id}: job `{}`: kubernetes_sd_configs: {e}", scrape.job_name))
            })?;
            kubernetes.extend(watches);
        }
        let job = Job {
            id: id.clone(),
            kubernetes,
            config: scrape.clone(),
            global: config.config.global.clone(),
            trim_metric_suffixes: config.trim_metric_suffixes,
            report_extra: config.report_extra_scrape_metrics,
            relabel,
            metric_relabel,
            scraper: Arc::new(scraper),
            consumer: consumer.clone(),
            receiver: telemetry.receiver(id, ""),
            metrics,
            stop: stop.clone(),
        };
        let inner = tracker.clone();
        tracker.spawn(async move { job.run(&inner).await });
    }
    Ok(())
}

use relabel::RelabelConfig;

/// One `scrape_configs` entry: discovers targets and runs a task for each.
struct Job {
    id: ComponentId,
    /// Each Kubernetes watch's current target groups.
    kubernetes: Vec<tokio::sync::watch::Receiver<Vec<discovery::Group>>>,
    config: ScrapeConfig,
    global: GlobalConfig,
    trim_metric_suffixes: bool,
    report_extra: bool,
    relabel: Vec<Relabel>,
    metric_relabel: Vec<Relabel>,
    scraper: Arc<Scraper>,
    consumer: Consumer,
    receiver: ReceiverMetrics,
    metrics: PrometheusReceiverMetrics,
    stop: CancellationToken,
}

impl Job {
    async fn run(mut self, tracker: &TaskTracker) {
        let mut kubernetes = std::mem::take(&mut self.kubernetes);
        let job = Arc::new(self);
        let mut running: BTreeMap<String, CancellationToken> = BTreeMap::new();
        let mut discovery = discovery::Discovery::new(&job.config);
        loop {
            let mut groups = discovery.refresh(&job.id, &job.config.job_name);
            for watch in &mut kubernetes {
                groups.extend(watch.borrow_and_update().iter().cloned());
            }
            let targets = discovery::targets(&job.config, &job.global, &groups, &job.relabel);
            let wanted: BTreeMap<String, Target> = targets.into_iter().map(|t| (t.key(), t)).collect();
            running.retain(|key, token| {
                let keep = wanted.contains_key(key);
                if !keep {
                    token.cancel();
                }
                keep
            });
            for (key, target) in wanted {
                if running.contains_key(&key) {
                    continue;
                }
                let token = job.stop.child_token();
                running.insert(key, token.clone());
                let job = job.clone();
                tracker.spawn(async move { job.scrape_loop(target, token).await });
            }
            job.metrics.targets.set(running.len() as i64);
            let wait = discovery.next_refresh();
            if wait.is_none() && kubernetes.is_empty() {
                // Static targets only: nothing to watch.
                job.stop.cancelled().await;
                return;
            }
            let changed = async {
                if kubernetes.is_empty() {
                    return std::future::pending::<Option<usize>>().await;
                }
                let changes = kubernetes.iter_mut().map(|w| Box::pin(w.changed()));
                match futures_util::future::select_all(changes).await {
                    (Ok(()), _, _) => None,
                    // That watch's task ended (at shutdown): it is let go, the others stay.
                    (Err(_), closed, _) => Some(closed),
                }
            };
            tokio::select! {
                biased;
                _ = job.stop.cancelled() => return,
                closed = changed => {
                    if let Some(closed) = closed {
                        kubernetes.remove(closed);
                    }
                    // Pods come and go in bursts (a rollout): targets are worked out
                    // once a burst is over, as Prometheus sends its updates at most
                    // every 5 s.
                    tokio::select! {
                        biased;
                        _ = job.stop.cancelled() => return,
                        _ = tokio::time::sleep(DISCOVERY_SETTLE) => {}
                    }
                }
                _ = sleep_for(wait) => {}
            }
        }
    }

    async fn scrape_loop(&self, target: Target, stop: CancellationToken) {
        let settings = TargetSettings {
            labels: target.labels.clone(),
            scheme: target.scheme.clone(),
            honor_labels: self.config.honor_labels,
            honor_timestamps: self.config.honor_timestamps,
            trim_metric_suffixes: self.trim_metric_suffixes,
            metric_relabel: self.metric_relabel.clone(),
            external_labels: self.global.external_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            sample_limit: self.config.sample_limit,
            label_limit: self.config.label_limit,
            label_name_length_limit: self.config.label_name_length_limit,
            label_value_length_limit: self.config.label_value_length_limit,
        };
        let settings = Arc::new(settings);
        let interval = target.interval;
        // Spread over the interval by the target's identity, as Prometheus offsets them.
        let mut hasher = foldhash::fast::FixedState::with_seed(0x7072_6f6d).build_hasher();
        hasher.write(target.key().as_bytes());
        let now_ms = crate::receivers::unix_nanos() / 1_000_000;
        let interval_ms = interval.as_millis().max(1) as u64;
        let offset = (hasher.finish() % interval_ms + interval_ms - now_ms % interval_ms) % interval_ms;
        let mut next = tokio::time::Instant::now() + Duration::from_millis(offset);
        let mut state = Some(Staleness::default());
        let mut last_report: Option<std::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            next += interval;
            let now = tokio::time::Instant::now();
            if next < now {
                // A scrape longer than the interval (or a stalled host): skip what was missed.
                let behind = (now - next).as_millis() / interval.as_millis().max(1) + 1;
                next += interval * behind as u32;
            }
            let started = std::time::Instant::now();
            let time_ns = crate::receivers::unix_nanos();
            let page = self.scraper.scrape(&target.url, target.timeout).await;
            let (mut resources, up, counts) = match page {
                Ok(page) => {
                    let shared = settings.clone();
                    let mut taken = state.take().unwrap_or_default();
                    // Inflating, parsing and translating a page is CPU work on up to
                    // the body limit's bytes: off the runtime's threads.
                    let done = tokio::task::spawn_blocking(move || {
                        let outcome = match page.decode() {
                            Err(e) => Err((e.reason(), e.to_string())),
                            Ok((text, format)) => match text::parse(&text, format) {
                                Ok(families) => translate::translate(&families, &shared, time_ns, &mut taken)
                                    .map_err(|e| ("limit", e.to_string())),
                                Err(e) => Err(("parse", e.to_string())),
                            },
                        };
                        (outcome, taken)
                    })
                    .await;
                    let Ok((outcome, taken)) = done else { break };
                    state = Some(taken);
                    match outcome {
                        Ok((out, counts)) => (out, true, Some(counts)),
                        Err((reason, message)) => {
                            self.failed(&target, reason, &message, &mut last_report);
                            (translate::all_stale(&settings, time_ns, state.get_or_insert_default()), false, None)
                        }
                    }
                }
                Err(e) => {
                    self.failed(&target, e.reason(), &e.to_string(), &mut last_report);
                    (translate::all_stale(&settings, time_ns, state.get_or_insert_default()), false, None)
                }
            };
            let took = started.elapsed();
            self.metrics.scrapes.inc();
            self.metrics.duration_seconds.inc_by(took.as_secs_f64());
            if let Some(c) = &counts {
                self.metrics.samples.inc_by(c.post_relabel as u64);
            }
            resources.push(self.report(&target, up, took, counts.as_ref(), time_ns));
            self.send(resources, interval).await;
        }
        // The target went away (or the receiver stops): its series are stale.
        if !self.stop.is_cancelled() {
            let resources =
                translate::all_stale(&settings, crate::receivers::unix_nanos(), state.get_or_insert_default());
            if !resources.is_empty() {
                self.send(resources, interval).await;
            }
        }
    }

    fn failed(&self, target: &Target, reason: &'static str, message: &str, last: &mut Option<std::time::Instant>) {
        self.metrics.failure(reason).inc();
        if last.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            *last = Some(std::time::Instant::now());
            warn!(receiver = %self.id, job = %self.config.job_name, target = %target.url, error = %message,
                "A scrape failed; up is 0 and the target's series are marked stale.");
        }
    }

    /// The scrape's own series, as Prometheus writes them for each target.
    fn report(
        &self,
        target: &Target,
        up: bool,
        took: Duration,
        counts: Option<&translate::Counts>,
        time_ns: u64,
    ) -> ResourceMetrics {
        let gauge = |name: &str, value: f64| Metric {
            name: name.to_string(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: time_ns,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let mut metrics =
            vec![gauge("up", if up { 1.0 } else { 0.0 }), gauge("scrape_duration_seconds", took.as_secs_f64())];
        let counts = counts.map(|c| (c.scraped, c.post_relabel, c.series_added)).unwrap_or_default();
        metrics.push(gauge("scrape_samples_scraped", counts.0 as f64));
        metrics.push(gauge("scrape_samples_post_metric_relabeling", counts.1 as f64));
        metrics.push(gauge("scrape_series_added", counts.2 as f64));
        if self.report_extra {
            metrics.push(gauge("scrape_timeout_seconds", target.timeout.as_secs_f64()));
            metrics.push(gauge("scrape_sample_limit", self.config.sample_limit as f64));
        }
        let job = target.labels.get("job").unwrap_or("");
        let instance = target.labels.get("instance").unwrap_or("");
        ResourceMetrics {
            resource: Some(Resource {
                attributes: translate::resource_attributes(job, instance, &target.scheme),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: translate::SCOPE_NAME.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }

    async fn send(&self, resource_metrics: Vec<ResourceMetrics>, interval: Duration) {
        let payload = Payload::Metrics(ExportMetricsServiceRequest { resource_metrics });
        let points = payload.item_count() as u64;
        if points == 0 {
            return;
        }
        match tokio::time::timeout(interval, self.consumer.consume(Batch::new(payload))).await {
            Ok(Ok(())) => self.receiver.accepted(Signal::Metrics).inc_by(points),
            _ => {
                self.receiver.refused(Signal::Metrics).inc_by(points);
                info!(receiver = %self.id, job = %self.config.job_name,
                    "The pipeline did not take a scrape before the next was due; it was dropped (counted in otelcol_receiver_refused_metric_points).");
            }
        }
    }
}
