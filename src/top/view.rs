//! What `ocelot top` shows, worked out from two scrapes of the self-metrics: per
//! component, items per second in and out; refusals and drops by reason; queue fill;
//! the memory level; the process's CPU and RSS.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::scrape::Sample;

/// The labels that name a component, in the order they are looked for.
const COMPONENT_LABELS: [&str; 5] = ["receiver", "processor", "exporter", "connector", "filter"];

/// One scrape's samples, by name and labels.
pub struct Snapshot {
    pub at: Instant,
    samples: HashMap<(String, Vec<(String, String)>), f64>,
    pub unreadable: usize,
}

impl Snapshot {
    pub fn new(at: Instant, samples: Vec<Sample>, unreadable: usize) -> Snapshot {
        let samples =
            samples.into_iter().map(|s| ((s.name, s.labels.into_iter().collect::<Vec<_>>()), s.value)).collect();
        Snapshot { at, samples, unreadable }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &[(String, String)], f64)> {
        self.samples.iter().map(|((name, labels), value)| (name.as_str(), labels.as_slice(), *value))
    }

    fn get(&self, name: &str, labels: &[(String, String)]) -> Option<f64> {
        self.samples.get(&(name.to_string(), labels.to_vec())).copied()
    }
}

/// A component's row: its id and two figures (per second unless said otherwise).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub id: String,
    pub first: Option<f64>,
    pub second: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExporterRow {
    pub id: String,
    pub sent: Option<f64>,
    pub failed: Option<f64>,
    pub enqueue_failed: Option<f64>,
    /// Queue size over capacity, 0–1.
    pub queue_fill: Option<f64>,
    pub queue_size: Option<f64>,
    pub queue_bytes: Option<f64>,
}

/// A counter of items dropped, refused or failed, by component and reason.
#[derive(Clone, Debug, PartialEq)]
pub struct DropRow {
    pub metric: String,
    pub component: String,
    pub reason: String,
    pub total: f64,
    pub per_second: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overview {
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub uptime_seconds: Option<f64>,
    /// The memory_limiter's level by processor; the memory it read.
    pub memory_levels: Vec<(String, f64)>,
    pub governor_bytes: Option<f64>,
    /// Accepted and refused per second.
    pub receivers: Vec<Row>,
    /// Incoming and outgoing items per second.
    pub processors: Vec<Row>,
    pub exporters: Vec<ExporterRow>,
    pub drops: Vec<DropRow>,
    pub unreadable: usize,
}

/// Per second between two readings of a counter; a counter that went back (the agent
/// restarted) counts from zero.
fn rate(previous: Option<f64>, current: f64, seconds: f64) -> Option<f64> {
    let previous = previous?;
    if seconds <= 0.0 {
        return None;
    }
    let delta = if current >= previous { current - previous } else { current };
    Some(delta / seconds)
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn component(labels: &[(String, String)]) -> Option<&str> {
    COMPONENT_LABELS.iter().find_map(|key| label(labels, key))
}

/// Per-second sums over samples whose name matches, by component. With no previous
/// scrape there are totals but no rates; a series the previous scrape lacked counts
/// from zero, and a component with no series of the kind has a rate of zero.
struct Sums {
    totals: BTreeMap<String, f64>,
    rates: Option<BTreeMap<String, f64>>,
}

impl Sums {
    fn of(previous: Option<&Snapshot>, current: &Snapshot, matches: impl Fn(&str) -> bool) -> Sums {
        let seconds = previous.map(|p| current.at.duration_since(p.at).as_secs_f64()).unwrap_or_default();
        let mut totals: BTreeMap<String, f64> = BTreeMap::new();
        let mut rates = previous.map(|_| BTreeMap::new());
        for (name, labels, value) in current.iter() {
            let Some(id) = component(labels) else { continue };
            if !matches(name) {
                continue;
            }
            *totals.entry(id.to_string()).or_default() += value;
            if let (Some(rates), Some(previous)) = (rates.as_mut(), previous) {
                let before = previous.get(name, labels).unwrap_or_default();
                let per_second: f64 = rate(Some(before), value, seconds).unwrap_or_default();
                *rates.entry(id.to_string()).or_default() += per_second;
            }
        }
        Sums { totals, rates }
    }

    fn rate(&self, id: &str) -> Option<f64> {
        self.rates.as_ref().map(|rates| rates.get(id).copied().unwrap_or_default())
    }

    fn ids(&self) -> impl Iterator<Item = &String> {
        self.totals.keys()
    }
}

impl Overview {
    /// The view of `current`, with rates since `previous` (none on the first scrape).
    pub fn new(previous: Option<&Snapshot>, current: &Snapshot) -> Overview {
        let seconds = previous.map(|p| current.at.duration_since(p.at).as_secs_f64()).unwrap_or_default();
        let single = |name: &str| current.iter().find(|(n, _, _)| *n == name).map(|(_, _, v)| v);
        let cpu = single("otelcol_process_cpu_seconds_total")
            .and_then(|now| rate(previous.and_then(|p| p.get("otelcol_process_cpu_seconds_total", &[])), now, seconds));

        let accepted = Sums::of(previous, current, |n| n.starts_with("otelcol_receiver_accepted_"));
        let refused = Sums::of(previous, current, |n| n.starts_with("otelcol_receiver_refused_"));
        let receivers: Vec<Row> = accepted
            .ids()
            .chain(refused.ids())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|id| Row { id: id.clone(), first: accepted.rate(id), second: refused.rate(id) })
            .collect();

        let incoming = Sums::of(previous, current, |n| n == "otelcol_processor_incoming_items_total");
        let outgoing = Sums::of(previous, current, |n| n == "otelcol_processor_outgoing_items_total");
        let processors = incoming
            .ids()
            .map(|id| Row { id: id.clone(), first: incoming.rate(id), second: outgoing.rate(id) })
            .collect();

        let sent = Sums::of(previous, current, |n| n.starts_with("otelcol_exporter_sent_"));
        let failed = Sums::of(previous, current, |n| n.starts_with("otelcol_exporter_send_failed_"));
        let enqueue_failed = Sums::of(previous, current, |n| n.starts_with("otelcol_exporter_enqueue_failed_"));
        let gauge = |name: &str, id: &str| {
            current.iter().find(|(n, labels, _)| *n == name && label(labels, "exporter") == Some(id)).map(|(_, _, v)| v)
        };
        let exporters = sent
            .ids()
            .chain(failed.ids())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|id| {
                let size = gauge("otelcol_exporter_queue_size", id);
                let capacity = gauge("otelcol_exporter_queue_capacity", id);
                ExporterRow {
                    id: id.clone(),
                    sent: sent.rate(id),
                    failed: failed.rate(id),
                    enqueue_failed: enqueue_failed.rate(id),
                    queue_fill: size.zip(capacity).filter(|(_, c)| *c > 0.0).map(|(s, c)| s / c),
                    queue_size: size,
                    queue_bytes: gauge("ocelot_exporter_queue_bytes", id),
                }
            })
            .collect();

        let mut drops = Vec::new();
        for (name, labels, value) in current.iter() {
            let counts_loss = name.contains("dropped")
                || name.contains("filtered")
                || name.contains("refused")
                || name.contains("send_failed")
                || name.contains("enqueue_failed")
                || name.contains("_sampled_total") && name.starts_with("ocelot_memory_limiter");
            if !counts_loss || !name.ends_with("_total") || value <= 0.0 {
                continue;
            }
            let reason: Vec<String> = labels
                .iter()
                .filter(|(k, _)| !COMPONENT_LABELS.contains(&k.as_str()) && k != "transport" && k != "otel_signal")
                .map(|(k, v)| if k == "reason" { v.clone() } else { format!("{k}={v}") })
                .collect();
            drops.push(DropRow {
                metric: name.trim_end_matches("_total").to_string(),
                component: component(labels).unwrap_or("-").to_string(),
                reason: if reason.is_empty() { "-".into() } else { reason.join(" ") },
                total: value,
                per_second: rate(previous.map(|p| p.get(name, labels).unwrap_or_default()), value, seconds),
            });
        }
        drops.sort_by(|a, b| (&a.component, &a.metric, &a.reason).cmp(&(&b.component, &b.metric, &b.reason)));

        let mut memory_levels: Vec<(String, f64)> = current
            .iter()
            .filter(|(n, _, _)| *n == "ocelot_memory_limiter_level")
            .map(|(_, labels, v)| (component(labels).unwrap_or("memory_limiter").to_string(), v))
            .collect();
        memory_levels.sort_by(|a, b| a.0.cmp(&b.0));

        Overview {
            cpu_percent: cpu.map(|c| c * 100.0),
            rss_bytes: single("otelcol_process_memory_rss"),
            uptime_seconds: single("otelcol_process_uptime_total").or_else(|| single("otelcol_process_uptime")),
            memory_levels,
            governor_bytes: single("ocelot_memory_governor_bytes"),
            receivers,
            processors,
            exporters,
            drops,
            unreadable: current.unreadable,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::scrape::parse;
    use super::*;

    fn snapshot(at: Instant, text: &str) -> Snapshot {
        let (samples, unreadable) = parse(text);
        Snapshot::new(at, samples, unreadable)
    }

    #[test]
    fn rates_per_component_and_drops_by_reason() {
        let start = Instant::now();
        let before = snapshot(
            start,
            "otelcol_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"http\"} 100\n\
             otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 0\n\
             otelcol_exporter_sent_log_records_total{exporter=\"loki\"} 50\n\
             otelcol_process_cpu_seconds_total 10\n",
        );
        let after = snapshot(
            start + Duration::from_secs(2),
            "otelcol_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"http\"} 300\n\
             otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 20\n\
             otelcol_receiver_refused_log_records_total{receiver=\"otlp\",transport=\"http\"} 4\n\
             otelcol_exporter_sent_log_records_total{exporter=\"loki\"} 250\n\
             otelcol_exporter_queue_size{exporter=\"loki\"} 25\n\
             otelcol_exporter_queue_capacity{exporter=\"loki\"} 100\n\
             ocelot_exporter_dropped_items_total{exporter=\"loki\",reason=\"too_old\"} 6\n\
             ocelot_memory_limiter_level{processor=\"memory_limiter\"} 1\n\
             otelcol_process_cpu_seconds_total 11\n\
             otelcol_process_memory_rss 1048576\n",
        );
        let view = Overview::new(Some(&before), &after);
        assert_eq!(view.receivers, vec![Row { id: "otlp".into(), first: Some(110.0), second: Some(2.0) }]);
        assert_eq!(view.exporters.len(), 1);
        assert_eq!(view.exporters[0].sent, Some(100.0));
        assert_eq!(view.exporters[0].queue_fill, Some(0.25));
        assert_eq!(view.cpu_percent, Some(50.0));
        assert_eq!(view.rss_bytes, Some(1048576.0));
        assert_eq!(view.memory_levels, vec![("memory_limiter".to_string(), 1.0)]);
        let reasons: Vec<(&str, &str, &str)> =
            view.drops.iter().map(|d| (d.component.as_str(), d.metric.as_str(), d.reason.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                ("loki", "ocelot_exporter_dropped_items", "too_old"),
                ("otlp", "otelcol_receiver_refused_log_records", "-")
            ]
        );
        assert_eq!(view.drops[0].per_second, Some(3.0));
    }

    #[test]
    fn the_first_scrape_has_totals_but_no_rates() {
        let now = snapshot(Instant::now(), "otelcol_receiver_accepted_spans_total{receiver=\"otlp\"} 5\n");
        let view = Overview::new(None, &now);
        assert_eq!(view.receivers, vec![Row { id: "otlp".into(), first: None, second: None }]);
    }
}
