use super::*;

fn labels(sample: &Sample<'_>) -> Vec<(String, String)> {
    sample.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn text_format_families_samples_and_escapes() {
    let page = "# HELP http_requests_total The total.\\nSecond \\\\ line.\n\
                # TYPE http_requests_total counter\n\
                http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                http_requests_total{method=\"post\",code=\"400\",} 3\n\
                \n\
                # A comment\n\
                # TYPE rpc_duration_seconds summary\n\
                rpc_duration_seconds{quantile=\"0.5\"} 4773\n\
                rpc_duration_seconds_sum 1.7560473e+07\n\
                rpc_duration_seconds_count 2693\n\
                # TYPE h histogram\n\
                h_bucket{le=\"0.1\"} 1\n\
                h_bucket{le=\"+Inf\"} 3\n\
                h_sum 0.5\n\
                h_count 3\n\
                msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
                metric_without_timestamp_and_labels 12.47\n\
                something_weird{problem=\"division by zero\"} +Inf -3982045\n";
    let families = parse(page, Format::Text).unwrap();
    let names: Vec<(&str, Kind, usize)> = families.iter().map(|f| (f.name.as_ref(), f.kind, f.samples.len())).collect();
    assert_eq!(
        names,
        [
            ("http_requests_total", Kind::Counter, 2),
            ("rpc_duration_seconds", Kind::Summary, 3),
            ("h", Kind::Histogram, 4),
            ("msdos_file_access_time_seconds", Kind::Unknown, 1),
            ("metric_without_timestamp_and_labels", Kind::Unknown, 1),
            ("something_weird", Kind::Unknown, 1),
        ]
    );
    assert_eq!(families[0].help.as_deref(), Some("The total.\nSecond \\ line."));
    let first = &families[0].samples[0];
    assert_eq!(labels(first), [("method".into(), "post".into()), ("code".into(), "200".into())]);
    assert_eq!((first.value, first.timestamp_ms), (1027.0, Some(1_395_066_363_000)));
    assert_eq!(families[0].samples[1].labels.len(), 2, "a trailing comma is fine");
    assert!(matches!(families[0].samples[0].labels[0].1, Cow::Borrowed(_)), "no copy without escapes");
    let msdos = &families[3].samples[0];
    assert_eq!(msdos.labels[0].1, "C:\\DIR\\FILE.TXT");
    assert_eq!(msdos.labels[1].1, "Cannot find file:\n\"FILE.TXT\"");
    let weird = &families[5].samples[0];
    assert_eq!((weird.value, weird.timestamp_ms), (f64::INFINITY, Some(-3_982_045)));
    assert_eq!(families[2].suffix_of("h_bucket"), Some("_bucket"));
    assert_eq!(families[2].suffix_of("h_other"), None);
}

#[test]
fn openmetrics_units_seconds_exemplars_and_eof() {
    let page = "# TYPE foo counter\n\
                # UNIT foo seconds\n\
                # HELP foo Time spent.\n\
                foo_total{a=\"1\"} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                foo_created{a=\"1\"} 1520430000.123\n\
                # TYPE state stateset\n\
                state{state=\"a\"} 1\n\
                # TYPE build info\n\
                build_info{version=\"1.2\"} 1\n\
                # EOF\n";
    let families = parse(page, Format::OpenMetrics).unwrap();
    assert_eq!(families.len(), 3);
    let foo = &families[0];
    assert_eq!((foo.kind, foo.unit.as_deref(), foo.samples.len()), (Kind::Counter, Some("seconds"), 2));
    assert_eq!(foo.samples[0].timestamp_ms, Some(1_520_879_607_789), "seconds become milliseconds");
    assert_eq!(foo.samples[0].value, 17.0, "the exemplar is not the value");
    assert_eq!(foo.suffix_of("foo_created"), Some("_created"));
    assert_eq!(families[2].samples[0].name, "build_info");

    let missing = parse("# TYPE foo gauge\nfoo 1\n", Format::OpenMetrics).unwrap_err();
    assert!(missing.message.contains("# EOF"), "{missing}");
    let after = parse("foo 1\n# EOF\nfoo 2\n", Format::OpenMetrics).unwrap_err();
    assert_eq!(after.line, 3);
}

#[test]
fn quoted_utf8_names() {
    let page = "# TYPE \"my.metric\" gauge\n{\"my.metric\", \"code.point\"=\"ü\"} 2\n";
    let families = parse(page, Format::Text).unwrap();
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].kind, Kind::Gauge);
    assert_eq!(families[0].samples[0].name, "my.metric");
    assert_eq!(labels(&families[0].samples[0]), [("code.point".into(), "ü".into())]);
}

#[test]
fn samples_of_an_earlier_family_find_it() {
    let page = "# TYPE a counter\na_total 1\n# TYPE b gauge\nb 2\na_total{x=\"y\"} 3\nc 4\nc 5\n";
    let families = parse(page, Format::Text).unwrap();
    let counts: Vec<(&str, usize)> = families.iter().map(|f| (f.name.as_ref(), f.samples.len())).collect();
    assert_eq!(counts, [("a", 2), ("b", 1), ("c", 2)]);
}

#[test]
fn a_bad_line_refuses_the_page_with_its_line() {
    for (page, line, message) in [
        ("ok 1\nbad{a=\"1\" 2\n", 2, "expected `,` or `}`"),
        ("x{a=1} 2\n", 1, "not quoted"),
        ("x{a=\"1\",a=\"2\"} 2\n", 1, "given twice"),
        ("x 1 2 3\n", 1, "unexpected `3`"),
        ("x abc\n", 1, "not a number"),
        ("x\n", 1, "expected a space"),
        ("9x 1\n", 1, "metric name"),
        ("x{1a=\"b\"} 1\n", 1, "invalid label name"),
        ("x{a=\"unterminated} 1\n", 1, "unterminated"),
        ("# TYPE x strange\n", 1, "unknown metric type"),
        ("x 1 1.5\n", 1, "milliseconds"),
    ] {
        let error = parse(page, Format::Text).unwrap_err();
        assert_eq!(error.line, line, "{page:?}: {error}");
        assert!(error.message.contains(message), "{page:?}: {error}");
    }
}

#[test]
fn special_values_parse_as_go_does() {
    let page = "a NaN\nb +Inf\nc -Inf\nd 1e3\ne -0.5\n";
    let values: Vec<f64> = parse(page, Format::Text).unwrap().iter().map(|f| f.samples[0].value).collect();
    assert!(values[0].is_nan());
    assert_eq!(&values[1..], [f64::INFINITY, f64::NEG_INFINITY, 1000.0, -0.5]);
}
