//! Small building blocks over candle tensors shared by every model (Whisper, Qwen2-Audio / AF3):
//! checked weight lookup by name, linear, layer norm.

use std::collections::HashMap;

use candle_core::{Module, Tensor};

use crate::model::{ModelError, Result};

pub struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    pub fn new(tensors: HashMap<String, Tensor>) -> Self {
        Weights { tensors }
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .or_else(|| {
                // Accept exports without the `model.` prefix.
                name.strip_prefix("model.")
                    .and_then(|n| self.tensors.get(n))
            })
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        if t.dims() != shape {
            return Err(ModelError::Shape {
                name: name.to_string(),
                got: t.dims().to_vec(),
                want: shape.to_vec(),
            });
        }
        Ok(t.clone())
    }
}

impl TensorSource for Weights {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get(name, shape)
    }
}

/// Where a model's named tensors come from, each checked against its expected shape: Whisper's
/// in-memory map ([`Weights`]) or one part of a Qwen2-Audio / AF3 checkpoint's memory-mapped
/// shards. The layers every model shares load through it.
pub trait TensorSource {
    /// The tensor `name`, which must have exactly `shape`.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor>;

    fn linear(&self, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.tensor(&format!("{name}.weight"), &[d_out, d_in])?,
            bias: if bias {
                Some(self.tensor(&format!("{name}.bias"), &[d_out])?)
            } else {
                None
            },
        })
    }

    fn layer_norm(&self, name: &str, d: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.tensor(&format!("{name}.weight"), &[d])?,
            bias: self.tensor(&format!("{name}.bias"), &[d])?,
        })
    }
}

/// One pre-LN layer of a Whisper-style audio encoder (Whisper's own, and the audio tower of
/// Qwen2-Audio / AF3, which is Whisper large-v3's): self-attention (no key bias) and a GELU MLP.
pub struct EncoderLayer {
    pub attn_ln: LayerNorm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub out: Linear,
    pub mlp_ln: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

impl EncoderLayer {
    /// The layer named `l` (e.g. `layers.3`), `d` wide with an MLP of `ffn`.
    pub fn load(w: &impl TensorSource, l: &str, d: usize, ffn: usize) -> Result<EncoderLayer> {
        Ok(EncoderLayer {
            attn_ln: w.layer_norm(&format!("{l}.self_attn_layer_norm"), d)?,
            q: w.linear(&format!("{l}.self_attn.q_proj"), d, d, true)?,
            k: w.linear(&format!("{l}.self_attn.k_proj"), d, d, false)?,
            v: w.linear(&format!("{l}.self_attn.v_proj"), d, d, true)?,
            out: w.linear(&format!("{l}.self_attn.out_proj"), d, d, true)?,
            mlp_ln: w.layer_norm(&format!("{l}.final_layer_norm"), d)?,
            fc1: w.linear(&format!("{l}.fc1"), d, ffn, true)?,
            fc2: w.linear(&format!("{l}.fc2"), ffn, d, true)?,
        })
    }
}

/// `y = x W^T + b` for 2-D `x` of shape `(rows, d_in)`.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, 1e-5)
    }
}
