//! Runs every pruning setting of a clip through a model: encode each 30 s window once, score the
//! clip's tokens, select per run, build each run's decoder inputs per window, decode all of them
//! as one batch, and assemble the `analyze` document (SPEC.md section 7).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::audio::Audio;
use crate::model::{AudioLanguageModel, DecodeInput, ModelError, ModelInfo};
use crate::prune::{self, Method, Params, PruneError, Selection};
use crate::scores::{LayerScores, Layers, ScoreSource};

pub mod host;
pub mod key;
mod report;
mod run;
pub mod words;
pub mod worker;

pub use crate::model::align::TimedWord;
pub use host::{HostError, LinkError, ModelHost, Session};
pub use key::RunKey;
pub use report::{
    describe, Analysis, ClipInfo, ClipReport, PlanSettings, ScoreSourceReport, TokenInfo,
};
pub use run::{run, run_with, speechprune_selection, RunResult};
pub use words::{AttentionBlock, RunAttention};

#[cfg(test)]
mod tests;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error("the model returned {got} scores for a window of {want} tokens")]
    ScoreCount { got: usize, want: usize },
    /// A score source's layer that the encoder does not have.
    #[error("score layer {layer}: the encoder has {layers} layers (0 to {})", .layers.saturating_sub(1))]
    ScoreLayer { layer: usize, layers: usize },
    /// A score source's layer whose scores the encoder pass did not collect.
    #[error("layer {layer}'s scores were not collected (encode with every layer)")]
    NotCollected { layer: usize },
    /// A method that does not apply to the model.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why a method cannot run on a model. Values, so that each front end words them with its own
/// names for the controls involved (the command line its flags, the explorer its widgets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// `promptaware` on a model without a prompt (Whisper).
    #[error("promptaware ranks audio tokens by the attention of a language model's prompt: it needs Qwen2-Audio or Audio Flamingo 3 (Whisper has no prompt)")]
    NoPrompt,
    /// A prompted model that gave no prompt-aware scores.
    #[error("this model gives no prompt-aware scores")]
    NoPromptScores,
    /// `speechprune` on a model without a prompt.
    #[error("speechprune weighs audio tokens by their similarity to a language model's prompt: it needs Qwen2-Audio or Audio Flamingo 3 (Whisper has no prompt)")]
    SpeechPruneNoPrompt,
    /// `encoderdrop` on a model whose encoder cannot drop tokens part-way.
    #[error("encoderdrop needs an encoder that can drop tokens part-way, and this model's cannot")]
    NoEncoderDrop,
    /// `encoderdrop` at a layer that leaves no encoder layer before or after the drop.
    #[error("drop layer {layer}: the encoder has {layers} layers, so the drop goes after layer 1 to {}", .layers.saturating_sub(1))]
    DropLayer { layer: usize, layers: usize },
    /// `fastv` at a layer the language model does not have.
    #[error("FastV layer {layer}: the language model has {layers} layers (0 to {})", .layers.saturating_sub(1))]
    FastVLayer { layer: usize, layers: usize },
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// What a run feeds the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMethod {
    /// The model as shipped: every token of every window, padding included.
    Vanilla,
    /// A selection made on the encoder's scores or keys before decoding ([`prune`]).
    Prune(Method),
    /// Pruning inside the model, FastV style: every token goes in, the model keeps the K its
    /// own attention ranks first (docs/SPEC.md section 4).
    FastV,
    /// Top-K by the attention the prompt's text pays each audio token in the language model's
    /// first layer, SpeechPrune style (Qwen2-Audio, AF3).
    PromptAware,
    /// Pruning inside the encoder (early attentive sparsification): its first layers read every
    /// token, the rest only the K best by the attention they received there.
    EncoderDrop,
    /// SpeechPrune: each second's share of K by its tokens' similarity to the prompt, then the
    /// tokens the prompt attends to most in a binarized first layer (Qwen2-Audio, AF3).
    SpeechPrune,
}

impl RunMethod {
    pub fn name(&self) -> &'static str {
        match self {
            RunMethod::Vanilla => "vanilla",
            RunMethod::Prune(m) => m.name(),
            RunMethod::FastV => "fastv",
            RunMethod::PromptAware => "promptaware",
            RunMethod::EncoderDrop => "encoderdrop",
            RunMethod::SpeechPrune => "speechprune",
        }
    }

    /// Whether the run ignores the keep ratio (it runs once, with keep 1): vanilla, full, and
    /// atome with a merge threshold.
    pub fn ignores_keep(self, params: &Params) -> bool {
        match self {
            RunMethod::Vanilla | RunMethod::Prune(Method::Full) => true,
            RunMethod::Prune(Method::Atome) => params.merge_threshold.is_some(),
            RunMethod::Prune(_)
            | RunMethod::FastV
            | RunMethod::PromptAware
            | RunMethod::EncoderDrop
            | RunMethod::SpeechPrune => false,
        }
    }

    /// Every method's name, as [`RunMethod::parse`] takes them.
    pub fn names() -> Vec<&'static str> {
        std::iter::once(RunMethod::Vanilla)
            .chain(Method::ALL.into_iter().map(RunMethod::Prune))
            .chain([
                RunMethod::FastV,
                RunMethod::PromptAware,
                RunMethod::SpeechPrune,
                RunMethod::EncoderDrop,
            ])
            .map(|m| m.name())
            .collect()
    }

    pub fn parse(s: &str) -> std::result::Result<RunMethod, PruneError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vanilla" => Ok(RunMethod::Vanilla),
            "fastv" => Ok(RunMethod::FastV),
            "promptaware" | "prompt-aware" => Ok(RunMethod::PromptAware),
            "encoderdrop" | "encoder-drop" => Ok(RunMethod::EncoderDrop),
            "speechprune" => Ok(RunMethod::SpeechPrune),
            _ => Method::parse(s).map(RunMethod::Prune),
        }
    }

    /// Why this method cannot run on `model` with `decoding`'s FastV and drop layers (None:
    /// it can).
    pub fn unavailable(self, model: &ModelInfo, decoding: &Decoding) -> Option<Unavailable> {
        match (self, model.lm_layers) {
            (RunMethod::PromptAware, None) => Some(Unavailable::NoPrompt),
            (RunMethod::SpeechPrune, None) => Some(Unavailable::SpeechPruneNoPrompt),
            (RunMethod::FastV, Some(layers)) if decoding.fastv_layer >= layers => {
                Some(Unavailable::FastVLayer {
                    layer: decoding.fastv_layer,
                    layers,
                })
            }
            (RunMethod::EncoderDrop, _) if !model.drops_in_encoder => {
                Some(Unavailable::NoEncoderDrop)
            }
            (RunMethod::EncoderDrop, _) => {
                let (layer, layers) = (decoding.drop_layer_of(model), model.encoder_layers);
                (layer == 0 || layer >= layers).then_some(Unavailable::DropLayer { layer, layers })
            }
            _ => None,
        }
    }

    /// The [`prune`] rule behind a run's kept tokens before its decode: its own for a selection
    /// on the encoder's scores; `full` where the model gets every token (vanilla, and fastv,
    /// whose model keeps its K inside); `topk` for promptaware (of the prompt's scores).
    pub fn rule(self) -> Method {
        match self {
            RunMethod::Prune(m) => m,
            RunMethod::Vanilla | RunMethod::FastV => Method::Full,
            RunMethod::PromptAware | RunMethod::EncoderDrop | RunMethod::SpeechPrune => {
                Method::TopK
            }
        }
    }
}

/// Its name, the one [`RunMethod::parse`] takes and the JSON writes; honours a width, for
/// tables.
impl std::fmt::Display for RunMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// One pruning setting to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub method: RunMethod,
    pub keep: f64,
}

impl RunSpec {
    /// The run as it runs: keep 1 for a method that ignores the keep ratio.
    pub fn normalised(&self, params: &Params) -> RunSpec {
        let keep = if self.method.ignores_keep(params) {
            1.0
        } else {
            self.keep
        };
        RunSpec {
            method: self.method,
            keep,
        }
    }
}

/// The silence context a Whisper-style (cross-attention) decoder gets after each window's kept
/// tokens: encoder outputs of the window's own padding, right after its audio (SPEC.md
/// section 5). Not counted in K. Prefix models (Qwen2-Audio, AF3) take none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TailRepr", into = "TailRepr")]
pub enum Tail {
    /// The first `n` padding tokens (0: none).
    Tokens(usize),
    /// Every padding token up to the window's 30 s end, as the model sees it unpruned.
    WindowEnd,
}

impl Tail {
    /// The default, chosen by measurement over the ASR set (README, "Silence context"): with
    /// the window's whole padding `full` is `vanilla` exactly (never loops where the shipped
    /// model does not), and pruned runs loop far less than with any fixed tail tried (50, 150,
    /// 300 tokens).
    pub const DEFAULT: Tail = Tail::WindowEnd;

    /// Tail tokens for a window with `padding` padding tokens after its audio.
    pub fn tokens(self, padding: usize) -> usize {
        match self {
            Tail::Tokens(n) => n.min(padding),
            Tail::WindowEnd => padding,
        }
    }

    /// `150`, `0` or `window`.
    pub fn parse(s: &str) -> std::result::Result<Tail, BadTail> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("window") {
            return Ok(Tail::WindowEnd);
        }
        s.parse().map(Tail::Tokens).map_err(|_| BadTail(s.into()))
    }
}

/// A silence tail that is neither a number of tokens nor `window`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the silence tail must be a number of tokens or `window`, got `{0}`")]
pub struct BadTail(pub String);

impl Default for Tail {
    fn default() -> Tail {
        Tail::DEFAULT
    }
}

impl std::fmt::Display for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tail::Tokens(n) => write!(f, "{n}"),
            Tail::WindowEnd => write!(f, "window"),
        }
    }
}

/// A tail in JSON: a number of tokens, or "window".
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TailRepr {
    Tokens(usize),
    Named(String),
}

impl TryFrom<TailRepr> for Tail {
    type Error = BadTail;
    fn try_from(r: TailRepr) -> std::result::Result<Tail, BadTail> {
        match r {
            TailRepr::Tokens(n) => Ok(Tail::Tokens(n)),
            TailRepr::Named(s) => Tail::parse(&s),
        }
    }
}

impl From<Tail> for TailRepr {
    fn from(t: Tail) -> TailRepr {
        match t {
            Tail::Tokens(n) => TailRepr::Tokens(n),
            Tail::WindowEnd => TailRepr::Named("window".into()),
        }
    }
}

/// How every run of a plan is decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decoding {
    /// Silence context after each window's kept tokens (cross-attention models only).
    pub tail: Tail,
    /// The user's text for prompted models (Qwen2-Audio, AF3: a caption request or a question);
    /// None uses the model's default. Whisper ignores it.
    pub prompt: Option<String>,
    /// End each decode where a loop is detected and keep the text before it (`--stop-on-loop`).
    pub stop_on_loop: bool,
    /// Collect each run's attention from its output tokens to the audio and its words in
    /// clip time ([`RunResult::words`], [`RunResult::attention`]).
    pub attention: bool,
    /// `fastv` runs of prefix models: the language-model layers that read every audio token
    /// (`--fastv-layer`, 2 as in AudioMarathon).
    pub fastv_layer: usize,
    /// `encoderdrop`: the encoder layers that read every token (`--drop-layer`; None: half of
    /// them).
    #[serde(default)]
    pub drop_layer: Option<usize>,
}

impl Decoding {
    /// `encoderdrop`'s layer on `model`: the one asked for, else half its encoder's layers.
    pub fn drop_layer_of(&self, model: &ModelInfo) -> usize {
        self.drop_layer.unwrap_or(model.encoder_layers / 2)
    }
}

impl Default for Decoding {
    fn default() -> Decoding {
        Decoding {
            tail: Tail::default(),
            prompt: None,
            stop_on_loop: false,
            attention: false,
            fastv_layer: 2,
            drop_layer: None,
        }
    }
}

/// Everything a clip's analysis is parameterised by.
#[derive(Debug, Clone)]
pub struct Plan {
    pub runs: Vec<RunSpec>,
    pub params: Params,
    pub decoding: Decoding,
}

/// Every method x keep combination, method by method, each once: a method that
/// [ignores the keep ratio](RunMethod::ignores_keep) (`vanilla`, `full`, `atome` with a merge
/// threshold) runs once, at keep 1. The command line's plan and the explorer's grid both are it.
pub fn grid_runs(methods: &[RunMethod], keeps: &[f64], params: &Params) -> Vec<RunSpec> {
    let mut runs = Vec::new();
    for &method in methods {
        let ks: &[f64] = if method.ignores_keep(params) {
            &[1.0]
        } else {
            keeps
        };
        for &keep in ks {
            let spec = RunSpec { method, keep };
            if !runs.contains(&spec) {
                runs.push(spec);
            }
        }
    }
    runs
}

impl Plan {
    /// The runs of [`grid_runs`].
    pub fn grid(methods: &[RunMethod], keeps: &[f64], params: Params, decoding: Decoding) -> Plan {
        Plan {
            runs: grid_runs(methods, keeps, &params),
            params,
            decoding,
        }
    }

    /// Whether a model described by `info` can run every run of the plan (`fastv`'s layer,
    /// `promptaware`'s prompt).
    pub fn check_runs(&self, info: &ModelInfo) -> Result<()> {
        for spec in &self.runs {
            if let Some(why) = spec.method.unavailable(info, &self.decoding) {
                return Err(why.into());
            }
        }
        Ok(())
    }

    /// [`Plan::validate`], [`Plan::check_runs`] and the score source's layer: everything
    /// about a plan that can be refused before a clip is encoded.
    pub fn check_for(&self, info: &ModelInfo) -> Result<()> {
        self.validate()?;
        self.check_runs(info)?;
        check_source(info, &self.params.source)
    }

    pub fn validate(&self) -> Result<()> {
        for r in &self.runs {
            Params {
                keep: r.keep,
                ..self.params.clone()
            }
            .validate()?;
        }
        self.params.validate()?;
        Ok(())
    }
}

/// One encoded window of a clip.
pub struct Window {
    /// Clip token index of this window's first token.
    pub first_token: usize,
    pub n_valid: usize,
    /// Encoder output rows, `tokens_per_window x d`, row-major.
    pub hidden: Vec<f32>,
    pub tokens: usize,
    /// The clip's samples this window read ([`EncodedClip::samples`]).
    pub samples: std::ops::Range<usize>,
}

/// A clip after the encoder: its windows, the scores and keys of all its valid tokens.
pub struct EncodedClip {
    pub windows: Vec<Window>,
    /// The layers' scores collected ([`Layers`]), every window's tokens in clip order, first
    /// layer first (the last one alone unless every layer was asked for).
    pub layers: Vec<LayerScores>,
    /// Layers of the model's encoder.
    pub encoder_layers: usize,
    pub keys: Vec<f32>,
    pub key_dim: usize,
    pub d_model: usize,
    pub encode_ms: f64,
    /// Samples the model read: the whole clip, or its first `max_windows` windows.
    pub analyzed_samples: usize,
    /// The clip's samples (shared with its [`Audio`]): `encoderdrop` runs the encoder again.
    pub samples: Arc<Vec<f32>>,
}

impl EncodedClip {
    pub fn n_tokens(&self) -> usize {
        self.scores().len()
    }

    /// The paper's scores: the last layer's, mean over heads.
    pub fn scores(&self) -> &[f32] {
        self.layers.last().map_or(&[], |l| &l.mean)
    }

    /// The scores `source` names, with a clear error when that layer does not exist or was not
    /// collected.
    pub fn scores_for(&self, source: &ScoreSource) -> Result<&[f32]> {
        let layer = source.layer_of(self.encoder_layers);
        if layer >= self.encoder_layers {
            return Err(EngineError::ScoreLayer {
                layer,
                layers: self.encoder_layers,
            });
        }
        source
            .pick(&self.layers, self.encoder_layers)
            .ok_or(EngineError::NotCollected { layer })
    }

    /// Whether it holds every encoder layer's scores.
    pub fn has_all_layers(&self) -> bool {
        self.layers.len() == self.encoder_layers && self.encoder_layers > 1
    }

    /// Which window holds clip token `t`.
    pub fn window_of(&self, t: usize) -> usize {
        self.windows
            .partition_point(|w| w.first_token + w.n_valid <= t)
            .min(self.windows.len().saturating_sub(1))
    }

    fn row(&self, t: usize) -> &[f32] {
        let w = &self.windows[self.window_of(t)];
        let local = t - w.first_token;
        &w.hidden[local * self.d_model..(local + 1) * self.d_model]
    }
}

/// Progress of a long analysis, for progress bars.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    Encoded { window: usize, of: usize },
    Decoded { done: usize, of: usize },
}

/// Encodes every 30 s window of the clip once, with the last layer's scores or every layer's.
pub fn encode(
    model: &dyn AudioLanguageModel,
    audio: &Audio,
    layers: Layers,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<EncodedClip> {
    let t0 = std::time::Instant::now();
    let info = model.info();
    let mut ranges = audio.windows_of(info.window_samples);
    if let Some(max) = info.max_windows {
        ranges.truncate(max.max(1));
    }
    let analyzed_samples = ranges.last().map_or(0, |r| r.end);
    let mut windows = Vec::with_capacity(ranges.len());
    let mut keys = Vec::new();
    let mut per_layer: Vec<LayerScores> = Vec::new();
    let mut n_tokens = 0;
    let (mut key_dim, mut d_model) = (0, 0);
    for (i, r) in ranges.iter().enumerate() {
        let enc = model.encode(&audio.samples[r.clone()], layers)?;
        if enc.scores().len() != enc.n_valid {
            return Err(EngineError::ScoreCount {
                got: enc.scores().len(),
                want: enc.n_valid,
            });
        }
        let (tokens, d) = enc.hidden.dims2().map_err(ModelError::from)?;
        d_model = d;
        key_dim = enc.key_dim;
        windows.push(Window {
            first_token: n_tokens,
            n_valid: enc.n_valid,
            hidden: enc
                .hidden
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(ModelError::from)?,
            tokens,
            samples: r.clone(),
        });
        n_tokens += enc.n_valid;
        keys.extend_from_slice(&enc.keys);
        if per_layer.is_empty() {
            per_layer = enc.layers;
        } else {
            for (all, w) in per_layer.iter_mut().zip(&enc.layers) {
                all.extend(w);
            }
        }
        progress(Progress::Encoded {
            window: i + 1,
            of: ranges.len(),
        });
    }
    Ok(EncodedClip {
        windows,
        layers: per_layer,
        encoder_layers: info.encoder_layers,
        keys,
        key_dim,
        d_model,
        encode_ms: t0.elapsed().as_secs_f64() * 1e3,
        analyzed_samples,
        samples: audio.samples.clone(),
    })
}

/// The selection of one run (None for vanilla; every token for the methods that select inside
/// the model, `fastv` and `promptaware`: see [`run_with`]).
pub fn select(clip: &EncodedClip, spec: &RunSpec, params: &Params) -> Result<Option<Selection>> {
    let method = match spec.method {
        RunMethod::Vanilla => return Ok(None),
        RunMethod::Prune(m) => m,
        RunMethod::FastV
        | RunMethod::PromptAware
        | RunMethod::EncoderDrop
        | RunMethod::SpeechPrune => Method::Full,
    };
    let params = Params {
        keep: spec.keep,
        ..params.clone()
    };
    let keys = prune::Keys {
        data: &clip.keys,
        dim: clip.key_dim,
    };
    Ok(Some(prune::select(
        method,
        clip.scores_for(&params.source)?,
        Some(keys),
        &params,
    )?))
}

/// Each window's silence-context rows, built once and shared (one `Arc`) by the decoder inputs
/// of every run, so the model computes their keys and values once per window.
#[derive(Default)]
pub struct TailRows(HashMap<(usize, usize), Arc<Tensor>>);

impl TailRows {
    /// The first `n` padding rows of window `w` (None when `n` is 0).
    fn get(&mut self, clip: &EncodedClip, w: usize, n: usize) -> Result<Option<Arc<Tensor>>> {
        if n == 0 {
            return Ok(None);
        }
        if let Some(t) = self.0.get(&(w, n)) {
            return Ok(Some(t.clone()));
        }
        let (win, d) = (&clip.windows[w], clip.d_model);
        let rows = &win.hidden[win.n_valid * d..(win.n_valid + n) * d];
        let t = Arc::new(Tensor::from_slice(rows, (n, d), &Device::Cpu).map_err(ModelError::from)?);
        self.0.insert((w, n), t.clone());
        Ok(Some(t))
    }
}

/// A run's decoder inputs: `(window, input, tail tokens)`. Cross-attention models get one per
/// window that keeps at least one token, its kept rows followed by the window's silence tail
/// (vanilla: every valid row and the whole padding); prefix models (`prefix`) one for the whole
/// clip, in the selection's order, without a tail.
pub fn decoder_inputs(
    clip: &EncodedClip,
    selection: Option<&Selection>,
    tail: Tail,
    prefix: bool,
    tails: &mut TailRows,
) -> Result<Vec<(usize, DecodeInput, usize)>> {
    let d = clip.d_model;
    let dev = Device::Cpu;
    let tensor = |rows: Vec<f32>| -> Result<Tensor> {
        let n = rows.len() / d.max(1);
        Ok(Tensor::from_vec(rows, (n, d), &dev).map_err(ModelError::from)?)
    };
    // Merged tokens (visionzip contextual, merge anchors) by their target.
    let merged: HashMap<usize, &prune::Combination> = selection
        .map(|s| s.merged.iter().map(|c| (c.target, c)).collect())
        .unwrap_or_default();
    if prefix {
        let mut rows = Vec::new();
        match selection {
            None => {
                for win in &clip.windows {
                    rows.extend_from_slice(&win.hidden[..win.n_valid * d]);
                }
            }
            Some(sel) => {
                for &t in &sel.kept {
                    push_row(clip, &mut rows, t, merged.get(&t).copied());
                }
            }
        }
        return Ok(vec![(0, DecodeInput::new(tensor(rows)?), 0)]);
    }
    let mut out = Vec::new();
    let Some(sel) = selection else {
        for (w, win) in clip.windows.iter().enumerate() {
            let padding = win.tokens - win.n_valid;
            let mut input = DecodeInput::new(tensor(win.hidden[..win.n_valid * d].to_vec())?);
            input.tail = tails.get(clip, w, padding)?;
            out.push((w, input, padding));
        }
        return Ok(out);
    };
    let mut per_window: Vec<Vec<f32>> = vec![Vec::new(); clip.windows.len()];
    for &t in &sel.kept {
        let w = clip.window_of(t);
        push_row(clip, &mut per_window[w], t, merged.get(&t).copied());
    }
    for (w, (rows, win)) in per_window.into_iter().zip(&clip.windows).enumerate() {
        if rows.is_empty() {
            continue;
        }
        let tail_w = tail.tokens(win.tokens - win.n_valid);
        let mut input = DecodeInput::new(tensor(rows)?);
        input.tail = tails.get(clip, w, tail_w)?;
        out.push((w, input, tail_w));
    }
    Ok(out)
}

/// Appends clip token `t`'s hidden row, or its combination when it is a merged token.
fn push_row(clip: &EncodedClip, buf: &mut Vec<f32>, t: usize, merged: Option<&prune::Combination>) {
    let d = clip.d_model;
    match merged {
        Some(c) => {
            let start = buf.len();
            buf.resize(start + d, 0.0);
            for &(j, coeff) in &c.parts {
                for (o, x) in buf[start..].iter_mut().zip(clip.row(j)) {
                    *o += coeff * x;
                }
            }
        }
        None => buf.extend_from_slice(clip.row(t)),
    }
}

/// Encode + every run: the whole `analyze` document of a clip.
pub fn analyze(
    model: &dyn AudioLanguageModel,
    audio: &Audio,
    plan: &Plan,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Analysis> {
    analyze_with(model, audio, plan, Layers::Last, cancel, progress)
}

/// Checks that the model has the layer a score source names.
pub fn check_source(info: &ModelInfo, source: &ScoreSource) -> Result<()> {
    match source.layer {
        Some(layer) if layer >= info.encoder_layers => Err(EngineError::ScoreLayer {
            layer,
            layers: info.encoder_layers,
        }),
        _ => Ok(()),
    }
}

/// [`analyze`], collecting the scores of `layers` (every layer for the JSON's `layer_scores`);
/// a score source other than the last layer collects every layer in any case.
pub fn analyze_with(
    model: &dyn AudioLanguageModel,
    audio: &Audio,
    plan: &Plan,
    layers: Layers,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Analysis> {
    plan.validate()?;
    let (clip, report) = encode_described(model, audio, layers, &plan.params.source, progress)?;
    let runs = run(model, &clip, plan, cancel, progress)?;
    Ok(Analysis {
        report,
        plan: Some(PlanSettings::of(plan)),
        runs,
    })
}

/// Encodes a clip and describes it (the document's clip-level part) with the scores of
/// `source`: its layer checked against the model first, every layer collected as well when it
/// is not the last. `analyze` and the worker both encode through it.
pub fn encode_described(
    model: &dyn AudioLanguageModel,
    audio: &Audio,
    layers: Layers,
    source: &ScoreSource,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(EncodedClip, ClipReport)> {
    check_source(model.info(), source)?;
    let clip = encode(model, audio, source.layers(layers), progress)?;
    let report = describe(model.info(), audio, &clip, source)?;
    Ok((clip, report))
}
