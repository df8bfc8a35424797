//! One neighbour link's gossip state as a plain struct, without I/O or clocks.
//! Time is a `u64` of milliseconds passed in by the caller. The owner feeds
//! events in (`on_local_update`, `on_peer_message`, `set_round`), calls
//! [`Link::poll`] after each one and again at [`Link::next_deadline`]. A link
//! with nothing due returns `None` from both: it never sends an empty
//! message.
//!
//! A link is made of parts, each with its own tests; a change goes to the
//! part that owns the decision:
//! * [`policy`]: how the link behaves, as the overlay planner gave it (never
//!   changed by the link).
//! * [`outbox`]: which items wait, lie lazy or are in flight, and which of
//!   them go into a batch.
//! * [`acks`]: what the peer is known to hold, and the digest we owe it.
//! * [`schedule`]: the rounds in effect and round changes: when the link may
//!   send.
//! * [`rto`]: the retransmission timeout.
//! * [`delay`]: measured one-way delays from the peer.
//! * [`loss`]: the copies a measured link sends for the loss its peer
//!   reports (the node's measure, kept by the store, lives there too).

pub mod acks;
pub mod delay;
pub mod loss;
pub mod outbox;
pub mod policy;
pub mod rto;
pub mod schedule;

pub use loss::LossCopies;
pub use policy::{Eager, Flush, LinkPolicy, LossyTiming, RoundRole, RtoBounds};
pub use schedule::{align_up, RoundSchedule};

use crate::digest::{origin_node, Digest, Item};
use crate::protocol::{CopyMark, Gossip, RoundChange};
use acks::Acks;
use delay::OneWayDelay;
use outbox::{Outbox, CONFIRM_MARGIN_MS};
use rto::RetransmitTimer;
use std::fmt;
use std::sync::Arc;

/// How much later than the typical delay from the peer an item may reach it
/// before a peer digest that lacks it counts as a loss, on a link with
/// rounds. Small on purpose: a star hub answers a leaf's round batch a
/// linger after it arrives, and a false alarm costs only one duplicate item
/// in a batch that goes anyway. A link that sends at once (fanout's) would
/// send the item in a message of its own, so a late delivery must not look
/// like a loss there: it waits [`outbox::CONFIRM_MARGIN_MS`] instead (under
/// a loaded machine's lateness, the 5 ms margin cost a fast run 0.25
/// msgs/op of such resends).
pub const REPAIR_MARGIN_MS: u64 = 5;

/// A snapshot of a link's backlog and counters, for tracing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// Items due at the next flush.
    pub waiting: usize,
    /// Items held back until the peer's digest shows whether it needs them.
    pub lazy: usize,
    /// Items sent and not yet acknowledged.
    pub in_flight: usize,
    /// Distinct send instants among the in-flight items.
    pub batches_in_flight: usize,
    /// Age of the oldest item this link still holds (0 when none).
    pub oldest_unacked_ms: u64,
    pub rto_ms: u64,
    pub sent_msgs: u64,
    pub resent_items: u64,
    pub received_msgs: u64,
    /// How many copies a batch with items would go in now.
    pub copies: usize,
    /// The loss the peer last reported, in thousandths: the share of its
    /// peers' copies it measures lost (fanout's links; 0 elsewhere).
    pub peer_loss_permille: u64,
    /// How long an acknowledgement of the peer's items may wait now: the
    /// policy's hold, or the shorter one while messages are measurably
    /// lost (None: the link never owes the peer anything).
    pub ack_hold_ms: Option<u64>,
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting={} lazy={} in_flight={} batches_in_flight={} oldest_unacked_ms={} \
             rto_ms={} sent_msgs={} resent_items={} received_msgs={} copies={} \
             peer_loss_permille={} ack_hold_ms={}",
            self.waiting,
            self.lazy,
            self.in_flight,
            self.batches_in_flight,
            self.oldest_unacked_ms,
            self.rto_ms,
            self.sent_msgs,
            self.resent_items,
            self.received_msgs,
            self.copies,
            self.peer_loss_permille,
            match self.ack_hold_ms {
                Some(ms) => ms.to_string(),
                None => "none".to_string(),
            }
        )
    }
}

/// One link to one neighbour, seen from this node.
#[derive(Debug, Clone)]
pub struct Link {
    peer: String,
    /// As the overlay planner gave it; the parts took their settings from it.
    policy: LinkPolicy,
    outbox: Outbox,
    acks: Acks,
    schedule: RoundSchedule,
    rto: RetransmitTimer,
    one_way: OneWayDelay,
    sent_msgs: u64,
    resent_items: u64,
    received_msgs: u64,
    /// When the peer's latest message arrived.
    heard_at: Option<u64>,
    /// The latest instant the link was told of.
    now: u64,
    /// Until when the link repairs eagerly, after a loss (see
    /// [`REPAIR_MODE_MS`]).
    repair_until: Option<u64>,
    /// The last batch was full and more items are due: the next goes at
    /// once, not at the next round.
    more_due: bool,
    /// The share of its peers' copies this node measures lost (see
    /// [`loss`]), told to the peer if the link sends measured copies or has
    /// a lossy timing.
    inbound_loss_permille: u64,
    /// The share of our copies the peer last said it lost, in thousandths.
    peer_loss_permille: u64,
}

/// How long after its start a link that reports its digest and has sent
/// nothing sends it anyway (aligned to its rounds): a restarted node's peers
/// learn from it that it starts over. A busy link's first batch goes earlier
/// and carries the news instead. A fire-and-forget link (fanout's direct
/// links) never greets: its node's reporting link to the hub does, and 24
/// hellos per node would cost more than the news is worth.
pub const HELLO_AFTER_MS: u64 = 500;

/// How long a sure loss (a gap in the peer's digest long after the item
/// should have arrived, or a timeout) puts a link in
/// repair mode: it resends what is still unacknowledged after a round
/// instead of waiting for the timeout, and sends its item batches in the
/// policy's `repair_copies` copies.
pub const REPAIR_MODE_MS: u64 = 10_000;

impl Link {
    pub fn new(me: impl Into<String>, peer: impl Into<String>, policy: LinkPolicy) -> Self {
        Link {
            peer: peer.into(),
            outbox: Outbox::new(me.into(), &policy),
            acks: Acks::new(policy.report_digest_after_ms),
            schedule: RoundSchedule::new(policy.flush, policy.round, policy.latency_hint_ms),
            rto: RetransmitTimer::new(policy.rto),
            one_way: OneWayDelay::default(),
            policy,
            sent_msgs: 0,
            resent_items: 0,
            received_msgs: 0,
            heard_at: None,
            now: 0,
            repair_until: None,
            more_due: false,
            inbound_loss_permille: 0,
            peer_loss_permille: 0,
        }
    }

    /// The link's actor started at `now`: if the link reports its digest,
    /// the peer hears from it within [`HELLO_AFTER_MS`] (and its round) even
    /// if there is nothing to send.
    pub fn greet(&mut self, now: u64) {
        if self.policy.report_digest_after_ms.is_some() {
            self.acks.greet(now, HELLO_AFTER_MS);
        }
    }

    /// Caps batches at `max_items` (see [`outbox::MAX_BATCH_ITEMS`]).
    pub fn limit_batches(&mut self, max_items: usize) {
        self.outbox.limit_batches(max_items);
    }

    /// What the peer holds, replacing what the link knew (see
    /// [`crate::messages::PeerHolds`]): held items are dropped, the
    /// `catch_up` items this link answers for go at the next flush.
    pub fn on_peer_holds(&mut self, now: u64, digest: Digest, catch_up: &[Item]) {
        self.refresh(now);
        self.acks.replace_peer_holds(digest);
        self.outbox.drop_acknowledged(now, self.acks.peer_holds());
        for item in catch_up {
            // The peer's own earlier items: only other nodes hold them now,
            // and a reliable link answers for them whatever its policy.
            let peers_own = self.policy.reliable && origin_node(&item.origin) == self.peer;
            self.outbox
                .offer_catch_up(now, item, self.acks.peer_holds(), peers_own);
        }
    }

    /// A loss at `now`: repair mode for a while.
    fn on_loss(&mut self, now: u64) {
        self.repair_until = Some(now.saturating_add(REPAIR_MODE_MS));
    }

    /// Leaves repair mode once its time is up.
    fn refresh(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.schedule.settle(now);
        if self.repair_until.is_some_and(|until| until <= now) {
            self.repair_until = None;
        }
    }

    /// Whether the link is in repair mode.
    pub fn repairing(&self) -> bool {
        self.repair_until.is_some()
    }

    /// The retransmission timeout in effect: in repair mode at most a
    /// round, unless the peer is gone (then the backed-off timeout paces
    /// the probes).
    fn rto_ms(&self) -> u64 {
        let rto = self.rto.rto();
        match (self.repairing() && !self.gone(), self.schedule.round()) {
            (true, Some(round)) => rto.min(round),
            _ => rto,
        }
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The store took new items (not from this peer) and/or its digest
    /// changed; `sent_at`: when the peer batch that brought the items was
    /// sent (None for a client's), so that items that missed this link's
    /// latest flush need not wait a whole round.
    pub fn on_local_update(
        &mut self,
        now: u64,
        items: &[Item],
        digest: Arc<Digest>,
        sent_at: Option<u64>,
    ) {
        self.refresh(now);
        let mut waiting = false;
        for item in items {
            waiting |= self.outbox.offer(now, item, self.acks.peer_holds());
        }
        // Relayed items that wait for every other round need no late flush.
        if let (true, Some(sent), 1) = (waiting, sent_at, self.policy.relay_every) {
            self.schedule
                .on_late_items(now, sent, self.one_way.median());
        }
        self.acks.on_local_digest(now, digest);
    }

    /// The share of its peers' copies the node measures lost, in
    /// thousandths (see [`loss::LossMeter`]).
    pub fn set_inbound_loss(&mut self, permille: u64) {
        self.inbound_loss_permille = permille;
        self.apply_timing();
    }

    /// The policy's lossy timing if it is in effect: the loss this node
    /// measures or the peer reports calls for more than one copy.
    fn lossy_timing(&self) -> Option<LossyTiming> {
        let lossy = self.policy.lossy?;
        (lossy.copies.copies(self.known_loss_permille()) > 1).then_some(lossy)
    }

    /// The higher of the loss this node measures and the loss the peer
    /// reports: either end may be the one that measures.
    fn known_loss_permille(&self) -> u64 {
        self.inbound_loss_permille.max(self.peer_loss_permille)
    }

    /// Hands the parts the timing in effect (the policy's, or its lossy
    /// timing).
    fn apply_timing(&mut self) {
        if self.policy.lossy.is_none() {
            return;
        }
        let (report_after, ack_items_after, rto, grace) = match self.lossy_timing() {
            Some(l) => (
                l.report_digest_after_ms,
                Some(l.ack_items_after_ms),
                l.rto,
                l.lazy_grace_ms,
            ),
            None => (
                self.policy.report_digest_after_ms,
                None,
                self.policy.rto,
                self.policy.lazy_grace_ms,
            ),
        };
        self.acks.set_holds(report_after, ack_items_after);
        self.rto.set_bounds(rto);
        self.outbox.set_lazy_grace(grace);
    }

    /// The node's arrival estimate for an after-peer link (see
    /// [`RoundSchedule::set_flush_offset`]).
    pub fn set_flush_offset(&mut self, offset_ms: u64) {
        self.schedule.set_flush_offset(offset_ms);
    }

    /// A gossip message from the peer: learn what it holds, drop what it
    /// acknowledged, take a timing sample, and follow its round.
    pub fn on_peer_message(&mut self, now: u64, msg: &Gossip) {
        self.refresh(now);
        self.received_msgs += 1;
        let was_gone = self.gone();
        self.heard_at = Some(now);
        self.one_way.on_message(now, msg.ts);
        self.acks.on_peer_message(now, msg);
        self.peer_loss_permille = msg.loss;
        self.apply_timing();
        if let Some(sample) = self.outbox.drop_acknowledged(now, self.acks.peer_holds()) {
            self.rto.on_sample(sample);
        }
        let margin = match self.policy.flush {
            Flush::Immediate => CONFIRM_MARGIN_MS,
            _ => REPAIR_MARGIN_MS,
        };
        let transit = self.one_way.median().unwrap_or(self.policy.latency_hint_ms) + margin;
        let losses = self
            .outbox
            .mark_lost(now, msg.ts, transit, self.acks.peer_holds());
        if was_gone {
            // What it lacks went to its absence, not to a lossy network:
            // resent, but without repair mode's copies.
            self.repair_until = None;
        } else if losses.confirmed > 0 {
            self.on_loss(now);
        }
        self.rto.on_peer_heard();
        if let Some(change) = msg.round {
            self.schedule.on_peer_round(now, change);
        }
    }

    /// A round change from the node's round planner (see
    /// [`RoundSchedule::set_round`]).
    pub fn set_round(&mut self, change: RoundChange) {
        self.schedule.set_round(change);
    }

    /// The current round length (None for immediate links).
    pub fn round(&self) -> Option<u64> {
        self.schedule.round()
    }

    /// The rounds in effect; the policy's flush is only where they started.
    pub fn schedule(&self) -> &RoundSchedule {
        &self.schedule
    }

    /// Measured one-way delay from the peer: (median, highest) of the recent
    /// samples, or None before the first message.
    pub fn one_way_delay(&self) -> Option<(u64, u64)> {
        Some((self.one_way.median()?, self.one_way.highest()?))
    }

    pub fn policy(&self) -> &LinkPolicy {
        &self.policy
    }

    /// The message due at `now`, if any. Call after every event and at
    /// [`Link::next_deadline`].
    pub fn poll(&mut self, now: u64) -> Option<Gossip> {
        self.refresh(now);
        if !self.more_due && self.next_deadline()? > now {
            return None;
        }
        // A probe of a gone peer carries everything it is owed.
        let rto = if self.gone() { 0 } else { self.rto_ms() };
        let batch = self.outbox.take_batch(now, rto);
        self.more_due = batch.more;
        if batch.timed_out {
            self.rto.on_timeout();
            self.on_loss(now);
        }
        self.schedule.on_send(now);
        self.sent_msgs += 1;
        self.resent_items += batch.resent;
        Some(Gossip {
            // The process's incarnation is the link actor's to stamp.
            inc: 0,
            items: batch.items,
            digest: self.acks.on_send(),
            ts: now,
            round: self.schedule.announcement(),
            // So is the node's hub term.
            term: 0,
            copy: None,
            loss: match (self.policy.loss_copies, self.policy.lossy) {
                (None, None) => 0,
                _ => self.inbound_loss_permille,
            },
        })
    }

    /// When the next message is due (after alignment), or `None` when the
    /// link has nothing to say.
    pub fn next_deadline(&self) -> Option<u64> {
        // From the instant the peer counts as gone, new items and digests
        // wait for the next retransmission, which carries them.
        let gone_from = self.gone_from();
        let before_gone = |at: &u64| gone_from.is_none_or(|from| *at < from);
        // With relayed items on a sub-grid, the acknowledgement of the
        // peer's own items must not wait for them: its clients wait for it.
        let peer_items = match self.policy.relay_every {
            1 => None,
            _ => self.acks.items_owed_since(),
        };
        let every_round = [self.acks.due(), peer_items]
            .into_iter()
            .flatten()
            .filter(before_gone)
            .chain(self.outbox.due_resend(self.rto_ms()))
            .min();
        let one_way = self.one_way.median();
        let relayed = self.outbox.due_fresh().filter(before_gone).map(|at| {
            self.schedule
                .align_every(at, one_way, self.policy.relay_every)
        });
        [
            every_round.map(|at| self.schedule.align(at, one_way)),
            relayed,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the peer counts as gone at the latest instant the link knows.
    fn gone(&self) -> bool {
        self.gone_from().is_some_and(|from| from <= self.now)
    }

    /// From when the peer counts as gone: it has answered nothing for the
    /// policy's `silence_ms` while items were in flight (None: it answers,
    /// nothing is in flight, or the policy never gives up on a peer).
    pub fn gone_from(&self) -> Option<u64> {
        Some(
            self.unanswered_since()?
                .saturating_add(self.policy.silence_ms?),
        )
    }

    /// Whether the last batch was full and another is due at once.
    pub fn has_more(&self) -> bool {
        self.more_due
    }

    /// How many copies of a message just polled to send, if it has items
    /// and the peer is not gone (a probe needs no copies): the policy's
    /// repair copies in repair mode, and at least as many as the loss the
    /// peer measures calls for.
    pub fn copies(&self, msg: &Gossip) -> usize {
        match msg.items.is_empty() {
            true => 1,
            false => self.batch_copies(msg.ts),
        }
    }

    /// How many copies a batch with items sent at `at` goes in.
    fn batch_copies(&self, at: u64) -> usize {
        if self.gone_from().is_some_and(|from| from <= at) {
            return 1;
        }
        let repair = match self.repairing() {
            true => self.policy.repair_copies,
            false => 1,
        };
        let measured = self
            .policy
            .loss_copies
            .map_or(1, |c| c.copies(self.peer_loss_permille));
        let lossy = self
            .policy
            .lossy
            .map_or(1, |l| l.copies.copies(self.known_loss_permille()));
        repair.max(measured).max(lossy).max(1)
    }

    /// The message just polled as it goes on the wire: in [`Link::copies`]
    /// copies, each marked with its index when there are several.
    pub fn wire_copies(&self, msg: Gossip) -> Vec<Gossip> {
        let copies = self.copies(&msg);
        if copies == 1 {
            return vec![msg];
        }
        (1..=copies)
            .map(|i| Gossip {
                copy: Some(CopyMark(i as u32, copies as u32)),
                ..msg.clone()
            })
            .collect()
    }

    /// Since when the peer has been silent while it owes this link an
    /// answer: the later of its latest message and the arrival of the
    /// oldest item in flight. None while nothing is in flight.
    pub fn unanswered_since(&self) -> Option<u64> {
        let oldest = self.outbox.oldest_in_flight()?;
        Some(self.heard_at.map_or(oldest, |heard| heard.max(oldest)))
    }

    /// Whether the link holds nothing: no waiting, lazy or in-flight items.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty()
    }

    /// Messages sent and received so far on this link.
    pub fn message_counts(&self) -> (u64, u64) {
        (self.sent_msgs, self.received_msgs)
    }

    pub fn stats(&self, now: u64) -> LinkStats {
        let backlog = self.outbox.backlog();
        LinkStats {
            waiting: backlog.waiting,
            lazy: backlog.lazy,
            in_flight: backlog.in_flight,
            batches_in_flight: backlog.batches_in_flight,
            oldest_unacked_ms: backlog.oldest_since.map_or(0, |t| now.saturating_sub(t)),
            rto_ms: self.rto.rto(),
            sent_msgs: self.sent_msgs,
            resent_items: self.resent_items,
            received_msgs: self.received_msgs,
            copies: self.batch_copies(now),
            peer_loss_permille: self.peer_loss_permille,
            ack_hold_ms: match self.lossy_timing() {
                Some(lossy) => Some(lossy.ack_items_after_ms),
                None => self.policy.report_digest_after_ms,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Cluster, Transit};
    use proptest::prelude::*;

    const RTO: RtoBounds = RtoBounds {
        initial_ms: 300,
        min_ms: 100,
        max_ms: 2000,
    };

    fn reliable(flush: Flush) -> LinkPolicy {
        LinkPolicy {
            eager: Eager::All,
            lazy_grace_ms: None,
            reliable: true,
            report_digest_after_ms: Some(50),
            flush,
            rto: RTO,
            latency_hint_ms: 100,
            round: RoundRole::Fixed,
            repair_copies: 1,
            loss_copies: None,
            silence_ms: None,
            relay_every: 1,
            lossy: None,
        }
    }

    fn digest_of(items: &[Item]) -> Arc<Digest> {
        let mut d = Digest::default();
        for i in items {
            d.insert(&i.origin, i.seq);
        }
        Arc::new(d)
    }

    fn ack(digest: &Arc<Digest>, ts: u64) -> Gossip {
        Gossip {
            inc: 0,
            items: vec![],
            digest: (**digest).clone(),
            ts,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        }
    }

    /// A fanout-style link: fire and forget, sent at once, copies chosen
    /// from the loss its peer reports.
    fn measured(max: usize) -> LinkPolicy {
        LinkPolicy {
            eager: Eager::Own,
            reliable: false,
            report_digest_after_ms: None,
            flush: Flush::Immediate,
            loss_copies: Some(LossCopies {
                max,
                residual_ppm: 20_000,
            }),
            ..reliable(Flush::Immediate)
        }
    }

    #[test]
    fn a_measured_link_sends_the_copies_its_peers_reported_loss_calls_for() {
        let mut link = Link::new("n0", "n1", measured(4));
        link.set_inbound_loss(150);
        let send = |link: &mut Link, at: u64, seq: u64| {
            let items = [Item::new("n0", seq, seq as i64)];
            link.on_local_update(at, &items, digest_of(&items), None);
            let msg = link.poll(at).expect("sent at once");
            link.wire_copies(msg)
        };
        let once = send(&mut link, 1_000, 1);
        assert_eq!(once.len(), 1, "nothing reported lost yet");
        assert_eq!(once[0].copy, None);
        assert_eq!(once[0].loss, 150, "tells the peer what this node loses");
        // The peer reports a fifth of our copies lost: 0.2^3 ≤ 2%.
        let report = Gossip {
            loss: 200,
            ..ack(&Arc::new(Digest::default()), 1_050)
        };
        link.on_peer_message(1_100, &report);
        let copies = send(&mut link, 1_200, 2);
        let marks: Vec<_> = copies.iter().map(|m| m.copy).collect();
        assert_eq!(
            marks,
            [1, 2, 3].map(|i| Some(CopyMark(i, 3))),
            "three copies, each marked"
        );
        let stats = link.stats(1_250);
        assert_eq!((stats.copies, stats.peer_loss_permille), (3, 200));
        assert!(copies.iter().all(|m| m.items == copies[0].items));
        // Loss beyond what the cap covers: the cap.
        link.on_peer_message(
            1_300,
            &Gossip {
                loss: 900,
                ..report.clone()
            },
        );
        assert_eq!(send(&mut link, 1_400, 3).len(), 4);
        link.on_peer_message(1_500, &Gossip { loss: 0, ..report });
        assert_eq!(send(&mut link, 1_600, 4).len(), 1);
    }

    #[test]
    fn a_link_without_measured_copies_neither_reports_loss_nor_copies_on_it() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        link.set_inbound_loss(150);
        link.on_peer_message(
            1_000,
            &Gossip {
                loss: 500,
                ..ack(&Arc::new(Digest::default()), 950)
            },
        );
        let items = [Item::new("n0", 1, 1)];
        link.on_local_update(1_100, &items, digest_of(&items), None);
        let msg = link.poll(1_100).expect("sent at once");
        assert_eq!(msg.loss, 0);
        assert_eq!(link.wire_copies(msg).len(), 1);
    }

    #[test]
    fn a_link_with_lossy_timing_answers_and_resends_sooner_while_loss_is_measured() {
        let peers_item = |seq: u64| Gossip {
            items: vec![Item::new("n1", seq, seq as i64)],
            ..ack(&Arc::new(Digest::default()), 0)
        };
        let mut link = Link::new("n0", "n1", crate::testkit::fanout_link_to_hub());
        link.on_peer_message(1_000, &peers_item(1));
        assert_eq!(link.next_deadline(), Some(4_000), "no loss: the long hold");
        // This node measures a fifth of its peers' copies lost.
        link.set_inbound_loss(200);
        assert_eq!(link.next_deadline(), Some(1_250), "the short hold");
        assert_eq!(link.stats(1_000).ack_hold_ms, Some(250), "traced");
        let answer = link.poll(1_250).expect("the acknowledgement");
        assert!(answer.items.is_empty());
        assert_eq!(answer.loss, 200, "the peer hears of the loss");
        // Our own item goes in copies and, unanswered, again after the
        // lossy timeout, not after 3.4 s.
        let own = [Item::new("n0", 1, 7)];
        link.on_local_update(2_000, &own, digest_of(&own), None);
        let batch = link.poll(2_000).expect("sent at once");
        assert_eq!(link.wire_copies(batch).len(), 3, "0.2³ ≤ 2%");
        assert_eq!(link.next_deadline(), Some(2_650));
        // The loss is gone on both sides: the policy's timing again.
        link.set_inbound_loss(0);
        assert_eq!(link.next_deadline(), Some(5_400));
        link.on_peer_message(2_100, &peers_item(2));
        assert_eq!(link.next_deadline(), Some(5_100), "the long hold again");
        assert_eq!(link.stats(2_100).ack_hold_ms, Some(3_000));

        // The other end measures nothing itself; the peer's report is
        // enough (a fanout hub hears its leaves').
        let mut hub = Link::new("n1", "n0", crate::testkit::fanout_link_to_hub());
        hub.on_peer_message(
            1_000,
            &Gossip {
                loss: 200,
                ..peers_item(1)
            },
        );
        assert_eq!(hub.next_deadline(), Some(1_250));
        hub.on_peer_message(
            1_100,
            &Gossip {
                loss: 10,
                ..peers_item(2)
            },
        );
        assert_eq!(hub.next_deadline(), Some(4_000), "1% needs one copy");
    }

    #[test]
    fn both_ends_of_a_link_change_rounds_at_the_announced_instant() {
        let mut hub = Link::new(
            "n0",
            "n1",
            LinkPolicy {
                round: RoundRole::Lead,
                ..reliable(Flush::AfterPeer {
                    interval_ms: 200,
                    peer_phase_ms: 0,
                    linger_ms: 10,
                })
            },
        );
        let mut leaf = Link::new(
            "n1",
            "n0",
            LinkPolicy {
                round: RoundRole::Follow,
                ..reliable(Flush::Aligned {
                    interval_ms: 200,
                    phase_ms: 0,
                })
            },
        );
        // Before any change the leader announces its round as in effect.
        let first = Item::new("n0", 1, 5);
        hub.on_local_update(
            1_000,
            std::slice::from_ref(&first),
            digest_of(std::slice::from_ref(&first)),
            None,
        );
        let msg = hub
            .poll(1_110)
            .expect("the hub's round at 1110 (phase 100 + 10)");
        assert_eq!(msg.round, Some(RoundChange(200, 0)));
        leaf.on_peer_message(1_210, &msg);
        assert_eq!(leaf.round(), Some(200));
        assert!(
            leaf.poll(1_400).is_some(),
            "the leaf's acknowledgement round"
        );
        // At 1150 the planner asks for 700 ms rounds from 1800, an instant of
        // the current grid: the new grid is 1800 + 700k, not multiples of 700.
        let change = RoundChange(700, 1_800);
        hub.set_round(change);
        let second = Item::new("n0", 2, 6);
        let both = [first.clone(), second.clone()];
        hub.on_local_update(1_160, std::slice::from_ref(&second), digest_of(&both), None);
        assert_eq!(hub.next_deadline(), Some(1_310), "still the 200 ms rounds");
        let msg = hub.poll(1_310).expect("announcement");
        assert_eq!(msg.round, Some(change));
        leaf.on_peer_message(1_410, &msg);
        assert_eq!(leaf.round(), Some(200), "not yet");
        // A leaf item at 1450 goes at 1600 (old rounds, before the change);
        // one at 1700 waits for the first new round at 1800.
        let mine = Item::new("n1", 1, 7);
        leaf.on_local_update(
            1_450,
            std::slice::from_ref(&mine),
            digest_of(&[first.clone(), second.clone(), mine.clone()]),
            None,
        );
        assert_eq!(leaf.next_deadline(), Some(1_600));
        assert!(leaf.poll(1_600).is_some());
        let later = Item::new("n1", 2, 8);
        leaf.on_local_update(
            1_700,
            std::slice::from_ref(&later),
            digest_of(&[first, second, mine, later.clone()]),
            None,
        );
        assert_eq!(leaf.next_deadline(), Some(1_800));
        assert!(leaf.poll(1_800).is_some());
        assert_eq!(leaf.round(), Some(700));
        // The rounds in effect moved; the planner's policy did not.
        assert_eq!(
            leaf.schedule().flush(),
            Flush::Aligned {
                interval_ms: 700,
                phase_ms: 1_800 % 700
            }
        );
        assert_eq!(
            leaf.policy().flush,
            Flush::Aligned {
                interval_ms: 200,
                phase_ms: 0
            }
        );
        let after = Item::new("n1", 3, 10);
        leaf.on_local_update(
            1_900,
            std::slice::from_ref(&after),
            digest_of(std::slice::from_ref(&after)),
            None,
        );
        assert_eq!(leaf.next_deadline(), Some(2_500), "1800 + 700, not 2100");
        // The hub's rounds moved at the same instant: 1800 + 100 + 10.
        let third = Item::new("n0", 3, 9);
        hub.on_local_update(
            1_850,
            std::slice::from_ref(&third),
            digest_of(std::slice::from_ref(&third)),
            None,
        );
        assert_eq!(hub.next_deadline(), Some(1_910));
        assert_eq!(hub.poll(1_910).expect("new round").round, Some(change));
        assert_eq!(hub.round(), Some(700));
        // A fixed link ignores announcements.
        let mut fixed = Link::new(
            "n2",
            "n0",
            reliable(Flush::Aligned {
                interval_ms: 200,
                phase_ms: 0,
            }),
        );
        fixed.on_peer_message(1_900, &msg);
        assert_eq!(fixed.round(), Some(200));
    }

    #[test]
    fn an_idle_link_sends_nothing_ever() {
        let link = Link::new("n0", "n1", reliable(Flush::Immediate));
        assert_eq!(link.next_deadline(), None);
        let mut link = link;
        assert!(link.poll(0).is_none() && link.poll(1_000_000).is_none());
    }

    #[test]
    fn aligned_link_batches_a_round_into_one_message_at_the_round_instant() {
        let mut link = Link::new(
            "n1",
            "n0",
            reliable(Flush::Aligned {
                interval_ms: 100,
                phase_ms: 30,
            }),
        );
        let a = Item::new("n1", 1, 10);
        let b = Item::new("n1", 2, 20);
        link.on_local_update(
            1005,
            std::slice::from_ref(&a),
            digest_of(std::slice::from_ref(&a)),
            None,
        );
        link.on_local_update(
            1020,
            std::slice::from_ref(&b),
            digest_of(&[a.clone(), b.clone()]),
            None,
        );
        assert_eq!(link.next_deadline(), Some(1030));
        assert!(link.poll(1029).is_none());
        let msg = link.poll(1030).expect("round flush");
        assert_eq!(msg.items, vec![a.clone(), b.clone()]);
        assert_eq!(msg.digest, *digest_of(&[a, b]));
        assert_eq!(msg.ts, 1030);
        assert!(link.poll(1030).is_none(), "one message per round");
    }

    #[test]
    fn retransmits_a_dropped_batch_with_backoff_and_stops_once_acknowledged() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        let a = Item::new("n0", 1, 7);
        let digest = digest_of(std::slice::from_ref(&a));
        link.on_local_update(0, std::slice::from_ref(&a), digest.clone(), None);
        let first = link.poll(0).expect("sent at once");
        assert_eq!(first.items, vec![a.clone()]);
        // The batch is lost; the retransmission comes after the initial RTO.
        assert_eq!(link.next_deadline(), Some(300));
        assert!(link.poll(299).is_none());
        assert_eq!(
            link.poll(300).expect("retransmission").items,
            vec![a.clone()]
        );
        // Backoff doubled the timeout.
        assert_eq!(link.next_deadline(), Some(900));
        assert_eq!(link.stats(900).resent_items, 1);
        // The peer acknowledges through its digest: nothing more is sent.
        link.on_peer_message(450, &ack(&digest, 400));
        assert!(link.is_idle());
        assert_eq!(link.next_deadline(), None);
        assert!(link.poll(10_000).is_none());
    }

    #[test]
    fn karn_samples_only_single_transmissions_and_sets_the_rto() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        let a = Item::new("n0", 1, 7);
        link.on_local_update(
            0,
            std::slice::from_ref(&a),
            digest_of(std::slice::from_ref(&a)),
            None,
        );
        link.poll(0);
        link.on_peer_message(200, &ack(&digest_of(std::slice::from_ref(&a)), 150));
        // srtt 200, rttvar 100: rto = 200 + 4*100.
        assert_eq!(link.stats(200).rto_ms, 600);
        let b = Item::new("n0", 2, 8);
        let d2 = digest_of(&[a.clone(), b.clone()]);
        link.on_local_update(1000, std::slice::from_ref(&b), d2.clone(), None);
        link.poll(1000);
        link.poll(1600).expect("timeout");
        link.on_peer_message(1700, &ack(&d2, 1650));
        // No sample from the retransmitted item; the backoff is reset.
        assert_eq!(link.stats(1700).rto_ms, 600);
    }

    #[test]
    fn acknowledgement_rides_on_the_next_batch() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        // The peer sent an item; the store took it: our digest changed.
        let theirs = Item::new("n1", 1, 5);
        let peer_msg = Gossip {
            inc: 0,
            items: vec![theirs.clone()],
            digest: (*digest_of(std::slice::from_ref(&theirs))).clone(),
            ts: 0,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        };
        link.on_peer_message(10, &peer_msg);
        link.on_local_update(10, &[], digest_of(std::slice::from_ref(&theirs)), None);
        // A digest-only acknowledgement is owed after the ack delay...
        assert_eq!(link.next_deadline(), Some(60));
        // ...but a batch of our own goes first and carries it.
        let mine = Item::new("n0", 1, 6);
        link.on_local_update(
            20,
            std::slice::from_ref(&mine),
            digest_of(&[theirs.clone(), mine.clone()]),
            None,
        );
        let msg = link.poll(20).expect("batch");
        assert_eq!(msg.items, vec![mine.clone()]);
        assert!(msg.digest.covers("n1", 1), "ack piggybacked");
        // Only the retransmission timer remains: no separate ack message.
        assert_eq!(link.next_deadline(), Some(20 + RTO.initial_ms));
    }

    #[test]
    fn a_digest_only_message_acknowledges_when_nothing_else_goes() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        let theirs = Item::new("n1", 1, 5);
        link.on_local_update(10, &[], digest_of(std::slice::from_ref(&theirs)), None);
        assert!(link.poll(59).is_none());
        let msg = link.poll(60).expect("digest-only ack");
        assert!(msg.items.is_empty() && msg.digest.covers("n1", 1));
        assert_eq!(link.next_deadline(), None);
    }

    #[test]
    fn an_unchanged_digest_owes_nothing() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        link.on_local_update(0, &[], Arc::new(Digest::default()), None);
        assert_eq!(link.next_deadline(), None);
    }

    #[test]
    fn never_sends_what_the_peer_holds() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        let a = Item::new("n2", 1, 1);
        link.on_peer_message(0, &ack(&digest_of(std::slice::from_ref(&a)), 0));
        link.on_local_update(
            5,
            std::slice::from_ref(&a),
            digest_of(std::slice::from_ref(&a)),
            None,
        );
        let msg = link.poll(55).expect("digest only");
        assert!(msg.items.is_empty());
    }

    #[test]
    fn after_peer_rounds_follow_the_measured_one_way_delay() {
        let policy = reliable(Flush::AfterPeer {
            interval_ms: 1000,
            peer_phase_ms: 0,
            linger_ms: 10,
        });
        let mut link = Link::new("n0", "n1", policy);
        let a = Item::new("n0", 1, 1);
        link.on_local_update(
            5000,
            std::slice::from_ref(&a),
            digest_of(std::slice::from_ref(&a)),
            None,
        );
        // No samples yet: the latency hint (100) places the round at +110.
        assert_eq!(link.next_deadline(), Some(5110));
        link.on_peer_message(5040, &ack(&Arc::new(Digest::default()), 5000));
        assert_eq!(link.next_deadline(), Some(5050));
    }

    #[test]
    fn lazy_items_are_repaired_only_if_the_peer_lacks_them_after_the_grace_or_a_hop() {
        let policy = LinkPolicy {
            eager: Eager::Own,
            lazy_grace_ms: Some(1000),
            ..reliable(Flush::Immediate)
        };
        let mut link = Link::new("hub", "b", policy);
        let from_a1 = Item::new("a", 1, 11);
        let from_a2 = Item::new("a", 2, 12);
        let items = [from_a1.clone(), from_a2.clone()];
        link.on_local_update(0, &items, digest_of(&items), None);
        // Not eager: only the owed digest goes out.
        let msg = link.poll(50).expect("digest");
        assert!(msg.items.is_empty());
        assert_eq!(link.stats(50).lazy, 2);
        // The leaf reports that it got a1 directly from its origin, in a
        // message sent too soon to tell whether a2 missed the hop.
        link.on_peer_message(60, &ack(&digest_of(std::slice::from_ref(&from_a1)), 60));
        assert_eq!(link.next_deadline(), Some(1000), "the grace");
        // A later one still lacks a2: it goes at once.
        link.on_peer_message(600, &ack(&digest_of(std::slice::from_ref(&from_a1)), 590));
        assert!(link.next_deadline().is_some_and(|at| at <= 600));
        let repair = link.poll(600).expect("repair");
        assert_eq!(repair.items, vec![from_a2.clone()]);
        assert_eq!(link.stats(600).in_flight, 1, "repairs are reliable");
        link.on_peer_message(800, &ack(&digest_of(&items), 800));
        assert!(link.is_idle());
        // Without a later digest, a lazy item goes at the grace.
        let from_a3 = [Item::new("a", 3, 13)];
        link.on_local_update(900, &from_a3, digest_of(&from_a3), None);
        let owed = link.poll(950).expect("the owed digest");
        assert!(owed.items.is_empty());
        assert_eq!(link.next_deadline(), Some(1900));
    }

    #[test]
    fn a_long_backlog_drains_oldest_first_in_bounded_batches_at_once() {
        let mut link = Link::new(
            "n0",
            "n1",
            reliable(Flush::Aligned {
                interval_ms: 100,
                phase_ms: 0,
            }),
        );
        link.limit_batches(3);
        let items: Vec<Item> = (1..=7).map(|s| Item::new("n2", s, s as i64)).collect();
        // Arrival order is not key order: n2/7 arrived first.
        link.on_local_update(1_010, &items[6..], digest_of(&items), None);
        link.on_local_update(1_020, &items[..6], digest_of(&items), None);
        let mut batches = Vec::new();
        while let Some(msg) = link.poll(1_100) {
            batches.push(msg.items.iter().map(|i| i.seq).collect::<Vec<_>>());
            if !link.has_more() {
                break;
            }
        }
        assert_eq!(batches, [vec![7, 1, 2], vec![3, 4, 5], vec![6]]);
        assert!(link.poll(1_100).is_none(), "drained");
        assert_eq!(link.stats(1_100).in_flight, 7);
    }

    #[test]
    fn a_restarted_peer_gets_what_it_lacks_of_what_the_link_answers_for() {
        // A fanout hub's link: its own items eagerly, others lazily.
        let mut link = Link::new(
            "n1",
            "n0",
            LinkPolicy {
                eager: Eager::Own,
                lazy_grace_ms: Some(5_000),
                ..reliable(Flush::Immediate)
            },
        );
        let mine = Item::new("n1@3", 1, 10);
        let relayed = Item::new("n2@4", 1, 20);
        let both = [mine.clone(), relayed.clone()];
        link.on_local_update(0, std::slice::from_ref(&mine), digest_of(&both), None);
        assert_eq!(
            link.poll(0).expect("own item").items,
            std::slice::from_ref(&mine)
        );
        link.on_peer_message(100, &ack(&digest_of(&both), 90));
        assert!(link.is_idle());
        // The peer restarted and holds nothing: everything goes again, at
        // once (not after the lazy grace).
        link.on_peer_holds(200, Digest::default(), &both);
        let msg = link.poll(200).expect("catch-up");
        assert_eq!(msg.items, [mine.clone(), relayed.clone()]);
        link.on_peer_message(300, &ack(&digest_of(&both), 290));
        assert!(link.is_idle());
        // A fanout direct link answers only for its own node's items: the
        // restarted peer gets the others' from their own links.
        let mut direct = Link::new(
            "n1",
            "n2",
            LinkPolicy {
                eager: Eager::Own,
                reliable: false,
                ..reliable(Flush::Immediate)
            },
        );
        direct.on_peer_holds(200, Digest::default(), &both);
        assert_eq!(direct.poll(200).expect("catch-up").items, [mine]);
        // A fanout leaf's reliable link to a restarted hub also gives the
        // hub back the hub's own earlier items (nobody else answers for them).
        let mut to_hub = Link::new(
            "n1",
            "n0",
            LinkPolicy {
                eager: Eager::Own,
                ..reliable(Flush::Immediate)
            },
        );
        let hubs = Item::new("n0@2", 1, 30);
        to_hub.on_peer_holds(200, Digest::default(), &[relayed, hubs.clone()]);
        assert_eq!(to_hub.poll(200).expect("catch-up").items, [hubs]);
    }

    #[derive(Debug, Clone)]
    enum Action {
        Broadcast(usize, i64),
        Deliver(usize),
        Duplicate(usize),
        Drop(usize),
        Advance(u64),
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            (0usize..2, 0i64..1000).prop_map(|(n, v)| Action::Broadcast(n, v)),
            any::<usize>().prop_map(Action::Deliver),
            any::<usize>().prop_map(Action::Duplicate),
            any::<usize>().prop_map(Action::Drop),
            (1u64..700).prop_map(Action::Advance),
        ]
    }

    fn flush() -> impl Strategy<Value = Flush> {
        prop_oneof![
            Just(Flush::Immediate),
            (1u64..400, 0u64..400).prop_map(|(interval_ms, phase_ms)| Flush::Aligned {
                interval_ms,
                phase_ms
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Under any mix of drops, duplicates and reordering, once the network
        /// behaves both ends hold every value, both backlogs are empty and
        /// idle, and no item was ever sent after the peer acknowledged it.
        #[test]
        fn two_ends_converge_under_drops_duplicates_and_reordering(
            actions in proptest::collection::vec(action(), 0..80),
            flushes in (flush(), flush()),
            ack_delays in (0u64..500, 0u64..500),
        ) {
            let ids = ["n0", "n1"];
            let mut cluster = Cluster::new(&ids, 1_000_000, 5, |me| {
                let (peer, flush, ack) = if me == "n0" {
                    ("n1", flushes.0, ack_delays.0)
                } else {
                    ("n0", flushes.1, ack_delays.1)
                };
                vec![(peer.to_string(), LinkPolicy {
                    report_digest_after_ms: Some(ack),
                    ..reliable(flush)
                })]
            });
            for a in actions {
                match a {
                    Action::Broadcast(n, v) => cluster.broadcast(ids[n], v),
                    Action::Deliver(i) | Action::Duplicate(i) | Action::Drop(i)
                        if cluster.in_transit.is_empty() => { let _ = i; }
                    Action::Deliver(i) => {
                        let i = i % cluster.in_transit.len();
                        let t = cluster.in_transit.remove(i);
                        cluster.deliver(t);
                    }
                    Action::Duplicate(i) => {
                        let i = i % cluster.in_transit.len();
                        let t: Transit = cluster.in_transit[i].clone();
                        cluster.deliver(t);
                    }
                    Action::Drop(i) => {
                        let i = i % cluster.in_transit.len();
                        cluster.in_transit.remove(i);
                    }
                    Action::Advance(ms) => {
                        cluster.now += ms;
                        cluster.poll_all();
                    }
                }
            }
            let healed_at = cluster.now;
            cluster.run(healed_at + 600_000, |_| false);
            prop_assert!(cluster.converged(), "not converged: {:#?}", cluster.nodes);
            prop_assert_eq!(cluster.next_deadline(), None);
            prop_assert!(cluster.in_transit.is_empty());
            prop_assert!(cluster.violations.is_empty(), "{:?}", cluster.violations);
        }
    }

    /// Sends whatever `link` has due at each millisecond of `from..to`;
    /// returns (instant, message, copies) of each.
    fn run(link: &mut Link, from: u64, to: u64) -> Vec<(u64, Gossip, usize)> {
        let mut sent = Vec::new();
        for now in from..to {
            while let Some(msg) = link.poll(now) {
                let copies = link.copies(&msg);
                sent.push((now, msg, copies));
            }
        }
        sent
    }

    #[test]
    fn a_gone_peer_gets_no_rounds_only_probes_until_it_answers() {
        let mut link = Link::new(
            "n0",
            "n1",
            LinkPolicy {
                repair_copies: 2,
                silence_ms: Some(1_500),
                relay_every: 1,
                ..reliable(Flush::Aligned {
                    interval_ms: 100,
                    phase_ms: 0,
                })
            },
        );
        // A new item every 50 ms; the peer answers nothing.
        let mut items = Vec::new();
        let mut sent = Vec::new();
        for k in 0..200u64 {
            let now = 1_000 + 50 * k;
            items.push(Item::new("n0", k + 1, k as i64));
            link.on_local_update(now, &items[k as usize..], digest_of(&items), None);
            sent.extend(run(&mut link, now, now + 50));
        }
        let gone_from = link
            .gone_from()
            .expect("gone: nothing heard, items in flight");
        assert!((2_500..2_600).contains(&gone_from), "{gone_from}");
        let (before, after): (Vec<_>, Vec<_>) = sent.iter().partition(|(at, _, _)| *at < gone_from);
        assert!(before.len() >= 14, "rounds until it counts as gone");
        // Afterwards only retransmissions, each with everything due, at the
        // backed-off timeout (at most 2 s here), in one copy.
        assert!(
            after.len() <= 5 && !after.is_empty(),
            "probes over 8.5 s: {:?}",
            after.iter().map(|(at, _, _)| at).collect::<Vec<_>>()
        );
        assert!(after.iter().all(|(_, _, copies)| *copies == 1));
        let last_probe = &after.last().unwrap().1;
        assert!(last_probe.items.len() > 100, "a probe carries the backlog");
        // The peer answers (holding nothing): rounds resume at once, and
        // its absence's timeouts leave no repair mode (copies) behind.
        link.on_peer_message(11_000, &ack(&Arc::new(Digest::default()), 10_950));
        assert_eq!(link.gone_from().map(|from| from > 11_000), Some(true));
        assert!(!link.repairing());
        items.push(Item::new("n0", 201, 201));
        link.on_local_update(11_000, &items[200..], digest_of(&items), None);
        let next = run(&mut link, 11_000, 11_101);
        assert!(!next.is_empty(), "the next round goes");
    }

    /// A star hub's link to a leaf (rounds at 20 mod 100) relaying an item
    /// every 50 ms from 1000 to 2000, the leaf acknowledging each message
    /// at once and sending an item of its own at 1_430; what it sends.
    fn relaying_hub(relay_every: u64) -> Vec<(u64, Gossip, usize)> {
        let mut link = Link::new(
            "n0",
            "n1",
            LinkPolicy {
                relay_every,
                report_digest_after_ms: Some(1_500),
                ..reliable(Flush::AfterPeer {
                    interval_ms: 100,
                    peer_phase_ms: 0,
                    linger_ms: 10,
                })
            },
        );
        link.set_flush_offset(20);
        let mut held = Vec::new();
        let mut sent = Vec::new();
        for now in 1_000..2_000u64 {
            if now % 50 == 0 {
                held.push(Item::new("n2", now / 50, now as i64));
                let new = &held[held.len() - 1..];
                link.on_local_update(now, new, digest_of(&held), None);
            }
            if now == 1_430 {
                let leafs = Item::new("n1", 1, -1);
                held.push(leafs.clone());
                let mut msg = ack(&Arc::new(Digest::default()), now - 100);
                msg.items.push(leafs);
                link.on_peer_message(now, &msg);
                link.on_local_update(now, &[], digest_of(&held), None);
            }
            for (at, msg, copies) in run(&mut link, now, now + 1) {
                let mut holds = Digest::default();
                for item in &msg.items {
                    holds.insert(&item.origin, item.seq);
                }
                link.on_peer_message(at + 1, &ack(&Arc::new(holds), at));
                sent.push((at, msg, copies));
            }
        }
        sent
    }

    #[test]
    fn a_hub_relays_every_other_round_but_acknowledges_a_leafs_items_at_the_next() {
        let instants = |sent: &[(u64, Gossip, usize)]| sent.iter().map(|s| s.0).collect::<Vec<_>>();
        // Every round when relaying every round.
        let every = relaying_hub(1);
        assert_eq!(
            instants(&every),
            [1_020, 1_120, 1_220, 1_320, 1_420, 1_520, 1_620, 1_720, 1_820, 1_920]
        );
        // Every other round (20 mod 200), and the round right after the
        // leaf's items arrived (1_520), which takes the relayed items along.
        let other = relaying_hub(2);
        assert_eq!(instants(&other), [1_020, 1_220, 1_420, 1_520, 1_620, 1_820]);
        assert!(other.iter().all(|(_, msg, _)| !msg.items.is_empty()));
        let at_1520 = &other[3].1;
        assert_eq!(at_1520.items.len(), 2, "1_450 and 1_500 ride along");
    }
}
