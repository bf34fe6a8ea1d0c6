//! The `batch` processor: gathers batches until `send_batch_size` items or `timeout`,
//! and cuts anything larger than `send_batch_max_size`.

use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use serde::Deserialize;
use tokio::time::Instant;

use super::Processor;
use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::pdata::Batch;

pub const TYPE: &str = "batch";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Items (spans, data points, log records) that trigger a send. Default 8192.
    #[serde(default = "default_send_batch_size")]
    pub send_batch_size: usize,
    /// Largest batch sent; larger ones are split. 0 means no limit. Default 0.
    #[serde(default)]
    pub send_batch_max_size: usize,
    /// Longest time an item waits before its batch is sent. Default 200ms.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { send_batch_size: default_send_batch_size(), send_batch_max_size: 0, timeout: default_timeout() }
    }
}

fn default_send_batch_size() -> usize {
    8192
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_millis(200)
}

impl Validate for BatchConfig {
    fn validate(&self) -> Result<(), String> {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(format!(
                "send_batch_max_size ({}) must be 0 or at least send_batch_size ({})",
                self.send_batch_max_size, self.send_batch_size
            ));
        }
        Ok(())
    }
}

pub struct BatchProcessor {
    send_batch_size: usize,
    max_size: usize,
    timeout: Duration,
    /// What is gathered so far, with its item count and the acks of every part.
    pending: Option<Batch>,
    pending_items: usize,
    deadline: Option<Instant>,
    send_size: Histogram,
}

impl BatchProcessor {
    pub fn new(config: &BatchConfig, send_size: Histogram) -> BatchProcessor {
        BatchProcessor {
            send_batch_size: config.send_batch_size,
            max_size: config.send_batch_max_size,
            timeout: config.timeout.0,
            pending: None,
            pending_items: 0,
            deadline: None,
            send_size,
        }
    }

    fn emit(&mut self, batch: Batch, items: usize, out: &mut Vec<Batch>) {
        self.send_size.observe(items as f64);
        out.push(batch);
    }

    /// Cuts `send_batch_max_size` pieces off while the pending batch is larger.
    fn cut_over_max(&mut self, out: &mut Vec<Batch>) {
        if self.max_size == 0 {
            return;
        }
        while self.pending_items > self.max_size {
            let Some(pending) = self.pending.as_mut() else {
                return;
            };
            let front = Batch {
                payload: std::sync::Arc::new(pending.payload_mut().split_front(self.max_size)),
                acks: pending.acks.clone(),
            };
            self.pending_items -= self.max_size;
            let max = self.max_size;
            self.emit(front, max, out);
        }
    }

    /// Sends what is full; `send_batch_size: 0` means "only on timeout", as upstream.
    fn send_full(&mut self, out: &mut Vec<Batch>) {
        self.cut_over_max(out);
        if self.send_batch_size > 0 && self.pending_items >= self.send_batch_size {
            self.send_all(out);
        }
    }

    fn send_all(&mut self, out: &mut Vec<Batch>) {
        if let Some(batch) = self.pending.take() {
            let items = std::mem::take(&mut self.pending_items);
            self.emit(batch, items, out);
        }
        self.deadline = None;
    }
}

impl Processor for BatchProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        // Held for up to `timeout`: a client waiting for its answer has it now, as
        // upstream's batch processor answers on intake.
        batch.release_replies();
        let items = batch.payload.item_count();
        if items == 0 {
            return;
        }
        match self.pending.as_mut() {
            None => {
                self.pending = Some(batch);
                self.deadline = Some(Instant::now() + self.timeout);
            }
            Some(pending) => {
                let Batch { payload, acks } = batch;
                let payload = std::sync::Arc::try_unwrap(payload).unwrap_or_else(|shared| (*shared).clone());
                if let Err(other) = pending.payload_mut().append(payload) {
                    // Pipelines carry one signal, so this cannot happen; pass it on unmerged.
                    out.push(Batch { payload: std::sync::Arc::new(other), acks });
                    return;
                }
                pending.acks.extend(acks);
            }
        }
        self.pending_items += items;
        self.send_full(out);
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Vec<Batch>) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.cut_over_max(out);
            self.send_all(out);
        }
    }

    fn flush(&mut self, out: &mut Vec<Batch>) {
        self.cut_over_max(out);
        self.send_all(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{de::from_node, node::parse};
    use crate::pdata::split::tests::logs;
    use crate::pdata::{Ack, AckOutcome};

    fn processor(yaml: &str) -> BatchProcessor {
        let node = parse("t", yaml).unwrap();
        let config: BatchConfig = from_node(&node).unwrap();
        config.validate().unwrap();
        BatchProcessor::new(&config, Histogram::new([1.0]))
    }

    fn items(out: &[Batch]) -> Vec<usize> {
        out.iter().map(|b| b.payload.item_count()).collect()
    }

    #[test]
    fn config_defaults_match_upstream() {
        let config: BatchConfig = from_node(&parse("t", "").unwrap()).unwrap();
        assert_eq!(config, BatchConfig::default());
        assert_eq!(config.send_batch_size, 8192);
        assert_eq!(config.timeout.0, Duration::from_millis(200));
    }

    #[test]
    fn max_smaller_than_size_is_rejected() {
        let config: BatchConfig =
            from_node(&parse("t", "send_batch_size: 10\nsend_batch_max_size: 5\n").unwrap()).unwrap();
        assert!(config.validate().unwrap_err().contains("send_batch_max_size (5)"));
    }

    #[test]
    fn sends_at_size_and_splits_at_max() {
        let mut p = processor("send_batch_size: 4\nsend_batch_max_size: 5\n");
        let mut out = Vec::new();
        p.process(Batch::new(logs(&[&[3]])), &mut out);
        assert!(out.is_empty());
        p.process(Batch::new(logs(&[&[9]])), &mut out);
        // 12 pending: two cuts of 5, then 2 wait for more or the timeout.
        assert_eq!(items(&out), vec![5, 5]);
        out.clear();
        p.flush(&mut out);
        assert_eq!(items(&out), vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_sends_what_is_pending() {
        let mut p = processor("send_batch_size: 100\ntimeout: 1s\n");
        let mut out = Vec::new();
        p.process(Batch::new(logs(&[&[3]])), &mut out);
        let deadline = p.deadline().unwrap();
        p.on_deadline(deadline - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        p.on_deadline(deadline, &mut out);
        assert_eq!(items(&out), vec![3]);
        assert_eq!(p.deadline(), None);
    }

    #[tokio::test]
    async fn merged_batches_carry_every_ack() {
        let mut p = processor("send_batch_size: 5\n");
        let (a, wait_a) = Ack::new();
        let (b, wait_b) = Ack::new();
        let mut out = Vec::new();
        p.process(Batch::with_ack(logs(&[&[2]]), a), &mut out);
        p.process(Batch::with_ack(logs(&[&[3]]), b), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].acks.len(), 2);
        out[0].fail();
        out.clear();
        assert_eq!(wait_a.wait().await.outcome, AckOutcome::Failed);
        assert_eq!(wait_b.wait().await.outcome, AckOutcome::Failed);
    }
}
