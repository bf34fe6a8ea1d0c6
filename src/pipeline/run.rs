//! One pipeline's task: take batches from the input channel, run the processors in
//! order (calling back those with deadlines), fan out to exporter queues and
//! connected pipelines. A connected pipeline's full input is waited for
//! (backpressure); an exporter's full queue is its own business
//! ([`ExporterInput::send`]), so one slow exporter never stalls the others.

use std::future::pending;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, error};

use crate::config::PipelineId;
use crate::connectors::routing::Router;
use crate::exporters::helper::ExporterInput;
use crate::pdata::Batch;
use crate::processors::Processor;
use crate::telemetry::PipelineMetrics;

/// Where a pipeline's output goes.
pub(super) enum Output {
    Exporter(Box<ExporterInput>),
    /// A connected pipeline's input (a forward connector).
    Pipeline(mpsc::Sender<Batch>),
    /// A routing connector: each route's part to its pipelines.
    Router(Box<Router>),
}

impl Output {
    async fn send(&mut self, batch: Batch) -> Result<(), Batch> {
        match self {
            Output::Exporter(input) => input.send(batch).await,
            Output::Pipeline(tx) => tx.send(batch).await.map_err(|e| e.0),
            Output::Router(router) => router.route(batch).await,
        }
    }
}

pub(super) async fn run_pipeline(
    id: PipelineId,
    mut input: mpsc::Receiver<Batch>,
    mut processors: Vec<Box<dyn Processor>>,
    mut outputs: Vec<Output>,
    metrics: PipelineMetrics,
) {
    let mut ready = Vec::new();
    loop {
        let deadline = processors.iter().filter_map(|p| p.deadline()).min();
        let timer = async {
            match deadline {
                Some(at) => sleep_until(at).await,
                None => pending().await,
            }
        };
        tokio::select! {
            biased;
            batch = input.recv() => match batch {
                Some(batch) => {
                    metrics.items_in.inc_by(batch.payload.item_count() as u64);
                    run_from(&mut processors, 0, vec![batch], &mut ready);
                }
                None => break,
            },
            _ = timer => {}
        }
        // Deadlines are checked after every batch too: under steady input the biased
        // select would never poll the timer, and a `timeout` must still fire.
        if deadline.is_some_and(|at| at <= Instant::now()) {
            let now = Instant::now();
            for i in 0..processors.len() {
                let mut out = Vec::new();
                processors[i].on_deadline(now, &mut out);
                if !out.is_empty() {
                    run_from(&mut processors, i + 1, out, &mut ready);
                }
            }
        }
        for batch in ready.drain(..) {
            metrics.items_out.inc_by(batch.payload.item_count() as u64);
            fan_out(&id, &mut outputs, batch).await;
        }
    }
    // Input closed: every source has stopped. Flush what processors hold, in order.
    for i in 0..processors.len() {
        let mut out = Vec::new();
        processors[i].flush(&mut out);
        run_from(&mut processors, i + 1, out, &mut ready);
    }
    for batch in ready.drain(..) {
        metrics.items_out.inc_by(batch.payload.item_count() as u64);
        fan_out(&id, &mut outputs, batch).await;
    }
    debug!(pipeline = %id, "Pipeline drained.");
}

/// Runs `batches` through `processors[start..]`, collecting what comes out in `ready`.
fn run_from(processors: &mut [Box<dyn Processor>], start: usize, batches: Vec<Batch>, ready: &mut Vec<Batch>) {
    let mut current = batches;
    for processor in processors.iter_mut().skip(start) {
        let mut next = Vec::with_capacity(current.len());
        for batch in current {
            processor.process(batch, &mut next);
        }
        current = next;
        if current.is_empty() {
            return;
        }
    }
    ready.extend(current);
}

/// Sends to every output; the last gets the original.
async fn fan_out(id: &PipelineId, outputs: &mut [Output], batch: Batch) {
    let Some((last, rest)) = outputs.split_last_mut() else {
        return;
    };
    for output in rest {
        if let Err(batch) = output.send(batch.clone()).await {
            lost(id, batch);
        }
    }
    if let Err(batch) = last.send(batch).await {
        lost(id, batch);
    }
}

/// Exporters outlive the pipelines that feed them, so this only happens on a bug.
fn lost(id: &PipelineId, batch: Batch) {
    batch.fail_with("a pipeline output closed early");
    error!(pipeline = %id, items = batch.payload.item_count(), "A pipeline output closed early; data lost.");
}
