//! `config.json` of Qwen2-Audio and Audio Flamingo 3, in the hub layout (sparse `text_config`,
//! Whisper names in `audio_config`, top-level `rope_theta`) and in the transformers-5 layout
//! (canonical names, `rope_parameters`, `layer_types`). Missing text fields take Qwen2Config's
//! defaults, as transformers does.

use std::path::Path;

use serde_json::Value;

use crate::model::{ModelError, Result};

/// Which of the paper's model families a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlmKind {
    Qwen2Audio,
    AudioFlamingo3,
}

impl AlmKind {
    pub fn name(self) -> &'static str {
        match self {
            AlmKind::Qwen2Audio => "qwen2-audio",
            AlmKind::AudioFlamingo3 => "audio-flamingo-3",
        }
    }

    /// The prompt placeholder that stands for one audio token.
    pub fn placeholder(self) -> &'static str {
        match self {
            AlmKind::Qwen2Audio => "<|AUDIO|>",
            AlmKind::AudioFlamingo3 => "<sound>",
        }
    }

    /// Windows of audio the model reads: Qwen2-Audio one 30 s window, AF3 up to 20 (10 min).
    pub fn max_windows(self) -> usize {
        match self {
            AlmKind::Qwen2Audio => 1,
            AlmKind::AudioFlamingo3 => 20,
        }
    }
}

/// The Whisper-large-v3-shaped audio encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub n_mels: usize,
    /// Post-conv positions; the mel input is exactly twice this many frames.
    pub max_source_positions: usize,
}

/// The Qwen2 / Qwen2.5 language model.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub rms_eps: f64,
    pub tie_embeddings: bool,
    pub max_positions: usize,
    /// Sliding-window attention span when the config turns it on for some layers.
    pub sliding_window: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlmConfig {
    pub kind: AlmKind,
    pub audio: EncoderConfig,
    pub text: TextConfig,
    pub audio_token_id: u32,
    pub projector_bias: bool,
}

/// Reads a field that may be spelled several ways.
fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n).filter(|x| !x.is_null()))
}

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn err(&self, msg: impl Into<String>) -> ModelError {
        ModelError::Config {
            path: self.path.to_path_buf(),
            msg: msg.into(),
        }
    }

    fn usize(&self, v: &Value, names: &[&str], default: Option<usize>) -> Result<usize> {
        match field(v, names) {
            Some(x) => x
                .as_u64()
                .map(|n| n as usize)
                .filter(|&n| n > 0)
                .ok_or_else(|| self.err(format!("`{}` must be a positive integer", names[0]))),
            None => default.ok_or_else(|| self.err(format!("lacks `{}`", names[0]))),
        }
    }

    fn f64(&self, v: &Value, names: &[&str], default: f64) -> Result<f64> {
        match field(v, names) {
            Some(x) => x
                .as_f64()
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or_else(|| self.err(format!("`{}` must be a positive number", names[0]))),
            None => Ok(default),
        }
    }

    fn bool(&self, v: &Value, name: &str, default: bool) -> Result<bool> {
        match field(v, &[name]) {
            Some(x) => x
                .as_bool()
                .ok_or_else(|| self.err(format!("`{name}` must be true or false"))),
            None => Ok(default),
        }
    }
}

/// True when `config.json` names one of the paper's model families.
pub fn is_alm_config(json: &Value) -> bool {
    kind_of(json).is_some()
}

fn kind_of(json: &Value) -> Option<AlmKind> {
    let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
    let arch = json
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .unwrap_or("");
    if model_type == "qwen2_audio" || arch.starts_with("Qwen2Audio") {
        Some(AlmKind::Qwen2Audio)
    } else if model_type == "audioflamingo3" || arch.starts_with("AudioFlamingo3") {
        Some(AlmKind::AudioFlamingo3)
    } else {
        None
    }
}

impl AlmConfig {
    pub fn from_file(path: &Path) -> Result<AlmConfig> {
        let json = crate::model::hf::read_json(path)?;
        AlmConfig::from_json(&json, path)
    }

    pub fn from_json(json: &Value, path: &Path) -> Result<AlmConfig> {
        let r = Reader { path };
        let kind = kind_of(json).ok_or_else(|| {
            r.err("is neither Qwen2-Audio (`model_type` qwen2_audio) nor Audio Flamingo 3 (audioflamingo3)")
        })?;
        let a = json
            .get("audio_config")
            .filter(|v| v.is_object())
            .ok_or_else(|| r.err("lacks the `audio_config` object"))?;
        let audio = EncoderConfig {
            d_model: r.usize(a, &["d_model", "hidden_size"], Some(1280))?,
            layers: r.usize(a, &["encoder_layers", "num_hidden_layers"], Some(32))?,
            heads: r.usize(
                a,
                &["encoder_attention_heads", "num_attention_heads"],
                Some(20),
            )?,
            ffn: r.usize(a, &["encoder_ffn_dim", "intermediate_size"], Some(5120))?,
            n_mels: r.usize(a, &["num_mel_bins"], Some(128))?,
            max_source_positions: r.usize(a, &["max_source_positions"], Some(1500))?,
        };
        if !audio.d_model.is_multiple_of(audio.heads) {
            return Err(r.err("audio `d_model` is not a multiple of the attention heads"));
        }
        if !audio.max_source_positions.is_multiple_of(2) {
            return Err(
                r.err("audio `max_source_positions` must be even (tokens are pooled by pairs)")
            );
        }
        let empty = Value::Object(Default::default());
        let t = json.get("text_config").unwrap_or(&empty);
        let hidden = r.usize(t, &["hidden_size"], Some(4096))?;
        let heads = r.usize(t, &["num_attention_heads"], Some(32))?;
        let kv_heads = r.usize(t, &["num_key_value_heads"], Some(heads))?;
        if !hidden.is_multiple_of(heads) && field(t, &["head_dim"]).is_none() {
            return Err(r.err("text `hidden_size` is not a multiple of `num_attention_heads`"));
        }
        if !heads.is_multiple_of(kv_heads) {
            return Err(
                r.err("text `num_attention_heads` is not a multiple of `num_key_value_heads`")
            );
        }
        let rope_theta = match t.get("rope_parameters").filter(|v| v.is_object()) {
            Some(p) => r.f64(p, &["rope_theta"], 10_000.0)?,
            None => r.f64(t, &["rope_theta"], 10_000.0)?,
        };
        if let Some(rt) = t
            .get("rope_parameters")
            .and_then(|p| p.get("rope_type"))
            .or_else(|| t.get("rope_scaling").and_then(|p| p.get("rope_type")))
            .and_then(Value::as_str)
        {
            if rt != "default" {
                return Err(r.err(format!(
                    "rope type `{rt}` is not supported (only the default RoPE)"
                )));
            }
        }
        let sliding_window = if r.bool(t, "use_sliding_window", false)? {
            Some(r.usize(t, &["sliding_window"], Some(4096))?)
        } else {
            None
        };
        let text = TextConfig {
            vocab: r.usize(t, &["vocab_size"], Some(151_936))?,
            hidden,
            intermediate: r.usize(t, &["intermediate_size"], Some(22_016))?,
            layers: r.usize(t, &["num_hidden_layers"], Some(32))?,
            heads,
            kv_heads,
            head_dim: r.usize(t, &["head_dim"], Some(hidden / heads))?,
            rope_theta,
            rms_eps: r.f64(t, &["rms_norm_eps"], 1e-6)?,
            tie_embeddings: r.bool(t, "tie_word_embeddings", false)?,
            max_positions: r.usize(t, &["max_position_embeddings"], Some(32_768))?,
            sliding_window,
        };
        if !text.head_dim.is_multiple_of(2) {
            return Err(r.err("text head dimension must be even for RoPE"));
        }
        let token_default = match kind {
            AlmKind::Qwen2Audio => 151_646,
            AlmKind::AudioFlamingo3 => 151_669,
        };
        let audio_token_id = r.usize(
            json,
            &["audio_token_index", "audio_token_id"],
            Some(token_default),
        )? as u32;
        Ok(AlmConfig {
            kind,
            audio,
            text,
            audio_token_id,
            projector_bias: r.bool(json, "projector_bias", true)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<AlmConfig> {
        AlmConfig::from_json(&v, Path::new("config.json"))
    }

    #[test]
    fn hub_qwen2_audio_sparse_text_config_takes_qwen2_defaults() {
        // The published Qwen2-Audio-7B-Instruct config, abridged to what matters.
        let c = parse(json!({
            "architectures": ["Qwen2AudioForConditionalGeneration"],
            "audio_config": {"model_type": "qwen2_audio_encoder", "num_mel_bins": 128,
                             "encoder_layers": 32, "encoder_attention_heads": 20,
                             "encoder_ffn_dim": 5120, "d_model": 1280},
            "audio_token_index": 151646,
            "model_type": "qwen2_audio",
            "text_config": {"intermediate_size": 11008, "max_position_embeddings": 8192,
                            "model_type": "qwen2", "rms_norm_eps": 1e-05,
                            "vocab_size": 156032}
        }))
        .unwrap();
        assert_eq!(c.kind, AlmKind::Qwen2Audio);
        assert_eq!(c.audio.max_source_positions, 1500);
        let t = &c.text;
        assert_eq!(
            (t.hidden, t.layers, t.heads, t.kv_heads),
            (4096, 32, 32, 32)
        );
        assert_eq!((t.intermediate, t.vocab, t.head_dim), (11008, 156032, 128));
        assert_eq!((t.rope_theta, t.rms_eps), (10_000.0, 1e-5));
        assert!(!t.tie_embeddings && t.sliding_window.is_none());
        assert_eq!(c.audio_token_id, 151646);
    }

    #[test]
    fn v5_af3_config() {
        let c = parse(json!({
            "model_type": "audioflamingo3",
            "audio_config": {"hidden_size": 1280, "num_hidden_layers": 32,
                             "num_attention_heads": 20, "intermediate_size": 5120},
            "text_config": {"hidden_size": 3584, "num_hidden_layers": 28,
                            "num_attention_heads": 28, "num_key_value_heads": 4,
                            "intermediate_size": 18944, "vocab_size": 151672,
                            "rms_norm_eps": 1e-6, "sliding_window": null,
                            "use_sliding_window": false,
                            "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
                            "layer_types": ["full_attention"]}
        }))
        .unwrap();
        assert_eq!(c.kind, AlmKind::AudioFlamingo3);
        assert_eq!(c.audio.ffn, 5120);
        assert_eq!((c.text.kv_heads, c.text.head_dim), (4, 128));
        assert_eq!(c.text.rope_theta, 1e6);
        assert_eq!(c.audio_token_id, 151669);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let e = parse(json!({"model_type": "whisper"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither Qwen2-Audio"), "{e}");
        let e = parse(json!({"model_type": "qwen2_audio"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("audio_config"), "{e}");
        let e = parse(json!({"model_type": "qwen2_audio", "audio_config": {"d_model": -3}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d_model"), "{e}");
        let e = parse(json!({"model_type": "qwen2_audio", "audio_config": {},
            "text_config": {"rope_parameters": {"rope_theta": 1e6, "rope_type": "yarn"}}}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("yarn"), "{e}");
        let e = parse(json!({"model_type": "qwen2_audio", "audio_config": {},
            "text_config": {"num_attention_heads": 28, "num_key_value_heads": 5, "hidden_size": 3584}}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("num_key_value_heads"), "{e}");
    }
}
