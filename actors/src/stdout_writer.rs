//! StdoutWriter: the only writer of stdout. Each [`Outbound`] becomes one
//! whole JSON line, in mailbox order; replies get msg_ids unique to this node.
//! On [`Shutdown`] it flushes, then stops the actix System.

use crate::messages::{Outbound, Shutdown};
use crate::protocol::encode_line;
use actix::io::{WriteHandler, Writer};
use actix::prelude::*;
use std::io;
use tokio::io::AsyncWrite;

pub struct StdoutWriter<W: AsyncWrite + Unpin + 'static> {
    out: Writer<W, io::Error>,
    last_msg_id: u64,
}

impl<W: AsyncWrite + Unpin + 'static> StdoutWriter<W> {
    /// Starts the writer over `output` (stdout in the node, a pipe in tests).
    pub fn start(output: W) -> Addr<Self> {
        Self::create(|ctx| StdoutWriter {
            out: Writer::new(output, ctx),
            last_msg_id: 0,
        })
    }
}

impl<W: AsyncWrite + Unpin + 'static> Actor for StdoutWriter<W> {
    type Context = Context<Self>;
}

impl<W: AsyncWrite + Unpin + 'static> WriteHandler<io::Error> for StdoutWriter<W> {
    fn error(&mut self, err: io::Error, _ctx: &mut Self::Context) -> Running {
        log::error!("writing stdout failed: {err}");
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        log::info!("stdout flushed and closed; stopping");
        System::current().stop();
        ctx.stop();
    }
}

impl<W: AsyncWrite + Unpin + 'static> Handler<Outbound> for StdoutWriter<W> {
    type Result = ();

    /// Writes the message as one line; a reply gets the next msg_id.
    fn handle(&mut self, msg: Outbound, _ctx: &mut Self::Context) {
        let msg_id = msg.body.is_reply().then(|| {
            self.last_msg_id += 1;
            self.last_msg_id
        });
        let mut line = encode_line(&msg.src, &msg.dest, &msg.body, msg_id);
        line.push('\n');
        self.out.write(line.as_bytes());
    }
}

impl<W: AsyncWrite + Unpin + 'static> Handler<Shutdown> for StdoutWriter<W> {
    type Result = ();

    /// Closes the output once everything before it is flushed.
    fn handle(&mut self, _: Shutdown, _ctx: &mut Self::Context) {
        self.out.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::protocol::{Gossip, OutBody, ReplyTo};
    use tokio::io::{AsyncBufReadExt, BufReader};

    #[actix::test]
    async fn writes_whole_lines_in_order_with_unique_msg_ids_and_flushes_on_shutdown() {
        let (ours, theirs) = tokio::io::duplex(64);
        let writer = StdoutWriter::start(ours);
        let to = |msg_id| ReplyTo {
            answer_by: crate::protocol::NO_DEADLINE,
            client: "c1".into(),
            node: "n0".into(),
            msg_id,
        };
        let count = 200;
        for i in 0..count {
            writer.do_send(Outbound::reply(
                &to(i),
                OutBody::BroadcastOk { in_reply_to: i },
            ));
            writer.do_send(Outbound {
                src: "n0".into(),
                dest: "n1".into(),
                body: OutBody::Gossip(Gossip {
                    inc: 0,
                    items: vec![],
                    digest: Digest::default(),
                    ts: i,
                    round: None,
                    term: 0,
                    copy: None,
                    loss: 0,
                }),
            });
        }
        writer.do_send(Shutdown);
        // The pipe holds only 64 bytes: the writer must wait for the reader
        // without losing or splitting anything.
        let mut lines = BufReader::new(theirs).lines();
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            got.push(line);
        }
        assert_eq!(
            got.len(),
            2 * count as usize,
            "everything flushed before close"
        );
        for i in 0..count {
            assert_eq!(
                got[2 * i as usize],
                format!(
                    r#"{{"src":"n0","dest":"c1","body":{{"type":"broadcast_ok","in_reply_to":{i},"msg_id":{}}}}}"#,
                    i + 1
                )
            );
            assert_eq!(
                got[2 * i as usize + 1],
                format!(
                    r#"{{"src":"n0","dest":"n1","body":{{"type":"gossip","items":[],"have":{{}},"ts":{i},"inc":0}}}}"#
                )
            );
        }
    }
}
