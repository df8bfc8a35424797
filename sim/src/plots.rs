//! Jepsen-style performance plots of one run, as SVG: `latency-raw` (every
//! operation's latency at its invocation time, by function and outcome),
//! `latency-quantiles` (0.5, 0.95, 0.99 and 1 per time window and
//! function), `rate` (completions per second by function and outcome) and
//! `stable-latency-cdf`. Fault periods are shaded in every plot over time,
//! in Jepsen's colours (partition sand, kill salmon, pause lavender).
//!
//! Drawing is pure (history in, SVG text out) through plotters' SVG backend,
//! which writes text as `<text>` elements: no font is needed to build or to
//! draw, the browser lays the text out. [`write_run_plots`] writes these and
//! the backlog plots into a run directory and reports the `:perf` checker's
//! result. The chart pieces shared with [`crate::backlog`] and
//! [`crate::frontier`] (legend, markers, fault shading, axis labels) live
//! here too.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::backlog::{self, BacklogCounts};
use super::checker::{analyze_elements, quantiles, Outcome};
use super::fault_periods::{fault_periods, FaultKind, FaultPeriod};
use super::history::{Event, EventType, Process};
use super::output::Logger;
use super::results::PerfResult;
use super::visual::pair_ops;

// ---------------------------------------------------------------------------
// Shared chart pieces

/// Why a plot could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotError(pub String);

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlotError {}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError(e.to_string())
    }
}

pub(crate) type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;
pub(crate) type Chart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Size of a plot over time, legend included (Jepsen's are 900 x 400).
pub(crate) const WIDTH: u32 = 1100;
pub(crate) const HEIGHT: u32 = 420;
/// The legend's column on the right of a plot.
pub(crate) const LEGEND_WIDTH: u32 = 200;
pub(crate) const FONT: &str = "sans-serif";

/// Draws into a fresh white SVG canvas of `size` and returns the SVG text.
pub(crate) fn svg<F>(size: (u32, u32), draw: F) -> Result<String, PlotError>
where
    F: FnOnce(&Area) -> Result<(), PlotError>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

/// Jepsen's outcome colours.
pub(crate) fn outcome_color(kind: EventType) -> RGBColor {
    match kind {
        EventType::Ok => RGBColor(0x81, 0xBF, 0xFC),
        EventType::Info | EventType::Invoke => RGBColor(0xFF, 0xA4, 0x00),
        EventType::Fail => RGBColor(0xFF, 0x1E, 0x90),
    }
}

/// Jepsen's nemesis colours (jepsen.nemesis.combined).
pub(crate) fn fault_color(kind: FaultKind) -> RGBAColor {
    let rgb = match kind {
        FaultKind::Partition => RGBColor(0xE9, 0xDC, 0xA0),
        FaultKind::Kill => RGBColor(0xE9, 0xA4, 0xA0),
        FaultKind::Pause => RGBColor(0xA0, 0xB1, 0xE9),
    };
    rgb.mix(0.6)
}

/// Jepsen's quantile colours: 1 red, 0.99 orange, 0.95 purple, 0.5 blue.
pub(crate) fn quantile_color(q: f64) -> RGBColor {
    match q {
        q if q >= 1.0 => RGBColor(0xD6, 0x1F, 0x1F),
        q if q >= 0.99 => RGBColor(0xFF, 0x8C, 0x00),
        q if q >= 0.95 => RGBColor(0x80, 0x00, 0x80),
        _ => RGBColor(0x1F, 0x4E, 0xD6),
    }
}

/// Distinct line colours for many series (links of a node, say).
pub(crate) fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(0x1F, 0x77, 0xB4),
        RGBColor(0xFF, 0x7F, 0x0E),
        RGBColor(0x2C, 0xA0, 0x2C),
        RGBColor(0xD6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xBD),
        RGBColor(0x8C, 0x56, 0x4B),
        RGBColor(0xE3, 0x77, 0xC2),
        RGBColor(0x7F, 0x7F, 0x7F),
        RGBColor(0xBC, 0xBD, 0x22),
        RGBColor(0x17, 0xBE, 0xCF),
    ];
    COLORS[i % COLORS.len()]
}

/// Point shapes, one per function (broadcast, read, ...), as Jepsen's
/// point types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

impl Marker {
    pub(crate) fn for_index(i: usize) -> Marker {
        [
            Marker::Circle,
            Marker::Triangle,
            Marker::Square,
            Marker::Cross,
        ][i % 4]
    }
}

/// Draws `points` with `marker` into a chart.
pub(crate) fn draw_markers<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    points: &[(f64, f64)],
    marker: Marker,
    style: ShapeStyle,
) -> Result<(), PlotError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let at = points.iter().copied();
    match marker {
        Marker::Circle => {
            chart.draw_series(at.map(|p| Circle::new(p, 3, style)))?;
        }
        Marker::Triangle => {
            chart.draw_series(at.map(|p| TriangleMarker::new(p, 4, style)))?;
        }
        Marker::Square => {
            chart.draw_series(
                at.map(|p| EmptyElement::at(p) + Rectangle::new([(-3, -3), (3, 3)], style)),
            )?;
        }
        Marker::Cross => {
            chart.draw_series(at.map(|p| Cross::new(p, 3, style)))?;
        }
    }
    Ok(())
}

/// What a legend entry shows beside its label.
#[derive(Debug, Clone)]
pub(crate) enum Swatch {
    Point(Marker, RGBColor),
    Line {
        color: RGBColor,
        dashed: bool,
        marker: Option<Marker>,
        width: u32,
    },
    Fill(RGBAColor),
    /// Nothing: a row that continues the previous entry's text.
    Blank,
}

#[derive(Debug, Clone)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub swatch: Swatch,
}

impl LegendEntry {
    pub(crate) fn new(label: impl Into<String>, swatch: Swatch) -> LegendEntry {
        LegendEntry {
            label: label.into(),
            swatch,
        }
    }
}

pub(crate) fn line_swatch(color: RGBColor, dashed: bool, marker: Option<Marker>) -> Swatch {
    Swatch::Line {
        color,
        dashed,
        marker,
        width: 2,
    }
}

/// One legend entry per fault kind that occurs.
pub(crate) fn fault_legend(periods: &[FaultPeriod]) -> Vec<LegendEntry> {
    FaultKind::ALL
        .into_iter()
        .filter(|k| periods.iter().any(|p| p.kind == *k))
        .map(|k| LegendEntry::new(k.name(), Swatch::Fill(fault_color(k))))
        .collect()
}

/// How a legend's entries are laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LegendLayout {
    /// One entry per row, 20 px apart.
    Column,
    /// Side by side, each `width` px wide.
    Row { width: i32 },
}

/// Draws a legend starting at `origin` (the middle of the first entry's
/// left edge) in `area`'s pixels.
pub(crate) fn draw_legend(
    area: &Area,
    origin: (i32, i32),
    layout: LegendLayout,
    entries: &[LegendEntry],
) -> Result<(), PlotError> {
    for (i, entry) in entries.iter().enumerate() {
        let i = i as i32;
        let at = match layout {
            LegendLayout::Column => (origin.0, origin.1 + i * 20),
            LegendLayout::Row { width } => (origin.0 + i * width, origin.1),
        };
        draw_legend_entry(area, at, entry)?;
    }
    Ok(())
}

fn draw_legend_entry(
    area: &Area,
    (x, y): (i32, i32),
    entry: &LegendEntry,
) -> Result<(), PlotError> {
    let (x0, x1) = (x, x + 28);
    let mid = (x0 + x1) / 2;
    match &entry.swatch {
        Swatch::Point(marker, color) => draw_pixel_marker(area, (mid, y), *marker, color.filled())?,
        Swatch::Line {
            color,
            dashed,
            marker,
            width,
        } => {
            let style = color.stroke_width(*width);
            if *dashed {
                area.draw(&DashedPathElement::new(vec![(x0, y), (x1, y)], 5, 3, style))?;
            } else {
                area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))?;
            }
            if let Some(marker) = marker {
                draw_pixel_marker(area, (mid, y), *marker, color.filled())?;
            }
        }
        Swatch::Fill(color) => {
            area.draw(&Rectangle::new([(x0, y - 7), (x1, y + 7)], color.filled()))?;
        }
        Swatch::Blank => {}
    }
    let text = (FONT, 15)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    area.draw(&Text::new(entry.label.clone(), (x1 + 8, y), text))?;
    Ok(())
}

fn draw_pixel_marker(
    area: &Area,
    at: (i32, i32),
    marker: Marker,
    style: ShapeStyle,
) -> Result<(), PlotError> {
    match marker {
        Marker::Circle => area.draw(&Circle::new(at, 3, style))?,
        Marker::Triangle => area.draw(&TriangleMarker::new(at, 4, style))?,
        Marker::Square => area.draw(&Rectangle::new(
            [(at.0 - 3, at.1 - 3), (at.0 + 3, at.1 + 3)],
            style,
        ))?,
        Marker::Cross => area.draw(&Cross::new(at, 3, style))?,
    }
    Ok(())
}

/// Shades each fault period across the chart's full height.
pub(crate) fn shade_faults<Y>(
    chart: &mut Chart<'_, '_, Y>,
    periods: &[FaultPeriod],
) -> Result<(), PlotError>
where
    Y: Ranged<ValueType = f64>,
{
    let (x, y) = (chart.x_range(), chart.y_range());
    chart.draw_series(periods.iter().filter_map(|p| {
        let start = p.start_s.max(x.start);
        let end = p.end_s.unwrap_or(x.end).min(x.end);
        (start < end).then(|| {
            Rectangle::new(
                [(start, y.start), (end, y.end)],
                fault_color(p.kind).filled(),
            )
        })
    }))?;
    Ok(())
}

/// An axis label with as few decimals as its magnitude needs.
pub(crate) fn number_label(v: &f64) -> String {
    let a = v.abs();
    if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map_or(s.clone(), str::to_string)
    } else if a >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A log axis from the power of ten at or below `lo` to the one at or above
/// `hi` (both clamped to at least `floor`), widened by a hair so that
/// plotters' rounding still labels both ends.
pub(crate) fn log_bounds(lo: f64, hi: f64, floor: f64) -> Range<f64> {
    let lo = lo.max(floor);
    let hi = hi.max(lo * 1.01);
    let down = 10f64.powf(lo.log10().floor());
    let up = 10f64.powf(hi.log10().ceil()).max(down * 10.0);
    down * 0.999..up * 1.001
}

/// A window length from the 1-2-5 series giving about `windows` windows
/// over `span_s` seconds.
pub(crate) fn window_s(span_s: f64, windows: f64) -> f64 {
    let target = (span_s / windows).max(0.1);
    let mut base = 0.1;
    loop {
        for mult in [1.0, 2.0, 5.0] {
            if base * mult >= target - 1e-9 {
                return base * mult;
            }
        }
        base *= 10.0;
    }
}

/// The standard frame of a plot over time: a caption, a legend column on
/// the right, the plotting area on the left.
pub(crate) fn framed<'b>(
    root: &Area<'b>,
    caption: &str,
) -> Result<(Area<'b>, Area<'b>), PlotError> {
    let titled = root.titled(caption, (FONT, 20))?;
    let (plot, legend) = titled.split_horizontally(WIDTH - LEGEND_WIDTH);
    Ok((plot, legend))
}

pub(crate) fn build_chart<'a, 'b, Y>(
    area: &'a Area<'b>,
    x: Range<f64>,
    y: Y,
) -> Result<Chart<'a, 'b, Y::CoordDescType>, PlotError>
where
    Y: AsRangedCoord<Value = f64>,
{
    Ok(ChartBuilder::on(area)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?)
}

/// Axes, grid and labels for a chart whose x axis is history time.
pub(crate) fn draw_mesh<Y>(
    chart: &mut Chart<'_, '_, Y>,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), PlotError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    // About one label per 30 px of height, so small panels stay legible.
    let height = chart.plotting_area().dim_in_pixel().1;
    chart
        .configure_mesh()
        .y_labels((height / 30).clamp(3, 10) as usize)
        .max_light_lines(4)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&number_label)
        .y_label_formatter(&number_label)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
        .draw()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The data the perf plots read

/// A completed client operation.
#[derive(Debug, Clone, PartialEq)]
struct CompletedOp<'a> {
    f: &'a str,
    outcome: EventType,
    invoked_s: f64,
    completed_s: f64,
    latency_ms: f64,
}

/// Client operations with a completion, in invocation order (an operation
/// still open at the end has no latency, as in Jepsen).
fn completed_ops(history: &[Event]) -> Vec<CompletedOp<'_>> {
    let (ops, _) = pair_ops(history, usize::MAX);
    ops.iter()
        .filter(|op| op.invoke.process != Process::Nemesis)
        .filter_map(|op| {
            let done = op.complete?;
            Some(CompletedOp {
                f: &op.invoke.f,
                outcome: done.kind,
                invoked_s: op.invoke.time_ns as f64 / 1e9,
                completed_s: done.time_ns as f64 / 1e9,
                latency_ms: done.time_ns.saturating_sub(op.invoke.time_ns) as f64 / 1e6,
            })
        })
        .collect()
}

/// The functions in the order Jepsen sorts them.
fn functions<'a>(ops: &[CompletedOp<'a>]) -> Vec<&'a str> {
    let mut fs: Vec<&str> = ops.iter().map(|op| op.f).collect();
    fs.sort_unstable();
    fs.dedup();
    fs
}

const OUTCOMES: [EventType; 3] = [EventType::Ok, EventType::Info, EventType::Fail];

/// Points per (index of the function in [`functions`], outcome).
type OutcomeSeries = Vec<(usize, EventType, Vec<(f64, f64)>)>;

/// Points per (index of the function in [`functions`], quantile).
type QuantileSeries = Vec<(usize, f64, Vec<(f64, f64)>)>;

/// The x axis of every plot over time: test time 0 to a little past the
/// last event or fault change.
pub(crate) fn time_span_s(history: &[Event], periods: &[FaultPeriod]) -> f64 {
    let last_event = history.iter().map(|e| e.time_ns).max().unwrap_or(0) as f64 / 1e9;
    let last_change = periods
        .iter()
        .map(|p| p.end_s.unwrap_or(p.start_s))
        .fold(0.0, f64::max);
    last_event.max(last_change).max(1.0) * 1.02
}

/// A series keeps at most this many points in latency-raw; a browser draws
/// that many circles without trouble, and 60 000 would make a 6 MB file.
const MAX_POINTS_PER_SERIES: usize = 10_000;

// ---------------------------------------------------------------------------
// The plots

/// latency-raw.svg: every completed operation's latency at its invocation
/// time, log scale, by function (shape) and outcome (colour); the series
/// with fewer points are drawn on top.
pub fn latency_raw_svg(history: &[Event], periods: &[FaultPeriod]) -> Result<String, PlotError> {
    let ops = completed_ops(history);
    let fs = functions(&ops);
    let mut series: OutcomeSeries = Vec::new();
    for (i, f) in fs.iter().enumerate() {
        for outcome in OUTCOMES {
            let points: Vec<(f64, f64)> = ops
                .iter()
                .filter(|op| op.f == *f && op.outcome == outcome)
                .map(|op| (op.invoked_s, op.latency_ms.max(LATENCY_FLOOR_MS)))
                .collect();
            if !points.is_empty() {
                series.push((i, outcome, points));
            }
        }
    }
    let thinned = series
        .iter()
        .any(|(_, _, p)| p.len() > MAX_POINTS_PER_SERIES);
    let lo = ops
        .iter()
        .map(|op| op.latency_ms)
        .fold(f64::INFINITY, f64::min);
    let hi = ops.iter().map(|op| op.latency_ms).fold(0.0, f64::max);
    let y = if ops.is_empty() {
        1.0..1000.0
    } else {
        log_bounds(lo, hi, LATENCY_FLOOR_MS)
    };
    let x_end = time_span_s(history, periods);
    let mut legend: Vec<LegendEntry> = series
        .iter()
        .map(|(i, outcome, _)| {
            LegendEntry::new(
                format!("{} {}", fs[*i], outcome.name()),
                Swatch::Point(Marker::for_index(*i), outcome_color(*outcome)),
            )
        })
        .collect();
    legend.extend(fault_legend(periods));
    let caption = if thinned {
        format!("Latency of every operation (at most {MAX_POINTS_PER_SERIES} per series, evenly picked)")
    } else {
        "Latency of every operation".to_string()
    };
    svg((WIDTH, HEIGHT), |root| {
        let (plot, legend_area) = framed(root, &caption)?;
        let mut chart = build_chart(&plot, 0.0..x_end, y.log_scale())?;
        draw_mesh(&mut chart, "time (s)", "latency (ms, log scale)")?;
        shade_faults(&mut chart, periods)?;
        series.sort_by_key(|(_, _, points)| std::cmp::Reverse(points.len()));
        for (i, outcome, points) in &series {
            let stride = points.len().div_ceil(MAX_POINTS_PER_SERIES);
            let kept: Vec<(f64, f64)> = points.iter().step_by(stride).copied().collect();
            let color = outcome_color(*outcome);
            draw_markers(
                &mut chart,
                &kept,
                Marker::for_index(*i),
                color.mix(0.8).filled(),
            )?;
        }
        if ops.is_empty() {
            note(&plot, "no completed operations")?;
        }
        draw_legend(&legend_area, (6, 40), LegendLayout::Column, &legend)
    })
}

/// Latencies below this are drawn at it: a log axis has no 0.
const LATENCY_FLOOR_MS: f64 = 0.01;

/// Jepsen's quantiles.
const QUANTILES: [f64; 4] = [0.5, 0.95, 0.99, 1.0];

/// The value at quantile `q` of sorted samples, indexed as Jepsen does.
fn quantile_of(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    sorted[((n as f64 * q).floor() as usize).min(n - 1)]
}

/// latency-quantiles.svg: per function, the latency quantiles of the
/// operations invoked in each time window, at the window's middle.
pub fn latency_quantiles_svg(
    history: &[Event],
    periods: &[FaultPeriod],
) -> Result<String, PlotError> {
    let ops = completed_ops(history);
    let fs = functions(&ops);
    let x_end = time_span_s(history, periods);
    let dt = window_s(x_end, 20.0);
    let mut lines: QuantileSeries = Vec::new();
    for (i, f) in fs.iter().enumerate() {
        let mut windows: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for op in ops.iter().filter(|op| op.f == *f) {
            let w = (op.invoked_s / dt).floor() as u64;
            windows.entry(w).or_default().push(op.latency_ms);
        }
        for sorted in windows.values_mut() {
            sorted.sort_by(f64::total_cmp);
        }
        for q in QUANTILES {
            let points = windows
                .iter()
                .map(|(w, sorted)| {
                    let mid = (*w as f64 + 0.5) * dt;
                    (mid, quantile_of(sorted, q).max(LATENCY_FLOOR_MS))
                })
                .collect();
            lines.push((i, q, points));
        }
    }
    let lo = ops
        .iter()
        .map(|op| op.latency_ms)
        .fold(f64::INFINITY, f64::min);
    let hi = ops.iter().map(|op| op.latency_ms).fold(0.0, f64::max);
    let y = if ops.is_empty() {
        1.0..1000.0
    } else {
        log_bounds(lo, hi, LATENCY_FLOOR_MS)
    };
    let mut legend: Vec<LegendEntry> = lines
        .iter()
        .map(|(i, q, _)| {
            LegendEntry::new(
                format!("{} {q}", fs[*i]),
                line_swatch(quantile_color(*q), *i % 2 == 1, Some(Marker::for_index(*i))),
            )
        })
        .collect();
    legend.extend(fault_legend(periods));
    let caption = format!("Latency quantiles per {} s window", number_label(&dt));
    svg((WIDTH, HEIGHT), |root| {
        let (plot, legend_area) = framed(root, &caption)?;
        let mut chart = build_chart(&plot, 0.0..x_end, y.log_scale())?;
        draw_mesh(&mut chart, "time (s)", "latency (ms, log scale)")?;
        shade_faults(&mut chart, periods)?;
        for (i, q, points) in &lines {
            let color = quantile_color(*q);
            draw_line(&mut chart, points, color.stroke_width(2), *i % 2 == 1)?;
            draw_markers(&mut chart, points, Marker::for_index(*i), color.filled())?;
        }
        if ops.is_empty() {
            note(&plot, "no completed operations")?;
        }
        draw_legend(&legend_area, (6, 40), LegendLayout::Column, &legend)
    })
}

/// A polyline, dashed or solid.
pub(crate) fn draw_line<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    points: &[(f64, f64)],
    style: ShapeStyle,
    dashed: bool,
) -> Result<(), PlotError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if dashed {
        chart.draw_series(DashedLineSeries::new(points.iter().copied(), 6, 4, style))?;
    } else {
        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
    }
    Ok(())
}

/// Per function completions per second in each window of `dt` seconds from
/// 0 to `x_end`, at the windows' middles.
fn rate_lines(ops: &[CompletedOp], fs: &[&str], dt: f64, x_end: f64) -> OutcomeSeries {
    let windows = ((x_end / dt).ceil() as usize).max(1);
    let mut lines = Vec::new();
    for (i, f) in fs.iter().enumerate() {
        for outcome in OUTCOMES {
            let mut counts = vec![0u64; windows];
            let mut any = false;
            for op in ops.iter().filter(|op| op.f == *f && op.outcome == outcome) {
                let w = ((op.completed_s / dt).floor() as usize).min(windows - 1);
                counts[w] += 1;
                any = true;
            }
            if any {
                let points = counts
                    .iter()
                    .enumerate()
                    .map(|(w, &n)| ((w as f64 + 0.5) * dt, n as f64 / dt))
                    .collect();
                lines.push((i, outcome, points));
            }
        }
    }
    lines
}

/// rate.svg: completions per second by function and outcome, per time
/// window of their completion, every window from 0 to the end included.
pub fn rate_svg(history: &[Event], periods: &[FaultPeriod]) -> Result<String, PlotError> {
    let ops = completed_ops(history);
    let fs = functions(&ops);
    let x_end = time_span_s(history, periods);
    let dt = window_s(x_end, 30.0);
    let lines = rate_lines(&ops, &fs, dt, x_end);
    let top = lines
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|&(_, r)| r))
        .fold(1.0, f64::max)
        * 1.1;
    let mut legend: Vec<LegendEntry> = lines
        .iter()
        .map(|(i, outcome, _)| {
            LegendEntry::new(
                format!("{} {}", fs[*i], outcome.name()),
                line_swatch(outcome_color(*outcome), false, Some(Marker::for_index(*i))),
            )
        })
        .collect();
    legend.extend(fault_legend(periods));
    let caption = format!("Throughput per {} s window", number_label(&dt));
    svg((WIDTH, HEIGHT), |root| {
        let (plot, legend_area) = framed(root, &caption)?;
        let mut chart = build_chart(&plot, 0.0..x_end, 0.0..top)?;
        draw_mesh(&mut chart, "time (s)", "completions per second")?;
        shade_faults(&mut chart, periods)?;
        for (i, outcome, points) in &lines {
            let color = outcome_color(*outcome);
            draw_line(&mut chart, points, color.stroke_width(2), false)?;
            draw_markers(&mut chart, points, Marker::for_index(*i), color.filled())?;
        }
        if ops.is_empty() {
            note(&plot, "no completed operations")?;
        }
        draw_legend(&legend_area, (6, 40), LegendLayout::Column, &legend)
    })
}

/// stable-latency-cdf.svg: the fraction of stable elements whose stable
/// latency (spec 3.3) is at most x, with the quantiles results.edn reports.
pub fn stable_latency_cdf_svg(history: &[Event]) -> Result<String, PlotError> {
    let mut latencies: Vec<u64> = analyze_elements(history)
        .into_iter()
        .filter(|e| e.outcome == Outcome::Stable)
        .filter_map(|e| e.latency_ms)
        .collect();
    latencies.sort_unstable();
    let n = latencies.len();
    let summary = quantiles(&latencies);
    let x_end = latencies
        .last()
        .map_or(1.0, |&max| (max as f64 * 1.05).max(1.0));
    // A step function: flat until each latency, then up by 1/n.
    let mut steps = vec![(0.0, 0.0)];
    for (i, &l) in latencies.iter().enumerate() {
        steps.push((l as f64, i as f64 / n as f64));
        steps.push((l as f64, (i + 1) as f64 / n as f64));
    }
    steps.push((x_end, if n > 0 { 1.0 } else { 0.0 }));
    let marks: Vec<(f64, u64)> = summary
        .map(|q| q.points().into_iter().filter(|(p, _)| *p > 0.0).collect())
        .unwrap_or_default();
    let mut legend = vec![LegendEntry::new(
        format!("{n} stable elements"),
        line_swatch(BLACK, false, None),
    )];
    legend.extend(marks.iter().map(|(p, v)| {
        LegendEntry::new(
            format!(
                "{} {v} ms",
                if *p >= 1.0 {
                    "max".to_string()
                } else {
                    format!("p{}", p * 100.0)
                }
            ),
            line_swatch(quantile_color(*p), true, None),
        )
    }));
    svg((WIDTH, HEIGHT), |root| {
        let (plot, legend_area) = framed(root, "Stable latency: cumulative distribution")?;
        let mut chart = build_chart(&plot, 0.0..x_end, 0.0..1.0)?;
        draw_mesh(&mut chart, "stable latency (ms)", "fraction of elements")?;
        for (p, v) in &marks {
            let x = *v as f64;
            draw_line(
                &mut chart,
                &[(x, 0.0), (x, 1.0)],
                quantile_color(*p).stroke_width(1),
                true,
            )?;
        }
        draw_line(&mut chart, &steps, BLACK.stroke_width(2), false)?;
        if n == 0 {
            note(&plot, "no stable elements")?;
        }
        draw_legend(&legend_area, (6, 40), LegendLayout::Column, &legend)
    })
}

/// A grey note in the middle of an empty plot.
pub(crate) fn note(area: &Area, text: &str) -> Result<(), PlotError> {
    let (w, h) = area.dim_in_pixel();
    let style = (FONT, 18)
        .into_font()
        .color(&RGBColor(0x88, 0x88, 0x88))
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(
        text.to_string(),
        (w as i32 / 2, h as i32 / 2),
        style,
    ))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Writing them

/// What drawing a run's plots reported.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlots {
    /// The `:perf` checker's result.
    pub perf: PerfResult,
    pub backlog: BacklogCounts,
}

impl RunPlots {
    /// Entries for results.edn's `:harness` map.
    pub fn notes(&self) -> Vec<(String, String)> {
        vec![
            ("backlog-lines".into(), self.backlog.samples.to_string()),
            (
                "backlog-unparsed-lines".into(),
                self.backlog.unparsed.to_string(),
            ),
        ]
    }
}

fn write_svg(run_dir: &Path, name: &str, drawn: Result<String, PlotError>) -> Result<(), String> {
    let svg = drawn.map_err(|e| format!("cannot draw {name}: {e}"))?;
    std::fs::write(run_dir.join(name), svg).map_err(|e| format!("cannot write {name}: {e}"))
}

/// Writes latency-raw.svg, latency-quantiles.svg, rate.svg,
/// stable-latency-cdf.svg and the backlog plots into `run_dir` (whose
/// node-logs/ must be complete). `t0` is the history's time 0, which maps
/// the node logs' wall-clock stamps onto the history's axis. Failures are
/// logged as warnings and reported, never fatal.
pub fn write_run_plots(
    run_dir: &Path,
    history: &[Event],
    t0: Instant,
    logger: &Logger,
) -> RunPlots {
    let periods = fault_periods(history);
    let warn = |r: Result<(), String>| {
        if let Err(reason) = &r {
            logger.warn(reason);
        }
        r
    };
    let latency_graph = warn(write_svg(
        run_dir,
        "latency-raw.svg",
        latency_raw_svg(history, &periods),
    ))
    .and(warn(write_svg(
        run_dir,
        "latency-quantiles.svg",
        latency_quantiles_svg(history, &periods),
    )));
    let rate_graph = warn(write_svg(run_dir, "rate.svg", rate_svg(history, &periods)));
    let _ = warn(write_svg(
        run_dir,
        "stable-latency-cdf.svg",
        stable_latency_cdf_svg(history),
    ));
    let t0_unix_ms = unix_ms_of(t0);
    let backlog = backlog::write_plots(
        run_dir,
        t0_unix_ms,
        &periods,
        time_span_s(history, &periods),
        logger,
    );
    RunPlots {
        perf: PerfResult {
            latency_graph,
            rate_graph,
        },
        backlog,
    }
}

/// The wall-clock time of an `Instant`, in ms since the Unix epoch.
fn unix_ms_of(at: Instant) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    now - at.elapsed().as_millis() as i64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fault_periods::tests::history;
    use serde_json::{json, Value};

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    /// Whether the SVG has a text element saying exactly `label`.
    pub(crate) fn has_text(svg: &str, label: &str) -> bool {
        svg.contains(&format!(">\n{label}\n</text>"))
    }

    /// Broadcasts and reads every 100 ms for 10 s, a partition from 2 to 4 s,
    /// a kill from 5 to 7 s and a pause from 6 to 8 s.
    fn busy_history() -> Vec<Event> {
        let mut steps: Vec<(f64, Option<u64>, &str)> = Vec::new();
        for k in 0..100 {
            let f = if k % 2 == 0 { "broadcast" } else { "read" };
            steps.push((k as f64 * 0.1, Some(k % 5), f));
        }
        for (at, f) in [
            (2.0, "start-partition"),
            (4.0, "stop-partition"),
            (5.0, "start-kill"),
            (6.0, "start-pause"),
            (7.0, "stop-kill"),
            (8.0, "stop-pause"),
        ] {
            steps.push((at, None, f));
        }
        let mut h = history(&steps);
        h.sort_by_key(|e| e.time_ns);
        for (i, e) in h.iter_mut().enumerate() {
            e.index = i as u64;
        }
        h
    }

    #[test]
    fn latency_raw_draws_one_marker_per_operation_and_shades_every_fault() {
        let h = busy_history();
        let periods = fault_periods(&h);
        let svg = latency_raw_svg(&h, &periods).unwrap();
        // 50 broadcasts as circles (plus the legend's), 50 reads as
        // triangles (polygons, plus the legend's).
        assert_eq!(count(&svg, "<circle"), 51, "{svg}");
        assert_eq!(count(&svg, "<polygon"), 51);
        for (kind, legend) in [
            ("E9DCA0", "partition"),
            ("E9A4A0", "kill"),
            ("A0B1E9", "pause"),
        ] {
            assert!(svg.contains(&format!("fill=\"#{kind}\"")), "{kind}");
            assert!(has_text(&svg, legend), "{legend}");
        }
        assert!(has_text(&svg, "broadcast ok"));
        assert!(has_text(&svg, "read ok"));
        assert!(has_text(&svg, "latency (ms, log scale)"));
    }

    #[test]
    fn quantile_lines_and_rates_cover_each_function() {
        let h = busy_history();
        let periods = fault_periods(&h);
        let svg = latency_quantiles_svg(&h, &periods).unwrap();
        for label in ["broadcast 0.5", "broadcast 1", "read 0.95", "read 0.99"] {
            assert!(has_text(&svg, label), "{label}");
        }
        let svg = rate_svg(&h, &periods).unwrap();
        assert!(has_text(&svg, "broadcast ok") && has_text(&svg, "read ok"));
        assert!(has_text(&svg, "completions per second"));
    }

    #[test]
    fn rates_count_every_completion_once() {
        let h = busy_history();
        let ops = completed_ops(&h);
        assert_eq!(ops.len(), 100);
        assert!(ops.iter().all(|op| (op.latency_ms - 10.0).abs() < 1e-6));
        let fs = functions(&ops);
        assert_eq!(fs, ["broadcast", "read"]);
        let lines = rate_lines(&ops, &fs, 0.5, 10.2);
        assert_eq!(lines.len(), 2);
        for (_, outcome, points) in &lines {
            assert_eq!(*outcome, EventType::Ok);
            assert_eq!(points.len(), 21);
            let completions: f64 = points.iter().map(|(_, rate)| rate * 0.5).sum();
            assert!((completions - 50.0).abs() < 1e-9, "{completions}");
        }
        // Between 2.0 and 2.5 s, broadcasts complete at 2.01, 2.21 and 2.41 s
        // and reads at 2.11 and 2.31 s.
        assert_eq!(lines[0].2[4], (2.25, 6.0));
        assert_eq!(lines[1].2[4], (2.25, 4.0));
    }

    #[test]
    fn empty_histories_still_draw() {
        for svg in [
            latency_raw_svg(&[], &[]),
            latency_quantiles_svg(&[], &[]),
            rate_svg(&[], &[]),
        ] {
            assert!(svg.unwrap().contains("no completed operations"));
        }
        assert!(stable_latency_cdf_svg(&[])
            .unwrap()
            .contains("no stable elements"));
    }

    #[test]
    fn cdf_marks_the_quantiles_of_results_edn() {
        // Value k is acknowledged at k s; the read invoked k ms later misses
        // it, the one 100 ms later sees it: stable latency k ms (spec 3.3).
        let mut h = Vec::new();
        let mut push = |ms: u64, kind, f: &str, value: Value| {
            let index = h.len() as u64;
            h.push(Event::new(
                index,
                ms * 1_000_000,
                kind,
                Process::Client(0),
                f,
                value,
            ));
        };
        for k in 0..20u64 {
            let seen: Vec<u64> = (0..k).collect();
            let at = k * 1000;
            push(at, EventType::Invoke, "broadcast", json!(k));
            push(at, EventType::Ok, "broadcast", json!(k));
            push(at + k, EventType::Invoke, "read", Value::Null);
            push(at + k + 1, EventType::Ok, "read", json!(seen));
            push(at + 100, EventType::Invoke, "read", Value::Null);
            push(
                at + 101,
                EventType::Ok,
                "read",
                json!((0..=k).collect::<Vec<_>>()),
            );
        }
        let svg = stable_latency_cdf_svg(&h).unwrap();
        assert!(has_text(&svg, "20 stable elements"), "{svg}");
        for label in ["p50 10 ms", "p95 19 ms", "p99 19 ms", "max 19 ms"] {
            assert!(has_text(&svg, label), "{label}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(window_s(30.0, 30.0), 1.0);
        assert_eq!(window_s(61.2, 30.0), 5.0);
        assert_eq!(window_s(0.5, 30.0), 0.1);
        let near = |r: Range<f64>, lo: f64, hi: f64| {
            assert!(
                (r.start / lo - 0.999).abs() < 1e-9 && (r.end / hi - 1.001).abs() < 1e-9,
                "{r:?}"
            );
        };
        near(log_bounds(0.3, 412.0, 0.01), 0.1, 1000.0);
        near(log_bounds(0.0, 0.0, 0.01), 0.01, 0.1);
        assert_eq!(number_label(&1000.0), "1000");
        assert_eq!(number_label(&2.0), "2");
        assert_eq!(number_label(&2.5), "2.5");
        assert_eq!(number_label(&0.01), "0.01");
        assert_eq!(quantile_of(&[1.0, 2.0, 3.0, 4.0], 0.5), 3.0);
        assert_eq!(quantile_of(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
    }
}
