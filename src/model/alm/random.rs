//! Random-weight Qwen2-Audio checkpoints of a chosen size, written as a real model directory
//! (config.json, bf16 safetensors, tokenizer.json) so benchmarks exercise the same loading and
//! inference code as the published models without downloading 15 GB.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::model::{ModelError, Result};
use crate::util::{parse_name, UnknownName};

/// A toy byte-level tokenizer with the Qwen2-Audio special tokens (`<|AUDIO|>` is id 3), the one
/// the golden tests' tiny model uses.
const TOKENIZER: &str = include_str!("../../../tests/data/alm/qwen2-audio-tiny/tokenizer.json");

/// Model sizes for benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A few MB: for tests of the benchmark itself.
    Tiny,
    /// Qwen2-0.5B's language model behind a Whisper-small-size encoder (128 mel bins, 30 s).
    Mid,
}

impl Shape {
    pub fn parse(s: &str) -> std::result::Result<Shape, UnknownName> {
        parse_name("shape", s, &[("tiny", Shape::Tiny), ("mid", Shape::Mid)])
    }

    fn config(self) -> serde_json::Value {
        let (audio, text) = match self {
            Shape::Tiny => (
                serde_json::json!({"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4,
                    "encoder_ffn_dim": 128, "num_mel_bins": 128, "max_source_positions": 1500}),
                serde_json::json!({"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
                    "max_position_embeddings": 32768}),
            ),
            Shape::Mid => (
                serde_json::json!({"d_model": 768, "encoder_layers": 12, "encoder_attention_heads": 12,
                    "encoder_ffn_dim": 3072, "num_mel_bins": 128, "max_source_positions": 1500}),
                serde_json::json!({"vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
                    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                    "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
                    "max_position_embeddings": 32768}),
            ),
        };
        serde_json::json!({
            "model_type": "qwen2_audio",
            "architectures": ["Qwen2AudioForConditionalGeneration"],
            "audio_token_index": 3,
            "audio_config": audio,
            "text_config": text,
        })
    }
}

/// Uniform values in [-a, a] from a SplitMix64 stream (std a / sqrt(3)), per tensor seed.
fn uniform(n: usize, a: f32, seed: u64) -> Vec<f32> {
    const CHUNK: usize = 1 << 16;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut s = seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for x in chunk {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let u = (z >> 40) as f32 / (1u64 << 24) as f32;
                *x = (2.0 * u - 1.0) * a;
            }
        });
    out
}

/// Writes a random Qwen2-Audio model of `shape` into `dir` (created).
pub fn write(dir: &Path, shape: Shape, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let cfg = shape.config();
    let a = &cfg["audio_config"];
    let t = &cfg["text_config"];
    let get = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0) as usize;
    let (d, el, ffn, mels, pos) = (
        get(a, "d_model"),
        get(a, "encoder_layers"),
        get(a, "encoder_ffn_dim"),
        get(a, "num_mel_bins"),
        get(a, "max_source_positions"),
    );
    let (vocab, h, inter, tl, heads, kvh) = (
        get(t, "vocab_size"),
        get(t, "hidden_size"),
        get(t, "intermediate_size"),
        get(t, "num_hidden_layers"),
        get(t, "num_attention_heads"),
        get(t, "num_key_value_heads"),
    );
    let hd = h / heads;
    let mut shapes: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |name: String, shape: &[usize]| shapes.push((name, shape.to_vec()));
    add("audio_tower.conv1.weight".into(), &[d, mels, 3]);
    add("audio_tower.conv1.bias".into(), &[d]);
    add("audio_tower.conv2.weight".into(), &[d, d, 3]);
    add("audio_tower.conv2.bias".into(), &[d]);
    add("audio_tower.embed_positions.weight".into(), &[pos, d]);
    for i in 0..el {
        let l = format!("audio_tower.layers.{i}");
        for p in ["q_proj", "v_proj", "out_proj"] {
            add(format!("{l}.self_attn.{p}.weight"), &[d, d]);
            add(format!("{l}.self_attn.{p}.bias"), &[d]);
        }
        add(format!("{l}.self_attn.k_proj.weight"), &[d, d]);
        for n in ["self_attn_layer_norm", "final_layer_norm"] {
            add(format!("{l}.{n}.weight"), &[d]);
            add(format!("{l}.{n}.bias"), &[d]);
        }
        add(format!("{l}.fc1.weight"), &[ffn, d]);
        add(format!("{l}.fc1.bias"), &[ffn]);
        add(format!("{l}.fc2.weight"), &[d, ffn]);
        add(format!("{l}.fc2.bias"), &[d]);
    }
    add("audio_tower.layer_norm.weight".into(), &[d]);
    add("audio_tower.layer_norm.bias".into(), &[d]);
    add("multi_modal_projector.linear.weight".into(), &[h, d]);
    add("multi_modal_projector.linear.bias".into(), &[h]);
    add(
        "language_model.model.embed_tokens.weight".into(),
        &[vocab, h],
    );
    for i in 0..tl {
        let l = format!("language_model.model.layers.{i}");
        add(format!("{l}.self_attn.q_proj.weight"), &[h, h]);
        add(format!("{l}.self_attn.q_proj.bias"), &[h]);
        for p in ["k_proj", "v_proj"] {
            add(format!("{l}.self_attn.{p}.weight"), &[kvh * hd, h]);
            add(format!("{l}.self_attn.{p}.bias"), &[kvh * hd]);
        }
        add(format!("{l}.self_attn.o_proj.weight"), &[h, h]);
        add(format!("{l}.input_layernorm.weight"), &[h]);
        add(format!("{l}.post_attention_layernorm.weight"), &[h]);
        add(format!("{l}.mlp.gate_proj.weight"), &[inter, h]);
        add(format!("{l}.mlp.up_proj.weight"), &[inter, h]);
        add(format!("{l}.mlp.down_proj.weight"), &[h, inter]);
    }
    add("language_model.model.norm.weight".into(), &[h]);

    let mut tensors = HashMap::new();
    for (i, (name, shape)) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let values = if name.ends_with("norm.weight") || name.contains("layer_norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            uniform(n, 0.035, seed.wrapping_add(i as u64))
        };
        let t = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?.to_dtype(DType::BF16)?;
        tensors.insert(name.clone(), t);
    }
    let st = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &st)?;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| ModelError::io(&p, e))
    };
    write("config.json", &cfg.to_string())?;
    write("tokenizer.json", TOKENIZER)?;
    write("generation_config.json", r#"{"eos_token_id": [2, 0]}"#)?;
    Ok(())
}
