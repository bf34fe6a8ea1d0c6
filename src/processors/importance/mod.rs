//! The `importance` processor (ocelot's own): gives every span, data point and log
//! record a score in [0, 1], so routing can send what matters to fast pipelines and
//! the `memory_limiter` can shed the least important data first.
//!
//! Rules are tried in order and the first that matches gives the score, else
//! `default_score`. A rule is a `match` block of globs (resource attributes, record
//! attributes, a log's severity, a span's name, kind and status) or an OTTL
//! condition. The score goes on the resource when every rule that matched looked
//! only at the resource (one attribute for all its records), else on each record;
//! `scope` forces one (on the resource, the highest of its records' scores).
//!
//! With `ewma`, metric batches also feed an exponentially weighted average of each
//! identity's (`key`, a process name) CPU and memory readings; an average past a
//! `raise` threshold lifts that identity's score in every signal, so a process with
//! sustained use is kept even if no rule names it, and a one-off spike is not. The
//! averages are written to a state file every `checkpoint_interval` and at shutdown
//! and read at start; a torn or corrupt file is logged and ignored.
//!
//! It never drops anything and never does I/O on the pipeline's task: the state
//! file is written by a task of its own on a blocking thread.

mod config;
pub mod ewma;
pub mod rules;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::{EwmaConfig, ImportanceConfig, RaiseConfig, RuleConfig, ScoreScope, parse};

use super::Processor;
use super::ottl::{ErrorMode, Errors};
use crate::config::ComponentId;
use crate::ottl::record::{Item, Record, point, point_count};
use crate::pdata::score::{self, Tier};
use crate::pdata::{Batch, Payload};
use crate::storage::{StateError, StateFile};
use crate::telemetry::{ImportanceMetrics, ProcessorMetrics};
use rules::{Rule, Rules};

pub const TYPE: &str = "importance";

/// One processor id's EWMA state, shared by its instances in every pipeline.
pub struct Store {
    id: ComponentId,
    state: Mutex<ewma::State>,
    file: StateFile,
    ttl: std::time::Duration,
    metrics: ImportanceMetrics,
}

impl Store {
    /// Reads the state file; a missing one is a fresh start, a corrupt one is logged.
    fn open(id: &ComponentId, config: &EwmaConfig, directory: &Path, metrics: ImportanceMetrics) -> Store {
        let file = StateFile::new(directory, &format!("importance_{id}"));
        let mut state = match file.load() {
            Ok(Some(bytes)) => ewma::State::decode(&bytes).unwrap_or_else(|reason| {
                warn!(processor = %id, path = %file.path().display(), %reason, "The EWMA state file cannot be read; starting afresh.");
                ewma::State::new()
            }),
            Ok(None) => ewma::State::new(),
            Err(e) => {
                warn!(processor = %id, error = %e, "The EWMA state file cannot be read; starting afresh.");
                ewma::State::new()
            }
        };
        state.expire(config.ttl.0, ewma::now_seconds());
        if !state.is_empty() {
            info!(processor = %id, keys = state.len(), "EWMA state restored.");
        }
        metrics.tracked.set(state.len() as i64);
        Store { id: id.clone(), state: Mutex::new(state), file, ttl: config.ttl.0, metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ewma::State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the state if it changed, on a blocking thread.
    async fn checkpoint(self: &Arc<Self>) {
        let bytes = {
            let mut state = self.lock();
            state.expire(self.ttl, ewma::now_seconds());
            self.metrics.tracked.set(state.len() as i64);
            if !state.dirty {
                return;
            }
            state.dirty = false;
            state.encode()
        };
        let store = self.clone();
        let result = tokio::task::spawn_blocking(move || store.file.store(&bytes)).await;
        match result {
            Ok(Ok(())) => {
                self.metrics.saved.inc();
            }
            Ok(Err(e)) => self.failed(&e),
            Err(_) => self.failed(&StateError::Corrupt {
                path: self.file.path().to_path_buf(),
                reason: "the writing thread stopped".into(),
            }),
        }
    }

    fn failed(&self, e: &StateError) {
        self.metrics.save_failed.inc();
        // Written again at the next checkpoint.
        self.lock().dirty = true;
        warn!(processor = %self.id, error = %e, "Writing the EWMA state failed; it is tried again at the next checkpoint.");
    }
}

/// A store, what it was opened with, and the handle that keeps its checkpoint task
/// waiting, all weak: the instances hold them, and when the last goes the task
/// writes a final checkpoint and ends.
struct OpenStore {
    store: std::sync::Weak<Store>,
    alive: mpsc::WeakSender<()>,
    ewma: EwmaConfig,
    directory: std::path::PathBuf,
}

/// The EWMA stores of a graph, by processor id. They outlive a reload: an instance
/// built with the same settings as a running one shares its store, so scores carry
/// over.
#[derive(Default)]
pub struct Stores {
    stores: Mutex<BTreeMap<ComponentId, OpenStore>>,
}

impl Stores {
    fn get_or_open(
        &self,
        id: &ComponentId,
        config: &ImportanceConfig,
        ewma: &EwmaConfig,
        directory: &Path,
        metrics: &ImportanceMetrics,
        tasks: &TaskTracker,
    ) -> (Arc<Store>, mpsc::Sender<()>) {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = stores.get(id)
            && open.ewma == *ewma
            && open.directory == directory
            && let (Some(store), Some(alive)) = (open.store.upgrade(), open.alive.upgrade())
        {
            return (store, alive);
        }
        let store = Arc::new(Store::open(id, ewma, directory, metrics.clone()));
        let (alive, mut gone) = mpsc::channel::<()>(1);
        let interval = config.checkpoint_interval.0;
        let task_store = store.clone();
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    // Every instance is gone: the pipelines have drained.
                    None = gone.recv() => break,
                    _ = ticks.tick() => task_store.checkpoint().await,
                }
            }
            task_store.checkpoint().await;
        });
        let open = OpenStore {
            store: Arc::downgrade(&store),
            alive: alive.downgrade(),
            ewma: ewma.clone(),
            directory: directory.to_path_buf(),
        };
        stores.insert(id.clone(), open);
        (store, alive)
    }
}

/// Where a resource's score goes.
enum Placement {
    Resource(f64),
    Records(Vec<f64>),
}

pub struct ImportanceProcessor {
    attribute: String,
    scope: Option<ScoreScope>,
    default_score: f64,
    rules: Rules,
    ewma: Option<(EwmaConfig, Arc<Store>)>,
    /// Keeps the checkpoint task waiting for this instance.
    _alive: Option<mpsc::Sender<()>>,
    metrics: ImportanceMetrics,
    processor: ProcessorMetrics,
    errors: Errors,
}

/// What building an instance needs.
pub struct Context<'a> {
    pub stores: &'a Stores,
    pub directory: &'a Path,
    pub tasks: &'a TaskTracker,
    pub metrics: ImportanceMetrics,
    pub processor: ProcessorMetrics,
}

impl ImportanceProcessor {
    pub fn new(id: &ComponentId, config: &ImportanceConfig, context: Context<'_>) -> ImportanceProcessor {
        // Every rule compiled when the config was read; one that fails now cannot.
        let rules = Rules::compile(config).unwrap_or(Rules { by_signal: Default::default() });
        let (ewma, alive) = match &config.ewma {
            Some(e) => {
                let (store, alive) =
                    context.stores.get_or_open(id, config, e, context.directory, &context.metrics, context.tasks);
                (Some((e.clone(), store)), Some(alive))
            }
            None => (None, None),
        };
        ImportanceProcessor {
            attribute: config.attribute.clone(),
            scope: config.scope,
            default_score: config.default_score,
            rules,
            ewma,
            _alive: alive,
            errors: Errors::new(id, &context.processor),
            metrics: context.metrics,
            processor: context.processor,
        }
    }
}

/// Scores records of one resource.
struct Scorer<'a> {
    rules: &'a [Rule],
    default_score: f64,
    scope: Option<ScoreScope>,
    raise: Option<f64>,
    errors: &'a mut Errors,
    tiers: &'a mut [u64; 5],
}

impl Scorer<'_> {
    /// The first matching rule's score, and whether that rule read only the resource.
    fn score(&mut self, record: &Record<'_>) -> (f64, bool) {
        for rule in self.rules {
            match rule.matches(record) {
                Ok(true) => return (self.raised(rule.score), rule.resource_only),
                Ok(false) => {}
                Err(e) => {
                    let _ = self.errors.handle(ErrorMode::Ignore, e, "An importance condition");
                }
            }
        }
        (self.raised(self.default_score), true)
    }

    fn raised(&self, score: f64) -> f64 {
        self.raise.map_or(score, |r| r.max(score))
    }

    /// Where the scores of `records` go, counting each record's tier.
    fn place(&mut self, records: &mut dyn Iterator<Item = Record<'_>>) -> Option<Placement> {
        let mut scores = Vec::new();
        let mut resource_only = true;
        for record in records {
            let (s, only) = self.score(&record);
            resource_only &= only;
            scores.push(s);
            self.tiers[Tier::of(Some(s)).index()] += 1;
        }
        let first = *scores.first()?;
        Some(match self.scope {
            Some(ScoreScope::Record) => Placement::Records(scores),
            Some(ScoreScope::Resource) => Placement::Resource(scores.iter().copied().fold(first, f64::max)),
            None if resource_only => Placement::Resource(first),
            None => Placement::Records(scores),
        })
    }
}

impl ImportanceProcessor {
    fn score_payload(&mut self, payload: &mut Payload, tiers: &mut [u64; 5]) {
        let signal = payload.signal();
        let store = self.ewma.as_ref().map(|(_, s)| s.clone());
        let guard = store.as_ref().map(|s| s.lock());
        let state = guard.as_deref();
        let attribute = self.attribute.as_str();
        let no_scope = InstrumentationScope::default();
        let rules = &self.rules.by_signal[signal.index()];
        // Pass one reads a resource's records for their scores; pass two writes them.
        let scorer =
            |raise, errors: &mut Errors, tiers: &mut [u64; 5], records: &mut dyn Iterator<Item = Record<'_>>| {
                Scorer { rules, default_score: self.default_score, scope: self.scope, raise, errors, tiers }
                    .place(records)
            };
        let errors = &mut self.errors;
        // Every rule reads only the resource: one evaluation per resource, not per record.
        if self.scope != Some(ScoreScope::Record) && rules.iter().all(|r| r.resource_only) {
            let counts = crate::pdata::resource_item_counts(payload);
            for (resource, n) in crate::processors::resources_mut(payload).into_iter().zip(counts) {
                if n == 0 {
                    continue;
                }
                let raise = raise_for(self.ewma.as_ref(), state, &resource.attributes);
                let record = Record::new(resource, &no_scope, Item::None);
                let mut one = [0u64; 5];
                let mut scorer = Scorer {
                    rules,
                    default_score: self.default_score,
                    scope: self.scope,
                    raise,
                    errors,
                    tiers: &mut one,
                };
                let (score, _) = scorer.score(&record);
                tiers[Tier::of(Some(score)).index()] += n;
                score::write(&mut resource.attributes, attribute, score);
            }
            return;
        }
        match payload {
            Payload::Logs(request) => {
                for r in &mut request.resource_logs {
                    let resource = r.resource.get_or_insert_with(Default::default);
                    let raise = raise_for(self.ewma.as_ref(), state, &resource.attributes);
                    let res: &Resource = resource;
                    let placement = scorer(
                        raise,
                        errors,
                        tiers,
                        &mut r.scope_logs.iter().flat_map(|s| {
                            let scope = s.scope.as_ref().unwrap_or(&no_scope);
                            s.log_records.iter().map(move |l| Record::log(res, scope, l))
                        }),
                    );
                    let records = r.scope_logs.iter_mut().flat_map(|s| &mut s.log_records).map(|l| &mut l.attributes);
                    apply(placement, &mut resource.attributes, records, attribute);
                }
            }
            Payload::Traces(request) => {
                for r in &mut request.resource_spans {
                    let resource = r.resource.get_or_insert_with(Default::default);
                    let raise = raise_for(self.ewma.as_ref(), state, &resource.attributes);
                    let res: &Resource = resource;
                    let placement = scorer(
                        raise,
                        errors,
                        tiers,
                        &mut r.scope_spans.iter().flat_map(|s| {
                            let scope = s.scope.as_ref().unwrap_or(&no_scope);
                            s.spans.iter().map(move |span| Record::new(res, scope, Item::Span(span)))
                        }),
                    );
                    let records = r.scope_spans.iter_mut().flat_map(|s| &mut s.spans).map(|span| &mut span.attributes);
                    apply(placement, &mut resource.attributes, records, attribute);
                }
            }
            Payload::Metrics(request) => {
                for r in &mut request.resource_metrics {
                    let resource = r.resource.get_or_insert_with(Default::default);
                    let raise = raise_for(self.ewma.as_ref(), state, &resource.attributes);
                    let res: &Resource = resource;
                    let placement = scorer(
                        raise,
                        errors,
                        tiers,
                        &mut r.scope_metrics.iter().flat_map(|s| {
                            let scope = s.scope.as_ref().unwrap_or(&no_scope);
                            s.metrics.iter().flat_map(move |m| {
                                (0..point_count(m)).filter_map(move |i| {
                                    let p = point(m, i)?;
                                    Some(Record::new(res, scope, Item::Point(m, p)))
                                })
                            })
                        }),
                    );
                    let mut points: Vec<&mut Vec<KeyValue>> = Vec::new();
                    for m in r.scope_metrics.iter_mut().flat_map(|s| &mut s.metrics) {
                        points.extend(points_attributes(m));
                    }
                    apply(placement, &mut resource.attributes, points.into_iter(), attribute);
                }
            }
        }
    }
}

fn raise_for(
    ewma: Option<&(EwmaConfig, Arc<Store>)>,
    state: Option<&ewma::State>,
    resource: &[KeyValue],
) -> Option<f64> {
    let (config, _) = ewma?;
    let key = ewma::string_attribute(resource, &config.key)?;
    state?.raise(config, key)
}

/// Every data point's attributes of a metric, in order.
fn points_attributes(metric: &mut Metric) -> Vec<&mut Vec<KeyValue>> {
    match &mut metric.data {
        Some(metric::Data::Gauge(g)) => g.data_points.iter_mut().map(|p| &mut p.attributes).collect(),
        Some(metric::Data::Sum(s)) => s.data_points.iter_mut().map(|p| &mut p.attributes).collect(),
        Some(metric::Data::Histogram(h)) => h.data_points.iter_mut().map(|p| &mut p.attributes).collect(),
        Some(metric::Data::ExponentialHistogram(e)) => e.data_points.iter_mut().map(|p| &mut p.attributes).collect(),
        Some(metric::Data::Summary(s)) => s.data_points.iter_mut().map(|p| &mut p.attributes).collect(),
        None => Vec::new(),
    }
}

/// Writes a resource's scores where [`Scorer::place`] put them.
fn apply<'a>(
    placement: Option<Placement>,
    resource: &mut Vec<KeyValue>,
    records: impl Iterator<Item = &'a mut Vec<KeyValue>>,
    attribute: &str,
) {
    match placement {
        None => {}
        Some(Placement::Resource(s)) => score::write(resource, attribute, s),
        Some(Placement::Records(scores)) => {
            for (attributes, s) in records.zip(scores) {
                score::write(attributes, attribute, s);
            }
        }
    }
}

impl Processor for ImportanceProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let signal = batch.signal();
        let items = batch.payload.item_count() as u64;
        self.processor.incoming[signal.index()].inc_by(items);
        if let (Some((config, store)), Payload::Metrics(request)) = (&self.ewma, &*batch.payload) {
            let mut state = store.lock();
            let not_numeric = state.observe(config, &request.resource_metrics, ewma::now_seconds());
            self.metrics.tracked.set(state.len() as i64);
            drop(state);
            if not_numeric > 0 {
                self.metrics.not_numeric.inc_by(not_numeric);
            }
        }
        let mut tiers = [0u64; 5];
        self.score_payload(batch.payload_mut(), &mut tiers);
        for tier in Tier::ALL {
            if tiers[tier.index()] > 0 {
                self.metrics.records[tier.index()].inc_by(tiers[tier.index()]);
            }
        }
        self.processor.outgoing[signal.index()].inc_by(items);
        out.push(batch);
    }
}

#[cfg(test)]
mod tests;
