//! The decoder's attention over plain slices: one query against one memory
//! ([`attend_parts`]), and a decoding step's cross-attention for the whole batch
//! ([`cross_attention`]), which reads a silence tail shared by several sequences once for all of
//! them instead of once each.
//!
//! Every result is bit-identical to [`attend_parts`] on the sequence's own memory followed by its
//! tail: the same dot per key, the same softmax order, the same accumulation order per output
//! lane. Only the order in which the independent pieces are computed changes.

use rayon::prelude::*;

use crate::model::kernels;

/// Keys per block when several queries share a memory: a block of 32 64-wide keys (8 KB) stays
/// in L1 while every query of the group reads it.
const BLOCK: usize = 32;

/// `(n, heads * hd)` rows -> `(heads, n, hd)`.
pub(super) fn to_heads(rows: &[f32], n: usize, h: usize, hd: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows.len()];
    for t in 0..n {
        for head in 0..h {
            let src = t * h * hd + head * hd;
            let dst = (head * n + t) * hd;
            out[dst..dst + hd].copy_from_slice(&rows[src..src + hd]);
        }
    }
    out
}

/// Softmax numerators of the scores `w` in place (`exp(w - max)`); returns their sum.
fn exp_scores(w: &mut [f32]) -> f32 {
    let max = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in w.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    sum
}

/// `probs[j] = w[j] / sum` for the first `probs.len()` positions.
fn write_probs(w: &[f32], sum: f32, probs: Option<&mut [f32]>) {
    if let Some(probs) = probs {
        for (p, x) in probs.iter_mut().zip(w) {
            *p = x / sum;
        }
    }
}

/// `out = softmax(q . k_t) v` over the concatenation of several `(k, v)` parts, in order (the
/// same arithmetic as over one concatenated memory; q already scaled). `probs`, when given,
/// receives the softmax weights of its length's first positions.
pub(super) fn attend_parts(
    q: &[f32],
    parts: &[(&[f32], &[f32])],
    out: &mut [f32],
    probs: Option<&mut [f32]>,
) {
    let hd = q.len();
    let n: usize = parts.iter().map(|(k, _)| k.len() / hd).sum();
    if n == 0 {
        out.fill(0.0);
        return;
    }
    let mut w: Vec<f32> = Vec::with_capacity(n);
    for (k, _) in parts {
        kernels::dots(q, k, &mut w);
    }
    let sum = exp_scores(&mut w);
    write_probs(&w, sum, probs);
    out.fill(0.0);
    let mut start = 0;
    for (k, v) in parts {
        let n = k.len() / hd;
        kernels::weighted_sum(&w[start..start + n], sum, v, out);
        start += n;
    }
}

/// Keys and values laid out `(heads, n, hd)`.
#[derive(Clone, Copy)]
pub(super) struct Kv<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
}

impl<'a> Kv<'a> {
    /// One head's keys and values.
    fn head(&self, head: usize, heads: usize) -> (&'a [f32], &'a [f32]) {
        let (k, v) = (self.k, self.v);
        let (nk, nv) = (k.len() / heads, v.len() / heads);
        (
            &k[head * nk..(head + 1) * nk],
            &v[head * nv..(head + 1) * nv],
        )
    }
}

/// One sequence's cross-attention memory for a layer: its own rows, then a tail it may share
/// with others (`id`: equal for the same tail).
pub(super) struct Memory<'a> {
    pub own: Kv<'a>,
    pub tail: Option<(usize, Kv<'a>)>,
}

/// Sequences reading the same tail (two or more): its keys and values, the members in batch
/// order.
struct Group<'a> {
    tail: Kv<'a>,
    members: Vec<usize>,
}

/// The tails read by two or more of `memories`, and per sequence its (group, position in the
/// group's members) when it is in one.
fn shared_tails<'a>(memories: &[Memory<'a>]) -> (Vec<Group<'a>>, Vec<Option<(usize, usize)>>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut ids: Vec<usize> = Vec::new();
    for (i, m) in memories.iter().enumerate() {
        if let Some((id, tail)) = m.tail {
            match ids.iter().position(|&x| x == id) {
                Some(g) => groups[g].members.push(i),
                None => {
                    ids.push(id);
                    groups.push(Group {
                        tail,
                        members: vec![i],
                    });
                }
            }
        }
    }
    groups.retain(|g| g.members.len() > 1);
    let mut member: Vec<Option<(usize, usize)>> = vec![None; memories.len()];
    for (g, group) in groups.iter().enumerate() {
        for (at, &i) in group.members.iter().enumerate() {
            member[i] = Some((g, at));
        }
    }
    (groups, member)
}

/// The queries of a step, `b x heads*hd` (already scaled), one `hd`-long row per sequence and
/// head.
#[derive(Clone, Copy)]
struct Queries<'a> {
    q: &'a [f32],
    heads: usize,
    hd: usize,
}

impl<'a> Queries<'a> {
    fn get(&self, i: usize, head: usize) -> &'a [f32] {
        let at = (i * self.heads + head) * self.hd;
        &self.q[at..at + self.hd]
    }
}

/// One task's result of the own rows' pass: the softmax weights of the own rows when asked for,
/// and for a sequence in a group its tail's weights and the softmax sum.
type OwnPart = (Option<Vec<f32>>, Option<(Vec<f32>, f32)>);

/// A step's cross-attention for every sequence and head: `out` (`b x heads*hd`) receives
/// `softmax(q . k_t) v` of each sequence's query `q` (`b x heads*hd`, already scaled) over its
/// own rows followed by its tail; exactly [`attend_parts`] per sequence and head. Returns, per
/// task `i * heads + head` for which `probs_for(i, head)`, the softmax weights of the own rows.
pub(super) fn cross_attention(
    q: &[f32],
    memories: &[Memory<'_>],
    heads: usize,
    out: &mut [f32],
    probs_for: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Vec<Option<Vec<f32>>> {
    let b = memories.len();
    let hd = q.len() / (b * heads).max(1);
    let queries = Queries { q, heads, hd };
    let (groups, member) = shared_tails(memories);
    let tail_scores = tail_scores(&groups, queries);
    let parts = own_parts(queries, memories, &member, &tail_scores, out, probs_for);
    add_tail_values(&groups, (heads, hd), &parts, out);
    parts.into_iter().map(|(p, _)| p).collect()
}

/// First pass: the shared tails' scores, per (group, head) and member; each block of keys is
/// read once for the whole group.
fn tail_scores(groups: &[Group<'_>], queries: Queries<'_>) -> Vec<Vec<Vec<f32>>> {
    let (heads, hd) = (queries.heads, queries.hd);
    (0..groups.len() * heads)
        .into_par_iter()
        .map(|task| {
            let (group, head) = (&groups[task / heads], task % heads);
            let (k, _) = group.tail.head(head, heads);
            let mut scores: Vec<Vec<f32>> = group
                .members
                .iter()
                .map(|_| Vec::with_capacity(k.len() / hd.max(1)))
                .collect();
            for block in k.chunks(BLOCK * hd) {
                for (&i, s) in group.members.iter().zip(scores.iter_mut()) {
                    kernels::dots(queries.get(i, head), block, s);
                }
            }
            scores
        })
        .collect()
}

/// Second pass, per sequence and head: the own rows' scores, the softmax over own rows and
/// tail, the own rows' share of the output (a sequence alone with its tail: the whole output).
/// Grouped sequences hand back their tail weights and sum.
fn own_parts(
    queries: Queries<'_>,
    memories: &[Memory<'_>],
    member: &[Option<(usize, usize)>],
    tail_scores: &[Vec<Vec<f32>>],
    out: &mut [f32],
    probs_for: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Vec<OwnPart> {
    let (heads, hd) = (queries.heads, queries.hd);
    out.par_chunks_mut(hd.max(1))
        .enumerate()
        .map(|(task, o)| {
            let (i, head) = (task / heads, task % heads);
            let m = &memories[i];
            let (own_k, own_v) = m.own.head(head, heads);
            let n_own = own_k.len() / hd.max(1);
            let mut probs = probs_for(i, head).then(|| vec![0f32; n_own]);
            let q = queries.get(i, head);
            let Some((g, at)) = member[i] else {
                let p = probs.as_deref_mut();
                match m.tail {
                    Some((_, tail)) => {
                        let (k, v) = tail.head(head, heads);
                        attend_parts(q, &[(own_k, own_v), (k, v)], o, p)
                    }
                    None => attend_parts(q, &[(own_k, own_v)], o, p),
                }
                return (probs, None);
            };
            let tail = &tail_scores[g * heads + head][at];
            let mut w: Vec<f32> = Vec::with_capacity(n_own + tail.len());
            kernels::dots(q, own_k, &mut w);
            w.extend_from_slice(tail);
            o.fill(0.0);
            if w.is_empty() {
                return (probs, None);
            }
            let sum = exp_scores(&mut w);
            write_probs(&w, sum, probs.as_deref_mut());
            kernels::weighted_sum(&w[..n_own], sum, own_v, o);
            let tail_w = w.split_off(n_own);
            (probs, Some((tail_w, sum)))
        })
        .collect()
}

/// Third pass: the shared tails' share of the output, each block of values read once per
/// group, added to the own rows' share in the same order as over the concatenation.
fn add_tail_values(
    groups: &[Group<'_>],
    (heads, hd): (usize, usize),
    parts: &[OwnPart],
    out: &mut [f32],
) {
    let out_ref: &[f32] = out;
    let added: Vec<Vec<Vec<f32>>> = (0..groups.len() * heads)
        .into_par_iter()
        .map(|task| {
            let (group, head) = (&groups[task / heads], task % heads);
            let (_, v) = group.tail.head(head, heads);
            let at = |i: usize| (i * heads + head) * hd;
            let mut acc: Vec<Vec<f32>> = group
                .members
                .iter()
                .map(|&i| out_ref[at(i)..at(i) + hd].to_vec())
                .collect();
            for (c, block) in v.chunks(BLOCK * hd).enumerate() {
                let keys = c * BLOCK..c * BLOCK + block.len() / hd.max(1);
                for (&i, a) in group.members.iter().zip(acc.iter_mut()) {
                    if let (_, Some((w, sum))) = &parts[i * heads + head] {
                        kernels::weighted_sum(&w[keys.clone()], *sum, block, a);
                    }
                }
            }
            acc
        })
        .collect();
    for (task, acc) in added.into_iter().enumerate() {
        let (group, head) = (&groups[task / heads], task % heads);
        for (&i, a) in group.members.iter().zip(acc) {
            let at = (i * heads + head) * hd;
            out[at..at + hd].copy_from_slice(&a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(i: usize) -> f32 {
        ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.7
    }

    #[test]
    fn attend_matches_naive_softmax() {
        let q = [0.5f32, -1.0, 0.25];
        let k = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let v = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let mut out = [0f32; 3];
        attend_parts(&q, &[(&k, &v)], &mut out, None);
        let e: Vec<f64> = [0.5f64, -1.0, 0.25].iter().map(|x| x.exp()).collect();
        let s: f64 = e.iter().sum();
        for j in 0..3 {
            let want: f64 = (0..3).map(|t| e[t] / s * v[t * 3 + j] as f64).sum();
            assert!((out[j] as f64 - want).abs() < 1e-5);
        }
    }

    #[test]
    fn attention_over_parts_equals_attention_over_their_concatenation() {
        let hd = 8;
        let q: Vec<f32> = (0..hd).map(val).collect();
        let k: Vec<f32> = (0..hd * 9).map(|i| val(i + 5)).collect();
        let v: Vec<f32> = (0..hd * 9).map(|i| val(i + 11)).collect();
        let mut whole = vec![0f32; hd];
        attend_parts(&q, &[(&k, &v)], &mut whole, None);
        let mut split = vec![0f32; hd];
        let at = 4 * hd;
        attend_parts(
            &q,
            &[(&k[..at], &v[..at]), (&k[at..], &v[at..])],
            &mut split,
            None,
        );
        assert_eq!(whole, split, "bit-identical");
        // The weights of the first positions, as asked, sum to at most one.
        let mut probs = vec![0f32; 4];
        attend_parts(&q, &[(&k, &v)], &mut whole, Some(&mut probs));
        let total: f32 = probs.iter().sum();
        assert!(total > 0.0 && total < 1.0 && probs.iter().all(|p| *p > 0.0));
    }

    /// A batch where three sequences share one tail, two another, one has a tail of its own and
    /// one none: every output and every recorded weight equals `attend_parts` bit for bit, for a
    /// 64-wide head (the register kernels) and an odd one (the portable path), with tails longer
    /// than a block and an empty own memory.
    #[test]
    fn batched_cross_attention_equals_attention_per_sequence() {
        for (hd, heads) in [(64, 2), (5, 3)] {
            let d = hd * heads;
            let buf = |n: usize, seed: usize| -> Vec<f32> {
                (0..n * d).map(|i| val(i * 7 + seed)).collect()
            };
            let tails = [
                (buf(70, 1), buf(70, 2)),
                (buf(33, 3), buf(33, 4)),
                (buf(5, 5), buf(5, 6)),
            ];
            // (own rows, tail index)
            let shape = [
                (12, Some(0)),
                (0, Some(0)),
                (40, Some(1)),
                (7, None),
                (3, Some(0)),
                (9, Some(2)),
                (25, Some(1)),
            ];
            let owns: Vec<(Vec<f32>, Vec<f32>)> = shape
                .iter()
                .enumerate()
                .map(|(i, &(n, _))| (buf(n, 10 + i), buf(n, 30 + i)))
                .collect();
            let memories: Vec<Memory> = shape
                .iter()
                .zip(&owns)
                .map(|(&(_, t), (k, v))| Memory {
                    own: Kv { k, v },
                    tail: t.map(|t| {
                        (
                            t,
                            Kv {
                                k: &tails[t].0,
                                v: &tails[t].1,
                            },
                        )
                    }),
                })
                .collect();
            let b = shape.len();
            let q: Vec<f32> = (0..b * d).map(|i| val(i * 3 + 99)).collect();
            let record = |i: usize, head: usize| (i + head).is_multiple_of(2);
            let mut out = vec![f32::NAN; b * d];
            let probs = cross_attention(&q, &memories, heads, &mut out, &record);
            for (i, m) in memories.iter().enumerate() {
                for head in 0..heads {
                    let qh = &q[(i * heads + head) * hd..(i * heads + head + 1) * hd];
                    let own = m.own.head(head, heads);
                    let mut want = vec![0f32; hd];
                    let mut p = vec![0f32; own.0.len() / hd];
                    match m.tail {
                        Some((_, t)) => {
                            attend_parts(qh, &[own, t.head(head, heads)], &mut want, Some(&mut p))
                        }
                        None => attend_parts(qh, &[own], &mut want, Some(&mut p)),
                    }
                    let at = (i * heads + head) * hd;
                    let got = &out[at..at + hd];
                    assert_eq!(
                        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        "sequence {i}, head {head}, hd {hd}"
                    );
                    let task = &probs[i * heads + head];
                    if record(i, head) {
                        assert_eq!(task.as_deref(), Some(p.as_slice()), "weights {i} {head}");
                    } else {
                        assert!(task.is_none());
                    }
                }
            }
        }
    }

    #[test]
    fn to_heads_transposes() {
        // n=2, h=2, hd=1: rows [t0h0, t0h1, t1h0, t1h1] -> [h0t0, h0t1, h1t0, h1t1]
        assert_eq!(
            to_heads(&[1.0, 2.0, 3.0, 4.0], 2, 2, 1),
            vec![1.0, 3.0, 2.0, 4.0]
        );
    }
}
