//! Merge (SPEC.md section 4): segmentwise anchors that absorb the rest of their segment.

use super::segment::{segment_bounds, segmentwise};
use super::similarity::Targets;
use super::{Combination, Keys, SegmentMode};

pub(crate) struct Merged {
    /// The anchors, unordered.
    pub anchors: Vec<usize>,
    /// Combinations of the anchors that absorbed at least one token, ascending target.
    pub merged: Vec<Combination>,
    /// `S_eff`.
    pub segments: usize,
}

/// Anchors are the segmentwise selection (same `S_eff`, bounds and mode). Every other token of
/// a segment joins the most similar anchor of that segment (cosine of normalised keys, lowest
/// anchor index on ties), and each anchor becomes the score-weighted mean of itself and its
/// joiners: weight `s_j / sum s` where NaN, infinite and negative scores weigh 0 (a weight
/// must be finite and non-negative for a mean), and equal weights when that sum is 0.
///
/// Every segment has at least one anchor (segmentwise keeps `floor(K / S_eff) >= 1` tokens of
/// each), so every token ends up either an anchor or in exactly one anchor's combination.
pub(crate) fn merge(scores: &[f32], keys: Keys, k: usize, s: usize, mode: SegmentMode) -> Merged {
    let n = scores.len();
    let (anchors, s_eff) = segmentwise(scores, k, s, mode);
    let mut is_anchor = vec![false; n];
    for &a in &anchors {
        is_anchor[a] = true;
    }

    let mut merged = Vec::new();
    for w in segment_bounds(n, s_eff).windows(2) {
        let (begin, end) = (w[0], w[1]);
        let seg_anchors: Vec<usize> = (begin..end).filter(|&t| is_anchor[t]).collect();
        if seg_anchors.is_empty() {
            continue;
        }
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); seg_anchors.len()];
        let mut nearest = Targets::new(keys, &seg_anchors);
        for t in (begin..end).filter(|&t| !is_anchor[t]) {
            groups[nearest.nearest(t)].push(t);
        }
        for (&anchor, joined) in seg_anchors.iter().zip(groups) {
            if !joined.is_empty() {
                merged.push(weighted(scores, anchor, &joined));
            }
        }
    }
    Merged {
        anchors,
        merged,
        segments: s_eff,
    }
}

/// The score-weighted mean of `anchor` and `joined` (ascending) as a combination.
fn weighted(scores: &[f32], anchor: usize, joined: &[usize]) -> Combination {
    let weight = |t: usize| {
        let s = f64::from(scores[t]);
        if s.is_finite() && s > 0.0 {
            s
        } else {
            0.0
        }
    };
    let members = || std::iter::once(anchor).chain(joined.iter().copied());
    let total: f64 = members().map(weight).sum();
    let count = (joined.len() + 1) as f64;
    let parts = members()
        .map(|t| {
            // `total` can only be 0 (all weights 0) or positive and finite: finite f32 values
            // summed in f64 cannot overflow.
            let w = if total > 0.0 {
                weight(t) / total
            } else {
                1.0 / count
            };
            (t, w as f32)
        })
        .collect();
    Combination {
        target: anchor,
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_by_hand() {
        // Two segments of four; K = 4, S = 2: two anchors each.
        // Segment 0: scores [4, 1, 3, 2] -> anchors 0 and 2; keys put 1 near 2 and 3 near 0.
        // Segment 1: scores [0, 5, 1, 6] -> anchors 5 and 7; 4 and 6 both near 5.
        let scores = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 1.0, 6.0];
        let data = [
            1.0, 0.0, // 0
            0.1, 1.0, // 1 -> 2
            0.0, 1.0, // 2
            1.0, 0.2, // 3 -> 0
            1.0, 1.0, // 4 -> 5
            1.0, 0.9, // 5
            0.8, 1.0, // 6 -> 5
            -1.0, 0.0, // 7
        ];
        let keys = Keys {
            data: &data,
            dim: 2,
        };
        let out = merge(&scores, keys, 4, 2, SegmentMode::Paper);
        let mut anchors = out.anchors.clone();
        anchors.sort_unstable();
        assert_eq!((anchors, out.segments), (vec![0, 2, 5, 7], 2));
        let targets: Vec<usize> = out.merged.iter().map(|c| c.target).collect();
        assert_eq!(targets, [0, 2, 5]);
        // 0 + 3: weights 4/6, 2/6; 2 + 1: 3/4, 1/4; 5 + 4 + 6: 5/6, 0/6, 1/6.
        assert_eq!(
            out.merged[0].parts,
            [(0, 4.0 / 6.0), (3, (2.0f64 / 6.0) as f32)]
        );
        assert_eq!(out.merged[1].parts, [(2, 0.75), (1, 0.25)]);
        assert_eq!(
            out.merged[2].parts,
            [
                (5, (5.0f64 / 6.0) as f32),
                (4, 0.0),
                (6, (1.0f64 / 6.0) as f32)
            ]
        );
    }

    #[test]
    fn joiners_stay_in_their_segment() {
        // Token 1 is identical in key to anchor 3 of the other segment, but must join anchor 0.
        let scores = [2.0, 1.0, 1.0, 2.0];
        let data = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let keys = Keys {
            data: &data,
            dim: 2,
        };
        let out = merge(&scores, keys, 2, 2, SegmentMode::Paper);
        assert_eq!(out.merged.len(), 2);
        assert_eq!(out.merged[0].target, 0);
        assert_eq!(out.merged[0].parts[1].0, 1);
        assert_eq!(out.merged[1].target, 3);
        assert_eq!(out.merged[1].parts[1].0, 2);
    }

    #[test]
    fn zero_negative_and_nan_scores_weigh_zero_or_equal() {
        let c = weighted(&[0.0, -1.0, f32::NAN], 0, &[1, 2]);
        let third = (1.0f64 / 3.0) as f32;
        assert_eq!(c.parts, [(0, third), (1, third), (2, third)]);
        let c = weighted(&[f32::INFINITY, 1.0, -3.0], 0, &[1, 2]);
        assert_eq!(c.parts, [(0, 0.0), (1, 1.0), (2, 0.0)]);
    }
}
