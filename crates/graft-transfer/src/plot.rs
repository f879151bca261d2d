//! Figures for reports: test accuracy against labels per class, one line per strategy.
//!
//! Drawn with `plotters` into an in-memory RGB buffer (encoded as PNG with `image`) and into an
//! SVG string. Text is rendered with DejaVu Sans, embedded in the binary
//! (`assets/DejaVuSans.ttf`, licence in `assets/DejaVuSans-LICENSE.txt`), so PNGs look the same
//! on every machine and no system font library is needed. Files are written atomically.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::TransferError;

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Size of the figures in pixels (PNG) or user units (SVG).
pub const FIGURE_SIZE: (u32, u32) = (1000, 640);

/// Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
const PALETTE: [RGBColor; 9] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(128, 128, 128), // grey
    RGBColor(136, 34, 85),   // wine
];

/// One strategy's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Strategy id, shown in the legend.
    pub strategy: String,
    /// `(labels per class, mean test accuracy, standard deviation)`, accuracy as a fraction
    /// in `[0, 1]`. Labels per class must be positive (the x axis is logarithmic); pass the
    /// actual per-class count for the "all labels" budget. Any order; drawn sorted by x.
    pub points: Vec<(f64, f64, f64)>,
}

/// Curves from `(strategy, k, mean accuracy, std)` cells: one [`Series`] per strategy (in
/// order of first appearance), with `k = None` (all labels) placed at `all_labels_per_class`.
pub fn series_from_cells<'a>(
    cells: impl IntoIterator<Item = (&'a str, Option<usize>, f64, f64)>,
    all_labels_per_class: f64,
) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for (strategy, k, mean, std) in cells {
        let point = (k.map_or(all_labels_per_class, |k| k as f64), mean, std);
        match out.iter_mut().find(|s| s.strategy == strategy) {
            Some(s) => s.points.push(point),
            None => out.push(Series {
                strategy: strategy.to_string(),
                points: vec![point],
            }),
        }
    }
    out
}

fn ensure_font() -> Result<(), TransferError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(TransferError::Config(
            "the embedded figure font (DejaVuSans.ttf) could not be parsed".into(),
        ))
    }
}

/// Axis ranges: x (labels per class, drawn log-scaled) and y (accuracy).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axes {
    x: (f64, f64),
    y: (f64, f64),
}

/// Checks the data and returns the axis ranges, padded.
fn ranges(series: &[Series]) -> Result<Axes, String> {
    if series.is_empty() || series.iter().all(|s| s.points.is_empty()) {
        return Err("there is nothing to plot (no series or no points)".into());
    }
    let (mut x_lo, mut x_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for &(x, m, sd) in &s.points {
            if !(x.is_finite() && x > 0.0) {
                return Err(format!(
                    "{}: labels per class must be positive and finite for a log axis, got {x}",
                    s.strategy
                ));
            }
            if !(m.is_finite() && sd.is_finite() && sd >= 0.0) {
                return Err(format!(
                    "{}: accuracy {m} ± {sd} at {x} labels per class is not a finite mean with a non-negative std",
                    s.strategy
                ));
            }
            x_lo = x_lo.min(x);
            x_hi = x_hi.max(x);
            y_lo = y_lo.min(m - sd);
            y_hi = y_hi.max(m + sd);
        }
    }
    // A margin of a quarter decade either side keeps end markers off the frame.
    let x = (x_lo / 10f64.powf(0.25), x_hi * 10f64.powf(0.25));
    let span = (y_hi - y_lo).max(0.05);
    let mut y = (y_lo - 0.08 * span, y_hi + 0.08 * span);
    let fractions = series
        .iter()
        .flat_map(|s| &s.points)
        .all(|&(_, m, _)| (0.0..=1.0).contains(&m));
    if fractions {
        y = (y.0.max(0.0), y.1.min(1.0));
    }
    Ok(Axes { x, y })
}

/// The label budgets that occur in `series`: the x axis gets a tick at each.
fn budgets(series: &[Series]) -> Vec<f64> {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

/// A tick label: integers without decimals, others with up to three significant decimals.
fn tick_label(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 * x.abs().max(1.0) {
        format!("{}", x.round())
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draws one strategy's line and markers and registers its legend entry (line and marker).
/// `$c` is bound to the marker position: a data point on the chart, `(0, 0)` in the legend.
macro_rules! line_with_markers {
    ($chart:expr, $err:expr, $points:expr, $label:expr, $color:expr, |$c:ident| $marker:expr) => {{
        let color = $color;
        $chart
            .draw_series(LineSeries::new(
                $points.iter().map(|&(x, m, _)| (x, m)),
                color.stroke_width(3),
            ))
            .map_err($err)?
            .label($label)
            .legend(move |(x, y)| {
                let $c = (0, 0);
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(-14, 0), (14, 0)], color.stroke_width(3))
                    + $marker
            });
        $chart
            .draw_series($points.iter().map(|&(x, m, _)| {
                let $c = (x, m);
                $marker
            }))
            .map_err($err)?;
    }};
}

/// A strategy's points, sorted by budget and dodged along the log axis: (palette index,
/// series, (x, mean, sd) per budget).
type Curve<'s> = (usize, &'s Series, Vec<(f64, f64, f64)>);

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
    Axes {
        x: x_range,
        y: y_range,
    }: Axes,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 28))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(76)
        .build_cartesian_2d(
            (x_range.0..x_range.1)
                .log_scale()
                .with_key_points(budgets(series)),
            y_range.0..y_range.1,
        )
        .map_err(e)?;
    let y_decimals = if y_range.1 - y_range.0 > 0.15 { 0 } else { 1 };
    chart
        .configure_mesh()
        .x_desc("labels per class (log scale)")
        .y_desc("test accuracy")
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 16))
        .x_label_formatter(&|x| tick_label(*x))
        .y_label_formatter(&|y| format!("{:.*}%", y_decimals, y * 100.0))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(e)?;
    let curves = dodged_curves(series);
    // Bands first, so every line stays visible on top of every band.
    draw_bands(&mut chart, &curves, series.len()).map_err(e)?;
    draw_lines(&mut chart, &curves).map_err(e)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .margin(12)
        .legend_area_size(40)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Each non-empty series' points sorted by budget, each series drawn a little left or right
/// of the budget it belongs to (at most ±7% on the log axis), so markers and whiskers of
/// many strategies do not hide each other.
fn dodged_curves(series: &[Series]) -> Vec<Curve<'_>> {
    let centre = (series.len().max(1) - 1) as f64 / 2.0;
    let spread = 0.14 / series.len().max(2) as f64;
    series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.points.is_empty())
        .map(|(i, s)| {
            let dodge = ((i as f64 - centre) * spread).exp();
            let mut p: Vec<(f64, f64, f64)> = s
                .points
                .iter()
                .map(|&(x, m, sd)| (x * dodge, m, sd))
                .collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            (i, s, p)
        })
        .collect()
}

/// The ± one standard deviation band of each curve, and its whiskers.
fn draw_bands<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    curves: &[Curve<'_>],
    series_count: usize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // Overlapping bands darken: the more series, the lighter each band.
    let band_alpha = (0.54 / series_count.max(1) as f64).clamp(0.06, 0.18);
    for (i, _, points) in curves {
        let color = PALETTE[i % PALETTE.len()];
        if points.len() > 1 {
            let upper = points.iter().map(|&(x, m, sd)| (x, m + sd));
            let lower = points.iter().rev().map(|&(x, m, sd)| (x, m - sd));
            let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(band_alpha).filled(),
            )))?;
        }
        // Whiskers make the spread readable where a band has no width (a single budget).
        chart.draw_series(points.iter().map(|&(x, m, sd)| {
            PathElement::new(
                vec![(x, m - sd), (x, m + sd)],
                color.mix(0.6).stroke_width(2),
            )
        }))?;
    }
    Ok(())
}

/// Each curve's line and markers, with its legend entry.
fn draw_lines<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    curves: &[Curve<'_>],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let e = |e| e;
    for (i, s, points) in curves {
        let color = PALETTE[i % PALETTE.len()];
        let label = s.strategy.as_str();
        // Marker shapes cycle with the colours, so lines stay apart in greyscale too.
        match i % 4 {
            0 => line_with_markers!(chart, e, points, label, color, |c| Circle::new(
                c,
                5,
                color.filled()
            )),
            1 => line_with_markers!(chart, e, points, label, color, |c| TriangleMarker::new(
                c,
                7,
                color.filled()
            )),
            2 => line_with_markers!(chart, e, points, label, color, |c| Cross::new(
                c,
                5,
                color.stroke_width(3)
            )),
            _ => line_with_markers!(chart, e, points, label, color, |c| Circle::new(
                c,
                5,
                color.stroke_width(2)
            )),
        }
    }
    Ok(())
}

/// The figure as PNG bytes.
fn render_png(title: &str, series: &[Series], ranges: Axes) -> Result<Vec<u8>, String> {
    let (w, h) = FIGURE_SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    draw(
        BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(),
        title,
        series,
        ranges,
    )?;
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(png)
}

/// The figure as an SVG document.
fn render_svg(title: &str, series: &[Series], ranges: Axes) -> Result<String, String> {
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, FIGURE_SIZE).into_drawing_area(),
        title,
        series,
        ranges,
    )?;
    Ok(svg)
}

/// Draws test accuracy against labels per class, one line with markers per strategy and a
/// translucent band of ± one standard deviation, with a log-scaled x axis and a legend, and
/// writes it to `png` and `svg` (each atomically: a temporary file in the same folder, then a
/// rename; parent folders are created).
///
/// Fails without writing anything when there are no points, when a label count is not
/// positive, or when a mean or std is not finite.
pub fn accuracy_vs_labels(
    title: &str,
    series: &[Series],
    png: &Path,
    svg: &Path,
) -> Result<(), TransferError> {
    ensure_font()?;
    let bad = |what: &Path, msg: String| {
        TransferError::Config(format!("cannot draw {}: {msg}", what.display()))
    };
    let r = ranges(series).map_err(|m| bad(png, m))?;
    let png_bytes = render_png(title, series, r).map_err(|m| bad(png, m))?;
    let svg_text = render_svg(title, series, r).map_err(|m| bad(svg, m))?;
    graft_nn::checkpoint::write_atomically(png, &png_bytes)?;
    graft_nn::checkpoint::write_atomically(svg, svg_text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Series> {
        vec![
            Series {
                strategy: "scratch".into(),
                points: vec![
                    (1.0, 0.55, 0.04),
                    (5.0, 0.63, 0.03),
                    (10.0, 0.68, 0.025),
                    (50.0, 0.78, 0.015),
                    (3200.0, 0.90, 0.005),
                ],
            },
            Series {
                strategy: "linear-probe".into(),
                points: vec![
                    (10.0, 0.74, 0.02),
                    (1.0, 0.66, 0.05),
                    (5.0, 0.71, 0.03),
                    (50.0, 0.77, 0.01),
                    (3200.0, 0.80, 0.004),
                ],
            },
            Series {
                strategy: "fine-tune".into(),
                points: vec![
                    (1.0, 0.64, 0.06),
                    (5.0, 0.72, 0.04),
                    (10.0, 0.76, 0.03),
                    (50.0, 0.82, 0.015),
                    (3200.0, 0.92, 0.004),
                ],
            },
        ]
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("graft-plot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = temp_dir("write");
        let (png, svg) = (dir.join("acc.png"), dir.join("acc.svg"));
        accuracy_vs_labels("animals, mlp", &sample(), &png, &svg).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), FIGURE_SIZE);
        // Not blank: many distinct colours (lines, bands, text antialiasing).
        let rgb = img.to_rgb8();
        let mut colours: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() > 50, "{} colours", colours.len());
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..40.min(text.len())]);
        for needle in [
            "labels per class",
            "test accuracy",
            "fine-tune",
            "linear-probe",
            "animals, mlp",
        ] {
            assert!(text.contains(needle), "SVG lacks {needle}");
        }
        // Only the two figures; no temporary files left.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_a_sample_for_inspection() {
        // Kept in the temp dir so a person can look at it.
        let dir = std::env::temp_dir().join("graft-plot-sample");
        accuracy_vs_labels(
            "animals: Cat/Dog test accuracy, mlp, 5 seeds",
            &sample(),
            &dir.join("accuracy_vs_labels.png"),
            &dir.join("accuracy_vs_labels.svg"),
        )
        .unwrap();
    }

    #[test]
    fn single_budget_and_single_series_draw() {
        let dir = temp_dir("single");
        let s = vec![Series {
            strategy: "scratch".into(),
            points: vec![(10.0, 0.5, 0.1)],
        }];
        accuracy_vs_labels("one", &s, &dir.join("a.png"), &dir.join("a.svg")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_data_is_refused_without_writing() {
        let dir = temp_dir("bad");
        let (png, svg) = (dir.join("a.png"), dir.join("a.svg"));
        let err = accuracy_vs_labels("t", &[], &png, &svg).unwrap_err();
        assert!(err.to_string().contains("nothing to plot"), "{err}");
        let zero = vec![Series {
            strategy: "scratch".into(),
            points: vec![(0.0, 0.5, 0.1)],
        }];
        let err = accuracy_vs_labels("t", &zero, &png, &svg).unwrap_err();
        assert!(err.to_string().contains("log axis"), "{err}");
        let nan = vec![Series {
            strategy: "scratch".into(),
            points: vec![(1.0, f64::NAN, 0.1)],
        }];
        assert!(accuracy_vs_labels("t", &nan, &png, &svg).is_err());
        assert!(!dir.exists());
    }

    #[test]
    fn ranges_pad_and_clamp() {
        let Axes {
            x: (x0, x1),
            y: (y0, y1),
        } = ranges(&sample()).unwrap();
        assert!(x0 < 1.0 && x0 > 0.5 && x1 > 3200.0 && x1 < 6000.0);
        assert!((0.0..0.51).contains(&y0) && y1 > 0.924 && y1 <= 1.0);
        let full = vec![Series {
            strategy: "s".into(),
            points: vec![(1.0, 0.02, 0.1), (2.0, 0.99, 0.1)],
        }];
        let (y0, y1) = ranges(&full).unwrap().y;
        assert_eq!((y0, y1), (0.0, 1.0));
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(1.0), "1");
        assert_eq!(tick_label(1000.0), "1000");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(0.30000000000000004), "0.3");
    }

    #[test]
    fn cells_to_series() {
        let s = series_from_cells(
            [
                ("scratch", Some(10), 0.6, 0.01),
                ("fine-tune", Some(10), 0.7, 0.01),
                ("scratch", None, 0.9, 0.01),
            ],
            3200.0,
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].strategy, "scratch");
        assert_eq!(s[0].points, vec![(10.0, 0.6, 0.01), (3200.0, 0.9, 0.01)]);
        assert_eq!(s[1].strategy, "fine-tune");
        assert_eq!(s[1].points, vec![(10.0, 0.7, 0.01)]);
    }
}
