//! The outbox: the items a link still has to get to its peer, and the one
//! place that decides which of them go into a batch. An item waits (sent at
//! the next flush), lies lazy (sent only if the peer still lacks it after a
//! grace period) or is in flight (sent, kept until the peer's digest covers
//! it, retransmitted on timeout); the peer's acknowledgement drops it
//! wherever it is.
//!
//! Every message from the peer carries its digest, so a lost item shows as
//! a gap long before any timeout: an in-flight item that a peer message
//! sent well after the item's arrival still lacks is marked lost and goes
//! again in the next batch ([`Outbox::mark_lost`]), like a selective
//! acknowledgement; the timeout is the last resort for a silent peer. A
//! fire-and-forget link keeps what it sent for a few seconds as well, only
//! to see such gaps: an item the peer shows lost is sent once more.

use super::policy::{Eager, LinkPolicy};
use crate::digest::{origin_node, Digest, Item, ItemKey};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
struct Waiting {
    value: i64,
    /// When the item arrived on this link.
    since: u64,
}

#[derive(Debug, Clone)]
struct InFlight {
    value: i64,
    /// When the item arrived on this link.
    since: u64,
    last_sent: u64,
    attempts: u32,
    /// When a peer digest showed it lost: due again from then.
    lost_at: Option<u64>,
}

impl InFlight {
    /// When it goes again: once marked lost, else after `rto`.
    fn resend_at(&self, rto: u64) -> u64 {
        self.lost_at
            .unwrap_or_else(|| self.last_sent.saturating_add(rto))
    }
}

/// The items of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Retransmissions first, then new items, each in (origin, seq) order.
    pub items: Vec<Item>,
    /// How many of them are retransmissions.
    pub resent: u64,
    /// Whether any retransmission is a timeout's (not a marked loss's).
    pub timed_out: bool,
    /// Whether items that were due stayed behind because the batch was
    /// full: another batch is due at once.
    pub more: bool,
}

/// The outbox's size and age, for the backlog trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub waiting: usize,
    pub lazy: usize,
    pub in_flight: usize,
    /// Distinct send instants among the in-flight items.
    pub batches_in_flight: usize,
    /// When the oldest item still held arrived.
    pub oldest_since: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Outbox {
    me: String,
    eager: Eager,
    lazy_grace_ms: Option<u64>,
    reliable: bool,
    waiting: BTreeMap<ItemKey, Waiting>,
    lazy: BTreeMap<ItemKey, Waiting>,
    in_flight: BTreeMap<ItemKey, InFlight>,
    /// An unreliable link's recent sends, watched for gaps in the peer's
    /// digest for [`WATCH_MS`]: (value, sent at).
    watched: BTreeMap<ItemKey, (i64, u64)>,
    /// The most items in one batch.
    max_items: usize,
}

/// The most items a batch carries (about 40 bytes each on the wire: well
/// under a receiver's 16 MiB line limit). A longer backlog drains over
/// several messages, oldest first.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// Items a gap shows lost: how many were marked to go again, and how many
/// of those the peer's digest lacked so long after they should have arrived
/// ([`CONFIRM_MARGIN_MS`] more) that no late delivery explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Losses {
    pub marked: usize,
    pub confirmed: usize,
}

/// How much later than its expected arrival a gap is a sure loss, not a
/// late delivery (a false alarm would put the link in repair mode, which
/// costs messages; a resend on a mere suspicion costs a duplicate item).
pub const CONFIRM_MARGIN_MS: u64 = 100;

/// How long a fire-and-forget link watches what it sent.
pub const WATCH_MS: u64 = 5_000;

impl Outbox {
    /// An empty outbox of `me`'s link that follows `policy`.
    pub fn new(me: String, policy: &LinkPolicy) -> Self {
        Outbox {
            me,
            eager: policy.eager,
            lazy_grace_ms: policy.lazy_grace_ms,
            reliable: policy.reliable,
            waiting: BTreeMap::new(),
            lazy: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            watched: BTreeMap::new(),
            max_items: MAX_BATCH_ITEMS,
        }
    }

    /// The grace of lazy items from now on, those already lying lazy
    /// included (the link's timing changed).
    pub fn set_lazy_grace(&mut self, lazy_grace_ms: Option<u64>) {
        self.lazy_grace_ms = lazy_grace_ms;
    }

    /// Caps batches at `max_items` (at least 1) instead of
    /// [`MAX_BATCH_ITEMS`].
    pub fn limit_batches(&mut self, max_items: usize) {
        self.max_items = max_items.max(1);
    }

    /// An item a restarted peer lacks: it waits for the next flush if this
    /// link answers for it (`always`, or its eager policy sends it, or it
    /// would go lazily: a restarted peer needs it now, not after the
    /// grace), unless the peer holds it; one in flight goes again at the
    /// next flush.
    pub fn offer_catch_up(&mut self, now: u64, item: &Item, peer_holds: &Digest, always: bool) {
        let answers_for = always
            || match self.eager {
                Eager::All => true,
                Eager::Own => origin_node(&item.origin) == self.me || self.lazy_grace_ms.is_some(),
                Eager::Nothing => self.lazy_grace_ms.is_some(),
            };
        if !answers_for || peer_holds.covers(&item.origin, item.seq) {
            return;
        }
        let key = item.key();
        if let Some(f) = self.in_flight.get_mut(&key) {
            f.lost_at.get_or_insert(now);
            return;
        }
        let since = self.lazy.remove(&key).map_or(now, |w| w.since);
        self.waiting.entry(key).or_insert(Waiting {
            value: item.value,
            since,
        });
    }

    /// A new item of the store's: kept unless the peer holds it or the
    /// outbox has it already; it waits if the policy sends it eagerly, lies
    /// lazy if it allows a lazy send, and is dropped otherwise.
    /// Returns whether it now waits for the next flush.
    pub fn offer(&mut self, now: u64, item: &Item, peer_holds: &Digest) -> bool {
        if peer_holds.covers(&item.origin, item.seq) {
            return false;
        }
        let key = item.key();
        if self.waiting.contains_key(&key)
            || self.lazy.contains_key(&key)
            || self.in_flight.contains_key(&key)
        {
            return false;
        }
        let eager = match self.eager {
            Eager::All => true,
            Eager::Own => origin_node(&item.origin) == self.me,
            Eager::Nothing => false,
        };
        let waiting = Waiting {
            value: item.value,
            since: now,
        };
        if eager {
            self.waiting.insert(key, waiting);
        } else if self.lazy_grace_ms.is_some() {
            self.lazy.insert(key, waiting);
        }
        eager
    }

    /// Drops every item the peer holds. Returns the longest acknowledgement
    /// delay among the dropped in-flight items that were sent only once
    /// (Karn: a retransmitted item's delay is ambiguous).
    pub fn drop_acknowledged(&mut self, now: u64, peer_holds: &Digest) -> Option<u64> {
        self.waiting.retain(|(o, s), _| !peer_holds.covers(o, *s));
        self.watched.retain(|(o, s), _| !peer_holds.covers(o, *s));
        self.lazy.retain(|(o, s), _| !peer_holds.covers(o, *s));
        let mut ack_delay = None;
        self.in_flight.retain(|(o, s), f| {
            if !peer_holds.covers(o, *s) {
                return true;
            }
            if f.attempts == 1 {
                let sample = now.saturating_sub(f.last_sent);
                ack_delay = Some(ack_delay.map_or(sample, |d: u64| d.max(sample)));
            }
            false
        });
        ack_delay
    }

    /// In-flight items that the peer's digest in a message it sent at
    /// `peer_sent` still lacks, although they were sent at least
    /// `transit_ms` before: lost, due again from `now`. Lazy items it lacks
    /// [`CONFIRM_MARGIN_MS`] after they came here are due at once too.
    pub fn mark_lost(
        &mut self,
        now: u64,
        peer_sent: u64,
        transit_ms: u64,
        peer_holds: &Digest,
    ) -> Losses {
        let mut losses = Losses::default();
        let mut count = |sent: u64| {
            losses.marked += 1;
            if sent.saturating_add(transit_ms + CONFIRM_MARGIN_MS) <= peer_sent {
                losses.confirmed += 1;
            }
        };
        for ((origin, seq), f) in self.in_flight.iter_mut() {
            let should_have_arrived = f.last_sent.saturating_add(transit_ms) <= peer_sent;
            if f.lost_at.is_none() && should_have_arrived && !peer_holds.covers(origin, *seq) {
                f.lost_at = Some(now);
                count(f.last_sent);
            }
        }
        self.watched
            .retain(|_, (_, sent)| sent.saturating_add(WATCH_MS) > now);
        let lost: Vec<ItemKey> = self
            .watched
            .iter()
            .filter(|((origin, seq), (_, sent))| {
                sent.saturating_add(transit_ms) <= peer_sent && !peer_holds.covers(origin, *seq)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in lost {
            if let Some((value, sent)) = self.watched.remove(&key) {
                self.waiting.insert(key, Waiting { value, since: now });
                count(sent);
            }
        }
        // A lazy item came here in one hop, as it should have reached the
        // peer: a digest sent well after that which still lacks it needs
        // no grace to show that the peer missed it. Not this link's loss.
        let missed: Vec<ItemKey> = self
            .lazy
            .iter()
            .filter(|((origin, seq), w)| {
                w.since.saturating_add(CONFIRM_MARGIN_MS) <= peer_sent
                    && !peer_holds.covers(origin, *seq)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in missed {
            if let Some(w) = self.lazy.remove(&key) {
                self.waiting.insert(key, w);
            }
        }
        losses
    }

    /// When the earliest item is due, before any round alignment: a waiting
    /// item at once, a lazy one after the grace, an in-flight one once
    /// marked lost or after `rto` without acknowledgement.
    pub fn due(&self, rto: u64) -> Option<u64> {
        [self.due_fresh(), self.due_resend(rto)]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the earliest item not yet sent is due: a waiting item at once,
    /// a lazy one after the grace.
    pub fn due_fresh(&self) -> Option<u64> {
        let waiting = self.waiting.values().map(|w| w.since).min();
        let lazy = self
            .lazy_grace_ms
            .and_then(|grace| Some(self.lazy.values().map(|w| w.since).min()? + grace));
        [waiting, lazy].into_iter().flatten().min()
    }

    /// When the earliest in-flight item goes again: once marked lost, or
    /// after `rto` without acknowledgement.
    pub fn due_resend(&self, rto: u64) -> Option<u64> {
        self.in_flight.values().map(|f| f.resend_at(rto)).min()
    }

    /// The items of a batch sent at `now`: in-flight items marked lost or
    /// unacknowledged for `rto`, every waiting item, and lazy items past
    /// their grace, at most the batch limit of them (the oldest; the rest
    /// stay due). On a reliable link the new ones stay in flight, on an
    /// unreliable one they are watched.
    pub fn take_batch(&mut self, now: u64, rto: u64) -> Batch {
        let mut items = Vec::new();
        let mut resent = 0;
        let mut timed_out = false;
        let mut more = false;
        for ((origin, seq), f) in self.in_flight.iter_mut() {
            if f.resend_at(rto) <= now {
                if items.len() == self.max_items {
                    more = true;
                    break;
                }
                timed_out |= f.lost_at.is_none();
                f.last_sent = now;
                f.attempts += 1;
                f.lost_at = None;
                resent += 1;
                items.push(Item::new(origin.clone(), *seq, f.value));
            }
        }
        if let Some(grace) = self.lazy_grace_ms {
            let due: Vec<ItemKey> = self
                .lazy
                .iter()
                .filter(|(_, w)| w.since + grace <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                if let Some(w) = self.lazy.remove(&key) {
                    self.waiting.insert(key, w);
                }
            }
        }
        let room = self.max_items - items.len();
        let fresh: Vec<(ItemKey, Waiting)> = if self.waiting.len() <= room {
            std::mem::take(&mut self.waiting).into_iter().collect()
        } else {
            more = true;
            let mut oldest: Vec<(u64, ItemKey)> = self
                .waiting
                .iter()
                .map(|(key, w)| (w.since, key.clone()))
                .collect();
            oldest.sort_unstable();
            oldest
                .into_iter()
                .take(room)
                .filter_map(|(_, key)| self.waiting.remove_entry(&key))
                .collect()
        };
        for ((origin, seq), w) in fresh {
            items.push(Item::new(origin.clone(), seq, w.value));
            if !self.reliable {
                self.watched.insert((origin, seq), (w.value, now));
            } else {
                self.in_flight.insert(
                    (origin, seq),
                    InFlight {
                        value: w.value,
                        since: w.since,
                        last_sent: now,
                        attempts: 1,
                        lost_at: None,
                    },
                );
            }
        }
        Batch {
            items,
            resent,
            timed_out,
            more,
        }
    }

    /// Whether the outbox holds no item at all.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.lazy.is_empty() && self.in_flight.is_empty()
    }

    /// When the oldest in-flight item arrived on this link.
    pub fn oldest_in_flight(&self) -> Option<u64> {
        self.in_flight.values().map(|f| f.since).min()
    }

    pub fn backlog(&self) -> Backlog {
        let oldest_since = self
            .waiting
            .values()
            .chain(self.lazy.values())
            .map(|w| w.since)
            .chain(self.in_flight.values().map(|f| f.since))
            .min();
        let batches: BTreeSet<u64> = self.in_flight.values().map(|f| f.last_sent).collect();
        Backlog {
            waiting: self.waiting.len(),
            lazy: self.lazy.len(),
            in_flight: self.in_flight.len(),
            batches_in_flight: batches.len(),
            oldest_since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::policy::{Flush, RoundRole, RtoBounds};

    fn policy(eager: Eager, lazy_grace_ms: Option<u64>, reliable: bool) -> LinkPolicy {
        LinkPolicy {
            eager,
            lazy_grace_ms,
            reliable,
            report_digest_after_ms: None,
            flush: Flush::Immediate,
            rto: RtoBounds {
                initial_ms: 300,
                min_ms: 100,
                max_ms: 2000,
            },
            latency_hint_ms: 100,
            round: RoundRole::Fixed,
            repair_copies: 1,
            loss_copies: None,
            silence_ms: None,
            relay_every: 1,
            lossy: None,
        }
    }

    fn holds(items: &[&Item]) -> Digest {
        let mut d = Digest::default();
        for i in items {
            d.insert(&i.origin, i.seq);
        }
        d
    }

    #[test]
    fn the_policy_decides_what_waits_what_lies_lazy_and_what_is_dropped() {
        let own = Item::new("n0", 1, 1);
        let relayed = Item::new("n2", 1, 2);
        let nothing = Digest::default();
        let mut all = Outbox::new("n0".into(), &policy(Eager::All, None, true));
        let mut own_only = Outbox::new("n0".into(), &policy(Eager::Own, Some(500), true));
        let mut forgetful = Outbox::new("n0".into(), &policy(Eager::Own, None, true));
        for outbox in [&mut all, &mut own_only, &mut forgetful] {
            outbox.offer(10, &own, &nothing);
            outbox.offer(10, &relayed, &nothing);
        }
        let sizes = |o: &Outbox| (o.backlog().waiting, o.backlog().lazy);
        assert_eq!(sizes(&all), (2, 0));
        assert_eq!(sizes(&own_only), (1, 1));
        assert_eq!(sizes(&forgetful), (1, 0), "neither eager nor lazy: dropped");
        assert_eq!(own_only.due(300), Some(10));
        own_only.take_batch(10, 300);
        assert_eq!(own_only.due(300), Some(310), "the in-flight item's timeout");
        let mut lazy_only = Outbox::new("n0".into(), &policy(Eager::Nothing, Some(500), false));
        lazy_only.offer(10, &own, &nothing);
        assert_eq!(lazy_only.due(300), Some(510), "the lazy item's grace");
    }

    #[test]
    fn a_lazy_item_a_later_peer_digest_lacks_goes_before_its_grace() {
        // The fanout hub: a leaf's value (n2's) lies lazy for its grace,
        // as n1 should get it from n2 directly.
        let a = Item::new("n2", 1, 1);
        let b = Item::new("n2", 2, 2);
        let nothing = Digest::default();
        let mut outbox = Outbox::new("n0".into(), &policy(Eager::Own, Some(3_000), true));
        outbox.offer(1_000, &a, &nothing);
        outbox.offer(1_000, &b, &nothing);
        // A digest n1 sent before the margin was up says nothing yet.
        outbox.mark_lost(1_150, 1_000 + CONFIRM_MARGIN_MS - 1, 100, &nothing);
        assert_eq!(outbox.due(300), Some(4_000), "the grace");
        // One sent after it holds a but lacks b: b missed the hop.
        outbox.drop_acknowledged(1_250, &holds(&[&a]));
        let losses = outbox.mark_lost(1_250, 1_000 + CONFIRM_MARGIN_MS, 100, &holds(&[&a]));
        assert_eq!(losses, Losses::default(), "not this link's loss");
        assert_eq!(outbox.due(300), Some(1_000));
        assert_eq!(
            outbox.take_batch(1_250, 300).items,
            std::slice::from_ref(&b)
        );
        assert_eq!(outbox.backlog().lazy, 0, "a was acknowledged");
    }

    #[test]
    fn an_item_is_kept_once_and_never_when_the_peer_holds_it() {
        let a = Item::new("n1", 1, 1);
        let mut outbox = Outbox::new("n0".into(), &policy(Eager::All, None, true));
        outbox.offer(0, &a, &holds(&[&a]));
        assert!(outbox.is_empty());
        outbox.offer(0, &a, &Digest::default());
        outbox.offer(5, &a, &Digest::default());
        assert_eq!(outbox.backlog().waiting, 1);
        outbox.take_batch(5, 300);
        outbox.offer(6, &a, &Digest::default());
        let backlog = outbox.backlog();
        assert_eq!((backlog.waiting, backlog.in_flight), (0, 1), "in flight");
        assert_eq!(backlog.oldest_since, Some(0));
    }

    #[test]
    fn a_batch_resends_overdue_items_first_then_the_new_ones() {
        let a = Item::new("n0", 1, 1);
        let b = Item::new("n0", 2, 2);
        let c = Item::new("n0", 3, 3);
        let nothing = Digest::default();
        let mut outbox = Outbox::new("n0".into(), &policy(Eager::All, None, true));
        outbox.offer(0, &b, &nothing);
        assert_eq!(outbox.take_batch(0, 300).items, vec![b.clone()]);
        outbox.offer(100, &a, &nothing);
        assert_eq!(outbox.take_batch(100, 300).items, vec![a.clone()]);
        outbox.offer(300, &c, &nothing);
        let batch = outbox.take_batch(300, 300);
        assert_eq!(
            batch,
            Batch {
                items: vec![b, c],
                resent: 1,
                timed_out: true,
                more: false,
            }
        );
        assert_eq!(outbox.backlog().batches_in_flight, 2, "sent at 100 and 300");
    }

    #[test]
    fn a_gap_in_a_later_peer_digest_marks_an_item_lost_and_due_at_once() {
        let a = Item::new("n0", 1, 1);
        let b = Item::new("n0", 2, 2);
        let nothing = Digest::default();
        let mut outbox = Outbox::new("n0".into(), &policy(Eager::All, None, true));
        outbox.offer(0, &a, &nothing);
        outbox.take_batch(0, 2_000);
        outbox.offer(100, &b, &nothing);
        outbox.take_batch(100, 2_000);
        // The peer's message sent at 150 could not have shown b (sent at
        // 100, 110 ms in transit), but should have shown a.
        assert_eq!(
            outbox.mark_lost(260, 150, 110, &nothing),
            Losses {
                marked: 1,
                confirmed: 0
            },
            "40 ms late only: suspected"
        );
        assert_eq!(outbox.mark_lost(270, 150, 110, &nothing).marked, 0, "once");
        assert_eq!(outbox.due(2_000), Some(260));
        let batch = outbox.take_batch(300, 2_000);
        assert_eq!(
            batch,
            Batch {
                items: vec![a.clone()],
                resent: 1,
                timed_out: false,
                more: false,
            },
            "a resend, not a timeout"
        );
        assert_eq!(
            outbox.mark_lost(320, 250, 110, &holds(&[&b])).marked,
            0,
            "a's resend is not due to show yet, b is held"
        );
        assert_eq!(outbox.drop_acknowledged(400, &holds(&[&b])), Some(300));
        assert_eq!(
            outbox.drop_acknowledged(420, &holds(&[&a, &b])),
            None,
            "Karn: no sample from a resent item"
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn an_unreliable_link_forgets_what_it_sent() {
        let a = Item::new("n0", 1, 1);
        let mut outbox = Outbox::new("n0".into(), &policy(Eager::All, None, false));
        outbox.offer(0, &a, &Digest::default());
        assert_eq!(outbox.take_batch(0, 300).items, [a]);
        assert!(outbox.is_empty());
        assert_eq!(outbox.due(300), None);
    }

    #[test]
    fn an_unreliable_link_sends_once_more_what_a_later_peer_digest_lacks() {
        let a = Item::new("n0", 1, 1);
        let b = Item::new("n0", 2, 2);
        let nothing = Digest::default();
        let mut outbox = Outbox::new("n0".into(), &policy(Eager::Own, None, false));
        outbox.offer(0, &a, &nothing);
        outbox.offer(0, &b, &nothing);
        outbox.take_batch(0, 300);
        assert!(outbox.is_empty(), "nothing in flight");
        assert_eq!(
            outbox.mark_lost(250, 210, 105, &holds(&[&a])),
            Losses {
                marked: 1,
                confirmed: 1
            },
            "b, 105 ms after it should have arrived"
        );
        assert_eq!(outbox.due(300), Some(250));
        assert_eq!(outbox.take_batch(250, 300).items, std::slice::from_ref(&b));
        assert_eq!(outbox.mark_lost(600, 500, 105, &holds(&[&a, &b])).marked, 0);
        outbox.take_batch(700, 300);
        assert_eq!(
            outbox
                .mark_lost(700 + WATCH_MS, 700 + WATCH_MS, 105, &nothing)
                .marked,
            0,
            "watched only for a while"
        );
    }

    #[test]
    fn acknowledgements_drop_items_and_time_only_single_transmissions() {
        let a = Item::new("n0", 1, 1);
        let b = Item::new("n0", 2, 2);
        let c = Item::new("n1", 1, 3);
        let nothing = Digest::default();
        let mut outbox = Outbox::new("n0".into(), &policy(Eager::Own, Some(500), true));
        outbox.offer(0, &a, &nothing);
        outbox.take_batch(0, 300);
        outbox.take_batch(300, 300);
        outbox.offer(350, &b, &nothing);
        outbox.take_batch(350, 300);
        outbox.offer(360, &c, &nothing);
        assert_eq!(
            outbox.drop_acknowledged(420, &holds(&[&a, &c])),
            None,
            "a was sent twice; c was never sent"
        );
        assert_eq!(outbox.backlog().lazy, 0);
        assert_eq!(
            outbox.drop_acknowledged(470, &holds(&[&a, &b, &c])),
            Some(120)
        );
        assert!(outbox.is_empty());
    }
}
