//! `${env:VAR}`, `${VAR}` and `${env:VAR:-default}` in scalar values, as the collector's
//! confmap expands them. `$$` is a literal `$`. An unset variable with no default
//! becomes the empty string and a warning, as upstream.

use super::node::{Location, Node, NodeKind};

/// A problem found while expanding: an error stops the config, a warning does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    pub location: Location,
    pub message: String,
}

/// Expands every scalar value (not keys) in place.
pub fn expand(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<Expansion>,
    warnings: &mut Vec<Expansion>,
) {
    match &mut node.kind {
        NodeKind::Scalar { text, .. } => {
            if text.contains('$') {
                match expand_str(text, lookup) {
                    Ok((expanded, unset)) => {
                        for name in unset {
                            warnings.push(Expansion {
                                location: node.location.clone(),
                                message: format!("environment variable `{name}` is not set; using an empty value"),
                            });
                        }
                        *text = expanded;
                    }
                    Err(message) => errors.push(Expansion { location: node.location.clone(), message }),
                }
            }
        }
        NodeKind::Seq(items) => {
            for item in items {
                expand(item, lookup, errors, warnings);
            }
        }
        NodeKind::Map(entries) => {
            for (_, value) in entries {
                expand(value, lookup, errors, warnings);
            }
        }
        NodeKind::Null => {}
    }
}

/// Returns the expanded text and the names of unset variables without a default.
pub fn expand_str(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let Some(end) = body_start.find('}') else {
                return Err(format!("unterminated `${{` in `{text}`"));
            };
            let body = &body_start[..end];
            let (scheme, reference) = match body.split_once(':') {
                Some((scheme, reference)) if is_name(scheme) => (scheme, reference),
                _ => ("env", body),
            };
            if scheme != "env" {
                return Err(format!("unsupported config provider `{scheme}` in `${{{body}}}`; supported: env"));
            }
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if !is_name(name) {
                return Err(format!("`{name}` is not a valid environment variable name in `${{{body}}}`"));
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => unset.push(name.to_string()),
            }
            rest = &body_start[end + 1..];
        } else {
            // A bare `$NAME` is left as written, as the collector does since v0.104.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, unset))
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example".into()),
            "PORT" => Some("4317".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_all_forms() {
        assert_eq!(expand_str("${env:HOST}:${PORT}", &env).unwrap().0, "example:4317");
        assert_eq!(expand_str("${env:MISSING:-fallback}", &env).unwrap().0, "fallback");
        assert_eq!(expand_str("${env:HOST:-fallback}", &env).unwrap().0, "example");
        assert_eq!(expand_str("cost $$5 and $HOST", &env).unwrap().0, "cost $5 and $HOST");
    }

    #[test]
    fn unset_without_default_is_empty_and_reported() {
        let (text, unset) = expand_str("a${env:NOPE}b", &env).unwrap();
        assert_eq!(text, "ab");
        assert_eq!(unset, vec!["NOPE"]);
    }

    #[test]
    fn errors_are_clear() {
        assert!(expand_str("${env:HOST", &env).unwrap_err().contains("unterminated"));
        assert!(expand_str("${file:/x}", &env).unwrap_err().contains("unsupported config provider `file`"));
        assert!(expand_str("${env:1BAD}", &env).unwrap_err().contains("not a valid"));
    }
}
