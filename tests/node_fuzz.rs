//! Fuzz test of the broadcast-node binary: one node takes a seeded,
//! deterministic stream that mixes valid client requests and valid gossip
//! from a cluster member with thousands of hostile lines (garbage bytes,
//! broken or wrongly typed JSON, out-of-range numbers, over-long lines,
//! spoofed and out-of-range gossip). The node must not crash, must write only
//! well-formed messages, must answer every valid request, and its final read
//! must hold exactly the valid values: none that came only in rejected input.
//!
//! `BROADCAST_FUZZ_SEED=<u64>` replays another stream.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NODE: &str = env!("CARGO_BIN_EXE_broadcast-node");

/// The node's `--max-line-bytes` in these runs: small, so that over-long
/// lines are cheap to make.
const MAX_LINE_BYTES: usize = 4096;

/// Lines fed to the node per run (besides init, topology and the final read).
const LINES: usize = 4000;

/// The largest seq the issue-11 plan allows in items, `have` and `extra`.
const MAX_SEQ: u64 = 1 << 40;

/// Value ranges, so that every value in a read can be traced to its input.
const FIRST_BROADCAST_VALUE: i64 = 1_000_000;
const FIRST_GOSSIP_VALUE: i64 = 5_000_000;
const FIRST_REJECTED_VALUE: i64 = 9_000_000;

/// Valid client values at the edges of i64 (besides the counted ones).
const EDGE_VALUES: [i64; 4] = [i64::MIN, -1, 0, i64::MAX];

/// Seqs for items in rejected gossip that reuse a valid origin: far above
/// anything the valid stream uses, so a wrongly accepted one cannot shadow a
/// valid item with the same (origin, seq).
const FIRST_REJECTED_SEQ: u64 = 1_000_000;

/// The hostile client: every request of it is invalid and deserves at most
/// an `error` reply.
const HOSTILE_CLIENT: &str = "c6";
const VALID_CLIENTS: [&str; 4] = ["c1", "c2", "c3", "c4"];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// splitmix64: small, seedable and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, options: &'a [T]) -> &'a T {
        &options[self.below(options.len() as u64) as usize]
    }
}

/// What the node must do with the stream fed to it.
#[derive(Default)]
struct Expected {
    /// Valid broadcasts: (client, msg_id) → value.
    broadcasts: BTreeMap<(String, u64), i64>,
    reads: BTreeSet<(String, u64)>,
    /// Values of items in valid gossip.
    gossip_values: BTreeSet<i64>,
    /// Values that came only in input the node must reject, with why.
    rejected: BTreeMap<i64, &'static str>,
    /// Hostile requests that name a client and an integer msg_id: they get
    /// an `error` reply.
    errors: BTreeMap<u64, &'static str>,
}

/// Which node the fuzzed node is, and whose gossip it gets.
struct Scenario {
    me: &'static str,
    /// The member whose valid gossip the stream plays.
    peer: &'static str,
    /// Another member, whose items the peer relays.
    relayed: &'static str,
    args: &'static [&'static str],
}

const MEMBERS: [&str; 5] = ["n0", "n1", "n2", "n3", "n4"];

/// Generates the stream one line at a time and records what it expects.
struct Fuzzer {
    rng: Rng,
    me: &'static str,
    peer: &'static str,
    /// The peer's incarnation (its wall clock at start, per the plan).
    peer_inc: u64,
    peer_origin: String,
    relayed_origin: String,
    /// Highest seq the valid stream used per origin.
    peer_seq: u64,
    relayed_seq: u64,
    next_broadcast_value: i64,
    next_gossip_value: i64,
    next_rejected_value: i64,
    next_rejected_seq: u64,
    msg_ids: BTreeMap<&'static str, u64>,
    expected: Expected,
}

impl Fuzzer {
    fn new(seed: u64, scenario: &Scenario) -> Fuzzer {
        // Incarnations as the plan makes them: a start instant in ms.
        let peer_inc = now_ms() - 60_000;
        Fuzzer {
            rng: Rng(seed),
            me: scenario.me,
            peer: scenario.peer,
            peer_inc,
            peer_origin: format!("{}@{peer_inc}", scenario.peer),
            relayed_origin: format!("{}@{}", scenario.relayed, peer_inc - 5_000),
            peer_seq: 0,
            relayed_seq: 0,
            next_broadcast_value: FIRST_BROADCAST_VALUE,
            next_gossip_value: FIRST_GOSSIP_VALUE,
            next_rejected_value: FIRST_REJECTED_VALUE,
            next_rejected_seq: FIRST_REJECTED_SEQ,
            msg_ids: BTreeMap::new(),
            expected: Expected::default(),
        }
    }

    fn line(&self, src: &str, body: Value) -> Vec<u8> {
        json!({"src": src, "dest": self.me, "body": body})
            .to_string()
            .into_bytes()
    }

    fn msg_id(&mut self, client: &'static str) -> u64 {
        let id = self.msg_ids.entry(client).or_insert(0);
        *id += 1;
        *id
    }

    /// A value that must not be kept: it travels only in input to reject.
    fn rejected_value(&mut self, why: &'static str) -> i64 {
        let value = self.next_rejected_value;
        self.next_rejected_value += 1;
        self.expected.rejected.insert(value, why);
        value
    }

    fn rejected_seq(&mut self) -> u64 {
        self.next_rejected_seq += 1;
        self.next_rejected_seq
    }

    /// A hostile client request (from the hostile client, with an integer
    /// msg_id) that must get an `error` reply.
    fn hostile_request(&mut self, why: &'static str, mut body: Map<String, Value>) -> Vec<u8> {
        let msg_id = self.msg_id(HOSTILE_CLIENT);
        body.insert("msg_id".into(), msg_id.into());
        self.expected.errors.insert(msg_id, why);
        self.line(HOSTILE_CLIENT, Value::Object(body))
    }

    /// A syntactically valid broadcast line from the hostile client whose
    /// value must not be kept (the line gets broken afterwards).
    fn broadcast_to_break(&mut self, why: &'static str) -> Vec<u8> {
        let value = self.rejected_value(why);
        let msg_id = self.msg_id(HOSTILE_CLIENT);
        self.line(
            HOSTILE_CLIENT,
            json!({"type":"broadcast","msg_id":msg_id,"message":value}),
        )
    }

    /// A gossip body as the peer sends it, without items.
    fn gossip_body(&self, now: u64) -> Map<String, Value> {
        let mut have = Map::new();
        if self.peer_seq > 0 {
            have.insert(self.peer_origin.clone(), self.peer_seq.into());
        }
        if self.relayed_seq > 0 {
            have.insert(self.relayed_origin.clone(), self.relayed_seq.into());
        }
        let mut body = Map::new();
        body.insert("type".into(), "gossip".into());
        body.insert("items".into(), json!([]));
        body.insert("have".into(), Value::Object(have));
        body.insert("ts".into(), now.into());
        body.insert("inc".into(), self.peer_inc.into());
        body
    }

    /// A gossip body with one item that must not be kept: the peer's
    /// origin, a fresh far seq, a rejected value.
    fn gossip_with_rejected_item(&mut self, why: &'static str, now: u64) -> Map<String, Value> {
        let value = self.rejected_value(why);
        let seq = self.rejected_seq();
        let mut body = self.gossip_body(now);
        body.insert("items".into(), json!([[self.peer_origin, seq, value]]));
        body
    }

    fn valid_broadcast(&mut self) -> Vec<u8> {
        let client = *self.rng.pick(&VALID_CLIENTS);
        let msg_id = self.msg_id(client);
        let value = self.next_broadcast_value;
        self.next_broadcast_value += 1;
        self.expected
            .broadcasts
            .insert((client.to_string(), msg_id), value);
        self.line(
            client,
            json!({"type":"broadcast","msg_id":msg_id,"message":value}),
        )
    }

    fn valid_read(&mut self) -> Vec<u8> {
        let client = *self.rng.pick(&VALID_CLIENTS);
        let msg_id = self.msg_id(client);
        self.expected.reads.insert((client.to_string(), msg_id));
        self.line(client, json!({"type":"read","msg_id":msg_id}))
    }

    /// Valid gossip from the peer: its next items, sometimes one of another
    /// member's it relays, sometimes a resend of its previous item.
    fn valid_gossip(&mut self, now: u64) -> Vec<u8> {
        let mut items = Vec::new();
        if self.peer_seq > 0 && self.rng.one_in(8) {
            let value = FIRST_GOSSIP_VALUE + self.peer_seq as i64 - 1;
            items.push(json!([self.peer_origin, self.peer_seq, value]));
        }
        for _ in 0..1 + self.rng.below(3) {
            self.peer_seq += 1;
            let value = self.next_gossip_value;
            self.next_gossip_value += 1;
            debug_assert_eq!(value, FIRST_GOSSIP_VALUE + self.peer_seq as i64 - 1);
            self.expected.gossip_values.insert(value);
            items.push(json!([self.peer_origin, self.peer_seq, value]));
        }
        if self.rng.one_in(3) {
            self.relayed_seq += 1;
            // Relayed values live above the peer's own range.
            let value = FIRST_GOSSIP_VALUE + 2_000_000 + self.relayed_seq as i64;
            self.expected.gossip_values.insert(value);
            items.push(json!([self.relayed_origin, self.relayed_seq, value]));
        }
        let mut body = self.gossip_body(now);
        body.insert("items".into(), Value::Array(items));
        self.line(self.peer, Value::Object(body))
    }

    /// One line of the stream.
    fn next_line(&mut self, now: u64) -> Vec<u8> {
        match self.rng.below(100) {
            0..=24 => self.valid_broadcast(),
            25..=31 => self.valid_read(),
            32..=39 => self.valid_gossip(now),
            _ => self.hostile_line(now),
        }
    }

    fn hostile_line(&mut self, now: u64) -> Vec<u8> {
        let me = self.me;
        let peer = self.peer;
        match self.rng.below(32) {
            0 => {
                // Random bytes, mostly not UTF-8; no newline inside.
                let len = self.rng.below(300) as usize;
                (0..len)
                    .map(|_| self.rng.next() as u8)
                    .map(|b| if b == b'\n' { b'x' } else { b })
                    .collect()
            }
            1 => {
                // A valid broadcast but for one non-UTF-8 byte in a string.
                let mut line = self.broadcast_to_break("a line that is not UTF-8");
                let at = line.len() - 2;
                line.splice(at..at, *b",\"pad\":\"\xff\xfe\"");
                line
            }
            2 => {
                // A valid broadcast cut short.
                let mut line = self.broadcast_to_break("truncated JSON");
                let keep = 1 + self.rng.below(line.len() as u64 - 1) as usize;
                line.truncate(keep);
                line
            }
            3 => {
                let not_an_object = [
                    "[1,2]",
                    "\"broadcast\"",
                    "42",
                    "-1.5e300",
                    "null",
                    "true",
                    "[]",
                    "{}",
                    "",
                    " ",
                    "\r",
                    "\0",
                ];
                self.rng.pick(&not_an_object).as_bytes().to_vec()
            }
            4 => {
                // The envelope is fine, the body is not an object.
                let body = self
                    .rng
                    .pick(&[json!([1, 2]), json!("broadcast"), json!(7), json!(true)])
                    .clone();
                self.line(HOSTILE_CLIENT, body)
            }
            5 => {
                // The envelope itself is wrongly typed.
                let value = self.rejected_value("envelope with a non-string src or dest");
                let msg_id = self.msg_id(HOSTILE_CLIENT);
                let body = json!({"type":"broadcast","msg_id":msg_id,"message":value});
                let envelope = match self.rng.below(3) {
                    0 => json!({"src": 6, "dest": me, "body": body}),
                    1 => json!({"src": HOSTILE_CLIENT, "dest": null, "body": body}),
                    _ => json!({"src": [HOSTILE_CLIENT], "dest": me, "body": body}),
                };
                envelope.to_string().into_bytes()
            }
            6 => {
                let kind = self
                    .rng
                    .pick(&[json!(5), json!(null), json!(["read"])])
                    .clone();
                self.hostile_request("a non-string type", as_map(json!({ "type": kind })))
            }
            7 => {
                // A broadcast whose message is no i64.
                let value = self.rejected_value("broadcast message that is no i64");
                let message = match self.rng.below(9) {
                    0 => json!(value as f64 + 0.5),
                    1 => Value::from(value as f64),
                    2 => json!(value.to_string()),
                    3 => json!([value]),
                    4 => json!({ "value": value }),
                    5 => json!(9_223_372_036_854_775_808u64),
                    6 => json!(u64::MAX),
                    7 => json!(1e30),
                    _ => json!(null),
                };
                let body = json!({"type":"broadcast","message":message});
                self.hostile_request("broadcast message that is no i64", as_map(body))
            }
            8 => {
                // A well-formed broadcast with a msg_id that is no u64: it
                // cannot be answered and must not be taken.
                let value = self.rejected_value("broadcast with a msg_id that is no u64");
                let msg_id = self
                    .rng
                    .pick(&[
                        json!(-1),
                        json!(1.5),
                        json!(i64::MIN),
                        json!(-0.0),
                        json!("7"),
                        json!(null),
                    ])
                    .clone();
                let body = json!({"type":"broadcast","msg_id":msg_id,"message":value});
                if self.rng.one_in(2) {
                    self.line(HOSTILE_CLIENT, body)
                } else {
                    // 2^64 does not fit a u64; serde_json takes it as a float.
                    String::from_utf8(self.line(HOSTILE_CLIENT, body))
                        .unwrap()
                        .replacen(
                            &format!("\"msg_id\":{msg_id}"),
                            "\"msg_id\":18446744073709551616",
                            1,
                        )
                        .into_bytes()
                }
            }
            9 => {
                let msg_id = self.rng.pick(&[json!(-5), json!(2.5), json!("x")]).clone();
                self.line(HOSTILE_CLIENT, json!({"type":"read","msg_id":msg_id}))
            }
            10 => {
                let kind = *self.rng.pick(&[
                    "cas",
                    "txn",
                    "",
                    "BROADCAST",
                    "gossip_ok",
                    "broadcast_ok",
                    "read_ok",
                    "init_ok",
                    "echo",
                    "error",
                ]);
                self.hostile_request("an unknown type", as_map(json!({ "type": kind })))
            }
            11 => {
                let body = json!({"type":"broadcast"});
                self.hostile_request("broadcast without message", as_map(body))
            }
            12 => {
                // Nesting far beyond any parser's recursion limit that still
                // fits a line.
                let depth = 500 + self.rng.below(1400) as usize;
                let nested = "[".repeat(depth) + &"]".repeat(depth);
                if self.rng.one_in(2) {
                    nested.into_bytes()
                } else {
                    // msg_id 0: the hostile client's counter never uses it.
                    let body = format!(r#"{{"type":"broadcast","msg_id":0,"message":{nested}}}"#);
                    format!(r#"{{"src":"{HOSTILE_CLIENT}","dest":"{me}","body":{body}}}"#)
                        .into_bytes()
                }
            }
            13 => {
                let depth = 200 + self.rng.below(400) as usize;
                let nested = r#"{"a":"#.repeat(depth) + "1" + &"}".repeat(depth);
                let body =
                    format!(r#"{{"type":"gossip","items":[],"have":{nested},"ts":1,"inc":1}}"#);
                format!(r#"{{"src":"{peer}","dest":"{me}","body":{body}}}"#).into_bytes()
            }
            14 => {
                // A valid broadcast, but over-long.
                let mut line = self.broadcast_to_break("a line longer than --max-line-bytes");
                let pad = MAX_LINE_BYTES + self.rng.below(3 * MAX_LINE_BYTES as u64) as usize;
                let at = line.len() - 2;
                let padding = format!(",\"pad\":\"{}\"", "p".repeat(pad));
                line.splice(at..at, padding.into_bytes());
                line
            }
            15 => {
                // Gossip that would be valid from the peer, but over-long.
                let mut body =
                    self.gossip_with_rejected_item("gossip longer than --max-line-bytes", now);
                let pad: Vec<u64> = (1..=MAX_LINE_BYTES as u64 / 2).collect();
                body.insert("pad".into(), json!(pad));
                self.line(peer, Value::Object(body))
            }
            16 => {
                let src = *self.rng.pick(&["c7", "n99", "", "N1", "n1 "]);
                let body = self.gossip_with_rejected_item("gossip from a non-member", now);
                self.line(src, Value::Object(body))
            }
            17 => {
                let body = self.gossip_with_rejected_item("gossip from the node itself", now);
                self.line(me, Value::Object(body))
            }
            18 => {
                // Items whose origin is no "<member>@<digits>".
                let origin = *self.rng.pick(&[
                    "n99@5", "zz", "", "n1", "n1@", "n1@x", "@5", "n1@-3", "n1@5@6", "c7@5",
                    "n1@ 5",
                ]);
                let value = self.rejected_value("gossip item with a bad origin");
                let seq = self.rejected_seq();
                let mut body = self.gossip_body(now);
                body.insert("items".into(), json!([[origin, seq, value]]));
                self.line(peer, Value::Object(body))
            }
            19 => {
                // Item seqs outside 1..=MAX_SEQ.
                let seq = *self
                    .rng
                    .pick(&[0, u64::MAX, u64::MAX - 1, MAX_SEQ + 1, 1 << 63]);
                let value = self.rejected_value("gossip item with a seq outside 1..=2^40");
                let mut body = self.gossip_body(now);
                body.insert("items".into(), json!([[self.peer_origin, seq, value]]));
                self.line(peer, Value::Object(body))
            }
            20 => {
                // `have` beyond MAX_SEQ.
                let mut body =
                    self.gossip_with_rejected_item("gossip with `have` beyond 2^40", now);
                let high = *self.rng.pick(&[u64::MAX, u64::MAX - 1, MAX_SEQ + 1]);
                let origin = self
                    .rng
                    .pick(&[&self.peer_origin, &self.relayed_origin])
                    .to_string();
                body.insert("have".into(), json!({ origin: high }));
                self.line(peer, Value::Object(body))
            }
            21 => {
                // `extra` with seqs outside 1..=MAX_SEQ.
                let mut body =
                    self.gossip_with_rejected_item("gossip with `extra` outside 1..=2^40", now);
                let extra = self
                    .rng
                    .pick(&[
                        json!([u64::MAX]),
                        json!([0]),
                        json!([5, MAX_SEQ + 1]),
                        json!([u64::MAX - 1, u64::MAX]),
                    ])
                    .clone();
                body.insert("extra".into(), json!({ self.peer_origin.clone(): extra }));
                self.line(peer, Value::Object(body))
            }
            22 => {
                // Big `extra` sets (as big as a line allows), at, below and
                // next to `have`, and empty ones. No items: the plan bounds
                // extras per message without saying where, so these may be
                // taken or dropped.
                let mut body = self.gossip_body(now);
                let high = self.peer_seq;
                let extra = match self.rng.below(4) {
                    0 => json!((1..=900u64).collect::<Vec<_>>()),
                    1 => json!((1..=250u64).map(|s| MAX_SEQ - s).collect::<Vec<_>>()),
                    2 => json!([high.max(1), high + 1, high + 2]),
                    _ => json!([]),
                };
                body.insert("extra".into(), json!({ self.peer_origin.clone(): extra }));
                self.line(peer, Value::Object(body))
            }
            23 => {
                // Negative numbers where a u64 belongs.
                let mut body = self.gossip_with_rejected_item("gossip with a negative u64", now);
                match self.rng.below(5) {
                    0 => {
                        let value = self.rejected_value("gossip with a negative u64");
                        body.insert("items".into(), json!([[self.peer_origin, -1, value]]));
                    }
                    1 => {
                        body.insert("have".into(), json!({ self.peer_origin.clone(): -3 }));
                    }
                    2 => {
                        body.insert("extra".into(), json!({ self.peer_origin.clone(): [-1] }));
                    }
                    3 => {
                        body.insert("ts".into(), json!(-1));
                    }
                    _ => {
                        body.insert("inc".into(), json!(-1));
                    }
                }
                self.line(peer, Value::Object(body))
            }
            24 => {
                let mut body = self.gossip_with_rejected_item("gossip without `inc`", now);
                body.remove("inc");
                self.line(peer, Value::Object(body))
            }
            25 => {
                let mut body =
                    self.gossip_with_rejected_item("gossip with a non-integer `inc`", now);
                let inc = self
                    .rng
                    .pick(&[json!("1"), json!(1.5), json!(null)])
                    .clone();
                body.insert("inc".into(), inc);
                self.line(peer, Value::Object(body))
            }
            26 => {
                // Send instants and round announcements with odd intervals
                // or instants. No items: whether such a message is dropped
                // whole or only its timing is ignored is the node's choice.
                let mut body = self.gossip_body(now);
                let (key, timing) = match self.rng.below(8) {
                    0 => ("round", json!([0, now])),
                    1 => ("round", json!([u64::MAX, now + 1000])),
                    2 => ("round", json!([360, 0])),
                    3 => ("round", json!([360, u64::MAX])),
                    4 => ("round", json!([1, now - self.rng.below(1_000_000)])),
                    5 => ("round", json!([u64::MAX, u64::MAX])),
                    6 => ("ts", json!(u64::MAX)),
                    _ => ("ts", json!(0)),
                };
                body.insert(key.into(), timing);
                self.line(peer, Value::Object(body))
            }
            27 => {
                // Fields of the wrong shape.
                let mut body =
                    self.gossip_with_rejected_item("gossip with a wrongly typed field", now);
                let value = self.rejected_value("gossip with a wrongly typed field");
                match self.rng.below(6) {
                    0 => {
                        body.insert("items".into(), json!({ "a": [self.peer_origin, 1, value] }));
                    }
                    1 => {
                        body.insert("items".into(), json!([[self.peer_origin, 1, value, 4]]));
                    }
                    2 => {
                        body.insert("items".into(), json!([[self.peer_origin, value]]));
                    }
                    3 => {
                        body.insert("have".into(), json!([self.peer_origin, 1]));
                    }
                    4 => {
                        body.insert("ts".into(), json!("now"));
                    }
                    _ => {
                        body.insert("round".into(), json!([360]));
                    }
                }
                self.line(peer, Value::Object(body))
            }
            28 => {
                // Item values that are no i64.
                let mut body = self.gossip_body(now);
                let seq = self.rejected_seq();
                let value = self
                    .rng
                    .pick(&[
                        json!(1.5),
                        json!("12"),
                        json!(9_223_372_036_854_775_808u64),
                        json!(u64::MAX),
                        json!(null),
                    ])
                    .clone();
                body.insert("items".into(), json!([[self.peer_origin, seq, value]]));
                self.line(peer, Value::Object(body))
            }
            29 => {
                // A second init as another node, and malformed ones.
                let body = match self.rng.below(3) {
                    0 => json!({"type":"init","node_id":"n3","node_ids":["n3","n99"]}),
                    1 => json!({"type":"init","node_id":me,"node_ids":"n0"}),
                    _ => json!({"type":"init","node_id":5,"node_ids":[]}),
                };
                self.hostile_request("a second or malformed init", as_map(body))
            }
            30 if self.rng.one_in(2) => {
                let body = json!({"type":"topology","topology":{"n0":"n1"}});
                self.hostile_request("a malformed topology", as_map(body))
            }
            30 => {
                // Hub notices: malformed, out of bounds, from a stranger,
                // and valid ones (which move a plain star's hub, and no
                // value with it).
                let (src, term) = self
                    .rng
                    .pick(&[
                        (peer, json!("1")),
                        (peer, json!(-1)),
                        (peer, json!(u64::MAX)),
                        (peer, json!((1u64 << 40) + 1)),
                        ("n99", json!(3)),
                        (peer, json!(1)),
                        (peer, json!(7)),
                    ])
                    .clone();
                self.line(src, json!({"type":"hub","term":term}))
            }
            _ => {
                // The hostile client's requests with the type missing.
                let value = self.rejected_value("a request without type");
                self.hostile_request(
                    "a request without type",
                    as_map(json!({ "message": value })),
                )
            }
        }
    }
}

fn as_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The node process with a thread feeding its stdin (so that a node that
/// stops reading cannot hang the test) and threads draining its output.
struct Running {
    child: Child,
    to_stdin: Option<mpsc::Sender<Vec<u8>>>,
    from_stdout: mpsc::Receiver<Vec<u8>>,
    stdout_reader: std::thread::JoinHandle<()>,
    stderr_reader: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(NODE)
            .args(args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node");
        let mut stdin = child.stdin.take().unwrap();
        let (to_stdin, lines) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for line in lines {
                // A write fails once the node is gone; the checks report it.
                if stdin.write_all(&line).is_err() || stdin.write_all(b"\n").is_err() {
                    return;
                }
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, from_stdout) = mpsc::channel();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        });
        Running {
            child,
            to_stdin: Some(to_stdin),
            from_stdout,
            stdout_reader,
            stderr_reader,
        }
    }

    fn send(&self, line: Vec<u8>) {
        // The writer thread ends early only when the node is gone.
        let _ = self.to_stdin.as_ref().unwrap().send(line);
    }
}

/// Everything the node wrote and how it ended.
struct Outcome {
    stdout: Vec<Vec<u8>>,
    stderr: String,
    /// None: it did not exit within the deadline and was killed.
    exit: Option<std::process::ExitStatus>,
}

/// Feeds `init`, `topology`, the fuzz stream and a final read; waits for
/// that read's reply, closes stdin and waits for the exit.
fn run(scenario: &Scenario, seed: u64) -> (Outcome, Expected, u64) {
    let mut args = vec!["--max-line-bytes".to_string(), MAX_LINE_BYTES.to_string()];
    args.extend(scenario.args.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = Running::start(&args);
    let mut fuzzer = Fuzzer::new(seed, scenario);
    node.send(fuzzer.line(
        "c0",
        json!({"type":"init","msg_id":1,"node_id":scenario.me,"node_ids":MEMBERS}),
    ));
    let ring: BTreeMap<&str, Vec<&str>> = (0..MEMBERS.len())
        .map(|i| (MEMBERS[i], vec![MEMBERS[(i + 1) % MEMBERS.len()]]))
        .collect();
    node.send(fuzzer.line("c0", json!({"type":"topology","msg_id":2,"topology":ring})));
    for (k, value) in EDGE_VALUES.iter().enumerate() {
        let msg_id = [0, u64::MAX, 1, u64::MAX - 1][k];
        fuzzer
            .expected
            .broadcasts
            .insert(("c5".into(), msg_id), *value);
        node.send(fuzzer.line(
            "c5",
            json!({"type":"broadcast","msg_id":msg_id,"message":value}),
        ));
    }
    let mut stdout = Vec::new();
    for k in 0..LINES {
        node.send(fuzzer.next_line(now_ms()));
        // Spread the stream over about a second and a half, so that the
        // node's rounds and timers run while it arrives.
        if k % 8 == 7 {
            std::thread::sleep(Duration::from_millis(3));
            stdout.extend(node.from_stdout.try_iter());
        }
    }
    // A pause before the final read, so that it follows everything even if
    // the node checks gossip off the reading path.
    std::thread::sleep(Duration::from_millis(200));
    let final_read = fuzzer.msg_id("c1");
    fuzzer.expected.reads.insert(("c1".into(), final_read));
    node.send(fuzzer.line("c1", json!({"type":"read","msg_id":final_read})));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok(line) = node.from_stdout.recv_timeout(Duration::from_millis(50)) else {
            if node.child.try_wait().ok().flatten().is_some() {
                break;
            }
            continue;
        };
        let is_final = reply_key(&line) == Some(("c1".into(), final_read));
        stdout.push(line);
        if is_final {
            break;
        }
    }
    node.to_stdin = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = node.child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = node.child.kill();
            let _ = node.child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    node.stdout_reader.join().unwrap();
    stdout.extend(node.from_stdout.try_iter());
    let stderr = node.stderr_reader.join().unwrap();
    (
        Outcome {
            stdout,
            stderr,
            exit,
        },
        fuzzer.expected,
        final_read,
    )
}

/// (dest, in_reply_to) of a reply line.
fn reply_key(line: &[u8]) -> Option<(String, u64)> {
    let msg: Value = serde_json::from_slice(line).ok()?;
    Some((
        msg["dest"].as_str()?.to_string(),
        msg["body"]["in_reply_to"].as_u64()?,
    ))
}

/// Everything wrong with the outcome, one line per kind of problem.
fn problems(
    scenario: &Scenario,
    outcome: &Outcome,
    expected: &Expected,
    final_read: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let panics: Vec<&str> = outcome
        .stderr
        .lines()
        .filter(|l| l.contains("panicked"))
        .take(3)
        .collect();
    match outcome.exit {
        None => problems.push("did not exit within 10 s of the end of its input".into()),
        Some(status) if !status.success() => {
            problems.push(format!("exited with {status}; panics: {panics:?}"))
        }
        Some(_) if !panics.is_empty() => problems.push(format!("panicked: {panics:?}")),
        Some(_) => {}
    }

    let clients: BTreeSet<String> = (0..=6).map(|i| format!("c{i}")).collect();
    let peers: BTreeSet<&str> = MEMBERS
        .iter()
        .copied()
        .filter(|m| *m != scenario.me)
        .collect();
    let mut malformed = Vec::new();
    let mut replies: BTreeMap<(String, u64), Value> = BTreeMap::new();
    let mut duplicates = Vec::new();
    let mut strays = Vec::new();
    for line in &outcome.stdout {
        let text = String::from_utf8_lossy(line);
        let msg: Value = match serde_json::from_slice(line) {
            Ok(msg) => msg,
            Err(e) => {
                malformed.push(format!("{e}: {}", excerpt(&text)));
                continue;
            }
        };
        let well_formed = msg.as_object().is_some_and(|o| o.len() == 3)
            && msg["src"] == scenario.me
            && msg["dest"].is_string()
            && msg["body"]["type"].is_string();
        if !well_formed {
            malformed.push(excerpt(&text));
            continue;
        }
        let dest = msg["dest"].as_str().unwrap();
        if peers.contains(dest) {
            continue;
        }
        if !clients.contains(dest) {
            strays.push(excerpt(&text));
            continue;
        }
        let Some(irt) = msg["body"]["in_reply_to"].as_u64() else {
            strays.push(excerpt(&text));
            continue;
        };
        if replies
            .insert((dest.to_string(), irt), msg["body"].clone())
            .is_some()
        {
            duplicates.push(excerpt(&text));
        }
    }
    if !malformed.is_empty() {
        problems.push(format!(
            "{} output lines are not {{src: {}, dest, body: {{type, ..}}}}, e.g. {:?}",
            malformed.len(),
            scenario.me,
            &malformed[..malformed.len().min(3)]
        ));
    }
    if !strays.is_empty() {
        problems.push(format!(
            "{} output lines go to neither a client nor a member, or are no reply, e.g. {:?}",
            strays.len(),
            &strays[..strays.len().min(3)]
        ));
    }
    if !duplicates.is_empty() {
        problems.push(format!(
            "{} requests answered twice, e.g. {:?}",
            duplicates.len(),
            &duplicates[..duplicates.len().min(3)]
        ));
    }

    let reply_type = |dest: &str, irt: u64| {
        replies
            .get(&(dest.to_string(), irt))
            .map(|b| b["type"].as_str().unwrap_or("?").to_string())
    };
    for (key, want) in [(("c0", 1), "init_ok"), (("c0", 2), "topology_ok")] {
        if reply_type(key.0, key.1).as_deref() != Some(want) {
            problems.push(format!(
                "no {want}: {:?}",
                replies.get(&(key.0.into(), key.1))
            ));
        }
    }
    let unacknowledged: Vec<_> = expected
        .broadcasts
        .keys()
        .filter(|(c, id)| reply_type(c, *id).as_deref() != Some("broadcast_ok"))
        .collect();
    if !unacknowledged.is_empty() {
        problems.push(format!(
            "{} of {} valid broadcasts got no broadcast_ok, e.g. {:?}",
            unacknowledged.len(),
            expected.broadcasts.len(),
            &unacknowledged[..unacknowledged.len().min(5)]
        ));
    }
    let unread: Vec<_> = expected
        .reads
        .iter()
        .filter(|(c, id)| reply_type(c, *id).as_deref() != Some("read_ok"))
        .collect();
    if !unread.is_empty() {
        problems.push(format!(
            "{} of {} valid reads got no read_ok, e.g. {:?}",
            unread.len(),
            expected.reads.len(),
            &unread[..unread.len().min(5)]
        ));
    }
    let unanswered_errors: Vec<_> = expected
        .errors
        .iter()
        .filter(|(id, _)| reply_type(HOSTILE_CLIENT, **id).as_deref() != Some("error"))
        .map(|(id, why)| format!("{why} (msg_id {id}): {:?}", reply_type(HOSTILE_CLIENT, *id)))
        .collect();
    if !unanswered_errors.is_empty() {
        problems.push(format!(
            "{} bad requests got no error reply, e.g. {:?}",
            unanswered_errors.len(),
            &unanswered_errors[..unanswered_errors.len().min(5)]
        ));
    }
    let hostile_ok: Vec<_> = replies
        .iter()
        .filter(|((dest, _), body)| dest == HOSTILE_CLIENT && body["type"] != "error")
        .map(|((_, irt), body)| format!("{irt}: {body}"))
        .collect();
    if !hostile_ok.is_empty() {
        problems.push(format!(
            "{} bad requests were answered as if valid, e.g. {:?}",
            hostile_ok.len(),
            &hostile_ok[..hostile_ok.len().min(5)]
        ));
    }

    let Some(read) = replies.get(&("c1".to_string(), final_read)) else {
        problems.push("no reply to the final read".into());
        return problems;
    };
    let got: BTreeSet<i64> = read["messages"]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let acknowledged: BTreeSet<i64> = expected
        .broadcasts
        .iter()
        .filter(|((c, id), _)| reply_type(c, *id).as_deref() == Some("broadcast_ok"))
        .map(|(_, v)| *v)
        .collect();
    let lost: Vec<_> = acknowledged.difference(&got).collect();
    if !lost.is_empty() {
        problems.push(format!(
            "final read lacks {} acknowledged values, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    let lost_gossip: Vec<_> = expected.gossip_values.difference(&got).collect();
    if !lost_gossip.is_empty() {
        problems.push(format!(
            "final read lacks {} of {} values from valid gossip of {}, e.g. {:?}",
            lost_gossip.len(),
            expected.gossip_values.len(),
            scenario.peer,
            &lost_gossip[..lost_gossip.len().min(5)]
        ));
    }
    let mut kept_rejected: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unknown = Vec::new();
    for value in &got {
        if acknowledged.contains(value) || expected.gossip_values.contains(value) {
            continue;
        }
        match expected.rejected.get(value) {
            Some(why) => *kept_rejected.entry(why).or_default() += 1,
            None => unknown.push(*value),
        }
    }
    if !kept_rejected.is_empty() {
        problems.push(format!(
            "final read holds values that came only in input to reject \
             (input kind: count): {kept_rejected:?}"
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "final read holds {} values never sent, e.g. {:?}",
            unknown.len(),
            &unknown[..unknown.len().min(5)]
        ));
    }
    problems
}

fn excerpt(text: &str) -> String {
    text.chars().take(160).collect()
}

fn seed() -> u64 {
    std::env::var("BROADCAST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1202)
}

fn fuzz(scenario: &Scenario) {
    let base = seed();
    // Each scenario its own stream.
    let seed = base ^ scenario.me.bytes().map(u64::from).sum::<u64>();
    let (outcome, expected, final_read) = run(scenario, seed);
    let problems = problems(scenario, &outcome, &expected, final_read);
    assert!(
        problems.is_empty(),
        "{} (BROADCAST_FUZZ_SEED={base}): {} problems:\n  {}",
        scenario.me,
        problems.len(),
        problems.join("\n  ")
    );
}

/// The star hub, which takes gossip from every leaf.
#[test]
fn hub_survives_hostile_input_and_keeps_exactly_the_valid_values() {
    fuzz(&Scenario {
        me: "n0",
        peer: "n1",
        relayed: "n3",
        args: &["--interval-ms", "100"],
    });
}

/// An auto-tuned star leaf, which follows the round its hub announces.
#[test]
fn auto_tuned_leaf_survives_hostile_input_and_keeps_exactly_the_valid_values() {
    fuzz(&Scenario {
        me: "n2",
        peer: "n0",
        relayed: "n3",
        args: &["--target-median-ms", "400", "--target-max-ms", "600"],
    });
}
