//! The received-attention score of SPEC.md section 2 for every encoder (Whisper, and the pooled
//! Whisper-large-v3 encoder of Qwen2-Audio and AF3): per head, the column sums of the attention
//! matrix over the valid query rows, accumulated in f32 ([`Received`], filled by the CPU
//! encoder's fused softmax or by [`attention`] on other devices and dtypes), then averaged over
//! the heads and, for the pooled models, over each pair. [`attention`] computes softmax
//! attention with candle's ops block of query rows by block, so no head's whole matrix is ever
//! held. Which layer and reduction the methods rank by is [`crate::scores`]: plain values the
//! pruning parameters hold without knowing of models.

use candle_core::{DType, Tensor};

use crate::model::Result;
use crate::scores::{HeadReduce, LayerScores};

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
}

/// The last layer's keys of the first `n` tokens averaged over heads (`n x d/heads`): `keys` holds
/// one `d`-wide row per encoder position, heads side by side; for the pooled models each token's
/// row is then the mean of its pair's.
pub fn head_mean_keys(
    keys: &[f32],
    d: usize,
    heads: usize,
    n: usize,
    pooling: Pooling,
) -> Vec<f32> {
    let heads = heads.max(1);
    let hd = d / heads;
    let mean = |r: usize, c: usize| -> f32 {
        (0..heads).map(|h| keys[r * d + h * hd + c]).sum::<f32>() / heads as f32
    };
    (0..n)
        .flat_map(|m| {
            (0..hd).map(move |c| match pooling {
                Pooling::None => mean(m, c),
                Pooling::Pairs => (mean(2 * m, c) + mean(2 * m + 1, c)) / 2.0,
            })
        })
        .collect()
}

/// The received attention being accumulated: per head and key position, the column sums of
/// the head's attention matrix over the first `valid_rows` query rows.
#[derive(Debug, Clone, Default)]
pub struct Received {
    valid_rows: usize,
    /// `heads x T`, head after head.
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

    /// Per-head column sums already taken over the first `valid_rows` query rows (`heads x T`,
    /// head after head).
    pub fn from_head_sums(valid_rows: usize, sums: Vec<f32>) -> Received {
        Received { valid_rows, sums }
    }

    /// Valid query rows among `rows` rows starting at row `start`.
    fn rows_in(&self, start: usize, rows: usize) -> usize {
        self.valid_rows.saturating_sub(start).min(rows)
    }

    /// Adds per-head column sums (`heads x T`, head after head).
    fn add(&mut self, cols: &[f32]) {
        if self.sums.len() < cols.len() {
            self.sums.resize(cols.len(), 0.0);
        }
        for (s, c) in self.sums.iter_mut().zip(cols) {
            *s += c;
        }
    }

    /// The scores of the first `n` tokens: `a_t = mean over heads of sums_{h,t}`, pooled by
    /// `pooling`.
    pub fn scores(&self, heads: usize, n: usize, pooling: Pooling) -> Vec<f32> {
        self.reduced(HeadReduce::Mean, heads, n, pooling)
    }

    /// The scores of the first `n` tokens reduced over heads by `reduce`, then pooled.
    pub fn reduced(
        &self,
        reduce: HeadReduce,
        heads: usize,
        n: usize,
        pooling: Pooling,
    ) -> Vec<f32> {
        let heads = heads.max(1);
        let t_len = self.sums.len() / heads;
        let inv_heads = 1.0 / heads as f32;
        let a = |t: usize| -> f32 {
            if t >= t_len {
                return 0.0;
            }
            let col = (0..heads).map(|h| self.sums[h * t_len + t]);
            match reduce {
                HeadReduce::Mean => col.sum::<f32>() * inv_heads,
                HeadReduce::Max => col.fold(f32::NEG_INFINITY, f32::max),
            }
        };
        match pooling {
            Pooling::None => (0..n).map(a).collect(),
            Pooling::Pairs => (0..n).map(|m| (a(2 * m) + a(2 * m + 1)) / 2.0).collect(),
        }
    }

    /// Both reductions for encoder layer `layer`.
    pub fn layer_scores(
        &self,
        layer: usize,
        heads: usize,
        n: usize,
        pooling: Pooling,
    ) -> LayerScores {
        LayerScores {
            layer,
            mean: self.reduced(HeadReduce::Mean, heads, n, pooling),
            max: self.reduced(HeadReduce::Max, heads, n, pooling),
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
    let (_, t, _) = q.dims3()?;
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
        let probs = candle_nn::ops::softmax_last_dim(&logits)?;
        if let (Some(r), true) = (received.as_mut(), valid > 0) {
            let col = probs
                .narrow(1, 0, valid)?
                .sum(1)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            r.add(&col);
        }
        let probs = probs.to_dtype(v.dtype())?;
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

    fn run(block_rows: usize, valid: usize, mask: Option<&Tensor>) -> Received {
        let (q, k, v) = qkv();
        let how = Attention { mask, block_rows };
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
        for block_rows in [1, 2, 100] {
            // Both rows valid: head 0 sums to [3/4, 5/4], head 1 to [1, 1].
            let r = run(block_rows, 2, None);
            close(&r.scores(2, 2, Pooling::None), &[7.0 / 8.0, 9.0 / 8.0]);
            // Only the first row: [1/4, 3/4] and [1/2, 1/2].
            let r = run(block_rows, 1, None);
            close(&r.scores(2, 2, Pooling::None), &[3.0 / 8.0, 5.0 / 8.0]);
            close(&r.scores(2, 1, Pooling::Pairs), &[0.5]);
            close(&r.scores(2, 1, Pooling::None), &[3.0 / 8.0]);
            // No valid row: nothing received.
            let r = run(block_rows, 0, None);
            close(&r.scores(2, 2, Pooling::None), &[0.0, 0.0]);
        }
        // A padded second key receives nothing; the first takes every valid row's whole mass.
        let mask =
            Tensor::from_vec(vec![0f32, f32::NEG_INFINITY], (1, 1, 2), &Device::Cpu).unwrap();
        let r = run(1, 2, Some(&mask));
        close(&r.scores(2, 2, Pooling::None), &[2.0, 0.0]);
        close(&r.scores(2, 1, Pooling::Pairs), &[1.0]);
    }
}
