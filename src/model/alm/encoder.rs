//! The Whisper-large-v3-shaped audio encoder of Qwen2-Audio and Audio Flamingo 3 (ALM.md): conv
//! front end with erf GELU, loaded positions, pre-LN layers with a key mask for padded frames,
//! average pooling by pairs, then the final layer norm. It also returns what the paper scores
//! tokens by (SPEC.md section 2): the attention each post-conv token receives in the last layer
//! from the valid query rows, averaged over heads, pooled by pairs; and the head-averaged
//! last-layer keys, pooled the same way.
//!
//! In f32 on the CPU it runs on [`CpuEncoder`], Whisper's own encoder path (our buffers and
//! fused kernels). Elsewhere it is written with device- and dtype-generic candle ops: the same
//! code runs in f32, bf16 or f16 on the CPU or CUDA; layer norms (candle's kernel), softmax and
//! the received-attention sums run in f32 block by block of query rows whatever the dtype.

use candle_core::{DType, Device, Module, Tensor};

use super::config::EncoderConfig;
use super::weights::{AlmWeights, Part};
use crate::model::encoder_cpu::{CpuEncoder, Dims, Parts};
use crate::model::nn::{EncoderLayer, LayerNorm, TensorSource};
use crate::model::scores::{self, Attention, Pooling, Received};
use crate::model::{DroppedWindow, EncodedWindow, EncoderDrop, Result};
use crate::scores::Layers;

/// Upper bound on the live attention logits per block (`heads x rows x keys` elements).
const BLOCK_ELEMENTS: usize = 1 << 24;

pub struct AudioEncoder {
    backend: Backend,
    pub cfg: EncoderConfig,
}

enum Backend {
    /// f32 on the CPU.
    Cpu(Box<CpuEncoder>),
    /// Any device and dtype, with candle's ops.
    Candle(CandleEncoder),
}

struct CandleEncoder {
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: LayerNorm,
    device: Device,
    dtype: DType,
}

/// Valid post-conv positions for `frames` valid mel frames: `(L - 1) // 2 + 1`.
pub fn conv_tokens(frames: usize) -> usize {
    if frames == 0 {
        0
    } else {
        (frames - 1) / 2 + 1
    }
}

/// Valid pooled tokens for `frames` valid mel frames: `((L - 1) // 2 + 1 - 2) // 2 + 1` with
/// floor division (0 when fewer than 2 post-conv positions).
pub fn pooled_tokens(frames: usize) -> usize {
    let c = conv_tokens(frames);
    if c < 2 {
        0
    } else {
        (c - 2) / 2 + 1
    }
}

impl AudioEncoder {
    pub fn load(w: &AlmWeights, c: &EncoderConfig) -> Result<AudioEncoder> {
        let d = c.d_model;
        let p = Part::Encoder;
        let layer = |i: usize| EncoderLayer::load(&w.part(p), &format!("layers.{i}"), d, c.ffn);
        let backend = if w.device.is_cpu() && w.dtype == DType::F32 {
            Backend::Cpu(Box::new(CpuEncoder::new(
                Parts {
                    conv1: (
                        &w.get(p, "conv1.weight", &[d, c.n_mels, 3])?,
                        &w.get(p, "conv1.bias", &[d])?,
                    ),
                    conv2: (
                        &w.get(p, "conv2.weight", &[d, d, 3])?,
                        &w.get(p, "conv2.bias", &[d])?,
                    ),
                    positions: &w.get(p, "embed_positions.weight", &[c.max_source_positions, d])?,
                    layers: Box::new((0..c.layers).map(layer)),
                    ln_post: &w.part(p).layer_norm("layer_norm", d)?,
                },
                Dims {
                    d,
                    ffn: c.ffn,
                    heads: c.heads,
                    n_mels: c.n_mels,
                    n_ctx: c.max_source_positions,
                },
            )?))
        } else {
            Backend::Candle(CandleEncoder {
                conv1_w: w.get(p, "conv1.weight", &[d, c.n_mels, 3])?,
                conv1_b: w.get(p, "conv1.bias", &[d])?.reshape((1, d, 1))?,
                conv2_w: w.get(p, "conv2.weight", &[d, d, 3])?,
                conv2_b: w.get(p, "conv2.bias", &[d])?.reshape((1, d, 1))?,
                positions: w.get(p, "embed_positions.weight", &[c.max_source_positions, d])?,
                layers: (0..c.layers).map(layer).collect::<Result<Vec<_>>>()?,
                ln_post: w.part(p).layer_norm("layer_norm", d)?,
                device: w.device.clone(),
                dtype: w.dtype,
            })
        };
        Ok(AudioEncoder {
            backend,
            cfg: c.clone(),
        })
    }

    pub fn frames(&self) -> usize {
        2 * self.cfg.max_source_positions
    }

    /// Pooled tokens per window.
    pub fn tokens_per_window(&self) -> usize {
        self.cfg.max_source_positions / 2
    }

    /// `mel` is `[n_mels][frames()]` row-major with `valid_frames` frames of audio. Returns the
    /// pooled hidden states of the whole window (`tokens_per_window x d`, f32 on the CPU) and
    /// the scores and keys of its valid pooled tokens.
    pub fn forward(
        &self,
        mel: &[f32],
        valid_frames: usize,
        layers: Layers,
    ) -> Result<EncodedWindow> {
        let (d, t, heads) = (
            self.cfg.d_model,
            self.cfg.max_source_positions,
            self.cfg.heads,
        );
        let hd = d / heads;
        let valid_frames = valid_frames.min(self.frames());
        let lc = conv_tokens(valid_frames);
        let n_valid = pooled_tokens(valid_frames);
        let (hidden, received, keys) = match &self.backend {
            Backend::Cpu(e) => {
                // Padded keys are left out of every layer's softmax; padded query rows are
                // still computed.
                let out = e.forward(mel, lc, lc, layers);
                // AvgPool1d(2, 2) over time, then the final norm.
                let mut pooled: Vec<f32> = out
                    .x
                    .chunks_exact(2 * d)
                    .flat_map(|pair| (0..d).map(move |c| (pair[c] + pair[d + c]) / 2.0))
                    .collect();
                e.final_norm(&mut pooled);
                let hidden = Tensor::from_vec(pooled, (t / 2, d), &Device::Cpu)?;
                (hidden, out.received, out.keys)
            }
            Backend::Candle(e) => e.forward(&self.cfg, mel, lc, n_valid, layers)?,
        };
        let layers = received
            .iter()
            .map(|(i, r)| r.layer_scores(*i, heads, n_valid, Pooling::Pairs))
            .collect();
        // The last layer's keys, mean over heads, then over each pair.
        let keys = scores::head_mean_keys(&keys, d, heads, n_valid, Pooling::Pairs);
        Ok(EncodedWindow {
            hidden,
            n_valid,
            keys,
            key_dim: hd,
            layers,
        })
    }
}

impl AudioEncoder {
    /// `encoderdrop` on one window (docs/SPEC.md section 4; `mel` and `valid_frames` as in
    /// [`AudioEncoder::forward`]): every post-conv position through the first `drop.layer`
    /// layers (padded keys masked); that last layer's received attention, pooled by pairs as
    /// the scores are, ranks the valid pooled tokens; for each budget, the two positions of
    /// each of its best tokens (time order) through the remaining layers, then the pooling and
    /// the final norm: `(K, d)`, f32 on the CPU. No silence context (`drop.tail` is ignored).
    pub fn forward_dropping(
        &self,
        mel: &[f32],
        valid_frames: usize,
        drop: &EncoderDrop,
    ) -> Result<Vec<DroppedWindow>> {
        let (d, heads) = (self.cfg.d_model, self.cfg.heads);
        let valid_frames = valid_frames.min(self.frames());
        let lc = conv_tokens(valid_frames);
        let n_valid = pooled_tokens(valid_frames);
        let e = match &self.backend {
            Backend::Cpu(e) => e,
            Backend::Candle(e) => {
                return e.forward_dropping(&self.cfg, mel, lc, n_valid, drop);
            }
        };
        let t0 = std::time::Instant::now();
        let layer = drop.layer.clamp(1, e.layers().saturating_sub(1).max(1));
        let part = e.forward_until(mel, lc, lc, layer);
        let scores = part
            .received
            .layer_scores(part.layer, heads, n_valid, Pooling::Pairs)
            .mean;
        let shared_ms = t0.elapsed().as_secs_f64() * 1e3;
        drop.keeps
            .iter()
            .map(|&k| {
                let t1 = std::time::Instant::now();
                let kept = crate::model::top_k(&scores, k.min(n_valid));
                let rows: Vec<f32> = kept
                    .iter()
                    .flat_map(|&p| &part.x[2 * p * d..(2 * p + 2) * d])
                    .copied()
                    .collect();
                let out = e.forward_from(&rows, layer);
                let mut pooled: Vec<f32> = out
                    .chunks_exact(2 * d)
                    .flat_map(|pair| (0..d).map(move |c| (pair[c] + pair[d + c]) / 2.0))
                    .collect();
                e.final_norm(&mut pooled);
                Ok(DroppedWindow {
                    hidden: Tensor::from_vec(pooled, (kept.len(), d), &Device::Cpu)?,
                    kept,
                    tail: 0,
                    encode_ms: shared_ms + t1.elapsed().as_secs_f64() * 1e3,
                })
            })
            .collect()
    }
}

impl CandleEncoder {
    /// The pooled, normed hidden states (f32, CPU), the received attention of the layers asked
    /// for, and the last layer's keys of the first `2 n_valid` positions (`2 n_valid x d`, f32).
    #[allow(clippy::type_complexity)]
    fn forward(
        &self,
        cfg: &EncoderConfig,
        mel: &[f32],
        lc: usize,
        n_valid: usize,
        layers: Layers,
    ) -> Result<(Tensor, Vec<(usize, Received)>, Vec<f32>)> {
        let (t, heads) = (cfg.max_source_positions, cfg.heads);
        let mut x = self.front_end(cfg, mel)?;
        let mask = self.key_mask(t, lc)?;
        let how = Attention {
            mask: Some(&mask),
            block_rows: BLOCK_ELEMENTS / (heads * t).max(1),
        };
        let last = self.layers.len().saturating_sub(1);
        let mut per_layer = Vec::new();
        let mut last_keys = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let is_last = i == last;
            let mut received = (is_last || layers == Layers::All).then(|| Received::new(lc));
            let (next, k_flat) = self.layer(layer, &x, heads, &how, received.as_mut())?;
            x = next;
            if let Some(r) = received {
                per_layer.push((i, r));
            }
            if is_last {
                last_keys = Some(k_flat);
            }
        }
        let hidden = self.pool_and_norm(&x)?;
        let keys: Vec<f32> = match last_keys {
            Some(k) if n_valid > 0 => k
                .narrow(0, 0, 2 * n_valid)?
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1()?,
            _ => Vec::new(),
        };
        Ok((hidden, per_layer, keys))
    }
}

impl CandleEncoder {
    /// The convolutions and the positions: `(T, d)` in the model's dtype and device.
    fn front_end(&self, cfg: &EncoderConfig, mel: &[f32]) -> Result<Tensor> {
        let t = cfg.max_source_positions;
        let x = Tensor::from_slice(mel, (1, cfg.n_mels, 2 * t), &Device::Cpu)?
            .to_device(&self.device)?
            .to_dtype(self.dtype)?;
        let x = x
            .conv1d(&self.conv1_w, 1, 1, 1, 1)?
            .broadcast_add(&self.conv1_b)?
            .gelu_erf()?;
        let x = x
            .conv1d(&self.conv2_w, 1, 2, 1, 1)?
            .broadcast_add(&self.conv2_b)?
            .gelu_erf()?;
        Ok(x.squeeze(0)?.t()?.contiguous()?.add(&self.positions)?)
    }

    /// Padded keys get -inf in every layer (padded query rows are still computed).
    fn key_mask(&self, t: usize, lc: usize) -> Result<Tensor> {
        let mask: Vec<f32> = (0..t)
            .map(|j| if j < lc { 0.0 } else { f32::NEG_INFINITY })
            .collect();
        Ok(Tensor::from_vec(mask, (1, 1, t), &Device::Cpu)?.to_device(&self.device)?)
    }

    /// One pre-LN layer over `x` (`(rows, d)`); returns its output and its keys (`(rows, d)`),
    /// and adds its received attention to `received`.
    fn layer(
        &self,
        layer: &EncoderLayer,
        x: &Tensor,
        heads: usize,
        how: &Attention,
        received: Option<&mut Received>,
    ) -> Result<(Tensor, Tensor)> {
        let (rows, d) = x.dims2()?;
        let scale = 1.0 / ((d / heads) as f64).sqrt();
        let h = layer.attn_ln.forward(x)?;
        let q = split_heads(&(layer.q.forward(&h)? * scale)?, heads)?;
        let k_flat = layer.k.forward(&h)?;
        let k = split_heads(&k_flat, heads)?;
        let v = split_heads(&layer.v.forward(&h)?, heads)?;
        let a = scores::attention(&q, &k, &v, how, received)?;
        let a = a.transpose(0, 1)?.reshape((rows, d))?;
        let x = x.add(&layer.out.forward(&a)?)?;
        let m = layer.mlp_ln.forward(&x)?;
        let m = layer.fc2.forward(&layer.fc1.forward(&m)?.gelu_erf()?)?;
        Ok((x.add(&m)?, k_flat))
    }

    /// AvgPool1d(2, 2) over time, then the final norm: f32 on the CPU.
    fn pool_and_norm(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, d) = x.dims2()?;
        let pooled = x.reshape((rows / 2, 2, d))?.mean(1)?;
        let hidden = self.ln_post.forward(&pooled)?.to_dtype(DType::F32)?;
        Ok(hidden.to_device(&Device::Cpu)?)
    }

    /// `encoderdrop` ([`AudioEncoder::forward_dropping`]) on candle's ops.
    fn forward_dropping(
        &self,
        cfg: &EncoderConfig,
        mel: &[f32],
        lc: usize,
        n_valid: usize,
        drop: &EncoderDrop,
    ) -> Result<Vec<DroppedWindow>> {
        let t0 = std::time::Instant::now();
        let (t, heads) = (cfg.max_source_positions, cfg.heads);
        let layer = drop
            .layer
            .clamp(1, self.layers.len().saturating_sub(1).max(1));
        let mut x = self.front_end(cfg, mel)?;
        let mask = self.key_mask(t, lc)?;
        let how = Attention {
            mask: Some(&mask),
            block_rows: BLOCK_ELEMENTS / (heads * t).max(1),
        };
        let mut received = Received::new(lc);
        for (i, l) in self.layers[..layer].iter().enumerate() {
            let collect = i + 1 == layer;
            x = self
                .layer(l, &x, heads, &how, collect.then_some(&mut received))?
                .0;
        }
        let scores = received
            .layer_scores(layer - 1, heads, n_valid, Pooling::Pairs)
            .mean;
        let shared_ms = t0.elapsed().as_secs_f64() * 1e3;
        drop.keeps
            .iter()
            .map(|&k| {
                let t1 = std::time::Instant::now();
                let kept = crate::model::top_k(&scores, k.min(n_valid));
                let frames: Vec<u32> = kept
                    .iter()
                    .flat_map(|&p| [2 * p as u32, 2 * p as u32 + 1])
                    .collect();
                // A window that keeps nothing (too short for one pooled token) has no rows.
                if frames.is_empty() {
                    let d = cfg.d_model;
                    return Ok(DroppedWindow {
                        hidden: Tensor::zeros((0, d), DType::F32, &Device::Cpu)?,
                        kept,
                        tail: 0,
                        encode_ms: shared_ms,
                    });
                }
                let idx = Tensor::new(frames.as_slice(), &self.device)?;
                let mut y = x.index_select(&idx, 0)?;
                let rows = frames.len();
                // Every kept frame carries audio: no mask.
                let open = Attention {
                    mask: None,
                    block_rows: BLOCK_ELEMENTS / (heads * rows).max(1),
                };
                for l in &self.layers[layer..] {
                    y = self.layer(l, &y, heads, &open, None)?.0;
                }
                Ok(DroppedWindow {
                    hidden: self.pool_and_norm(&y)?,
                    kept,
                    tail: 0,
                    encode_ms: shared_ms + t1.elapsed().as_secs_f64() * 1e3,
                })
            })
            .collect()
    }
}

/// `(T, d)` -> `(heads, T, head_dim)`, contiguous.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (t, d) = x.dims2()?;
    Ok(x.reshape((t, heads, d / heads))?
        .transpose(0, 1)?
        .contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_match_the_processor() {
        // (L - 1) // 2 + 1, then (x - 2) // 2 + 1 with Python floor division.
        assert_eq!(conv_tokens(3000), 1500);
        assert_eq!(pooled_tokens(3000), 750);
        assert_eq!(pooled_tokens(130), 32);
        assert_eq!(pooled_tokens(110), 27);
        assert_eq!(
            (pooled_tokens(0), pooled_tokens(1), pooled_tokens(2)),
            (0, 0, 0)
        );
        assert_eq!(pooled_tokens(3), 1);
        for l in 1..4000usize {
            let py = ((l as i64 - 1).div_euclid(2) + 1 - 2).div_euclid(2) + 1;
            assert_eq!(pooled_tokens(l) as i64, py.max(0), "L = {l}");
        }
    }
}
