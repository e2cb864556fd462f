//! The random baseline with its own generator, so that a seed names the same token set on
//! every platform and every crate version (a `rand` upgrade may change its streams).

use crate::util::SplitMix64;

/// `k` distinct indices of `0..n`, uniformly at random, unordered.
///
/// Algorithm (frozen; the test below pins its output): SplitMix64 seeded with `seed`, then a
/// partial Fisher-Yates shuffle of `[0, 1, ..., n - 1]`: for `i in 0..k`,
/// `j = i + ((next_u64() as u128 * (n - i) as u128) >> 64)` (Lemire's multiply-shift: a
/// uniform index in `i..n` up to a bias below `n / 2^64`), then swap positions `i` and `j`.
/// The first `k` positions are the draw. `k` is clamped to `n`.
pub(crate) fn draw(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let k = k.min(n);
    let mut rng = SplitMix64(seed);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        perm.swap(i, j);
    }
    perm.truncate(k);
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // First outputs of Vigna's splitmix64.c with the state starting at 0.
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn pinned_output_for_seed_0() {
        // Frozen (and cross-checked with an independent Python transcription of the algorithm
        // in the doc comment): a change here changes every published random baseline.
        assert_eq!(draw(10, 3, 0), [8, 4, 2]);
    }

    #[test]
    fn draws_are_distinct_in_range_and_reproducible() {
        for (n, k, seed) in [(1, 1, 0), (5, 5, 7), (100, 30, 42), (20_000, 10_000, 3)] {
            let a = draw(n, k, seed);
            assert_eq!(a, draw(n, k, seed));
            let mut s = a.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), k);
            assert!(s.iter().all(|&t| t < n));
        }
        assert_ne!(draw(100, 10, 1), draw(100, 10, 2));
        assert!(draw(0, 3, 0).is_empty());
        assert_eq!(draw(3, 9, 0).len(), 3);
    }

    #[test]
    fn every_token_is_drawn_about_equally_often() {
        // 4000 draws of 3 from 10: each token expects 1200; a 5-sigma band is about +-150.
        let mut counts = [0usize; 10];
        for seed in 0..4000 {
            for t in draw(10, 3, seed) {
                counts[t] += 1;
            }
        }
        assert!(
            counts.iter().all(|&c| (1050..=1350).contains(&c)),
            "{counts:?}"
        );
    }
}
