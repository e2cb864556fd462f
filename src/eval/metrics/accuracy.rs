//! Accuracy for question answering: ClothoAQA's normalised exact match, and MMAU's choice of an
//! option (exact text, then option letter, then the most similar option).

use super::wer::Normalization;

/// Lower-cased, punctuation removed, whitespace collapsed (jiwer's `Basic` word view, joined).
pub fn normalize(s: &str) -> String {
    super::wer::words(s, Normalization::Basic).join(" ")
}

/// ClothoAQA: normalised exact match against any accepted answer. For yes/no answers the first
/// word of the prediction decides ("Yes, a dog is barking." answers "yes"), because
/// audio-language models rarely answer with the bare word.
pub fn aqa_correct(pred: &str, answers: &[String]) -> bool {
    let p = normalize(pred);
    let first = p.split(' ').next().unwrap_or("");
    answers.iter().any(|a| {
        let a = normalize(a);
        if a == "yes" || a == "no" {
            first == a
        } else {
            !a.is_empty() && p == a
        }
    })
}

/// How an MMAU prediction was mapped to an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    Exact,
    Letter,
    Similarity,
}

/// Similarity of a prediction to each option, for the fallback step.
pub trait OptionScorer {
    /// What the reports call it ("... mapped by similarity (NAME)").
    fn name(&self) -> &str;
    fn scores(&self, pred: &str, options: &[String]) -> Vec<f64>;
}

/// The fallback without a sentence-embedding model: cosine similarity of bag-of-words vectors
/// of the normalised texts, a stand-in for the paper's Sentence-BERT step
/// (`crate::eval::embed::SentenceScorer` is the real one).
pub struct LexicalScorer;

impl OptionScorer for LexicalScorer {
    fn name(&self) -> &str {
        "bag-of-words cosine, a stand-in for sentence embeddings"
    }

    fn scores(&self, pred: &str, options: &[String]) -> Vec<f64> {
        let bag = |s: &str| {
            let mut m = std::collections::HashMap::<String, f64>::new();
            for w in normalize(s).split(' ').filter(|w| !w.is_empty()) {
                *m.entry(w.to_string()).or_insert(0.0) += 1.0;
            }
            m
        };
        let p = bag(pred);
        let pn = p.values().map(|x| x * x).sum::<f64>().sqrt();
        options
            .iter()
            .map(|o| {
                let q = bag(o);
                let qn = q.values().map(|x| x * x).sum::<f64>().sqrt();
                let dot: f64 = p.iter().map(|(w, x)| x * q.get(w).unwrap_or(&0.0)).sum();
                if pn == 0.0 || qn == 0.0 {
                    0.0
                } else {
                    dot / (pn * qn)
                }
            })
            .collect()
    }
}

/// The option letter a prediction names: "B", "(B)", "B.", "B)", "B: text", "Answer: B".
fn letter_of(pred: &str, n_options: usize) -> Option<usize> {
    let t = pred.trim();
    let t = t
        .strip_prefix("Answer:")
        .or_else(|| t.strip_prefix("answer:"))
        .map(str::trim)
        .unwrap_or(t);
    let t = t.strip_prefix('(').unwrap_or(t);
    let mut chars = t.chars();
    let c = chars.next()?;
    let rest = chars.as_str();
    let ends = rest.is_empty() || rest.starts_with([')', '.', ':', ' ', ',']);
    if !(c.is_ascii_uppercase() && ends) {
        return None;
    }
    // A one-letter word like "A dog barks" is an article, not a choice.
    if rest.starts_with(' ') && !rest.trim_start().is_empty() {
        return None;
    }
    let i = (c as u8 - b'A') as usize;
    (i < n_options).then_some(i)
}

/// MMAU: whether the option [`choose_option`] chose is `answer` (surrounding spaces aside).
pub fn is_answer(chosen: Option<(usize, MatchKind)>, options: &[String], answer: &str) -> bool {
    chosen.is_some_and(|(i, _)| options[i].trim() == answer.trim())
}

/// MMAU: the chosen option index and how it was found.
pub fn choose_option(
    pred: &str,
    options: &[String],
    scorer: &dyn OptionScorer,
) -> Option<(usize, MatchKind)> {
    if options.is_empty() {
        return None;
    }
    let p = normalize(pred);
    if let Some(i) = options.iter().position(|o| normalize(o) == p) {
        return Some((i, MatchKind::Exact));
    }
    if let Some(i) = letter_of(pred, options.len()) {
        return Some((i, MatchKind::Letter));
    }
    let s = scorer.scores(pred, options);
    let mut best = 0;
    for (i, &x) in s.iter().enumerate() {
        if x > s[best] {
            best = i;
        }
    }
    Some((best, MatchKind::Similarity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn aqa_rules() {
        assert!(aqa_correct("Yes, a dog barks.", &opts(&["yes"])));
        assert!(!aqa_correct("No.", &opts(&["yes"])));
        assert!(aqa_correct("Three", &opts(&["two", "three"])));
        assert!(!aqa_correct("three dogs", &opts(&["three"])));
        assert!(!aqa_correct("", &opts(&[""])));
    }

    #[test]
    fn option_choice_order() {
        let o = opts(&["Dog barking", "Car horn", "Rain", "Piano"]);
        let s = &LexicalScorer;
        assert_eq!(
            choose_option("car horn.", &o, s),
            Some((1, MatchKind::Exact))
        );
        assert_eq!(choose_option("(C)", &o, s), Some((2, MatchKind::Letter)));
        assert_eq!(
            choose_option("D. Piano", &o, s),
            Some((3, MatchKind::Letter))
        );
        assert_eq!(
            choose_option("A dog is barking loudly", &o, s),
            Some((0, MatchKind::Similarity))
        );
        assert_eq!(
            choose_option("E", &o, s).map(|x| x.1),
            Some(MatchKind::Similarity)
        );
        assert_eq!(choose_option("x", &[], s), None);
    }
}
