//! The node's per-neighbour backlog trace (README, "Backlog trace"), read
//! back from a run's `node-logs/<id>.log` and drawn on the history's time
//! axis: per node, one row per link with its items (waiting, lazy, in
//! flight) and the age of its oldest unacknowledged item; and one cluster
//! view of the node with the most links (the hub of a star). Fault periods
//! are shaded as in the perf plots.
//!
//! A trace line is a log line whose target (third field) is `backlog`:
//! `2026-11-26T14:10:08.312Z INFO backlog peer=n0 waiting=0 lazy=0 ...`,
//! stamped in UTC milliseconds. [`parse_line`] is the one place that reads
//! them; a trace line that does not parse is counted, never fatal. A link
//! falls silent while idle, so a gap in its samples is drawn as a gap.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use plotters::prelude::*;

use super::fault_periods::FaultPeriod;
use super::output::Logger;
use super::plots::{
    build_chart, draw_legend, draw_line, draw_markers, draw_mesh, fault_legend, line_swatch,
    palette, shade_faults, svg, Area, Chart, LegendEntry, LegendLayout, Marker, PlotError, Swatch,
    FONT, LEGEND_WIDTH, WIDTH,
};

/// One trace line: the state of one link at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogSample {
    /// When the node logged it, in ms since the Unix epoch.
    pub unix_ms: i64,
    pub peer: String,
    pub waiting: u64,
    pub lazy: u64,
    pub in_flight: u64,
    pub batches_in_flight: u64,
    pub oldest_unacked_ms: u64,
    pub rto_ms: u64,
    pub sent_msgs: u64,
    pub resent_items: u64,
    pub received_msgs: u64,
}

impl BacklogSample {
    /// Every item the link still holds.
    pub fn items(&self) -> u64 {
        self.waiting + self.lazy + self.in_flight
    }
}

/// What one node log line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceLine {
    Sample(BacklogSample),
    /// A trace line that does not parse, and why.
    Unparsed(String),
    /// Any other log line.
    Other,
}

/// Reads one node log line.
pub fn parse_line(line: &str) -> TraceLine {
    let mut tokens = line.split_whitespace();
    let (Some(stamp), Some(_level), Some("backlog")) =
        (tokens.next(), tokens.next(), tokens.next())
    else {
        return TraceLine::Other;
    };
    match parse_fields(stamp, tokens) {
        Ok(sample) => TraceLine::Sample(sample),
        Err(reason) => TraceLine::Unparsed(reason),
    }
}

fn parse_fields<'a>(
    stamp: &str,
    tokens: impl Iterator<Item = &'a str>,
) -> Result<BacklogSample, String> {
    let unix_ms = parse_utc_ms(stamp).ok_or_else(|| format!("bad timestamp {stamp:?}"))?;
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    for token in tokens {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("{token:?} is not key=value"))?;
        fields.insert(key, value);
    }
    let text = |key: &str| fields.get(key).copied().ok_or_else(|| format!("no {key}"));
    let number = |key: &str| -> Result<u64, String> {
        let value = text(key)?;
        value
            .parse()
            .map_err(|_| format!("{key}={value} is not a count"))
    };
    Ok(BacklogSample {
        unix_ms,
        peer: text("peer")?.to_string(),
        waiting: number("waiting")?,
        lazy: number("lazy")?,
        in_flight: number("in_flight")?,
        batches_in_flight: number("batches_in_flight")?,
        oldest_unacked_ms: number("oldest_unacked_ms")?,
        rto_ms: number("rto_ms")?,
        sent_msgs: number("sent_msgs")?,
        resent_items: number("resent_items")?,
        received_msgs: number("received_msgs")?,
    })
}

/// `2026-11-26T14:10:08.312Z` as ms since the Unix epoch (UTC, exactly
/// three decimals, as the node's logger writes it).
pub fn parse_utc_ms(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    let shape_ok = b.len() == 24
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ]
        .iter()
        .all(|&(i, c)| b[i] == c);
    if !shape_ok {
        return None;
    }
    let num = |r: Range<usize>| -> Option<i64> {
        let s = stamp.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second, millis) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Text ordered with its digit runs compared as numbers: `n2` before
/// `n10`, `backlog/n2.svg` before `backlog/n10.svg`. Keeps the text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NaturalKey {
    parts: Vec<NaturalPart>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NaturalPart {
    Text(String),
    Number(u128),
}

impl NaturalKey {
    pub fn new(text: &str) -> NaturalKey {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(first) = rest.chars().next() {
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            parts.push(match run.parse() {
                Ok(n) if digits => NaturalPart::Number(n),
                _ => NaturalPart::Text(run.to_string()),
            });
            rest = tail;
        }
        NaturalKey {
            parts,
            text: text.to_string(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// One node's trace: per peer, its samples as (seconds of history time,
/// sample), in log order.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTrace {
    pub node: String,
    pub links: BTreeMap<NaturalKey, Vec<(f64, BacklogSample)>>,
}

impl NodeTrace {
    /// Reads one node's log text; returns the trace and the reasons of the
    /// trace lines that did not parse.
    pub fn read(node: &str, log: &str, t0_unix_ms: i64) -> (NodeTrace, Vec<String>) {
        let mut trace = NodeTrace {
            node: node.to_string(),
            links: BTreeMap::new(),
        };
        let mut unparsed = Vec::new();
        for line in log.lines() {
            match parse_line(line) {
                TraceLine::Sample(sample) => {
                    let at = (sample.unix_ms - t0_unix_ms) as f64 / 1000.0;
                    trace
                        .links
                        .entry(NaturalKey::new(&sample.peer))
                        .or_default()
                        .push((at, sample));
                }
                TraceLine::Unparsed(reason) => unparsed.push(reason),
                TraceLine::Other => {}
            }
        }
        (trace, unparsed)
    }

    fn samples(&self) -> usize {
        self.links.values().map(Vec::len).sum()
    }

    fn time_range(&self) -> Option<(f64, f64)> {
        let times = self.links.values().flatten().map(|(t, _)| *t);
        times.fold(None, |acc, t| match acc {
            None => Some((t, t)),
            Some((lo, hi)) => Some((f64::min(lo, t), f64::max(hi, t))),
        })
    }
}

/// How many trace lines a run's logs held, and how many of them did not
/// parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BacklogCounts {
    pub samples: u64,
    pub unparsed: u64,
}

/// Reads every `<id>.log` in `node_logs`, in natural order of id. Returns
/// the traces, the counts, and the first unparsed line's reason.
pub fn read_traces(
    node_logs: &Path,
    t0_unix_ms: i64,
) -> std::io::Result<(Vec<NodeTrace>, BacklogCounts, Option<String>)> {
    let mut files: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(node_logs)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let node = path
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .to_string();
            Some((node, path))
        })
        .collect();
    files.sort_by_key(|(node, _)| NaturalKey::new(node));
    let mut traces = Vec::new();
    let mut counts = BacklogCounts::default();
    let mut first_unparsed = None;
    for (node, path) in files {
        let bytes = std::fs::read(&path)?;
        let (trace, unparsed) =
            NodeTrace::read(&node, &String::from_utf8_lossy(&bytes), t0_unix_ms);
        counts.samples += (trace.samples() + unparsed.len()) as u64;
        counts.unparsed += unparsed.len() as u64;
        if first_unparsed.is_none() {
            first_unparsed = unparsed
                .into_iter()
                .next()
                .map(|reason| format!("{node}.log: {reason}"));
        }
        traces.push(trace);
    }
    Ok((traces, counts, first_unparsed))
}

// ---------------------------------------------------------------------------
// Drawing

/// The longest silence a link's samples may show and still be joined by a
/// line: a link logs once per trace interval while busy and falls silent
/// while idle, so anything much longer than its usual gap is idleness.
fn gap_limit(points: &[(f64, f64)]) -> f64 {
    let mut gaps: Vec<f64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let usual = gaps.get(gaps.len() / 2).copied().unwrap_or(1.0);
    (usual * 2.5).max(0.05)
}

/// Splits samples into runs with no gap longer than `limit`: a silent link
/// was idle, and no line should pretend otherwise.
fn segments(points: &[(f64, f64)], limit: f64) -> Vec<&[(f64, f64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > limit {
            out.push(&points[start..i]);
            start = i;
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Draws a series as lines broken where it was silent for over `limit`
/// seconds (a lone sample is a dot).
fn draw_trace<Y>(
    chart: &mut Chart<'_, '_, Y>,
    points: &[(f64, f64)],
    limit: f64,
    style: ShapeStyle,
) -> Result<(), PlotError>
where
    Y: Ranged<ValueType = f64>,
{
    for segment in segments(points, limit) {
        if segment.len() == 1 {
            draw_markers(chart, segment, Marker::Circle, style.color.filled())?;
        } else {
            draw_line(chart, segment, style, false)?;
        }
    }
    Ok(())
}

fn series(
    samples: &[(f64, BacklogSample)],
    value: impl Fn(&BacklogSample) -> u64,
) -> Vec<(f64, f64)> {
    samples.iter().map(|(t, s)| (*t, value(s) as f64)).collect()
}

fn top(points: &[(f64, f64)]) -> f64 {
    points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.12
}

const WAITING: RGBColor = RGBColor(0x1F, 0x77, 0xB4);
const IN_FLIGHT: RGBColor = RGBColor(0xFF, 0x7F, 0x0E);
const LAZY: RGBColor = RGBColor(0x7F, 0x7F, 0x7F);
const AGE: RGBColor = RGBColor(0xD6, 0x27, 0x28);

const ROW_HEIGHT: u32 = 170;
const HEADER_HEIGHT: u32 = 70;

/// backlog/<node>.svg: one row per link; on the left the items it holds
/// (waiting for the next flush, held lazily, in flight), on the right the
/// age of its oldest unacknowledged item.
pub fn node_svg(
    trace: &NodeTrace,
    periods: &[FaultPeriod],
    x: Range<f64>,
) -> Result<String, PlotError> {
    let links: Vec<(&str, &Vec<(f64, BacklogSample)>)> = trace
        .links
        .iter()
        .map(|(peer, s)| (peer.text(), s))
        .collect();
    let any_lazy = links.iter().any(|(_, s)| s.iter().any(|(_, x)| x.lazy > 0));
    let mut legend = vec![
        LegendEntry::new("waiting", line_swatch(WAITING, false, None)),
        LegendEntry::new("in flight", line_swatch(IN_FLIGHT, false, None)),
    ];
    if any_lazy {
        legend.push(LegendEntry::new("lazy", line_swatch(LAZY, false, None)));
    }
    legend.push(LegendEntry::new(
        "oldest unacked",
        line_swatch(AGE, false, None),
    ));
    legend.extend(fault_legend(periods));
    let height = HEADER_HEIGHT + ROW_HEIGHT * links.len().max(1) as u32;
    let caption = format!(
        "Backlog of {}'s {} link{} over time (s); gaps: the link was idle",
        trace.node,
        links.len(),
        if links.len() == 1 { "" } else { "s" }
    );
    svg((WIDTH, height), |root| {
        let (header, rows) = root.split_vertically(HEADER_HEIGHT);
        let header = header.titled(&caption, (FONT, 20))?;
        draw_legend(&header, (60, 14), LegendLayout::Row { width: 150 }, &legend)?;
        if links.is_empty() {
            return super::plots::note(&rows, "no backlog trace lines");
        }
        for ((peer, samples), row) in links.iter().zip(rows.split_evenly((links.len(), 1))) {
            let (left, right) = row.split_horizontally(WIDTH / 2);
            let waiting = series(samples, |s| s.waiting);
            let in_flight = series(samples, |s| s.in_flight);
            let lazy = series(samples, |s| s.lazy);
            let limit = gap_limit(&waiting);
            let items_top = top(&waiting).max(top(&in_flight)).max(top(&lazy));
            let mut chart = panel(
                &left,
                &format!("{} → {peer}: items", trace.node),
                x.clone(),
                items_top,
            )?;
            draw_mesh(&mut chart, "", "items")?;
            shade_faults(&mut chart, periods)?;
            if any_lazy {
                draw_trace(&mut chart, &lazy, limit, LAZY.stroke_width(2))?;
            }
            draw_trace(&mut chart, &waiting, limit, WAITING.stroke_width(2))?;
            draw_trace(&mut chart, &in_flight, limit, IN_FLIGHT.stroke_width(2))?;
            let age = series(samples, |s| s.oldest_unacked_ms);
            let mut chart = panel(
                &right,
                &format!("{} → {peer}: oldest unacked (ms)", trace.node),
                x.clone(),
                top(&age),
            )?;
            draw_mesh(&mut chart, "", "ms")?;
            shade_faults(&mut chart, periods)?;
            draw_trace(&mut chart, &age, limit, AGE.stroke_width(2))?;
        }
        Ok(())
    })
}

fn panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    x: Range<f64>,
    y_top: f64,
) -> Result<Chart<'a, 'b, plotters::coord::types::RangedCoordf64>, PlotError> {
    Ok(ChartBuilder::on(area)
        .caption(caption, (FONT, 15))
        .margin(6)
        .margin_right(14)
        .x_label_area_size(26)
        .y_label_area_size(56)
        .build_cartesian_2d(x, 0.0..y_top)?)
}

/// The node whose trace has the most links (the hub of a star), the first
/// in id order on a tie; `None` when no node traced anything.
pub fn hub(traces: &[NodeTrace]) -> Option<&NodeTrace> {
    traces
        .iter()
        .filter(|t| !t.links.is_empty())
        .fold(None, |best: Option<&NodeTrace>, t| match best {
            Some(b) if b.links.len() >= t.links.len() => Some(b),
            _ => Some(t),
        })
}

/// Links drawn one per legend entry up to this many; beyond, one entry says
/// that each thin line is a link.
const MAX_NAMED_LINKS: usize = 14;

/// backlog-cluster.svg: all of the hub's links together, one thin line
/// each, with the total items held and the oldest age over all of them in
/// bold.
pub fn cluster_svg(
    hub: &NodeTrace,
    periods: &[FaultPeriod],
    x: Range<f64>,
) -> Result<String, PlotError> {
    let links: Vec<(&str, &Vec<(f64, BacklogSample)>)> =
        hub.links.iter().map(|(peer, s)| (peer.text(), s)).collect();
    let items: Vec<Vec<(f64, f64)>> = links
        .iter()
        .map(|(_, s)| series(s, BacklogSample::items))
        .collect();
    let ages: Vec<Vec<(f64, f64)>> = links
        .iter()
        .map(|(_, s)| series(s, |s| s.oldest_unacked_ms))
        .collect();
    let total = combined(&items, |a, b| a + b);
    let oldest = combined(&ages, f64::max);
    // The sums change whenever any link traces; they fall silent only when
    // every link is idle.
    let all_idle = items.iter().map(|p| gap_limit(p)).fold(0.05, f64::max);
    let mut legend = vec![LegendEntry::new(
        "all links",
        line_swatch(BLACK, false, None),
    )];
    if links.len() <= MAX_NAMED_LINKS {
        legend.extend(links.iter().enumerate().map(|(i, (peer, _))| {
            LegendEntry::new(
                format!("{} → {peer}", hub.node),
                Swatch::Line {
                    color: palette(i),
                    dashed: false,
                    marker: None,
                    width: 1,
                },
            )
        }));
    } else {
        legend.push(LegendEntry::new(
            format!("each of {} links", links.len()),
            Swatch::Line {
                color: palette(0),
                dashed: false,
                marker: None,
                width: 1,
            },
        ));
    }
    legend.extend(fault_legend(periods));
    let caption = format!(
        "Backlog of {}'s {} links (the node with most links)",
        hub.node,
        links.len()
    );
    svg((WIDTH, 760), |root| {
        let titled = root.titled(&caption, (FONT, 20))?;
        let (plots, legend_area) = titled.split_horizontally(WIDTH - LEGEND_WIDTH);
        let (upper, lower) = plots.split_vertically(360);
        let items_top = items
            .iter()
            .chain([&total])
            .map(|p| top(p))
            .fold(1.0, f64::max);
        let mut chart = build_chart(&upper, x.clone(), 0.0..items_top)?;
        draw_mesh(
            &mut chart,
            "time (s)",
            "items held (waiting + lazy + in flight)",
        )?;
        shade_faults(&mut chart, periods)?;
        for (i, points) in items.iter().enumerate() {
            draw_trace(
                &mut chart,
                points,
                gap_limit(points),
                palette(i).stroke_width(1),
            )?;
        }
        draw_trace(&mut chart, &total, all_idle, BLACK.stroke_width(2))?;
        let age_top = ages
            .iter()
            .chain([&oldest])
            .map(|p| top(p))
            .fold(1.0, f64::max);
        let mut chart = build_chart(&lower, x.clone(), 0.0..age_top)?;
        draw_mesh(&mut chart, "time (s)", "oldest unacked (ms)")?;
        shade_faults(&mut chart, periods)?;
        for (i, points) in ages.iter().enumerate() {
            draw_trace(
                &mut chart,
                points,
                gap_limit(points),
                palette(i).stroke_width(1),
            )?;
        }
        draw_trace(&mut chart, &oldest, all_idle, BLACK.stroke_width(2))?;
        draw_legend(&legend_area, (6, 40), LegendLayout::Column, &legend)
    })
}

/// Samples of different links less than this apart are one instant: a
/// node's links trace in the same tick of their own timers.
const SAME_INSTANT_S: f64 = 0.01;

/// One series made of several links' series: at each instant any link
/// traced, `combine` over every link's latest value (a link silent for
/// longer than its [`gap_limit`] counts as 0, idle).
fn combined(links: &[Vec<(f64, f64)>], combine: fn(f64, f64) -> f64) -> Vec<(f64, f64)> {
    let limits: Vec<f64> = links.iter().map(|p| gap_limit(p)).collect();
    let mut events: Vec<(f64, usize, f64)> = links
        .iter()
        .enumerate()
        .flat_map(|(link, points)| points.iter().map(move |&(t, v)| (t, link, v)))
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut latest: Vec<Option<(f64, f64)>> = vec![None; links.len()];
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let instant = events[i].0;
        while i < events.len() && events[i].0 - instant < SAME_INSTANT_S {
            let (t, link, v) = events[i];
            latest[link] = Some((t, v));
            i += 1;
        }
        let value = latest
            .iter()
            .zip(&limits)
            .filter_map(|(last, limit)| last.filter(|(t, _)| instant - t <= *limit))
            .fold(0.0, |acc, (_, v)| combine(acc, v));
        out.push((instant, value));
    }
    out
}

/// Reads the traces of `run_dir/node-logs` and writes `backlog/<node>.svg`
/// for every node that traced a link, and `backlog-cluster.svg`. Lines that
/// do not parse are counted and warned about; nothing here is fatal.
pub fn write_plots(
    run_dir: &Path,
    t0_unix_ms: i64,
    periods: &[FaultPeriod],
    x_end: f64,
    logger: &Logger,
) -> BacklogCounts {
    let (traces, counts, first_unparsed) = match read_traces(&run_dir.join("node-logs"), t0_unix_ms)
    {
        Ok(read) => read,
        Err(e) => {
            logger.warn(&format!("cannot read node-logs for the backlog plots: {e}"));
            return BacklogCounts::default();
        }
    };
    if let Some(first) = first_unparsed {
        logger.warn(&format!(
            "{} of {} backlog trace lines in node-logs did not parse (first: {first})",
            counts.unparsed, counts.samples
        ));
    }
    let traced: Vec<&NodeTrace> = traces.iter().filter(|t| !t.links.is_empty()).collect();
    if traced.is_empty() {
        return counts;
    }
    let x_start = traced
        .iter()
        .filter_map(|t| t.time_range())
        .map(|(lo, _)| lo)
        .fold(0.0, f64::min);
    let x_end = traced
        .iter()
        .filter_map(|t| t.time_range())
        .map(|(_, hi)| hi + 0.5)
        .fold(x_end, f64::max);
    let x = x_start..x_end;
    let write = |name: String, drawn: Result<String, PlotError>| {
        let result = drawn
            .map_err(|e| e.to_string())
            .and_then(|svg| std::fs::write(run_dir.join(&name), svg).map_err(|e| e.to_string()));
        if let Err(reason) = result {
            logger.warn(&format!("cannot write {name}: {reason}"));
        }
    };
    if let Err(e) = std::fs::create_dir_all(run_dir.join("backlog")) {
        logger.warn(&format!("cannot create backlog/: {e}"));
    }
    for trace in &traced {
        write(
            format!("backlog/{}.svg", trace.node),
            node_svg(trace, periods, x.clone()),
        );
    }
    if let Some(hub) = hub(&traces) {
        write("backlog-cluster.svg".into(), cluster_svg(hub, periods, x));
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault_periods::FaultKind;
    use crate::plots::tests::has_text;

    const LINE: &str =
        "2026-11-26T14:10:08.312Z INFO backlog peer=n0 waiting=0 lazy=0 in_flight=1 \
                        batches_in_flight=1 oldest_unacked_ms=412 rto_ms=1120 sent_msgs=3 \
                        resent_items=0 received_msgs=0";

    #[test]
    fn the_readme_line_parses() {
        let TraceLine::Sample(s) = parse_line(LINE) else {
            panic!("{:?}", parse_line(LINE))
        };
        assert_eq!(s.unix_ms, 1_795_702_208_312);
        assert_eq!(s.peer, "n0");
        assert_eq!(
            (s.waiting, s.lazy, s.in_flight, s.batches_in_flight),
            (0, 0, 1, 1)
        );
        assert_eq!((s.oldest_unacked_ms, s.rto_ms), (412, 1120));
        assert_eq!((s.sent_msgs, s.resent_items, s.received_msgs), (3, 0, 0));
        assert_eq!(s.items(), 1);
    }

    #[test]
    fn other_lines_are_not_trace_lines_and_bad_trace_lines_say_why() {
        for other in [
            "",
            "2026-11-26T14:10:08.312Z INFO broadcast_actors::topology star hub n0",
            "fixture node pid 4242",
            "2026-11-26T14:10:08.312Z INFO backl",
        ] {
            assert_eq!(parse_line(other), TraceLine::Other, "{other}");
        }
        let cases = [
            (
                LINE.replace("in_flight=1 ", "in_flight=x "),
                "in_flight=x is not a count",
            ),
            (LINE.replace("peer=n0 ", ""), "no peer"),
            (LINE.replace(" rto_ms=1120", ""), "no rto_ms"),
            (
                LINE.replace("waiting=0", "waiting"),
                "\"waiting\" is not key=value",
            ),
            (LINE.replace("08.312Z", "08.312"), "bad timestamp"),
            (LINE.replace("-11-", "-13-"), "bad timestamp"),
        ];
        for (line, why) in cases {
            match parse_line(&line) {
                TraceLine::Unparsed(reason) => assert!(reason.contains(why), "{reason} / {why}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        // Fields the format may grow later are ignored.
        assert!(matches!(
            parse_line(&format!("{LINE} new_field=7")),
            TraceLine::Sample(_)
        ));
    }

    #[test]
    fn natural_order() {
        let mut names = [
            "n10",
            "n2",
            "backlog/n10.svg",
            "backlog/n9.svg",
            "n1",
            "a",
            "n02x",
        ];
        names.sort_by_key(|n| NaturalKey::new(n));
        assert_eq!(
            names,
            [
                "a",
                "backlog/n9.svg",
                "backlog/n10.svg",
                "n1",
                "n2",
                "n02x",
                "n10"
            ]
        );
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(parse_utc_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_utc_ms("2000-03-01T00:00:00.001Z"),
            Some(951_868_800_001)
        );
        assert_eq!(
            parse_utc_ms("2024-02-29T23:59:59.999Z"),
            Some(1_709_251_199_999)
        );
        assert_eq!(parse_utc_ms("2024-02-29T23:59:59Z"), None);
        assert_eq!(parse_utc_ms("2024-02-29 23:59:59.999Z"), None);
        assert_eq!(parse_utc_ms("2024-02-29T2a:59:59.999Z"), None);
    }

    fn log_of(lines: &[(i64, &str, u64, u64)]) -> String {
        lines
            .iter()
            .map(|&(ms, peer, in_flight, age)| {
                let stamp = 1_795_702_208_000 + ms;
                let secs = stamp / 1000;
                let (days, rem) = (secs / 86_400, secs % 86_400);
                assert_eq!(days, 20_783, "test stamps stay on 2026-11-26");
                format!(
                    "2026-11-26T{:02}:{:02}:{:02}.{:03}Z INFO backlog peer={peer} waiting=1 lazy=0 \
                     in_flight={in_flight} batches_in_flight=1 oldest_unacked_ms={age} rto_ms=1 \
                     sent_msgs=1 resent_items=0 received_msgs=1\n",
                    rem / 3600,
                    rem % 3600 / 60,
                    rem % 60,
                    stamp % 1000
                )
            })
            .collect()
    }

    #[test]
    fn traces_map_onto_the_history_axis_and_group_by_link() {
        let t0 = 1_795_702_208_000;
        let mut log = log_of(&[
            (-500, "n10", 0, 0),
            (1000, "n2", 2, 30),
            (2000, "n10", 3, 40),
        ]);
        log.push_str(
            "2026-11-26T14:10:09.000Z INFO backlog peer=n2 waiting=?\nstarting with Config\n",
        );
        let (trace, unparsed) = NodeTrace::read("n1", &log, t0);
        assert_eq!(unparsed.len(), 1);
        let peers: Vec<&str> = trace.links.keys().map(NaturalKey::text).collect();
        assert_eq!(peers, ["n2", "n10"]);
        let n10 = &trace.links[&NaturalKey::new("n10")];
        assert_eq!(n10.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [-0.5, 2.0]);
        assert_eq!(trace.time_range(), Some((-0.5, 2.0)));
    }

    #[test]
    fn read_traces_counts_unparsed_lines_per_run() {
        let dir = std::env::temp_dir().join(format!("msim-backlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = 1_795_702_208_000;
        std::fs::write(
            dir.join("n0.log"),
            log_of(&[(0, "n1", 1, 5), (1000, "n2", 1, 5)]),
        )
        .unwrap();
        let mut bad = log_of(&[(0, "n0", 1, 5)]);
        bad.push_str("garbage 2026 backlog peer=n0\n");
        std::fs::write(dir.join("n1.log"), bad).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a node log").unwrap();
        let (traces, counts, first) = read_traces(&dir, t0).unwrap();
        assert_eq!(
            traces.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(),
            ["n0", "n1"]
        );
        assert_eq!(
            counts,
            BacklogCounts {
                samples: 4,
                unparsed: 1
            }
        );
        assert!(first.unwrap().starts_with("n1.log: bad timestamp"));
        assert_eq!(hub(&traces).unwrap().node, "n0");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn silence_breaks_a_line() {
        let points = [
            (0.0, 1.0),
            (1.0, 1.0),
            (2.0, 2.0),
            (9.0, 1.0),
            (10.0, 0.0),
            (30.0, 1.0),
        ];
        assert_eq!(gap_limit(&points), 2.5);
        let runs: Vec<usize> = segments(&points, 2.5).iter().map(|s| s.len()).collect();
        assert_eq!(runs, [3, 2, 1]);
        assert!(segments(&[], 1.0).is_empty());
    }

    #[test]
    fn combined_series_use_each_links_latest_value() {
        // Link a traces every second from 0; link b from 0.4 s, then falls
        // silent (idle) after 2.4 s: from 2.5 gaps on (4.9 s) it counts 0.
        let a = vec![
            (0.0, 2.0),
            (1.0, 4.0),
            (2.0, 1.0),
            (3.0, 1.0),
            (4.0, 0.0),
            (5.0, 1.0),
        ];
        let b = vec![(0.4, 5.0), (1.4, 7.0), (2.4, 3.0)];
        let links = [a, b];
        let total = combined(&links, |x, y| x + y);
        assert_eq!(
            total,
            [
                (0.0, 2.0),
                (0.4, 7.0),
                (1.0, 9.0),
                (1.4, 11.0),
                (2.0, 8.0),
                (2.4, 4.0),
                (3.0, 4.0),
                (4.0, 3.0),
                (5.0, 1.0)
            ]
        );
        let oldest = combined(&links, f64::max);
        assert_eq!(oldest[3], (1.4, 7.0));
        // Samples of one tick a few ms apart are one instant.
        let tick = combined(&[vec![(1.0, 1.0)], vec![(1.004, 2.0)]], |x, y| x + y);
        assert_eq!(tick, [(1.0, 3.0)]);
    }

    #[test]
    fn plots_draw_every_link_with_fault_shading() {
        let t0 = 1_795_702_208_000;
        let log = log_of(&[
            (0, "n1", 2, 10),
            (0, "n2", 5, 70),
            (1000, "n1", 0, 0),
            (1000, "n2", 1, 20),
        ]);
        let (trace, _) = NodeTrace::read("n0", &log, t0);
        let periods = [FaultPeriod {
            kind: FaultKind::Kill,
            start_s: 0.5,
            end_s: None,
        }];
        let svg = node_svg(&trace, &periods, 0.0..2.0).unwrap();
        for text in [
            "n0 → n1: items",
            "n0 → n2: oldest unacked (ms)",
            "kill",
            "in flight",
        ] {
            assert!(has_text(&svg, text), "{text}");
        }
        assert!(svg.contains("fill=\"#E9A4A0\""));
        let svg = cluster_svg(&trace, &periods, 0.0..2.0).unwrap();
        assert!(has_text(&svg, "n0 → n2") && has_text(&svg, "all links"));
    }
}
