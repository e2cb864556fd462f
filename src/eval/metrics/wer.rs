//! Word error rate as jiwer 4.0 computes it: `(S + D + I) / (S + D + H)` summed over the corpus,
//! after jiwer's default transform (`RemoveMultipleSpaces`, `Strip`,
//! `ReduceToListOfListOfWords`: no case or punctuation change). [`Normalization::Basic`] adds
//! jiwer's `ToLowerCase` and `RemovePunctuation` (every Unicode `P*` character) in front, the
//! usual choice when a model writes punctuation and casing that the references do not.

use unicode_general_category::{get_general_category, GeneralCategory as G};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// jiwer's `wer_default`.
    Default,
    /// `ToLowerCase`, `RemovePunctuation`, then `wer_default`.
    Basic,
}

/// Edit counts of one or more reference/hypothesis pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: usize,
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
}

impl Counts {
    /// Words of the reference(s).
    pub fn reference_words(&self) -> usize {
        self.hits + self.substitutions + self.deletions
    }

    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// The WER; NaN when the references hold no word (jiwer refuses those).
    pub fn wer(&self) -> f64 {
        self.errors() as f64 / self.reference_words() as f64
    }

    pub fn add(&mut self, o: Counts) {
        self.hits += o.hits;
        self.substitutions += o.substitutions;
        self.deletions += o.deletions;
        self.insertions += o.insertions;
    }
}

/// Python's `str.isspace()`, which `\s` and `strip()` follow (it includes U+001C..U+001F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn is_punctuation(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
    )
}

/// The words jiwer compares for one sentence.
pub fn words(s: &str, norm: Normalization) -> Vec<String> {
    let s: String = match norm {
        Normalization::Default => s.to_string(),
        Normalization::Basic => basic_word(s),
    };
    // RemoveMultipleSpaces: every run of two or more whitespace characters becomes one space.
    let chars: Vec<char> = s.chars().collect();
    let mut collapsed = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if py_space(chars[i]) && i + 1 < chars.len() && py_space(chars[i + 1]) {
            while i < chars.len() && py_space(chars[i]) {
                i += 1;
            }
            collapsed.push(' ');
        } else {
            collapsed.push(chars[i]);
            i += 1;
        }
    }
    collapsed
        .trim_matches(py_space)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Levenshtein alignment counts between two word sequences (unit costs).
pub fn align(reference: &[String], hypothesis: &[String]) -> Counts {
    let (n, m) = (reference.len(), hypothesis.len());
    // d[i][j]: distance between reference[..i] and hypothesis[..j].
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, x) in d[0].iter_mut().enumerate() {
        *x = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let sub = d[i - 1][j - 1] + usize::from(reference[i - 1] != hypothesis[j - 1]);
            d[i][j] = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
        }
    }
    let mut c = Counts::default();
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        if i > 0 && j > 0 {
            let same = reference[i - 1] == hypothesis[j - 1];
            if d[i][j] == d[i - 1][j - 1] + usize::from(!same) {
                if same {
                    c.hits += 1;
                } else {
                    c.substitutions += 1;
                }
                i -= 1;
                j -= 1;
                continue;
            }
        }
        if i > 0 && d[i][j] == d[i - 1][j] + 1 {
            c.deletions += 1;
            i -= 1;
        } else {
            c.insertions += 1;
            j -= 1;
        }
    }
    c
}

/// Counts of one pair under a normalisation.
pub fn counts(reference: &str, hypothesis: &str, norm: Normalization) -> Counts {
    align(&words(reference, norm), &words(hypothesis, norm))
}

/// The WER of one pair with [`Normalization::Basic`] (lower case, no punctuation), what `eval`
/// reports and the explorer shows per cell; None when the reference holds no word.
pub fn sentence_wer(reference: &str, hypothesis: &str) -> Option<f64> {
    let c = counts(reference, hypothesis, Normalization::Basic);
    (c.reference_words() > 0).then(|| c.wer())
}

/// One word as [`Normalization::Basic`] compares it (the explorer's word diff matches words
/// with it, so a diff and a WER never disagree on what counts as the same word).
pub fn basic_word(w: &str) -> String {
    w.to_lowercase()
        .chars()
        .filter(|&c| !is_punctuation(c))
        .collect()
}

/// Corpus WER (jiwer's `wer(list, list)`): errors and reference words summed over all pairs.
pub fn corpus_wer<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    norm: Normalization,
) -> f64 {
    let mut c = Counts::default();
    for (r, h) in pairs {
        c.add(counts(r, h, norm));
    }
    c.wer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_cases() {
        let d = Normalization::Default;
        assert_eq!(counts("a b c", "a b c", d).wer(), 0.0);
        assert_eq!(counts("a b c", "a x c", d).substitutions, 1);
        assert_eq!(counts("a b c", "a c", d).deletions, 1);
        assert_eq!(counts("a b c", "a b b c", d).insertions, 1);
        assert_eq!(counts("hello world", "", d).wer(), 1.0);
        assert!(counts("", "", d).wer().is_nan());
    }

    #[test]
    fn sentence_wer_counts_edits_per_reference_word() {
        assert_eq!(sentence_wer("a b c d", "a b c d"), Some(0.0));
        assert_eq!(sentence_wer("a b c d", "a x c"), Some(0.5));
        assert_eq!(sentence_wer("A, b.", "a b"), Some(0.0));
        assert_eq!(sentence_wer("", "a"), None);
        assert_eq!(sentence_wer(" ,. ", "a"), None);
        assert_eq!(sentence_wer("a", ""), Some(1.0));
    }

    #[test]
    fn basic_normalisation_drops_case_and_punctuation() {
        assert_eq!(
            words("  Front,  center.", Normalization::Basic),
            vec!["front", "center"]
        );
        assert_eq!(
            words("Don't\tstop", Normalization::Default),
            vec!["Don't\tstop"]
        );
    }
}
