//! The kubelet's `/stats/summary` (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`), the
//! fields ocelot reads, and its `/pods` for the extra labels. Every field may be
//! missing (a container just started has no CPU figures yet): all are optional.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub node: NodeStats,
    #[serde(deserialize_with = "crate::kube::objects::nullable")]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub start_time: Option<String>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub network: Option<Network>,
    pub fs: Option<Fs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cpu {
    pub usage_nano_cores: Option<u64>,
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Memory {
    pub available_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    pub working_set_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
}

/// The default interface's counters inline, every interface in `interfaces`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Network {
    #[serde(flatten)]
    pub default: Interface,
    #[serde(deserialize_with = "crate::kube::objects::nullable")]
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    pub rx_bytes: Option<u64>,
    pub rx_errors: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub tx_errors: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Fs {
    pub available_bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes: Option<u64>,
    pub inodes_used: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodRef,
    pub start_time: Option<String>,
    #[serde(deserialize_with = "crate::kube::objects::nullable")]
    pub containers: Vec<ContainerStats>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub network: Option<Network>,
    #[serde(deserialize_with = "crate::kube::objects::nullable")]
    pub volume: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage")]
    pub ephemeral_storage: Option<Fs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Option<String>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub rootfs: Option<Fs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeStats {
    pub name: String,
    #[serde(flatten)]
    pub fs: Fs,
    pub pvc_ref: Option<PvcRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PvcRef {
    pub name: String,
    pub namespace: String,
}

/// The kubelet's `/pods`: a pod list, for container ids and volume types.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodList {
    #[serde(deserialize_with = "crate::kube::objects::nullable")]
    pub items: Vec<PodSpecs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodSpecs {
    pub metadata: crate::kube::objects::ObjectMeta,
    pub spec: VolumesSpec,
    pub status: crate::kube::objects::PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VolumesSpec {
    #[serde(deserialize_with = "crate::kube::objects::nullable")]
    pub volumes: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A pod volume's type: the name of its one source field (`configMap`, `emptyDir`,
/// `persistentVolumeClaim`, …), and the claim's name for a claim.
pub fn volume_type(volume: &serde_json::Map<String, serde_json::Value>) -> Option<(String, Option<String>)> {
    let (kind, source) = volume.iter().find(|(k, _)| k.as_str() != "name")?;
    let claim = (kind == "persistentVolumeClaim").then(|| source["claimName"].as_str().map(str::to_string)).flatten();
    Some((kind.clone(), claim))
}
