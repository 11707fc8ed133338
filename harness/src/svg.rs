//! A small, deterministic SVG line-plot renderer: axes with ticks and labels, several series
//! with a legend, vertical markers with labels. Same input, same bytes: every number is
//! written with fixed precision and nothing depends on the environment.

use std::fmt::{self, Write as _};

/// Line colours, in series order (cycled).
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
/// Width of one plot panel.
const PANEL_W: f64 = 720.0;
/// Height of one plot panel.
const PANEL_H: f64 = 360.0;
/// Space left of the plot area (y tick labels and the y label).
const LEFT: f64 = 80.0;
/// Space right of the plot area.
const RIGHT: f64 = 20.0;
/// Space above the plot area (the title and the legend).
const TOP: f64 = 58.0;
/// Space below the plot area (x tick labels and the x label).
const BOTTOM: f64 = 50.0;
/// Roughly how many ticks an axis gets.
const TICKS: f64 = 6.0;
/// Series with at most this many points also get a dot at each point.
const DOTS_UP_TO: usize = 20;

/// One line of a plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    /// Shown in the legend.
    pub(crate) name: String,
    /// `(x, y)` points in drawing order; non-finite points are skipped.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A vertical line at `x` with a label (a fault's start, say).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    /// Where, in x units.
    pub(crate) x: f64,
    /// Written along the line.
    pub(crate) label: String,
}

/// One plot: title, axis labels, series and markers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Plot {
    /// Above the plot.
    pub(crate) title: String,
    /// Under the x axis.
    pub(crate) x_label: String,
    /// Left of the y axis.
    pub(crate) y_label: String,
    /// The lines.
    pub(crate) series: Vec<Series>,
    /// Vertical markers.
    pub(crate) markers: Vec<Marker>,
}

/// Renders `plots` side by side as one SVG document.
pub(crate) fn render(plots: &[Plot]) -> Result<String, fmt::Error> {
    let width = PANEL_W * count_f64(plots.len().max(1));
    let mut out = String::new();
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#,
        w = num(width),
        h = num(PANEL_H)
    )?;
    writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#)?;
    for (i, plot) in plots.iter().enumerate() {
        plot.render_panel(&mut out, PANEL_W * count_f64(i))?;
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// The plot area of a panel in pixels, and the axes mapping data onto it.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    xa: Axis,
    ya: Axis,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.x0 + (x - self.xa.min) / (self.xa.max - self.xa.min) * (self.x1 - self.x0)
    }

    fn py(&self, y: f64) -> f64 {
        self.y1 - (y - self.ya.min) / (self.ya.max - self.ya.min) * (self.y1 - self.y0)
    }
}

impl Plot {
    fn finite_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    fn frame(&self, offset: f64) -> Frame {
        let xs = self
            .finite_points()
            .map(|(x, _)| x)
            .chain(self.markers.iter().map(|m| m.x).filter(|x| x.is_finite()));
        let (xlo, xhi) = bounds(xs);
        // The y axis always shows zero: every plotted figure is a count or a duration.
        let (ylo, yhi) = bounds(self.finite_points().map(|(_, y)| y).chain([0.0]));
        // Headroom, so a line at the maximum does not run along the frame.
        let yhi = yhi + (yhi - ylo) * 0.05;
        Frame {
            x0: offset + LEFT,
            x1: offset + PANEL_W - RIGHT,
            y0: TOP,
            y1: PANEL_H - BOTTOM,
            xa: Axis::new(xlo, xhi),
            ya: Axis::new(ylo, yhi),
        }
    }

    fn render_panel(&self, out: &mut String, offset: f64) -> fmt::Result {
        let f = self.frame(offset);
        writeln!(out, "<g>")?;
        writeln!(
            out,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            num((f.x0 + f.x1) / 2.0),
            escape(&self.title)
        )?;
        axes(out, &f, &self.x_label, &self.y_label)?;
        for m in self.markers.iter().filter(|m| m.x.is_finite()) {
            marker(out, &f, m)?;
        }
        for (i, s) in self.series.iter().enumerate() {
            line(out, &f, s, COLORS[i % COLORS.len()])?;
        }
        if self.finite_points().next().is_none() {
            writeln!(
                out,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#888">no data</text>"##,
                num((f.x0 + f.x1) / 2.0),
                num((f.y0 + f.y1) / 2.0)
            )?;
        }
        legend(out, &f, &self.series)?;
        writeln!(out, "</g>")
    }
}

/// Frame, grid lines, ticks, tick labels and axis labels.
fn axes(out: &mut String, f: &Frame, x_label: &str, y_label: &str) -> fmt::Result {
    for &t in &f.xa.ticks {
        let x = num(f.px(t));
        writeln!(
            out,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
            num(f.y0),
            num(f.y1 + 5.0),
            num(f.y1 + 18.0),
            f.xa.label(t)
        )?;
    }
    for &t in &f.ya.ticks {
        let y = num(f.py(t));
        writeln!(
            out,
            r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            num(f.x0 - 5.0),
            num(f.x1),
            num(f.x0 - 8.0),
            num(f.py(t) + 4.0),
            f.ya.label(t)
        )?;
    }
    writeln!(
        out,
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        num(f.x0),
        num(f.y0),
        num(f.x1 - f.x0),
        num(f.y1 - f.y0)
    )?;
    writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        num((f.x0 + f.x1) / 2.0),
        num(PANEL_H - 10.0),
        escape(x_label)
    )?;
    let (lx, ly) = (num(f.x0 - LEFT + 16.0), num((f.y0 + f.y1) / 2.0));
    writeln!(
        out,
        r#"<text x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text>"#,
        escape(y_label)
    )
}

/// A dashed vertical line with its label written downwards along it.
fn marker(out: &mut String, f: &Frame, m: &Marker) -> fmt::Result {
    let x = num(f.px(m.x));
    let (tx, ty) = (num(f.px(m.x) + 4.0), num(f.y0 + 4.0));
    writeln!(
        out,
        r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#888" stroke-dasharray="4 3"/><text x="{tx}" y="{ty}" fill="#555" font-size="10" transform="rotate(90 {tx} {ty})">{}</text>"##,
        num(f.y0),
        num(f.y1),
        escape(&m.label)
    )
}

/// One series as a polyline, plus dots when there are too few points to see a line.
fn line(out: &mut String, f: &Frame, s: &Series, color: &str) -> fmt::Result {
    let pts: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&(x, y)| (f.px(x), f.py(y)))
        .collect();
    if pts.is_empty() {
        return Ok(());
    }
    let joined: Vec<String> = pts
        .iter()
        .map(|&(x, y)| format!("{},{}", num(x), num(y)))
        .collect();
    writeln!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        joined.join(" ")
    )?;
    if pts.len() <= DOTS_UP_TO {
        for (x, y) in pts {
            writeln!(
                out,
                r#"<circle cx="{}" cy="{}" r="3" fill="{color}"/>"#,
                num(x),
                num(y)
            )?;
        }
    }
    Ok(())
}

/// Legend in one row between the title and the plot area.
fn legend(out: &mut String, f: &Frame, series: &[Series]) -> fmt::Result {
    let y = TOP - 14.0;
    let mut x = f.x0;
    for (i, s) in series.iter().enumerate() {
        let empty = if s.points.is_empty() {
            " (no data)"
        } else {
            ""
        };
        let label = format!("{}{empty}", escape(&s.name));
        writeln!(
            out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{label}</text>"#,
            num(x),
            num(y),
            num(x + 20.0),
            num(y),
            COLORS[i % COLORS.len()],
            num(x + 26.0),
            num(y + 4.0),
        )?;
        // No font metrics: allow a generous 7 px per character.
        x += 26.0 + 7.0 * count_f64(s.name.chars().count() + empty.len()) + 24.0;
    }
    Ok(())
}

/// One axis: its range and tick positions.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    min: f64,
    max: f64,
    ticks: Vec<f64>,
    decimals: usize,
}

impl Axis {
    /// An axis covering `lo..=hi` (finite, `lo <= hi`), widened to whole tick steps.
    fn new(lo: f64, hi: f64) -> Self {
        let step = nice_step((hi - lo) / TICKS);
        let min = (lo / step).floor() * step;
        let max = (hi / step).ceil() * step;
        let max = if max > min { max } else { min + step };
        let n = ((max - min) / step).round();
        let mut ticks = Vec::new();
        let mut k = 0.0;
        while k <= n {
            ticks.push(min + k * step);
            k += 1.0;
        }
        let decimals = if step >= 1.0 {
            0
        } else {
            // `step` is in (0, 1): its exponent is a small negative whole number.
            format!("{step:e}")
                .split_once('e')
                .and_then(|(_, e)| e.parse::<i32>().ok())
                .map_or(6, |e| e.unsigned_abs().min(6) as usize)
        };
        Self {
            min,
            max,
            ticks,
            decimals,
        }
    }

    fn label(&self, v: f64) -> String {
        // `+ 0.0` turns -0.0 into 0.0 so no tick reads "-0".
        format!("{:.*}", self.decimals, v + 0.0)
    }
}

/// The smallest 1, 2 or 5 × 10^k at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

/// Smallest and largest value, widened when they are equal; `(0, 1)` for no values.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        (0.0, 1.0)
    } else if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (0.0, 1.0)
    } else {
        let d = lo.abs() / 2.0;
        (lo - d, hi + d)
    }
}

/// A pixel coordinate with fixed precision.
fn num(v: f64) -> String {
    format!("{:.2}", v + 0.0)
}

/// A count as `f64` (counts here are small: panels, series).
fn count_f64(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// `s` escaped for XML text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn axis_ticks_are_nice() {
        let a = Axis::new(0.0, 97.0);
        assert_eq!(a.min, 0.0);
        assert_eq!(a.max, 100.0);
        assert_eq!(a.ticks.len(), 6);
        assert_eq!(a.label(20.0), "20");
        let b = Axis::new(0.0, 0.3);
        assert_eq!(b.label(0.05), "0.05");
    }

    #[test]
    fn bounds_handle_empty_and_single() {
        assert_eq!(bounds(std::iter::empty()), (0.0, 1.0));
        assert_eq!(bounds([0.0].into_iter()), (0.0, 1.0));
        assert_eq!(bounds([4.0].into_iter()), (2.0, 6.0));
        assert_eq!(bounds([3.0, 1.0].into_iter()), (1.0, 3.0));
    }

    #[test]
    fn single_point_and_nan_render() {
        let plot = Plot {
            title: "t".into(),
            series: vec![Series {
                name: "one".into(),
                points: vec![(1.0, 2.0), (f64::NAN, 1.0)],
            }],
            ..Plot::default()
        };
        let svg = render(&[plot]).unwrap();
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("<circle"));
        assert!(!svg.contains("NaN"));
    }
}
