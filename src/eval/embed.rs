//! Sentence embeddings for MMAU's answer matching, as the paper did with Sentence-BERT:
//! all-MiniLM-L6-v2 run the way sentence-transformers runs it. WordPiece ids from the model's
//! `tokenizer.json` (truncated to `max_seq_length`, 256), a BERT encoder (post-LN, erf GELU,
//! absolute positions, token type 0), mean pooling over the tokens, L2 normalisation.
//! `prunescope fetch minilm` puts the model in the user cache folder (`crate::model::store`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, D};

use super::metrics::accuracy::{LexicalScorer, OptionScorer};

/// The model's name, and its folder's name in the cache.
pub const MODEL_NAME: &str = crate::model::store::MINILM.name;
/// Overrides where the model is looked for.
pub const ENV_VAR: &str = crate::model::store::MINILM.env;
/// Token rows per forward pass of [`SentenceEmbedder::embed_batch`].
const MAX_BATCH_ROWS: usize = 2048;

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

/// The parts of a BERT `config.json` the encoder needs.
#[derive(Debug, Clone, serde::Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_pos")]
    position_embedding_type: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_pos() -> String {
    "absolute".into()
}

/// How token vectors become one sentence vector (sentence-transformers' `Pooling` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
    Max,
}

/// The sentence-transformers modules around the BERT: pooling, normalisation, length cap.
#[derive(Debug, Clone, Copy)]
struct Pipeline {
    pooling: Pooling,
    normalize: bool,
    max_seq_length: Option<usize>,
    lower_case: bool,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| EmbedError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| corrupt(path, format!("not valid JSON: {e}")))
}

/// Reads `modules.json`, the pooling module's `config.json` and `sentence_bert_config.json`.
/// A directory without `modules.json` is a plain BERT, which sentence-transformers mean-pools
/// without normalising.
fn read_pipeline(dir: &Path) -> Result<Pipeline> {
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

/// `y = x W^T + b`, with `W^T` stored contiguous.
struct Linear {
    wt: Tensor,
    b: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.wt)?.broadcast_add(&self.b)
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

/// Checked access to the safetensors' tensors, with or without a `bert.` prefix.
struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .or_else(|| self.tensors.get(&format!("bert.{name}")))
            .ok_or_else(|| EmbedError::MissingTensor(name.to_string()))?;
        if t.dims() != shape {
            return Err(EmbedError::Shape {
                name: name.to_string(),
                got: t.dims().to_vec(),
                want: shape.to_vec(),
            });
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    fn linear(&self, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        Ok(Linear {
            wt: self
                .get(&format!("{name}.weight"), &[d_out, d_in])?
                .t()?
                .contiguous()?,
            b: self.get(&format!("{name}.bias"), &[d_out])?,
        })
    }

    fn norm(&self, name: &str, d: usize) -> Result<Norm> {
        Ok(Norm {
            w: self.get(&format!("{name}.weight"), &[d])?,
            b: self.get(&format!("{name}.bias"), &[d])?,
        })
    }
}

/// A sentence-transformers BERT model (all-MiniLM-L6-v2), on the CPU.
pub struct SentenceEmbedder {
    tokenizer: tokenizers::Tokenizer,
    lower_case: bool,
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    eps: f32,
    vocab_size: usize,
    pooling: Pooling,
    normalize: bool,
}

impl SentenceEmbedder {
    /// Loads `config.json`, `tokenizer.json`, `model.safetensors` and the sentence-transformers
    /// module configs of `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let [cfg_path, tok_path, weights_path] = required_files(dir)?;

        let cfg: BertConfig = serde_json::from_value(read_json(&cfg_path)?)
            .map_err(|e| corrupt(&cfg_path, format!("not a BERT config: {e}")))?;
        let h = cfg.hidden_size;
        if cfg.hidden_act != "gelu" {
            return Err(corrupt(
                &cfg_path,
                format!(
                    "hidden_act `{}` is not supported (only `gelu`, the erf form)",
                    cfg.hidden_act
                ),
            ));
        }
        if cfg.position_embedding_type != "absolute" {
            return Err(corrupt(
                &cfg_path,
                format!(
                    "position_embedding_type `{}` is not supported (only `absolute`)",
                    cfg.position_embedding_type
                ),
            ));
        }
        let sizes = [
            cfg.vocab_size,
            h,
            cfg.num_hidden_layers,
            cfg.num_attention_heads,
            cfg.intermediate_size,
            cfg.max_position_embeddings,
            cfg.type_vocab_size,
        ];
        if sizes.contains(&0) || !h.is_multiple_of(cfg.num_attention_heads) {
            return Err(corrupt(
                &cfg_path,
                "sizes must be positive and hidden_size a multiple of num_attention_heads",
            ));
        }
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

        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| corrupt(&tok_path, format!("not a tokenizer: {e}")))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| corrupt(&tok_path, format!("cannot truncate: {e}")))?;
        tokenizer.with_padding(None);

        let bytes = std::fs::read(&weights_path).map_err(|e| EmbedError::Io {
            path: weights_path.clone(),
            source: e,
        })?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| corrupt(&weights_path, format!("not a valid safetensors file: {e}")))?;
        let w = Weights { tensors };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                let ffn = cfg.intermediate_size;
                Ok(Layer {
                    q: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                    k: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                    v: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                    attn_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                    attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                    inter: w.linear(&format!("{p}.intermediate.dense"), h, ffn)?,
                    out: w.linear(&format!("{p}.output.dense"), ffn, h)?,
                    out_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SentenceEmbedder {
            tokenizer,
            lower_case: pipeline.lower_case,
            word: w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            token_type0: w
                .get(
                    "embeddings.token_type_embeddings.weight",
                    &[cfg.type_vocab_size, h],
                )?
                .narrow(0, 0, 1)?,
            emb_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps as f32,
            vocab_size: cfg.vocab_size,
            pooling: pipeline.pooling,
            normalize: pipeline.normalize,
        })
    }

    /// Length of the sentence vectors.
    pub fn dim(&self) -> usize {
        self.word.dims()[1]
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
    /// forward streams the 22 M weights once for all of them.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < ids.len() {
            // Bounded rows per forward keep the activations small for any number of texts.
            let (mut end, mut rows) = (start, 0);
            while end < ids.len() && (end == start || rows + ids[end].len() <= MAX_BATCH_ROWS) {
                rows += ids[end].len();
                end += 1;
            }
            out.extend(self.forward(&ids[start..end])?);
            start = end;
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

    /// BERT on several unpadded sequences, then pooling: one vector of `dim()` values each.
    /// The token rows of all sequences are stacked for the per-token layers (projections,
    /// feed-forward, norms); attention runs per sequence, so no padding or mask is needed and
    /// each result equals that sequence run alone. A sequence without tokens (only possible
    /// with a tokenizer that adds no [CLS]/[SEP]) gets the zero vector.
    fn forward(&self, seqs: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let h = self.dim();
        let hd = h / self.heads;
        let flat: Vec<u32> = seqs.concat();
        if flat.is_empty() {
            return Ok(vec![vec![0.0; h]; seqs.len()]);
        }
        let positions: Vec<u32> = seqs.iter().flat_map(|s| 0..s.len() as u32).collect();
        let rows = flat.len();
        let ids_t = Tensor::from_vec(flat, rows, &Device::Cpu)?;
        let pos_t = Tensor::from_vec(positions, rows, &Device::Cpu)?;
        let x = self
            .word
            .index_select(&ids_t, 0)?
            .add(&self.position.index_select(&pos_t, 0)?)?
            .broadcast_add(&self.token_type0)?;
        let mut x = self.layer_norm(&x, &self.emb_norm)?;
        // (offset, length) of each non-empty sequence in the stacked rows.
        let spans: Vec<(usize, usize)> = seqs
            .iter()
            .scan(0, |off, s| {
                let span = (*off, s.len());
                *off += s.len();
                Some(span)
            })
            .collect();
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let (q, k, v) = (l.q.forward(&x)?, l.k.forward(&x)?, l.v.forward(&x)?);
            let mut ctx = Vec::with_capacity(seqs.len());
            for &(off, n) in spans.iter().filter(|s| s.1 > 0) {
                // (n, h) -> (heads, n, hd)
                let split = |t: &Tensor| -> candle_core::Result<Tensor> {
                    t.narrow(0, off, n)?
                        .reshape((n, self.heads, hd))?
                        .transpose(0, 1)?
                        .contiguous()
                };
                let (q, k, v) = (split(&q)?, split(&k)?, split(&v)?);
                let att = (q.matmul(&k.t()?)? * scale)?;
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                ctx.push(att.matmul(&v)?.transpose(0, 1)?.reshape((n, h))?);
            }
            let ctx = Tensor::cat(&ctx, 0)?;
            let a = l.attn_out.forward(&ctx)?;
            x = self.layer_norm(&(a + &x)?, &l.attn_norm)?;
            let f = l.out.forward(&l.inter.forward(&x)?.gelu_erf()?)?;
            x = self.layer_norm(&(f + &x)?, &l.out_norm)?;
        }
        spans
            .iter()
            .map(|&(off, n)| {
                if n == 0 {
                    return Ok(vec![0.0; h]);
                }
                let t = x.narrow(0, off, n)?;
                match self.pooling {
                    Pooling::Mean => t.mean(0),
                    Pooling::Cls => t.get(0),
                    Pooling::Max => t.max(0),
                }?
                .to_vec1::<f32>()
            })
            .collect()
    }

    fn layer_norm(&self, x: &Tensor, n: &Norm) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + self.eps as f64)?.sqrt()?)?
            .broadcast_mul(&n.w)?
            .broadcast_add(&n.b)
    }
}

/// MMAU's similarity step with sentence embeddings: cosine similarity of the answer's vector
/// to each option's. Vectors are cached by text, since every setting of a clip has the same
/// options. A text the model cannot embed (it never happened on the fixtures) falls back to
/// bag-of-words scores for that answer, with one stderr line per scorer.
pub struct SentenceScorer {
    embedder: SentenceEmbedder,
    cache: Mutex<HashMap<String, Vec<f32>>>,
    warned: AtomicBool,
}

impl SentenceScorer {
    pub fn new(embedder: SentenceEmbedder) -> Self {
        SentenceScorer {
            embedder,
            cache: Mutex::new(HashMap::new()),
            warned: AtomicBool::new(false),
        }
    }

    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self::new(SentenceEmbedder::load(dir)?))
    }

    pub fn embedder(&self) -> &SentenceEmbedder {
        &self.embedder
    }

    /// Cosine similarity of `pred` to each option. Texts not seen before are embedded in one
    /// batch.
    pub fn try_scores(&self, pred: &str, options: &[String]) -> Result<Vec<f64>> {
        let texts: Vec<&str> = std::iter::once(pred)
            .chain(options.iter().map(String::as_str))
            .collect();
        let mut known: HashMap<&str, Vec<f32>> = HashMap::new();
        if let Ok(cache) = self.cache.lock() {
            for t in &texts {
                if let Some(v) = cache.get(*t) {
                    known.insert(t, v.clone());
                }
            }
        }
        let mut todo: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| !known.contains_key(t))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        if !todo.is_empty() {
            let vs = self.embedder.embed_batch(&todo)?;
            let mut cache = self.cache.lock().ok();
            for (t, v) in todo.into_iter().zip(vs) {
                if let Some(c) = cache.as_mut() {
                    c.insert(t.to_string(), v.clone());
                }
                known.insert(t, v);
            }
        }
        let empty = Vec::new();
        let p = known.get(pred).unwrap_or(&empty);
        Ok(options
            .iter()
            .map(|o| cosine(p, known.get(o.as_str()).unwrap_or(&empty)))
            .collect())
    }
}

/// Cosine similarity in f64; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

impl OptionScorer for SentenceScorer {
    fn name(&self) -> &str {
        "all-MiniLM-L6-v2 sentence embeddings"
    }

    fn scores(&self, pred: &str, options: &[String]) -> Vec<f64> {
        match self.try_scores(pred, options) {
            Ok(s) => s,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    eprintln!("sentence embedding failed ({e}); bag-of-words similarity used for that answer");
                }
                LexicalScorer.scores(pred, options)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "prunescope-embed-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn write(&self, name: &str, text: &str) {
            let p = self.0.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const CONFIG: &str = r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 16,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12}"#;

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
        let e = load_err(&s.0.join("config.json"));
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn missing_files() {
        let s = Scratch::new("empty");
        let e = load_err(&s.0);
        assert!(e.contains("config.json is missing"), "{e}");
        s.write("config.json", CONFIG);
        let e = load_err(&s.0);
        assert!(e.contains("tokenizer.json is missing"), "{e}");
        s.write("tokenizer.json", "{}");
        let e = load_err(&s.0);
        assert!(e.contains("model.safetensors is missing"), "{e}");
    }

    #[test]
    fn corrupt_config() {
        let s = Scratch::new("corrupt");
        s.write("tokenizer.json", "{}");
        s.write("model.safetensors", "");
        s.write("config.json", "{ not json");
        let e = load_err(&s.0);
        assert!(e.contains("config.json: not valid JSON"), "{e}");
        s.write("config.json", r#"{"hidden_size": 4}"#);
        let e = load_err(&s.0);
        assert!(e.contains("not a BERT config"), "{e}");
        s.write("config.json", &CONFIG.replace("\"gelu\"", "\"relu\""));
        let e = load_err(&s.0);
        assert!(e.contains("hidden_act `relu` is not supported"), "{e}");
        s.write(
            "config.json",
            &CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"),
        );
        let e = load_err(&s.0);
        assert!(e.contains("multiple of num_attention_heads"), "{e}");
    }

    #[test]
    fn corrupt_tokenizer_weights_and_modules() {
        let s = Scratch::new("weights");
        s.write("config.json", CONFIG);
        s.write("tokenizer.json", "{}");
        s.write("model.safetensors", "");
        let e = load_err(&s.0);
        assert!(e.contains("tokenizer.json: not a tokenizer"), "{e}");
        s.write(
            "modules.json",
            r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Dense"}]"#,
        );
        let e = load_err(&s.0);
        assert!(e.contains("Dense` is not supported"), "{e}");
        s.write(
            "modules.json",
            r#"[{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#,
        );
        s.write(
            "1_Pooling/config.json",
            r#"{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}"#,
        );
        let e = load_err(&s.0);
        assert!(e.contains("exactly one of mean, cls or max"), "{e}");
    }

    /// A one-layer BERT with made-up weights, a word-level tokenizer and the
    /// sentence-transformers modules, in `s`. `skip` names a tensor left out.
    fn tiny_model(s: &Scratch, skip: Option<&str>) {
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
        candle_core::safetensors::save(&tensors, s.0.join("model.safetensors")).unwrap();
    }

    #[test]
    fn tiny_model_runs_and_never_panics() {
        let s = Scratch::new("tiny");
        tiny_model(&s, None);
        let m = SentenceEmbedder::load(&s.0).unwrap();
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
        let scorer = SentenceScorer::new(m);
        let s1 = scorer.scores("a b", &["a b".into(), "c".into()]);
        assert!((s1[0] - 1.0).abs() < 1e-6, "{s1:?}");
        // Falls back to bag-of-words instead of failing.
        assert_eq!(scorer.scores("far", &["far".into()]), vec![1.0]);
    }

    #[test]
    fn missing_or_misshapen_tensor() {
        let s = Scratch::new("missing-tensor");
        tiny_model(&s, Some("encoder.layer.0.output.dense.bias"));
        let e = load_err(&s.0);
        assert!(
            e.contains("lack tensor `encoder.layer.0.output.dense.bias`"),
            "{e}"
        );
        s.write(
            "config.json",
            &CONFIG.replace("\"intermediate_size\": 8", "\"intermediate_size\": 6"),
        );
        let e = load_err(&s.0);
        assert!(e.contains("has shape [8, 4], expected [6, 4]"), "{e}");
        s.write("model.safetensors", "not safetensors");
        s.write("config.json", CONFIG);
        let e = load_err(&s.0);
        assert!(
            e.contains("model.safetensors: not a valid safetensors file"),
            "{e}"
        );
    }

    #[test]
    fn cosine_edges() {
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[0.0, 3.0])).abs() < 1e-12);
    }
}
