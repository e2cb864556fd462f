//! VisionZip adapted to audio (SPEC.md section 3): dominant tokens by score, plus contextual
//! tokens that each merge a group of similar remaining tokens.

use super::rank::{in_order, rank};
use super::similarity::Targets;
use super::{Combination, Keys, Order};

/// The number of contextual tokens, `round(K * 10 / 64)` (the original's 54 + 10 split).
pub(crate) fn contextual_count(k: usize) -> usize {
    (k as f64 * 10.0 / 64.0).round() as usize
}

/// VisionZip selection; returns the output tokens (dominant, then targets) and the
/// combinations of the targets that absorbed at least one token.
///
/// - `C = round(K * 10 / 64)`, `D = K - C`; dominant = the D best tokens.
/// - The other `M = N - D` tokens in time order are R; if `C == 0` or `M == 0` the result is
///   plain topk(K).
/// - `C = min(C, M)`, `step = max(1, floor(M / C))`; targets are `R[0], R[step], ...`, the
///   first C of them.
/// - Every other token of R joins its most similar target (cosine of normalised keys, lowest
///   target position on ties). A target with `m` joiners becomes
///   `hidden[target] + (1/m) * sum(hidden[joined])`.
pub(crate) fn visionzip(
    scores: &[f32],
    keys: Keys,
    k: usize,
    order: Order,
) -> (Vec<usize>, Vec<Combination>) {
    let n = scores.len();
    let ranked = rank(scores);
    let c = contextual_count(k);
    let d = k - c.min(k);
    let m = n - d.min(n);
    if c == 0 || m == 0 {
        let mut kept = ranked;
        kept.truncate(k);
        return (in_order(kept, scores, order), Vec::new());
    }

    let mut dominant = ranked;
    dominant.truncate(d);
    let mut is_dominant = vec![false; n];
    for &t in &dominant {
        is_dominant[t] = true;
    }
    if order == Order::Time {
        dominant.sort_unstable();
    }
    let remaining: Vec<usize> = (0..n).filter(|&t| !is_dominant[t]).collect();

    let c = c.min(m);
    let step = (m / c).max(1);
    // `(c - 1) * step <= (c - 1) * m / c < m`, so every position is in range.
    let targets: Vec<usize> = remaining.iter().step_by(step).take(c).copied().collect();

    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); targets.len()];
    let mut nearest = Targets::new(keys, &targets);
    for (pos, &t) in remaining.iter().enumerate() {
        let is_target = pos.is_multiple_of(step) && pos / step < c;
        if !is_target {
            groups[nearest.nearest(t)].push(t);
        }
    }

    // `remaining` is in time order, so each group is already ascending.
    let merged = targets
        .iter()
        .zip(groups)
        .filter(|(_, joined)| !joined.is_empty())
        .map(|(&target, joined)| {
            let w = 1.0 / joined.len() as f32;
            let mut parts = Vec::with_capacity(joined.len() + 1);
            parts.push((target, 1.0));
            parts.extend(joined.into_iter().map(|j| (j, w)));
            Combination { target, parts }
        })
        .collect();

    let mut kept = dominant;
    kept.extend_from_slice(&targets);
    (kept, merged)
}

/// The output tokens (dominant then targets), which do not depend on the keys. Used by the
/// golden test, which has scores but no keys.
#[cfg(test)]
pub(crate) fn kept_without_keys(scores: &[f32], k: usize) -> Vec<usize> {
    let dim = 1;
    let data = vec![1.0; scores.len() * dim];
    let keys = Keys { data: &data, dim };
    visionzip(scores, keys, k, Order::Time).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(merged: &[Combination], target: usize) -> Vec<usize> {
        merged
            .iter()
            .find(|c| c.target == target)
            .map(|c| c.parts[1..].iter().map(|&(j, _)| j).collect())
            .unwrap_or_default()
    }

    #[test]
    fn contextual_count_rounds_half_away() {
        assert_eq!(contextual_count(1), 0);
        assert_eq!(contextual_count(3), 0); // 0.47
        assert_eq!(contextual_count(4), 1); // 0.625
        assert_eq!(contextual_count(64), 10);
        assert_eq!(contextual_count(275), 43); // 42.97
        assert_eq!(contextual_count(16), 3); // 2.5 -> 3
    }

    #[test]
    fn small_example_by_hand() {
        // N = 12, K = 8: C = round(1.25) = 1, D = 7, M = 5, step 5, one target R[0].
        let scores = [9.0, 1.0, 8.0, 2.0, 7.0, 6.0, 5.0, 0.5, 4.0, 3.0, 0.1, 10.0];
        let data: Vec<f32> = (0..12).flat_map(|i| [1.0, i as f32]).collect();
        let keys = Keys {
            data: &data,
            dim: 2,
        };
        let (kept, merged) = visionzip(&scores, keys, 8, Order::Time);
        // Dominant: the 7 best (10, 9, 8, 7, 6, 5, 4) = tokens 11, 0, 2, 4, 5, 6, 8.
        // R = [1, 3, 7, 9, 10], target 1 absorbs the other four.
        assert_eq!(kept, [0, 2, 4, 5, 6, 8, 11, 1]);
        assert_eq!(joined(&merged, 1), [3, 7, 9, 10]);
        assert_eq!(
            merged[0].parts,
            [(1, 1.0), (3, 0.25), (7, 0.25), (9, 0.25), (10, 0.25)]
        );
    }

    #[test]
    fn groups_by_hand() {
        // K = 26 of N = 40 -> C = round(4.06) = 4, D = 22, M = 18, step = 4:
        // targets R[0], R[4], R[8], R[12]. Scores make tokens 0..22 dominant, so R = 22..40 and
        // the targets are 22, 26, 30, 34.
        let scores: Vec<f32> = (0..40).map(|i| 100.0 - i as f32).collect();
        // 2-D keys at angles: targets point N, E, S, W; every other token of R points at one of
        // them, token 39 exactly between N and E (tie -> the lower position, N).
        let mut data = vec![0.0f32; 80];
        let mut set = |t: usize, x: f32, y: f32| {
            data[2 * t] = x;
            data[2 * t + 1] = y;
        };
        set(22, 0.0, 1.0); // N
        set(26, 1.0, 0.0); // E
        set(30, 0.0, -1.0); // S
        set(34, -1.0, 0.0); // W
        for t in [23, 28, 35] {
            set(t, 0.1, 2.0); // near N
        }
        for t in [24, 31, 36] {
            set(t, 3.0, -0.2); // near E
        }
        for t in [25, 27, 29, 32, 37] {
            set(t, -0.3, -1.0); // near S
        }
        for t in [33, 38] {
            set(t, -5.0, 1.0); // near W
        }
        set(39, 2.0, 2.0); // N = E tie
        let keys = Keys {
            data: &data,
            dim: 2,
        };
        let (kept, merged) = visionzip(&scores, keys, 26, Order::Time);
        let mut expected: Vec<usize> = (0..22).collect();
        expected.extend([22, 26, 30, 34]);
        assert_eq!(kept, expected);
        assert_eq!(joined(&merged, 22), [23, 28, 35, 39]);
        assert_eq!(joined(&merged, 26), [24, 31, 36]);
        assert_eq!(joined(&merged, 30), [25, 27, 29, 32, 37]);
        assert_eq!(joined(&merged, 34), [33, 38]);
        let targets: Vec<usize> = merged.iter().map(|c| c.target).collect();
        assert_eq!(targets, [22, 26, 30, 34]);
    }

    #[test]
    fn unjoined_target_has_no_combination_and_score_order_applies_to_dominant() {
        // N = 6, K = 4: C = 1, D = 3, M = 3, step 3: target R[0] absorbs R[1], R[2].
        let scores = [1.0, 5.0, 2.0, 6.0, 3.0, 4.0];
        let data = [1.0; 6];
        let keys = Keys {
            data: &data,
            dim: 1,
        };
        let (kept, merged) = visionzip(&scores, keys, 4, Order::Score);
        assert_eq!(kept, [3, 1, 5, 0]);
        assert_eq!(joined(&merged, 0), [2, 4]);
        // K = 6 = N: C = 1, D = 5, one token left, it is its own target with no joiners.
        let (kept, merged) = visionzip(&scores, keys, 6, Order::Time);
        assert_eq!(kept, [1, 2, 3, 4, 5, 0]);
        assert!(merged.is_empty());
    }

    #[test]
    fn falls_back_to_topk_when_there_are_no_contextual_tokens() {
        let scores = [1.0, 5.0, 2.0, 6.0, 3.0, 4.0];
        let data = [1.0; 6];
        let keys = Keys {
            data: &data,
            dim: 1,
        };
        // K = 3: C = round(0.47) = 0.
        let (kept, merged) = visionzip(&scores, keys, 3, Order::Time);
        assert_eq!(kept, [1, 3, 5]);
        assert!(merged.is_empty());
        let (kept, _) = visionzip(&scores, keys, 3, Order::Score);
        assert_eq!(kept, [3, 1, 5]);
    }

    #[test]
    fn step_is_floor_of_m_over_c() {
        // N = 30, K = 13: C = round(2.03) = 2, D = 11, M = 19, step = 9: targets R[0], R[9].
        let scores: Vec<f32> = (0..30).map(|i| -(i as f32)).collect();
        let data = vec![1.0; 30];
        let keys = Keys {
            data: &data,
            dim: 1,
        };
        let (kept, merged) = visionzip(&scores, keys, 13, Order::Time);
        assert_eq!(kept[11..], [11, 20]);
        // Identical keys: every joiner ties and goes to the first target.
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].parts.len(), 1 + 17);
    }
}
