//! Reading finished runs back: a lenient EDN reader for `results.edn` (ours
//! or real Maelstrom's, whose ops carry `#jepsen.history.Op{...}` tags), the
//! figures the challenges are judged on, and each challenge's limits.

use std::collections::BTreeMap;
use std::fmt;

/// An EDN value, as far as results files need: tags are dropped (the tagged
/// form is kept), symbols and keywords keep their text, sets become vectors.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

/// Where and why an EDN text could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct EdnError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for EdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EDN: {} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for EdnError {}

impl Edn {
    /// Parses one EDN form (the whole text must be that form plus whitespace).
    pub fn parse(text: &str) -> Result<Edn, EdnError> {
        let mut reader = Reader {
            text: text.as_bytes(),
            pos: 0,
        };
        let value = reader.form()?;
        reader.skip_space();
        if reader.pos != reader.text.len() {
            return Err(reader.error("trailing text after the first form"));
        }
        Ok(value)
    }

    /// The value under keyword `key` (without the colon) of a map.
    pub fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Edn::Keyword(name) if name == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Follows a path of keywords through nested maps.
    pub fn path(&self, keys: &[&str]) -> Option<&Edn> {
        keys.iter().try_fold(self, |value, key| value.get(key))
    }

    /// The value under a numeric key (quantile maps: 0, 0.5, 0.95, 0.99, 1).
    pub fn get_number_key(&self, key: f64) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries.iter().find_map(|(k, v)| match k.as_f64() {
                Some(number) if number == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Edn::Int(n) => Some(*n as f64),
            Edn::Float(x) => Some(*x),
            _ => None,
        }
    }
}

struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, reason: &'static str) -> EdnError {
        EdnError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn form(&mut self) -> Result<Edn, EdnError> {
        self.skip_space();
        let byte = self
            .peek()
            .ok_or_else(|| self.error("unexpected end of text"))?;
        match byte {
            b'{' => {
                self.pos += 1;
                let items = self.sequence(b'}')?;
                if items.len() % 2 != 0 {
                    return Err(self.error("map with an odd number of forms"));
                }
                let mut entries = Vec::with_capacity(items.len() / 2);
                let mut iter = items.into_iter();
                while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
                    entries.push((key, value));
                }
                Ok(Edn::Map(entries))
            }
            b'[' => {
                self.pos += 1;
                Ok(Edn::Vector(self.sequence(b']')?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Edn::Vector(self.sequence(b')')?))
            }
            b'#' => self.dispatch(),
            b'"' => self.string(),
            b':' => {
                self.pos += 1;
                Ok(Edn::Keyword(self.token().to_string()))
            }
            b'\\' => {
                self.pos += 1;
                let token = self.token().to_string();
                if token.is_empty() {
                    // A character literal of a delimiter, like `\(` or `\ `.
                    self.pos = (self.pos + 1).min(self.text.len());
                }
                Ok(Edn::Str(token))
            }
            b')' | b']' | b'}' => Err(self.error("unbalanced closing bracket")),
            _ => Ok(atom(self.token())),
        }
    }

    fn dispatch(&mut self) -> Result<Edn, EdnError> {
        self.pos += 1;
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(Edn::Vector(self.sequence(b'}')?))
            }
            Some(b'_') => {
                self.pos += 1;
                self.form()?;
                self.form()
            }
            Some(b'#') => {
                // ##Inf, ##-Inf, ##NaN
                self.pos += 1;
                match self.token() {
                    "Inf" => Ok(Edn::Float(f64::INFINITY)),
                    "-Inf" => Ok(Edn::Float(f64::NEG_INFINITY)),
                    _ => Ok(Edn::Float(f64::NAN)),
                }
            }
            _ => {
                let tag = self.token();
                if tag.is_empty() {
                    return Err(self.error("'#' without a tag"));
                }
                self.form()
            }
        }
    }

    fn sequence(&mut self, close: u8) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None => return Err(self.error("unclosed bracket")),
                Some(byte) if byte == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.form()?),
            }
        }
    }

    fn string(&mut self) -> Result<Edn, EdnError> {
        self.pos += 1;
        let mut bytes = Vec::new();
        loop {
            let byte = self.peek().ok_or_else(|| self.error("unclosed string"))?;
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let escaped = self.peek().ok_or_else(|| self.error("unclosed string"))?;
                    self.pos += 1;
                    bytes.push(match escaped {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                other => bytes.push(other),
            }
        }
        Ok(Edn::Str(String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn token(&mut self) -> &str {
        let start = self.pos;
        while let Some(byte) = self.peek() {
            if matches!(
                byte,
                b' ' | b'\t'
                    | b'\n'
                    | b'\r'
                    | b','
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'"'
                    | b';'
            ) {
                break;
            }
            self.pos += 1;
        }
        std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("")
    }
}

fn atom(token: &str) -> Edn {
    match token {
        "nil" => Edn::Nil,
        "true" => Edn::Bool(true),
        "false" => Edn::Bool(false),
        _ => {
            let digits = token.trim_end_matches(['N', 'M']);
            if let Ok(n) = digits.parse::<i64>() {
                Edn::Int(n)
            } else if let Ok(x) = digits.parse::<f64>() {
                Edn::Float(x)
            } else if let Some((num, den)) = digits.split_once('/') {
                match (num.parse::<f64>(), den.parse::<f64>()) {
                    (Ok(num), Ok(den)) if den != 0.0 => Edn::Float(num / den),
                    _ => Edn::Symbol(token.to_string()),
                }
            } else {
                Edn::Symbol(token.to_string())
            }
        }
    }
}

/// `:valid?` of a results map: true, false or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "true",
            Verdict::Invalid => "false",
            Verdict::Unknown => "unknown",
        })
    }
}

/// The figures a broadcast run is judged on, read from its results map.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    pub valid: Verdict,
    pub lost_count: Option<u64>,
    pub servers_msgs_per_op: Option<f64>,
    /// Stable-latency quantiles (ms) by point: 0, 0.5, 0.95, 0.99, 1.
    pub stable_latencies: BTreeMap<&'static str, f64>,
    /// maelstrom-sim's `:harness :lateness-exceeded`: the harness ran late
    /// and the run's timing figures are not evidence. None for a results
    /// map without it (real Maelstrom's).
    pub lateness_exceeded: Option<bool>,
    /// maelstrom-sim's `:harness :malformed-lines`: stdout lines the nodes
    /// wrote that could not be routed (under Maelstrom's handling each one
    /// silenced its node for the rest of the run). None without it.
    pub unroutable_lines: Option<u64>,
    /// maelstrom-sim's `:harness :steal-percent`: CPU time the hypervisor
    /// gave to other virtual machines during the run. None without it.
    pub steal_percent: Option<f64>,
}

pub const QUANTILE_POINTS: [(&str, f64); 5] = [
    ("0", 0.0),
    ("0.5", 0.5),
    ("0.95", 0.95),
    ("0.99", 0.99),
    ("1", 1.0),
];

impl RunFigures {
    /// Extracts the figures from a parsed results map.
    pub fn from_results(results: &Edn) -> RunFigures {
        let valid = match results.get("valid?") {
            Some(Edn::Bool(true)) => Verdict::Valid,
            Some(Edn::Bool(false)) => Verdict::Invalid,
            _ => Verdict::Unknown,
        };
        let count_at = |path: &[&str]| results.path(path).and_then(Edn::as_f64).map(|n| n as u64);
        let lost_count = count_at(&["workload", "lost-count"]);
        let servers_msgs_per_op = results
            .path(&["net", "servers", "msgs-per-op"])
            .and_then(Edn::as_f64);
        let mut stable_latencies = BTreeMap::new();
        if let Some(map) = results.path(&["workload", "stable-latencies"]) {
            for (name, point) in QUANTILE_POINTS {
                if let Some(value) = map.get_number_key(point).and_then(Edn::as_f64) {
                    stable_latencies.insert(name, value);
                }
            }
        }
        let lateness_exceeded = match results.path(&["harness", "lateness-exceeded"]) {
            Some(Edn::Bool(late)) => Some(*late),
            _ => None,
        };
        let unroutable_lines = count_at(&["harness", "malformed-lines"]);
        let steal_percent = results
            .path(&["harness", "steal-percent"])
            .and_then(Edn::as_f64);
        RunFigures {
            valid,
            lost_count,
            servers_msgs_per_op,
            stable_latencies,
            lateness_exceeded,
            unroutable_lines,
            steal_percent,
        }
    }

    pub fn median(&self) -> Option<f64> {
        self.stable_latencies.get("0.5").copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.stable_latencies.get("1").copied()
    }
}

/// The limits a run is judged against: a challenge's published pass criteria
/// or one of this project's own targets. `None` means "not judged".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_msgs_per_op: Option<f64>,
    pub max_median_ms: Option<f64>,
    pub max_max_ms: Option<f64>,
    /// `<` (the challenges' "below") rather than `<=` (our targets' "at most").
    pub strict: bool,
}

impl Limits {
    pub const VALID_ONLY: Limits = Limits {
        max_msgs_per_op: None,
        max_median_ms: None,
        max_max_ms: None,
        strict: true,
    };

    /// The challenge's own pass criteria (spec section 8). Latency is not
    /// scored under partitions, so a `-partition` run is judged on validity.
    pub fn challenge(name: &str) -> Option<Limits> {
        let limits = |m, med, max| Limits {
            max_msgs_per_op: Some(m),
            max_median_ms: Some(med),
            max_max_ms: Some(max),
            strict: true,
        };
        match name {
            "3a" | "3b" | "3c" => Some(Limits::VALID_ONLY),
            // Late deliveries (`./maelstrom.sh stress`) change nothing in
            // what the challenge asks.
            "3d" | "3d-jitter" | "3d-100n" => Some(limits(30.0, 400.0, 600.0)),
            "3e" | "3e-jitter" => Some(limits(20.0, 1000.0, 2000.0)),
            // The fast profile runs on 3d's settings and must pass both.
            "fast" | "fast-jitter" => Some(limits(20.0, 400.0, 600.0)),
            // Loss, duplication, partitions, kills and pauses: the challenge
            // scores no latency there, only that nothing acknowledged is lost.
            _ if name.ends_with("-partition")
                || name.ends_with("-loss")
                || name.starts_with("kill") =>
            {
                Some(Limits::VALID_ONLY)
            }
            _ => None,
        }
    }

    /// This project's targets for the profile of the same name (issue 4).
    pub fn target(name: &str) -> Option<Limits> {
        let limits = |m, med, max| Limits {
            max_msgs_per_op: Some(m),
            max_median_ms: Some(med),
            max_max_ms: Some(max),
            strict: false,
        };
        match name {
            "3d" => Some(Limits {
                strict: true,
                ..limits(1.2, 400.0, 600.0)
            }),
            "3e" => Some(Limits {
                strict: true,
                ..limits(0.35, 1000.0, 2000.0)
            }),
            "fast" => Some(limits(12.5, 85.0, 105.0)),
            // The robustness targets (issue 10): late deliveries, loss, a
            // cluster four times larger.
            "3d-jitter" => Some(Limits {
                strict: true,
                ..limits(1.2, 400.0, 600.0)
            }),
            "3e-jitter" => Some(Limits {
                strict: true,
                ..limits(0.35, 1000.0, 2000.0)
            }),
            "fast-jitter" => Some(limits(12.5, 90.0, 160.0)),
            "3d-loss" => Some(limits(1.6, 600.0, 3000.0)),
            "fast-loss" => Some(Limits {
                max_median_ms: Some(120.0),
                ..Limits::VALID_ONLY
            }),
            "5n-loss" => Some(Limits {
                max_median_ms: Some(1000.0),
                ..Limits::VALID_ONLY
            }),
            "3d-100n" => Some(Limits {
                strict: true,
                ..limits(1.0, 400.0, 600.0)
            }),
            // Crash-restart with durable acknowledgements (issue 11).
            "kill" => Some(Limits {
                max_median_ms: Some(1000.0),
                ..Limits::VALID_ONLY
            }),
            "kill-partition-pause" => Some(Limits::VALID_ONLY),
            "kill-3d" => Some(Limits {
                max_msgs_per_op: Some(1.3),
                ..Limits::VALID_ONLY
            }),
            _ => None,
        }
    }

    /// Whether the run meets these limits; the first unmet limit otherwise.
    pub fn judge(&self, run: &RunFigures) -> Result<(), String> {
        if run.valid != Verdict::Valid {
            return Err(format!("valid? {}", run.valid));
        }
        if run.lost_count.unwrap_or(0) > 0 {
            return Err("values lost".to_string());
        }
        let within = |value: f64, limit: f64| {
            if self.strict {
                value < limit
            } else {
                value <= limit
            }
        };
        let checks = [
            ("msgs-per-op", run.servers_msgs_per_op, self.max_msgs_per_op),
            ("median", run.median(), self.max_median_ms),
            ("max", run.max(), self.max_max_ms),
        ];
        for (name, value, limit) in checks {
            if let Some(limit) = limit {
                match value {
                    Some(value) if within(value, limit) => {}
                    Some(value) => return Err(format!("{name} {value} over {limit}")),
                    None => return Err(format!("no {name} figure")),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAELSTROM_STYLE: &str = r#"{:perf {:latency-graph {:valid? true}, :valid? true},
 :workload {:worst-stale ({:element 3, :outcome :stable,
   :known #jepsen.history.Op{:index 7, :time 1234, :type :ok, :process 1, :f :add, :value 3},
   :stable-latency 12, :lost-latency nil}),
  :duplicated {}, :valid? true, :lost-count 0, :lost (), :stale #{3},
  :stable-latencies {0 0, 0.5 12, 0.95 40, 0.99 55, 1 61}},
 :net {:all {:msg-count 450, :msgs-per-op 8.181818},
       :servers {:send-count 320, :msgs-per-op 5.818182}, :valid? true}
 ; a comment
 :valid? true}"#;

    #[test]
    fn reads_maelstrom_results_with_tags_sets_and_comments() {
        let results = Edn::parse(MAELSTROM_STYLE).expect("parses");
        let figures = RunFigures::from_results(&results);
        assert_eq!(figures.valid, Verdict::Valid);
        assert_eq!(figures.lost_count, Some(0));
        assert_eq!(figures.servers_msgs_per_op, Some(5.818182));
        assert_eq!(figures.median(), Some(12.0));
        assert_eq!(figures.max(), Some(61.0));
        assert_eq!(figures.stable_latencies.get("0.99"), Some(&55.0));
        assert_eq!(figures.lateness_exceeded, None);
        assert_eq!(figures.unroutable_lines, None);
        assert_eq!(figures.steal_percent, None);
        let late = Edn::parse(
            "{:harness {:valid? true, :lateness-exceeded true, :malformed-lines 2, :steal-percent 9.5}}",
        )
        .unwrap();
        let late = RunFigures::from_results(&late);
        assert_eq!(late.lateness_exceeded, Some(true));
        assert_eq!(late.unroutable_lines, Some(2));
        assert_eq!(late.steal_percent, Some(9.5));
    }

    #[test]
    fn unknown_and_invalid_verdicts() {
        let unknown = Edn::parse("{:valid? :unknown}").expect("parses");
        assert_eq!(RunFigures::from_results(&unknown).valid, Verdict::Unknown);
        let invalid = Edn::parse("{:valid? false :workload {:lost-count 3}}").expect("parses");
        let figures = RunFigures::from_results(&invalid);
        assert_eq!(figures.valid, Verdict::Invalid);
        assert_eq!(figures.lost_count, Some(3));
        assert!(Limits::VALID_ONLY.judge(&figures).is_err());
    }

    #[test]
    fn rejects_broken_text() {
        assert!(Edn::parse("{:a 1").is_err());
        assert!(Edn::parse("{:a}").is_err());
        assert!(Edn::parse("]").is_err());
        assert!(Edn::parse("{:a 1} 2").is_err());
        assert!(Edn::parse("\"open").is_err());
    }

    #[test]
    fn judges_limits_strictly_for_challenges_and_inclusively_for_targets() {
        let run = RunFigures {
            valid: Verdict::Valid,
            lost_count: Some(0),
            servers_msgs_per_op: Some(12.0),
            stable_latencies: [("0.5", 85.0), ("1", 105.0)].into_iter().collect(),
            lateness_exceeded: Some(false),
            unroutable_lines: Some(0),
            steal_percent: None,
        };
        assert!(Limits::target("fast")
            .expect("fast target")
            .judge(&run)
            .is_ok());
        let over_3d = RunFigures {
            servers_msgs_per_op: Some(30.0),
            ..run.clone()
        };
        assert!(Limits::challenge("3d")
            .expect("3d")
            .judge(&over_3d)
            .is_err());
        let slow = RunFigures {
            stable_latencies: [("0.5", 100.0), ("1", 600.0)].into_iter().collect(),
            ..run.clone()
        };
        let err = Limits::challenge("3d")
            .expect("3d")
            .judge(&slow)
            .unwrap_err();
        assert!(err.starts_with("max"), "{err}");
        let missing = RunFigures {
            stable_latencies: BTreeMap::new(),
            ..run
        };
        assert!(Limits::challenge("3e")
            .expect("3e")
            .judge(&missing)
            .is_err());
        assert_eq!(Limits::challenge("3d-partition"), Some(Limits::VALID_ONLY));
    }

    #[test]
    fn numbers_keywords_and_escapes() {
        let value = Edn::parse(r#"[1 -2 3.5 1.0E-5 7N 1/2 :k sym "a\"b\n" nil true ##Inf]"#)
            .expect("parses");
        let Edn::Vector(items) = value else {
            panic!("not a vector")
        };
        assert_eq!(items[0], Edn::Int(1));
        assert_eq!(items[1], Edn::Int(-2));
        assert_eq!(items[2], Edn::Float(3.5));
        assert_eq!(items[3], Edn::Float(1.0e-5));
        assert_eq!(items[4], Edn::Int(7));
        assert_eq!(items[5], Edn::Float(0.5));
        assert_eq!(items[6], Edn::Keyword("k".into()));
        assert_eq!(items[7], Edn::Symbol("sym".into()));
        assert_eq!(items[8], Edn::Str("a\"b\n".into()));
        assert_eq!(items[9], Edn::Nil);
        assert_eq!(items[10], Edn::Bool(true));
        assert_eq!(items[11], Edn::Float(f64::INFINITY));
    }
}
