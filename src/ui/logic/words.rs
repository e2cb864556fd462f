//! Output words and the audio: which timed word each word of a cell's text is, which words are
//! said at a moment, and which word lies under a time in the words lane. No egui here.

use crate::engine::RunKey;
use crate::model::align::TimedWord;

/// A word of a grid cell's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WordRef {
    pub cell: RunKey,
    /// Index in the run's `words`.
    pub word: usize,
}

/// Which of the run's `words` each whitespace-separated word of `text` is (None where the text
/// and the words part ways). A text word may span several timed words (a number the
/// tokenizer splits); it links to the first.
pub fn word_links(text: &str, words: &[TimedWord]) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut j = 0;
    for w in text.split_whitespace() {
        let mut joined = String::new();
        let start = j;
        while j < words.len() && joined.len() < w.len() {
            joined.push_str(words[j].word.trim());
            j += 1;
        }
        if joined == w {
            out.push(Some(start));
        } else {
            // Resynchronise: the next timed word that starts this text word, if any.
            j = start;
            match words[start..].iter().position(|x| x.word.trim() == w) {
                Some(k) => {
                    out.push(Some(start + k));
                    j = start + k + 1;
                }
                None => out.push(None),
            }
        }
    }
    out
}

/// Whether `w` is being said at `t`: inside its span, or for a word placed at one instant (a
/// prefix model's attention centre) within a quarter second of it.
pub fn is_active(w: &TimedWord, t: f64) -> bool {
    if w.end > w.start {
        w.start <= t && t < w.end
    } else {
        (t - w.start).abs() <= 0.25
    }
}

/// The word at `t` in the words lane: the one said there, else the nearest within `slack` s.
pub fn word_at(words: &[TimedWord], t: f64, slack: f64) -> Option<usize> {
    if let Some(i) = words
        .iter()
        .position(|w| w.end > w.start && w.start <= t && t < w.end)
    {
        return Some(i);
    }
    words
        .iter()
        .enumerate()
        .map(|(i, w)| (i, (t - w.start).abs().min((t - w.end).abs())))
        .filter(|(_, d)| *d <= slack)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(word: &str, start: f64, end: f64) -> TimedWord {
        TimedWord {
            word: word.into(),
            start,
            end,
            tokens: 0..0,
        }
    }

    #[test]
    fn text_words_link_to_timed_words() {
        let words = [
            w(" And", 0.0, 0.5),
            w(" so,", 0.5, 1.0),
            w(" 19", 1.0, 1.2),
            w("61", 1.2, 1.5),
        ];
        assert_eq!(
            word_links("And so, 1961", &words),
            vec![Some(0), Some(1), Some(2)]
        );
        // A word the timed list lacks links to nothing; the rest stay linked.
        assert_eq!(
            word_links("And then so, 1961", &words),
            vec![Some(0), None, Some(1), Some(2)]
        );
    }

    #[test]
    fn activity_and_lookup() {
        let words = [w(" a", 0.0, 0.5), w(" b", 0.5, 1.0), w(" c", 2.0, 2.0)];
        assert!(is_active(&words[0], 0.2) && !is_active(&words[0], 0.5));
        assert!(is_active(&words[2], 2.2) && !is_active(&words[2], 2.3));
        assert_eq!(word_at(&words, 0.7, 0.1), Some(1));
        assert_eq!(word_at(&words, 1.95, 0.1), Some(2));
        assert_eq!(word_at(&words, 1.5, 0.1), None);
    }
}
