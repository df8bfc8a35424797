//! broadcast-node: command-line entry of the node (being written).
fn main() {}
