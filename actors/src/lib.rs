//! The actors a broadcast-node is made of, and the pure logic they wrap.
//!
//! Actors (one owner per resource, typed messages, no shared mutable state):
//! * [`stdin_reader`]: StdinReader, stdin as a line stream; parses and routes
//!   every request; answers bad input; orderly end at EOF.
//! * [`stdout_writer`]: StdoutWriter, the only writer of stdout.
//! * [`store`]: MessageStore, the items and values; reads; hands new items to
//!   the links.
//! * [`topology`]: TopologyManager, init/topology, the overlay, one
//!   NeighborGossip per neighbour.
//! * [`neighbor`]: NeighborGossip, one link's batching, acknowledgements,
//!   retransmission and backlog trace.
//!
//! Pure logic (no actix, time passed in):
//! * [`protocol`]: Maelstrom's envelope, typed bodies, closed replies, error
//!   codes, bad-input classification.
//! * [`digest`]: items (origin, seq, value) and the per-origin digest that
//!   acknowledges them.
//! * [`link`]: one link's state machine (what to send when).
//! * [`overlay`]: which neighbours, with which link policy.
//! * [`config`]: knobs, profiles, command-line and environment parsing.
//! * [`clock`]: the shared millisecond clock.

pub mod autotune;
pub mod clock;
pub mod config;
pub mod digest;
pub mod link;
pub mod messages;
pub mod neighbor;
pub mod overlay;
pub mod protocol;
pub mod stdin_reader;
pub mod stdout_writer;
pub mod store;
pub mod store_core;
#[cfg(test)]
mod testkit;
pub mod topology;

use actix::prelude::*;
use clock::Clock;
use config::Config;
use messages::{LinkControl, LinkHandle, NeighborSetup};
use neighbor::NeighborGossip;
use stdin_reader::{Routes, StdinReader};
use stdout_writer::StdoutWriter;
use store::MessageStore;
use tokio::io::{AsyncRead, AsyncWrite};
use topology::{TopologyManager, TopologyPeers};

/// Starts a node's actors on the current actix System, reading requests from
/// `input` and writing messages to `output`. At end of input the node flushes
/// `output` and stops the System.
pub fn start<R, W>(config: Config, input: R, output: W, clock: Clock)
where
    R: AsyncRead + Unpin + 'static,
    W: AsyncWrite + Unpin + 'static,
{
    let writer = StdoutWriter::start(output);
    let store = MessageStore::new(writer.clone().recipient()).start();
    let topology_ctx = Context::<TopologyManager>::new();
    let topology = topology_ctx.address();
    StdinReader::new(
        input,
        config.max_line_bytes,
        Routes {
            init: topology.clone().recipient(),
            joined: store.clone().recipient(),
            topology: topology.clone().recipient(),
            broadcast: store.clone().recipient(),
            read: store.clone().recipient(),
            merge: store.clone().recipient(),
            out: writer.clone().recipient(),
            drain: vec![topology.clone().recipient(), store.clone().recipient()],
            shutdown: writer.clone().recipient(),
        },
    )
    .start();
    topology_ctx.run(TopologyManager::new(
        config,
        clock,
        TopologyPeers {
            out: writer.recipient(),
            store: store.recipient(),
            start_link,
        },
    ));
}

/// Starts one NeighborGossip: how the topology manager starts its links.
fn start_link(setup: NeighborSetup) -> (LinkHandle, LinkControl) {
    let peer = setup.peer.clone();
    let link = NeighborGossip::new(setup).start();
    (
        LinkHandle {
            peer,
            updates: link.clone().recipient(),
            gossip: link.clone().recipient(),
        },
        LinkControl {
            rounds: link.clone().recipient(),
            stop: link.recipient(),
        },
    )
}

/// Runs a node on stdin/stdout until stdin ends.
pub fn run(config: Config) -> std::io::Result<()> {
    let system = System::new();
    system.block_on(async move {
        start(
            config,
            tokio::io::stdin(),
            tokio::io::stdout(),
            Clock::starting_now(),
        );
    });
    system.run()
}
