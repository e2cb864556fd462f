//! One grid cell: the run's text with its word diff against `full` or the pinned cell (loop
//! tails dimmed), its
//! loop badge, K, time and WER. Words are linked to the audio: the hovered word and the words
//! said at `now` are highlighted, a long text scrolls to the words said now, and a click on a
//! word seeks to it.

use egui::text::{CCursor, LayoutJob};
use egui::{Color32, RichText, Sense};

use crate::engine::{RunKey, RunResult};
use crate::model::align::TimedWord;
use crate::ui::logic::cell_view::{CellView, Diff};
use crate::ui::logic::words;
use crate::ui::theme;

/// What the pointer did in a cell this frame.
#[derive(Default)]
pub struct CellInput {
    pub hovered: bool,
    /// The timed word under the pointer.
    pub word: Option<usize>,
    /// Where a clicked word starts (s).
    pub clicked_at: Option<f64>,
    /// The pin button was clicked.
    pub pin: bool,
}

/// What a cell knows beside its result.
pub struct CellState<'a> {
    /// Why a cell without a result will not get one (a document's clip with no model).
    pub missing: Option<&'a str>,
    /// The lanes show this cell while the pointer is over no other.
    pub pinned: bool,
}

/// Draws the cell of `key`: "…" until its result (and what it shows) is in, or why it will
/// not come. `now`: the moment whose words are highlighted; `hot`: the hovered timed word of
/// this cell.
pub fn cell(
    ui: &mut egui::Ui,
    width: f32,
    key: RunKey,
    shown: Option<(&RunResult, &CellView)>,
    state: &CellState<'_>,
    now: f64,
    hot: Option<usize>,
) -> CellInput {
    let frame = egui::Frame::new()
        .fill(theme::LANE_BG)
        .corner_radius(4.0)
        .inner_margin(6.0);
    let mut input = CellInput::default();
    let inner = frame.show(ui, |ui| {
        ui.set_width(width);
        ui.set_min_height(48.0);
        ui.vertical(|ui| match shown {
            None => {
                ui.label(RichText::new(state.missing.unwrap_or("…")).color(theme::TEXT_DIM));
            }
            Some((r, view)) => {
                if r.looped {
                    loop_badge(ui, r.stopped_on_loop);
                }
                let words = r.words.as_deref().unwrap_or(&[]);
                let (job, sections) = layout(r, view, words, now, hot, width);
                egui::ScrollArea::vertical()
                    .id_salt(("cell", key))
                    .max_height(theme::CELL_TEXT_HEIGHT)
                    .auto_shrink([false, true])
                    .show(ui, |ui| {
                        input = text(ui, job, &sections, words, now);
                    });
                ui.horizontal(|ui| {
                    ui.label(RichText::new(meta(r, view)).small().color(theme::TEXT_DIM));
                    let (text, tip) = if state.pinned {
                        ("unpin", "The lanes go back to the slider's cell")
                    } else {
                        (
                            "pin",
                            "The lanes show this cell while the pointer is elsewhere",
                        )
                    };
                    input.pin = ui.small_button(text).on_hover_text(tip).clicked();
                });
            }
        });
    });
    input.hovered = inner.response.interact(Sense::hover()).hovered();
    input
}

/// K, decode time, segments and WER.
fn meta(r: &RunResult, view: &CellView) -> String {
    let mut meta = format!("K {} · {:.0} ms", r.k, r.decode_ms);
    if let Some(s) = r.segments {
        meta += &format!(" · S {s}");
    }
    if let Some(w) = view.wer {
        meta += &format!(" · WER {:.0} %", w * 100.0);
    }
    meta
}

/// A laid-out word: its bytes in the job's text and the timed word it is.
type Section = (std::ops::Range<usize>, Option<usize>);

/// The words to lay out: (word, colour, removed); removed words are the full output's, the
/// others this run's.
fn diff_items<'a>(r: &'a RunResult, view: &'a CellView) -> Vec<(&'a str, Color32, bool)> {
    match &view.diff {
        Some(diff) => diff
            .iter()
            .map(|d| match d {
                Diff::Same(w) => (w.as_str(), theme::TEXT, false),
                Diff::Added(w) => (w.as_str(), theme::DIFF_ADDED, false),
                Diff::Removed(w) => (w.as_str(), theme::DIFF_REMOVED, true),
            })
            .collect(),
        None => r
            .text
            .split_whitespace()
            .map(|w| (w, theme::TEXT, false))
            .collect(),
    }
}

/// The cell's text as a layout job: the word diff's colours, loop tails dimmed, the hovered word
/// and the words said at `now` on a highlight.
fn layout(
    r: &RunResult,
    view: &CellView,
    words: &[TimedWord],
    now: f64,
    hot: Option<usize>,
    width: f32,
) -> (LayoutJob, Vec<Section>) {
    let mut job = LayoutJob::default();
    let mut sections = Vec::new();
    let font = egui::FontId::proportional(13.0);
    let mut looped = view.looped.iter().copied();
    let mut text_word = 0;
    for (w, colour, removed) in diff_items(r, view) {
        let (colour, link) = if removed {
            (colour, None)
        } else {
            let link = view.links.get(text_word).copied().flatten();
            text_word += 1;
            // Words in a loop's repeated tail are dimmed.
            let dim = looped.next().unwrap_or(false);
            (
                if dim {
                    colour.gamma_multiply(0.45)
                } else {
                    colour
                },
                link,
            )
        };
        let background = match link {
            Some(j) if hot == Some(j) => theme::WORD_HOVER.gamma_multiply(0.45),
            Some(j) if words.get(j).is_some_and(|w| words::is_active(w, now)) => theme::WORD_NOW,
            _ => Color32::TRANSPARENT,
        };
        let start = job.text.len();
        let strike = if removed {
            egui::Stroke::new(1.0, colour)
        } else {
            egui::Stroke::NONE
        };
        job.append(
            w,
            0.0,
            egui::TextFormat {
                font_id: font.clone(),
                color: colour,
                background,
                strikethrough: strike,
                ..Default::default()
            },
        );
        sections.push((start..job.text.len(), link));
        job.append(
            " ",
            0.0,
            egui::TextFormat::simple(font.clone(), theme::TEXT),
        );
    }
    job.wrap.max_width = width;
    (job, sections)
}

/// Lays out and paints the text, finds the word under the pointer and the one clicked, and
/// scrolls the cell to the words said at `now` when they changed.
fn text(
    ui: &mut egui::Ui,
    job: LayoutJob,
    sections: &[Section],
    words: &[TimedWord],
    now: f64,
) -> CellInput {
    let text = job.text.clone();
    let (pos, galley, resp) = egui::Label::new(job).sense(Sense::click()).layout_in_ui(ui);
    ui.painter().galley(pos, galley.clone(), theme::TEXT);
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, galley.text()));
    let word_at = |p: egui::Pos2| -> Option<usize> {
        let local = p - pos;
        let c = galley.cursor_from_pos(local);
        let glyph = galley.pos_from_cursor(c);
        if (glyph.center().y - local.y).abs() > glyph.height() {
            return None;
        }
        let byte = text
            .char_indices()
            .nth(c.index.into())
            .map_or(text.len(), |(b, _)| b);
        sections
            .iter()
            .find(|(range, _)| range.start <= byte && byte <= range.end)
            .and_then(|(_, link)| *link)
    };
    let word = resp.hover_pos().and_then(word_at);
    let clicked = resp
        .clicked()
        .then(|| resp.interact_pointer_pos().and_then(word_at))
        .flatten();
    let said = sections.iter().find(|(_, link)| {
        link.and_then(|j| words.get(j))
            .is_some_and(|w| words::is_active(w, now))
    });
    if let Some((range, link)) = said {
        // Which word this cell last scrolled to: the text's own bookkeeping, in egui's memory.
        let id = resp.id.with("scrolled-to");
        if ui.data(|d| d.get_temp::<Option<usize>>(id)) != Some(*link) {
            ui.data_mut(|d| d.insert_temp(id, *link));
            let chars = text[..range.start].chars().count();
            let rect = galley
                .pos_from_cursor(CCursor::new(chars))
                .translate(pos.to_vec2());
            ui.scroll_to_rect(rect, Some(egui::Align::Center));
        }
    }
    if resp.hovered() && word.is_some() {
        ui.ctx().set_cursor_icon(egui::CursorIcon::PointingHand);
    }
    CellInput {
        hovered: false,
        word,
        clicked_at: clicked.and_then(|w| words.get(w)).map(|w| w.start),
        pin: false,
    }
}

fn loop_badge(ui: &mut egui::Ui, stopped: bool) {
    ui.horizontal(|ui| {
        let (badge, tip) = if stopped {
            ("loop · cut", "The decoder started repeating itself; the stop-on-loop guard ended the run there and kept the text before the repeats.")
        } else {
            ("loop", "The decoder looped: it hit its token cap, repeated itself back to back (dimmed), or its text compresses above 2.4 as Whisper's hallucination test says.")
        };
        egui::Frame::new()
            .fill(theme::ERROR.gamma_multiply(0.35))
            .corner_radius(3.0)
            .inner_margin(egui::Margin::symmetric(4, 0))
            .show(ui, |ui| {
                ui.label(RichText::new(badge).small().strong().color(theme::TEXT))
            })
            .response
            .on_hover_text(tip);
    });
}
