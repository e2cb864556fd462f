//! SpeechPrune's selection (Lin et al., ICME 2025, arXiv 2412.12009; the paper's text was not
//! reachable here, so this follows the description, docs/SPEC.md section 4): the clip
//! is cut into seconds of audio tokens; each second's share of K follows how similar its tokens
//! are to the prompt (a weight per token, negative and non-finite as 0, averaged per second);
//! within a second, the tokens the prompt attends to most (a score per token) are kept.
//!
//! Shares are proportional to the weights by largest remainders (ties: the earlier second),
//! capped at a second's size, the overflow going to the heaviest seconds with room (ties: the
//! earlier); with no weight anywhere every second weighs the same. Ranking within a second is
//! the order every method shares ([`super::rank`]).

use super::rank;

/// The kept tokens (ascending) of `n = weights.len()` tokens: `k` (at most `n`) shared over
/// groups of `per_group` tokens by their mean weight, the best `scores` of each group.
pub fn speechprune(weights: &[f32], scores: &[f32], k: usize, per_group: usize) -> Vec<usize> {
    let n = weights.len().min(scores.len());
    let per = per_group.max(1);
    let k = k.min(n);
    let groups: Vec<(usize, usize)> = (0..n.div_ceil(per))
        .map(|g| (g * per, ((g + 1) * per).min(n)))
        .collect();
    let mean = |(a, b): (usize, usize)| {
        let sum: f64 = weights[a..b]
            .iter()
            .map(|&w| {
                if w.is_finite() && w > 0.0 {
                    f64::from(w)
                } else {
                    0.0
                }
            })
            .sum();
        sum / (b - a) as f64
    };
    let mut w: Vec<f64> = groups.iter().map(|&g| mean(g)).collect();
    if !w.iter().any(|&x| x > 0.0) {
        w.iter_mut().for_each(|x| *x = 1.0);
    }
    let shares = shares(&w, &groups, k);
    let mut kept: Vec<usize> = groups
        .iter()
        .zip(&shares)
        .flat_map(|(&(a, b), &s)| rank(&scores[a..b]).into_iter().take(s).map(move |t| a + t))
        .collect();
    kept.sort_unstable();
    kept
}

/// `k` shared in proportion to `w` by largest remainders, capped at each group's size.
fn shares(w: &[f64], groups: &[(usize, usize)], k: usize) -> Vec<usize> {
    let total: f64 = w.iter().sum();
    let quotas: Vec<f64> = w.iter().map(|x| k as f64 * x / total).collect();
    let mut out: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    // Rounding can put the floors one past K: take it back from the smallest remainders.
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quotas[a] - out[a] as f64, quotas[b] - out[b] as f64);
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    while out.iter().sum::<usize>() > k {
        if let Some(&g) = order.iter().rev().find(|&&g| out[g] > 0) {
            out[g] -= 1;
        }
    }
    let missing = k - out.iter().sum::<usize>();
    for &g in order.iter().cycle().take(missing) {
        out[g] += 1;
    }
    // Cap at each group's size; the overflow goes to the heaviest groups with room.
    let mut overflow = 0;
    for (s, &(a, b)) in out.iter_mut().zip(groups) {
        overflow += s.saturating_sub(b - a);
        *s = (*s).min(b - a);
    }
    let mut heaviest: Vec<usize> = (0..w.len()).collect();
    heaviest.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
    for g in heaviest {
        let room = (groups[g].1 - groups[g].0) - out[g];
        let add = room.min(overflow);
        out[g] += add;
        overflow -= add;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_share_k_by_similarity_and_keep_their_most_attended() {
        // Three "seconds" of 4 tokens; similarity 0.6, 0.2, 0.0 on average.
        let weights = [0.6, 0.6, 0.6, 0.6, 0.2, 0.2, 0.2, 0.2, 0.0, -1.0, 0.0, 0.0];
        let scores = [1.0, 4.0, 3.0, 2.0, 9.0, 1.0, 8.0, 0.0, 5.0, 5.0, 5.0, 5.0];
        // K = 4: quotas 3 and 1 and 0.
        assert_eq!(speechprune(&weights, &scores, 4, 4), vec![1, 2, 3, 4]);
        // K = 6: quotas 4.5, 1.5, 0: the tie on remainders goes to the earlier second.
        assert_eq!(speechprune(&weights, &scores, 6, 4), vec![0, 1, 2, 3, 4, 6]);
        // K = 10: the first second is full, its overflow goes on.
        let kept = speechprune(&weights, &scores, 10, 4);
        assert_eq!(kept.len(), 10);
        // No similarity anywhere: equal shares.
        assert_eq!(speechprune(&[0.0; 12], &scores, 3, 4), vec![1, 4, 8]);
        assert!(speechprune(&[], &[], 3, 4).is_empty());
    }

    /// Against the naive reference (scripts/make-peer-prune-fixtures.py,
    /// tests/data/prune/speechprune.json) at several K and group sizes.
    #[test]
    fn matches_the_reference() {
        crate::prune::golden::for_each_case("speechprune.json", |clip, case| {
            let sim: Vec<f32> = clip.doc["similarity"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let keep = case["keep"].as_f64().unwrap();
            let per = case["per"].as_u64().unwrap() as usize;
            let want: Vec<usize> = serde_json::from_value(case["kept"].clone()).unwrap();
            let k = crate::prune::budget(keep, clip.n);
            assert_eq!(
                speechprune(&sim, &clip.scores, k, per),
                want,
                "{} keep {keep} per {per}",
                clip.name
            );
        });
    }
}
