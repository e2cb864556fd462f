//! The explorer's panels: menu bar, status bar, controls, selection summary, transport, the grid
//! of outputs and the windows (shortcuts, open path, export). They draw from the app's state,
//! edit the settings directly, and request every action as a [`Command`].

use egui::{Color32, RichText, Sense};

use super::app::{ExplorerApp, PathWindow};
use super::commands::{Command, Menu, COMMANDS};
use super::compare;
use super::theme;
use crate::engine::{RunMethod, Tail};
use crate::model::scores::HeadReduce;
use crate::model::Precision;
use crate::prune::{Method, SegmentMode};

impl ExplorerApp {
    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            for (menu, title) in [
                (Menu::File, "File"),
                (Menu::Playback, "Playback"),
                (Menu::View, "View"),
            ] {
                ui.menu_button(title, |ui| {
                    for c in COMMANDS.iter().filter(|c| c.menu == menu) {
                        let mut b = egui::Button::new(c.name);
                        if let Some(s) = &c.shortcut {
                            b = b.shortcut_text(ui.ctx().format_shortcut(s));
                        }
                        let checked = match c.command {
                            Command::ToggleFollow => Some(self.settings.follow),
                            Command::ToggleLoop => Some(self.settings.looping),
                            _ => None,
                        };
                        let b = match checked {
                            Some(true) => b.right_text("on"),
                            _ => b,
                        };
                        if ui.add(b).clicked() {
                            self.pending.push(c.command.clone());
                            ui.close();
                        }
                    }
                    if menu == Menu::File {
                        ui.separator();
                        self.recent_menus(ui);
                        self.precision_menu(ui);
                    }
                });
            }
            ui.add_space(16.0);
            let title = self
                .clip
                .as_ref()
                .and_then(|c| c.path.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "no clip".into());
            ui.label(RichText::new(title).strong().color(theme::TEXT));
            ui.label(
                RichText::new(match (&self.model.name, self.model.loading) {
                    (_, true) => "loading model…".to_string(),
                    (Some(m), false) => m.clone(),
                    (None, false) => "no model".into(),
                })
                .color(theme::TEXT_DIM),
            );
        });
    }

    /// The dtype of Qwen2-Audio / AF3 (`--dtype`): choosing one reloads such a model in it;
    /// with Whisper loaded only auto and f32 apply (greyed out otherwise, the reason on hover).
    fn precision_menu(&mut self, ui: &mut egui::Ui) {
        let whisper = self.model.name.is_some() && !self.model.prompted;
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
                        egui::RadioButton::new(self.settings.precision == p, text),
                    )
                    .on_disabled_hover_text("Whisper runs in f32 in prunescope: bf16 and f16 are for Qwen2-Audio and Audio Flamingo 3");
                if r.clicked() {
                    self.pending.push(Command::SetPrecision(p));
                    ui.close();
                }
            }
        });
    }

    /// Which encoder layer's received attention, reduced over heads how, every method ranks
    /// tokens by (the paper's: the last layer, mean). Changing it re-ranks without encoding
    /// again: the clip's encoding holds every layer.
    fn score_source_ui(&mut self, ui: &mut egui::Ui) {
        let layers = self
            .scores()
            .map_or(0, |s| s.encoder_layers())
            .max(self.settings.source.layer.map_or(0, |l| l + 1));
        let mut source = self.settings.source;
        ui.horizontal(|ui| {
            ui.label("Scores from");
            let name = |l: Option<usize>| match l {
                None => "last layer".to_string(),
                Some(l) => format!("layer {l}"),
            };
            egui::ComboBox::from_id_salt("score-layer")
                .selected_text(name(source.layer))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut source.layer, None, name(None));
                    for l in 0..layers.saturating_sub(1) {
                        ui.selectable_value(&mut source.layer, Some(l), name(Some(l)));
                    }
                })
                .response
                .on_hover_text("The encoder layer whose received attention scores the tokens (0 is the first; the paper uses the last)");
            for r in [HeadReduce::Mean, HeadReduce::Max] {
                ui.selectable_value(&mut source.head_reduce, r, r.name())
                    .on_hover_text("How the heads' received attention becomes one score: their mean (the paper's) or the largest");
            }
        });
        if source != self.settings.source {
            self.pending.push(Command::SetScoreSource(source));
        }
    }

    fn recent_menus(&mut self, ui: &mut egui::Ui) {
        let clips = self.settings.recent_clips.clone();
        ui.menu_button("Recent clips", |ui| {
            if clips.is_empty() {
                ui.label("none yet");
            }
            for p in clips {
                if ui.button(p.display().to_string()).clicked() {
                    self.pending.push(Command::OpenClip(p));
                    ui.close();
                }
            }
        });
        let models = self.settings.recent_models.clone();
        ui.menu_button("Recent models", |ui| {
            if models.is_empty() {
                ui.label("none yet");
            }
            for p in models {
                if ui.button(p.display().to_string()).clicked() {
                    self.pending.push(Command::LoadModel(p));
                    ui.close();
                }
            }
        });
    }

    pub(super) fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(d) = &self.decoding {
                if d.running {
                    let done = d
                        .keys
                        .iter()
                        .filter(|k| self.results.contains_key(*k))
                        .count();
                    ui.add(
                        egui::ProgressBar::new(done as f32 / d.keys.len().max(1) as f32)
                            .desired_width(160.0)
                            .text(format!("decoding {done}/{}", d.keys.len())),
                    );
                    if ui.button("Cancel").clicked() {
                        self.pending.push(Command::CancelDecode);
                    }
                }
            }
            if self.model.loading {
                ui.spinner();
            }
            if let Some(s) = &self.status {
                let colour = if s.error {
                    theme::ERROR
                } else {
                    theme::TEXT_DIM
                };
                ui.label(RichText::new(&s.text).color(colour));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let recent = || self.frame_ms.iter().rev().take(120).map(|&x| f64::from(x));
                let median = crate::util::median(recent());
                let median = if median.is_nan() { 0.0 } else { median };
                let worst = recent().fold(0.0, f64::max);
                ui.label(
                    RichText::new(format!("ui frame {median:.1} ms (max {worst:.1})"))
                        .small()
                        .color(theme::TEXT_DIM),
                );
                ui.label(RichText::new("F1 shortcuts").small().color(theme::TEXT_DIM));
                let t = self.open_timing;
                if let Some(first) = t.slider_cell_ms {
                    let grid = t
                        .grid_ms
                        .map_or_else(String::new, |g| format!(", grid {:.2} s", g / 1e3));
                    ui.label(
                        RichText::new(format!("opened: slider cell {:.2} s{grid}", first / 1e3))
                            .small()
                            .color(theme::TEXT_DIM),
                    )
                    .on_hover_text("From opening the clip to its outputs: the slider's cell first, then the whole grid");
                }
            });
        });
    }

    pub(super) fn controls(&mut self, ui: &mut egui::Ui) {
        ui.heading("Pruning");
        ui.add_space(4.0);
        egui::ComboBox::from_label("Method")
            .selected_text(self.settings.method.name())
            .show_ui(ui, |ui| {
                for m in Method::ALL {
                    ui.selectable_value(&mut self.settings.method, m, m.name());
                }
            });
        ui.add(
            egui::Slider::new(&mut self.settings.keep_percent, 1.0..=100.0)
                .step_by(1.0)
                .suffix(" %")
                .text("Keep"),
        );
        ui.add(egui::Slider::new(&mut self.settings.segments, 1..=50).text("S"));
        ui.horizontal(|ui| {
            ui.label("Segments");
            ui.selectable_value(&mut self.settings.mode, SegmentMode::Paper, "paper");
            ui.selectable_value(&mut self.settings.mode, SegmentMode::Exact, "exact");
        });
        ui.add(egui::DragValue::new(&mut self.settings.seed).prefix("seed "));
        self.score_source_ui(ui);
        let prompted = self.model.prompted;
        ui.add_enabled_ui(!prompted, |ui| tail_ui(ui, &mut self.settings.tail))
            .response
            .on_disabled_hover_text("Qwen2-Audio and Audio Flamingo 3 take no silence tail");
        ui.checkbox(&mut self.settings.stop_on_loop, "Stop on loop")
            .on_hover_text("End each decode where it starts repeating itself and keep the text before the repeats (the cell is still marked as a loop). Off: the plain greedy decode.");
        ui.horizontal(|ui| {
            ui.label("Prompt");
            ui.add_enabled(
                prompted,
                egui::TextEdit::singleline(&mut self.settings.prompt)
                    .hint_text("Describe the audio.")
                    .desired_width(220.0),
            )
            .on_hover_text("Text after the audio in the chat prompt, e.g. a question (empty: the model's default)")
            .on_disabled_hover_text("Whisper transcribes: only Qwen2-Audio and Audio Flamingo 3 take a prompt");
        });
        ui.add(
            egui::Slider::new(&mut self.settings.gamma, 0.0..=4.0)
                .step_by(0.1)
                .text("Adaptive γ"),
        );
        ui.add(
            egui::Slider::new(&mut self.settings.window_seconds, 0.5..=10.0)
                .step_by(0.5)
                .suffix(" s")
                .text("Window"),
        );
        ui.horizontal(|ui| {
            let mut on = self.settings.merge_threshold.is_some();
            let mut t = self.settings.merge_threshold.unwrap_or(0.8);
            ui.checkbox(&mut on, "Atome above")
                .on_hover_text("Atome merges every adjacent pair whose keys are more similar than this cosine, so K follows the audio (off: down to the keep ratio)");
            ui.add_enabled(
                on,
                egui::Slider::new(&mut t, -1.0..=1.0)
                    .step_by(0.01)
                    .text("cosine"),
            );
            self.settings.merge_threshold = on.then_some(t);
        });
        ui.add_space(6.0);
        ui.label(RichText::new("Extensions in the grid").color(theme::TEXT_DIM));
        ui.horizontal_wrapped(|ui| {
            for m in compare::EXTENSIONS {
                let mut on = self.settings.extensions.contains(&m);
                if ui.checkbox(&mut on, m.name()).changed() {
                    self.settings.extensions.retain(|x| *x != m);
                    if on {
                        self.settings.extensions.push(m);
                    }
                }
            }
        });
        ui.label(RichText::new("Other papers' methods").color(theme::TEXT_DIM));
        ui.horizontal_wrapped(|ui| {
            for m in compare::PEERS {
                let why = self.unavailable(m);
                let mut on = self.settings.peers.contains(&m) && why.is_none();
                let tip = match m {
                    RunMethod::FastV => "FastV (Chen et al., ECCV 2024): the model reads every token, then keeps the K its own attention ranks first. Qwen2-Audio / AF3: the last prompt position's attention in the layer below; Whisper: the first decoding step's cross-attention (our adaptation).",
                    _ => "Prompt-aware (SpeechPrune, Lin et al. 2025): top-K by the attention the prompt's text pays each audio token in the language model's first layer.",
                };
                let r = ui
                    .add_enabled(why.is_none(), egui::Checkbox::new(&mut on, m.name()))
                    .on_hover_text(tip)
                    .on_disabled_hover_text(why.unwrap_or_default());
                if r.changed() {
                    self.settings.peers.retain(|x| *x != m);
                    if on {
                        self.settings.peers.push(m);
                    }
                }
            }
        });
        if self.model.prompted && self.settings.peers.contains(&RunMethod::FastV) {
            let layers = self.model.lm_layers.unwrap_or(1).max(1);
            ui.add(
                egui::Slider::new(&mut self.settings.fastv_layer, 0..=layers - 1)
                    .text("FastV layer"),
            )
            .on_hover_text("Language-model layers that read every audio token before the ranking (AudioMarathon uses 2)");
        }
        ui.separator();
        ui.label(RichText::new("Reference transcript (for WER)").color(theme::TEXT_DIM));
        ui.add(
            egui::TextEdit::multiline(&mut self.settings.reference)
                .desired_rows(3)
                .hint_text("optional"),
        );
        ui.separator();
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.settings.follow, "Follow playhead");
            if ui.checkbox(&mut self.settings.looping, "Loop").changed() {
                if let Some(c) = &mut self.clip {
                    c.playback.looping = self.settings.looping;
                }
            }
        });
    }

    pub(super) fn selection_summary(&mut self, ui: &mut egui::Ui) {
        let n = self
            .clip
            .as_ref()
            .and_then(|c| c.scores.as_ref())
            .map_or(0, |s| s.raw().len());
        ui.horizontal(|ui| {
            ui.add_space(theme::LABEL_WIDTH);
            match self.highlight.as_ref().map(|h| &h.result) {
                Some(Ok(sel)) => {
                    ui.label(
                        RichText::new(format!("Kept {} of {n} tokens", sel.kept.len()))
                            .color(theme::KEPT)
                            .strong(),
                    );
                    ui.label(RichText::new(format!("K = {}", sel.k)).color(theme::TEXT));
                    ui.label(
                        RichText::new(match sel.segments {
                            Some(s) => format!("Segments: {s}"),
                            None => "Segments: none".into(),
                        })
                        .color(theme::SEGMENT),
                    );
                    let from = if self.hovered_cell.is_some() {
                        format!("(hovered cell: {})", sel.method.name())
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

    pub(super) fn transport(&mut self, ui: &mut egui::Ui) {
        let Some(clip) = &self.clip else { return };
        let playing = clip.playback.playing;
        if ui
            .button(if playing { "Pause" } else { "Play" })
            .on_hover_text("Space")
            .clicked()
        {
            self.pending.push(Command::PlayPause);
        }
        if clip.playback.selection.is_some() && ui.button("Play selection").clicked() {
            self.pending.push(Command::PlaySelection);
        }
        ui.label(
            RichText::new(format!(
                "{:.2} / {:.2} s",
                clip.playback.position, clip.duration
            ))
            .monospace(),
        );
        if let Some((a, b)) = clip.playback.selection {
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
                    s.raw().len(),
                    s.report.encode_ms
                ))
                .color(theme::TEXT_DIM),
            );
        }
    }

    pub(super) fn windows(&mut self, ctx: &egui::Context) {
        if self.show_help {
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
            self.show_help = open;
        }
        if let Some(PathWindow {
            target,
            mut text,
            note,
        }) = self.path_window.take()
        {
            let mut open = true;
            let mut submit = false;
            egui::Window::new(target.title())
                .open(&mut open)
                .collapsible(false)
                .show(ctx, |ui| {
                    if let Some(n) = &note {
                        ui.label(RichText::new(n).color(theme::TEXT_DIM));
                    }
                    let r = ui.add(
                        egui::TextEdit::singleline(&mut text)
                            .desired_width(420.0)
                            .hint_text("/path/to/file"),
                    );
                    if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                        submit = true;
                    } else if ui.memory(|m| m.focused().is_none()) {
                        // Typing goes to the path at once (when nothing else has the keyboard).
                        r.request_focus();
                    }
                    if ui.button("Open").clicked() {
                        submit = true;
                    }
                });
            if submit && !text.trim().is_empty() {
                self.pending.push(target.command(text.trim().into()));
            } else if open {
                self.path_window = Some(PathWindow { target, text, note });
            }
        }
        if let Some(mut dir) = self.export_dir.take() {
            let mut open = true;
            let mut go = false;
            egui::Window::new("Export")
                .open(&mut open)
                .collapsible(false)
                .show(ctx, |ui| {
                    ui.label("Writes the attention lane (PNG), scores and outputs (CSV), and the analyze --json document into:");
                    ui.add(egui::TextEdit::singleline(&mut dir).desired_width(420.0));
                    go = ui.button("Export").clicked();
                });
            if go {
                self.pending.push(Command::Export(dir.trim().into()));
            } else if open {
                self.export_dir = Some(dir);
            }
        }
    }
}

/// The silence-tail control: a token count, or the window's whole padding.
fn tail_ui(ui: &mut egui::Ui, tail: &mut Tail) {
    ui.horizontal(|ui| {
        let mut whole = *tail == Tail::WindowEnd;
        let mut n = match *tail {
            Tail::Tokens(n) => n,
            Tail::WindowEnd => 1500,
        };
        ui.add_enabled(!whole, egui::Slider::new(&mut n, 0..=600).text("Silence tail"))
            .on_hover_text("Padding tokens after each window's kept tokens (Whisper): the decoder sees where the audio ends. 150 (3 s) by default.");
        ui.checkbox(&mut whole, "to 30 s")
            .on_hover_text("All of the window's padding, as the unpruned model sees it");
        *tail = if whole { Tail::WindowEnd } else { Tail::Tokens(n) };
    });
}

fn legend(ui: &mut egui::Ui, colour: Color32, name: &str) {
    let (r, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), Sense::hover());
    ui.painter().rect_filled(r, 2.0, colour);
    ui.label(RichText::new(name).color(theme::TEXT_DIM));
}
