//! StdinReader: reads stdin as a stream of lines (never blocking the actix
//! thread), parses each, and routes every request to the actor that owns it.
//! Bad input gets one log line and, when it can be answered, an `error` reply.
//! At end of input it waits until the store and topology manager have
//! answered everything, then tells the writer to flush and stop.

use crate::neighbor::PeerGossip;
use crate::protocol::{parse_line, Request, ReplyTo};
use crate::store::{ClientBroadcast, ClientRead, Merge};
use crate::stdout_writer::{Outbound, Shutdown};
use crate::topology::{InitRequest, LinksChanged, TopologyRequest};
use actix::prelude::*;
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::io;
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead, LinesCodec, LinesCodecError};

/// Answered once every message sent to the actor before it is handled.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Drain;

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
    pub topology: Recipient<TopologyRequest>,
    pub broadcast: Recipient<ClientBroadcast>,
    pub read: Recipient<ClientRead>,
    /// Items from a peer that has no link here (yet).
    pub merge: Recipient<Merge>,
    pub out: Recipient<Outbound>,
    /// Actors whose replies must be written before output closes.
    pub drain: Vec<Recipient<Drain>>,
    pub shutdown: Recipient<Shutdown>,
}

pub struct StdinReader<R: AsyncRead + Unpin + 'static> {
    input: Option<FramedRead<R, InputLines>>,
    routes: Routes,
    links: BTreeMap<String, Recipient<PeerGossip>>,
}

impl<R: AsyncRead + Unpin + 'static> StdinReader<R> {
    pub fn new(input: R, max_line_bytes: usize, routes: Routes) -> Self {
        StdinReader {
            input: Some(FramedRead::new(input, InputLines::new(max_line_bytes))),
            routes,
            links: BTreeMap::new(),
        }
    }

    fn route(&self, line: &str) {
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
        let reply_to = |msg_id| ReplyTo {
            client: envelope.src.clone(),
            node: envelope.dest.clone(),
            msg_id,
        };
        match envelope.body {
            Request::Init(b) => self.routes.init.do_send(InitRequest {
                reply_to: reply_to(b.msg_id),
                node_id: b.node_id,
                node_ids: b.node_ids,
            }),
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
            Request::Gossip(g) => match self.links.get(&envelope.src) {
                Some(link) => link.do_send(PeerGossip(g)),
                None if !g.items.is_empty() => self.routes.merge.do_send(Merge {
                    from: envelope.src,
                    items: g.items,
                }),
                None => {}
            },
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
    }
}

impl<R: AsyncRead + Unpin + 'static> StreamHandler<io::Result<InputLine>> for StdinReader<R> {
    /// Routes one line; logs lines that are not lines.
    fn handle(&mut self, item: io::Result<InputLine>, _ctx: &mut Self::Context) {
        match item {
            Ok(InputLine::Text(line)) => self.route(&line),
            Ok(InputLine::TooLong) => log::warn!("bad input: line longer than the maximum; skipped"),
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

impl<R: AsyncRead + Unpin + 'static> Handler<LinksChanged> for StdinReader<R> {
    type Result = ();

    /// Routes each peer's gossip to its link from now on.
    fn handle(&mut self, msg: LinksChanged, _ctx: &mut Self::Context) {
        for peer in &msg.removed {
            self.links.remove(peer);
        }
        for link in msg.added {
            self.links.insert(link.peer, link.gossip);
        }
    }
}
