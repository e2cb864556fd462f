//! CIDEr-D exactly as pycocoevalcap's `Cider` computes it (`cider/cider_scorer.py`): n-grams
//! 1..4 of whitespace-split (already PTB-tokenised) text; document frequencies over the
//! references of the whole corpus; tf-idf vectors with `idf = log(#items) - log(max(1, df))`;
//! clipped cosine similarity per n; a Gaussian length penalty with sigma 6; mean over n, mean
//! over references, times 10. Reproduced quirk: the "length" of the penalty counts the
//! *bigrams* of a caption (the reference's `if n == 1` indexes from zero), not its words.

use std::collections::HashMap;

const N: usize = 4;
const SIGMA: f64 = 6.0;

type Counts<'a> = HashMap<Vec<&'a str>, u32>;

fn precook(s: &str) -> Counts<'_> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut counts = Counts::new();
    for k in 1..=N {
        if words.len() < k {
            break;
        }
        for w in words.windows(k) {
            *counts.entry(w.to_vec()).or_insert(0) += 1;
        }
    }
    counts
}

struct Vector {
    /// Per n-gram order: tf-idf weight of each n-gram.
    vec: [HashMap<Vec<String>, f64>; N],
    norm: [f64; N],
    length: f64,
}

/// One corpus item: its (tokenised) prediction and references.
pub struct Item<'a> {
    pub pred: &'a str,
    pub refs: &'a [String],
}

/// Per-item CIDEr-D scores (their mean is the corpus score pycocoevalcap reports).
pub fn cider_d(items: &[Item<'_>]) -> Vec<f64> {
    if items.is_empty() {
        return Vec::new();
    }
    let crefs: Vec<Vec<Counts<'_>>> = items
        .iter()
        .map(|it| it.refs.iter().map(|r| precook(r)).collect())
        .collect();
    let mut df: HashMap<Vec<&str>, f64> = HashMap::new();
    for refs in &crefs {
        let mut seen: std::collections::HashSet<&Vec<&str>> = std::collections::HashSet::new();
        for r in refs {
            seen.extend(r.keys());
        }
        for g in seen {
            *df.entry(g.clone()).or_insert(0.0) += 1.0;
        }
    }
    let ref_len = (items.len() as f64).ln();
    let to_vec = |counts: &Counts<'_>| -> Vector {
        let mut v = Vector {
            vec: Default::default(),
            norm: [0.0; N],
            length: 0.0,
        };
        for (gram, &tf) in counts {
            let d = df.get(gram).copied().unwrap_or(0.0).max(1.0).ln();
            let n = gram.len() - 1;
            let w = tf as f64 * (ref_len - d);
            v.norm[n] += w * w;
            v.vec[n].insert(gram.iter().map(|s| s.to_string()).collect(), w);
            if n == 1 {
                v.length += tf as f64;
            }
        }
        for x in &mut v.norm {
            *x = x.sqrt();
        }
        v
    };
    items
        .iter()
        .zip(&crefs)
        .map(|(it, refs)| {
            let hyp = to_vec(&precook(it.pred));
            let mut score = [0.0f64; N];
            for r in refs {
                let rv = to_vec(r);
                let delta = hyp.length - rv.length;
                let penalty = (-(delta * delta) / (2.0 * SIGMA * SIGMA)).exp();
                for (n, sc) in score.iter_mut().enumerate() {
                    let mut val = 0.0;
                    for (g, &w) in &hyp.vec[n] {
                        let wr = rv.vec[n].get(g).copied().unwrap_or(0.0);
                        val += w.min(wr) * wr;
                    }
                    if hyp.norm[n] != 0.0 && rv.norm[n] != 0.0 {
                        val /= hyp.norm[n] * rv.norm[n];
                    }
                    *sc += val * penalty;
                }
            }
            let mean = score.iter().sum::<f64>() / N as f64;
            if refs.is_empty() {
                0.0
            } else {
                mean / refs.len() as f64 * 10.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_corpus_of_one_scores_zero_idf() {
        // With one item log(#items) = 0: every idf is zero, as in pycocoevalcap.
        let refs = vec!["a dog barks".to_string()];
        let s = cider_d(&[Item {
            pred: "a dog barks",
            refs: &refs,
        }]);
        assert_eq!(s, vec![0.0]);
    }

    #[test]
    fn exact_match_beats_unrelated() {
        let r1 = vec![
            "a dog barks loudly".to_string(),
            "a dog is barking".to_string(),
        ];
        let r2 = vec!["rain falls on a roof".to_string(), "heavy rain".to_string()];
        let s = cider_d(&[
            Item {
                pred: "a dog barks loudly",
                refs: &r1,
            },
            Item {
                pred: "birds sing",
                refs: &r2,
            },
        ]);
        assert!(s[0] > 1.0 && s[1] == 0.0, "{s:?}");
    }
}
