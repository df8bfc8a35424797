//! The node's millisecond clock: the machine's wall clock at start plus the
//! elapsed time of tokio's (pausable) monotonic clock. Rounds of aligned
//! links line up across processes on one machine, and tests with paused
//! tokio time control it completely.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    unix_ms_at_start: u64,
    start: Instant,
}

impl Clock {
    /// A clock reading the wall clock now.
    pub fn starting_now() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self::starting_at(unix_ms)
    }

    /// A clock that reads `unix_ms` now (for tests).
    pub fn starting_at(unix_ms: u64) -> Self {
        Clock {
            unix_ms_at_start: unix_ms,
            start: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.unix_ms_at_start + self.start.elapsed().as_millis() as u64
    }
}
