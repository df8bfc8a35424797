//! When each kind of fault was in effect, read back from a history alone:
//! the nemesis records `start-<kind>` and `stop-<kind>` operations
//! (`partition`, `kill`, `pause`), each as an invocation and a completion.
//! Every plot shades these periods the same way, and the progress line
//! names the fault in effect while a run goes.

use super::history::{Event, Process};
use super::visual::pair_ops;

/// A kind of fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Partition,
    Kill,
    Pause,
}

impl FaultKind {
    pub const ALL: [FaultKind; 3] = [FaultKind::Partition, FaultKind::Kill, FaultKind::Pause];

    /// The name in the nemesis's `:f`, e.g. `partition` in `start-partition`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
        }
    }

    fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What a nemesis `:f` does to a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultChange {
    Start(FaultKind),
    Stop(FaultKind),
}

impl FaultChange {
    /// `start-kill` is `Start(Kill)`; an `:f` that is not a start or stop of
    /// a known fault is `None`.
    pub fn from_f(f: &str) -> Option<FaultChange> {
        if let Some(name) = f.strip_prefix("start-") {
            FaultKind::from_name(name).map(FaultChange::Start)
        } else {
            let name = f.strip_prefix("stop-")?;
            FaultKind::from_name(name).map(FaultChange::Stop)
        }
    }
}

/// One period in which a fault was in effect, in seconds of history time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPeriod {
    pub kind: FaultKind,
    pub start_s: f64,
    /// `None`: never stopped before the history ends.
    pub end_s: Option<f64>,
}

/// The fault periods of a history, in order of start. A period opens at
/// the invocation of the first `start-<kind>` while that kind is not in
/// effect, and closes at the completion of the next `stop-<kind>` (the
/// fault is undone between the two halves of that operation). A stop with
/// nothing in effect, such as the heal before the final reads, changes
/// nothing. Kinds are independent: a kill may start inside a partition.
pub fn fault_periods(history: &[Event]) -> Vec<FaultPeriod> {
    let seconds = |e: &Event| e.time_ns as f64 / 1e9;
    let mut periods: Vec<FaultPeriod> = Vec::new();
    let (ops, _) = pair_ops(history, usize::MAX);
    for op in ops
        .iter()
        .filter(|op| op.invoke.process == Process::Nemesis)
    {
        let open = |periods: &[FaultPeriod], kind| {
            periods
                .iter()
                .rposition(|p| p.kind == kind && p.end_s.is_none())
        };
        match FaultChange::from_f(&op.invoke.f) {
            Some(FaultChange::Start(kind)) if open(&periods, kind).is_none() => {
                periods.push(FaultPeriod {
                    kind,
                    start_s: seconds(op.invoke),
                    end_s: None,
                });
            }
            Some(FaultChange::Stop(kind)) => {
                if let Some(i) = open(&periods, kind) {
                    periods[i].end_s = Some(seconds(op.complete.unwrap_or(op.invoke)));
                }
            }
            _ => {}
        }
    }
    periods
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::EventType;
    use serde_json::{json, Value};

    /// A history built from `(seconds, process, f)`: client `f`s become an
    /// invocation and an ok completion 10 ms later; nemesis `f`s an info
    /// pair 1 ms apart, as the harness records them.
    pub(crate) fn history(steps: &[(f64, Option<u64>, &str)]) -> Vec<Event> {
        let mut events = Vec::new();
        for &(at, process, f) in steps {
            let ns = (at * 1e9) as u64;
            let (process, kinds, gap) = match process {
                Some(p) => (
                    Process::Client(p),
                    [EventType::Invoke, EventType::Ok],
                    10_000_000,
                ),
                None => (
                    Process::Nemesis,
                    [EventType::Info, EventType::Info],
                    1_000_000,
                ),
            };
            for (k, kind) in kinds.into_iter().enumerate() {
                let value = if f == "broadcast" {
                    json!(0)
                } else {
                    Value::Null
                };
                let index = events.len() as u64;
                events.push(Event::new(
                    index,
                    ns + k as u64 * gap,
                    kind,
                    process,
                    f,
                    value,
                ));
            }
        }
        events
    }

    fn period(kind: FaultKind, start_s: f64, end_s: Option<f64>) -> FaultPeriod {
        FaultPeriod {
            kind,
            start_s,
            end_s,
        }
    }

    #[test]
    fn names_parse_into_changes() {
        assert_eq!(
            FaultChange::from_f("start-partition"),
            Some(FaultChange::Start(FaultKind::Partition))
        );
        assert_eq!(
            FaultChange::from_f("stop-pause"),
            Some(FaultChange::Stop(FaultKind::Pause))
        );
        assert_eq!(
            FaultChange::from_f("start-kill"),
            Some(FaultChange::Start(FaultKind::Kill))
        );
        for f in [
            "broadcast",
            "start-",
            "stop-bitflip",
            "kill",
            "start-partitions",
        ] {
            assert_eq!(FaultChange::from_f(f), None, "{f}");
        }
    }

    #[test]
    fn partition_periods_run_from_start_invocation_to_stop_completion() {
        let h = history(&[
            (0.0, None, "start-partition"),
            (1.0, Some(0), "broadcast"),
            (4.0, None, "stop-partition"),
            (9.0, None, "start-partition"),
            (20.0, None, "stop-partition"),
            // The final heal with nothing in effect changes nothing.
            (20.5, None, "stop-partition"),
        ]);
        assert_eq!(
            fault_periods(&h),
            [
                period(FaultKind::Partition, 0.0, Some(4.001)),
                period(FaultKind::Partition, 9.0, Some(20.001)),
            ]
        );
    }

    #[test]
    fn kill_and_pause_overlap_partitions_independently() {
        let h = history(&[
            (1.0, None, "start-partition"),
            (2.0, None, "start-kill"),
            (3.0, None, "stop-partition"),
            (5.0, None, "start-pause"),
            // A second start of a kind in effect does not open another period.
            (5.5, None, "start-pause"),
            (6.0, None, "stop-kill"),
            (7.0, None, "stop-pause"),
            (8.0, None, "start-kill"),
        ]);
        assert_eq!(
            fault_periods(&h),
            [
                period(FaultKind::Partition, 1.0, Some(3.001)),
                period(FaultKind::Kill, 2.0, Some(6.001)),
                period(FaultKind::Pause, 5.0, Some(7.001)),
                period(FaultKind::Kill, 8.0, None),
            ]
        );
    }

    #[test]
    fn a_stop_never_completed_closes_at_its_invocation() {
        let mut h = history(&[(1.0, None, "start-pause"), (2.0, None, "stop-pause")]);
        h.pop();
        assert_eq!(
            fault_periods(&h),
            [period(FaultKind::Pause, 1.0, Some(2.0))]
        );
    }

    #[test]
    fn no_nemesis_no_periods() {
        let h = history(&[(0.0, Some(0), "broadcast"), (1.0, Some(1), "read")]);
        assert!(fault_periods(&h).is_empty());
    }
}
