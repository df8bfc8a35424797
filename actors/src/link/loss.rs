//! Loss measured where it happens: at the receiving end of links that send
//! their peer's own values one batch at a time (fanout's direct links). The
//! node counts the copies of each batch that reach it (every copy names
//! itself `[i, k]`, so network duplicates count once) and the batches that
//! never do (a gap in a peer's sequence numbers that no earlier-sent batch
//! fills), over all such links at once: one link brings two batches a
//! second, too few to measure on its own, the 24 of a 25-node cluster
//! bring fifty. Every message to those peers says the share lost, and each
//! sender picks how many copies to send ([`LossCopies`]). A sender cannot
//! measure this itself once it sends copies: a batch shows lost to it only
//! when every copy is.

use crate::digest::origin_node;
use crate::protocol::Gossip;
use std::collections::BTreeMap;

/// How many copies of each batch a sender sends, given the share of them
/// its peer measures lost: the fewest (up to `max`) for which a batch is
/// lost entirely (p^k) at most `residual_ppm` millionths of the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossCopies {
    pub max: usize,
    pub residual_ppm: u64,
}

impl LossCopies {
    /// The copies for a measured loss of `permille` thousandths.
    pub fn copies(&self, permille: u64) -> usize {
        let p = permille.min(1000) as f64 / 1000.0;
        let residual = self.residual_ppm as f64 / 1e6;
        (1..=self.max.max(1))
            .find(|&k| p.powi(k as i32) <= residual)
            .unwrap_or(self.max.max(1))
    }
}

/// Each batch's weight in the estimate decays by this per later batch, so
/// the estimate follows the last few hundred batches (a few seconds of a
/// busy 25-node cluster).
const DECAY: f64 = 255.0 / 256.0;
/// The estimate divides by at least this many copies, so that one early
/// loss reads as a tenth, not as all.
const MIN_COPIES: f64 = 10.0;
/// How long after a gap showed a batch may still arrive (overtaken by a
/// later one) before it counts as lost.
const GAP_GRACE_MS: u64 = 200;
/// A gap of more consecutive batches than this is an outage (a partition,
/// a paused or restarted process), not random loss: copies cannot help
/// against it, so it does not count. Five or more batches in a row are
/// lost at random rarely (p^5: 0.2% at 30% loss with one copy), while an
/// outage takes every batch of its seconds. Counted in batches, not in
/// time, because a quiet peer's batches are seconds apart anyway.
const OUTAGE_GAP: u64 = 4;
/// The most copies a mark may claim.
const MAX_MARKED_COPIES: u32 = 16;

/// The peer's latest new batch, whose copies may still be arriving.
#[derive(Debug, Clone)]
struct OpenBatch {
    ts: u64,
    inc: u64,
    copies: u32,
    /// Bit i−1 set: copy i arrived.
    arrived: u32,
}

/// A seq a later batch skipped: lost unless a batch sent before that one
/// still brings it.
#[derive(Debug, Clone)]
struct Gap {
    seq: u64,
    copies: u32,
    /// When the batch that skipped it was sent (peer clock) and arrived.
    shown_by_ts: u64,
    shown_at: u64,
}

/// What the node has seen of one peer's batches.
#[derive(Debug, Clone, Default)]
struct PeerBatches {
    /// The peer's own origin (its current incarnation) and the highest seq
    /// of it seen in a new batch.
    high: Option<(String, u64)>,
    open: Option<OpenBatch>,
    gaps: Vec<Gap>,
}

/// The node's measure of the share of its peers' copies lost on their way
/// to it.
#[derive(Debug, Clone, Default)]
pub struct LossMeter {
    peers: BTreeMap<String, PeerBatches>,
    /// Decayed counts of copies sent and lost.
    sent: f64,
    lost: f64,
}

impl LossMeter {
    /// A message from `peer` (on a measured link) arrived at `now`.
    pub fn on_message(&mut self, now: u64, peer: &str, msg: &Gossip) {
        self.settle(now);
        let closed = self
            .peers
            .entry(peer.to_string())
            .or_default()
            .on_message(now, peer, msg);
        if let Some((copies, arrived)) = closed {
            self.count(copies, arrived);
        }
    }

    /// Gaps past their grace count as lost batches.
    fn settle(&mut self, now: u64) {
        let mut lost = Vec::new();
        for batches in self.peers.values_mut() {
            batches.gaps.retain(|gap| {
                let due = gap.shown_at.saturating_add(GAP_GRACE_MS) <= now;
                if due {
                    lost.push(gap.copies);
                }
                !due
            });
        }
        for copies in lost {
            self.count(copies, 0);
        }
    }

    fn count(&mut self, copies: u32, arrived: u32) {
        self.sent = self.sent * DECAY + f64::from(copies);
        self.lost = self.lost * DECAY + f64::from(copies.saturating_sub(arrived));
    }

    /// The share of the peers' copies lost on the way, in thousandths.
    pub fn permille(&self) -> u64 {
        if self.sent <= 0.0 {
            return 0;
        }
        (1000.0 * self.lost / self.sent.max(MIN_COPIES)).round() as u64
    }
}

impl PeerBatches {
    /// Takes one message; returns (copies sent, copies arrived) of the
    /// batch it closes, if any.
    fn on_message(&mut self, now: u64, peer: &str, msg: &Gossip) -> Option<(u32, u32)> {
        let (index, copies) = match msg.copy {
            Some(mark) if mark.0 >= 1 && mark.0 <= mark.1 && mark.1 <= MAX_MARKED_COPIES => {
                (mark.0, mark.1)
            }
            _ => (1, 1),
        };
        let bit = 1u32 << (index - 1);
        if let Some(open) = self
            .open
            .as_mut()
            .filter(|o| o.ts == msg.ts && o.inc == msg.inc)
        {
            open.arrived |= bit;
            return None;
        }
        let own = msg
            .items
            .iter()
            .filter(|item| origin_node(&item.origin) == peer);
        let newest = own.clone().max_by_key(|item| item.seq)?;
        let origin = &newest.origin;
        let lowest = own
            .filter(|item| &item.origin == origin)
            .map(|item| item.seq)
            .min()
            .unwrap_or(newest.seq);
        let high = match &self.high {
            Some((known, high)) if known == origin => *high,
            // A first batch, or a restarted peer: nothing before it counts.
            _ => {
                self.gaps.clear();
                self.open = None;
                lowest.saturating_sub(1)
            }
        };
        if lowest <= high {
            // A resend, or a batch a later one overtook: what it fills was
            // late, not lost.
            self.gaps.retain(|gap| {
                !(gap.seq >= lowest && gap.seq <= newest.seq && msg.ts < gap.shown_by_ts)
            });
            return None;
        }
        let closed = self
            .open
            .take()
            .map(|open| (open.copies, open.arrived.count_ones()));
        if lowest - high - 1 > OUTAGE_GAP {
            self.gaps.clear();
        } else {
            for seq in high + 1..lowest {
                self.gaps.push(Gap {
                    seq,
                    copies,
                    shown_by_ts: msg.ts,
                    shown_at: now,
                });
            }
        }
        self.open = Some(OpenBatch {
            ts: msg.ts,
            inc: msg.inc,
            copies,
            arrived: bit,
        });
        self.high = Some((origin.clone(), newest.seq));
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Digest, Item};
    use crate::protocol::CopyMark;

    const ORIGIN: &str = "n1@5";

    fn batch(ts: u64, seqs: &[u64], copy: Option<(u32, u32)>) -> Gossip {
        Gossip {
            items: seqs
                .iter()
                .map(|&s| Item::new(ORIGIN, s, s as i64))
                .collect(),
            digest: Digest::default(),
            ts,
            inc: 5,
            round: None,
            term: 0,
            copy: copy.map(|(i, k)| CopyMark(i, k)),
            loss: 0,
        }
    }

    /// Batches 1..=n, 100 ms apart, each in `k` copies of which `arrives`
    /// decides which reach the meter.
    fn feed(meter: &mut LossMeter, n: u64, k: u32, arrives: impl Fn(u64, u32) -> bool) {
        for seq in 1..=n {
            for i in 1..=k {
                if arrives(seq, i) {
                    let mark = (k > 1).then_some((i, k));
                    meter.on_message(seq * 100 + 100, "n1", &batch(seq * 100, &[seq], mark));
                }
            }
        }
    }

    #[test]
    fn copies_grow_with_the_loss_until_a_batch_is_rarely_lost_whole() {
        // 25 nodes: at most half a peer per value misses the one hop.
        let copies = LossCopies {
            max: 4,
            residual_ppm: 1_000_000 / 48,
        };
        assert_eq!(copies.copies(0), 1);
        assert_eq!(copies.copies(20), 1);
        assert_eq!(copies.copies(100), 2);
        assert_eq!(copies.copies(200), 3);
        assert_eq!(copies.copies(250), 3);
        assert_eq!(copies.copies(400), 4);
        assert_eq!(copies.copies(1000), 4);
    }

    #[test]
    fn nothing_lost_reads_as_zero() {
        let mut meter = LossMeter::default();
        feed(&mut meter, 50, 3, |_, _| true);
        assert_eq!(meter.permille(), 0);
        let mut single = LossMeter::default();
        feed(&mut single, 50, 1, |_, _| true);
        assert_eq!(single.permille(), 0);
    }

    #[test]
    fn lost_copies_are_counted_from_the_marks() {
        // Copy 3 of every batch is lost: a third.
        let mut meter = LossMeter::default();
        feed(&mut meter, 200, 3, |_, i| i != 3);
        let p = meter.permille();
        assert!((320..=345).contains(&p), "{p}");
    }

    #[test]
    fn network_duplicates_do_not_hide_losses() {
        let mut meter = LossMeter::default();
        // Copy 1 arrives twice, copy 2 never.
        for seq in 1..=200u64 {
            let copy = batch(seq * 100, &[seq], Some((1, 2)));
            meter.on_message(seq * 100 + 100, "n1", &copy);
            meter.on_message(seq * 100 + 101, "n1", &copy);
        }
        let p = meter.permille();
        assert!((480..=510).contains(&p), "{p}");
    }

    #[test]
    fn a_batch_sent_once_and_lost_shows_as_a_gap_after_the_grace() {
        let mut meter = LossMeter::default();
        // Every fifth single-copy batch is lost.
        feed(&mut meter, 400, 1, |seq, _| seq % 5 != 0);
        let p = meter.permille();
        assert!((180..=220).contains(&p), "{p}");
    }

    #[test]
    fn a_batch_overtaken_by_a_later_one_is_not_lost() {
        let mut meter = LossMeter::default();
        for seq in 1..=100u64 {
            // Each even batch arrives just after the odd one sent after it.
            let arrival_order: &[u64] = match seq % 2 {
                0 => &[],
                _ => &[seq + 1, seq],
            };
            for &s in arrival_order {
                meter.on_message(s * 100 + 120, "n1", &batch(s * 100, &[s], None));
            }
        }
        meter.on_message(20_000, "n1", &batch(19_900, &[102], None));
        assert_eq!(meter.permille(), 0);
    }

    #[test]
    fn a_resend_of_a_lost_batch_does_not_undo_its_loss() {
        let mut meter = LossMeter::default();
        meter.on_message(200, "n1", &batch(100, &[1], None));
        // Batch 2 (sent at 200) is lost; 3 shows the gap, then 2 comes
        // again in a resend sent after 3.
        meter.on_message(400, "n1", &batch(300, &[3], None));
        meter.on_message(500, "n1", &batch(400, &[2], None));
        meter.on_message(1_500, "n1", &batch(1_400, &[4], None));
        assert!(meter.permille() > 0);
    }

    #[test]
    fn an_outage_is_not_loss() {
        let mut meter = LossMeter::default();
        feed(&mut meter, 20, 1, |_, _| true);
        // Nothing arrives for 10 s (a partition), then batches go on.
        for seq in 120..=140u64 {
            meter.on_message(seq * 100 + 100, "n1", &batch(seq * 100, &[seq], None));
        }
        assert_eq!(meter.permille(), 0);
        // Four batches in a row lost are loss, however long they took.
        meter.on_message(20_000, "n1", &batch(19_900, &[145], None));
        meter.on_message(21_000, "n1", &batch(20_900, &[146], None));
        let p = meter.permille();
        assert!(p > 0, "{p}");
    }

    #[test]
    fn a_restarted_peer_starts_a_new_count_and_other_origins_are_ignored() {
        let mut meter = LossMeter::default();
        meter.on_message(200, "n1", &batch(100, &[1], None));
        // A new incarnation numbers from 1 again: no gap, no resend.
        let mut restarted = batch(300, &[1], None);
        restarted.items = vec![Item::new("n1@9", 1, 7)];
        meter.on_message(400, "n1", &restarted);
        // Items of other origins (relayed) say nothing about this link.
        let mut relayed = batch(500, &[], None);
        relayed.items = vec![Item::new("n4@2", 90, 7)];
        meter.on_message(600, "n1", &relayed);
        let mut next = batch(4_900, &[], None);
        next.items = vec![Item::new("n1@9", 2, 8)];
        meter.on_message(5_000, "n1", &next);
        assert_eq!(meter.permille(), 0);
    }
}
