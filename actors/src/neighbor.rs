//! NeighborGossip: one actor per overlay neighbour. It owns that link's
//! [`Link`] state, turns mailbox messages and one timer into calls on it,
//! sends what it says to send, and traces the link's backlog. A star
//! leaf's link to its hub also watches for the hub's silence (see
//! `SilenceWatch`).
//!
//! Backlog trace (log target `backlog`, level info), one line per link every
//! trace interval while the link holds items or its counters moved since the
//! previous line:
//! `peer=n3 waiting=12 lazy=0 in_flight=4 batches_in_flight=1 oldest_unacked_ms=230 rto_ms=450 sent_msgs=57 resent_items=2 received_msgs=40 copies=1 peer_loss_permille=0 ack_hold_ms=50`

use crate::clock::Clock;
use crate::link::{Link, LinkStats, RoundRole};
use crate::messages::{
    ArrivalReport, DelayReport, LocalUpdate, NeighborSetup, Outbound, OverlayFrom, PeerGossip,
    PeerHolds, PeerSilent, SetFlushOffset, SetRound, StopLink,
};
use crate::protocol::OutBody;
use actix::prelude::*;
use std::time::Duration;

pub struct NeighborGossip {
    me: String,
    incarnation: u64,
    term: u64,
    silence: Option<SilenceWatch>,
    link: Link,
    clock: Clock,
    out: Recipient<Outbound>,
    delays: Option<Recipient<DelayReport>>,
    switches: Option<Recipient<OverlayFrom>>,
    arrivals: Option<Recipient<ArrivalReport>>,
    /// The delay summary last reported.
    reported_delay: Option<(u64, u64)>,
    /// The one armed wake-up: its instant and handle.
    wake: Option<(u64, SpawnHandle)>,
    trace_interval_ms: u64,
    trace_armed: bool,
    last_trace: Option<LinkStats>,
}

/// Watches a link's peer for silence: gone by the link's reckoning (see
/// [`Link::gone_from`]), reported once. Only time the process ran counts:
/// a check that fires much later than due (the process was paused, or
/// starved) starts the count again, since the peer's answers may be
/// waiting unread on stdin.
struct SilenceWatch {
    to: Recipient<PeerSilent>,
    armed: Option<SpawnHandle>,
    counted_from: u64,
    reported: bool,
}

impl NeighborGossip {
    pub fn new(setup: NeighborSetup) -> Self {
        NeighborGossip {
            term: setup.term,
            silence: setup.silence.map(|to| SilenceWatch {
                to,
                armed: None,
                counted_from: 0,
                reported: false,
            }),
            link: Link::new(setup.me.clone(), setup.peer, setup.policy),
            me: setup.me,
            incarnation: setup.incarnation,
            clock: setup.clock,
            out: setup.out,
            delays: setup.delays,
            switches: setup.switches,
            arrivals: setup.arrivals,
            reported_delay: None,
            wake: None,
            trace_interval_ms: setup.trace_interval_ms,
            trace_armed: false,
            last_trace: None,
        }
    }

    /// Sends what is due, re-arms the wake-up for the next deadline, and
    /// makes sure the trace will look at the link.
    fn step(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        while let Some(mut gossip) = self.link.poll(now) {
            gossip.inc = self.incarnation;
            gossip.term = self.term;
            for copy in self.link.wire_copies(gossip) {
                self.out.do_send(Outbound {
                    src: self.me.clone(),
                    dest: self.link.peer().to_string(),
                    body: OutBody::Gossip(copy),
                });
            }
            if !self.link.has_more() {
                break;
            }
        }
        if let Some(deadline) = self.link.next_deadline() {
            let earlier = self.wake.as_ref().is_none_or(|(at, _)| deadline < *at);
            if earlier {
                if let Some((_, handle)) = self.wake.take() {
                    ctx.cancel_future(handle);
                }
                let delay = Duration::from_millis(deadline.saturating_sub(now));
                let handle = ctx.run_later(delay, |act, ctx| {
                    act.wake = None;
                    act.step(ctx);
                });
                self.wake = Some((deadline, handle));
            }
        }
        self.arm_trace(ctx);
        self.watch_silence(ctx);
    }

    /// Arms the silence check for when the peer will have been silent long
    /// enough, if it owes an answer and no check is armed.
    fn watch_silence(&mut self, ctx: &mut Context<Self>) {
        let Some(watch) = &mut self.silence else {
            return;
        };
        if watch.reported || watch.armed.is_some() {
            return;
        }
        let (Some(gone_from), Some(after_ms)) =
            (self.link.gone_from(), self.link.policy().silence_ms)
        else {
            return;
        };
        let due = gone_from.max(watch.counted_from.saturating_add(after_ms));
        let wait = due.saturating_sub(self.clock.now_ms());
        let handle = ctx.run_later(Duration::from_millis(wait), move |act, ctx| {
            act.check_silence(due, ctx)
        });
        watch.armed = Some(handle);
    }

    /// The check armed for `due`: reports the peer silent if it still is.
    fn check_silence(&mut self, due: u64, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        let Some(watch) = &mut self.silence else {
            return;
        };
        watch.armed = None;
        let after_ms = self.link.policy().silence_ms.unwrap_or(u64::MAX);
        if now > due.saturating_add(after_ms / 4) {
            watch.counted_from = now;
        } else if let Some(since) = self.link.unanswered_since() {
            let silent_ms = now.saturating_sub(since.max(watch.counted_from));
            if silent_ms >= after_ms {
                log::warn!(
                    "{} has answered nothing for {silent_ms} ms with items in flight",
                    self.link.peer()
                );
                watch.reported = true;
                watch.to.do_send(PeerSilent {
                    peer: self.link.peer().to_string(),
                    term: self.term,
                    silent_ms,
                });
            }
        }
        self.watch_silence(ctx);
    }

    fn arm_trace(&mut self, ctx: &mut Context<Self>) {
        if self.trace_interval_ms == 0 || self.trace_armed || !self.worth_tracing() {
            return;
        }
        self.trace_armed = true;
        ctx.run_later(Duration::from_millis(self.trace_interval_ms), |act, ctx| {
            act.trace_armed = false;
            if act.worth_tracing() {
                let stats = act.link.stats(act.clock.now_ms());
                log::info!(target: "backlog", "peer={} {}", act.link.peer(), stats);
                act.last_trace = Some(stats);
            }
            act.arm_trace(ctx);
        });
    }

    /// The link holds items, or has sent or received since the last line.
    fn worth_tracing(&self) -> bool {
        let traced = self
            .last_trace
            .as_ref()
            .map_or((0, 0), |last| (last.sent_msgs, last.received_msgs));
        !self.link.is_idle() || traced != self.link.message_counts()
    }
}

impl Actor for NeighborGossip {
    type Context = Context<Self>;

    /// The peer hears from a new link soon even if it has nothing to send.
    fn started(&mut self, ctx: &mut Self::Context) {
        self.link.greet(self.clock.now_ms());
        self.step(ctx);
    }
}

impl Handler<PeerHolds> for NeighborGossip {
    type Result = ();

    /// Starts over from what the peer holds; queues what it lacks.
    fn handle(&mut self, msg: PeerHolds, ctx: &mut Self::Context) {
        self.link
            .on_peer_holds(self.clock.now_ms(), msg.digest, &msg.catch_up);
        self.step(ctx);
    }
}

impl Handler<LocalUpdate> for NeighborGossip {
    type Result = ();

    /// Queues the new items and notes the digest change and the node's
    /// measured loss.
    fn handle(&mut self, msg: LocalUpdate, ctx: &mut Self::Context) {
        self.link.set_inbound_loss(msg.inbound_loss_permille);
        self.link
            .on_local_update(self.clock.now_ms(), &msg.items, msg.digest, msg.sent_at);
        self.step(ctx);
    }
}

impl Handler<PeerGossip> for NeighborGossip {
    type Result = ();

    /// Learns the peer's digest (its acknowledgements) and what it sent;
    /// a round-leading link reports a changed delay measurement.
    fn handle(&mut self, PeerGossip(gossip): PeerGossip, ctx: &mut Self::Context) {
        let now = self.clock.now_ms();
        self.link.on_peer_message(now, &gossip);
        if let (Some(to), Some((round_at, offset_ms))) =
            (&self.arrivals, self.link.schedule().arrival(now, gossip.ts))
        {
            to.do_send(ArrivalReport {
                round_at,
                offset_ms,
            });
        }
        // A round on a fanout link means a star; round 0 on a star link means
        // fanout (other round changes on a star link are the link's own).
        if let (Some(to), Some(change)) = (&self.switches, gossip.round) {
            if change.0 == 0 || self.link.round().is_none() {
                to.do_send(OverlayFrom(change));
            }
        }
        if self.link.policy().round == RoundRole::Lead {
            let delay = self.link.one_way_delay();
            if let (Some(to), Some((median_ms, highest_ms))) = (&self.delays, delay) {
                if self.reported_delay != delay {
                    to.do_send(DelayReport {
                        peer: self.link.peer().to_string(),
                        median_ms,
                        highest_ms,
                    });
                    self.reported_delay = delay;
                }
            }
        }
        self.step(ctx);
    }
}

impl Handler<SetRound> for NeighborGossip {
    type Result = ();
    /// Takes the round change (announced to the peer from now on).
    fn handle(&mut self, SetRound(change): SetRound, ctx: &mut Self::Context) {
        self.link.set_round(change);
        self.step(ctx);
    }
}

impl Handler<SetFlushOffset> for NeighborGossip {
    type Result = ();
    /// Takes the node's arrival estimate as the flush offset.
    fn handle(&mut self, SetFlushOffset(offset_ms): SetFlushOffset, ctx: &mut Self::Context) {
        self.link.set_flush_offset(offset_ms);
        self.step(ctx);
    }
}

impl Handler<StopLink> for NeighborGossip {
    type Result = ();

    /// Stops the actor (and its timers).
    fn handle(&mut self, _: StopLink, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Digest, Item};
    use crate::link::{Eager, Flush, LinkPolicy, RtoBounds, HELLO_AFTER_MS};
    use crate::protocol::Gossip;
    use crate::testkit::{recorder, take, Recorder};
    use std::sync::Arc;
    use tokio::time::sleep;

    const START: u64 = 1_000_050;

    fn policy(flush: Flush) -> LinkPolicy {
        LinkPolicy {
            eager: Eager::All,
            lazy_grace_ms: None,
            reliable: true,
            report_digest_after_ms: Some(40),
            flush,
            rto: RtoBounds {
                initial_ms: 300,
                min_ms: 100,
                max_ms: 5000,
            },
            latency_hint_ms: 100,
            round: crate::link::RoundRole::Fixed,
            repair_copies: 1,
            loss_copies: None,
            silence_ms: None,
            relay_every: 1,
            lossy: None,
        }
    }

    struct Rig {
        gossip: Addr<NeighborGossip>,
        out: Addr<Recorder<Outbound>>,
    }

    fn start(flush: Flush) -> Rig {
        start_with(flush, None)
    }

    /// A link to n1; `silence`: where it reports n1 silent, and its bound.
    fn start_with(flush: Flush, silence: Option<(Recipient<PeerSilent>, u64)>) -> Rig {
        let policy = LinkPolicy {
            silence_ms: silence.as_ref().map(|(_, after)| *after),
            ..policy(flush)
        };
        launch(policy, silence.map(|(to, _)| to))
    }

    /// Freezes the test's time, then [`spawn`]s the link.
    fn launch(policy: LinkPolicy, silence: Option<Recipient<PeerSilent>>) -> Rig {
        tokio::time::pause();
        spawn(policy, silence)
    }

    fn spawn(policy: LinkPolicy, silence: Option<Recipient<PeerSilent>>) -> Rig {
        let out = recorder::<Outbound>();
        let gossip = NeighborGossip::new(NeighborSetup {
            me: "n0".into(),
            incarnation: 1,
            peer: "n1".into(),
            policy,
            clock: Clock::starting_at(START),
            trace_interval_ms: 1000,
            out: out.clone().recipient(),
            delays: None,
            switches: None,
            arrivals: None,
            term: 0,
            silence,
        })
        .start();
        Rig { gossip, out }
    }

    fn digest(items: &[&Item]) -> Arc<Digest> {
        let mut d = Digest::default();
        for i in items {
            d.insert(&i.origin, i.seq);
        }
        Arc::new(d)
    }

    fn update(items: &[&Item]) -> LocalUpdate {
        LocalUpdate {
            items: items.iter().map(|&i| i.clone()).collect::<Vec<_>>().into(),
            digest: digest(items),
            sent_at: None,
            inbound_loss_permille: 0,
        }
    }

    async fn sent(rig: &Rig) -> Vec<Gossip> {
        take(&rig.out)
            .await
            .into_iter()
            .map(|o| {
                assert_eq!((o.src.as_str(), o.dest.as_str()), ("n0", "n1"));
                match o.body {
                    OutBody::Gossip(g) => g,
                    other => panic!("not gossip: {other:?}"),
                }
            })
            .collect()
    }

    #[actix::test]
    async fn batches_a_round_and_sends_it_at_the_round_instant() {
        let rig = start(Flush::Aligned {
            interval_ms: 100,
            phase_ms: 0,
        });
        let a = Item::new("n0", 1, 1);
        let b = Item::new("n0", 2, 2);
        rig.gossip.do_send(update(&[&a]));
        sleep(Duration::from_millis(20)).await;
        rig.gossip.do_send(update(&[&a, &b]));
        sleep(Duration::from_millis(20)).await;
        assert!(
            sent(&rig).await.is_empty(),
            "nothing before the round instant"
        );
        sleep(Duration::from_millis(20)).await;
        let msgs = sent(&rig).await;
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].items, [a, b]);
        // tokio's timer wheel has millisecond ticks and never fires early.
        assert!(
            (1_000_100..=1_000_101).contains(&msgs[0].ts),
            "{}",
            msgs[0].ts
        );
    }

    #[actix::test]
    async fn a_leaf_batch_that_misses_the_hubs_flush_is_forwarded_at_once() {
        // The hub's link to n1: rounds of 400 ms after the leaves' instants
        // (START is one), flushing 110 ms after them.
        let rig = start(Flush::AfterPeer {
            interval_ms: 400,
            peer_phase_ms: START % 400,
            linger_ms: 10,
        });
        let on_time = Item::new("n2", 1, 1);
        let late = Item::new("n3", 1, 2);
        rig.gossip.do_send(LocalUpdate {
            sent_at: Some(START),
            ..update(&[&on_time])
        });
        sleep(Duration::from_millis(111)).await;
        let round = sent(&rig).await;
        assert_eq!(round.len(), 1, "the round's flush");
        assert_eq!(round[0].items, std::slice::from_ref(&on_time));
        // n3's batch of the same round arrives 30 ms after the flush.
        sleep(Duration::from_millis(29)).await;
        rig.gossip.do_send(LocalUpdate {
            sent_at: Some(START),
            ..update(&[&on_time, &late])
        });
        sleep(Duration::from_millis(
            1 + crate::link::schedule::LATE_COLLECT_MS,
        ))
        .await;
        let forwarded = sent(&rig).await;
        assert_eq!(forwarded.len(), 1, "not a round later");
        assert_eq!(forwarded[0].items, std::slice::from_ref(&late));
        // n1 acknowledges both; a value of the next round (sent after the
        // flush) waits for it.
        rig.gossip.do_send(PeerGossip(Gossip {
            inc: 0,
            items: vec![],
            digest: (*digest(&[&on_time, &late])).clone(),
            ts: START + 44,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        }));
        let next = Item::new("n2", 2, 3);
        rig.gossip.do_send(LocalUpdate {
            sent_at: Some(START + 400),
            ..update(&[&on_time, &late, &next])
        });
        sleep(Duration::from_millis(200)).await;
        assert!(sent(&rig).await.is_empty());
        sleep(Duration::from_millis(200)).await;
        let round = sent(&rig).await;
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].items, [next]);
        // The offset is the measured one-way delay (about 100 ms: the
        // acknowledgement's timestamp against the paused clock's ticks)
        // plus the linger.
        let offset = round[0].ts - (START + 400);
        assert!((110..=120).contains(&offset), "{offset}");
    }

    #[actix::test]
    async fn retransmits_a_dropped_batch_until_acknowledged_then_falls_silent() {
        let rig = start(Flush::Immediate);
        let a = Item::new("n0", 1, 1);
        rig.gossip.do_send(update(&[&a]));
        sleep(Duration::from_millis(1)).await;
        assert_eq!(sent(&rig).await.len(), 1);
        // That batch was lost: the initial RTO (300 ms) brings it again.
        sleep(Duration::from_millis(298)).await;
        assert!(sent(&rig).await.is_empty());
        sleep(Duration::from_millis(2)).await;
        let again = sent(&rig).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].items, std::slice::from_ref(&a));
        // The peer's digest acknowledges it: nothing more, ever.
        rig.gossip.do_send(PeerGossip(Gossip {
            inc: 0,
            items: vec![],
            digest: (*digest(&[&a])).clone(),
            ts: START + 350,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        }));
        sleep(Duration::from_secs(60)).await;
        assert!(sent(&rig).await.is_empty());
    }

    #[actix::test]
    async fn acknowledgements_piggyback_on_the_next_batch() {
        let rig = start(Flush::Immediate);
        let theirs = Item::new("n1", 1, 7);
        rig.gossip.do_send(PeerGossip(Gossip {
            inc: 0,
            items: vec![theirs.clone()],
            digest: (*digest(&[&theirs])).clone(),
            ts: START,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        }));
        sleep(Duration::from_millis(1)).await;
        // The store took it (digest only: it came from this peer), then a
        // client value of ours arrives within the ack delay.
        rig.gossip.do_send(LocalUpdate {
            items: Arc::new([]),
            digest: digest(&[&theirs]),
            sent_at: None,
            inbound_loss_permille: 0,
        });
        sleep(Duration::from_millis(10)).await;
        let mine = Item::new("n0", 1, 8);
        rig.gossip.do_send(update(&[&theirs, &mine]));
        sleep(Duration::from_millis(1)).await;
        let msgs = sent(&rig).await;
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].items, std::slice::from_ref(&mine));
        assert!(msgs[0].digest.covers("n1", 1), "the ack rides on the batch");
        // Past the ack delay no separate acknowledgement follows.
        sleep(Duration::from_millis(100)).await;
        assert!(sent(&rig).await.is_empty());
    }

    #[actix::test]
    async fn an_idle_link_says_hello_once_and_then_nothing() {
        let rig = start(Flush::Aligned {
            interval_ms: 100,
            phase_ms: 0,
        });
        sleep(Duration::from_millis(HELLO_AFTER_MS + 100)).await;
        let hello = sent(&rig).await;
        assert_eq!(hello.len(), 1, "the peer learns of this incarnation");
        assert!(hello[0].items.is_empty());
        assert_eq!(hello[0].inc, 1);
        sleep(Duration::from_secs(30)).await;
        assert!(sent(&rig).await.is_empty());
    }

    #[actix::test]
    async fn stop_link_stops_the_actor() {
        let rig = start(Flush::Immediate);
        rig.gossip.do_send(StopLink);
        sleep(Duration::from_millis(1)).await;
        assert!(!rig.gossip.connected());
    }

    /// A link whose silence is watched (bound 1500 ms), with one item in
    /// flight after its round instant.
    async fn watched_with_an_item_in_flight() -> (Rig, Addr<Recorder<PeerSilent>>) {
        let silent = recorder::<PeerSilent>();
        let rig = start_with(
            Flush::Aligned {
                interval_ms: 100,
                phase_ms: 0,
            },
            Some((silent.clone().recipient(), 1500)),
        );
        rig.gossip.do_send(update(&[&Item::new("n0", 1, 1)]));
        sleep(Duration::from_millis(60)).await;
        assert_eq!(sent(&rig).await.len(), 1, "the item went at the round");
        (rig, silent)
    }

    #[actix::test]
    async fn a_peer_that_answers_nothing_is_reported_silent_once() {
        let (_rig, silent) = watched_with_an_item_in_flight().await;
        sleep(Duration::from_millis(1400)).await;
        assert!(take(&silent).await.is_empty(), "not before the bound");
        sleep(Duration::from_millis(3000)).await;
        let reports = take(&silent).await;
        assert_eq!(reports.len(), 1, "reported once");
        assert_eq!((reports[0].peer.as_str(), reports[0].term), ("n1", 0));
        assert!(reports[0].silent_ms >= 1500);
    }

    #[actix::test]
    async fn a_peer_that_answers_is_not_silent() {
        let (rig, silent) = watched_with_an_item_in_flight().await;
        // The peer's messages keep coming but never acknowledge the item
        // (its digest lacks it): it is alive, so not silent.
        for k in 0..6 {
            sleep(Duration::from_millis(500)).await;
            rig.gossip.do_send(PeerGossip(Gossip {
                items: vec![],
                digest: Digest::default(),
                ts: START + 560 + 500 * k,
                inc: 7,
                round: None,
                term: 0,
                copy: None,
                loss: 0,
            }));
        }
        sleep(Duration::from_millis(500)).await;
        assert!(take(&silent).await.is_empty());
    }

    #[actix::test]
    async fn time_the_process_did_not_run_is_not_silence() {
        let (_rig, silent) = watched_with_an_item_in_flight().await;
        // The process stopped for 10 s (SIGSTOP): every timer fires late.
        tokio::time::advance(Duration::from_secs(10)).await;
        sleep(Duration::from_millis(10)).await;
        assert!(
            take(&silent).await.is_empty(),
            "the peer's answers may be unread on stdin"
        );
        sleep(Duration::from_millis(1600)).await;
        assert_eq!(
            take(&silent).await.len(),
            1,
            "silent 1.5 s after it ran again"
        );
    }

    /// Fanout's link from a leaf to its hub holds its acknowledgements for
    /// the ack delay (3 s) until its node measures messages lost; then it
    /// answers the hub's items within 250 ms and tells the hub the loss.
    #[actix::test]
    async fn under_measured_loss_the_link_answers_items_within_its_short_hold() {
        let to_hub = crate::testkit::fanout_link_to_hub();
        let from_hub = Item::new("n1", 1, 7);
        tokio::time::pause();
        let rigs = [0, 200].map(|loss| {
            let rig = spawn(to_hub.clone(), None);
            rig.gossip.do_send(PeerGossip(Gossip {
                inc: 0,
                items: vec![from_hub.clone()],
                digest: Digest::default(),
                ts: START,
                round: None,
                term: 0,
                copy: None,
                loss: 0,
            }));
            // The store took the item and tells every link, with the loss
            // it measures.
            rig.gossip.do_send(LocalUpdate {
                inbound_loss_permille: loss,
                digest: digest(&[&from_hub]),
                ..update(&[])
            });
            rig
        });
        sleep(Duration::from_millis(240)).await;
        for rig in &rigs {
            assert!(sent(rig).await.is_empty(), "held");
        }
        sleep(Duration::from_millis(20)).await;
        let [lossless, lossy] = rigs;
        assert!(sent(&lossless).await.is_empty(), "no loss: the ack delay");
        let answers = sent(&lossy).await;
        assert_eq!(answers.len(), 1, "the acknowledgement");
        assert!(answers[0].items.is_empty());
        assert!(answers[0].digest.covers("n1", 1));
        assert_eq!(answers[0].loss, 200, "the hub hears of the loss");
    }
}
