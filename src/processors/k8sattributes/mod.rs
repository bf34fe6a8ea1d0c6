//! The `k8sattributes` processor (also `k8s_attributes`): finds the pod a resource
//! came from (by the connection's IP, `k8s.pod.ip`, `k8s.pod.uid` or the configured
//! association) and adds the pod's metadata, labels and annotations.
//!
//! Pods are watched through the Kubernetes API (list + watch, restricted to the
//! node by `filter`) by one task per processor id, shared by the pipelines that use
//! it and kept across a reload that leaves its config alone. Each pod's attributes are
//! worked out when it changes, so a resource costs one map lookup and the copies of
//! what it gains. A deleted pod stays for 120 s (upstream's grace period) so late data
//! is still tagged. The processor never waits on the API: what arrives before the
//! first list is passed on without pod attributes (or, with `wait_for_metadata`, the
//! start waits for it).

mod config;
mod table;
#[cfg(test)]
mod tests;
mod watcher;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use config::K8sAttributesConfig;
pub use table::Table;

use super::Processor;
use crate::config::ComponentId;
use crate::kube::client::KubeClient;
use crate::pdata::Batch;
use crate::telemetry::{K8sAttributesMetrics, ProcessorMetrics};

pub const TYPE: &str = "k8sattributes";
pub const ALIASES: &[&str] = &["k8s_attributes"];

/// How long a deleted pod's metadata is kept (upstream's `podDeleteGracePeriod`).
pub const POD_DELETE_GRACE_PERIOD: std::time::Duration = std::time::Duration::from_secs(120);

/// The pod table one processor id's instances read, and the watch that fills it.
pub struct Shared {
    pub table: RwLock<Table>,
    pub(crate) extract: table::Extract,
}

/// The running watches, by processor id: a pipeline's instance (or a reload's) with
/// the same config joins the one running; the watch stops when the last instance goes.
#[derive(Default)]
pub struct Watches {
    open: Mutex<BTreeMap<ComponentId, Open>>,
}

struct Open {
    config: K8sAttributesConfig,
    shared: Weak<Shared>,
    alive: mpsc::WeakSender<()>,
}

impl Watches {
    fn get_or_start(
        &self,
        id: &ComponentId,
        config: &K8sAttributesConfig,
        metrics: &K8sAttributesMetrics,
        tasks: &TaskTracker,
    ) -> Result<(Arc<Shared>, mpsc::Sender<()>), String> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = open.get(id)
            && running.config == *config
            && let (Some(shared), Some(alive)) = (running.shared.upgrade(), running.alive.upgrade())
        {
            return Ok((shared, alive));
        }
        let field_selector = config.field_selector()?;
        let client = KubeClient::new(config.auth_type, config.context.as_deref()).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared { table: RwLock::new(Table::default()), extract: table::Extract::new(config) });
        let (alive, gone) = mpsc::channel::<()>(1);
        let (synced_tx, synced_rx) = std::sync::mpsc::sync_channel(1);
        let path = match config.filter.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(namespace) => format!("/api/v1/namespaces/{}/pods", crate::kube::watch::encode(namespace)),
            None => "/api/v1/pods".to_string(),
        };
        let watch = watcher::Watcher::new(watcher::Setup {
            client,
            path,
            field_selector,
            label_selector: config.label_selector(),
            config: config.clone(),
            shared: shared.clone(),
            metrics: metrics.clone(),
            synced: synced_tx,
            tasks: tasks.clone(),
            node: config.node_name()?,
        });
        tasks.spawn(watch.run(gone));
        let entry = Open { config: config.clone(), shared: Arc::downgrade(&shared), alive: alive.downgrade() };
        open.insert(id.clone(), entry);
        // Not under the lock: another processor's build must not wait on this list.
        drop(open);
        if config.wait_for_metadata {
            let timeout = config.wait_for_metadata_timeout.0;
            let waited = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(|| synced_rx.recv_timeout(timeout)).is_ok()
                }
                // One thread: the watch cannot run while this waits; go on without.
                Ok(_) => {
                    warn!("wait_for_metadata needs the multi-threaded runtime; not waiting.");
                    true
                }
                Err(_) => synced_rx.recv_timeout(timeout).is_ok(),
            };
            if !waited {
                return Err(format!(
                    "wait_for_metadata: the pod list was not read within {timeout:?} (is the API reachable, and may this service account list pods?)"
                ));
            }
        }
        Ok((shared, alive))
    }
}

pub struct K8sAttributesProcessor {
    /// `None` in passthrough: no API, only `k8s.pod.ip` from the connection.
    shared: Option<Arc<Shared>>,
    rules: Vec<table::Rule>,
    pod_ip_from_connection: bool,
    /// Keeps the watch running for this instance.
    _alive: Option<mpsc::Sender<()>>,
    /// A resource's key, built here to spare an allocation per resource.
    key: String,
    metrics: K8sAttributesMetrics,
    processor: ProcessorMetrics,
}

impl K8sAttributesProcessor {
    pub fn new(
        id: &ComponentId,
        config: &K8sAttributesConfig,
        watches: &Watches,
        tasks: &TaskTracker,
        metrics: K8sAttributesMetrics,
        processor: ProcessorMetrics,
    ) -> Result<K8sAttributesProcessor, String> {
        let (shared, alive) = match config.passthrough {
            true => (None, None),
            false => {
                let (shared, alive) = watches.get_or_start(id, config, &metrics, tasks)?;
                (Some(shared), Some(alive))
            }
        };
        Ok(K8sAttributesProcessor {
            shared,
            rules: table::rules(config),
            pod_ip_from_connection: config.passthrough || config.wants("k8s.pod.ip"),
            _alive: alive,
            key: String::new(),
            metrics,
            processor,
        })
    }

    /// A processor over a fixed set of pods, with no API (the tests and the bench).
    pub fn from_pods(config: &K8sAttributesConfig, pods: &[crate::kube::objects::Pod]) -> K8sAttributesProcessor {
        let extract = table::Extract::new(config);
        let mut table = Table::default();
        for pod in pods.iter().filter(|p| !extract.excludes(p)) {
            table.upsert(extract.record(pod, &watcher::owners_from_names(pod)));
        }
        let telemetry = crate::telemetry::Telemetry::new();
        let id = ComponentId::new(TYPE);
        K8sAttributesProcessor {
            shared: Some(Arc::new(Shared { table: RwLock::new(table), extract })),
            rules: table::rules(config),
            pod_ip_from_connection: config.passthrough || config.wants("k8s.pod.ip"),
            _alive: None,
            key: String::new(),
            metrics: telemetry.k8sattributes(&id),
            processor: telemetry.processor(&id),
        }
    }

    /// Tags every resource of the batch with its pod's attributes.
    pub fn tag(&mut self, batch: &mut Batch) {
        let addr = batch.metadata.addr();
        let table = self.shared.as_ref().map(|s| s.table.read().unwrap_or_else(PoisonError::into_inner));
        let (mut hits, mut misses) = (0, 0);
        for attributes in super::resource_attributes(batch.payload_mut()) {
            let resolved =
                self.rules.iter().find_map(|rule| table::resource_key(rule, attributes, addr, &mut self.key));
            let Some(from_connection) = resolved else { continue };
            if from_connection
                && self.pod_ip_from_connection
                && let Some(addr) = addr
            {
                table::put(attributes, &pod_ip(addr));
            }
            let Some(table) = table.as_ref() else { continue };
            match table.get(&self.key) {
                Some(record) => {
                    hits += 1;
                    for kv in record.attributes.iter().chain(table.around(record)) {
                        table::put(attributes, kv);
                    }
                    table::container_attributes(record, attributes);
                }
                None => misses += 1,
            }
        }
        if hits > 0 {
            self.metrics.association_hit.inc_by(hits);
        }
        if misses > 0 {
            self.metrics.lookup_miss.inc_by(misses);
        }
    }
}

fn pod_ip(addr: std::net::IpAddr) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    table::string("k8s.pod.ip", &addr.to_string())
}

impl Processor for K8sAttributesProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let i = batch.signal().index();
        let items = batch.payload.item_count() as u64;
        self.processor.incoming[i].inc_by(items);
        self.tag(&mut batch);
        self.processor.outgoing[i].inc_by(items);
        out.push(batch);
    }
}

/// For the fuzz target: any line of a pod watch either is refused or, as a pod, goes
/// into the table and tags a resource from its IP without a panic.
pub fn fuzz_watch_line(line: &[u8]) {
    use crate::kube::objects::{Node, Pod, WatchEvent};
    let _ = WatchEvent::<Node>::parse(line);
    let Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) = WatchEvent::<Pod>::parse(line) else { return };
    let node = crate::config::node::parse(
        "fuzz.yaml",
        "extract:\n  metadata: [k8s.pod.name, k8s.pod.uid, k8s.pod.ip, k8s.container.name, container.id, container.image.name, container.image.tag, container.image.repo_digests, k8s.deployment.name, k8s.cronjob.name]\n  labels: [{key_regex: '(.*)', tag_name: 'l.$1'}]\n  otel_annotations: true\n",
    );
    let Ok(config) = node
        .map_err(|e| e.to_string())
        .and_then(|n| crate::component::parse_config::<K8sAttributesConfig>(&n).map_err(|e| e.message))
    else {
        return;
    };
    let addr = pod.status.pod_ip.parse::<std::net::IpAddr>().ok();
    let mut processor = K8sAttributesProcessor::from_pods(&config, std::slice::from_ref(&pod));
    let resource = opentelemetry_proto::tonic::resource::v1::Resource::default();
    let request = crate::pdata::ExportLogsServiceRequest {
        resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
            resource: Some(resource),
            ..Default::default()
        }],
    };
    let mut batch = Batch::new(crate::pdata::Payload::Logs(request))
        .with_metadata(crate::pdata::Metadata::default().with_addr(addr));
    processor.tag(&mut batch);
}
