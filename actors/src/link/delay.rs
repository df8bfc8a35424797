//! Delay measurement: recent one-way delay samples from the peer (its `ts`
//! against our clock; both are the same machine's wall clock under
//! Maelstrom). Used only to place rounds and by the round planner, never
//! for correctness.

use std::collections::VecDeque;

/// The most recent one-way delay samples.
#[derive(Debug, Clone, Default)]
pub struct OneWayDelay {
    recent: VecDeque<u64>,
}

impl OneWayDelay {
    /// How many samples are kept.
    const KEEP: usize = 15;

    /// The longest delay taken as a sample: a `ts` further off is a broken
    /// clock (or a hostile peer), and would stall rounds placed after it.
    pub const PLAUSIBLE_MS: u64 = 60_000;

    /// A message sent at `sent` (sender's clock) arrived at `now`.
    pub fn on_message(&mut self, now: u64, sent: u64) {
        if now.saturating_sub(sent) > Self::PLAUSIBLE_MS {
            return;
        }
        if self.recent.len() == Self::KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(now.saturating_sub(sent));
    }

    /// The median of the recent samples (the upper one of an even count).
    pub fn median(&self) -> Option<u64> {
        let mut sorted: Vec<u64> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied()
    }

    pub fn highest(&self) -> Option<u64> {
        self.recent.iter().copied().max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_from_a_broken_clock_is_no_sample() {
        let mut delay = OneWayDelay::default();
        delay.on_message(1_000_000, 0);
        delay.on_message(1_000_000, u64::MAX);
        assert_eq!(delay.median(), Some(0), "ahead of our clock: zero delay");
        assert_eq!(delay.highest(), Some(0), "the one from 1970 is dropped");
    }

    #[test]
    fn median_and_highest_of_the_last_fifteen_samples() {
        let mut delay = OneWayDelay::default();
        assert_eq!((delay.median(), delay.highest()), (None, None));
        delay.on_message(1_100, 1_000);
        delay.on_message(1_300, 1_000);
        assert_eq!(delay.median(), Some(300), "the upper of two");
        // A sender clock ahead of ours counts as no delay.
        delay.on_message(1_000, 1_050);
        assert_eq!((delay.median(), delay.highest()), (Some(100), Some(300)));
        for _ in 0..15 {
            delay.on_message(2_050, 2_000);
        }
        assert_eq!(
            (delay.median(), delay.highest()),
            (Some(50), Some(50)),
            "older samples are gone"
        );
    }
}
