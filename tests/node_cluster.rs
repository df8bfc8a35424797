//! Multi-process tests of broadcast-node: a small in-test router runs five
//! real node processes, delays inter-node messages, cuts the network into two
//! halves for a while, drives client broadcasts and reads, and checks that
//! every acknowledged value is in every node's final read.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_broadcast-node");

struct Cluster {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
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

impl Cluster {
    fn start(n: usize, args: &[&str], latency: Duration) -> Cluster {
        let (tx, lines) = mpsc::channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for _ in 0..n {
            let mut child = Command::new(NODE)
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn node");
            stdins.push(child.stdin.take().unwrap());
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
            children.push(child);
        }
        Cluster {
            children,
            stdins,
            lines,
            in_flight: Vec::new(),
            latency,
            replies: BTreeMap::new(),
            inter_node_msgs: 0,
            leaf_to_leaf_msgs: 0,
        }
    }

    fn send(&mut self, to: usize, line: &str) {
        let stdin = &mut self.stdins[to];
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
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
