//! How one link behaves, as the overlay planner chooses it per link. Plain
//! data: a [`Link`](super::Link) takes its parts' settings from it at start
//! and never changes it (the rounds in effect live in its
//! [`RoundSchedule`](super::RoundSchedule)).

use super::loss::LossCopies;

/// Which new items a link sends at its next flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eager {
    /// Every item the peer is not known to have.
    All,
    /// Only items this node originated.
    Own,
    /// None (items can still go lazily, see [`LinkPolicy::lazy_grace_ms`]).
    Nothing,
}

/// When a link may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// As soon as something is due.
    Immediate,
    /// Only at instants t ≡ phase (mod interval) of the shared clock.
    Aligned { interval_ms: u64, phase_ms: u64 },
    /// Aligned rounds that start just after the peer's round has arrived:
    /// phase = peer's phase + measured one-way delay + linger.
    AfterPeer {
        interval_ms: u64,
        peer_phase_ms: u64,
        linger_ms: u64,
    },
}

/// Who sets an aligned link's round length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundRole {
    /// The policy's interval, always.
    Fixed,
    /// This end may be told a new length (by the node's round planner) and
    /// announces its current one in every message (an auto-tuned star hub).
    Lead,
    /// This end adopts the length the peer announces (an auto-tuned leaf).
    Follow,
}

/// Bounds of the retransmission timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtoBounds {
    /// Used until the first acknowledgement sample.
    pub initial_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
}

/// A reliable link's timing while the network measurably loses messages:
/// shorter holds instead of the policy's, so that a lost batch or a lost
/// acknowledgement is repaired within a few hundred milliseconds, not after
/// a timeout floored at a hold of seconds. In effect while the loss this
/// node measures, or the loss the peer reports, calls for more than one
/// copy of a batch ([`LossyTiming::copies`]); both ends then agree, because
/// the measuring end tells the other in every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossyTiming {
    /// Replaces [`LinkPolicy::report_digest_after_ms`].
    pub report_digest_after_ms: Option<u64>,
    /// How long an acknowledgement of items the peer sent may wait (its
    /// retransmission timeout rests on it).
    pub ack_items_after_ms: u64,
    /// Replaces [`LinkPolicy::rto`] (floored at the peer's
    /// `ack_items_after_ms`).
    pub rto: RtoBounds,
    /// Replaces [`LinkPolicy::lazy_grace_ms`].
    pub lazy_grace_ms: Option<u64>,
    /// The copies a batch with items goes in for the loss, and whether
    /// the loss is high enough for this timing at all.
    pub copies: LossCopies,
}

/// How one link behaves; chosen per link by the overlay planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPolicy {
    pub eager: Eager,
    /// An item not sent eagerly is sent once it has been here this long and
    /// the peer's latest digest still lacks it. `None`: never.
    pub lazy_grace_ms: Option<u64>,
    /// Sent items stay in flight until the peer's digest covers them and are
    /// retransmitted on timeout. Otherwise: fire and forget.
    pub reliable: bool,
    /// When our digest changed and no message went out for this long, send a
    /// digest-only message (this is how the peer gets acknowledged when we
    /// have nothing else to say). `None`: never owe the peer a digest.
    pub report_digest_after_ms: Option<u64>,
    /// The rounds the link starts with.
    pub flush: Flush,
    pub rto: RtoBounds,
    /// One-way delay assumed until the link has measured some.
    pub latency_hint_ms: u64,
    pub round: RoundRole,
    /// How many copies of a batch with items the link sends while in repair
    /// mode (after a loss), where one lost batch costs the peer a round or
    /// more (1: no extra copies).
    pub repair_copies: usize,
    /// Copies chosen from the loss the peer measures on what reaches it
    /// (see [`super::loss`]), whatever the repair mode; `None`: the peer
    /// does not measure and every batch goes once outside repair mode.
    pub loss_copies: Option<LossCopies>,
    /// How long the peer may answer nothing while items are in flight
    /// before the link takes it for gone (crashed, paused, cut off): it then
    /// stops sending it rounds and only probes it, with everything due, at
    /// its retransmission timeout, in one copy. `None`: never.
    pub silence_ms: Option<u64>,
    /// Items this link only relays (and new items of its own node) go at
    /// every `relay_every`-th round instant; an acknowledgement of the
    /// peer's own items still goes at the next round (1: every round). A
    /// star hub's links under durable acknowledgements (see
    /// `GossipConfig::hub_relay_rounds`).
    pub relay_every: u64,
    /// The timing that replaces the policy's while messages are measurably
    /// lost (`None`: the policy's timing always).
    pub lossy: Option<LossyTiming>,
}
