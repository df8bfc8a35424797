//! The `broadcast` package: the programs of the project.
//!
//! * `broadcast-node` (src/bin/broadcast-node.rs) is a thin main over the
//!   `broadcast-actors` crate, which holds everything a node is made of.
//! * `maelstrom-sim` (src/bin/maelstrom-sim.rs) is a Maelstrom-compatible
//!   harness for the `broadcast` workload; its library is [`sim`].

pub mod sim;
