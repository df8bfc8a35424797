//! The broadcast workload's client side (spec 2.4-2.6, 1.6, 6): the history
//! recorder, Maelstrom clients and their RPCs, reply validation against the
//! closed schemas, error-code semantics, worker selection, the global
//! stagger, the main phase's operation generator and the final reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::history::{to_txt, Event, EventType, OpError, Process};
use super::lateness::Stage;
use super::network::{ClientMessage, Network};
use super::output::Logger;
use super::progress::Tally;
use super::results::ExceptionRecord;

/// Timeout of a client `broadcast` or `read` RPC.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// `--thread-pick`: how a free worker is chosen for the next operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ThreadPick {
    /// Jepsen 0.3.x: the first free worker at or after a rotating cursor.
    RoundRobin,
    /// Older Jepsen: a uniformly random free worker.
    Random,
}

/// Chooses which free worker runs the next operation. The rotation has one
/// slot per client worker plus one for the nemesis; every dispatched
/// operation (client or nemesis) moves the cursor by one, and a cursor on
/// the nemesis slot wraps to worker 0 when client work is picked.
#[derive(Debug, Clone)]
pub struct WorkerPicker {
    cursor: usize,
    slots: usize,
    mode: ThreadPick,
}

impl WorkerPicker {
    pub fn new(workers: usize, mode: ThreadPick) -> WorkerPicker {
        WorkerPicker {
            cursor: 0,
            slots: workers + 1,
            mode,
        }
    }

    /// A free worker, or None if all are busy.
    pub fn pick<R: Rng + ?Sized>(&self, free: &[bool], rng: &mut R) -> Option<usize> {
        match self.mode {
            ThreadPick::RoundRobin => (self.cursor..free.len())
                .chain(0..self.cursor.min(free.len()))
                .find(|&w| free[w]),
            ThreadPick::Random => {
                let candidates: Vec<usize> = (0..free.len()).filter(|&w| free[w]).collect();
                if candidates.is_empty() {
                    None
                } else {
                    Some(candidates[rng.random_range(0..candidates.len())])
                }
            }
        }
    }

    /// Records that an operation (client or nemesis) was dispatched.
    pub fn dispatched(&mut self) {
        self.cursor = (self.cursor + 1) % self.slots;
    }
}

/// One gap of Jepsen's global stagger: uniform in `[0, 2·mean)`.
pub fn stagger_gap<R: Rng + ?Sized>(mean: Duration, rng: &mut R) -> Duration {
    mean.mul_f64(2.0 * rng.random::<f64>())
}

/// An operation a worker performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Broadcast(u64),
    Read,
}

impl Op {
    pub fn f(self) -> &'static str {
        match self {
            Op::Broadcast(_) => "broadcast",
            Op::Read => "read",
        }
    }

    fn value(self) -> Value {
        match self {
            Op::Broadcast(v) => json!(v),
            Op::Read => Value::Null,
        }
    }

    fn request(self) -> Map<String, Value> {
        let body = match self {
            Op::Broadcast(v) => json!({"type": "broadcast", "message": v}),
            Op::Read => json!({"type": "read"}),
        };
        match body {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Maelstrom's error codes (spec 1.6): name and whether it is definite.
pub fn error_code(code: i64) -> Option<(&'static str, bool)> {
    Some(match code {
        0 => ("timeout", false),
        1 => ("node-not-found", true),
        10 => ("not-supported", true),
        11 => ("temporarily-unavailable", true),
        12 => ("malformed-request", true),
        13 => ("crash", false),
        14 => ("abort", true),
        20 => ("key-does-not-exist", true),
        21 => ("key-already-exists", true),
        22 => ("precondition-failed", true),
        30 => ("txn-conflict", true),
        _ => return None,
    })
}

/// How an operation completed.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Ok(Value),
    Fail(OpError),
    Info(OpError),
    /// A reply that broke the closed schema: `:info` plus an exception.
    Malformed(String),
}

fn is_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

/// Checks a reply body against the closed schema of the expected type:
/// exactly `type` and `in_reply_to` (integer), an optional integer `msg_id`,
/// and for `read_ok` a `messages` array (`null` reads as empty). Returns the
/// first problem, in Maelstrom's wording where it has one.
pub fn schema_problem(expected_type: &str, body: &Map<String, Value>) -> Option<String> {
    let allowed: &[&str] = if expected_type == "read_ok" {
        &["type", "in_reply_to", "msg_id", "messages"]
    } else {
        &["type", "in_reply_to", "msg_id"]
    };
    if let Some(extra) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Some(format!("{{:{extra} disallowed-key}}"));
    }
    if body.get("type").and_then(Value::as_str) != Some(expected_type) {
        return Some(format!(
            "{{:type (not (= {expected_type:?} {}))}}",
            body.get("type").unwrap_or(&Value::Null)
        ));
    }
    if !body.get("in_reply_to").is_some_and(is_int) {
        return Some("{:in_reply_to (not (integer? ...))}".into());
    }
    if body.get("msg_id").is_some_and(|m| !is_int(m)) {
        return Some("{:msg_id (not (integer? ...))}".into());
    }
    if expected_type == "read_ok" {
        match body.get("messages") {
            Some(Value::Array(_)) | Some(Value::Null) => {}
            Some(_) => return Some("{:messages (not (sequential? ...))}".into()),
            None => return Some("{:messages missing-required-key}".into()),
        }
    }
    None
}

/// Turns the reply to an operation into its completion (spec 1.6, 2.1, 6).
pub fn classify_reply(op: Op, node: &str, request: &Value, reply: &Value) -> Completion {
    let Some(body) = reply.as_object() else {
        return Completion::Malformed(format!("reply body {reply} is not a map"));
    };
    if body.get("type").and_then(Value::as_str) == Some("error") {
        let code = body.get("code").and_then(Value::as_i64);
        let known = code.and_then(error_code);
        let error = OpError::Reply {
            name: known.map_or("unknown", |(name, _)| name).to_string(),
            text: body.get("text").and_then(Value::as_str).map(str::to_string),
        };
        let definite = known.is_some_and(|(_, definite)| definite);
        // Only reads are idempotent, so any error on a read is a :fail.
        return if definite || op == Op::Read {
            Completion::Fail(error)
        } else {
            Completion::Info(error)
        };
    }
    let expected = match op {
        Op::Broadcast(_) => "broadcast_ok",
        Op::Read => "read_ok",
    };
    if let Some(problem) = schema_problem(expected, body) {
        return Completion::Malformed(format!(
            "Malformed RPC response. Maelstrom sent node {node} the following request: {request} \
             And expected a response of the form {{:type \"{expected}\", :in_reply_to Int, \
             (optional-key :msg_id) Int{}}} but instead received {reply} \
             This is malformed because: {problem}",
            if op == Op::Read {
                ", :messages [Any]"
            } else {
                ""
            }
        ));
    }
    match op {
        Op::Broadcast(v) => Completion::Ok(json!(v)),
        Op::Read => Completion::Ok(match body.get("messages") {
            Some(Value::Array(items)) => Value::Array(items.clone()),
            _ => Value::Array(Vec::new()),
        }),
    }
}

/// The history as it is recorded, plus the exceptions of crashed ops.
pub struct Recorder {
    t0: Instant,
    events: Mutex<Vec<Event>>,
    exceptions: Mutex<Vec<ExceptionRecord>>,
    logger: Logger,
    tally: Option<Arc<Tally>>,
}

impl Recorder {
    /// A recorder whose time 0 is `t0`.
    pub fn new(t0: Instant, logger: Logger) -> Recorder {
        Recorder {
            t0,
            events: Mutex::new(Vec::new()),
            exceptions: Mutex::new(Vec::new()),
            logger,
            tally: None,
        }
    }

    /// Also tells `tally` (the progress line) about every event.
    pub fn observed_by(self, tally: Arc<Tally>) -> Recorder {
        Recorder {
            tally: Some(tally),
            ..self
        }
    }

    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// Appends an event, stamping its index and time under one lock so
    /// that times never decrease along the history.
    pub fn record(
        &self,
        kind: EventType,
        process: Process,
        f: &str,
        value: Value,
        final_read: bool,
        error: Option<OpError>,
    ) -> Event {
        let event = {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            let event = Event {
                index: events.len() as u64,
                time_ns: self.t0.elapsed().as_nanos() as u64,
                kind,
                process,
                f: f.to_string(),
                value,
                final_read,
                error,
            };
            events.push(event.clone());
            event
        };
        self.logger
            .info(to_txt(std::slice::from_ref(&event)).trim_end());
        if let Some(tally) = &self.tally {
            tally.observe(&event);
        }
        event
    }

    fn exception(&self, record: ExceptionRecord) {
        self.exceptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    /// The recorded history and exceptions.
    pub fn finish(&self) -> (Vec<Event>, Vec<ExceptionRecord>) {
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()));
        let exceptions =
            std::mem::take(&mut *self.exceptions.lock().unwrap_or_else(|p| p.into_inner()));
        (events, exceptions)
    }
}

/// Hands out client ids `c0, c1, ...` from one global counter.
#[derive(Default)]
pub struct ClientIds(AtomicU64);

impl ClientIds {
    pub fn next(&self) -> String {
        format!("c{}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// An RPC that got no matching reply in time.
#[derive(Debug)]
pub struct Timeout;

/// A Maelstrom client: a network endpoint with its own msg_id counter that
/// runs one RPC at a time. Dropping it removes it from the network.
pub struct Client {
    pub id: String,
    net: Network,
    inbox: UnboundedReceiver<ClientMessage>,
    last_msg_id: u64,
}

impl Client {
    pub fn open(net: &Network, ids: &ClientIds) -> Client {
        let id = ids.next();
        let inbox = net.add_client(&id);
        Client {
            id,
            net: net.clone(),
            inbox,
            last_msg_id: 0,
        }
    }

    /// Sends `body` (plus a fresh `msg_id`) to `node` and waits for the
    /// reply whose `in_reply_to` matches, discarding anything else (every
    /// message taken is journaled as received, as Maelstrom's client does).
    /// Returns the request as sent and the reply body.
    pub async fn call(
        &mut self,
        node: &str,
        mut body: Map<String, Value>,
        timeout: Duration,
    ) -> Result<(Value, Value), Timeout> {
        self.last_msg_id += 1;
        let msg_id = self.last_msg_id;
        body.insert("msg_id".into(), json!(msg_id));
        let request = Value::Object(body);
        // The node and this client are registered, so sending cannot fail.
        let _ = self.net.send_body(&self.id, node, &request);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .map_err(|_| Timeout)?
                .ok_or(Timeout)?;
            self.net.journal_client_recv(&msg);
            // as_u64 is None for floats: 1.0 does not answer msg_id 1.
            if msg.body.get("in_reply_to").and_then(Value::as_u64) == Some(msg_id) {
                return Ok((request, msg.body));
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.net.remove_client(&self.id);
    }
}

/// Everything a worker shares with the rest of the run.
pub struct WorkerContext {
    pub net: Network,
    pub ids: Arc<ClientIds>,
    pub recorder: Recorder,
    pub concurrency: u64,
}

/// A client worker: pinned to one node, with its current process number and
/// its client, with the process it was opened for. As in Jepsen, the
/// client of a process that ended `:info` stays open (a late reply reaches
/// it and is ignored) until the worker's next operation opens a new one.
pub struct Worker {
    pub node: String,
    pub process: u64,
    client: Option<(u64, Client)>,
}

impl Worker {
    /// Worker `t` of `nodes`: talks to `nodes[t mod n]`, starts as process t.
    pub fn new(t: usize, nodes: &[String]) -> Worker {
        Worker {
            node: nodes[t % nodes.len()].clone(),
            process: t as u64,
            client: None,
        }
    }

    /// Records the invocation of `op`; call at dispatch time.
    pub fn invoke(&self, ctx: &WorkerContext, op: Op, final_read: bool) {
        ctx.recorder.record(
            EventType::Invoke,
            Process::Client(self.process),
            op.f(),
            op.value(),
            final_read,
            None,
        );
    }

    /// Performs an invoked operation and records its completion. An
    /// indeterminate result moves the worker to a new process and client.
    pub async fn complete(&mut self, ctx: &WorkerContext, op: Op, final_read: bool) {
        if self
            .client
            .as_ref()
            .is_some_and(|(p, _)| *p != self.process)
        {
            self.client = None;
        }
        let process = self.process;
        let (_, client) = self
            .client
            .get_or_insert_with(|| (process, Client::open(&ctx.net, &ctx.ids)));
        let completion = match client.call(&self.node, op.request(), OP_TIMEOUT).await {
            Ok((request, reply)) => classify_reply(op, &self.node, &request, &reply),
            Err(Timeout) => match op {
                Op::Broadcast(_) => Completion::Info(OpError::Keyword("net-timeout".into())),
                Op::Read => Completion::Fail(OpError::Keyword("net-timeout".into())),
            },
        };
        let process = Process::Client(self.process);
        let (kind, value, error, exception) = match completion {
            Completion::Ok(v) => (EventType::Ok, v, None, None),
            Completion::Fail(e) => (EventType::Fail, op.value(), Some(e), None),
            Completion::Info(e) => (EventType::Info, op.value(), Some(e), None),
            Completion::Malformed(msg) => (
                EventType::Info,
                op.value(),
                Some(OpError::Text(format!("indeterminate: {msg}"))),
                Some(msg),
            ),
        };
        let event = ctx
            .recorder
            .record(kind, process, op.f(), value, final_read, error);
        if let Some(message) = exception {
            ctx.recorder.exception(ExceptionRecord {
                class: "clojure.lang.ExceptionInfo".into(),
                message,
                op: event,
            });
        }
        if kind == EventType::Info {
            self.process += ctx.concurrency;
        }
    }
}

/// The pacing of the main phase.
pub struct Schedule {
    /// Mean gap between client operations; None for `--rate 0`.
    pub mean_gap: Option<Duration>,
    pub time_limit: Duration,
}

/// Runs the main phase's client generator: i.i.d. 50/50 broadcast/read,
/// values 0, 1, 2, ..., global stagger, one op per worker at a time, until
/// the time limit; then waits for every in-flight op. Returns the workers.
/// Each gap counts from the actual dispatch (Jepsen's stagger): neither an
/// oversleep nor a wait for a free worker is followed by a catch-up burst.
/// How late a dispatch came against its slot is the [`Stage::Dispatch`]
/// lateness (not measured after waiting for a worker, a wait by design).
///
/// This blocks: it runs on its own thread so that the stagger's sleeps have
/// the operating system's sub-millisecond precision (tokio's timer rounds
/// every sleep up to the next millisecond, which would stretch a 10 ms mean
/// gap by about 5%). Operations themselves run as tasks on `runtime`.
pub fn main_phase(
    ctx: Arc<WorkerContext>,
    workers: Vec<Worker>,
    picker: Arc<Mutex<WorkerPicker>>,
    schedule: Schedule,
    mut rng: StdRng,
    runtime: tokio::runtime::Handle,
) -> Vec<Worker> {
    let t0 = ctx.recorder.t0();
    let end = t0 + schedule.time_limit;
    let Some(mean_gap) = schedule.mean_gap else {
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        return workers;
    };
    let lateness = ctx.net.lateness();
    let mut slots: Vec<Option<Worker>> = workers.into_iter().map(Some).collect();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, Worker)>();
    let mut next_value = 0u64;
    let mut next_at = t0;
    while next_at < end {
        std::thread::sleep(next_at.saturating_duration_since(Instant::now()));
        while let Ok((w, worker)) = done_rx.try_recv() {
            slots[w] = Some(worker);
        }
        let mut waited = false;
        let w = loop {
            let free: Vec<bool> = slots.iter().map(Option::is_some).collect();
            let picked = picker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pick(&free, &mut rng);
            if let Some(w) = picked {
                break w;
            }
            waited = true;
            match done_rx.recv() {
                Ok((w, worker)) => slots[w] = Some(worker),
                Err(_) => return slots.into_iter().flatten().collect(),
            }
        };
        let now = Instant::now();
        if now >= end {
            break;
        }
        if !waited {
            lateness.record(Stage::Dispatch, now.saturating_duration_since(next_at));
        }
        picker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dispatched();
        let op = if rng.random_bool(0.5) {
            next_value += 1;
            Op::Broadcast(next_value - 1)
        } else {
            Op::Read
        };
        let Some(mut worker) = slots[w].take() else {
            break;
        };
        worker.invoke(&ctx, op, false);
        let ctx = Arc::clone(&ctx);
        let done = done_tx.clone();
        runtime.spawn(async move {
            worker.complete(&ctx, op, false).await;
            let _ = done.send((w, worker));
        });
        next_at = now + stagger_gap(mean_gap, &mut rng);
    }
    drop(done_tx);
    while slots.iter().any(Option::is_none) {
        match done_rx.recv() {
            Ok((w, worker)) => slots[w] = Some(worker),
            Err(_) => break,
        }
    }
    slots.into_iter().flatten().collect()
}

/// The order in which the final reads are dispatched: Jepsen's
/// `each-thread` breaks the tie between equal times at random, so a random
/// permutation of the workers.
pub fn final_read_order<R: Rng + ?Sized>(workers: usize, rng: &mut R) -> Vec<usize> {
    let mut order: Vec<usize> = (0..workers).collect();
    order.shuffle(rng);
    order
}

/// The final phase: every worker performs exactly one read (`final? true`)
/// against its own node, all at about the same time, with no retry. They
/// are dispatched one after another in [`final_read_order`], and a read
/// that completes at once is recorded before later invocations.
pub async fn final_reads(
    ctx: Arc<WorkerContext>,
    workers: Vec<Worker>,
    rng: &mut StdRng,
) -> Vec<Worker> {
    let mut slots: Vec<Option<Worker>> = workers.into_iter().map(Some).collect();
    let mut tasks = Vec::with_capacity(slots.len());
    for w in final_read_order(slots.len(), rng) {
        let Some(mut worker) = slots[w].take() else {
            continue;
        };
        worker.invoke(&ctx, Op::Read, true);
        let ctx = Arc::clone(&ctx);
        tasks.push(tokio::spawn(async move {
            worker.complete(&ctx, Op::Read, true).await;
            worker
        }));
        // Lets the runtime record completions that are already in.
        tokio::task::yield_now().await;
    }
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(worker) = task.await {
            done.push(worker);
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn round_robin_rotates_with_a_nemesis_slot() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut p = WorkerPicker::new(3, ThreadPick::RoundRobin);
        let free = [true; 3];
        let mut picks = Vec::new();
        for _ in 0..8 {
            picks.push(p.pick(&free, &mut rng).unwrap());
            p.dispatched();
        }
        // Cursor 3 is the nemesis slot: client work wraps to worker 0.
        assert_eq!(picks, [0, 1, 2, 0, 0, 1, 2, 0]);
    }

    #[test]
    fn round_robin_takes_next_free_at_or_after_cursor() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut p = WorkerPicker::new(4, ThreadPick::RoundRobin);
        p.dispatched(); // cursor 1
        assert_eq!(p.pick(&[true, false, false, true], &mut rng), Some(3));
        assert_eq!(p.pick(&[true, false, false, false], &mut rng), Some(0));
        assert_eq!(p.pick(&[false; 4], &mut rng), None);
    }

    #[test]
    fn random_pick_spreads_over_free_workers_only() {
        let mut rng = StdRng::seed_from_u64(5);
        let p = WorkerPicker::new(4, ThreadPick::Random);
        let free = [true, false, true, true];
        let mut counts = [0; 4];
        for _ in 0..3000 {
            counts[p.pick(&free, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(
            counts.iter().enumerate().all(|(i, &c)| i == 1 || c > 800),
            "{counts:?}"
        );
    }

    #[test]
    fn stagger_is_uniform_below_twice_the_mean() {
        let mut rng = StdRng::seed_from_u64(9);
        let mean = Duration::from_millis(10);
        let gaps: Vec<Duration> = (0..20_000).map(|_| stagger_gap(mean, &mut rng)).collect();
        assert!(gaps.iter().all(|g| *g < 2 * mean));
        let avg = gaps.iter().sum::<Duration>().as_secs_f64() / gaps.len() as f64;
        assert!((avg - 0.010).abs() < 0.0003, "mean gap {avg}");
        let below_half = gaps.iter().filter(|g| **g < mean / 2).count() as f64;
        assert!((below_half / 20_000.0 - 0.25).abs() < 0.02);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_reply_after_info_reaches_the_open_client_until_the_next_op() {
        use crate::network::{Latency, LatencyDist, NetConfig, Rejection};
        let net = Network::start(NetConfig {
            latency: Latency::new(0, LatencyDist::Constant).unwrap(),
            p_loss: 0.0,
            loss_exempts_clients: false,
            p_dup: 0.0,
            jitter_ms: 0.0,
            seed: 0,
        })
        .unwrap();
        let mut n0 = net.add_node("n0");
        let ctx = WorkerContext {
            net: net.clone(),
            ids: Arc::new(ClientIds::default()),
            recorder: Recorder::new(Instant::now(), Logger::console_only()),
            concurrency: 1,
        };
        let mut worker = Worker::new(0, &["n0".to_string()]);
        worker.invoke(&ctx, Op::Broadcast(0), false);
        // n0 never answers in time: the broadcast ends :info (paused clock).
        worker.complete(&ctx, Op::Broadcast(0), false).await;
        assert_eq!(worker.process, 1);
        let request: Value = serde_json::from_str(&n0.recv().await.unwrap().line).unwrap();
        assert_eq!(request["src"], "c0");
        // Its late reply reaches c0, still open: accepted, not refused
        // (a refusal would mute n0 under Maelstrom's bad-output handling).
        let late = r#"{"src":"n0","dest":"c0","body":{"type":"broadcast_ok","in_reply_to":1}}"#;
        assert_eq!(net.send_line(late), Ok(()));
        // The worker's next operation opens c1 and closes c0.
        worker.invoke(&ctx, Op::Read, false);
        let answer = async {
            let read: Value = serde_json::from_str(&n0.recv().await.unwrap().line).unwrap();
            assert_eq!(read["src"], "c1");
            assert_eq!(
                net.send_line(late),
                Err(Rejection::UnknownDest("c0".into()))
            );
            let reply = r#"{"src":"n0","dest":"c1","body":{"type":"read_ok","in_reply_to":1,"messages":[]}}"#;
            net.send_line(reply).unwrap();
        };
        tokio::join!(worker.complete(&ctx, Op::Read, false), answer);
        let (history, _) = ctx.recorder.finish();
        let kinds: Vec<EventType> = history.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventType::Invoke,
                EventType::Info,
                EventType::Invoke,
                EventType::Ok
            ]
        );
        net.shutdown();
    }

    #[test]
    fn final_reads_go_in_a_seeded_random_order() {
        // The fixed worker order always read nodes[(c-1) mod n] last; the
        // last of a random permutation is each worker about 1/c of the time.
        let mut rng = StdRng::seed_from_u64(10);
        let mut last = [0u32; 5];
        for _ in 0..5000 {
            let order = final_read_order(5, &mut rng);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4]);
            last[order[4]] += 1;
        }
        assert!(last.iter().all(|&n| (850..1150).contains(&n)), "{last:?}");
        let draw = |seed| final_read_order(25, &mut StdRng::seed_from_u64(seed));
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn well_formed_replies_complete_ok() {
        let req = json!({"type": "read", "msg_id": 1});
        let read_ok = json!({"type": "read_ok", "in_reply_to": 1, "messages": [3, 1]});
        assert_eq!(
            classify_reply(Op::Read, "n0", &req, &read_ok),
            Completion::Ok(json!([3, 1]))
        );
        let null_messages =
            json!({"type": "read_ok", "in_reply_to": 1, "messages": null, "msg_id": 4});
        assert_eq!(
            classify_reply(Op::Read, "n0", &req, &null_messages),
            Completion::Ok(json!([]))
        );
        let ok = json!({"type": "broadcast_ok", "in_reply_to": 1});
        assert_eq!(
            classify_reply(Op::Broadcast(7), "n0", &req, &ok),
            Completion::Ok(json!(7))
        );
    }

    #[test]
    fn schema_is_closed() {
        let bad = [
            json!({"type": "broadcast_ok", "in_reply_to": 1, "extra": null}),
            json!({"type": "read_ok", "in_reply_to": 1}),
            json!({"type": "broadcast_ok", "in_reply_to": null}),
            json!({"type": "broadcast_ok", "in_reply_to": 1, "msg_id": "x"}),
            json!({"type": "broadcast_ok", "in_reply_to": 1.0}),
            json!({"type": "read_ok", "in_reply_to": 1, "messages": {}}),
        ];
        assert!(schema_problem("broadcast_ok", &body(bad[0].clone()))
            .unwrap()
            .contains(":extra disallowed-key"));
        assert!(schema_problem("broadcast_ok", &body(bad[1].clone())).is_some());
        for b in &bad[2..5] {
            assert!(
                schema_problem("broadcast_ok", &body(b.clone())).is_some(),
                "{b}"
            );
        }
        assert!(schema_problem("read_ok", &body(bad[5].clone())).is_some());
        assert!(schema_problem(
            "topology_ok",
            &body(json!({"type": "topology_ok", "in_reply_to": 1, "msg_id": 2}))
        )
        .is_none());
        let req = json!({});
        assert!(matches!(
            classify_reply(Op::Read, "n0", &req, &bad[0]),
            Completion::Malformed(m) if m.contains("Malformed RPC response") && m.contains("n0")
        ));
        assert!(matches!(
            classify_reply(Op::Broadcast(1), "n0", &req, &json!([1])),
            Completion::Malformed(_)
        ));
    }

    #[test]
    fn error_codes_follow_definiteness_and_idempotence() {
        let req = json!({});
        let err = |code: Value| json!({"type": "error", "in_reply_to": 1, "code": code, "text": "t", "extra": 1});
        let b = |code: i64| classify_reply(Op::Broadcast(0), "n0", &req, &err(json!(code)));
        for definite in [1, 10, 11, 12, 14, 20, 21, 22, 30] {
            assert!(matches!(b(definite), Completion::Fail(_)), "{definite}");
        }
        for indefinite in [0, 13, 2, 999, 1000, 5000] {
            assert!(matches!(b(indefinite), Completion::Info(_)), "{indefinite}");
        }
        let reply = |name: &str, text: Option<&str>| OpError::Reply {
            name: name.into(),
            text: text.map(str::to_string),
        };
        assert_eq!(
            b(11),
            Completion::Fail(reply("temporarily-unavailable", Some("t")))
        );
        assert_eq!(b(1234), Completion::Info(reply("unknown", Some("t"))));
        assert_eq!(
            reply("unknown", Some("t")).to_edn().to_string(),
            "[:unknown \"t\"]"
        );
        for code in [0, 13, 1000, 11] {
            assert!(matches!(
                classify_reply(Op::Read, "n0", &req, &err(json!(code))),
                Completion::Fail(_)
            ));
        }
        let no_text = json!({"type": "error", "in_reply_to": 1, "code": 10});
        assert_eq!(
            classify_reply(Op::Broadcast(0), "n0", &req, &no_text),
            Completion::Fail(reply("not-supported", None))
        );
        assert_eq!(
            reply("not-supported", None).to_edn().to_string(),
            "[:not-supported nil]"
        );
    }

    #[test]
    fn workers_are_pinned_to_nodes_mod_n() {
        let nodes: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
        let w: Vec<Worker> = (0..7).map(|t| Worker::new(t, &nodes)).collect();
        let pinned: Vec<&str> = w.iter().map(|w| w.node.as_str()).collect();
        assert_eq!(pinned, ["n0", "n1", "n2", "n0", "n1", "n2", "n0"]);
        assert_eq!(w[5].process, 5);
    }

    #[test]
    fn client_ids_count_globally() {
        let ids = ClientIds::default();
        assert_eq!(
            (ids.next(), ids.next(), ids.next()),
            ("c0".into(), "c1".into(), "c2".into())
        );
    }
}
