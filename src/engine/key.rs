//! The identity of a run's output: which parameters a run of a plan can read, so two runs with
//! the same [`RunKey`] on the same encoded clip, model and prompt say the same thing. The
//! explorer caches its grid by it, and a decode request carries each run's key so every result
//! comes back with it (never matched by position).

use super::{Decoding, RunMethod, RunSpec, Tail};
use crate::prune::{Method, Order, Params, SegmentMode};
use crate::scores::ScoreSource;

/// The parameters a method reads besides the keep ratio (the rest cannot change its output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Reads {
    /// Vanilla and prompt-aware read none.
    Nothing,
    Order(Order),
    Segments(Order, usize, SegmentMode),
    /// Adaptive: S, gamma (its bits) and k_min.
    Adaptive(Order, usize, u64, usize),
    Window(Order, usize),
    Seed(Order, u64),
    /// Atome: its threshold's bits, if any.
    Threshold(Order, Option<u64>),
    /// FastV: its layer (prefix models).
    Layer(usize),
    /// encoderdrop: its layer (None: half the encoder's).
    DropLayer(Option<usize>),
    /// LTBM: its merge window.
    MergeWindow(Order, usize),
    /// DART: its pivot count.
    Pivots(Order, usize),
    /// Samp: its threshold's bits and the model's window in tokens.
    Samp(Order, u64, usize),
}

/// A run's key within one scope (model, clip, prompt: the explorer's `Scope`): it changes
/// exactly when the run's output can (the method, its keep ratio, the parameters that method
/// reads, the score source where the method ranks by it, the silence tail and the loop guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RunKey {
    pub method: RunMethod,
    /// Keep ratio in millionths (runs that ignore it: 1.0).
    keep_ppm: u32,
    reads: Reads,
    /// The score source, for the methods that rank tokens by their scores.
    source: Option<ScoreSource>,
    tail: Tail,
    stop_on_loop: bool,
}

impl RunKey {
    /// The key of `spec` under `params` and `decoding`.
    pub fn of(spec: &RunSpec, p: &Params, decoding: &Decoding) -> RunKey {
        let keep = spec.normalised(p).keep;
        let ranks = match spec.method {
            RunMethod::Vanilla
            | RunMethod::FastV
            | RunMethod::PromptAware
            | RunMethod::EncoderDrop
            | RunMethod::SpeechPrune => false,
            RunMethod::Prune(m) => m.reads_scores(p.order),
        };
        RunKey {
            method: spec.method,
            keep_ppm: (keep * 1e6).round() as u32,
            reads: reads(spec.method, p, decoding),
            source: ranks.then_some(p.source),
            // Vanilla reads every window whole, padding included: no tail setting applies.
            tail: if spec.method == RunMethod::Vanilla {
                Tail::Tokens(0)
            } else {
                decoding.tail
            },
            stop_on_loop: decoding.stop_on_loop,
        }
    }
}

/// What `method` reads of `p` and `decoding` besides the keep ratio.
fn reads(method: RunMethod, p: &Params, decoding: &Decoding) -> Reads {
    match method {
        RunMethod::Vanilla | RunMethod::PromptAware | RunMethod::SpeechPrune => Reads::Nothing,
        RunMethod::FastV => Reads::Layer(decoding.fastv_layer),
        RunMethod::EncoderDrop => Reads::DropLayer(decoding.drop_layer),
        RunMethod::Prune(m) => match m {
            Method::Segmentwise | Method::Merge => Reads::Segments(p.order, p.segments, p.mode),
            Method::Adaptive => Reads::Adaptive(p.order, p.segments, p.gamma.to_bits(), p.k_min),
            Method::Window => Reads::Window(p.order, p.window_tokens),
            Method::Random => Reads::Seed(p.order, p.seed),
            Method::Atome => Reads::Threshold(p.order, p.merge_threshold.map(f64::to_bits)),
            Method::Ltbm => Reads::MergeWindow(p.order, p.merge_window),
            Method::Dart => Reads::Pivots(p.order, p.pivots),
            Method::Samp => Reads::Samp(p.order, p.samp_threshold.to_bits(), p.model_window_tokens),
            Method::Full | Method::TopK | Method::BottomK | Method::VisionZip => {
                Reads::Order(p.order)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: Method, keep: f64) -> RunSpec {
        RunSpec {
            method: RunMethod::Prune(m),
            keep,
        }
    }

    #[test]
    fn a_key_changes_with_what_its_method_reads() {
        let p = Params::default();
        let (seg, topk) = (run(Method::Segmentwise, 0.25), run(Method::TopK, 0.25));
        let more_s = Params {
            segments: 20,
            ..p.clone()
        };
        let d = Decoding::default();
        assert_ne!(RunKey::of(&seg, &p, &d), RunKey::of(&seg, &more_s, &d));
        assert_eq!(RunKey::of(&topk, &p, &d), RunKey::of(&topk, &more_s, &d));
        for other in [
            Decoding {
                tail: Tail::Tokens(0),
                ..d.clone()
            },
            Decoding {
                tail: Tail::Tokens(50),
                ..d.clone()
            },
            Decoding {
                stop_on_loop: true,
                ..d.clone()
            },
        ] {
            assert_ne!(RunKey::of(&topk, &p, &d), RunKey::of(&topk, &p, &other));
        }
        let seeded = Params {
            seed: 3,
            ..p.clone()
        };
        assert_eq!(RunKey::of(&seg, &p, &d), RunKey::of(&seg, &seeded, &d));
    }

    #[test]
    fn the_score_source_matters_where_the_method_ranks_by_it() {
        let (p, d) = (Params::default(), Decoding::default());
        let layer0 = Params {
            source: ScoreSource {
                layer: Some(0),
                ..ScoreSource::default()
            },
            ..p.clone()
        };
        let (topk, random) = (run(Method::TopK, 0.25), run(Method::Random, 0.25));
        assert_ne!(RunKey::of(&topk, &p, &d), RunKey::of(&topk, &layer0, &d));
        assert_eq!(
            RunKey::of(&random, &p, &d),
            RunKey::of(&random, &layer0, &d)
        );
        // Once the kept tokens are put in score order, every method reads the scores.
        let by_score = |p: &Params| Params {
            order: Order::Score,
            ..p.clone()
        };
        assert_ne!(
            RunKey::of(&random, &by_score(&p), &d),
            RunKey::of(&random, &by_score(&layer0), &d)
        );
    }

    #[test]
    fn runs_that_ignore_the_keep_ratio_share_one_key() {
        let (p, d) = (Params::default(), Decoding::default());
        assert_eq!(
            RunKey::of(&run(Method::Full, 0.3), &p, &d),
            RunKey::of(&run(Method::Full, 1.0), &p, &d)
        );
    }
}
