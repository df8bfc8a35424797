//! Node processes (spec 1.1): spawn one OS process per node in its own
//! process group, feed its stdin from the network, route its stdout lines
//! into the network, append its stderr to node-logs/<id>.log, keep the last
//! 32 lines of each stream for crash reports, and kill the whole group at
//! teardown or on any abnormal exit of the harness. The kill and pause
//! nemeses (spec 11.2) SIGKILL, restart, SIGSTOP and SIGCONT a node here.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use super::lateness::{LatenessLog, Stage};
use super::network::{Delivery, Network};
use super::output::Logger;

/// How many lines of each stream a crash report quotes.
pub const TAIL_LINES: usize = 32;

/// What to do with a stdout line the network refuses (spec 6, 11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BadOutput {
    /// Drop only the offending line, warn loudly, count it.
    Lenient,
    /// Like Maelstrom: ignore everything the node writes from then on.
    Maelstrom,
}

/// How long a restart waits for the killed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Process groups of nodes still alive, so that any exit path (including a
/// signal) can kill them all.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live_groups() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner())
}

/// SIGKILLs every node process group still registered.
pub fn kill_all_nodes() {
    for pgid in live_groups().iter() {
        // SAFETY: kill(2) with a negative pid signals a process group; it has
        // no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// A bounded tail of a stream's lines.
#[derive(Default)]
pub struct Tail(Mutex<VecDeque<String>>);

impl Tail {
    fn push(&self, line: &str) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == TAIL_LINES {
            q.pop_front();
        }
        q.push_back(line.to_string());
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// What a node needs to run.
pub struct NodeSpec<'a> {
    pub id: &'a str,
    pub bin: &'a Path,
    pub args: &'a [String],
    pub log_path: PathBuf,
    pub log_stderr: bool,
    pub bad_output: BadOutput,
}

/// A running node.
pub struct NodeProcess {
    pub id: String,
    child: Child,
    pgid: i32,
    pub stdout_tail: Arc<Tail>,
    pub stderr_tail: Arc<Tail>,
    pub log_path: PathBuf,
    /// What a restart runs again.
    bin: PathBuf,
    args: Vec<String>,
    log_stderr: bool,
    bad_output: BadOutput,
    /// Ends once the process's stderr is closed and the log flushed.
    stderr_pump: Option<JoinHandle<()>>,
}

/// Counts stdout lines the network refused, over all nodes.
#[derive(Default)]
pub struct BadLineCounter(AtomicU64);

impl BadLineCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl NodeProcess {
    /// Spawns the node with cwd = the system temp dir, registers it in the
    /// network and starts its three stream pumps.
    pub fn spawn(
        spec: NodeSpec<'_>,
        net: &Network,
        logger: &Logger,
        bad_lines: &Arc<BadLineCounter>,
    ) -> std::io::Result<NodeProcess> {
        let log_file = std::fs::File::create(&spec.log_path)?;
        let mut cmd = Command::new(spec.bin);
        cmd.args(spec.args)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let child = cmd.spawn()?;
        let stdin_rx = net.add_node(spec.id);
        let mut node = NodeProcess {
            id: spec.id.to_string(),
            pgid: child.id().unwrap_or(0) as i32,
            child,
            stdout_tail: Arc::new(Tail::default()),
            stderr_tail: Arc::new(Tail::default()),
            log_path: spec.log_path,
            bin: spec.bin.to_path_buf(),
            args: spec.args.to_vec(),
            log_stderr: spec.log_stderr,
            bad_output: spec.bad_output,
            stderr_pump: None,
        };
        node.start_pumps(log_file, stdin_rx, net, logger, bad_lines);
        Ok(node)
    }

    /// Registers the process group and starts the three stream pumps.
    fn start_pumps(
        &mut self,
        log_file: std::fs::File,
        stdin_rx: UnboundedReceiver<Delivery>,
        net: &Network,
        logger: &Logger,
        bad_lines: &Arc<BadLineCounter>,
    ) {
        live_groups().insert(self.pgid);
        if let Some(stdin) = self.child.stdin.take() {
            tokio::spawn(pump_stdin(
                stdin,
                stdin_rx,
                net.pause_epoch(&self.id),
                net.lateness(),
            ));
        }
        if let Some(stdout) = self.child.stdout.take() {
            tokio::spawn(pump_stdout(
                self.id.clone(),
                stdout,
                net.clone(),
                Arc::clone(&self.stdout_tail),
                logger.clone(),
                self.bad_output,
                Arc::clone(bad_lines),
            ));
        }
        if let Some(stderr) = self.child.stderr.take() {
            self.stderr_pump = Some(tokio::spawn(pump_stderr(
                self.id.clone(),
                stderr,
                tokio::fs::File::from_std(log_file),
                Arc::clone(&self.stderr_tail),
                self.log_stderr.then(|| logger.clone()),
            )));
        }
    }

    /// Kill nemesis: SIGKILLs the process group (the caller has taken the
    /// node down in the network first). Output already written is still
    /// read and routed.
    pub fn sigkill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// Pause nemesis: SIGSTOP (`true`) or SIGCONT (`false`) the group.
    pub fn set_stopped(&self, stopped: bool) {
        self.signal(if stopped {
            libc::SIGSTOP
        } else {
            libc::SIGCONT
        });
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own node's process group; no memory-safety
        // preconditions.
        unsafe {
            libc::kill(-self.pgid, signal);
        }
    }

    /// Restarts a killed node (spec 11.2): waits up to 5 s for the old
    /// process to be reaped and for its stderr to be written out, then runs
    /// the same argv in the same cwd, appending its stderr to the same log
    /// after a restart marker. `stdin_rx` is the node's fresh stdin from
    /// [`Network::restart_node`]. The caller sends `init` and `topology`.
    pub async fn restart(
        &mut self,
        stdin_rx: UnboundedReceiver<Delivery>,
        net: &Network,
        logger: &Logger,
        bad_lines: &Arc<BadLineCounter>,
    ) -> std::io::Result<()> {
        let deadline = tokio::time::Instant::now() + REAP_TIMEOUT;
        if tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .is_err()
        {
            return Err(std::io::Error::other(format!(
                "node {} was not reaped within 5 s of its kill",
                self.id
            )));
        }
        live_groups().remove(&self.pgid);
        if let Some(pump) = self.stderr_pump.take() {
            let _ = tokio::time::timeout_at(deadline, pump).await;
        }
        let mut log_file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)?;
        std::io::Write::write_all(
            &mut log_file,
            format!(
                "=== maelstrom-sim: {} restarted after a kill (--nemesis kill) ===\n",
                self.id
            )
            .as_bytes(),
        )?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        self.child = cmd.spawn()?;
        self.pgid = self.child.id().unwrap_or(0) as i32;
        self.start_pumps(log_file, stdin_rx, net, logger, bad_lines);
        Ok(())
    }

    /// The exit status, if the node has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILLs the node's process group and waits up to 5 s for the node.
    pub async fn kill(&mut self) {
        // SAFETY: see kill_all_nodes.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        live_groups().remove(&self.pgid);
    }

    /// Maelstrom's crash report for a node that exited on its own.
    pub fn crash_report(&self, status: ExitStatus) -> String {
        format!(
            "Node {} crashed with {}. Before crashing, it wrote to STDOUT:\n\n{}\n\nAnd to STDERR:\n\n{}\n\nFull STDERR logs are available in {}",
            self.id,
            status,
            self.stdout_tail.lines().join("\n"),
            self.stderr_tail.lines().join("\n"),
            self.log_path.display()
        )
    }
}

/// Writes delivered lines to the node's stdin, one write per line as
/// Maelstrom's receiver loop writes and flushes each envelope, and records
/// how late each line got into the pipe (unless a pause or resume of the
/// node came in between: that wait is the nemesis's, not the harness's).
/// Write errors (the node exited) end the pump silently; further
/// deliveries are discarded, as in Maelstrom.
async fn pump_stdin(
    mut stdin: ChildStdin,
    mut rx: UnboundedReceiver<Delivery>,
    pause_epoch: Arc<AtomicU64>,
    lateness: Arc<LatenessLog>,
) {
    while let Some(delivery) = rx.recv().await {
        if stdin.write_all(delivery.line.as_bytes()).await.is_err() {
            return;
        }
        if pause_epoch.load(Ordering::Relaxed) == delivery.epoch {
            lateness.record(delivery.stage, delivery.intended.elapsed());
        }
    }
}

/// Reads one line (without its newline), or None at EOF. Invalid UTF-8 is
/// replaced rather than fatal: the line then fails JSON parsing and is
/// reported like any other bad line.
async fn next_line<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> Option<String> {
    buf.clear();
    match r.read_until(b'\n', buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            Some(String::from_utf8_lossy(buf).into_owned())
        }
    }
}

async fn pump_stdout<R: AsyncRead + Unpin>(
    id: String,
    stdout: R,
    net: Network,
    tail: Arc<Tail>,
    logger: Logger,
    mode: BadOutput,
    bad_lines: Arc<BadLineCounter>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    let mut dead = false;
    let lateness = net.lateness();
    let mut read_at = Instant::now();
    loop {
        let refills = r.buffer().is_empty();
        let Some(line) = next_line(&mut r, &mut buf).await else {
            break;
        };
        tail.push(&line);
        if dead {
            continue;
        }
        // A line that came in the same read as earlier ones waited for
        // them to be routed before it is stamped.
        let now = Instant::now();
        if refills {
            read_at = now;
        }
        lateness.record(Stage::StdoutBacklog, now - read_at);
        if let Err(why) = net.send_line(&line) {
            bad_lines.0.fetch_add(1, Ordering::Relaxed);
            let consequence = match mode {
                BadOutput::Lenient => "the line was dropped (--bad-output lenient)",
                BadOutput::Maelstrom => {
                    dead = true;
                    "all further output of this node is ignored, as Maelstrom does (--bad-output maelstrom)"
                }
            };
            logger.warn(&format!(
                "Node {id} wrote a line to STDOUT that could not be routed: {why}; {consequence}. Line: {}",
                truncate_for_log(&line)
            ));
        }
    }
}

async fn pump_stderr<R: AsyncRead + Unpin>(
    id: String,
    stderr: R,
    file: tokio::fs::File,
    tail: Arc<Tail>,
    echo: Option<Logger>,
) {
    let mut r = BufReader::new(stderr);
    let mut log = BufWriter::new(file);
    let mut buf = Vec::new();
    while let Some(line) = next_line(&mut r, &mut buf).await {
        tail.push(&line);
        if let Some(logger) = &echo {
            logger.console(&format!("{id} stderr: {line}"));
        }
        let written = async {
            log.write_all(line.as_bytes()).await?;
            log.write_all(b"\n").await?;
            if r.buffer().is_empty() {
                log.flush().await?;
            }
            std::io::Result::Ok(())
        };
        if written.await.is_err() {
            break;
        }
    }
    let _ = log.flush().await;
}

fn truncate_for_log(line: &str) -> String {
    const MAX: usize = 500;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &line[..end], line.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_32_lines() {
        let t = Tail::default();
        for i in 0..40 {
            t.push(&i.to_string());
        }
        let lines = t.lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "8");
        assert_eq!(lines[31], "39");
    }

    #[test]
    fn long_lines_are_cut_for_the_log_on_a_char_boundary() {
        let long = "é".repeat(400);
        let cut = truncate_for_log(&long);
        assert!(cut.ends_with("(800 bytes)"));
        assert_eq!(truncate_for_log("short"), "short");
    }
}
