use super::*;
use crate::receivers::prometheus::relabel::RelabelConfig;
use crate::receivers::prometheus::text::{Format, parse};

fn target() -> TargetSettings {
    TargetSettings::new(
        LabelSet::from_pairs([
            ("instance".to_string(), "10.0.0.5:9100".to_string()),
            ("job".into(), "node".into()),
            ("zone".into(), "a".into()),
        ]),
        "http",
    )
}

const PAGE: &str = "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total{code=\"200\"} 10\nreq_total{code=\"500\"} 2\n\
# TYPE temp gauge\ntemp 21.5 1700000000000\n\
# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 3\nlat_bucket{le=\"1\"} 5\nlat_bucket{le=\"+Inf\"} 6\nlat_sum 2.5\nlat_count 6\n\
# TYPE rpc summary\nrpc{quantile=\"0.5\"} 0.2\nrpc{quantile=\"0.9\"} 0.7\nrpc_sum 12\nrpc_count 40\n\
# TYPE target_info gauge\ntarget_info{region=\"eu\"} 1\n\
plain 7\n";

const T: u64 = 1_800_000_000_000_000_000;

fn metrics(out: &[ResourceMetrics]) -> Vec<&Metric> {
    out.iter().flat_map(|r| r.scope_metrics.iter().flat_map(|s| s.metrics.iter())).collect()
}

fn attribute<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    kvs.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.as_str()),
        _ => None,
    })
}

#[test]
fn kinds_resource_and_target_info_as_upstream() {
    let families = parse(PAGE, Format::Text).unwrap();
    let mut state = Staleness::default();
    let (out, counts) = translate(&families, &target(), T, &mut state).unwrap();
    assert_eq!(counts, Counts { scraped: 14, post_relabel: 14, series_added: 6 });
    assert_eq!(out.len(), 1);
    let resource = &out[0].resource.as_ref().unwrap().attributes;
    assert_eq!(attribute(resource, "service.name"), Some("node"));
    assert_eq!(attribute(resource, "service.instance.id"), Some("10.0.0.5:9100"));
    assert_eq!(attribute(resource, "server.address"), Some("10.0.0.5"));
    assert_eq!(attribute(resource, "server.port"), Some("9100"));
    assert_eq!(attribute(resource, "url.scheme"), Some("http"));
    assert_eq!(attribute(resource, "region"), Some("eu"), "target_info becomes the resource");
    assert_eq!(out[0].scope_metrics[0].scope.as_ref().unwrap().name, SCOPE_NAME);
    let all = metrics(&out);
    let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["req_total", "temp", "lat", "rpc", "plain"]);

    let Some(Data::Sum(sum)) = &all[0].data else { panic!("{:?}", all[0]) };
    assert!(sum.is_monotonic && sum.aggregation_temporality == AggregationTemporality::Cumulative as i32);
    assert_eq!(sum.data_points.len(), 2);
    assert_eq!(sum.data_points[0].start_time_unix_nano, 0, "no start time: the metricstarttime processor's job");
    assert_eq!(attribute(&sum.data_points[0].attributes, "code"), Some("200"));
    assert_eq!(attribute(&sum.data_points[0].attributes, "zone"), Some("a"), "target labels on every point");
    assert!(attribute(&sum.data_points[0].attributes, "job").is_none());
    assert_eq!(all[0].description, "Requests.");

    let Some(Data::Gauge(gauge)) = &all[1].data else { panic!() };
    assert_eq!(gauge.data_points[0].time_unix_nano, 1_700_000_000_000_000_000, "the page's timestamp is honored");

    let Some(Data::Histogram(h)) = &all[2].data else { panic!() };
    let p = &h.data_points[0];
    assert_eq!(
        (p.count, p.sum, p.explicit_bounds.clone(), p.bucket_counts.clone()),
        (6, Some(2.5), vec![0.1, 1.0], vec![3, 2, 1])
    );
    assert!(attribute(&p.attributes, "le").is_none());

    let Some(Data::Summary(s)) = &all[3].data else { panic!() };
    let p = &s.data_points[0];
    assert_eq!((p.count, p.sum, p.quantile_values.len()), (40, 12.0, 2));
    assert_eq!((p.quantile_values[1].quantile, p.quantile_values[1].value), (0.9, 0.7));

    let Some(Data::Gauge(untyped)) = &all[4].data else { panic!() };
    assert_eq!(untyped.data_points[0].time_unix_nano, T, "no timestamp: the scrape's time");
}

#[test]
fn a_vanished_series_gets_a_staleness_marker() {
    let mut state = Staleness::default();
    let first = parse("a{x=\"1\"} 1\na{x=\"2\"} 2\n# TYPE c counter\nc_total 5\n", Format::Text).unwrap();
    translate(&first, &target(), T, &mut state).unwrap();
    let second = parse("a{x=\"1\"} 3\n", Format::Text).unwrap();
    let (out, counts) = translate(&second, &target(), T + 1, &mut state).unwrap();
    assert_eq!(counts.series_added, 0);
    let all = metrics(&out);
    let Some(Data::Gauge(a)) = &all[0].data else { panic!() };
    assert_eq!(a.data_points.len(), 2);
    let stale = a.data_points.iter().find(|p| p.flags == NO_RECORDED_VALUE).unwrap();
    assert_eq!(attribute(&stale.attributes, "x"), Some("2"));
    assert_eq!(stale.value, None);
    let Some(Data::Sum(c)) = &all[1].data else { panic!() };
    assert_eq!(c.data_points[0].flags, NO_RECORDED_VALUE);

    // A failed scrape marks what is left stale, once.
    let out = all_stale(&target(), T + 2, &mut state);
    assert_eq!(metrics(&out).len(), 1);
    assert!(all_stale(&target(), T + 3, &mut state).is_empty());
}

#[test]
fn clashing_labels_limits_and_metric_relabeling() {
    let page = parse("m{job=\"inner\",zone=\"b\"} 1\nother 2\n", Format::Text).unwrap();
    let mut state = Staleness::default();
    let (out, _) = translate(&page, &target(), T, &mut state).unwrap();
    let all = metrics(&out);
    let Some(Data::Gauge(g)) = &all[0].data else { panic!() };
    assert_eq!(attribute(&g.data_points[0].attributes, "exported_job"), Some("inner"));
    assert_eq!(attribute(&g.data_points[0].attributes, "exported_zone"), Some("b"));
    assert_eq!(attribute(&g.data_points[0].attributes, "zone"), Some("a"));

    let external = TargetSettings {
        external_labels: vec![("cluster".into(), "c1".into()), ("zone".into(), "ignored".into())],
        ..target()
    };
    let (out, _) = translate(&page, &external, T, &mut Staleness::default()).unwrap();
    let Some(Data::Gauge(g)) = &metrics(&out)[0].data else { panic!() };
    assert_eq!(attribute(&g.data_points[0].attributes, "cluster"), Some("c1"), "an external label");
    assert_eq!(attribute(&g.data_points[0].attributes, "zone"), Some("a"), "the target's label wins");
    assert_eq!(g.data_points[0].attributes.iter().filter(|kv| kv.key == "zone").count(), 1);

    let honor = TargetSettings { honor_labels: true, ..target() };
    let (out, _) = translate(&page, &honor, T, &mut Staleness::default()).unwrap();
    assert_eq!(out.len(), 2, "the page's job wins: its own resource");
    let names: Vec<Option<&str>> =
        out.iter().map(|r| attribute(&r.resource.as_ref().unwrap().attributes, "service.name")).collect();
    assert_eq!(names, [Some("node"), Some("inner")]);

    let drop: RelabelConfig =
        serde_json::from_str(r#"{"source_labels": ["__name__"], "regex": "other", "action": "drop"}"#).unwrap();
    let relabeled = TargetSettings { metric_relabel: vec![drop.compile().unwrap()], sample_limit: 1, ..target() };
    let (out, counts) = translate(&page, &relabeled, T, &mut Staleness::default()).unwrap();
    assert_eq!((counts.scraped, counts.post_relabel), (2, 1));
    assert_eq!(metrics(&out).len(), 1);

    let limited = TargetSettings { sample_limit: 1, ..target() };
    assert_eq!(translate(&page, &limited, T, &mut Staleness::default()).unwrap_err(), LimitError::Samples(2, 1));
    let limited = TargetSettings { label_limit: 2, ..target() };
    assert!(matches!(translate(&page, &limited, T, &mut Staleness::default()), Err(LimitError::Labels(..))));
    let limited = TargetSettings { label_value_length_limit: 3, ..target() };
    assert!(matches!(translate(&page, &limited, T, &mut Staleness::default()), Err(LimitError::ValueLength(..))));
}

#[test]
fn openmetrics_counters_with_created_and_trimmed_suffixes() {
    let page = "# TYPE http_time_seconds counter\n# UNIT http_time_seconds seconds\nhttp_time_seconds_total 4\nhttp_time_seconds_created 1700000000.5\n# EOF\n";
    let families = parse(page, Format::OpenMetrics).unwrap();
    let (out, _) = translate(&families, &target(), T, &mut Staleness::default()).unwrap();
    let all = metrics(&out);
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].name.as_str(), all[0].unit.as_str()), ("http_time_seconds_total", "seconds"));
    let Some(Data::Sum(sum)) = &all[0].data else { panic!() };
    assert_eq!(sum.data_points[0].start_time_unix_nano, 1_700_000_000_500_000_000);
    let trimmed = TargetSettings { trim_metric_suffixes: true, ..target() };
    let (out, _) = translate(&families, &trimmed, T, &mut Staleness::default()).unwrap();
    assert_eq!(metrics(&out)[0].name, "http_time");
}
