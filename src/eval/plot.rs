//! The metric-vs-keep-ratio plot: one line per pruning method, the unpruned model as a grey
//! horizontal line. Rendered with plotters into an RGB buffer (labels in the Ubuntu font that
//! egui ships, so no system font is needed) and written as PNG.

use std::path::Path;

use plotters::prelude::*;

use super::report::{baseline, Table};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("nothing to plot: no pruned setting has a value for `{0}`")]
    Empty(String),
    #[error("drawing the plot failed: {0}")]
    Draw(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: png::EncodingError,
    },
}

const FONT: &str = "prunescope-sans";
const W: u32 = 900;
const H: u32 = 560;

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

/// Draws metric `col` of `t` against the keep ratio and writes a PNG.
pub fn plot_png(t: &Table, col: usize, path: &Path) -> Result<(), PlotError> {
    static FONT_ONCE: std::sync::Once = std::sync::Once::new();
    FONT_ONCE.call_once(|| {
        // A font that fails to parse leaves the plot without labels rather than failing it.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
    let m = &t.metrics[col];
    let mut methods: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in t.rows.iter().filter(|r| !r.is_unpruned()) {
        let Some(v) = r.values[col] else { continue };
        match methods.iter_mut().find(|(n, _)| *n == r.method) {
            Some((_, pts)) => pts.push((r.keep, v)),
            None => methods.push((r.method.clone(), vec![(r.keep, v)])),
        }
    }
    if methods.is_empty() {
        return Err(PlotError::Empty(m.name.clone()));
    }
    for (_, pts) in &mut methods {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let base = baseline(t).and_then(|b| b.values[col].map(|v| (b.method.clone(), v)));
    let ys = methods
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .chain(base.as_ref().map(|b| b.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (y0, y1) = (
        (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY }),
        hi + pad,
    );

    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title = format!("{} — {} ({})", m.name, t.model, t.dataset);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0f64..1.02f64, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("fraction of tokens kept")
            .y_desc(format!(
                "{}{}",
                m.name,
                if m.higher_is_better {
                    " (higher is better)"
                } else {
                    " (lower is better)"
                }
            ))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        if let Some((name, v)) = &base {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, *v), (1.02, *v)],
                    RGBColor(150, 150, 150).stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(format!("{name} (unpruned)"))
                .legend(|(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 20, y)],
                        RGBColor(150, 150, 150).stroke_width(2),
                    )
                });
        }
        for (i, (name, pts)) in methods.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(draw_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(if m.higher_is_better {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    write_png(path, &buf).map_err(|source| PlotError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_png(path: &Path, rgb: &[u8]) -> Result<(), png::EncodingError> {
    let f = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(rgb)?;
    w.finish()
}
