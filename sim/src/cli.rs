//! Command line (spec 7.1): `maelstrom-sim test -w broadcast --bin PATH ...`
//! with Maelstrom's options and defaults, plus marked extensions; parsed and
//! validated into a [`TestConfig`]. Any bad argument is a one-line reason.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::checker::AvailabilityReq;
use super::faults::FaultKind;
use super::network::{Latency, LatencyDist};
use super::process::BadOutput;
use super::serve::{ServeArgs, ServeConfig};
use super::topology::TOPOLOGY_NAMES;
use super::workload::ThreadPick;

#[derive(Parser, Debug)]
#[command(
    name = "maelstrom-sim",
    version,
    about = "A Maelstrom-compatible harness for the broadcast workload",
    long_about = "A Maelstrom-compatible harness for the broadcast workload: runs node \
                  binaries under a simulated network and checks them as Maelstrom does. \
                  Options marked [extension] do not exist in Maelstrom."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one test.
    Test(TestArgs),
    /// Show the store's runs, plots and files in a web browser.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Workload to run; only `broadcast` is supported.
    #[arg(short = 'w', long, default_value = "lin-kv")]
    pub workload: String,
    /// The node binary to run.
    #[arg(long, value_name = "PATH")]
    pub bin: PathBuf,
    /// Number of nodes, named n0..n{N-1} (default: the node list n1..n5).
    #[arg(long, value_name = "N")]
    pub node_count: Option<usize>,
    /// A node name (repeatable); used only without --node-count.
    #[arg(short = 'n', long = "node", value_name = "ID")]
    pub node: Vec<String>,
    /// Comma-separated node names; used only without --node-count.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Seconds of main phase.
    #[arg(long, default_value_t = 60, value_name = "S")]
    pub time_limit: u64,
    /// Total client operations per second.
    #[arg(long, default_value_t = 5.0, value_name = "R")]
    pub rate: f64,
    /// Client workers: an integer, or an integer followed by `n` (x node count).
    #[arg(long, default_value = "1n", value_name = "C")]
    pub concurrency: String,
    /// Mean inter-node message latency in ms.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency: u64,
    /// Latency distribution.
    #[arg(long, value_enum, default_value_t = LatencyDist::Constant)]
    pub latency_dist: LatencyDist,
    /// Topology sent to the nodes: grid, line, total, tree, tree2, tree3 or tree4.
    #[arg(long, default_value = "grid")]
    pub topology: String,
    /// Faults to inject (comma-separated): `partition`; [extension] `kill`
    /// (SIGKILL a node, restart it) and `pause` (SIGSTOP, SIGCONT), alone or
    /// combined on one schedule.
    #[arg(long, value_delimiter = ',', value_name = "FAULTS")]
    pub nemesis: Vec<String>,
    /// Mean seconds between nemesis operations.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub nemesis_interval: f64,
    /// Required availability: `total`, or a fraction in [0, 1].
    #[arg(long, value_name = "A")]
    pub availability: Option<String>,
    /// Echo node stderr into the log and console.
    #[arg(long)]
    pub log_stderr: bool,
    /// [extension] Seed for workload, network, nemesis and final-read
    /// randomness.
    #[arg(long, value_name = "K")]
    pub seed: Option<u64>,
    /// [extension] Probability that a message is lost at send (client
    /// messages too, unless --p-loss-clients exempt).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub p_loss: f64,
    /// [extension] How a free worker is picked for the next operation:
    /// round-robin (Jepsen 0.3.x) or random (older Jepsen).
    #[arg(long, value_enum, default_value_t = ThreadPick::RoundRobin)]
    pub thread_pick: ThreadPick,
    /// [extension] A node stdout line that is not a valid message:
    /// `maelstrom` (default) ignores all later output of that node, as
    /// Maelstrom does; `lenient` drops only that line (with a warning; the
    /// results and summary say so).
    #[arg(long, value_enum, default_value_t = BadOutput::Maelstrom)]
    pub bad_output: BadOutput,
    /// [extension] Flag any element that one read returns more than once
    /// (Jepsen's duplicate check never fires; spec 3.5).
    #[arg(long)]
    pub strict_duplicates: bool,
    /// [extension] Directory holding the store.
    #[arg(long, default_value = "store", value_name = "DIR")]
    pub store: PathBuf,
    /// [extension] Whether --p-loss also loses client requests and replies
    /// (`included`, the default, as Maelstrom's network would) or only
    /// inter-node messages (`exempt`, what a stress run of a node wants).
    #[arg(long, value_enum, default_value_t = LossClients::Included)]
    pub p_loss_clients: LossClients,
    /// [extension] Probability that an inter-node message is delivered
    /// twice (a second copy with its own latency draw).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub p_dup: f64,
    /// [extension] Mean (ms) of the exponential lateness of every delivery
    /// to a node past its deadline, on its receiver loop (head-of-line kept,
    /// draws do not add up along a burst): late deliveries as from a loaded
    /// JVM.
    #[arg(long, default_value_t = 0.0, value_name = "J")]
    pub delivery_jitter_ms: f64,
    /// Arguments for the node binary (after `--`).
    #[arg(last = true, value_name = "NODE ARGS")]
    pub node_args: Vec<String>,
}

/// `--p-loss-clients`: whether the loss coin is flipped for client messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossClients {
    Included,
    Exempt,
}

/// A validated test configuration.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub bin: PathBuf,
    pub node_args: Vec<String>,
    pub nodes: Vec<String>,
    pub time_limit: Duration,
    pub rate: f64,
    pub concurrency: usize,
    pub latency: Latency,
    pub topology: String,
    /// The faults of `--nemesis`; empty: no nemesis.
    pub faults: Vec<FaultKind>,
    pub nemesis_interval: Duration,
    pub availability: Option<AvailabilityReq>,
    pub log_stderr: bool,
    pub seed: u64,
    pub p_loss: f64,
    pub thread_pick: ThreadPick,
    pub bad_output: BadOutput,
    pub strict_duplicates: bool,
    pub store: PathBuf,
    pub p_loss_clients: LossClients,
    pub p_dup: f64,
    pub delivery_jitter_ms: f64,
}

/// `--concurrency`: `5` or `2n` (times the node count).
pub fn parse_concurrency(text: &str, node_count: usize) -> Result<usize, String> {
    let (digits, per_node) = match text.strip_suffix('n') {
        Some(d) => (d, true),
        None => (text, false),
    };
    let k: usize = digits.parse().map_err(|_| {
        format!("--concurrency {text:?}: expected an integer, optionally followed by n")
    })?;
    let c = if per_node { k * node_count } else { k };
    if c == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    Ok(c)
}

/// `--availability`: `total` or a number in [0, 1].
pub fn parse_availability(text: &str) -> Result<AvailabilityReq, String> {
    if text == "total" {
        return Ok(AvailabilityReq::Total);
    }
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(AvailabilityReq::AtLeast(x)),
        _ => Err(format!(
            "--availability {text:?}: expected `total` or a number in [0, 1]"
        )),
    }
}

impl TestArgs {
    /// Checks every option; the error is a one-line reason.
    pub fn validate(self) -> Result<TestConfig, String> {
        if self.workload != "broadcast" {
            return Err(format!(
                "unsupported workload {:?}: maelstrom-sim only runs -w broadcast",
                self.workload
            ));
        }
        let bin = std::fs::canonicalize(&self.bin)
            .map_err(|e| format!("--bin {}: {e}", self.bin.display()))?;
        if !bin.is_file() {
            return Err(format!("--bin {}: not a file", bin.display()));
        }
        let nodes: Vec<String> = match self.node_count {
            Some(0) => return Err("--node-count must be at least 1".into()),
            Some(n) => (0..n).map(|i| format!("n{i}")).collect(),
            None if !self.node.is_empty() || !self.nodes.is_empty() => {
                self.node.into_iter().chain(self.nodes).collect()
            }
            None => (1..=5).map(|i| format!("n{i}")).collect(),
        };
        let mut seen = std::collections::BTreeSet::new();
        for id in &nodes {
            if id.is_empty() || id.starts_with('c') || !seen.insert(id) {
                return Err(format!(
                    "node id {id:?}: node ids must be unique, non-empty and not start with `c` (reserved for clients)"
                ));
            }
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err(format!("--rate {}: expected a number >= 0", self.rate));
        }
        let concurrency = parse_concurrency(&self.concurrency, nodes.len())?;
        let latency = Latency::new(self.latency, self.latency_dist)?;
        if !TOPOLOGY_NAMES.contains(&self.topology.as_str()) {
            return Err(format!(
                "--topology {:?}: expected one of {}",
                self.topology,
                TOPOLOGY_NAMES.join(", ")
            ));
        }
        let mut faults = Vec::new();
        for name in &self.nemesis {
            match FaultKind::parse(name) {
                Some(kind) if !faults.contains(&kind) => faults.push(kind),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "--nemesis {name:?}: expected partition, kill or pause (comma-separated)"
                    ))
                }
            }
        }
        if !(self.nemesis_interval.is_finite() && self.nemesis_interval > 0.0) {
            return Err(format!(
                "--nemesis-interval {}: expected a positive number",
                self.nemesis_interval
            ));
        }
        let availability = self
            .availability
            .as_deref()
            .map(parse_availability)
            .transpose()?;
        if !(0.0..=1.0).contains(&self.p_loss) {
            return Err(format!(
                "--p-loss {}: expected a probability in [0, 1]",
                self.p_loss
            ));
        }
        if !(0.0..=1.0).contains(&self.p_dup) {
            return Err(format!(
                "--p-dup {}: expected a probability in [0, 1]",
                self.p_dup
            ));
        }
        if !(self.delivery_jitter_ms.is_finite() && self.delivery_jitter_ms >= 0.0) {
            return Err(format!(
                "--delivery-jitter-ms {}: expected a number >= 0",
                self.delivery_jitter_ms
            ));
        }
        Ok(TestConfig {
            bin,
            node_args: self.node_args,
            nodes,
            time_limit: Duration::from_secs(self.time_limit),
            rate: self.rate,
            concurrency,
            latency,
            topology: self.topology,
            faults,
            nemesis_interval: Duration::from_secs_f64(self.nemesis_interval),
            availability,
            log_stderr: self.log_stderr,
            seed: self.seed.unwrap_or_else(rand::random),
            p_loss: self.p_loss,
            thread_pick: self.thread_pick,
            bad_output: self.bad_output,
            strict_duplicates: self.strict_duplicates,
            store: self.store,
            p_loss_clients: self.p_loss_clients,
            p_dup: self.p_dup,
            delivery_jitter_ms: self.delivery_jitter_ms,
        })
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<TestConfig>),
    /// `serve`: the web view.
    Serve(ServeConfig),
    /// `--help` or `--version`: print this text and exit 0.
    Print(String),
    /// A bad argument: print this one-line reason and exit 254.
    Bad(String),
}

/// Parses and validates a full argv (program name first).
pub fn parse<I, T>(argv: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Test(args),
        }) => match args.validate() {
            Ok(config) => Parsed::Run(Box::new(config)),
            Err(reason) => Parsed::Bad(reason),
        },
        Ok(Cli {
            command: Command::Serve(args),
        }) => match args.validate() {
            Ok(config) => Parsed::Serve(config),
            Err(reason) => Parsed::Bad(reason),
        },
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                Parsed::Print(e.render().to_string())
            }
            _ => {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("bad arguments");
                Parsed::Bad(first.trim_start_matches("error: ").to_string())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin() -> String {
        std::env::current_exe().unwrap().display().to_string()
    }

    fn run(extra: &[&str]) -> Parsed {
        let b = bin();
        let mut argv = vec!["maelstrom-sim", "test", "-w", "broadcast", "--bin", &b];
        argv.extend_from_slice(extra);
        parse(argv)
    }

    fn config(extra: &[&str]) -> TestConfig {
        match run(extra) {
            Parsed::Run(c) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn bad(extra: &[&str]) -> String {
        match run(extra) {
            Parsed::Bad(reason) => reason,
            other => panic!("expected a bad-argument error, got {other:?}"),
        }
    }

    #[test]
    fn maelstrom_defaults() {
        let c = config(&[]);
        assert_eq!(c.nodes, ["n1", "n2", "n3", "n4", "n5"]);
        assert_eq!(c.time_limit, Duration::from_secs(60));
        assert_eq!(c.rate, 5.0);
        assert_eq!(c.concurrency, 5);
        assert_eq!(c.latency, Latency::new(0, LatencyDist::Constant).unwrap());
        assert_eq!(c.topology, "grid");
        assert!(c.faults.is_empty());
        assert_eq!(c.nemesis_interval, Duration::from_secs(10));
        assert!(c.availability.is_none());
        assert_eq!(c.thread_pick, ThreadPick::RoundRobin);
        // Never kinder than Maelstrom by default (spec 11.1).
        assert_eq!(c.bad_output, BadOutput::Maelstrom);
        assert_eq!(c.p_loss, 0.0);
        assert_eq!(c.p_loss_clients, LossClients::Included);
        assert_eq!(c.p_dup, 0.0);
        assert_eq!(c.delivery_jitter_ms, 0.0);
        assert!(!c.strict_duplicates);
    }

    #[test]
    fn node_count_names_and_concurrency_expansion() {
        let c = config(&[
            "--node-count",
            "3",
            "--concurrency",
            "2n",
            "--nemesis",
            "partition",
        ]);
        assert_eq!(c.nodes, ["n0", "n1", "n2"]);
        assert_eq!(c.concurrency, 6);
        assert_eq!(c.faults, [FaultKind::Partition]);
        let d = config(&["--nodes", "a,b", "-n", "x", "--concurrency", "4"]);
        assert_eq!(d.nodes, ["x", "a", "b"]);
        assert_eq!(d.concurrency, 4);
    }

    #[test]
    fn stress_extensions() {
        let c = config(&[
            "--nemesis",
            "pause,partition",
            "--nemesis",
            "kill,pause",
            "--nemesis-interval",
            "0.5",
            "--p-dup",
            "0.1",
            "--p-loss",
            "0.2",
            "--p-loss-clients",
            "exempt",
            "--delivery-jitter-ms",
            "2.5",
        ]);
        assert_eq!(
            c.faults,
            [FaultKind::Pause, FaultKind::Partition, FaultKind::Kill]
        );
        assert_eq!(c.nemesis_interval, Duration::from_millis(500));
        assert_eq!((c.p_dup, c.p_loss), (0.1, 0.2));
        assert_eq!(c.p_loss_clients, LossClients::Exempt);
        assert_eq!(c.delivery_jitter_ms, 2.5);
    }

    #[test]
    fn node_args_after_double_dash() {
        let c = config(&["--seed", "7", "--", "--echo", "x"]);
        assert_eq!(c.node_args, ["--echo", "x"]);
        assert_eq!(c.seed, 7);
    }

    #[test]
    fn bad_arguments_give_one_line_reasons() {
        let b = bin();
        let Parsed::Bad(r) = parse(["maelstrom-sim", "test", "-w", "lin-kv", "--bin", &b]) else {
            panic!()
        };
        assert!(r.contains("only runs -w broadcast"), "{r}");
        assert!(bad(&["--latency-dist", "uniform"]).contains("--latency > 0"));
        assert!(bad(&[
            "--latency",
            "5",
            "--latency-dist",
            "exponential",
            "--rate=-1"
        ])
        .contains("--rate"));
        assert!(bad(&["--topology", "ring"]).contains("expected one of"));
        assert!(bad(&["--nemesis", "clock"]).contains("partition, kill or pause"));
        assert!(bad(&["--p-dup", "1.5"]).contains("p-dup"));
        assert!(bad(&["--delivery-jitter-ms=-1"]).contains("jitter"));
        assert!(bad(&["--p-loss-clients", "some"]).contains("some"));
        assert!(bad(&["--nemesis-interval", "0"]).contains("positive"));
        assert!(bad(&["--availability", "1.5"]).contains("availability"));
        assert!(bad(&["--concurrency", "xn"]).contains("concurrency"));
        assert!(bad(&["--p-loss", "2"]).contains("p-loss"));
        assert!(bad(&["--node-count", "0"]).contains("node-count"));
        assert!(bad(&["--nodes", "n1,c2"]).contains("reserved"));
        assert!(bad(&["--frobnicate"]).contains("--frobnicate"));
        assert!(bad(&["--thread-pick", "fifo"]).contains("fifo"));
        for reason in [bad(&["--frobnicate"]), bad(&["--time-limit", "x"])] {
            assert!(!reason.contains('\n'), "{reason:?}");
        }
        let Parsed::Bad(r) = parse([
            "maelstrom-sim",
            "test",
            "-w",
            "broadcast",
            "--bin",
            "/no/such",
        ]) else {
            panic!()
        };
        assert!(r.contains("/no/such"));
    }

    #[test]
    fn help_marks_extensions() {
        let Parsed::Print(help) = parse(["maelstrom-sim", "test", "--help"]) else {
            panic!()
        };
        for ext in [
            "--nemesis ",
            "--seed",
            "--p-loss ",
            "--thread-pick",
            "--bad-output",
            "--strict-duplicates",
            "--store",
            "--p-loss-clients",
            "--p-dup",
            "--delivery-jitter-ms",
        ] {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(ext))
                .unwrap_or_else(|| panic!("{ext} not in --help"));
            let pos = help.find(line).unwrap();
            assert!(
                help[pos..]
                    .lines()
                    .take(3)
                    .any(|l| l.contains("[extension]")),
                "{ext}"
            );
        }
        assert!(help.contains("`included`, the default"), "{help}");
    }

    #[test]
    fn serve_takes_maelstroms_defaults_and_a_store() {
        let Parsed::Serve(c) = parse(["maelstrom-sim", "serve"]) else {
            panic!()
        };
        assert_eq!(c.addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.store, std::path::Path::new("store"));
        let Parsed::Serve(c) = parse([
            "maelstrom-sim",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "9",
            "--store",
            "/tmp/s",
        ]) else {
            panic!()
        };
        assert_eq!(c.addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.store, std::path::Path::new("/tmp/s"));
        let Parsed::Bad(r) = parse(["maelstrom-sim", "serve", "--port", "70000"]) else {
            panic!()
        };
        assert!(r.contains("70000"), "{r}");
    }

    #[test]
    fn availability_values() {
        assert_eq!(parse_availability("total"), Ok(AvailabilityReq::Total));
        assert_eq!(parse_availability("0.5"), Ok(AvailabilityReq::AtLeast(0.5)));
        assert!(parse_availability("-0.1").is_err());
    }
}
