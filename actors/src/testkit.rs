//! Test rig: a cluster of nodes made of plain [`Link`]s and [`StoreCore`]s
//! on a simulated network, with no actors and no real time. It feeds them as
//! the MessageStore and NeighborGossip actors do, so the link and overlay
//! logic can be checked under drops, duplicates, reordering and partitions.
//! Also a recording actor for actor-level tests.

use crate::digest::Digest;
use crate::link::{Link, LinkPolicy};
use crate::protocol::Gossip;
use crate::store_core::{NewItems, StoreCore};
use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

/// A message on the simulated network.
#[derive(Debug, Clone)]
pub struct Transit {
    pub from: String,
    pub to: String,
    pub at: u64,
    pub msg: Gossip,
}

/// One simulated node: a store and its links.
#[derive(Debug)]
pub struct SimNode {
    pub store: StoreCore,
    pub links: BTreeMap<String, Link>,
}

impl SimNode {
    /// Hands new items to every link, as the MessageStore does.
    fn publish(&mut self, now: u64, new: &NewItems) {
        for (peer, link) in self.links.iter_mut() {
            link.on_local_update(now, &new.items_for(peer), new.digest().clone());
        }
    }
}

/// A violation of "nothing is resent once the peer has acknowledged it".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResentAfterAck {
    pub from: String,
    pub to: String,
    pub origin: String,
    pub seq: u64,
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<String, SimNode>,
    pub now: u64,
    pub latency_ms: u64,
    pub in_transit: Vec<Transit>,
    /// Every message ever sent, in order.
    pub log: Vec<Transit>,
    /// Per (receiver, sender): everything the sender showed it holds.
    acked: BTreeMap<(String, String), Digest>,
    pub violations: Vec<ResentAfterAck>,
}

impl Cluster {
    /// Builds the cluster; `plan(me)` gives each node's links.
    pub fn new(
        ids: &[&str],
        start_ms: u64,
        latency_ms: u64,
        plan: impl Fn(&str) -> Vec<(String, LinkPolicy)>,
    ) -> Self {
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut store = StoreCore::default();
                store.join(id.to_string());
                let links = plan(id)
                    .into_iter()
                    .map(|(peer, policy)| {
                        let mut link = Link::new(id, peer.clone(), policy);
                        link.on_local_update(
                            start_ms,
                            &store.items_for_new_link(&peer),
                            store.digest().clone(),
                        );
                        (peer, link)
                    })
                    .collect();
                (id.to_string(), SimNode { store, links })
            })
            .collect();
        Cluster {
            nodes,
            now: start_ms,
            latency_ms,
            in_transit: Vec::new(),
            log: Vec::new(),
            acked: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    /// A client broadcasts `value` at `node`, as the MessageStore handles it.
    pub fn broadcast(&mut self, node: &str, value: i64) {
        let now = self.now;
        let n = self.nodes.get_mut(node).expect("known node");
        let Some(new) = n.store.broadcast(value).expect("joined at start") else {
            return;
        };
        n.publish(now, &new);
        self.poll_all();
    }

    /// Delivers one message now (as NeighborGossip and the store handle it).
    pub fn deliver(&mut self, t: Transit) {
        let now = self.now;
        self.acked
            .entry((t.to.clone(), t.from.clone()))
            .or_default()
            .merge(&t.msg.digest);
        for item in &t.msg.items {
            self.acked
                .entry((t.to.clone(), t.from.clone()))
                .or_default()
                .insert(&item.origin, item.seq);
        }
        let n = self.nodes.get_mut(&t.to).expect("known node");
        if let Some(link) = n.links.get_mut(&t.from) {
            link.on_peer_message(now, &t.msg);
        }
        if let Some(new) = n.store.merge(&t.from, &t.msg.items) {
            n.publish(now, &new);
        }
        self.poll_all();
    }

    /// Polls every link once and puts what they send on the network.
    pub fn poll_all(&mut self) {
        let now = self.now;
        let latency = self.latency_ms;
        for (id, node) in self.nodes.iter_mut() {
            for (peer, link) in node.links.iter_mut() {
                let Some(msg) = link.poll(now) else { continue };
                let acked = self.acked.get(&(id.clone(), peer.clone()));
                for item in &msg.items {
                    if acked.is_some_and(|d| d.covers(&item.origin, item.seq)) {
                        self.violations.push(ResentAfterAck {
                            from: id.clone(),
                            to: peer.clone(),
                            origin: item.origin.clone(),
                            seq: item.seq,
                        });
                    }
                }
                let transit = Transit {
                    from: id.clone(),
                    to: peer.clone(),
                    at: now + latency,
                    msg,
                };
                self.log.push(transit.clone());
                self.in_transit.push(transit);
            }
        }
    }

    /// The earliest link deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.nodes
            .values()
            .flat_map(|n| n.links.values())
            .filter_map(Link::next_deadline)
            .min()
    }

    /// Runs the network in time order until `until` or until nothing is due.
    /// `lose(transit)` decides whether a message is lost instead of delivered.
    pub fn run(&mut self, until: u64, mut lose: impl FnMut(&Transit) -> bool) {
        loop {
            let next_arrival = self.in_transit.iter().map(|t| t.at).min();
            let next = match (next_arrival, self.next_deadline()) {
                (Some(a), Some(d)) => a.min(d),
                (a, d) => match a.or(d) {
                    Some(t) => t,
                    None => return,
                },
            };
            if next > until {
                return;
            }
            self.now = self.now.max(next);
            let (arrived, rest): (Vec<Transit>, Vec<Transit>) =
                std::mem::take(&mut self.in_transit)
                    .into_iter()
                    .partition(|t| t.at <= self.now);
            self.in_transit = rest;
            for t in arrived {
                if !lose(&t) {
                    self.deliver(t);
                }
            }
            self.poll_all();
        }
    }

    /// Every value broadcast anywhere.
    pub fn all_values(&self) -> BTreeSet<i64> {
        self.nodes
            .values()
            .flat_map(|n| n.store.values().iter().copied())
            .collect()
    }

    /// Whether every node holds every value and every link is idle.
    pub fn converged(&self) -> bool {
        let all = self.all_values();
        self.nodes
            .values()
            .all(|n| *n.store.values() == all && n.links.values().all(Link::is_idle))
    }

    /// How many messages went from each node to each peer.
    pub fn sent_counts(&self) -> BTreeMap<(String, String), u64> {
        let mut counts = BTreeMap::new();
        for t in &self.log {
            *counts.entry((t.from.clone(), t.to.clone())).or_default() += 1;
        }
        counts
    }
}

/// An actor that records every `M` it receives, for actor-level tests.
pub struct Recorder<M> {
    got: Vec<M>,
}

impl<M: Unpin + 'static> Actor for Recorder<M> {
    type Context = Context<Self>;
}

impl<M> Handler<M> for Recorder<M>
where
    M: Message<Result = ()> + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, msg: M, _ctx: &mut Self::Context) {
        self.got.push(msg);
    }
}

/// Asks a [`Recorder`] for what it got so far (and clears it).
pub struct Take<M>(PhantomData<M>);

impl<M: 'static> Message for Take<M> {
    type Result = Vec<M>;
}

impl<M> Handler<Take<M>> for Recorder<M>
where
    M: Unpin + 'static,
{
    type Result = MessageResult<Take<M>>;

    fn handle(&mut self, _: Take<M>, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(std::mem::take(&mut self.got))
    }
}

pub fn recorder<M: Unpin + 'static>() -> Addr<Recorder<M>> {
    Recorder { got: Vec::new() }.start()
}

/// Everything the recorder got up to now (messages sent before this call).
pub async fn take<M: Unpin + Send + 'static>(rec: &Addr<Recorder<M>>) -> Vec<M> {
    rec.send(Take(PhantomData)).await.expect("recorder alive")
}
