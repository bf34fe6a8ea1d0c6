//! What the OTTL processors (`transform`, `filter`) share: upstream's `error_mode`,
//! the once-a-minute log of evaluation errors, the two styles of statement and
//! condition lists, and config errors placed inside the YAML string.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::warn;

use crate::config::ComponentId;
use crate::config::de::DeError;
use crate::config::node::{Location, Node, NodeKind};
use crate::ottl::OttlError;
use crate::ottl::compile::EvalError;
use crate::telemetry::ProcessorMetrics;

/// Upstream's `error_mode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ErrorMode {
    /// An evaluation error drops the whole batch, refused for good.
    Propagate,
    /// An evaluation error is logged (once a minute) and counted; processing goes on.
    #[default]
    Ignore,
    /// Like `ignore`, without the log line.
    Silent,
}

/// One entry of a `*_statements` or `*_conditions` list: a string (the basic style,
/// its context inferred) or a group (the advanced style).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Entry<G> {
    Text(String),
    Group(G),
}

/// A list must be all strings or all groups, as upstream requires.
pub fn one_style<G>(list: &[Entry<G>], name: &str) -> Result<(), String> {
    let texts = list.iter().filter(|e| matches!(e, Entry::Text(_))).count();
    if texts != 0 && texts != list.len() {
        return Err(format!(
            "{name}: configuring multiple configuration styles is not supported; use only strings or only groups (context/statements)"
        ));
    }
    Ok(())
}

/// Counts evaluation errors and logs them, at most once a minute, as `error_mode` says.
pub struct Errors {
    id: ComponentId,
    last_logged: Option<Instant>,
    counter: prometheus_client::metrics::counter::Counter,
}

/// An evaluation error is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

impl Errors {
    pub fn new(id: &ComponentId, metrics: &ProcessorMetrics) -> Errors {
        Errors { id: id.clone(), last_logged: None, counter: metrics.ottl_errors.clone() }
    }

    /// Handles an error under `mode`: `Err` (stop, drop the batch) only for propagate.
    pub fn handle(&mut self, mode: ErrorMode, error: EvalError, what: &str) -> Result<(), EvalError> {
        self.counter.inc();
        match mode {
            ErrorMode::Propagate => Err(error),
            ErrorMode::Silent => Ok(()),
            ErrorMode::Ignore => {
                if self.last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    self.last_logged = Some(Instant::now());
                    warn!(processor = %self.id, %error, "{what} failed on an item; it goes on unchanged (error_mode: ignore; logged once a minute).");
                }
                Ok(())
            }
        }
    }
}

/// The config error for `e` in `text`, placed inside the YAML string `text` came from
/// (found under `node`).
pub fn located(node: &Node, text: &str, e: &OttlError, what: &str) -> DeError {
    let location = find_string(node, text).map(|n| inside(n, text, e));
    DeError { message: format!("invalid OTTL {what} `{text}`: {}", e.message), location }
}

fn find_string<'n>(node: &'n Node, text: &str) -> Option<&'n Node> {
    match &node.kind {
        NodeKind::Scalar { text: t, .. } if t == text => Some(node),
        NodeKind::Seq(items) => items.iter().find_map(|n| find_string(n, text)),
        NodeKind::Map(entries) => entries.iter().find_map(|(_, v)| find_string(v, text)),
        _ => None,
    }
}

/// Where an error at `e.span` of `text` is in the YAML file: on the string's line for
/// a one-line string (past its opening quote), or the line within a multi-line one.
pub fn inside(node: &Node, text: &str, e: &OttlError) -> Location {
    let (line, column) = e.line_column(text);
    let mut location = node.location.clone();
    if line == 1 {
        let quoted = matches!(&node.kind, NodeKind::Scalar { quoted: true, .. });
        location.column += column - 1 + usize::from(quoted);
    } else {
        location.line += line - 1;
        location.column = column;
    }
    location
}
