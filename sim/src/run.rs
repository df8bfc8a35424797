//! One test run, start to finish (spec 2.6): output directory, network,
//! node setup (`init`, then `topology`), the main phase with the nemesis
//! (faults.rs), drain, heal, recovery wait, final reads, teardown with crash
//! detection, analysis, output files, the stdout summary and the exit code.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Map, Value};

use super::checker::Validity;
use super::cli::{LossClients, TestConfig};
use super::edn::Edn;
use super::faults::{self, Nemesis, RestartSetup};
use super::history::{client_invocation_count, to_edn_lines, to_txt};
use super::lateness::{self, StdoutProbe};
use super::network::{NetConfig, Network};
use super::output::{create_run_dir, LocalTime, Logger};
use super::plots;
use super::process::{BadLineCounter, BadOutput, NodeProcess, NodeSpec};
use super::progress::Progress;
use super::results::{analyze, AnalysisInput, HarnessReport, Results};
use super::topology;
use super::visual;
use super::workload::{
    final_reads, main_phase, schema_problem, Client, ClientIds, Recorder, Schedule, Worker,
    WorkerContext, WorkerPicker,
};

/// Exit codes (spec 3.7).
pub const EXIT_VALID: i32 = 0;
pub const EXIT_INVALID: i32 = 1;
pub const EXIT_UNKNOWN: i32 = 2;
pub const EXIT_BAD_ARGS: i32 = 254;
pub const EXIT_ABORTED: i32 = 255;

const INIT_TIMEOUT: Duration = Duration::from_secs(10);
const TOPOLOGY_TIMEOUT: Duration = Duration::from_secs(5);
const RECOVERY: Duration = Duration::from_secs(10);

/// Seed of the k-th independent random stream (0 workload, 1 network,
/// 2 nemesis, 3 final-read order) derived from the run's seed.
fn stream_seed(seed: u64, k: u64) -> u64 {
    seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn stream(seed: u64, k: u64) -> StdRng {
    StdRng::seed_from_u64(stream_seed(seed, k))
}

/// The random stream that orders a run's final reads
/// ([`super::workload::final_read_order`]), so a test can predict it.
pub fn final_read_rng(seed: u64) -> StdRng {
    stream(seed, 3)
}

/// Runs the test described by `config`; returns the process exit code.
pub async fn run(config: &TestConfig) -> i32 {
    let started = Instant::now();
    let ticks_at_start = machine_ticks();
    let run_dir = match create_run_dir(&config.store, &LocalTime::now()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("maelstrom-sim: cannot create the store directory: {e}");
            return EXIT_ABORTED;
        }
    };
    let logger = match Logger::to_dir(&run_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("maelstrom-sim: cannot create jepsen.log: {e}");
            return EXIT_ABORTED;
        }
    };
    logger.info(&format!("Test configuration: {config:?}"));
    logger.console(&format!(
        "Running broadcast on {} nodes, seed {}; output in {}",
        config.nodes.len(),
        config.seed,
        run_dir.display()
    ));
    let net = match Network::start(NetConfig {
        latency: config.latency,
        p_loss: config.p_loss,
        loss_exempts_clients: config.p_loss_clients == LossClients::Exempt,
        p_dup: config.p_dup,
        jitter_ms: config.delivery_jitter_ms,
        seed: stream_seed(config.seed, 1),
    }) {
        Ok(net) => net,
        Err(e) => {
            eprintln!("maelstrom-sim: cannot start the network thread: {e}");
            return EXIT_ABORTED;
        }
    };
    let probe = match StdoutProbe::start(net.lateness()) {
        Ok(probe) => probe,
        Err(e) => {
            eprintln!("maelstrom-sim: cannot start the stdout lateness probe: {e}");
            return EXIT_ABORTED;
        }
    };
    let bad_lines = Arc::new(BadLineCounter::default());
    let mut nodes = Vec::new();
    let ids = Arc::new(ClientIds::default());
    let tested = test(
        config, &net, &ids, &logger, &run_dir, &bad_lines, &mut nodes,
    )
    .await;

    // Teardown: a node that is already gone crashed (whatever its status).
    let crash = nodes
        .iter_mut()
        .find_map(|n| n.exited().map(|status| n.crash_report(status)));
    for node in &mut nodes {
        node.kill().await;
    }
    drop(probe);
    let mut net_report = net.close_journal();
    let lateness_samples = net.lateness().take();
    net.shutdown();
    let cpu = cpu_seconds();
    let steal_percent = ticks_at_start
        .zip(machine_ticks())
        .and_then(|(start, end)| end.steal_percent_since(start));

    let (history, exceptions, t0) = match tested {
        Ok(recorder) => {
            let (history, exceptions) = recorder.finish();
            (history, exceptions, recorder.t0())
        }
        Err(reason) => return abort(&logger, &reason),
    };
    write_file(
        &logger,
        &run_dir.join("history.edn"),
        &to_edn_lines(&history),
    );
    write_file(&logger, &run_dir.join("history.txt"), &to_txt(&history));
    write_file(
        &logger,
        &run_dir.join("timeline.html"),
        &visual::timeline_html(&history),
    );
    let diagram = std::mem::take(&mut net_report.messages).into_diagram(t0);
    write_file(
        &logger,
        &run_dir.join("messages.svg"),
        &visual::messages_svg(&diagram),
    );
    let plots = plots::write_run_plots(&run_dir, &history, t0, &logger);
    if let Some(report) = crash {
        return abort(&logger, &report);
    }

    let fault_events = faults::fault_events(&history);
    let mut sections = vec![(
        "faults".to_string(),
        faults::faults_edn(&fault_events, &net_report.faults),
    )];
    if config.bad_output == BadOutput::Lenient && bad_lines.get() > 0 {
        let dropped = Edn::Int(i128::from(bad_lines.get()));
        sections.push(("lenient-dropped-lines".into(), dropped));
    }
    let mut harness = HarnessReport {
        lateness_ms: lateness_samples.summaries(),
        cpu_seconds: Some(cpu.harness),
        steal_percent,
        wall_seconds: started.elapsed().as_secs_f64(),
        malformed_lines: bad_lines.get(),
        seed: Some(config.seed),
        notes: vec![
            ("node-cpu-seconds".into(), format!("{:.2}", cpu.nodes)),
            (
                "timing-thread".into(),
                if net_report.realtime {
                    "realtime"
                } else {
                    "normal"
                }
                .into(),
            ),
            ("thread-pick".into(), value_name(config.thread_pick)),
            ("bad-output".into(), value_name(config.bad_output)),
            ("p-loss".into(), config.p_loss.to_string()),
            (
                "strict-duplicates".into(),
                config.strict_duplicates.to_string(),
            ),
            ("p-loss-clients".into(), value_name(config.p_loss_clients)),
            ("p-dup".into(), config.p_dup.to_string()),
            (
                "delivery-jitter-ms".into(),
                config.delivery_jitter_ms.to_string(),
            ),
            (
                "nemesis".into(),
                config
                    .faults
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ],
        sections,
    };
    harness.notes.extend(plots.notes());
    let results = analyze(&AnalysisInput {
        history: &history,
        net: net_report.stats.summary(client_invocation_count(&history)),
        availability: config.availability,
        exceptions: &exceptions,
        harness: Some(harness),
    })
    .with_perf(plots.perf);
    let results = if config.strict_duplicates {
        results.with_strict_duplicates(&history)
    } else {
        results
    };
    write_file(&logger, &run_dir.join("results.edn"), &results.to_edn());
    let json = serde_json::to_string_pretty(&results.to_json()).unwrap_or_default();
    write_file(&logger, &run_dir.join("results.json"), &json);
    logger.info(&format!("Results:\n{}", results.to_edn()));
    logger.flush();
    let fault_lines = faults::summary_lines(&fault_events, &net_report.faults);
    print!("{}", summary(config, &results, &run_dir, &fault_lines));
    match results.valid() {
        Validity::True => EXIT_VALID,
        Validity::False => EXIT_INVALID,
        Validity::Unknown => EXIT_UNKNOWN,
    }
}

fn abort(logger: &Logger, reason: &str) -> i32 {
    logger.warn(&format!("Test aborted: {reason}"));
    logger.flush();
    eprintln!("maelstrom-sim: test aborted (no results.edn): {reason}");
    EXIT_ABORTED
}

fn write_file(logger: &Logger, path: &Path, contents: &str) {
    if let Err(e) = std::fs::write(path, contents) {
        logger.warn(&format!("cannot write {}: {e}", path.display()));
    }
}

/// The setup and the whole operation phase. Nodes are pushed into `nodes`
/// as they spawn, so the caller can tear them down on any outcome.
async fn test(
    config: &TestConfig,
    net: &Network,
    ids: &Arc<ClientIds>,
    logger: &Logger,
    run_dir: &Path,
    bad_lines: &Arc<BadLineCounter>,
    nodes: &mut Vec<NodeProcess>,
) -> Result<Recorder, String> {
    for id in &config.nodes {
        let spec = NodeSpec {
            id,
            bin: &config.bin,
            args: &config.node_args,
            log_path: run_dir.join("node-logs").join(format!("{id}.log")),
            log_stderr: config.log_stderr,
            bad_output: config.bad_output,
        };
        let node = NodeProcess::spawn(spec, net, logger, bad_lines)
            .map_err(|e| format!("cannot start node {id} ({}): {e}", config.bin.display()))?;
        nodes.push(node);
    }
    let mut init_clients: Vec<Client> = config
        .nodes
        .iter()
        .map(|_| Client::open(net, ids))
        .collect();
    let init = init_clients
        .iter_mut()
        .zip(&config.nodes)
        .map(|(client, id)| init_node(client, id, &config.nodes));
    for result in futures::future::join_all(init).await {
        result?;
    }
    logger.console("All nodes initialized");

    let topo = topology::build(&config.topology, &config.nodes)?;
    let topo_json = serde_json::to_value(&topo).map_err(|e| e.to_string())?;
    let mut setup_clients: Vec<Client> = config
        .nodes
        .iter()
        .map(|_| Client::open(net, ids))
        .collect();
    let topo_calls = setup_clients
        .iter_mut()
        .zip(&config.nodes)
        .map(|(client, id)| send_topology(client, id, &topo_json));
    for result in futures::future::join_all(topo_calls).await {
        result?;
    }

    drop(init_clients);
    let t0 = Instant::now();
    net.set_time_zero(t0);
    let progress = Progress::start(config.time_limit, config.time_limit + RECOVERY, net.clone());
    let ctx = Arc::new(WorkerContext {
        net: net.clone(),
        ids: Arc::clone(ids),
        recorder: Recorder::new(t0, logger.clone()).observed_by(progress.tally()),
        concurrency: config.concurrency as u64,
    });
    let workers: Vec<Worker> = (0..config.concurrency)
        .map(|t| Worker::new(t, &config.nodes))
        .collect();
    let picker = Arc::new(Mutex::new(WorkerPicker::new(
        config.concurrency,
        config.thread_pick,
    )));
    let schedule = Schedule {
        mean_gap: (config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / config.rate)),
        time_limit: config.time_limit,
    };
    let clients = {
        let (ctx, picker) = (Arc::clone(&ctx), Arc::clone(&picker));
        let (rng, runtime) = (stream(config.seed, 0), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            main_phase(ctx, workers, picker, schedule, rng, runtime)
        })
    };
    let clients = async {
        clients
            .await
            .map_err(|e| format!("internal error in the generator: {e}"))
    };
    let setup = RestartSetup {
        node_ids: &config.nodes,
        topology: &topo_json,
        logger,
        bad_lines,
    };
    let mut nemesis = Nemesis::new(&ctx, nodes, setup, &config.faults);
    let faults = nemesis.run(
        &picker,
        config.nemesis_interval,
        config.time_limit,
        stream(config.seed, 2),
    );
    // A failed restart ends the test at once, without waiting for the
    // generator.
    let (workers, ()) = tokio::try_join!(clients, faults)?;

    nemesis.stop_all().await?;
    logger.console("Waiting for recovery...");
    tokio::time::sleep(RECOVERY).await;
    let mut order_rng = final_read_rng(config.seed);
    let workers = final_reads(Arc::clone(&ctx), workers, &mut order_rng).await;
    drop(workers);
    drop(setup_clients);
    net.heal();
    match Arc::try_unwrap(ctx) {
        Ok(ctx) => Ok(ctx.recorder),
        Err(_) => Err("internal error: a worker outlived the test".into()),
    }
}

/// Spec 1.5: `init` with msg_id 1 from a fresh client; only the reply type
/// is checked.
pub(crate) async fn init_node(client: &mut Client, id: &str, all: &[String]) -> Result<(), String> {
    let body = json!({"type": "init", "node_id": id, "node_ids": all});
    let reply = client
        .call(id, object(body), INIT_TIMEOUT)
        .await
        .map_err(|_| {
            format!("Expected node {id} to respond to an init message, but node did not respond.")
        })?
        .1;
    match reply.get("type").and_then(Value::as_str) {
        Some("init_ok") => Ok(()),
        Some("error") => Err(format!("node {id} answered init with an error: {reply}")),
        _ => Err(format!(
            "Expected an init_ok message, but node {id} responded with {reply}"
        )),
    }
}

/// Spec 2.2: the whole topology map, 5 s, and a schema-exact `topology_ok`.
pub(crate) async fn send_topology(
    client: &mut Client,
    id: &str,
    topo: &Value,
) -> Result<(), String> {
    let body = json!({"type": "topology", "topology": topo});
    let reply = client
        .call(id, object(body), TOPOLOGY_TIMEOUT)
        .await
        .map_err(|_| format!("node {id} did not answer the topology message within 5 s"))?
        .1;
    let body = reply.as_object().cloned().unwrap_or_default();
    match schema_problem("topology_ok", &body) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "node {id} answered topology with a malformed reply {reply}: {problem}"
        )),
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// CPU time of the harness and of its (reaped) node processes, in seconds.
struct CpuUse {
    harness: f64,
    nodes: f64,
}

fn cpu_seconds() -> CpuUse {
    fn of(who: libc::c_int) -> f64 {
        // SAFETY: getrusage only writes into the struct we own; a zeroed
        // rusage is a valid value of that plain C struct.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut usage);
            usage
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    }
    CpuUse {
        harness: of(libc::RUSAGE_SELF),
        nodes: of(libc::RUSAGE_CHILDREN),
    }
}

/// The machine's CPU time counters (all CPUs, in clock ticks) from
/// /proc/stat: the total, and the steal, time the hypervisor gave this
/// virtual machine's CPUs to other guests. Steal delays the harness and the
/// nodes alike, and no scheduling inside the machine can prevent it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MachineTicks {
    total: u64,
    steal: u64,
}

impl MachineTicks {
    /// The `cpu` line of /proc/stat: user nice system idle iowait irq
    /// softirq steal, then guest times that user already counts.
    fn parse(stat: &str) -> Option<MachineTicks> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|f| f.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        Some(MachineTicks {
            total: fields.iter().sum(),
            steal: *fields.get(7)?,
        })
    }

    /// Steal as a percentage of all CPU time since `start`.
    fn steal_percent_since(self, start: MachineTicks) -> Option<f64> {
        let total = self.total.checked_sub(start.total)?;
        let steal = self.steal.checked_sub(start.steal)?;
        (total > 0).then(|| 100.0 * steal as f64 / total as f64)
    }
}

fn machine_ticks() -> Option<MachineTicks> {
    MachineTicks::parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The short stdout summary. `fault_lines` describe the faults injected
/// (faults.rs).
pub fn summary(
    config: &TestConfig,
    results: &Results,
    run_dir: &Path,
    fault_lines: &[String],
) -> String {
    let w = results.workload();
    let mut out = String::new();
    let valid = match results.valid() {
        Validity::True => "true",
        Validity::False => "false",
        Validity::Unknown => ":unknown",
    };
    out.push_str(&format!("valid?              {valid}\n"));
    out.push_str(&format!("lost                {}\n", w.lost.len()));
    let quantiles = w.stable_latencies.map_or("none".to_string(), |q| {
        q.points()
            .iter()
            .map(|(p, v)| format!("{p}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    out.push_str(&format!("stable latency (ms) {quantiles}\n"));
    let per_op = results
        .net()
        .servers
        .msgs_per_op
        .map_or("n/a".to_string(), |x| format!("{x}"));
    out.push_str(&format!("servers msgs-per-op {per_op}\n"));
    for line in fault_lines {
        out.push_str(&format!("{line}\n"));
    }
    if let Some(h) = results.harness() {
        for line in lateness::summary_lines(&h.lateness_ms) {
            out.push_str(&format!("{line}\n"));
        }
        out.push_str(&format!(
            "harness cpu         {:.2} s over {:.1} s wall (seed {})\n",
            h.cpu_seconds.unwrap_or(0.0),
            h.wall_seconds,
            config.seed
        ));
        if let Some(steal) = h.steal_percent {
            out.push_str(&format!(
                "machine steal       {steal:.1}% of CPU time went to other virtual machines\n"
            ));
        }
        if h.malformed_lines > 0 {
            out.push_str(&format!(
                "WARNING: nodes wrote {} stdout line(s) that were not valid messages; see jepsen.log\n",
                h.malformed_lines
            ));
            if config.bad_output == BadOutput::Lenient {
                out.push_str(
                    "NOTE: --bad-output lenient dropped only those lines; under Maelstrom each such node would have gone mute and this verdict may not hold\n",
                );
            }
        }
    }
    out.push_str(&format!(
        "results             {}\n",
        run_dir.join("results.edn").display()
    ));
    out.push_str(match results.valid() {
        Validity::True => "Everything looks good! ヽ(‘ー`)ノ\n",
        Validity::False => "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻\n",
        Validity::Unknown => "Errors occurred during analysis, but no anomalies found. ಠ~ಠ\n",
    });
    out
}

/// The command-line spelling of an option value.
fn value_name<V: clap::ValueEnum>(v: V) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::MachineTicks;

    #[test]
    fn steal_is_a_share_of_all_cpu_time_between_two_samples() {
        let start =
            MachineTicks::parse("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 18 0 0\n")
                .expect("a cpu line");
        assert_eq!(
            start,
            MachineTicks {
                total: 1000,
                steal: 35
            }
        );
        let end = MachineTicks::parse("cpu  150 0 70 1500 10 0 5 135 7 0\n").expect("a cpu line");
        let steal = end.steal_percent_since(start).expect("time passed");
        assert!((steal - 100.0 * 100.0 / 870.0).abs() < 1e-9, "{steal}");
        assert_eq!(start.steal_percent_since(start), None, "no time passed");
        assert_eq!(start.steal_percent_since(end), None, "counters went back");
        assert_eq!(MachineTicks::parse("cpu  1 2 3\n"), None, "no steal field");
        assert_eq!(MachineTicks::parse("intr 5\n"), None);
    }
}
