//! The received-attention score of SPEC.md section 2, one implementation for every encoder
//! (Whisper, and the pooled Whisper-large-v3 encoder of Qwen2-Audio and AF3): softmax attention
//! computed block of query rows by block, so no head's whole matrix is ever held; in the last
//! layer the column sums of every head's attention matrix over the valid query rows are
//! accumulated in f32, then averaged over the heads and, for the pooled models, over each pair.

use candle_core::{DType, Tensor};

use crate::model::{kernels, Result};

/// How a block of attention logits is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Softmax {
    /// On the CPU in f32 with the fused kernel ([`kernels::softmax_rows`]), which sums the
    /// columns of the valid rows while it normalises them (Whisper's encoder, always on the CPU).
    Fused,
    /// With candle's ops on the tensors' own device, in f32 whatever the tensors' dtype (f32,
    /// bf16, f16); the column sums are taken from these f32 probabilities.
    Device,
}

/// How encoder positions become the model's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// One token per position (Whisper).
    None,
    /// Average pooling by pairs (Qwen2-Audio, AF3): `s_m = (a_2m + a_2m+1) / 2`.
    Pairs,
}

/// How [`attention`] runs.
#[derive(Debug, Clone, Copy)]
pub struct Attention<'a> {
    /// Added to every row of logits (`(1, 1, T)`, f32: `-inf` on padded keys), if any.
    pub mask: Option<&'a Tensor>,
    /// Query rows per block: bounds the live attention matrix to `heads x block_rows x T`.
    pub block_rows: usize,
    pub softmax: Softmax,
}

/// The received attention being accumulated: per key position, the sum over heads of the
/// column sums of the attention matrices over the first `valid_rows` query rows.
#[derive(Debug, Clone, Default)]
pub struct Received {
    valid_rows: usize,
    sums: Vec<f32>,
}

impl Received {
    /// Sums over the first `valid_rows` query rows (the ones that carry audio).
    pub fn new(valid_rows: usize) -> Received {
        Received {
            valid_rows,
            sums: Vec::new(),
        }
    }

    /// Valid query rows among `rows` rows starting at row `start`.
    fn rows_in(&self, start: usize, rows: usize) -> usize {
        self.valid_rows.saturating_sub(start).min(rows)
    }

    fn add(&mut self, col: &[f32]) {
        if self.sums.len() < col.len() {
            self.sums.resize(col.len(), 0.0);
        }
        for (s, c) in self.sums.iter_mut().zip(col) {
            *s += c;
        }
    }

    /// The scores of the first `n` tokens: `a_t = sums_t / heads`, pooled by `pooling`.
    pub fn scores(&self, heads: usize, n: usize, pooling: Pooling) -> Vec<f32> {
        let inv_heads = 1.0 / heads as f32;
        let a = |t: usize| self.sums.get(t).copied().unwrap_or(0.0);
        match pooling {
            Pooling::None => (0..n).map(|t| a(t) * inv_heads).collect(),
            Pooling::Pairs => (0..n)
                .map(|m| (a(2 * m) + a(2 * m + 1)) * inv_heads / 2.0)
                .collect(),
        }
    }
}

/// Softmax attention over `(H, T, hd)` tensors (`q` already scaled), block of query rows by
/// block; returns `(H, T, hd)`. With `received`, adds the last layer's column sums to it.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    how: &Attention,
    mut received: Option<&mut Received>,
) -> Result<Tensor> {
    let (heads, t, _) = q.dims3()?;
    let kt = k.t()?;
    let block_rows = how.block_rows.clamp(1, t.max(1));
    let mut blocks = Vec::with_capacity(t.div_ceil(block_rows));
    let mut start = 0;
    while start < t {
        let rows = block_rows.min(t - start);
        // Logits in the tensors' dtype, then f32 for the mask and the softmax whatever that
        // dtype is: torch's bf16/f16 softmax accumulates in f32 on every device, candle's CPU
        // kernel would sum the exponentials in bf16. The probabilities go back to the values'
        // dtype for the product with them.
        let mut logits = q
            .narrow(1, start, rows)?
            .matmul(&kt)?
            .to_dtype(DType::F32)?;
        if let Some(mask) = how.mask {
            logits = logits.broadcast_add(mask)?;
        }
        let valid = received.as_ref().map_or(0, |r| r.rows_in(start, rows));
        let probs = match how.softmax {
            Softmax::Fused => {
                let shape = logits.shape().clone();
                let mut buf = logits.flatten_all()?.to_vec1::<f32>()?;
                let col = kernels::softmax_rows(&mut buf, t, heads, valid);
                if let Some(r) = received.as_mut() {
                    r.add(&col);
                }
                Tensor::from_vec(buf, shape, logits.device())?
            }
            Softmax::Device => {
                let probs = candle_nn::ops::softmax_last_dim(&logits)?;
                if let (Some(r), true) = (received.as_mut(), valid > 0) {
                    let col = probs
                        .narrow(1, 0, valid)?
                        .sum(1)?
                        .sum(0)?
                        .to_vec1::<f32>()?;
                    r.add(&col);
                }
                probs.to_dtype(v.dtype())?
            }
        };
        blocks.push(probs.matmul(v)?);
        start += rows;
    }
    Ok(Tensor::cat(&blocks, 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two heads, two positions, head size 1. Keys `[0, ln 3]`. Head 0's queries `[1, 0]`
    /// give rows `[1/4, 3/4]` and `[1/2, 1/2]`; head 1's queries are 0: rows `[1/2, 1/2]`.
    fn qkv() -> (Tensor, Tensor, Tensor) {
        let dev = Device::Cpu;
        let q = Tensor::from_vec(vec![1f32, 0.0, 0.0, 0.0], (2, 2, 1), &dev).unwrap();
        let l3 = 3f32.ln();
        let k = Tensor::from_vec(vec![0f32, l3, 0.0, l3], (2, 2, 1), &dev).unwrap();
        let v = Tensor::from_vec(vec![1f32, 5.0, 1.0, 5.0], (2, 2, 1), &dev).unwrap();
        (q, k, v)
    }

    fn run(softmax: Softmax, block_rows: usize, valid: usize, mask: Option<&Tensor>) -> Received {
        let (q, k, v) = qkv();
        let how = Attention {
            mask,
            block_rows,
            softmax,
        };
        let mut r = Received::new(valid);
        let out = attention(&q, &k, &v, &how, Some(&mut r)).unwrap();
        let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        // Row-weighted values: 1/4 + 15/4 = 4, then 3, 3, 3 (unmasked).
        if mask.is_none() {
            for (o, w) in out.iter().zip([4.0, 3.0, 3.0, 3.0]) {
                assert!((o - w).abs() < 1e-5, "{out:?}");
            }
        }
        r
    }

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn received_attention_is_the_head_mean_of_valid_column_sums() {
        for softmax in [Softmax::Fused, Softmax::Device] {
            for block_rows in [1, 2, 100] {
                // Both rows valid: head 0 sums to [3/4, 5/4], head 1 to [1, 1].
                let r = run(softmax, block_rows, 2, None);
                close(&r.scores(2, 2, Pooling::None), &[7.0 / 8.0, 9.0 / 8.0]);
                // Only the first row: [1/4, 3/4] and [1/2, 1/2].
                let r = run(softmax, block_rows, 1, None);
                close(&r.scores(2, 2, Pooling::None), &[3.0 / 8.0, 5.0 / 8.0]);
                close(&r.scores(2, 1, Pooling::Pairs), &[0.5]);
                close(&r.scores(2, 1, Pooling::None), &[3.0 / 8.0]);
                // No valid row: nothing received.
                let r = run(softmax, block_rows, 0, None);
                close(&r.scores(2, 2, Pooling::None), &[0.0, 0.0]);
            }
            // A padded second key receives nothing; the first takes every valid row's whole mass.
            let mask =
                Tensor::from_vec(vec![0f32, f32::NEG_INFINITY], (1, 1, 2), &Device::Cpu).unwrap();
            let r = run(softmax, 1, 2, Some(&mask));
            close(&r.scores(2, 2, Pooling::None), &[2.0, 0.0]);
            close(&r.scores(2, 1, Pooling::Pairs), &[1.0]);
        }
    }
}
