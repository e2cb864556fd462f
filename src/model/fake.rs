//! A small deterministic stand-in for a real model, so the GUI and worker tests run without
//! weights: Whisper's token grid (1500 tokens of 20 ms per 30 s window), scores from the audio's
//! loudness with a few sharp peaks, and a canned transcript of which a word is "heard" when at
//! least one kept token falls in its share of the window. Decoding sleeps a little per word and
//! honours the cancel flag at every step, like the real decoder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use super::{
    AudioLanguageModel, DecodeInput, EncodedWindow, Ending, Generation, ModelError, ModelInfo,
};
use super::{OnFinished, Result};
use crate::audio::whisper_tokens;
use crate::scores::{HeadReduce, LayerScores, Layers};

const TRANSCRIPT: &str = "and so my fellow americans ask not what your country can do for you \
                          ask what you can do for your country";
const TOKENS_PER_WINDOW: usize = 1500;
/// Hidden width: column 0 the window-local token index (-1 for padding), column 1 the
/// window's valid-token count, the rest zero.
const D_MODEL: usize = 4;
const KEY_DIM: usize = 4;

/// The fake model. `step` is the time one decoding step takes.
pub struct FakeModel {
    info: ModelInfo,
    pub step: Duration,
    /// Make every `generate` call fail (to test how failures are shown).
    pub fail_decode: bool,
    /// Loop like a starved decoder: when a decode heard fewer than this share of the words, it
    /// repeats its last two words up to [`FAKE_CAP`] tokens (None: never).
    pub loop_below: Option<f64>,
    /// How many times a full window says the transcript (1: jfk's 22 words; a window of real
    /// speech says about 75, so 3 gives a long clip's grid its real amount of text).
    pub say_times: usize,
}

/// The fake's token cap when it loops.
pub const FAKE_CAP: usize = 24;

impl Default for FakeModel {
    fn default() -> Self {
        FakeModel::new(Duration::from_millis(3))
    }
}

impl FakeModel {
    pub fn new(step: Duration) -> FakeModel {
        FakeModel {
            info: ModelInfo::cross_attention(
                "fake (deterministic test model)".into(),
                80,
                TOKENS_PER_WINDOW,
                LAYERS,
            ),
            step,
            fail_decode: false,
            loop_below: None,
            say_times: 1,
        }
    }
}

/// The fake's encoder layers.
const LAYERS: usize = 4;

/// The fake's score of a token in `layer` (the last one is the paper's): louder tokens score
/// higher, plus periodic sharp peaks (the "attention sinks" real encoders show) whose period
/// differs by layer, so top-k and segmentwise differ visibly and so do the layers. The max over
/// heads sharpens the peaks.
fn score(rms: f32, t: usize, layer: usize, reduce: HeadReduce) -> f32 {
    let freq = 0.173 + 0.061 * (LAYERS - 1 - layer) as f32;
    let peak = ((t as f32 * freq).sin().abs()).powi(24);
    let gain = match reduce {
        HeadReduce::Mean => 1.5,
        HeadReduce::Max => 4.0,
    };
    0.05 + 4.0 * rms + gain * peak
}

impl AudioLanguageModel for FakeModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn encode(&self, samples: &[f32], layers: Layers) -> Result<EncodedWindow> {
        let n_valid = whisper_tokens(samples.len());
        let per_token = samples.len().div_ceil(n_valid.max(1)).max(1);
        let first = match layers {
            Layers::Last => LAYERS - 1,
            Layers::All => 0,
        };
        let mut per_layer: Vec<LayerScores> = (first..LAYERS)
            .map(|layer| LayerScores {
                layer,
                ..LayerScores::default()
            })
            .collect();
        let mut keys = Vec::with_capacity(n_valid * KEY_DIM);
        for t in 0..n_valid {
            let chunk = samples
                .get(t * per_token..((t + 1) * per_token).min(samples.len()))
                .unwrap_or(&[]);
            let rms = if chunk.is_empty() {
                0.0
            } else {
                (chunk.iter().map(|x| x * x).sum::<f32>() / chunk.len() as f32).sqrt()
            };
            for l in per_layer.iter_mut() {
                l.mean.push(score(rms, t, l.layer, HeadReduce::Mean));
                l.max.push(score(rms, t, l.layer, HeadReduce::Max));
            }
            let phase = t as f32 * 0.05;
            keys.extend_from_slice(&[phase.sin(), phase.cos(), rms, 1.0]);
        }
        let mut hidden = vec![0.0f32; TOKENS_PER_WINDOW * D_MODEL];
        for (t, row) in hidden.chunks_exact_mut(D_MODEL).enumerate() {
            row[0] = if t < n_valid { t as f32 } else { -1.0 };
            row[1] = n_valid as f32;
        }
        let hidden = Tensor::from_vec(hidden, (TOKENS_PER_WINDOW, D_MODEL), &Device::Cpu)?;
        Ok(EncodedWindow {
            hidden,
            n_valid,
            keys,
            key_dim: KEY_DIM,
            layers: per_layer,
        })
    }

    fn generate(
        &self,
        inputs: &[DecodeInput],
        cancel: &AtomicBool,
        on_finished: &mut OnFinished<'_>,
    ) -> Result<Vec<Generation>> {
        if self.fail_decode {
            return Err(ModelError::Tokenizer(
                "the fake model was told to fail".into(),
            ));
        }
        let words: Vec<&str> = std::iter::repeat_n(TRANSCRIPT, self.say_times.max(1))
            .flat_map(str::split_whitespace)
            .collect();
        let mut out = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let t0 = Instant::now();
            let rows = input.memory.to_vec2::<f32>()?;
            let n_valid = rows.first().map_or(0, |r| r[1] as usize).max(1);
            let mut heard = vec![false; words.len()];
            for r in &rows {
                if r[0] >= 0.0 {
                    let w = (r[0] as usize * words.len() / n_valid).min(words.len() - 1);
                    heard[w] = true;
                }
            }
            let mut token_ids: Vec<u32> = Vec::new();
            for (w, _) in words.iter().enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    return Err(ModelError::Cancelled);
                }
                std::thread::sleep(self.step);
                if heard[w] {
                    token_ids.push(w as u32);
                }
            }
            let share = token_ids.len() as f64 / words.len() as f64;
            let mut ending = Ending::EndToken;
            if self.loop_below.is_some_and(|b| share < b) && token_ids.len() >= 2 {
                let pair = [
                    token_ids[token_ids.len() - 2],
                    token_ids[token_ids.len() - 1],
                ];
                ending = Ending::Cap;
                for t in pair.into_iter().cycle() {
                    token_ids.push(t);
                    if let Some(e) = Ending::guard(&mut token_ids, input.stop_on_loop) {
                        ending = e;
                        break;
                    }
                    if token_ids.len() >= FAKE_CAP {
                        break;
                    }
                }
            }
            // Words joined by spaces, the first one capitalised.
            let decode = |ids: &[u32]| -> Result<String> {
                let text: Vec<&str> = ids.iter().map(|&w| words[w as usize]).collect();
                let mut text = text.join(" ");
                if let Some(first) = text.get(..1) {
                    text = first.to_uppercase() + &text[1..];
                }
                Ok(text)
            };
            let mut g = Generation {
                decode_ms: t0.elapsed().as_secs_f64() * 1e3,
                prefill_ms: None,
                steps: words.len(),
                ..Generation::finish(token_ids, ending, &decode)?
            };
            // FastV: the fake keeps the first K rows (and hears them all the same).
            g.kept = input
                .fastv
                .filter(|f| f.keep < rows.len())
                .map(|f| (0..f.keep).collect());
            if input.attention && g.kept.is_none() {
                // Each token attends to the rows it was read from; its word spans them.
                let word_of = |r: &Vec<f32>| {
                    (r[0] >= 0.0)
                        .then(|| (r[0] as usize * words.len() / n_valid).min(words.len() - 1))
                };
                let cols = rows.len();
                let n_rows = g.token_ids.len() + usize::from(ending == Ending::EndToken);
                let mut map = vec![0f32; n_rows * cols];
                for (i, row) in map.chunks_mut(cols.max(1)).enumerate() {
                    let target = g.token_ids.get(i).map(|&w| w as usize);
                    let hits: Vec<usize> = (0..cols)
                        .filter(|&c| target.is_some() && word_of(&rows[c]) == target)
                        .collect();
                    if hits.is_empty() {
                        row.fill(1.0 / cols as f32);
                    }
                    for &c in &hits {
                        row[c] = 1.0 / hits.len() as f32;
                    }
                    if let Some(&w) = g.token_ids.get(i) {
                        let span = hits.first().zip(hits.last()).map(|(a, b)| (*a, b + 1));
                        g.words.push(crate::model::align::WordSpan {
                            word: format!(" {}", words[w as usize]),
                            tokens: i..i + 1,
                            cols: Some(span.unwrap_or((0, 0))),
                        });
                    }
                }
                g.attention = Some(crate::model::align::TokenAttention {
                    rows: n_rows,
                    cols,
                    map,
                });
            }
            on_finished(i, &g);
            out.push(g);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewer_kept_tokens_hear_fewer_words() {
        let m = FakeModel::new(Duration::ZERO);
        let samples: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.01).sin() * 0.3).collect();
        let enc = m.encode(&samples, Layers::Last).unwrap();
        assert_eq!(enc.n_valid, 50);
        assert_eq!(enc.scores().len(), 50);
        let all = enc.hidden.narrow(0, 0, 50).unwrap();
        let few = enc.hidden.narrow(0, 0, 5).unwrap();
        let cancel = AtomicBool::new(false);
        let g = m
            .generate(
                &[DecodeInput::new(all), DecodeInput::new(few)],
                &cancel,
                &mut |_, _| {},
            )
            .unwrap();
        assert!(g[0].text.starts_with("And so my fellow"));
        assert!(g[1].text.split_whitespace().count() < g[0].text.split_whitespace().count());
        assert!(!g[0].loops.looped && !g[1].loops.looped);

        // Starved decodes loop when asked to, and the guard cuts them.
        let mut looping = FakeModel::new(Duration::ZERO);
        looping.loop_below = Some(0.5);
        let few = || DecodeInput::new(enc.hidden.narrow(0, 0, 5).unwrap());
        let mut guarded = few();
        guarded.stop_on_loop = true;
        let g = looping
            .generate(&[few(), guarded], &cancel, &mut |_, _| {})
            .unwrap();
        assert!(g[0].loops.looped && !g[0].loops.stopped);
        assert_eq!(g[0].token_ids.len(), FAKE_CAP);
        assert!(g[0].loops.span.is_some());
        assert!(g[1].loops.looped && g[1].loops.stopped);
        assert!(g[1].token_ids.len() < FAKE_CAP);
        assert!(g[0].text.starts_with(&g[1].text));

        cancel.store(true, Ordering::Relaxed);
        let memory = enc.hidden.narrow(0, 0, 50).unwrap();
        assert!(matches!(
            m.generate(&[DecodeInput::new(memory)], &cancel, &mut |_, _| {}),
            Err(ModelError::Cancelled)
        ));
    }
}
