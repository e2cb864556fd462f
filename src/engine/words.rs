//! Each run's attention to the audio and its words, in clip time: the decodes' maps
//! ([`crate::model::align`]) mapped back through the run's kept tokens (a merged token's column
//! stands for every member of its group).

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::model::align::{self, TimedWord, TokenAttention, WordSpan};
use crate::model::Generation;
use crate::prune::Combination;

/// One decoder input's map: rows are the tokens it chose (from `first_token` of the run's
/// `token_ids` on; a last row chose the end token when it ended with one), columns the clip
/// tokens it read, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionBlock {
    /// Window of the clip (0 for prefix models, which read the whole clip at once).
    pub window: usize,
    /// Index in the run's `token_ids` of the token row 0 chose.
    pub first_token: usize,
    /// The clip token each column is (a merged token: its target).
    pub tokens: Vec<usize>,
    /// `rows x tokens.len()` weights.
    pub rows: Vec<Vec<f32>>,
}

/// A run's attention from its output tokens to the audio, one block per decoder input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunAttention {
    pub blocks: Vec<AttentionBlock>,
}

impl RunAttention {
    /// The attention of the output tokens `tokens` (indices in the run's `token_ids`) over the
    /// clip's `n` tokens: the mean of their rows, a merged column's weight (`merged`: the run's
    /// merged tokens) on every member of its group. None when no row covers them.
    pub fn over_clip(
        &self,
        tokens: Range<usize>,
        n: usize,
        merged: &[Combination],
    ) -> Option<Vec<f32>> {
        let groups: HashMap<usize, Vec<usize>> = merged
            .iter()
            .map(|c| (c.target, c.parts.iter().map(|&(t, _)| t).collect()))
            .collect();
        let mut out = vec![0f32; n];
        let mut count = 0usize;
        for b in &self.blocks {
            let rows = b.first_token..b.first_token + b.rows.len();
            let lo = tokens.start.max(rows.start);
            let hi = tokens.end.min(rows.end);
            for r in lo..hi {
                count += 1;
                for (&t, &w) in b.tokens.iter().zip(&b.rows[r - b.first_token]) {
                    match groups.get(&t) {
                        Some(members) => members.iter().for_each(|&m| {
                            if let Some(o) = out.get_mut(m) {
                                *o += w;
                            }
                        }),
                        None => {
                            if let Some(o) = out.get_mut(t) {
                                *o += w;
                            }
                        }
                    }
                }
            }
        }
        if count == 0 {
            return None;
        }
        out.iter_mut().for_each(|x| *x /= count as f32);
        Some(out)
    }
}

/// The clip tokens a decoder input's columns are: the run's kept tokens of that window, in
/// order (every valid token of it for vanilla, `kept` then being every token).
pub fn columns(kept: &[usize], window: Option<Range<usize>>) -> Vec<usize> {
    match window {
        Some(w) => kept.iter().copied().filter(|t| w.contains(t)).collect(),
        None => kept.to_vec(),
    }
}

/// Builds a run's attention blocks and timed words from its generations in window order:
/// `(window, its columns' clip tokens, generation)`. `seconds_per_token` places a clip token
/// in time (token `t` starts at `t * seconds_per_token`).
pub fn assemble(
    gens: &[(usize, Vec<usize>, &Generation)],
    seconds_per_token: f64,
) -> (RunAttention, Vec<TimedWord>) {
    let mut att = RunAttention { blocks: Vec::new() };
    let mut words = Vec::new();
    let mut first_token = 0;
    let mut last_speech = 0.0;
    for (window, tokens, g) in gens {
        if let Some(map) = &g.attention {
            if map.cols == tokens.len() {
                att.blocks.push(AttentionBlock {
                    window: *window,
                    first_token,
                    tokens: tokens.clone(),
                    rows: (0..map.rows).map(|r| map.row(r).to_vec()).collect(),
                });
                let mut w = place(&g.words, map, tokens, seconds_per_token);
                for x in w.iter_mut() {
                    x.tokens = x.tokens.start + first_token..x.tokens.end + first_token;
                }
                if g.words.iter().any(|s| s.cols.is_some()) {
                    // DTW times: faster-whisper's clean-up, then punctuation merged.
                    let median = align::cut_sentence_ends(&mut w);
                    align::merge_punctuation(&mut w);
                    align::first_word_after_pause(&mut w, last_speech, median);
                    if let Some(last) = w.last() {
                        last_speech = last.end;
                    }
                }
                // Milliseconds are all a word time means (DTW's step is 20 ms).
                for x in w.iter_mut() {
                    x.start = (x.start * 1e3).round() / 1e3;
                    x.end = (x.end * 1e3).round() / 1e3;
                }
                words.extend(w);
            }
        }
        first_token += g.token_ids.len();
    }
    (att, words)
}

/// A generation's words in clip time: by their DTW columns (Whisper), else (merged first) at
/// the attention-weighted centre of the audio their tokens read, start and end alike.
fn place(
    spans: &[WordSpan],
    map: &TokenAttention,
    tokens: &[usize],
    seconds_per_token: f64,
) -> Vec<TimedWord> {
    let start_of = |c: usize| -> f64 {
        match tokens.get(c) {
            Some(&t) => t as f64 * seconds_per_token,
            // One past the last column: the end of the last token read.
            None => tokens
                .last()
                .map_or(0.0, |&t| (t + 1) as f64 * seconds_per_token),
        }
    };
    let mut words: Vec<TimedWord> = spans
        .iter()
        .map(|s| {
            let (start, end) = s
                .cols
                .map_or((0.0, 0.0), |(a, b)| (start_of(a), start_of(b)));
            TimedWord {
                word: s.word.clone(),
                start,
                end,
                tokens: s.tokens.clone(),
            }
        })
        .collect();
    if spans.iter().any(|s| s.cols.is_some()) {
        return words;
    }
    align::merge_punctuation(&mut words);
    for w in words.iter_mut() {
        let (mut sum, mut weight) = (0f64, 0f64);
        for r in w.tokens.clone().filter(|&r| r < map.rows) {
            for (c, &x) in map.row(r).iter().enumerate() {
                let centre = (tokens[c] as f64 + 0.5) * seconds_per_token;
                sum += x as f64 * centre;
                weight += x as f64;
            }
        }
        let centre = if weight > 0.0 { sum / weight } else { 0.0 };
        w.start = centre;
        w.end = centre;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(ids: usize, map: TokenAttention, words: Vec<WordSpan>) -> Generation {
        Generation {
            token_ids: (0..ids as u32).collect(),
            attention: Some(map),
            words,
            ..Generation::default()
        }
    }

    #[test]
    fn dtw_columns_become_clip_times_through_the_kept_tokens() {
        // Kept tokens 10, 20, 30, 40 of a pruned run; two words over columns 0..2 and 2..4.
        let map = TokenAttention {
            rows: 3,
            cols: 4,
            map: vec![0.25; 12],
        };
        let words = vec![
            WordSpan {
                word: " a".into(),
                tokens: 0..1,
                cols: Some((0, 2)),
            },
            WordSpan {
                word: " b".into(),
                tokens: 1..2,
                cols: Some((2, 4)),
            },
        ];
        let g = generation(2, map, words);
        let (att, words) = assemble(&[(0, vec![10, 20, 30, 40], &g)], 0.02);
        assert_eq!(att.blocks.len(), 1);
        let t: Vec<(f64, f64)> = words.iter().map(|w| (w.start, w.end)).collect();
        assert!(
            (t[0].0 - 0.2).abs() < 1e-9 && (t[0].1 - 0.6).abs() < 1e-9,
            "{t:?}"
        );
        assert!(
            (t[1].0 - 0.6).abs() < 1e-9 && (t[1].1 - 0.82).abs() < 1e-9,
            "{t:?}"
        );
    }

    #[test]
    fn a_prefix_models_word_sits_at_its_attention_centre_and_merged_columns_spread() {
        // One word of two tokens reading columns (tokens 0 and 4) equally: centre between them.
        let map = TokenAttention {
            rows: 3,
            cols: 2,
            map: vec![0.5, 0.5, 0.5, 0.5, 1.0, 0.0],
        };
        let words = vec![WordSpan {
            word: " hi".into(),
            tokens: 0..2,
            cols: None,
        }];
        let g = generation(2, map, words);
        let merged = [Combination {
            target: 4,
            parts: vec![(4, 0.5), (5, 0.5)],
        }];
        let (att, words) = assemble(&[(0, vec![0, 4], &g)], 0.04);
        assert!(
            (words[0].start - (0.02 + 0.18) / 2.0).abs() < 1e-9,
            "{words:?}"
        );
        assert_eq!(words[0].start, words[0].end);
        let over = att.over_clip(0..2, 6, &merged).unwrap();
        assert_eq!(over, vec![0.5, 0.0, 0.0, 0.0, 0.5, 0.5]);
        assert!(att.over_clip(5..9, 6, &merged).is_none());
    }
}
