//! Tuning knobs: flags after the binary name or `BROADCAST_*` environment
//! variables, profile presets they override, and validation with a one-line
//! reason for a bad value.

use clap::{Parser, ValueEnum};
use std::ffi::OsString;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// The same as 3d.
    Default,
    /// Star with ~350 ms rounds (challenge 3d: median < 400 ms, max < 600 ms).
    #[value(name = "3d")]
    ThreeD,
    /// Star with ~1500 ms rounds (challenge 3e: fewest messages).
    #[value(name = "3e")]
    ThreeE,
    /// Fan-out of own values with hub repair (lowest latency).
    Fast,
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
}

/// Everything a node is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub gossip: GossipConfig,
    /// Cadence of the per-neighbour backlog trace; 0 turns it off.
    pub trace_interval_ms: u64,
    /// Longest accepted input line; longer lines are bad input.
    pub max_line_bytes: usize,
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
        };
        let gossip = match self {
            Profile::Default | Profile::ThreeD => star(350, 700, 3000),
            Profile::ThreeE => star(1500, 1500, 6000),
            Profile::Fast => GossipConfig {
                overlay: OverlayKind::Fanout,
                ack_delay_ms: 3000,
                max_rto_ms: 8000,
                ..star(350, 0, 0)
            },
        };
        Config {
            gossip,
            trace_interval_ms: 1000,
            max_line_bytes: 16 << 20,
        }
    }
}

/// broadcast-node: one node of a Maelstrom broadcast cluster (challenges
/// 3a-3e). Speaks Maelstrom's JSON protocol on stdin/stdout and logs to
/// stderr (RUST_LOG, default info).
#[derive(Debug, Parser)]
#[command(name = "broadcast-node", version, about, long_about = None)]
struct Cli {
    /// Preset for every knob below; explicit knobs override it.
    #[arg(long, env = "BROADCAST_PROFILE", value_enum, default_value = "default")]
    profile: Profile,
    /// Overlay: star | tree:K | offered | fanout.
    #[arg(long, env = "BROADCAST_OVERLAY", value_name = "OVERLAY")]
    overlay: Option<OverlayKind>,
    /// Round length of aligned links (star, tree, offered), ms.
    #[arg(long, env = "BROADCAST_INTERVAL_MS", value_name = "MS")]
    interval_ms: Option<u64>,
    /// How long an acknowledgement may wait for a batch to ride on, ms.
    #[arg(long, env = "BROADCAST_ACK_DELAY_MS", value_name = "MS")]
    ack_delay_ms: Option<u64>,
    /// Lower bound of the retransmission timeout, ms.
    #[arg(long, env = "BROADCAST_MIN_RTO_MS", value_name = "MS")]
    min_rto_ms: Option<u64>,
    /// Upper bound of the retransmission timeout (after backoff), ms.
    #[arg(long, env = "BROADCAST_MAX_RTO_MS", value_name = "MS")]
    max_rto_ms: Option<u64>,
    /// Star hub: wait after the leaves' round arrives before flushing, ms.
    #[arg(long, env = "BROADCAST_LINGER_MS", value_name = "MS")]
    linger_ms: Option<u64>,
    /// One-way delay assumed until measured, ms.
    #[arg(long, env = "BROADCAST_LATENCY_HINT_MS", value_name = "MS")]
    latency_hint_ms: Option<u64>,
    /// Cadence of the per-neighbour backlog trace (log target `backlog`),
    /// ms; 0 turns it off.
    #[arg(long, env = "BROADCAST_TRACE_INTERVAL_MS", value_name = "MS")]
    trace_interval_ms: Option<u64>,
    /// Longest accepted input line, bytes.
    #[arg(long, env = "BROADCAST_MAX_LINE_BYTES", value_name = "BYTES")]
    max_line_bytes: Option<usize>,
}

/// Why the node does not start: help or version was asked for (print it,
/// exit 0), or a value is bad (print the one-line reason, exit non-zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStarting {
    Info(String),
    Invalid(String),
}

impl Config {
    /// Parses the command line (the first item is the program name) with
    /// `BROADCAST_*` environment variables as fallbacks.
    pub fn from_args<I, T>(args: I) -> Result<Config, NotStarting>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                NotStarting::Info(e.render().to_string())
            }
            _ => {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                NotStarting::Invalid(first.trim_start_matches("error: ").to_string())
            }
        })?;
        cli.resolve().map_err(NotStarting::Invalid)
    }

    /// The configuration of a profile with no overrides.
    pub fn profile(profile: Profile) -> Config {
        profile.defaults()
    }
}

impl Cli {
    fn resolve(self) -> Result<Config, String> {
        let mut c = self.profile.defaults();
        let g = &mut c.gossip;
        g.overlay = self.overlay.unwrap_or(g.overlay);
        g.interval_ms = self.interval_ms.unwrap_or(g.interval_ms);
        g.ack_delay_ms = self.ack_delay_ms.unwrap_or(g.ack_delay_ms);
        g.min_rto_ms = self.min_rto_ms.unwrap_or(g.min_rto_ms);
        g.max_rto_ms = self.max_rto_ms.unwrap_or(g.max_rto_ms);
        g.linger_ms = self.linger_ms.unwrap_or(g.linger_ms);
        g.latency_hint_ms = self.latency_hint_ms.unwrap_or(g.latency_hint_ms);
        c.trace_interval_ms = self.trace_interval_ms.unwrap_or(c.trace_interval_ms);
        c.max_line_bytes = self.max_line_bytes.unwrap_or(c.max_line_bytes);
        let g = c.gossip;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, NotStarting> {
        Config::from_args(std::iter::once("broadcast-node").chain(args.iter().copied()))
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
        assert_eq!(c.gossip.interval_ms, 1500);
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
