//! The grid of outputs: one row per method, one column per keep ratio, each cell one run's
//! output ([`cell`]). Reports the cell and word under the pointer and seeks to a clicked word.

use egui::RichText;

use super::cell::{self, CellInput, CellState};
use crate::engine::RunKey;
use crate::ui::commands::Command;
use crate::ui::logic::compare;
use crate::ui::logic::words::WordRef;
use crate::ui::state::{AppState, GridHover};
use crate::ui::theme;

/// Width of the method column.
const METHOD_W: f32 = 96.0;

pub fn grid(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    if s.scores().is_none() {
        return;
    }
    let keeps = compare::keeps(s.settings.keep());
    // Always room for the slider's own column, there or not: a column coming or going while
    // the slider moves would change every cell's width, and laying out every long text again
    // costs a 2-minute clip's grid tens of milliseconds in one frame. Per column: grid spacing
    // (6) + the frame's inner margins (12), and room for the scroll bar.
    let columns = compare::FIXED_KEEPS.len() + 1;
    let cell_w = ((ui.available_width() - METHOD_W - 16.0) / columns as f32 - 20.0).max(120.0);
    let mut hover: Option<GridHover> = None;
    egui::ScrollArea::vertical()
        .id_salt("grid")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new("outputs")
                .spacing([6.0, 6.0])
                .min_col_width(METHOD_W)
                .show(ui, |ui| {
                    header(ui, s, &keeps, columns);
                    for (key, input) in rows(ui, s, &keeps, cell_w) {
                        if input.hovered {
                            hover = Some(GridHover {
                                cell: key,
                                word: input.word.map(|word| WordRef { cell: key, word }),
                            });
                        }
                        if let Some(t) = input.clicked_at {
                            out.push(Command::ClearSelection);
                            out.push(Command::Seek(t));
                        }
                        if input.pin {
                            let pinned = s.pinned == Some(key);
                            out.push(Command::PinCell((!pinned).then_some(key)));
                        }
                    }
                });
        });
    if hover != s.hover.grid {
        out.push(Command::HoverGrid(hover));
    }
}

/// The header row: one label per keep ratio, the slider's own marked.
fn header(ui: &mut egui::Ui, s: &AppState, keeps: &[f64], columns: usize) {
    if s.pinned.is_some_and(|k| s.result(&k).is_some()) {
        ui.label(RichText::new("method (vs pinned)").strong())
            .on_hover_text("Every cell's word diff and WER are against the pinned cell; unpin it to compare with full and the reference transcript again");
    } else {
        ui.label(RichText::new("method").strong());
    }
    let slider = s.settings.keep();
    for &k in keeps {
        let t = format!("keep {:.0} %", k * 100.0);
        ui.label(if (k - slider).abs() < 1e-9 {
            RichText::new(format!("{t} (slider)"))
                .strong()
                .color(theme::KEPT)
        } else {
            RichText::new(t).strong()
        });
    }
    if keeps.len() < columns {
        ui.label(
            RichText::new(format!("(the slider is at {:.0} %)", slider * 100.0))
                .color(theme::TEXT_DIM),
        );
    }
    ui.end_row();
}

/// Every row of cells; what the pointer did in each.
fn rows(ui: &mut egui::Ui, s: &AppState, keeps: &[f64], width: f32) -> Vec<(RunKey, CellInput)> {
    let (params, decoding) = (s.params(), s.settings.decoding());
    let cells = s.shown_cells();
    let (now, hot) = (s.now(), s.hovered_word());
    let missing = s.needs_model();
    let mut inputs = Vec::new();
    for m in s.grid_methods() {
        ui.label(RichText::new(m.name()).monospace());
        for (c, &k) in keeps.iter().enumerate() {
            let Some(spec) = compare::cell(m, k, c, &params) else {
                ui.label("");
                continue;
            };
            let key = RunKey::of(&spec, &params, &decoding);
            let shown = cells.and_then(|cs| cs.results.get(&key).zip(cs.views.get(&key)));
            let hot = hot.filter(|w| w.cell == key).map(|w| w.word);
            let state = CellState {
                missing: missing.as_deref(),
                pinned: s.pinned == Some(key),
            };
            inputs.push((key, cell::cell(ui, width, key, shown, &state, now, hot)));
        }
        ui.end_row();
    }
    inputs
}
