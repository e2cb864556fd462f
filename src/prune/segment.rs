//! Segment-based budgets: segmentwise (SPEC.md section 3), adaptive and window (section 4).
//!
//! All three split the clip into contiguous segments and keep the best tokens of each; they
//! differ only in how many tokens each segment gets. The functions here return the kept set in
//! no particular order; `select` puts it in output order.

use std::cmp::Ordering;

use super::rank::{best_first, rank, ranked_range};
use super::SegmentMode;

/// Segment boundaries `b_s = floor(s * N / S)` for `s = 0..=S` (length `S + 1`); segment `s`
/// is `[b_s, b_{s+1})`. Segments differ in length by at most one token and the longer ones are
/// spread out, not bunched at the end. `s == 0` has no segments and returns `[0]`.
pub fn segment_bounds(n: usize, s: usize) -> Vec<usize> {
    if s == 0 {
        return vec![0];
    }
    // u128 so that `s * n` cannot overflow for any usize inputs.
    (0..=s)
        .map(|i| ((i as u128 * n as u128) / s as u128) as usize)
        .collect()
}

/// Every segment's tokens, best first.
fn ranked_segments(scores: &[f32], s_eff: usize) -> Vec<Vec<usize>> {
    segment_bounds(scores.len(), s_eff)
        .windows(2)
        .map(|w| ranked_range(scores, w[0]..w[1]))
        .collect()
}

/// `S_eff = min(S, K, N)`: never more segments than tokens to keep, so every segment keeps at
/// least one. At least 1 for a non-empty clip (`select` guarantees `k >= 1`).
fn effective_segments(s: usize, k: usize, n: usize) -> usize {
    s.min(k).min(n).max(1)
}

/// Segmentwise selection; returns the kept tokens (unordered) and `S_eff`.
///
/// Each segment keeps its `floor(K / S_eff)` best tokens. A segment always has at least that
/// many tokens: its length is at least `floor(N / S_eff) >= floor(K / S_eff)`, so the paper
/// mode keeps exactly `S_eff * floor(K / S_eff)` tokens (the defensive `min` below never
/// binds). In exact mode the `K mod S_eff` leftover tokens go, one each, to the segments whose
/// next-best token ranks highest; there are always enough segments with a token left (when
/// every segment has exactly `floor(K / S_eff)` plus at most one token, the longer ones number
/// `N mod S_eff >= K mod S_eff`), and a segment with none left is skipped.
pub(crate) fn segmentwise(
    scores: &[f32],
    k: usize,
    s: usize,
    mode: SegmentMode,
) -> (Vec<usize>, usize) {
    let s_eff = effective_segments(s, k, scores.len());
    let per = k / s_eff;
    let mut kept = Vec::with_capacity(k);
    let mut next_best = Vec::with_capacity(s_eff);
    for ranked in ranked_segments(scores, s_eff) {
        let take = per.min(ranked.len());
        kept.extend_from_slice(&ranked[..take]);
        if let Some(&candidate) = ranked.get(take) {
            next_best.push(candidate);
        }
    }
    if mode == SegmentMode::Exact {
        next_best.sort_unstable_by(|&a, &b| best_first(scores, a, b));
        kept.extend(next_best.into_iter().take(k % s_eff));
    }
    (kept, s_eff)
}

/// Adaptive (variable-rate) segmentwise; returns exactly `k` tokens (unordered) and `S_eff`.
///
/// 1. Segments as segmentwise, with `S_eff = min(S, K, N)`.
/// 2. Importance `I_s` = sum of the segment's scores in f64; non-finite scores (NaN, +-inf)
///    count as 0 so one bad value cannot take the whole budget or poison every weight.
///    Negative sums count as 0 (a weight must not be negative).
/// 3. Weight `w_s = (I_s / max I)^gamma`, which is `I_s^gamma` up to a common factor but cannot
///    overflow; gamma = 0 gives every segment weight 1 (including `I_s = 0`). If every weight
///    is 0 (or the maximum importance is 0), every segment gets weight 1.
/// 4. Reserve `min(k_min, floor(K / S_eff))` tokens per segment (capped at its length), then
///    share the rest `R` by largest remainder: floors of `R * w_s / sum w` first, then one unit
///    each to the largest fractional parts; equal fractions go to the segment whose next
///    untaken token ranks highest (a segment with none left comes last, then segment index).
///    With gamma = 0 this is exactly exact-mode segmentwise.
/// 5. A segment never keeps more than its length: the overflow goes to the segments of
///    largest weight that still have room (lower segment index first on equal weights).
pub(crate) fn adaptive(
    scores: &[f32],
    k: usize,
    s: usize,
    gamma: f64,
    k_min: usize,
) -> (Vec<usize>, usize) {
    let s_eff = effective_segments(s, k, scores.len());
    let segments = ranked_segments(scores, s_eff);
    let weights = adaptive_weights(scores, &segments, gamma);

    let reserve = k_min.min(k / s_eff);
    let mut alloc: Vec<usize> = segments.iter().map(|seg| reserve.min(seg.len())).collect();
    let rest = k.saturating_sub(alloc.iter().sum());

    let total_weight: f64 = weights.iter().sum();
    let quotas: Vec<f64> = weights
        .iter()
        .map(|w| rest as f64 * w / total_weight)
        .collect();
    let mut floors: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    let fractions: Vec<f64> = quotas
        .iter()
        .zip(&floors)
        .map(|(q, &f)| q - f as f64)
        .collect();
    // Rounding in `R * w / sum w` can push the floors' sum one past R in rare cases; take the
    // excess back from the smallest fractional parts so the total stays exact.
    let mut floor_sum: usize = floors.iter().sum();
    if floor_sum > rest {
        let mut by_fraction: Vec<usize> = (0..s_eff).collect();
        by_fraction.sort_by(|&a, &b| fractions[a].total_cmp(&fractions[b]).then(a.cmp(&b)));
        for &seg in by_fraction.iter().cycle() {
            if floor_sum == rest {
                break;
            }
            if floors[seg] > 0 {
                floors[seg] -= 1;
                floor_sum -= 1;
            }
        }
    }
    for (a, f) in alloc.iter_mut().zip(&floors) {
        *a += f;
    }

    // Largest remainder: one unit each, by fraction, ties by the next untaken token.
    let next_untaken = |seg: usize, alloc: &[usize]| segments[seg].get(alloc[seg]).copied();
    let mut by_remainder: Vec<usize> = (0..s_eff).collect();
    by_remainder.sort_by(|&a, &b| {
        fractions[b].total_cmp(&fractions[a]).then_with(|| {
            match (next_untaken(a, &alloc), next_untaken(b, &alloc)) {
                (Some(ta), Some(tb)) => best_first(scores, ta, tb),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => a.cmp(&b),
            }
        })
    });
    let leftover = rest - floor_sum;
    for &seg in by_remainder.iter().cycle().take(leftover) {
        alloc[seg] += 1;
    }

    // Cap at segment length and pour the overflow into the heaviest segments with room.
    let mut overflow = 0;
    for (a, seg) in alloc.iter_mut().zip(&segments) {
        overflow += a.saturating_sub(seg.len());
        *a = (*a).min(seg.len());
    }
    if overflow > 0 {
        let mut by_weight: Vec<usize> = (0..s_eff).collect();
        by_weight.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        for seg in by_weight {
            let room = segments[seg].len() - alloc[seg];
            let add = room.min(overflow);
            alloc[seg] += add;
            overflow -= add;
        }
    }

    let kept = segments
        .iter()
        .zip(&alloc)
        .flat_map(|(seg, &a)| seg[..a].iter().copied())
        .collect();
    (kept, s_eff)
}

/// The adaptive weights `(I_s / max I)^gamma`, or all ones when they carry no information.
fn adaptive_weights(scores: &[f32], segments: &[Vec<usize>], gamma: f64) -> Vec<f64> {
    let equal = vec![1.0; segments.len()];
    if gamma == 0.0 {
        return equal;
    }
    let importance: Vec<f64> = segments
        .iter()
        .map(|seg| {
            let sum: f64 = seg
                .iter()
                .map(|&t| scores[t])
                .filter(|s| s.is_finite())
                .map(f64::from)
                .sum();
            sum.max(0.0)
        })
        .collect();
    let max = importance.iter().copied().fold(0.0, f64::max);
    if max <= 0.0 {
        return equal;
    }
    let weights: Vec<f64> = importance.iter().map(|i| (i / max).powf(gamma)).collect();
    let total: f64 = weights.iter().sum();
    if total > 0.0 && total.is_finite() {
        weights
    } else {
        equal
    }
}

/// The windows `[w W, min((w + 1) W, N))` of a clip of `n` tokens, each with its share of the
/// keep ratio `round(rho e_w) - round(rho b_w)` (capped at its size), as `(begin, end, share)`:
/// the shares telescope to `round(rho N)` whatever N is. The window method and Samp use them.
pub(crate) fn telescoping(n: usize, keep: f64, w: usize) -> Vec<(usize, usize, usize)> {
    let w = w.max(1);
    let cumulative = |t: usize| (keep * t as f64).round() as usize;
    (0..n.div_ceil(w))
        .map(|win| {
            let begin = win * w;
            let end = begin.saturating_add(w).min(n);
            let share = cumulative(end)
                .saturating_sub(cumulative(begin))
                .min(end - begin);
            (begin, end, share)
        })
        .collect()
}

/// Window selection; returns the kept tokens (unordered) and the number of windows.
///
/// Each window of [`telescoping`] keeps its share of best tokens. When the shares round to 0
/// (K is clamped to at least 1), the best tokens of the clip fill the gap up to `k`.
pub(crate) fn window(scores: &[f32], keep: f64, k: usize, w: usize) -> (Vec<usize>, usize) {
    let n = scores.len();
    let windows = telescoping(n, keep, w);
    let mut taken = vec![false; n];
    let mut kept = Vec::with_capacity(k);
    for &(begin, end, budget) in &windows {
        for t in ranked_range(scores, begin..end).into_iter().take(budget) {
            taken[t] = true;
            kept.push(t);
        }
    }
    let windows = windows.len();
    if kept.len() < k {
        let missing = k - kept.len();
        kept.extend(
            rank(scores)
                .into_iter()
                .filter(|&t| !taken[t])
                .take(missing),
        );
    }
    (kept, windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<usize>) -> Vec<usize> {
        v.sort_unstable();
        v
    }

    #[test]
    fn bounds_follow_the_floor_formula() {
        assert_eq!(segment_bounds(10, 3), [0, 3, 6, 10]);
        assert_eq!(segment_bounds(10, 4), [0, 2, 5, 7, 10]);
        assert_eq!(segment_bounds(3, 5), [0, 0, 1, 1, 2, 3]);
        assert_eq!(segment_bounds(550, 10)[1], 55);
        assert_eq!(segment_bounds(7, 1), [0, 7]);
        assert_eq!(segment_bounds(0, 2), [0, 0, 0]);
        assert_eq!(segment_bounds(5, 0), [0]);
        assert_eq!(
            segment_bounds(usize::MAX, 2),
            [0, usize::MAX / 2, usize::MAX]
        );
    }

    // Ten scores in two segments of five: [0.9 0.1 0.8 0.2 0.7 | 0.3 0.6 0.4 0.5 0.0]
    const TEN: [f32; 10] = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.0];

    #[test]
    fn segmentwise_paper_by_hand() {
        // K = 5, S = 2: 2 per segment, the fifth token is dropped.
        let (kept, s) = segmentwise(&TEN, 5, 2, SegmentMode::Paper);
        assert_eq!((sorted(kept), s), (vec![0, 2, 6, 8], 2));
        // S = 5 (2 tokens each): each pair contributes its best,
        // [0.9 0.1] [0.8 0.2] [0.7 0.3] [0.6 0.4] [0.5 0.0].
        let (kept, _) = segmentwise(&TEN, 5, 5, SegmentMode::Paper);
        assert_eq!(sorted(kept), [0, 2, 4, 6, 8]);
        // Where segmentwise and topk differ: all of topk(3) sits in the first half.
        let (kept, _) = segmentwise(&TEN, 3, 3, SegmentMode::Paper);
        assert_eq!(sorted(kept), [0, 4, 6]);
        let (kept, _) = segmentwise(&TEN, 4, 5, SegmentMode::Paper);
        // S_eff = min(5, 4) = 4 over bounds [0, 2, 5, 7, 10]: one from each.
        assert_eq!(sorted(kept), [0, 2, 6, 8]);
    }

    #[test]
    fn segmentwise_exact_gives_leftovers_to_best_next_tokens() {
        // Next-best: segment 0 has 4 (0.7), segment 1 has 7 (0.4): segment 0 wins.
        let (kept, _) = segmentwise(&TEN, 5, 2, SegmentMode::Exact);
        assert_eq!(sorted(kept), [0, 2, 4, 6, 8]);
        // K = 7, S = 3 over bounds [0, 3, 6, 10]: 2 each, one leftover. Next-best tokens:
        // segment 0 -> 1 (0.1), segment 1 -> 3 (0.2), segment 2 -> 7 (0.4).
        let (kept, _) = segmentwise(&TEN, 7, 3, SegmentMode::Exact);
        assert_eq!(sorted(kept), [0, 2, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn segmentwise_exact_breaks_next_best_ties_by_index() {
        let scores = [1.0, 0.5, 1.0, 0.5, 1.0, 0.5];
        // S = 3, K = 4: one each, the leftover goes to the segment whose next-best (0.5) has
        // the lowest index: segment 0.
        let (kept, _) = segmentwise(&scores, 4, 3, SegmentMode::Exact);
        assert_eq!(sorted(kept), [0, 1, 2, 4]);
    }

    #[test]
    fn segmentwise_degenerate_sizes() {
        // K < S: S_eff = K, one token per segment of a coarser split.
        let (kept, s) = segmentwise(&TEN, 3, 10, SegmentMode::Paper);
        assert_eq!(s, 3);
        // bounds [0, 3, 6, 10]: best of [0.9 0.1 0.8], [0.2 0.7 0.3], [0.6 0.4 0.5 0.0].
        assert_eq!(sorted(kept), [0, 4, 6]);
        // S > N (and K = N): every token is its own segment.
        let (kept, s) = segmentwise(&TEN[..4], 4, 50, SegmentMode::Paper);
        assert_eq!((sorted(kept), s), (vec![0, 1, 2, 3], 4));
        // K = N with N mod S != 0: paper drops the leftover, exact keeps all.
        let (kept, _) = segmentwise(&TEN, 10, 3, SegmentMode::Paper);
        assert_eq!(kept.len(), 9);
        let (kept, _) = segmentwise(&TEN, 10, 3, SegmentMode::Exact);
        assert_eq!(sorted(kept), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn segmentwise_with_one_segment_is_topk() {
        for mode in [SegmentMode::Paper, SegmentMode::Exact] {
            let (kept, s) = segmentwise(&TEN, 4, 1, mode);
            assert_eq!((sorted(kept), s), (vec![0, 2, 4, 6], 1));
        }
    }

    #[test]
    fn adaptive_by_hand() {
        // Segments [0, 5) and [5, 10) with importance 2.7 and 1.8; K = 6, k_min = 1:
        // reserve 1 each, R = 4 shared 0.6 / 0.4 -> 2.4 and 1.6 -> floors 2, 1 and the last
        // unit to the larger fraction (0.6, segment 1). Totals: 3 and 3.
        let (kept, s) = adaptive(&TEN, 6, 2, 1.0, 1);
        assert_eq!((sorted(kept), s), (vec![0, 2, 4, 6, 7, 8], 2));
        // gamma = 2: weights 1 and (1.8/2.7)^2 = 4/9, shares 4 * 9/13 = 2.77 and 1.23 -> 2 + 1
        // and the unit to segment 0 (0.77 > 0.23): 4 and 2.
        let (kept, _) = adaptive(&TEN, 6, 2, 2.0, 1);
        assert_eq!(sorted(kept), [0, 2, 3, 4, 6, 8]);
        // No reserve and a large gamma: the budget flows to the most important segment.
        let (kept, _) = adaptive(&TEN, 4, 2, 50.0, 0);
        assert_eq!(sorted(kept), [0, 2, 3, 4]);
    }

    #[test]
    fn adaptive_caps_at_segment_length_and_passes_overflow_on() {
        // Three segments [0, 3), [3, 6), [6, 10); all importance in segment 0.
        let scores = [10.0, 10.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        // K = 8, no reserve: segment 0 would get 8 but holds 3; the 5 left go to the next
        // weights, all 0 and equal, so in segment order: segment 1 fills (3), then 2 more.
        let (kept, _) = adaptive(&scores, 8, 3, 1.0, 0);
        assert_eq!(sorted(kept), [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn adaptive_with_gamma_zero_is_exact_segmentwise() {
        let (a, _) = adaptive(&TEN, 7, 3, 0.0, 1);
        let (b, _) = segmentwise(&TEN, 7, 3, SegmentMode::Exact);
        assert_eq!(sorted(a), sorted(b));
    }

    #[test]
    fn adaptive_handles_degenerate_importance() {
        // Negative, zero, NaN and infinite scores: weights fall back or ignore them, and the
        // total is still exactly K.
        let cases: [&[f32]; 4] = [
            &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0],
            &[0.0; 6],
            &[f32::NAN, 1.0, f32::NAN, f32::NAN, 2.0, f32::NAN],
            &[f32::INFINITY, 1.0, f32::NEG_INFINITY, 3.0, 2.0, f32::MAX],
        ];
        for scores in cases {
            for k in 1..=6 {
                let (kept, _) = adaptive(scores, k, 3, 1.0, 1);
                let mut kept = sorted(kept);
                assert_eq!(kept.len(), k);
                kept.dedup();
                assert_eq!(kept.len(), k);
            }
        }
        // All-negative importance = equal weights = exact segmentwise.
        let scores = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0];
        let (a, _) = adaptive(&scores, 4, 3, 1.0, 1);
        let (b, _) = segmentwise(&scores, 4, 3, SegmentMode::Exact);
        assert_eq!(sorted(a), sorted(b));
    }

    #[test]
    fn window_by_hand() {
        // W = 4 over 10 tokens: windows [0, 4), [4, 8), [8, 10). rho = 0.5:
        // cumulative round(0) = 0, round(2) = 2, round(4) = 4, round(5) = 5 -> 2, 2, 1.
        let (kept, s) = window(&TEN, 0.5, 5, 4);
        assert_eq!((sorted(kept), s), (vec![0, 2, 4, 6, 8], 3));
        // rho = 0.3: round(1.2) = 1, round(2.4) = 2, round(3.0) = 3 -> 1, 1, 1.
        let (kept, _) = window(&TEN, 0.3, 3, 4);
        assert_eq!(sorted(kept), [0, 4, 8]);
        // rho = 0.05: round(0.5) = 1 only at the end (N = 10), so the last window gets it.
        let (kept, _) = window(&TEN, 0.05, 1, 4);
        assert_eq!(kept, [8]);
        // rho * N rounds to 0: the best token of the clip fills the clamp to K = 1.
        let (kept, _) = window(&TEN, 0.01, 1, 4);
        assert_eq!(kept, [0]);
        // W > N: one window, topk.
        let (kept, s) = window(&TEN, 0.3, 3, 100);
        assert_eq!((sorted(kept), s), (vec![0, 2, 4], 1));
    }
}
