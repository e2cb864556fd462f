//! The controls panel: method, keep ratio, segments and the other pruning parameters, the
//! score source, decoding (silence tail, loop guard, prompt), the grid's extra rows, the
//! reference transcript and playback options. Each control edits a copy of its setting and
//! pushes the command that sets it when the user changed it.

use egui::RichText;

use crate::engine::{RunMethod, Tail, Unavailable};
use crate::prune::{Method, SegmentMode};
use crate::scores::HeadReduce;
use crate::ui::commands::Command;
use crate::ui::logic::compare;
use crate::ui::state::AppState;
use crate::ui::theme;

pub fn panel(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    ui.heading("Pruning");
    ui.add_space(4.0);
    pruning(ui, s, out);
    score_source(ui, s, out);
    decoding(ui, s, out);
    method_parameters(ui, s, out);
    ui.add_space(6.0);
    grid_rows(ui, s, out);
    ui.separator();
    ui.label(RichText::new("Reference transcript (for WER)").color(theme::TEXT_DIM));
    let mut reference = s.settings.reference.clone();
    let r = ui.add(
        egui::TextEdit::multiline(&mut reference)
            .desired_rows(3)
            .hint_text("optional"),
    );
    if r.changed() {
        out.push(Command::SetReference(reference));
    }
    ui.separator();
    ui.horizontal(|ui| {
        let mut follow = s.settings.follow;
        if ui.checkbox(&mut follow, "Follow playhead").changed() {
            out.push(Command::ToggleFollow);
        }
        let mut looping = s.settings.looping;
        if ui.checkbox(&mut looping, "Loop").changed() {
            out.push(Command::ToggleLoop);
        }
    });
}

/// Method, keep ratio, segments and their mode, seed.
fn pruning(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let set = &s.settings;
    let mut method = set.method;
    egui::ComboBox::from_label("Method")
        .selected_text(method.name())
        .show_ui(ui, |ui| {
            for m in Method::ALL {
                ui.selectable_value(&mut method, m, m.name());
            }
        });
    if method != set.method {
        out.push(Command::SetMethod(method));
    }
    let mut keep = set.keep_percent;
    let slider = egui::Slider::new(&mut keep, 1.0..=100.0)
        .step_by(1.0)
        .suffix(" %")
        .text("Keep");
    if ui.add(slider).changed() {
        out.push(Command::SetKeep(keep));
    }
    let mut segments = set.segments;
    if ui
        .add(egui::Slider::new(&mut segments, 1..=50).text("S"))
        .changed()
    {
        out.push(Command::SetSegments(segments));
    }
    let mut mode = set.mode;
    ui.horizontal(|ui| {
        ui.label("Segments");
        ui.selectable_value(&mut mode, SegmentMode::Paper, "paper");
        ui.selectable_value(&mut mode, SegmentMode::Exact, "exact");
    });
    if mode != set.mode {
        out.push(Command::SetSegmentMode(mode));
    }
    let mut seed = set.seed;
    if ui
        .add(egui::DragValue::new(&mut seed).prefix("seed "))
        .changed()
    {
        out.push(Command::SetSeed(seed));
    }
}

/// Which encoder layer's received attention, reduced over heads how, every method ranks tokens
/// by (the paper's: the last layer, mean). Changing it re-ranks without encoding again: the
/// clip's encoding holds every layer.
fn score_source(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let layers = s
        .scores()
        .map_or(0, |sc| sc.encoder_layers())
        .max(s.settings.source.layer.map_or(0, |l| l + 1));
    let mut source = s.settings.source;
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
    if source != s.settings.source {
        out.push(Command::SetScoreSource(source));
    }
}

/// Silence tail, loop guard, prompt.
fn decoding(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let prompted = s.model.prompted();
    ui.add_enabled_ui(!prompted, |ui| tail(ui, s.settings.tail, out))
        .response
        .on_disabled_hover_text("Qwen2-Audio and Audio Flamingo 3 take no silence tail");
    let mut stop = s.settings.stop_on_loop;
    if ui.checkbox(&mut stop, "Stop on loop")
        .on_hover_text("End each decode where it starts repeating itself and keep the text before the repeats (the cell is still marked as a loop). Off: the plain greedy decode.")
        .changed()
    {
        out.push(Command::SetStopOnLoop(stop));
    }
    ui.horizontal(|ui| {
        ui.label("Prompt");
        let mut prompt = s.settings.prompt.clone();
        let r = ui
            .add_enabled(
                prompted,
                egui::TextEdit::singleline(&mut prompt)
                    .hint_text("Describe the audio.")
                    .desired_width(220.0),
            )
            .on_hover_text("Text after the audio in the chat prompt, e.g. a question (empty: the model's default)")
            .on_disabled_hover_text("Whisper transcribes: only Qwen2-Audio and Audio Flamingo 3 take a prompt");
        if r.changed() {
            out.push(Command::SetPrompt(prompt));
        }
    });
}

/// The silence-tail control: a token count, or the window's whole padding.
fn tail(ui: &mut egui::Ui, tail: Tail, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        let mut whole = tail == Tail::WindowEnd;
        let mut n = match tail {
            Tail::Tokens(n) => n,
            Tail::WindowEnd => 1500,
        };
        ui.add_enabled(!whole, egui::Slider::new(&mut n, 0..=600).text("Silence tail"))
            .on_hover_text("Padding tokens after each window's kept tokens (Whisper): the decoder sees where the audio ends. 150 (3 s) by default.");
        ui.checkbox(&mut whole, "to 30 s")
            .on_hover_text("All of the window's padding, as the unpruned model sees it");
        let chosen = if whole {
            Tail::WindowEnd
        } else {
            Tail::Tokens(n)
        };
        if chosen != tail {
            out.push(Command::SetTail(chosen));
        }
    });
}

/// Adaptive's gamma, the window method's length, LTBM's window, DART's pivots, Samp's and
/// Atome's thresholds.
fn method_parameters(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    let set = &s.settings;
    let mut gamma = set.gamma;
    let slider = egui::Slider::new(&mut gamma, 0.0..=4.0)
        .step_by(0.1)
        .text("Adaptive γ");
    if ui.add(slider).changed() {
        out.push(Command::SetGamma(gamma));
    }
    let mut window = set.window_seconds;
    let slider = egui::Slider::new(&mut window, 0.5..=10.0)
        .step_by(0.5)
        .suffix(" s")
        .text("Window");
    if ui.add(slider).changed() {
        out.push(Command::SetWindowSeconds(window));
    }
    let mut window = set.merge_window;
    let slider = egui::Slider::new(&mut window, 1..=8).text("LTBM window");
    if ui
        .add(slider)
        .on_hover_text("LTBM: how many of its nearest groups on each side a group may merge into")
        .changed()
    {
        out.push(Command::SetMergeWindow(window));
    }
    let mut pivots = set.pivots;
    let slider = egui::Slider::new(&mut pivots, 1..=16).text("DART pivots");
    if ui.add(slider).changed() {
        out.push(Command::SetPivots(pivots));
    }
    let mut t = set.samp_threshold;
    let slider = egui::Slider::new(&mut t, 0.0..=1.0)
        .step_by(0.01)
        .text("Samp merge cosine");
    if ui.add(slider).changed() {
        out.push(Command::SetSampThreshold(t));
    }
    ui.horizontal(|ui| {
        let mut on = set.merge_threshold.is_some();
        let mut t = set.merge_threshold.unwrap_or(0.8);
        ui.checkbox(&mut on, "Atome above")
            .on_hover_text("Atome merges every adjacent pair whose keys are more similar than this cosine, so K follows the audio (off: down to the keep ratio)");
        ui.add_enabled(
            on,
            egui::Slider::new(&mut t, -1.0..=1.0)
                .step_by(0.01)
                .text("cosine"),
        );
        let chosen = on.then_some(t);
        if chosen != set.merge_threshold {
            out.push(Command::SetMergeThreshold(chosen));
        }
    });
}

/// The grid's optional rows: this paper's extensions and other papers' methods.
fn grid_rows(ui: &mut egui::Ui, s: &AppState, out: &mut Vec<Command>) {
    ui.label(RichText::new("Extensions in the grid").color(theme::TEXT_DIM));
    ui.horizontal_wrapped(|ui| {
        for m in compare::EXTENSIONS {
            let mut on = s.settings.extensions.contains(&m);
            if ui.checkbox(&mut on, m.name()).changed() {
                out.push(Command::ShowExtension(m, on));
            }
        }
    });
    ui.label(RichText::new("Other papers' methods").color(theme::TEXT_DIM));
    ui.horizontal_wrapped(|ui| {
        for m in compare::PEERS {
            let why = s.unavailable(m);
            let mut on = s.settings.peers.contains(&m) && why.is_none();
            let r = ui
                .add_enabled(why.is_none(), egui::Checkbox::new(&mut on, m.name()))
                .on_hover_text(peer_tip(m))
                .on_disabled_hover_text(why.map(unavailable).unwrap_or_default());
            if r.changed() {
                out.push(Command::ShowPeer(m, on));
            }
        }
    });
    if s.model.prompted() && s.settings.peers.contains(&RunMethod::FastV) {
        let layers = s.model.lm_layers().unwrap_or(1).max(1);
        let mut layer = s.settings.fastv_layer;
        if ui
            .add(egui::Slider::new(&mut layer, 0..=layers - 1).text("FastV layer"))
            .on_hover_text("Language-model layers that read every audio token before the ranking (AudioMarathon uses 2)")
            .changed()
        {
            out.push(Command::SetFastVLayer(layer));
        }
    }
    let encoder_layers = s.model.info.as_ref().map_or(0, |i| i.encoder_layers);
    if s.settings.peers.contains(&RunMethod::EncoderDrop) && encoder_layers > 1 {
        let half = encoder_layers / 2;
        let mut layer = s.settings.drop_layer.unwrap_or(half);
        if ui
            .add(egui::Slider::new(&mut layer, 1..=encoder_layers - 1).text("Drop after layer"))
            .on_hover_text("encoderdrop: the encoder layers that read every token; the rest read only the K that received the most attention in the last of them")
            .changed()
        {
            out.push(Command::SetDropLayer((layer != half).then_some(layer)));
        }
    }
}

/// Why a method cannot run, worded with the explorer's controls.
fn unavailable(why: Unavailable) -> String {
    match why {
        Unavailable::FastVLayer { layer, layers } => format!(
            "the FastV layer slider is at {layer}, and the language model has {layers} layers (0 to {})",
            layers.saturating_sub(1)
        ),
        Unavailable::DropLayer { layer, layers } => format!(
            "the drop layer slider is at {layer}, and the encoder has {layers} layers (1 to {})",
            layers.saturating_sub(1)
        ),
        other => other.to_string(),
    }
}

fn peer_tip(m: RunMethod) -> &'static str {
    match m {
        RunMethod::FastV => "FastV (Chen et al., ECCV 2024): the model reads every token, then keeps the K its own attention ranks first. Qwen2-Audio / AF3: the last prompt position's attention in the layer below; Whisper: the first decoding step's cross-attention (our adaptation).",
        RunMethod::SpeechPrune => "SpeechPrune (Lin et al., ICME 2025): each second of audio gets its share of K by how similar its tokens are to the prompt (through the language model's embeddings); within it, the tokens the prompt attends to most in a binarized first layer.",
        RunMethod::EncoderDrop => "Early attentive sparsification (arXiv 2506.15912): the encoder's first layers read every token, the rest only the K that received the most attention in the last of them; the encoder itself gets cheaper.",
        RunMethod::Prune(Method::Ltbm) => "LTBM (local temporal bipartite merging): ToMe's bipartite matching where a token may only merge into one of its nearest neighbours, round after round until K remain.",
        RunMethod::Prune(Method::Dart) => "DART (Wen et al., EMNLP 2025): a few pivot tokens by key norm, and the tokens least like them; near-duplicates go.",
        RunMethod::Prune(Method::Samp) => "Samp (Tencent AngelSlim): adjacent similar tokens merge, weighted by the attention they receive, then a diversity-aware choice (DPP) of the groups within each 30 s.",
        _ => "Prompt-aware (SpeechPrune, Lin et al. 2025): top-K by the attention the prompt's text pays each audio token in the language model's first layer.",
    }
}
