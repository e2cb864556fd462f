//! DART (Wen et al., EMNLP 2025, "Stop looking for important tokens in multimodal language
//! models: duplication matters more"), written from the authors' code (`get_retained_image_token`
//! of `ZichenWen1/DART`) and adapted to the audio encoder's output (docs/SPEC.md section 4).
//!
//! The `P` tokens whose key rows have the largest L1 norm are the pivots. Taking the pivots in
//! ascending index order, each claims, from the tokens neither a pivot nor claimed yet, its quota
//! of those *least* similar to it (cosine of the key rows, in f64; ties: the lower index). Every
//! token kept is thus either a pivot or far from one: near-duplicates of a pivot go. The quotas
//! share `K - P` as evenly as possible (the first pivots take one more when it does not divide),
//! so exactly K tokens stay; with `K <= P` the K largest-norm tokens stay. A key row that is not
//! finite counts as the zero vector (norm 0, similarity 0).

use super::Keys;
use crate::util::cosine;

/// DART's default number of pivots (`pivot_image_token = 4` in the authors' scripts).
pub const DEFAULT_PIVOTS: usize = 4;

/// The kept tokens (pivots first, then each pivot's claims; unordered for the caller).
pub fn dart(keys: Keys, n: usize, k: usize, pivots: usize) -> Vec<usize> {
    let dim = keys.dim;
    let row = |t: usize| -> Vec<f64> {
        let r = &keys.data[t * dim..(t + 1) * dim];
        if r.iter().all(|x| x.is_finite()) {
            r.iter().map(|&x| f64::from(x)).collect()
        } else {
            vec![0.0; dim]
        }
    };
    let rows: Vec<Vec<f64>> = (0..n).map(row).collect();
    let norms: Vec<f32> = rows
        .iter()
        .map(|r| r.iter().map(|x| x.abs()).sum::<f64>() as f32)
        .collect();
    let k = k.min(n);
    let p = pivots.max(1).min(k);
    // The P largest norms (the ranking every method shares: ties to the lower index).
    let mut pivot_list: Vec<usize> = super::rank::top(&norms, p);
    pivot_list.sort_unstable();
    let mut taken = vec![false; n];
    for &t in &pivot_list {
        taken[t] = true;
    }
    let mut kept = pivot_list.clone();
    let rest = k - p;
    for (i, &pivot) in pivot_list.iter().enumerate() {
        let quota = rest / p + usize::from(i < rest % p);
        let mut candidates: Vec<(f64, usize)> = (0..n)
            .filter(|&t| !taken[t])
            .map(|t| (cosine(&rows[pivot], &rows[t]), t))
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, t) in candidates.iter().take(quota) {
            taken[t] = true;
            kept.push(t);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pivots_keep_what_is_unlike_them() {
        // Norms: token 3 is the largest; 0, 1, 2 point its way, 4 and 5 are orthogonal.
        let data = [
            1.0, 0.0, //
            1.0, 0.1, //
            0.9, 0.0, //
            3.0, 0.0, //
            0.0, 1.0, //
            0.0, 0.5, //
        ];
        let keys = Keys {
            data: &data,
            dim: 2,
        };
        // One pivot (3), quota 2: the two least similar, 5 (cos 0) and 4 (cos 0, ties to
        // the lower index: 4 first, then 5).
        let mut kept = dart(keys, 6, 3, 1);
        kept.sort_unstable();
        assert_eq!(kept, vec![3, 4, 5]);
        // K <= P: the K largest norms (3.0 and 1.1).
        let mut kept = dart(keys, 6, 2, 4);
        kept.sort_unstable();
        assert_eq!(kept, vec![1, 3]);
        // Two pivots, 3 and 1; 1 claims first (index order): 4 (cos 0.0995, tied with 5, the
        // lower index), then 3 claims 5 (cos 0). Quotas 1 and 1 of K - P = 2.
        let mut kept = dart(keys, 6, 4, 2);
        kept.sort_unstable();
        assert_eq!(kept, vec![1, 3, 4, 5]);
        assert_eq!(dart(keys, 0, 0, 4), Vec::<usize>::new());
    }

    /// Against the naive reference (scripts/make-peer-prune-fixtures.py,
    /// tests/data/prune/dart.json) at several K and pivot counts.
    #[test]
    fn matches_the_reference() {
        crate::prune::golden::for_each_case("dart.json", |clip, case| {
            let keys = Keys {
                data: &clip.keys,
                dim: clip.dim,
            };
            let keep = case["keep"].as_f64().unwrap();
            let pivots = case["pivots"].as_u64().unwrap() as usize;
            let want: Vec<usize> = serde_json::from_value(case["kept"].clone()).unwrap();
            let mut kept = dart(keys, clip.n, crate::prune::budget(keep, clip.n), pivots);
            kept.sort_unstable();
            assert_eq!(kept, want, "{} keep {keep} pivots {pivots}", clip.name);
        });
    }
}
