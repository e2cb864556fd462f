//! Vector operations of attention: dot products of a query with keys, and sums of values
//! weighted by softmax weights, each with one fixed order of accumulation so that the batched
//! forms ([`dots`], [`weighted_sum`]) give the same bits as the per-key ones ([`dot`], [`axpy`]).

#[cfg(target_arch = "x86_64")]
use super::cpu;

/// Dot product with 32 independent lanes (vectorises to four 8-wide accumulators).
#[inline(always)]
pub(super) fn dot_with(a: &[f32], b: &[f32], fma: impl Fn(f32, f32, f32) -> f32) -> f32 {
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

/// Plain dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if cpu::avx2_fma() {
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
        if q.len() == 64 && cpu::avx2_fma() {
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
        if out.len() == 64 && cpu::avx2_fma() {
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

/// `out += p * v` (axpy).
pub fn axpy(p: f32, v: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if cpu::avx2_fma() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::pseudo;

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
    fn dot_and_axpy() {
        let a = pseudo(100, 4);
        let b = pseudo(100, 5);
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-4);
        let mut o = vec![1.0f32; 100];
        axpy(2.0, &a, &mut o);
        assert!((o[7] - (1.0 + 2.0 * a[7])).abs() < 1e-6);
    }
}
