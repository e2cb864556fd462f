//! The line above the lanes: how many tokens the highlighted selection keeps, its K and
//! segments, and whose selection it is (the hovered cell's or the controls').

use egui::RichText;

use crate::ui::state::AppState;
use crate::ui::theme;

pub fn line(ui: &mut egui::Ui, s: &AppState) {
    let n = s.scores().map_or(0, |sc| sc.ranked().len());
    ui.horizontal(|ui| {
        ui.add_space(theme::LABEL_WIDTH);
        match s.highlight.as_ref().map(|h| &h.result) {
            Some(Ok(sel)) => {
                ui.label(
                    RichText::new(format!("Kept {} of {n} tokens", sel.kept.len()))
                        .color(theme::KEPT)
                        .strong(),
                );
                ui.label(RichText::new(format!("K = {}", sel.k)).color(theme::TEXT));
                ui.label(
                    RichText::new(match sel.segments {
                        Some(seg) => format!("Segments: {seg}"),
                        None => "Segments: none".into(),
                    })
                    .color(theme::SEGMENT),
                );
                let from = if let Some(cell) = s.hovered_cell() {
                    let how = if s.hover.grid.is_some() {
                        "hovered"
                    } else {
                        "pinned"
                    };
                    // The cell's own method (fastv's rule is `full`, encoderdrop's `topk`).
                    format!("({how} cell: {})", cell.method.name())
                } else {
                    format!("({}, current setting)", sel.method.name())
                };
                ui.label(RichText::new(from).color(theme::TEXT_DIM));
            }
            Some(Err(e)) => {
                ui.label(RichText::new(e.to_string()).color(theme::ERROR));
            }
            None => {
                ui.label(RichText::new("no scores yet").color(theme::TEXT_DIM));
            }
        }
    });
}
