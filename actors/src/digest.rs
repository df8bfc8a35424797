//! Items (a value tagged with its origin node and that node's sequence number)
//! and the per-origin digest that summarises which items a node holds.
//!
//! A digest is a version vector with holes: per origin, the highest `seq` up to
//! which every item is held (`have`), plus the few seqs held above it
//! (`extra`). Digests only grow, so merging two of them is a per-origin union.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The highest seq a node may give an item (2^40: a million a second for
/// twelve days). Anything above it in gossip is bad input, and the digest's
/// arithmetic (`high + 1`) cannot overflow below it.
pub const MAX_SEQ: u64 = 1 << 40;

/// An item origin: the node id and the incarnation (process start, ms) of
/// the node that took the value, as `"n3@1764681234567"`. A restarted node
/// has a new incarnation, so it never reuses an item id.
pub fn origin_of(node_id: &str, incarnation: u64) -> String {
    format!("{node_id}@{incarnation}")
}

/// The node that made items of `origin` (the origin itself when it names
/// no incarnation, as in tests).
pub fn origin_node(origin: &str) -> &str {
    parse_origin(origin).map_or(origin, |(node, _)| node)
}

/// The node id and incarnation of a well-formed origin.
pub fn parse_origin(origin: &str) -> Option<(&str, u64)> {
    let (node, incarnation) = origin.rsplit_once('@')?;
    if node.is_empty() || incarnation.is_empty() || !incarnation.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((node, incarnation.parse().ok()?))
}

/// The unit of dissemination: `value` as taken from a client by node `origin`,
/// which numbered it `seq` (1, 2, ...). On the wire: `["n3", 7, 1234]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(String, u64, i64)", into = "(String, u64, i64)")]
pub struct Item {
    pub origin: String,
    pub seq: u64,
    pub value: i64,
}

impl Item {
    pub fn new(origin: impl Into<String>, seq: u64, value: i64) -> Self {
        Item {
            origin: origin.into(),
            seq,
            value,
        }
    }

    pub fn key(&self) -> ItemKey {
        (self.origin.clone(), self.seq)
    }
}

impl From<(String, u64, i64)> for Item {
    fn from((origin, seq, value): (String, u64, i64)) -> Self {
        Item { origin, seq, value }
    }
}

impl From<Item> for (String, u64, i64) {
    fn from(item: Item) -> Self {
        (item.origin, item.seq, item.value)
    }
}

/// Identifies an item: (origin, seq).
pub type ItemKey = (String, u64);

/// Which items a node holds, per origin. On the wire it is the `have` and
/// `extra` keys of a gossip body (`extra` omitted when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Per origin: every seq in 1..=have is held.
    pub have: BTreeMap<String, u64>,
    /// Per origin: seqs held above `have` (never adjacent to it, never empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, BTreeSet<u64>>,
}

impl Digest {
    /// Whether the item (origin, seq) is held.
    pub fn covers(&self, origin: &str, seq: u64) -> bool {
        self.have.get(origin).is_some_and(|&high| seq <= high)
            || self.extra.get(origin).is_some_and(|s| s.contains(&seq))
    }

    /// Whether every seq is within 1..=[`MAX_SEQ`] (what a well-behaved
    /// peer sends; checked before a peer's digest is believed).
    pub fn sane(&self) -> bool {
        self.have
            .values()
            .all(|&high| (1..=MAX_SEQ).contains(&high))
            && self
                .extra
                .values()
                .flatten()
                .all(|seq| (1..=MAX_SEQ).contains(seq))
    }

    /// How many seqs `extra` lists in all.
    pub fn extra_len(&self) -> usize {
        self.extra.values().map(BTreeSet::len).sum()
    }

    /// Records (origin, seq) as held; returns whether it was new.
    pub fn insert(&mut self, origin: &str, seq: u64) -> bool {
        if seq == 0 || self.covers(origin, seq) {
            return false;
        }
        let high = self.have.get(origin).copied().unwrap_or(0);
        if Some(seq) == high.checked_add(1) {
            self.have.insert(origin.to_string(), seq);
            self.absorb_extra(origin);
        } else {
            self.extra
                .entry(origin.to_string())
                .or_default()
                .insert(seq);
        }
        true
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &Digest) {
        for (origin, &high) in &other.have {
            let mine = self.have.entry(origin.clone()).or_insert(0);
            if high > *mine {
                *mine = high;
            }
        }
        for (origin, seqs) in &other.extra {
            for &seq in seqs {
                self.insert(origin, seq);
            }
        }
        let origins: Vec<String> = self.extra.keys().cloned().collect();
        for origin in origins {
            self.absorb_extra(&origin);
        }
        self.have.retain(|_, high| *high > 0);
    }

    /// Whether every item `other` holds is held here.
    pub fn covers_all(&self, other: &Digest) -> bool {
        // `have` is the highest contiguous seq, so 1..=h is held exactly
        // when our own contiguous run reaches h.
        other
            .have
            .iter()
            .all(|(origin, &high)| self.high_water(origin) >= high)
            && other
                .extra
                .iter()
                .all(|(origin, seqs)| seqs.iter().all(|&seq| self.covers(origin, seq)))
    }

    /// The highest contiguous seq held from `origin` (0 when none).
    pub fn high_water(&self, origin: &str) -> u64 {
        self.have.get(origin).copied().unwrap_or(0)
    }

    /// Moves extras that became contiguous with `have` into it and drops
    /// extras at or below it.
    fn absorb_extra(&mut self, origin: &str) {
        let Some(seqs) = self.extra.get_mut(origin) else {
            return;
        };
        let mut high = self.have.get(origin).copied().unwrap_or(0);
        seqs.retain(|&s| s > high);
        while let Some(next) = high.checked_add(1).filter(|next| seqs.remove(next)) {
            high = next;
        }
        if seqs.is_empty() {
            self.extra.remove(origin);
        }
        if high > 0 {
            self.have.insert(origin.to_string(), high);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn item_is_a_json_triple() {
        let item = Item::new("n3", 7, -1234);
        assert_eq!(serde_json::to_string(&item).unwrap(), r#"["n3",7,-1234]"#);
        let back: Item = serde_json::from_str(r#"["n3",7,-1234]"#).unwrap();
        assert_eq!(back, item);
    }

    #[test]
    fn insert_fills_gaps_and_extra_is_omitted_when_empty() {
        let mut d = Digest::default();
        assert!(d.insert("n1", 2));
        assert!(d.insert("n1", 4));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"have":{},"extra":{"n1":[2,4]}}"#
        );
        assert!(d.insert("n1", 1));
        assert!(!d.insert("n1", 2));
        assert!(d.insert("n1", 3));
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"have":{"n1":4}}"#);
        assert!(d.covers("n1", 4) && !d.covers("n1", 5) && !d.covers("n2", 1));
    }

    #[test]
    fn merge_normalises_overlapping_extras() {
        let mut a = Digest::default();
        a.insert("n0", 3);
        let mut b = Digest::default();
        b.insert("n0", 1);
        b.insert("n0", 2);
        a.merge(&b);
        assert_eq!(a.high_water("n0"), 3);
        assert!(a.extra.is_empty());
    }

    proptest! {
        /// A digest built by inserts covers exactly the inserted seqs, and
        /// merging two digests covers exactly the union.
        #[test]
        fn digest_matches_a_plain_set(
            a in proptest::collection::vec((0usize..3, 1u64..20), 0..40),
            b in proptest::collection::vec((0usize..3, 1u64..20), 0..40),
        ) {
            let origins = ["n0", "n1", "n2"];
            let build = |v: &[(usize, u64)]| {
                let mut d = Digest::default();
                let mut set = BTreeSet::new();
                for &(o, s) in v {
                    prop_assert_eq!(d.insert(origins[o], s), set.insert((o, s)));
                }
                Ok((d, set))
            };
            let (mut da, sa) = build(&a)?;
            let (db, sb) = build(&b)?;
            da.merge(&db);
            for (o, origin) in origins.iter().enumerate() {
                for s in 1..21 {
                    let want = sa.contains(&(o, s)) || sb.contains(&(o, s));
                    prop_assert_eq!(da.covers(origin, s), want);
                }
                if let Some(extra) = da.extra.get(*origin) {
                    prop_assert!(!extra.is_empty());
                    prop_assert!(*extra.iter().next().unwrap() > da.high_water(origin) + 1);
                }
            }
        }
    }
}
