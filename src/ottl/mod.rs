//! OTTL, the OpenTelemetry Transformation Language: one engine for `transform`,
//! `filter`, the `routing` connector and the `ottl_condition` sampling policy.
//!
//! Statements are parsed once, at config load, into [`ast`] with the byte span of every
//! part, so an error points at its line and column inside the YAML string; the
//! compiler (to a closure tree over ocelot's batches) resolves paths, enums and
//! functions against a context and refuses what it does not know before anything runs.
//! Nothing here may re-parse per record.

pub mod ast;
pub mod compile;
mod editors;
pub mod functions;
pub mod lexer;
pub mod parser;
pub mod paths;
pub mod record;
pub mod statement;
pub mod value;
pub mod walk;
pub mod write;

pub use compile::Condition;
pub use parser::{parse_condition, parse_statement};
pub use record::{Kind, Record, RecordMut};
pub use statement::Statement;

/// A byte range of the statement text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// From the start of `self` to the end of `other`.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start, end: other.end.max(self.start) }
    }

    pub fn to_end(self, end: usize) -> Span {
        Span { start: self.start, end: end.max(self.start) }
    }
}

/// What is wrong with a statement, and where in its text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OttlError {
    pub message: String,
    pub span: Span,
}

impl OttlError {
    pub fn new(message: impl Into<String>, span: Span) -> OttlError {
        OttlError { message: message.into(), span }
    }

    /// The 1-based line and column (in characters) of the error within `text`.
    pub fn line_column(&self, text: &str) -> (usize, usize) {
        let at = self.span.start.min(text.len());
        let before = text.get(..at).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests;
