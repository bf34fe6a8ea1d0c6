//! The `forward` connector: passes batches unchanged from the pipelines that export
//! to it into the pipelines that receive from it, of the same signal. The graph wires
//! it as a direct edge between those pipelines, so it costs nothing per batch;
//! backpressure and acknowledgements flow through it as through any edge.

use serde::Deserialize;

use crate::component::Validate;

pub const TYPE: &str = "forward";

/// The forward connector has no options.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {}

impl Validate for ForwardConfig {}
