//! The round schedule: the one place that decides when a link may send. It
//! holds the rounds in effect (the policy's at start), a round change
//! planned for a later instant, what a round-leading link announces, and
//! when the last message went (one message per round instant).
//!
//! Round changes: the node's round planner hands a leading link a change
//! ([`RoundSchedule::set_round`]); the link announces it in every message; a
//! following link adopts what its peer announces
//! ([`RoundSchedule::on_peer_round`]); both ends put it into effect at its
//! instant ([`RoundSchedule::settle`]), and [`RoundSchedule::align`] places
//! rounds on the new grid from that instant on even before it is settled.
//!
//! An after-peer link (a star hub's link to a leaf) flushes at the hub's
//! flush offset after the leaves' round instant: the offset the node's
//! arrival estimate (see `arrivals`) sets, or the link's own measured delay
//! plus the linger until it does. Items that arrive from a batch sent before
//! the link's latest flush missed it: unless the next flush is near, they go
//! at once ([`RoundSchedule::on_late_items`]), a few ms later so that the
//! round's other stragglers ride along, instead of waiting a whole round.

use super::policy::{Flush, RoundRole};
use crate::protocol::RoundChange;

/// The smallest instant x ≥ t with x ≡ phase (mod interval).
pub fn align_up(t: u64, interval: u64, phase: u64) -> u64 {
    let interval = interval.max(1);
    t.saturating_add(steps_from(t, phase, interval, true))
}

/// How far `t` is from the grid `phase + k·interval`: forward to the next
/// instant (`ahead`), or back to the latest one. Never overflows, whatever
/// a peer's clock says.
fn steps_from(t: u64, phase: u64, interval: u64, ahead: bool) -> u64 {
    let (rem, phase) = (t % interval, phase % interval);
    match (ahead, rem <= phase) {
        (true, true) => phase - rem,
        (true, false) => interval - (rem - phase),
        (false, true) => (interval - (phase - rem)) % interval,
        (false, false) => rem - phase,
    }
}

#[derive(Debug, Clone)]
pub struct RoundSchedule {
    /// The rounds in effect.
    flush: Flush,
    role: RoundRole,
    /// One-way delay assumed for an after-peer link until one is measured.
    latency_hint_ms: u64,
    /// A round change not in effect yet (both ends switch at its instant).
    next: Option<RoundChange>,
    /// What a round-leading link announces: its latest change.
    announced: Option<RoundChange>,
    last_sent_at: Option<u64>,
    /// After-peer links: how long after the peer's round instant to flush,
    /// as the node's arrival estimate set it.
    flush_offset_ms: Option<u64>,
    /// An extra flush for items that missed the latest one.
    expedite_at: Option<u64>,
    /// The instant of the latest round change heard from the peer: an
    /// announcement of an earlier one is a late delivery, not news.
    heard_from: Option<u64>,
}

/// How long a late flush waits for the round's other stragglers.
pub const LATE_COLLECT_MS: u64 = 3;

impl RoundSchedule {
    pub fn new(flush: Flush, role: RoundRole, latency_hint_ms: u64) -> Self {
        RoundSchedule {
            flush,
            role,
            latency_hint_ms,
            next: None,
            announced: None,
            last_sent_at: None,
            flush_offset_ms: None,
            expedite_at: None,
            heard_from: None,
        }
    }

    /// Puts a planned round change into effect once its instant has come.
    pub fn settle(&mut self, now: u64) {
        let Some(RoundChange(interval, from)) = self.next else {
            return;
        };
        if now < from {
            return;
        }
        self.next = None;
        match &mut self.flush {
            Flush::Immediate => {}
            Flush::Aligned {
                interval_ms,
                phase_ms: phase,
            }
            | Flush::AfterPeer {
                interval_ms,
                peer_phase_ms: phase,
                ..
            } => {
                *interval_ms = interval;
                *phase = from % interval;
            }
        }
    }

    /// Plans a round change for a round-leading link. The node's round
    /// planner picks one instant for all its links, on the current grid and
    /// late enough for the announcement to reach the peer first, so both
    /// ends of every link change grids at the same moment: rounds of the
    /// new length start at that instant. An immediate (fanout) link only
    /// announces it: there it means "star rounds from that instant"; a zero
    /// length is only announced too: "fanout from that instant".
    pub fn set_round(&mut self, change: RoundChange) {
        if change.0 > 0 && self.round().is_some() {
            self.next = Some(change);
        }
        self.announced = Some(change);
    }

    /// The round the peer announced: a following aligned link adopts a
    /// change it has not planned yet (and, once its instant has passed,
    /// puts it into effect at once).
    pub fn on_peer_round(&mut self, now: u64, change: RoundChange) {
        if self.role != RoundRole::Follow || self.round().is_none() || change.0 == 0 {
            return;
        }
        if self.heard_from.is_some_and(|from| change.1 < from) {
            return;
        }
        self.heard_from = Some(change.1);
        let news = match self.next {
            Some(planned) => planned != change,
            None => self.grid() != Some((change.0, change.1 % change.0)),
        };
        if news {
            self.next = Some(change);
            self.settle(now);
        }
    }

    /// A message went out at `now`.
    pub fn on_send(&mut self, now: u64) {
        self.last_sent_at = Some(now);
        self.expedite_at = None;
    }

    /// The node's arrival estimate: an after-peer link flushes this long
    /// after the peer's round instant.
    pub fn set_flush_offset(&mut self, offset_ms: u64) {
        self.flush_offset_ms = Some(offset_ms);
    }

    /// For an after-peer link, the peer's round instant a message it sent
    /// at `sent` belongs to, and how long after it the message arrived at
    /// `now` (None for other links, or from a clock ahead of ours).
    pub fn arrival(&self, now: u64, sent: u64) -> Option<(u64, u64)> {
        let Flush::AfterPeer {
            interval_ms,
            peer_phase_ms,
            ..
        } = self.flush
        else {
            return None;
        };
        let since_round = steps_from(sent, peer_phase_ms, interval_ms.max(1), false);
        let round_at = sent.checked_sub(since_round)?;
        Some((round_at, now.checked_sub(round_at)?))
    }

    /// Items from a peer's batch sent at `sent` reached this link at `now`.
    /// On an after-peer link, if they missed its latest flush and the next
    /// one is more than a quarter round away, they go in an extra flush
    /// [`LATE_COLLECT_MS`] from now. A flush instant that passed without a
    /// message (nothing had arrived yet: every batch of the round was late)
    /// was missed as much as one that went without these items.
    pub fn on_late_items(&mut self, now: u64, sent: u64, one_way_ms: Option<u64>) {
        let Flush::AfterPeer { interval_ms, .. } = self.flush else {
            return;
        };
        let next = self.regular(now, one_way_ms, 1);
        // The regular flush instant before `next`, if it has passed (one due
        // at `now` may still take what arrives now).
        let flush_passed_since_sent = next
            .checked_sub(interval_ms.max(1))
            .is_some_and(|previous| previous < now && previous >= sent);
        let flushed_since_sent =
            self.last_sent_at.is_some_and(|last| last >= sent) || flush_passed_since_sent;
        if !flushed_since_sent || self.expedite_at.is_some() {
            return;
        }
        if next.saturating_sub(now) > interval_ms / 4 {
            self.expedite_at = Some(now + LATE_COLLECT_MS);
        }
    }

    /// When a message due at `t` may go: at once, or at the first round
    /// instant after it that has not had its message yet. An after-peer
    /// round starts `one_way_ms` (measured, else the hint) plus the linger
    /// after the peer's.
    pub fn align(&self, t: u64, one_way_ms: Option<u64>) -> u64 {
        let regular = self.regular(t, one_way_ms, 1);
        match self.expedite_at {
            Some(at) => regular.min(at.max(t)),
            None => regular,
        }
    }

    /// [`RoundSchedule::align`] for items the link only relays, which may
    /// go at every `every`-th round instant only (a sub-grid of the rounds:
    /// the instants of rounds `every` times as long, on the same phase).
    /// With `every` above 1 a late flush is not for them either: they wait
    /// for their round like any other.
    pub fn align_every(&self, t: u64, one_way_ms: Option<u64>, every: u64) -> u64 {
        if every <= 1 {
            self.align(t, one_way_ms)
        } else {
            self.regular(t, one_way_ms, every)
        }
    }

    /// [`RoundSchedule::align`] without an extra late flush, on every
    /// `every`-th round instant.
    fn regular(&self, t: u64, one_way_ms: Option<u64>, every: u64) -> u64 {
        let (interval, base, offset) = match self.flush {
            Flush::Immediate => return t,
            Flush::Aligned {
                interval_ms,
                phase_ms,
            } => (interval_ms, phase_ms, 0),
            Flush::AfterPeer {
                interval_ms,
                peer_phase_ms,
                linger_ms,
            } => {
                let offset = self
                    .flush_offset_ms
                    .unwrap_or_else(|| one_way_ms.unwrap_or(self.latency_hint_ms) + linger_ms);
                (interval_ms, peer_phase_ms, offset)
            }
        };
        let t = t.max(self.last_sent_at.map_or(0, |last| last + 1));
        let on_current = align_up(t, interval.saturating_mul(every), base + offset);
        match self.next {
            Some(RoundChange(next, from)) if on_current >= from => {
                align_up(t.max(from), next.saturating_mul(every), from + offset)
            }
            _ => on_current,
        }
    }

    /// What a message announces: a leading link its latest change, or its
    /// rounds as they are (phase 0 standing for "no change").
    pub fn announcement(&self) -> Option<RoundChange> {
        match self.role {
            RoundRole::Lead => self
                .announced
                .or_else(|| self.round().map(|interval| RoundChange(interval, 0))),
            RoundRole::Fixed | RoundRole::Follow => None,
        }
    }

    /// The rounds in effect.
    pub fn flush(&self) -> Flush {
        self.flush
    }

    /// The current round length (None for immediate links).
    pub fn round(&self) -> Option<u64> {
        self.grid().map(|(interval, _)| interval)
    }

    /// The grid the rounds follow: (length, phase of the round instants, or
    /// of the peer's for an after-peer link). None for immediate links.
    fn grid(&self) -> Option<(u64, u64)> {
        match self.flush {
            Flush::Immediate => None,
            Flush::Aligned {
                interval_ms,
                phase_ms,
            } => Some((interval_ms, phase_ms)),
            Flush::AfterPeer {
                interval_ms,
                peer_phase_ms,
                ..
            } => Some((interval_ms, peer_phase_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(interval_ms: u64, phase_ms: u64, role: RoundRole) -> RoundSchedule {
        RoundSchedule::new(
            Flush::Aligned {
                interval_ms,
                phase_ms,
            },
            role,
            100,
        )
    }

    #[test]
    fn align_up_finds_the_next_instant_of_the_grid() {
        assert_eq!(align_up(1_000, 100, 30), 1_030);
        assert_eq!(align_up(1_030, 100, 30), 1_030);
        assert_eq!(align_up(1_031, 100, 30), 1_130);
        assert_eq!(align_up(1_031, 100, 230), 1_130, "the phase is modulo");
        assert_eq!(align_up(7, 0, 0), 7, "a zero interval is one ms");
        assert_eq!(align_up(u64::MAX - 1, 1_000, 0), u64::MAX, "saturates");
        assert_eq!(align_up(5, u64::MAX, u64::MAX - 1), u64::MAX - 1);
    }

    #[test]
    fn an_immediate_link_sends_when_due() {
        let mut schedule = RoundSchedule::new(Flush::Immediate, RoundRole::Fixed, 100);
        schedule.on_send(50);
        assert_eq!(schedule.align(50, None), 50);
        assert_eq!(schedule.round(), None);
    }

    #[test]
    fn an_aligned_link_sends_once_per_round_instant() {
        let mut schedule = aligned(100, 30, RoundRole::Fixed);
        assert_eq!(schedule.align(1_005, None), 1_030);
        schedule.on_send(1_030);
        assert_eq!(
            schedule.align(1_030, None),
            1_130,
            "that instant had its message"
        );
    }

    #[test]
    fn an_after_peer_link_flushes_a_delay_and_the_linger_after_the_peers_round() {
        let schedule = RoundSchedule::new(
            Flush::AfterPeer {
                interval_ms: 1_000,
                peer_phase_ms: 0,
                linger_ms: 10,
            },
            RoundRole::Fixed,
            100,
        );
        assert_eq!(
            schedule.align(5_000, None),
            5_110,
            "the hint until measured"
        );
        assert_eq!(schedule.align(5_000, Some(40)), 5_050);
    }

    fn hub_link(interval_ms: u64, flush_offset_ms: u64) -> RoundSchedule {
        let mut schedule = RoundSchedule::new(
            Flush::AfterPeer {
                interval_ms,
                peer_phase_ms: 0,
                linger_ms: 10,
            },
            RoundRole::Fixed,
            100,
        );
        schedule.set_flush_offset(flush_offset_ms);
        schedule
    }

    #[test]
    fn items_that_missed_a_flush_go_at_once_unless_the_next_is_near() {
        let mut schedule = hub_link(1_000, 110);
        schedule.on_send(5_110);
        schedule.on_late_items(5_150, 5_000, None);
        assert_eq!(schedule.align(5_150, None), 5_150 + LATE_COLLECT_MS);
        schedule.on_send(5_153);
        schedule.on_late_items(5_900, 5_000, None);
        assert_eq!(schedule.align(5_900, None), 6_110, "the next flush is near");
    }

    #[test]
    fn items_late_for_a_flush_that_sent_nothing_go_at_once_too() {
        // Every batch of the round arrived after the flush instant, so the
        // link had nothing to send then: the items still missed it.
        let mut schedule = hub_link(1_000, 110);
        schedule.on_send(4_110);
        schedule.on_late_items(5_150, 5_000, None);
        assert_eq!(schedule.align(5_150, None), 5_150 + LATE_COLLECT_MS);
    }

    #[test]
    fn items_of_a_batch_sent_after_the_latest_flush_wait_for_the_next() {
        let mut schedule = hub_link(1_000, 110);
        schedule.on_send(5_110);
        schedule.on_late_items(5_400, 5_300, None);
        assert_eq!(schedule.align(5_400, None), 6_110);
        let mut quiet = hub_link(1_000, 110);
        quiet.on_late_items(5_100, 5_000, None);
        assert_eq!(quiet.align(5_100, None), 5_110, "the flush is still due");
    }

    #[test]
    fn a_late_announcement_of_an_earlier_change_does_not_move_the_grid_back() {
        let mut follow = aligned(200, 0, RoundRole::Follow);
        follow.on_peer_round(1_000, RoundChange(700, 1_800));
        follow.settle(1_800);
        assert_eq!(follow.round(), Some(700));
        // The hub's announcement of its first rounds, delivered late.
        follow.on_peer_round(1_900, RoundChange(200, 0));
        follow.settle(1_900);
        assert_eq!(follow.round(), Some(700), "rounds only move forward");
        follow.on_peer_round(2_000, RoundChange(500, 3_200));
        follow.settle(3_200);
        assert_eq!(follow.round(), Some(500), "a later change still counts");
    }

    #[test]
    fn a_planned_change_places_rounds_on_the_new_grid_from_its_instant() {
        let mut lead = aligned(200, 0, RoundRole::Lead);
        assert_eq!(lead.announcement(), Some(RoundChange(200, 0)));
        let change = RoundChange(700, 1_800);
        lead.set_round(change);
        assert_eq!(lead.announcement(), Some(change));
        assert_eq!(
            lead.align(1_450, None),
            1_600,
            "old rounds before the change"
        );
        assert_eq!(lead.align(1_700, None), 1_800);
        assert_eq!(lead.round(), Some(200), "not in effect yet");
        lead.settle(1_799);
        assert_eq!(lead.round(), Some(200));
        lead.settle(1_800);
        assert_eq!(
            lead.flush(),
            Flush::Aligned {
                interval_ms: 700,
                phase_ms: 1_800 % 700
            }
        );
        assert_eq!(lead.align(1_900, None), 2_500, "1800 + 700, not 2100");
    }

    #[test]
    fn only_an_aligned_following_link_adopts_the_peers_round() {
        let change = RoundChange(700, 1_800);
        let mut follow = aligned(200, 0, RoundRole::Follow);
        follow.on_peer_round(1_000, RoundChange(200, 0));
        assert_eq!(
            follow.align(1_850, None),
            2_000,
            "the grid in effect: no news"
        );
        follow.on_peer_round(1_000, change);
        assert_eq!(follow.align(1_850, None), 2_500);
        assert_eq!(follow.announcement(), None, "a follower announces nothing");
        // Heard after its instant: in effect at once.
        let mut late = aligned(200, 0, RoundRole::Follow);
        late.on_peer_round(2_000, change);
        assert_eq!(late.round(), Some(700));
        for mut other in [
            aligned(200, 0, RoundRole::Fixed),
            RoundSchedule::new(Flush::Immediate, RoundRole::Follow, 100),
        ] {
            other.on_peer_round(2_000, change);
            assert_eq!(other.announcement(), None);
            assert_ne!(other.round(), Some(700));
        }
        let mut follow = aligned(200, 0, RoundRole::Follow);
        follow.on_peer_round(2_000, RoundChange(0, 1_800));
        assert_eq!(follow.round(), Some(200), "fanout is not a round");
    }

    #[test]
    fn an_immediate_leading_link_only_announces() {
        let mut lead = RoundSchedule::new(Flush::Immediate, RoundRole::Lead, 100);
        assert_eq!(lead.announcement(), None);
        lead.set_round(RoundChange(160, 1_500));
        lead.settle(2_000);
        assert_eq!(lead.round(), None);
        assert_eq!(lead.announcement(), Some(RoundChange(160, 1_500)));
    }
}
