//! Samp (SA-MAP, Tencent AngelSlim), written from the authors' Qwen2-Audio pruner
//! (`Samp/almeval/models/qwen2_audio/qwen2_audio_pruner.py`) and adapted to prunescope's
//! scores and keys (docs/SPEC.md section 4). Two steps, within each 30 s window of tokens (the
//! window the original reads; the budget telescopes over windows as the window method's does):
//!
//! 1. **Merge adjacent similar tokens.** Left to right, a token joins the open group when its
//!    mean cosine to the group's members (average linkage, on the key rows) is at least the
//!    threshold (0.85, the authors' setting); otherwise it opens a new group. A group is the
//!    attention-weighted mean of its members (weights: the tokens' scores, the received
//!    attention; equal weights when they sum to nothing) and its relevance is the members' mean
//!    score.
//! 2. **Similarity-attention diversity selection.** When there are more groups than the
//!    window's budget, the greedy MAP of a determinantal point process with kernel
//!    `L = diag(r) S diag(r)` (S: the cosines of the groups' weighted-mean keys, r: relevance)
//!    picks them (Chen et al., 2018's fast greedy algorithm, in f64; ties: the earlier group).
//!    Should the kernel run out of rank, the remaining picks go by relevance. When there are
//!    fewer groups than the budget, the members that joined with the lowest similarity are
//!    released as tokens of their own until the budget is met (the rule of the authors' Kimi
//!    variant; the Qwen2-Audio code leaves this case unguarded).
//!
//! Each kept group is kept as its first token; a group of several tokens is the weighted mean
//! of their hidden states.

use super::segment::telescoping;
use super::{Combination, Keys};
use crate::util::cosine;

/// The authors' merge threshold (`threshold=0.85` in `run_eval.sh`).
pub const DEFAULT_THRESHOLD: f64 = 0.85;

/// The kept tokens (time order) and the merged ones, for `n` tokens, budget `k`, keep ratio
/// `keep` (for the windows' shares), windows of `window` tokens.
pub fn samp(
    scores: &[f32],
    keys: Keys,
    k: usize,
    keep: f64,
    threshold: f64,
    window: usize,
) -> (Vec<usize>, Vec<Combination>) {
    let n = scores.len();
    let dim = keys.dim;
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|t| {
            let r = &keys.data[t * dim..(t + 1) * dim];
            if r.iter().all(|x| x.is_finite()) {
                r.iter().map(|&x| f64::from(x)).collect()
            } else {
                vec![0.0; dim]
            }
        })
        .collect();
    let weight = |t: usize| {
        let s = f64::from(scores[t]);
        if s.is_finite() && s > 0.0 {
            s
        } else {
            0.0
        }
    };
    let mut kept = Vec::with_capacity(k);
    let mut merged = Vec::new();
    let mut windows = telescoping(n, keep, window);
    // The shares round to nothing only when K was clamped up to 1: the first window takes it.
    let short = k.saturating_sub(windows.iter().map(|w| w.2).sum());
    if let Some(first) = windows.first_mut() {
        first.2 = (first.2 + short).min(first.1 - first.0);
    }
    for (begin, end, budget) in windows {
        for group in window_groups(&rows, &weight, begin..end, budget, threshold) {
            kept.push(group[0]);
            if group.len() > 1 {
                let total: f64 = group.iter().map(|&t| weight(t)).sum();
                let parts = group
                    .iter()
                    .map(|&t| {
                        let w = if total > 0.0 {
                            weight(t) / total
                        } else {
                            1.0 / group.len() as f64
                        };
                        (t, w as f32)
                    })
                    .collect();
                merged.push(Combination {
                    target: group[0],
                    parts,
                });
            }
        }
    }
    (kept, merged)
}

/// The `budget` groups (members ascending, groups in time order) Samp keeps of one window.
fn window_groups(
    rows: &[Vec<f64>],
    weight: &dyn Fn(usize) -> f64,
    range: std::ops::Range<usize>,
    budget: usize,
    threshold: f64,
) -> Vec<Vec<usize>> {
    if budget == 0 {
        return Vec::new();
    }
    if budget >= range.len() {
        return range.map(|t| vec![t]).collect();
    }
    // Step 1: greedy average-linkage groups; each member's similarity when it joined.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut joined: Vec<(f64, usize)> = Vec::new();
    for t in range {
        if let Some(g) = groups.last_mut() {
            let sim = g.iter().map(|&m| cosine(&rows[m], &rows[t])).sum::<f64>() / g.len() as f64;
            if sim >= threshold {
                g.push(t);
                joined.push((sim, t));
                continue;
            }
        }
        groups.push(vec![t]);
    }
    if groups.len() <= budget {
        // Release the members that joined least willingly (ties: the lower index).
        joined.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let released: std::collections::HashSet<usize> = joined
            .iter()
            .take(budget - groups.len())
            .map(|&(_, t)| t)
            .collect();
        let mut out: Vec<Vec<usize>> = Vec::new();
        for g in groups {
            let (alone, stay): (Vec<usize>, Vec<usize>) =
                g.into_iter().partition(|t| released.contains(t));
            out.push(stay);
            out.extend(alone.into_iter().map(|t| vec![t]));
        }
        out.sort_by_key(|g| g[0]);
        return out;
    }
    // Step 2: the groups' weighted-mean keys and relevance, then the greedy DPP MAP.
    let dim = rows.first().map_or(0, Vec::len);
    let features: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| {
            let total: f64 = g.iter().map(|&t| weight(t)).sum();
            let mut f = vec![0.0; dim];
            for &t in g {
                let w = if total > 0.0 {
                    weight(t) / total
                } else {
                    1.0 / g.len() as f64
                };
                for (a, x) in f.iter_mut().zip(&rows[t]) {
                    *a += w * x;
                }
            }
            f
        })
        .collect();
    let relevance: Vec<f64> = groups
        .iter()
        .map(|g| g.iter().map(|&t| weight(t)).sum::<f64>() / g.len() as f64)
        .collect();
    let mut picked = greedy_map(&features, &relevance, budget);
    picked.sort_unstable();
    picked.into_iter().map(|i| groups[i].clone()).collect()
}

/// Fast greedy MAP inference for the DPP with kernel `L[i][j] = r_i r_j cos(f_i, f_j)`:
/// `budget` indices (at most the number of items), in pick order.
fn greedy_map(features: &[Vec<f64>], relevance: &[f64], budget: usize) -> Vec<usize> {
    let m = features.len();
    let budget = budget.min(m);
    let kernel =
        |i: usize, j: usize| relevance[i] * relevance[j] * cosine(&features[i], &features[j]);
    let mut d2: Vec<f64> = (0..m).map(|i| kernel(i, i)).collect();
    let mut chosen = vec![false; m];
    let mut c: Vec<Vec<f64>> = Vec::with_capacity(budget);
    let mut picked = Vec::with_capacity(budget);
    while picked.len() < budget {
        // The first maximum among the unchosen.
        let best = (0..m)
            .filter(|&j| !chosen[j])
            .fold(None, |b: Option<usize>, j| match b {
                Some(bj) if d2[bj] >= d2[j] => b,
                _ => Some(j),
            });
        let Some(j) = best else { break };
        if !(d2[j].is_finite() && d2[j] > 1e-12) {
            break;
        }
        let dj = d2[j].sqrt();
        let e: Vec<f64> = (0..m)
            .map(|x| {
                let proj: f64 = c.iter().map(|ci| ci[j] * ci[x]).sum();
                (kernel(j, x) - proj) / dj
            })
            .collect();
        for (d, ex) in d2.iter_mut().zip(&e) {
            *d -= ex * ex;
        }
        chosen[j] = true;
        picked.push(j);
        c.push(e);
    }
    // Out of rank: the rest by relevance (ties: the earlier item).
    if picked.len() < budget {
        let mut rest: Vec<usize> = (0..m).filter(|&j| !chosen[j]).collect();
        rest.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]).then(a.cmp(&b)));
        picked.extend(rest.into_iter().take(budget - picked.len()));
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_neighbours_merge_and_the_dpp_prefers_diverse_relevant_groups() {
        // Tokens 0-2 one direction, 3-4 another, 5 a third (close to 0-2).
        let data = [
            1.0, 0.0, 0.0, //
            1.0, 0.05, 0.0, //
            1.0, 0.0, 0.05, //
            0.0, 1.0, 0.0, //
            0.0, 1.0, 0.1, //
            1.0, 0.0, 0.1, //
        ];
        let keys = Keys {
            data: &data,
            dim: 3,
        };
        let scores = [1.0, 3.0, 1.0, 0.5, 0.5, 2.0];
        // Budget 2 of 6 (one window): groups {0,1,2}, {3,4}, {5}; relevance 5/3, 0.5, 2.
        // The DPP takes {5} (r^2 = 4), then {3,4} (orthogonal to it) over {0,1,2} (parallel).
        let (kept, merged) = samp(&scores, keys, 2, 2.0 / 6.0, 0.85, 1500);
        assert_eq!(kept, vec![3, 5]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].target, 3);
        assert_eq!(merged[0].parts, vec![(3, 0.5), (4, 0.5)]);
        // Budget 4: three groups, so the member that joined least willingly leaves its group.
        let (kept, _) = samp(&scores, keys, 4, 4.0 / 6.0, 0.85, 1500);
        assert_eq!(kept.len(), 4);
        // Budget 6: every token.
        let (kept, merged) = samp(&scores, keys, 6, 1.0, 0.85, 1500);
        assert_eq!(kept, (0..6).collect::<Vec<_>>());
        assert!(merged.is_empty());
    }

    /// Against the naive reference (scripts/make-peer-prune-fixtures.py,
    /// tests/data/prune/samp.json) at several K and thresholds, over several windows.
    #[test]
    fn matches_the_reference() {
        crate::prune::golden::for_each_case("samp.json", |clip, case| {
            let keys = Keys {
                data: &clip.keys,
                dim: clip.dim,
            };
            let keep = case["keep"].as_f64().unwrap();
            let threshold = case["threshold"].as_f64().unwrap();
            let window = clip.doc["window"].as_u64().unwrap() as usize;
            let want: Vec<Vec<usize>> = serde_json::from_value(case["groups"].clone()).unwrap();
            let k = crate::prune::budget(keep, clip.n);
            let (kept, merged) = samp(&clip.scores, keys, k, keep, threshold, window);
            let what = format!("{} keep {keep} threshold {threshold}", clip.name);
            assert_eq!(
                kept,
                want.iter().map(|g| g[0]).collect::<Vec<_>>(),
                "{what}"
            );
            let groups: Vec<Vec<usize>> = want.into_iter().filter(|g| g.len() > 1).collect();
            let ours: Vec<Vec<usize>> = merged
                .iter()
                .map(|c| c.parts.iter().map(|p| p.0).collect())
                .collect();
            assert_eq!(ours, groups, "{what}: groups");
        });
    }
}
