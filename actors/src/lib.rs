//! The actors a broadcast-node is made of (being written).
