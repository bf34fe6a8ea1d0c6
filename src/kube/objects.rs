//! The parts of Kubernetes objects ocelot reads, as the API serves them in JSON. Every
//! field is optional on the wire, so every field has a default: a pod the API sends
//! half-filled (pending, not yet scheduled) still reads.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A field the API may send as `null` (a Go nil slice or map): its default then.
pub fn nullable<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerReference>,
    pub creation_timestamp: Option<String>,
    pub deletion_timestamp: Option<String>,
}

impl ObjectMeta {
    /// The owner that controls this object (`controller: true`), as upstream reads it.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references.iter().find(|o| o.controller)
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerReference {
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: bool,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: PodStatus,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    pub node_name: String,
    pub hostname: String,
    pub host_network: bool,
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<Container>,
    #[serde(deserialize_with = "nullable")]
    pub init_containers: Vec<Container>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<ContainerPort>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: String,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: String,
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    #[serde(rename = "hostIP")]
    pub host_ip: String,
    pub start_time: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
    #[serde(deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    /// `containerd://<id>`, `docker://<id>`, `cri-o://<id>`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub image: String,
    #[serde(rename = "imageID")]
    pub image_id: String,
    pub restart_count: u32,
    pub ready: bool,
}

impl ContainerStatus {
    /// The id without its runtime's `scheme://`, as `container.id` carries it.
    pub fn bare_id(&self) -> &str {
        self.container_id.split_once("://").map_or(self.container_id.as_str(), |(_, id)| id)
    }
}

/// A ReplicaSet or a Job: only who owns it matters.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Owned {
    pub metadata: ObjectMeta,
}

/// A namespace: its labels, annotations and uid.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Namespace {
    pub metadata: ObjectMeta,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Node {
    pub metadata: ObjectMeta,
    pub spec: NodeSpec,
    pub status: NodeStatus,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NodeSpec {
    #[serde(rename = "providerID")]
    pub provider_id: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(deserialize_with = "nullable")]
    pub addresses: Vec<NodeAddress>,
    pub daemon_endpoints: DaemonEndpoints,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct DaemonEndpoints {
    pub kubelet_endpoint: KubeletEndpoint,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct KubeletEndpoint {
    pub port: u16,
}

/// One page of a list; each item is read on its own, so one that does not read
/// costs only itself.
#[derive(Debug, Deserialize)]
pub struct List {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default)]
    #[serde(deserialize_with = "nullable")]
    pub items: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta {
    pub resource_version: String,
    #[serde(rename = "continue")]
    pub continue_token: String,
}

/// The API's answer to a failed request, and a watch's `ERROR` event object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// One line of a watch stream.
#[derive(Debug, PartialEq)]
pub enum WatchEvent<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Nothing changed, but the stream is at this resource version.
    Bookmark(String),
    /// The watch ended with this status; 410 means the version is too old to resume.
    Error {
        code: u16,
        message: String,
    },
    /// An object that does not read as `T`: skipped, but its version is passed.
    Undecodable {
        version: String,
        error: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a watch event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown watch event type `{0}`")]
    Type(String),
}

impl<T: serde::de::DeserializeOwned> WatchEvent<T> {
    /// One line of a watch stream: `{"type": "ADDED", "object": {...}}`.
    pub fn parse(line: &[u8]) -> Result<WatchEvent<T>, EventError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            kind: String,
            object: serde_json::Value,
        }
        let raw: Raw = serde_json::from_slice(line)?;
        let object = |raw: Raw| -> Result<T, WatchEvent<T>> {
            let version = raw.object["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
            T::deserialize(raw.object).map_err(|e| WatchEvent::Undecodable { version, error: e.to_string() })
        };
        Ok(match raw.kind.as_str() {
            "ADDED" => object(raw).map_or_else(|e| e, WatchEvent::Added),
            "MODIFIED" => object(raw).map_or_else(|e| e, WatchEvent::Modified),
            "DELETED" => object(raw).map_or_else(|e| e, WatchEvent::Deleted),
            "BOOKMARK" => {
                #[derive(Deserialize)]
                struct Bookmark {
                    #[serde(default)]
                    metadata: ObjectMeta,
                }
                WatchEvent::Bookmark(Bookmark::deserialize(raw.object)?.metadata.resource_version)
            }
            "ERROR" => {
                let status = Status::deserialize(raw.object)?;
                WatchEvent::Error { code: status.code, message: status.message }
            }
            other => return Err(EventError::Type(other.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_events_read_as_the_api_writes_them() {
        let added: WatchEvent<Pod> = WatchEvent::parse(
            br#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"web-1","namespace":"shop","uid":"u1","resourceVersion":"7",
            "ownerReferences":[{"kind":"ReplicaSet","name":"web-5d9","uid":"rs1","controller":true}]},
            "spec":{"nodeName":"n1","containers":[{"name":"app","image":"nginx:1.27","ports":[{"containerPort":80}]}]},
            "status":{"podIP":"10.0.0.5","containerStatuses":[{"name":"app","containerID":"containerd://abc","restartCount":2}]}}}"#,
        )
        .unwrap();
        let WatchEvent::Added(pod) = added else { panic!("{added:?}") };
        assert_eq!(pod.metadata.controller().unwrap().kind, "ReplicaSet");
        assert_eq!(pod.status.pod_ip, "10.0.0.5");
        assert_eq!(pod.status.container_statuses[0].bare_id(), "abc");
        assert_eq!(pod.spec.containers[0].ports[0].container_port, 80);
        let bookmark: WatchEvent<Pod> =
            WatchEvent::parse(br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12"}}}"#)
                .unwrap();
        assert_eq!(bookmark, WatchEvent::Bookmark("12".into()));
        let gone: WatchEvent<Pod> = WatchEvent::parse(
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}}"#,
        )
        .unwrap();
        assert_eq!(gone, WatchEvent::Error { code: 410, message: "too old resource version".into() });
        assert!(WatchEvent::<Pod>::parse(br#"{"type":"FROB","object":{}}"#).is_err());
        assert!(WatchEvent::<Pod>::parse(b"{").is_err());
        let odd: WatchEvent<Pod> =
            WatchEvent::parse(br#"{"type":"ADDED","object":{"metadata":{"name":7,"resourceVersion":"9"}}}"#).unwrap();
        assert!(matches!(odd, WatchEvent::Undecodable { ref version, .. } if version == "9"), "{odd:?}");
        // The API leaves out empty lists, but a Go nil slice can arrive as null.
        let nulls: WatchEvent<Pod> = WatchEvent::parse(
            br#"{"type":"ADDED","object":{"metadata":{"labels":null,"ownerReferences":null},"spec":{"containers":null},"status":{"containerStatuses":null}}}"#,
        )
        .unwrap();
        assert!(matches!(nulls, WatchEvent::Added(_)), "{nulls:?}");
    }
}
