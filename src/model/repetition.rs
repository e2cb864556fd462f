//! When a decode has looped (SPEC.md section 5, "Loops"): the one rule every model, the
//! engine, `eval` and the explorer share.
//!
//! A run is `looped` when any of these holds:
//! 1. it stopped at its token cap instead of an end token;
//! 2. it repeats itself back to back: a block of `u` tokens is followed by copies of itself
//!    until at least [`MIN_REPEATED_TOKENS`] tokens repeat what immediately precedes them
//!    (a token 5 times in a row, a 2- or 3-token phrase 3 times, a phrase of 4 or more tokens
//!    twice);
//! 3. its text compresses too well: zlib-format deflate (level 6, miniz_oxide: the same size as
//!    Python's zlib on transcripts, a little larger on tiny extremely repetitive strings) ratio
//!    above [`COMPRESSION_RATIO_LIMIT`], the test Whisper itself uses to reject hallucinated
//!    repetition (it catches loops that are not word for word).
//!
//! Rule 2 is checked incrementally: the loop is found at the first generated token where the
//! sequence so far ends in a qualifying repetition, so the `--stop-on-loop` guard (which checks
//! the same thing after every token) cuts a run exactly where this rule would later flag it, and
//! keeps the text before the first repeated copy.

/// Repeated tokens that make back-to-back copies a loop.
pub const MIN_REPEATED_TOKENS: usize = 4;
/// Whisper's `compression_ratio_threshold`.
pub const COMPRESSION_RATIO_LIMIT: f64 = 2.4;

/// If `ids` ends in a qualifying back-to-back repetition, the index where the repeated copies
/// start (the first copy stays) and the block length.
pub fn repeat_at_end(ids: &[u32]) -> Option<(usize, usize)> {
    let n = ids.len();
    for u in 1..=n / 2 {
        let block = &ids[n - u..];
        let mut copies = 1;
        while (copies + 1) * u <= n && &ids[n - (copies + 1) * u..n - copies * u] == block {
            copies += 1;
            if (copies - 1) * u >= MIN_REPEATED_TOKENS {
                return Some((n - (copies - 1) * u, u));
            }
        }
    }
    None
}

/// The first back-to-back loop of a finished decode, as the token range of its repeated copies:
/// from where [`repeat_at_end`] first fires over the growing sequence, extended while the
/// sequence keeps the same period.
pub fn first_repeat(ids: &[u32]) -> Option<std::ops::Range<usize>> {
    for end in 1..=ids.len() {
        if let Some((start, u)) = repeat_at_end(&ids[..end]) {
            let mut stop = end;
            while stop < ids.len() && ids[stop] == ids[stop - u] {
                stop += 1;
            }
            return Some(start..stop);
        }
    }
    None
}

/// zlib-compressed size ratio of a text, as Whisper computes it (`len(bytes) /
/// len(zlib.compress(bytes))`); 0 for an empty text.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let packed = miniz_oxide::deflate::compress_to_vec_zlib(text.as_bytes(), 6);
    text.len() as f64 / packed.len().max(1) as f64
}

/// How a finished decode ended, as far as loops go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopReport {
    pub looped: bool,
    /// Byte range of the repeated copies in the decode's text (dimmed in the explorer), to the
    /// end of the text when the decode reached its cap; None when the loop is not back to back
    /// (cap or compression only) or was cut by the guard.
    pub span: Option<std::ops::Range<usize>>,
    /// The `--stop-on-loop` guard ended the decode at its first repeated copy.
    pub stopped: bool,
}

/// Judges a finished decode. `text` is the decoded `ids`, trimmed; `decode` turns a prefix of
/// `ids` into text (to find where the repeated copies begin in `text`).
pub fn assess(
    ids: &[u32],
    text: &str,
    capped: bool,
    stopped: bool,
    decode: &dyn Fn(&[u32]) -> String,
) -> LoopReport {
    let span = first_repeat(ids).map(|r| {
        let offset = |k: usize| -> usize {
            let prefix = decode(&ids[..k]);
            floor_char_boundary(text, prefix.trim_start().len())
        };
        offset(r.start)..offset(r.end).max(offset(r.start))
    });
    // A decode that reached its cap never left its loop: the repeats run to the end of its text
    // (the period may shift on the way, which the back-to-back run above stops at).
    let span = span
        .map(|r| if capped { r.start..text.len() } else { r })
        .filter(|r| !r.is_empty());
    LoopReport {
        looped: capped
            || stopped
            || span.is_some()
            || compression_ratio(text) > COMPRESSION_RATIO_LIMIT,
        span,
        stopped,
    }
}

fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy "tokenizer": token i is the word `w{i}` with a leading space.
    fn decode(ids: &[u32]) -> String {
        ids.iter().map(|i| format!(" w{i}")).collect()
    }

    #[test]
    fn clean_text_is_not_a_loop() {
        let ids: Vec<u32> = (0..60).collect();
        let text = decode(&ids).trim().to_string();
        assert_eq!(first_repeat(&ids), None);
        let r = assess(&ids, &text, false, false, &decode);
        assert!(!r.looped);
        assert_eq!(r.span, None);
    }

    #[test]
    fn thresholds_by_block_length() {
        // One token: 4 in a row is fine, 5 is a loop.
        assert_eq!(repeat_at_end(&[9, 1, 1, 1, 1]), None);
        assert_eq!(repeat_at_end(&[9, 1, 1, 1, 1, 1]), Some((2, 1)));
        // Two tokens: twice is fine, three times a loop.
        assert_eq!(repeat_at_end(&[9, 1, 2, 1, 2]), None);
        assert_eq!(repeat_at_end(&[9, 1, 2, 1, 2, 1, 2]), Some((3, 2)));
        // Four tokens: twice is a loop.
        assert_eq!(repeat_at_end(&[9, 1, 2, 3, 4, 1, 2, 3, 4]), Some((5, 4)));
        // Not at the end: nothing (the incremental check only looks at the end).
        assert_eq!(repeat_at_end(&[1, 2, 3, 4, 1, 2, 3, 4, 7]), None);
    }

    #[test]
    fn a_phrase_repeated_below_the_cap_is_a_loop_with_its_span() {
        // "w0 w1 w2 w3 w4" then the phrase "w5 w6 w7" three times, then an end.
        let ids = [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 5, 6, 7];
        assert_eq!(first_repeat(&ids), Some(8..14));
        let text = decode(&ids).trim().to_string();
        let r = assess(&ids, &text, false, false, &decode);
        assert!(r.looped);
        let span = r.span.clone().unwrap();
        assert_eq!(&text[span], " w5 w6 w7 w5 w6 w7");
        assert!(!r.stopped);
    }

    #[test]
    fn a_capped_loop_is_dimmed_to_the_end_even_when_its_period_shifts() {
        // "w0 w1" then (w2 w3) three times, then (w4 w2 w3) until the cap.
        let mut ids = vec![0, 1, 2, 3, 2, 3, 2, 3];
        ids.extend([4, 2, 3].repeat(5));
        let text = decode(&ids).trim().to_string();
        let capped = assess(&ids, &text, true, false, &decode);
        let span = capped.span.unwrap();
        assert_eq!(&text[span.clone()], &decode(&ids[4..])[..]);
        assert_eq!(span.end, text.len());
        // Ended by an end token, only the back-to-back run is the loop.
        let ended = assess(&ids, &text, false, false, &decode);
        assert_eq!(&text[ended.span.unwrap()], " w2 w3 w2 w3");
    }

    #[test]
    fn hitting_the_cap_is_a_loop_even_without_repeats() {
        let ids: Vec<u32> = (0..224).collect();
        let text = decode(&ids).trim().to_string();
        let r = assess(&ids, &text, true, false, &decode);
        assert!(r.looped);
        assert_eq!(r.span, None);
    }

    #[test]
    fn the_guard_cuts_where_the_flag_would_fire() {
        // Feed a looping sequence token by token as a decoder would, stopping where
        // repeat_at_end fires; the kept prefix is exactly first_repeat's start.
        let looping = [3, 8, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3];
        let mut ids = Vec::new();
        let mut cut = None;
        for &t in &looping {
            ids.push(t);
            if let Some((start, _)) = repeat_at_end(&ids) {
                cut = Some(start);
                break;
            }
        }
        let cut = cut.unwrap();
        assert_eq!(cut, first_repeat(&looping).unwrap().start);
        assert_eq!(&looping[..cut], &[3, 8, 1, 2, 3]);
    }

    #[test]
    fn compression_ratio_matches_whisper_on_a_looping_transcript() {
        // Python: len(t) / len(zlib.compress(t)) with t below is 228 / 97.
        let t =
            "And so my fellow Americans ask not what your country can do for you, ask what you \
                 can do for your country. And so I ask you to ask you to ask me to ask you to ask \
                 me to ask you to ask me to ask you to ask me to ask you to ask me";
        assert_eq!(t.len(), 228);
        assert_eq!(compression_ratio(t), 228.0 / 97.0);
        // Short, extremely repetitive texts compress a little less than with zlib (35 bytes
        // instead of 23 here) but stay far above the limit.
        assert!(compression_ratio(&"hello world ".repeat(20)) > 6.0);
        assert!(compression_ratio("And so my fellow Americans, ask not.") < 1.5);
        // Near-repeats that are not word for word still compress well.
        let fuzzy: String = (0..30)
            .map(|i| format!("the cat sat on the mat number {} ", i % 3))
            .collect();
        assert!(compression_ratio(&fuzzy) > COMPRESSION_RATIO_LIMIT);
        assert_eq!(compression_ratio(""), 0.0);
    }
}
