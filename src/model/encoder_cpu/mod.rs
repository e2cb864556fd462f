//! The Whisper-style audio encoder (Whisper's own, and the audio tower of Qwen2-Audio / AF3) on
//! the CPU in f32, in our own buffers: two convolutions as strided GEMMs over a time-major
//! padded copy of the input (no im2col copy), then pre-LN layers whose products call the `gemm`
//! crate directly on strided views, so the heads are never split into copies, with the bias,
//! GELU and residual fused into one parallel pass each. Attention runs head by head in parallel,
//! block of query rows by block, into a per-thread logits buffer; the fused softmax also sums
//! the received-attention columns (SPEC.md section 2). Every buffer lives in a workspace reused
//! across windows and calls, so a window touches no fresh page.

use std::sync::Mutex;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::model::nn::{EncoderLayer, LayerNorm, Linear};
use crate::model::scores::Received;
use crate::model::{kernels, Result};
use crate::scores::Layers;

/// Query rows per attention block: bounds each thread's logits buffer to `BLOCK x T`.
const BLOCK: usize = 256;

/// Rows per task of the elementwise passes.
const ROWS_PER_TASK: usize = 64;

/// Whisper's convolutional front end and layers, weights as f32 row-major vectors.
pub struct CpuEncoder {
    /// `d x (3 n_mels)`: output channel by (tap, input channel), the order of a time-major
    /// window of three input frames.
    conv1: Vec<f32>,
    conv1_b: Vec<f32>,
    /// `d x (3 d)`, likewise.
    conv2: Vec<f32>,
    conv2_b: Vec<f32>,
    /// `n_ctx x d`.
    positions: Vec<f32>,
    layers: Vec<Layer>,
    ln_post: Norm,
    heads: usize,
    d: usize,
    ffn: usize,
    n_mels: usize,
    n_ctx: usize,
    work: Mutex<Option<Workspace>>,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    ln1: Norm,
    /// `3d x d`: the query rows (scaled by `1/sqrt(head_dim)`), then the key and value rows.
    qkv: Vec<f32>,
    /// `3d`: the query bias (scaled), zeros for the keys, the value bias.
    qkv_b: Vec<f32>,
    out: Vec<f32>,
    out_b: Vec<f32>,
    ln2: Norm,
    fc1: Vec<f32>,
    fc1_b: Vec<f32>,
    fc2: Vec<f32>,
    fc2_b: Vec<f32>,
}

/// The buffers of one forward pass, sized for one model.
struct Workspace {
    /// Time-major input with a zero frame before and after: `(2 n_ctx + 2) x n_mels`.
    mel_t: Vec<f32>,
    /// First convolution's output, time-major, zero frame before and after: `(2 n_ctx + 2) x d`.
    conv: Vec<f32>,
    /// The residual stream, `n_ctx x d`.
    x: Vec<f32>,
    /// Layer-norm output and product scratch, `n_ctx x d`.
    h: Vec<f32>,
    /// `n_ctx x 3d`.
    qkv: Vec<f32>,
    /// Attention output, heads side by side, `n_ctx x d`.
    attn: Vec<f32>,
    /// `n_ctx x ffn`.
    ff: Vec<f32>,
    /// One `BLOCK x n_ctx` logits buffer per thread.
    logits: Vec<Mutex<Vec<f32>>>,
    /// Per head, the column sums of its attention over the valid query rows: `heads x n_ctx`.
    sums: Vec<f32>,
}

/// What [`CpuEncoder::forward_until`] returns.
pub struct Partial {
    /// The residual stream after the layers run, `n_ctx x d`.
    pub x: Vec<f32>,
    /// The last layer run's received attention.
    pub received: Received,
    /// That layer's index.
    pub layer: usize,
}

/// What one window's pass returns.
pub struct CpuEncoded {
    /// The final layer's output before the last layer norm, `n_ctx x d`.
    pub x: Vec<f32>,
    /// Received attention of the layers asked for, first layer first, as (layer, per-head sums).
    pub received: Vec<(usize, Received)>,
    /// The last layer's keys, `n_ctx x d` (heads side by side).
    pub keys: Vec<f32>,
}

fn f32s(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

fn norm(n: &LayerNorm) -> Result<Norm> {
    Ok(Norm {
        gamma: f32s(&n.weight)?,
        beta: f32s(&n.bias)?,
    })
}

fn bias(l: &Linear, n: usize) -> Result<Vec<f32>> {
    match &l.bias {
        Some(b) => f32s(b),
        None => Ok(vec![0.0; n]),
    }
}

/// A convolution weight `out x in x 3` reordered to `out x (3 in)`, tap-major.
fn taps_first(w: &Tensor) -> Result<Vec<f32>> {
    f32s(&w.permute((0, 2, 1))?.contiguous()?)
}

/// Dimensions of a [`CpuEncoder`].
pub struct Dims {
    pub d: usize,
    pub ffn: usize,
    pub heads: usize,
    pub n_mels: usize,
    pub n_ctx: usize,
}

/// The weights a [`CpuEncoder`] is built from, as candle tensors of any float dtype.
pub struct Parts<'a> {
    /// `d x n_mels x 3`, `d`.
    pub conv1: (&'a Tensor, &'a Tensor),
    /// `d x d x 3`, `d`.
    pub conv2: (&'a Tensor, &'a Tensor),
    /// `n_ctx x d`.
    pub positions: &'a Tensor,
    /// Loaded one at a time and converted, so the model's layers are never held twice.
    pub layers: Box<dyn Iterator<Item = Result<EncoderLayer>> + 'a>,
    pub ln_post: &'a LayerNorm,
}

impl CpuEncoder {
    pub fn new(p: Parts<'_>, dims: Dims) -> Result<CpuEncoder> {
        let Dims {
            d,
            ffn,
            heads,
            n_mels,
            n_ctx,
        } = dims;
        let scale = 1.0 / ((d / heads.max(1)) as f32).sqrt();
        let layers = p
            .layers
            .map(|l| {
                let l = l?;
                let mut qkv = f32s(&l.q.weight)?;
                qkv.iter_mut().for_each(|v| *v *= scale);
                qkv.extend(f32s(&l.k.weight)?);
                qkv.extend(f32s(&l.v.weight)?);
                let mut qkv_b = bias(&l.q, d)?;
                qkv_b.iter_mut().for_each(|v| *v *= scale);
                qkv_b.extend(bias(&l.k, d)?);
                qkv_b.extend(bias(&l.v, d)?);
                Ok(Layer {
                    ln1: norm(&l.attn_ln)?,
                    qkv,
                    qkv_b,
                    out: f32s(&l.out.weight)?,
                    out_b: bias(&l.out, d)?,
                    ln2: norm(&l.mlp_ln)?,
                    fc1: f32s(&l.fc1.weight)?,
                    fc1_b: bias(&l.fc1, ffn)?,
                    fc2: f32s(&l.fc2.weight)?,
                    fc2_b: bias(&l.fc2, d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CpuEncoder {
            conv1: taps_first(p.conv1.0)?,
            conv1_b: f32s(p.conv1.1)?,
            conv2: taps_first(p.conv2.0)?,
            conv2_b: f32s(p.conv2.1)?,
            positions: f32s(p.positions)?,
            layers,
            ln_post: norm(p.ln_post)?,
            heads,
            d,
            ffn,
            n_mels,
            n_ctx,
            work: Mutex::new(None),
        })
    }

    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    fn workspace(&self) -> Workspace {
        let (t, d) = (self.n_ctx, self.d);
        let threads = rayon::current_num_threads().max(1);
        Workspace {
            mel_t: vec![0.0; (2 * t + 2) * self.n_mels],
            conv: vec![0.0; (2 * t + 2) * d],
            x: vec![0.0; t * d],
            h: vec![0.0; t * d],
            qkv: vec![0.0; t * 3 * d],
            attn: vec![0.0; t * d],
            ff: vec![0.0; t * self.ffn],
            logits: (0..threads)
                .map(|_| Mutex::new(vec![0.0; BLOCK * t]))
                .collect(),
            sums: vec![0.0; self.heads * t],
        }
    }

    /// One window: `mel` is `[n_mels][2 n_ctx]` row-major. Keys at or after `keys` (the
    /// positions that carry audio; `n_ctx` for none masked) are masked out of every attention
    /// row; the received attention sums the first `rows` query rows, in the last layer or in
    /// every layer (`layers`).
    pub fn forward(&self, mel: &[f32], keys: usize, rows: usize, layers: Layers) -> CpuEncoded {
        // At least one key, so that no softmax row is empty.
        let keys = keys.clamp(1, self.n_ctx);
        let rows = rows.min(self.n_ctx);
        self.with_workspace(|ws| self.run(ws, mel, keys, rows, layers))
    }

    fn run(
        &self,
        ws: &mut Workspace,
        mel: &[f32],
        keys: usize,
        rows: usize,
        layers: Layers,
    ) -> CpuEncoded {
        let (t, d) = (self.n_ctx, self.d);
        self.front_end(ws, mel);
        let last = self.layers.len().saturating_sub(1);
        let mut received = Vec::new();
        let mut last_keys = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let collect = i == last || layers == Layers::All;
            self.layer(ws, l, t, keys, collect.then_some(rows));
            if collect {
                received.push((i, Received::from_head_sums(rows, ws.sums.clone())));
            }
            if i == last {
                last_keys = (0..t)
                    .flat_map(|r| &ws.qkv[r * 3 * d + d..r * 3 * d + 2 * d])
                    .copied()
                    .collect();
            }
        }
        CpuEncoded {
            x: ws.x.clone(),
            received,
            keys: last_keys,
        }
    }

    /// One pre-LN layer over the first `t` rows of `ws.x`, attending to the first `keys` of
    /// them; with `rows`, its received attention (the first `rows` query rows) in `ws.sums`.
    fn layer(&self, ws: &mut Workspace, l: &Layer, t: usize, keys: usize, rows: Option<usize>) {
        let d = self.d;
        layer_norm_into(&ws.x[..t * d], &mut ws.h[..t * d], &l.ln1, d);
        linear(&mut ws.qkv, &ws.h, t, &l.qkv, d, 3 * d);
        add_rows(&mut ws.qkv[..t * 3 * d], &l.qkv_b, 3 * d, |_, _| {});
        self.attention(ws, t, keys, rows);
        linear(&mut ws.h, &ws.attn, t, &l.out, d, d);
        residual(&mut ws.x[..t * d], &ws.h[..t * d], &l.out_b, d);
        layer_norm_into(&ws.x[..t * d], &mut ws.h[..t * d], &l.ln2, d);
        linear(&mut ws.ff, &ws.h, t, &l.fc1, d, self.ffn);
        add_rows(&mut ws.ff[..t * self.ffn], &l.fc1_b, self.ffn, |row, _| {
            kernels::gelu(row)
        });
        linear(&mut ws.h, &ws.ff, t, &l.fc2, self.ffn, d);
        residual(&mut ws.x[..t * d], &ws.h[..t * d], &l.fc2_b, d);
    }

    /// The first part of an encoder that drops tokens part-way (`encoderdrop`, docs/SPEC.md
    /// section 4): the front end and layers `0..upto` over the whole window (`mel`, `keys` and
    /// `rows` as in [`CpuEncoder::forward`]); returns the residual stream after them (`n_ctx x
    /// d`) and layer `upto - 1`'s received attention. `upto` is clamped to `1..=layers`.
    pub fn forward_until(&self, mel: &[f32], keys: usize, rows: usize, upto: usize) -> Partial {
        let upto = upto.clamp(1, self.layers.len().max(1));
        self.with_workspace(|ws| {
            let keys = keys.clamp(1, self.n_ctx);
            let rows = rows.min(self.n_ctx);
            self.front_end(ws, mel);
            for (i, l) in self.layers[..upto].iter().enumerate() {
                let last = i + 1 == upto;
                self.layer(ws, l, self.n_ctx, keys, last.then_some(rows));
            }
            Partial {
                x: ws.x.clone(),
                received: Received::from_head_sums(rows, ws.sums.clone()),
                layer: upto - 1,
            }
        })
    }

    /// The rest of such an encoder: layers `from..` over `x` (`rows x d`, at most `n_ctx`
    /// rows, each attending to all of them: the kept tokens at their original positions, whose
    /// embeddings they already carry). Returns the rows before the final norm (any pooling goes
    /// first: [`CpuEncoder::final_norm`]).
    pub fn forward_from(&self, x: &[f32], from: usize) -> Vec<f32> {
        let d = self.d;
        let t = (x.len() / d).min(self.n_ctx);
        // A window that keeps nothing (a clip too short for one pooled token) has no rows.
        if t == 0 {
            return Vec::new();
        }
        self.with_workspace(|ws| {
            ws.x[..t * d].copy_from_slice(&x[..t * d]);
            for l in self.layers.iter().skip(from) {
                self.layer(ws, l, t, t.max(1), None);
            }
            ws.x[..t * d].to_vec()
        })
    }

    /// Runs `f` on the shared workspace (or, when another caller holds it, on buffers of its
    /// own), on a pool thread so that every parallel pass is a fork-join inside the pool.
    fn with_workspace<T: Send>(&self, f: impl FnOnce(&mut Workspace) -> T + Send) -> T {
        let mut guard = self.work.try_lock().ok();
        let mut own = None;
        let ws = match guard.as_deref_mut() {
            Some(slot) => slot.get_or_insert_with(|| self.workspace()),
            None => own.insert(self.workspace()),
        };
        rayon::scope(|_| f(ws))
    }

    /// Layer norm of each `d`-wide row of `x` in place with the final norm (after any pooling).
    pub fn final_norm(&self, x: &mut [f32]) {
        x.par_chunks_mut(self.d * ROWS_PER_TASK).for_each(|c| {
            kernels::layer_norm(c, &self.ln_post.gamma, &self.ln_post.beta);
        });
    }

    /// conv1 (stride 1) and conv2 (stride 2), kernel 3, padding 1, each + bias then GELU; then
    /// the positions, into `ws.x`.
    fn front_end(&self, ws: &mut Workspace, mel: &[f32]) {
        let (t, d, m) = (self.n_ctx, self.d, self.n_mels);
        let frames = 2 * t;
        // Time-major with a zero frame on each side: frame f is row f + 1.
        ws.mel_t[..m].fill(0.0);
        ws.mel_t[(frames + 1) * m..].fill(0.0);
        ws.mel_t[m..(frames + 1) * m]
            .par_chunks_mut(m * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(c, rows)| {
                for (r, row) in rows.chunks_exact_mut(m).enumerate() {
                    let f = c * ROWS_PER_TASK + r;
                    for (b, v) in row.iter_mut().enumerate() {
                        *v = mel.get(b * frames + f).copied().unwrap_or(0.0);
                    }
                }
            });
        // Output frame f reads padded rows f, f + 1, f + 2: 3m contiguous values, m apart.
        ws.conv[..d].fill(0.0);
        ws.conv[(frames + 1) * d..].fill(0.0);
        gemm_into(
            &mut ws.conv[d..(frames + 1) * d],
            d,
            Mat::rows(&ws.mel_t, frames, 3 * m, m),
            Mat::transposed(&self.conv1, 3 * m, d),
            true,
        );
        add_rows(
            &mut ws.conv[d..(frames + 1) * d],
            &self.conv1_b,
            d,
            |row, _| kernels::gelu(row),
        );
        // Output token i reads padded rows 2i, 2i + 1, 2i + 2: 3d contiguous values, 2d apart.
        gemm_into(
            &mut ws.x,
            d,
            Mat::rows(&ws.conv, t, 3 * d, 2 * d),
            Mat::transposed(&self.conv2, 3 * d, d),
            true,
        );
        let positions = &self.positions;
        add_rows(&mut ws.x, &self.conv2_b, d, |row, r| {
            kernels::gelu(row);
            for (v, p) in row.iter_mut().zip(&positions[r * d..(r + 1) * d]) {
                *v += p;
            }
        });
    }

    /// Softmax attention of every head of the first `t` query rows over the first `keys` keys
    /// into `ws.attn`, head by head in parallel; with `rows`, each head's column sums over its first `rows` query rows go
    /// into `ws.sums`.
    fn attention(&self, ws: &mut Workspace, t: usize, keys: usize, rows: Option<usize>) {
        let (d, heads) = (self.d, self.heads);
        let hd = d / heads;
        let qkv = &ws.qkv;
        let logits = &ws.logits;
        let attn = SendPtr(ws.attn.as_mut_ptr());
        ws.sums[..heads * t]
            .par_chunks_mut(t)
            .enumerate()
            .for_each(|(head, sums)| {
                let slot = rayon::current_thread_index().unwrap_or(0) % logits.len();
                let mut buf = logits[slot].lock().unwrap_or_else(|e| e.into_inner());
                sums.fill(0.0);
                let q = Mat::rows(&qkv[head * hd..], t, hd, 3 * d);
                let k = Mat::transposed(&qkv[d + head * hd..], hd, keys).with_col_stride(3 * d);
                let v = Mat::rows(&qkv[2 * d + head * hd..], keys, hd, 3 * d);
                let mut start = 0;
                while start < t {
                    let n = BLOCK.min(t - start);
                    let block = &mut buf[..n * keys];
                    gemm_into(block, keys, q.slice_rows(start, n), k, false);
                    let summed = rows.map_or(0, |r| r.saturating_sub(start).min(n));
                    for (r, row) in block.chunks_exact_mut(keys).enumerate() {
                        kernels::softmax_row(row);
                        if r < summed {
                            kernels::axpy(1.0, row, &mut sums[..keys]);
                        }
                    }
                    // SAFETY: each head writes only its own `hd` columns of rows
                    // `start..start + n` of the `t x d` attention output, which outlives the
                    // parallel loop; no other head or block touches them.
                    unsafe {
                        gemm_raw(
                            attn.at(start * d + head * hd),
                            d,
                            n,
                            hd,
                            Mat::rows(block, n, keys, keys),
                            v,
                            false,
                        );
                    }
                    start += n;
                }
            });
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint regions of one buffer to parallel tasks (see `attention`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer `offset` elements on (a method, so closures capture the whole `SendPtr`).
    ///
    /// # Safety
    /// `offset` must stay inside the buffer the pointer points into.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// A strided read-only matrix view: `rows x cols`, element `(r, c)` at `ptr[r * rs + c * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// Rows `rs` apart, contiguous columns.
    fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Mat<'a> {
        Mat {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose of a row-major `cols x rows` matrix (a weight `out x in` seen as `in x
    /// out`).
    fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        Mat {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows,
        }
    }

    fn with_col_stride(self, cs: usize) -> Mat<'a> {
        Mat { cs, ..self }
    }

    fn slice_rows(self, start: usize, n: usize) -> Mat<'a> {
        Mat {
            data: &self.data[start * self.rs..],
            rows: n,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (a.rows x b.cols, rows dst_rs apart) = a b`, on every thread when `parallel`.
fn gemm_into(dst: &mut [f32], dst_rs: usize, a: Mat, b: Mat, parallel: bool) {
    assert!(a.rows == 0 || (a.rows - 1) * dst_rs + b.cols <= dst.len());
    // SAFETY: `dst` holds every written element (checked above).
    unsafe { gemm_raw(dst.as_mut_ptr(), dst_rs, a.rows, b.cols, a, b, parallel) }
}

/// `y (rows x out) = x (rows x inp) W^T` with `W` row-major `out x inp`, on every thread.
fn linear(y: &mut [f32], x: &[f32], rows: usize, w: &[f32], inp: usize, out: usize) {
    gemm_into(
        &mut y[..rows * out],
        out,
        Mat::rows(x, rows, inp, inp),
        Mat::transposed(w, inp, out),
        true,
    );
}

/// # Safety
/// `dst` must be valid for writes of `m` rows `dst_rs` apart of `n` values each, not aliasing
/// `a` or `b`.
unsafe fn gemm_raw(dst: *mut f32, dst_rs: usize, m: usize, n: usize, a: Mat, b: Mat, par: bool) {
    assert!(a.cols == b.rows && a.rows == m && b.cols == n && a.in_bounds() && b.in_bounds());
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = match rayon::current_num_threads() {
        threads if par && threads > 1 => gemm::Parallelism::Rayon(threads),
        _ => gemm::Parallelism::None,
    };
    gemm::gemm(
        m,
        n,
        a.cols,
        dst,
        1,
        dst_rs as isize,
        false,
        a.data.as_ptr(),
        a.cs as isize,
        a.rs as isize,
        b.data.as_ptr(),
        b.cs as isize,
        b.rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    );
}

/// Adds `bias` to every `width`-wide row of `x`, then applies `then(row, row index)`, parallel.
fn add_rows(x: &mut [f32], bias: &[f32], width: usize, then: impl Fn(&mut [f32], usize) + Sync) {
    x.par_chunks_mut(width * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(c, rows)| {
            for (r, row) in rows.chunks_exact_mut(width).enumerate() {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
                then(row, c * ROWS_PER_TASK + r);
            }
        });
}

/// `x += y + bias`, row by row, parallel.
fn residual(x: &mut [f32], y: &[f32], bias: &[f32], width: usize) {
    x.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(y.par_chunks(width * ROWS_PER_TASK))
        .for_each(|(xs, ys)| {
            for (xr, yr) in xs.chunks_exact_mut(width).zip(ys.chunks_exact(width)) {
                for ((v, a), b) in xr.iter_mut().zip(yr).zip(bias) {
                    *v += a + b;
                }
            }
        });
}

/// `dst = layer_norm(src)` row by row, parallel.
fn layer_norm_into(src: &[f32], dst: &mut [f32], n: &Norm, width: usize) {
    dst.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(src.par_chunks(width * ROWS_PER_TASK))
        .for_each(|(out, inp)| {
            out.copy_from_slice(inp);
            kernels::layer_norm(out, &n.gamma, &n.beta);
        });
}

#[cfg(test)]
mod tests;
