//! SVG charts with plotters: the latency distribution of every mechanism per
//! message size (and of the wake-up rows), and throughput per message size.
//!
//! Latency charts plot each row's merged histogram (all measured runs) as a
//! percentile curve: x is "nines" (0 = the fastest round trip, 1 = 90 %,
//! 2 = 99 %, 3 = 99.9 %, …, up to what the sample count supports), y the
//! round trip on a log scale. Throughput charts plot the median rate per size,
//! messages per second and bytes per second, log scale.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::plumbing::Res;
use super::report::{self, Outcome, Report, Section};

const W: u32 = 1180;
const H: u32 = 580;
const LEGEND_W: u32 = 360;

/// Draws every chart into `dir`; returns the files written.
pub fn draw(report: &Report, dir: &Path) -> Res<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (g, rows) in report.groups() {
        let series: Vec<(&str, &Histogram<u64>)> = rows
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Latency(l) => Some((r.name.as_str(), &l.merged)),
                _ => None,
            })
            .collect();
        let (file, title) = match g.section {
            Section::Latency => (
                format!("latency_{}B.svg", g.size),
                format!("Round-trip latency, {} B messages, 2 processes", g.size),
            ),
            Section::Wakeup => (
                "wakeup.svg".to_owned(),
                "Wake-up round trip, 2 processes".to_owned(),
            ),
            _ => continue,
        };
        if series.is_empty() {
            continue;
        }
        let path = dir.join(file);
        latency_chart(&path, &title, &series)?;
        files.push(path);
    }
    for pairs in [1, 2] {
        let sizes: Vec<usize> = report
            .sizes
            .iter()
            .copied()
            .filter(|&s| {
                report
                    .rows
                    .iter()
                    .any(|r| r.group.section == Section::Throughput { pairs } && r.group.size == s)
            })
            .collect();
        if sizes.is_empty() {
            continue;
        }
        let mut names: Vec<&str> = Vec::new();
        for r in &report.rows {
            if r.group.section == (Section::Throughput { pairs })
                && matches!(r.outcome, Outcome::Rate { .. })
                && !names.contains(&r.name.as_str())
            {
                names.push(&r.name);
            }
        }
        let series: Vec<(&str, Vec<Option<f64>>)> = names
            .iter()
            .map(|&n| {
                let v = sizes
                    .iter()
                    .map(|&s| {
                        report.rows.iter().find_map(|r| match &r.outcome {
                            Outcome::Rate { per_sec, .. }
                                if r.name == n
                                    && r.group.size == s
                                    && r.group.section == (Section::Throughput { pairs }) =>
                            {
                                Some(per_sec.median)
                            }
                            _ => None,
                        })
                    })
                    .collect();
                (n, v)
            })
            .collect();
        let path = dir.join(format!("throughput_{pairs}to{pairs}.svg"));
        let title = format!("Throughput, {pairs} -> {pairs} (median of runs)");
        throughput_chart(&path, &title, &sizes, &series)?;
        files.push(path);
    }
    Ok(files)
}

fn color(i: usize) -> RGBColor {
    // Distinct, print-friendly colours (Okabe-Ito, then Tableau).
    const C: [(u8, u8, u8); 12] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (86, 180, 233),
        (230, 159, 0),
        (0, 0, 0),
        (170, 150, 0),
        (148, 103, 189),
        (140, 86, 75),
        (127, 127, 127),
        (188, 189, 34),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// Draws names and colour swatches down the legend area.
fn legend(area: &DrawingArea<SVGBackend<'_>, Shift>, names: &[&str]) -> Res {
    for (i, name) in names.iter().enumerate() {
        let y = 60 + 24 * i as i32;
        area.draw(&PathElement::new(
            vec![(8, y), (36, y)],
            color(i).stroke_width(3),
        ))?;
        area.draw(&Text::new(
            (*name).to_owned(),
            (44, y - 7),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    Ok(())
}

/// "x nines" as a percentile label.
fn nines(x: f64) -> String {
    if (x - x.round()).abs() > 1e-9 {
        return String::new();
    }
    match x.round() as i64 {
        0 => "min".to_owned(),
        1 => "90%".to_owned(),
        2 => "99%".to_owned(),
        3 => "99.9%".to_owned(),
        4 => "99.99%".to_owned(),
        5 => "99.999%".to_owned(),
        n => format!("{n} nines"),
    }
}

fn latency_chart(path: &Path, title: &str, series: &[(&str, &Histogram<u64>)]) -> Res {
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (area, legend_area) = root.split_horizontally(W - LEGEND_W);
    // Up to 99.99 %, but no further than the samples support.
    let top = |h: &Histogram<u64>| (h.len().max(10) as f64).log10().floor().clamp(1.0, 4.0);
    let max_x = series.iter().map(|(_, h)| top(h)).fold(1.0, f64::max);
    let lo = series
        .iter()
        .map(|(_, h)| h.min().max(1) as f64)
        .fold(f64::INFINITY, f64::min)
        / 1.5;
    let hi = series
        .iter()
        .map(|(_, h)| h.value_at_quantile(1.0 - 10f64.powf(-top(h))) as f64)
        .fold(1.0, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 20).into_font())
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(78)
        .build_cartesian_2d(0f64..max_x, (lo.max(1.0)..hi.max(10.0)).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("round trip")
        .x_labels(max_x as usize * 4 + 1)
        .x_label_formatter(&|x| nines(*x))
        .y_label_formatter(&|y| report::ns(*y))
        .draw()?;
    for (i, (_, h)) in series.iter().enumerate() {
        let end = top(h);
        let steps = (end * 50.0) as usize;
        let pts: Vec<(f64, f64)> = (0..=steps)
            .map(|k| {
                let x = end * k as f64 / steps as f64;
                let q = 1.0 - 10f64.powf(-x);
                (x, h.value_at_quantile(q).max(1) as f64)
            })
            .collect();
        chart.draw_series(LineSeries::new(pts, color(i).stroke_width(2)))?;
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    legend(&legend_area, &names)?;
    root.present()?;
    Ok(())
}

fn throughput_chart(
    path: &Path,
    title: &str,
    sizes: &[usize],
    series: &[(&str, Vec<Option<f64>>)],
) -> Res {
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plots, legend_area) = root.split_horizontally(W - LEGEND_W);
    let plots = plots.titled(title, ("sans-serif", 20).into_font())?;
    let (left, right) = plots.split_horizontally((W - LEGEND_W) / 2);
    let n = sizes.len();
    let x_range = -0.4f64..(n as f64 - 0.6);
    let size_label = |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() > 1e-9 || i < 0.0 {
            return String::new();
        }
        sizes
            .get(i as usize)
            .map_or(String::new(), |s| format!("{s} B"))
    };
    for (panel, bytes) in [(&left, false), (&right, true)] {
        let values: Vec<f64> = series
            .iter()
            .flat_map(|(_, v)| {
                v.iter()
                    .enumerate()
                    .filter_map(|(i, x)| x.map(|x| if bytes { x * sizes[i] as f64 } else { x }))
            })
            .filter(|v| *v > 0.0)
            .collect();
        let lo = values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .max(1e-3)
            / 2.0;
        let hi = values.iter().copied().fold(1.0, f64::max) * 2.0;
        let lo = if lo.is_finite() { lo } else { 1.0 };
        let mut chart = ChartBuilder::on(panel)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(78)
            .build_cartesian_2d(x_range.clone(), (lo..hi).log_scale())?;
        let unit = if bytes { "B" } else { "" };
        chart
            .configure_mesh()
            .x_desc("message size")
            .y_desc(if bytes {
                "bytes per second"
            } else {
                "messages per second"
            })
            .disable_x_mesh()
            .x_labels(n * 10 + 1)
            .x_label_formatter(&size_label)
            .y_label_formatter(&|y| report::si(*y, unit))
            .draw()?;
        for (i, (_, v)) in series.iter().enumerate() {
            let pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .filter_map(|(k, x)| {
                    x.filter(|x| *x > 0.0)
                        .map(|x| (k as f64, if bytes { x * sizes[k] as f64 } else { x }))
                })
                .collect();
            chart.draw_series(LineSeries::new(pts.clone(), color(i).stroke_width(2)))?;
            chart.draw_series(
                pts.into_iter()
                    .map(|p| Circle::new(p, 4, color(i).filled())),
            )?;
        }
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    legend(&legend_area, &names)?;
    root.present()?;
    Ok(())
}
