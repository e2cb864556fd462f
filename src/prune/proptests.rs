//! Property tests over arbitrary scores (ties, NaN, infinities), keys and parameters.

use std::collections::HashSet;

use proptest::prelude::*;

use super::{
    budget, rank, segment_bounds, select, Combination, Keys, Method, Order, Params, SegmentMode,
    Selection,
};

/// Scores mixing heavy ties (small integers), ordinary values and every special float.
fn score() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => (-3i8..=3).prop_map(f32::from),
        4 => -10.0f32..10.0,
        1 => any::<f32>(),
        1 => prop_oneof![
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(-0.0f32)
        ],
    ]
}

fn scores(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(score(), 0..max_len)
}

/// Scores with matching keys of a random dimension (few distinct directions, so ties in
/// similarity are common; an occasional NaN).
fn scores_and_keys(max_len: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
    (scores(max_len), 1usize..5).prop_flat_map(|(s, dim)| {
        let key = prop_oneof![8 => (-2i8..=2).prop_map(f32::from), 1 => Just(f32::NAN)];
        let n = s.len();
        (Just(s), prop::collection::vec(key, n * dim), Just(dim))
    })
}

fn keep() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (1u32..=1000).prop_map(|x| f64::from(x) / 1000.0),
        1 => Just(1.0),
        1 => 1e-9f64..1e-2,
    ]
}

fn params() -> impl Strategy<Value = Params> {
    (
        keep(),
        1usize..40,
        prop_oneof![Just(SegmentMode::Paper), Just(SegmentMode::Exact)],
        any::<u64>(),
        prop_oneof![Just(0.0), 0.0f64..4.0, Just(60.0)],
        0usize..4,
        1usize..50,
        prop_oneof![Just(Order::Time), Just(Order::Score)],
        1usize..5,
        1usize..10,
        prop_oneof![Just(0.85), -1.0f64..=1.0],
        1usize..80,
    )
        .prop_map(
            |(
                keep,
                segments,
                mode,
                seed,
                gamma,
                k_min,
                window_tokens,
                order,
                merge_window,
                pivots,
                samp_threshold,
                model_window_tokens,
            )| Params {
                keep,
                segments,
                mode,
                seed,
                gamma,
                k_min,
                window_tokens,
                order,
                merge_threshold: None,
                merge_window,
                pivots,
                samp_threshold,
                model_window_tokens,
                source: Default::default(),
            },
        )
}

/// Checks the groups of a merging selection: no token is in two groups (each group: its kept
/// first token, alone or with the tokens merged into it), each group's weights sum to 1, and a
/// group's target is its first member; with `cover`, every token is in one. Returns the groups.
fn groups_of(sel: &Selection, n: usize, cover: bool) -> Result<Vec<Vec<usize>>, TestCaseError> {
    let mut covered = vec![0u32; n];
    let mut groups = Vec::new();
    for &t in &sel.kept {
        let members: Vec<usize> = match sel.merged.iter().find(|c| c.target == t) {
            Some(c) => {
                prop_assert!(c.parts.len() >= 2);
                prop_assert!((sum(&c.parts) - 1.0).abs() < 1e-5, "{:?}", c.parts);
                prop_assert_eq!(c.parts[0].0, t);
                prop_assert!(c.parts.windows(2).all(|w| w[0].0 < w[1].0));
                c.parts.iter().map(|p| p.0).collect()
            }
            None => vec![t],
        };
        for &j in &members {
            covered[j] += 1;
        }
        groups.push(members);
    }
    prop_assert!(
        covered.iter().all(|&c| c == 1 || (c == 0 && !cover)),
        "{:?}",
        covered
    );
    Ok(groups)
}

/// Rank value: NaN is -infinity.
fn value(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

fn distinct_in_range(kept: &[usize], n: usize) -> bool {
    let set: HashSet<_> = kept.iter().collect();
    set.len() == kept.len() && kept.iter().all(|&t| t < n)
}

fn sorted(v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// The number of tokens a method keeps: K, except full (N) and paper-mode segment anchors
/// (`S_eff * floor(K / S_eff)`).
fn expected_len(method: Method, n: usize, p: &Params) -> usize {
    let k = budget(p.keep, n);
    match method {
        Method::Full => n,
        Method::Segmentwise | Method::Merge if p.mode == SegmentMode::Paper && n > 0 => {
            let s_eff = p.segments.min(k).min(n);
            s_eff * (k / s_eff)
        }
        _ => k,
    }
}

fn sum(parts: &[(usize, f32)]) -> f64 {
    parts.iter().map(|&(_, w)| f64::from(w)).sum()
}

fn joined_tokens(merged: &[Combination]) -> Vec<usize> {
    merged
        .iter()
        .flat_map(|c| c.parts[1..].iter().map(|&(t, _)| t))
        .collect()
}

proptest! {
    #[test]
    fn every_method_keeps_distinct_valid_tokens(
        (s, data, dim) in scores_and_keys(120),
        p in params(),
    ) {
        let n = s.len();
        for method in Method::ALL {
            let keys = Keys { data: &data, dim };
            let sel: Selection = select(method, &s, Some(keys), &p).unwrap();
            prop_assert!(distinct_in_range(&sel.kept, n), "{method}: {:?}", sel.kept);
            prop_assert_eq!(sel.kept.len(), expected_len(method, n, &p), "{}", method);
            let k = if method == Method::Full { n } else { budget(p.keep, n) };
            prop_assert_eq!(sel.k, k);
            // Order: time ascending, or rank order; never a different set.
            match (method, p.order) {
                (Method::VisionZip, _) => {}
                (_, Order::Time) => prop_assert_eq!(&sel.kept, &sorted(&sel.kept)),
                (_, Order::Score) => {
                    let r = rank(&s);
                    let mut pos = vec![0; n];
                    for (i, &t) in r.iter().enumerate() {
                        pos[t] = i;
                    }
                    prop_assert!(sel.kept.windows(2).all(|w| pos[w[0]] < pos[w[1]]));
                }
            }
            let flipped = match p.order {
                Order::Time => Order::Score,
                Order::Score => Order::Time,
            };
            let other = Params { order: flipped, ..p.clone() };
            let sel2 = select(method, &s, Some(keys), &other).unwrap();
            prop_assert_eq!(sorted(&sel.kept), sorted(&sel2.kept), "{} order changed the set", method);
            // Every combination is keyed by a kept token.
            prop_assert!(sel.merged.iter().all(|c| sel.kept.contains(&c.target)));
            prop_assert!(sel.merged.windows(2).all(|w| w[0].target < w[1].target));
        }
    }

    #[test]
    fn topk_dominates_and_bottomk_is_dominated(s in scores(200), keep in keep()) {
        let p = Params { keep, ..Params::default() };
        let top = select(Method::TopK, &s, None, &p).unwrap().kept;
        let bottom = select(Method::BottomK, &s, None, &p).unwrap().kept;
        let top_set: HashSet<_> = top.iter().copied().collect();
        let bottom_set: HashSet<_> = bottom.iter().copied().collect();
        for t in 0..s.len() {
            if !top_set.contains(&t) {
                for &kt in &top {
                    let (a, b) = (value(s[kt]), value(s[t]));
                    // Higher, or tied and earlier.
                    prop_assert!(a > b || (a == b && kt < t), "kept {kt} vs dropped {t}");
                }
            }
            if !bottom_set.contains(&t) {
                for &kb in &bottom {
                    let (a, b) = (value(s[kb]), value(s[t]));
                    prop_assert!(a < b || (a == b && kb < t), "kept {kb} vs dropped {t}");
                }
            }
        }
    }

    #[test]
    fn segmentwise_with_one_segment_is_topk(s in scores(200), keep in keep(), exact in any::<bool>()) {
        let mode = if exact { SegmentMode::Exact } else { SegmentMode::Paper };
        for order in [Order::Time, Order::Score] {
            let p = Params { keep, segments: 1, mode, order, ..Params::default() };
            let seg = select(Method::Segmentwise, &s, None, &p).unwrap();
            let top = select(Method::TopK, &s, None, &p).unwrap();
            prop_assert_eq!(seg.kept, top.kept);
        }
    }

    #[test]
    fn segmentwise_keeps_the_best_of_each_segment(s in scores(200), p in params()) {
        let sel = select(Method::Segmentwise, &s, None, &p).unwrap();
        let n = s.len();
        prop_assume!(n > 0);
        let k = budget(p.keep, n);
        let s_eff = p.segments.min(k).min(n);
        prop_assert_eq!(sel.segments, Some(s_eff));
        let kept: HashSet<_> = sel.kept.iter().copied().collect();
        let per = k / s_eff;
        let mut extra = 0;
        for w in segment_bounds(n, s_eff).windows(2) {
            let inside: Vec<usize> = (w[0]..w[1]).filter(|t| kept.contains(t)).collect();
            // Paper: exactly `per`; exact: `per` or one more.
            prop_assert!(inside.len() == per || (p.mode == SegmentMode::Exact && inside.len() == per + 1));
            extra += inside.len() - per;
            for t in (w[0]..w[1]).filter(|t| !kept.contains(t)) {
                for &kt in &inside {
                    let (a, b) = (value(s[kt]), value(s[t]));
                    prop_assert!(a > b || (a == b && kt < t));
                }
            }
        }
        if p.mode == SegmentMode::Exact {
            prop_assert_eq!(extra, k % s_eff);
        }
    }

    #[test]
    fn random_is_reproducible(n in 0usize..300, keep in keep(), seed in any::<u64>()) {
        let s = vec![0.0; n];
        let p = Params { keep, seed, ..Params::default() };
        let a = select(Method::Random, &s, None, &p).unwrap();
        let b = select(Method::Random, &s, None, &p).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn different_seeds_give_different_draws(n in 40usize..300, frac in 0.0f64..1.0, seed in any::<u64>()) {
        // 10 <= K <= N - 10: at least C(40, 10) ~ 8.5e8 possible sets, so a coincidence is
        // far less likely than a bug.
        let k = 10 + ((n - 20) as f64 * frac) as usize;
        let keep = k as f64 / n as f64;
        let s = vec![0.0; n];
        let a = select(Method::Random, &s, None, &Params { keep, seed, ..Params::default() }).unwrap();
        let b = select(Method::Random, &s, None, &Params { keep, seed: seed.wrapping_add(1), ..Params::default() }).unwrap();
        prop_assert_ne!(a.kept, b.kept);
    }

    #[test]
    fn adaptive_with_gamma_zero_is_exact_segmentwise(s in scores(200), p in params()) {
        let a = Params { gamma: 0.0, k_min: 1, ..p.clone() };
        let e = Params { mode: SegmentMode::Exact, ..p.clone() };
        let adaptive = select(Method::Adaptive, &s, None, &a).unwrap();
        let exact = select(Method::Segmentwise, &s, None, &e).unwrap();
        prop_assert_eq!(adaptive.kept, exact.kept);
        prop_assert_eq!(adaptive.segments, exact.segments);
    }

    #[test]
    fn adaptive_and_window_keep_exactly_k(s in scores(300), p in params()) {
        let k = budget(p.keep, s.len());
        for method in [Method::Adaptive, Method::Window] {
            let sel = select(method, &s, None, &p).unwrap();
            prop_assert_eq!(sel.kept.len(), k, "{}", method);
            prop_assert!(distinct_in_range(&sel.kept, s.len()));
        }
        let sel = select(Method::Window, &s, None, &p).unwrap();
        prop_assert_eq!(sel.segments, Some(s.len().div_ceil(p.window_tokens)));
    }

    #[test]
    fn visionzip_combinations_are_well_formed((s, data, dim) in scores_and_keys(200), p in params()) {
        let keys = Keys { data: &data, dim };
        let sel = select(Method::VisionZip, &s, Some(keys), &p).unwrap();
        let n = s.len();
        let k = budget(p.keep, n);
        prop_assert_eq!(sel.kept.len(), k);
        let c = ((k as f64) * 10.0 / 64.0).round() as usize;
        let kept: HashSet<_> = sel.kept.iter().copied().collect();
        if c == 0 || n == k - c {
            prop_assert!(sel.merged.is_empty());
        } else {
            let d = k - c;
            // Dominant: the D best, as a set; targets in ascending (target) order.
            prop_assert_eq!(sorted(&sel.kept[..d]), sorted(&rank(&s)[..d]));
            prop_assert!(sel.kept[d..].windows(2).all(|w| w[0] < w[1]));
            // Every non-kept token joins exactly once; kept tokens never join.
            let joined = joined_tokens(&sel.merged);
            prop_assert!(distinct_in_range(&joined, n));
            let dropped: Vec<usize> = (0..n).filter(|t| !kept.contains(t)).collect();
            prop_assert_eq!(sorted(&joined), dropped);
            for comb in &sel.merged {
                prop_assert!(sel.kept[d..].contains(&comb.target));
                prop_assert_eq!(comb.parts[0], (comb.target, 1.0));
                prop_assert!(comb.parts.len() >= 2);
                prop_assert!((sum(&comb.parts[1..]) - 1.0).abs() < 1e-5);
                prop_assert!(comb.parts[1..].windows(2).all(|w| w[0].0 < w[1].0));
            }
        }
    }

    #[test]
    fn merge_combinations_are_well_formed((s, data, dim) in scores_and_keys(200), p in params()) {
        let keys = Keys { data: &data, dim };
        let sel = select(Method::Merge, &s, Some(keys), &p).unwrap();
        let n = s.len();
        let anchors = select(Method::Segmentwise, &s, None, &p).unwrap();
        prop_assert_eq!(&sel.kept, &anchors.kept);
        let kept: HashSet<_> = sel.kept.iter().copied().collect();
        let joined = joined_tokens(&sel.merged);
        prop_assert!(distinct_in_range(&joined, n));
        let dropped: Vec<usize> = (0..n).filter(|t| !kept.contains(t)).collect();
        prop_assert_eq!(sorted(&joined), dropped);
        if let Some(s_eff) = sel.segments.filter(|_| n > 0) {
            let bounds = segment_bounds(n, s_eff);
            let segment_of = |t: usize| bounds.partition_point(|&b| b <= t);
            for comb in &sel.merged {
                prop_assert_eq!(comb.parts[0].0, comb.target);
                prop_assert!((sum(&comb.parts) - 1.0).abs() < 1e-5);
                prop_assert!(comb.parts.iter().all(|&(_, w)| (0.0..=1.0).contains(&w)));
                for &(t, _) in &comb.parts[1..] {
                    prop_assert_eq!(segment_of(t), segment_of(comb.target));
                }
            }
        }
    }

    #[test]
    fn atome_groups_are_contiguous_disjoint_and_cover_the_clip(
        (s, data, dim) in scores_and_keys(200),
        p in params(),
    ) {
        let keys = Keys { data: &data, dim };
        let sel = select(Method::Atome, &s, Some(keys), &p).unwrap();
        let n = s.len();
        // Every token belongs to exactly one group: its kept first token, alone or merged.
        let mut covered = vec![0u32; n];
        let mut kept = sel.kept.clone();
        kept.sort_unstable();
        for &t in &kept {
            match sel.merged.iter().find(|c| c.target == t) {
                Some(c) => {
                    let len = c.parts.len();
                    prop_assert!(len >= 2);
                    for (i, &(j, w)) in c.parts.iter().enumerate() {
                        prop_assert_eq!(j, t + i, "group of {} not contiguous", t);
                        prop_assert!((f64::from(w) - 1.0 / len as f64).abs() < 1e-6);
                        covered[j] += 1;
                    }
                }
                None => covered[t] += 1,
            }
        }
        prop_assert!(covered.iter().all(|&c| c == 1), "{:?}", covered);
        prop_assert_eq!(sel.kept.len(), budget(p.keep, n));
        // Keeping everything merges nothing.
        let all = select(Method::Atome, &s, Some(keys), &Params { keep: 1.0, ..p.clone() }).unwrap();
        prop_assert!(all.merged.is_empty());
    }

    #[test]
    fn atome_with_a_threshold_stops_where_no_neighbours_are_that_similar(
        (s, data, dim) in scores_and_keys(120),
        t in -1.0f64..1.0,
    ) {
        let keys = Keys { data: &data, dim };
        let p = Params { merge_threshold: Some(t), ..Params::default() };
        let sel = select(Method::Atome, &s, Some(keys), &p).unwrap();
        let n = s.len();
        prop_assert_eq!(sel.k, sel.kept.len());
        // Each group's key sum (non-finite rows as zero), in time order.
        let mut kept = sel.kept.clone();
        kept.sort_unstable();
        let row = |j: usize| -> Vec<f64> {
            let r = &data[j * dim..(j + 1) * dim];
            if r.iter().all(|x| x.is_finite()) {
                r.iter().map(|&x| f64::from(x)).collect()
            } else {
                vec![0.0; dim]
            }
        };
        let sums: Vec<Vec<f64>> = kept
            .iter()
            .map(|&g| {
                let members: Vec<usize> = match sel.merged.iter().find(|c| c.target == g) {
                    Some(c) => c.parts.iter().map(|p| p.0).collect(),
                    None => vec![g],
                };
                let mut acc = vec![0.0; dim];
                for j in members {
                    for (a, b) in acc.iter_mut().zip(row(j)) {
                        *a += b;
                    }
                }
                acc
            })
            .collect();
        for w in sums.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let den = (a.iter().map(|x| x * x).sum::<f64>() * b.iter().map(|x| x * x).sum::<f64>()).sqrt();
            let sim = if den > 0.0 && den.is_finite() { dot / den } else { 0.0 };
            // Summation order differs from the method's: allow rounding.
            prop_assert!(sim <= t + 1e-9, "neighbours at {} above {}", sim, t);
        }
        prop_assert!(n == 0 || !kept.is_empty());
    }

    #[test]
    fn ltbm_groups_partition_the_clip_and_samp_groups_are_disjoint(
        (s, data, dim) in scores_and_keys(200),
        p in params(),
    ) {
        let keys = Keys { data: &data, dim };
        let n = s.len();
        for method in [Method::Ltbm, Method::Samp] {
            let sel = select(method, &s, Some(keys), &Params { order: Order::Time, ..p.clone() }).unwrap();
            prop_assert_eq!(sel.kept.len(), budget(p.keep, n));
            // Samp drops the groups its selection does not pick; LTBM merges every token.
            let groups = groups_of(&sel, n, method == Method::Ltbm)?;
            // LTBM with a window of 1 keeps groups contiguous. (Samp merges neighbours, but a
            // member it releases to meet the budget leaves a gap.)
            if method == Method::Ltbm && p.merge_window == 1 {
                for g in &groups {
                    prop_assert!(g.windows(2).all(|w| w[1] == w[0] + 1), "{}: {:?}", method, g);
                }
            }
            // Samp's groups never cross a window.
            if method == Method::Samp {
                let w = p.model_window_tokens;
                prop_assert!(groups.iter().all(|g| g[0] / w == g[g.len() - 1] / w));
            }
            let all = select(method, &s, Some(keys), &Params { keep: 1.0, ..p.clone() }).unwrap();
            prop_assert!(all.merged.is_empty());
        }
    }

    #[test]
    fn dart_keeps_its_pivots_and_k_tokens(
        (s, data, dim) in scores_and_keys(200),
        p in params(),
    ) {
        let keys = Keys { data: &data, dim };
        let n = s.len();
        let sel = select(Method::Dart, &s, Some(keys), &p).unwrap();
        prop_assert_eq!(sel.kept.len(), budget(p.keep, n));
        prop_assert!(sel.merged.is_empty());
        if n > 0 {
            // The largest L1 key norm (non-finite rows as 0) is always a pivot.
            let norms: Vec<f32> = (0..n)
                .map(|t| {
                    let r = &data[t * dim..(t + 1) * dim];
                    if r.iter().all(|x| x.is_finite()) {
                        r.iter().map(|&x| f64::from(x).abs()).sum::<f64>() as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            prop_assert!(sel.kept.contains(&rank(&norms)[0]));
        }
    }

    #[test]
    fn speechprune_keeps_k_and_follows_the_similarity(
        s in scores(200),
        keep in keep(),
        per in 1usize..40,
        seed in any::<u64>(),
    ) {
        let n = s.len();
        let mut rng = crate::util::SplitMix64(seed);
        let sim: Vec<f32> = (0..n).map(|_| (rng.next_u64() % 1000) as f32 / 1000.0 - 0.2).collect();
        let k = budget(keep, n);
        let kept = super::speechprune(&sim, &s, k, per);
        prop_assert_eq!(kept.len(), k);
        prop_assert!(distinct_in_range(&kept, n));
        prop_assert_eq!(&kept, &sorted(&kept));
        // Two full groups: the one with the larger mean similarity never keeps fewer.
        let groups = n / per;
        let count = |g: usize| kept.iter().filter(|&&t| t / per == g).count();
        let mean = |g: usize| sim[g * per..(g + 1) * per].iter().map(|&x| f64::from(x.max(0.0))).sum::<f64>();
        for a in 0..groups {
            for b in 0..groups {
                if mean(a) > mean(b) {
                    prop_assert!(count(a) >= count(b), "{} {} {:?}", a, b, kept);
                }
            }
        }
    }
}
