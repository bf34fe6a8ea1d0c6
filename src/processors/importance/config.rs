//! The `importance` processor's options.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::component::Validate;
use crate::config::de::DeError;
use crate::config::node::Node;
use crate::config::types::ConfigDuration;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImportanceConfig {
    /// Where the score is written. Default `importance`.
    #[serde(default = "default_attribute")]
    pub attribute: String,
    /// Forces the score onto the resource or each record. Default: the resource when
    /// every rule that matched looked only at the resource, else the record.
    #[serde(default)]
    pub scope: Option<ScoreScope>,
    /// The score when no rule matches. Default 0.3.
    #[serde(default = "default_score")]
    pub default_score: f64,
    /// First match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Raises resources (processes) whose CPU or memory stays high.
    #[serde(default)]
    pub ewma: Option<EwmaConfig>,
    /// A `file_storage` extension for the EWMA state; else `--storage-dir`.
    #[serde(default)]
    pub storage: Option<String>,
    /// How often the EWMA state is written. Default 60s; it is also written at shutdown.
    #[serde(default = "default_checkpoint")]
    pub checkpoint_interval: ConfigDuration,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScoreScope {
    Resource,
    Record,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The score in [0, 1] this rule gives.
    pub score: f64,
    /// Globs that must all match.
    #[serde(default, rename = "match")]
    pub matches: Option<MatchConfig>,
    /// An OTTL condition.
    #[serde(default)]
    pub condition: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Resource attribute name → glob of its value.
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// Record (span, data point, log record) attribute name → glob of its value.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// A glob of a log record's severity text (or, without one, its level's name:
    /// TRACE, DEBUG, INFO, WARN, ERROR, FATAL), case-insensitive.
    #[serde(default)]
    pub severity: Option<String>,
    /// Globs of a span's `name`, `kind` (server, client, internal, producer, consumer)
    /// and `status` (unset, ok, error); kind and status case-insensitive.
    #[serde(default)]
    pub span: Option<SpanMatch>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpanMatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EwmaConfig {
    /// The resource attribute that names one thing across scrapes and restarts.
    #[serde(default = "default_key")]
    pub key: String,
    /// The weight of each new reading, in (0, 1]. Default 0.1.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The metrics averaged: those with unit `1` (a utilization ratio) feed
    /// `cpu_percent`, those with unit `By` feed `memory_mib`.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    /// Scores given when an average reaches a threshold; the highest reached wins.
    #[serde(default)]
    pub raise: Vec<RaiseConfig>,
    /// State of a key not seen for this long is forgotten. Default 7d.
    #[serde(default = "default_ttl")]
    pub ttl: ConfigDuration,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RaiseConfig {
    /// The average of the utilization metrics × 100 (the share of the machine's CPU).
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// The average of the byte metrics, in MiB.
    #[serde(default)]
    pub memory_mib: Option<f64>,
    pub score: f64,
}

fn default_attribute() -> String {
    "importance".into()
}

fn default_score() -> f64 {
    0.3
}

fn default_checkpoint() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}

fn default_key() -> String {
    "process.executable.name".into()
}

fn default_alpha() -> f64 {
    0.1
}

fn default_metrics() -> Vec<String> {
    vec!["process.cpu.utilization".into(), "process.memory.usage".into()]
}

fn default_ttl() -> ConfigDuration {
    ConfigDuration::from_secs(7 * 24 * 3600)
}

fn check_score(what: &str, score: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&score) { Ok(()) } else { Err(format!("{what}: a score is in [0, 1], not {score}")) }
}

impl Validate for ImportanceConfig {
    fn validate(&self) -> Result<(), String> {
        if self.attribute.is_empty() {
            return Err("attribute must not be empty".into());
        }
        check_score("default_score", self.default_score)?;
        if self.checkpoint_interval.0.is_zero() {
            return Err("checkpoint_interval must be greater than zero".into());
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let n = i + 1;
            check_score(&format!("rules[{n}]"), rule.score)?;
            match (&rule.matches, &rule.condition) {
                (Some(_), Some(_)) => return Err(format!("rules[{n}]: give `match` or `condition`, not both")),
                (None, None) => return Err(format!("rules[{n}]: give `match` or `condition`")),
                (Some(m), None) => super::rules::check_match(m).map_err(|e| format!("rules[{n}].match: {e}"))?,
                (None, Some(_)) => {}
            }
        }
        if let Some(ewma) = &self.ewma {
            if ewma.key.is_empty() {
                return Err("ewma.key must not be empty".into());
            }
            if !(ewma.alpha > 0.0 && ewma.alpha <= 1.0) {
                return Err(format!("ewma.alpha must be in (0, 1], not {}", ewma.alpha));
            }
            if ewma.metrics.is_empty() {
                return Err("ewma.metrics must name at least one metric".into());
            }
            if ewma.ttl.0.is_zero() {
                return Err("ewma.ttl must be greater than zero".into());
            }
            for (i, raise) in ewma.raise.iter().enumerate() {
                let n = i + 1;
                check_score(&format!("ewma.raise[{n}]"), raise.score)?;
                match (raise.cpu_percent, raise.memory_mib) {
                    (Some(_), Some(_)) | (None, None) => {
                        return Err(format!("ewma.raise[{n}]: give one of cpu_percent or memory_mib"));
                    }
                    (Some(t), None) | (None, Some(t)) if !(t >= 0.0 && t.is_finite()) => {
                        return Err(format!("ewma.raise[{n}]: a threshold is a number of 0 or more, not {t}"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Reads the config and compiles its rules, so a bad condition fails the load at its
/// place inside its string.
pub fn parse(node: &Node) -> Result<ImportanceConfig, DeError> {
    let config: ImportanceConfig = crate::component::parse_config(node)?;
    super::rules::Rules::compile(&config)
        .map_err(|(text, e)| crate::processors::ottl::located(node, &text, &e, "condition"))?;
    Ok(config)
}
