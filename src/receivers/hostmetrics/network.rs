//! The `network` scraper: per-interface counters from `/proc/net/dev`, TCP
//! connections by state from `/proc/net/tcp{,6}`, conntrack table use.
//!
//! `/proc/net` is the network namespace of the process reading it, even under a
//! bind-mounted host `/proc`: a container sees the host's interfaces only with host
//! networking.

use std::io::BufRead;

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::filter::Filter;
use super::{Tick, Toggles, attribute, int_point, proc_path, read_proc, sum};

pub const METRICS: &[(&str, bool)] = &[
    ("system.network.io", true),
    ("system.network.packets", true),
    ("system.network.errors", true),
    ("system.network.dropped", true),
    ("system.network.connections", true),
    ("system.network.conntrack.count", false),
    ("system.network.conntrack.max", false),
];

/// TCP states as upstream names them, in its order.
pub const TCP_STATES: [&str; 12] = [
    "CLOSE_WAIT",
    "CLOSE",
    "CLOSING",
    "DELETE",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "LAST_ACK",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECV",
    "TIME_WAIT",
];

/// One interface's counters: (bytes, packets, errors, dropped) received and sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interface {
    pub name: String,
    pub receive: [u64; 4],
    pub transmit: [u64; 4],
}

/// The interfaces of `/proc/net/dev`; malformed lines are skipped.
pub fn parse_net_dev(text: &str) -> Vec<Interface> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let Ok(n) = rest.split_ascii_whitespace().map(str::parse::<u64>).collect::<Result<Vec<u64>, _>>() else {
            continue;
        };
        if n.len() < 12 {
            continue;
        }
        out.push(Interface {
            name: name.trim().to_string(),
            receive: [n[0], n[1], n[2], n[3]],
            transmit: [n[8], n[9], n[10], n[11]],
        });
    }
    out
}

/// Adds the connections of one `/proc/net/tcp` table to `counts` (indexed as
/// `TCP_STATES`).
pub fn count_tcp(reader: impl BufRead, counts: &mut [u64; 12]) {
    for line in reader.lines().skip(1) {
        let Ok(line) = line else { break };
        let Some(state) = line.split_ascii_whitespace().nth(3) else { continue };
        let name = match u8::from_str_radix(state, 16) {
            Ok(0x01) => "ESTABLISHED",
            Ok(0x02) => "SYN_SENT",
            Ok(0x03 | 0x0C) => "SYN_RECV",
            Ok(0x04) => "FIN_WAIT_1",
            Ok(0x05) => "FIN_WAIT_2",
            Ok(0x06) => "TIME_WAIT",
            Ok(0x07) => "CLOSE",
            Ok(0x08) => "CLOSE_WAIT",
            Ok(0x09) => "LAST_ACK",
            Ok(0x0A) => "LISTEN",
            Ok(0x0B) => "CLOSING",
            _ => continue,
        };
        if let Some(i) = TCP_STATES.iter().position(|s| *s == name) {
            counts[i] += 1;
        }
    }
}

pub struct Scraper {
    toggles: Toggles,
    filter: Filter,
}

impl Scraper {
    pub fn new(toggles: Toggles, filter: Filter) -> Scraper {
        Scraper { toggles, filter }
    }

    /// The metrics that could be read, and what could not: interfaces and conntrack
    /// fail apart.
    pub fn scrape(&mut self, tick: &Tick) -> (Vec<Metric>, Vec<String>) {
        let (start, now) = (tick.boot, tick.now);
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let on = |name| self.toggles.on(name);
        if ["system.network.io", "system.network.packets", "system.network.errors", "system.network.dropped"]
            .iter()
            .any(|n| on(n))
        {
            match read_proc(tick.root, "net/dev") {
                Ok(text) => {
                    let mut interfaces = parse_net_dev(&text);
                    interfaces.retain(|i| self.filter.keeps(&i.name));
                    out = counters(&interfaces, &self.toggles, start, now);
                }
                Err(e) => errors.push(e),
            }
        }
        if on("system.network.connections") {
            let mut counts = [0u64; 12];
            for table in ["net/tcp", "net/tcp6"] {
                // A kernel without IPv6 has no tcp6.
                if let Ok(file) = std::fs::File::open(proc_path(tick.root).join(table)) {
                    count_tcp(std::io::BufReader::new(file), &mut counts);
                }
            }
            let points = TCP_STATES
                .iter()
                .zip(counts)
                .map(|(state, n)| {
                    int_point(n as i64, vec![attribute("protocol", "tcp"), attribute("state", state)], start, now)
                })
                .collect();
            out.push(sum("system.network.connections", "The number of connections.", "{connections}", false, points));
        }
        for (name, file, description) in [
            (
                "system.network.conntrack.count",
                "sys/net/netfilter/nf_conntrack_count",
                "The count of entries in conntrack table.",
            ),
            (
                "system.network.conntrack.max",
                "sys/net/netfilter/nf_conntrack_max",
                "The limit for entries in the conntrack table.",
            ),
        ] {
            if on(name) {
                let value = read_proc(tick.root, file)
                    .and_then(|text| text.trim().parse::<i64>().map_err(|e| format!("/proc/{file}: {e}")));
                match value {
                    Ok(v) => {
                        out.push(sum(name, description, "{entries}", false, vec![int_point(v, vec![], start, now)]))
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        (out, errors)
    }
}

fn counters(interfaces: &[Interface], toggles: &Toggles, start: u64, now: u64) -> Vec<Metric> {
    let mut out = Vec::new();
    if interfaces.is_empty() {
        return out;
    }
    let metrics = [
        ("system.network.io", "The number of bytes transmitted and received.", "By"),
        ("system.network.packets", "The number of packets transferred.", "{packets}"),
        ("system.network.errors", "The number of errors encountered.", "{errors}"),
        ("system.network.dropped", "The number of packets dropped.", "{packets}"),
    ];
    for (column, (name, description, unit)) in metrics.into_iter().enumerate() {
        if !toggles.on(name) {
            continue;
        }
        let points = interfaces
            .iter()
            .flat_map(|i| [(i, "receive", i.receive[column]), (i, "transmit", i.transmit[column])])
            .map(|(i, direction, v)| {
                int_point(v as i64, vec![attribute("device", &i.name), attribute("direction", direction)], start, now)
            })
            .collect();
        out.push(sum(name, description, unit, true, points));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::config::{Enabled, Interfaces, Match, MatchType, MetricToggles};
    use super::super::{fixture, values};
    use super::*;

    #[test]
    fn golden_interfaces_connections_conntrack() {
        let toggles: MetricToggles = [
            ("system.network.conntrack.count".to_string(), Enabled { enabled: true }),
            ("system.network.conntrack.max".to_string(), Enabled { enabled: true }),
        ]
        .into();
        let exclude = Match::<Interfaces>::new(&["lo"], MatchType::Strict);
        let mut s = Scraper::new(Toggles::new(METRICS, &toggles), Filter::new(None, Some(&exclude)).unwrap());
        let (m, errors) = s.scrape(&Tick::new(&fixture(), 1, 2));
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, METRICS.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        let io = values(&m[0]);
        assert_eq!(io.len(), 4, "eth0 and docker0, lo excluded");
        assert_eq!(io[0].0, [("device".into(), "eth0".into()), ("direction".into(), "receive".into())]);
        assert_eq!((io[0].1, io[1].1), (123_456_789.0, 987_654_321.0));
        assert_eq!((values(&m[1])[0].1, values(&m[2])[1].1, values(&m[3])[0].1), (100_000.0, 3.0, 2.0));
        let conns: std::collections::BTreeMap<String, f64> =
            values(&m[4]).into_iter().map(|(a, v)| (a[1].1.clone(), v)).collect();
        assert_eq!(conns.len(), 12);
        assert_eq!(
            (conns["LISTEN"], conns["ESTABLISHED"], conns["TIME_WAIT"], conns["SYN_RECV"]),
            (2.0, 2.0, 1.0, 1.0)
        );
        assert_eq!(conns["DELETE"], 0.0);
        assert_eq!((values(&m[5])[0].1, values(&m[6])[0].1), (321.0, 262_144.0));
    }
}
