//! maelstrom-sim: a harness that runs Maelstrom's `broadcast` workload
//! against node binaries, to the letter of
//! `maelstrom-broadcast-spec.md` (see docs/harness.md and docs/fidelity.md).
//!
//! Modules, in the order a run uses them:
//! * [`cli`]: the command line and its validation into a test config.
//! * [`output`]: the store directory, timestamps, symlinks, jepsen.log.
//! * [`network`]: the simulated network: envelopes, latency, per-node
//!   deadline queues, partitions, journal; the stress extensions' down
//!   nodes, duplicates, jitter and client-exempt loss.
//! * [`lateness`]: the harness's own lateness, end to end, by stage, and
//!   the bound over which a run is flagged.
//! * [`process`]: node processes, their stdin/stdout/stderr pumps, kills.
//! * [`workload`]: clients, reply validation, worker pick, the generator.
//! * [`run`]: one test from setup to exit code.
//! * [`faults`]: the nemesis driver (partition, kill, pause on one
//!   schedule) and the record of every fault.
//! * [`history`]: operations and history events (the checker's input).
//! * [`topology`]: Maelstrom's topology builders (grid, line, total, trees).
//! * [`nemesis`]: partition specs and grudges (pure; randomness injected).
//! * [`checker`]: the broadcast (set-full) checker, stats, availability.
//! * [`netstats`]: the message journal's statistics and msgs-per-op.
//! * [`edn`]: a small EDN writer for results.edn.
//! * [`results`]: the combined results map, as EDN and as JSON.
//! * [`visual`]: timeline.html and messages.svg, and the bounded message
//!   log the network keeps for the latter.
//! * [`fault_periods`]: when each fault (partition, kill, pause) was in effect,
//!   read back from a history; every plot shades these periods.
//! * [`plots`]: the perf plots (latency-raw, latency-quantiles, rate), the
//!   stable-latency CDF and the `:perf` result; shared chart pieces.
//! * [`backlog`]: the node logs' backlog trace, parsed and plotted per link.
//! * [`progress`]: the live progress line while a run goes.
//! * [`serve`]: `maelstrom-sim serve`, a web view of the store.
//! * [`frontier`]: the sweep's msgs/op against latency picture.
//! * [`report`]: reading finished runs back (ours or real Maelstrom's
//!   results.edn) into the figures and limits `results-table` prints.

pub mod backlog;
pub mod checker;
pub mod cli;
pub mod edn;
pub mod fault_periods;
pub mod faults;
pub mod frontier;
pub mod history;
pub mod lateness;
pub mod nemesis;
pub mod netstats;
pub mod network;
pub mod output;
pub mod plots;
pub mod process;
pub mod progress;
pub mod report;
pub mod results;
pub mod run;
pub mod serve;
pub mod topology;
pub mod visual;
pub mod workload;
