//! One pipeline's task: take batches from the input channel, run the processors in
//! order (calling back those with deadlines), fan out to exporter queues and
//! connected pipelines. A connected pipeline's full input is waited for
//! (backpressure); an exporter's full queue is its own business
//! ([`ExporterInput::send`]), so one slow exporter never stalls the others.
//!
//! A reload reaches a running pipeline as a [`Rewire`] between two batches: the
//! processors it no longer has are flushed through the old chain to the old
//! outputs, the ones it keeps go on with their state, and the new chain and outputs
//! take over.

use std::future::pending;

use tokio::sync::{mpsc, oneshot};
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

/// A running pipeline's new processors and outputs.
pub(super) struct Rewire {
    pub processors: Vec<Slot>,
    pub outputs: Vec<Output>,
    /// Answered once the new chain is in place.
    pub done: oneshot::Sender<()>,
}

/// One place in a rewired chain.
pub(super) enum Slot {
    /// The running chain's processor at this index, with its state.
    Keep(usize),
    New(Box<dyn Processor>),
}

pub(super) async fn run_pipeline(
    id: PipelineId,
    mut input: mpsc::Receiver<Batch>,
    mut control: mpsc::Receiver<Rewire>,
    mut processors: Vec<Box<dyn Processor>>,
    mut outputs: Vec<Output>,
    metrics: PipelineMetrics,
) {
    let mut ready = Vec::new();
    // The graph dropping its control handle is no reason to stop: the input decides.
    let mut controlled = true;
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
            rewire = control.recv(), if controlled => match rewire {
                Some(rewire) => {
                    let Rewire { processors: slots, outputs: new_outputs, done } = rewire;
                    let old_outputs = std::mem::replace(&mut outputs, new_outputs);
                    rewire_chain(&id, &mut processors, slots, old_outputs, &metrics).await;
                    let _ = done.send(());
                    continue;
                }
                None => controlled = false,
            },
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

/// Installs a new chain: flushes the processors not kept, in order, through the old
/// chain to `old_outputs`, then puts the kept ones (with their state) and the new ones
/// in their new places.
async fn rewire_chain(
    id: &PipelineId,
    processors: &mut Vec<Box<dyn Processor>>,
    slots: Vec<Slot>,
    mut old_outputs: Vec<Output>,
    metrics: &PipelineMetrics,
) {
    let kept: Vec<usize> = slots.iter().filter_map(|s| if let Slot::Keep(i) = s { Some(*i) } else { None }).collect();
    let mut ready = Vec::new();
    for i in 0..processors.len() {
        if !kept.contains(&i) {
            let mut out = Vec::new();
            processors[i].flush(&mut out);
            run_from(processors, i + 1, out, &mut ready);
        }
    }
    for batch in ready {
        metrics.items_out.inc_by(batch.payload.item_count() as u64);
        fan_out(id, &mut old_outputs, batch).await;
    }
    let mut old: Vec<Option<Box<dyn Processor>>> = processors.drain(..).map(Some).collect();
    for slot in slots {
        match slot {
            Slot::Keep(i) => processors.extend(old.get_mut(i).and_then(Option::take)),
            Slot::New(processor) => processors.push(processor),
        }
    }
    debug!(pipeline = %id, processors = processors.len(), "Pipeline rewired.");
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
