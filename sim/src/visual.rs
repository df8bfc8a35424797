//! The two pictures a run directory holds besides its data files (spec 7.2):
//! `timeline.html`, a per-process operation timeline like Jepsen's timeline
//! checker draws, and `messages.svg`, a Lamport diagram of the message
//! journal. They are for a person looking at one run: where operations sat
//! in time, and which messages crossed the network when.
//!
//! Both are static and self-contained (inline CSS, no script), so they open
//! from a copied results directory. Both are bounded, as Maelstrom's are:
//! at most [`MAX_TIMELINE_OPS`] operations and [`MAX_DIAGRAM_EVENTS`]
//! journal events, with a note in the picture when something was left out.
//! Both use the history's time 0, so a time read off one can be looked up in
//! the other.
//!
//! The network feeds the diagram through [`MessageLog`]; rendering is pure
//! (data in, text out).

use std::fmt::Write;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

use super::edn::Edn;
use super::history::{Event, EventType, Process};
use super::network::is_client;

/// Jepsen's timeline stops drawing after a fixed number of operations; a
/// browser copes with this many absolutely positioned boxes.
pub const MAX_TIMELINE_OPS: usize = 10_000;

/// Maelstrom's messages.svg draws at most this many journal events.
pub const MAX_DIAGRAM_EVENTS: usize = 10_000;

/// The log keeps whole messages (a send and its receive), so this many fit
/// the event bound even when every one of them is delivered.
pub const MAX_DIAGRAM_MESSAGES: usize = MAX_DIAGRAM_EVENTS / 2;

// ---------------------------------------------------------------------------
// Recording

/// One message as the network journaled it.
#[derive(Debug, Clone)]
pub struct LoggedMessage {
    pub id: u64,
    pub src: String,
    pub dest: String,
    pub body_type: String,
    pub sent: Instant,
    pub received: Option<Instant>,
}

/// The first messages of the journal, for messages.svg. Once
/// [`MAX_DIAGRAM_MESSAGES`] are kept, a send costs a length check and a
/// receive one comparison: the network runs at tens of thousands of
/// messages a second and must not pay for a picture of its first few.
#[derive(Debug, Default)]
pub struct MessageLog {
    /// In send order, which is id order: the network assigns ids and
    /// journals the send under one lock.
    messages: Vec<LoggedMessage>,
    truncated: bool,
}

/// Only the body's `type` is read; serde skips the rest without building it.
#[derive(Deserialize)]
struct BodyType {
    #[serde(rename = "type")]
    kind: Option<Value>,
}

/// A body's `type`, or `?` when it has none (the network routes such
/// bodies; only replies to clients are checked).
pub fn body_type(body: &str) -> String {
    match serde_json::from_str::<BodyType>(body) {
        Ok(BodyType {
            kind: Some(Value::String(kind)),
        }) => kind,
        _ => "?".to_string(),
    }
}

/// Maelstrom's diagram leaves out the init handshake: it happens once per
/// node before anything else and would only crowd the top of the picture.
fn is_handshake(body_type: &str) -> bool {
    body_type == "init" || body_type == "init_ok"
}

impl MessageLog {
    /// Records an accepted send; `body` is the body's JSON text.
    pub fn send(&mut self, id: u64, src: &str, dest: &str, body: &str, at: Instant) {
        if self.messages.len() >= MAX_DIAGRAM_MESSAGES {
            self.truncated = true;
            return;
        }
        let body_type = body_type(body);
        if is_handshake(&body_type) {
            return;
        }
        self.messages.push(LoggedMessage {
            id,
            src: src.to_string(),
            dest: dest.to_string(),
            body_type,
            sent: at,
            received: None,
        });
    }

    /// Records a delivery. `now` is only read for a message the log kept.
    pub fn recv(&mut self, id: u64, now: impl FnOnce() -> Instant) {
        // Ids only grow, so every message sent after the log filled up is
        // beyond the last kept one.
        if self.messages.last().is_none_or(|m| id > m.id) {
            return;
        }
        if let Ok(i) = self.messages.binary_search_by_key(&id, |m| m.id) {
            self.messages[i].received.get_or_insert_with(now);
        }
    }

    /// The kept messages with times relative to `t0`, the history's time 0.
    pub fn into_diagram(self, t0: Instant) -> MessageDiagram {
        let rel = |t: Instant| match t.checked_duration_since(t0) {
            Some(d) => d.as_nanos() as i64,
            // Setup traffic (topology) happens before time 0.
            None => -((t0 - t).as_nanos() as i64),
        };
        MessageDiagram {
            messages: self
                .messages
                .into_iter()
                .map(|m| DiagramMessage {
                    id: m.id,
                    src: m.src,
                    dest: m.dest,
                    body_type: m.body_type,
                    sent_ns: rel(m.sent),
                    received_ns: m.received.map(rel),
                })
                .collect(),
            truncated: self.truncated,
        }
    }
}

/// One message to draw; times in ns since the history's time 0.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagramMessage {
    pub id: u64,
    pub src: String,
    pub dest: String,
    pub body_type: String,
    pub sent_ns: i64,
    /// `None`: sent and never delivered (a partition dropped it, or it was
    /// still queued when the journal closed).
    pub received_ns: Option<i64>,
}

/// What messages.svg draws: messages in send order, and whether the
/// journal had more than was kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageDiagram {
    pub messages: Vec<DiagramMessage>,
    pub truncated: bool,
}

// ---------------------------------------------------------------------------
// Shared helpers

/// Escapes text for HTML/SVG content and double- or single-quoted
/// attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(ns: i64) -> String {
    format!("{:.6} s", ns as f64 / 1e9)
}

/// A tick spacing, in ms, at least `min_px` apart on a `px_per_ms` scale.
fn tick_step_ms(px_per_ms: f64, min_px: f64) -> i64 {
    let mut base = 1i64;
    loop {
        for mult in [1, 2, 5] {
            let step = base * mult;
            if step as f64 * px_per_ms >= min_px || step >= 1_000_000_000 {
                return step;
            }
        }
        base *= 10;
    }
}

/// A tick label with only as many decimals as the spacing needs.
fn tick_label(ms: i64, step_ms: i64) -> String {
    let decimals = match step_ms {
        s if s >= 1000 => 0,
        s if s >= 100 => 1,
        s if s >= 10 => 2,
        _ => 3,
    };
    format!("{:.*} s", decimals, ms as f64 / 1000.0)
}

/// Tick times (ms) covering `[from_ns, to_ns]`.
fn ticks(from_ns: i64, to_ns: i64, step_ms: i64) -> impl Iterator<Item = i64> {
    let first = (from_ns as f64 / 1e6 / step_ms as f64).ceil() as i64;
    let last = (to_ns as f64 / 1e6 / step_ms as f64).floor() as i64;
    (first..=last).map(move |k| k * step_ms)
}

fn clip(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

// ---------------------------------------------------------------------------
// timeline.html

/// One operation: an invocation and, normally, its completion.
pub(crate) struct TimelineOp<'a> {
    pub(crate) invoke: &'a Event,
    pub(crate) complete: Option<&'a Event>,
}

/// Pairs invocations with completions per process. The nemesis records both
/// halves of its operations as `:info`; its first `:info` with nothing open
/// is the invocation. Returns the first `limit` operations (in invocation
/// order) and the total number of operations.
pub(crate) fn pair_ops(history: &[Event], limit: usize) -> (Vec<TimelineOp<'_>>, usize) {
    let mut ops: Vec<TimelineOp> = Vec::new();
    let mut open: std::collections::HashMap<Process, Option<usize>> = Default::default();
    let mut total = 0;
    for event in history {
        let slot = open.get(&event.process).copied();
        let invokes = event.kind == EventType::Invoke
            || (event.process == Process::Nemesis && slot.is_none());
        if invokes {
            total += 1;
            let kept = (ops.len() < limit).then(|| {
                ops.push(TimelineOp {
                    invoke: event,
                    complete: None,
                });
                ops.len() - 1
            });
            open.insert(event.process, kept);
        } else if let Some(kept) = slot {
            open.remove(&event.process);
            if let Some(i) = kept {
                ops[i].complete = Some(event);
            }
        }
        // A completion with nothing open is not an operation; the
        // harness never records one.
    }
    (ops, total)
}

/// An op's value as shown: an ok read's long list is cut to its first
/// `keep` elements and a count, anything else to `max_chars`.
fn value_text(event: &Event, keep: usize, max_chars: usize) -> String {
    let text = match (&event.process, &event.value) {
        (Process::Client(_), Value::Array(items)) if items.len() > keep => {
            let head: Vec<String> = items[..keep]
                .iter()
                .map(|v| Edn::from_json(v).to_string())
                .collect();
            format!("[{} …] ({} elements)", head.join(" "), items.len())
        }
        _ => event.value_edn().to_string(),
    };
    clip(text, max_chars)
}

/// Column order: clients by process number, then the nemesis.
fn process_key(p: Process) -> (u8, u64) {
    match p {
        Process::Client(n) => (0, n),
        Process::Nemesis => (1, 0),
    }
}

fn process_name(process: Process) -> String {
    match process {
        Process::Client(p) => p.to_string(),
        Process::Nemesis => ":nemesis".to_string(),
    }
}

const TL_LEFT: f64 = 70.0;
const TL_TOP: f64 = 24.0;
const TL_COL: f64 = 110.0;
const TL_MIN_BOX: f64 = 12.0;
const TL_MAX_HEIGHT: f64 = 30_000.0;

/// timeline.html for a history: one column per process (clients by number,
/// then the nemesis), one box per operation from invocation to completion,
/// coloured by completion type, details in the box's tooltip.
pub fn timeline_html(history: &[Event]) -> String {
    let (ops, total) = pair_ops(history, MAX_TIMELINE_OPS);
    let mut processes: Vec<Process> = ops.iter().map(|op| op.invoke.process).collect();
    processes.sort_by_key(|&p| process_key(p));
    processes.dedup();
    let column = |p: Process| {
        processes
            .binary_search_by_key(&process_key(p), |&q| process_key(q))
            .unwrap_or(0)
    };

    // History times count from test time 0, where the plot starts.
    let start_ns = 0i64;
    let end_ns = ops
        .iter()
        .map(|op| op.complete.unwrap_or(op.invoke).time_ns as i64)
        .max()
        .unwrap_or(0);
    let span_ms = ((end_ns - start_ns) as f64 / 1e6).max(1.0);
    let px_per_ms = (TL_MAX_HEIGHT / span_ms).min(1.0);
    let y = |ns: i64| TL_TOP + (ns - start_ns) as f64 / 1e6 * px_per_ms;
    let width = TL_LEFT + processes.len() as f64 * TL_COL + 10.0;
    let height = y(end_ns) + TL_MIN_BOX + 10.0;

    let mut out = String::with_capacity(400 + ops.len() * 320);
    out.push_str(concat!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Timeline</title>\n",
        "<style>\n",
        "body{font:12px sans-serif;margin:8px}\n",
        ".plot{position:relative}\n",
        ".head{position:absolute;top:0;width:106px;text-align:center;font-weight:bold}\n",
        ".tick{position:absolute;left:0;width:100%;border-top:1px solid #eee;",
        "color:#888;font-size:10px}\n",
        ".op{position:absolute;width:102px;overflow:hidden;white-space:nowrap;",
        "font-size:10px;line-height:11px;box-sizing:border-box;padding:0 2px;",
        "border:1px solid #0004}\n",
        ".op:hover{z-index:1;overflow:visible;outline:2px solid #000}\n",
        ".ok{background:#9fe0a0}\n.info{background:#ffd27f}\n.fail{background:#f6a5bd}\n",
        ".open{border-style:dashed}\n",
        ".note{margin:2px 0}\n.trunc{color:#b00020;font-weight:bold}\n",
        "</style></head><body>\n"
    ));
    let _ = writeln!(
        out,
        "<p class=\"note\">{} operations by {} processes. Time runs downward from test \
         time 0, {:.3} px per ms; boxes are at least {} px tall. \
         <span class=\"op ok\" style=\"position:static\">ok</span> \
         <span class=\"op info\" style=\"position:static\">info</span> \
         <span class=\"op fail\" style=\"position:static\">fail</span> \
         Hover over a box for its details.</p>",
        ops.len(),
        processes.len(),
        px_per_ms,
        TL_MIN_BOX
    );
    if total > ops.len() {
        let _ = writeln!(
            out,
            "<p class=\"note trunc\">Truncated: only the first {} of {} operations are shown.</p>",
            ops.len(),
            total
        );
    }
    if ops.is_empty() {
        out.push_str("<p class=\"note\">No operations.</p>\n");
    }
    let _ = writeln!(
        out,
        "<div class=\"plot\" style=\"width:{width:.0}px;height:{height:.0}px\">"
    );
    let step = tick_step_ms(px_per_ms, 80.0);
    for ms in ticks(start_ns, end_ns, step) {
        let _ = writeln!(
            out,
            "<div class=\"tick\" style=\"top:{:.1}px\">{}</div>",
            y(ms * 1_000_000),
            tick_label(ms, step)
        );
    }
    for (i, p) in processes.iter().enumerate() {
        let _ = writeln!(
            out,
            "<div class=\"head\" style=\"left:{:.0}px\">{}</div>",
            TL_LEFT + i as f64 * TL_COL,
            escape(&process_name(*p))
        );
    }
    for op in &ops {
        let invoked = op.invoke.time_ns as i64;
        let (class, completed) = match op.complete {
            Some(c) => (
                match c.kind {
                    EventType::Ok => "ok",
                    EventType::Fail => "fail",
                    EventType::Info | EventType::Invoke => "info",
                },
                c.time_ns as i64,
            ),
            // Never completed: Jepsen counts such an op as indeterminate.
            None => ("info open", end_ns),
        };
        let top = y(invoked);
        let h = (y(completed) - top).max(TL_MIN_BOX);
        let left = TL_LEFT + column(op.invoke.process) as f64 * TL_COL;
        let _ = writeln!(
            out,
            "<div class=\"op {class}\" style=\"left:{left:.0}px;top:{top:.1}px;height:{h:.1}px\" \
             title=\"{}\">{}</div>",
            escape(&op_tooltip(op)),
            escape(&op_label(op))
        );
    }
    out.push_str("</div>\n</body></html>\n");
    out
}

/// The text inside a box: f and a short value.
fn op_label(op: &TimelineOp) -> String {
    let shown = match op.complete {
        Some(c) if !c.value.is_null() => c,
        _ => op.invoke,
    };
    match &shown.value {
        Value::Null => op.invoke.f.clone(),
        // A box is about 17 characters wide: the count says more than the
        // first elements would.
        Value::Array(items) if items.len() > 3 => {
            format!("{} ({} values)", op.invoke.f, items.len())
        }
        _ => format!("{} {}", op.invoke.f, value_text(shown, 3, 40)),
    }
}

fn op_tooltip(op: &TimelineOp) -> String {
    let inv = op.invoke;
    let mut text = format!("process {}\n{}", process_name(inv.process), inv.f);
    if !inv.value.is_null() {
        let _ = write!(text, " {}", value_text(inv, 10, 300));
    }
    match op.complete {
        Some(c) => {
            let _ = write!(text, "\n:{}", c.kind.name());
            if c.value != inv.value {
                let _ = write!(text, " {}", value_text(c, 10, 300));
            }
            if let Some(error) = &c.error {
                let _ = write!(text, "\nerror: {}", clip(error.to_edn().to_string(), 300));
            }
            let _ = write!(
                text,
                "\ninvoked {}, completed {} ({:.3} ms)",
                seconds(inv.time_ns as i64),
                seconds(c.time_ns as i64),
                (c.time_ns.saturating_sub(inv.time_ns)) as f64 / 1e6
            );
            if c.final_read {
                text.push_str("\nfinal read");
            }
        }
        None => {
            let _ = write!(
                text,
                "\ninvoked {}, never completed",
                seconds(inv.time_ns as i64)
            );
        }
    }
    text
}

// ---------------------------------------------------------------------------
// messages.svg

/// How a message is drawn (spec 7.2's colours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageClass {
    Server,
    Client,
    Error,
}

impl MessageClass {
    fn of(m: &DiagramMessage) -> MessageClass {
        // An error reply to a client is still shown as an error.
        if m.body_type == "error" {
            MessageClass::Error
        } else if is_client(&m.src) || is_client(&m.dest) {
            MessageClass::Client
        } else {
            MessageClass::Server
        }
    }

    fn css(self) -> &'static str {
        match self {
            MessageClass::Server => "s",
            MessageClass::Client => "c",
            MessageClass::Error => "e",
        }
    }
}

/// Column order: nodes by number, then clients by number, then anything
/// else (services) by name.
fn endpoint_key(id: &str) -> (u8, u64, &str) {
    let group = if is_client(id) {
        1
    } else if id.starts_with('n') {
        0
    } else {
        2
    };
    let number = id
        .get(1..)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    (group, number, id)
}

const SV_LEFT: f64 = 80.0;
const SV_TOP: f64 = 76.0;
const SV_COL: f64 = 36.0;
const SV_MAX_HEIGHT: f64 = 20_000.0;
const SV_MAX_PX_PER_MS: f64 = 2.0;
/// How far a dropped message's stub reaches towards its receiver.
const SV_STUB: f64 = 14.0;

/// messages.svg: one lifeline per endpoint, one arrow per delivered message
/// from its send to its receipt, a dashed stub ending in a cross for a
/// message never delivered. Labels live in tooltips only.
pub fn messages_svg(diagram: &MessageDiagram) -> String {
    // The log already leaves out the handshake and stops at the bound;
    // doing both here too makes the picture right for any input.
    let mut truncated = diagram.truncated;
    let mut messages: Vec<&DiagramMessage> = Vec::new();
    for m in diagram
        .messages
        .iter()
        .filter(|m| !is_handshake(&m.body_type))
    {
        if messages.len() >= MAX_DIAGRAM_MESSAGES {
            truncated = true;
            break;
        }
        messages.push(m);
    }
    let mut endpoints: Vec<&str> = messages
        .iter()
        .flat_map(|m| [m.src.as_str(), m.dest.as_str()])
        .collect();
    endpoints.sort_by_key(|id| endpoint_key(id));
    endpoints.dedup();
    let column = |id: &str| {
        endpoints
            .binary_search_by_key(&endpoint_key(id), |e| endpoint_key(e))
            .unwrap_or(0)
    };
    let x = |col: usize| SV_LEFT + SV_COL / 2.0 + col as f64 * SV_COL;

    let start_ns = messages.iter().map(|m| m.sent_ns).min().unwrap_or(0);
    let end_ns = messages
        .iter()
        .map(|m| m.received_ns.unwrap_or(m.sent_ns).max(m.sent_ns))
        .max()
        .unwrap_or(0);
    let span_ms = ((end_ns - start_ns) as f64 / 1e6).max(1.0);
    let px_per_ms = (SV_MAX_HEIGHT / span_ms).min(SV_MAX_PX_PER_MS);
    let y = |ns: i64| SV_TOP + (ns - start_ns) as f64 / 1e6 * px_per_ms;
    let plot_bottom = y(end_ns) + 10.0;
    // Wide enough for the legend lines as well.
    let width = (SV_LEFT + endpoints.len() as f64 * SV_COL + 20.0).max(660.0);
    let height = plot_bottom + 10.0;

    let mut out = String::with_capacity(2000 + messages.len() * 200);
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\">"
    );
    out.push_str(concat!(
        "<style>\n",
        "text{font:11px sans-serif;fill:#333}\n",
        ".life{stroke:#bbb}\n.tick{stroke:#eee}\n",
        ".m{fill:none;stroke-width:1}\n.m:hover{stroke-width:3}\n",
        ".s{stroke:#000;marker-end:url(#as)}\n",
        ".c{stroke:#2463d6;marker-end:url(#ac)}\n",
        ".e{stroke:#e8559b;marker-end:url(#ae)}\n",
        ".drop{stroke-dasharray:3 2;marker-end:url(#ax)}\n",
        ".trunc{fill:#b00020;font-weight:bold}\n",
        "</style>\n<defs>\n"
    ));
    for (id, colour) in [("as", "#000"), ("ac", "#2463d6"), ("ae", "#e8559b")] {
        let _ = writeln!(
            out,
            "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\">\
             <path d=\"M0 0L10 5L0 10z\" fill=\"{colour}\"/></marker>"
        );
    }
    out.push_str(
        "<marker id=\"ax\" viewBox=\"0 0 10 10\" refX=\"5\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\"><path d=\"M1 1L9 9M9 1L1 9\" stroke=\"#b00020\" stroke-width=\"2\"/>\
         </marker>\n</defs>\n",
    );
    let dropped = messages.iter().filter(|m| m.received_ns.is_none()).count();
    let _ = writeln!(
        out,
        "<text x=\"4\" y=\"14\">{} messages ({} never delivered), init handshake left \
         out; time runs downward, {:.3} px per ms.</text>\n\
         <text x=\"4\" y=\"28\">Blue: client, black: server, pink: error; a dashed \
         stub with a cross: never delivered. Hover over an arrow for its type.</text>",
        messages.len(),
        dropped,
        px_per_ms
    );
    if truncated {
        let _ = writeln!(
            out,
            "<text class=\"trunc\" x=\"4\" y=\"42\">Truncated: only the first {} messages \
             (at most {} journal events) are drawn; the run sent more.</text>",
            messages.len(),
            MAX_DIAGRAM_EVENTS
        );
    }
    if messages.is_empty() {
        out.push_str("<text x=\"4\" y=\"56\">No messages.</text>\n");
    }
    let step = tick_step_ms(px_per_ms, 60.0);
    for ms in ticks(start_ns, end_ns, step) {
        let ty = y(ms * 1_000_000);
        let _ = writeln!(
            out,
            "<line class=\"tick\" x1=\"{SV_LEFT}\" y1=\"{ty:.1}\" x2=\"{:.0}\" y2=\"{ty:.1}\"/>\
             <text x=\"4\" y=\"{:.1}\">{}</text>",
            width - 10.0,
            ty + 4.0,
            tick_label(ms, step)
        );
    }
    for (i, id) in endpoints.iter().enumerate() {
        let lx = x(i);
        let _ = writeln!(
            out,
            "<text x=\"{lx:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>\
             <line class=\"life\" x1=\"{lx:.1}\" y1=\"{SV_TOP}\" x2=\"{lx:.1}\" y2=\"{plot_bottom:.1}\"/>",
            SV_TOP - 8.0,
            escape(id)
        );
    }
    for m in &messages {
        let class = MessageClass::of(m).css();
        let (x1, y1) = (x(column(&m.src)), y(m.sent_ns));
        let x2 = x(column(&m.dest));
        let (extra, path, fate) = match m.received_ns {
            Some(r) => {
                let y2 = y(r.max(m.sent_ns));
                let path = if x1 == x2 {
                    // A self-send would lie on its own lifeline; bow it out.
                    format!(
                        "M{x1:.1} {y1:.1}C{:.1} {y1:.1} {:.1} {y2:.1} {x1:.1} {y2:.1}",
                        x1 + 16.0,
                        x1 + 16.0
                    )
                } else {
                    format!("M{x1:.1} {y1:.1}L{x2:.1} {y2:.1}")
                };
                ("", path, format!("received {}", seconds(r)))
            }
            None => {
                let dx = if x2 >= x1 { SV_STUB } else { -SV_STUB };
                (
                    " drop",
                    format!("M{x1:.1} {y1:.1}l{dx:.0} 4"),
                    "never delivered".to_string(),
                )
            }
        };
        let _ = writeln!(
            out,
            "<path class=\"m {class}{extra}\" d=\"{path}\"><title>{}</title></path>",
            escape(&format!(
                "{} {} → {} (message {})\nsent {}, {}",
                m.body_type,
                m.src,
                m.dest,
                m.id,
                seconds(m.sent_ns),
                fate
            ))
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpError;
    use serde_json::json;
    use std::time::Duration;

    fn event(kind: EventType, process: Process, f: &str, value: Value, time_ms: u64) -> Event {
        Event::new(0, time_ms * 1_000_000, kind, process, f, value)
    }

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    /// Two client processes and the nemesis: an ok broadcast, an ok read
    /// with a long result, a failed read with an error, an indeterminate
    /// broadcast, and one partition.
    fn small_history() -> Vec<Event> {
        let c0 = Process::Client(0);
        let c1 = Process::Client(1);
        let nem = Process::Nemesis;
        let mut failed = event(EventType::Fail, c1, "read", Value::Null, 40);
        failed.error = Some(OpError::Reply {
            name: "temporarily-unavailable".into(),
            text: Some("<busy> & \"later\"".into()),
        });
        let mut timeout = event(EventType::Info, c0, "broadcast", json!(1), 5030);
        timeout.error = Some(OpError::Keyword("net-timeout".into()));
        vec![
            event(EventType::Invoke, c0, "broadcast", json!(0), 0),
            event(
                EventType::Info,
                nem,
                "start-partition",
                json!("majority"),
                1,
            ),
            event(EventType::Ok, c0, "broadcast", json!(0), 2),
            event(
                EventType::Info,
                nem,
                "start-partition",
                json!(["isolated", {"n0": ["n1"]}]),
                3,
            ),
            event(EventType::Invoke, c1, "read", Value::Null, 10),
            event(
                EventType::Ok,
                c1,
                "read",
                json!((0..20).collect::<Vec<_>>()),
                12,
            ),
            event(EventType::Invoke, c1, "read", Value::Null, 30),
            failed,
            event(EventType::Invoke, c0, "broadcast", json!(1), 30),
            timeout,
        ]
    }

    #[test]
    fn timeline_has_one_box_per_operation_coloured_by_completion() {
        let html = timeline_html(&small_history());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script"));
        assert_eq!(count(&html, "<div class=\"op "), 5);
        assert_eq!(count(&html, "<div class=\"op ok\""), 2);
        assert_eq!(count(&html, "<div class=\"op fail\""), 1);
        // The timeout and the nemesis operation.
        assert_eq!(count(&html, "<div class=\"op info\""), 2);
        // Columns: process 0, process 1, then the nemesis.
        let heads: Vec<&str> = html
            .match_indices("<div class=\"head\"")
            .map(|(i, _)| {
                let rest = &html[i..];
                let start = rest.find('>').unwrap() + 1;
                &rest[start..rest.find("</div>").unwrap()]
            })
            .collect();
        assert_eq!(heads, ["0", "1", ":nemesis"]);
        assert!(!html.contains("Truncated"));
    }

    #[test]
    fn timeline_tooltips_escape_and_abbreviate() {
        let html = timeline_html(&small_history());
        // The error text is escaped inside the title attribute.
        assert!(html.contains(
            "error: [:temporarily-unavailable &quot;&lt;busy&gt; &amp; \\&quot;later\\&quot;&quot;]"
        ));
        assert!(!html.contains("<busy>"));
        // The 20-element read shows its first elements and a count.
        assert!(html.contains("[0 1 2 3 4 5 6 7 8 9 …] (20 elements)"));
        assert!(html.contains(">read (20 values)</div>"));
        assert!(html.contains("error: :net-timeout"));
        // The nemesis's invocation value and its completion value.
        assert!(html.contains(
            "start-partition :majority\n:info [:isolated {&quot;n0&quot; #{&quot;n1&quot;}}]"
        ));
        // Positions follow time: the timeout op (30 ms to 5030 ms) is tall.
        assert!(html.contains("top:54.0px;height:5000.0px"), "{html}");
    }

    #[test]
    fn timeline_caps_operations_and_says_so() {
        let mut history = Vec::new();
        for i in 0..(MAX_TIMELINE_OPS as u64 + 5) {
            let p = Process::Client(i % 3);
            history.push(event(EventType::Invoke, p, "broadcast", json!(i), i));
            history.push(event(EventType::Ok, p, "broadcast", json!(i), i));
        }
        let started = Instant::now();
        let html = timeline_html(&history);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(count(&html, "<div class=\"op "), MAX_TIMELINE_OPS);
        assert!(html.contains("only the first 10000 of 10005 operations are shown"));
    }

    #[test]
    fn timeline_of_an_unfinished_operation_reaches_the_end() {
        let history = vec![
            event(
                EventType::Invoke,
                Process::Client(0),
                "read",
                Value::Null,
                0,
            ),
            event(
                EventType::Invoke,
                Process::Client(1),
                "read",
                Value::Null,
                0,
            ),
            event(EventType::Ok, Process::Client(1), "read", json!([]), 100),
        ];
        let html = timeline_html(&history);
        assert_eq!(count(&html, "<div class=\"op info open\""), 1);
        assert!(html.contains("never completed"));
        assert!(timeline_html(&[]).contains("No operations."));
    }

    fn msg(
        id: u64,
        src: &str,
        dest: &str,
        ty: &str,
        sent: i64,
        recv: Option<i64>,
    ) -> DiagramMessage {
        DiagramMessage {
            id,
            src: src.into(),
            dest: dest.into(),
            body_type: ty.into(),
            sent_ns: sent * 1_000_000,
            received_ns: recv.map(|r| r * 1_000_000),
        }
    }

    fn small_diagram() -> MessageDiagram {
        MessageDiagram {
            messages: vec![
                msg(0, "c2", "n0", "broadcast", -5, Some(-5)),
                msg(1, "n0", "n1", "gossip", 0, Some(10)),
                msg(2, "n1", "n0", "gossip", 1, None),
                msg(3, "n0", "c2", "broadcast_ok", 2, Some(2)),
                msg(4, "n1", "c2", "error", 12, Some(12)),
                msg(5, "n0", "n0", "<odd & \"type\">", 20, Some(25)),
            ],
            truncated: false,
        }
    }

    #[test]
    fn diagram_draws_one_arrow_per_message_in_spec_colours() {
        let svg = messages_svg(&small_diagram());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("<script"));
        assert_eq!(count(&svg, "<path class=\"m "), 6);
        assert_eq!(count(&svg, "<path class=\"m c\""), 2);
        assert_eq!(count(&svg, "<path class=\"m s\""), 2);
        assert_eq!(count(&svg, "<path class=\"m e\""), 1);
        assert_eq!(count(&svg, "<path class=\"m s drop\""), 1);
        // Lifelines in order: nodes, then clients.
        let labels: Vec<usize> = ["n0", "n1", "c2"]
            .iter()
            .map(|id| svg.find(&format!(">{id}</text>")).unwrap())
            .collect();
        assert!(labels[0] < labels[1] && labels[1] < labels[2]);
        assert_eq!(count(&svg, "class=\"life\""), 3);
        assert!(svg.contains(
            "<title>gossip n0 → n1 (message 1)\nsent 0.000000 s, received 0.010000 s</title>"
        ));
        assert!(svg.contains(
            "<title>gossip n1 → n0 (message 2)\nsent 0.001000 s, never delivered</title>"
        ));
        assert!(svg.contains("&lt;odd &amp; &quot;type&quot;&gt;"));
        assert!(!svg.contains("<odd"));
        assert!(svg.contains("6 messages (1 never delivered)"));
    }

    #[test]
    fn diagram_positions_follow_time_and_drops_are_stubs() {
        let svg = messages_svg(&small_diagram());
        // Columns at 98, 134, 170; time -5 ms at the top, 2 px per ms.
        assert!(svg.contains("d=\"M98.0 86.0L134.0 106.0\""), "{svg}");
        // The dropped gossip goes left from n1 only a short way.
        assert!(svg.contains("d=\"M134.0 88.0l-14 4\""), "{svg}");
        // A self-send bows out of its lifeline.
        assert!(svg.contains("d=\"M98.0 126.0C114.0 126.0 114.0 136.0 98.0 136.0\""));
    }

    #[test]
    fn diagram_leaves_out_the_init_handshake_and_caps_messages() {
        let mut diagram = small_diagram();
        diagram
            .messages
            .insert(0, msg(90, "c0", "n0", "init", -9, Some(-9)));
        diagram
            .messages
            .insert(1, msg(91, "n0", "c0", "init_ok", -9, Some(-9)));
        let svg = messages_svg(&diagram);
        assert_eq!(count(&svg, "<path class=\"m "), 6);
        assert!(!svg.contains(">c0<") && !svg.contains("<title>init"));

        let many = MessageDiagram {
            messages: (0..MAX_DIAGRAM_MESSAGES as u64 + 100)
                .map(|i| msg(i, "n0", "n1", "gossip", i as i64, Some(i as i64 + 3)))
                .collect(),
            truncated: false,
        };
        let started = Instant::now();
        let svg = messages_svg(&many);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(count(&svg, "<path class=\"m "), MAX_DIAGRAM_MESSAGES);
        assert!(svg.contains("Truncated: only the first 5000 messages"));
        // Bounded height however long the run.
        let height: f64 = svg
            .split("height=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(height <= SV_MAX_HEIGHT + SV_TOP + 40.0, "{height}");
        assert!(messages_svg(&MessageDiagram::default()).contains("No messages."));
    }

    #[test]
    fn log_skips_the_handshake_pairs_receipts_and_stops_at_the_cap() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut log = MessageLog::default();
        log.send(0, "c0", "n0", r#"{"type":"init","msg_id":1}"#, at(1));
        log.recv(0, || at(1));
        log.send(
            1,
            "n0",
            "c0",
            r#"{"type":"init_ok","in_reply_to":1}"#,
            at(2),
        );
        log.recv(1, || at(2));
        log.send(
            2,
            "n0",
            "n1",
            r#"{"messages":[1,2],"type":"gossip"}"#,
            at(3),
        );
        log.send(3, "n1", "n0", r#"{"no_type":true}"#, at(4));
        log.recv(3, || at(9));
        // A receipt the log did not keep is ignored without reading the clock.
        log.recv(77, || panic!("clock read for an unkept message"));
        let diagram = log.into_diagram(at(2));
        assert!(!diagram.truncated);
        assert_eq!(
            diagram.messages,
            [
                DiagramMessage {
                    id: 2,
                    src: "n0".into(),
                    dest: "n1".into(),
                    body_type: "gossip".into(),
                    sent_ns: 1_000_000,
                    received_ns: None,
                },
                DiagramMessage {
                    id: 3,
                    src: "n1".into(),
                    dest: "n0".into(),
                    body_type: "?".into(),
                    sent_ns: 2_000_000,
                    received_ns: Some(7_000_000),
                },
            ]
        );

        let mut full = MessageLog::default();
        for id in 0..MAX_DIAGRAM_MESSAGES as u64 + 10 {
            full.send(id, "n0", "n1", r#"{"type":"gossip"}"#, t0);
        }
        full.recv(MAX_DIAGRAM_MESSAGES as u64 + 3, || panic!("past the cap"));
        full.recv(4, || t0);
        let diagram = full.into_diagram(t0 + Duration::from_millis(1));
        assert!(diagram.truncated);
        assert_eq!(diagram.messages.len(), MAX_DIAGRAM_MESSAGES);
        assert_eq!(diagram.messages[4].received_ns, Some(-1_000_000));
    }
}
