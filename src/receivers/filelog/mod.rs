//! The `filelog` receiver's building blocks (work in progress, issue 3): not yet a
//! registered component, so no config can name it until it tails files end to end.

pub mod split;
