//! The `tail_sampling` processor: holds spans by trace id for `decision_wait`, then
//! keeps or drops each whole trace by upstream's policies (errors, slow traces,
//! attributes, OTTL, a probabilistic share, rate limits, and their combinations).
//!
//! Unlike upstream it is bounded in bytes (`max_memory_mib`; spans are held encoded)
//! and never lets a trace go undecided to make room: the oldest are decided early,
//! counted by reason. A span arriving after its trace's decision follows it. It must
//! never hold a client's reply for `decision_wait`, nor drop a span uncounted.

mod config;
mod policy;
mod processor;
#[cfg(test)]
mod tests;

pub use config::TailSamplingConfig;
pub use processor::TailSamplingProcessor;

pub const TYPE: &str = "tail_sampling";

use crate::config::de::DeError;
use crate::config::node::Node;

/// Reads the config and compiles every policy, so a bad OTTL condition or regular
/// expression fails the load.
pub fn parse(node: &Node) -> Result<TailSamplingConfig, DeError> {
    let config: TailSamplingConfig = crate::component::parse_config(node)?;
    let mut leaves = policy::Leaves::default();
    for p in &config.policies {
        policy::Policy::compile(p, &mut leaves)
            .map_err(|message| DeError { message, location: Some(node.location.clone()) })?;
    }
    Ok(config)
}
