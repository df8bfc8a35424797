//! End-to-end tests of maelstrom-sim with the fixture nodes of
//! tests/fixtures: a healthy flood run is valid with exact message counts and
//! complete output files; each broken node makes the harness fail the way
//! issue 3 and spec sections 6 and 11 say (a stray debug line mutes a node,
//! a memory-only node loses values to kills, a node that trusts a tree
//! repeats a duplicated value, and the verdict follows the seeded random
//! order of the final reads); bad flags exit 254; no node survives.
//! Runs are short (a few seconds plus the 10 s recovery) and independent, so
//! the test runner overlaps them; paired runs start together.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use maelstrom_sim::report::Edn;
use serde_json::Value;

const SIM: &str = env!("CARGO_BIN_EXE_maelstrom-sim");

fn fixture(name: &str) -> &'static str {
    match name {
        "flood" => env!("CARGO_BIN_EXE_fixture-flood"),
        "drop-tenth" => env!("CARGO_BIN_EXE_fixture-drop-tenth"),
        "no-gossip" => env!("CARGO_BIN_EXE_fixture-no-gossip"),
        "crash" => env!("CARGO_BIN_EXE_fixture-crash"),
        "malformed" => env!("CARGO_BIN_EXE_fixture-malformed"),
        "duplicate-read" => env!("CARGO_BIN_EXE_fixture-duplicate-read"),
        "deaf-n4" => env!("CARGO_BIN_EXE_fixture-deaf-n4"),
        "trust-tree" => env!("CARGO_BIN_EXE_fixture-trust-tree"),
        other => panic!("no fixture {other}"),
    }
}

/// A finished harness run and its store.
struct Run {
    output: Output,
    store: PathBuf,
}

impl Run {
    fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn dir(&self) -> PathBuf {
        std::fs::canonicalize(self.store.join("latest")).expect("store/latest resolves")
    }

    fn results(&self) -> Value {
        let text = std::fs::read_to_string(self.dir().join("results.json")).expect("results.json");
        serde_json::from_str(&text).expect("results.json parses")
    }

    /// Node pids, as the fixtures log them on stderr (node-logs/<id>.log).
    fn node_pids(&self) -> Vec<i32> {
        node_pids_in(&self.dir())
    }

    /// history.edn, one parsed op map per line.
    fn history(&self) -> Vec<Op> {
        let text = std::fs::read_to_string(self.dir().join("history.edn")).expect("history.edn");
        text.lines()
            .map(|line| Op(Edn::parse(line).expect("a history line parses")))
            .collect()
    }
}

/// One history entry.
struct Op(Edn);

impl Op {
    fn keyword(&self, key: &str) -> &str {
        match self.0.get(key) {
            Some(Edn::Keyword(k)) => k,
            _ => "",
        }
    }

    fn kind(&self) -> &str {
        self.keyword("type")
    }

    fn f(&self) -> &str {
        self.keyword("f")
    }

    /// The client process, or None for the nemesis.
    fn process(&self) -> Option<u64> {
        match self.0.get("process") {
            Some(Edn::Int(p)) => Some(*p as u64),
            _ => None,
        }
    }

    fn is_final(&self) -> bool {
        self.0.get("final?") == Some(&Edn::Bool(true))
    }

    fn value(&self) -> &Edn {
        self.0.get("value").unwrap_or(&Edn::Nil)
    }

    /// The elements of an ok read.
    fn elements(&self) -> Vec<i64> {
        match self.value() {
            Edn::Vector(items) => items
                .iter()
                .filter_map(|v| match v {
                    Edn::Int(n) => Some(*n),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn node_pids_in(run_dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir(run_dir.join("node-logs")) else {
        return pids;
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        pids.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("fixture node pid "))
                .filter_map(|p| p.trim().parse::<i32>().ok()),
        );
    }
    pids
}

fn alive(pid: i32) -> bool {
    // A zombie has exited; only a process still running counts.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msim-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn sim(name: &str, node: &str, args: &[&str]) -> Run {
    sims(&[(name, node, args)]).remove(0)
}

/// Several harness runs at once (their time is mostly the recovery wait).
fn sims(runs: &[(&str, &str, &[&str])]) -> Vec<Run> {
    let started: Vec<_> = runs
        .iter()
        .map(|(name, node, args)| {
            let store = store(name);
            let child = Command::new(SIM)
                .args(["test", "-w", "broadcast", "--bin", fixture(node), "--store"])
                .arg(&store)
                .args(*args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("maelstrom-sim runs");
            (child, store)
        })
        .collect();
    started
        .into_iter()
        .map(|(child, store)| Run {
            output: child.wait_with_output().expect("maelstrom-sim ends"),
            store,
        })
        .collect()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count: {cur}"))
}

#[test]
fn healthy_flood_on_five_nodes_is_valid_with_exact_counts_and_files() {
    let run = sim(
        "healthy",
        "flood",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "3",
            "--rate",
            "30",
            "--seed",
            "11",
        ],
    );
    assert_eq!(
        run.code(),
        0,
        "stdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    let r = run.results();
    assert_eq!(r["valid?"], true);
    assert_eq!(r["workload"]["valid?"], true);
    assert_eq!(u64_at(&r, &["workload", "lost-count"]), 0);
    let attempts = u64_at(&r, &["workload", "attempt-count"]);
    let ops = u64_at(&r, &["stats", "count"]);
    assert!(
        attempts > 5 && ops > attempts,
        "{attempts} values in {ops} ops"
    );
    assert_eq!(u64_at(&r, &["stats", "ok-count"]), ops);
    // The 5-node grid has 5 edges (degree sum 10): flooding a value costs
    // deg(origin) + sum over the others of (deg - 1) = 10 - 4 = 6 messages.
    assert_eq!(u64_at(&r, &["net", "servers", "msg-count"]), 6 * attempts);
    // Each op is a request and a reply; setup is init, init_ok, topology,
    // topology_ok per node.
    assert_eq!(
        u64_at(&r, &["net", "clients", "msg-count"]),
        2 * ops + 4 * 5
    );
    assert_eq!(
        u64_at(&r, &["net", "servers", "recv-count"]),
        u64_at(&r, &["net", "servers", "send-count"])
    );
    let per_op = r["net"]["servers"]["msgs-per-op"].as_f64().unwrap();
    assert!((per_op - 6.0 * attempts as f64 / ops as f64).abs() < 1e-4);

    let dir = run.dir();
    for file in [
        "results.edn",
        "results.json",
        "history.edn",
        "history.txt",
        "jepsen.log",
        "timeline.html",
        "messages.svg",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    for n in 0..5 {
        assert!(dir.join(format!("node-logs/n{n}.log")).is_file());
    }
    assert_eq!(
        std::fs::canonicalize(run.store.join("current")).unwrap(),
        dir,
        "store/current points at the run"
    );
    let edn = std::fs::read_to_string(dir.join("results.edn")).unwrap();
    assert!(edn.contains(":valid? true") && edn.contains(":stable-latencies"));
    let history = std::fs::read_to_string(dir.join("history.txt")).unwrap();
    assert_eq!(history.lines().count() as u64, 2 * ops);
    // One timeline box per operation, all ok.
    let timeline = std::fs::read_to_string(dir.join("timeline.html")).unwrap();
    assert_eq!(count(&timeline, "<div class=\"op "), ops as usize);
    assert_eq!(count(&timeline, "<div class=\"op ok\""), ops as usize);
    assert!(!timeline.contains("Truncated"));
    // One arrow per message but the init handshake: client arrows are the
    // ops' requests and replies plus topology and topology_ok; every
    // flooded copy is a server arrow; nothing is dropped.
    let svg = std::fs::read_to_string(dir.join("messages.svg")).unwrap();
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(count(&svg, "<path class=\"m c\""), 2 * ops as usize + 2 * 5);
    assert_eq!(count(&svg, "<path class=\"m s\""), 6 * attempts as usize);
    assert_eq!(
        count(&svg, "<path class=\"m "),
        (2 * ops + 10 + 6 * attempts) as usize
    );
    assert!(!svg.contains("<title>init"));

    let summary = run.stdout();
    assert!(summary.contains("valid?") && summary.contains("servers msgs-per-op"));
    assert!(summary.contains("Everything looks good!"));

    let pids = run.node_pids();
    assert_eq!(pids.len(), 5);
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "a node outlived the harness"
    );
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn echo_back_flood_sends_every_value_over_every_directed_edge() {
    let run = sim(
        "echo",
        "flood",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "2",
            "--rate",
            "30",
            "--seed",
            "12",
            "--delivery-jitter-ms",
            "1",
            "--",
            "--echo",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.results();
    let attempts = u64_at(&r, &["workload", "attempt-count"]);
    assert!(attempts > 0);
    // Jitter delays deliveries; it neither loses nor repeats one.
    assert_eq!(u64_at(&r, &["net", "servers", "msg-count"]), 10 * attempts);
    assert_eq!(u64_at(&r, &["net", "servers", "recv-count"]), 10 * attempts);
    assert_eq!(r["harness"]["delivery-jitter-ms"], "1");
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn flood_under_partitions_loses_values() {
    let run = sim(
        "partition",
        "flood",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "8",
            "--rate",
            "30",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1",
            "--seed",
            "3",
        ],
    );
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    let r = run.results();
    assert_eq!(r["valid?"], false);
    assert_eq!(r["workload"]["valid?"], false);
    assert!(u64_at(&r, &["workload", "lost-count"]) > 0);
    let history = std::fs::read_to_string(run.dir().join("history.edn")).unwrap();
    assert!(history.contains(":f :start-partition"));
    assert!(history.contains(":isolated"));
    assert!(history.contains(":network-healed"));
    // Every message a partition dropped is drawn as a stub; the run is
    // far below the diagram's bound, so the counts match the journal's.
    let svg = std::fs::read_to_string(run.dir().join("messages.svg")).unwrap();
    let undelivered =
        u64_at(&r, &["net", "all", "send-count"]) - u64_at(&r, &["net", "all", "recv-count"]);
    assert!(undelivered > 0);
    assert_eq!(count(&svg, " drop\""), undelivered as usize);
    // Every server message that was not delivered was a partition's drop,
    // and the results count them.
    let servers_undelivered = u64_at(&r, &["net", "servers", "send-count"])
        - u64_at(&r, &["net", "servers", "recv-count"]);
    assert_eq!(
        u64_at(&r, &["harness", "faults", "dropped-by-partitions", "count"]),
        servers_undelivered
    );
    let starts = run
        .history()
        .iter()
        .filter(|op| op.f() == "start-partition" && matches!(op.value(), Edn::Vector(_)))
        .count();
    assert!(starts > 0);
    let partitioned = r["harness"]["faults"]["partitioned"].as_array().unwrap();
    assert_eq!(partitioned.len(), starts);
    assert!(run.stdout().contains("partitioned at"), "{}", run.stdout());
    let timeline = std::fs::read_to_string(run.dir().join("timeline.html")).unwrap();
    assert!(timeline.contains(">:nemesis</div>"));
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn dropping_every_tenth_value_loses_exactly_those_values() {
    let run = sim(
        "drop",
        "drop-tenth",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "3",
            "--rate",
            "40",
            "--seed",
            "4",
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.results();
    assert_eq!(r["workload"]["valid?"], false);
    let attempts = u64_at(&r, &["workload", "attempt-count"]);
    assert!(attempts >= 10, "too few values: {attempts}");
    let expected: Vec<u64> = (0..attempts).filter(|v| v % 10 == 9).collect();
    let lost: Vec<u64> = r["workload"]["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(lost, expected);
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn duplicates_in_reads_pass_as_in_maelstrom_and_fail_with_strict_duplicates() {
    let args = [
        "--node-count",
        "3",
        "--time-limit",
        "2",
        "--rate",
        "20",
        "--seed",
        "6",
    ];
    let lenient = sim("dup", "duplicate-read", &args);
    assert_eq!(lenient.code(), 0, "{}", lenient.stderr());
    let r = lenient.results();
    assert_eq!(u64_at(&r, &["workload", "duplicated-count"]), 0);
    let _ = std::fs::remove_dir_all(&lenient.store);

    let mut strict_args = args.to_vec();
    strict_args.push("--strict-duplicates");
    let strict = sim("dupstrict", "duplicate-read", &strict_args);
    assert_eq!(strict.code(), 1, "{}", strict.stderr());
    let r = strict.results();
    assert_eq!(r["valid?"], false);
    assert_eq!(r["workload"]["valid?"], false);
    assert_eq!(u64_at(&r, &["workload", "lost-count"]), 0);
    // Value 0 is the smallest every read holds, listed twice.
    assert_eq!(u64_at(&r, &["workload", "duplicated-count"]), 1);
    assert_eq!(r["workload"]["duplicated"]["0"], 2);
    let _ = std::fs::remove_dir_all(&strict.store);
}

#[test]
fn a_node_that_never_gossips_is_invalid() {
    let run = sim(
        "nogossip",
        "no-gossip",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "3",
            "--rate",
            "30",
            "--seed",
            "5",
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.results();
    assert_eq!(r["valid?"], false);
    assert!(u64_at(&r, &["workload", "lost-count"]) > 0);
    assert_eq!(u64_at(&r, &["net", "servers", "msg-count"]), 0);
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn a_node_exiting_mid_run_aborts_with_its_last_lines() {
    let run = sim(
        "crash",
        "crash",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "3",
            "--rate",
            "30",
            "--seed",
            "6",
        ],
    );
    assert_eq!(run.code(), 255, "{}", run.stdout());
    let err = run.stderr();
    assert!(err.contains("Node n1 crashed"), "{err}");
    assert!(err.contains("exiting on purpose mid-run"), "{err}");
    assert!(
        err.contains("STDOUT") && err.contains("\"src\":\"n1\""),
        "{err}"
    );
    let dir = run.dir();
    assert!(
        !dir.join("results.edn").exists(),
        "an aborted test has no verdict"
    );
    assert!(dir.join("history.edn").is_file());
    assert!(run.node_pids().iter().all(|&p| !alive(p)));
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn a_malformed_line_is_dropped_and_counted_in_lenient_mode() {
    let run = sim(
        "malformed-lenient",
        "malformed",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "3",
            "--rate",
            "30",
            "--seed",
            "7",
            "--bad-output",
            "lenient",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.results();
    assert_eq!(u64_at(&r, &["harness", "malformed-lines"]), 1);
    // The opt-in kindness is marked in the results and the summary.
    assert_eq!(u64_at(&r, &["harness", "lenient-dropped-lines"]), 1);
    assert_eq!(r["harness"]["bad-output"], "lenient");
    assert_eq!(r["valid?"], true);
    let log = std::fs::read_to_string(run.dir().join("jepsen.log")).unwrap();
    assert!(log.contains("Node n0 wrote a line to STDOUT that could not be routed"));
    assert!(log.contains("not well-formed JSON"));
    let summary = run.stdout();
    assert!(summary.contains("WARNING: nodes wrote 1 stdout line"));
    assert!(summary.contains("NOTE: --bad-output lenient"), "{summary}");
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn a_stray_debug_line_mutes_the_node_by_default() {
    let run = sim(
        "malformed-maelstrom",
        "malformed",
        &[
            "--node-count",
            "5",
            "--time-limit",
            "3",
            "--rate",
            "30",
            "--seed",
            "7",
        ],
    );
    let r = run.results();
    assert_eq!(u64_at(&r, &["harness", "malformed-lines"]), 1);
    assert_eq!(r["harness"]["bad-output"], "maelstrom");
    assert!(r["harness"].get("lenient-dropped-lines").is_none());
    // Worker 0 talks to n0 (processes 0, 5, 10, ...). n0 prints its debug
    // line right after answering its 3rd request; every later operation
    // gets no answer: reads fail, broadcasts are indeterminate.
    let history = run.history();
    let completions: Vec<&Op> = history
        .iter()
        .filter(|op| op.kind() != "invoke" && op.process().is_some_and(|p| p % 5 == 0))
        .collect();
    assert!(completions.len() > 3, "n0 got too few operations");
    assert!(completions[..3].iter().all(|op| op.kind() == "ok"));
    for op in &completions[3..] {
        let expected = if op.f() == "read" { "fail" } else { "info" };
        assert_eq!(op.kind(), expected, "{:?}", op.0);
    }
    let final_n0 = completions.last().unwrap();
    assert!(final_n0.is_final() && final_n0.kind() == "fail");
    assert!(u64_at(&r, &["stats", "by-f", "read", "fail-count"]) >= 1);
    assert!([0, 1, 2].contains(&run.code()));
    let _ = std::fs::remove_dir_all(&run.store);
}

/// The final reads' invocation order, as worker numbers (process mod 5).
fn final_read_workers(history: &[Op]) -> Vec<u64> {
    history
        .iter()
        .filter(|op| op.is_final() && op.kind() == "invoke")
        .filter_map(|op| op.process().map(|p| p % 5))
        .collect()
}

#[test]
fn final_reads_go_in_seeded_random_order_and_the_verdict_follows_the_last_one() {
    // n4 holds only its own clients' values; n0..n3 hold everything. With
    // the old fixed order n4's final read was always invoked last, so the
    // others' values were always lost. Now the order is a seeded random
    // permutation: find (from the library) a seed that reads n4 last and
    // one that does not, and check the history and the verdict of each.
    let order = |seed: u64| {
        maelstrom_sim::workload::final_read_order(5, &mut maelstrom_sim::run::final_read_rng(seed))
    };
    let n4_last = (1..).find(|&s| order(s)[4] == 4).unwrap();
    let n4_not_last = (1..).find(|&s| order(s)[4] != 4).unwrap();
    let seeds = [n4_last.to_string(), n4_not_last.to_string()];
    let args: Vec<Vec<&str>> = seeds
        .iter()
        .map(|seed| {
            vec![
                "--node-count",
                "5",
                "--topology",
                "total",
                "--time-limit",
                "2",
                "--rate",
                "20",
                "--seed",
                seed,
            ]
        })
        .collect();
    let runs = sims(&[
        ("order-last", "deaf-n4", &args[0]),
        ("order-other", "deaf-n4", &args[1]),
    ]);
    for (run, seed) in runs.iter().zip([n4_last, n4_not_last]) {
        let history = run.history();
        let workers = final_read_workers(&history);
        let expected: Vec<u64> = order(seed).into_iter().map(|w| w as u64).collect();
        assert_eq!(workers, expected, "seed {seed}: the seeded order");
        // n4's final read misses the values other nodes' clients broadcast.
        let finals: Vec<&Op> = history
            .iter()
            .filter(|op| op.is_final() && op.kind() == "ok")
            .collect();
        assert_eq!(finals.len(), 5, "seed {seed}");
        let size = |w: u64| {
            finals
                .iter()
                .find(|op| op.process() == Some(w))
                .map_or(0, |op| op.elements().len())
        };
        assert!(size(4) < size(0), "seed {seed}: n4 is not missing anything");
        let r = run.results();
        let lost = u64_at(&r, &["workload", "lost-count"]);
        if seed == n4_last {
            assert!(lost > 0, "seed {seed}: n4 read last, yet nothing lost");
            assert_eq!(run.code(), 1);
        } else {
            assert_eq!(lost, 0, "seed {seed}: a full node read last");
            assert_eq!(run.code(), 0, "{}", run.stdout());
        }
        let _ = std::fs::remove_dir_all(&run.store);
    }
}

#[test]
fn a_memory_only_flood_node_loses_values_under_kill() {
    // One node, so every read is of the killed node: what a restart forgot
    // is gone whatever the order of the final reads. A request sent while
    // the node is down waits its 5 s timeout, and on a loaded machine the
    // first kill (at the start) catches the first requests: with one client
    // and 4 s no value was acknowledged (validity unknown). Eight clients
    // and 12 s leave several kills after those timeouts.
    let run = sim(
        "kill",
        "flood",
        &[
            "--node-count",
            "1",
            "--concurrency",
            "8",
            "--time-limit",
            "12",
            "--rate",
            "20",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "0.7",
            "--seed",
            "8",
        ],
    );
    assert_eq!(
        run.code(),
        1,
        "{}
{}",
        run.stdout(),
        run.stderr()
    );
    let r = run.results();
    assert_eq!(r["workload"]["valid?"], false);
    assert!(u64_at(&r, &["workload", "lost-count"]) > 0);
    let history = run.history();
    let kills: Vec<&Op> = history
        .iter()
        .filter(|op| op.f() == "start-kill" && matches!(op.value(), Edn::Map(_)))
        .collect();
    let restarts: Vec<&Op> = history
        .iter()
        .filter(|op| op.f() == "stop-kill" && matches!(op.value(), Edn::Map(m) if !m.is_empty()))
        .collect();
    assert!(kills.len() >= 2, "too few kills: {}", kills.len());
    assert_eq!(kills.len(), restarts.len(), "every kill is undone");
    for op in kills.iter().chain(&restarts) {
        let Edn::Map(entries) = op.value() else {
            unreachable!()
        };
        assert_eq!(entries[0].0, Edn::Str("n0".into()), "names the node");
    }
    // Every lost value was acknowledged before the last kill.
    let last_kill = history
        .iter()
        .rposition(|op| op.f() == "start-kill")
        .unwrap();
    let acked_after: Vec<i64> = history[last_kill..]
        .iter()
        .filter(|op| op.f() == "broadcast" && op.kind() == "ok")
        .filter_map(|op| match op.value() {
            Edn::Int(v) => Some(*v),
            _ => None,
        })
        .collect();
    for lost in r["workload"]["lost"].as_array().unwrap() {
        assert!(!acked_after.contains(&lost.as_i64().unwrap()));
    }
    // The results and the summary record the faults.
    let faults = &r["harness"]["faults"];
    assert_eq!(faults["killed"].as_array().unwrap().len(), kills.len());
    assert_eq!(faults["restarted"].as_array().unwrap().len(), kills.len());
    assert_eq!(faults["killed"][0]["node"], "n0");
    assert!(u64_at(&r, &["harness", "faults", "lost-to-down-nodes", "count"]) > 0);
    assert!(run.stdout().contains("n0 killed at"), "{}", run.stdout());
    // Each restart ran the node again, its stderr appended after a marker.
    let log = std::fs::read_to_string(run.dir().join("node-logs/n0.log")).unwrap();
    assert_eq!(count(&log, "restarted after a kill"), kills.len());
    let pids = run.node_pids();
    assert_eq!(pids.len(), kills.len() + 1);
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "a node outlived the harness"
    );
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn a_duplicated_gossip_shows_up_in_a_node_that_trusts_a_tree() {
    // tree4 on 5 nodes: every value reaches every node exactly once, so the
    // node is right without duplicates and repeats values with them.
    let base = [
        "--node-count",
        "5",
        "--topology",
        "tree4",
        "--time-limit",
        "2",
        "--rate",
        "20",
        "--seed",
        "9",
        "--strict-duplicates",
    ];
    let mut with_dups = base.to_vec();
    with_dups.extend(["--p-dup", "0.3"]);
    let runs = sims(&[
        ("dups", "trust-tree", &with_dups),
        ("nodups", "trust-tree", &base),
    ]);
    let (dups, clean) = (&runs[0], &runs[1]);
    assert_eq!(clean.code(), 0, "{}", clean.stdout());
    assert_eq!(
        u64_at(&clean.results(), &["workload", "duplicated-count"]),
        0
    );
    assert_eq!(
        dups.code(),
        1,
        "{}
{}",
        dups.stdout(),
        dups.stderr()
    );
    let r = dups.results();
    assert_eq!(r["workload"]["valid?"], false);
    assert!(u64_at(&r, &["workload", "duplicated-count"]) > 0);
    assert_eq!(u64_at(&r, &["workload", "lost-count"]), 0);
    // One send, two receives per duplicated message.
    let extra = u64_at(&r, &["net", "servers", "recv-count"])
        - u64_at(&r, &["net", "servers", "send-count"]);
    assert!(extra > 0);
    assert!(u64_at(&r, &["harness", "faults", "duplicated", "count"]) >= extra);
    assert!(dups.stdout().contains("duplicated"), "{}", dups.stdout());
    for run in &runs {
        let _ = std::fs::remove_dir_all(&run.store);
    }
}

#[test]
fn combined_faults_never_overlap_and_are_all_undone_before_the_final_reads() {
    let run = sim(
        "combined",
        "flood",
        &[
            "--node-count",
            "3",
            "--time-limit",
            "4",
            "--rate",
            "20",
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "0.25",
            "--seed",
            "2",
        ],
    );
    assert!(
        [0, 1].contains(&run.code()),
        "{}
{}",
        run.stdout(),
        run.stderr()
    );
    let history = run.history();
    let nemesis: Vec<&Op> = history.iter().filter(|op| op.process().is_none()).collect();
    // Invocation and completion pairs: start-X, then stop-X, never two at
    // once; the main phase may end with one active, and the final step
    // stops every kind (whether active or not) before the final reads.
    assert_eq!(nemesis.len() % 2, 0);
    let pairs: Vec<(&str, &Op)> = nemesis
        .chunks(2)
        .map(|pair| {
            assert_eq!(pair[0].f(), pair[1].f());
            (pair[0].f(), pair[1])
        })
        .collect();
    let (main, last) = pairs.split_at(pairs.len() - 3);
    let mut active: Option<&str> = None;
    let mut started = std::collections::BTreeSet::new();
    for (f, _) in main {
        if let Some(kind) = f.strip_prefix("start-") {
            assert_eq!(active, None, "{f} while {active:?} is active");
            active = Some(kind);
            started.insert(kind);
        } else {
            assert_eq!(Some(&f["stop-".len()..]), active, "{f}");
            active = None;
        }
    }
    assert_eq!(started.len(), 3, "every kind ran: {started:?}");
    let finals: Vec<&str> = last.iter().map(|(f, _)| *f).collect();
    assert_eq!(finals, ["stop-partition", "stop-kill", "stop-pause"]);
    let first_final_read = history.iter().position(Op::is_final).unwrap();
    let last_nemesis = history
        .iter()
        .rposition(|op| op.process().is_none())
        .unwrap();
    assert!(last_nemesis < first_final_read);
    // Every kill restarted and every pause resumed, as the results say.
    let named = |what: &str| -> usize {
        nemesis
            .iter()
            .filter_map(|op| match op.value() {
                Edn::Map(m) => Some(
                    m.iter()
                        .filter(|(_, v)| *v == Edn::Keyword(what.into()))
                        .count(),
                ),
                _ => None,
            })
            .sum()
    };
    let r = run.results();
    for (killed, restarted) in [("killed", "restarted"), ("paused", "resumed")] {
        assert!(named(killed) > 0, "no {killed}");
        assert_eq!(named(killed), named(restarted));
        let listed = r["harness"]["faults"][killed].as_array().unwrap().len();
        assert_eq!(listed, named(killed));
    }
    assert!(run.node_pids().iter().all(|&p| !alive(p)));
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn bad_flags_and_other_workloads_exit_254_with_one_line() {
    let flood = fixture("flood");
    for args in [
        vec!["test", "-w", "lin-kv", "--bin", flood],
        vec![
            "test",
            "-w",
            "broadcast",
            "--bin",
            flood,
            "--latency-dist",
            "uniform",
        ],
        vec!["test", "-w", "broadcast", "--bin", flood, "--no-such-flag"],
        vec!["test", "-w", "broadcast"],
    ] {
        let out = Command::new(SIM).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(254), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_node_that_never_answers_init_aborts_the_test() {
    let store = store("noinit");
    let started = Instant::now();
    let out = Command::new(SIM)
        .args([
            "test",
            "-w",
            "broadcast",
            "--bin",
            "/bin/sleep",
            "--node-count",
            "2",
            "--store",
        ])
        .arg(&store)
        .args(["--", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not respond"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "init waits 10 s"
    );
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn sigterm_kills_every_node_and_aborts() {
    let store = store("sigterm");
    let mut child = Command::new(SIM)
        .args([
            "test",
            "-w",
            "broadcast",
            "--bin",
            fixture("flood"),
            "--node-count",
            "3",
        ])
        .args(["--time-limit", "60", "--store"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pids = loop {
        let pids = std::fs::canonicalize(store.join("latest"))
            .map(|d| node_pids_in(&d))
            .unwrap_or_default();
        if pids.len() == 3 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(pids.len(), 3, "nodes did not start");
    assert!(pids.iter().all(|&p| alive(p)));
    // SAFETY: plain kill(2) on the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(255));
    std::thread::sleep(Duration::from_millis(200));
    assert!(pids.iter().all(|&p| !alive(p)), "a node survived SIGTERM");
    let _ = std::fs::remove_dir_all(&store);
}
