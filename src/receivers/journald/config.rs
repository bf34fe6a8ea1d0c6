use std::collections::BTreeMap;

use serde::Deserialize;

use crate::component::Validate;
use crate::receivers::filelog::config::StartAt;
use crate::receivers::filelog::operators::{self, OperatorConfig};

/// The `journald` receiver, with upstream's option names and defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// A directory of journal files (`--directory`). Default: the system journal
    /// (`/var/log/journal`, or `/run/log/journal` when it is not persistent).
    #[serde(default)]
    pub directory: Option<String>,
    /// Journal files to read (`--file`), instead of a directory.
    #[serde(default)]
    pub files: Vec<String>,
    /// Where a first start begins: `end` (default; only entries that arrive from now)
    /// or `beginning` (the whole journal). Later starts go on from the cursor.
    #[serde(default)]
    pub start_at: StartAt,
    /// Units to read (`--unit`, any of them).
    #[serde(default)]
    pub units: Vec<String>,
    /// Syslog identifiers to read (`--identifier`, any of them).
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Field matches: within one map every field must match, and any map may.
    #[serde(default)]
    pub matches: Vec<BTreeMap<String, String>>,
    /// The least important priority read, or a range `from..to` (`--priority`):
    /// `emerg`..`debug` or 0..7. Default `info`.
    #[serde(default = "default_priority")]
    pub priority: String,
    /// Only entries whose MESSAGE matches this regular expression (`--grep`).
    #[serde(default)]
    pub grep: Option<String>,
    /// Only kernel messages of the current boot (`--dmesg`).
    #[serde(default)]
    pub dmesg: bool,
    /// Include fields that are long or not printable (`--all`); without it journalctl
    /// writes such a value as null.
    #[serde(default)]
    pub all: bool,
    /// A journal namespace (`--namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Interleave the journals of every host found (`--merge`).
    #[serde(default)]
    pub merge: bool,
    /// A MESSAGE that journalctl writes as bytes (not valid UTF-8) becomes a string
    /// (invalid bytes replaced) rather than a list of numbers.
    #[serde(default)]
    pub convert_message_bytes: bool,
    /// A `file_storage` extension for the cursor; without one it goes to --storage-dir.
    #[serde(default)]
    pub storage: Option<String>,
    /// The journalctl to run. Default `journalctl` on the PATH.
    #[serde(default = "default_journalctl_path")]
    pub journalctl_path: String,
    /// Stanza operators run on each entry (not `container`).
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// ocelot's: MESSAGE as the body, PRIORITY as the severity, every other field
    /// (not the `__` address fields) as an attribute under its journal name. Default
    /// false: the whole entry is the body, as upstream.
    #[serde(default)]
    pub parse_fields: bool,
}

fn default_priority() -> String {
    "info".into()
}

fn default_journalctl_path() -> String {
    "journalctl".into()
}

const PRIORITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

fn valid_priority(level: &str) -> bool {
    PRIORITIES.contains(&level) || matches!(level.as_bytes(), [b'0'..=b'7'])
}

/// A journal field name as journald accepts it: upper-case letters, digits and `_`,
/// not starting with a digit.
fn valid_field(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Validate for JournaldConfig {
    fn validate(&self) -> Result<(), String> {
        if self.directory.is_some() && !self.files.is_empty() {
            return Err("give `directory` or `files`, not both".into());
        }
        let priority_ok = match self.priority.split_once("..") {
            Some((from, to)) => valid_priority(from) && valid_priority(to),
            None => valid_priority(&self.priority),
        };
        if !priority_ok {
            return Err(format!(
                "priority `{}`: expected one of {} or 0..7, or a range such as `err..info`",
                self.priority,
                PRIORITIES.join(", ")
            ));
        }
        for (n, set) in self.matches.iter().enumerate() {
            if set.is_empty() {
                return Err(format!("matches[{n}] is empty"));
            }
            if let Some(bad) = set.keys().find(|k| !valid_field(k)) {
                return Err(format!("matches[{n}]: `{bad}` is not a journal field name (A-Z, 0-9 and _)"));
            }
        }
        if let Some(grep) = &self.grep
            && grep.is_empty()
        {
            return Err("grep is empty".into());
        }
        if self.journalctl_path.is_empty() {
            return Err("journalctl_path is empty".into());
        }
        if self.operators.iter().any(|o| matches!(o, OperatorConfig::Container(_))) {
            return Err(
                "operators: the container operator reads container log files; journald takes no container".into()
            );
        }
        operators::validate(&self.operators)
    }
}

impl JournaldConfig {
    /// journalctl's arguments for these filters, with `start` (where to begin, how
    /// many entries) before the matches, which are positional.
    pub fn args(&self, start: &[String]) -> Vec<String> {
        let mut args: Vec<String> = vec!["--utc".into(), "--output=json".into(), "--no-pager".into()];
        for unit in &self.units {
            args.extend(["--unit".into(), unit.clone()]);
        }
        for identifier in &self.identifiers {
            args.extend(["--identifier".into(), identifier.clone()]);
        }
        args.extend(["--priority".into(), self.priority.clone()]);
        if let Some(grep) = &self.grep {
            args.extend(["--grep".into(), grep.clone()]);
        }
        if self.dmesg {
            args.push("--dmesg".into());
        }
        if let Some(namespace) = &self.namespace {
            args.extend(["--namespace".into(), namespace.clone()]);
        }
        if let Some(directory) = &self.directory {
            args.extend(["--directory".into(), directory.clone()]);
        }
        for file in &self.files {
            args.extend(["--file".into(), file.clone()]);
        }
        if self.all {
            args.push("--all".into());
        }
        if self.merge {
            args.push("--merge".into());
        }
        args.extend(start.iter().cloned());
        for (n, set) in self.matches.iter().enumerate() {
            if n > 0 {
                args.push("+".into());
            }
            args.extend(set.iter().map(|(k, v)| format!("{k}={v}")));
        }
        args
    }
}
