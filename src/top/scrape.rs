//! Reading an agent's self-metrics: one HTTP/1.0 GET of the Prometheus text format
//! (a close-delimited body, so no chunked decoding), parsed into samples.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest body read: the self-metrics of a big config are some hundred KiB.
const MAX_BODY: u64 = 16 << 20;

/// Where the self-metrics are: `host:port` and a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub authority: String,
    pub path: String,
}

impl Target {
    /// `127.0.0.1:8888`, `http://host:8888` or `http://host:8888/metrics`; the path is
    /// `/metrics` unless one is given.
    pub fn parse(url: &str) -> Result<Target, String> {
        if url.starts_with("https://") {
            return Err(format!("{url}: only http:// is read (the self-metrics endpoint serves plain HTTP)"));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!("{url}: expected host:port, e.g. 127.0.0.1:8888"));
        }
        let path = if path == "/" { "/metrics" } else { path };
        Ok(Target { authority: authority.to_string(), path: path.to_string() })
    }

    /// The body of one GET, within `timeout` for each of connecting, writing and reading.
    pub fn fetch(&self, timeout: Duration) -> Result<String, String> {
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.authority))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.authority))?;
        let mut stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let request = format!("GET {} HTTP/1.0\r\nHost: {}\r\nAccept: text/plain\r\n\r\n", self.path, self.authority);
        stream.write_all(request.as_bytes()).map_err(|e| format!("{addr}: {e}"))?;
        let mut response = Vec::new();
        stream.take(MAX_BODY).read_to_end(&mut response).map_err(|e| format!("{addr}: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return Err(format!("{addr}: not an HTTP response"));
        };
        let status = head.split_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            let line = head.lines().next().unwrap_or_default();
            return Err(format!("http://{}{}: {line}", self.authority, self.path));
        }
        Ok(body.to_string())
    }
}

/// One sample: a metric name, its labels (sorted) and a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a text exposition, and how many lines were not samples it could read.
pub fn parse(text: &str) -> (Vec<Sample>, usize) {
    let mut samples = Vec::new();
    let mut unreadable = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(sample) => samples.push(sample),
            None => unreadable += 1,
        }
    }
    (samples, unreadable)
}

/// `name{a="x",b="y"} value [timestamp]`, or `name value`.
fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim();
            rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
            let (value, after) = quoted(rest)?;
            labels.insert(key.to_string(), value);
            rest = after;
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => value.parse().ok()?,
    };
    Some(Sample { name: name.to_string(), labels, value })
}

/// A label value up to its closing quote, unescaped; and what follows the quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            _ => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels() {
        let text = "# HELP x y\n# TYPE a counter\na_total{receiver=\"otlp\",transport=\"http\"} 20\nb 1.5e3 1700000000\nc{q=\"a\\\"b\\\\c\\nd\"} +Inf\n# EOF\n";
        let (samples, unreadable) = parse(text);
        assert_eq!(unreadable, 0);
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "a_total");
        assert_eq!(samples[0].labels["receiver"], "otlp");
        assert_eq!(samples[0].labels["transport"], "http");
        assert_eq!(samples[0].value, 20.0);
        assert_eq!(samples[1].value, 1500.0);
        assert_eq!(samples[2].labels["q"], "a\"b\\c\nd");
        assert!(samples[2].value.is_infinite());
    }

    #[test]
    fn broken_lines_are_counted_not_fatal() {
        let (samples, unreadable) = parse("a{x=\"unclosed} 1\nb{x=1} 2\nc nope\n{x=\"y\"} 3\nd 4\n");
        assert_eq!(unreadable, 4);
        assert_eq!(samples, vec![Sample { name: "d".into(), labels: BTreeMap::new(), value: 4.0 }]);
    }

    #[test]
    fn targets() {
        let t = Target::parse("127.0.0.1:8888").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("127.0.0.1:8888", "/metrics"));
        let t = Target::parse("http://agent:9000/custom").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("agent:9000", "/custom"));
        assert!(Target::parse("https://agent:8888").unwrap_err().contains("only http://"));
        assert!(Target::parse("agent").unwrap_err().contains("host:port"));
    }
}
