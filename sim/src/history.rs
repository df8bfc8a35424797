//! Operations and history events: what the workload records and the checker
//! reads (spec section 3.1).

use std::fmt::Write;

use serde_json::Value;

use super::edn::{is_keyword_name, Edn};

/// Event type of a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// Who performed an operation: a client process number or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Process {
    Client(u64),
    Nemesis,
}

/// One entry of the history. `index` is its position (from 0), counting
/// client and nemesis events alike; `time_ns` is nanoseconds since test time 0.
///
/// `f` is `broadcast` or `read` for clients, `start-partition` or
/// `stop-partition` for the nemesis. `value` holds, as JSON: the integer for a
/// broadcast (invocation and completion); `null` for a read invocation and a
/// failed or indeterminate read; the returned `messages` array for an ok read;
/// the nemesis values of spec section 5 for nemesis events.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub index: u64,
    pub time_ns: u64,
    pub kind: EventType,
    pub process: Process,
    pub f: String,
    pub value: Value,
    pub final_read: bool,
    pub error: Option<OpError>,
}

/// An operation's `:error`, in the form Maelstrom's client gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// A keyword: `:net-timeout`.
    Keyword(String),
    /// Free text: `"indeterminate: ..."` for a malformed reply.
    Text(String),
    /// A node's `error` reply: `[:not-supported "text"]`, the code's name or
    /// `:unknown`, and `nil` when the reply had no text.
    Reply { name: String, text: Option<String> },
}

impl OpError {
    pub fn to_edn(&self) -> Edn {
        match self {
            OpError::Keyword(name) => Edn::keyword(name),
            OpError::Text(text) => Edn::str(text),
            OpError::Reply { name, text } => Edn::Vector(vec![
                Edn::keyword(name),
                text.as_deref().map_or(Edn::Nil, Edn::str),
            ]),
        }
    }
}

impl EventType {
    /// The keyword name: `invoke`, `ok`, `fail` or `info`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

impl Event {
    /// An event without `:final?` or `:error`.
    pub fn new(
        index: u64,
        time_ns: u64,
        kind: EventType,
        process: Process,
        f: &str,
        value: Value,
    ) -> Event {
        Event {
            index,
            time_ns,
            kind,
            process,
            f: f.to_string(),
            value,
            final_read: false,
            error: None,
        }
    }

    /// The op map as history.edn writes it:
    /// `{:type :invoke, :f :broadcast, :value 0, :process 0, :time 123, :index 0}`,
    /// plus `:final? true` and `:error` when present.
    pub fn to_edn(&self) -> Edn {
        self.to_edn_with_f(&self.f)
    }

    /// The op map with `f` replaced, for the checker's view of the history
    /// (where `broadcast` reads `add`).
    pub fn to_edn_with_f(&self, f: &str) -> Edn {
        let mut entries = vec![
            ("type", Edn::keyword(self.kind.name())),
            ("f", keyword_or_string(f)),
            ("value", self.value_edn()),
            ("process", self.process_edn()),
            ("time", Edn::Int(i128::from(self.time_ns))),
            ("index", Edn::Int(i128::from(self.index))),
        ];
        if self.final_read {
            entries.push(("final?", Edn::Bool(true)));
        }
        if let Some(error) = &self.error {
            entries.push(("error", error.to_edn()));
        }
        Edn::kw_map(entries)
    }

    fn process_edn(&self) -> Edn {
        match self.process {
            Process::Client(p) => Edn::Int(i128::from(p)),
            Process::Nemesis => Edn::keyword("nemesis"),
        }
    }

    /// The value as history.edn writes it.
    pub fn value_edn(&self) -> Edn {
        match self.process {
            Process::Client(_) => Edn::from_json(&self.value),
            Process::Nemesis => nemesis_value_to_edn(&self.value),
        }
    }
}

/// Error and `f` names such as `net-timeout` are keywords in Maelstrom's
/// history; free text (e.g. "indeterminate: ...") stays a string.
fn keyword_or_string(name: &str) -> Edn {
    if is_keyword_name(name) {
        Edn::keyword(name)
    } else {
        Edn::str(name)
    }
}

/// Nemesis values are stored as JSON: `"majority"`, `"network-healed"`,
/// `null`, `["isolated", {dest: [srcs]}]`, or `{node: "killed"}` for the
/// kill and pause nemeses. Strings become keywords, and the arrays inside
/// the grudge map become sets: `[:isolated {"n3" #{"n0" "n1"}}]`,
/// `{"n3" :killed}`.
fn nemesis_value_to_edn(value: &Value) -> Edn {
    match value {
        Value::String(s) => keyword_or_string(s),
        Value::Array(items) => Edn::Vector(items.iter().map(nemesis_value_to_edn).collect()),
        Value::Object(map) => Edn::Map(
            map.iter()
                .map(|(dest, srcs)| {
                    let srcs = match srcs {
                        Value::Array(srcs) => Edn::Set(srcs.iter().map(Edn::from_json).collect()),
                        other => nemesis_value_to_edn(other),
                    };
                    (Edn::str(dest), srcs)
                })
                .collect(),
        ),
        other => Edn::from_json(other),
    }
}

/// The number of client invocations: the op count of msgs-per-op (spec 4.6).
pub fn client_invocation_count(events: &[Event]) -> u64 {
    events
        .iter()
        .filter(|e| e.kind == EventType::Invoke && e.process != Process::Nemesis)
        .count() as u64
}

/// history.edn: one op map per line.
pub fn to_edn_lines(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}", event.to_edn());
    }
    out
}

/// history.txt: tab-separated `process type f value` columns, and `error`
/// when there is one, each in its EDN form.
pub fn to_txt(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        let _ = write!(
            out,
            "{}\t:{}\t{}\t{}",
            event.process_edn(),
            event.kind.name(),
            keyword_or_string(&event.f),
            event.value_edn()
        );
        if let Some(error) = &event.error {
            let _ = write!(out, "\t{}", error.to_edn());
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(index: u64, kind: EventType, process: Process, f: &str, value: Value) -> Event {
        Event::new(index, 1000 * index, kind, process, f, value)
    }

    fn sample() -> Vec<Event> {
        let mut final_read = event(
            4,
            EventType::Ok,
            Process::Client(1),
            "read",
            json!([0, 1.0]),
        );
        final_read.final_read = true;
        let mut timeout = event(
            5,
            EventType::Info,
            Process::Client(0),
            "broadcast",
            json!(7),
        );
        timeout.error = Some(OpError::Keyword("net-timeout".into()));
        let mut malformed = event(6, EventType::Info, Process::Client(3), "read", Value::Null);
        malformed.error = Some(OpError::Text("indeterminate: \"bad\"\nreply".into()));
        let mut refused = event(
            7,
            EventType::Fail,
            Process::Client(2),
            "broadcast",
            json!(8),
        );
        refused.error = Some(OpError::Reply {
            name: "not-supported".into(),
            text: Some("no".into()),
        });
        vec![
            event(
                0,
                EventType::Invoke,
                Process::Client(0),
                "broadcast",
                json!(0),
            ),
            event(
                1,
                EventType::Info,
                Process::Nemesis,
                "start-partition",
                json!("majority"),
            ),
            event(
                2,
                EventType::Info,
                Process::Nemesis,
                "start-partition",
                json!(["isolated", {"n0": ["n1", "n2"], "n1": ["n0"]}]),
            ),
            event(
                3,
                EventType::Info,
                Process::Nemesis,
                "stop-partition",
                Value::Null,
            ),
            final_read,
            timeout,
            malformed,
            refused,
        ]
    }

    #[test]
    fn edn_lines() {
        let text = to_edn_lines(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "{:type :invoke, :f :broadcast, :value 0, :process 0, :time 0, :index 0}",
                "{:type :info, :f :start-partition, :value :majority, :process :nemesis, :time 1000, :index 1}",
                r#"{:type :info, :f :start-partition, :value [:isolated {"n0" #{"n1" "n2"}, "n1" #{"n0"}}], :process :nemesis, :time 2000, :index 2}"#,
                "{:type :info, :f :stop-partition, :value nil, :process :nemesis, :time 3000, :index 3}",
                "{:type :ok, :f :read, :value [0 1.0], :process 1, :time 4000, :index 4, :final? true}",
                "{:type :info, :f :broadcast, :value 7, :process 0, :time 5000, :index 5, :error :net-timeout}",
                r#"{:type :info, :f :read, :value nil, :process 3, :time 6000, :index 6, :error "indeterminate: \"bad\"\nreply"}"#,
                r#"{:type :fail, :f :broadcast, :value 8, :process 2, :time 7000, :index 7, :error [:not-supported "no"]}"#,
            ]
        );
    }

    #[test]
    fn kill_and_pause_values_name_their_nodes() {
        let killed = event(
            0,
            EventType::Info,
            Process::Nemesis,
            "start-kill",
            json!({"n3": "killed"}),
        );
        let invoked = event(
            1,
            EventType::Info,
            Process::Nemesis,
            "stop-pause",
            json!("all"),
        );
        assert_eq!(
            to_edn_lines(&[killed, invoked]),
            "{:type :info, :f :start-kill, :value {\"n3\" :killed}, :process :nemesis, :time 0, :index 0}\n\
             {:type :info, :f :stop-pause, :value :all, :process :nemesis, :time 1000, :index 1}\n"
        );
    }

    #[test]
    fn txt_columns() {
        let text = to_txt(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "0\t:invoke\t:broadcast\t0");
        assert_eq!(lines[1], ":nemesis\t:info\t:start-partition\t:majority");
        assert_eq!(lines[4], "1\t:ok\t:read\t[0 1.0]");
        assert_eq!(lines[5], "0\t:info\t:broadcast\t7\t:net-timeout");
        assert_eq!(lines[7], "2\t:fail\t:broadcast\t8\t[:not-supported \"no\"]");
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn invocation_count_skips_nemesis_and_completions() {
        assert_eq!(client_invocation_count(&sample()), 1);
    }
}
