//! The menu bar: File, Playback and View from the command table, the recent files, the model's
//! dtype, and the clip's and model's names.

use egui::RichText;

use crate::model::Precision;
use crate::ui::commands::{Command, Menu, COMMANDS};
use crate::ui::state::{AppState, Page};
use crate::ui::theme;

pub fn bar(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    egui::MenuBar::new().ui(ui, |ui| {
        for (menu, title) in [
            (Menu::File, "File"),
            (Menu::Playback, "Playback"),
            (Menu::View, "View"),
        ] {
            ui.menu_button(title, |ui| {
                table_entries(ui, s, menu, out);
                if menu == Menu::File {
                    ui.separator();
                    recent(ui, "Recent clips", &s.settings.recent_clips, out, |p| {
                        Command::OpenClip(p)
                    });
                    recent(ui, "Recent models", &s.settings.recent_models, out, |p| {
                        Command::LoadModel(p)
                    });
                    recent_remotes(ui, s, out);
                    precision(ui, s, out);
                    let mut embed = s.settings.embed_clips;
                    if ui
                        .checkbox(&mut embed, "Save workspaces with the clip (up to 20 MB)")
                        .clicked()
                    {
                        out.push(Command::ToggleEmbedClips);
                    }
                }
            });
        }
        ui.add_space(16.0);
        pages(ui, s, out);
        let title = s
            .clip
            .as_ref()
            .and_then(|c| c.path.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "no clip".into());
        ui.label(RichText::new(title).strong().color(theme::TEXT));
        let model = match (&s.model.label, s.model.loading) {
            (_, true) => "loading model…".to_string(),
            (Some(m), false) => m.clone(),
            (None, false) => "no model".into(),
        };
        ui.label(RichText::new(model).color(theme::TEXT_DIM));
        if let Some(c) = &s.model.remote {
            let colour = if s.model.lost.is_some() {
                theme::ERROR
            } else {
                theme::SEGMENT
            };
            let short = super::status::shorten(c, 72);
            ui.label(RichText::new(format!("on `{short}`")).color(colour))
                .on_hover_text("The model runs at the other end of this command (prunescope serve --stdio); File > Use the local model comes back");
        }
    });
}

/// The clip and the eval run's table, while a run is open.
fn pages(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    if s.corpus.is_none() {
        return;
    }
    for (page, name) in [(Page::Corpus, "Corpus"), (Page::Clip, "Clip")] {
        if ui.selectable_label(s.page == page, name).clicked() && s.page != page {
            out.push(Command::ShowPage(page));
        }
    }
    ui.separator();
}

/// The remote models connected to, and Reconnect when the link was lost.
fn recent_remotes(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    if s.model.lost.is_some() && ui.button("Reconnect").clicked() {
        out.push(Command::Reconnect);
        ui.close();
    }
    ui.menu_button("Recent remote models", |ui| {
        if s.settings.recent_remotes.is_empty() {
            ui.label("none yet");
        }
        for c in &s.settings.recent_remotes {
            if ui.button(c).clicked() {
                out.push(Command::ConnectRemote(c.clone()));
                ui.close();
            }
        }
    });
}

/// The table's commands of one menu, with their shortcuts and on/off state.
fn table_entries(ui: &mut egui::Ui, s: &AppState, menu: Menu, out: &mut Vec<Command>) {
    for c in COMMANDS.iter().filter(|c| c.menu == menu) {
        let mut b = egui::Button::new(c.name);
        if let Some(k) = &c.shortcut {
            b = b.shortcut_text(ui.ctx().format_shortcut(k));
        }
        let on = match c.command {
            Command::ToggleFollow => s.settings.follow,
            Command::ToggleLoop => s.settings.looping,
            _ => false,
        };
        if on {
            b = b.right_text("on");
        }
        if ui.add(b).clicked() {
            out.push(c.command.clone());
            ui.close();
        }
    }
}

fn recent(
    ui: &mut egui::Ui,
    title: &str,
    paths: &[std::path::PathBuf],
    out: &mut Vec<Command>,
    open: impl Fn(std::path::PathBuf) -> Command,
) {
    ui.menu_button(title, |ui| {
        if paths.is_empty() {
            ui.label("none yet");
        }
        for p in paths {
            if ui.button(p.display().to_string()).clicked() {
                out.push(open(p.clone()));
                ui.close();
            }
        }
    });
}

/// The dtype of Qwen2-Audio / AF3 (`--dtype`): choosing one reloads such a model in it; with
/// Whisper loaded only auto and f32 apply (greyed out otherwise, the reason on hover).
fn precision(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let whisper = s.model.label.is_some() && !s.model.prompted();
    ui.menu_button("Model dtype", |ui| {
        for p in Precision::ALL {
            let applies = !whisper || matches!(p, Precision::Auto | Precision::F32);
            let text = match p {
                Precision::Auto => "auto (f32 on the CPU, bf16 on a GPU)",
                Precision::F32 => "f32",
                Precision::Bf16 => "bf16",
                Precision::F16 => "f16",
            };
            let r = ui
                .add_enabled(
                    applies,
                    egui::RadioButton::new(s.settings.precision == p, text),
                )
                .on_disabled_hover_text("Whisper runs in f32 in prunescope: bf16 and f16 are for Qwen2-Audio and Audio Flamingo 3");
            if r.clicked() {
                out.push(Command::SetPrecision(p));
                ui.close();
            }
        }
    });
}
