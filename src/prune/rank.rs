//! The one ordering every method shares (SPEC.md section 3): score descending, lower index
//! first on ties, NaN counts as -infinity.
//!
//! Comparisons go through `f32::total_cmp` on a normalised key, so sorting never needs a
//! `partial_cmp` unwrap and the result is a strict total order on token indices.

use std::cmp::Ordering;
use std::ops::Range;

use super::Order;

/// The value a score ranks by: NaN becomes -infinity and -0.0 becomes +0.0, so that values
/// that compare equal as numbers tie (and fall back to the index) under `total_cmp`.
#[inline]
fn key(score: f32) -> f32 {
    if score.is_nan() {
        f32::NEG_INFINITY
    } else if score == 0.0 {
        0.0
    } else {
        score
    }
}

/// `Less` when token `a` ranks before token `b` (higher score, or equal score and lower index).
#[inline]
pub(crate) fn best_first(scores: &[f32], a: usize, b: usize) -> Ordering {
    key(scores[b]).total_cmp(&key(scores[a])).then(a.cmp(&b))
}

/// `Less` when token `a` is worse than token `b` (lower score, or equal score and lower index).
#[inline]
fn worst_first(scores: &[f32], a: usize, b: usize) -> Ordering {
    key(scores[a]).total_cmp(&key(scores[b])).then(a.cmp(&b))
}

/// All indices of `scores`, best first: score descending, lower index first on ties, NaN as
/// -infinity.
pub fn rank(scores: &[f32]) -> Vec<usize> {
    ranked_range(scores, 0..scores.len())
}

/// The indices of `range`, best first (the same order [`rank`] gives them).
pub(crate) fn ranked_range(scores: &[f32], range: Range<usize>) -> Vec<usize> {
    let mut idx: Vec<usize> = range.collect();
    // The comparator is a strict total order (the index breaks every tie), so an unstable
    // sort gives the same result as a stable one.
    idx.sort_unstable_by(|&a, &b| best_first(scores, a, b));
    idx
}

/// The `k` best tokens, in rank order.
pub(crate) fn top(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx = rank(scores);
    idx.truncate(k);
    idx
}

/// The `k` worst tokens (lowest score first, lower index first on ties, NaN the worst).
pub(crate) fn bottom(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| worst_first(scores, a, b));
    idx.truncate(k);
    idx
}

/// Puts kept tokens in output order: ascending index, or rank order (descending score).
pub(crate) fn in_order(mut kept: Vec<usize>, scores: &[f32], order: Order) -> Vec<usize> {
    match order {
        Order::Time => kept.sort_unstable(),
        Order::Score => kept.sort_unstable_by(|&a, &b| best_first(scores, a, b)),
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_orders_by_score_then_index() {
        assert_eq!(rank(&[0.2, 0.9, 0.2, 0.5]), [1, 3, 0, 2]);
        assert_eq!(rank(&[]), Vec::<usize>::new());
        assert_eq!(rank(&[1.0, 1.0, 1.0]), [0, 1, 2]);
    }

    #[test]
    fn nan_ranks_as_negative_infinity() {
        let s = [f32::NAN, f32::NEG_INFINITY, -1e30, f32::INFINITY, f32::NAN];
        // -1e30 beats both -inf and NaN; NaN and -inf tie and fall back to the index.
        assert_eq!(rank(&s), [3, 2, 0, 1, 4]);
        assert_eq!(bottom(&s, 5), [0, 1, 4, 2, 3]);
    }

    #[test]
    fn signed_zeros_tie() {
        assert_eq!(rank(&[-0.0, 0.0, -0.0]), [0, 1, 2]);
        assert_eq!(bottom(&[0.0, -0.0], 2), [0, 1]);
    }

    #[test]
    fn top_and_bottom_truncate() {
        let s = [3.0, 1.0, 4.0, 1.0, 5.0];
        assert_eq!(top(&s, 2), [4, 2]);
        assert_eq!(top(&s, 9), [4, 2, 0, 1, 3]);
        assert_eq!(bottom(&s, 3), [1, 3, 0]);
        assert_eq!(ranked_range(&s, 1..4), [2, 1, 3]);
    }

    #[test]
    fn output_orders() {
        let s = [3.0, 1.0, 4.0, 1.0, 5.0];
        assert_eq!(in_order(vec![4, 1, 2], &s, Order::Time), [1, 2, 4]);
        assert_eq!(in_order(vec![1, 3, 2], &s, Order::Score), [2, 1, 3]);
    }
}
