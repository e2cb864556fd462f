//! The sentence-transformers configs of a model directory: `config.json` as candle-transformers'
//! BERT reads it, and the modules around the BERT (`modules.json`, the pooling module's
//! config, `sentence_bert_config.json`).

use std::path::Path;

use candle_transformers::models::bert;

use super::{corrupt, Result};
use crate::model::hf::read_json;

/// How token vectors become one sentence vector (sentence-transformers' `Pooling` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pooling {
    Mean,
    Cls,
    Max,
}

/// The sentence-transformers modules around the BERT: pooling, normalisation, length cap.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pipeline {
    pub(super) pooling: Pooling,
    pub(super) normalize: bool,
    pub(super) max_seq_length: Option<usize>,
    pub(super) lower_case: bool,
}

/// Reads `modules.json`, the pooling module's `config.json` and `sentence_bert_config.json`.
/// A directory without `modules.json` is a plain BERT, which sentence-transformers mean-pools
/// without normalising.
pub(super) fn read_pipeline(dir: &Path) -> Result<Pipeline> {
    let mut p = Pipeline {
        pooling: Pooling::Mean,
        normalize: false,
        max_seq_length: None,
        lower_case: false,
    };
    let modules_path = dir.join("modules.json");
    if modules_path.is_file() {
        let modules = read_json(&modules_path)?;
        let list = modules
            .as_array()
            .ok_or_else(|| corrupt(&modules_path, "is not a list of modules"))?;
        for m in list {
            let kind = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
            let sub = m.get("path").and_then(|t| t.as_str()).unwrap_or("");
            if kind.ends_with(".Normalize") {
                p.normalize = true;
            } else if kind.ends_with(".Pooling") {
                let cfg_path = dir.join(sub).join("config.json");
                if cfg_path.is_file() {
                    p.pooling = read_pooling(&cfg_path)?;
                }
            } else if !kind.ends_with(".Transformer") {
                return Err(corrupt(
                    &modules_path,
                    format!(
                        "module `{kind}` is not supported (Transformer, Pooling and Normalize are)"
                    ),
                ));
            }
        }
    }
    let sb_path = dir.join("sentence_bert_config.json");
    if sb_path.is_file() {
        let sb = read_json(&sb_path)?;
        p.max_seq_length = sb
            .get("max_seq_length")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize);
        p.lower_case = sb
            .get("do_lower_case")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
    }
    Ok(p)
}

fn read_pooling(path: &Path) -> Result<Pooling> {
    let cfg = read_json(path)?;
    let on = |k: &str| cfg.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let modes: Vec<(&str, Pooling)> = [
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_max_tokens", Pooling::Max),
    ]
    .into_iter()
    .filter(|(k, _)| on(k))
    .collect();
    let others = [
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
    ];
    match modes.as_slice() {
        [(_, m)] if !others.iter().any(|k| on(k)) => Ok(*m),
        _ => Err(corrupt(
            path,
            "exactly one of mean, cls or max pooling must be on (no other mode is supported)",
        )),
    }
}

/// The model's `config.json` as candle-transformers' BERT reads it, with transformers'
/// `BertConfig` defaults for the keys a config may leave out.
pub(super) fn read_config(path: &Path) -> Result<bert::Config> {
    let mut json = read_json(path)?;
    if let Some(obj) = json.as_object_mut() {
        for (key, value) in [
            ("type_vocab_size", serde_json::json!(2)),
            ("layer_norm_eps", serde_json::json!(1e-12)),
            ("hidden_act", serde_json::json!("gelu")),
            ("hidden_dropout_prob", serde_json::json!(0.1)),
            ("initializer_range", serde_json::json!(0.02)),
            ("pad_token_id", serde_json::json!(0)),
        ] {
            obj.entry(key).or_insert(value);
        }
    }
    let cfg: bert::Config = serde_json::from_value(json)
        .map_err(|e| corrupt(path, format!("not a BERT config: {e}")))?;
    let sizes = [
        cfg.vocab_size,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.intermediate_size,
        cfg.max_position_embeddings,
        cfg.type_vocab_size,
    ];
    if sizes.contains(&0) || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
        return Err(corrupt(
            path,
            "sizes must be positive and hidden_size a multiple of num_attention_heads",
        ));
    }
    Ok(cfg)
}
