//! The views: functions of the [`AppState`] that draw it and push [`Command`]s for what the
//! user did. They change nothing else (widget bookkeeping, such as which word a cell was last
//! scrolled to, stays in egui's own memory).

mod cell;
mod controls;
mod corpus;
mod grid;
mod lanes;
mod menu;
mod status;
mod summary;
mod transport;
mod windows;

use super::commands::Command;
use super::state::AppState;

/// The whole window: menu, status bar, controls, and in the middle the selection summary, the
/// lanes with their transport, and the grid of outputs; then the windows.
pub fn frame(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    egui::Panel::top("menu").show(ui, |ui| menu::bar(ui, s, out));
    egui::Panel::bottom("status").show(ui, |ui| status::bar(ui, s, out));
    egui::Panel::left("controls")
        .resizable(true)
        .default_size(250.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| controls::panel(ui, s, out));
        });
    egui::CentralPanel::default().show(ui, |ui| {
        if s.page == super::state::Page::Corpus && s.corpus.is_some() {
            corpus::page(ui, s, out);
            return;
        }
        summary::line(ui, s);
        lanes::lanes(ui, s, out);
        if let Some(clip) = &s.clip {
            ui.horizontal(|ui| {
                ui.add_space(super::theme::LABEL_WIDTH);
                transport::bar(ui, clip, out);
            });
        }
        ui.add_space(8.0);
        grid::grid(ui, s, out);
    });
    windows::windows(ui.ctx(), s, out);
}

/// Only the lanes, without transport and grid (image snapshots: nothing time-dependent).
pub fn lanes_only(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    egui::CentralPanel::default().show(ui, |ui| lanes::lanes(ui, s, out));
}
