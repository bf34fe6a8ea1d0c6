//! The OpenTelemetry Collector's configuration language: YAML with located nodes,
//! `${env:…}` expansion, merging of several files, typed component configs, and
//! validation that reports every problem with its file, line and column.
//!
//! Which component types exist is not known here: a [`Registry`] (the crate's is
//! `crate::registry::Components`) gives each kind's factory table, and each factory
//! turns its component's node into that component's typed config. Components depend
//! on this module; it depends on none of them.

pub mod de;
pub mod env;
pub mod id;
pub mod node;
pub mod telemetry;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

pub use id::{ComponentId, PipelineId};
pub use node::{Fingerprint, Location, Node, NodeKind};
pub use types::{ByteSize, ConfigDuration};

use crate::component::{Factory, Kind};
use crate::pdata::Signal;
use telemetry::TelemetryConfig;

/// The embedded default config, run when no `--config` is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.yaml");
pub const DEFAULT_CONFIG_NAME: &str = "<embedded config/default.yaml>";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with a config, and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.location {
            Some(location) => write!(f, "{location}: {severity}: {}", self.message),
            None => write!(f, "{severity}: {}", self.message),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

#[derive(Clone, Debug, Default)]
pub struct ServiceConfig {
    pub extensions: Vec<ComponentId>,
    pub pipelines: BTreeMap<PipelineId, PipelineConfig>,
    pub telemetry: TelemetryConfig,
    /// ocelot's own: what a reload does after it applied.
    pub reload: ReloadConfig,
}

/// `service.reload`: after a reload applied, watch the agent's health for
/// `verify_window`; on trouble (an exporter failing that did not before, a receiver
/// refusing that did not before, the component health not OK) put the previous config
/// back.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Default false: a reload that applied stays.
    #[serde(default)]
    pub verify: bool,
    /// Default 30s.
    #[serde(default = "default_verify_window")]
    pub verify_window: ConfigDuration,
}

fn default_verify_window() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(30))
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig { verify: false, verify_window: default_verify_window() }
    }
}

impl crate::component::Validate for ReloadConfig {
    fn validate(&self) -> Result<(), String> {
        if self.verify && self.verify_window.0.is_zero() {
            return Err("verify_window must be more than 0s when verify is on".into());
        }
        Ok(())
    }
}

/// The component types a config may name, one factory table per kind, and the typed
/// config each kind's factories make.
pub trait Registry: Clone + fmt::Debug + 'static {
    type Receiver: Clone + fmt::Debug + StorageUser + AuthUser;
    type Processor: Clone + fmt::Debug + StorageUser;
    type Exporter: Clone + fmt::Debug + StorageUser + AuthUser;
    type Connector: Clone + fmt::Debug + RoutesTo;
    type Extension: Clone + fmt::Debug + StorageProvider;
    fn receivers() -> &'static [Factory<Self::Receiver>];
    fn processors() -> &'static [Factory<Self::Processor>];
    fn exporters() -> &'static [Factory<Self::Exporter>];
    fn connectors() -> &'static [Factory<Self::Connector>];
    fn extensions() -> &'static [Factory<Self::Extension>];
}

/// A config that passed validation.
#[derive(Clone, Debug)]
pub struct Config<R: Registry> {
    pub receivers: BTreeMap<ComponentId, R::Receiver>,
    pub processors: BTreeMap<ComponentId, R::Processor>,
    pub exporters: BTreeMap<ComponentId, R::Exporter>,
    pub connectors: BTreeMap<ComponentId, R::Connector>,
    pub extensions: BTreeMap<ComponentId, R::Extension>,
    pub service: ServiceConfig,
    /// Each component's digest: its own node's, with those of the extensions it names
    /// (storage, authenticators) chained in, so a changed extension counts as a change
    /// of every component that uses it.
    pub fingerprints: BTreeMap<(Kind, ComponentId), Fingerprint>,
    /// The merged, expanded document, for `GET /-/config`.
    pub document: Arc<Node>,
    /// The whole document's digest: the running config's hash.
    pub fingerprint: Fingerprint,
}

impl<R: Registry> Config<R> {
    /// The digest of a component's config, as [`Config::fingerprints`] keeps it.
    pub fn fingerprint_of(&self, kind: Kind, id: &ComponentId) -> Option<Fingerprint> {
        self.fingerprints.get(&(kind, id.clone())).copied()
    }
}

/// A config file's name (for messages) and text.
pub struct Source {
    pub name: String,
    pub text: String,
}

/// The result of loading: the config if there were no errors, and every diagnostic.
pub struct Loaded<R: Registry> {
    pub config: Option<Config<R>>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<R: Registry> Loaded<R> {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }
}

const TOP_LEVEL_KEYS: [&str; 6] = ["receivers", "processors", "exporters", "connectors", "extensions", "service"];

/// Reads, expands, merges and validates config files, later ones winning, with the
/// component types of `R`.
pub fn load<R: Registry>(sources: &[Source], lookup_env: &dyn Fn(&str) -> Option<String>) -> Loaded<R> {
    let mut checker = Checker::default();
    let mut root: Option<Node> = None;
    for source in sources {
        match node::parse(&source.name, &source.text) {
            Ok(doc) => match &mut root {
                Some(root) => root.merge(doc),
                None => root = Some(doc),
            },
            Err(e) => checker.error(Some(e.location), e.message),
        }
    }
    let Some(mut root) = root else {
        return Loaded { config: None, diagnostics: checker.diagnostics };
    };
    if checker.has_errors() {
        return Loaded { config: None, diagnostics: checker.diagnostics };
    }
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    env::expand(&mut root, lookup_env, &mut errors, &mut warnings);
    for e in errors {
        checker.error(Some(e.location), e.message);
    }
    for w in warnings {
        checker.warning(Some(w.location), w.message);
    }
    let config = checker.check::<R>(&root);
    let config = if checker.has_errors() { None } else { config };
    Loaded { config, diagnostics: checker.diagnostics }
}

/// Reads the default config; it is tested to be valid.
pub fn load_default<R: Registry>() -> Loaded<R> {
    load(&[Source { name: DEFAULT_CONFIG_NAME.into(), text: DEFAULT_CONFIG.into() }], &|name| std::env::var(name).ok())
}

#[derive(Default)]
struct Checker {
    diagnostics: Vec<Diagnostic>,
    /// Components defined with an invalid config: already reported, so references to
    /// them are not reported again as undefined.
    invalid: BTreeSet<ComponentId>,
}

/// Where each pipeline reference was written, for errors about it.
struct PipelineRefs {
    id: PipelineId,
    key: Location,
    receivers: Vec<(ComponentId, Location)>,
    processors: Vec<(ComponentId, Location)>,
    exporters: Vec<(ComponentId, Location)>,
}

impl Checker {
    fn error(&mut self, location: Option<Location>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic { severity: Severity::Error, location, message: message.into() });
    }

    fn warning(&mut self, location: Option<Location>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic { severity: Severity::Warning, location, message: message.into() });
    }

    fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    fn check<R: Registry>(&mut self, root: &Node) -> Option<Config<R>> {
        let Some(entries) = root.as_map() else {
            self.error(Some(root.location.clone()), format!("the config must be a map, found {}", root.kind_name()));
            return None;
        };
        for (key, _) in entries {
            let name = key.as_str().unwrap_or_default();
            if !TOP_LEVEL_KEYS.contains(&name) {
                self.error(
                    Some(key.location.clone()),
                    format!(
                        "unknown top-level key `{name}`{}; valid: {}",
                        suggest(name, &TOP_LEVEL_KEYS),
                        TOP_LEVEL_KEYS.join(", ")
                    ),
                );
            }
        }
        let receivers = self.section(root, Kind::Receiver, R::receivers());
        let processors = self.section(root, Kind::Processor, R::processors());
        let exporters = self.section(root, Kind::Exporter, R::exporters());
        let connectors = self.section(root, Kind::Connector, R::connectors());
        let extensions = self.section(root, Kind::Extension, R::extensions());
        let service = self.service(root, &receivers, &processors, &exporters, &connectors, &extensions)?;
        self.check_storage(Kind::Receiver, &receivers, &extensions, &service.extensions);
        self.check_storage(Kind::Processor, &processors, &extensions, &service.extensions);
        self.check_storage(Kind::Exporter, &exporters, &extensions, &service.extensions);
        self.check_auth("exporter", &exporters, &extensions, &service.extensions);
        self.check_auth("receiver", &receivers, &extensions, &service.extensions);
        let mut fingerprints = BTreeMap::new();
        let uses = |own: Fingerprint, names: Vec<&str>| {
            let mut parts = vec![own];
            for name in names {
                let ext = ComponentId::parse(name).ok().and_then(|id| extensions.get(&id));
                parts.extend(ext.map(|e| e.fingerprint));
            }
            Fingerprint::chain(&parts)
        };
        for (id, d) in &receivers {
            let mut names = d.config.authenticators();
            names.extend(d.config.storage());
            fingerprints.insert((Kind::Receiver, id.clone()), uses(d.fingerprint, names));
        }
        for (id, d) in &processors {
            fingerprints
                .insert((Kind::Processor, id.clone()), uses(d.fingerprint, d.config.storage().into_iter().collect()));
        }
        for (id, d) in &exporters {
            let mut names = d.config.authenticators();
            names.extend(d.config.storage());
            fingerprints.insert((Kind::Exporter, id.clone()), uses(d.fingerprint, names));
        }
        for (id, d) in &connectors {
            fingerprints.insert((Kind::Connector, id.clone()), d.fingerprint);
        }
        for (id, d) in &extensions {
            fingerprints.insert((Kind::Extension, id.clone()), d.fingerprint);
        }
        Some(Config {
            receivers: receivers.into_iter().map(|(id, s)| (id, s.config)).collect(),
            processors: processors.into_iter().map(|(id, s)| (id, s.config)).collect(),
            exporters: exporters.into_iter().map(|(id, s)| (id, s.config)).collect(),
            connectors: connectors.into_iter().map(|(id, s)| (id, s.config)).collect(),
            extensions: extensions.into_iter().map(|(id, s)| (id, s.config)).collect(),
            service,
            fingerprints,
            document: Arc::new(root.clone()),
            fingerprint: root.fingerprint(),
        })
    }

    /// A component's `storage` must name a `file_storage` extension enabled in
    /// `service.extensions`, as upstream requires.
    fn check_storage<R: StorageUser, X: StorageProvider>(
        &mut self,
        kind: Kind,
        receivers: &BTreeMap<ComponentId, Defined<R>>,
        extensions: &BTreeMap<ComponentId, Defined<X>>,
        enabled: &[ComponentId],
    ) {
        for (id, defined) in receivers {
            let Some(storage) = defined.config.storage() else { continue };
            let problem = match ComponentId::parse(storage) {
                Err(e) => Some(format!("invalid storage id `{storage}`: {e}")),
                Ok(storage_id) => match extensions.get(&storage_id) {
                    None => Some(format!(
                        "storage names `{storage}`, which is not defined under `extensions`{}",
                        defined_list(extensions)
                    )),
                    Some(ext) if !ext.config.is_storage() => {
                        Some(format!("storage names `{storage}`, which is not a file_storage extension"))
                    }
                    Some(_) if !enabled.contains(&storage_id) => {
                        Some(format!("storage names `{storage}`, which is not listed in service.extensions"))
                    }
                    Some(_) => None,
                },
            };
            if let Some(problem) = problem {
                self.error(Some(defined.location.clone()), format!("{kind} `{id}`: {problem}"));
            }
        }
    }

    /// A component's `auth.authenticator` must name an authenticator extension enabled
    /// in `service.extensions`, as upstream requires.
    fn check_auth<R: AuthUser, X: StorageProvider>(
        &mut self,
        kind: &str,
        components: &BTreeMap<ComponentId, Defined<R>>,
        extensions: &BTreeMap<ComponentId, Defined<X>>,
        enabled: &[ComponentId],
    ) {
        for (id, defined) in components {
            for name in defined.config.authenticators() {
                let problem = match ComponentId::parse(name) {
                    Err(e) => Some(format!("invalid authenticator id `{name}`: {e}")),
                    Ok(auth_id) => match extensions.get(&auth_id) {
                        None => Some(format!(
                            "auth.authenticator names `{name}`, which is not defined under `extensions`{}",
                            defined_list(extensions)
                        )),
                        Some(ext) if !ext.config.is_authenticator() => Some(format!(
                            "auth.authenticator names `{name}`, which is not an authenticator (bearertokenauth, basicauth, headers_setter)"
                        )),
                        Some(_) if !enabled.contains(&auth_id) => Some(format!(
                            "auth.authenticator names `{name}`, which is not listed in service.extensions"
                        )),
                        Some(ext) => ext
                            .config
                            .auth_problem(kind == "receiver")
                            .map(|p| format!("auth.authenticator `{name}`: {p}")),
                    },
                };
                if let Some(problem) = problem {
                    self.error(Some(defined.location.clone()), format!("{kind} `{id}`: {problem}"));
                }
            }
        }
    }

    /// Reads one of `receivers`, `processors` … into typed configs.
    fn section<C>(
        &mut self,
        root: &Node,
        kind: Kind,
        factories: &'static [Factory<C>],
    ) -> BTreeMap<ComponentId, Defined<C>> {
        let mut out = BTreeMap::new();
        let Some(section) = root.get(kind.section()) else {
            return out;
        };
        if section.is_null() {
            return out;
        }
        let Some(entries) = section.as_map() else {
            self.error(
                Some(section.location.clone()),
                format!("`{}` must be a map of component ids to configs", kind.section()),
            );
            return out;
        };
        for (key, value) in entries {
            let text = key.as_str().unwrap_or_default();
            let id = match ComponentId::parse(text) {
                Ok(id) => id,
                Err(message) => {
                    self.error(Some(key.location.clone()), message);
                    continue;
                }
            };
            let Some(factory) = factories.iter().find(|f| f.is_named(&id.type_name)) else {
                let names: Vec<&str> = factories
                    .iter()
                    .flat_map(|f| std::iter::once(f.type_name).chain(f.aliases.iter().copied()))
                    .collect();
                self.error(
                    Some(key.location.clone()),
                    format!(
                        "unknown {kind} type `{}`{}; valid {kind} types: {}",
                        id.type_name,
                        suggest(&id.type_name, &names),
                        names.join(", ")
                    ),
                );
                continue;
            };
            match (factory.parse)(value) {
                Ok(config) => {
                    let defined = Defined {
                        config,
                        signals: factory.signals,
                        location: key.location.clone(),
                        fingerprint: value.fingerprint(),
                    };
                    out.insert(id, defined);
                }
                Err(e) => {
                    let location = e.location.unwrap_or_else(|| value.location.clone());
                    self.error(Some(location), format!("{kind} `{id}`: {}", e.message));
                    self.invalid.insert(id);
                }
            }
        }
        out
    }

    fn service<R, P, E, C: RoutesTo, X>(
        &mut self,
        root: &Node,
        receivers: &BTreeMap<ComponentId, Defined<R>>,
        processors: &BTreeMap<ComponentId, Defined<P>>,
        exporters: &BTreeMap<ComponentId, Defined<E>>,
        connectors: &BTreeMap<ComponentId, Defined<C>>,
        extensions: &BTreeMap<ComponentId, Defined<X>>,
    ) -> Option<ServiceConfig> {
        let Some(service) = root.get("service") else {
            self.error(
                Some(root.location.clone()),
                "missing `service` section: it must define at least one pipeline under `service.pipelines`",
            );
            return None;
        };
        let mut config = ServiceConfig::default();
        let empty = Vec::new();
        let entries = match &service.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Null => &empty,
            _ => {
                self.error(
                    Some(service.location.clone()),
                    "`service` must be a map with `pipelines`, `extensions` and `telemetry`",
                );
                return None;
            }
        };
        let mut pipelines_node = None;
        for (key, value) in entries {
            match key.as_str().unwrap_or_default() {
                "extensions" => {
                    for (id, location) in self.id_list(value, "service.extensions") {
                        if !extensions.contains_key(&id) {
                            self.error(
                                Some(location),
                                format!(
                                    "service.extensions names `{id}`, which is not defined under `extensions`{}",
                                    defined_list(extensions)
                                ),
                            );
                        } else {
                            config.extensions.push(id);
                        }
                    }
                }
                "pipelines" => pipelines_node = Some(value),
                "reload" => match crate::component::parse_config::<ReloadConfig>(value) {
                    Ok(reload) => config.reload = reload,
                    Err(e) => self.error(
                        e.location.clone().or(Some(value.location.clone())),
                        format!("service.reload: {}", e.message),
                    ),
                },
                "telemetry" => match crate::component::parse_config::<TelemetryConfig>(value) {
                    Ok(telemetry) => config.telemetry = telemetry,
                    Err(e) => self.error(
                        e.location.clone().or(Some(value.location.clone())),
                        format!("service.telemetry: {}", e.message),
                    ),
                },
                other => self.error(
                    Some(key.location.clone()),
                    format!(
                        "unknown key `{other}` in `service`{}; valid: extensions, pipelines, telemetry, reload",
                        suggest(other, &["extensions", "pipelines", "telemetry", "reload"])
                    ),
                ),
            }
        }
        let Some(pipelines_node) = pipelines_node.filter(|n| !n.is_null()) else {
            self.error(
                Some(service.location.clone()),
                "service.pipelines must define at least one pipeline, such as `traces`, `metrics` or `logs`",
            );
            return None;
        };
        let Some(pipeline_entries) = pipelines_node.as_map() else {
            self.error(
                Some(pipelines_node.location.clone()),
                "service.pipelines must be a map of pipeline ids to pipelines",
            );
            return None;
        };
        let mut refs = Vec::new();
        for (key, value) in pipeline_entries {
            let id = match PipelineId::parse(key.as_str().unwrap_or_default()) {
                Ok(id) => id,
                Err(message) => {
                    self.error(Some(key.location.clone()), message);
                    continue;
                }
            };
            let mut pipeline = PipelineRefs {
                id,
                key: key.location.clone(),
                receivers: vec![],
                processors: vec![],
                exporters: vec![],
            };
            match &value.kind {
                NodeKind::Map(fields) => {
                    for (field, list) in fields {
                        let what = format!("pipeline `{}` {}", pipeline.id, field.as_str().unwrap_or_default());
                        match field.as_str().unwrap_or_default() {
                            "receivers" => pipeline.receivers = self.id_list(list, &what),
                            "processors" => pipeline.processors = self.id_list(list, &what),
                            "exporters" => pipeline.exporters = self.id_list(list, &what),
                            other => self.error(
                                Some(field.location.clone()),
                                format!(
                                    "unknown key `{other}` in pipeline `{}`; valid: receivers, processors, exporters",
                                    pipeline.id
                                ),
                            ),
                        }
                    }
                }
                NodeKind::Null => {}
                _ => {
                    self.error(
                        Some(value.location.clone()),
                        format!("pipeline `{}` must be a map with receivers, processors and exporters", pipeline.id),
                    );
                    continue;
                }
            }
            refs.push(pipeline);
        }
        self.check_pipelines(&refs, receivers, processors, exporters, connectors);
        self.warn_unused(&refs, receivers, processors, exporters, connectors, extensions, &config.extensions);
        for pipeline in refs {
            let strip = |list: Vec<(ComponentId, Location)>| list.into_iter().map(|(id, _)| id).collect();
            config.pipelines.insert(
                pipeline.id,
                PipelineConfig {
                    receivers: strip(pipeline.receivers),
                    processors: strip(pipeline.processors),
                    exporters: strip(pipeline.exporters),
                },
            );
        }
        Some(config)
    }

    fn id_list(&mut self, node: &Node, what: &str) -> Vec<(ComponentId, Location)> {
        let items = match &node.kind {
            NodeKind::Seq(items) => items.as_slice(),
            NodeKind::Null => &[],
            _ => {
                self.error(Some(node.location.clone()), format!("{what} must be a list of component ids"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            let Some(text) = item.as_str() else {
                self.error(
                    Some(item.location.clone()),
                    format!("{what}: expected a component id, found {}", item.kind_name()),
                );
                continue;
            };
            match ComponentId::parse(text) {
                Ok(id) => {
                    if out.iter().any(|(seen, _)| seen == &id) {
                        self.error(Some(item.location.clone()), format!("{what} lists `{id}` twice"));
                    } else {
                        out.push((id, item.location.clone()));
                    }
                }
                Err(message) => self.error(Some(item.location.clone()), message),
            }
        }
        out
    }

    fn check_pipelines<R, P, E, C: RoutesTo>(
        &mut self,
        refs: &[PipelineRefs],
        receivers: &BTreeMap<ComponentId, Defined<R>>,
        processors: &BTreeMap<ComponentId, Defined<P>>,
        exporters: &BTreeMap<ComponentId, Defined<E>>,
        connectors: &BTreeMap<ComponentId, Defined<C>>,
    ) {
        for pipeline in refs {
            let signal = pipeline.id.signal;
            if pipeline.receivers.is_empty() {
                self.error(
                    Some(pipeline.key.clone()),
                    format!("pipeline `{}` must have at least one receiver", pipeline.id),
                );
            }
            if pipeline.exporters.is_empty() {
                self.error(
                    Some(pipeline.key.clone()),
                    format!("pipeline `{}` must have at least one exporter", pipeline.id),
                );
            }
            for (id, location) in &pipeline.receivers {
                let found = receivers
                    .get(id)
                    .map(|d| (d.signals, "receiver"))
                    .or(connectors.get(id).map(|d| (d.signals, "connector")));
                self.check_reference(&pipeline.id, id, location, found, signal, "receivers", || {
                    defined_list2(receivers, connectors)
                });
            }
            for (id, location) in &pipeline.processors {
                let found = processors.get(id).map(|d| (d.signals, "processor"));
                self.check_reference(&pipeline.id, id, location, found, signal, "processors", || {
                    defined_list(processors)
                });
            }
            for (id, location) in &pipeline.exporters {
                let found = exporters
                    .get(id)
                    .map(|d| (d.signals, "exporter"))
                    .or(connectors.get(id).map(|d| (d.signals, "connector")));
                self.check_reference(&pipeline.id, id, location, found, signal, "exporters", || {
                    defined_list2(exporters, connectors)
                });
            }
        }
        // A connector joins pipelines: it must be an exporter in one and a receiver in
        // another, and (`forward`) of the same signal on both sides.
        for (id, defined) in connectors {
            let as_exporter = refs.iter().any(|p| p.exporters.iter().any(|(e, _)| e == id));
            let as_receiver = refs.iter().any(|p| p.receivers.iter().any(|(r, _)| r == id));
            if as_exporter != as_receiver {
                let (used, missing) =
                    if as_exporter { ("an exporter", "a receiver") } else { ("a receiver", "an exporter") };
                self.error(
                    Some(defined.location.clone()),
                    format!(
                        "connector `{id}` is used as {used} but not as {missing}; a connector must join two pipelines"
                    ),
                );
                continue;
            }
            for pipeline in refs {
                let Some((_, location)) = pipeline.exporters.iter().find(|(e, _)| e == id) else {
                    continue;
                };
                let signal = pipeline.id.signal;
                let joined = refs.iter().any(|q| q.id.signal == signal && q.receivers.iter().any(|(r, _)| r == id));
                if !joined {
                    self.error(
                        Some(location.clone()),
                        format!(
                            "connector `{id}` receives {signal} from pipeline `{}`, but no {signal} pipeline lists it as a receiver; `{}` passes data on within one signal",
                            pipeline.id, id.type_name
                        ),
                    );
                }
            }
        }
        // A routing connector sends only to pipelines that receive from it.
        for (id, defined) in connectors {
            for name in defined.config.routed_pipelines() {
                let problem = match PipelineId::parse(name) {
                    Err(e) => Some(format!("invalid pipeline `{name}`: {e}")),
                    Ok(target) => match refs.iter().find(|p| p.id == target) {
                        None => Some(format!("routes to pipeline `{name}`, which is not defined in service.pipelines")),
                        Some(p) if !p.receivers.iter().any(|(r, _)| r == id) => Some(format!(
                            "routes to pipeline `{name}`, which does not list `{id}` as a receiver; add it to that pipeline's receivers"
                        )),
                        Some(_) => None,
                    },
                };
                if let Some(problem) = problem {
                    self.error(Some(defined.location.clone()), format!("connector `{id}`: {problem}"));
                }
            }
        }
        self.check_cycles(refs, connectors);
    }

    #[allow(clippy::too_many_arguments)]
    fn check_reference(
        &mut self,
        pipeline: &PipelineId,
        id: &ComponentId,
        location: &Location,
        found: Option<(&'static [Signal], &'static str)>,
        signal: Signal,
        section: &str,
        defined: impl Fn() -> String,
    ) {
        match found {
            None if self.invalid.contains(id) => {}
            None => self.error(
                Some(location.clone()),
                format!("pipeline `{pipeline}` references {section} `{id}`, which is not defined{}", defined()),
            ),
            Some((signals, kind)) if !signals.contains(&signal) => {
                let supported: Vec<&str> = signals.iter().map(|s| s.as_str()).collect();
                self.error(
                    Some(location.clone()),
                    format!(
                        "{kind} `{id}` does not support {signal} (pipeline `{pipeline}`); type `{}` supports: {}",
                        id.type_name,
                        supported.join(", ")
                    ),
                );
            }
            Some(_) => {}
        }
    }

    /// Pipelines joined by connectors must not form a loop: data would circle forever.
    fn check_cycles<C>(&mut self, refs: &[PipelineRefs], connectors: &BTreeMap<ComponentId, Defined<C>>) {
        let edges = |from: &PipelineRefs| -> Vec<usize> {
            refs.iter()
                .enumerate()
                .filter(|(_, to)| {
                    from.exporters
                        .iter()
                        .any(|(e, _)| connectors.contains_key(e) && to.receivers.iter().any(|(r, _)| r == e))
                })
                .map(|(i, _)| i)
                .collect()
        };
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; refs.len()];
        fn visit(
            i: usize,
            state: &mut [u8],
            edges: &dyn Fn(&PipelineRefs) -> Vec<usize>,
            refs: &[PipelineRefs],
        ) -> bool {
            state[i] = 1;
            for j in edges(&refs[i]) {
                if state[j] == 1 || (state[j] == 0 && visit(j, state, edges, refs)) {
                    return true;
                }
            }
            state[i] = 2;
            false
        }
        for i in 0..refs.len() {
            if state[i] == 0 && visit(i, &mut state, &edges, refs) {
                self.error(
                    Some(refs[i].key.clone()),
                    format!("pipeline `{}` is part of a loop of pipelines joined by connectors", refs[i].id),
                );
                return;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn warn_unused<R, P, E, C, X>(
        &mut self,
        refs: &[PipelineRefs],
        receivers: &BTreeMap<ComponentId, Defined<R>>,
        processors: &BTreeMap<ComponentId, Defined<P>>,
        exporters: &BTreeMap<ComponentId, Defined<E>>,
        connectors: &BTreeMap<ComponentId, Defined<C>>,
        extensions: &BTreeMap<ComponentId, Defined<X>>,
        enabled_extensions: &[ComponentId],
    ) {
        let used = |pick: fn(&PipelineRefs) -> &Vec<(ComponentId, Location)>| -> BTreeSet<ComponentId> {
            refs.iter().flat_map(|p| pick(p).iter().map(|(id, _)| id.clone())).collect()
        };
        let used_receivers = used(|p| &p.receivers);
        let used_processors = used(|p| &p.processors);
        let used_exporters = used(|p| &p.exporters);
        let mut unused = Vec::new();
        unused.extend(
            receivers
                .iter()
                .filter(|(id, _)| !used_receivers.contains(id))
                .map(|(id, d)| (Kind::Receiver, id, &d.location)),
        );
        unused.extend(
            processors
                .iter()
                .filter(|(id, _)| !used_processors.contains(id))
                .map(|(id, d)| (Kind::Processor, id, &d.location)),
        );
        unused.extend(
            exporters
                .iter()
                .filter(|(id, _)| !used_exporters.contains(id))
                .map(|(id, d)| (Kind::Exporter, id, &d.location)),
        );
        unused.extend(
            connectors
                .iter()
                .filter(|(id, _)| !used_exporters.contains(id) && !used_receivers.contains(id))
                .map(|(id, d)| (Kind::Connector, id, &d.location)),
        );
        unused.extend(
            extensions
                .iter()
                .filter(|(id, _)| !enabled_extensions.contains(id))
                .map(|(id, d)| (Kind::Extension, id, &d.location)),
        );
        for (kind, id, location) in unused {
            let place = if kind == Kind::Extension { "service.extensions" } else { "any pipeline" };
            self.warning(
                Some(location.clone()),
                format!("{kind} `{id}` is defined but not used in {place}; it will not run"),
            );
        }
    }
}

/// A component config as read, with what it supports and where it was defined.
/// A connector config that names the pipelines it sends to (`routing`).
pub trait RoutesTo {
    fn routed_pipelines(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// A component config that may keep its state in a storage extension.
pub trait StorageUser {
    fn storage(&self) -> Option<&str>;
}

/// An extension config that may be a storage extension.
pub trait StorageProvider {
    fn is_storage(&self) -> bool;

    /// Whether it is an authenticator (`bearertokenauth`, `basicauth`, `headers_setter`).
    fn is_authenticator(&self) -> bool {
        false
    }

    /// Why this authenticator cannot serve a receiver (`server`) or an exporter.
    fn auth_problem(&self, _server: bool) -> Option<String> {
        None
    }
}

/// A component config that may name authenticator extensions (`auth.authenticator`).
pub trait AuthUser {
    fn authenticators(&self) -> Vec<&str>;
}

struct Defined<C> {
    config: C,
    signals: &'static [Signal],
    location: Location,
    fingerprint: Fingerprint,
}

fn defined_list<C>(defined: &BTreeMap<ComponentId, Defined<C>>) -> String {
    if defined.is_empty() {
        "; no valid one is defined".into()
    } else {
        let names: Vec<String> = defined.keys().map(|id| format!("`{id}`")).collect();
        format!("; defined: {}", names.join(", "))
    }
}

fn defined_list2<A, B>(a: &BTreeMap<ComponentId, Defined<A>>, b: &BTreeMap<ComponentId, Defined<B>>) -> String {
    let names: Vec<String> = a.keys().chain(b.keys()).map(|id| format!("`{id}`")).collect();
    if names.is_empty() { "; no valid one is defined".into() } else { format!("; defined: {}", names.join(", ")) }
}

/// ", did you mean `x`?" for a near miss, or nothing.
fn suggest(word: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
