//! What a grid cell shows besides its text, computed once per change of its inputs (its text,
//! the text it is compared with, the reference): the word diff against `full` (or the pinned
//! cell), the WER against the reference (or the pinned cell's text), the words of a loop's repeated tail, and the link from each word to the run's
//! timed words. No egui here.

use super::words;
use crate::eval::metrics::wer;
use crate::model::align::TimedWord;

/// What a grid cell shows besides its text, computed once per change of its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct CellView {
    pub text: String,
    pub full: Option<String>,
    pub reference: String,
    /// `None` when there is nothing to compare with (the full row itself, or no full yet).
    pub diff: Option<Vec<Diff>>,
    pub wer: Option<f64>,
    /// Per word of `text`: inside a repeated loop tail (drawn dimmed).
    pub looped: Vec<bool>,
    /// Per word of `text`: which of the run's timed words it is ([`words::word_links`]).
    pub links: Vec<Option<usize>>,
}

impl CellView {
    pub fn new(
        text: &str,
        loop_spans: &[[usize; 2]],
        full: Option<&str>,
        reference: &str,
        is_full: bool,
    ) -> CellView {
        CellView {
            looped: looped_words(text, loop_spans),
            text: text.to_owned(),
            full: full.map(str::to_owned),
            reference: reference.to_owned(),
            diff: full.filter(|_| !is_full).map(|f| word_diff(f, text)),
            wer: wer::sentence_wer(reference, text),
            links: Vec::new(),
        }
    }

    /// Links the text's words to the run's timed words.
    pub fn with_words(mut self, words: Option<&[TimedWord]>) -> CellView {
        self.links = words.map_or_else(Vec::new, |w| words::word_links(&self.text, w));
        self
    }

    /// Whether this view was computed for these inputs.
    pub fn is_for(&self, text: &str, full: Option<&str>, reference: &str) -> bool {
        self.text == text && self.full.as_deref() == full && self.reference == reference
    }
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

/// Word-level diff of `text` against `reference` (longest common subsequence of the words as
/// WER compares them, [`wer::basic_word`]; the words shown are as written).
pub fn word_diff(reference: &str, text: &str) -> Vec<Diff> {
    let shown = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_owned).collect() };
    let (ra, ta) = (shown(reference), shown(text));
    // Each distinct normalised word as a number: the table below compares numbers, not
    // strings (a 10-minute clip's 1,500-word outputs diff in a few milliseconds).
    let mut ids: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut id = |w: &String| {
        let next = ids.len() as u32;
        *ids.entry(wer::basic_word(w)).or_insert(next)
    };
    let rn: Vec<u32> = ra.iter().map(&mut id).collect();
    let tn: Vec<u32> = ta.iter().map(&mut id).collect();
    let (n, m) = (rn.len(), tn.len());
    // lcs[i * (m + 1) + j]: LCS length of rn[i..] and tn[j..].
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * w + j] = if rn[i] == tn[j] {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
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
        } else if j < m && (i == n || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j]) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cell_view_diffs_against_full_and_scores_wer() {
        let v = CellView::new(
            "ask what",
            &[],
            Some("ask not what"),
            "Ask not what.",
            false,
        );
        assert_eq!(v.wer, Some(1.0 / 3.0));
        assert_eq!(v.diff.as_ref().map(Vec::len), Some(3));
        assert!(v.is_for("ask what", Some("ask not what"), "Ask not what."));
        assert!(!v.is_for("ask what", None, "Ask not what."));
        let full = CellView::new("ask not what", &[], Some("ask not what"), "", true);
        assert_eq!((full.diff, full.wer), (None, None));
    }
}
