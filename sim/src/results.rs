//! The combined results map (spec 3.6): every checker's result under
//! Maelstrom's key names and nesting, written as results.edn and, with the
//! same keys, as results.json.

use super::checker::{
    check_availability, check_stats, check_workload, AvailabilityReq, AvailabilityResult, OpCounts,
    Quantiles, StatsResult, Validity, WorkloadResult,
};
use super::edn::Edn;
use super::history::Event;
use super::lateness::{over_bound, Stage, BOUND_P99_MS};
use super::netstats::{NetCategory, NetSummary};

/// An operation that crashed with an exception (e.g. a malformed reply).
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionRecord {
    /// The exception's class, e.g. `clojure.lang.ExceptionInfo`.
    pub class: String,
    pub message: String,
    /// The operation's completion.
    pub op: Event,
}

/// p50/p99/max of a set of millisecond samples, and how many there were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatenessSummary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub count: u64,
}

impl LatenessSummary {
    /// Summarises samples (any order) with the checker's quantile indexing;
    /// `None` when there are none. NaN samples are ignored.
    pub fn from_samples_ms(samples: &[f64]) -> Option<LatenessSummary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let m = sorted.len();
        let at = |p: f64| sorted[((m as f64 * p).floor() as usize).min(m - 1)];
        Some(LatenessSummary {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            count: m as u64,
        })
    }

    /// `{:p50 .. :p99 .. :max .. :count ..}`.
    pub fn to_edn(&self) -> Edn {
        Edn::kw_map([
            ("p50", Edn::Double(self.p50)),
            ("p99", Edn::Double(self.p99)),
            ("max", Edn::Double(self.max)),
            ("count", int(self.count)),
        ])
    }
}

/// The harness's own measurements. Not a Maelstrom checker: it appears as
/// the extension entry `:harness` (always `:valid? true`) so that a run on an
/// overloaded machine says so in its results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HarnessReport {
    /// The harness's own lateness, end to end, by stage (lateness.rs).
    pub lateness_ms: Vec<(Stage, LatenessSummary)>,
    /// CPU time the harness process used.
    pub cpu_seconds: Option<f64>,
    /// The machine's steal time during the run, in percent of all CPU
    /// time (None where /proc/stat is not readable).
    pub steal_percent: Option<f64>,
    pub wall_seconds: f64,
    /// Node output lines that were not valid messages.
    pub malformed_lines: u64,
    pub seed: Option<u64>,
    /// Further settings worth recording (e.g. `thread-pick`, `p-loss`,
    /// `malformed-output`), written as keyword -> string entries.
    pub notes: Vec<(String, String)>,
    /// Further entries with structure (e.g. `faults`), after the notes.
    pub sections: Vec<(String, Edn)>,
}

impl HarnessReport {
    /// Whether any stage's lateness p99 is over the documented bound.
    pub fn lateness_exceeded(&self) -> bool {
        !over_bound(&self.lateness_ms).is_empty()
    }
}

/// The `:perf` checker's result: whether each of Jepsen's graphs was drawn
/// and written. `latency_graph` covers latency-raw and latency-quantiles.
/// `Err` holds the reason, reported as `{:valid? :unknown, :error ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfResult {
    pub latency_graph: Result<(), String>,
    pub rate_graph: Result<(), String>,
}

impl Default for PerfResult {
    /// Both graphs drawn: what [`analyze`] assumes until the run reports
    /// what really happened through [`Results::with_perf`].
    fn default() -> Self {
        PerfResult {
            latency_graph: Ok(()),
            rate_graph: Ok(()),
        }
    }
}

impl PerfResult {
    pub fn valid(&self) -> Validity {
        let graph = |g: &Result<(), String>| match g {
            Ok(()) => Validity::True,
            Err(_) => Validity::Unknown,
        };
        graph(&self.latency_graph).merge(graph(&self.rate_graph))
    }

    fn to_edn(&self) -> Edn {
        let graph = |g: &Result<(), String>| match g {
            Ok(()) => Edn::kw_map([("valid?", Edn::Bool(true))]),
            Err(reason) => Edn::kw_map([
                ("valid?", Validity::Unknown.to_edn()),
                ("error", Edn::str(reason)),
            ]),
        };
        Edn::kw_map([
            ("latency-graph", graph(&self.latency_graph)),
            ("rate-graph", graph(&self.rate_graph)),
            ("valid?", self.valid().to_edn()),
        ])
    }
}

/// Everything the analysis reads.
#[derive(Debug, Clone)]
pub struct AnalysisInput<'a> {
    pub history: &'a [Event],
    pub net: NetSummary,
    pub availability: Option<AvailabilityReq>,
    pub exceptions: &'a [ExceptionRecord],
    pub harness: Option<HarnessReport>,
}

/// Exceptions of one class, as `:exceptions` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionGroup {
    pub class: String,
    pub count: u64,
    pub example: ExceptionRecord,
}

/// The analysis of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    perf: PerfResult,
    workload: WorkloadResult,
    stats: StatsResult,
    availability: AvailabilityResult,
    net: NetSummary,
    exceptions: Vec<ExceptionGroup>,
    harness: Option<HarnessReport>,
}

impl Results {
    /// Applies `--strict-duplicates` to the workload checker.
    pub fn with_strict_duplicates(mut self, history: &[Event]) -> Self {
        self.workload.flag_duplicates(history);
        self
    }

    /// Records whether the perf graphs were really drawn.
    pub fn with_perf(mut self, perf: PerfResult) -> Self {
        self.perf = perf;
        self
    }
}

/// Runs every checker.
pub fn analyze(input: &AnalysisInput) -> Results {
    Results {
        perf: PerfResult::default(),
        workload: check_workload(input.history),
        stats: check_stats(input.history),
        availability: check_availability(input.history, input.availability),
        net: input.net,
        exceptions: group_exceptions(input.exceptions),
        harness: input.harness.clone(),
    }
}

/// Groups by class, most frequent first, each with its first example.
fn group_exceptions(records: &[ExceptionRecord]) -> Vec<ExceptionGroup> {
    let mut groups: Vec<ExceptionGroup> = Vec::new();
    for record in records {
        match groups.iter_mut().find(|g| g.class == record.class) {
            Some(group) => group.count += 1,
            None => groups.push(ExceptionGroup {
                class: record.class.clone(),
                count: 1,
                example: record.clone(),
            }),
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.class.cmp(&b.class)));
    groups
}

impl Results {
    /// The combined verdict: the worst of all checkers.
    pub fn valid(&self) -> Validity {
        self.workload
            .valid
            .merge(self.perf.valid())
            .merge(self.stats.valid())
            .merge(self.availability.valid)
    }

    pub fn perf(&self) -> &PerfResult {
        &self.perf
    }

    pub fn workload(&self) -> &WorkloadResult {
        &self.workload
    }

    pub fn stats(&self) -> &StatsResult {
        &self.stats
    }

    pub fn availability(&self) -> &AvailabilityResult {
        &self.availability
    }

    pub fn net(&self) -> &NetSummary {
        &self.net
    }

    pub fn exceptions(&self) -> &[ExceptionGroup] {
        &self.exceptions
    }

    pub fn harness(&self) -> Option<&HarnessReport> {
        self.harness.as_ref()
    }

    /// The results map as one value tree, in spec 3.6's key order. The
    /// `:harness` entry, when present, is this harness's extension (see
    /// [`HarnessReport`]); everything else is Maelstrom's.
    pub fn to_edn_value(&self) -> Edn {
        Edn::kw_map(self.top_level_entries())
    }

    fn top_level_entries(&self) -> Vec<(&'static str, Edn)> {
        let valid_only = || Edn::kw_map([("valid?", Edn::Bool(true))]);
        let mut entries = vec![
            ("perf", self.perf.to_edn()),
            ("timeline", valid_only()),
            ("exceptions", self.exceptions_edn()),
            ("stats", stats_edn(&self.stats)),
            (
                "availability",
                Edn::kw_map([
                    ("valid?", self.availability.valid.to_edn()),
                    ("ok-fraction", Edn::Float(self.availability.ok_fraction)),
                ]),
            ),
            ("net", net_edn(&self.net)),
            ("workload", workload_edn(&self.workload)),
        ];
        if let Some(harness) = &self.harness {
            entries.push(("harness", harness_edn(harness)));
        }
        entries.push(("valid?", self.valid().to_edn()));
        entries
    }

    /// results.edn: the map with one top-level entry per line.
    pub fn to_edn(&self) -> String {
        let lines: Vec<String> = self
            .top_level_entries()
            .into_iter()
            .map(|(k, v)| format!(":{k} {v}"))
            .collect();
        format!("{{{}}}\n", lines.join(",\n "))
    }

    /// results.json: the same tree and key names.
    pub fn to_json(&self) -> serde_json::Value {
        self.to_edn_value().to_json()
    }

    fn exceptions_edn(&self) -> Edn {
        let mut entries = vec![("valid?", Edn::Bool(true))];
        if !self.exceptions.is_empty() {
            let groups = self.exceptions.iter().map(|g| {
                let mut example = match g.example.op.to_edn() {
                    Edn::Map(entries) => entries,
                    other => vec![(Edn::keyword("op"), other)],
                };
                // Shaped like Clojure's Throwable->map (without the trace).
                let cause = Edn::str(&g.example.message);
                let via = Edn::kw_map([
                    ("type", Edn::str(&g.example.class)),
                    ("message", cause.clone()),
                ]);
                let exception = Edn::kw_map([("via", Edn::Vector(vec![via])), ("cause", cause)]);
                example.push((Edn::keyword("exception"), exception));
                Edn::kw_map([
                    ("class", Edn::str(&g.class)),
                    ("count", int(g.count)),
                    ("example", Edn::Map(example)),
                ])
            });
            entries.push(("exceptions", Edn::Vector(groups.collect())));
        }
        Edn::kw_map(entries)
    }
}

fn int(n: u64) -> Edn {
    Edn::Int(i128::from(n))
}

fn counts_edn(valid: Edn, c: &OpCounts) -> Vec<(&'static str, Edn)> {
    vec![
        ("valid?", valid),
        ("count", int(c.count())),
        ("ok-count", int(c.ok)),
        ("fail-count", int(c.fail)),
        ("info-count", int(c.info)),
    ]
}

fn stats_edn(stats: &StatsResult) -> Edn {
    let by_f = stats.by_f.iter().map(|(f, c)| {
        let entry = Edn::kw_map(counts_edn(Edn::Bool(c.valid()), c));
        (Edn::keyword(f), entry)
    });
    let mut entries = counts_edn(stats.valid().to_edn(), &stats.overall);
    entries.push(("by-f", Edn::Map(by_f.collect())));
    Edn::kw_map(entries)
}

fn net_category_edn(c: &NetCategory) -> Edn {
    let mut entries = vec![
        ("send-count", int(c.send_count)),
        ("recv-count", int(c.recv_count)),
        ("msg-count", int(c.msg_count)),
    ];
    if let Some(per_op) = c.msgs_per_op {
        entries.push(("msgs-per-op", Edn::Float(per_op)));
    }
    Edn::kw_map(entries)
}

fn net_edn(net: &NetSummary) -> Edn {
    Edn::kw_map([
        ("all", net_category_edn(&net.all)),
        ("clients", net_category_edn(&net.clients)),
        ("servers", net_category_edn(&net.servers)),
        ("valid?", Edn::Bool(true)),
    ])
}

/// `{0 v, 0.5 v, 0.95 v, 0.99 v, 1 v}`: 0 and 1 are integers in Clojure.
fn quantiles_edn(q: &Quantiles) -> Edn {
    Edn::Map(
        q.points()
            .into_iter()
            .map(|(point, value)| {
                let key = if point.fract() == 0.0 {
                    Edn::Int(point as i128)
                } else {
                    Edn::Double(point)
                };
                (key, int(value))
            })
            .collect(),
    )
}

fn element_list(values: &[serde_json::Value]) -> Edn {
    Edn::List(values.iter().map(Edn::from_json).collect())
}

/// The checker sees `broadcast` as set-full's `add`.
fn checker_op_edn(op: &Event) -> Edn {
    op.to_edn_with_f(if op.f == "broadcast" { "add" } else { &op.f })
}

fn workload_edn(w: &WorkloadResult) -> Edn {
    let worst_stale = w.worst_stale.iter().map(|s| {
        Edn::kw_map([
            ("element", Edn::from_json(&s.element)),
            ("outcome", Edn::keyword("stable")),
            ("stable-latency", int(s.stable_latency_ms)),
            ("lost-latency", Edn::Nil),
            ("known", checker_op_edn(&s.known)),
            ("last-absent", checker_op_edn(&s.last_absent)),
        ])
    });
    let mut entries = vec![
        ("valid?", w.valid.to_edn()),
        ("attempt-count", int(w.attempt_count)),
        ("stable-count", int(w.stable_count)),
        ("lost-count", int(w.lost.len() as u64)),
        ("lost", element_list(&w.lost)),
        ("never-read-count", int(w.never_read.len() as u64)),
        ("never-read", element_list(&w.never_read)),
        ("stale-count", int(w.stale.len() as u64)),
        ("stale", element_list(&w.stale)),
        ("worst-stale", Edn::List(worst_stale.collect())),
    ];
    if let Some(q) = &w.stable_latencies {
        entries.push(("stable-latencies", quantiles_edn(q)));
    }
    if let Some(q) = &w.lost_latencies {
        entries.push(("lost-latencies", quantiles_edn(q)));
    }
    // Empty unless --strict-duplicates: Jepsen's detector never fires
    // (spec 3.5 quirk).
    entries.push(("duplicated-count", int(w.duplicated.len() as u64)));
    let duplicated = w
        .duplicated
        .iter()
        .map(|(element, count)| (Edn::from_json(element), int(*count)));
    entries.push(("duplicated", Edn::Map(duplicated.collect())));
    Edn::kw_map(entries)
}

fn harness_edn(h: &HarnessReport) -> Edn {
    let mut entries = vec![(Edn::keyword("valid?"), Edn::Bool(true))];
    let mut push = |k: &str, v: Edn| entries.push((Edn::keyword(k), v));
    if !h.lateness_ms.is_empty() {
        let stages = h.lateness_ms.iter().map(|(s, l)| (s.name(), l.to_edn()));
        push("lateness-ms", Edn::kw_map(stages));
    }
    push("lateness-bound-p99-ms", Edn::Double(BOUND_P99_MS));
    push("lateness-exceeded", Edn::Bool(h.lateness_exceeded()));
    if let Some(cpu) = h.cpu_seconds {
        push("cpu-seconds", Edn::Double(cpu));
    }
    push("wall-seconds", Edn::Double(h.wall_seconds));
    if let Some(steal) = h.steal_percent {
        push("steal-percent", Edn::Double((steal * 10.0).round() / 10.0));
    }
    push("malformed-lines", int(h.malformed_lines));
    if let Some(seed) = h.seed {
        push("seed", int(seed));
    }
    for (k, v) in &h.notes {
        let key = if super::edn::is_keyword_name(k) {
            Edn::keyword(k)
        } else {
            Edn::str(k)
        };
        entries.push((key, Edn::str(v)));
    }
    for (k, v) in &h.sections {
        entries.push((Edn::keyword(k), v.clone()));
    }
    Edn::Map(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventType, Process};
    use crate::netstats::{JournalKind, NetStats};
    use serde_json::{json, Value};

    fn op(index: u64, kind: EventType, process: u64, f: &str, value: Value) -> Event {
        Event::new(
            index,
            index * 1_000_000,
            kind,
            Process::Client(process),
            f,
            value,
        )
    }

    /// Broadcast 0 acked at 1 ms; a read invoked at 2 ms misses it; a read
    /// invoked at 4 ms sees it: stable, 1 ms stale.
    fn stale_history() -> Vec<Event> {
        vec![
            op(0, EventType::Invoke, 0, "broadcast", json!(0)),
            op(1, EventType::Ok, 0, "broadcast", json!(0)),
            op(2, EventType::Invoke, 1, "read", Value::Null),
            op(3, EventType::Ok, 1, "read", json!([])),
            op(4, EventType::Invoke, 1, "read", Value::Null),
            op(5, EventType::Ok, 1, "read", json!([0])),
        ]
    }

    fn net_for_three_ops() -> NetSummary {
        let mut net = NetStats::default();
        for id in 0..6 {
            net.record(JournalKind::Send, id, "c1", "n0");
            net.record(JournalKind::Recv, id, "c1", "n0");
        }
        net.record(JournalKind::Send, 6, "n0", "n1");
        net.summary(3)
    }

    #[test]
    fn results_edn_has_maelstroms_shape() {
        let history = stale_history();
        let results = analyze(&AnalysisInput {
            history: &history,
            net: net_for_three_ops(),
            availability: None,
            exceptions: &[],
            harness: None,
        });
        let expected = "\
{:perf {:latency-graph {:valid? true}, :rate-graph {:valid? true}, :valid? true},
 :timeline {:valid? true},
 :exceptions {:valid? true},
 :stats {:valid? true, :count 3, :ok-count 3, :fail-count 0, :info-count 0, :by-f {:broadcast {:valid? true, :count 1, :ok-count 1, :fail-count 0, :info-count 0}, :read {:valid? true, :count 2, :ok-count 2, :fail-count 0, :info-count 0}}},
 :availability {:valid? true, :ok-fraction 1.0},
 :net {:all {:send-count 7, :recv-count 6, :msg-count 7, :msgs-per-op 2.3333333}, :clients {:send-count 6, :recv-count 6, :msg-count 6}, :servers {:send-count 1, :recv-count 0, :msg-count 1, :msgs-per-op 0.33333334}, :valid? true},
 :workload {:valid? true, :attempt-count 1, :stable-count 1, :lost-count 0, :lost (), :never-read-count 0, :never-read (), :stale-count 1, :stale (0), :worst-stale ({:element 0, :outcome :stable, :stable-latency 1, :lost-latency nil, :known {:type :ok, :f :add, :value 0, :process 0, :time 1000000, :index 1}, :last-absent {:type :invoke, :f :read, :value nil, :process 1, :time 2000000, :index 2}}), :stable-latencies {0 1, 0.5 1, 0.95 1, 0.99 1, 1 1}, :duplicated-count 0, :duplicated {}},
 :valid? true}
";
        assert_eq!(results.to_edn(), expected);
        assert_eq!(results.valid(), Validity::True);
        let json = results.to_json();
        assert_eq!(json["workload"]["stable-latencies"]["0.95"], json!(1));
        assert_eq!(
            json["workload"]["worst-stale"][0]["known"]["f"],
            json!("add")
        );
        assert_eq!(json["net"]["all"]["msgs-per-op"].to_string(), "2.3333333");
        assert_eq!(json["valid?"], json!(true));
    }

    #[test]
    fn combined_validity_is_the_worst_checker() {
        // Workload true, but no read ever succeeded in a second history:
        // stats false wins.
        let mut history = stale_history();
        let input = |h: &[Event]| {
            analyze(&AnalysisInput {
                history: h,
                net: net_for_three_ops(),
                availability: Some(AvailabilityReq::Total),
                exceptions: &[],
                harness: None,
            })
        };
        assert_eq!(input(&history).valid(), Validity::True);
        history.push(op(6, EventType::Invoke, 2, "read", Value::Null));
        history.push(op(7, EventType::Fail, 2, "read", Value::Null));
        let results = input(&history);
        assert_eq!(results.availability().valid, Validity::False);
        assert_eq!(results.valid(), Validity::False);
        assert!(results.to_edn().ends_with(":valid? false}\n"));
        // Only broadcasts: workload unknown, stats false (no read entry is
        // not a failure, but a failed read with no ok is).
        let only_failed_reads = vec![
            op(0, EventType::Invoke, 0, "broadcast", json!(0)),
            op(1, EventType::Ok, 0, "broadcast", json!(0)),
            op(2, EventType::Invoke, 1, "read", Value::Null),
            op(3, EventType::Fail, 1, "read", Value::Null),
        ];
        let results = analyze(&AnalysisInput {
            history: &only_failed_reads,
            net: net_for_three_ops(),
            availability: None,
            exceptions: &[],
            harness: None,
        });
        assert_eq!(results.workload().valid, Validity::Unknown);
        assert_eq!(results.stats().valid(), Validity::False);
        assert_eq!(results.valid(), Validity::False);
        let unknown_only = analyze(&AnalysisInput {
            history: &only_failed_reads[..2],
            net: net_for_three_ops(),
            availability: None,
            exceptions: &[],
            harness: None,
        });
        assert_eq!(unknown_only.valid(), Validity::Unknown);
        assert!(unknown_only.to_edn().ends_with(":valid? :unknown}\n"));
    }

    #[test]
    fn exceptions_group_by_class_most_frequent_first() {
        let history = stale_history();
        let record = |class: &str, index| ExceptionRecord {
            class: class.into(),
            message: format!("boom {index}"),
            op: op(index, EventType::Info, 0, "read", Value::Null),
        };
        let records = [record("B", 1), record("A", 2), record("A", 3)];
        let results = analyze(&AnalysisInput {
            history: &history,
            net: net_for_three_ops(),
            availability: None,
            exceptions: &records,
            harness: None,
        });
        let groups = results.exceptions();
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].class.as_str(), groups[0].count), ("A", 2));
        assert_eq!(groups[0].example.message, "boom 2");
        let json = results.to_json();
        assert_eq!(json["exceptions"]["valid?"], json!(true));
        assert_eq!(json["exceptions"]["exceptions"][1]["class"], json!("B"));
        assert_eq!(
            json["exceptions"]["exceptions"][0]["example"]["exception"]["via"][0]["type"],
            json!("A")
        );
        assert_eq!(results.valid(), Validity::True);
    }

    #[test]
    fn harness_extension_entry() {
        let history = stale_history();
        let lateness = LatenessSummary::from_samples_ms(&[0.25, 3.0, 0.5, 1.0]).unwrap();
        let harness = HarnessReport {
            lateness_ms: vec![(Stage::NodeDeliveries, lateness)],
            cpu_seconds: Some(2.5),
            steal_percent: Some(4.24),
            wall_seconds: 31.0,
            malformed_lines: 2,
            seed: Some(7),
            notes: vec![("thread-pick".into(), "random".into())],
            sections: vec![(
                "faults".into(),
                Edn::kw_map([("kills", Edn::Vector(vec![]))]),
            )],
        };
        let results = analyze(&AnalysisInput {
            history: &history,
            net: net_for_three_ops(),
            availability: None,
            exceptions: &[],
            harness: Some(harness),
        });
        let edn = results.to_edn();
        let line = edn.lines().find(|l| l.starts_with(" :harness")).unwrap();
        assert_eq!(
            line,
            " :harness {:valid? true, :lateness-ms {:node-deliveries {:p50 1.0, :p99 3.0, :max 3.0, :count 4}}, \
             :lateness-bound-p99-ms 2.0, :lateness-exceeded true, \
             :cpu-seconds 2.5, :wall-seconds 31.0, :steal-percent 4.2, :malformed-lines 2, :seed 7, :thread-pick \"random\", :faults {:kills []}},"
        );
        let json = results.to_json();
        assert_eq!(
            json["harness"]["lateness-ms"]["node-deliveries"]["p50"],
            json!(1.0)
        );
        assert_eq!(json["harness"]["lateness-exceeded"], json!(true));
    }

    #[test]
    fn lateness_summary_indexing() {
        assert_eq!(LatenessSummary::from_samples_ms(&[]), None);
        let s = LatenessSummary::from_samples_ms(&[f64::NAN, 5.0]).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (5.0, 5.0, 5.0));
        let samples: Vec<f64> = (0..200).map(f64::from).collect();
        let s = LatenessSummary::from_samples_ms(&samples).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (100.0, 198.0, 199.0));
    }
    #[test]
    fn a_graph_that_was_not_drawn_makes_perf_and_the_run_unknown() {
        let history = stale_history();
        let results = analyze(&AnalysisInput {
            history: &history,
            net: net_for_three_ops(),
            availability: None,
            exceptions: &[],
            harness: None,
        });
        assert_eq!(results.valid(), Validity::True);
        let results = results.with_perf(PerfResult {
            latency_graph: Ok(()),
            rate_graph: Err("cannot write rate.svg: disk full".into()),
        });
        let edn = results.to_edn();
        let line = edn.lines().find(|l| l.starts_with("{:perf")).unwrap();
        assert_eq!(
            line,
            "{:perf {:latency-graph {:valid? true}, :rate-graph {:valid? :unknown, \
             :error \"cannot write rate.svg: disk full\"}, :valid? :unknown},"
        );
        assert_eq!(results.valid(), Validity::Unknown);
        assert!(edn.ends_with(":valid? :unknown}\n"));
    }
}
