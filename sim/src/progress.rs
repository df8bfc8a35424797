//! The progress line while a test runs: elapsed of total time, operations
//! ok / failed / indeterminate so far, messages so far and the fault in
//! effect. On a terminal it is one line on stderr, redrawn in place
//! (indicatif); elsewhere (a log file, a pipe) a plain line every
//! [`PLAIN_EVERY`].
//!
//! The recorder tells a [`Tally`] about every history event; a task reads
//! the tally and the network's journal a few times a second. The terminal
//! has one status line, so the display is process-wide: [`console_line`]
//! prints the harness's console messages above it instead of through it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::fault_periods::{FaultChange, FaultKind};
use super::history::{Event, EventType, Process};
use super::network::Network;

/// How often a plain progress line is printed when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// How often the terminal line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// Running counts of the history, fed by the recorder.
#[derive(Debug, Default)]
pub struct Tally {
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
    /// One bit per [`FaultKind`] in effect.
    faults: AtomicU8,
}

/// A snapshot of a [`Tally`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub faults: Vec<FaultKind>,
}

fn fault_bit(kind: FaultKind) -> u8 {
    1 << FaultKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Tally {
    /// Counts a client completion; a nemesis start or stop sets or clears
    /// its fault (both halves of the operation do, harmlessly twice).
    pub fn observe(&self, event: &Event) {
        match (event.process, event.kind) {
            (Process::Nemesis, _) => match FaultChange::from_f(&event.f) {
                Some(FaultChange::Start(kind)) => {
                    self.faults.fetch_or(fault_bit(kind), Ordering::Relaxed);
                }
                Some(FaultChange::Stop(kind)) => {
                    self.faults.fetch_and(!fault_bit(kind), Ordering::Relaxed);
                }
                None => {}
            },
            (_, EventType::Invoke) => {}
            (_, EventType::Ok) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            (_, EventType::Fail) => {
                self.fail.fetch_add(1, Ordering::Relaxed);
            }
            (_, EventType::Info) => {
                self.info.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn counts(&self) -> Counts {
        let faults = self.faults.load(Ordering::Relaxed);
        Counts {
            ok: self.ok.load(Ordering::Relaxed),
            fail: self.fail.load(Ordering::Relaxed),
            info: self.info.load(Ordering::Relaxed),
            faults: FaultKind::ALL
                .into_iter()
                .filter(|k| faults & fault_bit(*k) != 0)
                .collect(),
        }
    }
}

/// The status text: `12.3 s of 30 s, main phase: 118 ok, 0 failed, 2
/// indeterminate; 3456 messages; fault: partition`.
pub fn status_text(
    elapsed: Duration,
    main: Duration,
    total: Duration,
    counts: &Counts,
    messages: u64,
) -> String {
    let phase = if elapsed < main {
        "main phase"
    } else {
        "recovery, final reads"
    };
    let faults = if counts.faults.is_empty() {
        "none".to_string()
    } else {
        let names: Vec<&str> = counts.faults.iter().map(|k| k.name()).collect();
        names.join("+")
    };
    format!(
        "{:.1} s of {} s, {phase}: {} ok, {} failed, {} indeterminate; {messages} messages; fault: {faults}",
        elapsed.as_secs_f64(),
        total.as_secs(),
        counts.ok,
        counts.fail,
        counts.info,
    )
}

/// Where the status goes.
enum Display {
    Bar(ProgressBar),
    Plain { next_at: Instant },
}

/// The process's status display, if a run is going.
static DISPLAY: Mutex<Option<Display>> = Mutex::new(None);

fn display() -> std::sync::MutexGuard<'static, Option<Display>> {
    DISPLAY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Prints a console line on stderr, above the status line if one is shown.
pub fn console_line(line: &str) {
    match &*display() {
        Some(Display::Bar(bar)) => bar.suspend(|| eprintln!("{line}")),
        _ => eprintln!("{line}"),
    }
}

/// A running progress display; dropping it removes the status line.
pub struct Progress {
    tally: Arc<Tally>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts the display for a test whose main phase lasts `main` and
    /// which ends after about `total`; time counts from now. Must be called
    /// inside a tokio runtime.
    pub fn start(main: Duration, total: Duration, net: Network) -> Progress {
        let started = Instant::now();
        let tally = Arc::new(Tally::default());
        *display() = Some(if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(total.as_millis() as u64),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template("{bar:20.cyan/blue} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Display::Bar(bar)
        } else {
            Display::Plain {
                next_at: started + PLAIN_EVERY,
            }
        });
        let watched = Arc::clone(&tally);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REDRAW_EVERY);
            loop {
                ticks.tick().await;
                let elapsed = started.elapsed();
                let text = status_text(
                    elapsed,
                    main,
                    total,
                    &watched.counts(),
                    net.messages_so_far(),
                );
                match &mut *display() {
                    Some(Display::Bar(bar)) => {
                        bar.set_position(elapsed.as_millis() as u64);
                        bar.set_message(text);
                    }
                    Some(Display::Plain { next_at }) if Instant::now() >= *next_at => {
                        eprintln!("maelstrom-sim: progress {text}");
                        *next_at += PLAIN_EVERY;
                    }
                    _ => {}
                }
            }
        });
        Progress { tally, task }
    }

    /// The tally the recorder feeds.
    pub fn tally(&self) -> Arc<Tally> {
        Arc::clone(&self.tally)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(Display::Bar(bar)) = display().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault_periods::tests::history;

    #[test]
    fn the_tally_counts_outcomes_and_follows_faults() {
        let tally = Tally::default();
        let mut events = history(&[
            (0.0, Some(0), "broadcast"),
            (0.5, None, "start-partition"),
            (1.0, None, "start-kill"),
            (1.5, Some(1), "read"),
        ]);
        events[7].kind = EventType::Fail;
        for e in &events {
            tally.observe(e);
        }
        let counts = tally.counts();
        assert_eq!((counts.ok, counts.fail, counts.info), (1, 1, 0));
        assert_eq!(counts.faults, [FaultKind::Partition, FaultKind::Kill]);
        for e in &history(&[(2.0, None, "stop-partition"), (2.5, None, "start-pause")]) {
            tally.observe(e);
        }
        assert_eq!(tally.counts().faults, [FaultKind::Kill, FaultKind::Pause]);
    }

    #[test]
    fn status_names_phase_counts_messages_and_faults() {
        let counts = Counts {
            ok: 118,
            fail: 0,
            info: 2,
            faults: vec![FaultKind::Partition, FaultKind::Pause],
        };
        let (main, total) = (Duration::from_secs(20), Duration::from_secs(30));
        assert_eq!(
            status_text(Duration::from_millis(12_345), main, total, &counts, 3456),
            "12.3 s of 30 s, main phase: 118 ok, 0 failed, 2 indeterminate; 3456 messages; \
             fault: partition+pause"
        );
        let calm = Counts {
            faults: vec![],
            ..counts
        };
        assert!(status_text(Duration::from_secs(21), main, total, &calm, 0)
            .starts_with("21.0 s of 30 s, recovery, final reads:"));
        assert!(
            status_text(Duration::from_secs(21), main, total, &calm, 0).ends_with("fault: none")
        );
    }
}
