//! Whisper as an audio-language model: our own encoder (which exposes the last layer's received
//! attention and keys) and a batched greedy decoder over kept encoder tokens.

mod argmax;
mod attention;
mod config;
mod decoder;
mod encoder;

pub use config::WhisperConfig;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::{
    align, detect_format, AudioLanguageModel, DecodeInput, DroppedWindow, EncodedWindow,
    EncoderDrop, Generation, ModelError, ModelInfo, OnFinished, Result, WeightFormat,
};
use crate::mel::MelExtractor;
use crate::scores::Layers;

/// Ids of the special tokens the decoding prompt and stopping rules need, looked up by text.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    pub sot: u32,
    pub eot: u32,
    pub no_timestamps: u32,
    /// Multilingual models only.
    pub transcribe: Option<u32>,
    /// Language tokens (`<|en|>`, ...) of multilingual models, in id order.
    pub languages: Vec<u32>,
}

/// Greedy decoding settings (SPEC.md section 5).
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// At most this many generated tokens per sequence.
    pub max_tokens: usize,
    /// Multilingual models: a language code such as "en", or None to detect it per sequence.
    pub language: Option<String>,
    /// Sequences decoded together (they share every weight read); 1 decodes one by one.
    pub batch: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_tokens: 224,
            language: Some("en".into()),
            batch: 32,
        }
    }
}

pub struct Whisper {
    pub config: WhisperConfig,
    info: ModelInfo,
    mel: MelExtractor,
    encoder: encoder::Encoder,
    decoder: decoder::Decoder,
    tokenizer: tokenizers::Tokenizer,
    special: SpecialTokens,
    /// `(layer, head)` whose cross-attention aligns words ([`WhisperConfig::alignment_heads`]).
    align_heads: Vec<(usize, usize)>,
    /// Ids the sampler may never pick / may not pick first.
    suppress: Vec<bool>,
    suppress_begin: Vec<bool>,
    pub options: DecodeOptions,
}

impl Whisper {
    /// Loads a CTranslate2 or Hugging Face Whisper directory.
    pub fn load(dir: &Path) -> Result<Whisper> {
        let format = detect_format(dir)?;
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(ModelError::TokenizerMissing(tok_path));
        }
        let device = Device::Cpu;
        let (tensors, config) = match format {
            WeightFormat::CTranslate2 => {
                let w = super::ct2::load_whisper(&dir.join("model.bin"), &device)?;
                let cfg =
                    WhisperConfig::from_ct2(dir, &w.tensors, w.encoder_heads, w.decoder_heads)?;
                (w.tensors, cfg)
            }
            WeightFormat::HuggingFace => {
                let cfg = WhisperConfig::from_hf(dir)?;
                (super::hf::load_all(dir, &device)?, cfg)
            }
        };
        Self::from_tensors(dir, format, tensors, config)
    }

    fn from_tensors(
        dir: &Path,
        format: WeightFormat,
        tensors: HashMap<String, Tensor>,
        config: WhisperConfig,
    ) -> Result<Whisper> {
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = crate::model::hf::read_tokenizer(&tok_path).map_err(|e| {
            ModelError::corrupt(&tok_path, format!("is not a usable tokenizer: {e}"))
        })?;
        // English-only checkpoints have 51864 ids; their tokenizer still lists <|transcribe|>
        // and the language tokens, so the vocabulary size decides, as in transformers.
        let multilingual = config.vocab_size >= 51865;
        let special = special_tokens(&tokenizer, &tok_path, multilingual)?;
        let weights = crate::model::nn::Weights::new(tensors);
        let encoder = encoder::Encoder::load(&weights, &config)?;
        let decoder = decoder::Decoder::load(&weights, &config)?;
        let vocab = config.vocab_size;
        let mut suppress = vec![false; vocab];
        for &id in &config.suppress_tokens {
            if let Some(s) = suppress.get_mut(id as usize) {
                *s = true;
            }
        }
        // Timestamps and every special token after <|notimestamps|> are never generated.
        for s in suppress.iter_mut().skip(special.no_timestamps as usize + 1) {
            *s = true;
        }
        let mut suppress_begin = suppress.clone();
        for &id in &config.begin_suppress_tokens {
            if let Some(s) = suppress_begin.get_mut(id as usize) {
                *s = true;
            }
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "whisper".into());
        let info = ModelInfo::cross_attention(
            format!(
                "{name} ({})",
                match format {
                    WeightFormat::CTranslate2 => "ctranslate2",
                    WeightFormat::HuggingFace => "hugging face",
                }
            ),
            config.num_mel_bins,
            config.max_source_positions,
            config.encoder_layers,
        );
        // Its CPU encoder drops tokens part-way (`encoderdrop`).
        let info = ModelInfo {
            drops_in_encoder: true,
            ..info
        };
        Ok(Whisper {
            mel: MelExtractor::new(config.num_mel_bins),
            align_heads: config.alignment_heads(),
            config,
            info,
            encoder,
            decoder,
            tokenizer,
            special,
            suppress,
            suppress_begin,
            options: DecodeOptions::default(),
        })
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Encodes a ready log-mel window `[n_mels][3000]` (exposed for tests and benchmarks).
    pub fn encode_mel(
        &self,
        mel: &[f32],
        n_samples: usize,
        layers: Layers,
    ) -> Result<EncodedWindow> {
        let n_valid = crate::audio::whisper_tokens(n_samples).min(self.info.tokens_per_window);
        self.encoder.forward(mel, n_valid, layers)
    }

    /// A recorded decode's averaged map (the rows that chose tokens, mean over the alignment
    /// heads) and its words placed by DTW; `skip`: the prompt rows before the first choosing one.
    fn align(
        &self,
        ids: &[u32],
        maps: &[Vec<f32>],
        cols: usize,
        skip: usize,
    ) -> (Option<align::TokenAttention>, Vec<align::WordSpan>) {
        let rows = maps[0].len() / cols.max(1);
        let kept = rows.saturating_sub(skip);
        let mut map = vec![0f32; kept * cols];
        for m in maps {
            for (o, x) in map.iter_mut().zip(&m[skip * cols..rows * cols]) {
                *o += x;
            }
        }
        let n = maps.len() as f32;
        map.iter_mut().for_each(|x| *x /= n);
        let eot = self.special.eot;
        let words = align::tokenizer_words(&self.tokenizer, ids, &|t| t >= eot);
        let words = align::align_words(maps, rows, cols, skip, words);
        let attention = align::TokenAttention {
            rows: kept,
            cols,
            map,
        };
        (Some(attention), words)
    }

    fn language_id(&self) -> Result<Option<u32>> {
        if self.special.transcribe.is_none() {
            return Ok(None);
        }
        match &self.options.language {
            None => Ok(None),
            Some(code) => self
                .tokenizer
                .token_to_id(&format!("<|{code}|>"))
                .map(Some)
                .ok_or_else(|| ModelError::Tokenizer(format!("unknown language code `{code}`"))),
        }
    }
}

fn special_tokens(
    tok: &tokenizers::Tokenizer,
    path: &Path,
    multilingual: bool,
) -> Result<SpecialTokens> {
    let id = |t: &str| {
        tok.token_to_id(t).ok_or_else(|| {
            ModelError::corrupt(path, format!("has no `{t}` token: not a Whisper tokenizer"))
        })
    };
    let transcribe = if multilingual {
        Some(id("<|transcribe|>")?)
    } else {
        None
    };
    let mut languages = Vec::new();
    if transcribe.is_some() {
        for (text, id) in tok.get_added_vocabulary().get_vocab() {
            let inner = text.strip_prefix("<|").and_then(|t| t.strip_suffix("|>"));
            if let Some(code) = inner {
                if (2..=3).contains(&code.len()) && code.chars().all(|c| c.is_ascii_lowercase())
                    || code == "haw"
                {
                    languages.push(*id);
                }
            }
        }
        languages.sort_unstable();
        languages.dedup();
    }
    Ok(SpecialTokens {
        sot: id("<|startoftranscript|>")?,
        eot: id("<|endoftext|>")?,
        no_timestamps: id("<|notimestamps|>")?,
        transcribe,
        languages,
    })
}

impl AudioLanguageModel for Whisper {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn encode(&self, samples: &[f32], layers: Layers) -> Result<EncodedWindow> {
        let mel = self.mel.compute(samples);
        self.encode_mel(&mel, samples.len().min(crate::WINDOW_SAMPLES), layers)
    }

    fn encode_dropping(
        &self,
        samples: &[f32],
        drop: &EncoderDrop,
    ) -> Result<Option<Vec<DroppedWindow>>> {
        let t0 = std::time::Instant::now();
        let mel = self.mel.compute(samples);
        let mel_ms = t0.elapsed().as_secs_f64() * 1e3;
        let n_samples = samples.len().min(crate::WINDOW_SAMPLES);
        let n_valid = crate::audio::whisper_tokens(n_samples).min(self.info.tokens_per_window);
        let mut windows = self.encoder.forward_dropping(&mel, n_valid, drop)?;
        // The log-mel is part of every encoder's time, as in the clip's `encode_ms`.
        windows.iter_mut().for_each(|w| w.encode_ms += mel_ms);
        Ok(Some(windows))
    }

    fn generate(
        &self,
        inputs: &[DecodeInput],
        cancel: &AtomicBool,
        on_finished: &mut OnFinished<'_>,
    ) -> Result<Vec<Generation>> {
        let language = self.language_id()?;
        // Multilingual without a fixed language: slot 1 of the prompt is chosen by the model
        // (the most likely language token after <|startoftranscript|>), per sequence.
        let (prompt, detect) = match (self.special.transcribe, language) {
            (None, _) => (vec![self.special.sot, self.special.no_timestamps], false),
            (Some(tr), Some(lang)) => (
                vec![self.special.sot, lang, tr, self.special.no_timestamps],
                false,
            ),
            (Some(tr), None) => (
                vec![
                    self.special.sot,
                    self.special.sot,
                    tr,
                    self.special.no_timestamps,
                ],
                true,
            ),
        };
        let job = decoder::Job {
            decoder: &self.decoder,
            suppress: &self.suppress,
            suppress_begin: &self.suppress_begin,
            eot: self.special.eot,
            languages: if detect { &self.special.languages } else { &[] },
            prompt: &prompt,
            // The prompt and the generated tokens share the decoder's positions.
            max_tokens: self.options.max_tokens.clamp(
                1,
                self.config
                    .max_target_positions
                    .saturating_sub(prompt.len())
                    .max(1),
            ),
            align_heads: &self.align_heads,
        };
        let mut out: Vec<Generation> = vec![Generation::default(); inputs.len()];
        let order: Vec<usize> = (0..inputs.len()).collect();
        for chunk in order.chunks(self.options.batch.max(1)) {
            let memories: Vec<&Tensor> = chunk.iter().map(|&i| &inputs[i].memory).collect();
            let tails: Vec<Option<&Arc<Tensor>>> =
                chunk.iter().map(|&i| inputs[i].tail.as_ref()).collect();
            let options: Vec<decoder::SeqOptions> = chunk
                .iter()
                .map(|&i| decoder::SeqOptions {
                    guard: inputs[i].stop_on_loop,
                    record: inputs[i].attention,
                    fastv: inputs[i].fastv.map(|f| f.keep),
                })
                .collect();
            let decode = |ids: &[u32]| super::decode_text(&self.tokenizer, ids);
            let mut finished = |done: decoder::Done| -> Result<()> {
                let local = done.index;
                let cols = match &done.kept {
                    Some(kept) => kept.len(),
                    None => memories[local].dim(0)?,
                };
                let (attention, words) = if done.maps.is_empty() {
                    (None, Vec::new())
                } else {
                    self.align(&done.ids, &done.maps, cols, prompt.len() - 1)
                };
                let t = done.timing;
                let g = Generation {
                    decode_ms: t.ms,
                    prefill_ms: Some(t.prefill_ms),
                    steps: t.steps,
                    attention,
                    words,
                    kept: done.kept,
                    ..Generation::finish(done.ids, t.ending, &decode)?
                };
                let global = chunk[local];
                on_finished(global, &g);
                out[global] = g;
                Ok(())
            };
            // On a pool thread: each step's parallel passes are then fork-joins among the pool's
            // threads, not jobs injected from outside and waited for (measured 1.2x faster).
            rayon::scope(|_| job.run(&memories, &tails, &options, cancel, &mut finished))?;
        }
        Ok(out)
    }
}

/// Writes a CTranslate2 Whisper directory as a Hugging Face one: `model.safetensors` in `dtype`,
/// a `config.json` with the sizes and suppress lists, and the same `tokenizer.json`.
pub fn convert_ct2_to_hf(input: &Path, output: &Path, dtype: candle_core::DType) -> Result<()> {
    if detect_format(input)? != WeightFormat::CTranslate2 {
        return Err(ModelError::corrupt(
            input,
            "is not a CTranslate2 model directory",
        ));
    }
    let tok = input.join("tokenizer.json");
    if !tok.is_file() {
        return Err(ModelError::TokenizerMissing(tok));
    }
    let w = super::ct2::load_whisper(&input.join("model.bin"), &Device::Cpu)?;
    let c = WhisperConfig::from_ct2(input, &w.tensors, w.encoder_heads, w.decoder_heads)?;
    std::fs::create_dir_all(output).map_err(|e| ModelError::io(output, e))?;
    super::hf::save(&w.tensors, &output.join("model.safetensors"), dtype)?;
    let config = serde_json::json!({
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "d_model": c.d_model,
        "num_mel_bins": c.num_mel_bins,
        "encoder_layers": c.encoder_layers,
        "encoder_attention_heads": c.encoder_attention_heads,
        "encoder_ffn_dim": 4 * c.d_model,
        "decoder_layers": c.decoder_layers,
        "decoder_attention_heads": c.decoder_attention_heads,
        "decoder_ffn_dim": 4 * c.d_model,
        "max_source_positions": c.max_source_positions,
        "max_target_positions": c.max_target_positions,
        "vocab_size": c.vocab_size,
        "scale_embedding": false,
        "tie_word_embeddings": true,
        "suppress_tokens": c.suppress_tokens,
        "begin_suppress_tokens": c.begin_suppress_tokens,
    });
    let cfg_path = output.join("config.json");
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| ModelError::corrupt(&cfg_path, e.to_string()))?;
    std::fs::write(&cfg_path, text).map_err(|e| ModelError::io(&cfg_path, e))?;
    // Hugging Face keeps the alignment heads in the generation config.
    if !c.alignment_heads.is_empty() {
        let gen_path = output.join("generation_config.json");
        let gen = serde_json::json!({ "alignment_heads": c.alignment_heads });
        std::fs::write(&gen_path, gen.to_string()).map_err(|e| ModelError::io(&gen_path, e))?;
    }
    let dst = output.join("tokenizer.json");
    std::fs::copy(&tok, &dst).map_err(|e| ModelError::io(&dst, e))?;
    Ok(())
}
