//! Which audio each output token read, and where each word of an output is in time.
//!
//! A decode asked for it ([`super::DecodeInput::attention`]) collects one averaged attention
//! map: row `i` is the attention of the query that chose generated token `i` (the last row
//! chose the end token when the decode ended with one), over the audio rows of its input in
//! input order. Whisper reads its alignment heads' cross-attention; Qwen2-Audio and AF3 their
//! language model's attention to the audio placeholders, mean over heads and layers.
//!
//! Words are aligned the way openai-whisper's `timing.py` and faster-whisper do it: per-head
//! standardisation over the tokens, a median filter along time, mean over heads, dynamic time
//! warping of the tokens against the audio rows, words from the tokenizer's pieces, then
//! punctuation merged into its neighbours (docs/SPEC.md section 8).

use std::ops::Range;

use rayon::prelude::*;

/// One decode's attention to its audio rows, averaged over the heads read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenAttention {
    pub rows: usize,
    pub cols: usize,
    /// `rows x cols`, row-major.
    pub map: Vec<f32>,
}

impl TokenAttention {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.map[i * self.cols..(i + 1) * self.cols]
    }

    /// Keeps the first `rows` rows (a decode whose loop guard cut its last tokens).
    pub fn truncate(&mut self, rows: usize) {
        if rows < self.rows {
            self.rows = rows;
            self.map.truncate(rows * self.cols);
        }
    }
}

/// A word of a decoded text: its text (with its leading space), the generated tokens it is made
/// of, and, when the model aligns words in time (Whisper), where DTW put its start and end in
/// columns of the attention map (`end` may equal the column count: the end of the last row).
#[derive(Debug, Clone, PartialEq)]
pub struct WordSpan {
    pub word: String,
    pub tokens: Range<usize>,
    pub cols: Option<(usize, usize)>,
}

/// Punctuation that joins the following word (as in openai-whisper and faster-whisper).
const PREPENDED: &str = "\"'“¿([{-";
/// Punctuation that joins the preceding word.
const APPENDED: &str = "\"'.。,，!！?？:：”)]}、";

/// Splits `ids` into words: first into pieces that decode to whole characters (a multi-byte
/// character may take several tokens), then a new word at every piece that starts with a space,
/// is punctuation or is a special token (`special`), as openai-whisper's
/// `split_tokens_on_spaces`. Returns each word's text and token range.
pub fn split_words(
    ids: &[u32],
    decode: &dyn Fn(&[u32]) -> String,
    special: &dyn Fn(u32) -> bool,
) -> Vec<(String, Range<usize>)> {
    let mut pieces: Vec<(String, Range<usize>)> = Vec::new();
    let mut start = 0;
    for end in 1..=ids.len() {
        let text = decode(&ids[start..end]);
        // A piece ends where it decodes to whole characters (or at the last token).
        if !text.contains('\u{FFFD}') || end == ids.len() {
            pieces.push((text, start..end));
            start = end;
        }
    }
    let mut words: Vec<(String, Range<usize>)> = Vec::new();
    for (text, range) in pieces {
        let trimmed = text.trim();
        let punctuation = !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_punctuation());
        let starts_word = special(ids[range.start]) || text.starts_with(' ') || punctuation;
        match words.last_mut() {
            Some((w, r)) if !starts_word => {
                w.push_str(&text);
                r.end = range.end;
            }
            _ => words.push((text, range)),
        }
    }
    words
}

/// [`split_words`] with a Hugging Face tokenizer's pieces (special tokens kept in the text; a
/// piece it cannot decode counts as an incomplete character).
pub fn tokenizer_words(
    tok: &tokenizers::Tokenizer,
    ids: &[u32],
    special: &dyn Fn(u32) -> bool,
) -> Vec<(String, Range<usize>)> {
    let decode = |piece: &[u32]| {
        tok.decode(piece, false)
            .unwrap_or_else(|_| "\u{FFFD}".into())
    };
    split_words(ids, &decode, special)
}

/// Merges punctuation into its neighbours as openai-whisper's `merge_punctuations`: an opening
/// mark preceded by a space joins the next word, a closing mark joins the previous word unless
/// that one ends in a space. A merged word keeps the absorbing word's times; emptied words go.
pub fn merge_punctuation(words: &mut Vec<TimedWord>) {
    let n = words.len();
    if n >= 2 {
        let (mut i, mut j) = (n as isize - 2, n - 1);
        while i >= 0 {
            let iu = i as usize;
            if words[iu].word.starts_with(' ') && is_in(words[iu].word.trim(), PREPENDED) {
                let text = std::mem::take(&mut words[iu].word);
                let start = words[iu].tokens.start;
                words[iu].tokens = start..start;
                let next = &mut words[j];
                next.word = text + &next.word;
                next.tokens = start..next.tokens.end;
            } else {
                j = iu;
            }
            i -= 1;
        }
        let (mut i, mut j) = (0, 1);
        while j < n {
            if !words[i].word.ends_with(' ') && is_in(&words[j].word, APPENDED) {
                let text = std::mem::take(&mut words[j].word);
                let end = words[j].tokens.end;
                words[j].tokens = end..end;
                words[i].word.push_str(&text);
                words[i].tokens.end = end;
            } else {
                i = j;
            }
            j += 1;
        }
    }
    words.retain(|w| !w.word.is_empty());
}

/// Whether `s` is one of the marks in `set` (a single character, as Python's `in` on these
/// strings means for the words it is used on).
fn is_in(s: &str, set: &str) -> bool {
    let mut chars = s.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if set.contains(c))
}

/// Per-head maps of the alignment heads (each `rows x cols`, row-major, the weights of the
/// audio columns) -> the matrix DTW runs on, without its first `skip` rows: each row
/// renormalised over the audio columns (a softmax over them alone, as timing.py slices the
/// logits to the audio frames first), each head standardised over every row at each column,
/// median-filtered along the columns (`width`, odd), then the mean over heads.
pub fn alignment_matrix(
    heads: &[Vec<f32>],
    rows: usize,
    cols: usize,
    skip: usize,
    width: usize,
) -> Vec<f32> {
    let kept = rows.saturating_sub(skip);
    let mut out = vec![0f32; kept * cols];
    if heads.is_empty() || kept == 0 || cols == 0 {
        return out;
    }
    // Each head on its own (in parallel), then their sum.
    let per_head: Vec<Vec<f32>> = heads
        .par_iter()
        .map(|w| {
            let mut z = w[..rows * cols].to_vec();
            for row in z.chunks_exact_mut(cols) {
                let sum: f32 = row.iter().sum();
                if sum > 0.0 {
                    row.iter_mut().for_each(|x| *x /= sum);
                }
            }
            // Column means and standard deviations over the rows, accumulated row by row.
            let (mut sum, mut sq) = (vec![0f64; cols], vec![0f64; cols]);
            for row in z.chunks_exact(cols) {
                for ((s, q), &x) in sum.iter_mut().zip(sq.iter_mut()).zip(row) {
                    *s += x as f64;
                    *q += x as f64 * x as f64;
                }
            }
            let stats: Vec<(f64, f64)> = sum
                .iter()
                .zip(&sq)
                .map(|(s, q)| {
                    let mean = s / rows as f64;
                    let std = (q / rows as f64 - mean * mean).max(0.0).sqrt();
                    // A constant column carries no timing information: it stays at zero.
                    (mean, if std > 0.0 { 1.0 / std } else { 0.0 })
                })
                .collect();
            for row in z.chunks_exact_mut(cols) {
                for (x, (mean, inv)) in row.iter_mut().zip(&stats) {
                    *x = ((*x as f64 - mean) * inv) as f32;
                }
            }
            let mut filtered = vec![0f32; kept * cols];
            for r in skip..rows {
                median_filter(
                    &z[r * cols..(r + 1) * cols],
                    width,
                    &mut filtered[(r - skip) * cols..(r - skip + 1) * cols],
                );
            }
            filtered
        })
        .collect();
    for h in &per_head {
        for (o, x) in out.iter_mut().zip(h) {
            *o += x;
        }
    }
    let n = heads.len() as f32;
    out.iter_mut().for_each(|x| *x /= n);
    out
}

/// A median filter of odd `width` with reflected edges (torch's `reflect` padding), as
/// openai-whisper's `median_filter`; rows no longer than half the width pass unfiltered.
pub fn median_filter(x: &[f32], width: usize, out: &mut [f32]) {
    let n = x.len();
    let pad = width / 2;
    if width < 3 || n <= pad {
        out.copy_from_slice(x);
        return;
    }
    let reflect = |i: isize| -> f32 {
        let n = n as isize;
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        x[j.clamp(0, n - 1) as usize]
    };
    let mut window = vec![0f32; width];
    for (c, o) in out.iter_mut().enumerate() {
        if c >= pad && c + pad < n {
            window.copy_from_slice(&x[c - pad..=c + pad]);
        } else {
            for (k, v) in window.iter_mut().enumerate() {
                *v = reflect(c as isize + k as isize - pad as isize);
            }
        }
        *o = *window.select_nth_unstable_by(pad, f32::total_cmp).1;
    }
}

/// Dynamic time warping of `cost` (`rows x cols`, lower is better) from the top-left to the
/// bottom-right corner with diagonal, down and right steps, ties broken as openai-whisper's
/// `dtw_cpu`; returns the path as `(row, column)` pairs in order.
pub fn dtw(cost: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let w = cols + 1;
    let mut acc = vec![f32::INFINITY; (rows + 1) * w];
    let mut trace = vec![0u8; (rows + 1) * w];
    acc[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let c0 = acc[(i - 1) * w + j - 1];
            let c1 = acc[(i - 1) * w + j];
            let c2 = acc[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost[(i - 1) * cols + j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::with_capacity(rows + cols);
    while i > 0 || j > 0 {
        path.push((i.saturating_sub(1), j.saturating_sub(1)));
        // The first row can only have come from the left, the first column from above.
        let t = if i == 0 {
            2
        } else if j == 0 {
            1
        } else {
            trace[i * w + j]
        };
        match t {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// Whisper's word alignment: the alignment heads' maps of one decode (`rows x cols` each: the
/// prompt's first `skip` rows, which only count in the standardisation, then row `skip + i`
/// choosing generated token `i`, and a last row for the end token when there is one) and the
/// words of the generated ids ([`split_words`]) -> each word with its start and end column
/// (punctuation not merged yet: the engine does it in time, [`cut_sentence_ends`]). Median
/// filter width 7, as openai-whisper and faster-whisper.
pub fn align_words(
    heads: &[Vec<f32>],
    rows: usize,
    cols: usize,
    skip: usize,
    words: Vec<(String, Range<usize>)>,
) -> Vec<WordSpan> {
    let matrix = alignment_matrix(heads, rows, cols, skip, 7);
    let cost: Vec<f32> = matrix.iter().map(|x| -x).collect();
    let rows = rows.saturating_sub(skip);
    let path = dtw(&cost, rows, cols);
    // The column where each row first appears on the path.
    let mut first = vec![cols; rows + 1];
    let mut last_row = usize::MAX;
    for &(r, c) in &path {
        if r != last_row {
            first[r] = c;
            last_row = r;
        }
    }
    let at = |token: usize| first.get(token).copied().unwrap_or(cols).min(cols);
    words
        .into_iter()
        .map(|(word, tokens)| WordSpan {
            cols: Some((at(tokens.start), at(tokens.end).max(at(tokens.start)))),
            word,
            tokens,
        })
        .collect()
}

/// A word placed in clip time (seconds), with its tokens in the run's generated ids.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimedWord {
    pub word: String,
    pub start: f64,
    pub end: f64,
    /// Its tokens: indices in the run's `token_ids`, `[first, end)`.
    #[serde(with = "token_range")]
    pub tokens: Range<usize>,
}

/// A word's token range as the pair `[first, end)` in the JSON.
mod token_range {
    use std::ops::Range;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(r: &Range<usize>, s: S) -> Result<S::Ok, S::Error> {
        [r.start, r.end].serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Range<usize>, D::Error> {
        let [start, end] = <[usize; 2]>::deserialize(d)?;
        if end < start {
            return Err(serde::de::Error::custom(format!(
                "a word's tokens end before they start: [{start}, {end}]"
            )));
        }
        Ok(start..end)
    }
}

/// faster-whisper's clean-up of one window's DTW word times (before punctuation is merged): a
/// word longer than twice the median word duration (the median capped at 0.7 s) next to a
/// sentence end is cut to that length. Returns the median for [`first_word_after_pause`].
pub fn cut_sentence_ends(words: &mut [TimedWord]) -> f64 {
    let durations: Vec<f64> = words
        .iter()
        .map(|w| w.end - w.start)
        .filter(|d| *d != 0.0)
        .collect();
    if durations.is_empty() {
        return 0.0;
    }
    let median = crate::util::median(durations.iter().copied()).min(0.7);
    let max = median * 2.0;
    const ENDS: &str = ".。!！?？";
    for i in 1..words.len() {
        if words[i].end - words[i].start > max {
            if is_in(&words[i].word, ENDS) {
                words[i].end = words[i].start + max;
            } else if is_in(&words[i - 1].word, ENDS) {
                words[i].start = words[i].end - max;
            }
        }
    }
    median
}

/// faster-whisper's rule for the first word after a pause (`last_speech`: where the previous
/// window's speech ended): it may not stretch back over the pause (punctuation merged).
pub fn first_word_after_pause(words: &mut [TimedWord], last_speech: f64, median: f64) {
    let max = median * 2.0;
    if words.is_empty() || median <= 0.0 {
        return;
    }
    if words[0].end - last_speech > median * 4.0
        && (words[0].end - words[0].start > max
            || (words.len() > 1 && words[1].end - words[0].start > max * 2.0))
    {
        if words.len() > 1 && words[1].end - words[1].start > max {
            let boundary = (words[1].end / 2.0).max(words[1].end - max);
            words[0].end = boundary;
            words[1].start = boundary;
        }
        words[0].start = (words[0].end - max).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(word: &str, tokens: Range<usize>, start: f64, end: f64) -> TimedWord {
        TimedWord {
            word: word.into(),
            start,
            end,
            tokens,
        }
    }

    #[test]
    fn dtw_follows_a_diagonal_and_stays_monotonic() {
        // Row i is cheapest at columns 2i..2i+2.
        let (rows, cols) = (3, 6);
        let cost: Vec<f32> = (0..rows * cols)
            .map(|k| {
                if (k % cols) / 2 == k / cols {
                    -1.0
                } else {
                    0.0
                }
            })
            .collect();
        let path = dtw(&cost, rows, cols);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(2, 5)));
        for w in path.windows(2) {
            assert!(w[1].0 >= w[0].0 && w[1].1 >= w[0].1);
            assert!(w[1].0 - w[0].0 + w[1].1 - w[0].1 >= 1);
        }
        // openai-whisper's tie rule reaches a row by a down step from the previous row's last
        // column (checked against its dtw_cpu).
        let first_col = |r| path.iter().find(|p| p.0 == r).unwrap().1;
        assert_eq!((first_col(0), first_col(1), first_col(2)), (0, 1, 3));
        assert_eq!(path.len(), 8);
    }

    #[test]
    fn median_filter_reflects_edges() {
        let x = [5.0, 1.0, 4.0, 2.0, 3.0];
        let mut out = [0.0; 5];
        median_filter(&x, 3, &mut out);
        // Edges reflect: [1,5,1] -> 1 and [2,3,2] -> 2.
        assert_eq!(out, [1.0, 4.0, 2.0, 3.0, 2.0]);
        let mut short = [0.0; 2];
        median_filter(&x[..2], 7, &mut short);
        assert_eq!(short, [5.0, 1.0]);
    }

    #[test]
    fn words_split_on_spaces_and_punctuation_then_merge() {
        let pieces = [
            " And", " so", ",", " my", " fel", "low", " \"", "Amer", "icans", "\"", ".",
        ];
        let decode = |ids: &[u32]| ids.iter().map(|&i| pieces[i as usize]).collect::<String>();
        let ids: Vec<u32> = (0..pieces.len() as u32).collect();
        let words = split_words(&ids, &decode, &|_| false);
        let texts: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(
            texts,
            [
                " And",
                " so",
                ",",
                " my",
                " fellow",
                " \"Americans",
                "\"",
                "."
            ]
        );
        let mut spans: Vec<TimedWord> = words
            .into_iter()
            .map(|(w, r)| timed(&w, r, 0.0, 0.0))
            .collect();
        merge_punctuation(&mut spans);
        let texts: Vec<(&str, Range<usize>)> = spans
            .iter()
            .map(|s| (s.word.as_str(), s.tokens.clone()))
            .collect();
        assert_eq!(
            texts,
            [
                (" And", 0..1),
                (" so,", 1..3),
                (" my", 3..4),
                (" fellow", 4..6),
                (" \"Americans\".", 6..11)
            ]
        );
    }

    #[test]
    fn a_character_over_several_tokens_stays_one_piece() {
        // Token 1 and 2 are the two halves of one character.
        let decode = |ids: &[u32]| match ids {
            [1] | [2] => "\u{FFFD}".to_string(),
            [1, 2] => " é".to_string(),
            _ => ids.iter().map(|i| format!(" w{i}")).collect(),
        };
        let words = split_words(&[0, 1, 2], &decode, &|_| false);
        assert_eq!(words.len(), 2);
        assert_eq!(words[1], (" é".to_string(), 1..3));
    }

    #[test]
    fn alignment_places_words_where_their_heads_look() {
        // Two heads, 4 rows (3 tokens + end), 20 columns: token i looks at columns 5i..5i+5
        // (bands wider than half the median filter, which erases narrower ones).
        let (rows, cols) = (4, 20);
        let head: Vec<f32> = (0..rows * cols)
            .map(|k| {
                if (k % cols) / 5 == k / cols {
                    0.3
                } else {
                    0.01
                }
            })
            .collect();
        let words = vec![(" a".into(), 0..1), (" bc".into(), 1..3)];
        let spans = align_words(&[head.clone(), head], rows, cols, 0, words);
        let (a, bc) = (spans[0].cols.unwrap(), spans[1].cols.unwrap());
        assert_eq!(a.0, 0);
        assert!((4..=5).contains(&a.1) && a.1 == bc.0, "{spans:?}");
        assert!((14..=15).contains(&bc.1), "{spans:?}");
    }

    #[test]
    fn tidy_cuts_a_long_sentence_end() {
        let mut words = vec![
            timed(" a", 0..1, 0.0, 0.2),
            timed(" b", 1..2, 0.2, 0.4),
            timed(".", 2..3, 0.4, 3.0),
        ];
        let median = cut_sentence_ends(&mut words);
        assert!((median - 0.2).abs() < 1e-9);
        assert!((words[2].end - 0.8).abs() < 1e-9, "{words:?}");
        merge_punctuation(&mut words);
        assert_eq!(words.len(), 2);
        assert_eq!(
            (words[1].word.as_str(), words[1].tokens.clone()),
            (" b.", 1..3)
        );
    }
}
