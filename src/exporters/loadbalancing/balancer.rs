//! The running exporter: takes batches from the pipeline, cuts each by its routing
//! key and hands every part to its backend's `otlp` exporter, whose own queue and
//! retry deliver it. A backend that fails fills only its own queue; the others go
//! on. When the resolver's answer changes, the ring is rebuilt: new backends get an
//! exporter, and a removed one's input is dropped, so its queue drains and it stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::config::LoadBalancingConfig;
use super::resolver;
use super::ring::Ring;
use super::split::{Keying, split};
use crate::exporters::helper::{ExporterInput, Forwarded};
use crate::pdata::{Batch, Signal};
use crate::telemetry::ExporterMetrics;

/// Makes a backend's exporter from its resolved name.
pub(crate) type MakeBackend = Box<dyn Fn(&str) -> Result<ExporterInput, String> + Send>;

pub(crate) struct Balancer {
    pub id: crate::config::ComponentId,
    pub config: LoadBalancingConfig,
    pub make: MakeBackend,
    pub metrics: ExporterMetrics,
    pub ring: Ring,
    /// By the ring's backend index.
    pub backends: Vec<ExporterInput>,
    /// When a failure was last logged.
    pub warned: Option<Instant>,
}

impl Balancer {
    pub(crate) async fn run(mut self, mut input: Forwarded, mut resolved: watch::Receiver<Vec<String>>) {
        let mut watching = true;
        let first = resolved.borrow_and_update().clone();
        self.update(first);
        loop {
            tokio::select! {
                biased;
                changed = resolved.changed(), if watching => match changed {
                    Ok(()) => {
                        let list = resolved.borrow_and_update().clone();
                        self.update(list);
                    }
                    // A static list: it never changes.
                    Err(_) => watching = false,
                },
                batch = input.recv() => match batch {
                    Some(batch) => {
                        if self.ring.is_empty() && watching {
                            // The first DNS answer may still be on its way.
                            if let Ok(Ok(())) = tokio::time::timeout(resolver::FIRST_ANSWER, resolved.changed()).await {
                                let list = resolved.borrow_and_update().clone();
                                self.update(list);
                            }
                        }
                        self.route(batch).await;
                    }
                    None => break,
                },
            }
        }
        // Every input is gone: dropping the backends' inputs lets their queues drain.
    }

    fn update(&mut self, list: Vec<String>) {
        if list.as_slice() == self.ring.backends() {
            return;
        }
        let mut old: BTreeMap<String, ExporterInput> =
            self.ring.backends().iter().cloned().zip(self.backends.drain(..)).collect();
        let mut names = Vec::new();
        let mut inputs = Vec::new();
        for name in list {
            let input = match old.remove(&name) {
                Some(input) => input,
                None => match (self.make)(&name) {
                    Ok(input) => input,
                    Err(reason) => {
                        error!(exporter = %self.id, backend = %name, %reason, "loadbalancing: cannot make an exporter for this backend; it is left out.");
                        continue;
                    }
                },
            };
            names.push(name);
            inputs.push(input);
        }
        let removed: Vec<&String> = old.keys().collect();
        info!(exporter = %self.id, backends = ?names, ?removed, "loadbalancing: backends changed.");
        self.ring = Ring::new(names);
        self.backends = inputs;
    }

    async fn route(&mut self, batch: Batch) {
        let signal = batch.signal();
        if self.backends.is_empty() {
            self.fail(&batch, signal, "couldn't find the exporter for the endpoint \"\": the resolver has no backends");
            return;
        }
        let keying = Keying { key: self.config.key(signal), attributes: &self.config.routing_attributes };
        if self.backends.len() == 1 && keying.key.supports(signal) {
            if let Err(batch) = self.backends[0].send(batch).await {
                self.fail(&batch, signal, "the backend's exporter stopped");
            }
            return;
        }
        let Batch { payload, acks, metadata } = batch;
        let payload = Arc::try_unwrap(payload).unwrap_or_else(|shared| (*shared).clone());
        let parts = match split(payload, &keying, &self.ring) {
            Ok(parts) => parts,
            Err(reason) => {
                for ack in &acks {
                    ack.reject(None, &reason);
                }
                self.log(signal, &reason);
                return;
            }
        };
        for (b, part) in parts {
            let part = Batch { payload: Arc::new(part), acks: acks.clone(), metadata: metadata.clone() };
            let Some(backend) = self.backends.get(b) else { continue };
            if let Err(part) = backend.send(part).await {
                self.fail(&part, signal, "the backend's exporter stopped");
            }
        }
    }

    fn fail(&mut self, batch: &Batch, signal: Signal, reason: &str) {
        self.metrics.send_failed(signal).inc_by(batch.payload.item_count() as u64);
        batch.fail_with(reason);
        self.log(signal, reason);
    }

    fn log(&mut self, signal: Signal, reason: &str) {
        if self.warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            self.warned = Some(Instant::now());
            warn!(exporter = %self.id, %signal, reason, "loadbalancing: data not sent (logged every 10s).");
        }
    }
}
