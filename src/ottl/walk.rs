//! Walking a batch at one context's level: every resource, scope, span, span event,
//! metric, data point or log record, as a statement group (`transform`) or a
//! condition list (`filter`) visits them.

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::compile::EvalError;
use super::record::{Item, ItemMut, Kind, Record, RecordMut, point, point_count};
use crate::pdata::Payload;

static NO_RESOURCE: Resource =
    Resource { attributes: Vec::new(), dropped_attributes_count: 0, entity_refs: Vec::new() };
static NO_SCOPE: InstrumentationScope = InstrumentationScope {
    name: String::new(),
    version: String::new(),
    attributes: Vec::new(),
    dropped_attributes_count: 0,
};

/// Calls `f` on every item of `kind` in `payload`, with a fresh `cache` each; stops at
/// the first error `f` returns. A context the signal does not have visits nothing.
pub fn for_each_mut(
    payload: &mut Payload,
    kind: Kind,
    f: &mut dyn FnMut(&mut RecordMut<'_>) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let mut cache = Vec::new();
    let mut no_scope = InstrumentationScope::default();
    let mut no_url = String::new();
    // One arm per signal; the shape is the same: resource, scope, items.
    macro_rules! walk {
        ($resources:expr, $scopes:ident, $items:ident, |$rec:ident, $item:ident| $visit:block) => {
            for r in $resources {
                let resource = r.resource.get_or_insert_with(Resource::default);
                if kind == Kind::Resource {
                    cache.clear();
                    f(&mut RecordMut {
                        resource,
                        resource_schema_url: &mut r.schema_url,
                        scope: &mut no_scope,
                        scope_schema_url: &mut no_url,
                        item: ItemMut::None,
                        cache: &mut cache,
                    })?;
                    continue;
                }
                for s in &mut r.$scopes {
                    let scope = s.scope.get_or_insert_with(InstrumentationScope::default);
                    if kind == Kind::Scope {
                        cache.clear();
                        f(&mut RecordMut {
                            resource: &mut *resource,
                            resource_schema_url: &mut r.schema_url,
                            scope,
                            scope_schema_url: &mut s.schema_url,
                            item: ItemMut::None,
                            cache: &mut cache,
                        })?;
                        continue;
                    }
                    for $item in &mut s.$items {
                        let mut $rec = |item: ItemMut<'_>, cache: &mut Vec<KeyValue>| {
                            cache.clear();
                            f(&mut RecordMut {
                                resource: &mut *resource,
                                resource_schema_url: &mut r.schema_url,
                                scope: &mut *scope,
                                scope_schema_url: &mut s.schema_url,
                                item,
                                cache,
                            })
                        };
                        $visit
                    }
                }
            }
        };
    }
    match payload {
        Payload::Logs(request) => walk!(&mut request.resource_logs, scope_logs, log_records, |visit, record| {
            if kind == Kind::Log {
                visit(ItemMut::Log(record), &mut cache)?;
            }
        }),
        Payload::Traces(request) => walk!(&mut request.resource_spans, scope_spans, spans, |visit, span| {
            match kind {
                Kind::Span => visit(ItemMut::Span(span), &mut cache)?,
                Kind::SpanEvent => {
                    for i in 0..span.events.len() {
                        visit(ItemMut::Event(&mut *span, i), &mut cache)?;
                    }
                }
                _ => {}
            }
        }),
        Payload::Metrics(request) => walk!(&mut request.resource_metrics, scope_metrics, metrics, |visit, metric| {
            match kind {
                Kind::Metric => visit(ItemMut::Metric(metric), &mut cache)?,
                Kind::DataPoint => {
                    for i in 0..point_count(metric) {
                        visit(ItemMut::Point(&mut *metric, i), &mut cache)?;
                    }
                }
                _ => {}
            }
        }),
    }
    Ok(())
}

/// Whether `f` is true for any item of `kind` in `payload`: stops at the first. A
/// shared batch is read without copying it.
pub fn any(payload: &Payload, kind: Kind, f: &mut dyn FnMut(&Record<'_>) -> bool) -> bool {
    macro_rules! walk {
        ($resources:expr, $scopes:ident, $items:ident, |$record:ident, $item:ident| $found:expr) => {
            for r in $resources {
                let base = Record {
                    resource: r.resource.as_ref().unwrap_or(&NO_RESOURCE),
                    resource_schema_url: &r.schema_url,
                    scope: &NO_SCOPE,
                    scope_schema_url: "",
                    item: Item::None,
                    cache: &[],
                };
                if kind == Kind::Resource {
                    if f(&base) {
                        return true;
                    }
                    continue;
                }
                for s in &r.$scopes {
                    let scope = Record {
                        scope: s.scope.as_ref().unwrap_or(&NO_SCOPE),
                        scope_schema_url: &s.schema_url,
                        ..base
                    };
                    if kind == Kind::Scope {
                        if f(&scope) {
                            return true;
                        }
                        continue;
                    }
                    for $item in &s.$items {
                        let $record = scope;
                        if $found {
                            return true;
                        }
                    }
                }
            }
        };
    }
    match payload {
        Payload::Logs(request) => walk!(&request.resource_logs, scope_logs, log_records, |base, record| {
            kind == Kind::Log && f(&Record { item: Item::Log(record), ..base })
        }),
        Payload::Traces(request) => walk!(&request.resource_spans, scope_spans, spans, |base, span| match kind {
            Kind::Span => f(&Record { item: Item::Span(span), ..base }),
            Kind::SpanEvent => span.events.iter().any(|e| f(&Record { item: Item::Event(span, e), ..base })),
            _ => false,
        }),
        Payload::Metrics(request) => walk!(&request.resource_metrics, scope_metrics, metrics, |base, metric| {
            match kind {
                Kind::Metric => f(&Record { item: Item::Metric(metric), ..base }),
                Kind::DataPoint => (0..point_count(metric))
                    .filter_map(|i| point(metric, i))
                    .any(|p| f(&Record { item: Item::Point(metric, p), ..base })),
                _ => false,
            }
        }),
    }
    false
}

/// Removes from `payload` every item of `kind` for which `drop` says true, then the
/// scopes and resources left empty (and a metric left without data points). Returns
/// the signal's items removed (spans, data points, log records; a span event is not
/// one), or the first error `drop` returned.
pub fn retain(
    payload: &mut Payload,
    kind: Kind,
    drop: &mut dyn FnMut(&Record<'_>) -> Result<bool, EvalError>,
) -> Result<u64, EvalError> {
    let before = payload.item_count() as u64;
    macro_rules! walk {
        ($resources:expr, $scopes:ident, $items:ident, |$record:ident, $item:ident, $fail:ident| $keep:expr) => {{
            let resources = $resources;
            let mut failed = None;
            let mut $fail = |e: EvalError| {
                failed.get_or_insert(e);
                false
            };
            resources.retain_mut(|r| {
                let resource = r.resource.as_ref().unwrap_or(&NO_RESOURCE);
                let url = r.schema_url.as_str();
                let base = Record {
                    resource,
                    resource_schema_url: url,
                    scope: &NO_SCOPE,
                    scope_schema_url: "",
                    item: Item::None,
                    cache: &[],
                };
                if kind == Kind::Resource {
                    return !drop(&base).unwrap_or_else(&mut $fail);
                }
                r.$scopes.retain_mut(|s| {
                    let scope = Record {
                        scope: s.scope.as_ref().unwrap_or(&NO_SCOPE),
                        scope_schema_url: &s.schema_url,
                        ..base
                    };
                    if kind == Kind::Scope {
                        return !drop(&scope).unwrap_or_else(&mut $fail);
                    }
                    s.$items.retain_mut(|$item| {
                        let $record = scope;
                        $keep
                    });
                    !s.$items.is_empty()
                });
                !r.$scopes.is_empty()
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }};
    }
    match payload {
        Payload::Logs(request) => walk!(&mut request.resource_logs, scope_logs, log_records, |base, record, fail| {
            kind != Kind::Log || !drop(&Record { item: Item::Log(record), ..base }).unwrap_or_else(&mut fail)
        }),
        Payload::Traces(request) => walk!(&mut request.resource_spans, scope_spans, spans, |base, span, fail| {
            match kind {
                Kind::Span => !drop(&Record { item: Item::Span(span), ..base }).unwrap_or_else(&mut fail),
                Kind::SpanEvent => {
                    // Dropping every event of a span leaves the span.
                    let events = std::mem::take(&mut span.events);
                    let kept = events
                        .into_iter()
                        .filter(|e| !drop(&Record { item: Item::Event(span, e), ..base }).unwrap_or_else(&mut fail))
                        .collect();
                    span.events = kept;
                    true
                }
                _ => true,
            }
        }),
        Payload::Metrics(request) => {
            walk!(&mut request.resource_metrics, scope_metrics, metrics, |base, metric, fail| {
                match kind {
                    Kind::Metric => !drop(&Record { item: Item::Metric(metric), ..base }).unwrap_or_else(&mut fail),
                    Kind::DataPoint => {
                        let keep: Vec<bool> = (0..point_count(metric))
                            .map(|i| {
                                point(metric, i).is_none_or(|p| {
                                    !drop(&Record { item: Item::Point(metric, p), ..base }).unwrap_or_else(&mut fail)
                                })
                            })
                            .collect();
                        retain_points(metric, &keep);
                        point_count(metric) > 0
                    }
                    _ => true,
                }
            })
        }
    }
    Ok(before - payload.item_count() as u64)
}

/// Keeps the data points whose flag is true.
fn retain_points(metric: &mut Metric, keep: &[bool]) {
    fn apply<T>(points: &mut Vec<T>, keep: &[bool]) {
        let mut flags = keep.iter();
        points.retain(|_| flags.next().copied().unwrap_or(true));
    }
    match &mut metric.data {
        Some(metric::Data::Gauge(g)) => apply(&mut g.data_points, keep),
        Some(metric::Data::Sum(s)) => apply(&mut s.data_points, keep),
        Some(metric::Data::Histogram(h)) => apply(&mut h.data_points, keep),
        Some(metric::Data::ExponentialHistogram(e)) => apply(&mut e.data_points, keep),
        Some(metric::Data::Summary(s)) => apply(&mut s.data_points, keep),
        None => {}
    }
}
