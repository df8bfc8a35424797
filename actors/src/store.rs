//! MessageStore: the actor around [`StoreCore`], the node's set of items
//! and values. It answers client broadcasts and reads, checks and merges
//! gossip from peers, and hands every new item to the neighbour links (never
//! to the link it came from, which gets only the changed digest so it can
//! acknowledge).
//!
//! New items go to the links once the mailbox is drained, not once per
//! message: a hub that takes a round's batches from N leaves in one go
//! hands each link one update, not N (N² link updates a round otherwise).
//!
//! Restarts: a peer's new incarnation sends its link [`PeerHolds`] with
//! everything it lacks. This node's own reads wait until it has caught up
//! with a peer (at most [`StoreSetup::read_hold_ms`]), so that a restarted
//! node does not answer with an empty history. With durable
//! acknowledgements, `broadcast_ok` waits until a peer's digest shows the
//! value, but not past the client's patience: a held acknowledgement that
//! reaches its reply's deadline ([`ReplyTo::answer_by`]) is answered with an
//! indefinite `timeout` error instead. No reply goes after its deadline: the
//! client has been closed, and Maelstrom would ignore the node from then on.

use crate::clock::Clock;
use crate::config::Config;
use crate::digest::{origin_of, Item};
use crate::link::loss::LossMeter;
use crate::messages::{
    ClientBroadcast, ClientRead, Drain, Joined, LinkHandle, LinksChanged, LocalUpdate, Merge,
    Outbound, PeerGossip, PeerHolds,
};
use crate::protocol::{OutBody, ReplyTo, TEMPORARILY_UNAVAILABLE, TIMEOUT};
use crate::store_core::{NewItems, NotJoined, PeerNews, StoreCore};
use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How the store is set up.
#[derive(Debug, Clone, Copy)]
pub struct StoreSetup {
    pub clock: Clock,
    /// This process's incarnation (see [`origin_of`]).
    pub incarnation: u64,
    /// Answer `broadcast_ok` only once a peer holds the value.
    pub durable_acks: bool,
    /// The longest a read waits for the node to catch up after its start.
    pub read_hold_ms: u64,
}

impl StoreSetup {
    /// The setup for a node with `config`: reads wait at most about two
    /// rounds and two round trips (what a restarted node needs to hear
    /// from its peers and get their history), between 1 and 3 s.
    pub fn new(config: &Config, clock: Clock, incarnation: u64) -> Self {
        let g = &config.gossip;
        StoreSetup {
            clock,
            incarnation,
            durable_acks: config.durable_acks,
            read_hold_ms: (2 * g.interval_ms + 4 * g.latency_hint_ms).clamp(1_000, 3_000),
        }
    }
}

/// A durable acknowledgement not given yet.
struct HeldAck {
    /// This node's item seq of the value.
    seq: u64,
    to: ReplyTo,
}

/// How long before its reply's deadline a held acknowledgement gives up,
/// so that the timeout error is still in time.
const ACK_GIVE_UP_EARLY_MS: u64 = 100;

pub struct MessageStore {
    core: StoreCore,
    setup: StoreSetup,
    links: BTreeMap<String, LinkHandle>,
    out: Recipient<Outbound>,
    /// New items not yet handed to the links, each with the peer it came
    /// from (None: a client's).
    unpublished: Vec<(Item, Option<String>)>,
    /// The earliest send instant of the peer batches among them.
    unpublished_sent_at: Option<u64>,
    /// Durable acknowledgements not yet given, oldest first.
    held_acks: Vec<HeldAck>,
    /// Reads waiting for the node to catch up.
    held_reads: Vec<ReplyTo>,
    /// (peer, kind) of bad gossip already logged.
    logged_bad: BTreeSet<(String, &'static str)>,
    /// When `init` came (clock ms).
    joined_at: u64,
    /// Gossip that came before `init` (a peer that started first), taken
    /// once the cluster is known and the gossip can be checked.
    early: Vec<Merge>,
    /// What the measured links' peers lose on their way here.
    loss: LossMeter,
}

/// The most gossip messages kept from before `init`; later ones are
/// dropped (their senders send them again).
pub const MAX_EARLY_GOSSIP: usize = 1_000;

/// Hands the unpublished items to the links (sent to itself, so it runs
/// once the mailbox is drained).
#[derive(Message)]
#[rtype(result = "()")]
struct PublishUnpublished;

impl MessageStore {
    pub fn new(out: Recipient<Outbound>, setup: StoreSetup) -> Self {
        MessageStore {
            core: StoreCore::default(),
            setup,
            links: BTreeMap::new(),
            out,
            unpublished: Vec::new(),
            loss: LossMeter::default(),
            unpublished_sent_at: None,
            held_acks: Vec::new(),
            held_reads: Vec::new(),
            logged_bad: BTreeSet::new(),
            early: Vec::new(),
            joined_at: 0,
        }
    }

    /// Queues new items for the links (`sent_at` as in [`LocalUpdate`]);
    /// the first of a drain asks for the publication.
    fn publish(&mut self, new: &NewItems, sent_at: Option<u64>, ctx: &mut Context<Self>) {
        if self.unpublished.is_empty() {
            ctx.notify(PublishUnpublished);
        }
        let source = new.source().map(str::to_string);
        self.unpublished.extend(
            new.items()
                .iter()
                .map(|item| (item.clone(), source.clone())),
        );
        if let Some(sent) = sent_at {
            self.unpublished_sent_at = Some(self.unpublished_sent_at.map_or(sent, |t| t.min(sent)));
        }
    }

    /// Hands every link the queued items but those its own peer sent, and
    /// the digest as it is now.
    fn flush_unpublished(&mut self) {
        if self.unpublished.is_empty() {
            return;
        }
        let unpublished = std::mem::take(&mut self.unpublished);
        let sent_at = self.unpublished_sent_at.take();
        let all: Arc<[Item]> = unpublished.iter().map(|(item, _)| item.clone()).collect();
        let from_clients_only = unpublished.iter().all(|(_, from)| from.is_none());
        let inbound_loss_permille = self.loss.permille();
        for (peer, link) in &self.links {
            let items = if from_clients_only {
                all.clone()
            } else {
                unpublished
                    .iter()
                    .filter(|(_, from)| from.as_deref() != Some(peer.as_str()))
                    .map(|(item, _)| item.clone())
                    .collect()
            };
            link.updates.do_send(LocalUpdate {
                items,
                digest: self.core.digest().clone(),
                sent_at,
                inbound_loss_permille,
            });
        }
    }

    /// Sends a reply if it is still in time.
    fn reply(&self, to: &ReplyTo, body: OutBody) {
        let now = self.setup.clock.now_ms();
        if now > to.answer_by {
            log::warn!(
                "not answering {}'s request {}: {} ms past its deadline, the client has given up",
                to.client,
                to.msg_id,
                now - to.answer_by
            );
            return;
        }
        self.out.do_send(Outbound::reply(to, body));
    }

    fn broadcast_ok(&self, to: &ReplyTo) {
        self.reply(
            to,
            OutBody::BroadcastOk {
                in_reply_to: to.msg_id,
            },
        );
    }

    fn read_ok(&self, to: &ReplyTo) {
        self.reply(
            to,
            OutBody::ReadOk {
                messages: self.core.values().iter().copied().collect(),
                in_reply_to: to.msg_id,
            },
        );
    }

    /// Gives the durable acknowledgements a peer's digest now allows, and
    /// the held reads once caught up.
    fn release(&mut self) {
        if !self.held_acks.is_empty() {
            let (durable, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held_acks)
                .into_iter()
                .partition(|held| self.core.held_elsewhere(held.seq));
            self.held_acks = waiting;
            for held in durable {
                self.broadcast_ok(&held.to);
            }
        }
        if self.core.caught_up() {
            self.answer_held_reads();
        }
    }

    /// Checks a peer's message; takes its items and what it shows the peer
    /// holds; hands the message to the peer's link (its acknowledgements),
    /// after [`PeerHolds`] when the peer restarted; publishes the new items.
    fn take_gossip(&mut self, msg: Merge, ctx: &mut Context<Self>) {
        if let Err(bad) = self.core.check(&msg.from, &msg.gossip) {
            if self.logged_bad.insert((msg.from.clone(), bad.kind())) {
                log::warn!(
                    "bad gossip from {}: {bad}; dropped (its further {} gossip silently)",
                    msg.from,
                    bad.kind()
                );
            }
            return;
        }
        let was_caught_up = self.core.caught_up();
        let received = self.core.receive(&msg.from, &msg.gossip);
        if !was_caught_up && self.core.caught_up() {
            log::info!(
                "caught up with {} {} ms after init ({} values)",
                msg.from,
                self.setup.clock.now_ms().saturating_sub(self.joined_at),
                self.core.values().len()
            );
        }
        let sent_at = msg.gossip.ts;
        if let Some(link) = self.links.get(&msg.from) {
            if link.meters_loss && received.peer != PeerNews::Stale {
                let now = self.setup.clock.now_ms();
                self.loss.on_message(now, &msg.from, &msg.gossip);
            }
            if let PeerNews::Restarted { catch_up } = &received.peer {
                log::info!(
                    "{} restarted (incarnation {}); offering it {} items",
                    msg.from,
                    msg.gossip.inc,
                    catch_up.len()
                );
                link.holds.do_send(PeerHolds {
                    digest: self.core.peer_holds(&msg.from).cloned().unwrap_or_default(),
                    catch_up: catch_up.clone(),
                });
            }
            if received.peer != PeerNews::Stale {
                link.gossip.do_send(PeerGossip(msg.gossip));
            }
        }
        if let Some(new) = received.new {
            self.publish(&new, Some(sent_at), ctx);
        }
        self.release();
    }

    /// Answers the held acknowledgements at their deadline with an
    /// indefinite error: the value stays and spreads, but the client has
    /// to stop waiting before Maelstrom closes it.
    fn expire_held_acks(&mut self) {
        let now = self.setup.clock.now_ms();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held_acks)
            .into_iter()
            .partition(|held| now + ACK_GIVE_UP_EARLY_MS >= held.to.answer_by);
        self.held_acks = waiting;
        if due.is_empty() {
            return;
        }
        log::warn!(
            "{} durable acknowledgements not given in time (no peer reachable?); answering timeout",
            due.len()
        );
        for held in due {
            self.reply(
                &held.to,
                OutBody::Error {
                    in_reply_to: held.to.msg_id,
                    code: TIMEOUT,
                    text: "no peer acknowledged the value in time; it is kept here and will still spread".into(),
                },
            );
        }
    }

    fn answer_held_reads(&mut self) {
        for to in std::mem::take(&mut self.held_reads) {
            self.read_ok(&to);
        }
    }
}

impl Handler<PublishUnpublished> for MessageStore {
    type Result = ();

    /// Publishes what the drained mailbox brought.
    fn handle(&mut self, _: PublishUnpublished, _ctx: &mut Self::Context) {
        self.flush_unpublished();
    }
}

impl Actor for MessageStore {
    type Context = Context<Self>;
}

impl Handler<Joined> for MessageStore {
    type Result = ();

    /// Records the origin of this node's items and the cluster (the first
    /// one stays: the topology manager refuses a second `init` as another
    /// id). Reads wait for the node to catch up, for a bounded time.
    fn handle(&mut self, msg: Joined, ctx: &mut Self::Context) {
        self.core.join(
            origin_of(&msg.node_id, self.setup.incarnation),
            &msg.node_ids,
        );
        self.joined_at = self.setup.clock.now_ms();
        for early in std::mem::take(&mut self.early) {
            self.take_gossip(early, ctx);
        }
        if !self.core.caught_up() {
            ctx.run_later(
                Duration::from_millis(self.setup.read_hold_ms),
                |act, _ctx| {
                    if !act.held_reads.is_empty() {
                        log::warn!(
                            "not caught up with any peer after {} ms; answering {} held reads",
                            act.setup.read_hold_ms,
                            act.held_reads.len()
                        );
                    }
                    act.core.give_up_catching_up();
                    act.answer_held_reads();
                },
            );
        }
    }
}

impl Handler<ClientBroadcast> for MessageStore {
    type Result = ();

    /// Stores a new value as this node's next item and publishes it; a
    /// durable acknowledgement waits for a peer to hold it.
    fn handle(&mut self, msg: ClientBroadcast, ctx: &mut Self::Context) {
        match self.core.broadcast(msg.value) {
            Err(NotJoined) => {
                log::warn!("broadcast before init; answering temporarily-unavailable");
                self.reply(
                    &msg.reply_to,
                    OutBody::Error {
                        in_reply_to: msg.reply_to.msg_id,
                        code: TEMPORARILY_UNAVAILABLE,
                        text: "node not initialised yet".into(),
                    },
                );
                return;
            }
            Ok(Some(new)) => self.publish(&new, None, ctx),
            Ok(None) => {}
        }
        if self.setup.durable_acks && !self.core.alone() {
            // A value held already came from a peer (durable) or is one of
            // ours, which may still wait for a peer.
            if let Some(seq) = self.core.own_seq_of(msg.value) {
                if !self.core.held_elsewhere(seq) {
                    let give_up = msg.reply_to.answer_by.saturating_sub(ACK_GIVE_UP_EARLY_MS);
                    self.held_acks.push(HeldAck {
                        seq,
                        to: msg.reply_to,
                    });
                    ctx.run_later(
                        Duration::from_millis(give_up.saturating_sub(self.setup.clock.now_ms())),
                        |act, _ctx| act.expire_held_acks(),
                    );
                    return;
                }
            }
        }
        self.broadcast_ok(&msg.reply_to);
    }
}

impl Handler<ClientRead> for MessageStore {
    type Result = ();

    /// Answers with every distinct value held, once caught up.
    fn handle(&mut self, msg: ClientRead, _ctx: &mut Self::Context) {
        if self.core.caught_up() {
            self.read_ok(&msg.reply_to);
        } else {
            self.held_reads.push(msg.reply_to);
        }
    }
}

impl Handler<Merge> for MessageStore {
    type Result = ();

    /// Takes a peer's message (see `MessageStore::take_gossip`); before
    /// `init`, keeps it for later.
    fn handle(&mut self, msg: Merge, ctx: &mut Self::Context) {
        if self.core.joined() {
            self.take_gossip(msg, ctx);
        } else if self.early.len() < MAX_EARLY_GOSSIP {
            self.early.push(msg);
        } else {
            log::warn!(
                "gossip from {} before init, {MAX_EARLY_GOSSIP} kept already; dropped",
                msg.from
            );
        }
    }
}

impl Handler<LinksChanged> for MessageStore {
    type Result = ();

    /// Forgets removed links; starts each added one from what its peer is
    /// known to hold, with every other item held except those its peer
    /// sent.
    fn handle(&mut self, msg: LinksChanged, _ctx: &mut Self::Context) {
        // The links that stay hear of what came before the change first; an
        // added link starts with everything anyway.
        self.flush_unpublished();
        for peer in &msg.removed {
            self.links.remove(peer);
        }
        for link in msg.added {
            if let Some(holds) = self.core.peer_holds(&link.peer) {
                link.holds.do_send(PeerHolds {
                    digest: holds.clone(),
                    catch_up: Arc::new([]),
                });
            }
            link.updates.do_send(LocalUpdate {
                items: self.core.items_for_new_link(&link.peer),
                digest: self.core.digest().clone(),
                sent_at: None,
                inbound_loss_permille: self.loss.permille(),
            });
            self.links.insert(link.peer.clone(), link);
        }
    }
}

impl Handler<Drain> for MessageStore {
    type Result = ();

    /// Answers once every earlier message is handled (and replied to).
    fn handle(&mut self, _: Drain, _ctx: &mut Self::Context) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Digest, Item};
    use crate::protocol::{Gossip, ReplyTo, NO_DEADLINE};
    use crate::testkit::{recorder, take, Recorder};

    /// This node's items in the tests: n0, incarnation 1.
    const ME: &str = "n0@1";

    fn setup(durable_acks: bool, read_hold_ms: u64) -> StoreSetup {
        StoreSetup {
            clock: Clock::starting_at(0),
            incarnation: 1,
            durable_acks,
            read_hold_ms,
        }
    }

    fn gossip(from: &str, inc: u64, items: Vec<Item>, have: &[(&str, u64)]) -> Merge {
        let mut digest = Digest::default();
        for (origin, seq) in have {
            digest.insert(origin, *seq);
        }
        Merge {
            from: from.into(),
            gossip: Gossip {
                items,
                digest,
                ts: 0,
                inc,
                round: None,
                term: 0,
                copy: None,
                loss: 0,
            },
        }
    }

    fn merge(from: &str, items: Vec<Item>) -> Merge {
        gossip(from, 1, items, &[])
    }

    fn reply_to(msg_id: u64) -> ReplyTo {
        ReplyTo {
            answer_by: NO_DEADLINE,
            client: "c9".into(),
            node: "n0".into(),
            msg_id,
        }
    }

    struct Rig {
        store: Addr<MessageStore>,
        out: Addr<Recorder<Outbound>>,
        links: BTreeMap<&'static str, Addr<Recorder<LocalUpdate>>>,
        /// What every link actor receives from its peer, via the store.
        gossip: Addr<Recorder<PeerGossip>>,
        holds: Addr<Recorder<PeerHolds>>,
    }

    fn handle(
        peer: &str,
        updates: &Addr<Recorder<LocalUpdate>>,
        gossip: &Addr<Recorder<PeerGossip>>,
        holds: &Addr<Recorder<PeerHolds>>,
    ) -> LinkHandle {
        LinkHandle {
            peer: peer.to_string(),
            updates: updates.clone().recipient(),
            gossip: gossip.clone().recipient(),
            holds: holds.clone().recipient(),
            meters_loss: false,
        }
    }

    impl Rig {
        /// A joined n0 in a cluster n0..n9, with links to `peers`; with
        /// `caught_up`, n1 has shown it holds nothing (so reads go at once).
        async fn with(peers: &[&'static str], setup: StoreSetup, caught_up: bool) -> Rig {
            let out = recorder::<Outbound>();
            let store = MessageStore::new(out.clone().recipient(), setup).start();
            store.do_send(Joined {
                node_id: "n0".into(),
                node_ids: (0..10).map(|i| format!("n{i}")).collect(),
            });
            let links: BTreeMap<_, _> = peers.iter().map(|&p| (p, recorder())).collect();
            let gossip = recorder::<PeerGossip>();
            let holds = recorder::<PeerHolds>();
            store.do_send(LinksChanged {
                added: links
                    .iter()
                    .map(|(&p, r)| handle(p, r, &gossip, &holds))
                    .collect(),
                removed: vec![],
            });
            if caught_up {
                store.do_send(gossip_msg_from_n1_showing_nothing());
            }
            let rig = Rig {
                store,
                out,
                links,
                gossip,
                holds,
            };
            rig.settle().await;
            for r in rig.links.values() {
                take(r).await;
            }
            take(&rig.gossip).await;
            rig
        }

        async fn new(peers: &[&'static str]) -> Rig {
            Rig::with(peers, setup(false, 1_000), true).await
        }

        /// Waits until the store has handled everything sent so far.
        async fn settle(&self) {
            self.store.send(Drain).await.unwrap();
        }

        async fn replies(&self) -> Vec<OutBody> {
            take(&self.out).await.into_iter().map(|o| o.body).collect()
        }

        async fn items_sent_to(&self, peer: &str) -> Vec<Vec<Item>> {
            take(&self.links[peer])
                .await
                .into_iter()
                .map(|u| u.items.to_vec())
                .collect()
        }
    }

    fn gossip_msg_from_n1_showing_nothing() -> Merge {
        merge("n1", vec![])
    }

    #[actix::test]
    async fn broadcast_is_stored_published_and_acknowledged_once() {
        let rig = Rig::new(&["n1", "n2"]).await;
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(1),
            value: 5,
        });
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(2),
            value: 5,
        });
        rig.store.do_send(ClientRead {
            reply_to: reply_to(3),
        });
        rig.settle().await;
        assert_eq!(
            rig.replies().await,
            [
                OutBody::BroadcastOk { in_reply_to: 1 },
                OutBody::BroadcastOk { in_reply_to: 2 },
                OutBody::ReadOk {
                    messages: vec![5],
                    in_reply_to: 3
                },
            ]
        );
        let once = vec![vec![Item::new(ME, 1, 5)]];
        assert_eq!(rig.items_sent_to("n1").await, once);
        assert_eq!(rig.items_sent_to("n2").await, once);
    }

    #[actix::test]
    async fn gossip_is_merged_before_its_link_sees_it_and_before_a_later_read() {
        let rig = Rig::new(&["n1"]).await;
        let a = Item::new("n1@1", 1, 10);
        rig.store.do_send(merge("n1", vec![a.clone()]));
        rig.store.do_send(ClientRead {
            reply_to: reply_to(1),
        });
        rig.store
            .do_send(merge("n9", vec![Item::new("n9@1", 1, 11)]));
        rig.settle().await;
        assert_eq!(
            rig.replies().await[0],
            OutBody::ReadOk {
                messages: vec![10],
                in_reply_to: 1
            },
            "a read that follows gossip on stdin sees its values"
        );
        let forwarded = take(&rig.gossip).await;
        assert_eq!(
            forwarded.len(),
            1,
            "n9 has no link here: nothing to forward"
        );
        assert_eq!(forwarded[0].0.items, [a]);
    }

    #[actix::test]
    async fn merged_items_go_to_every_link_but_their_source_and_only_when_new() {
        let rig = Rig::new(&["n1", "n2", "n3"]).await;
        let a = Item::new("n1@1", 1, 10);
        let b = Item::new("n1@1", 2, 11);
        rig.store.do_send(merge("n1", vec![a.clone()]));
        // n2 relays a again plus b: only b is new.
        rig.store.do_send(merge("n2", vec![a.clone(), b.clone()]));
        rig.settle().await;
        // Both merges came in one drained mailbox: one update per link.
        let source = take(&rig.links["n1"]).await;
        assert_eq!(
            source.iter().map(|u| u.items.to_vec()).collect::<Vec<_>>(),
            [vec![b.clone()]],
            "the source link gets the digest change, not its own items"
        );
        assert!(source[0].digest.covers("n1@1", 1) && source[0].digest.covers("n1@1", 2));
        assert_eq!(rig.items_sent_to("n2").await, [vec![a.clone()]]);
        assert_eq!(rig.items_sent_to("n3").await, [vec![a, b]]);
        rig.store.do_send(ClientRead {
            reply_to: reply_to(4),
        });
        rig.settle().await;
        assert_eq!(
            rig.replies().await[0],
            OutBody::ReadOk {
                messages: vec![10, 11],
                in_reply_to: 4
            }
        );
    }

    #[actix::test]
    async fn bad_gossip_is_dropped_and_the_node_keeps_serving() {
        let rig = Rig::new(&["n1"]).await;
        for bad in [
            merge("c1", vec![Item::new("n1@1", 1, 666)]),
            merge("n99", vec![Item::new("n1@1", 1, 666)]),
            merge("n0", vec![Item::new("n1@1", 1, 666)]),
            merge("n1", vec![Item::new("n99@1", 1, 666)]),
            merge("n1", vec![Item::new("n1@1", u64::MAX, 666)]),
            merge("n1", vec![Item::new(ME, 1, 666)]),
            gossip(
                "n1",
                1,
                vec![Item::new("n1@1", 1, 666)],
                &[("n2@1", u64::MAX)],
            ),
        ] {
            rig.store.do_send(bad);
        }
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(1),
            value: 5,
        });
        rig.store.do_send(ClientRead {
            reply_to: reply_to(2),
        });
        rig.settle().await;
        assert_eq!(
            rig.replies().await,
            [
                OutBody::BroadcastOk { in_reply_to: 1 },
                OutBody::ReadOk {
                    messages: vec![5],
                    in_reply_to: 2
                }
            ],
            "no value of bad gossip is kept"
        );
        assert!(take(&rig.gossip).await.is_empty(), "nor shown to a link");
    }

    #[actix::test]
    async fn a_restarted_peer_gets_everything_it_lacks_and_late_old_news_is_not_believed() {
        let rig = Rig::new(&["n1", "n2"]).await;
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(1),
            value: 5,
        });
        let theirs = Item::new("n2@1", 1, 20);
        rig.store.do_send(merge("n2", vec![theirs.clone()]));
        rig.store
            .do_send(gossip("n1", 1, vec![], &[(ME, 1), ("n2@1", 1)]));
        rig.settle().await;
        assert!(take(&rig.holds).await.is_empty(), "nobody restarted");
        take(&rig.gossip).await;
        // n1 comes back as incarnation 8, holding one value of its own.
        let fresh = Item::new("n1@8", 1, 30);
        rig.store
            .do_send(gossip("n1", 8, vec![fresh.clone()], &[("n1@8", 1)]));
        rig.settle().await;
        let holds = take(&rig.holds).await;
        assert_eq!(holds.len(), 1);
        assert_eq!(
            holds[0].catch_up.to_vec(),
            [Item::new(ME, 1, 5), theirs],
            "everything n1 lacks"
        );
        assert!(holds[0].digest.covers("n1@8", 1) && !holds[0].digest.covers(ME, 1));
        assert_eq!(
            take(&rig.gossip).await.len(),
            1,
            "the link still hears the message"
        );
        // A message of n1's old incarnation, delivered late, is not shown to
        // the link (its digest would claim what n1 no longer holds).
        rig.store
            .do_send(gossip("n1", 1, vec![], &[(ME, 1), ("n2@1", 1)]));
        rig.settle().await;
        assert!(take(&rig.gossip).await.is_empty());
        assert!(take(&rig.holds).await.is_empty());
    }

    #[actix::test]
    async fn a_durable_acknowledgement_waits_until_a_peer_holds_the_value() {
        let rig = Rig::with(&["n1"], setup(true, 1_000), true).await;
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(1),
            value: 5,
        });
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(2),
            value: 5,
        });
        rig.store
            .do_send(merge("n1", vec![Item::new("n1@1", 1, 6)]));
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(3),
            value: 6,
        });
        rig.settle().await;
        assert_eq!(
            rig.replies().await,
            [OutBody::BroadcastOk { in_reply_to: 3 }],
            "6 came from a peer: durable already; 5 is held only here"
        );
        // n1's digest shows it holds n0's item 1 (value 5).
        rig.store
            .do_send(gossip("n1", 1, vec![], &[("n1@1", 1), (ME, 1)]));
        rig.settle().await;
        assert_eq!(
            rig.replies().await,
            [
                OutBody::BroadcastOk { in_reply_to: 1 },
                OutBody::BroadcastOk { in_reply_to: 2 }
            ]
        );
    }

    #[actix::test]
    async fn a_held_acknowledgement_is_answered_with_a_timeout_while_the_client_still_waits() {
        let rig = Rig::with(&["n1"], setup(true, 1_000), true).await;
        rig.store.do_send(ClientBroadcast {
            reply_to: ReplyTo {
                answer_by: 300,
                ..reply_to(1)
            },
            value: 5,
        });
        rig.settle().await;
        assert!(rig.replies().await.is_empty(), "no peer holds 5 yet");
        tokio::time::sleep(Duration::from_millis(250)).await;
        rig.settle().await;
        match rig.replies().await.as_slice() {
            [OutBody::Error {
                in_reply_to: 1,
                code: TIMEOUT,
                ..
            }] => {}
            other => panic!("expected one indefinite timeout for request 1, got {other:?}"),
        }
        // n1 holds the value now: the client was answered already, and a
        // second answer would go to a client Maelstrom has closed.
        rig.store
            .do_send(gossip("n1", 1, vec![], &[("n1@1", 0), (ME, 1)]));
        rig.settle().await;
        assert!(rig.replies().await.is_empty());
        rig.store.do_send(ClientRead {
            reply_to: reply_to(2),
        });
        rig.settle().await;
        assert_eq!(
            rig.replies().await,
            [OutBody::ReadOk {
                messages: vec![5],
                in_reply_to: 2
            }],
            "the value stays"
        );
    }

    #[actix::test]
    async fn no_reply_goes_after_its_deadline_but_the_value_is_kept() {
        let rig = Rig::with(&["n1"], setup(false, 1_000), true).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let late = |msg_id| ReplyTo {
            answer_by: 10,
            ..reply_to(msg_id)
        };
        rig.store.do_send(ClientBroadcast {
            reply_to: late(1),
            value: 7,
        });
        rig.store.do_send(ClientRead { reply_to: late(2) });
        rig.settle().await;
        assert!(
            rig.replies().await.is_empty(),
            "a client that waited through a stall has given up"
        );
        rig.store.do_send(ClientRead {
            reply_to: reply_to(3),
        });
        rig.settle().await;
        assert_eq!(
            rig.replies().await,
            [OutBody::ReadOk {
                messages: vec![7],
                in_reply_to: 3
            }]
        );
    }

    #[actix::test]
    async fn reads_wait_until_the_node_holds_what_a_peer_holds_or_the_hold_ends() {
        let rig = Rig::with(&["n1"], setup(false, 150), false).await;
        rig.store.do_send(ClientRead {
            reply_to: reply_to(1),
        });
        // A restarted n0 hears from n1, which holds two values n0 lacks.
        rig.store.do_send(gossip("n1", 1, vec![], &[("n1@1", 2)]));
        rig.settle().await;
        assert!(rig.replies().await.is_empty(), "not caught up yet");
        rig.store.do_send(merge(
            "n1",
            vec![Item::new("n1@1", 1, 10), Item::new("n1@1", 2, 11)],
        ));
        rig.settle().await;
        assert_eq!(
            rig.replies().await,
            [OutBody::ReadOk {
                messages: vec![10, 11],
                in_reply_to: 1
            }]
        );
        // Without news from any peer a read waits only for the hold.
        let lonely = Rig::with(&["n1"], setup(false, 150), false).await;
        lonely.store.do_send(ClientRead {
            reply_to: reply_to(2),
        });
        lonely.settle().await;
        assert!(lonely.replies().await.is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            lonely.replies().await,
            [OutBody::ReadOk {
                messages: vec![],
                in_reply_to: 2
            }]
        );
    }

    #[actix::test]
    async fn a_new_link_starts_from_what_its_peer_holds_and_gossip_before_init_waits_for_it() {
        let out = recorder::<Outbound>();
        let store = MessageStore::new(out.clone().recipient(), setup(false, 1_000)).start();
        // Gossip before init waits for it (to be checked).
        store.do_send(merge("n4", vec![Item::new("n4@1", 1, 99)]));
        store.do_send(ClientBroadcast {
            reply_to: reply_to(1),
            value: 1,
        });
        store.do_send(ClientRead {
            reply_to: reply_to(2),
        });
        store.send(Drain).await.unwrap();
        let replies: Vec<OutBody> = take(&out).await.into_iter().map(|o| o.body).collect();
        assert!(matches!(
            replies[0],
            OutBody::Error {
                in_reply_to: 1,
                code: TEMPORARILY_UNAVAILABLE,
                ..
            }
        ));
        assert_eq!(
            replies[1],
            OutBody::ReadOk {
                messages: vec![],
                in_reply_to: 2
            }
        );
        store.do_send(Joined {
            node_id: "n0".into(),
            node_ids: (0..5).map(|i| format!("n{i}")).collect(),
        });
        store.do_send(ClientRead {
            reply_to: reply_to(3),
        });
        store.send(Drain).await.unwrap();
        assert_eq!(
            take(&out).await[0].body,
            OutBody::ReadOk {
                messages: vec![99],
                in_reply_to: 3
            },
            "taken at init, and n0 caught up with n4"
        );
        // After init: n4 shows it holds n0's item; n2 sent one.
        let rig = Rig::new(&[]).await;
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(3),
            value: 7,
        });
        let from_n2 = Item::new("n2@1", 1, 8);
        rig.store.do_send(merge("n2", vec![from_n2.clone()]));
        rig.store.do_send(gossip("n4", 1, vec![], &[(ME, 1)]));
        rig.settle().await;
        let (n4, n2) = (recorder::<LocalUpdate>(), recorder::<LocalUpdate>());
        rig.store.do_send(LinksChanged {
            added: vec![
                handle("n4", &n4, &rig.gossip, &rig.holds),
                handle("n2", &n2, &rig.gossip, &rig.holds),
            ],
            removed: vec![],
        });
        rig.settle().await;
        let seeded = take(&n4).await;
        assert_eq!(seeded[0].items.to_vec(), [from_n2], "n4 holds n0's own");
        let holds = take(&rig.holds).await;
        assert!(holds.iter().any(|h| h.digest.covers(ME, 1)));
        assert_eq!(
            take(&n2).await[0].items.to_vec(),
            [Item::new(ME, 1, 7)],
            "not what n2 sent itself"
        );
    }

    /// Batches 1..=20 of `from`'s own values, 100 ms apart, each sent in
    /// two copies of which only the first arrives.
    fn half_lost_batches(from: &str) -> Vec<Merge> {
        (1..=20u64)
            .map(|seq| {
                let mut msg = gossip(from, 1, vec![Item::new(format!("{from}@1"), seq, 0)], &[]);
                msg.gossip.ts = seq * 100;
                msg.gossip.copy = Some(crate::protocol::CopyMark(1, 2));
                msg
            })
            .collect()
    }

    /// `from`'s half-lost batches, then a client's `value`, which the
    /// store hands to every link with the loss it measures.
    async fn half_lost_then_a_broadcast(rig: &Rig, from: &str, value: i64) {
        for msg in half_lost_batches(from) {
            rig.store.do_send(msg);
        }
        rig.store.do_send(ClientBroadcast {
            reply_to: reply_to(value as u64),
            value,
        });
        rig.settle().await;
    }

    #[actix::test]
    async fn the_loss_its_measured_links_peers_see_goes_to_every_link() {
        let rig = Rig::new(&["n1", "n2"]).await;
        // n1's link sends measured copies, n2's does not.
        let metered = LinkHandle {
            meters_loss: true,
            ..handle("n1", &rig.links["n1"], &rig.gossip, &rig.holds)
        };
        rig.store.do_send(LinksChanged {
            added: vec![metered],
            removed: vec![],
        });
        // n2's lost copies do not count.
        half_lost_then_a_broadcast(&rig, "n2", 5).await;
        let before = take(&rig.links["n1"]).await;
        assert_eq!(before.last().map(|u| u.inbound_loss_permille), Some(0));
        half_lost_then_a_broadcast(&rig, "n1", 6).await;
        for peer in ["n1", "n2"] {
            let last = take(&rig.links[peer]).await.pop().expect("an update");
            // 19 batches closed, 19 of their 38 copies lost.
            assert_eq!(last.inbound_loss_permille, 500, "{peer}");
        }
    }
}
