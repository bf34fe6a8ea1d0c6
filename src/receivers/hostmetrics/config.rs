//! The `hostmetrics` receiver's config, with the upstream option names. Defaults
//! differ in one place: `collection_interval` is 10s (upstream: 1m).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{cpu, disk, filesystem, load, memory, network, paging, process, processes, system};
use crate::component::Validate;
use crate::config::ConfigDuration;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostmetricsConfig {
    /// Time between scrapes. Default 10s.
    #[serde(default = "default_collection_interval")]
    pub collection_interval: ConfigDuration,
    /// Time before the first scrape. Default 1s.
    #[serde(default = "default_initial_delay")]
    pub initial_delay: ConfigDuration,
    /// Where the host's `/` is mounted when ocelot runs in a container (`/hostfs`):
    /// `/proc`, `/sys`, `/etc/passwd` and mount points are read under it. Default `/`.
    #[serde(default)]
    pub root_path: Option<PathBuf>,
    pub scrapers: ScrapersConfig,
}

fn default_collection_interval() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

fn default_initial_delay() -> ConfigDuration {
    ConfigDuration::from_secs(1)
}

/// The scrapers to run: a key turns its scraper on, even with nothing under it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapersConfig {
    #[serde(default, deserialize_with = "present")]
    pub cpu: Option<MetricsOnly>,
    #[serde(default, deserialize_with = "present")]
    pub memory: Option<MetricsOnly>,
    #[serde(default, deserialize_with = "present")]
    pub load: Option<LoadConfig>,
    #[serde(default, deserialize_with = "present")]
    pub disk: Option<DiskConfig>,
    #[serde(default, deserialize_with = "present")]
    pub filesystem: Option<FilesystemConfig>,
    #[serde(default, deserialize_with = "present")]
    pub network: Option<NetworkConfig>,
    #[serde(default, deserialize_with = "present")]
    pub paging: Option<MetricsOnly>,
    #[serde(default, deserialize_with = "present")]
    pub processes: Option<MetricsOnly>,
    #[serde(default, deserialize_with = "present")]
    pub process: Option<ProcessConfig>,
    /// `system.uptime`.
    #[serde(default, deserialize_with = "present")]
    pub system: Option<MetricsOnly>,
}

/// A key that is present (even empty, `cpu:`) is `Some` of its defaults.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `metrics: {<name>: {enabled: bool}}`.
pub type MetricToggles = BTreeMap<String, Enabled>;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsOnly {
    #[serde(default)]
    pub metrics: MetricToggles,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Divide the load averages by the number of CPUs. Default false.
    #[serde(default)]
    pub cpu_average: bool,
    #[serde(default)]
    pub metrics: MetricToggles,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    #[serde(default)]
    pub include: Option<Match<Devices>>,
    #[serde(default)]
    pub exclude: Option<Match<Devices>>,
    #[serde(default)]
    pub metrics: MetricToggles,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    #[serde(default)]
    pub include_devices: Option<Match<Devices>>,
    #[serde(default)]
    pub exclude_devices: Option<Match<Devices>>,
    #[serde(default)]
    pub include_fs_types: Option<Match<FsTypes>>,
    #[serde(default)]
    pub exclude_fs_types: Option<Match<FsTypes>>,
    #[serde(default)]
    pub include_mount_points: Option<Match<MountPoints>>,
    #[serde(default)]
    pub exclude_mount_points: Option<Match<MountPoints>>,
    /// Also report file systems with no device (`proc`, `tmpfs`, `overlay`…). Default false.
    #[serde(default)]
    pub include_virtual_filesystems: bool,
    #[serde(default)]
    pub metrics: MetricToggles,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(default)]
    pub include: Option<Match<Interfaces>>,
    #[serde(default)]
    pub exclude: Option<Match<Interfaces>>,
    #[serde(default)]
    pub metrics: MetricToggles,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    #[serde(default)]
    pub include: Option<Match<Names>>,
    #[serde(default)]
    pub exclude: Option<Match<Names>>,
    /// ocelot's: processes kept whatever their thresholds, rank and `exclude`, so an
    /// idle database is never cut by `max_processes`.
    #[serde(default)]
    pub always_include: Option<Match<Names>>,
    /// Processes emitted per scrape: the top N by CPU, then memory. Default 1000.
    #[serde(default = "default_max_processes")]
    pub max_processes: usize,
    /// CPU use (percent of one core since the last scrape) a process needs to be kept.
    #[serde(default)]
    pub min_cpu_percent: f64,
    /// Resident memory (MiB) a process needs to be kept.
    #[serde(default)]
    pub min_memory_mib: f64,
    /// Age a process needs to be kept. A process is skipped only when it is under
    /// every threshold that is set.
    #[serde(default)]
    pub min_age: ConfigDuration,
    /// Upstream's name for a minimum age: processes younger than this are skipped.
    #[serde(default)]
    pub scrape_process_delay: ConfigDuration,
    #[serde(default)]
    pub mute_process_all_errors: bool,
    #[serde(default)]
    pub mute_process_name_error: bool,
    #[serde(default)]
    pub mute_process_exe_error: bool,
    #[serde(default)]
    pub mute_process_io_error: bool,
    #[serde(default)]
    pub mute_process_user_error: bool,
    #[serde(default)]
    pub mute_process_cgroup_error: bool,
    #[serde(default)]
    pub metrics: MetricToggles,
    #[serde(default)]
    pub resource_attributes: MetricToggles,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            include: None,
            exclude: None,
            always_include: None,
            max_processes: default_max_processes(),
            min_cpu_percent: 0.0,
            min_memory_mib: 0.0,
            min_age: ConfigDuration::default(),
            scrape_process_delay: ConfigDuration::default(),
            mute_process_all_errors: false,
            mute_process_name_error: false,
            mute_process_exe_error: false,
            mute_process_io_error: false,
            mute_process_user_error: false,
            mute_process_cgroup_error: false,
            metrics: MetricToggles::new(),
            resource_attributes: MetricToggles::new(),
        }
    }
}

fn default_max_processes() -> usize {
    1000
}

/// `strict` (equal), `regexp` (RE2 syntax, matching anywhere in the name, as upstream)
/// or `glob` (process names only).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    Strict,
    Regexp,
    Glob,
}

/// An include or exclude block: the list under its upstream key, and `match_type`.
#[derive(Clone, Debug, PartialEq)]
pub struct Match<K> {
    pub items: Vec<String>,
    pub match_type: MatchType,
    key: std::marker::PhantomData<K>,
}

/// The key a `Match` reads its list from.
pub trait ListKey {
    const KEY: &'static str;
}

macro_rules! list_key {
    ($name:ident, $key:literal) => {
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name;
        impl ListKey for $name {
            const KEY: &'static str = $key;
        }
    };
}
list_key!(Devices, "devices");
list_key!(FsTypes, "fs_types");
list_key!(MountPoints, "mount_points");
list_key!(Interfaces, "interfaces");
list_key!(Names, "names");

/// Every list key any block takes; a block accepts only its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    devices: Option<Vec<String>>,
    fs_types: Option<Vec<String>>,
    mount_points: Option<Vec<String>>,
    interfaces: Option<Vec<String>>,
    names: Option<Vec<String>>,
    match_type: Option<MatchType>,
}

impl<'de, K: ListKey> Deserialize<'de> for Match<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawMatch::deserialize(d)?;
        let mut items = None;
        for (key, list) in [
            ("devices", raw.devices),
            ("fs_types", raw.fs_types),
            ("mount_points", raw.mount_points),
            ("interfaces", raw.interfaces),
            ("names", raw.names),
        ] {
            match list {
                Some(list) if key == K::KEY => items = Some(list),
                Some(_) => {
                    return Err(D::Error::custom(format!(
                        "`{key}` does not belong here; this block takes `{}` and `match_type`",
                        K::KEY
                    )));
                }
                None => {}
            }
        }
        let items = items.unwrap_or_default();
        let match_type = match raw.match_type {
            Some(t) => t,
            None if items.is_empty() => MatchType::Strict,
            None => {
                let types = if K::KEY == "names" { "strict, regexp or glob" } else { "strict or regexp" };
                return Err(D::Error::custom(format!("`{}` needs a match_type: {types}", K::KEY)));
            }
        };
        Ok(Match { items, match_type, key: std::marker::PhantomData })
    }
}

impl<K> Match<K> {
    #[cfg(test)]
    pub fn new(items: &[&str], match_type: MatchType) -> Self {
        Match { items: items.iter().map(|s| s.to_string()).collect(), match_type, key: std::marker::PhantomData }
    }
}

impl Validate for HostmetricsConfig {
    fn validate(&self) -> Result<(), String> {
        if self.collection_interval.0.is_zero() {
            return Err("collection_interval must be greater than 0".into());
        }
        let s = &self.scrapers;
        let mut any = false;
        let mut check = |on: bool, scraper: &str, known: &[(&str, bool)], toggles: Option<&MetricToggles>| {
            any |= on;
            match toggles {
                Some(t) => check_toggles(scraper, "metrics", known, t),
                None => Ok(()),
            }
        };
        check(s.cpu.is_some(), "cpu", cpu::METRICS, s.cpu.as_ref().map(|c| &c.metrics))?;
        check(s.memory.is_some(), "memory", memory::METRICS, s.memory.as_ref().map(|c| &c.metrics))?;
        check(s.load.is_some(), "load", load::METRICS, s.load.as_ref().map(|c| &c.metrics))?;
        check(s.disk.is_some(), "disk", disk::METRICS, s.disk.as_ref().map(|c| &c.metrics))?;
        check(s.filesystem.is_some(), "filesystem", filesystem::METRICS, s.filesystem.as_ref().map(|c| &c.metrics))?;
        check(s.network.is_some(), "network", network::METRICS, s.network.as_ref().map(|c| &c.metrics))?;
        check(s.paging.is_some(), "paging", paging::METRICS, s.paging.as_ref().map(|c| &c.metrics))?;
        check(s.processes.is_some(), "processes", processes::METRICS, s.processes.as_ref().map(|c| &c.metrics))?;
        check(s.process.is_some(), "process", process::METRICS, s.process.as_ref().map(|c| &c.metrics))?;
        check(s.system.is_some(), "system", system::METRICS, s.system.as_ref().map(|c| &c.metrics))?;
        if !any {
            return Err("scrapers: at least one scraper is needed (cpu, memory, load, disk, filesystem, network, \
                        paging, processes, process, system)"
                .into());
        }
        if let Some(d) = &s.disk {
            check_match("disk", &d.include, false)?;
            check_match("disk", &d.exclude, false)?;
        }
        if let Some(f) = &s.filesystem {
            check_match("filesystem", &f.include_devices, false)?;
            check_match("filesystem", &f.exclude_devices, false)?;
            check_match("filesystem", &f.include_fs_types, false)?;
            check_match("filesystem", &f.exclude_fs_types, false)?;
            check_match("filesystem", &f.include_mount_points, false)?;
            check_match("filesystem", &f.exclude_mount_points, false)?;
        }
        if let Some(n) = &s.network {
            check_match("network", &n.include, false)?;
            check_match("network", &n.exclude, false)?;
        }
        if let Some(p) = &s.process {
            check_toggles("process", "resource_attributes", process::RESOURCE_ATTRIBUTES, &p.resource_attributes)?;
            check_match("process", &p.include, true)?;
            check_match("process", &p.exclude, true)?;
            if p.max_processes == 0 {
                return Err("process: max_processes must be at least 1".into());
            }
            if !(p.min_cpu_percent.is_finite() && p.min_cpu_percent >= 0.0) {
                return Err("process: min_cpu_percent must be a number ≥ 0".into());
            }
            if !(p.min_memory_mib.is_finite() && p.min_memory_mib >= 0.0) {
                return Err("process: min_memory_mib must be a number ≥ 0".into());
            }
            if p.metrics.get("process.handles").is_some_and(|e| e.enabled) {
                return Err("process: process.handles is a Windows metric; it cannot be enabled on Linux".into());
            }
        }
        Ok(())
    }
}

fn check_toggles(scraper: &str, section: &str, known: &[(&str, bool)], toggles: &MetricToggles) -> Result<(), String> {
    for name in toggles.keys() {
        if !known.iter().any(|(k, _)| k == name) {
            let names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
            return Err(format!("{scraper}: unknown {section} entry `{name}`; known: {}", names.join(", ")));
        }
    }
    Ok(())
}

fn check_match<K: ListKey>(scraper: &str, m: &Option<Match<K>>, glob_allowed: bool) -> Result<(), String> {
    let Some(m) = m else { return Ok(()) };
    if m.match_type == MatchType::Glob && !glob_allowed {
        return Err(format!("{scraper}: match_type glob is for process names; use strict or regexp"));
    }
    super::filter::Filter::new(Some(m), None).map(|_| ()).map_err(|e| format!("{scraper}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse(yaml: &str) -> Result<HostmetricsConfig, String> {
        let node = crate::config::node::parse("t.yaml", yaml).map_err(|e| e.to_string())?;
        crate::component::parse_config::<HostmetricsConfig>(&node).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_present_keys() {
        let c = parse("scrapers:\n  cpu:\n  process:\n    max_processes: 50\n").unwrap();
        assert_eq!(c.collection_interval, ConfigDuration::from_secs(10));
        assert_eq!(c.initial_delay, ConfigDuration::from_secs(1));
        assert!(c.scrapers.cpu.is_some() && c.scrapers.memory.is_none());
        assert_eq!(c.scrapers.process.as_ref().unwrap().max_processes, 50);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse("scrapers:\n  hardware:\n").unwrap_err();
        assert!(e.contains("unknown field `hardware`"), "{e}");
        let e = parse("scrapers:\n  cpu:\n    metrics:\n      system.cpu.nope: {enabled: true}\n").unwrap_err();
        assert!(e.contains("unknown metrics entry `system.cpu.nope`") && e.contains("system.cpu.time"), "{e}");
        let e = parse("scrapers: {}\n").unwrap_err();
        assert!(e.contains("at least one scraper"), "{e}");
        let e = parse("scrapers:\n  network:\n    include:\n      interfaces: [eth0]\n").unwrap_err();
        assert!(e.contains("needs a match_type"), "{e}");
        let e =
            parse("scrapers:\n  disk:\n    include:\n      devices: ['(']\n      match_type: regexp\n").unwrap_err();
        assert!(e.contains("disk:") && e.contains("regex"), "{e}");
        let e = parse("scrapers:\n  disk:\n    include:\n      devices: [sd*]\n      match_type: glob\n").unwrap_err();
        assert!(e.contains("glob is for process names"), "{e}");
        let e = parse("scrapers:\n  process:\n    max_processes: 0\n").unwrap_err();
        assert!(e.contains("max_processes"), "{e}");
        let e = parse("collection_interval: 0s\nscrapers:\n  cpu:\n").unwrap_err();
        assert!(e.contains("collection_interval"), "{e}");
        let e = parse("scrapers:\n  process:\n    resource_attributes:\n      process.nope: {enabled: true}\n")
            .unwrap_err();
        assert!(e.contains("unknown resource_attributes entry"), "{e}");
    }
}
