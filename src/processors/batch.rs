//! The `batch` processor: gathers batches until `send_batch_size` items or `timeout`,
//! and cuts anything larger than `send_batch_max_size`.

use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use serde::Deserialize;
use tokio::time::Instant;

use super::Processor;
use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::pdata::{Batch, Metadata};

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
    /// Request metadata keys (`include_metadata` on the receiver) that split batching:
    /// one batch per distinct combination of their values, carrying those values on.
    #[serde(default)]
    pub metadata_keys: Vec<String>,
    /// Most distinct combinations gathering at once; data of one more is refused.
    /// Default 1000, as upstream; 0 is no limit. (Upstream counts every combination
    /// ever seen; here a combination with nothing gathering gives its place up.)
    #[serde(default = "default_cardinality_limit")]
    pub metadata_cardinality_limit: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: default_send_batch_size(),
            send_batch_max_size: 0,
            timeout: default_timeout(),
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: default_cardinality_limit(),
        }
    }
}

fn default_send_batch_size() -> usize {
    8192
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_millis(200)
}
fn default_cardinality_limit() -> usize {
    1000
}

impl Validate for BatchConfig {
    fn validate(&self) -> Result<(), String> {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(format!(
                "send_batch_max_size ({}) must be 0 or at least send_batch_size ({})",
                self.send_batch_max_size, self.send_batch_size
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for key in &self.metadata_keys {
            if !seen.insert(key.to_ascii_lowercase()) {
                return Err(format!("duplicate entry in metadata_keys: `{key}`"));
            }
        }
        Ok(())
    }
}

pub struct BatchProcessor {
    /// What sizes count: items, or protobuf bytes (an exporter queue's `sizer: bytes`).
    bytes: bool,
    /// Hold reply tokens until the export (a queue's `wait_for_result`).
    keep_replies: bool,
    send_batch_size: usize,
    max_size: usize,
    timeout: Duration,
    metadata_keys: Vec<String>,
    cardinality_limit: usize,
    /// One batch gathering per distinct value of `metadata_keys` (one in all without).
    shards: Vec<Shard>,
    send_size: Histogram,
    /// When a refusal over the cardinality limit was last logged.
    warned: Option<Instant>,
}

/// Shards kept (idle ones included) before idle ones are let go.
const SHARDS_KEPT_IDLE: usize = 64;

/// What is gathered so far for one metadata value: the batch, with its item count and
/// the acks of every part.
struct Shard {
    metadata: Metadata,
    pending: Option<Batch>,
    /// Its size, in items or bytes.
    pending_size: usize,
    deadline: Option<Instant>,
}

impl BatchProcessor {
    pub fn new(config: &BatchConfig, send_size: Histogram) -> BatchProcessor {
        BatchProcessor {
            bytes: false,
            keep_replies: false,
            send_batch_size: config.send_batch_size,
            max_size: config.send_batch_max_size,
            timeout: config.timeout.0,
            metadata_keys: config.metadata_keys.clone(),
            cardinality_limit: config.metadata_cardinality_limit,
            shards: Vec::new(),
            send_size,
            warned: None,
        }
    }

    /// The batching of an exporter's queue (`sending_queue.batch`): sized in items or
    /// bytes, partitioned by `partition.metadata_keys`, and holding reply tokens with
    /// `wait_for_result`.
    pub fn for_queue(
        config: &crate::exporters::helper::QueueBatchConfig,
        bytes: bool,
        keep_replies: bool,
    ) -> BatchProcessor {
        let mut processor = BatchProcessor::new(
            &BatchConfig {
                // min_size 0 exports each as it comes; the processor's 0 means "on timeout only".
                send_batch_size: config.min_size.max(1),
                send_batch_max_size: config.max_size,
                timeout: config.flush_timeout,
                metadata_keys: config.partition.metadata_keys.clone(),
                // Partitions come from request metadata a client chooses: bounded, as the
                // batch processor is by default.
                metadata_cardinality_limit: default_cardinality_limit(),
            },
            Histogram::new([1.0]),
        );
        processor.bytes = bytes;
        processor.keep_replies = keep_replies;
        processor
    }

    fn size_of(&self, payload: &crate::pdata::Payload) -> usize {
        if self.bytes { payload.encoded_len() } else { payload.item_count() }
    }

    /// The shard of this metadata value, created if there is room for another.
    fn shard(&mut self, metadata: &Metadata) -> Option<usize> {
        if let Some(i) = self.shards.iter().position(|s| s.metadata == *metadata) {
            return Some(i);
        }
        // Shards with nothing gathering are let go: the limit counts values gathering now.
        let limit = if self.cardinality_limit == 0 { usize::MAX } else { self.cardinality_limit };
        if self.shards.len() >= limit.min(SHARDS_KEPT_IDLE) {
            self.shards.retain(|s| s.pending.is_some());
        }
        if self.shards.len() >= limit {
            return None;
        }
        self.shards.push(Shard { metadata: metadata.clone(), pending: None, pending_size: 0, deadline: None });
        Some(self.shards.len() - 1)
    }

    fn refuse(&mut self, batch: Batch) {
        batch.fail_with("too many batcher metadata-value combinations");
        if self.warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            self.warned = Some(Instant::now());
            tracing::error!(
                limit = self.cardinality_limit,
                "batch: more distinct metadata_keys values than metadata_cardinality_limit; refusing data (logged once a minute)."
            );
        }
    }

    fn emit(&self, batch: Batch, out: &mut Vec<Batch>) {
        self.send_size.observe(batch.payload.item_count() as f64);
        out.push(batch);
    }

    /// Cuts pieces of at most `send_batch_max_size` off while the pending batch is
    /// larger. By bytes, a cut takes the share of items that the limit is of the bytes.
    fn cut_over_max(&mut self, shard: usize, out: &mut Vec<Batch>) {
        if self.max_size == 0 {
            return;
        }
        while self.shards[shard].pending_size > self.max_size {
            let (bytes, max) = (self.bytes, self.max_size);
            let s = &mut self.shards[shard];
            let Some(pending) = s.pending.as_mut() else {
                return;
            };
            let items = pending.payload.item_count();
            let mut n =
                if bytes { (items as u128 * max as u128 / s.pending_size as u128).max(1) as usize } else { max };
            let mut front_payload = pending.payload_mut().split_front(n);
            // By bytes, items of uneven size can make the share too big: give back half
            // until it fits (one item larger than the limit goes alone).
            while bytes && n > 1 && front_payload.encoded_len() > max {
                let rest = std::mem::replace(pending.payload_mut(), front_payload);
                let _ = pending.payload_mut().append(rest);
                n /= 2;
                front_payload = pending.payload_mut().split_front(n);
            }
            let mut front = Batch {
                payload: std::sync::Arc::new(front_payload),
                acks: Vec::new(),
                metadata: pending.metadata.clone(),
            };
            if pending.payload.is_empty() {
                // All of it went (one item larger than the limit): the acks go with it.
                front.acks = std::mem::take(&mut pending.acks);
                s.pending = None;
                s.pending_size = 0;
                s.deadline = None;
            } else {
                front.acks = pending.acks.clone();
                s.pending_size = if bytes { pending.payload.encoded_len() } else { s.pending_size - n };
            }
            self.emit(front, out);
        }
    }

    /// Sends what is full; `send_batch_size: 0` means "only on timeout", as upstream.
    fn send_full(&mut self, shard: usize, out: &mut Vec<Batch>) {
        self.cut_over_max(shard, out);
        if self.send_batch_size > 0 && self.shards[shard].pending_size >= self.send_batch_size {
            self.send_all(shard, out);
        }
    }

    fn send_all(&mut self, shard: usize, out: &mut Vec<Batch>) {
        let s = &mut self.shards[shard];
        s.deadline = None;
        s.pending_size = 0;
        if let Some(batch) = s.pending.take() {
            self.emit(batch, out);
        }
    }
}

impl Processor for BatchProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        if batch.payload.item_count() == 0 {
            return;
        }
        let size = self.size_of(&batch.payload);
        // What goes on with the batch is only the metadata it is keyed by, as upstream.
        let metadata = batch.metadata.restrict(&self.metadata_keys);
        let Some(shard) = self.shard(&metadata) else {
            return self.refuse(batch);
        };
        // Held for up to `timeout`: a client waiting for its answer has it now, as
        // upstream's batch processor answers on intake.
        if !self.keep_replies {
            batch.release_replies();
        }
        batch.metadata = metadata;
        let s = &mut self.shards[shard];
        match s.pending.as_mut() {
            None => {
                s.pending = Some(batch);
                s.deadline = Some(Instant::now() + self.timeout);
            }
            Some(pending) => {
                let Batch { payload, acks, metadata } = batch;
                let payload = std::sync::Arc::try_unwrap(payload).unwrap_or_else(|shared| (*shared).clone());
                if let Err(other) = pending.payload_mut().append(payload) {
                    // Pipelines carry one signal, so this cannot happen; pass it on unmerged.
                    out.push(Batch { payload: std::sync::Arc::new(other), acks, metadata });
                    return;
                }
                pending.acks.extend(acks);
            }
        }
        s.pending_size += size;
        self.send_full(shard, out);
    }

    fn deadline(&self) -> Option<Instant> {
        self.shards.iter().filter_map(|s| s.deadline).min()
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Vec<Batch>) {
        for shard in 0..self.shards.len() {
            if self.shards[shard].deadline.is_some_and(|d| d <= now) {
                self.cut_over_max(shard, out);
                self.send_all(shard, out);
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<Batch>) {
        for shard in 0..self.shards.len() {
            self.cut_over_max(shard, out);
            self.send_all(shard, out);
        }
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

    #[tokio::test]
    async fn metadata_keys_batch_each_value_apart_and_limit_their_number() {
        let mut p = processor("send_batch_size: 4\nmetadata_keys: [X-Tenant]\nmetadata_cardinality_limit: 2\n");
        let tenant = |t: &str| Metadata::from_pairs([("x-tenant", t), ("x-request-id", "r1")]);
        let mut out = Vec::new();
        p.process(Batch::new(logs(&[&[2]])).with_metadata(tenant("a")), &mut out);
        p.process(Batch::new(logs(&[&[2]])).with_metadata(tenant("b")), &mut out);
        let (c, wait_c) = Ack::new();
        p.process(Batch::with_ack(logs(&[&[1]]), c).with_metadata(tenant("c")), &mut out);
        assert_eq!(wait_c.wait().await.outcome, AckOutcome::Failed, "a third value is over the limit");
        p.process(Batch::new(logs(&[&[2]])).with_metadata(tenant("a")), &mut out);
        assert_eq!(items(&out), vec![4]);
        // Only the keyed metadata goes on.
        assert_eq!(out[0].metadata, Metadata::from_pairs([("x-tenant", "a")]));
        out.clear();
        // Tenant a's shard is empty now, so a new value has room.
        p.process(Batch::new(logs(&[&[1]])).with_metadata(tenant("c")), &mut out);
        p.flush(&mut out);
        let mut sent: Vec<_> =
            out.iter().map(|b| (b.metadata.get("x-tenant").to_vec(), b.payload.item_count())).collect();
        sent.sort();
        assert_eq!(sent, vec![(vec!["b".to_string()], 2), (vec!["c".to_string()], 1)]);
    }

    #[test]
    fn without_metadata_keys_metadata_does_not_go_on() {
        let mut p = processor("send_batch_size: 1\n");
        let mut out = Vec::new();
        p.process(Batch::new(logs(&[&[1]])).with_metadata(Metadata::from_pairs([("x-tenant", "a")])), &mut out);
        assert!(out[0].metadata.is_empty());
    }
}
