//! Small dense kernels for the decoder's few-row products, where a general GEMM spends its time
//! packing: `y = x W^T (+ b)` for a handful of rows `x` reads each weight row once and reuses it
//! for every row of `x` while it sits in L1. Runtime dispatch to AVX2+FMA where the CPU has it.

use rayon::prelude::*;

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
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
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

/// Dot product with 32 independent lanes (vectorises to four 8-wide accumulators).
#[inline(always)]
fn dot_with(a: &[f32], b: &[f32], fma: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 32];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..32 {
            acc[j] = fma(x[j], y[j], acc[j]);
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s = fma(*x, *y, s);
    }
    // Pairwise reduction of the lanes.
    let mut width = 16;
    while width > 0 {
        for j in 0..width {
            acc[j] += acc[j + width];
        }
        width /= 2;
    }
    acc[0] + s
}

/// Plain dot product, dispatched like [`linear`].
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_with(a, b, |x, y, z| x * y + z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_with(a, b, f32::mul_add)
}

/// Appends `dot(q, k_j)` for every `q.len()`-long key `k_j` of `keys` to `out`, with
/// [`dot`]'s exact arithmetic (a 64-wide head, every Whisper's, runs in registers with no call
/// per key).
pub fn dots(q: &[f32], keys: &[f32], out: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        if q.len() == 64
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for; q is 64 long.
            unsafe { dots64_avx2(q, keys, out) };
            return;
        }
    }
    out.extend(keys.chunks_exact(q.len().max(1)).map(|k| dot(q, k)));
}

/// [`dot_with`]'s 32 lanes as four registers: two chunks of 32, then its pairwise reduction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots64_avx2(q: &[f32], keys: &[f32], out: &mut Vec<f32>) {
    use std::arch::x86_64::*;
    let qv: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(q.as_ptr().add(8 * i)));
    out.reserve(keys.len() / 64);
    for k in keys.chunks_exact(64) {
        let p = k.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(p.add(8 * i)), *a);
        }
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(qv[4 + i], _mm256_loadu_ps(p.add(32 + 8 * i)), *a);
        }
        // Widths 16 and 8, then 4, 2 and 1 within the register.
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        out.push(_mm_cvtss_f32(s) + 0.0);
    }
}

/// `out += (w_j / sum) v_j` for every `out.len()`-long value `v_j` of `values`, in order, with
/// [`axpy`]'s exact arithmetic (a 64-wide head keeps `out` in registers).
pub fn weighted_sum(w: &[f32], sum: f32, values: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if out.len() == 64
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for; out is 64
            // long.
            unsafe { weighted_sum64_avx2(w, sum, values, out) };
            return;
        }
    }
    for (p, v) in w.iter().zip(values.chunks_exact(out.len().max(1))) {
        axpy(p / sum, v, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_sum64_avx2(w: &[f32], sum: f32, values: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let o = out.as_mut_ptr();
    let mut acc: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(o.add(8 * i)));
    for (p, v) in w.iter().zip(values.chunks_exact(64)) {
        let pv = _mm256_set1_ps(p / sum);
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(pv, _mm256_loadu_ps(v.as_ptr().add(8 * i)), *a);
        }
    }
    for (i, a) in acc.iter().enumerate() {
        _mm256_storeu_ps(o.add(8 * i), *a);
    }
}

/// `out += p * v` (axpy), dispatched like [`linear`].
pub fn axpy(p: f32, v: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { axpy_avx2(p, v, out) };
            return;
        }
    }
    for (o, x) in out.iter_mut().zip(v) {
        *o += p * x;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(p: f32, v: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(v) {
        *o = p.mul_add(*x, *o);
    }
}

/// Row-wise layer norm in place (`rows x d`), eps 1e-5, statistics in f32 like torch.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32]) {
    let d = gamma.len();
    for row in x.chunks_exact_mut(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// Erf GELU in place (erf to 1.5e-7 absolute, see [`erf_approx`]).
pub fn gelu(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { gelu_avx2(x) };
            return;
        }
    }
    gelu_generic(x);
}

/// Softmax of one row in place.
pub fn softmax_row(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { softmax_row_avx2(row) };
            return;
        }
    }
    softmax_row_generic(row);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::exp_approx`] on eight lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8(x: __m256) -> __m256 {
        let s = _mm256_set1_ps;
        let xc = _mm256_max_ps(_mm256_min_ps(x, s(88.7)), s(-87.3));
        let n = _mm256_floor_ps(_mm256_fmadd_ps(xc, s(std::f32::consts::LOG2_E), s(0.5)));
        let r = _mm256_fnmadd_ps(n, s(0.693_359_4), xc);
        let r = _mm256_fmadd_ps(n, s(2.121_944_4e-4), r);
        let mut p = s(1.987_569_1e-4);
        p = _mm256_fmadd_ps(p, r, s(1.398_199_9e-3));
        p = _mm256_fmadd_ps(p, r, s(8.333_452e-3));
        p = _mm256_fmadd_ps(p, r, s(4.166_579_6e-2));
        p = _mm256_fmadd_ps(p, r, s(1.666_666_5e-1));
        p = _mm256_fmadd_ps(p, r, s(0.5));
        let y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), s(1.0));
        let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
        let under = _mm256_cmp_ps(x, s(-87.3), _CMP_LT_OQ);
        _mm256_andnot_ps(under, _mm256_mul_ps(y, pow2))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax_row(row: &mut [f32]) {
        let n8 = row.len() / 8 * 8;
        let ptr = row.as_mut_ptr();
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < n8 {
            m = _mm256_max_ps(m, _mm256_loadu_ps(ptr.add(i)));
            i += 8;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for &v in &row[n8..] {
            max = max.max(v);
        }
        let mx = _mm256_set1_ps(max);
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < n8 {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(ptr.add(i)), mx));
            _mm256_storeu_ps(ptr.add(i), e);
            acc = _mm256_add_ps(acc, e);
            i += 8;
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        let mut sum: f32 = lanes.iter().sum();
        for v in row[n8..].iter_mut() {
            *v = super::exp_approx(*v - max);
            sum += *v;
        }
        let inv = _mm256_set1_ps(1.0 / sum);
        let mut i = 0;
        while i < n8 {
            _mm256_storeu_ps(ptr.add(i), _mm256_mul_ps(_mm256_loadu_ps(ptr.add(i)), inv));
            i += 8;
        }
        for v in row[n8..].iter_mut() {
            *v /= sum;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu(x: &mut [f32]) {
        let s = _mm256_set1_ps;
        let n8 = x.len() / 8 * 8;
        let ptr = x.as_mut_ptr();
        let sign = s(-0.0);
        let mut i = 0;
        while i < n8 {
            let v = _mm256_loadu_ps(ptr.add(i));
            let z = _mm256_mul_ps(v, s(std::f32::consts::FRAC_1_SQRT_2));
            let a = _mm256_andnot_ps(sign, z);
            let t = _mm256_div_ps(s(1.0), _mm256_fmadd_ps(s(0.327_591_1), a, s(1.0)));
            let mut p = s(1.061_405_4);
            p = _mm256_fmadd_ps(p, t, s(-1.453_152));
            p = _mm256_fmadd_ps(p, t, s(1.421_413_7));
            p = _mm256_fmadd_ps(p, t, s(-0.284_496_74));
            p = _mm256_fmadd_ps(p, t, s(0.254_829_6));
            p = _mm256_mul_ps(p, t);
            let ex = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
            let erf_abs = _mm256_fnmadd_ps(p, ex, s(1.0));
            let erf = _mm256_or_ps(erf_abs, _mm256_and_ps(sign, z));
            let g = _mm256_mul_ps(_mm256_mul_ps(s(0.5), v), _mm256_add_ps(s(1.0), erf));
            _mm256_storeu_ps(ptr.add(i), g);
            i += 8;
        }
        super::gelu_generic(&mut x[n8..]);
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn softmax_row_avx2(row: &mut [f32]) {
    avx2::softmax_row(row);
}

/// Written with eight explicit lanes so that, compiled for AVX2, every pass vectorises.
#[inline(always)]
fn softmax_row_generic(row: &mut [f32]) {
    let mut m = [f32::NEG_INFINITY; 8];
    let chunks = row.len() / 8 * 8;
    for c in row[..chunks].chunks_exact(8) {
        for j in 0..8 {
            m[j] = if c[j] > m[j] { c[j] } else { m[j] };
        }
    }
    let mut max = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in &row[chunks..] {
        max = max.max(v);
    }
    let mut acc = [0f32; 8];
    for c in row[..chunks].chunks_exact_mut(8) {
        for j in 0..8 {
            c[j] = exp_approx(c[j] - max);
            acc[j] += c[j];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for v in row[chunks..].iter_mut() {
        *v = exp_approx(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// `e^x` to about 2 ulp (Cephes' expf polynomial with Cody-Waite range reduction), branch-free
/// so that it vectorises. Inputs below -87.3 give 0 (as for the masked -inf logits).
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let xc = x.clamp(-87.3, 88.7);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.3 {
        0.0
    } else {
        y * scale
    }
}

/// `erf(x)` to 1.5e-7 absolute (Abramowitz and Stegun 7.1.26), vectorisable.
#[inline(always)]
fn erf_approx(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let e = 1.0 - poly * exp_approx(-a * a);
    if x < 0.0 {
        -e
    } else {
        e
    }
}

#[inline(always)]
fn gelu_generic(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf_approx(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn gelu_avx2(x: &mut [f32]) {
    avx2::gelu(x);
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
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

    /// The decoder's attention kernels must give the per-key `dot` and `axpy` bits, whatever
    /// the head size.
    #[test]
    fn dots_and_weighted_sums_equal_per_key_dot_and_axpy() {
        for hd in [64, 48, 7] {
            let q = pseudo(hd, 1);
            let keys = pseudo(hd * 37, 2);
            let mut got = Vec::new();
            dots(&q, &keys, &mut got);
            let want: Vec<f32> = keys.chunks_exact(hd).map(|k| dot(&q, k)).collect();
            assert_eq!(got, want, "dots, head size {hd}");
            let w: Vec<f32> = got.iter().map(|x| x.abs() + 0.1).collect();
            let sum: f32 = w.iter().sum();
            let mut a = pseudo(hd, 3);
            let mut b = a.clone();
            weighted_sum(&w, sum, &keys, &mut a);
            for (p, v) in w.iter().zip(keys.chunks_exact(hd)) {
                axpy(p / sum, v, &mut b);
            }
            assert_eq!(a, b, "weighted sum, head size {hd}");
        }
    }

    #[test]
    fn layer_norm_and_gelu_reference_values() {
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], &[0.5; 4]);
        let want = [-1.3416355, -0.4472118, 0.4472118, 1.3416355];
        for (a, b) in x.iter().zip(want) {
            assert!((a - (b + 0.5)).abs() < 1e-5);
        }
        let mut g = vec![-1.0f32, 0.0, 1.0, 3.0];
        gelu(&mut g);
        for (a, b) in g.iter().zip([-0.15865526f32, 0.0, 0.8413447, 2.9959502]) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn dot_and_axpy() {
        let a = pseudo(100, 4);
        let b = pseudo(100, 5);
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-4);
        let mut o = vec![1.0f32; 100];
        axpy(2.0, &a, &mut o);
        assert!((o[7] - (1.0 + 2.0 * a[7])).abs() < 1e-6);
    }

    #[test]
    fn exp_and_erf_approximations_are_accurate() {
        let mut worst_exp = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp_approx(x) as f64) - want).abs() / want;
            worst_exp = worst_exp.max(rel);
            x += 0.0137;
        }
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp:e}");
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_approx(0.0), 1.0);
        let mut worst_erf = 0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = libm::erf(x as f64);
            worst_erf = worst_erf.max(((erf_approx(x) as f64) - want).abs());
            x += 0.00731;
        }
        assert!(worst_erf < 5e-7, "erf absolute error {worst_erf:e}");
    }

    #[test]
    fn vector_softmax_and_gelu_match_the_scalar_definitions() {
        let xs: Vec<f32> = (0..1003)
            .map(|i| (i as f32 * 0.37).sin() * 12.0 - 3.0)
            .collect();
        let mut g = xs.clone();
        gelu(&mut g);
        for (x, y) in xs.iter().zip(&g) {
            let want = 0.5 * *x as f64 * (1.0 + libm::erf(*x as f64 / std::f64::consts::SQRT_2));
            assert!(
                (*y as f64 - want).abs() < 2e-6 * (1.0 + want.abs()),
                "gelu({x}) = {y}, want {want}"
            );
        }
        let mut row = xs.clone();
        softmax_row(&mut row);
        let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let total: f64 = xs.iter().map(|&x| (x as f64 - max).exp()).sum();
        for (x, p) in xs.iter().zip(&row) {
            let want = (*x as f64 - max).exp() / total;
            assert!(
                (*p as f64 - want).abs() < 1e-6 * want + 1e-12,
                "{p} vs {want}"
            );
        }
    }
}
