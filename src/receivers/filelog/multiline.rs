//! `multiline`: joining lines into one record, by the line that starts an entry
//! (`line_start_pattern`, such as a timestamp) or the line that ends one
//! (`line_end_pattern`). Lines keep their `\n` inside the record.
//!
//! Upstream matches the pattern anywhere in the buffer; here it is matched per line,
//! which is the same for the anchored patterns (`^…`) that multiline configs use, and
//! makes a match in the middle of a line start (or end) the entry at that line.

use regex::bytes::Regex;
use serde::Deserialize;

/// `multiline:` under the receiver.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this starts a new record; the record before it ends.
    #[serde(default)]
    pub line_start_pattern: Option<String>,
    /// A line matching this ends the record it is in.
    #[serde(default)]
    pub line_end_pattern: Option<String>,
}

impl MultilineConfig {
    pub fn validate(&self) -> Result<(), String> {
        match (&self.line_start_pattern, &self.line_end_pattern) {
            (Some(_), Some(_)) => {
                Err("multiline: only one of line_start_pattern and line_end_pattern may be set".into())
            }
            (None, None) => Err("multiline: one of line_start_pattern and line_end_pattern must be set".into()),
            (Some(p), None) | (None, Some(p)) => {
                Regex::new(p).map(|_| ()).map_err(|e| format!("multiline: invalid pattern `{p}`: {e}"))
            }
        }
    }

    pub fn mode(&self) -> Option<Mode> {
        match (&self.line_start_pattern, &self.line_end_pattern) {
            (Some(p), _) => Regex::new(p).ok().map(Mode::Start),
            (None, Some(p)) => Regex::new(p).ok().map(Mode::End),
            (None, None) => None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Mode {
    Start(Regex),
    End(Regex),
}

/// Joins lines into records. Offsets: a record's `end` is the end of its last line;
/// while a record is open, the checkpoint may go no further than its first line.
pub struct Aggregator {
    mode: Mode,
    max_log_size: usize,
    entry: Vec<u8>,
    /// Stream offset of the open record's first line.
    entry_start: Option<u64>,
    entry_end: u64,
}

impl Aggregator {
    pub fn new(mode: Mode, max_log_size: usize) -> Aggregator {
        Aggregator { mode, max_log_size: max_log_size.max(1), entry: Vec::new(), entry_start: None, entry_end: 0 }
    }

    /// Where an open record begins, if one is open.
    pub fn open_since(&self) -> Option<u64> {
        self.entry_start
    }

    /// One whole line, spanning `[start, end)` in the stream (newline included).
    pub fn line(&mut self, line: &[u8], start: u64, end: u64, emit: &mut impl FnMut(&[u8], u64)) {
        match &self.mode {
            Mode::Start(pattern) => {
                if pattern.is_match(line) {
                    self.flush(emit);
                }
                self.append(line, start, end, emit);
            }
            Mode::End(pattern) => {
                let ends = pattern.is_match(line);
                self.append(line, start, end, emit);
                if ends {
                    self.flush(emit);
                }
            }
        }
    }

    fn append(&mut self, line: &[u8], start: u64, end: u64, emit: &mut impl FnMut(&[u8], u64)) {
        if self.entry_start.is_none() {
            self.entry_start = Some(start);
        } else {
            self.entry.push(b'\n');
        }
        self.entry.extend_from_slice(line);
        self.entry_end = end;
        // A record longer than max_log_size goes out in pieces, never held whole.
        if self.entry.len() > self.max_log_size {
            let max = self.max_log_size;
            let mut pieces = self.entry.chunks(max).peekable();
            while let Some(piece) = pieces.next() {
                if pieces.peek().is_some() {
                    emit(piece, start);
                } else {
                    emit(piece, end);
                }
            }
            self.entry.clear();
            self.entry_start = None;
        }
    }

    /// Hands out the open record (the next record started, or the flush period passed).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8], u64)) {
        if self.entry_start.take().is_some() {
            emit(&self.entry, self.entry_end);
            self.entry.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: Mode, max: usize, lines: &[&str], flush: bool) -> Vec<(String, u64)> {
        let mut aggregator = Aggregator::new(mode, max);
        let mut out = Vec::new();
        let mut offset = 0u64;
        let mut emit = |bytes: &[u8], end: u64| out.push((String::from_utf8_lossy(bytes).into_owned(), end));
        for line in lines {
            let end = offset + line.len() as u64 + 1;
            aggregator.line(line.as_bytes(), offset, end, &mut emit);
            offset = end;
        }
        if flush {
            aggregator.flush(&mut emit);
        }
        out
    }

    #[test]
    fn start_pattern_joins_a_stack_trace() {
        let mode = Mode::Start(Regex::new(r"^\d{4}-\d{2}-\d{2}").unwrap());
        let lines = [
            "2026-11-22 ERROR boom",
            "java.lang.IllegalStateException: x",
            "\tat a.b(C.java:1)",
            "2026-11-22 INFO fine",
        ];
        let out = run(mode.clone(), 1 << 20, &lines, false);
        assert_eq!(
            out,
            vec![("2026-11-22 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.b(C.java:1)".into(), 75)]
        );
        let out = run(mode, 1 << 20, &lines, true);
        assert_eq!(out[1], ("2026-11-22 INFO fine".into(), 96));
    }

    #[test]
    fn text_before_the_first_start_is_its_own_record() {
        let mode = Mode::Start(Regex::new(r"^START").unwrap());
        let out = run(mode, 100, &["junk", "more junk", "START a", "b"], true);
        assert_eq!(out, vec![("junk\nmore junk".into(), 15), ("START a\nb".into(), 25)]);
    }

    #[test]
    fn end_pattern_closes_the_record() {
        let mode = Mode::End(Regex::new(r";$").unwrap());
        let out = run(mode, 100, &["SELECT *", "FROM t;", "SELECT 1;"], false);
        assert_eq!(out, vec![("SELECT *\nFROM t;".into(), 17), ("SELECT 1;".into(), 27)]);
    }

    #[test]
    fn open_record_holds_the_checkpoint_back() {
        let mut aggregator = Aggregator::new(Mode::Start(Regex::new("^S").unwrap()), 100);
        let mut emit = |_: &[u8], _: u64| {};
        aggregator.line(b"S one", 10, 16, &mut emit);
        aggregator.line(b"cont", 16, 21, &mut emit);
        assert_eq!(aggregator.open_since(), Some(10));
    }

    #[test]
    fn oversize_records_go_out_in_pieces() {
        let mode = Mode::Start(Regex::new("^S").unwrap());
        let out = run(mode, 8, &["S 123", "456789"], false);
        assert_eq!(out.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), vec!["S 123\n45", "6789"]);
    }

    #[test]
    fn config_needs_exactly_one_valid_pattern() {
        assert!(MultilineConfig::default().validate().is_err());
        let both = MultilineConfig { line_start_pattern: Some("a".into()), line_end_pattern: Some("b".into()) };
        assert!(both.validate().unwrap_err().contains("only one"));
        let bad = MultilineConfig { line_start_pattern: Some("(".into()), line_end_pattern: None };
        assert!(bad.validate().unwrap_err().contains("invalid pattern"));
    }
}
