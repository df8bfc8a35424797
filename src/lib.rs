//! The `broadcast` package: the programs of the project.
//!
//! * `broadcast-node` (src/bin/broadcast-node.rs) is a thin main over the
//!   `broadcast-actors` crate, which holds everything a node is made of.
//! * `results-table` (src/bin/results-table.rs) reads finished runs back
//!   ([`report`]) into the table `maelstrom.sh` prints.
//! * `maelstrom-sim` (src/bin/maelstrom-sim.rs) is a Maelstrom-compatible
//!   harness for the `broadcast` workload; its library is [`sim`].

pub mod report;
pub mod sim;
