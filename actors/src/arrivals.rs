//! When a star hub flushes its rounds, as a plain struct (no actix, time
//! passed in): the spread of the leaves' round batches as they reach the hub.
//!
//! Every leaf sends its round's batch at the same shared-clock instant; the
//! hub's links each report how long after that instant their leaf's batch
//! arrived. The hub must flush after the last batch of a round, so what
//! matters is each round's latest arrival, not any one link's delay. Late
//! deliveries (a burst of batches written one after another to the hub, a
//! scheduler or garbage-collector pause) make that latest arrival vary from
//! round to round, so the flush offset is a high quantile of the recent
//! rounds' latest arrivals plus the linger. A batch later than that is
//! forwarded at once by the hub's links (see `link::schedule`), so the
//! quantile only has to cover most rounds, not every one.

use std::collections::VecDeque;

/// How many recent rounds the estimate looks at.
const ROUNDS_KEPT: usize = 30;
/// How many of the kept rounds' latest arrivals may exceed the estimate:
/// one in fifteen rounds pays a forwarded late batch instead of every
/// round paying for its worst straggler.
const ROUNDS_EXCEEDING: usize = 2;

#[derive(Debug, Clone)]
pub struct ArrivalSpread {
    /// Per recent round: its instant and the latest arrival offset seen.
    rounds: VecDeque<(u64, u64)>,
    linger_ms: u64,
    interval_ms: u64,
}

impl ArrivalSpread {
    /// An estimate for rounds of `interval_ms`, flushing `linger_ms` after
    /// the quantile.
    pub fn new(interval_ms: u64, linger_ms: u64) -> Self {
        ArrivalSpread {
            rounds: VecDeque::new(),
            linger_ms,
            interval_ms,
        }
    }

    /// The rounds changed length: earlier rounds' spread still holds, only
    /// the outlier bound moves.
    pub fn set_interval(&mut self, interval_ms: u64) {
        self.interval_ms = interval_ms;
    }

    /// Offsets of at least this are outliers (a partitioned, paused or
    /// restarted leaf, a stalled machine): they are forwarded late, never
    /// waited for. A quarter round beyond the typical round's latest
    /// arrival once three rounds are known; a whole round before.
    fn outlier_bound(&self) -> u64 {
        if self.rounds.len() < 3 {
            return self.interval_ms;
        }
        let mut latest: Vec<u64> = self.rounds.iter().map(|(_, l)| *l).collect();
        latest.sort_unstable();
        latest[latest.len() / 2] + self.interval_ms / 4
    }

    /// A leaf's batch of the round at `round_at` arrived `offset_ms` after
    /// it. Returns whether the flush offset changed.
    pub fn on_arrival(&mut self, round_at: u64, offset_ms: u64) -> bool {
        if offset_ms >= self.outlier_bound() {
            return false;
        }
        let before = self.flush_offset();
        match self.rounds.iter_mut().find(|(at, _)| *at == round_at) {
            Some((_, latest)) => *latest = (*latest).max(offset_ms),
            None => {
                // Only the newest rounds count; an old round's batch that
                // arrives after newer ones is an outlier as well.
                if self.rounds.len() == ROUNDS_KEPT
                    && self.rounds.iter().all(|(at, _)| *at > round_at)
                {
                    return false;
                }
                self.rounds.push_back((round_at, offset_ms));
                self.rounds.make_contiguous().sort_unstable();
                if self.rounds.len() > ROUNDS_KEPT {
                    self.rounds.pop_front();
                }
            }
        }
        self.flush_offset() != before
    }

    /// How long after the leaves' round instant the hub flushes: the
    /// latest arrival of all but the `ROUNDS_EXCEEDING` worst of the
    /// kept rounds (the worst of all while fewer rounds are known), plus
    /// the linger. None before any arrival.
    pub fn flush_offset(&self) -> Option<u64> {
        let mut latest: Vec<u64> = self.rounds.iter().map(|(_, l)| *l).collect();
        latest.sort_unstable();
        let skip = if latest.len() == ROUNDS_KEPT {
            ROUNDS_EXCEEDING
        } else {
            0
        };
        let index = latest.len().checked_sub(1 + skip)?;
        Some(latest[index] + self.linger_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_known_before_the_first_arrival() {
        assert_eq!(ArrivalSpread::new(400, 10).flush_offset(), None);
    }

    #[test]
    fn a_round_counts_with_its_latest_arrival() {
        let mut spread = ArrivalSpread::new(400, 10);
        assert!(spread.on_arrival(1_000, 101));
        assert!(spread.on_arrival(1_000, 130));
        assert!(!spread.on_arrival(1_000, 102), "not the latest");
        assert_eq!(spread.flush_offset(), Some(140));
    }

    #[test]
    fn the_worst_rounds_are_left_to_late_forwarding_once_enough_are_known() {
        let mut spread = ArrivalSpread::new(400, 10);
        for round in 0..ROUNDS_KEPT as u64 - 1 {
            spread.on_arrival(round * 400, 100 + round % 3);
        }
        spread.on_arrival(20_000, 180);
        assert_eq!(
            spread.flush_offset(),
            Some(112),
            "two rounds may exceed the estimate"
        );
        spread.on_arrival(20_400, 170);
        spread.on_arrival(20_800, 160);
        assert_eq!(spread.flush_offset(), Some(170), "three may not");
    }

    #[test]
    fn old_rounds_fall_out_of_the_window() {
        let mut spread = ArrivalSpread::new(400, 10);
        spread.on_arrival(0, 190);
        for round in 1..=ROUNDS_KEPT as u64 {
            spread.on_arrival(round * 400, 100);
        }
        assert_eq!(spread.flush_offset(), Some(110));
        assert!(
            !spread.on_arrival(0, 105),
            "a round older than every kept one"
        );
    }

    #[test]
    fn outliers_are_never_waited_for() {
        let mut spread = ArrivalSpread::new(400, 10);
        for round in 0..3 {
            spread.on_arrival(round * 400, 100);
        }
        assert!(!spread.on_arrival(1_200, 200), "a quarter round late");
        assert_eq!(spread.flush_offset(), Some(110));
        spread.set_interval(1_000);
        assert!(spread.on_arrival(1_200, 200));
        assert_eq!(spread.flush_offset(), Some(210));
    }

    #[test]
    fn once_rounds_are_known_outliers_are_judged_against_the_typical_round() {
        let mut spread = ArrivalSpread::new(400, 10);
        for round in 0..5 {
            spread.on_arrival(round * 400, 250);
        }
        assert!(spread.on_arrival(2_000, 320), "a long delay is not late");
        assert!(!spread.on_arrival(2_400, 350), "a quarter round beyond");
        assert_eq!(spread.flush_offset(), Some(330));
    }
}
