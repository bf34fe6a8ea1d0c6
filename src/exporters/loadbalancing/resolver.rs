//! Where the backends come from: a static list, or a DNS name resolved every
//! `interval`. Each answer is sorted, as upstream's, so every agent builds the same
//! ring; a failed lookup keeps the last answer.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::config::{DnsResolver, ResolverConfig};
use crate::telemetry::BalancerMetrics;

/// The backends as the resolver names them; `endpoint` makes an exporter's endpoint.
pub(crate) fn start(
    config: &ResolverConfig,
    metrics: &BalancerMetrics,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> watch::Receiver<Vec<String>> {
    if let Some(list) = &config.static_list {
        let mut hostnames: Vec<String> = list.hostnames.iter().map(|h| h.trim().to_string()).collect();
        hostnames.sort();
        hostnames.dedup();
        metrics.resolved("static", true, hostnames.len());
        let (_tx, rx) = watch::channel(hostnames);
        return rx;
    }
    let (tx, rx) = watch::channel(Vec::new());
    if let Some(dns) = config.dns.clone() {
        let metrics = metrics.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(dns.interval.0);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = tick.tick() => {}
                }
                match lookup(&dns).await {
                    Ok(found) => {
                        metrics.resolved("dns", true, found.len());
                        tx.send_if_modified(|now| {
                            if *now == found {
                                return false;
                            }
                            metrics.updated("dns");
                            *now = found;
                            true
                        });
                    }
                    Err(error) => {
                        metrics.resolved("dns", false, tx.borrow().len());
                        warn!(hostname = %dns.hostname, %error, "loadbalancing: failed to resolve; keeping the last backends.");
                    }
                }
            }
        });
    }
    rx
}

async fn lookup(dns: &DnsResolver) -> Result<Vec<String>, String> {
    let host = dns.hostname.trim().to_string();
    let answer = tokio::time::timeout(dns.timeout.0, tokio::net::lookup_host((host.as_str(), 0)))
        .await
        .map_err(|_| format!("no answer within {:?}", dns.timeout.0))?
        .map_err(|e| e.to_string())?;
    let mut found: Vec<String> = answer
        .map(|addr| {
            let ip = match addr.ip() {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            match &dns.port {
                Some(port) => format!("{ip}:{port}"),
                None => ip,
            }
        })
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// A backend's exporter endpoint: its name, on 4317 unless it names a port (an IPv6
/// address without one, which has colons, is taken as it is, as upstream).
pub(crate) fn endpoint(backend: &str) -> String {
    if backend.contains(':') { backend.to_string() } else { format!("{backend}:4317") }
}

/// How long a first DNS answer may take before data waits no more for it.
pub(crate) const FIRST_ANSWER: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dns_answers_are_addresses_with_the_port_sorted() {
        // `localhost` is answered from /etc/hosts: no query leaves the machine.
        let dns = DnsResolver {
            hostname: "localhost".into(),
            port: Some("4317".into()),
            interval: crate::config::ConfigDuration::from_secs(5),
            timeout: crate::config::ConfigDuration::from_secs(1),
        };
        let found = lookup(&dns).await.unwrap();
        assert!(found.contains(&"127.0.0.1:4317".to_string()), "{found:?}");
        let mut sorted = found.clone();
        sorted.sort();
        assert_eq!(found, sorted);
        assert_eq!(endpoint("10.0.0.1"), "10.0.0.1:4317");
        assert_eq!(endpoint("gw:4000"), "gw:4000");
    }
}
