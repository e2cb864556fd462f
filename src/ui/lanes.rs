//! Painting the time-aligned lanes (waveform, log-mel, attention bars, score strip, time axis).
//! Every lane maps time with the same [`View`]; the interaction (zoom, pan, seek, select)
//! lives in the app, which owns the state.

use egui::{pos2, Align2, Color32, FontId, Painter, Pos2, Rect, Shape, Stroke, StrokeKind};

use super::theme;
use super::timeline::View;

/// Min/max of every 160 samples (10 ms), so the waveform of a long clip costs one pass over
/// the visible buckets per frame.
pub fn wave_summary(samples: &[f32]) -> Vec<(f32, f32)> {
    samples
        .chunks(160)
        .map(|c| {
            c.iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
        })
        .collect()
}

pub fn lane_background(p: &Painter, r: Rect, name: &str, label_rect: Rect) {
    p.rect_filled(r, 3.0, theme::LANE_BG);
    p.text(
        pos2(label_rect.right() - 8.0, label_rect.center().y),
        Align2::RIGHT_CENTER,
        name,
        FontId::proportional(12.0),
        theme::TEXT_DIM,
    );
}

pub fn waveform(p: &Painter, r: Rect, view: &View, samples: &[f32], summary: &[(f32, f32)]) {
    let rate = f64::from(crate::SAMPLE_RATE);
    let mid = r.center().y;
    let half = r.height() * 0.45;
    // Peak-normalise so quiet clips stay readable.
    let peak = summary
        .iter()
        .map(|(lo, hi)| lo.abs().max(hi.abs()))
        .fold(1e-6f32, f32::max);
    let cols = r.width().max(1.0) as usize;
    let per_col = view.span() * rate / cols as f64;
    let mut shapes = Vec::with_capacity(cols);
    for c in 0..cols {
        let t0 = view.start * rate + c as f64 * per_col;
        let t1 = t0 + per_col;
        let (lo, hi) = if per_col >= 160.0 {
            let (b0, b1) = ((t0 / 160.0) as usize, ((t1 / 160.0).ceil() as usize));
            summary
                .get(b0.min(summary.len())..b1.min(summary.len()))
                .unwrap_or(&[])
                .iter()
                .fold((0.0f32, 0.0f32), |(a, b), &(lo, hi)| (a.min(lo), b.max(hi)))
        } else {
            let (s0, s1) = (t0 as usize, (t1.ceil() as usize).max(t0 as usize + 1));
            samples
                .get(s0.min(samples.len())..s1.min(samples.len()))
                .unwrap_or(&[])
                .iter()
                .fold((0.0f32, 0.0f32), |(a, b), &x| (a.min(x), b.max(x)))
        };
        let x = r.left() + c as f32 + 0.5;
        let (y0, y1) = (mid - hi / peak * half, mid - lo / peak * half);
        shapes.push(Shape::line_segment(
            [pos2(x, y0), pos2(x, y1.max(y0 + 1.0))],
            Stroke::new(1.0, theme::WAVE),
        ));
    }
    p.extend(shapes);
}

/// The spectrogram texture covers the whole clip; the view picks its part by uv.
pub fn spectrogram(p: &Painter, r: Rect, view: &View, tex: &egui::TextureHandle, duration: f64) {
    let d = duration.max(1e-6);
    let uv = Rect::from_min_max(
        pos2((view.start / d) as f32, 0.0),
        pos2((view.end / d) as f32, 1.0),
    );
    p.image(tex.id(), r, uv, Color32::WHITE);
}

/// The attention lane and what to draw in it.
pub struct Attention<'a> {
    pub norm: &'a [f32],
    pub kept: &'a [bool],
    pub bounds: &'a [usize],
    pub windows: &'a [usize],
    pub top: &'a [usize],
    pub seconds_per_token: f64,
    pub hovered: Option<usize>,
}

/// Token range visible in the view.
fn visible(view: &View, spt: f64, n: usize) -> (usize, usize) {
    let a = ((view.start / spt).floor().max(0.0) as usize).min(n);
    let b = ((view.end / spt).ceil().max(0.0) as usize).min(n);
    (a, b)
}

pub fn attention(p: &Painter, r: Rect, view: &View, a: &Attention) {
    let n = a.norm.len();
    let spt = a.seconds_per_token;
    let (t0, t1) = visible(view, spt, n);
    let x_of = |t: usize| view.x_of(t as f64 * spt, r.left(), r.width());
    let bottom = r.bottom() - 1.0;
    let usable = r.height() - 12.0;
    // Light horizontal guides at 25 % steps.
    for q in 1..4 {
        let y = bottom - usable * q as f32 / 4.0;
        p.hline(r.x_range(), y, Stroke::new(1.0, theme::GRID));
    }
    let px_per_token = (r.width() as f64 * spt / view.span()) as f32;
    let mut shapes = Vec::new();
    if px_per_token >= 1.0 {
        let gap = if px_per_token > 4.0 { 1.0 } else { 0.0 };
        for t in t0..t1 {
            let h = a.norm[t].clamp(0.0, 1.0) * usable;
            let colour = if a.kept.get(t).copied().unwrap_or(false) {
                theme::KEPT
            } else {
                theme::DROPPED
            };
            let rect =
                Rect::from_min_max(pos2(x_of(t), bottom - h), pos2(x_of(t + 1) - gap, bottom));
            shapes.push(Shape::rect_filled(rect, 0.0, colour));
        }
    } else {
        // More tokens than pixels: one bar per pixel column (tallest, kept if any is kept).
        let cols = r.width().max(1.0) as usize;
        let mut col = vec![(0.0f32, false); cols];
        for t in t0..t1 {
            let c = ((x_of(t) - r.left()) as usize).min(cols - 1);
            col[c].0 = col[c].0.max(a.norm[t]);
            col[c].1 |= a.kept.get(t).copied().unwrap_or(false);
        }
        for (c, (v, kept)) in col.into_iter().enumerate() {
            let x = r.left() + c as f32 + 0.5;
            let colour = if kept { theme::KEPT } else { theme::DROPPED };
            shapes.push(Shape::line_segment(
                [
                    pos2(x, bottom - v.clamp(0.0, 1.0) * usable),
                    pos2(x, bottom),
                ],
                Stroke::new(1.0, colour),
            ));
        }
    }
    p.extend(shapes);
    for &b in a
        .bounds
        .iter()
        .filter(|&&b| b > 0 && b < n && b >= t0 && b <= t1)
    {
        p.vline(x_of(b), r.y_range(), Stroke::new(1.0, theme::SEGMENT));
    }
    for &w in a.windows.iter().filter(|&&w| w > 0 && w >= t0 && w <= t1) {
        let x = x_of(w);
        p.vline(x, r.y_range(), Stroke::new(2.0, theme::WINDOW));
        p.text(
            pos2(x + 3.0, r.top() + 2.0),
            Align2::LEFT_TOP,
            "window",
            FontId::proportional(10.0),
            theme::WINDOW,
        );
    }
    for (rank, &t) in a.top.iter().enumerate().filter(|(_, &t)| t >= t0 && t < t1) {
        let x = (x_of(t) + x_of(t + 1)) / 2.0;
        let y = bottom - a.norm[t].clamp(0.0, 1.0) * usable - 3.0;
        p.add(Shape::convex_polygon(
            vec![pos2(x - 4.0, y - 7.0), pos2(x + 4.0, y - 7.0), pos2(x, y)],
            theme::TOP,
            Stroke::NONE,
        ));
        if rank < 3 {
            p.text(
                pos2(x, y - 8.0),
                Align2::CENTER_BOTTOM,
                format!("{}", rank + 1),
                FontId::proportional(10.0),
                theme::TOP,
            );
        }
    }
    if let Some(t) = a.hovered.filter(|&t| t < n) {
        let rect = Rect::from_min_max(
            pos2(x_of(t), r.top()),
            pos2(x_of(t + 1).max(x_of(t) + 2.0), bottom),
        );
        p.rect_stroke(
            rect,
            0.0,
            Stroke::new(1.0, theme::HOVER),
            StrokeKind::Outside,
        );
    }
}

/// Figure 1 style strip: every token coloured by its normalised score.
pub fn strip(p: &Painter, r: Rect, view: &View, norm: &[f32], spt: f64) {
    let (t0, t1) = visible(view, spt, norm.len());
    let cols = r.width().max(1.0) as usize;
    let mut col = vec![f32::NEG_INFINITY; cols];
    for (t, &v) in norm.iter().enumerate().take(t1).skip(t0) {
        let x0 = view.x_of(t as f64 * spt, r.left(), r.width()) - r.left();
        let x1 = view.x_of((t + 1) as f64 * spt, r.left(), r.width()) - r.left();
        let (c0, c1) = (
            x0.max(0.0) as usize,
            (x1.ceil().max(x0 + 1.0) as usize).min(cols),
        );
        for c in col.iter_mut().take(c1).skip(c0.min(cols)) {
            *c = c.max(v);
        }
    }
    let shapes = col
        .into_iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(c, v)| {
            let x = r.left() + c as f32;
            Shape::rect_filled(
                Rect::from_min_max(pos2(x, r.top()), pos2(x + 1.0, r.bottom())),
                0.0,
                theme::ramp(v.sqrt()),
            )
        })
        .collect::<Vec<_>>();
    p.extend(shapes);
}

/// A time axis with "nice" tick steps.
pub fn axis(p: &Painter, r: Rect, view: &View) {
    let span = view.span();
    let target = span / (r.width() as f64 / 90.0).max(1.0);
    let step = [
        0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
    ]
    .into_iter()
    .find(|s| *s >= target)
    .unwrap_or(600.0);
    let mut t = (view.start / step).ceil() * step;
    while t <= view.end + 1e-9 {
        let x = view.x_of(t, r.left(), r.width());
        p.vline(
            x,
            r.top()..=r.top() + 4.0,
            Stroke::new(1.0, theme::TEXT_DIM),
        );
        let label = if step < 0.1 {
            format!("{t:.2} s")
        } else if step < 1.0 {
            format!("{t:.1} s")
        } else {
            format!("{t:.0} s")
        };
        p.text(
            pos2(x, r.top() + 5.0),
            Align2::CENTER_TOP,
            label,
            FontId::proportional(11.0),
            theme::TEXT_DIM,
        );
        t += step;
    }
}

/// Selection shading and playhead over a column of lanes.
pub fn overlays(p: &Painter, r: Rect, view: &View, selection: Option<(f64, f64)>, playhead: f64) {
    if let Some((a, b)) = selection {
        let (x0, x1) = (
            view.x_of(a, r.left(), r.width()),
            view.x_of(b, r.left(), r.width()),
        );
        let sel = Rect::from_min_max(
            pos2(x0.max(r.left()), r.top()),
            pos2(x1.min(r.right()), r.bottom()),
        );
        if sel.width() > 0.0 {
            p.rect_filled(sel, 0.0, theme::SELECTION);
        }
    }
    let x = view.x_of(playhead, r.left(), r.width());
    if r.x_range().contains(x) {
        p.vline(x, r.y_range(), Stroke::new(1.5, theme::PLAYHEAD));
        p.add(Shape::convex_polygon(
            vec![
                pos2(x - 5.0, r.top()),
                pos2(x + 5.0, r.top()),
                pos2(x, r.top() + 6.0),
            ],
            theme::PLAYHEAD,
            Stroke::NONE,
        ));
    }
}

/// Token under screen point `pos` in a lane, if any.
pub fn token_at(view: &View, r: Rect, pos: Pos2, spt: f64, n: usize) -> Option<usize> {
    if !r.contains(pos) || spt <= 0.0 {
        return None;
    }
    let t = view.t_of(pos.x, r.left(), r.width());
    let i = (t / spt).floor();
    (i >= 0.0 && (i as usize) < n).then_some(i as usize)
}
