//! Maelstrom's wire protocol: the envelope, the typed request bodies a node
//! accepts, the closed reply bodies it writes, error codes, and the
//! classification of bad input.

use crate::digest::{Digest, Item};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Maelstrom error code for a request that timed out: indefinite (the
/// operation may or may not have taken effect).
pub const TIMEOUT: u16 = 0;
/// Maelstrom error code for a request type the node does not handle.
pub const NOT_SUPPORTED: u16 = 10;
/// Maelstrom error code for a request the node cannot serve yet.
pub const TEMPORARILY_UNAVAILABLE: u16 = 11;
/// Maelstrom error code for a request with missing or wrongly typed fields.
pub const MALFORMED_REQUEST: u16 = 12;

/// One parsed input line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Envelope {
    pub src: String,
    pub dest: String,
    pub body: Request,
}

/// Every body type the node accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Init(InitBody),
    Topology(TopologyBody),
    Broadcast(BroadcastBody),
    Read(ReadBody),
    Gossip(Gossip),
    Hub(HubBody),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InitBody {
    pub msg_id: u64,
    pub node_id: String,
    pub node_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TopologyBody {
    pub msg_id: u64,
    pub topology: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BroadcastBody {
    pub msg_id: u64,
    /// Values are JSON integers that fit an i64; anything else is malformed.
    pub message: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReadBody {
    pub msg_id: u64,
}

/// A node's word that the star's hub has moved on: the hub term it
/// follows (see `topology`), sent to a peer that still gossips with an
/// older one (a restarted node). Never replied to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubBody {
    pub term: u64,
}

/// The one node-to-node body: items plus the sender's digest, which doubles
/// as the acknowledgement of everything it covers. Never replied to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gossip {
    pub items: Vec<Item>,
    #[serde(flatten)]
    pub digest: Digest,
    /// The sender's clock (ms) when it sent this message.
    pub ts: u64,
    /// The sender's incarnation (its process start, ms): a new one tells
    /// the receiver that the sender restarted and holds only what its
    /// digest shows.
    pub inc: u64,
    /// The round a star hub under auto-tuning asks its leaves to use;
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<RoundChange>,
    /// The sender's hub term: how many times the star's hub has been
    /// found silent and replaced (absent while 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub term: u64,
    /// Which of how many copies of one batch this is (`[i, k]`, 1 ≤ i ≤ k),
    /// so that the receiver can count the copies lost on the way; absent
    /// for a batch sent once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyMark>,
    /// The share of the receiver's copies that the sender found lost on
    /// their way to it, in thousandths (see `link::loss`); absent while 0
    /// or unmeasured.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub loss: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Copy `.0` of `.1` of one batch. On the wire: `[i, k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyMark(pub u32, pub u32);

/// A round length (ms) that takes effect at a shared-clock instant (ms), so
/// that both ends of a link move to the new rounds at the same moment. On
/// the wire: `[interval, from]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundChange(pub u64, pub u64);

/// Where a reply goes: the requester, the node id it addressed, and the
/// request's msg_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub client: String,
    pub node: String,
    pub msg_id: u64,
    /// The last instant (clock ms) a reply is still in time: a client
    /// request is answered within [`client_reply_window_ms`] of being sent,
    /// or not at all ([`NO_DEADLINE`] for replies given at once).
    pub answer_by: u64,
}

/// [`ReplyTo::answer_by`] of a reply that goes at once.
pub const NO_DEADLINE: u64 = u64::MAX;

/// Maelstrom's timeout of a client's `broadcast` and `read` RPCs. A client
/// that times out is closed, and a later reply to it makes Maelstrom ignore
/// everything the node writes for the rest of the test.
pub const CLIENT_TIMEOUT_MS: u64 = 5_000;

/// How long after receiving a client request its reply is still in time:
/// the client's timeout less the request's and the reply's one-way delays
/// and half a second for late deliveries; at least 500 ms.
pub fn client_reply_window_ms(latency_hint_ms: u64) -> u64 {
    CLIENT_TIMEOUT_MS
        .saturating_sub(500 + 2 * latency_hint_ms)
        .max(500)
}

/// Every body the node writes. Reply bodies carry exactly the keys of
/// Maelstrom's closed schemas; the writer adds the `msg_id`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutBody {
    InitOk {
        in_reply_to: u64,
    },
    TopologyOk {
        in_reply_to: u64,
    },
    BroadcastOk {
        in_reply_to: u64,
    },
    ReadOk {
        messages: Vec<i64>,
        in_reply_to: u64,
    },
    Error {
        in_reply_to: u64,
        code: u16,
        text: String,
    },
    Gossip(Gossip),
    Hub(HubBody),
}

impl OutBody {
    /// Whether this body answers a request (and so gets a msg_id of its own).
    pub fn is_reply(&self) -> bool {
        !matches!(self, OutBody::Gossip(_) | OutBody::Hub(_))
    }
}

/// One output line: `{"src":..,"dest":..,"body":{..,"msg_id":..}}`.
#[derive(Serialize)]
struct WireOut<'a> {
    src: &'a str,
    dest: &'a str,
    body: WireBody<'a>,
}

#[derive(Serialize)]
struct WireBody<'a> {
    #[serde(flatten)]
    body: &'a OutBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_id: Option<u64>,
}

/// Serialises one output message as a JSON line without the newline.
pub fn encode_line(src: &str, dest: &str, body: &OutBody, msg_id: Option<u64>) -> String {
    let wire = WireOut {
        src,
        dest,
        body: WireBody { body, msg_id },
    };
    // Every field is a string, an integer or a container of those, so
    // serialisation cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Why an input line was not accepted. Variants that know the requester and a
/// msg_id can be answered with an `error` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadInput {
    /// Not JSON, not an object, no string `src`/`dest`, or a body that is
    /// neither an object nor null: nobody to answer.
    Unaddressable { reason: String },
    /// A `type` the node does not handle (code 10).
    UnknownType {
        kind: String,
        reply_to: Option<ReplyTo>,
    },
    /// A missing `type`, or a known type with missing or wrongly typed fields
    /// (code 12).
    Malformed {
        reason: String,
        reply_to: Option<ReplyTo>,
    },
}

impl BadInput {
    /// The error reply this bad input deserves, if it can be answered.
    pub fn error_reply(&self) -> Option<(ReplyTo, OutBody)> {
        let (reply_to, code, text) = match self {
            BadInput::Unaddressable { .. } => return None,
            BadInput::UnknownType { kind, reply_to } => (
                reply_to.as_ref()?,
                NOT_SUPPORTED,
                format!("unsupported message type {kind:?}"),
            ),
            BadInput::Malformed { reason, reply_to } => {
                (reply_to.as_ref()?, MALFORMED_REQUEST, reason.clone())
            }
        };
        Some((
            reply_to.clone(),
            OutBody::Error {
                in_reply_to: reply_to.msg_id,
                code,
                text,
            },
        ))
    }
}

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadInput::Unaddressable { reason } => write!(f, "unaddressable line: {reason}"),
            BadInput::UnknownType { kind, .. } => write!(f, "unsupported message type {kind:?}"),
            BadInput::Malformed { reason, .. } => write!(f, "malformed request: {reason}"),
        }
    }
}

/// Parses one input line. The common case is a single typed parse; only a
/// line that fails it is examined again to say precisely what is wrong and
/// whom to answer.
pub fn parse_line(line: &str) -> Result<Envelope, BadInput> {
    serde_json::from_str::<Envelope>(line).or_else(|_| diagnose(line))
}

fn diagnose(line: &str) -> Result<Envelope, BadInput> {
    let unaddressable = |reason: String| BadInput::Unaddressable { reason };
    let value: Value =
        serde_json::from_str(line).map_err(|e| unaddressable(format!("not JSON ({e})")))?;
    let Value::Object(mut envelope) = value else {
        return Err(unaddressable("not a JSON object".into()));
    };
    let mut take_string = |key: &str| match envelope.remove(key) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(unaddressable(format!("missing or non-string {key:?}"))),
    };
    let src = take_string("src")?;
    let dest = take_string("dest")?;
    let body = match envelope.remove("body") {
        Some(Value::Object(map)) => map,
        Some(Value::Null) | None => Map::new(),
        Some(other) => {
            return Err(unaddressable(format!(
                "body is not an object: {}",
                json_kind(&other)
            )))
        }
    };
    let reply_to = body
        .get("msg_id")
        .and_then(Value::as_u64)
        .map(|msg_id| ReplyTo {
            answer_by: NO_DEADLINE,
            client: src.clone(),
            node: dest.clone(),
            msg_id,
        });
    let kind = match body.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => {
            return Err(BadInput::Malformed {
                reason: "missing or non-string \"type\"".into(),
                reply_to,
            })
        }
    };
    if !matches!(
        kind.as_str(),
        "init" | "topology" | "broadcast" | "read" | "gossip" | "hub"
    ) {
        return Err(BadInput::UnknownType { kind, reply_to });
    }
    match serde_json::from_value::<Request>(Value::Object(body)) {
        Ok(body) => Ok(Envelope { src, dest, body }),
        Err(e) => Err(BadInput::Malformed {
            reason: format!("bad {kind} body: {e}"),
            reply_to,
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(msg_id: u64) -> Option<ReplyTo> {
        Some(ReplyTo {
            answer_by: NO_DEADLINE,
            client: "c1".into(),
            node: "n0".into(),
            msg_id,
        })
    }

    #[test]
    fn a_client_reply_is_in_time_after_both_one_way_delays_with_room_to_spare() {
        assert_eq!(client_reply_window_ms(100), 4_300);
        assert_eq!(client_reply_window_ms(0), 4_500);
        assert_eq!(client_reply_window_ms(5_000), 500);
    }

    #[test]
    fn parses_every_request_type() {
        let cases = [
            (
                r#"{"id":3,"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0","n1"]}}"#,
                Request::Init(InitBody {
                    msg_id: 1,
                    node_id: "n0".into(),
                    node_ids: vec!["n0".into(), "n1".into()],
                }),
            ),
            (
                r#"{"src":"c1","dest":"n0","body":{"type":"topology","msg_id":1,"topology":{"n0":["n1"],"n1":["n0"]}}}"#,
                Request::Topology(TopologyBody {
                    msg_id: 1,
                    topology: BTreeMap::from([
                        ("n0".into(), vec!["n1".into()]),
                        ("n1".into(), vec!["n0".into()]),
                    ]),
                }),
            ),
            (
                r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":2,"message":-5}}"#,
                Request::Broadcast(BroadcastBody {
                    msg_id: 2,
                    message: -5,
                }),
            ),
            (
                r#"{"src":"c1","dest":"n0","body":{"type":"read","msg_id":3}}"#,
                Request::Read(ReadBody { msg_id: 3 }),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).unwrap().body, want, "{line}");
        }
    }

    #[test]
    fn gossip_round_trips() {
        let mut digest = Digest::default();
        digest.insert("n0", 1);
        digest.insert("n3", 9);
        let gossip = Gossip {
            inc: 0,
            items: vec![Item::new("n0", 1, 42)],
            digest,
            ts: 1_700_000_000_123,
            round: None,
            term: 0,
            copy: None,
            loss: 0,
        };
        let line = encode_line("n1", "n2", &OutBody::Gossip(gossip.clone()), None);
        assert_eq!(
            line,
            r#"{"src":"n1","dest":"n2","body":{"type":"gossip","items":[["n0",1,42]],"have":{"n0":1},"extra":{"n3":[9]},"ts":1700000000123,"inc":0}}"#
        );
        let back = parse_line(&line).unwrap();
        assert_eq!(back.body, Request::Gossip(gossip));
    }

    #[test]
    fn a_marked_copy_and_a_loss_report_round_trip_and_are_absent_by_default() {
        let gossip = Gossip {
            inc: 3,
            items: vec![Item::new("n0", 1, 42)],
            digest: Digest::default(),
            ts: 9,
            round: None,
            term: 0,
            copy: Some(CopyMark(2, 3)),
            loss: 195,
        };
        let line = encode_line("n1", "n2", &OutBody::Gossip(gossip.clone()), None);
        assert!(line.contains(r#""copy":[2,3]"#), "{line}");
        assert!(line.contains(r#""loss":195"#), "{line}");
        assert_eq!(parse_line(&line).unwrap().body, Request::Gossip(gossip));
        let plain = r#"{"src":"n1","dest":"n2","body":{"type":"gossip","items":[],"have":{},"ts":1,"inc":0}}"#;
        let Request::Gossip(parsed) = parse_line(plain).unwrap().body else {
            panic!("gossip expected");
        };
        assert_eq!((parsed.copy, parsed.loss), (None, 0));
    }

    #[test]
    fn replies_have_exactly_the_schema_keys() {
        let cases = [
            (
                OutBody::InitOk { in_reply_to: 1 },
                r#"{"type":"init_ok","in_reply_to":1,"msg_id":7}"#,
            ),
            (
                OutBody::TopologyOk { in_reply_to: 1 },
                r#"{"type":"topology_ok","in_reply_to":1,"msg_id":7}"#,
            ),
            (
                OutBody::BroadcastOk { in_reply_to: 4 },
                r#"{"type":"broadcast_ok","in_reply_to":4,"msg_id":7}"#,
            ),
            (
                OutBody::ReadOk {
                    messages: vec![1, 2],
                    in_reply_to: 5,
                },
                r#"{"type":"read_ok","messages":[1,2],"in_reply_to":5,"msg_id":7}"#,
            ),
            (
                OutBody::Error {
                    in_reply_to: 6,
                    code: 12,
                    text: "x".into(),
                },
                r#"{"type":"error","in_reply_to":6,"code":12,"text":"x","msg_id":7}"#,
            ),
        ];
        for (body, want) in cases {
            let line = encode_line("n0", "c1", &body, Some(7));
            assert_eq!(line, format!(r#"{{"src":"n0","dest":"c1","body":{want}}}"#));
        }
    }

    #[test]
    fn classifies_bad_input() {
        let unaddressable = [
            "",
            "not json",
            "[1,2]",
            r#"{"dest":"n0","body":{"type":"read","msg_id":1}}"#,
            r#"{"src":7,"dest":"n0","body":{"type":"read","msg_id":1}}"#,
            r#"{"src":"c1","dest":"n0","body":[1]}"#,
        ];
        for line in unaddressable {
            assert!(
                matches!(parse_line(line), Err(BadInput::Unaddressable { .. })),
                "{line}"
            );
        }
        let bad = |line: &str| parse_line(line).unwrap_err();
        assert_eq!(
            bad(r#"{"src":"c1","dest":"n0","body":{"type":"cas","msg_id":4}}"#),
            BadInput::UnknownType {
                kind: "cas".into(),
                reply_to: reply_to(4)
            }
        );
        for (line, msg_id) in [
            (
                r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":5}}"#,
                Some(5),
            ),
            (
                r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":5,"message":1.5}}"#,
                Some(5),
            ),
            (
                r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":5,"message":9223372036854775808}}"#,
                Some(5),
            ),
            (
                r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":5,"message":"7"}}"#,
                Some(5),
            ),
            (r#"{"src":"c1","dest":"n0","body":{"msg_id":6}}"#, Some(6)),
            (r#"{"src":"c1","dest":"n0","body":null}"#, None),
            (r#"{"src":"c1","dest":"n0","body":{"type":"read"}}"#, None),
        ] {
            match bad(line) {
                BadInput::Malformed { reply_to: r, .. } => {
                    assert_eq!(r, msg_id.and_then(reply_to), "{line}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_replies_use_codes_10_and_12() {
        let unknown = BadInput::UnknownType {
            kind: "cas".into(),
            reply_to: reply_to(4),
        };
        let (to, body) = unknown.error_reply().unwrap();
        assert_eq!(to, reply_to(4).unwrap());
        assert!(matches!(
            body,
            OutBody::Error {
                code: 10,
                in_reply_to: 4,
                ..
            }
        ));
        let malformed = BadInput::Malformed {
            reason: "r".into(),
            reply_to: reply_to(5),
        };
        assert!(matches!(
            malformed.error_reply().unwrap().1,
            OutBody::Error {
                code: 12,
                in_reply_to: 5,
                ..
            }
        ));
        let no_id = BadInput::Malformed {
            reason: "r".into(),
            reply_to: None,
        };
        assert!(no_id.error_reply().is_none());
    }
}
