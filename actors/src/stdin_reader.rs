//! StdinReader: reads stdin as a stream of lines (never blocking the actix
//! thread), parses each, and routes every request to the actor that owns it.
//! Bad input gets one log line and, when it can be answered, an `error` reply.
//! Every request gets the deadline of its reply ([`ReplyTo::answer_by`]),
//! shortened by a stall it may have waited through ([`StallWatch`]).
//! At end of input it waits until the store and topology manager have
//! answered everything, then tells the writer to flush and stop.

use crate::clock::Clock;
use crate::messages::{
    ClientBroadcast, ClientRead, Drain, HeardTerm, InitRequest, Joined, Merge, Outbound, Shutdown,
    TopologyRequest,
};
use crate::protocol::{parse_line, ReplyTo, Request};
use crate::stall::{StallWatch, BEAT_MS};
use actix::prelude::*;
use bytes::BytesMut;
use std::io;
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead, LinesCodec, LinesCodecError};

/// One input line, or why it is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputLine {
    Text(String),
    TooLong,
    NotUtf8,
}

/// Newline-delimited lines of bounded length. Unlike a bare `LinesCodec`,
/// a too-long or non-UTF-8 line is an item, not a stream error (which would
/// end the stream).
pub struct InputLines(LinesCodec);

impl InputLines {
    pub fn new(max_line_bytes: usize) -> Self {
        InputLines(LinesCodec::new_with_max_length(max_line_bytes))
    }

    fn map(result: Result<Option<String>, LinesCodecError>) -> io::Result<Option<InputLine>> {
        match result {
            Ok(line) => Ok(line.map(InputLine::Text)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(InputLine::TooLong)),
            Err(LinesCodecError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(Some(InputLine::NotUtf8))
            }
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for InputLines {
    type Item = InputLine;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<InputLine>> {
        Self::map(self.0.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<InputLine>> {
        Self::map(self.0.decode_eof(buf))
    }
}

/// Where each kind of input goes.
pub struct Routes {
    pub init: Recipient<InitRequest>,
    /// The store learns the node id from `init` straight from the reader, so
    /// that every request read after `init` finds it set.
    pub joined: Recipient<Joined>,
    pub topology: Recipient<TopologyRequest>,
    pub broadcast: Recipient<ClientBroadcast>,
    pub read: Recipient<ClientRead>,
    /// Gossip from a peer (the store merges it, then hands it to the link).
    pub merge: Recipient<Merge>,
    /// The hub term of every peer message (gossip and hub notices).
    pub terms: Recipient<HeardTerm>,
    pub out: Recipient<Outbound>,
    /// Actors whose replies must be written before output closes.
    pub drain: Vec<Recipient<Drain>>,
    pub shutdown: Recipient<Shutdown>,
}

/// How the reader dates the deadlines of replies.
#[derive(Debug, Clone, Copy)]
pub struct ReplyDeadlines {
    pub clock: Clock,
    /// How long after a request is read its reply is still in time (see
    /// [`crate::protocol::client_reply_window_ms`]).
    pub window_ms: u64,
}

pub struct StdinReader<R: AsyncRead + Unpin + 'static> {
    input: Option<FramedRead<R, InputLines>>,
    routes: Routes,
    deadlines: ReplyDeadlines,
    stalls: StallWatch,
}

impl<R: AsyncRead + Unpin + 'static> StdinReader<R> {
    pub fn new(input: R, max_line_bytes: usize, routes: Routes, deadlines: ReplyDeadlines) -> Self {
        StdinReader {
            input: Some(FramedRead::new(input, InputLines::new(max_line_bytes))),
            routes,
            deadlines,
            stalls: StallWatch::new(deadlines.clock.now_ms()),
        }
    }

    fn route(&mut self, line: &str) {
        let envelope = match parse_line(line) {
            Ok(envelope) => envelope,
            Err(bad) => {
                log::warn!("bad input: {bad}; line: {}", excerpt(line));
                if let Some((to, body)) = bad.error_reply() {
                    self.routes.out.do_send(Outbound::reply(&to, body));
                }
                return;
            }
        };
        let now = self.deadlines.clock.now_ms();
        let answer_by = (now + self.deadlines.window_ms).saturating_sub(self.stalls.waited(now));
        let reply_to = |msg_id| ReplyTo {
            client: envelope.src.clone(),
            node: envelope.dest.clone(),
            msg_id,
            answer_by,
        };
        match envelope.body {
            Request::Init(b) => {
                self.routes.joined.do_send(Joined {
                    node_id: b.node_id.clone(),
                    node_ids: b.node_ids.clone(),
                });
                self.routes.init.do_send(InitRequest {
                    reply_to: reply_to(b.msg_id),
                    node_id: b.node_id,
                    node_ids: b.node_ids,
                })
            }
            Request::Topology(b) => self.routes.topology.do_send(TopologyRequest {
                reply_to: reply_to(b.msg_id),
                topology: b.topology,
            }),
            Request::Broadcast(b) => self.routes.broadcast.do_send(ClientBroadcast {
                reply_to: reply_to(b.msg_id),
                value: b.message,
            }),
            Request::Read(b) => self.routes.read.do_send(ClientRead {
                reply_to: reply_to(b.msg_id),
            }),
            Request::Gossip(gossip) => {
                self.routes.terms.do_send(HeardTerm {
                    from: envelope.src.clone(),
                    term: gossip.term,
                });
                self.routes.merge.do_send(Merge {
                    from: envelope.src,
                    gossip,
                })
            }
            Request::Hub(hub) => self.routes.terms.do_send(HeardTerm {
                from: envelope.src,
                term: hub.term,
            }),
        }
    }
}

/// The start of a line for a log message (at most 200 bytes).
fn excerpt(line: &str) -> &str {
    let mut end = line.len().min(200);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

impl<R: AsyncRead + Unpin + 'static> Actor for StdinReader<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(input) = self.input.take() {
            ctx.add_stream(input);
        }
        ctx.run_interval(Duration::from_millis(BEAT_MS), |act, _ctx| {
            act.stalls.beat(act.deadlines.clock.now_ms())
        });
    }
}

impl<R: AsyncRead + Unpin + 'static> StreamHandler<io::Result<InputLine>> for StdinReader<R> {
    /// Routes one line; logs lines that are not lines.
    fn handle(&mut self, item: io::Result<InputLine>, _ctx: &mut Self::Context) {
        match item {
            Ok(InputLine::Text(line)) => self.route(&line),
            Ok(InputLine::TooLong) => {
                log::warn!("bad input: line longer than the maximum; skipped")
            }
            Ok(InputLine::NotUtf8) => log::warn!("bad input: line is not UTF-8; skipped"),
            Err(e) => log::error!("reading stdin failed: {e}"),
        }
    }

    /// End of input: once the store and topology manager have answered
    /// everything before it, flush and stop.
    fn finished(&mut self, ctx: &mut Self::Context) {
        log::info!("stdin closed; flushing replies and stopping");
        let drain = self.routes.drain.clone();
        let shutdown = self.routes.shutdown.clone();
        actix::spawn(async move {
            for actor in drain {
                // A stopped actor has nothing left to answer.
                let _ = actor.send(Drain).await;
            }
            shutdown.do_send(Shutdown);
        });
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Digest, Item};
    use crate::protocol::{Gossip, OutBody};
    use crate::testkit::{recorder, take, Recorder};
    use tokio::io::AsyncWriteExt;

    struct Rig {
        init: Addr<Recorder<InitRequest>>,
        joined: Addr<Recorder<Joined>>,
        topology: Addr<Recorder<TopologyRequest>>,
        broadcast: Addr<Recorder<ClientBroadcast>>,
        read: Addr<Recorder<ClientRead>>,
        merge: Addr<Recorder<Merge>>,
        terms: Addr<Recorder<HeardTerm>>,
        out: Addr<Recorder<Outbound>>,
        drain: Addr<Recorder<Drain>>,
        shutdown: Addr<Recorder<Shutdown>>,
    }

    /// Feeds `input` (then EOF) to a reader whose routes are recorders; the
    /// reader routes everything there.
    async fn feed(input: &[u8], max_line_bytes: usize) -> Rig {
        tokio::time::pause();
        let rig = Rig {
            init: recorder(),
            joined: recorder(),
            topology: recorder(),
            broadcast: recorder(),
            read: recorder(),
            merge: recorder(),
            terms: recorder(),
            out: recorder(),
            drain: recorder(),
            shutdown: recorder(),
        };
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        StdinReader::new(
            rx,
            max_line_bytes,
            Routes {
                init: rig.init.clone().recipient(),
                joined: rig.joined.clone().recipient(),
                topology: rig.topology.clone().recipient(),
                broadcast: rig.broadcast.clone().recipient(),
                read: rig.read.clone().recipient(),
                merge: rig.merge.clone().recipient(),
                terms: rig.terms.clone().recipient(),
                out: rig.out.clone().recipient(),
                drain: vec![rig.drain.clone().recipient()],
                shutdown: rig.shutdown.clone().recipient(),
            },
            ReplyDeadlines {
                clock: Clock::starting_at(0),
                window_ms: 4_000,
            },
        )
        .start();
        tx.write_all(input).await.unwrap();
        drop(tx);
        // Paused time only moves once every actor is idle: after this, the
        // input has been read to its end.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        rig
    }

    fn gossip_line(src: &str, items: &str) -> String {
        format!(
            r#"{{"src":"{src}","dest":"n0","body":{{"type":"gossip","items":{items},"have":{{}},"ts":5,"inc":1}}}}"#
        )
    }

    #[actix::test]
    async fn routes_each_type_to_its_owner() {
        let input = [
            r#"{"id":1,"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0","n1"]}}"#.to_string(),
            r#"{"src":"c1","dest":"n0","body":{"type":"topology","msg_id":1,"topology":{"n0":["n1"]}}}"#.into(),
            r#"{"src":"c2","dest":"n0","body":{"type":"broadcast","msg_id":3,"message":17}}"#.into(),
            r#"{"src":"c2","dest":"n0","body":{"type":"read","msg_id":4}}"#.into(),
            gossip_line("n1", r#"[["n1",1,5]]"#),
            gossip_line("n7", r#"[["n7",1,6]]"#),
            gossip_line("n8", "[]"),
            r#"{"src":"n1","dest":"n0","body":{"type":"hub","term":3}}"#.into(),
        ]
        .join("\n");
        let rig = feed(input.as_bytes(), 4096).await;
        let init = take(&rig.init).await;
        assert_eq!(init.len(), 1);
        assert_eq!(init[0].node_ids, ["n0", "n1"]);
        assert_eq!(
            init[0].reply_to,
            ReplyTo {
                client: "c0".into(),
                node: "n0".into(),
                msg_id: 1,
                answer_by: 4_000
            }
        );
        assert_eq!(take(&rig.joined).await[0].node_id, "n0");
        assert_eq!(take(&rig.topology).await[0].topology["n0"], ["n1"]);
        let b = take(&rig.broadcast).await;
        assert_eq!((b[0].value, b[0].reply_to.msg_id), (17, 3));
        assert_eq!(take(&rig.read).await[0].reply_to.msg_id, 4);
        let merged = take(&rig.merge).await;
        let senders: Vec<&str> = merged.iter().map(|m| m.from.as_str()).collect();
        assert_eq!(
            senders,
            ["n1", "n7", "n8"],
            "all gossip goes to the store, in order"
        );
        assert_eq!(
            merged[0].gossip,
            Gossip {
                inc: 1,
                items: vec![Item::new("n1", 1, 5)],
                digest: Digest::default(),
                ts: 5,
                round: None,
                term: 0,
                copy: None,
                loss: 0,
            }
        );
        let terms: Vec<(String, u64)> = take(&rig.terms)
            .await
            .into_iter()
            .map(|t| (t.from, t.term))
            .collect();
        assert_eq!(
            terms,
            [("n1", 0), ("n7", 0), ("n8", 0), ("n1", 3)].map(|(n, t)| (n.to_string(), t)),
            "the hub term of every gossip and hub message"
        );
        assert!(take(&rig.out).await.is_empty());
        assert_eq!(take(&rig.drain).await.len(), 1);
        assert_eq!(take(&rig.shutdown).await.len(), 1);
    }

    #[actix::test]
    async fn answers_bad_input_and_keeps_going() {
        let mut input = Vec::new();
        for line in [
            "this is not json",
            r#"{"src":"c1","dest":"n0","body":{"type":"cas","msg_id":7}}"#,
            r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":8,"message":1.5}}"#,
            r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":9}}"#,
            r#"{"src":"c1","dest":"n0","body":"hello"}"#,
            r#"{"src":"c1","dest":"n0","body":{"type":"read"}}"#,
        ] {
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
        }
        input.extend_from_slice(&[b'x'; 300]);
        input.push(b'\n');
        input.extend_from_slice(b"{\"src\":\"c1\",\xff}\n");
        input.extend_from_slice(br#"{"src":"c1","dest":"n0","body":{"type":"read","msg_id":10}}"#);
        let rig = feed(&input, 256).await;
        let replies: Vec<(String, OutBody)> = take(&rig.out)
            .await
            .into_iter()
            .map(|o| {
                assert_eq!(o.src, "n0");
                (o.dest, o.body)
            })
            .collect();
        let codes: Vec<(u64, u16)> = replies
            .iter()
            .map(|(dest, body)| match body {
                OutBody::Error {
                    in_reply_to, code, ..
                } if dest == "c1" => (*in_reply_to, *code),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(codes, [(7, 10), (8, 12), (9, 12)]);
        // The last line has no newline before EOF and is still served.
        assert_eq!(take(&rig.read).await[0].reply_to.msg_id, 10);
        assert_eq!(take(&rig.shutdown).await.len(), 1);
    }
}
