//! The paper's models, Qwen2-Audio-7B-Instruct and Audio Flamingo 3, behind the same
//! [`AudioLanguageModel`] trait as Whisper (ALM.md): the audio encoder scores and pools its
//! tokens, the engine prunes the pooled tokens, and the projector and the Qwen2 language model
//! run on the kept ones, which fill one placeholder each in the chat prompt.

pub mod config;
pub mod encoder;
pub mod lm;
pub mod random;
pub mod weights;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};

use self::config::{AlmConfig, AlmKind};
use self::encoder::AudioEncoder;
use self::lm::TextModel;
use self::weights::{AlmWeights, Part};
use super::{
    align, AudioLanguageModel, DecodeInput, DroppedWindow, EncodedWindow, EncoderDrop, Ending,
    Generation, ModelError, ModelInfo, OnFinished, Result, SpeechPruneScores,
};
use crate::mel::MelExtractor;
use crate::model::nn::{Linear, TensorSource};
use crate::scores::Layers;
use crate::HOP;

const SYSTEM: &str =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n";

/// Decoding options of the prompted models.
#[derive(Debug, Clone)]
pub struct AlmOptions {
    /// New tokens at most per run (greedy decoding stops earlier at an end token).
    pub max_new_tokens: usize,
    /// Sequences whose decoding steps run together (each prompt is prefilled on its own); 1
    /// decodes one by one.
    pub batch: usize,
}

impl Default for AlmOptions {
    fn default() -> Self {
        AlmOptions {
            max_new_tokens: 256,
            batch: 32,
        }
    }
}

/// A sequence being decoded in a batch.
struct Running {
    index: usize,
    cache: lm::KvCache,
    ids: Vec<u32>,
    /// Its last generated token, the next step's input.
    next: u32,
    max_new: usize,
    /// End the decode where a loop is detected (`--stop-on-loop`).
    guard: bool,
    /// The audio tokens FastV kept.
    kept: Option<Vec<usize>>,
    ms: f64,
    prefill_ms: f64,
    steps: usize,
}

enum Projector {
    /// Qwen2-Audio: one linear layer.
    Linear(Linear),
    /// Audio Flamingo 3: linear, erf GELU, linear.
    Mlp(Linear, Linear),
}

impl Projector {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Projector::Linear(l) => l.forward(x),
            Projector::Mlp(a, b) => b.forward(&a.forward(x)?.gelu_erf()?),
        }
    }
}

/// A loaded Qwen2-Audio or Audio Flamingo 3 model.
pub struct Alm {
    pub config: AlmConfig,
    info: ModelInfo,
    mel: MelExtractor,
    encoder: AudioEncoder,
    projector: Projector,
    lm: TextModel,
    tokenizer: tokenizers::Tokenizer,
    /// Ids that end a reply.
    end_tokens: Vec<u32>,
    device: Device,
    pub options: AlmOptions,
}

/// Reads `config.json` of a directory and says whether it is one of the paper's models.
pub fn is_alm_dir(dir: &Path) -> bool {
    crate::model::hf::read_json(&dir.join("config.json")).is_ok_and(|j| config::is_alm_config(&j))
}

impl Alm {
    /// Loads a Hugging Face directory of either model onto `device` in `dtype` (f32, bf16 or
    /// f16; [`super::Precision`] picks it). Every dtype runs the same code: the operations that
    /// need more range or precision than bf16/f16 give (softmax, norms, RoPE tables, the
    /// received-attention sums, logits) upcast to f32 explicitly, on every device.
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Alm> {
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(ModelError::Device(format!(
                "Qwen2-Audio / Audio Flamingo 3 run in f32, bf16 or f16, not {}",
                dtype.as_str()
            )));
        }
        if !dir.is_dir() {
            return Err(if dir.exists() {
                ModelError::NotADir(dir.to_path_buf())
            } else {
                ModelError::DirMissing(dir.to_path_buf())
            });
        }
        let config = AlmConfig::from_file(&dir.join("config.json"))?;
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(ModelError::TokenizerMissing(tok_path));
        }
        let tokenizer = crate::model::hf::read_tokenizer(&tok_path).map_err(|e| {
            ModelError::corrupt(&tok_path, format!("is not a usable tokenizer: {e}"))
        })?;
        let placeholder = config.kind.placeholder();
        match tokenizer.token_to_id(placeholder) {
            Some(id) if id == config.audio_token_id => {}
            Some(id) => {
                return Err(ModelError::corrupt(
                    &tok_path,
                    format!(
                        "maps `{placeholder}` to {id} but config.json says the audio token is {}",
                        config.audio_token_id
                    ),
                ))
            }
            None => {
                return Err(ModelError::corrupt(
                    &tok_path,
                    format!("has no `{placeholder}` token: not this model's tokenizer"),
                ))
            }
        }
        let w = AlmWeights::open(dir, device, dtype)?;
        let encoder = AudioEncoder::load(&w, &config.audio)?;
        let (d, h) = (config.audio.d_model, config.text.hidden);
        let projector = match config.kind {
            AlmKind::Qwen2Audio => {
                Projector::Linear(w.part(Part::Projector).linear("linear", d, h, true)?)
            }
            AlmKind::AudioFlamingo3 => Projector::Mlp(
                w.part(Part::Projector)
                    .linear("linear_1", d, h, config.projector_bias)?,
                w.part(Part::Projector)
                    .linear("linear_2", h, h, config.projector_bias)?,
            ),
        };
        let lm = TextModel::load(&w, &config.text)?;
        let end_tokens = end_tokens(dir, &tokenizer)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| config.kind.name().into());
        let tokens_per_window = encoder.tokens_per_window();
        let window_samples = encoder.frames() * HOP;
        let runtime = super::Runtime::new(device, dtype);
        let info = ModelInfo {
            name: format!("{name} ({})", config.kind.name()),
            n_mels: config.audio.n_mels,
            tokens_per_window,
            seconds_per_token: window_samples as f64
                / f64::from(crate::SAMPLE_RATE)
                / tokens_per_window as f64,
            has_tail: false,
            window_samples,
            max_windows: Some(config.kind.max_windows()),
            prefix_lm: true,
            default_prompt: Some("Describe the audio.".into()),
            runtime,
            encoder_layers: config.audio.layers,
            lm_layers: Some(config.text.layers),
            // Its encoder drops tokens part-way (`encoderdrop`) on every backend.
            drops_in_encoder: true,
        };
        Ok(Alm {
            mel: MelExtractor::new(config.audio.n_mels),
            config,
            info,
            encoder,
            projector,
            lm,
            tokenizer,
            end_tokens,
            device: device.clone(),
            options: AlmOptions::default(),
        })
    }

    fn encode_ids(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// The prompt ids around the placeholders (ALM.md templates): `(before, after)`.
    pub fn prompt_ids(&self, text: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let (before, after) = match self.config.kind {
            AlmKind::Qwen2Audio => (
                format!("{SYSTEM}Audio 1: <|audio_bos|>"),
                format!("<|audio_eos|>\n{text}<|im_end|>\n<|im_start|>assistant\n"),
            ),
            AlmKind::AudioFlamingo3 => (
                SYSTEM.to_string(),
                format!("{text}<|im_end|>\n<|im_start|>assistant\n"),
            ),
        };
        Ok((self.encode_ids(&before)?, self.encode_ids(&after)?))
    }

    /// The merged input embeddings of a prompt around `audio` (pooled encoder rows, `(K, d)`):
    /// `(ids, embeddings)`; the placeholders' rows hold the projected audio tokens.
    pub fn input_embeddings(&self, audio: &Tensor, text: &str) -> Result<(Vec<u32>, Tensor)> {
        let (before, after) = self.prompt_ids(text)?;
        let k = audio.dim(0)?;
        let mut ids = before.clone();
        ids.extend(std::iter::repeat_n(self.config.audio_token_id, k));
        ids.extend_from_slice(&after);
        let mut parts = Vec::with_capacity(3);
        parts.push(self.lm.embed(&before)?);
        if k > 0 {
            let a = audio.to_device(&self.device)?.to_dtype(self.lm.dtype())?;
            parts.push(self.projector.forward(&a)?);
        }
        parts.push(self.lm.embed(&after)?);
        Ok((ids, Tensor::cat(&parts, 0)?))
    }

    /// The input embeddings of every row of `memory` with `prompt` (None: the model's default)
    /// and where the audio positions are among them: what the prompt-aware scores read.
    fn prompted_input(
        &self,
        memory: &Tensor,
        prompt: Option<&str>,
    ) -> Result<(Tensor, std::ops::Range<usize>)> {
        let default = self.info.default_prompt.clone().unwrap_or_default();
        let (ids, embeds) = self.input_embeddings(memory, prompt.unwrap_or(&default))?;
        let start = ids
            .iter()
            .position(|&t| t == self.config.audio_token_id)
            .unwrap_or(0);
        Ok((embeds, start..start + memory.dim(0)?))
    }

    /// A prompt must leave the language model at least one position to generate into.
    fn check_prompt_len(&self, len: usize) -> Result<()> {
        let limit = self.config.text.max_positions;
        if len >= limit {
            return Err(ModelError::Config {
                path: Default::default(),
                msg: format!(
                    "the prompt has {len} tokens, more than the language model's {limit} positions"
                ),
            });
        }
        Ok(())
    }

    /// Whether `id` ends a reply.
    pub fn is_end_token(&self, id: u32) -> bool {
        self.end_tokens.contains(&id)
    }

    /// One prefill of the language model over `embeds` with an empty cache: wall time in ms
    /// (the device synchronised), for benchmarks.
    pub fn prefill_ms(&self, embeds: &Tensor) -> Result<f64> {
        self.prefill_fastv_ms(embeds, 0..0, None)
    }

    /// [`Alm::prefill_ms`] with FastV keeping `fastv`'s rows of the `audio` positions (its
    /// first layers on every token included).
    pub fn prefill_fastv_ms(
        &self,
        embeds: &Tensor,
        audio: std::ops::Range<usize>,
        fastv: Option<crate::model::FastV>,
    ) -> Result<f64> {
        let mut cache = self.lm.new_cache();
        self.device.synchronize()?;
        let t0 = Instant::now();
        match fastv {
            Some(f) => {
                self.lm
                    .forward_fastv(embeds, &mut cache, audio, f.keep, f.layer)?;
            }
            None => {
                self.lm.forward(embeds, &mut cache)?;
            }
        }
        self.device.synchronize()?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }

    /// Greedy decoding from input embeddings: `(ids, first logits, prefill ms, steps)`.
    pub fn greedy(
        &self,
        embeds: &Tensor,
        cancel: &AtomicBool,
    ) -> Result<(Vec<u32>, Vec<f32>, f64, usize)> {
        self.greedy_with(embeds, cancel, self.options.max_new_tokens)
    }

    /// [`Alm::greedy`] with at most `max_new_tokens` new tokens.
    pub fn greedy_with(
        &self,
        embeds: &Tensor,
        cancel: &AtomicBool,
        max_new_tokens: usize,
    ) -> Result<(Vec<u32>, Vec<f32>, f64, usize)> {
        let len = embeds.dim(0)?;
        let limit = self.config.text.max_positions;
        self.check_prompt_len(len)?;
        let mut cache = self.lm.new_cache();
        let t0 = Instant::now();
        let logits = self.lm.forward(embeds, &mut cache)?;
        self.device.synchronize()?;
        let prefill_ms = t0.elapsed().as_secs_f64() * 1e3;
        let first = logits.clone();
        let mut ids = Vec::new();
        let mut next = argmax(&logits);
        let mut steps = 0;
        let max_new = max_new_tokens.max(1).min(limit - len);
        while !self.end_tokens.contains(&next) {
            ids.push(next);
            if ids.len() >= max_new {
                break;
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(ModelError::Cancelled);
            }
            let e = self.lm.embed(&[next])?;
            let logits = self.lm.forward(&e, &mut cache)?;
            steps += 1;
            next = argmax(&logits);
        }
        Ok((ids, first, prefill_ms, steps))
    }
}

/// The ids that end a reply: generation_config.json's `eos_token_id` (a number or a list),
/// plus `<|im_end|>` and `<|endoftext|>` when the tokenizer has them.
fn end_tokens(dir: &Path, tok: &tokenizers::Tokenizer) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let gen = dir.join("generation_config.json");
    if gen.is_file() {
        let json = crate::model::hf::read_json(&gen)?;
        match json.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => out.extend(n.as_u64().map(|x| x as u32)),
            Some(serde_json::Value::Array(a)) => {
                out.extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32))
            }
            _ => {}
        }
    }
    for t in ["<|im_end|>", "<|endoftext|>"] {
        if let Some(id) = tok.token_to_id(t) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    if out.is_empty() {
        return Err(ModelError::corrupt(
            dir,
            "names no end token (generation_config.json eos_token_id, <|im_end|>, <|endoftext|>)",
        ));
    }
    Ok(out)
}

/// Index of the largest value, the first one on ties (as torch.argmax).
fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

impl AudioLanguageModel for Alm {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn encode(&self, samples: &[f32], layers: Layers) -> Result<EncodedWindow> {
        let frames = self.encoder.frames();
        let n = samples.len().min(frames * HOP);
        let mel = self.mel.compute_frames(&samples[..n], frames);
        self.encoder.forward(&mel, n.div_ceil(HOP), layers)
    }

    fn encode_dropping(
        &self,
        samples: &[f32],
        drop: &EncoderDrop,
    ) -> Result<Option<Vec<DroppedWindow>>> {
        let t0 = std::time::Instant::now();
        let frames = self.encoder.frames();
        let n = samples.len().min(frames * HOP);
        let mel = self.mel.compute_frames(&samples[..n], frames);
        let mel_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut windows = self.encoder.forward_dropping(&mel, n.div_ceil(HOP), drop)?;
        // The log-mel is part of every encoder's time, as in the clip's `encode_ms`.
        windows.iter_mut().for_each(|w| w.encode_ms += mel_ms);
        Ok(Some(windows))
    }

    fn speechprune_scores(
        &self,
        memory: &Tensor,
        prompt: Option<&str>,
    ) -> Result<Option<SpeechPruneScores>> {
        let (embeds, audio) = self.prompted_input(memory, prompt)?;
        let rows: Vec<Vec<f32>> = embeds
            .to_dtype(candle_core::DType::F32)?
            .to_device(&candle_core::Device::Cpu)?
            .to_vec2()?;
        let text = &rows[audio.end..];
        let similarity = rows[audio.clone()]
            .iter()
            .map(|a| {
                text.iter()
                    .map(|t| crate::util::cosine(a, t) as f32)
                    .fold(0.0f32, f32::max)
            })
            .collect();
        let attention = self.lm.binarized_prompt_attention(&embeds, audio)?;
        Ok(Some(SpeechPruneScores {
            similarity,
            attention,
        }))
    }

    fn prompt_scores(&self, memory: &Tensor, prompt: Option<&str>) -> Result<Option<Vec<f32>>> {
        let (embeds, audio) = self.prompted_input(memory, prompt)?;
        Ok(Some(self.lm.prompt_attention(&embeds, audio)?))
    }

    fn generate(
        &self,
        inputs: &[DecodeInput],
        cancel: &AtomicBool,
        on_finished: &mut OnFinished<'_>,
    ) -> Result<Vec<Generation>> {
        let mut out: Vec<Generation> = vec![Generation::default(); inputs.len()];
        let order: Vec<usize> = (0..inputs.len()).collect();
        for chunk in order.chunks(self.options.batch.max(1)) {
            self.generate_batch(inputs, chunk, cancel, &mut |i, g| {
                on_finished(i, &g);
                out[i] = g;
            })?;
        }
        Ok(out)
    }
}

impl Alm {
    /// Prefills each input of `chunk` on its own, then decodes them together, one token per
    /// sequence per step; each step's time is shared among the sequences still running.
    fn generate_batch(
        &self,
        inputs: &[DecodeInput],
        chunk: &[usize],
        cancel: &AtomicBool,
        finished: &mut dyn FnMut(usize, Generation),
    ) -> Result<()> {
        let default = self.info.default_prompt.clone().unwrap_or_default();
        let limit = self.config.text.max_positions;
        let mut active: Vec<Running> = Vec::with_capacity(chunk.len());
        for &i in chunk {
            if cancel.load(Ordering::Relaxed) {
                return Err(ModelError::Cancelled);
            }
            let t0 = Instant::now();
            let text = inputs[i].prompt.as_deref().unwrap_or(&default);
            let (ids, embeds) = self.input_embeddings(&inputs[i].memory, text)?;
            let len = embeds.dim(0)?;
            self.check_prompt_len(len)?;
            let mut cache = self.lm.new_cache();
            let start = ids
                .iter()
                .position(|&t| t == self.config.audio_token_id)
                .unwrap_or(0);
            let audio = start..start + inputs[i].memory.dim(0)?;
            if inputs[i].attention {
                cache.watch = Some(lm::Watch::new(audio.clone()));
            }
            let tp = Instant::now();
            let (logits, kept) = match inputs[i].fastv {
                Some(f) if f.keep < audio.len() => {
                    let (logits, kept) = self
                        .lm
                        .forward_fastv(&embeds, &mut cache, audio, f.keep, f.layer)?;
                    (logits, Some(kept))
                }
                _ => (self.lm.forward(&embeds, &mut cache)?, None),
            };
            self.device.synchronize()?;
            let prefill_ms = tp.elapsed().as_secs_f64() * 1e3;
            let seq = Running {
                index: i,
                cache,
                ids: Vec::new(),
                next: argmax(&logits),
                max_new: self.options.max_new_tokens.max(1).min(limit - len),
                guard: inputs[i].stop_on_loop,
                kept,
                ms: t0.elapsed().as_secs_f64() * 1e3,
                prefill_ms,
                steps: 0,
            };
            if let Some(seq) = self.advance(seq, finished)? {
                active.push(seq);
            }
        }
        while !active.is_empty() {
            if cancel.load(Ordering::Relaxed) {
                return Err(ModelError::Cancelled);
            }
            let t0 = Instant::now();
            let next: Vec<u32> = active.iter().map(|s| s.next).collect();
            let x = self.lm.embed(&next)?;
            let mut caches: Vec<lm::KvCache> = active
                .iter_mut()
                .map(|s| std::mem::replace(&mut s.cache, self.lm.new_cache()))
                .collect();
            let rows = self.lm.forward_step(&x, &mut caches)?;
            let share = t0.elapsed().as_secs_f64() * 1e3 / active.len() as f64;
            let mut keep = Vec::with_capacity(active.len());
            for ((mut s, cache), row) in active.drain(..).zip(caches).zip(rows) {
                s.cache = cache;
                s.ms += share;
                s.steps += 1;
                s.next = argmax(&row);
                if let Some(s) = self.advance(s, finished)? {
                    keep.push(s);
                }
            }
            active = keep;
        }
        Ok(())
    }

    /// Takes a sequence's newly predicted token: finishes it (end token or length cap) or
    /// returns it to the batch.
    fn advance(
        &self,
        mut s: Running,
        finished: &mut dyn FnMut(usize, Generation),
    ) -> Result<Option<Running>> {
        let ending = if self.end_tokens.contains(&s.next) {
            Ending::EndToken
        } else {
            s.ids.push(s.next);
            match Ending::guard(&mut s.ids, s.guard) {
                Some(e) => e,
                None if s.ids.len() >= s.max_new => Ending::Cap,
                None => return Ok(Some(s)),
            }
        };
        let decode = |ids: &[u32]| super::decode_text(&self.tokenizer, ids);
        let (attention, words) = match s.cache.watch.take() {
            Some(w) => self.attention_words(&s.ids, w),
            None => (None, Vec::new()),
        };
        finished(
            s.index,
            Generation {
                decode_ms: s.ms,
                prefill_ms: Some(s.prefill_ms),
                steps: s.steps,
                attention,
                words,
                kept: s.kept.take(),
                ..Generation::finish(s.ids, ending, &decode)?
            },
        );
        Ok(None)
    }

    /// A watched decode's map (one row per token chosen, the end token's included; rows past a
    /// loop guard's cut dropped) and the words of its ids, placed later by their attention.
    fn attention_words(
        &self,
        ids: &[u32],
        w: lm::Watch,
    ) -> (Option<align::TokenAttention>, Vec<align::WordSpan>) {
        let cols = w.audio.len();
        let mut attention = align::TokenAttention {
            rows: w.rows.len() / cols.max(1),
            cols,
            map: w.rows,
        };
        attention.truncate(ids.len() + 1);
        let words = align::tokenizer_words(&self.tokenizer, ids, &|t| self.is_end_token(t))
            .into_iter()
            .map(|(word, tokens)| align::WordSpan {
                word,
                tokens,
                cols: None,
            })
            .collect();
        (Some(attention), words)
    }
}
