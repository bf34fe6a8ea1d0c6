//! OTTL's contexts: what one item (a resource, a scope, a span, a span event, a
//! metric, a data point, a log record) looks like to a statement, and upstream's
//! enums. [`Record`] is the read-only view every getter takes; [`RecordMut`] is what
//! an editor writes through, and gives a [`Record`] to evaluate arguments first.
//!
//! The paths themselves are in [`super::paths`].

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span};

use crate::pdata::Signal;

/// An OTTL context: which items a statement runs on and which paths it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Resource,
    Scope,
    Span,
    SpanEvent,
    Metric,
    DataPoint,
    Log,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Kind::Resource, Kind::Scope, Kind::Span, Kind::SpanEvent, Kind::Metric, Kind::DataPoint, Kind::Log];

    /// The context of a signal's counted items: spans, data points, log records.
    pub fn items_of(signal: Signal) -> Kind {
        match signal {
            Signal::Traces => Kind::Span,
            Signal::Metrics => Kind::DataPoint,
            Signal::Logs => Kind::Log,
        }
    }

    /// The name paths are prefixed with, and `context:` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Resource => "resource",
            Kind::Scope => "scope",
            Kind::Span => "span",
            Kind::SpanEvent => "spanevent",
            Kind::Metric => "metric",
            Kind::DataPoint => "datapoint",
            Kind::Log => "log",
        }
    }

    /// A context by name (`instrumentation_scope` is upstream's older name of scope).
    pub fn parse(name: &str) -> Option<Kind> {
        match name.to_ascii_lowercase().as_str() {
            "instrumentation_scope" => Some(Kind::Scope),
            other => Kind::ALL.into_iter().find(|k| k.name() == other),
        }
    }

    /// Whether this context's statements may read and write `other.` paths: its own,
    /// and those of the items it sits in.
    pub fn reaches(self, other: Kind) -> bool {
        use Kind::*;
        match self {
            Resource => other == Resource,
            Scope => matches!(other, Resource | Scope),
            Span => matches!(other, Resource | Scope | Span),
            SpanEvent => matches!(other, Resource | Scope | Span | SpanEvent),
            Metric => matches!(other, Resource | Scope | Metric),
            DataPoint => matches!(other, Resource | Scope | Metric | DataPoint),
            Log => matches!(other, Resource | Scope | Log),
        }
    }

    /// The contexts statements of a signal may run in, from the most specific: the
    /// order upstream's context inference tries them.
    pub fn of_signal(signal: Signal) -> &'static [Kind] {
        match signal {
            Signal::Logs => &[Kind::Log, Kind::Resource, Kind::Scope],
            Signal::Metrics => &[Kind::DataPoint, Kind::Metric, Kind::Resource, Kind::Scope],
            Signal::Traces => &[Kind::SpanEvent, Kind::Span, Kind::Resource, Kind::Scope],
        }
    }

    /// An enum symbol's value in this context, as upstream defines them.
    pub fn enum_value(self, name: &str) -> Option<i64> {
        let table: &[(&str, i64)] = match self {
            Kind::Span | Kind::SpanEvent => SPAN_ENUMS,
            Kind::Metric => METRIC_ENUMS,
            Kind::DataPoint => {
                if let Some(&(_, v)) = DATAPOINT_ENUMS.iter().find(|(n, _)| *n == name) {
                    return Some(v);
                }
                METRIC_ENUMS
            }
            Kind::Log => return severity(name),
            Kind::Resource | Kind::Scope => &[],
        };
        table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

const SPAN_ENUMS: &[(&str, i64)] = &[
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
    ("STATUS_CODE_UNSET", 0),
    ("STATUS_CODE_OK", 1),
    ("STATUS_CODE_ERROR", 2),
];

const METRIC_ENUMS: &[(&str, i64)] = &[
    ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
    ("AGGREGATION_TEMPORALITY_DELTA", 1),
    ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
    ("METRIC_DATA_TYPE_NONE", 0),
    ("METRIC_DATA_TYPE_GAUGE", 1),
    ("METRIC_DATA_TYPE_SUM", 2),
    ("METRIC_DATA_TYPE_HISTOGRAM", 3),
    ("METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM", 4),
    ("METRIC_DATA_TYPE_SUMMARY", 5),
];

const DATAPOINT_ENUMS: &[(&str, i64)] = &[("FLAG_NONE", 0), ("FLAG_NO_RECORDED_VALUE", 1)];

const SEVERITY_NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// `SEVERITY_NUMBER_WARN` = 13, `SEVERITY_NUMBER_WARN2` = 14 …
fn severity(name: &str) -> Option<i64> {
    let level = name.strip_prefix("SEVERITY_NUMBER_")?;
    if level == "UNSPECIFIED" {
        return Some(0);
    }
    let (base, step) = match level.char_indices().find(|(_, c)| c.is_ascii_digit()) {
        Some((at, _)) => (&level[..at], level[at..].parse::<i64>().ok().filter(|n| (2..=4).contains(n))? - 1),
        None => (level, 0),
    };
    let index = SEVERITY_NAMES.iter().position(|n| *n == base)? as i64;
    Some(index * 4 + 1 + step)
}

/// A metric's data point, of whichever kind it is.
#[derive(Clone, Copy, Debug)]
pub enum Point<'a> {
    Number(&'a NumberDataPoint),
    Histogram(&'a HistogramDataPoint),
    Exponential(&'a ExponentialHistogramDataPoint),
    Summary(&'a SummaryDataPoint),
}

/// The item a statement runs on, below its resource and scope.
#[derive(Clone, Copy, Debug)]
pub enum Item<'a> {
    /// The resource and scope contexts have no item of their own.
    None,
    Log(&'a LogRecord),
    Span(&'a Span),
    Event(&'a Span, &'a span::Event),
    Metric(&'a Metric),
    Point(&'a Metric, Point<'a>),
}

/// One item as a statement reads it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub resource: &'a Resource,
    pub resource_schema_url: &'a str,
    pub scope: &'a InstrumentationScope,
    pub scope_schema_url: &'a str,
    pub item: Item<'a>,
    /// The per-item scratch map (`cache`).
    pub cache: &'a [KeyValue],
}

impl<'a> Record<'a> {
    /// An item with its resource and scope, no schema URLs and no cache.
    pub fn new(resource: &'a Resource, scope: &'a InstrumentationScope, item: Item<'a>) -> Record<'a> {
        Record { resource, resource_schema_url: "", scope, scope_schema_url: "", item, cache: &[] }
    }

    /// A log record with its resource and scope, no schema URLs and no cache.
    pub fn log(resource: &'a Resource, scope: &'a InstrumentationScope, record: &'a LogRecord) -> Record<'a> {
        Record::new(resource, scope, Item::Log(record))
    }

    /// The item's own attributes: a span's (an event's span's), a data point's, a log
    /// record's; none for a resource, scope or metric.
    pub fn attributes(&self) -> &'a [KeyValue] {
        match self.item {
            Item::Log(l) => &l.attributes,
            Item::Span(s) | Item::Event(s, _) => &s.attributes,
            Item::Point(_, p) => match p {
                Point::Number(p) => &p.attributes,
                Point::Histogram(p) => &p.attributes,
                Point::Exponential(p) => &p.attributes,
                Point::Summary(p) => &p.attributes,
            },
            Item::None | Item::Metric(_) => &[],
        }
    }

    pub fn span(&self) -> Option<&'a Span> {
        match self.item {
            Item::Span(s) | Item::Event(s, _) => Some(s),
            _ => None,
        }
    }

    pub fn metric(&self) -> Option<&'a Metric> {
        match self.item {
            Item::Metric(m) | Item::Point(m, _) => Some(m),
            _ => None,
        }
    }
}

/// The data points of a metric, however many of whichever kind.
pub fn point_count(metric: &Metric) -> usize {
    match &metric.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(e)) => e.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// The `index`th data point of a metric.
pub fn point(metric: &Metric, index: usize) -> Option<Point<'_>> {
    Some(match &metric.data {
        Some(metric::Data::Gauge(g)) => Point::Number(g.data_points.get(index)?),
        Some(metric::Data::Sum(s)) => Point::Number(s.data_points.get(index)?),
        Some(metric::Data::Histogram(h)) => Point::Histogram(h.data_points.get(index)?),
        Some(metric::Data::ExponentialHistogram(e)) => Point::Exponential(e.data_points.get(index)?),
        Some(metric::Data::Summary(s)) => Point::Summary(s.data_points.get(index)?),
        None => return None,
    })
}

/// A data point, to write.
pub enum PointMut<'a> {
    Number(&'a mut NumberDataPoint),
    Histogram(&'a mut HistogramDataPoint),
    Exponential(&'a mut ExponentialHistogramDataPoint),
    Summary(&'a mut SummaryDataPoint),
}

pub fn point_mut(metric: &mut Metric, index: usize) -> Option<PointMut<'_>> {
    Some(match &mut metric.data {
        Some(metric::Data::Gauge(g)) => PointMut::Number(g.data_points.get_mut(index)?),
        Some(metric::Data::Sum(s)) => PointMut::Number(s.data_points.get_mut(index)?),
        Some(metric::Data::Histogram(h)) => PointMut::Histogram(h.data_points.get_mut(index)?),
        Some(metric::Data::ExponentialHistogram(e)) => PointMut::Exponential(e.data_points.get_mut(index)?),
        Some(metric::Data::Summary(s)) => PointMut::Summary(s.data_points.get_mut(index)?),
        None => return None,
    })
}

/// The item an editor writes. A span event and a data point are named by index, as
/// their span or metric is written through the same borrow.
pub enum ItemMut<'a> {
    None,
    Log(&'a mut LogRecord),
    Span(&'a mut Span),
    Event(&'a mut Span, usize),
    Metric(&'a mut Metric),
    Point(&'a mut Metric, usize),
}

/// One item as an editor writes it.
pub struct RecordMut<'a> {
    pub resource: &'a mut Resource,
    pub resource_schema_url: &'a mut String,
    pub scope: &'a mut InstrumentationScope,
    pub scope_schema_url: &'a mut String,
    pub item: ItemMut<'a>,
    pub cache: &'a mut Vec<KeyValue>,
}

impl RecordMut<'_> {
    /// The same item, to read.
    pub fn view(&self) -> Record<'_> {
        let item = match &self.item {
            ItemMut::None => Item::None,
            ItemMut::Log(r) => Item::Log(r),
            ItemMut::Span(s) => Item::Span(s),
            ItemMut::Event(s, i) => s.events.get(*i).map_or(Item::Span(s), |e| Item::Event(s, e)),
            ItemMut::Metric(m) => Item::Metric(m),
            ItemMut::Point(m, i) => point(m, *i).map_or(Item::Metric(m), |p| Item::Point(m, p)),
        };
        Record {
            resource: self.resource,
            resource_schema_url: self.resource_schema_url,
            scope: self.scope,
            scope_schema_url: self.scope_schema_url,
            item,
            cache: self.cache,
        }
    }

    pub fn span(&mut self) -> Option<&mut Span> {
        match &mut self.item {
            ItemMut::Span(s) | ItemMut::Event(s, _) => Some(s),
            _ => None,
        }
    }

    pub fn event(&mut self) -> Option<&mut span::Event> {
        match &mut self.item {
            ItemMut::Event(s, i) => s.events.get_mut(*i),
            _ => None,
        }
    }

    pub fn metric(&mut self) -> Option<&mut Metric> {
        match &mut self.item {
            ItemMut::Metric(m) | ItemMut::Point(m, _) => Some(m),
            _ => None,
        }
    }

    pub fn point(&mut self) -> Option<PointMut<'_>> {
        match &mut self.item {
            ItemMut::Point(m, i) => point_mut(m, *i),
            _ => None,
        }
    }

    pub fn log(&mut self) -> Option<&mut LogRecord> {
        match &mut self.item {
            ItemMut::Log(r) => Some(r),
            _ => None,
        }
    }
}
