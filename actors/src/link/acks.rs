//! Acknowledgements both ways, as digests: what the peer is known to hold
//! (its digests merged, plus the items it sent), and the digest this node
//! owes it (every message carries our digest; when nothing else goes out,
//! a digest-only message does, after the policy's delay).

use crate::digest::Digest;
use crate::protocol::Gossip;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Acks {
    /// What the peer is known to hold.
    peer_holds: Digest,
    /// Our digest as the store last gave it.
    ours: Arc<Digest>,
    /// Since when we owe the peer our digest: it changed, or the peer sent
    /// items, and no message has gone out on this link since.
    owed_since: Option<u64>,
    /// Since when the peer has sent items that no message of ours has
    /// acknowledged yet.
    items_owed_since: Option<u64>,
    /// How long an owed digest may wait for a batch to ride on; `None`:
    /// never owe one.
    report_after_ms: Option<u64>,
    /// How long an acknowledgement of items the peer sent may wait, if
    /// shorter than `report_after_ms` (see [`crate::link::LossyTiming`]).
    ack_items_after_ms: Option<u64>,
    /// When the link's first message is due if nothing else went first: it
    /// tells the peer this process's incarnation (a restarted node's peers
    /// learn from it that it holds only what its digest shows).
    hello_due: Option<u64>,
}

impl Acks {
    pub fn new(report_after_ms: Option<u64>) -> Self {
        Acks {
            peer_holds: Digest::default(),
            ours: Arc::new(Digest::default()),
            owed_since: None,
            items_owed_since: None,
            report_after_ms,
            ack_items_after_ms: None,
            hello_due: None,
        }
    }

    /// The link started at `now`: unless a message goes first, one goes
    /// `after_ms` later.
    pub fn greet(&mut self, now: u64, after_ms: u64) {
        self.hello_due = Some(now.saturating_add(after_ms));
    }

    /// What the peer holds now, replacing what was known (the store's
    /// record for a new link; a restarted peer's digest).
    pub fn replace_peer_holds(&mut self, digest: Digest) {
        self.peer_holds = digest;
    }

    /// The store's digest; a change is owed to the peer.
    pub fn on_local_digest(&mut self, now: u64, digest: Arc<Digest>) {
        if !Arc::ptr_eq(&digest, &self.ours) && *digest != *self.ours {
            self.owed_since.get_or_insert(now);
        }
        self.ours = digest;
    }

    /// How long an owed digest, and an acknowledgement of the peer's items,
    /// may wait from now on (the link's timing changed; see
    /// [`crate::link::LossyTiming`]).
    pub fn set_holds(&mut self, report_after_ms: Option<u64>, ack_items_after_ms: Option<u64>) {
        self.report_after_ms = report_after_ms;
        self.ack_items_after_ms = ack_items_after_ms;
    }

    /// Learns what the peer holds from its message.
    pub fn on_peer_message(&mut self, now: u64, msg: &Gossip) {
        self.peer_holds.merge(&msg.digest);
        for item in &msg.items {
            self.peer_holds.insert(&item.origin, item.seq);
        }
        if !msg.items.is_empty() {
            // The peer waits for an acknowledgement of these items. When they
            // are duplicates our digest does not change, so without this a
            // lost acknowledgement would never be repeated.
            self.owed_since.get_or_insert(now);
            self.items_owed_since.get_or_insert(now);
        }
    }

    /// Since when the peer has waited for an acknowledgement of items it
    /// sent (None: it waits for none).
    pub fn items_owed_since(&self) -> Option<u64> {
        self.items_owed_since
    }

    pub fn peer_holds(&self) -> &Digest {
        &self.peer_holds
    }

    /// When an owed digest must go out on its own.
    pub fn due(&self) -> Option<u64> {
        let owed = self
            .owed_since
            .zip(self.report_after_ms)
            .map(|(since, after)| since.saturating_add(after));
        let items = self
            .items_owed_since
            .zip(self.ack_items_after_ms)
            .map(|(since, after)| since.saturating_add(after));
        [owed, items, self.hello_due].into_iter().flatten().min()
    }

    /// A message goes out: it carries our digest, which settles the debt.
    pub fn on_send(&mut self) -> Digest {
        self.owed_since = None;
        self.items_owed_since = None;
        self.hello_due = None;
        (*self.ours).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Item;

    fn digest(pairs: &[(&str, u64)]) -> Arc<Digest> {
        let mut d = Digest::default();
        for (origin, seq) in pairs {
            d.insert(origin, *seq);
        }
        Arc::new(d)
    }

    fn gossip(items: Vec<Item>, have: &[(&str, u64)]) -> Gossip {
        Gossip {
            inc: 0,
            items,
            digest: (*digest(have)).clone(),
            ts: 0,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        }
    }

    #[test]
    fn a_changed_digest_is_owed_from_its_first_change_until_a_message_goes() {
        let mut acks = Acks::new(Some(50));
        acks.on_local_digest(10, Arc::new(Digest::default()));
        assert_eq!(acks.due(), None, "unchanged: nothing owed");
        acks.on_local_digest(20, digest(&[("n1", 1)]));
        acks.on_local_digest(30, digest(&[("n1", 2)]));
        assert_eq!(acks.due(), Some(70));
        assert_eq!(acks.on_send(), *digest(&[("n1", 2)]));
        assert_eq!(acks.due(), None);
    }

    #[test]
    fn items_from_the_peer_are_owed_an_acknowledgement_even_as_duplicates() {
        let mut acks = Acks::new(Some(50));
        acks.on_peer_message(100, &gossip(vec![], &[("n1", 1)]));
        assert_eq!(acks.due(), None, "a digest alone needs no answer");
        acks.on_peer_message(200, &gossip(vec![Item::new("n1", 1, 5)], &[]));
        assert_eq!(acks.due(), Some(250));
    }

    #[test]
    fn a_new_link_says_hello_once_unless_a_message_went_first() {
        let mut acks = Acks::new(None);
        acks.greet(1_000, 500);
        assert_eq!(
            acks.due(),
            Some(1_500),
            "even a link that never owes a digest"
        );
        acks.on_send();
        assert_eq!(acks.due(), None);
    }

    #[test]
    fn the_peer_holds_what_it_showed_and_what_it_sent() {
        let mut acks = Acks::new(None);
        acks.on_peer_message(0, &gossip(vec![Item::new("n2", 4, 9)], &[("n1", 3)]));
        acks.on_peer_message(0, &gossip(vec![], &[("n1", 1)]));
        let holds = acks.peer_holds();
        assert!(holds.covers("n1", 3) && holds.covers("n2", 4));
        assert!(!holds.covers("n2", 3));
        assert_eq!(acks.due(), None, "this link never owes a digest");
    }
}
