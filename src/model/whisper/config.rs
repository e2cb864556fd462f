//! Whisper hyper-parameters, read from a Hugging Face `config.json` or inferred from a
//! CTranslate2 model's tensors (its config.json only carries the suppress lists).

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use serde::Deserialize;

use crate::model::hf::read_json;
use crate::model::{ModelError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct WhisperConfig {
    pub d_model: usize,
    pub num_mel_bins: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
    pub vocab_size: usize,
    pub suppress_tokens: Vec<u32>,
    pub begin_suppress_tokens: Vec<u32>,
    /// `(decoder layer, head)` pairs whose cross-attention follows the speech in time (the
    /// `alignment_heads` of a CTranslate2 `config.json` or a `generation_config.json`); empty
    /// when the directory names none ([`WhisperConfig::alignment_heads`] then falls back).
    pub alignment_heads: Vec<(usize, usize)>,
}

#[derive(Deserialize)]
struct HfConfig {
    d_model: usize,
    num_mel_bins: usize,
    encoder_layers: usize,
    encoder_attention_heads: usize,
    decoder_layers: usize,
    decoder_attention_heads: usize,
    #[serde(default = "default_source")]
    max_source_positions: usize,
    #[serde(default = "default_target")]
    max_target_positions: usize,
    vocab_size: usize,
    #[serde(default)]
    suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    begin_suppress_tokens: Option<Vec<u32>>,
}

fn default_source() -> usize {
    1500
}
fn default_target() -> usize {
    448
}

/// What a CTranslate2 `config.json` or a `generation_config.json` adds to the sizes.
#[derive(Deserialize, Default)]
struct SuppressLists {
    #[serde(default, alias = "suppress_ids")]
    suppress_tokens: Option<Vec<u32>>,
    #[serde(default, alias = "suppress_ids_begin")]
    begin_suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    alignment_heads: Option<Vec<(usize, usize)>>,
}

/// A JSON file of the directory as `T`; JSON that does not fit is "not a Whisper config".
fn read_config<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    serde_json::from_value(read_json(path)?).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        msg: format!("not a Whisper config: {e}"),
    })
}

/// `generation_config.json` overrides the suppress lists where present (newer exports keep them
/// only there).
fn generation_lists(dir: &Path) -> Result<SuppressLists> {
    let p = dir.join("generation_config.json");
    if p.is_file() {
        read_config(&p)
    } else {
        Ok(SuppressLists::default())
    }
}

impl WhisperConfig {
    pub fn from_hf(dir: &Path) -> Result<WhisperConfig> {
        let c: HfConfig = read_config(&dir.join("config.json"))?;
        let g = generation_lists(dir)?;
        if c.encoder_attention_heads == 0
            || c.decoder_attention_heads == 0
            || !c.d_model.is_multiple_of(c.encoder_attention_heads)
            || !c.d_model.is_multiple_of(c.decoder_attention_heads)
        {
            return Err(ModelError::Config {
                path: dir.join("config.json"),
                msg: format!("d_model {} is not divisible by the head counts", c.d_model),
            });
        }
        WhisperConfig {
            d_model: c.d_model,
            num_mel_bins: c.num_mel_bins,
            encoder_layers: c.encoder_layers,
            encoder_attention_heads: c.encoder_attention_heads,
            decoder_layers: c.decoder_layers,
            decoder_attention_heads: c.decoder_attention_heads,
            max_source_positions: c.max_source_positions,
            max_target_positions: c.max_target_positions,
            vocab_size: c.vocab_size,
            suppress_tokens: g.suppress_tokens.or(c.suppress_tokens).unwrap_or_default(),
            begin_suppress_tokens: g
                .begin_suppress_tokens
                .or(c.begin_suppress_tokens)
                .unwrap_or_default(),
            alignment_heads: g.alignment_heads.unwrap_or_default(),
        }
        .checked(&dir.join("generation_config.json"))
    }

    /// Shapes give every size; the head counts come from the model.bin's scalars and the
    /// suppress lists from the directory's config.json.
    pub fn from_ct2(
        dir: &Path,
        tensors: &HashMap<String, Tensor>,
        encoder_heads: usize,
        decoder_heads: usize,
    ) -> Result<WhisperConfig> {
        let dims = |name: &str| -> Result<Vec<usize>> {
            tensors
                .get(name)
                .map(|t| t.dims().to_vec())
                .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
        };
        let conv1 = dims("model.encoder.conv1.weight")?;
        let enc_pos = dims("model.encoder.embed_positions.weight")?;
        let dec_pos = dims("model.decoder.embed_positions.weight")?;
        let embed = dims("model.decoder.embed_tokens.weight")?;
        let count = |prefix: &str| {
            (0..)
                .take_while(|i| tensors.contains_key(&format!("{prefix}.layers.{i}.fc1.weight")))
                .count()
        };
        let cfg_path = dir.join("config.json");
        let lists: SuppressLists = if cfg_path.is_file() {
            read_config(&cfg_path)?
        } else {
            SuppressLists::default()
        };
        let d_model = conv1[0];
        if encoder_heads == 0
            || decoder_heads == 0
            || !d_model.is_multiple_of(encoder_heads)
            || !d_model.is_multiple_of(decoder_heads)
        {
            return Err(ModelError::Config {
                path: dir.join("model.bin"),
                msg: "head counts do not divide the model width".into(),
            });
        }
        WhisperConfig {
            d_model,
            num_mel_bins: conv1[1],
            encoder_layers: count("model.encoder"),
            encoder_attention_heads: encoder_heads,
            decoder_layers: count("model.decoder"),
            decoder_attention_heads: decoder_heads,
            max_source_positions: enc_pos[0],
            max_target_positions: dec_pos[0],
            vocab_size: embed[0],
            suppress_tokens: lists.suppress_tokens.unwrap_or_default(),
            begin_suppress_tokens: lists.begin_suppress_tokens.unwrap_or_default(),
            alignment_heads: lists.alignment_heads.unwrap_or_default(),
        }
        .checked(&cfg_path)
    }

    /// Alignment heads that name a layer or head the decoder lacks are a config error.
    fn checked(self, path: &Path) -> Result<WhisperConfig> {
        let bad = self
            .alignment_heads
            .iter()
            .find(|&&(l, h)| l >= self.decoder_layers || h >= self.decoder_attention_heads);
        if let Some((l, h)) = bad {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                msg: format!(
                    "alignment head ({l}, {h}) is outside the decoder's {} layers x {} heads",
                    self.decoder_layers, self.decoder_attention_heads
                ),
            });
        }
        Ok(self)
    }

    /// The heads whose cross-attention words are aligned with: the model's own list, else
    /// every head of the last half of the decoder layers (openai-whisper's default).
    pub fn alignment_heads(&self) -> Vec<(usize, usize)> {
        if !self.alignment_heads.is_empty() {
            return self.alignment_heads.clone();
        }
        (self.decoder_layers / 2..self.decoder_layers)
            .flat_map(|l| (0..self.decoder_attention_heads).map(move |h| (l, h)))
            .collect()
    }
}
