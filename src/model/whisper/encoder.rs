//! Whisper encoder that also returns what the paper scores tokens by: the attention each token
//! *receives* (SPEC.md section 2), in the last layer or in every layer as the caller asks
//! ([`Layers`]; the paper scores with the last), and the last layer's head-averaged keys. It
//! runs on the CPU in f32 in our own buffers ([`CpuEncoder`]).

use candle_core::{Device, Tensor};

use super::config::WhisperConfig;
use crate::model::encoder_cpu::{CpuEncoder, Dims, Parts};
use crate::model::nn::{EncoderLayer, TensorSource, Weights};
use crate::model::scores::{head_mean_keys, Pooling};
use crate::model::{DroppedWindow, EncodedWindow, EncoderDrop, Result};
use crate::scores::Layers;

pub struct Encoder {
    cpu: CpuEncoder,
    heads: usize,
    d_model: usize,
    n_ctx: usize,
}

impl Encoder {
    pub fn load(w: &Weights, c: &WhisperConfig) -> Result<Encoder> {
        let (d, p) = (c.d_model, "model.encoder");
        let layers = (0..c.encoder_layers).map(move |i| {
            let l = format!("{p}.layers.{i}");
            EncoderLayer::load(w, &l, d, 4 * d)
        });
        let cpu = CpuEncoder::new(
            Parts {
                conv1: (
                    &w.get(&format!("{p}.conv1.weight"), &[d, c.num_mel_bins, 3])?,
                    &w.get(&format!("{p}.conv1.bias"), &[d])?,
                ),
                conv2: (
                    &w.get(&format!("{p}.conv2.weight"), &[d, d, 3])?,
                    &w.get(&format!("{p}.conv2.bias"), &[d])?,
                ),
                positions: &w.get(
                    &format!("{p}.embed_positions.weight"),
                    &[c.max_source_positions, d],
                )?,
                layers: Box::new(layers),
                ln_post: &w.layer_norm(&format!("{p}.layer_norm"), d)?,
            },
            Dims {
                d,
                ffn: 4 * d,
                heads: c.encoder_attention_heads,
                n_mels: c.num_mel_bins,
                n_ctx: c.max_source_positions,
            },
        )?;
        Ok(Encoder {
            cpu,
            heads: c.encoder_attention_heads,
            d_model: d,
            n_ctx: c.max_source_positions,
        })
    }

    /// `encoderdrop` on one window (`mel`, `n_valid` as in [`Encoder::forward`]): every token
    /// through the first `drop.layer` layers; the received attention of the last of them (mean
    /// over heads) ranks the valid tokens; for each budget, the remaining layers over its best
    /// tokens (time order) and the first `drop.tail` padding rows. Each output's time counts
    /// the shared part once.
    pub fn forward_dropping(
        &self,
        mel: &[f32],
        n_valid: usize,
        drop: &EncoderDrop,
    ) -> Result<Vec<DroppedWindow>> {
        let t0 = std::time::Instant::now();
        let n_valid = n_valid.min(self.n_ctx);
        let layer = drop
            .layer
            .clamp(1, self.cpu.layers().saturating_sub(1).max(1));
        let part = self.cpu.forward_until(mel, self.n_ctx, n_valid, layer);
        let scores = part
            .received
            .layer_scores(part.layer, self.heads, n_valid, Pooling::None)
            .mean;
        let shared_ms = t0.elapsed().as_secs_f64() * 1e3;
        let d = self.d_model;
        let tail = drop.tail.min(self.n_ctx - n_valid);
        drop.keeps
            .iter()
            .map(|&k| {
                let t1 = std::time::Instant::now();
                let kept = crate::model::top_k(&scores, k.min(n_valid));
                let mut rows = Vec::with_capacity((kept.len() + tail) * d);
                for &t in kept
                    .iter()
                    .chain(&(n_valid..n_valid + tail).collect::<Vec<_>>())
                {
                    rows.extend_from_slice(&part.x[t * d..(t + 1) * d]);
                }
                let mut out = self.cpu.forward_from(&rows, layer);
                self.cpu.final_norm(&mut out);
                let n = out.len() / d;
                Ok(DroppedWindow {
                    hidden: Tensor::from_vec(out, (n, d), &Device::Cpu)?,
                    kept,
                    tail,
                    encode_ms: shared_ms + t1.elapsed().as_secs_f64() * 1e3,
                })
            })
            .collect()
    }

    /// `mel` is `[n_mels][2 * n_ctx]` row-major; `n_valid` tokens carry audio. Collects the
    /// received attention of the last layer, or of every layer (`layers`).
    pub fn forward(&self, mel: &[f32], n_valid: usize, layers: Layers) -> Result<EncodedWindow> {
        let n_valid = n_valid.min(self.n_ctx);
        let out = self.cpu.forward(mel, self.n_ctx, n_valid, layers);
        let mut hidden = out.x;
        self.cpu.final_norm(&mut hidden);
        let hidden = Tensor::from_vec(hidden, (self.n_ctx, self.d_model), &Device::Cpu)?;
        let per_layer = out
            .received
            .iter()
            .map(|(i, r)| r.layer_scores(*i, self.heads, n_valid, Pooling::None))
            .collect();
        let hd = self.d_model / self.heads;
        let keys = head_mean_keys(&out.keys, self.d_model, self.heads, n_valid, Pooling::None);
        Ok(EncodedWindow {
            hidden,
            n_valid,
            keys,
            key_dim: hd,
            layers: per_layer,
        })
    }
}
