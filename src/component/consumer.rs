//! The edge into pipelines: a receiver hands each batch to every pipeline that lists
//! it, through their bounded input channels, and hears why one was not taken.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::pdata::{Batch, Signal};

/// Why a batch was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A pipeline's input is full: backpressure. The sender should retry later.
    #[error("the pipeline is full")]
    Full,
    /// The pipeline is shutting down.
    #[error("the pipeline is shutting down")]
    Closed,
    /// Memory is at a `memory_limiter`'s soft limit: backpressure, as for a full pipeline.
    #[error("memory is at the limit")]
    Memory,
}

/// What may hold a source back before its batch enters the pipelines: the memory
/// governor's say, when a `memory_limiter` is behind them.
pub trait Door: Send + Sync + std::fmt::Debug {
    /// Whether a batch of `items` must be refused now (and counted there as refused).
    fn refuses(&self, signal: Signal, items: u64) -> bool;
    /// Resolves once the door would take a batch.
    fn open(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The input channels of every pipeline that takes one signal from one source.
///
/// A handle: clones share one route, which a reload replaces in place
/// ([`Consumers::rewire`]), so a receiver keeps its sockets and files while the
/// pipelines behind it change.
#[derive(Clone, Debug, Default)]
pub struct Consumer {
    route: Arc<RwLock<Arc<Route>>>,
}

#[derive(Debug, Default)]
struct Route {
    targets: Vec<mpsc::Sender<Batch>>,
    waits_for_result: bool,
    waits_for_queue: bool,
    /// The memory governor's say, when a `memory_limiter` is behind these pipelines.
    door: Option<Arc<dyn Door>>,
}

impl Consumer {
    pub fn new(targets: Vec<mpsc::Sender<Batch>>) -> Consumer {
        Consumer::with_route(Route { targets, ..Route::default() })
    }

    fn with_route(route: Route) -> Consumer {
        Consumer { route: Arc::new(RwLock::new(Arc::new(route))) }
    }

    /// The route now. Read once per batch: a reload between two batches sends the
    /// second one the new way, never half of one each way.
    fn route(&self) -> Arc<Route> {
        self.route.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn replace(&self, route: Arc<Route>) {
        *self.route.write().unwrap_or_else(PoisonError::into_inner) = route;
    }

    /// Some exporter behind these pipelines has no queue (or `wait_for_result`): a
    /// source that answers a client waits for the export's outcome, as upstream.
    pub fn waits_for_result(&self) -> bool {
        self.route().waits_for_result
    }

    /// Some exporter behind these pipelines refuses its copy when its queue is full
    /// (`block_on_overflow: false`): a client waits until the batch is in the queues,
    /// so a refusal that reached no exporter is answered as one.
    pub fn waits_for_queue(&self) -> bool {
        self.route().waits_for_queue
    }

    /// No pipeline takes this signal from this source.
    pub fn is_empty(&self) -> bool {
        self.route().targets.is_empty()
    }

    /// All or nothing, without waiting: room is taken in every pipeline before the
    /// batch goes to any, so a refused batch reached none and a retry duplicates nothing.
    /// A refused batch's acknowledgements are marked failed.
    pub fn try_consume(&self, batch: Batch) -> Result<(), Refused> {
        let route = self.route();
        if let Some(door) = &route.door
            && door.refuses(batch.signal(), batch.payload.item_count() as u64)
        {
            batch.fail();
            return Err(Refused::Memory);
        }
        let mut permits = Vec::with_capacity(route.targets.len());
        for target in &route.targets {
            let refused = match target.try_reserve() {
                Ok(permit) => {
                    permits.push(permit);
                    continue;
                }
                Err(TrySendError::Full(())) => Refused::Full,
                Err(TrySendError::Closed(())) => Refused::Closed,
            };
            batch.fail();
            return Err(refused);
        }
        send_all(permits, batch);
        Ok(())
    }

    /// Waits for memory under the soft limit and room in every pipeline (backpressure
    /// for sources that can pause, such as a file tail), then sends.
    pub async fn consume(&self, batch: Batch) -> Result<(), Refused> {
        let route = self.route();
        if let Some(door) = &route.door {
            door.open().await;
        }
        let mut permits = Vec::with_capacity(route.targets.len());
        for target in &route.targets {
            match target.reserve().await {
                Ok(permit) => permits.push(permit),
                Err(_) => {
                    batch.fail();
                    return Err(Refused::Closed);
                }
            }
        }
        send_all(permits, batch);
        Ok(())
    }
}

/// Clones for all but the last permit, which takes the original.
fn send_all(permits: Vec<mpsc::Permit<'_, Batch>>, batch: Batch) {
    let last = permits.len().saturating_sub(1);
    let mut batch = Some(batch);
    for (i, permit) in permits.into_iter().enumerate() {
        let item = if i == last { batch.take() } else { batch.clone() };
        if let Some(item) = item {
            permit.send(item);
        }
    }
}

/// A source's consumers, one per signal.
#[derive(Clone, Debug, Default)]
pub struct Consumers {
    pub traces: Consumer,
    pub metrics: Consumer,
    pub logs: Consumer,
}

impl Consumers {
    pub fn get(&self, signal: Signal) -> &Consumer {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }

    /// Makes the routes; [`Consumers::build`] turns them into consumers.
    pub fn builder() -> ConsumersBuilder {
        ConsumersBuilder::default()
    }

    /// Points every handle of these consumers (the receiver's own clones too) at the
    /// routes of `new`.
    pub fn rewire(&self, new: &Consumers) {
        for signal in Signal::ALL {
            self.get(signal).replace(new.get(signal).route());
        }
    }
}

/// Routes being gathered for one source, a pipeline at a time.
#[derive(Debug, Default)]
pub struct ConsumersBuilder {
    traces: Route,
    metrics: Route,
    logs: Route,
}

impl ConsumersBuilder {
    fn route(&mut self, signal: Signal) -> &mut Route {
        match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        }
    }

    pub fn add(&mut self, signal: Signal, target: mpsc::Sender<Batch>, waits: Waits) {
        let route = self.route(signal);
        route.targets.push(target);
        route.waits_for_result |= waits.result;
        route.waits_for_queue |= waits.queue;
    }

    /// The door in front of this signal's pipelines, all of them together.
    pub fn door(&mut self, signal: Signal, door: Option<Arc<dyn Door>>) {
        self.route(signal).door = door;
    }

    pub fn build(self) -> Consumers {
        Consumers {
            traces: Consumer::with_route(self.traces),
            metrics: Consumer::with_route(self.metrics),
            logs: Consumer::with_route(self.logs),
        }
    }
}

/// What a client answered by a receiver waits for, from the exporters behind it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Waits {
    /// An exporter has no queue (or `wait_for_result`): the export's outcome.
    pub result: bool,
    /// An exporter's full queue refuses its copy: the batch reaching the queue.
    pub queue: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::split::tests::logs;

    #[tokio::test]
    async fn rewire_moves_every_clone_to_the_new_pipelines() {
        let (old_tx, mut old_rx) = mpsc::channel(4);
        let (new_tx, mut new_rx) = mpsc::channel(4);
        let mut builder = Consumers::builder();
        builder.add(Signal::Logs, old_tx, Waits::default());
        let consumers = builder.build();
        let receivers_copy = consumers.logs.clone();
        receivers_copy.try_consume(Batch::new(logs(&[&[1]]))).unwrap();
        let mut builder = Consumers::builder();
        builder.add(Signal::Logs, new_tx, Waits { result: true, queue: false });
        consumers.rewire(&builder.build());
        receivers_copy.try_consume(Batch::new(logs(&[&[2]]))).unwrap();
        assert!(receivers_copy.waits_for_result());
        assert_eq!(old_rx.recv().await.unwrap().payload.item_count(), 1);
        assert!(old_rx.recv().await.is_none(), "the old pipeline's input closes once nothing points at it");
        assert_eq!(new_rx.recv().await.unwrap().payload.item_count(), 2);
        assert!(consumers.traces.is_empty());
    }

    #[tokio::test]
    async fn refusal_reaches_no_pipeline() {
        let (tx_a, mut rx_a) = mpsc::channel(1);
        let (tx_b, mut rx_b) = mpsc::channel(2);
        let consumer = Consumer::new(vec![tx_a, tx_b]);
        consumer.try_consume(Batch::new(logs(&[&[1]]))).unwrap();
        // `a` is full now: the next batch must reach neither.
        assert_eq!(consumer.try_consume(Batch::new(logs(&[&[2]]))), Err(Refused::Full));
        assert_eq!(rx_a.recv().await.unwrap().payload.item_count(), 1);
        assert_eq!(rx_b.recv().await.unwrap().payload.item_count(), 1);
        assert!(rx_b.try_recv().is_err());
    }

    #[tokio::test]
    async fn refusal_fails_the_acks() {
        let (tx, _rx) = mpsc::channel(1);
        let consumer = Consumer::new(vec![tx]);
        consumer.try_consume(Batch::new(logs(&[&[1]]))).unwrap();
        let (ack, waiter) = crate::pdata::Ack::new();
        assert_eq!(consumer.try_consume(Batch::with_ack(logs(&[&[1]]), ack)), Err(Refused::Full));
        assert_eq!(waiter.wait().await.outcome, crate::pdata::AckOutcome::Failed);
    }

    #[tokio::test]
    async fn fan_out_shares_the_payload() {
        let (tx_a, mut rx_a) = mpsc::channel(1);
        let (tx_b, mut rx_b) = mpsc::channel(1);
        Consumer::new(vec![tx_a, tx_b]).consume(Batch::new(logs(&[&[3]]))).await.unwrap();
        let a = rx_a.recv().await.unwrap();
        let b = rx_b.recv().await.unwrap();
        assert!(std::sync::Arc::ptr_eq(&a.payload, &b.payload));
    }
}
