//! The `kubeletstats` receiver (also `kubelet_stats`): the node's, its pods', their
//! containers' and volumes' CPU, memory, filesystem and network figures from the
//! kubelet's `/stats/summary`, every `collection_interval`, as upstream names them.
//!
//! The kubelet is reached directly (`tls` with a client certificate, `serviceAccount`
//! with the pod's token, `none` on the read-only port) or through the API server's
//! node proxy (`kubeConfig`). Each scrape is bounded in time (`timeout`) and bytes
//! (64 MiB); a scrape that fails is counted by reason and logged once a minute, and
//! the next one goes on. Decoding runs off the runtime's threads.

pub mod config;
pub mod metrics;
pub mod summary;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use config::KubeletStatsConfig;
use metrics::{Extra, Translator};
use summary::{PodList, Summary};

use crate::component::Consumer;
use crate::config::ComponentId;
use crate::kube::client::{AuthType, KubeClient, KubeError, SERVICE_ACCOUNT_DIR, Token};
use crate::kube::watch::encode;
use crate::pdata::{Batch, Payload, Signal};
use crate::receivers::hostmetrics::attribute;
use crate::receivers::{StartError, unix_nanos};
use crate::telemetry::{KubeletMetrics, Telemetry};

pub const TYPE: &str = "kubeletstats";
pub const ALIASES: &[&str] = &["kubelet_stats"];

/// The largest summary read (a node of 110 pods gives a few hundred KiB).
const MAX_SUMMARY: usize = 64 << 20;
/// Claims whose volume is remembered, at most.
const MAX_CLAIMS: usize = 4096;
const LOG_EVERY: Duration = Duration::from_secs(60);
/// A claim lookup gets this long (the scrape waits for it); a failed one is not tried
/// again for a while.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
const LOOKUP_RETRY: Duration = Duration::from_secs(300);

type ClaimCache = HashMap<(String, String), (Option<Vec<opentelemetry_proto::tonic::common::v1::KeyValue>>, Instant)>;

/// Where the kubelet is and how to ask it.
pub struct Kubelet {
    client: KubeClient,
    /// `/api/v1/nodes/<node>/proxy` through the API server, or nothing.
    prefix: String,
}

impl Kubelet {
    pub fn new(config: &KubeletStatsConfig) -> Result<Kubelet, String> {
        let host =
            || std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        let endpoint = config.endpoint.clone().filter(|e| !e.is_empty());
        if config.auth_type == AuthType::KubeConfig {
            let node = endpoint.unwrap_or_else(host);
            let client = KubeClient::new(AuthType::KubeConfig, config.context.as_deref()).map_err(|e| e.to_string())?;
            return Ok(Kubelet { client, prefix: format!("/api/v1/nodes/{}/proxy", encode(&node)) });
        }
        let (scheme, port) = if config.auth_type == AuthType::None { ("http", 10255) } else { ("https", 10250) };
        let endpoint = match endpoint {
            Some(e) if e.contains("://") => e,
            Some(e) => format!("{scheme}://{e}"),
            None => {
                let name = host();
                warn!(host = %name, "kubeletstats has no endpoint; using this host's name. Set endpoint: ${{env:K8S_NODE_NAME}}:{port} from the downward API.");
                format!("{scheme}://{name}:{port}")
            }
        };
        let read = |path: &Path, what: &str| std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()));
        let ca = config.ca_file.as_deref().map(|p| read(p, "ca_file")).transpose()?;
        let client = match config.auth_type {
            AuthType::Tls => {
                let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) else {
                    return Err("auth_type tls needs cert_file and key_file".into());
                };
                let identity = (read(cert, "cert_file")?, read(key, "key_file")?);
                KubeClient::direct(&endpoint, Token::None, ca, Some(identity), config.insecure_skip_verify)
            }
            AuthType::ServiceAccount => {
                let dir = Path::new(SERVICE_ACCOUNT_DIR);
                let ca = match ca {
                    Some(ca) => Some(ca),
                    None => std::fs::read(dir.join("ca.crt")).ok(),
                };
                let token = dir.join("token");
                if !token.exists() {
                    return Err(format!("auth_type serviceAccount: {} is missing", token.display()));
                }
                KubeClient::direct(&endpoint, Token::File(token), ca, None, config.insecure_skip_verify)
            }
            _ => KubeClient::direct(&endpoint, Token::None, None, None, false),
        }
        .map_err(|e| e.to_string())?;
        Ok(Kubelet { client, prefix: String::new() })
    }

    pub async fn summary(&self) -> Result<bytes::Bytes, KubeError> {
        self.client.get_bytes(&format!("{}/stats/summary", self.prefix), MAX_SUMMARY).await
    }

    pub async fn pods(&self) -> Result<bytes::Bytes, KubeError> {
        self.client.get_bytes(&format!("{}/pods", self.prefix), MAX_SUMMARY).await
    }
}

pub async fn start(
    id: &ComponentId,
    config: &KubeletStatsConfig,
    consumer: Consumer,
    telemetry: &Telemetry,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), StartError> {
    let fail = |e: String| StartError::Config(format!("receiver {id}: {e}"));
    let kubelet = Kubelet::new(config).map_err(fail)?;
    let api = match &config.k8s_api_config {
        Some(api) => Some(KubeClient::new(api.auth_type, api.context.as_deref()).map_err(|e| fail(e.to_string()))?),
        None => None,
    };
    let looper = Loop {
        id: id.clone(),
        kubelet,
        api,
        claims: HashMap::new(),
        translator: std::sync::Arc::new(Translator::new(config, unix_nanos())),
        needs_pods: !config.extra_metadata_labels.is_empty(),
        volume_types: config.extra("k8s.volume.type"),
        interval: config.collection_interval.0,
        timeout: config.timeout(),
        consumer,
        metrics: telemetry.kubeletstats(id),
        accepted: telemetry.receiver(id, "").accepted(Signal::Metrics).clone(),
        refused: telemetry.receiver(id, "").refused(Signal::Metrics).clone(),
        logged: None,
    };
    let initial_delay = config.initial_delay.0;
    tracker.spawn(async move {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(initial_delay) => {}
        }
        looper.run(stop).await;
    });
    Ok(())
}

struct Loop {
    id: ComponentId,
    kubelet: Kubelet,
    api: Option<KubeClient>,
    /// (namespace, claim) → the volume's attributes found through the API, or `None`
    /// when the lookup failed (tried again after [`LOOKUP_RETRY`]), and when.
    claims: ClaimCache,
    translator: std::sync::Arc<Translator>,
    needs_pods: bool,
    volume_types: bool,
    interval: Duration,
    timeout: Duration,
    consumer: Consumer,
    metrics: KubeletMetrics,
    accepted: crate::telemetry::Tally,
    refused: prometheus_client::metrics::counter::Counter,
    logged: Option<Instant>,
}

/// Why a scrape failed, as the error counter's reason says.
struct Failed(&'static str, String);

impl Loop {
    async fn run(mut self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let started = Instant::now();
            self.metrics.scrapes.inc();
            let scraped = match tokio::time::timeout(self.timeout, self.scrape()).await {
                Ok(result) => result,
                Err(_) => Err(Failed("timeout", format!("the scrape took longer than {:?}", self.timeout))),
            };
            self.metrics.seconds.inc_by(started.elapsed().as_secs_f64());
            let request = match scraped {
                Ok(request) => request,
                Err(Failed(reason, message)) => {
                    self.metrics.errors(reason).inc();
                    if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                        warn!(receiver = %self.id, reason, error = %message, "Scraping the kubelet failed; the next scrape goes on.");
                        self.logged = Some(Instant::now());
                    }
                    continue;
                }
            };
            let payload = Payload::Metrics(request);
            let points = payload.item_count() as u64;
            if points == 0 {
                continue;
            }
            // A scrape not taken before the next is due is stale: dropped, counted.
            match tokio::time::timeout(self.interval, self.consumer.consume(Batch::new(payload))).await {
                Ok(Ok(())) => self.accepted.inc_by(points),
                _ => {
                    self.refused.inc_by(points);
                }
            }
        }
    }

    async fn scrape(
        &mut self,
    ) -> Result<opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest, Failed> {
        let http =
            |e: KubeError| Failed(if matches!(e, KubeError::Decode(_)) { "decode" } else { "http" }, e.to_string());
        let body = self.kubelet.summary().await.map_err(http)?;
        let mut extra = Extra::default();
        if self.needs_pods {
            let pods = self.kubelet.pods().await.map_err(http)?;
            let pods: PodList =
                serde_json::from_slice(&pods).map_err(|e| Failed("decode", format!("the kubelet's /pods: {e}")))?;
            self.extra(&pods, &mut extra).await;
        }
        let translator = self.translator.clone();
        let now = unix_nanos();
        let decoded = crate::net::decode_off_runtime(body.len(), move || {
            serde_json::from_slice::<Summary>(&body)
                .map(|summary| (summary.pods.len(), translator.translate(&summary, &extra, now)))
        })
        .await
        .ok_or_else(|| Failed("decode", "decoding the summary failed".into()))?;
        let (pods, request) = decoded.map_err(|e| Failed("decode", format!("not a stats summary: {e}")))?;
        self.metrics.pods.set(pods as i64);
        Ok(request)
    }

    /// Container ids and volume types from the kubelet's pod list.
    async fn extra(&mut self, pods: &PodList, extra: &mut Extra) {
        for pod in &pods.items {
            let uid = &pod.metadata.uid;
            for status in pod.status.container_statuses.iter().chain(&pod.status.init_container_statuses) {
                if !status.container_id.is_empty() {
                    extra.container_ids.insert((uid.clone(), status.name.clone()), status.bare_id().to_string());
                }
            }
            if !self.volume_types {
                continue;
            }
            for volume in &pod.spec.volumes {
                let Some(name) = volume.get("name").and_then(|n| n.as_str()) else { continue };
                let Some((kind, claim)) = summary::volume_type(volume) else { continue };
                let attributes = match claim {
                    Some(claim) => self.claim(&pod.metadata.namespace, &claim).await,
                    None => vec![attribute("k8s.volume.type", &kind)],
                };
                extra.volumes.insert((uid.clone(), name.to_string()), attributes);
            }
        }
    }

    /// A claim's volume: its type and identity from the API (with `k8s_api_config`),
    /// else `persistentVolumeClaim` and the claim's name, as upstream.
    async fn claim(&mut self, namespace: &str, claim: &str) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
        let mut attributes = vec![
            attribute("k8s.volume.type", "persistentVolumeClaim"),
            attribute("k8s.persistentvolumeclaim.name", claim),
        ];
        let Some(api) = &self.api else { return attributes };
        let key = (namespace.to_string(), claim.to_string());
        if let Some((found, at)) = self.claims.get(&key)
            && (found.is_some() || at.elapsed() < LOOKUP_RETRY)
        {
            return found.clone().unwrap_or(attributes);
        }
        let path = format!("/api/v1/namespaces/{}/persistentvolumeclaims/{}", encode(namespace), encode(claim));
        let lookup = async {
            let pvc: serde_json::Value = api.get(&path).await?;
            match pvc["spec"]["volumeName"].as_str() {
                Some(name) => {
                    let pv = format!("/api/v1/persistentvolumes/{}", encode(name));
                    api.get::<serde_json::Value>(&pv).await.map(Some)
                }
                None => Ok(None),
            }
        };
        let volume = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(Some(pv))) => Ok(pv),
            // Not bound yet: asked again at the next scrape.
            Ok(Ok(None)) => return attributes,
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("looking up {path} took longer than {LOOKUP_TIMEOUT:?}")),
        };
        match volume {
            Ok(pv) => {
                let spec = &pv["spec"];
                let text = |v: &serde_json::Value| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                let sources: [(&str, &[(&str, &str)]); 4] = [
                    (
                        "awsElasticBlockStore",
                        &[("volumeID", "aws.volume.id"), ("fsType", "fs.type"), ("partition", "partition")],
                    ),
                    (
                        "gcePersistentDisk",
                        &[("pdName", "gce.pd.name"), ("fsType", "fs.type"), ("partition", "partition")],
                    ),
                    ("glusterfs", &[("endpoints", "glusterfs.endpoints.name"), ("path", "glusterfs.path")]),
                    ("local", &[]),
                ];
                if let Some((kind, fields)) = sources.iter().find(|(kind, _)| spec.get(*kind).is_some()) {
                    attributes[0] = attribute("k8s.volume.type", kind);
                    for (field, name) in fields.iter() {
                        if let Some(value) = text(&spec[*kind][*field]) {
                            attributes.push(attribute(name, &value));
                        }
                    }
                }
            }
            Err(e) => {
                self.metrics.errors("lookup").inc();
                if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    warn!(receiver = %self.id, error = %e, retry_in = ?LOOKUP_RETRY, "Looking a volume claim up in the API failed (may the service account get persistentvolumeclaims and persistentvolumes?).");
                    self.logged = Some(Instant::now());
                }
                self.remember(key, None);
                return attributes;
            }
        }
        self.remember(key, Some(attributes.clone()));
        attributes
    }

    fn remember(
        &mut self,
        key: (String, String),
        found: Option<Vec<opentelemetry_proto::tonic::common::v1::KeyValue>>,
    ) {
        if self.claims.len() >= MAX_CLAIMS {
            self.claims.clear();
        }
        self.claims.insert(key, (found, Instant::now()));
    }
}

/// For the fuzz target: any bytes as a summary (and a pod list) either are refused or
/// translate, with every group and metric on.
pub fn fuzz_summary(bytes: &[u8]) {
    let Ok(node) = crate::config::node::parse(
        "fuzz.yaml",
        "auth_type: none\nmetric_groups: [node, pod, container, volume]\ncollect_all_network_interfaces: {node: true, pod: true}\nmetrics: {k8s.node.uptime: {enabled: true}, k8s.pod.uptime: {enabled: true}, container.uptime: {enabled: true}}\n",
    ) else {
        return;
    };
    let Ok(config) = crate::component::parse_config::<KubeletStatsConfig>(&node) else { return };
    let translator = Translator::new(&config, 1);
    if let Ok(summary) = serde_json::from_slice::<Summary>(bytes) {
        let _ = translator.translate(&summary, &Extra::default(), 1_800_000_000_000_000_000);
    }
    if let Ok(pods) = serde_json::from_slice::<PodList>(bytes) {
        for pod in &pods.items {
            for volume in &pod.spec.volumes {
                let _ = summary::volume_type(volume);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<KubeletStatsConfig, String> {
        let node = crate::config::node::parse("r.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        crate::component::parse_config::<KubeletStatsConfig>(&node).map_err(|e| e.message)
    }

    #[test]
    fn options_that_do_not_hold_are_refused() {
        assert!(parse("{}").unwrap_err().contains("auth_type tls needs cert_file"));
        assert!(parse("auth_type: none\nmetric_groups: [node, gpu]\n").unwrap_err().contains("`gpu`"));
        assert!(parse("auth_type: none\nextra_metadata_labels: [k8s.pod.ip]\n").unwrap_err().contains("k8s.pod.ip"));
        let twice = parse("auth_type: none\nextra_metadata_labels: [container.id, container.id]\n");
        assert!(twice.unwrap_err().contains("twice"));
        let not_yet = parse("auth_type: none\nmetrics: {k8s.pod.cpu_limit_utilization: {enabled: true}}\n");
        assert!(not_yet.unwrap_err().contains("not supported by ocelot yet"));
        assert!(parse("auth_type: none\nmetrics: {k8s.pod.cpu_limit_utilization: {enabled: false}}\n").is_ok());
        assert!(parse("auth_type: none\nmetrics: {k8s.node.cpu.utilization: {enabled: true}}\n").is_err());
        assert!(
            parse("auth_type: serviceAccount\ncert_file: a\nkey_file: b\n").unwrap_err().contains("auth_type: tls")
        );
        assert!(parse("auth_type: none\nresource_attributes: {k8s.pod.ip: {enabled: true}}\n").is_err());
        let ok =
            parse("auth_type: serviceAccount\ninsecure_skip_verify: true\nendpoint: ${env:K8S_NODE_NAME:-n1}:10250\n")
                .unwrap();
        assert_eq!(ok.groups(), ["container", "pod", "node"]);
        assert_eq!(ok.timeout(), Duration::from_secs(10));
    }

    #[test]
    fn the_documented_summary_translates_and_fuzz_inputs_do_not_panic() {
        let summary =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/kubelet/summary.json")).unwrap();
        let pods = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/kubelet/pods.json")).unwrap();
        for input in [&summary[..], &pods, b"{}", b"{\"pods\":[{}]}", b"{\"node\":{\"startTime\":\"x\"}}", b"[", b""] {
            fuzz_summary(input);
        }
        let config = parse("auth_type: none\nresource_attributes: {k8s.pod.uid: {enabled: false}}\n").unwrap();
        let translated =
            Translator::new(&config, 1).translate(&serde_json::from_slice(&summary).unwrap(), &Extra::default(), 2);
        // The node, the pod and its container; no volumes by default.
        assert_eq!(translated.resource_metrics.len(), 3);
        let pod = translated.resource_metrics[1].resource.as_ref().unwrap();
        let keys: Vec<&str> = pod.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["k8s.pod.name", "k8s.namespace.name"], "k8s.pod.uid turned off");
    }
}
