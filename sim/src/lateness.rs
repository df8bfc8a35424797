//! The harness's own lateness, measured end to end (spec 11.1): how late a
//! line reached a node's stdin against the instant the network meant it to
//! (node-to-node deliveries and client requests, measured once the line is
//! in the pipe), how late the generator dispatched an operation against its
//! stagger slot, and how late the harness stamped a node's stdout line (the
//! reactor's wake-up delay, sampled by a probe pipe, and the wait of a line
//! behind the earlier lines of the same read). A run whose p99 in any stage
//! exceeds [`BOUND_P99_MS`] is flagged: its timing figures are not evidence.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::results::LatenessSummary;

/// The documented bound: a run whose lateness p99 in any stage is above
/// this many milliseconds is flagged (`:harness :lateness-exceeded true`).
pub const BOUND_P99_MS: f64 = 2.0;

/// Where a lateness sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Node-to-node deliveries, at the write into the destination's stdin.
    NodeDeliveries,
    /// Client requests, at the write into the node's stdin.
    ClientRequests,
    /// The generator's dispatch of an operation against its stagger slot
    /// (not when it had to wait for a free worker).
    Dispatch,
    /// How long a line written to a pipe waits before the harness's reader
    /// task runs (probe pipe, every 10 ms).
    StdoutWakeup,
    /// How long a node's stdout line waits behind earlier lines of the same
    /// read before it is stamped and routed.
    StdoutBacklog,
}

pub const STAGES: [Stage; 5] = [
    Stage::NodeDeliveries,
    Stage::ClientRequests,
    Stage::Dispatch,
    Stage::StdoutWakeup,
    Stage::StdoutBacklog,
];

impl Stage {
    /// The key in `:harness :lateness-ms`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::NodeDeliveries => "node-deliveries",
            Stage::ClientRequests => "client-requests",
            Stage::Dispatch => "dispatch",
            Stage::StdoutWakeup => "stdout-wakeup",
            Stage::StdoutBacklog => "stdout-backlog",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Lateness samples by stage, in µs; shared by the network, the pumps and
/// the generator.
#[derive(Default)]
pub struct LatenessLog {
    samples: Mutex<[Vec<u32>; STAGES.len()]>,
}

impl LatenessLog {
    pub fn record(&self, stage: Stage, late: Duration) {
        let us = late.as_micros().min(u128::from(u32::MAX)) as u32;
        self.samples.lock().unwrap_or_else(|p| p.into_inner())[stage.index()].push(us);
    }

    /// The samples so far (the log is emptied).
    pub fn take(&self) -> LatenessSamples {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        LatenessSamples(std::mem::take(&mut *samples))
    }
}

/// Samples by stage, in µs.
#[derive(Debug, Default)]
pub struct LatenessSamples([Vec<u32>; STAGES.len()]);

impl LatenessSamples {
    pub fn of(&self, stage: Stage) -> &[u32] {
        &self.0[stage.index()]
    }

    /// p50/p99/max (ms) of every stage that has samples.
    pub fn summaries(&self) -> Vec<(Stage, LatenessSummary)> {
        STAGES
            .iter()
            .filter_map(|&stage| {
                let ms: Vec<f64> = self
                    .of(stage)
                    .iter()
                    .map(|&us| f64::from(us) / 1000.0)
                    .collect();
                LatenessSummary::from_samples_ms(&ms).map(|s| (stage, s))
            })
            .collect()
    }
}

/// The stages whose p99 is over the bound.
pub fn over_bound(summaries: &[(Stage, LatenessSummary)]) -> Vec<Stage> {
    summaries
        .iter()
        .filter(|(_, s)| s.p99 > BOUND_P99_MS)
        .map(|(stage, _)| *stage)
        .collect()
}

/// The console lines about lateness: the p99 of every stage, and a warning
/// when one is over the bound.
pub fn summary_lines(summaries: &[(Stage, LatenessSummary)]) -> Vec<String> {
    if summaries.is_empty() {
        return Vec::new();
    }
    let p99s: Vec<String> = summaries
        .iter()
        .map(|(stage, s)| format!("{} {:.3}", stage.name(), s.p99))
        .collect();
    let mut lines = vec![format!(
        "harness lateness    p99 ms: {} (bound {BOUND_P99_MS})",
        p99s.join(", ")
    )];
    let late = over_bound(summaries);
    if !late.is_empty() {
        let names: Vec<&str> = late.iter().map(|s| s.name()).collect();
        lines.push(format!(
            "WARNING: harness lateness p99 over the {BOUND_P99_MS} ms bound ({}): this machine was overloaded and the run's timing figures are not evidence (:harness :lateness-exceeded true)",
            names.join(", ")
        ));
    }
    lines
}

/// Samples the [`Stage::StdoutWakeup`] lateness: a thread writes its clock
/// into a socket pair every 10 ms and a task on the harness's runtime (the
/// one that reads node stdout) stamps each arrival. Stops when dropped.
pub struct StdoutProbe {
    stop: Arc<AtomicBool>,
}

const PROBE_PERIOD: Duration = Duration::from_millis(10);

impl StdoutProbe {
    /// Starts the probe; needs a tokio runtime.
    pub fn start(log: Arc<LatenessLog>) -> std::io::Result<StdoutProbe> {
        let (mut writer, reader) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        let mut reader = tokio::net::UnixStream::from_std(reader)?;
        let stop = Arc::new(AtomicBool::new(false));
        let base = Instant::now();
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("stdout-probe".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(PROBE_PERIOD);
                    let sent = base.elapsed().as_nanos() as u64;
                    if writer.write_all(&sent.to_le_bytes()).is_err() {
                        return;
                    }
                }
            })?;
        tokio::spawn(async move {
            let mut buf = [0u8; 8];
            while reader.read_exact(&mut buf).await.is_ok() {
                let sent = base + Duration::from_nanos(u64::from_le_bytes(buf));
                log.record(Stage::StdoutWakeup, sent.elapsed());
            }
        });
        Ok(StdoutProbe { stop })
    }
}

impl Drop for StdoutProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_summarised_and_flagged_over_the_bound() {
        let log = LatenessLog::default();
        for _ in 0..99 {
            log.record(Stage::NodeDeliveries, Duration::from_micros(100));
            log.record(Stage::Dispatch, Duration::from_micros(100));
        }
        log.record(Stage::NodeDeliveries, Duration::from_millis(9));
        for _ in 0..10 {
            log.record(Stage::Dispatch, Duration::from_millis(3));
        }
        let samples = log.take();
        assert!(log.take().of(Stage::Dispatch).is_empty(), "take empties");
        let summaries = samples.summaries();
        let stages: Vec<Stage> = summaries.iter().map(|(s, _)| *s).collect();
        assert_eq!(stages, [Stage::NodeDeliveries, Stage::Dispatch]);
        // One slow delivery in 100 is the max, not the p99.
        assert_eq!(summaries[0].1.p99, 9.0);
        assert_eq!(summaries[0].1.p50, 0.1);
        assert_eq!(
            over_bound(&summaries),
            [Stage::NodeDeliveries, Stage::Dispatch]
        );
        let lines = summary_lines(&summaries);
        assert!(lines[1].starts_with("WARNING") && lines[1].contains("dispatch"));
        assert_eq!(summaries[0].1.count, 100);
    }

    #[test]
    fn under_the_bound_nothing_is_flagged() {
        let log = LatenessLog::default();
        for us in 0..1000 {
            log.record(Stage::ClientRequests, Duration::from_micros(us));
        }
        let summaries = log.take().summaries();
        assert!(over_bound(&summaries).is_empty());
        assert_eq!(summary_lines(&summaries).len(), 1);
    }

    #[tokio::test]
    async fn the_probe_samples_the_runtime_wakeup() {
        let log = Arc::new(LatenessLog::default());
        let probe = StdoutProbe::start(Arc::clone(&log)).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(probe);
        let samples = log.take();
        assert!(!samples.of(Stage::StdoutWakeup).is_empty());
    }
}
