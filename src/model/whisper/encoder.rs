//! Whisper encoder that also returns what the paper scores tokens by: the attention each token
//! *receives* in the last layer (SPEC.md section 2), and that layer's head-averaged keys.

use candle_core::{Device, Module, Tensor};

use super::config::WhisperConfig;
use crate::model::nn::{EncoderLayer, LayerNorm, TensorSource, Weights};
use crate::model::scores::{self, Attention, Layers, Pooling, Received, Softmax};
use crate::model::{kernels, EncodedWindow, Result};

/// Query rows per attention block: bounds the live attention matrix to `heads x BLOCK x T`.
const BLOCK: usize = 250;

pub struct Encoder {
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: LayerNorm,
    heads: usize,
    d_model: usize,
    n_mels: usize,
    n_ctx: usize,
}

impl Encoder {
    pub fn load(w: &Weights, c: &WhisperConfig) -> Result<Encoder> {
        let (d, p) = (c.d_model, "model.encoder");
        let layers = (0..c.encoder_layers)
            .map(|i| {
                let l = format!("{p}.layers.{i}");
                EncoderLayer::load(w, &l, d, 4 * d)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            conv1_w: w.get(&format!("{p}.conv1.weight"), &[d, c.num_mel_bins, 3])?,
            conv1_b: w
                .get(&format!("{p}.conv1.bias"), &[d])?
                .reshape((1, d, 1))?,
            conv2_w: w.get(&format!("{p}.conv2.weight"), &[d, d, 3])?,
            conv2_b: w
                .get(&format!("{p}.conv2.bias"), &[d])?
                .reshape((1, d, 1))?,
            positions: w.get(
                &format!("{p}.embed_positions.weight"),
                &[c.max_source_positions, d],
            )?,
            layers,
            ln_post: w.layer_norm(&format!("{p}.layer_norm"), d)?,
            heads: c.encoder_attention_heads,
            d_model: d,
            n_mels: c.num_mel_bins,
            n_ctx: c.max_source_positions,
        })
    }

    /// `mel` is `[n_mels][2 * n_ctx]` row-major; `n_valid` tokens carry audio. Collects the
    /// received attention of the last layer, or of every layer (`layers`).
    pub fn forward(&self, mel: &[f32], n_valid: usize, layers: Layers) -> Result<EncodedWindow> {
        let frames = 2 * self.n_ctx;
        let x = Tensor::from_slice(mel, (1, self.n_mels, frames), &Device::Cpu)?;
        let x = x
            .conv1d(&self.conv1_w, 1, 1, 1, 1)?
            .broadcast_add(&self.conv1_b)?
            .gelu_erf()?;
        let x = x
            .conv1d(&self.conv2_w, 1, 2, 1, 1)?
            .broadcast_add(&self.conv2_b)?
            .gelu_erf()?;
        let mut x = x.squeeze(0)?.t()?.contiguous()?.add(&self.positions)?;

        let n_valid = n_valid.min(self.n_ctx);
        let mut per_layer = Vec::new();
        let mut keys = Tensor::zeros((0, 0), candle_core::DType::F32, &Device::Cpu)?;
        let last = self.layers.len().saturating_sub(1);
        let how = Attention {
            mask: None,
            block_rows: BLOCK,
            softmax: Softmax::Fused,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let is_last = i == last;
            let h = layer.attn_ln.forward(&x)?;
            let hd = self.d_model / self.heads;
            let scale = 1.0 / (hd as f64).sqrt();
            let q = self.split_heads(&(layer.q.forward(&h)? * scale)?)?;
            let k_flat = layer.k.forward(&h)?;
            let k = self.split_heads(&k_flat)?;
            let v = self.split_heads(&layer.v.forward(&h)?)?;
            let mut received = (is_last || layers == Layers::All).then(|| Received::new(n_valid));
            let a = scores::attention(&q, &k, &v, &how, received.as_mut())?;
            if let Some(r) = received {
                per_layer.push(r.layer_scores(i, self.heads, n_valid, Pooling::None));
            }
            let a = a.transpose(0, 1)?.reshape((self.n_ctx, self.d_model))?;
            x = x.add(&layer.out.forward(&a)?)?;
            let m = layer.mlp_ln.forward(&x)?;
            let m = layer.fc2.forward(&gelu(&layer.fc1.forward(&m)?)?)?;
            x = x.add(&m)?;
            if is_last {
                keys = k_flat
                    .narrow(0, 0, n_valid)?
                    .reshape((n_valid, self.heads, hd))?
                    .mean(1)?;
            }
        }
        let hidden = self.ln_post.forward(&x)?;
        let key_dim = keys.dim(1).unwrap_or(0);
        Ok(EncodedWindow {
            hidden,
            n_valid,
            keys: keys.flatten_all()?.to_vec1()?,
            key_dim,
            layers: per_layer,
        })
    }

    /// `(T, d)` -> `(heads, T, head_dim)`, contiguous.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let hd = self.d_model / self.heads;
        Ok(x.reshape((self.n_ctx, self.heads, hd))?
            .transpose(0, 1)?
            .contiguous()?)
    }
}

/// Exact (erf) GELU, parallel: candle's runs on one core.
fn gelu(x: &Tensor) -> Result<Tensor> {
    let shape = x.shape().clone();
    let mut buf = x.flatten_all()?.to_vec1::<f32>()?;
    kernels::gelu_par(&mut buf);
    Ok(Tensor::from_vec(buf, shape, &Device::Cpu)?)
}
