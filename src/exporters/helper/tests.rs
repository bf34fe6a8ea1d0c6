use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::config::ConfigDuration;
use crate::pdata::split::tests::logs;
use crate::pdata::{Ack, AckOutcome, BackendStatus, Signal};
use crate::telemetry::Telemetry;

/// Fails the first `failures` attempts with `error`, then succeeds; records concurrency.
struct Flaky {
    failures: usize,
    error: ExportError,
    attempts: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    hold: Duration,
}

impl Flaky {
    fn new(failures: usize, error: ExportError) -> Arc<Flaky> {
        Arc::new(Flaky {
            failures,
            error,
            attempts: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            hold: Duration::ZERO,
        })
    }
}

impl Export for Arc<Flaky> {
    async fn export(&self, _payload: &Payload, _metadata: &crate::pdata::Metadata) -> Result<(), ExportError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.hold).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        if attempt < self.failures { Err(self.error.clone()) } else { Ok(()) }
    }
}

fn settings(telemetry: &Telemetry, queue: QueueConfig, retry: RetryConfig) -> ExporterSettings {
    let id = ComponentId::new("test");
    ExporterSettings {
        metrics: telemetry.exporter(&id),
        id,
        queue,
        retry,
        timeout: Some(Duration::from_secs(5)),
        give_up: CancellationToken::new(),
        disk: None,
    }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        initial_interval: ConfigDuration::from_millis(10),
        max_interval: ConfigDuration::from_millis(20),
        randomization_factor: 0.0,
        ..RetryConfig::default()
    }
}

#[tokio::test]
async fn retryable_failures_are_retried_until_delivered() {
    let telemetry = Telemetry::new();
    let exporter = Flaky::new(3, ExportError::retryable("503"));
    let tracker = TaskTracker::new();
    let s = settings(&telemetry, QueueConfig::default(), fast_retry());
    let metrics = s.metrics.clone();
    let tx = spawn(exporter.clone(), s, &tracker);
    let (ack, waiter) = Ack::new();
    tx.send(Batch::with_ack(logs(&[&[4]]), ack)).await.unwrap();
    drop(tx);
    assert_eq!(waiter.wait().await.outcome, AckOutcome::Delivered);
    tracker.close();
    tracker.wait().await;
    assert_eq!(exporter.attempts.load(Ordering::SeqCst), 4);
    assert_eq!(metrics.sent(Signal::Logs).get(), 4);
    assert_eq!(metrics.send_failed(Signal::Logs).get(), 0);
}

#[tokio::test]
async fn permanent_failures_are_not_retried_and_fail_the_ack() {
    let telemetry = Telemetry::new();
    let exporter = Flaky::new(1, ExportError::permanent("400"));
    let tracker = TaskTracker::new();
    let s = settings(&telemetry, QueueConfig::default(), fast_retry());
    let metrics = s.metrics.clone();
    let tx = spawn(exporter.clone(), s, &tracker);
    let (ack, waiter) = Ack::new();
    tx.send(Batch::with_ack(logs(&[&[2]]), ack)).await.unwrap();
    assert_eq!(waiter.wait().await.outcome, AckOutcome::Rejected);
    assert_eq!(exporter.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(metrics.send_failed(Signal::Logs).get(), 2);
}

#[tokio::test]
async fn retry_disabled_fails_at_once() {
    let telemetry = Telemetry::new();
    let exporter = Flaky::new(1, ExportError::retryable("503"));
    let tracker = TaskTracker::new();
    let retry = RetryConfig { enabled: false, ..RetryConfig::default() };
    let tx = spawn(exporter.clone(), settings(&telemetry, QueueConfig::default(), retry), &tracker);
    let (ack, waiter) = Ack::new();
    tx.send(Batch::with_ack(logs(&[&[1]]), ack)).await.unwrap();
    assert_eq!(waiter.wait().await.outcome, AckOutcome::Failed);
    assert_eq!(exporter.attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn give_up_drops_what_is_left() {
    let telemetry = Telemetry::new();
    let exporter = Flaky::new(usize::MAX, ExportError::retryable("down"));
    let tracker = TaskTracker::new();
    let s = settings(
        &telemetry,
        QueueConfig::default(),
        RetryConfig { max_elapsed_time: ConfigDuration::from_secs(0), ..fast_retry() },
    );
    let give_up = s.give_up.clone();
    let metrics = s.metrics.clone();
    let tx = spawn(exporter, s, &tracker);
    let (ack, waiter) = Ack::new();
    tx.send(Batch::with_ack(logs(&[&[3]]), ack)).await.unwrap();
    drop(tx);
    tokio::time::sleep(Duration::from_millis(50)).await;
    give_up.cancel();
    assert_eq!(waiter.wait().await.outcome, AckOutcome::Failed);
    tracker.close();
    tracker.wait().await;
    assert_eq!(metrics.send_failed(Signal::Logs).get(), 3);
}

#[tokio::test]
async fn consumers_bound_concurrency_and_the_queue_reports_capacity() {
    let telemetry = Telemetry::new();
    let exporter = Arc::new(Flaky {
        hold: Duration::from_millis(20),
        ..Arc::into_inner(Flaky::new(0, ExportError::permanent(""))).unwrap()
    });
    let tracker = TaskTracker::new();
    let queue = QueueConfig { num_consumers: 3, queue_size: 7, block_on_overflow: true, ..QueueConfig::default() };
    let s = settings(&telemetry, queue, fast_retry());
    let metrics = s.metrics.clone();
    let tx = spawn(exporter.clone(), s, &tracker);
    assert_eq!(metrics.queue_capacity.get(), 7);
    for _ in 0..20 {
        tx.send(Batch::new(logs(&[&[1]]))).await.unwrap();
    }
    drop(tx);
    tracker.close();
    tracker.wait().await;
    assert_eq!(exporter.attempts.load(Ordering::SeqCst), 20);
    assert_eq!(exporter.max_running.load(Ordering::SeqCst), 3);
    assert_eq!(metrics.queue_size.get(), 0);
}

#[tokio::test]
async fn a_full_queue_refuses_the_copy_counts_it_and_fails_its_ack() {
    let telemetry = Telemetry::new();
    let exporter = Arc::new(Flaky {
        hold: Duration::from_secs(3600),
        ..Arc::into_inner(Flaky::new(0, ExportError::permanent(""))).unwrap()
    });
    let tracker = TaskTracker::new();
    let queue = QueueConfig { num_consumers: 1, queue_size: 2, ..QueueConfig::default() };
    let s = settings(&telemetry, queue, fast_retry());
    let metrics = s.metrics.clone();
    let tx = spawn(exporter.clone(), s, &tracker);
    // One export in flight (held), two waiting: the queue is full.
    tx.send(Batch::new(logs(&[&[1]]))).await.unwrap();
    while exporter.running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..2 {
        tx.send(Batch::new(logs(&[&[1]]))).await.unwrap();
    }
    let (ack, waiter) = Ack::new();
    // Returns at once (block_on_overflow is false), refused.
    tokio::time::timeout(Duration::from_secs(1), tx.send(Batch::with_ack(logs(&[&[5]]), ack))).await.unwrap().unwrap();
    let resolution = waiter.wait().await;
    assert_eq!(resolution.outcome, AckOutcome::Failed);
    assert!(resolution.message.contains("queue is full"), "{resolution:?}");
    assert_eq!(metrics.enqueue_failed(Signal::Logs).get(), 5);
}

#[tokio::test]
async fn a_reply_token_is_let_go_at_the_queue_unless_waiting_for_the_result() {
    let telemetry = Telemetry::new();
    for (wait_for_result, enabled) in [(false, true), (true, true), (false, false)] {
        let exporter = Flaky::new(1, ExportError::permanent("400").with_status(BackendStatus::Http(400)));
        let tracker = TaskTracker::new();
        let queue = QueueConfig { wait_for_result, enabled, ..QueueConfig::default() };
        let tx = spawn(exporter.clone(), settings(&telemetry, queue, fast_retry()), &tracker);
        let (ack, waiter) = Ack::reply();
        tx.send(Batch::with_ack(logs(&[&[1]]), ack)).await.unwrap();
        let resolution = waiter.wait().await;
        if enabled && !wait_for_result {
            assert_eq!((resolution.outcome, resolution.kept), (AckOutcome::Delivered, true));
        } else {
            // The client hears the backend's own refusal.
            assert_eq!(resolution.outcome, AckOutcome::Rejected);
            assert_eq!(resolution.status, Some(BackendStatus::Http(400)));
        }
    }
}

/// Three parts: the first always goes through, the second is refused for good, the
/// third fails twice (retryable) then goes through.
#[derive(Default)]
struct ThreeParts {
    sends: std::sync::Mutex<Vec<usize>>,
}

impl ExportInParts for Arc<ThreeParts> {
    type Parts = [bool; 3];
    async fn export_parts(
        &self,
        _p: &Payload,
        _m: &crate::pdata::Metadata,
        parts: &mut [bool; 3],
        tally: &mut Tally,
    ) -> Result<(), ExportError> {
        for (part, settled) in parts.iter_mut().enumerate() {
            if *settled {
                continue;
            }
            let attempt = {
                let mut sends = self.sends.lock().unwrap();
                sends.push(part);
                sends.iter().filter(|&&p| p == part).count()
            };
            match part {
                0 => tally.sent += 1,
                1 => tally.reject(1, ExportError::permanent("bad").with_status(BackendStatus::Http(400))),
                _ if attempt < 3 => return Err(ExportError::retryable("503")),
                _ => tally.sent += 1,
            }
            *settled = true;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_split_batch_retries_only_its_failed_part_and_counts_per_item() {
    let telemetry = Telemetry::new();
    let exporter = Arc::new(ThreeParts::default());
    let tracker = TaskTracker::new();
    let s = settings(&telemetry, QueueConfig::default(), fast_retry());
    let metrics = s.metrics.clone();
    let tx = spawn_in_parts(exporter.clone(), s, &tracker);
    let (ack, waiter) = Ack::new();
    tx.send(Batch::with_ack(logs(&[&[3]]), ack)).await.unwrap();
    let resolution = waiter.wait().await;
    assert_eq!((resolution.outcome, resolution.kept), (AckOutcome::Rejected, true));
    assert_eq!(*exporter.sends.lock().unwrap(), vec![0, 1, 2, 2, 2]);
    assert_eq!(metrics.sent(Signal::Logs).get(), 2);
    assert_eq!(metrics.send_failed(Signal::Logs).get(), 1);
}

/// Records each export's item count and metadata.
#[derive(Default)]
struct Recorder {
    exports: std::sync::Mutex<Vec<(usize, crate::pdata::Metadata)>>,
}

impl Export for Arc<Recorder> {
    async fn export(&self, payload: &Payload, metadata: &crate::pdata::Metadata) -> Result<(), ExportError> {
        self.exports.lock().unwrap().push((payload.item_count(), metadata.clone()));
        Ok(())
    }
}

fn queue_config(yaml: &str) -> Result<QueueConfig, String> {
    let node = crate::config::node::parse("q.yaml", yaml).unwrap();
    let config: QueueConfig = crate::config::de::from_node(&node).map_err(|e| e.message)?;
    config.validate()?;
    Ok(config)
}

#[tokio::test]
async fn an_items_sizer_bounds_the_queue_in_items() {
    let telemetry = Telemetry::new();
    let exporter = Arc::new(Flaky {
        hold: Duration::from_secs(3600),
        ..Arc::into_inner(Flaky::new(0, ExportError::permanent(""))).unwrap()
    });
    let tracker = TaskTracker::new();
    let queue = queue_config("queue_size: 5\nsizer: items\nnum_consumers: 1\n").unwrap();
    let s = settings(&telemetry, queue, fast_retry());
    let metrics = s.metrics.clone();
    let tx = spawn(exporter.clone(), s, &tracker);
    assert_eq!(metrics.queue_capacity.get(), 5);
    // One batch in flight (held); then 3 of 5 items wait.
    tx.send(Batch::new(logs(&[&[3]]))).await.unwrap();
    while exporter.running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tx.send(Batch::new(logs(&[&[3]]))).await.unwrap();
    assert_eq!(metrics.queue_size.get(), 3);
    let (ack, waiter) = Ack::new();
    tx.send(Batch::with_ack(logs(&[&[3]]), ack)).await.unwrap();
    assert_eq!(waiter.wait().await.outcome, AckOutcome::Failed, "3 more items do not fit in the 2 left");
    tx.send(Batch::new(logs(&[&[2]]))).await.unwrap();
    assert_eq!(metrics.queue_size.get(), 5);
    assert_eq!(metrics.enqueue_failed(Signal::Logs).get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_batching_queue_exports_at_min_size_or_flush_timeout_split_at_max_size() {
    let telemetry = Telemetry::new();
    let exporter = Arc::new(Recorder::default());
    let tracker = TaskTracker::new();
    let queue = queue_config("batch:\n  min_size: 10\n  max_size: 12\n  flush_timeout: 1s\n").unwrap();
    let tx = spawn(exporter.clone(), settings(&telemetry, queue, fast_retry()), &tracker);
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let (ack, waiter) = Ack::new();
        tx.send(Batch::with_ack(logs(&[&[4]]), ack)).await.unwrap();
        waiters.push(waiter);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    // 12 items: past min_size, within max_size.
    assert_eq!(exporter.exports.lock().unwrap().iter().map(|e| e.0).collect::<Vec<_>>(), vec![12]);
    for waiter in waiters {
        assert_eq!(waiter.wait().await.outcome, AckOutcome::Delivered);
    }
    tx.send(Batch::new(logs(&[&[15]]))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    // 15 is cut at 12; 3 wait for the flush timeout.
    assert_eq!(exporter.exports.lock().unwrap().iter().map(|e| e.0).collect::<Vec<_>>(), vec![12, 12]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(exporter.exports.lock().unwrap().iter().map(|e| e.0).collect::<Vec<_>>(), vec![12, 12, 3]);
    // What is gathering at shutdown is exported.
    tx.send(Batch::new(logs(&[&[1]]))).await.unwrap();
    drop(tx);
    tracker.close();
    tracker.wait().await;
    assert_eq!(exporter.exports.lock().unwrap().iter().map(|e| e.0).collect::<Vec<_>>(), vec![12, 12, 3, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_batching_queue_with_min_size_zero_exports_each_as_it_comes() {
    let telemetry = Telemetry::new();
    let exporter = Arc::new(Recorder::default());
    let tracker = TaskTracker::new();
    let queue = queue_config("batch:\n  min_size: 0\n  flush_timeout: 10s\n").unwrap();
    let tx = spawn(exporter.clone(), settings(&telemetry, queue, fast_retry()), &tracker);
    tx.send(Batch::new(logs(&[&[2]]))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(exporter.exports.lock().unwrap().iter().map(|e| e.0).collect::<Vec<_>>(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn a_batching_queue_partitions_by_metadata_and_sizes_in_bytes() {
    use crate::pdata::Metadata;
    let telemetry = Telemetry::new();
    let exporter = Arc::new(Recorder::default());
    let tracker = TaskTracker::new();
    let one = Batch::new(logs(&[&[1]]));
    let bytes = one.payload.encoded_len();
    let queue = queue_config(&format!(
        "sizer: bytes\nqueue_size: 100000\nbatch:\n  min_size: {}\n  partition:\n    metadata_keys: [X-Tenant]\n",
        bytes * 3
    ))
    .unwrap();
    let tx = spawn(exporter.clone(), settings(&telemetry, queue, fast_retry()), &tracker);
    for tenant in ["a", "b", "a", "a"] {
        let metadata = Metadata::from_pairs([("x-tenant", tenant), ("x-other", "dropped")]);
        tx.send(Batch::new(logs(&[&[1]])).with_metadata(metadata)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Tenant a reached three records' bytes; b waits.
    assert_eq!(*exporter.exports.lock().unwrap(), vec![(3, Metadata::from_pairs([("x-tenant", "a")]))]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(exporter.exports.lock().unwrap()[1], (1, Metadata::from_pairs([("x-tenant", "b")])));
}

#[test]
fn queue_batch_settings_are_checked_as_upstream() {
    let batch = queue_config("batch:\n").unwrap().batch.unwrap();
    assert_eq!((batch.min_size, batch.max_size, batch.flush_timeout.0), (8192, 0, Duration::from_millis(200)));
    assert_eq!(queue_config("batch: {}\n").unwrap().batch_sizer(), Sizer::Items);
    assert_eq!(queue_config("sizer: bytes\nqueue_size: 100000\nbatch: {}\n").unwrap().batch_sizer(), Sizer::Bytes);
    for (yaml, error) in [
        ("sizer: requests\nbatch: {}\n", "supports only `items` or `bytes` sizer"),
        ("batch: {sizer: requests}\n", "supports only `items` or `bytes` sizer"),
        ("batch: {flush_timeout: 0s}\n", "flush_timeout must be greater than zero"),
        ("batch: {min_size: 10, max_size: 5}\n", "max_size (5) must be 0 or at least min_size (10)"),
        ("sizer: items\nqueue_size: 100\nbatch: {}\n", "min_size (8192) must be at most queue_size (100)"),
        ("batch: {partition: {metadata_keys: [a, A]}}\n", "duplicate entry `A`"),
        ("sizer: pages\n", "pages"),
        ("batch: {min_size: 1, timeout: 1s}\n", "timeout"),
    ] {
        let e = queue_config(yaml).unwrap_err();
        assert!(e.contains(error), "{yaml}: {e}");
    }
}
