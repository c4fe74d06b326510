//! SVG plots of a topic, written by hand (no plotting crate, no fonts needed: text
//! is left to the viewer).
//!
//! - Cumulative squared error over the scored epochs, one line per worker, the
//!   network combined (thick black), naive (dashed grey) and the equal-weight average
//!   (dotted grey). A line only grows in the epochs its value exists: a worker that
//!   skipped epochs is marked `(missed N)` in the legend, since skipping also skips
//!   the error. So that one bad worker does not flatten the others, the y axis stops
//!   at [`CUMULATIVE_Y_CAP`] times the highest final value among the network
//!   combined, naive, the average and the lowest worker that missed at most 10% of
//!   the scored epochs; lines cut there are marked `(off scale)` in the legend.
//! - Inferer weights over the whole run (warm-up marked by a vertical line), one line
//!   per worker, smoothed with a trailing rolling mean over
//!   [`WEIGHT_SMOOTHING_WINDOW`] epochs (stated in the title). In an epoch with
//!   weights, a worker without one counts as weight 0; epochs without any weights
//!   are left out.
//!
//! Lines are thinned to at most [`MAX_POINTS`] points by keeping every k-th point
//! (and the last); the cumulative lines are monotone and the weights smoothed, so
//! nothing visible is lost.

use std::fmt::Write as _;

use super::ReportError;
use super::model::{Prepared, TopicRun};

/// Window of the trailing rolling mean applied to the weights plot, in epochs.
pub const WEIGHT_SMOOTHING_WINDOW: usize = 24;

/// The cumulative error plot's y axis stops at this multiple of its reference lines'
/// final values (see the module doc).
pub const CUMULATIVE_Y_CAP: f64 = 3.0;

/// Most points drawn per line.
pub const MAX_POINTS: usize = 2000;

const WIDTH: f64 = 1100.0;
const MIN_HEIGHT: f64 = 560.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const LEGEND_ROW: f64 = 18.0;
const PALETTE: [&str; 9] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf",
];
const DASHES: [Option<&str>; 3] = [None, Some("7 3"), Some("2 2")];

/// How a line is drawn.
#[derive(Debug, Clone)]
struct Style {
    color: String,
    width: f64,
    dash: Option<&'static str>,
}

impl Style {
    /// The i-th worker style: palette colours, then the same with dashes.
    fn worker(i: usize) -> Self {
        Self {
            color: PALETTE[i % PALETTE.len()].to_string(),
            width: 1.5,
            dash: DASHES[(i / PALETTE.len()) % DASHES.len()],
        }
    }
}

/// One line of a chart.
#[derive(Debug, Clone)]
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    style: Style,
}

/// A line chart with a title, axis labels, ticks, a legend and an optional
/// vertical marker.
#[derive(Debug, Default)]
struct LineChart {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<Series>,
    marker: Option<(f64, String)>,
    note: Option<String>,
    /// Top of the y axis if the data go higher; lines cut by it are marked
    /// `(off scale)` in the legend.
    y_cap: Option<f64>,
}

/// Cumulative squared error plot of `run` after a warm-up of `warmup` epochs, as an
/// SVG document.
pub fn cumulative_error_svg(run: &TopicRun, warmup: u64) -> Result<String, ReportError> {
    Ok(cumulative_error_chart(&Prepared::new(run, warmup)?).render())
}

/// Inferer weights plot of `run`, smoothed with a trailing rolling mean over `window`
/// epochs (1: raw), with the end of a warm-up of `warmup` epochs marked; an SVG
/// document.
pub fn weights_svg(run: &TopicRun, warmup: u64, window: usize) -> Result<String, ReportError> {
    Ok(weights_chart(&Prepared::new(run, warmup)?, window).render())
}

/// Accumulates squared errors of one line.
struct Cumulative {
    sum: f64,
    missed: u64,
    points: Vec<(f64, f64)>,
}

impl Cumulative {
    fn new() -> Self {
        Self {
            sum: 0.0,
            missed: 0,
            points: Vec::new(),
        }
    }

    fn add(&mut self, epoch: u64, value: Option<f64>, truth: f64) {
        match value {
            Some(v) => {
                self.sum += (v - truth) * (v - truth);
                self.points.push((epoch as f64, self.sum));
            }
            None => self.missed += 1,
        }
    }

    fn series(self, name: &str, style: Style) -> Series {
        let label = match (self.points.is_empty(), self.missed) {
            (true, _) => format!("{name} (no data)"),
            (false, 0) => name.to_string(),
            (false, m) => format!("{name} (missed {m})"),
        };
        Series {
            label,
            points: self.points,
            style,
        }
    }
}

fn cumulative_error_chart(p: &Prepared<'_>) -> LineChart {
    let mut workers: Vec<Cumulative> = p.roster.iter().map(|_| Cumulative::new()).collect();
    let mut combined = Cumulative::new();
    let mut naive = Cumulative::new();
    let mut average = Cumulative::new();
    let mut scored = 0u64;
    for (r, truth) in p.scored() {
        scored += 1;
        for (w, c) in p.roster.iter().zip(&mut workers) {
            c.add(r.epoch, r.inference(&w.name), truth);
        }
        combined.add(r.epoch, r.combined_value(), truth);
        naive.add(r.epoch, r.naive_value(), truth);
        average.add(r.epoch, r.average(), truth);
    }
    // Reference for the y cap: network lines and the lowest regular worker.
    let last = |c: &Cumulative| c.points.last().map(|pt| pt.1);
    let best_regular = workers
        .iter()
        .filter(|c| !c.points.is_empty() && c.missed * 10 <= scored)
        .filter_map(last)
        .min_by(f64::total_cmp);
    let reference = [last(&combined), last(&naive), last(&average), best_regular]
        .into_iter()
        .flatten()
        .max_by(f64::total_cmp);
    let y_cap = reference.filter(|r| *r > 0.0).map(|r| r * CUMULATIVE_Y_CAP);
    let mut series: Vec<Series> = p
        .roster
        .iter()
        .zip(workers)
        .enumerate()
        .map(|(i, (w, c))| c.series(&format!("{} ({})", w.name, w.model), Style::worker(i)))
        .collect();
    series.push(average.series(
        "equal-weight average",
        Style {
            color: "#888888".into(),
            width: 2.0,
            dash: Some("2 3"),
        },
    ));
    series.push(naive.series(
        "network naive",
        Style {
            color: "#555555".into(),
            width: 2.0,
            dash: Some("8 4"),
        },
    ));
    series.push(combined.series(
        "network combined",
        Style {
            color: "#000000".into(),
            width: 3.5,
            dash: None,
        },
    ));
    LineChart {
        title: format!(
            "{} ({}): cumulative squared error, {} scored epochs after a warm-up of {}",
            p.run.name, p.run.target, scored, p.warmup
        ),
        x_label: "epoch".into(),
        y_label: "cumulative squared error".into(),
        note: (scored == 0).then(|| "no scored epochs".to_string()),
        series,
        marker: None,
        y_cap,
    }
}

fn weights_chart(p: &Prepared<'_>, window: usize) -> LineChart {
    let window = window.max(1);
    let mut series: Vec<Series> = Vec::with_capacity(p.roster.len());
    let with_weights: Vec<_> = p.records.iter().filter(|r| !r.weights.is_empty()).collect();
    for (i, w) in p.roster.iter().enumerate() {
        let raw: Vec<f64> = with_weights
            .iter()
            .map(|r| {
                r.weights
                    .get(&w.name)
                    .copied()
                    .filter(|x| x.is_finite())
                    .unwrap_or(0.0)
            })
            .collect();
        let mut sum = 0.0;
        let mut points = Vec::with_capacity(raw.len());
        for (j, (r, x)) in with_weights.iter().zip(&raw).enumerate() {
            sum += x;
            if j >= window {
                sum -= raw[j - window];
            }
            let n = (j + 1).min(window);
            points.push((r.epoch as f64, sum / n as f64));
        }
        series.push(Series {
            label: format!("{} ({})", w.name, w.model),
            points,
            style: Style::worker(i),
        });
    }
    let smoothing = if window == 1 {
        "raw".to_string()
    } else {
        format!("trailing {window}-epoch rolling mean")
    };
    let marker = (p.warmup > 0 && !p.records.is_empty())
        .then(|| (p.first_scored as f64, "end of warm-up".to_string()));
    LineChart {
        title: format!(
            "{} ({}): inferer weights ({smoothing})",
            p.run.name, p.run.target
        ),
        x_label: "epoch".into(),
        y_label: "weight".into(),
        note: with_weights
            .is_empty()
            .then(|| "no weights recorded".to_string()),
        series,
        marker,
        y_cap: None,
    }
}

/// Keeps every k-th point and the last so that at most [`MAX_POINTS`] remain.
fn thin(points: &[(f64, f64)]) -> impl Iterator<Item = &(f64, f64)> {
    let stride = points.len().div_ceil(MAX_POINTS).max(1);
    let last = points.len().saturating_sub(1);
    points
        .iter()
        .enumerate()
        .filter(move |(i, _)| i % stride == 0 || *i == last)
        .map(|(_, p)| p)
}

/// Round tick positions covering `[lo, hi]`, with a step of 1, 2 or 5 × 10^k.
fn ticks(lo: f64, hi: f64) -> (Vec<f64>, f64) {
    let span = hi - lo;
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-9 && out.len() < 50 {
        out.push(v);
        v += step;
    }
    (out, step)
}

/// A tick label suited to the step.
fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if v == 0.0 {
        return "0".into();
    }
    let mag = step.log10().floor();
    if (-3.0..6.0).contains(&mag) {
        let decimals = (-mag).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.1e}")
    }
}

/// Escapes text for SVG content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Where a chart's data land: the plot area and the axes' ranges and ticks.
struct Frame {
    /// Height of the document (grows with the legend).
    height: f64,
    /// Plot area width and height.
    pw: f64,
    ph: f64,
    /// Axis ranges (y widened to whole tick steps).
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    xticks: Vec<f64>,
    xstep: f64,
    yticks: Vec<f64>,
    ystep: f64,
    /// The y axis stops at the chart's cap, below the data.
    capped: bool,
}

impl Frame {
    fn sx(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0) * self.pw
    }

    fn sy(&self, y: f64) -> f64 {
        TOP + self.ph - (y - self.y0) / (self.y1 - self.y0) * self.ph
    }
}

impl LineChart {
    /// The chart as a standalone SVG document.
    fn render(&self) -> String {
        let f = self.frame();
        let mut s = String::with_capacity(
            4096 + self
                .series
                .iter()
                .map(|s| s.points.len().min(MAX_POINTS) * 16)
                .sum::<usize>(),
        );
        self.write_header(&mut s, &f);
        self.write_axes(&mut s, &f);
        self.write_annotations(&mut s, &f);
        self.write_lines(&mut s, &f);
        self.write_legend(&mut s, &f);
        s.push_str("</svg>\n");
        s
    }

    /// The data range (y always includes 0; capped at `y_cap`), widened to round ticks.
    fn frame(&self) -> Frame {
        let height = MIN_HEIGHT.max(TOP + 20.0 + LEGEND_ROW * self.series.len() as f64 + 20.0);
        let (pw, ph) = (WIDTH - LEFT - RIGHT, height - TOP - BOTTOM);
        let all = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64, 0.0f64);
        for &(x, y) in all.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if let Some((m, _)) = self.marker {
            x0 = x0.min(m);
            x1 = x1.max(m);
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let capped = self.y_cap.filter(|c| *c < y1 && *c > y0);
        if let Some(c) = capped {
            y1 = c;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        // Widen y to whole steps so that both ends carry a tick.
        let (_, step) = ticks(y0, y1);
        (y0, y1) = ((y0 / step).floor() * step, (y1 / step).ceil() * step);
        let (yticks, ystep) = ticks(y0, y1);
        let (xticks, xstep) = ticks(x0, x1);
        Frame {
            height,
            pw,
            ph,
            x0,
            x1,
            y0,
            y1,
            xticks,
            xstep,
            yticks,
            ystep,
            capped: capped.is_some(),
        }
    }

    /// The document's opening, title, clip path of the plot area and background.
    fn write_header(&self, s: &mut String, f: &Frame) {
        let (height, pw, ph) = (f.height, f.pw, f.ph);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, "<title>{}</title>", esc(&self.title));
        let _ = writeln!(
            s,
            r#"<defs><clipPath id="plot-area"><rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/></clipPath></defs>"#
        );
        let _ = writeln!(
            s,
            r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>"#,
            WIDTH / 2.0,
            esc(&self.title)
        );
    }

    /// Grid, tick labels, axis lines and axis labels.
    fn write_axes(&self, s: &mut String, f: &Frame) {
        let (pw, ph) = (f.pw, f.ph);
        let mut grid = String::new();
        for &t in &f.yticks {
            let y = f.sy(t);
            let _ = write!(grid, "M{LEFT:.1},{y:.1}H{:.1}", LEFT + pw);
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                tick_label(t, f.ystep)
            );
        }
        for &t in &f.xticks {
            let x = f.sx(t);
            let _ = write!(grid, "M{x:.1},{TOP:.1}V{:.1}", TOP + ph);
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + ph + 18.0,
                tick_label(t, f.xstep)
            );
        }
        let _ = writeln!(
            s,
            r##"<path d="{grid}" stroke="#e4e4e4" stroke-width="1" fill="none"/>"##
        );
        let _ = writeln!(
            s,
            r##"<path d="M{LEFT:.1},{TOP:.1}V{:.1}H{:.1}" stroke="#333333" stroke-width="1" fill="none"/>"##,
            TOP + ph,
            LEFT + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            TOP + ph + 42.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">{}</text>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
    }

    /// The vertical marker and the note, if any.
    fn write_annotations(&self, s: &mut String, f: &Frame) {
        let (pw, ph) = (f.pw, f.ph);
        if let Some((m, label)) = &self.marker {
            let x = f.sx(*m);
            let _ = writeln!(
                s,
                r##"<path d="M{x:.1},{TOP:.1}V{:.1}" stroke="#999999" stroke-width="1" stroke-dasharray="4 4" fill="none"/>"##,
                TOP + ph
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#666666">{}</text>"##,
                x + 4.0,
                TOP + 14.0,
                esc(label)
            );
        }
        if let Some(note) = &self.note {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#aa0000">{}</text>"##,
                LEFT + pw / 2.0,
                TOP + ph / 2.0,
                esc(note)
            );
        }
    }

    /// The lines, in order (the last drawn on top), clipped to the plot area.
    fn write_lines(&self, s: &mut String, f: &Frame) {
        for series in &self.series {
            if series.points.is_empty() {
                continue;
            }
            let _ = write!(
                s,
                r#"<polyline clip-path="url(#plot-area)" fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round""#,
                series.style.color, series.style.width
            );
            if let Some(d) = series.style.dash {
                let _ = write!(s, r#" stroke-dasharray="{d}""#);
            }
            s.push_str(r#" points=""#);
            for (i, &(x, y)) in thin(&series.points).enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{:.1},{:.1}", f.sx(x), f.sy(y));
            }
            s.push_str("\"/>\n");
        }
    }

    /// One legend row per line, right of the plot; lines cut by the cap say so.
    fn write_legend(&self, s: &mut String, f: &Frame) {
        let lx = LEFT + f.pw + 16.0;
        for (i, series) in self.series.iter().enumerate() {
            let y = TOP + 10.0 + LEGEND_ROW * i as f64;
            let _ = write!(
                s,
                r#"<path d="M{lx:.1},{y:.1}h26" stroke="{}" stroke-width="{}""#,
                series.style.color, series.style.width
            );
            if let Some(d) = series.style.dash {
                let _ = write!(s, r#" stroke-dasharray="{d}""#);
            }
            let off = f.capped && series.points.iter().any(|pt| pt.1 > f.y1);
            let _ = writeln!(
                s,
                r#"/><text x="{:.1}" y="{:.1}">{}{}</text>"#,
                lx + 32.0,
                y + 4.0,
                esc(&series.label),
                if off { " (off scale)" } else { "" }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let (t, step) = ticks(0.0, 1.0);
        assert_eq!(step, 0.2);
        assert_eq!(t.len(), 6);
        let (t, step) = ticks(0.0, 3.3e-4);
        assert!((step - 1e-4).abs() < 1e-18, "{step}");
        assert_eq!(t.len(), 4);
        assert_eq!(tick_label(2e-4, 1e-4), "2.0e-4");
        assert_eq!(tick_label(1500.0, 500.0), "1500");
        assert_eq!(tick_label(0.4, 0.2), "0.4");
    }

    #[test]
    fn thinning_keeps_first_and_last() {
        let pts: Vec<(f64, f64)> = (0..5001).map(|i| (i as f64, 0.0)).collect();
        let kept: Vec<_> = thin(&pts).collect();
        assert!(kept.len() <= MAX_POINTS + 1);
        assert_eq!(kept[0].0, 0.0);
        assert_eq!(kept.last().unwrap().0, 5000.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&apos;");
    }
}
