//! The `container` operator: container runtime log lines to records.
//!
//! Detects the format per line, as upstream: a line starting with `{` is Docker's
//! json-file (`{"log":"…\n","stream":"stdout","time":"…"}`); otherwise CRI
//! (`<RFC3339 time> <stdout|stderr> <P|F> <message>`, CRI-O and containerd). The
//! message becomes the body, the stream `log.iostream`, the time the record's
//! timestamp. Partial lines are joined: CRI `P` fragments until the `F` one, and Docker
//! entries without a trailing newline (Docker cuts lines at 16 KiB) until one with it.
//! Kubernetes metadata comes from the file's path,
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde::Deserialize;

use super::reader::string_kv;
use crate::config::ByteSize;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Detect per line (default).
    #[default]
    #[serde(rename = "")]
    Auto,
    Docker,
    Crio,
    Containerd,
}

/// What to do with a record an operator cannot handle, as upstream names it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Keep the record as it was, log and count the error (default).
    #[default]
    Send,
    /// Keep the record, count the error, no log line.
    SendQuiet,
    /// Drop the record, log and count.
    Drop,
    /// Drop the record, count only.
    DropQuiet,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Operator id, for logs and metrics. Default `container`.
    #[serde(default)]
    pub id: Option<String>,
    /// `docker`, `crio`, `containerd`, or empty to detect per line (default).
    #[serde(default)]
    pub format: Format,
    /// Set `k8s.*` resource attributes from the file path. Default true.
    #[serde(default = "default_true")]
    pub add_metadata_from_filepath: bool,
    /// Longest joined record; a longer one goes out as it is. Default 1MiB.
    #[serde(default = "default_max_log_size")]
    pub max_log_size: ByteSize,
    #[serde(default)]
    pub on_error: OnError,
}

fn default_true() -> bool {
    true
}
fn default_max_log_size() -> ByteSize {
    ByteSize(1 << 20)
}

/// Partial fragments waiting longer than this for their last part are sent as they are.
const PARTIAL_FLUSH: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ContainerError {
    #[error("not a Docker or CRI log line")]
    UnknownFormat,
    #[error("invalid Docker JSON: {0}")]
    Json(String),
    #[error("invalid timestamp `{0}`")]
    Time(String),
}

/// One parsed line.
#[derive(Debug, PartialEq)]
pub struct ContainerLine {
    pub message: String,
    pub stream: String,
    pub time_unix_nano: u64,
    /// True when more of the same line follows (CRI `P`, Docker without `\n`).
    pub partial: bool,
    /// CRI's tag, kept as the `logtag` attribute as upstream does.
    pub logtag: Option<String>,
    /// Docker JSON keys other than log, stream and time.
    pub extra: Vec<KeyValue>,
}

pub fn parse_line(line: &str, format: Format) -> Result<ContainerLine, ContainerError> {
    let docker = match format {
        Format::Auto => line.starts_with('{'),
        Format::Docker => true,
        Format::Crio | Format::Containerd => false,
    };
    if docker { parse_docker(line) } else { parse_cri(line) }
}

fn parse_docker(line: &str) -> Result<ContainerLine, ContainerError> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| ContainerError::Json(e.to_string()))?;
    let mut message = None;
    let mut stream = String::new();
    let mut time = None;
    let mut extra = Vec::new();
    for (key, field) in value {
        match (key.as_str(), field) {
            ("log", serde_json::Value::String(s)) => message = Some(s),
            ("stream", serde_json::Value::String(s)) => stream = s,
            ("time", serde_json::Value::String(s)) => time = Some(s),
            (_, serde_json::Value::String(s)) => extra.push(string_kv(&key, &s)),
            (_, other) => extra.push(string_kv(&key, &other.to_string())),
        }
    }
    let Some(mut message) = message else { return Err(ContainerError::Json("no `log` field".into())) };
    let time = time.ok_or_else(|| ContainerError::Json("no `time` field".into()))?;
    let time_unix_nano = parse_rfc3339(&time).ok_or(ContainerError::Time(time))?;
    // Docker ends each whole line with `\n`; a line it cut at 16 KiB has none.
    let partial = !message.ends_with('\n');
    if !partial {
        message.pop();
        if message.ends_with('\r') {
            message.pop();
        }
    }
    Ok(ContainerLine { message, stream, time_unix_nano, partial, logtag: None, extra })
}

fn parse_cri(line: &str) -> Result<ContainerLine, ContainerError> {
    let mut parts = line.splitn(4, ' ');
    let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ContainerError::UnknownFormat);
    };
    if stream != "stdout" && stream != "stderr" {
        return Err(ContainerError::UnknownFormat);
    }
    let message = parts.next().unwrap_or_default().to_string();
    let time_unix_nano = parse_rfc3339(time).ok_or_else(|| ContainerError::Time(time.to_string()))?;
    // The tag is `P` or `F`, possibly with more flags after `:`.
    let partial = tag.split(':').next() == Some("P");
    Ok(ContainerLine {
        message,
        stream: stream.to_string(),
        time_unix_nano,
        partial,
        logtag: Some(tag.to_string()),
        extra: Vec::new(),
    })
}

/// RFC 3339 with optional fraction and `Z` or `±hh:mm`, to nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: i64 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &fraction[..digits.min(9)];
        nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    u64::try_from(seconds).ok()?.checked_mul(1_000_000_000)?.checked_add(nanos as u64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `k8s.*` resource attributes from a `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log` path.
pub fn kubernetes_metadata(path: &str) -> Option<Vec<KeyValue>> {
    let mut parts = path.rsplit('/');
    let file = parts.next()?;
    let container = parts.next()?;
    let pod_dir = parts.next()?;
    let restart = file.strip_suffix(".log")?;
    if restart.is_empty() || !restart.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if container.is_empty() || container.contains(['.', '_']) {
        return None;
    }
    let mut fields = pod_dir.splitn(3, '_');
    let (namespace, pod, uid) = (fields.next()?, fields.next()?, fields.next()?);
    if namespace.is_empty()
        || pod.is_empty()
        || uid.is_empty()
        || !uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        return None;
    }
    Some(vec![
        string_kv("k8s.namespace.name", namespace),
        string_kv("k8s.pod.name", pod),
        string_kv("k8s.pod.uid", uid),
        string_kv("k8s.container.name", container),
        string_kv("k8s.container.restart_count", restart),
    ])
}

/// The operator for one file: joins partial lines, remembers where the first held
/// fragment's line began (the checkpoint may not pass it).
pub struct ContainerParser {
    config: ContainerConfig,
    held: Option<Held>,
}

struct Held {
    record: LogRecord,
    message: String,
    since: Instant,
    line_start: u64,
}

/// The outcome of one record, for the caller's error counting and logging.
pub enum Parsed {
    Ok,
    Failed(ContainerError),
}

impl ContainerParser {
    pub fn new(config: ContainerConfig) -> ContainerParser {
        ContainerParser { config, held: None }
    }

    pub fn on_error(&self) -> OnError {
        self.config.on_error
    }

    pub fn open_since(&self) -> Option<u64> {
        self.held.as_ref().map(|h| h.line_start)
    }

    /// Parses `record` (its body is the raw line) into `out`, joining partials.
    pub fn process(&mut self, mut record: LogRecord, line_start: u64, out: &mut Vec<LogRecord>) -> Parsed {
        let line = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.as_str(),
            _ => "",
        };
        let parsed = match parse_line(line, self.config.format) {
            Ok(parsed) => parsed,
            Err(error) => {
                if matches!(self.config.on_error, OnError::Send | OnError::SendQuiet) {
                    out.push(record);
                }
                return Parsed::Failed(error);
            }
        };
        match self.held.take() {
            Some(mut held) => {
                held.message.push_str(&parsed.message);
                if parsed.partial && held.message.len() < self.config.max_log_size.0 as usize {
                    self.held = Some(held);
                } else {
                    out.push(finish(held.record, held.message));
                }
            }
            None => {
                record.time_unix_nano = parsed.time_unix_nano;
                record.attributes.push(string_kv("log.iostream", &parsed.stream));
                if let Some(tag) = &parsed.logtag {
                    record.attributes.push(string_kv("logtag", tag));
                }
                record.attributes.extend(parsed.extra);
                if parsed.partial && parsed.message.len() < self.config.max_log_size.0 as usize {
                    self.held = Some(Held { record, message: parsed.message, since: Instant::now(), line_start });
                } else {
                    out.push(finish(record, parsed.message));
                }
            }
        }
        Parsed::Ok
    }

    /// Sends fragments whose last part has not come within the flush period (or all,
    /// with `force`).
    pub fn flush(&mut self, force: bool, out: &mut Vec<LogRecord>) {
        if self.held.as_ref().is_some_and(|h| force || h.since.elapsed() >= PARTIAL_FLUSH)
            && let Some(held) = self.held.take()
        {
            out.push(finish(held.record, held.message));
        }
    }
}

fn finish(mut record: LogRecord, message: String) -> LogRecord {
    record.body = Some(AnyValue { value: Some(any_value::Value::StringValue(message)) });
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(format: Format) -> ContainerConfig {
        ContainerConfig {
            id: None,
            format,
            add_metadata_from_filepath: true,
            max_log_size: ByteSize(1 << 20),
            on_error: OnError::Send,
        }
    }

    fn raw(line: &str) -> LogRecord {
        LogRecord {
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(line.into())) }),
            ..Default::default()
        }
    }

    fn body(record: &LogRecord) -> &str {
        match record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s,
            _ => "",
        }
    }

    fn attr<'a>(record: &'a LogRecord, key: &str) -> Option<&'a str> {
        record.attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-30T08:31:20.545192187Z"), Some(1_711_787_480_545_192_187));
        assert_eq!(parse_rfc3339("2024-03-30T10:31:20.5+02:00"), Some(1_711_787_480_500_000_000));
        assert_eq!(parse_rfc3339("2024-03-30T08:31:20.123456789123Z"), Some(1_711_787_480_123_456_789));
        assert_eq!(parse_rfc3339("2024-13-30T08:31:20Z"), None);
        assert_eq!(parse_rfc3339("not a time at all!!!"), None);
    }

    #[test]
    fn docker_lines_and_docker_partials() {
        let mut parser = ContainerParser::new(config(Format::Auto));
        let mut out = Vec::new();
        parser.process(
            raw(r#"{"log":"part one ","stream":"stderr","time":"2024-03-30T08:31:20.545192187Z"}"#),
            0,
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(parser.open_since(), Some(0));
        parser.process(raw(r#"{"log":"and two\n","stream":"stderr","time":"2024-03-30T08:31:20.6Z"}"#), 90, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(body(&out[0]), "part one and two");
        assert_eq!(attr(&out[0], "log.iostream"), Some("stderr"));
        assert_eq!(out[0].time_unix_nano, 1_711_787_480_545_192_187);
        assert_eq!(parser.open_since(), None);
    }

    #[test]
    fn cri_partials_join_until_f() {
        let mut parser = ContainerParser::new(config(Format::Auto));
        let mut out = Vec::new();
        parser.process(raw("2024-03-30T08:31:20.545192187Z stdout P first "), 0, &mut out);
        parser.process(raw("2024-03-30T08:31:20.545192188Z stdout P second "), 50, &mut out);
        assert!(out.is_empty());
        parser.process(raw("2024-03-30T08:31:20.545192189Z stdout F third"), 100, &mut out);
        parser.process(raw("2024-03-30T08:31:21+00:00 stderr F whole line"), 150, &mut out);
        assert_eq!(out.iter().map(body).collect::<Vec<_>>(), vec!["first second third", "whole line"]);
        assert_eq!(attr(&out[0], "logtag"), Some("P"));
        assert_eq!(attr(&out[1], "log.iostream"), Some("stderr"));
    }

    #[test]
    fn unparsable_lines_follow_on_error() {
        let mut parser = ContainerParser::new(config(Format::Auto));
        let mut out = Vec::new();
        assert!(matches!(
            parser.process(raw("plain text"), 0, &mut out),
            Parsed::Failed(ContainerError::UnknownFormat)
        ));
        assert_eq!(body(&out[0]), "plain text");
        let mut dropping = ContainerParser::new(ContainerConfig { on_error: OnError::Drop, ..config(Format::Auto) });
        let mut out = Vec::new();
        assert!(matches!(dropping.process(raw("{broken"), 0, &mut out), Parsed::Failed(ContainerError::Json(_))));
        assert!(out.is_empty());
    }

    #[test]
    fn kubernetes_metadata_from_the_pod_log_path() {
        let attrs = kubernetes_metadata("/var/log/pods/payments_api-7d9f_0f1e2d3c-aaaa-bbbb/server/3.log").unwrap();
        let map: Vec<(&str, &str)> = attrs
            .iter()
            .map(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => (kv.key.as_str(), s.as_str()),
                _ => (kv.key.as_str(), ""),
            })
            .collect();
        assert_eq!(
            map,
            vec![
                ("k8s.namespace.name", "payments"),
                ("k8s.pod.name", "api-7d9f"),
                ("k8s.pod.uid", "0f1e2d3c-aaaa-bbbb"),
                ("k8s.container.name", "server"),
                ("k8s.container.restart_count", "3"),
            ]
        );
        assert!(kubernetes_metadata("/var/log/syslog").is_none());
        assert!(kubernetes_metadata("/var/log/containers/api_payments_server-abc.log").is_none());
    }
}
