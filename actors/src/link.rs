//! One neighbour link's gossip state as a plain struct, without I/O or clocks:
//! which items wait to be sent, which are in flight, what the peer is known to
//! hold, when the next message is due, and the retransmission timer.
//!
//! Time is a `u64` of milliseconds passed in by the caller. The owner feeds
//! events in (`on_local_update`, `on_peer_message`), calls [`Link::poll`] after
//! each one and again at [`Link::next_deadline`]. A link with nothing due
//! returns `None` from both: it never sends an empty message.

use crate::digest::{Digest, Item, ItemKey};
use crate::protocol::{Gossip, RoundChange};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

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
    pub flush: Flush,
    pub rto: RtoBounds,
    /// One-way delay assumed until the link has measured some.
    pub latency_hint_ms: u64,
    pub round: RoundRole,
}

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
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting={} lazy={} in_flight={} batches_in_flight={} oldest_unacked_ms={} \
             rto_ms={} sent_msgs={} resent_items={} received_msgs={}",
            self.waiting,
            self.lazy,
            self.in_flight,
            self.batches_in_flight,
            self.oldest_unacked_ms,
            self.rto_ms,
            self.sent_msgs,
            self.resent_items,
            self.received_msgs
        )
    }
}

#[derive(Debug, Clone)]
struct Waiting {
    value: i64,
    since: u64,
}

#[derive(Debug, Clone)]
struct InFlight {
    value: i64,
    /// When the item arrived on this link.
    since: u64,
    last_sent: u64,
    attempts: u32,
}

/// Jacobson/Karels estimator over acknowledgement delays, with backoff.
///
/// A sample is the time from an item's only transmission to the first peer
/// digest that covers it (Karn: retransmitted items give no sample). That
/// delay includes however long the peer holds its acknowledgement, so the
/// timeout adapts to the peer's ack delay and flush rounds, not just the
/// network round trip.
#[derive(Debug, Clone)]
struct RetransmitTimer {
    bounds: RtoBounds,
    smoothed: Option<(f64, f64)>,
    backoff: u32,
}

impl RetransmitTimer {
    fn new(bounds: RtoBounds) -> Self {
        RetransmitTimer {
            bounds,
            smoothed: None,
            backoff: 0,
        }
    }

    fn base(&self) -> u64 {
        let raw = match self.smoothed {
            None => self.bounds.initial_ms,
            Some((srtt, rttvar)) => (srtt + 4.0 * rttvar).ceil() as u64,
        };
        raw.clamp(
            self.bounds.min_ms,
            self.bounds.max_ms.max(self.bounds.min_ms),
        )
    }

    fn rto(&self) -> u64 {
        let max = self.bounds.max_ms.max(self.bounds.min_ms);
        self.base().saturating_mul(1u64 << self.backoff).min(max)
    }

    fn on_sample(&mut self, sample_ms: u64) {
        let sample = sample_ms as f64;
        self.smoothed = Some(match self.smoothed {
            None => (sample, sample / 2.0),
            Some((srtt, rttvar)) => (
                0.875 * srtt + 0.125 * sample,
                0.75 * rttvar + 0.25 * (srtt - sample).abs(),
            ),
        });
    }

    fn on_timeout(&mut self) {
        if self.rto() < self.bounds.max_ms && self.backoff < 32 {
            self.backoff += 1;
        }
    }

    /// Any message from the peer shows the path works again: drop the backoff.
    fn on_peer_heard(&mut self) {
        self.backoff = 0;
    }
}

/// Recent one-way delay samples (sender clock to our clock; both are the same
/// machine's wall clock under Maelstrom). Used only to place rounds.
#[derive(Debug, Clone, Default)]
struct OneWayDelay {
    recent: VecDeque<u64>,
}

impl OneWayDelay {
    const KEEP: usize = 15;

    fn sample(&mut self, ms: u64) {
        if self.recent.len() == Self::KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
    }

    fn median(&self) -> Option<u64> {
        let mut sorted: Vec<u64> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied()
    }

    fn highest(&self) -> Option<u64> {
        self.recent.iter().copied().max()
    }
}

/// The smallest instant x ≥ t with x ≡ phase (mod interval).
pub fn align_up(t: u64, interval: u64, phase: u64) -> u64 {
    let interval = interval.max(1);
    let phase = phase % interval;
    t + (phase + interval - t % interval) % interval
}

/// One link to one neighbour, seen from this node.
#[derive(Debug, Clone)]
pub struct Link {
    me: String,
    peer: String,
    policy: LinkPolicy,
    local_digest: Arc<Digest>,
    /// Since when we owe the peer our digest: it changed, or the peer sent
    /// items, and no message has gone out on this link since.
    digest_owed_since: Option<u64>,
    /// What the peer is known to hold (its digests merged, plus items it sent).
    peer_digest: Digest,
    pending: BTreeMap<ItemKey, Waiting>,
    lazy: BTreeMap<ItemKey, Waiting>,
    in_flight: BTreeMap<ItemKey, InFlight>,
    timer: RetransmitTimer,
    one_way: OneWayDelay,
    /// A round change not in effect yet (both ends switch at its instant).
    next_round: Option<RoundChange>,
    /// What a round-leading link announces: its latest change.
    announced: Option<RoundChange>,
    last_sent_at: Option<u64>,
    sent_msgs: u64,
    resent_items: u64,
    received_msgs: u64,
}

impl Link {
    pub fn new(me: impl Into<String>, peer: impl Into<String>, policy: LinkPolicy) -> Self {
        let timer = RetransmitTimer::new(policy.rto);
        Link {
            me: me.into(),
            peer: peer.into(),
            policy,
            local_digest: Arc::new(Digest::default()),
            digest_owed_since: None,
            peer_digest: Digest::default(),
            pending: BTreeMap::new(),
            lazy: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            timer,
            one_way: OneWayDelay::default(),
            next_round: None,
            announced: None,
            last_sent_at: None,
            sent_msgs: 0,
            resent_items: 0,
            received_msgs: 0,
        }
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The store took new items (not from this peer) and/or its digest changed.
    pub fn on_local_update(&mut self, now: u64, items: &[Item], digest: Arc<Digest>) {
        self.settle_round(now);
        for item in items {
            if self.peer_digest.covers(&item.origin, item.seq) {
                continue;
            }
            let key = item.key();
            if self.pending.contains_key(&key)
                || self.lazy.contains_key(&key)
                || self.in_flight.contains_key(&key)
            {
                continue;
            }
            let eager = match self.policy.eager {
                Eager::All => true,
                Eager::Own => item.origin == self.me,
                Eager::Nothing => false,
            };
            let waiting = Waiting {
                value: item.value,
                since: now,
            };
            if eager {
                self.pending.insert(key, waiting);
            } else if self.policy.lazy_grace_ms.is_some() {
                self.lazy.insert(key, waiting);
            }
        }
        if *digest != *self.local_digest {
            self.digest_owed_since.get_or_insert(now);
        }
        self.local_digest = digest;
    }

    /// A gossip message from the peer: learn what it holds, drop what it
    /// acknowledged, and take a timing sample.
    pub fn on_peer_message(&mut self, now: u64, msg: &Gossip) {
        self.settle_round(now);
        self.received_msgs += 1;
        self.one_way.sample(now.saturating_sub(msg.ts));
        self.peer_digest.merge(&msg.digest);
        for item in &msg.items {
            self.peer_digest.insert(&item.origin, item.seq);
        }
        if !msg.items.is_empty() {
            // The peer waits for an acknowledgement of these items. When they
            // are duplicates our digest does not change, so without this a
            // lost acknowledgement would never be repeated.
            self.digest_owed_since.get_or_insert(now);
        }
        let peer = &self.peer_digest;
        self.pending.retain(|(o, s), _| !peer.covers(o, *s));
        self.lazy.retain(|(o, s), _| !peer.covers(o, *s));
        let mut ack_delay = None;
        self.in_flight.retain(|(o, s), f| {
            if !peer.covers(o, *s) {
                return true;
            }
            if f.attempts == 1 {
                let sample = now.saturating_sub(f.last_sent);
                ack_delay = Some(ack_delay.map_or(sample, |d: u64| d.max(sample)));
            }
            false
        });
        if let Some(sample) = ack_delay {
            self.timer.on_sample(sample);
        }
        self.timer.on_peer_heard();
        if let (RoundRole::Follow, Some(change), Some(_)) =
            (self.policy.round, msg.round, self.round())
        {
            let news = match self.next_round {
                Some(pending) => pending != change,
                None => change.0 > 0 && self.grid() != Some((change.0, change.1 % change.0)),
            };
            if change.0 > 0 && news {
                self.next_round = Some(change);
                self.settle_round(now);
            }
        }
    }

    /// Plans a round change for a round-leading link. The node's round
    /// planner picks one instant for all its links, on the current grid and
    /// late enough for the announcement to reach the peer first, so both
    /// ends of every link change grids at the same moment: rounds of the
    /// new length start at that instant. An immediate (fanout) link only
    /// announces it: there it means "star rounds from that instant"; a zero
    /// length is only announced too: "fanout from that instant".
    pub fn set_round(&mut self, change: RoundChange) {
        if change.0 > 0 && self.round().is_some() {
            self.next_round = Some(change);
        }
        self.announced = Some(change);
    }

    /// Puts a planned round change into effect once its instant has come.
    fn settle_round(&mut self, now: u64) {
        let Some(RoundChange(interval, from)) = self.next_round else {
            return;
        };
        if now < from {
            return;
        }
        self.next_round = None;
        match &mut self.policy.flush {
            Flush::Immediate => {}
            Flush::Aligned {
                interval_ms,
                phase_ms: phase,
            }
            | Flush::AfterPeer {
                interval_ms,
                peer_phase_ms: phase,
                ..
            } => {
                *interval_ms = interval;
                *phase = from % interval;
            }
        }
    }

    /// The grid the rounds follow: (length, phase of the round instants, or
    /// of the peer's for an after-peer link). None for immediate links.
    fn grid(&self) -> Option<(u64, u64)> {
        match self.policy.flush {
            Flush::Immediate => None,
            Flush::Aligned {
                interval_ms,
                phase_ms,
            } => Some((interval_ms, phase_ms)),
            Flush::AfterPeer {
                interval_ms,
                peer_phase_ms,
                ..
            } => Some((interval_ms, peer_phase_ms)),
        }
    }

    /// The current round length (None for immediate links).
    pub fn round(&self) -> Option<u64> {
        match self.policy.flush {
            Flush::Immediate => None,
            Flush::Aligned { interval_ms, .. } | Flush::AfterPeer { interval_ms, .. } => {
                Some(interval_ms)
            }
        }
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
        self.settle_round(now);
        if self.next_deadline()? > now {
            return None;
        }
        let mut items = Vec::new();
        let rto = self.timer.rto();
        let mut resent = 0;
        for ((origin, seq), f) in self.in_flight.iter_mut() {
            if f.last_sent + rto <= now {
                f.last_sent = now;
                f.attempts += 1;
                resent += 1;
                items.push(Item::new(origin.clone(), *seq, f.value));
            }
        }
        if resent > 0 {
            self.timer.on_timeout();
        }
        let mut fresh = std::mem::take(&mut self.pending);
        if let Some(grace) = self.policy.lazy_grace_ms {
            let due: Vec<ItemKey> = self
                .lazy
                .iter()
                .filter(|(_, w)| w.since + grace <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                if let Some(w) = self.lazy.remove(&key) {
                    fresh.insert(key, w);
                }
            }
        }
        for ((origin, seq), w) in fresh {
            items.push(Item::new(origin.clone(), seq, w.value));
            if self.policy.reliable {
                self.in_flight.insert(
                    (origin, seq),
                    InFlight {
                        value: w.value,
                        since: w.since,
                        last_sent: now,
                        attempts: 1,
                    },
                );
            }
        }
        self.digest_owed_since = None;
        self.last_sent_at = Some(now);
        self.sent_msgs += 1;
        self.resent_items += resent;
        Some(Gossip {
            items,
            digest: (*self.local_digest).clone(),
            ts: now,
            round: match self.policy.round {
                RoundRole::Lead => self
                    .announced
                    .or_else(|| self.round().map(|interval| RoundChange(interval, 0))),
                RoundRole::Fixed | RoundRole::Follow => None,
            },
        })
    }

    /// When the next message is due (after alignment), or `None` when the
    /// link has nothing to say.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut due: Option<u64> = None;
        let mut consider = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
        if let Some(since) = self.pending.values().map(|w| w.since).min() {
            consider(since);
        }
        if let Some(grace) = self.policy.lazy_grace_ms {
            if let Some(since) = self.lazy.values().map(|w| w.since).min() {
                consider(since + grace);
            }
        }
        if let Some(sent) = self.in_flight.values().map(|f| f.last_sent).min() {
            consider(sent + self.timer.rto());
        }
        if let (Some(delay), Some(changed)) =
            (self.policy.report_digest_after_ms, self.digest_owed_since)
        {
            consider(changed + delay);
        }
        due.map(|t| self.align(t))
    }

    /// When a message due at `t` may go: at once, or at the first round
    /// instant after it that has not had its message yet.
    fn align(&self, t: u64) -> u64 {
        // An after-peer link sends `offset` after the peer's round instant.
        let (interval, base, offset) = match self.policy.flush {
            Flush::Immediate => return t,
            Flush::Aligned {
                interval_ms,
                phase_ms,
            } => (interval_ms, phase_ms, 0),
            Flush::AfterPeer {
                interval_ms,
                peer_phase_ms,
                linger_ms,
            } => {
                let one_way = self.one_way.median().unwrap_or(self.policy.latency_hint_ms);
                (interval_ms, peer_phase_ms, one_way + linger_ms)
            }
        };
        let t = t.max(self.last_sent_at.map_or(0, |last| last + 1));
        let on_current = align_up(t, interval, base + offset);
        match self.next_round {
            Some(RoundChange(next, from)) if on_current >= from => {
                align_up(t.max(from), next, from + offset)
            }
            _ => on_current,
        }
    }

    /// Whether the link holds nothing: no waiting, lazy or in-flight items.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.lazy.is_empty() && self.in_flight.is_empty()
    }

    /// Messages sent and received so far on this link.
    pub fn message_counts(&self) -> (u64, u64) {
        (self.sent_msgs, self.received_msgs)
    }

    pub fn stats(&self, now: u64) -> LinkStats {
        let oldest = self
            .pending
            .values()
            .chain(self.lazy.values())
            .map(|w| w.since)
            .chain(self.in_flight.values().map(|f| f.since))
            .min();
        let batches: BTreeSet<u64> = self.in_flight.values().map(|f| f.last_sent).collect();
        LinkStats {
            waiting: self.pending.len(),
            lazy: self.lazy.len(),
            in_flight: self.in_flight.len(),
            batches_in_flight: batches.len(),
            oldest_unacked_ms: oldest.map_or(0, |t| now.saturating_sub(t)),
            rto_ms: self.timer.rto(),
            sent_msgs: self.sent_msgs,
            resent_items: self.resent_items,
            received_msgs: self.received_msgs,
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
            items: vec![],
            digest: (**digest).clone(),
            ts,
            round: None,
        }
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
        hub.on_local_update(1_160, std::slice::from_ref(&second), digest_of(&both));
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
        );
        assert_eq!(leaf.next_deadline(), Some(1_600));
        assert!(leaf.poll(1_600).is_some());
        let later = Item::new("n1", 2, 8);
        leaf.on_local_update(
            1_700,
            std::slice::from_ref(&later),
            digest_of(&[first, second, mine, later.clone()]),
        );
        assert_eq!(leaf.next_deadline(), Some(1_800));
        assert!(leaf.poll(1_800).is_some());
        assert_eq!(leaf.round(), Some(700));
        let after = Item::new("n1", 3, 10);
        leaf.on_local_update(
            1_900,
            std::slice::from_ref(&after),
            digest_of(std::slice::from_ref(&after)),
        );
        assert_eq!(leaf.next_deadline(), Some(2_500), "1800 + 700, not 2100");
        // The hub's rounds moved at the same instant: 1800 + 100 + 10.
        let third = Item::new("n0", 3, 9);
        hub.on_local_update(
            1_850,
            std::slice::from_ref(&third),
            digest_of(std::slice::from_ref(&third)),
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
        );
        link.on_local_update(
            1020,
            std::slice::from_ref(&b),
            digest_of(&[a.clone(), b.clone()]),
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
        link.on_local_update(0, std::slice::from_ref(&a), digest.clone());
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
        );
        link.poll(0);
        link.on_peer_message(200, &ack(&digest_of(std::slice::from_ref(&a)), 150));
        // srtt 200, rttvar 100: rto = 200 + 4*100.
        assert_eq!(link.stats(200).rto_ms, 600);
        let b = Item::new("n0", 2, 8);
        let d2 = digest_of(&[a.clone(), b.clone()]);
        link.on_local_update(1000, std::slice::from_ref(&b), d2.clone());
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
            items: vec![theirs.clone()],
            digest: (*digest_of(std::slice::from_ref(&theirs))).clone(),
            ts: 0,
            round: None,
        };
        link.on_peer_message(10, &peer_msg);
        link.on_local_update(10, &[], digest_of(std::slice::from_ref(&theirs)));
        // A digest-only acknowledgement is owed after the ack delay...
        assert_eq!(link.next_deadline(), Some(60));
        // ...but a batch of our own goes first and carries it.
        let mine = Item::new("n0", 1, 6);
        link.on_local_update(
            20,
            std::slice::from_ref(&mine),
            digest_of(&[theirs.clone(), mine.clone()]),
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
        link.on_local_update(10, &[], digest_of(std::slice::from_ref(&theirs)));
        assert!(link.poll(59).is_none());
        let msg = link.poll(60).expect("digest-only ack");
        assert!(msg.items.is_empty() && msg.digest.covers("n1", 1));
        assert_eq!(link.next_deadline(), None);
    }

    #[test]
    fn an_unchanged_digest_owes_nothing() {
        let mut link = Link::new("n0", "n1", reliable(Flush::Immediate));
        link.on_local_update(0, &[], Arc::new(Digest::default()));
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
        );
        // No samples yet: the latency hint (100) places the round at +110.
        assert_eq!(link.next_deadline(), Some(5110));
        link.on_peer_message(5040, &ack(&Arc::new(Digest::default()), 5000));
        assert_eq!(link.next_deadline(), Some(5050));
    }

    #[test]
    fn lazy_items_are_repaired_after_the_grace_only_if_the_peer_lacks_them() {
        let policy = LinkPolicy {
            eager: Eager::Own,
            lazy_grace_ms: Some(1000),
            ..reliable(Flush::Immediate)
        };
        let mut link = Link::new("hub", "b", policy);
        let from_a1 = Item::new("a", 1, 11);
        let from_a2 = Item::new("a", 2, 12);
        let items = [from_a1.clone(), from_a2.clone()];
        link.on_local_update(0, &items, digest_of(&items));
        // Not eager: only the owed digest goes out.
        let msg = link.poll(50).expect("digest");
        assert!(msg.items.is_empty());
        assert_eq!(link.stats(50).lazy, 2);
        // The leaf reports that it got a1 directly from its origin.
        link.on_peer_message(600, &ack(&digest_of(std::slice::from_ref(&from_a1)), 600));
        assert_eq!(link.next_deadline(), Some(1000));
        let repair = link.poll(1000).expect("repair");
        assert_eq!(repair.items, vec![from_a2.clone()]);
        assert_eq!(link.stats(1000).in_flight, 1, "repairs are reliable");
        link.on_peer_message(1200, &ack(&digest_of(&items), 1200));
        assert!(link.is_idle());
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
}
