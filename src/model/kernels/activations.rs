//! The nonlinear functions of a layer's rows: layer norm, softmax and erf GELU, with the
//! branch-free `exp` and `erf` approximations that let them vectorise.

#[cfg(target_arch = "x86_64")]
use super::cpu;

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
        if cpu::avx2_fma() {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { avx2::gelu(x) };
            return;
        }
    }
    gelu_generic(x);
}

/// Softmax of one row in place.
pub fn softmax_row(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if cpu::avx2_fma() {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { avx2::softmax_row(row) };
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

#[cfg(test)]
mod tests {
    use super::*;

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
