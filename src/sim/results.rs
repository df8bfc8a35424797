//! The combined results map (spec 3.6): every checker's result under
//! Maelstrom's key names and nesting, written as results.edn and, with the
//! same keys, as results.json.

use super::checker::{
    check_availability, check_stats, check_workload, AvailabilityReq, AvailabilityResult, OpCounts,
    Quantiles, StatsResult, Validity, WorkloadResult,
};
use super::edn::Edn;
use super::history::Event;
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

/// p50/p99/max of a set of millisecond samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatenessSummary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
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
        })
    }
}

/// The harness's own measurements. Not a Maelstrom checker: it appears as
/// the extension entry `:harness` (always `:valid? true`) so that a run on an
/// overloaded machine says so in its results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HarnessReport {
    /// How late deliveries were against their deadlines.
    pub delivery_lateness_ms: Option<LatenessSummary>,
    /// CPU time the harness process used.
    pub cpu_seconds: Option<f64>,
    pub wall_seconds: f64,
    /// Node output lines that were not valid messages.
    pub malformed_lines: u64,
    pub seed: Option<u64>,
    /// Further settings worth recording (e.g. `thread-pick`, `p-loss`,
    /// `malformed-output`), written as keyword -> string entries.
    pub notes: Vec<(String, String)>,
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
    workload: WorkloadResult,
    stats: StatsResult,
    availability: AvailabilityResult,
    net: NetSummary,
    exceptions: Vec<ExceptionGroup>,
    harness: Option<HarnessReport>,
}

/// Runs every checker.
pub fn analyze(input: &AnalysisInput) -> Results {
    Results {
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
            .merge(self.stats.valid())
            .merge(self.availability.valid)
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

    /// The results map as one value tree, in spec 3.6's key order.
    pub fn to_edn_value(&self) -> Edn {
        Edn::kw_map(self.top_level_entries())
    }

    fn top_level_entries(&self) -> Vec<(&'static str, Edn)> {
        let valid_only = || Edn::kw_map([("valid?", Edn::Bool(true))]);
        let mut entries = vec![
            (
                "perf",
                Edn::kw_map([
                    ("latency-graph", valid_only()),
                    ("rate-graph", valid_only()),
                    ("valid?", Edn::Bool(true)),
                ]),
            ),
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
    // Jepsen's duplicate detector never fires (spec 3.5 quirk).
    entries.push(("duplicated-count", int(0)));
    entries.push(("duplicated", Edn::Map(vec![])));
    Edn::kw_map(entries)
}

fn harness_edn(h: &HarnessReport) -> Edn {
    let mut entries = vec![(Edn::keyword("valid?"), Edn::Bool(true))];
    let mut push = |k: &str, v: Edn| entries.push((Edn::keyword(k), v));
    if let Some(l) = &h.delivery_lateness_ms {
        push(
            "delivery-lateness-ms",
            Edn::kw_map([
                ("p50", Edn::Double(l.p50)),
                ("p99", Edn::Double(l.p99)),
                ("max", Edn::Double(l.max)),
            ]),
        );
    }
    if let Some(cpu) = h.cpu_seconds {
        push("cpu-seconds", Edn::Double(cpu));
    }
    push("wall-seconds", Edn::Double(h.wall_seconds));
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
    Edn::Map(entries)
}
