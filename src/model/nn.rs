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

    pub fn linear(&self, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.get(&format!("{name}.weight"), &[d_out, d_in])?,
            bias: if bias {
                Some(self.get(&format!("{name}.bias"), &[d_out])?)
            } else {
                None
            },
        })
    }

    pub fn layer_norm(&self, name: &str, d: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.get(&format!("{name}.weight"), &[d])?,
            bias: self.get(&format!("{name}.bias"), &[d])?,
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
