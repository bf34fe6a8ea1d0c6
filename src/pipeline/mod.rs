//! The pipeline graph built from a config: exporters (one instance per id, each with
//! its queue), one task per pipeline running its processors and fanning out, and
//! receivers (one instance per id, fanning out to every pipeline that lists them).
//!
//! Everything starts downstream first and stops upstream first: stopping receivers
//! drops their senders, each pipeline drains and drops its exporter senders, and each
//! exporter drains its queue. No stage ever stops while another still feeds it.

pub mod governor;
mod graph;
mod run;

pub use graph::{ApplyError, Changes, Graph};

use crate::config::ComponentId;

/// Batches waiting between receivers and a pipeline's processors. Small on purpose:
/// data waits in exporter queues, which are sized and measured; this is only slack.
pub const PIPELINE_INPUT_CAPACITY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("exporter `{id}`: {source}")]
    Exporter { id: ComponentId, source: crate::exporters::BuildError },
    #[error("receiver `{id}`: {source}")]
    Receiver { id: ComponentId, source: crate::receivers::StartError },
    #[error("connector `{id}`: {source}")]
    Connector { id: ComponentId, source: crate::connectors::routing::RouterError },
    #[error("processor `{id}`: {source}")]
    Processor { id: ComponentId, source: crate::processors::BuildError },
}
