//! Every message the node's actors send each other, grouped by receiver, and
//! the handles (bundles of [`Recipient`]s) an actor is given to reach
//! another. Actor modules import this module, never each other: who talks to
//! whom is wired up in `lib.rs`.
//!
//! | message | sender | receiver |
//! |---|---|---|
//! | [`Outbound`] | StdinReader (error replies), MessageStore, TopologyManager, NeighborGossip | StdoutWriter |
//! | [`Shutdown`] | StdinReader (at end of input) | StdoutWriter |
//! | [`Joined`] | StdinReader (on `init`) | MessageStore |
//! | [`ClientBroadcast`], [`ClientRead`] | StdinReader | MessageStore |
//! | [`Merge`] | StdinReader (every gossip message) | MessageStore |
//! | [`LinksChanged`] | TopologyManager | MessageStore |
//! | [`InitRequest`], [`TopologyRequest`] | StdinReader | TopologyManager |
//! | [`DelayReport`] | NeighborGossip (round-leading link) | TopologyManager |
//! | [`ArrivalReport`] | NeighborGossip (after-peer link: a star hub's) | TopologyManager |
//! | [`OverlayFrom`] | NeighborGossip (round-following link) | TopologyManager |
//! | [`HeardTerm`] | StdinReader (every gossip and hub message) | TopologyManager |
//! | [`PeerSilent`] | NeighborGossip (a star leaf's link to its hub) | TopologyManager |
//! | [`Drain`] | StdinReader (at end of input) | MessageStore, TopologyManager |
//! | [`LocalUpdate`] | MessageStore | NeighborGossip |
//! | [`PeerGossip`] | MessageStore (after merging) | NeighborGossip |
//! | [`PeerHolds`] | MessageStore (a new link; a restarted peer) | NeighborGossip |
//! | [`SetRound`], [`SetFlushOffset`], [`StopLink`] | TopologyManager | NeighborGossip |

use crate::clock::Clock;
use crate::digest::{Digest, Item};
use crate::link::LinkPolicy;
use crate::protocol::{Gossip, OutBody, ReplyTo, RoundChange};
use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

// --- to the StdoutWriter ---

/// One message to write.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Outbound {
    pub src: String,
    pub dest: String,
    pub body: OutBody,
}

impl Outbound {
    /// The reply to a request, sent from the node id the request addressed.
    pub fn reply(to: &ReplyTo, body: OutBody) -> Self {
        Outbound {
            src: to.node.clone(),
            dest: to.client.clone(),
            body,
        }
    }
}

/// Input has ended: flush what is written and stop the System.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

// --- to the MessageStore ---

/// This node's id and cluster are known (from `init`): it may now
/// originate items and check gossip.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Joined {
    pub node_id: String,
    pub node_ids: Vec<String>,
}

/// A client's `broadcast`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ClientBroadcast {
    pub reply_to: ReplyTo,
    pub value: i64,
}

/// A client's `read`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ClientRead {
    pub reply_to: ReplyTo,
}

/// A gossip message from a peer. The store takes its items first and then
/// hands the message to the peer's link (if there is one yet), so every
/// request read after it on stdin sees its values.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Merge {
    pub from: String,
    pub gossip: Gossip,
}

/// Links started and stopped (a replaced link is in both).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LinksChanged {
    pub added: Vec<LinkHandle>,
    pub removed: Vec<String>,
}

/// How the store reaches one link's actor.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    pub peer: String,
    pub updates: Recipient<LocalUpdate>,
    pub gossip: Recipient<PeerGossip>,
    pub holds: Recipient<PeerHolds>,
    /// The link sends measured copies: the store measures what its peer's
    /// copies lose (see `link::loss`).
    pub meters_loss: bool,
}

// --- to the TopologyManager ---

/// Maelstrom's `init`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct InitRequest {
    pub reply_to: ReplyTo,
    pub node_id: String,
    pub node_ids: Vec<String>,
}

/// Maelstrom's `topology`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TopologyRequest {
    pub reply_to: ReplyTo,
    pub topology: BTreeMap<String, Vec<String>>,
}

/// A round-leading link's measured one-way delay from its peer: the median
/// and the highest of its recent samples, ms.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct DelayReport {
    pub peer: String,
    pub median_ms: u64,
    pub highest_ms: u64,
}

/// An after-peer link's peer sent its round batch at the round instant
/// `round_at`; it arrived `offset_ms` later.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ArrivalReport {
    pub round_at: u64,
    pub offset_ms: u64,
}

/// The hub's announcement that measured delays call for the other overlay,
/// heard by a leaf: on a fanout link, star rounds of the given length from
/// the given instant; on a star link, a zero length: fanout from then.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct OverlayFrom(pub RoundChange);

/// A peer's message carried its hub term (0 when it carried none).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct HeardTerm {
    pub from: String,
    pub term: u64,
}

/// A link's peer has answered nothing for the link's silence bound while
/// the link had items in flight: sent once per link by a star leaf's link
/// to the hub of hub term `term`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PeerSilent {
    pub peer: String,
    pub term: u64,
    pub silent_ms: u64,
}

// --- to the MessageStore and the TopologyManager ---

/// Answered once every message sent to the actor before it is handled.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Drain;

// --- to a NeighborGossip ---

/// New items for this link (none when they came from this link's peer) and
/// the store's digest after taking them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LocalUpdate {
    pub items: Arc<[Item]>,
    pub digest: Arc<Digest>,
    /// When the peer batch that brought the items was sent (the earliest,
    /// if several); None for a client's value or a new link's start.
    pub sent_at: Option<u64>,
    /// The share of its peers' copies the node measures lost, in
    /// thousandths (see `link::loss`).
    pub inbound_loss_permille: u64,
}

/// A gossip message from this link's peer, after the store has merged its
/// items (so a read that arrives after it on stdin already sees them).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PeerGossip(pub Gossip);

/// What the peer holds, from the store's record of what it last showed,
/// replacing the link's view of it: a new link starts from it, and after
/// the peer restarted (a new incarnation) it is all the restarted peer
/// holds. `catch_up`: items the peer lacks, sent at the next flush whatever
/// the link's eager policy (a restarted peer's history).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PeerHolds {
    pub digest: Digest,
    pub catch_up: Arc<[Item]>,
}

/// A round change from the node's round planner (auto-tuned star hub): the
/// new length and the instant it takes effect.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetRound(pub RoundChange);

/// How long after the leaves' round instant an after-peer link flushes
/// (the node's arrival estimate, see `arrivals`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetFlushOffset(pub u64);

/// The link is no longer part of the overlay.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopLink;

/// Everything a NeighborGossip is started with.
pub struct NeighborSetup {
    pub me: String,
    /// This process's incarnation, stamped on every gossip message.
    pub incarnation: u64,
    pub peer: String,
    pub policy: LinkPolicy,
    pub clock: Clock,
    pub trace_interval_ms: u64,
    pub out: Recipient<Outbound>,
    /// Where a round-leading link reports its measured one-way delay.
    pub delays: Option<Recipient<DelayReport>>,
    /// Where a round-following link passes on the hub's switch of overlay.
    pub switches: Option<Recipient<OverlayFrom>>,
    /// Where an after-peer link reports when its peer's round batches
    /// arrive.
    pub arrivals: Option<Recipient<ArrivalReport>>,
    /// The node's hub term, stamped on every gossip message.
    pub term: u64,
    /// Where a star leaf's link to its hub reports the hub silent (after
    /// its policy's `silence_ms`).
    pub silence: Option<Recipient<PeerSilent>>,
}

/// How the topology manager steers a link actor it started.
#[derive(Debug, Clone)]
pub struct LinkControl {
    pub rounds: Recipient<SetRound>,
    pub flush_offset: Recipient<SetFlushOffset>,
    pub stop: Recipient<StopLink>,
}

/// Starts one link actor: the store's handle to it and the topology
/// manager's control of it.
pub type StartLink = fn(NeighborSetup) -> (LinkHandle, LinkControl);
