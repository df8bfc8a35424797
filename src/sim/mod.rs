//! maelstrom-sim: a harness that runs Maelstrom's `broadcast` workload
//! against node binaries, to the letter of
//! `maelstrom-broadcast-spec.md` (see docs/ and the README).
//!
//! Modules:
//! * [`history`]: operations and history events (the checker's input).
//! * [`topology`]: Maelstrom's topology builders (grid, line, total, trees).
//! * [`nemesis`]: partition specs and grudges (pure; randomness injected).
//! * [`checker`]: the broadcast (set-full) checker, stats, availability.
//! * [`netstats`]: the message journal's statistics and msgs-per-op.
//! * [`edn`]: a small EDN writer for results.edn.
//! * [`results`]: the combined results map, as EDN and as JSON.

pub mod checker;
pub mod edn;
pub mod history;
pub mod nemesis;
pub mod netstats;
pub mod results;
pub mod topology;
