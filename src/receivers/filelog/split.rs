//! Splitting a byte stream into log lines, with `max_log_size`.
//!
//! Lines end at `\n` (the newline is not part of the line; a `\r` before it is, and is
//! the trimming step's business). A line longer than `max_log_size` is cut into pieces
//! of at most that size, each its own token, so one huge line never stalls a file or
//! grows memory. Complete lines inside a chunk are handed out without copying; only a
//! line that spans chunks is gathered in the splitter's buffer.
//!
//! Every token carries the stream offset just past it (past its newline, for a whole
//! line), which is what a checkpoint records once the token is delivered.

use memchr::memchr;

/// One piece of the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub bytes: &'a [u8],
    /// Stream offset just past this token and its newline.
    pub end: u64,
    /// How the token ended.
    pub kind: TokenKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Ended by `\n`.
    Line,
    /// Cut at `max_log_size`; the line goes on in the next token.
    Cut,
    /// What was left without a newline when the splitter was flushed (end of file
    /// after `force_flush_period`).
    Flushed,
}

pub struct LineSplitter {
    max_log_size: usize,
    /// The start of a line that spans chunks.
    partial: Vec<u8>,
    /// Stream offset of the first byte of `partial` (or of the next chunk when empty).
    offset: u64,
}

impl LineSplitter {
    /// `max_log_size` of 0 is read as 1: a token holds at least one byte.
    pub fn new(max_log_size: usize, start_offset: u64) -> LineSplitter {
        LineSplitter { max_log_size: max_log_size.max(1), partial: Vec::new(), offset: start_offset }
    }

    /// Bytes held for a line that has not ended yet.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Stream offset up to which every byte has been handed out in a token.
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// Feeds the next chunk of the stream; calls `emit` for every token it completes.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(Token<'_>)) {
        let mut start = 0;
        while start < chunk.len() {
            let room = self.max_log_size - self.partial.len();
            // One byte past the room, so a newline right at the limit still ends a whole line.
            let window_end = chunk.len().min(start + room + 1);
            match memchr(b'\n', &chunk[start..window_end]) {
                Some(i) => {
                    let taken = (i + 1) as u64;
                    self.emit_from(&chunk[start..start + i], taken, TokenKind::Line, &mut emit);
                    start += i + 1;
                }
                None if window_end - start > room => {
                    self.emit_from(&chunk[start..start + room], room as u64, TokenKind::Cut, &mut emit);
                    start += room;
                }
                None => {
                    self.partial.extend_from_slice(&chunk[start..]);
                    start = chunk.len();
                }
            }
        }
    }

    /// Hands out what is held without a newline (end of file, after the flush period).
    pub fn flush(&mut self, mut emit: impl FnMut(Token<'_>)) {
        if !self.partial.is_empty() {
            self.emit_from(&[], 0, TokenKind::Flushed, &mut emit);
        }
    }

    /// Emits `partial + tail`. `taken` is how many stream bytes of the chunk the token
    /// used (its tail plus the newline, if any).
    fn emit_from(&mut self, tail: &[u8], taken: u64, kind: TokenKind, emit: &mut impl FnMut(Token<'_>)) {
        let end = self.offset + self.partial.len() as u64 + taken;
        if self.partial.is_empty() {
            emit(Token { bytes: tail, end, kind });
        } else {
            self.partial.extend_from_slice(tail);
            emit(Token { bytes: &self.partial, end, kind });
            self.partial.clear();
        }
        self.offset = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]], flush: bool) -> Vec<(String, u64, TokenKind)> {
        let mut splitter = LineSplitter::new(max, 0);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |t| out.push((String::from_utf8_lossy(t.bytes).into_owned(), t.end, t.kind)));
        }
        if flush {
            splitter.flush(|t| out.push((String::from_utf8_lossy(t.bytes).into_owned(), t.end, t.kind)));
        }
        out
    }

    use TokenKind::*;

    #[test]
    fn lines_within_and_across_chunks() {
        let out = split(100, &[b"one\ntw", b"o\n\nthree\r\nfo", b"ur"], false);
        assert_eq!(
            out,
            vec![("one".into(), 4, Line), ("two".into(), 8, Line), ("".into(), 9, Line), ("three\r".into(), 16, Line)]
        );
        let out = split(100, &[b"one\ntw", b"o\n\nthree\r\nfo", b"ur"], true);
        assert_eq!(out.last().unwrap(), &("four".to_string(), 20, Flushed));
    }

    #[test]
    fn long_lines_are_cut_never_held() {
        let out = split(4, &[b"abcdefghij\nxy", b"z\n"], false);
        assert_eq!(
            out,
            vec![("abcd".into(), 4, Cut), ("efgh".into(), 8, Cut), ("ij".into(), 11, Line), ("xyz".into(), 15, Line)]
        );
    }

    #[test]
    fn a_line_of_exactly_max_is_whole() {
        assert_eq!(split(4, &[b"abcd\n"], false), vec![("abcd".into(), 5, Line)]);
        assert_eq!(split(4, &[b"ab", b"cd", b"\n"], false), vec![("abcd".into(), 5, Line)]);
        assert_eq!(split(4, &[b"ab", b"cde\n"], false), vec![("abcd".into(), 4, Cut), ("e".into(), 6, Line)]);
    }

    #[test]
    fn offsets_continue_from_the_start_offset() {
        let mut splitter = LineSplitter::new(10, 1000);
        let mut ends = Vec::new();
        splitter.push(b"a\nbb\nccc", |t| ends.push(t.end));
        assert_eq!(ends, vec![1002, 1005]);
        assert_eq!(splitter.consumed(), 1005);
        assert_eq!(splitter.pending(), 3);
    }
}
