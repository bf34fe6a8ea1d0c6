//! The parts of Kubernetes objects ocelot reads, as the API serves them in JSON. Every
//! field is optional on the wire, so every field has a default: a pod the API sends
//! half-filled (pending, not yet scheduled) still reads.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
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
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
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
    pub conditions: Vec<Condition>,
    pub container_statuses: Vec<ContainerStatus>,
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

/// One page of a list.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct List<T> {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default)]
    pub items: Vec<T>,
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
        Ok(match raw.kind.as_str() {
            "ADDED" => WatchEvent::Added(T::deserialize(raw.object)?),
            "MODIFIED" => WatchEvent::Modified(T::deserialize(raw.object)?),
            "DELETED" => WatchEvent::Deleted(T::deserialize(raw.object)?),
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
        assert!(WatchEvent::<Pod>::parse(br#"{"type":"ADDED","object":{"metadata":{"name":7}}}"#).is_err());
    }
}
