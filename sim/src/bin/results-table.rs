//! results-table: turns finished broadcast runs into the table that
//! `maelstrom.sh` prints (challenge, valid, lost, servers msgs-per-op, median,
//! max, pass or fail, whether maelstrom-sim's own lateness was over its
//! bound and how many node output lines it could not route), or, with
//! `--sweep`, the interval x branching table next to the reference
//! write-up's figures and a table of the profile runs; with
//! `--frontier SWEEP.md OUT.svg`, draws that markdown's figures as the
//! msgs/op against latency picture.
//!
//! Arguments are `CHALLENGE=LABEL=PATH` (PATH a results.edn, or `ABORTED`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use maelstrom_sim::frontier::{frontier_svg, published_anchors, read_sweep_markdown};
use maelstrom_sim::report::{Edn, Limits, RunFigures, Verdict};

struct Run {
    challenge: String,
    label: String,
    figures: Option<RunFigures>,
}

fn parse_run(arg: &str) -> Result<Run> {
    let mut parts = arg.splitn(3, '=');
    let (Some(challenge), Some(label), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        bail!("expected CHALLENGE=LABEL=PATH, got '{arg}'");
    };
    let figures = if path == "ABORTED" {
        None
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let results = Edn::parse(&text).with_context(|| format!("parsing {path}"))?;
        Some(RunFigures::from_results(&results))
    };
    Ok(Run {
        challenge: challenge.to_string(),
        label: label.to_string(),
        figures,
    })
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn verdict(limits: Option<Limits>, figures: &RunFigures) -> String {
    match limits.map(|limits| limits.judge(figures)) {
        None => "-".to_string(),
        Some(Ok(())) => "pass".to_string(),
        Some(Err(why)) => format!("FAIL ({why})"),
    }
}

/// `late` when the harness's lateness was over its bound (the run's timing
/// is not evidence), `ok` when it was not, `-` for results without it; the
/// machine's steal time when it was recorded (the usual cause of `late` on
/// a shared virtual machine); then how many stdout lines the nodes wrote
/// that could not be routed (each silenced its node for the rest of the
/// run, as under Maelstrom).
fn harness_column(figures: &RunFigures) -> String {
    let mut column = match figures.lateness_exceeded {
        Some(true) => "late",
        Some(false) => "ok",
        None => "-",
    }
    .to_string();
    if let Some(steal) = figures.steal_percent {
        column.push_str(&format!(", steal {steal:.1}%"));
    }
    if let Some(n) = figures.unroutable_lines.filter(|&n| n > 0) {
        column.push_str(&format!(", {n} unroutable"));
    }
    column
}

fn challenge_table(runs: &[Run]) -> bool {
    println!(
        "{:<14} {:<26} {:<8} {:>5} {:>8} {:>7} {:>7}  {:<28} {:<28} harness",
        "challenge",
        "run",
        "valid",
        "lost",
        "msgs/op",
        "median",
        "max",
        "challenge limits",
        "target"
    );
    let mut all_pass = true;
    for run in runs {
        let Some(figures) = &run.figures else {
            println!(
                "{:<14} {:<26} ABORTED (no results)",
                run.challenge, run.label
            );
            all_pass = false;
            continue;
        };
        let limits = Limits::challenge(&run.challenge);
        if let Some(Err(_)) = limits.map(|l| l.judge(figures)) {
            all_pass = false;
        }
        println!(
            "{:<14} {:<26} {:<8} {:>5} {:>8} {:>7} {:>7}  {:<28} {:<28} {}",
            run.challenge,
            run.label,
            figures.valid.to_string(),
            figures
                .lost_count
                .map_or("-".to_string(), |n| n.to_string()),
            number(figures.servers_msgs_per_op, 3),
            number(figures.median(), 0),
            number(figures.max(), 0),
            verdict(limits, figures),
            verdict(Limits::target(&run.challenge), figures),
            harness_column(figures),
        );
    }
    summarize_repeats(runs);
    all_pass
}

/// One line per challenge: how many runs passed its limits and this
/// project's targets ("3d 10/10"), and the worst figure of each kind over
/// all its runs (never a mean), with the run it came from.
fn summarize_repeats(runs: &[Run]) {
    let mut by_challenge: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for run in runs {
        by_challenge.entry(&run.challenge).or_default().push(run);
    }
    for (challenge, runs) in by_challenge {
        let total = runs.len();
        let count = |holds: &dyn Fn(&RunFigures) -> bool| {
            runs.iter()
                .filter(|r| r.figures.as_ref().is_some_and(holds))
                .count()
        };
        let judged = |limits: Limits| count(&|f| limits.judge(f).is_ok());
        let lost: u64 = runs
            .iter()
            .filter_map(|r| r.figures.as_ref()?.lost_count)
            .sum();
        let worst = |pick: fn(&RunFigures) -> Option<f64>, digits: usize| {
            runs.iter()
                .filter_map(|r| Some((pick(r.figures.as_ref()?)?, r.label.as_str())))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or("-".to_string(), |(v, label)| {
                    format!("{} ({label})", number(Some(v), digits))
                })
        };
        let target = Limits::target(challenge)
            .map_or(String::new(), |t| format!(", target {}/{total}", judged(t)));
        // A row without limits (it reports, e.g., what a kill loses) is
        // counted by validity alone, not as failing every run.
        let passes = match Limits::challenge(challenge) {
            Some(limits) => format!("{}/{total} pass", judged(limits)),
            None => format!("{}/{total} valid", count(&|f| f.valid == Verdict::Valid)),
        };
        println!(
            "{challenge} {passes}{target}, {lost} lost in all; worst msgs/op {}, worst median {}, worst max {}",
            worst(|f| f.servers_msgs_per_op, 3),
            worst(RunFigures::median, 0),
            worst(RunFigures::max, 0),
        );
    }
}

/// The reference write-up's benchmark: (interval ms, branch) -> msgs/op, p50, p95, p99.
const WRITE_UP: [(u32, u32, f64, u32, u32, u32); 20] = [
    (100, 1, 13.31, 2281, 3363, 3646),
    (100, 2, 10.70, 867, 1154, 1214),
    (100, 4, 9.95, 512, 704, 795),
    (100, 8, 9.33, 416, 587, 599),
    (100, 16, 9.28, 348, 438, 457),
    (200, 1, 8.80, 3046, 4397, 4640),
    (200, 2, 7.30, 1155, 1466, 1567),
    (200, 4, 7.02, 708, 955, 981),
    (200, 8, 6.74, 566, 749, 791),
    (200, 16, 6.74, 414, 608, 636),
    (300, 1, 7.26, 4365, 6580, 6775),
    (300, 2, 6.33, 1667, 2114, 2222),
    (300, 4, 5.91, 958, 1249, 1331),
    (300, 8, 5.80, 723, 981, 1056),
    (300, 16, 5.89, 484, 711, 780),
    (500, 1, 6.21, 6661, 10857, 11287),
    (500, 2, 5.47, 2733, 3467, 3584),
    (500, 4, 5.30, 1648, 2029, 2143),
    (500, 8, 5.24, 1170, 1532, 1655),
    (500, 16, 5.24, 794, 1112, 1177),
];

/// Sweep labels look like `i100-b4` (optionally `-s<seed>`).
fn sweep_cell(label: &str) -> Option<(u32, u32)> {
    let mut parts = label.split('-');
    let interval = parts.next()?.strip_prefix('i')?.parse().ok()?;
    let branch = parts.next()?.strip_prefix('b')?.parse().ok()?;
    Some((interval, branch))
}

/// The mean of `pick` over the runs that have it.
fn mean_of(runs: &[&RunFigures], pick: &dyn Fn(&RunFigures) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = runs.iter().filter_map(|f| pick(f)).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn sweep_table(runs: &[Run]) -> Result<()> {
    let mut cells: BTreeMap<(u32, u32), Vec<&RunFigures>> = BTreeMap::new();
    // Runs with a challenge's own label are the profiles, shown apart.
    let mut profiles: BTreeMap<&str, Vec<&RunFigures>> = BTreeMap::new();
    for run in runs {
        let entry = match sweep_cell(&run.label) {
            Some(cell) => cells.entry(cell).or_default(),
            None if Limits::challenge(&run.challenge).is_some() => {
                profiles.entry(&run.challenge).or_default()
            }
            None => bail!("bad sweep label {}", run.label),
        };
        if let Some(figures) = &run.figures {
            entry.push(figures);
        }
    }
    println!("| interval (ms) | branch | ours msgs/op | ours p50 | ours p95 | ours p99 | ours max | valid | write-up msgs/op | write-up p50 | write-up p95 | write-up p99 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for (interval, branch, msgs, p50, p95, p99) in WRITE_UP {
        let ours = cells
            .get(&(interval, branch))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mean = |pick: &dyn Fn(&RunFigures) -> Option<f64>| mean_of(ours, pick);
        let quantile = |point: &'static str| mean(&move |f| f.stable_latencies.get(point).copied());
        let valid = if ours.is_empty() {
            "not run".to_string()
        } else {
            let ok = ours.iter().filter(|f| f.valid == Verdict::Valid).count();
            format!("{ok}/{}", ours.len())
        };
        println!(
            "| {interval} | {branch} | {} | {} | {} | {} | {} | {valid} | {msgs:.2} | {p50} | {p95} | {p99} |",
            number(mean(&|f| f.servers_msgs_per_op), 2),
            number(quantile("0.5"), 0),
            number(quantile("0.95"), 0),
            number(quantile("0.99"), 0),
            number(quantile("1"), 0),
        );
    }
    if !profiles.is_empty() {
        println!();
        println!("The node's profiles on the same settings (`BROADCAST_PROFILE`, default overlay; means over the runs):");
        println!();
        println!("| profile | runs | valid | msgs/op | median | max |");
        println!("|---|---:|---|---:|---:|---:|");
        for (profile, figures) in &profiles {
            let valid = figures.iter().filter(|f| f.valid == Verdict::Valid).count();
            println!(
                "| {profile} | {} | {valid}/{} | {} | {} | {} |",
                figures.len(),
                figures.len(),
                number(mean_of(figures, &|f| f.servers_msgs_per_op), 3),
                number(mean_of(figures, &RunFigures::median), 0),
                number(mean_of(figures, &RunFigures::max), 0),
            );
        }
    }
    Ok(())
}

/// `--frontier SWEEP.md OUT.svg`: the sweep markdown's figures and the
/// published anchors as one picture.
fn frontier(sweep_md: &str, out: &str) -> Result<()> {
    let text = std::fs::read_to_string(sweep_md).with_context(|| format!("reading {sweep_md}"))?;
    let mut points = read_sweep_markdown(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading the tables of {sweep_md}"))?;
    points.extend(published_anchors());
    let svg = frontier_svg(&points).context("drawing the frontier")?;
    std::fs::write(out, svg).with_context(|| format!("writing {out}"))?;
    Ok(())
}

fn run() -> Result<bool> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--frontier") {
        let [_, sweep_md, out] = args.as_slice() else {
            bail!("usage: results-table --frontier SWEEP.md OUT.svg");
        };
        frontier(sweep_md, out)?;
        return Ok(true);
    }
    let sweep = args.first().is_some_and(|a| a == "--sweep");
    if sweep {
        args.remove(0);
    }
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: results-table [--sweep] CHALLENGE=LABEL=PATH...");
        println!("       results-table --frontier SWEEP.md OUT.svg");
        return Ok(true);
    }
    let runs = args
        .iter()
        .map(|a| parse_run(a))
        .collect::<Result<Vec<_>>>()?;
    if sweep {
        sweep_table(&runs)?;
        Ok(true)
    } else {
        Ok(challenge_table(&runs))
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("results-table: {err:#}");
            ExitCode::from(2)
        }
    }
}
