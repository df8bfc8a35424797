//! The retransmission timer: how long an in-flight item waits for the
//! peer's acknowledgement before it is sent again.

use super::policy::RtoBounds;

/// Jacobson/Karels estimator over acknowledgement delays, with backoff.
///
/// A sample is the time from an item's only transmission to the first peer
/// digest that covers it (Karn: retransmitted items give no sample). That
/// delay includes however long the peer holds its acknowledgement, so the
/// timeout adapts to the peer's ack delay and flush rounds, not just the
/// network round trip.
#[derive(Debug, Clone)]
pub struct RetransmitTimer {
    bounds: RtoBounds,
    /// (smoothed delay, its variation) once there is a sample.
    smoothed: Option<(f64, f64)>,
    backoff: u32,
}

impl RetransmitTimer {
    pub fn new(bounds: RtoBounds) -> Self {
        RetransmitTimer {
            bounds,
            smoothed: None,
            backoff: 0,
        }
    }

    fn max(&self) -> u64 {
        self.bounds.max_ms.max(self.bounds.min_ms)
    }

    fn base(&self) -> u64 {
        let raw = match self.smoothed {
            None => self.bounds.initial_ms,
            Some((srtt, rttvar)) => (srtt + 4.0 * rttvar).ceil() as u64,
        };
        raw.clamp(self.bounds.min_ms, self.max())
    }

    /// The current timeout, backoff included.
    pub fn rto(&self) -> u64 {
        self.base()
            .saturating_mul(1u64 << self.backoff)
            .min(self.max())
    }

    /// New bounds: the peer's acknowledgement hold changed, so the samples
    /// taken under the old one no longer say how long it answers (a 3 s
    /// hold's samples would keep a 250 ms hold's timeout near 3 s for a
    /// dozen acknowledgements). The backoff stays. The same bounds again
    /// change nothing.
    pub fn set_bounds(&mut self, bounds: RtoBounds) {
        if bounds != self.bounds {
            self.bounds = bounds;
            self.smoothed = None;
        }
    }

    /// An acknowledgement delay, ms.
    pub fn on_sample(&mut self, sample_ms: u64) {
        let sample = sample_ms as f64;
        self.smoothed = Some(match self.smoothed {
            None => (sample, sample / 2.0),
            Some((srtt, rttvar)) => (
                0.875 * srtt + 0.125 * sample,
                0.75 * rttvar + 0.25 * (srtt - sample).abs(),
            ),
        });
    }

    /// Items were retransmitted: back off.
    pub fn on_timeout(&mut self) {
        if self.rto() < self.bounds.max_ms && self.backoff < 32 {
            self.backoff += 1;
        }
    }

    /// Any message from the peer shows the path works again: drop the backoff.
    pub fn on_peer_heard(&mut self) {
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: RtoBounds = RtoBounds {
        initial_ms: 300,
        min_ms: 100,
        max_ms: 2000,
    };

    #[test]
    fn starts_at_the_initial_timeout_and_follows_the_samples() {
        let mut timer = RetransmitTimer::new(BOUNDS);
        assert_eq!(timer.rto(), 300);
        // srtt 200, rttvar 100: 200 + 4·100.
        timer.on_sample(200);
        assert_eq!(timer.rto(), 600);
        // srtt 0.875·200 + 0.125·40 = 180; rttvar 0.75·100 + 0.25·160 = 115.
        timer.on_sample(40);
        assert_eq!(timer.rto(), 640);
    }

    #[test]
    fn stays_within_its_bounds() {
        let mut timer = RetransmitTimer::new(BOUNDS);
        timer.on_sample(10);
        assert_eq!(timer.rto(), 100, "the floor");
        let mut timer = RetransmitTimer::new(BOUNDS);
        timer.on_sample(5_000);
        assert_eq!(timer.rto(), 2_000, "the ceiling");
        let inverted = RtoBounds {
            initial_ms: 300,
            min_ms: 500,
            max_ms: 400,
        };
        assert_eq!(
            RetransmitTimer::new(inverted).rto(),
            500,
            "a ceiling below the floor is the floor"
        );
    }

    #[test]
    fn new_bounds_drop_the_samples_taken_under_the_old_ones() {
        let mut timer = RetransmitTimer::new(BOUNDS);
        timer.on_sample(1_000);
        assert_eq!(timer.rto(), 2_000);
        timer.set_bounds(BOUNDS);
        assert_eq!(timer.rto(), 2_000, "the same bounds: samples kept");
        let short = RtoBounds {
            initial_ms: 650,
            min_ms: 450,
            max_ms: 8_000,
        };
        timer.set_bounds(short);
        assert_eq!(timer.rto(), 650, "the new initial timeout");
        // srtt 300, rttvar 150: 300 + 4·150.
        timer.on_sample(300);
        assert_eq!(timer.rto(), 900);
    }

    #[test]
    fn backs_off_up_to_the_ceiling_until_the_peer_is_heard() {
        let mut timer = RetransmitTimer::new(BOUNDS);
        timer.on_timeout();
        assert_eq!(timer.rto(), 600);
        timer.on_timeout();
        timer.on_timeout();
        assert_eq!(timer.rto(), 2_000);
        timer.on_timeout();
        assert_eq!(timer.rto(), 2_000);
        timer.on_peer_heard();
        assert_eq!(timer.rto(), 300);
    }
}
