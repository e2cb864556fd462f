//! Few-row matrix products `y = x W^T (+ b)`: for a handful of rows `x` (a decoding step's
//! batch), a general GEMM spends its time packing; these read each weight row once and reuse it
//! for every row of `x` while it sits in L1, parallel over output features ([`by_features`]).
//! Weights are f32 or exactly-representable f16 ([`Matrix`]).

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::cpu;
use super::vector::dot_with;

/// Elements ahead of the current position that the weight-streaming kernels prefetch.
const PREFETCH: usize = 512;

/// A row-major weight matrix. Weights that are exactly representable in f16 (every weight of a
/// CTranslate2 float16 checkpoint) are kept in f16 and widened to f32 inside the kernel: the
/// arithmetic is the same f32 arithmetic, but each decoding step streams half the bytes, and on
/// a memory-bound step that is half the time.
pub enum Matrix {
    F32 { data: Vec<f32>, rows: usize },
    F16 { data: Vec<half::f16>, rows: usize },
}

impl Matrix {
    /// Stores `data` (`rows x cols`) as f16 when that loses nothing, else as f32.
    pub fn new(data: Vec<f32>, rows: usize) -> Matrix {
        let exact = data
            .iter()
            .all(|&v| half::f16::from_f32(v).to_f32().to_bits() == v.to_bits());
        if exact && std::env::var_os("PRUNESCOPE_F32_WEIGHTS").is_none() {
            Matrix::F16 {
                data: data.iter().map(|&v| half::f16::from_f32(v)).collect(),
                rows,
            }
        } else {
            Matrix::F32 { data, rows }
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            Matrix::F32 { rows, .. } | Matrix::F16 { rows, .. } => *rows,
        }
    }

    pub fn cols(&self) -> usize {
        let len = match self {
            Matrix::F32 { data, .. } => data.len(),
            Matrix::F16 { data, .. } => data.len(),
        };
        len.checked_div(self.rows()).unwrap_or(0)
    }

    /// Row `r` widened to f32 into `out`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols();
        match self {
            Matrix::F32 { data, .. } => out.copy_from_slice(&data[r * c..(r + 1) * c]),
            Matrix::F16 { data, .. } => {
                for (o, v) in out.iter_mut().zip(&data[r * c..(r + 1) * c]) {
                    *o = v.to_f32();
                }
            }
        }
    }

    /// `dot(x_r, w_o)` for the output features `outs` only, laid out `outs.len() x rows`: each
    /// value bit-identical to the same entry of a bias-free [`Matrix::linear`].
    pub fn linear_rows(&self, x: &[f32], rows: usize, outs: &[usize]) -> Vec<f32> {
        let c = self.cols();
        let mut y = vec![0f32; outs.len() * rows];
        for (&o, dst) in outs.iter().zip(y.chunks_exact_mut(rows.max(1))) {
            match self {
                Matrix::F32 { data, .. } => rows_dot(x, rows, &data[o * c..(o + 1) * c], c, dst),
                Matrix::F16 { data, .. } => rows_dot(x, rows, &data[o * c..(o + 1) * c], c, dst),
            }
            // `linear` adds its (zero) bias: the same bits, a negative zero included.
            dst.iter_mut().for_each(|v| *v += 0.0);
        }
        y
    }

    /// `y = x W^T + bias` for `rows` rows of `x`; see [`linear`].
    pub fn linear(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        match self {
            Matrix::F32 { data, rows: out } => linear(x, rows, data, *out, bias),
            Matrix::F16 { data, rows: out } => linear(x, rows, data, *out, bias),
        }
    }
}

/// A stored weight type: f32, or f16 widened exactly to f32.
pub trait Weight: Copy + Send + Sync {
    fn widen(self) -> f32;
    /// Eight weights from `p` as f32 lanes.
    ///
    /// # Safety
    /// `p` must point to eight readable values and the CPU must have AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl Weight for f32 {
    fn widen(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

impl Weight for half::f16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const half::f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

fn transpose_add_bias(yt: &[f32], rows: usize, out: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0f32; rows * out];
    for o in 0..out {
        let add = bias.map_or(0.0, |b| b[o]);
        for r in 0..rows {
            y[r * out + o] = yt[o * rows + r] + add;
        }
    }
    y
}

/// `y[r, o] = dot(x[r], w[o]) + bias[o]` for `rows` rows of `x` (`rows x inp`) and `w`
/// (`out x inp`), parallel over output features. `y` is `rows x out`.
pub fn linear<W: Weight>(
    x: &[f32],
    rows: usize,
    w: &[W],
    out: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let inp = w.len().checked_div(out).unwrap_or(0);
    debug_assert_eq!(x.len(), rows * inp);
    by_features(rows, out, bias, |first, n, dst| {
        rows_dot(x, rows, &w[first * inp..(first + n) * inp], inp, dst)
    })
}

/// `y = f + bias` (`rows x out`) where `f(first, n, dst)` fills `dst[o * rows + r]` for the `n`
/// output features from `first`: computed in parallel over chunks of features (each task owns
/// whole feature rows), transposed at the end. The parallel frame of every few-row product.
pub fn by_features(
    rows: usize,
    out: usize,
    bias: Option<&[f32]>,
    f: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    // Features per task: enough work to amortise scheduling, enough tasks to balance.
    let chunk = (out / (4 * rayon::current_num_threads()).max(1)).clamp(16, 1024);
    let mut yt = vec![0f32; out * rows];
    yt.par_chunks_mut(chunk * rows.max(1))
        .enumerate()
        .for_each(|(c, dst)| f(c * chunk, dst.len() / rows.max(1), dst));
    transpose_add_bias(&yt, rows, out, bias)
}

/// For each weight row `o` of `w` and each row `r` of `x`: `dst[o * rows + r] = dot(x_r, w_o)`.
fn rows_dot<W: Weight>(x: &[f32], rows: usize, w: &[W], inp: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if cpu::avx2_fma_f16c() {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { rows_dot_avx2(x, rows, w, inp, dst) };
            return;
        }
    }
    let mut row = vec![0f32; inp];
    for (wo, d) in w.chunks_exact(inp).zip(dst.chunks_exact_mut(rows)) {
        for (o, v) in row.iter_mut().zip(wo) {
            *o = v.widen();
        }
        for (r, out) in d.iter_mut().enumerate() {
            *out = dot_with(&x[r * inp..(r + 1) * inp], &row, |a, b, c| a * b + c);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_dot_avx2<W: Weight>(x: &[f32], rows: usize, w: &[W], inp: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n8 = inp / 8 * 8;
    let hsum = |v: __m256| -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    };
    let tail = |a: &[f32], b: &[W]| -> f32 {
        a[n8..]
            .iter()
            .zip(&b[n8..])
            .map(|(p, q)| p * q.widen())
            .sum::<f32>()
    };
    let n_out = dst.len() / rows.max(1);
    // Two weight rows x four input rows per pass: 6 loads feed 8 independent FMAs.
    let mut o = 0;
    while o < n_out {
        let two = o + 1 < n_out;
        let w0 = &w[o * inp..(o + 1) * inp];
        let w1 = if two {
            &w[(o + 1) * inp..(o + 2) * inp]
        } else {
            w0
        };
        let mut r = 0;
        while r < rows {
            let nr = (rows - r).min(4);
            let xr: [&[f32]; 4] = std::array::from_fn(|i| {
                let rr = r + i.min(nr - 1);
                &x[rr * inp..(rr + 1) * inp]
            });
            let mut a0 = [_mm256_setzero_ps(); 4];
            let mut a1 = [_mm256_setzero_ps(); 4];
            let mut c = 0;
            while c < n8 {
                // The hardware prefetcher alone leaves a core far below DRAM bandwidth here.
                _mm_prefetch::<_MM_HINT_T0>(w0.as_ptr().wrapping_add(c + PREFETCH) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(w1.as_ptr().wrapping_add(c + PREFETCH) as *const i8);
                let wa = W::load8(w0.as_ptr().add(c));
                let wb = W::load8(w1.as_ptr().add(c));
                for i in 0..4 {
                    let xv = _mm256_loadu_ps(xr[i].as_ptr().add(c));
                    a0[i] = _mm256_fmadd_ps(xv, wa, a0[i]);
                    a1[i] = _mm256_fmadd_ps(xv, wb, a1[i]);
                }
                c += 8;
            }
            for i in 0..nr {
                dst[o * rows + r + i] = hsum(a0[i]) + tail(xr[i], w0);
                if two {
                    dst[(o + 1) * rows + r + i] = hsum(a1[i]) + tail(xr[i], w1);
                }
            }
            r += nr;
        }
        o += if two { 2 } else { 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::pseudo;

    fn naive(x: &[f32], rows: usize, w: &[f32], out: usize, bias: Option<&[f32]>) -> Vec<f64> {
        let inp = w.len() / out;
        let mut y = vec![0f64; rows * out];
        for r in 0..rows {
            for o in 0..out {
                let mut s: f64 = bias.map_or(0.0, |b| b[o] as f64);
                for i in 0..inp {
                    s += x[r * inp + i] as f64 * w[o * inp + i] as f64;
                }
                y[r * out + o] = s;
            }
        }
        y
    }

    #[test]
    fn linear_matches_naive_for_odd_shapes() {
        for &(rows, inp, out) in &[(1, 384, 1000), (3, 37, 5), (10, 96, 333), (7, 1, 17)] {
            let x = pseudo(rows * inp, 1);
            let w = pseudo(out * inp, 2);
            let b = pseudo(out, 3);
            let got = linear(&x, rows, &w, out, Some(&b));
            let want = naive(&x, rows, &w, out, Some(&b));
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }
}
