//! Local temporal bipartite merging (LTBM, arXiv 2605.25179; written from the issue's
//! description, the paper's text was not reachable here): ToMe's bipartite soft matching
//! (Bolya et al., ICLR 2023) applied to the encoder's output, with each token allowed to merge
//! only into a near neighbour in time, round after round until K groups remain.
//!
//! One round over the groups in time order (by first token) `g_0 .. g_{m-1}`: the groups at
//! even positions form set A, those at odd positions set B. Each A group at position `i` scores
//! the B groups at positions `i ± 1, i ± 3, ..., i ± (2W - 1)` (its `W` nearest B neighbours on
//! each side, `W` the merge window) by the cosine of the groups' key sums (in f64; the sum's
//! cosine is the mean's) and picks the most similar (ties: the earlier B). The `r = min(m - K,
//! |A|)` A groups whose pick is the most similar (ties: the earlier A) merge into their picks,
//! several into one B group if they chose it. Unchosen groups stay. A key row that is not
//! finite counts as the zero vector (similarity 0).
//!
//! A group is kept as its first token and is the equal-weight mean of its members' hidden
//! states (ToMe's size-weighted average, which is the plain mean over the original tokens). With
//! `W = 1` groups stay contiguous; wider windows may interleave them.

use super::{Combination, Keys};
use crate::util::cosine;

/// The default merge window `W`: each A group looks at its two nearest B groups on each side.
pub const DEFAULT_WINDOW: usize = 2;

/// One group: its members (ascending) and its key sum.
struct Group {
    members: Vec<usize>,
    sum: Vec<f64>,
}

/// The groups (members ascending, groups by first member) left after merging `n` tokens down
/// to `k` groups (`k` clamped to `[1, n]`) with merge window `window` (at least 1).
pub fn groups(keys: Keys, n: usize, k: usize, window: usize) -> Vec<Vec<usize>> {
    let dim = keys.dim;
    let window = window.max(1);
    let k = k.clamp(1, n.max(1));
    let mut groups: Vec<Group> = (0..n)
        .map(|t| {
            let row = &keys.data[t * dim..(t + 1) * dim];
            let sum = if row.iter().all(|x| x.is_finite()) {
                row.iter().map(|&x| f64::from(x)).collect()
            } else {
                vec![0.0; dim]
            };
            Group {
                members: vec![t],
                sum,
            }
        })
        .collect();
    while groups.len() > k {
        let m = groups.len();
        // Each A group's best B neighbour: (similarity, a, b).
        let mut edges: Vec<(f64, usize, usize)> = (0..m)
            .step_by(2)
            .filter_map(|a| {
                let lo = a.saturating_sub(2 * window - 1);
                let hi = (a + 2 * window - 1).min(m - 1);
                (lo..=hi)
                    .filter(|b| b % 2 == 1)
                    .map(|b| (cosine(&groups[a].sum, &groups[b].sum), b))
                    // The first maximum: the earlier B on ties.
                    .fold(None, |best: Option<(f64, usize)>, (s, b)| match best {
                        Some((bs, _)) if bs >= s => best,
                        _ => Some((s, b)),
                    })
                    .map(|(s, b)| (s, a, b))
            })
            .collect();
        if edges.is_empty() {
            break;
        }
        let r = (m - k).min(edges.len());
        edges.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let mut gone = vec![false; m];
        for &(_, a, b) in &edges[..r] {
            let Group { members, sum } = std::mem::replace(
                &mut groups[a],
                Group {
                    members: Vec::new(),
                    sum: Vec::new(),
                },
            );
            let into = &mut groups[b];
            into.members.extend(members);
            for (x, y) in into.sum.iter_mut().zip(sum) {
                *x += y;
            }
            gone[a] = true;
        }
        let mut next: Vec<Group> = groups
            .into_iter()
            .zip(gone)
            .filter(|(_, g)| !g)
            .map(|(mut g, _)| {
                g.members.sort_unstable();
                g
            })
            .collect();
        next.sort_by_key(|g| g.members[0]);
        groups = next;
    }
    groups.into_iter().map(|g| g.members).collect()
}

/// The selection of [`groups`]: each group's first token is kept, and a group of several
/// tokens is their mean (a [`Combination`] with equal weights, the first token as target).
pub fn ltbm(keys: Keys, n: usize, k: usize, window: usize) -> (Vec<usize>, Vec<Combination>) {
    let groups = groups(keys, n, k, window);
    let kept = groups.iter().map(|g| g[0]).collect();
    let merged = groups
        .iter()
        .filter(|g| g.len() > 1)
        .map(|g| Combination::mean(g))
        .collect();
    (kept, merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rows: &[[f32; 2]]) -> Vec<f32> {
        rows.iter().flatten().copied().collect()
    }

    #[test]
    fn each_round_merges_the_most_similar_a_into_b() {
        // A = {0, 2, 4}, B = {1, 3}. 0 -> 1 (cos 1), 2 -> 3 (cos 0.71 against 0 for 1), 4 -> 3.
        let data = keys(&[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.9]]);
        let k = Keys {
            data: &data,
            dim: 2,
        };
        assert_eq!(
            groups(k, 5, 5, 1),
            vec![vec![0], vec![1], vec![2], vec![3], vec![4]]
        );
        assert_eq!(
            groups(k, 5, 4, 1),
            vec![vec![0, 1], vec![2], vec![3], vec![4]]
        );
        // r = 2: 0 -> 1 (1.0) and 4 -> 3 (0.999).
        assert_eq!(groups(k, 5, 3, 1), vec![vec![0, 1], vec![2], vec![3, 4]]);
        // Round 1 merges all three A groups (r = 3): {0, 1}, {2, 3, 4}.
        assert_eq!(groups(k, 5, 2, 1), vec![vec![0, 1], vec![2, 3, 4]]);
        assert_eq!(groups(k, 5, 1, 1), vec![vec![0, 1, 2, 3, 4]]);
        let (kept, merged) = ltbm(k, 5, 3, 1);
        assert_eq!(kept, vec![0, 2, 3]);
        assert_eq!(merged[1].parts, vec![(3, 0.5), (4, 0.5)]);
    }

    #[test]
    fn a_wider_window_reaches_a_farther_neighbour() {
        // Token 0 is like token 3 only; with W = 2 it reaches it past 1.
        let data = keys(&[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]);
        let k = Keys {
            data: &data,
            dim: 2,
        };
        // W = 1: A = {0, 2}; 0 sees only 1 (cos 0), 2 sees 1 (1.0) and 3 (0): 2 -> 1 first.
        assert_eq!(groups(k, 4, 3, 1), vec![vec![0], vec![1, 2], vec![3]]);
        assert_eq!(groups(k, 4, 2, 2), vec![vec![0, 3], vec![1, 2]]);
    }

    #[test]
    fn bad_rows_and_tiny_clips() {
        let data = keys(&[[f32::NAN, 0.0], [0.0, 1.0], [0.0, 1.0]]);
        let k = Keys {
            data: &data,
            dim: 2,
        };
        assert_eq!(groups(k, 3, 2, 1), vec![vec![0], vec![1, 2]]);
        assert!(groups(k, 0, 1, 1).is_empty());
        assert_eq!(groups(k, 1, 1, 1), vec![vec![0]]);
    }

    /// Against the naive reference (scripts/make-peer-prune-fixtures.py,
    /// tests/data/prune/ltbm.json) at several K and windows.
    #[test]
    fn matches_the_reference() {
        crate::prune::golden::for_each_case("ltbm.json", |clip, case| {
            let keys = Keys {
                data: &clip.keys,
                dim: clip.dim,
            };
            let keep = case["keep"].as_f64().unwrap();
            let window = case["window"].as_u64().unwrap() as usize;
            let want: Vec<Vec<usize>> = serde_json::from_value(case["groups"].clone()).unwrap();
            let k = crate::prune::budget(keep, clip.n);
            assert_eq!(
                groups(keys, clip.n, k, window),
                want,
                "{} keep {keep} W {window}",
                clip.name
            );
        });
    }
}
