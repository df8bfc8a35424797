//! maelstrom-sim: command-line entry of the harness (being written).
fn main() {}
