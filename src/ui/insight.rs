//! Why an output changed: the layer x time heat map (one row per encoder layer; clicking a row
//! makes its scores drive every method), the words lane (the focused cell's words at their
//! times; hovering one shows the audio it read, clicking it seeks there), the hovered word's
//! attention drawn over the attention lane, and the link between a cell's text and its words.

use egui::{Color32, RichText, TextureOptions};
use egui_plot::{Bar, BarChart, Line, PlotImage, PlotPoint, PlotUi, Span, Text};

use super::compare::CellKey;
use super::theme;
use super::timeline::View;
use crate::model::align::TimedWord;
use crate::model::scores::{HeadReduce, LayerScores};

/// A word of a grid cell's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WordRef {
    pub cell: CellKey,
    /// Index in the run's `words`.
    pub word: usize,
}

/// Which of the run's `words` each whitespace-separated word of `text` is (None where the text
/// and the words part ways). A text word may span several timed words (a number the
/// tokenizer splits); it links to the first.
pub fn word_links(text: &str, words: &[TimedWord]) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut j = 0;
    for w in text.split_whitespace() {
        let mut joined = String::new();
        let start = j;
        while j < words.len() && joined.len() < w.len() {
            joined.push_str(words[j].word.trim());
            j += 1;
        }
        if joined == w {
            out.push(Some(start));
        } else {
            // Resynchronise: the next timed word that starts this text word, if any.
            j = start;
            match words[start..].iter().position(|x| x.word.trim() == w) {
                Some(k) => {
                    out.push(Some(start + k));
                    j = start + k + 1;
                }
                None => out.push(None),
            }
        }
    }
    out
}

/// Whether `w` is being said at `t`: inside its span, or for a word placed at one instant (a
/// prefix model's attention centre) within a quarter second of it.
pub fn is_active(w: &TimedWord, t: f64) -> bool {
    if w.end > w.start {
        w.start <= t && t < w.end
    } else {
        (t - w.start).abs() <= 0.25
    }
}

/// The word at `t` in the words lane: the one said there, else the nearest within `slack` s.
pub fn word_at(words: &[TimedWord], t: f64, slack: f64) -> Option<usize> {
    if let Some(i) = words
        .iter()
        .position(|w| w.end > w.start && w.start <= t && t < w.end)
    {
        return Some(i);
    }
    words
        .iter()
        .enumerate()
        .map(|(i, w)| (i, (t - w.start).abs().min((t - w.end).abs())))
        .filter(|(_, d)| *d <= slack)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// The layer heat map: one row per layer (the first at the top), one texel per token
/// (max-pooled to at most 4096 columns), each row over its own maximum.
pub fn layer_texture(
    ctx: &egui::Context,
    layers: &[LayerScores],
    reduce: HeadReduce,
) -> Option<egui::TextureHandle> {
    let n = layers.first()?.mean.len();
    if layers.len() < 2 || n == 0 {
        return None;
    }
    let cols = super::lanes::texture_columns(ctx, n);
    let mut pixels = Vec::with_capacity(cols * layers.len());
    for l in layers {
        let row = match reduce {
            HeadReduce::Mean => &l.mean,
            HeadReduce::Max => &l.max,
        };
        let max = row
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .fold(0f32, f32::max);
        for c in 0..cols {
            let (a, b) = (c * n / cols, ((c + 1) * n / cols).max(c * n / cols + 1));
            let v = row[a..b.min(n)]
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(0f32, f32::max);
            let v = if max > 0.0 { v / max } else { 0.0 };
            pixels.push(theme::ramp(v.sqrt()));
        }
    }
    let img = egui::ColorImage::new([cols, layers.len()], pixels);
    Some(ctx.load_texture("layer-scores", img, TextureOptions::NEAREST))
}

/// The layer lane: the heat map over the clip's tokens, the selected layer outlined, each
/// row's number at the left of the view. Rows run top (layer 0) to bottom in `[0, 1]`.
pub fn layer_items(
    pui: &mut PlotUi<'_>,
    tex: &egui::TextureHandle,
    layers: usize,
    selected: usize,
    len_s: f64,
    view: &View,
) {
    pui.image(
        PlotImage::new(
            "layers",
            tex.id(),
            PlotPoint::new(len_s / 2.0, 0.5),
            [len_s as f32, 1.0],
        )
        .allow_hover(false),
    );
    let h = 1.0 / layers as f64;
    let (top, bottom) = (1.0 - selected as f64 * h, 1.0 - (selected + 1) as f64 * h);
    let outline = vec![
        [0.0, top],
        [len_s, top],
        [len_s, bottom],
        [0.0, bottom],
        [0.0, top],
    ];
    pui.line(
        Line::new("selected layer", outline)
            .color(theme::HOVER)
            .width(1.5)
            .allow_hover(false),
    );
    for l in 0..layers {
        let y = 1.0 - (l as f64 + 0.5) * h;
        let c = if l == selected {
            theme::HOVER
        } else {
            theme::TEXT_DIM
        };
        pui.text(
            Text::new(
                "layer",
                PlotPoint::new(view.start, y),
                RichText::new(format!(" {l}")).size(9.0).strong(),
            )
            .color(c)
            .anchor(egui::Align2::LEFT_CENTER),
        );
    }
}

/// Which row of the layer lane `y` (in `[0, 1]`, top row first) is.
pub fn layer_at(y: f64, layers: usize) -> Option<usize> {
    ((0.0..=1.0).contains(&y) && layers > 0)
        .then(|| (((1.0 - y) * layers as f64) as usize).min(layers - 1))
}

/// The words lane: each word over its span (a tick for words placed at one instant), the
/// hovered one and those being said at the playhead brighter. Labels that would overlap their
/// left neighbour are left out (hover shows every word).
pub fn words_items(
    pui: &mut PlotUi<'_>,
    words: &[TimedWord],
    hovered: Option<usize>,
    playhead: f64,
    view: &View,
    px_per_s: f64,
) {
    let mut label_end = f64::NEG_INFINITY;
    for (i, w) in words.iter().enumerate() {
        if w.end < view.start || w.start > view.end {
            continue;
        }
        let hot = hovered == Some(i);
        let said = is_active(w, playhead);
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
            pui.bar_chart(
                BarChart::new(
                    "",
                    vec![Bar::new(w.start, 1.0).width(2.0 / px_per_s).fill(fill)],
                )
                .allow_hover(false),
            );
        }
        let text = w.word.trim();
        let width = text.chars().count() as f64 * 6.5 / px_per_s;
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
            label_end = w.start + width;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(word: &str, start: f64, end: f64) -> TimedWord {
        TimedWord {
            word: word.into(),
            start,
            end,
            tokens: 0..0,
        }
    }

    #[test]
    fn text_words_link_to_timed_words() {
        let words = [
            w(" And", 0.0, 0.5),
            w(" so,", 0.5, 1.0),
            w(" 19", 1.0, 1.2),
            w("61", 1.2, 1.5),
        ];
        assert_eq!(
            word_links("And so, 1961", &words),
            vec![Some(0), Some(1), Some(2)]
        );
        // A word the timed list lacks links to nothing; the rest stay linked.
        assert_eq!(
            word_links("And then so, 1961", &words),
            vec![Some(0), None, Some(1), Some(2)]
        );
    }

    #[test]
    fn activity_and_lookup() {
        let words = [w(" a", 0.0, 0.5), w(" b", 0.5, 1.0), w(" c", 2.0, 2.0)];
        assert!(is_active(&words[0], 0.2) && !is_active(&words[0], 0.5));
        assert!(is_active(&words[2], 2.2) && !is_active(&words[2], 2.3));
        assert_eq!(word_at(&words, 0.7, 0.1), Some(1));
        assert_eq!(word_at(&words, 1.95, 0.1), Some(2));
        assert_eq!(word_at(&words, 1.5, 0.1), None);
        assert_eq!(layer_at(0.9, 4), Some(0));
        assert_eq!(layer_at(0.0, 4), Some(3));
        assert_eq!(layer_at(1.2, 4), None);
    }
}
