//! The nemesis driver (spec 5 and 11.2): one stagger schedule over the
//! enabled faults (`partition`, and the extensions `kill` and `pause`),
//! never two at once, each recorded in the history as Jepsen's nemeses do;
//! the final step that heals, restarts and resumes everything before the
//! recovery wait; and the record of every fault (the history's nemesis
//! operations, and the network's per-second counts of duplicated and lost
//! messages) for results.edn and the console.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngExt};
use serde_json::{json, Map, Value};

use super::edn::Edn;
use super::history::{Event, EventType, Process};
use super::nemesis;
use super::output::Logger;
use super::process::{BadLineCounter, NodeProcess};
use super::run::{init_node, send_topology};
use super::workload::{stagger_gap, Client, WorkerContext, WorkerPicker};

/// A kind of fault `--nemesis` can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Maelstrom's own: network partitions.
    Partition,
    /// Extension: SIGKILL one node, restart it at the stop.
    Kill,
    /// Extension: SIGSTOP one node, SIGCONT it at the stop.
    Pause,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
        }
    }

    pub fn parse(name: &str) -> Option<FaultKind> {
        [FaultKind::Partition, FaultKind::Kill, FaultKind::Pause]
            .into_iter()
            .find(|k| k.name() == name)
    }

    fn start_f(self) -> String {
        format!("start-{}", self.name())
    }

    fn stop_f(self) -> String {
        format!("stop-{}", self.name())
    }
}

/// What the next step of the schedule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Start(FaultKind),
    Stop(FaultKind),
}

/// The combined schedule: a step with nothing active starts a kind picked
/// uniformly from the enabled ones (in the fixed order partition, kill,
/// pause; no draw when only one is enabled, so `--nemesis partition` is
/// exactly Maelstrom's alternation); a step with a kind active stops it.
#[derive(Debug, Clone)]
pub struct FaultSchedule {
    enabled: Vec<FaultKind>,
    active: Option<FaultKind>,
}

impl FaultSchedule {
    pub fn new(faults: &[FaultKind]) -> FaultSchedule {
        let mut enabled = faults.to_vec();
        enabled.sort();
        enabled.dedup();
        FaultSchedule {
            enabled,
            active: None,
        }
    }

    pub fn step<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Step> {
        if let Some(kind) = self.active.take() {
            return Some(Step::Stop(kind));
        }
        let kind = match self.enabled.len() {
            0 => return None,
            1 => self.enabled[0],
            n => self.enabled[rng.random_range(0..n)],
        };
        self.active = Some(kind);
        Some(Step::Start(kind))
    }
}

/// What a restarted node needs to be set up again.
pub struct RestartSetup<'a> {
    pub node_ids: &'a [String],
    pub topology: &'a Value,
    pub logger: &'a Logger,
    pub bad_lines: &'a Arc<BadLineCounter>,
}

/// The nemesis process: injects and heals faults on the run's nodes.
pub struct Nemesis<'a> {
    pub ctx: &'a WorkerContext,
    pub nodes: &'a mut [NodeProcess],
    pub setup: RestartSetup<'a>,
    faults: Vec<FaultKind>,
    /// Nodes (indices) a kill took down and a stop has not restarted yet.
    killed: Vec<usize>,
    /// Nodes a pause stopped and a stop has not resumed yet.
    paused: Vec<usize>,
}

impl<'a> Nemesis<'a> {
    pub fn new(
        ctx: &'a WorkerContext,
        nodes: &'a mut [NodeProcess],
        setup: RestartSetup<'a>,
        faults: &[FaultKind],
    ) -> Nemesis<'a> {
        Nemesis {
            ctx,
            nodes,
            setup,
            faults: FaultSchedule::new(faults).enabled,
            killed: Vec::new(),
            paused: Vec::new(),
        }
    }

    /// The main phase's nemesis: schedule steps with a global stagger of
    /// mean `interval`, the first at test time ~0, until the time limit.
    /// Each takes a slot in the worker rotation. A failed restart (or a
    /// node found to have crashed on its own) ends the test.
    pub async fn run(
        &mut self,
        picker: &Mutex<WorkerPicker>,
        interval: Duration,
        time_limit: Duration,
        mut rng: StdRng,
    ) -> Result<(), String> {
        if self.faults.is_empty() {
            return Ok(());
        }
        let mut schedule = FaultSchedule::new(&self.faults);
        let end = self.ctx.recorder.t0() + time_limit;
        let mut next_at = self.ctx.recorder.t0();
        while next_at < end {
            tokio::time::sleep_until(next_at.into()).await;
            let now = Instant::now();
            if now >= end {
                break;
            }
            picker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .dispatched();
            match schedule.step(&mut rng) {
                Some(Step::Start(kind)) => self.start(kind, &mut rng)?,
                Some(Step::Stop(kind)) => self.stop(kind).await?,
                None => break,
            }
            next_at = now + stagger_gap(interval, &mut rng);
        }
        Ok(())
    }

    /// Before the recovery wait: one stop per enabled kind, whether or not
    /// it is active (as Maelstrom's final `stop-partition`), so the network
    /// is healed, killed nodes are restarted and paused ones resumed.
    pub async fn stop_all(&mut self) -> Result<(), String> {
        for kind in self.faults.clone() {
            self.stop(kind).await?;
        }
        Ok(())
    }

    fn record(&self, f: &str, value: Value) {
        self.ctx
            .recorder
            .record(EventType::Info, Process::Nemesis, f, value, false, None);
    }

    fn start(&mut self, kind: FaultKind, rng: &mut StdRng) -> Result<(), String> {
        match kind {
            FaultKind::Partition => {
                let spec = nemesis::random_spec(rng);
                self.record(&kind.start_f(), json!(spec.name()));
                let grudge = nemesis::grudge(spec, self.setup.node_ids, rng);
                self.ctx.net.partition(&grudge);
                self.record(&kind.start_f(), nemesis::isolated_value(&grudge));
            }
            FaultKind::Kill | FaultKind::Pause => {
                // Faults never overlap, so every node is up and running.
                self.record(&kind.start_f(), json!("one"));
                let k = rng.random_range(0..self.nodes.len());
                let node = &mut self.nodes[k];
                if let Some(status) = node.exited() {
                    return Err(node.crash_report(status));
                }
                let id = node.id.clone();
                let outcome = if kind == FaultKind::Kill {
                    self.ctx.net.take_down(&id);
                    node.sigkill();
                    self.killed.push(k);
                    "killed"
                } else {
                    node.set_stopped(true);
                    self.ctx.net.set_paused(&id, true);
                    self.paused.push(k);
                    "paused"
                };
                self.record(&kind.start_f(), json!({ id: outcome }));
            }
        }
        Ok(())
    }

    async fn stop(&mut self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Partition => {
                self.record(&kind.stop_f(), Value::Null);
                self.ctx.net.heal();
                self.record(&kind.stop_f(), json!("network-healed"));
            }
            FaultKind::Kill => {
                self.record(&kind.stop_f(), json!("all"));
                let mut restarted = Map::new();
                for k in std::mem::take(&mut self.killed) {
                    self.restart(k).await?;
                    restarted.insert(self.nodes[k].id.clone(), json!("restarted"));
                }
                self.record(&kind.stop_f(), Value::Object(restarted));
            }
            FaultKind::Pause => {
                self.record(&kind.stop_f(), json!("all"));
                let mut resumed = Map::new();
                for k in std::mem::take(&mut self.paused) {
                    let node = &self.nodes[k];
                    node.set_stopped(false);
                    self.ctx.net.set_paused(&node.id, false);
                    resumed.insert(node.id.clone(), json!("resumed"));
                }
                self.record(&kind.stop_f(), Value::Object(resumed));
            }
        }
        Ok(())
    }

    /// Spec 11.2's restart: the same argv and cwd, then `init` (msg_id 1,
    /// 10 s) and the setup `topology` (5 s) from two fresh clients, the only
    /// ones that reach the node until its `topology_ok`. Any failure is
    /// fatal to the test.
    async fn restart(&mut self, k: usize) -> Result<(), String> {
        let net = &self.ctx.net;
        let node = &mut self.nodes[k];
        let id = node.id.clone();
        let mut init_client = Client::open(net, &self.ctx.ids);
        let mut topology_client = Client::open(net, &self.ctx.ids);
        let stdin = net.restart_node(
            &id,
            vec![init_client.id.clone(), topology_client.id.clone()],
        );
        node.restart(stdin, net, self.setup.logger, self.setup.bad_lines)
            .await
            .map_err(|e| format!("cannot restart node {id} after a kill: {e}"))?;
        init_node(&mut init_client, &id, self.setup.node_ids)
            .await
            .map_err(|e| format!("restart of node {id} after a kill failed: {e}"))?;
        send_topology(&mut topology_client, &id, self.setup.topology)
            .await
            .map_err(|e| format!("restart of node {id} after a kill failed: {e}"))?;
        net.mark_up(&id);
        Ok(())
    }
}

/// A message a fault cost or copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFault {
    /// `--p-dup`: a second copy was queued.
    Duplicated,
    /// `--p-loss`: lost at send.
    LostToLoss,
    /// Dequeued for (or queued at) a killed or restarting node.
    LostToDownNode,
    /// Dequeued while its destination refused its source.
    DroppedByPartition,
}

pub const MESSAGE_FAULTS: [MessageFault; 4] = [
    MessageFault::Duplicated,
    MessageFault::LostToLoss,
    MessageFault::LostToDownNode,
    MessageFault::DroppedByPartition,
];

impl MessageFault {
    pub fn name(self) -> &'static str {
        match self {
            MessageFault::Duplicated => "duplicated",
            MessageFault::LostToLoss => "lost-to-p-loss",
            MessageFault::LostToDownNode => "lost-to-down-nodes",
            MessageFault::DroppedByPartition => "dropped-by-partitions",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts of duplicated and lost messages, by whole second of test time
/// (setup traffic, before time 0, counts in second 0).
#[derive(Debug, Clone)]
pub struct MessageFaults {
    t0: Instant,
    per_second: [Vec<u64>; MESSAGE_FAULTS.len()],
}

impl Default for MessageFaults {
    fn default() -> MessageFaults {
        MessageFaults::new(Instant::now())
    }
}

impl MessageFaults {
    pub fn new(t0: Instant) -> MessageFaults {
        MessageFaults {
            t0,
            per_second: Default::default(),
        }
    }

    pub fn set_time_zero(&mut self, t0: Instant) {
        self.t0 = t0;
    }

    pub fn time_zero(&self) -> Instant {
        self.t0
    }

    pub fn count(&mut self, fault: MessageFault, at: Instant) {
        let second = at.saturating_duration_since(self.t0).as_secs() as usize;
        let counts = &mut self.per_second[fault.index()];
        if counts.len() <= second {
            counts.resize(second + 1, 0);
        }
        counts[second] += 1;
    }

    pub fn total(&self, fault: MessageFault) -> u64 {
        self.per_second[fault.index()].iter().sum()
    }

    pub fn per_second(&self, fault: MessageFault) -> &[u64] {
        &self.per_second[fault.index()]
    }
}

/// A fault event read back from the history's nemesis completions: a node
/// `killed`, `restarted`, `paused` or `resumed` (`{"n3" :killed}` and the
/// like; the subject is the node), a partition started (`partitioned`, the
/// subject is its spec) or `healed` (the subject is `network`).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultEvent {
    pub time_ns: u64,
    pub what: String,
    pub subject: String,
}

/// Every fault event in the history, in order. A final `stop-partition`
/// with no partition active heals nothing and is left out.
pub fn fault_events(history: &[Event]) -> Vec<FaultEvent> {
    let mut out = Vec::new();
    let mut partition_spec: Option<String> = None;
    let mut partitioned = false;
    for event in history.iter().filter(|e| e.process == Process::Nemesis) {
        let mut push = |what: &str, subject: &str| {
            out.push(FaultEvent {
                time_ns: event.time_ns,
                what: what.to_string(),
                subject: subject.to_string(),
            })
        };
        match (event.f.as_str(), &event.value) {
            ("start-partition", Value::String(spec)) => partition_spec = Some(spec.clone()),
            ("start-partition", Value::Array(_)) => {
                push("partitioned", partition_spec.as_deref().unwrap_or(""));
                partitioned = true;
            }
            ("stop-partition", Value::String(_)) if partitioned => {
                push("healed", "network");
                partitioned = false;
            }
            (_, Value::Object(map)) => {
                for (node, what) in map {
                    if let Some(what) = what.as_str() {
                        push(what, node);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `:harness :faults`: each fault event with its time (nodes by `:node`,
/// partitions by `:spec`), and each message fault's count and counts by
/// second.
pub fn faults_edn(events: &[FaultEvent], messages: &MessageFaults) -> Edn {
    let mut entries = Vec::new();
    let kinds = [
        ("killed", "node"),
        ("restarted", "node"),
        ("paused", "node"),
        ("resumed", "node"),
        ("partitioned", "spec"),
        ("healed", ""),
    ];
    for (what, subject_key) in kinds {
        let listed = events.iter().filter(|f| f.what == what).map(|f| {
            let mut entry = Vec::new();
            if !subject_key.is_empty() {
                entry.push((subject_key, Edn::str(&f.subject)));
            }
            entry.push(("time", Edn::Int(i128::from(f.time_ns))));
            Edn::kw_map(entry)
        });
        entries.push((what, Edn::Vector(listed.collect())));
    }
    for fault in MESSAGE_FAULTS {
        let per_second = messages
            .per_second(fault)
            .iter()
            .map(|&n| Edn::Int(i128::from(n)));
        entries.push((
            fault.name(),
            Edn::kw_map([
                ("count", Edn::Int(i128::from(messages.total(fault)))),
                ("per-second", Edn::Vector(per_second.collect())),
            ]),
        ));
    }
    Edn::kw_map(entries)
}

/// The console lines about faults: fault events with their times (the
/// first 12), and message counts; nothing when there were none.
pub fn summary_lines(events: &[FaultEvent], messages: &MessageFaults) -> Vec<String> {
    const SHOWN: usize = 12;
    let mut lines = Vec::new();
    if !events.is_empty() {
        let mut shown: Vec<String> = events
            .iter()
            .take(SHOWN)
            .map(|f| {
                format!(
                    "{} {} at {:.1} s",
                    f.subject,
                    f.what,
                    f.time_ns as f64 / 1e9
                )
            })
            .collect();
        if events.len() > SHOWN {
            shown.push(format!("... ({} more)", events.len() - SHOWN));
        }
        lines.push(format!("faults              {}", shown.join(", ")));
    }
    let counts: Vec<String> = MESSAGE_FAULTS
        .iter()
        .filter(|&&f| messages.total(f) > 0)
        .map(|&f| format!("{} {}", messages.total(f), f.name()))
        .collect();
    if !counts.is_empty() {
        lines.push(format!("fault messages      {}", counts.join(", ")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn names_parse_back() {
        for kind in [FaultKind::Partition, FaultKind::Kill, FaultKind::Pause] {
            assert_eq!(FaultKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(FaultKind::parse("clock"), None);
    }

    #[test]
    fn partition_alone_alternates_without_drawing() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut untouched = StdRng::seed_from_u64(1);
        let mut s = FaultSchedule::new(&[FaultKind::Partition]);
        let steps: Vec<Step> = (0..4).filter_map(|_| s.step(&mut rng)).collect();
        assert_eq!(
            steps,
            [
                Step::Start(FaultKind::Partition),
                Step::Stop(FaultKind::Partition),
                Step::Start(FaultKind::Partition),
                Step::Stop(FaultKind::Partition),
            ]
        );
        assert_eq!(rng.random::<u64>(), untouched.random::<u64>());
        assert_eq!(FaultSchedule::new(&[]).step(&mut rng), None);
    }

    #[test]
    fn combined_faults_never_overlap_and_each_kind_is_picked_uniformly() {
        let mut rng = StdRng::seed_from_u64(2);
        let all = [FaultKind::Pause, FaultKind::Partition, FaultKind::Kill];
        let mut s = FaultSchedule::new(&all);
        let mut starts = [0u32; 3];
        let mut active = None;
        for _ in 0..6000 {
            match s.step(&mut rng).unwrap() {
                Step::Start(kind) => {
                    assert_eq!(active, None, "a start while {active:?} is active");
                    active = Some(kind);
                    starts[kind as usize] += 1;
                }
                Step::Stop(kind) => {
                    assert_eq!(active, Some(kind));
                    active = None;
                }
            }
        }
        assert!(
            starts.iter().all(|&n| (900..1100).contains(&n)),
            "{starts:?}"
        );
    }

    #[test]
    fn message_faults_count_by_second_of_test_time() {
        let t0 = Instant::now();
        let mut m = MessageFaults::new(t0 + Duration::from_secs(5));
        m.count(MessageFault::LostToLoss, t0);
        m.set_time_zero(t0);
        m.count(MessageFault::LostToLoss, t0 + Duration::from_millis(2500));
        m.count(MessageFault::Duplicated, t0 + Duration::from_millis(100));
        assert_eq!(m.per_second(MessageFault::LostToLoss), [1, 0, 1]);
        assert_eq!(m.total(MessageFault::LostToLoss), 2);
        assert_eq!(m.total(MessageFault::DroppedByPartition), 0);
        let edn = faults_edn(&[], &m).to_string();
        assert!(
            edn.contains(":lost-to-p-loss {:count 2, :per-second [1 0 1]}"),
            "{edn}"
        );
        let lines = summary_lines(&[], &m);
        assert_eq!(
            lines,
            ["fault messages      1 duplicated, 2 lost-to-p-loss"]
        );
    }

    #[test]
    fn fault_events_come_from_nemesis_completions() {
        let nem = |i, f, value| {
            Event::new(
                i,
                i * 1_000_000_000,
                EventType::Info,
                Process::Nemesis,
                f,
                value,
            )
        };
        let history = vec![
            nem(0, "start-kill", json!("one")),
            nem(1, "start-kill", json!({"n3": "killed"})),
            nem(2, "stop-kill", json!("all")),
            nem(3, "stop-kill", json!({"n3": "restarted"})),
            nem(4, "start-partition", json!("majority")),
            nem(5, "start-partition", json!(["isolated", {"n0": ["n1"]}])),
            nem(6, "stop-partition", Value::Null),
            nem(7, "stop-partition", json!("network-healed")),
            // The final stop with nothing active heals nothing.
            nem(8, "stop-partition", Value::Null),
            nem(9, "stop-partition", json!("network-healed")),
            Event::new(
                10,
                10,
                EventType::Ok,
                Process::Client(0),
                "read",
                json!({"n9": "killed"}),
            ),
        ];
        let events = fault_events(&history);
        let seen: Vec<(&str, &str, u64)> = events
            .iter()
            .map(|f| {
                (
                    f.subject.as_str(),
                    f.what.as_str(),
                    f.time_ns / 1_000_000_000,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("n3", "killed", 1),
                ("n3", "restarted", 3),
                ("majority", "partitioned", 5),
                ("network", "healed", 7)
            ]
        );
        let edn = faults_edn(&events, &MessageFaults::default()).to_string();
        assert!(edn.starts_with(
            "{:killed [{:node \"n3\", :time 1000000000}], :restarted [{:node \"n3\", :time 3000000000}], :paused [], :resumed [], \
             :partitioned [{:spec \"majority\", :time 5000000000}], :healed [{:time 7000000000}]"
        ), "{edn}");
        let lines = summary_lines(&events, &MessageFaults::default());
        assert_eq!(
            lines,
            ["faults              n3 killed at 1.0 s, n3 restarted at 3.0 s, majority partitioned at 5.0 s, network healed at 7.0 s"]
        );
    }
}
