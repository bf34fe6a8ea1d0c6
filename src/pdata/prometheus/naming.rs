//! OpenTelemetry → Prometheus names, as the compatibility specification and the
//! upstream translator write them: metric names with unit suffixes (`_seconds`,
//! `_bytes`, `_per_second`), `_total` for counters, `_ratio` for unit-1 gauges, and
//! label names with invalid characters replaced.

/// What kind of series a metric becomes, for its name's suffixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A monotonic sum: `_total`.
    Counter,
    /// A gauge (or non-monotonic sum): `_ratio` when the unit is `1`.
    Gauge,
    /// Histograms and summaries: the unit suffix only.
    Other,
}

/// The main-unit words, as upstream maps UCUM units.
fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        _ => return None,
    })
}

/// The "per" unit words: `m/s` → `meters_per_second`.
fn per_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// Runs of characters outside `[a-zA-Z0-9_:]` (or `[a-zA-Z0-9_]` for labels) become
/// one `_`.
fn clean(text: &str, colon: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
        if ok {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// A unit part as a name token: known words, `{annotations}` dropped, anything else cleaned.
fn unit_token(part: &str, word: fn(&str) -> Option<&'static str>) -> String {
    let part = part.trim();
    if part.is_empty() || part.contains('{') || part.contains('}') {
        return String::new();
    }
    match word(part) {
        Some(w) => w.to_string(),
        None => clean(part, false).trim_matches('_').to_string(),
    }
}

/// The Prometheus metric name of an OpenTelemetry metric.
pub fn metric_name(name: &str, unit: &str, kind: NameKind, namespace: &str, add_suffixes: bool) -> String {
    let mut out = if add_suffixes {
        let mut tokens: Vec<String> = name
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let (main, per) = match unit.split_once('/') {
            Some((main, per)) => (main, per),
            None => (unit, ""),
        };
        let main = unit_token(main, unit_word);
        let per = unit_token(per, per_word);
        if !main.is_empty() && !tokens.contains(&main) {
            tokens.push(main);
        }
        if !per.is_empty() && !tokens.contains(&per) {
            tokens.push("per".into());
            tokens.push(per);
        }
        match kind {
            NameKind::Counter => {
                tokens.retain(|t| t != "total");
                tokens.push("total".into());
            }
            NameKind::Gauge if unit.trim() == "1" => {
                tokens.retain(|t| t != "ratio");
                tokens.push("ratio".into());
            }
            _ => {}
        }
        if !namespace.is_empty() {
            tokens.insert(0, clean(namespace, true));
        }
        tokens.join("_")
    } else {
        let cleaned = clean(name, true);
        if namespace.is_empty() { cleaned } else { format!("{}_{cleaned}", clean(namespace, true)) }
    };
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A valid label name, as upstream's `NormalizeLabel`: other characters become `_`,
/// then a leading digit gets `key_` and a single leading `_` gets `key` in front
/// (`__` names are kept). An empty key stays empty (and makes no label).
pub fn label_name(key: &str) -> String {
    let cleaned: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if cleaned.starts_with(|c: char| c.is_ascii_digit()) {
        return format!("key_{cleaned}");
    }
    if cleaned.starts_with('_') && !cleaned.starts_with("__") {
        return format!("key{cleaned}");
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_unit_and_type_suffixes() {
        let cases = [
            ("system.filesystem.usage", "By", NameKind::Gauge, "system_filesystem_usage_bytes"),
            ("http.server.duration", "s", NameKind::Other, "http_server_duration_seconds"),
            ("speed", "m/s", NameKind::Gauge, "speed_meters_per_second"),
            ("requests.count", "1", NameKind::Counter, "requests_count_total"),
            ("requests_total", "{request}", NameKind::Counter, "requests_total"),
            ("throughput", "{req}/s", NameKind::Gauge, "throughput_per_second"),
            ("cpu.utilization", "1", NameKind::Gauge, "cpu_utilization_ratio"),
            ("cpu.ratio.used", "1", NameKind::Gauge, "cpu_used_ratio"),
            ("disk.io", "By", NameKind::Counter, "disk_io_bytes_total"),
            ("latency_seconds", "s", NameKind::Other, "latency_seconds"),
            ("temp", "Cel", NameKind::Gauge, "temp_celsius"),
            ("weird", "foo bar", NameKind::Gauge, "weird_foo_bar"),
            ("2xx.count", "", NameKind::Counter, "_2xx_count_total"),
            ("a..b--c", "", NameKind::Gauge, "a_b_c"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(metric_name(name, unit, kind, "", true), want, "{name} {unit}");
        }
        assert_eq!(metric_name("up", "", NameKind::Gauge, "app", true), "app_up");
        assert_eq!(metric_name("http.requests", "s", NameKind::Counter, "", false), "http_requests");
        assert_eq!(metric_name("x-y", "", NameKind::Gauge, "ns", false), "ns_x_y");
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_name("service.name"), "service_name");
        assert_eq!(label_name("http.status-code"), "http_status_code");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__name__"), "__name__");
        assert_eq!(label_name("__foo.bar"), "__foo_bar");
        assert_eq!(label_name("ünïcode"), "key_n_code");
        assert_eq!(label_name(""), "");
    }
}
