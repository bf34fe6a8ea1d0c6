//! A small Kubernetes API client for what ocelot reads from the API: pods and nodes
//! by list + watch, and single objects by GET (a pod's ReplicaSet, the kubelet's
//! summary through its own HTTPS endpoint). It writes nothing to the cluster.

pub mod client;
pub mod objects;
pub mod watch;
