//! The actors a broadcast-node is made of.
//!
//! * [`protocol`]: Maelstrom's envelope, typed request and reply bodies,
//!   error codes, bad-input classification.
//! * [`digest`]: items (origin, seq, value) and the per-origin digest that
//!   acknowledges them.
pub mod digest;
pub mod protocol;
pub mod link;
#[cfg(test)]
mod testkit;
pub mod config;
pub mod overlay;
