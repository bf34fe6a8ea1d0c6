//! The `prometheus` receiver.

pub mod config;
pub mod relabel;
pub mod text;
pub mod translate;
