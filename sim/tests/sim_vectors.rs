//! Loads every case of the shared test vectors (sim/tests/vectors, a copy of
//! shared/test-vectors) and compares the harness's analysis with `expected`:
//! topology builders (spec 2.3), the broadcast checker (3.1-3.5) and the net
//! statistics (4.6). Also parse-checks the EDN the harness writes for them.

use std::path::PathBuf;

use clojure_reader::edn::{self as cedn, Edn as Read};
use maelstrom_sim::checker::{analyze_elements, check_workload, Outcome, WorkloadResult};
use maelstrom_sim::edn::Edn;
use maelstrom_sim::history::{to_edn_lines, Event, EventType, OpError, Process};
use maelstrom_sim::netstats::{JournalKind, NetCategory, NetStats, NetSummary};
use maelstrom_sim::results::{analyze, AnalysisInput, ExceptionRecord, HarnessReport};
use maelstrom_sim::topology::{self, TOPOLOGY_NAMES};
use serde_json::{json, Map, Value};

fn load(name: &str) -> Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn cases(file: &Value) -> &Vec<Value> {
    file["cases"].as_array().expect("a cases array")
}

fn event_from_json(e: &Value) -> Event {
    let kind = match e["type"].as_str() {
        Some("invoke") => EventType::Invoke,
        Some("ok") => EventType::Ok,
        Some("fail") => EventType::Fail,
        Some("info") => EventType::Info,
        other => panic!("bad event type {other:?}"),
    };
    let process = match &e["process"] {
        Value::String(s) if s == "nemesis" => Process::Nemesis,
        p => Process::Client(p.as_u64().expect("integer process")),
    };
    Event {
        index: e["index"].as_u64().expect("index"),
        time_ns: e["time_ns"].as_u64().expect("time_ns"),
        kind,
        process,
        f: e["f"].as_str().expect("f").to_string(),
        value: e["value"].clone(),
        final_read: e.get("final").and_then(Value::as_bool).unwrap_or(false),
        error: e.get("error").map(|v| match v {
            Value::String(s) if s.contains(' ') => OpError::Text(s.clone()),
            Value::String(s) => OpError::Keyword(s.clone()),
            Value::Array(parts) => OpError::Reply {
                name: parts[0].as_str().expect("error name").to_string(),
                text: parts.get(1).and_then(Value::as_str).map(str::to_string),
            },
            other => panic!("bad error {other}"),
        }),
    }
}

fn history_of(case: &Value) -> Vec<Event> {
    case["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(event_from_json)
        .collect()
}

fn quantiles_json(q: &maelstrom_sim::checker::Quantiles) -> Value {
    let keys = ["0", "0.5", "0.95", "0.99", "1"];
    let map: Map<String, Value> = keys
        .iter()
        .zip(q.points())
        .map(|(k, (_, v))| (k.to_string(), json!(v)))
        .collect();
    Value::Object(map)
}

/// The typed result in the vectors' `expected` shape.
fn workload_as_expected(w: &WorkloadResult) -> Value {
    let valid = match w.valid {
        maelstrom_sim::checker::Validity::True => json!(true),
        maelstrom_sim::checker::Validity::False => json!(false),
        maelstrom_sim::checker::Validity::Unknown => json!("unknown"),
    };
    let mut m = json!({
        "valid": valid,
        "attempt-count": w.attempt_count,
        "stable-count": w.stable_count,
        "stale-count": w.stale.len(),
        "stale": w.stale,
        "lost-count": w.lost.len(),
        "lost": w.lost,
        "never-read-count": w.never_read.len(),
        "never-read": w.never_read,
    });
    if let Some(q) = &w.stable_latencies {
        m["stable-latencies"] = quantiles_json(q);
    }
    if let Some(q) = &w.lost_latencies {
        m["lost-latencies"] = quantiles_json(q);
    }
    m
}

fn empty_net() -> NetSummary {
    let zero = NetCategory {
        send_count: 0,
        recv_count: 0,
        msg_count: 0,
        msgs_per_op: None,
    };
    NetSummary {
        all: zero,
        clients: zero,
        servers: zero,
    }
}

#[test]
fn topologies_match_every_vector() {
    let file = load("topologies.json");
    assert_eq!(file["aliases"], json!({"tree": "tree2"}));
    let mut checked = 0;
    for (name, by_count) in file["topologies"].as_object().expect("topologies") {
        assert!(TOPOLOGY_NAMES.contains(&name.as_str()), "{name}");
        for (count, expected) in by_count.as_object().expect("counts") {
            let n: usize = count.parse().expect("node count");
            let nodes: Vec<String> = (0..n).map(|k| format!("n{k}")).collect();
            let built = topology::build(name, &nodes).expect("known name");
            assert_eq!(json!(built), *expected, "{name} n={n}");
            if name == "tree2" {
                assert_eq!(topology::build("tree", &nodes).unwrap(), built);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 42);
}

#[test]
fn checker_matches_every_vector() {
    let file = load("checker-cases.json");
    assert_eq!(
        file["quantile-points"],
        json!(["0", "0.5", "0.95", "0.99", "1"])
    );
    for case in cases(&file) {
        let name = case["name"].as_str().expect("name");
        let history = history_of(case);
        let result = check_workload(&history);
        assert_eq!(
            workload_as_expected(&result),
            case["expected"],
            "case {name}"
        );
        // Duplicates are never flagged (spec 3.5 quirk), so never invalid for it.
        assert!(result.worst_stale.len() <= 8);
    }
    assert_eq!(cases(&file).len(), 19);
}

#[test]
fn checker_element_diagnostics_match() {
    let file = load("checker-cases.json");
    for case in cases(&file) {
        let name = case["name"].as_str().expect("name");
        let history = history_of(case);
        let index_of = |p: Option<usize>| p.map_or(Value::Null, |p| json!(history[p].index));
        let reports = analyze_elements(&history);
        let actual: Map<String, Value> = reports
            .iter()
            .map(|r| {
                let outcome = match r.outcome {
                    Outcome::Stable => "stable",
                    Outcome::Lost => "lost",
                    Outcome::NeverRead => "never-read",
                };
                let entry = json!({
                    "outcome": outcome,
                    "known-index": index_of(r.known),
                    "last-present-index": index_of(r.last_present),
                    "last-absent-index": index_of(r.last_absent),
                    "latency-ms": r.latency_ms,
                });
                (r.element.to_string(), entry)
            })
            .collect();
        assert_eq!(Value::Object(actual), case["elements"], "case {name}");
    }
}

#[test]
fn results_json_workload_matches_every_vector() {
    let file = load("checker-cases.json");
    for case in cases(&file) {
        let name = case["name"].as_str().expect("name");
        let history = history_of(case);
        let results = analyze(&AnalysisInput {
            history: &history,
            net: empty_net(),
            availability: None,
            exceptions: &[],
            harness: None,
        });
        let mut workload = results.to_json()["workload"].clone();
        let object = workload.as_object_mut().expect("workload map");
        let valid = object.remove("valid?").expect("valid?");
        object.insert("valid".into(), valid);
        for constant in ["worst-stale", "duplicated-count", "duplicated"] {
            object.remove(constant).expect(constant);
        }
        assert_eq!(workload, case["expected"], "case {name}");
    }
}

#[test]
fn net_stats_match_every_vector() {
    let file = load("net-stats-cases.json");
    for case in cases(&file) {
        let name = case["name"].as_str().expect("name");
        let mut net = NetStats::default();
        for e in case["journal"].as_array().expect("journal") {
            let kind = match e["type"].as_str() {
                Some("send") => JournalKind::Send,
                Some("recv") => JournalKind::Recv,
                other => panic!("bad journal type {other:?}"),
            };
            let id = e["id"].as_u64().expect("id");
            net.record(
                kind,
                id,
                e["src"].as_str().unwrap(),
                e["dest"].as_str().unwrap(),
            );
        }
        let op_count = case["op-count"].as_u64().expect("op-count");
        let summary = net.summary(op_count);
        let expected = &case["expected"];
        for (category, actual) in [
            ("all", summary.all),
            ("clients", summary.clients),
            ("servers", summary.servers),
        ] {
            let want = &expected[category];
            let counts = (actual.send_count, actual.recv_count, actual.msg_count);
            let want_counts = (
                want["send-count"].as_u64().unwrap(),
                want["recv-count"].as_u64().unwrap(),
                want["msg-count"].as_u64().unwrap(),
            );
            assert_eq!(counts, want_counts, "{name} {category}");
            let want_per_op = want.get("msgs-per-op").map(|v| v.as_f64().unwrap() as f32);
            assert_eq!(
                actual.msgs_per_op.map(f32::to_bits),
                want_per_op.map(f32::to_bits),
                "{name} {category}"
            );
            if let Some(bits) = case["msgs-per-op-detail"][category]["f32-bits"].as_str() {
                let bits = u32::from_str_radix(bits.trim_start_matches("0x"), 16).unwrap();
                assert_eq!(actual.msgs_per_op.map(f32::to_bits), Some(bits));
            }
        }
        // results.json writes the same numbers with the same key names.
        let results = analyze(&AnalysisInput {
            history: &[],
            net: summary,
            availability: None,
            exceptions: &[],
            harness: None,
        });
        let mut want = expected.clone();
        want["valid?"] = json!(true);
        assert_eq!(results.to_json()["net"], want, "{name}");
    }
    assert_eq!(cases(&file).len(), 4);
}

fn get<'a>(map: &'a Read<'a>, key: &str) -> &'a Read<'a> {
    let Read::Map(m) = map else {
        panic!("not a map: {map:?}");
    };
    m.iter()
        .find(|(k, _)| matches!(k, Read::Key(name) if *name == key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no :{key} in {map:?}"))
}

#[test]
fn results_edn_parses_for_every_vector() {
    let file = load("checker-cases.json");
    for case in cases(&file) {
        let name = case["name"].as_str().expect("name");
        let history = history_of(case);
        // Attach an exception to the first completion, to exercise that path.
        let exceptions: Vec<ExceptionRecord> = history
            .iter()
            .filter(|e| e.kind != EventType::Invoke && e.process != Process::Nemesis)
            .take(1)
            .map(|op| ExceptionRecord {
                class: "clojure.lang.ExceptionInfo".into(),
                message: "Malformed RPC response. \"x\"\n".into(),
                op: op.clone(),
            })
            .collect();
        let results = analyze(&AnalysisInput {
            history: &history,
            net: NetStats::default().summary(3),
            availability: None,
            exceptions: &exceptions,
            harness: Some(HarnessReport {
                wall_seconds: 1.5,
                notes: vec![("thread-pick".into(), "round-robin".into())],
                ..Default::default()
            }),
        });
        let text = results.to_edn();
        let parsed = cedn::read_string(&text).unwrap_or_else(|e| panic!("{name}: {e:?}\n{text}"));
        let workload = get(&parsed, "workload");
        let want_valid = match &case["expected"]["valid"] {
            Value::Bool(b) => Read::Bool(*b),
            _ => Read::Key("unknown"),
        };
        assert_eq!(*get(workload, "valid?"), want_valid, "{name}");
        let attempts = case["expected"]["attempt-count"].as_i64().unwrap();
        assert_eq!(*get(workload, "attempt-count"), Read::Int(attempts));
        assert_eq!(*get(get(&parsed, "net"), "valid?"), Read::Bool(true));
        assert_eq!(*get(get(&parsed, "harness"), "valid?"), Read::Bool(true));
        if !exceptions.is_empty() {
            let Read::Vector(groups) = get(get(&parsed, "exceptions"), "exceptions") else {
                panic!("{name}: :exceptions is not a vector");
            };
            assert_eq!(*get(&groups[0], "count"), Read::Int(1));
        }
        if let Some(q) = case["expected"].get("stable-latencies") {
            let Read::Map(m) = get(workload, "stable-latencies") else {
                panic!("{name}: quantiles not a map");
            };
            let p50 = m
                .iter()
                .find_map(|(k, v)| match k {
                    Read::Double(x) if x.0 == 0.5 => Some(v.clone()),
                    _ => None,
                })
                .expect("0.5 key");
            assert_eq!(p50, Read::Int(q["0.5"].as_i64().unwrap()));
            assert!(m.contains_key(&Read::Int(0)) && m.contains_key(&Read::Int(1)));
        }

        for (line, event) in to_edn_lines(&history).lines().zip(&history) {
            let op = cedn::read_string(line).unwrap_or_else(|e| panic!("{name}: {e:?}: {line}"));
            assert_eq!(*get(&op, "index"), Read::Int(event.index as i64));
            assert_eq!(*get(&op, "time"), Read::Int(event.time_ns as i64));
        }
    }
}

#[test]
fn edn_floats_read_back() {
    for x in [8.181818f32, 0.0, 1.0, 1.0e-4, 3.4028235e38, 1.4e-45, 1234.5] {
        let text = Edn::Float(x).to_string();
        match cedn::read_string(&text) {
            Ok(Read::Double(d)) => assert_eq!(d.0 as f32, x, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}
