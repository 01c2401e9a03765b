//! The report's PNG plots (plotters, bitmap backend). Text is drawn with
//! DejaVu Sans compiled into the binary (the `dejavu` crate through
//! plotters' `ab_glyph` backend), so plotting needs no fontconfig or system
//! fonts on the node that makes the report.
//!
//! - [`latency_spectrum`]: latency against percentile on a log 1/(1−p) axis
//!   (HdrHistogram's "percentile spectrum").
//! - [`server_timeline`]: each server's per-second op/s over the run, with
//!   its median.
//! - [`scaling`]: a sweep's throughput and p99 against one swept variable.
//! - [`bars`]: one value per labelled bar (`percore bench --vs`).
//! - [`latency_curve`]: latency percentiles against offered rate, log scale
//!   (`percore bench --rates`).

use super::{ReportError, ServerFigure};
use hdrhistogram::Histogram;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const SIZE: (u32, u32) = (1000, 620);
const FONT: &str = "sans-serif";

fn font_ready() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if ok { Ok(()) } else { Err("the built-in font does not load".into()) }
}

fn plot_err(path: &Path) -> impl Fn(String) -> ReportError + '_ {
    move |message| ReportError::Plot { path: path.display().to_string(), message }
}

/// The legend key of a line series: a short stroke in its colour.
fn line_key(color: RGBAColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// Draws the chart's legend box at `at`, its labels in `font_size` points.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
    font_size: u32,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(at)
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// `1/(1−p)` → `"99.9%"`.
pub fn percentile_label(x: f64) -> String {
    if x < 1.0 {
        return String::new();
    }
    let p = 100.0 - 100.0 / x;
    let s = format!("{p:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Spectrum points of a histogram: `(1/(1−p), latency µs)`, ending at its
/// max; `x_max` caps the axis.
fn spectrum(h: &Histogram<u64>, x_max: f64) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q < 1.0 { 1.0 / (1.0 - q) } else { x_max };
        points.push((x.min(x_max), (v.value_iterated_to() as f64 / 1e3).max(0.001)));
    }
    points.push((x_max, (h.max() as f64 / 1e3).max(0.001)));
    points
}

/// Latency against percentile, one line per histogram (ns), log axes.
pub fn latency_spectrum(path: &Path, series: &[(&str, &Histogram<u64>)], title: &str) -> Result<(), ReportError> {
    let err = plot_err(path);
    font_ready().map_err(&err)?;
    let series: Vec<(&str, &Histogram<u64>)> = series.iter().filter(|(_, h)| !h.is_empty()).copied().collect();
    let count = series.iter().map(|(_, h)| h.len()).max().unwrap_or(1).max(1);
    let x_max = 10f64.powi((count as f64).log10().ceil().clamp(2.0, 7.0) as i32);
    let data: Vec<(&str, Vec<(f64, f64)>)> = series.iter().map(|(n, h)| (*n, spectrum(h, x_max))).collect();
    let (lo, hi) = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if hi > 0.0 { (lo * 0.8, hi * 1.5) } else { (0.1, 10.0) };

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .margin_right(50)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((1f64..x_max).log_scale(), (lo..hi).log_scale())
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("percentile (log 1/(1-p) axis)")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, (name, points)) in data.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let label = format!("{name} ({} ops)", series[i].1.len());
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(line_key(color));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, 16).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Every server's per-second op/s over the run, each with its median.
pub fn server_timeline(path: &Path, servers: &[ServerFigure]) -> Result<(), ReportError> {
    let err = plot_err(path);
    font_ready().map_err(&err)?;
    let n = servers.iter().map(|s| s.timeline.len()).max().unwrap_or(1).max(2);
    let top = servers.iter().flat_map(|s| s.timeline.iter().copied()).fold(0.0f64, f64::max).max(1.0) * 1.15;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("server throughput per second (filled: the median's seconds; dashes: median)", (FONT, 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..(n - 1) as f64, 0f64..top)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("second of the run (server's own ticks)")
        .y_desc("op/s")
        .x_labels(n.min(30))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| si(*y))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, s) in servers.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = s.timeline.iter().enumerate().map(|(t, v)| (t as f64, *v)).collect();
        let label = match s.median {
            Some(m) => format!("{} (median {})", s.node, si(m)),
            None => s.node.clone(),
        };
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(line_key(color));
        let marks = points.iter().enumerate().map(|(t, p)| {
            let style = if s.window.contains(&t) { color.filled() } else { color.stroke_width(1) };
            Circle::new(*p, 4, style)
        });
        chart.draw_series(marks).map_err(|e| err(e.to_string()))?;
        if let Some(m) = s.median {
            let dashes = (0..(n - 1) * 4).step_by(2).map(|k| {
                let a = k as f64 / 4.0;
                PathElement::new(vec![(a, m), (a + 0.25, m)], color.stroke_width(1))
            });
            chart.draw_series(dashes).map_err(|e| err(e.to_string()))?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerMiddle, 16).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// `1234567` → `"1.23M"`.
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// One line of a scaling plot: its label and `(x index, op/s, p99 µs)` points.
pub type ScalingSeries = (String, Vec<(usize, f64, Option<f64>)>);

/// A sweep's throughput (top) and p99 latency (bottom) against one swept
/// variable, whose values sit evenly spaced on the x axis.
pub fn scaling(path: &Path, x_name: &str, x_values: &[u64], series: &[ScalingSeries]) -> Result<(), ReportError> {
    let err = plot_err(path);
    font_ready().map_err(&err)?;
    let n = x_values.len().max(2) as i32;
    let top_tput = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(0.0f64, f64::max).max(1.0) * 1.15;
    let top_p99 = series.iter().flat_map(|s| s.1.iter().filter_map(|p| p.2)).fold(0.0f64, f64::max).max(1.0) * 1.15;
    let root = BitMapBackend::new(path, (SIZE.0, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (upper, lower) = root.split_vertically(440);
    let label_x = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            x_values.get(*i as usize).map_or(String::new(), u64::to_string)
        }
        SegmentValue::Last => String::new(),
    };
    for (area, what, top) in [
        (&upper, "throughput (op/s, total of server medians)", top_tput),
        (&lower, "p99 latency (µs, all ops)", top_p99),
    ] {
        let caption = if what.starts_with("throughput") { format!("throughput vs {x_name}") } else { String::new() };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, 26))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(90)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_name)
            .y_desc(what)
            .x_label_formatter(&label_x)
            .y_label_formatter(&|y| si(*y))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (i, (label, points)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(SegmentValue<i32>, f64)> = points
                .iter()
                .filter_map(|(x, t, p)| {
                    let y = if what.starts_with("throughput") { Some(*t) } else { *p };
                    y.map(|y| (SegmentValue::CenterOf(*x as i32), y))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(label.clone())
                .legend(line_key(color));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        if series.len() > 1 || !series.first().is_some_and(|s| s.0.is_empty()) {
            legend(&mut chart, SeriesLabelPosition::UpperLeft, 15).map_err(&err)?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// A bar per `(label, value, note)`: the value on the y axis (formatted
/// with [`si`]) and the note written above the bar.
pub fn bars(path: &Path, title: &str, y_desc: &str, bars: &[(String, f64, String)]) -> Result<(), ReportError> {
    let err = plot_err(path);
    font_ready().map_err(&err)?;
    let n = bars.len().max(1) as i32;
    let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1.0) * 1.2;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top)
        .map_err(|e| err(e.to_string()))?;
    let label_x = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            bars.get(*i as usize).map_or(String::new(), |b| b.0.clone())
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
        .x_label_formatter(&label_x)
        .y_label_formatter(&|y| si(*y))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let color = Palette99::pick(i).to_rgba();
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i as i32), 0.0), (SegmentValue::Exact(i as i32 + 1), b.1)],
                color.filled(),
            );
            bar.set_margin(0, 0, 40, 40);
            bar
        }))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let style = TextStyle::from((FONT, 16).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Bottom,
            ));
            Text::new(b.2.clone(), (SegmentValue::CenterOf(i as i32), b.1 + top * 0.01), style)
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// One line of a [`latency_curve`]: its label, its colour index (lines of
/// one server share a colour) and its `(rate index, µs)` points.
pub struct CurveSeries {
    /// Legend text.
    pub label: String,
    /// Palette index.
    pub colour: usize,
    /// Points: index into the rates, latency in µs.
    pub points: Vec<(usize, f64)>,
}

/// Latency (µs, log scale) against offered rate, the rates evenly spaced on
/// the x axis; within a colour, the first line is thin, later ones thicker.
pub fn latency_curve(path: &Path, title: &str, rates: &[f64], series: &[CurveSeries]) -> Result<(), ReportError> {
    let err = plot_err(path);
    font_ready().map_err(&err)?;
    let n = rates.len().max(2) as i32;
    let values = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let top = values().fold(1.0f64, f64::max) * 2.0;
    let bottom = values().filter(|v| *v > 0.0).fold(top, f64::min).max(1.0) / 2.0;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n - 1).into_segmented(), (bottom..top).log_scale())
        .map_err(|e| err(e.to_string()))?;
    let label_x = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => rates.get(*i as usize).map_or(String::new(), |r| si(*r)),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc("offered rate (ops/s)")
        .y_desc("GET latency (µs, from intended send time)")
        .x_label_formatter(&label_x)
        .y_label_formatter(&|y| si(*y))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let mut seen: Vec<usize> = Vec::new();
    for s in series {
        let nth = seen.iter().filter(|&&c| c == s.colour).count() as u32;
        seen.push(s.colour);
        let color = Palette99::pick(s.colour).to_rgba();
        let style = color.stroke_width(1 + 2 * nth);
        let pts: Vec<(SegmentValue<i32>, f64)> =
            s.points.iter().map(|(x, y)| (SegmentValue::CenterOf(*x as i32), y.max(bottom))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), style))
            .map_err(|e| err(e.to_string()))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3 + nth, color.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, 14).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1e6), "99.9999%");
    }

    #[test]
    fn si_units() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(12.0), "12");
    }

    #[test]
    fn draws_a_png() {
        let dir = std::env::temp_dir().join(format!("percore-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        for i in 1..=10_000u64 {
            h.record(i * 100).expect("record");
        }
        let path = dir.join("spectrum.png");
        latency_spectrum(&path, &[("GET", &h)], "test").expect("draws");
        let bytes = std::fs::read(&path).expect("written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
