//! The message store's logic as a plain struct (no actix): the items and
//! values a node holds, how a client's value becomes this node's next item,
//! how a peer's items are merged, and what each link is told about new
//! items. The MessageStore actor and the test cluster of `testkit` both run
//! on it.
//!
//! It also keeps what each peer last showed it holds (per incarnation of
//! the peer): a new link starts from it, a restarted peer is offered what
//! it lacks, a durable acknowledgement waits for it, and a restarted node
//! knows from it when it has caught up. Gossip is checked before any of it
//! is believed ([`StoreCore::check`]).

use crate::digest::{parse_origin, Digest, Item, MAX_SEQ};
use crate::protocol::Gossip;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The most `extra` seqs a peer's digest may list (a digest with more holes
/// than this is not a peer's honest state, and would cost memory).
pub const MAX_EXTRA: usize = 100_000;

/// The longest round a peer may announce (ms).
pub const MAX_ROUND_MS: u64 = 600_000;

/// Why a gossip message is not believed; each kind is logged once per peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadGossip {
    /// Gossip before `init`: the cluster is not known yet.
    BeforeInit,
    /// From a client, a node outside the cluster, or this node itself.
    NotAMember,
    /// An item or digest origin that is not `<member>@<incarnation>`.
    BadOrigin(String),
    /// A seq outside 1..=MAX_SEQ, or more extras than MAX_EXTRA.
    OutOfBounds,
    /// Claims about this node's own items that it never made.
    Impossible,
    /// A round announcement of no or absurd length.
    BadRound,
}

impl BadGossip {
    /// The kind, for logging once per peer and kind.
    pub fn kind(&self) -> &'static str {
        match self {
            BadGossip::BeforeInit => "before-init",
            BadGossip::NotAMember => "not-a-member",
            BadGossip::BadOrigin(_) => "bad-origin",
            BadGossip::OutOfBounds => "out-of-bounds",
            BadGossip::Impossible => "impossible",
            BadGossip::BadRound => "bad-round",
        }
    }
}

impl std::fmt::Display for BadGossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadGossip::BeforeInit => write!(f, "gossip before init"),
            BadGossip::NotAMember => write!(f, "sender is not another cluster node"),
            BadGossip::BadOrigin(origin) => {
                write!(f, "origin {origin:?} is not a member@incarnation")
            }
            BadGossip::OutOfBounds => write!(f, "seq out of 1..={MAX_SEQ} or too many extras"),
            BadGossip::Impossible => write!(f, "claims items of this node that it never made"),
            BadGossip::BadRound => write!(f, "round announcement of no or absurd length"),
        }
    }
}

/// What a peer showed it holds, in its latest incarnation.
#[derive(Debug, Clone)]
struct PeerView {
    incarnation: u64,
    holds: Digest,
}

/// How a peer's message relates to what was known of the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerNews {
    /// The first message, or one of the incarnation already known: the
    /// peer's link takes it as usual.
    Current,
    /// A new incarnation: the peer restarted and holds only what this
    /// message shows. Its link starts over from that digest and sends it
    /// these items (every item it lacks).
    Restarted { catch_up: Arc<[Item]> },
    /// From an incarnation older than the one known (delivered late): its
    /// items count, its digest does not.
    Stale,
}

/// What taking a peer's message changed.
#[derive(Debug, Clone)]
pub struct Received {
    pub new: Option<NewItems>,
    pub peer: PeerNews,
}

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
    /// The origin of this node's items (node id and incarnation).
    origin: Option<String>,
    /// The cluster's node ids (from `init`).
    members: BTreeSet<String>,
    /// Per peer: what it last showed it holds.
    peers: BTreeMap<String, PeerView>,
    /// Whether this node holds everything some peer showed it holds (or has
    /// no peer): until then a restarted node's reads would miss history.
    caught_up: bool,
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
    /// Records the origin of this node's items (see
    /// [`crate::digest::origin_of`]) and the cluster's node ids; the first
    /// call stays.
    pub fn join(&mut self, origin: String, members: &[String]) {
        if self.origin.is_some() {
            return;
        }
        self.origin = Some(origin);
        self.members = members.iter().cloned().collect();
        self.caught_up = self.members.len() <= 1;
    }

    /// Whether the gossip `from` a peer may be believed: after `init`, from
    /// another cluster node, every origin `<member>@<incarnation>`, every
    /// seq in 1..=[`MAX_SEQ`], no claim of this node's own items beyond
    /// those it made, a sane round announcement.
    pub fn check(&self, from: &str, gossip: &Gossip) -> Result<(), BadGossip> {
        let me = self.origin.as_deref().ok_or(BadGossip::BeforeInit)?;
        let my_node = parse_origin(me).map_or(me, |(node, _)| node);
        if from == my_node || !self.members.contains(from) {
            return Err(BadGossip::NotAMember);
        }
        let digest = &gossip.digest;
        let origins = gossip
            .items
            .iter()
            .map(|item| item.origin.as_str())
            .chain(digest.have.keys().map(String::as_str))
            .chain(digest.extra.keys().map(String::as_str));
        for origin in origins {
            if !parse_origin(origin).is_some_and(|(node, _)| self.members.contains(node)) {
                return Err(BadGossip::BadOrigin(origin.to_string()));
            }
        }
        let seqs_ok = gossip
            .items
            .iter()
            .all(|item| (1..=MAX_SEQ).contains(&item.seq));
        if !seqs_ok || !digest.sane() || digest.extra_len() > MAX_EXTRA {
            return Err(BadGossip::OutOfBounds);
        }
        let mine_unknown = |seq: u64| !self.digest.covers(me, seq);
        let claims_unmade = gossip
            .items
            .iter()
            .filter(|item| item.origin == me)
            .any(|item| mine_unknown(item.seq))
            || digest.high_water(me) > self.digest.high_water(me)
            || digest
                .extra
                .get(me)
                .is_some_and(|seqs| seqs.iter().any(|&seq| mine_unknown(seq)));
        if claims_unmade {
            return Err(BadGossip::Impossible);
        }
        if gossip.round.is_some_and(|change| change.0 > MAX_ROUND_MS) {
            return Err(BadGossip::BadRound);
        }
        Ok(())
    }

    /// A checked message from peer `from`: takes its items, and its digest
    /// as what the peer holds (see [`PeerNews`]).
    pub fn receive(&mut self, from: &str, gossip: &Gossip) -> Received {
        let mut sent = gossip.digest.clone();
        for item in &gossip.items {
            sent.insert(&item.origin, item.seq);
        }
        let peer = match self.peers.get_mut(from) {
            Some(view) if gossip.inc < view.incarnation => PeerNews::Stale,
            Some(view) if gossip.inc == view.incarnation => {
                view.holds.merge(&sent);
                PeerNews::Current
            }
            known => {
                let restarted = known.is_some();
                self.peers.insert(
                    from.to_string(),
                    PeerView {
                        incarnation: gossip.inc,
                        holds: sent,
                    },
                );
                if restarted {
                    PeerNews::Restarted {
                        catch_up: self.items_lacked_by(from),
                    }
                } else {
                    PeerNews::Current
                }
            }
        };
        let new = self.merge(from, &gossip.items);
        if !self.caught_up && peer != PeerNews::Stale {
            self.caught_up = self
                .peers
                .get(from)
                .is_some_and(|view| self.digest.covers_all(&view.holds));
        }
        Received { new, peer }
    }

    /// Whether `init` has come.
    pub fn joined(&self) -> bool {
        self.origin.is_some()
    }

    /// Whether this node holds everything some peer showed it holds (or
    /// has no peers): a restarted node's reads wait for it.
    pub fn caught_up(&self) -> bool {
        self.caught_up || self.origin.is_none()
    }

    /// Stops waiting to catch up (no peer was heard in time).
    pub fn give_up_catching_up(&mut self) {
        self.caught_up = true;
    }

    /// Whether some peer showed it holds this node's item `seq` (a durable
    /// acknowledgement may go).
    pub fn held_elsewhere(&self, seq: u64) -> bool {
        let Some(me) = &self.origin else {
            return false;
        };
        self.peers.values().any(|view| view.holds.covers(me, seq))
    }

    /// Whether this node is alone in its cluster (nobody else can hold a
    /// value).
    pub fn alone(&self) -> bool {
        self.members.len() <= 1
    }

    /// What `peer` last showed it holds.
    pub fn peer_holds(&self, peer: &str) -> Option<&Digest> {
        self.peers.get(peer).map(|view| &view.holds)
    }

    /// Items held that `peer` is not known to hold, in arrival order: those
    /// its latest digest lacks, or before any digest, those it did not send.
    fn items_lacked_by(&self, peer: &str) -> Arc<[Item]> {
        let holds = self.peer_holds(peer);
        self.items
            .iter()
            .filter(|(item, from)| match holds {
                Some(holds) => !holds.covers(&item.origin, item.seq),
                None => from.as_deref() != Some(peer),
            })
            .map(|(item, _)| item.clone())
            .collect()
    }

    /// The seq of this node's own item with `value`, if it is one.
    pub fn own_seq_of(&self, value: i64) -> Option<u64> {
        let me = self.origin.as_deref()?;
        self.items
            .iter()
            .rev()
            .find(|(item, _)| item.value == value && item.origin == me)
            .map(|(item, _)| item.seq)
    }

    /// A client's value: a new item of this node's unless the value is held
    /// already (then `None`).
    pub fn broadcast(&mut self, value: i64) -> Result<Option<NewItems>, NotJoined> {
        let me = self.origin.clone().ok_or(NotJoined)?;
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

    /// What a new link to `peer` starts with: every item held that the peer
    /// is not known to hold (see `items_lacked_by`).
    pub fn items_for_new_link(&self, peer: &str) -> Arc<[Item]> {
        self.items_lacked_by(peer)
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
        store.join("n0".into(), &[]);
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
        store.join("n3".into(), &[]);
        store.join("n4".into(), &[]);
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

    fn cluster_member() -> StoreCore {
        let mut store = StoreCore::default();
        let members: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
        store.join("n0@7".into(), &members);
        store
    }

    fn gossip(inc: u64, items: &[Item], have: &[(&str, u64)]) -> Gossip {
        let mut digest = Digest::default();
        for (origin, seq) in have {
            digest.insert(origin, *seq);
        }
        Gossip {
            items: items.to_vec(),
            digest,
            ts: 0,
            inc,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        }
    }

    #[test]
    fn gossip_is_checked_before_it_is_believed() {
        let mut store = cluster_member();
        store.broadcast(1).unwrap();
        let ok = gossip(5, &[Item::new("n1@5", 1, 10)], &[("n0@7", 1), ("n2@3", 4)]);
        assert_eq!(store.check("n1", &ok), Ok(()));
        let cases = [
            ("c1", ok.clone(), BadGossip::NotAMember),
            ("n9", ok.clone(), BadGossip::NotAMember),
            ("n0", ok.clone(), BadGossip::NotAMember),
            (
                "n1",
                gossip(5, &[Item::new("n9@5", 1, 10)], &[]),
                BadGossip::BadOrigin("n9@5".into()),
            ),
            (
                "n1",
                gossip(5, &[Item::new("n1", 1, 10)], &[]),
                BadGossip::BadOrigin("n1".into()),
            ),
            (
                "n1",
                gossip(5, &[], &[("n2@x", 1)]),
                BadGossip::BadOrigin("n2@x".into()),
            ),
            (
                "n1",
                gossip(5, &[Item::new("n1@5", 0, 10)], &[]),
                BadGossip::OutOfBounds,
            ),
            (
                "n1",
                gossip(5, &[], &[("n2@3", MAX_SEQ + 1)]),
                BadGossip::OutOfBounds,
            ),
            ("n1", gossip(5, &[], &[("n0@7", 2)]), BadGossip::Impossible),
            (
                "n1",
                gossip(5, &[Item::new("n0@7", 2, 66)], &[]),
                BadGossip::Impossible,
            ),
        ];
        for (from, msg, want) in cases {
            assert_eq!(store.check(from, &msg), Err(want), "{from} {msg:?}");
        }
        let mut huge = ok.clone();
        huge.digest.have.insert("n2@3".into(), u64::MAX);
        assert_eq!(store.check("n1", &huge), Err(BadGossip::OutOfBounds));
        let mut round = ok.clone();
        round.round = Some(crate::protocol::RoundChange(MAX_ROUND_MS + 1, 0));
        assert_eq!(store.check("n1", &round), Err(BadGossip::BadRound));
        assert_eq!(
            StoreCore::default().check("n1", &ok),
            Err(BadGossip::BeforeInit)
        );
    }

    #[test]
    fn a_restarted_peer_is_offered_everything_it_lacks_and_late_old_news_is_stale() {
        let mut store = cluster_member();
        store.broadcast(1).unwrap();
        let theirs = Item::new("n1@5", 1, 10);
        let first = store.receive(
            "n1",
            &gossip(5, std::slice::from_ref(&theirs), &[("n0@7", 1)]),
        );
        assert_eq!(first.peer, PeerNews::Current);
        assert!(store.held_elsewhere(1));
        // n1 restarts as incarnation 9: it holds nothing of the past.
        let back = store.receive("n1", &gossip(9, &[], &[]));
        match back.peer {
            PeerNews::Restarted { catch_up } => assert_eq!(
                catch_up.to_vec(),
                [Item::new("n0@7", 1, 1), theirs.clone()],
                "its own old items too"
            ),
            other => panic!("{other:?}"),
        }
        assert!(!store.held_elsewhere(1), "the restarted n1 lost it");
        // A message of the old incarnation, delivered late: its items count,
        // its digest does not.
        let late = store.receive(
            "n1",
            &gossip(5, &[Item::new("n1@5", 2, 11)], &[("n0@7", 1)]),
        );
        assert_eq!(late.peer, PeerNews::Stale);
        assert!(late.new.is_some() && !store.held_elsewhere(1));
        // A new link to n1 starts from what the restarted n1 showed.
        store.receive("n1", &gossip(9, &[], &[("n0@7", 1)]));
        assert_eq!(
            store.items_for_new_link("n1").to_vec(),
            [theirs, Item::new("n1@5", 2, 11)],
            "n0@7/1 it holds; its old incarnation's items it lost"
        );
    }

    #[test]
    fn a_node_is_caught_up_once_it_holds_what_a_peer_holds() {
        let mut store = cluster_member();
        assert!(!store.caught_up());
        // n1 shows items this node lacks (a restarted node's first news).
        store.receive("n1", &gossip(5, &[], &[("n1@5", 3)]));
        assert!(!store.caught_up());
        let items: Vec<Item> = (1..=3).map(|s| Item::new("n1@5", s, s as i64)).collect();
        store.receive("n1", &gossip(5, &items, &[("n1@5", 3)]));
        assert!(store.caught_up());
        let mut alone = StoreCore::default();
        alone.join("n0@1".into(), &["n0".to_string()]);
        assert!(alone.caught_up() && alone.alone());
    }

    #[test]
    fn a_new_link_starts_with_every_item_but_its_peers() {
        let mut store = StoreCore::default();
        // Gossip that arrives before init is kept.
        store.merge("n4", &[Item::new("n4", 1, 99)]);
        store.join("n0".into(), &[]);
        store.broadcast(7).unwrap();
        assert_eq!(
            *store.items_for_new_link("n1"),
            [Item::new("n4", 1, 99), Item::new("n0", 1, 7)]
        );
        assert_eq!(*store.items_for_new_link("n4"), [Item::new("n0", 1, 7)]);
        assert!(store.digest().covers("n4", 1));
    }
}
