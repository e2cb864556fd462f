//! Sentence embeddings as sentence-transformers computes them, for MMAU's answer matching
//! (the paper's Sentence-BERT step, [`crate::eval::embed`]): all-MiniLM-L6-v2 or another BERT
//! checkpoint of that library. WordPiece ids from the model's `tokenizer.json` (truncated to
//! `max_seq_length`, 256 for MiniLM), candle-transformers' BERT encoder (post-LN, erf GELU,
//! absolute positions, token type 0), the pooling its module config names (MiniLM: the mean over
//! the tokens), L2 normalisation when its modules say so. The configs are read in [`config`].
//! `prunescope fetch minilm` puts the model in the user cache folder ([`crate::model::store`]).

mod config;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert;

use self::config::{read_config, read_pipeline, Pooling};

/// The model's name, and its folder's name in the cache.
pub const MODEL_NAME: &str = crate::model::store::MINILM.name;
/// Overrides where the model is looked for.
pub const ENV_VAR: &str = crate::model::store::MINILM.env;
/// Padded token rows per forward pass of [`SentenceEmbedder::embed_batch`].
const MAX_BATCH_ROWS: usize = 2048;
/// Texts per forward pass: sentence-transformers' default batch size. Larger batches of
/// length-sorted texts pad more than they save.
const MAX_BATCH_TEXTS: usize = 32;

/// Why a sentence-embedding model could not be loaded or run, one readable line each.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("sentence-embedding model directory {0} does not exist (`prunescope fetch minilm` fetches all-MiniLM-L6-v2)")]
    DirMissing(PathBuf),
    #[error("{0} is not a directory (pass the sentence-embedding model's directory)")]
    NotADir(PathBuf),
    #[error("{0} is missing: a sentence-embedding model directory needs config.json, tokenizer.json and model.safetensors")]
    FileMissing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error(transparent)]
    Json(#[from] crate::model::hf::JsonError),
    #[error("sentence-embedding weights lack tensor `{0}`")]
    MissingTensor(String),
    #[error("sentence-embedding tensor `{name}` has shape {got:?}, expected {want:?}")]
    Shape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("sentence-embedding tokenizer: {0}")]
    Tokenizer(String),
    #[error("sentence embedding failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, EmbedError>;

fn corrupt(path: &Path, msg: impl Into<String>) -> EmbedError {
    EmbedError::Corrupt {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The sentence-embedding model directory when the model is there: `$PRUNESCOPE_MINILM`, else
/// the user cache folder (`prunescope fetch minilm` fills it; see [`crate::model::store`]).
pub fn default_dir() -> Option<PathBuf> {
    crate::model::store::MINILM.present()
}

/// The files [`SentenceEmbedder::load`] reads first, if `dir` has them all: a cheap check
/// before work whose end needs the model.
pub fn check_dir(dir: &Path) -> Result<()> {
    required_files(dir).map(|_| ())
}

fn required_files(dir: &Path) -> Result<[PathBuf; 3]> {
    if !dir.exists() {
        return Err(EmbedError::DirMissing(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(EmbedError::NotADir(dir.to_path_buf()));
    }
    let paths = ["config.json", "tokenizer.json", "model.safetensors"].map(|f| dir.join(f));
    if let Some(p) = paths.iter().find(|p| !p.is_file()) {
        return Err(EmbedError::FileMissing(p.clone()));
    }
    Ok(paths)
}

/// A candle load error as one line: which tensor is missing or misshapen.
fn weights_error(e: candle_core::Error) -> EmbedError {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } | E::Context { inner, .. } | E::WithPath { inner, .. } => {
            weights_error(*inner)
        }
        E::CannotFindTensor { path } => EmbedError::MissingTensor(path),
        E::UnexpectedShape { msg, expected, got } => EmbedError::Shape {
            name: msg
                .strip_prefix("shape mismatch for ")
                .unwrap_or(&msg)
                .to_string(),
            got: got.dims().to_vec(),
            want: expected.dims().to_vec(),
        },
        e => EmbedError::Candle(e),
    }
}

/// A sentence-transformers BERT model (all-MiniLM-L6-v2) on candle-transformers' BERT, on the
/// CPU.
pub struct SentenceEmbedder {
    tokenizer: tokenizers::Tokenizer,
    lower_case: bool,
    model: bert::BertModel,
    dim: usize,
    vocab_size: usize,
    pooling: Pooling,
    normalize: bool,
}

impl SentenceEmbedder {
    /// Loads `config.json`, `tokenizer.json`, `model.safetensors` and the sentence-transformers
    /// module configs of `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let [cfg_path, tok_path, weights_path] = required_files(dir)?;

        let cfg = read_config(&cfg_path)?;
        let pipeline = read_pipeline(dir)?;
        let max_len = pipeline
            .max_seq_length
            .unwrap_or(cfg.max_position_embeddings)
            .min(cfg.max_position_embeddings);
        if max_len < 2 {
            return Err(corrupt(
                &dir.join("sentence_bert_config.json"),
                "max_seq_length must leave room for [CLS] and [SEP]",
            ));
        }

        let mut tokenizer = crate::model::hf::read_tokenizer(&tok_path)
            .map_err(|e| corrupt(&tok_path, format!("not a tokenizer: {e}")))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| corrupt(&tok_path, format!("cannot truncate: {e}")))?;
        tokenizer.with_padding(None);

        crate::model::hf::check_safetensors_header(&weights_path)
            .map_err(|m| corrupt(&weights_path, m))?;
        let bytes = std::fs::read(&weights_path).map_err(|e| EmbedError::Io {
            path: weights_path.clone(),
            source: e,
        })?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| corrupt(&weights_path, format!("not a valid safetensors file: {e}")))?;
        // candle-nn's Linear multiplies by `weight.t()`: keeping each encoder matrix stored
        // transposed makes that operand contiguous, which gemm runs faster for the few rows of
        // short texts.
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| {
                let t = t.to_dtype(DType::F32)?;
                let t = if t.rank() == 2 && name.contains("encoder.") {
                    t.t()?.contiguous()?.t()?
                } else {
                    t
                };
                Ok((name, t))
            })
            .collect::<candle_core::Result<HashMap<_, _>>>()?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        // Checkpoints saved from BertForX prefix every name with `bert.`. Choosing the prefix
        // here (rather than leaving it to `BertModel::load`'s fallbacks) makes a missing tensor
        // the error, not a missing unprefixed one.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let model = bert::BertModel::load(vb, &cfg).map_err(weights_error)?;
        Ok(SentenceEmbedder {
            tokenizer,
            lower_case: pipeline.lower_case,
            model,
            dim: cfg.hidden_size,
            vocab_size: cfg.vocab_size,
            pooling: pipeline.pooling,
            normalize: pipeline.normalize,
        })
    }

    /// Length of the sentence vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's input ids for `text`: [CLS], WordPiece ids, [SEP], truncated.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = if self.lower_case {
            self.tokenizer.encode(text.to_lowercase(), true)
        } else {
            self.tokenizer.encode(text, true)
        }
        .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.vocab_size) {
            return Err(EmbedError::Tokenizer(format!(
                "token id {bad} is outside the model's vocabulary of {}",
                self.vocab_size
            )));
        }
        Ok(ids)
    }

    /// The sentence vector of `text` (unit length when the model normalises, as MiniLM does).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let mut v = self.embed_batch(&[text])?;
        Ok(v.pop().unwrap_or_default())
    }

    /// The sentence vectors of `texts`, in order. Short texts are cheaper together: each
    /// forward streams the 22 M weights once for all of them. As in sentence-transformers, the
    /// texts are run longest first, so that each padded batch holds texts of similar length.
    /// A text without tokens (only possible with a tokenizer that adds no [CLS]/[SEP]) gets
    /// the zero vector.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<_>>()?;
        let mut out = vec![vec![0.0; self.dim]; texts.len()];
        let mut order: Vec<usize> = (0..ids.len()).filter(|&i| !ids[i].is_empty()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        // Bounded padded rows per forward keep the activations small for any number of texts.
        let mut start = 0;
        while start < order.len() {
            let width = ids[order[start]].len();
            let n = (MAX_BATCH_ROWS / width).clamp(1, MAX_BATCH_TEXTS.min(order.len() - start));
            let batch = &order[start..start + n];
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
            for (&i, v) in batch.iter().zip(self.forward(&seqs)?) {
                out[i] = v;
            }
            start += n;
        }
        if self.normalize {
            for v in &mut out {
                // torch.nn.functional.normalize: x / max(||x||, 1e-12).
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(out)
    }

    /// BERT on non-empty sequences, longest first, padded to the first one's length and masked,
    /// then pooling over each sequence's own tokens: one vector of `dim()` values each.
    fn forward(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (n, width) = (seqs.len(), seqs[0].len());
        let mut ids = vec![0u32; n * width];
        let mut mask = vec![0f32; n * width];
        for (row, s) in seqs.iter().enumerate() {
            ids[row * width..][..s.len()].copy_from_slice(s);
            mask[row * width..][..s.len()].fill(1.0);
        }
        let ids = Tensor::from_vec(ids, (n, width), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (n, width), &Device::Cpu)?;
        let x = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let mask = mask.unsqueeze(2)?;
        match self.pooling {
            Pooling::Mean => x
                .broadcast_mul(&mask)?
                .sum(1)?
                .broadcast_div(&mask.sum(1)?)?,
            Pooling::Cls => x.narrow(1, 0, 1)?.squeeze(1)?,
            // sentence-transformers sets padded tokens to -1e9 before the max.
            Pooling::Max => x.broadcast_add(&((mask - 1.0)? * 1e9)?)?.max(1)?,
        }
        .to_vec2()
    }
}

/// A scratch model directory, and a tiny model to write into it, for the tests here and in
/// [`crate::eval::embed`].
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::path::Path;

    use candle_core::{Device, Tensor};

    use crate::util::TempDir;

    /// A temporary model directory whose files are written by relative path.
    pub(crate) struct Scratch(TempDir);

    impl Scratch {
        pub(crate) fn new(tag: &str) -> Self {
            Scratch(TempDir::new(&format!("embed-{tag}")).unwrap())
        }

        pub(crate) fn path(&self) -> &Path {
            self.0.path()
        }

        pub(crate) fn write(&self, name: &str, text: &str) {
            let p = self.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    pub(crate) const CONFIG: &str = r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 16,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12}"#;

    /// A one-layer BERT with made-up weights, a word-level tokenizer and the
    /// sentence-transformers modules, in `s`. `skip` names a tensor left out.
    pub(crate) fn tiny_model(s: &Scratch, skip: Option<&str>) {
        s.write("config.json", CONFIG);
        s.write(
            "tokenizer.json",
            r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "unk_token": "u",
                      "vocab": {"u": 0, "a": 1, "b": 2, "c": 3, "far": 9}}}"#,
        );
        s.write(
            "modules.json",
            r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]"#,
        );
        s.write(
            "1_Pooling/config.json",
            r#"{"word_embedding_dimension": 4, "pooling_mode_mean_tokens": true}"#,
        );
        s.write("sentence_bert_config.json", r#"{"max_seq_length": 3}"#);
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![8, 4]),
            ("embeddings.position_embeddings.weight".into(), vec![16, 4]),
            ("embeddings.token_type_embeddings.weight".into(), vec![2, 4]),
            ("embeddings.LayerNorm.weight".into(), vec![4]),
            ("embeddings.LayerNorm.bias".into(), vec![4]),
        ];
        for (name, o, i) in [
            ("attention.self.query", 4, 4),
            ("attention.self.key", 4, 4),
            ("attention.self.value", 4, 4),
            ("attention.output.dense", 4, 4),
            ("intermediate.dense", 8, 4),
            ("output.dense", 4, 8),
        ] {
            shapes.push((format!("encoder.layer.0.{name}.weight"), vec![o, i]));
            shapes.push((format!("encoder.layer.0.{name}.bias"), vec![o]));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("encoder.layer.0.{name}.weight"), vec![4]));
            shapes.push((format!("encoder.layer.0.{name}.bias"), vec![4]));
        }
        let mut tensors = HashMap::new();
        for (k, (name, shape)) in shapes.into_iter().enumerate() {
            if skip == Some(name.as_str()) {
                continue;
            }
            let n: usize = shape.iter().product();
            let vals: Vec<f32> = (0..n)
                .map(|j| ((j * 7 + k * 3) % 11) as f32 / 11.0 - 0.4)
                .collect();
            let t = Tensor::from_vec(vals, shape, &Device::Cpu).unwrap();
            // Checkpoints saved from BertForX prefix every name with `bert.`.
            tensors.insert(format!("bert.{name}"), t);
        }
        candle_core::safetensors::save(&tensors, s.path().join("model.safetensors")).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{tiny_model, Scratch, CONFIG};
    use super::*;

    fn load_err(dir: &Path) -> String {
        match SentenceEmbedder::load(dir) {
            Ok(_) => panic!("{} loaded", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn missing_dir() {
        let e = load_err(Path::new("/nonexistent/all-MiniLM-L6-v2"));
        assert!(e.contains("does not exist"), "{e}");
        assert!(e.contains("prunescope fetch minilm"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn file_not_dir() {
        let s = Scratch::new("file");
        s.write("config.json", CONFIG);
        let e = load_err(&s.path().join("config.json"));
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn missing_files() {
        let s = Scratch::new("empty");
        let e = load_err(s.path());
        assert!(e.contains("config.json is missing"), "{e}");
        s.write("config.json", CONFIG);
        let e = load_err(s.path());
        assert!(e.contains("tokenizer.json is missing"), "{e}");
        s.write("tokenizer.json", "{}");
        let e = load_err(s.path());
        assert!(e.contains("model.safetensors is missing"), "{e}");
    }

    #[test]
    fn corrupt_config() {
        let s = Scratch::new("corrupt");
        s.write("tokenizer.json", "{}");
        s.write("model.safetensors", "");
        s.write("config.json", "{ not json");
        let e = load_err(s.path());
        assert!(e.contains("config.json: not valid JSON"), "{e}");
        s.write("config.json", r#"{"hidden_size": 4}"#);
        let e = load_err(s.path());
        assert!(e.contains("not a BERT config"), "{e}");
        s.write("config.json", &CONFIG.replace("\"gelu\"", "\"gelu_new\""));
        let e = load_err(s.path());
        assert!(e.contains("unknown variant `gelu_new`"), "{e}");
        s.write(
            "config.json",
            &CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"),
        );
        let e = load_err(s.path());
        assert!(e.contains("multiple of num_attention_heads"), "{e}");
    }

    #[test]
    fn corrupt_tokenizer_weights_and_modules() {
        let s = Scratch::new("weights");
        s.write("config.json", CONFIG);
        s.write("tokenizer.json", "{}");
        s.write("model.safetensors", "");
        let e = load_err(s.path());
        assert!(e.contains("tokenizer.json: not a tokenizer"), "{e}");
        s.write(
            "modules.json",
            r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Dense"}]"#,
        );
        let e = load_err(s.path());
        assert!(e.contains("Dense` is not supported"), "{e}");
        s.write(
            "modules.json",
            r#"[{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#,
        );
        s.write(
            "1_Pooling/config.json",
            r#"{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}"#,
        );
        let e = load_err(s.path());
        assert!(e.contains("exactly one of mean, cls or max"), "{e}");
    }

    #[test]
    fn tiny_model_runs_and_never_panics() {
        let s = Scratch::new("tiny");
        tiny_model(&s, None);
        let m = SentenceEmbedder::load(s.path()).unwrap();
        assert_eq!(m.dim(), 4);
        // Truncated to max_seq_length.
        assert_eq!(m.token_ids("a b c a b").unwrap(), vec![1, 2, 3]);
        for text in ["a b", "zzz \u{0} \u{feff}", "a"] {
            let v = m.embed(text).unwrap();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
        }
        // No token at all (this tokenizer adds no [CLS]/[SEP]): the zero vector.
        assert_eq!(m.embed("   ").unwrap(), vec![0.0; 4]);
        // A batch is its texts one by one, an empty one in the middle included.
        let texts = ["a b c", "", "b", "c a"];
        let batch = m.embed_batch(&texts).unwrap();
        assert_eq!(batch.len(), 4);
        for (t, b) in texts.iter().zip(&batch) {
            let one = m.embed(t).unwrap();
            assert!(
                one.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6),
                "{t:?}"
            );
        }
        assert!(m.embed_batch(&[]).unwrap().is_empty());
        // An id the weights do not cover is an error, not a panic.
        let e = m.embed("far").unwrap_err().to_string();
        assert!(e.contains("outside the model's vocabulary"), "{e}");
    }

    #[test]
    fn every_pooling_ignores_padding() {
        let s = Scratch::new("pooling");
        tiny_model(&s, None);
        for mode in ["mean", "cls", "max"] {
            let key = if mode == "cls" { "token" } else { "tokens" };
            s.write(
                "1_Pooling/config.json",
                &format!(r#"{{"pooling_mode_{mode}_{key}": true}}"#),
            );
            let m = SentenceEmbedder::load(s.path()).unwrap();
            let texts = ["a", "c a b", "b c"];
            for (t, b) in texts.iter().zip(m.embed_batch(&texts).unwrap()) {
                let one = m.embed(t).unwrap();
                assert!(
                    one.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6),
                    "{mode} {t:?}: {one:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn missing_or_misshapen_tensor() {
        let s = Scratch::new("missing-tensor");
        tiny_model(&s, Some("encoder.layer.0.output.dense.bias"));
        let e = load_err(s.path());
        assert!(
            e.contains("lack tensor `bert.encoder.layer.0.output.dense.bias`"),
            "{e}"
        );
        s.write(
            "config.json",
            &CONFIG.replace("\"intermediate_size\": 8", "\"intermediate_size\": 6"),
        );
        let e = load_err(s.path());
        assert!(e.contains("has shape [8, 4], expected [6, 4]"), "{e}");
        s.write("model.safetensors", "not safetensors");
        s.write("config.json", CONFIG);
        let e = load_err(s.path());
        // Its first 8 bytes, read as the header's length, are past the limit.
        assert!(
            e.contains("model.safetensors: declares a safetensors header of")
                && e.contains("at most 100000000 bytes"),
            "{e}"
        );
        s.write("model.safetensors", "\u{8}\0\0\0\0\0\0\0not json");
        let e = load_err(s.path());
        assert!(
            e.contains("model.safetensors: not a valid safetensors file"),
            "{e}"
        );
    }
}
