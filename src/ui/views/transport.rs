//! The transport under the lanes: play/pause, play selection, the position, and the lanes'
//! legend.

use egui::{Color32, RichText, Sense};

use crate::ui::commands::Command;
use crate::ui::state::Clip;
use crate::ui::theme;

pub fn bar(ui: &mut egui::Ui, clip: &Clip, out: &mut Vec<Command>) {
    let pb = &clip.playback;
    if ui
        .button(if pb.playing { "Pause" } else { "Play" })
        .on_hover_text("Space")
        .clicked()
    {
        out.push(Command::PlayPause);
    }
    if pb.selection.is_some() && ui.button("Play selection").clicked() {
        out.push(Command::PlaySelection);
    }
    ui.label(RichText::new(format!("{:.2} / {:.2} s", pb.position, clip.duration)).monospace());
    if let Some((a, b)) = pb.selection {
        ui.label(RichText::new(format!("selection {a:.2}–{b:.2} s")).color(theme::TEXT_DIM));
    }
    ui.separator();
    legend(ui, theme::KEPT, "kept");
    legend(ui, theme::DROPPED, "dropped");
    legend(ui, theme::SEGMENT, "segment");
    legend(ui, theme::TOP, "top 10");
    if let Some(s) = &clip.scores {
        if s.windows.len() > 1 {
            legend(ui, theme::WINDOW, "window");
        }
        ui.label(
            RichText::new(format!(
                "{} tokens · encoder {:.0} ms",
                s.ranked().len(),
                s.report.encode_ms
            ))
            .color(theme::TEXT_DIM),
        );
    }
}

fn legend(ui: &mut egui::Ui, colour: Color32, name: &str) {
    let (r, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), Sense::hover());
    ui.painter().rect_filled(r, 2.0, colour);
    ui.label(RichText::new(name).color(theme::TEXT_DIM));
}
