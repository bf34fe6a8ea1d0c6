//! The pipeline graph built from a config: exporters (one instance per id, each with
//! its queue), one task per pipeline running its processors and fanning out, and
//! receivers (one instance per id, fanning out to every pipeline that lists them).
//!
//! Everything starts downstream first and stops upstream first: stopping receivers
//! drops their senders, each pipeline drains and drops its exporter senders, and each
//! exporter drains its queue. No stage ever stops while another still feeds it.

mod consumer;
pub mod governor;
mod run;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

pub use consumer::{Consumer, Consumers, ConsumersBuilder, Refused, Waits};

use crate::config::{ComponentId, Config, PipelineId};
use crate::pdata::Batch;
use crate::telemetry::Telemetry;

/// Batches waiting between receivers and a pipeline's processors. Small on purpose:
/// data waits in exporter queues, which are sized and measured; this is only slack.
pub const PIPELINE_INPUT_CAPACITY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("exporter `{id}`: {source}")]
    Exporter { id: ComponentId, source: crate::exporters::BuildError },
    #[error("receiver `{id}`: {source}")]
    Receiver { id: ComponentId, source: crate::receivers::StartError },
    #[error("connector `{id}`: {source}")]
    Connector { id: ComponentId, source: crate::connectors::routing::RouterError },
    #[error("processor `{id}`: {source}")]
    Processor { id: ComponentId, source: crate::processors::BuildError },
}

/// A running graph.
pub struct Running {
    stop_receivers: CancellationToken,
    receivers: TaskTracker,
    pipelines: TaskTracker,
    exporters: TaskTracker,
    give_up: CancellationToken,
    /// The memory governor's task: runs until everything has drained.
    housekeeping: TaskTracker,
    stop_housekeeping: CancellationToken,
}

/// Builds and starts the graph, downstream first. On error, what was started is
/// stopped again before returning.
pub async fn start(config: &Config, telemetry: &Arc<Telemetry>, storage_dir: &Path) -> Result<Running, StartError> {
    let running = Running {
        stop_receivers: CancellationToken::new(),
        receivers: TaskTracker::new(),
        pipelines: TaskTracker::new(),
        exporters: TaskTracker::new(),
        give_up: CancellationToken::new(),
        housekeeping: TaskTracker::new(),
        stop_housekeeping: CancellationToken::new(),
    };
    match wire(config, telemetry, storage_dir, &running).await {
        Ok(()) => Ok(running),
        Err(e) => {
            running.shutdown(Duration::from_secs(5)).await;
            Err(e)
        }
    }
}

async fn wire(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    storage_dir: &Path,
    running: &Running,
) -> Result<(), StartError> {
    let pipelines = &config.service.pipelines;

    // 1. Exporters, one instance per id however many pipelines use it.
    let mut exporters: BTreeMap<&ComponentId, crate::exporters::helper::ExporterInput> = BTreeMap::new();
    for pipeline in pipelines.values() {
        for id in &pipeline.exporters {
            let Some(exporter_config) = config.exporters.get(id) else {
                continue;
            };
            if exporters.contains_key(id) {
                continue;
            }
            let sender = crate::exporters::start(
                id,
                exporter_config,
                telemetry,
                running.give_up.clone(),
                &running.exporters,
                &config.extensions,
            )
            .map_err(|source| StartError::Exporter { id: id.clone(), source })?;
            exporters.insert(id, sender);
        }
    }

    // 2. Every pipeline's input channel, so connectors can point at them.
    let mut inputs: BTreeMap<&PipelineId, (mpsc::Sender<Batch>, mpsc::Receiver<Batch>)> =
        pipelines.keys().map(|id| (id, mpsc::channel(PIPELINE_INPUT_CAPACITY))).collect();
    let sender_of = |inputs: &BTreeMap<&PipelineId, (mpsc::Sender<Batch>, mpsc::Receiver<Batch>)>, id: &PipelineId| {
        inputs.get(id).map(|(tx, _)| tx.clone())
    };

    // 3. Pipelines: processors, then fan-out to exporters and connected pipelines.
    let mut tasks = Vec::new();
    // Whether a pipeline's sources wait for the export's outcome: an exporter has no
    // queue (or `wait_for_result`), here or in a pipeline a connector feeds.
    let mut waits: BTreeMap<&PipelineId, Waits> = BTreeMap::new();
    let mut feeds: Vec<(&PipelineId, &PipelineId)> = Vec::new();
    let governor = governor::Governor::new();
    let stores = crate::processors::importance::Stores::default();
    // The door of each pipeline: its own memory_limiters, and (below) those of the
    // pipelines a connector feeds from it.
    let mut gates: BTreeMap<&PipelineId, Option<governor::Gate>> = BTreeMap::new();
    for (pipeline_id, pipeline) in pipelines {
        let mut outputs = Vec::new();
        let mut own_waits = Waits::default();
        for id in &pipeline.exporters {
            if let Some(input) = exporters.get(id) {
                own_waits.result |= input.waits_for_result();
                own_waits.queue |= input.waits_for_queue();
                outputs.push(run::Output::Exporter(Box::new(input.clone())));
            } else if let Some(connector) = config.connectors.get(id) {
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
                            outputs.extend(sender_of(&inputs, other_id).map(run::Output::Pipeline));
                        }
                    }
                    crate::connectors::ConnectorConfig::Routing(routing) => {
                        let input = |target: &PipelineId| {
                            if joined(target) { sender_of(&inputs, target) } else { None }
                        };
                        let router =
                            crate::connectors::routing::Router::new(id, routing, pipeline_id.signal, &input, telemetry)
                                .map_err(|source| StartError::Connector { id: id.clone(), source })?;
                        outputs.push(run::Output::Router(Box::new(router)));
                    }
                }
            }
        }
        waits.insert(pipeline_id, own_waits);
        let env = crate::processors::Environment {
            telemetry,
            governor: &governor,
            stores: &stores,
            storage_dir,
            extensions: &config.extensions,
            tasks: &running.pipelines,
        };
        let mut processors = Vec::with_capacity(pipeline.processors.len());
        for id in &pipeline.processors {
            if let Some(c) = config.processors.get(id) {
                let built = crate::processors::build(id, c, &env)
                    .map_err(|source| StartError::Processor { id: id.clone(), source })?;
                processors.push(built);
            }
        }
        let limiters = pipeline.processors.iter().filter_map(|id| governor.find(id)).collect();
        gates.insert(pipeline_id, governor.gate(limiters));
        tasks.push((pipeline_id.clone(), processors, outputs));
    }
    drop(exporters);
    // Connector chains have no loops (validated), so this settles within as many rounds.
    for _ in 0..pipelines.len() {
        for (from, to) in &feeds {
            let downstream = waits.get(to).copied().unwrap_or_default();
            let upstream = waits.entry(from).or_default();
            upstream.result |= downstream.result;
            upstream.queue |= downstream.queue;
            let downstream = gates.get(to).cloned().flatten();
            let upstream = gates.entry(from).or_default();
            *upstream = governor::Gate::join(upstream.take(), downstream);
        }
    }
    let mut receiver_consumers: BTreeMap<&ComponentId, consumer::ConsumersBuilder> = BTreeMap::new();
    for (pipeline_id, pipeline) in pipelines {
        for id in &pipeline.receivers {
            if config.receivers.contains_key(id)
                && let Some(tx) = sender_of(&inputs, pipeline_id)
            {
                let waits = waits.get(pipeline_id).copied().unwrap_or_default();
                let gate = gates.get(pipeline_id).cloned().flatten();
                receiver_consumers.entry(id).or_default().add(pipeline_id.signal, tx, waits, gate);
            }
        }
    }
    for (pipeline_id, processors, outputs) in tasks {
        let Some((_, rx)) = inputs.remove(&pipeline_id) else {
            continue;
        };
        let metrics = telemetry.pipeline(&pipeline_id);
        running.pipelines.spawn(run::run_pipeline(pipeline_id, rx, processors, outputs, metrics));
    }
    drop(inputs);
    if !governor.is_empty() {
        governor.prime();
        running.housekeeping.spawn(governor.clone().run(running.stop_housekeeping.clone()));
    }

    // 4. Receivers last, so nothing is accepted before it has somewhere to go.
    for (id, consumers) in receiver_consumers {
        let consumers = consumers.build();
        let Some(receiver_config) = config.receivers.get(id) else {
            continue;
        };
        // State goes to the named file_storage extension's directory, or --storage-dir.
        let storage = crate::config::StorageUser::storage(receiver_config)
            .and_then(|name| ComponentId::parse(name).ok())
            .and_then(|ext| config.extensions.get(&ext));
        let receiver_storage = match storage {
            Some(crate::extensions::ExtensionConfig::FileStorage(fs)) => fs.prepare(storage_dir).map_err(|e| {
                StartError::Receiver { id: id.clone(), source: crate::receivers::StartError::Storage(e) }
            })?,
            _ => storage_dir.to_path_buf(),
        };
        crate::receivers::start(
            id,
            receiver_config,
            consumers,
            crate::receivers::Environment { telemetry, storage_dir: &receiver_storage, extensions: &config.extensions },
            running.stop_receivers.clone(),
            &running.receivers,
        )
        .await
        .map_err(|source| StartError::Receiver { id: id.clone(), source })?;
    }
    Ok(())
}

impl Running {
    /// Resolves once receivers, then pipelines, then exporters have all finished.
    async fn drained(&self) {
        self.receivers.wait().await;
        self.pipelines.wait().await;
        self.exporters.wait().await;
    }

    /// Stops receivers, drains pipelines and exporters. Exports still failing when
    /// `deadline` passes are dropped (counted and logged) so shutdown is bounded.
    pub async fn shutdown(self, deadline: Duration) {
        self.stop_receivers.cancel();
        self.receivers.close();
        self.pipelines.close();
        self.exporters.close();
        if tokio::time::timeout(deadline, self.drained()).await.is_err() {
            error!(deadline = ?deadline, "Shutdown deadline passed with data still queued; dropping what cannot be exported.");
            self.give_up.cancel();
            let rest = async {
                self.receivers.wait().await;
                self.pipelines.wait().await;
                self.exporters.wait().await;
            };
            if tokio::time::timeout(Duration::from_secs(5), rest).await.is_err() {
                error!("Components did not stop within 5s after the shutdown deadline.");
            }
        } else {
            info!("Pipelines drained.");
        }
        self.stop_housekeeping.cancel();
        self.housekeeping.close();
        self.housekeeping.wait().await;
    }
}
