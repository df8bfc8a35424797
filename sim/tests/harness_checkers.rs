//! End-to-end tests of maelstrom-sim with the fixture nodes of
//! tests/fixtures: a healthy flood run is valid with exact message counts and
//! complete output files; each broken node makes the harness fail the way
//! issue 3 and spec section 6 say; bad flags exit 254; no node survives.
//! Runs are short (a few seconds plus the 10 s recovery) and independent, so
//! the test runner overlaps them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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
    let store = store(name);
    let output = Command::new(SIM)
        .args(["test", "-w", "broadcast", "--bin", fixture(node), "--store"])
        .arg(&store)
        .args(args)
        .output()
        .expect("maelstrom-sim runs");
    Run { output, store }
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
            "--",
            "--echo",
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.results();
    let attempts = u64_at(&r, &["workload", "attempt-count"]);
    assert!(attempts > 0);
    assert_eq!(u64_at(&r, &["net", "servers", "msg-count"]), 10 * attempts);
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
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.results();
    assert_eq!(u64_at(&r, &["harness", "malformed-lines"]), 1);
    assert_eq!(r["valid?"], true);
    let log = std::fs::read_to_string(run.dir().join("jepsen.log")).unwrap();
    assert!(log.contains("Node n0 wrote a line to STDOUT that could not be routed"));
    assert!(log.contains("not well-formed JSON"));
    assert!(run.stdout().contains("WARNING: nodes wrote 1 stdout line"));
    let _ = std::fs::remove_dir_all(&run.store);
}

#[test]
fn a_malformed_line_silences_the_node_in_maelstrom_mode() {
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
            "--bad-output",
            "maelstrom",
        ],
    );
    let r = run.results();
    assert_eq!(u64_at(&r, &["harness", "malformed-lines"]), 1);
    // n0 answers nothing after its bad line: at least its final read times
    // out, and Maelstrom fails a timed-out read.
    assert!(u64_at(&r, &["stats", "by-f", "read", "fail-count"]) >= 1);
    let history = std::fs::read_to_string(run.dir().join("history.txt")).unwrap();
    assert!(history.contains(":net-timeout"));
    assert!([0, 1, 2].contains(&run.code()));
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
