//! The `prometheus` receiver.

pub mod text;
