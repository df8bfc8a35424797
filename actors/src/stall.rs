//! StallWatch: notices that the process did not run for a while (SIGSTOP,
//! a starved machine) and tells how long a line read right after may have
//! waited in the pipe unseen. A client request that waited through a long
//! stall may come from a client that has given up and been closed; a reply
//! to a closed client makes Maelstrom ignore everything the node writes
//! afterwards, so such a request must go unanswered (see
//! [`crate::protocol::ReplyTo::answer_by`]).
//!
//! The reader beats every [`BEAT_MS`]; a gap of at least [`STALL_MS`]
//! between beats, seen either by the late beat or by a line read before it,
//! is a stall, and the lines read within [`BURST_MS`] after it are taken to
//! have been sent at its start.

/// How often the reader beats.
pub const BEAT_MS: u64 = 100;
/// The shortest gap between beats that counts as a stall.
pub const STALL_MS: u64 = 500;
/// How long after a stall the lines read are taken to have waited through
/// it: the pipe's backlog is read in a few milliseconds.
pub const BURST_MS: u64 = 200;

#[derive(Debug, Clone)]
pub struct StallWatch {
    last_beat: u64,
    /// The latest stall: when it was noticed and how long it was.
    last_stall: Option<(u64, u64)>,
}

impl StallWatch {
    pub fn new(now: u64) -> Self {
        StallWatch {
            last_beat: now,
            last_stall: None,
        }
    }

    /// The periodic beat.
    pub fn beat(&mut self, now: u64) {
        self.notice(now);
        self.last_beat = now;
    }

    /// How long a line read at `now` may have waited unseen: the latest
    /// stall's length if it ended within [`BURST_MS`], else 0.
    pub fn waited(&mut self, now: u64) -> u64 {
        self.notice(now);
        match self.last_stall {
            Some((noticed, length)) if now <= noticed + BURST_MS => length,
            _ => 0,
        }
    }

    fn notice(&mut self, now: u64) {
        let gap = now.saturating_sub(self.last_beat);
        if gap >= STALL_MS {
            log::warn!(
                "the process did not run for {gap} ms (stopped or starved); requests read in the next {BURST_MS} ms are taken to have waited as long"
            );
            self.last_stall = Some((now, gap));
            self.last_beat = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_beats_are_no_stall() {
        let mut w = StallWatch::new(0);
        for t in (100..=2_000).step_by(100) {
            w.beat(t);
            assert_eq!(w.waited(t + 50), 0);
        }
    }

    #[test]
    fn lines_read_before_the_late_beat_waited_through_the_stall() {
        let mut w = StallWatch::new(1_000);
        w.beat(1_100);
        // Stopped at 1 150, continued at 7 100: the pipe's lines come first.
        assert_eq!(w.waited(7_100), 6_000);
        assert_eq!(w.waited(7_102), 6_000, "the rest of the burst too");
        w.beat(7_105);
        assert_eq!(w.waited(7_250), 6_000);
        assert_eq!(w.waited(7_301), 0, "a line after the burst is fresh");
    }

    #[test]
    fn lines_read_after_the_late_beat_waited_through_the_stall() {
        let mut w = StallWatch::new(1_000);
        w.beat(6_000);
        assert_eq!(w.waited(6_001), 5_000);
        w.beat(6_100);
        assert_eq!(w.waited(6_150), 5_000);
        assert_eq!(w.waited(6_300), 0);
    }

    #[test]
    fn a_short_hiccup_is_no_stall() {
        let mut w = StallWatch::new(0);
        w.beat(100);
        assert_eq!(w.waited(100 + STALL_MS - 1), 0);
    }
}
