//! The message store's logic as a plain struct (no actix): the items and
//! values a node holds, how a client's value becomes this node's next item,
//! how a peer's items are merged, and what each link is told about new
//! items. The MessageStore actor and the test cluster of `testkit` both run
//! on it.

use crate::digest::{Digest, Item};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A broadcast before `init`: the node has no id to originate items with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJoined;

/// Items the store has just taken, as the links are to hear of them: every
/// link gets the new digest, the link to the items' source none of them.
#[derive(Debug, Clone)]
pub struct NewItems {
    items: Arc<[Item]>,
    source: Option<String>,
    digest: Arc<Digest>,
}

impl NewItems {
    /// The items for the link to `peer`.
    pub fn items_for(&self, peer: &str) -> Arc<[Item]> {
        if self.source.as_deref() == Some(peer) {
            Arc::new([])
        } else {
            self.items.clone()
        }
    }

    /// Every new item.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The peer they came from (None: a client's).
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The store's digest after taking the items.
    pub fn digest(&self) -> &Arc<Digest> {
        &self.digest
    }
}

/// What a node holds.
#[derive(Debug, Clone, Default)]
pub struct StoreCore {
    node_id: Option<String>,
    /// Every item held, in arrival order, with the peer it came from (what a
    /// new link starts with: all but its peer's own contributions).
    items: Vec<(Item, Option<String>)>,
    /// Index of `items` by (origin, seq), shared with the links.
    digest: Arc<Digest>,
    /// Index of `items` by value: the answer to a read, and how a value
    /// broadcast twice is recognised.
    values: BTreeSet<i64>,
}

impl StoreCore {
    /// Records the node id used as origin of this node's items; the first
    /// one stays.
    pub fn join(&mut self, node_id: String) {
        self.node_id.get_or_insert(node_id);
    }

    /// A client's value: a new item of this node's unless the value is held
    /// already (then `None`).
    pub fn broadcast(&mut self, value: i64) -> Result<Option<NewItems>, NotJoined> {
        let me = self.node_id.clone().ok_or(NotJoined)?;
        if self.values.contains(&value) {
            return Ok(None);
        }
        let seq = self.digest.high_water(&me) + 1;
        Ok(self.absorb(&[Item::new(me, seq, value)], None))
    }

    /// A peer's items: those not held yet, or `None` when all are.
    pub fn merge(&mut self, from: &str, items: &[Item]) -> Option<NewItems> {
        self.absorb(items, Some(from))
    }

    /// Takes the items not held yet (from `source`, or from a client when
    /// `None`).
    fn absorb(&mut self, items: &[Item], source: Option<&str>) -> Option<NewItems> {
        let mut fresh = Vec::new();
        for item in items {
            if Arc::make_mut(&mut self.digest).insert(&item.origin, item.seq) {
                self.values.insert(item.value);
                self.items.push((item.clone(), source.map(str::to_string)));
                fresh.push(item.clone());
            }
        }
        (!fresh.is_empty()).then(|| NewItems {
            items: fresh.into(),
            source: source.map(str::to_string),
            digest: self.digest.clone(),
        })
    }

    /// What a new link to `peer` starts with: every item held except those
    /// its peer sent.
    pub fn items_for_new_link(&self, peer: &str) -> Arc<[Item]> {
        self.items
            .iter()
            .filter(|(_, from)| from.as_deref() != Some(peer))
            .map(|(item, _)| item.clone())
            .collect()
    }

    /// Every distinct value held, ascending (the answer to a read).
    pub fn values(&self) -> &BTreeSet<i64> {
        &self.values
    }

    pub fn digest(&self) -> &Arc<Digest> {
        &self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined() -> StoreCore {
        let mut store = StoreCore::default();
        store.join("n0".into());
        store
    }

    #[test]
    fn a_value_becomes_the_next_own_item_once() {
        let mut store = joined();
        let first = store.broadcast(5).unwrap().expect("new");
        assert_eq!(*first.items_for("n1"), [Item::new("n0", 1, 5)]);
        assert!(store.broadcast(5).unwrap().is_none(), "held already");
        let second = store.broadcast(-3).unwrap().expect("new");
        assert_eq!(*second.items_for("n1"), [Item::new("n0", 2, -3)]);
        assert!(second.digest().covers("n0", 2));
        assert_eq!(store.values().iter().copied().collect::<Vec<_>>(), [-3, 5]);
    }

    #[test]
    fn no_item_before_init_and_the_first_id_stays() {
        let mut store = StoreCore::default();
        assert_eq!(store.broadcast(1).unwrap_err(), NotJoined);
        assert!(store.values().is_empty());
        store.join("n3".into());
        store.join("n4".into());
        let new = store.broadcast(1).unwrap().expect("new");
        assert_eq!(*new.items_for("n0"), [Item::new("n3", 1, 1)]);
    }

    #[test]
    fn merged_items_are_new_once_and_withheld_from_their_source() {
        let mut store = joined();
        let a = Item::new("n1", 1, 10);
        let b = Item::new("n1", 2, 11);
        let new = store.merge("n1", std::slice::from_ref(&a)).expect("new");
        assert!(
            new.items_for("n1").is_empty(),
            "the source gets the digest only"
        );
        assert!(new.digest().covers("n1", 1));
        assert_eq!(new.items_for("n2").to_vec(), vec![a.clone()]);
        // n2 relays a again plus b: only b is new.
        let new = store.merge("n2", &[a.clone(), b.clone()]).expect("b");
        assert_eq!(new.items_for("n1").to_vec(), vec![b.clone()]);
        assert!(new.items_for("n2").is_empty());
        assert!(store.merge("n3", &[a, b]).is_none());
        assert_eq!(store.values().len(), 2);
    }

    #[test]
    fn a_new_link_starts_with_every_item_but_its_peers() {
        let mut store = StoreCore::default();
        // Gossip that arrives before init is kept.
        store.merge("n4", &[Item::new("n4", 1, 99)]);
        store.join("n0".into());
        store.broadcast(7).unwrap();
        assert_eq!(
            *store.items_for_new_link("n1"),
            [Item::new("n4", 1, 99), Item::new("n0", 1, 7)]
        );
        assert_eq!(*store.items_for_new_link("n4"), [Item::new("n0", 1, 7)]);
        assert!(store.digest().covers("n4", 1));
    }
}
