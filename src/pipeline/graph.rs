//! The running graph, and how a new config takes its place while data flows.
//!
//! A graph outlives the config it was built from. [`Graph::apply`] diffs the new
//! config against the running nodes by fingerprint (a component's own settings and
//! those of the extensions it names) and touches only what changed:
//!
//! 1. Prepare, with the running graph untouched: start the exporters that are new or
//!    changed, build the processors that are new or changed, spawn new pipelines,
//!    and start receivers that are new or changed (a changed otlp receiver alongside
//!    the old one, on the same listening socket). Any failure stops what was just
//!    started and leaves the running graph as it was.
//! 2. Commit: stop the receivers that are gone or replaced, rewire the pipelines that
//!    stay (their kept processors keep their state), point the receivers that stay
//!    at the new pipelines, swap the receivers that cannot run twice (a file tail:
//!    the old one stops and commits its offsets before the new one starts), and let
//!    removed pipelines and exporters drain in the background, as at shutdown.
//!
//! Nothing is handed over mid-batch: a receiver reads its route once per batch, a
//! pipeline takes its rewire between two batches, and what a removed stage holds
//! drains into stages that still run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::governor::{Gate, Governor};
use super::run::{self, Output, Rewire, Slot};
use super::{PIPELINE_INPUT_CAPACITY, StartError};
use crate::component::Kind;
use crate::component::{Consumers, ConsumersBuilder, Door, Waits};
use crate::config::{ComponentId, Fingerprint, PipelineId};
use crate::exporters::helper::ExporterInput;
use crate::net::{Listeners, Owner};
use crate::pdata::Batch;
use crate::registry::Config;
use crate::telemetry::Telemetry;

/// How long a receiver that cannot run twice gets to stop during a reload before
/// its replacement starts anyway (and may read a few lines again).
const SWAP_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running graph.
pub struct Graph {
    telemetry: Arc<Telemetry>,
    storage_dir: PathBuf,
    listeners: Listeners,
    governor: Arc<Governor>,
    stores: crate::processors::importance::Stores,
    pod_watches: crate::processors::k8sattributes::Watches,
    give_up: CancellationToken,
    /// Every receiver instance's stop token is a child of this one.
    stop_receivers: CancellationToken,
    receiver_tasks: TaskTracker,
    pipeline_tasks: TaskTracker,
    exporter_tasks: TaskTracker,
    /// The memory governor's task, restarted when its limiters change.
    housekeeping: TaskTracker,
    stop_governor: CancellationToken,
    next_instance: u64,
    config: Option<Arc<Config>>,
    exporters: BTreeMap<ComponentId, ExporterNode>,
    pipelines: BTreeMap<PipelineId, PipelineNode>,
    receivers: BTreeMap<ComponentId, ReceiverNode>,
}

struct ExporterNode {
    fingerprint: Fingerprint,
    instance: u64,
    input: ExporterInput,
}

struct PipelineNode {
    input: mpsc::Sender<Batch>,
    control: mpsc::Sender<Rewire>,
    processors: Vec<(ComponentId, Fingerprint)>,
}

struct ReceiverNode {
    fingerprint: Fingerprint,
    instance: u64,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// A handle on the receiver's own consumers, to point them elsewhere.
    consumers: Consumers,
}

/// What an apply did, node by node: `receiver/otlp`, `pipeline/logs`,
/// `processor/batch@logs`, `exporter/debug`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Changes {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub kept: Vec<String>,
}

impl Changes {
    /// Adds `other`'s nodes (the extensions') to these.
    pub fn merge(&mut self, other: Changes) {
        self.started.extend(other.started);
        self.restarted.extend(other.restarted);
        self.stopped.extend(other.stopped);
        self.kept.extend(other.kept);
    }
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Found while preparing: the running graph is as it was.
    #[error("{0}")]
    Prepare(StartError),
    /// Found while committing: part of the new graph runs; roll back.
    #[error("{0}")]
    Commit(StartError),
}

impl ApplyError {
    pub fn into_inner(self) -> StartError {
        match self {
            ApplyError::Prepare(e) | ApplyError::Commit(e) => e,
        }
    }
}

/// Built by [`Graph::prepare`], not yet part of the running graph.
#[derive(Default)]
struct Staged {
    /// New or changed exporters, started.
    exporters: BTreeMap<ComponentId, ExporterNode>,
    /// Every exporter the new graph uses.
    exporters_used: BTreeSet<ComponentId>,
    /// New pipelines, running.
    pipelines: BTreeMap<PipelineId, PipelineNode>,
    /// Pipelines that stay: their new chain, outputs and processor list.
    rewires: BTreeMap<PipelineId, Rewiring>,
    /// New receivers, and changed ones that can run beside the old instance, started.
    receivers: BTreeMap<ComponentId, ReceiverNode>,
    /// The new routes of receivers that stay, or are swapped at commit.
    consumers: BTreeMap<ComponentId, Consumers>,
    /// Changed receivers that cannot run twice: started at commit.
    swaps: Vec<ComponentId>,
}

/// A pipeline that stays: its new chain, outputs and processor list.
struct Rewiring {
    slots: Vec<Slot>,
    outputs: Vec<Output>,
    listed: Vec<(ComponentId, Fingerprint)>,
}

impl Graph {
    /// Builds and starts the graph, downstream first. On error, what was started is
    /// stopped again before returning.
    pub async fn start(
        config: Arc<Config>,
        telemetry: &Arc<Telemetry>,
        storage_dir: &Path,
    ) -> Result<Graph, StartError> {
        let mut graph = Graph {
            telemetry: telemetry.clone(),
            storage_dir: storage_dir.to_path_buf(),
            listeners: Listeners::default(),
            governor: Governor::new(),
            stores: Default::default(),
            pod_watches: Default::default(),
            give_up: CancellationToken::new(),
            stop_receivers: CancellationToken::new(),
            receiver_tasks: TaskTracker::new(),
            pipeline_tasks: TaskTracker::new(),
            exporter_tasks: TaskTracker::new(),
            housekeeping: TaskTracker::new(),
            stop_governor: CancellationToken::new(),
            next_instance: 1,
            config: None,
            exporters: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            receivers: BTreeMap::new(),
        };
        match graph.apply(config).await {
            Ok(_) => Ok(graph),
            Err(e) => {
                graph.shutdown(Duration::from_secs(5)).await;
                Err(e.into_inner())
            }
        }
    }

    /// The config the graph runs.
    pub fn config(&self) -> Option<&Arc<Config>> {
        self.config.as_ref()
    }

    /// Makes the graph run `new`, changing only what differs from what runs.
    pub async fn apply(&mut self, new: Arc<Config>) -> Result<Changes, ApplyError> {
        self.governor.begin();
        let mut staged = Staged::default();
        if let Err(e) = self.prepare(&new, &mut staged).await {
            self.abandon(staged);
            self.governor.rollback();
            return Err(ApplyError::Prepare(e));
        }
        let (changes, failed) = self.commit(&new, staged).await;
        self.config = Some(new);
        match failed {
            Some(e) => Err(ApplyError::Commit(e)),
            None => Ok(changes),
        }
    }

    fn instance(&mut self) -> u64 {
        self.next_instance += 1;
        self.next_instance
    }

    async fn prepare(&mut self, new: &Config, staged: &mut Staged) -> Result<(), StartError> {
        let pipelines = &new.service.pipelines;
        let fingerprint = |kind: Kind, id: &ComponentId| new.fingerprint_of(kind, id).unwrap_or_default();

        // 1. Exporters, one instance per id however many pipelines use it.
        let mut inputs: BTreeMap<&ComponentId, ExporterInput> = BTreeMap::new();
        for id in pipelines.values().flat_map(|p| &p.exporters) {
            let Some(exporter_config) = new.exporters.get(id) else {
                continue;
            };
            if inputs.contains_key(id) {
                continue;
            }
            staged.exporters_used.insert(id.clone());
            let fingerprint = fingerprint(Kind::Exporter, id);
            if let Some(running) = self.exporters.get(id)
                && running.fingerprint == fingerprint
            {
                inputs.insert(id, running.input.clone());
                continue;
            }
            let instance = self.instance();
            let owner = Owner { listeners: &self.listeners, instance };
            self.telemetry.statuses.reset(&format!("exporter:{id}"));
            let env = crate::exporters::Environment {
                telemetry: &self.telemetry,
                give_up: self.give_up.clone(),
                tracker: &self.exporter_tasks,
                extensions: &new.extensions,
                owner,
                storage_dir: &self.storage_dir,
            };
            let started = crate::exporters::start(id, exporter_config, env);
            let input = match started {
                Ok(input) => input,
                Err(source) => {
                    self.listeners.release(instance);
                    return Err(StartError::Exporter { id: id.clone(), source });
                }
            };
            inputs.insert(id, input.clone());
            staged.exporters.insert(id.clone(), ExporterNode { fingerprint, instance, input });
        }

        // 2. Every pipeline's input channel, so connectors can point at them: the
        //    running one for a pipeline that stays.
        let mut senders: BTreeMap<&PipelineId, mpsc::Sender<Batch>> = BTreeMap::new();
        let mut fresh = BTreeMap::new();
        for id in pipelines.keys() {
            match self.pipelines.get(id) {
                Some(running) => {
                    senders.insert(id, running.input.clone());
                }
                None => {
                    let (tx, rx) = mpsc::channel(PIPELINE_INPUT_CAPACITY);
                    let (control_tx, control_rx) = mpsc::channel(1);
                    senders.insert(id, tx.clone());
                    fresh.insert(id, (tx, rx, control_tx, control_rx));
                }
            }
        }

        // 3. Each pipeline's chain and outputs.
        let mut waits: BTreeMap<&PipelineId, Waits> = BTreeMap::new();
        let mut feeds: Vec<(&PipelineId, &PipelineId)> = Vec::new();
        let mut gates: BTreeMap<&PipelineId, Option<Gate>> = BTreeMap::new();
        let mut built = Vec::new();
        for (pipeline_id, pipeline) in pipelines {
            let mut outputs = Vec::new();
            let mut own_waits = Waits::default();
            for id in &pipeline.exporters {
                if let Some(input) = inputs.get(id) {
                    own_waits.result |= input.waits_for_result();
                    own_waits.queue |= input.waits_for_queue();
                    outputs.push(Output::Exporter(Box::new(input.clone())));
                } else if let Some(connector) = new.connectors.get(id) {
                    // The pipelines that receive from it, same signal.
                    let joined = |other_id: &PipelineId| {
                        other_id.signal == pipeline_id.signal
                            && pipelines.get(other_id).is_some_and(|other| other.receivers.contains(id))
                    };
                    for other_id in pipelines.keys().filter(|p| joined(p)) {
                        feeds.push((pipeline_id, other_id));
                    }
                    match connector {
                        crate::connectors::ConnectorConfig::Forward(_) => {
                            for other_id in pipelines.keys().filter(|p| joined(p)) {
                                outputs.extend(senders.get(other_id).cloned().map(Output::Pipeline));
                            }
                        }
                        crate::connectors::ConnectorConfig::Routing(routing) => {
                            let input =
                                |target: &PipelineId| if joined(target) { senders.get(target).cloned() } else { None };
                            let router = crate::connectors::routing::Router::new(
                                id,
                                routing,
                                pipeline_id.signal,
                                &input,
                                &self.telemetry,
                            )
                            .map_err(|source| StartError::Connector { id: id.clone(), source })?;
                            outputs.push(Output::Router(Box::new(router)));
                        }
                    }
                }
            }
            waits.insert(pipeline_id, own_waits);
            let env = crate::processors::Environment {
                telemetry: &self.telemetry,
                governor: &self.governor,
                stores: &self.stores,
                pod_watches: &self.pod_watches,
                storage_dir: &self.storage_dir,
                extensions: &new.extensions,
                tasks: &self.pipeline_tasks,
            };
            let running = self.pipelines.get(pipeline_id).map(|p| p.processors.as_slice()).unwrap_or_default();
            let mut taken = vec![false; running.len()];
            let mut slots = Vec::with_capacity(pipeline.processors.len());
            let mut listed = Vec::with_capacity(pipeline.processors.len());
            for id in &pipeline.processors {
                let Some(processor_config) = new.processors.get(id) else {
                    continue;
                };
                let fingerprint = fingerprint(Kind::Processor, id);
                listed.push((id.clone(), fingerprint));
                let same = (0..running.len()).find(|&i| !taken[i] && running[i] == (id.clone(), fingerprint));
                match same {
                    Some(i) => {
                        taken[i] = true;
                        self.governor.keep(id);
                        slots.push(Slot::Keep(i));
                    }
                    None => {
                        let processor = crate::processors::build(id, processor_config, &env)
                            .map_err(|source| StartError::Processor { id: id.clone(), source })?;
                        slots.push(Slot::New(processor));
                    }
                }
            }
            let limiters = pipeline.processors.iter().filter_map(|id| self.governor.find(id)).collect();
            gates.insert(pipeline_id, self.governor.gate(limiters));
            built.push((pipeline_id, slots, outputs, listed));
        }
        // Connector chains have no loops (validated), so this settles within as many rounds.
        for _ in 0..pipelines.len() {
            for (from, to) in &feeds {
                let downstream = waits.get(to).copied().unwrap_or_default();
                let upstream = waits.entry(from).or_default();
                upstream.result |= downstream.result;
                upstream.queue |= downstream.queue;
                let downstream = gates.get(to).cloned().flatten();
                let upstream = gates.entry(from).or_default();
                *upstream = Gate::join(upstream.take(), downstream);
            }
        }

        // 4. New pipelines run now, so a receiver started next has somewhere to send
        //    and whatever it takes drains even if a later start fails.
        for (pipeline_id, slots, outputs, listed) in built {
            match fresh.remove(pipeline_id) {
                Some((input, rx, control, control_rx)) => {
                    let processors = slots
                        .into_iter()
                        .filter_map(|slot| match slot {
                            Slot::New(processor) => Some(processor),
                            Slot::Keep(_) => None,
                        })
                        .collect();
                    let metrics = self.telemetry.pipeline(pipeline_id);
                    self.pipeline_tasks.spawn(run::run_pipeline(
                        pipeline_id.clone(),
                        rx,
                        control_rx,
                        processors,
                        outputs,
                        metrics,
                    ));
                    staged.pipelines.insert(pipeline_id.clone(), PipelineNode { input, control, processors: listed });
                }
                None => {
                    staged.rewires.insert(pipeline_id.clone(), Rewiring { slots, outputs, listed });
                }
            }
        }

        // 5. Receivers last, so nothing is accepted before it has somewhere to go.
        let mut routes: BTreeMap<&ComponentId, ConsumersBuilder> = BTreeMap::new();
        // One door per receiver and signal, over the limiters of all its pipelines.
        let mut doors: BTreeMap<(&ComponentId, crate::pdata::Signal), Option<Gate>> = BTreeMap::new();
        for (pipeline_id, pipeline) in pipelines {
            for id in &pipeline.receivers {
                if new.receivers.contains_key(id)
                    && let Some(tx) = senders.get(pipeline_id)
                {
                    let waits = waits.get(pipeline_id).copied().unwrap_or_default();
                    routes.entry(id).or_default().add(pipeline_id.signal, tx.clone(), waits);
                    let gate = gates.get(pipeline_id).cloned().flatten();
                    let door = doors.entry((id, pipeline_id.signal)).or_default();
                    *door = Gate::join(door.take(), gate);
                }
            }
        }
        for ((id, signal), gate) in doors {
            if let Some(route) = routes.get_mut(id) {
                route.door(signal, gate.map(|g| Arc::new(g) as Arc<dyn Door>));
            }
        }
        drop(senders);
        for (id, route) in routes {
            let consumers = route.build();
            let Some(receiver_config) = new.receivers.get(id) else {
                continue;
            };
            let fingerprint = fingerprint(Kind::Receiver, id);
            match self.receivers.get(id) {
                Some(running) if running.fingerprint == fingerprint => {
                    staged.consumers.insert(id.clone(), consumers);
                }
                Some(_) if receiver_config.exclusive() => {
                    staged.consumers.insert(id.clone(), consumers);
                    staged.swaps.push(id.clone());
                }
                _ => {
                    let node = self.start_receiver(new, id, fingerprint, consumers).await?;
                    staged.receivers.insert(id.clone(), node);
                }
            }
        }
        Ok(())
    }

    async fn start_receiver(
        &mut self,
        new: &Config,
        id: &ComponentId,
        fingerprint: Fingerprint,
        consumers: Consumers,
    ) -> Result<ReceiverNode, StartError> {
        let fail = |source| StartError::Receiver { id: id.clone(), source };
        let Some(receiver_config) = new.receivers.get(id) else {
            return Err(fail(crate::receivers::StartError::Config("not defined".into())));
        };
        // State goes to the named file_storage extension's directory, or --storage-dir.
        let storage = crate::config::StorageUser::storage(receiver_config)
            .and_then(|name| ComponentId::parse(name).ok())
            .and_then(|ext| new.extensions.get(&ext));
        let storage_dir = match storage {
            Some(crate::extensions::ExtensionConfig::FileStorage(fs)) => {
                fs.prepare(&self.storage_dir).map_err(|e| fail(crate::receivers::StartError::Storage(e)))?
            }
            _ => self.storage_dir.clone(),
        };
        let instance = self.instance();
        let stop = self.stop_receivers.child_token();
        let tasks = TaskTracker::new();
        let env = crate::receivers::Environment {
            telemetry: &self.telemetry,
            storage_dir: &storage_dir,
            extensions: &new.extensions,
            owner: Owner { listeners: &self.listeners, instance },
        };
        let started = crate::receivers::start(id, receiver_config, consumers.clone(), env, stop.clone(), &tasks).await;
        tasks.close();
        if let Err(source) = started {
            stop.cancel();
            self.listeners.release(instance);
            return Err(fail(source));
        }
        let waited = tasks.clone();
        self.receiver_tasks.spawn(async move { waited.wait().await });
        Ok(ReceiverNode { fingerprint, instance, stop, tasks, consumers })
    }

    /// Stops what [`Graph::prepare`] started; the running graph never saw it.
    fn abandon(&mut self, staged: Staged) {
        for node in staged.receivers.into_values() {
            self.retire_receiver(node);
        }
        for node in staged.exporters.into_values() {
            self.listeners.release(node.instance);
        }
        // New pipelines end once the senders dropped here and the stopped receivers'
        // are gone, after draining what they took into their outputs.
    }

    fn retire_receiver(&self, node: ReceiverNode) {
        node.stop.cancel();
        self.listeners.release(node.instance);
    }

    async fn commit(&mut self, new: &Config, staged: Staged) -> (Changes, Option<StartError>) {
        let Staged { exporters, exporters_used, pipelines, rewires, receivers, consumers, swaps } = staged;
        let mut changes = Changes::default();
        let name = |kind: &str, id: &dyn std::fmt::Display| format!("{kind}/{id}");

        // 1. Receivers that are gone or replaced stop first; what they took drains
        //    through the pipelines it went to.
        let started_now: BTreeSet<ComponentId> = receivers.keys().cloned().collect();
        for (id, node) in receivers {
            match self.receivers.insert(id.clone(), node) {
                Some(old) => {
                    self.retire_receiver(old);
                    changes.restarted.push(name("receiver", &id));
                }
                None => changes.started.push(name("receiver", &id)),
            }
        }
        let gone: Vec<ComponentId> = self
            .receivers
            .keys()
            .filter(|id| !started_now.contains(*id) && !consumers.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(old) = self.receivers.remove(&id) {
                self.retire_receiver(old);
                changes.stopped.push(name("receiver", &id));
            }
        }

        // 2. Pipelines: new ones run already; those that stay take their new chain
        //    between two batches; removed ones drain once nothing feeds them.
        for (id, node) in pipelines {
            changes.started.push(name("pipeline", &id));
            for (processor, _) in &node.processors {
                changes.started.push(format!("processor/{processor}@{id}"));
            }
            self.pipelines.insert(id, node);
        }
        for (id, Rewiring { slots, outputs, listed }) in rewires {
            let Some(node) = self.pipelines.get_mut(&id) else {
                continue;
            };
            let kept: BTreeSet<usize> =
                slots.iter().filter_map(|s| if let Slot::Keep(i) = s { Some(*i) } else { None }).collect();
            for (i, (processor, _)) in node.processors.iter().enumerate() {
                let label = format!("processor/{processor}@{id}");
                if kept.contains(&i) {
                    changes.kept.push(label);
                } else if listed.iter().any(|(p, _)| p == processor) {
                    changes.restarted.push(label);
                } else {
                    changes.stopped.push(label);
                }
            }
            for (j, (processor, _)) in listed.iter().enumerate() {
                let new_here = matches!(slots.get(j), Some(Slot::New(_)));
                if new_here && !node.processors.iter().any(|(p, _)| p == processor) {
                    changes.started.push(format!("processor/{processor}@{id}"));
                }
            }
            let (done, answered) = oneshot::channel();
            if node.control.send(Rewire { processors: slots, outputs, done }).await.is_ok() {
                let _ = answered.await;
            }
            node.processors = listed;
            changes.kept.push(name("pipeline", &id));
        }
        let removed: Vec<PipelineId> =
            self.pipelines.keys().filter(|id| !new.service.pipelines.contains_key(*id)).cloned().collect();
        for id in removed {
            self.pipelines.remove(&id);
            changes.stopped.push(name("pipeline", &id));
        }

        // 3. Receivers that stay point at the new pipelines.
        let mut swapped = Vec::new();
        for (id, routes) in consumers {
            if swaps.contains(&id) {
                swapped.push((id, routes));
            } else if let Some(node) = self.receivers.get(&id) {
                node.consumers.rewire(&routes);
                changes.kept.push(name("receiver", &id));
            }
        }

        // 4. Receivers that cannot run twice: the old one stops (committing its
        //    offsets), then the new one starts.
        let mut failed = None;
        for (id, routes) in swapped {
            if let Some(old) = self.receivers.remove(&id) {
                let tasks = old.tasks.clone();
                self.retire_receiver(old);
                if tokio::time::timeout(SWAP_STOP_TIMEOUT, tasks.wait()).await.is_err() {
                    warn!(receiver = %id, timeout = ?SWAP_STOP_TIMEOUT,
                        "The receiver did not stop in time during the reload; its replacement starts anyway and may read some data again.");
                }
            }
            let fingerprint = new.fingerprint_of(Kind::Receiver, &id).unwrap_or_default();
            match self.start_receiver(new, &id, fingerprint, routes).await {
                Ok(node) => {
                    self.receivers.insert(id.clone(), node);
                    changes.restarted.push(name("receiver", &id));
                }
                Err(e) => {
                    error!(receiver = %id, error = %e, "The changed receiver cannot start.");
                    changes.stopped.push(name("receiver", &id));
                    failed.get_or_insert(e);
                }
            }
        }

        // 5. Exporters: changed and removed ones drain their queues in the background
        //    once the pipelines that fed them have let go.
        for (id, node) in exporters {
            match self.exporters.insert(id.clone(), node) {
                Some(old) => {
                    self.listeners.release(old.instance);
                    changes.restarted.push(name("exporter", &id));
                }
                None => changes.started.push(name("exporter", &id)),
            }
        }
        let removed: Vec<ComponentId> =
            self.exporters.keys().filter(|id| !exporters_used.contains(*id)).cloned().collect();
        for id in removed {
            if let Some(old) = self.exporters.remove(&id) {
                self.listeners.release(old.instance);
                changes.stopped.push(name("exporter", &id));
            }
        }
        for id in self.exporters.keys() {
            let label = name("exporter", id);
            if !changes.started.contains(&label) && !changes.restarted.contains(&label) {
                changes.kept.push(label);
            }
        }

        // 6. The governor watches the new limiters.
        self.governor.commit();
        self.stop_governor.cancel();
        self.stop_governor = CancellationToken::new();
        if !self.governor.is_empty() {
            self.governor.prime();
            self.housekeeping.spawn(self.governor.clone().run(self.stop_governor.clone()));
        }
        (changes, failed)
    }

    /// Resolves once receivers, then pipelines, then exporters have all finished.
    async fn drained(&self) {
        self.receiver_tasks.wait().await;
        self.pipeline_tasks.wait().await;
        self.exporter_tasks.wait().await;
    }

    /// Stops receivers, drains pipelines and exporters. Exports still failing when
    /// `deadline` passes are dropped (counted and logged) so shutdown is bounded.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.stop_receivers.cancel();
        for (_, node) in std::mem::take(&mut self.receivers) {
            self.retire_receiver(node);
        }
        self.pipelines.clear();
        self.exporters.clear();
        self.receiver_tasks.close();
        self.pipeline_tasks.close();
        self.exporter_tasks.close();
        if tokio::time::timeout(deadline, self.drained()).await.is_err() {
            error!(deadline = ?deadline, "Shutdown deadline passed with data still queued; dropping what cannot be exported.");
            self.give_up.cancel();
            if tokio::time::timeout(Duration::from_secs(5), self.drained()).await.is_err() {
                error!("Components did not stop within 5s after the shutdown deadline.");
            }
        } else {
            info!("Pipelines drained.");
        }
        self.stop_governor.cancel();
        self.housekeeping.close();
        self.housekeeping.wait().await;
    }
}
