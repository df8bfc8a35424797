//! The sweep's frontier: servers msgs-per-op against stable-latency median
//! and max, for our sweep cells and node profiles, the reference write-up's
//! table and the published anchors, with the challenges' latency limits, as
//! one SVG. Its input is the markdown `./maelstrom.sh sweep` writes
//! (docs/sweep.md), read back by [`read_sweep_markdown`], so the picture
//! can be redrawn without rerunning the sweep.

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plots::{
    draw_legend, draw_line, draw_markers, line_swatch, svg, LegendEntry, LegendLayout, Marker,
    PlotError, Swatch, FONT,
};

/// Where a point comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Our node on the write-up's tree overlay and batch interval.
    SweepCell,
    /// The reference write-up's table (it publishes p99, not max).
    WriteUp,
    /// Our node with one of its profiles (3d, 3e, fast).
    Profile,
    /// Published figures the README compares against.
    Published,
}

/// One configuration's cost and latencies.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierPoint {
    pub source: Source,
    pub label: String,
    /// For sweep cells and write-up rows: (interval ms, branching).
    pub cell: Option<(u32, u32)>,
    pub msgs_per_op: f64,
    pub median_ms: f64,
    /// The maximum; the write-up's p99 for its rows.
    pub max_ms: f64,
}

/// The published anchors of the README: the fastest published result and
/// Maelstrom's own `total` flood (docs/fidelity.md), median / max.
pub fn published_anchors() -> Vec<FrontierPoint> {
    let anchor = |label: &str, msgs_per_op, median_ms, max_ms| FrontierPoint {
        source: Source::Published,
        label: label.to_string(),
        cell: None,
        msgs_per_op,
        median_ms,
        max_ms,
    };
    vec![
        anchor("fastest published", 14.73, 78.0, 102.0),
        anchor("Maelstrom total flood", 290.0, 77.0, 97.0),
    ]
}

/// The markdown tables of `text`: header cells and rows of cells.
fn tables(text: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < lines.len() {
        let is_row = |l: &str| l.trim_start().starts_with('|');
        let separator = lines[i + 1].trim_start();
        if is_row(lines[i]) && (separator.starts_with("|--") || separator.starts_with("|:-")) {
            let header = cells(lines[i]);
            let mut rows = Vec::new();
            i += 2;
            while i < lines.len() && is_row(lines[i]) {
                rows.push(cells(lines[i]));
                i += 1;
            }
            out.push((header, rows));
        } else {
            i += 1;
        }
    }
    out
}

/// Reads the sweep table (our cells beside the write-up's) and the profile
/// table out of docs/sweep.md. Cells that were not run (`-`) are skipped.
pub fn read_sweep_markdown(text: &str) -> Result<Vec<FrontierPoint>, String> {
    let mut points = Vec::new();
    let mut found_sweep = false;
    for (header, rows) in tables(text) {
        let column = |name: &str| header.iter().position(|h| h == name);
        let number =
            |row: &[String], name: &str| -> Option<f64> { row.get(column(name)?)?.parse().ok() };
        if let (Some(_), Some(_)) = (column("interval (ms)"), column("branch")) {
            found_sweep = true;
            for row in &rows {
                let interval = number(row, "interval (ms)").ok_or("a row without an interval")?;
                let branch = number(row, "branch").ok_or("a row without a branch")?;
                let cell = Some((interval as u32, branch as u32));
                let label = format!("{interval} ms, branch {branch}");
                let ours = (
                    number(row, "ours msgs/op"),
                    number(row, "ours p50"),
                    number(row, "ours max"),
                );
                if let (Some(msgs_per_op), Some(median_ms), Some(max_ms)) = ours {
                    points.push(FrontierPoint {
                        source: Source::SweepCell,
                        label: label.clone(),
                        cell,
                        msgs_per_op,
                        median_ms,
                        max_ms,
                    });
                }
                let theirs = (
                    number(row, "write-up msgs/op"),
                    number(row, "write-up p50"),
                    number(row, "write-up p99"),
                );
                if let (Some(msgs_per_op), Some(median_ms), Some(max_ms)) = theirs {
                    points.push(FrontierPoint {
                        source: Source::WriteUp,
                        label,
                        cell,
                        msgs_per_op,
                        median_ms,
                        max_ms,
                    });
                }
            }
        } else if column("profile").is_some() {
            for row in &rows {
                let figures = (
                    number(row, "msgs/op"),
                    number(row, "median"),
                    number(row, "max"),
                );
                if let (Some(msgs_per_op), Some(median_ms), Some(max_ms)) = figures {
                    points.push(FrontierPoint {
                        source: Source::Profile,
                        label: column("profile")
                            .and_then(|i| row.get(i))
                            .cloned()
                            .unwrap_or_default(),
                        cell: None,
                        msgs_per_op,
                        median_ms,
                        max_ms,
                    });
                }
            }
        }
    }
    if !found_sweep {
        return Err("no sweep table (a header with `interval (ms)` and `branch`)".into());
    }
    Ok(points)
}

/// Shades for the batch intervals, lightest for the shortest: blues for our
/// cells, oranges for the write-up's.
const OURS: [RGBColor; 4] = [
    RGBColor(0x9E, 0xCA, 0xE1),
    RGBColor(0x6B, 0xAE, 0xD6),
    RGBColor(0x31, 0x82, 0xBD),
    RGBColor(0x08, 0x51, 0x9C),
];
const WRITE_UP: [RGBColor; 4] = [
    RGBColor(0xFD, 0xAE, 0x6B),
    RGBColor(0xFD, 0x8D, 0x3C),
    RGBColor(0xE6, 0x55, 0x0D),
    RGBColor(0xA6, 0x36, 0x03),
];
const PROFILE: RGBColor = RGBColor(0x6A, 0x3D, 0x9A);
const LIMIT: RGBColor = RGBColor(0x2C, 0xA0, 0x2C);

/// The challenges' latency limits (median, max) in ms.
const LIMITS: [(&str, f64, f64); 2] = [("3d", 400.0, 600.0), ("3e", 1000.0, 2000.0)];

/// One interval's cells by branching: (msgs/op, latency).
type Curve = BTreeMap<u32, (f64, f64)>;

const PANEL_WIDTH: u32 = 560;
const LEGEND_WIDTH: u32 = 260;
const HEIGHT: u32 = 600;

/// The frontier picture: msgs/op (log) against median (left) and max
/// (right) latency (log). Sweep cells of one interval are joined in order
/// of branching, our profiles and the published anchors are labelled, and
/// the challenges' limits are dashed lines.
pub fn frontier_svg(points: &[FrontierPoint]) -> Result<String, PlotError> {
    let x_lo = points
        .iter()
        .map(|p| p.msgs_per_op)
        .fold(f64::INFINITY, f64::min);
    let x_hi = points.iter().map(|p| p.msgs_per_op).fold(1.0, f64::max);
    let y_lo = points
        .iter()
        .map(|p| p.median_ms)
        .fold(f64::INFINITY, f64::min);
    let y_hi = points.iter().map(|p| p.max_ms).fold(1.0, f64::max);
    // Room on the left and right of the outermost points for their labels.
    let x = x_lo / 3.0..x_hi * 6.0;
    let y = y_lo / 1.6..y_hi * 1.6;
    let mut intervals: Vec<u32> = points
        .iter()
        .filter_map(|p| p.cell)
        .map(|(i, _)| i)
        .collect();
    intervals.sort_unstable();
    intervals.dedup();
    let shade = |shades: &[RGBColor; 4], interval: u32| {
        shades[intervals.iter().position(|&i| i == interval).unwrap_or(0) % shades.len()]
    };
    let mut legend = vec![LegendEntry::new("ours, tree overlay:", Swatch::Blank)];
    for &interval in &intervals {
        legend.push(LegendEntry::new(
            format!("interval {interval} ms"),
            line_swatch(shade(&OURS, interval), false, Some(Marker::Circle)),
        ));
    }
    legend.push(LegendEntry::new("write-up's table (p99):", Swatch::Blank));
    for &interval in &intervals {
        legend.push(LegendEntry::new(
            format!("interval {interval} ms"),
            line_swatch(shade(&WRITE_UP, interval), true, Some(Marker::Triangle)),
        ));
    }
    legend.extend([
        LegendEntry::new("lines: branch 1 (top)", Swatch::Blank),
        LegendEntry::new("to 16 (bottom)", Swatch::Blank),
        LegendEntry::new("ours: profile", Swatch::Point(Marker::Square, PROFILE)),
        LegendEntry::new("published anchor", Swatch::Point(Marker::Cross, BLACK)),
        LegendEntry::new("challenge limit", line_swatch(LIMIT, true, None)),
    ]);
    let width = 2 * PANEL_WIDTH + LEGEND_WIDTH;
    svg((width, HEIGHT), |root| {
        let titled = root.titled(
            "Messages per operation against stable latency (25 nodes, latency 100 ms, rate 100)",
            (FONT, 20),
        )?;
        let (panels, legend_area) = titled.split_horizontally(2 * PANEL_WIDTH);
        let (left, right) = panels.split_horizontally(PANEL_WIDTH);
        for (area, max) in [(&left, false), (&right, true)] {
            let latency = |p: &FrontierPoint| if max { p.max_ms } else { p.median_ms };
            let mut chart = ChartBuilder::on(area)
                .caption(if max { "maximum" } else { "median" }, (FONT, 17))
                .margin(10)
                .margin_right(20)
                .x_label_area_size(44)
                .y_label_area_size(64)
                .build_cartesian_2d(x.clone().log_scale(), y.clone().log_scale())?;
            draw_mesh_log(
                &mut chart,
                if max {
                    "max latency (ms)"
                } else {
                    "median latency (ms)"
                },
            )?;
            for (name, median, max_limit) in LIMITS {
                let at = if max { max_limit } else { median };
                chart.draw_series(DashedLineSeries::new(
                    [(x.start, at), (x.end, at)],
                    6,
                    4,
                    LIMIT.stroke_width(1),
                ))?;
                label(
                    &mut chart,
                    (x.end, at),
                    &format!("{name} limit"),
                    LIMIT,
                    HPos::Right,
                    (-4, -9),
                )?;
            }
            for (source, shades, marker, dashed) in [
                (Source::WriteUp, &WRITE_UP, Marker::Triangle, true),
                (Source::SweepCell, &OURS, Marker::Circle, false),
            ] {
                let mut by_interval: BTreeMap<u32, Curve> = BTreeMap::new();
                for p in points.iter().filter(|p| p.source == source) {
                    if let Some((interval, branch)) = p.cell {
                        by_interval
                            .entry(interval)
                            .or_default()
                            .insert(branch, (p.msgs_per_op, latency(p)));
                    }
                }
                for (interval, curve) in by_interval {
                    let line: Vec<(f64, f64)> = curve.into_values().collect();
                    let color = shade(shades, interval);
                    draw_line(&mut chart, &line, color.stroke_width(2), dashed)?;
                    draw_markers(&mut chart, &line, marker, color.filled())?;
                }
            }
            // Profiles named on their left, anchors above: the fast
            // profile sits right beside the fastest published result.
            for p in points.iter().filter(|p| p.source == Source::Profile) {
                let at = (p.msgs_per_op, latency(p));
                draw_markers(&mut chart, &[at], Marker::Square, PROFILE.filled())?;
                label(&mut chart, at, &p.label, PROFILE, HPos::Right, (-8, 0))?;
            }
            for p in points.iter().filter(|p| p.source == Source::Published) {
                let at = (p.msgs_per_op, latency(p));
                draw_markers(&mut chart, &[at], Marker::Cross, BLACK.stroke_width(2))?;
                label(&mut chart, at, &p.label, BLACK, HPos::Center, (0, -13))?;
            }
        }
        draw_legend(&legend_area, (10, 60), LegendLayout::Column, &legend)
    })
}

type LogChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::combinators::LogCoord<f64>,
        plotters::coord::combinators::LogCoord<f64>,
    >,
>;

fn draw_mesh_log(chart: &mut LogChart, y_desc: &str) -> Result<(), PlotError> {
    chart
        .configure_mesh()
        .x_desc("servers msgs-per-op (log scale)")
        .y_desc(format!("{y_desc}, log scale"))
        .x_label_formatter(&super::plots::number_label)
        .y_label_formatter(&super::plots::number_label)
        .axis_desc_style((FONT, 15))
        .label_style((FONT, 13))
        .light_line_style(RGBColor(0xF2, 0xF2, 0xF2))
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
        .draw()?;
    Ok(())
}

/// A text label `offset` pixels from a data point.
fn label(
    chart: &mut LogChart,
    at: (f64, f64),
    text: &str,
    color: RGBColor,
    h: HPos,
    offset: (i32, i32),
) -> Result<(), PlotError> {
    let style = (FONT, 13)
        .into_font()
        .color(&color)
        .pos(Pos::new(h, VPos::Center));
    chart.draw_series(std::iter::once(
        EmptyElement::at(at) + Text::new(text.to_string(), offset, style),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: &str = "# Sweep\n\ntext\n\n\
| interval (ms) | branch | ours msgs/op | ours p50 | ours p95 | ours p99 | ours max | valid | write-up msgs/op | write-up p50 | write-up p95 | write-up p99 |\n\
|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n\
| 100 | 1 | 3.08 | 2424 | 3599 | 3894 | 4334 | 1/1 | 13.31 | 2281 | 3363 | 3646 |\n\
| 100 | 2 | - | - | - | - | - | not run | 10.70 | 867 | 1154 | 1214 |\n\
\n\
| profile | runs | valid | msgs/op | median | max |\n\
|---|---:|---|---:|---:|---:|\n\
| 3d | 1 | 1/1 | 0.953 | 286 | 537 |\n";

    #[test]
    fn the_sweep_markdown_reads_back() {
        let points = read_sweep_markdown(SWEEP).unwrap();
        type Row = (Source, Option<(u32, u32)>, f64, f64, f64);
        let summary: Vec<Row> = points
            .iter()
            .map(|p| (p.source, p.cell, p.msgs_per_op, p.median_ms, p.max_ms))
            .collect();
        assert_eq!(
            summary,
            [
                (Source::SweepCell, Some((100, 1)), 3.08, 2424.0, 4334.0),
                (Source::WriteUp, Some((100, 1)), 13.31, 2281.0, 3646.0),
                (Source::WriteUp, Some((100, 2)), 10.70, 867.0, 1214.0),
                (Source::Profile, None, 0.953, 286.0, 537.0),
            ]
        );
        assert_eq!(points[3].label, "3d");
        assert!(read_sweep_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n").is_err());
    }

    #[test]
    fn the_picture_labels_profiles_anchors_and_limits() {
        let mut points = read_sweep_markdown(SWEEP).unwrap();
        points.extend(published_anchors());
        let svg = frontier_svg(&points).unwrap();
        for text in [
            "3d",
            "fastest published",
            "Maelstrom total flood",
            "3e limit",
            "interval 100 ms",
            "median",
            "maximum",
        ] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "{text}");
        }
    }
}
