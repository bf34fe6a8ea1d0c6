//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, parsed
//! into metric families without copying what needs no unescaping.
//!
//! As Prometheus does, a page that does not parse is refused whole (the scrape fails
//! and `up` is 0), with the line and what was wrong: taking half a page would make
//! series vanish and come back at random.

use std::borrow::Cow;
use std::collections::HashMap;

/// Which grammar a page is in, from the response's Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4` (and anything not OpenMetrics).
    Text,
    /// `application/openmetrics-text`: timestamps in seconds, `# UNIT`, `# EOF`.
    OpenMetrics,
}

impl Format {
    pub fn from_content_type(content_type: &str) -> Format {
        if content_type.trim_start().starts_with("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "gaugehistogram" => Kind::GaugeHistogram,
            "summary" => Kind::Summary,
            "info" => Kind::Info,
            "stateset" => Kind::StateSet,
            "untyped" | "unknown" => Kind::Unknown,
            _ => return None,
        })
    }

    /// The sample-name suffixes a family of this kind has besides its own name.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Counter => &["_total", "_created"],
            Kind::Histogram => &["_bucket", "_sum", "_count", "_created"],
            Kind::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            Kind::Summary => &["_sum", "_count", "_created"],
            Kind::Info => &["_info"],
            Kind::Gauge | Kind::StateSet | Kind::Unknown => &[],
        }
    }
}

/// Every suffix some kind of family gives its samples.
const SUFFIXES: [&str; 8] = ["_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info"];

pub type Labels<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample<'a> {
    /// The full sample name (`http_request_duration_seconds_bucket`).
    pub name: Cow<'a, str>,
    pub labels: Labels<'a>,
    pub value: f64,
    /// Milliseconds since the epoch, when the page gave one.
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Family<'a> {
    pub name: Cow<'a, str>,
    pub kind: Kind,
    pub help: Option<Cow<'a, str>>,
    pub unit: Option<Cow<'a, str>>,
    pub samples: Vec<Sample<'a>>,
    /// Some sample is `<name>_created` (a start time to set on its series).
    pub has_created: bool,
}

impl<'a> Family<'a> {
    fn new(name: Cow<'a, str>, kind: Kind) -> Family<'a> {
        Family { name, kind, help: None, unit: None, samples: Vec::new(), has_created: false }
    }

    /// The part of `sample` after the family's name: "" for the name itself,
    /// `_bucket`, `_total`, ...; None when the sample is not of this family.
    pub fn suffix_of<'s>(&self, sample: &'s str) -> Option<&'s str> {
        let rest = sample.strip_prefix(self.name.as_ref())?;
        (rest.is_empty() || self.kind.suffixes().contains(&rest)).then_some(rest)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole page. Samples go to the family their name belongs to (by the
/// `# TYPE` before them); a sample of no declared family starts an `unknown` one.
pub fn parse(page: &str, format: Format) -> Result<Vec<Family<'_>>, ParseError> {
    let mut families: Vec<Family<'_>> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    let mut eof = false;
    for (n, raw) in page.split('\n').enumerate() {
        let fail = |message: String| ParseError { line: n + 1, message };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if eof {
            if line.is_empty() {
                continue;
            }
            return Err(fail("content after # EOF".into()));
        }
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start_matches([' ', '\t']);
            if format == Format::OpenMetrics && comment == "EOF" {
                eof = true;
                continue;
            }
            let mut words = comment.splitn(3, [' ', '\t']);
            let (Some(keyword), Some(name)) = (words.next(), words.next()) else { continue };
            let rest = words.next().unwrap_or("").trim_start_matches([' ', '\t']);
            match keyword {
                "TYPE" | "HELP" | "UNIT" => {}
                _ => continue,
            }
            let name = metric_name_token(name).ok_or_else(|| fail(format!("`{name}` is not a metric name")))?;
            let index = match by_name.get(name) {
                Some(&i) => i,
                None => {
                    families.push(Family::new(Cow::Borrowed(name), Kind::Unknown));
                    by_name.insert(name, families.len() - 1);
                    families.len() - 1
                }
            };
            let family = &mut families[index];
            match keyword {
                "TYPE" => {
                    let kind = rest.trim();
                    family.kind = Kind::from_name(kind).ok_or_else(|| fail(format!("unknown metric type `{kind}`")))?;
                    if !family.samples.is_empty() {
                        return Err(fail(format!("TYPE of `{name}` after its samples")));
                    }
                }
                "HELP" => family.help = Some(unescape(rest, false)),
                _ => family.unit = Some(Cow::Borrowed(rest.trim())),
            }
            current = Some(index);
            continue;
        }
        let sample = parse_sample(line, format).map_err(fail)?;
        let index = match current.filter(|&i| families[i].suffix_of(&sample.name).is_some()) {
            Some(i) => i,
            None => {
                let found = by_name.get(sample.name.as_ref()).copied().or_else(|| {
                    // A sample of a family declared earlier but not the current one.
                    SUFFIXES.iter().find_map(|suffix| {
                        let base = sample.name.strip_suffix(suffix)?;
                        by_name.get(base).copied().filter(|&i| families[i].suffix_of(&sample.name).is_some())
                    })
                });
                match found {
                    Some(i) => i,
                    None => {
                        let name: &str = match &sample.name {
                            Cow::Borrowed(name) => name,
                            // A quoted name with escapes: find its family by value.
                            Cow::Owned(_) => "",
                        };
                        families.push(Family::new(sample.name.clone(), Kind::Unknown));
                        if !name.is_empty() {
                            by_name.insert(name, families.len() - 1);
                        }
                        families.len() - 1
                    }
                }
            }
        };
        current = Some(index);
        let family = &mut families[index];
        family.has_created |= sample.name.ends_with("_created") && family.suffix_of(&sample.name) == Some("_created");
        family.samples.push(sample);
    }
    if format == Format::OpenMetrics && !eof {
        return Err(ParseError { line: page.lines().count().max(1), message: "no # EOF at the end".into() });
    }
    Ok(families)
}

/// A metric name as written in a comment: plain, or quoted (UTF-8 names).
fn metric_name_token(token: &str) -> Option<&str> {
    if let Some(quoted) = token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return (!quoted.is_empty() && !quoted.contains(['"', '\\'])).then_some(quoted);
    }
    valid_metric_name(token).then_some(token)
}

fn valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `\\` and `\n` (and in label values `\"`) undone; borrowed when there are none.
fn unescape(text: &str, quotes: bool) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A quoted string at the start of `s` (after its opening quote): its text and the
/// rest after the closing quote.
fn quoted(s: &str) -> Result<(Cow<'_, str>, &str), String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok((unescape(&s[..i], true), &s[i + 1..])),
            _ => i += 1,
        }
    }
    Err("unterminated quoted string".into())
}

fn parse_sample(line: &str, format: Format) -> Result<Sample<'_>, String> {
    let (mut name, mut rest): (Cow<'_, str>, &str);
    if line.starts_with('{') {
        name = Cow::Borrowed("");
        rest = line;
    } else {
        let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
        name = Cow::Borrowed(&line[..end]);
        rest = &line[end..];
        if !valid_metric_name(&name) {
            return Err(format!("`{}` does not start with a metric name", line.chars().take(40).collect::<String>()));
        }
    }
    let mut labels = Labels::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = if let Some(q) = rest.strip_prefix('"') {
                let (text, after) = quoted(q)?;
                let after = after.trim_start_matches([' ', '\t']);
                if name.is_empty() && (after.starts_with(',') || after.starts_with('}')) {
                    // `{"my.metric", a="b"}`: a quoted name first, with no `=`.
                    name = text;
                    rest = after.strip_prefix(',').unwrap_or(after);
                    continue;
                }
                (text, after)
            } else {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                let label = &rest[..end];
                if !valid_label_name(label) {
                    return Err(format!("invalid label name at `{}`", rest.chars().take(40).collect::<String>()));
                }
                (Cow::Borrowed(label), rest[end..].trim_start_matches([' ', '\t']))
            };
            let Some(after) = after.strip_prefix('=') else {
                return Err(format!("expected `=` after label `{label}`"));
            };
            let after = after.trim_start_matches([' ', '\t']);
            let Some(value) = after.strip_prefix('"') else {
                return Err(format!("the value of label `{label}` is not quoted"));
            };
            let (value, after) = quoted(value)?;
            if labels.iter().any(|(l, _)| *l == label) {
                return Err(format!("label `{label}` given twice"));
            }
            labels.push((label, value));
            rest = after.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("expected `,` or `}` after a label".into());
            }
        }
    }
    if name.is_empty() {
        return Err("a sample without a metric name".into());
    }
    if !rest.starts_with([' ', '\t']) {
        return Err(format!("expected a space before the value of `{name}`"));
    }
    // OpenMetrics exemplars (` # {...} value`) are not kept.
    let rest = match format {
        Format::OpenMetrics => rest.split_once(" # ").map_or(rest, |(before, _)| before),
        Format::Text => rest,
    };
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or_else(|| format!("`{name}` has no value"))?;
    let value = parse_value(value).ok_or_else(|| format!("`{value}` is not a number (the value of `{name}`)"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(match format {
            Format::Text => ts.parse::<i64>().map_err(|_| format!("`{ts}` is not a timestamp in milliseconds"))?,
            Format::OpenMetrics => {
                let seconds: f64 = ts.parse().map_err(|_| format!("`{ts}` is not a timestamp in seconds"))?;
                if !seconds.is_finite() {
                    return Err(format!("`{ts}` is not a timestamp in seconds"));
                }
                (seconds * 1000.0).round() as i64
            }
        }),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected `{extra}` after the value of `{name}`"));
    }
    Ok(Sample { name, labels, value, timestamp_ms })
}

/// A sample value: a float, `NaN`, `+Inf`, `-Inf` (any case, as Go's ParseFloat).
fn parse_value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
