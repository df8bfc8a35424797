//! Test rig: a cluster of nodes made of plain [`Link`]s and [`StoreCore`]s
//! on a simulated network, with no actors and no real time. It feeds them as
//! the MessageStore and NeighborGossip actors do, so the link and overlay
//! logic can be checked under drops, duplicates, reordering, partitions and
//! late deliveries (exponential jitter, head-of-line kept per destination).
//! A star hub's links feed an [`ArrivalSpread`] as the TopologyManager's do.
//! Also a recording actor for actor-level tests.

use crate::arrivals::ArrivalSpread;
use crate::digest::Digest;
use crate::link::loss::LossMeter;
use crate::link::{Flush, Link, LinkPolicy};
use crate::protocol::Gossip;
use crate::store_core::{NewItems, StoreCore};
use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

/// The fast profile's link from a 25-node fanout leaf to its hub, as the
/// overlay planner gives it: acknowledgements held 3 s, or 250 ms while
/// messages are measurably lost.
pub fn fanout_link_to_hub() -> LinkPolicy {
    let ids: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
    let fast = crate::config::Config::profile(crate::config::Profile::Fast).gossip;
    crate::overlay::plan("n1", &ids, None, &fast)
        .into_iter()
        .find_map(|(peer, policy)| (peer == "n0").then_some(policy))
        .expect("a leaf links to its hub")
}

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
    /// For a node with after-peer links (a star hub), as its TopologyManager
    /// keeps it.
    pub arrivals: Option<ArrivalSpread>,
    /// What its measured links' peers lose, as its MessageStore keeps it.
    pub loss: LossMeter,
}

impl SimNode {
    /// A link's peer message arrived: the hub's arrival estimate takes it
    /// and hands a new flush offset to its after-peer links.
    fn note_arrival(&mut self, now: u64, from: &str, sent: u64) {
        let (Some(spread), Some(link)) = (&mut self.arrivals, self.links.get(from)) else {
            return;
        };
        let Some((round_at, offset)) = link.schedule().arrival(now, sent) else {
            return;
        };
        if !spread.on_arrival(round_at, offset) {
            return;
        }
        if let Some(offset) = spread.flush_offset() {
            for link in self.links.values_mut() {
                if matches!(link.policy().flush, Flush::AfterPeer { .. }) {
                    link.set_flush_offset(offset);
                }
            }
        }
    }

    /// Hands new items to every link, as the MessageStore does.
    fn publish(&mut self, now: u64, new: &NewItems, sent_at: Option<u64>) {
        for (peer, link) in self.links.iter_mut() {
            link.set_inbound_loss(self.loss.permille());
            link.on_local_update(now, &new.items_for(peer), new.digest().clone(), sent_at);
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

/// A node that takes no message during `[from, until)` (see
/// [`Cluster::paused`]).
#[derive(Debug, Clone)]
pub struct Paused {
    pub node: String,
    pub from: u64,
    pub until: u64,
}

/// Extra delivery delay: an exponential draw of this mean per message, from
/// a seeded generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Jitter {
    pub mean_ms: f64,
    pub state: u64,
}

impl Jitter {
    fn draw(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let uniform = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        (-uniform.ln() * self.mean_ms) as u64
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<String, SimNode>,
    pub now: u64,
    pub latency_ms: u64,
    /// Late deliveries; a message never overtakes an earlier one to the
    /// same destination.
    pub jitter: Option<Jitter>,
    /// A stopped node: messages to it due within `[from, until)` are
    /// delivered at `until`, all at once (a paused process, or a burst the
    /// network could not deliver on time).
    pub paused: Option<Paused>,
    /// Per destination: when its latest message is due.
    due_at: BTreeMap<String, u64>,
    /// Per value: when each node first held it.
    pub held_since: BTreeMap<i64, BTreeMap<String, u64>>,
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
                store.join(id.to_string(), &[]);
                let links = plan(id)
                    .into_iter()
                    .map(|(peer, policy)| {
                        let mut link = Link::new(id, peer.clone(), policy);
                        link.on_local_update(
                            start_ms,
                            &store.items_for_new_link(&peer),
                            store.digest().clone(),
                            None,
                        );
                        (peer, link)
                    })
                    .collect::<BTreeMap<String, Link>>();
                let arrivals = links.values().find_map(|link| match link.policy().flush {
                    Flush::AfterPeer {
                        interval_ms,
                        linger_ms,
                        ..
                    } => Some(ArrivalSpread::new(interval_ms, linger_ms)),
                    _ => None,
                });
                let node = SimNode {
                    store,
                    links,
                    arrivals,
                    loss: LossMeter::default(),
                };
                (id.to_string(), node)
            })
            .collect();
        Cluster {
            nodes,
            now: start_ms,
            latency_ms,
            jitter: None,
            paused: None,
            due_at: BTreeMap::new(),
            held_since: BTreeMap::new(),
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
        self.held_since
            .entry(value)
            .or_default()
            .insert(node.to_string(), now);
        n.publish(now, &new, None);
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
        let new = n.store.merge(&t.from, &t.msg.items);
        if let Some(link) = n.links.get_mut(&t.from) {
            if link.policy().loss_copies.is_some() {
                n.loss.on_message(now, &t.from, &t.msg);
            }
            link.on_peer_message(now, &t.msg);
        }
        n.note_arrival(now, &t.from, t.msg.ts);
        if let Some(new) = new {
            for item in new.items().iter() {
                self.held_since
                    .entry(item.value)
                    .or_default()
                    .entry(t.to.clone())
                    .or_insert(now);
            }
            n.publish(now, &new, Some(t.msg.ts));
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
                for copy in link.wire_copies(msg) {
                    let extra = self.jitter.as_mut().map_or(0, Jitter::draw);
                    let mut at = now + latency + extra;
                    if let Some(p) = self.paused.as_ref().filter(|p| &p.node == peer) {
                        if (p.from..p.until).contains(&at) {
                            at = p.until;
                        }
                    }
                    let due = self.due_at.entry(peer.clone()).or_default();
                    *due = (*due).max(at);
                    let transit = Transit {
                        from: id.clone(),
                        to: peer.clone(),
                        at: *due,
                        msg: copy,
                    };
                    self.log.push(transit.clone());
                    self.in_transit.push(transit);
                }
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

    /// Per value, how long after its broadcast every node held it (None
    /// while some node lacks it).
    pub fn spread_latencies(&self) -> BTreeMap<i64, Option<u64>> {
        self.held_since
            .iter()
            .map(|(value, held)| {
                let all = held.len() == self.nodes.len();
                let first = held.values().min().copied().unwrap_or(0);
                let last = held.values().max().copied().unwrap_or(0);
                (*value, all.then(|| last - first))
            })
            .collect()
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
