//! The SVG report of one result: HDR-style latency percentile curves (log-scale "nines" axis),
//! throughput over time and publish p99 over time, one line per repeat.
//!
//! Owns: the picture. Imports: `result`. Uses plotters' SVG backend only (no fonts needed).

use crate::result::{BenchResult, RepeatResult};
use crate::stats::LatencySummary;
use anyhow::anyhow;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 1350;
const PUBLISH: RGBColor = RGBColor(31, 119, 180);
const END_TO_END: RGBColor = RGBColor(214, 39, 40);
const CONSUME: RGBColor = RGBColor(44, 160, 44);

fn plot_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow!("plotting failed: {error:?}")
}

/// x coordinate of a percentile: log10(1 / (1 - p)), so 90% -> 1, 99% -> 2, 99.9% -> 3.
pub fn nines(percentile: f64, count: u64) -> f64 {
    let resolution_limit = (count.max(1) as f64).log10();
    if percentile >= 100.0 {
        return resolution_limit;
    }
    (-(1.0 - percentile / 100.0).log10()).min(resolution_limit)
}

/// Axis label for an x coordinate made by `nines`.
pub fn percentile_label(x: &f64) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as i32 - 2).clamp(0, 6) as usize;
    format!("{percentile:.decimals$}%")
}

fn curve_points(summary: &LatencySummary) -> Vec<(f64, f64)> {
    summary
        .curve
        .iter()
        .map(|p| {
            (
                nines(p.percentile, summary.count),
                (p.value / 1000.0).max(0.001),
            )
        })
        .collect()
}

pub fn write_svg(result: &BenchResult, path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let title = format!(
        "{} — {} repeat(s), {}",
        result.workload.name, result.summary.repeats, result.environment.broker
    );
    let root = root
        .titled(&title, ("sans-serif", 20))
        .map_err(plot_error)?;
    let panels = root.split_evenly((3, 1));
    latency_curves(&panels[0], &result.repeats)?;
    throughput_over_time(&panels[1], &result.repeats)?;
    p99_over_time(&panels[2], &result.repeats)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn latency_curves(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    repeats: &[RepeatResult],
) -> anyhow::Result<()> {
    let all: Vec<Vec<(f64, f64)>> = repeats
        .iter()
        .flat_map(|r| {
            [
                curve_points(&r.publish_latency_us),
                curve_points(&r.end_to_end_latency_us),
            ]
        })
        .collect();
    let x_max = all.iter().flatten().map(|p| p.0).fold(1.0, f64::max).ceil();
    let (y_min, y_max) = y_range(all.iter().flatten().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile (HDR)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&percentile_label)
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .y_label_formatter(&|v| format_ms(*v))
        .draw()
        .map_err(plot_error)?;
    for (i, r) in repeats.iter().enumerate() {
        let publish = chart
            .draw_series(LineSeries::new(
                curve_points(&r.publish_latency_us),
                PUBLISH.stroke_width(2),
            ))
            .map_err(plot_error)?;
        if i == 0 {
            publish
                .label("publish (send → ack)")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], PUBLISH.stroke_width(2)));
        }
        if r.end_to_end_latency_us.count > 0 {
            let e2e = chart
                .draw_series(LineSeries::new(
                    curve_points(&r.end_to_end_latency_us),
                    END_TO_END.stroke_width(2),
                ))
                .map_err(plot_error)?;
            if i == 0 {
                e2e.label("end-to-end (send → receive)").legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], END_TO_END.stroke_width(2))
                });
            }
        }
    }
    legend(&mut chart)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

fn format_ms(value: f64) -> String {
    if value >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if max <= 0.0 {
        return (0.001, 1.0);
    }
    ((min * 0.8).max(0.001), max * 1.25)
}

fn throughput_over_time(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    repeats: &[RepeatResult],
) -> anyhow::Result<()> {
    let points = repeats.iter().flat_map(|r| r.timeseries.iter());
    let t_max = points.clone().map(|p| p.t).fold(1.0, f64::max);
    let y_max = points
        .map(|p| p.publish_mb_per_sec.max(p.consume_mb_per_sec))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "throughput over time (MB/s of payload; shaded = measured)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since producers started")
        .y_desc("MB/s")
        .draw()
        .map_err(plot_error)?;
    if let Some(first) = repeats.first() {
        let measured: Vec<f64> = first
            .timeseries
            .iter()
            .filter(|p| p.phase == "measure")
            .map(|p| p.t)
            .collect();
        if let (Some(start), Some(end)) = (measured.first(), measured.last()) {
            let shade = Rectangle::new(
                [(start - 1.0, 0.0), (*end, y_max)],
                BLACK.mix(0.06).filled(),
            );
            chart.draw_series([shade]).map_err(plot_error)?;
        }
    }
    for (i, r) in repeats.iter().enumerate() {
        let publish: Vec<(f64, f64)> = r
            .timeseries
            .iter()
            .map(|p| (p.t, p.publish_mb_per_sec))
            .collect();
        let consume: Vec<(f64, f64)> = r
            .timeseries
            .iter()
            .map(|p| (p.t, p.consume_mb_per_sec))
            .collect();
        let series = chart
            .draw_series(LineSeries::new(publish, PUBLISH.stroke_width(2)))
            .map_err(plot_error)?;
        if i == 0 {
            series
                .label("publish")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], PUBLISH.stroke_width(2)));
        }
        if r.consume.messages > 0 || r.timeseries.iter().any(|p| p.consume_mb_per_sec > 0.0) {
            let series = chart
                .draw_series(LineSeries::new(consume, CONSUME.stroke_width(2)))
                .map_err(plot_error)?;
            if i == 0 {
                series.label("consume").legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], CONSUME.stroke_width(2))
                });
            }
        }
    }
    legend(&mut chart)
}

fn p99_over_time(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    repeats: &[RepeatResult],
) -> anyhow::Result<()> {
    let series: Vec<Vec<(f64, f64)>> = repeats
        .iter()
        .map(|r| {
            r.timeseries
                .iter()
                .filter(|p| p.publish_p99_us > 0.0)
                .map(|p| (p.t, p.publish_p99_us / 1000.0))
                .collect()
        })
        .collect();
    let t_max = series.iter().flatten().map(|p| p.0).fold(1.0, f64::max);
    let y_max = series.iter().flatten().map(|p| p.1).fold(0.001, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption("publish p99 per second", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since producers started")
        .y_desc("p99 (ms)")
        .draw()
        .map_err(plot_error)?;
    for points in series {
        chart
            .draw_series(LineSeries::new(points, PUBLISH.stroke_width(2)))
            .map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_maps_percentiles() {
        assert!((nines(90.0, 1_000_000) - 1.0).abs() < 1e-9);
        assert!((nines(99.9, 1_000_000) - 3.0).abs() < 1e-9);
        assert_eq!(nines(0.0, 10), 0.0);
        // The maximum sits at the histogram's resolution limit, log10(count).
        assert!((nines(100.0, 1000) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_label(&1.0), "90%");
        assert_eq!(percentile_label(&2.0), "99%");
        assert_eq!(percentile_label(&4.0), "99.99%");
    }
}
