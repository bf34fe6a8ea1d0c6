//! The task that keeps one pod table: list + watch of the pods, owner lookups
//! (ReplicaSet → Deployment, Job → CronJob) cached by owner uid, and deleted pods let
//! go once their grace period is over. It wakes for API events and for the next
//! expiry only.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::table::{Change as Upserted, Owners, Source};
use super::{K8sAttributesConfig, POD_DELETE_GRACE_PERIOD, Shared};
use crate::kube::client::{KubeClient, KubeError};
use crate::kube::objects::{Namespace, Node, Owned, Pod};
use crate::kube::watch::{HasVersion, Reflector, Update, encode};
use crate::telemetry::K8sAttributesMetrics;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Owners remembered, at most; past this the cache starts over.
const MAX_OWNERS: usize = 10_000;
/// An owner lookup gets this long; a failed one is not tried again for a while.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const LOOKUP_RETRY: std::time::Duration = std::time::Duration::from_secs(300);

pub struct Setup {
    pub client: KubeClient,
    pub path: String,
    pub field_selector: String,
    pub label_selector: String,
    pub config: K8sAttributesConfig,
    pub shared: Arc<Shared>,
    pub metrics: K8sAttributesMetrics,
    /// Told once, after the first list is in the table.
    pub synced: std::sync::mpsc::SyncSender<()>,
    /// Where the list + watch tasks run.
    pub tasks: tokio_util::task::TaskTracker,
    /// The node the pods are kept to: only its node object is watched.
    pub node: Option<String>,
}

/// A change to one of the watched kinds.
enum Change {
    Pod(Box<Update<Pod>>),
    Namespace(Update<Namespace>),
    Node(Update<Node>),
}

/// The watches: pods always; namespaces and nodes when their metadata is extracted.
struct Reflectors {
    pods: Reflector<Pod>,
    namespaces: Option<Reflector<Namespace>>,
    nodes: Option<Reflector<Node>>,
}

pub struct Watcher {
    reflectors: Option<Reflectors>,
    owners: OwnerCache,
    shared: Arc<Shared>,
    metrics: K8sAttributesMetrics,
    synced: Option<std::sync::mpsc::SyncSender<()>>,
    tasks: tokio_util::task::TaskTracker,
}

impl Watcher {
    pub fn new(setup: Setup) -> Watcher {
        let reflector = Reflector::new(
            setup.client.clone(),
            &setup.path,
            &setup.field_selector,
            &setup.label_selector,
            setup.metrics.api_errors.clone(),
        );
        let errors = setup.metrics.api_errors.clone();
        let namespaces = setup
            .shared
            .extract
            .wants_namespaces()
            .then(|| Reflector::new(setup.client.clone(), "/api/v1/namespaces", "", "", errors.clone()));
        let nodes = setup.shared.extract.wants_nodes().then(|| {
            let field = setup.node.as_deref().map(|n| format!("metadata.name={n}")).unwrap_or_default();
            Reflector::new(setup.client.clone(), "/api/v1/nodes", &field, "", errors.clone())
        });
        let owners = OwnerCache::new(setup.client, &setup.config, errors);
        Watcher {
            reflectors: Some(Reflectors { pods: reflector, namespaces, nodes }),
            owners,
            shared: setup.shared,
            metrics: setup.metrics,
            synced: Some(setup.synced),
            tasks: setup.tasks,
        }
    }

    /// Runs until every processor instance is gone. The list + watch runs in a task
    /// of its own and hands its changes over, so neither an expiry nor an owner
    /// lookup ever cuts a list or a backoff short.
    pub async fn run(mut self, mut gone: mpsc::Receiver<()>) {
        let Some(reflectors) = self.reflectors.take() else { return };
        let (changes, mut updates) = mpsc::channel::<Change>(16);
        let stop = tokio_util::sync::CancellationToken::new();
        let _stop_watch = stop.clone().drop_guard();
        forward(&self.tasks, reflectors.pods, |u| Change::Pod(Box::new(u)), changes.clone(), stop.clone());
        if let Some(namespaces) = reflectors.namespaces {
            forward(&self.tasks, namespaces, Change::Namespace, changes.clone(), stop.clone());
        }
        if let Some(nodes) = reflectors.nodes {
            forward(&self.tasks, nodes, Change::Node, changes, stop);
        }
        loop {
            let expiry = self.table_read(|t| t.next_expiry());
            tokio::select! {
                biased;
                None = gone.recv() => break,
                _ = sleep_until(expiry), if expiry.is_some() => {
                    let removed = self.table_write(|t| t.expire(Instant::now()));
                    self.metrics.deleted.inc_by(removed as u64);
                }
                update = updates.recv() => match update {
                    Some(Change::Pod(update)) => self.apply(*update).await,
                    Some(Change::Namespace(update)) => self.objects(Source::Namespace, update),
                    Some(Change::Node(update)) => self.objects(Source::Node, update),
                    None => break,
                },
            }
            self.metrics.table_size.set(self.table_read(|t| t.len()) as i64);
        }
        debug!("The pod watch stopped: no processor uses it.");
    }

    /// A namespace or node changed: what it adds to its pods' resources.
    fn objects<T: HasMeta>(&mut self, source: Source, update: Update<T>) {
        let extract = &self.shared.extract;
        let entry = |o: &T| (o.meta().name.clone(), extract.object_attributes(source, o.meta()));
        let cluster_uid = |o: &T| {
            let meta = o.meta();
            (source == Source::Namespace && meta.name == "kube-system" && extract.wants_cluster_uid())
                .then(|| vec![super::table::string("k8s.cluster.uid", &meta.uid)])
        };
        let mut table = self.shared.table.write().unwrap_or_else(PoisonError::into_inner);
        let map = match source {
            Source::Namespace => &mut table.namespaces,
            _ => &mut table.nodes,
        };
        let mut cluster = None;
        match update {
            Update::Listed(all) => {
                *map = all.iter().map(entry).collect();
                cluster = all.iter().find_map(cluster_uid);
            }
            Update::Added(o) | Update::Modified(o) => {
                let (name, attributes) = entry(&o);
                map.insert(name, attributes);
                cluster = cluster_uid(&o);
            }
            Update::Deleted(o) => {
                map.remove(&o.meta().name);
            }
        }
        if let Some(cluster) = cluster {
            table.cluster = cluster;
        }
    }

    async fn apply(&mut self, update: Update<Pod>) {
        let now = Instant::now();
        match update {
            Update::Listed(pods) => {
                let mut records = Vec::with_capacity(pods.len());
                for pod in pods.iter().filter(|p| !self.shared.extract.excludes(p)) {
                    let owners = self.owners.of(pod).await;
                    records.push(self.shared.extract.record(pod, &owners));
                }
                let present: HashSet<String> = records.iter().map(|r| r.uid.clone()).collect();
                let n = records.len();
                let (added, updated) = self.table_write(|table| {
                    let (mut added, mut updated) = (0, 0);
                    for record in records {
                        match table.upsert(record) {
                            Upserted::Added => added += 1,
                            Upserted::Updated => updated += 1,
                            Upserted::Unchanged => {}
                        }
                    }
                    table.retain_listed(&present, now + POD_DELETE_GRACE_PERIOD);
                    (added, updated)
                });
                self.metrics.added.inc_by(added);
                self.metrics.updated.inc_by(updated);
                if let Some(synced) = self.synced.take() {
                    info!(pods = n, "The pod list is read; resources are tagged from now on.");
                    let _ = synced.try_send(());
                }
            }
            Update::Added(pod) | Update::Modified(pod) => {
                if self.shared.extract.excludes(&pod) {
                    let uid = pod.metadata.uid.clone();
                    self.table_write(|t| t.delete_at(&uid, now));
                    return;
                }
                let owners = self.owners.of(&pod).await;
                let record = self.shared.extract.record(&pod, &owners);
                match self.table_write(|t| t.upsert(record)) {
                    Upserted::Added => {
                        self.metrics.added.inc();
                    }
                    Upserted::Updated => {
                        self.metrics.updated.inc();
                    }
                    Upserted::Unchanged => {}
                }
            }
            Update::Deleted(pod) => {
                let uid = pod.metadata.uid;
                self.table_write(|t| t.delete_at(&uid, now + POD_DELETE_GRACE_PERIOD));
            }
        }
    }

    fn table_read<T>(&self, f: impl FnOnce(&super::Table) -> T) -> T {
        f(&self.shared.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn table_write<T>(&self, f: impl FnOnce(&mut super::Table) -> T) -> T {
        f(&mut self.shared.table.write().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Runs one reflector in a task of its own, handing its changes to the watcher.
fn forward<T>(
    tasks: &tokio_util::task::TaskTracker,
    mut reflector: Reflector<T>,
    wrap: fn(Update<T>) -> Change,
    changes: mpsc::Sender<Change>,
    stop: tokio_util::sync::CancellationToken,
) where
    T: serde::de::DeserializeOwned + HasVersion + Send + 'static,
{
    tasks.spawn(async move {
        loop {
            let update = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                update = reflector.next() => update,
            };
            if changes.send(wrap(update)).await.is_err() {
                return;
            }
        }
    });
}

/// An object with metadata.
trait HasMeta {
    fn meta(&self) -> &crate::kube::objects::ObjectMeta;
}

impl HasMeta for Namespace {
    fn meta(&self) -> &crate::kube::objects::ObjectMeta {
        &self.metadata
    }
}

impl HasMeta for Node {
    fn meta(&self) -> &crate::kube::objects::ObjectMeta {
        &self.metadata
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The owners of pods' owners: looked up in the API when the config needs a uid (or
/// `deployment_name_from_replicaset: false`), worked out from names otherwise, as
/// upstream does.
struct OwnerCache {
    client: KubeClient,
    want_deployment: bool,
    lookup_replicasets: bool,
    want_cronjob: bool,
    lookup_jobs: bool,
    /// Owner uid → its controller's (name, uid); `None` when it has none (or is gone).
    cache: HashMap<String, Option<(String, String)>>,
    /// Owners whose lookup failed, and when: names are worked out until then.
    failed: HashMap<String, Instant>,
    errors: Counter,
    warned: bool,
}

impl OwnerCache {
    fn new(client: KubeClient, config: &K8sAttributesConfig, errors: Counter) -> OwnerCache {
        let from_name = config.extract.deployment_name_from_replicaset.unwrap_or(true);
        OwnerCache {
            client,
            want_deployment: config.wants("k8s.deployment.name") || config.wants("k8s.deployment.uid"),
            lookup_replicasets: config.wants("k8s.deployment.uid")
                || (config.wants("k8s.deployment.name") && !from_name),
            want_cronjob: config.wants("k8s.cronjob.name") || config.wants("k8s.cronjob.uid"),
            lookup_jobs: config.wants("k8s.cronjob.uid"),
            cache: HashMap::default(),
            failed: HashMap::default(),
            errors,
            warned: false,
        }
    }

    async fn of(&mut self, pod: &Pod) -> Owners {
        let mut owners = Owners::default();
        let Some(owner) = pod.metadata.controller() else { return owners };
        match owner.kind.as_str() {
            "ReplicaSet" if self.want_deployment => {
                let looked_up = match self.lookup_replicasets {
                    true => self.lookup("apps/v1", "replicasets", "Deployment", &pod.metadata.namespace, owner).await,
                    false => None,
                };
                owners.deployment = match looked_up {
                    Some(found) => found.map(|(name, uid)| (name, Some(uid))),
                    None => deployment_from_name(&owner.name, pod).map(|name| (name, None)),
                };
            }
            "Job" if self.want_cronjob => {
                let looked_up = match self.lookup_jobs {
                    true => self.lookup("batch/v1", "jobs", "CronJob", &pod.metadata.namespace, owner).await,
                    false => None,
                };
                owners.cronjob = match looked_up {
                    Some(found) => found.map(|(name, uid)| (name, Some(uid))),
                    None => cronjob_from_name(&owner.name, pod).map(|name| (name, None)),
                };
            }
            _ => {}
        }
        owners
    }

    /// The controller of kind `kind` of the pod's owner: `Some(None)` if it has none,
    /// `None` if the lookup failed (the caller falls back on names).
    async fn lookup(
        &mut self,
        group_version: &str,
        resource: &str,
        kind: &str,
        namespace: &str,
        owner: &crate::kube::objects::OwnerReference,
    ) -> Option<Option<(String, String)>> {
        if let Some(found) = self.cache.get(&owner.uid) {
            return Some(found.clone());
        }
        if self.failed.get(&owner.uid).is_some_and(|at| at.elapsed() < LOOKUP_RETRY) {
            return None;
        }
        let path = format!("/apis/{group_version}/namespaces/{}/{resource}/{}", encode(namespace), encode(&owner.name));
        let looked_up = match tokio::time::timeout(LOOKUP_TIMEOUT, self.client.get::<Owned>(&path)).await {
            Ok(result) => result,
            Err(_) => Err(KubeError::Transport(format!("GET {path} took longer than {LOOKUP_TIMEOUT:?}"))),
        };
        let found = match looked_up {
            Ok(object) => {
                object.metadata.controller().filter(|c| c.kind == kind).map(|c| (c.name.clone(), c.uid.clone()))
            }
            Err(KubeError::Status { status: 404, .. }) => None,
            Err(e) => {
                self.errors.inc();
                if self.failed.len() >= MAX_OWNERS {
                    self.failed.clear();
                }
                self.failed.insert(owner.uid.clone(), Instant::now());
                if !self.warned {
                    warn!(error = %e, "Looking up a pod's owner failed; its name is worked out from the pod instead (may the service account get {resource}?).");
                    self.warned = true;
                }
                return None;
            }
        };
        if self.cache.len() >= MAX_OWNERS {
            self.cache.clear();
        }
        self.failed.remove(&owner.uid);
        self.cache.insert(owner.uid.clone(), found.clone());
        Some(found)
    }
}

/// The owners' names as the pod's own names tell them, with no lookup.
pub fn owners_from_names(pod: &Pod) -> Owners {
    let mut owners = Owners::default();
    if let Some(owner) = pod.metadata.controller() {
        match owner.kind.as_str() {
            "ReplicaSet" => owners.deployment = deployment_from_name(&owner.name, pod).map(|n| (n, None)),
            "Job" => owners.cronjob = cronjob_from_name(&owner.name, pod).map(|n| (n, None)),
            _ => {}
        }
    }
    owners
}

/// `web-5d9c8f` owned by Deployment `web`: the ReplicaSet's name less `-<pod-template-hash>`.
fn deployment_from_name(replicaset: &str, pod: &Pod) -> Option<String> {
    let hash = pod.metadata.labels.get("pod-template-hash")?;
    replicaset.strip_suffix(hash.as_str())?.strip_suffix('-').filter(|n| !n.is_empty()).map(str::to_string)
}

/// `backup-29012345` made by CronJob `backup`: the Job's name less its schedule
/// suffix (minutes since the epoch), when that is within a day of the pod's creation.
fn cronjob_from_name(job: &str, pod: &Pod) -> Option<String> {
    let (name, suffix) = job.rsplit_once('-')?;
    if suffix.len() != 8 || !suffix.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    let minutes: i64 = suffix.parse().ok()?;
    if let Some(created) = pod.metadata.creation_timestamp.as_deref()
        && let Ok(created) = created.parse::<jiff::Timestamp>()
        && (created.as_second() / 60 - minutes).abs() > 1440
    {
        return None;
    }
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_worked_out_from_names() {
        let mut pod = Pod::default();
        pod.metadata.labels.insert("pod-template-hash".into(), "5d9c8f".into());
        assert_eq!(deployment_from_name("web-5d9c8f", &pod).as_deref(), Some("web"));
        assert_eq!(deployment_from_name("web-other", &pod), None);
        pod.metadata.creation_timestamp = Some("2026-01-01T00:00:00Z".into());
        let minutes = "2026-01-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap().as_second() / 60;
        assert_eq!(cronjob_from_name(&format!("backup-{minutes}"), &pod).as_deref(), Some("backup"));
        assert_eq!(cronjob_from_name(&format!("backup-{}", minutes - 5000), &pod), None);
        assert_eq!(cronjob_from_name("backup-123", &pod), None);
    }
}
