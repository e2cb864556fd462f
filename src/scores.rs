//! Which scores drive the pruning methods (SPEC.md section 2): an encoder layer's received
//! attention, reduced over heads by the mean (the paper's) or the max, and the layers an encoder
//! pass collects for it. Plain values and look-ups, no candle: `prune` holds a [`ScoreSource`]
//! in its `Params`, `model` fills [`LayerScores`] (`model::scores` computes them), and the
//! engine picks the source's scores for the rules.

use serde::{Deserialize, Serialize};

use crate::util::UnknownName;

/// How the heads' received attention becomes one score per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadReduce {
    /// The paper's: the mean over heads.
    #[default]
    Mean,
    /// The largest head's: a token one head attends to strongly scores high.
    Max,
}

impl HeadReduce {
    pub fn parse(s: &str) -> Result<HeadReduce, UnknownName> {
        crate::util::parse_name(
            "head reduction",
            s,
            &[("mean", HeadReduce::Mean), ("max", HeadReduce::Max)],
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            HeadReduce::Mean => "mean",
            HeadReduce::Max => "max",
        }
    }
}

/// Which scores drive every pruning method: one encoder layer's received attention (None: the
/// last, the paper's) reduced over heads one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreSource {
    /// Encoder layer, 0 for the first; None for the last.
    pub layer: Option<usize>,
    pub head_reduce: HeadReduce,
}

impl ScoreSource {
    /// The layer index among `layers` encoder layers.
    pub fn layer_of(&self, layers: usize) -> usize {
        self.layer.unwrap_or(layers.saturating_sub(1))
    }

    /// This source's scores among collected `layers` of an encoder of `encoder_layers` layers;
    /// None when its layer was not collected.
    pub fn pick<'a>(&self, layers: &'a [LayerScores], encoder_layers: usize) -> Option<&'a [f32]> {
        let layer = self.layer_of(encoder_layers);
        layers
            .iter()
            .find(|l| l.layer == layer)
            .map(|l| l.get(self.head_reduce))
    }

    /// The layers an encoder pass must collect for this source (at least `asked`).
    pub fn layers(&self, asked: Layers) -> Layers {
        if self.layer.is_some() {
            Layers::All
        } else {
            asked
        }
    }
}

/// Which encoder layers' scores an encoder pass collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Layers {
    /// The last layer's (what the paper scores with): no cost in the other layers.
    #[default]
    Last,
    /// Every layer's, in the same pass.
    All,
}

/// One encoder layer's received attention over the valid tokens, both reductions over heads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerScores {
    /// Encoder layer, 0 for the first.
    pub layer: usize,
    pub mean: Vec<f32>,
    pub max: Vec<f32>,
}

impl LayerScores {
    pub fn get(&self, r: HeadReduce) -> &[f32] {
        match r {
            HeadReduce::Mean => &self.mean,
            HeadReduce::Max => &self.max,
        }
    }

    /// Appends another window's tokens.
    pub fn extend(&mut self, other: &LayerScores) {
        self.mean.extend_from_slice(&other.mean);
        self.max.extend_from_slice(&other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(layer: usize, base: f32) -> LayerScores {
        LayerScores {
            layer,
            mean: vec![base, base + 1.0],
            max: vec![base + 10.0, base + 11.0],
        }
    }

    #[test]
    fn a_source_picks_its_layer_and_reduction() {
        let all = [layer(0, 0.0), layer(1, 100.0), layer(2, 200.0)];
        let last = ScoreSource::default();
        assert_eq!(last.layer_of(3), 2);
        assert_eq!(last.pick(&all, 3), Some(&[200.0, 201.0][..]));
        let first_max = ScoreSource {
            layer: Some(0),
            head_reduce: HeadReduce::Max,
        };
        assert_eq!(first_max.pick(&all, 3), Some(&[10.0, 11.0][..]));
        // Only the last layer collected: another layer's scores are not there.
        assert_eq!(first_max.pick(&all[2..], 3), None);
        assert_eq!(last.pick(&all[2..], 3), Some(&[200.0, 201.0][..]));
    }

    #[test]
    fn a_layer_other_than_the_last_needs_every_layer() {
        assert_eq!(ScoreSource::default().layers(Layers::Last), Layers::Last);
        assert_eq!(ScoreSource::default().layers(Layers::All), Layers::All);
        let first = ScoreSource {
            layer: Some(0),
            ..ScoreSource::default()
        };
        assert_eq!(first.layers(Layers::Last), Layers::All);
    }

    #[test]
    fn windows_append_and_names_parse() {
        let mut a = layer(1, 0.0);
        a.extend(&layer(1, 5.0));
        assert_eq!(a.mean, [0.0, 1.0, 5.0, 6.0]);
        assert_eq!(a.get(HeadReduce::Max), [10.0, 11.0, 15.0, 16.0]);
        for r in [HeadReduce::Mean, HeadReduce::Max] {
            assert_eq!(
                HeadReduce::parse(&format!(" {} ", r.name().to_uppercase())),
                Ok(r)
            );
        }
        assert!(HeadReduce::parse("median").is_err());
    }
}
