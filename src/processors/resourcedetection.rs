//! The `resourcedetection` processor (also `resource_detection`): attributes of the
//! host the agent runs on, found by detectors and added to every resource.
//!
//! Detectors, as upstream: `env` (`OTEL_RESOURCE_ATTRIBUTES`), `system` (`host.name`
//! and `os.type` by default; `host.id`, `host.arch`, `os.description`, `os.version`
//! and the CPU attributes when enabled; `hostname_sources` `dns` and `os`) and
//! `docker` (the daemon's host name and OS type over its socket). The cloud and
//! Kubernetes detectors are refused with a clear error until they exist. Earlier
//! detectors win over later ones; `override` (default true) says whether detected
//! attributes replace those already on a resource.
//!
//! Detection runs when the processor starts, bounded by `timeout`, and again every
//! `refresh_interval` if set, on a short-lived thread so the pipeline never waits on
//! it. A detector that fails is logged and adds nothing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::Processor;
use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::pdata::Batch;
use crate::telemetry::ProcessorMetrics;

pub const TYPE: &str = "resourcedetection";
pub const ALIASES: &[&str] = &["resource_detection"];

/// Detectors upstream has that ocelot does not yet: named in the error.
const NOT_YET: &[&str] = &[
    "k8s_api",
    "k8snode",
    "ec2",
    "ecs",
    "eks",
    "elastic_beanstalk",
    "lambda",
    "gcp",
    "azure",
    "aks",
    "heroku",
    "openshift",
    "consul",
    "dynatrace",
    "akamai",
    "alibaba_ecs",
    "hetzner",
    "oraclecloud",
    "scaleway",
    "upcloud",
    "vultr",
    "digitalocean",
    "kubeadm",
    "openstack_nova",
];

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceDetectionConfig {
    /// `env`, `system`, `docker`, in order of precedence.
    pub detectors: Vec<String>,
    /// How long detection may take. Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Whether detected attributes replace a resource's own. Default true.
    #[serde(default = "default_true", rename = "override")]
    pub override_existing: bool,
    /// Detect again this often; 0 (the default) detects once.
    #[serde(default)]
    pub refresh_interval: Option<ConfigDuration>,
    #[serde(default)]
    pub system: SystemConfig,
    #[serde(default)]
    pub docker: DockerConfig,
    /// The env detector has no options; an empty block is accepted.
    #[serde(default)]
    pub env: Option<BTreeMap<String, serde_json::Value>>,
}

/// `{enabled: bool}` per attribute, as upstream's generated config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// Where host.name comes from, first that works: `dns` (the FQDN), `os`.
    /// Default [dns, os].
    #[serde(default)]
    pub hostname_sources: Option<Vec<String>>,
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, Enabled>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, Enabled>,
}

/// The system detector's attributes and whether each is on by default.
const SYSTEM_ATTRIBUTES: &[(&str, bool)] = &[
    ("host.name", true),
    ("os.type", true),
    ("host.id", false),
    ("host.arch", false),
    ("os.description", false),
    ("os.version", false),
    ("host.cpu.vendor.id", false),
    ("host.cpu.family", false),
    ("host.cpu.model.id", false),
    ("host.cpu.model.name", false),
    ("host.cpu.stepping", false),
];

const DOCKER_ATTRIBUTES: &[(&str, bool)] = &[("host.name", true), ("os.type", true)];

fn check_attributes(detector: &str, given: &BTreeMap<String, Enabled>, known: &[(&str, bool)]) -> Result<(), String> {
    match given.keys().find(|k| !known.iter().any(|(n, _)| n == k)) {
        Some(k) => Err(format!(
            "{detector}.resource_attributes: `{k}` is not an attribute of the {detector} detector; it has {}",
            known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )),
        None => Ok(()),
    }
}

impl Validate for ResourceDetectionConfig {
    fn validate(&self) -> Result<(), String> {
        for d in &self.detectors {
            match d.as_str() {
                "env" | "system" | "docker" => {}
                other if NOT_YET.contains(&other) => {
                    return Err(format!(
                        "the `{other}` detector is not supported yet; ocelot detects env, system and docker"
                    ));
                }
                other => return Err(format!("unknown detector `{other}`; detectors: env, system, docker")),
            }
        }
        check_attributes("system", &self.system.resource_attributes, SYSTEM_ATTRIBUTES)?;
        check_attributes("docker", &self.docker.resource_attributes, DOCKER_ATTRIBUTES)?;
        if let Some(sources) = &self.system.hostname_sources {
            if let Some(s) = sources.iter().find(|s| !matches!(s.as_str(), "dns" | "os")) {
                return Err(format!("system.hostname_sources: `{s}` is not supported; use dns or os"));
            }
            if sources.is_empty() {
                return Err("system.hostname_sources must name at least one source".into());
            }
        }
        if self.env.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err("the env detector has no options".into());
        }
        Ok(())
    }
}

fn enabled(given: &BTreeMap<String, Enabled>, known: &[(&str, bool)], name: &str) -> bool {
    given.get(name).map_or_else(|| known.iter().any(|(n, on)| *n == name && *on), |e| e.enabled)
}

fn string(key: &str, value: String) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(crate::ottl::functions::string_any(value)), ..Default::default() }
}

/// Runs the detectors, in order; an attribute an earlier one found is kept.
pub fn detect(config: &ResourceDetectionConfig) -> Vec<KeyValue> {
    let mut out: Vec<KeyValue> = Vec::new();
    for detector in &config.detectors {
        let found = match detector.as_str() {
            "env" => Ok(env_attributes(std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok().as_deref().unwrap_or(""))),
            "system" => Ok(system(&config.system)),
            "docker" => docker(&config.docker, config.timeout.0),
            _ => Ok(Vec::new()),
        };
        match found {
            Ok(found) => {
                for kv in found {
                    if !out.iter().any(|e| e.key == kv.key) {
                        out.push(kv);
                    }
                }
            }
            Err(e) => warn!(detector = %detector, error = %e, "A resource detector failed; it adds nothing."),
        }
    }
    debug!(attributes = out.len(), "Resource detection done.");
    out
}

/// `k1=v1,k2=v2`, values percent-decoded, as the OpenTelemetry SDKs read it.
pub fn env_attributes(text: &str) -> Vec<KeyValue> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim(), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| string(k, v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn system(config: &SystemConfig) -> Vec<KeyValue> {
    let on = |name: &str| enabled(&config.resource_attributes, SYSTEM_ATTRIBUTES, name);
    let mut out = Vec::new();
    let uname = uname();
    if on("host.name") {
        let sources = config.hostname_sources.clone().unwrap_or_else(|| vec!["dns".into(), "os".into()]);
        let name = sources.iter().find_map(|s| match s.as_str() {
            "dns" => fqdn(),
            _ => uname.as_ref().map(|u| u.nodename.clone()).filter(|n| !n.is_empty()),
        });
        if let Some(name) = name {
            out.push(string("host.name", name));
        }
    }
    if on("os.type") {
        out.push(string("os.type", std::env::consts::OS.to_string()));
    }
    if on("host.id")
        && let Some(id) = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    {
        out.push(string("host.id", id));
    }
    if on("host.arch") {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "arm32",
            "powerpc64" => "ppc64",
            other => other,
        };
        out.push(string("host.arch", arch.to_string()));
    }
    if let Some(u) = &uname {
        if on("os.description") {
            let pretty = std::fs::read_to_string("/etc/os-release").ok().and_then(|text| {
                text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string())
            });
            let kernel = format!("Linux {} {} {}", u.release, u.version, u.machine);
            out.push(string("os.description", pretty.map_or(kernel.clone(), |p| format!("{p} ({kernel})"))));
        }
        if on("os.version") {
            out.push(string("os.version", u.release.clone()));
        }
    }
    let cpu =
        ["host.cpu.vendor.id", "host.cpu.family", "host.cpu.model.id", "host.cpu.model.name", "host.cpu.stepping"];
    if cpu.iter().any(|a| on(a))
        && let Ok(info) = std::fs::read_to_string("/proc/cpuinfo")
    {
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        for (attribute, key) in cpu.iter().zip(["vendor_id", "cpu family", "model", "model name", "stepping"]) {
            if on(attribute)
                && let Some(v) = field(key)
            {
                out.push(string(attribute, v));
            }
        }
    }
    out
}

struct Uname {
    nodename: String,
    release: String,
    version: String,
    machine: String,
}

fn uname() -> Option<Uname> {
    // SAFETY: uname fills the struct it is given; it is zeroed first.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some(Uname {
        nodename: field(&u.nodename),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
    })
}

/// The host's fully qualified name, as the resolver gives it for the host name.
fn fqdn() -> Option<String> {
    let host = uname()?.nodename;
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: getaddrinfo with a valid C string and hints; the result list is freed.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_family = libc::AF_UNSPEC;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) != 0 || res.is_null() {
            return None;
        }
        let name = if (*res).ai_canonname.is_null() {
            None
        } else {
            Some(std::ffi::CStr::from_ptr((*res).ai_canonname).to_string_lossy().into_owned())
        };
        libc::freeaddrinfo(res);
        name.filter(|n| !n.is_empty())
    }
}

/// The Docker daemon's host name and OS type, from `GET /info` on its socket.
fn docker(config: &DockerConfig, timeout: Duration) -> Result<Vec<KeyValue>, String> {
    let path = match std::env::var("DOCKER_HOST") {
        Ok(host) => host
            .strip_prefix("unix://")
            .map(str::to_string)
            .ok_or_else(|| format!("DOCKER_HOST `{host}` is not a unix socket"))?,
        Err(_) => "/var/run/docker.sock".to_string(),
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| format!("{path}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.write_all(b"GET /info HTTP/1.0\r\nHost: docker\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // The daemon's info is a few KiB; more than 1 MiB is not an answer.
    stream.take(1 << 20).read_to_end(&mut response).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response from the Docker socket")?;
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1).is_none_or(|s| s != "200") {
        return Err(format!("the Docker daemon answered {}", head.lines().next().unwrap_or("")));
    }
    let info: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("the Docker daemon's info: {e}"))?;
    let on = |name: &str| enabled(&config.resource_attributes, DOCKER_ATTRIBUTES, name);
    let mut out = Vec::new();
    if on("host.name")
        && let Some(name) = info["Name"].as_str()
    {
        out.push(string("host.name", name.to_string()));
    }
    if on("os.type")
        && let Some(os) = info["OSType"].as_str()
    {
        out.push(string("os.type", os.to_string()));
    }
    Ok(out)
}

pub struct ResourceDetectionProcessor {
    config: Arc<ResourceDetectionConfig>,
    detected: Arc<RwLock<Arc<Vec<KeyValue>>>>,
    next_refresh: Option<Instant>,
    metrics: ProcessorMetrics,
}

impl ResourceDetectionProcessor {
    /// Detects at once, waiting at most `timeout`; what takes longer lands later.
    pub fn new(config: &ResourceDetectionConfig, metrics: ProcessorMetrics) -> ResourceDetectionProcessor {
        let config = Arc::new(config.clone());
        let detected = Arc::new(RwLock::new(Arc::new(Vec::new())));
        let done = refresh(&config, &detected);
        if done.recv_timeout(config.timeout.0).is_err() {
            warn!(timeout = ?config.timeout.0, "Resource detection is taking longer than its timeout; resources get its attributes once it ends.");
        }
        let next_refresh = refresh_interval(&config).map(|every| Instant::now() + every);
        ResourceDetectionProcessor { config, detected, next_refresh, metrics }
    }
}

fn refresh_interval(config: &ResourceDetectionConfig) -> Option<Duration> {
    config.refresh_interval.map(|d| d.0).filter(|d| !d.is_zero())
}

/// Detects on a thread of its own; the receiver hears when it is done.
fn refresh(
    config: &Arc<ResourceDetectionConfig>,
    slot: &Arc<RwLock<Arc<Vec<KeyValue>>>>,
) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let (config, slot) = (Arc::clone(config), Arc::clone(slot));
    let spawned = std::thread::Builder::new().name("resource-detection".into()).spawn(move || {
        let found = Arc::new(detect(&config));
        if let Ok(mut s) = slot.write() {
            *s = found;
        }
        let _ = tx.send(());
    });
    if let Err(e) = spawned {
        warn!(error = %e, "Could not start resource detection.");
    }
    rx
}

impl Processor for ResourceDetectionProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let i = batch.signal().index();
        let items = batch.payload.item_count() as u64;
        self.metrics.incoming[i].inc_by(items);
        let detected = self.detected.read().map(|d| Arc::clone(&d)).unwrap_or_default();
        if !detected.is_empty() {
            let resources: Vec<&mut Vec<KeyValue>> = super::resource_attributes(batch.payload_mut());
            for attributes in resources {
                for kv in detected.iter() {
                    match attributes.iter_mut().find(|e| e.key == kv.key) {
                        Some(existing) if self.config.override_existing => existing.value.clone_from(&kv.value),
                        Some(_) => {}
                        None => attributes.push(kv.clone()),
                    }
                }
            }
        }
        self.metrics.outgoing[i].inc_by(items);
        out.push(batch);
    }

    fn deadline(&self) -> Option<Instant> {
        self.next_refresh
    }

    fn on_deadline(&mut self, now: Instant, _out: &mut Vec<Batch>) {
        if let (Some(at), Some(every)) = (self.next_refresh, refresh_interval(&self.config))
            && at <= now
        {
            drop(refresh(&self.config, &self.detected));
            self.next_refresh = Some(now + every);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_attributes_are_split_and_decoded() {
        let kvs = env_attributes("service.name=api, deployment.environment=prod%2Ceu ,bad, =x");
        let pairs: Vec<(String, String)> =
            kvs.iter().map(|kv| (kv.key.clone(), crate::ottl::paths::body_string(kv.value.as_ref()))).collect();
        assert_eq!(pairs, [("service.name".into(), "api".into()), ("deployment.environment".into(), "prod,eu".into())]);
    }

    #[test]
    fn unknown_detectors_and_attributes_are_refused() {
        let parse = |yaml: &str| {
            let node = crate::config::node::parse("p.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
            crate::component::parse_config::<ResourceDetectionConfig>(&node).map_err(|e| e.message)
        };
        assert!(parse("detectors: [ec2]\n").unwrap_err().contains("`ec2` detector is not supported yet"));
        assert!(parse("detectors: [frob]\n").unwrap_err().contains("unknown detector `frob`"));
        let e = parse("detectors: [system]\nsystem:\n  resource_attributes:\n    host.color: {enabled: true}\n")
            .unwrap_err();
        assert!(e.contains("`host.color` is not an attribute of the system detector"), "{e}");
        assert!(
            parse("detectors: [system]\nsystem:\n  hostname_sources: [cname]\n")
                .unwrap_err()
                .contains("`cname` is not supported")
        );
        let ok = parse("detectors: [env, system]\ntimeout: 2s\noverride: false\nsystem:\n  hostname_sources: [os]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!ok.override_existing);
    }

    #[test]
    fn the_system_detector_reports_what_is_enabled() {
        let config = SystemConfig {
            hostname_sources: Some(vec!["os".into()]),
            resource_attributes: [
                ("host.arch".to_string(), Enabled { enabled: true }),
                ("os.type".to_string(), Enabled { enabled: false }),
            ]
            .into_iter()
            .collect(),
        };
        let keys: Vec<String> = system(&config).into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, ["host.name", "host.arch"]);
    }
}
