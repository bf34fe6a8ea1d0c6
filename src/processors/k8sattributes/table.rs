//! The pods the processor knows, each with its attributes worked out once (when the
//! pod is added or changes, not per resource), and the index a resource is looked up
//! in: one key per association rule a pod answers to.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use tokio::time::Instant;

use super::config::{AssociationSource, FieldExtract, K8sAttributesConfig};
use crate::kube::objects::Pod;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What a source's value is compared with on the pod's side.
#[derive(Clone, Debug, PartialEq)]
enum Key {
    Ip,
    Uid,
    Name,
    Namespace,
    ContainerId,
    /// One of the pod's extracted attributes.
    Attribute(String),
}

impl Key {
    fn tag(&self) -> char {
        match self {
            Key::Ip => 'i',
            Key::Uid => 'u',
            Key::Name => 'n',
            Key::Namespace => 's',
            Key::ContainerId => 'c',
            Key::Attribute(_) => 'a',
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum From {
    Connection,
    /// The resource attribute of this name; for `host.name`, only a value that is an IP.
    Attribute(String),
}

#[derive(Clone, Debug)]
pub struct Rule {
    sources: Vec<(From, Key)>,
}

/// The association rules, in order: the configured ones or upstream's default.
pub fn rules(config: &K8sAttributesConfig) -> Vec<Rule> {
    let key_of = |source: &AssociationSource| -> (From, Key) {
        match (source.from.as_str(), source.name.as_deref()) {
            ("connection", _) => (From::Connection, Key::Ip),
            (_, Some(name)) => {
                let key = match name {
                    "k8s.pod.ip" | "host.name" | "ip" => Key::Ip,
                    "k8s.pod.uid" => Key::Uid,
                    "k8s.pod.name" => Key::Name,
                    "k8s.namespace.name" => Key::Namespace,
                    "container.id" => Key::ContainerId,
                    other => Key::Attribute(other.to_string()),
                };
                (From::Attribute(name.to_string()), key)
            }
            _ => (From::Connection, Key::Ip),
        }
    };
    if config.pod_association.is_empty() {
        return ["k8s.pod.ip", "ip", "", "host.name"]
            .iter()
            .map(|name| {
                let from = if name.is_empty() { From::Connection } else { From::Attribute(name.to_string()) };
                Rule { sources: vec![(from, Key::Ip)] }
            })
            .collect();
    }
    config.pod_association.iter().map(|a| Rule { sources: a.sources.iter().map(key_of).collect() }).collect()
}

/// Writes a rule's key for a resource into `out`: `None` unless every source has a
/// value. The second value says whether the first source was the connection (the
/// `k8s.pod.ip` passthrough writes).
pub fn resource_key(rule: &Rule, attributes: &[KeyValue], addr: Option<IpAddr>, out: &mut String) -> Option<bool> {
    use std::fmt::Write;
    out.clear();
    for (from, key) in &rule.sources {
        out.push(key.tag());
        match from {
            From::Connection => {
                let addr = addr?;
                let _ = write!(out, "{addr}");
            }
            From::Attribute(name) => {
                let value = attributes.iter().find(|kv| kv.key == *name).and_then(|kv| string_of(kv.value.as_ref()))?;
                if value.is_empty() || (name == "host.name" && value.parse::<IpAddr>().is_err()) {
                    return None;
                }
                out.push_str(value);
            }
        }
        out.push('\x1f');
    }
    Some(matches!(rule.sources.first(), Some((From::Connection, _))))
}

fn string_of(value: Option<&AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// One container of a pod: its attributes, and its runs (a restart is a new run
/// with a new id).
#[derive(Debug)]
pub struct ContainerRecord {
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub runs: Vec<Run>,
}

#[derive(Debug)]
pub struct Run {
    pub restart_count: u32,
    pub id: String,
    pub repo_digest: Option<String>,
}

#[derive(Debug)]
pub struct PodRecord {
    pub uid: String,
    pub attributes: Vec<KeyValue>,
    pub containers: Vec<ContainerRecord>,
    identifiers: Vec<String>,
    /// When the pod started (RFC 3339, which sorts as time does).
    start: String,
    /// Its namespace and node, whose attributes it also gets.
    pub namespace: String,
    pub node: String,
    wants_container_id: bool,
    wants_digests: bool,
}

/// Who owns the pod's owner, found by the watcher (a lookup or a name rule).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Owners {
    pub deployment: Option<(String, Option<String>)>,
    pub cronjob: Option<(String, Option<String>)>,
}

/// The extraction settings, compiled.
pub struct Extract {
    metadata: Vec<String>,
    /// Label and annotation rules, for pods, namespaces and nodes.
    fields: Vec<FieldRule>,
    otel_annotations: bool,
    rules: Vec<Rule>,
    excluded: Vec<regex::Regex>,
}

/// Which object a label or annotation is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Pod,
    Namespace,
    Node,
}

impl Source {
    fn of(from: Option<&str>) -> Source {
        match from {
            Some("namespace") => Source::Namespace,
            Some("node") => Source::Node,
            _ => Source::Pod,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Source::Pod => "pod",
            Source::Namespace => "namespace",
            Source::Node => "node",
        }
    }
}

struct FieldRule {
    source: Source,
    /// `labels` or `annotations`.
    what: &'static str,
    rule: Field,
}

enum Field {
    Key { key: String, tag: String },
    Regex { regex: regex::Regex, tag: Option<String> },
}

impl FieldRule {
    fn compile(field: &FieldExtract, what: &'static str) -> Option<FieldRule> {
        let source = Source::of(field.from.as_deref());
        if let Some(key) = &field.key {
            let tag = field.tag_name.clone().unwrap_or_else(|| format!("k8s.{}.{what}.{key}", source.name()));
            return Some(FieldRule { source, what, rule: Field::Key { key: key.clone(), tag } });
        }
        let regex = regex::Regex::new(&format!("^(?:{})$", field.key_regex.as_deref()?)).ok()?;
        // Without capture groups, each key gets the default name (upstream).
        let tag = field.tag_name.clone().filter(|_| regex.captures_len() > 1);
        Some(FieldRule { source, what, rule: Field::Regex { regex, tag } })
    }

    /// The attributes this rule makes from an object's labels and annotations.
    fn apply(&self, meta: &crate::kube::objects::ObjectMeta, out: &mut Vec<KeyValue>) {
        let map = if self.what == "labels" { &meta.labels } else { &meta.annotations };
        let what = self.what;
        let source = self.source.name();
        match &self.rule {
            Field::Key { key, tag } => {
                if let Some(value) = map.get(key).filter(|v| !v.is_empty()) {
                    out.push(string(tag, value));
                }
            }
            Field::Regex { regex, tag } => {
                for (key, value) in map.iter().filter(|(_, v)| !v.is_empty()) {
                    let Some(captures) = regex.captures(key) else { continue };
                    let name = match tag {
                        Some(tag) => {
                            let mut name = String::new();
                            captures.expand(tag, &mut name);
                            name
                        }
                        None => format!("k8s.{source}.{what}.{key}"),
                    };
                    out.push(string(&name, value));
                }
            }
        }
    }
}

const IGNORE_ANNOTATION: &str = "opentelemetry.io/k8s-processor/ignore";
const OTEL_ANNOTATION_PREFIX: &str = "resource.opentelemetry.io/";

impl Extract {
    pub fn new(config: &K8sAttributesConfig) -> Extract {
        Extract {
            metadata: config.metadata(),
            fields: (config.extract.labels.iter().filter_map(|f| FieldRule::compile(f, "labels")))
                .chain(config.extract.annotations.iter().filter_map(|f| FieldRule::compile(f, "annotations")))
                .collect(),
            otel_annotations: config.extract.otel_annotations,
            rules: rules(config),
            excluded: config.excluded_patterns().iter().filter_map(|p| regex::Regex::new(p).ok()).collect(),
        }
    }

    fn wants(&self, name: &str) -> bool {
        self.metadata.iter().any(|m| m == name)
    }

    /// Whether namespaces are watched: for their labels or annotations, or for
    /// `k8s.cluster.uid` (kube-system's uid).
    pub fn wants_namespaces(&self) -> bool {
        self.fields.iter().any(|r| r.source == Source::Namespace) || self.wants("k8s.cluster.uid")
    }

    /// Whether nodes are watched: for their labels, annotations or uid.
    pub fn wants_nodes(&self) -> bool {
        self.fields.iter().any(|r| r.source == Source::Node) || self.wants("k8s.node.uid")
    }

    /// What a namespace or node adds to the resources of its pods.
    pub fn object_attributes(&self, source: Source, meta: &crate::kube::objects::ObjectMeta) -> Vec<KeyValue> {
        let mut out = Vec::new();
        if source == Source::Node && self.wants("k8s.node.uid") && !meta.uid.is_empty() {
            out.push(string("k8s.node.uid", &meta.uid));
        }
        for rule in self.fields.iter().filter(|r| r.source == source) {
            rule.apply(meta, &mut out);
        }
        out
    }

    /// Whether `k8s.cluster.uid` is wanted.
    pub fn wants_cluster_uid(&self) -> bool {
        self.wants("k8s.cluster.uid")
    }

    /// Whether the pod is never associated: excluded by name or by its annotation.
    pub fn excludes(&self, pod: &Pod) -> bool {
        pod.metadata.annotations.get(IGNORE_ANNOTATION).is_some_and(|v| v == "true")
            || self.excluded.iter().any(|r| r.is_match(&pod.metadata.name))
    }

    /// The pod's record: its attributes and every key it answers to.
    pub fn record(&self, pod: &Pod, owners: &Owners) -> PodRecord {
        let meta = &pod.metadata;
        let mut attributes = Vec::new();
        let mut put = |name: &str, value: &str| {
            if !value.is_empty() && self.wants(name) {
                attributes.push(string(name, value));
            }
        };
        put("k8s.pod.name", &meta.name);
        put("k8s.pod.uid", &meta.uid);
        put("k8s.namespace.name", &meta.namespace);
        put("k8s.node.name", &pod.spec.node_name);
        put("k8s.pod.hostname", if pod.spec.hostname.is_empty() { &meta.name } else { &pod.spec.hostname });
        let start = pod.status.start_time.as_deref().or(meta.creation_timestamp.as_deref()).unwrap_or_default();
        put("k8s.pod.start_time", start);
        put("k8s.pod.ip", &pod.status.pod_ip);
        if let Some(owner) = meta.controller() {
            match owner.kind.as_str() {
                "ReplicaSet" => {
                    put("k8s.replicaset.name", &owner.name);
                    put("k8s.replicaset.uid", &owner.uid);
                }
                "DaemonSet" => {
                    put("k8s.daemonset.name", &owner.name);
                    put("k8s.daemonset.uid", &owner.uid);
                }
                "StatefulSet" => {
                    put("k8s.statefulset.name", &owner.name);
                    put("k8s.statefulset.uid", &owner.uid);
                }
                "Job" => {
                    put("k8s.job.name", &owner.name);
                    put("k8s.job.uid", &owner.uid);
                }
                _ => {}
            }
        }
        for (kind, owner) in [("deployment", &owners.deployment), ("cronjob", &owners.cronjob)] {
            if let Some((name, uid)) = owner {
                put(&format!("k8s.{kind}.name"), name);
                put(&format!("k8s.{kind}.uid"), uid.as_deref().unwrap_or_default());
            }
        }
        for rule in self.fields.iter().filter(|r| r.source == Source::Pod) {
            rule.apply(meta, &mut attributes);
        }
        if self.otel_annotations {
            for (key, value) in &meta.annotations {
                if let Some(name) = key.strip_prefix(OTEL_ANNOTATION_PREFIX).filter(|n| !n.is_empty()) {
                    attributes.push(string(name, value));
                }
            }
        }
        let containers = self.containers(pod);
        let identifiers = self.identifiers(pod, &attributes, &containers);
        PodRecord {
            uid: meta.uid.clone(),
            attributes,
            containers,
            identifiers,
            start: start.to_string(),
            namespace: meta.namespace.clone(),
            node: pod.spec.node_name.clone(),
            wants_container_id: self.wants("container.id"),
            wants_digests: self.wants("container.image.repo_digests"),
        }
    }

    fn containers(&self, pod: &Pod) -> Vec<ContainerRecord> {
        let statuses = pod.status.container_statuses.iter().chain(&pod.status.init_container_statuses);
        let mut out: Vec<ContainerRecord> = pod
            .spec
            .containers
            .iter()
            .chain(&pod.spec.init_containers)
            .map(|c| {
                let mut attributes = Vec::new();
                if self.wants("k8s.container.name") {
                    attributes.push(string("k8s.container.name", &c.name));
                }
                let (name, tag) = split_image(&c.image);
                if self.wants("container.image.name") && !name.is_empty() {
                    attributes.push(string("container.image.name", name));
                }
                if self.wants("container.image.tag") && !name.is_empty() {
                    attributes.push(string("container.image.tag", tag));
                }
                ContainerRecord { name: c.name.clone(), attributes, runs: Vec::new() }
            })
            .collect();
        for status in statuses {
            if let Some(container) = out.iter_mut().find(|c| c.name == status.name)
                && !status.container_id.is_empty()
            {
                let repo_digest = status.image_id.contains('@').then(|| {
                    status.image_id.split_once("://").map_or(status.image_id.as_str(), |(_, rest)| rest).to_string()
                });
                container.runs.push(Run {
                    restart_count: status.restart_count,
                    id: status.bare_id().to_string(),
                    repo_digest,
                });
            }
        }
        out
    }

    /// Every key of the configured rules this pod answers to, and (as upstream, for
    /// every pod) its IP and its uid.
    fn identifiers(&self, pod: &Pod, attributes: &[KeyValue], containers: &[ContainerRecord]) -> Vec<String> {
        let ip = if pod.spec.host_network { "" } else { pod.status.pod_ip.as_str() };
        let ids: Vec<&str> = containers.iter().flat_map(|c| c.runs.iter().map(|r| r.id.as_str())).collect();
        let mut out = Vec::new();
        let always = [
            Rule { sources: vec![(From::Connection, Key::Ip)] },
            Rule { sources: vec![(From::Attribute("k8s.pod.uid".into()), Key::Uid)] },
        ];
        for rule in self.rules.iter().chain(&always) {
            let has_container = rule.sources.iter().any(|(_, k)| *k == Key::ContainerId);
            let choices: Vec<Option<&str>> =
                if has_container { ids.iter().map(|id| Some(*id)).collect() } else { vec![None] };
            'choice: for container_id in choices {
                let mut key = String::new();
                for (_, k) in &rule.sources {
                    let value = match k {
                        Key::Ip => ip,
                        Key::Uid => &pod.metadata.uid,
                        Key::Name => &pod.metadata.name,
                        Key::Namespace => &pod.metadata.namespace,
                        Key::ContainerId => container_id.unwrap_or_default(),
                        Key::Attribute(name) => attributes
                            .iter()
                            .find(|kv| kv.key == *name)
                            .and_then(|kv| string_of(kv.value.as_ref()))
                            .unwrap_or_default(),
                    };
                    if value.is_empty() {
                        continue 'choice;
                    }
                    key.push(k.tag());
                    key.push_str(value);
                    key.push('\x1f');
                }
                if !out.contains(&key) {
                    out.push(key);
                }
            }
        }
        out
    }
}

/// `registry:5000/team/app:1.2@sha256:…` is name `registry:5000/team/app`, tag `1.2`;
/// no tag is `latest`.
fn split_image(image: &str) -> (&str, &str) {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

pub fn string(key: &str, value: &str) -> KeyValue {
    crate::receivers::filelog::reader::string_kv(key, value)
}

/// The pods known and their index. Deleted pods stay for the grace period, so late
/// data from them is still tagged. Two pods may claim one key (an IP reused while the
/// old pod winds down): the key leads to the one not deleted, then the one that
/// started last, and to the other again when that one goes.
#[derive(Default)]
pub struct Table {
    pods: HashMap<String, Arc<PodRecord>>,
    /// Each key's claimants, the one it leads to first.
    index: HashMap<String, Vec<Arc<PodRecord>>>,
    /// Deleted pods by when each goes.
    expiring: BTreeSet<(Instant, String)>,
    deleting: HashMap<String, Instant>,
    /// What each namespace and node adds, by name (when they are watched).
    pub namespaces: HashMap<String, Vec<KeyValue>>,
    pub nodes: HashMap<String, Vec<KeyValue>>,
    /// `k8s.cluster.uid`, once kube-system is seen.
    pub cluster: Vec<KeyValue>,
}

/// What a change did, for the counters.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Unchanged,
}

impl Table {
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Arc<PodRecord>> {
        self.index.get(key)?.first()
    }

    /// What a pod's namespace, node and cluster add to its resources.
    pub fn around<'a>(&'a self, record: &PodRecord) -> impl Iterator<Item = &'a KeyValue> {
        let namespace = self.namespaces.get(&record.namespace).into_iter().flatten();
        let node = self.nodes.get(&record.node).into_iter().flatten();
        namespace.chain(node).chain(&self.cluster)
    }

    /// Puts a pod's record in (replacing its earlier one, and undoing a deletion).
    pub fn upsert(&mut self, record: PodRecord) -> Change {
        let record = Arc::new(record);
        let uid = record.uid.clone();
        if let Some(at) = self.deleting.remove(&uid) {
            self.expiring.remove(&(at, uid.clone()));
        }
        let change = match self.pods.insert(uid, record.clone()) {
            Some(old) => {
                self.unindex(&old);
                if old.attributes == record.attributes && old.identifiers == record.identifiers {
                    Change::Unchanged
                } else {
                    Change::Updated
                }
            }
            None => Change::Added,
        };
        for key in &record.identifiers {
            self.index.entry(key.clone()).or_default().push(record.clone());
        }
        self.rank(&record);
        change
    }

    /// A pod is gone: it stays until `at` (the earliest, if it was deleted before).
    pub fn delete_at(&mut self, uid: &str, at: Instant) {
        let Some(record) = self.pods.get(uid).cloned() else { return };
        match self.deleting.get(uid) {
            Some(earlier) if *earlier <= at => return,
            Some(earlier) => {
                self.expiring.remove(&(*earlier, uid.to_string()));
            }
            None => {}
        }
        self.deleting.insert(uid.to_string(), at);
        self.expiring.insert((at, uid.to_string()));
        self.rank(&record);
    }

    /// After a relist: pods not in `present` are deleted as of now.
    pub fn retain_listed(&mut self, present: &std::collections::HashSet<String>, at: Instant) {
        let gone: Vec<String> = self.pods.keys().filter(|uid| !present.contains(*uid)).cloned().collect();
        for uid in gone {
            self.delete_at(&uid, at);
        }
    }

    /// When the next deleted pod goes.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiring.first().map(|(at, _)| *at)
    }

    /// Drops the deleted pods whose grace period is over; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((at, _)) = self.expiring.first()
            && *at <= now
        {
            let Some((_, uid)) = self.expiring.pop_first() else { break };
            self.deleting.remove(&uid);
            if let Some(record) = self.pods.remove(&uid) {
                self.unindex(&record);
                n += 1;
            }
        }
        n
    }

    /// Puts the claimants of each of this record's keys in order: live before
    /// deleted, then the latest started.
    fn rank(&mut self, record: &Arc<PodRecord>) {
        let deleting = &self.deleting;
        for key in &record.identifiers {
            if let Some(claimants) = self.index.get_mut(key)
                && claimants.len() > 1
            {
                claimants.sort_by(|a, b| {
                    let rank = |r: &PodRecord| (deleting.contains_key(&r.uid), std::cmp::Reverse(r.start.clone()));
                    rank(a).cmp(&rank(b))
                });
            }
        }
    }

    /// Takes this record off every key it claims.
    fn unindex(&mut self, record: &Arc<PodRecord>) {
        for key in &record.identifiers {
            if let Some(claimants) = self.index.get_mut(key) {
                claimants.retain(|r| !Arc::ptr_eq(r, record));
                if claimants.is_empty() {
                    self.index.remove(key);
                }
            }
        }
    }
}

/// Adds `kv` unless the resource has it with a non-empty value (upstream never
/// overwrites).
pub fn put(attributes: &mut Vec<KeyValue>, kv: &KeyValue) {
    match attributes.iter_mut().find(|e| e.key == kv.key) {
        Some(existing) => {
            if string_of(existing.value.as_ref()).is_some_and(str::is_empty) || existing.value.is_none() {
                existing.value.clone_from(&kv.value);
            }
        }
        None => attributes.push(kv.clone()),
    }
}

/// A resource's container-level attributes from its pod: the container named by
/// `k8s.container.name`, else the one running `container.id`, else the only one.
pub fn container_attributes(record: &PodRecord, attributes: &mut Vec<KeyValue>) {
    let text = |key: &str| attributes.iter().find(|kv| kv.key == key).and_then(|kv| string_of(kv.value.as_ref()));
    let by_id = text("container.id").map(str::to_string);
    let container = match text("k8s.container.name") {
        Some(name) => record.containers.iter().find(|c| c.name == name),
        None => match &by_id {
            Some(id) => record.containers.iter().find(|c| c.runs.iter().any(|r| r.id == *id)),
            None if record.containers.len() == 1 => record.containers.first(),
            None => None,
        },
    };
    let Some(container) = container else { return };
    for kv in &container.attributes {
        put(attributes, kv);
    }
    let restart = attributes.iter().find(|kv| kv.key == "k8s.container.restart_count").and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::IntValue(n) => u32::try_from(*n).ok(),
            Value::StringValue(s) => s.parse().ok(),
            _ => None,
        }
    });
    let run = match (&by_id, restart) {
        (Some(id), _) => container.runs.iter().find(|r| r.id == *id),
        (None, Some(n)) => container.runs.iter().find(|r| r.restart_count == n),
        (None, None) => container.runs.iter().max_by_key(|r| r.restart_count),
    };
    let Some(run) = run else { return };
    if by_id.is_none() && record.wants_container_id {
        put(attributes, &string("container.id", &run.id));
    }
    if let Some(digest) = run.repo_digest.as_ref().filter(|_| record.wants_digests)
        && !attributes.iter().any(|kv| kv.key == "container.image.repo_digests")
    {
        let values = vec![AnyValue { value: Some(Value::StringValue(digest.clone())) }];
        attributes.push(KeyValue {
            key: "container.image.repo_digests".into(),
            value: Some(AnyValue { value: Some(Value::ArrayValue(ArrayValue { values })) }),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_name_and_tag() {
        assert_eq!(split_image("nginx"), ("nginx", "latest"));
        assert_eq!(split_image("nginx:1.27"), ("nginx", "1.27"));
        assert_eq!(split_image("registry:5000/team/app"), ("registry:5000/team/app", "latest"));
        assert_eq!(split_image("registry:5000/team/app:2.0@sha256:ab"), ("registry:5000/team/app", "2.0"));
    }
}
