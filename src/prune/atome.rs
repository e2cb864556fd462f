//! Adjacent token merging, A-ToMe style (Li et al., Interspeech 2023, "Accelerating Transducers
//! through Adjacent Token Merging"), applied once to the encoder's output: the two adjacent
//! groups whose keys are the most similar (cosine) merge, pair by pair, until K groups remain.
//! A group's key is the mean of its members' keys (its cosine is that of their sum); the
//! merged token is the mean of its members' hidden states and spans their time.
//!
//! Ties go to the leftmost pair. A key row that is not finite or has no length counts as the zero
//! vector, whose similarity to anything is 0. The greedy loop keeps the candidate pairs in a
//! heap with stamps, so a clip of `n` tokens costs `O(n log n)` similarities of `dim` values.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Combination, Keys};
use crate::util::cosine;

/// A candidate merge of the group starting at `left` with the one after it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pair {
    sim: f64,
    left: usize,
    /// Stamps of the two groups when the pair was scored; a newer stamp makes it stale.
    stamps: (u32, u32),
}

impl Eq for Pair {}

impl Ord for Pair {
    fn cmp(&self, o: &Self) -> Ordering {
        // Highest similarity first, then the leftmost pair.
        self.sim
            .total_cmp(&o.sim)
            .then_with(|| o.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The groups `(first, last)` (inclusive, in time order) left after merging `n` tokens down to
/// `k` groups (`k >= n` merges nothing; `k` is at least 1), or, with a `threshold`, for as long
/// as the most similar adjacent pair is more similar than it (then `k` is ignored).
pub fn groups(keys: Keys, n: usize, k: usize, threshold: Option<f64>) -> Vec<(usize, usize)> {
    let dim = keys.dim;
    let k = if threshold.is_some() {
        1
    } else {
        k.clamp(1, n.max(1))
    };
    if n == 0 {
        return Vec::new();
    }
    // Per group (indexed by its first token): key sum, last token, neighbours, stamp.
    let mut sum: Vec<Vec<f64>> = (0..n)
        .map(|t| {
            let row = &keys.data[t * dim..(t + 1) * dim];
            if row.iter().all(|x| x.is_finite()) {
                row.iter().map(|&x| f64::from(x)).collect()
            } else {
                vec![0.0; dim]
            }
        })
        .collect();
    let mut last: Vec<usize> = (0..n).collect();
    let mut next: Vec<Option<usize>> = (0..n).map(|t| (t + 1 < n).then_some(t + 1)).collect();
    let mut prev: Vec<Option<usize>> = (0..n).map(|t| t.checked_sub(1)).collect();
    let mut stamp = vec![0u32; n];
    let mut alive = vec![true; n];
    let score = |l: usize, r: usize, sum: &[Vec<f64>], stamp: &[u32]| Pair {
        sim: cosine(&sum[l], &sum[r]),
        left: l,
        stamps: (stamp[l], stamp[r]),
    };
    let mut heap: BinaryHeap<Pair> = (0..n.saturating_sub(1))
        .map(|t| score(t, t + 1, &sum, &stamp))
        .collect();
    let mut count = n;
    while count > k {
        let Some(p) = heap.pop() else { break };
        let l = p.left;
        let Some(r) = next[l].filter(|_| alive[l]) else {
            continue;
        };
        if p.stamps != (stamp[l], stamp[r]) {
            continue;
        }
        // The first current pair off the heap is the most similar one left.
        if threshold.is_some_and(|t| p.sim <= t) {
            break;
        }
        // Merge group r into group l.
        let rs = std::mem::take(&mut sum[r]);
        for (a, b) in sum[l].iter_mut().zip(rs) {
            *a += b;
        }
        last[l] = last[r];
        alive[r] = false;
        next[l] = next[r];
        if let Some(nn) = next[r] {
            prev[nn] = Some(l);
        }
        stamp[l] += 1;
        count -= 1;
        if let Some(pl) = prev[l] {
            heap.push(score(pl, l, &sum, &stamp));
        }
        if let Some(nl) = next[l] {
            heap.push(score(l, nl, &sum, &stamp));
        }
    }
    (0..n).filter(|&t| alive[t]).map(|t| (t, last[t])).collect()
}

/// The selection of [`groups`]: each group's first token is kept, and a group of several
/// tokens is their mean (a [`Combination`] with equal weights, the first token as target).
pub fn atome(
    keys: Keys,
    n: usize,
    k: usize,
    threshold: Option<f64>,
) -> (Vec<usize>, Vec<Combination>) {
    let groups = groups(keys, n, k, threshold);
    let kept = groups.iter().map(|g| g.0).collect();
    let merged = groups
        .iter()
        .filter(|(a, b)| b > a)
        .map(|&(a, b)| Combination::mean(&(a..=b).collect::<Vec<_>>()))
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
    fn the_most_similar_neighbours_merge_first() {
        // Directions: 0 and 1 point the same way, 2 is orthogonal, 3 and 4 nearly the same.
        let data = keys(&[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.9]]);
        let k = Keys {
            data: &data,
            dim: 2,
        };
        assert_eq!(
            groups(k, 5, 5, None),
            vec![(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
        );
        assert_eq!(groups(k, 5, 4, None), vec![(0, 1), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(groups(k, 5, 3, None), vec![(0, 1), (2, 2), (3, 4)]);
        // Group {3, 4} has the mean key (1, 0.95): closer to 2 (cos 0.69) than {0, 1} is (0).
        assert_eq!(groups(k, 5, 2, None), vec![(0, 1), (2, 4)]);
        assert_eq!(groups(k, 5, 1, None), vec![(0, 4)]);
        // Above 0.9: the pairs (0, 1) and (3, 4), then nothing (the best left is 0.69).
        assert_eq!(groups(k, 5, 5, Some(0.9)), vec![(0, 1), (2, 2), (3, 4)]);
        // Above 0.6: also 2 with {3, 4} (0.69), but then {0, 1} with {2, 3, 4} is only 0.57.
        assert_eq!(groups(k, 5, 5, Some(0.6)), vec![(0, 1), (2, 4)]);
        assert_eq!(groups(k, 5, 5, Some(0.5)), vec![(0, 4)]);
        assert_eq!(groups(k, 5, 5, Some(1.0)).len(), 5);
        let (kept, merged) = atome(k, 5, 3, None);
        assert_eq!(kept, vec![0, 2, 3]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[1].target, 3);
        assert_eq!(merged[1].parts, vec![(3, 0.5), (4, 0.5)]);
    }

    #[test]
    fn ties_go_left_and_bad_rows_are_zero() {
        let data = keys(&[[1.0, 0.0]; 4]);
        let k = Keys {
            data: &data,
            dim: 2,
        };
        assert_eq!(groups(k, 4, 3, None), vec![(0, 1), (2, 2), (3, 3)]);
        let data = keys(&[[f32::NAN, 0.0], [0.0, 1.0], [0.0, 1.0]]);
        let k = Keys {
            data: &data,
            dim: 2,
        };
        assert_eq!(groups(k, 3, 2, None), vec![(0, 0), (1, 2)]);
        assert!(groups(k, 0, 1, None).is_empty());
    }

    /// Against the naive reference written from the paper's description
    /// (scripts/make-atome-fixtures.py, tests/data/prune/atome.json): random keys and keys made
    /// of runs of a few directions, at several K.
    #[test]
    fn matches_the_reference() {
        let path = format!("{}/tests/data/prune/atome.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut checked = 0;
        for clip in doc["clips"].as_array().unwrap() {
            let n = clip["n"].as_u64().unwrap() as usize;
            let dim = clip["dim"].as_u64().unwrap() as usize;
            let data: Vec<f32> = clip["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let keys = Keys { data: &data, dim };
            for (k, want) in clip["groups"].as_object().unwrap() {
                let want: Vec<(usize, usize)> = serde_json::from_value(want.clone()).unwrap();
                let k: usize = k.parse().unwrap();
                assert_eq!(
                    groups(keys, n, k, None),
                    want,
                    "{} at K = {k}",
                    clip["name"]
                );
                checked += 1;
            }
            for (t, want) in clip["thresholds"].as_object().unwrap() {
                let want: Vec<(usize, usize)> = serde_json::from_value(want.clone()).unwrap();
                let t: f64 = t.parse().unwrap();
                assert_eq!(
                    groups(keys, n, n, Some(t)),
                    want,
                    "{} above {t}",
                    clip["name"]
                );
                checked += 1;
            }
        }
        assert!(checked >= 10, "{checked}");
    }
}
