//! An in-test Kubernetes API server: no real one can run here. It speaks what the
//! real one speaks to a pod watcher and checks what it checks: HTTPS with its own CA,
//! the bearer token (401 with a `Status` otherwise), the pod field selectors the real
//! one supports (400 for others), label selectors, `limit`/`continue` pages, and
//! watches from a resource version: the events after it as chunked JSON lines,
//! `ERROR` 410 when that version is compacted away, `BOOKMARK`s on request. Objects
//! (ReplicaSets, Jobs) answer GETs by path.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::serve_connections;

pub struct KubeApi {
    pub port: u16,
    pub ca_pem: String,
    state: Arc<State>,
}

struct State {
    token: String,
    inner: Mutex<Inner>,
    changed: Condvar,
}

#[derive(Default)]
struct Inner {
    version: u64,
    /// `pods` and `nodes`, each by uid.
    collections: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// Watch events by the version they made: (version, collection, type, object).
    history: Vec<(u64, &'static str, &'static str, Value)>,
    /// Versions at or below this are compacted: a watch from them gets 410.
    compacted: u64,
    /// Bumped by `compact`: open watches end with an `ERROR` 410.
    generation: u64,
    objects: BTreeMap<String, Value>,
    requests: Vec<String>,
}

impl KubeApi {
    /// A server that takes `token`.
    pub fn start(token: &str) -> KubeApi {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let tls = Arc::new(tls);
        let state = Arc::new(State { token: token.to_string(), inner: Mutex::default(), changed: Condvar::new() });
        let serving = state.clone();
        let port = serve_connections(move |tcp| {
            let connection = rustls::ServerConnection::new(tls.clone()).unwrap();
            let stream = rustls::StreamOwned::new(connection, tcp);
            serve(&serving, stream);
        });
        KubeApi { port, ca_pem: ca_cert.pem(), state }
    }

    /// A kubeconfig naming this server, its CA and `token`; returns its path.
    pub fn kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\ncontexts:\n- name: test\n  context: {{cluster: test, user: agent}}\nusers:\n- name: agent\n  user:\n    token: {token}\n",
            self.port
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn change(&self, collection: &'static str, kind: &'static str, mut object: Value) {
        let mut inner = self.state.inner.lock().unwrap();
        inner.version += 1;
        let version = inner.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let uid = object["metadata"]["uid"].as_str().unwrap().to_string();
        let objects = inner.collections.entry(collection).or_default();
        match kind {
            "DELETED" => {
                objects.remove(&uid);
            }
            _ => {
                objects.insert(uid, object.clone());
            }
        }
        inner.history.push((version, collection, kind, object));
        self.state.changed.notify_all();
    }

    pub fn add_pod(&self, pod: Value) {
        self.change("pods", "ADDED", pod);
    }

    pub fn modify_pod(&self, pod: Value) {
        self.change("pods", "MODIFIED", pod);
    }

    pub fn delete_pod(&self, uid: &str) {
        let pod = self.state.inner.lock().unwrap().collections["pods"][uid].clone();
        self.change("pods", "DELETED", pod);
    }

    pub fn add_namespace(&self, namespace: Value) {
        self.change("namespaces", "ADDED", namespace);
    }

    pub fn modify_namespace(&self, namespace: Value) {
        self.change("namespaces", "MODIFIED", namespace);
    }

    pub fn add_node(&self, node: Value) {
        self.change("nodes", "ADDED", node);
    }

    pub fn delete_node(&self, uid: &str) {
        let node = self.state.inner.lock().unwrap().collections["nodes"][uid].clone();
        self.change("nodes", "DELETED", node);
    }

    /// Changes a pod without a watch event reaching anyone: its history is compacted
    /// at once, so watchers get 410 and must list again to see it.
    pub fn modify_pod_and_compact(&self, pod: Value) {
        self.change("pods", "MODIFIED", pod);
        let mut inner = self.state.inner.lock().unwrap();
        inner.compacted = inner.version;
        inner.generation += 1;
        inner.history.clear();
        self.state.changed.notify_all();
    }

    /// Sends a BOOKMARK at the current version to every watch.
    pub fn bookmark(&self) {
        let mut inner = self.state.inner.lock().unwrap();
        inner.version += 1;
        let version = inner.version;
        for collection in ["pods", "nodes", "namespaces"] {
            let bookmark = json!({"metadata": {"resourceVersion": version.to_string()}});
            inner.history.push((version, collection, "BOOKMARK", bookmark));
        }
        self.state.changed.notify_all();
    }

    /// An object a GET of `path` answers with.
    pub fn put_object(&self, path: &str, object: Value) {
        self.state.inner.lock().unwrap().objects.insert(path.to_string(), object);
    }

    /// Every request's path and query, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.inner.lock().unwrap().requests.clone()
    }
}

type Stream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn serve(state: &State, stream: Stream) {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    if reader.read_line(&mut head).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut stream = reader.into_inner();
    let target = head.split(' ').nth(1).unwrap_or_default().to_string();
    state.inner.lock().unwrap().requests.push(target.clone());
    if headers.get("authorization") != Some(&format!("Bearer {}", state.token)) {
        return status(&mut stream, 401, "Unauthorized", "Unauthorized");
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: BTreeMap<String, String> =
        query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), unescape(v))).collect();
    let namespaced = path.strip_prefix("/api/v1/namespaces/").and_then(|rest| rest.strip_suffix("/pods"));
    let collection = match path {
        "/api/v1/pods" => Some("pods"),
        "/api/v1/nodes" => Some("nodes"),
        "/api/v1/namespaces" => Some("namespaces"),
        _ if namespaced.is_some_and(|ns| !ns.contains('/')) => Some("pods"),
        _ => None,
    };
    if let Some(collection) = collection {
        let Some(mut filter) = Filter::parse(collection, &query) else {
            return status(&mut stream, 400, "BadRequest", "field label not supported");
        };
        if let Some(namespace) = namespaced {
            filter.fields.push(("metadata.namespace".into(), true, namespace.to_string()));
        }
        if query.get("watch").map(String::as_str) == Some("true") {
            return watch(state, &mut stream, collection, &query, &filter);
        }
        return list(state, &mut stream, collection, &query, &filter);
    }
    let object = state.inner.lock().unwrap().objects.get(path).cloned();
    match object {
        Some(object) => respond(&mut stream, 200, &object.to_string()),
        None => status(&mut stream, 404, "NotFound", &format!("{path} not found")),
    }
}

/// The selectors of a pod request.
struct Filter {
    fields: Vec<(String, bool, String)>,
    labels: Vec<Label>,
}

enum Label {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Filter {
    fn parse(collection: &str, query: &BTreeMap<String, String>) -> Option<Filter> {
        let terms = |name: &str| -> Vec<String> {
            let text = query.get(name).cloned().unwrap_or_default();
            text.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect()
        };
        let mut fields = Vec::new();
        for term in terms("fieldSelector") {
            let (key, equal, value) = match term.split_once("!=") {
                Some((k, v)) => (k.to_string(), false, v.to_string()),
                None => {
                    let (k, v) = term.split_once('=')?;
                    (k.to_string(), true, v.trim_start_matches('=').to_string())
                }
            };
            // What the real server supports for pods and nodes.
            let supported: &[&str] = match collection {
                "pods" => &["spec.nodeName", "metadata.name", "metadata.namespace", "status.phase", "status.podIP"],
                "nodes" => &["metadata.name", "spec.unschedulable"],
                _ => &["metadata.name", "status.phase"],
            };
            if !supported.contains(&key.as_str()) {
                return None;
            }
            fields.push((key, equal, value));
        }
        let labels = terms("labelSelector")
            .into_iter()
            .map(|term| match (term.split_once("!="), term.split_once('='), term.strip_prefix('!')) {
                (Some((k, v)), _, _) => Label::NotEquals(k.into(), v.into()),
                (None, Some((k, v)), _) => Label::Equals(k.into(), v.trim_start_matches('=').into()),
                (None, None, Some(k)) => Label::Absent(k.into()),
                (None, None, None) => Label::Exists(term.clone()),
            })
            .collect();
        Some(Filter { fields, labels })
    }

    fn matches(&self, pod: &Value) -> bool {
        let field = |key: &str| key.split('.').fold(pod, |v, k| &v[k]).as_str().unwrap_or_default().to_string();
        let labels = &pod["metadata"]["labels"];
        self.fields.iter().all(|(k, equal, v)| (field(k) == *v) == *equal)
            && self.labels.iter().all(|rule| match rule {
                Label::Equals(k, v) => labels[k].as_str() == Some(v),
                Label::NotEquals(k, v) => labels[k].as_str() != Some(v),
                Label::Exists(k) => labels.get(k).is_some(),
                Label::Absent(k) => labels.get(k).is_none(),
            })
    }
}

fn list(state: &State, stream: &mut Stream, collection: &str, query: &BTreeMap<String, String>, filter: &Filter) {
    let inner = state.inner.lock().unwrap();
    let empty = BTreeMap::new();
    let objects = inner.collections.get(collection).unwrap_or(&empty);
    let all: Vec<&Value> = objects.values().filter(|p| filter.matches(p)).collect();
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(usize::MAX).max(1);
    let start: usize = query.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let page: Vec<&Value> = all.iter().skip(start).take(limit).copied().collect();
    let next = if start + page.len() < all.len() { (start + page.len()).to_string() } else { String::new() };
    let body = json!({
        "kind": format!("{}List", collection.trim_end_matches('s')), "apiVersion": "v1",
        "metadata": {"resourceVersion": inner.version.to_string(), "continue": next},
        "items": page,
    });
    drop(inner);
    respond(stream, 200, &body.to_string());
}

fn watch(state: &State, stream: &mut Stream, collection: &str, query: &BTreeMap<String, String>, filter: &Filter) {
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let seconds: u64 = query.get("timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(1800);
    let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let send = |stream: &mut Stream, event: Value| -> bool {
        let line = format!("{event}\n");
        stream.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes()).is_ok() && stream.flush().is_ok()
    };
    let gone = |from: u64| {
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410}})
    };
    let ends = Instant::now() + Duration::from_secs(seconds);
    let mut inner = state.inner.lock().unwrap();
    if from < inner.compacted {
        drop(inner);
        send(stream, gone(from));
        let _ = stream.write_all(b"0\r\n\r\n");
        return;
    }
    let generation = inner.generation;
    let mut seen = from;
    loop {
        if inner.generation != generation {
            drop(inner);
            send(stream, gone(seen));
            let _ = stream.write_all(b"0\r\n\r\n");
            return;
        }
        let events: Vec<(u64, &'static str, Value)> = inner
            .history
            .iter()
            .filter(|(v, c, _, _)| *v > seen && *c == collection)
            .map(|(v, _, kind, object)| (*v, *kind, object.clone()))
            .collect();
        seen = inner.history.last().map_or(seen, |(v, _, _, _)| (*v).max(seen));
        drop(inner);
        for (_, kind, object) in events {
            if kind == "BOOKMARK" && !bookmarks {
                continue;
            }
            if kind != "BOOKMARK" && !filter.matches(&object) {
                continue;
            }
            if !send(stream, json!({"type": kind, "object": object})) {
                return;
            }
        }
        if Instant::now() >= ends {
            let _ = stream.write_all(b"0\r\n\r\n");
            return;
        }
        inner = state.inner.lock().unwrap();
        let last = inner.history.last().map(|(v, _, _, _)| *v).unwrap_or(0);
        if last <= seen && inner.generation == generation {
            inner = state.changed.wait_timeout(inner, Duration::from_millis(200)).unwrap().0;
        }
    }
}

fn respond(stream: &mut Stream, code: u16, body: &str) {
    let head = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn status(stream: &mut Stream, code: u16, reason: &str, message: &str) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    respond(stream, code, &body.to_string());
}

fn unescape(value: &str) -> String {
    let mut out = Vec::new();
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match (b, tail.get(..2).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                rest = &tail[2..];
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
