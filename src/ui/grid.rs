//! The grid of outputs: one row per method, one column per keep ratio, each cell the run's text
//! with its word diff against `full`, its loop badge, K, time and WER. Words are linked to the
//! audio: hovering one shows the tokens it read in the attention lane (and its cell's words in
//! the words lane), clicking one plays from it, and the words said at the playhead (or at the
//! time hovered in the lanes) are highlighted in every cell, each long cell scrolled to them.

use egui::text::{CCursor, LayoutJob};
use egui::{Color32, RichText, Sense};

use super::app::ExplorerApp;
use super::commands::Command;
use super::compare::{self, CellKey, CellView, Diff};
use super::insight::{self, WordRef};
use super::theme;
use crate::engine::{RunMethod, RunResult, RunSpec};
use crate::model::align::TimedWord;
use crate::prune::Method;

/// What the pointer did in a cell this frame.
#[derive(Default)]
struct CellInput {
    hovered: bool,
    /// The timed word under the pointer, and the one clicked.
    word: Option<usize>,
    clicked: Option<usize>,
}

impl ExplorerApp {
    pub(super) fn grid_ui(&mut self, ui: &mut egui::Ui) {
        let Some(clip) = &self.clip else { return };
        if clip.scores.is_none() {
            return;
        }
        // The moment the cells highlight: the time hovered in the lanes, else the playhead.
        let now = self.lanes_hover_t.unwrap_or(clip.playback.position);
        let params = self.params();
        let decoding = self.settings.decoding();
        let keeps = compare::keeps(self.settings.keep());
        let full_key = compare::cell_key(
            &RunSpec {
                method: RunMethod::Prune(Method::Full),
                keep: 1.0,
            },
            &params,
            &decoding,
        );
        let full_text = self.results.get(&full_key).map(|r| r.text.clone());
        let reference = self.settings.reference.trim().to_string();
        let hot = self.hovered_word;
        let mut hovered = None;
        let mut word_hover = None;
        let mut seek = None;
        let method_w = 96.0;
        // Per column: grid spacing (6) + the frame's inner margins (12), and room for the scroll bar.
        // Always room for the slider's own column, there or not: a column coming or going while
        // the slider moves would change every cell's width, and laying out every long text again
        // costs a 2-minute clip's grid tens of milliseconds in one frame.
        let columns = compare::FIXED_KEEPS.len() + 1;
        let cell_w = ((ui.available_width() - method_w - 16.0) / columns as f32 - 20.0).max(120.0);
        egui::ScrollArea::vertical()
            .id_salt("grid")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::Grid::new("outputs")
                    .spacing([6.0, 6.0])
                    .min_col_width(method_w)
                    .show(ui, |ui| {
                        ui.label(RichText::new("method").strong());
                        for &k in &keeps {
                            let current = (k - self.settings.keep()).abs() < 1e-9;
                            let t = format!("keep {:.0} %", k * 100.0);
                            ui.label(if current {
                                RichText::new(format!("{t} (slider)"))
                                    .strong()
                                    .color(theme::KEPT)
                            } else {
                                RichText::new(t).strong()
                            });
                        }
                        if keeps.len() < columns {
                            ui.label(
                                RichText::new(format!(
                                    "(the slider is at {:.0} %)",
                                    self.settings.keep() * 100.0
                                ))
                                .color(theme::TEXT_DIM),
                            );
                        }
                        ui.end_row();
                        for m in self.grid_methods() {
                            ui.label(RichText::new(m.name()).monospace());
                            for (c, &k) in keeps.iter().enumerate() {
                                let Some(spec) = compare::cell(m, k, c, &params) else {
                                    ui.label("");
                                    continue;
                                };
                                let key = compare::cell_key(&spec, &params, &decoding);
                                let result = self.results.get(&key);
                                if let Some(r) = result {
                                    let full = full_text.as_deref();
                                    let fresh = self
                                        .cell_views
                                        .get(&key)
                                        .is_some_and(|v| v.is_for(&r.text, full, &reference));
                                    if !fresh {
                                        let is_full = m == RunMethod::Prune(Method::Full);
                                        let view = CellView::new(
                                            &r.text,
                                            &r.loop_spans,
                                            full,
                                            &reference,
                                            is_full,
                                        )
                                        .with_words(r.words.as_deref());
                                        self.cell_views.insert(key, view);
                                    }
                                }
                                let view = result.zip(self.cell_views.get_mut(&key));
                                let hot = hot.filter(|w| w.cell == key).map(|w| w.word);
                                let input = cell_ui(ui, cell_w, key, view, now, hot);
                                if input.hovered {
                                    hovered = Some(key);
                                }
                                if let Some(word) = input.word {
                                    word_hover = Some(WordRef { cell: key, word });
                                }
                                if let Some(w) = input.clicked {
                                    seek = result
                                        .and_then(|r| r.words.as_ref())
                                        .and_then(|ws| ws.get(w))
                                        .map(|w| w.start);
                                }
                            }
                            ui.end_row();
                        }
                    });
            });
        if hovered != self.hovered_cell {
            self.pending.push(Command::HoverCell(hovered));
        }
        // The lanes ran first this frame: a word hovered there is already in.
        let seen = self.word_hover_seen.take().or(word_hover);
        if seen != self.hovered_word {
            self.pending.push(Command::HoverWord(seen));
        }
        if let Some(t) = seek {
            self.pending.push(Command::ClearSelection);
            self.pending.push(Command::Seek(t));
        }
    }
}

/// One grid cell: text with its word diff against the full-token output, then K, time, WER.
/// `now`: the moment whose words are highlighted; `hot`: the hovered timed word of this cell.
fn cell_ui(
    ui: &mut egui::Ui,
    width: f32,
    key: CellKey,
    result: Option<(&RunResult, &mut CellView)>,
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
        ui.vertical(|ui| match result {
            None => {
                ui.label(RichText::new("…").color(theme::TEXT_DIM));
            }
            Some((r, view)) => {
                if r.looped {
                    loop_badge(ui, r.stopped_on_loop);
                }
                let words = r.words.as_deref().unwrap_or(&[]);
                let (job, sections) = cell_text(r, view, words, now, hot, width);
                egui::ScrollArea::vertical()
                    .id_salt(("cell", key))
                    .max_height(theme::CELL_TEXT_HEIGHT)
                    .auto_shrink([false, true])
                    .show(ui, |ui| {
                        text_ui(ui, job, &sections, view, words, now, &mut input)
                    });
                let mut meta = format!("K {} · {:.0} ms", r.k, r.decode_ms);
                if let Some(s) = r.segments {
                    meta += &format!(" · S {s}");
                }
                if let Some(w) = view.wer {
                    meta += &format!(" · WER {:.0} %", w * 100.0);
                }
                ui.label(RichText::new(meta).small().color(theme::TEXT_DIM));
            }
        });
    });
    input.hovered = inner.response.interact(Sense::hover()).hovered();
    input
}

/// A laid-out word: its bytes in the job's text and the timed word it is.
type Section = (std::ops::Range<usize>, Option<usize>);

/// The cell's text as a layout job: the word diff's colours, loop tails dimmed, the hovered word
/// and the words said at `now` on a highlight.
fn cell_text(
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
    let mut push = |job: &mut LayoutJob, w: &str, c: Color32, strike: bool, link: Option<usize>| {
        let background = match link {
            Some(j) if hot == Some(j) => theme::WORD_HOVER.gamma_multiply(0.45),
            Some(j) if words.get(j).is_some_and(|w| insight::is_active(w, now)) => theme::WORD_NOW,
            _ => Color32::TRANSPARENT,
        };
        let start = job.text.len();
        job.append(
            w,
            0.0,
            egui::TextFormat {
                font_id: font.clone(),
                color: c,
                background,
                strikethrough: if strike {
                    egui::Stroke::new(1.0, c)
                } else {
                    egui::Stroke::NONE
                },
                ..Default::default()
            },
        );
        sections.push((start..job.text.len(), link));
        job.append(
            " ",
            0.0,
            egui::TextFormat {
                font_id: font.clone(),
                color: theme::TEXT,
                ..Default::default()
            },
        );
    };
    // (word, colour, removed): removed words are the full output's, the others this run's.
    let items: Vec<(&str, Color32, bool)> = match &view.diff {
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
    };
    for (w, c, removed) in items {
        if removed {
            push(&mut job, w, c, true, None);
            continue;
        }
        let link = view.links.get(text_word).copied().flatten();
        text_word += 1;
        // Words in a loop's repeated tail are dimmed.
        let c = if looped.next().unwrap_or(false) {
            c.gamma_multiply(0.45)
        } else {
            c
        };
        push(&mut job, w, c, false, link);
    }
    job.wrap.max_width = width;
    (job, sections)
}

/// Lays out and paints the text, finds the word under the pointer, and scrolls the cell to the
/// words said at `now` when they changed.
fn text_ui(
    ui: &mut egui::Ui,
    job: LayoutJob,
    sections: &[Section],
    view: &mut CellView,
    words: &[TimedWord],
    now: f64,
    input: &mut CellInput,
) {
    let text = job.text.clone();
    let (pos, galley, resp) = egui::Label::new(job).sense(Sense::click()).layout_in_ui(ui);
    ui.painter().galley(pos, galley.clone(), theme::TEXT);
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, galley.text()));
    let char_of = |byte: usize| text[..byte].chars().count();
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
    input.word = resp.hover_pos().and_then(word_at);
    if resp.clicked() {
        input.clicked = resp.interact_pointer_pos().and_then(word_at);
    }
    let said = sections.iter().find(|(_, link)| {
        link.and_then(|j| words.get(j))
            .is_some_and(|w| insight::is_active(w, now))
    });
    if let Some((range, link)) = said {
        if view.scrolled_to != *link {
            view.scrolled_to = *link;
            let rect = galley
                .pos_from_cursor(CCursor::new(char_of(range.start)))
                .translate(pos.to_vec2());
            ui.scroll_to_rect(rect, Some(egui::Align::Center));
        }
    }
    if resp.hovered() && input.word.is_some() {
        ui.ctx().set_cursor_icon(egui::CursorIcon::PointingHand);
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
