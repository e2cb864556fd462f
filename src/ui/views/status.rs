//! The status bar: decoding progress with its cancel button, the status line (and Reconnect
//! when a remote model's link was lost), where the model runs, the frame time and how long the
//! last clip took to show its outputs.

use egui::RichText;

use crate::ui::commands::Command;
use crate::ui::state::AppState;
use crate::ui::theme;

pub fn bar(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        progress(ui, s, out);
        if s.model.loading {
            ui.spinner();
        }
        if let Some(st) = &s.status {
            let colour = if st.error {
                theme::ERROR
            } else {
                theme::TEXT_DIM
            };
            ui.label(RichText::new(&st.text).color(colour));
        }
        if s.model.lost.is_some() && ui.button("Reconnect").clicked() {
            out.push(Command::Reconnect);
        }
        document(ui, s, out);
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            timings(ui, s);
            place(ui, s);
        });
    });
}

/// A document's clip whose missing cells need a model: the ways to get one.
fn document(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let Some(d) = s.document() else { return };
    if d.sent
        || s.model.loading
        || s.grid_complete()
        || s.clip.as_ref().is_none_or(|c| c.source.is_none())
    {
        return;
    }
    match &s.model.label {
        Some(label) => {
            if ui
                .button(format!("Compute the rest with {label}"))
                .on_hover_text(format!(
                    "The document was made by {}: the loaded model encodes the clip again and its own outputs replace the document's",
                    d.label
                ))
                .clicked()
            {
                out.push(Command::ComputeWithModel);
            }
        }
        None => {
            if ui.button("Load a model…").clicked() {
                out.push(Command::PickModel);
            }
            if ui.button("Connect to a remote model…").clicked() {
                out.push(Command::TypeRemote);
            }
        }
    }
}

/// The running decode's cells in over its cells asked, and its cancel button.
fn progress(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let Some(d) = s.decoding.as_ref().filter(|d| d.running) else {
        return;
    };
    let cells = s.shown_cells();
    let done = d
        .keys
        .iter()
        .filter(|k| cells.is_some_and(|c| c.results.contains_key(k)))
        .count();
    ui.add(
        egui::ProgressBar::new(done as f32 / d.keys.len().max(1) as f32)
            .desired_width(160.0)
            .text(format!("decoding {done}/{}", d.keys.len())),
    );
    if ui.button("Cancel").clicked() {
        out.push(Command::CancelDecode);
    }
}

/// Where the model runs: here, or at the other end of a command (in the error colour once its
/// link is lost).
fn place(ui: &mut egui::Ui, s: &AppState) {
    let Some(command) = &s.model.remote else {
        let text = if s.model.label.is_some() || s.model.loading {
            "model here"
        } else {
            "no model"
        };
        ui.label(RichText::new(text).small().color(theme::TEXT_DIM));
        return;
    };
    let short = shorten(command, 48);
    let (text, colour) = match &s.model.lost {
        None => (format!("model on `{short}`"), theme::SEGMENT),
        Some(_) => (format!("model on `{short}`: link lost"), theme::ERROR),
    };
    ui.label(RichText::new(text).small().color(colour))
        .on_hover_text(command);
}

/// At most `n` characters: the end of a longer text after an ellipsis (a command's end names
/// the server and its model).
pub fn shorten(text: &str, n: usize) -> String {
    let len = text.chars().count();
    if len <= n {
        return text.to_string();
    }
    let tail: String = text.chars().skip(len - (n - 1)).collect();
    format!("…{tail}")
}

/// The UI's frame time and the last clip's time to its outputs.
fn timings(ui: &mut egui::Ui, s: &AppState) {
    let recent = || s.frame_ms.iter().rev().take(120).map(|&x| f64::from(x));
    let median = crate::util::median(recent());
    let median = if median.is_nan() { 0.0 } else { median };
    let worst = recent().fold(0.0, f64::max);
    ui.label(
        RichText::new(format!("ui frame {median:.1} ms (max {worst:.1})"))
            .small()
            .color(theme::TEXT_DIM),
    );
    ui.label(RichText::new("F1 shortcuts").small().color(theme::TEXT_DIM));
    let t = s.open_timing;
    if let Some(first) = t.slider_cell_ms {
        let grid = t
            .grid_ms
            .map_or_else(String::new, |g| format!(", grid {:.2} s", g / 1e3));
        ui.label(
            RichText::new(format!("opened: slider cell {:.2} s{grid}", first / 1e3))
                .small()
                .color(theme::TEXT_DIM),
        )
        .on_hover_text(
            "From opening the clip to its outputs: the slider's cell first, then the whole grid",
        );
    }
}
