//! Where a job's targets come from (`static_configs`, `file_sd_configs`) and how a
//! target group becomes targets: Prometheus' label defaults, `relabel_configs`, then
//! `__address__`, `__scheme__`, `__metrics_path__`, `__param_*` and the interval and
//! timeout labels make the URL and schedule, and every `__` label is dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tracing::warn;

use super::config::{FileSdConfig, GlobalConfig, ScrapeConfig, parse_duration};
use super::relabel::{self, LabelSet, Relabel};
use crate::config::ComponentId;
use crate::net::percent_encode as encode;

/// A target group: addresses and the labels they share.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A target ready to scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Its labels after relabeling, without the `__` ones.
    pub labels: LabelSet,
    pub url: String,
    pub scheme: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// What makes two targets the same: where it is scraped and its labels.
    pub fn key(&self) -> String {
        let mut key = self.url.clone();
        for (k, v) in &self.labels.0 {
            key.push('\u{1}');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        key
    }
}

/// A job's discovery: its static groups, and its files read at each refresh (a file
/// that cannot be read keeps the groups it last gave).
pub struct Discovery {
    fixed: Vec<Group>,
    files: Vec<FileSdConfig>,
    last: BTreeMap<PathBuf, Vec<Group>>,
    reported: BTreeMap<PathBuf, String>,
}

impl Discovery {
    pub fn new(config: &ScrapeConfig) -> Discovery {
        let fixed = config
            .static_configs
            .iter()
            .map(|s| Group { targets: s.targets.clone(), labels: s.labels.clone() })
            .collect();
        Discovery { fixed, files: config.file_sd_configs.clone(), last: BTreeMap::new(), reported: BTreeMap::new() }
    }

    /// When to look at the files again; none with no files.
    pub fn next_refresh(&self) -> Option<Duration> {
        self.files.iter().map(|f| f.refresh_interval.0).min()
    }

    /// Every group now: the static ones, then each file's (with `__meta_filepath`).
    pub fn refresh(&mut self, id: &ComponentId, job: &str) -> Vec<Group> {
        let mut groups = self.fixed.clone();
        let mut seen = Vec::new();
        for sd in &self.files {
            for pattern in &sd.files {
                for path in matching(Path::new(pattern)) {
                    match read_groups(&path) {
                        Ok(found) => {
                            self.reported.remove(&path);
                            self.last.insert(path.clone(), found);
                        }
                        Err(e) => {
                            if self.reported.get(&path) != Some(&e) {
                                warn!(receiver = %id, %job, path = %path.display(), error = %e,
                                    "A file_sd file cannot be read; its last targets are kept.");
                                self.reported.insert(path.clone(), e);
                            }
                        }
                    }
                    seen.push(path);
                }
            }
        }
        // A file that no longer matches takes its targets with it.
        self.last.retain(|path, _| seen.contains(path));
        for (path, found) in &self.last {
            for group in found {
                let mut group = group.clone();
                group.labels.insert("__meta_filepath".into(), path.display().to_string());
                groups.push(group);
            }
        }
        groups
    }
}

/// Files matching `pattern`, whose last element may hold `*`, `?` or `[...]`.
fn matching(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else { return Vec::new() };
    if !name.contains(['*', '?', '[']) {
        return if pattern.is_file() { vec![pattern.to_path_buf()] } else { Vec::new() };
    }
    let dir = pattern.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(glob) = globset::Glob::new(name) else { return Vec::new() };
    let matcher = glob.compile_matcher();
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| matcher.is_match(n)))
        .collect();
    out.sort();
    out
}

/// Largest file_sd file read.
const MAX_FILE: u64 = 16 << 20;

fn read_groups(path: &Path) -> Result<Vec<Group>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    // YAML reads JSON too.
    let node = crate::config::node::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())?;
    crate::config::de::from_node::<Vec<Group>>(&node).map_err(|e| e.to_string())
}

/// The targets of `groups` for this job.
pub fn targets(config: &ScrapeConfig, global: &GlobalConfig, groups: &[Group], rules: &[Relabel]) -> Vec<Target> {
    let mut out = Vec::new();
    for group in groups {
        for address in &group.targets {
            if let Some(target) = target(config, global, group, address, rules) {
                out.push(target);
            }
        }
    }
    out
}

fn target(
    config: &ScrapeConfig,
    global: &GlobalConfig,
    group: &Group,
    address: &str,
    rules: &[Relabel],
) -> Option<Target> {
    let mut labels = LabelSet::from_pairs(group.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.set("__address__", address.to_string());
    let interval = config.interval(global);
    let timeout = config.timeout(global);
    for (name, value) in [
        ("job", config.job_name.clone()),
        ("__scheme__", config.scheme.clone()),
        ("__metrics_path__", config.metrics_path.clone()),
        ("__scrape_interval__", format_duration(interval)),
        ("__scrape_timeout__", format_duration(timeout)),
    ] {
        if labels.get(name).is_none() {
            labels.set(name, value);
        }
    }
    for (name, values) in &config.params {
        let label = format!("__param_{name}");
        if labels.get(&label).is_none()
            && let Some(first) = values.first()
        {
            labels.set(&label, first.clone());
        }
    }
    if !relabel::apply(rules, &mut labels) {
        return None;
    }
    let address = labels.get("__address__")?.to_string();
    if address.is_empty() || address.contains('/') {
        return None;
    }
    let scheme = labels.get("__scheme__").unwrap_or("http").to_string();
    let path = labels.get("__metrics_path__").unwrap_or("/metrics").to_string();
    let interval = labels.get("__scrape_interval__").and_then(|d| parse_duration(d).ok()).unwrap_or(interval);
    let timeout = labels.get("__scrape_timeout__").and_then(|d| parse_duration(d).ok()).unwrap_or(timeout);
    if interval.is_zero() || timeout.is_zero() || timeout > interval {
        return None;
    }
    // Query parameters: the config's, each overridden by a `__param_` label.
    let mut params: BTreeMap<String, Vec<String>> = config.params.clone();
    for (name, value) in &labels.0 {
        if let Some(param) = name.strip_prefix("__param_") {
            params.insert(param.to_string(), vec![value.clone()]);
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    let mut first = !path.contains('?');
    for (name, values) in &params {
        for value in values {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&encode(name));
            url.push('=');
            url.push_str(&encode(value));
        }
    }
    if labels.get("instance").is_none() {
        labels.set("instance", address.clone());
    }
    labels.0.retain(|(name, _)| !name.starts_with("__"));
    Some(Target { labels, url, scheme, interval, timeout })
}

fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::prometheus::relabel::RelabelConfig;

    fn scrape_config(yaml: &str) -> ScrapeConfig {
        let node = crate::config::node::parse("test.yaml", yaml).unwrap();
        crate::config::de::from_node(&node).unwrap()
    }

    #[test]
    fn groups_become_targets_as_prometheus_makes_them() {
        let config = scrape_config(
            "job_name: node\nscrape_interval: 15s\nparams: {format: [prometheus]}\nstatic_configs:\n  - targets: ['a:9100', 'b:9100']\n    labels: {zone: z1}\n",
        );
        let global = GlobalConfig::default();
        let groups = Discovery::new(&config).refresh(&ComponentId::parse("prometheus").unwrap(), "node");
        let rules: Vec<Relabel> = [
            r#"{"source_labels": ["__address__"], "regex": "b:.*", "action": "drop"}"#,
            r#"{"source_labels": ["__address__"], "regex": "([^:]+):.*", "target_label": "host"}"#,
            r#"{"target_label": "__param_module", "replacement": "m1"}"#,
        ]
        .iter()
        .map(|r| serde_json::from_str::<RelabelConfig>(r).unwrap().compile().unwrap())
        .collect();
        let targets = targets(&config, &global, &groups, &rules);
        assert_eq!(targets.len(), 1);
        let t = &targets[0];
        assert_eq!(t.url, "http://a:9100/metrics?format=prometheus&module=m1");
        assert_eq!((t.interval, t.timeout), (Duration::from_secs(15), Duration::from_secs(10)));
        let labels: Vec<(&str, &str)> = t.labels.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("host", "a"), ("instance", "a:9100"), ("job", "node"), ("zone", "z1")]);
    }

    #[test]
    fn file_sd_reads_json_and_yaml_and_keeps_the_last_good_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), r#"[{"targets": ["x:1"], "labels": {"team": "t"}}]"#).unwrap();
        std::fs::write(dir.path().join("b.json"), "- targets: ['y:2']\n").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "nothing").unwrap();
        let pattern = format!("{}/*.json", dir.path().display());
        let config = scrape_config(&format!(
            "job_name: f\nfile_sd_configs:\n  - files: ['{pattern}']\n    refresh_interval: 30s\n"
        ));
        let mut discovery = Discovery::new(&config);
        assert_eq!(discovery.next_refresh(), Some(Duration::from_secs(30)));
        let id = ComponentId::parse("prometheus").unwrap();
        let groups = discovery.refresh(&id, "f");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].labels["__meta_filepath"], dir.path().join("a.json").display().to_string());
        std::fs::write(dir.path().join("a.json"), "{not json").unwrap();
        let groups = discovery.refresh(&id, "f");
        assert_eq!(groups.iter().map(|g| g.targets[0].as_str()).collect::<Vec<_>>(), ["x:1", "y:2"], "kept");
        std::fs::remove_file(dir.path().join("b.json")).unwrap();
        assert_eq!(discovery.refresh(&id, "f").len(), 1, "a removed file takes its targets");
    }
}
