//! A recursive-descent parser for OTTL statements (`editor(...) where ...`) and bare
//! conditions (the `filter` processor's, routing's), after upstream's grammar.
//! Nesting is bounded, so hostile input cannot overflow the stack.

use super::ast::{Arg, BoolExpr, Call, CompareOp, Field, Key, MathOp, Path, Statement, Value};
use super::lexer::{Tok, tokenize};
use super::{OttlError, Span};

/// Parentheses, lists, maps and calls nested deeper than this are refused.
const MAX_NESTING: usize = 64;

pub fn parse_statement(text: &str) -> Result<Statement, OttlError> {
    let mut p = Parser::new(text)?;
    let editor = p.editor()?;
    let condition = if p.eat_keyword("where") { Some(p.bool_expr()?) } else { None };
    p.end()?;
    Ok(Statement { editor, condition })
}

pub fn parse_condition(text: &str) -> Result<BoolExpr, OttlError> {
    let mut p = Parser::new(text)?;
    if p.tokens.is_empty() {
        return Err(OttlError::new("the condition is empty", Span::new(0, 0)));
    }
    let condition = p.bool_expr()?;
    p.end()?;
    Ok(condition)
}

struct Parser {
    tokens: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
    len: usize,
}

fn is_upper(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
}

const KEYWORDS: [&str; 7] = ["where", "and", "or", "not", "nil", "true", "false"];

impl Parser {
    fn new(text: &str) -> Result<Parser, OttlError> {
        Ok(Parser { tokens: tokenize(text)?, pos: 0, depth: 0, len: text.len() })
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + ahead).map(|(t, _)| t)
    }

    /// The span of the next token, or the end of the text.
    fn here(&self) -> Span {
        self.tokens.get(self.pos).map_or(Span::new(self.len, self.len), |(_, s)| *s)
    }

    fn last_end(&self) -> usize {
        self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)).map_or(0, |(_, s)| s.end)
    }

    fn next(&mut self) -> Option<(Tok, Span)> {
        let token = self.tokens.get(self.pos).cloned();
        if token.is_some() {
            self.pos += 1;
        }
        token
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(name)) if name == word) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn unexpected(&self, wanted: &str) -> OttlError {
        match self.peek() {
            Some(tok) => OttlError::new(format!("expected {wanted}, found {}", tok.describe()), self.here()),
            None => OttlError::new(format!("expected {wanted}, found the end of the statement"), self.here()),
        }
    }

    fn expect(&mut self, tok: &Tok, wanted: &str) -> Result<Span, OttlError> {
        if self.peek() == Some(tok) {
            let span = self.here();
            self.pos += 1;
            return Ok(span);
        }
        Err(self.unexpected(wanted))
    }

    fn end(&self) -> Result<(), OttlError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("the end of the statement (or `where`, `and`, `or`)")),
        }
    }

    fn nest(&mut self) -> Result<(), OttlError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(OttlError::new(format!("nested more than {MAX_NESTING} deep"), self.here()));
        }
        Ok(())
    }

    fn editor(&mut self) -> Result<Call, OttlError> {
        let span = self.here();
        match self.next() {
            Some((Tok::Ident(name), name_span)) if !is_upper(&name) && !KEYWORDS.contains(&name.as_str()) => {
                if self.peek() != Some(&Tok::LParen) {
                    return Err(self.unexpected(&format!("`(` after the editor `{name}`")));
                }
                let call = self.call(name, name_span)?;
                if !call.keys.is_empty() {
                    return Err(OttlError::new("an editor's result cannot be indexed", call.span));
                }
                Ok(call)
            }
            Some((Tok::Ident(name), name_span)) if is_upper(&name) => Err(OttlError::new(
                format!(
                    "a statement starts with an editor (lowercase, such as `set`); `{name}` is a converter, which only gives values"
                ),
                name_span,
            )),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(OttlError::new(self.unexpected("an editor such as `set(...)`").message, span))
            }
        }
    }

    /// `name(args)[keys]`, the name already read.
    fn call(&mut self, name: String, name_span: Span) -> Result<Call, OttlError> {
        self.nest()?;
        self.expect(&Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        if !self.eat(&Tok::RParen) {
            loop {
                let named = match (self.peek(), self.peek_at(1)) {
                    (Some(Tok::Ident(arg)), Some(Tok::Assign)) if !is_upper(arg) => {
                        let arg = arg.clone();
                        let span = self.here();
                        self.pos += 2;
                        Some((arg, span))
                    }
                    _ => None,
                };
                if named.is_none() && args.iter().any(|a: &Arg| a.name.is_some()) {
                    return Err(OttlError::new("arguments by position must come before named ones", self.here()));
                }
                let value = self.value()?;
                args.push(Arg { name: named, value });
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(&Tok::Comma, "`,` or `)`")?;
            }
        }
        let keys = self.keys()?;
        self.depth -= 1;
        Ok(Call { name, name_span, args, keys, span: name_span.to_end(self.last_end()) })
    }

    fn keys(&mut self) -> Result<Vec<Key>, OttlError> {
        let mut keys = Vec::new();
        while self.peek() == Some(&Tok::LBracket) {
            self.pos += 1;
            self.nest()?;
            let key = match (self.peek().cloned(), self.peek_at(1)) {
                (Some(Tok::Str(s)), Some(Tok::RBracket)) => {
                    let span = self.here();
                    self.pos += 1;
                    Key::String(s, span)
                }
                (Some(Tok::Int(i)), Some(Tok::RBracket)) => {
                    let span = self.here();
                    self.pos += 1;
                    Key::Int(i, span)
                }
                _ => Key::Expr(Box::new(self.value()?)),
            };
            self.expect(&Tok::RBracket, "`]`")?;
            self.depth -= 1;
            keys.push(key);
        }
        Ok(keys)
    }

    /// A value: a math expression of terms, `*` and `/` before `+` and `-`.
    fn value(&mut self) -> Result<Value, OttlError> {
        let mut lhs = self.term()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => MathOp::Add,
                Some(Tok::Minus) => MathOp::Sub,
                _ => return Ok(lhs),
            };
            self.pos += 1;
            let rhs = self.term()?;
            let span = lhs.span().to(rhs.span());
            lhs = Value::Math { op, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        }
    }

    fn term(&mut self) -> Result<Value, OttlError> {
        let mut lhs = self.factor()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Star) => MathOp::Mul,
                Some(Tok::Slash) => MathOp::Div,
                _ => return Ok(lhs),
            };
            self.pos += 1;
            let rhs = self.factor()?;
            let span = lhs.span().to(rhs.span());
            lhs = Value::Math { op, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        }
    }

    fn factor(&mut self) -> Result<Value, OttlError> {
        let span = self.here();
        let Some((tok, _)) = self.next() else {
            return Err(self.unexpected("a value"));
        };
        Ok(match tok {
            Tok::Str(s) => Value::String(s, span),
            Tok::Int(i) => Value::Int(i, span),
            Tok::Float(f) => Value::Float(f, span),
            Tok::Bytes(b) => Value::Bytes(b, span),
            // A signed literal: `-1`, `+2.5`.
            Tok::Minus | Tok::Plus => {
                let negative = tok == Tok::Minus;
                let number = self.here();
                match self.next() {
                    Some((Tok::Int(i), _)) => Value::Int(if negative { -i } else { i }, span.to(number)),
                    Some((Tok::Float(f), _)) => Value::Float(if negative { -f } else { f }, span.to(number)),
                    _ => return Err(OttlError::new("a sign must be followed by a number", span)),
                }
            }
            Tok::LParen => {
                self.nest()?;
                let inner = self.value()?;
                self.expect(&Tok::RParen, "`)`")?;
                self.depth -= 1;
                inner
            }
            Tok::LBracket => {
                self.nest()?;
                let mut items = Vec::new();
                if !self.eat(&Tok::RBracket) {
                    loop {
                        items.push(self.value()?);
                        if self.eat(&Tok::RBracket) {
                            break;
                        }
                        self.expect(&Tok::Comma, "`,` or `]`")?;
                    }
                }
                self.depth -= 1;
                Value::List(items, span.to_end(self.last_end()))
            }
            Tok::LBrace => {
                self.nest()?;
                let mut entries = Vec::new();
                if !self.eat(&Tok::RBrace) {
                    loop {
                        let key = match self.next() {
                            Some((Tok::Str(key), _)) => key,
                            _ => {
                                self.pos -= 1;
                                return Err(self.unexpected("a string key"));
                            }
                        };
                        self.expect(&Tok::Colon, "`:`")?;
                        entries.push((key, self.value()?));
                        if self.eat(&Tok::RBrace) {
                            break;
                        }
                        self.expect(&Tok::Comma, "`,` or `}`")?;
                    }
                }
                self.depth -= 1;
                Value::Map(entries, span.to_end(self.last_end()))
            }
            Tok::Ident(name) => match name.as_str() {
                "nil" => Value::Nil(span),
                "true" => Value::Bool(true, span),
                "false" => Value::Bool(false, span),
                "where" | "and" | "or" | "not" => {
                    self.pos -= 1;
                    return Err(self.unexpected("a value"));
                }
                _ if is_upper(&name) && self.peek() == Some(&Tok::LParen) => Value::Converter(self.call(name, span)?),
                _ if is_upper(&name) => Value::Enum(name, span),
                _ if self.peek() == Some(&Tok::LParen) => {
                    return Err(OttlError::new(
                        format!("`{name}` is an editor; a value needs a converter (uppercase, such as `Concat`)"),
                        span,
                    ));
                }
                _ => Value::Path(self.path(name, span)?),
            },
            other => {
                self.pos -= 1;
                return Err(OttlError::new(format!("expected a value, found {}", other.describe()), span));
            }
        })
    }

    /// `a.b["k"].c[0]`, the first name already read.
    fn path(&mut self, first: String, span: Span) -> Result<Path, OttlError> {
        let mut fields = vec![Field { keys: self.keys()?, name: first, span }];
        while self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let field_span = self.here();
            match self.next() {
                Some((Tok::Ident(name), _)) if !is_upper(&name) => {
                    let keys = self.keys()?;
                    fields.push(Field { name, span: field_span, keys });
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("a field name after `.`"));
                }
            }
        }
        Ok(Path { fields, span: span.to_end(self.last_end()) })
    }

    /// `or` of `and`s of factors.
    fn bool_expr(&mut self) -> Result<BoolExpr, OttlError> {
        let mut lhs = self.bool_term()?;
        while self.eat_keyword("or") {
            let rhs = self.bool_term()?;
            lhs = BoolExpr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn bool_term(&mut self) -> Result<BoolExpr, OttlError> {
        let mut lhs = self.bool_factor()?;
        while self.eat_keyword("and") {
            let rhs = self.bool_factor()?;
            lhs = BoolExpr::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn bool_factor(&mut self) -> Result<BoolExpr, OttlError> {
        let span = self.here();
        if self.eat_keyword("not") {
            self.nest()?;
            let inner = self.bool_factor()?;
            self.depth -= 1;
            let whole = span.to(inner.span());
            return Ok(BoolExpr::Not(Box::new(inner), whole));
        }
        // `(` opens either a grouped condition or a grouped value compared after it:
        // try the comparison first, as upstream's grammar does.
        let start = self.pos;
        let depth = self.depth;
        if self.peek() == Some(&Tok::LParen) {
            match self.comparison() {
                Ok(Some(compare)) => return Ok(compare),
                Ok(None) | Err(_) => {
                    self.pos = start;
                    self.depth = depth;
                }
            }
            self.pos += 1;
            self.nest()?;
            let inner = self.bool_expr()?;
            self.expect(&Tok::RParen, "`)`")?;
            self.depth -= 1;
            return Ok(inner);
        }
        match self.comparison()? {
            Some(compare) => Ok(compare),
            None => {
                self.pos = start;
                let value = self.value()?;
                match value {
                    Value::Bool(..) | Value::Converter(_) | Value::Path(_) => Ok(BoolExpr::Value(value)),
                    other => Err(OttlError::new(
                        "a condition is a comparison (such as `name == \"x\"`), `true`/`false`, or a converter that gives a boolean",
                        other.span(),
                    )),
                }
            }
        }
    }

    /// `value op value`, or `None` when no operator follows the first value.
    fn comparison(&mut self) -> Result<Option<BoolExpr>, OttlError> {
        let lhs = self.value()?;
        let op = match self.peek() {
            Some(Tok::Eq) => CompareOp::Eq,
            Some(Tok::Ne) => CompareOp::Ne,
            Some(Tok::Lt) => CompareOp::Lt,
            Some(Tok::Le) => CompareOp::Le,
            Some(Tok::Gt) => CompareOp::Gt,
            Some(Tok::Ge) => CompareOp::Ge,
            _ => return Ok(None),
        };
        self.pos += 1;
        let rhs = self.value()?;
        let span = lhs.span().to(rhs.span());
        Ok(Some(BoolExpr::Compare { op, lhs, rhs, span }))
    }
}
