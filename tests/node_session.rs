//! Binary-level tests of broadcast-node: scripted sessions piped into the
//! built binary, every reply checked, plus configuration errors and help.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_broadcast-node");

/// Starts the node with piped stdio and info logs.
fn spawn_node(args: &[&str]) -> Child {
    Command::new(NODE)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node")
}

/// Runs the node on `input` (then EOF); returns (exit code, stdout lines,
/// stderr).
fn run_script(args: &[&str], input: &str) -> (i32, Vec<Value>, String) {
    let mut child = spawn_node(args);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line(src: &str, body: Value) -> String {
    json!({"src": src, "dest": "n0", "body": body}).to_string() + "\n"
}

#[test]
fn scripted_session_gets_every_reply_exactly() {
    let mut script = String::new();
    script += &line(
        "c0",
        json!({"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}),
    );
    script += &line(
        "c1",
        json!({"type":"topology","msg_id":1,"topology":{"n0":[]}}),
    );
    for (i, v) in [3, 1, 2, 3].iter().enumerate() {
        script += &line(
            "c2",
            json!({"type":"broadcast","msg_id": i + 1,"message": v}),
        );
    }
    script += &line("c2", json!({"type":"read","msg_id":5}));
    script += "not json at all\n";
    script += &line("c3", json!({"type":"cas","msg_id":1,"key":1}));
    script += &line("c3", json!({"type":"broadcast","msg_id":2,"message":"x"}));
    script += &line("c3", json!({"type":"broadcast","msg_id":3,"message":1.0}));
    script += &line("c3", json!({"type":"broadcast","msg_id":4}));
    script += "{\"src\":\"c3\",\"dest\":\"n0\",\"body\":7}\n";
    script += &line("c3", json!({"type":"read"}));
    script += &line(
        "c3",
        json!({"type":"broadcast","msg_id":5,"message":-9_223_372_036_854_775_808i64}),
    );
    script += &line("c3", json!({"type":"read","msg_id":6}));

    let (code, lines, stderr) = run_script(&[], &script);
    assert_eq!(code, 0, "stderr: {stderr}");

    // Every line is a reply from n0 with a unique integer msg_id; replies to
    // one client keep that client's request order.
    let mut ids = BTreeSet::new();
    let mut replies: BTreeMap<(String, u64), Value> = BTreeMap::new();
    for l in &lines {
        let obj = l.as_object().unwrap();
        assert_eq!(obj.len(), 3, "only src, dest, body: {l}");
        assert_eq!(l["src"], "n0");
        let mut body = l["body"].clone();
        let msg_id = body
            .as_object_mut()
            .unwrap()
            .remove("msg_id")
            .and_then(|v| v.as_u64())
            .expect("integer msg_id");
        assert!(ids.insert(msg_id), "duplicate msg_id {msg_id}");
        let key = (
            l["dest"].as_str().unwrap().to_string(),
            body["in_reply_to"].as_u64().unwrap(),
        );
        assert!(replies.insert(key, body).is_none(), "two replies: {l}");
    }
    let want = |dest: &str, irt: u64| replies[&(dest.to_string(), irt)].clone();
    assert_eq!(want("c0", 1), json!({"type":"init_ok","in_reply_to":1}));
    assert_eq!(want("c1", 1), json!({"type":"topology_ok","in_reply_to":1}));
    for i in 1..=4 {
        assert_eq!(
            want("c2", i),
            json!({"type":"broadcast_ok","in_reply_to":i})
        );
    }
    assert_eq!(
        want("c2", 5),
        json!({"type":"read_ok","messages":[1,2,3],"in_reply_to":5})
    );
    let error_code = |irt: u64| {
        let body = want("c3", irt);
        assert_eq!(body["type"], "error");
        assert!(body["text"].is_string());
        body["code"].as_u64().unwrap()
    };
    assert_eq!(error_code(1), 10, "unknown type: not-supported");
    for irt in 2..=4 {
        assert_eq!(error_code(irt), 12, "malformed broadcast {irt}");
    }
    assert_eq!(
        want("c3", 5),
        json!({"type":"broadcast_ok","in_reply_to":5})
    );
    assert_eq!(
        want("c3", 6),
        json!({"type":"read_ok","messages":[-9_223_372_036_854_775_808i64,1,2,3],"in_reply_to":6})
    );
    assert_eq!(replies.len(), 13, "nothing else was written");

    // One log line per bad input (7 bad lines, 2 of them unanswerable).
    let bad = stderr.lines().filter(|l| l.contains("bad input")).count();
    assert_eq!(bad, 7, "stderr: {stderr}");
}

#[test]
fn gossip_before_init_is_kept_and_values_reach_the_hub() {
    // n1 is a star leaf; n0 is the hub. Gossip from n0 arrives before init.
    let mut child = Command::new(NODE)
        .args(["--interval-ms", "50"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let l = l.unwrap();
            tx.send(serde_json::from_str(&l).unwrap()).unwrap();
        }
    });
    let send = |stdin: &mut std::process::ChildStdin, src: &str, body: Value| {
        let l = json!({"src": src, "dest": "n1", "body": body}).to_string() + "\n";
        stdin.write_all(l.as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    send(
        &mut stdin,
        "n0",
        json!({"type":"gossip","items":[["n0@5",1,100]],"have":{"n0@5":1},"ts":0,"inc":5}),
    );
    send(
        &mut stdin,
        "c0",
        json!({"type":"init","msg_id":1,"node_id":"n1","node_ids":["n0","n1"]}),
    );
    send(
        &mut stdin,
        "c4",
        json!({"type":"broadcast","msg_id":1,"message":7}),
    );
    send(&mut stdin, "c4", json!({"type":"read","msg_id":2}));

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut read_ok = None;
    let mut gossip = None;
    while (read_ok.is_none() || gossip.is_none()) && Instant::now() < deadline {
        let Ok(msg) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        match msg["body"]["type"].as_str() {
            Some("read_ok") => read_ok = Some(msg),
            Some("gossip") => gossip = Some(msg),
            _ => {}
        }
    }
    drop(stdin);
    let read_ok = read_ok.expect("read_ok");
    assert_eq!(read_ok["body"]["messages"], json!([7, 100]));
    let gossip = gossip.expect("a gossip batch to the hub");
    assert_eq!(
        (gossip["src"].clone(), gossip["dest"].clone()),
        (json!("n1"), json!("n0"))
    );
    let body = &gossip["body"];
    // n1's items carry its incarnation, which is also in the message.
    let inc = body["inc"].as_u64().expect("the sender's incarnation");
    let mine = format!("n1@{inc}");
    assert_eq!(
        body["items"],
        json!([[mine, 1, 7]]),
        "n0's own item is not sent back"
    );
    assert_eq!(
        body["have"],
        json!({"n0@5": 1, mine: 1}),
        "and n0's item is acknowledged"
    );
    assert!(body.get("msg_id").is_none());
    let status = child.wait().unwrap();
    assert!(status.success());
    reader.join().unwrap();
}

#[test]
fn help_and_bad_configuration() {
    let out = Command::new(NODE).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for knob in [
        "--overlay",
        "--interval-ms",
        "--profile",
        "BROADCAST_ACK_DELAY_MS",
    ] {
        assert!(help.contains(knob), "{knob} missing from --help");
    }

    let bad_flag = Command::new(NODE)
        .args(["--overlay", "ring"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let bad_env = Command::new(NODE)
        .env("BROADCAST_INTERVAL_MS", "soon")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let bad_pair = Command::new(NODE)
        .args(["--min-rto-ms", "900", "--max-rto-ms", "100"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    for out in [bad_flag, bad_env, bad_pair] {
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.starts_with("broadcast-node: "), "{stderr:?}");
    }
}

#[test]
fn backlog_trace_lines_show_an_unacknowledged_value() {
    // n1 is a star leaf whose hub never answers: its value stays in flight.
    let mut child = Command::new(NODE)
        .args(["--interval-ms", "20", "--trace-interval-ms", "100"])
        .env("RUST_LOG", "warn,backlog=info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for body in [
        json!({"type":"init","msg_id":1,"node_id":"n1","node_ids":["n0","n1"]}),
        json!({"type":"broadcast","msg_id":2,"message":7}),
    ] {
        let l = json!({"src": "c1", "dest": "n1", "body": body}).to_string() + "\n";
        stdin.write_all(l.as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(650));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let traces: Vec<BTreeMap<String, String>> = stderr
        .lines()
        .filter_map(|l| l.split_once(" INFO backlog "))
        .map(|(_, fields)| {
            fields
                .split(' ')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("key=value");
                    (k.to_string(), v.to_string())
                })
                .collect()
        })
        .collect();
    assert!(traces.len() >= 3, "a line per 100 ms while busy: {stderr}");
    let keys: Vec<&str> = traces[0].keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ack_hold_ms",
            "batches_in_flight",
            "copies",
            "in_flight",
            "lazy",
            "oldest_unacked_ms",
            "peer",
            "peer_loss_permille",
            "received_msgs",
            "resent_items",
            "rto_ms",
            "sent_msgs",
            "waiting"
        ]
    );
    let last = traces.last().unwrap();
    assert_eq!(last["peer"], "n0");
    assert_eq!(last["in_flight"], "1");
    assert_eq!(last["waiting"], "0");
    assert_eq!(last["copies"], "1");
    let age: u64 = last["oldest_unacked_ms"].parse().unwrap();
    assert!(
        age >= 250,
        "the value has waited since the broadcast: {age}"
    );
}

/// Sends `sig` (a `kill` signal name) to process `pid`.
fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// A node SIGSTOPped for longer than a client waits (Maelstrom closes a
/// client 5 s after its request) must not answer the requests that waited
/// in its pipe: a reply to a closed client makes Maelstrom ignore the node
/// from then on. The values are kept, and later requests are answered.
#[test]
fn requests_that_waited_through_a_long_stop_go_unanswered_but_their_values_stay() {
    let mut child = spawn_node(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for l in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&l).expect("node output is JSON"));
        }
    });
    let collect = |span: Duration| -> Vec<Value> {
        let end = Instant::now() + span;
        let mut got = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(v) => got.push(v),
                Err(_) => break,
            }
        }
        got
    };
    let mut send = |src: &str, body: Value| {
        stdin.write_all(line(src, body).as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    send(
        "c0",
        json!({"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}),
    );
    send(
        "c1",
        json!({"type":"topology","msg_id":1,"topology":{"n0":[]}}),
    );
    assert_eq!(
        collect(Duration::from_millis(500)).len(),
        2,
        "init_ok, topology_ok"
    );

    signal(child.id(), "STOP");
    send("c2", json!({"type":"broadcast","msg_id":1,"message":10}));
    send("c2", json!({"type":"read","msg_id":2}));
    std::thread::sleep(Duration::from_secs(6));
    signal(child.id(), "CONT");
    let after_stop = collect(Duration::from_millis(700));
    assert!(
        after_stop.is_empty(),
        "replies to requests older than the client's patience: {after_stop:?}"
    );

    send("c3", json!({"type":"broadcast","msg_id":1,"message":11}));
    send("c3", json!({"type":"read","msg_id":2}));
    let fresh = collect(Duration::from_millis(500));
    let types: Vec<&str> = fresh
        .iter()
        .filter_map(|v| v["body"]["type"].as_str())
        .collect();
    assert_eq!(types, ["broadcast_ok", "read_ok"], "{fresh:?}");
    let mut values: Vec<i64> = fresh[1]["body"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    values.sort();
    assert_eq!(values, [10, 11], "the value taken during the stop stays");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
