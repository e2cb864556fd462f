//! Greedy token choice, and the same choice read from half the bytes.
//!
//! A decoding step ends in the `vocab x d` output projection, the largest read of the step
//! (tiny.en: 40 of its 56 MB), and greedy decoding keeps only its argmax. [`Screen`] holds the
//! projection again in int8 (one scale per row) with, per row, a bound on how far its
//! approximate logit can be from the exact one. The step reads the int8 copy, keeps every token
//! whose upper bound reaches the best lower bound, and computes the exact f32 logits of only
//! those. The token chosen is the one the full projection would choose, bit for bit: every
//! token left out is strictly below the one whose lower bound set the bar.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::model::kernels::cpu;
use crate::model::kernels::{self, Matrix};

/// Steps with at most this many sequences screen. Measured faster than the full projection at
/// every batch tried (1 to 17 sequences: at one, half the bytes; at many, 16-lane arithmetic on
/// int8 instead of the exact kernel's 8 lanes); larger batches (up to the 32 `--batch` allows by
/// default) are untested, so the bound stays.
pub(super) const SCREEN_ROWS: usize = 64;

/// Relative rounding bound of one f32 dot product over `cols` terms, in any order of summation
/// (a chain of at most `cols` roundings of 2^-24 each, plus a reduction), with a 2x margin.
fn gamma(cols: usize) -> f64 {
    2.0 * (cols as f64 + 64.0) * f64::powi(2.0, -24)
}

/// The output projection in int8 with per-row error bounds.
pub(super) struct Screen {
    q: Vec<i8>,
    scale: Vec<f32>,
    /// Per row: `max |w - scale * q|` plus the rounding slack of both dot products, per unit of
    /// `|x|_1`.
    slack: Vec<f32>,
    cols: usize,
    /// The int8 product's kernel; None where the CPU has none worth screening with (the full
    /// projection is faster than portable int8 code).
    kernel: Option<Kernel>,
}

/// The int8 products' vector kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Avx512,
    Avx2,
}

impl Kernel {
    /// The best kernel this CPU runs on `cols`-wide rows.
    fn detect(cols: usize) -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if cols.is_multiple_of(16) && cpu::avx512f() {
                return Some(Kernel::Avx512);
            }
            if cols.is_multiple_of(8) && cpu::avx2_fma() {
                return Some(Kernel::Avx2);
            }
        }
        let _ = cols;
        None
    }
}

impl Screen {
    pub(super) fn new(w: &Matrix) -> Screen {
        let (rows, cols) = (w.rows(), w.cols());
        let per_row: Vec<(Vec<i8>, f32, f64)> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let mut row = vec![0f32; cols];
                w.row_into(r, &mut row);
                let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = max / 127.0;
                let q: Vec<i8> = row
                    .iter()
                    .map(|&v| {
                        if scale > 0.0 {
                            (v / scale).round().clamp(-127.0, 127.0) as i8
                        } else {
                            0
                        }
                    })
                    .collect();
                let err = row
                    .iter()
                    .zip(&q)
                    .map(|(&v, &q)| (f64::from(v) - f64::from(scale) * f64::from(q)).abs())
                    .fold(0f64, f64::max);
                // Both products' rounding: |x . w| <= |x|_1 max |w| <= |x|_1 * 127.5 scale.
                let rounding = 2.0 * gamma(cols) * (f64::from(max) + f64::from(scale));
                (q, scale, err + rounding)
            })
            .collect();
        let mut screen = Screen {
            q: Vec::with_capacity(rows * cols),
            scale: Vec::with_capacity(rows),
            slack: Vec::with_capacity(rows),
            cols,
            kernel: Kernel::detect(cols),
        };
        for (q, scale, slack) in per_row {
            screen.q.extend_from_slice(&q);
            screen.scale.push(scale);
            // Rounded up into f32.
            screen.slack.push((slack * (1.0 + 1e-6)) as f32);
        }
        screen
    }

    /// For each of the `rows` rows of `x` (the final hidden states), the token
    /// [`argmax_unsuppressed`] would choose from `w`'s full logits with `masks[r]`.
    pub(super) fn choose(
        &self,
        w: &Matrix,
        x: &[f32],
        rows: usize,
        masks: &[&[bool]],
        fallback: u32,
    ) -> Vec<u32> {
        let (vocab, d) = (self.scale.len(), self.cols);
        if self.kernel.is_none() || x.iter().any(|v| !v.is_finite()) {
            // No bound holds for infinities: the full projection decides (also without a
            // vector kernel for the int8 product).
            let logits = w.linear(x, rows, None);
            return (0..rows)
                .map(|r| {
                    argmax_unsuppressed(&logits[r * vocab..(r + 1) * vocab], masks[r], fallback)
                })
                .collect();
        }
        let approx = self.approx(x, rows);
        (0..rows)
            .into_par_iter()
            .map(|r| {
                let xr = &x[r * d..(r + 1) * d];
                let l1: f64 = xr.iter().map(|v| f64::from(v.abs())).sum();
                // In f32, every bound widened well past the few roundings of its own arithmetic.
                let l1 = (l1 * (1.0 + 1e-5)) as f32;
                let row = &approx[r * vocab..(r + 1) * vocab];
                let mask = masks[r];
                let open = |o: usize| !mask.get(o).copied().unwrap_or(false);
                let bounds = |o: usize| {
                    let a = self.scale[o] * row[o];
                    let slack = l1 * self.slack[o] + 1e-6 * a.abs() + 1e-30;
                    (a - slack, a + slack)
                };
                let bar = (0..vocab)
                    .filter(|&o| open(o))
                    .map(|o| bounds(o).0)
                    .fold(f32::NEG_INFINITY, f32::max);
                let candidates: Vec<usize> = (0..vocab)
                    .filter(|&o| open(o) && bounds(o).1 >= bar)
                    .collect();
                let exact = w.linear_rows(xr, 1, &candidates);
                let mut best: Option<(usize, f32)> = None;
                for (&o, &v) in candidates.iter().zip(&exact) {
                    if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
                        best = Some((o, v));
                    }
                }
                best.map(|(o, _)| o as u32).unwrap_or(fallback)
            })
            .collect()
    }
}

impl Screen {
    /// `x . q_o` for every int8 row `o` and each of the `rows` rows of `x`, laid out
    /// `rows x vocab` (unscaled). Any order of summation will do: the bound covers it.
    fn approx(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let d = self.cols;
        kernels::by_features(rows, self.scale.len(), None, |first, n, dst| {
            approx_rows(
                self.kernel,
                x,
                rows,
                &self.q[first * d..(first + n) * d],
                d,
                dst,
            )
        })
    }
}

/// `dst[o * rows + r] = x_r . q_o` for the int8 rows `q` (`d` wide), with `kernel` (from
/// [`Kernel::detect`] for `d`).
fn approx_rows(
    kernel: Option<Kernel>,
    x: &[f32],
    rows: usize,
    q: &[i8],
    d: usize,
    dst: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY: `Kernel::detect` found the CPU features and the row width each one needs.
        Some(Kernel::Avx512) => return unsafe { approx_rows_avx512(x, rows, q, d, dst) },
        Some(Kernel::Avx2) => return unsafe { approx_rows_avx2(x, rows, q, d, dst) },
        None => {}
    }
    let _ = kernel;
    for (o, w) in q.chunks_exact(d).enumerate() {
        for r in 0..rows {
            let xr = &x[r * d..(r + 1) * d];
            dst[o * rows + r] = xr.iter().zip(w).map(|(a, &b)| a * f32::from(b)).sum();
        }
    }
}

/// Rows of x taken together against each widened chunk of weights: their accumulators stay in
/// registers (a block size known at compile time, so the loop over rows unrolls).
const BLOCK_ROWS: usize = 8;

/// Calls `$block::<N>` for each block of at most [`BLOCK_ROWS`] rows of x, `N` the block's size.
macro_rules! by_blocks {
    ($block:ident, $x:expr, $rows:expr, $w:expr, $d:expr, $dst:expr, $o:expr) => {{
        let mut r = 0;
        while r < $rows {
            let n = ($rows - r).min(BLOCK_ROWS);
            let x = $x.as_ptr().add(r * $d);
            let out = &mut $dst[$o * $rows + r..$o * $rows + r + n];
            match n {
                8 => $block::<8>($w, x, $d, out),
                7 => $block::<7>($w, x, $d, out),
                6 => $block::<6>($w, x, $d, out),
                5 => $block::<5>($w, x, $d, out),
                4 => $block::<4>($w, x, $d, out),
                3 => $block::<3>($w, x, $d, out),
                2 => $block::<2>($w, x, $d, out),
                _ => $block::<1>($w, x, $d, out),
            }
            r += n;
        }
    }};
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn approx_rows_avx2(x: &[f32], rows: usize, q: &[i8], d: usize, dst: &mut [f32]) {
    for (o, w) in q.chunks_exact(d).enumerate() {
        by_blocks!(block_avx2, x, rows, w.as_ptr(), d, dst, o);
    }
}

/// `out[i] = x_i . w` for `N` consecutive rows of x starting at `x` (`d` wide, a multiple of 8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const N: usize>(w: *const i8, x: *const f32, d: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); N];
    let mut c = 0;
    while c < d {
        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(c + 1024));
        let wv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
            w.add(c) as *const __m128i
        )));
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(i * d + c)), wv, *a);
        }
        c += 8;
    }
    for (o, a) in out.iter_mut().zip(acc) {
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        *o = _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn approx_rows_avx512(x: &[f32], rows: usize, q: &[i8], d: usize, dst: &mut [f32]) {
    for (o, w) in q.chunks_exact(d).enumerate() {
        by_blocks!(block_avx512, x, rows, w.as_ptr(), d, dst, o);
    }
}

/// [`block_avx2`] in 16 lanes (`d` a multiple of 16).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<const N: usize>(w: *const i8, x: *const f32, d: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); N];
    let mut c = 0;
    while c < d {
        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(c + 1024));
        let wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
            w.add(c) as *const __m128i
        )));
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(i * d + c)), wv, *a);
        }
        c += 16;
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = _mm512_reduce_add_ps(a);
    }
}

/// Greedy choice: the highest logit not suppressed (first one on ties, like torch's argmax).
pub(super) fn argmax_unsuppressed(row: &[f32], suppress: &[bool], fallback: u32) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in row.iter().enumerate() {
        if suppress.get(i).copied().unwrap_or(false) || x.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32).unwrap_or(fallback)
}

/// The most likely of `ids` (the language tokens).
pub(super) fn argmax_among(row: &[f32], ids: &[u32]) -> u32 {
    let mut best = (ids[0], f32::NEG_INFINITY);
    for &id in ids {
        if let Some(&x) = row.get(id as usize) {
            if x > best.1 {
                best = (id, x);
            }
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_skips_suppressed_and_nan_and_keeps_first_on_ties() {
        let row = [1.0, 5.0, f32::NAN, 5.0, 4.0];
        assert_eq!(argmax_unsuppressed(&row, &[false; 5], 0), 1);
        assert_eq!(
            argmax_unsuppressed(&row, &[false, true, false, false, false], 0),
            3
        );
        assert_eq!(argmax_unsuppressed(&row, &[true; 5], 7), 7);
    }

    /// A pseudo-random projection in f16 and f32, hidden states of several scales (one pointing
    /// at three nearly tied rows), masks; every kernel this CPU has: each approximate logit is
    /// within its bound of the exact one, and the screened choice is the full projection's
    /// argmax.
    #[test]
    fn screened_choice_equals_the_full_argmax() {
        let (vocab, d) = (3000, 64);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        let mut data: Vec<f32> = (0..vocab * d).map(|_| next() * 0.2).collect();
        // Rows 10 and 11 nearly equal, row 12 an exact copy of 10 (ties go to the first).
        for i in 0..d {
            data[11 * d + i] = data[10 * d + i] + if i == 0 { 1e-4 } else { 0.0 };
            data[12 * d + i] = data[10 * d + i];
        }
        let as_f16: Vec<f32> = data
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        let mut kernels = vec![None];
        #[cfg(target_arch = "x86_64")]
        {
            if cpu::avx2_fma() {
                kernels.push(Some(Kernel::Avx2));
            }
            if cpu::avx512f() {
                kernels.push(Some(Kernel::Avx512));
            }
        }
        for w in [Matrix::new(data.clone(), vocab), Matrix::new(as_f16, vocab)] {
            let mut masks = vec![vec![false; vocab]; 3];
            masks[1][5] = true;
            masks[2].iter_mut().take(2000).for_each(|m| *m = true);
            for &kernel in &kernels {
                let screen = Screen {
                    kernel,
                    ..Screen::new(&w)
                };
                for scale in [0.01f32, 1.0, 30.0] {
                    let rows = 3;
                    let mut x: Vec<f32> = (0..rows * d).map(|_| next() * scale).collect();
                    // Row 1 points at row 10: rows 10, 11 and 12 lead, nearly tied.
                    let mut r10 = vec![0f32; d];
                    w.row_into(10, &mut r10);
                    for (i, v) in r10.iter().enumerate() {
                        x[d + i] = v * scale * 10.0;
                    }
                    let logits = w.linear(&x, rows, None);
                    let approx = screen.approx(&x, rows);
                    for r in 0..rows {
                        let l1: f32 = x[r * d..(r + 1) * d].iter().map(|v| v.abs()).sum();
                        for o in 0..vocab {
                            let a = screen.scale[o] * approx[r * vocab + o];
                            let gap = (a - logits[r * vocab + o]).abs();
                            assert!(
                                gap <= l1 * screen.slack[o],
                                "{kernel:?} row {r} token {o}: {gap}"
                            );
                        }
                    }
                    let mask_refs: Vec<&[bool]> = masks.iter().map(|m| m.as_slice()).collect();
                    let got = screen.choose(&w, &x, rows, &mask_refs, 0);
                    for r in 0..rows {
                        let want =
                            argmax_unsuppressed(&logits[r * vocab..(r + 1) * vocab], &masks[r], 0);
                        assert_eq!(got[r], want, "{kernel:?} row {r}, scale {scale}");
                    }
                }
            }
        }
    }
}
