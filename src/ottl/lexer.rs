//! OTTL tokens, each with the byte range it covers in the statement, so every error
//! can point at its place inside the YAML string.

use super::{OttlError, Span};

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier; whether it starts upper- or lowercase decides what it can be.
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    /// `0x…`: a byte slice.
    Bytes(Vec<u8>),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    Colon,
    Assign,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) | Tok::Float(_) => "a number".into(),
            Tok::Bytes(_) => "a byte literal".into(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Colon => ":",
            Tok::Assign => "=",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Ident(_) | Tok::Str(_) | Tok::Int(_) | Tok::Float(_) | Tok::Bytes(_) => "",
        }
    }
}

/// Statements longer than this are refused: no real one comes near it, and it bounds
/// the parser's work on hostile input.
pub const MAX_STATEMENT_BYTES: usize = 64 << 10;

pub fn tokenize(text: &str) -> Result<Vec<(Tok, Span)>, OttlError> {
    if text.len() > MAX_STATEMENT_BYTES {
        return Err(OttlError::new(
            format!("the statement is {} bytes long; at most {MAX_STATEMENT_BYTES} are allowed", text.len()),
            Span::new(0, 0),
        ));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = bytes.get(i + 1).copied();
        let single = match c {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            b'+' => Some(Tok::Plus),
            b'-' => Some(Tok::Minus),
            b'*' => Some(Tok::Star),
            b'/' => Some(Tok::Slash),
            b'.' if !two.is_some_and(|d| d.is_ascii_digit()) => Some(Tok::Dot),
            _ => None,
        };
        if let Some(tok) = single {
            out.push((tok, Span::new(start, start + 1)));
            i += 1;
            continue;
        }
        let pair = match (c, two) {
            (b'=', Some(b'=')) => Some(Tok::Eq),
            (b'!', Some(b'=')) => Some(Tok::Ne),
            (b'<', Some(b'=')) => Some(Tok::Le),
            (b'>', Some(b'=')) => Some(Tok::Ge),
            _ => None,
        };
        if let Some(tok) = pair {
            out.push((tok, Span::new(start, start + 2)));
            i += 2;
            continue;
        }
        match c {
            b'=' => {
                out.push((Tok::Assign, Span::new(start, start + 1)));
                i += 1;
            }
            b'<' => {
                out.push((Tok::Lt, Span::new(start, start + 1)));
                i += 1;
            }
            b'>' => {
                out.push((Tok::Gt, Span::new(start, start + 1)));
                i += 1;
            }
            b'"' => {
                let (value, end) = string(text, start)?;
                out.push((Tok::Str(value), Span::new(start, end)));
                i = end;
            }
            b'0' if matches!(two, Some(b'x' | b'X')) => {
                let mut end = start + 2;
                while end < bytes.len() && bytes[end].is_ascii_hexdigit() {
                    end += 1;
                }
                let digits = &text[start + 2..end];
                if digits.is_empty() || !digits.len().is_multiple_of(2) {
                    return Err(OttlError::new(
                        "a byte literal is 0x and an even number of hex digits",
                        Span::new(start, end),
                    ));
                }
                let value = (0..digits.len())
                    .step_by(2)
                    .map(|k| u8::from_str_radix(&digits[k..k + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| OttlError::new("invalid hex digits", Span::new(start, end)))?;
                out.push((Tok::Bytes(value), Span::new(start, end)));
                i = end;
            }
            b'0'..=b'9' | b'.' => {
                let mut end = start;
                let mut float = false;
                while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
                    float |= bytes[end] == b'.';
                    end += 1;
                }
                // An exponent, as Go's ParseFloat takes it.
                if end < bytes.len() && matches!(bytes[end], b'e' | b'E') {
                    let mut k = end + 1;
                    if k < bytes.len() && matches!(bytes[k], b'+' | b'-') {
                        k += 1;
                    }
                    if k < bytes.len() && bytes[k].is_ascii_digit() {
                        while k < bytes.len() && bytes[k].is_ascii_digit() {
                            k += 1;
                        }
                        float = true;
                        end = k;
                    }
                }
                let literal = &text[start..end];
                let span = Span::new(start, end);
                let tok =
                    if float {
                        Tok::Float(
                            literal.parse().map_err(|_| OttlError::new(format!("invalid number `{literal}`"), span))?,
                        )
                    } else {
                        Tok::Int(literal.parse().map_err(|_| {
                            OttlError::new(format!("`{literal}` does not fit in a 64-bit integer"), span)
                        })?)
                    };
                out.push((tok, span));
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut end = start;
                while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                    end += 1;
                }
                out.push((Tok::Ident(text[start..end].to_string()), Span::new(start, end)));
                i = end;
            }
            _ => {
                let ch = text[start..].chars().next().unwrap_or('?');
                return Err(OttlError::new(
                    format!("unexpected character `{ch}`"),
                    Span::new(start, start + ch.len_utf8()),
                ));
            }
        }
    }
    Ok(out)
}

/// A double-quoted string starting at `start`, with Go's escapes; returns its value
/// and the offset just past the closing quote.
fn string(text: &str, start: usize) -> Result<(String, usize), OttlError> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        let at = start + 1 + offset;
        match c {
            '"' => return Ok((value, at + 1)),
            '\\' => {
                let Some((_, escaped)) = chars.next() else { break };
                match escaped {
                    '"' => value.push('"'),
                    '\\' => value.push('\\'),
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    '/' => value.push('/'),
                    // Regular expressions keep their escapes: `"\\d+"` and `"\d+"` both mean \d+.
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                }
            }
            c => value.push(c),
        }
    }
    Err(OttlError::new("a string is not closed (missing `\"`)", Span::new(start, text.len())))
}
