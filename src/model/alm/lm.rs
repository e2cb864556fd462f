//! The Qwen2 / Qwen2.5 language model of Qwen2-Audio and Audio Flamingo 3: inputs as
//! embeddings, q/k/v with bias, grouped-query attention, rotate-half RoPE with f32 tables,
//! SiLU-gated MLP, RMSNorm, a key/value cache and explicit (contiguous) positions.

use candle_core::{DType, Device, Module, Tensor, D};

use super::config::TextConfig;
use super::weights::{AlmWeights, Part};
use crate::model::nn::{Linear, TensorSource};
use crate::model::{ModelError, Result};

/// Upper bound on the live attention logits per block of query rows (`heads x rows x keys`).
const BLOCK_ELEMENTS: usize = 1 << 26;

struct Layer {
    ln1: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct TextModel {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Vec<f32>,
    pub cfg: TextConfig,
    device: Device,
    dtype: DType,
}

/// The RoPE rotation of each row of a block of inputs: cos and sin of its position,
/// `(rows, head_dim / 2)` each, in the model's dtype.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// The rotations of the rows `idx` picks (FastV's kept rows keep their own positions).
    fn select(&self, idx: &Tensor) -> Result<Rope> {
        Ok(Rope {
            cos: self.cos.index_select(idx, 0)?,
            sin: self.sin.index_select(idx, 0)?,
        })
    }
}

/// Where a block of input rows stands: their rotations, and `start`, the cache entries before
/// them (their keys go after those; with FastV's dropped entries it is less than the first
/// row's position).
#[derive(Clone, Copy)]
struct Positions<'a> {
    rope: &'a Rope,
    start: usize,
}

/// Keys and values of every layer for the positions seen so far, `(kv_heads, len, head_dim)`.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    /// The position (RoPE) of the next token: `len`, unless FastV dropped entries.
    pos: usize,
    /// Collects the attention each forward's last position pays to the audio positions.
    pub watch: Option<Watch>,
}

/// The attention from each forward's last position (the one whose logits choose the next
/// token) to a range of positions (the audio placeholders), mean over heads and layers: one row
/// per forward.
#[derive(Debug, Clone)]
pub struct Watch {
    pub audio: std::ops::Range<usize>,
    /// `rows x audio.len()`, row-major.
    pub rows: Vec<f32>,
    current: Vec<f32>,
}

impl Watch {
    pub fn new(audio: std::ops::Range<usize>) -> Watch {
        Watch {
            current: vec![0.0; audio.len()],
            audio,
            rows: Vec::new(),
        }
    }

    /// Adds one layer's weights summed over heads, `keys[j]` for position `offset + j`.
    fn add(&mut self, keys: &[f32], offset: usize) {
        for (p, c) in self.audio.clone().zip(self.current.iter_mut()) {
            if let Some(x) = p.checked_sub(offset).and_then(|j| keys.get(j)) {
                *c += x;
            }
        }
    }

    /// Ends a forward: its row is the sums so far over `n` (heads x layers).
    fn end_row(&mut self, n: usize) {
        let n = n.max(1) as f32;
        self.rows.extend(self.current.iter().map(|x| x / n));
        self.current.iter_mut().for_each(|x| *x = 0.0);
    }
}

/// Per-head weights `(heads, keys)` summed over heads, as f32 on the CPU.
fn head_sum(probs: &Tensor) -> Result<Vec<f32>> {
    Ok(probs
        .to_dtype(DType::F32)?
        .sum(0)?
        .to_device(&Device::Cpu)?
        .to_vec1()?)
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl TextModel {
    pub fn load(w: &AlmWeights, c: &TextConfig) -> Result<TextModel> {
        let p = Part::Lm;
        let (h, hd) = (c.hidden, c.head_dim);
        let (qd, kvd) = (c.heads * hd, c.kv_heads * hd);
        let src = w.part(p);
        let layers = (0..c.layers)
            .map(|i| {
                let l = format!("layers.{i}");
                Ok(Layer {
                    ln1: w.get(p, &format!("{l}.input_layernorm.weight"), &[h])?,
                    q: src.linear(&format!("{l}.self_attn.q_proj"), h, qd, true)?,
                    k: src.linear(&format!("{l}.self_attn.k_proj"), h, kvd, true)?,
                    v: src.linear(&format!("{l}.self_attn.v_proj"), h, kvd, true)?,
                    o: src.linear(&format!("{l}.self_attn.o_proj"), qd, h, false)?,
                    ln2: w.get(p, &format!("{l}.post_attention_layernorm.weight"), &[h])?,
                    gate: src.linear(&format!("{l}.mlp.gate_proj"), h, c.intermediate, false)?,
                    up: src.linear(&format!("{l}.mlp.up_proj"), h, c.intermediate, false)?,
                    down: src.linear(&format!("{l}.mlp.down_proj"), c.intermediate, h, false)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embed = w.get(p, "embed_tokens.weight", &[c.vocab, h])?;
        let lm_head = if c.tie_embeddings && !w.has(Part::LmHead, "weight") {
            embed.clone()
        } else {
            w.get(Part::LmHead, "weight", &[c.vocab, h])?
        };
        // transformers: 1 / theta^(arange(0, dim, 2) / dim), in f32.
        let inv_freq = (0..hd / 2)
            .map(|i| 1.0 / (c.rope_theta as f32).powf((2 * i) as f32 / hd as f32))
            .collect();
        Ok(TextModel {
            embed,
            layers,
            norm: w.get(p, "norm.weight", &[h])?,
            lm_head,
            inv_freq,
            cfg: c.clone(),
            device: w.device.clone(),
            dtype: w.dtype,
        })
    }

    /// The dtype of the weights, activations and key/value cache.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.layers.len()).map(|_| None).collect(),
            len: 0,
            pos: 0,
            watch: None,
        }
    }

    /// Embeddings of token ids, `(len, hidden)`.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, &self.device)?;
        Ok(self.embed.index_select(&ids, 0)?)
    }

    /// Runs `x` (`(len, hidden)` input embeddings) at positions `cache.len()..`, extends the
    /// cache, and returns the last position's logits (f32, on the CPU).
    pub fn forward(&self, x: &Tensor, cache: &mut KvCache) -> Result<Vec<f32>> {
        let (len, _) = x.dims2()?;
        let rope = self.rope_tables(cache.pos, len)?;
        let at = Positions {
            rope: &rope,
            start: cache.len,
        };
        let x = x.to_dtype(self.dtype)?;
        let KvCache { layers, watch, .. } = cache;
        let watching = watch.is_some();
        let mut sink = |l: Vec<f32>| {
            if let Some(w) = watch.as_mut() {
                w.add(&l, 0);
            }
        };
        let x = self.run_layers(x, 0, layers, at, watching, &mut sink)?;
        self.end_prefill(cache, len, len, &x)
    }

    /// Runs layers `first..` (their caches are `slots`, as many as run) on `x`, whose rows stand
    /// `at`; with `watching`, `last_row` receives each layer's last-row attention weights
    /// summed over heads.
    fn run_layers(
        &self,
        mut x: Tensor,
        first: usize,
        slots: &mut [Option<(Tensor, Tensor)>],
        at: Positions<'_>,
        watching: bool,
        last_row: &mut dyn FnMut(Vec<f32>),
    ) -> Result<Tensor> {
        for (layer, slot) in self.layers[first..].iter().zip(slots[first..].iter_mut()) {
            let mut last = None;
            x = self.block(layer, &x, |h| {
                let (o, l) = self.attention(layer, h, at, slot, watching)?;
                last = l;
                Ok(o)
            })?;
            if let Some(l) = last {
                last_row(l);
            }
        }
        Ok(x)
    }

    /// The end of a prefill whose output `x` added `rows` cache entries over `positions`
    /// positions (fewer entries when FastV dropped some): the watch's row closed, and the last
    /// row's logits (f32, on the CPU).
    fn end_prefill(
        &self,
        cache: &mut KvCache,
        rows: usize,
        positions: usize,
        x: &Tensor,
    ) -> Result<Vec<f32>> {
        if let Some(w) = cache.watch.as_mut() {
            w.end_row(self.cfg.heads * self.layers.len());
        }
        cache.len += rows;
        cache.pos += positions;
        let n = x.dim(0)?;
        let last = rms_norm(&x.narrow(0, n - 1, 1)?, &self.norm, self.cfg.rms_eps)?;
        let logits = last.matmul(&self.lm_head.t()?)?;
        Ok(logits
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec1()?)
    }

    /// One decoding step for several sequences at once: row b of `x` (`(B, hidden)`) is the
    /// next input of the sequence whose cache is `caches[b]`. Every weight product is shared
    /// by the batch (one pass over the weights per step); attention runs per sequence over its
    /// own cache. Returns each row's logits (f32, on the CPU).
    pub fn forward_step(&self, x: &Tensor, caches: &mut [KvCache]) -> Result<Vec<Vec<f32>>> {
        let (b, _) = x.dims2()?;
        let positions: Vec<usize> = caches.iter().map(|c| c.pos).collect();
        let rope = self.rope_at(&positions)?;
        let mut x = x.to_dtype(self.dtype)?;
        for (li, layer) in self.layers.iter().enumerate() {
            x = self.block(layer, &x, |h| {
                self.step_attention(layer, li, h, &rope, caches)
            })?;
        }
        for c in caches.iter_mut() {
            c.len += 1;
            c.pos += 1;
            if let Some(w) = c.watch.as_mut() {
                w.end_row(self.cfg.heads * self.layers.len());
            }
        }
        let last = rms_norm(&x, &self.norm, self.cfg.rms_eps)?;
        let logits = last.matmul(&self.lm_head.t()?)?;
        let rows: Vec<Vec<f32>> = logits
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2()?;
        debug_assert_eq!(rows.len(), b);
        Ok(rows)
    }

    /// FastV's prefill (docs/SPEC.md section 4) of `x` (`(len, hidden)`) into an empty cache:
    /// layers `0..layer` run on every position; layer `layer`'s attention from the last position
    /// (mean over heads) ranks the `audio` positions; only the `keep` best stay, in the caches
    /// of the first layers and in every later layer, each at its own position. Returns the last
    /// position's logits and the kept audio tokens (indices into `audio`, ascending).
    pub fn forward_fastv(
        &self,
        x: &Tensor,
        cache: &mut KvCache,
        audio: std::ops::Range<usize>,
        keep: usize,
        layer: usize,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        let (len, _) = x.dims2()?;
        if layer >= self.layers.len() || !cache.is_empty() || audio.end > len {
            return Err(ModelError::Config {
                path: Default::default(),
                msg: format!(
                    "FastV layer {layer}: the language model has {} layers (0 to {})",
                    self.layers.len(),
                    self.layers.len().saturating_sub(1)
                ),
            });
        }
        let rope = self.rope_tables(0, len)?;
        let at = Positions {
            rope: &rope,
            start: 0,
        };
        // The first layers' last-row weights (every position), for a watch once the ranking
        // says which positions stay.
        let mut early = Vec::new();
        let watching = cache.watch.is_some();
        let x = x.to_dtype(self.dtype)?;
        let slots = &mut cache.layers[..layer];
        let mut x = self.run_layers(x, 0, slots, at, watching, &mut |l| early.push(l))?;
        // Layer `layer`'s attention from the last position, mean over heads.
        let mean = self.received(layer, &x, &rope, len - 1..len, false)?;
        let kept = crate::model::top_k(&mean[audio.clone()], keep.min(audio.len()));
        let rows: Vec<u32> = (0..audio.start)
            .chain(kept.iter().map(|&a| audio.start + a))
            .chain(audio.end..len)
            .map(|r| r as u32)
            .collect();
        let idx = Tensor::new(rows.as_slice(), &self.device)?;
        x = x.index_select(&idx, 0)?;
        let rope = rope.select(&idx)?;
        let at = Positions {
            rope: &rope,
            start: 0,
        };
        for (k, v) in cache.layers[..layer].iter_mut().flatten() {
            *k = k.index_select(&idx, 1)?;
            *v = v.index_select(&idx, 1)?;
        }
        let kept_audio = audio.start..audio.start + kept.len();
        if let Some(w) = cache.watch.as_mut() {
            *w = Watch::new(kept_audio);
            for full in &early {
                let gathered: Vec<f32> = rows.iter().map(|&r| full[r as usize]).collect();
                w.add(&gathered, 0);
            }
        }
        let KvCache { layers, watch, .. } = &mut *cache;
        let watching = watch.is_some();
        let mut sink = |l: Vec<f32>| {
            if let Some(w) = watch.as_mut() {
                w.add(&l, 0);
            }
        };
        let x = self.run_layers(x, layer, layers, at, watching, &mut sink)?;
        let logits = self.end_prefill(cache, rows.len(), len, &x)?;
        Ok((logits, kept))
    }

    /// The prompt-aware scores (docs/SPEC.md section 4) of the `audio` positions of `x`: the
    /// attention they receive in the first layer from every position after them, summed over
    /// those rows, mean over heads.
    pub fn prompt_attention(&self, x: &Tensor, audio: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let (len, _) = x.dims2()?;
        if len <= audio.end || audio.is_empty() {
            return Ok(vec![0.0; audio.len()]);
        }
        let rope = self.rope_tables(0, len)?;
        let x = x.to_dtype(self.dtype)?;
        let received = self.received(0, &x, &rope, audio.end..len, false)?;
        Ok(received[audio].to_vec())
    }

    /// SpeechPrune's attention estimate (docs/SPEC.md section 4) of the `audio` positions of
    /// `x`: [`Lm::prompt_attention`] with the first layer's rotated queries and keys binarized
    /// to their signs (each entry +1, -1 or 0) before the scaled dot product and the softmax.
    pub fn binarized_prompt_attention(
        &self,
        x: &Tensor,
        audio: std::ops::Range<usize>,
    ) -> Result<Vec<f32>> {
        let (len, _) = x.dims2()?;
        if len <= audio.end || audio.is_empty() {
            return Ok(vec![0.0; audio.len()]);
        }
        let rope = self.rope_tables(0, len)?;
        let x = x.to_dtype(self.dtype)?;
        let received = self.received(0, &x, &rope, audio.end..len, true)?;
        Ok(received[audio].to_vec())
    }

    /// The attention every key receives in layer `layer` (its input `x`, every position) from
    /// the query rows `rows` (causal), summed over those rows, mean over heads, in f32; with
    /// `binarize`, from the signs of the rotated queries and keys.
    fn received(
        &self,
        layer: usize,
        x: &Tensor,
        rope: &Rope,
        rows: std::ops::Range<usize>,
        binarize: bool,
    ) -> Result<Vec<f32>> {
        let (len, _) = x.dims2()?;
        let l = &self.layers[layer];
        let h = rms_norm(x, &l.ln1, self.cfg.rms_eps)?;
        let (q, k, _) = self.qkv(l, &h, rope)?;
        let (q, k) = if binarize {
            (q.sign()?, k.sign()?)
        } else {
            (q, k)
        };
        let (heads, kvh, hd) = (self.cfg.heads, self.cfg.kv_heads, self.cfg.head_dim);
        let n = rows.len();
        let q = q
            .narrow(1, rows.start, n)?
            .contiguous()?
            .reshape((kvh, heads / kvh * n, hd))?;
        let logits = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.to_dtype(DType::F32)?;
        let window = self.cfg.sliding_window.unwrap_or(usize::MAX);
        let logits = match causal_mask(rows.start, n, len, window, &self.device)? {
            Some(m) => logits
                .reshape((kvh, heads / kvh, n, len))?
                .broadcast_add(&m)?
                .reshape((kvh, heads / kvh * n, len))?,
            None => logits,
        };
        let probs = candle_nn::ops::softmax_last_dim(&logits)?
            .reshape((heads, n, len))?
            .sum(1)?;
        Ok(head_sum(&probs)?.iter().map(|x| x / heads as f32).collect())
    }

    fn step_attention(
        &self,
        layer: &Layer,
        li: usize,
        h: &Tensor,
        rope: &Rope,
        caches: &mut [KvCache],
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, _) = h.dims2()?;
        let (heads, kvh, hd) = (c.heads, c.kv_heads, c.head_dim);
        let rep = heads / kvh;
        // Sequences stand where positions stand in a prefill, so row b takes the rotation of
        // sequence b's own position.
        let (q, k, v) = self.qkv(layer, h, rope)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut outs = Vec::with_capacity(b);
        for (i, cache) in caches.iter_mut().enumerate() {
            let kb = k.narrow(1, i, 1)?;
            let vb = v.narrow(1, i, 1)?;
            let (k_all, v_all) = match cache.layers[li].take() {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &kb], 1)?, Tensor::cat(&[&pv, &vb], 1)?),
                None => (kb.contiguous()?, vb.contiguous()?),
            };
            cache.layers[li] = Some((k_all.clone(), v_all.clone()));
            let keys = k_all.dim(1)?;
            let (k_use, v_use) = match c.sliding_window {
                Some(w) if w < keys => {
                    (k_all.narrow(1, keys - w, w)?, v_all.narrow(1, keys - w, w)?)
                }
                _ => (k_all, v_all),
            };
            let qb = q.narrow(1, i, 1)?.contiguous()?.reshape((kvh, rep, hd))?;
            let logits = (qb.matmul(&k_use.t()?)? * scale)?.to_dtype(DType::F32)?;
            let probs = candle_nn::ops::softmax_last_dim(&logits)?;
            if let Some(w) = cache.watch.as_mut() {
                let used = k_use.dim(1)?;
                w.add(&head_sum(&probs.reshape((heads, used))?)?, keys - used);
            }
            let probs = probs.to_dtype(self.dtype)?;
            outs.push(
                probs
                    .matmul(&v_use.contiguous()?)?
                    .reshape((1, heads * hd))?,
            );
        }
        Ok(Tensor::cat(&outs, 0)?)
    }

    /// One decoder layer around an attention function of the normed input: pre-norm attention
    /// and output projection, then the SiLU-gated MLP, each with its residual.
    fn block(
        &self,
        layer: &Layer,
        x: &Tensor,
        attention: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let h = rms_norm(x, &layer.ln1, self.cfg.rms_eps)?;
        let x = x.add(&layer.o.forward(&attention(&h)?)?)?;
        let h = rms_norm(&x, &layer.ln2, self.cfg.rms_eps)?;
        let m = layer
            .gate
            .forward(&h)?
            .silu()?
            .mul(&layer.up.forward(&h)?)?;
        Ok(x.add(&layer.down.forward(&m)?)?)
    }

    /// Queries, keys and values of `h` (`(rows, hidden)`) with RoPE applied (rows take the
    /// rotations of `rope`'s rows): `(heads, rows, hd)`, `(kv_heads, rows, hd)` twice.
    fn qkv(&self, layer: &Layer, h: &Tensor, rope: &Rope) -> Result<(Tensor, Tensor, Tensor)> {
        let (rows, _) = h.dims2()?;
        let hd = self.cfg.head_dim;
        let shape = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((rows, n, hd))?.transpose(0, 1)?.contiguous()?)
        };
        let q = shape(layer.q.forward(h)?, self.cfg.heads)?;
        let k = shape(layer.k.forward(h)?, self.cfg.kv_heads)?;
        let v = shape(layer.v.forward(h)?, self.cfg.kv_heads)?;
        let (cos, sin) = (&rope.cos, &rope.sin);
        let q = candle_nn::rotary_emb::rope(&q.unsqueeze(0)?, cos, sin)?.squeeze(0)?;
        let k = candle_nn::rotary_emb::rope(&k.unsqueeze(0)?, cos, sin)?.squeeze(0)?;
        Ok((q, k, v))
    }

    /// cos and sin of positions `start..start + len`, `(len, head_dim / 2)`, computed in f32 as
    /// transformers does, then cast to the model's dtype.
    fn rope_tables(&self, start: usize, len: usize) -> Result<Rope> {
        let positions: Vec<usize> = (start..start + len).collect();
        self.rope_at(&positions)
    }

    /// cos and sin of the given positions, one row each.
    fn rope_at(&self, positions: &[usize]) -> Result<Rope> {
        let half = self.inv_freq.len();
        let len = positions.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for &p in positions {
            for &f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let to = |v: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (len, half), &Device::Cpu)?
                .to_device(&self.device)?
                .to_dtype(self.dtype)?)
        };
        Ok(Rope {
            cos: to(cos)?,
            sin: to(sin)?,
        })
    }

    /// Causal attention of `h`'s rows, which stand `at` (their keys go after the `at.start`
    /// entries of `slot`); with `last`, also the last row's weights summed over heads (for a
    /// [`Watch`]).
    fn attention(
        &self,
        layer: &Layer,
        h: &Tensor,
        at: Positions<'_>,
        slot: &mut Option<(Tensor, Tensor)>,
        last: bool,
    ) -> Result<(Tensor, Option<Vec<f32>>)> {
        let c = &self.cfg;
        let (len, _) = h.dims2()?;
        let (heads, kvh, hd) = (c.heads, c.kv_heads, c.head_dim);
        let rep = heads / kvh;
        let (q, k, v) = self.qkv(layer, h, at.rope)?;
        let start = at.start;
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 1)?, Tensor::cat(&[&pv, &v], 1)?),
            None => (k, v),
        };
        *slot = Some((k.clone(), v.clone()));
        let keys = start + len;
        let window = c.sliding_window.unwrap_or(usize::MAX);
        let kt = k.t()?;
        let scale = 1.0 / (hd as f64).sqrt();
        let rows_per_block = (BLOCK_ELEMENTS / (heads * keys).max(1)).clamp(1, len);
        let mut outs = Vec::with_capacity(len.div_ceil(rows_per_block));
        let mut last_row = None;
        let mut r0 = 0;
        while r0 < len {
            let rows = rows_per_block.min(len - r0);
            // Heads that share a key/value head are grouped: (kvh, rep * rows, hd).
            let qb = q.narrow(1, r0, rows)?.reshape((kvh, rep * rows, hd))?;
            let logits = (qb.matmul(&kt)? * scale)?.to_dtype(DType::F32)?;
            let logits = match causal_mask(start + r0, rows, keys, window, &self.device)? {
                Some(m) => logits
                    .reshape((kvh, rep, rows, keys))?
                    .broadcast_add(&m)?
                    .reshape((kvh, rep * rows, keys))?,
                None => logits,
            };
            let probs = candle_nn::ops::softmax_last_dim(&logits)?;
            if last && r0 + rows == len {
                let per_head = probs.reshape((heads, rows, keys))?.narrow(1, rows - 1, 1)?;
                last_row = Some(head_sum(&per_head.squeeze(1)?)?);
            }
            let probs = probs.to_dtype(self.dtype)?;
            let o = probs
                .matmul(&v)?
                .reshape((heads, rows, hd))?
                .transpose(0, 1)?
                .reshape((rows, heads * hd))?;
            outs.push(o);
            r0 += rows;
        }
        Ok((Tensor::cat(&outs, 0)?, last_row))
    }
}

/// Additive mask for query positions `first..first + rows` over `keys` keys, built on `device`
/// (no host work or transfer per layer): key j is visible from position p when
/// `p - window < j <= p`. None when every key is visible.
fn causal_mask(
    first: usize,
    rows: usize,
    keys: usize,
    window: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    if rows == 1 && first + 1 == keys && first < window {
        return Ok(None);
    }
    // Positions are exact in f32 far beyond any context length.
    let p = Tensor::arange(first as f32, (first + rows) as f32, device)?.reshape((rows, 1))?;
    let j = Tensor::arange(0f32, keys as f32, device)?.reshape((1, keys))?;
    let mut hidden = j.broadcast_gt(&p)?;
    if window < keys {
        let too_old = j.broadcast_le(&(p - window as f64)?)?;
        hidden = hidden.maximum(&too_old)?;
    }
    let zeros = Tensor::zeros((rows, keys), DType::F32, device)?;
    let minus_inf = Tensor::full(f32::NEG_INFINITY, (rows, keys), device)?;
    Ok(Some(hidden.where_cond(&minus_inf, &zeros)?))
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xf.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
    Ok(y.broadcast_mul(w)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_mask_rows() {
        let mask = |first, rows, keys, window| -> Option<Vec<f32>> {
            causal_mask(first, rows, keys, window, &Device::Cpu)
                .unwrap()
                .map(|m| m.flatten_all().unwrap().to_vec1().unwrap())
        };
        let inf = f32::NEG_INFINITY;
        let m = mask(0, 3, 3, usize::MAX).unwrap();
        assert_eq!(m, vec![0.0, inf, inf, 0.0, 0.0, inf, 0.0, 0.0, 0.0]);
        // One new token after a prefix sees everything.
        assert!(mask(5, 1, 6, usize::MAX).is_none());
        // A block of rows in the middle of a prefill.
        assert_eq!(mask(1, 1, 3, usize::MAX).unwrap(), vec![0.0, 0.0, inf]);
        // Sliding window of 2: position 3 sees keys 2 and 3.
        assert_eq!(mask(3, 1, 4, 2).unwrap(), vec![inf, inf, 0.0, 0.0]);
        // Rows 1..3 of a prefill of 3 with a window of 2.
        assert_eq!(
            mask(1, 2, 3, 2).unwrap(),
            vec![0.0, 0.0, inf, inf, 0.0, 0.0]
        );
    }
}
