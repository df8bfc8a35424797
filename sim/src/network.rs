//! The simulated network (spec section 4): envelope validation, global
//! message ids, latency draws, one deadline-ordered queue per node with
//! Maelstrom's pop-then-check-partition-then-sleep-then-deliver loop,
//! partitions, the message journal and the harness's own delivery lateness.
//! Stress extensions (spec 11.2): nodes that are down or restarting (kill
//! nemesis), pause epochs, duplicated messages, delivery jitter, and loss
//! that may exempt clients; every message a fault costs is counted.
//!
//! All node queues are served by one dedicated timing thread instead of one
//! task per node: it keeps, per node, exactly the state a Maelstrom receiver
//! loop has (the envelope it is sleeping on, or idle), and wakes on a
//! nanosecond-precision condition-variable timeout, which tokio's
//! millisecond timer wheel cannot give.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::faults::{MessageFault, MessageFaults};
use super::lateness::{LatenessLog, Stage};
use super::nemesis::Grudge;
use super::netstats::{JournalKind, NetStats};
use super::visual::MessageLog;

/// `--latency-dist`: how each inter-node message's delay is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LatencyDist {
    Constant,
    Uniform,
    Exponential,
}

/// The latency model: a mean in whole ms and a distribution (spec 4.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    mean_ms: u64,
    dist: LatencyDist,
}

impl Latency {
    /// Rejects a zero mean for the distributions Maelstrom cannot build with
    /// it (uniform over an empty range, exponential with infinite rate).
    pub fn new(mean_ms: u64, dist: LatencyDist) -> Result<Latency, String> {
        if mean_ms == 0 && dist != LatencyDist::Constant {
            return Err(format!(
                "--latency-dist {} needs --latency > 0",
                match dist {
                    LatencyDist::Uniform => "uniform",
                    _ => "exponential",
                }
            ));
        }
        Ok(Latency { mean_ms, dist })
    }

    /// One draw, in whole milliseconds.
    pub fn draw_ms<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self.dist {
            LatencyDist::Constant => self.mean_ms,
            LatencyDist::Uniform => rng.random_range(0..2 * self.mean_ms),
            LatencyDist::Exponential => {
                // `new` guarantees mean_ms > 0, so the rate is finite.
                let exp = Exp::new(1.0 / self.mean_ms as f64).unwrap_or_else(|_| unreachable!());
                exp.sample(rng).floor() as u64
            }
        }
    }
}

/// Whether an id names a Maelstrom client (spec 1.4: "starts with c").
pub fn is_client(id: &str) -> bool {
    id.starts_with('c')
}

/// Why a line a node wrote was not routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotJson(String),
    MalformedEnvelope(String),
    UnknownSource(String),
    UnknownDest(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::NotJson(e) => write!(f, "not well-formed JSON ({e})"),
            Rejection::MalformedEnvelope(e) => write!(f, "malformed network message ({e})"),
            Rejection::UnknownSource(s) => write!(f, "invalid source {s:?}: no such endpoint"),
            Rejection::UnknownDest(d) => write!(f, "invalid dest {d:?}: no such endpoint"),
        }
    }
}

/// An envelope's optional `id`: absent, or present and an integer. Anything
/// else (including `null`) makes the envelope malformed.
#[derive(Default)]
struct IdField {
    valid: bool,
}

impl<'de> Deserialize<'de> for IdField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(IdField {
            valid: v.is_i64() || v.is_u64(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnvelope<'a> {
    src: String,
    dest: String,
    #[serde(borrow)]
    body: &'a RawValue,
    #[serde(default = "absent_id")]
    id: IdField,
}

fn absent_id() -> IdField {
    IdField { valid: true }
}

/// A node output line that passed the envelope check (spec 1.2): exactly
/// `src`, `dest`, `body` (an object; `null` counts as `{}`) and an optional
/// integer `id`. The body is kept as its raw JSON text.
#[derive(Debug, PartialEq, Eq)]
pub struct NodeOutput {
    pub src: String,
    pub dest: String,
    pub body: String,
}

/// Checks the shape of a line a node wrote; endpoints are checked at send.
pub fn parse_node_line(line: &str) -> Result<NodeOutput, Rejection> {
    // Parse as a generic value first so that "not JSON" and "JSON, but not
    // a valid envelope" are told apart, as Maelstrom's warnings do.
    let env: WireEnvelope = match serde_json::from_str(line) {
        Ok(env) => env,
        Err(e) => {
            return Err(match serde_json::from_str::<&RawValue>(line) {
                Ok(_) => Rejection::MalformedEnvelope(e.to_string()),
                Err(_) => Rejection::NotJson(e.to_string()),
            })
        }
    };
    if !env.id.valid {
        return Err(Rejection::MalformedEnvelope("id is not an integer".into()));
    }
    let raw = env.body.get();
    let body = if raw.starts_with('{') {
        raw.to_string()
    } else if raw == "null" {
        "{}".to_string()
    } else {
        return Err(Rejection::MalformedEnvelope("body is not an object".into()));
    };
    Ok(NodeOutput {
        src: env.src,
        dest: env.dest,
        body,
    })
}

/// The line written to a node's stdin: key order `id, src, dest, body`,
/// and its newline.
fn wire_line(id: u64, src: &str, dest: &str, body: &str) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "{{\"id\":{id},\"src\":{},\"dest\":{},\"body\":{body}}}\n",
        quote(src),
        quote(dest)
    )
}

/// A message handed to a Maelstrom client; its receipt is journaled when
/// the client takes it ([`Network::journal_client_recv`]).
#[derive(Debug, Clone)]
pub struct ClientMessage {
    pub id: u64,
    pub src: String,
    pub dest: String,
    pub body: Value,
}

/// A line on its way to a node's stdin (newline included), with the
/// instant the network meant it to arrive and the node's pause epoch then,
/// so that the stdin writer can measure end-to-end lateness.
#[derive(Debug)]
pub struct Delivery {
    pub line: String,
    pub intended: Instant,
    pub stage: Stage,
    pub epoch: u64,
}

/// Network parameters.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    pub latency: Latency,
    pub p_loss: f64,
    /// `--p-loss-clients exempt`: the loss coin is flipped for inter-node
    /// messages only.
    pub loss_exempts_clients: bool,
    /// `--p-dup`: probability that an inter-node message is queued twice.
    pub p_dup: f64,
    /// `--delivery-jitter-ms`: mean of the exponential lateness of every
    /// delivery to a node past its deadline, order kept (0: none).
    pub jitter_ms: f64,
    pub seed: u64,
}

/// What the network measured about itself once the journal is closed.
#[derive(Debug, Default)]
pub struct NetReport {
    pub stats: NetStats,
    /// Whether deliveries were timed by a real-time-scheduled thread.
    pub realtime: bool,
    /// The first messages of the journal, for messages.svg.
    pub messages: MessageLog,
    /// Messages duplicated or lost to faults, by second of test time.
    pub faults: MessageFaults,
}

/// Whether a node's process can take deliveries (kill nemesis, spec 11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum NodeState {
    Up,
    /// Killed: everything dequeued for it is dropped.
    Down,
    /// Restarted and not yet through `topology_ok`: only these clients
    /// (the restart's init and topology clients) reach it.
    Restarting(Vec<String>),
}

/// One envelope waiting in a node's queue.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    deadline: Instant,
    id: u64,
    src: String,
    line: String,
}

/// A node's receiver: its queue, the envelope its loop is sleeping on, its
/// process's stdin, whether that process is up, and its pause epoch (odd
/// while paused), which the stdin writer compares to skip lateness samples
/// that a pause caused.
struct NodeQueue {
    heap: BinaryHeap<Reverse<Queued>>,
    sleeping: Option<(Instant, Queued)>,
    stdin: UnboundedSender<Delivery>,
    state: NodeState,
    pause_epoch: Arc<AtomicU64>,
}

enum Endpoint {
    Node(usize),
    Client(UnboundedSender<ClientMessage>),
}

struct NetState {
    next_id: u64,
    endpoints: HashMap<String, Endpoint>,
    nodes: Vec<(String, NodeQueue)>,
    /// Wake-up instants of sleeping node loops, earliest first.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    grudge: Grudge,
    journal: Option<NetStats>,
    /// Open and closed together with `journal`.
    messages: Option<MessageLog>,
    faults: MessageFaults,
    config: NetConfig,
    jitter: Option<Exp<f64>>,
    rng: StdRng,
    shutdown: bool,
    /// Whether the timing thread got real-time scheduling.
    realtime: bool,
}

struct Shared {
    state: Mutex<NetState>,
    timer_changed: Condvar,
    lateness: Arc<LatenessLog>,
}

/// Handle to the network; cheap to clone.
#[derive(Clone)]
pub struct Network {
    shared: Arc<Shared>,
}

/// How long a Maelstrom receiver sleeps for an envelope popped at `now`: the
/// remaining time truncated to whole milliseconds (`Thread/sleep (long dt)`),
/// so a delivery can come up to 1 ms before its deadline.
pub fn scheduled_delivery(deadline: Instant, now: Instant) -> Instant {
    let remaining = deadline.saturating_duration_since(now);
    now + Duration::from_millis(remaining.as_millis() as u64)
}

impl NetState {
    fn journal_send(&mut self, id: u64, src: &str, dest: &str, body: &str, at: Instant) {
        if let Some(j) = self.journal.as_mut() {
            j.record(JournalKind::Send, id, src, dest);
        }
        if let Some(log) = self.messages.as_mut() {
            log.send(id, src, dest, body, at);
        }
    }

    fn journal_recv(&mut self, id: u64, src: &str, dest: &str) {
        if let Some(j) = self.journal.as_mut() {
            j.record(JournalKind::Recv, id, src, dest);
        }
        if let Some(log) = self.messages.as_mut() {
            log.recv(id, Instant::now);
        }
    }

    fn endpoint_exists(&self, id: &str) -> bool {
        self.endpoints.contains_key(id)
    }

    /// The receiver loop of node `n`, run until it sleeps or its queue is
    /// empty: pop the earliest envelope, drop it if `n` is down (or
    /// restarting and the source is not one of its setup clients) or
    /// refuses its source, deliver it if it is due (jitter included),
    /// otherwise sleep on it.
    fn advance(&mut self, n: usize, now: Instant) -> Option<Instant> {
        loop {
            let Reverse(q) = self.nodes[n].1.heap.pop()?;
            let reachable = match &self.nodes[n].1.state {
                NodeState::Up => true,
                NodeState::Down => false,
                NodeState::Restarting(allowed) => allowed.contains(&q.src),
            };
            if !reachable {
                self.faults.count(MessageFault::LostToDownNode, now);
                continue;
            }
            let refused = self
                .grudge
                .get(&self.nodes[n].0)
                .is_some_and(|srcs| srcs.contains(&q.src));
            if refused {
                self.faults.count(MessageFault::DroppedByPartition, now);
                continue;
            }
            // Each envelope is late by its own draw; the loop still hands
            // them over one after another (head-of-line), so a burst is as
            // late as its latest draw, not the sum of them.
            let due = if q.deadline > now {
                scheduled_delivery(q.deadline, now)
            } else {
                q.deadline
            };
            let wake = (due + self.jitter_draw()).max(now);
            if wake <= now {
                self.deliver(n, q, now);
                continue;
            }
            self.nodes[n].1.sleeping = Some((wake, q));
            self.timers.push(Reverse((wake, n)));
            return Some(wake);
        }
    }

    /// `--delivery-jitter-ms`: one exponential draw (zero when off).
    fn jitter_draw(&mut self) -> Duration {
        match self.jitter {
            Some(exp) => Duration::from_secs_f64(exp.sample(&mut self.rng) / 1000.0),
            None => Duration::ZERO,
        }
    }

    /// Hands an envelope to node `n`'s stdin writer, which measures how
    /// late the line got into the pipe against `intended` (the wake-up
    /// instant, or the pop for an envelope that was already due).
    fn deliver(&mut self, n: usize, q: Queued, intended: Instant) {
        let dest = self.nodes[n].0.clone();
        self.journal_recv(q.id, &q.src, &dest);
        let node = &self.nodes[n].1;
        let delivery = Delivery {
            stage: if is_client(&q.src) {
                Stage::ClientRequests
            } else {
                Stage::NodeDeliveries
            },
            line: q.line,
            intended,
            epoch: node.pause_epoch.load(Ordering::Relaxed),
        };
        // A node that exited has no stdin reader left; Maelstrom's write
        // fails silently the same way and the message counts as received.
        let _ = node.stdin.send(delivery);
    }

    /// Fires every timer due at `now`, running each woken loop on. A timer
    /// whose envelope a kill discarded finds nothing (or a later envelope
    /// with its own timer) and does nothing.
    fn fire_due(&mut self, now: Instant) {
        while let Some(&Reverse((wake, n))) = self.timers.peek() {
            if wake > now {
                break;
            }
            self.timers.pop();
            let sleeping = &mut self.nodes[n].1.sleeping;
            if sleeping.as_ref().is_some_and(|(w, _)| *w == wake) {
                if let Some((_, q)) = sleeping.take() {
                    self.deliver(n, q, wake);
                    self.advance(n, now);
                }
            }
        }
    }

    fn node_index(&self, id: &str) -> Option<usize> {
        match self.endpoints.get(id) {
            Some(Endpoint::Node(n)) => Some(*n),
            _ => None,
        }
    }
}

impl Network {
    /// Creates the network (its journal opens now) and starts the timing
    /// thread that serves node queues.
    pub fn start(config: NetConfig) -> std::io::Result<Network> {
        let shared = Arc::new(Shared {
            state: Mutex::new(NetState {
                next_id: 0,
                endpoints: HashMap::new(),
                nodes: Vec::new(),
                timers: BinaryHeap::new(),
                grudge: Grudge::new(),
                journal: Some(NetStats::default()),
                messages: Some(MessageLog::default()),
                faults: MessageFaults::new(Instant::now()),
                config,
                jitter: (config.jitter_ms > 0.0)
                    .then(|| Exp::new(1.0 / config.jitter_ms).ok())
                    .flatten(),
                rng: StdRng::seed_from_u64(config.seed),
                shutdown: false,
                realtime: false,
            }),
            timer_changed: Condvar::new(),
            lateness: Arc::new(LatenessLog::default()),
        });
        let timing = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("net-timing".into())
            .spawn(move || timing_loop(&timing))?;
        Ok(Network { shared })
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a server node; returns the lines to write to its stdin.
    pub fn add_node(&self, id: &str) -> UnboundedReceiver<Delivery> {
        let (tx, rx) = unbounded_channel();
        let mut st = self.lock();
        let n = st.nodes.len();
        st.nodes.push((
            id.to_string(),
            NodeQueue {
                heap: BinaryHeap::new(),
                sleeping: None,
                stdin: tx,
                state: NodeState::Up,
                pause_epoch: Arc::new(AtomicU64::new(0)),
            },
        ));
        st.endpoints.insert(id.to_string(), Endpoint::Node(n));
        rx
    }

    /// Where every stage of the harness records its lateness.
    pub fn lateness(&self) -> Arc<LatenessLog> {
        Arc::clone(&self.shared.lateness)
    }

    /// Node `id`'s pause epoch (odd while paused), for its stdin writer.
    pub fn pause_epoch(&self, id: &str) -> Arc<AtomicU64> {
        let st = self.lock();
        match st.node_index(id) {
            Some(n) => Arc::clone(&st.nodes[n].1.pause_epoch),
            None => Arc::new(AtomicU64::new(0)),
        }
    }

    /// Test time 0: fault counts are kept by second from here (earlier
    /// ones count in second 0).
    pub fn set_time_zero(&self, t0: Instant) {
        self.lock().faults.set_time_zero(t0);
    }

    /// Kill nemesis: node `id` is down. Its queue (and the envelope its
    /// loop sleeps on) is discarded, and so is everything dequeued for it
    /// until [`Network::restart_node`].
    pub fn take_down(&self, id: &str) {
        let mut st = self.lock();
        let Some(n) = st.node_index(id) else { return };
        let now = Instant::now();
        let node = &mut st.nodes[n].1;
        node.state = NodeState::Down;
        let discarded = node.heap.len() + usize::from(node.sleeping.take().is_some());
        node.heap.clear();
        for _ in 0..discarded {
            st.faults.count(MessageFault::LostToDownNode, now);
        }
    }

    /// Node `id` restarts: a fresh stdin, and until [`Network::mark_up`]
    /// only the clients in `setup_clients` reach it.
    pub fn restart_node(
        &self,
        id: &str,
        setup_clients: Vec<String>,
    ) -> UnboundedReceiver<Delivery> {
        let (tx, rx) = unbounded_channel();
        let mut st = self.lock();
        if let Some(n) = st.node_index(id) {
            let node = &mut st.nodes[n].1;
            node.stdin = tx;
            node.state = NodeState::Restarting(setup_clients);
        }
        rx
    }

    /// Node `id` is up again (after a restart's `topology_ok`).
    pub fn mark_up(&self, id: &str) {
        let mut st = self.lock();
        if let Some(n) = st.node_index(id) {
            st.nodes[n].1.state = NodeState::Up;
        }
    }

    /// Pause nemesis bookkeeping: deliveries go on (into the pipe), but a
    /// line whose write spans a pause or resume is not a lateness sample.
    pub fn set_paused(&self, id: &str, paused: bool) {
        let st = self.lock();
        if let Some(n) = st.node_index(id) {
            let epoch = &st.nodes[n].1.pause_epoch;
            let odd = epoch.load(Ordering::Relaxed) % 2 == 1;
            if odd != paused {
                epoch.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Journals a client's receipt of a message, when the client takes it
    /// from its inbox (spec 11.1).
    pub fn journal_client_recv(&self, msg: &ClientMessage) {
        self.lock().journal_recv(msg.id, &msg.src, &msg.dest);
    }

    /// Registers a client; returns its inbox.
    pub fn add_client(&self, id: &str) -> UnboundedReceiver<ClientMessage> {
        let (tx, rx) = unbounded_channel();
        self.lock()
            .endpoints
            .insert(id.to_string(), Endpoint::Client(tx));
        rx
    }

    /// Removes a client; later messages to it are rejected.
    pub fn remove_client(&self, id: &str) {
        self.lock().endpoints.remove(id);
    }

    /// Routes a line a node wrote to its stdout.
    pub fn send_line(&self, line: &str) -> Result<(), Rejection> {
        let out = parse_node_line(line)?;
        self.send(&out.src, &out.dest, &out.body)
    }

    /// Sends a message from a client (or any registered endpoint).
    pub fn send_body(&self, src: &str, dest: &str, body: &Value) -> Result<(), Rejection> {
        self.send(src, dest, &body.to_string())
    }

    /// Spec 4.1's send: id, endpoint check, latency draw, journal, loss,
    /// then enqueue (or hand straight to a client, which has no latency and
    /// is never partitioned), with `--p-dup`'s second copy of an inter-node
    /// message (its own latency draw; one send, two receives).
    fn send(&self, src: &str, dest: &str, body: &str) -> Result<(), Rejection> {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        if !st.endpoint_exists(src) {
            return Err(Rejection::UnknownSource(src.to_string()));
        }
        let Some(endpoint) = st.endpoints.get(dest) else {
            return Err(Rejection::UnknownDest(dest.to_string()));
        };
        let target = match endpoint {
            Endpoint::Node(n) => Ok(*n),
            Endpoint::Client(tx) => Err(tx.clone()),
        };
        let now = Instant::now();
        let involves_client = is_client(src) || is_client(dest);
        let latency_ms = if involves_client {
            0
        } else {
            let latency = st.config.latency;
            latency.draw_ms(&mut st.rng)
        };
        st.journal_send(id, src, dest, body, now);
        let p_loss = st.config.p_loss;
        let loss_applies = p_loss > 0.0 && !(involves_client && st.config.loss_exempts_clients);
        if loss_applies && st.rng.random_bool(p_loss) {
            st.faults.count(MessageFault::LostToLoss, now);
            return Ok(());
        }
        match target {
            Err(client) => {
                let body = serde_json::from_str(body).unwrap_or(Value::Null);
                let _ = client.send(ClientMessage {
                    id,
                    src: src.to_string(),
                    dest: dest.to_string(),
                    body,
                });
            }
            Ok(n) => {
                let line = wire_line(id, src, dest, body);
                let p_dup = st.config.p_dup;
                if !involves_client && p_dup > 0.0 && st.rng.random_bool(p_dup) {
                    let latency = st.config.latency;
                    let copy = Queued {
                        deadline: now + Duration::from_millis(latency.draw_ms(&mut st.rng)),
                        id,
                        src: src.to_string(),
                        line: line.clone(),
                    };
                    st.nodes[n].1.heap.push(Reverse(copy));
                    st.faults.count(MessageFault::Duplicated, now);
                }
                let queued = Queued {
                    deadline: now + Duration::from_millis(latency_ms),
                    id,
                    src: src.to_string(),
                    line,
                };
                st.nodes[n].1.heap.push(Reverse(queued));
                if st.nodes[n].1.sleeping.is_none() {
                    let earliest = st.timers.peek().map(|Reverse((t, _))| *t);
                    // The receiver pops a moment after the send, as
                    // Maelstrom's woken thread does, so the truncation of
                    // the remaining time to whole ms applies here too.
                    if let Some(wake) = st.advance(n, Instant::now()) {
                        if earliest.is_none_or(|t| wake < t) {
                            self.shared.timer_changed.notify_one();
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a grudge (dest -> refused sources) on top of the current one.
    pub fn partition(&self, grudge: &Grudge) {
        let mut st = self.lock();
        for (dest, srcs) in grudge {
            st.grudge
                .entry(dest.clone())
                .or_default()
                .extend(srcs.iter().cloned());
        }
    }

    /// Clears every partition.
    pub fn heal(&self) {
        self.lock().grudge.clear();
    }

    /// Closes the journal (messages stop counting) and returns what the
    /// network measured. Later calls return empty statistics.
    pub fn close_journal(&self) -> NetReport {
        let mut st = self.lock();
        let t0 = st.faults.time_zero();
        NetReport {
            stats: st.journal.take().unwrap_or_default(),
            realtime: st.realtime,
            messages: st.messages.take().unwrap_or_default(),
            faults: std::mem::replace(&mut st.faults, MessageFaults::new(t0)),
        }
    }

    /// Messages journaled so far, all traffic (for the progress line).
    pub fn messages_so_far(&self) -> u64 {
        self.lock()
            .journal
            .as_ref()
            .map_or(0, |j| j.summary(0).all.msg_count)
    }

    /// Stops the timing thread; pending envelopes are discarded.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.shared.timer_changed.notify_one();
    }
}

/// Asks for real-time (SCHED_FIFO) scheduling for the calling thread, so
/// that a burst of runnable node processes cannot delay a due delivery on a
/// small machine. Without the privilege the thread keeps normal scheduling.
fn prefer_realtime() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sets the scheduling policy of the current thread only; the
    // parameter struct lives for the call.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
}

fn timing_loop(shared: &Shared) {
    let realtime = prefer_realtime();
    let mut st = shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    st.realtime = realtime;
    loop {
        if st.shutdown {
            return;
        }
        let now = Instant::now();
        st.fire_due(now);
        let next = st.timers.peek().map(|Reverse((t, _))| *t);
        st = match next {
            Some(wake) => {
                let wait = wake.saturating_duration_since(Instant::now());
                shared
                    .timer_changed
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0
            }
            None => shared
                .timer_changed
                .wait(st)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_latency_is_the_mean() {
        let lat = Latency::new(7, LatencyDist::Constant).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..100).all(|_| lat.draw_ms(&mut rng) == 7));
        let zero = Latency::new(0, LatencyDist::Constant).unwrap();
        assert_eq!(zero.draw_ms(&mut rng), 0);
    }

    #[test]
    fn uniform_latency_covers_zero_to_twice_the_mean_exclusive() {
        let lat = Latency::new(5, LatencyDist::Uniform).unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        let mut seen = [0u32; 10];
        for _ in 0..20_000 {
            let d = lat.draw_ms(&mut rng) as usize;
            assert!(d < 10, "draw {d} outside [0, 10)");
            seen[d] += 1;
        }
        // Every integer in [0, 2m) occurs, roughly equally often.
        assert!(
            seen.iter().all(|&c| (1_500..2_500).contains(&c)),
            "{seen:?}"
        );
    }

    #[test]
    fn exponential_latency_is_floored_with_mean_near_m_minus_half() {
        let lat = Latency::new(100, LatencyDist::Exponential).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let n = 200_000;
        let sum: u64 = (0..n).map(|_| lat.draw_ms(&mut rng)).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean - 99.5).abs() < 1.5, "mean {mean}");
    }

    #[test]
    fn zero_mean_rejected_for_uniform_and_exponential() {
        assert!(Latency::new(0, LatencyDist::Uniform).is_err());
        assert!(Latency::new(0, LatencyDist::Exponential).is_err());
        assert!(Latency::new(1, LatencyDist::Uniform).is_ok());
    }

    #[test]
    fn envelope_accepts_exact_keys_and_integer_id() {
        let ok = parse_node_line(r#"{"src":"n0","dest":"c1","body":{"type":"x"}}"#).unwrap();
        assert_eq!(ok.src, "n0");
        assert_eq!(ok.dest, "c1");
        assert_eq!(ok.body, r#"{"type":"x"}"#);
        assert!(parse_node_line(r#"{"id":3,"src":"n0","dest":"n1","body":{}}"#).is_ok());
        let null_body = parse_node_line(r#"{"src":"n0","dest":"n1","body":null}"#).unwrap();
        assert_eq!(null_body.body, "{}");
    }

    #[test]
    fn envelope_rejects_bad_shapes() {
        let malformed =
            |line: &str| matches!(parse_node_line(line), Err(Rejection::MalformedEnvelope(_)));
        assert!(malformed(r#"{"src":"n0","dest":"n1","body":{},"extra":1}"#));
        assert!(malformed(r#"{"src":"n0","body":{}}"#));
        assert!(malformed(r#"{"src":1,"dest":"n1","body":{}}"#));
        assert!(malformed(r#"{"src":"n0","dest":"n1","body":[1]}"#));
        assert!(malformed(r#"{"src":"n0","dest":"n1","body":{},"id":null}"#));
        assert!(malformed(r#"{"src":"n0","dest":"n1","body":{},"id":1.5}"#));
        assert!(malformed(r#"[1,2]"#));
        for junk in ["", "   ", "hello", r#"{"src":"n0""#] {
            assert!(
                matches!(parse_node_line(junk), Err(Rejection::NotJson(_))),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn wire_line_orders_keys_id_src_dest_body() {
        assert_eq!(
            wire_line(9, "n0", "n\"1", r#"{"a":1}"#),
            "{\"id\":9,\"src\":\"n0\",\"dest\":\"n\\\"1\",\"body\":{\"a\":1}}\n"
        );
    }

    #[test]
    fn scheduled_delivery_truncates_remaining_time_to_whole_ms() {
        let now = Instant::now();
        let d = |us| now + Duration::from_micros(us);
        assert_eq!(scheduled_delivery(d(9_999), now), d(9_000));
        assert_eq!(scheduled_delivery(d(10_000), now), d(10_000));
        assert_eq!(scheduled_delivery(d(700), now), now);
        assert_eq!(scheduled_delivery(now, d(5)), d(5));
    }

    fn collect_lines(rx: &mut UnboundedReceiver<Delivery>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(d) = rx.try_recv() {
            out.push(serde_json::from_str(&d.line).unwrap());
        }
        out
    }

    fn config(latency_ms: u64) -> NetConfig {
        NetConfig {
            latency: Latency::new(latency_ms, LatencyDist::Constant).unwrap(),
            p_loss: 0.0,
            loss_exempts_clients: false,
            p_dup: 0.0,
            jitter_ms: 0.0,
            seed: 0,
        }
    }

    fn net(latency_ms: u64) -> Network {
        Network::start(config(latency_ms)).unwrap()
    }

    #[test]
    fn client_messages_are_immediate_and_carry_global_ids() {
        let net = net(50);
        let mut n0 = net.add_node("n0");
        let mut c0 = net.add_client("c0");
        net.send_body("c0", "n0", &serde_json::json!({"type":"read","msg_id":1}))
            .unwrap();
        let got = collect_lines(&mut n0);
        assert_eq!(
            got.len(),
            1,
            "zero-latency client request delivered at once"
        );
        assert_eq!(got[0]["id"], 0);
        assert_eq!(got[0]["src"], "c0");
        net.send_line(r#"{"src":"n0","dest":"c0","body":{"type":"read_ok"}}"#)
            .unwrap();
        let reply = c0.try_recv().unwrap();
        assert_eq!(reply.src, "n0");
        assert_eq!(reply.body["type"], "read_ok");
        let report = net.close_journal();
        assert_eq!(
            report.stats.summary(1).clients.recv_count,
            1,
            "not yet taken"
        );
        net.shutdown();
    }

    #[test]
    fn unknown_endpoints_are_rejected_and_not_journaled() {
        let net = net(0);
        let _n0 = net.add_node("n0");
        assert_eq!(
            net.send_line(r#"{"src":"n0","dest":"n9","body":{}}"#),
            Err(Rejection::UnknownDest("n9".into()))
        );
        assert_eq!(
            net.send_line(r#"{"src":"c4","dest":"n0","body":{}}"#),
            Err(Rejection::UnknownSource("c4".into()))
        );
        let _c1 = net.add_client("c1");
        net.remove_client("c1");
        assert!(net
            .send_line(r#"{"src":"n0","dest":"c1","body":{}}"#)
            .is_err());
        let report = net.close_journal();
        assert_eq!(report.stats.summary(1).all.send_count, 0);
        net.shutdown();
    }

    #[test]
    fn inter_node_messages_wait_for_their_latency() {
        let net = net(30);
        let _n0 = net.add_node("n0");
        let mut n1 = net.add_node("n1");
        let start = Instant::now();
        net.send_line(r#"{"src":"n0","dest":"n1","body":{"v":1}}"#)
            .unwrap();
        assert!(collect_lines(&mut n1).is_empty());
        let line = n1.blocking_recv().unwrap().line;
        let waited = start.elapsed();
        // Truncation makes it 29 ms and a bit; never less than 29 ms.
        assert!(waited >= Duration::from_millis(29), "{waited:?}");
        assert!(line.contains(r#""body":{"v":1}"#));
        net.shutdown();
    }

    #[test]
    fn partition_drops_at_dequeue_and_heal_restores() {
        let net = net(20);
        let _n0 = net.add_node("n0");
        let mut n1 = net.add_node("n1");
        let grudge: Grudge = [("n1".to_string(), ["n0".to_string()].into())].into();
        // First message is popped immediately (idle loop) and so delivered
        // even though the partition starts before its deadline.
        net.send_line(r#"{"src":"n0","dest":"n1","body":{"k":1}}"#)
            .unwrap();
        net.partition(&grudge);
        net.send_line(r#"{"src":"n0","dest":"n1","body":{"k":2}}"#)
            .unwrap();
        let first = n1.blocking_recv().unwrap().line;
        assert!(first.contains(r#"{"k":1}"#));
        // The second was dequeued during the partition: dropped, not delayed.
        std::thread::sleep(Duration::from_millis(60));
        assert!(collect_lines(&mut n1).is_empty());
        net.heal();
        net.send_line(r#"{"src":"n0","dest":"n1","body":{"k":3}}"#)
            .unwrap();
        assert!(n1.blocking_recv().unwrap().line.contains(r#"{"k":3}"#));
        let stats = net.close_journal().stats.summary(1);
        assert_eq!(stats.servers.send_count, 3);
        assert_eq!(stats.servers.recv_count, 2);
        net.shutdown();
    }

    #[test]
    fn head_of_line_blocking_delays_a_later_earlier_deadline() {
        let net = net(40);
        let _n0 = net.add_node("n0");
        let mut n1 = net.add_node("n1");
        let _c0 = net.add_client("c0");
        let start = Instant::now();
        net.send_line(r#"{"src":"n0","dest":"n1","body":{"slow":1}}"#)
            .unwrap();
        // The client request (deadline now) waits behind the sleeping loop.
        net.send_body("c0", "n1", &serde_json::json!({"fast":1}))
            .unwrap();
        assert!(collect_lines(&mut n1).is_empty());
        let a = n1.blocking_recv().unwrap().line;
        let b = n1.blocking_recv().unwrap().line;
        assert!(start.elapsed() >= Duration::from_millis(39));
        assert!(a.contains("slow") && b.contains("fast"));
        net.shutdown();
    }

    #[test]
    fn a_client_receipt_is_journaled_when_the_client_takes_it() {
        let net = net(0);
        let _n0 = net.add_node("n0");
        let mut c0 = net.add_client("c0");
        net.send_line(r#"{"src":"n0","dest":"c0","body":{"type":"read_ok"}}"#)
            .unwrap();
        let recvs = |net: &Network| {
            let mut st = net.lock();
            let stats = st.journal.take().unwrap();
            let n = stats.summary(1).clients.recv_count;
            st.journal = Some(stats);
            n
        };
        assert_eq!(recvs(&net), 0);
        let msg = c0.try_recv().unwrap();
        assert_eq!((msg.id, msg.dest.as_str()), (0, "c0"));
        net.journal_client_recv(&msg);
        assert_eq!(recvs(&net), 1);
        net.shutdown();
    }

    #[test]
    fn loss_can_exempt_clients() {
        for exempt in [false, true] {
            let net = Network::start(NetConfig {
                p_loss: 1.0,
                loss_exempts_clients: exempt,
                ..config(0)
            })
            .unwrap();
            let mut n0 = net.add_node("n0");
            let _n1 = net.add_node("n1");
            let _c0 = net.add_client("c0");
            net.send_body("c0", "n0", &serde_json::json!({"type": "read"}))
                .unwrap();
            net.send_line(r#"{"src":"n1","dest":"n0","body":{}}"#)
                .unwrap();
            let got = collect_lines(&mut n0);
            assert_eq!(got.len(), usize::from(exempt), "exempt {exempt}: {got:?}");
            let report = net.close_journal();
            assert_eq!(
                report.faults.total(MessageFault::LostToLoss),
                2 - u64::from(exempt)
            );
            assert_eq!(
                report.stats.summary(1).all.send_count,
                2,
                "lost still counts as sent"
            );
            net.shutdown();
        }
    }

    #[test]
    fn a_duplicated_message_is_one_send_and_two_receives() {
        let net = Network::start(NetConfig {
            p_dup: 1.0,
            ..config(0)
        })
        .unwrap();
        let mut n0 = net.add_node("n0");
        let _n1 = net.add_node("n1");
        let mut c0 = net.add_client("c0");
        net.send_line(r#"{"src":"n1","dest":"n0","body":{"v":1}}"#)
            .unwrap();
        net.send_body("c0", "n0", &serde_json::json!({"type": "read"}))
            .unwrap();
        net.send_line(r#"{"src":"n0","dest":"c0","body":{"type":"read_ok"}}"#)
            .unwrap();
        let got = collect_lines(&mut n0);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            (&got[0], &got[1]),
            (&got[1], &got[0]),
            "the same envelope, same id"
        );
        assert_eq!(got[2]["src"], "c0", "clients never see duplicates");
        assert!(c0.try_recv().is_ok() && c0.try_recv().is_err());
        let report = net.close_journal();
        let servers = report.stats.summary(1).servers;
        assert_eq!(
            (servers.send_count, servers.recv_count, servers.msg_count),
            (1, 2, 1)
        );
        assert_eq!(report.faults.total(MessageFault::Duplicated), 1);
        net.shutdown();
    }

    #[test]
    fn a_down_node_loses_its_queue_and_a_restarting_one_hears_only_its_setup_clients() {
        let net = net(30);
        let mut n0 = net.add_node("n0");
        let _n1 = net.add_node("n1");
        let _c0 = net.add_client("c0");
        let _c1 = net.add_client("c1");
        net.send_line(r#"{"src":"n1","dest":"n0","body":{"queued":1}}"#)
            .unwrap();
        net.take_down("n0");
        net.send_line(r#"{"src":"n1","dest":"n0","body":{"down":1}}"#)
            .unwrap();
        net.send_body("c0", "n0", &serde_json::json!({"down": 2}))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(collect_lines(&mut n0).is_empty());
        let mut restarted = net.restart_node("n0", vec!["c1".into()]);
        assert!(n0.blocking_recv().is_none(), "the old stdin is closed");
        net.send_body("c0", "n0", &serde_json::json!({"other": 1}))
            .unwrap();
        net.send_body("c1", "n0", &serde_json::json!({"init": 1}))
            .unwrap();
        let got = collect_lines(&mut restarted);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["body"]["init"], 1);
        net.mark_up("n0");
        net.send_body("c0", "n0", &serde_json::json!({"up": 1}))
            .unwrap();
        assert_eq!(collect_lines(&mut restarted).len(), 1);
        let report = net.close_journal();
        // The queued and sleeping one, two while down, one while restarting.
        assert_eq!(report.faults.total(MessageFault::LostToDownNode), 4);
        net.shutdown();
    }

    #[test]
    fn jitter_makes_each_delivery_late_by_its_own_draw_in_order() {
        let mean_ms = 2.0;
        let net = Network::start(NetConfig {
            jitter_ms: mean_ms,
            ..config(0)
        })
        .unwrap();
        let mut n0 = net.add_node("n0");
        let _n1 = net.add_node("n1");
        // Spread out: each envelope is late by about its own draw.
        let n = 150;
        let mut late_ms = Vec::new();
        for k in 0..n {
            let sent = Instant::now();
            net.send_line(&format!(r#"{{"src":"n1","dest":"n0","body":{{"k":{k}}}}}"#))
                .unwrap();
            let d = n0.blocking_recv().unwrap();
            assert!(d.line.contains(&format!(r#"{{"k":{k}}}"#)));
            late_ms.push((Instant::now() - sent).as_secs_f64() * 1000.0);
        }
        let mean = late_ms.iter().sum::<f64>() / n as f64;
        assert!(mean >= 0.7 * mean_ms, "mean lateness {mean} ms");
        let sd = (late_ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(
            sd > 0.4 * mean,
            "lateness too regular: sd {sd}, mean {mean}"
        );
        // A burst all due at once: delivered in order, and as late as its
        // latest draws (about J times ln 60 ≈ 8 ms), not the sum (120 ms).
        let burst = 60;
        let start = Instant::now();
        for k in 0..burst {
            net.send_line(&format!(r#"{{"src":"n1","dest":"n0","body":{{"b":{k}}}}}"#))
                .unwrap();
        }
        for k in 0..burst {
            let d = n0.blocking_recv().unwrap();
            assert!(
                d.line.contains(&format!(r#"{{"b":{k}}}"#)),
                "head-of-line order"
            );
        }
        let whole = start.elapsed().as_secs_f64() * 1000.0;
        assert!(
            whole < 0.5 * burst as f64 * mean_ms,
            "burst took {whole} ms"
        );
        net.shutdown();
    }

    #[test]
    fn partition_drops_are_counted() {
        let net = net(0);
        let _n0 = net.add_node("n0");
        let _n1 = net.add_node("n1");
        net.partition(&[("n1".to_string(), ["n0".to_string()].into())].into());
        net.send_line(r#"{"src":"n0","dest":"n1","body":{}}"#)
            .unwrap();
        let report = net.close_journal();
        assert_eq!(report.faults.total(MessageFault::DroppedByPartition), 1);
        net.shutdown();
    }
}
