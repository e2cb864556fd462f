//! Pure logic of the comparison grid: which runs it holds, the cache key of a cell (which
//! parameters its result depends on), the order the worker gets them in, and word-level diff
//! and WER against a reference text.

use crate::engine::{Decoding, RunMethod, RunSpec, Tail};
use crate::prune::{Method, Params};

/// Rows every grid has, in this order.
pub const BASE_METHODS: [RunMethod; 7] = [
    RunMethod::Vanilla,
    RunMethod::Prune(Method::Full),
    RunMethod::Prune(Method::TopK),
    RunMethod::Prune(Method::Segmentwise),
    RunMethod::Prune(Method::VisionZip),
    RunMethod::Prune(Method::Random),
    RunMethod::Prune(Method::BottomK),
];

/// Rows the user can add.
pub const EXTENSIONS: [Method; 3] = [Method::Adaptive, Method::Window, Method::Merge];

/// Keep ratios every grid has; the slider's value is added as a fourth column.
pub const FIXED_KEEPS: [f64; 3] = [0.5, 0.25, 0.1];

/// Whether a run ignores the keep ratio (shown once, in the first column).
pub fn is_fixed(m: RunMethod) -> bool {
    matches!(m, RunMethod::Vanilla | RunMethod::Prune(Method::Full))
}

/// The grid's columns: the fixed ratios, then `current` unless it equals one of them.
pub fn keeps(current: f64) -> Vec<f64> {
    let mut k = FIXED_KEEPS.to_vec();
    if !k.iter().any(|x| (x - current).abs() < 1e-9) {
        k.push(current);
    }
    k
}

/// The grid's rows: the base methods plus the enabled extensions.
pub fn methods(extensions: &[Method]) -> Vec<RunMethod> {
    BASE_METHODS
        .into_iter()
        .chain(
            EXTENSIONS
                .into_iter()
                .filter(|m| extensions.contains(m))
                .map(RunMethod::Prune),
        )
        .collect()
}

/// The spec of a cell (`None` for the empty cells of fixed rows).
pub fn cell(method: RunMethod, keep: f64, column: usize) -> Option<RunSpec> {
    if is_fixed(method) {
        (column == 0).then_some(RunSpec { method, keep: 1.0 })
    } else {
        Some(RunSpec { method, keep })
    }
}

/// A key that changes exactly when the cell's output can: the method, its keep ratio, the
/// parameters that method reads, the silence tail and the loop guard.
pub fn cell_key(spec: &RunSpec, p: &Params, decoding: &Decoding) -> String {
    let keep = if is_fixed(spec.method) {
        1.0
    } else {
        spec.keep
    };
    let extra = match spec.method {
        RunMethod::Vanilla => String::new(),
        RunMethod::Prune(m) => {
            let mut e = format!(" order={}", p.order.name());
            match m {
                Method::Segmentwise | Method::Merge => {
                    e += &format!(" S={} mode={}", p.segments, p.mode.name())
                }
                Method::Adaptive => {
                    e += &format!(" S={} gamma={} kmin={}", p.segments, p.gamma, p.k_min)
                }
                Method::Window => e += &format!(" W={}", p.window_tokens),
                Method::Random => e += &format!(" seed={}", p.seed),
                Method::Full | Method::TopK | Method::BottomK | Method::VisionZip => {}
            }
            e
        }
    };
    let tail = if spec.method == RunMethod::Vanilla {
        Tail::Tokens(0)
    } else {
        decoding.tail
    };
    let guard = if decoding.stop_on_loop { " guard" } else { "" };
    format!(
        "{} keep={keep:.6} tail={tail}{extra}{guard}",
        spec.method.name()
    )
}

/// Puts `first` (what the user is looking at) first and `full` (every diff's reference) second;
/// the rest keep their order.
pub fn prioritise(mut runs: Vec<RunSpec>, first: Option<&RunSpec>) -> Vec<RunSpec> {
    let full = RunSpec {
        method: RunMethod::Prune(Method::Full),
        keep: 1.0,
    };
    for want in [Some(&full), first].into_iter().flatten() {
        if let Some(i) = runs.iter().position(|r| r == want) {
            let r = runs.remove(i);
            runs.insert(0, r);
        }
    }
    runs
}

/// Lower-case words without surrounding punctuation (what WER compares).
pub fn normalise(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// One word of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff {
    Same(String),
    /// In the output, not in the reference.
    Added(String),
    /// In the reference, missing from the output.
    Removed(String),
}

/// Word-level diff of `text` against `reference` (longest common subsequence of normalised
/// words; the words shown are as written).
pub fn word_diff(reference: &str, text: &str) -> Vec<Diff> {
    let shown = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_owned).collect() };
    let (ra, ta) = (shown(reference), shown(text));
    let norm = |w: &String| normalise(w).join(" ");
    let (rn, tn): (Vec<String>, Vec<String>) =
        (ra.iter().map(norm).collect(), ta.iter().map(norm).collect());
    let (n, m) = (rn.len(), tn.len());
    // lcs[i][j]: LCS length of rn[i..] and tn[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if rn[i] == tn[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && rn[i] == tn[j] {
            out.push(Diff::Same(ta[j].clone()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(Diff::Added(ta[j].clone()));
            j += 1;
        } else {
            out.push(Diff::Removed(ra[i].clone()));
            i += 1;
        }
    }
    out
}

/// For each whitespace-separated word of `text` (as [`word_diff`] shows them), whether it lies
/// in one of the run's repeated-loop byte ranges (`RunResult::loop_spans`): the words the
/// explorer dims.
pub fn looped_words(text: &str, spans: &[[usize; 2]]) -> Vec<bool> {
    let base = text.as_ptr() as usize;
    text.split_whitespace()
        .map(|w| {
            let at = w.as_ptr() as usize - base;
            spans.iter().any(|&[a, b]| a <= at && at < b)
        })
        .collect()
}

/// Word error rate of `text` against `reference`: (substitutions + deletions + insertions) /
/// reference words, on normalised words. `None` for an empty reference.
pub fn wer(reference: &str, text: &str) -> Option<f64> {
    let (r, t) = (normalise(reference), normalise(text));
    if r.is_empty() {
        return None;
    }
    let mut prev: Vec<usize> = (0..=t.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; t.len() + 1];
        for (j, tw) in t.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != tw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    Some(prev[t.len()] as f64 / r.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_add_the_slider_value_once() {
        assert_eq!(keeps(0.25), vec![0.5, 0.25, 0.1]);
        assert_eq!(keeps(0.3), vec![0.5, 0.25, 0.1, 0.3]);
    }

    #[test]
    fn fixed_rows_have_one_cell() {
        let full = RunMethod::Prune(Method::Full);
        assert_eq!(
            cell(full, 0.25, 0),
            Some(RunSpec {
                method: full,
                keep: 1.0
            })
        );
        assert_eq!(cell(full, 0.25, 1), None);
        assert!(cell(RunMethod::Prune(Method::TopK), 0.1, 2).is_some());
        assert_eq!(methods(&[Method::Merge]).len(), 8);
    }

    #[test]
    fn cell_key_depends_on_what_the_method_reads() {
        let p = Params::default();
        let seg = RunSpec {
            method: RunMethod::Prune(Method::Segmentwise),
            keep: 0.25,
        };
        let topk = RunSpec {
            method: RunMethod::Prune(Method::TopK),
            keep: 0.25,
        };
        let more_s = Params {
            segments: 20,
            ..p.clone()
        };
        let d = Decoding::default();
        assert_ne!(cell_key(&seg, &p, &d), cell_key(&seg, &more_s, &d));
        assert_eq!(cell_key(&topk, &p, &d), cell_key(&topk, &more_s, &d));
        let no_tail = Decoding {
            tail: Tail::Tokens(0),
            ..d.clone()
        };
        let fifty = Decoding {
            tail: Tail::Tokens(50),
            ..d.clone()
        };
        let guarded = Decoding {
            stop_on_loop: true,
            ..d.clone()
        };
        assert_ne!(cell_key(&topk, &p, &d), cell_key(&topk, &p, &no_tail));
        assert_ne!(cell_key(&topk, &p, &d), cell_key(&topk, &p, &fifty));
        assert_ne!(cell_key(&topk, &p, &d), cell_key(&topk, &p, &guarded));
        let seeded = Params {
            seed: 3,
            ..p.clone()
        };
        assert_eq!(cell_key(&seg, &p, &d), cell_key(&seg, &seeded, &d));
    }

    #[test]
    fn looped_words_follow_the_byte_spans() {
        let text = "Front, left, left, left, left.";
        // The repeated copies start at the second "left,".
        let at = text.find("left, left").unwrap() + "left, ".len();
        assert_eq!(
            looped_words(text, &[[at, text.len()]]),
            vec![false, false, true, true, true]
        );
        assert_eq!(looped_words(text, &[]), vec![false; 5]);
        assert!(looped_words("", &[[0, 3]]).is_empty());
    }

    #[test]
    fn prioritise_puts_current_then_full_first() {
        let r = |m, keep| RunSpec {
            method: RunMethod::Prune(m),
            keep,
        };
        let runs = vec![
            r(Method::TopK, 0.5),
            r(Method::Full, 1.0),
            r(Method::Segmentwise, 0.3),
        ];
        let out = prioritise(runs, Some(&r(Method::Segmentwise, 0.3)));
        assert_eq!(
            out,
            vec![
                r(Method::Segmentwise, 0.3),
                r(Method::Full, 1.0),
                r(Method::TopK, 0.5)
            ]
        );
    }

    #[test]
    fn diff_marks_missing_and_extra_words() {
        let d = word_diff("Ask not what your country", "ask what my country!");
        assert_eq!(
            d,
            vec![
                Diff::Same("ask".into()),
                Diff::Removed("not".into()),
                Diff::Same("what".into()),
                Diff::Added("my".into()),
                Diff::Removed("your".into()),
                Diff::Same("country!".into()),
            ]
        );
        assert!(word_diff("", "").is_empty());
    }

    #[test]
    fn wer_counts_edits_per_reference_word() {
        assert_eq!(wer("a b c d", "a b c d"), Some(0.0));
        assert_eq!(wer("a b c d", "a x c"), Some(0.5));
        assert_eq!(wer("A, b.", "a b"), Some(0.0));
        assert_eq!(wer("", "a"), None);
        assert_eq!(wer("a", ""), Some(1.0));
    }
}
