//! Tuning knobs: flags after the binary name or `BROADCAST_*` environment
//! variables, profile presets they override, and validation with a one-line
//! reason for a bad value. Parsed by hand (the node's crates are actix, serde,
//! log and friends; a flag table is all this needs).

use std::fmt;
use std::str::FromStr;

/// Which overlay the node gossips over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayKind {
    /// Hub = first node id; leaves link only to the hub; aligned rounds.
    Star,
    /// K-ary heap-ordered tree over the node ids; aligned rounds.
    Tree(usize),
    /// The neighbour lists of Maelstrom's `topology` message.
    Offered,
    /// Complete graph: each node sends its own values to everyone at once;
    /// the hub repairs what a leaf's digest shows it lacks.
    Fanout,
}

impl FromStr for OverlayKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "star" => Ok(OverlayKind::Star),
            "offered" => Ok(OverlayKind::Offered),
            "fanout" => Ok(OverlayKind::Fanout),
            _ => match s.strip_prefix("tree:").map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 => Ok(OverlayKind::Tree(k)),
                _ => Err("expected star, tree:K (K >= 1), offered or fanout".into()),
            },
        }
    }
}

impl fmt::Display for OverlayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverlayKind::Star => write!(f, "star"),
            OverlayKind::Tree(k) => write!(f, "tree:{k}"),
            OverlayKind::Offered => write!(f, "offered"),
            OverlayKind::Fanout => write!(f, "fanout"),
        }
    }
}

/// Presets; explicit knobs override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The same as 3d.
    Default,
    /// Star with 360 ms rounds (challenge 3d: median < 400 ms, max < 600 ms).
    ThreeD,
    /// Star with 1650 ms rounds (challenge 3e: fewest messages).
    ThreeE,
    /// Fan-out of own values with hub repair (lowest latency).
    Fast,
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Profile::Default),
            "3d" => Ok(Profile::ThreeD),
            "3e" => Ok(Profile::ThreeE),
            "fast" => Ok(Profile::Fast),
            _ => Err("expected default, 3d, 3e or fast".into()),
        }
    }
}

/// What the overlay planner needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipConfig {
    pub overlay: OverlayKind,
    /// Round length of aligned links.
    pub interval_ms: u64,
    /// How long a node may hold an acknowledgement hoping to piggyback it.
    pub ack_delay_ms: u64,
    pub min_rto_ms: u64,
    pub max_rto_ms: u64,
    /// How long a star hub waits after the leaves' round has arrived.
    pub linger_ms: u64,
    /// One-way network delay assumed until a link has measured it.
    pub latency_hint_ms: u64,
    /// Latency targets: when set, the node picks the overlay and round
    /// length itself (see `overlay::auto_round`).
    pub targets: Option<Targets>,
    /// A star hub relays leaves' items every this many rounds; it still
    /// acknowledges a leaf's items at the next round. 2 under durable
    /// acknowledgements (a value's stable latency then starts only once the
    /// hub holds it, and every other round halves the hub's messages to
    /// leaves with nothing to acknowledge), else 1.
    pub hub_relay_rounds: u64,
}

/// Stable-latency targets for auto-tuning, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub median_ms: u64,
    pub max_ms: u64,
}

/// Everything a node is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub gossip: GossipConfig,
    /// Cadence of the per-neighbour backlog trace; 0 turns it off.
    pub trace_interval_ms: u64,
    /// Longest accepted input line; longer lines are bad input.
    pub max_line_bytes: usize,
    /// Answer `broadcast_ok` only once another node holds the value.
    pub durable_acks: bool,
}

impl Profile {
    fn defaults(self) -> Config {
        let star = |interval_ms, ack_delay_ms, max_rto_ms| GossipConfig {
            overlay: OverlayKind::Star,
            interval_ms,
            ack_delay_ms,
            min_rto_ms: 200,
            max_rto_ms,
            linger_ms: 10,
            latency_hint_ms: 100,
            targets: None,
            hub_relay_rounds: 1,
        };
        let gossip = match self {
            Profile::Default | Profile::ThreeD => star(360, 1500, 4000),
            // A batch that misses the hub's flush is forwarded to every
            // leaf at once: 24 messages, 3.5% of a 3e run's message budget
            // (1% of 3d's). 3e's median (~900 against 1000) affords a wider
            // margin above the latest arrival seen, so that late deliveries
            // (`--delivery-jitter-ms`) rarely outrun it.
            Profile::ThreeE => GossipConfig {
                linger_ms: 30,
                ..star(1650, 3000, 6000)
            },
            Profile::Fast => GossipConfig {
                overlay: OverlayKind::Fanout,
                ack_delay_ms: 3000,
                max_rto_ms: 8000,
                ..star(360, 0, 0)
            },
        };
        Config {
            gossip,
            trace_interval_ms: 1000,
            max_line_bytes: 16 << 20,
            durable_acks: false,
        }
    }
}

/// Why the node does not start: help was asked for (print it, exit 0), or a
/// value is bad (print the one-line reason, exit non-zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStarting {
    Info(String),
    Invalid(String),
}

/// One knob: its flag (without `--`), what its value looks like (empty: a
/// switch, on when given without a value), and help.
struct Knob {
    flag: &'static str,
    value: &'static str,
    help: &'static str,
}

const PROFILE: Knob = Knob {
    flag: "profile",
    value: "default|3d|3e|fast",
    help: "preset for every knob below; explicit knobs override it [default: default = 3d]",
};

const KNOBS: [Knob; 14] = [
    Knob {
        flag: "overlay",
        value: "star|tree:K|offered|fanout",
        help: "which links the node gossips over",
    },
    Knob {
        flag: "interval-ms",
        value: "MS",
        help: "round length of aligned links (star, tree, offered)",
    },
    Knob {
        flag: "ack-delay-ms",
        value: "MS",
        help: "how long an acknowledgement may wait for a batch to ride on",
    },
    Knob {
        flag: "min-rto-ms",
        value: "MS",
        help: "lower bound of the retransmission timeout",
    },
    Knob {
        flag: "max-rto-ms",
        value: "MS",
        help: "upper bound of the retransmission timeout (after backoff)",
    },
    Knob {
        flag: "linger-ms",
        value: "MS",
        help: "star hub: wait after the leaves' round arrives before flushing",
    },
    Knob {
        flag: "latency-hint-ms",
        value: "MS",
        help: "one-way delay assumed until measured",
    },
    Knob {
        flag: "hub-relay-rounds",
        value: "N",
        help: "star hub: relay leaves' items every N rounds (acknowledging a leaf's own items \
               still at the next round) [default: 2 with --durable-acks, else 1]",
    },
    Knob {
        flag: "target-median-ms",
        value: "MS",
        help: "auto-tuning: stable-latency median to meet (needs --target-max-ms)",
    },
    Knob {
        flag: "target-max-ms",
        value: "MS",
        help: "auto-tuning: stable-latency maximum to meet; the node then picks overlay and rounds itself",
    },
    Knob {
        flag: "trace-interval-ms",
        value: "MS",
        help: "cadence of the per-neighbour backlog trace (log target `backlog`); 0 turns it off",
    },
    Knob {
        flag: "max-line-bytes",
        value: "BYTES",
        help: "longest accepted input line",
    },
    Knob {
        flag: "help",
        value: "",
        help: "print this help",
    },
    Knob {
        flag: "durable-acks",
        value: "",
        help: "answer broadcast_ok only once another node holds the value (a SIGKILL then \
               loses no acknowledged value); a switch: --durable-acks, or true/false",
    },
];

impl Knob {
    /// The environment variable that stands in for the flag.
    fn env(&self) -> String {
        format!("BROADCAST_{}", self.flag.to_uppercase().replace('-', "_"))
    }
}

fn help_text() -> String {
    let mut text = String::from(
        "broadcast-node: one node of a Maelstrom broadcast cluster (challenges 3a-3e).\n\
         Speaks Maelstrom's JSON protocol on stdin/stdout, logs to stderr (RUST_LOG, default info).\n\n\
         Usage: broadcast-node [--KNOB VALUE | --KNOB=VALUE]...\n\
         Every knob can also be set by its environment variable; a flag wins over it.\n\n",
    );
    for knob in std::iter::once(&PROFILE).chain(KNOBS.iter()) {
        if knob.flag == "help" {
            text.push_str(&format!("  --help\n      {}\n", knob.help));
        } else if knob.value.is_empty() {
            text.push_str(&format!(
                "  --{}   [env: {}=true|false]\n      {}\n",
                knob.flag,
                knob.env(),
                knob.help
            ));
        } else {
            text.push_str(&format!(
                "  --{} <{}>   [env: {}]\n      {}\n",
                knob.flag,
                knob.value,
                knob.env(),
                knob.help
            ));
        }
    }
    text
}

fn number<T: FromStr>(flag: &str, raw: &str) -> Result<T, String> {
    raw.parse()
        .map_err(|_| format!("--{flag}: '{raw}' is not a non-negative integer"))
}

fn switch(flag: &str, raw: &str) -> Result<bool, String> {
    match raw {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("--{flag}: '{raw}' is not true or false")),
    }
}

impl Config {
    /// Parses the command line (the first item is the program name) with
    /// `BROADCAST_*` environment variables as fallbacks.
    pub fn from_args<I, T>(args: I) -> Result<Config, NotStarting>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        Config::from_args_and_env(args, |name| std::env::var_os(name))
    }

    /// [`Config::from_args`] with the environment given as a lookup.
    pub fn from_args_and_env<I, T>(
        args: I,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Config, NotStarting>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        let mut given: Vec<(&'static str, String)> = Vec::new();
        let mut args = args.into_iter().map(Into::into).skip(1);
        while let Some(arg) = args.next() {
            let arg = arg
                .into_string()
                .map_err(|_| NotStarting::Invalid("an argument is not UTF-8".into()))?;
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(NotStarting::Invalid(format!(
                    "unexpected argument '{arg}' (see --help)"
                )));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag, None),
            };
            if name == "help" {
                return Err(NotStarting::Info(help_text()));
            }
            let Some(knob) = std::iter::once(&PROFILE)
                .chain(KNOBS.iter())
                .find(|k| k.flag == name)
            else {
                return Err(NotStarting::Invalid(format!(
                    "unknown flag '--{name}' (see --help)"
                )));
            };
            let value = match inline {
                Some(value) => value,
                None if knob.value.is_empty() => "true".to_string(),
                None => args
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| NotStarting::Invalid(format!("--{name} needs a value")))?,
            };
            given.retain(|(flag, _)| *flag != knob.flag);
            given.push((knob.flag, value));
        }
        let lookup = |knob: &Knob| -> Result<Option<String>, String> {
            if let Some((_, value)) = given.iter().find(|(flag, _)| *flag == knob.flag) {
                return Ok(Some(value.clone()));
            }
            match env(&knob.env()) {
                None => Ok(None),
                Some(value) => value
                    .into_string()
                    .map(Some)
                    .map_err(|_| format!("{} is not UTF-8", knob.env())),
            }
        };
        resolve(lookup).map_err(NotStarting::Invalid)
    }

    /// The configuration of a profile with no overrides.
    pub fn profile(profile: Profile) -> Config {
        profile.defaults()
    }
}

/// Builds the configuration from each knob's raw value (flag, else
/// environment, else the profile's default) and checks it.
fn resolve(lookup: impl Fn(&Knob) -> Result<Option<String>, String>) -> Result<Config, String> {
    let profile = match lookup(&PROFILE)? {
        Some(raw) => raw
            .parse::<Profile>()
            .map_err(|why| format!("--profile: '{raw}': {why}"))?,
        None => Profile::Default,
    };
    let mut c = profile.defaults();
    let mut median = None;
    let mut max = None;
    let mut explicit_overlay = false;
    let mut explicit_interval = false;
    let mut relay_rounds = None;
    for knob in &KNOBS {
        let Some(raw) = lookup(knob)? else { continue };
        let flag = knob.flag;
        let g = &mut c.gossip;
        match flag {
            "overlay" => {
                g.overlay = raw
                    .parse()
                    .map_err(|why| format!("--overlay: '{raw}': {why}"))?;
                explicit_overlay = true;
            }
            "interval-ms" => {
                g.interval_ms = number(flag, &raw)?;
                explicit_interval = true;
            }
            "ack-delay-ms" => g.ack_delay_ms = number(flag, &raw)?,
            "min-rto-ms" => g.min_rto_ms = number(flag, &raw)?,
            "max-rto-ms" => g.max_rto_ms = number(flag, &raw)?,
            "linger-ms" => g.linger_ms = number(flag, &raw)?,
            "latency-hint-ms" => g.latency_hint_ms = number(flag, &raw)?,
            "hub-relay-rounds" => relay_rounds = Some(number(flag, &raw)?),
            "target-median-ms" => median = Some(number(flag, &raw)?),
            "target-max-ms" => max = Some(number(flag, &raw)?),
            "trace-interval-ms" => c.trace_interval_ms = number(flag, &raw)?,
            "max-line-bytes" => c.max_line_bytes = number(flag, &raw)?,
            "durable-acks" => c.durable_acks = switch(flag, &raw)?,
            _ => {}
        }
    }
    c.gossip.targets = match (median, max) {
        (None, None) => None,
        (Some(median_ms), Some(max_ms)) if median_ms > 0 && median_ms <= max_ms => {
            if explicit_overlay || explicit_interval {
                return Err(
                    "--target-median-ms/--target-max-ms choose the overlay and interval; \
                     drop --overlay and --interval-ms"
                        .into(),
                );
            }
            Some(Targets { median_ms, max_ms })
        }
        (Some(_), Some(_)) => {
            return Err("--target-median-ms must be at least 1 and at most --target-max-ms".into())
        }
        _ => return Err("--target-median-ms and --target-max-ms go together".into()),
    };
    c.gossip.hub_relay_rounds = relay_rounds.unwrap_or(if c.durable_acks { 2 } else { 1 });
    let g = c.gossip;
    if g.hub_relay_rounds == 0 {
        return Err("--hub-relay-rounds must be at least 1".into());
    }
    if g.interval_ms == 0 {
        return Err("--interval-ms must be at least 1".into());
    }
    if g.min_rto_ms == 0 {
        return Err("--min-rto-ms must be at least 1".into());
    }
    if g.max_rto_ms < g.min_rto_ms {
        return Err(format!(
            "--max-rto-ms ({}) must not be below --min-rto-ms ({})",
            g.max_rto_ms, g.min_rto_ms
        ));
    }
    if c.max_line_bytes < 256 {
        return Err("--max-line-bytes must be at least 256".into());
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, NotStarting> {
        parse_with_env(args, &[])
    }

    fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, NotStarting> {
        Config::from_args_and_env(
            std::iter::once("broadcast-node").chain(args.iter().copied()),
            |name| {
                env.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            },
        )
    }

    #[test]
    fn environment_fills_in_and_flags_win() {
        let env = [
            ("BROADCAST_PROFILE", "3e"),
            ("BROADCAST_INTERVAL_MS", "900"),
            ("BROADCAST_LINGER_MS", "3"),
        ];
        let c = parse_with_env(&["--interval-ms", "800"], &env).unwrap();
        assert_eq!(c.gossip.interval_ms, 800, "the flag wins");
        assert_eq!(c.gossip.linger_ms, 3, "the environment fills in");
        assert_eq!(
            c.gossip.ack_delay_ms, 3000,
            "the profile from the environment"
        );
        match parse_with_env(&[], &[("BROADCAST_MIN_RTO_MS", "soon")]) {
            Err(NotStarting::Invalid(reason)) => assert!(reason.contains("min-rto-ms"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn targets_come_as_a_pair_and_exclude_manual_rounds() {
        let c = parse(&["--target-median-ms", "400", "--target-max-ms=600"]).unwrap();
        assert_eq!(
            c.gossip.targets,
            Some(Targets {
                median_ms: 400,
                max_ms: 600
            })
        );
        for args in [
            &["--target-median-ms", "400"][..],
            &["--target-max-ms", "400"],
            &["--target-median-ms", "700", "--target-max-ms", "600"],
            &["--target-median-ms", "0", "--target-max-ms", "600"],
            &[
                "--target-median-ms",
                "400",
                "--target-max-ms",
                "600",
                "--overlay",
                "star",
            ],
            &[
                "--target-median-ms",
                "400",
                "--target-max-ms",
                "600",
                "--interval-ms",
                "5",
            ],
        ] {
            assert!(
                matches!(parse(args), Err(NotStarting::Invalid(_))),
                "{args:?}"
            );
        }
        assert_eq!(parse(&[]).unwrap().gossip.targets, None);
    }

    #[test]
    fn no_arguments_give_the_default_profile() {
        assert_eq!(parse(&[]).unwrap(), Config::profile(Profile::ThreeD));
        assert_eq!(parse(&[]).unwrap().gossip.overlay, OverlayKind::Star);
    }

    #[test]
    fn knobs_override_the_profile() {
        let c = parse(&[
            "--profile",
            "fast",
            "--overlay",
            "tree:4",
            "--interval-ms",
            "90",
        ])
        .unwrap();
        assert_eq!(c.gossip.overlay, OverlayKind::Tree(4));
        assert_eq!(c.gossip.interval_ms, 90);
        assert_eq!(
            c.gossip.ack_delay_ms,
            Config::profile(Profile::Fast).gossip.ack_delay_ms
        );
        let c = parse(&["--profile=3e", "--trace-interval-ms=0"]).unwrap();
        assert_eq!(c.gossip.interval_ms, 1650);
        assert_eq!(c.trace_interval_ms, 0);
    }

    #[test]
    fn bad_values_give_one_line_reasons() {
        for args in [
            &["--overlay", "ring"][..],
            &["--overlay", "tree:0"],
            &["--interval-ms", "-3"],
            &["--interval-ms", "0"],
            &["--profile", "3f"],
            &["--min-rto-ms", "500", "--max-rto-ms", "100"],
            &["--no-such-flag"],
            &["stray"],
            &["--interval-ms"],
        ] {
            match parse(args) {
                Err(NotStarting::Invalid(reason)) => {
                    assert!(
                        !reason.is_empty() && !reason.contains('\n'),
                        "{args:?}: {reason:?}"
                    )
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn durable_acks_is_a_switch_with_an_environment_fallback() {
        assert!(!parse(&[]).unwrap().durable_acks);
        assert!(
            parse(&["--durable-acks", "--profile", "3d"])
                .unwrap()
                .durable_acks
        );
        assert!(!parse(&["--durable-acks=false"]).unwrap().durable_acks);
        assert!(
            parse_with_env(&[], &[("BROADCAST_DURABLE_ACKS", "1")])
                .unwrap()
                .durable_acks
        );
        assert!(matches!(
            parse(&["--durable-acks=maybe"]),
            Err(NotStarting::Invalid(_))
        ));
    }

    #[test]
    fn a_hub_relays_every_other_round_under_durable_acks_unless_told() {
        let relay = |args: &[&str]| parse(args).unwrap().gossip.hub_relay_rounds;
        assert_eq!(relay(&[]), 1);
        assert_eq!(relay(&["--durable-acks"]), 2);
        assert_eq!(relay(&["--durable-acks", "--hub-relay-rounds", "1"]), 1);
        assert_eq!(relay(&["--hub-relay-rounds=3", "--profile", "3e"]), 3);
        assert!(matches!(
            parse(&["--hub-relay-rounds", "0"]),
            Err(NotStarting::Invalid(_))
        ));
    }

    #[test]
    fn help_is_information_not_an_error() {
        match parse(&["--help"]) {
            Err(NotStarting::Info(text)) => {
                assert!(text.contains("--overlay") && text.contains("BROADCAST_INTERVAL_MS"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overlay_names_round_trip() {
        for s in ["star", "tree:3", "offered", "fanout"] {
            assert_eq!(s.parse::<OverlayKind>().unwrap().to_string(), s);
        }
    }
}
