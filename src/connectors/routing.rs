//! The `routing` connector, with upstream's options: a `table` of routes, each an
//! OTTL `condition` (or a `statement` `route() where …`) in a `context` (resource,
//! span, metric, datapoint, log, or `request` for the request's metadata), and the
//! `pipelines` it sends to. Routes are tried in order and the first that matches
//! takes the data (`action: move`, the default); `action: copy` sends a copy and
//! goes on to the next routes. What no route took goes to `default_pipelines`, or is
//! dropped and counted when there are none.
//!
//! Each output pipeline is an edge of its own: the graph hands every route's part
//! to that pipeline's bounded input (waiting when it is full, as any connector
//! does), and each part carries a share of the batch's acknowledgement, so a source
//! learns its outcome only once every route has delivered its part. An item sent to
//! a pipeline twice (a copy route and a later one naming the same pipeline) goes
//! there once.
//!
//! `error_mode` as upstream, default `ignore`: a condition that fails is false.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::component::Validate;
use crate::config::de::DeError;
use crate::config::node::Node;
use crate::config::{ComponentId, PipelineId};
use crate::ottl::record::{Kind, Record};
use crate::ottl::{Condition, OttlError, walk};
use crate::pdata::{Batch, Metadata, Signal};
use crate::processors::ottl::{ErrorMode, Errors, located};

pub const TYPE: &str = "routing";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Where data no route took goes; none: it is dropped (and counted).
    #[serde(default)]
    pub default_pipelines: Vec<String>,
    /// What a failing condition does. Default ignore.
    #[serde(default)]
    pub error_mode: ErrorMode,
    pub table: Vec<RouteConfig>,
    /// Removed upstream (routing is first match wins); refused with a pointer to `action`.
    #[serde(default)]
    pub match_once: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// resource (default), span, metric, datapoint, log, or request.
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub condition: Option<String>,
    /// `route() where <condition>`: upstream's older form.
    #[serde(default)]
    pub statement: Option<String>,
    pub pipelines: Vec<String>,
    /// `move` (default): the first match takes the data; `copy`: a copy, and on.
    #[serde(default)]
    pub action: Action,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Move,
    Copy,
}

impl Validate for RoutingConfig {
    fn validate(&self) -> Result<(), String> {
        if self.match_once.is_some() {
            return Err("match_once was removed upstream: routing is first match wins; use `action: copy` on a route to send a copy and go on".into());
        }
        if self.table.is_empty() {
            return Err("invalid routing table: the table is empty".into());
        }
        for (i, route) in self.table.iter().enumerate() {
            let n = i + 1;
            if route.pipelines.is_empty() {
                return Err(format!("table[{n}]: invalid route: no pipelines defined"));
            }
            match (&route.condition, &route.statement) {
                (Some(_), Some(_)) => return Err(format!("table[{n}]: give `condition` or `statement`, not both")),
                (None, None) => return Err(format!("table[{n}]: give a `condition` or a `statement`")),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A route's test, compiled for one signal.
enum Test {
    Always,
    Ottl {
        kind: Kind,
        condition: Condition,
    },
    /// `request["key"] == "value"` (or `otelcol.client.metadata["key"]`).
    Request {
        key: String,
        value: String,
    },
}

/// The condition text of a route: a `condition`, or the part of `route() where …`.
fn condition_text(route: &RouteConfig) -> Result<Option<&str>, String> {
    if let Some(c) = &route.condition {
        return Ok(Some(c.as_str()));
    }
    let statement = route.statement.as_deref().unwrap_or_default().trim();
    let Some(rest) = statement.strip_prefix("route()") else {
        return Err(format!(
            "invalid statement `{statement}`: the routing connector's statements are `route() where <condition>`"
        ));
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.strip_prefix("where") {
        Some(c) if c.starts_with(char::is_whitespace) => Ok(Some(c.trim())),
        _ => Err(format!("invalid statement `{statement}`: expected `where <condition>` after route()")),
    }
}

/// `request["k"] == "v"` or `otelcol.client.metadata["k"] == "v"`.
fn request_condition(text: &str) -> Option<(String, String)> {
    let re =
        regex::Regex::new(r#"^(?:request|otelcol\.client\.metadata)\[\s*"([^"]+)"\s*\]\s*==\s*"([^"]*)"$"#).ok()?;
    let caps = re.captures(text.trim())?;
    Some((caps[1].to_ascii_lowercase(), caps[2].to_string()))
}

fn compile_test(route: &RouteConfig, signal: Signal) -> Result<Test, (String, OttlError)> {
    let text = condition_text(route).map_err(|e| (String::new(), OttlError::new(e, Default::default())))?;
    let Some(text) = text else { return Ok(Test::Always) };
    let fail = |e: String| (text.to_string(), OttlError::new(e, Default::default()));
    let context = route.context.as_deref().unwrap_or("resource");
    if context == "request" || text.trim_start().starts_with("otelcol.client.metadata") {
        return request_condition(text).map(|(key, value)| Test::Request { key, value }).ok_or_else(|| {
            fail("the request context takes one comparison, `request[\"<metadata key>\"] == \"<value>\"`".into())
        });
    }
    let kind = crate::processors::filter::context_of(signal, context).map_err(fail)?;
    let kind = if kind == Kind::Scope { Err(fail("routing has no scope context".into()))? } else { kind };
    let condition = Condition::parse(kind, text).map_err(|e| (text.to_string(), e))?;
    Ok(Test::Ottl { kind, condition })
}

/// Reads the config and compiles each route for every signal its context fits, so a
/// bad condition fails the load at its place.
pub fn parse(node: &Node) -> Result<RoutingConfig, DeError> {
    let config: RoutingConfig = crate::component::parse_config(node)?;
    for route in &config.table {
        let mut first = None;
        let mut fits = false;
        for signal in Signal::ALL {
            match compile_test(route, signal) {
                Ok(_) => fits = true,
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if !fits && let Some((text, e)) = first {
            if text.is_empty() {
                return Err(DeError { message: e.message, location: Some(node.location.clone()) });
            }
            return Err(located(node, &text, &e, "condition"));
        }
    }
    Ok(config)
}

impl RoutingConfig {
    /// Every pipeline named in the table or the defaults.
    pub fn pipelines(&self) -> impl Iterator<Item = &str> {
        self.table.iter().flat_map(|r| r.pipelines.iter()).chain(&self.default_pipelines).map(String::as_str)
    }
}

/// A route as it runs on one signal.
struct Route {
    test: Test,
    action: Action,
    /// Bits of the targets it sends to.
    targets: u64,
    items: Counter,
}

/// The connector for one signal in one pipeline: routes resolved to the inputs of
/// the pipelines they name.
pub struct Router {
    id: ComponentId,
    routes: Vec<Route>,
    default: u64,
    default_items: Counter,
    dropped: Counter,
    targets: Vec<mpsc::Sender<Batch>>,
    mode: ErrorMode,
    errors: Errors,
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("table[{route}]: {message}")]
    Route { route: usize, message: String },
    #[error("more than 64 pipelines behind one routing connector")]
    TooMany,
}

impl Router {
    /// `input` finds the input of a pipeline of `signal` named in the table (one that
    /// lists the connector as a receiver; others of the signal are not routed to).
    pub fn new(
        id: &ComponentId,
        config: &RoutingConfig,
        signal: Signal,
        input: &dyn Fn(&PipelineId) -> Option<mpsc::Sender<Batch>>,
        telemetry: &crate::telemetry::Telemetry,
    ) -> Result<Router, RouterError> {
        let mut names: Vec<PipelineId> = Vec::new();
        let mut targets = Vec::new();
        let mut bits = |list: &[String]| -> Result<u64, RouterError> {
            let mut mask = 0u64;
            for name in list {
                let Ok(pipeline) = PipelineId::parse(name) else { continue };
                if pipeline.signal != signal {
                    continue;
                }
                let index = match names.iter().position(|p| p == &pipeline) {
                    Some(i) => i,
                    None => {
                        let Some(tx) = input(&pipeline) else { continue };
                        if names.len() == 64 {
                            return Err(RouterError::TooMany);
                        }
                        names.push(pipeline);
                        targets.push(tx);
                        names.len() - 1
                    }
                };
                mask |= 1 << index;
            }
            Ok(mask)
        };
        let mut routes = Vec::new();
        for (i, route) in config.table.iter().enumerate() {
            let test = compile_test(route, signal)
                .map_err(|(_, e)| RouterError::Route { route: i + 1, message: e.message })?;
            let mask = bits(&route.pipelines)?;
            routes.push(Route {
                test,
                action: route.action,
                targets: mask,
                items: telemetry.route(id, &route.pipelines.join(",")),
            });
        }
        let default = bits(&config.default_pipelines)?;
        let metrics = telemetry.processor(id);
        Ok(Router {
            id: id.clone(),
            routes,
            default,
            default_items: telemetry.route(id, "default"),
            dropped: telemetry.route(id, "dropped"),
            targets,
            mode: config.error_mode,
            errors: Errors::new(id, &metrics),
        })
    }

    /// The level routes are decided at: the deepest context of any route.
    fn kind(&self, signal: Signal) -> Kind {
        let rank = |k: Kind| match k {
            Kind::Resource | Kind::Scope => 0,
            Kind::Span | Kind::Metric | Kind::Log => 1,
            Kind::SpanEvent | Kind::DataPoint => 2,
        };
        let deepest = self
            .routes
            .iter()
            .filter_map(|r| match &r.test {
                Test::Ottl { kind, .. } => Some(*kind),
                _ => None,
            })
            .max_by_key(|k| rank(*k))
            .unwrap_or(Kind::Resource);
        // A data point is split from its metric only when some route looks at points.
        match (signal, deepest) {
            (Signal::Metrics, Kind::DataPoint) => Kind::DataPoint,
            (_, k) if rank(k) == 0 => Kind::Resource,
            (Signal::Traces, _) => Kind::Span,
            (Signal::Metrics, _) => Kind::Metric,
            (Signal::Logs, _) => Kind::Log,
        }
    }

    /// The targets of one unit (a resource, or an item) and the routes that matched.
    fn decide(&mut self, record: Option<&Record<'_>>, metadata: &Metadata) -> Result<(u64, u64), String> {
        let mut targets = 0u64;
        let mut matched = 0u64;
        for (i, route) in self.routes.iter().enumerate() {
            let hit = match &route.test {
                Test::Always => true,
                Test::Request { key, value } => metadata.get(key).iter().any(|v| v == value),
                Test::Ottl { condition, .. } => match record {
                    Some(record) => match condition.eval(record) {
                        Ok(hit) => hit,
                        Err(e) => {
                            self.errors.handle(self.mode, e, "A routing condition")?;
                            false
                        }
                    },
                    None => false,
                },
            };
            if hit {
                targets |= route.targets;
                matched |= 1 << i;
                if route.action == Action::Move {
                    return Ok((targets, matched));
                }
            }
        }
        Ok((targets, matched))
    }

    /// Splits `batch` by route and hands each part to its pipelines, waiting for
    /// room in each. Returns what could not be handed on (a pipeline that closed).
    pub async fn route(&mut self, batch: Batch) -> Result<(), Batch> {
        let signal = batch.signal();
        let kind = self.kind(signal);
        let metadata = batch.metadata.clone();
        // One decision per unit, in walk order, with the unit's item count.
        let mut decisions: Vec<(u64, u64, u64)> = Vec::new();
        let mut failure = None;
        let only_request = self.routes.iter().all(|r| !matches!(r.test, Test::Ottl { .. }));
        if only_request {
            match self.decide(None, &metadata) {
                Ok((t, m)) => decisions.push((t, m, batch.payload.item_count() as u64)),
                Err(e) => failure = Some(e),
            }
        } else {
            let per_resource = crate::pdata::resource_item_counts(&batch.payload);
            let mut resource = 0usize;
            let mut visit = |record: &Record<'_>| {
                if failure.is_some() {
                    return true;
                }
                match self.decide(Some(record), &metadata) {
                    Ok((t, m)) => {
                        let items = match kind {
                            Kind::Resource => per_resource.get(resource).copied().unwrap_or(0),
                            Kind::Metric => record.metric().map_or(0, |m| crate::ottl::record::point_count(m) as u64),
                            _ => 1,
                        };
                        resource += 1;
                        decisions.push((t, m, items));
                    }
                    Err(e) => failure = Some(e),
                }
                false
            };
            walk::any(&batch.payload, kind, &mut visit);
        }
        if let Some(e) = failure {
            batch.reject(None, &format!("routing connector `{}`: {e}", self.id));
            return Ok(());
        }
        // Count per route and for the default; the default takes what nothing took.
        for (targets, matched, items) in &mut decisions {
            for (i, route) in self.routes.iter().enumerate() {
                if *matched & (1 << i) != 0 {
                    route.items.inc_by(*items);
                }
            }
            if *matched == 0 {
                if self.default != 0 {
                    self.default_items.inc_by(*items);
                    *targets = self.default;
                } else {
                    self.dropped.inc_by(*items);
                }
            }
        }
        let all = decisions.first().map(|d| d.0);
        let uniform = all.filter(|first| decisions.iter().all(|d| d.0 == *first));
        let mut sends: Vec<(usize, Batch)> = Vec::new();
        for (index, _) in self.targets.iter().enumerate() {
            let bit = 1u64 << index;
            if !decisions.iter().any(|d| d.0 & bit != 0) {
                continue;
            }
            if uniform.is_some() {
                // Every unit goes to the same targets: share the payload.
                sends.push((index, batch.clone()));
                continue;
            }
            let mut part = (*batch.payload).clone();
            let mut n = 0usize;
            let _ = walk::retain(&mut part, kind, &mut |_| {
                let keep = decisions.get(n).is_some_and(|d| d.0 & bit != 0);
                n += 1;
                Ok(!keep)
            });
            let mut copy = batch.clone();
            copy.payload = Arc::new(part);
            sends.push((index, copy));
        }
        // The original's tokens go with the parts; what no part took is done.
        drop(batch);
        for (index, part) in sends {
            if let Err(e) = self.targets[index].send(part).await {
                return Err(e.0);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
