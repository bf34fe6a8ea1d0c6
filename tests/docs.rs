//! The docs kept true: `docs/components.md` has a section for every component type
//! `ocelot components` lists, naming its aliases and every option its config accepts
//! (as the config's own "unknown field, expected one of …" error lists them), and
//! every relative link in the README and `docs/` leads to a file that exists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{BIN, repo_path};

/// `(kind, type, aliases)` for every component, from `ocelot components`.
fn components() -> Vec<(String, String, Vec<String>)> {
    let output = Command::new(BIN).arg("components").output().unwrap();
    assert!(output.status.success());
    let mut kind = String::new();
    let mut out = Vec::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        if let Some(heading) = line.strip_suffix(':') {
            kind = heading.trim_end_matches('s').to_string();
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let aliases = match words.get(1..3) {
            Some(["(also", alias]) => vec![alias.trim_end_matches(')').to_string()],
            _ => Vec::new(),
        };
        out.push((kind.clone(), words[0].to_string(), aliases));
    }
    assert!(out.len() >= 20, "{out:?}");
    out
}

/// The options each component's config accepts, by `kind/type`: a config giving each
/// one an unknown key makes ocelot list the keys it expects.
fn options(components: &[(String, String, Vec<String>)]) -> BTreeMap<String, Vec<String>> {
    let mut yaml = String::new();
    for kind in ["receiver", "processor", "exporter", "connector", "extension"] {
        yaml += &format!("{kind}s:\n");
        for (_, name, _) in components.iter().filter(|(k, _, _)| k == kind) {
            yaml += &format!("  {name}:\n    zz_not_an_option: 1\n");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.yaml");
    std::fs::write(&path, yaml).unwrap();
    let output = Command::new(BIN).arg("validate").arg("--config").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(": error: ") else { continue };
        let Some((component, rest)) = rest.split_once(": unknown field `zz_not_an_option`") else { continue };
        let (kind, name) = component.split_once(' ').unwrap();
        let keys = match rest.split_once("expected") {
            Some((_, expected)) => expected.split('`').skip(1).step_by(2).map(str::to_string).collect(),
            None if rest.contains("there are no fields") => Vec::new(),
            None => panic!("an unknown field error without what is expected: {line}"),
        };
        out.insert(format!("{kind}/{}", name.trim_matches('`')), keys);
    }
    assert_eq!(out.len(), components.len(), "an unknown-field error per component:\n{text}");
    out
}

/// `docs/components.md` split at its `### \`type\`` headings; the text before the
/// first one of a kind's sections (its shared options) under `kind/`.
fn sections() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_path("docs/components.md")).unwrap();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut kind = String::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            kind = title.to_lowercase().trim_end_matches('s').to_string();
            current = format!("{kind}/");
        } else if let Some(name) = line.strip_prefix("### `").and_then(|rest| rest.strip_suffix('`')) {
            current = format!("{kind}/{name}");
        }
        let section = out.entry(current.clone()).or_default();
        section.push_str(line);
        section.push('\n');
    }
    out
}

#[test]
fn the_component_reference_names_every_component_and_option() {
    let components = components();
    let options = options(&components);
    let sections = sections();
    let mut missing = Vec::new();
    for (kind, name, aliases) in &components {
        let id = format!("{kind}/{name}");
        let Some(section) = sections.get(&id) else {
            missing.push(format!("{id}: no `### `{name}`` section in docs/components.md"));
            continue;
        };
        let shared = sections.get(&format!("{kind}/")).cloned().unwrap_or_default();
        for alias in aliases {
            if !section.contains(&format!("`{alias}`")) {
                missing.push(format!("{id}: its alias `{alias}`"));
            }
        }
        for key in &options[&id] {
            if !section.contains(&format!("`{key}`")) && !shared.contains(&format!("`{key}`")) {
                missing.push(format!("{id}: option `{key}`"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/components.md lacks:\n{}", missing.join("\n"));
}

#[test]
fn relative_links_in_the_docs_lead_to_files_that_exist() {
    let mut files = vec![repo_path("README.md")];
    for entry in std::fs::read_dir(repo_path("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut broken = Vec::new();
    for file in &files {
        // Code (between backticks) holds brackets that are not links.
        let text: String = std::fs::read_to_string(file)
            .unwrap()
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect();
        for (start, _) in text.match_indices("](") {
            let target = &text[start + 2..];
            let target = &target[..target.find(')').unwrap()];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if !file.parent().unwrap().join(path).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(files.len() >= 5, "the docs: {files:?}");
    assert!(broken.is_empty(), "links to nowhere:\n{}", broken.join("\n"));
}
