//! The checkers that read the history (spec 3.1-3.6): the broadcast
//! workload checker (Jepsen's set-full, with `broadcast` as `add`), the
//! stats checker and the availability checker, plus latency quantiles.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::edn::Edn;
use super::history::{Event, EventType, Process};

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    True,
    False,
    Unknown,
}

impl Validity {
    /// The worse of two verdicts: false beats unknown, which beats true.
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (False, _) | (_, False) => False,
            (Unknown, _) | (_, Unknown) => Unknown,
            (True, True) => True,
        }
    }

    pub fn from_bool(valid: bool) -> Validity {
        if valid {
            Validity::True
        } else {
            Validity::False
        }
    }

    /// `true`, `false` or `:unknown`.
    pub fn to_edn(self) -> Edn {
        match self {
            Validity::True => Edn::Bool(true),
            Validity::False => Edn::Bool(false),
            Validity::Unknown => Edn::keyword("unknown"),
        }
    }
}

/// The quantile points of the latency maps.
pub const QUANTILE_POINTS: [f64; 5] = [0.0, 0.5, 0.95, 0.99, 1.0];

/// Latency quantiles in whole milliseconds, at [`QUANTILE_POINTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantiles {
    pub min: u64,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl Quantiles {
    /// `(point, value)` pairs in point order.
    pub fn points(&self) -> [(f64, u64); 5] {
        let values = [self.min, self.p50, self.p95, self.p99, self.max];
        std::array::from_fn(|k| (QUANTILE_POINTS[k], values[k]))
    }
}

/// Quantiles of `latencies_ms` (any order): for point p, the sorted entry at
/// `min(m - 1, floor(m * p))`. `None` when there are none.
pub fn quantiles(latencies_ms: &[u64]) -> Option<Quantiles> {
    if latencies_ms.is_empty() {
        return None;
    }
    let mut sorted = latencies_ms.to_vec();
    sorted.sort_unstable();
    let m = sorted.len();
    let at = |p: f64| sorted[((m as f64 * p).floor() as usize).min(m - 1)];
    Some(Quantiles {
        min: at(QUANTILE_POINTS[0]),
        p50: at(QUANTILE_POINTS[1]),
        p95: at(QUANTILE_POINTS[2]),
        p99: at(QUANTILE_POINTS[3]),
        max: at(QUANTILE_POINTS[4]),
    })
}

/// What became of one broadcast value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stable,
    Lost,
    NeverRead,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Stable => "stable",
            Outcome::Lost => "lost",
            Outcome::NeverRead => "never-read",
        }
    }
}

/// The set-full state of one element once the history is walked. The
/// `usize`s are positions in the history slice.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementReport {
    pub element: Value,
    pub outcome: Outcome,
    /// The ok completion (broadcast ack or first read containing it) that
    /// made the element known.
    pub known: Option<usize>,
    /// The invocation of the last-invoked ok read that contained it.
    pub last_present: Option<usize>,
    /// The invocation of the last-invoked ok read that did not contain it.
    pub last_absent: Option<usize>,
    /// Stable latency for a stable element, lost latency for a lost one.
    pub latency_ms: Option<u64>,
}

/// A stale element as listed in `:worst-stale`.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleElement {
    pub element: Value,
    pub stable_latency_ms: u64,
    pub known: Event,
    pub last_absent: Event,
}

/// The `:workload` checker's result.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadResult {
    pub valid: Validity,
    /// Distinct values with a broadcast invocation.
    pub attempt_count: u64,
    pub stable_count: u64,
    /// Sorted ascending, as are `never_read` and `stale`.
    pub lost: Vec<Value>,
    pub never_read: Vec<Value>,
    /// Stable elements with a positive stable latency.
    pub stale: Vec<Value>,
    /// Up to [`WORST_STALE_LIMIT`] stale elements, highest latency first.
    pub worst_stale: Vec<StaleElement>,
    pub stable_latencies: Option<Quantiles>,
    pub lost_latencies: Option<Quantiles>,
    /// Elements some ok read returned more than once, with the highest
    /// count in one read, sorted. Always empty as Jepsen computes it (spec
    /// 3.5); filled by [`WorkloadResult::flag_duplicates`].
    pub duplicated: Vec<(Value, u64)>,
}

pub const WORST_STALE_LIMIT: usize = 8;

/// Element identity is JSON equality: `1` and `1.0` are different values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ElementKey {
    Unsigned(u64),
    Negative(i64),
    FloatBits(u64),
    Other(String),
}

fn element_key(value: &Value) -> ElementKey {
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                ElementKey::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                ElementKey::Negative(i)
            } else {
                // 0.0 == -0.0 in JSON equality.
                let f = n.as_f64().unwrap_or(f64::NAN);
                ElementKey::FloatBits(if f == 0.0 { 0 } else { f.to_bits() })
            }
        }
        other => ElementKey::Other(other.to_string()),
    }
}

/// Maps element values to dense ids. Broadcast values are small
/// consecutive integers, which get a direct table; anything else a hash map.
#[derive(Default)]
struct ElementIds {
    small: Vec<Option<usize>>,
    other: HashMap<ElementKey, usize>,
}

const DIRECT_LIMIT: u64 = 1 << 22;

impl ElementIds {
    fn get(&self, value: &Value) -> Option<usize> {
        match value.as_u64() {
            Some(u) if u < DIRECT_LIMIT => self.small.get(u as usize).copied().flatten(),
            _ => self.other.get(&element_key(value)).copied(),
        }
    }

    /// The id of `value`, allocating `next` if it is new.
    fn get_or_insert(&mut self, value: &Value, next: usize) -> usize {
        match value.as_u64() {
            Some(u) if u < DIRECT_LIMIT => {
                let u = u as usize;
                if u >= self.small.len() {
                    self.small.resize(u + 1, None);
                }
                *self.small[u].get_or_insert(next)
            }
            _ => *self.other.entry(element_key(value)).or_insert(next),
        }
    }
}

#[derive(Default, Clone)]
struct ElementState {
    known: Option<usize>,
    last_present: Option<usize>,
    last_absent: Option<usize>,
}

/// History positions in index order (the slice is normally already sorted).
fn index_order(history: &[Event]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&p| history[p].index);
    order
}

/// Walks the history as set-full does (spec 3.2-3.3) and reports every
/// element, in order of first broadcast invocation.
pub fn analyze_elements(history: &[Event]) -> Vec<ElementReport> {
    let mut ids = ElementIds::default();
    let mut values: Vec<&Value> = Vec::new();
    let mut states: Vec<ElementState> = Vec::new();
    let mut in_flight: HashMap<u64, usize> = HashMap::new();
    // seen_in[id] == read number when the current read contains the element.
    let mut seen_in: Vec<u64> = Vec::new();
    let mut reads = 0u64;
    let rank = |p: Option<usize>| p.map_or(-1, |p| history[p].index as i128);

    for pos in index_order(history) {
        let event = &history[pos];
        let Process::Client(process) = event.process else {
            continue;
        };
        if event.kind == EventType::Invoke {
            in_flight.insert(process, pos);
            if event.f == "broadcast" {
                let id = ids.get_or_insert(&event.value, values.len());
                if id == values.len() {
                    values.push(&event.value);
                    states.push(ElementState::default());
                    seen_in.push(0);
                }
            }
            continue;
        }
        let invocation = in_flight.remove(&process);
        if event.kind != EventType::Ok {
            continue;
        }
        match event.f.as_str() {
            "broadcast" => {
                if let Some(id) = ids.get(&event.value) {
                    states[id].known.get_or_insert(pos);
                }
            }
            "read" => {
                let (Some(invocation), Value::Array(messages)) = (invocation, &event.value) else {
                    continue;
                };
                reads += 1;
                for message in messages {
                    if let Some(id) = ids.get(message) {
                        seen_in[id] = reads;
                        states[id].known.get_or_insert(pos);
                    }
                }
                let read_rank = history[invocation].index as i128;
                for (state, seen) in states.iter_mut().zip(&seen_in) {
                    let slot = if *seen == reads {
                        &mut state.last_present
                    } else {
                        &mut state.last_absent
                    };
                    if rank(*slot) < read_rank {
                        *slot = Some(invocation);
                    }
                }
            }
            _ => {}
        }
    }

    let latency = |read_invocation: Option<usize>, known: usize| {
        let start = read_invocation.map_or(0, |p| i128::from(history[p].time_ns) + 1);
        let ns = (start - i128::from(history[known].time_ns)).max(0);
        (ns / 1_000_000) as u64
    };
    values
        .into_iter()
        .zip(states)
        .map(|(value, s)| {
            let (present, absent) = (rank(s.last_present), rank(s.last_absent));
            let (outcome, latency_ms) = match s.known {
                Some(known) if s.last_present.is_some() && absent < present => {
                    (Outcome::Stable, Some(latency(s.last_absent, known)))
                }
                Some(known)
                    if s.last_absent.is_some()
                        && present < absent
                        && (history[known].index as i128) < absent =>
                {
                    (Outcome::Lost, Some(latency(s.last_present, known)))
                }
                _ => (Outcome::NeverRead, None),
            };
            ElementReport {
                element: value.clone(),
                outcome,
                known: s.known,
                last_present: s.last_present,
                last_absent: s.last_absent,
                latency_ms,
            }
        })
        .collect()
}

/// The broadcast workload checker (spec 3.2-3.5).
pub fn check_workload(history: &[Event]) -> WorkloadResult {
    let elements = analyze_elements(history);
    let with = |outcome: Outcome| elements.iter().filter(move |e| e.outcome == outcome);
    let stable_latencies: Vec<u64> = with(Outcome::Stable).filter_map(|e| e.latency_ms).collect();
    let lost_latencies: Vec<u64> = with(Outcome::Lost).filter_map(|e| e.latency_ms).collect();
    let stale_reports: Vec<&ElementReport> = with(Outcome::Stable)
        .filter(|e| e.latency_ms.is_some_and(|l| l > 0))
        .collect();
    let mut worst: Vec<&ElementReport> = stale_reports.clone();
    worst.sort_by(|a, b| {
        b.latency_ms
            .cmp(&a.latency_ms)
            .then_with(|| compare_values(&a.element, &b.element))
    });
    let worst_stale = worst
        .into_iter()
        .take(WORST_STALE_LIMIT)
        .filter_map(|e| {
            Some(StaleElement {
                element: e.element.clone(),
                stable_latency_ms: e.latency_ms?,
                known: history[e.known?].clone(),
                last_absent: history[e.last_absent?].clone(),
            })
        })
        .collect();
    let lost = sorted_elements(with(Outcome::Lost));
    let stable_count = stable_latencies.len() as u64;
    let valid = if !lost.is_empty() {
        Validity::False
    } else if stable_count == 0 {
        Validity::Unknown
    } else {
        Validity::True
    };
    WorkloadResult {
        valid,
        attempt_count: elements.len() as u64,
        stable_count,
        lost,
        never_read: sorted_elements(with(Outcome::NeverRead)),
        stale: sorted_elements(stale_reports.into_iter()),
        worst_stale,
        stable_latencies: quantiles(&stable_latencies),
        lost_latencies: quantiles(&lost_latencies),
        duplicated: Vec::new(),
    }
}

impl WorkloadResult {
    /// `--strict-duplicates`: the duplicate check Jepsen meant to make (spec
    /// 3.5). Every element that appears more than once in a single ok read
    /// is reported with its highest count, and any such element makes the
    /// workload invalid.
    pub fn flag_duplicates(&mut self, history: &[Event]) {
        let mut highest: HashMap<ElementKey, (Value, u64)> = HashMap::new();
        let ok_reads = history
            .iter()
            .filter(|e| e.kind == EventType::Ok && e.f == "read");
        for read in ok_reads {
            let Some(returned) = read.value.as_array() else {
                continue;
            };
            let mut counts: HashMap<ElementKey, (&Value, u64)> = HashMap::new();
            for value in returned {
                counts.entry(element_key(value)).or_insert((value, 0)).1 += 1;
            }
            for (key, (value, count)) in counts {
                if count > 1 {
                    let entry = highest.entry(key).or_insert((value.clone(), count));
                    entry.1 = entry.1.max(count);
                }
            }
        }
        let mut duplicated: Vec<(Value, u64)> = highest.into_values().collect();
        duplicated.sort_by(|a, b| compare_values(&a.0, &b.0));
        if !duplicated.is_empty() {
            self.valid = Validity::False;
        }
        self.duplicated = duplicated;
    }
}

fn sorted_elements<'a>(reports: impl Iterator<Item = &'a ElementReport>) -> Vec<Value> {
    let mut values: Vec<Value> = reports.map(|e| e.element.clone()).collect();
    values.sort_by(compare_values);
    values
}

/// Orders element values as Clojure's `compare` would for numbers (by
/// numeric value); non-numbers come after numbers, by their JSON text.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn integer(v: &Value) -> Option<i128> {
        v.as_u64()
            .map(i128::from)
            .or_else(|| v.as_i64().map(i128::from))
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (integer(a), integer(b)) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
                    .then_with(|| integer(a).is_none().cmp(&integer(b).is_none()))
            }
        },
        (Value::Number(_), _) => Ordering::Less,
        (_, Value::Number(_)) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Completion counts for one `f` or overall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl OpCounts {
    pub fn count(&self) -> u64 {
        self.ok + self.fail + self.info
    }

    /// An `f` is valid when at least one of its operations succeeded.
    pub fn valid(&self) -> bool {
        self.ok > 0
    }
}

/// The `:stats` checker's result: client completions, overall and by `f`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsResult {
    pub overall: OpCounts,
    pub by_f: BTreeMap<String, OpCounts>,
}

impl StatsResult {
    /// Valid iff every `f` seen has at least one ok.
    pub fn valid(&self) -> Validity {
        Validity::from_bool(self.by_f.values().all(OpCounts::valid))
    }
}

/// The stats checker (spec 3.6): counts client completions only.
pub fn check_stats(history: &[Event]) -> StatsResult {
    let mut stats = StatsResult::default();
    for event in history {
        if event.process == Process::Nemesis {
            continue;
        }
        let bump = |c: &mut OpCounts| match event.kind {
            EventType::Ok => c.ok += 1,
            EventType::Fail => c.fail += 1,
            EventType::Info => c.info += 1,
            EventType::Invoke => {}
        };
        if event.kind != EventType::Invoke {
            bump(&mut stats.overall);
            bump(stats.by_f.entry(event.f.clone()).or_default());
        }
    }
    stats
}

/// `--availability`: `total` (every operation ok) or a minimum ok fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AvailabilityReq {
    Total,
    AtLeast(f64),
}

/// The `:availability` checker's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AvailabilityResult {
    pub valid: Validity,
    /// ok completions / client invocations (1 when there are none), as f32.
    pub ok_fraction: f32,
}

/// The availability checker: always valid unless a requirement is given.
pub fn check_availability(history: &[Event], req: Option<AvailabilityReq>) -> AvailabilityResult {
    let client = history.iter().filter(|e| e.process != Process::Nemesis);
    let (mut invocations, mut oks) = (0u64, 0u64);
    for event in client {
        match event.kind {
            EventType::Invoke => invocations += 1,
            EventType::Ok => oks += 1,
            _ => {}
        }
    }
    let ok_fraction = if invocations == 0 {
        1.0
    } else {
        super::netstats::ratio_f32(oks, invocations)
    };
    let valid = match req {
        None => true,
        Some(AvailabilityReq::Total) => ok_fraction == 1.0,
        Some(AvailabilityReq::AtLeast(x)) => f64::from(ok_fraction) >= x,
    };
    AvailabilityResult {
        valid: Validity::from_bool(valid),
        ok_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A history builder: events get consecutive indices, 1 ms apart.
    #[derive(Default)]
    struct H(Vec<Event>);

    impl H {
        fn push(&mut self, kind: EventType, process: u64, f: &str, value: Value) -> &mut Self {
            let index = self.0.len() as u64;
            self.0.push(Event::new(
                index,
                index * 1_000_000,
                kind,
                Process::Client(process),
                f,
                value,
            ));
            self
        }
        fn invoke(&mut self, p: u64, f: &str, v: Value) -> &mut Self {
            self.push(EventType::Invoke, p, f, v)
        }
        fn ok(&mut self, p: u64, f: &str, v: Value) -> &mut Self {
            self.push(EventType::Ok, p, f, v)
        }
        fn fail(&mut self, p: u64, f: &str) -> &mut Self {
            self.push(EventType::Fail, p, f, Value::Null)
        }
        fn broadcast(&mut self, p: u64, v: u64) -> &mut Self {
            self.invoke(p, "broadcast", json!(v))
                .ok(p, "broadcast", json!(v))
        }
        fn read(&mut self, p: u64, seen: Value) -> &mut Self {
            self.invoke(p, "read", Value::Null).ok(p, "read", seen)
        }
    }

    #[test]
    fn present_reads_rank_by_invocation_not_completion() {
        // Read A (invoked first) sees 0 but completes last; read B, invoked
        // after the absent read C, sees 0 and completes first. Ranked by
        // invocation, B is last-present (index 5) > C (4): stable. Ranking by
        // completion would pick A (3) and call 0 lost.
        let mut h = H::default();
        h.broadcast(0, 0)
            .invoke(1, "read", Value::Null) // 2
            .invoke(2, "read", Value::Null) // 3: A
            .invoke(3, "read", Value::Null) // 4: C
            .invoke(4, "read", Value::Null) // 5: B
            .ok(4, "read", json!([0]))
            .ok(3, "read", json!([]))
            .ok(1, "read", json!([0]))
            .ok(2, "read", json!([0]));
        let r = check_workload(&h.0);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.stale, vec![json!(0)]);
        let e = &analyze_elements(&h.0)[0];
        assert_eq!((e.last_present, e.last_absent), (Some(5), Some(4)));
        // C started at 4 ms, known at 1 ms: trunc((4 ms + 1 ns - 1 ms) / 1 ms).
        assert_eq!(e.latency_ms, Some(3));
    }

    #[test]
    fn final_read_missing_a_value_is_lost() {
        let mut h = H::default();
        h.broadcast(0, 0)
            .broadcast(1, 1)
            .read(0, json!([0, 1]))
            .read(1, json!([1]));
        let r = check_workload(&h.0);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.lost, vec![json!(0)]);
        assert_eq!(r.stable_count, 1);
        assert!(r.lost_latencies.is_some());
    }

    #[test]
    fn a_node_dropping_every_tenth_value_is_invalid() {
        let mut h = H::default();
        for v in 0..30 {
            h.broadcast(v % 3, v);
        }
        let kept: Vec<u64> = (0..30).filter(|v| v % 10 != 0).collect();
        for p in 0..3 {
            h.read(p, json!(kept));
        }
        let r = check_workload(&h.0);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.lost, vec![json!(0), json!(10), json!(20)]);
        assert_eq!((r.attempt_count, r.stable_count), (30, 27));
    }

    #[test]
    fn nodes_that_never_gossip_lose_each_others_values() {
        let mut h = H::default();
        for v in 0..10 {
            h.broadcast(v % 2, v);
        }
        h.read(0, json!([0, 2, 4, 6, 8]))
            .read(1, json!([1, 3, 5, 7, 9]));
        let r = check_workload(&h.0);
        assert_eq!(r.valid, Validity::False);
        // Node 1's read comes last, so node 0's values are the lost ones.
        assert_eq!(
            r.lost,
            (0..10).step_by(2).map(|v| json!(v)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn duplicates_in_a_read_are_not_flagged() {
        let mut h = H::default();
        h.broadcast(0, 3).read(0, json!([3, 3]));
        assert_eq!(check_workload(&h.0).valid, Validity::True);
        assert!(check_workload(&h.0).duplicated.is_empty());
    }

    #[test]
    fn strict_duplicates_report_the_highest_count_in_one_read() {
        let mut h = H::default();
        h.broadcast(0, 3).broadcast(0, 1).broadcast(0, 2);
        h.read(0, json!([3, 1, 3, 2]))
            .read(1, json!([1, 3, 3, 3, 2]))
            .read(1, json!([2, 1, 2, 3]));
        let mut r = check_workload(&h.0);
        r.flag_duplicates(&h.0);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.duplicated, [(json!(2), 2), (json!(3), 3)]);
        // Without duplicates the verdict stays, `unknown` included.
        let mut clean = H::default();
        clean.broadcast(0, 5).read(0, json!([5]));
        let mut r = check_workload(&clean.0);
        r.flag_duplicates(&clean.0);
        assert_eq!((r.valid, r.duplicated.len()), (Validity::True, 0));
        let mut unread = H::default();
        unread.broadcast(0, 5);
        let mut r = check_workload(&unread.0);
        r.flag_duplicates(&unread.0);
        assert_eq!(r.valid, Validity::Unknown);
    }

    #[test]
    fn worst_stale_is_highest_latency_first_and_capped() {
        let mut h = H::default();
        for v in 0..10 {
            h.broadcast(0, v);
        }
        // Value v (known at 2v+1 ms) is missed by reads 0..=2v (read k is
        // invoked at 20+2k ms): stable latency 19 + 2v ms, highest for 9.
        let all: Vec<u64> = (0..10).collect();
        for k in 0..20 {
            let seen: Vec<u64> = all.iter().copied().filter(|v| 2 * v < k).collect();
            h.read(1, json!(seen));
        }
        h.read(1, json!(all));
        let r = check_workload(&h.0);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.stale.len(), 10);
        assert_eq!(r.worst_stale.len(), WORST_STALE_LIMIT);
        let latencies: Vec<u64> = r.worst_stale.iter().map(|s| s.stable_latency_ms).collect();
        assert_eq!(latencies, [37, 35, 33, 31, 29, 27, 25, 23]);
        assert_eq!(r.worst_stale[0].element, json!(9));
        assert_eq!(r.worst_stale[0].known.kind, EventType::Ok);
        assert_eq!(r.worst_stale[0].last_absent.kind, EventType::Invoke);
    }

    #[test]
    fn stats_need_an_ok_per_f() {
        let mut h = H::default();
        h.broadcast(0, 0)
            .invoke(1, "read", Value::Null)
            .fail(1, "read");
        let s = check_stats(&h.0);
        assert_eq!(
            s.overall,
            OpCounts {
                ok: 1,
                fail: 1,
                info: 0
            }
        );
        assert_eq!(
            s.by_f["read"],
            OpCounts {
                ok: 0,
                fail: 1,
                info: 0
            }
        );
        assert_eq!(s.valid(), Validity::False);
        h.read(1, json!([0]));
        assert_eq!(check_stats(&h.0).valid(), Validity::True);
    }

    #[test]
    fn availability_requirements() {
        let mut h = H::default();
        h.broadcast(0, 0)
            .invoke(1, "read", Value::Null)
            .fail(1, "read");
        let a = check_availability(&h.0, None);
        assert_eq!((a.valid, a.ok_fraction), (Validity::True, 0.5));
        assert_eq!(
            check_availability(&h.0, Some(AvailabilityReq::Total)).valid,
            Validity::False
        );
        let at_least = |x| check_availability(&h.0, Some(AvailabilityReq::AtLeast(x))).valid;
        assert_eq!(
            (at_least(0.5), at_least(0.51)),
            (Validity::True, Validity::False)
        );
        assert_eq!(
            check_availability(&[], Some(AvailabilityReq::Total)).ok_fraction,
            1.0
        );
    }

    /// Broadcasts 0..n by process 0, each followed by a read on process 1
    /// that returns an arbitrary subset of the values so far (a lagging
    /// replica), then a final read on process 2 returning `final_read`.
    fn lagging_history(n: u64, subsets: &[u64], final_read: Vec<u64>) -> Vec<Event> {
        let mut h = H::default();
        for v in 0..n {
            h.broadcast(0, v);
            let mask = subsets[v as usize % subsets.len()];
            let seen: Vec<u64> = (0..=v).filter(|x| mask >> (x % 64) & 1 == 1).collect();
            h.read(1, json!(seen));
        }
        h.read(2, json!(final_read));
        h.0
    }

    proptest::proptest! {
        #[test]
        fn complete_final_read_is_valid(n in 1u64..40, subsets in proptest::collection::vec(proptest::num::u64::ANY, 1..8)) {
            let r = check_workload(&lagging_history(n, &subsets, (0..n).collect()));
            proptest::prop_assert_eq!(r.valid, Validity::True);
            proptest::prop_assert_eq!(r.stable_count, n);
            proptest::prop_assert!(r.lost.is_empty() && r.never_read.is_empty());
            let max = r.stable_latencies.map(|q| q.max).unwrap_or(0);
            proptest::prop_assert!(max <= 4 * n, "latency {} beyond the history's length", max);
        }

        #[test]
        fn value_missing_from_last_read_is_lost(n in 1u64..40, missing in 0u64..40, subsets in proptest::collection::vec(proptest::num::u64::ANY, 1..8)) {
            let missing = missing % n;
            let final_read = (0..n).filter(|v| *v != missing).collect();
            let r = check_workload(&lagging_history(n, &subsets, final_read));
            proptest::prop_assert_eq!(r.valid, Validity::False);
            proptest::prop_assert_eq!(r.lost, vec![json!(missing)]);
            proptest::prop_assert_eq!(r.stable_count, n - 1);
        }
    }

    #[test]
    fn merge_order() {
        use Validity::*;
        assert_eq!(True.merge(Unknown), Unknown);
        assert_eq!(Unknown.merge(False), False);
        assert_eq!(False.merge(True), False);
        assert_eq!(True.merge(True), True);
    }

    #[test]
    fn quantile_indexing() {
        assert_eq!(quantiles(&[]), None);
        let q = quantiles(&[7]).unwrap();
        assert_eq!(q.points().map(|(_, v)| v), [7; 5]);
        // Unsorted input; even count takes the upper median.
        let q = quantiles(&[40, 0, 12, 3]).unwrap();
        assert_eq!((q.min, q.p50, q.p95, q.p99, q.max), (0, 12, 40, 40, 40));
        // m = 100: 0.95 -> index 95, 0.99 -> index 99.
        let v: Vec<u64> = (0..100).rev().collect();
        let q = quantiles(&v).unwrap();
        assert_eq!((q.min, q.p50, q.p95, q.p99, q.max), (0, 50, 95, 99, 99));
        // m = 20: floor(20 * 0.95) = 19 (f64 gives exactly 19.0).
        let v: Vec<u64> = (0..20).collect();
        assert_eq!(quantiles(&v).unwrap().p95, 19);
    }

    #[test]
    fn value_order() {
        let mut v = vec![
            json!(3),
            json!(1.5),
            json!(-2),
            json!("x"),
            json!(1),
            json!(1.0),
        ];
        v.sort_by(compare_values);
        assert_eq!(
            v,
            vec![
                json!(-2),
                json!(1),
                json!(1.0),
                json!(1.5),
                json!(3),
                json!("x")
            ]
        );
    }
}
