//! The attention lane: received attention per token as bars (kept or dropped), merged groups as
//! spans, segment and window boundaries, the top 10, and the hovered word's attention over it.

use egui::RichText;
use egui_plot::{Bar, BarChart, HLine, MarkerShape, PlotPoint, PlotUi, Points, Span, Text, VLine};

use super::context::LaneCtx;
use crate::ui::logic::pool;
use crate::ui::theme;

pub fn items(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
    let Some(s) = c.scores else {
        pui.text(
            Text::new(
                "status",
                PlotPoint::new(c.view.start + c.view.span() / 2.0, 0.58),
                c.waiting,
            )
            .color(theme::TEXT_DIM),
        );
        return;
    };
    merged_spans(pui, c);
    for q in 1..4 {
        pui.hline(
            HLine::new("guide", f64::from(q) / 4.0)
                .color(theme::GRID)
                .width(1.0)
                .allow_hover(false),
        );
    }
    let bars = pool::attention_bars(&c.view, c.cols, &s.norm, &c.marks.kept, c.spt);
    pui.bar_chart(
        BarChart::new(
            "attention",
            bar_items(&bars, |b| if b.kept { theme::KEPT } else { theme::DROPPED }),
        )
        .allow_hover(false),
    );
    if let Some(overlay) = c.overlay {
        let bars: Vec<_> = pool::attention_bars(&c.view, c.cols, overlay, &[], c.spt)
            .into_iter()
            .filter(|b| b.height > 0.0)
            .collect();
        let fill = theme::WORD_HOVER.gamma_multiply(0.8);
        pui.bar_chart(
            BarChart::new("word attention", bar_items(&bars, |_| fill)).allow_hover(false),
        );
    }
    boundaries(pui, c, &s.windows);
    top(pui, c.spt, &s.norm, &s.top);
}

fn bar_items(bars: &[pool::Bar], fill: impl Fn(&pool::Bar) -> egui::Color32) -> Vec<Bar> {
    bars.iter()
        .map(|b| {
            Bar::new(b.centre, f64::from(b.height.clamp(0.0, 1.0)))
                .width(b.width)
                .fill(fill(b))
                .stroke(egui::Stroke::NONE)
        })
        .collect()
}

/// Merged groups of adjacent tokens; neighbouring groups alternate in shade, so where one ends
/// and the next begins shows.
fn merged_spans(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
    for (i, &(lo, hi)) in c.marks.spans.iter().enumerate() {
        let shade = if i % 2 == 0 { 0.08 } else { 0.2 };
        pui.span(
            Span::new("", lo as f64 * c.spt..=(hi + 1) as f64 * c.spt)
                .fill(theme::KEPT.gamma_multiply(shade))
                .border_width(0.0),
        );
    }
}

/// Segment boundaries, and 30 s window boundaries with their label.
fn boundaries(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>, windows: &[usize]) {
    for &b in c.marks.bounds.iter().filter(|&&b| b > 0 && b < c.n) {
        pui.vline(
            VLine::new("segment", b as f64 * c.spt)
                .color(theme::SEGMENT)
                .width(1.0)
                .allow_hover(false),
        );
    }
    for &w in windows.iter().filter(|&&w| w > 0) {
        let x = w as f64 * c.spt;
        pui.vline(
            VLine::new("window", x)
                .color(theme::WINDOW)
                .width(2.0)
                .allow_hover(false),
        );
        pui.text(
            Text::new(
                "window",
                PlotPoint::new(x, 1.14),
                RichText::new(" window").size(10.0),
            )
            .color(theme::WINDOW)
            .anchor(egui::Align2::LEFT_TOP),
        );
    }
}

/// The ten best tokens as markers, the first three numbered.
fn top(pui: &mut PlotUi<'_>, spt: f64, norm: &[f32], top: &[usize]) {
    let marks: Vec<[f64; 2]> = top
        .iter()
        .map(|&t| {
            [
                (t as f64 + 0.5) * spt,
                f64::from(norm[t].clamp(0.0, 1.0)) + 0.05,
            ]
        })
        .collect();
    for (rank, p) in marks.iter().enumerate().take(3) {
        pui.text(
            Text::new(
                "rank",
                PlotPoint::new(p[0], p[1] + 0.03),
                RichText::new(format!("{}", rank + 1)).size(10.0),
            )
            .color(theme::TOP)
            .anchor(egui::Align2::CENTER_BOTTOM),
        );
    }
    pui.points(
        Points::new("top 10", marks)
            .shape(MarkerShape::Down)
            .filled(true)
            .radius(4.0)
            .color(theme::TOP)
            .allow_hover(false),
    );
}

/// The token under `x`: its time, score and whether it is kept (the score strip says the same).
pub fn label(c: &LaneCtx<'_>, x: f64) -> Option<String> {
    let s = c.scores?;
    let t = c.token_at(x)?;
    let kept = c.marks.kept.get(t).copied().unwrap_or(false);
    Some(format!(
        "token {t}\n{:.2} s – {:.2} s\nscore {:.5}\nnormalised {:.3}\n{}",
        t as f64 * c.spt,
        (t + 1) as f64 * c.spt,
        s.ranked()[t],
        s.norm[t],
        if kept { "kept" } else { "dropped" }
    ))
}
