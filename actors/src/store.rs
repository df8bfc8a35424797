//! MessageStore: the actor around [`StoreCore`], the node's set of items
//! and values. It answers client broadcasts and reads, merges items from
//! peers, and hands every new item to the neighbour links (never to the link
//! it came from, which gets only the changed digest so it can acknowledge).
//!
//! New items go to the links once the mailbox is drained, not once per
//! message: a hub that takes a round's batches from N leaves in one go
//! hands each link one update, not N (N² link updates a round otherwise).

use crate::digest::Item;
use crate::messages::{
    ClientBroadcast, ClientRead, Drain, Joined, LinkHandle, LinksChanged, LocalUpdate, Merge,
    Outbound, PeerGossip,
};
use crate::protocol::{OutBody, TEMPORARILY_UNAVAILABLE};
use crate::store_core::{NewItems, NotJoined, StoreCore};
use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct MessageStore {
    core: StoreCore,
    links: BTreeMap<String, LinkHandle>,
    out: Recipient<Outbound>,
    /// New items not yet handed to the links, each with the peer it came
    /// from (None: a client's).
    unpublished: Vec<(Item, Option<String>)>,
    /// The earliest send instant of the peer batches among them.
    unpublished_sent_at: Option<u64>,
}

/// Hands the unpublished items to the links (sent to itself, so it runs
/// once the mailbox is drained).
#[derive(Message)]
#[rtype(result = "()")]
struct PublishUnpublished;

impl MessageStore {
    pub fn new(out: Recipient<Outbound>) -> Self {
        MessageStore {
            core: StoreCore::default(),
            links: BTreeMap::new(),
            out,
            unpublished: Vec::new(),
            unpublished_sent_at: None,
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
            });
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

    /// Records the node id used as origin of this node's items (the first
    /// one stays: the topology manager refuses a second `init` as another id).
    fn handle(&mut self, msg: Joined, _ctx: &mut Self::Context) {
        self.core.join(msg.node_id);
    }
}

impl Handler<ClientBroadcast> for MessageStore {
    type Result = ();

    /// Stores a new value as this node's next item and publishes it.
    fn handle(&mut self, msg: ClientBroadcast, ctx: &mut Self::Context) {
        match self.core.broadcast(msg.value) {
            Err(NotJoined) => {
                log::warn!("broadcast before init; answering temporarily-unavailable");
                self.out.do_send(Outbound::reply(
                    &msg.reply_to,
                    OutBody::Error {
                        in_reply_to: msg.reply_to.msg_id,
                        code: TEMPORARILY_UNAVAILABLE,
                        text: "node not initialised yet".into(),
                    },
                ));
                return;
            }
            Ok(Some(new)) => self.publish(&new, None, ctx),
            Ok(None) => {}
        }
        self.out.do_send(Outbound::reply(
            &msg.reply_to,
            OutBody::BroadcastOk {
                in_reply_to: msg.reply_to.msg_id,
            },
        ));
    }
}

impl Handler<ClientRead> for MessageStore {
    type Result = ();

    /// Answers with every distinct value held.
    fn handle(&mut self, msg: ClientRead, _ctx: &mut Self::Context) {
        self.out.do_send(Outbound::reply(
            &msg.reply_to,
            OutBody::ReadOk {
                messages: self.core.values().iter().copied().collect(),
                in_reply_to: msg.reply_to.msg_id,
            },
        ));
    }
}

impl Handler<Merge> for MessageStore {
    type Result = ();

    /// Takes a peer's items, hands the message to the peer's link (its
    /// acknowledgements) and then publishes the new items.
    fn handle(&mut self, msg: Merge, ctx: &mut Self::Context) {
        let new = self.core.merge(&msg.from, &msg.gossip.items);
        let sent_at = msg.gossip.ts;
        if let Some(link) = self.links.get(&msg.from) {
            link.gossip.do_send(PeerGossip(msg.gossip));
        }
        if let Some(new) = new {
            self.publish(&new, Some(sent_at), ctx);
        }
    }
}

impl Handler<LinksChanged> for MessageStore {
    type Result = ();

    /// Forgets removed links; starts each added one with every item held
    /// except those its peer sent.
    fn handle(&mut self, msg: LinksChanged, _ctx: &mut Self::Context) {
        // The links that stay hear of what came before the change first; an
        // added link starts with everything anyway.
        self.flush_unpublished();
        for peer in &msg.removed {
            self.links.remove(peer);
        }
        for link in msg.added {
            link.updates.do_send(LocalUpdate {
                items: self.core.items_for_new_link(&link.peer),
                digest: self.core.digest().clone(),
                sent_at: None,
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
    use crate::protocol::{Gossip, ReplyTo};
    use crate::testkit::{recorder, take, Recorder};

    fn merge(from: &str, items: Vec<Item>) -> Merge {
        Merge {
            from: from.into(),
            gossip: Gossip {
                items,
                digest: Digest::default(),
                ts: 0,
                round: None,
            },
        }
    }

    fn reply_to(msg_id: u64) -> ReplyTo {
        ReplyTo {
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
    }

    impl Rig {
        async fn new(peers: &[&'static str]) -> Rig {
            let out = recorder::<Outbound>();
            let store = MessageStore::new(out.clone().recipient()).start();
            store.do_send(Joined {
                node_id: "n0".into(),
            });
            let links: BTreeMap<_, _> = peers.iter().map(|&p| (p, recorder())).collect();
            let gossip = recorder::<PeerGossip>();
            store.do_send(LinksChanged {
                added: links
                    .iter()
                    .map(|(&p, r)| LinkHandle {
                        peer: p.to_string(),
                        updates: r.clone().recipient(),
                        gossip: gossip.clone().recipient(),
                    })
                    .collect(),
                removed: vec![],
            });
            let rig = Rig {
                store,
                out,
                links,
                gossip,
            };
            rig.settle().await;
            for r in rig.links.values() {
                take(r).await;
            }
            rig
        }

        /// Waits until the store has handled everything sent so far.
        async fn settle(&self) {
            self.store.send(Drain).await.unwrap();
        }

        async fn items_sent_to(&self, peer: &str) -> Vec<Vec<Item>> {
            take(&self.links[peer])
                .await
                .into_iter()
                .map(|u| u.items.to_vec())
                .collect()
        }
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
        let out: Vec<OutBody> = take(&rig.out).await.into_iter().map(|o| o.body).collect();
        assert_eq!(
            out,
            [
                OutBody::BroadcastOk { in_reply_to: 1 },
                OutBody::BroadcastOk { in_reply_to: 2 },
                OutBody::ReadOk {
                    messages: vec![5],
                    in_reply_to: 3
                },
            ]
        );
        let once = vec![vec![Item::new("n0", 1, 5)]];
        assert_eq!(rig.items_sent_to("n1").await, once);
        assert_eq!(rig.items_sent_to("n2").await, once);
    }

    #[actix::test]
    async fn gossip_is_merged_before_its_link_sees_it_and_before_a_later_read() {
        let rig = Rig::new(&["n1"]).await;
        let a = Item::new("n1", 1, 10);
        rig.store.do_send(merge("n1", vec![a.clone()]));
        rig.store.do_send(ClientRead {
            reply_to: reply_to(1),
        });
        rig.store.do_send(merge("n9", vec![Item::new("n9", 1, 11)]));
        rig.settle().await;
        assert_eq!(
            take(&rig.out).await[0].body,
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
        let a = Item::new("n1", 1, 10);
        let b = Item::new("n1", 2, 11);
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
        assert!(source[0].digest.covers("n1", 1) && source[0].digest.covers("n1", 2));
        assert_eq!(rig.items_sent_to("n2").await, [vec![a.clone()]]);
        assert_eq!(rig.items_sent_to("n3").await, [vec![a, b]]);
        rig.store.do_send(ClientRead {
            reply_to: reply_to(4),
        });
        rig.settle().await;
        assert_eq!(
            take(&rig.out).await[0].body,
            OutBody::ReadOk {
                messages: vec![10, 11],
                in_reply_to: 4
            }
        );
    }

    #[actix::test]
    async fn a_new_link_starts_with_every_item_and_before_init_broadcasts_are_refused() {
        let out = recorder::<Outbound>();
        let store = MessageStore::new(out.clone().recipient()).start();
        // Gossip that arrives before init is kept.
        store.do_send(merge("n4", vec![Item::new("n4", 1, 99)]));
        store.do_send(ClientBroadcast {
            reply_to: reply_to(1),
            value: 1,
        });
        store.do_send(ClientRead {
            reply_to: reply_to(2),
        });
        let link = recorder::<LocalUpdate>();
        let gossip = recorder::<PeerGossip>();
        store.do_send(LinksChanged {
            added: vec![LinkHandle {
                peer: "n1".into(),
                updates: link.clone().recipient(),
                gossip: gossip.recipient(),
            }],
            removed: vec![],
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
                messages: vec![99],
                in_reply_to: 2
            }
        );
        let seeded = take(&link).await;
        assert_eq!(seeded.len(), 1);
        assert_eq!(seeded[0].items.to_vec(), [Item::new("n4", 1, 99)]);
        // The link to n4 starts without n4's own item, but with the digest.
        let n4 = recorder::<LocalUpdate>();
        store.do_send(LinksChanged {
            added: vec![LinkHandle {
                peer: "n4".into(),
                updates: n4.clone().recipient(),
                gossip: recorder::<PeerGossip>().recipient(),
            }],
            removed: vec![],
        });
        store.send(Drain).await.unwrap();
        let seeded = take(&n4).await;
        assert!(seeded[0].items.is_empty());
        assert!(seeded[0].digest.covers("n4", 1));
    }
}
