//! What every lane draws from, gathered once a frame.

use crate::engine::RunKey;
use crate::model::align::TimedWord;
use crate::scores::ScoreSource;
use crate::ui::logic::marks::Marks;
use crate::ui::logic::timeline::View;
use crate::ui::state::{Clip, Scores};
use crate::ui::textures::LaneTextures;

/// What every lane draws from, gathered once a frame.
pub struct LaneCtx<'a> {
    pub clip: &'a Clip,
    pub textures: &'a LaneTextures,
    pub scores: Option<&'a Scores>,
    pub marks: &'a Marks,
    pub view: View,
    /// Pixel columns of a lane.
    pub cols: usize,
    pub spt: f64,
    /// Tokens of the clip.
    pub n: usize,
    /// The focused cell (hovered, else the slider's), its words, the hovered one of them.
    pub focus: RunKey,
    pub words: &'a [TimedWord],
    pub hot_word: Option<usize>,
    /// The focused cell's `encoderdrop` layer: its tokens were dropped after it.
    pub drop_layer: Option<usize>,
    /// The hovered word's attention over the tokens.
    pub overlay: Option<&'a [f32]>,
    /// What the attention lane says before the scores come.
    pub waiting: &'static str,
    /// What the waveform and log-mel lanes say instead of the audio (a document's clip being
    /// decoded, or missing).
    pub audio_note: Option<String>,
}

impl LaneCtx<'_> {
    pub fn px_per_s(&self) -> f64 {
        self.cols as f64 / self.view.span().max(1e-9)
    }

    /// How far from a word (s) the pointer still picks it.
    pub fn word_slack(&self) -> f64 {
        6.0 / self.px_per_s()
    }

    /// The token under time `x`.
    pub fn token_at(&self, x: f64) -> Option<usize> {
        let i = (x / self.spt).floor();
        (i >= 0.0 && (i as usize) < self.n).then_some(i as usize)
    }

    /// The selection's score source as the layer lane shows it.
    pub fn source(&self) -> ScoreSource {
        self.scores.map_or(ScoreSource::default(), |s| {
            let src = &s.report.score_source;
            ScoreSource {
                layer: Some(src.layer),
                head_reduce: src.head_reduce,
            }
        })
    }
}
