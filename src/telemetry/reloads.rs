//! Self-metrics of the running config: reloads by outcome, when the last one
//! succeeded, and the running config's hash.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::Fingerprint;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// How a reload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadResult {
    /// The new config runs.
    Success,
    /// The new config was refused (invalid, or a node failed to start); the old one
    /// runs unchanged.
    Failure,
    /// The new config started but failed while taking over (or its verify window
    /// saw trouble); the old one was put back.
    Rollback,
}

impl ReloadResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
            ReloadResult::Rollback => "rollback",
        }
    }
}

#[derive(Clone)]
pub struct ReloadMetrics {
    reloads: Family<ResultLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    hash: Gauge,
}

impl ReloadMetrics {
    pub(super) fn register(registry: &mut Registry) -> ReloadMetrics {
        let metrics =
            ReloadMetrics { reloads: Family::default(), last_success: Gauge::default(), hash: Gauge::default() };
        registry.register("ocelot_config_reloads", "Config reloads by result", metrics.reloads.clone());
        registry.register(
            "ocelot_config_last_reload_success_timestamp_seconds",
            "When the running config was loaded (the start, or the last successful reload), in Unix seconds",
            metrics.last_success.clone(),
        );
        registry.register(
            "ocelot_config_hash",
            "The running config's hash (the first 52 bits of the hash that `GET /-/config` shows)",
            metrics.hash.clone(),
        );
        for result in [ReloadResult::Success, ReloadResult::Failure, ReloadResult::Rollback] {
            let _ = metrics.reloads.get_or_create(&ResultLabels { result: result.as_str() });
        }
        metrics
    }

    pub fn count(&self, result: ReloadResult) {
        self.reloads.get_or_create(&ResultLabels { result: result.as_str() }).inc();
    }

    /// `config` runs from now on.
    pub fn running(&self, config: Fingerprint, since: std::time::SystemTime) {
        let seconds = since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        self.last_success.set(seconds);
        self.hash.set(i64::try_from(config.short()).unwrap_or(i64::MAX));
    }
}
