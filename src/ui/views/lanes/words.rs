//! The words lane: the focused cell's words over their spans (a tick for words placed at one
//! instant), the hovered one and those said at the playhead brighter. Labels that would overlap
//! their left neighbour are left out (hover shows every word). Hovering a word shows the audio
//! it read; clicking one seeks to it.

use egui::{Color32, RichText};
use egui_plot::{Bar, BarChart, PlotPoint, PlotUi, Span, Text};

use super::context::LaneCtx;
use crate::ui::logic::words;
use crate::ui::theme;

pub fn items(pui: &mut PlotUi<'_>, c: &LaneCtx<'_>) {
    if c.words.is_empty() {
        let hint = "the words of the hovered cell (or the slider's) show here";
        pui.text(
            Text::new(
                "hint",
                PlotPoint::new(c.view.start + c.view.span() / 2.0, 0.5),
                RichText::new(hint).size(11.0),
            )
            .color(theme::TEXT_DIM),
        );
        return;
    }
    let (view, px_per_s) = (c.view, c.px_per_s());
    let playhead = c.clip.playback.position;
    let mut label_end = f64::NEG_INFINITY;
    for (i, w) in c.words.iter().enumerate() {
        if w.end < view.start || w.start > view.end {
            continue;
        }
        let hot = c.hot_word == Some(i);
        let said = words::is_active(w, playhead);
        let fill = match (hot, said) {
            (true, _) => theme::WORD_HOVER,
            (false, true) => theme::KEPT.gamma_multiply(0.45),
            _ => theme::KEPT.gamma_multiply(0.16),
        };
        if w.end > w.start {
            // A pixel's gap between neighbours, so where one word ends shows.
            let end = (w.end - 1.0 / px_per_s).max(w.start);
            pui.span(Span::new("", w.start..=end).fill(fill).border_width(0.0));
        } else {
            let tick = Bar::new(w.start, 1.0).width(2.0 / px_per_s).fill(fill);
            pui.bar_chart(BarChart::new("", vec![tick]).allow_hover(false));
        }
        let text = w.word.trim();
        if hot || w.start >= label_end {
            let colour: Color32 = if hot || said {
                theme::TEXT
            } else {
                theme::TEXT_DIM
            };
            pui.text(
                Text::new(
                    "word",
                    PlotPoint::new(w.start, 0.5),
                    RichText::new(text).size(11.0),
                )
                .color(colour)
                .anchor(egui::Align2::LEFT_CENTER),
            );
            label_end = w.start + text.chars().count() as f64 * 6.5 / px_per_s;
        }
    }
}

/// The word under time `x`.
pub fn word_at(c: &LaneCtx<'_>, x: f64) -> Option<usize> {
    words::word_at(c.words, x, c.word_slack())
}

pub fn label(c: &LaneCtx<'_>, x: f64) -> Option<String> {
    let w = &c.words[word_at(c, x)?];
    Some(format!(
        "{}\n{:.2} s – {:.2} s\nclick: play from here",
        w.word.trim(),
        w.start,
        w.end
    ))
}

/// Where a click at `x` plays from: the start of the word there.
pub fn click(c: &LaneCtx<'_>, x: f64) -> Option<f64> {
    word_at(c, x).map(|i| c.words[i].start)
}
