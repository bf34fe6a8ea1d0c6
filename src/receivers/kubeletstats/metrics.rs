//! The summary as upstream's metrics: per node, pod, container and volume, each a
//! resource of its own, with upstream's names, units, types and defaults. Points are
//! timed at the scrape; cumulative ones start when their node, pod or container did.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::KubeletStatsConfig;
use super::summary::{Cpu, Fs, Memory, Network, Summary};
use crate::receivers::hostmetrics::{attribute, gauge, int_point, point, sum};

pub struct MetricDef {
    pub name: &'static str,
    pub default: bool,
}

const fn on(name: &'static str) -> MetricDef {
    MetricDef { name, default: true }
}

const fn off(name: &'static str) -> MetricDef {
    MetricDef { name, default: false }
}

/// Every metric ocelot makes, and whether it is on by default (upstream's metadata.yaml).
pub const METRICS: &[MetricDef] = &[
    on("k8s.node.cpu.usage"),
    on("k8s.node.cpu.time"),
    on("k8s.node.memory.available"),
    on("k8s.node.memory.usage"),
    on("k8s.node.memory.rss"),
    on("k8s.node.memory.working_set"),
    on("k8s.node.memory.page_faults"),
    on("k8s.node.memory.major_page_faults"),
    on("k8s.node.filesystem.available"),
    on("k8s.node.filesystem.capacity"),
    on("k8s.node.filesystem.usage"),
    on("k8s.node.network.io"),
    on("k8s.node.network.errors"),
    off("k8s.node.uptime"),
    on("k8s.pod.cpu.usage"),
    on("k8s.pod.cpu.time"),
    on("k8s.pod.memory.available"),
    on("k8s.pod.memory.usage"),
    on("k8s.pod.memory.rss"),
    on("k8s.pod.memory.working_set"),
    on("k8s.pod.memory.page_faults"),
    on("k8s.pod.memory.major_page_faults"),
    on("k8s.pod.filesystem.available"),
    on("k8s.pod.filesystem.capacity"),
    on("k8s.pod.filesystem.usage"),
    on("k8s.pod.network.io"),
    on("k8s.pod.network.errors"),
    off("k8s.pod.uptime"),
    on("container.cpu.usage"),
    on("container.cpu.time"),
    on("container.memory.available"),
    on("container.memory.usage"),
    on("container.memory.rss"),
    on("container.memory.working_set"),
    on("container.memory.page_faults"),
    on("container.memory.major_page_faults"),
    on("container.filesystem.available"),
    on("container.filesystem.capacity"),
    on("container.filesystem.usage"),
    off("container.uptime"),
    on("k8s.volume.available"),
    on("k8s.volume.capacity"),
    on("k8s.volume.inodes"),
    on("k8s.volume.inodes.free"),
    on("k8s.volume.inodes.used"),
];

/// Upstream's optional metrics ocelot does not make yet: naming one is fine, enabling
/// it is refused.
pub const NOT_YET: &[&str] = &[
    "k8s.pod.cpu.node.utilization",
    "k8s.pod.memory.node.utilization",
    "k8s.container.cpu.node.utilization",
    "k8s.container.memory.node.utilization",
    "k8s.pod.cpu_limit_utilization",
    "k8s.pod.cpu_request_utilization",
    "k8s.pod.memory_limit_utilization",
    "k8s.pod.memory_request_utilization",
    "k8s.container.cpu_limit_utilization",
    "k8s.container.cpu_request_utilization",
    "k8s.container.memory_limit_utilization",
    "k8s.container.memory_request_utilization",
    "k8s.pod.volume.usage",
];

pub const RESOURCE_ATTRIBUTES: &[&str] = &[
    "k8s.node.name",
    "k8s.pod.uid",
    "k8s.pod.name",
    "k8s.namespace.name",
    "k8s.container.name",
    "container.id",
    "k8s.volume.name",
    "k8s.volume.type",
    "k8s.persistentvolumeclaim.name",
    "aws.volume.id",
    "fs.type",
    "partition",
    "gce.pd.name",
    "glusterfs.endpoints.name",
    "glusterfs.path",
];

const SCOPE: &str = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/kubeletstatsreceiver";

/// What the kubelet's `/pods` (and the API, for claims) add: container ids by pod uid
/// and container name; a volume's type attributes by pod uid and volume name.
#[derive(Debug, Default)]
pub struct Extra {
    pub container_ids: HashMap<(String, String), String>,
    pub volumes: HashMap<(String, String), Vec<KeyValue>>,
}

pub struct Translator {
    metrics: Vec<&'static str>,
    attributes: Vec<&'static str>,
    node: bool,
    pod: bool,
    container: bool,
    volume: bool,
    all_node_interfaces: bool,
    all_pod_interfaces: bool,
    /// When the receiver started, ns: the start of volume points.
    started: u64,
}

impl Translator {
    pub fn new(config: &KubeletStatsConfig, started: u64) -> Translator {
        let metrics = METRICS
            .iter()
            .filter(|m| config.metrics.get(m.name).map_or(m.default, |t| t.enabled))
            .map(|m| m.name)
            .collect();
        let attributes = RESOURCE_ATTRIBUTES
            .iter()
            .filter(|a| config.resource_attributes.get(**a).is_none_or(|t| t.enabled))
            .copied()
            .collect();
        Translator {
            metrics,
            attributes,
            node: config.wants_group("node"),
            pod: config.wants_group("pod"),
            container: config.wants_group("container"),
            volume: config.wants_group("volume"),
            all_node_interfaces: config.collect_all_network_interfaces.node,
            all_pod_interfaces: config.collect_all_network_interfaces.pod,
            started,
        }
    }

    pub fn translate(&self, summary: &Summary, extra: &Extra, now: u64) -> ExportMetricsServiceRequest {
        let mut resources = Vec::new();
        let node_name = summary.node.node_name.as_str();
        if self.node {
            let node = &summary.node;
            let start = start_of(node.start_time.as_deref(), now);
            let mut out = Out { t: self, metrics: Vec::new(), start, now };
            out.usage("k8s.node", node.cpu.as_ref(), node.memory.as_ref(), node.fs.as_ref());
            out.network("k8s.node", node.network.as_ref(), self.all_node_interfaces);
            out.uptime("k8s.node", node.start_time.as_deref());
            self.push(&mut resources, vec![("k8s.node.name", node_name)], out.metrics);
        }
        for pod in &summary.pods {
            let r = &pod.pod_ref;
            let pod_attributes = [
                ("k8s.pod.uid", r.uid.as_str()),
                ("k8s.pod.name", r.name.as_str()),
                ("k8s.namespace.name", r.namespace.as_str()),
            ];
            if self.pod {
                let mut out =
                    Out { t: self, metrics: Vec::new(), start: start_of(pod.start_time.as_deref(), now), now };
                out.usage("k8s.pod", pod.cpu.as_ref(), pod.memory.as_ref(), pod.ephemeral_storage.as_ref());
                out.network("k8s.pod", pod.network.as_ref(), self.all_pod_interfaces);
                out.uptime("k8s.pod", pod.start_time.as_deref());
                self.push(&mut resources, pod_attributes.to_vec(), out.metrics);
            }
            if self.container {
                for c in &pod.containers {
                    let start = start_of(c.start_time.as_deref(), now);
                    let mut out = Out { t: self, metrics: Vec::new(), start, now };
                    out.usage("container", c.cpu.as_ref(), c.memory.as_ref(), c.rootfs.as_ref());
                    out.uptime("container", c.start_time.as_deref());
                    let mut attributes = pod_attributes.to_vec();
                    attributes.push(("k8s.container.name", c.name.as_str()));
                    let id = extra.container_ids.get(&(r.uid.clone(), c.name.clone()));
                    if let Some(id) = id {
                        attributes.push(("container.id", id.as_str()));
                    }
                    self.push(&mut resources, attributes, out.metrics);
                }
            }
            if self.volume {
                for v in &pod.volume {
                    let mut out = Out { t: self, metrics: Vec::new(), start: self.started, now };
                    let fs = &v.fs;
                    out.int_gauge("k8s.volume.available", "Free bytes of the volume", "By", fs.available_bytes);
                    out.int_gauge("k8s.volume.capacity", "Total bytes of the volume", "By", fs.capacity_bytes);
                    out.int_gauge("k8s.volume.inodes", "Total inodes of the volume", "1", fs.inodes);
                    out.int_gauge("k8s.volume.inodes.free", "Free inodes of the volume", "1", fs.inodes_free);
                    out.int_gauge("k8s.volume.inodes.used", "Inodes used by the volume", "1", fs.inodes_used);
                    let mut attributes = pod_attributes.to_vec();
                    attributes.push(("k8s.volume.name", v.name.as_str()));
                    let mut resource = self.resource(&attributes);
                    if let Some(kvs) = extra.volumes.get(&(r.uid.clone(), v.name.clone())) {
                        resource.extend(kvs.iter().filter(|kv| self.attributes.contains(&kv.key.as_str())).cloned());
                    }
                    if !out.metrics.is_empty() {
                        resources.push(resource_metrics(resource, out.metrics));
                    }
                }
            }
        }
        ExportMetricsServiceRequest { resource_metrics: resources }
    }

    fn resource(&self, attributes: &[(&str, &str)]) -> Vec<KeyValue> {
        attributes
            .iter()
            .filter(|(k, v)| !v.is_empty() && self.attributes.contains(k))
            .map(|(k, v)| attribute(k, v))
            .collect()
    }

    fn push(&self, resources: &mut Vec<ResourceMetrics>, attributes: Vec<(&str, &str)>, metrics: Vec<Metric>) {
        if !metrics.is_empty() {
            resources.push(resource_metrics(self.resource(&attributes), metrics));
        }
    }
}

fn resource_metrics(attributes: Vec<KeyValue>, metrics: Vec<Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource { attributes, ..Default::default() }),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: SCOPE.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// RFC 3339 to ns since the epoch; the scrape's time when missing or unreadable.
fn start_of(time: Option<&str>, now: u64) -> u64 {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| u64::try_from(t.as_nanosecond()).ok())
        .unwrap_or(now)
}

/// One resource's metrics as they are made.
struct Out<'a> {
    t: &'a Translator,
    metrics: Vec<Metric>,
    start: u64,
    now: u64,
}

impl Out<'_> {
    fn wanted(&self, name: &str) -> bool {
        self.t.metrics.contains(&name)
    }

    fn int_gauge(&mut self, name: &str, description: &str, unit: &str, value: Option<u64>) {
        if let Some(value) = value.filter(|_| self.wanted(name)) {
            let p = int_point(value as i64, Vec::new(), self.start, self.now);
            self.metrics.push(gauge(name, description, unit, vec![p]));
        }
    }

    /// CPU, memory and filesystem, named `<prefix>.cpu.usage` and so on.
    fn usage(&mut self, prefix: &str, cpu: Option<&Cpu>, memory: Option<&Memory>, fs: Option<&Fs>) {
        let name = |suffix: &str| format!("{prefix}.{suffix}");
        if let Some(cpu) = cpu {
            if let Some(n) = cpu.usage_nano_cores.filter(|_| self.wanted(&name("cpu.usage"))) {
                let p = point(n as f64 / 1e9, Vec::new(), self.start, self.now);
                self.metrics.push(gauge(&name("cpu.usage"), "CPU in use, in cores", "{cpu}", vec![p]));
            }
            if let Some(n) = cpu.usage_core_nano_seconds.filter(|_| self.wanted(&name("cpu.time"))) {
                let p = point(n as f64 / 1e9, Vec::new(), self.start, self.now);
                self.metrics.push(sum(&name("cpu.time"), "CPU time used", "s", true, vec![p]));
            }
        }
        if let Some(m) = memory {
            self.int_gauge(&name("memory.available"), "Memory available", "By", m.available_bytes);
            self.int_gauge(&name("memory.usage"), "Memory in use", "By", m.usage_bytes);
            self.int_gauge(&name("memory.rss"), "Resident memory (RSS)", "By", m.rss_bytes);
            self.int_gauge(&name("memory.working_set"), "Working set memory", "By", m.working_set_bytes);
            self.int_gauge(&name("memory.page_faults"), "Page faults", "1", m.page_faults);
            self.int_gauge(&name("memory.major_page_faults"), "Major page faults", "1", m.major_page_faults);
        }
        if let Some(fs) = fs {
            self.int_gauge(&name("filesystem.available"), "Filesystem bytes available", "By", fs.available_bytes);
            self.int_gauge(&name("filesystem.capacity"), "Filesystem bytes in all", "By", fs.capacity_bytes);
            self.int_gauge(&name("filesystem.usage"), "Filesystem bytes used", "By", fs.used_bytes);
        }
    }

    /// `<prefix>.network.io` and `.errors`, by interface and direction: the default
    /// interface, or every one.
    fn network(&mut self, prefix: &str, network: Option<&Network>, all: bool) {
        let Some(network) = network else { return };
        let interfaces: Vec<_> = if all && !network.interfaces.is_empty() {
            network.interfaces.iter().collect()
        } else {
            vec![&network.default]
        };
        for (suffix, unit, description, rx, tx) in [
            (
                "network.io",
                "By",
                "Network bytes",
                (|i: &super::summary::Interface| i.rx_bytes) as fn(_) -> _,
                (|i: &super::summary::Interface| i.tx_bytes) as fn(_) -> _,
            ),
            ("network.errors", "1", "Network errors", |i| i.rx_errors, |i| i.tx_errors),
        ] {
            let name = format!("{prefix}.{suffix}");
            if !self.wanted(&name) {
                continue;
            }
            let mut points = Vec::new();
            for interface in &interfaces {
                for (direction, value) in [("receive", rx(interface)), ("transmit", tx(interface))] {
                    if let Some(value) = value {
                        let attributes =
                            vec![attribute("interface", &interface.name), attribute("direction", direction)];
                        points.push(int_point(value as i64, attributes, self.start, self.now));
                    }
                }
            }
            if !points.is_empty() {
                self.metrics.push(sum(&name, description, unit, true, points));
            }
        }
    }

    fn uptime(&mut self, prefix: &str, start: Option<&str>) {
        let name = format!("{prefix}.uptime");
        if start.is_none() || !self.wanted(&name) {
            return;
        }
        let seconds = self.now.saturating_sub(self.start) / 1_000_000_000;
        let p: NumberDataPoint = int_point(seconds as i64, Vec::new(), self.start, self.now);
        self.metrics.push(sum(&name, "Time since it started", "s", true, vec![p]));
    }
}
