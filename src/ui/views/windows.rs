//! The windows over the main view: the keyboard shortcuts, the open-path window and the export
//! window.

use egui::RichText;

use crate::ui::commands::{Command, COMMANDS};
use crate::ui::state::{AppState, PathTarget, PathWindow};
use crate::ui::theme;

pub fn windows(ctx: &egui::Context, s: &AppState, out: &mut Vec<Command>) {
    if s.windows.help {
        help(ctx, out);
    }
    if let Some(w) = &s.windows.path {
        path(ctx, w, out);
    }
    if let Some(dir) = &s.windows.export_dir {
        export(ctx, dir, out);
    }
    if let Some(command) = &s.windows.remote {
        remote(ctx, command, out);
    }
}

/// The command line of a remote model: run by the shell, spoken to over its stdin and stdout.
fn remote(ctx: &egui::Context, command: &str, out: &mut Vec<Command>) {
    let w = TextWindow {
        title: "Connect to a remote model",
        note: Some(
            "A command that runs `prunescope serve --stdio` with the model's options, e.g.\n\
             ssh gpu-host prunescope serve --stdio --model Qwen/Qwen2-Audio-7B-Instruct --device cuda",
        ),
        hint: "ssh HOST prunescope serve --stdio --model DIR --device cuda",
        button: "Connect",
        width: 560.0,
    };
    match w.show(ctx, command) {
        Typed::Submit(c) => out.push(Command::ConnectRemote(c)),
        Typed::Close => out.push(Command::CloseRemoteWindow),
        Typed::Edit(c) => out.push(Command::EditRemote(c)),
        Typed::Nothing => {}
    }
}

/// A window with one line of text to type (a path, a command line) and a button.
struct TextWindow<'a> {
    title: &'a str,
    note: Option<&'a str>,
    hint: &'a str,
    button: &'a str,
    width: f32,
}

/// What the user did in a [`TextWindow`] this frame.
enum Typed {
    /// Enter or the button, with the trimmed text (never empty).
    Submit(String),
    Close,
    Edit(String),
    Nothing,
}

impl TextWindow<'_> {
    fn show(&self, ctx: &egui::Context, text: &str) -> Typed {
        let mut open = true;
        let mut edited = text.to_string();
        let mut submit = false;
        egui::Window::new(self.title)
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                if let Some(n) = self.note {
                    ui.label(RichText::new(n).color(theme::TEXT_DIM));
                }
                let r = ui.add(
                    egui::TextEdit::singleline(&mut edited)
                        .desired_width(self.width)
                        .hint_text(self.hint),
                );
                if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                    submit = true;
                } else if ui.memory(|m| m.focused().is_none()) {
                    // Typing goes to the field at once (when nothing else has the keyboard).
                    r.request_focus();
                }
                if ui.button(self.button).clicked() {
                    submit = true;
                }
            });
        if submit && !edited.trim().is_empty() {
            Typed::Submit(edited.trim().to_string())
        } else if !open {
            Typed::Close
        } else if edited != text {
            Typed::Edit(edited)
        } else {
            Typed::Nothing
        }
    }
}

fn help(ctx: &egui::Context, out: &mut Vec<Command>) {
    let mut open = true;
    egui::Window::new("Keyboard shortcuts")
        .open(&mut open)
        .collapsible(false)
        .show(ctx, |ui| {
            egui::Grid::new("help").striped(true).show(ui, |ui| {
                for c in COMMANDS {
                    ui.label(c.name);
                    ui.label(
                        c.shortcut
                            .map(|s| ctx.format_shortcut(&s))
                            .unwrap_or_default(),
                    );
                    ui.end_row();
                }
                for (what, how) in [
                    ("Ctrl + wheel / pinch", "zoom"),
                    ("Right-drag / shift + wheel", "pan"),
                    ("Click / drag on lanes", "seek / select"),
                    ("Double-click on lanes", "zoom to fit"),
                ] {
                    ui.label(what);
                    ui.label(how);
                    ui.end_row();
                }
            });
        });
    if !open {
        out.push(Command::ToggleHelp);
    }
}

fn title(target: PathTarget) -> &'static str {
    match target {
        PathTarget::Clip => "Open clip",
        PathTarget::Model => "Open model directory",
        PathTarget::Document => "Open analysis, workspace or eval results",
        PathTarget::Run => "Open evaluation run",
        PathTarget::SaveWorkspace => "Save workspace",
    }
}

fn path(ctx: &egui::Context, w: &PathWindow, out: &mut Vec<Command>) {
    let window = TextWindow {
        title: title(w.target),
        note: w.note.as_deref(),
        hint: "/path/to/file",
        button: "Open",
        width: 420.0,
    };
    match window.show(ctx, &w.text) {
        Typed::Submit(p) => out.push(Command::open(w.target, p.into())),
        Typed::Close => out.push(Command::ClosePathWindow),
        Typed::Edit(p) => out.push(Command::EditPath(p)),
        Typed::Nothing => {}
    }
}

fn export(ctx: &egui::Context, dir: &str, out: &mut Vec<Command>) {
    let mut open = true;
    let mut text = dir.to_string();
    let mut go = false;
    egui::Window::new("Export")
        .open(&mut open)
        .collapsible(false)
        .show(ctx, |ui| {
            ui.label("Writes the attention lane (PNG), scores and outputs (CSV), and the analyze --json document into:");
            ui.add(egui::TextEdit::singleline(&mut text).desired_width(420.0));
            go = ui.button("Export").clicked();
        });
    if go {
        out.push(Command::Export(text.trim().into()));
    } else if !open {
        out.push(Command::CloseExportWindow);
    } else if text != dir {
        out.push(Command::EditExportDir(text));
    }
}
