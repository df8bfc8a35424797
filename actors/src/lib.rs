//! The actors a broadcast-node is made of, and the plain logic they run.
//!
//! # Map
//!
//! Actors (one owner per resource, typed messages, no shared mutable state;
//! each holds only [`Recipient`]s of the others, wired up by [`start`]):
//! * [`stdin_reader`]: StdinReader, stdin as a line stream; parses and routes
//!   every request; answers bad input; orderly end at EOF.
//! * [`stdout_writer`]: StdoutWriter, the only writer of stdout.
//! * [`store`]: MessageStore, the actor around [`store_core`].
//! * [`topology`]: TopologyManager, init/topology, the overlay, one
//!   NeighborGossip per neighbour; carries out the [`autotune`] planner's
//!   actions.
//! * [`neighbor`]: NeighborGossip, the actor around one [`link::Link`]: its
//!   timer, sends and backlog trace.
//! * [`messages`]: every message between actors, grouped by receiver, with
//!   the sender → receiver table.
//!
//! Plain logic (no actix, time passed in, unit-tested next to its code):
//! * [`store_core`]: what a node holds; broadcast, merge, what each link hears.
//! * [`link`]: one link, in parts: [`link::outbox`] (which items, what goes
//!   into a batch), [`link::acks`] (digests both ways), [`link::schedule`]
//!   (when the link may send, round changes), [`link::rto`],
//!   [`link::delay`], [`link::policy`], [`link::loss`] (the loss the node
//!   measures on fanout's direct links, and the copies it calls for).
//! * [`arrivals`]: when a star hub flushes: the spread of the leaves' round
//!   batches as they arrive.
//! * [`autotune`]: the auto-tuning planner (round changes, one overlay
//!   switch) as a state machine.
//! * [`overlay`]: which neighbours, with which link policy; the auto-tuning
//!   model of a star round.
//! * [`protocol`]: Maelstrom's envelope, typed bodies, closed replies, error
//!   codes, bad-input classification.
//! * [`digest`]: items (origin, seq, value) and the per-origin digest that
//!   acknowledges them.
//! * [`config`]: knobs, profiles, command-line and environment parsing.
//! * [`clock`]: the shared millisecond clock.
//! * `testkit` (tests only): a cluster of store cores and links on a
//!   simulated network; a recording actor.
//!
//! # Where a change goes
//!
//! * A new request type or wire field: [`protocol`], then the route in
//!   [`stdin_reader`] and a message in [`messages`] for the actor that owns
//!   it.
//! * A new message between actors: [`messages`] (in its receiver's group and
//!   the table), a `Recipient` for the sender, the wiring in [`start`].
//! * What a node keeps or how it takes values and gossip: [`store_core`].
//! * What goes into a batch, eagerly, lazily or again: [`link::outbox`];
//!   acknowledgements: [`link::acks`]; when a link may send and how rounds
//!   change: [`link::schedule`]; the retransmission timeout: [`link::rto`];
//!   delay samples: [`link::delay`]; the order of these per event: [`link`].
//! * Who links to whom and with which policy: [`overlay`].
//! * When a star hub flushes after its leaves' batches: [`arrivals`].
//! * How auto-tuning reacts to measurements: [`autotune`]; how its actions
//!   reach the links: [`topology`].
//! * A new knob: [`config`] (and docs/node.md, README).

pub mod arrivals;
pub mod autotune;
pub mod clock;
pub mod config;
pub mod digest;
pub mod link;
pub mod messages;
pub mod neighbor;
pub mod overlay;
pub mod protocol;
pub mod stall;
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
use protocol::client_reply_window_ms;
use stdin_reader::{ReplyDeadlines, Routes, StdinReader};
use stdout_writer::StdoutWriter;
use store::{MessageStore, StoreSetup};
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
    // The process start tells this run of the node from an earlier one
    // that was killed: items and gossip carry it.
    let incarnation = clock.now_ms();
    let store = MessageStore::new(
        writer.clone().recipient(),
        StoreSetup::new(&config, clock, incarnation),
    )
    .start();
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
            terms: topology.clone().recipient(),
            out: writer.clone().recipient(),
            drain: vec![topology.clone().recipient(), store.clone().recipient()],
            shutdown: writer.clone().recipient(),
        },
        ReplyDeadlines {
            clock,
            window_ms: client_reply_window_ms(config.gossip.latency_hint_ms),
        },
    )
    .start();
    topology_ctx.run(TopologyManager::new(
        config,
        clock,
        incarnation,
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
    let meters_loss = setup.policy.loss_copies.is_some();
    let link = NeighborGossip::new(setup).start();
    (
        LinkHandle {
            peer,
            updates: link.clone().recipient(),
            gossip: link.clone().recipient(),
            holds: link.clone().recipient(),
            meters_loss,
        },
        LinkControl {
            rounds: link.clone().recipient(),
            flush_offset: link.clone().recipient(),
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
