//! The `loki` exporter's wire format and line encoding. The exporter itself (labels,
//! streams, request splitting, retries) is being built on these (issue 4).

pub mod encode;
pub mod proto;
