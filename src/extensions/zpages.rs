//! The `zpages` extension: small HTML pages about the running agent, as upstream's
//! (`/debug/servicez`: version, start time, uptime, process; `/debug/pipelinez`:
//! every pipeline's receivers, processors and exporters, with each component's
//! self-metric counters as they stand; `/debug/extensionz`). For a person with a
//! browser; machines read `/metrics`.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::component::Validate;
use crate::net;
use crate::registry::Config;
use crate::telemetry::Telemetry;

pub const TYPE: &str = "zpages";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZpagesConfig {
    /// Address to listen on. Default `localhost:55679`, as upstream.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
}

impl Default for ZpagesConfig {
    fn default() -> Self {
        ZpagesConfig { endpoint: default_endpoint() }
    }
}

fn default_endpoint() -> String {
    "localhost:55679".into()
}

impl Validate for ZpagesConfig {
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What the pages show, fixed at start.
struct Pages {
    config: Config,
    telemetry: Arc<Telemetry>,
    started: Instant,
    started_at: SystemTime,
}

pub async fn serve(
    config: Config,
    telemetry: Arc<Telemetry>,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) {
    let pages = Arc::new(Pages { config, telemetry, started: Instant::now(), started_at: SystemTime::now() });
    let handler = move |request: hyper::Request<hyper::body::Incoming>, _peer| {
        let pages = pages.clone();
        async move {
            let body = match request.uri().path() {
                "/debug/servicez" => pages.servicez(),
                "/debug/pipelinez" => pages.pipelinez(),
                "/debug/extensionz" => pages.extensionz(),
                "/debug" | "/debug/" | "/" => page(
                    "zPages",
                    "<ul><li><a href=\"/debug/servicez\">servicez</a></li><li><a href=\"/debug/pipelinez\">pipelinez</a></li><li><a href=\"/debug/extensionz\">extensionz</a></li></ul>",
                ),
                _ => return net::text_response(http::StatusCode::NOT_FOUND, "not found\n"),
            };
            let mut response = net::text_response(http::StatusCode::OK, body);
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
    };
    let limits = net::ServerLimits {
        read_header_timeout: net::default_read_header_timeout().0,
        idle_timeout: net::default_idle_timeout().0,
        max_connections: net::ADMIN_MAX_CONNECTIONS,
    };
    net::serve_http(listener, limits, handler, cancel).await;
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}</style>\
         </head><body><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = escape(title)
    )
}

impl Pages {
    fn servicez(&self) -> String {
        let since = self.started_at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let started = jiff::Timestamp::from_second(since.as_secs() as i64).map(|t| t.to_string()).unwrap_or_default();
        let rows = [
            ("Version", env!("CARGO_PKG_VERSION").to_string()),
            ("Start time", started),
            ("Uptime", format!("{}s", self.started.elapsed().as_secs())),
            ("Process id", std::process::id().to_string()),
            ("Cores", std::thread::available_parallelism().map_or(0, |n| n.get()).to_string()),
            ("Pipelines", self.config.service.pipelines.len().to_string()),
        ];
        let mut body = String::from("<table>");
        for (k, v) in rows {
            let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v));
        }
        body.push_str("</table>");
        page("ocelot service", &body)
    }

    fn pipelinez(&self) -> String {
        let metrics = self.telemetry.encode();
        let mut body = String::new();
        for (id, pipeline) in &self.config.service.pipelines {
            let _ = write!(
                body,
                "<h2>{}</h2><table><tr><th>kind</th><th>component</th><th>counters</th></tr>",
                escape(&id.to_string())
            );
            let kinds = [
                ("receiver", &pipeline.receivers),
                ("processor", &pipeline.processors),
                ("exporter", &pipeline.exporters),
            ];
            for (kind, components) in kinds {
                for component in components {
                    let name = component.to_string();
                    let counters = counters(&metrics, kind, &name);
                    let _ = write!(
                        body,
                        "<tr><td>{kind}</td><td>{}</td><td>{}</td></tr>",
                        escape(&name),
                        counters.iter().map(|c| escape(c)).collect::<Vec<_>>().join("<br>")
                    );
                }
            }
            body.push_str("</table>");
        }
        page("ocelot pipelines", &body)
    }

    fn extensionz(&self) -> String {
        let mut body = String::from("<table><tr><th>extension</th></tr>");
        for id in &self.config.service.extensions {
            let _ = write!(body, "<tr><td>{}</td></tr>", escape(&id.to_string()));
        }
        body.push_str("</table>");
        page("ocelot extensions", &body)
    }
}

/// The self-metric samples labelled with this component (`receiver="otlp"` …).
fn counters(metrics: &str, kind: &str, name: &str) -> Vec<String> {
    let label = format!("{kind}=\"{name}\"");
    let filter_label = format!("filter=\"{name}\"");
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && (l.contains(&label) || (kind == "processor" && l.contains(&filter_label))))
        .map(str::to_string)
        .collect()
}
