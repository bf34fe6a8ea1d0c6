//! Prometheus' relabeling, every action as `model/relabel` does it: `replace`,
//! `lowercase`, `uppercase`, `keep`, `drop`, `keepequal`, `dropequal`, `hashmod`,
//! `labelmap`, `labeldrop`, `labelkeep`. Regexes are anchored at both ends.

use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values, joined by `separator`, are matched. Default none.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Default `;`.
    #[serde(default)]
    pub separator: Option<String>,
    #[serde(default)]
    pub target_label: Option<String>,
    /// Default `(.*)`.
    #[serde(default)]
    pub regex: Option<String>,
    /// For `hashmod`.
    #[serde(default)]
    pub modulus: Option<u64>,
    /// Default `$1`.
    #[serde(default)]
    pub replacement: Option<String>,
    /// Default `replace`.
    #[serde(default)]
    pub action: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Replace,
    Lowercase,
    Uppercase,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Relabel {
    action: Action,
    source: Vec<String>,
    separator: String,
    target: String,
    regex: Regex,
    replacement: String,
    modulus: u64,
}

/// Labels by name, sorted, at most one of each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSet(pub Vec<(String, String)>);

impl LabelSet {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> LabelSet {
        let mut set = LabelSet::default();
        for (k, v) in pairs {
            set.set(&k, v);
        }
        set
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok().map(|i| self.0[i].1.as_str())
    }

    /// Sets `name`; an empty value removes it, as in Prometheus.
    pub fn set(&mut self, name: &str, value: String) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl RelabelConfig {
    pub fn compile(&self) -> Result<Relabel, String> {
        let action_name = self.action.as_deref().unwrap_or("replace").to_ascii_lowercase();
        let action = match action_name.as_str() {
            "replace" => Action::Replace,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            other => {
                return Err(format!(
                    "unknown relabel action `{other}`; expected replace, lowercase, uppercase, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop or labelkeep"
                ));
            }
        };
        let pattern = self.regex.as_deref().unwrap_or("(.*)");
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("regex `{pattern}`: {e}"))?;
        let target = self.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::Lowercase
                | Action::Uppercase
                | Action::HashMod
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target.is_empty() {
            return Err(format!("relabel action {action_name} needs target_label"));
        }
        if action == Action::Replace && !target.contains('$') && !valid_label_name(&target) {
            return Err(format!("target_label `{target}` is not a valid label name"));
        }
        if matches!(
            action,
            Action::Lowercase | Action::Uppercase | Action::HashMod | Action::KeepEqual | Action::DropEqual
        ) && !valid_label_name(&target)
        {
            return Err(format!("target_label `{target}` is not a valid label name"));
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && (self.regex.is_some() || self.replacement.is_some())
        {
            return Err(format!("relabel action {action_name} takes no regex or replacement"));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty() || self.target_label.is_some() || self.replacement.is_some())
        {
            return Err(format!("relabel action {action_name} takes only regex"));
        }
        if matches!(action, Action::LabelMap) && self.target_label.is_some() {
            return Err("relabel action labelmap takes no target_label".into());
        }
        let modulus = self.modulus.unwrap_or(0);
        if action == Action::HashMod && modulus == 0 {
            return Err("relabel action hashmod needs a modulus above 0".into());
        }
        if let Some(bad) = self.source_labels.iter().find(|l| !valid_label_name(l)) {
            return Err(format!("source_labels: `{bad}` is not a valid label name"));
        }
        Ok(Relabel {
            action,
            source: self.source_labels.clone(),
            separator: self.separator.clone().unwrap_or_else(|| ";".into()),
            target,
            regex,
            replacement: self.replacement.clone().unwrap_or_else(|| "$1".into()),
            modulus,
        })
    }
}

/// Applies `rules` in order; false when a rule dropped the set.
pub fn apply(rules: &[Relabel], labels: &mut LabelSet) -> bool {
    rules.iter().all(|rule| rule.apply(labels))
}

impl Relabel {
    fn apply(&self, labels: &mut LabelSet) -> bool {
        let value = || {
            let mut value = String::new();
            for (i, name) in self.source.iter().enumerate() {
                if i > 0 {
                    value.push_str(&self.separator);
                }
                value.push_str(labels.get(name).unwrap_or(""));
            }
            value
        };
        match self.action {
            Action::Keep => return self.regex.is_match(&value()),
            Action::Drop => return !self.regex.is_match(&value()),
            Action::KeepEqual => return labels.get(&self.target).unwrap_or("") == value(),
            Action::DropEqual => return labels.get(&self.target).unwrap_or("") != value(),
            Action::Replace => {
                let value = value();
                let Some(captures) = self.regex.captures(&value) else { return true };
                let mut target = String::new();
                captures.expand(&self.target, &mut target);
                if !valid_label_name(&target) {
                    return true;
                }
                let mut replaced = String::new();
                captures.expand(&self.replacement, &mut replaced);
                labels.set(&target, replaced);
            }
            Action::Lowercase => {
                let value = value().to_lowercase();
                labels.set(&self.target, value);
            }
            Action::Uppercase => {
                let value = value().to_uppercase();
                labels.set(&self.target, value);
            }
            Action::HashMod => {
                let digest = Md5::digest(value().as_bytes());
                let sum = digest[8..].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                labels.set(&self.target, (sum % self.modulus).to_string());
            }
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = labels
                    .0
                    .iter()
                    .filter_map(|(name, value)| {
                        let captures = self.regex.captures(name)?;
                        let mut new_name = String::new();
                        captures.expand(&self.replacement, &mut new_name);
                        Some((new_name, value.clone()))
                    })
                    .collect();
                for (name, value) in mapped {
                    labels.set(&name, value);
                }
            }
            Action::LabelDrop => labels.0.retain(|(name, _)| !self.regex.is_match(name)),
            Action::LabelKeep => labels.0.retain(|(name, _)| self.regex.is_match(name)),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Relabel {
        let config: RelabelConfig = serde_json::from_str(yaml).unwrap();
        config.compile().unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn every_action_as_prometheus() {
        let base = set(&[("__address__", "10.0.0.1:9100"), ("__meta_pod", "web-1"), ("job", "node"), ("env", "Prod")]);
        type Want<'a> = Option<Vec<(&'a str, &'a str)>>;
        let cases: Vec<(&str, Want<'_>)> = vec![
            (
                r#"{"source_labels": ["__address__"], "regex": "(.*):\\d+", "target_label": "host", "replacement": "${1}"}"#,
                Some(vec![
                    ("__address__", "10.0.0.1:9100"),
                    ("__meta_pod", "web-1"),
                    ("env", "Prod"),
                    ("host", "10.0.0.1"),
                    ("job", "node"),
                ]),
            ),
            (
                r#"{"source_labels": ["env"], "target_label": "env", "action": "lowercase"}"#,
                Some(vec![("__address__", "10.0.0.1:9100"), ("__meta_pod", "web-1"), ("env", "prod"), ("job", "node")]),
            ),
            (
                r#"{"source_labels": ["job"], "regex": "node", "action": "keep"}"#,
                Some(base.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
            ),
            (r#"{"source_labels": ["job"], "regex": "nod", "action": "keep"}"#, None),
            (r#"{"source_labels": ["job"], "regex": "n.*", "action": "drop"}"#, None),
            (
                r#"{"source_labels": ["job"], "target_label": "job", "action": "keepequal"}"#,
                Some(base.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
            ),
            (
                r#"{"source_labels": ["env"], "target_label": "job", "action": "dropequal"}"#,
                Some(base.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
            ),
            (
                r#"{"regex": "__meta_(.+)", "action": "labelmap"}"#,
                Some(vec![
                    ("__address__", "10.0.0.1:9100"),
                    ("__meta_pod", "web-1"),
                    ("env", "Prod"),
                    ("job", "node"),
                    ("pod", "web-1"),
                ]),
            ),
            (
                r#"{"regex": "__meta_.*|env", "action": "labeldrop"}"#,
                Some(vec![("__address__", "10.0.0.1:9100"), ("job", "node")]),
            ),
            (r#"{"regex": "job", "action": "labelkeep"}"#, Some(vec![("job", "node")])),
            (
                r#"{"source_labels": ["nothing"], "target_label": "env"}"#,
                Some(vec![("__address__", "10.0.0.1:9100"), ("__meta_pod", "web-1"), ("job", "node")]),
            ),
        ];
        for (yaml, want) in cases {
            let mut labels = base.clone();
            let kept = apply(&[rule(yaml)], &mut labels);
            match want {
                None => assert!(!kept, "{yaml} keeps {labels:?}"),
                Some(want) => {
                    assert!(kept, "{yaml} dropped");
                    let got: Vec<(&str, &str)> = labels.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    assert_eq!(got, want, "{yaml}");
                }
            }
        }
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus' sum64: the md5 sum's last 8 bytes, big-endian (Go's shifts past 64
        // bits drop the first 8); md5("foo") ends ed ef 65 4f cc c4 a4 d8.
        let mut labels = set(&[("a", "foo")]);
        assert!(apply(
            &[rule(r#"{"source_labels": ["a"], "target_label": "b", "modulus": 1000, "action": "hashmod"}"#)],
            &mut labels
        ));
        assert_eq!(labels.get("b"), Some(&*(0xedef_654f_ccc4_a4d8_u64 % 1000).to_string()));
    }

    #[test]
    fn bad_rules_say_why() {
        for (yaml, message) in [
            (r#"{"action": "replace"}"#, "needs target_label"),
            (r#"{"action": "hashmod", "target_label": "x"}"#, "modulus"),
            (r#"{"action": "explode"}"#, "unknown relabel action"),
            (r#"{"regex": "(", "target_label": "x"}"#, "regex `(`"),
            (r#"{"action": "labeldrop", "source_labels": ["a"]}"#, "only regex"),
            (r#"{"target_label": "1x"}"#, "not a valid label name"),
        ] {
            let config: RelabelConfig = serde_json::from_str(yaml).unwrap();
            let error = config.compile().unwrap_err();
            assert!(error.contains(message), "{yaml}: {error}");
        }
    }
}
