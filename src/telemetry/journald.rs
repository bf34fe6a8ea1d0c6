//! Self-metrics of the `journald` receiver.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::family;
use crate::config::ComponentId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdLabels {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    receiver: String,
    reason: &'static str,
}

#[derive(Clone)]
pub(super) struct Journald {
    read: Family<IdLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    lag: Family<IdLabels, Gauge>,
    restarts: Family<IdLabels, Counter>,
}

/// One `journald` receiver's metrics.
#[derive(Clone)]
pub struct JournaldMetrics {
    receiver: String,
    dropped: Family<DropLabels, Counter>,
    /// Entries read from journalctl.
    pub read: Counter,
    /// Entries read whose delivery is not yet known: how far the saved cursor is behind.
    pub lag: Gauge,
    /// Times journalctl exited and was started again.
    pub restarts: Counter,
}

impl JournaldMetrics {
    /// Entries dropped for `reason`: `invalid` (not an entry), `too_large`, `filtered`
    /// or `operator_error` (the operators), `rejected` (refused downstream for good).
    pub fn dropped(&self, reason: &'static str) -> Counter {
        self.dropped.get_or_create(&DropLabels { receiver: self.receiver.clone(), reason }).clone()
    }
}

impl Journald {
    pub(super) fn register(registry: &mut Registry) -> Journald {
        Journald {
            read: family(registry, "ocelot_receiver_journald_entries_read", "Journal entries read from journalctl"),
            dropped: family(
                registry,
                "ocelot_receiver_journald_dropped_entries",
                "Journal entries dropped, by reason (invalid, too_large, filtered, operator_error, rejected)",
            ),
            lag: family(
                registry,
                "ocelot_receiver_journald_cursor_lag_entries",
                "Journal entries read but not yet delivered: how far the saved cursor is behind",
            ),
            restarts: family(
                registry,
                "ocelot_receiver_journald_restarts",
                "Times journalctl exited or failed and was started again",
            ),
        }
    }

    pub(super) fn metrics(&self, id: &ComponentId) -> JournaldMetrics {
        let labels = IdLabels { receiver: id.to_string() };
        JournaldMetrics {
            receiver: id.to_string(),
            dropped: self.dropped.clone(),
            read: self.read.get_or_create(&labels).clone(),
            lag: self.lag.get_or_create(&labels).clone(),
            restarts: self.restarts.get_or_create(&labels).clone(),
        }
    }
}
