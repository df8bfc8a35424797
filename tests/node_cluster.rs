//! Multi-process tests of broadcast-node: a small in-test router runs five
//! real node processes, delays inter-node messages, cuts the network into two
//! halves for a while or SIGKILLs a node and restarts it, drives client
//! broadcasts and reads, and checks that every acknowledged value is in every
//! node's final read.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_broadcast-node");

struct Cluster {
    /// What every node is started with, and restarted with.
    args: Vec<String>,
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    /// Killed and not restarted yet: what the router sends them is lost.
    down: Vec<bool>,
    /// Every node's output reader sends here (a restarted node's too).
    tx: mpsc::Sender<String>,
    lines: mpsc::Receiver<String>,
    /// Inter-node messages waiting for their delivery time.
    in_flight: Vec<(Instant, usize, String)>,
    latency: Duration,
    replies: BTreeMap<(String, u64), Value>,
    inter_node_msgs: usize,
    /// Inter-node messages between two nodes other than the hub n0.
    leaf_to_leaf_msgs: usize,
}

fn index(node: &str) -> Option<usize> {
    node.strip_prefix('n')?.parse().ok()
}

/// Starts a node process whose output lines go to `tx`.
fn spawn_node(args: &[String], tx: &mpsc::Sender<String>) -> (Child, ChildStdin) {
    let mut child = Command::new(NODE)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, stdin)
}

impl Cluster {
    fn start(n: usize, args: &[&str], latency: Duration) -> Cluster {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (tx, lines) = mpsc::channel();
        let (children, stdins) = (0..n).map(|_| spawn_node(&args, &tx)).unzip();
        Cluster {
            args,
            children,
            stdins,
            down: vec![false; n],
            tx,
            lines,
            in_flight: Vec::new(),
            latency,
            replies: BTreeMap::new(),
            inter_node_msgs: 0,
            leaf_to_leaf_msgs: 0,
        }
    }

    fn send(&mut self, to: usize, line: &str) {
        if self.down[to] {
            return;
        }
        let stdin = &mut self.stdins[to];
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to n{to}: {e} (did it exit?)"));
    }

    /// SIGKILLs node `i`: no drain, no flush, no goodbye.
    fn kill(&mut self, i: usize) {
        self.children[i].kill().expect("SIGKILL");
        self.children[i].wait().expect("reap the killed node");
        self.down[i] = true;
    }

    /// Starts node `i` again with the same arguments, as the same node id,
    /// with `init` and `topology` as at first.
    fn restart(&mut self, i: usize) {
        let (child, stdin) = spawn_node(&self.args, &self.tx);
        self.children[i] = child;
        self.stdins[i] = stdin;
        self.down[i] = false;
        self.join(i);
    }

    /// Node `i`'s `init` (from client c{i}, msg_id 1) and `topology`
    /// (msg_id 2; a ring, which only the offered overlay follows).
    fn join(&mut self, i: usize) {
        let n = self.children.len();
        let ids: Vec<String> = (0..n).map(|k| format!("n{k}")).collect();
        let ring: BTreeMap<&String, [&String; 2]> = (0..n)
            .map(|k| (&ids[k], [&ids[(k + 1) % n], &ids[(k + n - 1) % n]]))
            .collect();
        let client = format!("c{i}");
        self.request(
            &client,
            i,
            json!({"type":"init","msg_id":1,"node_id":ids[i],"node_ids":ids}),
        );
        self.request(
            &client,
            i,
            json!({"type":"topology","msg_id":2,"topology":ring}),
        );
    }

    /// Routes output until the reply to (`client`, `msg_id`) is in, or for
    /// at most `span`.
    fn pump_until_reply(&mut self, client: &str, msg_id: u64, span: Duration) -> Option<Value> {
        let until = Instant::now() + span;
        let key = (client.to_string(), msg_id);
        while !self.replies.contains_key(&key) && Instant::now() < until {
            self.pump(Duration::from_millis(2), &|_, _| false);
        }
        self.replies.get(&key).cloned()
    }

    fn request(&mut self, client: &str, node: usize, body: Value) {
        let line = json!({"src": client, "dest": format!("n{node}"), "body": body}).to_string();
        self.send(node, &line);
    }

    /// Routes output for `span`; `cut(from, to)` drops inter-node messages.
    fn pump(&mut self, span: Duration, cut: &dyn Fn(usize, usize) -> bool) {
        let until = Instant::now() + span;
        loop {
            let now = Instant::now();
            let due: Vec<(Instant, usize, String)>;
            (due, self.in_flight) = std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|(at, _, _)| *at <= now);
            for (_, to, line) in due {
                self.send(to, &line);
            }
            if now >= until {
                return;
            }
            let wait = (until - now).min(Duration::from_millis(2));
            let Ok(line) = self.lines.recv_timeout(wait) else {
                continue;
            };
            let msg: Value = serde_json::from_str(&line).expect("node output is JSON");
            let (src, dest) = (msg["src"].as_str().unwrap(), msg["dest"].as_str().unwrap());
            match (index(src), index(dest)) {
                (Some(from), Some(to)) => {
                    self.inter_node_msgs += 1;
                    if from != 0 && to != 0 {
                        self.leaf_to_leaf_msgs += 1;
                    }
                    if !cut(from, to) {
                        self.in_flight.push((now + self.latency, to, line));
                    }
                }
                _ => {
                    let irt = msg["body"]["in_reply_to"].as_u64().expect("reply");
                    self.replies
                        .insert((dest.to_string(), irt), msg["body"].clone());
                }
            }
        }
    }

    fn finish(mut self) {
        self.stdins.clear();
        for mut child in self.children.drain(..) {
            let status = child.wait().unwrap();
            assert!(status.success(), "node exit: {status}");
        }
    }
}

/// Five nodes, a partition {n0, n1} | {n2, n3, n4} during the first part of
/// the load, then heal and check final reads.
fn survives_a_partition(args: &[&str]) -> Cluster {
    let n = 5;
    let mut c = Cluster::start(n, args, Duration::from_millis(5));
    let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    for i in 0..n {
        c.request(
            &format!("c{i}"),
            i,
            json!({"type":"init","msg_id":1,"node_id":ids[i],"node_ids":ids}),
        );
    }
    c.pump(Duration::from_millis(200), &|_, _| false);
    for i in 0..n {
        assert_eq!(
            c.replies[&(format!("c{i}"), 1)]["type"],
            "init_ok",
            "node {i} answered init"
        );
    }
    let side = |i: usize| i < 2;
    let partitioned = |a: usize, b: usize| side(a) != side(b);
    let mut broadcasts = BTreeMap::new();
    let mut msg_id = 1;
    for round in 0..60 {
        let value = round as i64;
        let node = round % n;
        msg_id += 1;
        c.request(
            "c9",
            node,
            json!({"type":"broadcast","msg_id":msg_id,"message":value}),
        );
        let cut = round < 30;
        broadcasts.insert(msg_id, value);
        c.pump(Duration::from_millis(25), &|a, b| cut && partitioned(a, b));
    }
    c.pump(Duration::from_millis(3000), &|_, _| false);
    let mut final_ids = Vec::new();
    for i in 0..n {
        msg_id += 1;
        final_ids.push(msg_id);
        c.request("c9", i, json!({"type":"read","msg_id":msg_id}));
    }
    c.pump(Duration::from_millis(300), &|_, _| false);
    let acknowledged: BTreeSet<i64> = broadcasts
        .iter()
        .filter(|(id, _)| c.replies[&("c9".to_string(), **id)]["type"] == "broadcast_ok")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(acknowledged.len(), 60, "every broadcast acknowledged");
    for (i, id) in final_ids.iter().enumerate() {
        let read = &c.replies[&("c9".to_string(), *id)];
        let got: BTreeSet<i64> = read["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let lost: Vec<_> = acknowledged.difference(&got).collect();
        assert!(lost.is_empty(), "n{i} {args:?} lacks {lost:?}");
    }
    eprintln!(
        "{args:?}: {} inter-node messages for 60 broadcasts",
        c.inter_node_msgs
    );
    c
}

#[test]
fn star_survives_a_partition() {
    survives_a_partition(&[
        "--interval-ms",
        "40",
        "--ack-delay-ms",
        "40",
        "--max-rto-ms",
        "400",
    ])
    .finish();
}

#[test]
fn tree_survives_a_partition() {
    survives_a_partition(&[
        "--overlay",
        "tree:2",
        "--interval-ms",
        "40",
        "--ack-delay-ms",
        "40",
        "--max-rto-ms",
        "400",
    ])
    .finish();
}

#[test]
fn fanout_survives_a_partition() {
    survives_a_partition(&[
        "--profile",
        "fast",
        "--ack-delay-ms",
        "100",
        "--max-rto-ms",
        "500",
        "--latency-hint-ms",
        "5",
    ])
    .finish();
}

/// Auto-tuning whose hint (100 ms) rules out a star starts with fanout; the
/// router's 5 ms delays allow one, so the hub switches the cluster to a star
/// (about a second after half the leaves reach it, i.e. around the heal).
/// Nothing is lost across the partition and the switch, and afterwards the
/// leaves talk only to the hub.
#[test]
fn auto_tuned_fanout_turning_star_survives_a_partition() {
    let mut c = survives_a_partition(&[
        "--target-median-ms",
        "200",
        "--target-max-ms",
        "300",
        "--latency-hint-ms",
        "100",
        "--ack-delay-ms",
        "100",
        "--max-rto-ms",
        "500",
    ]);
    assert!(c.leaf_to_leaf_msgs > 0, "it started with fanout");
    c.leaf_to_leaf_msgs = 0;
    for (k, node) in [1, 2, 3, 4].into_iter().enumerate() {
        c.request(
            "c9",
            node,
            json!({"type":"broadcast","msg_id":1000 + k,"message":1000 + k}),
        );
        c.pump(Duration::from_millis(25), &|_, _| false);
    }
    c.pump(Duration::from_millis(1000), &|_, _| false);
    c.request("c9", 3, json!({"type":"read","msg_id":2000}));
    c.pump(Duration::from_millis(100), &|_, _| false);
    let read = &c.replies[&("c9".to_string(), 2000)]["messages"];
    for value in 1000..1004 {
        assert!(
            read.as_array().unwrap().contains(&json!(value)),
            "n3 lacks {value}: {read}"
        );
    }
    assert_eq!(
        c.leaf_to_leaf_msgs, 0,
        "a star: leaves talk only to the hub"
    );
    c.finish();
}

/// The node the kill tests SIGKILL and restart: a star leaf.
/// The node killed by default: a star leaf.
const KILLED: usize = 2;

/// When a value was broadcast, relative to the kill of [`KILLED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    BeforeKill,
    WhileDown,
    AfterRestart,
}

struct Broadcast {
    msg_id: u64,
    value: i64,
    node: usize,
    phase: Phase,
}

/// A run of [`survives_a_kill`]: every broadcast, and each node's final
/// read (None: no reply).
struct KillRun {
    cluster: Cluster,
    /// The node that was killed and restarted.
    killed: usize,
    broadcasts: Vec<Broadcast>,
    final_reads: Vec<Option<BTreeSet<i64>>>,
}

impl KillRun {
    fn acknowledged(&self, b: &Broadcast) -> bool {
        self.cluster
            .replies
            .get(&("c9".to_string(), b.msg_id))
            .is_some_and(|r| r["type"] == "broadcast_ok")
    }

    /// The values of the broadcasts that pass `filter`.
    fn values(&self, filter: impl Fn(&Broadcast) -> bool) -> BTreeSet<i64> {
        self.broadcasts
            .iter()
            .filter(|b| filter(b))
            .map(|b| b.value)
            .collect()
    }

    /// One line per node whose final read lacks some of `values`, or that
    /// gave none (`what` says which values they are).
    fn lacking(&self, values: &BTreeSet<i64>, what: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, read) in self.final_reads.iter().enumerate() {
            let Some(read) = read else {
                problems.push(format!("n{i} did not answer the final read"));
                continue;
            };
            let lost: Vec<_> = values.difference(read).collect();
            if !lost.is_empty() {
                problems.push(format!(
                    "n{i} lacks {} of {} {what}: {lost:?}",
                    lost.len(),
                    values.len()
                ));
            }
        }
        problems
    }
}

/// Fails with every problem found, one per line.
fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problems:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// [`survives_the_kill_of`] the star leaf [`KILLED`].
fn survives_a_kill(args: &[&str]) -> KillRun {
    survives_the_kill_of(KILLED, args)
}

/// Five nodes take distinct values for 2 s; `killed` is SIGKILLed right
/// after it acknowledged one; the others take values for 1 s while it is
/// down (the router drops what is sent to it); it restarts as the same node
/// id and everyone, it included, takes values for 1 s more; after 3 s of
/// quiet every node is read.
fn survives_the_kill_of(killed: usize, args: &[&str]) -> KillRun {
    let n = 5;
    let mut c = Cluster::start(n, args, Duration::from_millis(5));
    for i in 0..n {
        c.join(i);
    }
    c.pump(Duration::from_millis(200), &|_, _| false);
    for i in 0..n {
        let init = c.replies.get(&(format!("c{i}"), 1));
        assert_eq!(
            init.map(|r| r["type"].clone()),
            Some(json!("init_ok")),
            "n{i} answered init (with {args:?})"
        );
    }
    let mut broadcasts = Vec::new();
    let mut broadcast = |c: &mut Cluster, node: usize, phase: Phase| {
        let (msg_id, value) = (1000 + broadcasts.len() as u64, broadcasts.len() as i64);
        c.request(
            "c9",
            node,
            json!({"type":"broadcast","msg_id":msg_id,"message":value}),
        );
        broadcasts.push(Broadcast {
            msg_id,
            value,
            node,
            phase,
        });
        msg_id
    };
    let tick = Duration::from_millis(25);
    for k in 0..80 {
        broadcast(&mut c, k % n, Phase::BeforeKill);
        c.pump(tick, &|_, _| false);
    }
    let last = broadcast(&mut c, killed, Phase::BeforeKill);
    let ack = c.pump_until_reply("c9", last, Duration::from_secs(3));
    assert_eq!(
        ack.map(|r| r["type"].clone()),
        Some(json!("broadcast_ok")),
        "n{killed} acknowledged its last value before the kill"
    );
    c.kill(killed);
    let survivors: Vec<usize> = (0..n).filter(|&i| i != killed).collect();
    for k in 0..40 {
        broadcast(&mut c, survivors[k % survivors.len()], Phase::WhileDown);
        c.pump(tick, &|_, _| false);
    }
    c.restart(killed);
    let init = c.pump_until_reply(&format!("c{killed}"), 1, Duration::from_secs(2));
    assert_eq!(
        init.map(|r| r["type"].clone()),
        Some(json!("init_ok")),
        "the restarted n{killed} answered init"
    );
    for k in 0..40 {
        broadcast(&mut c, k % n, Phase::AfterRestart);
        c.pump(tick, &|_, _| false);
    }
    c.pump(Duration::from_secs(3), &|_, _| false);
    let read_ids: Vec<u64> = (0..n).map(|i| 5000 + i as u64).collect();
    for (i, &msg_id) in read_ids.iter().enumerate() {
        c.request("c9", i, json!({"type":"read","msg_id":msg_id}));
    }
    // A restarted node may hold reads until it has caught up.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until
        && !read_ids
            .iter()
            .all(|id| c.replies.contains_key(&("c9".to_string(), *id)))
    {
        c.pump(Duration::from_millis(10), &|_, _| false);
    }
    let final_reads = read_ids
        .iter()
        .map(|id| {
            let read = c.replies.get(&("c9".to_string(), *id))?;
            read["messages"]
                .as_array()
                .map(|values| values.iter().filter_map(Value::as_i64).collect())
        })
        .collect();
    KillRun {
        cluster: c,
        killed,
        broadcasts,
        final_reads,
    }
}

/// With `--durable-acks` a node acknowledges a value only once another node
/// holds it, so even the values the killed node acknowledged just before
/// the kill survive it. The restarted node catches up on everything, and
/// what it takes after the restart (under a new incarnation) spreads.
#[test]
fn a_killed_and_restarted_node_loses_no_acknowledged_value_with_durable_acks() {
    let run = survives_a_kill(&[
        "--durable-acks",
        "--interval-ms",
        "40",
        "--ack-delay-ms",
        "40",
        "--max-rto-ms",
        "400",
    ]);
    let mut problems = Vec::new();
    let unacknowledged = run.values(|b| {
        // The killed node may have died before acknowledging these.
        let died_with_it = b.node == run.killed && b.phase == Phase::BeforeKill;
        !(died_with_it || run.acknowledged(b))
    });
    if !unacknowledged.is_empty() {
        problems.push(format!(
            "broadcasts to live nodes not acknowledged: {unacknowledged:?}"
        ));
    }
    let acknowledged = run.values(|b| run.acknowledged(b));
    problems.extend(run.lacking(&acknowledged, "acknowledged values"));
    let restarted = run.values(|b| b.node == run.killed && b.phase == Phase::AfterRestart);
    problems.extend(run.lacking(&restarted, "values the restarted node took"));
    assert_no_problems(&problems);
    run.cluster.finish();
}

/// Without `--durable-acks` what the killed node acknowledged but had not
/// passed on may die with it; everything else must reach every node,
/// including the restarted one (history from before its restart) and from
/// it (values it took after the restart).
#[test]
fn a_killed_and_restarted_node_catches_up() {
    let run = survives_a_kill(&[
        "--interval-ms",
        "40",
        "--ack-delay-ms",
        "40",
        "--max-rto-ms",
        "400",
    ]);
    let mut problems = Vec::new();
    let restarted = run.values(|b| b.node == run.killed && b.phase == Phase::AfterRestart);
    let unacknowledged = run
        .values(|b| b.node == run.killed && b.phase == Phase::AfterRestart && !run.acknowledged(b));
    if !unacknowledged.is_empty() {
        problems.push(format!(
            "the restarted node did not acknowledge {unacknowledged:?}"
        ));
    }
    let from_survivors = run.values(|b| b.node != run.killed && run.acknowledged(b));
    problems.extend(run.lacking(&from_survivors, "values acknowledged by never-killed nodes"));
    problems.extend(run.lacking(&restarted, "values the restarted node took"));
    assert_no_problems(&problems);
    run.cluster.finish();
}

/// The hub of a fanout cluster killed and restarted: its leaves' direct
/// links answer only for their own values, so the hub's own earlier values
/// come back over their reliable links to it, and everything else from the
/// leaves' catch-up. Nothing acknowledged is lost with `--durable-acks`.
#[test]
fn a_killed_fanout_hub_gets_its_history_back() {
    let run = survives_the_kill_of(0, &["--profile", "fast", "--durable-acks"]);
    let acknowledged = run.values(|b| run.acknowledged(b));
    let mut problems = run.lacking(&acknowledged, "acknowledged values");
    let restarted = run.values(|b| b.node == run.killed && b.phase == Phase::AfterRestart);
    problems.extend(run.lacking(&restarted, "values the restarted hub took"));
    assert_no_problems(&problems);
    run.cluster.finish();
}

/// The star's hub SIGKILLed and kept down: each leaf with values in flight
/// finds it silent, moves to the next hub (n1), and with `--durable-acks`
/// keeps acknowledging, since the new hub holds its values. Values taken
/// while the hub is down reach every leaf before it comes back; the
/// restarted hub follows the new one and gets everything.
#[test]
fn a_dead_star_hub_is_replaced_and_leaves_keep_acknowledging() {
    let n = 5;
    let args = [
        "--durable-acks",
        "--interval-ms",
        "100",
        "--ack-delay-ms",
        "200",
    ];
    let mut c = Cluster::start(n, &args, Duration::from_millis(5));
    for i in 0..n {
        c.join(i);
    }
    c.pump(Duration::from_millis(200), &|_, _| false);
    c.kill(0);
    let mut broadcasts = Vec::new();
    for k in 0..40u64 {
        let (msg_id, node) = (1000 + k, 1 + (k as usize) % (n - 1));
        c.request(
            "c9",
            node,
            json!({"type":"broadcast","msg_id":msg_id,"message":k}),
        );
        broadcasts.push(msg_id);
        c.pump(Duration::from_millis(25), &|_, _| false);
    }
    // Silence bound: 200 + 3·100 + 4·100 ms (at least 1.5 s), then a round.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until
        && !broadcasts
            .iter()
            .all(|id| c.replies.contains_key(&("c9".to_string(), *id)))
    {
        c.pump(Duration::from_millis(10), &|_, _| false);
    }
    let acknowledged = broadcasts
        .iter()
        .filter(|id| {
            c.replies
                .get(&("c9".to_string(), **id))
                .is_some_and(|r| r["type"] == "broadcast_ok")
        })
        .count();
    assert_eq!(
        acknowledged,
        broadcasts.len(),
        "every leaf broadcast acknowledged while the hub is down"
    );
    let all: BTreeSet<i64> = (0..40).collect();
    let read = |c: &mut Cluster, nodes: &[usize], base: u64| -> Vec<String> {
        for &i in nodes {
            c.request("c9", i, json!({"type":"read","msg_id":base + i as u64}));
        }
        c.pump(Duration::from_millis(500), &|_, _| false);
        let mut problems = Vec::new();
        for &i in nodes {
            let got: BTreeSet<i64> = c
                .replies
                .get(&("c9".to_string(), base + i as u64))
                .and_then(|r| r["messages"].as_array().cloned())
                .map(|v| v.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            let lost: Vec<_> = all.difference(&got).collect();
            if !lost.is_empty() {
                problems.push(format!("n{i} lacks {} of 40: {lost:?}", lost.len()));
            }
        }
        problems
    };
    c.pump(Duration::from_millis(1000), &|_, _| false);
    assert_no_problems(&read(&mut c, &[1, 2, 3, 4], 5000));
    c.restart(0);
    c.pump(Duration::from_secs(3), &|_, _| false);
    assert_no_problems(&read(&mut c, &[0, 1, 2, 3, 4], 6000));
    c.finish();
}
