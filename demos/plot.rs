//! SVG charts (plotters, SVG backend only).
//!
//! Text needs no system fonts: without plotters' `ttf` feature the SVG backend writes every label
//! as an SVG `<text>` element with a generic `font-family` (e.g. `sans-serif`) that the viewer
//! (browser, GitHub) renders with its own fonts; plotters only estimates label sizes for layout.

use anyhow::{Context, Result};
use plotters::prelude::*;
use std::path::Path;

/// One line of a clock-error chart.
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// (true time in s, clock error in ms).
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Colour of "held in a buffer" marks (distinct from the palette).
const HOLD: RGBColor = RGBColor(255, 160, 0);

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

/// Clock error (ms) against true time (s), one line per node; `events` are labelled vertical
/// markers (e.g. "step", "sync").
pub fn clock_error_chart(
    path: &Path,
    title: &str,
    series: &[Series],
    events: &[(f64, String)],
) -> Result<()> {
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = bounds(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain([0.0]),
    );
    // Head room for the legend in the upper left corner.
    let y1 = y1 + (y1 - y0) * 0.06 * (series.len() as f64 + 1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("true time (s)")
        .y_desc("clock error = clock − true time (ms)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    chart.draw_series(LineSeries::new([(x0, 0.0), (x1, 0.0)], BLACK.mix(0.4)))?;
    for (t, label) in events {
        chart.draw_series(LineSeries::new(
            [(*t, y0), (*t, y1)],
            RGBColor(120, 120, 120).mix(0.5),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (*t, y1 - (y1 - y0) * 0.03),
            ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
        )))?;
    }
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A message in a space-time diagram.
pub struct Arrow {
    /// Sending process (row).
    pub from: usize,
    /// Receiving process (row).
    pub to: usize,
    /// Send time (ms).
    pub sent_ms: f64,
    /// Arrival time (ms).
    pub recv_ms: f64,
    /// Delivery to the application (ms), when later than arrival (held back by a buffer).
    pub delivered_ms: Option<f64>,
    /// Label drawn at the sender, e.g. "m3 (1,2,0)".
    pub label: String,
}

/// A space-time diagram: one horizontal line per process, one arrow per message; messages held in
/// a delivery buffer show a dashed extension from arrival to delivery.
pub fn space_time_chart(
    path: &Path,
    title: &str,
    processes: &[String],
    arrows: &[Arrow],
) -> Result<()> {
    let root =
        SVGBackend::new(path, (1100, 140 + 150 * processes.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let last = arrows
        .iter()
        .map(|a| a.delivered_ms.unwrap_or(a.recv_ms).max(a.recv_ms))
        .fold(0.0, f64::max);
    let first = arrows
        .iter()
        .map(|a| a.sent_ms)
        .fold(f64::INFINITY, f64::min);
    let first = if first.is_finite() { first } else { 0.0 };
    let t_min = (first - (last - first) * 0.04 - 1.0).max(0.0);
    let t_max = last + (last - first) * 0.04 + 1.0;
    let n = processes.len();
    let names = processes.to_vec();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(t_min..t_max, -0.5..(n as f64 - 0.5))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.round();
            // Row y shows process n-1-y: process 0 on top.
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                names.get(n - 1 - i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("time (ms)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    // Rows are drawn top to bottom: process 0 at the top.
    let row = |p: usize| (n - 1 - p) as f64;
    for p in 0..n {
        chart.draw_series(LineSeries::new(
            [(t_min, row(p)), (t_max, row(p))],
            BLACK.stroke_width(2),
        ))?;
    }
    for (i, a) in arrows.iter().enumerate() {
        let c = color(a.from);
        let (x0, y0, x1, y1) = (a.sent_ms, row(a.from), a.recv_ms, row(a.to));
        chart.draw_series(LineSeries::new([(x0, y0), (x1, y1)], c.stroke_width(2)))?;
        // Arrow head: two short strokes in pixel space would need the backend; approximate with a
        // filled dot at the arrival and a hollow one at the send.
        chart.draw_series([
            Circle::new((x1, y1), 4, c.filled()),
            Circle::new((x0, y0), 3, c.stroke_width(1)),
        ])?;
        if let Some(d) = a.delivered_ms.filter(|d| *d > a.recv_ms) {
            let steps = 24;
            let seg = (d - x1) / steps as f64;
            for k in (0..steps).step_by(2) {
                let s = x1 + seg * k as f64;
                chart.draw_series(LineSeries::new(
                    [(s, y1), (s + seg, y1)],
                    HOLD.stroke_width(5),
                ))?;
            }
            chart.draw_series([Cross::new((d, y1), 7, HOLD.stroke_width(3))])?;
        }
        // Labels alternate above/below the sender's line so neighbours don't overlap.
        let base: f64 = if i % 2 == 0 { 0.12 } else { 0.24 };
        // Text hangs below its anchor: put it above the line when the arrow goes down, below
        // when it goes up, so it doesn't sit on the arrow.
        let dy = if y1 < y0 { base + 0.08 } else { -base + 0.02 };
        chart.draw_series(std::iter::once(Text::new(
            a.label.clone(),
            (x0, y0 + dy),
            ("sans-serif", 13).into_font().color(&c),
        )))?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contents of every `<text>` element.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn charts_are_svg_with_text_labels_and_no_font_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("err.svg");
        let s = Series {
            name: "node-B (+100 ms)".into(),
            points: vec![(0.0, 100.0), (10.0, 101.0)],
        };
        clock_error_chart(&p, "clock error", &[s], &[(5.0, "sync".into())]).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg"));
        let t = texts(&svg);
        assert!(
            t.iter().any(|x| x == "node-B (+100 ms)"),
            "legend text is an SVG text element: {t:?}"
        );
        assert!(t.iter().any(|x| x == "true time (s)"));
        assert!(t.iter().any(|x| x == "sync"));
        assert!(svg.contains("font-family=\"sans-serif\""));
        let q = dir.path().join("st.svg");
        let arrows = [Arrow {
            from: 0,
            to: 1,
            sent_ms: 1.0,
            recv_ms: 5.0,
            delivered_ms: Some(9.0),
            label: "m1 (1,0,0)".into(),
        }];
        space_time_chart(&q, "space-time", &["P1".into(), "P2".into()], &arrows).unwrap();
        let svg = std::fs::read_to_string(&q).unwrap();
        let t = texts(&svg);
        assert!(t.iter().any(|x| x == "m1 (1,0,0)"), "{t:?}");
        assert!(
            t.iter().any(|x| x == "P2"),
            "process names label the rows: {t:?}"
        );
    }
}
